/* zip.c - the central directory of a zip archive in memory (lx_zip.h). */
#include <stdlib.h>
#include <string.h>

#include "fmt/zip.h"

#define EOCD_SIG 0x06054b50u
#define CEN_SIG 0x02014b50u
#define LOC_SIG 0x04034b50u
#define EOCD_LEN 22
#define CEN_LEN 46
#define LOC_LEN 30

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }

/* CRC-32 (IEEE, reflected), eight bytes a step with eight tables ("slicing-by-8"). */
uint32_t lx_crc32(const unsigned char *p, size_t n)
{
	static uint32_t t[8][256];
	static int ready;
	uint32_t c, lo, hi;
	size_t i;
	int k;

	if (!ready) {
		for (i = 0; i < 256; i++) {
			c = (uint32_t)i;
			for (k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			t[0][i] = c;
		}
		for (i = 0; i < 256; i++)
			for (k = 1; k < 8; k++)
				t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
		ready = 1;
	}
	c = 0xffffffffu;
	for (; n >= 8; n -= 8, p += 8) {
		lo = c ^ rd32(p);
		hi = rd32(p + 4);
		c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
		    t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
	}
	for (; n > 0; n--, p++)
		c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const lx_zip_entry *)a)->name, ((const lx_zip_entry *)b)->name);
}

/* The end-of-central-directory record: the last signature within the final 64 KiB + 22 bytes. */
static const unsigned char *find_eocd(const unsigned char *buf, size_t len)
{
	size_t i, lo;

	if (len < EOCD_LEN)
		return NULL;
	lo = len - EOCD_LEN > 65535 ? len - EOCD_LEN - 65535 : 0;
	for (i = len - EOCD_LEN + 1; i-- > lo;)
		if (rd32(buf + i) == EOCD_SIG && i + EOCD_LEN + rd16(buf + i + 20) == len)
			return buf + i;
	return NULL;
}

/* Reads central directory entry k at *pos, and its local header; advances *pos. */
static lx_status read_entry(lx_zip *z, const unsigned char *buf, size_t len, size_t cd_end, size_t *pos,
                            size_t k, lx_err *e)
{
	const unsigned char *c = buf + *pos, *l;
	uint32_t name_len, extra_len, comment_len, lname, lextra;
	uint64_t csize, usize, loc, data;
	lx_zip_entry *ent = &z->ents[k];

	if (cd_end - *pos < CEN_LEN || rd32(c) != CEN_SIG)
		return lx_errf(e, LX_EMODEL, "%s: zip central directory entry %zu is cut short or damaged", z->path,
		               k + 1);
	name_len = rd16(c + 28);
	extra_len = rd16(c + 30);
	comment_len = rd16(c + 32);
	if (cd_end - *pos - CEN_LEN < (size_t)name_len + extra_len + comment_len)
		return lx_errf(e, LX_EMODEL, "%s: zip central directory entry %zu runs past the directory", z->path,
		               k + 1);
	ent->name = malloc(name_len + 1);
	if (!ent->name)
		return lx_errf(e, LX_EIO, "%s: out of memory", z->path);
	memcpy(ent->name, c + CEN_LEN, name_len);
	ent->name[name_len] = 0;
	ent->method = (int)rd16(c + 10);
	ent->crc = rd32(c + 16);
	csize = rd32(c + 20);
	usize = rd32(c + 24);
	loc = rd32(c + 42);
	if (csize == 0xffffffffu || usize == 0xffffffffu || loc == 0xffffffffu)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %s: zip64 sizes (archives over 4 GB) are not supported",
		               z->path, ent->name);
	if (strlen(ent->name) != name_len)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %zu: name holds a NUL byte", z->path, k + 1);
	if (loc > len || len - loc < LOC_LEN || rd32(buf + loc) != LOC_SIG)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %s: local header at offset %llu is outside the file or "
		               "damaged (file size %zu)", z->path, ent->name, (unsigned long long)loc, len);
	l = buf + loc;
	lname = rd16(l + 26);
	lextra = rd16(l + 28);
	data = loc + LOC_LEN + lname + lextra;
	if (data > len || len - data < csize)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %s: %llu bytes at offset %llu run past the end of the "
		               "file (size %zu): truncated?", z->path, ent->name, (unsigned long long)csize,
		               (unsigned long long)data, len);
	ent->data = buf + data;
	ent->size = csize;
	if (ent->method == 0 && usize != csize)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %s: stored entry with sizes %llu and %llu", z->path,
		               ent->name, (unsigned long long)csize, (unsigned long long)usize);
	*pos += CEN_LEN + name_len + extra_len + comment_len;
	return LX_OK;
}

lx_status lx_zip_init(lx_zip *z, const unsigned char *buf, size_t len, const char *path, lx_err *e)
{
	const unsigned char *eocd;
	size_t n, cd_off, cd_size, pos, k;
	lx_status st;

	memset(z, 0, sizeof *z);
	z->path = path;
	eocd = find_eocd(buf, len);
	if (!eocd)
		return lx_errf(e, LX_EMODEL, "%s: no zip end-of-central-directory record: the file is truncated or "
		               "not a zip archive", path);
	n = rd16(eocd + 10);
	cd_size = rd32(eocd + 12);
	cd_off = rd32(eocd + 16);
	if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)
		return lx_errf(e, LX_EMODEL, "%s: zip64 archives (over 4 GB or 65535 entries) are not supported", path);
	if (rd16(eocd + 4) != 0 || rd16(eocd + 6) != 0 || rd16(eocd + 8) != n)
		return lx_errf(e, LX_EMODEL, "%s: multi-volume zip archives are not supported", path);
	if (cd_off > (size_t)(eocd - buf) || (size_t)(eocd - buf) - cd_off < cd_size)
		return lx_errf(e, LX_EMODEL, "%s: zip central directory (offset %zu, %zu bytes) lies outside the file "
		               "(size %zu): truncated?", path, cd_off, cd_size, len);
	z->ents = calloc(n ? n : 1, sizeof *z->ents);
	if (!z->ents)
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	z->n = n;
	pos = cd_off;
	for (k = 0; k < n; k++)
		if ((st = read_entry(z, buf, len, cd_off + cd_size, &pos, k, e)) != LX_OK)
			return st;
	qsort(z->ents, n, sizeof *z->ents, by_name);
	for (k = 1; k < n; k++)
		if (!strcmp(z->ents[k - 1].name, z->ents[k].name))
			return lx_errf(e, LX_EMODEL, "%s: zip entry %s appears twice", path, z->ents[k].name);
	return LX_OK;
}

void lx_zip_destroy(lx_zip *z)
{
	size_t k;

	if (!z->ents)
		return;
	for (k = 0; k < z->n; k++)
		free(z->ents[k].name);
	free(z->ents);
	z->ents = NULL;
	z->n = 0;
}

const lx_zip_entry *lx_zip_find(const lx_zip *z, const char *name)
{
	lx_zip_entry key;

	if (!z->n)
		return NULL;
	key.name = (char *)name;
	return bsearch(&key, z->ents, z->n, sizeof *z->ents, by_name);
}

lx_status lx_zip_data(const lx_zip *z, const lx_zip_entry *ent, const unsigned char **data, size_t *size,
                      lx_err *e)
{
	if (ent->method != 0)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %s is compressed (method %d); PyTorch stores entries "
		               "uncompressed", z->path, ent->name, ent->method);
	if (lx_crc32(ent->data, (size_t)ent->size) != ent->crc)
		return lx_errf(e, LX_EMODEL, "%s: zip entry %s: CRC-32 mismatch: the file is damaged", z->path,
		               ent->name);
	*data = ent->data;
	*size = (size_t)ent->size;
	return LX_OK;
}

/* zip.c - zip archives in memory: the central directory, stored and deflated entries (fmt/zip.h). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fmt/zip.h"

#define EOCD_SIG 0x06054b50u
#define CEN_SIG 0x02014b50u
#define LOC_SIG 0x04034b50u
#define EOCD_LEN 22
#define CEN_LEN 46
#define LOC_LEN 30
/* Deflate makes at most 1032 bytes of each byte it reads (RFC 1951's longest match in the shortest code). */
#define MAX_RATIO 1032
#define ZCHUNK 0x40000000u /* bytes given to zlib at a time: its lengths are 32-bit */

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t crc(const unsigned char *p, uint64_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);

	for (; n > ZCHUNK; n -= ZCHUNK, p += ZCHUNK)
		c = crc32(c, p, ZCHUNK);
	return (uint32_t)crc32(c, p, (uInt)n);
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

/* The zip64 extra field (id 1) holds, in this order, each of the three values that are 0xffffffff. */
static void zip64_extra(const unsigned char *x, size_t n, uint64_t *usize, uint64_t *csize, uint64_t *off)
{
	size_t i = 0;

	while (i + 4 <= n) {
		size_t id = rd16(x + i), len = rd16(x + i + 2);
		const unsigned char *p = x + i + 4, *end = p + len;
		if (i + 4 + len > n)
			return;
		if (id == 1) {
			if (*usize == 0xffffffffu && p + 8 <= end)
				*usize = rd64(p), p += 8;
			if (*csize == 0xffffffffu && p + 8 <= end)
				*csize = rd64(p), p += 8;
			if (*off == 0xffffffffu && p + 8 <= end)
				*off = rd64(p);
			return;
		}
		i += 4 + len;
	}
}

/* Reads central directory entry k at *pos, and its local header; advances *pos. */
static lx_status read_entry(lx_zip *z, const unsigned char *buf, size_t len, size_t cd_end, size_t *pos,
                            size_t k, lx_err *e)
{
	const unsigned char *c = buf + *pos, *l;
	uint32_t name_len, extra_len, comment_len;
	uint64_t loc, data;
	lx_zip_entry *ent = &z->ents[k];

	if (cd_end - *pos < CEN_LEN || rd32(c) != CEN_SIG)
		return lx_errf(e, z->bad, "%s: zip central directory entry %zu is cut short or damaged", z->path, k + 1);
	name_len = rd16(c + 28);
	extra_len = rd16(c + 30);
	comment_len = rd16(c + 32);
	if (cd_end - *pos - CEN_LEN < (size_t)name_len + extra_len + comment_len)
		return lx_errf(e, z->bad, "%s: zip central directory entry %zu runs past the directory", z->path, k + 1);
	if (!(ent->name = malloc(name_len + 1)))
		return lx_errf(e, LX_EIO, "%s: out of memory", z->path);
	memcpy(ent->name, c + CEN_LEN, name_len);
	ent->name[name_len] = 0;
	if (strlen(ent->name) != name_len)
		return lx_errf(e, z->bad, "%s: zip entry %zu: name holds a NUL byte", z->path, k + 1);
	ent->method = (int)rd16(c + 10);
	ent->crc = rd32(c + 16);
	ent->csize = rd32(c + 20);
	ent->usize = rd32(c + 24);
	loc = rd32(c + 42);
	zip64_extra(c + CEN_LEN + name_len, extra_len, &ent->usize, &ent->csize, &loc);
	if (loc > len || len - loc < LOC_LEN || rd32(buf + loc) != LOC_SIG)
		return lx_errf(e, z->bad, "%s: %s %s: no local header at byte %llu", z->path, z->noun, ent->name,
		               (unsigned long long)loc);
	l = buf + loc;
	data = loc + LOC_LEN + rd16(l + 26) + rd16(l + 28);
	if (data > len || len - data < ent->csize)
		return lx_errf(e, z->bad, "%s: %s %s: %llu bytes at byte %llu, past the end of the file (%zu bytes)",
		               z->path, z->noun, ent->name, (unsigned long long)ent->csize, (unsigned long long)data, len);
	ent->data = buf + data;
	if (ent->method == 0 && ent->usize != ent->csize)
		return lx_errf(e, z->bad, "%s: %s %s: stored with two different sizes (%llu and %llu)", z->path, z->noun,
		               ent->name, (unsigned long long)ent->csize, (unsigned long long)ent->usize);
	if (ent->method == 8 && ent->usize > ent->csize * MAX_RATIO + 64)
		return lx_errf(e, z->bad, "%s: %s %s: %llu bytes declared from %llu deflated bytes, more than deflate can "
		               "make", z->path, z->noun, ent->name, (unsigned long long)ent->usize,
		               (unsigned long long)ent->csize);
	*pos += CEN_LEN + name_len + extra_len + comment_len;
	return LX_OK;
}

lx_status lx_zip_init(lx_zip *z, const unsigned char *buf, size_t len, const char *path, const char *noun,
                      lx_status bad, lx_err *e)
{
	const unsigned char *eocd;
	size_t n, cd_off, cd_size, pos, k;
	lx_status st;

	memset(z, 0, sizeof *z);
	z->path = path;
	z->noun = noun;
	z->bad = bad;
	if (!(eocd = find_eocd(buf, len)))
		return lx_errf(e, bad, "%s: no zip end-of-central-directory record: the file is truncated or not a zip "
		               "archive", path);
	n = rd16(eocd + 10);
	cd_size = rd32(eocd + 12);
	cd_off = rd32(eocd + 16);
	if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)
		return lx_errf(e, bad, "%s: zip64 archive directories (over 65535 entries or 4 GB) are not supported",
		               path);
	if (rd16(eocd + 4) != 0 || rd16(eocd + 6) != 0 || rd16(eocd + 8) != n)
		return lx_errf(e, bad, "%s: multi-volume zip archives are not supported", path);
	if (cd_off > (size_t)(eocd - buf) || (size_t)(eocd - buf) - cd_off < cd_size)
		return lx_errf(e, bad, "%s: zip central directory (offset %zu, %zu bytes) lies outside the file "
		               "(size %zu): truncated?", path, cd_off, cd_size, len);
	if (!(z->ents = calloc(n ? n : 1, sizeof *z->ents)))
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	z->n = n;
	pos = cd_off;
	for (k = 0; k < n; k++)
		if ((st = read_entry(z, buf, len, cd_off + cd_size, &pos, k, e)) != LX_OK)
			return st;
	qsort(z->ents, n, sizeof *z->ents, by_name);
	for (k = 1; k < n; k++)
		if (!strcmp(z->ents[k - 1].name, z->ents[k].name))
			return lx_errf(e, bad, "%s: %s %s appears twice", path, z->noun, z->ents[k].name);
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

static lx_status check_crc(const lx_zip *z, const lx_zip_entry *ent, const unsigned char *p, lx_err *e)
{
	if (crc(p, ent->usize) != ent->crc)
		return lx_errf(e, z->bad, "%s: %s %s: CRC-32 mismatch: the file is damaged", z->path, z->noun, ent->name);
	return LX_OK;
}

lx_status lx_zip_data(const lx_zip *z, const lx_zip_entry *ent, const unsigned char **data, size_t *size,
                      lx_err *e)
{
	lx_status st;

	if (ent->method != 0)
		return lx_errf(e, z->bad, "%s: %s %s is compressed (method %d), expected stored", z->path, z->noun,
		               ent->name, ent->method);
	if ((st = check_crc(z, ent, ent->data, e)) != LX_OK)
		return st;
	*data = ent->data;
	*size = (size_t)ent->usize;
	return LX_OK;
}

static lx_status inflate_all(const lx_zip *z, const lx_zip_entry *ent, unsigned char *out, lx_err *e)
{
	z_stream s;
	uint64_t in_left = ent->csize, out_left = ent->usize;
	int ret = Z_OK;

	memset(&s, 0, sizeof s);
	if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
		return lx_errf(e, LX_EIO, "%s: zlib cannot start", z->path);
	s.next_in = (unsigned char *)ent->data;
	s.next_out = out;
	while (ret == Z_OK) {
		uInt ai = in_left > ZCHUNK ? ZCHUNK : (uInt)in_left, ao = out_left > ZCHUNK ? ZCHUNK : (uInt)out_left;
		s.avail_in = ai;
		s.avail_out = ao;
		ret = inflate(&s, Z_FINISH);
		in_left -= ai - s.avail_in;
		out_left -= ao - s.avail_out;
		if (ret == Z_BUF_ERROR && ((s.avail_in == 0 && in_left) || (s.avail_out == 0 && out_left)))
			ret = Z_OK; /* a chunk ran out: go on with the next */
	}
	inflateEnd(&s);
	if (ret != Z_STREAM_END || out_left)
		return lx_errf(e, z->bad, "%s: %s %s: corrupt deflate data (%s)", z->path, z->noun, ent->name,
		               s.msg ? s.msg : "wrong size");
	return LX_OK;
}

lx_status lx_zip_extract(const lx_zip *z, const lx_zip_entry *ent, unsigned char *out, lx_err *e)
{
	lx_status st;

	if (ent->method == 0)
		memcpy(out, ent->data, (size_t)ent->usize);
	else if (ent->method != 8)
		return lx_errf(e, z->bad, "%s: %s %s uses zip method %d, expected stored (0) or deflated (8)", z->path,
		               z->noun, ent->name, ent->method);
	else if ((st = inflate_all(z, ent, out, e)) != LX_OK)
		return st;
	return check_crc(z, ent, out, e);
}

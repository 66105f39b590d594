/* feat_npz.c - one image a .npz (np.savez or np.savez_compressed), as detectron2-style extractors write
 * them: x [K,F], bbox [K,4] in pixels, num_bbox, image_h, image_w (formats/feat-npz.md). The zip is read
 * through its central directory; members are stored or deflated (zlib). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "feat/feat_impl.h"
#include "fmt/npy.h"

#define MAX_MEMBER (1u << 30)

typedef struct {
	const char *name;
	int found;
	unsigned method;
	uint32_t crc;
	uint64_t csize, usize, off;
} member;

enum { M_X, M_BBOX, M_NUM, M_H, M_W, M_OID, M_OCONF, M_AID, M_ACONF, M_INFO, M_COUNT };

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const unsigned char *p) { return u32(p) | (uint64_t)u32(p + 4) << 32; }

static lx_status read_at(lx_feat_file *f, uint64_t off, void *buf, size_t n, lx_err *e)
{
	if (fseeko(f->f, (off_t)off, SEEK_SET) || fread(buf, 1, n, f->f) != n)
		return lx_errf(e, ferror(f->f) ? LX_EIO : LX_EINPUT, "%s: truncated zip (cannot read %zu bytes at %llu)",
		               f->path, n, (unsigned long long)off);
	return LX_OK;
}

/* Finds the end-of-central-directory record: where the directory starts, its size and its entry count. */
static lx_status find_eocd(lx_feat_file *f, uint64_t *cd_off, uint64_t *cd_size, lx_err *e)
{
	unsigned char buf[65557];
	off_t size;
	size_t n, i;
	lx_status st;

	if (fseeko(f->f, 0, SEEK_END) || (size = ftello(f->f)) < 22)
		return lx_errf(e, LX_EINPUT, "%s: not a zip file (too short)", f->path);
	n = (size_t)(size < (off_t)sizeof buf ? size : (off_t)sizeof buf);
	if ((st = read_at(f, (uint64_t)size - n, buf, n, e)))
		return st;
	for (i = n - 22 + 1; i-- > 0;)
		if (memcmp(buf + i, "PK\5\6", 4) == 0) {
			*cd_size = u32(buf + i + 12);
			*cd_off = u32(buf + i + 16);
			if (*cd_off == 0xffffffffu || *cd_size == 0xffffffffu)
				return lx_errf(e, LX_EINPUT, "%s: zip64 archive directories are not supported", f->path);
			if (*cd_off + *cd_size > (uint64_t)size)
				return lx_errf(e, LX_EINPUT, "%s: zip directory lies past the end of the file", f->path);
			return LX_OK;
		}
	return lx_errf(e, LX_EINPUT, "%s: not a zip file (no end of central directory)", f->path);
}

/* The zip64 extra field (id 1) replaces each 32-bit value that is 0xffffffff, in this order. */
static void zip64_extra(const unsigned char *x, size_t n, member *m)
{
	size_t i = 0;

	while (i + 4 <= n) {
		unsigned id = u16(x + i), len = u16(x + i + 2);
		const unsigned char *p = x + i + 4, *end = p + len;
		if (i + 4 + len > n)
			return;
		if (id == 1) {
			if (m->usize == 0xffffffffu && p + 8 <= end)
				m->usize = u64(p), p += 8;
			if (m->csize == 0xffffffffu && p + 8 <= end)
				m->csize = u64(p), p += 8;
			if (m->off == 0xffffffffu && p + 8 <= end)
				m->off = u64(p);
			return;
		}
		i += 4 + len;
	}
}

static lx_status read_directory(lx_feat_file *f, member *m, lx_err *e)
{
	uint64_t cd_off, cd_size;
	unsigned char *p;
	size_t i = 0;
	lx_status st;
	int k;

	if ((st = find_eocd(f, &cd_off, &cd_size, e)))
		return st;
	if (!feat_grow(&f->zbuf, &f->zbuf_cap, cd_size + 1))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	if ((st = read_at(f, cd_off, f->zbuf, cd_size, e)))
		return st;
	p = f->zbuf;
	while (i + 46 <= cd_size && memcmp(p + i, "PK\1\2", 4) == 0) {
		size_t nlen = u16(p + i + 28), xlen = u16(p + i + 30), clen = u16(p + i + 32);
		if (i + 46 + nlen + xlen > cd_size)
			break;
		for (k = 0; k < M_COUNT; k++) {
			if (strlen(m[k].name) != nlen || memcmp(p + i + 46, m[k].name, nlen) != 0)
				continue;
			m[k].found = 1;
			m[k].method = u16(p + i + 10);
			m[k].crc = u32(p + i + 16);
			m[k].csize = u32(p + i + 20);
			m[k].usize = u32(p + i + 24);
			m[k].off = u32(p + i + 42);
			zip64_extra(p + i + 46 + nlen, xlen, &m[k]);
		}
		i += 46 + nlen + xlen + clen;
	}
	return LX_OK;
}

static lx_status inflate_all(lx_feat_file *f, const member *m, lx_err *e)
{
	z_stream z;
	int ret;

	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
		return lx_errf(e, LX_EIO, "%s: zlib cannot start", f->path);
	z.next_in = f->zbuf;
	z.avail_in = (uInt)m->csize;
	z.next_out = f->scratch;
	z.avail_out = (uInt)m->usize;
	ret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if (ret != Z_STREAM_END || z.total_out != m->usize)
		return lx_errf(e, LX_EINPUT, "%s: member %s: corrupt deflate data (%s)", f->path, m->name,
		               z.msg ? z.msg : "wrong size");
	return LX_OK;
}

/* Deflate makes at most 1032 bytes of each byte it reads (RFC 1951's longest match in the shortest code). */
#define MAX_RATIO 1032

/* Checks the sizes member m declares against the file's real size before anything is allocated for them:
 * its data must lie inside the file, and a deflated member cannot grow more than deflate allows. */
static lx_status check_extent(lx_feat_file *f, const member *m, uint64_t data, lx_err *e)
{
	struct stat sb;

	if (fstat(fileno(f->f), &sb) != 0)
		return lx_errf(e, LX_EIO, "%s: %s", f->path, strerror(errno));
	if (data > (uint64_t)sb.st_size || m->csize > (uint64_t)sb.st_size - data)
		return lx_errf(e, LX_EINPUT, "%s: member %s: %llu bytes at byte %llu, past the end of the file (%llu bytes)",
		               f->path, m->name, (unsigned long long)m->csize, (unsigned long long)data,
		               (unsigned long long)sb.st_size);
	if (m->method == 8 && m->usize > m->csize * MAX_RATIO + 64)
		return lx_errf(e, LX_EINPUT, "%s: member %s: %llu bytes declared from %llu deflated bytes, more than deflate "
		               "can make", f->path, m->name, (unsigned long long)m->usize, (unsigned long long)m->csize);
	return LX_OK;
}

/* Reads member m's bytes into f->scratch. */
static lx_status read_member(lx_feat_file *f, const member *m, lx_err *e)
{
	unsigned char lh[30];
	uint64_t data;
	lx_status st;

	if (m->usize > MAX_MEMBER || m->csize > MAX_MEMBER)
		return lx_errf(e, LX_EINPUT, "%s: member %s is larger than 1 GiB", f->path, m->name);
	if (m->method != 0 && m->method != 8)
		return lx_errf(e, LX_EINPUT, "%s: member %s uses zip method %u, expected stored (0) or deflated (8)",
		               f->path, m->name, m->method);
	if ((st = read_at(f, m->off, lh, 30, e)))
		return st;
	if (memcmp(lh, "PK\3\4", 4) != 0)
		return lx_errf(e, LX_EINPUT, "%s: member %s: no local header at byte %llu", f->path, m->name,
		               (unsigned long long)m->off);
	data = m->off + 30 + u16(lh + 26) + u16(lh + 28);
	if ((st = check_extent(f, m, data, e)))
		return st;
	if (!feat_grow(&f->scratch, &f->scratch_cap, m->usize + 1) || !feat_grow(&f->zbuf, &f->zbuf_cap, m->csize + 1))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	if (m->method == 0) {
		if (m->csize != m->usize)
			return lx_errf(e, LX_EINPUT, "%s: member %s: stored with two different sizes", f->path, m->name);
		st = read_at(f, data, f->scratch, m->usize, e);
	} else if (!(st = read_at(f, data, f->zbuf, m->csize, e)))
		st = inflate_all(f, m, e);
	if (st)
		return st;
	if (crc32(0L, f->scratch, (uInt)m->usize) != m->crc)
		return lx_errf(e, LX_EINPUT, "%s: member %s: CRC mismatch (corrupt file)", f->path, m->name);
	return LX_OK;
}

/* Reads member k as a tensor in f->scratch (valid until the next member). */
static lx_status member_tensor(lx_feat_file *f, member *m, lx_tensor *t, char *where, size_t wn, lx_err *e)
{
	lx_status st;
	size_t off;
	int obj;

	snprintf(where, wn, "%s: %s", f->path, m->name);
	if (!m->found)
		return lx_errf(e, LX_EINPUT, "%s: no member %s (expected x, bbox, num_bbox, image_h, image_w)", f->path,
		               m->name);
	if ((st = read_member(f, m, e)) || (st = lx_npy_parse(f->scratch, m->usize, where, t, &obj, &off, e)))
		return st;
	if (obj)
		return lx_errf(e, LX_EINPUT, "%s: an object array (pickle), expected numbers", where);
	return LX_OK;
}

static lx_status scalar(lx_feat_file *f, member *m, int lo, int *out, lx_err *e)
{
	char where[300];
	lx_tensor t;
	int32_t v;
	lx_status st;

	if ((st = member_tensor(f, m, &t, where, sizeof where, e)))
		return st;
	if (t.numel != 1)
		return lx_errf(e, LX_EINPUT, "%s: %lld values, expected one", where, (long long)t.numel);
	if ((st = lx_tensor_to_i32(&t, &v, m->name, e)))
		return st;
	if (v < lo || v > 1000000)
		return lx_errf(e, LX_EINPUT, "%s: value %d, expected %d to 1000000", where, (int)v, lo);
	*out = v;
	return LX_OK;
}

static lx_status rows(lx_feat_file *f, member *m, int n, int cols, lx_tensor *t, lx_err *e)
{
	char where[300];
	lx_status st;

	if ((st = member_tensor(f, m, t, where, sizeof where, e)))
		return st;
	if (t->ndim != (cols ? 2 : 1) || t->shape[0] != n || (cols > 0 && t->shape[1] != cols))
		return lx_errf(e, LX_EINPUT, "%s: shape [%lld%s], expected [%d%s] (num_bbox %d)", where,
		               (long long)t->shape[0], t->ndim == 2 ? ",..." : "", n, cols > 0 ? ",4" : cols < 0 ? ",F" : "",
		               n);
	return LX_OK;
}

static lx_status optional(lx_feat_file *f, member *mi, member *mc, int n, int32_t *ids, float *conf, int *has,
                          lx_err *e)
{
	lx_tensor t;
	lx_status st;

	*has = 0;
	if (!mi->found || !mc->found)
		return LX_OK;
	if ((st = rows(f, mi, n, 0, &t, e)) || (st = lx_tensor_to_i32(&t, ids, mi->name, e)) ||
	    (st = rows(f, mc, n, 0, &t, e)) || (st = lx_tensor_to_f32(&t, conf, mc->name, e)))
		return st;
	*has = 1;
	return LX_OK;
}

/* MILVLG keeps the ids in info, a pickled dict {objects_id, objects_conf, attrs_id, attrs_conf}. */
static lx_status info_ids(lx_feat_file *f, member *m, lx_feat_image *im, lx_err *e)
{
	char where[300];
	lx_tensor t;
	size_t off;
	int obj;
	msgpack_zone *z;
	pk_obj *root;
	lx_status st;

	snprintf(where, sizeof where, "%s: %s", f->path, m->name);
	if ((st = read_member(f, m, e)) || (st = lx_npy_parse(f->scratch, m->usize, where, &t, &obj, &off, e)) ||
	    !obj)
		return st;
	if (!(z = msgpack_zone_new(8192)))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	st = feat_unpickle(f->scratch + off, m->usize - off, z, where, &root, e);
	if (!st && root->t == PK_ARRAY && root->is_object && root->n == 1)
		root = root->items[0];
	if (!st && root->t == PK_DICT)
		st = feat_dict_ids(root, im, where, e);
	msgpack_zone_free(z);
	return st;
}

lx_status feat_npz_read(lx_feat_file *f, lx_feat_image *im, lx_err *e)
{
	static const char *names[M_COUNT] = {"x.npy", "bbox.npy", "num_bbox.npy", "image_h.npy", "image_w.npy",
	                                     "objects_id.npy", "objects_conf.npy", "attrs_id.npy", "attrs_conf.npy",
	                                     "info.npy"};
	member m[M_COUNT];
	const char *id;
	size_t len;
	lx_tensor t;
	lx_status st;
	int k;

	memset(m, 0, sizeof m);
	for (k = 0; k < M_COUNT; k++)
		m[k].name = names[k];

	feat_npz_id(f->path, &id, &len);
	if (!lx_feat_image_set_id(im, id, len))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	im->src = f->path;
	im->line = 0;
	im->is_record = 0;
	im->n = im->dim = 0;
	im->has_obj = im->has_attr = 0;
	if ((st = read_directory(f, m, e)) || (st = scalar(f, &m[M_NUM], 0, &im->n, e)) ||
	    (st = scalar(f, &m[M_H], 1, &im->img_h, e)) || (st = scalar(f, &m[M_W], 1, &im->img_w, e)) ||
	    (st = rows(f, &m[M_X], im->n, -1, &t, e)))
		return st;
	im->dim = (int)t.shape[1];
	if (!lx_feat_image_reserve(im, im->n, im->dim))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	if ((st = lx_tensor_to_f32(&t, im->feats, "x", e)) || (st = rows(f, &m[M_BBOX], im->n, 4, &t, e)) ||
	    (st = lx_tensor_to_f32(&t, im->boxes, "bbox", e)) ||
	    (st = optional(f, &m[M_OID], &m[M_OCONF], im->n, im->obj_ids, im->obj_conf, &im->has_obj, e)))
		return st;
	if ((st = optional(f, &m[M_AID], &m[M_ACONF], im->n, im->attr_ids, im->attr_conf, &im->has_attr, e)))
		return st;
	if (m[M_INFO].found && (!im->has_obj || !im->has_attr))
		return info_ids(f, &m[M_INFO], im, e);
	return LX_OK;
}

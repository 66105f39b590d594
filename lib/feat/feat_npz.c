/* feat_npz.c - one image a .npz (np.savez or np.savez_compressed), as detectron2-style extractors write
 * them: x [K,F], bbox [K,4] in pixels, num_bbox, image_h, image_w (formats/feat-npz.md). The file is mapped
 * and read by fmt/zip.c; members are stored or deflated. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "feat/feat_impl.h"
#include "fmt/npy.h"
#include "fmt/zip.h"

#define MAX_MEMBER (1u << 30)
/* A .npy header is at most this long (np.save pads it to 64 bytes; a few hundred in practice). */
#define MAX_NPY_HEADER 65536
/* MILVLG's info.npy (a pickled dict of ids and confidences): at most this many bytes. */
#define MAX_INFO ((uint64_t)16 << 20)

typedef struct {
	const char *name;
	const lx_zip_entry *ent; /* NULL: not in the archive */
} member;

enum { M_X, M_BBOX, M_NUM, M_H, M_W, M_OID, M_OCONF, M_AID, M_ACONF, M_INFO, M_COUNT };

/* The archive: the file mapped, its directory read. */
typedef struct {
	lx_feat_file *f;
	void *map;
	size_t len;
	lx_zip zip;
} archive;

static lx_status open_archive(archive *a, lx_feat_file *f, lx_err *e)
{
	struct stat sb;

	memset(a, 0, sizeof *a);
	a->f = f;
	if (fstat(fileno(f->f), &sb) != 0)
		return lx_errf(e, LX_EIO, "%s: %s", f->path, strerror(errno));
	a->len = (size_t)sb.st_size;
	a->map = mmap(NULL, a->len, PROT_READ, MAP_PRIVATE, fileno(f->f), 0);
	if (a->map == MAP_FAILED) {
		a->map = NULL;
		return lx_errf(e, LX_EIO, "%s: cannot map the file: %s", f->path, strerror(errno));
	}
	return lx_zip_init(&a->zip, a->map, a->len, f->path, "member", LX_EINPUT, e);
}

static void close_archive(archive *a)
{
	lx_zip_destroy(&a->zip);
	if (a->map)
		munmap(a->map, a->len);
}

/* Reads member m's bytes into f->scratch; a member whose declared size is past max is refused before a byte
 * of it is inflated. */
static lx_status read_member(archive *a, const member *m, uint64_t max, lx_err *e)
{
	lx_feat_file *f = a->f;

	if (m->ent->usize > MAX_MEMBER || m->ent->csize > MAX_MEMBER)
		return lx_errf(e, LX_EINPUT, "%s: member %s is larger than 1 GiB", f->path, m->name);
	if (m->ent->usize > max)
		return lx_errf(e, LX_EINPUT, "%s: member %s declares %llu bytes, more than its limit of %llu (at most %d "
		               "boxes of %d features)", f->path, m->name, (unsigned long long)m->ent->usize,
		               (unsigned long long)max, LX_FEAT_MAX_BOXES, LX_FEAT_MAX_DIM);
	if (!feat_grow(&f->scratch, &f->scratch_cap, m->ent->usize + 1))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	return lx_zip_extract(&a->zip, m->ent, f->scratch, e);
}

/* Reads member k as a tensor in f->scratch (valid until the next member), of at most max bytes. */
static lx_status member_tensor(archive *a, member *m, uint64_t max, lx_tensor *t, char *where, size_t wn, lx_err *e)
{
	lx_feat_file *f = a->f;
	lx_status st;
	size_t off;
	int obj;

	snprintf(where, wn, "%s: %s", f->path, m->name);
	if (!m->ent)
		return lx_errf(e, LX_EINPUT, "%s: no member %s (expected x, bbox, num_bbox, image_h, image_w)", f->path,
		               m->name);
	if ((st = read_member(a, m, max, e)) || (st = lx_npy_parse(f->scratch, m->ent->usize, where, t, &obj, &off, e)))
		return st;
	if (obj)
		return lx_errf(e, LX_EINPUT, "%s: an object array (pickle), expected numbers", where);
	return LX_OK;
}

static lx_status scalar(archive *a, member *m, int lo, int *out, lx_err *e)
{
	char where[300];
	lx_tensor t;
	int32_t v;
	lx_status st;

	if ((st = member_tensor(a, m, MAX_NPY_HEADER + 8, &t, where, sizeof where, e)))
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

static lx_status rows(archive *a, member *m, int n, int cols, lx_tensor *t, lx_err *e)
{
	char where[300];
	lx_status st;

	uint64_t per_row = cols < 0 ? LX_FEAT_MAX_DIM : cols > 0 ? (uint64_t)cols : 1;

	if ((st = member_tensor(a, m, MAX_NPY_HEADER + (uint64_t)n * per_row * 8, t, where, sizeof where, e)))
		return st;
	if (t->ndim != (cols ? 2 : 1) || t->shape[0] != n || (cols > 0 && t->shape[1] != cols))
		return lx_errf(e, LX_EINPUT, "%s: shape [%lld%s], expected [%d%s] (num_bbox %d)", where,
		               (long long)t->shape[0], t->ndim == 2 ? ",..." : "", n, cols > 0 ? ",4" : cols < 0 ? ",F" : "",
		               n);
	return LX_OK;
}

static lx_status optional(archive *a, member *mi, member *mc, int n, int32_t *ids, float *conf, int *has,
                          lx_err *e)
{
	lx_tensor t;
	lx_status st;

	*has = 0;
	if (!mi->ent || !mc->ent)
		return LX_OK;
	if ((st = rows(a, mi, n, 0, &t, e)) || (st = lx_tensor_to_i32(&t, ids, mi->name, e)) ||
	    (st = rows(a, mc, n, 0, &t, e)) || (st = lx_tensor_to_f32(&t, conf, mc->name, e)))
		return st;
	*has = 1;
	return LX_OK;
}

/* MILVLG keeps the ids in info, a pickled dict {objects_id, objects_conf, attrs_id, attrs_conf}. */
static lx_status info_ids(archive *a, member *m, lx_feat_image *im, lx_err *e)
{
	lx_feat_file *f = a->f;
	char where[300];
	lx_tensor t;
	size_t off;
	int obj;
	lx_pickle *pk = NULL;
	lx_pk *root;
	lx_status st;

	snprintf(where, sizeof where, "%s: %s", f->path, m->name);
	if ((st = read_member(a, m, MAX_INFO, e)) ||
	    (st = lx_npy_parse(f->scratch, m->ent->usize, where, &t, &obj, &off, e)) ||
	    !obj)
		return st;
	st = feat_unpickle(f->scratch + off, m->ent->usize - off, where, &pk, &root, e);
	if (!st && feat_pk_is(root, NP_ARRAY) && (root->flags & NP_OBJECT) && root->n == 1)
		root = root->items[0];
	if (!st && root->type == LX_PK_DICT)
		st = feat_dict_ids(root, im, where, e);
	lx_pickle_free(pk);
	return st;
}

/* The image in archive a. */
static lx_status read_image(archive *a, lx_feat_image *im, lx_err *e)
{
	static const char *names[M_COUNT] = {"x.npy", "bbox.npy", "num_bbox.npy", "image_h.npy", "image_w.npy",
	                                     "objects_id.npy", "objects_conf.npy", "attrs_id.npy", "attrs_conf.npy",
	                                     "info.npy"};
	member m[M_COUNT];
	lx_tensor t;
	lx_status st;
	int k;

	for (k = 0; k < M_COUNT; k++) {
		m[k].name = names[k];
		m[k].ent = lx_zip_find(&a->zip, names[k]);
	}
	if ((st = scalar(a, &m[M_NUM], 0, &im->n, e)) || (st = scalar(a, &m[M_H], 1, &im->img_h, e)) ||
	    (st = scalar(a, &m[M_W], 1, &im->img_w, e)))
		return st;
	if (im->n > LX_FEAT_MAX_BOXES)
		return lx_errf(e, LX_EINPUT, "%s: num_bbox.npy: %d boxes, more than %d", a->f->path, im->n,
		               LX_FEAT_MAX_BOXES);
	if ((st = rows(a, &m[M_X], im->n, -1, &t, e)))
		return st;
	if (t.shape[1] > LX_FEAT_MAX_DIM)
		return lx_errf(e, LX_EINPUT, "%s: x.npy: %lld features per box, more than %d", a->f->path,
		               (long long)t.shape[1], LX_FEAT_MAX_DIM);
	im->dim = (int)t.shape[1];
	if (!lx_feat_image_reserve(im, im->n, im->dim))
		return lx_errf(e, LX_EIO, "%s: out of memory", a->f->path);
	if ((st = lx_tensor_to_f32(&t, im->feats, "x", e)) || (st = rows(a, &m[M_BBOX], im->n, 4, &t, e)) ||
	    (st = lx_tensor_to_f32(&t, im->boxes, "bbox", e)) ||
	    (st = optional(a, &m[M_OID], &m[M_OCONF], im->n, im->obj_ids, im->obj_conf, &im->has_obj, e)))
		return st;
	if ((st = optional(a, &m[M_AID], &m[M_ACONF], im->n, im->attr_ids, im->attr_conf, &im->has_attr, e)))
		return st;
	if (m[M_INFO].ent && (!im->has_obj || !im->has_attr))
		return info_ids(a, &m[M_INFO], im, e);
	return LX_OK;
}

lx_status feat_npz_read(lx_feat_file *f, lx_feat_image *im, lx_err *e)
{
	archive a;
	lx_status st;

	if ((st = feat_file_image(f, im, e)))
		return st;
	if (!(st = open_archive(&a, f, e)))
		st = read_image(&a, im, e);
	close_archive(&a);
	return st;
}

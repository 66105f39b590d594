/* feat_npy.c - one image a .npy (formats/feat-npy.md): np.save of a dict {x, bbox, num_bbox, image_h,
 * image_w, ...}, or MMF's plain features FILE.npy beside FILE_info.npy, a dict {bbox, num_boxes,
 * image_height, image_width, ...}. Dicts come as pickles, read with feat_pickle.c's rules without calling
 * anything. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "feat/feat_impl.h"
#include "fmt/npy.h"

#define MAX_NPY (1u << 30)

static lx_status slurp(FILE *fp, const char *path, unsigned char **buf, size_t *cap, size_t *n, lx_err *e)
{
	off_t size;

	if (fseeko(fp, 0, SEEK_END) || (size = ftello(fp)) < 0 || fseeko(fp, 0, SEEK_SET))
		return lx_errf(e, LX_EMODEL, "%s: cannot seek (%s): a .npy must be a regular file", path, strerror(errno));
	if ((uint64_t)size > MAX_NPY)
		return lx_errf(e, LX_EINPUT, "%s: %lld bytes, more than a one-image .npy holds (1 GiB)", path,
		               (long long)size);
	if (!feat_grow(buf, cap, (size_t)size + 1))
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	if (fread(*buf, 1, (size_t)size, fp) != (size_t)size)
		return lx_errf(e, ferror(fp) ? LX_EIO : LX_EINPUT, "%s: cannot read %lld bytes", path, (long long)size);
	*n = (size_t)size;
	return LX_OK;
}

static const lx_pk *get2(const lx_pk *d, const char *a, const char *b)
{
	const lx_pk *o = lx_pk_get(d, a);

	return o ? o : b ? lx_pk_get(d, b) : NULL;
}

/* A view of a number or a numeric array as a tensor. */
static int as_tensor(const lx_pk *o, lx_tensor *t)
{
	memset(t, 0, sizeof *t);
	if (!o)
		return 0;
	if (feat_pk_is(o, NP_ARRAY) && !(o->flags & NP_OBJECT)) {
		*t = o->t;
		return 1;
	}
	t->numel = 1;
	if (o->type == LX_PK_INT || o->type == LX_PK_BOOL) {
		t->dtype = LX_I64;
		t->data = &o->i;
		return 1;
	}
	if (o->type == LX_PK_FLOAT) {
		t->dtype = LX_F64;
		t->data = &o->f;
		return 1;
	}
	return 0;
}

static lx_status dict_int(const lx_pk *d, const char *a, const char *b, int lo, const char *where, int *out,
                          lx_err *e)
{
	lx_tensor t;
	int32_t v;
	lx_status st;

	if (!as_tensor(get2(d, a, b), &t) || t.numel != 1)
		return lx_errf(e, LX_EINPUT, "%s: key %s %s, expected one integer", where, a,
		               get2(d, a, b) ? "is not a single number" : "is missing");
	if ((st = lx_tensor_to_i32(&t, &v, a, e)))
		return lx_errf(e, st, "%s: key %s is not an integer", where, a);
	if (v < lo || v > 1000000)
		return lx_errf(e, LX_EINPUT, "%s: key %s is %d, expected %d to 1000000", where, a, (int)v, lo);
	*out = v;
	return LX_OK;
}

/* cols > 0: exactly that many columns; -1: any; 0: a vector. */
static lx_status dict_rows(const lx_pk *d, const char *a, const char *b, int n, int cols, const char *where,
                           lx_tensor *t, lx_err *e)
{
	if (!as_tensor(get2(d, a, b), t))
		return lx_errf(e, LX_EINPUT, "%s: key %s %s", where, a,
		               get2(d, a, b) ? "is not a numeric array" : "is missing");
	if (t->ndim != (cols ? 2 : 1) || t->shape[0] != n || (cols > 0 && t->shape[1] != cols))
		return lx_errf(e, LX_EINPUT, "%s: key %s has %d dimensions, %lld rows; expected [%d%s] (num_bbox %d)", where,
		               a, t->ndim, t->ndim ? (long long)t->shape[0] : 1LL, n, cols > 0 ? ",4" : cols < 0 ? ",F" : "",
		               n);
	return LX_OK;
}

static lx_status check_feats(const lx_tensor *t, int n, const char *where, lx_err *e)
{
	if (t->ndim != 2 || t->shape[0] != n)
		return lx_errf(e, LX_EINPUT, "%s: features of %d dimensions, %lld rows; expected [%d,F] (num_boxes %d)",
		               where, t->ndim, t->ndim ? (long long)t->shape[0] : 1LL, n, n);
	return LX_OK;
}

lx_status feat_dict_image(const lx_pk *d, const lx_tensor *feats, lx_feat_image *im, const char *where,
                          lx_err *e)
{
	lx_tensor x, b;
	lx_status st;

	if ((st = dict_int(d, "num_bbox", "num_boxes", 0, where, &im->n, e)) ||
	    (st = dict_int(d, "image_h", "image_height", 1, where, &im->img_h, e)) ||
	    (st = dict_int(d, "image_w", "image_width", 1, where, &im->img_w, e)) ||
	    (st = dict_rows(d, "bbox", "boxes", im->n, 4, where, &b, e)))
		return st;
	if (feats) {
		x = *feats;
		st = check_feats(&x, im->n, where, e);
	} else
		st = dict_rows(d, "x", "features", im->n, -1, where, &x, e);
	if (st)
		return st;
	im->dim = (int)x.shape[1];
	if (!lx_feat_image_reserve(im, im->n, im->dim))
		return lx_errf(e, LX_EIO, "%s: out of memory", where);
	if ((st = lx_tensor_to_f32(&x, im->feats, "x", e)) || (st = lx_tensor_to_f32(&b, im->boxes, "bbox", e)))
		return st;
	return feat_dict_ids(d, im, where, e);
}

static lx_status pair(const lx_pk *d, const char *ids, const char *conf, int n, int32_t *id_out,
                      float *conf_out, int *has, const char *where, lx_err *e)
{
	lx_tensor ti, tc;
	lx_status st;

	*has = 0;
	if (!lx_pk_get(d, ids) || !lx_pk_get(d, conf))
		return LX_OK;
	if ((st = dict_rows(d, ids, NULL, n, 0, where, &ti, e)) || (st = dict_rows(d, conf, NULL, n, 0, where, &tc, e)) ||
	    (st = lx_tensor_to_i32(&ti, id_out, ids, e)) || (st = lx_tensor_to_f32(&tc, conf_out, conf, e)))
		return st;
	*has = 1;
	return LX_OK;
}

lx_status feat_dict_ids(const lx_pk *d, lx_feat_image *im, const char *where, lx_err *e)
{
	lx_status st = LX_OK;

	if (!im->has_obj)
		st = pair(d, "objects_id", "objects_conf", im->n, im->obj_ids, im->obj_conf, &im->has_obj, where, e);
	if (!st && !im->has_attr)
		st = pair(d, "attrs_id", "attrs_conf", im->n, im->attr_ids, im->attr_conf, &im->has_attr, where, e);
	return st;
}

/* The dict inside np.save(path, dict): a 0-d object array holding one dict. */
static lx_status saved_dict(const unsigned char *b, size_t n, lx_pickle **pk, const char *where,
                            const lx_pk **d, lx_err *e)
{
	lx_pk *root;
	lx_status st = feat_unpickle(b, n, where, pk, &root, e);

	if (st)
		return st;
	if (feat_pk_is(root, NP_ARRAY) && (root->flags & NP_OBJECT) && root->n == 1)
		root = root->items[0];
	if (root->type != LX_PK_DICT)
		return lx_errf(e, LX_EINPUT, "%s: the pickle holds no dict (expected np.save of a dict)", where);
	*d = root;
	return LX_OK;
}

/* MMF: FILE.npy holds the features, FILE_info.npy the rest. */
static lx_status with_info(lx_feat_file *f, const lx_tensor *feats, lx_pickle **pk, lx_feat_image *im,
                           lx_err *e)
{
	size_t len = strlen(f->path), n, off;
	char *ipath = malloc(len + 10);
	FILE *fp;
	lx_tensor t;
	const lx_pk *d;
	int obj;
	lx_status st;

	if (!ipath)
		return lx_errf(e, LX_EIO, "out of memory");
	if (len > 4 && strcmp(f->path + len - 4, ".npy") == 0)
		len -= 4;
	memcpy(ipath, f->path, len);
	memcpy(ipath + len, "_info.npy", 10);
	if (!(fp = fopen(ipath, "rb"))) {
		st = lx_errf(e, LX_EMODEL, "%s: %s (a .npy of features needs its _info.npy beside it)", ipath,
		             strerror(errno));
		free(ipath);
		return st;
	}
	st = slurp(fp, ipath, &f->zbuf, &f->zbuf_cap, &n, e);
	fclose(fp);
	if (!st && !(st = lx_npy_parse(f->zbuf, n, ipath, &t, &obj, &off, e)) && !obj)
		st = lx_errf(e, LX_EINPUT, "%s: a numeric array, expected a dict saved with np.save", ipath);
	if (!st && !(st = saved_dict(f->zbuf + off, n - off, pk, ipath, &d, e)))
		st = feat_dict_image(d, feats, im, ipath, e);
	free(ipath);
	return st;
}

lx_status feat_npy_read(lx_feat_file *f, lx_feat_image *im, lx_err *e)
{
	lx_pickle *pk = NULL;
	const lx_pk *d;
	const char *id;
	size_t len, n, off;
	lx_tensor t;
	int obj;
	lx_status st;

	feat_npz_id(f->path, &id, &len);
	if (!lx_feat_image_set_id(im, id, len))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	im->src = f->path;
	im->line = 0;
	im->is_record = 0;
	im->n = im->dim = 0;
	im->has_obj = im->has_attr = 0;
	if ((st = slurp(f->f, f->path, &f->scratch, &f->scratch_cap, &n, e)) ||
	    (st = lx_npy_parse(f->scratch, n, f->path, &t, &obj, &off, e)))
		return st;
	if (obj) {
		if (!(st = saved_dict(f->scratch + off, n - off, &pk, f->path, &d, e)))
			st = feat_dict_image(d, NULL, im, f->path, e);
	} else
		st = with_info(f, &t, &pk, im, e);
	lx_pickle_free(pk);
	return st;
}

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
	size_t n, off;
	lx_tensor t;
	int obj;
	lx_status st;

	if ((st = feat_file_image(f, im, e)))
		return st;
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

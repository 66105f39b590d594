/* image.c - what every feature reader shares: the image record, box normalisation, buffers, file ids. */
#include <stdlib.h>
#include <string.h>

#include "feat/feat_impl.h"

const char *lx_feat_format_name(lx_feat_format f)
{
	static const char *names[] = {"obj36", "butd", "npz", "stream", "npy"};

	return names[f];
}

/* ---- images ---- */

void lx_feat_image_init(lx_feat_image *im) { memset(im, 0, sizeof *im); }

void lx_feat_image_destroy(lx_feat_image *im)
{
	free(im->img_id);
	free(im->boxes);
	free(im->feats);
	free(im->obj_ids);
	free(im->obj_conf);
	free(im->attr_ids);
	free(im->attr_conf);
	memset(im, 0, sizeof *im);
}

int feat_grow(void *buf, size_t *cap, size_t n)
{
	void **p = buf;
	void *q;
	size_t c;

	if (n <= *cap && *p)
		return 1;
	c = n < 64 ? 64 : n + n / 4;
	if (!(q = realloc(*p, c)))
		return 0;
	*p = q;
	*cap = c;
	return 1;
}

int lx_feat_image_reserve(lx_feat_image *im, int n, int dim)
{
	size_t nb = (size_t)n, fb = (size_t)n * (size_t)dim;

	if (nb > im->n_cap || !im->boxes) {
		size_t c = nb < 16 ? 16 : nb;
		float *b = realloc(im->boxes, c * 4 * sizeof(float));
		int32_t *oi = realloc(im->obj_ids, c * sizeof(int32_t));
		float *oc = realloc(im->obj_conf, c * sizeof(float));
		int32_t *ai = realloc(im->attr_ids, c * sizeof(int32_t));
		float *ac = realloc(im->attr_conf, c * sizeof(float));

		im->boxes = b ? b : im->boxes;
		im->obj_ids = oi ? oi : im->obj_ids;
		im->obj_conf = oc ? oc : im->obj_conf;
		im->attr_ids = ai ? ai : im->attr_ids;
		im->attr_conf = ac ? ac : im->attr_conf;
		if (!b || !oi || !oc || !ai || !ac)
			return 0;
		im->n_cap = c;
	}
	if (fb > im->f_cap || !im->feats) {
		size_t c = fb < 64 ? 64 : fb;
		float *f = realloc(im->feats, c * sizeof(float));
		if (!f)
			return 0;
		im->feats = f;
		im->f_cap = c;
	}
	return 1;
}

int lx_feat_image_set_id(lx_feat_image *im, const char *id, size_t len)
{
	if (!feat_grow(&im->img_id, &im->id_cap, len + 1))
		return 0;
	memcpy(im->img_id, id, len);
	im->img_id[len] = 0;
	return 1;
}

const char *lx_feat_image_where(const lx_feat_image *im, char *buf, size_t n)
{
	const char *id = im->img_id ? im->img_id : "";

	if (im->line > 0)
		snprintf(buf, n, "%s: %s %ld (img_id %s)", im->src ? im->src : "", im->is_record ? "record" : "line",
		         im->line, id);
	else
		snprintf(buf, n, "%s (img_id %s)", im->src ? im->src : "", id);
	return buf;
}

/* ---- normalisation ---- */

static int all_in_unit(const float *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!(b[i] >= 0.0f && b[i] <= 1.0f))
			return 0;
	return 1;
}

lx_status lx_feat_normalize(const lx_feat_image *im, int n_keep, int normalized, float *pos, lx_err *e)
{
	static const char *coord[4] = {"x1", "y1", "x2", "y2"};
	const float lo = -1e-5f, hi = 1.0f + 1e-5f;
	float div[4];
	char where[400];
	int i, k;

	div[0] = div[2] = (float)im->img_w;
	div[1] = div[3] = (float)im->img_h;
	if (!normalized && im->n > 0 && (im->img_w > 2 || im->img_h > 2) &&
	    all_in_unit(im->boxes, (size_t)im->n * 4))
		return lx_errf(e, LX_EINPUT,
		               "%s: the boxes all lie within [0, 1], as if already normalised; expected pixels of a "
		               "%dx%d image (--no-normalize takes them as they are)",
		               lx_feat_image_where(im, where, sizeof where), im->img_w, im->img_h);
	for (i = 0; i < n_keep; i++)
		for (k = 0; k < 4; k++) {
			float b = im->boxes[4 * i + k];
			float v = normalized ? b : b / div[k];
			if (!(v > lo && v < hi) && normalized)
				return lx_errf(e, LX_EINPUT,
				               "%s: box %d %s is %.9g, outside [0, 1] (the boxes were taken as normalised "
				               "already)", lx_feat_image_where(im, where, sizeof where), i, coord[k], (double)b);
			if (!(v > lo && v < hi))
				return lx_errf(e, LX_EINPUT,
				               "%s: box %d %s is %.9g pixels, outside [0, 1] after normalisation (image %dx%d)",
				               lx_feat_image_where(im, where, sizeof where), i, coord[k], (double)b, im->img_w,
				               im->img_h);
			pos[4 * i + k] = v;
		}
	return LX_OK;
}

/* ---- file ids ---- */

void feat_file_id(const char *path, const char **id, size_t *len)
{
	const char *base = strrchr(path, '/');
	size_t n;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 4 && (strcmp(base + n - 4, ".npz") == 0 || strcmp(base + n - 4, ".npy") == 0))
		n -= 4;
	*id = base;
	*len = n;
}

lx_status feat_file_image(const lx_feat_file *f, lx_feat_image *im, lx_err *e)
{
	const char *id;
	size_t len;

	feat_file_id(f->path, &id, &len);
	if (!lx_feat_image_set_id(im, id, len))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	im->src = f->path;
	im->line = 0;
	im->is_record = 0;
	im->n = im->dim = 0;
	im->has_obj = im->has_attr = 0;
	return LX_OK;
}

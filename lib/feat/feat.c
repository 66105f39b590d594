/* feat.c - feature images, box normalisation, and opening a feature file of any layout. */
#include <errno.h>
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

/* ---- files ---- */

static int is_msgpack_map(int c) { return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf; }

/* Tells the layout from the first bytes without seeking, so that a pipe can be converted: a stream from its
 * first byte (pushed back), a TSV from its first line, which is kept for the first lx_feat_next. */
static lx_status detect(lx_feat_file *f, lx_err *e)
{
	int c = getc(f->f), fields = 1;
	ssize_t n;
	char *p, *end;

	if (c == EOF)
		return ferror(f->f) ? lx_errf(e, LX_EIO, "%s: %s", f->path, strerror(errno))
		                    : lx_errf(e, LX_EINPUT, "%s: empty file, expected region features", f->path);
	ungetc(c, f->f);
	if (is_msgpack_map(c)) {
		f->fmt = LX_FEAT_STREAM;
		return LX_OK;
	}
	if ((n = getline(&f->line, &f->line_cap, f->f)) < 0)
		return lx_errf(e, LX_EIO, "%s: %s", f->path, strerror(errno));
	if (n >= 4 && memcmp(f->line, "PK\3\4", 4) == 0) {
		f->fmt = LX_FEAT_NPZ;
		return LX_OK;
	}
	if (n >= 6 && memcmp(f->line, "\x93NUMPY", 6) == 0) {
		f->fmt = LX_FEAT_NPY;
		return LX_OK;
	}
	f->pending = n;
	for (p = f->line, end = f->line + n; (p = memchr(p, '\t', (size_t)(end - p))); p++)
		fields++;
	if (fields == 10)
		f->fmt = LX_FEAT_OBJ36;
	else if (fields == 6)
		f->fmt = LX_FEAT_BUTD;
	else
		return lx_errf(e, LX_EINPUT,
		               "%s: line 1 has %d tab-separated fields, expected 10 (obj36 TSV) or 6 (BUTD TSV); "
		               "not a .npz or a stream either",
		               f->path, fields);
	return LX_OK;
}

lx_status lx_feat_open(lx_feat_file **out, const char *path, lx_err *e)
{
	lx_feat_file *f = calloc(1, sizeof *f);
	lx_status st;

	*out = NULL;
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	}
	if (!(f->f = fopen(path, "rb"))) {
		st = lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
		lx_feat_free(f);
		return st;
	}
	setvbuf(f->f, NULL, _IOFBF, 1 << 16);
	if ((st = detect(f, e))) {
		lx_feat_free(f);
		return st;
	}
	*out = f;
	return LX_OK;
}

void lx_feat_free(lx_feat_file *f)
{
	if (!f)
		return;
	if (f->f)
		fclose(f->f);
	lx_reader_free(f->r);
	free(f->line);
	free(f->scratch);
	free(f->zbuf);
	free(f->path);
	free(f);
}

lx_feat_format lx_feat_file_format(const lx_feat_file *f) { return f->fmt; }
const char *lx_feat_file_path(const lx_feat_file *f) { return f->path; }

lx_status lx_feat_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e)
{
	lx_status st;

	*got = 0;
	switch (f->fmt) {
	case LX_FEAT_OBJ36:
	case LX_FEAT_BUTD:
		return feat_tsv_next(f, im, got, e);
	case LX_FEAT_STREAM:
		return feat_stream_next(f, im, got, e);
	case LX_FEAT_NPZ:
	case LX_FEAT_NPY:
		if (f->done)
			return LX_OK;
		if ((st = f->fmt == LX_FEAT_NPZ ? feat_npz_read(f, im, e) : feat_npy_read(f, im, e)))
			return st;
		f->done = *got = 1;
		return LX_OK;
	}
	return LX_OK;
}

void feat_npz_id(const char *path, const char **id, size_t *len)
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

lx_status lx_feat_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e)
{
	lx_feat_pos pos = {0, 0};
	const char *id;
	size_t len;

	switch (f->fmt) {
	case LX_FEAT_OBJ36:
	case LX_FEAT_BUTD:
		return feat_tsv_scan(f, fn, ctx, e);
	case LX_FEAT_STREAM:
		return feat_stream_scan(f, fn, ctx, e);
	case LX_FEAT_NPZ:
	case LX_FEAT_NPY:
		feat_npz_id(f->path, &id, &len);
		return fn(ctx, id, len, pos, e);
	}
	return LX_OK;
}

lx_status lx_feat_read_at(lx_feat_file *f, lx_feat_pos pos, lx_feat_image *im, lx_err *e)
{
	lx_status st = LX_OK;
	int got = 0;

	switch (f->fmt) {
	case LX_FEAT_OBJ36:
	case LX_FEAT_BUTD:
		if (fseeko(f->f, (off_t)pos.off, SEEK_SET))
			return lx_errf(e, LX_EIO, "%s: cannot seek to byte %llu: %s", f->path,
			               (unsigned long long)pos.off, strerror(errno));
		f->off = pos.off;
		f->lineno = pos.line - 1;
		f->pending = 0;
		st = feat_tsv_next(f, im, &got, e);
		break;
	case LX_FEAT_STREAM:
		if ((st = feat_stream_seek(f, pos, e)))
			return st;
		st = feat_stream_next(f, im, &got, e);
		break;
	case LX_FEAT_NPZ:
	case LX_FEAT_NPY:
		f->done = 1;
		return f->fmt == LX_FEAT_NPZ ? feat_npz_read(f, im, e) : feat_npy_read(f, im, e);
	}
	if (!st && !got)
		return lx_errf(e, LX_EINPUT, "%s: no image at byte %llu (line %ld): the file is shorter than its index",
		               f->path, (unsigned long long)pos.off, pos.line);
	return st;
}

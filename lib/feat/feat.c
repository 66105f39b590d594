/* feat.c - opening a feature file of any layout and reading it: tells the layout, then hands each call to
 * the reader of that layout (feat_tsv.c, feat_stream.c, feat_npz.c, feat_npy.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "feat/feat_impl.h"

/* ---- files ---- */

static int is_msgpack_map(int c) { return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf; }

/* Tells the layout from the first bytes without seeking, so that a pipe can be converted: a stream from its
 * first byte (pushed back), a TSV from its first line, which is kept for the first lx_feat_next. */
static lx_status detect(lx_feat_file *f, lx_err *e)
{
	int c = getc(f->f), fields = 1, over;
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
	if ((n = feat_tsv_getline(f)) == -1)
		return lx_errf(e, LX_EIO, "%s: %s", f->path, strerror(errno));
	if ((over = n == -2))  /* a line past the limit: its first bytes still tell a .npz or .npy */
		n = FEAT_TSV_MAX_LINE;
	if (n >= 4 && memcmp(f->line, "PK\3\4", 4) == 0) {
		f->fmt = LX_FEAT_NPZ;
		return LX_OK;
	}
	if (n >= 6 && memcmp(f->line, "\x93NUMPY", 6) == 0) {
		f->fmt = LX_FEAT_NPY;
		return LX_OK;
	}
	if (over)
		return lx_errf(e, LX_EINPUT, "%s: line 1: longer than %ld bytes, the limit of a TSV line", f->path,
		               FEAT_TSV_MAX_LINE);
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
		feat_file_id(f->path, &id, &len);
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

/* feat_impl.h - private to lib/feat*.c: the state of an open feature file and the per-layout readers. */
#ifndef FEAT_IMPL_H
#define FEAT_IMPL_H

#include <sys/types.h>

#include "lx_feat.h"

struct lx_feat_file {
	char *path;
	lx_feat_format fmt;
	FILE *f;
	long lineno;          /* lines (TSV) or records (stream) read so far */
	uint64_t off;         /* byte offset of the next line (TSV) */
	char *line;           /* TSV: the current line */
	size_t line_cap;
	ssize_t pending;      /* TSV: length of line 1, read to tell the layout and not yet returned; else 0 */
	unsigned char *scratch; /* TSV: int64 arrays before conversion; npz: one member */
	size_t scratch_cap;
	unsigned char *zbuf;  /* npz: compressed bytes of one member */
	size_t zbuf_cap;
	int done;             /* npz: the one image was read */
	lx_reader *r;         /* stream */
};

lx_status feat_tsv_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);
lx_status feat_tsv_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);
lx_status feat_npz_read(lx_feat_file *f, lx_feat_image *im, lx_err *e);
lx_status feat_stream_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);
lx_status feat_stream_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);
lx_status feat_stream_seek(lx_feat_file *f, lx_feat_pos pos, lx_err *e);

/* Grows *buf to at least n bytes; 0 when out of memory. */
int feat_grow(void *buf, size_t *cap, size_t n);
/* The img_id of a .npz: its file name without directory and ".npz". */
void feat_npz_id(const char *path, const char **id, size_t *len);

#endif

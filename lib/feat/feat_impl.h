/* feat_impl.h - private to lib/feat/: the state of an open feature file, and the files below the dispatcher
 * (feat.c) in the order they depend on each other, each only on those before it:
 *   image.c                the image record and the helpers every reader shares
 *   feat_pickle.c          numpy's pickle rules and the image in a pickled dict
 *   feat_tsv.c, feat_stream.c, feat_npz.c, feat_npy.c   one reader a layout
 * featindex.c sits on top of feat.c. */
#ifndef FEAT_IMPL_H
#define FEAT_IMPL_H

#include <sys/types.h>

#include "lx_feat.h"
#include "fmt/pickle.h"

/* Feature files hold little-endian arrays, copied as they are. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "liblx's feature readers assume a little-endian host"
#endif

struct lx_feat_file {
	char *path;
	lx_feat_format fmt;
	FILE *f;
	long lineno;          /* lines (TSV) or records (stream) read so far */
	uint64_t off;         /* byte offset of the next line (TSV) */
	char *line;           /* TSV: the current line */
	size_t line_cap;
	ssize_t pending;      /* TSV: length of line 1, read to tell the layout and not yet returned; else 0 */
	unsigned char *scratch; /* TSV: int64 arrays before conversion; npz: one member; npy: the file */
	size_t scratch_cap;
	unsigned char *zbuf;  /* npy: the FILE_info.npy beside MMF features */
	size_t zbuf_cap;
	int done;             /* npz: the one image was read */
	lx_reader *r;         /* stream */
};

/* ---- image.c ---- */

/* Grows *buf to at least n bytes; 0 when out of memory. */
int feat_grow(void *buf, size_t *cap, size_t n);
/* The img_id of a .npz or .npy: its file name without directory and ".npz" or ".npy". */
void feat_file_id(const char *path, const char **id, size_t *len);
/* Starts im as the one image of a .npz or .npy file: its id from the file name, nothing read yet. */
lx_status feat_file_image(const lx_feat_file *f, lx_feat_image *im, lx_err *e);

/* ---- feat_pickle.c: the part of pickle np.save uses for dicts ---- */

/* What feat_pickle.c's rules make of numpy's constructors: lx_pk.kind of an LX_PK_OBJ. A DTYPE: t.dtype and
 * flags; an ARRAY: t (numbers: data inside the pickle's values), flags, and for an object array its items. */
enum { NP_DTYPE = 1, NP_ARRAY };
enum { NP_OBJECT = 1, NP_BIG = 2 }; /* flags: dtype object, big-endian */
int feat_pk_is(const lx_pk *o, int kind);

/* Runs the pickle data[0..n) with numpy's rules (nothing is called) into *pk, freed by the caller with
 * lx_pickle_free even on error. */
lx_status feat_unpickle(const void *data, size_t n, const char *where, lx_pickle **pk, lx_pk **out, lx_err *e);

/* The image in a dict (from a pickled .npy, or a .npz's info): keys x, bbox, num_bbox, image_h, image_w or
 * MMF's features, boxes/bbox, num_boxes, image_height, image_width; x may be given apart (feats not NULL). */
lx_status feat_dict_image(const lx_pk *dict, const lx_tensor *feats, lx_feat_image *im, const char *where,
                          lx_err *e);
/* Optional ids from a dict: objects_id/objects_conf, attrs_id/attrs_conf. */
lx_status feat_dict_ids(const lx_pk *dict, lx_feat_image *im, const char *where, lx_err *e);

/* ---- the readers, called by feat.c ---- */

/* The longest line a TSV may have, without its line end: 96 MiB, beyond the longest a valid obj36 line at the
 * limits can be (4096 boxes of 4096 float32 features, 4/3 of 64 MiB in base64, with the boxes, ids and
 * confidences: 89.7 MB; lx-limits(7)). */
#define FEAT_TSV_MAX_LINE (96L << 20)
/* Reads the next line of f->f into f->line (with its '\n', NUL-terminated): its length, 0 at the end of the
 * file, -1 on a read error (errno), -2 for a line longer than FEAT_TSV_MAX_LINE (f->line holds its first
 * FEAT_TSV_MAX_LINE bytes; the rest of it is read and dropped, so that the next call reads the next line). */
ssize_t feat_tsv_getline(lx_feat_file *f);
lx_status feat_tsv_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);
lx_status feat_tsv_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);
lx_status feat_stream_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);
lx_status feat_stream_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);
lx_status feat_stream_seek(lx_feat_file *f, lx_feat_pos pos, lx_err *e);
lx_status feat_npz_read(lx_feat_file *f, lx_feat_image *im, lx_err *e);
lx_status feat_npy_read(lx_feat_file *f, lx_feat_image *im, lx_err *e);

#endif

/* feat_impl.h - private to lib/feat*.c: the state of an open feature file and the per-layout readers. */
#ifndef FEAT_IMPL_H
#define FEAT_IMPL_H

#include <sys/types.h>

#include "lx_feat.h"

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

lx_status feat_tsv_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);
lx_status feat_tsv_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);
lx_status feat_npz_read(lx_feat_file *f, lx_feat_image *im, lx_err *e);
lx_status feat_stream_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);
lx_status feat_stream_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);
lx_status feat_stream_seek(lx_feat_file *f, lx_feat_pos pos, lx_err *e);

/* ---- .npy and the part of pickle np.save uses for dicts (feat_npz.c, feat_npy.c, feat_pickle.c) ---- */

typedef enum {
	PK_MARK, PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL,
	PK_DTYPE, PK_ARRAY
} pk_type;

typedef struct pk_obj {
	pk_type t;
	int64_t i;              /* INT, BOOL */
	double f;               /* FLOAT */
	const char *s;          /* STR, BYTES (into the pickle), GLOBAL ("module.name") */
	size_t len;
	struct pk_obj **items;  /* TUPLE, LIST, DICT (key, value, key, value, ...), object ARRAY */
	size_t n, cap;
	lx_dtype dtype;         /* DTYPE */
	int is_object;          /* DTYPE, ARRAY: dtype object */
	int big_endian;         /* DTYPE */
	lx_tensor tensor;       /* ARRAY of numbers: data points into the pickle */
} pk_obj;

/* Runs the pickle data[0..n) into objects allocated in z (numpy arrays, dtypes, scalars and Python's plain
 * types only; nothing is called). */
lx_status feat_unpickle(const void *data, size_t n, msgpack_zone *z, const char *where, pk_obj **out, lx_err *e);
/* The value under a string key of a dict, or NULL. */
const pk_obj *feat_pk_get(const pk_obj *dict, const char *key);

/* The image in a dict (from a pickled .npy, or a .npz's info): keys x, bbox, num_bbox, image_h, image_w or
 * MMF's features, boxes/bbox, num_boxes, image_height, image_width; x may be given apart (feats not NULL). */
lx_status feat_dict_image(const pk_obj *dict, const lx_tensor *feats, lx_feat_image *im, const char *where,
                          lx_err *e);
/* Optional ids from a dict: objects_id/objects_conf, attrs_id/attrs_conf. */
lx_status feat_dict_ids(const pk_obj *dict, lx_feat_image *im, const char *where, lx_err *e);
lx_status feat_npy_read(lx_feat_file *f, lx_feat_image *im, lx_err *e);

/* Grows *buf to at least n bytes; 0 when out of memory. */
int feat_grow(void *buf, size_t *cap, size_t n);
/* The img_id of a .npz or .npy: its file name without directory and ".npz" or ".npy". */
void feat_npz_id(const char *path, const char **id, size_t *len);

#endif

/*
 * lx_feat.h - region-feature files: readers for the layouts detectors write, the index that finds an
 * image in them without reading the whole file, and the normalisation of boxes LXMERT expects.
 *
 * Layouts (formats/, lx-obj36-tsv(5), lx-butd-tsv(5), lx-feat-npz(5), lx-featidx(5), lx-stream(5)):
 *   LX_FEAT_OBJ36   the authors' obj36 TSV (10 fields, base64 arrays, one image a line)
 *   LX_FEAT_BUTD    the bottom-up-attention Caffe TSV (6 fields: image_id, image_w, image_h, ...)
 *   LX_FEAT_NPZ     one image a .npz (x, bbox, num_bbox, image_h, image_w), stored or deflated
 *   LX_FEAT_STREAM  a stream of records written by lx-featpack (img_id, img_h, img_w, boxes, ...)
 *   LX_FEAT_NPY     one image a .npy: np.save of a dict (x, bbox, num_bbox, image_h, image_w), or MMF's
 *                   features .npy beside its FILE_info.npy dict
 *
 * Ownership follows lx_core.h: lx_feat_open/lx_feat_free, lx_feat_index_new/lx_feat_index_free,
 * lx_feat_image_init/lx_feat_image_destroy. Every reader streams: it holds one image (one line or record)
 * at a time, never the whole file.
 */
#ifndef LX_FEAT_H
#define LX_FEAT_H

#include "lx_core.h"
#include "lx_fmt.h"

typedef enum { LX_FEAT_OBJ36, LX_FEAT_BUTD, LX_FEAT_NPZ, LX_FEAT_STREAM, LX_FEAT_NPY } lx_feat_format;

/* "obj36", "butd", "npz", "stream", "npy". */
const char *lx_feat_format_name(lx_feat_format f);

/* The most boxes and features per box of one image, in every reader: an image takes at most
 * LX_FEAT_MAX_BOXES * LX_FEAT_MAX_DIM * 4 bytes (64 MiB) of features (lx-limits(7)). A file that declares
 * more is refused (LX_EINPUT) before its arrays are read or inflated. */
#define LX_FEAT_MAX_BOXES 4096
#define LX_FEAT_MAX_DIM 4096

/* One image's boxes and features. The arrays are owned by the struct and grown as needed, so that reading
 * image after image into the same struct stops allocating once the largest image has been seen. */
typedef struct {
	char *img_id;          /* NUL-terminated */
	int img_h, img_w;      /* pixels */
	int n;                 /* boxes */
	int dim;               /* feature size F */
	float *boxes;          /* [n, 4] x1, y1, x2, y2 as in the file (pixels unless the file is normalised) */
	float *feats;          /* [n, F] */
	int has_obj, has_attr; /* obj_ids/obj_conf, attr_ids/attr_conf hold values */
	int32_t *obj_ids;      /* [n] */
	float *obj_conf;       /* [n] */
	int32_t *attr_ids;     /* [n] */
	float *attr_conf;      /* [n] */
	const char *src;       /* the file it came from (owned by the lx_feat_file) */
	long line;             /* its line (TSV) or record (stream) number, from 1; 0 for a .npz */
	int is_record;         /* line counts records (a stream), not lines */

	size_t id_cap, n_cap, f_cap;
} lx_feat_image;

void lx_feat_image_init(lx_feat_image *im);
void lx_feat_image_destroy(lx_feat_image *im);
/* Makes room for n boxes of dim features; returns 0 when out of memory. */
int lx_feat_image_reserve(lx_feat_image *im, int n, int dim);
/* Copies id (len bytes) into im->img_id; returns 0 when out of memory. */
int lx_feat_image_set_id(lx_feat_image *im, const char *id, size_t len);
/* "FILE: line L (img_id X)" or "FILE (img_id X)" for messages, into buf (returned). */
const char *lx_feat_image_where(const lx_feat_image *im, char *buf, size_t n);

/* Boxes to visual_pos [n_keep, 4]: x1/w, y1/h, x2/w, y2/h, divided in float32 as the authors' numpy code
 * does (boxes[:, (0, 2)] /= w on a float32 array). With normalized set the boxes are taken as they are.
 * Either way every value must lie strictly between -1e-5 and 1 + 1e-5 (the authors' two
 * assert_array_less); without normalized, boxes that all lie in [0, 1] on an image larger than 2 pixels are
 * refused as already normalised. LX_EINPUT names the image, box and coordinate. */
lx_status lx_feat_normalize(const lx_feat_image *im, int n_keep, int normalized, float *pos, lx_err *e);

/* ---- one file ---- */

typedef struct lx_feat_file lx_feat_file;

/* Opens path and detects its layout from its first bytes (PK: npz; \x93NUMPY: npy; a msgpack map: stream;
 * a TSV line of 10 fields: obj36, of 6: butd). */
lx_status lx_feat_open(lx_feat_file **out, const char *path, lx_err *e);
void lx_feat_free(lx_feat_file *f);
lx_feat_format lx_feat_file_format(const lx_feat_file *f);
const char *lx_feat_file_path(const lx_feat_file *f);

/* Reads the next image into im: LX_OK with *got = 1, LX_OK with *got = 0 at the end of the file, or an
 * error naming the file and line. A .npz or .npy holds one image, its img_id the file name without
 * ".npz"/".npy". */
lx_status lx_feat_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e);

/* Where an image starts, for the index: a byte offset and its line (or record) number. */
typedef struct {
	uint64_t off;
	long line;
} lx_feat_pos;

/* Calls fn(ctx, id, len, pos) for every image of the file, in order, reading only what it needs to find the
 * ids (TSV: the first field of each line). A non-zero return from fn stops the scan with that status. */
typedef lx_status (*lx_feat_scan_fn)(void *ctx, const char *id, size_t len, lx_feat_pos pos, lx_err *e);
lx_status lx_feat_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e);

/* Reads the image that starts at pos (from lx_feat_scan) into im. After it, lx_feat_next reads the image
 * that follows. */
lx_status lx_feat_read_at(lx_feat_file *f, lx_feat_pos pos, lx_feat_image *im, lx_err *e);

/* ---- the index: img_id -> file and position, over several files ---- */

typedef struct lx_feat_index lx_feat_index;

enum {
	LX_FEAT_INDEX_FILE = 1,    /* keep an index file for each TSV or stream file (FILE.lxidx): read it, or
	                              build it and write it */
	LX_FEAT_INDEX_REBUILD = 2, /* with LX_FEAT_INDEX_FILE: rebuild the index and write it, whatever is there */
	LX_FEAT_INDEX_STRICT = 4   /* with LX_FEAT_INDEX_FILE: an index that does not match its file is an error
	                              (LX_EMODEL), not rebuilt */
};

lx_feat_index *lx_feat_index_new(int flags, int cache_size);
void lx_feat_index_free(lx_feat_index *ix);
/* Adds a feature file (or a .npz or .npy: one image named after the file, not opened until needed). An
 * img_id already added from any file is an error naming both places.
 * With LX_FEAT_INDEX_FILE, a TSV or stream file's index is read from FILE.lxidx (lx-featidx(5)) if it is
 * there and matches the file (its size and modification time, lines whole, entries in order, as many as
 * its header says); an image later found elsewhere than where the index says also shows it does not match.
 * An index that does not match is rebuilt by reading the file (LX_EMODEL instead with
 * LX_FEAT_INDEX_STRICT), and a built index is written (lx_write_atomic, under lx_lock_take's lock). The
 * index is a cache: when it cannot be written (read-only directory, full disk, another process writing it)
 * it is kept in memory and the run goes on. What was rebuilt or could not be written is told by
 * lx_feat_index_note. */
lx_status lx_feat_index_add(lx_feat_index *ix, const char *path, lx_err *e);
/* lx_feat_index_add with the index file at index_path (NULL: path.lxidx). */
lx_status lx_feat_index_add_file(lx_feat_index *ix, const char *path, const char *index_path, lx_err *e);
/* One line on what the index did that its user should hear of (an index rebuilt, or kept in memory), since
 * the last call; NULL if nothing. It stays valid until the next call. */
const char *lx_feat_index_note(lx_feat_index *ix);
/* Number of images indexed. */
long lx_feat_index_count(const lx_feat_index *ix);
/* Finds img_id and decodes its image; *im points into the index's cache of recently used images and stays
 * valid until the next lx_feat_index_get. An id not indexed: LX_EINPUT with *im NULL. */
lx_status lx_feat_index_get(lx_feat_index *ix, const char *id, size_t len, const lx_feat_image **im,
                            lx_err *e);
/* Cache hits and misses so far. */
void lx_feat_index_stats(const lx_feat_index *ix, long *hits, long *misses);

#endif

/*
 * lx_attn.h - looking at attention maps: head means, attention rollout, and the pictures
 * lx-attnviz(1) draws (a grid of heatmaps, boxes over an image).
 *
 * Ownership follows lx_core.h. An lx_attn is a view: it does not own p. Pictures are new lx_images freed with
 * lx_image_free. Label arrays are borrowed for the duration of a call.
 */
#ifndef LX_ATTN_H
#define LX_ATTN_H

#include "lx_core.h"
#include "lx_fmt.h"
#include "lx_image.h"
#include "lx_font.h"
#include "lx_names.h"

/* Attention probabilities [layers, heads, q, k]: query rows over key columns, each row summing to 1. */
typedef struct {
	int layers, heads, q, k;
	const float *p;
} lx_attn;

/* out[q, k] = the mean over heads of layer `layer`. */
void lx_attn_head_mean(const lx_attn *a, int layer, float *out);

/*
 * Attention rollout (Abnar & Zuidema 2020) through a stack of square maps on one side: maps[0]'s layers in
 * order, then maps[1]'s, ... For each layer, B = (mean over heads of A + I) / 2 with each row divided by its
 * sum, and the rollout is R = B_last ... B_2 B_1 (R[i, j]: how much of position j reaches position i's
 * output through the residual and attention paths). out is [q, q]; scratch holds 3 q*q floats. Every map
 * must be square with the same q (LX_EINPUT otherwise).
 */
lx_status lx_attn_rollout(const lx_attn *maps, int n, float *out, float *scratch, lx_err *e);

/* The colour scale of the pictures and the page: from 0 to 1 (fixed), to the largest value of the map shown
 * (map: the largest of the picture, or of the panel on the page), or to the largest of each query's row
 * (row: every row gets the whole scale). */
enum { LX_SCALE_MAP, LX_SCALE_FIXED, LX_SCALE_ROW };

/* What a heatmap grid shows. */
typedef struct {
	const char *title;             /* first line above the grid */
	const char *layer_name;        /* row headers: "<layer_name> <i>" */
	const char *const *qlab;       /* [q] query labels (rows) */
	const char *const *klab;       /* [k] key labels (columns) */
	int cell;                      /* pixels per entry; 0 picks one from q and k */
	int mean_column;               /* add a column with the mean over heads */
	int single;                    /* one panel (heads == 1) with no head header */
	int scale;                     /* LX_SCALE_* */
} lx_grid_spec;

/* A grid of heatmaps, layers down and heads across, one colour scale (drawn as a bar on the right) from 0 to
 * the largest value shown, to 1, or to each row's largest, as s->scale says. */
lx_status lx_attn_grid(lx_image **out, const lx_attn *a, const lx_grid_spec *s, lx_font *f, lx_err *e);

/* Boxes outlined over a picture in proportion to weights w, the photo left as it is inside and out: each
 * box, weakest first, framed in the colour of v (w[i] / max(w), or w[i] itself with scale LX_SCALE_FIXED),
 * 1 + 2v pixels thick; the `top` strongest framed again on top and labelled with their label and weight in
 * percent; a caption strip above the picture holds `title` (up to two lines split at '\n') and the colour
 * scale. boxes are [n, 4] (x1, y1, x2, y2) in the picture's pixels. */
lx_status lx_attn_boxes(lx_image **out, const lx_image *picture, const float *boxes, const float *w, int n,
                        const char *const *labels, int top, int scale, const char *title, lx_font *f, lx_err *e);

/* ---- the page ---- */

/* One kind of map on the page: its short key (used in file names and in the page's URL hash), a name for
 * people, the name of its layers, which side its queries and keys are on ('t' words, 'v' boxes). */
typedef struct {
	const char *key, *name, *layer_name;
	char q, k;
	lx_attn a;
} lx_page_kind;

/* Everything one record's page shows. Strings are UTF-8; NULL where absent. */
typedef struct {
	const char *id;                 /* the record's name (title, file names) */
	long record;                    /* 1-based number in the stream */
	const char *sent;               /* the sentence, if the record has one */
	int T, N;
	const char *const *tokens;      /* [T] word labels */
	const char *const *box_labels;  /* [N] box labels */
	const float *boxes;             /* [N, 4] x1, y1, x2, y2 in the picture's pixels */
	const char *picture_b64;        /* the picture under the boxes: a PNG (or JPEG) file in base64 */
	int picture_jpeg;               /* picture_b64 is a JPEG file */
	int pic_w, pic_h;
	const char *picture_note;       /* where the picture comes from, for people */
	int nanswers;
	const char *const *answers;     /* [nanswers], best first */
	const float *scores;            /* [nanswers] */
	int nkinds;
	const lx_page_kind *kinds;
	const char *start_kind;         /* what the page shows first */
	int start_layer, start_head;    /* start_head -1: the mean over heads */
	int start_token;
	const char *files;              /* the prefix of the record's other files, for links */
	int npy, png;                   /* FILES.KIND.npy and FILES.KIND.png were written for each kind */
	int scale;                      /* LX_SCALE_* */
	/* relevance maps (lx-explain(1)), shown beside the attention when rel_words is not NULL */
	const float *rel_words;         /* [T] relevance of each word for the answer */
	const float *rel_boxes;         /* [N] relevance of each box */
	long rel_answer;                /* the answer explained: its index */
	const char *rel_answer_name;    /* and its name, NULL when the record does not say */
	const char *rel_picture_b64;    /* the boxes coloured by relevance over the picture: a PNG in base64 */
	int rel_w, rel_h;
} lx_page;

/* Writes the record's page: one self-contained HTML file (the data as JSON in a script element, the maps in
 * it as base64 uint16, the picture as a data: URI, plain JavaScript; nothing fetched). LX_EIO if writing
 * fails. */
lx_status lx_page_write(FILE *f, const lx_page *p, const char *path, lx_err *e);

/* s as text for HTML element content and attribute values ('<', '>', '&' and '"' escaped); nothing for NULL. */
void lx_html_text(FILE *f, const char *s);

/* ---- records to views ---- */

/* The maps a view holds, in this order: the six of lx-encode --attentions, then the two rollouts. */
enum {
	LX_VIEW_MAPS = 6, LX_VIEW_KINDS = 8,
	LX_VIEW_LANG = 0, LX_VIEW_VISN, LX_VIEW_CROSS, LX_VIEW_XVISN, LX_VIEW_XLSELF, LX_VIEW_XVSELF,
	LX_VIEW_RLANG, LX_VIEW_RVISN
};
#define LX_VIEW_ANSWERS 5

/* One record of lx-encode --attentions (formats/attnviz.md), decoded and checked for the pictures and the
 * page. Start from a zeroed struct; the map buffers are kept from record to record (lx_view_clear frees the
 * rest), lx_view_destroy frees everything. Strings are UTF-8, NUL-terminated. */
typedef struct {
	int T, N, heads;                /* words, boxes, heads: from language_attentions and vision_attentions */
	lx_page_kind kind[LX_VIEW_KINDS]; /* each map with its key, name, layer name and sides */
	char **tok, **lab;              /* [T] word labels ("tokens", else input_ids, else "word i"); [N] box
	                                 * labels ("#i name" with "objects" or with "obj_ids" and the names of
	                                 * objects, else "#i") */
	char *sent;                     /* "sent", or NULL */
	int nans;                       /* up to LX_VIEW_ANSWERS of "answers", best first */
	char *ans[LX_VIEW_ANSWERS];     /* "answer", else the name at "index" in answers, else "#index" */
	float score[LX_VIEW_ANSWERS];
	long ans_index[LX_VIEW_ANSWERS]; /* their "index", -1 where absent */
	const float *rel_words, *rel_boxes; /* relevance_words [T] and relevance_boxes [N], or NULL */
	long rel_answer;                /* relevance_answer, -1 when absent */
	char img_id[256];               /* "img_id", or "" */
	lx_image *picture;              /* after lx_view_picture: the photo or a blank canvas */
	int photo;                      /* picture is a photo (not the canvas) */
	long long max_pixels;           /* set by the caller: the most pixels of a photo (lx_image_read; 0 takes
	                                 * LX_IMAGE_MAX_PIXELS) */
	float *boxes;                   /* [N, 4] in the picture's pixels */
	char note[4700];                /* where the picture comes from, for people */
	const lx_names *objects;        /* set by the caller (borrowed, kept by lx_view_clear), or NULL: the names
	                                 * of obj_ids (a Visual Genome objects_vocab.txt) */
	const lx_names *answers;        /* the same for answers that have an index but no name */
	float *buf[LX_VIEW_KINDS + 2], *scratch; /* the maps (and the relevance rows) as float32 */
	size_t cap[LX_VIEW_KINDS + 2], scratch_cap;
} lx_view;

/* Decodes rec into v: the six maps (float tensors [layers, heads, q, k] with one T, one N, one number of
 * heads and of cross layers), the labels, the sentence and answers, the relevance rows when the record has
 * them, and the two rollouts. LX_EINPUT names the field; LX_EIO when memory runs out. */
lx_status lx_view_decode(lx_view *v, const lx_record *rec, lx_err *e);

/* The picture under the boxes, after lx_view_decode: the photo named by img_id in the folder images (NULL:
 * none; .jpg, .jpeg, .png or their capitals), scaled to at most max_side, else a blank canvas of the image's
 * size (img_w, img_h) or 640x480; the boxes in its pixels from "boxes" scaled by img_w and img_h when the
 * record has both, else from "visual_pos". */
lx_status lx_view_picture(lx_view *v, const lx_record *rec, const char *images, int max_side, lx_err *e);

/* The short key of kind k (0 <= k < LX_VIEW_KINDS): "lang", "vision", "cross", ... */
const char *lx_view_key(int k);

/* Frees what lx_view_decode and lx_view_picture made for one record, keeping the map buffers. */
void lx_view_clear(lx_view *v);
void lx_view_destroy(lx_view *v);

#endif

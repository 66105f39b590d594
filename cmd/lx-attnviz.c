/* lx-attnviz - every attention map of lx-encode --attentions as pictures, NPY files and a page (lx-attnviz(1)). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx.h"
#include "lx_attn.h"
#include "lx_image.h"
#include "tool.h"

#define DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

enum { O_IMAGES = 256, O_TOKEN, O_LAYER, O_HEAD, O_FONT, O_CELL, O_MAX_SIDE, O_TOP };

static const char synopsis[] = "-o DIR [options]";
static const char about[] =
	"Reads records of lx-encode --attentions on stdin and writes, per record, heatmap pictures of every\n"
	"attention map, the boxes weighted by one word's attention, the maps as .npy files and an HTML page\n"
	"into DIR, with DIR/index.html linking them. See lx-attnviz(1).";

static const tool_option option_table[] = {
	{'o', "output", "DIR", "the folder to write into"},
	{O_IMAGES, "images", "DIR", "where the photos are, named by img_id"},
	{O_TOKEN, "token", "I", "the word whose attention over the boxes is drawn (0)"},
	{O_LAYER, "layer", "L", "the cross layer of the boxes picture (the last)"},
	{O_HEAD, "head", "H|mean", "one head instead of the mean over heads"},
	{O_FONT, "font", "FILE", "a TrueType or OpenType font for the pictures"},
	{O_CELL, "cell", "PX", "pixels per entry in the heatmaps (1 to 64)"},
	{O_MAX_SIDE, "max-side", "PX", "the longest side of the boxes picture (640)"},
	{O_TOP, "top", "K", "the strongest boxes framed and labelled (5)"},
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-attnviz", synopsis, about, option_table};


/* The maps: the six lx-encode writes, then the two rollouts computed here. */
typedef struct {
	const char *field, *key, *name, *layer_name;
	char q, k;
} kind_def;

enum { NMAPS = 6, NKINDS = 8, K_LANG = 0, K_VISN, K_CROSS, K_XVISN, K_XLSELF, K_XVSELF, K_RLANG, K_RVISN };

static const kind_def kinds[NKINDS] = {
	{"language_attentions", "lang", "language self-attention", "language layer", 't', 't'},
	{"vision_attentions", "vision", "vision self-attention (object relations)", "vision layer", 'v', 'v'},
	{"cross_encoder_attentions", "cross", "cross-attention, words over boxes", "cross layer", 't', 'v'},
	{"cross_encoder_vision_attentions", "cross-vision", "cross-attention, boxes over words", "cross layer", 'v', 't'},
	{"cross_encoder_language_self_attentions", "cross-lang-self", "cross layers' language self-attention",
	 "cross layer", 't', 't'},
	{"cross_encoder_vision_self_attentions", "cross-vision-self", "cross layers' vision self-attention",
	 "cross layer", 'v', 'v'},
	{NULL, "rollout-lang", "attention rollout, words (language then cross layers)", "", 't', 't'},
	{NULL, "rollout-vision", "attention rollout, boxes (vision then cross layers)", "", 'v', 'v'},
};

typedef struct {
	char *stem, *sent, *answer;
	float score;
	int has_answer;
} entry;

/* The run: options, the font, buffers kept from record to record, and the records written so far. */
typedef struct {
	const char *out, *images, *font_path;
	int token, layer, head, cell, max_side, top;
	lx_font *font;
	float *map[NKINDS];
	size_t cap[NKINDS];
	float *scratch;
	size_t scratch_cap;
	entry *done;
	size_t ndone, capdone;
} run;

/* One record, decoded and checked. */
typedef struct {
	int T, N, heads;
	lx_attn a[NKINDS];
	char **tok, **lab;      /* [T], [N] */
	float *boxes;           /* [N, 4] in the picture's pixels */
	lx_image *picture;
	char note[4700];
	char *sent;
	int nans;
	char *ans[5];
	float score[5];
	char img_id[256];
} view;

static void *grow(float **p, size_t *cap, size_t n)
{
	if (n > *cap) {
		float *q = realloc(*p, n * sizeof *q);
		if (!q)
			return NULL;
		*p = q;
		*cap = n;
	}
	return *p;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static void view_free(view *v)
{
	int i;

	for (i = 0; v->tok && i < v->T; i++)
		free(v->tok[i]);
	for (i = 0; v->lab && i < v->N; i++)
		free(v->lab[i]);
	for (i = 0; i < v->nans; i++)
		free(v->ans[i]);
	free(v->tok);
	free(v->lab);
	free(v->boxes);
	free(v->sent);
	lx_image_free(v->picture);
	memset(v, 0, sizeof *v);
}

/* ---- decoding ---- */

static lx_status decode_map(run *r, const lx_record *rec, int k, view *v, lx_err *e)
{
	lx_tensor t;
	int present;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, kinds[k].field, &t, &present, e)))
		return rc;
	if (!present)
		return lx_errf(e, LX_EINPUT, "no field %s: make the records with lx-encode --attentions", kinds[k].field);
	if (t.ndim != 4 || !lx_dtype_is_float(t.dtype))
		return lx_errf(e, LX_EINPUT, "field %s: a %s tensor of rank %d, expected float [layers, heads, %c, %c]",
		               kinds[k].field, lx_dtype_numpy(t.dtype), t.ndim, kinds[k].q == 't' ? 'T' : 'N',
		               kinds[k].k == 't' ? 'T' : 'N');
	if (t.shape[0] < 1 || t.shape[1] < 1 || t.shape[2] < 1 || t.shape[3] < 1 || t.shape[2] > 4096 ||
	    t.shape[3] > 4096 || t.shape[0] > 256 || t.shape[1] > 256)
		return lx_errf(e, LX_EINPUT, "field %s: shape [%lld, %lld, %lld, %lld] is empty or too large",
		               kinds[k].field, (long long)t.shape[0], (long long)t.shape[1], (long long)t.shape[2],
		               (long long)t.shape[3]);
	if (!grow(&r->map[k], &r->cap[k], (size_t)t.numel))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_tensor_to_f32(&t, r->map[k], kinds[k].field, e)))
		return rc;
	v->a[k] = (lx_attn){(int)t.shape[0], (int)t.shape[1], (int)t.shape[2], (int)t.shape[3], r->map[k]};
	return LX_OK;
}

/* Every map's shape agrees with T (the words of language_attentions), N (the boxes of vision_attentions),
 * the heads of language_attentions and one number of cross layers. */
static lx_status check_shapes(view *v, lx_err *e)
{
	int k;

	v->T = v->a[K_LANG].q;
	v->N = v->a[K_VISN].q;
	v->heads = v->a[K_LANG].heads;
	for (k = 0; k < NMAPS; k++) {
		const lx_attn *a = &v->a[k];
		int q = kinds[k].q == 't' ? v->T : v->N, kk = kinds[k].k == 't' ? v->T : v->N;
		int layers = k >= K_CROSS ? v->a[K_CROSS].layers : a->layers;
		if (a->heads != v->heads || a->q != q || a->k != kk || a->layers != layers)
			return lx_errf(e, LX_EINPUT,
			               "field %s: shape [%d, %d, %d, %d], expected [%d, %d, %d, %d] to match the other maps "
			               "(T = %d words, N = %d boxes, %d heads)",
			               kinds[k].field, a->layers, a->heads, a->q, a->k, layers, v->heads, q, kk, v->T, v->N,
			               v->heads);
	}
	return LX_OK;
}

static int is_str(const msgpack_object *o) { return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN; }

static int number(const msgpack_object *o, double *d)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *d = (double)o->via.u64; return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *d = (double)o->via.i64; return 1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *d = o->via.f64; return 1;
	default: return 0;
	}
}

/* A list of n strings from an optional field: NULL if absent, an error if it is not n strings. */
static lx_status strings(const lx_record *rec, const char *key, int n, const char *what, char ***out, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, key);
	uint32_t i;

	*out = NULL;
	if (!o)
		return LX_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return lx_errf(e, LX_EINPUT, "field %s: expected an array of %d strings", key, n);
	if (o->via.array.size != (uint32_t)n)
		return lx_errf(e, LX_EINPUT, "field %s: %u %s, but the attention maps have %d", key, o->via.array.size,
		               what, n);
	if (!(*out = calloc((size_t)n, sizeof **out)))
		return lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; i < o->via.array.size; i++) {
		const msgpack_object *s = &o->via.array.ptr[i];
		if (!is_str(s))
			return lx_errf(e, LX_EINPUT, "field %s: item %u is not a string", key, i);
		if (!((*out)[i] = dup_n(s->via.str.ptr, s->via.str.size)))
			return lx_errf(e, LX_EIO, "out of memory");
	}
	return LX_OK;
}

/* The record's input_ids as int32 in a new array, if it has T of them; NULL otherwise. */
static int32_t *token_ids(const lx_record *rec, int T)
{
	lx_tensor t;
	int present;
	int32_t *ids;
	lx_err ignored;

	if (lx_record_tensor(rec, "input_ids", &t, &present, &ignored) || !present || t.ndim != 1 || t.shape[0] != T ||
	    lx_dtype_is_float(t.dtype) || !(ids = malloc((size_t)T * sizeof *ids)))
		return NULL;
	if (lx_tensor_to_i32(&t, ids, "input_ids", &ignored)) {
		free(ids);
		return NULL;
	}
	return ids;
}

/* Word labels: `tokens`, else the ids of `input_ids`, else "word i". */
static lx_status word_labels(const lx_record *rec, view *v, lx_err *e)
{
	lx_status rc;
	int32_t *ids;
	int i;
	char buf[32];

	if ((rc = strings(rec, "tokens", v->T, "tokens", &v->tok, e)) || v->tok)
		return rc;
	if (!(v->tok = calloc((size_t)v->T, sizeof *v->tok)))
		return lx_errf(e, LX_EIO, "out of memory");
	ids = token_ids(rec, v->T);
	for (i = 0; i < v->T; i++) {
		if (ids)
			snprintf(buf, sizeof buf, "%d", (int)ids[i]);
		else
			snprintf(buf, sizeof buf, "word %d", i);
		if (!(v->tok[i] = dup_n(buf, strlen(buf)))) {
			free(ids);
			return lx_errf(e, LX_EIO, "out of memory");
		}
	}
	free(ids);
	return LX_OK;
}

/* Box labels: "#i name" with the names of `objects`, else "#i". */
static lx_status box_labels(const lx_record *rec, view *v, lx_err *e)
{
	char **names = NULL, buf[96];
	lx_status rc;
	int i;

	if ((rc = strings(rec, "objects", v->N, "object names", &names, e)))
		goto done;
	if (!(v->lab = calloc((size_t)v->N, sizeof *v->lab))) {
		rc = lx_errf(e, LX_EIO, "out of memory");
		goto done;
	}
	for (i = 0; i < v->N; i++) {
		if (names)
			snprintf(buf, sizeof buf, "#%d %s", i, names[i]);
		else
			snprintf(buf, sizeof buf, "#%d", i);
		if (!(v->lab[i] = dup_n(buf, strlen(buf)))) {
			rc = lx_errf(e, LX_EIO, "out of memory");
			goto done;
		}
	}
done:
	for (i = 0; names && i < v->N; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int positive_field(const lx_record *rec, const char *key, double *d)
{
	const msgpack_object *o = lx_record_get(rec, key);

	return o && number(o, d) && *d >= 1 && *d <= 100000;
}

/* The photo named by img_id in --images, if there: *found 0 when there is none. */
static lx_status find_photo(run *r, view *v, lx_image **photo, char *path, size_t n, lx_err *e)
{
	static const char *ext[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
	size_t i;

	*photo = NULL;
	if (!r->images || !*v->img_id || strchr(v->img_id, '/'))
		return LX_OK;
	for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		snprintf(path, n, "%s/%s%s", r->images, v->img_id, ext[i]);
		if (access(path, F_OK) == 0)
			return lx_image_load(photo, path, e);
	}
	return LX_OK;
}

/* The picture under the boxes (the photo or a blank canvas, longest side at most max_side) and the boxes in
 * its pixels: `boxes` scaled from the image's size when the record gives both, else `visual_pos`. */
static lx_status picture(run *r, const lx_record *rec, view *v, lx_err *e)
{
	lx_image *photo = NULL;
	lx_tensor bt, pt;
	int has_boxes = 0, has_pos = 0, i, pw, ph;
	double iw = 0, ih = 0, sw, sh, sc;
	char path[4400];
	lx_status rc;
	const msgpack_object *o = lx_record_get(rec, "img_id");

	if (o && is_str(o))
		snprintf(v->img_id, sizeof v->img_id, "%.*s", (int)o->via.str.size, o->via.str.ptr);
	if ((rc = lx_record_tensor(rec, "boxes", &bt, &has_boxes, e)) ||
	    (rc = lx_record_tensor(rec, "visual_pos", &pt, &has_pos, e)))
		return rc;
	if (has_boxes && (bt.ndim != 2 || bt.shape[1] != 4 || !lx_dtype_is_float(bt.dtype)))
		return lx_errf(e, LX_EINPUT, "field boxes: expected a float matrix [N, 4] of pixel boxes");
	if (has_boxes && bt.shape[0] != v->N)
		return lx_errf(e, LX_EINPUT, "field boxes: %lld boxes, but the attention maps have %d",
		               (long long)bt.shape[0], v->N);
	if (has_pos && (pt.ndim != 2 || pt.shape[1] != 4 || !lx_dtype_is_float(pt.dtype)))
		return lx_errf(e, LX_EINPUT, "field visual_pos: expected a float matrix [N, 4] of normalised boxes");
	if (has_pos && pt.shape[0] != v->N)
		return lx_errf(e, LX_EINPUT, "field visual_pos: %lld boxes, but the attention maps have %d",
		               (long long)pt.shape[0], v->N);
	if (!has_boxes && !has_pos)
		return lx_errf(e, LX_EINPUT, "no field boxes or visual_pos: the boxes cannot be drawn");
	if ((rc = find_photo(r, v, &photo, path, sizeof path, e)))
		return rc;
	if (!(positive_field(rec, "img_w", &iw) && positive_field(rec, "img_h", &ih))) {
		iw = photo ? photo->w : 0;
		ih = photo ? photo->h : 0;
	}
	sw = photo ? photo->w : iw > 0 ? iw : 640;
	sh = photo ? photo->h : ih > 0 ? ih : 480;
	sc = sw > sh ? r->max_side / sw : r->max_side / sh;
	if (sc > 1)
		sc = 1;
	pw = (int)(sw * sc + 0.5) > 0 ? (int)(sw * sc + 0.5) : 1;
	ph = (int)(sh * sc + 0.5) > 0 ? (int)(sh * sc + 0.5) : 1;
	if (photo) {
		v->picture = lx_image_scaled(photo, pw, ph);
		snprintf(v->note, sizeof v->note, "The picture is %s (%dx%d, shown at %dx%d).", path, photo->w, photo->h,
		         pw, ph);
		lx_image_free(photo);
		if (!v->picture)
			return lx_errf(e, LX_EIO, "out of memory");
	} else {
		if ((rc = lx_image_new(&v->picture, pw, ph, 0xe9e9e9, e)))
			return rc;
		snprintf(v->note, sizeof v->note, "No photo%s%s%s: a blank canvas of %s (%.0fx%.0f, shown at %dx%d).",
		         *v->img_id ? " of " : "", v->img_id, r->images ? " in --images" : " (no --images given)",
		         iw > 0 ? "the image's size" : "a default size", sw, sh, pw, ph);
	}
	if (!(v->boxes = malloc((size_t)v->N * 4 * sizeof *v->boxes)))
		return lx_errf(e, LX_EIO, "out of memory");
	if (has_boxes && iw > 0) {
		if ((rc = lx_tensor_to_f32(&bt, v->boxes, "boxes", e)))
			return rc;
		for (i = 0; i < v->N * 4; i++)
			v->boxes[i] *= (float)(i % 2 == 0 ? pw / iw : ph / ih);
		return LX_OK;
	}
	if (!has_pos)
		return lx_errf(e, LX_EINPUT, "field boxes: pixel boxes without img_w and img_h, and no visual_pos");
	if ((rc = lx_tensor_to_f32(&pt, v->boxes, "visual_pos", e)))
		return rc;
	for (i = 0; i < v->N * 4; i++)
		v->boxes[i] *= (float)(i % 2 == 0 ? pw : ph);
	return LX_OK;
}

/* The sentence and up to five answers, if the record has them. */
static lx_status texts(const lx_record *rec, view *v, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, "sent");
	uint32_t i, j;

	if (o && is_str(o) && !(v->sent = dup_n(o->via.str.ptr, o->via.str.size)))
		return lx_errf(e, LX_EIO, "out of memory");
	o = lx_record_get(rec, "answers");
	if (!o)
		return LX_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return lx_errf(e, LX_EINPUT, "field answers: expected an array of maps {answer, score, index}");
	for (i = 0; i < o->via.array.size && v->nans < 5; i++) {
		const msgpack_object *m = &o->via.array.ptr[i], *a = NULL;
		double s = 0;
		if (m->type != MSGPACK_OBJECT_MAP)
			return lx_errf(e, LX_EINPUT, "field answers: item %u is not a map {answer, score, index}", i);
		for (j = 0; j < m->via.map.size; j++) {
			const msgpack_object *k = &m->via.map.ptr[j].key, *val = &m->via.map.ptr[j].val;
			if (!is_str(k))
				continue;
			if (k->via.str.size == 6 && !memcmp(k->via.str.ptr, "answer", 6) && is_str(val))
				a = val;
			else if (k->via.str.size == 5 && !memcmp(k->via.str.ptr, "score", 5))
				number(val, &s);
		}
		if (!a)
			return lx_errf(e, LX_EINPUT, "field answers: item %u has no string 'answer'", i);
		if (!(v->ans[v->nans] = dup_n(a->via.str.ptr, a->via.str.size)))
			return lx_errf(e, LX_EIO, "out of memory");
		v->score[v->nans++] = (float)s;
	}
	return LX_OK;
}

static lx_status rollouts(run *r, view *v, lx_err *e)
{
	lx_attn lang[2] = {v->a[K_LANG], v->a[K_XLSELF]}, visn[2] = {v->a[K_VISN], v->a[K_XVSELF]};
	size_t big = (size_t)(v->T > v->N ? v->T : v->N);
	lx_status rc;

	if (!grow(&r->scratch, &r->scratch_cap, 3 * big * big) ||
	    !grow(&r->map[K_RLANG], &r->cap[K_RLANG], (size_t)v->T * (size_t)v->T) ||
	    !grow(&r->map[K_RVISN], &r->cap[K_RVISN], (size_t)v->N * (size_t)v->N))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_attn_rollout(lang, 2, r->map[K_RLANG], r->scratch, e)) ||
	    (rc = lx_attn_rollout(visn, 2, r->map[K_RVISN], r->scratch, e)))
		return rc;
	v->a[K_RLANG] = (lx_attn){1, 1, v->T, v->T, r->map[K_RLANG]};
	v->a[K_RVISN] = (lx_attn){1, 1, v->N, v->N, r->map[K_RVISN]};
	return LX_OK;
}

static lx_status decode(run *r, const lx_record *rec, view *v, lx_err *e)
{
	lx_status rc;
	int k;

	for (k = 0; k < NMAPS; k++)
		if ((rc = decode_map(r, rec, k, v, e)))
			return rc;
	if ((rc = check_shapes(v, e)) || (rc = word_labels(rec, v, e)) || (rc = box_labels(rec, v, e)) ||
	    (rc = texts(rec, v, e)))
		return rc;
	if (r->token >= v->T)
		return lx_errf(e, LX_EINPUT, "--token %d, but the record has %d words", r->token, v->T);
	if (r->layer >= v->a[K_CROSS].layers)
		return lx_errf(e, LX_EINPUT, "--layer %d, but the record has %d cross layers", r->layer,
		               v->a[K_CROSS].layers);
	if (r->head >= v->heads)
		return lx_errf(e, LX_EINPUT, "--head %d, but the maps have %d heads", r->head, v->heads);
	if ((rc = rollouts(r, v, e)))
		return rc;
	return picture(r, rec, v, e);
}

/* ---- writing ---- */

static lx_status write_grids(run *r, const view *v, const char *stem, lx_err *e)
{
	char path[4400], title[512];
	lx_status rc;
	int k;

	for (k = 0; k < NKINDS; k++) {
		const lx_attn *a = &v->a[k];
		lx_grid_spec s = {title, kinds[k].layer_name, (const char *const *)(kinds[k].q == 't' ? v->tok : v->lab),
		                  (const char *const *)(kinds[k].k == 't' ? v->tok : v->lab), r->cell, 1, k >= K_RLANG};
		lx_image *im;
		int64_t shape[4] = {a->layers, a->heads, a->q, a->k};
		if (k < K_RLANG)
			snprintf(title, sizeof title, "%s: %s, %d layers x %d heads", stem, kinds[k].name, a->layers, a->heads);
		else
			snprintf(title, sizeof title, "%s: %s", stem, kinds[k].name);
		snprintf(path, sizeof path, "%s/%s.%s.npy", r->out, stem, kinds[k].key);
		if ((rc = lx_npy_write(path, a->p, k < K_RLANG ? 4 : 2, k < K_RLANG ? shape : shape + 2, e)))
			return rc;
		if ((rc = lx_attn_grid(&im, a, &s, r->font, e)))
			return rc;
		snprintf(path, sizeof path, "%s/%s.%s.png", r->out, stem, kinds[k].key);
		rc = lx_image_write_png(im, path, e);
		lx_image_free(im);
		if (rc)
			return rc;
	}
	return LX_OK;
}

/* The weights of word --token over the boxes: cross layer --layer, head --head or the mean over heads. */
static lx_status write_boxes(run *r, const view *v, const char *stem, lx_err *e)
{
	const lx_attn *a = &v->a[K_CROSS];
	int layer = r->layer >= 0 ? r->layer : a->layers - 1, j;
	size_t qk = (size_t)a->q * (size_t)a->k;
	float *w = malloc((size_t)v->N * sizeof *w), *mean = malloc(qk * sizeof *mean);
	char title[512], heads[64], path[4400];
	lx_image *im = NULL;
	lx_status rc;

	if (!w || !mean) {
		free(w);
		free(mean);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	if (r->head >= 0) {
		const float *row = a->p + ((size_t)layer * (size_t)a->heads + (size_t)r->head) * qk + (size_t)r->token * a->k;
		memcpy(w, row, (size_t)v->N * sizeof *w);
		snprintf(heads, sizeof heads, "head %d", r->head);
	} else {
		lx_attn_head_mean(a, layer, mean);
		for (j = 0; j < v->N; j++)
			w[j] = mean[(size_t)r->token * a->k + j];
		snprintf(heads, sizeof heads, "mean of %d heads", a->heads);
	}
	snprintf(title, sizeof title, "%s: word %d \"%s\" over the boxes\ncross-attention, cross layer %d (of 0 to %d), %s",
	         stem, r->token, v->tok[r->token], layer, a->layers - 1, heads);
	rc = lx_attn_boxes(&im, v->picture, v->boxes, w, v->N, (const char *const *)v->lab, r->top, title, r->font, e);
	if (!rc) {
		snprintf(path, sizeof path, "%s/%s.boxes.png", r->out, stem);
		rc = lx_image_write_png(im, path, e);
	}
	lx_image_free(im);
	free(w);
	free(mean);
	return rc;
}

static lx_status write_page(run *r, const view *v, const char *stem, long number, lx_err *e)
{
	lx_page_kind pk[NKINDS];
	lx_page p;
	unsigned char *png = NULL;
	size_t len;
	char *b64 = NULL, path[4400];
	lx_status rc;
	FILE *f;
	int k;

	for (k = 0; k < NKINDS; k++)
		pk[k] = (lx_page_kind){kinds[k].key, kinds[k].name, kinds[k].layer_name, kinds[k].q, kinds[k].k, v->a[k]};
	if ((rc = lx_image_encode_png(v->picture, &png, &len, e)) || (rc = lx_base64(png, len, &b64, e))) {
		free(png);
		return rc;
	}
	memset(&p, 0, sizeof p);
	p.id = stem;
	p.record = number;
	p.sent = v->sent;
	p.T = v->T;
	p.N = v->N;
	p.tokens = (const char *const *)v->tok;
	p.box_labels = (const char *const *)v->lab;
	p.boxes = v->boxes;
	p.picture_b64 = b64;
	p.pic_w = v->picture->w;
	p.pic_h = v->picture->h;
	p.picture_note = v->note;
	p.nanswers = v->nans;
	p.answers = (const char *const *)v->ans;
	p.scores = v->score;
	p.nkinds = NKINDS;
	p.kinds = pk;
	p.start_kind = "cross";
	p.start_layer = r->layer >= 0 ? r->layer : v->a[K_CROSS].layers - 1;
	p.start_head = r->head;
	p.start_token = r->token;
	p.files = stem;
	snprintf(path, sizeof path, "%s/%s.html", r->out, stem);
	if (!(f = fopen(path, "w")))
		rc = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	else {
		rc = lx_page_write(f, &p, path, e);
		if (fclose(f) && !rc)
			rc = lx_errf(e, LX_EIO, "%s: write failed", path);
	}
	free(png);
	free(b64);
	return rc;
}

/* The file name stem of a record: question_id, else img_id, else its number; characters other than letters,
 * digits, '.', '-' and '_' become '_'; a stem already used gets "-<number>" added. */
static void record_stem(const run *r, const lx_record *rec, long number, char *buf, size_t n)
{
	static const char *keys[] = {"question_id", "img_id"};
	size_t i, j;

	buf[0] = 0;
	for (i = 0; i < 2 && !*buf; i++) {
		const msgpack_object *o = lx_record_get(rec, keys[i]);
		if (!o)
			continue;
		if (is_str(o))
			snprintf(buf, n, "%.*s", (int)o->via.str.size, o->via.str.ptr);
		else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			snprintf(buf, n, "%llu", (unsigned long long)o->via.u64);
		else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			snprintf(buf, n, "%lld", (long long)o->via.i64);
	}
	if (!*buf || buf[0] == '.')
		snprintf(buf, n, "record-%ld", number);
	for (j = 0; buf[j]; j++) {
		char c = buf[j];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			buf[j] = '_';
	}
	for (i = 0; i < r->ndone; i++)
		if (!strcmp(r->done[i].stem, buf)) {
			j = strlen(buf);
			snprintf(buf + j, n - j, "-%ld", number);
			break;
		}
}

static lx_status remember(run *r, const view *v, const char *stem, lx_err *e)
{
	entry *d;

	if (r->ndone == r->capdone) {
		size_t cap = r->capdone ? 2 * r->capdone : 64;
		entry *p = realloc(r->done, cap * sizeof *p);
		if (!p)
			return lx_errf(e, LX_EIO, "out of memory");
		r->done = p;
		r->capdone = cap;
	}
	d = &r->done[r->ndone];
	memset(d, 0, sizeof *d);
	d->stem = dup_n(stem, strlen(stem));
	d->sent = v->sent ? dup_n(v->sent, strlen(v->sent)) : NULL;
	if (v->nans) {
		d->answer = dup_n(v->ans[0], strlen(v->ans[0]));
		d->score = v->score[0];
		d->has_answer = 1;
	}
	if (!d->stem || (v->sent && !d->sent) || (v->nans && !d->answer))
		return lx_errf(e, LX_EIO, "out of memory");
	r->ndone++;
	return LX_OK;
}

static lx_status visualise(run *r, const lx_record *rec, long number, lx_err *e)
{
	view v;
	char stem[300];
	lx_status rc;

	memset(&v, 0, sizeof v);
	record_stem(r, rec, number, stem, sizeof stem);
	if (!(rc = decode(r, rec, &v, e)) && !(rc = write_grids(r, &v, stem, e)) && !(rc = write_boxes(r, &v, stem, e)) &&
	    !(rc = write_page(r, &v, stem, number, e)))
		rc = remember(r, &v, stem, e);
	view_free(&v);
	return rc;
}

static void html_text(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
	}
}

/* DIR/index.html: one row per record written, linking its page and showing its boxes picture. */
static lx_status write_index(const run *r, lx_err *e)
{
	char path[4400];
	FILE *f;
	size_t i;
	int bad;

	snprintf(path, sizeof path, "%s/index.html", r->out);
	if (!(f = fopen(path, "w")))
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>lx-attnviz: %zu records"
	           "</title>\n<style>body{font:14px/1.4 'DejaVu Sans',sans-serif;margin:16px 24px;color:#202020}"
	           "td{padding:6px 12px 6px 0;vertical-align:top}th{text-align:left}img{width:240px}</style>\n"
	           "</head>\n<body>\n<h1>Attention maps of %zu records</h1>\n<table>\n"
	           "<tr><th>record</th><th>sentence</th><th>answer</th><th>word 0 over the boxes</th></tr>\n",
	        r->ndone, r->ndone);
	for (i = 0; i < r->ndone; i++) {
		const entry *d = &r->done[i];
		fputs("<tr><td><a href=\"", f);
		html_text(f, d->stem);
		fputs(".html\">", f);
		html_text(f, d->stem);
		fputs("</a></td><td>", f);
		html_text(f, d->sent);
		fputs("</td><td>", f);
		if (d->has_answer) {
			html_text(f, d->answer);
			fprintf(f, " (%.3f)", (double)d->score);
		}
		fputs("</td><td><a href=\"", f);
		html_text(f, d->stem);
		fputs(".html\"><img alt=\"boxes\" src=\"", f);
		html_text(f, d->stem);
		fputs(".boxes.png\"></a></td></tr>\n", f);
	}
	fputs("</table>\n</body>\n</html>\n", f);
	bad = ferror(f);
	if (fclose(f) || bad)
		return lx_errf(e, LX_EIO, "%s: write failed", path);
	return LX_OK;
}

/* ---- the command line ---- */

/* mkdir -p */
static lx_status make_dir(const char *dir, lx_err *e)
{
	char p[4096];
	size_t i, n = strlen(dir);
	struct stat st;

	if (n >= sizeof p)
		return lx_errf(e, LX_EUSAGE, "-o: path too long");
	memcpy(p, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		p[i] = 0;
		if (mkdir(p, 0777) && errno != EEXIST)
			return lx_errf(e, LX_EIO, "%s: cannot make the folder: %s", p, strerror(errno));
		p[i] = i < n ? '/' : 0;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return lx_errf(e, LX_EIO, "%s: not a folder", dir);
	return LX_OK;
}

/* --images must name a folder (photos missing from it are not an error, a missing folder is). */
static lx_status check_images(const char *dir, lx_err *e)
{
	struct stat st;

	if (!dir)
		return LX_OK;
	if (stat(dir, &st))
		return lx_errf(e, LX_EMODEL, "--images %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lx_errf(e, LX_EMODEL, "--images %s: not a folder", dir);
	return LX_OK;
}

static void run_free(run *r)
{
	size_t i;

	for (i = 0; i < NKINDS; i++)
		free(r->map[i]);
	free(r->scratch);
	for (i = 0; i < r->ndone; i++) {
		free(r->done[i].stem);
		free(r->done[i].sent);
		free(r->done[i].answer);
	}
	free(r->done);
	lx_font_free(r->font);
}

int main(int argc, char **argv)
{
	run r;
	int ch, progress = 0, pass, quiet;
	tool_run t;
	lx_record *rec;
	lx_err err = {0, ""}, ierr = {0, ""};
	lx_status rc = LX_OK, irc;

	memset(&r, 0, sizeof r);
	r.font_path = DEFAULT_FONT;
	r.layer = r.head = -1;
	r.max_side = 640;
	r.top = 5;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 'o': r.out = optarg; break;
		case O_IMAGES: r.images = optarg; break;
		case O_TOKEN: r.token = (int)tool_long(optarg, "--token", 0, 1 << 20); break;
		case O_LAYER: r.layer = (int)tool_long(optarg, "--layer", 0, 1 << 20); break;
		case O_HEAD: r.head = strcmp(optarg, "mean") ? (int)tool_long(optarg, "--head", 0, 1 << 20) : -1; break;
		case O_FONT: r.font_path = optarg; break;
		case O_CELL: r.cell = (int)tool_long(optarg, "--cell", 1, 64); break;
		case O_MAX_SIDE: r.max_side = (int)tool_long(optarg, "--max-side", 64, 8192); break;
		case O_TOP: r.top = (int)tool_long(optarg, "--top", 0, 1 << 20); break;
		case TOOL_PROGRESS: progress = 1; break;
		}
	}
	tool_require(r.out, "-o DIR");
	tool_no_operands(argc);
	if ((rc = lx_font_open(&r.font, r.font_path, &err)) || (rc = check_images(r.images, &err)) ||
	    (rc = make_dir(r.out, &err))) {
		run_free(&r);
		return tool_fail(rc, "%s", err.msg);
	}
	if (tool_run_init(&t, stdin, "stdin", 0, 0, progress))
		rc = lx_errf(&err, LX_EIO, "out of memory");
	tool_signals(NULL);
	while (!rc && !(rc = tool_next(&t, &rec, &pass, &err)) && rec) {
		if ((rc = visualise(&r, rec, t.done + 1, &err)))
			tool_where(&t, rec, &err);
		lx_record_free(rec);
		if (!rc)
			tool_done(&t, 1);
	}
	irc = write_index(&r, &ierr);
	rc = tool_flush(&t, rc, &err, &quiet);
	if (irc && !rc) {
		rc = irc;
		err = ierr;
	} else if (irc)
		tool_warn("%s", ierr.msg);
	rc = tool_exit(&t, rc, &err, quiet);
	tool_run_free(&t);
	run_free(&r);
	return rc;
}

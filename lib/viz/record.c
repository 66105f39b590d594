/* record.c - a record of lx-encode --attentions decoded into what lx-attnviz draws (lx_attn.h): the maps and
 * their rollouts, the labels, the texts, the relevance rows of lx-explain, and the picture under the boxes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_attn.h"

/* The record's field of each map and how the page shows it. */
static const char *const fields[LX_VIEW_MAPS] = {
	"language_attentions", "vision_attentions", "cross_encoder_attentions", "cross_encoder_vision_attentions",
	"cross_encoder_language_self_attentions", "cross_encoder_vision_self_attentions",
};

static const lx_page_kind kinds[LX_VIEW_KINDS] = {
	{"lang", "language self-attention", "language layer", 't', 't', {0, 0, 0, 0, NULL}},
	{"vision", "vision self-attention (object relations)", "vision layer", 'v', 'v', {0, 0, 0, 0, NULL}},
	{"cross", "cross-attention, words over boxes", "cross layer", 't', 'v', {0, 0, 0, 0, NULL}},
	{"cross-vision", "cross-attention, boxes over words", "cross layer", 'v', 't', {0, 0, 0, 0, NULL}},
	{"cross-lang-self", "cross layers' language self-attention", "cross layer", 't', 't', {0, 0, 0, 0, NULL}},
	{"cross-vision-self", "cross layers' vision self-attention", "cross layer", 'v', 'v', {0, 0, 0, 0, NULL}},
	{"rollout-lang", "attention rollout, words (language then cross layers)", "", 't', 't', {0, 0, 0, 0, NULL}},
	{"rollout-vision", "attention rollout, boxes (vision then cross layers)", "", 'v', 'v', {0, 0, 0, 0, NULL}},
};

enum { REL_WORDS = LX_VIEW_KINDS, REL_BOXES };

const char *lx_view_key(int k) { return kinds[k].key; }

static float *grow(lx_view *v, int slot, size_t n)
{
	float **p = slot < 0 ? &v->scratch : &v->buf[slot];
	size_t *cap = slot < 0 ? &v->scratch_cap : &v->cap[slot];

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

/* n strings and the array that holds them (NULL: none). */
static void free_strings(char **s, int n)
{
	int i;

	for (i = 0; s && i < n; i++)
		free(s[i]);
	free(s);
}

static int is_str(const msgpack_object *o) { return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN; }

static lx_status decode_map(lx_view *v, const lx_record *rec, int k, lx_err *e)
{
	const char *field = fields[k];
	lx_tensor t;
	int present;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, field, &t, &present, e)))
		return rc;
	if (!present)
		return lx_errf(e, LX_EINPUT, "no field %s: make the records with lx-encode --attentions", field);
	if (t.ndim != 4 || !lx_dtype_is_float(t.dtype))
		return lx_errf(e, LX_EINPUT, "field %s: a %s tensor of rank %d, expected float [layers, heads, %c, %c]",
		               field, lx_dtype_numpy(t.dtype), t.ndim, kinds[k].q == 't' ? 'T' : 'N',
		               kinds[k].k == 't' ? 'T' : 'N');
	if (t.shape[0] < 1 || t.shape[1] < 1 || t.shape[2] < 1 || t.shape[3] < 1 || t.shape[2] > 4096 ||
	    t.shape[3] > 4096 || t.shape[0] > 256 || t.shape[1] > 256)
		return lx_errf(e, LX_EINPUT, "field %s: shape [%lld, %lld, %lld, %lld] is empty or too large", field,
		               (long long)t.shape[0], (long long)t.shape[1], (long long)t.shape[2], (long long)t.shape[3]);
	if (!grow(v, k, (size_t)t.numel))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_tensor_to_f32(&t, v->buf[k], field, e)))
		return rc;
	v->kind[k].a = (lx_attn){(int)t.shape[0], (int)t.shape[1], (int)t.shape[2], (int)t.shape[3], v->buf[k]};
	return LX_OK;
}

/* Every map's shape agrees with T (the words of language_attentions), N (the boxes of vision_attentions),
 * the heads of language_attentions and one number of cross layers. */
static lx_status check_shapes(lx_view *v, lx_err *e)
{
	int k;

	v->T = v->kind[LX_VIEW_LANG].a.q;
	v->N = v->kind[LX_VIEW_VISN].a.q;
	v->heads = v->kind[LX_VIEW_LANG].a.heads;
	for (k = 0; k < LX_VIEW_MAPS; k++) {
		const lx_attn *a = &v->kind[k].a;
		int q = kinds[k].q == 't' ? v->T : v->N, kk = kinds[k].k == 't' ? v->T : v->N;
		int layers = k >= LX_VIEW_CROSS ? v->kind[LX_VIEW_CROSS].a.layers : a->layers;
		if (a->heads != v->heads || a->q != q || a->k != kk || a->layers != layers)
			return lx_errf(e, LX_EINPUT,
			               "field %s: shape [%d, %d, %d, %d], expected [%d, %d, %d, %d] to match the other maps "
			               "(T = %d words, N = %d boxes, %d heads)",
			               fields[k], a->layers, a->heads, a->q, a->k, layers, v->heads, q, kk, v->T, v->N, v->heads);
	}
	return LX_OK;
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
static lx_status word_labels(const lx_record *rec, lx_view *v, lx_err *e)
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

/* The record's obj_ids as int32 in a new array, checked against the names list: NULL when the record has
 * none (or no list is given). */
static lx_status object_ids(const lx_record *rec, const lx_view *v, int32_t **out, lx_err *e)
{
	lx_tensor t;
	int present, i, n = v->objects ? lx_names_count(v->objects) : 0;
	lx_status rc;

	*out = NULL;
	if (!v->objects || (rc = lx_record_tensor(rec, "obj_ids", &t, &present, e)) || !present)
		return v->objects ? rc : LX_OK;
	if (t.ndim != 1 || t.shape[0] != v->N || lx_dtype_is_float(t.dtype))
		return lx_errf(e, LX_EINPUT, "field obj_ids: expected an integer vector [%d] (the boxes of the attention "
		               "maps)", v->N);
	if (!(*out = malloc((size_t)v->N * sizeof **out)))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_tensor_to_i32(&t, *out, "obj_ids", e)))
		return rc;
	for (i = 0; i < v->N; i++)
		if ((*out)[i] < 0 || (*out)[i] >= n)
			return lx_errf(e, LX_EINPUT, "field obj_ids: item %d is %d, but %s has %d object names", i,
			               (int)(*out)[i], lx_names_path(v->objects), n);
	return LX_OK;
}

/* Box labels: "#i name" with the names of `objects`, else of `obj_ids` in the object names list, else "#i". */
static lx_status box_labels(const lx_record *rec, lx_view *v, lx_err *e)
{
	char **names = NULL, buf[160];
	int32_t *ids = NULL;
	lx_status rc;
	int i;

	if ((rc = strings(rec, "objects", v->N, "object names", &names, e)) ||
	    (!names && (rc = object_ids(rec, v, &ids, e))))
		goto done;
	if (!(v->lab = calloc((size_t)v->N, sizeof *v->lab))) {
		rc = lx_errf(e, LX_EIO, "out of memory");
		goto done;
	}
	for (i = 0; i < v->N; i++) {
		if (names)
			snprintf(buf, sizeof buf, "#%d %s", i, names[i]);
		else if (ids)
			snprintf(buf, sizeof buf, "#%d %s", i, lx_names_get(v->objects, ids[i]));
		else
			snprintf(buf, sizeof buf, "#%d", i);
		if (!(v->lab[i] = dup_n(buf, strlen(buf)))) {
			rc = lx_errf(e, LX_EIO, "out of memory");
			goto done;
		}
	}
done:
	free_strings(names, v->N);
	free(ids);
	return rc;
}

/* The sentence and up to five answers, if the record has them: each named by its 'answer', else by the
 * answer names list at its 'index', else "#index". */
static lx_status texts(const lx_record *rec, lx_view *v, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, "sent");
	uint32_t i, j;
	char num[32];

	if (o && is_str(o) && !(v->sent = dup_n(o->via.str.ptr, o->via.str.size)))
		return lx_errf(e, LX_EIO, "out of memory");
	o = lx_record_get(rec, "answers");
	if (!o)
		return LX_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return lx_errf(e, LX_EINPUT, "field answers: expected an array of maps {answer, score, index}");
	for (i = 0; i < o->via.array.size && v->nans < LX_VIEW_ANSWERS; i++) {
		const msgpack_object *m = &o->via.array.ptr[i], *a = NULL;
		double s = 0, x = -1;
		if (m->type != MSGPACK_OBJECT_MAP)
			return lx_errf(e, LX_EINPUT, "field answers: item %u is not a map {answer, score, index}", i);
		for (j = 0; j < m->via.map.size; j++) {
			const msgpack_object *k = &m->via.map.ptr[j].key, *val = &m->via.map.ptr[j].val;
			if (!is_str(k))
				continue;
			if (k->via.str.size == 6 && !memcmp(k->via.str.ptr, "answer", 6) && is_str(val))
				a = val;
			else if (k->via.str.size == 5 && !memcmp(k->via.str.ptr, "score", 5))
				lx_object_number(val, &s);
			else if (k->via.str.size == 5 && !memcmp(k->via.str.ptr, "index", 5) && lx_object_number(val, &x) &&
			         !(x >= 0 && x < 1e9 && x == (long)x))
				x = -1;
		}
		if (!a && x < 0)
			return lx_errf(e, LX_EINPUT, "field answers: item %u has neither a string 'answer' nor an 'index'", i);
		if (a)
			v->ans[v->nans] = dup_n(a->via.str.ptr, a->via.str.size);
		else if (v->answers && x < lx_names_count(v->answers))
			v->ans[v->nans] = dup_n(lx_names_get(v->answers, (int)x), strlen(lx_names_get(v->answers, (int)x)));
		else { /* a model without answer names (lx-head's output of a fresh lx-convert): the index */
			snprintf(num, sizeof num, "#%.0f", x);
			v->ans[v->nans] = dup_n(num, strlen(num));
		}
		if (!v->ans[v->nans])
			return lx_errf(e, LX_EIO, "out of memory");
		v->ans_index[v->nans] = (long)x;
		v->score[v->nans++] = (float)s;
	}
	return LX_OK;
}

/* relevance_words [T] and relevance_boxes [N] of lx-explain, both or neither, and relevance_answer. */
static lx_status relevance(const lx_record *rec, lx_view *v, lx_err *e)
{
	static const char *const keys[2] = {"relevance_words", "relevance_boxes"};
	const msgpack_object *o = lx_record_get(rec, "relevance_answer");
	int i, present[2], len[2] = {v->T, v->N};
	lx_tensor t[2];
	lx_status rc;
	double a;

	v->rel_answer = o && lx_object_number(o, &a) ? (long)a : -1;
	for (i = 0; i < 2; i++)
		if ((rc = lx_record_tensor(rec, keys[i], &t[i], &present[i], e)))
			return rc;
	if (!present[0] && !present[1])
		return LX_OK;
	for (i = 0; i < 2; i++) {
		if (!present[i])
			return lx_errf(e, LX_EINPUT, "no field %s beside %s: make the records with lx-explain", keys[i],
			               keys[1 - i]);
		if (t[i].ndim != 1 || !lx_dtype_is_float(t[i].dtype) || t[i].shape[0] != len[i])
			return lx_errf(e, LX_EINPUT, "field %s: expected a float vector [%d] (the %s of the attention maps)",
			               keys[i], len[i], i ? "boxes" : "words");
		if (!grow(v, REL_WORDS + i, (size_t)len[i]))
			return lx_errf(e, LX_EIO, "out of memory");
		if ((rc = lx_tensor_to_f32(&t[i], v->buf[REL_WORDS + i], keys[i], e)))
			return rc;
	}
	v->rel_words = v->buf[REL_WORDS];
	v->rel_boxes = v->buf[REL_BOXES];
	return LX_OK;
}

static lx_status rollouts(lx_view *v, lx_err *e)
{
	lx_attn lang[2] = {v->kind[LX_VIEW_LANG].a, v->kind[LX_VIEW_XLSELF].a};
	lx_attn visn[2] = {v->kind[LX_VIEW_VISN].a, v->kind[LX_VIEW_XVSELF].a};
	size_t big = (size_t)(v->T > v->N ? v->T : v->N);
	lx_status rc;

	if (!grow(v, -1, 3 * big * big) || !grow(v, LX_VIEW_RLANG, (size_t)v->T * (size_t)v->T) ||
	    !grow(v, LX_VIEW_RVISN, (size_t)v->N * (size_t)v->N))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_attn_rollout(lang, 2, v->buf[LX_VIEW_RLANG], v->scratch, e)) ||
	    (rc = lx_attn_rollout(visn, 2, v->buf[LX_VIEW_RVISN], v->scratch, e)))
		return rc;
	v->kind[LX_VIEW_RLANG].a = (lx_attn){1, 1, v->T, v->T, v->buf[LX_VIEW_RLANG]};
	v->kind[LX_VIEW_RVISN].a = (lx_attn){1, 1, v->N, v->N, v->buf[LX_VIEW_RVISN]};
	return LX_OK;
}

lx_status lx_view_decode(lx_view *v, const lx_record *rec, lx_err *e)
{
	lx_status rc;
	int k;

	lx_view_clear(v);
	for (k = 0; k < LX_VIEW_KINDS; k++)
		v->kind[k] = kinds[k];
	for (k = 0; k < LX_VIEW_MAPS; k++)
		if ((rc = decode_map(v, rec, k, e)))
			return rc;
	if ((rc = check_shapes(v, e)) || (rc = word_labels(rec, v, e)) || (rc = box_labels(rec, v, e)) ||
	    (rc = texts(rec, v, e)) || (rc = relevance(rec, v, e)))
		return rc;
	return rollouts(v, e);
}

static int positive_field(const lx_record *rec, const char *key, double *d)
{
	const msgpack_object *o = lx_record_get(rec, key);

	return o && lx_object_number(o, d) && *d >= 1 && *d <= 100000;
}

/* The photo named by img_id in images, if there: *photo NULL when there is none. */
static lx_status find_photo(const lx_view *v, const char *images, lx_image **photo, char *path, size_t n, lx_err *e)
{
	static const char *ext[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
	size_t i;

	*photo = NULL;
	if (!images || !*v->img_id || strchr(v->img_id, '/'))
		return LX_OK;
	for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		snprintf(path, n, "%s/%s%s", images, v->img_id, ext[i]);
		if (access(path, F_OK) == 0)
			return lx_image_read(photo, path, v->max_pixels ? v->max_pixels : LX_IMAGE_MAX_PIXELS, e);
	}
	return LX_OK;
}

lx_status lx_view_picture(lx_view *v, const lx_record *rec, const char *images, int max_side, lx_err *e)
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
	if ((rc = find_photo(v, images, &photo, path, sizeof path, e)))
		return rc;
	if (!(positive_field(rec, "img_w", &iw) && positive_field(rec, "img_h", &ih))) {
		iw = photo ? photo->w : 0;
		ih = photo ? photo->h : 0;
	}
	sw = photo ? photo->w : iw > 0 ? iw : 640;
	sh = photo ? photo->h : ih > 0 ? ih : 480;
	sc = sw > sh ? max_side / sw : max_side / sh;
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
		v->photo = 1;
	} else {
		if ((rc = lx_image_new(&v->picture, pw, ph, 0xe9e9e9, e)))
			return rc;
		snprintf(v->note, sizeof v->note, "No photo%s%s%s: a blank canvas of %s (%.0fx%.0f, shown at %dx%d).",
		         *v->img_id ? " of " : "", v->img_id, images ? " in --images" : " (no --images given)",
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

void lx_view_clear(lx_view *v)
{
	int i;

	free_strings(v->tok, v->T);
	free_strings(v->lab, v->N);
	for (i = 0; i < v->nans; i++)
		free(v->ans[i]);
	free(v->boxes);
	free(v->sent);
	lx_image_free(v->picture);
	v->T = v->N = v->heads = v->nans = v->photo = 0;
	v->tok = v->lab = NULL;
	v->boxes = NULL;
	v->sent = NULL;
	v->picture = NULL;
	v->rel_words = v->rel_boxes = NULL;
	v->rel_answer = -1;
	v->img_id[0] = v->note[0] = 0;
}

void lx_view_destroy(lx_view *v)
{
	int i;

	lx_view_clear(v);
	for (i = 0; i < LX_VIEW_KINDS + 2; i++)
		free(v->buf[i]);
	free(v->scratch);
	memset(v, 0, sizeof *v);
}

/*
 * encoder.c - the LXMERT forward pass: embeddings, the language encoder, the object-relationship encoder,
 * the cross-modality encoder and the pooler, over a batch of examples packed row after row (no padding).
 *
 * Every linear layer runs once over all the rows of the batch (one cblas_sgemm); attention runs per example
 * and head. Each sub-block reads its inputs and writes its outputs and saved activations into buffers the
 * caller names (an lx_acts), so that a backward pass can keep one set per layer where inference reuses one.
 * The small operations (linear, LayerNorm, GELU) are shared with the heads: ops.c.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "lx.h"
#include "ops.h"

/* One side of the batch (language or vision): example i has len[i] rows starting at row off[i]. */
typedef struct {
	int n, rows;
	const int *len, *off;
	const float *const *mask; /* mask[i]: [len[i]] or NULL */
} side;

/* What an attention block saves: projections, probabilities, context, and its output before LayerNorm. */
typedef struct {
	float *q, *k, *v;    /* [rows, H] */
	float *ctx;          /* [rows of the query side, H] */
	float **probs;       /* probs[i]: example i's [heads, Tq, Tk], or NULL to use the scratch */
} lx_attn_acts;

enum {
	B_LANG, B_VISN, B_LANG2, B_VISN2, B_Q, B_K, B_V, B_CTX, B_INTER, B_TMP, B_SCORES, B_POOL_IN, B_POOLED,
	B_LHIST, B_VHIST, B_AL, B_AR, B_AXL, B_AXV, B_AXLS, B_AXVS, NBUF
};

struct lx_encoder {
	const lx_model *m;
	int want;
	float *buf[NBUF];    /* see size_buffers for each one's size */
	size_t cap[NBUF];
	int cap_n;           /* examples the per-example arrays hold */
	int *ints;           /* [4 n]: offsets and lengths of both sides */
	float **ptrs;        /* [16 n]: masks, attention bases and per-layer attention pointers */
	/* views of buf[] for the current batch */
	float *lang, *visn;      /* [rows, H] hidden states, updated layer by layer */
	float *lang2, *visn2;    /* [rows, H] sub-block outputs */
	float *q, *k, *v, *ctx;  /* [max rows, H] */
	float *inter;            /* [max rows, max(I, F)] */
	float *tmp;              /* [max rows, H + 4] */
	float *scores;           /* [heads * max(T, N)^2] when probabilities are not kept */
	float *pool_in, *pooled; /* [n, H] */
};

void lx_set_threads(int n)
{
	openblas_set_num_threads(n > 0 ? n : 1);
}

/* ---- attention ---- */

/*
 * out[q rows, H] = LayerNorm(Attention(xq, xk) W_o + b_o + xq): queries from side sq, keys and values from
 * side sk, example by example. Probabilities go to a->probs[i] when given.
 */
static void attention(lx_encoder *enc, const lx_attn_w *w, const float *xq, const side *sq, const float *xk,
                      const side *sk, float *out, lx_attn_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, nh = c->num_attention_heads, dh = H / nh, i, h, r, j;
	float scale = sqrtf((float)dh);

	lx_op_linear(a->q, xq, sq->rows, &w->q, H, H);
	lx_op_linear(a->k, xk, sk->rows, &w->k, H, H);
	lx_op_linear(a->v, xk, sk->rows, &w->v, H, H);
	for (i = 0; i < sq->n; i++) {
		int Tq = sq->len[i], Tk = sk->len[i];
		const float *Q = a->q + (size_t)sq->off[i] * H, *K = a->k + (size_t)sk->off[i] * H,
		            *V = a->v + (size_t)sk->off[i] * H, *mask = sk->mask[i];
		float *C = a->ctx + (size_t)sq->off[i] * H, *P = a->probs ? a->probs[i] : enc->scores;
		for (h = 0; h < nh; h++) {
			float *S = P + (size_t)h * Tq * Tk;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, dh, 1.0f, Q + h * dh, H, K + h * dh, H,
			            0.0f, S, Tk);
			for (r = 0; r < Tq; r++) {
				float *s = S + (size_t)r * Tk, mx = -INFINITY, sum = 0;
				for (j = 0; j < Tk; j++) {
					s[j] /= scale;
					if (mask)
						s[j] += (1.0f - mask[j]) * -FLT_MAX;
					if (s[j] > mx)
						mx = s[j];
				}
				for (j = 0; j < Tk; j++)
					sum += (s[j] = expf(s[j] - mx));
				for (j = 0; j < Tk; j++)
					s[j] /= sum;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, dh, Tk, 1.0f, S, Tk, V + h * dh, H, 0.0f,
			            C + h * dh, H);
		}
	}
	lx_op_linear(out, a->ctx, sq->rows, &w->o, H, H);
	lx_op_add_norm(out, xq, sq->rows, H, &w->ln, c->layer_norm_eps);
}

/* out[rows, H] = LayerNorm(gelu(x W_1 + b_1) W_2 + b_2 + x); inter holds gelu(x W_1 + b_1). */
static void feed_forward(lx_encoder *enc, const lx_ffn_w *w, const float *x, int rows, float *inter, float *out)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, Dff = c->intermediate_size;

	lx_op_linear(inter, x, rows, &w->inter, Dff, H);
	lx_op_gelu(inter, (size_t)rows * Dff, c->gelu_tanh);
	lx_op_linear(out, inter, rows, &w->out, H, Dff);
	lx_op_add_norm(out, x, rows, H, &w->ln, c->layer_norm_eps);
}

/* ---- the encoders ---- */

static void embed_language(lx_encoder *enc, const lx_example *ex, const side *s)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, i, t, j;

	for (i = 0; i < s->n; i++)
		for (t = 0; t < ex[i].T; t++) {
			float *row = enc->lang + (size_t)(s->off[i] + t) * H;
			const float *we = w->word + (size_t)ex[i].input_ids[t] * H, *pe = w->pos + (size_t)t * H,
			            *te = w->type + (size_t)(ex[i].token_type_ids ? ex[i].token_type_ids[t] : 0) * H;
			for (j = 0; j < H; j++)
				row[j] = we[j] + pe[j] + te[j];
		}
	lx_op_add_norm(enc->lang, NULL, s->rows, H, &w->ln, c->layer_norm_eps);
}

/* (LayerNorm(feats W_f + b_f) + LayerNorm(pos W_b + b_b)) / 2 */
static void embed_vision(lx_encoder *enc, const lx_example *ex, const side *s)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, F = c->visual_feat_dim, i;
	size_t k;
	float *feats = enc->inter, *pos = enc->tmp; /* both free until the first layer */

	/* gather the examples' inputs into rows */
	for (i = 0; i < s->n; i++) {
		memcpy(feats + (size_t)s->off[i] * F, ex[i].visual_feats, (size_t)ex[i].N * F * sizeof(float));
		memcpy(pos + (size_t)s->off[i] * 4, ex[i].visual_pos, (size_t)ex[i].N * 4 * sizeof(float));
	}
	lx_op_linear(enc->visn, feats, s->rows, &w->visn_fc, H, F);
	lx_op_add_norm(enc->visn, NULL, s->rows, H, &w->visn_ln, c->layer_norm_eps);
	lx_op_linear(enc->visn2, pos, s->rows, &w->box_fc, H, 4);
	lx_op_add_norm(enc->visn2, NULL, s->rows, H, &w->box_ln, c->layer_norm_eps);
	for (k = 0; k < (size_t)s->rows * H; k++)
		enc->visn[k] = (enc->visn[k] + enc->visn2[k]) / 2;
}

/* Copies layer `layer`'s output of every example into the hidden-state history. */
static void keep_hidden(float *hist, const float *x, const side *s, int layers, int layer, int H)
{
	int i;

	for (i = 0; i < s->n; i++)
		memcpy(hist + ((size_t)layers * s->off[i] + (size_t)layer * s->len[i]) * H, x + (size_t)s->off[i] * H,
		       (size_t)s->len[i] * H * sizeof(float));
}

/* Probability pointers of one layer: base[i] + layer * heads * Tq * Tk, or NULL when they are not kept. */
static float **layer_probs(float **dst, float **base, const side *sq, const side *sk, int layer, int nh)
{
	int i;

	if (!base)
		return NULL;
	for (i = 0; i < sq->n; i++)
		dst[i] = base[i] + (size_t)layer * nh * sq->len[i] * sk->len[i];
	return dst;
}

/* A BERT layer (the language and the object-relationship encoders) on x, in place. */
static void bert_layer(lx_encoder *enc, const lx_layer_w *w, float *x, float *x2, const side *s, float **probs)
{
	lx_attn_acts a = {enc->q, enc->k, enc->v, enc->ctx, probs};

	attention(enc, &w->att, x, s, x, s, x2, &a);
	feed_forward(enc, &w->ffn, x2, s->rows, enc->inter, x);
}

static void swap(float **a, float **b)
{
	float *t = *a;

	*a = *b;
	*b = t;
}

/*
 * A cross-modality layer: the one cross-attention module both ways on the layer's inputs, then each side's
 * self-attention, then each side's feed-forward. lang and visn are updated in place.
 */
static void cross_layer(lx_encoder *enc, const lx_xlayer_w *w, const side *sl, const side *sv, float **pxl,
                        float **pxv, float **pxls, float **pxvs)
{
	lx_attn_acts a = {enc->q, enc->k, enc->v, enc->ctx, pxl};

	attention(enc, &w->cross, enc->lang, sl, enc->visn, sv, enc->lang2, &a);
	a.probs = pxv;
	attention(enc, &w->cross, enc->visn, sv, enc->lang, sl, enc->visn2, &a);
	a.probs = pxls;
	attention(enc, &w->lang_self, enc->lang2, sl, enc->lang2, sl, enc->lang, &a);
	a.probs = pxvs;
	attention(enc, &w->visn_self, enc->visn2, sv, enc->visn2, sv, enc->visn, &a);
	feed_forward(enc, &w->lang_ffn, enc->lang, sl->rows, enc->inter, enc->lang2);
	feed_forward(enc, &w->visn_ffn, enc->visn, sv->rows, enc->inter, enc->visn2);
	swap(&enc->lang, &enc->lang2);
	swap(&enc->visn, &enc->visn2);
}

static void pool(lx_encoder *enc, const side *sl)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, i;
	size_t k;

	for (i = 0; i < sl->n; i++)
		memcpy(enc->pool_in + (size_t)i * H, enc->lang + (size_t)sl->off[i] * H, H * sizeof(float));
	lx_op_linear(enc->pooled, enc->pool_in, sl->n, &lx_model_weights(enc->m)->pooler, H, H);
	for (k = 0; k < (size_t)sl->n * H; k++)
		enc->pooled[k] = tanhf(enc->pooled[k]);
}

/* ---- buffers ---- */

lx_encoder *lx_encoder_new(const lx_model *m, int want)
{
	lx_encoder *enc = calloc(1, sizeof *enc);

	if (!enc)
		return NULL;
	enc->m = m;
	enc->want = want;
	return enc;
}

void lx_encoder_free(lx_encoder *enc)
{
	int i;

	if (!enc)
		return;
	for (i = 0; i < NBUF; i++)
		free(enc->buf[i]);
	free(enc->ints);
	free(enc->ptrs);
	free(enc);
}

/* Grows buffer i to at least n floats (contents not kept). */
static int grow(lx_encoder *enc, int i, size_t n)
{
	if (n <= enc->cap[i])
		return 0;
	free(enc->buf[i]);
	enc->buf[i] = malloc((n ? n : 1) * sizeof(float));
	enc->cap[i] = enc->buf[i] ? n : 0;
	return enc->buf[i] ? 0 : -1;
}

/* Sizes every buffer for the batch; returns -1 when memory runs out. */
static int size_buffers(lx_encoder *enc, const lx_example *ex, int n)
{
	const lx_config *c = lx_model_config(enc->m);
	size_t H = (size_t)c->hidden_size, nh = (size_t)c->num_attention_heads, L = 0, V = 0, maxr, sc = 0;
	size_t need[NBUF] = {0}, kl = (size_t)(c->l_layers + c->x_layers), kv = (size_t)(c->r_layers + c->x_layers);
	size_t wide = (size_t)(c->intermediate_size > c->visual_feat_dim ? c->intermediate_size : c->visual_feat_dim);
	int i;

	for (i = 0; i < n; i++) {
		size_t T = (size_t)ex[i].T, N = (size_t)ex[i].N, m = T > N ? T : N;
		L += T;
		V += N;
		if (nh * m * m > sc)
			sc = nh * m * m;
		if (enc->want & LX_WANT_ATTN) {
			need[B_AL] += (size_t)c->l_layers * nh * T * T;
			need[B_AR] += (size_t)c->r_layers * nh * N * N;
			need[B_AXL] += (size_t)c->x_layers * nh * T * N;
			need[B_AXV] += (size_t)c->x_layers * nh * N * T;
			need[B_AXLS] += (size_t)c->x_layers * nh * T * T;
			need[B_AXVS] += (size_t)c->x_layers * nh * N * N;
		}
	}
	maxr = L > V ? L : V;
	need[B_LANG] = need[B_LANG2] = L * H;
	need[B_VISN] = need[B_VISN2] = V * H;
	need[B_K] = need[B_V] = maxr * H;
	need[B_Q] = need[B_CTX] = maxr * H;
	need[B_INTER] = maxr * wide;
	need[B_TMP] = maxr * (H + 4);
	need[B_SCORES] = sc;
	need[B_POOL_IN] = need[B_POOLED] = (size_t)n * H;
	if (enc->want & LX_WANT_HIDDEN) {
		need[B_LHIST] = kl * L * H;
		need[B_VHIST] = kv * V * H;
	}
	for (i = 0; i < NBUF; i++)
		if (grow(enc, i, need[i]))
			return -1;
	if (n > enc->cap_n) {
		free(enc->ints);
		free(enc->ptrs);
		enc->ints = malloc((size_t)n * 4 * sizeof *enc->ints);
		enc->ptrs = malloc((size_t)n * 16 * sizeof *enc->ptrs);
		enc->cap_n = enc->ints && enc->ptrs ? n : 0;
		if (!enc->cap_n)
			return -1;
	}
	return 0;
}

/* ---- checking the inputs ---- */

lx_status lx_example_check(const lx_config *c, const lx_example *x, lx_err *e)
{
	int t;
	size_t k;

	if (x->T < 1)
		return lx_errf(e, LX_EINPUT, "field input_ids is empty");
	if (x->T > c->max_position_embeddings)
		return lx_errf(e, LX_EINPUT, "field input_ids: %d tokens, more than max_position_embeddings %d", x->T,
		               c->max_position_embeddings);
	if (x->N < 1)
		return lx_errf(e, LX_EINPUT, "field visual_feats has no boxes");
	for (t = 0; t < x->T; t++) {
		if (x->input_ids[t] < 0 || x->input_ids[t] >= c->vocab_size)
			return lx_errf(e, LX_EINPUT, "field input_ids: id %d at position %d is outside the vocabulary [0, %d)",
			               x->input_ids[t], t, c->vocab_size);
		if (x->token_type_ids && (x->token_type_ids[t] < 0 || x->token_type_ids[t] >= c->type_vocab_size))
			return lx_errf(e, LX_EINPUT, "field token_type_ids: %d at position %d is outside [0, %d)",
			               x->token_type_ids[t], t, c->type_vocab_size);
	}
	for (k = 0; k < (size_t)x->N * c->visual_feat_dim; k++)
		if (!isfinite(x->visual_feats[k]))
			return lx_errf(e, LX_EINPUT, "field visual_feats: non-finite value at box %zu, feature %zu",
			               k / c->visual_feat_dim, k % c->visual_feat_dim);
	for (k = 0; k < (size_t)x->N * 4; k++)
		if (!isfinite(x->visual_pos[k]))
			return lx_errf(e, LX_EINPUT, "field visual_pos: non-finite value at box %zu", k / 4);
	return LX_OK;
}

/* ---- the forward pass ---- */

/* Example i's attention blocks of one kind start where the examples before it end. */
static void attn_bases(float **base, float *buf, const lx_example *ex, int n, int layers, int nh, int q, int k)
{
	size_t off = 0;
	int i;

	for (i = 0; i < n; i++) {
		size_t Tq = (size_t)(q ? ex[i].N : ex[i].T), Tk = (size_t)(k ? ex[i].N : ex[i].T);
		base[i] = buf + off;
		off += (size_t)layers * nh * Tq * Tk;
	}
}

lx_status lx_encode(lx_encoder *enc, const lx_example *ex, int n, lx_outputs *out, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, nh = c->num_attention_heads, i, k, kl = c->l_layers + c->x_layers,
	    kv = c->r_layers + c->x_layers, hid = (enc->want & LX_WANT_HIDDEN) != 0,
	    att = (enc->want & LX_WANT_ATTN) != 0;
	float **base[6], **cur[4];
	side sl, sv;
	lx_status rc;

	for (i = 0; i < n; i++)
		if ((rc = lx_example_check(c, &ex[i], e)))
			return rc;
	if (size_buffers(enc, ex, n))
		return lx_errf(e, LX_EIO, "out of memory for a batch of %d examples", n);
	enc->lang = enc->buf[B_LANG];
	enc->visn = enc->buf[B_VISN];
	enc->lang2 = enc->buf[B_LANG2];
	enc->visn2 = enc->buf[B_VISN2];
	enc->q = enc->buf[B_Q];
	enc->k = enc->buf[B_K];
	enc->v = enc->buf[B_V];
	enc->ctx = enc->buf[B_CTX];
	enc->inter = enc->buf[B_INTER];
	enc->tmp = enc->buf[B_TMP];
	enc->scores = enc->buf[B_SCORES];
	enc->pool_in = enc->buf[B_POOL_IN];
	enc->pooled = enc->buf[B_POOLED];

	sl.n = sv.n = n;
	sl.rows = sv.rows = 0;
	sl.off = enc->ints;
	sl.len = enc->ints + n;
	sv.off = enc->ints + 2 * n;
	sv.len = enc->ints + 3 * n;
	sl.mask = (const float *const *)enc->ptrs;
	sv.mask = (const float *const *)enc->ptrs + n;
	for (i = 0; i < n; i++) {
		enc->ints[i] = sl.rows;
		enc->ints[n + i] = ex[i].T;
		enc->ints[2 * n + i] = sv.rows;
		enc->ints[3 * n + i] = ex[i].N;
		enc->ptrs[i] = (float *)ex[i].attention_mask;
		enc->ptrs[n + i] = (float *)ex[i].visual_mask;
		sl.rows += ex[i].T;
		sv.rows += ex[i].N;
	}
	for (i = 0; i < 6; i++)
		base[i] = enc->ptrs + (size_t)(2 + i) * n;
	for (i = 0; i < 4; i++)
		cur[i] = enc->ptrs + (size_t)(8 + i) * n;
	if (att) {
		attn_bases(base[0], enc->buf[B_AL], ex, n, c->l_layers, nh, 0, 0);
		attn_bases(base[1], enc->buf[B_AR], ex, n, c->r_layers, nh, 1, 1);
		attn_bases(base[2], enc->buf[B_AXL], ex, n, c->x_layers, nh, 0, 1);
		attn_bases(base[3], enc->buf[B_AXV], ex, n, c->x_layers, nh, 1, 0);
		attn_bases(base[4], enc->buf[B_AXLS], ex, n, c->x_layers, nh, 0, 0);
		attn_bases(base[5], enc->buf[B_AXVS], ex, n, c->x_layers, nh, 1, 1);
	} else
		for (i = 0; i < 6; i++)
			base[i] = NULL;

	/* embeddings */
	embed_language(enc, ex, &sl);
	embed_vision(enc, ex, &sv);

	/* the language encoder */
	for (k = 0; k < c->l_layers; k++) {
		bert_layer(enc, &w->l[k], enc->lang, enc->lang2, &sl, layer_probs(cur[0], base[0], &sl, &sl, k, nh));
		if (hid)
			keep_hidden(enc->buf[B_LHIST], enc->lang, &sl, kl, k, H);
	}

	/* the object-relationship encoder */
	for (k = 0; k < c->r_layers; k++) {
		bert_layer(enc, &w->r[k], enc->visn, enc->visn2, &sv, layer_probs(cur[0], base[1], &sv, &sv, k, nh));
		if (hid)
			keep_hidden(enc->buf[B_VHIST], enc->visn, &sv, kv, k, H);
	}

	/* the cross-modality encoder */
	for (k = 0; k < c->x_layers; k++) {
		cross_layer(enc, &w->x[k], &sl, &sv, layer_probs(cur[0], base[2], &sl, &sv, k, nh),
		            layer_probs(cur[1], base[3], &sv, &sl, k, nh), layer_probs(cur[2], base[4], &sl, &sl, k, nh),
		            layer_probs(cur[3], base[5], &sv, &sv, k, nh));
		if (hid) {
			keep_hidden(enc->buf[B_LHIST], enc->lang, &sl, kl, c->l_layers + k, H);
			keep_hidden(enc->buf[B_VHIST], enc->visn, &sv, kv, c->r_layers + k, H);
		}
	}

	pool(enc, &sl);

	for (i = 0; i < n; i++) {
		lx_outputs *o = &out[i];
		memset(o, 0, sizeof *o);
		o->lang = enc->lang + (size_t)sl.off[i] * H;
		o->visn = enc->visn + (size_t)sv.off[i] * H;
		o->pooled = enc->pooled + (size_t)i * H;
		if (hid) {
			o->lang_hidden = enc->buf[B_LHIST] + (size_t)kl * sl.off[i] * H;
			o->visn_hidden = enc->buf[B_VHIST] + (size_t)kv * sv.off[i] * H;
		}
		if (att) {
			o->attn_l = base[0][i];
			o->attn_r = base[1][i];
			o->attn_xl = base[2][i];
			o->attn_xv = base[3][i];
			o->attn_xls = base[4][i];
			o->attn_xvs = base[5][i];
		}
	}
	return LX_OK;
}

/*
 * encoder.c - the LXMERT forward pass: embeddings, the language encoder, the object-relationship encoder,
 * the cross-modality encoder and the pooler, over a batch of examples packed row after row (no padding).
 *
 * The batch's hidden states live in one buffer: the language rows of every example, then the vision rows
 * of every example. Every linear layer runs once over all the rows it applies to (one cblas_sgemm); the
 * cross-attention module, shared by both directions, runs once over both sides' rows. Attention itself
 * runs per example, direction and head. Each sub-block reads its input and writes its output and saved
 * activations into buffers the caller names (lx_attn_acts), so a backward pass can keep one set per layer
 * where inference reuses one.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "lx.h"
#include "ops.h"

/* One attention problem: tq query rows from row qo over tk key rows from row ko of the block's input. */
typedef struct {
	int qo, tq, ko, tk;
	const float *mask;   /* [tk] or NULL */
	float *probs;        /* [heads, tq, tk], or NULL to use the scratch */
} attn_group;

/* What an attention block saves: projections and context, for every row of its input. */
typedef struct {
	float *q, *k, *v;    /* [rows, H] */
	float *ctx;          /* [rows, H] */
} lx_attn_acts;

enum {
	B_X, B_X2, B_Q, B_K, B_V, B_CTX, B_INTER, B_TMP, B_SCORES, B_POOL_IN, B_POOLED,
	B_LHIST, B_VHIST, B_AL, B_AR, B_AXL, B_AXV, B_AXLS, B_AXVS, NBUF
};

struct lx_encoder {
	const lx_model *m;
	int want;
	float *buf[NBUF];    /* see size_buffers for each one's size */
	size_t cap[NBUF];
	int cap_n;           /* examples the per-example arrays hold */
	int *ints;           /* [4 n]: offsets and lengths of both sides */
	attn_group *groups;  /* [2 n] */
	float **ptrs;        /* [10 n]: attention bases and per-layer attention pointers */
	/* the current batch */
	int n, L, V;         /* examples, language rows, vision rows */
	const int *loff, *tlen, *voff, *nlen;
	const lx_example *ex;
	float *x, *x2;       /* [L + V, H]: hidden states (updated layer by layer) and sub-block outputs */
	lx_attn_acts acts;   /* inference: one set for every attention block */
};

void lx_set_threads(int n)
{
	openblas_set_num_threads(n > 0 ? n : 1);
}

/* ---- attention ---- */

/*
 * out[rows, H] = LayerNorm(Attention(x) W_o + b_o + x): queries, keys and values are projected once for all
 * rows of x, then each group attends from its query rows over its key rows.
 */
static void attention(lx_encoder *enc, const lx_attn_w *w, const float *x, int rows, const attn_group *g, int ng,
                      float *out, const lx_attn_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, nh = c->num_attention_heads, dh = H / nh, i, h, r, j;
	float scale = sqrtf((float)dh);

	lx_op_linear(a->q, x, rows, &w->q, H, H);
	lx_op_linear(a->k, x, rows, &w->k, H, H);
	lx_op_linear(a->v, x, rows, &w->v, H, H);
	for (i = 0; i < ng; i++) {
		int tq = g[i].tq, tk = g[i].tk;
		const float *Q = a->q + (size_t)g[i].qo * H, *K = a->k + (size_t)g[i].ko * H,
		            *V = a->v + (size_t)g[i].ko * H, *mask = g[i].mask;
		float *C = a->ctx + (size_t)g[i].qo * H, *P = g[i].probs ? g[i].probs : enc->buf[B_SCORES];
		for (h = 0; h < nh; h++) {
			float *S = P + (size_t)h * tq * tk;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, dh, 1.0f, Q + h * dh, H, K + h * dh, H,
			            0.0f, S, tk);
			for (r = 0; r < tq; r++) {
				float *s = S + (size_t)r * tk, mx = -INFINITY, sum = 0;
				for (j = 0; j < tk; j++) {
					s[j] /= scale;
					if (mask)
						s[j] += (1.0f - mask[j]) * -FLT_MAX;
					if (s[j] > mx)
						mx = s[j];
				}
				for (j = 0; j < tk; j++)
					sum += (s[j] = expf(s[j] - mx));
				for (j = 0; j < tk; j++)
					s[j] /= sum;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, dh, tk, 1.0f, S, tk, V + h * dh, H, 0.0f,
			            C + h * dh, H);
		}
	}
	lx_op_linear(out, a->ctx, rows, &w->o, H, H);
	lx_op_add_norm(out, x, rows, H, &w->ln, c->layer_norm_eps);
}

/* out[rows, H] = LayerNorm(lx_op_gelu(x W_1 + b_1) W_2 + b_2 + x); inter holds lx_op_gelu(x W_1 + b_1). */
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

/* word + position + token type, then LayerNorm, into the language rows */
static void embed_language(lx_encoder *enc)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, i, t, j;

	for (i = 0; i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		for (t = 0; t < ex->T; t++) {
			float *row = enc->x + (size_t)(enc->loff[i] + t) * H;
			const float *we = w->word + (size_t)ex->input_ids[t] * H, *pe = w->pos + (size_t)t * H,
			            *te = w->type + (size_t)(ex->token_type_ids ? ex->token_type_ids[t] : 0) * H;
			for (j = 0; j < H; j++)
				row[j] = we[j] + pe[j] + te[j];
		}
	}
	lx_op_add_norm(enc->x, NULL, enc->L, H, &w->ln, c->layer_norm_eps);
}

/* (LayerNorm(feats W_f + b_f) + LayerNorm(pos W_b + b_b)) / 2, into the vision rows */
static void embed_vision(lx_encoder *enc)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, F = c->visual_feat_dim, i;
	size_t k;
	float *feats = enc->buf[B_INTER], *pos = enc->buf[B_TMP], *visn = enc->x + (size_t)enc->L * H,
	      *box = enc->x2 + (size_t)enc->L * H;

	for (i = 0; i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		memcpy(feats + (size_t)enc->voff[i] * F, ex->visual_feats, (size_t)ex->N * F * sizeof(float));
		memcpy(pos + (size_t)enc->voff[i] * 4, ex->visual_pos, (size_t)ex->N * 4 * sizeof(float));
	}
	lx_op_linear(visn, feats, enc->V, &w->visn_fc, H, F);
	lx_op_add_norm(visn, NULL, enc->V, H, &w->visn_ln, c->layer_norm_eps);
	lx_op_linear(box, pos, enc->V, &w->box_fc, H, 4);
	lx_op_add_norm(box, NULL, enc->V, H, &w->box_ln, c->layer_norm_eps);
	for (k = 0; k < (size_t)enc->V * H; k++)
		visn[k] = (visn[k] + box[k]) / 2;
}

/* Copies layer `layer`'s output of every example (rows from `first`, lengths len) into its history. */
static void keep_hidden(lx_encoder *enc, float *hist, int first, const int *off, const int *len, int layers,
                        int layer)
{
	int H = lx_model_config(enc->m)->hidden_size, i;

	for (i = 0; i < enc->n; i++)
		memcpy(hist + ((size_t)layers * off[i] + (size_t)layer * len[i]) * H,
		       enc->x + ((size_t)first + off[i]) * H, (size_t)len[i] * H * sizeof(float));
}

/* Fills g[0, n) with self-attention groups of one side: rows from `first` (0 for language, L for vision). */
static void self_groups(lx_encoder *enc, attn_group *g, int vision, float *const *base, int layer)
{
	int nh = lx_model_config(enc->m)->num_attention_heads, i;

	for (i = 0; i < enc->n; i++) {
		int len = vision ? enc->nlen[i] : enc->tlen[i];
		g[i].qo = g[i].ko = vision ? enc->voff[i] : enc->loff[i];
		g[i].tq = g[i].tk = len;
		g[i].mask = vision ? enc->ex[i].visual_mask : enc->ex[i].attention_mask;
		g[i].probs = base ? base[i] + (size_t)layer * nh * len * len : NULL;
	}
}

/* A BERT layer (the language and the object-relationship encoders) on one side's rows, in place. */
static void bert_layer(lx_encoder *enc, const lx_layer_w *w, int vision, float *const *base, int layer)
{
	int H = lx_model_config(enc->m)->hidden_size, rows = vision ? enc->V : enc->L;
	size_t first = vision ? (size_t)enc->L * H : 0;

	self_groups(enc, enc->groups, vision, base, layer);
	attention(enc, &w->att, enc->x + first, rows, enc->groups, enc->n, enc->x2 + first, &enc->acts);
	feed_forward(enc, &w->ffn, enc->x2 + first, rows, enc->buf[B_INTER], enc->x + first);
}

static void swap(float **a, float **b)
{
	float *t = *a;

	*a = *b;
	*b = t;
}

/*
 * A cross-modality layer: the one cross-attention module both ways on the layer's inputs (words over
 * boxes and boxes over words, as one block over all rows), then each side's self-attention, then each
 * side's feed-forward. base[0..3]: probabilities of words over boxes, boxes over words, and the two
 * self-attentions (NULL when not kept).
 */
static void cross_layer(lx_encoder *enc, const lx_xlayer_w *w, float ***base, int layer)
{
	int H = lx_model_config(enc->m)->hidden_size, nh = lx_model_config(enc->m)->num_attention_heads, n = enc->n, i;
	size_t vfirst = (size_t)enc->L * H;
	attn_group *g = enc->groups;

	for (i = 0; i < n; i++) {
		int T = enc->tlen[i], N = enc->nlen[i];
		g[i].qo = enc->loff[i];
		g[i].tq = T;
		g[i].ko = enc->L + enc->voff[i];
		g[i].tk = N;
		g[i].mask = enc->ex[i].visual_mask;
		g[i].probs = base[0] ? base[0][i] + (size_t)layer * nh * T * N : NULL;
		g[n + i].qo = enc->L + enc->voff[i];
		g[n + i].tq = N;
		g[n + i].ko = enc->loff[i];
		g[n + i].tk = T;
		g[n + i].mask = enc->ex[i].attention_mask;
		g[n + i].probs = base[1] ? base[1][i] + (size_t)layer * nh * N * T : NULL;
	}
	attention(enc, &w->cross, enc->x, enc->L + enc->V, g, 2 * n, enc->x2, &enc->acts);
	self_groups(enc, g, 0, base[2], layer);
	attention(enc, &w->lang_self, enc->x2, enc->L, g, n, enc->x, &enc->acts);
	self_groups(enc, g, 1, base[3], layer);
	attention(enc, &w->visn_self, enc->x2 + vfirst, enc->V, g, n, enc->x + vfirst, &enc->acts);
	feed_forward(enc, &w->lang_ffn, enc->x, enc->L, enc->buf[B_INTER], enc->x2);
	feed_forward(enc, &w->visn_ffn, enc->x + vfirst, enc->V, enc->buf[B_INTER], enc->x2 + vfirst);
	swap(&enc->x, &enc->x2);
}

static void pool(lx_encoder *enc)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, i;
	size_t k;
	float *in = enc->buf[B_POOL_IN], *out = enc->buf[B_POOLED];

	for (i = 0; i < enc->n; i++)
		memcpy(in + (size_t)i * H, enc->x + (size_t)enc->loff[i] * H, H * sizeof(float));
	lx_op_linear(out, in, enc->n, &lx_model_weights(enc->m)->pooler, H, H);
	for (k = 0; k < (size_t)enc->n * H; k++)
		out[k] = tanhf(out[k]);
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
	free(enc->groups);
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
	need[B_X] = need[B_X2] = need[B_Q] = need[B_K] = need[B_V] = need[B_CTX] = (L + V) * H;
	need[B_INTER] = maxr * wide;
	need[B_TMP] = V * 4;
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
		free(enc->groups);
		free(enc->ptrs);
		enc->ints = malloc((size_t)n * 4 * sizeof *enc->ints);
		enc->groups = malloc((size_t)n * 2 * sizeof *enc->groups);
		enc->ptrs = malloc((size_t)n * 6 * sizeof *enc->ptrs);
		enc->cap_n = enc->ints && enc->groups && enc->ptrs ? n : 0;
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

/* Example i's attention maps of one kind start where the examples before it end. */
static float **attn_bases(float **base, float *buf, const lx_example *ex, int n, int layers, int nh, int qv, int kv)
{
	size_t off = 0;
	int i;

	for (i = 0; i < n; i++) {
		size_t tq = (size_t)(qv ? ex[i].N : ex[i].T), tk = (size_t)(kv ? ex[i].N : ex[i].T);
		base[i] = buf + off;
		off += (size_t)layers * nh * tq * tk;
	}
	return base;
}

lx_status lx_encode(lx_encoder *enc, const lx_example *ex, int n, lx_outputs *out, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, nh = c->num_attention_heads, i, k, kl = c->l_layers + c->x_layers,
	    kv = c->r_layers + c->x_layers, hid = (enc->want & LX_WANT_HIDDEN) != 0,
	    att = (enc->want & LX_WANT_ATTN) != 0;
	float **base[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
	int *ints;
	lx_status rc;

	for (i = 0; i < n; i++)
		if ((rc = lx_example_check(c, &ex[i], e)))
			return rc;
	if (size_buffers(enc, ex, n))
		return lx_errf(e, LX_EIO, "out of memory for a batch of %d examples", n);
	ints = enc->ints;
	enc->n = n;
	enc->ex = ex;
	enc->loff = ints;
	enc->tlen = ints + n;
	enc->voff = ints + 2 * n;
	enc->nlen = ints + 3 * n;
	enc->L = enc->V = 0;
	for (i = 0; i < n; i++) {
		ints[i] = enc->L;
		ints[n + i] = ex[i].T;
		ints[2 * n + i] = enc->V;
		ints[3 * n + i] = ex[i].N;
		enc->L += ex[i].T;
		enc->V += ex[i].N;
	}
	enc->x = enc->buf[B_X];
	enc->x2 = enc->buf[B_X2];
	enc->acts.q = enc->buf[B_Q];
	enc->acts.k = enc->buf[B_K];
	enc->acts.v = enc->buf[B_V];
	enc->acts.ctx = enc->buf[B_CTX];
	if (att) {
		base[0] = attn_bases(enc->ptrs, enc->buf[B_AL], ex, n, c->l_layers, nh, 0, 0);
		base[1] = attn_bases(enc->ptrs + n, enc->buf[B_AR], ex, n, c->r_layers, nh, 1, 1);
		base[2] = attn_bases(enc->ptrs + 2 * n, enc->buf[B_AXL], ex, n, c->x_layers, nh, 0, 1);
		base[3] = attn_bases(enc->ptrs + 3 * n, enc->buf[B_AXV], ex, n, c->x_layers, nh, 1, 0);
		base[4] = attn_bases(enc->ptrs + 4 * n, enc->buf[B_AXLS], ex, n, c->x_layers, nh, 0, 0);
		base[5] = attn_bases(enc->ptrs + 5 * n, enc->buf[B_AXVS], ex, n, c->x_layers, nh, 1, 1);
	}

	/* embeddings */
	embed_language(enc);
	embed_vision(enc);

	/* the language encoder */
	for (k = 0; k < c->l_layers; k++) {
		bert_layer(enc, &w->l[k], 0, base[0], k);
		if (hid)
			keep_hidden(enc, enc->buf[B_LHIST], 0, enc->loff, enc->tlen, kl, k);
	}

	/* the object-relationship encoder */
	for (k = 0; k < c->r_layers; k++) {
		bert_layer(enc, &w->r[k], 1, base[1], k);
		if (hid)
			keep_hidden(enc, enc->buf[B_VHIST], enc->L, enc->voff, enc->nlen, kv, k);
	}

	/* the cross-modality encoder */
	for (k = 0; k < c->x_layers; k++) {
		cross_layer(enc, &w->x[k], base + 2, k);
		if (hid) {
			keep_hidden(enc, enc->buf[B_LHIST], 0, enc->loff, enc->tlen, kl, c->l_layers + k);
			keep_hidden(enc, enc->buf[B_VHIST], enc->L, enc->voff, enc->nlen, kv, c->r_layers + k);
		}
	}

	pool(enc);

	for (i = 0; i < n; i++) {
		lx_outputs *o = &out[i];
		memset(o, 0, sizeof *o);
		o->lang = enc->x + (size_t)enc->loff[i] * H;
		o->visn = enc->x + ((size_t)enc->L + enc->voff[i]) * H;
		o->pooled = enc->buf[B_POOLED] + (size_t)i * H;
		if (hid) {
			o->lang_hidden = enc->buf[B_LHIST] + (size_t)kl * enc->loff[i] * H;
			o->visn_hidden = enc->buf[B_VHIST] + (size_t)kv * enc->voff[i] * H;
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

/*
 * encoder.c - the LXMERT forward pass: embeddings, the language encoder, the object-relationship encoder,
 * the cross-modality encoder and the pooler, over a batch of examples packed row after row (no padding).
 *
 * The batch's hidden states live in one buffer: the language rows of every example, then the vision rows
 * of every example. Every linear layer runs once over all the rows it applies to (one lx_op_matmul); the
 * cross-attention module, shared by both directions, runs once over both sides' rows. Attention itself
 * runs per example, direction and head. Each block reads its input and writes its output and what it
 * computed on the way into buffers the caller names (lx_block_acts, encoder_impl.h): inference reuses one
 * scratch set, a training forward (train.c) keeps one set per block for the backward pass (backward.c).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/encoder_impl.h"
#include "nn/ops.h"

/* ---- dropout ---- */

float lx_drop_scale(const lx_dropout *d, uint32_t site, uint64_t i)
{
	/* splitmix64's finaliser over (seed, site, i): 24 bits of uniform */
	uint64_t z = d->seed + 0x9e3779b97f4a7c15ULL * (((uint64_t)site << 40) ^ i ^ 0x5851f42d4c957f2dULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (float)(z >> 40) * (1.0f / 16777216.0f) < d->p ? 0.0f : 1.0f / (1.0f - d->p);
}

void lx_drop_apply(const lx_dropout *d, uint32_t site, uint64_t first, float *x, size_t n)
{
	size_t i;

	if (d->p <= 0)
		return;
	for (i = 0; i < n; i++)
		x[i] *= lx_drop_scale(d, site, first + i);
}

/* ---- linear layers in the model's precision ---- */

/* y[i][rows, out] = act(x[rows, in] l[i]^T + b) for i in [0, n) (act: LX_ACT_*, ops.h): the layers that read
 * the same input (a block's query, key and value) share its quantization to int8 or rounding to bfloat16,
 * which is done once. */
static void linears(lx_encoder *enc, float *const *y, const float *x, int rows, const lx_linear_w *const *l, int n,
                    int out, int in, int act)
{
	signed char *a = (signed char *)enc->buf[B_QACT];
	float *s = enc->buf[B_QSCALE];
	lx_pack *pk = enc->packed ? enc->pack : NULL;
	int i, quantized = 0;

	for (i = 0; i < n; i++) {
		if (l[i]->q) {
			if (!quantized++)
				lx_op_quantize(a, s, x, rows, in);
			if (!lx_op_linear_packed_act(pk, y[i], a, s, rows, l[i], out, in, act))
				continue;
			lx_op_linear_int8(y[i], a, s, rows, l[i], out, in);
		} else if (l[i]->bf) {
			if (!quantized++)
				lx_op_to_bf16((unsigned short *)a, x, (size_t)rows * in);
			if (lx_op_linear_packed_act(pk, y[i], a, NULL, rows, l[i], out, in, act))
				abort(); /* lx_bf16_available said yes: a shape oneDNN cannot do is a bug */
			continue;
		} else {
			if (!lx_op_linear_packed_act(pk, y[i], x, NULL, rows, l[i], out, in, act))
				continue;
			lx_op_linear(y[i], x, rows, l[i], out, in);
		}
		/* the plain products (no packed weights): the activation in a pass of its own */
		if (act != LX_ACT_NONE)
			lx_op_gelu(y[i], (size_t)rows * out, act == LX_ACT_GELU_TANH);
	}
}

static void linear(lx_encoder *enc, float *y, const float *x, int rows, const lx_linear_w *l, int out, int in)
{
	linears(enc, &y, x, rows, &l, 1, out, in, LX_ACT_NONE);
}

/* ---- blocks ---- */

void lx_enc_attention(lx_encoder *enc, const lx_attn_w *w, const float *x, int rows, int ng, float *out,
                      const lx_block_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	const attn_group *g = enc->groups;
	int H = c->hidden_size, nh = c->num_attention_heads, dh = H / nh, i, h;
	int drop = enc->drop.p > 0 && a->probs;
	float scale = sqrtf((float)dh), *const qkv[3] = {a->q, a->k, a->v};
	const lx_linear_w *const wqkv[3] = {&w->q, &w->k, &w->v};

	linears(enc, qkv, x, rows, wqkv, 3, H, H, LX_ACT_NONE);
	for (i = 0; i < ng; i++) {
		int tq = g[i].tq, tk = g[i].tk;
		const float *Q = a->q + (size_t)g[i].qo * H, *K = a->k + (size_t)g[i].ko * H,
		            *V = a->v + (size_t)g[i].ko * H, *mask = g[i].mask;
		float *C = a->ctx + (size_t)g[i].qo * H, *P = g[i].probs ? g[i].probs : enc->buf[B_SCORES];
		if (!drop) {
			lx_op_attention(C, P, Q, K, V, tq, tk, nh, dh, H, scale, mask);
			continue;
		}
		for (h = 0; h < nh; h++) {
			float *S = P + (size_t)h * tq * tk;
			lx_op_matmul('N', 'T', tq, tk, dh, 1.0f, Q + h * dh, H, K + h * dh, H, 0.0f, S, tk);
			lx_op_softmax_rows(S, tq, tk, scale, mask);
			if (drop) {
				/* the probabilities stay as they were; their dropped copy goes through the scratch */
				float *D = enc->buf[B_SCORES];
				size_t k, n = (size_t)tq * tk, first = (size_t)(S - a->probs);
				for (k = 0; k < n; k++)
					D[k] = S[k] * lx_drop_scale(&enc->drop, 4 * a->site, first + k);
				S = D;
			}
			lx_op_matmul('N', 'N', tq, dh, tk, 1.0f, S, tk, V + h * dh, H, 0.0f, C + h * dh, H);
		}
	}
	linear(enc, out, a->ctx, rows, &w->o, H, H);
	if (a->xhat) {
		lx_drop_apply(&enc->drop, 4 * a->site + 1, 0, out, (size_t)rows * H);
		lx_op_add_norm_keep(out, x, rows, H, &w->ln, c->layer_norm_eps, a->xhat, a->rstd);
	} else
		lx_op_add_norm(out, x, rows, H, &w->ln, c->layer_norm_eps);
}

void lx_enc_ffn(lx_encoder *enc, const lx_ffn_w *w, const float *x, int rows, float *out, const lx_block_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, Dff = c->intermediate_size;
	size_t n = (size_t)rows * Dff;
	const lx_linear_w *inter = &w->inter;

	if (a->pre) {
		lx_op_linear(a->pre, x, rows, &w->inter, Dff, H);
		memcpy(a->inter, a->pre, n * sizeof(float));
		lx_op_gelu(a->inter, n, c->gelu_tanh);
	} else
		linears(enc, &a->inter, x, rows, &inter, 1, Dff, H, c->gelu_tanh ? LX_ACT_GELU_TANH : LX_ACT_GELU);
	linear(enc, out, a->inter, rows, &w->out, H, Dff);
	if (a->xhat) {
		lx_drop_apply(&enc->drop, 4 * a->site + 1, 0, out, (size_t)rows * H);
		lx_op_add_norm_keep(out, x, rows, H, &w->ln, c->layer_norm_eps, a->xhat, a->rstd);
	} else
		lx_op_add_norm(out, x, rows, H, &w->ln, c->layer_norm_eps);
}

/* ---- embeddings and pooler ---- */

void lx_enc_embed_language(lx_encoder *enc, float *out, float *xhat, float *rstd, uint32_t site)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, i, t, j;

	for (i = 0; i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		for (t = 0; t < ex->T; t++) {
			float *row = out + (size_t)(enc->loff[i] + t) * H;
			const float *we = w->word + (size_t)ex->input_ids[t] * H, *pe = w->pos + (size_t)t * H,
			            *te = w->type + (size_t)(ex->token_type_ids ? ex->token_type_ids[t] : 0) * H;
			for (j = 0; j < H; j++)
				row[j] = we[j] + pe[j] + te[j];
		}
	}
	if (xhat) {
		lx_op_add_norm_keep(out, NULL, enc->L, H, &w->ln, c->layer_norm_eps, xhat, rstd);
		lx_drop_apply(&enc->drop, 4 * site + 1, 0, out, (size_t)enc->L * H);
	} else
		lx_op_add_norm(out, NULL, enc->L, H, &w->ln, c->layer_norm_eps);
}

void lx_enc_embed_vision(lx_encoder *enc, float *out, float *feats, float *pos, float *box, float *xhat_f,
                         float *rstd_f, float *xhat_b, float *rstd_b, uint32_t site)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, F = c->visual_feat_dim, i;
	size_t k;

	for (i = 0; i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		memcpy(feats + (size_t)enc->voff[i] * F, ex->visual_feats, (size_t)ex->N * F * sizeof(float));
		memcpy(pos + (size_t)enc->voff[i] * 4, ex->visual_pos, (size_t)ex->N * 4 * sizeof(float));
	}
	linear(enc, out, feats, enc->V, &w->visn_fc, H, F);
	linear(enc, box, pos, enc->V, &w->box_fc, H, 4);
	if (xhat_f) {
		lx_op_add_norm_keep(out, NULL, enc->V, H, &w->visn_ln, c->layer_norm_eps, xhat_f, rstd_f);
		lx_op_add_norm_keep(box, NULL, enc->V, H, &w->box_ln, c->layer_norm_eps, xhat_b, rstd_b);
	} else {
		lx_op_add_norm(out, NULL, enc->V, H, &w->visn_ln, c->layer_norm_eps);
		lx_op_add_norm(box, NULL, enc->V, H, &w->box_ln, c->layer_norm_eps);
	}
	for (k = 0; k < (size_t)enc->V * H; k++)
		out[k] = (out[k] + box[k]) / 2;
	if (xhat_f)
		lx_drop_apply(&enc->drop, 4 * site + 1, 0, out, (size_t)enc->V * H);
}

void lx_enc_pool(lx_encoder *enc, const float *x, float *in, float *pooled)
{
	int H = lx_model_config(enc->m)->hidden_size, i;
	size_t k;

	for (i = 0; i < enc->n; i++)
		memcpy(in + (size_t)i * H, x + (size_t)enc->loff[i] * H, H * sizeof(float));
	linear(enc, pooled, in, enc->n, &lx_model_weights(enc->m)->pooler, H, H);
	for (k = 0; k < (size_t)enc->n * H; k++)
		pooled[k] = tanhf(pooled[k]);
}

/* ---- attention groups ---- */

/* Self-attention groups of one side (rows from 0 for language, from 0 of the vision rows for vision). */
static void self_groups(lx_encoder *enc, attn_group *g, int vision)
{
	int i;

	for (i = 0; i < enc->n; i++) {
		int len = vision ? enc->nlen[i] : enc->tlen[i];
		g[i].qo = g[i].ko = vision ? enc->voff[i] : enc->loff[i];
		g[i].tq = g[i].tk = len;
		g[i].mask = vision ? enc->ex[i].visual_mask : enc->ex[i].attention_mask;
		g[i].probs = NULL;
	}
}

/* The cross-attention module both ways over all rows: words over boxes (groups [0, n)), boxes over words
 * (groups [n, 2n)). */
static void cross_groups(lx_encoder *enc, attn_group *g)
{
	int n = enc->n, i;

	for (i = 0; i < n; i++) {
		g[i].qo = enc->loff[i];
		g[i].tq = enc->tlen[i];
		g[i].ko = enc->L + enc->voff[i];
		g[i].tk = enc->nlen[i];
		g[i].mask = enc->ex[i].visual_mask;
		g[i].probs = NULL;
		g[n + i].qo = enc->L + enc->voff[i];
		g[n + i].tq = enc->nlen[i];
		g[n + i].ko = enc->loff[i];
		g[n + i].tk = enc->tlen[i];
		g[n + i].mask = enc->ex[i].attention_mask;
		g[n + i].probs = NULL;
	}
}

int lx_enc_groups(lx_encoder *enc, int kind, float *probs)
{
	int nh = lx_model_config(enc->m)->num_attention_heads, ng = kind == LX_ATT_CROSS ? 2 * enc->n : enc->n, i;

	if (kind == LX_ATT_CROSS)
		cross_groups(enc, enc->groups);
	else
		self_groups(enc, enc->groups, kind == LX_ATT_VISN);
	if (probs)
		for (i = 0; i < ng; i++) {
			enc->groups[i].probs = probs;
			probs += (size_t)nh * enc->groups[i].tq * enc->groups[i].tk;
		}
	return ng;
}

size_t lx_enc_probs_size(const lx_encoder *enc, int kind)
{
	size_t nh = (size_t)lx_model_config(enc->m)->num_attention_heads, s = 0;
	int i;

	for (i = 0; i < enc->n; i++) {
		size_t T = (size_t)enc->tlen[i], N = (size_t)enc->nlen[i];
		s += kind == LX_ATT_LANG ? T * T : kind == LX_ATT_VISN ? N * N : 2 * T * N;
	}
	return nh * s;
}

/* ---- the encoders (inference) ---- */

/* Copies layer `layer`'s output of every example (rows from `first`, lengths len) into its history. */
static void keep_hidden(lx_encoder *enc, float *hist, int first, const int *off, const int *len, int layers,
                        int layer)
{
	int H = lx_model_config(enc->m)->hidden_size, i;

	for (i = 0; i < enc->n; i++)
		memcpy(hist + ((size_t)layers * off[i] + (size_t)layer * len[i]) * H,
		       enc->x + ((size_t)first + off[i]) * H, (size_t)len[i] * H * sizeof(float));
}

/* Points each group at example i's attention map of layer `layer` in base (NULL: not kept). */
static void set_probs(lx_encoder *enc, attn_group *g, float *const *base, int layer)
{
	int nh = lx_model_config(enc->m)->num_attention_heads, i;

	for (i = 0; i < enc->n; i++)
		g[i].probs = base ? base[i] + (size_t)layer * nh * g[i].tq * g[i].tk : NULL;
}

/* A BERT layer (the language and the object-relationship encoders) on one side's rows, in place. */
static void bert_layer(lx_encoder *enc, const lx_layer_w *w, int vision, float *const *base, int layer)
{
	int H = lx_model_config(enc->m)->hidden_size, rows = vision ? enc->V : enc->L;
	size_t first = vision ? (size_t)enc->L * H : 0;

	self_groups(enc, enc->groups, vision);
	set_probs(enc, enc->groups, base, layer);
	lx_enc_attention(enc, &w->att, enc->x + first, rows, enc->n, enc->x2 + first, &enc->acts);
	lx_enc_ffn(enc, &w->ffn, enc->x2 + first, rows, enc->x + first, &enc->acts);
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
	int H = lx_model_config(enc->m)->hidden_size, n = enc->n;
	size_t vfirst = (size_t)enc->L * H;
	attn_group *g = enc->groups;

	cross_groups(enc, g);
	set_probs(enc, g, base[0], layer);
	set_probs(enc, g + n, base[1], layer);
	lx_enc_attention(enc, &w->cross, enc->x, enc->L + enc->V, 2 * n, enc->x2, &enc->acts);
	self_groups(enc, g, 0);
	set_probs(enc, g, base[2], layer);
	lx_enc_attention(enc, &w->lang_self, enc->x2, enc->L, n, enc->x, &enc->acts);
	self_groups(enc, g, 1);
	set_probs(enc, g, base[3], layer);
	lx_enc_attention(enc, &w->visn_self, enc->x2 + vfirst, enc->V, n, enc->x + vfirst, &enc->acts);
	lx_enc_ffn(enc, &w->lang_ffn, enc->x, enc->L, enc->x2, &enc->acts);
	lx_enc_ffn(enc, &w->visn_ffn, enc->x + vfirst, enc->V, enc->x2 + vfirst, &enc->acts);
	swap(&enc->x, &enc->x2);
}

/* ---- buffers ---- */

lx_encoder *lx_encoder_new(const lx_model *m, int want)
{
	lx_encoder *enc = calloc(1, sizeof *enc);

	if (!enc)
		return NULL;
	enc->m = m;
	enc->want = want;
	enc->pack = lx_pack_new();
	return enc;
}

void lx_encoder_free(lx_encoder *enc)
{
	int i;

	if (!enc)
		return;
	for (i = 0; i < NBUF; i++)
		free(enc->buf[i]);
	lx_pack_free(enc->pack);
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
	if (lx_model_compute(enc->m) != LX_F32) {
		/* the widest input of a linear layer, as bytes (int8) or halves (bfloat16), and a scale a row */
		need[B_QACT] = ((L + V) * (wide > H ? wide : H) + 1) / 2;
		need[B_QSCALE] = L + V;
	}
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

lx_status lx_enc_prepare(lx_encoder *enc, const lx_example *ex, int n, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	int i, *ints;
	lx_status rc;

	for (i = 0; i < n; i++)
		if ((rc = lx_example_check(c, &ex[i], e)))
			return rc;
	if (lx_model_compute(enc->m) == LX_BF16 && !lx_bf16_available())
		return lx_errf(e, LX_EMODEL, "bfloat16 needs oneDNN (built in and chosen: LX_MATMUL) on a CPU with "
		               "avx512_bf16");
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
	memset(&enc->acts, 0, sizeof enc->acts);
	enc->acts.q = enc->buf[B_Q];
	enc->acts.k = enc->buf[B_K];
	enc->acts.v = enc->buf[B_V];
	enc->acts.ctx = enc->buf[B_CTX];
	enc->acts.inter = enc->buf[B_INTER];
	return LX_OK;
}

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
	lx_status rc;

	if ((rc = lx_enc_prepare(enc, ex, n, e)))
		return rc;
	enc->packed = 1;
	if (att) {
		base[0] = attn_bases(enc->ptrs, enc->buf[B_AL], ex, n, c->l_layers, nh, 0, 0);
		base[1] = attn_bases(enc->ptrs + n, enc->buf[B_AR], ex, n, c->r_layers, nh, 1, 1);
		base[2] = attn_bases(enc->ptrs + 2 * n, enc->buf[B_AXL], ex, n, c->x_layers, nh, 0, 1);
		base[3] = attn_bases(enc->ptrs + 3 * n, enc->buf[B_AXV], ex, n, c->x_layers, nh, 1, 0);
		base[4] = attn_bases(enc->ptrs + 4 * n, enc->buf[B_AXLS], ex, n, c->x_layers, nh, 0, 0);
		base[5] = attn_bases(enc->ptrs + 5 * n, enc->buf[B_AXVS], ex, n, c->x_layers, nh, 1, 1);
	}

	/* embeddings: the box branch goes through x2 before any layer needs it */
	lx_enc_embed_language(enc, enc->x, NULL, NULL, 0);
	lx_enc_embed_vision(enc, enc->x + (size_t)enc->L * H, enc->buf[B_INTER], enc->buf[B_TMP],
	                    enc->x2 + (size_t)enc->L * H, NULL, NULL, NULL, NULL, 0);

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

	lx_enc_pool(enc, enc->x, enc->buf[B_POOL_IN], enc->buf[B_POOLED]);

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
	enc->packed = 0;
	return LX_OK;
}

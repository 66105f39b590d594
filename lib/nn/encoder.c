/*
 * encoder.c - the LXMERT forward pass: embeddings, the language encoder, the object-relationship encoder,
 * the cross-modality encoder and the pooler, over a batch of examples packed row after row (no padding).
 *
 * The batch's hidden states live in one buffer: the language rows of every example, then the vision rows
 * of every example. Every linear layer runs once over all the rows it applies to (one lx_op_matmul); the
 * cross-attention module, shared by both directions, runs once over both sides' rows. Attention itself
 * runs per example, direction and head. Each block reads its input and writes its output and what it
 * computed on the way into buffers the caller names (lx_block_acts, encoder_impl.h): inference reuses one
 * scratch set, a training forward (backward.c) keeps one set per block for the backward pass.
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

	if (!d || d->p <= 0)
		return;
	for (i = 0; i < n; i++)
		x[i] *= lx_drop_scale(d, site, first + i);
}

lx_drop_sites lx_block_drop_sites(int b)
{
	/* four streams a site, of which two are used, after the embeddings' sites 0 and 1 (their streams are
	 * LX_DROP_EMBED_LANG and LX_DROP_EMBED_VISN) */
	lx_drop_sites s;
	uint32_t site = (uint32_t)(2 + b);

	s.probs = 4 * site;
	s.out = 4 * site + 1;
	return s;
}

/* ---- linear layers in the model's precision ---- */

/* y[i][rows, out] = act(x[rows, in] l[i]^T + b) for i in [0, n) (act: LX_ACT_*, ops.h): the layers that read
 * the same input (a block's query, key and value) share its quantization to int8 or rounding to bfloat16 (in
 * ac's qact), done once. */
static void linears(lx_encoder *enc, const lx_block_acts *ac, float *const *y, const float *x, int rows,
                    const lx_linear_w *const *l, int n, int out, int in, int act)
{
	signed char *a = ac->qact;
	float *s = ac->qscale;
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

static void linear(lx_encoder *enc, const lx_block_acts *ac, float *y, const float *x, int rows, const lx_linear_w *l,
                   int out, int in)
{
	linears(enc, ac, &y, x, rows, &l, 1, out, in, LX_ACT_NONE);
}

/* ---- blocks ---- */

/* out[rows, H] = LayerNorm(dropout(out) + x): the residual and norm that end every sub-layer (the dropout
 * only in training, which keeps the norm's normalised input and 1/std). */
static void residual_norm(lx_encoder *enc, float *out, const float *x, int rows, const lx_norm_w *ln,
                          const lx_block_train *tr)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size;

	if (tr) {
		lx_drop_apply(enc->drop, tr->drop.out, 0, out, (size_t)rows * H);
		lx_op_add_norm_keep(out, x, rows, H, ln, c->layer_norm_eps, tr->xhat, tr->rstd);
	} else
		lx_op_add_norm(out, x, rows, H, ln, c->layer_norm_eps);
}

/* The probabilities P [tq, tk] of one group and head, with dropout in training: P itself when off, else
 * their dropped copy in the scratch (the kept probabilities stay as they were). */
static const float *drop_probs(lx_encoder *enc, const lx_block_acts *a, const float *P, int tq, int tk)
{
	const lx_block_train *tr = a->train;
	float *D = a->scores;
	size_t k, n = (size_t)tq * tk, first;

	if (!tr || !enc->drop || enc->drop->p <= 0)
		return P;
	first = (size_t)(P - tr->probs);
	for (k = 0; k < n; k++)
		D[k] = P[k] * lx_drop_scale(enc->drop, tr->drop.probs, first + k);
	return D;
}

void lx_enc_attention(lx_encoder *enc, const lx_attn_w *w, const float *x, int rows, const attn_group *g, int ng,
                      float *out, const lx_block_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, nh = c->num_attention_heads, dh = H / nh, i, h;
	int drop = a->train && enc->drop && enc->drop->p > 0;
	float scale = sqrtf((float)dh), *const qkv[3] = {a->q, a->k, a->v};
	const lx_linear_w *const wqkv[3] = {&w->q, &w->k, &w->v};

	/* Q, K, V [rows, H] = x W^T + b, the heads side by side */
	linears(enc, a, qkv, x, rows, wqkv, 3, H, H, LX_ACT_NONE);
	for (i = 0; i < ng; i++) {
		int tq = g[i].tq, tk = g[i].tk;
		const float *Q = a->q + (size_t)g[i].qo * H, *K = a->k + (size_t)g[i].ko * H,
		            *V = a->v + (size_t)g[i].ko * H, *mask = g[i].mask;
		float *C = a->ctx + (size_t)g[i].qo * H, *P = g[i].probs ? g[i].probs : a->scores;
		if (!drop) { /* inference, or no dropout: the group's heads shared among the threads */
			lx_op_attention(C, P, Q, K, V, tq, tk, nh, dh, H, scale, mask);
			continue;
		}
		for (h = 0; h < nh; h++) {
			/* P [tq, tk] = softmax(Q K^T / sqrt(dh)), C [tq, dh] = dropout(P) V, head h */
			float *S = P + (size_t)h * tq * tk;
			lx_op_matmul('N', 'T', tq, tk, dh, 1.0f, Q + h * dh, H, K + h * dh, H, 0.0f, S, tk);
			lx_op_softmax_rows(S, tq, tk, scale, mask);
			lx_op_matmul('N', 'N', tq, dh, tk, 1.0f, drop_probs(enc, a, S, tq, tk), tk, V + h * dh, H,
			             0.0f, C + h * dh, H);
		}
	}
	/* out = LayerNorm(dropout(C W_o^T + b_o) + x) */
	linear(enc, a, out, a->ctx, rows, &w->o, H, H);
	residual_norm(enc, out, x, rows, &w->ln, a->train);
}

void lx_enc_ffn(lx_encoder *enc, const lx_ffn_w *w, const float *x, int rows, float *out, const lx_block_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, Dff = c->intermediate_size;
	size_t n = (size_t)rows * Dff;
	const lx_linear_w *inter = &w->inter;

	/* inter [rows, I] = gelu(x W_1^T + b_1), the pre-activation kept in training */
	if (a->train) {
		lx_op_linear(a->train->pre, x, rows, &w->inter, Dff, H);
		memcpy(a->inter, a->train->pre, n * sizeof(float));
		lx_op_gelu(a->inter, n, c->gelu_tanh);
	} else
		linears(enc, a, &a->inter, x, rows, &inter, 1, Dff, H, c->gelu_tanh ? LX_ACT_GELU_TANH : LX_ACT_GELU);
	/* out = LayerNorm(dropout(inter W_2^T + b_2) + x) */
	linear(enc, a, out, a->inter, rows, &w->out, H, Dff);
	residual_norm(enc, out, x, rows, &w->ln, a->train);
}

/* ---- embeddings and pooler ---- */

/* lang [L, H] = LayerNorm(word + position + token type) of every token. */
static void embed_language(lx_encoder *enc, const lx_embed_bufs *b)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, i, t, j;

	for (i = 0; i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		for (t = 0; t < ex->T; t++) {
			float *row = b->lang + (size_t)(enc->loff[i] + t) * H;
			const float *we = w->word + (size_t)ex->input_ids[t] * H, *pe = w->pos + (size_t)t * H,
			            *te = w->type + (size_t)(ex->token_type_ids ? ex->token_type_ids[t] : 0) * H;
			for (j = 0; j < H; j++)
				row[j] = we[j] + pe[j] + te[j];
		}
	}
	lx_op_add_norm_keep(b->lang, NULL, enc->L, H, &w->ln, c->layer_norm_eps, b->xhat_l, b->rstd_l);
	if (b->xhat_l)
		lx_drop_apply(enc->drop, LX_DROP_EMBED_LANG, 0, b->lang, (size_t)enc->L * H);
}

/* visn [V, H] = (LayerNorm(feats W_f^T + b_f) + LayerNorm(pos W_b^T + b_b)) / 2 over every box. */
static void embed_vision(lx_encoder *enc, const lx_embed_bufs *b)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, F = c->visual_feat_dim, i;
	float *out = b->visn, *box = b->box;
	size_t k;

	for (i = 0; i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		memcpy(b->feats + (size_t)enc->voff[i] * F, ex->visual_feats, (size_t)ex->N * F * sizeof(float));
		memcpy(b->pos + (size_t)enc->voff[i] * 4, ex->visual_pos, (size_t)ex->N * 4 * sizeof(float));
	}
	linear(enc, &enc->acts, out, b->feats, enc->V, &w->visn_fc, H, F);
	linear(enc, &enc->acts, box, b->pos, enc->V, &w->box_fc, H, 4);
	lx_op_add_norm_keep(out, NULL, enc->V, H, &w->visn_ln, c->layer_norm_eps, b->xhat_f, b->rstd_f);
	lx_op_add_norm_keep(box, NULL, enc->V, H, &w->box_ln, c->layer_norm_eps, b->xhat_b, b->rstd_b);
	for (k = 0; k < (size_t)enc->V * H; k++)
		out[k] = (out[k] + box[k]) / 2;
	if (b->xhat_f)
		lx_drop_apply(enc->drop, LX_DROP_EMBED_VISN, 0, out, (size_t)enc->V * H);
}

void lx_enc_embed(lx_encoder *enc, const lx_embed_bufs *b)
{
	embed_language(enc, b);
	embed_vision(enc, b);
}

void lx_enc_pool(lx_encoder *enc, const float *x, float *in, float *pooled)
{
	int H = lx_model_config(enc->m)->hidden_size, i;
	size_t k;

	for (i = 0; i < enc->n; i++)
		memcpy(in + (size_t)i * H, x + (size_t)enc->loff[i] * H, H * sizeof(float));
	linear(enc, &enc->acts, pooled, in, enc->n, &lx_model_weights(enc->m)->pooler, H, H);
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

/* Points each group at example i's attention map of layer `layer` in maps (NULL: not kept). */
static void set_probs(lx_encoder *enc, attn_group *g, float *const *maps, int layer)
{
	int nh = lx_model_config(enc->m)->num_attention_heads, i;

	for (i = 0; i < enc->n; i++)
		g[i].probs = maps ? maps[i] + (size_t)layer * nh * g[i].tq * g[i].tk : NULL;
}

/* One side's self-attention block, in from in to out (both relative to the side's first row), with its maps
 * of that layer kept in maps (NULL: not kept). Side 0 is the language, 1 the vision; each has its own
 * groups (enc->groups from side * n). */
static void self_block(lx_encoder *enc, int side, const lx_block_acts *a, const lx_attn_w *w, float *const *maps,
                       int layer, const float *in, float *out)
{
	attn_group *g = enc->groups + side * enc->n;

	self_groups(enc, g, side);
	set_probs(enc, g, maps, layer);
	lx_enc_attention(enc, w, in, side ? enc->V : enc->L, g, enc->n, out, a);
}

/* The rows of one side in a buffer of [L + V, H]. */
static float *side_rows(lx_encoder *enc, float *x, int side)
{
	return side ? x + (size_t)enc->L * lx_model_config(enc->m)->hidden_size : x;
}

/* The language encoder (side 0) or the object-relationship encoder (side 1), each layer a BERT layer on the
 * side's rows in place: self-attention, then the feed-forward. */
static void single_encoder(lx_encoder *enc, int side, const lx_block_acts *a)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	const lx_layer_w *layers = side ? w->r : w->l;
	int k, nl = side ? c->r_layers : c->l_layers, kept = (side ? c->r_layers : c->l_layers) + c->x_layers;
	int rows = side ? enc->V : enc->L;
	float *x = side_rows(enc, enc->x, side), *x2 = side_rows(enc, enc->x2, side);

	for (k = 0; k < nl; k++) {
		self_block(enc, side, a, &layers[k].att, side ? enc->maps.visn : enc->maps.lang, k, x, x2);
		lx_enc_ffn(enc, &layers[k].ffn, x2, rows, x, a);
		if (enc->want & LX_WANT_HIDDEN)
			keep_hidden(enc, side ? enc->s.visn_hidden : enc->s.lang_hidden, side ? enc->L : 0,
			            side ? enc->voff : enc->loff, side ? enc->nlen : enc->tlen, kept, k);
	}
}

/* One side of cross layer `layer` after its cross-attention (which wrote x2): the side's self-attention back
 * into x, then its feed-forward into x2. */
static void cross_side(lx_encoder *enc, int side, const lx_block_acts *a, const lx_xlayer_w *w, int layer)
{
	float *x = side_rows(enc, enc->x, side), *x2 = side_rows(enc, enc->x2, side);

	self_block(enc, side, a, side ? &w->visn_self : &w->lang_self, side ? enc->maps.x_vv : enc->maps.x_ll, layer,
	           x2, x);
	lx_enc_ffn(enc, side ? &w->visn_ffn : &w->lang_ffn, x, side ? enc->V : enc->L, x2, a);
}

/* The work of both sides, language and vision: the single-modality encoders (xw NULL) or the sides of cross
 * layer `layer` (weights xw). */
typedef struct {
	lx_encoder *enc;
	const lx_xlayer_w *xw;
	int layer;
} sides_job;

static void side_part(void *arg, int side, int parts)
{
	const sides_job *j = arg;
	lx_encoder *enc = j->enc;
	const lx_block_acts *a = enc->sides ? &enc->side[side] : &enc->acts;

	(void)parts;
	if (j->xw)
		cross_side(enc, side, a, j->xw, j->layer);
	else
		single_encoder(enc, side, a);
}

/* Both sides: side by side, one thread each, when the batch's scratch has a set a side (a batch of one on two
 * threads or more: its products are too small to share well among threads), else one after the other. */
static void both_sides(lx_encoder *enc, const lx_xlayer_w *xw, int layer)
{
	sides_job j = {enc, xw, layer};

	if (enc->sides)
		lx_par_run(2, side_part, &j);
	else {
		side_part(&j, 0, 2);
		side_part(&j, 1, 2);
	}
}

static void swap(float **a, float **b)
{
	float *t = *a;

	*a = *b;
	*b = t;
}

/*
 * A cross-modality layer: the one cross-attention module both ways on the layer's inputs (words over
 * boxes and boxes over words, as one block over all rows), then on each side its self-attention and its
 * feed-forward.
 */
static void cross_layer(lx_encoder *enc, const lx_xlayer_w *w, int layer)
{
	attn_group *g = enc->groups;

	cross_groups(enc, g);
	set_probs(enc, g, enc->maps.x_lv, layer);
	set_probs(enc, g + enc->n, enc->maps.x_vl, layer);
	lx_enc_attention(enc, &w->cross, enc->x, enc->L + enc->V, g, 2 * enc->n, enc->x2, &enc->acts);
	both_sides(enc, w, layer);
	swap(&enc->x, &enc->x2);
}

/* ---- one object-relationship pass an image ---- */

/*
 * The visual embedding and the object-relationship layers read only an example's image (its visual_feats,
 * visual_pos and visual_attention_mask), and VQA asks several questions of one image. lx_encode runs them once
 * for each distinct image of the batch, on those images' rows packed at the start of the vision rows, then
 * copies each image's rows to every example that has it. ints holds, after the batch's offsets and lengths,
 * img [n] (each example's distinct image), first [n] (the example each image is first seen in), and the
 * distinct images' vision offsets and lengths [n] each.
 */
struct lx_img_key {
	uint64_t key;
	int i;
};

static uint64_t hash_words(uint64_t h, const float *x, size_t n)
{
	size_t k;
	uint32_t u;

	for (k = 0; k < n; k++) {
		memcpy(&u, &x[k], sizeof u);
		h = (h ^ u) * 0x100000001b3ULL;
	}
	return h;
}

/* A hash of every byte of the example's visual inputs. */
static uint64_t image_key(const lx_example *x, int F)
{
	uint64_t h = (0xcbf29ce484222325ULL ^ (uint64_t)x->N) * 0x100000001b3ULL;

	h = hash_words(h, x->visual_pos, (size_t)x->N * 4);
	if (x->visual_mask)
		h = hash_words(h ^ 1, x->visual_mask, (size_t)x->N);
	return hash_words(h, x->visual_feats, (size_t)x->N * F);
}

static int same_image(const lx_example *a, const lx_example *b, int F)
{
	size_t N = (size_t)a->N;

	return a->N == b->N && !a->visual_mask == !b->visual_mask &&
	       !memcmp(a->visual_feats, b->visual_feats, N * F * sizeof(float)) &&
	       !memcmp(a->visual_pos, b->visual_pos, N * 4 * sizeof(float)) &&
	       (!a->visual_mask || !memcmp(a->visual_mask, b->visual_mask, N * sizeof(float)));
}

static int by_key(const void *pa, const void *pb)
{
	const struct lx_img_key *a = pa, *b = pb;

	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return (a->i > b->i) - (a->i < b->i);
}

/* Finds the batch's distinct images (equal bytes, not only equal hashes) in order of first appearance; returns
 * how many. */
static int find_images(lx_encoder *enc)
{
	int n = enc->n, F = lx_model_config(enc->m)->visual_feat_dim, i, a, b, d = 0;
	int *img = enc->ints + 4 * n, *first = img + n, *voff = img + 2 * n, *nlen = img + 3 * n;
	struct lx_img_key *k = enc->keys;

	for (i = 0; i < n; i++) {
		k[i].key = image_key(&enc->ex[i], F);
		k[i].i = i;
	}
	qsort(k, (size_t)n, sizeof *k, by_key);
	/* img[i]: first the earliest example with the same image, found within each run of equal keys */
	for (a = 0; a < n; a = b) {
		for (b = a; b < n && k[b].key == k[a].key; b++) {
			int e = k[b].i, j;
			img[e] = e;
			for (j = a; j < b; j++)
				if (img[k[j].i] == k[j].i && same_image(&enc->ex[k[j].i], &enc->ex[e], F)) {
					img[e] = k[j].i;
					break;
				}
		}
	}
	/* then the number of that image, counted in order of first appearance (img[i] <= i: already numbered) */
	for (i = 0; i < n; i++) {
		if (img[i] < i) {
			img[i] = img[img[i]];
			continue;
		}
		img[i] = d;
		first[d] = i;
		voff[d] = d ? voff[d - 1] + nlen[d - 1] : 0;
		nlen[d] = enc->ex[i].N;
		enc->cex[d++] = enc->ex[i];
	}
	return d;
}

/*
 * The visual embedding and the object-relationship encoder over the batch's d distinct images (find_images),
 * then each image's rows (its hidden states and attention maps if kept) copied to every example that has it.
 * The packed images' rows start where the batch's vision rows do and are never below them (an image's rows
 * come after the rows of fewer or the same images), so the copies, the last example first, read no rows
 * already written.
 */
static void vision_once(lx_encoder *enc, const lx_embed_bufs *emb, int d)
{
	const lx_config *c = lx_model_config(enc->m);
	int n = enc->n, V = enc->V, i, *img = enc->ints + 4 * n, *first = img + n, *cvoff = img + 2 * n;
	const lx_example *ex = enc->ex;
	const int *voff = enc->voff, *nlen = enc->nlen;
	float **maps = enc->maps.visn, *x = enc->x + (size_t)enc->L * c->hidden_size;
	size_t H = (size_t)c->hidden_size, r = (size_t)c->r_layers, kv = r + (size_t)c->x_layers;
	size_t nh = (size_t)c->num_attention_heads;

	/* the distinct images as the batch */
	enc->n = d;
	enc->ex = enc->cex;
	enc->voff = cvoff;
	enc->nlen = cvoff + n;
	enc->V = cvoff[d - 1] + enc->nlen[d - 1];
	if (maps) {
		for (i = 0; i < d; i++)
			enc->ptrs[6 * n + i] = maps[first[i]];
		enc->maps.visn = enc->ptrs + 6 * n;
	}
	embed_vision(enc, emb);
	single_encoder(enc, 1, &enc->acts);
	enc->n = n;
	enc->ex = ex;
	enc->voff = voff;
	enc->nlen = nlen;
	enc->V = V;
	enc->maps.visn = maps;

	for (i = n - 1; i >= 0; i--) {
		size_t N = (size_t)nlen[i], from = (size_t)cvoff[img[i]];
		memmove(x + voff[i] * H, x + from * H, N * H * sizeof(float));
		if (enc->want & LX_WANT_HIDDEN)
			memmove(enc->s.visn_hidden + kv * voff[i] * H, enc->s.visn_hidden + kv * from * H,
			        r * N * H * sizeof(float));
		if (maps && first[img[i]] != i)
			memcpy(maps[i], maps[first[img[i]]], r * nh * N * N * sizeof(float));
	}
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
	if (!enc)
		return;
	free(enc->arena);
	lx_pack_free(enc->pack);
	free(enc->ints);
	free(enc->groups);
	free(enc->ptrs);
	free(enc->keys);
	free(enc->cex);
	free(enc);
}

float *lx_take(float *base, size_t *off, size_t n)
{
	float *p = base ? base + *off : NULL;

	*off += (n + 15) / 16 * 16;
	return p;
}

float *lx_arena_grow(float **arena, size_t *cap, size_t n)
{
	void *p = NULL;

	if (n <= *cap && *arena)
		return *arena;
	free(*arena);
	*arena = posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) ? NULL : p;
	*cap = *arena ? n : 0;
	return *arena;
}

/* Lays lx_encode's scratch for the batch out over base (NULL: only counts), with each side's own activation
 * and scores when sides is set (a batch of one); returns the floats it takes. */
static size_t plan(lx_enc_scratch *s, const lx_config *c, int want, int compute, int sides, const lx_example *ex,
                   int n, float *base)
{
	size_t H = (size_t)c->hidden_size, nh = (size_t)c->num_attention_heads, L = 0, V = 0, maxr, sc = 0, off = 0;
	size_t maps[6] = {0}, kl = (size_t)(c->l_layers + c->x_layers), kv = (size_t)(c->r_layers + c->x_layers);
	size_t wide = (size_t)(c->intermediate_size > c->visual_feat_dim ? c->intermediate_size : c->visual_feat_dim);
	int i;

	for (i = 0; i < n; i++) {
		size_t T = (size_t)ex[i].T, N = (size_t)ex[i].N, m = T > N ? T : N;
		L += T;
		V += N;
		if (nh * m * m > sc)
			sc = nh * m * m;
		maps[0] += (size_t)c->l_layers * nh * T * T;
		maps[1] += (size_t)c->r_layers * nh * N * N;
		maps[2] += (size_t)c->x_layers * nh * T * N;
		maps[3] += (size_t)c->x_layers * nh * N * T;
		maps[4] += (size_t)c->x_layers * nh * T * T;
		maps[5] += (size_t)c->x_layers * nh * N * N;
	}
	maxr = L > V ? L : V;
	s->x = lx_take(base, &off, (L + V) * H);
	s->x2 = lx_take(base, &off, (L + V) * H);
	s->q = lx_take(base, &off, (L + V) * H);
	s->k = lx_take(base, &off, (L + V) * H);
	s->v = lx_take(base, &off, (L + V) * H);
	s->ctx = lx_take(base, &off, (L + V) * H);
	s->inter = lx_take(base, &off, maxr * wide);
	s->pos = lx_take(base, &off, V * 4);
	s->scores = lx_take(base, &off, sc);
	s->pool_in = lx_take(base, &off, (size_t)n * H);
	s->pooled = lx_take(base, &off, (size_t)n * H);
	s->lang_hidden = s->visn_hidden = NULL;
	if (want & LX_WANT_HIDDEN) {
		s->lang_hidden = lx_take(base, &off, kl * L * H);
		s->visn_hidden = lx_take(base, &off, kv * V * H);
	}
	for (i = 0; i < 6; i++)
		s->maps[i] = want & LX_WANT_ATTN ? lx_take(base, &off, maps[i]) : NULL;
	s->qact = NULL;
	s->qscale = NULL;
	if (compute != LX_F32) {
		/* the widest input of a linear layer, as bytes (int8) or halves (bfloat16), and a scale a row */
		s->qact = lx_take(base, &off, ((L + V) * (wide > H ? wide : H) + 1) / 2);
		s->qscale = lx_take(base, &off, L + V);
	}
	s->inter2 = s->scores2 = NULL;
	if (sides) {
		size_t few = L < V ? L : V;
		s->inter2 = lx_take(base, &off, few * wide);
		s->scores2 = lx_take(base, &off, nh * few * few);
	}
	return off;
}

/* Sizes the scratch and the per-example arrays for the batch; returns -1 when memory runs out. */
static int size_buffers(lx_encoder *enc, const lx_example *ex, int n)
{
	const lx_config *c = lx_model_config(enc->m);
	int compute = lx_model_compute(enc->m);
	size_t need;

	/* a batch of one runs its two sides side by side on two threads or more */
	enc->sides = n == 1 && lx_threads() >= 2;
	need = plan(&enc->s, c, enc->want, compute, enc->sides, ex, n, NULL);

	if (!lx_arena_grow(&enc->arena, &enc->cap, need))
		return -1;
	plan(&enc->s, c, enc->want, compute, enc->sides, ex, n, enc->arena);
	if (n > enc->cap_n) {
		free(enc->ints);
		free(enc->groups);
		free(enc->ptrs);
		free(enc->keys);
		free(enc->cex);
		enc->ints = malloc((size_t)n * 8 * sizeof *enc->ints);
		enc->groups = malloc((size_t)n * 2 * sizeof *enc->groups);
		enc->ptrs = malloc((size_t)n * 7 * sizeof *enc->ptrs);
		enc->keys = malloc((size_t)n * sizeof *enc->keys);
		enc->cex = malloc((size_t)n * sizeof *enc->cex);
		enc->cap_n = enc->ints && enc->groups && enc->ptrs && enc->keys && enc->cex ? n : 0;
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

/* Each side's scratch set, where they run side by side: its rows of q, k, v, ctx and of the quantized input;
 * the larger side the shared activation and scores, the smaller side its own (s.inter2, s.scores2). */
static void set_sides(lx_encoder *enc)
{
	const lx_config *c = lx_model_config(enc->m);
	size_t H = (size_t)c->hidden_size, wide = (size_t)(c->intermediate_size > c->visual_feat_dim
	                                                   ? c->intermediate_size : c->visual_feat_dim);
	int small = enc->V < enc->L, i;

	if (wide < H)
		wide = H;
	for (i = 0; i < 2; i++) {
		lx_block_acts *a = &enc->side[i];
		size_t first = i ? (size_t)enc->L : 0;
		memset(a, 0, sizeof *a);
		a->q = enc->s.q + first * H;
		a->k = enc->s.k + first * H;
		a->v = enc->s.v + first * H;
		a->ctx = enc->s.ctx + first * H;
		a->inter = i == small ? enc->s.inter2 : enc->s.inter;
		a->scores = i == small ? enc->s.scores2 : enc->s.scores;
		/* two bytes an element: room for bfloat16's halves as for int8's bytes */
		a->qact = enc->s.qact ? (char *)enc->s.qact + 2 * first * wide : NULL;
		a->qscale = enc->s.qscale ? enc->s.qscale + first : NULL;
	}
}

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
	enc->x = enc->s.x;
	enc->x2 = enc->s.x2;
	memset(&enc->acts, 0, sizeof enc->acts);
	enc->acts.q = enc->s.q;
	enc->acts.k = enc->s.k;
	enc->acts.v = enc->s.v;
	enc->acts.ctx = enc->s.ctx;
	enc->acts.inter = enc->s.inter;
	enc->acts.scores = enc->s.scores;
	enc->acts.qact = enc->s.qact;
	enc->acts.qscale = enc->s.qscale;
	if (enc->sides)
		set_sides(enc);
	return LX_OK;
}

/* Points base[i] at example i's attention maps of one kind, [layers, h, tq, tk] each, in buf: each example's
 * start where the one before it ends. qv, kv: the queries, the keys are boxes (else words). */
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
	int H = c->hidden_size, nh = c->num_attention_heads, i, k, d, kl = c->l_layers + c->x_layers,
	    kv = c->r_layers + c->x_layers, hid = (enc->want & LX_WANT_HIDDEN) != 0,
	    att = (enc->want & LX_WANT_ATTN) != 0;
	lx_enc_scratch *s = &enc->s;
	lx_attn_maps *maps = &enc->maps;
	lx_embed_bufs emb;
	lx_status rc;

	if ((rc = lx_enc_prepare(enc, ex, n, e)))
		return rc;
	enc->packed = 1;
	memset(maps, 0, sizeof *maps);
	if (att) {
		maps->lang = attn_bases(enc->ptrs, s->maps[0], ex, n, c->l_layers, nh, 0, 0);
		maps->visn = attn_bases(enc->ptrs + n, s->maps[1], ex, n, c->r_layers, nh, 1, 1);
		maps->x_lv = attn_bases(enc->ptrs + 2 * n, s->maps[2], ex, n, c->x_layers, nh, 0, 1);
		maps->x_vl = attn_bases(enc->ptrs + 3 * n, s->maps[3], ex, n, c->x_layers, nh, 1, 0);
		maps->x_ll = attn_bases(enc->ptrs + 4 * n, s->maps[4], ex, n, c->x_layers, nh, 0, 0);
		maps->x_vv = attn_bases(enc->ptrs + 5 * n, s->maps[5], ex, n, c->x_layers, nh, 1, 1);
	}

	/* the embeddings: the visual features packed in inter, the box branch in x2, before any layer needs them */
	memset(&emb, 0, sizeof emb);
	emb.lang = enc->x;
	emb.visn = enc->x + (size_t)enc->L * H;
	emb.feats = s->inter;
	emb.pos = s->pos;
	emb.box = enc->x2 + (size_t)enc->L * H;

	/* the language encoder and the object-relationship encoder, the latter once for each distinct image */
	if (n > 1 && !enc->drop && (d = find_images(enc)) < n) {
		embed_language(enc, &emb);
		single_encoder(enc, 0, &enc->acts);
		vision_once(enc, &emb, d);
	} else {
		lx_enc_embed(enc, &emb);
		both_sides(enc, NULL, 0);
	}

	/* the cross-modality encoder */
	for (k = 0; k < c->x_layers; k++) {
		cross_layer(enc, &w->x[k], k);
		if (hid) {
			keep_hidden(enc, s->lang_hidden, 0, enc->loff, enc->tlen, kl, c->l_layers + k);
			keep_hidden(enc, s->visn_hidden, enc->L, enc->voff, enc->nlen, kv, c->r_layers + k);
		}
	}

	/* the pooler */
	lx_enc_pool(enc, enc->x, s->pool_in, s->pooled);

	for (i = 0; i < n; i++) {
		lx_outputs *o = &out[i];
		memset(o, 0, sizeof *o);
		o->lang = enc->x + (size_t)enc->loff[i] * H;
		o->visn = enc->x + ((size_t)enc->L + enc->voff[i]) * H;
		o->pooled = s->pooled + (size_t)i * H;
		if (hid) {
			o->lang_hidden = s->lang_hidden + (size_t)kl * enc->loff[i] * H;
			o->visn_hidden = s->visn_hidden + (size_t)kv * enc->voff[i] * H;
		}
		if (att) {
			o->attn_l = maps->lang[i];
			o->attn_r = maps->visn[i];
			o->attn_xl = maps->x_lv[i];
			o->attn_xv = maps->x_vl[i];
			o->attn_xls = maps->x_ll[i];
			o->attn_xvs = maps->x_vv[i];
		}
	}
	enc->packed = 0;
	return LX_OK;
}

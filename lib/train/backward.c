/*
 * backward.c - one training step's forward and backward passes over a batch: the encoder (embeddings, the
 * three encoders, the pooler) keeping every block's activations (lx_block_acts, one set per block), the
 * heads with HF's and the authors' losses, and the gradients of all of it, added into one array laid out as
 * the parameters (train_impl.h). The matrix products go to lx_op_matmul, as in the forward pass.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/heads_impl.h"
#include "nn/ops.h"
#include "train/train_impl.h"

/* The answer head's LayerNorm and the prediction-head transforms use eps 1e-12 whatever the config says. */
#define HEAD_EPS 1e-12f

/* The gradient of parameter p. */
#define G(p) lx_grad_of(g, (p))

float *lx_grad_of(const lx_gradmap *g, const float *p)
{
	size_t k = (size_t)(p - g->param);
	int lo = 0, hi = g->nt - 1;

	if (!g->grad)
		return NULL;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if (g->off[mid] <= k)
			lo = mid;
		else
			hi = mid - 1;
	}
	g->touched[lo] = 1;
	return g->grad + k;
}

/* One block of the encoder as the training forward ran it. */
typedef struct {
	int ffn, kind, rows;     /* feed-forward or attention (LX_ATT_*), rows of its input */
	size_t first;            /* first row of its input in the joint layout (language rows, then vision) */
	const lx_attn_w *aw;
	const lx_ffn_w *fw;
	const float *in;         /* [rows, H] */
	float *out;              /* [rows, H] */
	lx_block_acts a;         /* a.train points at tr */
	lx_block_train tr;
	float *dprobs;           /* attention, when the tape keeps them: the gradient of tr.probs, same layout */
} tblock;

enum { H_ROWS, H_PRE, H_ACT, H_XHAT, H_RSTD, H_HID, H_OUT, H_OUT2, H_OUT3, H_D, H_D2, H_DROWS, NHBUF };

struct lx_tape {
	float *arena;
	size_t cap;
	tblock *blk;
	int nblk, cap_blk;
	int keep_dprobs;         /* lx_answer_forward: keep each attention block's dprobs */
	lx_embed_bufs emb;                                     /* the embeddings, with what their backward reads */
	const float *lang_last, *visn_last;                    /* the language and object-relationship outputs */
	float *xc;                                             /* [L + V, H]: the cross-modality encoder's input */
	float *final;                                          /* [L + V, H]: the encoder's output */
	float *pool_in, *pooled, *dpool;                       /* [n, H] */
	/* backward scratch */
	float *g1, *g2;                                        /* [L + V, H]: gradients of block outputs/inputs */
	float *dy, *dctx, *dq, *dk, *dv;                       /* [L + V, H] */
	float *act, *dint;                                     /* [max rows, I] */
	float *sd, *ds;                                        /* [max tq tk] */
	/* heads */
	float *hb[NHBUF];
	size_t hcap[NHBUF];
	int *idx;
	int cap_idx;
};

lx_tape *lx_tape_new(void)
{
	return calloc(1, sizeof(lx_tape));
}

void lx_tape_free(lx_tape *t)
{
	int i;

	if (!t)
		return;
	free(t->arena);
	free(t->blk);
	for (i = 0; i < NHBUF; i++)
		free(t->hb[i]);
	free(t->idx);
	free(t);
}

/* ---- the tape's layout ---- */

static tblock *add_block(lx_tape *t, int ffn, int kind, size_t first, int rows)
{
	tblock *b = &t->blk[t->nblk++];

	memset(b, 0, sizeof *b);
	b->ffn = ffn;
	b->kind = kind;
	b->first = first;
	b->rows = rows;
	return b;
}

/* The buffers of block b reading `in` (its rows) and writing out (NULL: a buffer of its own); returns its
 * output. */
static float *block_buffers(lx_tape *t, lx_encoder *enc, tblock *b, const float *in, float *out, float *base,
                            size_t *off)
{
	const lx_config *c = lx_model_config(enc->m);
	size_t H = (size_t)c->hidden_size, rows = (size_t)b->rows;

	b->in = in;
	b->a.train = &b->tr;
	b->a.scores = enc->s.scores;
	b->a.qact = enc->s.qact;
	b->a.qscale = enc->s.qscale;
	b->tr.drop = lx_block_drop_sites((int)(b - t->blk));
	if (b->ffn) {
		b->tr.pre = lx_take(base, off, rows * c->intermediate_size);
		b->a.inter = t->act;
	} else {
		b->a.q = lx_take(base, off, rows * H);
		b->a.k = lx_take(base, off, rows * H);
		b->a.v = lx_take(base, off, rows * H);
		b->a.ctx = lx_take(base, off, rows * H);
		b->tr.probs = lx_take(base, off, lx_enc_probs_size(enc, b->kind));
		b->dprobs = t->keep_dprobs ? lx_take(base, off, lx_enc_probs_size(enc, b->kind)) : NULL;
	}
	b->tr.xhat = lx_take(base, off, rows * H);
	b->tr.rstd = lx_take(base, off, rows);
	return b->out = out ? out : lx_take(base, off, rows * H);
}

/* Lays the tape out for the encoder's current batch over base (NULL: only counts); returns the floats used. */
static size_t layout(lx_tape *t, lx_encoder *enc, float *base)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	size_t H = (size_t)c->hidden_size, Dff = (size_t)c->intermediate_size, L = (size_t)enc->L, V = (size_t)enc->V;
	size_t off = 0, maxr = L > V ? L : V, sc = 0;
	int k, i;
	const float *lang, *visn;
	float *j;

	for (i = 0; i < enc->n; i++) {
		size_t m = (size_t)(enc->tlen[i] > enc->nlen[i] ? enc->tlen[i] : enc->nlen[i]);
		if (m * m > sc)
			sc = m * m;
	}
	t->emb.lang = lx_take(base, &off, L * H);
	t->emb.xhat_l = lx_take(base, &off, L * H);
	t->emb.rstd_l = lx_take(base, &off, L);
	t->emb.visn = lx_take(base, &off, V * H);
	t->emb.feats = lx_take(base, &off, V * c->visual_feat_dim);
	t->emb.pos = lx_take(base, &off, V * 4);
	t->emb.box = lx_take(base, &off, V * H);
	t->emb.xhat_f = lx_take(base, &off, V * H);
	t->emb.rstd_f = lx_take(base, &off, V);
	t->emb.xhat_b = lx_take(base, &off, V * H);
	t->emb.rstd_b = lx_take(base, &off, V);
	t->xc = lx_take(base, &off, (L + V) * H);
	t->pool_in = lx_take(base, &off, (size_t)enc->n * H);
	t->pooled = lx_take(base, &off, (size_t)enc->n * H);
	t->dpool = lx_take(base, &off, (size_t)enc->n * H);
	t->g1 = lx_take(base, &off, (L + V) * H);
	t->g2 = lx_take(base, &off, (L + V) * H);
	t->dy = lx_take(base, &off, (L + V) * H);
	t->dctx = lx_take(base, &off, (L + V) * H);
	t->dq = lx_take(base, &off, (L + V) * H);
	t->dk = lx_take(base, &off, (L + V) * H);
	t->dv = lx_take(base, &off, (L + V) * H);
	t->act = lx_take(base, &off, maxr * Dff);
	t->dint = lx_take(base, &off, maxr * Dff);
	t->sd = lx_take(base, &off, sc);
	t->ds = lx_take(base, &off, sc);

	t->nblk = 0;
	lang = t->emb.lang;
	for (k = 0; k < c->l_layers; k++) {
		tblock *b = add_block(t, 0, LX_ATT_LANG, 0, enc->L);
		b->aw = &w->l[k].att;
		lang = block_buffers(t, enc, b, lang, NULL, base, &off);
		b = add_block(t, 1, 0, 0, enc->L);
		b->fw = &w->l[k].ffn;
		lang = block_buffers(t, enc, b, lang, NULL, base, &off);
	}
	visn = t->emb.visn;
	for (k = 0; k < c->r_layers; k++) {
		tblock *b = add_block(t, 0, LX_ATT_VISN, L, enc->V);
		b->aw = &w->r[k].att;
		visn = block_buffers(t, enc, b, visn, NULL, base, &off);
		b = add_block(t, 1, 0, L, enc->V);
		b->fw = &w->r[k].ffn;
		visn = block_buffers(t, enc, b, visn, NULL, base, &off);
	}
	t->final = t->xc;
	for (k = 0; k < c->x_layers; k++) {
		tblock *b = add_block(t, 0, LX_ATT_CROSS, 0, enc->L + enc->V);
		b->aw = &w->x[k].cross;
		j = block_buffers(t, enc, b, t->final, NULL, base, &off);
		/* each side's self-attention and feed-forward write the two halves of one joint buffer */
		b = add_block(t, 0, LX_ATT_LANG, 0, enc->L);
		b->aw = &w->x[k].lang_self;
		block_buffers(t, enc, b, j, NULL, base, &off);
		b = add_block(t, 0, LX_ATT_VISN, L, enc->V);
		b->aw = &w->x[k].visn_self;
		block_buffers(t, enc, b, j + L * H, NULL, base, &off);
		j = lx_take(base, &off, (L + V) * H);
		b = add_block(t, 1, 0, 0, enc->L);
		b->fw = &w->x[k].lang_ffn;
		block_buffers(t, enc, b, t->blk[t->nblk - 3].out, j, base, &off);
		b = add_block(t, 1, 0, L, enc->V);
		b->fw = &w->x[k].visn_ffn;
		block_buffers(t, enc, b, t->blk[t->nblk - 3].out, j ? j + L * H : NULL, base, &off);
		t->final = j;
	}
	t->lang_last = lang;
	t->visn_last = visn;
	return off;
}

/* Sizes the tape for the encoder's current batch. */
static int tape_size(lx_tape *t, lx_encoder *enc)
{
	const lx_config *c = lx_model_config(enc->m);
	int nblk = 2 * c->l_layers + 2 * c->r_layers + 5 * c->x_layers;
	size_t need;

	if (nblk > t->cap_blk) {
		free(t->blk);
		if (!(t->blk = malloc((size_t)(nblk + 1) * sizeof *t->blk)))
			return t->cap_blk = 0, -1;
		t->cap_blk = nblk;
	}
	need = layout(t, enc, NULL);
	if (!lx_arena_grow(&t->arena, &t->cap, need))
		return -1;
	layout(t, enc, t->arena);
	return 0;
}

/* ---- the training forward ---- */

static void forward(lx_tape *t, lx_encoder *enc)
{
	int H = lx_model_config(enc->m)->hidden_size, b;
	size_t L = (size_t)enc->L, V = (size_t)enc->V;

	lx_enc_embed(enc, &t->emb);
	for (b = 0; b < t->nblk; b++) {
		tblock *k = &t->blk[b];
		if (k->kind == LX_ATT_CROSS && k->in == t->xc) {
			memcpy(t->xc, t->lang_last, L * H * sizeof(float));
			memcpy(t->xc + L * H, t->visn_last, V * H * sizeof(float));
		}
		if (k->ffn)
			lx_enc_ffn(enc, k->fw, k->in, k->rows, k->out, &k->a);
		else
			lx_enc_attention(enc, k->aw, k->in, k->rows, enc->groups, lx_enc_groups(enc, k->kind, k->tr.probs), k->out,
			                 &k->a);
	}
	if (t->final == t->xc) {
		memcpy(t->xc, t->lang_last, L * H * sizeof(float));
		memcpy(t->xc + L * H, t->visn_last, V * H * sizeof(float));
	}
	lx_enc_pool(enc, t->final, t->pool_in, t->pooled);
}

/* ---- the encoder's backward ---- */

/* The output LayerNorm and dropout of a block: dy = the gradient of the residual sum, din = dy (the residual
 * path), and t->dy = the gradient of the block's dense output. */
static void block_out_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const tblock *k, const lx_norm_w *ln,
                               const float *dout, float *din)
{
	int H = lx_model_config(enc->m)->hidden_size;
	size_t n = (size_t)k->rows * H;

	lx_op_norm_backward(t->dy, dout, k->tr.xhat, k->tr.rstd, k->rows, H, ln->g, G(ln->g), G(ln->b));
	memcpy(din, t->dy, n * sizeof(float));
	lx_drop_apply(enc->drop, k->tr.drop.out, 0, t->dy, n);
}

static void ffn_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const tblock *k, const float *dout,
                         float *din)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_ffn_w *w = k->fw;
	int H = c->hidden_size, Dff = c->intermediate_size;
	size_t n = (size_t)k->rows * Dff;

	block_out_backward(t, enc, g, k, &w->ln, dout, din);
	memcpy(t->act, k->tr.pre, n * sizeof(float));
	lx_op_gelu(t->act, n, c->gelu_tanh);
	lx_op_linear_backward(t->dy, t->act, k->rows, w->out.w, H, Dff, G(w->out.w), G(w->out.b), t->dint, 0);
	lx_op_gelu_backward(t->dint, k->tr.pre, n, c->gelu_tanh);
	lx_op_linear_backward(t->dint, k->in, k->rows, w->inter.w, Dff, H, G(w->inter.w), G(w->inter.b), din, 1);
}

/* One group's attention, head h, backward: dctx -> dq, dk, dv (each row is a query of one group and a key
 * of one group, so each is written once). */
static void group_backward(lx_tape *t, lx_encoder *enc, const tblock *k, const attn_group *gr, int h)
{
	const lx_config *c = lx_model_config(enc->m);
	int H = c->hidden_size, dh = H / c->num_attention_heads, tq = gr->tq, tk = gr->tk, r, j;
	size_t n = (size_t)tq * tk, first = (size_t)(gr->probs - k->tr.probs) + (size_t)h * n, i;
	const float *P = gr->probs + (size_t)h * n, *Pd = P;
	const float *Q = k->a.q + (size_t)gr->qo * H + h * dh, *K = k->a.k + (size_t)gr->ko * H + h * dh,
	            *V = k->a.v + (size_t)gr->ko * H + h * dh, *dC = t->dctx + (size_t)gr->qo * H + h * dh;
	float *dS = t->ds, scale = 1.0f / sqrtf((float)dh);
	int drop = enc->drop && enc->drop->p > 0;

	if (drop) {
		for (i = 0; i < n; i++)
			t->sd[i] = P[i] * lx_drop_scale(enc->drop, k->tr.drop.probs, first + i);
		Pd = t->sd;
	}
	/* dPd = dC V^T; dV = Pd^T dC */
	lx_op_matmul('N', 'T', tq, tk, dh, 1.0f, dC, H, V, H, 0.0f, dS, tk);
	lx_op_matmul('T', 'N', tk, dh, tq, 1.0f, Pd, tk, dC, H, 0.0f, t->dv + (size_t)gr->ko * H + h * dh, H);
	if (drop)
		for (i = 0; i < n; i++)
			dS[i] *= lx_drop_scale(enc->drop, k->tr.drop.probs, first + i);
	if (k->dprobs)
		memcpy(k->dprobs + first, dS, n * sizeof(float));
	/* softmax: dS = P (dP - sum(dP P)), then the 1/sqrt(d) scale */
	for (r = 0; r < tq; r++) {
		const float *p = P + (size_t)r * tk;
		float *d = dS + (size_t)r * tk;
		double dot = 0;
		for (j = 0; j < tk; j++)
			dot += (double)d[j] * p[j];
		for (j = 0; j < tk; j++)
			d[j] = p[j] * (d[j] - (float)dot) * scale;
	}
	/* dQ = dS K; dK = dS^T Q */
	lx_op_matmul('N', 'N', tq, dh, tk, 1.0f, dS, tk, K, H, 0.0f, t->dq + (size_t)gr->qo * H + h * dh, H);
	lx_op_matmul('T', 'N', tk, dh, tq, 1.0f, dS, tk, Q, H, 0.0f, t->dk + (size_t)gr->ko * H + h * dh, H);
}

static void attn_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const tblock *k, const float *dout,
                          float *din)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_attn_w *w = k->aw;
	int H = c->hidden_size, nh = c->num_attention_heads, ng, i, h;

	block_out_backward(t, enc, g, k, &w->ln, dout, din);
	lx_op_linear_backward(t->dy, k->a.ctx, k->rows, w->o.w, H, H, G(w->o.w), G(w->o.b), t->dctx, 0);
	ng = lx_enc_groups(enc, k->kind, k->tr.probs);
	for (i = 0; i < ng; i++)
		for (h = 0; h < nh; h++)
			group_backward(t, enc, k, &enc->groups[i], h);
	lx_op_linear_backward(t->dq, k->in, k->rows, w->q.w, H, H, G(w->q.w), G(w->q.b), din, 1);
	lx_op_linear_backward(t->dk, k->in, k->rows, w->k.w, H, H, G(w->k.w), G(w->k.b), din, 1);
	lx_op_linear_backward(t->dv, k->in, k->rows, w->v.w, H, H, G(w->v.w), G(w->v.b), din, 1);
}

static void block_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const tblock *k, const float *dout,
                           float *din)
{
	if (k->ffn)
		ffn_backward(t, enc, g, k, dout, din);
	else
		attn_backward(t, enc, g, k, dout, din);
}

/* A block of one side of the last cross layer: run only when a loss reaches that side (as autograd leaves
 * the others' gradients None, and AdamW leaves them alone); otherwise its input gradient is zero. */
static void side_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const tblock *k, const float *dout,
                          float *din, int live)
{
	if (live)
		block_backward(t, enc, g, k, dout, din);
	else
		memset(din, 0, (size_t)k->rows * lx_model_config(enc->m)->hidden_size * sizeof(float));
}

static void swapf(float **a, float **b)
{
	float *x = *a;

	*a = *b;
	*b = x;
}

/* The embeddings' backward from dl [L, H] and dv [V, H] (both overwritten). Rows 0 of the word, position and
 * token-type tables get nothing from the lookup: HF's embeddings have padding_idx 0. */
static void embed_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, float *dl, float *dv)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, i, tt, j;
	size_t k, nv = (size_t)enc->V * H;
	float *gw = NULL, *gp = NULL, *gt = NULL;

	if (dl) {
		gw = G(w->word);
		gp = G(w->pos);
		gt = G(w->type);
		lx_drop_apply(enc->drop, LX_DROP_EMBED_LANG, 0, dl, (size_t)enc->L * H);
		lx_op_norm_backward(dl, dl, t->emb.xhat_l, t->emb.rstd_l, enc->L, H, w->ln.g, G(w->ln.g), G(w->ln.b));
	}

	for (i = 0; dl && i < enc->n; i++) {
		const lx_example *ex = &enc->ex[i];
		for (tt = 0; tt < ex->T; tt++) {
			const float *d = dl + (size_t)(enc->loff[i] + tt) * H;
			int id = ex->input_ids[tt], ty = ex->token_type_ids ? ex->token_type_ids[tt] : 0;
			for (j = 0; j < H; j++) {
				if (id)
					gw[(size_t)id * H + j] += d[j];
				if (tt)
					gp[(size_t)tt * H + j] += d[j];
				if (ty)
					gt[(size_t)ty * H + j] += d[j];
			}
		}
	}
	if (!dv)
		return;
	lx_drop_apply(enc->drop, LX_DROP_EMBED_VISN, 0, dv, nv);
	for (k = 0; k < nv; k++)
		dv[k] *= 0.5f;
	lx_op_norm_backward(t->dy, dv, t->emb.xhat_b, t->emb.rstd_b, enc->V, H, w->box_ln.g, G(w->box_ln.g), G(w->box_ln.b));
	lx_op_linear_backward(t->dy, t->emb.pos, enc->V, w->box_fc.w, H, 4, G(w->box_fc.w), G(w->box_fc.b), NULL, 0);
	lx_op_norm_backward(dv, dv, t->emb.xhat_f, t->emb.rstd_f, enc->V, H, w->visn_ln.g, G(w->visn_ln.g), G(w->visn_ln.b));
	lx_op_linear_backward(dv, t->emb.feats, enc->V, w->visn_fc.w, H, c->visual_feat_dim, G(w->visn_fc.w),
	                      G(w->visn_fc.b), NULL, 0);
}

/* From the gradient of the encoder's output (t->g1, [L + V, H]) and of the pooled outputs (t->dpool) down to
 * the embeddings. */
static void encoder_backward(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, int pool_live, int lang_live,
                             int visn_live)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, i, b, j;
	size_t LH = (size_t)enc->L * H, k;
	float *cur = t->g1, *oth = t->g2, *lc, *lo, *vc, *vo;

	/* the pooler: tanh(first row W + b) */
	if (pool_live) {
		for (k = 0; k < (size_t)enc->n * H; k++)
			t->dpool[k] *= 1.0f - t->pooled[k] * t->pooled[k];
		lx_op_linear_backward(t->dpool, t->pool_in, enc->n, w->pooler.w, H, H, G(w->pooler.w), G(w->pooler.b),
		                      t->dy, 0);
		for (i = 0; i < enc->n; i++)
			for (j = 0; j < H; j++)
				cur[(size_t)enc->loff[i] * H + j] += t->dy[(size_t)i * H + j];
	}

	/* the cross-modality layers, last block first: each stage reads one buffer and writes the other */
	for (b = t->nblk; b > 2 * (c->l_layers + c->r_layers); b -= 5) {
		const tblock *x = &t->blk[b - 5];
		side_backward(t, enc, g, &x[4], cur + LH, oth + LH, visn_live);
		side_backward(t, enc, g, &x[3], cur, oth, lang_live);
		swapf(&cur, &oth);
		side_backward(t, enc, g, &x[2], cur + LH, oth + LH, visn_live);
		side_backward(t, enc, g, &x[1], cur, oth, lang_live);
		swapf(&cur, &oth);
		block_backward(t, enc, g, &x[0], cur, oth);
		swapf(&cur, &oth);
		/* below the last cross layer, both sides reach the loss through the cross-attention */
		lang_live = visn_live = 1;
	}
	/* the object-relationship layers on the vision rows, the language layers on the language rows */
	lc = cur;
	lo = oth;
	vc = cur + LH;
	vo = oth + LH;
	for (b = 2 * (c->l_layers + c->r_layers) - 1; visn_live && b >= 2 * c->l_layers; b--) {
		block_backward(t, enc, g, &t->blk[b], vc, vo);
		swapf(&vc, &vo);
	}
	for (b = 2 * c->l_layers - 1; lang_live && b >= 0; b--) {
		block_backward(t, enc, g, &t->blk[b], lc, lo);
		swapf(&lc, &lo);
	}
	if (g->grad)
		embed_backward(t, enc, g, lang_live ? lc : NULL, visn_live ? vc : NULL);
}

/* ---- the heads ---- */

/* Head scratch buffer i with room for n floats (contents not kept), or NULL when memory runs out. */
static float *hbuf(lx_tape *t, int i, size_t n)
{
	return lx_grow_floats(&t->hb[i], &t->hcap[i], n);
}

/* Room for k ints in t->idx; -1 when memory runs out. */
static int need_idx(lx_tape *t, int k)
{
	int *p;

	if (k <= t->cap_idx)
		return 0;
	if (!(p = realloc(t->idx, (size_t)k * sizeof *p)))
		return -1;
	t->idx = p;
	t->cap_idx = k;
	return 0;
}

static lx_status no_memory(lx_err *e) { return lx_errf(e, LX_EIO, "out of memory in a training step"); }

/* hid[M, D] = LayerNorm(act(rows W + b)) with pre[M, D] = rows W + b, keeping the LayerNorm's xhat, rstd. */
static void transform_fwd(const lx_linear_w *dense, const lx_norm_w *ln, const float *rows, int M, int H, int D,
                          int tanh_form, float *pre, float *xhat, float *rstd, float *hid)
{
	lx_op_linear(pre, rows, M, dense, D, H);
	memcpy(hid, pre, (size_t)M * D * sizeof(float));
	lx_op_gelu(hid, (size_t)M * D, tanh_form);
	lx_op_add_norm_keep(hid, NULL, M, D, ln, HEAD_EPS, xhat, rstd);
}

/* Its backward: dhid (overwritten) to drows[M, H]. */
static void transform_bwd(const lx_gradmap *g, const lx_linear_w *dense, const lx_norm_w *ln, const float *rows,
                          int M, int H, int D, int tanh_form, const float *pre, const float *xhat,
                          const float *rstd, float *dhid, float *drows)
{
	lx_op_norm_backward(dhid, dhid, xhat, rstd, M, D, ln->g, G(ln->g), G(ln->b));
	lx_op_gelu_backward(dhid, pre, (size_t)M * D, tanh_form);
	lx_op_linear_backward(dhid, rows, M, dense->w, D, H, G(dense->w), G(dense->b), drows, 0);
}

/* The answer head on pooled_output: the authors' BCE on soft scores, or cross-entropy on ans. */
static lx_status qa_head(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const lx_train_labels *lab,
                         lx_losses *out, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, A = c->num_qa_labels, M = 0, i, m, j;
	float *rows, *pre, *xh, *rs, *hid, *s, *d, *dh, *dr;
	double sum = 0;
	lx_status rc;

	for (i = 0; i < enc->n; i++) {
		if (!lab[i].qa_target && !lab[i].l.has_ans)
			continue;
		if (!lab[i].qa_target && (rc = lx_check_label(lab[i].l.ans, A, "ans", -1, e)))
			return rc;
		if (lab[i].qa_target || lab[i].l.ans != -100)
			t->idx[M++] = i;
	}
	if (!M)
		return LX_OK;
	if (!(rows = hbuf(t, H_ROWS, (size_t)M * H)) || !(pre = hbuf(t, H_PRE, (size_t)M * 2 * H)) ||
	    !(xh = hbuf(t, H_XHAT, (size_t)M * 2 * H)) || !(rs = hbuf(t, H_RSTD, M)) ||
	    !(hid = hbuf(t, H_HID, (size_t)M * 2 * H)) || !(s = hbuf(t, H_OUT, (size_t)M * A)) ||
	    !(d = hbuf(t, H_D, (size_t)M * A)) || !(dh = hbuf(t, H_D2, (size_t)M * 2 * H)) ||
	    !(dr = hbuf(t, H_DROWS, (size_t)M * H)))
		return no_memory(e);
	for (m = 0; m < M; m++)
		memcpy(rows + (size_t)m * H, t->pooled + (size_t)t->idx[m] * H, H * sizeof(float));
	transform_fwd(&w->qa0, &w->qa_ln, rows, M, H, 2 * H, 0, pre, xh, rs, hid);
	lx_op_linear(s, hid, M, &w->qa3, A, 2 * H);
	for (m = 0; m < M; m++) {
		const lx_train_labels *l = &lab[t->idx[m]];
		const float *x = s + (size_t)m * A;
		float *dm = d + (size_t)m * A;
		if (l->qa_target) {
			sum += lx_bce_loss(x, l->qa_target, A);
			for (j = 0; j < A; j++)
				dm[j] = (float)((lx_sigmoid(x[j]) - l->qa_target[j]) / M);
		} else
			sum += lx_cross_entropy(x, A, l->l.ans, 1.0f / M, dm);
	}
	out->part[LX_LOSS_QA] = sum / M;
	out->has[LX_LOSS_QA] = 1;
	lx_op_linear_backward(d, hid, M, w->qa3.w, A, 2 * H, G(w->qa3.w), G(w->qa3.b), dh, 0);
	transform_bwd(g, &w->qa0, &w->qa_ln, rows, M, H, 2 * H, 0, pre, xh, rs, dh, dr);
	for (m = 0; m < M; m++)
		for (j = 0; j < H; j++)
			t->dpool[(size_t)t->idx[m] * H + j] += dr[(size_t)m * H + j];
	return LX_OK;
}

/* The image-text match head on pooled_output: cross-entropy on matched_label. */
static lx_status match_head(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const lx_train_labels *lab,
                            lx_losses *out, lx_err *e)
{
	const lx_weights *w = lx_model_weights(enc->m);
	int H = lx_model_config(enc->m)->hidden_size, M = 0, i, m, j;
	float *s, *d, *dr;
	double sum = 0;
	lx_status rc;

	for (i = 0; i < enc->n; i++) {
		if (!lab[i].l.has_matched)
			continue;
		if ((rc = lx_check_label(lab[i].l.matched_label, 2, "matched_label", -1, e)))
			return rc;
		if (lab[i].l.matched_label != -100)
			t->idx[M++] = i;
	}
	if (!M)
		return LX_OK;
	if (!(s = hbuf(t, H_OUT, (size_t)M * 2)) || !(d = hbuf(t, H_D, (size_t)M * 2)) ||
	    !(dr = hbuf(t, H_DROWS, (size_t)M * H)))
		return no_memory(e);
	for (m = 0; m < M; m++) {
		lx_op_linear(s + 2 * m, t->pooled + (size_t)t->idx[m] * H, 1, &w->match, 2, H);
		sum += lx_cross_entropy(s + 2 * m, 2, lab[t->idx[m]].l.matched_label, 1.0f / M, d + 2 * m);
		lx_op_linear_backward(d + 2 * m, t->pooled + (size_t)t->idx[m] * H, 1, w->match.w, 2, H, G(w->match.w),
		                      G(w->match.b), dr, 0);
		for (j = 0; j < H; j++)
			t->dpool[(size_t)t->idx[m] * H + j] += dr[j];
	}
	out->part[LX_LOSS_MATCH] = sum / M;
	out->has[LX_LOSS_MATCH] = 1;
	return LX_OK;
}

/* The masked-LM head on the labelled language rows: cross-entropy averaged over every labelled word. */
static lx_status mlm_head(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const lx_train_labels *lab,
                          lx_losses *out, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	lx_linear_w dec = {.w = w->mlm_decoder, .b = w->mlm_bias};
	int H = c->hidden_size, V = c->vocab_size, M = 0, i, tt, m, j;
	float *rows, *pre, *xh, *rs, *hid, *s, *dh, *dr;
	double sum = 0;
	lx_status rc;

	for (i = 0; i < enc->n; i++)
		for (tt = 0; lab[i].l.mlm_labels && tt < enc->tlen[i]; tt++) {
			if ((rc = lx_check_label(lab[i].l.mlm_labels[tt], V, "labels", tt, e)))
				return rc;
			M += lab[i].l.mlm_labels[tt] != -100;
		}
	if (!M)
		return LX_OK;
	if (!(rows = hbuf(t, H_ROWS, (size_t)M * H)) || !(pre = hbuf(t, H_PRE, (size_t)M * H)) ||
	    !(xh = hbuf(t, H_XHAT, (size_t)M * H)) || !(rs = hbuf(t, H_RSTD, M)) ||
	    !(hid = hbuf(t, H_HID, (size_t)M * H)) || !(s = hbuf(t, H_OUT, (size_t)M * V)) ||
	    !(dh = hbuf(t, H_D2, (size_t)M * H)) || !(dr = hbuf(t, H_DROWS, (size_t)M * H)) || need_idx(t, 2 * M))
		return no_memory(e);
	for (i = 0, m = 0; i < enc->n; i++)
		for (tt = 0; lab[i].l.mlm_labels && tt < enc->tlen[i]; tt++)
			if (lab[i].l.mlm_labels[tt] != -100) {
				t->idx[2 * m] = enc->loff[i] + tt;
				t->idx[2 * m + 1] = lab[i].l.mlm_labels[tt];
				memcpy(rows + (size_t)m++ * H, t->final + (size_t)(enc->loff[i] + tt) * H, H * sizeof(float));
			}
	transform_fwd(&w->mlm_dense, &w->mlm_ln, rows, M, H, H, c->gelu_tanh, pre, xh, rs, hid);
	lx_op_linear(s, hid, M, &dec, V, H);
	/* the logits' gradient replaces them */
	for (m = 0; m < M; m++)
		sum += lx_cross_entropy(s + (size_t)m * V, V, t->idx[2 * m + 1], 1.0f / M, s + (size_t)m * V);
	out->part[LX_LOSS_MLM] = sum / M;
	out->has[LX_LOSS_MLM] = 1;
	lx_op_linear_backward(s, hid, M, w->mlm_decoder, V, H, G(w->mlm_decoder), G(w->mlm_bias), dh, 0);
	transform_bwd(g, &w->mlm_dense, &w->mlm_ln, rows, M, H, H, c->gelu_tanh, pre, xh, rs, dh, dr);
	for (m = 0; m < M; m++)
		for (j = 0; j < H; j++)
			t->g1[(size_t)t->idx[2 * m] * H + j] += dr[(size_t)m * H + j];
	return LX_OK;
}

/* Which visual losses example i has. */
static int has_obj(const lx_labels *l) { return l->obj_labels && l->obj_mask; }
static int has_attr(const lx_labels *l) { return l->attr_labels && l->attr_mask; }
static int has_feat(const lx_labels *l) { return l->feat_mask && l->feat_target; }

/* One visual cross-entropy loss over logits [M, n] of the rows of examples with the label: sum of CE times
 * the box's mask, over every box of those examples, times the normaliser; d receives its gradient. */
static double box_ce(lx_encoder *enc, const lx_train_labels *lab, const float *logits, float *d, int n, int attr,
                     float norm, int *has)
{
	int i, r, row = 0, count = 0;
	double sum = 0;

	for (i = 0; i < enc->n; i++)
		if (attr ? has_attr(&lab[i].l) : has_obj(&lab[i].l))
			count += enc->nlen[i];
	for (i = 0; i < enc->n; i++) {
		const lx_labels *l = &lab[i].l;
		int want = attr ? has_attr(l) : has_obj(l);
		if (!(has_obj(l) || has_attr(l) || has_feat(l)))
			continue;
		for (r = 0; r < enc->nlen[i]; r++, row++) {
			const int32_t *lb = attr ? l->attr_labels : l->obj_labels;
			const float *mk = attr ? l->attr_mask : l->obj_mask;
			float *dr = d + (size_t)row * n;
			if (!want || lb[r] == -100) {
				memset(dr, 0, (size_t)n * sizeof(float));
				continue;
			}
			sum += lx_cross_entropy(logits + (size_t)row * n, n, lb[r], mk[r] / count * norm, dr) * mk[r];
		}
	}
	*has = count > 0;
	return count ? sum / count * norm : 0;
}

/* SmoothL1 (beta 1) of the predicted features, averaged over features, times the mask, over every box of
 * the examples with feat labels, times the normaliser; d receives its gradient. */
static double feat_l1(lx_encoder *enc, const lx_train_labels *lab, const float *pred, float *d, int F, float norm,
                      int *has)
{
	int i, r, j, row = 0, count = 0;
	double sum = 0;

	for (i = 0; i < enc->n; i++)
		if (has_feat(&lab[i].l))
			count += enc->nlen[i];
	for (i = 0; i < enc->n; i++) {
		const lx_labels *l = &lab[i].l;
		if (!(has_obj(l) || has_attr(l) || has_feat(l)))
			continue;
		for (r = 0; r < enc->nlen[i]; r++, row++) {
			const float *p = pred + (size_t)row * F, *tg = l->feat_target + (size_t)r * F;
			float *dr = d + (size_t)row * F, k;
			double s = 0;
			if (!has_feat(l)) {
				memset(dr, 0, (size_t)F * sizeof(float));
				continue;
			}
			k = l->feat_mask[r] / ((float)F * count) * norm;
			for (j = 0; j < F; j++) {
				double x = (double)p[j] - tg[j], ax = fabs(x);
				s += ax < 1 ? 0.5 * x * x : ax - 0.5;
				dr[j] = (float)(ax < 1 ? x : x > 0 ? 1 : -1) * k;
			}
			sum += s / F * l->feat_mask[r];
		}
	}
	*has = count > 0;
	return count ? sum / count * norm : 0;
}

/* The object head on the vision rows of the examples with visual labels. */
static lx_status obj_head(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, const lx_train_labels *lab,
                          lx_losses *out, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, F = c->visual_feat_dim, no = c->num_object_labels, na = c->num_attr_labels, M = 0;
	int i, r, j, wide = no > na ? no : na;
	float *rows, *pre, *xh, *rs, *hid, *s, *d, *dh, *dr, norm = c->visual_loss_normalizer;
	lx_status rc;

	if (F > wide)
		wide = F;
	for (i = 0; i < enc->n; i++) {
		const lx_labels *l = &lab[i].l;
		for (r = 0; r < enc->nlen[i]; r++)
			if ((has_obj(l) && (rc = lx_check_label(l->obj_labels[r], no, "obj_labels", r, e))) ||
			    (has_attr(l) && (rc = lx_check_label(l->attr_labels[r], na, "attr_labels", r, e))))
				return rc;
		if (has_obj(l) || has_attr(l) || has_feat(l))
			M += enc->nlen[i];
	}
	if (!M)
		return LX_OK;
	if (!(rows = hbuf(t, H_ROWS, (size_t)M * H)) || !(pre = hbuf(t, H_PRE, (size_t)M * H)) ||
	    !(xh = hbuf(t, H_XHAT, (size_t)M * H)) || !(rs = hbuf(t, H_RSTD, M)) ||
	    !(hid = hbuf(t, H_HID, (size_t)M * H)) || !(s = hbuf(t, H_OUT, (size_t)M * wide)) ||
	    !(d = hbuf(t, H_D, (size_t)M * wide)) || !(dh = hbuf(t, H_D2, (size_t)M * H)) ||
	    !(dr = hbuf(t, H_DROWS, (size_t)M * H)))
		return no_memory(e);
	for (i = 0, M = 0; i < enc->n; i++)
		if (has_obj(&lab[i].l) || has_attr(&lab[i].l) || has_feat(&lab[i].l)) {
			memcpy(rows + (size_t)M * H, t->final + ((size_t)enc->L + enc->voff[i]) * H,
			       (size_t)enc->nlen[i] * H * sizeof(float));
			M += enc->nlen[i];
		}
	transform_fwd(&w->obj_dense, &w->obj_ln, rows, M, H, H, c->gelu_tanh, pre, xh, rs, hid);
	memset(dh, 0, (size_t)M * H * sizeof(float));
	lx_op_linear(s, hid, M, &w->obj_obj, no, H);
	out->part[LX_LOSS_OBJ] = box_ce(enc, lab, s, d, no, 0, norm, &out->has[LX_LOSS_OBJ]);
	if (out->has[LX_LOSS_OBJ])
		lx_op_linear_backward(d, hid, M, w->obj_obj.w, no, H, G(w->obj_obj.w), G(w->obj_obj.b), dh, 1);
	lx_op_linear(s, hid, M, &w->obj_attr, na, H);
	out->part[LX_LOSS_ATTR] = box_ce(enc, lab, s, d, na, 1, norm, &out->has[LX_LOSS_ATTR]);
	if (out->has[LX_LOSS_ATTR])
		lx_op_linear_backward(d, hid, M, w->obj_attr.w, na, H, G(w->obj_attr.w), G(w->obj_attr.b), dh, 1);
	lx_op_linear(s, hid, M, &w->obj_feat, F, H);
	out->part[LX_LOSS_FEAT] = feat_l1(enc, lab, s, d, F, norm, &out->has[LX_LOSS_FEAT]);
	if (out->has[LX_LOSS_FEAT])
		lx_op_linear_backward(d, hid, M, w->obj_feat.w, F, H, G(w->obj_feat.w), G(w->obj_feat.b), dh, 1);
	transform_bwd(g, &w->obj_dense, &w->obj_ln, rows, M, H, H, c->gelu_tanh, pre, xh, rs, dh, dr);
	for (i = 0, M = 0; i < enc->n; i++)
		if (has_obj(&lab[i].l) || has_attr(&lab[i].l) || has_feat(&lab[i].l)) {
			float *dst = t->g1 + ((size_t)enc->L + enc->voff[i]) * H;
			for (j = 0; j < enc->nlen[i] * H; j++)
				dst[j] += dr[(size_t)M * H + j];
			M += enc->nlen[i];
		}
	return LX_OK;
}

/* ---- one step ---- */

lx_status lx_train_batch(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, int heads, int freeze_encoder,
                         const lx_example *ex, const lx_train_labels *lab, int n, lx_losses *loss, lx_err *e)
{
	int H = lx_model_config(enc->m)->hidden_size, k;
	lx_status rc;

	memset(loss, 0, sizeof *loss);
	if ((rc = lx_enc_prepare(enc, ex, n, e)))
		return rc;
	if (tape_size(t, enc) || need_idx(t, 2 * n))
		return no_memory(e);
	forward(t, enc);
	memset(t->g1, 0, ((size_t)enc->L + enc->V) * H * sizeof(float));
	memset(t->dpool, 0, (size_t)n * H * sizeof(float));
	if ((heads & LX_HEAD_QA) && (rc = qa_head(t, enc, g, lab, loss, e)))
		return rc;
	if ((heads & LX_HEAD_MATCH) && (rc = match_head(t, enc, g, lab, loss, e)))
		return rc;
	if ((heads & LX_HEAD_MLM) && (rc = mlm_head(t, enc, g, lab, loss, e)))
		return rc;
	if ((heads & LX_HEAD_OBJ) && (rc = obj_head(t, enc, g, lab, loss, e)))
		return rc;
	for (k = 0; k < LX_NLOSS; k++)
		if (loss->has[k])
			loss->total += loss->part[k];
	if (!freeze_encoder)
		encoder_backward(t, enc, g, loss->has[LX_LOSS_QA] || loss->has[LX_LOSS_MATCH],
		                 loss->has[LX_LOSS_QA] || loss->has[LX_LOSS_MATCH] || loss->has[LX_LOSS_MLM],
		                 loss->has[LX_LOSS_OBJ] || loss->has[LX_LOSS_ATTR] || loss->has[LX_LOSS_FEAT]);
	return LX_OK;
}

/* ---- the gradient of an answer score with respect to every attention map (lx-explain) ---- */

lx_status lx_answer_forward(lx_tape *t, lx_encoder *enc, const lx_example *ex, int n, float *scores, lx_err *e)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size;
	float *pre, *xh, *rs, *hid;
	lx_status rc;

	if (!w->has_qa)
		return lx_errf(e, LX_EMODEL, "%s: the model has no answer head", lx_model_dir(enc->m));
	if ((rc = lx_enc_prepare(enc, ex, n, e)))
		return rc;
	t->keep_dprobs = 1;
	if (tape_size(t, enc) || !(pre = hbuf(t, H_PRE, (size_t)n * 2 * H)) ||
	    !(xh = hbuf(t, H_XHAT, (size_t)n * 2 * H)) || !(rs = hbuf(t, H_RSTD, n)) ||
	    !(hid = hbuf(t, H_HID, (size_t)n * 2 * H)) || !hbuf(t, H_D, (size_t)n * c->num_qa_labels) ||
	    !hbuf(t, H_D2, (size_t)n * 2 * H))
		return no_memory(e);
	forward(t, enc);
	transform_fwd(&w->qa0, &w->qa_ln, t->pooled, n, H, 2 * H, 0, pre, xh, rs, hid);
	lx_op_linear(scores, hid, n, &w->qa3, c->num_qa_labels, 2 * H);
	return LX_OK;
}

void lx_answer_backward(lx_tape *t, lx_encoder *enc, const int *answer)
{
	const lx_config *c = lx_model_config(enc->m);
	const lx_weights *w = lx_model_weights(enc->m);
	int H = c->hidden_size, A = c->num_qa_labels, i;
	float *d = t->hb[H_D], *dh = t->hb[H_D2];
	lx_gradmap none = {0};

	memset(d, 0, (size_t)enc->n * A * sizeof(float));
	for (i = 0; i < enc->n; i++)
		d[(size_t)i * A + answer[i]] = 1;
	lx_op_linear_backward(d, t->hb[H_HID], enc->n, w->qa3.w, A, 2 * H, NULL, NULL, dh, 0);
	transform_bwd(&none, &w->qa0, &w->qa_ln, t->pooled, enc->n, H, 2 * H, 0, t->hb[H_PRE], t->hb[H_XHAT],
	              t->hb[H_RSTD], dh, t->dpool);
	memset(t->g1, 0, ((size_t)enc->L + enc->V) * H * sizeof(float));
	encoder_backward(t, enc, &none, 1, 1, 0);
}

int lx_tape_blocks(const lx_tape *t)
{
	return t->nblk;
}

int lx_tape_block(const lx_tape *t, int b, const float **probs, const float **dprobs)
{
	const tblock *k = &t->blk[b];

	*probs = k->tr.probs;
	*dprobs = k->dprobs;
	return k->ffn ? -1 : k->kind;
}

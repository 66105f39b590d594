/*
 * encoder_impl.h - the encoder's internals, shared by the forward pass (encoder.c) and the training code
 * (backward.c, train.c). Internal to the library: not installed, not part of the public API.
 *
 * The batch's hidden states are packed row after row: the language rows of every example, then the vision
 * rows of every example. Each block (an attention or a feed-forward sub-layer) reads its input rows and
 * writes its output rows and, through lx_block_acts, what it computed on the way. Inference gives every
 * block the same scratch set; a training forward gives each block its own set, which the backward pass reads.
 */
#ifndef LX_ENCODER_IMPL_H
#define LX_ENCODER_IMPL_H

#include <stdint.h>

#include "lx_encoder.h"

/* One attention problem: tq query rows from row qo over tk key rows from row ko of the block's input. */
typedef struct {
	int qo, tq, ko, tk;
	const float *mask;   /* [tk] or NULL */
	float *probs;        /* [heads, tq, tk] (before dropout), or NULL to use the scratch */
} attn_group;

/* Dropout: element i of site `site` is kept with probability 1 - p and scaled by 1 / (1 - p). The choice is
 * a hash of (seed, site, i), so the backward pass recomputes the mask instead of storing it, and the result
 * does not depend on the number of threads. p = 0 turns dropout off. */
typedef struct {
	float p;
	uint64_t seed;
} lx_dropout;

/* 0 or 1 / (1 - p). */
float lx_drop_scale(const lx_dropout *d, uint32_t site, uint64_t i);
/* x[i] *= lx_drop_scale(d, site, first + i) for i in [0, n). */
void lx_drop_apply(const lx_dropout *d, uint32_t site, uint64_t first, float *x, size_t n);

/* What one block computes on the way to its output. In inference the members are shared scratch. */
typedef struct {
	float *q, *k, *v, *ctx;  /* attention: [rows, H] projections and context */
	float *probs;            /* attention, training: every group's probabilities, packed in group order */
	float *inter;            /* feed-forward: [rows, I], the activation (scratch) */
	float *pre;              /* feed-forward, training: [rows, I], kept pre-activation; NULL in inference */
	float *xhat, *rstd;      /* training: the output LayerNorm's normalised input [rows, H] and 1/std [rows] */
	uint32_t site;           /* dropout site of the block (training) */
} lx_block_acts;

enum {
	B_X, B_X2, B_Q, B_K, B_V, B_CTX, B_INTER, B_TMP, B_SCORES, B_POOL_IN, B_POOLED,
	B_LHIST, B_VHIST, B_AL, B_AR, B_AXL, B_AXV, B_AXLS, B_AXVS, B_QACT, B_QSCALE, NBUF
};

/* Which attention groups a block has. */
enum { LX_ATT_LANG, LX_ATT_VISN, LX_ATT_CROSS };

struct lx_encoder {
	const lx_model *m;
	int want;
	lx_dropout drop;     /* training only; p = 0 in inference */
	struct lx_pack *pack; /* the linear layers' packed weights (lx_encode only: training changes weights) */
	int packed;          /* set while lx_encode runs: linear layers use pack */
	float *buf[NBUF];    /* see size_buffers for each one's size */
	size_t cap[NBUF];
	int cap_n;           /* examples the per-example arrays hold */
	int *ints;           /* [4 n]: offsets and lengths of both sides */
	attn_group *groups;  /* [2 n] */
	float **ptrs;        /* [6 n]: attention bases */
	/* the current batch */
	int n, L, V;         /* examples, language rows, vision rows */
	const int *loff, *tlen, *voff, *nlen;
	const lx_example *ex;
	float *x, *x2;       /* [L + V, H]: hidden states (updated layer by layer) and sub-block outputs */
	lx_block_acts acts;  /* inference: one set for every block */
};

/* Checks the examples, sizes the scratch and sets the batch's offsets. */
lx_status lx_enc_prepare(lx_encoder *enc, const lx_example *ex, int n, lx_err *e);
/* Fills enc->groups for a block of the given kind; with probs set, gives each group its packed slice of it.
 * Returns the number of groups. */
int lx_enc_groups(lx_encoder *enc, int kind, float *probs);
/* Floats of probabilities a block of that kind keeps for the current batch. */
size_t lx_enc_probs_size(const lx_encoder *enc, int kind);
/* out[rows, H] = LayerNorm(dropout(Attention(x) W_o + b_o) + x) over the groups in enc->groups. */
void lx_enc_attention(lx_encoder *enc, const lx_attn_w *w, const float *x, int rows, int ng, float *out,
                      const lx_block_acts *a);
/* out[rows, H] = LayerNorm(dropout(gelu(x W_1 + b_1) W_2 + b_2) + x). */
void lx_enc_ffn(lx_encoder *enc, const lx_ffn_w *w, const float *x, int rows, float *out, const lx_block_acts *a);
/* The language embedding into out [L, H]: xhat/rstd keep the LayerNorm's (NULL in inference). */
void lx_enc_embed_language(lx_encoder *enc, float *out, float *xhat, float *rstd, uint32_t site);
/* The visual embedding into out [V, H]. feats [V, F] and pos [V, 4] receive the packed inputs; tmp [V, H] is
 * scratch for the box branch; the xhat/rstd pairs keep the two LayerNorms' (NULL in inference). */
void lx_enc_embed_vision(lx_encoder *enc, float *out, float *feats, float *pos, float *tmp, float *xhat_f,
                         float *rstd_f, float *xhat_b, float *rstd_b, uint32_t site);
/* pooled[n, H] = tanh(the first language row of each example, x [L, H], through the pooler); in[n, H] receives
 * those rows. */
void lx_enc_pool(lx_encoder *enc, const float *x, float *in, float *pooled);

#endif

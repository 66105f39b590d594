/*
 * encoder_impl.h - the encoder's internals, shared by the forward pass (encoder.c) and the training code
 * (backward.c, train.c). Internal to the library: not installed, not part of the public API.
 *
 * The batch's hidden states are packed row after row: the language rows of every example, then the vision
 * rows of every example. Each block (an attention or a feed-forward sub-layer) reads its input rows and
 * writes its output rows and, through lx_block_acts, what it computed on the way. Inference gives every
 * block the same scratch set and no training state; a training forward gives each block its own set and a
 * lx_block_train, which the backward pass reads.
 *
 * Shapes in comments: L and V are the batch's language and vision rows (every example's T and N summed),
 * n the examples, H hidden_size, I intermediate_size, F visual_feat_dim, W the wider of I and F, h the heads.
 */
#ifndef LX_ENCODER_IMPL_H
#define LX_ENCODER_IMPL_H

#include <stdint.h>

#include "lx_encoder.h"

/* One attention problem: tq query rows from row qo over tk key rows from row ko of the block's input. */
typedef struct {
	int qo, tq, ko, tk;
	const float *mask;   /* [tk] or NULL */
	float *probs;        /* [h, tq, tk] (before dropout), or NULL to use the scratch */
} attn_group;

/* Dropout: element i of stream `site` is kept with probability 1 - p and scaled by 1 / (1 - p). The choice
 * is a hash of (seed, site, i), so the backward pass recomputes the mask instead of storing it, and the
 * result does not depend on the number of threads. p = 0 turns dropout off. */
typedef struct {
	float p;
	uint64_t seed;
} lx_dropout;

/* 0 or 1 / (1 - p). */
float lx_drop_scale(const lx_dropout *d, uint32_t site, uint64_t i);
/* x[i] *= lx_drop_scale(d, site, first + i) for i in [0, n); nothing when d is NULL or its p is 0. */
void lx_drop_apply(const lx_dropout *d, uint32_t site, uint64_t first, float *x, size_t n);

/* The dropout sites of a training forward, each its own stream of lx_drop_scale: the two embeddings'
 * outputs, and each block's attention probabilities and output (lx_block_drop_sites). The numbers fix the
 * masks, and so lx-train's results: they must not change. */
enum { LX_DROP_EMBED_LANG = 1, LX_DROP_EMBED_VISN = 5 };
typedef struct {
	uint32_t probs;      /* the attention probabilities (attention blocks) */
	uint32_t out;        /* the block's dense output, before the residual */
} lx_drop_sites;
/* The sites of the b-th block the training forward runs (b from 0). */
lx_drop_sites lx_block_drop_sites(int b);

/* What a training forward keeps of one block for the backward pass. */
typedef struct {
	float *probs;        /* attention: every group's probabilities [h, tq, tk], packed in group order */
	float *pre;          /* feed-forward: [rows, I], the pre-activation */
	float *xhat, *rstd;  /* the output LayerNorm's normalised input [rows, H] and 1/std [rows] */
	lx_drop_sites drop;
} lx_block_train;

/* What one block computes on the way to its output, and its scratch. In inference the members are shared
 * scratch (one set, or one a side where the two sides run side by side). */
typedef struct {
	float *q, *k, *v, *ctx;  /* attention: [rows, H] projections and context */
	float *inter;            /* feed-forward: [rows, I], the activation (scratch) */
	float *scores;           /* attention: [h, tq, tk] of the largest group, its scores or their dropped copy */
	void *qact;              /* int8 or bfloat16 models: [rows, max(W, H)] bytes or halves, the quantized input */
	float *qscale;           /* int8 or bfloat16 models: [rows] each row's scale */
	lx_block_train *train;   /* training: what the block keeps; NULL in inference */
} lx_block_acts;

/* The embeddings' buffers: the outputs, the packed inputs and, in training, what the backward pass reads. */
typedef struct {
	float *lang;             /* [L, H] the language embedding */
	float *visn;             /* [V, H] the visual embedding */
	float *feats;            /* [V, F] the examples' visual features, packed */
	float *pos;              /* [V, 4] their boxes, packed */
	float *box;              /* [V, H] the box branch (scratch) */
	/* training (NULL in inference): each LayerNorm's normalised input [rows, H] and 1/std [rows] */
	float *xhat_l, *rstd_l;  /* the language embedding's */
	float *xhat_f, *rstd_f;  /* the visual features' */
	float *xhat_b, *rstd_b;  /* the boxes' */
} lx_embed_bufs;

/* The attention maps lx_encode keeps (LX_WANT_ATTN): each [n] array gives example i's maps of every layer of
 * that kind, one after the other, [layers, h, tq, tk]; NULL when not kept. */
typedef struct {
	float **lang;            /* language self-attention, [l, h, T, T] */
	float **visn;            /* object-relationship self-attention, [r, h, N, N] */
	float **x_lv;            /* cross layers: words over boxes, [x, h, T, N] */
	float **x_vl;            /* cross layers: boxes over words, [x, h, N, T] */
	float **x_ll;            /* cross layers: language self-attention, [x, h, T, T] */
	float **x_vv;            /* cross layers: vision self-attention, [x, h, N, N] */
} lx_attn_maps;

/* lx_encode's scratch: one allocation, laid out by plan() (encoder.c) from the config and the batch. m is
 * the longest side (T or N) of any of the batch's examples. */
typedef struct {
	float *x;                /* [L + V, H] the hidden states, updated layer by layer */
	float *x2;               /* [L + V, H] the sub-layers' outputs */
	float *q, *k, *v, *ctx;  /* [L + V, H] attention's projections and context */
	float *inter;            /* [max(L, V), W] the feed-forward's activation; the visual features at first */
	float *pos;              /* [V, 4] the boxes, packed */
	float *scores;           /* [h, m, m] one example's attention scores, or their dropped copy */
	float *pool_in, *pooled; /* [n, H] the pooler's input rows and output */
	float *lang_hidden;      /* LX_WANT_HIDDEN: [(l + x) L, H], every language layer's output */
	float *visn_hidden;      /* LX_WANT_HIDDEN: [(r + x) V, H] */
	float *maps[6];          /* LX_WANT_ATTN: the storage of lx_attn_maps's six kinds, in its order */
	void *qact;              /* int8 or bfloat16 models: [L + V, max(W, H)] bytes or halves, the quantized input */
	float *qscale;           /* int8 or bfloat16 models: [L + V] each row's scale */
	/* a batch of one on two threads or more, whose language and vision sides run side by side (NULL
	 * otherwise): the smaller side's own feed-forward activation [min(T, N), W] and scores [h, min(T, N)^2] */
	float *inter2, *scores2;
} lx_enc_scratch;

/* Which attention groups a block has. */
enum { LX_ATT_LANG, LX_ATT_VISN, LX_ATT_CROSS };

struct lx_encoder {
	const lx_model *m;
	int want;
	const lx_dropout *drop;  /* training: the dropout; NULL in inference */
	struct lx_pack *pack;    /* the linear layers' packed weights (lx_encode only: training changes weights) */
	int packed;              /* set while lx_encode runs: linear layers use pack */
	float *arena;            /* every buffer of s */
	size_t cap;              /* floats in arena */
	lx_enc_scratch s;
	int cap_n;               /* examples the per-example arrays hold */
	int *ints;               /* [8 n]: offsets and lengths of both sides, then the distinct images' (encoder.c) */
	attn_group *groups;      /* [2 n] */
	float **ptrs;            /* [7 n]: the arrays of lx_attn_maps, then the distinct images' vision maps */
	struct lx_img_key *keys; /* [n]: each example's image, hashed (lx_encode: one vision pass an image) */
	lx_example *cex;         /* [n]: the distinct images, as the examples that first have them */
	lx_attn_maps maps;
	/* the current batch */
	int n, L, V;             /* examples, language rows, vision rows */
	const int *loff, *tlen, *voff, *nlen;
	const lx_example *ex;
	float *x, *x2;           /* [L + V, H]: hidden states (updated layer by layer) and sub-block outputs */
	lx_block_acts acts;      /* inference: one set for every block */
	int sides;               /* the language and vision sides run side by side (s.inter2 set), each with ... */
	lx_block_acts side[2];   /* ... its own set: language, vision */
};

/* n floats at *off of an arena (NULL while only counting: base NULL), *off moved past them and rounded up to
 * 64 bytes: each buffer 64-byte aligned in an arena of lx_arena_grow. */
float *lx_take(float *base, size_t *off, size_t n);
/* *arena, 64-byte aligned, grown to n floats (contents not kept) when *cap is less; NULL when memory runs
 * out. */
float *lx_arena_grow(float **arena, size_t *cap, size_t n);

/* Checks the examples, sizes the scratch and sets the batch's offsets. */
lx_status lx_enc_prepare(lx_encoder *enc, const lx_example *ex, int n, lx_err *e);
/* Fills enc->groups for a block of the given kind; with probs set, gives each group its packed slice of it.
 * Returns the number of groups. */
int lx_enc_groups(lx_encoder *enc, int kind, float *probs);
/* Floats of probabilities a block of that kind keeps for the current batch. */
size_t lx_enc_probs_size(const lx_encoder *enc, int kind);
/* out[rows, H] = LayerNorm(dropout(Attention(x) W_o + b_o) + x) over the ng groups g. */
void lx_enc_attention(lx_encoder *enc, const lx_attn_w *w, const float *x, int rows, const attn_group *g, int ng,
                      float *out, const lx_block_acts *a);
/* out[rows, H] = LayerNorm(dropout(gelu(x W_1 + b_1) W_2 + b_2) + x). */
void lx_enc_ffn(lx_encoder *enc, const lx_ffn_w *w, const float *x, int rows, float *out, const lx_block_acts *a);
/* The language embedding into b->lang and the visual one into b->visn, from the batch's examples. */
void lx_enc_embed(lx_encoder *enc, const lx_embed_bufs *b);
/* pooled[n, H] = tanh(the first language row of each example, x [L, H], through the pooler); in[n, H] receives
 * those rows. */
void lx_enc_pool(lx_encoder *enc, const float *x, float *in, float *pooled);

#endif

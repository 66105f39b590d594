/*
 * lx_model.h - liblx's model layer: config.json and the model directory (weights mapped from
 * model.safetensors and bound by name). Ownership and errors as in lx_core.h.
 */
#ifndef LX_MODEL_H
#define LX_MODEL_H

#include "lx_fmt.h"

/* ---- the model -------------------------------------------------------------------------------------- */

typedef struct {
	int vocab_size, hidden_size, num_attention_heads, intermediate_size;
	int l_layers, r_layers, x_layers;
	int max_position_embeddings, type_vocab_size;
	int visual_feat_dim, visual_pos_dim;
	int num_qa_labels, num_object_labels, num_attr_labels;
	float layer_norm_eps, visual_loss_normalizer;
	int gelu_tanh; /* hidden_act "gelu_new"/"gelu_pytorch_tanh" instead of "gelu" */
} lx_config;

/* Parses config.json text (HF LxmertConfig names). path is for messages. */
lx_status lx_config_parse(lx_config *c, const char *json, size_t len, const char *path, lx_err *e);

/* A linear layer: w (out, in), b (out), in float32; or, in a model opened for reduced precision
 * (lx_model_open_as), w NULL and the weights as q (out, in) int8 with qs (out) the scale of each output
 * channel (w[o][i] ~ q[o][i] qs[o]), or as bf (out, in) bfloat16. */
typedef struct {
	const float *w, *b;
	const signed char *q;
	const float *qs;
	const unsigned short *bf;
} lx_linear_w;
typedef struct { const float *g, *b; } lx_norm_w;    /* g (H), b (H) */

typedef struct {
	lx_linear_w q, k, v;   /* (H, H) */
	lx_linear_w o;         /* (H, H) */
	lx_norm_w ln;
} lx_attn_w;

typedef struct {
	lx_linear_w inter;     /* (I, H) */
	lx_linear_w out;       /* (H, I) */
	lx_norm_w ln;
} lx_ffn_w;

typedef struct { lx_attn_w att; lx_ffn_w ffn; } lx_layer_w;  /* a BERT layer: language and r layers */

typedef struct {
	lx_attn_w cross;                  /* visual_attention, shared by both directions */
	lx_attn_w lang_self, visn_self;
	lx_ffn_w lang_ffn, visn_ffn;
} lx_xlayer_w;

typedef struct {
	const float *word;        /* (V, H) */
	const float *pos;         /* (P, H) */
	const float *type;        /* (2, H) */
	lx_norm_w ln;
	lx_linear_w visn_fc;      /* (H, F) */
	lx_norm_w visn_ln;
	lx_linear_w box_fc;       /* (H, 4) */
	lx_norm_w box_ln;
	lx_layer_w *l;            /* [l_layers] */
	lx_layer_w *r;            /* [r_layers] */
	lx_xlayer_w *x;           /* [x_layers] */
	lx_linear_w pooler;       /* (H, H) */

	/* heads: NULL pointers where the model has none (see the has_* flags) */
	int has_mlm, has_match, has_qa, has_obj;
	lx_linear_w mlm_dense;    /* (H, H) */
	lx_norm_w mlm_ln;
	const float *mlm_decoder; /* (V, H), tied to word when the file leaves it out */
	const float *mlm_bias;    /* (V) */
	lx_linear_w match;        /* (2, H) */
	lx_linear_w qa0;          /* (2H, H) */
	lx_norm_w qa_ln;          /* (2H) */
	lx_linear_w qa3;          /* (A, 2H) */
	lx_linear_w obj_dense;    /* (H, H) */
	lx_norm_w obj_ln;
	lx_linear_w obj_obj;      /* (num_object_labels, H) */
	lx_linear_w obj_attr;     /* (num_attr_labels, H) */
	lx_linear_w obj_feat;     /* (F, H) */
	/* the authors' NLVR2 classifier over the two images' pooled outputs side by side, under
	 * nlvr2_head.logit_fc.{0,2,3} (lx-convert's name for their logit_fc over 2H inputs) */
	int has_nlvr2;
	lx_linear_w nlvr2_0;      /* (2H, 2H) */
	lx_norm_w nlvr2_ln;       /* (2H) */
	lx_linear_w nlvr2_3;      /* (2, 2H) */
} lx_weights;

typedef struct lx_model lx_model;

/* Opens a model directory: config.json and model.safetensors (mapped, not copied; F16/BF16 tensors are
 * converted to float32 once here). Every tensor is checked by name, shape and dtype. vocab.txt is not read
 * here: lx_vocab_load (lx_tokenizer.h) reads it. */
lx_status lx_model_open(lx_model **out, const char *dir, lx_err *e);
/* lx_model_open, with the linear layers of the encoders and the pooler (the heads stay float32) computed in
 * `compute`: LX_F32 (a model stored in int8 is refused), LX_I8 (float weights quantized here, per output
 * channel; int8 weights as stored, formats/safetensors-int8.md), LX_BF16 (weights rounded to bfloat16 here),
 * or -1: as stored (int8 when the file holds int8 weights, else float32). */
lx_status lx_model_open_as(lx_model **out, const char *dir, int compute, lx_err *e);
/* The dtype the encoders' linear layers compute in: LX_F32, LX_I8 or LX_BF16. */
lx_dtype lx_model_compute(const lx_model *m);
/* Whether a tensor of that name and rank is one lx_model_open_as quantizes to int8: the weight of a linear
 * layer of the encoders or the pooler. */
int lx_model_int8_tensor(const char *name, int ndim);
/* q[rows, cols] and scale[rows] from w[rows, cols]: scale = max |w| of the row / 127 (1 for a zero row),
 * q = w / scale rounded to nearest. */
void lx_quantize_rows(signed char *q, float *scale, const float *w, int rows, int cols);
void lx_model_free(lx_model *m);
/* Heads, as flags. */
enum { LX_HEAD_QA = 1, LX_HEAD_MATCH = 2, LX_HEAD_MLM = 4, LX_HEAD_OBJ = 8, LX_HEAD_ALL = 15 };
/* The NLVR2 classifier (nlvr2_head.*): a head of fine-tuned models only, not among LXMERT's pretraining
 * heads (LX_HEAD_ALL). */
enum { LX_HEAD_NLVR2 = 16 };
/* Calls visit once for every tensor a model of config c with the given heads has, in HF's names, with its
 * shape (d0) or (d0, d1) (d1 < 0 for a vector). The tied MLM decoder is not listed. */
lx_status lx_model_tensors(const lx_config *c, int heads, void (*visit)(void *ctx, const char *name, int d0, int d1),
                           void *ctx, lx_err *e);
const lx_config *lx_model_config(const lx_model *m);
const lx_weights *lx_model_weights(const lx_model *m);
const char *lx_model_dir(const lx_model *m);

#endif

/*
 * lx_encoder.h - liblx's nn layer: LXMERT's three encoders over packed batches of examples.
 * Ownership and errors as in lx_core.h.
 */
#ifndef LX_ENCODER_H
#define LX_ENCODER_H

#include "lx_model.h"

/* ---- the encoders ----------------------------------------------------------------------------------- */

/* One example to encode: inputs as given by a record, outputs filled by lx_encode. */
typedef struct {
	int T, N;
	const int32_t *input_ids;       /* [T] */
	const int32_t *token_type_ids;  /* [T] or NULL (zeros) */
	const float *attention_mask;    /* [T] or NULL (all ones) */
	const float *visual_feats;      /* [N, F] */
	const float *visual_pos;        /* [N, 4] */
	const float *visual_mask;       /* [N] or NULL */
} lx_example;

/* Which extra outputs to keep. */
enum {
	LX_WANT_HIDDEN = 1,     /* language/vision hidden states of every layer */
	LX_WANT_ATTN = 2        /* attention probabilities of every layer, all six kinds */
};

/* Outputs of one example: pointers into the lx_encoder's buffers, valid until the next lx_encode. */
typedef struct {
	const float *lang;          /* [T, H] language_output */
	const float *visn;          /* [N, H] vision_output */
	const float *pooled;        /* [H] pooled_output */
	const float *lang_hidden;   /* [l+x, T, H] */
	const float *visn_hidden;   /* [r+x, N, H] */
	const float *attn_l;        /* [l, heads, T, T] language self-attention */
	const float *attn_r;        /* [r, heads, N, N] object-relationship self-attention */
	const float *attn_xl;       /* [x, heads, T, N] cross: language queries over boxes */
	const float *attn_xv;       /* [x, heads, N, T] cross: box queries over words */
	const float *attn_xls;      /* [x, heads, T, T] cross layers' language self-attention */
	const float *attn_xvs;      /* [x, heads, N, N] cross layers' vision self-attention */
} lx_outputs;

typedef struct lx_encoder lx_encoder;

/* The per-run state: scratch buffers grown to the largest batch seen, so that lx_encode allocates nothing
 * once it has seen a batch of that size. */
lx_encoder *lx_encoder_new(const lx_model *m, int want);
void lx_encoder_free(lx_encoder *enc);
/* Encodes n examples as one set of matrix products; out[i] receives example i's outputs. Checks every input
 * (ids within the vocabulary, T within max_position_embeddings, finite features) before computing. */
lx_status lx_encode(lx_encoder *enc, const lx_example *ex, int n, lx_outputs *out, lx_err *e);

/* Checks one example against the model: T in [1, max_position_embeddings], N >= 1, ids within the
 * vocabulary, token types within type_vocab_size, finite features and boxes. Messages name the field. */
lx_status lx_example_check(const lx_config *c, const lx_example *x, lx_err *e);

/* ---- examples from records ------------------------------------------------------------------------- */

/* The most boxes an example may have, in every tool. */
#define LX_MAX_BOXES 4096

/* An example decoded from a record (x), in buffers the struct owns, grown to the largest record decoded
 * into it. Start from a zeroed struct; lx_example_data_destroy frees the buffers. */
typedef struct {
	lx_example x;
	int32_t *ids, *types;
	float *amask, *feats, *pos, *vmask;
	size_t cap_t, cap_n, cap_f;
} lx_example_data;

/* Decodes the encoder inputs of rec into d->x (formats/stream.md): input_ids [T] of an integer dtype,
 * visual_feats [N, visual_feat_dim] and visual_pos [N, 4] of a float dtype, with 1 <= N <= LX_MAX_BOXES,
 * and the optional token_type_ids [T], attention_mask [T] and visual_attention_mask [N]; then checks the
 * example (lx_example_check). LX_EINPUT names the field; LX_EIO when memory runs out. */
lx_status lx_example_decode(const lx_config *c, const lx_record *rec, lx_example_data *d, lx_err *e);
void lx_example_data_destroy(lx_example_data *d);

/* The memory model of one example (lx-limits(7)): the bytes that encoding x takes beyond the model's
 * weights, an upper bound: its share of lx_encode's scratch buffers for the outputs asked for (want:
 * LX_WANT_ATTN, LX_WANT_HIDDEN) in the model's compute type (int8 and bfloat16 add a quantized copy of the
 * widest activations), the outputs again as packed into the record, and the inputs decoded into an
 * lx_example_data. A batch takes at most the sum over its examples. *packed (when not NULL) gets the bytes
 * the outputs add to the record. */
double lx_example_memory(const lx_config *c, int want, int compute, int T, int N, double *packed);

/* Pair records (NLVR2: one text, two images): the record's images, 2 when it has visual_feats0 (and no
 * visual_feats), else 1. lx_example_decode_image decodes image k of a pair (k 0 or 1: the fields
 * visual_feats<k>, visual_pos<k>, visual_attention_mask<k>, with the shared input_ids, token_type_ids and
 * attention_mask); k -1 is lx_example_decode. Messages name the suffixed field. */
int lx_example_images(const lx_record *rec);
lx_status lx_example_decode_image(const lx_config *c, const lx_record *rec, int image, lx_example_data *d,
                                  lx_err *e);

/* Number of threads (the caller included) that share the matrix products; by default the machine's online
 * cores. Threads with nothing to do sleep. */
void lx_set_threads(int n);

#endif

/*
 * train_impl.h - between the trainer (train.c) and the training forward and backward passes (backward.c).
 * Internal to the library: not installed, not part of the public API.
 */
#ifndef LX_TRAIN_IMPL_H
#define LX_TRAIN_IMPL_H

#include "nn/encoder_impl.h"
#include "lx_train.h"

/* Gradients live in one array laid out as the parameters: the gradient of parameter p is at
 * grad + (p - param). */
typedef struct {
	const float *param;
	float *grad;
	int nt;                   /* tensors */
	const size_t *off;        /* [nt] each tensor's first float, increasing */
	unsigned char *touched;   /* [nt] set when the backward pass reaches the tensor (torch: grad not None) */
} lx_gradmap;

/* The gradient of parameter p, marking its tensor as reached. */
float *lx_grad_of(const lx_gradmap *g, const float *p);

/* What a training forward keeps, and the backward pass's scratch: grown to the largest batch, reused. */
typedef struct lx_tape lx_tape;

lx_tape *lx_tape_new(void);
void lx_tape_free(lx_tape *t);

/* Forward, losses and backward over one batch with the encoder's model (whose weights g->param holds):
 * adds every gradient into g->grad (heads only when freeze_encoder is set). heads: LX_HEAD_* in use. */
lx_status lx_train_batch(lx_tape *t, lx_encoder *enc, const lx_gradmap *g, int heads, int freeze_encoder,
                         const lx_example *ex, const lx_train_labels *lab, int n, lx_losses *loss, lx_err *e);

/* For relevance maps (relevance.c): the forward of the encoder and the answer head over n examples, keeping
 * every attention map and room for its gradient; scores [n, num_qa_labels] receives the answer scores.
 * LX_EMODEL when the model has no answer head. */
lx_status lx_answer_forward(lx_tape *t, lx_encoder *enc, const lx_example *ex, int n, float *scores, lx_err *e);
/* After lx_answer_forward: the gradient of score answer[i] of each example i (each in [0, num_qa_labels))
 * with respect to every attention map the score depends on, without any parameter's gradient. May be called
 * again with other answers. The vision-side blocks of the last cross layer, which the answer does not depend
 * on, are left out and their gradients hold nothing. */
void lx_answer_backward(lx_tape *t, lx_encoder *enc, const int *answer);
/* The tape's blocks in the order the forward runs them (language layers, vision layers, then per cross layer
 * the cross-attention, the language and the vision self-attention and the two feed-forwards). Block b's
 * kind (LX_ATT_*, or -1 for a feed-forward), its probabilities and their gradient, packed in the order of
 * lx_enc_groups (NULL for a feed-forward). */
int lx_tape_blocks(const lx_tape *t);
int lx_tape_block(const lx_tape *t, int b, const float **probs, const float **dprobs);

#endif

/*
 * lx_train.h - training LXMERT: the parameters as mutable float32 tensors with their gradients, the
 * training forward pass that keeps what the backward pass needs, the backward pass of the encoder and of
 * every head, HF's and the authors' losses, AdamW (PyTorch's torch.optim.AdamW), and checkpoints.
 * Ownership and errors as in lx_core.h.
 *
 * Quirks of the reference, kept on purpose: Hugging Face's three embedding tables have padding_idx 0, so
 * row 0 of the word, position and token-type tables gets no gradient from the embedding lookup (the word
 * table's row 0 still gets the tied masked-LM decoder's). Dropout sits where HF puts it: after the
 * embeddings, on the attention probabilities, and on each block's output before its residual sum.
 */
#ifndef LX_TRAIN_H
#define LX_TRAIN_H

#include <stdint.h>

#include "lx_heads.h"

/* The labels of one example for training. */
typedef struct {
	lx_labels l;              /* HF's pretraining labels (lx_heads.h); l.ans is the single-label answer */
	const float *qa_target;   /* [num_qa_labels] soft scores: the authors' VQA/GQA loss instead of l.ans */
} lx_train_labels;

typedef struct {
	int new_head;             /* > 0: a fresh answer head with this many labels (HF's initialisation) */
	int freeze_encoder;       /* train only the heads: every lxmert.* tensor stays as it is */
	float dropout;            /* HF's hidden and attention dropout (0.1 in LXMERT); 0 for exact checks */
	uint64_t seed;            /* dropout masks and the new head's initial weights */
	float beta1, beta2, eps, weight_decay;  /* AdamW */
} lx_train_opts;

/* LXMERT's fine-tuning defaults: dropout 0.1, AdamW betas 0.9/0.999, eps 1e-6, weight decay 0.01. */
void lx_train_opts_init(lx_train_opts *o);

typedef struct lx_trainer lx_trainer;

/* Copies the weights of model directory dir (lx_model_open's rules) into a trainer. The heads are those the
 * model has, with the answer head replaced by a fresh one when o->new_head is set. */
lx_status lx_trainer_open(lx_trainer **out, const char *dir, const lx_train_opts *o, lx_err *e);
void lx_trainer_free(lx_trainer *t);

/* The answer head from model directory dir's, as the authors' load_lxmert_qa (--loadLXMERTQA) does it: every
 * layer but the last copied whole, and of the last layer (answer_head.logit_fc.3) the row and bias of each of
 * answers (the trainer's answer list, num_qa_labels names) taken from dir's row of the same name (dir's
 * answers.json or answers.txt); an answer dir's model does not have gets a zero row and bias, as theirs.
 * *matched receives the number of answers found. LX_EUSAGE when the trainer has no answer head, LX_EMODEL
 * when dir has none, no answer list, or layers of other shapes. */
lx_status lx_trainer_init_answers(lx_trainer *t, const char *dir, const lx_names *answers, int *matched, lx_err *e);

/* The model as it is now: its weights are the trainer's, so it follows every step (for evaluation with
 * lx_encode and lx_heads). */
const lx_model *lx_trainer_model(const lx_trainer *t);
/* The memory model of one training example of T tokens and N boxes (lx-limits(7)), in bytes: lx_example_
 * memory's scratch and inputs, the tape without the attention maps' gradients (lx_tape_memory), and the
 * heads' buffers for the heads in `heads` (LX_HEAD_* bits). A batch takes at most the sum over its examples.
 * The weights, their gradients and the optimizer's moments are not counted. */
double lx_train_memory(const lx_config *c, int heads, int T, int N);
/* LX_HEAD_* bits of the heads the model has. */
int lx_trainer_heads(const lx_trainer *t);

/* Forward and backward over a batch of n examples: the gradients of every trainable tensor (replacing the
 * previous ones) and the losses. Each loss part is averaged over the whole batch as HF does (masked-LM over
 * every labelled word, visual losses over every box of the examples with visual labels, the others over
 * the examples with that label); the answer loss is the authors' BCE (times the number of answers) where
 * qa_target is given, cross-entropy on ans otherwise. LX_EINPUT for a label out of range, naming it. */
lx_status lx_trainer_grad(lx_trainer *t, const lx_example *ex, const lx_train_labels *lab, int n, lx_losses *loss,
                          lx_err *e);
/* One AdamW step at learning rate lr on every trainable tensor, as torch.optim.AdamW does it: decay first
 * (p -= lr wd p), then the bias-corrected update. */
void lx_trainer_step(lx_trainer *t, float lr);
/* Gradient-norm clipping as torch.nn.utils.clip_grad_norm_ (the authors clip at 5 before every step): the L2
 * norm of all the gradients lx_trainer_grad left for trainable tensors, taken together; when it exceeds
 * max_norm, every one of them is multiplied by max_norm / (norm + 1e-6). max_norm 0 clips nothing. Returns
 * the norm before clipping. */
double lx_trainer_clip(lx_trainer *t, double max_norm);
/* AdamW steps taken. */
long lx_trainer_steps(const lx_trainer *t);

/* The tensors, in lx_model_tensors order: name, shape (d1 < 0 for a vector), data and gradient. */
int lx_trainer_count(const lx_trainer *t);
const char *lx_trainer_tensor(const lx_trainer *t, int i, int *d0, int *d1, float **data, const float **grad);
/* Index of a tensor by name, or -1. */
int lx_trainer_find(const lx_trainer *t, const char *name);

/* Writes config.json and model.safetensors (F32, or F16 when f16 is set) into the existing directory dir,
 * each atomically (lx_write_atomic), so that a failed write leaves the previous files whole. */
lx_status lx_trainer_save_model(const lx_trainer *t, const char *dir, int f16, lx_err *e);
/* A checkpoint in one file (weights, AdamW moments, step, the caller's extra counters, and its settings: text
 * recorded as it is, the caller's record of what the run depends on, or NULL), written atomically
 * (lx_write_atomic). */
lx_status lx_trainer_save_checkpoint(const lx_trainer *t, const char *path, const int64_t *extra, int nextra,
                                     const char *settings, lx_err *e);
/* Reads a checkpoint written by lx_trainer_save_checkpoint for the same tensors; extra receives up to nextra
 * counters, settings[n] the settings text ("" when the checkpoint has none). LX_EMODEL if a tensor is missing
 * or has another shape, or the settings do not fit in n bytes. */
lx_status lx_trainer_load_checkpoint(lx_trainer *t, const char *path, int64_t *extra, int nextra, char *settings,
                                     size_t n, lx_err *e);
/* A 64-bit digest (FNV-1a) of the names, shapes and current values of the tensors whose names start with
 * prefix ("" for all): what a checkpoint records of the model it started from. */
uint64_t lx_trainer_digest(const lx_trainer *t, const char *prefix);

/* A model whose tensors come from get(ctx, name, d0, d1) (a float32 array of that shape, or NULL: missing),
 * bound as lx_model_open binds a file; heads (LX_HEAD_* bits) says which heads it has. The arrays must
 * outlive the model. Implemented in model.c. */
lx_status lx_model_from_tensors(lx_model **out, const lx_config *c, int heads, const char *dir,
                                const float *(*get)(void *ctx, const char *name, int d0, int d1), void *ctx,
                                lx_err *e);

/* ---- relevance maps ---------------------------------------------------------------------------------- */

/*
 * Why the model gave an answer: the relevance maps of Chefer, Gur & Wolf (ICCV 2021, "Generic
 * Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", the rules of
 * their LXMERT code without LRP). The gradient of the answer's score with respect to every attention map comes
 * from the training backward pass; per attention block, Abar = mean over heads of max(0, dA * A), with the
 * rows and columns of padded positions (a mask of 0) set to 0. From R_tt = I [T, T], R_ii = I [N, N],
 * R_ti = 0 [T, N], R_it = 0 [N, T]:
 *   self-attention of side s over itself, q the other side: R_ss += Abar R_ss, R_sq += Abar R_sq;
 *   cross-attention (both directions from the values before the layer): R_ti += nrm(R_tt)^T Abar_ti nrm(R_ii),
 *   R_tt += Abar_ti R_it, R_it += nrm(R_ii)^T Abar_it nrm(R_tt), R_ii += Abar_it R_ti, where nrm(R) is R - I
 *   with each row divided by its sum (a row summing to 0 stays 0), plus I;
 *   the last cross layer updates the language side only (its cross-attention of words over boxes, then the
 *   language self-attention).
 * Finally R_tt[0, 0] = 0 and the rows and columns of padded positions are 0. Row 0 of R_tt explains the
 * answer over the words, row 0 of R_ti over the boxes.
 */
typedef struct lx_explainer lx_explainer;

/* An explainer of model m's answers (m must outlive it). LX_EMODEL if m has no answer head. */
lx_status lx_explainer_new(lx_explainer **out, const lx_model *m, lx_err *e);
void lx_explainer_free(lx_explainer *x);
/* Runs the model with its answer head on one example (checked as lx_encode checks it), which must stay valid
 * until the last lx_explain_relevance on it. Returns the answer scores [num_qa_labels] (question_answering_
 * score), valid until the next run, or NULL with e set. */
const float *lx_explain_run(lx_explainer *x, const lx_example *ex, lx_err *e);
/* The relevance maps of the answer with index answer for the example last run: r_tt [T, T] and r_ti [T, N].
 * May be called for several answers after one run. LX_EINPUT for an answer outside [0, num_qa_labels). */
lx_status lx_explain_relevance(lx_explainer *x, int answer, float *r_tt, float *r_ti, lx_err *e);
/* The memory model of the training tape (lx-limits(7)): the bytes the training forward and backward of one
 * example of T tokens and N boxes keep beyond the encoder's own scratch, with (keep_dprobs) or without the
 * gradient of every attention map beside the map. An upper bound, before anything is allocated. */
double lx_tape_memory(const lx_config *c, int T, int N, int keep_dprobs);
/* The memory model of lx-explain for one example (lx-limits(7)): lx_example_memory's scratch and inputs, the
 * tape with the attention maps' gradients, the relevance maps in double and the two output maps, in bytes. */
double lx_explain_memory(const lx_config *c, int T, int N);

#endif

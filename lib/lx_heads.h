/*
 * lx_heads.h - LXMERT's heads over the encoder's outputs, their losses, and the name lists that make their
 * outputs readable (answers, words, object and attribute labels). Ownership and errors as in lx_core.h;
 * the name lists are in lx_names.h.
 *
 * The heads, as in Hugging Face's LxmertForPreTraining and LxmertForQuestionAnswering:
 *   answer   answer_head.logit_fc: Linear(H, 2H), gelu (erf form, whatever hidden_act says), LayerNorm(2H),
 *            Linear(2H, num_qa_labels), on pooled_output               -> question_answering_score [A]
 *   match    cls.seq_relationship: Linear(H, 2) on pooled_output      -> cross_relationship_score [2]
 *            (index 1 is "the sentence matches the image")
 *   mlm      cls.predictions: dense, gelu (hidden_act), LayerNorm, then the decoder tied to the word
 *            embeddings plus cls.predictions.bias, on language_output rows -> prediction_logits [M, V]
 *   obj      obj_predict_head: the same kind of transform, then decoder_dict.obj, .attr and .feat, on
 *            vision_output rows  -> obj_head_obj [N, num_object_labels], obj_head_attr [N, num_attr_labels],
 *            obj_head_feat [N, visual_feat_dim]  (HF computes these only inside its loss)
 *   nlvr2    the authors' NLVR2 classifier (their nlvr2_model.py; nlvr2_head.logit_fc in lx's models):
 *            Linear(2H, 2H), gelu (erf form), LayerNorm(2H, eps 1e-12), Linear(2H, 2), on the two images'
 *            pooled outputs side by side [pooled0, pooled1]     -> nlvr2_logits [2] (index 1 is True)
 */
#ifndef LX_HEADS_H
#define LX_HEADS_H

#include "lx_encoder.h"
#include "lx_names.h"

/* ---- the heads -------------------------------------------------------------------------------------- */

/* Heads are named by the LX_HEAD_* bits of lx_model.h. */

/* The LX_HEAD_* bits of the heads model m has weights for. */
int lx_heads_available(const lx_model *m);
/* LX_OK if m has every head in want; else LX_EMODEL naming the first missing head and its tensors. */
lx_status lx_heads_require(const lx_model *m, int want, lx_err *e);
/* The name of one LX_HEAD_* bit as the tools spell it: "qa", "match", "mlm", "obj". */
const char *lx_head_name(int head);  /* "nlvr2" for LX_HEAD_NLVR2 */

/* Scratch state for running heads: buffers grown to the largest input seen, kept from call to call. */
typedef struct lx_heads lx_heads;

lx_heads *lx_heads_new(const lx_model *m);
void lx_heads_free(lx_heads *h);

/* Each head writes into arrays the caller provides and returns LX_EMODEL if the model lacks it, LX_EIO if
 * memory runs out. */
/* score[num_qa_labels] from pooled[H]. */
lx_status lx_heads_answer(lx_heads *h, const float *pooled, float *score, lx_err *e);
/* The same over M rows at once, score[M, num_qa_labels] from pooled[M, H]: one product per layer for all
 * of them. A row's scores may differ from lx_heads_answer's on it alone in the last bits (the products sum
 * in another order over one row than over many). */
lx_status lx_heads_answer_rows(lx_heads *h, const float *pooled, int M, float *score, lx_err *e);
/* logits[2] of the NLVR2 classifier from the pooled outputs of the statement with image 0 and with image 1
 * (each [H]). */
lx_status lx_heads_nlvr2(lx_heads *h, const float *pooled0, const float *pooled1, float *logits, lx_err *e);
/* score[2] from pooled[H]. */
lx_status lx_heads_match(lx_heads *h, const float *pooled, float *score, lx_err *e);
/* logits[M, vocab_size] from M rows of language_output, rows[M, H]. */
lx_status lx_heads_mlm(lx_heads *h, const float *rows, int M, float *logits, lx_err *e);
/* obj[N, num_object_labels], attr[N, num_attr_labels], feat[N, visual_feat_dim] from vision_output [N, H];
 * any output may be NULL. */
lx_status lx_heads_obj(lx_heads *h, const float *visn, int N, float *obj, float *attr, float *feat, lx_err *e);

/* ---- losses, as HF's LxmertForPreTraining computes them for one example ------------------------------ */

/* The labels of one example; a NULL pointer or a has_ flag of 0 leaves that part out. Label value -100 is
 * ignored everywhere (HF's CrossEntropyLoss ignore_index). */
typedef struct {
	int T, N;
	const int32_t *mlm_labels;   /* [T] word ids to predict, "labels" */
	int has_matched;
	int32_t matched_label;       /* 0 or 1, "matched_label" */
	int has_ans;
	int32_t ans;                 /* answer index, "ans" */
	const int32_t *obj_labels;   /* [N] with obj_mask [N] */
	const float *obj_mask;
	const int32_t *attr_labels;  /* [N] with attr_mask [N] */
	const float *attr_mask;
	const float *feat_mask;      /* [N] with feat_target [N, F] (the example's visual_feats) */
	const float *feat_target;
} lx_labels;

/* Labels decoded from a record (l), in buffers the struct owns, grown to the largest record decoded into
 * it. Start from a zeroed struct; lx_labels_data_destroy frees the buffers. */
typedef struct {
	lx_labels l;
	int32_t *mlm, *obj, *attr;
	float *obj_mask, *attr_mask, *feat_mask, *feats;
	size_t cap_mlm, cap_obj, cap_attr, cap_om, cap_am, cap_fm, cap_f;
} lx_labels_data;

/* Decodes the labels of rec for the heads in `heads` (LX_HEAD_* bits) of an example of T tokens and N boxes
 * into d->l (formats/stream.md): labels [T] (mlm); matched_label, 0 or 1 (match); ans, within num_qa_labels
 * (qa); obj_labels with obj_mask, attr_labels with attr_mask, feat_mask, each [N] (obj). Labels are of an
 * integer dtype, masks of any dtype with finite values; labels without their mask are refused, naming the
 * mask. The targets of feat_mask are feats [N, visual_feat_dim] when not NULL, else the record's
 * visual_feats. -100 ignores a label. *any tells whether the record has a label for one of the heads.
 * nside names the field N comes from in messages. LX_EINPUT names the field; LX_EIO when memory runs out. */
lx_status lx_labels_decode(const lx_config *c, int heads, const lx_record *rec, int T, int N, const char *nside,
                           const float *feats, lx_labels_data *d, int *any, lx_err *e);
void lx_labels_data_destroy(lx_labels_data *d);

/* LX_EINPUT when one of x[n] is NaN or infinite, naming field key and the element (row and column, for rows
 * of `row` values, when row is not 0); else LX_OK. */
lx_status lx_check_finite(const float *x, int64_t n, int64_t row, const char *key, lx_err *e);

/* The authors' soft-score label (field label: a map answer -> score, as in their VQA and GQA files) as
 * target[lx_names_count(answers)] over the answer list, 0 for answers it does not name. Keys must be strings,
 * scores numbers in [0, 1]. An answer that is not in the list is counted in *unknown and left out, or, when
 * unknown is NULL, refused. */
lx_status lx_soft_label(const msgpack_object *label, const lx_names *answers, float *target, int *unknown,
                        lx_err *e);

enum { LX_LOSS_MLM, LX_LOSS_MATCH, LX_LOSS_OBJ, LX_LOSS_ATTR, LX_LOSS_FEAT, LX_LOSS_QA, LX_NLOSS };

/* Loss parts: masked-LM cross-entropy (mean over the labelled positions), match cross-entropy, the three
 * visual losses (cross-entropy or SmoothL1 averaged over the features, times the box's mask, averaged over
 * all N boxes, times visual_loss_normalizer) and answer cross-entropy. has[k] says whether part k was
 * computed: its labels were given and not all ignored. total is the sum of the computed parts. */
typedef struct {
	double part[LX_NLOSS];
	int has[LX_NLOSS];
	double total;
} lx_losses;

/* Field names of the parts: "masked_lm_loss", "matched_loss", "obj_loss", "attr_loss", "feat_loss",
 * "answer_loss". */
extern const char *const lx_loss_names[LX_NLOSS];

/* The losses of one example from its encoder outputs: lang [T, H], visn [N, H], pooled [H] (a pointer may be
 * NULL when no label needs it). Only heads in `heads` (LX_HEAD_* bits) count; a part whose head is not
 * there is left out. Labels outside their range are LX_EINPUT, naming the field and position. */
lx_status lx_heads_losses(lx_heads *h, int heads, const lx_labels *lab, const float *lang, const float *visn,
                          const float *pooled, lx_losses *out, lx_err *e);

/* The authors' VQA/GQA fine-tuning loss: binary cross-entropy with logits of score[n] against soft scores
 * target[n], averaged over the n answers and multiplied by n (so: summed over the answers). */
double lx_bce_loss(const float *score, const float *target, int n);

/* ---- small helpers over scores ---------------------------------------------------------------------- */

/* p[n] = softmax(x[n]) (p may be x). */
void lx_softmax(const float *x, int n, float *p);
/* The sigmoid of one logit. */
double lx_sigmoid(double x);
/* Indices of the k largest values of x[n] (k <= n), largest first; equal values keep index order. */
void lx_topk(const float *x, int n, int k, int *idx);

/* ---- scores and submission files (lx-head, lx-merge) ------------------------------------------------ */

/* The totals of --score: VQA/GQA questions (sum: the label scores of the predicted answers, added in record
 * order), NLVR2 pairs and how many were right, and error records counted as wrong. */
typedef struct {
	double sum;
	long questions, pairs, correct, failed;
} lx_score;

/* A VQA/GQA question: adds the score its label (a map answer -> score) gives answer, 0 when the map does not
 * name it, and counts the question. LX_EINPUT when that score is not a number. */
lx_status lx_score_answer(lx_score *s, const msgpack_object *label, const char *answer, lx_err *e);
/* The summary lines on f, each starting "prefix: " ("lx-head: score 0.645000 over 20 questions"). */
void lx_score_print(const lx_score *s, FILE *f, const char *prefix);
/* The score file's one JSON line on f (lx-head(1), --score-file). */
void lx_score_json(const lx_score *s, FILE *f);

/* Submission files (formats/submission.md). */
enum { LX_SUBMIT_VQA, LX_SUBMIT_GQA, LX_SUBMIT_NLVR2 };
/* The id a VQA or GQA submission gives rec: question_id, or for GQA questionId; NULL when it has neither. */
const msgpack_object *lx_submit_id(const lx_record *rec, int set);
/* One entry of a VQA or GQA submission on f, after n entries. */
void lx_submit_entry(FILE *f, int set, long n, const msgpack_object *id, const char *answer);
/* The end of a VQA or GQA submission of n entries (nothing for NLVR2's lines). */
void lx_submit_end(FILE *f, int set, long n);

#endif

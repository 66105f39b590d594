/*
 * heads.c - LXMERT's heads (answer, match, masked-LM, object/attribute/feature) over the encoder's outputs,
 * and the pretraining losses of HF's LxmertForPreTraining for one example (lx_heads.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lx_heads.h"
#include "nn/heads_impl.h"
#include "nn/ops.h"

/* HF's prediction-head transforms and the answer head's LayerNorm use eps 1e-12 whatever the config says. */
#define HEAD_EPS 1e-12f

enum { S_HID, S_ROWS, S_LOGITS, S_OBJ, S_ATTR, S_FEAT, NSCRATCH };

struct lx_heads {
	const lx_model *m;
	float *buf[NSCRATCH];
	size_t cap[NSCRATCH];
};

const char *const lx_loss_names[LX_NLOSS] = {
	"masked_lm_loss", "matched_loss", "obj_loss", "attr_loss", "feat_loss", "answer_loss",
};

int lx_heads_available(const lx_model *m)
{
	const lx_weights *w = lx_model_weights(m);

	return (w->has_qa ? LX_HEAD_QA : 0) | (w->has_match ? LX_HEAD_MATCH : 0) | (w->has_mlm ? LX_HEAD_MLM : 0) |
	       (w->has_obj ? LX_HEAD_OBJ : 0) | (w->has_nlvr2 ? LX_HEAD_NLVR2 : 0);
}

const char *lx_head_name(int head)
{
	switch (head) {
	case LX_HEAD_QA: return "qa";
	case LX_HEAD_MATCH: return "match";
	case LX_HEAD_MLM: return "mlm";
	case LX_HEAD_OBJ: return "obj";
	case LX_HEAD_NLVR2: return "nlvr2";
	default: return "?";
	}
}

lx_status lx_heads_require(const lx_model *m, int want, lx_err *e)
{
	static const struct { int bit; const char *what, *prefix; } heads[] = {
		{LX_HEAD_QA, "answer head", "answer_head.*"},
		{LX_HEAD_MATCH, "image-text match head", "cls.seq_relationship.*"},
		{LX_HEAD_MLM, "masked-LM head", "cls.predictions.*"},
		{LX_HEAD_OBJ, "object head", "obj_predict_head.*"},
		{LX_HEAD_NLVR2, "NLVR2 classifier", "nlvr2_head.*"},
	};
	int have = lx_heads_available(m);
	size_t i;

	for (i = 0; i < sizeof heads / sizeof heads[0]; i++)
		if ((want & heads[i].bit) && !(have & heads[i].bit))
			return lx_errf(e, LX_EMODEL, "%s: the model has no %s (%s): no tensor %s in model.safetensors",
			               lx_model_dir(m), lx_head_name(heads[i].bit), heads[i].what, heads[i].prefix);
	return LX_OK;
}

lx_heads *lx_heads_new(const lx_model *m)
{
	lx_heads *h = calloc(1, sizeof *h);

	if (h)
		h->m = m;
	return h;
}

void lx_heads_free(lx_heads *h)
{
	int i;

	if (!h)
		return;
	for (i = 0; i < NSCRATCH; i++)
		free(h->buf[i]);
	free(h);
}

/* Scratch buffer i with room for n floats (contents not kept), or NULL when memory runs out. */
static float *scratch(lx_heads *h, int i, size_t n)
{
	return lx_grow_floats(&h->buf[i], &h->cap[i], n);
}

static lx_status no_memory(lx_err *e) { return lx_errf(e, LX_EIO, "out of memory in the heads"); }

/* ---- the heads ---- */

/* y[M, out] = LayerNorm(gelu(x W0^T + b0)) W3^T + b3 over M rows x[M, in], the hidden width 2H: the answer
 * head and the NLVR2 classifier (gelu in its erf form and eps 1e-12 whatever the config says). */
static lx_status classifier(lx_heads *h, int head, const float *x, int M, int in, const lx_linear_w *l0,
                            const lx_norm_w *ln, const lx_linear_w *l3, int out, float *y, lx_err *e)
{
	int H2 = 2 * lx_model_config(h->m)->hidden_size;
	float *hid;
	lx_status rc;

	if ((rc = lx_heads_require(h->m, head, e)))
		return rc;
	if (M <= 0)
		return LX_OK;
	if (!(hid = scratch(h, S_HID, (size_t)M * H2)))
		return no_memory(e);
	lx_op_linear(hid, x, M, l0, H2, in);
	lx_op_gelu(hid, (size_t)M * H2, 0);
	lx_op_add_norm(hid, NULL, M, H2, ln, HEAD_EPS);
	lx_op_linear(y, hid, M, l3, out, H2);
	return LX_OK;
}

lx_status lx_heads_answer_rows(lx_heads *h, const float *pooled, int M, float *score, lx_err *e)
{
	const lx_weights *w = lx_model_weights(h->m);
	const lx_config *c = lx_model_config(h->m);

	return classifier(h, LX_HEAD_QA, pooled, M, c->hidden_size, &w->qa0, &w->qa_ln, &w->qa3, c->num_qa_labels,
	                  score, e);
}

lx_status lx_heads_answer(lx_heads *h, const float *pooled, float *score, lx_err *e)
{
	return lx_heads_answer_rows(h, pooled, 1, score, e);
}

lx_status lx_heads_nlvr2(lx_heads *h, const float *pooled0, const float *pooled1, float *logits, lx_err *e)
{
	const lx_weights *w = lx_model_weights(h->m);
	int H = lx_model_config(h->m)->hidden_size;
	float *in;

	if (!(in = scratch(h, S_ROWS, 2 * (size_t)H)))
		return no_memory(e);
	memcpy(in, pooled0, (size_t)H * sizeof *in);
	memcpy(in + H, pooled1, (size_t)H * sizeof *in);
	return classifier(h, LX_HEAD_NLVR2, in, 1, 2 * H, &w->nlvr2_0, &w->nlvr2_ln, &w->nlvr2_3, 2, logits, e);
}

lx_status lx_heads_match(lx_heads *h, const float *pooled, float *score, lx_err *e)
{
	lx_status rc;

	if ((rc = lx_heads_require(h->m, LX_HEAD_MATCH, e)))
		return rc;
	lx_op_linear(score, pooled, 1, &lx_model_weights(h->m)->match, 2, lx_model_config(h->m)->hidden_size);
	return LX_OK;
}

/* *hid[M, H] = LayerNorm(act(rows W + b)) in scratch: the prediction-head transform of cls.predictions and
 * obj_predict_head, after the head is required; *hid NULL for M of 0. */
static lx_status transform(lx_heads *h, int head, const lx_linear_w *dense, const lx_norm_w *ln, const float *rows,
                           int M, float **hid, lx_err *e)
{
	const lx_config *c = lx_model_config(h->m);
	int H = c->hidden_size;
	lx_status rc;

	*hid = NULL;
	if ((rc = lx_heads_require(h->m, head, e)) || M == 0)
		return rc;
	if (!(*hid = scratch(h, S_HID, (size_t)M * H)))
		return no_memory(e);
	lx_op_linear(*hid, rows, M, dense, H, H);
	lx_op_gelu(*hid, (size_t)M * H, c->gelu_tanh);
	lx_op_add_norm(*hid, NULL, M, H, ln, HEAD_EPS);
	return LX_OK;
}

lx_status lx_heads_mlm(lx_heads *h, const float *rows, int M, float *logits, lx_err *e)
{
	const lx_config *c = lx_model_config(h->m);
	const lx_weights *w = lx_model_weights(h->m);
	lx_linear_w dec = {.w = w->mlm_decoder, .b = w->mlm_bias};
	float *hid;
	lx_status rc;

	if ((rc = transform(h, LX_HEAD_MLM, &w->mlm_dense, &w->mlm_ln, rows, M, &hid, e)) || !hid)
		return rc;
	lx_op_linear(logits, hid, M, &dec, c->vocab_size, c->hidden_size);
	return LX_OK;
}

lx_status lx_heads_obj(lx_heads *h, const float *visn, int N, float *obj, float *attr, float *feat, lx_err *e)
{
	const lx_config *c = lx_model_config(h->m);
	const lx_weights *w = lx_model_weights(h->m);
	int H = c->hidden_size;
	float *hid;
	lx_status rc;

	if ((rc = transform(h, LX_HEAD_OBJ, &w->obj_dense, &w->obj_ln, visn, N, &hid, e)) || !hid)
		return rc;
	if (obj)
		lx_op_linear(obj, hid, N, &w->obj_obj, c->num_object_labels, H);
	if (attr)
		lx_op_linear(attr, hid, N, &w->obj_attr, c->num_attr_labels, H);
	if (feat)
		lx_op_linear(feat, hid, N, &w->obj_feat, c->visual_feat_dim, H);
	return LX_OK;
}

/* ---- helpers over scores ---- */

/*
 * The softmax of the heads, in double: *mx = max x[n], returns the sum of e^(x - *mx). The attention's
 * softmax is float (lx_op_softmax_rows, ops.c), as HF's; this one is double because the losses need it: a
 * cross-entropy is log(sum) - (x[label] - max) over up to vocab_size (30522) logits, where a float sum of
 * that many terms loses the small probabilities the loss and its gradient are made of, and the answer and
 * match probabilities the tools print come from the same sums.
 */
static double softmax_sum(const float *x, int n, double *mx)
{
	double sum = 0;
	int i;

	*mx = -INFINITY;
	for (i = 0; i < n; i++)
		if (x[i] > *mx)
			*mx = x[i];
	for (i = 0; i < n; i++)
		sum += exp(x[i] - *mx);
	return sum;
}

void lx_softmax(const float *x, int n, float *p)
{
	double mx, sum = softmax_sum(x, n, &mx);
	int i;

	for (i = 0; i < n; i++)
		p[i] = (float)(exp(x[i] - mx) / sum);
}

double lx_sigmoid(double x)
{
	return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

void lx_topk(const float *x, int n, int k, int *idx)
{
	int i, j, have = 0;

	/* insertion into a sorted list of k: k is small (a handful of answers or words) */
	for (i = 0; i < n; i++) {
		if (have == k && !(x[i] > x[idx[k - 1]]))
			continue;
		j = have < k ? have++ : k - 1;
		while (j > 0 && x[i] > x[idx[j - 1]]) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
}

/* ---- losses ---- */

double lx_cross_entropy(const float *x, int n, int label, float scale, float *d)
{
	double mx, sum = softmax_sum(x, n, &mx), loss = mx + log(sum) - x[label];
	int i;

	/* after the loss: d may be x */
	if (d) {
		for (i = 0; i < n; i++)
			d[i] = (float)(exp(x[i] - mx) / sum * scale);
		d[label] -= scale;
	}
	return loss;
}

lx_status lx_check_label(int32_t v, int n, const char *field, int pos, lx_err *e)
{
	if (v == -100 || (v >= 0 && v < n))
		return LX_OK;
	if (pos < 0)
		return lx_errf(e, LX_EINPUT, "field %s: %d is outside [0, %d) (and is not -100, ignored)", field, v, n);
	return lx_errf(e, LX_EINPUT, "field %s: %d at position %d is outside [0, %d) (and is not -100, ignored)",
	               field, v, pos, n);
}

static lx_status mlm_loss(lx_heads *h, const lx_labels *lab, const float *lang, lx_losses *out, lx_err *e)
{
	const lx_config *c = lx_model_config(h->m);
	int H = c->hidden_size, V = c->vocab_size, t, M = 0;
	float *rows, *logits;
	double sum = 0;
	lx_status rc;

	for (t = 0; t < lab->T; t++) {
		if ((rc = lx_check_label(lab->mlm_labels[t], V, "labels", t, e)))
			return rc;
		M += lab->mlm_labels[t] != -100;
	}
	if (M == 0)
		return LX_OK;
	if (!(rows = scratch(h, S_ROWS, (size_t)M * H)) || !(logits = scratch(h, S_LOGITS, (size_t)M * V)))
		return no_memory(e);
	for (t = 0, M = 0; t < lab->T; t++)
		if (lab->mlm_labels[t] != -100)
			memcpy(rows + (size_t)M++ * H, lang + (size_t)t * H, (size_t)H * sizeof(float));
	if ((rc = lx_heads_mlm(h, rows, M, logits, e)))
		return rc;
	for (t = 0, M = 0; t < lab->T; t++)
		if (lab->mlm_labels[t] != -100) {
			sum += lx_cross_entropy(logits + (size_t)M * V, V, lab->mlm_labels[t], 0, NULL);
			M++;
		}
	out->part[LX_LOSS_MLM] = sum / M;
	out->has[LX_LOSS_MLM] = 1;
	return LX_OK;
}

/* A visual cross-entropy loss: sum over boxes of CE * mask, divided by N, times the normalizer. */
static lx_status box_ce(const lx_labels *lab, const float *logits, int n, const int32_t *labels, const float *mask,
                        const char *field, float norm, double *loss, lx_err *e)
{
	double sum = 0;
	int i;
	lx_status rc;

	for (i = 0; i < lab->N; i++) {
		if ((rc = lx_check_label(labels[i], n, field, i, e)))
			return rc;
		if (labels[i] != -100)
			sum += lx_cross_entropy(logits + (size_t)i * n, n, labels[i], 0, NULL) * mask[i];
	}
	*loss = sum / lab->N * norm;
	return LX_OK;
}

/* SmoothL1 (beta 1) between the predicted and the given features, averaged over features, times the mask,
 * averaged over boxes, times the normalizer. */
static double feat_loss(const lx_labels *lab, const float *pred, int F, float norm)
{
	double sum = 0;
	int i, j;

	for (i = 0; i < lab->N; i++) {
		double s = 0;
		for (j = 0; j < F; j++) {
			double d = fabs((double)pred[(size_t)i * F + j] - lab->feat_target[(size_t)i * F + j]);
			s += d < 1 ? 0.5 * d * d : d - 0.5;
		}
		sum += s / F * lab->feat_mask[i];
	}
	return sum / lab->N * norm;
}

static lx_status visual_losses(lx_heads *h, const lx_labels *lab, const float *visn, lx_losses *out, lx_err *e)
{
	const lx_config *c = lx_model_config(h->m);
	int N = lab->N;
	float *obj = NULL, *attr = NULL, *feat = NULL, norm = c->visual_loss_normalizer;
	lx_status rc;

	if (N == 0)
		return LX_OK;
	if ((lab->obj_labels && !(obj = scratch(h, S_OBJ, (size_t)N * c->num_object_labels))) ||
	    (lab->attr_labels && !(attr = scratch(h, S_ATTR, (size_t)N * c->num_attr_labels))) ||
	    (lab->feat_mask && !(feat = scratch(h, S_FEAT, (size_t)N * c->visual_feat_dim))))
		return no_memory(e);
	if ((rc = lx_heads_obj(h, visn, N, obj, attr, feat, e)))
		return rc;
	if (obj) {
		if ((rc = box_ce(lab, obj, c->num_object_labels, lab->obj_labels, lab->obj_mask, "obj_labels", norm,
		                 &out->part[LX_LOSS_OBJ], e)))
			return rc;
		out->has[LX_LOSS_OBJ] = 1;
	}
	if (attr) {
		if ((rc = box_ce(lab, attr, c->num_attr_labels, lab->attr_labels, lab->attr_mask, "attr_labels", norm,
		                 &out->part[LX_LOSS_ATTR], e)))
			return rc;
		out->has[LX_LOSS_ATTR] = 1;
	}
	if (feat) {
		out->part[LX_LOSS_FEAT] = feat_loss(lab, feat, c->visual_feat_dim, norm);
		out->has[LX_LOSS_FEAT] = 1;
	}
	return LX_OK;
}

/* Cross-entropy of a head over pooled_output against one label. */
static lx_status pooled_loss(lx_heads *h, int head, const float *pooled, int32_t label, lx_losses *out, lx_err *e)
{
	int n = head == LX_HEAD_QA ? lx_model_config(h->m)->num_qa_labels : 2, k = head == LX_HEAD_QA ? LX_LOSS_QA
	                                                                                             : LX_LOSS_MATCH;
	float *s;
	lx_status rc;

	if ((rc = lx_check_label(label, n, head == LX_HEAD_QA ? "ans" : "matched_label", -1, e)))
		return rc;
	if (label == -100)
		return LX_OK;
	if (!(s = scratch(h, S_ROWS, (size_t)n)))
		return no_memory(e);
	rc = head == LX_HEAD_QA ? lx_heads_answer(h, pooled, s, e) : lx_heads_match(h, pooled, s, e);
	if (rc)
		return rc;
	out->part[k] = lx_cross_entropy(s, n, label, 0, NULL);
	out->has[k] = 1;
	return LX_OK;
}

double lx_bce_loss(const float *score, const float *target, int n)
{
	double sum = 0;
	int i;

	/* max(x, 0) - x t + log(1 + exp(-|x|)), the stable form of -t log s(x) - (1 - t) log(1 - s(x)) */
	for (i = 0; i < n; i++)
		sum += fmax(score[i], 0) - (double)score[i] * target[i] + log1p(exp(-fabs(score[i])));
	return sum;
}

lx_status lx_heads_losses(lx_heads *h, int heads, const lx_labels *lab, const float *lang, const float *visn,
                          const float *pooled, lx_losses *out, lx_err *e)
{
	lx_labels vl = *lab;
	lx_status rc;
	int k;

	memset(out, 0, sizeof *out);
	heads &= lx_heads_available(h->m);
	if ((heads & LX_HEAD_MLM) && lab->mlm_labels && (rc = mlm_loss(h, lab, lang, out, e)))
		return rc;
	if ((heads & LX_HEAD_MATCH) && lab->has_matched &&
	    (rc = pooled_loss(h, LX_HEAD_MATCH, pooled, lab->matched_label, out, e)))
		return rc;
	if (heads & LX_HEAD_OBJ) {
		if (!lab->obj_mask)
			vl.obj_labels = NULL;
		if (!lab->attr_mask)
			vl.attr_labels = NULL;
		if (!lab->feat_target)
			vl.feat_mask = NULL;
		if ((vl.obj_labels || vl.attr_labels || vl.feat_mask) && (rc = visual_losses(h, &vl, visn, out, e)))
			return rc;
	}
	if ((heads & LX_HEAD_QA) && lab->has_ans && (rc = pooled_loss(h, LX_HEAD_QA, pooled, lab->ans, out, e)))
		return rc;
	for (k = 0; k < LX_NLOSS; k++)
		if (out->has[k])
			out->total += out->part[k];
	return LX_OK;
}

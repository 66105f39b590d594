/* lx-head - LXMERT's heads over lx-encode's records: answers, match, masked words, objects, losses, scores
 * and submission files (lx-head(1)). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx.h"
#include "lx_heads.h"
#include "tool.h"

#define MASK_ID 103  /* [MASK] in BERT's uncased vocabulary, used when the model has no vocab.txt */

enum { O_HEADS = 256, O_TOP, O_ALL_LOGITS, O_LABELS, O_OBJECTS, O_ATTRIBUTES, O_ANSWER_PROB, O_JSON, O_JSON_TENSORS,
       O_SUBMIT, O_SCORE, O_SCORE_FILE, O_DROP_FAILED };

static const char synopsis[] = "-m DIR [options]";
static const char about[] =
	"Reads lx-encode's records on stdin and adds the outputs of LXMERT's heads: answers, match\n"
	"probability, masked words, object and attribute labels, and losses where a record carries\n"
	"labels. See lx-head(1).";

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the model directory"},
	{O_HEADS, "heads", "LIST", "the heads to run: qa, match, mlm, obj, nlvr2, comma-separated (every head the\n"
	 "model has)"},
	{O_TOP, "top", "K", "answers and words for each [MASK] listed (5)"},
	{O_ALL_LOGITS, "all-logits", NULL, "write the masked-LM logits of every position"},
	{O_LABELS, "labels", "FILE", "the answer names (DIR/answers.json or answers.txt)"},
	{O_OBJECTS, "objects", "FILE", "the object names (DIR/objects_vocab.txt)"},
	{O_ATTRIBUTES, "attributes", "FILE", "the attribute names (DIR/attributes_vocab.txt)"},
	{O_ANSWER_PROB, "answer-prob", "MODE", "auto, sigmoid or softmax: how an answer's score is made (auto)"},
	{O_JSON, "json", NULL, "write JSON lines instead of the stream"},
	{O_JSON_TENSORS, "json-tensors", NULL, "JSON lines with the tensors too"},
	{O_SUBMIT, "submit", "SET", "write the submission file for vqa, gqa or nlvr2 instead of the stream"},
	{O_SCORE, "score", NULL, "score the records that carry a label, on stderr at the end"},
	{O_SCORE_FILE, "score-file", "F", "also write the scores to F as one JSON line"},
	{O_DROP_FAILED, "drop-failed", NULL, "leave error records out of --submit (they are kept with an empty answer or\n"
	 "False) and out of --score (they count as wrong)"},
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-head", synopsis, about, option_table};


enum { OUT_STREAM, OUT_JSON, OUT_SUBMIT };
enum { SUB_VQA, SUB_GQA, SUB_NLVR2 };
enum { PROB_AUTO, PROB_SIGMOID, PROB_SOFTMAX };

/* A buffer grown to the largest size asked of it. */
typedef struct {
	void *p;
	size_t cap;
} buf;

static void *grow(buf *b, size_t bytes)
{
	if (bytes > b->cap || !b->p) {
		free(b->p);
		b->p = malloc(bytes ? bytes : 1);
		b->cap = b->p ? bytes : 0;
	}
	return b->p;
}

/* One NLVR2 example: consecutive records with the same identifier (one per image). */
typedef struct {
	char id[256];
	int open, label, has_label, n;
	double prob;  /* sum over its records of P(statement true) */
	int forced;   /* the NLVR2 classifier's prediction, -1 without it */
} pair;

typedef struct {
	/* setup */
	lx_model *m;
	const lx_config *c;
	lx_heads *h;
	int heads, top, all_logits, prob, out, submit, score, json_tensors, mask_id, drop_failed;
	lx_names *answers, *objects, *attrs, *vocab;
	lx_lock *score_lock;  /* --score-file's, held from the start: written at the end, atomically */
	const char *score_path;
	/* buffers */
	buf pooled, lang, visn, ids, qa, qa_p, rows, logits, prob_v, pos, top_idx, obj, attr, feat, pooled2;
	buf target;
	lx_labels_data labels;
	/* the record in hand */
	const char *sfx;  /* the suffix of its fields: "" for one image, "0" or "1" for an image of a pair */
	int T, N, pred, has_true_prob, nlvr2_pred;
	double true_prob;
	/* totals */
	double loss_sum[LX_NLOSS], loss_total, vqa_sum;
	long loss_n[LX_NLOSS], loss_records, vqa_n;
	double score_sum;
	long questions, pairs, correct;
	long failed;  /* error records scored as wrong answers */
	pair pr;
	long submitted;
	long passed;  /* error records left out of a submission */
	lx_json *json;  /* --json */
} state;

/* ---- reading fields ---- */

static lx_status missing(const char *key, const char *why, lx_err *e)
{
	return lx_errf(e, LX_EINPUT, "field %s is missing (%s)", key, why);
}

/* The field base with the suffix of the image in hand ("pooled_output" + "0"); the last four names made stay
 * valid. */
static const char *key(const state *s, const char *base)
{
	static char names[4][64];
	static int next;
	char *k = names[next++ % 4];

	snprintf(k, sizeof names[0], "%s%s", base, s->sfx);
	return k;
}

/* A float tensor field [last] (rows NULL) or [rows, last] (rows names the first dimension in messages),
 * decoded into b; shape gets its dimensions. */
static lx_status get_floats(const lx_record *rec, const char *key, const char *rows, int64_t last, const char *why,
                            buf *b, int64_t *shape, lx_err *e)
{
	lx_tensor t;
	int present, i, ndim = rows ? 2 : 1;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, key, &t, &present, e)))
		return rc;
	if (!present)
		return missing(key, why, e);
	if (!lx_dtype_is_float(t.dtype))
		return lx_errf(e, LX_EINPUT, "field %s: dtype %s, expected a float dtype (<f4)", key,
		               lx_dtype_numpy(t.dtype));
	if (t.ndim != ndim || t.shape[ndim - 1] != last) {
		char got[96] = "";
		for (i = 0; i < t.ndim; i++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t.shape[i]);
		return lx_errf(e, LX_EINPUT, "field %s: shape [%s], expected [%s%s%lld]", key, got, rows ? rows : "",
		               rows ? ", " : "", (long long)last);
	}
	if (!grow(b, (size_t)t.numel * sizeof(float)))
		return lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; i < ndim; i++)
		shape[i] = t.shape[i];
	if ((rc = lx_tensor_to_f32(&t, b->p, key, e)))
		return rc;
	return lx_check_finite(b->p, t.numel, rows ? last : 0, key, e);
}

/* input_ids [len] as int32 into b; *present says whether the record has it. */
static lx_status get_ids(const lx_record *rec, int64_t len, buf *b, int *present, lx_err *e)
{
	lx_tensor t;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, "input_ids", &t, present, e)) || !*present)
		return rc;
	if (t.ndim != 1 || t.shape[0] != len)
		return lx_errf(e, LX_EINPUT, "field input_ids: shape must be [%lld] to match language_output", (long long)len);
	if (!grow(b, (size_t)(len ? len : 1) * 4))
		return lx_errf(e, LX_EIO, "out of memory");
	return lx_tensor_to_i32(&t, b->p, "input_ids", e);
}

/* ---- adding readable results ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* A list of the top k entries of p (probabilities) ranked by x (scores): maps {name_key, score, index}. */
static void pack_top(msgpack_packer *pk, const float *x, const float *p, int n, int k, int *idx, const lx_names *names,
                     const char *name_key)
{
	int i;

	lx_topk(x, n, k, idx);
	msgpack_pack_array(pk, k);
	for (i = 0; i < k; i++) {
		msgpack_pack_map(pk, names ? 3 : 2);
		if (names) {
			pack_str(pk, name_key);
			pack_str(pk, lx_names_get(names, idx[i]));
		}
		pack_str(pk, "score");
		msgpack_pack_double(pk, p[idx[i]]);
		pack_str(pk, "index");
		msgpack_pack_int(pk, idx[i]);
	}
}

static lx_status oom(lx_err *e) { return lx_errf(e, LX_EIO, "out of memory"); }

static int is_number(const msgpack_object *o, double *v)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return 1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return 1;
	default: return 0;
	}
}

/* The authors' VQA/GQA loss of the record's soft-score label (a map answer -> score; answers not in the
 * list are left out, as the authors' GQA data loader does). */
static lx_status vqa_loss(state *s, lx_record *rec, const msgpack_object *label, const float *q, lx_err *e)
{
	int A = s->c->num_qa_labels, unknown;
	float *target = grow(&s->target, (size_t)A * 4);
	double loss;
	lx_status rc;

	if (!target)
		return oom(e);
	if ((rc = lx_soft_label(label, s->answers, target, &unknown, e)))
		return rc;
	loss = lx_bce_loss(q, target, A);
	if (lx_record_add_float(rec, "vqa_loss", loss))
		return oom(e);
	s->vqa_sum += loss;
	s->vqa_n++;
	return LX_OK;
}

/* ---- the heads on one record ---- */

static lx_status run_qa(state *s, lx_record *rec, lx_err *e)
{
	int A = s->c->num_qa_labels, k = s->top < A ? s->top : A, i;
	int64_t shape[1] = {A};
	float *q = grow(&s->qa, (size_t)A * 4), *p = grow(&s->qa_p, (size_t)A * 4);
	int *idx = grow(&s->top_idx, (size_t)k * sizeof(int));
	const msgpack_object *label;
	msgpack_packer *pk;
	lx_status rc;

	if (!q || !p || !idx)
		return oom(e);
	if ((rc = lx_heads_answer(s->h, s->pooled.p, q, e)))
		return rc;
	if (s->prob == PROB_SOFTMAX)
		lx_softmax(q, A, p);
	else
		for (i = 0; i < A; i++)
			p[i] = (float)lx_sigmoid(q[i]);
	if (lx_record_add_tensor(rec, key(s, "question_answering_score"), LX_F32, 1, shape, q) ||
	    !(pk = lx_record_add_packer(rec, key(s, "answers"))))
		return oom(e);
	pack_top(pk, q, p, A, k, idx, s->answers, "answer");
	s->pred = idx[0];
	label = lx_record_get(rec, "label");
	if (s->answers && label && label->type == MSGPACK_OBJECT_MAP && (rc = vqa_loss(s, rec, label, q, e)))
		return rc;
	if (A == 2) {
		float two[2];
		lx_softmax(q, 2, two);
		s->true_prob = two[1];
		s->has_true_prob = 1;
	}
	return LX_OK;
}

static lx_status run_match(state *s, lx_record *rec, lx_err *e)
{
	float sc[2], p[2];
	int64_t shape[1] = {2};
	lx_status rc;

	if ((rc = lx_heads_match(s->h, s->pooled.p, sc, e)))
		return rc;
	lx_softmax(sc, 2, p);
	if (lx_record_add_tensor(rec, key(s, "cross_relationship_score"), LX_F32, 1, shape, sc) ||
	    lx_record_add_float(rec, key(s, "match_prob"), p[1]))
		return oom(e);
	if (!s->has_true_prob) {
		s->true_prob = p[1];
		s->has_true_prob = 1;
	}
	return LX_OK;
}

static lx_status run_mlm(state *s, lx_record *rec, lx_err *e)
{
	int H = s->c->hidden_size, V = s->c->vocab_size, T = s->T, M = 0, t, i, k = s->top < V ? s->top : V;
	const int32_t *ids = s->ids.p;
	int32_t *pos = grow(&s->pos, (size_t)T * 4);
	float *rows = grow(&s->rows, (size_t)T * H * 4), *logits, *p = grow(&s->prob_v, (size_t)V * 4);
	int *idx = grow(&s->top_idx, (size_t)k * sizeof(int));
	const float *lang = s->lang.p;
	msgpack_packer *pk;
	int64_t shape[2];
	lx_status rc;

	if (!pos || !rows || !p || !idx)
		return oom(e);
	for (t = 0; t < T; t++)
		if (ids[t] == s->mask_id)
			pos[M++] = t;
	if (!(logits = grow(&s->logits, (size_t)(s->all_logits ? T : M) * V * 4)))
		return oom(e);
	if (s->all_logits)
		rc = lx_heads_mlm(s->h, lang, T, logits, e);
	else {
		for (i = 0; i < M; i++)
			memcpy(rows + (size_t)i * H, lang + (size_t)pos[i] * H, (size_t)H * 4);
		rc = lx_heads_mlm(s->h, rows, M, logits, e);
	}
	if (rc)
		return rc;
	shape[0] = s->all_logits ? T : M;
	shape[1] = V;
	if (lx_record_add_tensor(rec, key(s, "prediction_logits"), LX_F32, 2, shape, logits))
		return oom(e);
	shape[0] = M;
	if (lx_record_add_tensor(rec, key(s, "mask_positions"), LX_I32, 1, shape, pos) ||
	    !(pk = lx_record_add_packer(rec, key(s, "masked_words"))))
		return oom(e);
	msgpack_pack_array(pk, M);
	for (i = 0; i < M; i++) {
		const float *row = logits + (size_t)(s->all_logits ? pos[i] : i) * V;
		lx_softmax(row, V, p);
		pack_top(pk, row, p, V, k, idx, s->vocab, "word");
	}
	return LX_OK;
}

/* The name of the best label of each row of x [N, n] as a list of strings. */
static lx_status add_names(lx_record *rec, const char *key, const float *x, int N, int n, const lx_names *names,
                           lx_err *e)
{
	msgpack_packer *pk = lx_record_add_packer(rec, key);
	int i, best;

	if (!pk)
		return oom(e);
	msgpack_pack_array(pk, N);
	for (i = 0; i < N; i++) {
		lx_topk(x + (size_t)i * n, n, 1, &best);
		pack_str(pk, lx_names_get(names, best));
	}
	return LX_OK;
}

static lx_status run_obj(state *s, lx_record *rec, lx_err *e)
{
	const lx_config *c = s->c;
	int N = s->N, O = c->num_object_labels, At = c->num_attr_labels, F = c->visual_feat_dim;
	float *obj = grow(&s->obj, (size_t)N * O * 4), *attr = grow(&s->attr, (size_t)N * At * 4),
	      *feat = grow(&s->feat, (size_t)N * F * 4);
	int64_t so[2] = {N, O}, sa[2] = {N, At}, sf[2] = {N, F};
	lx_status rc;

	if (!obj || !attr || !feat)
		return oom(e);
	if ((rc = lx_heads_obj(s->h, s->visn.p, N, obj, attr, feat, e)))
		return rc;
	if (lx_record_add_tensor(rec, key(s, "obj_head_obj"), LX_F32, 2, so, obj) ||
	    lx_record_add_tensor(rec, key(s, "obj_head_attr"), LX_F32, 2, sa, attr) ||
	    lx_record_add_tensor(rec, key(s, "obj_head_feat"), LX_F32, 2, sf, feat))
		return oom(e);
	if (s->objects && (rc = add_names(rec, key(s, "objects"), obj, N, O, s->objects, e)))
		return rc;
	if (s->attrs && (rc = add_names(rec, key(s, "attributes"), attr, N, At, s->attrs, e)))
		return rc;
	return LX_OK;
}

/* ---- losses ---- */

static lx_status run_losses(state *s, lx_record *rec, lx_err *e)
{
	lx_losses out;
	int any, k;
	lx_status rc;

	if ((rc = lx_labels_decode(s->c, s->heads, rec, s->T, s->N, "vision_output", NULL, &s->labels, &any, e)) || !any)
		return rc;
	if ((rc = lx_heads_losses(s->h, s->heads, &s->labels.l, s->lang.p, s->visn.p, s->pooled.p, &out, e)))
		return rc;
	for (k = 0; k < LX_NLOSS; k++)
		if (out.has[k]) {
			if (lx_record_add_float(rec, lx_loss_names[k], out.part[k]))
				return oom(e);
			s->loss_sum[k] += out.part[k];
			s->loss_n[k]++;
		}
	if (lx_record_add_float(rec, "loss", out.total))
		return oom(e);
	s->loss_total += out.total;
	s->loss_records++;
	return LX_OK;
}

/* ---- one record ---- */

/* The per-image heads on the image in hand (s->sfx). */
static lx_status run_image(state *s, lx_record *rec, lx_err *e)
{
	int64_t shape[2];
	int H = s->c->hidden_size, present;
	lx_status rc;

	s->T = s->N = 0;
	s->pred = -1;
	s->has_true_prob = 0;
	if ((s->heads & (LX_HEAD_QA | LX_HEAD_MATCH | LX_HEAD_NLVR2)) &&
	    (rc = get_floats(rec, key(s, "pooled_output"), NULL, H, *s->sfx ?
	                     "the qa, match and nlvr2 heads need lx-encode's pooled output of each image" :
	                     "the qa and match heads need lx-encode's pooled_output", &s->pooled, shape, e)))
		return rc;
	if (s->heads & LX_HEAD_MLM) {
		if ((rc = get_floats(rec, key(s, "language_output"), "T", H, "the mlm head needs lx-encode's language_output",
		                     &s->lang, shape, e)))
			return rc;
		s->T = (int)shape[0];
		if ((rc = get_ids(rec, s->T, &s->ids, &present, e)))
			return rc;
		if (!present)
			return missing("input_ids", "the mlm head looks for [MASK] in it", e);
	}
	if (s->heads & LX_HEAD_OBJ) {
		if ((rc = get_floats(rec, key(s, "vision_output"), "N", H, "the obj head needs lx-encode's vision_output", &s->visn,
		                     shape, e)))
			return rc;
		s->N = (int)shape[0];
	}
	if ((s->heads & LX_HEAD_QA) && (rc = run_qa(s, rec, e)))
		return rc;
	if ((s->heads & LX_HEAD_MATCH) && (rc = run_match(s, rec, e)))
		return rc;
	if ((s->heads & LX_HEAD_MLM) && (rc = run_mlm(s, rec, e)))
		return rc;
	if ((s->heads & LX_HEAD_OBJ) && (rc = run_obj(s, rec, e)))
		return rc;
	return LX_OK;
}

/* A pair record (NLVR2: lx-encode's outputs of one statement with two images, suffixed 0 and 1)? */
static int is_pair(const lx_record *rec)
{
	return !lx_record_get(rec, "pooled_output") && !lx_record_get(rec, "language_output") &&
	       !lx_record_get(rec, "vision_output") && (lx_record_get(rec, "pooled_output0") ||
	       lx_record_get(rec, "language_output0") || lx_record_get(rec, "vision_output0"));
}

/* The NLVR2 classifier over the pooled outputs of the two images (s->pooled2). */
static lx_status run_nlvr2(state *s, lx_record *rec, lx_err *e)
{
	int H = s->c->hidden_size;
	const float *p = s->pooled2.p;
	float logits[2], prob[2];
	int64_t shape[1] = {2};
	msgpack_packer *pk;
	lx_status rc;

	if ((rc = lx_heads_nlvr2(s->h, p, p + H, logits, e)))
		return rc;
	lx_softmax(logits, 2, prob);
	s->nlvr2_pred = logits[1] > logits[0];
	s->true_prob = prob[1];
	s->has_true_prob = 1;
	if (lx_record_add_tensor(rec, "nlvr2_logits", LX_F32, 1, shape, logits) ||
	    !(pk = lx_record_add_packer(rec, "nlvr2_prediction")))
		return oom(e);
	if (s->nlvr2_pred)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	return LX_OK;
}

/* The heads on one record: on its image, or on each image of a pair and then the NLVR2 classifier over both
 * (the mean of the images' P(true) where the model has no classifier). */
static lx_status run_heads(state *s, lx_record *rec, lx_err *e)
{
	static const char *const sfx[2] = {"0", "1"};
	int H = s->c->hidden_size, k, has = 1;
	double prob = 0;
	float *both;
	lx_status rc;

	s->nlvr2_pred = -1;
	if (!is_pair(rec)) {
		s->sfx = "";
		if (s->heads == LX_HEAD_NLVR2)
			return missing("pooled_output0", "the nlvr2 head needs a pair record: the pooled outputs of the "
			               "statement with each image, pooled_output0 and pooled_output1", e);
		if ((rc = run_image(s, rec, e)))
			return rc;
		return run_losses(s, rec, e);
	}
	if (!(both = grow(&s->pooled2, 2 * (size_t)H * sizeof *both)))
		return oom(e);
	for (k = 0; k < 2; k++) {
		s->sfx = sfx[k];
		if ((rc = run_image(s, rec, e)))
			return rc;
		if (s->heads & LX_HEAD_NLVR2)
			memcpy(both + (size_t)k * H, s->pooled.p, (size_t)H * sizeof *both);
		prob += s->true_prob;
		has &= s->has_true_prob;
	}
	s->sfx = "";
	s->pred = -1;
	s->true_prob = prob / 2;
	s->has_true_prob = has;
	return s->heads & LX_HEAD_NLVR2 ? run_nlvr2(s, rec, e) : LX_OK;
}

/* ---- scores ---- */

/* VQA/GQA: the label dict's score of the predicted answer, 0 when it is not there. */
static lx_status score_answer(state *s, const msgpack_object *label, lx_err *e)
{
	const char *pred;
	size_t n;
	uint32_t i;
	double v;

	if (s->pred < 0 || !s->answers)
		return lx_errf(e, LX_EINPUT, "field label: a VQA/GQA label needs the qa head and answer names");
	pred = lx_names_get(s->answers, s->pred);
	n = strlen(pred);
	for (i = 0; i < label->via.map.size; i++) {
		const msgpack_object *k = &label->via.map.ptr[i].key, *val = &label->via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != n || memcmp(k->via.str.ptr, pred, n))
			continue;
		if (!is_number(val, &v))
			return lx_errf(e, LX_EINPUT, "field label: the score of \"%s\" is not a number", pred);
		s->score_sum += v;
		break;
	}
	s->questions++;
	return LX_OK;
}

static void submit_nlvr2_line(state *s, const pair *p, int pred)
{
	fprintf(stdout, "%s,%s\n", p->id, pred ? "True" : "False");
	s->submitted++;
}

/* Closes the NLVR2 example in hand: its prediction is mean P(true) >= 0.5 over its records. */
static void close_pair(state *s)
{
	pair *p = &s->pr;
	int pred;

	if (!p->open)
		return;
	pred = p->forced >= 0 ? p->forced : p->prob / p->n >= 0.5;
	if (s->score && p->has_label) {
		s->pairs++;
		s->correct += pred == p->label;
	}
	if (s->out == OUT_SUBMIT && s->submit == SUB_NLVR2)
		submit_nlvr2_line(s, p, pred);
	p->open = 0;
}

/* Adds the record to the NLVR2 example with its identifier. */
static lx_status nlvr2_record(state *s, const lx_record *rec, int has_label, int32_t label, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, "identifier");
	char id[256] = "";
	pair *p = &s->pr;

	if (!s->has_true_prob)
		return lx_errf(e, LX_EINPUT, "NLVR2 needs the NLVR2 classifier (on a pair record), the match head or a "
		               "two-answer qa head to predict true or false");
	if (o)
		lx_object_text(o, id, sizeof id);
	if (!*id && s->out == OUT_SUBMIT)
		return missing("identifier", "--submit nlvr2 needs it", e);
	if (!p->open || !*id || strcmp(id, p->id)) {
		close_pair(s);
		snprintf(p->id, sizeof p->id, "%s", id);
		p->open = 1;
		p->n = 0;
		p->prob = 0;
		p->has_label = 0;
		p->forced = -1;
	}
	if (has_label) {
		if (p->has_label && p->label != label)
			return lx_errf(e, LX_EINPUT, "field label: %d, but an earlier record of %s says %d", label, id,
			               p->label);
		p->label = label;
		p->has_label = 1;
	}
	p->prob += s->true_prob;
	p->n++;
	if (s->nlvr2_pred >= 0)
		p->forced = s->nlvr2_pred;
	if (!*id)
		close_pair(s);
	return LX_OK;
}

/* ---- submissions ---- */

/* The question id of a VQA or GQA record, NULL if it has none. */
static const msgpack_object *question_id(const state *s, const lx_record *rec)
{
	const msgpack_object *id = lx_record_get(rec, "question_id");

	return !id && s->submit == SUB_GQA ? lx_record_get(rec, "questionId") : id;
}

/* One entry of a VQA or GQA submission. */
static void submit_entry(state *s, const msgpack_object *id, const char *answer)
{
	char ids[256];

	fputs(s->submitted++ ? ",\n" : "[\n", stdout);
	if (s->submit == SUB_VQA) {
		fputs("{\"question_id\": ", stdout);
		lx_json_value(stdout, id);
		fputs(", \"answer\": ", stdout);
	} else {
		lx_object_text(id, ids, sizeof ids);
		fputs("{\"questionId\": ", stdout);
		lx_json_str(stdout, ids, strlen(ids), LX_JSON_SHORT);
		fputs(", \"prediction\": ", stdout);
	}
	lx_json_str(stdout, answer, strlen(answer), LX_JSON_SHORT);
	fputs("}", stdout);
}

static lx_status put_submit(state *s, const lx_record *rec, lx_err *e)
{
	const msgpack_object *id;

	if (s->submit == SUB_NLVR2)
		return LX_OK; /* written by close_pair */
	if (!(id = question_id(s, rec)))
		return missing("question_id", s->submit == SUB_VQA ? "--submit vqa needs it" : "--submit gqa needs it", e);
	submit_entry(s, id, lx_names_get(s->answers, s->pred));
	return LX_OK;
}

/* An error record in the submission and the scores: a question it names is submitted with an empty answer
 * (VQA, GQA) or False (NLVR2) and scored as wrong, each said on stderr; unless --drop-failed, which leaves
 * it out of both. Returns 1 when the record was kept. */
static int keep_failed(state *s, const lx_record *rec, long n)
{
	const msgpack_object *label = lx_record_get(rec, "label"), *id = NULL;
	int nlvr2 = label && (label->type == MSGPACK_OBJECT_BOOLEAN || label->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
	char ids[256] = "";
	int kept = 0;

	if (s->drop_failed)
		return 0;
	if (s->out == OUT_SUBMIT && s->submit != SUB_NLVR2 && (id = question_id(s, rec))) {
		submit_entry(s, id, "");
		kept = 1;
	} else if (s->out == OUT_SUBMIT && s->submit == SUB_NLVR2 && (id = lx_record_get(rec, "identifier"))) {
		close_pair(s);
		lx_object_text(id, ids, sizeof ids);
		fprintf(stdout, "%s,False\n", ids);
		s->submitted++;
		kept = 1;
	}
	if (s->score && label && (label->type == MSGPACK_OBJECT_MAP || nlvr2)) {
		if (nlvr2) {
			close_pair(s);
			s->pairs++;
		} else
			s->questions++;
		s->failed++;
		kept = 1;
	}
	if (kept) {
		if (id && !*ids)
			lx_object_text(id, ids, sizeof ids);
		tool_warn("record %ld%s%s%s: failed: %s", n, *ids ? " (id " : "", ids, *ids ? ")" : "",
		          s->out == OUT_SUBMIT ? (s->submit == SUB_NLVR2 ? "submitted as False" :
		          "submitted with an empty answer") : "counted as a wrong answer");
	}
	return kept;
}

/* Scores the record and adds it to the NLVR2 example in hand. */
static lx_status score_record(state *s, const lx_record *rec, lx_err *e)
{
	const msgpack_object *label = lx_record_get(rec, "label");
	int32_t v = 0;
	int has = 0;

	if (label && label->type == MSGPACK_OBJECT_MAP && s->score)
		return score_answer(s, label, e);
	if (label && (label->type == MSGPACK_OBJECT_POSITIVE_INTEGER || label->type == MSGPACK_OBJECT_BOOLEAN)) {
		v = label->type == MSGPACK_OBJECT_BOOLEAN ? label->via.boolean : (int32_t)(label->via.u64 != 0);
		if (label->type == MSGPACK_OBJECT_POSITIVE_INTEGER && label->via.u64 > 1)
			return lx_errf(e, LX_EINPUT, "field label: %llu, expected 0 or 1 (NLVR2)",
			               (unsigned long long)label->via.u64);
		has = 1;
	}
	if ((has && s->score) || (s->out == OUT_SUBMIT && s->submit == SUB_NLVR2))
		return nlvr2_record(s, rec, has, v, e);
	return LX_OK;
}

static lx_status output(state *s, lx_writer *w, const lx_record *rec, lx_err *e);

/* A record that carries an error goes out as it came: in the stream, as a JSON line (without tensors), but
 * in no submission and no score. */
static lx_status pass(state *s, tool_run *t, const lx_record *rec, lx_err *e)
{
	lx_status rc = LX_OK;
	int kept = keep_failed(s, rec, t->done + 1);

	if (s->out == OUT_STREAM)
		return lx_writer_put(t->wr, rec, e);
	if (s->out == OUT_JSON)
		rc = lx_json_record(s->json, stdout, rec, 0, e); /* its tensors may be what was wrong with it */
	else if (!kept)
		s->passed++;
	if (!rc && ferror(stdout))
		rc = lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	return rc;
}

/* The totals of the run, saved before a record and put back if --keep-going turns it into an error record:
 * the fields of state from loss_sum up to (not including) json. */
#define TOTALS_AT offsetof(state, loss_sum)
#define TOTALS_LEN (offsetof(state, json) - offsetof(state, loss_sum))

/* Runs the heads on one record and writes it; with --keep-going a bad record is written as an error record
 * (its fields as read, and error) instead, and counts in no total. */
static lx_status one_record(state *s, tool_run *t, lx_record *rec, lx_err *e)
{
	unsigned char saved[TOTALS_LEN];
	lx_status rc;

	memcpy(saved, (char *)s + TOTALS_AT, TOTALS_LEN);
	rc = run_heads(s, rec, e);
	if (!rc)
		rc = output(s, t->wr, rec, e);
	if (rc != LX_EINPUT)
		return rc;
	tool_where(t, rec, e);
	if ((rc = tool_refuse(t, rec, rc, e)))
		return rc;
	memcpy((char *)s + TOTALS_AT, saved, TOTALS_LEN);
	return pass(s, t, rec, e);
}

static lx_status output(state *s, lx_writer *w, const lx_record *rec, lx_err *e)
{
	lx_status rc;

	if ((rc = score_record(s, rec, e)))
		return rc;
	if (s->out == OUT_STREAM)
		return lx_writer_put(w, rec, e);
	rc = s->out == OUT_JSON ? lx_json_record(s->json, stdout, rec, s->json_tensors, e) : put_submit(s, rec, e);
	if (!rc && ferror(stdout))
		rc = lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	return rc;
}

/* ---- setup ---- */

static int parse_heads(const char *list)
{
	char buf[128], *tok, *save = NULL;
	int bits = 0, k;

	snprintf(buf, sizeof buf, "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (k = LX_HEAD_QA; k <= LX_HEAD_NLVR2; k <<= 1)
			if (strcmp(tok, lx_head_name(k)) == 0)
				break;
		if (k > LX_HEAD_NLVR2)
			tool_usage("--heads: unknown head '%s' (expected qa, match, mlm, obj or nlvr2)", tok);
		bits |= k;
	}
	if (!bits)
		tool_usage("--heads: no head named");
	return bits;
}

static lx_status setup(state *s, const char *dir, const char *labels, const char *objects, const char *attrs, lx_err *e)
{
	const lx_config *c = s->c;
	lx_status rc;
	int k;

	if ((s->heads & LX_HEAD_QA) &&
	    (rc = lx_names_load_model(&s->answers, dir, LX_LIST_ANSWERS, labels, c->num_qa_labels, e)))
		return rc;
	if ((s->heads & LX_HEAD_OBJ) &&
	    ((rc = lx_names_load_model(&s->objects, dir, LX_LIST_OBJECTS, objects, c->num_object_labels, e)) ||
	     (rc = lx_names_load_model(&s->attrs, dir, LX_LIST_ATTRIBUTES, attrs, c->num_attr_labels, e))))
		return rc;
	if ((s->heads & LX_HEAD_MLM) && (rc = lx_names_load_model(&s->vocab, dir, LX_LIST_WORDS, NULL, c->vocab_size, e)))
		return rc;
	s->mask_id = MASK_ID;
	if (s->vocab && (k = lx_names_find(s->vocab, "[MASK]")) >= 0)
		s->mask_id = k;
	if (s->prob == PROB_AUTO)
		s->prob = lx_heads_available(s->m) & (LX_HEAD_MATCH | LX_HEAD_MLM) ? PROB_SOFTMAX : PROB_SIGMOID;
	if (s->out == OUT_SUBMIT && s->submit != SUB_NLVR2 && (!(s->heads & LX_HEAD_QA) || !s->answers))
		return lx_errf(e, LX_EUSAGE, "--submit %s needs the qa head and answer names (--labels FILE, or "
		               "answers.json or answers.txt in the model directory)", s->submit == SUB_VQA ? "vqa" : "gqa");
	if (s->out == OUT_SUBMIT && s->submit == SUB_NLVR2 && !(s->heads & (LX_HEAD_MATCH | LX_HEAD_NLVR2)) &&
	    !((s->heads & LX_HEAD_QA) && c->num_qa_labels == 2))
		return lx_errf(e, LX_EUSAGE, "--submit nlvr2 needs the NLVR2 classifier, the match head or a qa head with "
		               "two answers");
	if (s->out == OUT_JSON) {
		if (!(s->json = lx_json_new()))
			return lx_errf(e, LX_EIO, "out of memory");
	}
	if (s->score_path && lx_lock_take(s->score_path, &s->score_lock, e))
		return e->status;
	if (!(s->h = lx_heads_new(s->m)))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* ---- the end of the run ---- */

static void summaries(state *s)
{
	int k;

	if (s->loss_records) {
		fprintf(stderr, "%s: loss over %ld labelled records: sum %.6g, mean %.6g", tool_name, s->loss_records,
		        s->loss_total, s->loss_total / s->loss_records);
		for (k = 0; k < LX_NLOSS; k++)
			if (s->loss_n[k])
				fprintf(stderr, "%s %s %.6g", k ? "," : " (mean", lx_loss_names[k], s->loss_sum[k] / s->loss_n[k]);
		fprintf(stderr, ")\n");
	}
	if (s->vqa_n)
		fprintf(stderr, "%s: vqa_loss over %ld questions: mean %.6g\n", tool_name, s->vqa_n, s->vqa_sum / s->vqa_n);
	if (!s->score)
		return;
	if (s->questions || !s->pairs)
		fprintf(stderr, "%s: score %.6f over %ld questions%s", tool_name,
		        s->questions ? s->score_sum / s->questions : 0.0, s->questions, s->failed ? "" : "\n");
	if (s->failed && (s->questions || !s->pairs))
		fprintf(stderr, ", %ld failed and counted as wrong\n", s->failed);
	if (s->pairs)
		fprintf(stderr, "%s: NLVR2 accuracy %.6f over %ld pairs%s", tool_name, (double)s->correct / s->pairs,
		        s->pairs, s->failed && !s->questions ? "" : "\n");
	if (s->failed && s->pairs && !s->questions)
		fprintf(stderr, ", %ld failed and counted as wrong\n", s->failed);
}

static lx_status score_json(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const state *s = ctx;

	fputc('{', f);
	if (s->questions || !s->pairs) {
		fputs("\"score\": ", f);
		lx_json_num(f, s->questions ? s->score_sum / s->questions : 0.0, 0);
		fprintf(f, ", \"questions\": %ld", s->questions);
	}
	if (s->pairs) {
		fputs(s->questions ? ", \"nlvr2_accuracy\": " : "\"nlvr2_accuracy\": ", f);
		lx_json_num(f, (double)s->correct / s->pairs, 0);
		fprintf(f, ", \"pairs\": %ld", s->pairs);
	}
	if (s->failed)
		fprintf(f, ", \"failed\": %ld", s->failed);
	fputs("}\n", f);
	return LX_OK;
}

/* --score-file: written whole at the end, the previous one kept until then */
static lx_status write_score_file(state *s, lx_err *e)
{
	return s->score_path ? lx_write_atomic(s->score_path, score_json, s, e) : LX_OK;
}

static void finish_output(state *s)
{
	close_pair(s);
	if (s->out == OUT_SUBMIT && s->submit != SUB_NLVR2)
		fputs(s->submitted ? "\n]\n" : "[]\n", stdout);
}

static void cleanup(state *s)
{
	buf *b[] = {&s->pooled, &s->lang, &s->visn, &s->ids, &s->qa, &s->qa_p, &s->rows, &s->logits,
	            &s->prob_v, &s->pos, &s->top_idx, &s->obj, &s->attr, &s->feat, &s->target,
	            &s->pooled2};
	size_t i;

	for (i = 0; i < sizeof b / sizeof b[0]; i++)
		free(b[i]->p);
	lx_lock_release(s->score_lock);
	lx_json_free(s->json);
	lx_labels_data_destroy(&s->labels);
	lx_names_free(s->answers);
	lx_names_free(s->objects);
	lx_names_free(s->attrs);
	lx_names_free(s->vocab);
	lx_heads_free(s->h);
	lx_model_free(s->m);
}

int main(int argc, char **argv)
{
	static const char *const subs[] = {"vqa", "gqa", "nlvr2", NULL}, *probs[] = {"auto", "sigmoid", "softmax", NULL};
	const char *dir = NULL, *labels = NULL, *objects = NULL, *attrs = NULL;
	int ch, progress = 0, keep_going = 0, heads = 0, json = 0, submit = -1, pass_it, quiet;
	state s;
	tool_run t;
	lx_record *rec;
	lx_err err = {0, ""};
	lx_status rc = LX_OK, st;

	memset(&s, 0, sizeof s);
	s.top = 5;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case O_HEADS: heads = parse_heads(optarg); break;
		case O_TOP: s.top = (int)tool_long(optarg, "--top", 1, 1 << 20); break;
		case O_ALL_LOGITS: s.all_logits = 1; break;
		case O_LABELS: labels = optarg; break;
		case O_OBJECTS: objects = optarg; break;
		case O_ATTRIBUTES: attrs = optarg; break;
		case O_ANSWER_PROB: s.prob = tool_choice(optarg, "--answer-prob", probs); break;
		case O_JSON: json = 1; break;
		case O_JSON_TENSORS: json = s.json_tensors = 1; break;
		case O_SUBMIT: submit = tool_choice(optarg, "--submit", subs); break;
		case O_SCORE: s.score = 1; break;
		case O_SCORE_FILE: s.score = 1; s.score_path = optarg; break;
		case O_DROP_FAILED: s.drop_failed = 1; break;
		case TOOL_PROGRESS: progress = 1; break;
		case TOOL_KEEP_GOING: keep_going = 1; break;
		}
	}
	tool_require(dir, "-m DIR");
	tool_no_operands(argc);
	if (json && submit >= 0)
		tool_usage("--json and --submit cannot be used together");
	s.out = json ? OUT_JSON : submit >= 0 ? OUT_SUBMIT : OUT_STREAM;
	s.submit = submit;
	if ((rc = lx_model_open(&s.m, dir, &err)))
		return tool_fail(rc, "%s", err.msg);
	s.c = lx_model_config(s.m);
	s.heads = heads ? heads : lx_heads_available(s.m);
	if (!s.heads)
		rc = lx_errf(&err, LX_EMODEL, "%s: the model has no heads (answer_head.*, cls.*, obj_predict_head.*)", dir);
	if (rc || (rc = lx_heads_require(s.m, s.heads, &err)) || (rc = setup(&s, dir, labels, objects, attrs, &err))) {
		cleanup(&s);
		return tool_fail(rc, "%s", err.msg);
	}
	if (tool_run_init(&t, stdin, "stdin", s.out == OUT_STREAM, keep_going, progress)) {
		tool_run_free(&t);
		cleanup(&s);
		return tool_fail(LX_EIO, "out of memory");
	}
	tool_signals(NULL);
	while (!(rc = tool_next(&t, &rec, &pass_it, &err)) && rec) {
		rc = pass_it ? pass(&s, &t, rec, &err) : one_record(&s, &t, rec, &err);
		lx_record_free(rec);
		if (rc)
			break;
		tool_done(&t, 1);
	}
	finish_output(&s);
	rc = tool_flush(&t, rc, &err, &quiet);
	if (s.passed)
		tool_warn("%ld error records left out of the submission", s.passed);
	rc = tool_exit(&t, rc, &err, quiet);
	/* the totals hold every record (a failed one as a wrong answer) after a signal or with --keep-going */
	if (!rc || rc == LX_EINTR || (rc == LX_EINPUT && t.bad)) {
		summaries(&s);
		if (rc != LX_EINTR && (st = write_score_file(&s, &err)))
			rc = st, tool_warn("%s", err.msg);
	}
	tool_run_free(&t);
	cleanup(&s);
	return rc;
}

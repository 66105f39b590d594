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

static const char *tool = "lx-head";

#define MASK_ID 103  /* [MASK] in BERT's uncased vocabulary, used when the model has no vocab.txt */

static void usage(FILE *f)
{
	fprintf(f, "usage: %s -m DIR [--heads qa,match,mlm,obj] [--top K] [--all-logits] [--labels FILE]\n"
	           "       [--objects FILE] [--attributes FILE] [--answer-prob auto|sigmoid|softmax]\n"
	           "       [--json [--json-tensors] | --submit vqa|gqa|nlvr2] [--score] [--score-file F] [--keep-going]\n"
	           "       [--progress]\n"
	           "Reads lx-encode's records on stdin and adds the outputs of LXMERT's heads: answers, match\n"
	           "probability, masked words, object and attribute labels, and losses where a record carries\n"
	           "labels. See lx-head(1).\n",
	        tool);
}

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
} pair;

typedef struct {
	/* setup */
	lx_model *m;
	const lx_config *c;
	lx_heads *h;
	int heads, top, all_logits, prob, out, submit, score, json_tensors, mask_id, keep_going;
	long bad;      /* records turned into error records (--keep-going) */
	lx_names *answers, *objects, *attrs, *vocab;
	FILE *score_file;
	const char *score_path;
	/* buffers */
	buf pooled, lang, visn, ids, qa, qa_p, rows, logits, prob_v, pos, top_idx, obj, attr, feat;
	buf lab_mlm, lab_obj, lab_attr, mask_obj, mask_attr, mask_feat, feats, tens, target;
	/* the record in hand */
	int T, N, pred, has_true_prob;
	double true_prob;
	/* totals */
	double loss_sum[LX_NLOSS], loss_total, vqa_sum;
	long loss_n[LX_NLOSS], loss_records, vqa_n;
	double score_sum;
	long questions, pairs, correct;
	pair pr;
	long submitted;
	long passed;  /* error records left out of a submission */
	/* --json through a memory stream */
	FILE *mem;
	char *mem_buf;
	size_t mem_len;
	lx_writer *mem_w;
} state;

/* ---- reading fields ---- */

static lx_status missing(const char *key, const char *why, lx_err *e)
{
	return lx_errf(e, LX_EINPUT, "field %s is missing (%s)", key, why);
}

/* NaN or infinity in an input would come out as a wrong answer or a NaN loss: refused, with where it is. */
static lx_status all_finite(const float *x, int64_t n, int64_t last, const char *key, lx_err *e)
{
	int64_t i;

	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return last ? lx_errf(e, LX_EINPUT, "field %s: non-finite value (%g) at row %lld, column %lld", key,
			                      (double)x[i], (long long)(i / last), (long long)(i % last))
			            : lx_errf(e, LX_EINPUT, "field %s: non-finite value (%g) at element %lld", key,
			                      (double)x[i], (long long)i);
	return LX_OK;
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
	return all_finite(b->p, t.numel, rows ? last : 0, key, e);
}

/* An optional vector field of len values, as int32 (want_int) or float, decoded into b; *present says. */
static lx_status get_vector(const lx_record *rec, const char *key, int64_t len, const char *side, int want_int,
                            buf *b, int *present, lx_err *e)
{
	lx_tensor t;
	lx_status rc;
	int64_t i;

	if ((rc = lx_record_tensor(rec, key, &t, present, e)) || !*present)
		return rc;
	if (t.ndim != 1 || t.shape[0] != len)
		return lx_errf(e, LX_EINPUT, "field %s: shape must be [%lld] to match %s", key, (long long)len, side);
	if (!grow(b, (size_t)(len ? len : 1) * 4))
		return lx_errf(e, LX_EIO, "out of memory");
	if (want_int) {
		if (lx_dtype_is_float(t.dtype))
			return lx_errf(e, LX_EINPUT, "field %s: dtype %s, expected an integer dtype", key,
			               lx_dtype_numpy(t.dtype));
		return lx_tensor_to_i32(&t, b->p, key, e);
	}
	if (lx_dtype_is_float(t.dtype))
		return (rc = lx_tensor_to_f32(&t, b->p, key, e)) ? rc : all_finite(b->p, len, 0, key, e);
	if ((rc = lx_tensor_to_i32(&t, b->p, key, e)))
		return rc;
	for (i = 0; i < len; i++)
		((float *)b->p)[i] = (float)((int32_t *)b->p)[i];
	return LX_OK;
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
 * list are left out, as the authors' data loader does). */
static lx_status vqa_loss(state *s, lx_record *rec, const msgpack_object *label, const float *q, lx_err *e)
{
	int A = s->c->num_qa_labels, k;
	float *target = grow(&s->target, (size_t)A * 4);
	char name[512];
	uint32_t i;
	double v, loss;

	if (!target)
		return oom(e);
	memset(target, 0, (size_t)A * 4);
	for (i = 0; i < label->via.map.size; i++) {
		const msgpack_object *key = &label->via.map.ptr[i].key;
		if (key->type != MSGPACK_OBJECT_STR)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)key->via.str.size, key->via.str.ptr);
		if (!is_number(&label->via.map.ptr[i].val, &v))
			return lx_errf(e, LX_EINPUT, "field label: the score of \"%s\" is not a number", name);
		if ((k = lx_names_find(s->answers, name)) >= 0)
			target[k] = (float)v;
	}
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
	if (lx_record_add_tensor(rec, "question_answering_score", LX_F32, 1, shape, q) ||
	    !(pk = lx_record_add_packer(rec, "answers")))
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
	if (lx_record_add_tensor(rec, "cross_relationship_score", LX_F32, 1, shape, sc) ||
	    lx_record_add_float(rec, "match_prob", p[1]))
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
	if (lx_record_add_tensor(rec, "prediction_logits", LX_F32, 2, shape, logits))
		return oom(e);
	shape[0] = M;
	if (lx_record_add_tensor(rec, "mask_positions", LX_I32, 1, shape, pos) ||
	    !(pk = lx_record_add_packer(rec, "masked_words")))
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
	if (lx_record_add_tensor(rec, "obj_head_obj", LX_F32, 2, so, obj) ||
	    lx_record_add_tensor(rec, "obj_head_attr", LX_F32, 2, sa, attr) ||
	    lx_record_add_tensor(rec, "obj_head_feat", LX_F32, 2, sf, feat))
		return oom(e);
	if (s->objects && (rc = add_names(rec, "objects", obj, N, O, s->objects, e)))
		return rc;
	if (s->attrs && (rc = add_names(rec, "attributes", attr, N, At, s->attrs, e)))
		return rc;
	return LX_OK;
}

/* ---- losses ---- */

static lx_status read_labels(state *s, const lx_record *rec, lx_labels *l, int *any, lx_err *e)
{
	int p, F = s->c->visual_feat_dim;
	int64_t shape[2];
	lx_status rc;

	memset(l, 0, sizeof *l);
	l->T = s->T;
	l->N = s->N;
	*any = 0;
	if ((s->heads & LX_HEAD_MLM)) {
		if ((rc = get_vector(rec, "labels", s->T, "input_ids", 1, &s->lab_mlm, &p, e)))
			return rc;
		l->mlm_labels = p ? s->lab_mlm.p : NULL;
		*any |= p;
	}
	if ((s->heads & LX_HEAD_MATCH)) {
		if ((rc = lx_record_int(rec, "matched_label", &l->matched_label, &l->has_matched, e)))
			return rc;
		*any |= l->has_matched;
	}
	if ((s->heads & LX_HEAD_QA)) {
		if ((rc = lx_record_int(rec, "ans", &l->ans, &l->has_ans, e)))
			return rc;
		*any |= l->has_ans;
	}
	if (!(s->heads & LX_HEAD_OBJ))
		return LX_OK;
	if ((rc = get_vector(rec, "obj_labels", s->N, "vision_output", 1, &s->lab_obj, &p, e)))
		return rc;
	if (p) {
		if ((rc = get_vector(rec, "obj_mask", s->N, "vision_output", 0, &s->mask_obj, &p, e)))
			return rc;
		if (!p)
			return missing("obj_mask", "obj_labels needs it", e);
		l->obj_labels = s->lab_obj.p;
		l->obj_mask = s->mask_obj.p;
		*any = 1;
	}
	if ((rc = get_vector(rec, "attr_labels", s->N, "vision_output", 1, &s->lab_attr, &p, e)))
		return rc;
	if (p) {
		if ((rc = get_vector(rec, "attr_mask", s->N, "vision_output", 0, &s->mask_attr, &p, e)))
			return rc;
		if (!p)
			return missing("attr_mask", "attr_labels needs it", e);
		l->attr_labels = s->lab_attr.p;
		l->attr_mask = s->mask_attr.p;
		*any = 1;
	}
	if ((rc = get_vector(rec, "feat_mask", s->N, "vision_output", 0, &s->mask_feat, &p, e)))
		return rc;
	if (p) {
		if ((rc = get_floats(rec, "visual_feats", "N", F, "feat_mask needs the features as targets", &s->feats, shape,
		                     e)))
			return rc;
		if (shape[0] != s->N)
			return lx_errf(e, LX_EINPUT, "field visual_feats: %lld boxes, vision_output has %d",
			               (long long)shape[0], s->N);
		l->feat_mask = s->mask_feat.p;
		l->feat_target = s->feats.p;
		*any = 1;
	}
	return LX_OK;
}

static lx_status run_losses(state *s, lx_record *rec, lx_err *e)
{
	lx_labels l;
	lx_losses out;
	int any, k;
	lx_status rc;

	if ((rc = read_labels(s, rec, &l, &any, e)) || !any)
		return rc;
	if ((rc = lx_heads_losses(s->h, s->heads, &l, s->lang.p, s->visn.p, s->pooled.p, &out, e)))
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

static lx_status run_heads(state *s, lx_record *rec, lx_err *e)
{
	int64_t shape[2];
	int H = s->c->hidden_size, present;
	lx_status rc;

	s->T = s->N = 0;
	s->pred = -1;
	s->has_true_prob = 0;
	if ((s->heads & (LX_HEAD_QA | LX_HEAD_MATCH)) &&
	    (rc = get_floats(rec, "pooled_output", NULL, H, "the qa and match heads need lx-encode's pooled_output",
	                     &s->pooled, shape, e)))
		return rc;
	if (s->heads & LX_HEAD_MLM) {
		if ((rc = get_floats(rec, "language_output", "T", H, "the mlm head needs lx-encode's language_output",
		                     &s->lang, shape, e)))
			return rc;
		s->T = (int)shape[0];
		if ((rc = get_vector(rec, "input_ids", s->T, "language_output", 1, &s->ids, &present, e)))
			return rc;
		if (!present)
			return missing("input_ids", "the mlm head looks for [MASK] in it", e);
	}
	if (s->heads & LX_HEAD_OBJ) {
		if ((rc = get_floats(rec, "vision_output", "N", H, "the obj head needs lx-encode's vision_output", &s->visn,
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
	return run_losses(s, rec, e);
}

/* ---- scores ---- */

static void str_of(const msgpack_object *o, char *dst, size_t n)
{
	if (o->type == MSGPACK_OBJECT_STR)
		snprintf(dst, n, "%.*s", (int)o->via.str.size, o->via.str.ptr);
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		snprintf(dst, n, "%llu", (unsigned long long)o->via.u64);
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		snprintf(dst, n, "%lld", (long long)o->via.i64);
	else
		dst[0] = 0;
}

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
	pred = p->prob / p->n >= 0.5;
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
		return lx_errf(e, LX_EINPUT, "NLVR2 needs the match head or a two-answer qa head to predict true or false");
	if (o)
		str_of(o, id, sizeof id);
	if (!*id && s->out == OUT_SUBMIT)
		return missing("identifier", "--submit nlvr2 needs it", e);
	if (!p->open || !*id || strcmp(id, p->id)) {
		close_pair(s);
		snprintf(p->id, sizeof p->id, "%s", id);
		p->open = 1;
		p->n = 0;
		p->prob = 0;
		p->has_label = 0;
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
	if (!*id)
		close_pair(s);
	return LX_OK;
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s, size_t n)
{
	size_t i;

	fputc('"', f);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '\t')
			fputs("\\t", f);
		else if (ch == '\r')
			fputs("\\r", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* The shortest decimal that reads back as the same double (or float, when single). */
static void json_num(FILE *f, double v, int single)
{
	char s[40];
	int prec;

	if (!isfinite(v)) {
		fputs("null", f);
		return;
	}
	for (prec = single ? 6 : 15; prec < 17; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, v);
		if (single ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v)
			break;
	}
	if (prec == 17)
		snprintf(s, sizeof s, "%.17g", v);
	fputs(s, f);
}

static void json_b64(FILE *f, const unsigned char *p, size_t n)
{
	char s[4096];
	size_t i, k;

	fputc('"', f);
	for (i = 0; i < n; i += k) {
		k = n - i < 3072 ? n - i : 3072;
		lx_base64_encode(p + i, k, s);
		fwrite(s, 1, lx_base64_len(k), f);
	}
	fputc('"', f);
}

static void json_value(FILE *f, const msgpack_object *o)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL: fputs("null", f); break;
	case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%llu", (unsigned long long)o->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%lld", (long long)o->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32: json_num(f, o->via.f64, 1); break;
	case MSGPACK_OBJECT_FLOAT64: json_num(f, o->via.f64, 0); break;
	case MSGPACK_OBJECT_STR: json_str(f, o->via.str.ptr, o->via.str.size); break;
	case MSGPACK_OBJECT_BIN: json_b64(f, (const unsigned char *)o->via.bin.ptr, o->via.bin.size); break;
	case MSGPACK_OBJECT_EXT: json_b64(f, (const unsigned char *)o->via.ext.ptr, o->via.ext.size); break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (i = 0; i < o->via.array.size; i++) {
			if (i)
				fputs(", ", f);
			json_value(f, &o->via.array.ptr[i]);
		}
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', f);
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			char ks[64];
			if (i)
				fputs(", ", f);
			if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN)
				json_str(f, k->via.str.ptr, k->via.str.size);
			else {
				str_of(k, ks, sizeof ks);
				json_str(f, ks, strlen(ks));
			}
			fputs(": ", f);
			json_value(f, &o->via.map.ptr[i].val);
		}
		fputc('}', f);
		break;
	}
}

/* A tensor as nested JSON lists, dimension by dimension. */
static void json_nested(FILE *f, const lx_tensor *t, const void *data, int fl, int d, size_t *at)
{
	int64_t i;

	if (d == t->ndim) {
		if (fl)
			json_num(f, ((const float *)data)[*at], 1);
		else
			fprintf(f, "%d", ((const int32_t *)data)[*at]);
		(*at)++;
		return;
	}
	fputc('[', f);
	for (i = 0; i < t->shape[d]; i++) {
		if (i)
			fputs(", ", f);
		json_nested(f, t, data, fl, d + 1, at);
	}
	fputc(']', f);
}

static int is_tensor(const msgpack_object *v)
{
	uint32_t i;

	if (v->type != MSGPACK_OBJECT_MAP)
		return 0;
	for (i = 0; i < v->via.map.size; i++) {
		const msgpack_object *k = &v->via.map.ptr[i].key;
		if ((k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) && k->via.str.size == 2 &&
		    memcmp(k->via.str.ptr, "nd", 2) == 0)
			return 1;
	}
	return 0;
}

/* Converts tensor field key into s->tens and, if print, writes it as nested JSON lists. */
static lx_status json_tensor(state *s, const lx_record *rec, const char *key, int print, lx_err *e)
{
	lx_tensor t;
	size_t at = 0;
	int fl;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, key, &t, NULL, e)))
		return rc;
	fl = lx_dtype_is_float(t.dtype);
	if (!grow(&s->tens, (size_t)(t.numel ? t.numel : 1) * 4))
		return oom(e);
	if ((rc = fl ? lx_tensor_to_f32(&t, s->tens.p, key, e) : lx_tensor_to_i32(&t, s->tens.p, key, e)))
		return rc;
	if (print)
		json_nested(stdout, &t, s->tens.p, fl, 0, &at);
	return LX_OK;
}

/* One record as one JSON object on a line: its fields in order, tensors left out unless --json-tensors. */
static lx_status put_json(state *s, const lx_record *rec, int tensors, lx_err *e)
{
	msgpack_unpacked up;
	size_t off = 0;
	uint32_t i, n = 0;
	lx_status rc = LX_OK;
	char key[256];

	if (fseeko(s->mem, 0, SEEK_SET) || lx_writer_put(s->mem_w, rec, e) || lx_writer_flush(s->mem_w, e))
		return lx_errf(e, LX_EIO, "out of memory");
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, s->mem_buf, s->mem_len, &off) != MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&up);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	/* a tensor that cannot be converted is found before anything of the line is written */
	for (i = 0; tensors && i < up.data.via.map.size && !rc; i++) {
		const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
		if (!is_tensor(v))
			continue;
		if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN)
			snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
		else
			str_of(k, key, sizeof key);
		rc = json_tensor(s, rec, key, 0, e);
	}
	if (rc) {
		msgpack_unpacked_destroy(&up);
		return rc;
	}
	fputc('{', stdout);
	for (i = 0; i < up.data.via.map.size && !rc; i++) {
		const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
		if (is_tensor(v) && !tensors)
			continue;
		if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN)
			snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
		else
			str_of(k, key, sizeof key);
		fputs(n++ ? ", " : "", stdout);
		json_str(stdout, key, strlen(key));
		fputs(": ", stdout);
		if (is_tensor(v))
			rc = json_tensor(s, rec, key, 1, e);
		else
			json_value(stdout, v);
	}
	fputs("}\n", stdout);
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* ---- submissions ---- */

static lx_status put_submit(state *s, const lx_record *rec, lx_err *e)
{
	const msgpack_object *id;
	char ids[256];

	if (s->submit == SUB_NLVR2)
		return LX_OK; /* written by close_pair */
	id = lx_record_get(rec, "question_id");
	if (!id && s->submit == SUB_GQA)
		id = lx_record_get(rec, "questionId");
	if (!id)
		return missing("question_id", s->submit == SUB_VQA ? "--submit vqa needs it" : "--submit gqa needs it", e);
	fputs(s->submitted++ ? ",\n" : "[\n", stdout);
	if (s->submit == SUB_VQA) {
		fputs("{\"question_id\": ", stdout);
		json_value(stdout, id);
		fputs(", \"answer\": ", stdout);
	} else {
		str_of(id, ids, sizeof ids);
		fputs("{\"questionId\": ", stdout);
		json_str(stdout, ids, strlen(ids));
		fputs(", \"prediction\": ", stdout);
	}
	json_str(stdout, lx_names_get(s->answers, s->pred), strlen(lx_names_get(s->answers, s->pred)));
	fputs("}", stdout);
	return LX_OK;
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
static lx_status pass(state *s, lx_writer *w, const lx_record *rec, lx_err *e)
{
	lx_status rc = LX_OK;

	if (s->out == OUT_STREAM)
		return lx_writer_put(w, rec, e);
	if (s->out == OUT_JSON)
		rc = put_json(s, rec, 0, e); /* its tensors may be what was wrong with it */
	else
		s->passed++;
	if (!rc && ferror(stdout))
		rc = lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	return rc;
}

/* The totals of the run, saved before a record and put back if --keep-going turns it into an error record:
 * the fields of state from loss_sum up to (not including) mem. */
#define TOTALS_AT offsetof(state, loss_sum)
#define TOTALS_LEN (offsetof(state, mem) - offsetof(state, loss_sum))

/* Runs the heads on one record and writes it; with --keep-going a bad record is written as an error record
 * (its fields as read, and error) instead. */
static lx_status one_record(state *s, lx_writer *w, lx_record *rec, lx_err *e)
{
	unsigned char saved[TOTALS_LEN];
	char msg[sizeof e->msg + 200], id[128];
	lx_status rc;

	if (lx_record_is_error(rec))
		return pass(s, w, rec, e);
	memcpy(saved, (char *)s + TOTALS_AT, TOTALS_LEN);
	rc = run_heads(s, rec, e);
	if (!rc)
		rc = output(s, w, rec, e);
	if (rc != LX_EINPUT)
		return rc;
	lx_record_id(rec, id, sizeof id);
	snprintf(msg, sizeof msg, "%s: stdin: record %ld%s%s%s: %s", tool, lx_record_index(rec) + 1, *id ? " (id " : "",
	         id, *id ? ")" : "", e->msg);
	if (!s->keep_going) {
		snprintf(e->msg, sizeof e->msg, "%.*s", (int)sizeof e->msg - 1, msg + strlen(tool) + 2);
		return rc;
	}
	fprintf(stderr, "%s\n", msg);
	s->bad++;
	memcpy((char *)s + TOTALS_AT, saved, TOTALS_LEN);
	lx_record_revert(rec);
	if (lx_record_set_error(rec, msg))
		return oom(e);
	return pass(s, w, rec, e);
}

static lx_status output(state *s, lx_writer *w, const lx_record *rec, lx_err *e)
{
	lx_status rc;

	if ((rc = score_record(s, rec, e)))
		return rc;
	if (s->out == OUT_STREAM)
		return lx_writer_put(w, rec, e);
	rc = s->out == OUT_JSON ? put_json(s, rec, s->json_tensors, e) : put_submit(s, rec, e);
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
		for (k = LX_HEAD_QA; k <= LX_HEAD_OBJ; k <<= 1)
			if (strcmp(tok, lx_head_name(k)) == 0)
				break;
		if (k > LX_HEAD_OBJ) {
			fprintf(stderr, "%s: --heads: unknown head '%s' (expected qa, match, mlm or obj)\n", tool, tok);
			exit(LX_EUSAGE);
		}
		bits |= k;
	}
	if (!bits) {
		fprintf(stderr, "%s: --heads: no head named\n", tool);
		exit(LX_EUSAGE);
	}
	return bits;
}

/* Loads a name list from `given`, or from DIR/<dflt...> when that exists; checks its length against `want`. */
static lx_status load_names(lx_names **out, const char *given, const char *dir, const char *const *dflt, int kind,
                            int want, const char *what, lx_err *e)
{
	char path[4096];
	lx_status rc;
	int i;

	*out = NULL;
	if (given)
		snprintf(path, sizeof path, "%s", given);
	else {
		for (i = 0; dflt[i]; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, dflt[i]);
			if (access(path, F_OK) == 0)
				break;
		}
		if (!dflt[i])
			return LX_OK;
	}
	if ((rc = lx_names_load(out, path, kind, e)))
		return rc;
	if (lx_names_count(*out) != want) {
		rc = lx_errf(e, LX_EMODEL, "%s: %d names, but the model has %d %s", path, lx_names_count(*out), want, what);
		lx_names_free(*out);
		*out = NULL;
	}
	return rc;
}

static lx_status setup(state *s, const char *dir, const char *labels, const char *objects, const char *attrs, lx_err *e)
{
	static const char *const ans_files[] = {"answers.json", "answers.txt", NULL},
	                         *obj_files[] = {"objects_vocab.txt", NULL}, *attr_files[] = {"attributes_vocab.txt", NULL},
	                         *vocab_files[] = {"vocab.txt", NULL};
	const lx_config *c = s->c;
	lx_status rc;
	int k;

	if ((s->heads & LX_HEAD_QA) &&
	    (rc = load_names(&s->answers, labels, dir, ans_files, LX_NAMES_ANSWERS, c->num_qa_labels,
	                     "answers (num_qa_labels)", e)))
		return rc;
	if ((s->heads & LX_HEAD_OBJ) &&
	    ((rc = load_names(&s->objects, objects, dir, obj_files, LX_NAMES_FIRST, c->num_object_labels,
	                      "object labels (num_object_labels)", e)) ||
	     (rc = load_names(&s->attrs, attrs, dir, attr_files, LX_NAMES_FIRST, c->num_attr_labels,
	                      "attribute labels (num_attr_labels)", e))))
		return rc;
	if ((s->heads & LX_HEAD_MLM) &&
	    (rc = load_names(&s->vocab, NULL, dir, vocab_files, LX_NAMES_LINES, c->vocab_size, "pieces (vocab_size)",
	                     e)))
		return rc;
	s->mask_id = MASK_ID;
	if (s->vocab && (k = lx_names_find(s->vocab, "[MASK]")) >= 0)
		s->mask_id = k;
	if (s->prob == PROB_AUTO)
		s->prob = lx_heads_available(s->m) & (LX_HEAD_MATCH | LX_HEAD_MLM) ? PROB_SOFTMAX : PROB_SIGMOID;
	if (s->out == OUT_SUBMIT && s->submit != SUB_NLVR2 && (!(s->heads & LX_HEAD_QA) || !s->answers))
		return lx_errf(e, LX_EUSAGE, "--submit %s needs the qa head and answer names (--labels FILE, or "
		               "answers.json or answers.txt in the model directory)", s->submit == SUB_VQA ? "vqa" : "gqa");
	if (s->out == OUT_SUBMIT && s->submit == SUB_NLVR2 && !(s->heads & LX_HEAD_MATCH) &&
	    !((s->heads & LX_HEAD_QA) && c->num_qa_labels == 2))
		return lx_errf(e, LX_EUSAGE, "--submit nlvr2 needs the match head or a qa head with two answers");
	if (s->out == OUT_JSON) {
		if (!(s->mem = open_memstream(&s->mem_buf, &s->mem_len)) || !(s->mem_w = lx_writer_new(s->mem, "memory")))
			return lx_errf(e, LX_EIO, "out of memory");
	}
	if (s->score_path && !(s->score_file = fopen(s->score_path, "w")))
		return lx_errf(e, LX_EIO, "%s: %s", s->score_path, strerror(errno));
	if (!(s->h = lx_heads_new(s->m)))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* ---- the end of the run ---- */

static void summaries(state *s)
{
	int k;

	if (s->loss_records) {
		fprintf(stderr, "%s: loss over %ld labelled records: sum %.6g, mean %.6g", tool, s->loss_records,
		        s->loss_total, s->loss_total / s->loss_records);
		for (k = 0; k < LX_NLOSS; k++)
			if (s->loss_n[k])
				fprintf(stderr, "%s %s %.6g", k ? "," : " (mean", lx_loss_names[k], s->loss_sum[k] / s->loss_n[k]);
		fprintf(stderr, ")\n");
	}
	if (s->vqa_n)
		fprintf(stderr, "%s: vqa_loss over %ld questions: mean %.6g\n", tool, s->vqa_n, s->vqa_sum / s->vqa_n);
	if (!s->score)
		return;
	if (s->questions || !s->pairs)
		fprintf(stderr, "%s: score %.6f over %ld questions\n", tool,
		        s->questions ? s->score_sum / s->questions : 0.0, s->questions);
	if (s->pairs)
		fprintf(stderr, "%s: NLVR2 accuracy %.6f over %ld pairs\n", tool, (double)s->correct / s->pairs, s->pairs);
}

static lx_status write_score_file(state *s, lx_err *e)
{
	FILE *f = s->score_file;

	if (!f)
		return LX_OK;
	fputc('{', f);
	if (s->questions || !s->pairs) {
		fputs("\"score\": ", f);
		json_num(f, s->questions ? s->score_sum / s->questions : 0.0, 0);
		fprintf(f, ", \"questions\": %ld", s->questions);
	}
	if (s->pairs) {
		fputs(s->questions ? ", \"nlvr2_accuracy\": " : "\"nlvr2_accuracy\": ", f);
		json_num(f, (double)s->correct / s->pairs, 0);
		fprintf(f, ", \"pairs\": %ld", s->pairs);
	}
	fputs("}\n", f);
	s->score_file = NULL;
	if (fclose(f) != 0)
		return lx_errf(e, LX_EIO, "%s: write failed: %s", s->score_path, strerror(errno));
	return LX_OK;
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
	            &s->prob_v, &s->pos, &s->top_idx, &s->obj, &s->attr, &s->feat, &s->lab_mlm, &s->lab_obj,
	            &s->lab_attr, &s->mask_obj, &s->mask_attr, &s->mask_feat, &s->feats, &s->tens, &s->target};
	size_t i;

	for (i = 0; i < sizeof b / sizeof b[0]; i++)
		free(b[i]->p);
	if (s->score_file)
		fclose(s->score_file);
	lx_writer_free(s->mem_w);
	if (s->mem)
		fclose(s->mem);
	free(s->mem_buf);
	lx_names_free(s->answers);
	lx_names_free(s->objects);
	lx_names_free(s->attrs);
	lx_names_free(s->vocab);
	lx_heads_free(s->h);
	lx_model_free(s->m);
}

static int positive(const char *s, const char *opt)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == 0 || *end || v < 1 || v > 1 << 20) {
		fprintf(stderr, "%s: %s takes a whole number from 1 to %d, not '%s'\n", tool, opt, 1 << 20, s);
		exit(LX_EUSAGE);
	}
	return (int)v;
}

static int choose(const char *arg, const char *opt, const char *const *names)
{
	int i;

	for (i = 0; names[i]; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	fprintf(stderr, "%s: %s: unknown value '%s'\n", tool, opt, arg);
	exit(LX_EUSAGE);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'},      {"heads", required_argument, 0, 'k'},
		{"top", required_argument, 0, 't'},        {"all-logits", no_argument, 0, 'L'},
		{"labels", required_argument, 0, 'l'},     {"objects", required_argument, 0, 'o'},
		{"attributes", required_argument, 0, 'a'}, {"answer-prob", required_argument, 0, 'P'},
		{"json", no_argument, 0, 'j'},             {"json-tensors", no_argument, 0, 'J'},
		{"submit", required_argument, 0, 's'},     {"score", no_argument, 0, 'S'},
		{"score-file", required_argument, 0, 'F'}, {"progress", no_argument, 0, 'p'},
		{"help", no_argument, 0, 'h'},             {"version", no_argument, 0, 'V'},
		{"keep-going", no_argument, 0, 'K'},       {0, 0, 0, 0},
	};
	static const char *const subs[] = {"vqa", "gqa", "nlvr2", NULL}, *probs[] = {"auto", "sigmoid", "softmax", NULL};
	const char *dir = NULL, *labels = NULL, *objects = NULL, *attrs = NULL;
	int ch, force_progress = 0, heads = 0, json = 0, submit = -1;
	long done = 0;
	state s;
	lx_reader *rd;
	lx_writer *wr;
	lx_record *rec;
	lx_progress prog;
	lx_err err = {0, ""};
	lx_status rc = LX_OK;

	memset(&s, 0, sizeof s);
	s.top = 5;
	while ((ch = getopt_long(argc, argv, "m:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case 'k': heads = parse_heads(optarg); break;
		case 't': s.top = positive(optarg, "--top"); break;
		case 'L': s.all_logits = 1; break;
		case 'l': labels = optarg; break;
		case 'o': objects = optarg; break;
		case 'a': attrs = optarg; break;
		case 'P': s.prob = choose(optarg, "--answer-prob", probs); break;
		case 'j': json = 1; break;
		case 'J': json = s.json_tensors = 1; break;
		case 's': submit = choose(optarg, "--submit", subs); break;
		case 'S': s.score = 1; break;
		case 'F': s.score = 1; s.score_path = optarg; break;
		case 'p': force_progress = 1; break;
		case 'K': s.keep_going = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("%s %s\n", tool, LX_VERSION); return 0;
		default: usage(stderr); return LX_EUSAGE;
		}
	}
	if (!dir || optind != argc || (json && submit >= 0)) {
		if (json && submit >= 0)
			fprintf(stderr, "%s: --json and --submit cannot be used together\n", tool);
		usage(stderr);
		return LX_EUSAGE;
	}
	s.out = json ? OUT_JSON : submit >= 0 ? OUT_SUBMIT : OUT_STREAM;
	s.submit = submit;
	if ((rc = lx_model_open(&s.m, dir, &err))) {
		fprintf(stderr, "%s: %s\n", tool, err.msg);
		return rc;
	}
	s.c = lx_model_config(s.m);
	s.heads = heads ? heads : lx_heads_available(s.m);
	if (!s.heads)
		rc = lx_errf(&err, LX_EMODEL, "%s: the model has no heads (answer_head.*, cls.*, obj_predict_head.*)", dir);
	if (rc || (rc = lx_heads_require(s.m, s.heads, &err)) || (rc = setup(&s, dir, labels, objects, attrs, &err))) {
		fprintf(stderr, "%s: %s\n", tool, err.msg);
		cleanup(&s);
		return rc;
	}
	rd = lx_reader_new(stdin, "stdin");
	wr = lx_writer_new(stdout, "stdout");
	if (!rd || !wr) {
		fprintf(stderr, "%s: out of memory\n", tool);
		return LX_EIO;
	}
	lx_signals_init();
	lx_progress_init(&prog, stderr, tool, force_progress);
	while (!lx_interrupted()) {
		if ((rc = lx_reader_next(rd, &rec, &err)) && s.keep_going && lx_reader_resumable(rd)) {
			/* a whole value that is no record: an error record in its place */
			char msg[sizeof err.msg + 20];
			snprintf(msg, sizeof msg, "%s: %s", tool, err.msg);
			fprintf(stderr, "%s\n", msg);
			s.bad++;
			if (!(rec = lx_record_error_new(msg)))
				rc = lx_errf(&err, LX_EIO, "out of memory");
			else
				rc = pass(&s, wr, rec, &err);
			lx_record_free(rec);
			if (rc)
				break;
			lx_progress_tick(&prog, ++done);
			continue;
		}
		if (rc || !rec)
			break;
		rc = one_record(&s, wr, rec, &err);
		lx_record_free(rec);
		if (rc)
			break;
		lx_progress_tick(&prog, ++done);
	}
	lx_progress_end(&prog);
	finish_output(&s);
	if (!rc)
		rc = lx_writer_flush(wr, &err);
	else
		lx_writer_flush(wr, NULL);
	if (rc == LX_EIO && lx_interrupted())
		rc = LX_OK; /* a read cut short by the signal: reported below */
	if (!rc && fflush(stdout) != 0)
		rc = lx_errf(&err, LX_EIO, "stdout: write failed: %s", strerror(errno));
	if (rc == LX_EIO && lx_writer_broken_pipe(wr))
		; /* the reader went away: nothing to say */
	else if (rc)
		fprintf(stderr, "%s: %s\n", tool, err.msg);
	else if (lx_interrupted()) {
		rc = LX_EINTR;
		fprintf(stderr, "%s: interrupted after %ld records, all written\n", tool, done);
	}
	if (s.passed)
		fprintf(stderr, "%s: %ld error records left out of the submission\n", tool, s.passed);
	if (!rc && s.bad) {
		rc = LX_EINPUT;
		fprintf(stderr, "%s: %ld of %ld records were bad, written with an error field\n", tool, s.bad, done);
	}
	if (!rc || rc == LX_EINTR) {
		summaries(&s);
		if (!rc && (rc = write_score_file(&s, &err)))
			fprintf(stderr, "%s: %s\n", tool, err.msg);
	}
	if (fclose(stdout) != 0 && !rc) {
		fprintf(stderr, "%s: stdout: write failed\n", tool);
		rc = LX_EIO;
	}
	lx_writer_free(wr);
	lx_reader_free(rd);
	cleanup(&s);
	return rc;
}

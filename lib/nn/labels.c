/* labels.c - a record's labels decoded for the losses, with one set of rules for every tool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lx_heads.h"

void lx_labels_data_destroy(lx_labels_data *d)
{
	free(d->mlm);
	free(d->obj);
	free(d->attr);
	free(d->obj_mask);
	free(d->attr_mask);
	free(d->feat_mask);
	free(d->feats);
	memset(d, 0, sizeof *d);
}

/* *p grown to n 4-byte values (at least one). */
static int grow(void *pp, size_t *cap, size_t n)
{
	void **p = pp;

	if (n <= *cap && *p)
		return 0;
	free(*p);
	*p = malloc((n ? n : 1) * 4);
	*cap = *p ? n : 0;
	return *p ? 0 : -1;
}

lx_status lx_check_finite(const float *x, int64_t n, int64_t row, const char *key, lx_err *e)
{
	int64_t i;

	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return row ? lx_errf(e, LX_EINPUT, "field %s: non-finite value (%g) at row %lld, column %lld", key,
			                     (double)x[i], (long long)(i / row), (long long)(i % row))
			           : lx_errf(e, LX_EINPUT, "field %s: non-finite value (%g) at element %lld", key, (double)x[i],
			                     (long long)i);
	return LX_OK;
}

/* An optional vector field of len values, as int32 labels (ints: an integer dtype) or as a float mask (any
 * dtype, finite), into *dst grown to len; *present says whether the record has it. */
static lx_status vector(const lx_record *rec, const char *key, int64_t len, const char *side, int ints, void *dst,
                        size_t *cap, int *present, lx_err *e)
{
	lx_tensor t;
	lx_status rc;
	int64_t i;
	void **p = dst;

	if ((rc = lx_record_tensor(rec, key, &t, present, e)) || !*present)
		return rc;
	if (t.ndim != 1 || t.shape[0] != len)
		return lx_errf(e, LX_EINPUT, "field %s: shape must be [%lld] to match %s", key, (long long)len, side);
	if (grow(dst, cap, (size_t)len))
		return lx_errf(e, LX_EIO, "out of memory");
	if (ints || !lx_dtype_is_float(t.dtype)) {
		if ((rc = lx_tensor_to_i32(&t, *p, key, e)) || ints)
			return rc;
		for (i = 0; i < len; i++)
			((float *)*p)[i] = (float)((int32_t *)*p)[i];
		return LX_OK;
	}
	return (rc = lx_tensor_to_f32(&t, *p, key, e)) ? rc : lx_check_finite(*p, len, 0, key, e);
}

/* A label field with its mask, both [N]: the mask is required when the labels are there. */
static lx_status with_mask(const lx_record *rec, const char *key, const char *mask_key, int N, const char *side,
                           int32_t **lab, size_t *cap_lab, float **mask, size_t *cap_mask, int *present, lx_err *e)
{
	lx_status rc;
	int has_mask;

	if ((rc = vector(rec, key, N, side, 1, lab, cap_lab, present, e)) || !*present)
		return rc;
	if ((rc = vector(rec, mask_key, N, side, 0, mask, cap_mask, &has_mask, e)))
		return rc;
	if (!has_mask)
		return lx_errf(e, LX_EINPUT, "field %s is missing (%s needs it)", mask_key, key);
	return LX_OK;
}

/* The record's visual_feats [N, F] as the feature loss's target. */
static lx_status feat_target(const lx_record *rec, int N, int F, lx_labels_data *d, lx_err *e)
{
	lx_tensor t;
	lx_status rc;
	int present;

	if ((rc = lx_record_tensor(rec, "visual_feats", &t, &present, e)))
		return rc;
	if (!present)
		return lx_errf(e, LX_EINPUT, "field visual_feats is missing (feat_mask needs the features as targets)");
	if (!lx_dtype_is_float(t.dtype))
		return lx_errf(e, LX_EINPUT, "field visual_feats: dtype %s, expected a float dtype (<f4)",
		               lx_dtype_numpy(t.dtype));
	if (t.ndim != 2 || t.shape[0] != N || t.shape[1] != F)
		return lx_errf(e, LX_EINPUT, "field visual_feats: shape must be [%d, %d] as the targets of feat_mask", N, F);
	if (grow(&d->feats, &d->cap_f, (size_t)N * F))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_tensor_to_f32(&t, d->feats, "visual_feats", e)))
		return rc;
	return lx_check_finite(d->feats, (int64_t)N * F, F, "visual_feats", e);
}

lx_status lx_labels_decode(const lx_config *c, int heads, const lx_record *rec, int T, int N, const char *nside,
                           const float *feats, lx_labels_data *d, int *any, lx_err *e)
{
	lx_labels *l = &d->l;
	lx_status rc;
	int p;

	memset(l, 0, sizeof *l);
	l->T = T;
	l->N = N;
	*any = 0;
	if (heads & LX_HEAD_MLM) {
		if ((rc = vector(rec, "labels", T, "input_ids", 1, &d->mlm, &d->cap_mlm, &p, e)))
			return rc;
		l->mlm_labels = p ? d->mlm : NULL;
		*any |= p;
	}
	if (heads & LX_HEAD_MATCH) {
		if ((rc = lx_record_int(rec, "matched_label", &l->matched_label, &l->has_matched, e)))
			return rc;
		if (l->has_matched && l->matched_label != -100 && (l->matched_label < 0 || l->matched_label > 1))
			return lx_errf(e, LX_EINPUT, "field matched_label: %d, expected 0 or 1", l->matched_label);
		*any |= l->has_matched;
	}
	if (heads & LX_HEAD_QA) {
		if ((rc = lx_record_int(rec, "ans", &l->ans, &l->has_ans, e)))
			return rc;
		if (l->has_ans && l->ans != -100 && (l->ans < 0 || l->ans >= c->num_qa_labels))
			return lx_errf(e, LX_EINPUT, "field ans: %d is outside the answer list [0, %d)", l->ans,
			               c->num_qa_labels);
		*any |= l->has_ans;
	}
	if (!(heads & LX_HEAD_OBJ))
		return LX_OK;
	if ((rc = with_mask(rec, "obj_labels", "obj_mask", N, nside, &d->obj, &d->cap_obj, &d->obj_mask, &d->cap_om, &p,
	                    e)))
		return rc;
	if (p) {
		l->obj_labels = d->obj;
		l->obj_mask = d->obj_mask;
		*any = 1;
	}
	if ((rc = with_mask(rec, "attr_labels", "attr_mask", N, nside, &d->attr, &d->cap_attr, &d->attr_mask, &d->cap_am,
	                    &p, e)))
		return rc;
	if (p) {
		l->attr_labels = d->attr;
		l->attr_mask = d->attr_mask;
		*any = 1;
	}
	if ((rc = vector(rec, "feat_mask", N, nside, 0, &d->feat_mask, &d->cap_fm, &p, e)) || !p)
		return rc;
	if (!feats && (rc = feat_target(rec, N, c->visual_feat_dim, d, e)))
		return rc;
	l->feat_mask = d->feat_mask;
	l->feat_target = feats ? feats : d->feats;
	*any = 1;
	return LX_OK;
}

lx_status lx_soft_label(const msgpack_object *label, const lx_names *answers, float *target, int *unknown, lx_err *e)
{
	char name[512];
	uint32_t i;
	int k;

	memset(target, 0, (size_t)lx_names_count(answers) * sizeof *target);
	if (unknown)
		*unknown = 0;
	for (i = 0; i < label->via.map.size; i++) {
		const msgpack_object *key = &label->via.map.ptr[i].key, *val = &label->via.map.ptr[i].val;
		double v;
		if (key->type != MSGPACK_OBJECT_STR)
			return lx_errf(e, LX_EINPUT, "field label: a key is not a string");
		snprintf(name, sizeof name, "%.*s", (int)key->via.str.size, key->via.str.ptr);
		if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			v = (double)val->via.u64;
		else if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			v = (double)val->via.i64;
		else if (val->type == MSGPACK_OBJECT_FLOAT32 || val->type == MSGPACK_OBJECT_FLOAT64)
			v = val->via.f64;
		else
			return lx_errf(e, LX_EINPUT, "field label: the score of \"%s\" is not a number", name);
		if (!(v >= 0 && v <= 1))
			return lx_errf(e, LX_EINPUT, "field label: the score of \"%s\" is %g, outside [0, 1]", name, v);
		if ((k = lx_names_find(answers, name)) >= 0)
			target[k] = (float)v;
		else if (unknown)
			++*unknown;
		else
			return lx_errf(e, LX_EINPUT, "field label: answer \"%s\" is not in the answer list %s", name,
			               lx_names_path(answers));
	}
	return LX_OK;
}

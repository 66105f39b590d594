/* example.c - a record's encoder inputs decoded into an lx_example, with one set of limits for every tool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_encoder.h"
#include "lx_heads.h"

void lx_example_data_destroy(lx_example_data *d)
{
	free(d->ids);
	free(d->types);
	free(d->amask);
	free(d->feats);
	free(d->pos);
	free(d->vmask);
	memset(d, 0, sizeof *d);
}

double lx_example_memory(const lx_config *c, int want, int compute, int T, int N, double *packed)
{
	double H = c->hidden_size, nh = c->num_attention_heads, l = c->l_layers, r = c->r_layers, xl = c->x_layers;
	double wide = c->intermediate_size > c->visual_feat_dim ? c->intermediate_size : c->visual_feat_dim;
	double t = T, n = N, m = T > N ? T : N, floats, outputs;

	/* the scratch: six activations of every row, the feed-forward's wide rows, one example's attention
	 * scores, and (a batch of one, whose two sides run side by side) the smaller side's own wide rows and
	 * scores; int8 and bfloat16 a quantized copy of the widest input and a scale a row */
	floats = 6 * (t + n) * H + m * wide + 4 * n + 2 * H + nh * m * m;
	floats += (t < n ? t : n) * (wide + nh * (t < n ? t : n));
	if (compute != LX_F32)
		floats += (t + n) * (wide > H ? wide : H) / 2 + t + n;
	outputs = (t + n + 1) * H;
	if (want & LX_WANT_ATTN)
		outputs += nh * (l * t * t + r * n * n + xl * (2 * t * n + t * t + n * n));
	if (want & LX_WANT_HIDDEN)
		outputs += H * ((l + xl) * t + (r + xl) * n);
	/* the outputs are in the scratch and again packed in the record; the inputs decoded */
	if (packed)
		*packed = 4 * outputs;
	return 4 * (floats + 2 * outputs + 3 * t + n * (c->visual_feat_dim + 5));
}

/* Grows d's buffers to T tokens and N boxes of F features. */
static int reserve(lx_example_data *d, size_t T, size_t N, size_t F)
{
	if (T > d->cap_t) {
		free(d->ids);
		free(d->types);
		free(d->amask);
		d->ids = malloc(T * sizeof *d->ids);
		d->types = malloc(T * sizeof *d->types);
		d->amask = malloc(T * sizeof *d->amask);
		d->cap_t = d->ids && d->types && d->amask ? T : 0;
		if (!d->cap_t)
			return -1;
	}
	if (N > d->cap_n || N * F > d->cap_f) {
		free(d->feats);
		free(d->pos);
		free(d->vmask);
		d->feats = malloc(N * F * sizeof *d->feats);
		d->pos = malloc(N * 4 * sizeof *d->pos);
		d->vmask = malloc(N * sizeof *d->vmask);
		d->cap_n = d->feats && d->pos && d->vmask ? N : 0;
		d->cap_f = d->cap_n ? N * F : 0;
		if (!d->cap_n)
			return -1;
	}
	return 0;
}

/* An optional per-position field of len values (a mask or token types), converted into dst; *used says
 * whether the record has it. A mask must be finite: a NaN in it would be a NaN in every output. */
static lx_status optional(const lx_record *rec, const char *key, int64_t len, int ints, void *dst, int *used,
                          lx_err *e)
{
	lx_tensor t;
	lx_status rc = lx_record_tensor(rec, key, &t, used, e);

	if (rc || !*used)
		return rc;
	if (t.ndim != 1 || t.shape[0] != len)
		return lx_errf(e, LX_EINPUT, "field %s: shape must be [%lld] to match its side", key, (long long)len);
	if (ints)
		return lx_tensor_to_i32(&t, dst, key, e);
	return (rc = lx_tensor_to_f32(&t, dst, key, e)) ? rc : lx_check_finite(dst, len, 0, key, e);
}

/* The field key with the image's suffix ("visual_feats" + "0"). */
static const char *side_key(char *buf, size_t n, const char *key, const char *sfx)
{
	snprintf(buf, n, "%s%s", key, sfx);
	return buf;
}

/* Decodes the example of one image: the fields visual_feats, visual_pos and visual_attention_mask with suffix
 * sfx ("" for a record of one image), the text fields without one. */
static lx_status decode(const lx_config *c, const lx_record *rec, const char *sfx, lx_example_data *d, lx_err *e)
{
	lx_example *x = &d->x;
	lx_tensor ids, feats, pos;
	int F = c->visual_feat_dim, used;
	char kf[40], kp[40], km[48];
	lx_status rc;

	side_key(kf, sizeof kf, "visual_feats", sfx);
	side_key(kp, sizeof kp, "visual_pos", sfx);
	side_key(km, sizeof km, "visual_attention_mask", sfx);
	memset(x, 0, sizeof *x);
	if ((rc = lx_record_tensor(rec, "input_ids", &ids, NULL, e)) ||
	    (rc = lx_record_tensor(rec, kf, &feats, NULL, e)) ||
	    (rc = lx_record_tensor(rec, kp, &pos, NULL, e)))
		return rc;
	if (ids.ndim != 1)
		return lx_errf(e, LX_EINPUT, "field input_ids: rank %d, expected a vector [T]", ids.ndim);
	if (lx_dtype_is_float(ids.dtype))
		return lx_errf(e, LX_EINPUT, "field input_ids: dtype %s, expected an integer dtype (<i4 or <i8)",
		               lx_dtype_numpy(ids.dtype));
	if (feats.ndim != 2)
		return lx_errf(e, LX_EINPUT, "field %s: rank %d, expected a matrix [N, %d]", kf, feats.ndim, F);
	if (!lx_dtype_is_float(feats.dtype))
		return lx_errf(e, LX_EINPUT, "field %s: dtype %s, expected a float dtype (<f4)", kf,
		               lx_dtype_numpy(feats.dtype));
	if (feats.shape[1] != F)
		return lx_errf(e, LX_EINPUT, "field %s: %lld features per box, the model expects %d", kf,
		               (long long)feats.shape[1], F);
	if (pos.ndim != 2 || pos.shape[1] != 4 || pos.shape[0] != feats.shape[0])
		return lx_errf(e, LX_EINPUT, "field %s: shape must be [%lld, 4] to match %s", kp,
		               (long long)feats.shape[0], kf);
	if (!lx_dtype_is_float(pos.dtype))
		return lx_errf(e, LX_EINPUT, "field %s: dtype %s, expected a float dtype (<f4)", kp,
		               lx_dtype_numpy(pos.dtype));
	if (ids.shape[0] == 0)
		return lx_errf(e, LX_EINPUT, "field input_ids is empty");
	if (feats.shape[0] == 0)
		return lx_errf(e, LX_EINPUT, "field %s has no boxes", kf);
	if (ids.shape[0] > c->max_position_embeddings)
		return lx_errf(e, LX_EINPUT, "field input_ids: %lld tokens, more than max_position_embeddings %d",
		               (long long)ids.shape[0], c->max_position_embeddings);
	if (feats.shape[0] > LX_MAX_BOXES)
		return lx_errf(e, LX_EINPUT, "field %s: %lld boxes, more than %d", kf, (long long)feats.shape[0],
		               LX_MAX_BOXES);
	x->T = (int)ids.shape[0];
	x->N = (int)feats.shape[0];
	if (reserve(d, (size_t)x->T, (size_t)x->N, (size_t)F))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_tensor_to_i32(&ids, d->ids, "input_ids", e)) ||
	    (rc = lx_tensor_to_f32(&feats, d->feats, kf, e)) ||
	    (rc = lx_tensor_to_f32(&pos, d->pos, kp, e)))
		return rc;
	x->input_ids = d->ids;
	x->visual_feats = d->feats;
	x->visual_pos = d->pos;
	if ((rc = optional(rec, "token_type_ids", x->T, 1, d->types, &used, e)))
		return rc;
	x->token_type_ids = used ? d->types : NULL;
	if ((rc = optional(rec, "attention_mask", x->T, 0, d->amask, &used, e)))
		return rc;
	x->attention_mask = used ? d->amask : NULL;
	if ((rc = optional(rec, km, x->N, 0, d->vmask, &used, e)))
		return rc;
	x->visual_mask = used ? d->vmask : NULL;
	return lx_example_check(c, x, e);
}

lx_status lx_example_decode(const lx_config *c, const lx_record *rec, lx_example_data *d, lx_err *e)
{
	return decode(c, rec, "", d, e);
}

int lx_example_images(const lx_record *rec)
{
	return !lx_record_get(rec, "visual_feats") && lx_record_get(rec, "visual_feats0") ? 2 : 1;
}

lx_status lx_example_decode_image(const lx_config *c, const lx_record *rec, int image, lx_example_data *d,
                                  lx_err *e)
{
	char sfx[16] = "";

	if (image >= 0)
		snprintf(sfx, sizeof sfx, "%d", image);
	if (image >= 0 && !lx_record_get(rec, "visual_feats1"))
		return lx_errf(e, LX_EINPUT, "field visual_feats1 is missing (a pair record has visual_feats0 and "
		               "visual_feats1)");
	return decode(c, rec, sfx, d, e);
}

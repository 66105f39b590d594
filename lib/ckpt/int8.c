/* int8.c - a model's linear weights quantized per output channel for model.safetensors
 * (lx_ckpt_int8, lx_ckpt.h; the layout: formats/safetensors-int8.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_ckpt.h"

struct lx_ckpt_int8 {
	lx_st_entry *ents;
	int n;
	void **bufs; /* quantized weights, scales and names */
	int nbufs;
};

static void *keep(lx_ckpt_int8 *k, size_t n)
{
	void *p = malloc(n + 1);

	if (p)
		k->bufs[k->nbufs++] = p;
	return p;
}

/* Entry i's weight as q (out, in) I8 and scale (out) F32 in two entries from e. */
static lx_status quantize(lx_ckpt_int8 *k, const lx_st_entry *t, lx_st_entry *e, lx_err *err)
{
	int out = (int)t->src.shape[0], in = (int)t->src.shape[1];
	float *w = malloc((size_t)t->src.numel * sizeof *w + 1), *scale = keep(k, (size_t)out * sizeof *scale);
	signed char *q = keep(k, (size_t)t->src.numel);
	char *name = keep(k, strlen(t->name) + 7);
	lx_status rc;

	if (!w || !scale || !q || !name) {
		free(w);
		return lx_errf(err, LX_EIO, "out of memory");
	}
	if ((rc = lx_tensor_to_f32(&t->src, w, t->name, err))) {
		free(w);
		return rc;
	}
	lx_quantize_rows(q, scale, w, out, in);
	free(w);
	sprintf(name, "%s.scale", t->name);
	e[0] = *t;
	e[0].src.dtype = e[0].dtype = LX_I8;
	e[0].src.data = q;
	e[1].name = name;
	e[1].src = (lx_tensor){LX_F32, 1, {out}, scale, out};
	e[1].dtype = LX_F32;
	return LX_OK;
}

lx_status lx_ckpt_int8_make(lx_ckpt_int8 **out, const lx_st_entry *t, int n, lx_err *e)
{
	lx_ckpt_int8 *k = calloc(1, sizeof *k);
	lx_status rc;
	int i;

	*out = NULL;
	if (!k || !(k->ents = calloc((size_t)n * 2 + 1, sizeof *k->ents)) ||
	    !(k->bufs = calloc((size_t)n * 3 + 1, sizeof *k->bufs))) {
		lx_ckpt_int8_free(k);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	for (i = 0; i < n; i++) {
		if (lx_dtype_is_float(t[i].src.dtype) && lx_model_int8_tensor(t[i].name, t[i].src.ndim)) {
			if ((rc = quantize(k, &t[i], k->ents + k->n, e))) {
				lx_ckpt_int8_free(k);
				return rc;
			}
			k->n += 2;
		} else
			k->ents[k->n++] = t[i];
	}
	*out = k;
	return LX_OK;
}

const lx_st_entry *lx_ckpt_int8_entries(const lx_ckpt_int8 *k, int *n)
{
	*n = k->n;
	return k->ents;
}

void lx_ckpt_int8_free(lx_ckpt_int8 *k)
{
	int i;

	if (!k)
		return;
	for (i = 0; i < k->nbufs; i++)
		free(k->bufs[i]);
	free(k->bufs);
	free(k->ents);
	free(k);
}

/* ops.c - the small dense operations of ops.h: linear layers, LayerNorm, GELU (the product itself: matmul.c). */
#include <math.h>
#include <stdlib.h>

#include "nn/ops.h"

float *lx_grow_floats(float **buf, size_t *cap, size_t n)
{
	if (n > *cap || !*buf) {
		free(*buf);
		*buf = malloc((n ? n : 1) * sizeof(float));
		*cap = *buf ? n : 0;
	}
	return *buf;
}

void lx_op_linear(float *y, const float *x, int M, const lx_linear_w *l, int out, int in)
{
	int i, j;

	lx_op_matmul('N', 'T', M, out, in, 1.0f, x, in, l->w, in, 0.0f, y, out);
	for (i = 0; i < M; i++) {
		float *r = y + (size_t)i * out;
		for (j = 0; j < out; j++)
			r[j] += l->b[j];
	}
}

void lx_op_add_norm(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps)
{
	lx_op_add_norm_keep(x, r, M, H, n, eps, NULL, NULL);
}

void lx_op_gelu(float *x, size_t n, int tanh_form)
{
	size_t i;

	if (tanh_form)
		for (i = 0; i < n; i++)
			x[i] = 0.5f * x[i] * (1.0f + tanhf(0.7978845608028654f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
	else
		for (i = 0; i < n; i++)
			x[i] = x[i] * 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void lx_op_add_norm_keep(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps, float *xhat,
                         float *rstd)
{
	int i, j;

	for (i = 0; i < M; i++) {
		float *row = x + (size_t)i * H, *xh = xhat ? xhat + (size_t)i * H : NULL;
		double mean = 0, var = 0;
		float inv;
		if (r)
			for (j = 0; j < H; j++)
				row[j] += r[(size_t)i * H + j];
		for (j = 0; j < H; j++)
			mean += row[j];
		mean /= H;
		for (j = 0; j < H; j++)
			var += (row[j] - mean) * (row[j] - mean);
		var /= H;
		inv = (float)(1.0 / sqrt(var + eps));
		if (rstd)
			rstd[i] = inv;
		if (xh)
			for (j = 0; j < H; j++) {
				xh[j] = (float)(row[j] - mean) * inv;
				row[j] = xh[j] * n->g[j] + n->b[j];
			}
		else
			for (j = 0; j < H; j++)
				row[j] = (float)(row[j] - mean) * inv * n->g[j] + n->b[j];
	}
}

/* ---- backward ---- */

void lx_op_linear_backward(const float *dy, const float *x, int M, const float *W, int out, int in, float *dW,
                           float *db, float *dx, int accumulate)
{
	int i, j;

	if (M == 0)
		return;
	if (dW)
		lx_op_matmul('T', 'N', out, in, M, 1.0f, dy, out, x, in, 1.0f, dW, in);
	if (db)
		for (i = 0; i < M; i++)
			for (j = 0; j < out; j++)
				db[j] += dy[(size_t)i * out + j];
	if (dx)
		lx_op_matmul('N', 'N', M, in, out, 1.0f, dy, out, W, in, accumulate ? 1.0f : 0.0f, dx, in);
}

void lx_op_norm_backward(float *ds, const float *dy, const float *xhat, const float *rstd, int M, int H,
                         const float *g, float *dg, float *db)
{
	int i, j;

	for (i = 0; i < M; i++) {
		const float *d = dy + (size_t)i * H, *xh = xhat + (size_t)i * H;
		float *o = ds + (size_t)i * H;
		double a = 0, b = 0;
		for (j = 0; j < H; j++) {
			double gj = (double)d[j] * g[j];
			a += gj;
			b += gj * xh[j];
			if (dg)
				dg[j] += d[j] * xh[j];
			if (db)
				db[j] += d[j];
		}
		a /= H;
		b /= H;
		for (j = 0; j < H; j++)
			o[j] = (float)(((double)d[j] * g[j] - a - xh[j] * b) * rstd[i]);
	}
}

void lx_op_gelu_backward(float *d, const float *pre, size_t n, int tanh_form)
{
	size_t i;

	if (tanh_form)
		for (i = 0; i < n; i++) {
			float x = pre[i], u = 0.7978845608028654f * (x + 0.044715f * x * x * x), t = tanhf(u);
			d[i] *= 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 0.134145f * x * x);
		}
	else
		for (i = 0; i < n; i++) {
			float x = pre[i];
			d[i] *= 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
		}
}

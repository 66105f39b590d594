/* ops.c - the small dense operations of ops.h: linear layers, LayerNorm, GELU. */
#include <math.h>

#include <cblas.h>

#include "ops.h"

void lx_op_linear(float *y, const float *x, int M, const lx_linear_w *l, int out, int in)
{
	int i, j;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, out, in, 1.0f, x, in, l->w, in, 0.0f, y, out);
	for (i = 0; i < M; i++) {
		float *r = y + (size_t)i * out;
		for (j = 0; j < out; j++)
			r[j] += l->b[j];
	}
}

void lx_op_add_norm(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps)
{
	int i, j;

	for (i = 0; i < M; i++) {
		float *row = x + (size_t)i * H;
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
		for (j = 0; j < H; j++)
			row[j] = (float)(row[j] - mean) * inv * n->g[j] + n->b[j];
	}
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

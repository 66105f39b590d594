/* ops.c - the small dense operations of ops.h: linear layers, LayerNorm, GELU (the product itself: matmul.c). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* y[M, n] += b[n] on every row. */
LX_VEC static void add_bias(float *restrict y, const float *restrict b, int M, int n)
{
	int i, j;

	for (i = 0; i < M; i++)
		for (j = 0; j < n; j++)
			y[(size_t)i * n + j] += b[j];
}

void lx_op_linear(float *y, const float *x, int M, const lx_linear_w *l, int out, int in)
{
	lx_op_matmul('N', 'T', M, out, in, 1.0f, x, in, l->w, in, 0.0f, y, out);
	add_bias(y, l->b, M, out);
}

void lx_op_add_norm(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps)
{
	lx_op_add_norm_keep(x, r, M, H, n, eps, NULL, NULL);
}

/* e^x in float, written to vectorize: 2^k e^f with f = x - k ln 2 in [-ln 2 / 2, ln 2 / 2] by a degree-6
 * Taylor polynomial (relative error below 2e-7); 0 below -87.3 (where e^x leaves the normal floats). */
static inline float exp_vec(float x)
{
	float k, f, p, two_k;
	uint32_t bits;

	if (x > 88.0f)
		x = 88.0f;
	if (x < -88.0f) /* keeps k, and the exponent's bits below, in range (the result is 0 there) */
		x = -88.0f;
	k = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
	f = x - k * 0.693145752f - k * 1.42860677e-6f;     /* ln 2 in two parts */
	p = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
	bits = (uint32_t)((int32_t)k + 127) << 23;
	memcpy(&two_k, &bits, 4);
	return x < -87.3f ? 0.0f : p * two_k;
}

/* erf(x) by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), written to vectorize. */
static inline float erf_vec(float x)
{
	float a = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * a), y;

	y = 1.0f - t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f)))) *
	                  exp_vec(-a * a);
	return x < 0 ? -y : y;
}

/* tanh(x) = 1 - 2 / (e^2x + 1), written to vectorize. */
static inline float tanh_vec(float x)
{
	float a = fabsf(x), y = a > 9.0f ? 1.0f : 1.0f - 2.0f / (exp_vec(2 * a) + 1.0f);

	return x < 0 ? -y : y;
}

LX_VEC void lx_op_gelu(float *restrict x, size_t n, int tanh_form)
{
	size_t i;

	if (tanh_form)
		for (i = 0; i < n; i++)
			x[i] = 0.5f * x[i] * (1.0f + tanh_vec(0.7978845608028654f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
	else
		for (i = 0; i < n; i++)
			x[i] = x[i] * 0.5f * (1.0f + erf_vec(x[i] * 0.70710678118654752f));
}

LX_VEC void lx_op_softmax_rows(float *restrict s, int rows, int n, float scale, const float *restrict mask)
{
	int r, j;

	for (r = 0; r < rows; r++) {
		float *v = s + (size_t)r * n, mx = -INFINITY, sum = 0, inv;
		for (j = 0; j < n; j++) {
			v[j] /= scale;
			if (mask)
				v[j] += (1.0f - mask[j]) * -FLT_MAX;
			mx = v[j] > mx ? v[j] : mx;
		}
		for (j = 0; j < n; j++) {
			v[j] = exp_vec(v[j] - mx);
			sum += v[j];
		}
		inv = 1 / sum;
		for (j = 0; j < n; j++)
			v[j] *= inv;
	}
}

typedef struct {
	float *C, *P;
	const float *Q, *K, *V, *mask;
	int tq, tk, nh, dh, ld;
	float scale;
} attention_job;

/* Heads [nh i / parts, nh (i + 1) / parts) of lx_op_attention. */
static void attention_part(void *arg, int i, int parts)
{
	const attention_job *j = arg;
	int h, dh = j->dh, ld = j->ld;

	for (h = j->nh * i / parts; h < j->nh * (i + 1) / parts; h++) {
		float *S = j->P + (size_t)h * j->tq * j->tk;
		lx_op_matmul('N', 'T', j->tq, j->tk, dh, 1.0f, j->Q + h * dh, ld, j->K + h * dh, ld, 0.0f, S, j->tk);
		lx_op_softmax_rows(S, j->tq, j->tk, j->scale, j->mask);
		lx_op_matmul('N', 'N', j->tq, dh, j->tk, 1.0f, S, j->tk, j->V + h * dh, ld, 0.0f, j->C + h * dh, ld);
	}
}

/* Below this many multiply-adds (over every head) the heads run on one thread. */
#define ATTENTION_SPLIT_MIN (1 << 16)

void lx_op_attention(float *C, float *P, const float *Q, const float *K, const float *V, int tq, int tk, int nh,
                     int dh, int ld, float scale, const float *mask)
{
	attention_job j = {C, P, Q, K, V, mask, tq, tk, nh, dh, ld, scale};
	/* a part a head, taken by whichever thread is free: a worker that wakes late still gets its share */
	lx_par_run((double)nh * tq * tk * dh >= ATTENTION_SPLIT_MIN && lx_threads() > 1 ? nh : 1, attention_part, &j);
}

/* The sum of x[0, n) in double, in 8 lanes. */
static inline double sum_vec(const float *restrict x, int n)
{
	double a[8] = {0}, s = 0;
	int j, k;

	for (j = 0; j + 8 <= n; j += 8)
		for (k = 0; k < 8; k++)
			a[k] += x[j + k];
	for (; j < n; j++)
		s += x[j];
	for (k = 0; k < 8; k++)
		s += a[k];
	return s;
}

/* The sum of (x - mean)^2 over x[0, n) in double, in 8 lanes. */
static inline double sq_dev_vec(const float *restrict x, int n, double mean)
{
	double a[8] = {0}, s = 0;
	int j, k;

	for (j = 0; j + 8 <= n; j += 8)
		for (k = 0; k < 8; k++)
			a[k] += (x[j + k] - mean) * (x[j + k] - mean);
	for (; j < n; j++)
		s += (x[j] - mean) * (x[j] - mean);
	for (k = 0; k < 8; k++)
		s += a[k];
	return s;
}

typedef struct {
	float *x, *xhat, *rstd;
	const float *r;
	const lx_norm_w *n;
	int M, H;
	float eps;
} norm_job;

/* Rows [M i / parts, M (i + 1) / parts) of lx_op_add_norm_keep. */
LX_VEC static void norm_part(void *arg, int part, int parts)
{
	const norm_job *jb = arg;
	const float *restrict g = jb->n->g, *restrict b = jb->n->b, *r = jb->r;
	float *x = jb->x, *xhat = jb->xhat, *rstd = jb->rstd, eps = jb->eps;
	int i, j, H = jb->H;

	for (i = (int)((long)jb->M * part / parts); i < (int)((long)jb->M * (part + 1) / parts); i++) {
		float *restrict row = x + (size_t)i * H, *restrict xh = xhat ? xhat + (size_t)i * H : NULL;
		double mean, var;
		float inv;
		if (r) {
			const float *restrict ri = r + (size_t)i * H;
			for (j = 0; j < H; j++)
				row[j] += ri[j];
		}
		mean = sum_vec(row, H) / H;
		var = sq_dev_vec(row, H, mean) / H;
		inv = (float)(1.0 / sqrt(var + eps));
		if (rstd)
			rstd[i] = inv;
		if (xh)
			for (j = 0; j < H; j++) {
				xh[j] = (float)(row[j] - mean) * inv;
				row[j] = xh[j] * g[j] + b[j];
			}
		else
			for (j = 0; j < H; j++)
				row[j] = (float)(row[j] - mean) * inv * g[j] + b[j];
	}
}

/* Below this many elements a LayerNorm runs on one thread. */
#define NORM_SPLIT_MIN (1 << 16)

void lx_op_add_norm_keep(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps, float *xhat,
                         float *rstd)
{
	norm_job jb = {x, xhat, rstd, r, n, M, H, eps};

	/* each row is normalised whole by one thread, the same bytes on any number; more parts than threads, so
	 * that a worker that wakes late still takes its share */
	lx_par_run((double)M * H >= NORM_SPLIT_MIN ? 4 * lx_threads() : 1, norm_part, &jb);
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

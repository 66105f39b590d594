/* sgemm_rate.h - the rate of one large product through lx_op_matmul (the backend and threads liblx runs on),
 * for the benchmarks to compare against. */
#ifndef SGEMM_RATE_H
#define SGEMM_RATE_H

#include <stdlib.h>

#include "lx.h"
#include "nn/ops.h"

/* GFLOP/s of C[M, N] = A[M, K] B[N, K]^T (the layout of every linear layer), timed over about a second. */
static double sgemm_rate(int M, int N, int K)
{
	float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4), *y = malloc((size_t)M * N * 4);
	double t0, t;
	int it = 0;
	size_t i;

	for (i = 0; i < (size_t)M * K; i++)
		a[i] = (float)(i % 7) * 0.1f;
	for (i = 0; i < (size_t)N * K; i++)
		b[i] = (float)(i % 5) * 0.1f;
	lx_op_matmul('N', 'T', M, N, K, 1, a, K, b, K, 0, y, N);
	t0 = lx_now();
	do {
		lx_op_matmul('N', 'T', M, N, K, 1, a, K, b, K, 0, y, N);
		it++;
		t = lx_now() - t0;
	} while (t < 1.0);
	free(a);
	free(b);
	free(y);
	return 2.0 * M * N * K * it / t / 1e9;
}

#endif

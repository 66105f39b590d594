/*
 * matmul.c - the one matrix product of liblx (lx_op_matmul, ops.h), through which every product of the
 * encoders, the heads and training goes, on one of two backends:
 *
 *   dnnl      oneDNN's dnnl_sgemm (built in when the Makefile finds dnnl.h; LX_DNNL); it picks its kernels
 *             from the CPU itself and threads with OpenMP;
 *   openblas  OpenBLAS's cblas_sgemm (always built in).
 *
 * Either runs on one thread per call; a large product is cut into one part per thread of liblx's own
 * (threads.c).
 *
 * The environment variable LX_MATMUL=dnnl|openblas chooses at run time; without it, or with a backend that
 * was not built in, dnnl when built in (it measures faster: README, "Performance").
 */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef LX_DNNL
#include <dnnl.h>
#endif

#include "nn/ops.h"

enum { MM_UNSET, MM_OPENBLAS, MM_DNNL };
static int backend = MM_UNSET;

static int chosen(void)
{
	if (backend == MM_UNSET) {
		const char *s = getenv("LX_MATMUL");
		backend = MM_OPENBLAS;
#ifdef LX_DNNL
		if (!s || strcmp(s, "openblas"))
			backend = MM_DNNL;
#else
		(void)s;
#endif
	}
	return backend;
}

const char *lx_matmul_backend(void)
{
	return chosen() == MM_DNNL ? "dnnl" : "openblas";
}

/* One library call, on the calling thread. */
static void sgemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
#ifdef LX_DNNL
	if (chosen() == MM_DNNL) {
		dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N,
	            K, alpha, A, lda, B, ldb, beta, C, ldc);
}

typedef struct {
	char ta, tb;
	int M, N, K, lda, ldb, ldc, by_cols;
	float alpha, beta;
	const float *A, *B;
	float *C;
} product;

/* Part i of `parts` of a product: a band of C's columns (and of op(B)'s) or of its rows (and op(A)'s), cut
 * at multiples of 16. Every element of C is computed whole by one call, so the result does not depend on
 * the number of threads. */
static void product_part(void *arg, int i, int parts)
{
	const product *p = arg;
	int n = p->by_cols ? p->N : p->M, step = (n / parts + 15) / 16 * 16, a = i * step, b = a + step;

	if (b > n || i == parts - 1)
		b = n;
	if (a >= b)
		return;
	if (p->by_cols)
		sgemm(p->ta, p->tb, p->M, b - a, p->K, p->alpha, p->A, p->lda, p->tb == 'T' ? p->B + (size_t)a * p->ldb :
		      p->B + a, p->ldb, p->beta, p->C + a, p->ldc);
	else
		sgemm(p->ta, p->tb, b - a, p->N, p->K, p->alpha, p->ta == 'T' ? p->A + a : p->A + (size_t)a * p->lda,
		      p->lda, p->B, p->ldb, p->beta, p->C + (size_t)a * p->ldc, p->ldc);
}

/* Below this many multiply-adds a product runs on one thread: waking another costs more than it saves. */
#define SPLIT_MIN (1 << 20)

void lx_op_matmul(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
	int nt;
	product p;

	if (M <= 0 || N <= 0)
		return;
	nt = lx_threads();
	if (nt <= 1 || (double)M * N * K < SPLIT_MIN) {
		sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	p = (product){ta, tb, M, N, K, lda, ldb, ldc, N >= 32 * nt || N >= M, alpha, beta, A, B, C};
	lx_par_run(nt, product_part, &p);
}

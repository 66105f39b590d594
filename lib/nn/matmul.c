/*
 * matmul.c - the one matrix product of liblx (lx_op_matmul, ops.h), through which every product of the
 * encoders, the heads and training goes, on one of two backends:
 *
 *   dnnl      oneDNN's dnnl_sgemm (built in when the Makefile finds dnnl.h; LX_DNNL); it picks its kernels
 *             from the CPU itself and threads with OpenMP;
 *   openblas  OpenBLAS's cblas_sgemm (always built in).
 *
 * The environment variable LX_MATMUL=dnnl|openblas chooses at run time; without it, or with a backend that
 * was not built in, dnnl when built in (it measures faster: README, "Performance").
 */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef LX_DNNL
#include <dnnl.h>
#include <omp.h>
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

void lx_set_threads(int n)
{
	n = n > 0 ? n : 1;
	openblas_set_num_threads(n);
#ifdef LX_DNNL
	omp_set_num_threads(n);
#endif
}

void lx_op_matmul(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
#ifdef LX_DNNL
	if (chosen() == MM_DNNL) {
		dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N,
	            K, alpha, A, lda, B, ldb, beta, C, ldc);
}

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
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef LX_DNNL
#include <dnnl.h>
#endif

#include "lx_core.h"
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

/* Part i of `parts` of [0, n): [*a, *b), cut at multiples of 16; 0 when the part is empty. */
static int band(int n, int i, int parts, int *a, int *b)
{
	int step = (n / parts + 15) / 16 * 16;

	*a = i * step;
	*b = *a + step > n || i == parts - 1 ? n : *a + step;
	return *a < *b;
}

/* Part i of `parts` of a product: a band of C's columns (and of op(B)'s) or of its rows (and op(A)'s). Every
 * element of C is computed whole by one call, so the result does not depend on the number of threads. */
static void product_part(void *arg, int i, int parts)
{
	const product *p = arg;
	int a, b;

	if (!band(p->by_cols ? p->N : p->M, i, parts, &a, &b))
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

/* How many threads a product of that size runs on. */
static int threads_for(int M, int N, int K)
{
	int nt = lx_threads();

	return nt > 1 && (double)M * N * K >= SPLIT_MIN ? nt : 1;
}

void lx_op_matmul(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
	int nt;
	product p;

	if (M <= 0 || N <= 0)
		return;
	nt = threads_for(M, N, K);
	if (nt <= 1) {
		sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	p = (product){ta, tb, M, N, K, lda, ldb, ldc, N >= 32 * nt || N >= M, alpha, beta, A, B, C};
	lx_par_run(nt, product_part, &p);
}

/* ---- int8 ---- */

static int per_tensor = -1;

void lx_op_quantize(unsigned char *a, float *s, const float *x, int M, int K)
{
	int m, k;
	float all = 0;

	if (per_tensor < 0) {
		const char *v = getenv("LX_INT8_ACT");
		per_tensor = v && !strcmp(v, "tensor");
	}
	for (m = 0; m < M; m++) {
		const float *r = x + (size_t)m * K;
		float mx = 0;
		for (k = 0; k < K; k++)
			mx = fabsf(r[k]) > mx ? fabsf(r[k]) : mx;
		s[m] = mx > 0 ? mx / 127 : 1;
		all = s[m] > all ? s[m] : all;
	}
	for (m = 0; m < M; m++) {
		const float *r = x + (size_t)m * K;
		unsigned char *q = a + (size_t)m * K;
		float inv;
		if (per_tensor)
			s[m] = all;
		inv = 1 / s[m];
		/* x / s is in [-127, 127]: + 128.5 truncated is round to nearest (ties up) of x / s + 128 */
		for (k = 0; k < K; k++)
			q[k] = (unsigned char)(int)(r[k] * inv + 128.5f);
	}
}

typedef struct {
	float *y;
	const unsigned char *a;
	const float *s;
	const lx_linear_w *l;
	int M, out, in;
} product_int8;

/* Columns [c0, c1) of an int8 linear product: int32 sums into y's own bytes, then scaled in place. */
static void int8_columns(const product_int8 *p, int c0, int c1)
{
	int32_t *acc = (int32_t *)p->y;
	int m, j, k, K = p->in;

#ifdef LX_DNNL
	if (chosen() == MM_DNNL) {
		int32_t zero = 0;
		dnnl_gemm_u8s8s32('N', 'T', 'F', p->M, c1 - c0, K, 1.0f, p->a, K, 128, (const int8_t *)p->l->q +
		                  (size_t)c0 * K, K, 0, 0.0f, acc + c0, p->out, &zero);
	} else
#endif
		/* the plain C kernel of a build or a run without oneDNN */
		for (m = 0; m < p->M; m++)
			for (j = c0; j < c1; j++) {
				const unsigned char *x = p->a + (size_t)m * K;
				const signed char *w = p->l->q + (size_t)j * K;
				int32_t sum = 0;
				for (k = 0; k < K; k++)
					sum += ((int32_t)x[k] - 128) * w[k];
				acc[(size_t)m * p->out + j] = sum;
			}
	for (m = 0; m < p->M; m++) {
		float *y = p->y + (size_t)m * p->out, s = p->s[m];
		for (j = c0; j < c1; j++)
			y[j] = (float)acc[(size_t)m * p->out + j] * s * p->l->qs[j] + (p->l->b ? p->l->b[j] : 0);
	}
}

static void int8_part(void *arg, int i, int parts)
{
	const product_int8 *p = arg;
	int a, b;

	if (band(p->out, i, parts, &a, &b))
		int8_columns(p, a, b);
}

void lx_op_linear_int8(float *y, const unsigned char *a, const float *s, int M, const lx_linear_w *l, int out,
                       int in)
{
	product_int8 p = {y, a, s, l, M, out, in};

	if (M > 0 && out > 0)
		lx_par_run(threads_for(M, out, in), int8_part, &p);
}

/* ---- bfloat16 ---- */

void lx_op_to_bf16(unsigned short *a, const float *x, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++)
		a[k] = lx_float_to_bf16(x[k]);
}

#ifdef LX_DNNL
/* oneDNN's matmul primitive, y[M, n] = a[M, K] w[n, K]^T + b in bfloat16 with float32 sums and output (ldy
 * apart), made for each shape once a thread and kept. */
typedef struct {
	int M, N, K, ldy, bias;
	dnnl_primitive_t p;
	dnnl_memory_desc_t md[4]; /* src, weights, bias, dst */
} bf16_prim;

#define BF16_CACHE 32
static __thread bf16_prim cache[BF16_CACHE];
static __thread int cached;
static dnnl_engine_t engine;
static dnnl_stream_t stream_of_thread(void)
{
	static __thread dnnl_stream_t s;

	if (!s)
		dnnl_stream_create(&s, engine, dnnl_stream_default_flags);
	return s;
}

static bf16_prim *bf16_find(int M, int N, int K, int ldy, int bias)
{
	bf16_prim *c;
	dnnl_matmul_desc_t d;
	dnnl_primitive_desc_t pd;
	int i;

	for (i = 0; i < cached; i++)
		if (cache[i].M == M && cache[i].N == N && cache[i].K == K && cache[i].ldy == ldy && cache[i].bias == bias)
			return &cache[i];
	if (cached == BF16_CACHE) { /* full: the oldest goes */
		dnnl_primitive_destroy(cache[0].p);
		memmove(cache, cache + 1, (BF16_CACHE - 1) * sizeof *cache);
		cached--;
	}
	c = &cache[cached];
	*c = (bf16_prim){M, N, K, ldy, bias, NULL, {{0}}};
	dnnl_memory_desc_init_by_strides(&c->md[0], 2, (dnnl_dims_t){M, K}, dnnl_bf16, (dnnl_dims_t){K, 1});
	dnnl_memory_desc_init_by_strides(&c->md[1], 2, (dnnl_dims_t){K, N}, dnnl_bf16, (dnnl_dims_t){1, K});
	dnnl_memory_desc_init_by_strides(&c->md[2], 2, (dnnl_dims_t){1, N}, dnnl_f32, (dnnl_dims_t){N, 1});
	dnnl_memory_desc_init_by_strides(&c->md[3], 2, (dnnl_dims_t){M, N}, dnnl_f32, (dnnl_dims_t){ldy, 1});
	if (dnnl_matmul_desc_init(&d, &c->md[0], &c->md[1], bias ? &c->md[2] : NULL, &c->md[3]) ||
	    dnnl_primitive_desc_create(&pd, &d, NULL, engine, NULL))
		return NULL;
	i = dnnl_primitive_create(&c->p, pd);
	dnnl_primitive_desc_destroy(pd);
	if (i)
		return NULL;
	cached++;
	return c;
}
#endif

int lx_bf16_available(void)
{
#ifdef LX_DNNL
	static int ok = -1;

	if (ok < 0)
		ok = chosen() == MM_DNNL &&
		     (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16 &&
		     dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
	return ok;
#else
	return 0;
#endif
}

typedef struct {
	float *y;
	const unsigned short *a;
	const lx_linear_w *l;
	int M, out, in;
} product_bf16;

static void bf16_part(void *arg, int i, int parts)
{
	const product_bf16 *p = arg;
	int c0, c1;

	if (!band(p->out, i, parts, &c0, &c1))
		return;
#ifdef LX_DNNL
	{
		bf16_prim *c = bf16_find(p->M, c1 - c0, p->in, p->out, p->l->b != NULL);
		dnnl_memory_t m[4] = {NULL, NULL, NULL, NULL};
		void *ptr[4] = {(void *)p->a, (void *)(p->l->bf + (size_t)c0 * p->in), (void *)(p->l->b ? p->l->b + c0 : NULL),
		                p->y + c0};
		dnnl_exec_arg_t args[4];
		int k, n = 0;
		static const int arg_of[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};
		if (!c)
			abort(); /* lx_bf16_available said yes: a shape oneDNN cannot do is a bug */
		for (k = 0; k < 4; k++)
			if (ptr[k]) {
				dnnl_memory_create(&m[k], &c->md[k], engine, ptr[k]);
				args[n++] = (dnnl_exec_arg_t){arg_of[k], m[k]};
			}
		dnnl_primitive_execute(c->p, stream_of_thread(), n, args);
		dnnl_stream_wait(stream_of_thread());
		for (k = 0; k < 4; k++)
			dnnl_memory_destroy(m[k]);
	}
#else
	(void)p;
#endif
}

void lx_op_linear_bf16(float *y, const unsigned short *a, int M, const lx_linear_w *l, int out, int in)
{
	product_bf16 p = {y, a, l, M, out, in};

	if (M > 0 && out > 0)
		lx_par_run(threads_for(M, out, in), bf16_part, &p);
}

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
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* The largest |x[k]| over k in [0, n), in 16 lanes (vectorized). */
LX_VEC static float max_abs(const float *restrict x, int n)
{
	float m[16] = {0}, r = 0;
	int k, j;

	for (k = 0; k + 16 <= n; k += 16)
		for (j = 0; j < 16; j++)
			m[j] = fabsf(x[k + j]) > m[j] ? fabsf(x[k + j]) : m[j];
	for (; k < n; k++)
		r = fabsf(x[k]) > r ? fabsf(x[k]) : r;
	for (j = 0; j < 16; j++)
		r = m[j] > r ? m[j] : r;
	return r;
}

LX_VEC static void quantize_row(signed char *restrict q, const float *restrict x, float inv, int n)
{
	int k;

	/* x / s is in [-127, 127]: + 128.5 truncated is round to nearest (ties up) of x / s + 128 */
	for (k = 0; k < n; k++)
		q[k] = (signed char)((int)(x[k] * inv + 128.5f) - 128);
}

typedef struct {
	signed char *a;
	float *s;
	const float *x;
	int M, K, pass; /* pass 0: the rows' scales; 1: the rows quantized with them */
} quantize_job;

/* Part i of `parts` of lx_op_quantize's rows: each row's scale in pass 0 (and, one scale a row, its bytes
 * too), the bytes in pass 1. */
static void quantize_part(void *arg, int i, int parts)
{
	const quantize_job *q = arg;
	int m, m0 = (int)((long)q->M * i / parts), m1 = (int)((long)q->M * (i + 1) / parts);

	for (m = m0; m < m1; m++) {
		const float *x = q->x + (size_t)m * q->K;
		if (q->pass == 0) {
			float mx = max_abs(x, q->K);
			q->s[m] = mx > 0 ? mx / 127 : 1;
		}
		if (q->pass == 1 || !per_tensor)
			quantize_row(q->a + (size_t)m * q->K, x, 1 / q->s[m], q->K);
	}
}

/* Below this many elements quantizing runs on one thread. */
#define QUANTIZE_SPLIT_MIN (1 << 16)

void lx_op_quantize(signed char *a, float *s, const float *x, int M, int K)
{
	quantize_job q = {a, s, x, M, K, 0};
	int m, nt = (double)M * K >= QUANTIZE_SPLIT_MIN ? 4 * lx_threads() : 1; /* parts, taken by free threads */
	float all = 0;

	if (per_tensor < 0) {
		const char *v = getenv("LX_INT8_ACT");
		per_tensor = v && !strcmp(v, "tensor");
	}
	lx_par_run(nt, quantize_part, &q);
	if (!per_tensor)
		return;
	for (m = 0; m < M; m++)
		all = s[m] > all ? s[m] : all;
	for (m = 0; m < M; m++)
		s[m] = all;
	q.pass = 1;
	lx_par_run(nt, quantize_part, &q);
}

/* y[m, j] = acc[m, j] s[m] qs[j] + b[j] over n columns, in place: acc is y's own bytes read as int32 sums. */
LX_VEC static void int8_scale(float *y, int M, int n, int ld, const float *s, const float *restrict qs,
                              const float *restrict b)
{
	int m, j;

	for (m = 0; m < M; m++) {
		float *r = y + (size_t)m * ld, sm = s[m];
		const int32_t *acc = (const int32_t *)r;
		if (b)
			for (j = 0; j < n; j++)
				r[j] = (float)acc[j] * sm * qs[j] + b[j];
		else
			for (j = 0; j < n; j++)
				r[j] = (float)acc[j] * sm * qs[j];
	}
}

typedef struct {
	float *y;
	const signed char *a;
	const float *s;
	const lx_linear_w *l;
	int M, out, in;
} product_int8;

/* Columns [c0, c1) of an int8 linear product in plain C (a build or a run without oneDNN; slow: for tests). */
static void int8_part(void *arg, int i, int parts)
{
	const product_int8 *p = arg;
	int32_t *acc = (int32_t *)p->y;
	int m, j, k, K = p->in, c0, c1;

	if (!band(p->out, i, parts, &c0, &c1))
		return;
	for (m = 0; m < p->M; m++)
		for (j = c0; j < c1; j++) {
			const signed char *x = p->a + (size_t)m * K, *w = p->l->q + (size_t)j * K;
			int32_t sum = 0;
			for (k = 0; k < K; k++)
				sum += x[k] * w[k];
			acc[(size_t)m * p->out + j] = sum;
		}
	int8_scale(p->y + c0, p->M, c1 - c0, p->out, p->s, p->l->qs + c0, p->l->b ? p->l->b + c0 : NULL);
}

void lx_op_linear_int8(float *y, const signed char *a, const float *s, int M, const lx_linear_w *l, int out, int in)
{
	product_int8 p = {y, a, s, l, M, out, in};

	if (M > 0 && out > 0)
		lx_par_run(threads_for(M, out, in), int8_part, &p);
}

/* ---- bfloat16 ---- */

LX_VEC void lx_op_to_bf16(unsigned short *restrict a, const float *restrict x, size_t n)
{
	size_t k;

	/* round to nearest even, as lx_float_to_bf16 (the inputs are finite: lx_example_check) */
	for (k = 0; k < n; k++) {
		uint32_t u;
		memcpy(&u, &x[k], 4);
		a[k] = (unsigned short)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
	}
}

#ifdef LX_DNNL
static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void engine_make(void)
{
	if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
		engine = NULL;
}
#endif

int lx_bf16_available(void)
{
#ifdef LX_DNNL
	static int ok = -1;

	if (ok < 0) {
		pthread_once(&engine_once, engine_make);
		ok = chosen() == MM_DNNL && engine &&
		     (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
	}
	return ok;
#else
	return 0;
#endif
}

/* ---- linear layers on packed weights ---- */

#ifdef LX_DNNL
/*
 * oneDNN's matmul primitive on weights reordered once into the layout it prefers (format_tag_any): a layer is
 * packed at its first product and kept; the primitives, one per precision and shape (rows, out, in, bias), are
 * made once and shared by every layer of that shape. Int8 products take signed bytes (no zero point) and
 * return int32 sums, scaled here (int8_scale) as the plain kernel does; float32 and bfloat16 ones add the
 * bias themselves.
 */
enum { PK_F32, PK_BF16, PK_I8 };

typedef struct {
	const void *key;       /* the layer's weights: l->w, l->bf or l->q */
	dnnl_memory_t w;       /* the packed copy */
} packed_layer;

typedef struct {
	int kind, M, N, K, bias;
	dnnl_primitive_t p;
	dnnl_memory_desc_t md[4]; /* src, weights (packed), bias, dst */
	dnnl_memory_desc_t scratch;
} packed_prim;

struct lx_pack {
	pthread_mutex_t mu;
	packed_layer *layer;
	packed_prim **prim;   /* each allocated alone: a thread keeps using its own while another adds one */
	int nlayer, caplayer, nprim, capprim;
};

static dnnl_stream_t stream_of_thread(void)
{
	static __thread dnnl_stream_t s;

	if (!s)
		dnnl_stream_create(&s, engine, dnnl_stream_default_flags);
	return s;
}

static const dnnl_data_type_t src_type[3] = {dnnl_f32, dnnl_bf16, dnnl_s8};

/* The primitive for M rows of that kind and shape, made on first use; NULL when oneDNN refuses it. */
static packed_prim *prim_find(lx_pack *pk, int kind, int M, int N, int K, int bias)
{
	packed_prim *c;
	dnnl_matmul_desc_t d;
	dnnl_primitive_desc_t pd;
	dnnl_memory_desc_t wany;
	dnnl_primitive_attr_t attr;
	dnnl_data_type_t t = src_type[kind];
	int i;

	for (i = 0; i < pk->nprim; i++) {
		c = pk->prim[i];
		if (c->kind == kind && c->M == M && c->N == N && c->K == K && c->bias == bias)
			return c;
	}
	if (pk->nprim == pk->capprim) {
		int cap = pk->capprim ? 2 * pk->capprim : 16;
		packed_prim **np = realloc(pk->prim, (size_t)cap * sizeof *np);
		if (!np)
			return NULL;
		pk->prim = np;
		pk->capprim = cap;
	}
	if (!(c = malloc(sizeof *c)))
		return NULL;
	*c = (packed_prim){kind, M, N, K, bias, NULL, {{0}}, {0}};
	dnnl_memory_desc_init_by_tag(&c->md[0], 2, (dnnl_dims_t){M, K}, t, dnnl_ab);
	dnnl_memory_desc_init_by_tag(&wany, 2, (dnnl_dims_t){K, N}, t, dnnl_format_tag_any);
	dnnl_memory_desc_init_by_tag(&c->md[2], 2, (dnnl_dims_t){1, N}, dnnl_f32, dnnl_ab);
	dnnl_memory_desc_init_by_tag(&c->md[3], 2, (dnnl_dims_t){M, N}, kind == PK_I8 ? dnnl_s32 : dnnl_f32, dnnl_ab);
	/* each thread brings its own scratch memory: the threads run one primitive at the same time */
	if (dnnl_primitive_attr_create(&attr)) {
		free(c);
		return NULL;
	}
	i = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) ||
	    dnnl_matmul_desc_init(&d, &c->md[0], &wany, bias && kind != PK_I8 ? &c->md[2] : NULL, &c->md[3]) ||
	    dnnl_primitive_desc_create(&pd, &d, attr, engine, NULL);
	dnnl_primitive_attr_destroy(attr);
	if (i) {
		free(c);
		return NULL;
	}
	c->md[1] = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	c->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	i = dnnl_primitive_create(&c->p, pd);
	dnnl_primitive_desc_destroy(pd);
	if (i) {
		free(c);
		return NULL;
	}
	pk->prim[pk->nprim++] = c;
	return c;
}

/* Whether p is in a mapping of a file (a model's safetensors), not anonymous memory: /proc/self/maps names an
 * inode for it. 0 when that cannot be read. */
static int in_file_mapping(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4200]; /* the fields, then a path of up to PATH_MAX */
	unsigned long lo, hi, inode;
	int file = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &lo, &hi, &inode) == 3 && (uintptr_t)p >= lo &&
		    (uintptr_t)p < hi) {
			file = inode != 0;
			break;
		}
	fclose(f);
	return file;
}

/* The packed weights of l (reordered now if they were not), in the layout of primitive c. */
static dnnl_memory_t layer_find(lx_pack *pk, const packed_prim *c, const void *key)
{
	dnnl_memory_desc_t plain;
	dnnl_memory_t src = NULL, dst = NULL;
	dnnl_primitive_desc_t rpd = NULL;
	dnnl_primitive_t r = NULL;
	int i, ok;

	for (i = 0; i < pk->nlayer; i++)
		if (pk->layer[i].key == key) {
			/* one layout whatever the rows (so far always; checked rather than assumed) */
			const dnnl_memory_desc_t *md;
			dnnl_memory_get_memory_desc(pk->layer[i].w, &md);
			return dnnl_memory_desc_equal(md, &c->md[1]) ? pk->layer[i].w : NULL;
		}
	if (pk->nlayer == pk->caplayer) {
		int cap = pk->caplayer ? 2 * pk->caplayer : 64;
		packed_layer *nl = realloc(pk->layer, (size_t)cap * sizeof *nl);
		if (!nl)
			return NULL;
		pk->layer = nl;
		pk->caplayer = cap;
	}
	/* PyTorch's (out, in) rows are the columns of the product's (in, out) weights */
	dnnl_memory_desc_init_by_strides(&plain, 2, (dnnl_dims_t){c->K, c->N}, src_type[c->kind], (dnnl_dims_t){1, c->K});
	ok = !dnnl_memory_create(&src, &plain, engine, (void *)key) &&
	     !dnnl_memory_create(&dst, &c->md[1], engine, DNNL_MEMORY_ALLOCATE) &&
	     !dnnl_reorder_primitive_desc_create(&rpd, &plain, engine, &c->md[1], engine, NULL) &&
	     !dnnl_primitive_create(&r, rpd) &&
	     !dnnl_primitive_execute(r, stream_of_thread(), 2,
	                             (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}}) &&
	     !dnnl_stream_wait(stream_of_thread());
	dnnl_primitive_destroy(r);
	dnnl_primitive_desc_destroy(rpd);
	dnnl_memory_destroy(src);
	if (!ok) {
		dnnl_memory_destroy(dst);
		return NULL;
	}
	if (c->kind != PK_F32) {
		/* nothing reads the reduced-precision weights again: their pages can leave the resident set,
		 * contents kept. A stored int8 model's mapping: dropped from the process only, so that they stay
		 * in the page cache (MADV_PAGEOUT evicts them from it too, and every run of the tool after this
		 * one read the file from disk again: 175 MB of the 291 MB lxmert-base int8 file, measured with
		 * fincore). Weights quantized at open (anonymous memory, which MADV_DONTNEED would zero): paged
		 * out. */
		uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)key + page - 1) / page * page,
		          end = ((uintptr_t)key + (size_t)c->N * c->K * (c->kind == PK_I8 ? 1 : 2)) / page * page;
		if (end > a)
			madvise((void *)a, end - a, in_file_mapping(key) ? MADV_DONTNEED : MADV_PAGEOUT);
	}
	pk->layer[pk->nlayer++] = (packed_layer){key, dst};
	return dst;
}

typedef struct {
	lx_pack *pk;
	float *y;
	const void *x;
	const float *s;
	const lx_linear_w *l;
	int kind, M, out, in, act, failed;
} product_packed;

/* Rows [r0, r1) of y as the product left them (int32 sums for int8) made the layer's output: scaled, plus
 * the bias, through the activation; a row at a time, while it is in the cache. */
static void packed_epilogue(const product_packed *p, int r0, int r1)
{
	int m;

	if (p->kind != PK_I8 && p->act == LX_ACT_NONE)
		return;
	for (m = r0; m < r1; m++) {
		float *y = p->y + (size_t)m * p->out;
		if (p->kind == PK_I8)
			int8_scale(y, 1, p->out, p->out, p->s + m, p->l->qs, p->l->b);
		if (p->act != LX_ACT_NONE)
			lx_op_gelu(y, (size_t)p->out, p->act == LX_ACT_GELU_TANH);
	}
}

/* Rows [r0, r1) of a product on packed weights. */
static int packed_rows(product_packed *p, int r0, int r1)
{
	const lx_linear_w *l = p->l;
	int bias = l->b != NULL, k, n = 0, ok, M = r1 - r0;
	size_t esz = p->kind == PK_F32 ? 4 : p->kind == PK_BF16 ? 2 : 1;
	packed_prim *c;
	dnnl_memory_t wm, sm = NULL, m[4] = {NULL, NULL, NULL, NULL};
	dnnl_exec_arg_t args[5];
	static __thread void *scratch; /* this thread's scratch memory for oneDNN, kept */
	static __thread size_t scratch_cap;
	size_t sz;
	void *ptr[4];
	static const int arg_of[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};

	pthread_mutex_lock(&p->pk->mu);
	c = prim_find(p->pk, p->kind, M, p->out, p->in, bias);
	wm = c ? layer_find(p->pk, c, p->kind == PK_F32 ? (const void *)l->w : p->kind == PK_BF16 ? (const void *)l->bf
	                                                                                          : (const void *)l->q)
	       : NULL;
	pthread_mutex_unlock(&p->pk->mu);
	if (!wm)
		return -1;
	ptr[0] = (char *)p->x + (size_t)r0 * p->in * esz;
	ptr[2] = bias && p->kind != PK_I8 ? (void *)l->b : NULL;
	ptr[3] = p->y + (size_t)r0 * p->out;
	ok = 1;
	for (k = 0; k < 4; k++) {
		if (k == 1) {
			args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
			continue;
		}
		if (!ptr[k])
			continue;
		ok = ok && !dnnl_memory_create(&m[k], &c->md[k], engine, ptr[k]);
		args[n++] = (dnnl_exec_arg_t){arg_of[k], m[k]};
	}
	sz = dnnl_memory_desc_get_size(&c->scratch);
	if (sz > scratch_cap) {
		free(scratch);
		scratch_cap = (scratch = malloc(sz)) ? sz : 0;
	}
	ok = ok && scratch_cap >= sz && !dnnl_memory_create(&sm, &c->scratch, engine, scratch);
	args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sm};
	ok = ok && !dnnl_primitive_execute(c->p, stream_of_thread(), n, args) && !dnnl_stream_wait(stream_of_thread());
	for (k = 0; k < 4; k++)
		dnnl_memory_destroy(m[k]);
	dnnl_memory_destroy(sm);
	if (ok)
		packed_epilogue(p, r0, r1);
	return ok ? 0 : -1;
}

static void packed_part(void *arg, int i, int parts)
{
	product_packed *p = arg;
	int a = (int)((long)p->M * i / parts), b = (int)((long)p->M * (i + 1) / parts);

	/* even shares of the rows: the kernels block rows finely, and a batch of one has few */
	if (a < b && packed_rows(p, a, b))
		p->failed = 1;
}
#endif

lx_pack *lx_pack_new(void)
{
#ifdef LX_DNNL
	lx_pack *pk;

	if (chosen() != MM_DNNL)
		return NULL;
	pthread_once(&engine_once, engine_make);
	if (!engine || !(pk = calloc(1, sizeof *pk)))
		return NULL;
	pthread_mutex_init(&pk->mu, NULL);
	return pk;
#else
	return NULL;
#endif
}

void lx_pack_free(lx_pack *pk)
{
#ifdef LX_DNNL
	int i;

	if (!pk)
		return;
	for (i = 0; i < pk->nprim; i++) {
		dnnl_primitive_destroy(pk->prim[i]->p);
		free(pk->prim[i]);
	}
	for (i = 0; i < pk->nlayer; i++)
		dnnl_memory_destroy(pk->layer[i].w);
	free(pk->prim);
	free(pk->layer);
	pthread_mutex_destroy(&pk->mu);
	free(pk);
#else
	(void)pk;
#endif
}

/* Rows a part of a product on packed weights gets at least: fewer run slower than one thread alone. */
#define ROWS_MIN 8

int lx_op_linear_packed(lx_pack *pk, float *y, const void *x, const float *s, int M, const lx_linear_w *l, int out,
                        int in)
{
	return lx_op_linear_packed_act(pk, y, x, s, M, l, out, in, LX_ACT_NONE);
}

int lx_op_linear_packed_act(lx_pack *pk, float *y, const void *x, const float *s, int M, const lx_linear_w *l,
                            int out, int in, int act)
{
#ifdef LX_DNNL
	product_packed p = {pk, y, x, s, l, l->q ? PK_I8 : l->bf ? PK_BF16 : PK_F32, M, out, in, act, 0};
	int nt;

	if (!pk)
		return -1;
	if (M <= 0 || out <= 0)
		return 0;
	nt = threads_for(M, out, in);
	while (nt > 1 && M < ROWS_MIN * nt)
		nt--;
	lx_par_run(nt, packed_part, &p);
	return p.failed ? -1 : 0;
#else
	(void)pk, (void)y, (void)x, (void)s, (void)M, (void)l, (void)out, (void)in, (void)act;
	return -1;
#endif
}

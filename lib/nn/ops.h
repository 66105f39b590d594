/*
 * ops.h - liblx's small dense operations, shared by the encoder (encoder.c) and the heads (heads.c).
 * Internal to the library: not installed, not part of the public API. None allocates; none can fail.
 */
#ifndef LX_OPS_H
#define LX_OPS_H

#include <stddef.h>

#include "lx_encoder.h"

/* C[M, N] = alpha op(A) op(B) + beta C over row-major matrices, op(X) = X for 'N' and X^T for 'T' (A is
 * [M, K] or [K, M], B [K, N] or [N, K]): every matrix product of liblx, on the backend lx_matmul_backend
 * names (matmul.c). Only C is written; M or N of 0 is no product. */
void lx_op_matmul(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);
/* "dnnl" or "openblas": the backend lx_op_matmul runs on (LX_MATMUL chooses among those built in). */
const char *lx_matmul_backend(void);

/* Runs fn(arg, i, parts) for i in [0, parts), on the caller and liblx's worker threads (lx_set_threads);
 * returns when every part has returned. A part that calls lx_par_run gets its parts run inline. */
void lx_par_run(int parts, void (*fn)(void *arg, int part, int parts), void *arg);
/* The threads lx_par_run shares work among (the caller included): lx_set_threads's, or by default the
 * machine's online cores. */
int lx_threads(void);

/* Loops worth vectorizing: optimized as at -O3, with an AVX-512 copy chosen at load time where the CPU has
 * it (GCC on x86-64; elsewhere plain functions). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LX_VEC __attribute__((optimize("O3"), target_clones("arch=x86-64-v4", "default")))
#else
#define LX_VEC
#endif

/* ---- int8 (the linear layers of a model opened for it: lx_model_open_as) ---- */

/* a[M, K] = x / s rounded, as signed bytes in [-127, 127], with s[M] the scale of each row (max |x| / 127), or
 * with LX_INT8_ACT=tensor in the environment one scale for every row (s[m] all equal). */
void lx_op_quantize(signed char *a, float *s, const float *x, int M, int K);
/* y[M, out] = a q^T, times s[m] qs[j], + b: the linear layer l (int8 weights) over activations lx_op_quantize
 * made, in plain C (slow: for tests and builds without oneDNN, where lx_op_linear_packed does it). */
void lx_op_linear_int8(float *y, const signed char *a, const float *s, int M, const lx_linear_w *l, int out,
                       int in);

/* ---- bfloat16 (the same, lx_model_open_as(..., LX_BF16)) ---- */

/* Whether bfloat16 products run here: oneDNN built in and chosen, on a CPU with avx512_bf16. */
int lx_bf16_available(void);
/* a[n] = x[n] rounded to bfloat16 (x finite). */
void lx_op_to_bf16(unsigned short *a, const float *x, size_t n);

/* ---- linear layers on packed weights ---- */

/* The weights of a model's linear layers reordered into the layout the matrix library computes fastest on,
 * each packed at its first product and kept until lx_pack_free: the weights must not change meanwhile. NULL
 * when the backend has no such layout (OpenBLAS) or memory runs out. */
typedef struct lx_pack lx_pack;
lx_pack *lx_pack_new(void);
void lx_pack_free(lx_pack *pk);
/* y[M, out] = x[M, in] l^T + b on packed weights, with x float32 for a float32 layer, bfloat16 (lx_op_to_bf16)
 * for a layer with l->bf, int8 (lx_op_quantize, scales s[M]) for a layer with l->q. Rows are shared among
 * liblx's threads. 0 when done; -1 when it cannot (pk NULL, or the library refused): y is then to be computed
 * the plain way. */
int lx_op_linear_packed(lx_pack *pk, float *y, const void *x, const float *s, int M, const lx_linear_w *l, int out,
                        int in);
/* The activation lx_op_linear_packed_act applies to a layer's output. */
enum { LX_ACT_NONE, LX_ACT_GELU, LX_ACT_GELU_TANH };
/* lx_op_linear_packed, then y = act(y) (lx_op_gelu), in the same pass over each row as the int8 scaling and
 * the bias: the bytes of lx_op_linear_packed followed by lx_op_gelu. */
int lx_op_linear_packed_act(lx_pack *pk, float *y, const void *x, const float *s, int M, const lx_linear_w *l,
                            int out, int in, int act);

/* *buf with room for n floats, grown (contents not kept) when *cap is less; NULL when memory runs out. */
float *lx_grow_floats(float **buf, size_t *cap, size_t n);

/* y[M, out] = x[M, in] W^T + b, with W in PyTorch's (out, in) layout (one lx_op_matmul). */
void lx_op_linear(float *y, const float *x, int M, const lx_linear_w *l, int out, int in);

/* x[M, H] = LayerNorm(x + r) over each row (r may be NULL), with gain and bias from n. */
void lx_op_add_norm(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps);

/* x = gelu(x), in place: the erf form, or the tanh approximation when tanh_form is set (erf and tanh within
 * 2e-7 of libm's, vectorized). */
void lx_op_gelu(float *x, size_t n, int tanh_form);

/* Each of rows rows of s[rows, n] becomes softmax(s / scale + (1 - mask) * -FLT_MAX) (mask [n] may be NULL),
 * with e^x within 2e-7 of libm's and masked entries exactly 0. */
void lx_op_softmax_rows(float *s, int rows, int n, float scale, const float *mask);

/* Attention over nh heads of width dh: for each head h, P_h[tq, tk] = softmax(Q_h K_h^T / scale + mask) (as
 * lx_op_softmax_rows) and C_h = P_h V_h, where X_h is columns [h dh, (h + 1) dh) of X's rows (Q and C: tq rows,
 * K and V: tk rows, each ld floats apart). P is [nh, tq, tk]. The heads are shared among liblx's threads;
 * each is computed whole by one, so the bytes do not depend on the threads. */
void lx_op_attention(float *C, float *P, const float *Q, const float *K, const float *V, int tq, int tk, int nh,
                     int dh, int ld, float scale, const float *mask);

/* lx_op_add_norm that also keeps, for a backward pass, the normalised rows xhat[M, H] = (x + r - mean) / std
 * and rstd[M] = 1 / std (either may be NULL). lx_op_add_norm is this with neither kept. */
void lx_op_add_norm_keep(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps, float *xhat,
                         float *rstd);

/* ---- backward (the gradients of the operations above) ---- */

/* For y = x W^T + b over M rows: dW[out, in] += dy^T x and db[out] += the column sums of dy (either may be
 * NULL: not wanted); dx[M, in] = dy W, or dx += dy W when accumulate is set (dx NULL: not wanted). */
void lx_op_linear_backward(const float *dy, const float *x, int M, const float *W, int out, int in, float *dW,
                           float *db, float *dx, int accumulate);

/* For y = LayerNorm(s) with gain g: dg += sum dy xhat, db += sum dy (either may be NULL), and ds[M, H] from
 * dy (ds may be dy). */
void lx_op_norm_backward(float *ds, const float *dy, const float *xhat, const float *rstd, int M, int H,
                         const float *g, float *dg, float *db);

/* d[i] *= gelu'(pre[i]) (the erf form, or the tanh approximation when tanh_form is set). */
void lx_op_gelu_backward(float *d, const float *pre, size_t n, int tanh_form);

#endif

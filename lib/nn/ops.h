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

/* ---- int8 (the linear layers of a model opened for it: lx_model_open_as) ---- */

/* a[M, K] = x / s rounded, + 128, as unsigned bytes, with s[M] the scale of each row (max |x| / 127), or
 * with LX_INT8_ACT=tensor in the environment one scale for every row (s[m] all equal). */
void lx_op_quantize(unsigned char *a, float *s, const float *x, int M, int K);
/* y[M, out] = (a - 128) q^T, times s[m] qs[j], + b: the linear layer l (int8 weights) over activations
 * lx_op_quantize made. On oneDNN, dnnl_gemm_u8s8s32; on OpenBLAS, a plain C kernel (slow: for tests). */
void lx_op_linear_int8(float *y, const unsigned char *a, const float *s, int M, const lx_linear_w *l, int out,
                       int in);

/* ---- bfloat16 (the same, lx_model_open_as(..., LX_BF16)) ---- */

/* Whether bfloat16 products run here: oneDNN built in and chosen, on a CPU with avx512_bf16. */
int lx_bf16_available(void);
/* a[n] = x[n] rounded to bfloat16. */
void lx_op_to_bf16(unsigned short *a, const float *x, size_t n);
/* y[M, out] = a[M, in] bf^T + b for a linear layer l with bfloat16 weights (float32 sums): oneDNN's matmul
 * primitive. Only where lx_bf16_available. */
void lx_op_linear_bf16(float *y, const unsigned short *a, int M, const lx_linear_w *l, int out, int in);

/* *buf with room for n floats, grown (contents not kept) when *cap is less; NULL when memory runs out. */
float *lx_grow_floats(float **buf, size_t *cap, size_t n);

/* y[M, out] = x[M, in] W^T + b, with W in PyTorch's (out, in) layout (one lx_op_matmul). */
void lx_op_linear(float *y, const float *x, int M, const lx_linear_w *l, int out, int in);

/* x[M, H] = LayerNorm(x + r) over each row (r may be NULL), with gain and bias from n. */
void lx_op_add_norm(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps);

/* x = gelu(x), in place: the erf form, or the tanh approximation when tanh_form is set. */
void lx_op_gelu(float *x, size_t n, int tanh_form);

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

/*
 * ops.h - liblx's small dense operations, shared by the encoder (encoder.c) and the heads (heads.c).
 * Internal to the library: not installed, not part of the public API. None allocates; none can fail.
 */
#ifndef LX_OPS_H
#define LX_OPS_H

#include <stddef.h>

#include "lx.h"

/* y[M, out] = x[M, in] W^T + b, with W in PyTorch's (out, in) layout (one cblas_sgemm). */
void lx_op_linear(float *y, const float *x, int M, const lx_linear_w *l, int out, int in);

/* x[M, H] = LayerNorm(x + r) over each row (r may be NULL), with gain and bias from n. */
void lx_op_add_norm(float *x, const float *r, int M, int H, const lx_norm_w *n, float eps);

/* x = gelu(x), in place: the erf form, or the tanh approximation when tanh_form is set. */
void lx_op_gelu(float *x, size_t n, int tanh_form);

#endif

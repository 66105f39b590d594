/*
 * heads_impl.h - what the heads' losses (heads.c) share with the training code's (backward.c). Internal to
 * the library: not installed, not part of the public API.
 */
#ifndef LX_HEADS_IMPL_H
#define LX_HEADS_IMPL_H

#include <stdint.h>

#include "lx_heads.h"

/* LX_OK when label v of field `field` (at position pos, or none when pos < 0) is -100 (ignored) or in
 * [0, n); else LX_EINPUT with the message naming the field. */
lx_status lx_check_label(int32_t v, int n, const char *field, int pos, lx_err *e);

/* -log softmax(x[n])[label], in double; with d set, d[n] = (softmax(x) - onehot(label)) * scale too, the
 * loss's gradient (d may be x). */
double lx_cross_entropy(const float *x, int n, int label, float scale, float *d);

#endif

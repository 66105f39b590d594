/*
 * fmt/npy.h - reading NumPy's .npy format (internal to liblx; lx_npy_write is in lx_fmt.h).
 *
 * Versions 1.0 to 3.0; little-endian numbers (<f4 <f8 <f2 <i8 <i4 <i2, and |i1 |u1 |b1) in C order, or an
 * object array ('|O'), whose pickle the caller reads. Every size is checked against the bytes held.
 */
#ifndef LX_FMT_NPY_H
#define LX_FMT_NPY_H

#include "lx_core.h"

/* Parses the .npy held in b[0..n). A numeric array: *t views its data inside b. An object array:
 * *is_object is 1, *pickle_off where its pickle starts, and t->dtype unset. where names the file in messages;
 * LX_EINPUT on anything else. */
lx_status lx_npy_parse(const unsigned char *b, size_t n, const char *where, lx_tensor *t, int *is_object,
                       size_t *pickle_off, lx_err *e);
/* The dtype of a NumPy type name without its byte order ("f4", "i8", "u1", "b1", ...): 1 if it is one of
 * those above, else 0. */
int lx_npy_dtype(const char *s, size_t n, lx_dtype *t);
/* Multiplies *numel by a dimension v >= 0; 0 (and *numel untouched) if the product would pass 2^40 elements,
 * far more than any array lx reads and well inside int64 (a file's shape could otherwise wrap to 0). */
int lx_npy_mul_dim(int64_t *numel, int64_t v);

#endif

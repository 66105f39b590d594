/*
 * lx_fmt.h - liblx's format layer: file formats read and written by several layers above
 * (safetensors). Ownership and errors as in lx_core.h.
 */
#ifndef LX_FMT_H
#define LX_FMT_H

#include "lx_core.h"

/* ---- safetensors ------------------------------------------------------------------------------------ */

typedef struct lx_st lx_st;  /* an open, mapped safetensors file */

lx_status lx_st_open(lx_st **out, const char *path, lx_err *e);
void lx_st_free(lx_st *st);
int lx_st_count(const lx_st *st);
/* The i-th tensor in file order: its name and a view of its data (inside the mapping). */
const char *lx_st_name(const lx_st *st, int i, lx_tensor *t);
/* Finds a tensor by name; -1 if absent. */
int lx_st_find(const lx_st *st, const char *name);

/* ---- writing safetensors ----------------------------------------------------------------------------- */

typedef struct {
	const char *name;
	lx_tensor src;      /* what to write; data need not be aligned */
	lx_dtype dtype;     /* dtype to write: src.dtype, or any float dtype when src is a float tensor */
} lx_st_entry;

/* Writes a safetensors file as Hugging Face's safetensors library does: the header's keys sorted, then
 * "__metadata__": {"format": "pt"}, padded with spaces to a multiple of 8 bytes; data ordered by dtype
 * (widest first) then name. Converts float dtypes on the way (round to nearest even). Names must be distinct.
 * LX_EIO if writing fails. */
lx_status lx_st_write(const char *path, const lx_st_entry *ents, int n, lx_err *e);

#endif

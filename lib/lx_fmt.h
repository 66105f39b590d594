/*
 * lx_fmt.h - liblx's format layer: one implementation of each file format the layers above read or write
 * (safetensors, .npy, base64, JSON output; the pickle interpreter and the zip reader are internal, in
 * lib/fmt/). Ownership and errors as in lx_core.h.
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
 * The file is written atomically (lx_write_atomic). LX_EIO if writing fails. */
lx_status lx_st_write(const char *path, const lx_st_entry *ents, int n, lx_err *e);

/* ---- .npy ------------------------------------------------------------------------------------------- */

/* Writes a float32 array as an NPY version 1.0 file, as np.save does: magic, header dict ('<f4', C order,
 * shape) padded with spaces to a multiple of 64 bytes and ended by a newline, then the data little-endian.
 * The file is written atomically (lx_write_atomic). LX_EIO on failure. */
lx_status lx_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, lx_err *e);

/* ---- base64 ------------------------------------------------------------------------------------------ */

/* Standard base64 (RFC 4648, '=' padding). */

/* The length of the base64 text of n bytes: 4 characters for every 3 bytes or part of them. */
size_t lx_base64_len(size_t n);
/* Writes the base64 text of src[0..n) to dst, lx_base64_len(n) characters, no NUL. */
void lx_base64_encode(const void *src, size_t n, char *dst);
/* The base64 text of n bytes, NUL-terminated, in *out (malloc'ed, freed by the caller). */
lx_status lx_base64(const unsigned char *p, size_t n, char **out, lx_err *e);
/* The number of bytes base64 text src[0..len) decodes to (padding required). lx_base64_decode writes them to
 * dst and returns their number, or -1 with *bad set to the offset of the first character that is not base64
 * (or len when the length is not a multiple of 4). */
size_t lx_base64_size(const char *src, size_t len);
long lx_base64_decode(const char *src, size_t len, void *dst, size_t *bad);

/* ---- JSON output ------------------------------------------------------------------------------------ */

/* How strings are escaped. Always: '"' and '\\' with a backslash, the other bytes below 0x20 as \u00XX;
 * LX_JSON_SHORT writes \n, \t and \r as such instead; LX_JSON_SCRIPT escapes '<', '>' and '&' as \u00XX
 * too, so that the text is safe inside an HTML script element. Bytes from 0x80 pass unchanged (UTF-8). */
enum { LX_JSON_SHORT = 1, LX_JSON_SCRIPT = 2 };

/* The escape of byte c in a JSON string, or NULL when c stands for itself; buf holds at least 8 bytes. */
const char *lx_json_escape(unsigned char c, int flags, char *buf);
/* s[n] as a quoted JSON string. */
void lx_json_str(FILE *f, const char *s, size_t n, int flags);
/* v in the fewest digits that read back as the same double (as the same float, when single); NaN and the
 * infinities as null. */
void lx_json_num(FILE *f, double v, int single);
/* A msgpack value as JSON: strings with LX_JSON_SHORT, bin and ext as base64 strings, map keys that are not
 * strings as their decimal text. */
void lx_json_value(FILE *f, const msgpack_object *o);

/* Writes records as JSON objects, one a line, with its buffers kept from record to record. */
typedef struct lx_json lx_json;

lx_json *lx_json_new(void);
void lx_json_free(lx_json *j);
/* rec's fields in order as one JSON object and a newline on f; tensor fields as nested lists when tensors
 * is set, else left out. A tensor that cannot be converted is LX_EINPUT before anything is written. */
lx_status lx_json_record(lx_json *j, FILE *f, const lx_record *rec, int tensors, lx_err *e);

/* ---- JSON input ------------------------------------------------------------------------------------- */

struct json_t; /* jansson's value */

/* Adds the fields of obj (a jansson object) to rec in their order: integers as msgpack integers, reals as
 * float64, strings, booleans, null, arrays and objects (str keys). LX_EIO when memory runs out. */
lx_status lx_json_fields(lx_record *rec, struct json_t *obj);

#endif

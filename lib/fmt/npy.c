/* npy.c - NumPy's .npy format: the header and data of a file held in memory, and writing float32 arrays
 * (fmt/npy.h, lx_fmt.h). */
#include <stdlib.h>
#include <string.h>

#include "lx_fmt.h"
#include "fmt/npy.h"

int lx_npy_mul_dim(int64_t *numel, int64_t v)
{
	if (v < 0 || (v && *numel > (INT64_C(1) << 40) / v))
		return 0;
	*numel *= v;
	return 1;
}

int lx_npy_dtype(const char *s, size_t n, lx_dtype *t)
{
	static const struct { const char *s; lx_dtype t; } names[] = {
		{"f4", LX_F32}, {"f8", LX_F64}, {"f2", LX_F16}, {"i8", LX_I64}, {"i4", LX_I32},
		{"i2", LX_I16}, {"i1", LX_I8},  {"u1", LX_U8},  {"b1", LX_BOOL},
	};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (n == 2 && memcmp(names[i].s, s, 2) == 0) {
			*t = names[i].t;
			return 1;
		}
	return 0;
}

/* A descr of the header: '<' and a type name, or '|' and a one-byte type name, as numpy writes them. */
static int descr_dtype(const char *s, size_t n, lx_dtype *t)
{
	return n == 3 && lx_npy_dtype(s + 1, 2, t) && s[0] == (lx_dtype_size(*t) == 1 ? '|' : '<');
}

/* Parses "{'descr': '<f4', 'fortran_order': False, 'shape': (36, 2048), }" into t. */
static lx_status parse_header(const char *h, const char *where, lx_tensor *t, lx_err *e)
{
	const char *d = strstr(h, "'descr':"), *fo = strstr(h, "'fortran_order':"), *sh = strstr(h, "'shape':");
	const char *q, *end;

	if (!d || !fo || !sh)
		return lx_errf(e, LX_EINPUT, "%s: not a .npy header (descr, fortran_order, shape)", where);
	d = strchr(d + 8, '\'');
	q = d ? strchr(d + 1, '\'') : NULL;
	if (!q || !descr_dtype(d + 1, (size_t)(q - d - 1), &t->dtype))
		return lx_errf(e, LX_EINPUT, "%s: dtype %.*s is not supported (expected <f4, <f8, <f2 or an integer)",
		               where, q ? (int)(q - d - 1) : 1, q ? d + 1 : "?");
	fo += 16;
	while (*fo == ' ')
		fo++;
	sh = strchr(sh, '(');
	end = sh ? strchr(sh, ')') : NULL;
	if (!sh || !end)
		return lx_errf(e, LX_EINPUT, "%s: .npy header without a shape tuple", where);
	t->ndim = 0;
	t->numel = 1;
	for (q = sh + 1; q < end;) {
		char *next;
		long long v = strtoll(q, &next, 10);
		if (next == q)
			break;
		if (t->ndim == LX_MAX_DIMS || v < 0 || v > (1LL << 31))
			return lx_errf(e, LX_EINPUT, "%s: bad shape in the .npy header", where);
		t->shape[t->ndim++] = v;
		if (!lx_npy_mul_dim(&t->numel, v))
			return lx_errf(e, LX_EINPUT, "%s: shape too large in the .npy header (more than 2^40 elements)", where);
		q = next;
		while (q < end && (*q == ',' || *q == ' '))
			q++;
	}
	if (strncmp(fo, "True", 4) == 0 && t->ndim > 1)
		return lx_errf(e, LX_EINPUT, "%s: Fortran-order arrays are not supported", where);
	return LX_OK;
}

lx_status lx_npy_parse(const unsigned char *b, size_t n, const char *where, lx_tensor *t, int *is_object,
                       size_t *pickle_off, lx_err *e)
{
	size_t hlen, hoff;
	char header[4096];
	lx_status st;

	memset(t, 0, sizeof *t);
	*is_object = 0;
	if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
		return lx_errf(e, LX_EINPUT, "%s: not a .npy array (no \\x93NUMPY magic)", where);
	if (b[6] == 1) {
		hlen = (size_t)b[8] | (size_t)b[9] << 8;
		hoff = 10;
	} else if ((b[6] == 2 || b[6] == 3) && n >= 12) {
		hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
		hoff = 12;
	} else
		return lx_errf(e, LX_EINPUT, "%s: .npy format version %d is not supported", where, b[6]);
	if (hoff + hlen > n || hlen >= sizeof header)
		return lx_errf(e, LX_EINPUT, "%s: .npy header runs past the data", where);
	memcpy(header, b + hoff, hlen);
	header[hlen] = 0;
	if (strstr(header, "'descr': '|O'")) {
		*is_object = 1;
		*pickle_off = hoff + hlen;
		return LX_OK;
	}
	if ((st = parse_header(header, where, t, e)))
		return st;
	if ((uint64_t)t->numel * lx_dtype_size(t->dtype) != n - hoff - hlen)
		return lx_errf(e, LX_EINPUT, "%s: .npy data holds %zu bytes, its shape and dtype need %llu", where,
		               n - hoff - hlen, (unsigned long long)t->numel * lx_dtype_size(t->dtype));
	t->data = b + hoff + hlen;
	return LX_OK;
}

/* ---- writing ---- */

typedef struct {
	const float *data;
	int ndim;
	const int64_t *shape;
} npy_out;

static lx_status write_npy(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const npy_out *o = ctx;
	char head[256];
	int n, i, pad;
	size_t count = 1, k;
	unsigned char buf[4096];

	n = snprintf(head, sizeof head, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
	for (i = 0; i < o->ndim; i++) {
		n += snprintf(head + n, sizeof head - (size_t)n, "%lld%s", (long long)o->shape[i],
		              o->ndim == 1 ? "," : i + 1 < o->ndim ? ", " : "");
		count *= (size_t)o->shape[i];
	}
	n += snprintf(head + n, sizeof head - (size_t)n, "), }");
	/* 10 bytes of magic, version and length, then the dict, spaces and '\n' up to a multiple of 64 */
	pad = 64 - (10 + n + 1) % 64;
	if (pad == 64)
		pad = 0;
	memset(head + n, ' ', (size_t)pad);
	n += pad;
	head[n++] = '\n';
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc(n & 255, f);
	fputc(n >> 8, f);
	fwrite(head, 1, (size_t)n, f);
	for (k = 0; k < count;) {
		size_t m = 0;
		for (; k < count && m + 4 <= sizeof buf; k++, m += 4) {
			uint32_t u;
			memcpy(&u, o->data + k, 4);
			buf[m] = (unsigned char)u;
			buf[m + 1] = (unsigned char)(u >> 8);
			buf[m + 2] = (unsigned char)(u >> 16);
			buf[m + 3] = (unsigned char)(u >> 24);
		}
		if (fwrite(buf, 1, m, f) != m)
			return lx_errf(e, LX_EIO, "%s: write failed", path);
	}
	return LX_OK;
}

lx_status lx_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, lx_err *e)
{
	npy_out o = {data, ndim, shape};

	return lx_write_atomic(path, write_npy, &o, e);
}

lx_status lx_npy_fput(FILE *f, const char *path, const float *data, int ndim, const int64_t *shape, lx_err *e)
{
	npy_out o = {data, ndim, shape};

	return write_npy(&o, f, path, e);
}

/* st_write.c - writing safetensors files as Hugging Face's safetensors library does (lx_ckpt.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_fmt.h"

#define CHUNK 16384 /* elements converted at a time */

typedef struct {
	char *s;
	size_t n, cap;
	int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
	char *q;
	size_t nc;

	if (b->failed)
		return;
	if (b->n + n + 1 > b->cap) {
		nc = b->cap ? b->cap : 4096;
		while (nc < b->n + n + 1)
			nc *= 2;
		if (!(q = realloc(b->s, nc))) {
			b->failed = 1;
			return;
		}
		b->s = q;
		b->cap = nc;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* A JSON string (lx_json_escape). */
static void sb_json(sbuf *b, const char *s)
{
	char u[8];
	const char *esc;

	sb_add(b, "\"", 1);
	for (; *s; s++)
		if ((esc = lx_json_escape((unsigned char)*s, 0, u)))
			sb_str(b, esc);
		else
			sb_add(b, s, 1);
	sb_add(b, "\"", 1);
}

/* safetensors orders data by dtype, descending in the order of its Dtype enum, then by name. */
static int dtype_rank(lx_dtype t)
{
	switch (t) {
	case LX_I64: return 11;
	case LX_F64: return 10;
	case LX_F32: return 9;
	case LX_I32: return 7;
	case LX_BF16: return 6;
	case LX_F16: return 5;
	case LX_I16: return 3;
	case LX_I8: return 2;
	case LX_U8: return 1;
	default: return 0;
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const lx_st_entry *const *)a)->name, (*(const lx_st_entry *const *)b)->name);
}

static int by_data_order(const void *a, const void *b)
{
	const lx_st_entry *x = *(const lx_st_entry *const *)a, *y = *(const lx_st_entry *const *)b;
	int d = dtype_rank(y->dtype) - dtype_rank(x->dtype);

	return d ? d : strcmp(x->name, y->name);
}

static uint64_t nbytes(const lx_st_entry *en) { return (uint64_t)en->src.numel * lx_dtype_size(en->dtype); }

/* The header: keys sorted, data_offsets from the data order, padded with spaces to a multiple of 8. */
static lx_status header(sbuf *b, const lx_st_entry *ents, const lx_st_entry **by_nm,
                        const lx_st_entry **by_data, int n, const char *path, lx_err *e)
{
	uint64_t *off = calloc(n ? (size_t)n : 1, sizeof *off), o = 0;
	char num[64];
	int i, k;

	if (!off)
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	for (i = 0; i < n; i++) {
		off[by_data[i] - ents] = o; /* indexed like ents */
		o += nbytes(by_data[i]);
	}
	sb_str(b, "{");
	for (i = 0; i < n; i++) {
		const lx_st_entry *en = by_nm[i];
		uint64_t at = off[en - ents];
		sb_json(b, en->name);
		sb_str(b, ":{\"dtype\":\"");
		sb_str(b, lx_dtype_safetensors(en->dtype));
		sb_str(b, "\",\"shape\":[");
		for (k = 0; k < en->src.ndim; k++) {
			snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)en->src.shape[k]);
			sb_str(b, num);
		}
		snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]},", (unsigned long long)at,
		         (unsigned long long)(at + nbytes(en)));
		sb_str(b, num);
	}
	free(off);
	sb_str(b, "\"__metadata__\":{\"format\":\"pt\"}}");
	while (b->n % 8)
		sb_add(b, " ", 1);
	return b->failed ? lx_errf(e, LX_EIO, "%s: out of memory", path) : LX_OK;
}

static double get_f(const unsigned char *p, lx_dtype t)
{
	float f;
	double d;
	uint16_t h;

	switch (t) {
	case LX_F32: memcpy(&f, p, 4); return f;
	case LX_F64: memcpy(&d, p, 8); return d;
	case LX_F16: memcpy(&h, p, 2); return lx_half_to_float(h);
	default: memcpy(&h, p, 2); return lx_bf16_to_float(h);
	}
}

static void put_f(unsigned char *p, lx_dtype t, double v)
{
	float f = (float)v;
	uint16_t h;

	switch (t) {
	case LX_F32: memcpy(p, &f, 4); break;
	case LX_F64: memcpy(p, &v, 8); break;
	case LX_F16: h = lx_float_to_half(f); memcpy(p, &h, 2); break;
	default: h = lx_float_to_bf16(f); memcpy(p, &h, 2); break;
	}
}

static lx_status write_data(FILE *f, const lx_st_entry *en, unsigned char *buf, const char *path, lx_err *e)
{
	size_t si = lx_dtype_size(en->src.dtype), so = lx_dtype_size(en->dtype), k, m;
	const unsigned char *src = en->src.data;
	int64_t i;

	if (en->dtype == en->src.dtype) {
		if (en->src.numel && fwrite(src, si, (size_t)en->src.numel, f) != (size_t)en->src.numel)
			return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
		return LX_OK;
	}
	for (i = 0; i < en->src.numel; i += CHUNK) {
		m = en->src.numel - i < CHUNK ? (size_t)(en->src.numel - i) : CHUNK;
		for (k = 0; k < m; k++)
			put_f(buf + k * so, en->dtype, get_f(src + ((size_t)i + k) * si, en->src.dtype));
		if (fwrite(buf, so, m, f) != m)
			return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	}
	return LX_OK;
}

static lx_status check_entries(const lx_st_entry **by_nm, int n, const char *path, lx_err *e)
{
	int i;

	for (i = 0; i < n; i++) {
		const lx_st_entry *en = by_nm[i];
		if (en->dtype != en->src.dtype && !(lx_dtype_is_float(en->dtype) && lx_dtype_is_float(en->src.dtype)))
			return lx_errf(e, LX_EMODEL, "%s: tensor %s: cannot convert %s to %s", path, en->name,
			               lx_dtype_safetensors(en->src.dtype), lx_dtype_safetensors(en->dtype));
		if (i && !strcmp(by_nm[i - 1]->name, en->name))
			return lx_errf(e, LX_EMODEL, "%s: tensor %s: two tensors with this name", path, en->name);
	}
	return LX_OK;
}

lx_status lx_st_write(const char *path, const lx_st_entry *ents, int n, lx_err *e)
{
	const lx_st_entry **by_nm = calloc(n ? (size_t)n : 1, sizeof *by_nm);
	const lx_st_entry **by_data = calloc(n ? (size_t)n : 1, sizeof *by_data);
	unsigned char *buf = malloc(CHUNK * 8), len8[8];
	sbuf h = {0};
	FILE *f = NULL;
	lx_status st;
	int i;

	if (!by_nm || !by_data || !buf) {
		st = lx_errf(e, LX_EIO, "%s: out of memory", path);
		goto done;
	}
	for (i = 0; i < n; i++)
		by_nm[i] = by_data[i] = &ents[i];
	qsort(by_nm, (size_t)n, sizeof *by_nm, by_name);
	qsort(by_data, (size_t)n, sizeof *by_data, by_data_order);
	if ((st = check_entries(by_nm, n, path, e)) != LX_OK || (st = header(&h, ents, by_nm, by_data, n, path, e)) != LX_OK)
		goto done;
	if (!(f = fopen(path, "wb"))) {
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	for (i = 0; i < 8; i++)
		len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
	if (fwrite(len8, 1, 8, f) != 8 || fwrite(h.s, 1, h.n, f) != h.n) {
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	for (i = 0; i < n; i++)
		if ((st = write_data(f, by_data[i], buf, path, e)) != LX_OK)
			goto done;
	if (fflush(f) || fsync(fileno(f))) {
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
done:
	if (f && fclose(f) && st == LX_OK)
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	free(h.s);
	free(buf);
	free(by_nm);
	free(by_data);
	return st;
}

/* tensor.c - errors, dtypes, element conversion. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lx_core.h"

lx_status lx_errf(lx_err *e, lx_status status, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
		e->status = status;
	}
	return status;
}

double lx_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const struct {
	lx_dtype t;
	size_t size;
	const char *np, *st;
} dtypes[] = {
	{LX_F32, 4, "<f4", "F32"}, {LX_F16, 2, "<f2", "F16"}, {LX_BF16, 2, "<V2", "BF16"},
	{LX_F64, 8, "<f8", "F64"}, {LX_I32, 4, "<i4", "I32"}, {LX_I64, 8, "<i8", "I64"},
	{LX_I16, 2, "<i2", "I16"}, {LX_I8, 1, "|i1", "I8"},   {LX_U8, 1, "|u1", "U8"},
	{LX_BOOL, 1, "|b1", "BOOL"},
};

size_t lx_dtype_size(lx_dtype t) { return dtypes[t].size; }
const char *lx_dtype_numpy(lx_dtype t) { return dtypes[t].np; }
const char *lx_dtype_safetensors(lx_dtype t) { return dtypes[t].st; }
int lx_dtype_is_float(lx_dtype t) { return t == LX_F32 || t == LX_F16 || t == LX_BF16 || t == LX_F64; }

float lx_half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, 4);
	return f;
}

float lx_bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, 4);
	return f;
}

uint16_t lx_float_to_bf16(float f)
{
	uint32_t bits;

	memcpy(&bits, &f, 4);
	if ((bits & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
	bits += 0x7fff + ((bits >> 16) & 1);        /* round to nearest even */
	return (uint16_t)(bits >> 16);
}

uint16_t lx_float_to_half(float f)
{
	uint32_t bits, sign, man;
	int exp;

	memcpy(&bits, &f, 4);
	sign = (bits >> 16) & 0x8000;
	exp = (int)((bits >> 23) & 0xff) - 127 + 15;
	man = bits & 0x7fffff;
	if (((bits >> 23) & 0xff) == 0xff) /* inf or NaN */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		/* subnormal half (or zero): shift the full mantissa, round to nearest even */
		uint32_t m = man | 0x800000, shift = (uint32_t)(14 - exp), r, half;
		if (shift > 24)
			return (uint16_t)sign;
		r = m >> shift;
		half = 1u << (shift - 1);
		if ((m & ((1u << shift) - 1)) > half || ((m & ((1u << shift) - 1)) == half && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
	{
		uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13), rest = man & 0x1fff;
		if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
			h++; /* may carry into the exponent, which is right */
		return (uint16_t)h;
	}
}

static double elem_f(const lx_tensor *t, int64_t i)
{
	const unsigned char *p = (const unsigned char *)t->data + (size_t)i * lx_dtype_size(t->dtype);
	float f;
	double d;
	uint16_t h;

	switch (t->dtype) {
	case LX_F32: memcpy(&f, p, 4); return f;
	case LX_F64: memcpy(&d, p, 8); return d;
	case LX_F16: memcpy(&h, p, 2); return lx_half_to_float(h);
	case LX_BF16: memcpy(&h, p, 2); return lx_bf16_to_float(h);
	default: return 0;
	}
}

static int64_t elem_i(const lx_tensor *t, int64_t i)
{
	const unsigned char *p = (const unsigned char *)t->data + (size_t)i * lx_dtype_size(t->dtype);
	int64_t v64;
	int32_t v32;
	int16_t v16;

	switch (t->dtype) {
	case LX_I64: memcpy(&v64, p, 8); return v64;
	case LX_I32: memcpy(&v32, p, 4); return v32;
	case LX_I16: memcpy(&v16, p, 2); return v16;
	case LX_I8: return (int8_t)*p;
	case LX_U8: return *p;
	case LX_BOOL: return *p != 0;
	default: return 0;
	}
}

lx_status lx_tensor_to_f32(const lx_tensor *t, float *dst, const char *field, lx_err *e)
{
	int64_t i;

	if (t->dtype == LX_F32) {
		if (t->numel) /* an empty tensor may come with NULL pointers */
			memcpy(dst, t->data, (size_t)t->numel * 4);
		return LX_OK;
	}
	if (lx_dtype_is_float(t->dtype)) {
		for (i = 0; i < t->numel; i++)
			dst[i] = (float)elem_f(t, i);
		return LX_OK;
	}
	/* masks are often written as integers or booleans: take them as 0/1 values */
	for (i = 0; i < t->numel; i++)
		dst[i] = (float)elem_i(t, i);
	(void)field;
	(void)e;
	return LX_OK;
}

lx_status lx_tensor_to_i32(const lx_tensor *t, int32_t *dst, const char *field, lx_err *e)
{
	int64_t i, v;

	if (lx_dtype_is_float(t->dtype))
		return lx_errf(e, LX_EINPUT, "field %s: dtype %s, expected an integer dtype (<i4 or <i8)", field,
		               lx_dtype_numpy(t->dtype));
	if (t->dtype == LX_I32) {
		if (t->numel)
			memcpy(dst, t->data, (size_t)t->numel * 4);
		return LX_OK;
	}
	for (i = 0; i < t->numel; i++) {
		v = elem_i(t, i);
		if (v < INT32_MIN || v > INT32_MAX)
			return lx_errf(e, LX_EINPUT, "field %s: value %lld at index %lld is out of the int32 range",
			               field, (long long)v, (long long)i);
		dst[i] = (int32_t)v;
	}
	return LX_OK;
}

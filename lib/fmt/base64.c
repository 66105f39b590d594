/* base64.c - standard base64 (RFC 4648, '=' padding) both ways (lx_fmt.h). */
#include <stdlib.h>
#include <string.h>

#include "lx_fmt.h"

static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- encoding ---- */

size_t lx_base64_len(size_t n) { return (n + 2) / 3 * 4; }

void lx_base64_encode(const void *src, size_t n, char *dst)
{
	const unsigned char *p = src;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*dst++ = alpha[v >> 18];
		*dst++ = alpha[v >> 12 & 63];
		*dst++ = alpha[v >> 6 & 63];
		*dst++ = alpha[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*dst++ = alpha[v >> 18];
		*dst++ = alpha[v >> 12 & 63];
		*dst++ = i + 1 < n ? alpha[v >> 6 & 63] : '=';
		*dst = '=';
	}
}

lx_status lx_base64(const unsigned char *p, size_t n, char **out, lx_err *e)
{
	size_t len = lx_base64_len(n);
	char *s = malloc(len + 1);

	*out = s;
	if (!s)
		return lx_errf(e, LX_EIO, "out of memory for %zu bytes of base64", n);
	lx_base64_encode(p, n, s);
	s[len] = 0;
	return LX_OK;
}

/* ---- decoding ---- */

/* b64[c]: the 6-bit value of character c, 64 for '=', 0xff for anything else. For speed, four tables give
 * each character of a quad already shifted to its place in the three little-endian output bytes, so that a
 * quad decodes with four lookups and an OR; an invalid character sets bit 24 (B64_BAD). */
#define B64_BAD 0x01000000u

static unsigned char b64[256];
static uint32_t q0[256], q1[256], q2[256], q3[256];

static void b64_init(void)
{
	uint32_t v;
	int i;

	memset(b64, 0xff, sizeof b64);
	for (i = 0; i < 256; i++)
		q0[i] = q1[i] = q2[i] = q3[i] = B64_BAD;
	for (i = 0; i < 64; i++) {
		unsigned char c = (unsigned char)alpha[i];
		v = (uint32_t)i;
		b64[c] = (unsigned char)i;
		q0[c] = v << 2;
		q1[c] = v >> 4 | (v & 15) << 12;
		q2[c] = (v >> 2) << 8 | (v & 3) << 22;
		q3[c] = v << 16;
	}
	b64['='] = 64;
}

size_t lx_base64_size(const char *src, size_t len)
{
	size_t n = len / 4 * 3;

	if (len % 4 || len == 0)
		return n;
	if (src[len - 1] == '=')
		n--;
	if (src[len - 2] == '=')
		n--;
	return n;
}

/* The last quad: two or three data characters and '=' padding, or four data characters. */
static long b64_last(const unsigned char *s, size_t i, unsigned char *d, long out, size_t *bad)
{
	unsigned a = b64[s[i]], b = b64[s[i + 1]], c = b64[s[i + 2]], x = b64[s[i + 3]];

	if (a > 63 || b > 63) {
		*bad = a > 63 ? i : i + 1;
		return -1;
	}
	d[out] = (unsigned char)(a << 2 | b >> 4);
	if (c == 64 && x == 64)
		return out + 1;
	if (c > 63) {
		*bad = i + 2;
		return -1;
	}
	d[out + 1] = (unsigned char)((b & 15) << 4 | c >> 2);
	if (x == 64)
		return out + 2;
	if (x > 63) {
		*bad = i + 3;
		return -1;
	}
	d[out + 2] = (unsigned char)((c & 3) << 6 | x);
	return out + 3;
}

long lx_base64_decode(const char *src, size_t len, void *dst, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned char *d = dst;
	size_t i;
	long out = 0;

	if (!b64['A' + 1])
		b64_init();
	if (len % 4) {
		*bad = len;
		return -1;
	}
	if (len == 0)
		return 0;
	/* every quad but the last, which may hold padding */
	for (i = 0; i + 4 < len; i += 4) {
		uint32_t v = q0[s[i]] | q1[s[i + 1]] | q2[s[i + 2]] | q3[s[i + 3]];
		if (v >= B64_BAD) {
			unsigned k = 0;
			while (b64[s[i + k]] < 64)
				k++;
			*bad = i + k;
			return -1;
		}
		d[out] = (unsigned char)v;
		d[out + 1] = (unsigned char)(v >> 8);
		d[out + 2] = (unsigned char)(v >> 16);
		out += 3;
	}
	return b64_last(s, i, d, out, bad);
}

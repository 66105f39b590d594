/* attn.c - attention maps: head means, rollout, NPY files (lx_attn.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lx_attn.h"

void lx_attn_head_mean(const lx_attn *a, int layer, float *out)
{
	size_t qk = (size_t)a->q * (size_t)a->k, i;
	const float *p = a->p + (size_t)layer * (size_t)a->heads * qk;
	int h;

	memset(out, 0, qk * sizeof *out);
	for (h = 0; h < a->heads; h++)
		for (i = 0; i < qk; i++)
			out[i] += p[(size_t)h * qk + i];
	for (i = 0; i < qk; i++)
		out[i] /= (float)a->heads;
}

/* b = (mean over heads + I) / 2, rows divided by their sums. */
static void residual_step(const lx_attn *a, int layer, float *b)
{
	int q = a->q, i, j;

	lx_attn_head_mean(a, layer, b);
	for (i = 0; i < q; i++) {
		float *row = b + (size_t)i * q, sum = 0;
		row[i] += 1;
		for (j = 0; j < q; j++)
			sum += row[j];
		for (j = 0; j < q; j++)
			row[j] = sum > 0 ? row[j] / sum : 0;
	}
}

lx_status lx_attn_rollout(const lx_attn *maps, int n, float *out, float *scratch, lx_err *e)
{
	int q = maps[0].q, m, l, i, j, k;
	float *b = scratch, *r = scratch + (size_t)q * q, *t = r + (size_t)q * q;

	for (m = 0; m < n; m++)
		if (maps[m].q != q || maps[m].k != q)
			return lx_errf(e, LX_EINPUT, "rollout: map %d is %dx%d, expected %dx%d", m, maps[m].q, maps[m].k, q, q);
	memset(r, 0, (size_t)q * q * sizeof *r);
	for (i = 0; i < q; i++)
		r[(size_t)i * q + i] = 1;
	for (m = 0; m < n; m++) {
		for (l = 0; l < maps[m].layers; l++) {
			residual_step(&maps[m], l, b);
			/* t = b r */
			for (i = 0; i < q; i++) {
				float *ti = t + (size_t)i * q;
				memset(ti, 0, (size_t)q * sizeof *ti);
				for (k = 0; k < q; k++) {
					float bik = b[(size_t)i * q + k];
					const float *rk = r + (size_t)k * q;
					for (j = 0; j < q; j++)
						ti[j] += bik * rk[j];
				}
			}
			memcpy(r, t, (size_t)q * q * sizeof *r);
		}
	}
	memcpy(out, r, (size_t)q * q * sizeof *out);
	return LX_OK;
}

lx_status lx_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, lx_err *e)
{
	char head[256];
	int n, i, pad;
	size_t count = 1, k;
	FILE *f;
	unsigned char buf[4096];

	n = snprintf(head, sizeof head, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
	for (i = 0; i < ndim; i++) {
		n += snprintf(head + n, sizeof head - (size_t)n, "%lld%s", (long long)shape[i],
		              ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
		count *= (size_t)shape[i];
	}
	n += snprintf(head + n, sizeof head - (size_t)n, "), }");
	/* 10 bytes of magic, version and length, then the dict, spaces and '\n' up to a multiple of 64 */
	pad = 64 - (10 + n + 1) % 64;
	if (pad == 64)
		pad = 0;
	memset(head + n, ' ', (size_t)pad);
	n += pad;
	head[n++] = '\n';
	if (!(f = fopen(path, "wb")))
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc(n & 255, f);
	fputc(n >> 8, f);
	fwrite(head, 1, (size_t)n, f);
	for (k = 0; k < count;) {
		size_t m = 0;
		for (; k < count && m + 4 <= sizeof buf; k++, m += 4) {
			uint32_t u;
			memcpy(&u, data + k, 4);
			buf[m] = (unsigned char)u;
			buf[m + 1] = (unsigned char)(u >> 8);
			buf[m + 2] = (unsigned char)(u >> 16);
			buf[m + 3] = (unsigned char)(u >> 24);
		}
		fwrite(buf, 1, m, f);
	}
	if (ferror(f) | fclose(f))
		return lx_errf(e, LX_EIO, "%s: write failed", path);
	return LX_OK;
}

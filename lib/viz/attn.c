/* attn.c - attention maps: head means, rollout (lx_attn.h). */
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

/* conv.c - the detector's convolutions: im2col and one cblas_sgemm per image and group. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "detect/detect_impl.h"

int det_conv_out(const det_conv *c, int n)
{
	return (n + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
}

/* col [cin_g * k * k][oh * ow] for the channels [c0, c0 + cg) of one image x [cin][h][w]. */
static void im2col(const det_conv *c, const float *x, int c0, int cg, int h, int w, int oh, int ow, float *col)
{
	int ci, ky, kx, oy, ox;

	for (ci = 0; ci < cg; ci++) {
		const float *xc = x + (size_t)(c0 + ci) * h * w;
		for (ky = 0; ky < c->k; ky++)
			for (kx = 0; kx < c->k; kx++) {
				float *dst = col + ((size_t)(ci * c->k + ky) * c->k + kx) * oh * ow;
				for (oy = 0; oy < oh; oy++) {
					int iy = oy * c->stride - c->pad + ky * c->dil;
					float *d = dst + (size_t)oy * ow;
					if (iy < 0 || iy >= h) {
						memset(d, 0, (size_t)ow * sizeof *d);
						continue;
					}
					for (ox = 0; ox < ow; ox++) {
						int ix = ox * c->stride - c->pad + kx * c->dil;
						d[ox] = ix >= 0 && ix < w ? xc[(size_t)iy * w + ix] : 0.0f;
					}
				}
			}
	}
}

lx_status det_conv_run(const det_conv *c, const float *x, int batch, int h, int w, float *y, int accumulate, int relu,
                       lx_err *e)
{
	int oh = det_conv_out(c, h), ow = det_conv_out(c, w), cg = c->cin / c->groups, og = c->cout / c->groups;
	int direct = c->k == 1 && c->stride == 1 && c->pad == 0, kk = cg * c->k * c->k, b, g, o;
	size_t plane = (size_t)oh * ow;
	float *col = NULL;

	if (!direct && !(col = malloc((size_t)kk * plane * sizeof *col + 1)))
		return lx_errf(e, LX_EIO, "out of memory (convolution of %d x %d)", h, w);
	for (b = 0; b < batch; b++) {
		const float *xb = x + (size_t)b * c->cin * h * w;
		float *yb = y + (size_t)b * c->cout * plane;
		for (o = 0; o < c->cout; o++) {
			float *yo = yb + (size_t)o * plane, bias = c->b ? c->b[o] : 0.0f;
			size_t i;
			if (accumulate)
				for (i = 0; i < plane; i++)
					yo[i] += bias;
			else
				for (i = 0; i < plane; i++)
					yo[i] = bias;
		}
		for (g = 0; g < c->groups; g++) {
			const float *src = xb + (size_t)g * cg * h * w;
			if (!direct) {
				im2col(c, xb, g * cg, cg, h, w, oh, ow, col);
				src = col;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, og, (int)plane, kk, 1.0f,
			            c->w + (size_t)g * og * kk, kk, src, (int)plane, 1.0f, yb + (size_t)g * og * plane, (int)plane);
		}
		if (relu)
			for (size_t i = 0; i < (size_t)c->cout * plane; i++)
				yb[i] = yb[i] > 0.0f ? yb[i] : 0.0f;
	}
	free(col);
	return LX_OK;
}

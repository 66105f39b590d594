/* stages.c - the detector's steps that are not convolutions, each with the demo's arithmetic (float32 where
 * PyTorch computes in float32, double where it computes in double). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detect_impl.h"
#include "nn/ops.h"

void det_resize_size(int h, int w, int min_size, int max_size, int *oh, int *ow)
{
	double scale = min_size * 1.0 / (h < w ? h : w), nh, nw;

	if (h < w) {
		nh = min_size;
		nw = scale * w;
	} else {
		nh = scale * h;
		nw = min_size;
	}
	if ((nh > nw ? nh : nw) > max_size) {
		scale = max_size * 1.0 / (nh > nw ? nh : nw);
		nh *= scale;
		nw *= scale;
	}
	*ow = (int)(nw + 0.5);
	*oh = (int)(nh + 0.5);
}

/* Source index and weights of output index i: the float scale, the source position and the weights computed
 * in double (what the demo's PyTorch computes, measured on the fixtures). */
static void source(float scale, int i, int in, int *i0, int *i1, float *l0, float *l1)
{
	double s = (double)scale * (i + 0.5) - 0.5, r = s < 0 ? 0 : s;

	*i0 = (int)r;
	*i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
	*l1 = (float)(r - *i0);
	*l0 = (float)(1.0 - (r - *i0));
}

void det_resize_bilinear(const float *x, int c, int h, int w, float *y, int oh, int ow)
{
	float sh = (float)h / (float)oh, sw = (float)w / (float)ow;
	int ch, oy, ox;

	for (oy = 0; oy < oh; oy++) {
		int y0, y1;
		float a0, a1;
		source(sh, oy, h, &y0, &y1, &a0, &a1);
		if (oh == h) {
			y0 = y1 = oy;
			a0 = 1.0f;
			a1 = 0.0f;
		}
		for (ox = 0; ox < ow; ox++) {
			int x0, x1;
			float b0, b1, w00, w01, w10, w11;
			source(sw, ox, w, &x0, &x1, &b0, &b1);
			if (ow == w) {
				x0 = x1 = ox;
				b0 = 1.0f;
				b1 = 0.0f;
			}
			/* the channels-last kernel: four weights, summed in this order */
			w00 = a0 * b0;
			w01 = a0 * b1;
			w10 = a1 * b0;
			w11 = a1 * b1;
			for (ch = 0; ch < c; ch++) {
				const float *p = x + (size_t)ch * h * w;
				y[((size_t)ch * oh + oy) * ow + ox] = p[(size_t)y0 * w + x0] * w00 + p[(size_t)y0 * w + x1] * w01 +
				                                      p[(size_t)y1 * w + x0] * w10 + p[(size_t)y1 * w + x1] * w11;
			}
		}
	}
}

int det_cell_anchors(const lx_detect_config *c, float *out)
{
	int i, j, n = 0;

	for (i = 0; i < c->nsizes; i++)
		for (j = 0; j < c->nratios; j++) {
			double area = pow(c->sizes[i], 2.0), w = sqrt(area / c->ratios[j]), h = c->ratios[j] * w;
			out[4 * n + 0] = (float)(-w / 2.0);
			out[4 * n + 1] = (float)(-h / 2.0);
			out[4 * n + 2] = (float)(w / 2.0);
			out[4 * n + 3] = (float)(h / 2.0);
			n++;
		}
	return n;
}

void det_apply_deltas(const float *box, const float *delta, const double *weights, float *out)
{
	const float clamp = (float)log(1000.0 / 16);
	float width = box[2] - box[0], height = box[3] - box[1];
	float cx = box[0] + 0.5f * width, cy = box[1] + 0.5f * height;
	float dx = delta[0] / (float)weights[0], dy = delta[1] / (float)weights[1];
	float dw = delta[2] / (float)weights[2], dh = delta[3] / (float)weights[3];
	float px, py, pw, ph;

	dw = dw > clamp ? clamp : dw;
	dh = dh > clamp ? clamp : dh;
	px = dx * width + cx;
	py = dy * height + cy;
	pw = expf(dw) * width;
	ph = expf(dh) * height;
	out[0] = px - 0.5f * pw;
	out[1] = py - 0.5f * ph;
	out[2] = px + 0.5f * pw;
	out[3] = py + 0.5f * ph;
}

typedef struct {
	float s;
	int i;
} scored;

static int by_score(const void *a, const void *b)
{
	const scored *x = a, *y = b;

	if (x->s != y->s)
		return x->s > y->s ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

int det_order(const float *scores, int n, int *order)
{
	scored *t = malloc((size_t)n * sizeof *t + 1);
	int i;

	if (!t)
		return -1;
	for (i = 0; i < n; i++) {
		t[i].s = scores[i];
		t[i].i = i;
	}
	qsort(t, (size_t)n, sizeof *t, by_score);
	for (i = 0; i < n; i++)
		order[i] = t[i].i;
	free(t);
	return 0;
}

int det_nms(const float *boxes, const float *scores, int n, double thresh, int *keep, lx_err *e)
{
	int *order = malloc((size_t)n * sizeof *order + 1), i, j, k = 0;
	unsigned char *gone = calloc((size_t)n + 1, 1);
	float *area = malloc((size_t)n * sizeof *area + 1);

	if (!order || !gone || !area || det_order(scores, n, order)) {
		free(order);
		free(gone);
		free(area);
		return -(int)lx_errf(e, LX_EIO, "out of memory (NMS over %d boxes)", n);
	}
	for (i = 0; i < n; i++) {
		const float *b = boxes + 4 * i;
		area[i] = (b[2] - b[0]) * (b[3] - b[1]);
	}
	for (i = 0; i < n; i++) {
		const float *a = boxes + 4 * order[i];
		if (gone[order[i]])
			continue;
		keep[k++] = order[i];
		for (j = i + 1; j < n; j++) {
			const float *b = boxes + 4 * order[j];
			float xx1, yy1, xx2, yy2, ww, hh, inter, ovr;
			if (gone[order[j]])
				continue;
			xx1 = a[0] > b[0] ? a[0] : b[0];
			yy1 = a[1] > b[1] ? a[1] : b[1];
			xx2 = a[2] < b[2] ? a[2] : b[2];
			yy2 = a[3] < b[3] ? a[3] : b[3];
			ww = xx2 - xx1 > 0.0f ? xx2 - xx1 : 0.0f;
			hh = yy2 - yy1 > 0.0f ? yy2 - yy1 : 0.0f;
			inter = ww * hh;
			ovr = inter / (area[order[i]] + area[order[j]] - inter);
			if (ovr > thresh)
				gone[order[j]] = 1;
		}
	}
	free(order);
	free(gone);
	free(area);
	return k;
}

/* o = max(o, p) channel by channel over c channels next to each other (a NaN in p never wins) */
LX_VEC static void cell_max(float *restrict o, const float *restrict p, int c)
{
	for (int ch = 0; ch < c; ch++)
		o[ch] = p[ch] > o[ch] ? p[ch] : o[ch];
}

void det_roipool(const float *map, int c, int h, int w, const float *box, float scale, int r, int nhwc, float *out)
{
	int x0 = (int)roundf(box[0] * scale), y0 = (int)roundf(box[1] * scale);
	int x1 = (int)roundf(box[2] * scale), y1 = (int)roundf(box[3] * scale);
	int rw = x1 - x0 + 1 > 1 ? x1 - x0 + 1 : 1, rh = y1 - y0 + 1 > 1 ? y1 - y0 + 1 : 1;
	float bh = (float)rh / (float)r, bw = (float)rw / (float)r;
	size_t cs = nhwc ? 1 : (size_t)h * w, ps = nhwc ? (size_t)c : 1;      /* channel and pixel strides in */
	size_t ocs = nhwc ? 1 : (size_t)r * r, ops = nhwc ? (size_t)c : 1;   /* and out */
	int cb = nhwc ? c : 1, c0, ph, pw, yy, xx;  /* channels taken together: those next to each other */

	/* each channel's maximum over the bin's cells in the same order, "greater than" as torchvision (a NaN
	 * never wins) */
	for (c0 = 0; c0 < c; c0 += cb)
		for (ph = 0; ph < r; ph++)
			for (pw = 0; pw < r; pw++) {
				int hs = (int)floorf((float)ph * bh), ws = (int)floorf((float)pw * bw);
				int he = (int)ceilf((float)(ph + 1) * bh), we = (int)ceilf((float)(pw + 1) * bw);
				float *o = out + c0 * ocs + ((size_t)ph * r + pw) * ops;
				hs = hs + y0 < 0 ? 0 : hs + y0 > h ? h : hs + y0;
				he = he + y0 < 0 ? 0 : he + y0 > h ? h : he + y0;
				ws = ws + x0 < 0 ? 0 : ws + x0 > w ? w : ws + x0;
				we = we + x0 < 0 ? 0 : we + x0 > w ? w : we + x0;
				for (int k = 0; k < cb; k++)
					o[k] = he <= hs || we <= ws ? 0.0f : -FLT_MAX;
				for (yy = hs; yy < he; yy++)
					for (xx = ws; xx < we; xx++) {
						const float *p = map + c0 * cs + ((size_t)yy * w + xx) * ps;
						if (cb > 1)
							cell_max(o, p, cb);
						else if (p[0] > o[0])
							o[0] = p[0];
					}
			}
}

void det_maxpool(const float *x, int c, int h, int w, int caffe, int nhwc, float *y, int *oh, int *ow)
{
	int pad = caffe ? 0 : 1, cb = nhwc ? c : 1, c0, k, oy, ox, ky, kx;
	size_t ics, ips, ocs, ops;  /* channel and pixel strides in and out */

	if (caffe) {
		*oh = (h - 3 + 1) / 2 + 1;  /* ceil((h - 3) / 2) + 1 */
		*ow = (w - 3 + 1) / 2 + 1;
		if ((*oh - 1) * 2 >= h)
			(*oh)--;
		if ((*ow - 1) * 2 >= w)
			(*ow)--;
	} else {
		*oh = (h + 2 - 3) / 2 + 1;
		*ow = (w + 2 - 3) / 2 + 1;
	}
	ics = nhwc ? 1 : (size_t)h * w;
	ocs = nhwc ? 1 : (size_t)*oh * *ow;
	ips = ops = nhwc ? (size_t)c : 1;
	/* channels taken together where they are next to each other (NHWC), one at a time otherwise */
	for (c0 = 0; c0 < c; c0 += cb)
		for (oy = 0; oy < *oh; oy++)
			for (ox = 0; ox < *ow; ox++) {
				float *o = y + c0 * ocs + ((size_t)oy * *ow + ox) * ops;
				for (k = 0; k < cb; k++)
					o[k] = -INFINITY;
				for (ky = 0; ky < 3; ky++)
					for (kx = 0; kx < 3; kx++) {
						int iy = oy * 2 - pad + ky, ix = ox * 2 - pad + kx;
						const float *p;
						if (iy < 0 || iy >= h || ix < 0 || ix >= w)
							continue;
						p = x + c0 * ics + ((size_t)iy * w + ix) * ips;
						for (k = 0; k < cb; k++)
							if (p[k] > o[k] || isnan(p[k]))
								o[k] = p[k];
					}
			}
}

/* Tiles of T x T: read along rows and written along columns a tile at a time, both in cache. */
#define T 32

void det_transpose(const float *x, int n, int rows, int cols, float *y)
{
	for (int b = 0; b < n; b++) {
		const float *xb = x + (size_t)b * rows * cols;
		float *yb = y + (size_t)b * rows * cols;
		for (int r0 = 0; r0 < rows; r0 += T)
			for (int c0 = 0; c0 < cols; c0 += T) {
				int r1 = r0 + T < rows ? r0 + T : rows, c1 = c0 + T < cols ? c0 + T : cols;
				for (int c = c0; c < c1; c++)
					for (int r = r0; r < r1; r++)
						yb[(size_t)c * rows + r] = xb[(size_t)r * cols + c];
			}
	}
}

/* det_max and det_quantize_u8 in this many parts, shared among OpenMP's threads where there are */
#define QUANT_PARTS 64

/* The largest of x [n] (-inf for none); sixteen running maxima, which the compiler turns into one vector. */
LX_VEC static float chunk_max(const float *restrict x, size_t n)
{
	float m[16], r = -INFINITY;
	size_t k;
	int j;

	for (j = 0; j < 16; j++)
		m[j] = -INFINITY;
	for (k = 0; k + 16 <= n; k += 16)
		for (j = 0; j < 16; j++)
			m[j] = x[k + j] > m[j] ? x[k + j] : m[j];
	for (; k < n; k++)
		r = x[k] > r ? x[k] : r;
	for (j = 0; j < 16; j++)
		r = m[j] > r ? m[j] : r;
	return r;
}

LX_VEC static void chunk_quantize(const float *restrict x, size_t n, float scale, unsigned char *restrict q)
{
	for (size_t k = 0; k < n; k++) {
		float v = x[k] * scale;
		v = v > 0.0f ? v : 0.0f;
		v = v < 255.0f ? v : 255.0f;
		q[k] = (unsigned char)(int)(v + 0.5f);
	}
}

float det_max(const float *x, size_t n)
{
	float part[QUANT_PARTS], m = -INFINITY;
	int i;

#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
	for (i = 0; i < QUANT_PARTS; i++)
		part[i] = chunk_max(x + n * i / QUANT_PARTS, n * (i + 1) / QUANT_PARTS - n * i / QUANT_PARTS);
	for (i = 0; i < QUANT_PARTS; i++)
		m = part[i] > m ? part[i] : m;
	return m;
}

void det_quantize_u8(const float *x, size_t n, float scale, unsigned char *q)
{
	int i;

#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
	for (i = 0; i < QUANT_PARTS; i++) {
		size_t a = n * i / QUANT_PARTS, b = n * (i + 1) / QUANT_PARTS;
		chunk_quantize(x + a, b - a, scale, q + a);
	}
}

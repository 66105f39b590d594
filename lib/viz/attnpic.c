/* attnpic.c - the pictures of lx-attnviz: heatmap grids and boxes over an image (lx_attn.h). */
#include <stdlib.h>
#include <string.h>

#include "lx_attn.h"

#define PAD 14
#define GAP 14
#define TITLE_PX 15
#define SUB_PX 11
#define HEAD_PX 12
#define LABEL_PX 10
#define LABEL_MAX 110
#define BAR_W 16
#define INK 0x202020
#define GREY 0x808080

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static int widest(lx_font *f, const char *const *lab, int n)
{
	int i, w = 0;

	for (i = 0; i < n; i++) {
		int x = lx_font_width(f, LABEL_PX, lab[i]);
		if (x > w)
			w = x;
	}
	return w < LABEL_MAX ? w : LABEL_MAX;
}

/* The width of the row headers ("<layer_name> <i>", left of the query labels); 0 for a single panel. */
static int layer_width(lx_font *f, const lx_grid_spec *sp, int layers)
{
	char name[64];
	int w;

	if (sp->single)
		return 0;
	snprintf(name, sizeof name, "%s %d", sp->layer_name, layers - 1);
	w = lx_font_width(f, HEAD_PX, name) + 10;
	return w < 160 ? w : 160;
}

/* The value of panel (layer, col): a head, or the mean over heads in the extra column. */
static void panel(const lx_attn *a, int layer, int col, float *buf, const float **v)
{
	size_t qk = (size_t)a->q * (size_t)a->k;

	if (col < a->heads) {
		*v = a->p + ((size_t)layer * (size_t)a->heads + (size_t)col) * qk;
		return;
	}
	lx_attn_head_mean(a, layer, buf);
	*v = buf;
}

/* A vertical colour bar at (x, y), h tall, from 0 (bottom) to vmax (top), with three ticks. */
static void colour_bar(lx_image *im, lx_font *f, int x, int y, int h, float vmax)
{
	int j, t;
	char s[32];

	for (j = 0; j < h; j++)
		lx_image_fill(im, x, y + j, BAR_W, 1, lx_colormap(1 - (float)j / (float)(h - 1)));
	lx_image_frame(im, x - 1, y - 1, BAR_W + 2, h + 2, 1, GREY);
	for (t = 0; t <= 2; t++) {
		int ty = y + (h - 1) - (h - 1) * t / 2;
		snprintf(s, sizeof s, "%.3g", (double)(vmax * (float)t / 2));
		lx_image_fill(im, x + BAR_W + 1, ty, 4, 1, INK);
		lx_font_draw(f, im, x + BAR_W + 7, ty - lx_font_height(f, LABEL_PX) / 2, LABEL_PX, s, INK, 0);
	}
}

/* Every label of one axis, thinned to one in `stride` when the entries are smaller than a line of text. */
static void axis_labels(lx_image *im, lx_font *f, const char *const *lab, int n, int x, int y, int s, int stride,
                        int up, int maxw)
{
	int i, lh = lx_font_height(f, LABEL_PX);

	for (i = 0; i < n; i += stride) {
		int mid = i * s + s / 2 - lh / 2;
		int w = lx_font_width(f, LABEL_PX, lab[i]);
		if (w > maxw)
			w = maxw;
		if (up)
			lx_font_draw_fit(f, im, x + mid, y, LABEL_PX, lab[i], INK, 1, maxw);
		else
			lx_font_draw_fit(f, im, x - w, y + mid, LABEL_PX, lab[i], INK, 0, maxw);
	}
}

/* One panel: with row set, each row over its own largest value, else every value over vmax. */
static void heat(lx_image *im, const float *v, int q, int k, int x, int y, int s, float vmax, int row)
{
	int i, j;

	for (i = 0; i < q; i++) {
		const float *r = v + (size_t)i * k;
		float m = vmax;
		if (row)
			for (m = 0, j = 0; j < k; j++)
				m = r[j] > m ? r[j] : m;
		if (!(m > 0))
			m = 1;
		for (j = 0; j < k; j++)
			lx_image_fill(im, x + j * s, y + i * s, s, s, lx_colormap(r[j] / m));
	}
	lx_image_frame(im, x - 1, y - 1, k * s + 2, q * s + 2, 1, GREY);
}

lx_status lx_attn_grid(lx_image **out, const lx_attn *a, const lx_grid_spec *sp, lx_font *f, lx_err *e)
{
	int cols = sp->single ? 1 : a->heads + (sp->mean_column ? 1 : 0);
	int big = a->q > a->k ? a->q : a->k, lh = lx_font_height(f, LABEL_PX);
	int s = sp->cell > 0 ? sp->cell : clampi(480 / big, 5, 16);
	int stride = (lh + s - 1) / s, qw = widest(f, sp->qlab, a->q) + 6, kh = widest(f, sp->klab, a->k) + 6;
	int cw = a->k * s, ch = a->q * s, hh = lx_font_height(f, HEAD_PX), side = layer_width(f, sp, a->layers);
	int top = PAD + lx_font_height(f, TITLE_PX) + lx_font_height(f, SUB_PX) + 8;
	int x0 = PAD + side + qw, y0 = top + (sp->single ? 0 : hh + 4) + kh;
	int gw = cols * cw + (cols - 1) * GAP, gh = a->layers * ch + (a->layers - 1) * GAP;
	int W = x0 + gw + GAP + BAR_W + 60 + PAD, H = y0 + gh + PAD, L, c;
	size_t qk = (size_t)a->q * (size_t)a->k, i;
	float vmax = 0, *mean = malloc(qk * sizeof *mean);
	char sub[256], name[64];
	lx_image *im;
	lx_status rc;

	*out = NULL;
	if (!mean)
		return lx_errf(e, LX_EIO, "out of memory");
	for (L = 0; L < a->layers; L++)
		for (c = 0; c < cols; c++) {
			const float *v;
			panel(a, L, sp->single ? 0 : c, mean, &v);
			for (i = 0; i < qk; i++)
				if (v[i] > vmax)
					vmax = v[i];
		}
	if (!(vmax > 0) || sp->scale != LX_SCALE_MAP)
		vmax = 1;
	if (W < 360)
		W = 360;
	if ((rc = lx_image_new(&im, W, H, 0xffffff, e))) {
		free(mean);
		return rc;
	}
	lx_font_draw_fit(f, im, PAD, PAD, TITLE_PX, sp->title, INK, 0, W - 2 * PAD);
	snprintf(sub, sizeof sub, "rows: queries, columns: keys; colour from 0 to %s%s",
	         sp->scale == LX_SCALE_ROW ? "each row's largest value" : sp->scale == LX_SCALE_FIXED ? "1" : "",
	         stride > 1 ? "; every other label left out" : "");
	if (sp->scale == LX_SCALE_MAP)
		snprintf(sub, sizeof sub, "rows: queries, columns: keys; colour from 0 to %.3g, the largest value shown%s",
		         (double)vmax, stride > 1 ? "; every other label left out" : "");
	lx_font_draw_fit(f, im, PAD, PAD + lx_font_height(f, TITLE_PX) + 2, SUB_PX, sub, GREY, 0, W - 2 * PAD);
	for (c = 0; c < cols && !sp->single; c++) {
		int x = x0 + c * (cw + GAP);
		if (c < a->heads)
			snprintf(name, sizeof name, "head %d", c);
		else
			snprintf(name, sizeof name, "mean");
		lx_font_draw_fit(f, im, x, top, HEAD_PX, name, INK, 0, cw + GAP - 2);
		axis_labels(im, f, sp->klab, a->k, x, y0 - 4, s, stride, 1, kh - 6);
	}
	if (sp->single)
		axis_labels(im, f, sp->klab, a->k, x0, y0 - 4, s, stride, 1, kh - 6);
	for (L = 0; L < a->layers; L++) {
		int y = y0 + L * (ch + GAP);
		if (!sp->single) {
			snprintf(name, sizeof name, "%s %d", sp->layer_name, L);
			lx_font_draw_fit(f, im, PAD, y + ch / 2 - hh / 2, HEAD_PX, name, INK, 0, side - 8);
		}
		axis_labels(im, f, sp->qlab, a->q, x0 - 4, y, s, stride, 0, qw - 6);
		for (c = 0; c < cols; c++) {
			const float *v;
			panel(a, L, sp->single ? 0 : c, mean, &v);
			heat(im, v, a->q, a->k, x0 + c * (cw + GAP), y, s, vmax, sp->scale == LX_SCALE_ROW);
		}
	}
	colour_bar(im, f, x0 + gw + GAP, y0, gh < 200 ? gh : 200, vmax);
	free(mean);
	*out = im;
	return LX_OK;
}

/* ---- boxes over a picture ---- */

static int by_weight(const float *w, const int *order, int i, int j) { return w[order[i]] < w[order[j]]; }

typedef struct { int x, y, w, h; } rect;

static int overlaps(const rect *a, const rect *b)
{
	return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

/* A label at the first place near the box's top-left corner that no earlier label covers. */
static void draw_label(lx_image *im, lx_font *f, const float *b, int top, const char *s, float v, rect *placed,
                       int n)
{
	int px = 12, h = lx_font_height(f, px) + 2, tries, i;
	rect r = {(int)b[0] + 2, top + (int)b[1] + 2, lx_font_width(f, px, s) + 6, h};

	if (r.x + r.w > im->w)
		r.x = im->w - r.w;
	if (r.x < 0)
		r.x = 0;
	for (tries = 0; tries < 12; tries++) {
		for (i = 0; i < n && !overlaps(&r, &placed[i]); i++)
			;
		if (i == n)
			break;
		r.y += h;
		if (r.y + h > im->h)
			r.y = top;
	}
	placed[n] = r;
	lx_image_fill(im, r.x, r.y, r.w, r.h, lx_colormap(v));
	lx_image_frame(im, r.x, r.y, r.w, r.h, 1, 0x404040);
	lx_font_draw(f, im, r.x + 3, r.y + 1, px, s, v > 0.55f ? 0xffffff : INK, 0);
}

/* Every box outlined in the colour of its strength, 1 + 2v pixels thick, weakest first so that the strong
 * ones stay on top; the photo is left as it is. */
static void outlines(lx_image *im, int top, const float *boxes, const float *v, const int *order, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		const float *b = boxes + (size_t)order[i] * 4;
		int x1 = (int)(b[0] + 0.5f), y1 = (int)(b[1] + 0.5f), x2 = (int)(b[2] + 0.5f), y2 = (int)(b[3] + 0.5f);
		if (x2 > x1 && y2 > y1)
			lx_image_frame(im, x1, top + y1, x2 - x1, y2 - y1, 1 + (int)(2 * v[order[i]] + 0.5f),
			               lx_colormap(v[order[i]]));
	}
}

/* Up to two lines of text split at '\n', cut to the width. */
static void caption(lx_image *im, lx_font *f, const char *title, int y, int lh)
{
	char line[512];
	const char *nl = strchr(title, '\n');
	size_t n = nl ? (size_t)(nl - title) : strlen(title);

	if (n >= sizeof line)
		n = sizeof line - 1;
	memcpy(line, title, n);
	line[n] = 0;
	lx_font_draw_fit(f, im, PAD, y, 13, line, INK, 0, im->w - 2 * PAD);
	if (nl)
		lx_font_draw_fit(f, im, PAD, y + lh, 12, nl + 1, INK, 0, im->w - 2 * PAD);
}

lx_status lx_attn_boxes(lx_image **out, const lx_image *pic, const float *boxes, const float *w, int n,
                        const char *const *labels, int top, int scale, const char *title, lx_font *f, lx_err *e)
{
	int W = pic->w > 480 ? pic->w : 480, th = lx_font_height(f, 13), cap = PAD + 2 * th + 6 + 12 + 8;
	int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order), i, j, nl = 0;
	float wmax = 0, *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
	rect *placed = malloc((size_t)(n > 0 ? n : 1) * sizeof *placed);
	char s[160];
	lx_image *im = NULL;
	lx_status rc;

	*out = NULL;
	if (!order || !v || !placed) {
		rc = lx_errf(e, LX_EIO, "out of memory");
		goto done;
	}
	if ((rc = lx_image_new(&im, W, cap + pic->h, 0xffffff, e)))
		goto done;
	lx_image_paste(im, pic, 0, cap);
	for (i = 0; i < n; i++) {
		order[i] = i;
		if (w[i] > wmax)
			wmax = w[i];
	}
	if (!(wmax > 0) || scale == LX_SCALE_FIXED)
		wmax = 1;
	for (i = 0; i < n; i++)
		v[i] = w[i] / wmax;
	for (i = 1; i < n; i++) /* insertion sort, weakest first */
		for (j = i; j > 0 && by_weight(w, order, j, j - 1); j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	outlines(im, cap, boxes, v, order, n);
	for (i = n - top > 0 ? n - top : 0; i < n; i++) { /* frames and labels of the strongest, strongest last */
		const float *b = boxes + (size_t)order[i] * 4;
		int x1 = (int)(b[0] + 0.5f), y1 = (int)(b[1] + 0.5f), x2 = (int)(b[2] + 0.5f), y2 = (int)(b[3] + 0.5f);
		if (x2 > x1 && y2 > y1)
			lx_image_frame(im, x1, cap + y1, x2 - x1, y2 - y1, 1 + (int)(2 * v[order[i]] + 0.5f),
			               lx_colormap(0.3f + 0.7f * v[order[i]]));
	}
	for (i = n - top > 0 ? n - top : 0; i < n; i++) {
		snprintf(s, sizeof s, "%s %.1f%%", labels[order[i]], (double)(100 * w[order[i]]));
		draw_label(im, f, boxes + (size_t)order[i] * 4, cap, s, v[order[i]], placed, nl++);
	}
	caption(im, f, title, PAD - 4, th + 2);
	for (i = 0; i < 160; i++)
		lx_image_fill(im, PAD + i, PAD + 2 * th + 4, 1, 10, lx_colormap((float)i / 159));
	lx_image_frame(im, PAD - 1, PAD + 2 * th + 3, 162, 12, 1, GREY);
	if (scale == LX_SCALE_FIXED)
		snprintf(s, sizeof s, "0 to 100%%; the %d strongest labelled", top);
	else
		snprintf(s, sizeof s, "0 to %.1f%%, the strongest box; the %d strongest labelled", (double)(100 * wmax), top);
	lx_font_draw(f, im, PAD + 170, PAD + 2 * th + 2, 11, s, GREY, 0);
	*out = im;
	im = NULL;
done:
	lx_image_free(im);
	free(order);
	free(v);
	free(placed);
	return rc;
}

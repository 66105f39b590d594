/*
 * tests/unit/detect.c - the detector (lib/detect/) stage by stage against the demo's own outputs on the four
 * photos of tests/fixtures/frcnn-tiny (golden.safetensors), and the stages the golden file does not hold
 * (anchors, RoIPool, NMS, the max-pool, the resize arithmetic, the convolution) against hand calculations.
 * The same stages against tests/fixtures/frcnn-groups, the demo's code run on a second configuration (grouped
 * convolutions, no caffe max-pool, RoIPool 9x9 with res5 halving, four NMS thresholds, PIXEL_STD, other anchors,
 * box weights and RPN settings), so that nothing is fixed to one fixture's numbers.
 * Run from the top of the tree.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "detect/detect_impl.h"
#include "lx_fmt.h"

#define IMAGES "tests/fixtures/frcnn-tiny/images"

static const char *images[] = {"000456.jpg", "001150.jpg", "001763.png", "COCO_train2014_000000132417.jpg"};

/* The golden tensor case<k>.<stage>, its element count in *n (checked against want when want >= 0). */
static const lx_tensor *golden(lx_st *g, int k, const char *stage, long want)
{
	static lx_tensor t;
	char name[128];
	int i;

	snprintf(name, sizeof name, "case%d.%s", k, stage);
	if ((i = lx_st_find(g, name)) < 0) {
		CHECKF(0, "%s missing from the golden file", name);
		return NULL;
	}
	lx_st_name(g, i, &t);
	CHECKF(want < 0 || t.numel == want, "%s: %lld values, computed %ld", name, (long long)t.numel, want);
	return want < 0 || t.numel == want ? &t : NULL;
}

/* max |got - ref| / (1 + max |ref|) over n values of stage (float32 golden). */
static double compare(lx_st *g, int k, const char *stage, const float *got, long n, double tol)
{
	const lx_tensor *t = golden(g, k, stage, n);
	float *ref;
	double big = 0, diff = 0;
	long i;

	if (!t)
		return INFINITY;
	ref = malloc((size_t)n * sizeof *ref + 1);
	lx_tensor_to_f32(t, ref, stage, NULL);
	for (i = 0; i < n; i++) {
		big = fmax(big, fabs(ref[i]));
		diff = fmax(diff, fabs((double)got[i] - ref[i]));
	}
	free(ref);
	printf("  case%d %-16s %8ld values  max|diff| %.3g  max|ref| %.3g\n", k, stage, n, diff, big);
	CHECKF(diff <= tol * (1 + big), "case%d.%s: max |diff| %g, max |ref| %g, tolerance %g relative", k, stage, diff,
	       big, tol);
	return diff;
}

static void compare_ids(lx_st *g, int k, const char *stage, const int32_t *got, int n)
{
	const lx_tensor *t = golden(g, k, stage, n);
	int32_t *ref = malloc((size_t)n * sizeof *ref + 1);

	if (t && !lx_tensor_to_i32(t, ref, stage, NULL))
		for (int i = 0; i < n; i++)
			CHECKF(got[i] == ref[i], "case%d.%s[%d]: %d, the demo %d", k, stage, i, got[i], ref[i]);
	free(ref);
}

/* Every stage of the demo on the four photos with the detector in fix (the golden file beside it). */
static void golden_cases(const char *fix)
{
	char gpath[256];
	lx_detector *d = NULL;
	lx_st *g;
	lx_err e;

	printf("%s\n", fix);
	snprintf(gpath, sizeof gpath, "%s/golden.safetensors", fix);
	if (lx_detector_open(&d, fix, &e) || lx_st_open(&g, gpath, &e)) {
		lx_detector_free(d);
		CHECKF(0, "%s", e.msg);
		return;
	}
	for (int k = 0; k < 4; k++) {
		char path[256];
		lx_image *im;
		lx_detection r;
		lx_detect_trace t;
		const lx_tensor *sz;
		int32_t hw[2] = {0, 0};
		float sc[2] = {0, 0};
		int classes = lx_detector_config(d)->classes, attrs = lx_detector_config(d)->attrs;

		snprintf(path, sizeof path, IMAGES "/%s", images[k]);
		if (lx_image_load(&im, path, &e) || lx_detect(d, im, &r, &t, &e)) {
			CHECKF(0, "%s: %s", path, e.msg);
			continue;
		}
		printf("case%d %s: %d x %d -> %d x %d, res4 %d x %d, %d proposals, %d detections\n", k, images[k], im->w,
		       im->h, t.w, t.h, t.fw, t.fh, t.p, r.n);
		if ((sz = golden(g, k, "image_size", 2)) && !lx_tensor_to_i32(sz, hw, "image_size", NULL))
			CHECKF(hw[0] == t.h && hw[1] == t.w, "case%d: resized to %d x %d, the demo %d x %d", k, t.w, t.h, hw[1],
			       hw[0]);
		if ((sz = golden(g, k, "scales_yx", 2)) && !lx_tensor_to_f32(sz, sc, "scales_yx", NULL))
			CHECKF(sc[0] == t.scale_y && sc[1] == t.scale_x, "case%d: scales %g %g, the demo %g %g", k, t.scale_y,
			       t.scale_x, sc[0], sc[1]);
		if (hw[0] != t.h || hw[1] != t.w) {
			lx_detection_destroy(&r);
			lx_detect_trace_destroy(&t);
			lx_image_free(im);
			continue;
		}
		compare(g, k, "image", t.image, 3L * t.h * t.w, 1e-6);
		compare(g, k, "res4", t.res4, (long)t.fc * t.fh * t.fw, 1e-5);
		compare(g, k, "proposals", t.proposals, 4L * t.p, 1e-5);
		compare(g, k, "objectness", t.objectness, t.p, 1e-5);
		compare(g, k, "roi_pooled", t.roi_pooled, (long)t.p * r.dim, 1e-5);
		compare(g, k, "roi_obj_logits", t.obj_logits, (long)t.p * (classes + 1), 1e-5);
		compare(g, k, "roi_attr_logits", t.attr_logits, (long)t.p * (attrs + 1), 1e-5);
		compare(g, k, "roi_box_deltas", t.box_deltas, (long)t.p * 4 * classes, 1e-5);
		/* the records: boxes to 1e-3 pixels, scores to 1e-5, features to 1e-5 of the largest */
		compare(g, k, "boxes", r.boxes, 4L * r.n, 1e-3 / 500);
		compare(g, k, "normalized_boxes", r.visual_pos, 4L * r.n, 1e-5);
		compare(g, k, "obj_probs", r.obj_conf, r.n, 1e-5);
		compare(g, k, "attr_probs", r.attr_conf, r.n, 1e-5);
		compare(g, k, "roi_features", r.feats, (long)r.n * r.dim, 1e-5);
		compare_ids(g, k, "obj_ids", r.obj_ids, r.n);
		compare_ids(g, k, "attr_ids", r.attr_ids, r.n);
		CHECK(r.img_h == im->h && r.img_w == im->w);
		lx_detection_destroy(&r);
		lx_detect_trace_destroy(&t);
		lx_image_free(im);
	}
	lx_st_free(g);
	lx_detector_free(d);
}

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) <= 1e-5 * (1 + fabs((double)(b))))

/* The cell anchors of sizes 32 / ratios 0.5, 1, 2, by hand: w = sqrt(32^2 / r), h = r w, centred on 0. */
static void anchors(void)
{
	lx_detect_config c = {.nsizes = 1, .nratios = 3, .sizes = {32}, .ratios = {0.5, 1, 2}};
	float a[12];
	const float want[12] = {-22.627417f, -11.313708f, 22.627417f, 11.313708f, -16, -16, 16, 16,
	                        -11.313708f, -22.627417f, 11.313708f, 22.627417f};

	CHECK(det_cell_anchors(&c, a) == 3);
	for (int i = 0; i < 12; i++)
		CHECKF(NEAR(a[i], want[i]), "anchor value %d: %g, by hand %g", i, a[i], want[i]);
}

/* torchvision's RoIPool on a 4 x 4 map holding 0..15, at scale 1/16, by hand. */
static void roipool(void)
{
	float map[16], out[4];
	const float whole[4] = {5, 6, 9, 10};
	int i;

	for (i = 0; i < 16; i++)
		map[i] = (float)i;
	/* x, y from 0 to round(31/16) = 2: 3 cells, bins of 1.5: [0, 2) and [1, 3) */
	det_roipool(map, 1, 4, 4, (const float[]){0, 0, 31, 31}, 1.0f / 16, 2, 0, out);
	for (i = 0; i < 4; i++)
		CHECKF(out[i] == whole[i], "roipool bin %d: %g, by hand %g", i, out[i], whole[i]);
	/* 8 / 16 = 0.5 rounds away from zero, to cell 1 */
	det_roipool(map, 1, 4, 4, (const float[]){8, 8, 8, 8}, 1.0f / 16, 2, 0, out);
	for (i = 0; i < 4; i++)
		CHECKF(out[i] == 5, "roipool of a point, bin %d: %g, by hand 5", i, out[i]);
	/* a box outside the map: empty bins are 0 */
	det_roipool(map, 1, 4, 4, (const float[]){100, 100, 120, 120}, 1.0f / 16, 2, 0, out);
	for (i = 0; i < 4; i++)
		CHECKF(out[i] == 0, "roipool outside the map, bin %d: %g", i, out[i]);
	/* NHWC, two channels: the second holds minus the first, so its maxima are minus the first's minima */
	float map2[32], out2[8];
	const float both[8] = {5, 0, 6, -1, 9, -4, 10, -5};
	for (i = 0; i < 16; i++) {
		map2[2 * i] = (float)i;
		map2[2 * i + 1] = -(float)i;
	}
	det_roipool(map2, 2, 4, 4, (const float[]){0, 0, 31, 31}, 1.0f / 16, 2, 1, out2);
	for (i = 0; i < 8; i++)
		CHECKF(out2[i] == both[i], "roipool NHWC, bin %d channel %d: %g, by hand %g", i / 2, i % 2, out2[i],
		       both[i]);
}

/* Greedy NMS: A and B overlap with IoU 81 / 119 = 0.68, C apart. */
static void nms(void)
{
	const float boxes[12] = {0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30}, scores[3] = {0.9f, 0.8f, 0.85f};
	int keep[3], n;

	n = det_nms(boxes, scores, 3, 0.5, keep, NULL);
	CHECK(n == 2 && keep[0] == 0 && keep[1] == 2);
	n = det_nms(boxes, scores, 3, 0.7, keep, NULL);
	CHECK(n == 3 && keep[0] == 0 && keep[1] == 2 && keep[2] == 1);
	/* equal scores keep the lower index first */
	n = det_nms(boxes, (const float[]){0.5f, 0.5f, 0.5f}, 3, 0.5, keep, NULL);
	CHECK(n == 2 && keep[0] == 0 && keep[1] == 2);
}

/* The stem's max-pool on a 6 x 6 map holding 0..35: caffe's (no padding, ceil) and the padded one. */
static void maxpool(void)
{
	float x[36], y[16];
	int oh, ow;

	for (int i = 0; i < 36; i++)
		x[i] = (float)i;
	det_maxpool(x, 1, 6, 6, 1, 0, y, &oh, &ow);
	CHECK(oh == 3 && ow == 3 && y[0] == 14 && y[2] == 17 && y[8] == 35);
	det_maxpool(x, 1, 6, 6, 0, 0, y, &oh, &ow);
	CHECK(oh == 3 && ow == 3 && y[0] == 7 && y[1] == 9 && y[8] == 35);
	/* NHWC, two channels: the second holds minus the first, so its maxima are minus the first's minima */
	float x2[72], y2[32];
	for (int i = 0; i < 36; i++) {
		x2[2 * i] = (float)i;
		x2[2 * i + 1] = -(float)i;
	}
	det_maxpool(x2, 2, 6, 6, 1, 1, y2, &oh, &ow);
	CHECK(oh == 3 && ow == 3 && y2[0] == 14 && y2[1] == 0 && y2[4] == 17 && y2[5] == -4 && y2[16] == 35 &&
	      y2[17] == -28);
}

/* The demo's resize sizes, by hand. */
static void resize_size(void)
{
	int h, w;

	det_resize_size(375, 500, 120, 200, &h, &w);
	CHECK(h == 120 && w == 160);
	det_resize_size(333, 500, 120, 200, &h, &w);  /* 180.18 -> 180 */
	CHECK(h == 120 && w == 180);
	det_resize_size(500, 100, 120, 200, &h, &w);  /* 600 > 200: 200 x 40 */
	CHECK(h == 200 && w == 40);
	det_resize_size(1, 1, 120, 200, &h, &w);
	CHECK(h == 120 && w == 120);
	det_resize_size(10, 10000, 120, 200, &h, &w);  /* 0.2 pixels high: the caller refuses it */
	CHECK(h == 0 && w == 200);
}

/* A grouped, strided, dilated, padded convolution against the sum written out directly, added to y's ones
 * (acc) or not, with or without the ReLU, on engine eng (NULL: im2col + sgemm), in NCHW or NHWC (the maps
 * turned by hand around det_conv_run_nhwc). */
static void conv_case(det_engine *eng, int accumulate, int relu, int nhwc)
{
	enum { CIN = 4, COUT = 6, K = 3, H = 9, W = 7, G = 2 };
	float w[COUT * (CIN / G) * K * K], b[COUT], x[2 * CIN * H * W], y[2 * COUT * 20], *acc;
	float xt[2 * CIN * H * W], yt[2 * COUT * 20];
	det_conv c = {CIN, COUT, K, 2, 2, 2, G, w, b, eng, 0, NULL, NULL};
	int oh = det_conv_out(&c, H), ow = det_conv_out(&c, W), i, n, o, oy, ox;
	unsigned s = 1;

	CHECK(oh == 5 && ow == 4); /* (9 + 4 - 4 - 1) / 2 + 1, (7 + 4 - 4 - 1) / 2 + 1 */
	for (i = 0; i < (int)(sizeof w / sizeof *w); i++)
		w[i] = (float)((s = s * 1103515245 + 12345) >> 16 & 255) / 64 - 2;
	for (i = 0; i < COUT; i++)
		b[i] = (float)i / 4;
	for (i = 0; i < 2 * CIN * H * W; i++)
		x[i] = (float)((s = s * 1103515245 + 12345) >> 16 & 255) / 32 - 4;
	for (i = 0; i < 2 * COUT * oh * ow; i++)
		y[i] = 1;
	if (nhwc) {
		for (n = 0; n < 2; n++)
			for (i = 0; i < CIN * H * W; i++)
				xt[n * CIN * H * W + (i % (H * W)) * CIN + i / (H * W)] = x[n * CIN * H * W + i];
		for (i = 0; i < 2 * COUT * oh * ow; i++)
			yt[i] = 1;
		CHECK(!det_conv_run_nhwc(&c, xt, 2, H, W, yt, accumulate, relu, NULL));
		for (n = 0; n < 2; n++)
			for (i = 0; i < COUT * oh * ow; i++)
				y[n * COUT * oh * ow + i] = yt[n * COUT * oh * ow + (i % (oh * ow)) * COUT + i / (oh * ow)];
	} else
		CHECK(!det_conv_run(&c, x, 2, H, W, y, accumulate, relu, NULL));
	acc = y;
	for (n = 0; n < 2; n++)
		for (o = 0; o < COUT; o++)
			for (oy = 0; oy < oh; oy++)
				for (ox = 0; ox < ow; ox++) {
					int g = o / (COUT / G);
					double sum = accumulate + b[o];
					for (int ci = 0; ci < CIN / G; ci++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++) {
								int iy = oy * 2 - 2 + 2 * ky, ix = ox * 2 - 2 + 2 * kx;
								if (iy >= 0 && iy < H && ix >= 0 && ix < W)
									sum += (double)w[((o * (CIN / G) + ci) * K + ky) * K + kx] *
									       x[((n * CIN + g * (CIN / G) + ci) * H + iy) * W + ix];
							}
					if (relu && sum < 0)
						sum = 0;
					CHECKF(NEAR(*acc, sum), "conv%s%s (acc %d, relu %d) [%d][%d][%d][%d]: %g, summed %g",
					       eng ? " (oneDNN)" : "", nhwc ? " NHWC" : "", accumulate, relu, n, o, oy, ox, *acc, sum);
					acc++;
				}
}

/* Both paths where oneDNN is built in; the primitives made on the first run are found again on the second. */
static void conv(void)
{
	det_engine *eng;

	CHECK(!det_engine_new(&eng, NULL));
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; k < 8; k++) {
			conv_case(NULL, k & 1, k >> 1 & 1, k >> 2);
			if (eng)
				conv_case(eng, k & 1, k >> 1 & 1, k >> 2);
		}
	det_engine_free(eng);
}

/* The layer of conv_bf16 and conv_int8: 3x3, dilation 2, padding 2, as res5's, on NHWC maps of two images. */
enum { RCIN = 32, RCOUT = 16, RH = 5, RW = 6 };

/* Its output at [n][oy][ox][o] written out: b[o] + add + the sum over x [2][RH][RW][RCIN], then the ReLU. */
static double res5_like(const float *w, const float *b, const float *x, double add, int n, int oy, int ox, int o)
{
	double sum = b[o] + add;

	for (int ky = 0; ky < 3; ky++)
		for (int kx = 0; kx < 3; kx++) {
			int iy = oy - 2 + 2 * ky, ix = ox - 2 + 2 * kx;
			if (iy >= 0 && iy < RH && ix >= 0 && ix < RW)
				for (int ci = 0; ci < RCIN; ci++)
					sum += (double)w[((o * RCIN + ci) * 3 + ky) * 3 + kx] *
					       x[((size_t)(n * RH + iy) * RW + ix) * RCIN + ci];
		}
	return sum < 0 ? 0 : sum;
}

/* A layer in bfloat16 (det_conv.bf16), NHWC: on weights and inputs that bfloat16 holds exactly (8 significant
 * bits) it gives the sums written out directly, its input and output kept in bfloat16 (det_conv_run_bf16) too,
 * the output rounded to bfloat16's 8 bits; an input bfloat16 cannot hold is rounded (1 + 2^-10 is 1). */
static void conv_bf16(void)
{
	enum { CIN = RCIN, COUT = RCOUT, H = RH, W = RW };
	static float w[COUT * CIN * 9], x[2 * H * W * CIN], y[2 * H * W * COUT], y2[2 * H * W * COUT];
	static uint16_t xb[2 * H * W * CIN], yb[2 * H * W * COUT];
	float b[COUT], one = 1, tiny_x = 1 + 1.0f / 1024, tiny_y;
	det_engine *eng;
	det_conv c = {CIN, COUT, 3, 1, 2, 2, 1, w, b, NULL, 1, NULL, NULL};
	det_conv unit = {1, 1, 1, 1, 0, 1, 1, &one, NULL, NULL, 1, NULL, NULL};
	unsigned s = 7;
	int i, n, o, oy, ox;

	if (det_engine_new(&eng, NULL) || !eng || det_engine_bf16(eng, NULL)) {
		printf("detect: bfloat16 layers skipped (no oneDNN, or no avx512_bf16)\n");
		det_engine_free(eng);
		return;
	}
	c.eng = unit.eng = eng;
	for (i = 0; i < COUT * CIN * 9; i++)
		w[i] = (float)((s = s * 1103515245 + 12345) >> 16 & 255) / 64 - 2;
	for (i = 0; i < COUT; i++)
		b[i] = (float)i / 8;
	for (i = 0; i < 2 * H * W * CIN; i++) {
		uint32_t u;
		x[i] = (float)((s = s * 1103515245 + 12345) >> 16 & 255) / 32 - 4;
		memcpy(&u, &x[i], 4);
		xb[i] = (uint16_t)(u >> 16);  /* exact: x has 8 significant bits */
	}
	CHECK(!det_conv_run_nhwc(&c, x, 2, H, W, y, 0, 1, NULL));
	CHECK(!det_conv_run_bf16(&c, xb, 2, H, W, yb, 0, 1, DET_IN_BF16 | DET_OUT_BF16, NULL));
	for (i = 0; i < 2 * H * W * COUT; i++) {
		uint32_t u = (uint32_t)yb[i] << 16;
		memcpy(&y2[i], &u, 4);
	}
	for (n = 0; n < 2; n++)
		for (oy = 0; oy < H; oy++)
			for (ox = 0; ox < W; ox++)
				for (o = 0; o < COUT; o++) {
					size_t at = ((size_t)(n * H + oy) * W + ox) * COUT + o;
					double sum = res5_like(w, b, x, 0, n, oy, ox, o);
					CHECKF(NEAR(y[at], sum), "bf16 conv [%d][%d][%d][%d]: %g, summed %g", n, oy, ox, o, y[at], sum);
					CHECKF(fabs(y2[at] - sum) <= fabs(sum) / 256 + 1e-6, "bf16 conv, bf16 maps [%d][%d][%d][%d]: %g, summed %g",
					       n, oy, ox, o, y2[at], sum);
				}
	CHECK(!det_conv_run_nhwc(&unit, &tiny_x, 1, 1, 1, &tiny_y, 0, 0, NULL));
	CHECKF(tiny_y == 1.0f, "bf16 1x1 of 1 + 2^-10: %.9g", tiny_y);
	unit.bf16 = 0;
	CHECKF(det_conv_run_bf16(&unit, xb, 1, 1, 1, yb, 0, 0, DET_IN_BF16, NULL) == LX_EMODEL, "bf16 maps on a float32 layer");
	det_engine_free(eng);
}

/* det_max and det_quantize_u8 by hand: the largest value in the tail after the sixteen-wide part, and
 * rounding to nearest with ties up, negatives to 0, at most 255. */
static void quantize(void)
{
	float x[37];
	const float in[6] = {0.49f, 0.5f, 1.5f, 254.6f, -3.0f, 300.0f};
	const unsigned char want[6] = {0, 1, 2, 255, 0, 255};
	unsigned char q[6];

	for (int i = 0; i < 37; i++)
		x[i] = (float)(i % 7) - 3;
	x[36] = 9.5f;
	CHECKF(det_max(x, 37) == 9.5f, "det_max with the largest last: %g", det_max(x, 37));
	CHECKF(det_max(x, 36) == 3.0f, "det_max of 36: %g", det_max(x, 36));
	det_quantize_u8(in, 6, 1.0f, q);
	for (int i = 0; i < 6; i++)
		CHECKF(q[i] == want[i], "det_quantize_u8 of %g: %d, by hand %d", in[i], q[i], want[i]);
}

/* A layer in int8 (det_conv.wq), NHWC, dilated as res5's 3x3: with weights that are whole multiples of
 * their channel's largest / 127 and inputs whole multiples of their largest / 255 the quantized sums are exact,
 * so the output is the sums written out directly (with and without the shortcut added); an input that is not
 * is rounded to its 256 levels, and a negative one (the layer's input follows a ReLU) is taken as 0. */
static void conv_int8(void)
{
	enum { CIN = RCIN, COUT = RCOUT, H = RH, W = RW };
	static float w[COUT * CIN * 9], x[2 * H * W * CIN], y[2 * H * W * COUT];
	static signed char wq[COUT * CIN * 9];
	float b[COUT], ws[COUT], one = 1, ones = 127, xu[4] = {2.55f, 0.014f, 0.016f, -3.0f}, yu[4];
	signed char oneq = 127;
	det_engine *eng;
	det_conv c = {CIN, COUT, 3, 1, 2, 2, 1, w, b, NULL, 0, wq, ws};
	det_conv unit = {1, 1, 1, 1, 0, 1, 1, &one, NULL, NULL, 0, &oneq, &ones};
	unsigned s = 11;
	int i, n, o, oy, ox, acc;

	if (det_engine_new(&eng, NULL) || !eng || det_engine_int8(eng, NULL)) {
		printf("detect: int8 layers skipped (no oneDNN, or no avx512_vnni)\n");
		det_engine_free(eng);
		return;
	}
	c.eng = unit.eng = eng;
	for (o = 0; o < COUT; o++) {
		float u = (float)(o + 1) / 64;  /* the channel's step: its largest |w| is 127 steps */
		ws[o] = 127.0f / (127 * u);
		b[o] = (float)o / 8 - 1;
		for (i = 0; i < CIN * 9; i++) {
			int k = i == 5 ? (o & 1 ? -127 : 127) : (int)((s = s * 1103515245 + 12345) >> 16 & 255) - 128;
			k = k < -127 ? -127 : k;
			wq[o * CIN * 9 + i] = (signed char)k;
			w[o * CIN * 9 + i] = (float)k * u;
		}
	}
	for (i = 0; i < 2 * H * W * CIN; i++)
		x[i] = (float)((s = s * 1103515245 + 12345) >> 16 & 255) / 32;  /* 0 to 255 / 32 */
	x[17] = 255.0f / 32;
	for (acc = 0; acc < 2; acc++) {
		for (i = 0; i < 2 * H * W * COUT; i++)
			y[i] = 1;
		CHECK(!det_conv_run_nhwc(&c, x, 2, H, W, y, acc, 1, NULL));
		for (n = 0; n < 2; n++)
			for (oy = 0; oy < H; oy++)
				for (ox = 0; ox < W; ox++)
					for (o = 0; o < COUT; o++) {
						size_t at = ((size_t)(n * H + oy) * W + ox) * COUT + o;
						double sum = res5_like(w, b, x, acc, n, oy, ox, o);
						CHECKF(NEAR(y[at], sum), "int8 conv (acc %d) [%d][%d][%d][%d]: %g, summed %g", acc, n, oy,
						       ox, o, y[at], sum);
					}
	}
	/* largest 2.55: 255 levels of 0.01, so 0.014 is 1 level and 0.016 is 2 */
	CHECK(!det_conv_run_nhwc(&unit, xu, 1, 1, 4, yu, 0, 0, NULL));
	CHECKF(fabsf(yu[0] - 2.55f) < 1e-6f && fabsf(yu[1] - 0.01f) < 1e-6f && fabsf(yu[2] - 0.02f) < 1e-6f &&
	       yu[3] == 0.0f, "int8 1x1 of 2.55, 0.014, 0.016, -3: %.9g %.9g %.9g %.9g", yu[0], yu[1], yu[2], yu[3]);
	CHECKF(det_conv_run(&unit, xu, 1, 1, 4, yu, 0, 0, NULL) == LX_EMODEL, "int8 layer on NCHW maps");
	det_engine_free(eng);
}

int main(void)
{
	anchors();
	roipool();
	nms();
	maxpool();
	resize_size();
	conv();
	conv_bf16();
	quantize();
	conv_int8();
	golden_cases("tests/fixtures/frcnn-tiny");
	golden_cases("tests/fixtures/frcnn-groups");
	return check_done("detect");
}

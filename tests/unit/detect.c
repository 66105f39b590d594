/*
 * tests/unit/detect.c - the detector (lib/detect/) stage by stage against the demo's own outputs on the four
 * photos of tests/fixtures/frcnn-tiny (golden.safetensors), and the stages the golden file does not hold
 * (anchors, RoIPool, NMS, the max-pool, the resize arithmetic, the convolution) against hand calculations.
 * Run from the top of the tree.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "detect/detect_impl.h"
#include "lx_fmt.h"

#define FIX "tests/fixtures/frcnn-tiny"

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

static void golden_cases(void)
{
	lx_detector *d;
	lx_st *g;
	lx_err e;

	if (lx_detector_open(&d, FIX, &e) || lx_st_open(&g, FIX "/golden.safetensors", &e)) {
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

		snprintf(path, sizeof path, FIX "/images/%s", images[k]);
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

int main(void)
{
	golden_cases();
	return check_done("detect");
}

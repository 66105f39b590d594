/* detect_precision.c - what lx-detect's --bf16 and --int8 cost in accuracy: each photo through the float32
 * detector and through one in the lower precision, compared stage by stage.
 * usage: detect_precision --bf16|--int8 MODEL_DIR IMAGE...
 * Only res5 changes precision, so both detectors pool the same proposals (checked: the proposals must be
 * equal) and the differences are res5's. For each photo, on stdout:
 *   features  the proposals' res5 features (roi_pooled): max |difference| / max |float32 feature|, and the mean
 *             |difference| / mean |float32 feature|
 *   logits    the class logits: the same two ratios
 *   classes   the proposals whose best class (background included) is the same
 *   boxes     of the float32 detections, those with a detection of the same class within 1 pixel (the one
 *             with the nearest features where several are), and among them the largest difference of their
 *             features / max |feature| and of their object score.
 * A last line sums them over the photos. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_detect.h"
#include "lx_image.h"

typedef struct {
	double max_d, max_a, sum_d, sum_a;
} diff;

static void diff_add(diff *d, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double x = fabs((double)a[i] - b[i]);
		d->max_d = x > d->max_d ? x : d->max_d;
		d->max_a = fabs(a[i]) > d->max_a ? fabs(a[i]) : d->max_a;
		d->sum_d += x;
		d->sum_a += fabs(a[i]);
	}
}

static int argmax(const float *v, int n)
{
	int best = 0;

	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

typedef struct {
	diff feat, logit;
	long props, same_class, dets, matched;
	double det_feat, det_conf;  /* worst among matched detections */
} tally;

/* The largest |difference| of detection i of a and j of b's features. */
static double feat_diff(const lx_detection *a, int i, const lx_detection *b, int j)
{
	double m = 0;

	for (int k = 0; k < a->dim; k++)
		m = fmax(m, fabs((double)a->feats[(size_t)i * a->dim + k] - b->feats[(size_t)j * a->dim + k]));
	return m;
}

/* The float32 detections a found in b: a detection of the same class with its box within 1 pixel, the one
 * with the nearest features where several are (with random weights many boxes of a class coincide). */
static void match(tally *t, const lx_detection *a, const lx_detection *b)
{
	double scale = 0;

	for (size_t i = 0; i < (size_t)a->n * a->dim; i++)
		scale = fabs(a->feats[i]) > scale ? fabs(a->feats[i]) : scale;
	for (int i = 0; i < a->n; i++) {
		int best = -1;
		double bf = INFINITY;
		t->dets++;
		for (int j = 0; j < b->n; j++) {
			double d = 0, f;
			if (b->obj_ids[j] != a->obj_ids[i])
				continue;
			for (int k = 0; k < 4; k++)
				d = fmax(d, fabs((double)a->boxes[4 * i + k] - b->boxes[4 * j + k]));
			if (d <= 1.0 && (f = feat_diff(a, i, b, j)) < bf) {
				bf = f;
				best = j;
			}
		}
		if (best < 0)
			continue;
		t->matched++;
		t->det_feat = fmax(t->det_feat, bf / scale);
		t->det_conf = fmax(t->det_conf, fabs((double)a->obj_conf[i] - b->obj_conf[best]));
	}
}

static void print(const char *name, const tally *t)
{
	printf("%s: features max %.4f mean %.4f, logits max %.4f mean %.4f, classes %ld/%ld, boxes %ld/%ld "
	       "(features %.4f, object score %.4f)\n",
	       name, t->feat.max_d / t->feat.max_a, t->feat.sum_d / t->feat.sum_a, t->logit.max_d / t->logit.max_a,
	       t->logit.sum_d / t->logit.sum_a, t->same_class, t->props, t->matched, t->dets, t->det_feat, t->det_conf);
}

int main(int argc, char **argv)
{
	lx_detector *a, *b;
	lx_err e;
	tally all;
	int bf16 = argc > 1 && !strcmp(argv[1], "--bf16"), int8 = argc > 1 && !strcmp(argv[1], "--int8");

	if (argc < 4 || !(bf16 || int8)) {
		fprintf(stderr, "usage: detect_precision --bf16|--int8 MODEL_DIR IMAGE...\n");
		return 2;
	}
	if (lx_detector_open(&a, argv[2], &e) || lx_detector_open(&b, argv[2], &e) ||
	    (bf16 ? lx_detector_bf16(b, &e) : lx_detector_int8(b, &e))) {
		fprintf(stderr, "detect_precision: %s\n", e.msg);
		return 3;
	}
	memset(&all, 0, sizeof all);
	for (int f = 3; f < argc; f++) {
		lx_image *im;
		lx_detection ra, rb;
		lx_detect_trace ta, tb;
		tally t;
		int K = lx_detector_config(a)->classes + 1;

		if (lx_image_load(&im, argv[f], &e) || lx_detect(a, im, &ra, &ta, &e) || lx_detect(b, im, &rb, &tb, &e)) {
			fprintf(stderr, "detect_precision: %s: %s\n", argv[f], e.msg);
			return 1;
		}
		if (ta.p != tb.p || memcmp(ta.proposals, tb.proposals, (size_t)ta.p * 4 * sizeof(float))) {
			fprintf(stderr, "detect_precision: %s: the proposals differ\n", argv[f]);
			return 1;
		}
		memset(&t, 0, sizeof t);
		diff_add(&t.feat, ta.roi_pooled, tb.roi_pooled, (size_t)ta.p * ra.dim);
		diff_add(&t.logit, ta.obj_logits, tb.obj_logits, (size_t)ta.p * K);
		for (int i = 0; i < ta.p; i++)
			t.same_class += argmax(ta.obj_logits + (size_t)i * K, K) == argmax(tb.obj_logits + (size_t)i * K, K);
		t.props = ta.p;
		match(&t, &ra, &rb);
		print(argv[f], &t);
		all.feat.max_d = fmax(all.feat.max_d, t.feat.max_d);
		all.feat.max_a = fmax(all.feat.max_a, t.feat.max_a);
		all.feat.sum_d += t.feat.sum_d;
		all.feat.sum_a += t.feat.sum_a;
		all.logit.max_d = fmax(all.logit.max_d, t.logit.max_d);
		all.logit.max_a = fmax(all.logit.max_a, t.logit.max_a);
		all.logit.sum_d += t.logit.sum_d;
		all.logit.sum_a += t.logit.sum_a;
		all.props += t.props;
		all.same_class += t.same_class;
		all.dets += t.dets;
		all.matched += t.matched;
		all.det_feat = fmax(all.det_feat, t.det_feat);
		all.det_conf = fmax(all.det_conf, t.det_conf);
		lx_detection_destroy(&ra);
		lx_detection_destroy(&rb);
		lx_detect_trace_destroy(&ta);
		lx_detect_trace_destroy(&tb);
		lx_image_free(im);
	}
	print("all", &all);
	lx_detector_free(a);
	lx_detector_free(b);
	return 0;
}

/* bench_detect.c - the detector's seconds per photo, model load apart, after one warm-up photo (primitives made).
 * usage: bench_detect [--bf16 | --int8] MODEL_DIR IMAGE...   (res5 in bfloat16, lx_detector_bf16, or in int8,
 * lx_detector_int8)
 * One line per photo on stdout: "file h w resized_h resized_w proposals detections seconds cpu_seconds" (the
 * process's CPU time: on a shared machine it moves less with the load than the wall clock); the load time and
 * the warm-up on stderr. The backend line says which convolutions ran. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lx_detect.h"
#include "lx_image.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(lx_detector *d, const char *path, int show)
{
	lx_image *im;
	lx_detection r;
	lx_detect_trace t;
	lx_err e;
	double t0, c0;

	if (lx_image_load(&im, path, &e)) {
		fprintf(stderr, "bench_detect: %s\n", e.msg);
		return 1;
	}
	t0 = now();
	c0 = cpu();
	if (lx_detect(d, im, &r, &t, &e)) {
		fprintf(stderr, "bench_detect: %s: %s\n", path, e.msg);
		lx_image_free(im);
		return 1;
	}
	if (show)
		printf("%s %d %d %d %d %d %d %.3f %.3f\n", path, im->h, im->w, t.h, t.w, t.p, r.n, now() - t0, cpu() - c0);
	lx_detection_destroy(&r);
	lx_detect_trace_destroy(&t);
	lx_image_free(im);
	return 0;
}

int main(int argc, char **argv)
{
	lx_detector *d;
	lx_err e;
	double t0 = now();
	int bf16 = argc > 1 && !strcmp(argv[1], "--bf16"), int8 = argc > 1 && !strcmp(argv[1], "--int8");

	argc -= bf16 + int8;
	argv += bf16 + int8;
	if (argc < 3) {
		fprintf(stderr, "usage: bench_detect [--bf16 | --int8] MODEL_DIR IMAGE...\n");
		return 2;
	}
	if (lx_detector_open(&d, argv[1], &e) || (bf16 && lx_detector_bf16(d, &e)) ||
	    (int8 && lx_detector_int8(d, &e))) {
		fprintf(stderr, "bench_detect: %s\n", e.msg);
		return 3;
	}
#ifdef LX_DNNL
	fprintf(stderr, "load %.2f s, convolutions through oneDNN%s\n", now() - t0,
	        bf16 ? " (res5 in bfloat16)" : int8 ? " (res5 in int8)" : "");
#else
	fprintf(stderr, "load %.2f s, convolutions as im2col + BLAS sgemm\n", now() - t0);
#endif
	t0 = now();
	if (run(d, argv[2], 0))
		return 1;
	fprintf(stderr, "warm-up %.2f s\n", now() - t0);
	for (int i = 2; i < argc; i++)
		if (run(d, argv[i], 1))
			return 1;
	lx_detector_free(d);
	return 0;
}

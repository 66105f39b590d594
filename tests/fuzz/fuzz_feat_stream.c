/* libFuzzer target: feature files that are streams written by lx-featpack (lib/feat_stream.c), read in
 * order, scanned for the index, and read back at a position. */
#include "fuzz_file.h"
#include "lx_feat.h"

static lx_status scan_cb(void *ctx, const char *id, size_t len, lx_feat_pos pos, lx_err *e)
{
	(void)id;
	(void)len;
	(void)e;
	*(lx_feat_pos *)ctx = pos;
	return LX_OK;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *path = fuzz_write(0, "feats.mp", data, size);
	lx_feat_file *f;
	lx_feat_image im;
	lx_feat_pos last = {0, 0};
	lx_err e;
	int got, n = 0;

	lx_feat_image_init(&im);
	if (lx_feat_open(&f, path, &e) == LX_OK) {
		while (n++ < 64 && lx_feat_next(f, &im, &got, &e) == LX_OK && got)
			;
		lx_feat_free(f);
	}
	if (lx_feat_open(&f, path, &e) == LX_OK) {
		if (lx_feat_scan(f, scan_cb, &last, &e) == LX_OK && last.line)
			lx_feat_read_at(f, last, &im, &e);
		lx_feat_free(f);
	}
	lx_feat_image_destroy(&im);
	return 0;
}

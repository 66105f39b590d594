/* libFuzzer target: the obj36 and BUTD TSV readers (every line decoded, the scan the index makes, reading
 * back at each position) and the base64 decoder on the raw input. */
#include "fuzz_file.h"
#include "lx_feat.h"

static lx_status scan_cb(void *ctx, const char *id, size_t len, lx_feat_pos pos, lx_err *e)
{
	lx_feat_pos *last = ctx;

	(void)id;
	(void)len;
	(void)e;
	*last = pos;
	return LX_OK;
}

static void base64(const unsigned char *data, size_t size)
{
	size_t cap = lx_base64_size((const char *)data, size), bad = 0;
	unsigned char *out = malloc(cap + 1);
	long n;

	if (!out)
		abort();
	n = lx_base64_decode((const char *)data, size, out, &bad);
	if (n > (long)cap || (n < 0 && bad > size))
		abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *path = fuzz_write(0, "feats.tsv", data, size);
	lx_feat_file *f;
	lx_feat_image im;
	lx_feat_pos last = {0, 0};
	lx_err e;
	int got, n = 0;

	base64(data, size);
	lx_feat_image_init(&im);
	if (lx_feat_open(&f, path, &e) == LX_OK) {
		while (n++ < 64 && lx_feat_next(f, &im, &got, &e) == LX_OK && got) {
			float pos[4 * 64];
			if (im.n <= 64)
				lx_feat_normalize(&im, im.n, 0, pos, &e);
		}
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

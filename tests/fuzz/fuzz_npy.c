/* libFuzzer target: the .npy reader (a pickled dict, or MMF's features beside FILE_info.npy). The input is
 * the .npy; if it holds the separator "\n--info--\n", what follows is FILE_info.npy. */
#include "fuzz_file.h"
#include "lx_feat.h"

static const char sep[] = "\n--info--\n";

static const unsigned char *find_sep(const unsigned char *data, size_t size)
{
	size_t i;

	for (i = 0; i + sizeof sep - 1 <= size; i++)
		if (memcmp(data + i, sep, sizeof sep - 1) == 0)
			return data + i;
	return NULL;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const unsigned char *cut = find_sep(data, size);
	size_t n = cut ? (size_t)(cut - data) : size;
	const char *path = fuzz_write(0, "img.npy", data, n);
	lx_feat_file *f;
	lx_feat_image im;
	lx_err e;
	int got;

	if (cut)
		fuzz_write(1, "img_info.npy", cut + sizeof sep - 1, size - n - (sizeof sep - 1));
	else
		unlink(fuzz_write(1, "img_info.npy", "", 0));
	lx_feat_image_init(&im);
	if (lx_feat_open(&f, path, &e) == LX_OK) {
		if (lx_feat_next(f, &im, &got, &e) == LX_OK && got && (im.n < 0 || im.dim < 0))
			abort();
		lx_feat_free(f);
	}
	lx_feat_image_destroy(&im);
	return 0;
}

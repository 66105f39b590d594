/* libFuzzer target: the .npz reader (zip members, stored or deflated; the .npy inside; MILVLG's pickled
 * info). */
#include "fuzz_file.h"
#include "lx_feat.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *path = fuzz_write(0, "img.npz", data, size);
	lx_feat_file *f;
	lx_feat_image im;
	lx_err e;
	int got;

	lx_feat_image_init(&im);
	if (lx_feat_open(&f, path, &e) == LX_OK) {
		if (lx_feat_next(f, &im, &got, &e) == LX_OK && got && (im.n < 0 || im.dim < 0))
			abort();
		lx_feat_free(f);
	}
	lx_feat_image_destroy(&im);
	return 0;
}

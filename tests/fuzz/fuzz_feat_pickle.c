/* libFuzzer target: lx-featpack's pickle reader (lib/fmt/pickle.c with lib/feat/feat_pickle.c's numpy rules),
 * then the image and ids taken from the dict it made. */
#include <stdlib.h>

#include "feat/feat_impl.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	lx_pickle *pk = NULL;
	lx_feat_image im;
	lx_pk *o;
	lx_err e;

	lx_feat_image_init(&im);
	if (feat_unpickle(data, size, "fuzz", &pk, &o, &e) == LX_OK && o && o->type == LX_PK_DICT) {
		if (feat_dict_image(o, NULL, &im, "fuzz", &e) == LX_OK)
			feat_dict_ids(o, &im, "fuzz", &e);
	}
	lx_feat_image_destroy(&im);
	lx_pickle_free(pk);
	return 0;
}

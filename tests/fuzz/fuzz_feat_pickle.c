/* libFuzzer target: lx-featpack's pickle reader (lib/feat_pickle.c: the subset np.save uses for dicts),
 * then the image and ids taken from the dict it made. */
#include <stdlib.h>

#include "feat/feat_impl.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	msgpack_zone *z = msgpack_zone_new(4096);
	lx_feat_image im;
	pk_obj *o;
	lx_err e;

	if (!z)
		abort();
	lx_feat_image_init(&im);
	if (feat_unpickle(data, size, z, "fuzz", &o, &e) == LX_OK && o && o->t == PK_DICT) {
		if (feat_dict_image(o, NULL, &im, "fuzz", &e) == LX_OK)
			feat_dict_ids(o, &im, "fuzz", &e);
	}
	lx_feat_image_destroy(&im);
	msgpack_zone_free(z);
	return 0;
}

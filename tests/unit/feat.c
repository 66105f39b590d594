/* Unit tests of lib/feat/image.c: box normalisation. */
#include <string.h>

#include "lx_feat.h"
#include "check.h"

static void normalisation(void)
{
	lx_feat_image im;
	float pos[8];
	lx_err e;

	lx_feat_image_init(&im);
	CHECK(lx_feat_image_set_id(&im, "img", 3) && lx_feat_image_reserve(&im, 2, 1));
	im.img_w = 500;
	im.img_h = 333;
	im.n = 2;
	/* 250/500 = 0.5 and 333/333 = 1 exactly; 100/333 in float32 is 0x3e99c0f6 (numpy: np.float32(100) / np.float32(333)) */
	memcpy(im.boxes, (float[8]){250, 100, 500, 333, 0, 0, 1, 1}, sizeof pos);
	CHECK(lx_feat_normalize(&im, 2, 0, pos, &e) == LX_OK);
	CHECK(pos[0] == 0.5f && pos[2] == 1.0f && pos[3] == 1.0f && pos[4] == 0.0f);
	{
		uint32_t bits;
		memcpy(&bits, &pos[1], 4);
		CHECK(bits == 0x3e99c0f6u);
	}
	im.boxes[2] = 500.01f; /* 1.00002 > 1 + 1e-5 */
	CHECK(lx_feat_normalize(&im, 2, 0, pos, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, " (img_id img): box 0 x2 is 500.01001 pixels, outside [0, 1] after normalisation "
	                    "(image 500x333)") == 0);
	im.boxes[2] = 500.004f; /* 1.000008 < 1 + 1e-5: the authors' assert lets it through */
	CHECK(lx_feat_normalize(&im, 2, 0, pos, &e) == LX_OK);
	im.boxes[2] = 500;
	CHECK(lx_feat_normalize(&im, 1, 0, pos, &e) == LX_OK); /* only the kept boxes are checked */
	im.boxes[4] = -0.01f;
	CHECK(lx_feat_normalize(&im, 2, 0, pos, &e) == LX_EINPUT);
	lx_feat_image_destroy(&im);
}

int main(void)
{
	normalisation();
	return check_done("feat");
}

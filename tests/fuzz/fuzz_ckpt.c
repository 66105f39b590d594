/*
 * libFuzzer target: the checkpoint reader. Each input is run through the pickle interpreter on its own and
 * through lx_ckpt_open_mem (zip or legacy layout). Built and run by `make fuzz`; seeds in seeds/fuzz_ckpt.
 */
#include <stdlib.h>

#include "lx_ckpt.h"
#include "ckpt/torch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_storages s = {0};
	lx_pickle *p = ckpt_torch_pickle(&s);
	lx_ckpt *c;
	lx_pk *root;
	lx_err e;
	lx_tensor t;
	size_t used;
	volatile unsigned char sink = 0;
	int i;

	lx_pickle_load(p, data, size, "fuzz", &root, &used, &e);
	lx_pickle_free(p);
	free(s.v);
	if (lx_ckpt_open_mem(&c, data, size, "fuzz", &e) == LX_OK) {
		for (i = 0; i < lx_ckpt_count(c); i++) {
			lx_ckpt_name(c, i, &t);
			if (t.numel) /* touch the last byte: ASan catches a tensor that runs past the input */
				sink ^= ((const unsigned char *)t.data)[t.numel * (int64_t)lx_dtype_size(t.dtype) - 1];
		}
		lx_ckpt_free(c);
	}
	(void)sink;
	return 0;
}

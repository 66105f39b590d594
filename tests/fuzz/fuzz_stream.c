/* libFuzzer target: the record reader and the tensor decoder on arbitrary bytes. */
#include <stdio.h>

#include "lx.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const char *keys[] = {"input_ids", "visual_feats", "visual_pos", "attention_mask", "nd", "x"};
	FILE *f = fmemopen((void *)data, size, "rb");
	lx_reader *r;
	lx_record *rec;
	lx_err e;
	size_t i;

	if (!f)
		return 0;
	r = lx_reader_new(f, "fuzz");
	while (lx_reader_next(r, &rec, &e) == LX_OK && rec) {
		for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			lx_tensor t;
			int present;
			if (lx_record_tensor(rec, keys[i], &t, &present, &e) == LX_OK && present && t.numel < (1 << 20)) {
				static float buf[1 << 20];
				if (lx_dtype_is_float(t.dtype))
					lx_tensor_to_f32(&t, buf, keys[i], &e);
				else
					lx_tensor_to_i32(&t, (int32_t *)buf, keys[i], &e);
			}
		}
		lx_record_add_int(rec, "x", 1);
		lx_record_free(rec);
	}
	lx_reader_free(r);
	fclose(f);
	return 0;
}

/* libFuzzer target: the record reader and the tensor decoder on arbitrary bytes; past a value that is no
 * map the reader goes on (as --keep-going does); each record's fields are then replaced, removed, reverted,
 * marked as an error and written. */
#include <stdio.h>
#include <stdlib.h>

#include "lx.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const char *keys[] = {"input_ids", "visual_feats", "visual_pos", "attention_mask", "nd", "x"};
	FILE *f = fmemopen((void *)data, size, "rb");
	lx_reader *r;
	lx_record *rec;
	lx_err e;
	size_t i;
	static FILE *null;
	static lx_writer *w;
	lx_status st;
	int had;

	if (!f)
		return 0;
	if (!null && (!(null = fopen("/dev/null", "wb")) || !(w = lx_writer_new(null, "null"))))
		abort();
	r = lx_reader_new(f, "fuzz");
	while ((st = lx_reader_next(r, &rec, &e)) == LX_OK || lx_reader_resumable(r)) {
		if (st) {
			if (!(rec = lx_record_error_new(e.msg)) || !lx_record_is_error(rec))
				abort();
			lx_writer_put(w, rec, &e);
			lx_record_free(rec);
			continue;
		}
		if (!rec)
			break;
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
		had = lx_record_get(rec, "x") != NULL;
		lx_record_add_int(rec, "x", 1);
		lx_record_add_int(rec, "input_ids", 2);
		lx_record_remove(rec, "visual_feats");
		lx_writer_put(w, rec, &e);
		lx_record_revert(rec);
		if ((lx_record_get(rec, "x") != NULL) != had || lx_record_set_error(rec, "bad") || !lx_record_is_error(rec))
			abort();
		lx_writer_put(w, rec, &e);
		lx_record_free(rec);
	}
	lx_reader_free(r);
	fclose(f);
	return 0;
}

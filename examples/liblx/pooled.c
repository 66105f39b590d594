/* pooled.c: adds pooled_output to every record of standard input with the model in DIR, one record at a
 * time, and writes the records to standard output: lx-encode without batching or options (liblx(3)). */
#include <stdlib.h>

#include <lx.h>

enum { F32 = 0, I32 = 1, NEEDED = 2 };

/* Copies field key of rec into a new array of floats (int32 with I32) and its element count into *n; leaves
 * *out NULL when the record has no such field, an error if the field is NEEDED. */
static lx_status field(const lx_record *rec, const char *key, int how, void **out, int64_t *n, lx_err *e)
{
	lx_tensor t;
	int present = 1;
	lx_status st = lx_record_tensor(rec, key, &t, how & NEEDED ? NULL : &present, e);

	*out = NULL;
	if (st || !present)
		return st;
	*n = t.numel;
	if (!(*out = malloc((size_t)t.numel * 4 + 4)))
		return lx_errf(e, LX_EIO, "field %s: out of memory", key);
	return how & I32 ? lx_tensor_to_i32(&t, *out, key, e) : lx_tensor_to_f32(&t, *out, key, e);
}

int main(int argc, char **argv)
{
	lx_err e = {0};
	lx_model *m = NULL;
	lx_encoder *enc = NULL;
	lx_reader *r = lx_reader_new(stdin, "stdin");
	lx_writer *w = lx_writer_new(stdout, "stdout");
	lx_record *rec;
	lx_status st;

	if (argc != 2) {
		fprintf(stderr, "usage: pooled DIR\n");
		return 2;
	}
	if (!(st = lx_model_open(&m, argv[1], &e)))
		enc = lx_encoder_new(m, 0);
	while (!st && !(st = lx_reader_next(r, &rec, &e)) && rec) {
		int64_t T = 0, N = 0, k, H = lx_model_config(m)->hidden_size;
		void *ids, *types = NULL, *mask = NULL, *feats = NULL, *pos = NULL, *vmask = NULL;
		lx_outputs o;

		if (!(st = field(rec, "input_ids", I32 | NEEDED, &ids, &T, &e)) &&
		    !(st = field(rec, "token_type_ids", I32, &types, &k, &e)) &&
		    !(st = field(rec, "attention_mask", F32, &mask, &k, &e)) &&
		    !(st = field(rec, "visual_feats", F32 | NEEDED, &feats, &k, &e)) &&
		    !(st = field(rec, "visual_pos", F32 | NEEDED, &pos, &N, &e)) &&
		    !(st = field(rec, "visual_attention_mask", F32, &vmask, &k, &e))) {
			lx_example ex = {.T = (int)T, .N = (int)(N / 4), .input_ids = ids, .token_type_ids = types,
			                 .attention_mask = mask, .visual_feats = feats, .visual_pos = pos,
			                 .visual_mask = vmask};
			if (!(st = lx_encode(enc, &ex, 1, &o, &e)) &&
			    !(st = lx_record_add_tensor(rec, "pooled_output", LX_F32, 1, &H, o.pooled)))
				st = lx_writer_put(w, rec, &e);
		}
		free(ids), free(types), free(mask), free(feats), free(pos), free(vmask);
		lx_record_free(rec);
	}
	if (!st)
		st = lx_writer_flush(w, &e);
	if (st)
		fprintf(stderr, "pooled: %s\n", e.msg);
	lx_encoder_free(enc);
	lx_model_free(m);
	lx_writer_free(w);
	lx_reader_free(r);
	return (int)st;
}

/* lx-encode - run LXMERT's three encoders over a stream of records (lx-encode(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"

static const char *tool = "lx-encode";

static void usage(FILE *f)
{
	fprintf(f, "usage: %s -m DIR [--attentions] [--hidden-states] [--batch N] [--threads N] [--progress]\n"
	           "Reads records (input_ids, visual_feats, visual_pos, ...) on stdin and writes them on stdout\n"
	           "with language_output, vision_output and pooled_output added. See lx-encode(1).\n",
	        tool);
}

/* One record in the batch and the inputs decoded from it, in buffers kept from batch to batch. */
typedef struct {
	lx_record *rec;
	int32_t *ids, *types;
	float *amask, *feats, *pos, *vmask;
	size_t cap_t, cap_n;
} slot;

static int reserve(slot *s, size_t T, size_t N, size_t F)
{
	if (T > s->cap_t) {
		free(s->ids);
		free(s->types);
		free(s->amask);
		s->ids = malloc(T * sizeof *s->ids);
		s->types = malloc(T * sizeof *s->types);
		s->amask = malloc(T * sizeof *s->amask);
		if (!s->ids || !s->types || !s->amask)
			return -1;
		s->cap_t = T;
	}
	if (N > s->cap_n) {
		free(s->feats);
		free(s->pos);
		free(s->vmask);
		s->feats = malloc(N * F * sizeof *s->feats);
		s->pos = malloc(N * 4 * sizeof *s->pos);
		s->vmask = malloc(N * sizeof *s->vmask);
		if (!s->feats || !s->pos || !s->vmask)
			return -1;
		s->cap_n = N;
	}
	return 0;
}

/* An optional per-position field of `len` values (a mask or token types): NULL if absent. */
static lx_status optional_vector(const lx_record *rec, const char *key, int64_t len, lx_tensor *t, int *present,
                                 lx_err *e)
{
	lx_status rc = lx_record_tensor(rec, key, t, present, e);

	if (rc || !*present)
		return rc;
	if (t->ndim != 1 || t->shape[0] != len)
		return lx_errf(e, LX_EINPUT, "field %s: shape must be [%lld] to match its side", key, (long long)len);
	return LX_OK;
}

/* Decodes and checks the inputs of one record into s and ex. */
static lx_status decode(const lx_config *c, slot *s, lx_example *ex, lx_err *e)
{
	lx_tensor ids, feats, pos, t;
	int present;
	lx_status rc;
	int F = c->visual_feat_dim;

	memset(ex, 0, sizeof *ex);
	if ((rc = lx_record_tensor(s->rec, "input_ids", &ids, NULL, e)) ||
	    (rc = lx_record_tensor(s->rec, "visual_feats", &feats, NULL, e)) ||
	    (rc = lx_record_tensor(s->rec, "visual_pos", &pos, NULL, e)))
		return rc;
	if (ids.ndim != 1)
		return lx_errf(e, LX_EINPUT, "field input_ids: rank %d, expected a vector [T]", ids.ndim);
	if (lx_dtype_is_float(ids.dtype))
		return lx_errf(e, LX_EINPUT, "field input_ids: dtype %s, expected an integer dtype (<i4 or <i8)",
		               lx_dtype_numpy(ids.dtype));
	if (feats.ndim != 2)
		return lx_errf(e, LX_EINPUT, "field visual_feats: rank %d, expected a matrix [N, %d]", feats.ndim, F);
	if (!lx_dtype_is_float(feats.dtype))
		return lx_errf(e, LX_EINPUT, "field visual_feats: dtype %s, expected a float dtype (<f4)",
		               lx_dtype_numpy(feats.dtype));
	if (feats.shape[1] != F)
		return lx_errf(e, LX_EINPUT, "field visual_feats: %lld features per box, the model expects %d",
		               (long long)feats.shape[1], F);
	if (pos.ndim != 2 || pos.shape[1] != 4 || pos.shape[0] != feats.shape[0])
		return lx_errf(e, LX_EINPUT, "field visual_pos: shape must be [%lld, 4] to match visual_feats",
		               (long long)feats.shape[0]);
	if (!lx_dtype_is_float(pos.dtype))
		return lx_errf(e, LX_EINPUT, "field visual_pos: dtype %s, expected a float dtype (<f4)",
		               lx_dtype_numpy(pos.dtype));
	if (ids.shape[0] == 0)
		return lx_errf(e, LX_EINPUT, "field input_ids is empty");
	if (feats.shape[0] == 0)
		return lx_errf(e, LX_EINPUT, "field visual_feats has no boxes");
	if (ids.shape[0] > c->max_position_embeddings)
		return lx_errf(e, LX_EINPUT, "field input_ids: %lld tokens, more than max_position_embeddings %d",
		               (long long)ids.shape[0], c->max_position_embeddings);
	if (feats.shape[0] > (1 << 20))
		return lx_errf(e, LX_EINPUT, "field visual_feats: %lld boxes, more than %d", (long long)feats.shape[0],
		               1 << 20);
	ex->T = (int)ids.shape[0];
	ex->N = (int)feats.shape[0];
	if (reserve(s, (size_t)ex->T, (size_t)ex->N, (size_t)F))
		return lx_errf(e, LX_EIO, "out of memory");
	if ((rc = lx_tensor_to_i32(&ids, s->ids, "input_ids", e)) ||
	    (rc = lx_tensor_to_f32(&feats, s->feats, "visual_feats", e)) ||
	    (rc = lx_tensor_to_f32(&pos, s->pos, "visual_pos", e)))
		return rc;
	ex->input_ids = s->ids;
	ex->visual_feats = s->feats;
	ex->visual_pos = s->pos;
	if ((rc = optional_vector(s->rec, "token_type_ids", ex->T, &t, &present, e)))
		return rc;
	if (present) {
		if ((rc = lx_tensor_to_i32(&t, s->types, "token_type_ids", e)))
			return rc;
		ex->token_type_ids = s->types;
	}
	if ((rc = optional_vector(s->rec, "attention_mask", ex->T, &t, &present, e)))
		return rc;
	if (present) {
		lx_tensor_to_f32(&t, s->amask, "attention_mask", e);
		ex->attention_mask = s->amask;
	}
	if ((rc = optional_vector(s->rec, "visual_attention_mask", ex->N, &t, &present, e)))
		return rc;
	if (present) {
		lx_tensor_to_f32(&t, s->vmask, "visual_attention_mask", e);
		ex->visual_mask = s->vmask;
	}
	return lx_example_check(c, ex, e);
}

/* Adds the encoder's outputs to a record. */
static lx_status add_outputs(lx_record *rec, const lx_config *c, const lx_example *x, const lx_outputs *o, int want)
{
	int64_t T = x->T, N = x->N, H = c->hidden_size, nh = c->num_attention_heads;
	int64_t l = c->l_layers, r = c->r_layers, xl = c->x_layers;
	struct {
		const char *key;
		const float *data;
		int ndim;
		int64_t shape[4];
		int flag;
	} f[] = {
		{"language_output", o->lang, 2, {T, H}, 0},
		{"vision_output", o->visn, 2, {N, H}, 0},
		{"pooled_output", o->pooled, 1, {H}, 0},
		{"language_hidden_states", o->lang_hidden, 3, {l + xl, T, H}, LX_WANT_HIDDEN},
		{"vision_hidden_states", o->visn_hidden, 3, {r + xl, N, H}, LX_WANT_HIDDEN},
		{"language_attentions", o->attn_l, 4, {l, nh, T, T}, LX_WANT_ATTN},
		{"vision_attentions", o->attn_r, 4, {r, nh, N, N}, LX_WANT_ATTN},
		{"cross_encoder_attentions", o->attn_xl, 4, {xl, nh, T, N}, LX_WANT_ATTN},
		{"cross_encoder_vision_attentions", o->attn_xv, 4, {xl, nh, N, T}, LX_WANT_ATTN},
		{"cross_encoder_language_self_attentions", o->attn_xls, 4, {xl, nh, T, T}, LX_WANT_ATTN},
		{"cross_encoder_vision_self_attentions", o->attn_xvs, 4, {xl, nh, N, N}, LX_WANT_ATTN},
	};
	size_t i;
	lx_status rc;

	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (f[i].flag && !(want & f[i].flag))
			continue;
		if ((rc = lx_record_add_tensor(rec, f[i].key, LX_F32, f[i].ndim, f[i].shape, f[i].data)))
			return rc;
	}
	return LX_OK;
}

static int positive(const char *s, const char *opt)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == 0 || *end || v < 1 || v > 1 << 20) {
		fprintf(stderr, "%s: %s takes a whole number from 1 to %d, not '%s'\n", tool, opt, 1 << 20, s);
		exit(LX_EUSAGE);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'},  {"attentions", no_argument, 0, 'a'},
		{"hidden-states", no_argument, 0, 'H'}, {"batch", required_argument, 0, 'b'},
		{"threads", required_argument, 0, 't'}, {"progress", no_argument, 0, 'p'},
		{"help", no_argument, 0, 'h'},          {"version", no_argument, 0, 'V'},
		{0, 0, 0, 0},
	};
	const char *dir = NULL;
	int want = 0, batch = 16, threads = 0, force_progress = 0, ch, n, i, done = 0, stop = 0;
	lx_model *m = NULL;
	lx_encoder *enc;
	lx_reader *rd;
	lx_writer *wr;
	lx_progress prog;
	lx_err err = {0, ""}, bad = {0, ""};
	lx_status rc = LX_OK, bad_rc = LX_OK, read_rc = LX_OK;
	slot *slots;
	lx_example *ex;
	lx_outputs *outs;
	long bad_index = -1;
	char id[128];

	while ((ch = getopt_long(argc, argv, "m:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case 'a': want |= LX_WANT_ATTN; break;
		case 'H': want |= LX_WANT_HIDDEN; break;
		case 'b': batch = positive(optarg, "--batch"); break;
		case 't': threads = positive(optarg, "--threads"); break;
		case 'p': force_progress = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("%s %s\n", tool, LX_VERSION); return 0;
		default: usage(stderr); return LX_EUSAGE;
		}
	}
	if (!dir || optind != argc) {
		usage(stderr);
		return LX_EUSAGE;
	}
	if (threads)
		lx_set_threads(threads);
	if ((rc = lx_model_open(&m, dir, &err))) {
		fprintf(stderr, "%s: %s\n", tool, err.msg);
		return rc;
	}
	enc = lx_encoder_new(m, want);
	rd = lx_reader_new(stdin, "stdin");
	wr = lx_writer_new(stdout, "stdout");
	slots = calloc((size_t)batch, sizeof *slots);
	ex = calloc((size_t)batch, sizeof *ex);
	outs = calloc((size_t)batch, sizeof *outs);
	if (!enc || !rd || !wr || !slots || !ex || !outs) {
		fprintf(stderr, "%s: out of memory\n", tool);
		return LX_EIO;
	}
	lx_signals_init();
	lx_progress_init(&prog, stderr, tool, force_progress);
	while (!rc && !stop && !lx_interrupted()) {
		/* fill a batch; a bad record ends it, and the good ones before it are still written */
		for (n = 0; n < batch; n++) {
			lx_record *rec;
			if ((read_rc = lx_reader_next(rd, &rec, &bad)) || !rec) {
				stop = 1;
				break;
			}
			slots[n].rec = rec;
			if ((bad_rc = decode(lx_model_config(m), &slots[n], &ex[n], &bad))) {
				bad_index = lx_record_index(rec);
				lx_record_id(rec, id, sizeof id);
				lx_record_free(rec);
				stop = 1;
				break;
			}
		}
		if (n > 0)
			rc = lx_encode(enc, ex, n, outs, &err);
		for (i = 0; i < n; i++) {
			if (!rc && (rc = add_outputs(slots[i].rec, lx_model_config(m), &ex[i], &outs[i], want)))
				lx_errf(&err, rc, "out of memory");
			if (!rc)
				rc = lx_writer_put(wr, slots[i].rec, &err);
			lx_record_free(slots[i].rec);
			slots[i].rec = NULL;
		}
		done += n;
		lx_progress_tick(&prog, done);
	}
	lx_progress_end(&prog);
	if (!rc)
		rc = lx_writer_flush(wr, &err);
	if (rc) /* a failed write or no memory: the records after it are lost, say so */
		fprintf(stderr, "%s: %s\n", tool, err.msg);
	else if (read_rc && !lx_interrupted()) {
		rc = read_rc;
		fprintf(stderr, "%s: %s\n", tool, bad.msg);
	} else if (bad_rc) {
		rc = bad_rc;
		fprintf(stderr, "%s: stdin: record %ld%s%s%s: %s\n", tool, bad_index + 1, *id ? " (id " : "", id,
		        *id ? ")" : "", bad.msg);
	} else if (lx_interrupted()) {
		rc = LX_EINTR;
		fprintf(stderr, "%s: interrupted after %d records, all written\n", tool, done);
	}
	if (fclose(stdout) != 0 && !rc) {
		fprintf(stderr, "%s: stdout: write failed\n", tool);
		rc = LX_EIO;
	}
	for (i = 0; i < batch; i++) {
		free(slots[i].ids);
		free(slots[i].types);
		free(slots[i].amask);
		free(slots[i].feats);
		free(slots[i].pos);
		free(slots[i].vmask);
	}
	free(slots);
	free(ex);
	free(outs);
	lx_writer_free(wr);
	lx_reader_free(rd);
	lx_encoder_free(enc);
	lx_model_free(m);
	return rc;
}

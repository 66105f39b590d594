/* lx-encode - run LXMERT's three encoders over a stream of records (lx-encode(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"

static const char *tool = "lx-encode";

static void usage(FILE *f)
{
	fprintf(f, "usage: %s -m DIR [--attentions] [--hidden-states] [--batch N] [--threads N] [--keep-going]\n"
	           "       [--progress]\n"
	           "Reads records (input_ids, visual_feats, visual_pos, ...) on stdin and writes them on stdout\n"
	           "with language_output, vision_output and pooled_output added. See lx-encode(1).\n",
	        tool);
}

/* One record in the batch and the inputs decoded from it, in buffers kept from batch to batch. */
typedef struct {
	lx_record *rec;
	int encode;             /* 1: an example to encode; 0: an error record passed through */
	lx_example_data in;
} slot;

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

/* The run: options, the model, and the batch in hand. */
typedef struct {
	int want, batch, keep_going;
	const lx_config *c;
	lx_reader *rd;
	lx_writer *wr;
	slot *slots;
	lx_example *todo;       /* the examples of the batch, without its error records */
	lx_outputs *outs;
	long done, bad;
	int end;                /* the input ended or cannot be read further */
	lx_status in_rc;        /* why the input stopped (0: its end) */
	lx_err in_err;          /* the message for in_rc, with its record */
} run;

/* "stdin: record N (id X): msg" for a record that decode refused. */
static void where(char *dst, size_t n, const lx_record *rec, const char *msg)
{
	char id[128];

	lx_record_id(rec, id, sizeof id);
	snprintf(dst, n, "stdin: record %ld%s%s%s: %s", lx_record_index(rec) + 1, *id ? " (id " : "", id,
	         *id ? ")" : "", msg);
}

/* Reads the next record into slot k: an example, an error record to pass through, or (with --keep-going)
 * a bad record turned into one. Returns 0 when the batch must end here (r->end says why). */
static int fill_slot(run *r, int k)
{
	slot *s = &r->slots[k];
	lx_record *rec;
	lx_err bad = {0, ""};
	lx_status st;
	char msg[sizeof bad.msg + 200];

	s->rec = NULL;
	if ((st = lx_reader_next(r->rd, &rec, &bad)) && !(r->keep_going && lx_reader_resumable(r->rd))) {
		r->end = 1;
		r->in_rc = st;
		r->in_err = bad;
		return 0;
	}
	if (st) { /* a whole value that is no record: kept as an error record */
		snprintf(msg, sizeof msg, "lx-encode: %s", bad.msg);
		fprintf(stderr, "%s\n", msg);
		r->bad++;
		s->encode = 0;
		if (!(s->rec = lx_record_error_new(msg))) {
			r->end = 1;
			r->in_rc = lx_errf(&r->in_err, LX_EIO, "out of memory");
			return 0;
		}
		return 1;
	}
	if (!rec) {
		r->end = 1;
		return 0;
	}
	s->rec = rec;
	s->encode = !lx_record_is_error(rec);
	if (!s->encode || !(st = lx_example_decode(r->c, rec, &s->in, &bad)))
		return 1;
	memcpy(msg, "lx-encode: ", 11); /* the message as printed, then "stdin: record ..." */
	where(msg + 11, sizeof msg - 11, rec, bad.msg);
	if (!r->keep_going || st == LX_EIO) {
		r->end = 1;
		r->in_rc = st;
		snprintf(r->in_err.msg, sizeof r->in_err.msg, "%.*s", (int)sizeof r->in_err.msg - 1,
		         st == LX_EIO ? bad.msg : msg + 11);
		lx_record_free(rec);
		s->rec = NULL;
		return 0;
	}
	fprintf(stderr, "%s\n", msg);
	r->bad++;
	s->encode = 0;
	if (lx_record_set_error(rec, msg)) {
		r->end = 1;
		r->in_rc = lx_errf(&r->in_err, LX_EIO, "out of memory");
		return 0;
	}
	return 1;
}

/* Reads, encodes and writes one batch; returns 0 or the status of a failed write or encode (in err). */
static lx_status one_batch(run *r, lx_encoder *enc, lx_err *err)
{
	int n, k = 0, i, j;
	lx_status rc = LX_OK;

	for (n = 0; n < r->batch && fill_slot(r, n); n++)
		if (r->slots[n].encode)
			r->todo[k++] = r->slots[n].in.x;
	if (k > 0)
		rc = lx_encode(enc, r->todo, k, r->outs, err);
	for (i = j = 0; i < n; i++) {
		slot *s = &r->slots[i];
		if (!rc && s->encode && (rc = add_outputs(s->rec, r->c, &s->in.x, &r->outs[j++], r->want)))
			lx_errf(err, rc, "out of memory");
		if (!rc)
			rc = lx_writer_put(r->wr, s->rec, err);
		lx_record_free(s->rec);
		s->rec = NULL;
	}
	r->done += n;
	return rc;
}

static void free_run(run *r)
{
	int i;

	for (i = 0; r->slots && i < r->batch; i++) {
		lx_example_data_destroy(&r->slots[i].in);
	}
	free(r->slots);
	free(r->todo);
	free(r->outs);
	lx_writer_free(r->wr);
	lx_reader_free(r->rd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'},   {"attentions", no_argument, 0, 'a'},
		{"hidden-states", no_argument, 0, 'H'}, {"batch", required_argument, 0, 'b'},
		{"threads", required_argument, 0, 't'}, {"progress", no_argument, 0, 'p'},
		{"keep-going", no_argument, 0, 'k'},    {"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},       {0, 0, 0, 0},
	};
	const char *dir = NULL;
	int threads = 0, force_progress = 0, ch;
	lx_model *m = NULL;
	lx_encoder *enc;
	lx_progress prog;
	lx_err err = {0, ""};
	lx_status rc = LX_OK;
	run r;

	memset(&r, 0, sizeof r);
	r.batch = 16;
	while ((ch = getopt_long(argc, argv, "m:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case 'a': r.want |= LX_WANT_ATTN; break;
		case 'H': r.want |= LX_WANT_HIDDEN; break;
		case 'b': r.batch = positive(optarg, "--batch"); break;
		case 't': threads = positive(optarg, "--threads"); break;
		case 'p': force_progress = 1; break;
		case 'k': r.keep_going = 1; break;
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
	r.c = lx_model_config(m);
	enc = lx_encoder_new(m, r.want);
	r.rd = lx_reader_new(stdin, "stdin");
	r.wr = lx_writer_new(stdout, "stdout");
	r.slots = calloc((size_t)r.batch, sizeof *r.slots);
	r.todo = calloc((size_t)r.batch, sizeof *r.todo);
	r.outs = calloc((size_t)r.batch, sizeof *r.outs);
	if (!enc || !r.rd || !r.wr || !r.slots || !r.todo || !r.outs) {
		fprintf(stderr, "%s: out of memory\n", tool);
		free_run(&r);
		lx_encoder_free(enc);
		lx_model_free(m);
		return LX_EIO;
	}
	lx_signals_init();
	lx_progress_init(&prog, stderr, tool, force_progress);
	while (!rc && !r.end && !lx_interrupted()) {
		rc = one_batch(&r, enc, &err);
		lx_progress_tick(&prog, r.done);
	}
	lx_progress_end(&prog);
	if (!rc)
		rc = lx_writer_flush(r.wr, &err);
	if (rc) { /* a failed write or no memory: the records after it are lost, say so (not for a closed pipe) */
		if (!lx_writer_broken_pipe(r.wr))
			fprintf(stderr, "%s: %s\n", tool, err.msg);
	} else if (lx_interrupted()) {
		rc = LX_EINTR;
		fprintf(stderr, "%s: interrupted after %ld records, all written\n", tool, r.done);
	} else if (r.in_rc) {
		rc = r.in_rc;
		fprintf(stderr, "%s: %s\n", tool, r.in_err.msg);
	} else if (r.bad) {
		rc = LX_EINPUT;
		fprintf(stderr, "%s: %ld of %ld records were bad, written with an error field\n", tool, r.bad, r.done);
	}
	if (fclose(stdout) != 0 && !rc) {
		fprintf(stderr, "%s: stdout: write failed\n", tool);
		rc = LX_EIO;
	}
	free_run(&r);
	lx_encoder_free(enc);
	lx_model_free(m);
	return rc;
}

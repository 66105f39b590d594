/* lx-encode - run LXMERT's three encoders over a stream of records (lx-encode(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"
#include "tool.h"

enum { O_ATTENTIONS = 256, O_HIDDEN, O_INT8, O_BF16, O_KEEP_FEATURES };

static const char synopsis[] = "-m DIR [options]";
static const char about[] =
	"Reads records (input_ids, visual_feats, visual_pos, ...) on stdin and writes them on stdout\n"
	"with language_output, vision_output and pooled_output added, visual_feats left out. See lx-encode(1).";

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the model directory"},
	{O_ATTENTIONS, "attentions", NULL, "add the attention maps of every layer"},
	{O_HIDDEN, "hidden-states", NULL, "add the hidden states of every layer"},
	{TOOL_BATCH, "batch", "N", "encode up to N records together (16)"},
	{TOOL_THREADS, "threads", "N", "threads of the matrix products (OpenBLAS's choice)"},
	{O_INT8, "int8", NULL, "compute the linear layers in int8 (weights quantized at open)"},
	{O_BF16, "bf16", NULL, "compute the linear layers in bfloat16 (weights rounded at open)"},
	{O_KEEP_FEATURES, "keep-features", NULL, "keep visual_feats in the output records (left out unless a record\n"
	 "has feat_mask, or with --attentions)"},
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-encode", synopsis, about, option_table};

/* One record in the batch and the inputs decoded from it, in buffers kept from batch to batch. */
typedef struct {
	lx_record *rec;
	int encode;             /* 1: an example to encode; 0: an error record passed through */
	int images;             /* 2 for a pair record (visual_feats0 and visual_feats1), else 1 */
	lx_example_data in[2];
} slot;

/* Adds the encoder's outputs to a record, each key followed by sfx ("" or the image's "0", "1"). */
static lx_status add_outputs(lx_record *rec, const lx_config *c, const lx_example *x, const lx_outputs *o, int want,
                             const char *sfx)
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
	char key[64];
	size_t i;
	lx_status rc;

	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (f[i].flag && !(want & f[i].flag))
			continue;
		snprintf(key, sizeof key, "%s%s", f[i].key, sfx);
		if ((rc = lx_record_add_tensor(rec, key, LX_F32, f[i].ndim, f[i].shape, f[i].data)))
			return rc;
	}
	return LX_OK;
}

/* Leaves the region features of an encoded record out of its output: lx-head and lx-attnviz do not read
 * them, and at 36 x 2048 floats they are most of a record's bytes. A record with feat_mask keeps them
 * (lx-head's feature loss takes them as its targets), and so does every record with --attentions (whose
 * maps go on through lx-explain, which encodes the record again, to lx-attnviz). */
static void drop_features(lx_record *rec, int images)
{
	if (lx_record_get(rec, "feat_mask"))
		return;
	if (images == 2) {
		lx_record_remove(rec, "visual_feats0");
		lx_record_remove(rec, "visual_feats1");
	} else
		lx_record_remove(rec, "visual_feats");
}

/* The run: options, the model, and the batch in hand. */
typedef struct {
	int want, batch, keep_features;
	const lx_config *c;
	tool_run t;
	slot *slots;
	lx_example *todo;       /* the examples of the batch (two of a pair record), without its error records */
	lx_outputs *outs;
	int end;                /* the input ended or cannot be read further */
	lx_status in_rc;        /* why the input stopped (0: its end) */
	lx_err in_err;          /* the message for in_rc, with its record */
} run;

/* Reads the next record into slot k: an example, an error record to pass through, or (with --keep-going)
 * a bad record turned into one. Returns 0 when the batch must end here (r->end says why). */
static int fill_slot(run *r, int k)
{
	slot *s = &r->slots[k];
	lx_record *rec;
	lx_status st = LX_OK;
	int pass, m;

	s->rec = NULL;
	if ((st = tool_next(&r->t, &rec, &pass, &r->in_err)) || !rec) {
		r->end = 1;
		r->in_rc = st;
		return 0;
	}
	s->rec = rec;
	s->encode = !pass;
	s->images = pass ? 1 : lx_example_images(rec);
	for (m = 0; !pass && !st && m < s->images; m++)
		st = lx_example_decode_image(r->c, rec, s->images == 2 ? m : -1, &s->in[m], &r->in_err);
	if (!st)
		return 1;
	if (st != LX_EIO)
		tool_where(&r->t, rec, &r->in_err);
	if ((st = tool_refuse(&r->t, rec, st, &r->in_err))) {
		r->end = 1;
		r->in_rc = st;
		lx_record_free(rec);
		s->rec = NULL;
		return 0;
	}
	s->encode = 0;
	return 1;
}

/* Reads, encodes and writes one batch; returns 0 or the status of a failed write or encode (in err). */
static lx_status one_batch(run *r, lx_encoder *enc, lx_err *err)
{
	static const char *const sfx[2][2] = {{"", ""}, {"0", "1"}};
	int n, k = 0, i, j, m;
	lx_status rc = LX_OK;

	for (n = 0; n < r->batch && fill_slot(r, n); n++)
		for (m = 0; r->slots[n].encode && m < r->slots[n].images; m++)
			r->todo[k++] = r->slots[n].in[m].x;
	if (k > 0)
		rc = lx_encode(enc, r->todo, k, r->outs, err);
	for (i = j = 0; i < n; i++) {
		slot *s = &r->slots[i];
		for (m = 0; !rc && s->encode && m < s->images; m++)
			if ((rc = add_outputs(s->rec, r->c, &s->in[m].x, &r->outs[j++], r->want, sfx[s->images - 1][m])))
				lx_errf(err, rc, "out of memory");
		if (!rc && s->encode && !r->keep_features && !(r->want & LX_WANT_ATTN))
			drop_features(s->rec, s->images);
		if (!rc)
			rc = lx_writer_put(r->t.wr, s->rec, err);
		lx_record_free(s->rec);
		s->rec = NULL;
	}
	tool_done(&r->t, n);
	return rc;
}

static void free_run(run *r)
{
	int i;

	for (i = 0; r->slots && i < r->batch; i++) {
		lx_example_data_destroy(&r->slots[i].in[0]);
		lx_example_data_destroy(&r->slots[i].in[1]);
	}
	free(r->slots);
	free(r->todo);
	free(r->outs);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int threads = 0, progress = 0, keep_going = 0, compute = -1, ch;
	lx_model *m = NULL;
	lx_encoder *enc = NULL;
	lx_err err = {0, ""};
	lx_status rc = LX_OK;
	run r;

	memset(&r, 0, sizeof r);
	r.batch = 16;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case O_ATTENTIONS: r.want |= LX_WANT_ATTN; break;
		case O_HIDDEN: r.want |= LX_WANT_HIDDEN; break;
		case TOOL_BATCH: r.batch = (int)tool_long(optarg, "--batch", 1, 1 << 20); break;
		case TOOL_THREADS: threads = (int)tool_long(optarg, "--threads", 1, 1 << 20); break;
		case O_INT8: compute = LX_I8; break;
		case O_BF16: compute = LX_BF16; break;
		case O_KEEP_FEATURES: r.keep_features = 1; break;
		case TOOL_PROGRESS: progress = 1; break;
		case TOOL_KEEP_GOING: keep_going = 1; break;
		}
	}
	tool_require(dir, "-m DIR");
	tool_no_operands(argc);
	if (threads)
		lx_set_threads(threads);
	if ((rc = lx_model_open_as(&m, dir, compute, &err)))
		return tool_fail(rc, "%s", err.msg);
	r.c = lx_model_config(m);
	r.slots = calloc((size_t)r.batch, sizeof *r.slots);
	r.todo = calloc(2 * (size_t)r.batch, sizeof *r.todo);
	r.outs = calloc(2 * (size_t)r.batch, sizeof *r.outs);
	if (!(enc = lx_encoder_new(m, r.want)) || tool_run_init(&r.t, stdin, "stdin", 1, keep_going, progress) ||
	    !r.slots || !r.todo || !r.outs)
		rc = lx_errf(&err, LX_EIO, "out of memory");
	tool_signals(NULL);
	while (!rc && !r.end)
		rc = one_batch(&r, enc, &err);
	if (!rc && r.in_rc) {
		rc = r.in_rc;
		err = r.in_err;
	}
	rc = tool_end(&r.t, rc, &err);
	free_run(&r);
	lx_encoder_free(enc);
	lx_model_free(m);
	return rc;
}

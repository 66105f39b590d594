/* lx-encode - run LXMERT's three encoders over a stream of records (lx-encode(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"
#include "tool.h"

enum { O_ATTENTIONS = 256, O_HIDDEN };

static const char synopsis[] = "-m DIR [options]";
static const char about[] =
	"Reads records (input_ids, visual_feats, visual_pos, ...) on stdin and writes them on stdout\n"
	"with language_output, vision_output and pooled_output added. See lx-encode(1).";

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the model directory"},
	{O_ATTENTIONS, "attentions", NULL, "add the attention maps of every layer"},
	{O_HIDDEN, "hidden-states", NULL, "add the hidden states of every layer"},
	{TOOL_BATCH, "batch", "N", "encode up to N records together (16)"},
	{TOOL_THREADS, "threads", "N", "threads of the matrix products (OpenBLAS's choice)"},
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-encode", synopsis, about, option_table};


/* One record in the batch and the inputs decoded from it, in buffers kept from batch to batch. */
typedef struct {
	lx_record *rec;
	int encode;             /* 1: an example to encode; 0: an error record passed through */
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

/* The run: options, the model, and the batch in hand. */
typedef struct {
	int want, batch;
	const lx_config *c;
	tool_run t;
	slot *slots;
	lx_example *ex, *todo;
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
	lx_status st;
	int pass;

	s->rec = NULL;
	if ((st = tool_next(&r->t, &rec, &pass, &r->in_err)) || !rec) {
		r->end = 1;
		r->in_rc = st;
		return 0;
	}
	s->rec = rec;
	s->encode = !pass;
	if (pass || !(st = decode(r->c, s, &r->ex[k], &r->in_err)))
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
	int n, k = 0, i, j;
	lx_status rc = LX_OK;

	for (n = 0; n < r->batch && fill_slot(r, n); n++)
		if (r->slots[n].encode)
			r->todo[k++] = r->ex[n];
	if (k > 0)
		rc = lx_encode(enc, r->todo, k, r->outs, err);
	for (i = j = 0; i < n; i++) {
		slot *s = &r->slots[i];
		if (!rc && s->encode && (rc = add_outputs(s->rec, r->c, &r->ex[i], &r->outs[j++], r->want)))
			lx_errf(err, rc, "out of memory");
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
		free(r->slots[i].ids);
		free(r->slots[i].types);
		free(r->slots[i].amask);
		free(r->slots[i].feats);
		free(r->slots[i].pos);
		free(r->slots[i].vmask);
	}
	free(r->slots);
	free(r->ex);
	free(r->todo);
	free(r->outs);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int threads = 0, progress = 0, keep_going = 0, ch;
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
		case TOOL_PROGRESS: progress = 1; break;
		case TOOL_KEEP_GOING: keep_going = 1; break;
		}
	}
	tool_require(dir, "-m DIR");
	tool_no_operands(argc);
	if (threads)
		lx_set_threads(threads);
	if ((rc = lx_model_open(&m, dir, &err)))
		return tool_fail(rc, "%s", err.msg);
	r.c = lx_model_config(m);
	r.slots = calloc((size_t)r.batch, sizeof *r.slots);
	r.ex = calloc((size_t)r.batch, sizeof *r.ex);
	r.todo = calloc((size_t)r.batch, sizeof *r.todo);
	r.outs = calloc((size_t)r.batch, sizeof *r.outs);
	if (!(enc = lx_encoder_new(m, r.want)) || tool_run_init(&r.t, stdin, "stdin", 1, keep_going, progress) ||
	    !r.slots || !r.ex || !r.todo || !r.outs)
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

/* lx-explain - relevance maps of LXMERT's answer over the words and the boxes (lx-explain(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx.h"
#include "lx_train.h"

static const char *tool = "lx-explain";

static void usage(FILE *f)
{
	fprintf(f, "usage: %s -m DIR [--answer INDEX|NAME | --top K] [--labels FILE] [--threads N] [--keep-going]\n"
	           "       [--progress]\n"
	           "Reads records (input_ids, visual_feats, visual_pos, ...) on stdin and writes them on stdout\n"
	           "with relevance_answer, relevance_tt, relevance_ti, relevance_words and relevance_boxes added.\n"
	           "See lx-explain(1).\n",
	        tool);
}

/* The inputs of one record, in buffers kept from record to record. */
typedef struct {
	void *buf[6];           /* input_ids, visual_feats, visual_pos, token_type_ids and the two masks */
	size_t cap[6];
	float *tt, *ti;         /* the maps [T, T] and [T, N] */
	size_t cap_tt, cap_ti;
	int *order;             /* [num_qa_labels] answers by score */
} inputs;

/* Field key as a tensor of rank ndim whose dimensions are d0 and d1 where they are >= 0, converted into
 * in->buf[slot]: int32 when ints is 1 (an integer dtype required), float32 otherwise (a float dtype required
 * when ints is 0, any dtype when it is -1: masks); *present = 0 when an optional field is absent (present NULL: required).
 * dims receives its shape. */
static lx_status field(const lx_record *rec, const char *key, int ints, int ndim, int64_t d0, int64_t d1,
                       inputs *in, int slot, int *present, int64_t *dims, lx_err *e)
{
	lx_tensor t;
	lx_status rc;
	size_t n;

	if ((rc = lx_record_tensor(rec, key, &t, present, e)) || (present && !*present))
		return rc;
	if (t.ndim != ndim || (d0 >= 0 && t.shape[0] != d0) || (ndim > 1 && d1 >= 0 && t.shape[1] != d1))
		return lx_errf(e, LX_EINPUT, "field %s: shape must be [%s%s%s] (given rank %d)", key,
		               ndim > 1 ? "N, " : "", d0 >= 0 && ndim == 1 ? "as its side" : ndim == 1 ? "T" : "",
		               ndim > 1 ? (d1 == 4 ? "4" : "visual_feat_dim") : "", t.ndim);
	if (ints >= 0 && ints == lx_dtype_is_float(t.dtype))
		return lx_errf(e, LX_EINPUT, "field %s: dtype %s, expected %s", key, lx_dtype_numpy(t.dtype),
		               ints ? "an integer dtype (<i4 or <i8)" : "a float dtype (<f4)");
	if (t.shape[0] == 0)
		return lx_errf(e, LX_EINPUT, "field %s is empty", key);
	if (t.shape[0] > (1 << 20))
		return lx_errf(e, LX_EINPUT, "field %s: %lld rows, more than %d", key, (long long)t.shape[0], 1 << 20);
	memcpy(dims, t.shape, (size_t)ndim * sizeof *dims);
	n = (size_t)t.numel > 0 ? (size_t)t.numel : 1;
	if (n > in->cap[slot]) {
		free(in->buf[slot]);
		if (!(in->buf[slot] = malloc(n * 4)))
			return in->cap[slot] = 0, lx_errf(e, LX_EIO, "out of memory");
		in->cap[slot] = n;
	}
	return ints > 0 ? lx_tensor_to_i32(&t, in->buf[slot], key, e) : lx_tensor_to_f32(&t, in->buf[slot], key, e);
}

/* Decodes and checks the inputs of one record into in and ex. */
static lx_status decode(const lx_config *c, const lx_record *rec, inputs *in, lx_example *ex, lx_err *e)
{
	int64_t ids[1], feats[2], pos[2], d[2];
	int has_types, has_am, has_vm;
	lx_status rc;

	memset(ex, 0, sizeof *ex);
	if ((rc = field(rec, "input_ids", 1, 1, -1, -1, in, 0, NULL, ids, e)) ||
	    (rc = field(rec, "visual_feats", 0, 2, -1, c->visual_feat_dim, in, 1, NULL, feats, e)) ||
	    (rc = field(rec, "visual_pos", 0, 2, feats[0], 4, in, 2, NULL, pos, e)) ||
	    (rc = field(rec, "token_type_ids", 1, 1, ids[0], -1, in, 3, &has_types, d, e)) ||
	    (rc = field(rec, "attention_mask", -1, 1, ids[0], -1, in, 4, &has_am, d, e)) ||
	    (rc = field(rec, "visual_attention_mask", -1, 1, feats[0], -1, in, 5, &has_vm, d, e)))
		return rc;
	if (ids[0] > c->max_position_embeddings)
		return lx_errf(e, LX_EINPUT, "field input_ids: %lld tokens, more than max_position_embeddings %d",
		               (long long)ids[0], c->max_position_embeddings);
	ex->T = (int)ids[0];
	ex->N = (int)feats[0];
	ex->input_ids = in->buf[0];
	ex->visual_feats = in->buf[1];
	ex->visual_pos = in->buf[2];
	ex->token_type_ids = has_types ? in->buf[3] : NULL;
	ex->attention_mask = has_am ? in->buf[4] : NULL;
	ex->visual_mask = has_vm ? in->buf[5] : NULL;
	return lx_example_check(c, ex, e);
}

static int grow(float **p, size_t *cap, size_t n)
{
	if (n <= *cap)
		return 0;
	free(*p);
	*cap = (*p = malloc(n * sizeof **p)) ? n : 0;
	return *p ? 0 : -1;
}

/* The run: options, the model and the explainer. */
typedef struct {
	int answer, top, keep_going;   /* answer < 0: the top answers, as many as top */
	const lx_config *c;
	lx_explainer *x;
	lx_reader *rd;
	lx_writer *wr;
	inputs in;
	long done, bad;
} run;

/* Adds the maps of answer a to rec; row 0 of each map is its first row in memory. */
static lx_status add_maps(run *r, lx_record *rec, const lx_example *ex, int a, lx_err *e)
{
	int64_t T = ex->T, N = ex->N, tt[2] = {T, T}, ti[2] = {T, N};
	inputs *in = &r->in;
	lx_status rc;

	if ((rc = lx_explain_relevance(r->x, a, in->tt, in->ti, e)))
		return rc;
	if (lx_record_add_int(rec, "relevance_answer", a) ||
	    lx_record_add_tensor(rec, "relevance_tt", LX_F32, 2, tt, in->tt) ||
	    lx_record_add_tensor(rec, "relevance_ti", LX_F32, 2, ti, in->ti) ||
	    lx_record_add_tensor(rec, "relevance_words", LX_F32, 1, &T, in->tt) ||
	    lx_record_add_tensor(rec, "relevance_boxes", LX_F32, 1, &N, in->ti))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* Explains one record and writes it (once per answer). A bad record: LX_EINPUT with the message in e and
 * nothing written; other statuses are a failed write or no memory. */
static lx_status explain(run *r, lx_record *rec, lx_err *e)
{
	inputs *in = &r->in;
	lx_example ex;
	const float *s;
	lx_status rc;
	int k;

	if ((rc = decode(r->c, rec, in, &ex, e)))
		return rc;
	if (grow(&in->tt, &in->cap_tt, (size_t)ex.T * ex.T) || grow(&in->ti, &in->cap_ti, (size_t)ex.T * ex.N))
		return lx_errf(e, LX_EIO, "out of memory");
	if (!(s = lx_explain_run(r->x, &ex, e)))
		return e->status;
	if (r->answer < 0)
		lx_topk(s, r->c->num_qa_labels, r->top, in->order);
	for (k = 0; k < r->top; k++) {
		if ((rc = add_maps(r, rec, &ex, r->answer >= 0 ? r->answer : in->order[k], e)))
			return rc;
		if ((rc = lx_writer_put(r->wr, rec, e)))
			return rc;
	}
	return LX_OK;
}

/* "lx-explain: stdin: record N (id X): msg" for a record that was refused. */
static void where(char *dst, size_t n, const lx_record *rec, const char *msg)
{
	char id[128];

	lx_record_id(rec, id, sizeof id);
	snprintf(dst, n, "%s: stdin: record %ld%s%s%s: %s", tool, lx_record_index(rec) + 1, *id ? " (id " : "", id,
	         *id ? ")" : "", msg);
}

/* Reads, explains and writes one record. Returns 1 to go on, 0 at the end of the input; *rc and err say
 * why the run must stop (0: the input's clean end). */
static int one_record(run *r, lx_status *rc, lx_err *err)
{
	lx_record *rec = NULL;
	lx_err bad = {0, ""};
	lx_status st;
	char msg[sizeof bad.msg + 200];

	if ((st = lx_reader_next(r->rd, &rec, &bad))) {
		if (!(r->keep_going && lx_reader_resumable(r->rd))) {
			*rc = st;
			*err = bad;
			return 0;
		}
		/* a whole value that is no record: kept as an error record */
		snprintf(msg, sizeof msg, "%s: %s", tool, bad.msg);
		fprintf(stderr, "%s\n", msg);
		r->bad++;
		r->done++;
		if (!(rec = lx_record_error_new(msg)))
			return *rc = lx_errf(err, LX_EIO, "out of memory"), 0;
		*rc = lx_writer_put(r->wr, rec, err);
		lx_record_free(rec);
		return !*rc;
	}
	if (!rec)
		return 0;
	r->done++;
	if (lx_record_is_error(rec))
		st = lx_writer_put(r->wr, rec, &bad);
	else if ((st = explain(r, rec, &bad)) == LX_EINPUT) {
		where(msg, sizeof msg, rec, bad.msg);
		if (!r->keep_going) {
			lx_record_free(rec);
			snprintf(err->msg, sizeof err->msg, "%.*s", (int)sizeof err->msg - 1, msg + strlen(tool) + 2);
			return *rc = LX_EINPUT, 0;
		}
		fprintf(stderr, "%s\n", msg);
		r->bad++;
		lx_record_revert(rec);
		st = lx_record_set_error(rec, msg) ? lx_errf(&bad, LX_EIO, "out of memory") : lx_writer_put(r->wr, rec, &bad);
	}
	lx_record_free(rec);
	if (st) {
		*rc = st;
		*err = bad;
		return 0;
	}
	return 1;
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

/* The answer --answer names: an index, or a name from the answer list (FILE, or DIR/answers.json or
 * DIR/answers.txt). Exits with a message when there is none such. */
static int answer_index(const char *given, const char *labels, const char *dir, int A)
{
	static const char *const files[] = {"answers.json", "answers.txt"};
	char path[4096], *end;
	long v = strtol(given, &end, 10);
	lx_names *names = NULL;
	lx_err e;
	size_t i;
	int k;

	if (*given && !*end) {
		if (v < 0 || v >= A) {
			fprintf(stderr, "%s: --answer %s is outside [0, %d) (num_qa_labels)\n", tool, given, A);
			exit(LX_EUSAGE);
		}
		return (int)v;
	}
	for (i = 0; !labels && i < sizeof files / sizeof *files; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (access(path, F_OK) == 0)
			labels = path;
	}
	if (!labels) {
		fprintf(stderr, "%s: --answer %s: no answer names (%s/answers.json or answers.txt, or --labels FILE)\n",
		        tool, given, dir);
		exit(LX_EUSAGE);
	}
	if (lx_names_load(&names, labels, LX_NAMES_ANSWERS, &e)) {
		fprintf(stderr, "%s: %s\n", tool, e.msg);
		exit(e.status);
	}
	if (lx_names_count(names) != A) {
		fprintf(stderr, "%s: %s: %d names, but the model has %d answers (num_qa_labels)\n", tool, labels,
		        lx_names_count(names), A);
		exit(LX_EMODEL);
	}
	if ((k = lx_names_find(names, given)) < 0) {
		fprintf(stderr, "%s: --answer %s: no such answer in %s\n", tool, given, labels);
		exit(LX_EUSAGE);
	}
	lx_names_free(names);
	return k;
}

static void free_run(run *r)
{
	int i;

	for (i = 0; i < 6; i++)
		free(r->in.buf[i]);
	free(r->in.tt);
	free(r->in.ti);
	free(r->in.order);
	lx_explainer_free(r->x);
	lx_writer_free(r->wr);
	lx_reader_free(r->rd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'},   {"answer", required_argument, 0, 'a'},
		{"top", required_argument, 0, 'k'},     {"labels", required_argument, 0, 'l'},
		{"threads", required_argument, 0, 't'}, {"progress", no_argument, 0, 'p'},
		{"keep-going", no_argument, 0, 'K'},    {"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},       {0, 0, 0, 0},
	};
	const char *dir = NULL, *answer = NULL, *labels = NULL;
	int threads = 0, force_progress = 0, ch;
	lx_model *m = NULL;
	lx_progress prog;
	lx_err err = {0, ""};
	lx_status rc = LX_OK;
	run r;

	memset(&r, 0, sizeof r);
	r.answer = -1;
	while ((ch = getopt_long(argc, argv, "m:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case 'a': answer = optarg; break;
		case 'k': r.top = positive(optarg, "--top"); break;
		case 'l': labels = optarg; break;
		case 't': threads = positive(optarg, "--threads"); break;
		case 'p': force_progress = 1; break;
		case 'K': r.keep_going = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("%s %s\n", tool, LX_VERSION); return 0;
		default: usage(stderr); return LX_EUSAGE;
		}
	}
	if (!dir || optind != argc || (answer && r.top)) {
		if (answer && r.top)
			fprintf(stderr, "%s: --answer and --top exclude each other\n", tool);
		usage(stderr);
		return LX_EUSAGE;
	}
	if (threads)
		lx_set_threads(threads);
	if ((rc = lx_model_open(&m, dir, &err)) || (rc = lx_explainer_new(&r.x, m, &err))) {
		fprintf(stderr, "%s: %s\n", tool, err.msg);
		lx_model_free(m);
		return rc;
	}
	r.c = lx_model_config(m);
	if (r.top > r.c->num_qa_labels) {
		fprintf(stderr, "%s: --top %d: the model has %d answers\n", tool, r.top, r.c->num_qa_labels);
		free_run(&r);
		lx_model_free(m);
		return LX_EUSAGE;
	}
	if (answer)
		r.answer = answer_index(answer, labels, dir, r.c->num_qa_labels);
	if (!r.top)
		r.top = 1;
	r.rd = lx_reader_new(stdin, "stdin");
	r.wr = lx_writer_new(stdout, "stdout");
	r.in.order = malloc((size_t)r.c->num_qa_labels * sizeof *r.in.order);
	if (!r.rd || !r.wr || !r.in.order) {
		fprintf(stderr, "%s: out of memory\n", tool);
		free_run(&r);
		lx_model_free(m);
		return LX_EIO;
	}
	lx_signals_init();
	lx_progress_init(&prog, stderr, tool, force_progress);
	while (!lx_interrupted() && one_record(&r, &rc, &err))
		lx_progress_tick(&prog, r.done);
	lx_progress_end(&prog);
	if (!rc || rc == LX_EINPUT) {
		lx_err f;
		lx_status frc = lx_writer_flush(r.wr, &f);
		if (frc) {
			rc = frc;
			err = f;
		}
	}
	if (rc == LX_EIO && lx_writer_broken_pipe(r.wr))
		; /* a closed pipe: nothing to say */
	else if (rc)
		fprintf(stderr, "%s: %s\n", tool, err.msg);
	else if (lx_interrupted()) {
		rc = LX_EINTR;
		fprintf(stderr, "%s: interrupted after %ld records, all written\n", tool, r.done);
	} else if (r.bad) {
		rc = LX_EINPUT;
		fprintf(stderr, "%s: %ld of %ld records were bad, written with an error field\n", tool, r.bad, r.done);
	}
	if (fclose(stdout) != 0 && !rc) {
		fprintf(stderr, "%s: stdout: write failed\n", tool);
		rc = LX_EIO;
	}
	free_run(&r);
	lx_model_free(m);
	return rc;
}

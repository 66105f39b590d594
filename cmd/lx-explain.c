/* lx-explain - relevance maps of LXMERT's answer over the words and the boxes (lx-explain(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"
#include "lx_names.h"
#include "lx_train.h"
#include "tool.h"

enum { O_ANSWER = 256, O_TOP, O_LABELS, O_MAX_MEMORY };

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the model directory (with the answer head)"},
	{O_ANSWER, "answer", "INDEX|NAME", "explain this answer instead of the best one: an index in\n"
	                                   "[0, num_qa_labels) or a name from the answer list"},
	{O_TOP, "top", "K", "one record per input for each of the K best answers"},
	{O_LABELS, "labels", "FILE", "the answer names for --answer NAME (DIR/answers.json or answers.txt)"},
	{O_MAX_MEMORY, "max-memory", "MB", "the most memory a record may take beyond the weights (1024);\n"
	                                   "a record that needs more is refused (lx-limits(7))"},
	{TOOL_THREADS, "threads", "N", "threads of the matrix products (OpenBLAS's choice)"},
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};

/* The synopsis, what the tool does, and the options, for --help and usage errors. */
static const tool_info info = {
	"lx-explain", "-m DIR [--answer INDEX|NAME | --top K] [--labels FILE] [options]",
	"Reads records (input_ids, visual_feats, visual_pos, ...) on stdin and writes them on stdout\n"
	"with relevance_answer, relevance_tt, relevance_ti, relevance_words and relevance_boxes added.\n"
	"See lx-explain(1).",
	option_table,
};

/* The run: the answer(s) asked for, the model's explainer, and buffers kept from record to record. */
typedef struct {
	int answer, top;        /* answer < 0: the top answers, as many as top */
	const lx_config *c;
	lx_explainer *x;
	lx_example_data in;
	float *tt, *ti;         /* the maps [T, T] and [T, N] */
	size_t cap_tt, cap_ti;
	int *order;             /* [num_qa_labels] answers by score */
	double max_memory;      /* bytes a record may take */
} run;

static int grow(float **p, size_t *cap, size_t n)
{
	if (n <= *cap)
		return 0;
	free(*p);
	*cap = (*p = malloc(n * sizeof **p)) ? n : 0;
	return *p ? 0 : -1;
}

/* Adds the maps of answer a to rec; row 0 of each map is its first row in memory. */
static lx_status add_maps(run *r, lx_record *rec, int a, lx_err *e)
{
	int64_t T = r->in.x.T, N = r->in.x.N, tt[2] = {T, T}, ti[2] = {T, N};
	lx_status rc;

	if ((rc = lx_explain_relevance(r->x, a, r->tt, r->ti, e)))
		return rc;
	if (lx_record_add_int(rec, "relevance_answer", a) ||
	    lx_record_add_tensor(rec, "relevance_tt", LX_F32, 2, tt, r->tt) ||
	    lx_record_add_tensor(rec, "relevance_ti", LX_F32, 2, ti, r->ti) ||
	    lx_record_add_tensor(rec, "relevance_words", LX_F32, 1, &T, r->tt) ||
	    lx_record_add_tensor(rec, "relevance_boxes", LX_F32, 1, &N, r->ti))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* Explains one record and writes it once per answer. A bad record: LX_EINPUT with the message in e and
 * nothing written; other statuses are a failed write or no memory. */
static lx_status explain(run *r, lx_writer *w, lx_record *rec, lx_err *e)
{
	const lx_example *ex = &r->in.x;
	const float *s;
	lx_status rc;
	double need;
	int k;

	if ((rc = lx_example_decode(r->c, rec, &r->in, e)))
		return rc;
	if ((need = (double)lx_record_memory(rec) + lx_explain_memory(r->c, ex->T, ex->N)) > r->max_memory)
		return lx_errf(e, LX_EINPUT, "explaining it takes %.0f MB, more than --max-memory %.0f", need / 1e6,
		               r->max_memory / 1e6);
	if (grow(&r->tt, &r->cap_tt, (size_t)ex->T * ex->T) || grow(&r->ti, &r->cap_ti, (size_t)ex->T * ex->N))
		return lx_errf(e, LX_EIO, "out of memory");
	if (!(s = lx_explain_run(r->x, ex, e)))
		return e->status;
	if (r->answer < 0)
		lx_topk(s, r->c->num_qa_labels, r->top, r->order);
	for (k = 0; k < r->top; k++)
		if ((rc = add_maps(r, rec, r->answer >= 0 ? r->answer : r->order[k], e)) ||
		    (rc = lx_writer_put(w, rec, e)))
			return rc;
	return LX_OK;
}

/* The answer --answer names: an index, or a name from the model's answer list (--labels FILE, or
 * DIR/answers.json or DIR/answers.txt). Exits with a message when there is none such. */
static int answer_index(const char *given, const char *labels, const char *dir, int A)
{
	char *end;
	long v = strtol(given, &end, 10);
	lx_names *names = NULL;
	lx_err e;
	int k;

	if (*given && !*end) {
		if (v < 0 || v >= A)
			tool_die(LX_EUSAGE, "--answer %s is outside [0, %d) (num_qa_labels)", given, A);
		return (int)v;
	}
	if (lx_names_load_model(&names, dir, LX_LIST_ANSWERS, labels, A, &e))
		tool_die(e.status, "%s", e.msg);
	if (!names)
		tool_die(LX_EUSAGE, "--answer %s: no answer names (%s/answers.json or answers.txt, or --labels FILE)",
		         given, dir);
	if ((k = lx_names_find(names, given)) < 0)
		tool_die(LX_EUSAGE, "--answer %s: no such answer in %s", given, lx_names_path(names));
	lx_names_free(names);
	return k;
}

static void free_run(run *r)
{
	lx_example_data_destroy(&r->in);
	free(r->tt);
	free(r->ti);
	free(r->order);
	lx_explainer_free(r->x);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *answer = NULL, *labels = NULL;
	int threads = 0, progress = 0, keep_going = 0, pass, ch;
	lx_model *m = NULL;
	lx_record *rec;
	lx_err err = {0, ""};
	lx_status rc = LX_OK;
	tool_run t;
	run r;

	memset(&r, 0, sizeof r);
	r.answer = -1;
	r.max_memory = 1024e6;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 'm': dir = optarg; break;
		case O_ANSWER: answer = optarg; break;
		case O_TOP: r.top = (int)tool_long(optarg, "--top", 1, 1 << 20); break;
		case O_LABELS: labels = optarg; break;
		case O_MAX_MEMORY: r.max_memory = 1e6 * (double)tool_long(optarg, "--max-memory", 1, 1 << 20); break;
		case TOOL_THREADS: threads = (int)tool_long(optarg, "--threads", 1, 1 << 20); break;
		case TOOL_PROGRESS: progress = 1; break;
		case TOOL_KEEP_GOING: keep_going = 1; break;
		}
	}
	tool_require(dir, "-m DIR");
	tool_no_operands(argc);
	if (answer && r.top)
		tool_usage("--answer and --top exclude each other");
	if (threads)
		lx_set_threads(threads);
	if ((rc = lx_model_open(&m, dir, &err)) || (rc = lx_explainer_new(&r.x, m, &err))) {
		lx_model_free(m);
		return tool_fail(rc, "%s", err.msg);
	}
	r.c = lx_model_config(m);
	if (r.top > r.c->num_qa_labels)
		tool_die(LX_EUSAGE, "--top %d: the model has %d answers", r.top, r.c->num_qa_labels);
	if (answer)
		r.answer = answer_index(answer, labels, dir, r.c->num_qa_labels);
	if (!r.top)
		r.top = 1;
	if (!(r.order = malloc((size_t)r.c->num_qa_labels * sizeof *r.order)) ||
	    tool_run_init(&t, stdin, "stdin", 1, keep_going, progress))
		tool_die(LX_EIO, "out of memory");
	tool_signals(NULL);
	while (!rc && !(rc = tool_next(&t, &rec, &pass, &err)) && rec) {
		if (pass)
			rc = lx_writer_put(t.wr, rec, &err);
		else if ((rc = explain(&r, t.wr, rec, &err)) == LX_EINPUT) {
			tool_where(&t, rec, &err);
			if (!(rc = tool_refuse(&t, rec, rc, &err)))
				rc = lx_writer_put(t.wr, rec, &err);
		}
		lx_record_free(rec);
		tool_done(&t, 1);
	}
	rc = tool_end(&t, rc, &err);
	free_run(&r);
	lx_model_free(m);
	return rc;
}

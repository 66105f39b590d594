/* lx-train - fine-tune or train LXMERT on a stream of labelled records (lx-train(1)). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx.h"
#include "lx_heads.h"
#include "lx_train.h"
#include "tool.h"

enum { O_EPOCHS = 256, O_LR, O_WARMUP, O_SEED, O_FREEZE, O_NEWHEAD, O_LABELS, O_VALID, O_SAVE, O_STOP, O_RESUME,
       O_FORCE, O_F16, O_DROPOUT, O_WD, O_LOG, O_INIT, O_CLIP, O_SKIP, O_MAX_MEMORY };

static const char synopsis[] = "-m DIR -o OUTDIR [options] [TRAIN]";
static const char about[] =
	"Trains the model in DIR on the labelled records of TRAIN (a stream from lx-tokenize | lx-featpack;\n"
	"stdin if absent) and writes the trained model directory OUTDIR. See lx-train(1).";

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the model to start from"},
	{'o', "output", "OUTDIR", "where the trained model goes"},
	{O_EPOCHS, "epochs", "N", "passes over the training records (1)"},
	{TOOL_BATCH, "batch", "N", "examples a step (32)"},
	{O_LR, "lr", "X", "peak learning rate (5e-5)"},
	{O_WARMUP, "warmup", "STEPS", "warm-up steps (10% of all steps)"},
	{O_WD, "weight-decay", "X", "AdamW's decoupled weight decay (0.01)"},
	{O_DROPOUT, "dropout", "P", "hidden and attention dropout (0.1)"},
	{O_SEED, "seed", "N", "seed of the order, of dropout and of a new head (1)"},
	{TOOL_THREADS, "threads", "N", "threads of the matrix products (1)"},
	{O_MAX_MEMORY, "max-memory", "MB", "the most memory a batch may take beyond the weights, their\n"
	                                   "gradients and moments (1536): a record that would take a batch\n"
	                                   "of --batch such records past it is refused (lx-limits(7))"},
	{O_FREEZE, "freeze", "encoder", "train the heads only"},
	{O_NEWHEAD, "new-head", "N", "a fresh answer head of N answers"},
	{O_LABELS, "labels", "FILE", "the answers of the --new-head"},
	{O_INIT, "init-answers", "DIR", "start the answer head from DIR's, answers matched by name"},
	{O_SKIP, "skip-unknown-answers", NULL, "skip records whose labels name only answers outside the list"},
	{O_CLIP, "clip-norm", "X", "clip the gradients' norm at X (5; 0: no clipping)"},
	{O_VALID, "valid", "FILE", "labelled records to score after every epoch"},
	{O_SAVE, "save-every", "N", "write OUTDIR/checkpoint.safetensors every N steps"},
	{O_STOP, "stop-after", "N", "stop after step N, with a checkpoint"},
	{O_RESUME, "resume", NULL, "continue from OUTDIR/checkpoint.safetensors"},
	{O_FORCE, "force", NULL, "write into an existing OUTDIR"},
	{O_F16, "f16", NULL, "write model.safetensors in float16"},
	{O_LOG, "log-every", "N", "steps between progress lines (10)"},
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-train", synopsis, about, option_table};


/* ---- the training set, read from its file ---- */

/*
 * A training or validation file is not held in memory: one pass over it checks every record (decodes it and
 * its labels) and keeps where each record to train on starts and how long it is; every batch then reads its
 * records again at those offsets. A pipe (or any input that is not a regular file) is first spooled to an
 * unlinked temporary file in TMPDIR (else /tmp), so that every epoch can read it again.
 */

typedef struct {
	lx_example x;           /* in.x */
	lx_example_data in;
	lx_train_labels lab;    /* lab.l is labels.l */
	lx_labels_data labels;
} item;

typedef struct {
	FILE *f;
	const char *name;       /* the path, or "stdin" */
	uint64_t *off;          /* [n] where each record kept starts in f */
	uint32_t *len;          /* [n] and its length in bytes */
	int n, cap;
	long skipped, unknown;  /* --skip-unknown-answers: records left out, answers left out */
	unsigned char *buf;     /* one record read again */
	size_t bufcap;
} dataset;

/* What decoding a record needs. */
typedef struct {
	const lx_config *c;
	int heads;
	const lx_names *answers;
	int skip_unknown;
	long batch;             /* --batch */
	double max_memory;      /* --max-memory in bytes */
} decoding;

/* The labels of one record for the heads the model has; *any says whether there was one, *skip that every
 * answer its label names is outside the list (with --skip-unknown-answers; the others are refused). */
static lx_status decode_labels(const decoding *dc, const lx_record *rec, item *it, int *any, int *skip,
                               long *unknown, lx_err *e)
{
	const msgpack_object *label = lx_record_get(rec, "label");
	float *target;
	lx_status rc;
	int out = 0;

	*skip = 0;
	if ((rc = lx_labels_decode(dc->c, dc->heads, rec, it->x.T, it->x.N, "visual_feats", it->x.visual_feats,
	                           &it->labels, any, e)))
		return rc;
	it->lab.l = it->labels.l;
	if (!(dc->heads & LX_HEAD_QA) || !label || label->type != MSGPACK_OBJECT_MAP)
		return LX_OK;
	if (!dc->answers)
		return lx_errf(e, LX_EINPUT, "field label: a soft-score label needs the answer list (--labels FILE, or "
		                             "answers.json in the model directory)");
	if (!(target = malloc((size_t)dc->c->num_qa_labels * sizeof *target)))
		return lx_errf(e, LX_EIO, "out of memory");
	it->lab.qa_target = target;
	*any = 1;
	if ((rc = lx_soft_label(label, dc->answers, target, dc->skip_unknown ? &out : NULL, e)))
		return rc;
	*unknown += out;
	*skip = out > 0 && (uint32_t)out == label->via.map.size;
	return LX_OK;
}

static void item_free(item *it)
{
	lx_example_data_destroy(&it->in);
	lx_labels_data_destroy(&it->labels);
	free((void *)it->lab.qa_target);
	memset(it, 0, sizeof *it);
}

/* Decodes record rec into it (to be freed with item_free, whatever the outcome). */
static lx_status decode_item(const decoding *dc, const lx_record *rec, item *it, int *skip, long *unknown, lx_err *e)
{
	lx_status rc;
	double need;
	int any = 0;

	memset(it, 0, sizeof *it);
	*skip = 0;
	rc = lx_example_decode(dc->c, rec, &it->in, e);
	it->x = it->in.x;
	if (!rc && (need = lx_train_memory(dc->c, dc->heads, it->x.T, it->x.N)) * dc->batch > dc->max_memory)
		rc = lx_errf(e, LX_EINPUT, "training on it takes %.0f MB, a batch of %ld such %.0f MB, more than "
		             "--max-memory %.0f", need / 1e6, dc->batch, need * dc->batch / 1e6, dc->max_memory / 1e6);
	if (!rc)
		rc = decode_labels(dc, rec, it, &any, skip, unknown, e);
	if (!rc && !any)
		rc = lx_errf(e, LX_EINPUT, "no label to train on (label, ans, matched_label, labels, obj_labels, "
		                           "attr_labels or feat_mask, for a head the model has)");
	return rc;
}

/* Standard input that is not a regular file, copied to an unlinked temporary file. */
static FILE *spool(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096], buf[65536];
	FILE *f;
	ssize_t n, k, w;
	int fd;

	snprintf(path, sizeof path, "%s/lx-train-XXXXXX", dir && *dir ? dir : "/tmp");
	if ((fd = mkstemp(path)) < 0)
		tool_die(LX_EIO, "%s: %s (the spool of stdin; TMPDIR says where it goes)", path, strerror(errno));
	unlink(path);
	for (;;) {
		if (tool_interrupted())
			tool_die(LX_EINTR, "interrupted while reading stdin");
		if ((n = read(STDIN_FILENO, buf, sizeof buf)) < 0) {
			if (errno == EINTR)
				continue;
			tool_die(LX_EIO, "stdin: %s", strerror(errno));
		}
		if (n == 0)
			break;
		for (k = 0; k < n; k += w)
			if ((w = write(fd, buf + k, (size_t)(n - k))) < 0 && errno != EINTR)
				tool_die(LX_EIO, "%s: %s (the spool of stdin; TMPDIR says where it goes)", path, strerror(errno));
			else if (w < 0)
				w = 0;
	}
	if (lseek(fd, 0, SEEK_SET) != 0 || !(f = fdopen(fd, "rb")))
		tool_die(LX_EIO, "%s: %s", path, strerror(errno));
	return f;
}

/* Checks every record of path ("-": stdin) and keeps where the records to train on are; a record without
 * labels is an error. */
static void load(dataset *d, const char *path, const decoding *dc, int progress)
{
	struct stat st;
	lx_reader *r;
	lx_record *rec;
	tool_progress pr;
	item it;
	lx_err e;
	lx_status rc;
	char id[64];
	int skip;
	off_t base = 0;

	memset(d, 0, sizeof *d);
	d->name = strcmp(path, "-") ? path : "stdin";
	if (strcmp(path, "-"))
		d->f = fopen(path, "rb");
	else if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (base = lseek(STDIN_FILENO, 0, SEEK_CUR)) >= 0)
		d->f = stdin;
	else
		d->f = spool();
	if (!d->f)
		tool_die(LX_EIO, "%s: %s", path, strerror(errno));
	if (!(r = lx_reader_new_buffered(d->f, d->name)))
		tool_die(LX_EIO, "out of memory");
	tool_progress_init(&pr, progress, "records", d->name, tool_input_size(d->f));
	for (;;) {
		uint64_t at = lx_reader_offset(r);
		if (tool_interrupted())
			tool_die(LX_EINTR, "interrupted while reading %s", d->name);
		if ((rc = lx_reader_next(r, &rec, &e))) {
			lx_reader_free(r);
			tool_die(rc, "%s", e.msg);
		}
		if (!rec)
			break;
		lx_record_id(rec, id, sizeof id);
		rc = decode_item(dc, rec, &it, &skip, &d->unknown, &e);
		item_free(&it);
		lx_record_free(rec);
		if (rc) {
			long k = lx_reader_count(r);
			lx_reader_free(r);
			tool_die(rc, "%s: record %ld%s%s%s: %s", d->name, k, *id ? " (id " : "", id, *id ? ")" : "", e.msg);
		}
		if (skip) {
			d->skipped++;
			continue;
		}
		if (d->n == d->cap) {
			int nc = d->cap ? 2 * d->cap : 256;
			uint64_t *no = realloc(d->off, (size_t)nc * sizeof *no);
			uint32_t *nl = no ? realloc(d->len, (size_t)nc * sizeof *nl) : NULL;
			if (no)
				d->off = no;
			if (!nl || d->n == INT32_MAX / 2)
				tool_die(LX_EIO, "out of memory reading %s", d->name);
			d->len = nl;
			d->cap = nc;
		}
		if (lx_reader_offset(r) - at > UINT32_MAX)
			tool_die(LX_EINPUT, "%s: record %ld: longer than 4 GB", d->name, lx_reader_count(r));
		d->off[d->n] = (uint64_t)base + at;
		d->len[d->n++] = (uint32_t)(lx_reader_offset(r) - at);
		tool_progress_tick(&pr, d->n, lx_reader_offset(r));
	}
	tool_progress_end(&pr);
	lx_reader_free(r);
	if (d->skipped)
		tool_warn("%s: %ld record%s skipped: %s label%s only answers outside the answer list "
		          "(--skip-unknown-answers)", d->name, d->skipped, d->skipped == 1 ? "" : "s",
		          d->skipped == 1 ? "its" : "their", d->skipped == 1 ? " names" : "s name");
	if (d->unknown)
		tool_warn("%s: %ld answers outside the answer list left out of the labels (--skip-unknown-answers)", d->name,
		          d->unknown);
	if (d->n == 0)
		tool_die(LX_EINPUT, "%s: no records%s", d->name, d->skipped ? " to train on" : "");
}

/* Record i of d, read again and decoded into it (to be freed with item_free). */
static void fetch(dataset *d, int i, const decoding *dc, item *it)
{
	FILE *m;
	lx_reader *r;
	lx_record *rec = NULL;
	lx_err e;
	lx_status rc;
	int skip;
	long unknown = 0;

	if (d->len[i] > d->bufcap) {
		unsigned char *nb = realloc(d->buf, d->len[i]);
		if (!nb)
			tool_die(LX_EIO, "out of memory reading %s", d->name);
		d->buf = nb;
		d->bufcap = d->len[i];
	}
	if (fseeko(d->f, (off_t)d->off[i], SEEK_SET) || fread(d->buf, 1, d->len[i], d->f) != d->len[i])
		tool_die(LX_EIO, "%s: %s", d->name, ferror(d->f) ? strerror(errno) : "shorter than when training began");
	if (!(m = fmemopen(d->buf, d->len[i], "rb")) || !(r = lx_reader_new_buffered(m, d->name)))
		tool_die(LX_EIO, "out of memory");
	rc = lx_reader_next(r, &rec, &e);
	lx_reader_free(r);
	fclose(m);
	if (!rc && rec)
		rc = decode_item(dc, rec, it, &skip, &unknown, &e);
	lx_record_free(rec);
	if (rc || !rec)
		tool_die(rc ? rc : LX_EINPUT, "%s: the record at byte %llu changed since training began%s%s", d->name,
		         (unsigned long long)d->off[i], rc ? ": " : "", rc ? e.msg : "");
}

static void dataset_free(dataset *d)
{
	if (d->f && d->f != stdin)
		fclose(d->f);
	free(d->off);
	free(d->len);
	free(d->buf);
	memset(d, 0, sizeof *d);
}

/* ---- validation ---- */

/* The answer head's score on d: the authors' VQA score (label[predicted answer]) for soft labels, accuracy
 * for ans; and the mean loss of every head. */
static void validate(const lx_trainer *t, dataset *d, const decoding *dc, int batch, double *score, double *loss)
{
	const lx_model *m = lx_trainer_model(t);
	const lx_config *c = lx_model_config(m);
	lx_encoder *enc = lx_encoder_new(m, 0);
	lx_heads *h = lx_heads_new(m);
	lx_outputs *out = malloc((size_t)batch * sizeof *out);
	lx_example *ex = malloc((size_t)batch * sizeof *ex);
	item *it = calloc((size_t)batch, sizeof *it);
	float *q = malloc((size_t)c->num_qa_labels * sizeof *q);
	double sc = 0, ls = 0;
	int i, j, k, ns = 0, nl = 0, best;
	lx_err e;
	lx_status rc;

	if (!enc || !h || !out || !ex || !it || !q)
		tool_die(LX_EIO, "out of memory");
	for (i = 0; i < d->n; i += batch) {
		int n = d->n - i < batch ? d->n - i : batch;
		for (j = 0; j < n; j++) {
			fetch(d, i + j, dc, &it[j]);
			ex[j] = it[j].x;
		}
		if ((rc = lx_encode(enc, ex, n, out, &e)))
			tool_die(rc, "validation: %s", e.msg);
		for (j = 0; j < n; j++) {
			const lx_train_labels *l = &it[j].lab;
			lx_losses lo;
			if ((lx_trainer_heads(t) & LX_HEAD_QA) && (l->qa_target || l->l.has_ans)) {
				if ((rc = lx_heads_answer(h, out[j].pooled, q, &e)))
					tool_die(rc, "validation: %s", e.msg);
				for (k = 1, best = 0; k < c->num_qa_labels; k++)
					if (q[k] > q[best])
						best = k;
				sc += l->qa_target ? l->qa_target[best] : best == l->l.ans;
				ns++;
				if (l->qa_target) {
					ls += lx_bce_loss(q, l->qa_target, c->num_qa_labels);
					nl++;
					continue;
				}
			}
			if ((rc = lx_heads_losses(h, lx_trainer_heads(t), &l->l, out[j].lang, out[j].visn, out[j].pooled, &lo,
			                          &e)))
				tool_die(rc, "validation: %s", e.msg);
			ls += lo.total;
			nl++;
		}
		for (j = 0; j < n; j++)
			item_free(&it[j]);
	}
	*score = ns ? sc / ns : NAN;
	*loss = nl ? ls / nl : NAN;
	free(q);
	free(it);
	free(ex);
	free(out);
	lx_heads_free(h);
	lx_encoder_free(enc);
}

/* ---- files ---- */

/* Training computes in float32: a model stored in int8 (lx-convert --dtype int8) is refused. */
static void refuse_int8(const char *dir)
{
	lx_model *m;
	lx_err e;

	if (lx_model_open(&m, dir, &e))
		return; /* lx_trainer_open says why */
	if (lx_model_compute(m) != LX_F32)
		tool_die(LX_EMODEL, "%s: the model is stored in int8: lx-train trains float32 models only", dir);
	lx_model_free(m);
}

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* lx_write_atomic's writer of a copy of the file open in ctx. */
static lx_status write_copy(void *ctx, FILE *out, const char *path, lx_err *e)
{
	FILE *in = ctx;
	char buf[65536];
	size_t n;

	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	return ferror(in) ? lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno)) : LX_OK;
}

/* Copies src to dst, atomically; nothing if src does not exist. */
static lx_status copy_file(const char *src, const char *dst, lx_err *e)
{
	FILE *in = fopen(src, "rb");
	lx_status rc;

	if (!in)
		return LX_OK;
	rc = lx_write_atomic(dst, write_copy, in, e);
	fclose(in);
	return rc;
}

/* lx_write_atomic's writer of answers.json: the answer list in ctx as a JSON list of strings. */
static lx_status write_answer_list(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const lx_names *a = ctx;
	int i;

	fputc('[', f);
	for (i = 0; i < lx_names_count(a); i++) {
		fputs(i ? ", " : "", f);
		lx_json_str(f, lx_names_get(a, i), strlen(lx_names_get(a, i)), 0);
	}
	fputs("]\n", f);
	return ferror(f) ? lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno)) : LX_OK;
}

static lx_status write_answers(const lx_names *a, const char *dir, lx_err *e)
{
	char path[4200];

	snprintf(path, sizeof path, "%s/answers.json", dir);
	return lx_write_atomic(path, write_answer_list, (void *)a, e);
}

/* ---- the schedule ---- */

/* Hugging Face's get_linear_schedule_with_warmup: lr s / W during warm-up, then down to 0 at the last step. */
static float lr_at(float lr, long s, long warmup, long total)
{
	if (s < warmup)
		return lr * (float)s / (float)(warmup > 0 ? warmup : 1);
	return lr * (float)fmax(0.0, (double)(total - s) / (double)(total - warmup > 0 ? total - warmup : 1));
}

/* The order of epoch ep's examples: a Fisher-Yates shuffle seeded by (seed, epoch). */
static void shuffle(int *ord, int n, uint64_t seed, long ep)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)ep + 1) * 0xd1b54a32d192ed03ULL;
	int i;

	for (i = 0; i < n; i++)
		ord[i] = i;
	for (i = n - 1; i > 0; i--) {
		uint64_t z;
		int j, k;
		s += 0x9e3779b97f4a7c15ULL;
		z = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		j = (int)(z % (uint64_t)(i + 1));
		k = ord[i];
		ord[i] = ord[j];
		ord[j] = k;
	}
}

/* ---- main ---- */

typedef struct {
	const char *model, *outdir, *train, *labels, *valid, *init_answers;
	long epochs, batch, warmup, save_every, stop_after, log_every;
	double lr, clip, max_memory;
	int threads, resume, force, f16, progress, skip_unknown;
	lx_train_opts o;
} options;

static void parse(options *op, int argc, char **argv)
{
	int ch;

	memset(op, 0, sizeof *op);
	lx_train_opts_init(&op->o);
	op->epochs = 1;
	op->batch = 32;
	op->warmup = -1;
	op->lr = 5e-5;
	op->threads = 1;
	op->log_every = 10;
	op->clip = 5;
	op->max_memory = 1536e6;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 'm': op->model = optarg; break;
		case 'o': op->outdir = optarg; break;
		case O_EPOCHS: op->epochs = tool_long(optarg, "--epochs", 1, 1000000); break;
		case O_LR: op->lr = tool_real(optarg, "--lr", 0, 10); break;
		case TOOL_BATCH: op->batch = tool_long(optarg, "--batch", 1, 65536); break;
		case O_WARMUP: op->warmup = tool_long(optarg, "--warmup", 0, 1L << 40); break;
		case O_SEED: op->o.seed = (uint64_t)tool_long(optarg, "--seed", 0, 1L << 62); break;
		case TOOL_THREADS: op->threads = (int)tool_long(optarg, "--threads", 1, 256); break;
		case O_FREEZE:
			if (strcmp(optarg, "encoder"))
				tool_usage("--freeze: \"%s\": only \"encoder\" can be frozen", optarg);
			op->o.freeze_encoder = 1;
			break;
		case O_NEWHEAD: op->o.new_head = (int)tool_long(optarg, "--new-head", 1, 1 << 24); break;
		case O_LABELS: op->labels = optarg; break;
		case O_VALID: op->valid = optarg; break;
		case O_SAVE: op->save_every = tool_long(optarg, "--save-every", 1, 1L << 40); break;
		case O_STOP: op->stop_after = tool_long(optarg, "--stop-after", 1, 1L << 40); break;
		case O_RESUME: op->resume = 1; break;
		case O_FORCE: op->force = 1; break;
		case O_F16: op->f16 = 1; break;
		case O_DROPOUT: op->o.dropout = (float)tool_real(optarg, "--dropout", 0, 0.99); break;
		case O_WD: op->o.weight_decay = (float)tool_real(optarg, "--weight-decay", 0, 1); break;
		case O_INIT: op->init_answers = optarg; break;
		case O_CLIP: op->clip = tool_real(optarg, "--clip-norm", 0, 1e30); break;
		case O_SKIP: op->skip_unknown = 1; break;
		case O_MAX_MEMORY: op->max_memory = 1e6 * (double)tool_long(optarg, "--max-memory", 1, 1 << 20); break;
		case O_LOG: op->log_every = tool_long(optarg, "--log-every", 1, 1L << 40); break;
		case TOOL_PROGRESS: op->progress = 1; break;
		}
	}
	tool_require(op->model, "-m DIR");
	tool_require(op->outdir, "-o OUTDIR");
	if (argc - optind > 1)
		tool_usage("one training file at most");
	if (op->labels && !op->o.new_head)
		tool_usage("--labels names the answers of a --new-head");
	op->train = optind < argc ? argv[optind] : "-";
}

/* The answer list: --labels for a new head, else the model directory's answers.json or answers.txt. */
static lx_names *answer_list(const options *op, int A)
{
	lx_names *a;
	lx_err e;
	lx_status rc;

	if ((rc = lx_names_load_model(&a, op->model, LX_LIST_ANSWERS, op->labels, A, &e)))
		tool_die(rc, "%s", e.msg);
	return a;
}

/* The output directory, made when the first file goes into it: a run that fails before it leaves none. */
static void make_outdir(const options *op)
{
	if (is_dir(op->outdir))
		return;
	if (mkdir(op->outdir, 0777) == 0)
		return;
	if (errno == EEXIST)
		tool_die(LX_EUSAGE, "%s: the output directory appeared while training (another run?); this run is lost",
		         op->outdir);
	tool_die(LX_EIO, "%s: %s", op->outdir, strerror(errno));
}

/* The model directory, built whole in a fresh directory beside OUTDIR and moved into its place in one step
 * (swapped with the earlier OUTDIR, which is then removed), with the last checkpoint linked into it: a crash
 * or a full disk leaves the earlier OUTDIR as it was, never new weights beside old answers. */
static void save_model(const lx_trainer *t, const options *op, const lx_names *answers, const char *ckpt)
{
	char tmp[4096], src[4200], dst[4200];
	lx_err e;
	lx_status rc;

	if ((rc = lx_dir_aside(op->outdir, tmp, sizeof tmp, &e)))
		tool_die(rc, "%s", e.msg);
	rc = lx_trainer_save_model(t, tmp, op->f16, &e);
	snprintf(src, sizeof src, "%s/vocab.txt", op->model);
	snprintf(dst, sizeof dst, "%s/vocab.txt", tmp);
	if (!rc)
		rc = copy_file(src, dst, &e);
	if (!rc && answers)
		rc = write_answers(answers, tmp, &e);
	snprintf(dst, sizeof dst, "%s/checkpoint.safetensors", tmp);
	if (!rc && access(ckpt, F_OK) == 0 && link(ckpt, dst) && errno != EEXIST)
		rc = lx_errf(&e, LX_EIO, "%s: %s", dst, strerror(errno));
	if (!rc)
		rc = lx_dir_publish(tmp, op->outdir, is_dir(op->outdir), &e);
	if (rc) {
		lx_err e2;
		lx_remove_tree(tmp, &e2);
		tool_die(rc, "%s", e.msg);
	}
}

/* ---- one run per OUTDIR ---- */

static lx_lock *outdir_lock;

static void release_outdir(void) { lx_lock_release(outdir_lock); }

/* Takes OUTDIR's lock for the whole run (another run on it: status 2, naming its pid) and removes what a
 * killed run left: directories built aside, and the checkpoint's temporaries. */
static void lock_outdir(const options *op, const char *ckpt)
{
	lx_err e;
	lx_status rc;

	if ((rc = lx_lock_take(op->outdir, &outdir_lock, &e)))
		tool_die(rc, "%s", e.msg);
	atexit(release_outdir);
	if (lx_clean_stale(op->outdir, &e) || (is_dir(op->outdir) && lx_clean_stale(ckpt, &e)))
		tool_warn("%s", e.msg);
}

static void save_checkpoint(const lx_trainer *t, const options *op, const char *ckpt, const int64_t *extra,
                            const char *settings)
{
	lx_err e;
	lx_status rc;

	make_outdir(op);
	if ((rc = lx_trainer_save_checkpoint(t, ckpt, extra, 3, settings, &e)))
		tool_die(rc, "%s", e.msg);
}

/* ---- what a checkpoint records of its run ---- */

enum { SETTINGS_MAX = 1024 };

static uint64_t names_digest(const lx_names *a)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *p;
	int i;

	for (i = 0; a && i < lx_names_count(a); i++)
		for (p = (const unsigned char *)lx_names_get(a, i);; p++) {
			h = (h ^ *p) * 0x100000001b3ULL;
			if (!*p)
				break;
		}
	return h;
}

/* Every setting the weights depend on, one "name value" a line: the model's weights as they were opened and
 * its answer list (digests), the head --init-answers made, and the options. The records (their number) and
 * the step are in trainer.state. */
static void settings_text(char *buf, const options *op, uint64_t model, uint64_t answers, uint64_t init)
{
	char warmup[32];

	snprintf(warmup, sizeof warmup, op->warmup < 0 ? "default" : "%ld", op->warmup);
	snprintf(buf, SETTINGS_MAX,
	         "model %016llx\nanswers %016llx\nnew-head %d\ninit-answers %016llx\nlr %.9g\nwarmup %s\nepochs %ld\n"
	         "batch %ld\nseed %llu\ndropout %.9g\nweight-decay %.9g\nfreeze %s\nclip-norm %.9g\n"
	         "skip-unknown-answers %s\n",
	         (unsigned long long)model, (unsigned long long)answers, op->o.new_head, (unsigned long long)init, op->lr,
	         warmup, op->epochs, op->batch, (unsigned long long)op->o.seed, op->o.dropout, op->o.weight_decay,
	         op->o.freeze_encoder ? "encoder" : "none", op->clip, op->skip_unknown ? "yes" : "no");
}

/* The value of setting key in text, copied to v[n] ("" when absent). */
static const char *setting(const char *text, const char *key, char *v, size_t n)
{
	size_t len = strlen(key);
	const char *p, *end;

	*v = 0;
	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, len) == 0 && p[len] == ' ') {
			end = strchr(p + len + 1, '\n');
			snprintf(v, n, "%.*s", (int)(end ? end - (p + len + 1) : (long)strlen(p + len + 1)), p + len + 1);
			break;
		}
	return v;
}

/* --resume: the checkpoint's run must be this one, setting for setting. */
static void check_settings(const char *ckpt, const char *saved, const char *mine)
{
	static const char afresh[] = "--force without --resume starts afresh";
	const char *p;
	char key[64], a[128], b[128];

	if (!*saved)
		tool_die(LX_EUSAGE, "%s: written by an lx-train that did not record its settings, so this run cannot be "
		                    "checked against it; %s", ckpt, afresh);
	for (p = mine; *p; p = strchr(p, '\n') + 1) {
		snprintf(key, sizeof key, "%.*s", (int)(strchr(p, ' ') - p), p);
		if (strcmp(setting(saved, key, a, sizeof a), setting(mine, key, b, sizeof b)) == 0)
			continue;
		if (!strcmp(key, "model"))
			tool_die(LX_EUSAGE, "%s: saved by a run from another model (-m: its weights differ); %s", ckpt, afresh);
		if (!strcmp(key, "answers"))
			tool_die(LX_EUSAGE, "%s: saved by a run with another answer list; %s", ckpt, afresh);
		if (!strcmp(key, "init-answers"))
			tool_die(LX_EUSAGE, "%s: saved by a run whose answer head started from another --init-answers; %s", ckpt,
			         afresh);
		tool_die(LX_EUSAGE, "%s: saved by a run with --%s %s; this one has --%s %s; %s", ckpt, key, *a ? a : "(none)",
		         key, b, afresh);
	}
}

/* --force over an earlier run: its checkpoint goes out of --resume's way, to checkpoint.safetensors.old. */
static void set_aside(const char *ckpt)
{
	char old[4200];

	snprintf(old, sizeof old, "%s.old", ckpt);
	if (rename(ckpt, old) == 0)
		tool_warn("%s: the earlier run's checkpoint, set aside as %s", ckpt, old);
	else if (errno != ENOENT)
		tool_die(LX_EIO, "%s: %s", ckpt, strerror(errno));
}

/* --init-answers: the answer head from another model's, rows matched by answer name. */
static void init_answers(lx_trainer *t, const options *op, const lx_names *answers)
{
	lx_err e;
	lx_status rc;
	int matched;

	if (!answers)
		tool_die(LX_EUSAGE, "--init-answers: the answers must have names (--labels FILE with --new-head, or the "
		                    "model's answers.json)");
	if ((rc = lx_trainer_init_answers(t, op->init_answers, answers, &matched, &e)))
		tool_die(rc, "%s", e.msg);
	tool_warn("--init-answers %s: %d of %d answers found by name; the other %d start from zero", op->init_answers,
	          matched, lx_names_count(answers), lx_names_count(answers) - matched);
}

int main(int argc, char **argv)
{
	options op;
	lx_trainer *t;
	lx_names *answers;
	dataset train, valid;
	decoding dc;
	const lx_config *c;
	lx_example *ex;
	lx_train_labels *lab;
	item *it;
	lx_losses loss;
	lx_err e;
	lx_status rc;
	char ckpt[4096], settings[SETTINGS_MAX], saved[SETTINGS_MAX];
	uint64_t model_digest;
	int *ord;
	long spe, total, warmup, s;
	int64_t extra[3];
	double t0, tl, lsum = 0;
	long lcount = 0, done = 0;

	parse(&op, argc, argv);
	lx_set_threads(op.threads);
	tool_signals(NULL);
	refuse_int8(op.model);
	snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", op.outdir);
	lock_outdir(&op, ckpt);
	if (is_dir(op.outdir) && !op.force && !op.resume)
		tool_die(LX_EUSAGE, "%s: the output directory exists (--force to write into it, --resume to continue)",
		    op.outdir);
	if (op.resume && access(ckpt, F_OK))
		tool_die(LX_EUSAGE, "%s: no checkpoint to resume from", ckpt);
	if ((rc = lx_trainer_open(&t, op.model, &op.o, &e)))
		tool_die(rc, "%s", e.msg);
	c = lx_model_config(lx_trainer_model(t));
	model_digest = lx_trainer_digest(t, "");
	answers = (lx_trainer_heads(t) & LX_HEAD_QA) ? answer_list(&op, c->num_qa_labels) : NULL;
	if (op.init_answers)
		init_answers(t, &op, answers);
	settings_text(settings, &op, model_digest, names_digest(answers),
	              op.init_answers ? lx_trainer_digest(t, "answer_head.") : 0);
	/* a checkpoint that cannot be used is found before the training set is read */
	if (op.resume) {
		if ((rc = lx_trainer_load_checkpoint(t, ckpt, extra, 3, saved, sizeof saved, &e)))
			tool_die(rc, "%s", e.msg);
		check_settings(ckpt, saved, settings);
	}
	dc.c = c;
	dc.heads = lx_trainer_heads(t);
	dc.answers = answers;
	dc.skip_unknown = op.skip_unknown;
	dc.batch = op.batch;
	dc.max_memory = op.max_memory;
	load(&train, op.train, &dc, op.progress);
	if (op.valid)
		load(&valid, op.valid, &dc, op.progress);
	spe = (train.n + op.batch - 1) / op.batch;
	total = spe * op.epochs;
	warmup = op.warmup >= 0 ? op.warmup : total / 10;
	if (op.resume && extra[0] != train.n)
		tool_die(LX_EUSAGE, "%s: saved by a run over %lld training records; this one has %d; --force without --resume "
		         "starts afresh", ckpt, (long long)extra[0], train.n);
	if (op.force && !op.resume)
		set_aside(ckpt);
	extra[0] = train.n;
	extra[1] = op.batch;
	extra[2] = (int64_t)op.o.seed;
	ex = malloc((size_t)op.batch * sizeof *ex);
	lab = malloc((size_t)op.batch * sizeof *lab);
	it = calloc((size_t)op.batch, sizeof *it);
	ord = malloc((size_t)train.n * sizeof *ord);
	if (!ex || !lab || !it || !ord)
		tool_die(LX_EIO, "out of memory");
	tool_warn("%d training records, %ld steps (%ld a epoch), warm-up %ld, lr %g, batch %ld%s", train.n, total, spe, warmup, op.lr, op.batch, op.o.freeze_encoder ? ", encoder frozen" : "");
	t0 = tl = lx_now();
	for (s = lx_trainer_steps(t); s < total; s++) {
		long ep = s / spe, b = s % spe, j;
		int n;
		if (b == 0 || s == lx_trainer_steps(t))
			shuffle(ord, train.n, op.o.seed, ep);
		n = (int)(train.n - b * op.batch < op.batch ? train.n - b * op.batch : op.batch);
		for (j = 0; j < n; j++) {
			fetch(&train, ord[b * op.batch + j], &dc, &it[j]);
			ex[j] = it[j].x;
			lab[j] = it[j].lab;
		}
		if ((rc = lx_trainer_grad(t, ex, lab, n, &loss, &e)))
			tool_die(rc, "step %ld: %s", s + 1, e.msg);
		for (j = 0; j < n; j++)
			item_free(&it[j]);
		if (!isfinite(loss.total))
			tool_die(LX_EINPUT, "step %ld: the loss is %g; try a lower --lr", s + 1, loss.total);
		lx_trainer_clip(t, op.clip);
		lx_trainer_step(t, lr_at((float)op.lr, s, warmup, total));
		lsum += loss.total;
		lcount++;
		done += n;
		if ((s + 1) % op.log_every == 0 || s + 1 == total || b + 1 == spe) {
			double now = lx_now();
			tool_warn("step %ld/%ld epoch %ld loss %.4f lr %.3g %.1f examples/s", s + 1, total, ep + 1, lsum / lcount, lr_at((float)op.lr, s, warmup, total), done / (now - tl));
			lsum = 0;
			lcount = done = 0;
			tl = now;
		}
		if (b + 1 == spe && op.valid) {
			double score, vloss;
			validate(t, &valid, &dc, (int)op.batch, &score, &vloss);
			tool_warn("epoch %ld: validation score %.4f, loss %.4f (%d records)", ep + 1, score, vloss, valid.n);
			tl = lx_now(); /* examples/s counts training only */
		}
		if ((op.save_every && (s + 1) % op.save_every == 0) || (op.stop_after && s + 1 == op.stop_after))
			save_checkpoint(t, &op, ckpt, extra, settings);
		if (op.stop_after && s + 1 == op.stop_after) {
			tool_warn("stopped after step %ld; --resume continues", s + 1);
			break;
		}
		if (tool_interrupted()) {
			save_checkpoint(t, &op, ckpt, extra, settings);
			tool_die(LX_EINTR, "interrupted after step %ld; %s written, --resume continues", s + 1, ckpt);
		}
	}
	save_model(t, &op, answers, ckpt);
	tool_warn("%ld steps in %.1f s; wrote %s", lx_trainer_steps(t), lx_now() - t0, op.outdir);
	free(ex);
	free(lab);
	free(it);
	free(ord);
	dataset_free(&train);
	if (op.valid)
		dataset_free(&valid);
	lx_names_free(answers);
	lx_trainer_free(t);
	return 0;
}

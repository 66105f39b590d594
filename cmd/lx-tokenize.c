/* lx-tokenize - text to LXMERT's BERT word-piece ids (input_ids), one record a line; --decode goes back. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "lx.h"
#include "lx_tokenizer.h"

static const char usage_text[] =
	"Usage: lx-tokenize (-m DIR | --vocab FILE) [OPTION]... [FILE]...\n"
	"Tokenizes text with LXMERT's uncased BERT WordPiece tokenizer: one msgpack record a line of input, with\n"
	"input_ids ([CLS] pieces [SEP], int32). Reads the FILEs, or stdin when there are none (or for -).\n"
	"\n"
	"  -m, --model DIR       the vocabulary is DIR/vocab.txt\n"
	"      --vocab FILE      the vocabulary is FILE\n"
	"      --jsonl           a line is a JSON object: tokenize its field sent, keep all its fields\n"
	"      --field NAME      with --jsonl, tokenize the field NAME instead of sent\n"
	"      --tokens          add tokens, an array of the word-piece strings\n"
	"      --max-length N    keep [CLS], the first N-2 pieces and [SEP] (LXMERT uses 20)\n"
	"      --replace-invalid read invalid UTF-8 as U+FFFD, which the tokenizer drops (default: an error)\n"
	"      --decode          the reverse: records with input_ids in, one line of text each out\n"
	"      --keep-going      write a bad line as a record with an error field and go on\n"
	"      --progress        show progress on stderr even when it is not a terminal\n"
	"  -h, --help            show this help and exit\n";

typedef struct {
	int jsonl, tokens, decode, replace_invalid, progress, keep_going;
	long bad;           /* lines written as error records (--keep-going) */
	int epipe;          /* --decode: the reader of stdout went away */
	int max_length;
	const char *field;
	lx_tokenizer *tk;
	const lx_vocab *v;
	lx_writer *w;
	lx_progress prog;
	long done;
	char *fix;          /* a line with invalid UTF-8 replaced */
	size_t fixcap;
	int32_t *ids;       /* --decode: input_ids of a record */
	size_t idscap;
} ctx;

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

/* ---- text to records ---- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* A JSON value as msgpack: int, float64, str, bool, nil, array, map with str keys. */
static void pack_json(msgpack_packer *pk, json_t *j)
{
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach(j, k, x) {
			pack_str(pk, k, strlen(k));
			pack_json(pk, x);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, x)
			pack_json(pk, x);
		break;
	case JSON_STRING:
		pack_str(pk, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}

static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Copies the JSON object's fields into rec and finds the text. */
static lx_status from_json(ctx *c, lx_record *rec, const char *line, size_t len, const char *where, json_t **root,
                           const char **text, size_t *tlen, lx_err *e)
{
	json_error_t je;
	json_t *t, *x;
	const char *k;

	if (len == 0)
		return lx_errf(e, LX_EINPUT, "%s: empty line, expected a JSON object", where);
	if (!(*root = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je)))
		return lx_errf(e, LX_EINPUT, "%s: not JSON (%s)", where, je.text);
	if (!json_is_object(*root))
		return lx_errf(e, LX_EINPUT, "%s: %s, expected a JSON object", where, json_kind(*root));
	json_object_foreach(*root, k, x) {
		msgpack_packer *pk = lx_record_add_packer(rec, k);
		if (!pk)
			return lx_errf(e, LX_EIO, "out of memory");
		pack_json(pk, x);
	}
	if (json_is_string(json_object_get(*root, "error"))) { /* refused upstream: passed on as it is */
		*text = NULL;
		return LX_OK;
	}
	if (!(t = json_object_get(*root, c->field)))
		return lx_errf(e, LX_EINPUT, "%s: no field %s (the text to tokenize)", where, c->field);
	if (!json_is_string(t))
		return lx_errf(e, LX_EINPUT, "%s: field %s is %s, expected a string", where, c->field, json_kind(t));
	*text = json_string_value(t);
	*tlen = json_string_length(t);
	return LX_OK;
}

static lx_status add_ids(ctx *c, lx_record *rec, const int32_t *ids, size_t n)
{
	int64_t shape[1] = {(int64_t)n};
	msgpack_packer *pk;
	size_t i;

	if (lx_record_add_tensor(rec, "input_ids", LX_I32, 1, shape, ids))
		return LX_EIO;
	if (!c->tokens)
		return LX_OK;
	if (!(pk = lx_record_add_packer(rec, "tokens")))
		return LX_EIO;
	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++) {
		size_t k;
		const char *p = lx_vocab_token(c->v, ids[i], &k);
		pack_str(pk, p, k);
	}
	return LX_OK;
}

/* Invalid UTF-8 in the line is an error, or with --replace-invalid is replaced in c->fix, which the line
 * then points to. */
static lx_status check_utf8(ctx *c, const char *where, const char **line, size_t *len, lx_err *e)
{
	size_t bad = lx_utf8_invalid(*line, *len);

	if (bad == *len)
		return LX_OK;
	if (!c->replace_invalid)
		return lx_errf(e, LX_EINPUT, "%s: invalid UTF-8 at byte %zu (0x%02x); --replace-invalid reads it as U+FFFD",
		               where, bad + 1, (unsigned char)(*line)[bad]);
	if (3 * *len > c->fixcap) {
		char *nf = realloc(c->fix, 3 * *len);
		if (!nf)
			return lx_errf(e, LX_EIO, "out of memory");
		c->fix = nf;
		c->fixcap = 3 * *len;
	}
	*len = lx_utf8_repair(*line, *len, c->fix);
	*line = c->fix;
	return LX_OK;
}

/* --keep-going: the bad line's record (the fields of its JSON object, if it was one) goes out with error. */
static lx_status keep_going(ctx *c, lx_record *rec, lx_err *e)
{
	char line[sizeof e->msg + 20];

	snprintf(line, sizeof line, "lx-tokenize: %s", e->msg);
	fprintf(stderr, "%s\n", line);
	c->bad++;
	if (lx_record_set_error(rec, line))
		return lx_errf(e, LX_EIO, "out of memory");
	return lx_writer_put(c->w, rec, e);
}

/* One line of input (without its line ending) to one record. */
static lx_status encode_line(ctx *c, const char *name, long lineno, const char *line, size_t len, lx_err *e)
{
	char where[300], msg[sizeof e->msg];
	const char *text;
	size_t tlen, n;
	const int32_t *ids;
	json_t *root = NULL;
	lx_record *rec;
	lx_status st;

	snprintf(where, sizeof where, "%s: line %ld", name, lineno);
	if (!(rec = lx_record_new()))
		return lx_errf(e, LX_EIO, "out of memory");
	st = check_utf8(c, where, &line, &len, e);
	text = line;
	tlen = len;
	if (st)
		;
	else if (c->jsonl)
		st = from_json(c, rec, line, len, where, &root, &text, &tlen, e);
	else if (lx_record_add_str(rec, "sent", text, tlen))
		st = lx_errf(e, LX_EIO, "out of memory");
	if (!st && text && (st = lx_tokenize(c->tk, text, tlen, c->max_length, &ids, &n, e))) {
		memcpy(msg, e->msg, sizeof msg);
		lx_errf(e, st, "%s: %s", where, msg);
	}
	if (!st && text && add_ids(c, rec, ids, n))
		st = lx_errf(e, LX_EIO, "out of memory");
	if (st == LX_EINPUT && c->keep_going)
		st = keep_going(c, rec, e);
	else if (!st)
		st = lx_writer_put(c->w, rec, e);
	json_decref(root);
	lx_record_free(rec);
	return st;
}

static lx_status encode_file(ctx *c, FILE *f, const char *name, lx_err *e)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long lineno = 0;
	lx_status st = LX_OK;

	while (!lx_interrupted() && (got = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)got;
		lineno++;
		if (len && line[len - 1] == '\n')
			len--;
		if (len && line[len - 1] == '\r')
			len--;
		if ((st = encode_line(c, name, lineno, line, len, e)))
			break;
		lx_progress_tick(&c->prog, ++c->done);
	}
	if (!st && ferror(f))
		st = lx_errf(e, LX_EIO, "%s: %s", name, strerror(errno));
	free(line);
	return st;
}

/* ---- records to text ---- */

static lx_status decode_record(ctx *c, const lx_record *rec, const char *where, lx_err *e)
{
	lx_tensor t;
	const char *text;
	size_t len;
	lx_status st;
	char msg[sizeof e->msg];

	if ((st = lx_record_tensor(rec, "input_ids", &t, NULL, e)))
		goto fail;
	if (t.ndim != 1)
		return lx_errf(e, LX_EINPUT, "%s: field input_ids has %d dimensions, expected 1", where, t.ndim);
	if ((size_t)t.numel > c->idscap) {
		int32_t *ni = realloc(c->ids, (size_t)t.numel * sizeof *ni);
		if (!ni)
			return lx_errf(e, LX_EIO, "out of memory");
		c->ids = ni;
		c->idscap = (size_t)t.numel;
	}
	if ((st = lx_tensor_to_i32(&t, c->ids, "input_ids", e)) ||
	    (st = lx_detokenize(c->tk, c->ids, (size_t)t.numel, &text, &len, e)))
		goto fail;
	if (fwrite(text, 1, len, stdout) != len || putchar('\n') == EOF) {
		c->epipe = errno == EPIPE;
		return lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	}
	return LX_OK;
fail:
	memcpy(msg, e->msg, sizeof msg);
	return lx_errf(e, st, "%s: %s", where, msg);
}

static lx_status decode_file(ctx *c, FILE *f, const char *name, lx_err *e)
{
	lx_reader *r = lx_reader_new(f, name);
	lx_record *rec;
	lx_status st;

	if (!r)
		return lx_errf(e, LX_EIO, "out of memory");
	while (!lx_interrupted() && !(st = lx_reader_next(r, &rec, e)) && rec) {
		char where[400], id[64];
		if (lx_record_is_error(rec)) { /* refused upstream: an empty line keeps lines and records in step */
			lx_record_free(rec);
			if (putchar('\n') == EOF) {
				c->epipe = errno == EPIPE;
				return lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
			}
			lx_progress_tick(&c->prog, ++c->done);
			continue;
		}
		if (*lx_record_id(rec, id, sizeof id))
			snprintf(where, sizeof where, "%s: record %ld (id %s)", name, lx_reader_count(r), id);
		else
			snprintf(where, sizeof where, "%s: record %ld", name, lx_reader_count(r));
		st = decode_record(c, rec, where, e);
		lx_record_free(rec);
		if (st)
			break;
		lx_progress_tick(&c->prog, ++c->done);
	}
	lx_reader_free(r);
	return st;
}

/* ---- main ---- */

static lx_status run_file(ctx *c, const char *path, lx_err *e)
{
	int is_stdin = strcmp(path, "-") == 0;
	const char *name = is_stdin ? "stdin" : path;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	lx_status st;
	struct stat sb;

	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	if (!is_stdin && fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fclose(f);
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(EISDIR));
	}
	st = c->decode ? decode_file(c, f, name, e) : encode_file(c, f, name, e);
	if (!is_stdin)
		fclose(f);
	return st;
}

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("lx-tokenize: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int bad_usage(const char *msg)
{
	if (msg)
		fail("%s", msg);
	usage(stderr);
	return LX_EUSAGE;
}

enum { OPT_VOCAB = 256, OPT_JSONL, OPT_FIELD, OPT_TOKENS, OPT_MAXLEN, OPT_REPLACE, OPT_DECODE, OPT_PROGRESS, OPT_KEEP };

static const struct option long_opts[] = {
	{"model", required_argument, NULL, 'm'},
	{"vocab", required_argument, NULL, OPT_VOCAB},
	{"jsonl", no_argument, NULL, OPT_JSONL},
	{"field", required_argument, NULL, OPT_FIELD},
	{"tokens", no_argument, NULL, OPT_TOKENS},
	{"max-length", required_argument, NULL, OPT_MAXLEN},
	{"replace-invalid", no_argument, NULL, OPT_REPLACE},
	{"decode", no_argument, NULL, OPT_DECODE},
	{"progress", no_argument, NULL, OPT_PROGRESS},
	{"keep-going", no_argument, NULL, OPT_KEEP},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Parses the options into c and the vocabulary path; returns -1 to go on, else an exit status. */
static int parse_args(ctx *c, int argc, char **argv, char *vocab, size_t vocab_size)
{
	const char *model = NULL, *vfile = NULL;
	int o;

	c->field = "sent";
	while ((o = getopt_long(argc, argv, "hm:", long_opts, NULL)) != -1) {
		char *end;
		long n;
		switch (o) {
		case 'h': usage(stdout); return 0;
		case 'm': model = optarg; break;
		case OPT_VOCAB: vfile = optarg; break;
		case OPT_JSONL: c->jsonl = 1; break;
		case OPT_FIELD: c->field = optarg; break;
		case OPT_TOKENS: c->tokens = 1; break;
		case OPT_REPLACE: c->replace_invalid = 1; break;
		case OPT_DECODE: c->decode = 1; break;
		case OPT_PROGRESS: c->progress = 1; break;
		case OPT_KEEP: c->keep_going = 1; break;
		case OPT_MAXLEN:
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 2 || n > INT_MAX)
				return bad_usage("--max-length takes a whole number of at least 2");
			c->max_length = (int)n;
			break;
		default: return bad_usage(NULL);
		}
	}
	if (!model == !vfile)
		return bad_usage("give the vocabulary with exactly one of -m DIR and --vocab FILE");
	if (c->decode && (c->jsonl || c->tokens || c->max_length || strcmp(c->field, "sent") || c->keep_going))
		return bad_usage("--decode takes none of --jsonl, --field, --tokens, --max-length and --keep-going");
	if (strcmp(c->field, "sent") && !c->jsonl)
		return bad_usage("--field needs --jsonl");
	if (vfile)
		snprintf(vocab, vocab_size, "%s", vfile);
	else
		snprintf(vocab, vocab_size, "%s/vocab.txt", model);
	return -1;
}

int main(int argc, char **argv)
{
	ctx c = {0};
	lx_vocab *v = NULL;
	lx_err e = {0};
	lx_status st = LX_OK, fst;
	char vocab[4096];
	int rc, i;

	if ((rc = parse_args(&c, argc, argv, vocab, sizeof vocab)) >= 0)
		return rc;
	if ((st = lx_vocab_load(&v, vocab, &e))) {
		fail("%s", e.msg);
		return st;
	}
	c.v = v;
	c.tk = lx_tokenizer_new(v, c.replace_invalid ? LX_TOK_REPLACE_INVALID : 0);
	c.w = lx_writer_new(stdout, "stdout");
	if (!c.tk || !c.w) {
		fail("out of memory");
		return LX_EIO;
	}
	lx_signals_init();
	lx_progress_init(&c.prog, stderr, "lx-tokenize", c.progress);
	if (optind == argc)
		st = run_file(&c, "-", &e);
	for (i = optind; i < argc && !st && !lx_interrupted(); i++)
		st = run_file(&c, argv[i], &e);
	lx_progress_end(&c.prog);
	/* every record before a bad one is written */
	fst = lx_writer_flush(c.w, st ? NULL : &e);
	if (st == LX_EIO && lx_interrupted() && !fst)
		st = LX_OK; /* a read cut short by the signal */
	if (!st)
		st = fst;
	if (fclose(stdout) != 0 && !st)
		st = lx_errf(&e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	if (st && !(st == LX_EIO && (lx_writer_broken_pipe(c.w) || c.epipe)))
		fail("%s", e.msg);
	else if (!st && lx_interrupted()) {
		st = LX_EINTR;
		fail("interrupted after %ld records, all written", c.done);
	} else if (!st && c.bad) {
		st = LX_EINPUT;
		fail("%ld of %ld lines were bad, written with an error field", c.bad, c.done);
	}
	lx_writer_free(c.w);
	lx_tokenizer_free(c.tk);
	lx_vocab_free(v);
	free(c.fix);
	free(c.ids);
	return st;
}

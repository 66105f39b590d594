/* lx-tokenize - text to LXMERT's BERT word-piece ids (input_ids), one record a line; --decode goes back. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "lx.h"
#include "lx_tokenizer.h"
#include "tool.h"

enum { O_VOCAB = 256, O_JSONL, O_FIELD, O_TOKENS, O_MAX_LENGTH, O_REPLACE, O_DECODE };

static const char synopsis[] = "(-m DIR | --vocab FILE) [options] [FILE]...";
static const char about[] =
	"Tokenizes text with LXMERT's uncased BERT WordPiece tokenizer: one msgpack record a line of input, with\n"
	"input_ids ([CLS] pieces [SEP], int32). Reads the FILEs, or stdin when there are none (or for -).";

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the vocabulary is DIR/vocab.txt"},
	{O_VOCAB, "vocab", "FILE", "the vocabulary is FILE"},
	{O_JSONL, "jsonl", NULL, "a line is a JSON object (or the file one JSON array of objects): tokenize its field sent, keep all its fields"},
	{O_FIELD, "field", "NAME", "with --jsonl, tokenize the field NAME instead of sent"},
	{O_TOKENS, "tokens", NULL, "add tokens, an array of the word-piece strings"},
	{O_MAX_LENGTH, "max-length", "N", "keep [CLS], the first N-2 pieces and [SEP] (LXMERT uses 20)"},
	{O_REPLACE, "replace-invalid", NULL, "read invalid UTF-8 as U+FFFD, which the tokenizer drops (default: an error)"},
	{O_DECODE, "decode", NULL, "the reverse: records with input_ids in, one line of text each out"},
	TOOL_OPT_SHARD,
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-tokenize", synopsis, about, option_table};


typedef struct {
	int jsonl, tokens, decode, replace_invalid;
	int in_array;       /* reading a JSON array's elements, not lines */
	int max_length;
	const char *field;
	lx_tokenizer *tk;
	const lx_vocab *v;
	tool_run t;         /* stdout's writer, the counts and the progress; t.epipe: --decode's reader went away */
	char *fix;          /* a line with invalid UTF-8 replaced */
	size_t fixcap;
	int32_t *ids;       /* --decode: input_ids of a record */
	size_t idscap;
	tool_shard shard;   /* --shard K/N */
	long pos;           /* lines and array elements read, over every file */
} ctx;

/* ---- text to records ---- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
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
	json_t *t;

	if (len == 0)
		return lx_errf(e, LX_EINPUT, "%s: %s, expected a JSON object", where, c->in_array ? "nothing there" : "empty line");
	if (!(*root = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je)))
		return lx_errf(e, LX_EINPUT, "%s: not JSON (%s)", where, je.text);
	if (!json_is_object(*root))
		return lx_errf(e, LX_EINPUT, "%s: %s, expected a JSON object", where, json_kind(*root));
	if (lx_json_fields(rec, *root))
		return lx_errf(e, LX_EIO, "out of memory");
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

/* One line of input (without its line ending), or one element of a JSON array, to one record; where names it. */
static lx_status encode_line(ctx *c, const char *where, const char *line, size_t len, lx_err *e)
{
	char msg[sizeof e->msg];
	const char *text;
	size_t tlen, n;
	const int32_t *ids;
	json_t *root = NULL;
	lx_record *rec;
	lx_status st;
	long pos = c->pos++;

	if (!tool_shard_has(&c->shard, pos))
		return LX_OK;
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
	if (st)
		st = tool_refuse(&c->t, rec, st, e);
	if (!st)
		st = tool_shard_mark(&c->shard, rec, pos, e);
	if (!st)
		st = lx_writer_put(c->t.wr, rec, e);
	json_decref(root);
	lx_record_free(rec);
	return st;
}

static int json_space(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* --jsonl on the authors' layout: the file is one JSON array of objects (or several arrays, one after another).
 * It is streamed an element at a time: a scanner that follows strings and nesting finds where each top-level
 * element ends, and only that element is in memory. Elements are named by their number in the file and the line
 * they start on. */
static lx_status encode_array(ctx *c, FILE *f, const char *name, lx_err *e)
{
	char *buf = NULL, where[300];
	size_t len = 0, cap = 0;
	int ch, in_array = 0, depth = 0, in_str = 0, esc = 0, end;
	long line = 1, first = 1, elem = 0, in_this = 0;
	lx_status st = LX_OK;

	while (!st && !tool_interrupted() && (ch = getc(f)) != EOF) {
		c->t.bytes++;
		if (!in_array) {
			if (ch == '[')
				in_array = 1, in_this = 0;
			else if (!json_space(ch))
				st = lx_errf(e, LX_EINPUT, "%s: line %ld: '%c' after the JSON array, expected '[' or the end of the file",
				             name, line, ch);
			line += ch == '\n';
			continue;
		}
		end = 0;
		if (esc)
			esc = 0;
		else if (in_str)
			esc = ch == '\\', in_str = ch != '"';
		else if (ch == '"')
			in_str = 1;
		else if (ch == '[' || ch == '{')
			depth++;
		else if ((ch == ']' || ch == '}') && depth > 0)
			depth--;
		else if (depth == 0 && (ch == ',' || ch == ']'))
			end = ch;
		if (!end && !(len == 0 && json_space(ch))) { /* a byte of the element: leading blanks are left out */
			if (len == 0)
				first = line;
			if (len + 1 > cap) {
				char *nb = realloc(buf, cap = cap ? 2 * cap : 4096);
				if (!nb) {
					st = lx_errf(e, LX_EIO, "out of memory");
					break;
				}
				buf = nb;
			}
			buf[len++] = (char)ch;
		}
		line += ch == '\n';
		if (!end)
			continue;
		while (len && json_space(buf[len - 1]))
			len--;
		if (end == ']')
			in_array = 0;
		if (len == 0 && end == ']' && in_this == 0) /* [] */
			continue;
		snprintf(where, sizeof where, "%s: element %ld (line %ld)", name, elem + 1, len ? first : line);
		if (!(st = encode_line(c, where, buf, len, e)))
			tool_done(&c->t, 1);
		elem++, in_this++, len = 0;
	}
	if (!st && ferror(f))
		st = lx_errf(e, LX_EIO, "%s: %s", name, strerror(errno));
	else if (!st && in_array && !tool_interrupted())
		st = lx_errf(e, LX_EINPUT, "%s: line %ld: the file ends inside the JSON array (after %ld elements), expected ']'",
		             name, line, elem);
	free(buf);
	return st;
}

static lx_status encode_file(ctx *c, FILE *f, const char *name, lx_err *e)
{
	char *line = NULL, where[300];
	size_t cap = 0;
	ssize_t got;
	long lineno = 0;
	lx_status st = LX_OK;
	int ch;

	if (c->jsonl) { /* a file that starts with '[' is a JSON array of objects, not JSON lines */
		while ((ch = getc(f)) != EOF && json_space(ch) && ch != '\n')
			c->t.bytes++;
		if (ch != EOF)
			ungetc(ch, f);
		if (ch == '[') {
			c->in_array = 1;
			st = encode_array(c, f, name, e);
			c->in_array = 0;
			return st;
		}
	}
	while (!tool_interrupted() && (got = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)got;
		lineno++;
		c->t.bytes += (unsigned long long)got;
		if (len && line[len - 1] == '\n')
			len--;
		if (len && line[len - 1] == '\r')
			len--;
		snprintf(where, sizeof where, "%s: line %ld", name, lineno);
		if ((st = encode_line(c, where, line, len, e)))
			break;
		tool_done(&c->t, 1);
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
		c->t.epipe = errno == EPIPE;
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
	unsigned long long base = c->t.bytes;
	lx_record *rec;
	lx_status st;

	if (!r)
		return lx_errf(e, LX_EIO, "out of memory");
	while (!tool_interrupted() && !(st = lx_reader_next(r, &rec, e)) && rec) {
		char where[400], id[64];
		c->t.bytes = base + lx_reader_offset(r);
		if (lx_record_is_error(rec)) { /* refused upstream: an empty line keeps lines and records in step */
			lx_record_free(rec);
			if (putchar('\n') == EOF) {
				c->t.epipe = errno == EPIPE;
				lx_reader_free(r);
				return lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
			}
			tool_done(&c->t, 1);
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
		tool_done(&c->t, 1);
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

/* Parses the options into c and the vocabulary path. */
static void parse_args(ctx *c, int argc, char **argv, char *vocab, size_t vocab_size, int *keep_going, int *progress)
{
	const char *model = NULL, *vfile = NULL;
	int o;

	c->field = "sent";
	while ((o = tool_options(&info, argc, argv)) != -1) {
		switch (o) {
		case 'm': model = optarg; break;
		case O_VOCAB: vfile = optarg; break;
		case O_JSONL: c->jsonl = 1; break;
		case O_FIELD: c->field = optarg; break;
		case O_TOKENS: c->tokens = 1; break;
		case O_REPLACE: c->replace_invalid = 1; break;
		case O_DECODE: c->decode = 1; break;
		case TOOL_SHARD: tool_shard_parse(&c->shard, optarg); break;
		case TOOL_PROGRESS: *progress = 1; break;
		case TOOL_KEEP_GOING: *keep_going = 1; break;
		case O_MAX_LENGTH: c->max_length = (int)tool_long(optarg, "--max-length", 2, INT_MAX); break;
		}
	}
	if (!model == !vfile)
		tool_usage("give the vocabulary with exactly one of -m DIR and --vocab FILE");
	if (c->decode && (c->jsonl || c->tokens || c->max_length || strcmp(c->field, "sent") || *keep_going))
		tool_usage("--decode takes none of --jsonl, --field, --tokens, --max-length and --keep-going");
	if (c->decode && c->shard.n)
		tool_usage("--shard selects lines of text, not --decode's records");
	if (strcmp(c->field, "sent") && !c->jsonl)
		tool_usage("--field needs --jsonl");
	if (vfile)
		snprintf(vocab, vocab_size, "%s", vfile);
	else
		snprintf(vocab, vocab_size, "%s/vocab.txt", model);
}

/* The bytes of input there are to read, when every input is a regular file; 0 when one is not. */
static unsigned long long input_size(int argc, char **argv)
{
	unsigned long long total = 0, n;
	struct stat sb;
	int i;

	if (optind == argc)
		return tool_input_size(stdin);
	for (i = optind; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0 ? !(n = tool_input_size(stdin))
		                              : stat(argv[i], &sb) || !S_ISREG(sb.st_mode) || !(n = (unsigned long long)sb.st_size))
			return 0;
		total += n;
	}
	return total;
}

int main(int argc, char **argv)
{
	ctx c = {0};
	lx_vocab *v = NULL;
	lx_err e = {0};
	lx_status st = LX_OK;
	char vocab[4096];
	int i, keep_going = 0, progress = 0;

	parse_args(&c, argc, argv, vocab, sizeof vocab, &keep_going, &progress);
	if ((st = lx_vocab_load(&v, vocab, &e)))
		return tool_fail(st, "%s", e.msg);
	c.v = v;
	if (!(c.tk = lx_tokenizer_new(v, c.replace_invalid ? LX_TOK_REPLACE_INVALID : 0)) ||
	    tool_run_init(&c.t, NULL, "stdin", 1, keep_going, progress))
		st = lx_errf(&e, LX_EIO, "out of memory");
	c.t.unit = c.t.prog.label = c.decode ? "records" : "lines";
	c.t.prog.total = input_size(argc, argv);
	tool_signals(NULL);
	if (!st && optind == argc)
		st = run_file(&c, "-", &e);
	for (i = optind; i < argc && !st && !tool_interrupted(); i++)
		st = run_file(&c, argv[i], &e);
	st = tool_end(&c.t, st, &e); /* every record before a bad one is written */
	lx_tokenizer_free(c.tk);
	lx_vocab_free(v);
	free(c.fix);
	free(c.ids);
	return st;
}

/* lx-merge - the outputs of a run's shards (--shard K/N) put back into the one run's: its records in input order,
 * its score and its submission file, the same bytes as one process writes (lx-merge(1)). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lx.h"
#include "lx_heads.h"
#include "tool.h"

enum { O_JSON = 256, O_SUBMIT, O_SCORE, O_SCORE_FILE, O_DROP_FAILED };

static const char synopsis[] = "[options] FILE...";
static const char about[] =
	"Merges the outputs of the shards of a run (lx-tokenize, lx-detect or lx-featpack --shard K/N, then the\n"
	"same pipeline on each shard) into what one run over the whole input writes: the records back in input\n"
	"order, and with lx-head's answers, the score and the submission file over them in that order. A FILE is\n"
	"a stream or lx-head --json's lines, one per shard, in any order. See lx-merge(1).";

static const tool_option option_table[] = {
	{O_JSON, "json", NULL, "write JSON lines (as lx-head --json) instead of the stream"},
	{O_SUBMIT, "submit", "SET", "write the submission file for vqa or gqa instead of the stream"},
	{O_SCORE, "score", NULL, "score lx-head's answers of the records that carry a label, on stderr at the end"},
	{O_SCORE_FILE, "score-file", "F", "also write the scores to F as one JSON line"},
	{O_DROP_FAILED, "drop-failed", NULL, "leave error records out of --submit and --score (as lx-head)"},
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-merge", synopsis, about, option_table};

enum { OUT_STREAM, OUT_JSON, OUT_SUBMIT };

/* One shard's output, read a record ahead. */
typedef struct {
	const char *path;
	FILE *f;
	lx_reader *rd;      /* a stream; NULL for JSON lines */
	char *line;         /* JSON lines: the line in hand */
	size_t cap;
	long records;       /* records read */
	lx_record *next;    /* the record read ahead, NULL at the end */
	long k;             /* the shard it is */
} shard_in;

typedef struct {
	int out, submit, score, drop_failed;
	const char *score_path;
	lx_lock *score_lock;  /* --score-file's, held from the start, as lx-head holds it */
	lx_json *json;
	lx_score sc;
	long submitted, passed;
} merge;

/* ---- reading the shards ---- */

static lx_status read_json(shard_in *s, lx_record **out, lx_err *e)
{
	ssize_t got = getline(&s->line, &s->cap, s->f);
	size_t len;
	json_error_t je;
	json_t *root;
	lx_status st = LX_OK;

	*out = NULL;
	if (got < 0)
		return ferror(s->f) ? lx_errf(e, LX_EIO, "%s: %s", s->path, strerror(errno)) : LX_OK;
	len = (size_t)got;
	while (len && (s->line[len - 1] == '\n' || s->line[len - 1] == '\r'))
		len--;
	s->records++;
	if (!(root = json_loadb(s->line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je)))
		return lx_errf(e, LX_EINPUT, "%s: line %ld: not JSON (%s)", s->path, s->records, je.text);
	if (!json_is_object(root))
		st = lx_errf(e, LX_EINPUT, "%s: line %ld: expected a JSON object (lx-head --json)", s->path, s->records);
	else if (!(*out = lx_record_new()) || lx_json_fields(*out, root))
		st = lx_errf(e, LX_EIO, "out of memory");
	json_decref(root);
	return st;
}

/* The next record of s into s->next (NULL at its end). */
static lx_status advance(shard_in *s, lx_err *e)
{
	lx_status st;

	lx_record_free(s->next);
	s->next = NULL;
	if (!s->rd)
		return read_json(s, &s->next, e);
	st = lx_reader_next(s->rd, &s->next, e);
	s->records = lx_reader_count(s->rd);
	return st;
}

/* A stream, or JSON lines when its first byte is '{'; its first record read. */
static lx_status open_shard(shard_in *s, const char *path, lx_err *e)
{
	int ch;

	s->path = path;
	s->k = -1;
	if (!(s->f = fopen(path, "rb")))
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	if ((ch = getc(s->f)) != EOF)
		ungetc(ch, s->f);
	if (ch != '{' && !(s->rd = lx_reader_new_buffered(s->f, path)))
		return lx_errf(e, LX_EIO, "out of memory");
	return advance(s, e);
}

/* The non-negative integer field key of rec into *v; 0 when it has none. */
static int field_long(const lx_record *rec, const char *key, long *v)
{
	const msgpack_object *o = lx_record_get(rec, key);

	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > (uint64_t)LONG_MAX)
		return 0;
	*v = (long)o->via.u64;
	return 1;
}

/* "FILE: record R" (a stream) or "FILE: line R" (JSON lines): where the record in hand came from. */
static const char *where(const shard_in *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s: %s %ld", s->path, s->rd ? "record" : "line", s->records);
	return buf;
}

/* position and shards of s's record in hand into *pos and *n. */
static lx_status fields(const shard_in *s, long *pos, long *n, lx_err *e)
{
	char w[600];

	if (!field_long(s->next, LX_POSITION, pos) || !field_long(s->next, LX_SHARDS, n) || *n < 1 ||
	    *n > TOOL_MAX_SHARDS)
		return lx_errf(e, LX_EINPUT, "%s: no fields position and shards (a non-negative integer each): not a "
		               "record of a shard (--shard K/N)", where(s, w, sizeof w));
	return LX_OK;
}

/* Puts each FILE in its shard's place by the first record's position: slot[k] is shard k of *n. An empty
 * file takes a place no record claims (an empty shard, when there are fewer records than shards). */
static lx_status place(shard_in *in, int m, shard_in ***slot, long *n, lx_err *e)
{
	const char *first = NULL;
	long pos, nn, k;
	int i;
	lx_status st;

	*n = 0;
	for (i = 0; i < m; i++) {
		if (!in[i].next)
			continue;
		if ((st = fields(&in[i], &pos, &nn, e)))
			return st;
		if (*n && nn != *n)
			return lx_errf(e, LX_EINPUT, "%s: a shard of %ld, but %s is a shard of %ld", in[i].path, nn, first, *n);
		if (!*n) {
			*n = nn;
			first = in[i].path;
			if (!(*slot = calloc((size_t)nn, sizeof **slot)))
				return lx_errf(e, LX_EIO, "out of memory");
		}
		k = pos % nn;
		if ((*slot)[k])
			return lx_errf(e, LX_EINPUT, "%s and %s are both shard %ld of %ld: a shard given twice", (*slot)[k]->path,
			               in[i].path, k, nn);
		(*slot)[k] = &in[i];
		in[i].k = k;
	}
	if (!*n) { /* every file empty */
		*n = m;
		if (!(*slot = calloc((size_t)m, sizeof **slot)))
			return lx_errf(e, LX_EIO, "out of memory");
	}
	for (i = 0, k = 0; i < m; i++) {
		if (in[i].k >= 0)
			continue;
		while (k < *n && (*slot)[k])
			k++;
		if (k == *n)
			return lx_errf(e, LX_EINPUT, "%s: an empty file, but the %ld shards are there already: %d files for "
			               "%ld shards", in[i].path, *n, m, *n);
		(*slot)[k] = &in[i];
		in[i].k = k;
	}
	for (k = 0; k < *n; k++)
		if (!(*slot)[k])
			return lx_errf(e, LX_EINPUT, "shard %ld of %ld is missing: %d files given for %ld shards", k, *n, m, *n);
	return LX_OK;
}

/* ---- the merged records ---- */

/* The answer lx-head ranked first: field answers, a list of maps, the first one's answer. */
static lx_status top_answer(const lx_record *rec, char *buf, size_t n, lx_err *e)
{
	const msgpack_object *a = lx_record_get(rec, "answers"), *first;
	uint32_t i;

	if (!a || a->type != MSGPACK_OBJECT_ARRAY || !a->via.array.size)
		return lx_errf(e, LX_EINPUT, "field answers is missing or empty (lx-head's qa head writes it)");
	first = &a->via.array.ptr[0];
	for (i = 0; first->type == MSGPACK_OBJECT_MAP && i < first->via.map.size; i++) {
		const msgpack_object *k = &first->via.map.ptr[i].key, *v = &first->via.map.ptr[i].val;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 6 && !memcmp(k->via.str.ptr, "answer", 6) &&
		    v->type == MSGPACK_OBJECT_STR) {
			snprintf(buf, n, "%.*s", (int)v->via.str.size, v->via.str.ptr);
			return LX_OK;
		}
	}
	return lx_errf(e, LX_EINPUT, "field answers: the first entry has no answer string");
}

/* A record lx-head answered: scored where it carries a label, and its submission entry. */
static lx_status answered(merge *g, const lx_record *rec, lx_err *e)
{
	const msgpack_object *label = lx_record_get(rec, "label"), *id;
	char answer[1024];
	lx_status st;

	if (g->score && label && label->type != MSGPACK_OBJECT_MAP)
		return lx_errf(e, LX_EINPUT, "field label: not a VQA/GQA label (a map answer -> score): lx-merge scores "
		               "VQA and GQA answers only");
	if ((g->score && label) || g->out == OUT_SUBMIT) {
		if ((st = top_answer(rec, answer, sizeof answer, e)))
			return st;
	}
	if (g->score && label && (st = lx_score_answer(&g->sc, label, answer, e)))
		return st;
	if (g->out != OUT_SUBMIT)
		return LX_OK;
	if (!(id = lx_submit_id(rec, g->submit)))
		return lx_errf(e, LX_EINPUT, "field question_id is missing (--submit %s needs it)",
		               g->submit == LX_SUBMIT_VQA ? "vqa" : "gqa");
	lx_submit_entry(stdout, g->submit, g->submitted++, id, answer);
	return LX_OK;
}

/* An error record, as lx-head counts it: submitted with an empty answer and scored as wrong, each said on
 * stderr, or with --drop-failed left out of both. i: its record number in the whole run, from 1. */
static void failed(merge *g, const lx_record *rec, long i)
{
	const msgpack_object *label = lx_record_get(rec, "label"), *id = NULL;
	char ids[256] = "";
	int kept = 0;

	if (g->drop_failed) {
		g->passed += g->out == OUT_SUBMIT;
		return;
	}
	if (g->out == OUT_SUBMIT && (id = lx_submit_id(rec, g->submit))) {
		lx_submit_entry(stdout, g->submit, g->submitted++, id, "");
		kept = 1;
	}
	if (g->score && label && label->type == MSGPACK_OBJECT_MAP) {
		g->sc.questions++;
		g->sc.failed++;
		kept = 1;
	}
	if (!kept) {
		g->passed += g->out == OUT_SUBMIT;
		return;
	}
	if (id)
		lx_object_text(id, ids, sizeof ids);
	tool_warn("record %ld%s%s%s: failed: %s", i, *ids ? " (id " : "", ids, *ids ? ")" : "",
	          g->out == OUT_SUBMIT ? "submitted with an empty answer" : "counted as a wrong answer");
}

static lx_status put(merge *g, tool_run *t, lx_record *rec, lx_err *e)
{
	lx_status st = LX_OK;

	lx_record_remove(rec, LX_POSITION);
	lx_record_remove(rec, LX_SHARDS);
	if (lx_record_is_error(rec))
		failed(g, rec, t->done + 1);
	else if ((st = answered(g, rec, e)))
		return st;
	if (g->out == OUT_STREAM)
		return lx_writer_put(t->wr, rec, e);
	if (g->out == OUT_JSON)
		st = lx_json_record(g->json, stdout, rec, 0, e);
	if (!st && ferror(stdout))
		st = lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	return st;
}

/* Position p is the next record of shard p mod n: every shard's records, merged in input order. */
static lx_status run(merge *g, tool_run *t, shard_in **slot, long n, lx_err *e)
{
	char w[600], msg[sizeof e->msg];
	long p, pos, nn, k;
	shard_in *s;
	lx_status st = LX_OK;

	for (p = 0; !tool_interrupted(); p++) {
		s = slot[p % n];
		if (!s->next) { /* the end, when it is every shard's */
			for (k = 0; k < n; k++) {
				if (!slot[k]->next)
					continue;
				if ((st = fields(slot[k], &pos, &nn, e)))
					return st;
				return lx_errf(e, LX_EINPUT, "%s: shard %ld of %ld ends after %ld records, but %s goes on at "
				               "position %ld: records of shard %ld are missing", s->path, s->k, n, s->records,
				               slot[k]->path, pos, s->k);
			}
			return LX_OK;
		}
		if ((st = fields(s, &pos, &nn, e)))
			return st;
		if (nn != n)
			return lx_errf(e, LX_EINPUT, "%s: a record of a shard of %ld, but the other files are shards of %ld",
			               where(s, w, sizeof w), nn, n);
		if (pos != p)
			return lx_errf(e, LX_EINPUT, "%s: position %ld, expected %ld: %s", where(s, w, sizeof w), pos, p,
			               pos % n != s->k ? "records of different shards in one file" :
			               pos > p ? "records of this shard are missing" : "records out of order");
		if ((st = put(g, t, s->next, e))) {
			if (st == LX_EINPUT) {
				memcpy(msg, e->msg, sizeof msg);
				lx_errf(e, st, "%s (position %ld): %s", where(s, w, sizeof w), p, msg);
			}
			return st;
		}
		tool_done(t, 1);
		if ((st = advance(s, e)))
			return st;
	}
	return st;
}

static lx_status write_score(void *ctx, FILE *f, const char *path, lx_err *e)
{
	lx_score_json(ctx, f);
	return ferror(f) ? lx_errf(e, LX_EIO, "%s: write failed: %s", path, strerror(errno)) : LX_OK;
}

int main(int argc, char **argv)
{
	static const char *const subs[] = {"vqa", "gqa", NULL};
	merge g;
	tool_run t;
	shard_in *in = NULL, **slot = NULL;
	lx_err e = {LX_OK, ""};
	lx_status st = LX_OK;
	int o, i, m, progress = 0, json = 0, submit = -1, quiet;
	long n = 0;

	memset(&g, 0, sizeof g);
	while ((o = tool_options(&info, argc, argv)) != -1) {
		switch (o) {
		case O_JSON: json = 1; break;
		case O_SUBMIT: submit = tool_choice(optarg, "--submit", subs); break;
		case O_SCORE: g.score = 1; break;
		case O_SCORE_FILE: g.score = 1; g.score_path = optarg; break;
		case O_DROP_FAILED: g.drop_failed = 1; break;
		case TOOL_PROGRESS: progress = 1; break;
		}
	}
	if (optind == argc)
		tool_usage("no FILE given: the outputs of the shards, one file each");
	if (argc - optind > TOOL_MAX_SHARDS)
		tool_usage("at most %ld FILEs (shards)", TOOL_MAX_SHARDS);
	if (json && submit >= 0)
		tool_usage("--json and --submit cannot be used together");
	g.out = json ? OUT_JSON : submit >= 0 ? OUT_SUBMIT : OUT_STREAM;
	g.submit = submit;
	m = argc - optind;
	if (!(in = calloc((size_t)m, sizeof *in)) || (json && !(g.json = lx_json_new())))
		st = lx_errf(&e, LX_EIO, "out of memory");
	if (!st && g.score_path)
		st = lx_lock_take(g.score_path, &g.score_lock, &e);
	for (i = 0; i < m && !st; i++)
		st = open_shard(&in[i], argv[optind + i], &e);
	if (!st)
		st = place(in, m, &slot, &n, &e);
	if (tool_run_init(&t, NULL, "stdin", g.out == OUT_STREAM, 0, progress) && !st)
		st = lx_errf(&e, LX_EIO, "out of memory");
	tool_signals(NULL);
	if (!st)
		st = run(&g, &t, slot, n, &e);
	if (g.out == OUT_SUBMIT)
		lx_submit_end(stdout, g.submit, g.submitted);
	st = tool_flush(&t, st, &e, &quiet);
	if (g.passed)
		tool_warn("%ld error records left out of the submission", g.passed);
	st = tool_exit(&t, st, &e, quiet);
	if (!st && g.score) {
		lx_score_print(&g.sc, stderr, tool_name);
		if (g.score_path && (st = lx_write_atomic(g.score_path, write_score, &g.sc, &e)))
			tool_warn("%s", e.msg);
	}
	tool_run_free(&t);
	for (i = 0; in && i < m; i++) {
		lx_record_free(in[i].next);
		lx_reader_free(in[i].rd);
		free(in[i].line);
		if (in[i].f)
			fclose(in[i].f);
	}
	free(in);
	free(slot);
	lx_lock_release(g.score_lock);
	lx_json_free(g.json);
	return st;
}

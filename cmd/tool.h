/* tool.h - the skeleton every lx tool is built on: messages, the command line (--help, --version, numbers
 * with their ranges), progress on stderr, SIGINT/SIGTERM/SIGHUP, the record loop with --keep-going, and the
 * one ending with the exit statuses of lx-stream(5) (0 ok, 1 bad input, 2 usage, 3 model or file, 4 I/O,
 * 5 interrupted). Only cmd/ prints and exits; everything here does one or the other. */
#ifndef LX_TOOL_H
#define LX_TOOL_H

#include <stdio.h>

#include "lx_core.h"

#if defined(__GNUC__)
#define TOOL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TOOL_NORETURN __attribute__((noreturn))
#else
#define TOOL_PRINTF(a, b)
#define TOOL_NORETURN
#endif

/* ---- the command line ------------------------------------------------------------------------------- */

/* One option. key: the short letter ('m'), or a number from 256 up for a long name alone. arg: the
 * argument's name in --help ("DIR", "N"), NULL for a flag. help: its line(s) in --help ('\n' between lines);
 * NULL hides the option from --help (lx-featpack's -m, which is there only to say what to use instead). */
typedef struct {
	int key;
	const char *name;
	const char *arg;
	const char *help;
} tool_option;

/* Keys and entries of the options that mean the same in every tool that has them. */
enum { TOOL_KEEP_GOING = 1000, TOOL_PROGRESS, TOOL_THREADS, TOOL_BATCH, TOOL_QUIET, TOOL_SHARD };
#define TOOL_OPT_KEEP_GOING \
	{TOOL_KEEP_GOING, "keep-going", NULL, "write a bad record as an error record (the error field) and go on"}
#define TOOL_OPT_PROGRESS {TOOL_PROGRESS, "progress", NULL, "show progress on stderr even when it is not a terminal"}
#define TOOL_OPT_END {0, NULL, NULL, NULL}
#define TOOL_OPT_SHARD \
	{TOOL_SHARD, "shard", "K/N", "only records K, K+N, K+2N, ... of the input (K from 0 to N-1), each with\n" \
	 "its position and the number of shards (fields position, shards)"}

/* A tool: its name, its synopsis lines (without "usage: NAME ", '\n' between them), a few lines on what it
 * does, and its options (ending with {0}). -h/--help and -V/--version are added by tool_options. */
typedef struct {
	const char *name;
	const char *synopsis;
	const char *about;
	const tool_option *options;
} tool_info;

/* The tool in hand, for messages: set by tool_options (or tool_start for a tool without options). */
extern const char *tool_name;
void tool_start(const tool_info *t);

/* The options, one at a time, as getopt_long returns them: the key of the next option (optarg holds its
 * argument), -1 after the last (optind is then the first operand). --help prints the usage, the about text
 * and every option to stdout and exits 0; --version prints "NAME VERSION" and exits 0; an unknown option or
 * a missing argument is a usage error (status 2). */
int tool_options(const tool_info *t, int argc, char **argv);

/* The checks after the options: a required option (what: "-m DIR") given, and no operands for a tool that
 * reads stdin only; a usage error otherwise. */
void tool_require(const char *value, const char *what);
void tool_no_operands(int argc);

/* Bad usage: "NAME: message" (when fmt is not NULL), then the synopsis, on stderr; exits 2. */
TOOL_NORETURN void tool_usage(const char *fmt, ...) TOOL_PRINTF(1, 2);

/* The argument of option opt ("--batch") as a whole number in [lo, hi], a real number in [lo, hi], or
 * one of names (NULL-terminated; returns its index); anything else is a usage error naming opt, the
 * argument and what it takes. */
long tool_long(const char *arg, const char *opt, long lo, long hi);
double tool_real(const char *arg, const char *opt, double lo, double hi);
int tool_choice(const char *arg, const char *opt, const char *const *names);

/* ---- shards (--shard K/N) ---------------------------------------------------------------------------- */

/* The tools that start a pipeline (lx-tokenize, lx-detect, lx-featpack converting a file) take --shard K/N:
 * record i of the whole input (from 0) belongs to shard i mod N, and a record of the shard carries the fields
 * position (i) and shards (N), by which lx-merge puts the shards' results back in input order
 * (formats/stream.md). n is 0 without --shard: every record, and no fields added. */
typedef struct {
	long k, n;
} tool_shard;

/* The argument of --shard as K/N, N from 1 to TOOL_MAX_SHARDS and K from 0 to N-1; a usage error otherwise. */
#define TOOL_MAX_SHARDS 1000000L
void tool_shard_parse(tool_shard *s, const char *arg);
/* Whether record i (from 0) is in the shard. */
int tool_shard_has(const tool_shard *s, long i);
/* With --shard: adds position i and shards to rec. LX_EIO when memory runs out. */
lx_status tool_shard_mark(const tool_shard *s, lx_record *rec, long i, lx_err *e);

/* ---- messages --------------------------------------------------------------------------------------- */

/* "NAME: message" on stderr; a format ending in ':' gets " strerror(errno)" appended, as sbase's eprintf
 * does ("%s: write failed:" gives "x: write failed: No space left on device"). tool_fail returns st;
 * tool_die exits with it. */
void tool_warn(const char *fmt, ...) TOOL_PRINTF(1, 2);
int tool_fail(lx_status st, const char *fmt, ...) TOOL_PRINTF(2, 3);
TOOL_NORETURN void tool_die(lx_status st, const char *fmt, ...) TOOL_PRINTF(2, 3);

/* ---- signals ---------------------------------------------------------------------------------------- */

/* SIGINT, SIGTERM and SIGHUP. With cleanup NULL they set a flag instead of killing the tool, so that it stops
 * after the record in hand and flushes what it finished; a reader waiting for input returns (EINTR) so the
 * tool notices, even when the signal came just before the wait began (a pipe the handler writes to, which
 * every lx_reader waits on too: lx_reader_wake_on). With a cleanup function (which must be async-signal-safe: unlink, rmdir), the handler calls
 * it and ends the process at once with status 5 (for a tool whose half-written output is worth nothing). */
void tool_signals(void (*cleanup)(void));
int tool_interrupted(void);

/* SIGBUS, which a file the tool maps (a model's model.safetensors, lx-convert's checkpoint) raises when it is
 * truncated while in use: the handler (installed by tool_start) runs the cleanup function given to
 * tool_signals, prints "NAME: WHAT changed while in use (...)" and exits with status 4, instead of the shell's
 * "Bus error". what: "model file" unless a tool says otherwise ("checkpoint", "feature file"). */
void tool_mapped(const char *what);

/* ---- progress --------------------------------------------------------------------------------------- */
/*
 * One line on stderr per stage: "NAME: " padded to a fixed width, the records done, the rate over the last
 * few seconds, and, when the input's size is known (a regular file), the share read and the time left.
 * On a terminal the line is redrawn in place (at most four times a second, with one write each, erasing
 * what a longer line left behind); when stderr is not a terminal (a log, a pipe) and --progress asks for
 * it, a whole line every ten seconds. The last line, with the totals, stays.
 */
typedef struct {
	int enabled, tty;
	const char *label;          /* what is counted in ("records", "images", "lines") */
	const char *stage;          /* NULL, or a name printed after the tool's ("train.mp") */
	double t0, last, rate_t;    /* start, last drawn, last rate sample */
	long done, rate_done;
	double rate;                /* records/s, smoothed over a few seconds */
	unsigned long long total, bytes, rate_bytes; /* input size (0: unknown) and bytes read */
	double byte_rate;
} tool_progress;

/* force: --progress (show it even when stderr is not a terminal). total: the input's size in bytes, 0 when
 * it is not known (tool_input_size gives it for a FILE). */
void tool_progress_init(tool_progress *p, int force, const char *label, const char *stage, unsigned long long total);
void tool_progress_tick(tool_progress *p, long done, unsigned long long bytes);
void tool_progress_end(tool_progress *p);
/* Bytes left in f from where it stands when f is a regular file; 0 otherwise. */
unsigned long long tool_input_size(FILE *f);

/* ---- the record loop -------------------------------------------------------------------------------- */

/* A run from records on stdin (or another stream) to records on stdout. */
typedef struct {
	const char *input;      /* the input's name in messages: "stdin" */
	lx_reader *rd;
	lx_writer *wr;          /* NULL for a tool that writes no stream */
	int keep_going;
	const char *unit;       /* what is counted in the ending's messages: "records" (default), "lines" */
	long done;              /* records (lines) handled, written or not */
	long bad;               /* of those, turned into error records by --keep-going */
	int epipe;              /* the reader of stdout went away (a tool writing stdout itself sets it) */
	unsigned long long bytes; /* input read, for a tool that reads it itself (rd NULL) */
	tool_progress prog;
} tool_run;

/* Sets up t over f (read by a new reader named name; f NULL: the tool reads its input itself) and stdout (a new writer, when write_stream), with
 * progress as --progress says. Returns LX_OK or LX_EIO (out of memory). */
lx_status tool_run_init(tool_run *t, FILE *f, const char *name, int write_stream, int keep_going, int progress);

/* The next record: *rec a record to handle, or NULL at the end (of the input, or of the run after a signal).
 * *pass is 1 for a record to pass on untouched: one that carries an error field, or (with --keep-going) the
 * error record made here for a msgpack value that is no record. Any other status: the input cannot go on,
 * the message in e. */
lx_status tool_next(tool_run *t, lx_record **rec, int *pass, lx_err *e);

/* "INPUT: record N (id X): " put before e's message: where a refused record is. */
void tool_where(const tool_run *t, const lx_record *rec, lx_err *e);

/* A record the tool refused with st (message in e). With --keep-going and st LX_EINPUT: prints
 * "NAME: message", counts the record as bad, makes rec an error record holding that line (its fields as they
 * were read, see lx_record_revert) and returns LX_OK: the caller writes rec. Otherwise returns st. */
lx_status tool_refuse(tool_run *t, lx_record *rec, lx_status st, lx_err *e);

/* The same for input that is no record (rec NULL): *out gets a new record holding only the error line. */
lx_status tool_refuse_new(tool_run *t, lx_record **out, lx_status st, lx_err *e);

/* Counts one record done and redraws the progress. */
void tool_done(tool_run *t, long n);

/* The one ending. st and e: how the loop stopped (LX_OK: the input's end or a signal). Flushes stdout's
 * writer (every record finished before a fault or a signal is written), closes stdout, and prints the one
 * line that says why the run ends: the fault (nothing for a reader that went away), "interrupted after N
 * records, all written" (status 5), or "B of N records were bad, written with an error field" (status 1).
 * Frees the reader and the writer and returns the exit status. */
int tool_end(tool_run *t, lx_status st, lx_err *e);

/* The first part of tool_end alone, for a tool with more to say at its end: flushes and closes stdout and
 * returns the status (*quiet set for a reader that went away), printing nothing. */
lx_status tool_flush(tool_run *t, lx_status st, lx_err *e, int *quiet);
/* The second part: the line for st (after tool_flush) and the status. */
int tool_exit(tool_run *t, lx_status st, const lx_err *e, int quiet);
/* Frees the reader and the writer (tool_end does). */
void tool_run_free(tool_run *t);

#endif

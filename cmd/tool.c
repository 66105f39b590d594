/* tool.c - the skeleton every lx tool is built on (tool.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

const char *tool_name = "lx";
static const tool_info *info;
static int progress_on_screen; /* a progress line is drawn in place on the terminal: a message erases it */

/* ---- messages ---- */

static void vsay(const char *fmt, va_list ap)
{
	size_t n = strlen(fmt);
	int err = errno;

	if (progress_on_screen) {
		fputs("\r\033[K", stderr);
		progress_on_screen = 0;
	}
	fprintf(stderr, "%s: ", tool_name);
	vfprintf(stderr, fmt, ap);
	if (n && fmt[n - 1] == ':')
		fprintf(stderr, " %s", strerror(err));
	fputc('\n', stderr);
}

void tool_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

int tool_fail(lx_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return (int)st;
}

void tool_die(lx_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit((int)st);
}

/* ---- the command line ---- */

static void synopsis(FILE *f)
{
	const char *s = info->synopsis;

	fprintf(f, "usage: %s ", tool_name);
	for (; *s; s++) {
		fputc(*s, f);
		if (*s == '\n')
			fprintf(f, "       %s ", tool_name);
	}
	fputc('\n', f);
}

void tool_usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsay(fmt, ap);
		va_end(ap);
	}
	synopsis(stderr);
	exit(LX_EUSAGE);
}

void tool_require(const char *value, const char *what)
{
	if (!value)
		tool_usage("%s is required", what);
}

void tool_no_operands(int argc)
{
	if (optind != argc)
		tool_usage("no operands are taken (the records come on stdin)");
}

enum { HELP_COLUMN = 28 };

static const tool_option common[] = {
	{'h', "help", NULL, "print this help and exit"},
	{'V', "version", NULL, "print the version and exit"},
	{0, NULL, NULL, NULL},
};

static int has_short(const tool_option *o) { return o->key > 0 && o->key < 128 && isalnum(o->key); }

/* "  -m, --model DIR" and the help text beside it, its lines under each other. */
static void help_line(const tool_option *o)
{
	char left[128];
	const char *s;
	int n;

	n = snprintf(left, sizeof left, "  %c%c%s--%s%s%s", has_short(o) ? '-' : ' ', has_short(o) ? o->key : ' ',
	             has_short(o) ? ", " : "  ", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
	fputs(left, stdout);
	if (n > HELP_COLUMN - 2)
		printf("\n%*s", HELP_COLUMN, "");
	else
		printf("%*s", HELP_COLUMN - n, "");
	for (s = o->help; *s; s++) {
		putchar(*s);
		if (*s == '\n')
			printf("%*s", HELP_COLUMN, "");
	}
	putchar('\n');
}

static void help(void)
{
	const tool_option *o;

	synopsis(stdout);
	if (info->about && *info->about)
		printf("%s\n", info->about);
	printf("\noptions:\n");
	for (o = info->options; o->name || o->key; o++)
		if (o->help)
			help_line(o);
	for (o = common; o->name; o++)
		help_line(o);
}

static const tool_option *find_key(int key)
{
	const tool_option *o;

	for (o = info->options; o->name || o->key; o++)
		if (o->key == key)
			return o;
	return NULL;
}

void tool_start(const tool_info *t)
{
	info = t;
	tool_name = t->name;
	tool_mapped("model file");
}

int tool_options(const tool_info *t, int argc, char **argv)
{
	static struct option longs[64];
	static char shorts[160];
	static const tool_info *built;
	const tool_option *o;
	int ch, n = 0;
	size_t k = 0;

	if (built != t) {
		tool_start(t);
		shorts[k++] = ':'; /* a missing argument returns ':' */
		for (o = t->options; o->name || o->key; o++) {
			if (o->name)
				longs[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL, o->key};
			if (has_short(o)) {
				shorts[k++] = (char)o->key;
				if (o->arg)
					shorts[k++] = ':';
			}
		}
		for (o = common; o->name; o++) {
			longs[n++] = (struct option){o->name, no_argument, NULL, o->key};
			shorts[k++] = (char)o->key;
		}
		longs[n] = (struct option){NULL, 0, NULL, 0};
		shorts[k] = 0;
		built = t;
		opterr = 0;
	}
	ch = getopt_long(argc, argv, shorts, longs, NULL);
	switch (ch) {
	case 'h':
		help();
		exit(fclose(stdout) ? LX_EIO : LX_OK);
	case 'V':
		printf("%s %s\n", tool_name, LX_VERSION);
		exit(fclose(stdout) ? LX_EIO : LX_OK);
	case ':':
		if ((o = find_key(optopt)) && o->name && strncmp(argv[optind - 1], "--", 2) == 0)
			tool_usage("--%s needs an argument (%s)", o->name, o->arg);
		tool_usage("-%c needs an argument (%s)", optopt, o ? o->arg : "");
	case '?':
		if (optopt && !(optind > 0 && strncmp(argv[optind - 1], "--", 2) == 0))
			tool_usage("-%c is not an option of %s", optopt, tool_name);
		tool_usage("%s is not an option of %s", argv[optind - 1], tool_name);
	}
	return ch;
}

long tool_long(const char *arg, const char *opt, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < lo || v > hi)
		tool_usage("%s takes a whole number from %ld to %ld, not '%s'", opt, lo, hi, arg);
	return v;
}

double tool_real(const char *arg, const char *opt, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= lo && v <= hi))
		tool_usage("%s takes a number from %g to %g, not '%s'", opt, lo, hi, arg);
	return v;
}

int tool_choice(const char *arg, const char *opt, const char *const *names)
{
	char list[256] = "";
	int i;

	for (i = 0; names[i]; i++) {
		if (strcmp(arg, names[i]) == 0)
			return i;
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? (names[i + 1] ? ", " : " or ") : "",
		         names[i]);
	}
	tool_usage("%s takes %s, not '%s'", opt, list, arg);
}

/* ---- shards ---- */

void tool_shard_parse(tool_shard *s, const char *arg)
{
	char *end;
	long k, n;

	errno = 0;
	k = strtol(arg, &end, 10);
	if (!errno && end != arg && *end == '/' && isdigit((unsigned char)end[1])) {
		n = strtol(end + 1, &end, 10);
		if (!errno && !*end && n >= 1 && n <= TOOL_MAX_SHARDS && k >= 0 && k < n) {
			s->k = k;
			s->n = n;
			return;
		}
	}
	tool_usage("--shard takes K/N, N from 1 to %ld and K from 0 to N-1 (Slurm's --array=0-(N-1)), not '%s'",
	           TOOL_MAX_SHARDS, arg);
}

int tool_shard_has(const tool_shard *s, long i)
{
	return !s->n || i % s->n == s->k;
}

lx_status tool_shard_mark(const tool_shard *s, lx_record *rec, long i, lx_err *e)
{
	if (s->n && (lx_record_add_int(rec, LX_POSITION, i) || lx_record_add_int(rec, LX_SHARDS, s->n)))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* ---- signals ---- */

static volatile sig_atomic_t stop_flag;
static int wake[2] = {-1, -1}; /* a byte written at the signal: the readers' waits end (lx_reader_wake_on) */
static pthread_t main_thread;
static void (*cleanup_fn)(void);

/* The kernel may hand a signal meant for the process to any thread, an OpenBLAS worker for instance; only
 * the main thread's blocked read must be cut short, so a signal caught elsewhere is passed on to it. */
static void on_signal(int sig)
{
	if (cleanup_fn) {
		cleanup_fn();
		_exit(LX_EINTR);
	}
	stop_flag = 1;
	if (wake[1] >= 0) {
		int saved = errno;
		if (write(wake[1], "", 1) < 0) {
			/* full (an earlier signal's bytes are there): readable all the same */
		}
		errno = saved;
	}
	if (!pthread_equal(pthread_self(), main_thread))
		pthread_kill(main_thread, sig);
}

void tool_signals(void (*cleanup)(void))
{
	struct sigaction sa;

	main_thread = pthread_self();
	cleanup_fn = cleanup;
	/* a flag checked before a blocking read misses a signal that lands between the check and the read: the
	 * readers also wait on this pipe, which the handler makes readable */
	if (!cleanup && wake[0] < 0 && pipe(wake) == 0) {
		fcntl(wake[0], F_SETFD, FD_CLOEXEC);
		fcntl(wake[1], F_SETFD, FD_CLOEXEC);
		fcntl(wake[1], F_SETFL, O_NONBLOCK);
		lx_reader_wake_on(wake[0]);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int tool_interrupted(void) { return stop_flag != 0; }

/* ---- a mapped file that changes under the tool ---- */

static char bus_msg[320];
static size_t bus_len;

/* SIGBUS: a page of a mapped file that is no longer there (the file was truncated). The line was made
 * beforehand: only write and _exit here. */
static void on_bus(int sig)
{
	ssize_t w;

	(void)sig;
	if (cleanup_fn)
		cleanup_fn();
	w = write(STDERR_FILENO, bus_msg, bus_len);
	(void)w;
	_exit(LX_EIO);
}

void tool_mapped(const char *what)
{
	struct sigaction sa;
	int n = snprintf(bus_msg, sizeof bus_msg, "%s: %s changed while in use (truncated or rewritten in place; "
	                 "replace it by renaming a new file over it, see lx-stream(5))\n", tool_name, what);

	bus_len = n < 0 ? 0 : (size_t)n < sizeof bus_msg ? (size_t)n : sizeof bus_msg - 1;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* ---- progress ---- */

enum { NAME_WIDTH = 13 };               /* "lx-featpack: " */
#define TTY_EVERY 0.25                  /* seconds between redraws on a terminal */
#define LOG_EVERY 10.0                  /* seconds between lines elsewhere */
#define RATE_WINDOW 5.0                 /* seconds the recent rate looks back, about */

unsigned long long tool_input_size(FILE *f)
{
	struct stat sb;
	off_t at;

	if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || (at = lseek(fileno(f), 0, SEEK_CUR)) < 0 ||
	    at > sb.st_size)
		return 0;
	return (unsigned long long)(sb.st_size - at);
}

void tool_progress_init(tool_progress *p, int force, const char *label, const char *stage, unsigned long long total)
{
	memset(p, 0, sizeof *p);
	p->tty = isatty(STDERR_FILENO);
	p->enabled = force || p->tty;
	p->label = label;
	p->stage = stage;
	p->total = total;
	p->t0 = p->last = p->rate_t = lx_now();
}

static void bytes_text(char *s, size_t n, double b)
{
	if (b < 1e3)
		snprintf(s, n, "%.0f B", b);
	else if (b < 1e6)
		snprintf(s, n, "%.1f KB", b / 1e3);
	else if (b < 1e9)
		snprintf(s, n, "%.1f MB", b / 1e6);
	else
		snprintf(s, n, "%.2f GB", b / 1e9);
}

static void time_text(char *s, size_t n, double t)
{
	long x = (long)(t + 0.5);

	if (x >= 3600)
		snprintf(s, n, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
	else
		snprintf(s, n, "%ld:%02ld", x / 60, x % 60);
}

/* The rates over the last few seconds: each sample weighs in by how long it covers. */
static void sample(tool_progress *p, double now)
{
	double dt = now - p->rate_t, w;

	if (dt < 0.2)
		return;
	w = p->rate_t == p->t0 ? 1.0 : 1.0 - exp(-dt / RATE_WINDOW);
	p->rate += w * ((double)(p->done - p->rate_done) / dt - p->rate);
	p->byte_rate += w * ((double)(p->bytes - p->rate_bytes) / dt - p->byte_rate);
	p->rate_t = now;
	p->rate_done = p->done;
	p->rate_bytes = p->bytes;
}

static void draw(tool_progress *p, double now, int final)
{
	char line[320], name[64], a[32], b[32], c[32];
	double dt = now - p->t0;
	int n, k;

	snprintf(name, sizeof name, "%s:", tool_name);
	n = snprintf(line, sizeof line, "%s%-*s%s%s%ld %s", p->tty ? "\r" : "", NAME_WIDTH, name, p->stage ? p->stage : "",
	             p->stage ? ": " : "", p->done, p->label);
	if (final) {
		time_text(a, sizeof a, dt);
		n += snprintf(line + n, sizeof line - n, " in %s, %.1f %s/s", a, dt > 0 ? p->done / dt : 0.0, p->label);
		if (p->bytes) {
			bytes_text(b, sizeof b, (double)p->bytes);
			n += snprintf(line + n, sizeof line - n, ", %s", b);
		}
	} else {
		n += snprintf(line + n, sizeof line - n, ", %.1f %s/s", p->rate, p->label);
		if (p->total) {
			bytes_text(b, sizeof b, (double)p->total);
			k = (int)(100.0 * (double)p->bytes / (double)p->total);
			n += snprintf(line + n, sizeof line - n, ", %d%% of %s", k > 100 ? 100 : k, b);
			if (p->byte_rate > 0 && p->bytes < p->total) {
				time_text(c, sizeof c, (double)(p->total - p->bytes) / p->byte_rate);
				n += snprintf(line + n, sizeof line - n, ", %s left", c);
			}
		}
	}
	if (n > (int)sizeof line - 8)
		n = (int)sizeof line - 8;
	n += snprintf(line + n, sizeof line - n, "%s%s", p->tty ? "\033[K" : "", final || !p->tty ? "\n" : "");
	if (write(STDERR_FILENO, line, (size_t)n) < 0) /* one write: a line of one stage is never cut by another */
		p->enabled = 0;
	progress_on_screen = p->tty && !final;
	p->last = now;
}

void tool_progress_tick(tool_progress *p, long done, unsigned long long bytes)
{
	double now;

	p->done = done;
	p->bytes = bytes;
	if (!p->enabled)
		return;
	now = lx_now();
	if (now - p->last >= (p->tty ? TTY_EVERY : LOG_EVERY)) {
		sample(p, now);
		draw(p, now, 0);
	}
}

void tool_progress_end(tool_progress *p)
{
	if (p->enabled)
		draw(p, lx_now(), 1);
	p->enabled = 0;
}

/* ---- the record loop ---- */

lx_status tool_run_init(tool_run *t, FILE *f, const char *name, int write_stream, int keep_going, int progress)
{
	memset(t, 0, sizeof *t);
	t->input = name;
	t->keep_going = keep_going;
	t->unit = "records";
	tool_progress_init(&t->prog, progress, "records", NULL, f ? tool_input_size(f) : 0);
	if ((f && !(t->rd = lx_reader_new(f, name))) || (write_stream && !(t->wr = lx_writer_new(stdout, "stdout"))))
		return LX_EIO;
	return LX_OK;
}

void tool_run_free(tool_run *t)
{
	lx_reader_free(t->rd);
	lx_writer_free(t->wr);
	t->rd = NULL;
	t->wr = NULL;
}

lx_status tool_next(tool_run *t, lx_record **rec, int *pass, lx_err *e)
{
	lx_status st;

	*rec = NULL;
	*pass = 0;
	if (tool_interrupted())
		return LX_OK;
	if ((st = lx_reader_next(t->rd, rec, e))) {
		if (st == LX_EIO && tool_interrupted())
			return LX_OK; /* a read cut short by the signal */
		if (!t->keep_going || !lx_reader_resumable(t->rd))
			return st;
		*pass = 1;
		return tool_refuse_new(t, rec, st, e);
	}
	*pass = *rec && lx_record_is_error(*rec);
	return LX_OK;
}

void tool_where(const tool_run *t, const lx_record *rec, lx_err *e)
{
	char id[128], msg[sizeof e->msg];

	lx_record_id(rec, id, sizeof id);
	memcpy(msg, e->msg, sizeof msg);
	snprintf(e->msg, sizeof e->msg, "%s: record %ld%s%s%s: %s", t->input, lx_record_index(rec) + 1,
	         *id ? " (id " : "", id, *id ? ")" : "", msg);
}

/* "NAME: message" printed and counted: the error field of a refused record. */
static void refused(tool_run *t, const lx_err *e, char *line, size_t n)
{
	snprintf(line, n, "%s: %s", tool_name, e->msg);
	tool_warn("%s", e->msg);
	t->bad++;
}

lx_status tool_refuse(tool_run *t, lx_record *rec, lx_status st, lx_err *e)
{
	char line[sizeof e->msg + 64];

	if (!t->keep_going || st != LX_EINPUT)
		return st;
	refused(t, e, line, sizeof line);
	if (lx_record_index(rec) >= 0) /* a record read: its fields as they came; a new one keeps what it has */
		lx_record_revert(rec);
	return lx_record_set_error(rec, line) ? lx_errf(e, LX_EIO, "out of memory") : LX_OK;
}

lx_status tool_refuse_new(tool_run *t, lx_record **out, lx_status st, lx_err *e)
{
	char line[sizeof e->msg + 64];

	refused(t, e, line, sizeof line);
	return (*out = lx_record_error_new(line)) ? LX_OK : lx_errf(e, LX_EIO, "out of memory");
}

void tool_done(tool_run *t, long n)
{
	t->done += n;
	tool_progress_tick(&t->prog, t->done, t->rd ? lx_reader_offset(t->rd) : t->bytes);
}

lx_status tool_flush(tool_run *t, lx_status st, lx_err *e, int *quiet)
{
	lx_status fst = LX_OK;

	tool_progress_end(&t->prog);
	if (t->wr)
		fst = lx_writer_flush(t->wr, st ? NULL : e);
	if (st == LX_EIO && tool_interrupted() && !fst)
		st = LX_OK; /* a read cut short by the signal */
	if (!st)
		st = fst;
	if (fclose(stdout) != 0 && !st)
		st = lx_errf(e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	*quiet = st == LX_EIO && ((t->wr && lx_writer_broken_pipe(t->wr)) || t->epipe);
	return st;
}

int tool_exit(tool_run *t, lx_status st, const lx_err *e, int quiet)
{
	if (st)
		return quiet ? (int)st : tool_fail(st, "%s", e->msg);
	if (tool_interrupted())
		return tool_fail(LX_EINTR, "interrupted after %ld %s, all written", t->done, t->unit);
	if (t->bad)
		return tool_fail(LX_EINPUT, "%ld of %ld %s were bad, written with an error field", t->bad, t->done, t->unit);
	return LX_OK;
}

int tool_end(tool_run *t, lx_status st, lx_err *e)
{
	int quiet, rc;

	st = tool_flush(t, st, e, &quiet);
	rc = tool_exit(t, st, e, quiet);
	tool_run_free(t);
	return rc;
}

/* progress.c - the progress line every record-reading tool shows on stderr. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lx_core.h"

void lx_progress_init(lx_progress *p, FILE *f, const char *tool, int force)
{
	p->f = f;
	p->tool = tool;
	p->enabled = force || isatty(fileno(f));
	p->t0 = p->last = lx_now();
	p->done = 0;
}

static void draw(lx_progress *p, double now, const char *end)
{
	double dt = now - p->t0;

	fprintf(p->f, "\r%s: %ld records, %.1f records/s%s", p->tool, p->done, dt > 0 ? p->done / dt : 0.0, end);
	fflush(p->f);
}

void lx_progress_tick(lx_progress *p, long done)
{
	double now;

	p->done = done;
	if (!p->enabled)
		return;
	now = lx_now();
	if (now - p->last >= 0.25) {
		p->last = now;
		draw(p, now, "");
	}
}

void lx_progress_end(lx_progress *p)
{
	if (p->enabled)
		draw(p, lx_now(), "\n");
}

static volatile sig_atomic_t stop_flag;
static pthread_t main_thread;

/* The kernel may hand a signal meant for the process to any thread, an OpenBLAS worker for instance; only
 * the main thread's blocked read must be cut short, so a signal caught elsewhere is passed on to it. */
static void on_signal(int sig)
{
	stop_flag = 1;
	if (!pthread_equal(pthread_self(), main_thread))
		pthread_kill(main_thread, sig);
}

void lx_signals_init(void)
{
	struct sigaction sa;

	main_thread = pthread_self();
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int lx_interrupted(void) { return stop_flag != 0; }

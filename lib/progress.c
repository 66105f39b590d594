/* progress.c - the progress line every record-reading tool shows on stderr. */
#include <unistd.h>

#include "lx.h"

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

/* atomic.c - writing a file whole or not at all: a hidden temporary beside it, fsync, rename (lx_core.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/aside.h"

lx_status lx_write_atomic(const char *path, lx_write_fn fn, void *ctx, lx_err *e)
{
	char tmp[PATH_MAX];
	FILE *f = NULL;
	mode_t mask;
	lx_status st;
	int fd;

	if ((st = lx_aside_name(path, "tmp-XXXXXX", tmp, sizeof tmp, e)))
		return st;
	if ((fd = mkstemp(tmp)) < 0)
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	/* the permissions fopen would have given: mkstemp's are 0600 */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0 || !(f = fdopen(fd, "wb"))) {
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
		close(fd);
	} else {
		st = fn(ctx, f, path, e);
		if (!st && (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0))
			st = lx_errf(e, LX_EIO, "%s: %s", path, errno ? strerror(errno) : "write failed");
		if (fclose(f) != 0 && !st)
			st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	}
	if (!st && rename(tmp, path) != 0)
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	if (st)
		unlink(tmp);
	else
		st = lx_sync_parent(path, e);
	return st;
}

typedef struct {
	const void *data;
	size_t n;
} whole;

static lx_status write_whole(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const whole *w = ctx;

	if (w->n && fwrite(w->data, 1, w->n, f) != w->n)
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	return LX_OK;
}

lx_status lx_write_file(const char *path, const void *data, size_t n, lx_err *e)
{
	whole w = {data, n};

	return lx_write_atomic(path, write_whole, &w, e);
}

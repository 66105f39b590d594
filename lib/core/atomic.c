/* atomic.c - writing a file whole or not at all: a temporary beside it, fsync, rename (lx_core.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx_core.h"

/* Makes the rename of a file in path's directory durable. Some file systems cannot fsync a directory
 * (EINVAL): their renames are as durable as they get. */
static lx_status sync_dir(const char *path, lx_err *e)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	int fd, bad;

	if (!dir)
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	bad = fd < 0 || (fsync(fd) != 0 && errno != EINVAL);
	if (bad)
		lx_errf(e, LX_EIO, "%s: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(dir);
	return bad ? LX_EIO : LX_OK;
}

lx_status lx_write_atomic(const char *path, lx_write_fn fn, void *ctx, lx_err *e)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + sizeof ".XXXXXX");
	FILE *f = NULL;
	mode_t mask;
	lx_status st = LX_OK;
	int fd;

	if (!tmp)
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	memcpy(tmp, path, n);
	memcpy(tmp + n, ".XXXXXX", sizeof ".XXXXXX");
	if ((fd = mkstemp(tmp)) < 0) {
		st = lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
		free(tmp);
		return st;
	}
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
		st = sync_dir(path, e);
	free(tmp);
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

/* lock.c - one writer per output, and directories built aside and moved into place whole (lx_core.h). */
#define _GNU_SOURCE /* renameat2 and RENAME_NOREPLACE / RENAME_EXCHANGE (glibc 2.28 and later): this file only */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/aside.h"

#ifdef RENAME_NOREPLACE
#define HAVE_RENAMEAT2 1
#else
#define HAVE_RENAMEAT2 0
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#endif

/* ---- names ---- */

/* path without its trailing slashes, split at its last slash: dir ("" when there is none; "/" for the root)
 * and base. */
static lx_status split(const char *path, char *dir, char *base, lx_err *e)
{
	size_t len = strlen(path);
	const char *slash;
	char buf[PATH_MAX];

	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= sizeof buf)
		return lx_errf(e, LX_EUSAGE, "%.64s...: path too long", path);
	memcpy(buf, path, len);
	buf[len] = 0;
	slash = strrchr(buf, '/');
	strcpy(base, slash ? slash + 1 : buf);
	if (!slash)
		dir[0] = 0;
	else if (slash == buf)
		strcpy(dir, "/");
	else {
		memcpy(dir, buf, (size_t)(slash - buf));
		dir[slash - buf] = 0;
	}
	if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
		return lx_errf(e, LX_EUSAGE, "%s: not a name an output can be written under", path);
	return LX_OK;
}

lx_status lx_aside_name(const char *path, const char *what, char *buf, size_t n, lx_err *e)
{
	char dir[PATH_MAX], base[PATH_MAX];
	lx_status st = split(path, dir, base, e);
	int w;

	if (st)
		return st;
	w = snprintf(buf, n, "%s%s.%s.%s", dir, dir[0] && strcmp(dir, "/") ? "/" : "", base, what);
	if (w < 0 || (size_t)w >= n)
		return lx_errf(e, LX_EUSAGE, "%s: path too long", path);
	return LX_OK;
}

/* ---- the lock ---- */

struct lx_lock {
	int fd;
	char path[PATH_MAX]; /* the sidecar */
};

/* The pid holding fd's file locked: fcntl's answer, or the pid the holder wrote; 0 if the lock is free. */
static long holder(int fd)
{
	struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char buf[32] = "";

	if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type == F_UNLCK)
		return 0;
	if (q.l_type != F_UNLCK && q.l_pid > 0)
		return q.l_pid;
	if (pread(fd, buf, sizeof buf - 1, 0) > 0)
		return atol(buf);
	return -1;
}

lx_status lx_lock_take(const char *path, lx_lock **out, lx_err *e)
{
	lx_lock *l;
	lx_status st;
	struct stat a, b;
	char pid[32];
	long other;
	int n;

	*out = NULL;
	if (!(l = malloc(sizeof *l)))
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	if ((st = lx_aside_name(path, "lock", l->path, sizeof l->path, e)))
		goto fail;
	for (;;) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

		if ((l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0) {
			st = lx_errf(e, LX_EIO, "%s: %s", l->path, strerror(errno));
			goto fail;
		}
		if (fcntl(l->fd, F_SETLK, &fl) != 0) {
			if (errno != EAGAIN && errno != EACCES)
				break; /* no locks on this file system (ENOLCK): granted, excluding no one */
			if ((other = holder(l->fd)) != 0) {
				close(l->fd);
				st = lx_errf(e, LX_EUSAGE, "%s: being written by another process (pid %ld)", path, other);
				goto fail;
			}
			close(l->fd); /* released in between: try again */
			continue;
		}
		/* A writer that released the lock between our open and our fcntl removed the file we locked: ours
		 * only if the name still leads to it. */
		if (fstat(l->fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			break;
		close(l->fd);
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)n, 0) != n) {
		st = lx_errf(e, LX_EIO, "%s: %s", l->path, strerror(errno));
		lx_lock_release(l);
		return st;
	}
	*out = l;
	return LX_OK;
fail:
	free(l);
	return st;
}

void lx_lock_release(lx_lock *l)
{
	if (!l)
		return;
	unlink(l->path); /* still holding it: the next writer sees the name gone and makes a new one */
	close(l->fd);
	free(l);
}

/* ---- directories built aside ---- */

lx_status lx_sync_parent(const char *path, lx_err *e)
{
	char dir[PATH_MAX], base[PATH_MAX];
	lx_status st = split(path, dir, base, e);
	int fd, bad;

	if (st)
		return st;
	fd = open(dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bad = fd < 0 || (fsync(fd) != 0 && errno != EINVAL);
	if (bad)
		st = lx_errf(e, LX_EIO, "%s: %s", dir[0] ? dir : ".", strerror(errno));
	if (fd >= 0)
		close(fd);
	return st;
}

lx_status lx_dir_aside(const char *path, char *tmp, size_t n, lx_err *e)
{
	lx_status st = lx_aside_name(path, "tmp-XXXXXX", tmp, n, e);
	mode_t mask;

	if (st)
		return st;
	if (!mkdtemp(tmp))
		return lx_errf(e, LX_EIO, "%s: %s", tmp, strerror(errno));
	mask = umask(0);
	umask(mask);
	if (chmod(tmp, 0777 & ~mask) != 0) { /* mkdtemp's is 0700 */
		st = lx_errf(e, LX_EIO, "%s: %s", tmp, strerror(errno));
		rmdir(tmp);
	}
	return st;
}

static int rename2(const char *from, const char *to, unsigned flags)
{
#if HAVE_RENAMEAT2
	return renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
#else
	(void)from, (void)to, (void)flags;
	errno = EINVAL;
	return -1;
#endif
}

/* renameat2 refused by the file system or the kernel */
static int refused(int err)
{
	return err == EINVAL || err == ENOSYS;
}

/* Without RENAME_EXCHANGE: path to an ".old-" name, then tmp to path, path put back if that fails. The old
 * one's name goes to old. */
static int swap_by_two(const char *tmp, const char *path, char *old, size_t n)
{
	lx_err e;
	int err;

	if (lx_aside_name(path, "old-XXXXXX", old, n, &e) || !mkdtemp(old))
		return -1;
	rmdir(old); /* a fresh name, held by the path lock against other writers */
	if (rename(path, old) != 0)
		return -1;
	if (rename(tmp, path) != 0) {
		err = errno;
		rename(old, path);
		errno = err;
		return -1;
	}
	return 0;
}

lx_status lx_dir_publish(const char *tmp, const char *path, int replace, lx_err *e)
{
	char old[PATH_MAX];
	const char *gone = tmp;
	sigset_t all, mask;
	struct stat sb;
	int fd, r, err;

	/* the names made inside tmp first, so that what is published holds them after a crash */
	if ((fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		r = fsync(fd) != 0 && errno != EINVAL;
		err = errno;
		close(fd);
		if (r)
			return lx_errf(e, LX_EIO, "%s: %s", tmp, strerror(err));
	}
	r = rename2(tmp, path, RENAME_NOREPLACE);
	if (r != 0 && refused(errno)) {
		if (lstat(path, &sb) == 0)
			errno = EEXIST;
		else
			r = rename(tmp, path);
	}
	if (r != 0 && errno != EEXIST)
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	if (r != 0) {
		if (!replace)
			return lx_errf(e, LX_EUSAGE, "%s: exists", path);
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &mask);
		r = rename2(tmp, path, RENAME_EXCHANGE);
		if (r != 0 && refused(errno)) {
			r = swap_by_two(tmp, path, old, sizeof old);
			gone = old;
		}
		err = errno;
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
		if (r != 0)
			return lx_errf(e, LX_EIO, "%s: %s", path, strerror(err));
		lx_remove_tree(gone, e); /* left for lx_clean_stale if it fails: path is in place */
	}
	return lx_sync_parent(path, e);
}

/* ---- what killed writers left ---- */

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

lx_status lx_remove_tree(const char *path, lx_err *e)
{
	struct stat sb;

	if (lstat(path, &sb) != 0 && errno == ENOENT)
		return LX_OK;
	if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	return LX_OK;
}

lx_status lx_clean_stale(const char *path, lx_err *e)
{
	char dir[PATH_MAX], base[PATH_MAX], prefix[PATH_MAX], entry[PATH_MAX * 2];
	const char *d = NULL;
	size_t np;
	struct dirent *de;
	struct stat sb;
	lx_status st = split(path, dir, base, e);
	DIR *dp;
	int pass;

	if (st)
		return st;
	d = dir[0] ? dir : ".";
	np = (size_t)snprintf(prefix, sizeof prefix, ".%s.", base);
	/* pass 0 puts an old one back where a two-rename swap was cut between its renames; pass 1 removes */
	for (pass = 0; pass < 2 && !st; pass++) {
		if (!(dp = opendir(d)))
			return lx_errf(e, LX_EIO, "%s: %s", d, strerror(errno));
		while ((de = readdir(dp))) {
			const char *rest = de->d_name + np;
			int old;

			if (strncmp(de->d_name, prefix, np))
				continue;
			old = !strncmp(rest, "old-", 4);
			if (!old && strncmp(rest, "tmp-", 4))
				continue;
			snprintf(entry, sizeof entry, "%s%s%s", dir, dir[0] && strcmp(dir, "/") ? "/" : "", de->d_name);
			if (pass == 0) {
				if (old && lstat(path, &sb) != 0 && errno == ENOENT && rename(entry, path) == 0)
					st = lx_sync_parent(path, e);
			} else if ((st = lx_remove_tree(entry, e))) {
				break;
			}
		}
		closedir(dp);
	}
	return st;
}

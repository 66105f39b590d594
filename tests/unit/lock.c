/* Unit tests of lib/core/lock.c: one writer per output (a lock held by a child process is refused with its
 * pid), directories built aside and moved into place whole, what a killed writer left removed. */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lx_core.h"
#include "check.h"

static char dir[] = "/tmp/lx-test-lock-XXXXXX";

/* The names in dir, sorted and joined by spaces. */
static const char *listing(void)
{
	static char buf[1024];
	struct dirent **de;
	int i, n = scandir(dir, &de, NULL, alphasort);

	buf[0] = 0;
	for (i = 0; i < n; i++) {
		if (strcmp(de[i]->d_name, ".") && strcmp(de[i]->d_name, "..")) {
			if (buf[0])
				strcat(buf, " ");
			strncat(buf, de[i]->d_name, sizeof buf - strlen(buf) - 2);
		}
		free(de[i]);
	}
	free(de);
	return buf;
}

static void put(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
}

static int holds(const char *name, const char *want)
{
	char p[256], buf[64];
	FILE *f;
	size_t n;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (!(f = fopen(p, "r")))
		return 0;
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return n == strlen(want) && memcmp(buf, want, n) == 0;
}

static void test_lock(void)
{
	char out[256], want[64];
	int go[2], done[2];
	lx_lock *l = NULL, *l2 = NULL;
	pid_t child;
	lx_err e;
	char c;

	snprintf(out, sizeof out, "%s/out", dir);
	CHECK(lx_lock_take(out, &l, &e) == LX_OK && l);
	snprintf(want, sizeof want, "%ld\n", (long)getpid());
	CHECK(holds(".out.lock", want));
	lx_lock_release(l);
	CHECK(!strcmp(listing(), ""));
	lx_lock_release(NULL);

	/* held by a child: refused, naming the child's pid; free again once the child let it go */
	CHECK(pipe(go) == 0 && pipe(done) == 0);
	if ((child = fork()) == 0) {
		lx_lock *cl;

		if (lx_lock_take(out, &cl, &e) != LX_OK)
			_exit(1);
		c = 'x';
		if (write(go[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(1);
		lx_lock_release(cl);
		_exit(0);
	}
	CHECK(read(go[0], &c, 1) == 1);
	CHECK(lx_lock_take(out, &l, &e) == LX_EUSAGE && l == NULL);
	snprintf(want, sizeof want, "out: being written by another process (pid %ld)", (long)child);
	CHECKF(strstr(e.msg, want) != NULL, "message %s", e.msg);
	CHECK(write(done[1], &c, 1) == 1);
	int status;
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(lx_lock_take(out, &l, &e) == LX_OK);
	lx_lock_release(l);

	/* a holder killed with SIGKILL leaves its sidecar, but not its lock */
	if ((child = fork()) == 0) {
		lx_lock *cl;

		if (lx_lock_take(out, &cl, &e) != LX_OK)
			_exit(1);
		c = 'x';
		if (write(go[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK(read(go[0], &c, 1) == 1);
	CHECK(lx_lock_take(out, &l, &e) == LX_EUSAGE);
	kill(child, SIGKILL);
	CHECK(waitpid(child, &status, 0) == child && WIFSIGNALED(status));
	CHECK(!strcmp(listing(), ".out.lock"));
	CHECK(lx_lock_take(out, &l, &e) == LX_OK);
	snprintf(want, sizeof want, "%ld\n", (long)getpid());
	CHECK(holds(".out.lock", want));
	lx_lock_release(l);
	CHECK(!strcmp(listing(), ""));
	close(go[0]), close(go[1]), close(done[0]), close(done[1]);

	/* two outputs, two locks; trailing slashes name the same output */
	snprintf(out, sizeof out, "%s/out/", dir);
	CHECK(lx_lock_take(out, &l, &e) == LX_OK);
	snprintf(out, sizeof out, "%s/other", dir);
	CHECK(lx_lock_take(out, &l2, &e) == LX_OK);
	CHECK(!strcmp(listing(), ".other.lock .out.lock"));
	lx_lock_release(l);
	lx_lock_release(l2);

	/* no directory to put the sidecar in */
	snprintf(out, sizeof out, "%s/no/out", dir);
	CHECK(lx_lock_take(out, &l, &e) == LX_EIO && strstr(e.msg, "/no/.out.lock: No such file or directory"));
	CHECK(lx_lock_take("/", &l, &e) == LX_EUSAGE);
}

static void test_publish(void)
{
	char out[256], tmp[256], tmp2[256], p[300];
	struct stat sb;
	mode_t mask = umask(022);
	lx_err e;

	snprintf(out, sizeof out, "%s/out", dir);
	CHECK(lx_dir_aside(out, tmp, sizeof tmp, &e) == LX_OK);
	CHECK(strncmp(tmp, dir, strlen(dir)) == 0 && strncmp(tmp + strlen(dir), "/.out.tmp-", 10) == 0);
	CHECK(stat(tmp, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0755);
	snprintf(p, sizeof p, "%s/a", tmp);
	CHECK(lx_write_file(p, "first", 5, &e) == LX_OK);
	CHECK(lx_dir_publish(tmp, out, 0, &e) == LX_OK);
	CHECK(!strcmp(listing(), "out") && holds("out/a", "first"));

	/* something at out: refused without replace, both left as they are */
	CHECK(lx_dir_aside(out, tmp, sizeof tmp, &e) == LX_OK);
	snprintf(p, sizeof p, "%s/b", tmp);
	CHECK(lx_write_file(p, "second", 6, &e) == LX_OK);
	CHECK(lx_dir_publish(tmp, out, 0, &e) == LX_EUSAGE && strstr(e.msg, "/out: exists"));
	CHECK(holds("out/a", "first") && stat(p, &sb) == 0);

	/* with replace: swapped, the old one removed */
	CHECK(lx_dir_publish(tmp, out, 1, &e) == LX_OK);
	CHECK(!strcmp(listing(), "out") && holds("out/b", "second") && !holds("out/a", "first"));

	/* a file replaced by a directory, and the other way */
	CHECK(lx_remove_tree(out, &e) == LX_OK && !strcmp(listing(), ""));
	put("out", "file");
	CHECK(lx_dir_aside(out, tmp, sizeof tmp, &e) == LX_OK && lx_dir_publish(tmp, out, 1, &e) == LX_OK);
	CHECK(stat(out, &sb) == 0 && S_ISDIR(sb.st_mode) && !strcmp(listing(), "out"));

	/* two built aside at once get two names */
	CHECK(lx_dir_aside(out, tmp, sizeof tmp, &e) == LX_OK && lx_dir_aside(out, tmp2, sizeof tmp2, &e) == LX_OK);
	CHECK(strcmp(tmp, tmp2) != 0);
	CHECK(lx_remove_tree(tmp, &e) == LX_OK && lx_remove_tree(tmp2, &e) == LX_OK);
	CHECK(lx_remove_tree(out, &e) == LX_OK && !strcmp(listing(), ""));
	CHECK(lx_remove_tree(out, &e) == LX_OK); /* nothing there */

	/* a relative path */
	CHECK(chdir(dir) == 0);
	CHECK(lx_dir_aside("rel", tmp, sizeof tmp, &e) == LX_OK && strncmp(tmp, ".rel.tmp-", 9) == 0);
	CHECK(lx_dir_publish(tmp, "rel", 0, &e) == LX_OK && !strcmp(listing(), "rel"));
	CHECK(lx_remove_tree("rel", &e) == LX_OK && chdir("/") == 0);
	umask(mask);
}

/* lx_write_atomic's callback: the temporary it writes is one lx_clean_stale would find */
static lx_status write_seen(void *ctx, FILE *f, const char *path, lx_err *e)
{
	strcpy(ctx, listing());
	fputs("x", f);
	return LX_OK;
}

static void test_stale(void)
{
	char out[256], seen[1024], p[300], link[300];
	lx_err e;

	snprintf(out, sizeof out, "%s/out", dir);
	CHECK(lx_write_atomic(out, write_seen, seen, &e) == LX_OK);
	CHECKF(!strncmp(seen, ".out.tmp-", 9) && strlen(seen) == 15, "listing while writing: %s", seen);
	CHECK(!strcmp(listing(), "out"));

	/* what killed writers of out left: files, directories with files, an old one; others' left alone */
	put(".out.tmp-aaaaaa", "half");
	snprintf(p, sizeof p, "%s/.out.tmp-bbbbbb", dir);
	CHECK(mkdir(p, 0755) == 0);
	put(".out.tmp-bbbbbb/model", "half");
	/* a link inside is removed, not followed */
	put("keep", "kept");
	snprintf(p, sizeof p, "%s/.out.tmp-bbbbbb/link", dir);
	snprintf(link, sizeof link, "%s/keep", dir);
	CHECK(symlink(link, p) == 0);
	put(".out.old-cccccc", "old");
	put(".outer.tmp-dddddd", "another output's");
	put(".out.lock", "1\n");
	put("out.tmp", "not hidden");
	CHECK(lx_clean_stale(out, &e) == LX_OK);
	CHECKF(!strcmp(listing(), ".out.lock .outer.tmp-dddddd keep out out.tmp"), "left: %s", listing());
	CHECK(holds("out", "x") && holds("keep", "kept"));

	/* a swap cut between its two renames: out missing, the old one put back */
	snprintf(p, sizeof p, "%s/.out.old-eeeeee", dir);
	CHECK(rename(out, p) == 0);
	put(".out.tmp-ffffff", "new");
	CHECK(lx_clean_stale(out, &e) == LX_OK);
	CHECK(!strcmp(listing(), ".out.lock .outer.tmp-dddddd keep out out.tmp") && holds("out", "x"));
	CHECK(lx_clean_stale(out, &e) == LX_OK); /* nothing to do */
	snprintf(p, sizeof p, "%s/no/out", dir);
	CHECK(lx_clean_stale(p, &e) == LX_EIO && strstr(e.msg, "No such file or directory"));
}

int main(void)
{
	lx_err e;

	CHECK(mkdtemp(dir) != NULL);
	test_lock();
	test_publish();
	test_stale();
	CHECK(lx_remove_tree(dir, &e) == LX_OK);
	return check_done("lock");
}

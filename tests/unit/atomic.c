/* Unit tests of lib/core/atomic.c: a file written whole or not at all, no temporary left behind. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx_core.h"
#include "check.h"

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

static int holds(const char *path, const char *want)
{
	char buf[64];
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;

	if (f)
		fclose(f);
	return f && n == strlen(want) && memcmp(buf, want, n) == 0;
}

static lx_status write_hello(void *ctx, FILE *f, const char *path, lx_err *e)
{
	fprintf(f, "hello %s", (const char *)ctx);
	return LX_OK;
}

static lx_status write_half(void *ctx, FILE *f, const char *path, lx_err *e)
{
	fputs("half", f);
	return lx_errf(e, LX_EINPUT, "%s: stopped", path);
}

int main(void)
{
	char dir[] = "/tmp/lx-test-atomic-XXXXXX", path[64], sub[80];
	struct stat sb;
	mode_t mask = umask(022);
	lx_err e;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/out.txt", dir);
	CHECK(lx_write_atomic(path, write_hello, "world", &e) == LX_OK && holds(path, "hello world"));
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644);
	CHECK(entries(dir) == 1);
	/* a failing writer leaves the old file and no temporary */
	CHECK(lx_write_atomic(path, write_half, NULL, &e) == LX_EINPUT && strstr(e.msg, "out.txt: stopped"));
	CHECK(holds(path, "hello world") && entries(dir) == 1);
	CHECK(lx_write_file(path, "bytes", 5, &e) == LX_OK && holds(path, "bytes") && entries(dir) == 1);
	CHECK(lx_write_file(path, "", 0, &e) == LX_OK && holds(path, "") && entries(dir) == 1);
	snprintf(sub, sizeof sub, "%s/no/such.txt", dir);
	CHECK(lx_write_file(sub, "x", 1, &e) == LX_EIO && strstr(e.msg, "No such file or directory"));
	CHECK(entries(dir) == 1);
	unlink(path);
	rmdir(dir);
	umask(mask);
	return check_done("atomic");
}

/* fuzz_file.h - for libFuzzer targets whose parser opens a path: writes the input to a file of a given
 * name in a directory of its own under /dev/shm (or $TMPDIR), and returns the path. */
#ifndef FUZZ_FILE_H
#define FUZZ_FILE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fuzz_dir(void)
{
	static char dir[256];

	if (!*dir) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(dir, sizeof dir, "%s/lx-fuzz-%ld", base, (long)getpid());
		if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0)
			abort();
	}
	return dir;
}

/* Writes data[0..n) to DIR/name; returns the path (a static buffer per call site's slot 0..3). */
static const char *fuzz_write(int slot, const char *name, const void *data, size_t n)
{
	static char path[4][512];
	FILE *f;

	snprintf(path[slot], sizeof path[slot], "%s/%s", fuzz_dir(), name);
	if (!(f = fopen(path[slot], "wb")) || (n && fwrite(data, 1, n, f) != n) || fclose(f))
		abort();
	return path[slot];
}
#endif

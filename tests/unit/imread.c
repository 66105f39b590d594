/*
 * tests/unit/imread.c - lx_image_load decodes as OpenCV's imread (IMREAD_COLOR) does, on the files of
 * tests/fixtures/imread (made by tests/py/mkimread.py): alpha and tRNS dropped, 16-bit samples >> 8, grey of
 * every depth and palettes to RGB, gAMA ignored, interlacing, grey JPEG, and the eight EXIF orientations of a
 * JPEG (little- and big-endian). The expected pixels, NAME.npy, were worked out with numpy from those rules.
 * Run from the top of the tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fmt/npy.h"
#include "lx_image.h"

#define DIR "tests/fixtures/imread/"

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long len;

	if (f && !fseek(f, 0, SEEK_END) && (len = ftell(f)) > 0 && !fseek(f, 0, SEEK_SET) &&
	    (b = malloc((size_t)len)) && fread(b, 1, (size_t)len, f) != (size_t)len) {
		free(b);
		b = NULL;
	}
	if (b)
		*n = (size_t)ftell(f);
	if (f)
		fclose(f);
	return b;
}

static void one(const char *name)
{
	char path[256], npy[256];
	const char *dot = strrchr(name, '.');
	unsigned char *b;
	size_t n = 0;
	lx_tensor t;
	lx_image *im;
	lx_err e;
	int obj, diff = 0;
	size_t off, i;

	snprintf(path, sizeof path, DIR "%s", name);
	snprintf(npy, sizeof npy, DIR "%.*s.npy", (int)(dot - name), name);
	if (!(b = slurp(npy, &n)) || lx_npy_parse(b, n, npy, &t, &obj, &off, &e) || obj || t.dtype != LX_U8 ||
	    t.ndim != 3 || t.shape[2] != 3) {
		CHECKF(0, "%s: unreadable", npy);
		free(b);
		return;
	}
	if (lx_image_load(&im, path, &e)) {
		CHECKF(0, "%s: %s", path, e.msg);
		free(b);
		return;
	}
	if (im->h != t.shape[0] || im->w != t.shape[1])
		CHECKF(0, "%s: %d x %d, imread gives %lld x %lld (w x h)", name, im->w, im->h, (long long)t.shape[1],
		       (long long)t.shape[0]);
	else {
		for (i = 0; i < (size_t)im->w * im->h * 3; i++)
			diff += im->px[i] != ((const uint8_t *)t.data)[i];
		CHECKF(!diff, "%s: %d of %d samples differ from imread's", name, diff, im->w * im->h * 3);
	}
	printf("  %-20s %3d x %-3d\n", name, im->w, im->h);
	lx_image_free(im);
	free(b);
}

int main(void)
{
	char line[128];
	FILE *f = fopen(DIR "CASES", "r");
	int cases = 0;

	CHECK(f != NULL);
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (*line) {
			one(line);
			cases++;
		}
	}
	if (f)
		fclose(f);
	CHECKF(cases == 27, "%d cases in " DIR "CASES, expected 27", cases);
	return check_done("imread");
}

/* libFuzzer target: lx-featpack's index files (FILE.lxidx, lx-featidx(5)). The feature file is fixed (three
 * small obj36 lines, its modification time set to 1000000000.5 so that an index can name it); the input is
 * the index beside it, read with LX_FEAT_INDEX_STRICT (a damaged one is refused, not rebuilt). Every image
 * the index names is then read through it. */
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_file.h"
#include "lx_feat.h"

static const char rest[] = "100	200	AQAAAAAAAAACAAAAAAAAAA==	AAAAPwAAAD8=	AwAAAAAAAAAEAAAAAAAAAA==	AACAPgAAgD4=	2	AAAgQQAAIEEAAEhCAABwQgAAAAAAAAAAAABHQwAAxkI=	AAAAAAAAgD8AAABAAABAQA==\r\n";

static const char *feature_file(void)
{
	static const char *path;

	if (!path) {
		char text[3 * sizeof rest + 64];
		size_t n = 0;
		int i;
		struct timespec t[2] = {{1000000000, 500000000}, {1000000000, 500000000}};
		for (i = 0; i < 3; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, "img%d\t%s", i, rest);
		path = fuzz_write(0, "feats.tsv", text, n);
		if (utimensat(AT_FDCWD, path, t, 0) != 0)
			abort();
	}
	return path;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const char *ids[] = {"img0", "img1", "img2", "img3", ""};
	const char *path = feature_file();
	lx_feat_index *ix = lx_feat_index_new(LX_FEAT_INDEX_FILE | LX_FEAT_INDEX_STRICT, 2);
	const lx_feat_image *im;
	lx_err e;
	size_t i;

	fuzz_write(1, "feats.tsv.lxidx", data, size);
	if (!ix)
		abort();
	if (lx_feat_index_add(ix, path, &e) == LX_OK)
		for (i = 0; i < sizeof ids / sizeof ids[0]; i++)
			lx_feat_index_get(ix, ids[i], strlen(ids[i]), &im, &e);
	lx_feat_index_free(ix);
	return 0;
}

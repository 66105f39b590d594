/* libFuzzer target: lx-head's name lists (answers as a JSON list or one a line, Visual Genome vocabularies
 * with synonyms). The first byte picks the kind. */
#include <stdlib.h>
#include <string.h>

#include "lx_heads.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const int kinds[] = {LX_NAMES_ANSWERS, LX_NAMES_LINES, LX_NAMES_FIRST};
	lx_names *n;
	lx_err e;
	int i;

	if (size < 1)
		return 0;
	if (lx_names_parse(&n, (const char *)data + 1, size - 1, "fuzz", kinds[data[0] % 3], &e) != LX_OK)
		return 0;
	if (lx_names_count(n) < 1)
		abort();
	for (i = 0; i < lx_names_count(n); i++)
		if (!lx_names_get(n, i))
			abort();
	lx_names_find(n, "yes");
	lx_names_free(n);
	return 0;
}

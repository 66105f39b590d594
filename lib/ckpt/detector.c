/* detector.c - the LXMERT demo's Faster R-CNN checkpoint (the hub's pytorch_model.bin) as the tensors of its
 * model.safetensors: the same names, BatchNorm's num_batches_tracked counters dropped. */
#include <stdlib.h>
#include <string.h>

#include "lx_ckpt.h"

static int ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

int lx_ckpt_is_detector(const lx_ckpt *c)
{
	int stem = 0, rpn = 0;

	for (int i = 0; i < lx_ckpt_count(c); i++) {
		const char *name = lx_ckpt_name(c, i, NULL);
		stem |= !strcmp(name, "backbone.stem.conv1.weight");
		rpn |= !strcmp(name, "proposal_generator.rpn_head.conv.weight");
	}
	return stem && rpn;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const lx_st_entry *)a)->name, ((const lx_st_entry *)b)->name);
}

lx_status lx_ckpt_detector_entries(const lx_ckpt *c, lx_st_entry **out, int *n, const char *path, lx_err *e)
{
	lx_st_entry *t = calloc((size_t)lx_ckpt_count(c) + 1, sizeof *t);

	*out = NULL;
	*n = 0;
	if (!t)
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	for (int i = 0; i < lx_ckpt_count(c); i++) {
		lx_tensor src;
		const char *name = lx_ckpt_name(c, i, &src);
		if (ends(name, ".num_batches_tracked"))
			continue;
		if (!lx_dtype_is_float(src.dtype)) {
			free(t);
			return lx_errf(e, LX_EMODEL, "%s: tensor %s: not a float tensor (a detector holds only floats and "
			               "BatchNorm's num_batches_tracked)", path, name);
		}
		t[*n] = (lx_st_entry){name, src, src.dtype};
		(*n)++;
	}
	qsort(t, (size_t)*n, sizeof *t, by_name);
	*out = t;
	return LX_OK;
}

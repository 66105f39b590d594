/*
 * ckpt/torch.h - what the pickle of a PyTorch state dict may hold (internal to lib/ckpt): the rules given to
 * fmt/pickle.c. Allowed globals, never called: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * _rebuild_tensor and _rebuild_parameter, and the torch.*Storage types, which only tag persistent ids.
 */
#ifndef LX_CKPT_TORCH_H
#define LX_CKPT_TORCH_H

#include "fmt/pickle.h"

/* What the rules make (lx_pk.kind of an LX_PK_OBJ). A STORAGE: s its key, i its numel, items[0] its type
 * (a GLOBAL named "torch.XStorage"), off and count a legacy view into the root storage (elements) or -1. A
 * TENSOR: items[0] its STORAGE, i its storage offset, dims[0..ndim) its shape and dims[ndim..2 ndim) its
 * strides. */
enum { K_STORAGE = 1, K_TENSOR };
int ckpt_is(const lx_pk *v, int kind);

/* Every STORAGE the persistent ids of a pickle made, in order (v malloc'ed, freed by the caller). */
typedef struct {
	lx_pk **v;
	size_t n, cap;
} ckpt_storages;

/* A pickle interpreter with a state dict's rules; its storages go to *s. */
lx_pickle *ckpt_torch_pickle(ckpt_storages *s);

#endif

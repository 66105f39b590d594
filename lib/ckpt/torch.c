/* torch.c - the rules for the pickle of a PyTorch state dict: its globals, storages and tensors (ckpt/torch.h). */
#include <stdlib.h>
#include <string.h>

#include "ckpt/torch.h"

/* The globals a state dict needs, never called: the ids lx_pk.kind holds. */
enum { G_ODICT, G_REBUILD_V2, G_REBUILD, G_REBUILD_PARAM, G_STORAGE };
int ckpt_is(const lx_pk *v, int kind) { return v->type == LX_PK_OBJ && v->kind == kind; }

static int storage_name(const char *s)
{
	size_t n = strlen(s);

	if (n <= 7 || strcmp(s + n - 7, "Storage"))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
			return 0;
	return 1;
}

static int torch_global(void *ctx, const char *mod, const char *name)
{
	static const struct { const char *mod, *name; int id; } allowed[] = {
		{"collections", "OrderedDict", G_ODICT},
		{"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2},
		{"torch._utils", "_rebuild_tensor", G_REBUILD},
		{"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
	};
	size_t k;

	for (k = 0; k < sizeof allowed / sizeof *allowed; k++)
		if (!strcmp(mod, allowed[k].mod) && !strcmp(name, allowed[k].name))
			return allowed[k].id;
	return !strcmp(mod, "torch") && storage_name(name) ? G_STORAGE : -1;
}

/* ('storage', torch.XStorage, key, location, numel[, view_metadata]) */
static lx_status torch_persid(lx_pickle *p, void *ctx, const lx_pk *t, lx_pk **out)
{
	ckpt_storages *S = ctx;
	lx_pk *v, *vm_;

	if (t->type != LX_PK_TUPLE || (t->n != 5 && t->n != 6) || t->items[0]->type != LX_PK_STR ||
	    strcmp(t->items[0]->s, "storage"))
		return lx_pickle_fail(p, "persistent id is not a ('storage', type, key, location, numel) tuple");
	if (t->items[1]->type != LX_PK_GLOBAL || t->items[1]->kind != G_STORAGE)
		return lx_pickle_fail(p, "persistent id: the storage type is not a torch.*Storage");
	if (t->items[2]->type != LX_PK_STR || t->items[3]->type != LX_PK_STR || t->items[4]->type != LX_PK_INT ||
	    t->items[4]->i < 0)
		return lx_pickle_fail(p, "persistent id: key and location must be strings, numel a non-negative integer");
	if (!(v = lx_pk_new(p, LX_PK_OBJ)) || !(v->s = strdup(t->items[2]->s)) || lx_pk_add(v, t->items[1]))
		return lx_pickle_oom(p);
	v->kind = K_STORAGE;
	v->len = strlen(v->s);
	v->i = t->items[4]->i;
	v->off = v->count = -1;
	if (t->n == 6 && (vm_ = t->items[5])->type != LX_PK_NONE) {
		if (vm_->type != LX_PK_TUPLE || vm_->n != 3 || vm_->items[1]->type != LX_PK_INT ||
		    vm_->items[2]->type != LX_PK_INT || vm_->items[1]->i < 0 || vm_->items[2]->i < 0)
			return lx_pickle_fail(p, "persistent id: view metadata is not a (key, offset, size) tuple");
		v->off = vm_->items[1]->i;
		v->count = vm_->items[2]->i;
	}
	if (S->n == S->cap) {
		size_t nc = S->cap ? 2 * S->cap : 16;
		lx_pk **q = realloc(S->v, nc * sizeof *q);
		if (!q)
			return lx_pickle_oom(p);
		S->v = q;
		S->cap = nc;
	}
	S->v[S->n++] = v;
	*out = v;
	return LX_OK;
}

static int int_tuple(const lx_pk *t, int64_t *out)
{
	size_t k;

	if (t->type != LX_PK_TUPLE || t->n > LX_MAX_DIMS)
		return -1;
	for (k = 0; k < t->n; k++) {
		if (t->items[k]->type != LX_PK_INT)
			return -1;
		out[k] = t->items[k]->i;
	}
	return 0;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) and
 * _rebuild_tensor(storage, offset, size, stride): a TENSOR, checked for types only. */
static lx_status rebuild_tensor(lx_pickle *p, const lx_pk *a, size_t min_args, lx_pk **out)
{
	lx_pk *v;

	if (a->n < min_args || !ckpt_is(a->items[0], K_STORAGE) || a->items[1]->type != LX_PK_INT)
		return lx_pickle_fail(p, "tensor rebuild arguments are not (storage, offset, size, stride, ...)");
	if (a->items[2]->type != LX_PK_TUPLE || a->items[3]->type != LX_PK_TUPLE ||
	    a->items[2]->n != a->items[3]->n)
		return lx_pickle_fail(p, "tensor rebuild: size and stride are not tuples of one length");
	if (a->items[2]->n > LX_MAX_DIMS)
		return lx_pickle_fail(p, "tensor rebuild: more than 8 dimensions");
	if (!(v = lx_pk_new(p, LX_PK_OBJ)) || lx_pk_add(v, a->items[0]))
		return lx_pickle_oom(p);
	v->kind = K_TENSOR;
	v->i = a->items[1]->i;
	v->ndim = (int)a->items[2]->n;
	if (int_tuple(a->items[2], v->dims) || int_tuple(a->items[3], v->dims + v->ndim))
		return lx_pickle_fail(p, "tensor rebuild: size and stride must hold integers");
	*out = v;
	return LX_OK;
}

static lx_status torch_reduce(lx_pickle *p, void *ctx, const lx_pk *f, const lx_pk *a, lx_pk **out)
{
	switch (f->kind) {
	case G_ODICT:
		if (a->n != 0)
			return lx_pickle_fail(p, "collections.OrderedDict called with arguments");
		if (!(*out = lx_pk_new(p, LX_PK_DICT)))
			return lx_pickle_oom(p);
		return LX_OK;
	case G_REBUILD_V2:
		if (a->n > 7)
			return lx_pickle_fail(p, "_rebuild_tensor_v2 with more than 7 arguments");
		return rebuild_tensor(p, a, 6, out);
	case G_REBUILD:
		if (a->n != 4)
			return lx_pickle_fail(p, "_rebuild_tensor needs 4 arguments");
		return rebuild_tensor(p, a, 4, out);
	case G_REBUILD_PARAM:
		if (a->n != 3 || !ckpt_is(a->items[0], K_TENSOR))
			return lx_pickle_fail(p, "_rebuild_parameter needs (tensor, requires_grad, hooks)");
		*out = a->items[0];
		return LX_OK;
	default:
		return lx_pickle_fail(p, "a torch.*Storage type cannot be called");
	}
}

/* BUILD sets the attributes of an object: only OrderedDict's _metadata occurs in state dicts; it is dropped. */
static lx_status torch_build(lx_pickle *p, void *ctx, lx_pk *obj, const lx_pk *state)
{
	return obj->type == LX_PK_DICT ? LX_OK : lx_pickle_fail(p, "BUILD on a value that is not a dict");
}

lx_pickle *ckpt_torch_pickle(ckpt_storages *s)
{
	lx_pickle_rules r = {torch_global, "(a state dict needs only collections.OrderedDict, "
	                     "torch._utils._rebuild_tensor_v2 and torch.*Storage); refusing the file", "a state dict",
	                     torch_reduce, torch_build, torch_persid, LX_EMODEL, s};

	return lx_pickle_new(&r);
}

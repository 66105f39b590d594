/* feat_pickle.c - what np.save pickles for a dict of arrays (a 0-d object array), read by fmt/pickle.c with
 * numpy's rules: numbers, strings, bytes, tuples, lists, dicts, numpy arrays, dtypes and scalars. Nothing is
 * ever called: numpy's array, dtype and scalar constructors are rebuilt here as data; any other global may
 * appear as a value but calling it is an error. Then the image in such a dict, for feat_npy.c and feat_npz.c. */
#include <stdlib.h>
#include <string.h>

#include "feat/feat_impl.h"
#include "fmt/npy.h"

/* The globals the rules know (lx_pk.kind of a GLOBAL); any other is NP_OTHER. */
enum { NP_OTHER, NP_RECONSTRUCT, NP_DTYPE_G, NP_SCALAR, NP_LATIN1, NP_FROMBUFFER };

typedef struct {
	const char *where;
	lx_err *e;
} vm;

static lx_status bad(vm *v, const char *what)
{
	return lx_errf(v->e, LX_EINPUT, "%s: pickle: %s", v->where, what);
}

static lx_status oom(vm *v) { return lx_errf(v->e, LX_EIO, "%s: out of memory", v->where); }

static int str_is(const lx_pk *o, const char *s)
{
	return o && (o->type == LX_PK_STR || o->type == LX_PK_GLOBAL) && o->len == strlen(s) && memcmp(o->s, s, o->len) == 0;
}

int feat_pk_is(const lx_pk *o, int kind) { return o && o->type == LX_PK_OBJ && o->kind == kind; }

static int numpy_global(void *ctx, const char *mod, const char *name)
{
	static const struct { const char *mod, *name; int id; } known[] = {
		{"numpy.core.multiarray", "_reconstruct", NP_RECONSTRUCT}, {"numpy._core.multiarray", "_reconstruct", NP_RECONSTRUCT},
		{"numpy", "dtype", NP_DTYPE_G},
		{"numpy.core.multiarray", "scalar", NP_SCALAR}, {"numpy._core.multiarray", "scalar", NP_SCALAR},
		{"_codecs", "encode", NP_LATIN1},
		{"numpy.core.numeric", "_frombuffer", NP_FROMBUFFER}, {"numpy._core.numeric", "_frombuffer", NP_FROMBUFFER},
	};
	size_t k;

	for (k = 0; k < sizeof known / sizeof *known; k++)
		if (!strcmp(mod, known[k].mod) && !strcmp(name, known[k].name))
			return known[k].id;
	return NP_OTHER;
}

static lx_pk *new_obj(lx_pickle *p, int kind)
{
	lx_pk *o = lx_pk_new(p, LX_PK_OBJ);

	if (o)
		o->kind = kind;
	return o;
}

/* numpy.dtype('f4', False, True) */
static lx_status make_dtype(lx_pickle *p, vm *v, const lx_pk *args, lx_pk **out)
{
	static const struct { const char *s; lx_dtype t; } names[] = {
		{"f4", LX_F32}, {"f8", LX_F64}, {"f2", LX_F16}, {"i8", LX_I64}, {"i4", LX_I32},
		{"i2", LX_I16}, {"i1", LX_I8},  {"u1", LX_U8},  {"b1", LX_BOOL}, {"O8", LX_U8},
	};
	lx_pk *d = new_obj(p, NP_DTYPE);
	size_t i;

	if (!d)
		return oom(v);
	if (args->type != LX_PK_TUPLE || args->n < 1 || args->items[0]->type != LX_PK_STR)
		return bad(v, "numpy.dtype without a type name");
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (str_is(args->items[0], names[i].s)) {
			d->t.dtype = names[i].t;
			d->flags = names[i].s[0] == 'O' ? NP_OBJECT : 0;
			*out = d;
			return LX_OK;
		}
	return lx_errf(v->e, LX_EINPUT, "%s: pickle: numpy dtype %.*s is not supported", v->where,
	               (int)args->items[0]->len, args->items[0]->s);
}

/* numpy.core.multiarray.scalar(dtype, bytes): an INT or a FLOAT. */
static lx_status make_scalar(lx_pickle *p, vm *v, const lx_pk *args, lx_pk **out)
{
	const lx_pk *d, *b;
	lx_tensor t;
	lx_pk *o;

	if (args->type != LX_PK_TUPLE || args->n != 2 || !feat_pk_is(d = args->items[0], NP_DTYPE) ||
	    ((b = args->items[1])->type != LX_PK_BYTES && b->type != LX_PK_STR) || (d->flags & NP_OBJECT) || (d->flags & NP_BIG) ||
	    b->len != lx_dtype_size(d->t.dtype))
		return bad(v, "a numpy scalar that is not a number");
	memset(&t, 0, sizeof t);
	t.dtype = d->t.dtype;
	t.numel = 1;
	t.data = b->s;
	if (!(o = lx_pk_new(p, lx_dtype_is_float(d->t.dtype) ? LX_PK_FLOAT : LX_PK_INT)))
		return oom(v);
	if (o->type == LX_PK_FLOAT) {
		float f;
		lx_tensor_to_f32(&t, &f, "scalar", NULL);
		o->f = f;
		if (d->t.dtype == LX_F64)
			memcpy(&o->f, b->s, 8);
	} else if (d->t.dtype == LX_I64)
		memcpy(&o->i, b->s, 8);
	else {
		int32_t x;
		lx_tensor_to_i32(&t, &x, "scalar", NULL);
		o->i = x;
	}
	*out = o;
	return LX_OK;
}

/* numpy.core.numeric._frombuffer(bytes, dtype, shape, order): how protocol 5 pickles an array. */
/* The dtype and shape of array a from a dtype object and a tuple of dimensions, checked. */
static lx_status set_shape(vm *v, lx_pk *a, const lx_pk *d, const lx_pk *shape)
{
	size_t i;

	a->t.dtype = d->t.dtype;
	a->t.ndim = (int)shape->n;
	a->t.numel = 1;
	for (i = 0; i < shape->n; i++) {
		if (shape->items[i]->type != LX_PK_INT || shape->items[i]->i < 0 || shape->items[i]->i > (1LL << 31))
			return bad(v, "a bad array shape");
		a->t.shape[i] = shape->items[i]->i;
		if (!lx_npy_mul_dim(&a->t.numel, shape->items[i]->i))
			return bad(v, "an array shape of more than 2^40 elements");
	}
	return LX_OK;
}

static lx_status make_frombuffer(lx_pickle *p, vm *v, const lx_pk *args, lx_pk **out)
{
	const lx_pk *b, *d, *shape;
	lx_pk *a = new_obj(p, NP_ARRAY);
	lx_status rc;

	if (!a)
		return oom(v);
	if (args->type != LX_PK_TUPLE || args->n != 4 || (b = args->items[0])->type != LX_PK_BYTES ||
	    !feat_pk_is(d = args->items[1], NP_DTYPE) || (shape = args->items[2])->type != LX_PK_TUPLE || (d->flags & NP_OBJECT) ||
	    (d->flags & NP_BIG) || shape->n > LX_MAX_DIMS)
		return bad(v, "numpy _frombuffer with other arguments than (bytes, dtype, shape, order)");
	if (shape->n > 1 && !str_is(args->items[3], "C"))
		return bad(v, "an array in Fortran order");
	if ((rc = set_shape(v, a, d, shape)))
		return rc;
	if ((uint64_t)b->len != (uint64_t)a->t.numel * lx_dtype_size(d->t.dtype))
		return bad(v, "array data of the wrong size");
	a->t.data = b->s;
	*out = a;
	return LX_OK;
}

/* _codecs.encode(text, 'latin1'): how Python 3 writes bytes at protocol 2. Code points above 255 are
 * not latin-1. */
static lx_status make_latin1(lx_pickle *pk, vm *v, const lx_pk *args, lx_pk **out)
{
	const lx_pk *s;
	const unsigned char *p, *end;
	unsigned char *d;
	lx_pk *b = lx_pk_new(pk, LX_PK_BYTES);

	if (!b)
		return oom(v);
	if (args->type != LX_PK_TUPLE || args->n != 2 || (s = args->items[0])->type != LX_PK_STR ||
	    !str_is(args->items[1], "latin1"))
		return bad(v, "_codecs.encode with other arguments than (text, 'latin1')");
	if (!(d = malloc(s->len + 1)))
		return oom(v);
	b->s = (char *)d;
	for (p = (const unsigned char *)s->s, end = p + s->len; p < end; p++) {
		if (*p < 0x80)
			*d++ = *p;
		else if ((*p & 0xfe) == 0xc2 && p + 1 < end && (p[1] & 0xc0) == 0x80) {
			*d++ = (unsigned char)((*p & 3) << 6 | (p[1] & 0x3f));
			p++;
		} else
			return bad(v, "_codecs.encode of text that is not latin-1");
	}
	b->len = (size_t)(d - (const unsigned char *)b->s);
	*out = b;
	return LX_OK;
}

static lx_status numpy_reduce(lx_pickle *p, void *ctx, const lx_pk *fn, const lx_pk *args, lx_pk **out)
{
	vm *v = ctx;

	switch (fn->kind) {
	case NP_RECONSTRUCT:
		return (*out = new_obj(p, NP_ARRAY)) ? LX_OK : oom(v);
	case NP_DTYPE_G: return make_dtype(p, v, args, out);
	case NP_SCALAR: return make_scalar(p, v, args, out);
	case NP_LATIN1: return make_latin1(p, v, args, out);
	case NP_FROMBUFFER: return make_frombuffer(p, v, args, out);
	}
	return lx_errf(v->e, LX_EINPUT, "%s: pickle: calls %s, which is not read (only numpy arrays, dtypes and "
	               "scalars are)", v->where, fn->s);
}

/* BUILD on an array: state (version, shape, dtype, fortran_order, data). */
static lx_status build_array(vm *v, lx_pk *a, const lx_pk *st)
{
	const lx_pk *shape, *d, *data;
	lx_status rc;
	size_t i;

	if (st->type != LX_PK_TUPLE || st->n != 5 || (shape = st->items[1])->type != LX_PK_TUPLE ||
	    !feat_pk_is(d = st->items[2], NP_DTYPE) || st->items[3]->type != LX_PK_BOOL)
		return bad(v, "an ndarray state that is not (version, shape, dtype, fortran, data)");
	data = st->items[4];
	if ((d->flags & NP_BIG))
		return bad(v, "a big-endian array");
	if (shape->n > LX_MAX_DIMS || (st->items[3]->i && shape->n > 1))
		return bad(v, "an array of too many dimensions, or in Fortran order");
	if ((rc = set_shape(v, a, d, shape)))
		return rc;
	a->flags = d->flags & NP_OBJECT;
	if ((d->flags & NP_OBJECT)) {
		if (data->type != LX_PK_LIST || (int64_t)data->n != a->t.numel)
			return bad(v, "an object array without its list of objects");
		for (i = 0; i < data->n; i++)
			if (lx_pk_add(a, data->items[i]))
				return oom(v);
		return LX_OK;
	}
	if ((data->type != LX_PK_BYTES && data->type != LX_PK_STR) ||
	    (uint64_t)data->len != (uint64_t)a->t.numel * lx_dtype_size(d->t.dtype))
		return bad(v, "array data of the wrong size");
	a->t.data = data->s;
	return LX_OK;
}

static lx_status numpy_build(lx_pickle *p, void *ctx, lx_pk *o, const lx_pk *st)
{
	vm *v = ctx;

	if (feat_pk_is(o, NP_DTYPE)) {
		if (st->type == LX_PK_TUPLE && st->n >= 2 && st->items[1]->type == LX_PK_STR && st->items[1]->len == 1)
			o->flags = (o->flags & ~NP_BIG) | (st->items[1]->s[0] == '>' ? NP_BIG : 0);
		return LX_OK;
	}
	if (feat_pk_is(o, NP_ARRAY))
		return build_array(v, o, st);
	return bad(v, "BUILD on something that is not a numpy array or dtype");
}

lx_status feat_unpickle(const void *data, size_t n, const char *where, lx_pickle **pk, lx_pk **out, lx_err *e)
{
	vm v = {where, e};
	lx_pickle_rules r = {numpy_global, "", "a NumPy pickle", numpy_reduce, numpy_build, NULL, LX_EINPUT, &v};
	size_t used;

	if (!(*pk = lx_pickle_new(&r)))
		return oom(&v);
	return lx_pickle_load(*pk, data, n, where, out, &used, e);
}

/* ---- the image in a dict ---- */

static const lx_pk *get2(const lx_pk *d, const char *a, const char *b)
{
	const lx_pk *o = lx_pk_get(d, a);

	return o ? o : b ? lx_pk_get(d, b) : NULL;
}

/* A view of a number or a numeric array as a tensor. */
static int as_tensor(const lx_pk *o, lx_tensor *t)
{
	memset(t, 0, sizeof *t);
	if (!o)
		return 0;
	if (feat_pk_is(o, NP_ARRAY) && !(o->flags & NP_OBJECT)) {
		*t = o->t;
		return 1;
	}
	t->numel = 1;
	if (o->type == LX_PK_INT || o->type == LX_PK_BOOL) {
		t->dtype = LX_I64;
		t->data = &o->i;
		return 1;
	}
	if (o->type == LX_PK_FLOAT) {
		t->dtype = LX_F64;
		t->data = &o->f;
		return 1;
	}
	return 0;
}

static lx_status dict_int(const lx_pk *d, const char *a, const char *b, int lo, const char *where, int *out,
                          lx_err *e)
{
	lx_tensor t;
	int32_t v;
	lx_status st;

	if (!as_tensor(get2(d, a, b), &t) || t.numel != 1)
		return lx_errf(e, LX_EINPUT, "%s: key %s %s, expected one integer", where, a,
		               get2(d, a, b) ? "is not a single number" : "is missing");
	if ((st = lx_tensor_to_i32(&t, &v, a, e)))
		return lx_errf(e, st, "%s: key %s is not an integer", where, a);
	if (v < lo || v > 1000000)
		return lx_errf(e, LX_EINPUT, "%s: key %s is %d, expected %d to 1000000", where, a, (int)v, lo);
	*out = v;
	return LX_OK;
}

/* cols > 0: exactly that many columns; -1: any; 0: a vector. */
static lx_status dict_rows(const lx_pk *d, const char *a, const char *b, int n, int cols, const char *where,
                           lx_tensor *t, lx_err *e)
{
	if (!as_tensor(get2(d, a, b), t))
		return lx_errf(e, LX_EINPUT, "%s: key %s %s", where, a,
		               get2(d, a, b) ? "is not a numeric array" : "is missing");
	if (t->ndim != (cols ? 2 : 1) || t->shape[0] != n || (cols > 0 && t->shape[1] != cols))
		return lx_errf(e, LX_EINPUT, "%s: key %s has %d dimensions, %lld rows; expected [%d%s] (num_bbox %d)", where,
		               a, t->ndim, t->ndim ? (long long)t->shape[0] : 1LL, n, cols > 0 ? ",4" : cols < 0 ? ",F" : "",
		               n);
	return LX_OK;
}

static lx_status check_feats(const lx_tensor *t, int n, const char *where, lx_err *e)
{
	if (t->ndim != 2 || t->shape[0] != n)
		return lx_errf(e, LX_EINPUT, "%s: features of %d dimensions, %lld rows; expected [%d,F] (num_boxes %d)",
		               where, t->ndim, t->ndim ? (long long)t->shape[0] : 1LL, n, n);
	return LX_OK;
}

lx_status feat_dict_image(const lx_pk *d, const lx_tensor *feats, lx_feat_image *im, const char *where,
                          lx_err *e)
{
	lx_tensor x, b;
	lx_status st;

	if ((st = dict_int(d, "num_bbox", "num_boxes", 0, where, &im->n, e)) ||
	    (st = dict_int(d, "image_h", "image_height", 1, where, &im->img_h, e)) ||
	    (st = dict_int(d, "image_w", "image_width", 1, where, &im->img_w, e)) ||
	    (st = dict_rows(d, "bbox", "boxes", im->n, 4, where, &b, e)))
		return st;
	if (feats) {
		x = *feats;
		st = check_feats(&x, im->n, where, e);
	} else
		st = dict_rows(d, "x", "features", im->n, -1, where, &x, e);
	if (st)
		return st;
	im->dim = (int)x.shape[1];
	if (!lx_feat_image_reserve(im, im->n, im->dim))
		return lx_errf(e, LX_EIO, "%s: out of memory", where);
	if ((st = lx_tensor_to_f32(&x, im->feats, "x", e)) || (st = lx_tensor_to_f32(&b, im->boxes, "bbox", e)))
		return st;
	return feat_dict_ids(d, im, where, e);
}

static lx_status pair(const lx_pk *d, const char *ids, const char *conf, int n, int32_t *id_out,
                      float *conf_out, int *has, const char *where, lx_err *e)
{
	lx_tensor ti, tc;
	lx_status st;

	*has = 0;
	if (!lx_pk_get(d, ids) || !lx_pk_get(d, conf))
		return LX_OK;
	if ((st = dict_rows(d, ids, NULL, n, 0, where, &ti, e)) || (st = dict_rows(d, conf, NULL, n, 0, where, &tc, e)) ||
	    (st = lx_tensor_to_i32(&ti, id_out, ids, e)) || (st = lx_tensor_to_f32(&tc, conf_out, conf, e)))
		return st;
	*has = 1;
	return LX_OK;
}

lx_status feat_dict_ids(const lx_pk *d, lx_feat_image *im, const char *where, lx_err *e)
{
	lx_status st = LX_OK;

	if (!im->has_obj)
		st = pair(d, "objects_id", "objects_conf", im->n, im->obj_ids, im->obj_conf, &im->has_obj, where, e);
	if (!st && !im->has_attr)
		st = pair(d, "attrs_id", "attrs_conf", im->n, im->attr_ids, im->attr_conf, &im->has_attr, where, e);
	return st;
}

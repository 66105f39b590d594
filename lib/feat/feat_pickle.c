/* feat_pickle.c - just enough of Python's pickle to read what np.save writes for a dict of arrays (a 0-d
 * object array): numbers, strings, bytes, tuples, lists, dicts, numpy arrays, dtypes and scalars. Nothing is
 * ever called: the only globals accepted are numpy's array, dtype and scalar constructors, rebuilt here as
 * data. Everything else is an error. All objects live in one msgpack_zone, freed with it. */
#include <string.h>

#include "feat/feat_impl.h"
#include "fmt/npy.h"

typedef struct {
	const unsigned char *p, *end;
	msgpack_zone *z;
	pk_obj **stack;
	size_t sp, stack_cap;
	pk_obj **memo;
	size_t memo_cap;
	const char *where;
	lx_err *e;
} vm;

static pk_obj MARK_OBJ; /* all zero: PK_MARK */

static pk_obj *new_obj(vm *v, pk_type t)
{
	pk_obj *o = msgpack_zone_malloc(v->z, sizeof *o);

	if (o) {
		memset(o, 0, sizeof *o);
		o->t = t;
	}
	return o;
}

static lx_status bad(vm *v, const char *what)
{
	return lx_errf(v->e, LX_EINPUT, "%s: pickle: %s", v->where, what);
}

static lx_status oom(vm *v) { return lx_errf(v->e, LX_EIO, "%s: out of memory", v->where); }

static int grow(vm *v, pk_obj ***arr, size_t *cap, size_t need)
{
	pk_obj **n;
	size_t c;

	if (need <= *cap)
		return 1;
	c = *cap ? *cap * 2 : 32;
	while (c < need)
		c *= 2;
	if (!(n = msgpack_zone_malloc(v->z, c * sizeof *n)))
		return 0;
	if (*cap)
		memcpy(n, *arr, *cap * sizeof *n);
	memset(n + *cap, 0, (c - *cap) * sizeof *n);
	*arr = n;
	*cap = c;
	return 1;
}

static lx_status push(vm *v, pk_obj *o)
{
	if (!o || !grow(v, &v->stack, &v->stack_cap, v->sp + 1))
		return oom(v);
	v->stack[v->sp++] = o;
	return LX_OK;
}

static pk_obj *pop(vm *v) { return v->sp ? v->stack[--v->sp] : NULL; }
static pk_obj *top(vm *v) { return v->sp ? v->stack[v->sp - 1] : NULL; }

static int need(vm *v, size_t n) { return (size_t)(v->end - v->p) >= n; }

static uint64_t le(const unsigned char *p, int n)
{
	uint64_t x = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

/* Appends o to the items of a tuple, list or dict. */
static int add_item(vm *v, pk_obj *c, pk_obj *o)
{
	if (c->n == c->cap && !grow(v, &c->items, &c->cap, c->n + 1))
		return 0;
	c->items[c->n++] = o;
	return 1;
}

/* Pops everything above the topmost mark into a new tuple (or onto c when c is not NULL). */
static lx_status collect(vm *v, pk_obj *c, pk_obj **out)
{
	size_t m = v->sp, i;

	while (m > 0 && v->stack[m - 1] != &MARK_OBJ)
		m--;
	if (m == 0)
		return bad(v, "no mark on the stack");
	if (!c && !(c = new_obj(v, PK_TUPLE)))
		return oom(v);
	for (i = m; i < v->sp; i++)
		if (!add_item(v, c, v->stack[i]))
			return oom(v);
	v->sp = m - 1;
	*out = c;
	return LX_OK;
}

static lx_status tuple_n(vm *v, int n)
{
	pk_obj *t = new_obj(v, PK_TUPLE);
	int i;

	if (!t)
		return oom(v);
	if (v->sp < (size_t)n)
		return bad(v, "stack underflow");
	for (i = 0; i < n; i++)
		if (!add_item(v, t, v->stack[v->sp - (size_t)n + (size_t)i]))
			return oom(v);
	v->sp -= (size_t)n;
	return push(v, t);
}

static lx_status text(vm *v, pk_type t, size_t n)
{
	pk_obj *o;

	if (!need(v, n))
		return bad(v, "truncated");
	if (!(o = new_obj(v, t)))
		return oom(v);
	o->s = (const char *)v->p;
	o->len = n;
	v->p += n;
	return push(v, o);
}

static lx_status integer(vm *v, int64_t x)
{
	pk_obj *o = new_obj(v, PK_INT);

	if (!o)
		return oom(v);
	o->i = x;
	return push(v, o);
}

static int str_is(const pk_obj *o, const char *s)
{
	return o && (o->t == PK_STR || o->t == PK_GLOBAL) && o->len == strlen(s) && memcmp(o->s, s, o->len) == 0;
}

static lx_status global(vm *v, const char *mod, size_t ml, const char *name, size_t nl)
{
	pk_obj *o = new_obj(v, PK_GLOBAL);
	char *s;

	if (!o || !(s = msgpack_zone_malloc(v->z, ml + nl + 2)))
		return oom(v);
	memcpy(s, mod, ml);
	s[ml] = '.';
	memcpy(s + ml + 1, name, nl);
	s[ml + nl + 1] = 0;
	o->s = s;
	o->len = ml + nl + 1;
	return push(v, o);
}

static int is_numpy(const pk_obj *g, const char *name)
{
	char a[96], b[96];

	snprintf(a, sizeof a, "numpy.core.multiarray.%s", name);
	snprintf(b, sizeof b, "numpy._core.multiarray.%s", name);
	return str_is(g, a) || str_is(g, b);
}

/* numpy.dtype('f4', False, True) */
static lx_status make_dtype(vm *v, const pk_obj *args, pk_obj **out)
{
	static const struct { const char *s; lx_dtype t; } names[] = {
		{"f4", LX_F32}, {"f8", LX_F64}, {"f2", LX_F16}, {"i8", LX_I64}, {"i4", LX_I32},
		{"i2", LX_I16}, {"i1", LX_I8},  {"u1", LX_U8},  {"b1", LX_BOOL}, {"O8", LX_U8},
	};
	pk_obj *d = new_obj(v, PK_DTYPE);
	size_t i;

	if (!d)
		return oom(v);
	if (args->t != PK_TUPLE || args->n < 1 || args->items[0]->t != PK_STR)
		return bad(v, "numpy.dtype without a type name");
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (str_is(args->items[0], names[i].s)) {
			d->dtype = names[i].t;
			d->is_object = names[i].s[0] == 'O';
			*out = d;
			return LX_OK;
		}
	return lx_errf(v->e, LX_EINPUT, "%s: pickle: numpy dtype %.*s is not supported", v->where,
	               (int)args->items[0]->len, args->items[0]->s);
}

/* numpy.core.multiarray.scalar(dtype, bytes): an INT or a FLOAT. */
static lx_status make_scalar(vm *v, const pk_obj *args, pk_obj **out)
{
	const pk_obj *d, *b;
	lx_tensor t;
	pk_obj *o;

	if (args->t != PK_TUPLE || args->n != 2 || (d = args->items[0])->t != PK_DTYPE ||
	    ((b = args->items[1])->t != PK_BYTES && b->t != PK_STR) || d->is_object || d->big_endian ||
	    b->len != lx_dtype_size(d->dtype))
		return bad(v, "a numpy scalar that is not a number");
	memset(&t, 0, sizeof t);
	t.dtype = d->dtype;
	t.numel = 1;
	t.data = b->s;
	if (!(o = new_obj(v, lx_dtype_is_float(d->dtype) ? PK_FLOAT : PK_INT)))
		return oom(v);
	if (o->t == PK_FLOAT) {
		float f;
		lx_tensor_to_f32(&t, &f, "scalar", NULL);
		o->f = f;
		if (d->dtype == LX_F64)
			memcpy(&o->f, b->s, 8);
	} else if (d->dtype == LX_I64)
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
static lx_status set_shape(vm *v, pk_obj *a, const pk_obj *d, const pk_obj *shape)
{
	size_t i;

	a->tensor.dtype = d->dtype;
	a->tensor.ndim = (int)shape->n;
	a->tensor.numel = 1;
	for (i = 0; i < shape->n; i++) {
		if (shape->items[i]->t != PK_INT || shape->items[i]->i < 0 || shape->items[i]->i > (1LL << 31))
			return bad(v, "a bad array shape");
		a->tensor.shape[i] = shape->items[i]->i;
		if (!lx_npy_mul_dim(&a->tensor.numel, shape->items[i]->i))
			return bad(v, "an array shape of more than 2^40 elements");
	}
	return LX_OK;
}

static lx_status make_frombuffer(vm *v, const pk_obj *args, pk_obj **out)
{
	const pk_obj *b, *d, *shape;
	pk_obj *a = new_obj(v, PK_ARRAY);
	lx_status rc;

	if (!a)
		return oom(v);
	if (args->t != PK_TUPLE || args->n != 4 || (b = args->items[0])->t != PK_BYTES ||
	    (d = args->items[1])->t != PK_DTYPE || (shape = args->items[2])->t != PK_TUPLE || d->is_object ||
	    d->big_endian || shape->n > LX_MAX_DIMS)
		return bad(v, "numpy _frombuffer with other arguments than (bytes, dtype, shape, order)");
	if (shape->n > 1 && !str_is(args->items[3], "C"))
		return bad(v, "an array in Fortran order");
	if ((rc = set_shape(v, a, d, shape)))
		return rc;
	if ((uint64_t)b->len != (uint64_t)a->tensor.numel * lx_dtype_size(d->dtype))
		return bad(v, "array data of the wrong size");
	a->tensor.data = b->s;
	*out = a;
	return LX_OK;
}

/* _codecs.encode(text, 'latin1'): how Python 3 writes bytes at protocol 2. Code points above 255 are
 * not latin-1. */
static lx_status make_latin1(vm *v, const pk_obj *args, pk_obj **out)
{
	const pk_obj *s;
	const unsigned char *p, *end;
	unsigned char *d;
	pk_obj *b = new_obj(v, PK_BYTES);

	if (!b)
		return oom(v);
	if (args->t != PK_TUPLE || args->n != 2 || (s = args->items[0])->t != PK_STR || !str_is(args->items[1], "latin1"))
		return bad(v, "_codecs.encode with other arguments than (text, 'latin1')");
	if (!(d = msgpack_zone_malloc(v->z, s->len + 1)))
		return oom(v);
	b->s = (const char *)d;
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

static lx_status reduce(vm *v)
{
	pk_obj *args = pop(v), *fn = pop(v), *o = NULL;
	lx_status st;

	if (!args || !fn)
		return bad(v, "stack underflow");
	if (fn->t != PK_GLOBAL)
		return bad(v, "REDUCE of something that is not a global");
	if (is_numpy(fn, "_reconstruct")) {
		if (!(o = new_obj(v, PK_ARRAY)))
			return oom(v);
	} else if (str_is(fn, "numpy.dtype")) {
		if ((st = make_dtype(v, args, &o)))
			return st;
	} else if (is_numpy(fn, "scalar")) {
		if ((st = make_scalar(v, args, &o)))
			return st;
	} else if (str_is(fn, "_codecs.encode")) {
		if ((st = make_latin1(v, args, &o)))
			return st;
	} else if (str_is(fn, "numpy.core.numeric._frombuffer") || str_is(fn, "numpy._core.numeric._frombuffer")) {
		if ((st = make_frombuffer(v, args, &o)))
			return st;
	} else
		return lx_errf(v->e, LX_EINPUT, "%s: pickle: calls %s, which is not read (only numpy arrays, dtypes and "
		               "scalars are)", v->where, fn->s);
	return push(v, o);
}

/* BUILD on an array: state (version, shape, dtype, fortran_order, data). */
static lx_status build_array(vm *v, pk_obj *a, const pk_obj *st)
{
	const pk_obj *shape, *d, *data;
	lx_status rc;

	if (st->t != PK_TUPLE || st->n != 5 || (shape = st->items[1])->t != PK_TUPLE ||
	    (d = st->items[2])->t != PK_DTYPE || st->items[3]->t != PK_BOOL)
		return bad(v, "an ndarray state that is not (version, shape, dtype, fortran, data)");
	data = st->items[4];
	if (d->big_endian)
		return bad(v, "a big-endian array");
	if (shape->n > LX_MAX_DIMS || (st->items[3]->i && shape->n > 1))
		return bad(v, "an array of too many dimensions, or in Fortran order");
	if ((rc = set_shape(v, a, d, shape)))
		return rc;
	a->is_object = d->is_object;
	if (d->is_object) {
		if (data->t != PK_LIST || (int64_t)data->n != a->tensor.numel)
			return bad(v, "an object array without its list of objects");
		a->items = data->items;
		a->n = data->n;
		return LX_OK;
	}
	if ((data->t != PK_BYTES && data->t != PK_STR) ||
	    (uint64_t)data->len != (uint64_t)a->tensor.numel * lx_dtype_size(d->dtype))
		return bad(v, "array data of the wrong size");
	a->tensor.data = data->s;
	return LX_OK;
}

static lx_status build(vm *v)
{
	pk_obj *st = pop(v), *o = top(v);

	if (!st || !o)
		return bad(v, "stack underflow");
	if (o->t == PK_DTYPE) {
		if (st->t == PK_TUPLE && st->n >= 2 && st->items[1]->t == PK_STR && st->items[1]->len == 1)
			o->big_endian = st->items[1]->s[0] == '>';
		return LX_OK;
	}
	if (o->t == PK_ARRAY)
		return build_array(v, o, st);
	return bad(v, "BUILD on something that is not a numpy array or dtype");
}

static lx_status memo_put(vm *v, size_t i)
{
	if (!v->sp)
		return bad(v, "stack underflow");
	if (i > (1u << 24) || !grow(v, &v->memo, &v->memo_cap, i + 1))
		return oom(v);
	v->memo[i] = top(v);
	return LX_OK;
}

static lx_status memo_get(vm *v, size_t i)
{
	if (i >= v->memo_cap || !v->memo[i])
		return bad(v, "memo entry not set");
	return push(v, v->memo[i]);
}

static size_t memo_next(const vm *v)
{
	size_t i = v->memo_cap;

	while (i > 0 && !v->memo[i - 1])
		i--;
	return i;
}

static lx_status setitems(vm *v, int one)
{
	pk_obj *items, *d;
	lx_status st;
	size_t i;

	if (one) {
		pk_obj *val = pop(v), *key = pop(v);
		d = top(v);
		if (!val || !key || !d || d->t != PK_DICT)
			return bad(v, "SETITEM without a dict");
		return add_item(v, d, key) && add_item(v, d, val) ? LX_OK : oom(v);
	}
	if ((st = collect(v, NULL, &items)))
		return st;
	d = top(v);
	if (!d || d->t != PK_DICT || items->n % 2)
		return bad(v, "SETITEMS without a dict");
	for (i = 0; i < items->n; i++)
		if (!add_item(v, d, items->items[i]))
			return oom(v);
	return LX_OK;
}

static lx_status appends(vm *v, int one)
{
	pk_obj *l, *items;
	lx_status st;
	size_t i;

	if (one) {
		pk_obj *x = pop(v);
		l = top(v);
		if (!x || !l || l->t != PK_LIST)
			return bad(v, "APPEND without a list");
		return add_item(v, l, x) ? LX_OK : oom(v);
	}
	if ((st = collect(v, NULL, &items)))
		return st;
	if (!(l = top(v)) || l->t != PK_LIST)
		return bad(v, "APPENDS without a list");
	for (i = 0; i < items->n; i++)
		if (!add_item(v, l, items->items[i]))
			return oom(v);
	return LX_OK;
}

/* Opcodes that carry a length-prefixed string or bytes. */
static lx_status op_text(vm *v, int op)
{
	int w = op == 'X' || op == 'B' || op == 'T' ? 4 : op == 0x8d || op == 0x8e || op == 0x96 ? 8 : 1;
	/* Python 2 str (U, T) is read as text: it holds dict keys as well as array bytes */
	pk_type t = op == 'C' || op == 'B' || op == 0x8e || op == 0x96 ? PK_BYTES : PK_STR;
	uint64_t n;

	if (!need(v, (size_t)w))
		return bad(v, "truncated");
	n = le(v->p, w);
	v->p += w;
	if (n > (uint64_t)(v->end - v->p))
		return bad(v, "truncated");
	return text(v, t, (size_t)n);
}

static lx_status op_global(vm *v, int op)
{
	if (op == 'c') {
		const unsigned char *a = v->p, *nl1 = memchr(a, '\n', (size_t)(v->end - a)), *nl2;
		if (!nl1 || !(nl2 = memchr(nl1 + 1, '\n', (size_t)(v->end - nl1 - 1))))
			return bad(v, "truncated GLOBAL");
		v->p = nl2 + 1;
		return global(v, (const char *)a, (size_t)(nl1 - a), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
	} else {
		pk_obj *name = pop(v), *mod = pop(v);
		if (!name || !mod || name->t != PK_STR || mod->t != PK_STR)
			return bad(v, "STACK_GLOBAL without two strings");
		return global(v, mod->s, mod->len, name->s, name->len);
	}
}

static lx_status op_number(vm *v, int op)
{
	int w = op == 'K' ? 1 : op == 'M' ? 2 : op == 'J' ? 4 : 0;
	uint64_t x;

	if (op == 0x8a) {
		if (!need(v, 1) || !need(v, 1u + v->p[0]) || v->p[0] > 8)
			return bad(v, "a long integer of more than 8 bytes");
		w = v->p[0];
		x = w ? le(v->p + 1, w) : 0;
		if (w && w < 8 && (v->p[w] & 0x80))
			x |= ~UINT64_C(0) << (8 * w);
		v->p += 1 + w;
		return integer(v, (int64_t)x);
	}
	if (op == 'G') {
		pk_obj *o = new_obj(v, PK_FLOAT);
		unsigned char b[8];
		int i;
		if (!o)
			return oom(v);
		if (!need(v, 8))
			return bad(v, "truncated");
		for (i = 0; i < 8; i++)
			b[i] = v->p[7 - i];
		memcpy(&o->f, b, 8);
		v->p += 8;
		return push(v, o);
	}
	if (!need(v, (size_t)w))
		return bad(v, "truncated");
	x = le(v->p, w);
	v->p += w;
	return integer(v, op == 'J' ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x);
}

static lx_status step(vm *v, int op, int *stop)
{
	pk_obj *o;
	lx_status st;

	switch (op) {
	case 0x80: if (!need(v, 1)) return bad(v, "truncated"); v->p++; return LX_OK; /* PROTO */
	case 0x95: if (!need(v, 8)) return bad(v, "truncated"); v->p += 8; return LX_OK; /* FRAME */
	case '.': *stop = 1; return LX_OK;
	case '(': return push(v, &MARK_OBJ);
	case 'N': return push(v, new_obj(v, PK_NONE));
	case 0x88:
	case 0x89:
		if (!(o = new_obj(v, PK_BOOL)))
			return oom(v);
		o->i = op == 0x88;
		return push(v, o);
	case 'K': case 'M': case 'J': case 0x8a: case 'G': return op_number(v, op);
	case 'X': case 0x8c: case 0x8d: case 'C': case 'B': case 0x8e: case 0x96: case 'U': case 'T':
		return op_text(v, op);
	case 'c': case 0x93: return op_global(v, op);
	case ')': return push(v, new_obj(v, PK_TUPLE));
	case 0x85: return tuple_n(v, 1);
	case 0x86: return tuple_n(v, 2);
	case 0x87: return tuple_n(v, 3);
	case 't': if ((st = collect(v, NULL, &o))) return st; return push(v, o);
	case ']': return push(v, new_obj(v, PK_LIST));
	case '}': return push(v, new_obj(v, PK_DICT));
	case 'a': return appends(v, 1);
	case 'e': return appends(v, 0);
	case 's': return setitems(v, 1);
	case 'u': return setitems(v, 0);
	case 'R': return reduce(v);
	case 'b': return build(v);
	case 'q': if (!need(v, 1)) return bad(v, "truncated"); v->p++; return memo_put(v, v->p[-1]);
	case 'r': if (!need(v, 4)) return bad(v, "truncated"); v->p += 4; return memo_put(v, (size_t)le(v->p - 4, 4));
	case 0x94: return memo_put(v, memo_next(v));
	case 'h': if (!need(v, 1)) return bad(v, "truncated"); v->p++; return memo_get(v, v->p[-1]);
	case 'j': if (!need(v, 4)) return bad(v, "truncated"); v->p += 4; return memo_get(v, (size_t)le(v->p - 4, 4));
	default: {
		char msg[64];
		snprintf(msg, sizeof msg, "opcode 0x%02x is not read", op);
		return bad(v, msg);
	}
	}
}

lx_status feat_unpickle(const void *data, size_t n, msgpack_zone *z, const char *where, pk_obj **out, lx_err *e)
{
	vm v;
	int stop = 0;
	lx_status st = LX_OK;

	memset(&v, 0, sizeof v);
	v.p = data;
	v.end = v.p + n;
	v.z = z;
	v.where = where;
	v.e = e;
	while (!st && !stop) {
		if (v.p >= v.end)
			return bad(&v, "ends without STOP");
		st = step(&v, *v.p++, &stop);
	}
	if (st)
		return st;
	if (v.sp != 1 || v.stack[0] == &MARK_OBJ)
		return bad(&v, "leaves no single object");
	*out = v.stack[0];
	return LX_OK;
}

const pk_obj *feat_pk_get(const pk_obj *dict, const char *key)
{
	size_t i;

	if (!dict || dict->t != PK_DICT)
		return NULL;
	for (i = 0; i + 1 < dict->n; i += 2)
		if (str_is(dict->items[i], key))
			return dict->items[i + 1];
	return NULL;
}

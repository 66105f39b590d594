/* pickle.c - the data subset of Python's pickle, with a caller-given allow-list of globals (fmt/pickle.h). */
#include <stdlib.h>
#include <string.h>

#include "fmt/pickle.h"

#define MAX_NAME 256 /* module and attribute names of a GLOBAL */

/* The budget of one load (fmt/pickle.h): values made, and stack entries and marks held at once, each at
 * most 65536 + one for every two bytes of the pickle and never more than LX_PICKLE_MAX_VALUES; memo
 * indexes below the same. A value takes about 300 bytes, so a pickle of one-byte opcodes (EMPTY_LIST,
 * EMPTY_TUPLE, MARK) stops under 100 MB whatever its size. */
#define BUDGET_BASE 65536

typedef struct vm vm;

struct lx_pickle {
	lx_pk *all;
	lx_pickle_rules rules;
	vm *m;              /* the load under way, for lx_pickle_fail */
	size_t made;        /* values made by the load under way */
};

struct vm {
	lx_pickle *p;
	const unsigned char *b;
	size_t len, pos, op_pos;
	const char *name;
	lx_err *e;
	lx_pk **stack;
	size_t sp, scap;
	size_t *marks;
	size_t nm, mcap;
	lx_pk **memo;
	size_t memo_n, memo_cap;
	size_t budget;      /* see BUDGET_BASE */
};

lx_pickle *lx_pickle_new(const lx_pickle_rules *rules)
{
	lx_pickle *p = calloc(1, sizeof *p);

	if (p)
		p->rules = *rules;
	return p;
}

void lx_pickle_free(lx_pickle *p)
{
	lx_pk *v, *next;

	if (!p)
		return;
	for (v = p->all; v; v = next) {
		next = v->next;
		free(v->s);
		free(v->items);
		free(v);
	}
	free(p);
}

lx_pk *lx_pk_get(const lx_pk *d, const char *key)
{
	size_t k, n = strlen(key);
	lx_pk *found = NULL;

	if (!d || d->type != LX_PK_DICT)
		return NULL;
	for (k = 0; k < d->n; k++) {
		const lx_pk *x = d->items[2 * k];
		if (x->type == LX_PK_STR && x->len == n && !memcmp(x->s, key, n))
			found = d->items[2 * k + 1];
	}
	return found;
}

/* ---- errors and growth ---- */

static lx_status fail(vm *m, const char *what)
{
	return lx_errf(m->e, m->p->rules.bad, "%s: pickle offset %zu: %s", m->name, m->op_pos, what);
}

lx_status lx_pickle_fail(lx_pickle *p, const char *what) { return fail(p->m, what); }

static lx_status oom(vm *m) { return lx_errf(m->e, LX_EIO, "%s: out of memory reading the pickle", m->name); }

lx_status lx_pickle_oom(lx_pickle *p) { return oom(p->m); }

/* Makes room for one more element of size sz in *arr (capacity *cap, count n). */
static int grow(void *arr, size_t *cap, size_t n, size_t sz)
{
	void **a = arr, *q;
	size_t nc;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 16;
	if (nc > ((size_t)-1) / sz)
		return -1;
	q = realloc(*a, nc * sz);
	if (!q)
		return -1;
	*a = q;
	*cap = nc;
	return 0;
}

lx_pk *lx_pk_new(lx_pickle *p, lx_pk_type t)
{
	lx_pk *v = calloc(1, sizeof *v);

	if (!v)
		return NULL;
	v->type = t;
	p->made++;
	v->next = p->all;
	p->all = v;
	return v;
}

static lx_pk *mk(vm *m, lx_pk_type t) { return lx_pk_new(m->p, t); }

int lx_pk_add(lx_pk *c, lx_pk *x)
{
	if (grow(&c->items, &c->cap, c->n, sizeof *c->items))
		return -1;
	c->items[c->n++] = x;
	return 0;
}

/* ---- the stack ---- */

static lx_status push(vm *m, lx_pk *v)
{
	if (!v || grow(&m->stack, &m->scap, m->sp, sizeof *m->stack))
		return oom(m);
	m->stack[m->sp++] = v;
	return LX_OK;
}

static lx_pk *pop(vm *m)
{
	if (m->sp == 0 || (m->nm && m->marks[m->nm - 1] == m->sp))
		return NULL;
	return m->stack[--m->sp];
}

/* Position of the topmost mark, which is removed; (size_t)-1 if there is none. */
static size_t pop_mark(vm *m)
{
	return m->nm ? m->marks[--m->nm] : (size_t)-1;
}

/* ---- reading operands ---- */

static const unsigned char *take(vm *m, size_t n)
{
	const unsigned char *q;

	if (m->len - m->pos < n)
		return NULL;
	q = m->b + m->pos;
	m->pos += n;
	return q;
}

static int64_t le(const unsigned char *q, int n)
{
	uint64_t v = 0;
	int k;

	for (k = n - 1; k >= 0; k--)
		v = v << 8 | q[k];
	return (int64_t)v;
}

static lx_status push_int(vm *m, int64_t x)
{
	lx_pk *v = mk(m, LX_PK_INT);

	if (v)
		v->i = x;
	return push(m, v);
}

/* A string or bytes operand of n bytes. */
static lx_status push_str(vm *m, lx_pk_type t, uint64_t n)
{
	const unsigned char *q;
	lx_pk *v;

	if (n > m->len - m->pos || !(q = take(m, (size_t)n)))
		return fail(m, "string runs past the end of the pickle");
	if (!(v = mk(m, t)) || !(v->s = malloc((size_t)n + 1)))
		return oom(m);
	memcpy(v->s, q, (size_t)n);
	v->s[n] = 0;
	v->len = (size_t)n;
	return push(m, v);
}

/* A signed little-endian integer of n bytes (LONG1/LONG4 operands); more than 8 bytes are refused. */
static lx_status push_long(vm *m, uint64_t n)
{
	const unsigned char *q;
	int64_t x;

	if (n > 8)
		return fail(m, "integer wider than 64 bits");
	if (!(q = take(m, (size_t)n)))
		return fail(m, "integer runs past the end of the pickle");
	x = n ? le(q, (int)n) : 0;
	if (n && n < 8 && (q[n - 1] & 0x80))
		x -= (int64_t)1 << (8 * n);
	return push_int(m, x);
}

static lx_status push_float(vm *m)
{
	const unsigned char *q = take(m, 8);
	uint64_t bits = 0;
	lx_pk *v;
	int k;

	if (!q)
		return fail(m, "float runs past the end of the pickle");
	for (k = 0; k < 8; k++)
		bits = bits << 8 | q[k]; /* big-endian */
	if (!(v = mk(m, LX_PK_FLOAT)))
		return oom(m);
	memcpy(&v->f, &bits, 8);
	return push(m, v);
}

/* ---- memo ---- */

static lx_status memo_put(vm *m, uint64_t idx)
{
	size_t need;

	if (m->sp == 0)
		return fail(m, "memo store with an empty stack");
	if (idx >= m->budget) {
		char msg[120];
		snprintf(msg, sizeof msg, "memo index %llu past the limit of %zu for a pickle of this size",
		         (unsigned long long)idx, m->budget);
		return fail(m, msg);
	}
	need = (size_t)idx + 1;
	if (need > m->memo_cap) {
		size_t nc = m->memo_cap ? m->memo_cap : 64;
		lx_pk **q;
		while (nc < need)
			nc *= 2;
		if (!(q = realloc(m->memo, nc * sizeof *q)))
			return oom(m);
		memset(q + m->memo_cap, 0, (nc - m->memo_cap) * sizeof *q);
		m->memo = q;
		m->memo_cap = nc;
	}
	m->memo[idx] = m->stack[m->sp - 1];
	if (need > m->memo_n)
		m->memo_n = need;
	return LX_OK;
}

static lx_status memo_get(vm *m, uint64_t idx)
{
	if (idx >= m->memo_n || !m->memo[idx])
		return fail(m, "memo fetch of an index never stored");
	return push(m, m->memo[idx]);
}

/* ---- globals ---- */

static lx_status push_global(vm *m, const char *mod, size_t ml, const char *nm, size_t nl)
{
	char mod_s[MAX_NAME + 1], name_s[MAX_NAME + 1], msg[2 * MAX_NAME + 300];
	lx_pk *v;
	int id = -1;

	if (ml > MAX_NAME || nl > MAX_NAME)
		return fail(m, "global name too long");
	memcpy(mod_s, mod, ml);
	mod_s[ml] = 0;
	memcpy(name_s, nm, nl);
	name_s[nl] = 0;
	if (strlen(mod_s) == ml && strlen(name_s) == nl)
		id = m->p->rules.global(m->p->rules.ctx, mod_s, name_s);
	if (id < 0) {
		size_t i;

		snprintf(msg, sizeof msg, "global %s.%s is not allowed %s", mod_s, name_s, m->p->rules.why);
		for (i = 0; msg[i]; i++) /* keep the message printable */
			if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
				msg[i] = '?';
		return fail(m, msg);
	}
	if (!(v = mk(m, LX_PK_GLOBAL)) || !(v->s = malloc(ml + nl + 2)))
		return oom(m);
	snprintf(v->s, ml + nl + 2, "%s.%s", mod_s, name_s);
	v->len = ml + nl + 1;
	v->kind = id;
	return push(m, v);
}

/* GLOBAL: "module\nname\n" */
static lx_status op_global(vm *m)
{
	const unsigned char *a = m->b + m->pos, *nl1, *nl2;
	size_t left = m->len - m->pos;

	nl1 = memchr(a, '\n', left < MAX_NAME + 1 ? left : MAX_NAME + 1);
	if (!nl1)
		return fail(m, "GLOBAL operand without its newline");
	left -= (size_t)(nl1 + 1 - a);
	nl2 = memchr(nl1 + 1, '\n', left < MAX_NAME + 1 ? left : MAX_NAME + 1);
	if (!nl2)
		return fail(m, "GLOBAL operand without its second newline");
	m->pos = (size_t)(nl2 + 1 - m->b);
	return push_global(m, (const char *)a, (size_t)(nl1 - a), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
}

static lx_status op_stack_global(vm *m)
{
	lx_pk *name = pop(m), *mod = pop(m);

	if (!name || !mod || name->type != LX_PK_STR || mod->type != LX_PK_STR)
		return fail(m, "STACK_GLOBAL needs two strings on the stack");
	return push_global(m, mod->s, mod->len, name->s, name->len);
}

/* ---- containers ---- */

/* Moves the items above the topmost mark into a new container of type t. */
static lx_status op_collect(vm *m, lx_pk_type t)
{
	size_t k = pop_mark(m), i;
	lx_pk *v;

	if (k == (size_t)-1)
		return fail(m, "no mark on the stack");
	if (t == LX_PK_DICT && (m->sp - k) % 2)
		return fail(m, "DICT with an odd number of items");
	if (!(v = mk(m, t)))
		return oom(m);
	for (i = k; i < m->sp; i++)
		if (lx_pk_add(v, m->stack[i]))
			return oom(m);
	if (t == LX_PK_DICT)
		v->n /= 2; /* n counts pairs */
	m->sp = k;
	return push(m, v);
}

static lx_status op_tuple_n(vm *m, int n)
{
	lx_pk *v = mk(m, LX_PK_TUPLE);
	int i;

	if (!v)
		return oom(m);
	if (m->sp < (size_t)n || (m->nm && m->marks[m->nm - 1] > m->sp - (size_t)n))
		return fail(m, "TUPLE with too few items on the stack");
	for (i = n; i > 0; i--)
		if (lx_pk_add(v, m->stack[m->sp - (size_t)i]))
			return oom(m);
	m->sp -= (size_t)n;
	return push(m, v);
}

/* APPEND, APPENDS, SETITEM, SETITEMS: items from position k of the stack go into the value below them. */
static lx_status add_to(vm *m, size_t k, int dict)
{
	lx_pk *c;
	size_t i;

	if (k == 0 || k > m->sp || (m->nm && m->marks[m->nm - 1] >= k))
		return fail(m, "nothing to add items to");
	c = m->stack[k - 1];
	if (dict ? c->type != LX_PK_DICT : c->type != LX_PK_LIST)
		return fail(m, dict ? "SETITEM(S) on a value that is not a dict" : "APPEND(S) on a value that is not a list");
	if (dict && (m->sp - k) % 2)
		return fail(m, "SETITEMS with an odd number of items");
	for (i = k; i < m->sp; i++) {
		if (dict) {
			if (grow(&c->items, &c->cap, 2 * c->n + 1, sizeof *c->items))
				return oom(m);
			c->items[2 * c->n] = m->stack[i];
			c->items[2 * c->n + 1] = m->stack[++i];
			c->n++;
		} else if (lx_pk_add(c, m->stack[i])) {
			return oom(m);
		}
	}
	m->sp = k;
	return LX_OK;
}

static lx_status op_add(vm *m, int dict, int marked)
{
	size_t k;

	if (marked) {
		if ((k = pop_mark(m)) == (size_t)-1)
			return fail(m, "no mark on the stack");
		return add_to(m, k, dict);
	}
	k = dict ? 2 : 1;
	if (m->sp < k + 1 || (m->nm && m->marks[m->nm - 1] > m->sp - k - 1))
		return fail(m, "too few items on the stack");
	return add_to(m, m->sp - k, dict);
}

/* ---- what the caller's rules decide ---- */

static lx_status op_persid(vm *m)
{
	lx_pk *pid = pop(m), *v = NULL;
	lx_status st;

	if (!m->p->rules.persid)
		return fail(m, "persistent ids (BINPERSID) are not read here");
	if (!pid)
		return fail(m, "BINPERSID on an empty stack");
	if ((st = m->p->rules.persid(m->p, m->p->rules.ctx, pid, &v)) != LX_OK)
		return st;
	return push(m, v);
}

static lx_status op_reduce(vm *m)
{
	lx_pk *a = pop(m), *f = pop(m), *v = NULL;
	lx_status st;

	if (!a || !f || a->type != LX_PK_TUPLE || f->type != LX_PK_GLOBAL)
		return fail(m, "REDUCE needs an allowed global and a tuple of arguments");
	if ((st = m->p->rules.reduce(m->p, m->p->rules.ctx, f, a, &v)) != LX_OK)
		return st;
	return push(m, v);
}

static lx_status op_build(vm *m)
{
	lx_pk *state = pop(m);

	if (!state || m->sp == 0 || (m->nm && m->marks[m->nm - 1] == m->sp))
		return fail(m, "BUILD with too few items on the stack");
	return m->p->rules.build(m->p, m->p->rules.ctx, m->stack[m->sp - 1], state);
}

/* ---- the loop ---- */

static lx_status step(vm *m, int op)
{
	const unsigned char *q;

	switch (op) {
	case 0x80: /* PROTO */
		if (!(q = take(m, 1)) || *q < 2 || *q > 5)
			return fail(m, "unsupported pickle protocol (2 to 5 are read)");
		return LX_OK;
	case 0x95: /* FRAME: a length, then opcodes as usual */
		return take(m, 8) ? LX_OK : fail(m, "FRAME runs past the end of the pickle");
	case '(':
		if (grow(&m->marks, &m->mcap, m->nm, sizeof *m->marks))
			return oom(m);
		m->marks[m->nm++] = m->sp;
		return LX_OK;
	case '0': return pop(m) ? LX_OK : fail(m, "POP on an empty stack");
	case '1': {
		size_t k = pop_mark(m);
		if (k == (size_t)-1)
			return fail(m, "POP_MARK without a mark");
		m->sp = k;
		return LX_OK;
	}
	case '2':
		if (m->sp == 0 || (m->nm && m->marks[m->nm - 1] == m->sp))
			return fail(m, "DUP on an empty stack");
		return push(m, m->stack[m->sp - 1]);
	case 'N': return push(m, mk(m, LX_PK_NONE));
	case 0x88: case 0x89: {
		lx_pk *v = mk(m, LX_PK_BOOL);
		if (v)
			v->i = op == 0x88;
		return push(m, v);
	}
	case 'K': return (q = take(m, 1)) ? push_int(m, q[0]) : fail(m, "truncated BININT1");
	case 'M': return (q = take(m, 2)) ? push_int(m, le(q, 2)) : fail(m, "truncated BININT2");
	case 'J': return (q = take(m, 4)) ? push_int(m, (int32_t)(uint32_t)le(q, 4)) : fail(m, "truncated BININT");
	case 0x8a: return (q = take(m, 1)) ? push_long(m, q[0]) : fail(m, "truncated LONG1");
	case 0x8b: return (q = take(m, 4)) ? push_long(m, (uint32_t)le(q, 4)) : fail(m, "truncated LONG4");
	case 'G': return push_float(m);
	case 'X': return (q = take(m, 4)) ? push_str(m, LX_PK_STR, (uint32_t)le(q, 4)) : fail(m, "truncated BINUNICODE");
	case 0x8c: return (q = take(m, 1)) ? push_str(m, LX_PK_STR, q[0]) : fail(m, "truncated SHORT_BINUNICODE");
	case 0x8d: return (q = take(m, 8)) ? push_str(m, LX_PK_STR, (uint64_t)le(q, 8)) : fail(m, "truncated BINUNICODE8");
	case 'U': return (q = take(m, 1)) ? push_str(m, LX_PK_STR, q[0]) : fail(m, "truncated SHORT_BINSTRING");
	case 'T': return (q = take(m, 4)) ? push_str(m, LX_PK_STR, (uint32_t)le(q, 4)) : fail(m, "truncated BINSTRING");
	case 'C': return (q = take(m, 1)) ? push_str(m, LX_PK_BYTES, q[0]) : fail(m, "truncated SHORT_BINBYTES");
	case 'B': return (q = take(m, 4)) ? push_str(m, LX_PK_BYTES, (uint32_t)le(q, 4)) : fail(m, "truncated BINBYTES");
	case 0x8e: return (q = take(m, 8)) ? push_str(m, LX_PK_BYTES, (uint64_t)le(q, 8)) : fail(m, "truncated BINBYTES8");
	case 0x96: return (q = take(m, 8)) ? push_str(m, LX_PK_BYTES, (uint64_t)le(q, 8)) : fail(m, "truncated BYTEARRAY8");
	case ')': return push(m, mk(m, LX_PK_TUPLE));
	case ']': return push(m, mk(m, LX_PK_LIST));
	case '}': return push(m, mk(m, LX_PK_DICT));
	case 't': return op_collect(m, LX_PK_TUPLE);
	case 'l': return op_collect(m, LX_PK_LIST);
	case 'd': return op_collect(m, LX_PK_DICT);
	case 0x85: return op_tuple_n(m, 1);
	case 0x86: return op_tuple_n(m, 2);
	case 0x87: return op_tuple_n(m, 3);
	case 'a': return op_add(m, 0, 0);
	case 'e': return op_add(m, 0, 1);
	case 's': return op_add(m, 1, 0);
	case 'u': return op_add(m, 1, 1);
	case 'q': return (q = take(m, 1)) ? memo_put(m, q[0]) : fail(m, "truncated BINPUT");
	case 'r': return (q = take(m, 4)) ? memo_put(m, (uint32_t)le(q, 4)) : fail(m, "truncated LONG_BINPUT");
	case 0x94: return memo_put(m, m->memo_n);
	case 'h': return (q = take(m, 1)) ? memo_get(m, q[0]) : fail(m, "truncated BINGET");
	case 'j': return (q = take(m, 4)) ? memo_get(m, (uint32_t)le(q, 4)) : fail(m, "truncated LONG_BINGET");
	case 'c': return op_global(m);
	case 0x93: return op_stack_global(m);
	case 'R': return op_reduce(m);
	case 'b': return op_build(m);
	case 'Q': return op_persid(m);
	default: {
		char msg[160];
		snprintf(msg, sizeof msg, "opcode 0x%02x is not allowed in %s (only data opcodes are read)", (unsigned)op,
		         m->p->rules.what);
		return fail(m, msg);
	}
	}
}

lx_status lx_pickle_load(lx_pickle *p, const unsigned char *buf, size_t len, const char *name, lx_pk **root,
                         size_t *used, lx_err *e)
{
	vm m;
	lx_status st = LX_OK;
	int op;

	memset(&m, 0, sizeof m);
	m.p = p;
	m.b = buf;
	m.len = len;
	m.name = name;
	m.e = e;
	m.budget = len / 2 < LX_PICKLE_MAX_VALUES - BUDGET_BASE ? BUDGET_BASE + len / 2 : LX_PICKLE_MAX_VALUES;
	p->m = &m;
	p->made = 0;
	*root = NULL;
	for (;;) {
		m.op_pos = m.pos;
		if (p->made > m.budget || m.sp + m.nm > m.budget) {
			char msg[160];
			snprintf(msg, sizeof msg, "more than %zu %s (the limit for a pickle of %zu bytes)", m.budget,
			         p->made > m.budget ? "values" : "items on the stack", len);
			st = fail(&m, msg);
			break;
		}
		if (m.pos >= m.len) {
			st = fail(&m, "the pickle ends without a STOP opcode: truncated?");
			break;
		}
		op = m.b[m.pos++];
		if (op == '.') {
			if (m.sp != 1 || m.nm)
				st = fail(&m, "STOP with other than one value on the stack");
			else
				*root = m.stack[0];
			*used = m.pos;
			break;
		}
		if ((st = step(&m, op)) != LX_OK)
			break;
	}
	free(m.stack);
	free(m.marks);
	free(m.memo);
	p->m = NULL;
	return st;
}

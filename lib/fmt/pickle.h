/*
 * fmt/pickle.h - the data subset of Python's pickle, with a caller-given allow-list (internal to liblx).
 *
 * Interprets the data opcodes of protocols 2 to 5: numbers, strings, bytes, tuples, lists, dicts, memo and
 * marks. Nothing is ever called. A global (GLOBAL, STACK_GLOBAL) is refused when it is read unless the
 * caller's rules give it an id; REDUCE, BUILD and BINPERSID are handed to the caller's callbacks, which make
 * their own values from the arguments (a torch tensor, a numpy array) or refuse. Opcodes that build objects
 * by other means (NEWOBJ, INST, OBJ, EXT*) are refused. The interpreter is a loop over a heap stack: no
 * recursion, and every length is checked against the bytes left.
 *
 * A load has a budget, so that no small pickle takes a large machine: it makes at most 65536 values plus one
 * for every two bytes of the pickle, never more than LX_PICKLE_MAX_VALUES; it holds at most as many items on
 * its stack (marks included); and a memo index is below the same number. Past it the load fails with the
 * rules' status, naming the limit.
 *
 * Ownership follows lx_core.h: every value, and every string and item array hanging from one, belongs to
 * the lx_pickle that made it (lx_pickle_new/lx_pickle_free).
 */
#ifndef LX_FMT_PICKLE_H
#define LX_FMT_PICKLE_H

#include "lx_core.h"

#define LX_PICKLE_MAX_VALUES 262144

typedef enum {
	LX_PK_NONE, LX_PK_BOOL, LX_PK_INT, LX_PK_FLOAT, LX_PK_STR, LX_PK_BYTES, LX_PK_TUPLE, LX_PK_LIST,
	LX_PK_DICT, LX_PK_GLOBAL, LX_PK_OBJ
} lx_pk_type;

typedef struct lx_pk lx_pk;
struct lx_pk {
	lx_pk_type type;
	int kind;           /* GLOBAL: the id the rules gave it; OBJ: what the caller's callback made */
	int64_t i;          /* BOOL, INT: the value */
	double f;           /* FLOAT */
	char *s;            /* STR, BYTES: NUL-terminated copy (len bytes); GLOBAL: "module.name" */
	size_t len;
	lx_pk **items;      /* TUPLE, LIST: n items; DICT: n pairs, key then value */
	size_t n, cap;
	/* OBJ: free for the caller (s, items and the above too) */
	int flags;
	int ndim;
	int64_t dims[2 * LX_MAX_DIMS];
	int64_t off, count;
	lx_tensor t;
	lx_pk *next;        /* every value of one lx_pickle, for freeing */
};

typedef struct lx_pickle lx_pickle;

/* What a pickle may hold beyond plain data. Callbacks make values with lx_pk_new and report an error with
 * lx_pickle_fail (or lx_errf on the lx_err given to lx_pickle_load, and return its status). */
typedef struct {
	/* The id (>= 0) of global mod.name, or -1 to refuse it. */
	int (*global)(void *ctx, const char *mod, const char *name);
	/* What refusing a global says after "global mod.name is not allowed ", and what the pickle is ("a state
	 * dict") when an opcode is refused. */
	const char *why, *what;
	/* REDUCE: fn (a GLOBAL) called on args (a TUPLE) makes *out. */
	lx_status (*reduce)(lx_pickle *p, void *ctx, const lx_pk *fn, const lx_pk *args, lx_pk **out);
	/* BUILD: obj takes state (obj stays on the stack). */
	lx_status (*build)(lx_pickle *p, void *ctx, lx_pk *obj, const lx_pk *state);
	/* BINPERSID: the object of persistent id pid in *out; NULL refuses the opcode. */
	lx_status (*persid)(lx_pickle *p, void *ctx, const lx_pk *pid, lx_pk **out);
	lx_status bad;      /* the status of a malformed or refused pickle: LX_EMODEL, LX_EINPUT */
	void *ctx;
} lx_pickle_rules;

lx_pickle *lx_pickle_new(const lx_pickle_rules *rules);
void lx_pickle_free(lx_pickle *p);
/* Runs the pickle at buf[0..len) up to its STOP opcode: *root is the value it leaves, *used the number of
 * bytes it took. name is the file (and entry) in messages: "name: pickle offset N: what". */
lx_status lx_pickle_load(lx_pickle *p, const unsigned char *buf, size_t len, const char *name, lx_pk **root,
                         size_t *used, lx_err *e);
/* A new value of type t belonging to p (NULL when out of memory); lx_pk_add appends x to its items
 * (-1 when out of memory). */
lx_pk *lx_pk_new(lx_pickle *p, lx_pk_type t);
int lx_pk_add(lx_pk *c, lx_pk *x);
/* For callbacks: the error "name: pickle offset N: what" with the rules' status, at the opcode being run. */
lx_status lx_pickle_fail(lx_pickle *p, const char *what);
/* For callbacks: LX_EIO, out of memory reading the pickle. */
lx_status lx_pickle_oom(lx_pickle *p);
/* The value under string key in a DICT (the last one if repeated), or NULL (also when d is no DICT). */
lx_pk *lx_pk_get(const lx_pk *d, const char *key);

#endif

/*
 * lx_pickle.h - a pickle interpreter for PyTorch state dicts (internal to liblx).
 *
 * Interprets only data opcodes (protocols 2 to 4: numbers, strings, tuples, lists, dicts, memo, marks) and
 * an allow-list of globals, which are never called: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * _rebuild_tensor and _rebuild_parameter, and the torch.*Storage types, which only tag persistent ids. Any
 * other global (os.system, builtins.eval, ...) and any opcode that builds objects (NEWOBJ, INST, OBJ, EXT*)
 * is refused when it is read, before anything else happens. The interpreter is a loop over a heap stack: no
 * recursion, and every length is checked against the bytes left.
 *
 * Ownership follows lx_core.h: every value belongs to the lx_pickle that made it (lx_pickle_new/lx_pickle_free).
 */
#ifndef LX_PICKLE_H
#define LX_PICKLE_H

#include "lx_core.h"

typedef enum {
	LX_PK_NONE, LX_PK_BOOL, LX_PK_INT, LX_PK_FLOAT, LX_PK_STR, LX_PK_BYTES, LX_PK_TUPLE, LX_PK_LIST,
	LX_PK_DICT, LX_PK_GLOBAL, LX_PK_STORAGE, LX_PK_TENSOR
} lx_pk_type;

/* The allowed globals (lx_pk.i of an LX_PK_GLOBAL). */
enum { LX_G_ODICT, LX_G_REBUILD_V2, LX_G_REBUILD, LX_G_REBUILD_PARAM, LX_G_STORAGE };

typedef struct lx_pk lx_pk;
struct lx_pk {
	lx_pk_type type;
	int64_t i;          /* BOOL, INT: the value; GLOBAL: LX_G_*; STORAGE: numel; TENSOR: storage offset */
	double f;           /* FLOAT */
	char *s;            /* STR, BYTES: NUL-terminated copy (len bytes); GLOBAL: "module.name"; STORAGE: key */
	size_t len;
	lx_pk **items;      /* TUPLE, LIST: n items; DICT: n pairs, key then value; STORAGE: [0] its type
	                       (a GLOBAL); TENSOR: [0] its STORAGE */
	size_t n, cap;
	int ndim;           /* TENSOR: dims[0..ndim) the shape, dims[ndim..2 ndim) the strides */
	int64_t dims[2 * LX_MAX_DIMS];
	int64_t view_off, view_len; /* STORAGE: a legacy view into the root storage (elements), or -1 */
	lx_pk *next;        /* every value of one lx_pickle, for freeing */
};

typedef struct lx_pickle lx_pickle;

lx_pickle *lx_pickle_new(void);
void lx_pickle_free(lx_pickle *p);
/* Runs the pickle at buf[0..len) up to its STOP opcode: *root is the value it leaves, *used the number of
 * bytes it took. name is the file (and entry) in messages. LX_EMODEL on a malformed or refused pickle. */
lx_status lx_pickle_load(lx_pickle *p, const unsigned char *buf, size_t len, const char *name, lx_pk **root,
                         size_t *used, lx_err *e);
/* Every STORAGE value made so far, in the order made. */
lx_pk *const *lx_pickle_storages(const lx_pickle *p, size_t *n);
/* The value under key in a DICT (the last one if repeated), or NULL. */
lx_pk *lx_pk_get(const lx_pk *dict, const char *key);

#endif

/* stream.c - records as msgpack maps: reading, fields, tensors, writing (formats/stream.md). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx_core.h"

#define READ_CHUNK ((size_t)256 * 1024)

typedef struct {
	msgpack_object key;      /* read field: the key as it came (str, bin or anything else) */
	const msgpack_object *val;
	char *akey;              /* added field: its key, and its value packed in sb */
	msgpack_sbuffer sb;
	msgpack_unpacked view;   /* added field unpacked on demand by lx_record_get */
	int has_view;
	int removed;
} field;

struct lx_record {
	char *raw;               /* the record's bytes, which read values point into */
	size_t raw_len, values;  /* its size and its values (for lx_record_memory) */
	msgpack_unpacked up;     /* owns the read values */
	long index;
	field *f;
	size_t n, cap;
	size_t nread;            /* the first nread fields are the ones read */
	msgpack_packer pk;
	msgpack_zone *scratch;   /* arrays decoded from plain msgpack arrays */
};

/*
 * Where the next record ends, found before msgpack-c sees it: msgpack-c allocates for a container as soon
 * as it reads the declared count, so a few hostile bytes could ask for gigabytes. Scanning first, and
 * handing msgpack-c only a complete record, bounds every count by the bytes really there.
 */
#define MAX_DEPTH LX_RECORD_MAX_DEPTH
#define MAX_RECORD LX_RECORD_MAX_BYTES
/* msgpack-c keeps a 24-byte object for every value of a record, however small its bytes: a record of 50 M
 * nils took 1.27 GB. A record holds at most this many values (a tensor is one value, its shape a few). */
#define MAX_OBJECTS LX_RECORD_MAX_VALUES

typedef struct {
	size_t pos;                    /* bytes of the record scanned so far */
	uint64_t values;               /* values scanned so far */
	int depth;                     /* entries in left[] */
	uint64_t left[MAX_DEPTH + 1];  /* items still to come in each open container (left[0]: the record) */
} scanner;

struct lx_reader {
	FILE *f;
	char *name;
	unsigned char *buf;
	size_t start, len, cap;        /* the unread bytes are buf[start, len) */
	scanner sc;
	long count;
	int eof;
	int resumable;                 /* the last error skipped exactly one whole value */
	uint64_t consumed;             /* bytes of the input taken by the records read */
	int direct;                    /* read(2) on the descriptor instead of fread (a pipe, a terminal) */
	int err_no;                    /* errno of a failed read */
	size_t max_record;             /* the most bytes of a record (lx_reader_set_max_bytes) */
	const char *max_option;        /* the option that sets it, for the message */
};

struct lx_writer {
	FILE *f;
	char *name;
	msgpack_packer pk;
	int failed, err_no;
};

/* ---- records ---- */

lx_record *lx_record_new(void)
{
	lx_record *rec = calloc(1, sizeof *rec);

	if (!rec)
		return NULL;
	msgpack_unpacked_init(&rec->up);
	rec->index = -1;
	return rec;
}

void lx_record_free(lx_record *rec)
{
	size_t i;

	if (!rec)
		return;
	for (i = 0; i < rec->n; i++) {
		free(rec->f[i].akey);
		msgpack_sbuffer_destroy(&rec->f[i].sb);
		if (rec->f[i].has_view)
			msgpack_unpacked_destroy(&rec->f[i].view);
	}
	free(rec->f);
	msgpack_unpacked_destroy(&rec->up);
	free(rec->raw);
	if (rec->scratch)
		msgpack_zone_free(rec->scratch);
	free(rec);
}

long lx_record_index(const lx_record *rec) { return rec->index; }

size_t lx_record_memory(const lx_record *rec) { return rec->raw_len + rec->values * sizeof(msgpack_object); }

static int key_is(const msgpack_object *k, const char *s, size_t n)
{
	if (k->type == MSGPACK_OBJECT_STR)
		return k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
	if (k->type == MSGPACK_OBJECT_BIN)
		return k->via.bin.size == n && memcmp(k->via.bin.ptr, s, n) == 0;
	return 0;
}

static field *find(const lx_record *rec, const char *key)
{
	size_t i, n = strlen(key);

	for (i = 0; i < rec->n; i++) {
		field *f = &rec->f[i];
		if (f->removed)
			continue;
		if (f->akey ? strcmp(f->akey, key) == 0 : key_is(&f->key, key, n))
			return f;
	}
	return NULL;
}

static field *push(lx_record *rec)
{
	field *f;

	if (rec->n == rec->cap) {
		size_t cap = rec->cap ? rec->cap * 2 : 4;
		field *nf = realloc(rec->f, cap * sizeof *nf);
		if (!nf)
			return NULL;
		rec->f = nf;
		rec->cap = cap;
	}
	f = &rec->f[rec->n++];
	memset(f, 0, sizeof *f);
	return f;
}

/* Unpacks data[0, n) whole into u, its objects in a zone whose first chunk is chunk bytes: msgpack_unpack_next
 * takes 8 KB for a value of a few bytes, so that a stream of small records (or a record given small fields)
 * allocated 8 KB for each, and the fuzz target ran at a few dozen inputs a second under AddressSanitizer.
 * 1 when the bytes are one whole value. */
static int unpack_whole(msgpack_unpacked *u, const char *data, size_t n, size_t chunk)
{
	size_t off = 0;

	if (!(u->zone = msgpack_zone_new(chunk)))
		return 0;
	return msgpack_unpack(data, n, &off, u->zone, &u->data) == MSGPACK_UNPACK_SUCCESS && off == n;
}

const msgpack_object *lx_record_get(const lx_record *rec, const char *key)
{
	field *f = find(rec, key);

	if (!f)
		return NULL;
	if (!f->akey)
		return f->val;
	if (!f->has_view) {
		/* a field added is mostly one value (an id, a message, a tensor's map of four): the zone grows
		 * for more */
		size_t chunk = 8 * sizeof(msgpack_object) + 64;
		msgpack_unpacked_init(&f->view);
		if (!unpack_whole(&f->view, f->sb.data, f->sb.size, chunk)) {
			msgpack_unpacked_destroy(&f->view);
			return NULL;
		}
		f->has_view = 1;
	}
	return &f->view.data;
}

void lx_record_remove(lx_record *rec, const char *key)
{
	field *f = find(rec, key);

	if (f)
		f->removed = 1;
}

/* A field for key, added or replacing the old one in place, with an empty buffer behind rec->pk. */
static msgpack_packer *start_field(lx_record *rec, const char *key)
{
	field *f = find(rec, key);
	char *k = strdup(key);

	if (!k)
		return NULL;
	if (f) {
		free(f->akey);
		msgpack_sbuffer_destroy(&f->sb);
		if (f->has_view)
			msgpack_unpacked_destroy(&f->view);
		f->has_view = 0;
	} else if (!(f = push(rec))) {
		free(k);
		return NULL;
	}
	f->akey = k;
	msgpack_sbuffer_init(&f->sb);
	/* most fields added are small (an id, a score): 64 bytes to start, not msgpack-c's 8 KB */
	if ((f->sb.data = malloc(64)))
		f->sb.alloc = 64;
	msgpack_packer_init(&rec->pk, &f->sb, msgpack_sbuffer_write);
	return &rec->pk;
}

msgpack_packer *lx_record_add_packer(lx_record *rec, const char *key) { return start_field(rec, key); }

static void pack_cstr(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_bkey(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, s, n);
}

int lx_pack_tensor(msgpack_packer *pk, lx_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
	size_t numel = 1;
	int i;

	for (i = 0; i < ndim; i++)
		numel *= (size_t)shape[i];
	msgpack_pack_map(pk, 5);
	pack_bkey(pk, "nd");
	msgpack_pack_true(pk);
	pack_bkey(pk, "type");
	pack_cstr(pk, lx_dtype_numpy(dtype), strlen(lx_dtype_numpy(dtype)));
	pack_bkey(pk, "kind");
	msgpack_pack_bin(pk, 0);
	pack_bkey(pk, "shape");
	msgpack_pack_array(pk, (size_t)ndim);
	for (i = 0; i < ndim; i++)
		msgpack_pack_int64(pk, shape[i]);
	pack_bkey(pk, "data");
	msgpack_pack_bin(pk, numel * lx_dtype_size(dtype));
	return msgpack_pack_bin_body(pk, data, numel * lx_dtype_size(dtype));
}

lx_status lx_record_add_tensor(lx_record *rec, const char *key, lx_dtype dtype, int ndim, const int64_t *shape,
                               const void *data)
{
	msgpack_packer *pk = start_field(rec, key);

	if (!pk)
		return LX_EIO;
	return lx_pack_tensor(pk, dtype, ndim, shape, data) ? LX_EIO : LX_OK;
}

lx_status lx_record_add_str(lx_record *rec, const char *key, const char *s, size_t len)
{
	msgpack_packer *pk = start_field(rec, key);

	if (!pk)
		return LX_EIO;
	pack_cstr(pk, s, len);
	return LX_OK;
}

lx_status lx_record_add_int(lx_record *rec, const char *key, int64_t v)
{
	msgpack_packer *pk = start_field(rec, key);

	if (!pk)
		return LX_EIO;
	msgpack_pack_int64(pk, v);
	return LX_OK;
}

lx_status lx_record_add_float(lx_record *rec, const char *key, double v)
{
	msgpack_packer *pk = start_field(rec, key);

	if (!pk)
		return LX_EIO;
	msgpack_pack_double(pk, v);
	return LX_OK;
}

lx_status lx_record_add_object(lx_record *rec, const char *key, const msgpack_object *o)
{
	msgpack_packer *pk = start_field(rec, key);

	if (!pk)
		return LX_EIO;
	return msgpack_pack_object(pk, *o) ? LX_EIO : LX_OK;
}

const char *lx_object_text(const msgpack_object *o, char *dst, size_t n)
{
	if (o->type == MSGPACK_OBJECT_STR)
		snprintf(dst, n, "%.*s", (int)o->via.str.size, o->via.str.ptr);
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		snprintf(dst, n, "%llu", (unsigned long long)o->via.u64);
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		snprintf(dst, n, "%lld", (long long)o->via.i64);
	else if (n)
		dst[0] = 0;
	return dst;
}

int lx_object_number(const msgpack_object *o, double *v)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return 1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return 1;
	default: return 0;
	}
}

const char *lx_record_id(const lx_record *rec, char *buf, size_t n)
{
	static const char *keys[] = {"question_id", "questionId", "uid", "identifier", "img_id", "id"};
	size_t i;

	buf[0] = 0;
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const msgpack_object *o = lx_record_get(rec, keys[i]);
		if (o && (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		          o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
			return lx_object_text(o, buf, n);
	}
	return buf;
}

/* ---- error records ---- */

int lx_record_is_error(const lx_record *rec)
{
	const msgpack_object *o = lx_record_get(rec, "error");

	return o && o->type == MSGPACK_OBJECT_STR;
}

lx_status lx_record_set_error(lx_record *rec, const char *msg)
{
	return lx_record_add_str(rec, "error", msg, strlen(msg));
}

void lx_record_revert(lx_record *rec)
{
	size_t i;

	for (i = 0; i < rec->n; i++) {
		field *f = &rec->f[i];
		if (f->akey) {
			free(f->akey);
			f->akey = NULL;
			msgpack_sbuffer_destroy(&f->sb);
			msgpack_sbuffer_init(&f->sb); /* destroy leaves the pointer: lx_record_free would free it again */
			if (f->has_view)
				msgpack_unpacked_destroy(&f->view);
			f->has_view = 0;
		}
		f->removed = 0;
	}
	rec->n = rec->nread;
}

lx_record *lx_record_error_new(const char *msg)
{
	lx_record *rec = lx_record_new();

	if (rec && lx_record_set_error(rec, msg)) {
		lx_record_free(rec);
		return NULL;
	}
	return rec;
}

/* ---- tensors inside records ---- */

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	uint32_t i;
	size_t n = strlen(key);

	for (i = 0; i < m->via.map.size; i++)
		if (key_is(&m->via.map.ptr[i].key, key, n))
			return &m->via.map.ptr[i].val;
	return NULL;
}

static int parse_dtype(const msgpack_object *o, lx_dtype *t)
{
	static const struct { const char *s; lx_dtype t; } names[] = {
		{"<f4", LX_F32}, {"<f2", LX_F16}, {"<f8", LX_F64}, {"<i4", LX_I32}, {"<i8", LX_I64},
		{"<i2", LX_I16}, {"|i1", LX_I8},  {"|u1", LX_U8},  {"|b1", LX_BOOL},
	};
	const char *p;
	size_t n, i;

	if (o->type == MSGPACK_OBJECT_STR) {
		p = o->via.str.ptr;
		n = o->via.str.size;
	} else if (o->type == MSGPACK_OBJECT_BIN) {
		p = o->via.bin.ptr;
		n = o->via.bin.size;
	} else
		return 0;
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i].s) == n && memcmp(names[i].s, p, n) == 0) {
			*t = names[i].t;
			return 1;
		}
	return 0;
}

/* Decodes a tensor map (msgpack-numpy) or a plain array of numbers. */
static lx_status decode_tensor(lx_record *rec, const msgpack_object *o, lx_tensor *t, const char *key,
                               lx_err *e)
{
	const msgpack_object *nd, *ty, *sh, *da;
	int64_t numel = 1;
	uint32_t i;

	memset(t, 0, sizeof *t);
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		int isf = 0;
		for (i = 0; i < o->via.array.size; i++) {
			msgpack_object_type ot = o->via.array.ptr[i].type;
			if (ot == MSGPACK_OBJECT_FLOAT32 || ot == MSGPACK_OBJECT_FLOAT64)
				isf = 1;
			else if (ot != MSGPACK_OBJECT_POSITIVE_INTEGER && ot != MSGPACK_OBJECT_NEGATIVE_INTEGER &&
			         ot != MSGPACK_OBJECT_BOOLEAN)
				return lx_errf(e, LX_EINPUT, "field %s: element %u of the array is not a number", key, i);
		}
		if (!rec->scratch && !(rec->scratch = msgpack_zone_new(4096)))
			return lx_errf(e, LX_EIO, "field %s: out of memory", key);
		{
			void *buf = msgpack_zone_malloc(rec->scratch, (size_t)o->via.array.size * 8 + 8);
			if (!buf)
				return lx_errf(e, LX_EIO, "field %s: out of memory", key);
			for (i = 0; i < o->via.array.size; i++) {
				const msgpack_object *x = &o->via.array.ptr[i];
				if (isf) {
					double d = x->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (double)x->via.u64
					           : x->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? (double)x->via.i64
					           : x->type == MSGPACK_OBJECT_BOOLEAN ? (double)x->via.boolean
					                                               : x->via.f64;
					memcpy((char *)buf + 8 * i, &d, 8);
				} else {
					int64_t v = x->type == MSGPACK_OBJECT_BOOLEAN ? x->via.boolean
					            : x->type == MSGPACK_OBJECT_POSITIVE_INTEGER
					                ? (x->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)x->via.u64)
					                : x->via.i64;
					memcpy((char *)buf + 8 * i, &v, 8);
				}
			}
			t->dtype = isf ? LX_F64 : LX_I64;
			t->ndim = 1;
			t->shape[0] = o->via.array.size;
			t->numel = o->via.array.size;
			t->data = buf;
		}
		return LX_OK;
	}
	if (o->type != MSGPACK_OBJECT_MAP || !(nd = map_get(o, "nd")) || nd->type != MSGPACK_OBJECT_BOOLEAN ||
	    !nd->via.boolean)
		return lx_errf(e, LX_EINPUT, "field %s: not a tensor (expected a msgpack-numpy map with nd true)", key);
	ty = map_get(o, "type");
	sh = map_get(o, "shape");
	da = map_get(o, "data");
	if (!ty || !parse_dtype(ty, &t->dtype))
		return lx_errf(e, LX_EINPUT, "field %s: unknown or missing tensor type", key);
	if (!sh || sh->type != MSGPACK_OBJECT_ARRAY)
		return lx_errf(e, LX_EINPUT, "field %s: tensor without a shape array", key);
	if (sh->via.array.size > LX_MAX_DIMS)
		return lx_errf(e, LX_EINPUT, "field %s: tensor of rank %u, at most %d supported", key,
		               sh->via.array.size, LX_MAX_DIMS);
	t->ndim = (int)sh->via.array.size;
	for (i = 0; i < sh->via.array.size; i++) {
		const msgpack_object *d = &sh->via.array.ptr[i];
		if (d->type != MSGPACK_OBJECT_POSITIVE_INTEGER || d->via.u64 > (1u << 31))
			return lx_errf(e, LX_EINPUT, "field %s: bad dimension %u in the tensor shape", key, i);
		t->shape[i] = (int64_t)d->via.u64;
		if (t->shape[i] && numel > (INT64_C(1) << 40) / t->shape[i])
			return lx_errf(e, LX_EINPUT, "field %s: tensor shape too large", key);
		numel *= t->shape[i];
	}
	t->numel = numel;
	if (!da || (da->type != MSGPACK_OBJECT_BIN && da->type != MSGPACK_OBJECT_STR))
		return lx_errf(e, LX_EINPUT, "field %s: tensor without data bytes", key);
	{
		size_t have = da->type == MSGPACK_OBJECT_BIN ? da->via.bin.size : da->via.str.size;
		if ((uint64_t)have != (uint64_t)numel * lx_dtype_size(t->dtype))
			return lx_errf(e, LX_EINPUT, "field %s: tensor data holds %zu bytes, shape and type need %llu",
			               key, have, (unsigned long long)numel * lx_dtype_size(t->dtype));
		t->data = da->type == MSGPACK_OBJECT_BIN ? (const void *)da->via.bin.ptr : (const void *)da->via.str.ptr;
	}
	return LX_OK;
}

lx_status lx_record_tensor(const lx_record *rec, const char *key, lx_tensor *t, int *present, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, key);

	if (present)
		*present = o != NULL;
	if (!o) {
		if (present)
			return LX_OK;
		return lx_errf(e, LX_EINPUT, "missing field %s", key);
	}
	return decode_tensor((lx_record *)rec, o, t, key, e);
}

lx_status lx_record_int(const lx_record *rec, const char *key, int32_t *v, int *present, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, key);
	lx_tensor t;
	lx_status rc;

	*present = o != NULL;
	if (!o)
		return LX_OK;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX)
		*v = (int32_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN)
		*v = (int32_t)o->via.i64;
	else if (o->type == MSGPACK_OBJECT_BOOLEAN)
		*v = o->via.boolean;
	else if (o->type == MSGPACK_OBJECT_MAP || o->type == MSGPACK_OBJECT_ARRAY) {
		if ((rc = lx_record_tensor(rec, key, &t, NULL, e)))
			return rc;
		if (t.numel != 1 || lx_dtype_is_float(t.dtype))
			return lx_errf(e, LX_EINPUT, "field %s: expected one integer", key);
		return lx_tensor_to_i32(&t, v, key, e);
	} else
		return lx_errf(e, LX_EINPUT, "field %s: expected one integer", key);
	return LX_OK;
}

/* ---- reading ---- */

static lx_reader *reader_new(FILE *f, const char *name, int may_be_direct)
{
	lx_reader *r = calloc(1, sizeof *r);
	struct stat sb;

	if (!r)
		return NULL;
	r->f = f;
	r->direct = may_be_direct && fstat(fileno(f), &sb) == 0 && !S_ISREG(sb.st_mode);
	r->name = strdup(name ? name : "stdin");
	r->cap = READ_CHUNK;
	r->buf = malloc(r->cap);
	r->max_record = MAX_RECORD;
	if (!r->name || !r->buf) {
		free(r->name);
		free(r->buf);
		free(r);
		return NULL;
	}
	return r;
}

lx_reader *lx_reader_new(FILE *f, const char *name) { return reader_new(f, name, 1); }

static int wake_fd = -1;  /* lx_reader_wake_on */

void lx_reader_wake_on(int fd) { wake_fd = fd; }

/* Waits until fd has input (or its end) or wake_fd is readable: 0, or -1 with errno (EINTR: woken). */
static int wait_input(int fd)
{
	struct pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};

	if (wake_fd < 0)
		return 0;
	for (;;) {
		if (poll(p, 2, -1) >= 0)
			break;
		if (errno != EINTR)
			return -1;
	}
	if (p[1].revents) {
		errno = EINTR;
		return -1;
	}
	return 0;
}

void lx_reader_set_max_bytes(lx_reader *r, size_t max, const char *option)
{
	r->max_record = max < MAX_RECORD ? max : MAX_RECORD;
	r->max_option = option;
}
lx_reader *lx_reader_new_buffered(FILE *f, const char *name) { return reader_new(f, name, 0); }

void lx_reader_free(lx_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r->name);
	free(r);
}

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Advances s over b[0, n) (the bytes of one record so far). Returns 1 when the record is complete (it ends
 * at s->pos), 0 when more bytes are needed, -1 on a byte that starts no msgpack value, -2 when containers
 * nest deeper than MAX_DEPTH, -3 when a string, bin or ext declares more than max bytes of record, -4
 * when the record holds more than MAX_OBJECTS values.
 */
static int scan(scanner *s, const unsigned char *b, size_t n, size_t max)
{
	for (;;) {
		unsigned c;
		size_t hdr = 1;
		uint64_t body = 0, items = 0;

		while (s->depth > 0 && s->left[s->depth - 1] == 0)
			s->depth--;
		if (s->depth == 0 && s->pos > 0)
			return 1;
		if (s->depth == 0) { /* the start of the record: one value */
			s->left[0] = 1;
			s->depth = 1;
		}
		if (s->pos >= n)
			return 0;
		c = b[s->pos];
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
			;
		else if (c >= 0x80 && c <= 0x8f)
			items = 2 * (uint64_t)(c & 0x0f);
		else if (c >= 0x90 && c <= 0x9f)
			items = c & 0x0f;
		else if (c >= 0xa0 && c <= 0xbf)
			body = c & 0x1f;
		else {
			/* header bytes after the type byte, then what they count */
			static const signed char extra[32] = {
				/* c0 */ 0, -1, 0, 0, 1, 2, 4, 2, 3, 5, 4, 8, 1, 2, 4, 8,
				/* d0 */ 1, 2, 4, 8, 2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4,
			};
			int k = extra[c - 0xc0];
			if (k < 0)
				return -1;
			hdr = 1 + (size_t)k;
			if (s->pos + hdr > n)
				return 0;
			switch (c) {
			case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: /* bin, str */
				body = be(b + s->pos + 1, k);
				break;
			case 0xc7: case 0xc8: case 0xc9: /* ext: length, then a type byte */
				body = be(b + s->pos + 1, k - 1);
				break;
			case 0xdc: case 0xdd:
				items = be(b + s->pos + 1, k);
				break;
			case 0xde: case 0xdf:
				items = 2 * be(b + s->pos + 1, k);
				break;
			default: /* fixed-size numbers and fixext: all in the header */
				break;
			}
		}
		if (body > max || s->pos + hdr + body > max)
			return -3; /* refused before a byte of it is buffered */
		if (s->pos + hdr + body > n)
			return 0;
		if (++s->values > MAX_OBJECTS)
			return -4;
		s->pos += hdr + (size_t)body;
		s->left[s->depth - 1]--;
		if (items) {
			if (s->depth > MAX_DEPTH)
				return -2;
			s->left[s->depth++] = items;
		}
	}
}

/* Reads more input into the buffer; 0 at the end of the input, -1 on a read error (r->err_no; ENOMEM when
 * the buffer cannot grow). fread would wait for a whole buffer on a pipe: a direct reader takes what one
 * read(2) returns, so each record is handled as soon as its last byte arrives and a signal ends the wait. */
static int fill(lx_reader *r)
{
	size_t n;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->start = 0;
	}
	if (r->len == r->cap) {
		unsigned char *nb = realloc(r->buf, r->cap * 2);
		if (!nb) {
			r->err_no = ENOMEM;
			return -1;
		}
		r->buf = nb;
		r->cap *= 2;
	}
	if (r->direct) {
		ssize_t k = wait_input(fileno(r->f)) ? -1 : read(fileno(r->f), r->buf + r->len, r->cap - r->len);
		if (k < 0) {
			r->err_no = errno;
			return -1;
		}
		n = (size_t)k;
	} else {
		n = fread(r->buf + r->len, 1, r->cap - r->len, r->f);
		if (n == 0 && ferror(r->f)) {
			r->err_no = errno;
			return -1;
		}
	}
	r->len += n;
	return n > 0;
}

long lx_reader_count(const lx_reader *r) { return r->count; }

static const char *type_name(msgpack_object_type t)
{
	switch (t) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "float";
	case MSGPACK_OBJECT_STR: return "string";
	case MSGPACK_OBJECT_BIN: return "bin";
	case MSGPACK_OBJECT_ARRAY: return "array";
	case MSGPACK_OBJECT_MAP: return "map";
	default: return "ext";
	}
}

/* The bytes of a str or bin key; NULL for a key of another type. */
static const char *key_bytes(const msgpack_object *k, size_t *n)
{
	if (k->type == MSGPACK_OBJECT_STR) {
		*n = k->via.str.size;
		return k->via.str.ptr;
	}
	if (k->type == MSGPACK_OBJECT_BIN) {
		*n = k->via.bin.size;
		return k->via.bin.ptr;
	}
	return NULL;
}

static int key_cmp(const void *a, const void *b)
{
	const msgpack_object *x = *(const msgpack_object *const *)a, *y = *(const msgpack_object *const *)b;
	size_t nx = 0, ny = 0;
	const char *px = key_bytes(x, &nx), *py = key_bytes(y, &ny);
	int c;

	if (!px || !py)
		return (px != NULL) - (py != NULL);
	c = memcmp(px, py, nx < ny ? nx : ny);
	return c ? c : (nx > ny) - (nx < ny);
}

/* Finds a key that stands twice in map m (a str and a bin key with the same bytes name the same field):
 * 1 with *dup set, 0 if there is none, -1 out of memory. Python's msgpack keeps the last of two equal keys and
 * lx the first, so a record with both would read differently on either side: it is refused. */
static int duplicate_key(const msgpack_object_map *m, const msgpack_object **dup)
{
	const msgpack_object **k;
	size_t n;
	uint32_t i, j;

	if (m->size <= 16) {
		for (i = 1; i < m->size; i++)
			for (j = 0; j < i; j++) {
				const msgpack_object *a = &m->ptr[i].key, *b = &m->ptr[j].key;
				if (key_bytes(a, &n) && key_bytes(b, &n) && !key_cmp(&a, &b))
					return *dup = a, 1;
			}
		return 0;
	}
	if (!(k = malloc(m->size * sizeof *k)))
		return -1;
	for (i = 0; i < m->size; i++)
		k[i] = &m->ptr[i].key;
	qsort(k, m->size, sizeof *k, key_cmp);
	for (i = 1; i < m->size; i++)
		if (key_bytes(k[i], &n) && !key_cmp(&k[i - 1], &k[i])) {
			*dup = k[i];
			free(k);
			return 1;
		}
	free(k);
	return 0;
}

static lx_status too_large(const lx_reader *r, long no, lx_err *e)
{
	return lx_errf(e, LX_EINPUT, "%s: record %ld: larger than %zu bytes%s%s%s", r->name, no, r->max_record,
	               r->max_option ? " (" : "", r->max_option ? r->max_option : "", r->max_option ? ")" : "");
}

lx_status lx_reader_next(lx_reader *r, lx_record **out, lx_err *e)
{
	const msgpack_object *dup = NULL;
	lx_record *rec;
	size_t size, values;
	long no = r->count + 1;
	int got;
	uint32_t i;

	*out = NULL;
	r->resumable = 0;
	for (;;) {
		got = scan(&r->sc, r->buf + r->start, r->len - r->start, r->max_record);
		if (got == -1)
			return lx_errf(e, LX_EINPUT, "%s: record %ld: not valid msgpack", r->name, no);
		if (got == -2)
			return lx_errf(e, LX_EINPUT, "%s: record %ld: nested deeper than %d levels", r->name, no, MAX_DEPTH);
		if (got == -3)
			return too_large(r, no, e);
		if (got == -4)
			return lx_errf(e, LX_EINPUT, "%s: record %ld: more than %llu values", r->name, no,
			               (unsigned long long)MAX_OBJECTS);
		if (got == 1)
			break;
		if (r->len - r->start >= r->max_record)
			return too_large(r, no, e);
		if (r->eof) {
			if (r->len > r->start)
				return lx_errf(e, LX_EINPUT, "%s: record %ld: the stream ends inside the record", r->name, no);
			return LX_OK;
		}
		got = fill(r);
		if (got < 0)
			return lx_errf(e, LX_EIO, "%s: %s", r->name, strerror(r->err_no));
		if (got == 0)
			r->eof = 1;
	}
	size = r->sc.pos;
	values = (size_t)r->sc.values;
	memset(&r->sc, 0, sizeof r->sc);
	if (!(rec = lx_record_new()) || !(rec->raw = malloc(size))) {
		lx_record_free(rec);
		return lx_errf(e, LX_EIO, "%s: record %ld: out of memory", r->name, no);
	}
	memcpy(rec->raw, r->buf + r->start, size);
	rec->raw_len = size;
	rec->values = values;
	r->start += size;
	r->consumed += size;
	r->count++;
	rec->index = r->count - 1;
	r->resumable = 1; /* the value's bytes are consumed: whatever is wrong with it, the next record follows */
	if (!unpack_whole(&rec->up, rec->raw, size, (size_t)values * sizeof(msgpack_object) + 64)) {
		lx_record_free(rec);
		return lx_errf(e, LX_EINPUT, "%s: record %ld: not valid msgpack", r->name, no);
	}
	if (rec->up.data.type != MSGPACK_OBJECT_MAP) {
		lx_status st = lx_errf(e, LX_EINPUT, "%s: record %ld: a msgpack %s, expected a map", r->name, no,
		                       type_name(rec->up.data.type));
		lx_record_free(rec);
		return st;
	}
	if ((got = duplicate_key(&rec->up.data.via.map, &dup)) != 0) {
		size_t n = 0;
		const char *k = got > 0 ? key_bytes(dup, &n) : NULL;
		lx_status st = got < 0 ? lx_errf(e, LX_EIO, "%s: record %ld: out of memory", r->name, no)
		                       : lx_errf(e, LX_EINPUT, "%s: record %ld: field %.*s appears twice", r->name, no,
		                                 (int)(n > 200 ? 200 : n), k);
		lx_record_free(rec);
		return st;
	}
	for (i = 0; i < rec->up.data.via.map.size; i++) {
		field *f = push(rec);
		if (!f) {
			lx_record_free(rec);
			r->resumable = 0;
			return lx_errf(e, LX_EIO, "%s: out of memory", r->name);
		}
		f->key = rec->up.data.via.map.ptr[i].key;
		f->val = &rec->up.data.via.map.ptr[i].val;
	}
	rec->nread = rec->n;
	*out = rec;
	r->resumable = 0;
	return LX_OK;
}

int lx_reader_resumable(const lx_reader *r) { return r->resumable; }

uint64_t lx_reader_offset(const lx_reader *r) { return r->consumed; }

/* ---- writing ---- */

static int write_cb(void *data, const char *buf, size_t len)
{
	lx_writer *w = data;

	if (w->failed)
		return -1;
	if (len && fwrite(buf, 1, len, w->f) != len) {
		w->failed = 1;
		w->err_no = errno;
		return -1;
	}
	return 0;
}

lx_writer *lx_writer_new(FILE *f, const char *name)
{
	lx_writer *w = calloc(1, sizeof *w);

	if (!w)
		return NULL;
	w->f = f;
	w->name = strdup(name ? name : "stdout");
	if (!w->name) {
		free(w);
		return NULL;
	}
	msgpack_packer_init(&w->pk, w, write_cb);
	return w;
}

void lx_writer_free(lx_writer *w)
{
	if (!w)
		return;
	free(w->name);
	free(w);
}

static lx_status write_error(lx_writer *w, lx_err *e)
{
	return lx_errf(e, LX_EIO, "%s: write failed: %s", w->name, strerror(w->err_no ? w->err_no : EIO));
}

lx_status lx_writer_put(lx_writer *w, const lx_record *rec, lx_err *e)
{
	size_t i, n = 0;

	for (i = 0; i < rec->n; i++)
		n += !rec->f[i].removed;
	msgpack_pack_map(&w->pk, n);
	for (i = 0; i < rec->n; i++) {
		const field *f = &rec->f[i];
		if (f->removed)
			continue;
		if (f->akey) {
			pack_cstr(&w->pk, f->akey, strlen(f->akey));
			write_cb(w, f->sb.data, f->sb.size);
		} else {
			msgpack_pack_object(&w->pk, f->key);
			msgpack_pack_object(&w->pk, *f->val);
		}
	}
	return w->failed ? write_error(w, e) : LX_OK;
}

lx_status lx_writer_flush(lx_writer *w, lx_err *e)
{
	if (!w->failed && fflush(w->f) != 0) {
		w->failed = 1;
		w->err_no = errno;
	}
	return w->failed ? write_error(w, e) : LX_OK;
}

int lx_writer_broken_pipe(const lx_writer *w) { return w->failed && w->err_no == EPIPE; }

/* ckpt.c - PyTorch checkpoints, zip and legacy layouts, to a list of contiguous tensors (lx_ckpt.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utf8proc.h>

#include "lx_ckpt.h"
#include "ckpt/torch.h"
#include "fmt/zip.h"

struct lx_ckpt {
	char *path;
	void *map;               /* the mapping made by lx_ckpt_open, or NULL */
	size_t map_len;
	const char *format;
	int n;
	char **names;            /* [n] */
	lx_tensor *t;            /* [n] */
	void **copies;           /* [n] data copied out of non-contiguous views, or NULL */
};

/* A storage's bytes, by key. */
typedef struct {
	const char *key;
	lx_dtype dtype;
	const unsigned char *data;
	uint64_t bytes;
} storage;

typedef struct {
	lx_ckpt *c;
	const unsigned char *buf;
	size_t len;
	lx_pickle *pk;
	ckpt_storages pids;      /* every storage the pickles named (persistent ids), in order */
	storage *st;             /* sorted by key */
	size_t nst;
	lx_zip zip;
	const char *unread;      /* legacy: the storage of unknown type where reading the data had to stop */
	uint64_t copied, budget; /* bytes copied out of non-contiguous views, and the most they may take */
	lx_err *e;
} loader;

/* The legacy layout starts with this pickle: protocol 2, LONG1 0x1950a86a20f9469cfc6c, STOP. */
static const unsigned char legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                             0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

/* ---- dtypes ---- */

/* The dtype of a storage type ("torch.FloatStorage"); -1 if none is supported. */
static int storage_dtype(const char *type)
{
	static const struct { const char *name; lx_dtype t; } map[] = {
		{"torch.FloatStorage", LX_F32}, {"torch.HalfStorage", LX_F16},  {"torch.BFloat16Storage", LX_BF16},
		{"torch.DoubleStorage", LX_F64}, {"torch.LongStorage", LX_I64}, {"torch.IntStorage", LX_I32},
		{"torch.ShortStorage", LX_I16}, {"torch.CharStorage", LX_I8},   {"torch.ByteStorage", LX_U8},
		{"torch.BoolStorage", LX_BOOL},
	};
	size_t k;

	for (k = 0; k < sizeof map / sizeof *map; k++)
		if (!strcmp(type, map[k].name))
			return (int)map[k].t;
	return -1;
}

/* ---- the storage table ---- */

static int by_key(const void *a, const void *b)
{
	return strcmp(((const storage *)a)->key, ((const storage *)b)->key);
}

static storage *find_storage(const loader *L, const char *key)
{
	storage k;

	k.key = key;
	return L->nst ? bsearch(&k, L->st, L->nst, sizeof *L->st, by_key) : NULL;
}

/* One entry per distinct storage key the pickle names, with its dtype (-1 if unsupported); data unset. */
static lx_status make_table(loader *L)
{
	size_t n = L->pids.n, k, j;
	lx_pk *const *sv = L->pids.v;

	L->st = calloc(n ? n : 1, sizeof *L->st);
	if (!L->st)
		return lx_errf(L->e, LX_EIO, "%s: out of memory", L->c->path);
	for (k = 0; k < n; k++) {
		L->st[k].key = sv[k]->s;
		L->st[k].dtype = (lx_dtype)storage_dtype(sv[k]->items[0]->s);
	}
	qsort(L->st, n, sizeof *L->st, by_key);
	for (k = 0, j = 0; k < n; k++) {
		if (j && !strcmp(L->st[j - 1].key, L->st[k].key)) {
			if (L->st[j - 1].dtype != L->st[k].dtype)
				return lx_errf(L->e, LX_EMODEL, "%s: storage %s is named with two different types",
				               L->c->path, L->st[k].key);
			continue;
		}
		L->st[j++] = L->st[k];
	}
	L->nst = j;
	return LX_OK;
}

/* ---- the zip layout ---- */

static lx_status load_zip(loader *L, lx_pk **root)
{
	const lx_zip_entry *pkl = NULL, *bo;
	const unsigned char *d;
	char prefix[512], entry[1024];
	size_t k, n, plen, used;
	lx_status st;

	if ((st = lx_zip_init(&L->zip, L->buf, L->len, L->c->path, "zip entry", LX_EMODEL, L->e)) != LX_OK)
		return st;
	for (k = 0; k < L->zip.n; k++) {
		const char *nm = L->zip.ents[k].name, *sl = strchr(nm, '/');
		if (sl && !strcmp(sl, "/data.pkl")) {
			if (pkl)
				return lx_errf(L->e, LX_EMODEL, "%s: two data.pkl entries (%s, %s)", L->c->path, pkl->name, nm);
			pkl = &L->zip.ents[k];
		}
	}
	if (!pkl)
		return lx_errf(L->e, LX_EMODEL, "%s: zip archive without a <name>/data.pkl entry: not a PyTorch "
		               "checkpoint", L->c->path);
	plen = strlen(pkl->name) - strlen("data.pkl");
	if (plen >= sizeof prefix)
		return lx_errf(L->e, LX_EMODEL, "%s: archive name too long", L->c->path);
	memcpy(prefix, pkl->name, plen);
	prefix[plen] = 0;
	snprintf(entry, sizeof entry, "%sbyteorder", prefix);
	if ((bo = lx_zip_find(&L->zip, entry)) != NULL) {
		if ((st = lx_zip_data(&L->zip, bo, &d, &n, L->e)) != LX_OK)
			return st;
		if (n != 6 || memcmp(d, "little", 6))
			return lx_errf(L->e, LX_EMODEL, "%s: %s is not \"little\": big-endian checkpoints are not "
			               "supported", L->c->path, entry);
	}
	if ((st = lx_zip_data(&L->zip, pkl, &d, &n, L->e)) != LX_OK)
		return st;
	snprintf(entry, sizeof entry, "%s (%s)", L->c->path, pkl->name);
	if ((st = lx_pickle_load(L->pk, d, n, entry, root, &used, L->e)) != LX_OK)
		return st;
	if ((st = make_table(L)) != LX_OK)
		return st;
	for (k = 0; k < L->nst; k++) {
		const lx_zip_entry *z;
		if (strlen(L->st[k].key) > 256)
			return lx_errf(L->e, LX_EMODEL, "%s: storage key too long", L->c->path);
		snprintf(entry, sizeof entry, "%sdata/%s", prefix, L->st[k].key);
		if (!(z = lx_zip_find(&L->zip, entry)))
			return lx_errf(L->e, LX_EMODEL, "%s: storage %s has no entry %s in the archive", L->c->path,
			               L->st[k].key, entry);
		if ((st = lx_zip_data(&L->zip, z, &L->st[k].data, &n, L->e)) != LX_OK)
			return st;
		L->st[k].bytes = n;
	}
	return LX_OK;
}

/* ---- the legacy layout ---- */

static lx_status legacy_pickle(loader *L, size_t *pos, const char *what, lx_pk **v)
{
	char name[600];
	size_t used;
	lx_status st;

	snprintf(name, sizeof name, "%s (legacy %s)", L->c->path, what);
	if ((st = lx_pickle_load(L->pk, L->buf + *pos, L->len - *pos, name, v, &used, L->e)) != LX_OK)
		return st;
	*pos += used;
	return LX_OK;
}

static lx_status load_legacy(loader *L, lx_pk **root)
{
	size_t pos = sizeof legacy_magic, k;
	lx_pk *v, *keys, *le;
	lx_status st;

	if ((st = legacy_pickle(L, &pos, "protocol version", &v)) != LX_OK)
		return st;
	if (v->type != LX_PK_INT || v->i != 1001)
		return lx_errf(L->e, LX_EMODEL, "%s: legacy protocol version is not 1001", L->c->path);
	if ((st = legacy_pickle(L, &pos, "sys_info", &v)) != LX_OK)
		return st;
	if (v->type != LX_PK_DICT)
		return lx_errf(L->e, LX_EMODEL, "%s: legacy sys_info is not a dict", L->c->path);
	le = lx_pk_get(v, "little_endian");
	if (le && (le->type != LX_PK_BOOL || !le->i))
		return lx_errf(L->e, LX_EMODEL, "%s: big-endian checkpoints are not supported", L->c->path);
	if ((st = legacy_pickle(L, &pos, "object", root)) != LX_OK)
		return st;
	if ((st = legacy_pickle(L, &pos, "storage keys", &keys)) != LX_OK)
		return st;
	if (keys->type != LX_PK_LIST)
		return lx_errf(L->e, LX_EMODEL, "%s: legacy storage keys are not a list", L->c->path);
	if ((st = make_table(L)) != LX_OK)
		return st;
	/* then, per key in that order: int64 element count, then the raw bytes */
	for (k = 0; k < keys->n; k++) {
		storage *s;
		uint64_t numel = 0, size;
		int b;
		if (keys->items[k]->type != LX_PK_STR)
			return lx_errf(L->e, LX_EMODEL, "%s: legacy storage key %zu is not a string", L->c->path, k + 1);
		if (!(s = find_storage(L, keys->items[k]->s)))
			return lx_errf(L->e, LX_EMODEL, "%s: storage %s is listed but no tensor uses it", L->c->path,
			               keys->items[k]->s);
		if (s->data)
			return lx_errf(L->e, LX_EMODEL, "%s: storage %s is listed twice", L->c->path, s->key);
		if (L->len - pos < 8)
			return lx_errf(L->e, LX_EMODEL, "%s: storage %s: the file ends before its size: truncated?",
			               L->c->path, s->key);
		for (b = 7; b >= 0; b--)
			numel = numel << 8 | L->buf[pos + (size_t)b];
		pos += 8;
		if ((int)s->dtype < 0) { /* its size is unknown: add_tensor names the tensor */
			L->unread = s->key;
			break;
		}
		size = lx_dtype_size(s->dtype);
		if (numel > (L->len - pos) / size)
			return lx_errf(L->e, LX_EMODEL, "%s: storage %s: %llu elements run past the end of the file: "
			               "truncated?", L->c->path, s->key, (unsigned long long)numel);
		s->data = L->buf + pos;
		s->bytes = numel * size;
		pos += (size_t)s->bytes;
	}
	return LX_OK;
}

/* ---- tensors ---- */

static void fmt_dims(char *buf, size_t n, const int64_t *d, int nd)
{
	size_t o = 0;
	int k;

	o += (size_t)snprintf(buf, n, "[");
	for (k = 0; k < nd && o < n; k++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", k ? ", " : "", (long long)d[k]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* Copies a strided view to contiguous memory, walking the index like an odometer. */
static void gather(unsigned char *dst, const unsigned char *base, const int64_t *shape, const int64_t *stride,
                   int nd, size_t es, int64_t numel)
{
	int64_t idx[LX_MAX_DIMS] = {0}, off = 0, i;
	int k;

	for (i = 0; i < numel; i++) {
		memcpy(dst + (size_t)i * es, base + (size_t)off * es, es);
		for (k = nd - 1; k >= 0; k--) {
			off += stride[k];
			if (++idx[k] < shape[k])
				break;
			off -= stride[k] * shape[k];
			idx[k] = 0;
		}
	}
}

static lx_status add_tensor(loader *L, const char *name, const lx_pk *tv)
{
	lx_ckpt *c = L->c;
	const lx_pk *sv = tv->items[0];
	const storage *s = find_storage(L, sv->s);
	const int64_t *shape = tv->dims, *stride = tv->dims + tv->ndim;
	int64_t avail, numel = 1, last, expect = 1;
	const unsigned char *base;
	char sh[200], sd[200];
	lx_tensor *t = &c->t[c->n];
	size_t es;
	int k, contiguous = 1;

	if (!s || (int)s->dtype < 0)
		return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: unknown dtype: storage type %s (supported: Float, "
		               "Half, BFloat16, Double, Long, Int, Short, Char, Byte, Bool)", c->path, name,
		               sv->items[0]->s);
	if (!s->data && L->unread)
		return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: storage %s follows storage %s, of an unknown type, "
		               "in the file and cannot be located", c->path, name, s->key, L->unread);
	es = lx_dtype_size(s->dtype);
	if (s->bytes / es < (uint64_t)sv->i)
		return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: storage %s holds %llu bytes, fewer than the %lld "
		               "elements of %zu bytes it is said to hold", c->path, name, s->key,
		               (unsigned long long)s->bytes, (long long)sv->i, es);
	base = s->data;
	avail = sv->i;
	if (sv->off >= 0) {
		if (sv->off > avail || sv->count > avail - sv->off)
			return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: storage view [%lld, +%lld) outside storage %s "
			               "(%lld elements)", c->path, name, (long long)sv->off,
			               (long long)sv->count, s->key, (long long)avail);
		base += (size_t)sv->off * es;
		avail = sv->count;
	}
	fmt_dims(sh, sizeof sh, shape, tv->ndim);
	fmt_dims(sd, sizeof sd, stride, tv->ndim);
	for (k = 0; k < tv->ndim; k++) {
		if (shape[k] < 0 || stride[k] < 0)
			return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: negative size or stride (shape %s, strides %s)",
			               c->path, name, sh, sd);
		if (shape[k] && numel > (INT64_MAX / 8) / shape[k])
			return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: shape %s is too large", c->path, name, sh);
		numel *= shape[k];
	}
	last = tv->i;
	if (last < 0)
		return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: negative storage offset", c->path, name);
	for (k = 0; numel && k < tv->ndim; k++) {
		if (stride[k] && shape[k] - 1 > (INT64_MAX - last) / stride[k])
			return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: strides %s overflow", c->path, name, sd);
		last += (shape[k] - 1) * stride[k];
	}
	if (numel && last >= avail)
		return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: shape %s, strides %s at offset %lld need element "
		               "%lld of storage %s, which holds %lld: the storage is shorter than its tensor",
		               c->path, name, sh, sd, (long long)tv->i, (long long)last, s->key, (long long)avail);
	for (k = tv->ndim - 1; k >= 0; k--) {
		if (shape[k] != 1 && stride[k] != expect)
			contiguous = 0;
		expect *= shape[k];
	}
	if (!contiguous && numel > avail) /* a copy larger than the storage: elements repeat */
		return lx_errf(L->e, LX_EMODEL, "%s: tensor %s: shape %s, strides %s repeat elements of storage %s "
		               "(broadcast or overlapping views are not supported)", c->path, name, sh, sd, s->key);
	if (!contiguous && numel && (uint64_t)numel * es > L->budget - L->copied)
		return lx_errf(L->e, LX_EINPUT, "%s: tensor %s: its copy (shape %s, strides %s: a non-contiguous "
		               "view) takes the copies of views past %llu bytes, twice the size of the file's "
		               "storages (lx-limits(7))", c->path, name, sh, sd, (unsigned long long)L->budget);
	if (!(c->names[c->n] = strdup(name)))
		return lx_errf(L->e, LX_EIO, "%s: out of memory", c->path);
	t->dtype = s->dtype;
	t->ndim = tv->ndim;
	memcpy(t->shape, shape, (size_t)tv->ndim * sizeof *shape);
	t->numel = numel;
	if (contiguous || numel == 0) {
		t->data = numel ? base + (size_t)tv->i * es : base;
	} else {
		L->copied += (uint64_t)numel * es;
		if (!(c->copies[c->n] = malloc((size_t)numel * es))) {
			free(c->names[c->n]);
			c->names[c->n] = NULL;
			return lx_errf(L->e, LX_EIO, "%s: tensor %s: out of memory", c->path, name);
		}
		gather(c->copies[c->n], base + (size_t)tv->i * es, shape, stride, tv->ndim, es, numel);
		t->data = c->copies[c->n];
	}
	c->n++;
	return LX_OK;
}

static int valid_utf8(const char *s, size_t n)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t k;

	while (n > 0) {
		k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);
		if (k <= 0 || cp == 0)
			return 0;
		s += k;
		n -= (size_t)k;
	}
	return 1;
}

static int has_tensor(const lx_pk *d)
{
	size_t k;

	for (k = 0; k < d->n; k++)
		if (ckpt_is(d->items[2 * k + 1], K_TENSOR))
			return 1;
	return 0;
}

/* The state dict is the top-level dict, or its "state_dict" or "model" entry (training snapshots). */
static lx_status collect(loader *L, lx_pk *root)
{
	lx_ckpt *c = L->c;
	lx_pk *d = root, *sub;
	size_t k;
	lx_status st;

	if (root->type != LX_PK_DICT)
		return lx_errf(L->e, LX_EMODEL, "%s: the checkpoint holds no dict of tensors", c->path);
	if (!has_tensor(d) && (((sub = lx_pk_get(d, "state_dict")) && sub->type == LX_PK_DICT) ||
	                       ((sub = lx_pk_get(d, "model")) && sub->type == LX_PK_DICT)))
		d = sub;
	if (!has_tensor(d))
		return lx_errf(L->e, LX_EMODEL, "%s: the checkpoint holds no tensors", c->path);
	c->names = calloc(d->n, sizeof *c->names);
	c->t = calloc(d->n, sizeof *c->t);
	c->copies = calloc(d->n, sizeof *c->copies);
	if (!c->names || !c->t || !c->copies)
		return lx_errf(L->e, LX_EIO, "%s: out of memory", c->path);
	/* the copies of non-contiguous views may take twice the storages they come from, together */
	for (k = 0; k < L->nst; k++)
		if (L->st[k].data)
			L->budget += 2 * L->st[k].bytes;
	for (k = 0; k < d->n; k++) {
		const lx_pk *key = d->items[2 * k], *val = d->items[2 * k + 1];
		if (!ckpt_is(val, K_TENSOR))
			continue;
		if (key->type != LX_PK_STR || !valid_utf8(key->s, key->len))
			return lx_errf(L->e, LX_EMODEL, "%s: state-dict key %zu is not a UTF-8 string", c->path, k + 1);
		if ((st = add_tensor(L, key->s, val)) != LX_OK)
			return st;
	}
	return LX_OK;
}

/* ---- opening ---- */

void lx_ckpt_free(lx_ckpt *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->names[i]);
		free(c->copies[i]);
	}
	free(c->names);
	free(c->t);
	free(c->copies);
	if (c->map)
		munmap(c->map, c->map_len);
	free(c->path);
	free(c);
}

lx_status lx_ckpt_open_mem(lx_ckpt **out, const void *buf, size_t len, const char *name, lx_err *e)
{
	loader L;
	lx_pk *root = NULL;
	lx_status st;

	*out = NULL;
	memset(&L, 0, sizeof L);
	L.c = calloc(1, sizeof *L.c);
	L.pk = ckpt_torch_pickle(&L.pids);
	if (!L.c || !L.pk || !(L.c->path = strdup(name))) {
		st = lx_errf(e, LX_EIO, "%s: out of memory", name);
		goto done;
	}
	L.buf = buf;
	L.len = len;
	L.e = e;
	if (len >= 4 && !memcmp(buf, "PK\003\004", 4)) {
		L.c->format = "zip";
		st = load_zip(&L, &root);
	} else if (len >= sizeof legacy_magic && !memcmp(buf, legacy_magic, sizeof legacy_magic)) {
		L.c->format = "legacy";
		st = load_legacy(&L, &root);
	} else {
		st = lx_errf(e, LX_EMODEL, "%s: not a PyTorch checkpoint (neither a zip archive nor the legacy "
		             "torch.save layout)", name);
	}
	if (st == LX_OK)
		st = collect(&L, root);
done:
	lx_zip_destroy(&L.zip);
	lx_pickle_free(L.pk);
	free(L.pids.v);
	free(L.st);
	if (st != LX_OK)
		lx_ckpt_free(L.c);
	else
		*out = L.c;
	return st;
}

lx_status lx_ckpt_open(lx_ckpt **out, const char *path, lx_err *e)
{
	struct stat sb;
	void *map;
	int fd;
	lx_status st;

	*out = NULL;
	if ((fd = open(path, O_RDONLY)) < 0)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		st = lx_errf(e, LX_EMODEL, "%s: %s", path, S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
		close(fd);
		return st;
	}
	if (sb.st_size == 0) {
		close(fd);
		return lx_errf(e, LX_EMODEL, "%s: empty file", path);
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return lx_errf(e, LX_EIO, "%s: %s", path, strerror(errno));
	if ((st = lx_ckpt_open_mem(out, map, (size_t)sb.st_size, path, e)) != LX_OK) {
		munmap(map, (size_t)sb.st_size);
		return st;
	}
	(*out)->map = map;
	(*out)->map_len = (size_t)sb.st_size;
	return LX_OK;
}

int lx_ckpt_count(const lx_ckpt *c) { return c->n; }
const char *lx_ckpt_format(const lx_ckpt *c) { return c->format; }

const char *lx_ckpt_name(const lx_ckpt *c, int i, lx_tensor *t)
{
	if (t)
		*t = c->t[i];
	return c->names[i];
}

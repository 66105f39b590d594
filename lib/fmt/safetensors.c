/* safetensors.c - an mmap'ed safetensors file: header checked against the file, tensors viewed in place. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lx_fmt.h"

#define MAX_HEADER (100u << 20)

typedef struct {
	char *name;
	lx_tensor t;
} entry;

struct lx_st {
	void *map;
	size_t size;
	entry *e;
	int n;
};

static int parse_dtype(const char *s, lx_dtype *t)
{
	static const lx_dtype all[] = {LX_F32, LX_F16, LX_BF16, LX_F64, LX_I32, LX_I64, LX_I16, LX_I8, LX_U8, LX_BOOL};
	size_t i;

	for (i = 0; i < sizeof all / sizeof all[0]; i++)
		if (strcmp(s, lx_dtype_safetensors(all[i])) == 0) {
			*t = all[i];
			return 1;
		}
	return 0;
}

void lx_st_free(lx_st *st)
{
	int i;

	if (!st)
		return;
	for (i = 0; i < st->n; i++)
		free(st->e[i].name);
	free(st->e);
	if (st->map && st->map != MAP_FAILED)
		munmap(st->map, st->size);
	free(st);
}

static int by_offset(const void *a, const void *b)
{
	const entry *x = a, *y = b;
	const char *px = x->t.data, *py = y->t.data;

	return px < py ? -1 : px > py;
}

static lx_status parse_entry(lx_st *st, const char *path, const char *name, json_t *v, const char *data,
                             size_t dsize, lx_err *e)
{
	json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
	       *off = json_object_get(v, "data_offsets");
	entry *en = &st->e[st->n];
	uint64_t numel = 1, b, end;
	size_t i;

	memset(en, 0, sizeof *en);
	if (!json_is_string(dt) || !parse_dtype(json_string_value(dt), &en->t.dtype))
		return lx_errf(e, LX_EMODEL, "%s: tensor %s: missing or unknown dtype %s", path, name,
		               json_is_string(dt) ? json_string_value(dt) : "");
	if (!json_is_array(sh) || json_array_size(sh) > LX_MAX_DIMS)
		return lx_errf(e, LX_EMODEL, "%s: tensor %s: bad shape", path, name);
	en->t.ndim = (int)json_array_size(sh);
	for (i = 0; i < json_array_size(sh); i++) {
		json_t *d = json_array_get(sh, i);
		if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > (INT64_C(1) << 40))
			return lx_errf(e, LX_EMODEL, "%s: tensor %s: bad shape", path, name);
		en->t.shape[i] = json_integer_value(d);
		if (en->t.shape[i] && numel > (UINT64_C(1) << 40) / (uint64_t)en->t.shape[i])
			return lx_errf(e, LX_EMODEL, "%s: tensor %s: shape too large", path, name);
		numel *= (uint64_t)en->t.shape[i];
	}
	if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
	    !json_is_integer(json_array_get(off, 1)))
		return lx_errf(e, LX_EMODEL, "%s: tensor %s: bad data_offsets", path, name);
	b = (uint64_t)json_integer_value(json_array_get(off, 0));
	end = (uint64_t)json_integer_value(json_array_get(off, 1));
	if (json_integer_value(json_array_get(off, 0)) < 0 || b > end || end > dsize)
		return lx_errf(e, LX_EMODEL, "%s: tensor %s: data_offsets [%llu, %llu) outside the %zu data bytes", path,
		               name, (unsigned long long)b, (unsigned long long)end, dsize);
	if (end - b != numel * lx_dtype_size(en->t.dtype))
		return lx_errf(e, LX_EMODEL, "%s: tensor %s: %llu data bytes, shape and dtype need %llu", path, name,
		               (unsigned long long)(end - b), (unsigned long long)(numel * lx_dtype_size(en->t.dtype)));
	en->t.numel = (int64_t)numel;
	en->t.data = data + b;
	if (!(en->name = strdup(name)))
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	st->n++;
	return LX_OK;
}

lx_status lx_st_open(lx_st **out, const char *path, lx_err *e)
{
	lx_st *st;
	struct stat sb;
	uint64_t hlen;
	json_t *root = NULL, *v;
	json_error_t je;
	const char *key;
	lx_status rc = LX_OK;
	int fd, i;

	*out = NULL;
	if ((fd = open(path, O_RDONLY)) < 0)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return lx_errf(e, LX_EMODEL, "%s: not a regular file", path);
	}
	if (sb.st_size < 8) {
		close(fd);
		return lx_errf(e, LX_EMODEL, "%s: %lld bytes, too short for a safetensors file", path,
		               (long long)sb.st_size);
	}
	if (!(st = calloc(1, sizeof *st))) {
		close(fd);
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	}
	st->size = (size_t)sb.st_size;
	st->map = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (st->map == MAP_FAILED) {
		rc = lx_errf(e, LX_EMODEL, "%s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	memcpy(&hlen, st->map, 8); /* little-endian hosts only, as the Makefile assumes */
	if (hlen > st->size - 8 || hlen > MAX_HEADER) {
		rc = lx_errf(e, LX_EMODEL, "%s: header of %llu bytes does not fit in the file (%zu bytes)", path,
		             (unsigned long long)hlen, st->size);
		goto fail;
	}
	root = json_loadb((const char *)st->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
	if (!root || !json_is_object(root)) {
		rc = lx_errf(e, LX_EMODEL, "%s: header is not a JSON object (%s)", path, root ? "" : je.text);
		goto fail;
	}
	if (!(st->e = calloc(json_object_size(root) + 1, sizeof *st->e))) {
		rc = lx_errf(e, LX_EIO, "%s: out of memory", path);
		goto fail;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "__metadata__") == 0)
			continue;
		if (!json_is_object(v)) {
			rc = lx_errf(e, LX_EMODEL, "%s: tensor %s: not a JSON object", path, key);
			goto fail;
		}
		if ((rc = parse_entry(st, path, key, v, (const char *)st->map + 8 + hlen, st->size - 8 - hlen, e)))
			goto fail;
	}
	/* file order, and no two tensors sharing bytes */
	qsort(st->e, (size_t)st->n, sizeof *st->e, by_offset);
	for (i = 1; i < st->n; i++) {
		const char *prev_end = (const char *)st->e[i - 1].t.data +
		                       st->e[i - 1].t.numel * lx_dtype_size(st->e[i - 1].t.dtype);
		if ((const char *)st->e[i].t.data < prev_end) {
			rc = lx_errf(e, LX_EMODEL, "%s: tensors %s and %s overlap", path, st->e[i - 1].name, st->e[i].name);
			goto fail;
		}
	}
	json_decref(root);
	*out = st;
	return LX_OK;
fail:
	json_decref(root);
	lx_st_free(st);
	return rc;
}

int lx_st_count(const lx_st *st) { return st->n; }

const char *lx_st_name(const lx_st *st, int i, lx_tensor *t)
{
	if (t)
		*t = st->e[i].t;
	return st->e[i].name;
}

int lx_st_find(const lx_st *st, const char *name)
{
	int i;

	for (i = 0; i < st->n; i++)
		if (strcmp(st->e[i].name, name) == 0)
			return i;
	return -1;
}

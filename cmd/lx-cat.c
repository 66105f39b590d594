/* lx-cat - any lx stream as JSON lines, and JSON lines back to a stream (lx-cat(1)). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lx.h"
#include "tool.h"

enum { O_FULL = 256, O_TENSOR, O_MAX_LINE };

static const char synopsis[] = "[--full] [options]\n-r [--tensor KEY=DTYPE]... [options]";
static const char about[] =
	"Writes the records of an lx stream on stdin as JSON lines on stdout, tensors as {\"dtype\", \"shape\"}\n"
	"(with --full, and \"data\"), so that jq works at every stage; with -r, reads such JSON lines and writes\n"
	"the stream back. See lx-cat(1).";

static const tool_option option_table[] = {
	{O_FULL, "full", NULL, "tensors with their data, as nested lists"},
	{'r', "pack", NULL, "JSON lines to a stream (the reverse)"},
	{O_TENSOR, "tensor", "KEY=DTYPE", "with -r: field KEY, a nested list of numbers, becomes a tensor of\nDTYPE (<f4, <f2, <f8, <i4, <i8, <i2, |i1, |u1, |b1 or float32,\nfloat16, float64, int32, int64, int16, int8, uint8, bool)"},
	{O_MAX_LINE, "max-line", "BYTES", "with -r: the longest line read (16777216)"},
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-cat", synopsis, about, option_table};

#define MAX_DEPTH 32 /* the stream's limit (lx-stream(5)): a record and what it holds, 32 containers deep */

typedef struct {
	char *key;
	lx_dtype dtype;
} tensor_opt;

typedef struct {
	int full;
	tensor_opt *tens;
	int ntens;
	size_t max_line;
	char *line;           /* the line in hand (max_line + 1 bytes) */
	unsigned char *buf;   /* a tensor's data */
	size_t buf_cap;
} cat;

/* ---- the stream to JSON lines ---- */

static int to_json(cat *c, int keep_going, int progress)
{
	tool_run t;
	lx_record *rec;
	lx_json *j = lx_json_new();
	lx_err err = {0, ""};
	lx_status rc = LX_OK;
	int pass;

	if (!j || tool_run_init(&t, stdin, "stdin", 0, keep_going, progress))
		rc = lx_errf(&err, LX_EIO, "out of memory");
	while (!rc && !(rc = tool_next(&t, &rec, &pass, &err)) && rec) {
		if ((rc = lx_json_record(j, stdout, rec, c->full ? LX_JSON_FULL : LX_JSON_SUMMARY, &err))) {
			tool_where(&t, rec, &err);
			if (!(rc = tool_refuse(&t, rec, rc, &err)))
				rc = lx_json_record(j, stdout, rec, LX_JSON_SUMMARY, &err);
		}
		lx_record_free(rec);
		if (!rc && ferror(stdout))
			rc = lx_errf(&err, LX_EIO, "stdout: write failed: %s", strerror(errno));
		if (!rc)
			tool_done(&t, 1);
	}
	lx_json_free(j);
	if (rc == LX_EIO && errno == EPIPE)
		t.epipe = 1;
	return tool_end(&t, rc, &err);
}

/* ---- JSON lines to the stream ---- */

static const struct {
	const char *name;
	lx_dtype dtype;
} dtype_names[] = {
	{"float32", LX_F32}, {"float16", LX_F16}, {"float64", LX_F64}, {"int32", LX_I32}, {"int64", LX_I64},
	{"int16", LX_I16},   {"int8", LX_I8},     {"uint8", LX_U8},    {"bool", LX_BOOL},
};
#define NDTYPES (sizeof dtype_names / sizeof dtype_names[0])

/* A dtype by numpy's string ("<f4") or its name ("float32"); -1 if it is neither. */
static int dtype_of(const char *s)
{
	size_t i;

	for (i = 0; i < NDTYPES; i++)
		if (!strcmp(s, dtype_names[i].name) || !strcmp(s, lx_dtype_numpy(dtype_names[i].dtype)))
			return (int)dtype_names[i].dtype;
	return -1;
}

/* How deep j nests (a scalar is 0). */
static int depth(const json_t *j)
{
	const char *k;
	json_t *x;
	size_t i;
	int d = 0, dx;

	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, x)
			if ((dx = depth(x)) > d)
				d = dx;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, x)
			if ((dx = depth(x)) > d)
				d = dx;
	} else
		return 0;
	return d + 1;
}

/* The shape of nested lists j (dimension by dimension, from the first element of each), checked to be
 * regular and to end in numbers or booleans. */
static lx_status list_shape(const json_t *j, int64_t *shape, int *ndim, int64_t *numel, const char *key, lx_err *e)
{
	const json_t *x = j;

	*ndim = 0;
	*numel = 1;
	while (json_is_array(x)) {
		if (*ndim == LX_MAX_DIMS)
			return lx_errf(e, LX_EINPUT, "field %s: data nested deeper than %d dimensions", key, LX_MAX_DIMS);
		shape[(*ndim)++] = (int64_t)json_array_size(x);
		*numel *= (int64_t)json_array_size(x);
		if (!json_array_size(x))
			break;
		x = json_array_get(x, 0);
	}
	return LX_OK;
}

/* Element at (into c->buf at index i) of dtype from the JSON number, boolean or null (NaN) v. */
static lx_status put_elem(cat *c, lx_dtype dt, int64_t i, const json_t *v, const char *key, lx_err *e)
{
	unsigned char *p = c->buf + (size_t)i * lx_dtype_size(dt);
	double d;
	long long n;
	union { float f; double d; int64_t l; int32_t i; int16_t s; uint16_t h; } u;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
		d = (double)n;
	} else if (json_is_real(v)) {
		d = json_real_value(v);
		n = (long long)d;
		if (!lx_dtype_is_float(dt) && dt != LX_BOOL)
			return lx_errf(e, LX_EINPUT, "field %s: element %lld is %g, not a whole number for %s", key, (long long)i,
			               d, lx_dtype_numpy(dt));
	} else if (json_is_boolean(v)) {
		n = json_is_true(v);
		d = (double)n;
	} else if (json_is_null(v) && lx_dtype_is_float(dt)) {
		d = (double)NAN;
		n = 0;
	} else
		return lx_errf(e, LX_EINPUT, "field %s: element %lld is not a number", key, (long long)i);
	switch (dt) {
	case LX_F32: u.f = (float)d; memcpy(p, &u.f, 4); return LX_OK;
	case LX_F16: u.h = lx_float_to_half((float)d); memcpy(p, &u.h, 2); return LX_OK;
	case LX_F64: memcpy(p, &d, 8); return LX_OK;
	case LX_BOOL: *p = d != 0; return LX_OK;
	default: break;
	}
	if ((dt == LX_I32 && (n < INT32_MIN || n > INT32_MAX)) || (dt == LX_I16 && (n < INT16_MIN || n > INT16_MAX)) ||
	    (dt == LX_I8 && (n < -128 || n > 127)) || (dt == LX_U8 && (n < 0 || n > 255)))
		return lx_errf(e, LX_EINPUT, "field %s: element %lld, %lld, is out of the range of %s", key, (long long)i, n,
		               lx_dtype_numpy(dt));
	switch (dt) {
	case LX_I64: u.l = n; memcpy(p, &u.l, 8); break;
	case LX_I32: u.i = (int32_t)n; memcpy(p, &u.i, 4); break;
	case LX_I16: u.s = (int16_t)n; memcpy(p, &u.s, 2); break;
	case LX_I8: *p = (unsigned char)(signed char)n; break;
	default: *p = (unsigned char)n; break;
	}
	return LX_OK;
}

/* Walks nested lists j of the shape, dimension d, putting the elements in order. */
static lx_status put_nested(cat *c, lx_dtype dt, const json_t *j, const int64_t *shape, int ndim, int d, int64_t *at,
                            const char *key, lx_err *e)
{
	size_t i;
	lx_status rc;

	if (d == ndim)
		return put_elem(c, dt, (*at)++, j, key, e);
	if (!json_is_array(j) || (int64_t)json_array_size(j) != shape[d])
		return lx_errf(e, LX_EINPUT, "field %s: data is not a regular array of shape [%lld, ...] at dimension %d", key,
		               (long long)shape[0], d);
	for (i = 0; i < json_array_size(j); i++)
		if ((rc = put_nested(c, dt, json_array_get(j, i), shape, ndim, d + 1, at, key, e)))
			return rc;
	return LX_OK;
}

/* data (nested lists of the given shape, or a flat list of its elements) as a tensor field. */
static lx_status add_tensor(cat *c, lx_record *rec, const char *key, lx_dtype dt, const int64_t *shape, int ndim,
                            const json_t *data, lx_err *e)
{
	int64_t numel = 1, at = 0, dshape[LX_MAX_DIMS];
	int dn, i;
	size_t need, k;
	lx_status rc;

	for (i = 0; i < ndim; i++)
		numel *= shape[i];
	need = (size_t)numel * lx_dtype_size(dt) + 1;
	if (need > c->buf_cap) {
		free(c->buf);
		c->buf_cap = (c->buf = malloc(need)) ? need : 0;
		if (!c->buf)
			return lx_errf(e, LX_EIO, "out of memory");
	}
	if ((rc = list_shape(data, dshape, &dn, &at, key, e)))
		return rc;
	at = 0;
	if (dn == 1 && ndim != 1 && (int64_t)json_array_size(data) == numel) { /* flat, row-major */
		for (k = 0; k < json_array_size(data); k++)
			if ((rc = put_elem(c, dt, (int64_t)k, json_array_get(data, k), key, e)))
				return rc;
	} else if ((rc = put_nested(c, dt, data, shape, ndim, 0, &at, key, e)))
		return rc;
	return lx_record_add_tensor(rec, key, dt, ndim, shape, c->buf) ? lx_errf(e, LX_EIO, "out of memory") : LX_OK;
}

/* An object with exactly the keys dtype, shape and data: a tensor. */
static lx_status tensor_object(cat *c, lx_record *rec, const char *key, const json_t *o, lx_err *e)
{
	const json_t *dt = json_object_get(o, "dtype"), *sh = json_object_get(o, "shape"), *x;
	int64_t shape[LX_MAX_DIMS], numel = 1;
	int d;
	size_t i;

	if (!json_is_string(dt) || (d = dtype_of(json_string_value(dt))) < 0)
		return lx_errf(e, LX_EINPUT, "field %s: dtype is not one of <f4, <f2, <f8, <i4, <i8, <i2, |i1, |u1, |b1", key);
	if (!json_is_array(sh) || json_array_size(sh) > LX_MAX_DIMS)
		return lx_errf(e, LX_EINPUT, "field %s: shape is not a list of at most %d sizes", key, LX_MAX_DIMS);
	json_array_foreach(sh, i, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1LL << 31) ||
		    (json_integer_value(x) && numel > (1LL << 40) / json_integer_value(x)))
			return lx_errf(e, LX_EINPUT, "field %s: shape item %zu is not a size from 0 to 2^31 (at most 2^40 "
			               "elements in all)", key, i);
		shape[i] = json_integer_value(x);
		numel *= shape[i];
	}
	if (!json_object_get(o, "data"))
		return lx_errf(e, LX_EINPUT, "field %s: a tensor without its data (write the records with lx-cat --full)", key);
	return add_tensor(c, rec, key, (lx_dtype)d, shape, (int)json_array_size(sh), json_object_get(o, "data"), e);
}

/* An object with the keys dtype and shape and no other but data: a tensor (without data, a summary). */
static int is_tensor_object(const json_t *o)
{
	return json_is_object(o) && json_object_get(o, "dtype") && json_object_get(o, "shape") &&
	       json_object_size(o) == (json_object_get(o, "data") ? 3u : 2u);
}

/* The --tensor dtype of field key, or -1. */
static int tensor_opt_of(const cat *c, const char *key)
{
	int i;

	for (i = 0; i < c->ntens; i++)
		if (!strcmp(c->tens[i].key, key))
			return (int)c->tens[i].dtype;
	return -1;
}

/* One JSON line as a record. */
static lx_status from_line(cat *c, lx_record *rec, const char *line, size_t len, lx_err *e)
{
	json_error_t je;
	json_t *root, *x;
	const char *k;
	lx_status rc = LX_OK;
	int dt;

	if (!(root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je)))
		return lx_errf(e, LX_EINPUT, "not JSON: %s (column %d)", je.text, je.column);
	if (!json_is_object(root))
		rc = lx_errf(e, LX_EINPUT, "a JSON value that is not an object");
	else if (depth(root) > MAX_DEPTH)
		rc = lx_errf(e, LX_EINPUT, "nested deeper than %d levels (the stream's limit)", MAX_DEPTH);
	json_object_foreach(root, k, x) {
		int64_t shape[LX_MAX_DIMS], numel;
		int nd;
		if (rc)
			break;
		if (is_tensor_object(x))
			rc = tensor_object(c, rec, k, x, e);
		else if ((dt = tensor_opt_of(c, k)) >= 0 && json_is_array(x)) {
			if (!(rc = list_shape(x, shape, &nd, &numel, k, e)))
				rc = add_tensor(c, rec, k, (lx_dtype)dt, shape, nd, x, e);
		} else {
			msgpack_packer *pk = lx_record_add_packer(rec, k);
			if (!pk)
				rc = lx_errf(e, LX_EIO, "out of memory");
			else
				lx_json_pack(pk, x);
		}
	}
	json_decref(root);
	return rc;
}

/* The next line of f into c->line (without its newline): 1, 0 at the end, -1 when it is longer than
 * c->max_line (the rest of it is skipped), -2 on a read error. */
static int read_line(cat *c, FILE *f, size_t *len, unsigned long long *bytes)
{
	size_t n = 0;
	int ch, over = 0;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (n < c->max_line)
			c->line[n++] = (char)ch;
		else
			over = 1;
		(*bytes)++;
	}
	if (ch == '\n')
		(*bytes)++;
	if (ch == EOF && ferror(f))
		return -2;
	if (ch == EOF && n == 0 && !over)
		return 0;
	*len = n;
	return over ? -1 : 1;
}

static int blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static int to_stream(cat *c, int keep_going, int progress)
{
	tool_run t;
	lx_record *rec;
	lx_err err = {0, ""};
	lx_status rc = LX_OK;
	size_t len;
	long lineno = 0;
	int got;

	if (tool_run_init(&t, NULL, "stdin", 1, keep_going, progress) || !(c->line = malloc(c->max_line + 1)))
		rc = lx_errf(&err, LX_EIO, "out of memory");
	t.unit = "lines";
	t.prog.total = tool_input_size(stdin);
	while (!rc && !tool_interrupted()) {
		got = read_line(c, stdin, &len, &t.bytes);
		if (got == 0)
			break;
		lineno++;
		if (got == -2) {
			if (!tool_interrupted())
				rc = lx_errf(&err, LX_EIO, "stdin: %s", strerror(errno));
			break;
		}
		if (got > 0 && blank(c->line, len))
			continue;
		if (!(rec = lx_record_new())) {
			rc = lx_errf(&err, LX_EIO, "out of memory");
			break;
		}
		if (got < 0)
			rc = lx_errf(&err, LX_EINPUT, "line longer than %zu bytes (--max-line)", c->max_line);
		else
			rc = from_line(c, rec, c->line, len, &err);
		if (rc) {
			char msg[sizeof err.msg];
			memcpy(msg, err.msg, sizeof msg);
			snprintf(err.msg, sizeof err.msg, "stdin: line %ld: %.400s", lineno, msg);
			lx_record_free(rec);
			rec = NULL;
			if (rc == LX_EINPUT && keep_going)
				rc = tool_refuse_new(&t, &rec, rc, &err);
		}
		if (!rc)
			rc = lx_writer_put(t.wr, rec, &err);
		lx_record_free(rec);
		if (!rc)
			tool_done(&t, 1);
	}
	return tool_end(&t, rc, &err);
}

/* ---- the command line ---- */

static void add_tensor_opt(cat *c, const char *arg)
{
	const char *eq = strrchr(arg, '=');
	tensor_opt *t;
	int d;

	if (!eq || eq == arg || (d = dtype_of(eq + 1)) < 0)
		tool_usage("--tensor takes KEY=DTYPE with a DTYPE such as <f4 or float32, not '%s'", arg);
	if (!(t = realloc(c->tens, (size_t)(c->ntens + 1) * sizeof *t)) || !(t[c->ntens].key = strndup(arg, (size_t)(eq - arg))))
		tool_die(LX_EIO, "out of memory");
	t[c->ntens++].dtype = (lx_dtype)d;
	c->tens = t;
}

int main(int argc, char **argv)
{
	cat c;
	int ch, reverse = 0, keep_going = 0, progress = 0, rc, i;

	memset(&c, 0, sizeof c);
	c.max_line = (size_t)16 << 20;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case O_FULL: c.full = 1; break;
		case 'r': reverse = 1; break;
		case O_TENSOR: add_tensor_opt(&c, optarg); break;
		case O_MAX_LINE: c.max_line = (size_t)tool_long(optarg, "--max-line", 1024, 1L << 30); break;
		case TOOL_KEEP_GOING: keep_going = 1; break;
		case TOOL_PROGRESS: progress = 1; break;
		}
	}
	tool_no_operands(argc);
	if (!reverse && (c.ntens || c.max_line != (size_t)16 << 20))
		tool_usage("--tensor and --max-line go with -r");
	if (reverse && c.full)
		tool_usage("--full goes without -r (the JSON read back may hold tensors in full or not)");
	tool_signals(NULL);
	rc = reverse ? to_stream(&c, keep_going, progress) : to_json(&c, keep_going, progress);
	for (i = 0; i < c.ntens; i++)
		free(c.tens[i].key);
	free(c.tens);
	free(c.line);
	free(c.buf);
	return rc;
}

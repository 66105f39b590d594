/* json.c - JSON output: one string escaper for every JSON liblx and the tools write, numbers that read back
 * exactly, and a record as one JSON object (lx-head --json); and JSON objects read into records. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lx_fmt.h"

const char *lx_json_escape(unsigned char c, int flags, char *buf)
{
	if (c == '"' || c == '\\') {
		buf[0] = '\\';
		buf[1] = (char)c;
		buf[2] = 0;
		return buf;
	}
	if ((flags & LX_JSON_SHORT) && (c == '\n' || c == '\t' || c == '\r'))
		return c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r";
	if (c < 0x20 || ((flags & LX_JSON_SCRIPT) && (c == '<' || c == '>' || c == '&'))) {
		snprintf(buf, 8, "\\u%04x", c);
		return buf;
	}
	return NULL;
}

void lx_json_str(FILE *f, const char *s, size_t n, int flags)
{
	char buf[8];
	const char *esc;
	size_t i;

	fputc('"', f);
	for (i = 0; i < n; i++)
		if ((esc = lx_json_escape((unsigned char)s[i], flags, buf)))
			fputs(esc, f);
		else
			fputc(s[i], f);
	fputc('"', f);
}

/* v in the fewest digits that read back the same, into s[40]; "null" for NaN and the infinities. */
static const char *num_text(char *s, double v, int single)
{
	int prec;

	if (!isfinite(v))
		return "null";
	for (prec = single ? 6 : 15; prec < 17; prec++) {
		snprintf(s, 40, "%.*g", prec, v);
		if (single ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v)
			break;
	}
	if (prec == 17)
		snprintf(s, 40, "%.17g", v);
	return s;
}

void lx_json_num(FILE *f, double v, int single)
{
	char s[40];

	fputs(num_text(s, v, single), f);
}

/* Bytes as a base64 JSON string, in pieces of 3072 bytes (4096 characters). */
static void json_b64(FILE *f, const unsigned char *p, size_t n)
{
	char s[4096];
	size_t i, k;

	fputc('"', f);
	for (i = 0; i < n; i += k) {
		k = n - i < 3072 ? n - i : 3072;
		lx_base64_encode(p + i, k, s);
		fwrite(s, 1, lx_base64_len(k), f);
	}
	fputc('"', f);
}

/* A field's key as text: str and bin as their bytes up to the first NUL, integers in decimal, else "". */
static const char *key_text(const msgpack_object *k, char *dst, size_t n)
{
	if (k->type != MSGPACK_OBJECT_BIN)
		return lx_object_text(k, dst, n);
	snprintf(dst, n, "%.*s", (int)k->via.bin.size, k->via.bin.ptr);
	return dst;
}

/* A map key as a JSON string: str and bin as their bytes, integers in decimal, anything else as "". */
static void json_key(FILE *f, const msgpack_object *k)
{
	char ks[64];

	if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN)
		lx_json_str(f, k->via.str.ptr, k->via.str.size, LX_JSON_SHORT);
	else
		lx_json_str(f, ks, strlen(lx_object_text(k, ks, sizeof ks)), LX_JSON_SHORT);
}

/* A float that reads back as a float, not an integer: "1" becomes "1.0". */
static void json_float(FILE *f, double v, int single)
{
	char s[40];
	const char *t = num_text(s, v, single);

	fputs(t, f);
	if (!strpbrk(t, ".en")) /* not "null", and no point or exponent */
		fputs(".0", f);
}

/* A value as JSON; with typed, floats keep a point or an exponent (lx_json_record's summary and full). */
static void value(FILE *f, const msgpack_object *o, int typed)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL: fputs("null", f); break;
	case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%llu", (unsigned long long)o->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%lld", (long long)o->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (typed)
			json_float(f, o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32);
		else
			lx_json_num(f, o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32);
		break;
	case MSGPACK_OBJECT_STR: lx_json_str(f, o->via.str.ptr, o->via.str.size, LX_JSON_SHORT); break;
	case MSGPACK_OBJECT_BIN: json_b64(f, (const unsigned char *)o->via.bin.ptr, o->via.bin.size); break;
	case MSGPACK_OBJECT_EXT: json_b64(f, (const unsigned char *)o->via.ext.ptr, o->via.ext.size); break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (i = 0; i < o->via.array.size; i++) {
			if (i)
				fputs(", ", f);
			value(f, &o->via.array.ptr[i], typed);
		}
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', f);
		for (i = 0; i < o->via.map.size; i++) {
			if (i)
				fputs(", ", f);
			json_key(f, &o->via.map.ptr[i].key);
			fputs(": ", f);
			value(f, &o->via.map.ptr[i].val, typed);
		}
		fputc('}', f);
		break;
	}
}

void lx_json_value(FILE *f, const msgpack_object *o) { value(f, o, 0); }

/* ---- a record as one JSON object ---- */

struct lx_json {
	FILE *mem;          /* the record packed again, to walk its fields in order */
	char *mem_buf;
	size_t mem_len;
	lx_writer *w;
	void *tens;         /* a tensor's values as float or int32 */
	size_t tens_cap;
};

lx_json *lx_json_new(void)
{
	lx_json *j = calloc(1, sizeof *j);

	if (!j)
		return NULL;
	if (!(j->mem = open_memstream(&j->mem_buf, &j->mem_len)) || !(j->w = lx_writer_new(j->mem, "memory"))) {
		lx_json_free(j);
		return NULL;
	}
	return j;
}

void lx_json_free(lx_json *j)
{
	if (!j)
		return;
	lx_writer_free(j->w);
	if (j->mem)
		fclose(j->mem);
	free(j->mem_buf);
	free(j->tens);
	free(j);
}

/* A tensor as nested JSON lists, dimension by dimension. */
static void json_nested(FILE *f, const lx_tensor *t, const void *data, int fl, int d, size_t *at)
{
	int64_t i;

	if (d == t->ndim) {
		if (fl)
			lx_json_num(f, ((const float *)data)[*at], 1);
		else
			fprintf(f, "%d", ((const int32_t *)data)[*at]);
		(*at)++;
		return;
	}
	fputc('[', f);
	for (i = 0; i < t->shape[d]; i++) {
		if (i)
			fputs(", ", f);
		json_nested(f, t, data, fl, d + 1, at);
	}
	fputc(']', f);
}

/* Element i of t's data (unaligned) as JSON, exactly: floats in the fewest digits that read back the same. */
static void json_elem(FILE *f, const lx_tensor *t, int64_t i)
{
	const unsigned char *p = (const unsigned char *)t->data + (size_t)i * lx_dtype_size(t->dtype);
	union { float f; double d; int64_t l; int32_t i; int16_t s; uint16_t h; } u;

	switch (t->dtype) {
	case LX_F32: memcpy(&u.f, p, 4); lx_json_num(f, u.f, 1); break;
	case LX_F16: memcpy(&u.h, p, 2); lx_json_num(f, lx_half_to_float(u.h), 1); break;
	case LX_BF16: memcpy(&u.h, p, 2); lx_json_num(f, lx_bf16_to_float(u.h), 1); break;
	case LX_F64: memcpy(&u.d, p, 8); lx_json_num(f, u.d, 0); break;
	case LX_I64: memcpy(&u.l, p, 8); fprintf(f, "%lld", (long long)u.l); break;
	case LX_I32: memcpy(&u.i, p, 4); fprintf(f, "%d", (int)u.i); break;
	case LX_I16: memcpy(&u.s, p, 2); fprintf(f, "%d", (int)u.s); break;
	case LX_I8: fprintf(f, "%d", (int)(signed char)*p); break;
	case LX_U8: fprintf(f, "%d", (int)*p); break;
	case LX_BOOL: fputs(*p ? "true" : "false", f); break;
	}
}

static void json_exact(FILE *f, const lx_tensor *t, int d, int64_t *at)
{
	int64_t i;

	if (d == t->ndim) {
		json_elem(f, t, (*at)++);
		return;
	}
	fputc('[', f);
	for (i = 0; i < t->shape[d]; i++) {
		if (i)
			fputs(", ", f);
		json_exact(f, t, d + 1, at);
	}
	fputc(']', f);
}

/* A tensor as {"dtype": numpy's string, "shape": [...]} and, when full, "data": its values as nested lists. */
static lx_status json_described(FILE *f, const lx_record *rec, const char *key, int full, lx_err *e)
{
	lx_tensor t;
	int64_t at = 0;
	int d;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, key, &t, NULL, e)))
		return rc;
	if (!f)
		return LX_OK;
	fprintf(f, "{\"dtype\": \"%s\", \"shape\": [", lx_dtype_numpy(t.dtype));
	for (d = 0; d < t.ndim; d++)
		fprintf(f, "%s%lld", d ? ", " : "", (long long)t.shape[d]);
	fputc(']', f);
	if (full) {
		fputs(", \"data\": ", f);
		json_exact(f, &t, 0, &at);
	}
	fputc('}', f);
	return LX_OK;
}

static int is_tensor(const msgpack_object *v)
{
	uint32_t i;

	if (v->type != MSGPACK_OBJECT_MAP)
		return 0;
	for (i = 0; i < v->via.map.size; i++) {
		const msgpack_object *k = &v->via.map.ptr[i].key;
		if ((k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) && k->via.str.size == 2 &&
		    memcmp(k->via.str.ptr, "nd", 2) == 0)
			return 1;
	}
	return 0;
}

/* Converts tensor field key into j->tens and, if f is not NULL, writes it there as nested JSON lists. */
static lx_status json_tensor(lx_json *j, FILE *f, const lx_record *rec, const char *key, lx_err *e)
{
	lx_tensor t;
	size_t at = 0, need;
	int fl;
	lx_status rc;

	if ((rc = lx_record_tensor(rec, key, &t, NULL, e)))
		return rc;
	fl = lx_dtype_is_float(t.dtype);
	need = (size_t)(t.numel ? t.numel : 1) * 4;
	if (need > j->tens_cap) {
		free(j->tens);
		j->tens_cap = (j->tens = malloc(need)) ? need : 0;
		if (!j->tens)
			return lx_errf(e, LX_EIO, "out of memory");
	}
	if ((rc = fl ? lx_tensor_to_f32(&t, j->tens, key, e) : lx_tensor_to_i32(&t, j->tens, key, e)))
		return rc;
	if (f)
		json_nested(f, &t, j->tens, fl, 0, &at);
	return LX_OK;
}

/* A tensor field v in the way tensors asks (f NULL: only checked). An error record's tensor that cannot be
 * read (it may be what was wrong with the record) is written as the map it is, with LX_JSON_SUMMARY and
 * LX_JSON_FULL. */
static lx_status json_field_tensor(lx_json *j, FILE *f, const lx_record *rec, const char *key,
                                   const msgpack_object *v, int tensors, lx_err *e)
{
	lx_tensor t;
	lx_err ignored;

	if (tensors == LX_JSON_LISTS)
		return json_tensor(j, f, rec, key, e);
	if (lx_record_is_error(rec) && lx_record_tensor(rec, key, &t, NULL, &ignored)) {
		if (f)
			value(f, v, 1);
		return LX_OK;
	}
	return json_described(f, rec, key, tensors == LX_JSON_FULL, e);
}

lx_status lx_json_record(lx_json *j, FILE *f, const lx_record *rec, int tensors, lx_err *e)
{
	msgpack_unpacked up;
	size_t off = 0;
	uint32_t i, n = 0;
	lx_status rc = LX_OK;
	char key[256];
	int typed = tensors == LX_JSON_SUMMARY || tensors == LX_JSON_FULL;

	if (fseeko(j->mem, 0, SEEK_SET) || lx_writer_put(j->w, rec, e) || lx_writer_flush(j->w, e))
		return lx_errf(e, LX_EIO, "out of memory");
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, j->mem_buf, j->mem_len, &off) != MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&up);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	/* a tensor that cannot be converted is found before anything of the line is written */
	for (i = 0; tensors && i < up.data.via.map.size && !rc; i++)
		if (is_tensor(&up.data.via.map.ptr[i].val))
			rc = json_field_tensor(j, NULL, rec, key_text(&up.data.via.map.ptr[i].key, key, sizeof key),
			                       &up.data.via.map.ptr[i].val, tensors, e);
	if (rc) {
		msgpack_unpacked_destroy(&up);
		return rc;
	}
	fputc('{', f);
	for (i = 0; i < up.data.via.map.size && !rc; i++) {
		const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
		if (is_tensor(v) && !tensors)
			continue;
		key_text(k, key, sizeof key);
		fputs(n++ ? ", " : "", f);
		if (typed)
			json_key(f, k); /* the whole key, as in the record */
		else
			lx_json_str(f, key, strlen(key), LX_JSON_SHORT);
		fputs(": ", f);
		if (is_tensor(v))
			rc = json_field_tensor(j, f, rec, key, v, tensors, e);
		else
			value(f, v, typed);
	}
	fputs("}\n", f);
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* ---- JSON input: as msgpack, and objects into records ---- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void lx_json_pack(msgpack_packer *pk, const struct json_t *j)
{
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, k, x) {
			pack_str(pk, k, strlen(k));
			lx_json_pack(pk, x);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, x)
			lx_json_pack(pk, x);
		break;
	case JSON_STRING: pack_str(pk, json_string_value(j), json_string_length(j)); break;
	case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
	case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
	case JSON_TRUE: msgpack_pack_true(pk); break;
	case JSON_FALSE: msgpack_pack_false(pk); break;
	case JSON_NULL: msgpack_pack_nil(pk); break;
	}
}

lx_status lx_json_fields(lx_record *rec, struct json_t *obj)
{
	const char *k;
	json_t *x;

	json_object_foreach(obj, k, x) {
		msgpack_packer *pk = lx_record_add_packer(rec, k);
		if (!pk)
			return LX_EIO;
		lx_json_pack(pk, x);
	}
	return LX_OK;
}

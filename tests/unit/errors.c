/* Unit tests of the stream's fault handling (lx.h): error records (set, detect, revert what a tool added),
 * the reader's resumable errors and byte offsets. The bytes are written out by hand from the msgpack spec. */
#include <stdio.h>
#include <string.h>

#include "lx.h"
#include "check.h"

/* A reader of the bytes b[0..n) (through *f, to be closed after the reader is freed). */
static lx_reader *reader(const void *b, size_t n, FILE **f)
{
	*f = fmemopen((void *)b, n, "rb");
	return lx_reader_new(*f, "mem");
}

/* {"a": 1} then [1, 2] (no map) then {"b": "x"} */
static const unsigned char three[] = {0x81, 0xa1, 'a', 0x01, 0x92, 0x01, 0x02, 0x81, 0xa1, 'b', 0xa1, 'x'};

static void resumable(void)
{
	FILE *f;
	lx_reader *r = reader(three, sizeof three, &f);
	lx_record *rec;
	lx_err e;

	CHECK(lx_reader_next(r, &rec, &e) == LX_OK && rec);
	CHECK(lx_reader_offset(r) == 4);
	lx_record_free(rec);
	CHECK(lx_reader_next(r, &rec, &e) == LX_EINPUT && !rec);
	CHECK(strcmp(e.msg, "mem: record 2: a msgpack array, expected a map") == 0);
	CHECK(lx_reader_resumable(r));
	CHECK(lx_reader_offset(r) == 7);
	CHECK(lx_reader_next(r, &rec, &e) == LX_OK && rec && lx_record_get(rec, "b"));
	CHECK(!lx_reader_resumable(r));
	lx_record_free(rec);
	CHECK(lx_reader_next(r, &rec, &e) == LX_OK && !rec);
	lx_reader_free(r);
	fclose(f);
}

static void not_resumable(void)
{
	static const unsigned char bad[] = {0x81, 0xa1, 'a', 0x01, 0xc1, 0x81};           /* 0xc1: never used */
	static const unsigned char cut[] = {0x81, 0xa1, 'a', 0x01, 0x82, 0xa1, 'b'};       /* ends inside */
	static const unsigned char huge[] = {0x81, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xff}; /* a 4 GiB bin */
	const unsigned char *in[] = {bad, cut, huge};
	size_t len[] = {sizeof bad, sizeof cut, sizeof huge}, i;
	const char *msg[] = {"mem: record 2: not valid msgpack", "mem: record 2: the stream ends inside the record",
	                     "mem: record 1: larger than 268435456 bytes"};

	for (i = 0; i < 3; i++) {
		FILE *f;
		lx_reader *r = reader(in[i], len[i], &f);
		lx_record *rec;
		lx_err e;
		lx_status st;
		while ((st = lx_reader_next(r, &rec, &e)) == LX_OK && rec)
			lx_record_free(rec);
		CHECK(st == LX_EINPUT);
		CHECK(strcmp(e.msg, msg[i]) == 0);
		CHECK(!lx_reader_resumable(r));
		lx_reader_free(r);
		fclose(f);
	}
}

/* Writes rec to a buffer and compares with want. */
static int wire_is(const lx_record *rec, const unsigned char *want, size_t n)
{
	char buf[256];
	FILE *f = fmemopen(buf, sizeof buf, "wb");
	lx_writer *w = lx_writer_new(f, "mem");
	lx_err e;
	long got;
	int ok;

	ok = lx_writer_put(w, rec, &e) == LX_OK && lx_writer_flush(w, &e) == LX_OK;
	got = ftell(f);
	lx_writer_free(w);
	fclose(f);
	return ok && got == (long)n && memcmp(buf, want, n) == 0;
}

static void error_records(void)
{
	/* {"a": 1, "b": "x"}: a replaced, b removed, c added, then reverted and marked */
	static const unsigned char in[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0xa1, 'x'};
	static const unsigned char out[] = {0x83, 0xa1, 'a', 0x01, 0xa1, 'b', 0xa1, 'x',
	                                    0xa5, 'e', 'r', 'r', 'o', 'r', 0xa4, 'o', 'o', 'p', 's'};
	static const unsigned char alone[] = {0x81, 0xa5, 'e', 'r', 'r', 'o', 'r', 0xa1, 'z'};
	FILE *f;
	lx_reader *r = reader(in, sizeof in, &f);
	lx_record *rec;
	lx_err e;

	CHECK(lx_reader_next(r, &rec, &e) == LX_OK && rec);
	CHECK(!lx_record_is_error(rec));
	lx_record_add_int(rec, "a", 7);
	lx_record_remove(rec, "b");
	lx_record_add_str(rec, "c", "new", 3);
	lx_record_revert(rec);
	CHECK(lx_record_get(rec, "a")->via.u64 == 1 && lx_record_get(rec, "b") && !lx_record_get(rec, "c"));
	CHECK(lx_record_set_error(rec, "oops") == LX_OK);
	CHECK(lx_record_is_error(rec));
	CHECK(wire_is(rec, out, sizeof out));
	lx_record_free(rec);
	lx_reader_free(r);
	fclose(f);

	rec = lx_record_error_new("z");
	CHECK(rec && lx_record_is_error(rec) && wire_is(rec, alone, sizeof alone));
	lx_record_free(rec);
	rec = lx_record_new();
	lx_record_add_int(rec, "error", 3); /* not a str: an ordinary field */
	CHECK(!lx_record_is_error(rec));
	lx_record_free(rec);
}

int main(void)
{
	resumable();
	not_resumable();
	error_records();
	return check_done("errors");
}

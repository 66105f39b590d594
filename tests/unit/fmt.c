/* Unit tests of lib/fmt/: base64 (RFC 4648 section 10 vectors), .npy (files numpy 1.24 wrote), zip (an
 * archive Python's zipfile wrote). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_fmt.h"
#include "fmt/npy.h"
#include "fmt/zip.h"
#include "check.h"

static const char *b64_enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

static void base64_decode_vectors(void)
{
	char out[16];
	size_t bad, i;

	for (i = 0; i < 7; i++) {
		long n = lx_base64_decode(b64_enc[i], strlen(b64_enc[i]), out, &bad);
		CHECK(n == (long)i);
		CHECK(lx_base64_size(b64_enc[i], strlen(b64_enc[i])) == i);
		CHECK(n >= 0 && memcmp(out, "foobar", i) == 0);
	}
	/* every byte value survives: "AAECA/7/" is 00 01 02 03 fe ff */
	CHECK(lx_base64_decode("AAECA/7/", 8, out, &bad) == 6);
	CHECK(memcmp(out, "\0\1\2\3\376\377", 6) == 0);
}

static void base64_decode_errors(void)
{
	char out[16];
	size_t bad = 99;

	CHECK(lx_base64_decode("Zm9", 3, out, &bad) == -1 && bad == 3);
	CHECK(lx_base64_decode("Zm*v", 4, out, &bad) == -1 && bad == 2);
	CHECK(lx_base64_decode("Zm9vZm-v", 8, out, &bad) == -1 && bad == 6);
	CHECK(lx_base64_decode("Z===", 4, out, &bad) == -1 && bad == 1);
	CHECK(lx_base64_decode("Zg=a", 4, out, &bad) == -1 && bad == 2); /* "=" before data */
	CHECK(lx_base64_decode("Zg==Zm9v", 8, out, &bad) == -1 && bad == 2); /* padding only at the end */
	CHECK(lx_base64_decode("Zm9v\n", 5, out, &bad) == -1);
}

static void base64_encode_vectors(void)
{
	char buf[16], *s;
	size_t i;
	lx_err e;

	for (i = 0; i < 7; i++) {
		CHECK(lx_base64_len(i) == strlen(b64_enc[i]));
		memset(buf, '#', sizeof buf);
		lx_base64_encode("foobar", i, buf);
		CHECK(memcmp(buf, b64_enc[i], strlen(b64_enc[i])) == 0 && buf[strlen(b64_enc[i])] == '#');
		CHECK(lx_base64((const unsigned char *)"foobar", i, &s, &e) == LX_OK && strcmp(s, b64_enc[i]) == 0);
		free(s);
	}
	lx_base64_encode("\0\1\2\3\376\377", 6, buf);
	CHECK(memcmp(buf, "AAECA/7/", 8) == 0);
}

/* The 10 bytes and padded header np.save writes for a header dict: spaces and '\n' to 128 bytes. */
static size_t npy_head(unsigned char *b, const char *dict)
{
	size_t n = strlen(dict);

	memcpy(b, "\x93NUMPY\x01\x00\x76\x00", 10);
	memcpy(b + 10, dict, n);
	memset(b + 10 + n, ' ', 117 - n);
	b[127] = '\n';
	return 128;
}

static void npy_parse(void)
{
	/* np.save(f, np.arange(6, dtype='<i2').reshape(2, 3)) */
	unsigned char b[160];
	size_t n = npy_head(b, "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }"), off = 0;
	int16_t v[6];
	lx_tensor t;
	lx_err e;
	int obj = -1;

	memcpy(b + n, "\0\0\1\0\2\0\3\0\4\0\5\0", 12);
	CHECK(lx_npy_parse(b, n + 12, "a.npy", &t, &obj, &off, &e) == LX_OK);
	CHECK(obj == 0 && t.dtype == LX_I16 && t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3 && t.numel == 6);
	memcpy(v, t.data, sizeof v);
	CHECK(t.data == b + 128 && v[0] == 0 && v[5] == 5);
	CHECK(lx_npy_parse(b, n + 11, "a.npy", &t, &obj, &off, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "a.npy: .npy data holds 11 bytes, its shape and dtype need 12") == 0);
	/* np.save(f, np.array({'a': 1}, dtype=object)): the pickle follows the header */
	n = npy_head(b, "{'descr': '|O', 'fortran_order': False, 'shape': (), }");
	CHECK(lx_npy_parse(b, n + 2, "o.npy", &t, &obj, &off, &e) == LX_OK && obj == 1 && off == 128);
	n = npy_head(b, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }");
	CHECK(lx_npy_parse(b, n + 4, "b.npy", &t, &obj, &off, &e) == LX_EINPUT);
	n = npy_head(b, "{'descr': '<u1', 'fortran_order': False, 'shape': (1,), }"); /* numpy writes |u1 */
	CHECK(lx_npy_parse(b, n + 1, "u.npy", &t, &obj, &off, &e) == LX_EINPUT);
	n = npy_head(b, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }");
	CHECK(lx_npy_parse(b, n + 16, "f.npy", &t, &obj, &off, &e) == LX_EINPUT);
	CHECK(lx_npy_parse(b, 9, "s.npy", &t, &obj, &off, &e) == LX_EINPUT);
}

static void npy_write(void)
{
	/* np.save(f, np.array([1.5, -2], dtype='<f4')): 136 bytes */
	static const float v[2] = {1.5f, -2.0f};
	static const int64_t shape[1] = {2};
	unsigned char want[136], got[200];
	char path[] = "/tmp/lx-test-npy-XXXXXX";
	int fd = mkstemp(path);
	size_t n = npy_head(want, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }");
	FILE *f;
	lx_err e;

	memcpy(want + n, "\0\0\300\77\0\0\0\300", 8);
	CHECK(fd >= 0);
	close(fd);
	CHECK(lx_npy_write(path, v, 1, shape, &e) == LX_OK);
	CHECK((f = fopen(path, "rb")) && fread(got, 1, sizeof got, f) == sizeof want && memcmp(got, want, sizeof want) == 0);
	if (f)
		fclose(f);
	unlink(path);
}

/* zipfile.ZipFile: s.txt stored ("hello"), d.txt deflated ("ab" * 40); dates 2020-01-01. */
static const char zip206[] =
	"\x50\x4b\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x50\x86\xa6\x10\x36\x05\x00\x00\x00\x05\x00"
	"\x00\x00\x05\x00\x00\x00\x73\x2e\x74\x78\x74\x68\x65\x6c\x6c\x6f\x50\x4b\x03\x04\x14\x00\x00\x00"
	"\x08\x00\x00\x00\x21\x50\x60\x0c\x01\x50\x07\x00\x00\x00\x50\x00\x00\x00\x05\x00\x00\x00\x64\x2e"
	"\x74\x78\x74\x4b\x4c\x4a\xa4\x2a\x04\x00\x50\x4b\x01\x02\x14\x03\x14\x00\x00\x00\x00\x00\x00\x00"
	"\x21\x50\x86\xa6\x10\x36\x05\x00\x00\x00\x05\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	"\x00\x00\x80\x01\x00\x00\x00\x00\x73\x2e\x74\x78\x74\x50\x4b\x01\x02\x14\x03\x14\x00\x00\x00\x08"
	"\x00\x00\x00\x21\x50\x60\x0c\x01\x50\x07\x00\x00\x00\x50\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00"
	"\x00\x00\x00\x00\x00\x80\x01\x28\x00\x00\x00\x64\x2e\x74\x78\x74\x50\x4b\x05\x06\x00\x00\x00\x00"
	"\x02\x00\x02\x00\x66\x00\x00\x00\x52\x00\x00\x00\x00\x00";

static void zip_read(void)
{
	unsigned char b[206], out[80];
	const lx_zip_entry *s, *d;
	const unsigned char *p;
	size_t n;
	lx_zip z;
	lx_err e;
	int i;

	memcpy(b, zip206, sizeof b);
	CHECK(lx_zip_init(&z, b, sizeof b, "a.zip", "zip entry", LX_EINPUT, &e) == LX_OK && z.n == 2);
	CHECK((s = lx_zip_find(&z, "s.txt")) && s->method == 0 && s->usize == 5 && s->crc == 0x3610a686u);
	CHECK((d = lx_zip_find(&z, "d.txt")) && d->method == 8 && d->csize == 7 && d->usize == 80);
	CHECK(lx_zip_find(&z, "x.txt") == NULL);
	if (s && d) {
		CHECK(lx_zip_data(&z, s, &p, &n, &e) == LX_OK && n == 5 && p == b + 35 && memcmp(p, "hello", 5) == 0);
		CHECK(lx_zip_extract(&z, s, out, &e) == LX_OK && memcmp(out, "hello", 5) == 0);
		CHECK(lx_zip_data(&z, d, &p, &n, &e) == LX_EINPUT);
		CHECK(lx_zip_extract(&z, d, out, &e) == LX_OK);
		for (i = 0; i < 80; i++)
			CHECK(out[i] == "ab"[i % 2]);
		b[35] = 'j';
		CHECK(lx_zip_data(&z, s, &p, &n, &e) == LX_EINPUT);
		CHECK(strcmp(e.msg, "a.zip: zip entry s.txt: CRC-32 mismatch: the file is damaged") == 0);
		b[76] ^= 0xff; /* the deflated bytes: bad data, or a CRC mismatch */
		CHECK(lx_zip_extract(&z, d, out, &e) == LX_EINPUT && strncmp(e.msg, "a.zip: zip entry d.txt: ", 24) == 0);
	}
	lx_zip_destroy(&z);
	CHECK(lx_zip_init(&z, b, 205, "a.zip", "zip entry", LX_EMODEL, &e) == LX_EMODEL);
	CHECK(strcmp(e.msg, "a.zip: no zip end-of-central-directory record: the file is truncated or not a zip "
	                    "archive") == 0);
	lx_zip_destroy(&z);
	memcpy(b, zip206, sizeof b);
	b[82 + 20] = 0xff; /* the central directory (at 82) gives s.txt 255 compressed bytes */
	CHECK(lx_zip_init(&z, b, sizeof b, "a.zip", "zip entry", LX_EINPUT, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "a.zip: zip entry s.txt: 255 bytes at byte 35, past the end of the file (206 bytes)") == 0);
	lx_zip_destroy(&z);
}

int main(void)
{
	zip_read();
	npy_parse();
	npy_write();
	base64_decode_vectors();
	base64_decode_errors();
	base64_encode_vectors();
	return check_done("fmt");
}

/* Unit tests of lib/fmt/: base64 (RFC 4648 section 10 vectors), .npy (files numpy 1.24 wrote). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_fmt.h"
#include "fmt/npy.h"

static int failures;

#define CHECK(c)                                                                                           \
	do {                                                                                                   \
		if (!(c)) {                                                                                        \
			fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #c);                               \
			failures++;                                                                                    \
		}                                                                                                  \
	} while (0)

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

int main(void)
{
	npy_parse();
	npy_write();
	base64_decode_vectors();
	base64_decode_errors();
	base64_encode_vectors();
	if (failures)
		fprintf(stderr, "fmt: %d checks failed\n", failures);
	return failures != 0;
}

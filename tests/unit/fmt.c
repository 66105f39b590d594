/* Unit tests of lib/fmt/: base64 (RFC 4648 section 10 vectors). */
#include <stdlib.h>
#include <string.h>

#include "lx_fmt.h"

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

int main(void)
{
	base64_decode_vectors();
	base64_decode_errors();
	base64_encode_vectors();
	if (failures)
		fprintf(stderr, "fmt: %d checks failed\n", failures);
	return failures != 0;
}

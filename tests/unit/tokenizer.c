/* Unit tests of lx_tokenizer.h on small hand-made vocabularies: every expected value is worked out by hand
 * from the rules in the header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_tokenizer.h"
#include "check.h"

/* lines of the test vocabulary: the id of each is its index */
static const char vocab_text[] =
	"[PAD]\n"       /* 0 */
	"[UNK]\n"       /* 1 */
	"[CLS]\n"       /* 2 */
	"[SEP]\r\n"     /* 3: CRLF line ending */
	"[MASK]\n"      /* 4 */
	"un\n"          /* 5 */
	"##aff\n"       /* 6 */
	"##able\n"      /* 7 */
	"unaff\n"       /* 8 */
	"##a\n"         /* 9 */
	"a\n"           /* 10 */
	"?\n"           /* 11 */
	"\n"            /* 12: the empty piece */
	"cafe\n"        /* 13 */
	"a\n"           /* 14: "a" again, which takes this id */
	"'\n"           /* 15 */
	"s\n"           /* 16 */
	"##s\n"         /* 17 */
	".\n"           /* 18 */
	"é";            /* 19: no final line ending */

static lx_vocab *make_vocab(void)
{
	lx_vocab *v;
	lx_err e;

	if (lx_vocab_parse(&v, vocab_text, sizeof vocab_text - 1, "test", &e)) {
		fprintf(stderr, "vocab: %s\n", e.msg);
		exit(1);
	}
	return v;
}

static void test_vocab(const lx_vocab *v)
{
	size_t len;

	CHECK(lx_vocab_size(v) == 20);
	CHECK(lx_vocab_id(v, "[SEP]", 5) == 3);
	CHECK(lx_vocab_id(v, "unaff", 5) == 8);
	CHECK(lx_vocab_id(v, "unaf", 4) == -1);
	CHECK(lx_vocab_id(v, "aff", 3) == -1);
	CHECK(lx_vocab_id(v, "##aff", 5) == 6);
	CHECK(lx_vocab_id(v, "a", 1) == 14);
	CHECK(lx_vocab_id(v, "", 0) == 12);
	CHECK(lx_vocab_id(v, "é", strlen("é")) == 19);
	CHECK(strcmp(lx_vocab_token(v, 3, &len), "[SEP]") == 0 && len == 5);
	CHECK(strcmp(lx_vocab_token(v, 10, NULL), "a") == 0);
	CHECK(strcmp(lx_vocab_token(v, 19, &len), "é") == 0 && len == 2);
	CHECK(lx_vocab_token(v, 20, NULL) == NULL);
	CHECK(lx_vocab_token(v, -1, NULL) == NULL);
	CHECK(lx_vocab_special(v)->cls == 2 && lx_vocab_special(v)->sep == 3 && lx_vocab_special(v)->unk == 1);
	CHECK(lx_vocab_special(v)->pad == 0 && lx_vocab_special(v)->mask == 4);
}

static void test_vocab_errors(void)
{
	lx_vocab *v = NULL;
	lx_err e;

	CHECK(lx_vocab_parse(&v, "[CLS]\n[UNK]\n", 12, "v.txt", &e) == LX_EMODEL && v == NULL);
	CHECK(strcmp(e.msg, "v.txt: no [SEP] piece (a BERT vocabulary holds [CLS], [SEP] and [UNK])") == 0);
	CHECK(lx_vocab_parse(&v, "", 0, "empty.txt", &e) == LX_EMODEL);
	CHECK(strcmp(e.msg, "empty.txt: no [CLS] piece (a BERT vocabulary holds [CLS], [SEP] and [UNK])") == 0);
	CHECK(lx_vocab_parse(&v, "[CLS]\n[SEP]\nx\xc3\n[UNK]\n", 21, "v.txt", &e) == LX_EMODEL);
	CHECK(strcmp(e.msg, "v.txt: line 3: invalid UTF-8 at byte 2 (0xc3)") == 0);
	CHECK(lx_vocab_load(&v, "/nonexistent/vocab.txt", &e) == LX_EMODEL);
	CHECK(strcmp(e.msg, "/nonexistent/vocab.txt: No such file or directory") == 0);
	/* [PAD] and [MASK] may be missing */
	CHECK(lx_vocab_parse(&v, "[CLS]\n[SEP]\n[UNK]", 17, "v.txt", &e) == LX_OK);
	CHECK(lx_vocab_size(v) == 3 && lx_vocab_special(v)->pad == -1 && lx_vocab_special(v)->mask == -1);
	lx_vocab_free(v);
	lx_vocab_free(NULL);
}

/* Tokenizes s and compares the pieces with want (n ids). */
static int pieces_are(lx_tokenizer *t, const char *s, const int32_t *want, size_t n)
{
	const int32_t *ids;
	size_t got, i;
	lx_err e;

	if (lx_tokenize_pieces(t, s, strlen(s), &ids, &got, &e)) {
		fprintf(stderr, "%s: %s\n", s, e.msg);
		return 0;
	}
	if (got != n)
		return 0;
	for (i = 0; i < n; i++)
		if (ids[i] != want[i])
			return 0;
	return 1;
}

#define PIECES(t, s, ...) pieces_are(t, s, (const int32_t[]){__VA_ARGS__}, sizeof((int32_t[]){__VA_ARGS__}) / 4)

static void test_pieces(lx_tokenizer *t)
{
	char longw[102];
	const int32_t *ids;
	size_t n;
	lx_err e;

	/* longest match first: "unaff" (8) beats "un" (5), then ##able */
	CHECK(PIECES(t, "unaffable", 8, 7));
	CHECK(PIECES(t, "UnAffAble?", 8, 7, 11));
	/* a remainder no piece matches makes the whole word [UNK]; the next word is read on */
	CHECK(PIECES(t, "unaffx a", 1, 14));
	/* "a" then "##a" twice */
	CHECK(PIECES(t, "aaa", 14, 9, 9));
	/* accents are stripped (é is e + U+0301 after NFD), so "café" is "cafe"; the piece "é" is never reached */
	CHECK(PIECES(t, "Café", 13));
	CHECK(PIECES(t, "CAFÉ.", 13, 18));
	/* special tokens are found inside words, case matters */
	CHECK(PIECES(t, "a[MASK]a", 14, 4, 14));
	CHECK(PIECES(t, "[mask]", 1, 1, 1));
	CHECK(PIECES(t, "[[CLS]", 1, 2));
	/* punctuation splits, white space and control characters */
	CHECK(PIECES(t, "a's", 14, 15, 16));
	CHECK(PIECES(t, "\t a\x01"
	                "a\xc2\xa0"
	                "a\xe2\x80\xa8"
	                "a ",
	              14, 9, 14, 14));
	CHECK(lx_tokenize_pieces(t, "  \x7f ", 4, &ids, &n, &e) == LX_OK && n == 0);
	/* 100 characters are read piece by piece, 101 are one [UNK] */
	memset(longw, 'a', 101);
	longw[101] = 0;
	CHECK(lx_tokenize_pieces(t, longw, 100, &ids, &n, &e) == LX_OK && n == 100 && ids[0] == 14 && ids[99] == 9);
	CHECK(lx_tokenize_pieces(t, longw, 101, &ids, &n, &e) == LX_OK && n == 1 && ids[0] == 1);
	/* invalid UTF-8 is an error without LX_TOK_REPLACE_INVALID */
	CHECK(lx_tokenize_pieces(t, "a \xe9t\xe9", 5, &ids, &n, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "invalid UTF-8 at byte 3 (0xe9)") == 0);
}

static void test_input(lx_tokenizer *t)
{
	const int32_t *ids;
	size_t n;
	lx_err e;

	CHECK(lx_tokenize(t, "a a a", 5, 0, &ids, &n, &e) == LX_OK && n == 5);
	CHECK(ids[0] == 2 && ids[1] == 14 && ids[3] == 14 && ids[4] == 3);
	CHECK(lx_tokenize(t, "a a a", 5, 4, &ids, &n, &e) == LX_OK && n == 4);
	CHECK(ids[0] == 2 && ids[1] == 14 && ids[2] == 14 && ids[3] == 3);
	CHECK(lx_tokenize(t, "a a a", 5, 2, &ids, &n, &e) == LX_OK && n == 2 && ids[0] == 2 && ids[1] == 3);
	CHECK(lx_tokenize(t, "", 0, 0, &ids, &n, &e) == LX_OK && n == 2);
	CHECK(lx_tokenize(t, "a", 1, 1, &ids, &n, &e) == LX_EUSAGE);
}

static int decodes_to(lx_tokenizer *t, const int32_t *ids, size_t n, const char *want)
{
	const char *text;
	size_t len;
	lx_err e;

	if (lx_detokenize(t, ids, n, &text, &len, &e)) {
		fprintf(stderr, "decode: %s\n", e.msg);
		return 0;
	}
	if (len != strlen(want) || strcmp(text, want) != 0) {
		fprintf(stderr, "decode: \"%s\", expected \"%s\"\n", text, want);
		return 0;
	}
	return 1;
}

#define DECODES(t, want, ...) decodes_to(t, (const int32_t[]){__VA_ARGS__}, sizeof((int32_t[]){__VA_ARGS__}) / 4, want)

static void test_decode(lx_tokenizer *t)
{
	const char *text;
	size_t len;
	lx_err e;

	CHECK(DECODES(t, "unaffable?", 2, 8, 7, 11, 3, 0, 0));
	/* " ' " becomes "'" and " ." "."; [UNK] and [MASK] stay */
	CHECK(DECODES(t, "a's [UNK] [MASK].", 2, 14, 15, 16, 1, 4, 18, 3));
	/* a continuation piece first keeps its ## */
	CHECK(DECODES(t, "##aff a", 6, 14));
	CHECK(DECODES(t, "", 2, 3));
	CHECK(lx_detokenize(t, (const int32_t[]){2, 20}, 2, &text, &len, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "id 20 at index 1 is outside the vocabulary (0 to 19)") == 0);
}

static void test_utf8(const lx_vocab *v)
{
	/* maximal subparts, each one U+FFFD, as Python's decode("utf-8", "replace") */
	static const char bad[] = "a\xf0\x9f\x98" "b\xed\xa0\x80" "c\xc0\xaf" "d\xe0\x80" "e\xf4\x90" "f\xc3";
	static const char want[] = "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	                           "c\xef\xbf\xbd\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd"
	                           "e\xef\xbf\xbd\xef\xbf\xbd" "f\xef\xbf\xbd";
	char out[3 * sizeof bad];
	size_t n = lx_utf8_repair(bad, sizeof bad - 1, out);
	lx_tokenizer *t = lx_tokenizer_new(v, LX_TOK_REPLACE_INVALID);
	const int32_t *ids;
	size_t k;
	lx_err e;

	CHECK(n == sizeof want - 1 && memcmp(out, want, n) == 0);
	CHECK(lx_utf8_invalid(bad, sizeof bad - 1) == 1);
	CHECK(lx_utf8_invalid("é\xf0\x9f\x98\x80", 6) == 6);
	CHECK(lx_utf8_invalid("ab\xc3", 3) == 2);
	/* replaced bytes are dropped like U+FFFD: "a\xe9a" is "aa" */
	CHECK(lx_tokenize_pieces(t, "a\xe9" "a", 3, &ids, &k, &e) == LX_OK && k == 2 && ids[0] == 14 && ids[1] == 9);
	lx_tokenizer_free(t);
}

int main(void)
{
	lx_vocab *v = make_vocab();
	lx_tokenizer *t = lx_tokenizer_new(v, 0);

	test_vocab(v);
	test_vocab_errors();
	test_pieces(t);
	test_input(t);
	test_decode(t);
	test_utf8(v);
	lx_tokenizer_free(t);
	lx_tokenizer_free(NULL);
	lx_vocab_free(v);
	return check_done("tokenizer");
}

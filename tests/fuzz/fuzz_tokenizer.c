/* libFuzzer target: the tokenizer. The first byte picks what the rest is: a vocabulary (even) or a text
 * (odd), tokenized with a small fixed vocabulary, with or without LX_TOK_REPLACE_INVALID (bit 1), with
 * max_length byte / 4 (0: no cut). Every id must lie in the vocabulary, decode must succeed, and repaired
 * UTF-8 must be valid: anything else aborts. */
#include <stdlib.h>
#include <string.h>

#include "lx_tokenizer.h"

static const char vocab_text[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nun\n##aff\n##able\na\n##a\n?\n.\n"
                                 "'\ns\ncafe\n\xc3\xa9\n\xe4\xb8\xad\n##\xce\xb1\n\xce\xbb\n\n##\n#\n[\n]\n";

static void check_ids(const lx_vocab *v, lx_tokenizer *t, const int32_t *ids, size_t n)
{
	const char *text;
	size_t i, len;
	lx_err e;

	for (i = 0; i < n; i++)
		if (!lx_vocab_token(v, ids[i], NULL))
			abort();
	if (lx_detokenize(t, ids, n, &text, &len, &e) || strlen(text) > len)
		abort();
}

static void fuzz_text(const lx_vocab *v, int flags, int max_length, const char *s, size_t n)
{
	lx_tokenizer *t = lx_tokenizer_new(v, flags);
	const int32_t *ids;
	size_t k;
	lx_err e;
	lx_status st;
	char *fix = malloc(3 * n + 1);

	if (!t || !fix)
		abort();
	st = lx_tokenize(t, s, n, max_length, &ids, &k, &e);
	if (st == LX_OK) {
		if (k < 2 || (max_length && k > (size_t)max_length))
			abort();
		check_ids(v, t, ids, k);
	} else if (st != LX_EINPUT || (flags & LX_TOK_REPLACE_INVALID) || lx_utf8_invalid(s, n) == n)
		abort();
	k = lx_utf8_repair(s, n, fix);
	if (lx_utf8_invalid(fix, k) != k)
		abort();
	free(fix);
	lx_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static lx_vocab *fixed;
	lx_vocab *v;
	lx_err e;

	if (!fixed && lx_vocab_parse(&fixed, vocab_text, sizeof vocab_text - 1, "fixed", &e))
		abort();
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0) {
		if (lx_vocab_parse(&v, (const char *)data + 1, size - 1, "vocab.txt", &e) == LX_OK) {
			fuzz_text(v, LX_TOK_REPLACE_INVALID, 0, (const char *)data + 1, size - 1);
			lx_vocab_free(v);
		}
		return 0;
	}
	fuzz_text(fixed, data[0] & 2 ? LX_TOK_REPLACE_INVALID : 0, data[0] / 4 < 2 ? 0 : data[0] / 4,
	          (const char *)data + 1, size - 1);
	return 0;
}

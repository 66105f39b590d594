/*
 * lx_tokenizer.h - the uncased BERT WordPiece tokenizer of LXMERT (Hugging Face LxmertTokenizer).
 *
 * The ids are those of the reference (transformers' slow BertTokenizer, do_lower_case, accents stripped) on
 * every string: the five special tokens are matched in the raw text; the rest is cleaned (U+0000, U+FFFD and
 * category C* dropped, \t \n \r and Zs made spaces), CJK ideographs spaced, split on whitespace (also U+2028,
 * U+2029), lower-cased character by character, decomposed (NFD) with marks Mn dropped, split around
 * punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and category P*), and each word cut into the longest
 * pieces of the vocabulary from the left; a word of more than 100 characters, or with a remainder no piece
 * matches, is one [UNK]. Unicode properties come from utf8proc.
 *
 * Ownership follows lx_core.h. A tokenizer keeps a pointer to its vocabulary, which must outlive it. A vocabulary
 * is read-only once loaded and may be shared by tokenizers in several threads; a tokenizer holds the buffers
 * of one text at a time and serves one thread.
 */
#ifndef LX_TOKENIZER_H
#define LX_TOKENIZER_H

#include "lx_core.h"

/* ---- the vocabulary --------------------------------------------------------------------------------- */

typedef struct lx_vocab lx_vocab;

/* Ids of the special pieces; pad and mask are -1 when the vocabulary lacks them. */
typedef struct {
	int32_t cls, sep, unk, pad, mask;
} lx_vocab_specials;

/* Loads a vocabulary file (vocab.txt): one piece a line, UTF-8, its id the 0-based line number. A final line
 * without a line ending counts; a '\r' before the '\n' is dropped. A piece listed twice gets the id of its
 * last line, as in Hugging Face's load_vocab. The file must hold [CLS], [SEP] and [UNK]. Fails with
 * LX_EMODEL (file unreadable, not UTF-8, a special piece missing), naming the path and the line. */
lx_status lx_vocab_load(lx_vocab **out, const char *path, lx_err *e);
/* The same from len bytes in memory; name is used in messages. data is copied. */
lx_status lx_vocab_parse(lx_vocab **out, const char *data, size_t len, const char *name, lx_err *e);
void lx_vocab_free(lx_vocab *v);

/* Number of ids (lines). */
int32_t lx_vocab_size(const lx_vocab *v);
/* The id of piece s (len bytes, no NUL needed), or -1 if the vocabulary does not hold it. */
int32_t lx_vocab_id(const lx_vocab *v, const char *s, size_t len);
/* The piece of id, NUL-terminated, its length in *len if len is not NULL; NULL if id is outside
 * [0, lx_vocab_size). */
const char *lx_vocab_token(const lx_vocab *v, int32_t id, size_t *len);
const lx_vocab_specials *lx_vocab_special(const lx_vocab *v);

/* ---- tokenizing ------------------------------------------------------------------------------------- */

typedef struct lx_tokenizer lx_tokenizer;

/* Flags of lx_tokenizer_new. */
enum {
	/* Invalid UTF-8 is read as U+FFFD, one per maximal ill-formed subsequence (Python's errors="replace"),
	 * which the clean-up then drops. Without it invalid UTF-8 is an error. */
	LX_TOK_REPLACE_INVALID = 1
};

/* A tokenizer over v (NULL when out of memory). Its buffers grow to the longest text seen and are kept. */
lx_tokenizer *lx_tokenizer_new(const lx_vocab *v, int flags);
void lx_tokenizer_free(lx_tokenizer *t);

/* The word-piece ids of text (len bytes; any bytes, NUL included), without [CLS] and [SEP]. *ids points into
 * t and stays valid until the next call on t; the piece of each id is lx_vocab_token(v, id). Fails with
 * LX_EINPUT on invalid UTF-8 ("invalid UTF-8 at byte 7 (0xe9)", byte counted from 1) unless t was made with
 * LX_TOK_REPLACE_INVALID, and with LX_EIO when out of memory. */
lx_status lx_tokenize_pieces(lx_tokenizer *t, const char *text, size_t len, const int32_t **ids, size_t *n,
                             lx_err *e);

/* The model's input: [CLS], the pieces, [SEP]. With max_length > 0 the pieces are cut to the first
 * max_length - 2, as LXMERT's convert_sents_to_features does (max_length must then be at least 2). */
lx_status lx_tokenize(lx_tokenizer *t, const char *text, size_t len, int max_length, const int32_t **ids,
                      size_t *n, lx_err *e);

/* Text from ids, like Hugging Face's tokenizer.decode(ids) with clean_up_tokenization_spaces after leaving
 * out [CLS], [SEP] and [PAD] ([UNK] and [MASK] stay): the pieces joined with spaces, " ##" removed, the ends
 * stripped of ASCII white space, then " ." " ?" " !" " ," " ' " " n't" " 'm" " 's" " 've" " 're" replaced by
 * the same without the space (" ' " by "'"), in that order. *text (NUL-terminated, *len bytes) points into t
 * until the next call. Fails with LX_EINPUT if an id is outside the vocabulary, naming its index. */
lx_status lx_detokenize(lx_tokenizer *t, const int32_t *ids, size_t n, const char **text, size_t *len,
                        lx_err *e);

/* ---- UTF-8 ------------------------------------------------------------------------------------------ */

/* Offset of the first byte of the first ill-formed sequence in s, or len if s is valid UTF-8. */
size_t lx_utf8_invalid(const char *s, size_t len);
/* Copies s to out replacing each maximal ill-formed subsequence by U+FFFD (EF BF BD), as Python's
 * bytes.decode("utf-8", "replace"); out must hold 3 * len bytes. Returns the length written. */
size_t lx_utf8_repair(const char *s, size_t len, char *out);

#endif

/* tokenizer.c - the uncased BERT WordPiece tokenizer (lx_tokenizer.h): vocabulary, basic tokenizer, pieces. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "lx_tokenizer.h"

#define MAX_WORD_CHARS 100   /* BERT's max_input_chars_per_word: longer words are one [UNK] */

/* ---- UTF-8 ---- */

/* Decodes the sequence at s (n > 0 bytes left) into *cp and returns its length. An ill-formed sequence sets
 * *bad and returns the length of its maximal subpart (at least 1), the unit Python replaces by one U+FFFD. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp, int *bad)
{
	unsigned c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;
	uint32_t v;

	*bad = 0;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		v = c & 0x0f;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		v = c & 0x07;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else {
		*bad = 1;
		*cp = 0xfffd;
		return 1;
	}
	for (i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = 1;
			*cp = 0xfffd;
			return i;
		}
		v = v << 6 | (s[i] & 0x3f);
		lo = 0x80;
		hi = 0xbf;
	}
	*cp = v;
	return need + 1;
}

static size_t utf8_put(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t lx_utf8_invalid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;
	int bad;

	while (i < len) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_next(u + i, len - i, &cp, &bad);
		if (bad)
			return i;
		i += k;
	}
	return len;
}

size_t lx_utf8_repair(const char *s, size_t len, char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, k;
	uint32_t cp;
	int bad;

	while (i < len) {
		k = utf8_next(u + i, len - i, &cp, &bad);
		if (bad)
			o += utf8_put(out + o, 0xfffd);
		else {
			memcpy(out + o, s + i, k);
			o += k;
		}
		i += k;
	}
	return o;
}

/* ---- the vocabulary ---- */

struct lx_vocab {
	char *buf;          /* the pieces, each NUL-terminated */
	size_t *off;        /* [n] where piece i starts in buf */
	uint32_t *len;      /* [n] its length in bytes */
	int32_t n;
	uint32_t *slot;     /* open addressing: id + 1, 0 when empty; mask + 1 slots */
	uint32_t mask;
	size_t max_word;    /* longest piece, in bytes */
	size_t max_cont;    /* longest "##" piece, in bytes after the "##" */
	lx_vocab_specials sp;
};

#define FNV_BASIS 2166136261u

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Finds s (n bytes), with "##" before it when cont: the slot holding it, or the empty slot where it goes. */
static uint32_t *vocab_slot(const lx_vocab *v, int cont, const char *s, size_t n)
{
	uint32_t h = cont ? fnv(fnv(FNV_BASIS, "##", 2), s, n) : fnv(FNV_BASIS, s, n);
	size_t full = n + (cont ? 2 : 0);

	for (;; h++) {
		uint32_t *sl = &v->slot[h & v->mask];
		const char *p;
		if (!*sl)
			return sl;
		p = v->buf + v->off[*sl - 1];
		if (v->len[*sl - 1] == full && (!cont || (p[0] == '#' && p[1] == '#')) &&
		    memcmp(p + (cont ? 2 : 0), s, n) == 0)
			return sl;
	}
}

static int32_t vocab_find(const lx_vocab *v, int cont, const char *s, size_t n)
{
	return (int32_t)*vocab_slot(v, cont, s, n) - 1;
}

int32_t lx_vocab_id(const lx_vocab *v, const char *s, size_t len) { return vocab_find(v, 0, s, len); }

int32_t lx_vocab_size(const lx_vocab *v) { return v->n; }

const lx_vocab_specials *lx_vocab_special(const lx_vocab *v) { return &v->sp; }

const char *lx_vocab_token(const lx_vocab *v, int32_t id, size_t *len)
{
	if (id < 0 || id >= v->n)
		return NULL;
	if (len)
		*len = v->len[id];
	return v->buf + v->off[id];
}

void lx_vocab_free(lx_vocab *v)
{
	if (!v)
		return;
	free(v->buf);
	free(v->off);
	free(v->len);
	free(v->slot);
	free(v);
}

/* Cuts buf into NUL-terminated lines in place and records where each starts. */
static lx_status split_lines(lx_vocab *v, size_t size, const char *name, lx_err *e)
{
	size_t i, start = 0, cap = 1024, bad;

	if (!(v->off = malloc(cap * sizeof *v->off)) || !(v->len = malloc(cap * sizeof *v->len)))
		return lx_errf(e, LX_EIO, "%s: out of memory", name);
	for (i = 0; i <= size; i++) {
		size_t end;
		if (i < size && v->buf[i] != '\n')
			continue;
		if (i == size && start == size)
			break;  /* the file ended with a line ending: no further line */
		end = i > start && v->buf[i - 1] == '\r' ? i - 1 : i;
		if ((bad = lx_utf8_invalid(v->buf + start, end - start)) < end - start)
			return lx_errf(e, LX_EMODEL, "%s: line %ld: invalid UTF-8 at byte %zu (0x%02x)", name,
			               (long)v->n + 1, bad + 1, (unsigned char)v->buf[start + bad]);
		if (end - start > UINT32_MAX || v->n == INT32_MAX - 1)
			return lx_errf(e, LX_EMODEL, "%s: line %ld: too large", name, (long)v->n + 1);
		if ((size_t)v->n == cap) {
			size_t *no = realloc(v->off, 2 * cap * sizeof *no);
			uint32_t *nl = no ? realloc(v->len, 2 * cap * sizeof *nl) : NULL;
			if (no)
				v->off = no;
			if (!nl)
				return lx_errf(e, LX_EIO, "%s: out of memory", name);
			v->len = nl;
			cap *= 2;
		}
		v->buf[end] = 0;
		v->off[v->n] = start;
		v->len[v->n] = (uint32_t)(end - start);
		v->n++;
		start = i + 1;
	}
	return LX_OK;
}

static lx_status build_table(lx_vocab *v, const char *name, lx_err *e)
{
	uint32_t size = 16;
	int32_t i;

	while (size < 2u * (uint32_t)v->n)
		size *= 2;
	if (!(v->slot = calloc(size, sizeof *v->slot)))
		return lx_errf(e, LX_EIO, "%s: out of memory", name);
	v->mask = size - 1;
	for (i = 0; i < v->n; i++) {
		const char *p = v->buf + v->off[i];
		size_t n = v->len[i];
		*vocab_slot(v, 0, p, n) = (uint32_t)i + 1;  /* a repeated piece takes its last id */
		if (n >= 2 && p[0] == '#' && p[1] == '#') {
			if (n - 2 > v->max_cont)
				v->max_cont = n - 2;
		}
		if (n > v->max_word)
			v->max_word = n;
	}
	return LX_OK;
}

static lx_status find_specials(lx_vocab *v, const char *name, lx_err *e)
{
	static const char *need[] = {"[CLS]", "[SEP]", "[UNK]"};
	int32_t *ids[] = {&v->sp.cls, &v->sp.sep, &v->sp.unk};
	int i;

	for (i = 0; i < 3; i++)
		if ((*ids[i] = lx_vocab_id(v, need[i], strlen(need[i]))) < 0)
			return lx_errf(e, LX_EMODEL, "%s: no %s piece (a BERT vocabulary holds [CLS], [SEP] and [UNK])",
			               name, need[i]);
	v->sp.pad = lx_vocab_id(v, "[PAD]", 5);
	v->sp.mask = lx_vocab_id(v, "[MASK]", 6);
	return LX_OK;
}

lx_status lx_vocab_parse(lx_vocab **out, const char *data, size_t len, const char *name, lx_err *e)
{
	lx_vocab *v = calloc(1, sizeof *v);
	lx_status st;

	*out = NULL;
	if (!v || !(v->buf = malloc(len + 1))) {
		free(v);
		return lx_errf(e, LX_EIO, "%s: out of memory", name);
	}
	memcpy(v->buf, data, len);
	v->buf[len] = 0;
	if ((st = split_lines(v, len, name, e)) || (st = build_table(v, name, e)) || (st = find_specials(v, name, e))) {
		lx_vocab_free(v);
		return st;
	}
	*out = v;
	return LX_OK;
}

/* A BERT vocabulary is about 230 KB; anything past this bound (a device, a wrong file) is refused. */
#define MAX_VOCAB_FILE ((size_t)256 << 20)

lx_status lx_vocab_load(lx_vocab **out, const char *path, lx_err *e)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0, cap = 0, got;
	lx_status st;

	*out = NULL;
	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	do {
		if (len == cap) {
			char *nd = realloc(data, cap = cap ? 2 * cap : 256 * 1024);
			if (!nd) {
				free(data);
				fclose(f);
				return lx_errf(e, LX_EIO, "%s: out of memory", path);
			}
			data = nd;
		}
		got = fread(data + len, 1, cap - len, f);
		len += got;
	} while (got && len <= MAX_VOCAB_FILE);
	if (len > MAX_VOCAB_FILE) {
		free(data);
		fclose(f);
		return lx_errf(e, LX_EMODEL, "%s: larger than %zu bytes, too large for a vocabulary", path, MAX_VOCAB_FILE);
	}
	if (ferror(f)) {
		st = lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
		free(data);
		fclose(f);
		return st;
	}
	fclose(f);
	st = lx_vocab_parse(out, data, len, path, e);
	free(data);
	return st;
}

/* ---- the tokenizer ---- */

struct lx_tokenizer {
	const lx_vocab *v;
	int flags, oom;
	unsigned char cls[128];      /* ascii_class of each byte below 0x80 */
	int32_t special[5];          /* ids of [CLS] [SEP] [UNK] [PAD] [MASK] met in the text */
	int32_t *ids;                /* output */
	size_t nids, capids;
	uint32_t *word;              /* code points of the word being read, lower-cased */
	size_t nword, capword;
	int word_ascii;
	uint32_t *nfd;               /* the word decomposed */
	size_t capnfd;
	char *piece;                 /* one basic token, UTF-8 */
	size_t npiece, cappiece;
	uint32_t *coff;              /* byte offset of each of its characters, and of its end */
	size_t nchar, capcoff;
	char *text;                  /* lx_detokenize output */
	size_t captext;
};

/* ASCII classes: what the clean-up and the punctuation split do with each byte below 0x80. */
enum { A_DROP, A_SPACE, A_PUNCT, A_WORD };

static unsigned char ascii_class(unsigned c);

static const char *special_names[5] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"};

/* Grows the array whose pointer is at pp (any element type: the pointer is copied with memcpy, not read
 * through a void **) to hold need elements of size elem; sets t->oom on failure. */
static int grow(lx_tokenizer *t, void *pp, size_t *cap, size_t need, size_t elem)
{
	size_t nc = *cap ? *cap : 64;
	void *p, *np;

	if (need <= *cap)
		return 1;
	while (nc < need)
		nc *= 2;
	memcpy(&p, pp, sizeof p);
	if (!(np = realloc(p, nc * elem))) {
		t->oom = 1;
		return 0;
	}
	memcpy(pp, &np, sizeof np);
	*cap = nc;
	return 1;
}

lx_tokenizer *lx_tokenizer_new(const lx_vocab *v, int flags)
{
	lx_tokenizer *t = calloc(1, sizeof *t);
	int i;

	if (!t)
		return NULL;
	t->v = v;
	t->flags = flags;
	for (i = 0; i < 128; i++)
		t->cls[i] = ascii_class((unsigned)i);
	for (i = 0; i < 5; i++) {
		t->special[i] = lx_vocab_id(v, special_names[i], strlen(special_names[i]));
		if (t->special[i] < 0)
			t->special[i] = v->sp.unk;  /* HF maps a piece missing from the vocabulary to [UNK] */
	}
	return t;
}

void lx_tokenizer_free(lx_tokenizer *t)
{
	if (!t)
		return;
	free(t->ids);
	free(t->word);
	free(t->nfd);
	free(t->piece);
	free(t->coff);
	free(t->text);
	free(t);
}

static void push_id(lx_tokenizer *t, int32_t id)
{
	if (t->nids == t->capids && !grow(t, &t->ids, &t->capids, t->nids + 1, sizeof *t->ids))
		return;
	t->ids[t->nids++] = id;
}

/* Greedy longest-match-first WordPiece over the basic token in t->piece / t->coff. */
static void wordpiece(lx_tokenizer *t, const char *s, const uint32_t *coff, size_t nchar)
{
	const lx_vocab *v = t->v;
	size_t start = 0, base = t->nids;

	if (nchar > MAX_WORD_CHARS) {
		push_id(t, v->sp.unk);
		return;
	}
	while (start < nchar) {
		size_t end = nchar, max = start ? v->max_cont : v->max_word;
		int32_t id = -1;
		while (end > start && coff[end] - coff[start] > max)
			end--;
		for (; end > start; end--)
			if ((id = vocab_find(v, start > 0, s + coff[start], coff[end] - coff[start])) >= 0)
				break;
		if (id < 0) {
			t->nids = base;
			push_id(t, v->sp.unk);
			return;
		}
		push_id(t, id);
		start = end;
	}
}

static const uint32_t identity[MAX_WORD_CHARS + 1] = {
	0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
	26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77,
	78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100};

/* The basic token gathered in t->piece ends: cut it into pieces. */
static void flush_piece(lx_tokenizer *t)
{
	if (!t->nchar)
		return;
	t->coff[t->nchar] = (uint32_t)t->npiece;
	wordpiece(t, t->piece, t->coff, t->nchar);
	t->npiece = t->nchar = 0;
}

static void piece_add(lx_tokenizer *t, uint32_t cp)
{
	if (!grow(t, &t->piece, &t->cappiece, t->npiece + 4, 1) ||
	    !grow(t, &t->coff, &t->capcoff, t->nchar + 2, sizeof *t->coff))
		return;
	t->coff[t->nchar++] = (uint32_t)t->npiece;
	t->npiece += utf8_put(t->piece + t->npiece, cp);
}

static int is_punct(uint32_t cp)
{
	utf8proc_category_t c;

	if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
		return 1;
	if (cp < 128)
		return 0;
	c = utf8proc_category((utf8proc_int32_t)cp);
	return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* Canonical ordering of the decomposed word (marks sorted by combining class, stably), as NFD does. */
static void reorder(uint32_t *s, size_t n)
{
	size_t i = 0;

	while (i + 1 < n) {
		int a = utf8proc_get_property((utf8proc_int32_t)s[i])->combining_class;
		int b = utf8proc_get_property((utf8proc_int32_t)s[i + 1])->combining_class;
		if (a > b && b > 0) {
			uint32_t x = s[i];
			s[i] = s[i + 1];
			s[i + 1] = x;
			if (i > 0)
				i--;
		} else
			i++;
	}
}

/* A word with characters outside ASCII: NFD, drop marks (Mn), split around punctuation. */
static void end_word_unicode(lx_tokenizer *t)
{
	size_t i, n = 0;

	for (i = 0; i < t->nword; i++) {
		utf8proc_int32_t d[8];
		int bc = 0;
		utf8proc_ssize_t k = 1, j;
		if (t->word[i] < 0x80)
			d[0] = (utf8proc_int32_t)t->word[i];
		else if ((k = utf8proc_decompose_char((utf8proc_int32_t)t->word[i], d, 8, UTF8PROC_DECOMPOSE, &bc)) <
		         1 || k > 8) {
			d[0] = (utf8proc_int32_t)t->word[i];
			k = 1;
		}
		if (!grow(t, &t->nfd, &t->capnfd, n + (size_t)k, sizeof *t->nfd))
			return;
		for (j = 0; j < k; j++)
			t->nfd[n++] = (uint32_t)d[j];
	}
	reorder(t->nfd, n);
	for (i = 0; i < n; i++) {
		uint32_t cp = t->nfd[i];
		if (cp >= 0x80 && utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_MN)
			continue;
		if (is_punct(cp)) {
			flush_piece(t);
			piece_add(t, cp);
			flush_piece(t);
		} else
			piece_add(t, cp);
	}
	flush_piece(t);
}

static void end_word(lx_tokenizer *t)
{
	size_t i;

	if (!t->nword)
		return;
	if (!t->word_ascii)
		end_word_unicode(t);
	else if (t->nword > MAX_WORD_CHARS)
		push_id(t, t->v->sp.unk);
	else if (grow(t, &t->piece, &t->cappiece, t->nword, 1)) {
		for (i = 0; i < t->nword; i++)
			t->piece[i] = (char)t->word[i];
		wordpiece(t, t->piece, identity, t->nword);
	}
	t->nword = 0;
	t->word_ascii = 1;
}

static void word_add(lx_tokenizer *t, uint32_t cp)
{
	if (t->nword == t->capword && !grow(t, &t->word, &t->capword, t->nword + 1, sizeof *t->word))
		return;
	t->word[t->nword++] = cp;
}

static unsigned char ascii_class(unsigned c)
{
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
		return A_SPACE;
	if (c < 32 || c == 127)
		return A_DROP;
	if (is_punct(c))
		return A_PUNCT;
	return A_WORD;
}

static int is_cjk(uint32_t cp)
{
	return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
	       (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) ||
	       (cp >= 0x2b820 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/* One character outside ASCII. */
static void add_unicode(lx_tokenizer *t, uint32_t cp)
{
	utf8proc_category_t c;

	if (cp == 0xfffd)
		return;
	c = utf8proc_category((utf8proc_int32_t)cp);
	if (c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP) {
		end_word(t);
	} else if (c == UTF8PROC_CATEGORY_CN || c >= UTF8PROC_CATEGORY_CC) {
		return;  /* Cc, Cf, Cs, Co and unassigned (Cn): dropped */
	} else if (is_cjk(cp)) {
		end_word(t);
		t->word_ascii = 0;
		word_add(t, cp);
		end_word(t);
	} else {
		t->word_ascii = 0;
		word_add(t, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
	}
}

/* Length of the special token at s ([CLS] [SEP] [UNK] [PAD] [MASK]) and its index in special_names, or 0. */
static size_t special_at(const char *s, size_t n, int *which)
{
	int i;

	for (i = 0; i < 5; i++) {
		size_t k = strlen(special_names[i]);
		if (k <= n && memcmp(s, special_names[i], k) == 0) {
			*which = i;
			return k;
		}
	}
	return 0;
}

lx_status lx_tokenize_pieces(lx_tokenizer *t, const char *text, size_t len, const int32_t **ids, size_t *n,
                             lx_err *e)
{
	const unsigned char *s = (const unsigned char *)text, *cls = t->cls;
	size_t i = 0;

	t->nids = t->nword = t->npiece = t->nchar = 0;
	t->word_ascii = 1;
	t->oom = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c < 0x80) {
			int which;
			size_t k;
			switch (cls[c]) {
			case A_WORD:
				word_add(t, c >= 'A' && c <= 'Z' ? c + 32 : c);
				break;
			case A_SPACE:
				end_word(t);
				break;
			case A_PUNCT:
				end_word(t);
				if (c == '[' && (k = special_at(text + i, len - i, &which))) {
					push_id(t, t->special[which]);
					i += k;
					continue;
				}
				piece_add(t, c);
				flush_piece(t);
				break;
			}
			i++;
		} else {
			uint32_t cp;
			int bad;
			size_t k = utf8_next(s + i, len - i, &cp, &bad);
			if (bad && !(t->flags & LX_TOK_REPLACE_INVALID))
				return lx_errf(e, LX_EINPUT, "invalid UTF-8 at byte %zu (0x%02x)", i + 1, c);
			add_unicode(t, cp);
			i += k;
		}
	}
	end_word(t);
	if (t->oom)
		return lx_errf(e, LX_EIO, "out of memory");
	*ids = t->ids;
	*n = t->nids;
	return LX_OK;
}

lx_status lx_tokenize(lx_tokenizer *t, const char *text, size_t len, int max_length, const int32_t **ids,
                      size_t *n, lx_err *e)
{
	const int32_t *p;
	size_t np;
	lx_status st;

	if (max_length > 0 && max_length < 2)
		return lx_errf(e, LX_EUSAGE, "max_length %d is below 2: no room for [CLS] and [SEP]", max_length);
	if ((st = lx_tokenize_pieces(t, text, len, &p, &np, e)))
		return st;
	if (max_length > 0 && np > (size_t)max_length - 2)
		np = (size_t)max_length - 2;
	if (!grow(t, &t->ids, &t->capids, np + 2, sizeof *t->ids))
		return lx_errf(e, LX_EIO, "out of memory");
	memmove(t->ids + 1, t->ids, np * sizeof *t->ids);
	t->ids[0] = t->v->sp.cls;
	t->ids[np + 1] = t->v->sp.sep;
	t->nids = np + 2;
	*ids = t->ids;
	*n = t->nids;
	return LX_OK;
}

/* ---- decoding ---- */

/* Replaces every occurrence of from (left to right, not overlapping) by the shorter to, in place. */
static size_t replace_all(char *s, size_t n, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), r = 0, w = 0;

	while (r < n) {
		if (r + fl <= n && memcmp(s + r, from, fl) == 0) {
			memcpy(s + w, to, tl);
			w += tl;
			r += fl;
		} else
			s[w++] = s[r++];
	}
	return w;
}

static int is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

lx_status lx_detokenize(lx_tokenizer *t, const int32_t *ids, size_t n, const char **text, size_t *len,
                        lx_err *e)
{
	static const char *clean[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},
	                                 {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},
	                                 {" 've", "'ve"}, {" 're", "'re"}};
	const lx_vocab_specials *sp = &t->v->sp;
	size_t i, w = 0, b = 0;

	for (i = 0; i < n; i++) {
		size_t k;
		const char *p = lx_vocab_token(t->v, ids[i], &k);
		if (!p)
			return lx_errf(e, LX_EINPUT, "id %ld at index %zu is outside the vocabulary (0 to %ld)",
			               (long)ids[i], i, (long)t->v->n - 1);
		if (ids[i] == sp->cls || ids[i] == sp->sep || ids[i] == sp->pad)
			continue;
		if (!grow(t, &t->text, &t->captext, w + k + 2, 1))
			return lx_errf(e, LX_EIO, "out of memory");
		if (w)
			t->text[w++] = ' ';
		memcpy(t->text + w, p, k);
		w += k;
	}
	if (!grow(t, &t->text, &t->captext, w + 1, 1))
		return lx_errf(e, LX_EIO, "out of memory");
	w = replace_all(t->text, w, " ##", "");
	while (w && is_ascii_space(t->text[w - 1]))
		w--;
	while (b < w && is_ascii_space(t->text[b]))
		b++;
	memmove(t->text, t->text + b, w - b);
	w -= b;
	for (i = 0; i < sizeof clean / sizeof clean[0]; i++)
		w = replace_all(t->text, w, clean[i][0], clean[i][1]);
	t->text[w] = 0;
	*text = t->text;
	*len = w;
	return LX_OK;
}

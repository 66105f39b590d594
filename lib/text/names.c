/* names.c - name lists: answers, vocabulary pieces, Visual Genome object and attribute labels (lx_heads.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "lx_names.h"

struct lx_names {
	char *path;
	char **name;  /* [n], each its own allocation */
	int n, cap;
};

void lx_names_free(lx_names *n)
{
	int i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++)
		free(n->name[i]);
	free(n->name);
	free(n->path);
	free(n);
}

int lx_names_count(const lx_names *n) { return n->n; }
const char *lx_names_get(const lx_names *n, int i) { return n->name[i]; }
const char *lx_names_path(const lx_names *n) { return n->path; }

int lx_names_find(const lx_names *n, const char *s)
{
	int i;

	for (i = 0; i < n->n; i++)
		if (strcmp(n->name[i], s) == 0)
			return i;
	return -1;
}

/* Bounds on what a name file may ask for: far above any real list (9500 answers, 30522 word pieces). */
#define MAX_NAMES (1 << 24)
#define MAX_FILE ((size_t)256 << 20)

static int push(lx_names *n, const char *s, size_t len)
{
	char *copy;

	if (n->n == n->cap) {
		int cap = n->cap ? 2 * n->cap : 256;
		char **p = realloc(n->name, (size_t)cap * sizeof *p);
		if (!p)
			return -1;
		n->name = p;
		n->cap = cap;
	}
	if (!(copy = malloc(len + 1)))
		return -1;
	memcpy(copy, s, len);
	copy[len] = 0;
	n->name[n->n++] = copy;
	return 0;
}

static lx_status read_file(const char *path, char **out, size_t *len, lx_err *e)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *p;
	size_t n = 0, cap = 0, got;

	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	do {
		if (cap - n < 65536) {
			cap = cap ? 2 * cap : 1 << 20;
			if (!(p = realloc(buf, cap + 1))) {
				free(buf);
				fclose(f);
				return lx_errf(e, LX_EIO, "%s: out of memory", path);
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0 && n <= MAX_FILE);
	if (n > MAX_FILE) {
		free(buf);
		fclose(f);
		return lx_errf(e, LX_EMODEL, "%s: larger than %zu bytes, too large for a list of names", path, MAX_FILE);
	}
	if (ferror(f)) {
		int err = errno;
		free(buf);
		fclose(f);
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(err));
	}
	fclose(f);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return LX_OK;
}

static lx_status load_lines(lx_names *n, const char *text, size_t len, int first_synonym, lx_err *e)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
		size_t k = (size_t)(stop - p);
		if (k && p[k - 1] == '\r')
			k--;
		if (first_synonym) {
			const char *comma = memchr(p, ',', k);
			if (comma)
				k = (size_t)(comma - p);
		}
		if (n->n == MAX_NAMES)
			return lx_errf(e, LX_EMODEL, "%s: more than %d names", n->path, MAX_NAMES);
		if (push(n, p, k))
			return lx_errf(e, LX_EIO, "%s: out of memory", n->path);
		p = nl ? nl + 1 : end;
	}
	return LX_OK;
}

/* A JSON list of strings, or of objects with a string "ans" (a file starting with [ or { is JSON). */
static lx_status load_json(lx_names *n, const char *text, size_t len, lx_err *e)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, 0, &je), *v;
	size_t i;
	lx_status rc = LX_OK;

	if (!root)
		return lx_errf(e, LX_EMODEL, "%s: line %d: %s", n->path, je.line, je.text);
	if (!json_is_array(root)) {
		json_decref(root);
		return lx_errf(e, LX_EMODEL, "%s: expected a JSON list of answers", n->path);
	}
	if (json_array_size(root) > MAX_NAMES) {
		json_decref(root);
		return lx_errf(e, LX_EMODEL, "%s: more than %d names", n->path, MAX_NAMES);
	}
	json_array_foreach(root, i, v) {
		json_t *s = json_is_object(v) ? json_object_get(v, "ans") : v;
		if (!json_is_string(s)) {
			rc = lx_errf(e, LX_EMODEL, "%s: entry %zu is neither a string nor an object with a string \"ans\"",
			             n->path, i);
			break;
		}
		if (push(n, json_string_value(s), json_string_length(s))) {
			rc = lx_errf(e, LX_EIO, "%s: out of memory", n->path);
			break;
		}
	}
	json_decref(root);
	return rc;
}

lx_status lx_names_load(lx_names **out, const char *path, int kind, lx_err *e)
{
	char *text = NULL;
	size_t len = 0;
	lx_status rc;

	*out = NULL;
	if ((rc = read_file(path, &text, &len, e)))
		return rc;
	rc = lx_names_parse(out, text, len, path, kind, e);
	free(text);
	return rc;
}

lx_status lx_names_parse(lx_names **out, const char *text, size_t len, const char *path, int kind, lx_err *e)
{
	lx_names *n = calloc(1, sizeof *n);
	size_t i = 0;
	lx_status rc;

	*out = NULL;
	if (!n || !(n->path = strdup(path))) {
		free(n);
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	}
	while (i < len && text[i] && strchr(" \t\r\n", text[i]))
		i++;
	if (kind == LX_NAMES_ANSWERS && i < len && (text[i] == '[' || text[i] == '{'))
		rc = load_json(n, text, len, e);
	else
		rc = load_lines(n, text, len, kind == LX_NAMES_FIRST, e);
	if (!rc && n->n == 0)
		rc = lx_errf(e, LX_EMODEL, "%s: the file holds no names", path);
	if (rc) {
		lx_names_free(n);
		return rc;
	}
	*out = n;
	return LX_OK;
}

lx_status lx_names_load_model(lx_names **out, const char *dir, int which, const char *given, int want, lx_err *e)
{
	static const struct {
		const char *files[3];
		int kind;
		const char *what;
	} lists[] = {
		[LX_LIST_ANSWERS] = {{"answers.json", "answers.txt"}, LX_NAMES_ANSWERS, "answers (num_qa_labels)"},
		[LX_LIST_OBJECTS] = {{"objects_vocab.txt"}, LX_NAMES_FIRST, "object labels (num_object_labels)"},
		[LX_LIST_ATTRIBUTES] = {{"attributes_vocab.txt"}, LX_NAMES_FIRST, "attribute labels (num_attr_labels)"},
		[LX_LIST_WORDS] = {{"vocab.txt"}, LX_NAMES_LINES, "pieces (vocab_size)"},
	};
	char path[4096];
	lx_status rc;
	int i;

	*out = NULL;
	if (given)
		snprintf(path, sizeof path, "%s", given);
	else {
		for (i = 0; lists[which].files[i]; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, lists[which].files[i]);
			if (access(path, F_OK) == 0)
				break;
		}
		if (!lists[which].files[i])
			return LX_OK;
	}
	if ((rc = lx_names_load(out, path, lists[which].kind, e)))
		return rc;
	if (lx_names_count(*out) != want) {
		rc = lx_errf(e, LX_EMODEL, "%s: %d names, but the model has %d %s", path, lx_names_count(*out), want,
		             lists[which].what);
		lx_names_free(*out);
		*out = NULL;
	}
	return rc;
}

/*
 * lx_names.h - liblx's text layer: name lists (answers, objects, attributes, words) read from the files
 * the authors and Visual Genome ship (formats/labels.md). Ownership and errors as in lx_core.h.
 */
#ifndef LX_NAMES_H
#define LX_NAMES_H

#include "lx_core.h"

/* ---- name lists ------------------------------------------------------------------------------------- */

typedef struct lx_names lx_names;

enum {
	LX_NAMES_LINES,    /* one name a line, verbatim (vocab.txt) */
	LX_NAMES_FIRST,    /* one entry a line, the first of its comma-separated synonyms (VG vocab files) */
	LX_NAMES_ANSWERS   /* a JSON list of strings (label2ans), a JSON list of {"ans": ...} objects
	                      (lxmert_all_ans.json) when the file starts with [ or {; else one answer a line */
};

/* Reads a name list from path. Lines end with \n (a \r before it is dropped); a last line without \n counts.
 * LX_EMODEL if the file cannot be read or parsed, naming the file and, for JSON, the line and entry. */
lx_status lx_names_load(lx_names **out, const char *path, int kind, lx_err *e);
/* The same from text already in memory (len bytes; path is for messages). */
lx_status lx_names_parse(lx_names **out, const char *text, size_t len, const char *path, int kind, lx_err *e);
void lx_names_free(lx_names *n);
int lx_names_count(const lx_names *n);
/* The i-th name (0 <= i < count). */
const char *lx_names_get(const lx_names *n, int i);
/* Index of name s, or -1. */
int lx_names_find(const lx_names *n, const char *s);
/* The path the list was read from. */
const char *lx_names_path(const lx_names *n);

/* ---- the name lists of a model directory ------------------------------------------------------------ */

enum { LX_LIST_ANSWERS, LX_LIST_OBJECTS, LX_LIST_ATTRIBUTES, LX_LIST_WORDS };

/* Loads list `which` of the model in dir: from `given` when not NULL (the tools' --labels, --objects and
 * --attributes), else from the first of its files in dir that exists: answers.json or answers.txt (read as
 * LX_NAMES_ANSWERS), objects_vocab.txt, attributes_vocab.txt (LX_NAMES_FIRST), vocab.txt (LX_NAMES_LINES).
 * *out is NULL when given is NULL and there is no such file. LX_EMODEL, naming the file, when it cannot be
 * read or does not hold `want` names (the model's num_qa_labels, num_object_labels, ...). */
lx_status lx_names_load_model(lx_names **out, const char *dir, int which, const char *given, int want, lx_err *e);

#endif

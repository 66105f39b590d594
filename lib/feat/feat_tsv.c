/* feat_tsv.c - the authors' obj36 TSV and the bottom-up-attention (BUTD) Caffe TSV, one image a line
 * (formats/obj36-tsv.md, formats/butd-tsv.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "feat/feat_impl.h"

#define MAX_FIELDS 10
#define MAX_BOXES LX_FEAT_MAX_BOXES
#define MAX_SIDE 1000000

typedef struct {
	char *s;
	size_t len;
} span;

/* Field positions in each layout; -1 where the layout has none. */
typedef struct {
	int nfields, id, h, w, nbox, boxes, feats, obj_id, obj_conf, attr_id, attr_conf;
	const char *name;
} layout;

static const layout OBJ36 = {10, 0, 1, 2, 7, 8, 9, 3, 4, 5, 6, "obj36 TSV"};
static const layout BUTD = {6, 0, 2, 1, 3, 4, 5, -1, -1, -1, -1, "BUTD TSV"};

static const char *obj36_names[] = {"img_id", "img_h", "img_w", "objects_id", "objects_conf",
                                    "attrs_id", "attrs_conf", "num_boxes", "boxes", "features"};
static const char *butd_names[] = {"image_id", "image_w", "image_h", "num_boxes", "boxes", "features"};

typedef struct {
	lx_feat_file *f;
	const layout *L;
	const char **names;
	lx_feat_image *im;
	span fld[MAX_FIELDS];
} line_ctx;

static lx_status parse_int(line_ctx *c, int k, long lo, long hi, int *out, lx_err *e)
{
	span s = c->fld[k];
	char *end;
	long v;

	errno = 0;
	v = s.len ? strtol(s.s, &end, 10) : 0;
	if (!s.len || end != s.s + s.len || errno || v < lo || v > hi) {
		char where[400], buf[40];
		snprintf(buf, sizeof buf, "%.*s", (int)(s.len < 30 ? s.len : 30), s.s);
		return lx_errf(e, LX_EINPUT, "%s: field %s is \"%s\", expected an integer from %ld to %ld",
		               lx_feat_image_where(c->im, where, sizeof where), c->names[k], buf, lo, hi);
	}
	*out = (int)v;
	return LX_OK;
}

/* Python 3 writers that forget to decode bytes leave b'...' around the base64 text. */
static span unwrap(span s)
{
	if (s.len >= 3 && s.s[0] == 'b' && s.s[1] == '\'' && s.s[s.len - 1] == '\'') {
		s.s += 2;
		s.len -= 3;
	}
	return s;
}

/* Decodes field k into dst, which must receive exactly want bytes (want < 0: any multiple of -want bytes,
 * the count returned in *got). */
static lx_status decode(line_ctx *c, int k, void *dst, size_t want, lx_err *e)
{
	span s = unwrap(c->fld[k]);
	size_t have, badpos;
	char where[400];

	lx_feat_image_where(c->im, where, sizeof where);
	if (s.len % 4)
		return lx_errf(e, LX_EINPUT, "%s: field %s is not valid base64 (%zu characters, not a multiple of 4)",
		               where, c->names[k], s.len);
	have = lx_base64_size(s.s, s.len);
	if (have != want)
		return lx_errf(e, LX_EINPUT, "%s: field %s holds %zu bytes, num_boxes %d needs %zu", where,
		               c->names[k], have, c->im->n, want);
	if (lx_base64_decode(s.s, s.len, dst, &badpos) < 0) {
		if (badpos >= s.len)
			badpos = s.len - 1;
		return lx_errf(e, LX_EINPUT, "%s: field %s is not valid base64 (character '%c' at offset %zu)", where,
		               c->names[k], s.s[badpos], badpos);
	}
	return LX_OK;
}

/* An int64 array of n ids into int32. */
static lx_status decode_ids(line_ctx *c, int k, int32_t *dst, lx_err *e)
{
	size_t n = (size_t)c->im->n, i;
	lx_status st;

	if (!feat_grow(&c->f->scratch, &c->f->scratch_cap, n * 8 + 8))
		return lx_errf(e, LX_EIO, "%s: out of memory", c->f->path);
	if ((st = decode(c, k, c->f->scratch, n * 8, e)))
		return st;
	for (i = 0; i < n; i++) {
		int64_t v;
		memcpy(&v, c->f->scratch + 8 * i, 8);
		if (v < 0 || v > INT32_MAX) {
			char where[400];
			return lx_errf(e, LX_EINPUT, "%s: field %s: id %lld of box %zu is outside 0..%d",
			               lx_feat_image_where(c->im, where, sizeof where), c->names[k], (long long)v, i,
			               INT32_MAX);
		}
		dst[i] = (int32_t)v;
	}
	return LX_OK;
}

static lx_status decode_feats(line_ctx *c, lx_err *e)
{
	lx_feat_image *im = c->im;
	span s = unwrap(c->fld[c->L->feats]);
	size_t bytes = lx_base64_size(s.s, s.len), row = (size_t)im->n * 4;
	char where[400];

	if (im->n == 0 || s.len % 4)
		return decode(c, c->L->feats, im->feats, 0, e);
	if (bytes == 0 || bytes % row)
		return lx_errf(e, LX_EINPUT, "%s: field %s holds %zu bytes, not a whole number of float32 rows for "
		               "num_boxes %d", lx_feat_image_where(im, where, sizeof where), c->names[c->L->feats], bytes,
		               im->n);
	if (bytes / row > LX_FEAT_MAX_DIM)
		return lx_errf(e, LX_EINPUT, "%s: field %s: %zu features per box, more than %d",
		               lx_feat_image_where(im, where, sizeof where), c->names[c->L->feats], bytes / row, LX_FEAT_MAX_DIM);
	im->dim = (int)(bytes / row);
	if (!lx_feat_image_reserve(im, im->n, im->dim))
		return lx_errf(e, LX_EIO, "%s: out of memory", c->f->path);
	return decode(c, c->L->feats, im->feats, bytes, e);
}

static lx_status parse_line(line_ctx *c, lx_err *e)
{
	const layout *L = c->L;
	lx_feat_image *im = c->im;
	size_t n4;
	lx_status st;

	if ((st = parse_int(c, L->h, 1, MAX_SIDE, &im->img_h, e)) || (st = parse_int(c, L->w, 1, MAX_SIDE, &im->img_w, e)) ||
	    (st = parse_int(c, L->nbox, 0, MAX_BOXES, &im->n, e)))
		return st;
	if (!lx_feat_image_reserve(im, im->n, 0))
		return lx_errf(e, LX_EIO, "%s: out of memory", c->f->path);
	n4 = (size_t)im->n * 4;
	if ((st = decode(c, L->boxes, im->boxes, n4 * 4, e)))
		return st;
	im->has_obj = im->has_attr = L->obj_id >= 0;
	if (L->obj_id >= 0 && ((st = decode_ids(c, L->obj_id, im->obj_ids, e)) ||
	                       (st = decode(c, L->obj_conf, im->obj_conf, (size_t)im->n * 4, e)) ||
	                       (st = decode_ids(c, L->attr_id, im->attr_ids, e)) ||
	                       (st = decode(c, L->attr_conf, im->attr_conf, (size_t)im->n * 4, e))))
		return st;
	return decode_feats(c, e);
}

/* Splits the line (without its line end) into fields. */
static lx_status split(line_ctx *c, char *s, size_t len, lx_err *e)
{
	int nf = 0;
	char *p = s, *end = s + len;

	for (;;) {
		char *t = memchr(p, '\t', (size_t)(end - p));
		if (nf < MAX_FIELDS) {
			c->fld[nf].s = p;
			c->fld[nf].len = (size_t)((t ? t : end) - p);
		}
		nf++;
		if (!t)
			break;
		p = t + 1;
	}
	if (nf != c->L->nfields)
		return lx_errf(e, LX_EINPUT, "%s: line %ld: %d tab-separated fields, expected %d (%s)", c->f->path,
		               c->f->lineno, nf, c->L->nfields, c->L->name);
	return LX_OK;
}

/* An image's id (the first field of a line) must be there and hold no NUL byte: the id is a C string from here on,
 * and "a\0b" would become "a" (another image's, or none). */
static lx_status check_id(const lx_feat_file *f, const char *name, const char *id, size_t len, long line,
                          lx_err *e)
{
	if (len == 0)
		return lx_errf(e, LX_EINPUT, "%s: line %ld: empty %s", f->path, line, name);
	if (memchr(id, '\0', len))
		return lx_errf(e, LX_EINPUT, "%s: line %ld: %s holds a NUL byte", f->path, line, name);
	return LX_OK;
}

ssize_t feat_tsv_getline(lx_feat_file *f)
{
	size_t n = 0;
	int c = EOF, over = 0;

	flockfile(f->f);
	while ((c = getc_unlocked(f->f)) != EOF) {
		if (n == (size_t)FEAT_TSV_MAX_LINE && c != '\n') {
			over = 1;
			while ((c = getc_unlocked(f->f)) != EOF && c != '\n')
				;
			break;
		}
		if (n + 2 > f->line_cap) {
			size_t cap = f->line_cap < 256 ? 256 : 2 * f->line_cap;
			char *p;
			if (cap > (size_t)FEAT_TSV_MAX_LINE + 2)
				cap = (size_t)FEAT_TSV_MAX_LINE + 2;
			if (!(p = realloc(f->line, cap))) {
				funlockfile(f->f);
				errno = ENOMEM;
				return -1;
			}
			f->line = p;
			f->line_cap = cap;
		}
		f->line[n++] = (char)c;
		if (c == '\n')
			break;
	}
	funlockfile(f->f);
	if (over)
		return -2;
	if (n)
		f->line[n] = 0;
	if (c == EOF && ferror(f->f))
		return -1;
	return n ? (ssize_t)n : c == EOF ? 0 : -1;
}

lx_status feat_tsv_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e)
{
	line_ctx c;
	ssize_t n;
	size_t len;
	lx_status st;

	*got = 0;
	errno = 0;
	n = f->pending ? f->pending : feat_tsv_getline(f);
	f->pending = 0;
	if (n == -2) {
		f->lineno++;
		return lx_errf(e, LX_EINPUT, "%s: line %ld: longer than %ld bytes, the limit of a TSV line", f->path,
		               f->lineno, FEAT_TSV_MAX_LINE);
	}
	if (n < 0)
		return lx_errf(e, LX_EIO, "%s: line %ld: %s", f->path, f->lineno + 1, strerror(errno));
	if (n == 0)
		return LX_OK;
	f->lineno++;
	f->off += (uint64_t)n;
	len = (size_t)n;
	if (f->line[len - 1] != '\n')
		return lx_errf(e, LX_EINPUT, "%s: line %ld: truncated (the file ends inside the line)", f->path,
		               f->lineno);
	len--;
	if (len && f->line[len - 1] == '\r')
		len--;
	memset(&c, 0, sizeof c);
	c.f = f;
	c.L = f->fmt == LX_FEAT_OBJ36 ? &OBJ36 : &BUTD;
	c.names = f->fmt == LX_FEAT_OBJ36 ? obj36_names : butd_names;
	c.im = im;
	im->src = f->path;
	im->line = f->lineno;
	im->is_record = 0;
	im->n = im->dim = 0;
	if ((st = split(&c, f->line, len, e)))
		return st;
	if ((st = check_id(f, c.names[0], c.fld[0].s, c.fld[0].len, f->lineno, e)))
		return st;
	if (!lx_feat_image_set_id(im, c.fld[0].s, c.fld[0].len))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	if ((st = parse_line(&c, e)))
		return st;
	*got = 1;
	return LX_OK;
}

/* ---- scanning for the index: the first field of every line, and where the line starts ---- */

#define SCAN_CHUNK (1 << 20)
#define MAX_ID 1024

typedef struct {
	char id[MAX_ID];
	size_t idlen;
	int in_id;            /* still reading the first field */
	uint64_t start;       /* offset of the line */
	long line;
} scan_state;

static lx_status scan_chunk(lx_feat_file *f, scan_state *s, const char *buf, size_t n, uint64_t base,
                            lx_feat_scan_fn fn, void *ctx, lx_err *e)
{
	size_t i = 0;
	lx_status st;

	while (i < n) {
		if (s->in_id) {
			const char *t = buf + i;
			size_t k = 0;
			while (i + k < n && t[k] != '\t' && t[k] != '\n')
				k++;
			if (s->idlen + k >= MAX_ID)
				return lx_errf(e, LX_EINPUT, "%s: line %ld: first field longer than %d bytes", f->path, s->line,
				               MAX_ID - 1);
			memcpy(s->id + s->idlen, t, k);
			s->idlen += k;
			i += k;
			if (i == n)
				break;
			if (buf[i] == '\n')
				return lx_errf(e, LX_EINPUT, "%s: line %ld: 1 tab-separated field, expected %d", f->path,
				               s->line, f->fmt == LX_FEAT_OBJ36 ? 10 : 6);
			if ((st = check_id(f, "img_id", s->id, s->idlen, s->line, e)) ||
			    (st = fn(ctx, s->id, s->idlen, (lx_feat_pos){s->start, s->line}, e)))
				return st;
			s->in_id = 0;
			i++;
		} else {
			const char *nl = memchr(buf + i, '\n', n - i);
			if (!nl)
				break;
			i = (size_t)(nl - buf) + 1;
			s->in_id = 1;
			s->idlen = 0;
			s->start = base + i;
			s->line++;
		}
	}
	return LX_OK;
}

lx_status feat_tsv_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e)
{
	scan_state s;
	char *buf;
	uint64_t base = 0;
	lx_status st = LX_OK;
	size_t n;

	if (fseeko(f->f, 0, SEEK_SET))
		return lx_errf(e, LX_EMODEL, "%s: cannot seek (%s): joining needs a regular file", f->path,
		               strerror(errno));
	if (!(buf = malloc(SCAN_CHUNK)))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	memset(&s, 0, sizeof s);
	s.in_id = 1;
	s.line = 1;
	f->pending = 0;
	rewind(f->f);
	while ((n = fread(buf, 1, SCAN_CHUNK, f->f)) > 0) {
		if ((st = scan_chunk(f, &s, buf, n, base, fn, ctx, e)))
			break;
		base += n;
	}
	if (!st && ferror(f->f))
		st = lx_errf(e, LX_EIO, "%s: %s", f->path, strerror(errno));
	else if (!st && !(s.in_id && s.idlen == 0))
		st = lx_errf(e, LX_EINPUT, "%s: line %ld: truncated (the file ends inside the line)", f->path, s.line);
	free(buf);
	rewind(f->f);
	f->off = 0;
	f->lineno = 0;
	return st;
}

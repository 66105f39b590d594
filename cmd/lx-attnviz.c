/* lx-attnviz - every attention map of lx-encode --attentions as pictures, NPY files and a page (lx-attnviz(1)). */
#define _GNU_SOURCE /* syncfs */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx.h"
#include "lx_attn.h"
#include "lx_image.h"
#include "tool.h"

#define DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

enum { O_IMAGES = 256, O_TOKEN, O_LAYER, O_HEAD, O_FONT, O_CELL, O_MAX_SIDE, O_MAX_PIXELS, O_TOP, O_OBJECTS, O_KINDS, O_PNG, O_NO_NPY,
       O_SCALE };

static const char synopsis[] = "-o DIR [options]";
static const char about[] =
	"Reads records of lx-encode --attentions on stdin and writes, per record, an HTML page of its attention\n"
	"maps, the boxes weighted by one word's attention, the maps as .npy files and (--png) heatmap pictures\n"
	"into DIR, with DIR/index.html linking them. See lx-attnviz(1).";

static const tool_option option_table[] = {
	{'o', "output", "DIR", "the folder to write into"},
	{O_IMAGES, "images", "DIR", "where the photos are, named by img_id"},
	{O_TOKEN, "token", "I", "the word whose attention over the boxes is drawn (0)"},
	{O_LAYER, "layer", "L", "the cross layer of the boxes picture (the last)"},
	{O_HEAD, "head", "H|mean", "one head instead of the mean over heads"},
	{O_FONT, "font", "FILE", "a TrueType or OpenType font for the pictures"},
	{O_CELL, "cell", "PX", "pixels per entry in the heatmaps (1 to 64)"},
	{O_MAX_SIDE, "max-side", "PX", "the longest side of the boxes picture (640)"},
	{O_MAX_PIXELS, "max-pixels", "N", "refuse a photo of more than N pixels, width x height (64000000)"},
	{O_TOP, "top", "K", "the strongest boxes framed and labelled (5)"},
	{'m', "model", "DIR", "the model: names of obj_ids (objects_vocab.txt) and of answers\n(answers.json) found in DIR"},
	{O_OBJECTS, "objects", "FILE", "the names of obj_ids, one a line (labels/vg_objects_vocab.txt)"},
	{O_KINDS, "kinds", "LIST", "the maps on the pages and in files, comma-separated, or all\n(cross,cross-vision,rollout-lang,rollout-vision)"},
	{O_PNG, "png", NULL, "also a heatmap picture of each map (KIND.png)"},
	{O_NO_NPY, "no-npy", NULL, "no .npy file of the maps"},
	{O_SCALE, "scale", "S", "the colour scale: map (0 to the map's largest), fixed (0 to 1)\nor row (0 to each row's largest)"},
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-attnviz", synopsis, about, option_table};


typedef struct {
	char *stem, *sent, *answer;
	float score;
	int has_answer;
} entry;

/* The run: options, the font, the view of the record in hand (its buffers kept from record to record), and
 * the records written so far, with their names in a hash table (slots hold an entry's index + 1). */
typedef struct {
	const char *out;        /* -o DIR, named in messages */
	char dir[4400];         /* where the files are written: a folder beside DIR, moved to DIR at the end */
	const char *images, *font_path, *model, *objects_path;
	int token, layer, head, cell, max_side, top, png, npy, scale;
	long long max_pixels;
	unsigned kinds;         /* bit k: kind k of the view is on the pages and in files */
	lx_font *font;
	lx_names *objects, *answers;
	lx_view v;
	int rel_w, rel_h;       /* the size of the relevance picture in hand */
	entry *done;
	size_t ndone, capdone;
	size_t *slot, nslot;
} run;

static char *dup_s(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	return d ? memcpy(d, s, n) : NULL;
}

/* The record as a view, with --token, --layer and --head checked against it. */
static lx_status decode(run *r, const lx_record *rec, lx_err *e)
{
	lx_view *v = &r->v;
	lx_status rc;

	if ((rc = lx_view_decode(v, rec, e)))
		return rc;
	if (r->token >= v->T)
		return lx_errf(e, LX_EINPUT, "--token %d, but the record has %d words", r->token, v->T);
	if (r->layer >= v->kind[LX_VIEW_CROSS].a.layers)
		return lx_errf(e, LX_EINPUT, "--layer %d, but the record has %d cross layers", r->layer,
		               v->kind[LX_VIEW_CROSS].a.layers);
	if (r->head >= v->heads)
		return lx_errf(e, LX_EINPUT, "--head %d, but the maps have %d heads", r->head, v->heads);
	v->max_pixels = r->max_pixels;
	return lx_view_picture(v, rec, r->images, r->max_side, e);
}

/* ---- writing ---- */

/* Every file goes into r->dir, the folder built aside and moved to DIR whole at the end (lx_dir_publish):
 * nothing of a run is seen under DIR before it is all there. Messages name the file under DIR. */
static lx_status put_file(const run *r, const char *name, lx_write_fn fn, void *ctx, lx_err *e)
{
	char path[sizeof r->dir + 400], shown[sizeof r->dir + 400];
	FILE *f;
	lx_status rc;
	int bad;

	snprintf(path, sizeof path, "%s/%s", r->dir, name);
	snprintf(shown, sizeof shown, "%s/%s", r->out, name);
	if (!(f = fopen(path, "wb")))
		return lx_errf(e, LX_EIO, "%s: %s", shown, strerror(errno));
	rc = fn(ctx, f, shown, e);
	bad = ferror(f);
	if (fclose(f) != 0 && !rc)
		rc = lx_errf(e, LX_EIO, "%s: write failed: %s", shown, strerror(errno));
	else if (bad && !rc)
		rc = lx_errf(e, LX_EIO, "%s: write failed", shown);
	return rc;
}

typedef struct {
	const void *p;
	size_t n;
} bytes;

static lx_status bytes_fn(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const bytes *b = ctx;

	return fwrite(b->p, 1, b->n, f) == b->n ? LX_OK : lx_errf(e, LX_EIO, "%s: write failed: %s", path, strerror(errno));
}

static lx_status write_png(const run *r, const lx_image *im, const char *name, lx_err *e)
{
	unsigned char *png = NULL;
	size_t len;
	lx_status rc;
	bytes b;

	if ((rc = lx_image_encode_png(im, &png, &len, e)))
		return rc;
	b.p = png;
	b.n = len;
	rc = put_file(r, name, bytes_fn, &b, e);
	free(png);
	return rc;
}

typedef struct {
	const lx_attn *a;
	int roll;
} npy_map;

static lx_status npy_fn(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const npy_map *m = ctx;
	int64_t shape[4] = {m->a->layers, m->a->heads, m->a->q, m->a->k};

	return lx_npy_fput(f, path, m->a->p, m->roll ? 2 : 4, m->roll ? shape + 2 : shape, e);
}

static lx_status write_grids(run *r, const char *stem, lx_err *e)
{
	const lx_view *v = &r->v;
	char path[4400], title[512];
	lx_status rc;
	int k;

	for (k = 0; k < LX_VIEW_KINDS; k++) {
		const lx_page_kind *kd = &v->kind[k];
		const lx_attn *a = &kd->a;
		int roll = k >= LX_VIEW_RLANG;
		lx_grid_spec s = {title, kd->layer_name, (const char *const *)(kd->q == 't' ? v->tok : v->lab),
		                  (const char *const *)(kd->k == 't' ? v->tok : v->lab), r->cell, 1, roll, r->scale};
		lx_image *im;
		npy_map m = {a, roll};
		if (!(r->kinds >> k & 1))
			continue;
		if (!roll)
			snprintf(title, sizeof title, "%s: %s, %d layers x %d heads", stem, kd->name, a->layers, a->heads);
		else
			snprintf(title, sizeof title, "%s: %s", stem, kd->name);
		snprintf(path, sizeof path, "%s.%s.npy", stem, kd->key);
		if (r->npy && (rc = put_file(r, path, npy_fn, &m, e)))
			return rc;
		if (!r->png)
			continue;
		if ((rc = lx_attn_grid(&im, a, &s, r->font, e)))
			return rc;
		snprintf(path, sizeof path, "%s.%s.png", stem, kd->key);
		rc = write_png(r, im, path, e);
		lx_image_free(im);
		if (rc)
			return rc;
	}
	return LX_OK;
}

/* Boxes over the picture weighted by w, written to DIR/STEM.SUFFIX.png, and kept in *keep when keep is not
 * NULL (for the page). */
static lx_status boxes_picture(run *r, const float *w, const char *title, const char *stem, const char *suffix,
                               lx_image **keep, lx_err *e)
{
	const lx_view *v = &r->v;
	lx_image *im = NULL;
	char path[4400];
	lx_status rc;

	rc = lx_attn_boxes(&im, v->picture, v->boxes, w, v->N, (const char *const *)v->lab, r->top, r->scale, title,
	                   r->font, e);
	if (!rc) {
		snprintf(path, sizeof path, "%s.%s.png", stem, suffix);
		rc = write_png(r, im, path, e);
	}
	if (!rc && keep)
		*keep = im;
	else
		lx_image_free(im);
	return rc;
}

/* The weights of word --token over the boxes: cross layer --layer, head --head or the mean over heads. */
static lx_status write_boxes(run *r, const char *stem, lx_err *e)
{
	const lx_view *v = &r->v;
	const lx_attn *a = &v->kind[LX_VIEW_CROSS].a;
	int layer = r->layer >= 0 ? r->layer : a->layers - 1, j;
	size_t qk = (size_t)a->q * (size_t)a->k;
	float *w = malloc((size_t)v->N * sizeof *w), *mean = malloc(qk * sizeof *mean);
	char title[512], heads[64];
	lx_status rc;

	if (!w || !mean) {
		free(w);
		free(mean);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	if (r->head >= 0) {
		const float *row = a->p + ((size_t)layer * (size_t)a->heads + (size_t)r->head) * qk + (size_t)r->token * a->k;
		memcpy(w, row, (size_t)v->N * sizeof *w);
		snprintf(heads, sizeof heads, "head %d", r->head);
	} else {
		lx_attn_head_mean(a, layer, mean);
		for (j = 0; j < v->N; j++)
			w[j] = mean[(size_t)r->token * a->k + j];
		snprintf(heads, sizeof heads, "mean of %d heads", a->heads);
	}
	snprintf(title, sizeof title, "%s: word %d \"%s\" over the boxes\ncross-attention, cross layer %d (of 0 to %d), %s",
	         stem, r->token, v->tok[r->token], layer, a->layers - 1, heads);
	rc = boxes_picture(r, w, title, stem, "boxes", NULL, e);
	free(w);
	free(mean);
	return rc;
}

/* The name of the answer relevance_answer explains, when the record's answers name it. */
static const char *relevance_answer(const lx_view *v)
{
	int i;

	for (i = 0; i < v->nans; i++)
		if (v->ans_index[i] == v->rel_answer)
			return v->ans[i];
	return NULL;
}

/* The boxes coloured by relevance_boxes, as DIR/STEM.relevance.png and, for the page, as PNG in base64. */
static lx_status write_relevance(run *r, const char *stem, char **b64, lx_err *e)
{
	const lx_view *v = &r->v;
	const char *name = relevance_answer(v);
	unsigned char *png = NULL;
	lx_image *im = NULL;
	char title[512];
	size_t len;
	lx_status rc;

	float *w = malloc((size_t)v->N * sizeof *w), sum = 0;
	int i;

	if (!w)
		return lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; i < v->N; i++)
		sum += v->rel_boxes[i] > 0 ? v->rel_boxes[i] : 0;
	for (i = 0; i < v->N; i++) /* as shares of the boxes' relevance */
		w[i] = sum > 0 && v->rel_boxes[i] > 0 ? v->rel_boxes[i] / sum : 0;
	snprintf(title, sizeof title, "%s: what in the picture made the answer%s%s%s (%ld)\nrelevance of the boxes "
	         "(lx-explain), as shares of their sum", stem, name ? " \"" : "", name ? name : "", name ? "\"" : "",
	         v->rel_answer);
	if (!(rc = boxes_picture(r, w, title, stem, "relevance", &im, e)) &&
	    !(rc = lx_image_encode_png(im, &png, &len, e)))
		rc = lx_base64(png, len, b64, e);
	if (!rc) {
		r->rel_w = im->w;
		r->rel_h = im->h;
	}
	lx_image_free(im);
	free(png);
	free(w);
	return rc;
}

static lx_status page_fn(void *ctx, FILE *f, const char *path, lx_err *e) { return lx_page_write(f, ctx, path, e); }

static lx_status write_page(run *r, const char *stem, long number, const char *rel_b64, lx_err *e)
{
	const lx_view *v = &r->v;
	lx_page p;
	lx_page_kind shown[LX_VIEW_KINDS];
	unsigned char *png = NULL;
	size_t len;
	char *b64 = NULL, path[4400];
	lx_status rc;
	int k;

	/* a photo as JPEG (a tenth of its PNG), the canvas as PNG */
	if ((rc = v->photo ? lx_image_encode_jpeg(v->picture, 85, &png, &len, e) : lx_image_encode_png(v->picture, &png, &len, e)) ||
	    (rc = lx_base64(png, len, &b64, e))) {
		free(png);
		return rc;
	}
	memset(&p, 0, sizeof p);
	p.picture_jpeg = v->photo;
	p.id = stem;
	p.record = number;
	p.sent = v->sent;
	p.T = v->T;
	p.N = v->N;
	p.tokens = (const char *const *)v->tok;
	p.box_labels = (const char *const *)v->lab;
	p.boxes = v->boxes;
	p.picture_b64 = b64;
	p.pic_w = v->picture->w;
	p.pic_h = v->picture->h;
	p.picture_note = v->note;
	p.nanswers = v->nans;
	p.answers = (const char *const *)v->ans;
	p.scores = v->score;
	for (k = 0; k < LX_VIEW_KINDS; k++)
		if (r->kinds >> k & 1)
			shown[p.nkinds++] = v->kind[k];
	p.kinds = shown;
	p.start_kind = r->kinds >> LX_VIEW_CROSS & 1 ? "cross" : shown[0].key;
	p.start_layer = r->layer >= 0 ? r->layer : v->kind[LX_VIEW_CROSS].a.layers - 1;
	p.start_head = r->head;
	p.start_token = r->token;
	p.files = stem;
	p.npy = r->npy;
	p.png = r->png;
	p.scale = r->scale;
	if (rel_b64) {
		p.rel_words = v->rel_words;
		p.rel_boxes = v->rel_boxes;
		p.rel_answer = v->rel_answer;
		p.rel_answer_name = relevance_answer(v);
		p.rel_picture_b64 = rel_b64;
		p.rel_w = r->rel_w;
		p.rel_h = r->rel_h;
	}
	snprintf(path, sizeof path, "%s.html", stem);
	rc = put_file(r, path, page_fn, &p, e);
	free(png);
	free(b64);
	return rc;
}

/* ---- names (formats/attnviz.md) ---- */

#define NAME_MAX_LEN 100  /* the longest name; a longer one is cut to NAME_KEEP bytes and a hash */
#define NAME_KEEP 80

static uint64_t fnv1a(const char *s, size_t n, int fold)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		h = (h ^ (fold && c >= 'A' && c <= 'Z' ? c + 32 : c)) * 1099511628211ULL;
	}
	return h;
}

/* A name is taken when an earlier record has it or it is "index", in any case of its letters (a file system
 * that ignores case would make them one file). */
static int taken(const run *r, const char *name)
{
	size_t i;

	if (!strcasecmp(name, "index"))
		return 1;
	if (!r->nslot)
		return 0;
	for (i = fnv1a(name, strlen(name), 1) & (r->nslot - 1); r->slot[i]; i = (i + 1) & (r->nslot - 1))
		if (!strcasecmp(r->done[r->slot[i] - 1].stem, name))
			return 1;
	return 0;
}

/* Enters r->done[r->ndone - 1]'s name in the table, which stays at most half full. */
static lx_status enter(run *r, lx_err *e)
{
	size_t i, j, n;

	if (2 * r->ndone > r->nslot) {
		n = r->nslot ? 2 * r->nslot : 256;
		free(r->slot);
		if (!(r->slot = calloc(n, sizeof *r->slot)))
			return lx_errf(e, LX_EIO, "out of memory");
		r->nslot = n;
		for (j = 0; j + 1 < r->ndone; j++) {
			for (i = fnv1a(r->done[j].stem, strlen(r->done[j].stem), 1) & (n - 1); r->slot[i]; i = (i + 1) & (n - 1))
				;
			r->slot[i] = j + 1;
		}
	}
	j = r->ndone - 1;
	for (i = fnv1a(r->done[j].stem, strlen(r->done[j].stem), 1) & (r->nslot - 1); r->slot[i];
	     i = (i + 1) & (r->nslot - 1))
		;
	r->slot[i] = j + 1;
	return LX_OK;
}

/* The record's name: its question_id, else its img_id, else "record-N"; characters other than letters,
 * digits, '.', '-' and '_' become '_'; a name longer than NAME_MAX_LEN bytes becomes its first NAME_KEEP and
 * '-' and 16 hex digits of a hash of the whole id; a name taken gets "-2", "-3", ... until it is not. An id
 * with a NUL byte is refused (LX_EINPUT): the name would end at it. */
static lx_status record_stem(const run *r, const lx_record *rec, long number, char *buf, size_t n, lx_err *e)
{
	static const char *keys[] = {"question_id", "img_id"};
	char base[NAME_MAX_LEN + 1];
	const char *id = NULL;
	size_t i, j, len = 0;
	long k;

	for (i = 0; i < 2 && !id; i++) {
		const msgpack_object *o = lx_record_get(rec, keys[i]);
		if (!o)
			continue;
		if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN) {
			id = o->via.str.ptr;
			len = o->via.str.size;
			if (memchr(id, 0, len))
				return lx_errf(e, LX_EINPUT, "field %s: holds a NUL byte, which no file name can", keys[i]);
		} else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
			lx_object_text(o, base, sizeof base);
			id = base;
			len = strlen(base);
		}
	}
	if (!id || !len || id[0] == '.')
		len = (size_t)snprintf(base, sizeof base, "record-%ld", number);
	else if (len > NAME_MAX_LEN)
		snprintf(base, sizeof base, "%.*s-%016llx", NAME_KEEP, id, (unsigned long long)fnv1a(id, len, 0));
	else if (id != base)
		snprintf(base, sizeof base, "%.*s", (int)len, id);
	for (j = 0; base[j]; j++) {
		char c = base[j];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			base[j] = '_';
	}
	snprintf(buf, n, "%s", base);
	for (k = 2; taken(r, buf); k++)
		snprintf(buf, n, "%s-%ld", base, k);
	return LX_OK;
}

static lx_status remember(run *r, const char *stem, lx_err *e)
{
	const lx_view *v = &r->v;
	entry *d;

	if (r->ndone == r->capdone) {
		size_t cap = r->capdone ? 2 * r->capdone : 64;
		entry *p = realloc(r->done, cap * sizeof *p);
		if (!p)
			return lx_errf(e, LX_EIO, "out of memory");
		r->done = p;
		r->capdone = cap;
	}
	d = &r->done[r->ndone];
	memset(d, 0, sizeof *d);
	d->stem = dup_s(stem);
	d->sent = v->sent ? dup_s(v->sent) : NULL;
	if (v->nans) {
		d->answer = dup_s(v->ans[0]);
		d->score = v->score[0];
		d->has_answer = 1;
	}
	if (!d->stem || (v->sent && !d->sent) || (v->nans && !d->answer))
		return lx_errf(e, LX_EIO, "out of memory");
	r->ndone++;
	return enter(r, e);
}

static lx_status visualise(run *r, const lx_record *rec, long number, lx_err *e)
{
	char stem[NAME_MAX_LEN + 24], *rel = NULL;
	lx_status rc;

	if (!(rc = record_stem(r, rec, number, stem, sizeof stem, e)) && !(rc = decode(r, rec, e)) && !(rc = write_grids(r, stem, e)) && !(rc = write_boxes(r, stem, e)) &&
	    !(rc = r->v.rel_words ? write_relevance(r, stem, &rel, e) : LX_OK) &&
	    !(rc = write_page(r, stem, number, rel, e)))
		rc = remember(r, stem, e);
	free(rel);
	lx_view_clear(&r->v);
	return rc;
}

/* DIR/index.html: one row per record written, linking its page and showing its boxes picture. */
static lx_status index_fn(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const run *r = ctx;
	size_t i;

	(void)path;
	(void)e;
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>lx-attnviz: %zu records"
	           "</title>\n<style>body{font:14px/1.4 'DejaVu Sans',sans-serif;margin:16px 24px;color:#202020}"
	           "td{padding:6px 12px 6px 0;vertical-align:top}th{text-align:left}img{width:240px}</style>\n"
	           "</head>\n<body>\n<h1>Attention maps of %zu records</h1>\n<table>\n"
	           "<tr><th>record</th><th>sentence</th><th>answer</th><th>word 0 over the boxes</th></tr>\n",
	        r->ndone, r->ndone);
	for (i = 0; i < r->ndone; i++) {
		const entry *d = &r->done[i];
		fputs("<tr><td><a href=\"", f);
		lx_html_text(f, d->stem);
		fputs(".html\">", f);
		lx_html_text(f, d->stem);
		fputs("</a></td><td>", f);
		lx_html_text(f, d->sent);
		fputs("</td><td>", f);
		if (d->has_answer) {
			lx_html_text(f, d->answer);
			fprintf(f, " (%.3f)", (double)d->score);
		}
		fputs("</td><td><a href=\"", f);
		lx_html_text(f, d->stem);
		fputs(".html\"><img alt=\"boxes\" src=\"", f);
		lx_html_text(f, d->stem);
		fputs(".boxes.png\"></a></td></tr>\n", f);
	}
	fputs("</table>\n</body>\n</html>\n", f);
	return LX_OK;
}

static lx_status write_index(run *r, lx_err *e) { return put_file(r, "index.html", index_fn, r, e); }

/* ---- the output folder: one writer, built aside, moved into place whole ---- */

/* What DIR holds now: 0 nothing, 1 an earlier run's output (its index.html is lx-attnviz's), 2 other files. */
static int dir_holds(const char *dir)
{
	char path[4400], head[512];
	struct dirent *d;
	DIR *dp = opendir(dir);
	FILE *f;
	int any = 0;
	size_t n;

	if (!dp)
		return 0;
	while (!any && (d = readdir(dp)))
		any = strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
	closedir(dp);
	if (!any)
		return 0;
	snprintf(path, sizeof path, "%s/index.html", dir);
	if (!(f = fopen(path, "rb")))
		return 2;
	n = fread(head, 1, sizeof head - 1, f);
	fclose(f);
	head[n] = 0;
	return strstr(head, "<title>lx-attnviz: ") ? 1 : 2;
}

/* Every file written into the folder built aside reaches the disk before the folder is moved into place. */
static lx_status sync_files(const run *r, lx_err *e)
{
	int fd = open(r->dir, O_RDONLY | O_DIRECTORY), bad;

	if (fd < 0)
		return lx_errf(e, LX_EIO, "%s: %s", r->out, strerror(errno));
	bad = syncfs(fd) != 0;
	close(fd);
	return bad ? lx_errf(e, LX_EIO, "%s: %s", r->out, strerror(errno)) : LX_OK;
}

static lx_status make_dir(const char *dir, lx_err *e);

/* Before the records: DIR made if absent, its lock taken (status 2 while another run writes it), what a killed
 * run left removed, and the folder to build in made beside it. DIR must be empty or an earlier run's output
 * (which *earlier says), so that replacing it loses nothing else. */
static lx_status open_output(run *r, lx_lock **lock, int *earlier, lx_err *e)
{
	lx_status rc;
	int holds;

	if ((rc = make_dir(r->out, e)) || (rc = lx_lock_take(r->out, lock, e)) || (rc = lx_clean_stale(r->out, e)))
		return rc;
	holds = dir_holds(r->out);
	if (holds == 2)
		return lx_errf(e, LX_EUSAGE, "%s: holds files that are not lx-attnviz's (no index.html of it); give a new or "
		               "empty folder, which each run replaces whole", r->out);
	*earlier = holds == 1;
	return lx_dir_aside(r->out, r->dir, sizeof r->dir, e);
}

/* After the records (st: how the run ended): index.html, then the folder to DIR in one step. A run that did not
 * succeed replaces only an empty DIR: an earlier run's output is kept, and this run's files are removed. */
static lx_status close_output(run *r, lx_status st, int earlier, lx_err *e)
{
	lx_status rc;

	if (st == LX_OK && tool_interrupted())
		st = LX_EINTR;
	if (st && earlier) {
		tool_warn("%s: kept as it was: this run did not succeed, and its %zu records are not written", r->out,
		          r->ndone);
		return lx_remove_tree(r->dir, e);
	}
	if ((rc = write_index(r, e)) || (rc = sync_files(r, e)) || (rc = lx_dir_publish(r->dir, r->out, 1, e))) {
		lx_err ignored;
		lx_remove_tree(r->dir, &ignored);
		return rc;
	}
	return LX_OK;
}

/* ---- the command line ---- */

/* mkdir -p */
static lx_status make_dir(const char *dir, lx_err *e)
{
	char p[4096];
	size_t i, n = strlen(dir);
	struct stat st;

	if (n >= sizeof p)
		return lx_errf(e, LX_EUSAGE, "-o: path too long");
	memcpy(p, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		p[i] = 0;
		if (mkdir(p, 0777) && errno != EEXIST)
			return lx_errf(e, LX_EIO, "%s: cannot make the folder: %s", p, strerror(errno));
		p[i] = i < n ? '/' : 0;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return lx_errf(e, LX_EIO, "%s: not a folder", dir);
	return LX_OK;
}

/* --images must name a folder (photos missing from it are not an error, a missing folder is). */
static lx_status check_images(const char *dir, lx_err *e)
{
	struct stat st;

	if (!dir)
		return LX_OK;
	if (stat(dir, &st))
		return lx_errf(e, LX_EMODEL, "--images %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lx_errf(e, LX_EMODEL, "--images %s: not a folder", dir);
	return LX_OK;
}

static void run_free(run *r)
{
	size_t i;

	lx_view_destroy(&r->v);
	for (i = 0; i < r->ndone; i++) {
		free(r->done[i].stem);
		free(r->done[i].sent);
		free(r->done[i].answer);
	}
	free(r->done);
	free(r->slot);
	lx_font_free(r->font);
	lx_names_free(r->objects);
	lx_names_free(r->answers);
}

/* --kinds: keys of the view's kinds, comma-separated, or "all". */
static unsigned parse_kinds(const char *arg)
{
	const char *p = arg;
	unsigned mask = 0;
	int k;

	if (!strcmp(arg, "all"))
		return (1u << LX_VIEW_KINDS) - 1;
	while (*p) {
		size_t n = strcspn(p, ",");
		for (k = 0; k < LX_VIEW_KINDS; k++)
			if (strlen(lx_view_key(k)) == n && !strncmp(lx_view_key(k), p, n))
				break;
		if (k == LX_VIEW_KINDS)
			tool_usage("--kinds: '%.*s' is not a kind (lang, vision, cross, cross-vision, cross-lang-self, "
			           "cross-vision-self, rollout-lang, rollout-vision or all)", (int)n, p);
		mask |= 1u << k;
		p += n;
		if (*p == ',' && *++p == 0)
			tool_usage("--kinds: a list ends with ','");
	}
	if (!mask)
		tool_usage("--kinds: no kind given");
	return mask;
}

/* The names of obj_ids and of answers: --objects, else objects_vocab.txt in the model's folder; the model's
 * answers.json or answers.txt. */
static lx_status load_names(run *r, lx_err *e)
{
	char path[4400];
	lx_status rc;

	if (r->objects_path)
		return lx_names_load(&r->objects, r->objects_path, LX_NAMES_FIRST, e);
	if (!r->model)
		return LX_OK;
	snprintf(path, sizeof path, "%s/objects_vocab.txt", r->model);
	if (access(path, F_OK) == 0 && (rc = lx_names_load(&r->objects, path, LX_NAMES_FIRST, e)))
		return rc;
	snprintf(path, sizeof path, "%s/answers.json", r->model);
	if (access(path, F_OK) != 0)
		snprintf(path, sizeof path, "%s/answers.txt", r->model);
	if (access(path, F_OK) == 0)
		return lx_names_load(&r->answers, path, LX_NAMES_ANSWERS, e);
	return LX_OK;
}

int main(int argc, char **argv)
{
	static const char *const scales[] = {"map", "fixed", "row", NULL}; /* in the order of LX_SCALE_* */
	run r;
	lx_lock *lock = NULL;
	int ch, progress = 0, pass, quiet, earlier = 0;
	size_t n;
	const char *base;
	tool_run t;
	lx_record *rec;
	lx_err err = {0, ""}, ierr = {0, ""};
	lx_status rc = LX_OK, irc;

	memset(&r, 0, sizeof r);
	r.font_path = DEFAULT_FONT;
	r.layer = r.head = -1;
	r.max_side = 640;
	r.max_pixels = LX_IMAGE_MAX_PIXELS;
	r.top = 5;
	r.npy = 1;
	r.kinds = 1u << LX_VIEW_CROSS | 1u << LX_VIEW_XVISN | 1u << LX_VIEW_RLANG | 1u << LX_VIEW_RVISN;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 'o': r.out = optarg; break;
		case O_IMAGES: r.images = optarg; break;
		case O_TOKEN: r.token = (int)tool_long(optarg, "--token", 0, 1 << 20); break;
		case O_LAYER: r.layer = (int)tool_long(optarg, "--layer", 0, 1 << 20); break;
		case O_HEAD: r.head = strcmp(optarg, "mean") ? (int)tool_long(optarg, "--head", 0, 1 << 20) : -1; break;
		case O_FONT: r.font_path = optarg; break;
		case O_CELL: r.cell = (int)tool_long(optarg, "--cell", 1, 64); break;
		case O_MAX_SIDE: r.max_side = (int)tool_long(optarg, "--max-side", 64, 8192); break;
		case O_MAX_PIXELS: r.max_pixels = tool_long(optarg, "--max-pixels", 1, 1073741824L); break;
		case O_TOP: r.top = (int)tool_long(optarg, "--top", 0, 1 << 20); break;
		case 'm': r.model = optarg; break;
		case O_OBJECTS: r.objects_path = optarg; break;
		case O_KINDS: r.kinds = parse_kinds(optarg); break;
		case O_PNG: r.png = 1; break;
		case O_NO_NPY: r.npy = 0; break;
		case O_SCALE: r.scale = tool_choice(optarg, "--scale", scales); break;
		case TOOL_PROGRESS: progress = 1; break;
		}
	}
	tool_require(r.out, "-o DIR");
	tool_no_operands(argc);
	for (n = strlen(optarg = (char *)r.out); n > 1 && optarg[n - 1] == '/'; n--) /* the folder is replaced whole */
		optarg[n - 1] = 0;
	base = strrchr(r.out, '/') ? strrchr(r.out, '/') + 1 : r.out;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		tool_usage("-o %s: name the folder itself (each run replaces it whole), not . or .. or /", r.out);
	if ((rc = lx_font_open(&r.font, r.font_path, &err)) || (rc = check_images(r.images, &err)) ||
	    (rc = load_names(&r, &err)) || (rc = open_output(&r, &lock, &earlier, &err))) {
		lx_lock_release(lock);
		run_free(&r);
		return tool_fail(rc, "%s", err.msg);
	}
	r.v.objects = r.objects;
	r.v.answers = r.answers;
	if (tool_run_init(&t, stdin, "stdin", 0, 0, progress))
		rc = lx_errf(&err, LX_EIO, "out of memory");
	tool_signals(NULL);
	while (!rc && !(rc = tool_next(&t, &rec, &pass, &err)) && rec) {
		if (!pass && (rc = visualise(&r, rec, t.done + 1, &err))) /* an error record has nothing to draw */
			tool_where(&t, rec, &err);
		lx_record_free(rec);
		if (!rc)
			tool_done(&t, 1);
	}
	irc = close_output(&r, rc, earlier, &ierr);
	lx_lock_release(lock);
	rc = tool_flush(&t, rc, &err, &quiet);
	if (irc && !rc) {
		rc = irc;
		err = ierr;
	} else if (irc)
		tool_warn("%s", ierr.msg);
	rc = tool_exit(&t, rc, &err, quiet);
	tool_run_free(&t);
	run_free(&r);
	return rc;
}

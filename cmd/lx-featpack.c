/* lx-featpack - region features from detector files into the stream: one record per image, or joined to
 * question records by img_id (man/lx-featpack.1). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lx_feat.h"
#include "tool.h"

#define MAX_KEYS 8

typedef struct {
	int join, max_boxes, normalized, progress, cache, index_flags, keep_going;
	tool_shard shard;   /* --shard K/N over the images of the files, in order */
	const char *keys[MAX_KEYS];
	int nkeys;
} options;

typedef struct {
	float *pos, *pix;    /* [n, 4] visual_pos, and boxes in pixels for --no-normalize */
	size_t cap;
} scratch;

enum { O_REINDEX = 256, O_NO_NORMALIZE, O_MAX_BOXES };

static const char synopsis[] =
	"[options] FILE...            one record per image, on stdout\n"
	"--join [options] FILE...     add each record's image (stdin to stdout)";
static const char about[] =
	"FILE: an obj36 TSV, a BUTD TSV, a .npz or .npy, a directory of them, or a stream written by lx-featpack.";

static const tool_option option_table[] = {
	{'j', "join", NULL, "join records on stdin to their images"},
	{'k', "key", "NAME", "field naming the image (default img_id, or img0 and img1);\n"
	                     "several --key: fields suffixed 0, 1, ... in that order"},
	{'i', "index", NULL, "keep an index beside each file (FILE.lxidx): read it, or write it"},
	{O_REINDEX, "reindex", NULL, "with --index: rebuild an index that is stale"},
	{'c', "cache", "N", "decoded images kept in memory when joining (16)"},
	{O_MAX_BOXES, "max-boxes", "N", "keep the first N boxes of each image"},
	{'m', NULL, "N", NULL}, /* -m is the model in every other tool: refused with a pointer to --max-boxes */
	{O_NO_NORMALIZE, "no-normalize", NULL, "the file's boxes are already in [0, 1]"},
	{TOOL_KEEP_GOING, "keep-going", NULL, "with --join: write a bad record with an error field and go on"},
	TOOL_OPT_SHARD,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {"lx-featpack", synopsis, about, option_table};


static void parse_options(int argc, char **argv, options *o)
{
	int c;

	memset(o, 0, sizeof *o);
	o->cache = 16;
	while ((c = tool_options(&info, argc, argv)) != -1) {
		switch (c) {
		case 'j': o->join = 1; break;
		case 'k':
			if (o->nkeys == MAX_KEYS || !*optarg)
				tool_usage("--key: at most %d non-empty names", MAX_KEYS);
			o->keys[o->nkeys++] = optarg;
			break;
		case 'i': o->index_flags |= LX_FEAT_INDEX_FILE; break;
		case O_REINDEX: o->index_flags |= LX_FEAT_INDEX_REBUILD; break;
		case 'c': o->cache = (int)tool_long(optarg, "--cache", 1, 1000000); break;
		case O_MAX_BOXES: o->max_boxes = (int)tool_long(optarg, "--max-boxes", 1, 1000000); break;
		case 'm': tool_usage("-m is the model in the lx tools; the number of boxes is --max-boxes N");
		case O_NO_NORMALIZE: o->normalized = 1; break;
		case TOOL_PROGRESS: o->progress = 1; break;
		case TOOL_KEEP_GOING: o->keep_going = 1; break;
		case TOOL_SHARD: tool_shard_parse(&o->shard, optarg); break;
		}
	}
	if (optind >= argc)
		tool_usage("no feature file given");
	if ((o->index_flags & LX_FEAT_INDEX_REBUILD) && !(o->index_flags & LX_FEAT_INDEX_FILE))
		tool_usage("--reindex needs --index");
	if (o->keep_going && !o->join)
		tool_usage("--keep-going needs --join");
	if (o->nkeys && !o->join)
		tool_usage("--key needs --join");
	if (o->shard.n && o->join)
		tool_usage("--shard selects the images of the files, not --join's records (shard them upstream)");
}

/* ---- files named on the command line: a directory stands for its .npz and .npy files, by name ---- */

typedef struct {
	char **v;
	size_t n, cap;
} paths;

static int paths_push(paths *p, char *s)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		char **v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return 0;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = s;
	return 1;
}

static void paths_free(paths *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
}

/* Directory entries that are images: *.npz, and *.npy but not MMF's *_info.npy. */
static int is_image_entry(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	if (n > 4 && strcmp(d->d_name + n - 4, ".npz") == 0)
		return 1;
	return n > 4 && strcmp(d->d_name + n - 4, ".npy") == 0 && !(n > 9 && strcmp(d->d_name + n - 9, "_info.npy") == 0);
}

static lx_status expand(paths *p, const char *arg, lx_err *e)
{
	struct stat sb;
	struct dirent **list;
	int n, i;
	lx_status st = LX_OK;

	if (stat(arg, &sb) != 0)
		return lx_errf(e, LX_EMODEL, "%s: %s", arg, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return paths_push(p, strdup(arg)) && p->v[p->n - 1] ? LX_OK : lx_errf(e, LX_EIO, "out of memory");
	if ((n = scandir(arg, &list, is_image_entry, alphasort)) < 0)
		return lx_errf(e, LX_EMODEL, "%s: %s", arg, strerror(errno));
	if (n == 0)
		st = lx_errf(e, LX_EMODEL, "%s: a directory without .npz or .npy files", arg);
	for (i = 0; i < n; i++) {
		size_t len = strlen(arg) + strlen(list[i]->d_name) + 2;
		char *s = malloc(len);
		if (!st && s) {
			snprintf(s, len, "%s/%s", arg, list[i]->d_name);
			if (!paths_push(p, s))
				free(s), st = lx_errf(e, LX_EIO, "out of memory");
		} else {
			free(s);
			if (!st)
				st = lx_errf(e, LX_EIO, "out of memory");
		}
		free(list[i]);
	}
	free(list);
	return st;
}

/* ---- fields of one image ---- */

static int add_tensor(lx_record *rec, const char *key, const char *sfx, lx_dtype t, int ndim, int64_t d0,
                      int64_t d1, const void *data)
{
	char name[128];
	int64_t shape[2] = {d0, d1};

	snprintf(name, sizeof name, "%s%s", key, sfx);
	return lx_record_add_tensor(rec, name, t, ndim, shape, data) == LX_OK;
}

static int add_int(lx_record *rec, const char *key, const char *sfx, int v)
{
	char name[128];

	snprintf(name, sizeof name, "%s%s", key, sfx);
	return lx_record_add_int(rec, name, v) == LX_OK;
}

/* NaN or infinity among the features would only come out later as a wrong answer: refused here. */
static lx_status finite_feats(const lx_feat_image *im, int n, lx_err *e)
{
	size_t i, k = (size_t)n * (size_t)im->dim;
	char where[600];

	for (i = 0; i < k; i++)
		if (!isfinite(im->feats[i]))
			return lx_errf(e, LX_EINPUT, "%s: feature %zu of box %zu is %g, expected a finite value",
			               lx_feat_image_where(im, where, sizeof where), i % (size_t)im->dim, i / (size_t)im->dim,
			               (double)im->feats[i]);
	return LX_OK;
}

static lx_status add_image(lx_record *rec, const lx_feat_image *im, const char *sfx, const options *o,
                           scratch *sc, lx_err *e)
{
	int n = o->max_boxes && im->n > o->max_boxes ? o->max_boxes : im->n, i;
	const float *pix = im->boxes;
	lx_status st;

	if ((size_t)n * 4 > sc->cap) {
		size_t cap = (size_t)n * 4;
		float *a = realloc(sc->pos, cap * sizeof *a), *b;
		if (a)
			sc->pos = a;
		b = realloc(sc->pix, cap * sizeof *b);
		if (b)
			sc->pix = b;
		if (!a || !b)
			return lx_errf(e, LX_EIO, "out of memory");
		sc->cap = cap;
	}
	if ((st = lx_feat_normalize(im, n, o->normalized, sc->pos, e)) || (st = finite_feats(im, n, e)))
		return st;
	if (o->normalized) {
		for (i = 0; i < 4 * n; i++)
			sc->pix[i] = sc->pos[i] * (float)(i % 2 ? im->img_h : im->img_w);
		pix = sc->pix;
	}
	if (!add_int(rec, "img_h", sfx, im->img_h) || !add_int(rec, "img_w", sfx, im->img_w) ||
	    !add_tensor(rec, "boxes", sfx, LX_F32, 2, n, 4, pix) ||
	    !add_tensor(rec, "visual_pos", sfx, LX_F32, 2, n, 4, sc->pos) ||
	    !add_tensor(rec, "visual_feats", sfx, LX_F32, 2, n, im->dim, im->feats) ||
	    (im->has_obj && (!add_tensor(rec, "obj_ids", sfx, LX_I32, 1, n, 0, im->obj_ids) ||
	                     !add_tensor(rec, "obj_conf", sfx, LX_F32, 1, n, 0, im->obj_conf))) ||
	    (im->has_attr && (!add_tensor(rec, "attr_ids", sfx, LX_I32, 1, n, 0, im->attr_ids) ||
	                      !add_tensor(rec, "attr_conf", sfx, LX_F32, 1, n, 0, im->attr_conf))))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* ---- converting: every image of every file, in order ---- */

static lx_status convert_file(const char *path, const options *o, tool_run *t, lx_feat_image *im, scratch *sc,
                              long *pos, lx_err *e)
{
	lx_feat_file *f;
	lx_status st;
	int got;

	if ((st = lx_feat_open(&f, path, e)))
		return st;
	while (!tool_interrupted() && !(st = lx_feat_next(f, im, &got, e)) && got) {
		lx_record *rec;
		if (!tool_shard_has(&o->shard, ++*pos))
			continue;
		if (!(rec = lx_record_new())) {
			st = lx_errf(e, LX_EIO, "out of memory");
			break;
		}
		if (lx_record_add_str(rec, "img_id", im->img_id, strlen(im->img_id)))
			st = lx_errf(e, LX_EIO, "out of memory");
		if (!st && !(st = add_image(rec, im, "", o, sc, e)) && !(st = tool_shard_mark(&o->shard, rec, *pos, e)))
			st = lx_writer_put(t->wr, rec, e);
		lx_record_free(rec);
		if (st)
			break;
		tool_done(t, 1);
	}
	lx_feat_free(f);
	return st;
}

static lx_status convert(const paths *p, const options *o, tool_run *t, lx_err *e)
{
	lx_feat_image im;
	scratch sc = {NULL, NULL, 0};
	size_t i;
	lx_status st = LX_OK;
	long pos = -1;

	lx_feat_image_init(&im);
	for (i = 0; i < p->n && !st && !tool_interrupted(); i++)
		st = convert_file(p->v[i], o, t, &im, &sc, &pos, e);
	lx_feat_image_destroy(&im);
	free(sc.pos);
	free(sc.pix);
	return st;
}

/* ---- joining ---- */

/* The image name in field key of rec: a string, or a non-negative integer in decimal. */
static int key_text(const lx_record *rec, const char *key, char *buf, size_t cap, const char **s, size_t *len)
{
	const msgpack_object *o = lx_record_get(rec, key);

	if (!o)
		return 0;
	if (o->type == MSGPACK_OBJECT_STR) {
		*s = o->via.str.ptr;
		*len = o->via.str.size;
		return 1;
	}
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*len = (size_t)snprintf(buf, cap, "%llu", (unsigned long long)o->via.u64);
		*s = buf;
		return 1;
	}
	return -1;
}

static lx_status join_key(lx_record *rec, const char *key, const char *sfx, lx_feat_index *ix, const options *o,
                          scratch *sc, lx_err *e)
{
	const lx_feat_image *im;
	char num[32];
	const char *id;
	size_t len;
	int k = key_text(rec, key, num, sizeof num, &id, &len);
	lx_status st;

	if (k == 0)
		return lx_errf(e, LX_EINPUT, "no field %s naming its image", key);
	if (k < 0)
		return lx_errf(e, LX_EINPUT, "field %s is neither a string nor a non-negative integer", key);
	if ((st = lx_feat_index_get(ix, id, len, &im, e)))
		return st;
	return add_image(rec, im, sfx, o, sc, e);
}

static lx_status join_record(lx_record *rec, lx_feat_index *ix, const options *o, scratch *sc, lx_err *e)
{
	static const char *pair[2] = {"img0", "img1"};
	const char **keys = (const char **)o->keys;
	int nkeys = o->nkeys, i;
	lx_status st;

	if (!nkeys) {
		static const char *one[1] = {"img_id"};
		int is_pair = !lx_record_get(rec, "img_id") && lx_record_get(rec, "img0") && lx_record_get(rec, "img1");
		keys = is_pair ? pair : one;
		nkeys = is_pair ? 2 : 1;
	}
	for (i = 0; i < nkeys; i++) {
		char sfx[16] = "";
		if (nkeys > 1)
			snprintf(sfx, sizeof sfx, "%d", i);
		if ((st = join_key(rec, keys[i], sfx, ix, o, sc, e)))
			return st;
	}
	return LX_OK;
}

static lx_status join(const paths *p, const options *o, tool_run *t, lx_err *e)
{
	lx_feat_index *ix = lx_feat_index_new(o->index_flags, o->cache);
	scratch sc = {NULL, NULL, 0};
	lx_record *rec = NULL;
	lx_status st = LX_OK;
	size_t i;
	int pass;

	if (!ix)
		st = lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; !st && i < p->n; i++)
		st = lx_feat_index_add(ix, p->v[i], e);
	while (!st && !(st = tool_next(t, &rec, &pass, e)) && rec) {
		if (!pass && (st = join_record(rec, ix, o, &sc, e)) == LX_EINPUT)
			tool_where(t, rec, e);
		if (st)
			st = tool_refuse(t, rec, st, e);
		if (!st)
			st = lx_writer_put(t->wr, rec, e);
		lx_record_free(rec);
		tool_done(t, 1);
	}
	lx_feat_index_free(ix);
	free(sc.pos);
	free(sc.pix);
	return st;
}

int main(int argc, char **argv)
{
	options o;
	paths p = {NULL, 0, 0};
	tool_run t;
	lx_err e = {LX_OK, ""};
	lx_status st = LX_OK;
	int i;

	parse_options(argc, argv, &o);
	for (i = optind; i < argc && !st; i++)
		st = expand(&p, argv[i], &e);
	if (st) {
		paths_free(&p);
		return tool_fail(st, "%s", e.msg);
	}
	if (tool_run_init(&t, o.join ? stdin : NULL, "stdin", 1, o.keep_going, o.progress))
		st = lx_errf(&e, LX_EIO, "out of memory");
	if (!o.join)
		t.prog.label = "images";
	tool_signals(NULL);
	if (!st)
		st = o.join ? join(&p, &o, &t, &e) : convert(&p, &o, &t, &e);
	paths_free(&p);
	return tool_end(&t, st, &e);
}

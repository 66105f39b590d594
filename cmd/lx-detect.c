/* lx-detect - region features from photos with the LXMERT demo's Faster R-CNN: one record per image, or joined to
 * question records by img_id (man/lx-detect.1). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lx.h"
#include "lx_detect.h"
#include "lx_names.h"
#include "tool.h"

#define TOOL "lx-detect"
#define CACHE 16

typedef struct {
	const char *model, *join_dir, *key, *objects_file, *attrs_file;
	int max_boxes, min_boxes, keep_going, progress;
	lx_names *objects, *attrs;  /* --objects, --attributes: loaded in main */
} options;

enum { O_MAX_BOXES = 256, O_MIN_BOXES, O_OBJECTS, O_ATTRIBUTES, O_MAX_PIXELS };
enum { O_BF16 = 320, O_INT8 };

static const char synopsis[] = "-m DIR [options] [IMAGE...]\n-m DIR --join PHOTOS [options]";
static const char about[] =
	"Detects the regions of each photo with the Faster R-CNN of the LXMERT demo and writes one record per\n"
	"image (paths as arguments, or one a line on stdin), or with --join adds each record's image. See\n"
	"lx-detect(1).";

static const tool_option option_table[] = {
	{'m', "model", "DIR", "the detector: config.yaml and model.safetensors"},
	{'j', "join", "PHOTOS", "join records on stdin to PHOTOS/<img_id>.jpg, .jpeg or .png"},
	{'k', "key", "NAME", "with --join: the field naming the image (img_id)"},
	{O_MAX_BOXES, "max-boxes", "N", "at most N boxes an image (the config's MAX_DETECTIONS)"},
	{O_MIN_BOXES, "min-boxes", "N", "try NMS thresholds until N boxes remain (MIN_DETECTIONS)"},
	{O_OBJECTS, "objects", "FILE", "add each box's object name (objects_vocab.txt) as the field objects"},
	{O_ATTRIBUTES, "attributes", "FILE", "add each box's attribute name (attributes_vocab.txt) as attributes"},
	{O_MAX_PIXELS, "max-pixels", "N", "refuse a photo of more than N pixels, width x height (64000000)"},
	{O_BF16, "bf16", NULL, "res5 in bfloat16 (avx512_bf16): faster, detections move a little"},
	{O_INT8, "int8", NULL, "res5 in int8 (avx512_vnni): fastest, detections move more"},
	TOOL_OPT_SHARD,
	TOOL_OPT_KEEP_GOING,
	TOOL_OPT_PROGRESS,
	TOOL_OPT_END,
};
static const tool_info info = {TOOL, synopsis, about, option_table};

static int fail(lx_status st, const char *msg) { return tool_fail(st, "%s", msg); }

static tool_shard shard;  /* --shard K/N, over the images named */
static long position;     /* the image in hand among them, from 0 */
static long long max_pixels = LX_IMAGE_MAX_PIXELS; /* --max-pixels */
static int precision;     /* the last of --bf16 (O_BF16) and --int8 (O_INT8), or 0 */

static void parse_options(int argc, char **argv, options *o)
{
	int c;

	memset(o, 0, sizeof *o);
	o->max_boxes = o->min_boxes = -1;
	while ((c = tool_options(&info, argc, argv)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'j': o->join_dir = optarg; break;
		case 'k': o->key = optarg; break;
		case O_MAX_BOXES: o->max_boxes = (int)tool_long(optarg, "--max-boxes", 1, 1000000); break;
		case O_MIN_BOXES: o->min_boxes = (int)tool_long(optarg, "--min-boxes", 0, 1000000); break;
		case O_OBJECTS: o->objects_file = optarg; break;
		case O_ATTRIBUTES: o->attrs_file = optarg; break;
		case O_MAX_PIXELS: max_pixels = tool_long(optarg, "--max-pixels", 1, 1073741824L); break;
		case O_BF16:
		case O_INT8: precision = c; break;
		case TOOL_KEEP_GOING: o->keep_going = 1; break;
		case TOOL_PROGRESS: o->progress = 1; break;
		case TOOL_SHARD: tool_shard_parse(&shard, optarg); break;
		}
	}
	tool_require(o->model, "-m DIR");
	if (o->join_dir && shard.n)
		tool_usage("--shard selects images named on the command line or stdin, not --join's records");
	if (o->join_dir && optind < argc)
		tool_usage("--join takes records on stdin, not IMAGE arguments");
	if (o->key && !o->join_dir)
		tool_usage("--key needs --join");
}

/* ---- one image ---- */

static int add_tensor(lx_record *rec, const char *key, lx_dtype t, int ndim, int64_t d0, int64_t d1, const void *data)
{
	int64_t shape[2] = {d0, d1};

	return lx_record_add_tensor(rec, key, t, ndim, shape, data) == LX_OK;
}

/* A field of n names: list's names of ids. */
static int add_names(lx_record *rec, const char *key, const lx_names *list, const int32_t *ids, int n)
{
	msgpack_packer *pk = lx_record_add_packer(rec, key);

	if (!pk)
		return 0;
	msgpack_pack_array(pk, (size_t)n);
	for (int i = 0; i < n; i++) {
		const char *s = lx_names_get(list, ids[i]);
		msgpack_pack_str(pk, strlen(s));
		msgpack_pack_str_body(pk, s, strlen(s));
	}
	return 1;
}

/* The fields lx-featpack writes for an image (formats/feat-stream.md), but img_id; with --objects and
 * --attributes, the names of obj_ids and attr_ids after them. */
static lx_status add_fields(lx_record *rec, const lx_detection *r, const options *o, lx_err *e)
{
	int n = r->n;

	if (lx_record_add_int(rec, "img_h", r->img_h) || lx_record_add_int(rec, "img_w", r->img_w) ||
	    !add_tensor(rec, "boxes", LX_F32, 2, n, 4, r->boxes) ||
	    !add_tensor(rec, "visual_pos", LX_F32, 2, n, 4, r->visual_pos) ||
	    !add_tensor(rec, "visual_feats", LX_F32, 2, n, n ? r->dim : 0, r->feats) ||
	    !add_tensor(rec, "obj_ids", LX_I32, 1, n, 0, r->obj_ids) ||
	    !add_tensor(rec, "obj_conf", LX_F32, 1, n, 0, r->obj_conf) ||
	    !add_tensor(rec, "attr_ids", LX_I32, 1, n, 0, r->attr_ids) ||
	    !add_tensor(rec, "attr_conf", LX_F32, 1, n, 0, r->attr_conf) ||
	    (o->objects && !add_names(rec, "objects", o->objects, r->obj_ids, n)) ||
	    (o->attrs && !add_names(rec, "attributes", o->attrs, r->attr_ids, n)))
		return lx_errf(e, LX_EIO, "out of memory");
	return LX_OK;
}

/* Decodes and detects one photo. A file that cannot be decoded or used is bad input (status 1), named. */
static lx_status detect_file(lx_detector *d, const char *path, lx_detection *r, lx_err *e)
{
	lx_image *im;
	lx_status st = lx_image_read(&im, path, max_pixels, e);

	if (st == LX_EMODEL)
		st = e->status = LX_EINPUT;
	if (st)
		return st;
	if ((st = lx_detect(d, im, r, NULL, e)) == LX_EINPUT) {
		char msg[sizeof e->msg];
		snprintf(msg, sizeof msg, "%s", e->msg);
		lx_errf(e, st, "%s: %s", path, msg);
	}
	lx_image_free(im);
	return st;
}

static lx_status add_img_id(lx_record *rec, const char *path, lx_err *e);

/* --keep-going: rec goes out as an error record with the message (rec NULL: a record holding only error); in
 * file mode, with the image's img_id (path). */
static lx_status keep_going(lx_record *rec, const char *path, lx_writer *w, long *bad, const char *msg, lx_err *e)
{
	char line[sizeof e->msg + 20];
	lx_record *own = NULL;
	lx_status st;

	snprintf(line, sizeof line, TOOL ": %s", msg);
	fprintf(stderr, "%s\n", line);
	++*bad;
	if (rec)
		lx_record_revert(rec);
	if (!rec && !(rec = own = lx_record_error_new(line)))
		return lx_errf(e, LX_EIO, "out of memory");
	if (!own && lx_record_set_error(rec, line))
		return lx_errf(e, LX_EIO, "out of memory");
	if (path && (st = add_img_id(rec, path, e)))
		return st;
	st = lx_writer_put(w, rec, e);
	lx_record_free(own);
	return st;
}

/* ---- file mode ---- */

/* The file name without its directory and its last extension; with --shard, the image's position. */
static lx_status add_img_id(lx_record *rec, const char *path, lx_err *e)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (lx_record_add_str(rec, "img_id", base, dot && dot != base ? (size_t)(dot - base) : strlen(base)))
		return lx_errf(e, LX_EIO, "out of memory");
	return tool_shard_mark(&shard, rec, position, e);
}

static lx_status one_file(lx_detector *d, const char *path, const options *o, lx_writer *w, long *bad, lx_err *e)
{
	lx_record *rec = lx_record_new();
	lx_detection r;
	lx_status st;

	if (!rec)
		return lx_errf(e, LX_EIO, "out of memory");
	if (!(st = add_img_id(rec, path, e)) && !(st = detect_file(d, path, &r, e))) {
		st = add_fields(rec, &r, o, e);
		lx_detection_destroy(&r);
		if (!st)
			st = lx_writer_put(w, rec, e);
	} else if (st == LX_EINPUT && o->keep_going)
		st = keep_going(rec, path, w, bad, e->msg, e);
	lx_record_free(rec);
	return st;
}

static lx_status files(lx_detector *d, char **argv, int argc, const options *o, lx_writer *w, tool_progress *pr,
                       long *records, long *bad, lx_err *e)
{
	lx_status st = LX_OK;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long n = 0;

	if (argc) {
		for (int i = 0; i < argc && !st && !tool_interrupted(); i++) {
			if (!tool_shard_has(&shard, position = i))
				continue;
			st = one_file(d, argv[i], o, w, bad, e);
			tool_progress_tick(pr, ++*records, 0);
		}
		return st;
	}
	while (!st && !tool_interrupted() && (len = getline(&line, &cap, stdin)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len || !tool_shard_has(&shard, position = n++))
			continue;
		st = one_file(d, line, o, w, bad, e);
		tool_progress_tick(pr, ++*records, 0);
	}
	if (!st && ferror(stdin))
		st = lx_errf(e, LX_EIO, "stdin: %s", strerror(errno));
	free(line);
	return st;
}

/* ---- joining: a few recent images' detections kept ---- */

typedef struct {
	char *id;
	lx_detection r;
	lx_status st;     /* the image was bad: its message */
	char msg[512];
	long used;
} cached;

static lx_status lookup(lx_detector *d, const options *o, cached *cache, long *tick, const char *id, size_t len,
                        cached **out, lx_err *e)
{
	static const char *ext[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
	cached *slot = &cache[0];
	char path[4096];
	struct stat sb;
	int i;

	for (i = 0; i < CACHE; i++) {
		if (cache[i].id && strlen(cache[i].id) == len && !memcmp(cache[i].id, id, len)) {
			cache[i].used = ++*tick;
			*out = &cache[i];
			return LX_OK;
		}
		if (cache[i].used < slot->used)
			slot = &cache[i];
	}
	free(slot->id);
	lx_detection_destroy(&slot->r);
	memset(slot, 0, sizeof *slot);
	if (!(slot->id = malloc(len + 1)))
		return lx_errf(e, LX_EIO, "out of memory");
	memcpy(slot->id, id, len);
	slot->id[len] = 0;
	slot->used = ++*tick;
	*out = slot;
	if (memchr(id, '/', len) || memchr(id, 0, len) || !len) {
		slot->st = lx_errf(e, LX_EINPUT, "img_id \"%s\" is not a file name", slot->id);
		snprintf(slot->msg, sizeof slot->msg, "%s", e->msg);
		return LX_OK;
	}
	for (i = 0; i < 6; i++) {
		snprintf(path, sizeof path, "%s/%s%s", o->join_dir, slot->id, ext[i]);
		if (!stat(path, &sb))
			break;
	}
	if (i == 6) {
		slot->st = lx_errf(e, LX_EINPUT, "%s/%s: no .jpg, .jpeg or .png file for this image", o->join_dir, slot->id);
		snprintf(slot->msg, sizeof slot->msg, "%s", e->msg);
		return LX_OK;
	}
	if ((slot->st = detect_file(d, path, &slot->r, e))) {
		if (slot->st != LX_EINPUT) {
			lx_status st = slot->st;
			free(slot->id);
			memset(slot, 0, sizeof *slot);
			return st;
		}
		snprintf(slot->msg, sizeof slot->msg, "%s", e->msg);
	}
	return LX_OK;
}

static lx_status join_record(lx_detector *d, const options *o, cached *cache, long *tick, lx_record *rec, lx_err *e)
{
	const char *key = o->key ? o->key : "img_id";
	const msgpack_object *v = lx_record_get(rec, key);
	char num[32], id[128];
	const char *s;
	size_t len;
	cached *c = NULL;
	lx_status st;

	if (!v)
		return lx_errf(e, LX_EINPUT, "stdin: record %ld (%s): no field %s naming its image", lx_record_index(rec) + 1,
		               lx_record_id(rec, id, sizeof id), key);
	if (v->type == MSGPACK_OBJECT_STR) {
		s = v->via.str.ptr;
		len = v->via.str.size;
	} else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		len = (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)v->via.u64);
		s = num;
	} else
		return lx_errf(e, LX_EINPUT, "stdin: record %ld: field %s is neither a string nor a non-negative integer",
		               lx_record_index(rec) + 1, key);
	if ((st = lookup(d, o, cache, tick, s, len, &c, e)))
		return st;
	if (c->st)
		return lx_errf(e, c->st, "stdin: record %ld: %s", lx_record_index(rec) + 1, c->msg);
	return add_fields(rec, &c->r, o, e);
}

static lx_status join(lx_detector *d, const options *o, lx_writer *w, tool_progress *pr, long *records, long *bad,
                      lx_err *e)
{
	lx_reader *r = lx_reader_new(stdin, "stdin");
	cached cache[CACHE];
	lx_record *rec = NULL;
	lx_status st = LX_OK;
	long tick = 0;

	memset(cache, 0, sizeof cache);
	if (!r)
		st = lx_errf(e, LX_EIO, "out of memory");
	while (!st && !tool_interrupted()) {
		if ((st = lx_reader_next(r, &rec, e))) {
			if (o->keep_going && lx_reader_resumable(r))
				st = keep_going(NULL, NULL, w, bad, e->msg, e);
		} else if (!rec)
			break;
		else if (lx_record_is_error(rec))
			st = lx_writer_put(w, rec, e);
		else if ((st = join_record(d, o, cache, &tick, rec, e)) == LX_EINPUT && o->keep_going)
			st = keep_going(rec, NULL, w, bad, e->msg, e);
		else if (!st)
			st = lx_writer_put(w, rec, e);
		lx_record_free(rec);
		rec = NULL;
		tool_progress_tick(pr, lx_reader_count(r), 0);
	}
	*records = r ? lx_reader_count(r) : 0;
	lx_reader_free(r);
	for (int i = 0; i < CACHE; i++) {
		free(cache[i].id);
		lx_detection_destroy(&cache[i].r);
	}
	return st;
}

/* --objects, --attributes: a VG vocabulary file (the first synonym of each line) of exactly want names. */
static lx_status load_names(lx_names **out, const char *path, int want, const char *key, lx_err *e)
{
	lx_status st = lx_names_load(out, path, LX_NAMES_FIRST, e);

	if (!st && lx_names_count(*out) != want) {
		st = lx_errf(e, LX_EMODEL, "%s: %d names, but the detector's %s is %d", path, lx_names_count(*out), key,
		             want);
		lx_names_free(*out);
		*out = NULL;
	}
	return st;
}

int main(int argc, char **argv)
{
	options o;
	lx_detector *d;
	lx_writer *w;
	tool_progress pr;
	lx_err e = {LX_OK, ""};
	lx_status st, fst;
	long records = 0, bad = 0;
	int quiet;

	parse_options(argc, argv, &o);
	if ((st = lx_detector_open(&d, o.model, &e)))
		return fail(st, e.msg);
	if ((precision == O_BF16 && (st = lx_detector_bf16(d, &e))) ||
	    (precision == O_INT8 && (st = lx_detector_int8(d, &e)))) {
		lx_detector_free(d);
		return fail(st, e.msg);
	}
	if ((o.objects_file && (st = load_names(&o.objects, o.objects_file, lx_detector_config(d)->classes,
	                                        "ROI_HEADS.NUM_CLASSES", &e))) ||
	    (o.attrs_file && (st = load_names(&o.attrs, o.attrs_file, lx_detector_config(d)->attrs,
	                                      "ROI_BOX_HEAD.NUM_ATTRS", &e)))) {
		lx_names_free(o.objects);
		lx_detector_free(d);
		return fail(st, e.msg);
	}
	if (o.max_boxes > 0)
		lx_detector_config(d)->max_det = o.max_boxes;
	if (o.min_boxes >= 0)
		lx_detector_config(d)->min_det = o.min_boxes;
	else if (lx_detector_config(d)->min_det > lx_detector_config(d)->max_det)
		lx_detector_config(d)->min_det = lx_detector_config(d)->max_det; /* --max-boxes below MIN_DETECTIONS */
	if (!(w = lx_writer_new(stdout, "stdout"))) {
		lx_detector_free(d);
		return fail(LX_EIO, "out of memory");
	}
	tool_signals(NULL);
	tool_progress_init(&pr, o.progress, "images", NULL, 0);
	st = o.join_dir ? join(d, &o, w, &pr, &records, &bad, &e)
	                : files(d, argv + optind, argc - optind, &o, w, &pr, &records, &bad, &e);
	tool_progress_end(&pr);
	fst = lx_writer_flush(w, st ? NULL : &e);
	if (st == LX_EIO && tool_interrupted() && !fst)
		st = LX_OK; /* a read of stdin cut short by the signal */
	if (!st)
		st = fst;
	if (fclose(stdout) != 0 && !st)
		st = lx_errf(&e, LX_EIO, "stdout: write failed: %s", strerror(errno));
	quiet = st == LX_EIO && lx_writer_broken_pipe(w);
	lx_writer_free(w);
	lx_detector_free(d);
	lx_names_free(o.objects);
	lx_names_free(o.attrs);
	if (st && !quiet)
		return fail(st, e.msg);
	if (!st && tool_interrupted()) {
		fprintf(stderr, TOOL ": interrupted after %ld records, all written\n", records);
		return LX_EINTR;
	}
	if (!st && bad) {
		fprintf(stderr, TOOL ": %ld of %ld records were bad, written with an error field\n", bad, records);
		return LX_EINPUT;
	}
	return (int)st;
}

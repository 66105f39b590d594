/* feat_stream.c - a stream of image records written by lx-featpack, read back as a feature file
 * (formats/featpack.md): img_id, img_h, img_w, boxes [N,4] in pixels, visual_feats [N,F], and where present
 * obj_ids, obj_conf, attr_ids, attr_conf. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "feat/feat_impl.h"


/* The text of an id field (a string, or a non-negative integer written in decimal). */
static int id_text(const msgpack_object *o, char *buf, size_t cap, const char **s, size_t *len)
{
	if (!o)
		return 0;
	if (o->type == MSGPACK_OBJECT_STR) {
		*s = o->via.str.ptr;
		*len = o->via.str.size;
	} else if (o->type == MSGPACK_OBJECT_BIN) {
		*s = o->via.bin.ptr;
		*len = o->via.bin.size;
	} else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*len = (size_t)snprintf(buf, cap, "%llu", (unsigned long long)o->via.u64);
		*s = buf;
	} else
		return 0;
	return *len > 0;
}

static lx_status get_int(const lx_record *rec, const char *key, const char *where, int *out, lx_err *e)
{
	const msgpack_object *o = lx_record_get(rec, key);

	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < 1 || o->via.u64 > 1000000)
		return lx_errf(e, LX_EINPUT, "%s: field %s %s, expected an integer from 1 to 1000000", where, key,
		               o ? "is not such an integer" : "is missing");
	*out = (int)o->via.u64;
	return LX_OK;
}

/* Rewrites e's message with the image's place in front. */
static lx_status placed(lx_status st, const char *where, lx_err *e)
{
	char msg[sizeof e->msg];

	snprintf(msg, sizeof msg, "%s", e->msg);
	return lx_errf(e, st, "%s: %s", where, msg);
}

static lx_status get_tensor(const lx_record *rec, const char *key, int ndim, int64_t n, int64_t d1,
                            const char *where, lx_tensor *t, int *present, lx_err *e)
{
	lx_status st = lx_record_tensor(rec, key, t, present, e);

	if (st)
		return placed(st, where, e);
	if (present && !*present)
		return LX_OK;
	if (t->ndim != ndim || (n >= 0 && t->shape[0] != n) || (ndim == 2 && d1 >= 0 && t->shape[1] != d1))
		return lx_errf(e, LX_EINPUT, "%s: field %s has shape [%lld%s%lld], expected %s%s", where, key,
		               (long long)t->shape[0], ndim == 2 ? "," : "", ndim == 2 ? (long long)t->shape[1] : 0LL,
		               ndim == 2 ? "[N,4] or [N,F] " : "[N] ", n >= 0 ? "with N the number of boxes" : "");
	return LX_OK;
}

static lx_status optional_pair(const lx_record *rec, const char *ids, const char *conf, lx_feat_image *im,
                               int32_t *id_out, float *conf_out, int *has, const char *where, lx_err *e)
{
	lx_tensor ti, tc;
	int pi, pc;
	lx_status st;

	*has = 0;
	if ((st = get_tensor(rec, ids, 1, im->n, -1, where, &ti, &pi, e)) ||
	    (st = get_tensor(rec, conf, 1, im->n, -1, where, &tc, &pc, e)))
		return st;
	if (!pi || !pc)
		return LX_OK;
	if ((st = lx_tensor_to_i32(&ti, id_out, ids, e)) || (st = lx_tensor_to_f32(&tc, conf_out, conf, e)))
		return placed(st, where, e);
	*has = 1;
	return LX_OK;
}

static lx_status to_image(lx_feat_file *f, const lx_record *rec, lx_feat_image *im, lx_err *e)
{
	char where[400], num[32];
	const char *id;
	size_t len;
	lx_tensor tb, tf;
	lx_status st;

	im->src = f->path;
	im->line = f->lineno;
	im->is_record = 1;
	im->n = im->dim = 0;
	if (!id_text(lx_record_get(rec, "img_id"), num, sizeof num, &id, &len))
		return lx_errf(e, LX_EINPUT, "%s: record %ld: no img_id (a string or an integer)", f->path, f->lineno);
	if (!lx_feat_image_set_id(im, id, len))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	lx_feat_image_where(im, where, sizeof where);
	if ((st = get_int(rec, "img_h", where, &im->img_h, e)) || (st = get_int(rec, "img_w", where, &im->img_w, e)) ||
	    (st = get_tensor(rec, "boxes", 2, -1, 4, where, &tb, NULL, e)) ||
	    (st = get_tensor(rec, "visual_feats", 2, tb.shape[0], -1, where, &tf, NULL, e)))
		return st;
	im->n = (int)tb.shape[0];
	im->dim = (int)tf.shape[1];
	if (!lx_feat_image_reserve(im, im->n, im->dim))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	if ((st = lx_tensor_to_f32(&tb, im->boxes, "boxes", e)) ||
	    (st = lx_tensor_to_f32(&tf, im->feats, "visual_feats", e)))
		return placed(st, where, e);
	if ((st = optional_pair(rec, "obj_ids", "obj_conf", im, im->obj_ids, im->obj_conf, &im->has_obj, where, e)))
		return st;
	return optional_pair(rec, "attr_ids", "attr_conf", im, im->attr_ids, im->attr_conf, &im->has_attr, where, e);
}

lx_status feat_stream_next(lx_feat_file *f, lx_feat_image *im, int *got, lx_err *e)
{
	lx_record *rec;
	lx_status st;

	*got = 0;
	if (!f->r && !(f->r = lx_reader_new_buffered(f->f, f->path)))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	if ((st = lx_reader_next(f->r, &rec, e)) || !rec)
		return st;
	f->lineno++;
	st = to_image(f, rec, im, e);
	lx_record_free(rec);
	*got = st == LX_OK;
	return st;
}

lx_status feat_stream_seek(lx_feat_file *f, lx_feat_pos pos, lx_err *e)
{
	if (fseeko(f->f, (off_t)pos.off, SEEK_SET))
		return lx_errf(e, LX_EIO, "%s: cannot seek to byte %llu: %s", f->path, (unsigned long long)pos.off,
		               strerror(errno));
	lx_reader_free(f->r);
	f->r = NULL;
	f->lineno = pos.line - 1;
	return LX_OK;
}

/* Every record's img_id and where it starts, read through lx_reader, which bounds every declared size by
 * the bytes really in the file before msgpack-c allocates for it. */
static lx_status scan_one(lx_feat_file *f, const lx_record *rec, long recno, uint64_t start, lx_feat_scan_fn fn,
                          void *ctx, lx_err *e)
{
	char num[32];
	const char *id;
	size_t len;

	if (!id_text(lx_record_get(rec, "img_id"), num, sizeof num, &id, &len))
		return lx_errf(e, LX_EINPUT, "%s: record %ld: no img_id (a string or an integer)", f->path, recno);
	return fn(ctx, id, len, (lx_feat_pos){start, recno}, e);
}

lx_status feat_stream_scan(lx_feat_file *f, lx_feat_scan_fn fn, void *ctx, lx_err *e)
{
	lx_reader *r;
	lx_record *rec;
	uint64_t start = 0;
	lx_status st;

	if (fseeko(f->f, 0, SEEK_SET))
		return lx_errf(e, LX_EMODEL, "%s: cannot seek (%s): joining needs a regular file", f->path,
		               strerror(errno));
	if (!(r = lx_reader_new_buffered(f->f, f->path)))
		return lx_errf(e, LX_EIO, "%s: out of memory", f->path);
	while (!(st = lx_reader_next(r, &rec, e)) && rec) {
		st = scan_one(f, rec, lx_reader_count(r), start, fn, ctx, e);
		lx_record_free(rec);
		if (st)
			break;
		start = lx_reader_offset(r);
	}
	lx_reader_free(r);
	rewind(f->f);
	lx_reader_free(f->r);
	f->r = NULL;
	f->lineno = 0;
	return st;
}

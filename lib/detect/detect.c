/* detect.c - the detector: its model directory bound and checked, and one image from pixels to detections. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "lx_fmt.h"
#include "detect/detect_impl.h"

#ifdef LX_DNNL
#include <omp.h>
#endif

/* Proposals run through res5 at once: res5's activations for this many boxes are what the heads hold. */
#define ROI_BATCH 32

typedef struct {
	det_conv conv1, conv2, conv3, shortcut;
	int has_shortcut;
} det_block;

typedef struct {
	const float *w, *b;
	int in, out;
} det_linear;

/* The buffers the blocks run in, kept from one image to the next so that no large map is allocated (and its
 * pages faulted in) again at each block: 0 the maps in, 1 the maps out (swapped after a block), 2 and 3 the
 * inner maps of a block; RES4 holds res4 as the proposals are pooled from it (NHWC on oneDNN). Each only grows. */
enum { RES4 = 4, NWORK };
typedef struct {
	float *buf[NWORK];
	size_t cap[NWORK];
} det_work;

struct lx_detector {
	lx_detect_config c;
	lx_st *st;
	det_engine *eng;             /* where the convolutions run (NULL: im2col + sgemm) */
	float **owned;
	int nowned;
	det_conv stem;
	det_block *blocks;  /* res2, res3, res4 */
	int nblocks[3];
	det_block res5[3];
	det_conv rpn_conv, rpn_obj, rpn_delta;
	det_linear cls, bbox, fc_attr, attr;
	const float *cls_embedding;  /* [classes + 1][dim / 8] */
	float cell[4 * LX_DETECT_MAX_LIST * LX_DETECT_MAX_LIST];
	int anchors;                 /* per position */
	int c4, c5;                  /* res4's and res5's channels */
	det_work *work;
};

typedef struct {
	lx_detector *d;
	char path[4096];
	unsigned char *used;
	lx_err *e;
	lx_status rc;
} binder;

static float *own(binder *b, size_t n)
{
	float **no, *p;

	if (b->rc)
		return NULL;
	no = realloc(b->d->owned, (size_t)(b->d->nowned + 1) * sizeof *no);
	if (!no || !(p = malloc(n * sizeof *p + 1))) {
		if (no)
			b->d->owned = no;
		b->rc = lx_errf(b->e, LX_EIO, "%s: out of memory", b->path);
		return NULL;
	}
	b->d->owned = no;
	b->d->owned[b->d->nowned++] = p;
	return p;
}

/* The float32 data of tensor `name`, whose shape must be dims[0..ndim). */
static const float *tensor(binder *b, const char *name, int ndim, const int *dims)
{
	lx_tensor t;
	float *buf;
	int i, ok;

	if (b->rc)
		return NULL;
	if ((i = lx_st_find(b->d->st, name)) < 0) {
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: missing tensor %s", b->path, name);
		return NULL;
	}
	lx_st_name(b->d->st, i, &t);
	b->used[i] = 1;
	ok = t.ndim == ndim;
	for (int j = 0; ok && j < ndim; j++)
		ok = t.shape[j] == dims[j];
	if (!ok) {
		char got[128] = "", want[128] = "";
		for (int j = 0; j < t.ndim; j++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", j ? ", " : "", (long long)t.shape[j]);
		for (int j = 0; j < ndim; j++)
			snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", j ? ", " : "", dims[j]);
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: tensor %s has shape [%s], the config gives [%s]", b->path, name, got,
		                want);
		return NULL;
	}
	if (!lx_dtype_is_float(t.dtype)) {
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: tensor %s has dtype %s, expected a float dtype", b->path, name,
		                lx_dtype_safetensors(t.dtype));
		return NULL;
	}
	if (t.dtype == LX_F32 && (uintptr_t)t.data % sizeof(float) == 0)
		return t.data;
	if (!(buf = own(b, (size_t)t.numel)))
		return NULL;
	if (lx_tensor_to_f32(&t, buf, name, b->e))
		b->rc = LX_EMODEL;
	return b->rc ? NULL : buf;
}

static const float *tensor1(binder *b, const char *name, int d0)
{
	return tensor(b, name, 1, (int[]){d0});
}

static const float *tensor2(binder *b, const char *name, int d0, int d1)
{
	return tensor(b, name, 2, (int[]){d0, d1});
}

/* A convolution prefix.weight, with its BatchNorm prefix.norm.* folded in (bn), or its bias prefix.bias. */
static void bind_conv(binder *b, det_conv *c, const char *prefix, int cin, int cout, int k, int stride, int pad,
                      int dil, int groups, int bn)
{
	char name[256];
	const float *w, *g, *beta, *mean, *var;
	float *fw, *fb;
	size_t per = (size_t)(cin / groups) * k * k;

	*c = (det_conv){cin, cout, k, stride, pad, dil, groups, NULL, NULL, b->d->eng, 0, NULL, NULL};
	snprintf(name, sizeof name, "%s.weight", prefix);
	w = tensor(b, name, 4, (int[]){cout, cin / groups, k, k});
	if (!bn) {
		snprintf(name, sizeof name, "%s.bias", prefix);
		c->w = w;
		c->b = tensor1(b, name, cout);
		return;
	}
	snprintf(name, sizeof name, "%s.norm.weight", prefix);
	g = tensor1(b, name, cout);
	snprintf(name, sizeof name, "%s.norm.bias", prefix);
	beta = tensor1(b, name, cout);
	snprintf(name, sizeof name, "%s.norm.running_mean", prefix);
	mean = tensor1(b, name, cout);
	snprintf(name, sizeof name, "%s.norm.running_var", prefix);
	var = tensor1(b, name, cout);
	snprintf(name, sizeof name, "%s.norm.num_batches_tracked", prefix);
	if (lx_st_find(b->d->st, name) >= 0)
		b->used[lx_st_find(b->d->st, name)] = 1;
	fw = own(b, (size_t)cout * per);
	fb = own(b, (size_t)cout);
	if (b->rc)
		return;
	/* eval-mode BatchNorm as PyTorch computes it: x * alpha + (beta - mean * alpha), alpha = gamma / sqrt(var + eps) */
	for (int o = 0; o < cout; o++) {
		float alpha = 1.0f / sqrtf(var[o] + 1e-5f) * g[o];
		for (size_t i = 0; i < per; i++)
			fw[(size_t)o * per + i] = w[(size_t)o * per + i] * alpha;
		fb[o] = beta[o] - mean[o] * alpha;
	}
	c->w = fw;
	c->b = fb;
}

/* One bottleneck block. res5_first_dilated: the demo's Visual Genome res5 (stride 1, conv2 dilation 2). */
static void bind_block(binder *b, det_block *k, const char *prefix, int in, int bott, int out, int stride, int dil)
{
	const lx_detect_config *c = &b->d->c;
	int s1 = c->stride_in_1x1 ? stride : 1, s3 = c->stride_in_1x1 ? 1 : stride;
	char name[256];

	k->has_shortcut = in != out;
	if (k->has_shortcut) {
		snprintf(name, sizeof name, "%s.shortcut", prefix);
		bind_conv(b, &k->shortcut, name, in, out, 1, stride, 0, 1, 1, 1);
	}
	snprintf(name, sizeof name, "%s.conv1", prefix);
	bind_conv(b, &k->conv1, name, in, bott, 1, s1, 0, 1, 1, 1);
	snprintf(name, sizeof name, "%s.conv2", prefix);
	bind_conv(b, &k->conv2, name, bott, bott, 3, s3, dil, dil, c->groups, 1);
	snprintf(name, sizeof name, "%s.conv3", prefix);
	bind_conv(b, &k->conv3, name, bott, out, 1, 1, 0, 1, 1, 1);
}

static void bind_linear(binder *b, det_linear *l, const char *prefix, int in, int out)
{
	char name[256];

	l->in = in;
	l->out = out;
	snprintf(name, sizeof name, "%s.weight", prefix);
	l->w = tensor2(b, name, out, in);
	snprintf(name, sizeof name, "%s.bias", prefix);
	l->b = tensor1(b, name, out);
}

static void bind_all(binder *b)
{
	lx_detector *d = b->d;
	const lx_detect_config *c = &d->c;
	static const int per_depth[3][3] = {{3, 4, 6}, {3, 4, 23}, {3, 8, 36}};
	int depth = c->depth == 50 ? 0 : c->depth == 101 ? 1 : 2, in = c->stem_out, out = c->res2_out;
	int bott = c->groups * c->width_per_group, total = 0, s, i, n = 0, hidden, dim;
	char name[256];

	if (c->agnostic) {
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG must be false", b->path);
		return;
	}
	if (bott % c->groups) {
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: RESNETS.NUM_GROUPS does not divide the bottleneck width", b->path);
		return;
	}
	bind_conv(b, &d->stem, "backbone.stem.conv1", 3, c->stem_out, 7, 2, 3, 1, 1, 1);
	for (s = 0; s < 3; s++)
		total += d->nblocks[s] = per_depth[depth][s];
	if (!(d->blocks = calloc((size_t)total, sizeof *d->blocks))) {
		b->rc = lx_errf(b->e, LX_EIO, "%s: out of memory", b->path);
		return;
	}
	for (s = 0; s < 3; s++) {
		for (i = 0; i < d->nblocks[s]; i++) {
			snprintf(name, sizeof name, "backbone.res%d.%d", s + 2, i);
			bind_block(b, &d->blocks[n++], name, i ? out : in, bott, out, i == 0 && s > 0 ? 2 : 1, 1);
		}
		in = out;
		out *= 2;
		bott *= 2;
	}
	d->c4 = in;
	d->c5 = c->res2_out * 8;
	for (i = 0; i < 3; i++) {
		det_block *k = &d->res5[i];
		snprintf(name, sizeof name, "roi_heads.res5.%d", i);
		bind_block(b, k, name, i ? d->c5 : d->c4, bott, d->c5, i ? 1 : 2, c->res5_halve ? 1 : 2);
		if (!i && !c->res5_halve) { /* the demo's Visual Genome res5: its first block keeps the pooled size */
			k->conv1.stride = 1;
			k->shortcut.stride = 1;
		}
	}
	d->anchors = det_cell_anchors(c, d->cell);
	hidden = c->rpn_hidden == -1 ? d->c4 : c->rpn_hidden;
	bind_conv(b, &d->rpn_conv, "proposal_generator.rpn_head.conv", d->c4, hidden, 3, 1, 1, 1, 1, 0);
	bind_conv(b, &d->rpn_obj, "proposal_generator.rpn_head.objectness_logits", hidden, d->anchors, 1, 1, 0, 1, 1, 0);
	bind_conv(b, &d->rpn_delta, "proposal_generator.rpn_head.anchor_deltas", hidden, 4 * d->anchors, 1, 1, 0, 1, 1, 0);
	if (!b->rc && (i = lx_st_find(d->st, "proposal_generator.anchor_generator.cell_anchors.0")) >= 0) {
		const float *stored = tensor2(b, "proposal_generator.anchor_generator.cell_anchors.0", d->anchors, 4);
		for (int j = 0; stored && j < 4 * d->anchors; j++)
			if (fabsf(stored[j] - d->cell[j]) > 1e-3f * (1 + fabsf(d->cell[j]))) {
				b->rc = lx_errf(b->e, LX_EMODEL,
				                "%s: the stored cell_anchors.0 [%d][%d] is %g, ANCHOR_GENERATOR gives %g", b->path,
				                j / 4, j % 4, stored[j], d->cell[j]);
				break;
			}
	}
	dim = d->c5;
	bind_linear(b, &d->cls, "roi_heads.box_predictor.cls_score", dim, c->classes + 1);
	bind_linear(b, &d->bbox, "roi_heads.box_predictor.bbox_pred", dim, 4 * c->classes);
	d->cls_embedding = tensor2(b, "roi_heads.box_predictor.cls_embedding.weight", c->classes + 1, dim / 8);
	bind_linear(b, &d->fc_attr, "roi_heads.box_predictor.fc_attr", dim + dim / 8, dim / 4);
	bind_linear(b, &d->attr, "roi_heads.box_predictor.attr_score", dim / 4, c->attrs + 1);
}

lx_status lx_detector_open(lx_detector **out, const char *dir, lx_err *e)
{
	lx_detector *d = calloc(1, sizeof *d);
	binder b = {.d = d, .e = e};
	char path[4096];
	int i, n;

	*out = NULL;
	if (!d)
		return lx_errf(e, LX_EIO, "out of memory");
	snprintf(path, sizeof path, "%s/config.yaml", dir);
	if ((b.rc = lx_detect_config_read(&d->c, path, e)))
		goto fail;
	snprintf(b.path, sizeof b.path, "%s/model.safetensors", dir);
	if ((b.rc = lx_st_open(&d->st, b.path, e)))
		goto fail;
	n = lx_st_count(d->st);
	if ((b.rc = det_engine_new(&d->eng, e)))
		goto fail;
	if (!(d->work = calloc(1, sizeof *d->work))) {
		b.rc = lx_errf(e, LX_EIO, "out of memory");
		goto fail;
	}
	if (!(b.used = calloc((size_t)n + 1, 1))) {
		b.rc = lx_errf(e, LX_EIO, "out of memory");
		goto fail;
	}
	bind_all(&b);
	for (i = 0; !b.rc && i < n; i++) {
		lx_tensor t;
		const char *name = lx_st_name(d->st, i, &t);
		size_t len = strlen(name);
		if (!b.used[i] && !(len > 20 && !strcmp(name + len - 20, ".num_batches_tracked")))
			b.rc = lx_errf(e, LX_EMODEL, "%s: tensor %s is not part of the detector the config describes", b.path,
			               name);
	}
	free(b.used);
	if (b.rc)
		goto fail;
	*out = d;
	return LX_OK;
fail:
	lx_detector_free(d);
	return b.rc;
}

void lx_detector_free(lx_detector *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->nowned; i++)
		free(d->owned[i]);
	free(d->owned);
	free(d->blocks);
	for (int i = 0; d->work && i < NWORK; i++)
		free(d->work->buf[i]);
	free(d->work);
	det_engine_free(d->eng);
	lx_st_free(d->st);
	free(d);
}

lx_status lx_detector_bf16(lx_detector *d, lx_err *e)
{
	lx_status rc = det_engine_bf16(d->eng, e);

	for (int i = 0; !rc && i < 3; i++) {
		det_block *k = &d->res5[i];
		k->conv1.bf16 = k->conv2.bf16 = k->conv3.bf16 = 1;
		k->shortcut.bf16 = k->has_shortcut;
		k->conv1.wq = k->conv2.wq = k->conv3.wq = k->shortcut.wq = NULL;  /* not int8 (lx_detector_int8) */
	}
	return rc;
}

/* Layer c's weights to int8, each output channel by its largest |weight|, kept by the detector. */
static void quantize_conv(binder *b, det_conv *c)
{
	size_t per = (size_t)(c->cin / c->groups) * c->k * c->k;
	float *scale = own(b, (size_t)c->cout);
	signed char *q = (signed char *)own(b, ((size_t)c->cout * per + sizeof(float) - 1) / sizeof(float));

	if (!scale || !q)
		return;
	for (int o = 0; o < c->cout; o++) {
		const float *w = c->w + (size_t)o * per;
		float m = 0.0f;
		for (size_t i = 0; i < per; i++)
			m = fabsf(w[i]) > m ? fabsf(w[i]) : m;
		scale[o] = m > 0.0f ? 127.0f / m : 1.0f;
		for (size_t i = 0; i < per; i++)
			q[(size_t)o * per + i] = (signed char)lrintf(w[i] * scale[o]);
	}
	c->wq = q;
	c->wscale = scale;
}

lx_status lx_detector_int8(lx_detector *d, lx_err *e)
{
	binder b = {d, "int8", NULL, e, LX_OK};

	if ((b.rc = det_engine_int8(d->eng, e)))
		return b.rc;
	for (int i = 0; !b.rc && i < 3; i++) {
		det_block *k = &d->res5[i];
		k->conv1.bf16 = k->conv2.bf16 = k->conv3.bf16 = k->shortcut.bf16 = 0;
		quantize_conv(&b, &k->conv1);
		quantize_conv(&b, &k->conv2);
		quantize_conv(&b, &k->conv3);
		if (k->has_shortcut)
			quantize_conv(&b, &k->shortcut);
	}
	return b.rc;
}

lx_detect_config *lx_detector_config(lx_detector *d)
{
	return &d->c;
}

/* ---- the forward pass ---- */

static lx_status oom(lx_err *e, const char *what)
{
	return lx_errf(e, LX_EIO, "out of memory (%s)", what);
}

/* A convolution in NCHW, or in NHWC where the detector runs on oneDNN (the layout kept through the blocks). */
static lx_status conv(const det_conv *c, const float *x, int n, int h, int w, float *y, int acc, int relu, lx_err *e)
{
	return c->eng ? det_conv_run_nhwc(c, x, n, h, w, y, acc, relu, e) : det_conv_run(c, x, n, h, w, y, acc, relu, e);
}

/* A block's convolution followed by a ReLU, its input or output in bfloat16 as io says (0: as conv). */
static lx_status conv_mid(const det_conv *c, const void *x, int n, int h, int w, void *y, int acc, int io, lx_err *e)
{
	return io ? det_conv_run_bf16(c, x, n, h, w, y, acc, 1, io, e) : conv(c, x, n, h, w, y, acc, 1, e);
}

/* Work buffer i with room for n floats (its contents lost when it grows), or NULL when memory runs out. */
static float *work_get(det_work *k, int i, size_t n)
{
	if (k->cap[i] < n) {
		free(k->buf[i]);
		k->cap[i] = 0;
		if (!(k->buf[i] = malloc(n * sizeof(float) + 1)))
			return NULL;
		k->cap[i] = n;
	}
	return k->buf[i];
}

/* One bottleneck block on n maps [n][in][h][w] in work buffer 0 (NHWC on oneDNN: [n][h][w][in]), whose output
 * [n][out][*h][*w] is then in buffer 0: a projection shortcut writes buffer 1 and the two are swapped, an
 * identity one adds conv3 to the input where it is. */
static lx_status block_run(const det_block *k, det_work *wk, int n, int *h, int *w, lx_err *e)
{
	int h1 = det_conv_out(&k->conv1, *h), w1 = det_conv_out(&k->conv1, *w);
	int h2 = det_conv_out(&k->conv2, h1), w2 = det_conv_out(&k->conv2, w1);
	float *x = wk->buf[0], *y = x, *t1, *t2;
	int bf = k->conv2.bf16;  /* the inner maps t1, t2 in bfloat16 */
	lx_status rc;

	if (!(t1 = work_get(wk, 2, (size_t)n * k->conv1.cout * h1 * w1)) ||
	    !(t2 = work_get(wk, 3, (size_t)n * k->conv2.cout * h2 * w2)) ||
	    (k->has_shortcut && !(y = work_get(wk, 1, (size_t)n * k->conv3.cout * h2 * w2))))
		return oom(e, "a ResNet block");
	if ((k->has_shortcut && (rc = conv(&k->shortcut, x, n, *h, *w, y, 0, 0, e))) ||
	    (rc = conv_mid(&k->conv1, x, n, *h, *w, t1, 0, bf ? DET_OUT_BF16 : 0, e)) ||
	    (rc = conv_mid(&k->conv2, t1, n, h1, w1, t2, 0, bf ? DET_IN_BF16 | DET_OUT_BF16 : 0, e)) ||
	    (rc = conv_mid(&k->conv3, t2, n, h2, w2, y, 1, bf ? DET_IN_BF16 : 0, e)))
		return rc;
	if (k->has_shortcut) {
		size_t cap = wk->cap[0];
		wk->buf[0] = y;
		wk->buf[1] = x;
		wk->cap[0] = wk->cap[1];
		wk->cap[1] = cap;
	}
	*h = h2;
	*w = w2;
	return LX_OK;
}

/* Blocks [0, nb) on the maps in work buffer 0, their output left there. */
static lx_status blocks_run(const det_block *k, int nb, det_work *wk, int n, int *h, int *w, lx_err *e)
{
	lx_status rc = LX_OK;

	for (int i = 0; !rc && i < nb; i++)
		rc = block_run(&k[i], wk, n, h, w, e);
	return rc;
}

/* The image planes the network takes: decoded pixels in the demo's channel order, resized, normalised. */
static lx_status preprocess(const lx_detector *d, const lx_image *im, lx_detect_trace *t, lx_err *e)
{
	const lx_detect_config *c = &d->c;
	size_t n = (size_t)im->w * im->h, i;
	float *planes = malloc(3 * n * sizeof *planes + 1);
	int ch;

	det_resize_size(im->h, im->w, c->min_size, c->max_size, &t->h, &t->w);
	if (t->h < 1 || t->w < 1) {
		free(planes);
		return lx_errf(e, LX_EINPUT, "a %d x %d image becomes %d x %d pixels at INPUT.MAX_SIZE_TEST %d", im->w, im->h,
		                t->w, t->h, c->max_size);
	}
	if (!planes || !(t->image = malloc((size_t)3 * t->h * t->w * sizeof *t->image + 1))) {
		free(planes);
		return oom(e, "the image");
	}
	/* "BGR": the demo's decoder turns OpenCV's BGR into RGB and feeds it; "RGB": it flips back to BGR */
	for (ch = 0; ch < 3; ch++) {
		int src = c->bgr ? ch : 2 - ch;
		for (i = 0; i < n; i++)
			planes[ch * n + i] = im->px[3 * i + src];
	}
	det_resize_bilinear(planes, 3, im->h, im->w, t->image, t->h, t->w);
	free(planes);
	for (ch = 0; ch < 3; ch++) {
		float mean = (float)c->pixel_mean[ch], std = (float)c->pixel_std[ch];
		float *p = t->image + (size_t)ch * t->h * t->w;
		for (i = 0; i < (size_t)t->h * t->w; i++)
			p[i] = (p[i] - mean) / std;
	}
	t->scale_y = (float)im->h / (float)t->h;
	t->scale_x = (float)im->w / (float)t->w;
	return LX_OK;
}

/* The stem, its max-pool and the blocks to res4 (NCHW in t->res4). On oneDNN the maps are NHWC from the image
 * to res4, which alone is turned back. */
static lx_status backbone(const lx_detector *d, lx_detect_trace *t, lx_err *e)
{
	int h = det_conv_out(&d->stem, t->h), w = det_conv_out(&d->stem, t->w), ph, pw, nhwc = d->eng != NULL;
	size_t npix = (size_t)t->h * t->w, cap;
	/* the stem's maps (and the image in NHWC) in work buffer 1, free until the first projection shortcut: no
	 * fresh 40 MB to fault in at each photo */
	float *x = work_get(d->work, 1, (size_t)d->stem.cout * h * w + (nhwc ? 3 * npix : 0)), *y;
	lx_status rc;

	if (!x)
		return oom(e, "the stem");
	if (nhwc)
		det_transpose(t->image, 1, 3, (int)npix, x + (size_t)d->stem.cout * h * w);
	if ((rc = conv(&d->stem, nhwc ? x + (size_t)d->stem.cout * h * w : t->image, 1, t->h, t->w, x, 0, 1, e)))
		return rc;
	if (!(y = work_get(d->work, 0, (size_t)d->stem.cout * (h / 2 + 2) * (w / 2 + 2))))
		return oom(e, "the stem");
	det_maxpool(x, d->stem.cout, h, w, d->c.caffe_maxpool, nhwc, y, &ph, &pw);
	if (ph < 1 || pw < 1)
		return lx_errf(e, LX_EINPUT, "a %d x %d image is too small for the network", t->w, t->h);
	if ((rc = blocks_run(d->blocks, d->nblocks[0] + d->nblocks[1] + d->nblocks[2], d->work, 1, &ph, &pw, e)))
		return rc;
	if (!(t->res4 = malloc((size_t)d->c4 * ph * pw * sizeof *t->res4 + 1)))
		return oom(e, "res4");
	/* res4 stays where the proposals are pooled from (buffers 0 and RES4 swapped); the trace's copy is NCHW */
	x = d->work->buf[0];
	d->work->buf[0] = d->work->buf[RES4];
	d->work->buf[RES4] = x;
	cap = d->work->cap[0];
	d->work->cap[0] = d->work->cap[RES4];
	d->work->cap[RES4] = cap;
	if (nhwc)
		det_transpose(x, 1, ph * pw, d->c4, t->res4);
	else
		memcpy(t->res4, x, (size_t)d->c4 * ph * pw * sizeof *t->res4);
	t->fc = d->c4;
	t->fh = ph;
	t->fw = pw;
	return LX_OK;
}

/* The RPN: objectness and deltas at every anchor, the best pre_nms_topk, clipped, non-empty, NMS, post_nms_topk. */
static lx_status rpn(const lx_detector *d, lx_detect_trace *t, lx_err *e)
{
	const lx_detect_config *c = &d->c;
	int hw = t->fh * t->fw, A = d->anchors, n = hw * A, top = c->pre_nms_topk < n ? c->pre_nms_topk : n, i, m = 0, k;
	float *hid = malloc((size_t)d->rpn_conv.cout * hw * sizeof *hid + 1);
	float *obj = malloc((size_t)A * hw * sizeof *obj + 1), *del = malloc((size_t)4 * A * hw * sizeof *del + 1);
	float *logits = malloc((size_t)n * sizeof *logits + 1), *boxes = malloc((size_t)4 * top * sizeof *boxes + 1);
	float *scores = malloc((size_t)top * sizeof *scores + 1);
	int *order = malloc((size_t)n * sizeof *order + 1), *keep = malloc((size_t)top * sizeof *keep + 1);
	lx_status rc = LX_OK;

	if (!hid || !obj || !del || !logits || !boxes || !scores || !order || !keep)
		rc = oom(e, "the RPN");
	if (!rc)
		rc = det_conv_run(&d->rpn_conv, t->res4, 1, t->fh, t->fw, hid, 0, 1, e);
	if (!rc)
		rc = det_conv_run(&d->rpn_obj, hid, 1, t->fh, t->fw, obj, 0, 0, e);
	if (!rc)
		rc = det_conv_run(&d->rpn_delta, hid, 1, t->fh, t->fw, del, 0, 0, e);
	if (rc)
		goto out;
	for (i = 0; i < n; i++) /* anchors in order (y, x, anchor) */
		logits[i] = obj[(size_t)(i % A) * hw + i / A];
	if (det_order(logits, n, order)) {
		rc = oom(e, "the RPN");
		goto out;
	}
	for (i = 0; i < top; i++) {
		int a = order[i] % A, pos = order[i] / A, j;
		float shift_x = (float)(c->anchor_offset * 16 + (double)(pos % t->fw) * 16);
		float shift_y = (float)(c->anchor_offset * 16 + (double)(pos / t->fw) * 16);
		float anchor[4] = {shift_x + d->cell[4 * a], shift_y + d->cell[4 * a + 1], shift_x + d->cell[4 * a + 2],
		                   shift_y + d->cell[4 * a + 3]},
		      delta[4], *b = boxes + 4 * m;
		for (j = 0; j < 4; j++)
			delta[j] = del[(size_t)(4 * a + j) * hw + pos];
		det_apply_deltas(anchor, delta, c->rpn_weights, b);
		for (j = 0; j < 4; j++) {
			float lim = (float)(j % 2 ? t->h : t->w);
			b[j] = b[j] < 0.0f ? 0.0f : b[j] > lim ? lim : b[j];
		}
		if (b[2] - b[0] > c->rpn_min_size && b[3] - b[1] > c->rpn_min_size)
			scores[m++] = logits[order[i]];
	}
	if ((k = det_nms(boxes, scores, m, c->rpn_nms, keep, e)) < 0) {
		rc = LX_EIO;
		goto out;
	}
	t->p = k < c->post_nms_topk ? k : c->post_nms_topk;
	t->proposals = malloc((size_t)4 * t->p * sizeof *t->proposals + 1);
	t->objectness = malloc((size_t)t->p * sizeof *t->objectness + 1);
	if (!t->proposals || !t->objectness) {
		rc = oom(e, "the RPN");
		goto out;
	}
	for (i = 0; i < t->p; i++) {
		memcpy(t->proposals + 4 * i, boxes + 4 * keep[i], 4 * sizeof *boxes);
		t->objectness[i] = scores[keep[i]];
	}
out:
	free(hid);
	free(obj);
	free(del);
	free(logits);
	free(boxes);
	free(scores);
	free(order);
	free(keep);
	return rc;
}

/* fn's parts on the threads the convolutions run on: oneDNN's OpenMP threads (lx's own pool, lx_par_run, keeps
 * OpenMP to one thread for the encoder's sake, so it is not used here), or in turn without oneDNN. */
static int par_threads(void)
{
#ifdef LX_DNNL
	return omp_get_max_threads();
#else
	return 1;
#endif
}

static void par_run(int parts, void (*fn)(void *arg, int part, int parts), void *arg)
{
#ifdef LX_DNNL
#pragma omp parallel for schedule(static)
#endif
	for (int i = 0; i < parts; i++)
		fn(arg, i, parts);
}

/* A batch of proposals, each pooled by one part (roi_pool_part) or averaged over space (roi_mean_part). */
typedef struct {
	const lx_detector *d;
	const lx_detect_trace *t;
	const float *map;  /* res4: [c4][fh][fw], NHWC on oneDNN */
	float *x;          /* the pooled maps [n][c4][r][r] (NHWC: [n][r][r][c4]), or res5's [n][c5][h][w] (NHWC) */
	float *out;        /* roi_pooled's rows of the batch */
	double *sum;       /* one row of c5 sums for each part */
	int i0, n, h, w, nhwc;
} roi_job;

static void roi_pool_part(void *arg, int part, int parts)
{
	const roi_job *j = arg;
	int r = j->d->c.pooler, c = j->d->c4;

	for (int i = j->n * part / parts; i < j->n * (part + 1) / parts; i++)
		det_roipool(j->map, c, j->t->fh, j->t->fw, j->t->proposals + 4 * (j->i0 + i), 1.0f / 16, r, j->nhwc,
		            j->x + (size_t)i * c * r * r);
}

/* Each channel summed over space in double, pixels in order, then divided: the same sums on either layout. */
static void roi_mean_part(void *arg, int part, int parts)
{
	const roi_job *j = arg;
	int c = j->d->c5, hw = j->h * j->w;
	double *s = j->sum + (size_t)part * c;

	for (int i = j->n * part / parts; i < j->n * (part + 1) / parts; i++) {
		const float *x = j->x + (size_t)i * hw * c;
		for (int ch = 0; ch < c; ch++)
			s[ch] = 0;
		if (j->nhwc)
			for (int p = 0; p < hw; p++)
				for (int ch = 0; ch < c; ch++)
					s[ch] += x[(size_t)p * c + ch];
		else
			for (int ch = 0; ch < c; ch++)
				for (int p = 0; p < hw; p++)
					s[ch] += x[(size_t)ch * hw + p];
		for (int ch = 0; ch < c; ch++)
			j->out[(size_t)i * c + ch] = (float)(s[ch] / hw);
	}
}

/* RoIPool and res5 on the proposals, ROI_BATCH at a time, each averaged over space into roi_pooled (NHWC on
 * oneDNN, pooled from res4 kept NHWC). Pooling and averaging are shared among the threads by proposal. */
static lx_status roi_features(const lx_detector *d, lx_detect_trace *t, lx_err *e)
{
	int r = d->c.pooler, parts = par_threads() < ROI_BATCH ? par_threads() : ROI_BATCH;
	size_t per = (size_t)d->c4 * r * r;
	roi_job j = {d, t, d->work->buf[RES4], NULL, NULL, NULL, 0, 0, 0, 0, d->eng != NULL};
	lx_status rc = LX_OK;

	t->roi_pooled = malloc((size_t)t->p * d->c5 * sizeof *t->roi_pooled + 1);
	j.sum = malloc((size_t)parts * d->c5 * sizeof *j.sum);
	if (!t->roi_pooled || !j.sum) {
		free(j.sum);
		return oom(e, "the proposals' features");
	}
	for (j.i0 = 0; !rc && j.i0 < t->p; j.i0 += ROI_BATCH) {
		j.n = t->p - j.i0 < ROI_BATCH ? t->p - j.i0 : ROI_BATCH;
		j.h = j.w = r;
		if (!(j.x = work_get(d->work, 0, (size_t)j.n * per))) {
			rc = oom(e, "the proposals' features");
			break;
		}
		par_run(parts, roi_pool_part, &j);
		if ((rc = blocks_run(d->res5, 3, d->work, j.n, &j.h, &j.w, e)))
			break;
		j.x = d->work->buf[0];
		j.out = t->roi_pooled + (size_t)j.i0 * d->c5;
		par_run(parts, roi_mean_part, &j);
	}
	free(j.sum);
	return rc;
}

static void linear(const det_linear *l, const float *x, int n, int ldx, float *y)
{
	for (int i = 0; i < n; i++)
		memcpy(y + (size_t)i * l->out, l->b, (size_t)l->out * sizeof *y);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->out, l->in, 1.0f, x, ldx, l->w, l->in, 1.0f, y,
	            l->out);
}

static int argmax(const float *v, int n)
{
	int best = 0;

	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

/* The box predictor and the attribute head (the class embedding of each box's best class, background too). */
static lx_status heads(const lx_detector *d, lx_detect_trace *t, lx_err *e)
{
	const lx_detect_config *c = &d->c;
	int dim = d->c5, ed = dim / 8, i;
	float *cat = malloc((size_t)t->p * (dim + ed) * sizeof *cat + 1), *hid = malloc((size_t)t->p * (dim / 4) * sizeof *hid + 1);

	t->obj_logits = malloc((size_t)t->p * (c->classes + 1) * sizeof(float) + 1);
	t->attr_logits = malloc((size_t)t->p * (c->attrs + 1) * sizeof(float) + 1);
	t->box_deltas = malloc((size_t)t->p * 4 * c->classes * sizeof(float) + 1);
	if (!cat || !hid || !t->obj_logits || !t->attr_logits || !t->box_deltas) {
		free(cat);
		free(hid);
		return oom(e, "the box predictor");
	}
	if (t->p) {
		linear(&d->cls, t->roi_pooled, t->p, dim, t->obj_logits);
		linear(&d->bbox, t->roi_pooled, t->p, dim, t->box_deltas);
		for (i = 0; i < t->p; i++) {
			int best = argmax(t->obj_logits + (size_t)i * (c->classes + 1), c->classes + 1);
			memcpy(cat + (size_t)i * (dim + ed), t->roi_pooled + (size_t)i * dim, (size_t)dim * sizeof *cat);
			memcpy(cat + (size_t)i * (dim + ed) + dim, d->cls_embedding + (size_t)best * ed, (size_t)ed * sizeof *cat);
		}
		linear(&d->fc_attr, cat, t->p, dim + ed, hid);
		for (i = 0; i < t->p * (dim / 4); i++)
			hid[i] = hid[i] > 0.0f ? hid[i] : 0.0f;
		linear(&d->attr, hid, t->p, dim / 4, t->attr_logits);
	}
	free(cat);
	free(hid);
	return LX_OK;
}

/* softmax of v [n] into p, as PyTorch: exp(v - max) / sum. */
static void softmax(const float *v, int n, float *p)
{
	float m = v[0], s = 0;
	int i;

	for (i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	for (i = 0; i < n; i++)
		s += p[i] = expf(v[i] - m);
	for (i = 0; i < n; i++)
		p[i] /= s;
}

/* The demo's ROIOutputs: each proposal's best class without background and its box, NMS with each threshold in
 * turn until min_det boxes remain (at most max_det), boxes scaled back to the image. */
static lx_status outputs(const lx_detector *d, const lx_image *im, lx_detect_trace *t, lx_detection *r, lx_err *e)
{
	const lx_detect_config *c = &d->c;
	int K = c->classes, P = t->p, i, k = 0, ti, dim = d->c5;
	float *prob = malloc((size_t)(K + 1 > c->attrs ? K + 1 : c->attrs) * sizeof *prob + 1);
	float *boxes = malloc((size_t)4 * P * sizeof *boxes + 1), *score = malloc((size_t)P * sizeof *score + 1);
	int *cls = malloc((size_t)P * sizeof *cls + 1), *keep = malloc((size_t)P * sizeof *keep + 1);
	float orig_h = (float)t->h * t->scale_y, orig_w = (float)t->w * t->scale_x;
	lx_status rc = LX_OK;

	if (!prob || !boxes || !score || !cls || !keep) {
		rc = oom(e, "the detections");
		goto out;
	}
	for (i = 0; i < P; i++) {
		float *b = boxes + 4 * i;
		softmax(t->obj_logits + (size_t)i * (K + 1), K + 1, prob);
		cls[i] = argmax(prob, K);
		score[i] = prob[cls[i]];
		det_apply_deltas(t->proposals + 4 * i, t->box_deltas + (size_t)i * 4 * K + 4 * cls[i], c->box_weights, b);
		for (int j = 0; j < 4; j++) {
			float lim = (float)(j % 2 ? t->h : t->w);
			b[j] = b[j] < 0.0f ? 0.0f : b[j] > lim ? lim : b[j];
		}
	}
	for (ti = 0; ti < c->nnms; ti++) {
		if ((k = det_nms(boxes, score, P, c->nms[ti], keep, e)) < 0) {
			rc = LX_EIO;
			goto out;
		}
		k = k < c->max_det ? k : c->max_det;
		if (k >= c->min_det)
			break;
	}
	r->img_h = im->h;
	r->img_w = im->w;
	r->n = k;
	r->dim = dim;
	r->boxes = malloc((size_t)4 * k * sizeof(float) + 1);
	r->visual_pos = malloc((size_t)4 * k * sizeof(float) + 1);
	r->feats = malloc((size_t)k * dim * sizeof(float) + 1);
	r->obj_ids = malloc((size_t)k * sizeof(int32_t) + 1);
	r->obj_conf = malloc((size_t)k * sizeof(float) + 1);
	r->attr_ids = malloc((size_t)k * sizeof(int32_t) + 1);
	r->attr_conf = malloc((size_t)k * sizeof(float) + 1);
	if (!r->boxes || !r->visual_pos || !r->feats || !r->obj_ids || !r->obj_conf || !r->attr_ids || !r->attr_conf) {
		rc = oom(e, "the detections");
		goto out;
	}
	for (i = 0; i < k; i++) {
		int p = keep[i];
		float *b = r->boxes + 4 * i, *v = r->visual_pos + 4 * i;
		b[0] = boxes[4 * p] * t->scale_x;
		b[1] = boxes[4 * p + 1] * t->scale_y;
		b[2] = boxes[4 * p + 2] * t->scale_x;
		b[3] = boxes[4 * p + 3] * t->scale_y;
		v[0] = b[0] / orig_w;
		v[1] = b[1] / orig_h;
		v[2] = b[2] / orig_w;
		v[3] = b[3] / orig_h;
		r->obj_ids[i] = cls[p];
		r->obj_conf[i] = score[p];
		softmax(t->attr_logits + (size_t)p * (c->attrs + 1), c->attrs, prob);
		r->attr_ids[i] = argmax(prob, c->attrs);
		r->attr_conf[i] = prob[r->attr_ids[i]];
		memcpy(r->feats + (size_t)i * dim, t->roi_pooled + (size_t)p * dim, (size_t)dim * sizeof(float));
	}
out:
	free(prob);
	free(boxes);
	free(score);
	free(cls);
	free(keep);
	return rc;
}

lx_status lx_detect(lx_detector *d, const lx_image *im, lx_detection *out, lx_detect_trace *trace, lx_err *e)
{
	lx_detect_trace t = {0};
	lx_status rc;

	memset(out, 0, sizeof *out);
	if (!(rc = preprocess(d, im, &t, e)) && !(rc = backbone(d, &t, e)) && !(rc = rpn(d, &t, e)) &&
	    !(rc = roi_features(d, &t, e)) && !(rc = heads(d, &t, e)))
		rc = outputs(d, im, &t, out, e);
	if (rc)
		lx_detection_destroy(out);
	if (trace && !rc)
		*trace = t;
	else
		lx_detect_trace_destroy(&t);
	return rc;
}

void lx_detection_destroy(lx_detection *r)
{
	free(r->boxes);
	free(r->visual_pos);
	free(r->feats);
	free(r->obj_ids);
	free(r->obj_conf);
	free(r->attr_ids);
	free(r->attr_conf);
	memset(r, 0, sizeof *r);
}

void lx_detect_trace_destroy(lx_detect_trace *t)
{
	free(t->image);
	free(t->res4);
	free(t->proposals);
	free(t->objectness);
	free(t->roi_pooled);
	free(t->obj_logits);
	free(t->attr_logits);
	free(t->box_deltas);
	memset(t, 0, sizeof *t);
}

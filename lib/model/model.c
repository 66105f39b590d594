/* model.c - a model directory: config.json and model.safetensors, every tensor checked and bound. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lx_model.h"

struct lx_model {
	char *dir;
	lx_config cfg;
	lx_weights w;
	lx_st *st;
	void **owned;  /* tensors converted at open (to float32, int8 or bfloat16) */
	int nowned;
	lx_dtype compute; /* of the encoders' linear layers: LX_F32, LX_I8 or LX_BF16 */
	float *half;   /* [65536]: every float16 as float32, while F16 tensors are converted */
};

/* Binds each tensor of the model to its weight pointer, or (visit set) only names each one to visit. */
typedef struct {
	lx_model *m;
	char path[4096];
	unsigned char *used;
	lx_err *e;
	lx_status rc;
	void (*visit)(void *ctx, const char *name, int d0, int d1);
	const float *(*get)(void *ctx, const char *name, int d0, int d1);  /* lx_model_from_tensors */
	void *ctx;
	int heads;  /* LX_HEAD_* to visit */
	int compute;   /* lx_model_open_as's */
	int in_heads;  /* binding the heads, which stay float32 */
} binder;

static lx_status read_small_file(const char *path, char **out, size_t *len, lx_err *e)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	if (!(buf = malloc(1 << 20))) {
		fclose(f);
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	}
	n = fread(buf, 1, 1 << 20, f);
	if (ferror(f) || n == 1 << 20) {
		int err = errno;
		fclose(f);
		free(buf);
		return n == 1 << 20 ? lx_errf(e, LX_EMODEL, "%s: larger than 1 MiB, not a config file", path)
		                    : lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(err));
	}
	fclose(f);
	*out = buf;
	*len = n;
	return LX_OK;
}

/* Tells the kernel the mapped pages wholly inside [p, p + n) are not needed any more: a converted tensor's
 * original bytes would otherwise stay in the process's resident set beside their float32 copy. */
static void release(const void *p, size_t n)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + page - 1) / page * page,
	          end = ((uintptr_t)p + n) / page * page;

	if (end > a)
		madvise((void *)a, end - a, MADV_DONTNEED);
}

/* n bytes the model owns (freed with it), or NULL with b->rc set. */
static void *own(binder *b, size_t n)
{
	void **no = realloc(b->m->owned, (size_t)(b->m->nowned + 1) * sizeof *no);
	void *p = no ? malloc(n + 1) : NULL;

	if (no)
		b->m->owned = no;
	if (!p) {
		b->rc = lx_errf(b->e, LX_EIO, "%s: out of memory", b->path);
		return NULL;
	}
	b->m->owned[b->m->nowned++] = p;
	return p;
}

/* Checks tensor i's shape against (d0) or (d0, d1); sets b->rc when it differs. */
static int shape_ok(binder *b, const lx_tensor *t, const char *name, int d0, int d1)
{
	char got[128] = "", want[64];
	int j, ndim = d1 < 0 ? 1 : 2;

	if (t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1))
		return 1;
	for (j = 0; j < t->ndim; j++)
		snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", j ? ", " : "", (long long)t->shape[j]);
	if (ndim == 1)
		snprintf(want, sizeof want, "%d", d0);
	else
		snprintf(want, sizeof want, "%d, %d", d0, d1);
	b->rc = lx_errf(b->e, LX_EMODEL, "%s: tensor %s has shape [%s], expected [%s]", b->path, name, got, want);
	return 0;
}

/* The float32 data of tensor `name` of shape (d0) or (d0, d1) (d1 < 0 for 1-D), or NULL with b->rc set. */
static const float *bindv(binder *b, int optional, int d0, int d1, const char *fmt, va_list ap)
{
	char name[256];
	lx_tensor t;
	int i;
	float *buf;
	int64_t k;

	vsnprintf(name, sizeof name, fmt, ap);
	if (b->rc)
		return NULL;
	if (b->visit) {
		if (!optional)
			b->visit(b->ctx, name, d0, d1);
		return NULL;
	}
	if (b->get) {
		const float *p = optional ? NULL : b->get(b->ctx, name, d0, d1);
		if (!p && !optional)
			b->rc = lx_errf(b->e, LX_EMODEL, "%s: missing tensor %s", b->path, name);
		return p;
	}
	if ((i = lx_st_find(b->m->st, name)) < 0) {
		if (!optional)
			b->rc = lx_errf(b->e, LX_EMODEL, "%s: missing tensor %s", b->path, name);
		return NULL;
	}
	lx_st_name(b->m->st, i, &t);
	b->used[i] = 1;
	if (!shape_ok(b, &t, name, d0, d1))
		return NULL;
	if (t.dtype != LX_F32 && t.dtype != LX_F16 && t.dtype != LX_BF16) {
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: tensor %s has dtype %s, expected F32, F16 or BF16", b->path, name,
		                lx_dtype_safetensors(t.dtype));
		return NULL;
	}
	if (t.dtype == LX_F32 && (uintptr_t)t.data % sizeof(float) == 0)
		return t.data; /* in place, in the mapping */
	if (!(buf = own(b, (size_t)t.numel * sizeof(float))))
		return NULL;
	if (t.dtype == LX_F32)
		memcpy(buf, t.data, (size_t)t.numel * sizeof(float));
	else if (t.dtype == LX_F16) {
		const unsigned char *p = t.data;
		const float *table = b->m->half;
		if (!table) { /* made at the first F16 tensor, dropped when the model is open */
			float *h = malloc(65536 * sizeof *h);
			if (!h) {
				b->rc = lx_errf(b->e, LX_EIO, "%s: out of memory", b->path);
				return NULL;
			}
			for (k = 0; k < 65536; k++)
				h[k] = lx_half_to_float((uint16_t)k);
			table = b->m->half = h;
		}
		for (k = 0; k < t.numel; k++)
			buf[k] = table[p[2 * k] | p[2 * k + 1] << 8];
	} else {
		const unsigned char *p = t.data;
		for (k = 0; k < t.numel; k++) {
			uint32_t bits = (uint32_t)(p[2 * k] | p[2 * k + 1] << 8) << 16;
			memcpy(&buf[k], &bits, 4);
		}
	}
	release(t.data, (size_t)t.numel * lx_dtype_size(t.dtype));
	return buf;
}

/* Binds the tensor named by fmt with shape (d0) or (d0, d1); with optional set, a missing one is no error. */
static const float *bind_as(binder *b, int optional, int d0, int d1, const char *fmt, ...)
{
	va_list ap;
	const float *p;

	va_start(ap, fmt);
	p = bindv(b, optional, d0, d1, fmt, ap);
	va_end(ap);
	return p;
}

#define tbind(b, ...) bind_as(b, 0, __VA_ARGS__)
#define bind_opt(b, ...) bind_as(b, 1, __VA_ARGS__)

void lx_quantize_rows(signed char *q, float *scale, const float *w, int rows, int cols)
{
	int r, c;

	for (r = 0; r < rows; r++) {
		const float *x = w + (size_t)r * cols;
		float mx = 0, inv;
		for (c = 0; c < cols; c++)
			mx = fabsf(x[c]) > mx ? fabsf(x[c]) : mx;
		scale[r] = mx > 0 ? mx / 127 : 1;
		inv = 1 / scale[r];
		for (c = 0; c < cols; c++)
			q[(size_t)r * cols + c] = (signed char)lrintf(x[c] * inv);
	}
}

int lx_model_int8_tensor(const char *name, int ndim)
{
	size_t n = strlen(name);

	return ndim == 2 && n > 7 && !strcmp(name + n - 7, ".weight") &&
	       (!strncmp(name, "lxmert.encoder.", 15) || !strncmp(name, "lxmert.pooler.", 14));
}

/* Weights stored in int8: `name` I8 (out, in) and `name`.scale F32 (out). 1 if bound, 0 if the file holds
 * no int8 tensor of that name. */
static int bind_int8(binder *b, lx_linear_w *l, int out, int in, const char *name)
{
	lx_tensor t;
	int i;

	if (b->rc || b->visit || b->get || (i = lx_st_find(b->m->st, name)) < 0)
		return 0;
	lx_st_name(b->m->st, i, &t);
	if (t.dtype != LX_I8)
		return 0;
	if (b->compute != -1 && b->compute != LX_I8) {
		b->rc = lx_errf(b->e, LX_EMODEL, "%s: tensor %s is stored in int8: the model computes in int8 only",
		                b->path, name);
		return 1;
	}
	b->used[i] = 1;
	if (!shape_ok(b, &t, name, out, in))
		return 1;
	l->q = t.data;
	l->qs = tbind(b, out, -1, "%s.scale", name);
	b->m->compute = LX_I8;
	return 1;
}

/* The float32 weights of l, quantized to int8 or rounded to bfloat16 as b->compute asks. */
static void reduce(binder *b, lx_linear_w *l, int out, int in, const char *name)
{
	size_t n = (size_t)out * in, k;
	int i = lx_st_find(b->m->st, name);
	lx_tensor t;

	if (b->compute == LX_I8) {
		signed char *q = own(b, n);
		float *s = own(b, (size_t)out * sizeof *s);
		if (!q || !s)
			return;
		lx_quantize_rows(q, s, l->w, out, in);
		l->q = q;
		l->qs = s;
	} else {
		unsigned short *bf = own(b, n * sizeof *bf);
		if (!bf)
			return;
		for (k = 0; k < n; k++)
			bf[k] = lx_float_to_bf16(l->w[k]);
		l->bf = bf;
	}
	/* the float32 weights are not read again: their pages of the mapping can go */
	if (i >= 0 && lx_st_name(b->m->st, i, &t) && t.data == (const void *)l->w)
		release(l->w, n * sizeof(float));
	l->w = NULL;
	b->m->compute = (lx_dtype)b->compute;
}

static void linear(binder *b, lx_linear_w *l, int out, int in, const char *prefix)
{
	char name[256];

	snprintf(name, sizeof name, "%s.weight", prefix);
	if (b->in_heads || !bind_int8(b, l, out, in, name)) {
		l->w = tbind(b, out, in, "%s", name);
		if (!b->rc && l->w && !b->in_heads && (b->compute == LX_I8 || b->compute == LX_BF16))
			reduce(b, l, out, in, name);
	}
	l->b = tbind(b, out, -1, "%s.bias", prefix);
}

static void norm(binder *b, lx_norm_w *n, int h, const char *prefix)
{
	n->g = tbind(b, h, -1, "%s.weight", prefix);
	n->b = tbind(b, h, -1, "%s.bias", prefix);
}

/* An attention block: `qkv` holds query/key/value, `out` holds dense/LayerNorm. */
static void attention(binder *b, lx_attn_w *a, int h, const char *qkv, const char *out)
{
	char p[256];

	snprintf(p, sizeof p, "%s.query", qkv);
	linear(b, &a->q, h, h, p);
	snprintf(p, sizeof p, "%s.key", qkv);
	linear(b, &a->k, h, h, p);
	snprintf(p, sizeof p, "%s.value", qkv);
	linear(b, &a->v, h, h, p);
	snprintf(p, sizeof p, "%s.dense", out);
	linear(b, &a->o, h, h, p);
	snprintf(p, sizeof p, "%s.LayerNorm", out);
	norm(b, &a->ln, h, p);
}

static void ffn(binder *b, lx_ffn_w *f, int h, int inter, const char *in_prefix, const char *out_prefix)
{
	char p[256];

	snprintf(p, sizeof p, "%s.dense", in_prefix);
	linear(b, &f->inter, inter, h, p);
	snprintf(p, sizeof p, "%s.dense", out_prefix);
	linear(b, &f->out, h, inter, p);
	snprintf(p, sizeof p, "%s.LayerNorm", out_prefix);
	norm(b, &f->ln, h, p);
}

static void bert_layer(binder *b, lx_layer_w *l, const lx_config *c, const char *prefix)
{
	char q[256], o[256], i[256], out[256];

	snprintf(q, sizeof q, "%s.attention.self", prefix);
	snprintf(o, sizeof o, "%s.attention.output", prefix);
	snprintf(i, sizeof i, "%s.intermediate", prefix);
	snprintf(out, sizeof out, "%s.output", prefix);
	attention(b, &l->att, c->hidden_size, q, o);
	ffn(b, &l->ffn, c->hidden_size, c->intermediate_size, i, out);
}

static void cross_layer(binder *b, lx_xlayer_w *x, const lx_config *c, int k)
{
	char p[6][256];
	int h = c->hidden_size;

	snprintf(p[0], 256, "lxmert.encoder.x_layers.%d.visual_attention.att", k);
	snprintf(p[1], 256, "lxmert.encoder.x_layers.%d.visual_attention.output", k);
	attention(b, &x->cross, h, p[0], p[1]);
	snprintf(p[0], 256, "lxmert.encoder.x_layers.%d.lang_self_att.self", k);
	snprintf(p[1], 256, "lxmert.encoder.x_layers.%d.lang_self_att.output", k);
	attention(b, &x->lang_self, h, p[0], p[1]);
	snprintf(p[0], 256, "lxmert.encoder.x_layers.%d.visn_self_att.self", k);
	snprintf(p[1], 256, "lxmert.encoder.x_layers.%d.visn_self_att.output", k);
	attention(b, &x->visn_self, h, p[0], p[1]);
	snprintf(p[2], 256, "lxmert.encoder.x_layers.%d.lang_inter", k);
	snprintf(p[3], 256, "lxmert.encoder.x_layers.%d.lang_output", k);
	ffn(b, &x->lang_ffn, h, c->intermediate_size, p[2], p[3]);
	snprintf(p[4], 256, "lxmert.encoder.x_layers.%d.visn_inter", k);
	snprintf(p[5], 256, "lxmert.encoder.x_layers.%d.visn_output", k);
	ffn(b, &x->visn_ffn, h, c->intermediate_size, p[4], p[5]);
}

static int has_prefix(const lx_st *st, const char *prefix)
{
	int i, n = lx_st_count(st);
	size_t len = strlen(prefix);

	for (i = 0; i < n; i++)
		if (strncmp(lx_st_name(st, i, NULL), prefix, len) == 0)
			return 1;
	return 0;
}

static int has_head(binder *b, int head, const char *prefix)
{
	return b->visit || b->get ? (b->heads & head) != 0 : has_prefix(b->m->st, prefix);
}

static void bind_heads(binder *b, lx_weights *w, const lx_config *c)
{
	int h = c->hidden_size;

	b->in_heads = 1;
	if ((w->has_mlm = has_head(b, LX_HEAD_MLM, "cls.predictions."))) {
		linear(b, &w->mlm_dense, h, h, "cls.predictions.transform.dense");
		norm(b, &w->mlm_ln, h, "cls.predictions.transform.LayerNorm");
		w->mlm_bias = tbind(b, c->vocab_size, -1, "cls.predictions.bias");
		/* tied to the word embeddings: HF's safetensors leave it out */
		w->mlm_decoder = bind_opt(b, c->vocab_size, h, "cls.predictions.decoder.weight");
		if (!w->mlm_decoder)
			w->mlm_decoder = w->word;
		/* a decoder bias, where saved, is the same parameter as cls.predictions.bias */
		bind_opt(b, c->vocab_size, -1, "cls.predictions.decoder.bias");
	}
	if ((w->has_match = has_head(b, LX_HEAD_MATCH, "cls.seq_relationship.")))
		linear(b, &w->match, 2, h, "cls.seq_relationship");
	if ((w->has_qa = has_head(b, LX_HEAD_QA, "answer_head."))) {
		linear(b, &w->qa0, 2 * h, h, "answer_head.logit_fc.0");
		norm(b, &w->qa_ln, 2 * h, "answer_head.logit_fc.2");
		linear(b, &w->qa3, c->num_qa_labels, 2 * h, "answer_head.logit_fc.3");
	}
	if ((w->has_obj = has_head(b, LX_HEAD_OBJ, "obj_predict_head."))) {
		linear(b, &w->obj_dense, h, h, "obj_predict_head.transform.dense");
		norm(b, &w->obj_ln, h, "obj_predict_head.transform.LayerNorm");
		linear(b, &w->obj_obj, c->num_object_labels, h, "obj_predict_head.decoder_dict.obj");
		linear(b, &w->obj_attr, c->num_attr_labels, h, "obj_predict_head.decoder_dict.attr");
		linear(b, &w->obj_feat, c->visual_feat_dim, h, "obj_predict_head.decoder_dict.feat");
	}
	if ((w->has_nlvr2 = has_head(b, LX_HEAD_NLVR2, "nlvr2_head."))) {
		linear(b, &w->nlvr2_0, 2 * h, 2 * h, "nlvr2_head.logit_fc.0");
		norm(b, &w->nlvr2_ln, 2 * h, "nlvr2_head.logit_fc.2");
		linear(b, &w->nlvr2_3, 2, 2 * h, "nlvr2_head.logit_fc.3");
	}
}

static void bind_all(binder *b)
{
	lx_weights *w = &b->m->w;
	const lx_config *c = &b->m->cfg;
	int h = c->hidden_size, k;
	char p[256];

	w->word = tbind(b, c->vocab_size, h, "lxmert.embeddings.word_embeddings.weight");
	w->pos = tbind(b, c->max_position_embeddings, h, "lxmert.embeddings.position_embeddings.weight");
	w->type = tbind(b, c->type_vocab_size, h, "lxmert.embeddings.token_type_embeddings.weight");
	norm(b, &w->ln, h, "lxmert.embeddings.LayerNorm");
	linear(b, &w->visn_fc, h, c->visual_feat_dim, "lxmert.encoder.visn_fc.visn_fc");
	norm(b, &w->visn_ln, h, "lxmert.encoder.visn_fc.visn_layer_norm");
	linear(b, &w->box_fc, h, c->visual_pos_dim, "lxmert.encoder.visn_fc.box_fc");
	norm(b, &w->box_ln, h, "lxmert.encoder.visn_fc.box_layer_norm");
	for (k = 0; k < c->l_layers; k++) {
		snprintf(p, sizeof p, "lxmert.encoder.layer.%d", k);
		bert_layer(b, &w->l[k], c, p);
	}
	for (k = 0; k < c->r_layers; k++) {
		snprintf(p, sizeof p, "lxmert.encoder.r_layers.%d", k);
		bert_layer(b, &w->r[k], c, p);
	}
	for (k = 0; k < c->x_layers; k++)
		cross_layer(b, &w->x[k], c, k);
	linear(b, &w->pooler, h, h, "lxmert.pooler.dense");
	bind_heads(b, w, c);
}

lx_status lx_model_open(lx_model **out, const char *dir, lx_err *e)
{
	return lx_model_open_as(out, dir, -1, e);
}

lx_status lx_model_open_as(lx_model **out, const char *dir, int compute, lx_err *e)
{
	lx_model *m;
	binder b;
	char path[4096], *text = NULL;
	size_t len = 0;
	lx_status rc;
	int i, n;

	*out = NULL;
	if (!(m = calloc(1, sizeof *m)) || !(m->dir = strdup(dir))) {
		free(m);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	snprintf(path, sizeof path, "%s/config.json", dir);
	if ((rc = read_small_file(path, &text, &len, e)))
		goto fail;
	rc = lx_config_parse(&m->cfg, text, len, path, e);
	free(text);
	if (rc)
		goto fail;
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	if ((rc = lx_st_open(&m->st, path, e)))
		goto fail;
	m->w.l = calloc((size_t)m->cfg.l_layers + 1, sizeof *m->w.l);
	m->w.r = calloc((size_t)m->cfg.r_layers + 1, sizeof *m->w.r);
	m->w.x = calloc((size_t)m->cfg.x_layers + 1, sizeof *m->w.x);
	memset(&b, 0, sizeof b);
	b.used = calloc((size_t)lx_st_count(m->st) + 1, 1);
	if (!m->w.l || !m->w.r || !m->w.x || !b.used) {
		free(b.used);
		rc = lx_errf(e, LX_EIO, "out of memory");
		goto fail;
	}
	b.m = m;
	b.e = e;
	b.compute = compute;
	snprintf(b.path, sizeof b.path, "%s", path);
	bind_all(&b);
	free(m->half);
	m->half = NULL;
	rc = b.rc;
	/* anything left over is a tensor of some other model: refuse it rather than ignore it */
	for (i = 0, n = lx_st_count(m->st); !rc && i < n; i++) {
		const char *name = lx_st_name(m->st, i, NULL);
		size_t l = strlen(name);
		if (!b.used[i] && !(l >= 13 && strcmp(name + l - 13, ".position_ids") == 0))
			rc = lx_errf(e, LX_EMODEL, "%s: unexpected tensor %s", path, name);
	}
	free(b.used);
	if (rc)
		goto fail;
	*out = m;
	return LX_OK;
fail:
	lx_model_free(m);
	return rc;
}

lx_status lx_model_tensors(const lx_config *c, int heads, void (*visit)(void *ctx, const char *name, int d0, int d1),
                           void *ctx, lx_err *e)
{
	lx_model m;
	binder b;

	memset(&m, 0, sizeof m);
	memset(&b, 0, sizeof b);
	m.cfg = *c;
	m.w.l = calloc((size_t)c->l_layers + 1, sizeof *m.w.l);
	m.w.r = calloc((size_t)c->r_layers + 1, sizeof *m.w.r);
	m.w.x = calloc((size_t)c->x_layers + 1, sizeof *m.w.x);
	if (m.w.l && m.w.r && m.w.x) {
		b.m = &m;
		b.visit = visit;
		b.ctx = ctx;
		b.heads = heads;
		bind_all(&b);
	} else
		b.rc = lx_errf(e, LX_EIO, "out of memory");
	free(m.w.l);
	free(m.w.r);
	free(m.w.x);
	return b.rc;
}

lx_status lx_model_from_tensors(lx_model **out, const lx_config *c, int heads, const char *dir,
                                const float *(*get)(void *ctx, const char *name, int d0, int d1), void *ctx,
                                lx_err *e)
{
	lx_model *m;
	binder b;

	*out = NULL;
	if (!(m = calloc(1, sizeof *m)) || !(m->dir = strdup(dir))) {
		free(m);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	m->cfg = *c;
	m->w.l = calloc((size_t)c->l_layers + 1, sizeof *m->w.l);
	m->w.r = calloc((size_t)c->r_layers + 1, sizeof *m->w.r);
	m->w.x = calloc((size_t)c->x_layers + 1, sizeof *m->w.x);
	if (!m->w.l || !m->w.r || !m->w.x) {
		lx_model_free(m);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	memset(&b, 0, sizeof b);
	b.m = m;
	b.e = e;
	b.get = get;
	b.ctx = ctx;
	b.heads = heads;
	snprintf(b.path, sizeof b.path, "%s", dir);
	bind_all(&b);
	if (b.rc) {
		lx_model_free(m);
		return b.rc;
	}
	*out = m;
	return LX_OK;
}

void lx_model_free(lx_model *m)
{
	int i;

	if (!m)
		return;
	for (i = 0; i < m->nowned; i++)
		free(m->owned[i]);
	free(m->owned);
	free(m->w.l);
	free(m->w.r);
	free(m->w.x);
	lx_st_free(m->st);
	free(m->dir);
	free(m);
}

const lx_config *lx_model_config(const lx_model *m) { return &m->cfg; }
lx_dtype lx_model_compute(const lx_model *m) { return m->compute; }
const lx_weights *lx_model_weights(const lx_model *m) { return &m->w; }
const char *lx_model_dir(const lx_model *m) { return m->dir; }

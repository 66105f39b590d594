/*
 * train.c - the trainer (lx_train.h): every parameter as a mutable float32 tensor in one array, with its
 * gradient and AdamW moments in arrays of the same layout; the model the encoder runs is bound to that
 * array, so it follows every step. Checkpoints are safetensors files, written atomically (lx_write_atomic).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_ckpt.h"
#include "train/train_impl.h"

struct lx_trainer {
	lx_config cfg;
	int heads;
	lx_train_opts o;
	int nt, cap;
	char **names;
	int *d0, *d1;
	size_t *off;              /* each tensor's first float in the arrays below */
	unsigned char *trainable, *touched;
	size_t total;
	float *param, *grad, *m, *v;
	long step;
	lx_model *model;
	lx_encoder *enc;
	lx_dropout drop;          /* the encoder's (enc->drop): p from the options, a seed a step */
	lx_tape *tape;
	lx_status rc;
};

void lx_train_opts_init(lx_train_opts *o)
{
	memset(o, 0, sizeof *o);
	o->dropout = 0.1f;
	o->seed = 1;
	o->beta1 = 0.9f;
	o->beta2 = 0.999f;
	o->eps = 1e-6f;
	o->weight_decay = 0.01f;
}

static size_t numel(const lx_trainer *t, int i)
{
	return (size_t)t->d0[i] * (t->d1[i] < 0 ? 1 : (size_t)t->d1[i]);
}

/* lx_model_tensors' visitor: one more tensor. */
static void add_tensor(void *ctx, const char *name, int d0, int d1)
{
	lx_trainer *t = ctx;

	if (t->rc)
		return;
	if (t->nt == t->cap) {
		int nc = t->cap ? 2 * t->cap : 256;
		char **nn = realloc(t->names, (size_t)nc * sizeof *nn);
		int *a = nn ? realloc(t->d0, (size_t)nc * sizeof *a) : NULL, *b;
		size_t *o;
		if (nn)
			t->names = nn;
		if (a)
			t->d0 = a;
		b = a ? realloc(t->d1, (size_t)nc * sizeof *b) : NULL;
		if (b)
			t->d1 = b;
		o = b ? realloc(t->off, (size_t)nc * sizeof *o) : NULL;
		if (!o) {
			t->rc = LX_EIO;
			return;
		}
		t->off = o;
		t->cap = nc;
	}
	if (!(t->names[t->nt] = strdup(name))) {
		t->rc = LX_EIO;
		return;
	}
	t->d0[t->nt] = d0;
	t->d1[t->nt] = d1;
	t->off[t->nt] = t->total;
	t->total += (size_t)d0 * (d1 < 0 ? 1 : (size_t)d1);
	t->nt++;
}

int lx_trainer_find(const lx_trainer *t, const char *name)
{
	int i;

	for (i = 0; i < t->nt; i++)
		if (strcmp(t->names[i], name) == 0)
			return i;
	return -1;
}

/* lx_model_from_tensors' source: the trainer's array. */
static const float *get_tensor(void *ctx, const char *name, int d0, int d1)
{
	lx_trainer *t = ctx;
	int i = lx_trainer_find(t, name);

	return i < 0 || t->d0[i] != d0 || t->d1[i] != d1 ? NULL : t->param + t->off[i];
}

/* Copies n floats of a float tensor of any float dtype, from its element `from` on, into dst. */
static void copy_floats(float *dst, const lx_tensor *src, int64_t from, int64_t n)
{
	int64_t k;

	for (k = 0; k < n; k++) {
		const unsigned char *p = (const unsigned char *)src->data + (from + k) * lx_dtype_size(src->dtype);
		uint16_t h;
		if (src->dtype == LX_F32)
			memcpy(&dst[k], p, 4);
		else {
			memcpy(&h, p, 2);
			dst[k] = src->dtype == LX_F16 ? lx_half_to_float(h) : lx_bf16_to_float(h);
		}
	}
}

/* splitmix64: the new head's initial weights. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
	return ((mix(s) >> 11) + 0.5) / 9007199254740992.0;
}

/* HF's initialisation of a fresh tensor: Linear weights N(0, 0.02), biases 0, LayerNorm gains 1. */
static void init_fresh(lx_trainer *t, int i, uint64_t *rng)
{
	float *p = t->param + t->off[i];
	size_t k, n = numel(t, i), len = strlen(t->names[i]);
	int weight = len > 7 && strcmp(t->names[i] + len - 7, ".weight") == 0;

	for (k = 0; k < n; k++) {
		if (!weight)
			p[k] = 0;
		else if (t->d1[i] < 0)
			p[k] = 1;
		else
			p[k] = (float)(0.02 * sqrt(-2 * log(uniform01(rng))) * cos(6.283185307179586 * uniform01(rng)));
	}
}

/* Fills the parameters from the model directory's safetensors file; a fresh answer head when asked. */
static lx_status load_params(lx_trainer *t, const char *dir, lx_err *e)
{
	char path[4096];
	lx_st *st;
	lx_tensor x;
	uint64_t rng = t->o.seed ^ 0x2545f4914f6cdd1dULL;
	lx_status rc;
	int i, j;

	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	if ((rc = lx_st_open(&st, path, e)))
		return rc;
	for (i = 0; i < t->nt; i++) {
		if (t->o.new_head > 0 && strncmp(t->names[i], "answer_head.", 12) == 0) {
			init_fresh(t, i, &rng);
			continue;
		}
		if ((j = lx_st_find(st, t->names[i])) < 0) {
			lx_st_free(st);
			return lx_errf(e, LX_EMODEL, "%s: missing tensor %s", path, t->names[i]);
		}
		lx_st_name(st, j, &x);
		copy_floats(t->param + t->off[i], &x, 0, x.numel);
	}
	lx_st_free(st);
	return LX_OK;
}

lx_status lx_trainer_open(lx_trainer **out, const char *dir, const lx_train_opts *o, lx_err *e)
{
	lx_trainer *t;
	lx_model *src;
	lx_status rc;
	int i;

	*out = NULL;
	if ((rc = lx_model_open(&src, dir, e)))
		return rc;
	if (!(t = calloc(1, sizeof *t))) {
		lx_model_free(src);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	t->o = *o;
	t->cfg = *lx_model_config(src);
	t->heads = lx_heads_available(src);
	lx_model_free(src);
	if (o->new_head > 0) {
		t->cfg.num_qa_labels = o->new_head;
		t->heads |= LX_HEAD_QA;
	}
	if ((rc = lx_model_tensors(&t->cfg, t->heads, add_tensor, t, e)) || (rc = t->rc)) {
		lx_trainer_free(t);
		return rc == LX_EIO ? lx_errf(e, LX_EIO, "out of memory") : rc;
	}
	t->param = calloc(t->total + 1, sizeof(float));
	t->grad = calloc(t->total + 1, sizeof(float));
	t->m = calloc(t->total + 1, sizeof(float));
	t->v = calloc(t->total + 1, sizeof(float));
	t->trainable = calloc((size_t)t->nt + 1, 1);
	t->touched = calloc((size_t)t->nt + 1, 1);
	if (!t->param || !t->grad || !t->m || !t->v || !t->trainable || !t->touched) {
		lx_trainer_free(t);
		return lx_errf(e, LX_EIO, "out of memory for %zu parameters", t->total);
	}
	for (i = 0; i < t->nt; i++)
		t->trainable[i] = !(o->freeze_encoder && strncmp(t->names[i], "lxmert.", 7) == 0);
	if ((rc = load_params(t, dir, e)) ||
	    (rc = lx_model_from_tensors(&t->model, &t->cfg, t->heads, dir, get_tensor, t, e))) {
		lx_trainer_free(t);
		return rc;
	}
	if (!(t->enc = lx_encoder_new(t->model, 0)) || !(t->tape = lx_tape_new())) {
		lx_trainer_free(t);
		return lx_errf(e, LX_EIO, "out of memory");
	}
	t->drop.p = o->dropout;
	t->enc->drop = &t->drop;
	*out = t;
	return LX_OK;
}

void lx_trainer_free(lx_trainer *t)
{
	int i;

	if (!t)
		return;
	lx_tape_free(t->tape);
	lx_encoder_free(t->enc);
	lx_model_free(t->model);
	for (i = 0; i < t->nt; i++)
		free(t->names[i]);
	free(t->names);
	free(t->d0);
	free(t->d1);
	free(t->off);
	free(t->trainable);
	free(t->touched);
	free(t->param);
	free(t->grad);
	free(t->m);
	free(t->v);
	free(t);
}

const lx_model *lx_trainer_model(const lx_trainer *t) { return t->model; }
int lx_trainer_heads(const lx_trainer *t) { return t->heads; }
long lx_trainer_steps(const lx_trainer *t) { return t->step; }
int lx_trainer_count(const lx_trainer *t) { return t->nt; }

const char *lx_trainer_tensor(const lx_trainer *t, int i, int *d0, int *d1, float **data, const float **grad)
{
	if (d0)
		*d0 = t->d0[i];
	if (d1)
		*d1 = t->d1[i];
	if (data)
		*data = t->param + t->off[i];
	if (grad)
		*grad = t->grad + t->off[i];
	return t->names[i];
}

lx_status lx_trainer_grad(lx_trainer *t, const lx_example *ex, const lx_train_labels *lab, int n, lx_losses *loss,
                          lx_err *e)
{
	lx_gradmap g = {t->param, t->grad, t->nt, t->off, t->touched};
	uint64_t s = t->o.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)t->step;

	memset(t->grad, 0, t->total * sizeof(float));
	memset(t->touched, 0, (size_t)t->nt);
	t->drop.seed = mix(&s);
	return lx_train_batch(t->tape, t->enc, &g, t->heads, t->o.freeze_encoder, ex, lab, n, loss, e);
}

void lx_trainer_step(lx_trainer *t, float lr)
{
	float b1 = t->o.beta1, b2 = t->o.beta2, eps = t->o.eps, decay, step_size, bc2s;
	int i;
	size_t k, end;

	t->step++;
	decay = 1.0f - lr * t->o.weight_decay;
	step_size = (float)(lr / (1.0 - pow(b1, (double)t->step)));
	bc2s = (float)sqrt(1.0 - pow(b2, (double)t->step));
	for (i = 0; i < t->nt; i++) {
		/* like torch, a tensor the loss did not reach (its grad None) is not updated, not even decayed */
		if (!t->trainable[i] || !t->touched[i])
			continue;
		for (k = t->off[i], end = k + numel(t, i); k < end; k++) {
			float gk = t->grad[k];
			t->param[k] *= decay;
			t->m[k] = t->m[k] * b1 + gk * (1.0f - b1);
			t->v[k] = t->v[k] * b2 + gk * gk * (1.0f - b2);
			t->param[k] -= step_size * (t->m[k] / (sqrtf(t->v[k]) / bc2s + eps));
		}
	}
}

double lx_trainer_clip(lx_trainer *t, double max_norm)
{
	double sum = 0, norm, coef;
	int i;
	size_t k, end;

	for (i = 0; i < t->nt; i++)
		if (t->trainable[i] && t->touched[i])
			for (k = t->off[i], end = k + numel(t, i); k < end; k++)
				sum += (double)t->grad[k] * t->grad[k];
	norm = sqrt(sum);
	if (max_norm <= 0 || !(norm > max_norm))
		return norm;
	coef = max_norm / (norm + 1e-6);
	for (i = 0; i < t->nt; i++)
		if (t->trainable[i] && t->touched[i])
			for (k = t->off[i], end = k + numel(t, i); k < end; k++)
				t->grad[k] = (float)(t->grad[k] * coef);
	return norm;
}

/* ---- the answer head from another model ---- */

/* Tensor `name` of st as a float tensor of n elements whose first dimension is d0; NULL with e set if not. */
static const char *head_tensor(lx_st *st, const char *path, const char *name, int64_t d0, int64_t n, lx_tensor *x,
                               lx_err *e)
{
	int j = lx_st_find(st, name);

	if (j < 0) {
		lx_errf(e, LX_EMODEL, "%s: missing tensor %s (--init-answers needs an answer head)", path, name);
		return NULL;
	}
	lx_st_name(st, j, x);
	if ((x->dtype != LX_F32 && x->dtype != LX_F16 && x->dtype != LX_BF16) || x->shape[0] != d0 || x->numel != n) {
		lx_errf(e, LX_EMODEL, "%s: tensor %s is not a float tensor of %lld values in %lld rows, as this model's", path,
		        name, (long long)n, (long long)d0);
		return NULL;
	}
	return name;
}

lx_status lx_trainer_init_answers(lx_trainer *t, const char *dir, const lx_names *answers, int *matched, lx_err *e)
{
	char path[4096];
	lx_st *st;
	lx_names *theirs = NULL;
	lx_tensor w, b, x;
	lx_status rc = LX_OK;
	int i, a, k, A = t->cfg.num_qa_labels, iw = lx_trainer_find(t, "answer_head.logit_fc.3.weight"),
	    ib = lx_trainer_find(t, "answer_head.logit_fc.3.bias");
	int64_t in = iw < 0 ? 0 : t->d1[iw], B;

	*matched = 0;
	if (iw < 0 || ib < 0)
		return lx_errf(e, LX_EUSAGE, "--init-answers: the model has no answer head (--new-head N makes one)");
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	if ((rc = lx_st_open(&st, path, e)))
		return rc;
	/* the layers before the last: whole, as the authors' load_lxmert_qa copies them */
	for (i = 0; i < t->nt; i++) {
		if (strncmp(t->names[i], "answer_head.", 12) || i == iw || i == ib)
			continue;
		if (!head_tensor(st, path, t->names[i], t->d0[i], (int64_t)numel(t, i), &x, e)) {
			lx_st_free(st);
			return e->status;
		}
		copy_floats(t->param + t->off[i], &x, 0, x.numel);
	}
	k = lx_st_find(st, "answer_head.logit_fc.3.weight");
	B = k < 0 ? 0 : (lx_st_name(st, k, &w), w.shape[0]);
	if (!head_tensor(st, path, "answer_head.logit_fc.3.weight", B, B * in, &w, e) ||
	    !head_tensor(st, path, "answer_head.logit_fc.3.bias", B, B, &b, e)) {
		lx_st_free(st);
		return e->status;
	}
	if ((rc = lx_names_load_model(&theirs, dir, LX_LIST_ANSWERS, NULL, (int)B, e)) || !theirs) {
		lx_st_free(st);
		return rc ? rc : lx_errf(e, LX_EMODEL, "%s: no answers.json or answers.txt to match the answers by name", dir);
	}
	/* the last layer's rows by answer name; an answer the other model does not have gets zeros, as theirs */
	for (a = 0; a < A; a++) {
		float *row = t->param + t->off[iw] + (size_t)a * (size_t)in, *bias = t->param + t->off[ib] + a;
		if ((k = lx_names_find(theirs, lx_names_get(answers, a))) >= 0) {
			copy_floats(row, &w, (int64_t)k * in, in);
			copy_floats(bias, &b, k, 1);
			++*matched;
		} else {
			memset(row, 0, (size_t)in * sizeof *row);
			*bias = 0;
		}
	}
	lx_names_free(theirs);
	lx_st_free(st);
	return LX_OK;
}

/* ---- saving ---- */

static void entry(lx_st_entry *en, const char *name, const float *data, int d0, int d1, lx_dtype dtype)
{
	memset(en, 0, sizeof *en);
	en->name = name;
	en->src.dtype = LX_F32;
	en->src.ndim = d1 < 0 ? 1 : 2;
	en->src.shape[0] = d0;
	en->src.shape[1] = d1 < 0 ? 0 : d1;
	en->src.numel = (int64_t)d0 * (d1 < 0 ? 1 : d1);
	en->src.data = data;
	en->dtype = dtype;
}

lx_status lx_trainer_save_model(const lx_trainer *t, const char *dir, int f16, lx_err *e)
{
	lx_st_entry *ents = calloc((size_t)t->nt + 1, sizeof *ents);
	lx_ckpt_config cc;
	char path[4096];
	lx_status rc;
	int i;

	if (!ents)
		return lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; i < t->nt; i++)
		entry(&ents[i], t->names[i], t->param + t->off[i], t->d0[i], t->d1[i], f16 ? LX_F16 : LX_F32);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	rc = lx_st_write(path, ents, t->nt, e);
	free(ents);
	if (rc)
		return rc;
	memset(&cc, 0, sizeof cc);
	cc.c = t->cfg;
	cc.has_qa = (t->heads & LX_HEAD_QA) != 0;
	cc.has_match = (t->heads & LX_HEAD_MATCH) != 0;
	cc.has_mlm = (t->heads & LX_HEAD_MLM) != 0;
	cc.has_obj = (t->heads & LX_HEAD_OBJ) != 0;
	snprintf(path, sizeof path, "%s/config.json", dir);
	return lx_ckpt_write_config(&cc, path, e);
}

lx_status lx_trainer_save_checkpoint(const lx_trainer *t, const char *path, const int64_t *extra, int nextra,
                                     const char *settings, lx_err *e)
{
	lx_st_entry *ents = calloc(3 * (size_t)t->nt + 2, sizeof *ents);
	char **nm = calloc(2 * (size_t)t->nt + 1, sizeof *nm);
	int64_t state[17];
	lx_status rc = LX_OK;
	int i, n = 0;

	if (nextra > 16)
		nextra = 16;
	if (!ents || !nm)
		rc = lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; !rc && i < t->nt; i++) {
		size_t len = strlen(t->names[i]) + 8;
		if (!(nm[2 * i] = malloc(len)) || !(nm[2 * i + 1] = malloc(len))) {
			rc = lx_errf(e, LX_EIO, "out of memory");
			break;
		}
		snprintf(nm[2 * i], len, "adam_m.%s", t->names[i]);
		snprintf(nm[2 * i + 1], len, "adam_v.%s", t->names[i]);
		entry(&ents[n++], t->names[i], t->param + t->off[i], t->d0[i], t->d1[i], LX_F32);
		entry(&ents[n++], nm[2 * i], t->m + t->off[i], t->d0[i], t->d1[i], LX_F32);
		entry(&ents[n++], nm[2 * i + 1], t->v + t->off[i], t->d0[i], t->d1[i], LX_F32);
	}
	if (!rc) {
		state[0] = t->step;
		for (i = 0; i < nextra; i++)
			state[1 + i] = extra[i];
		memset(&ents[n], 0, sizeof ents[n]);
		ents[n].name = "trainer.state";
		ents[n].src.dtype = ents[n].dtype = LX_I64;
		ents[n].src.ndim = 1;
		ents[n].src.shape[0] = ents[n].src.numel = 1 + nextra;
		ents[n].src.data = state;
		n++;
		if (settings) {
			memset(&ents[n], 0, sizeof ents[n]);
			ents[n].name = "trainer.settings";
			ents[n].src.dtype = ents[n].dtype = LX_U8;
			ents[n].src.ndim = 1;
			ents[n].src.shape[0] = ents[n].src.numel = (int64_t)strlen(settings);
			ents[n].src.data = settings;
			n++;
		}
		rc = lx_st_write(path, ents, n, e);
	}
	for (i = 0; nm && i < 2 * t->nt; i++)
		free(nm[i]);
	free(nm);
	free(ents);
	return rc;
}

/* Copies checkpoint tensor `name` of the trainer's tensor i's shape into dst. */
static lx_status load_one(lx_st *st, const char *path, const char *name, const lx_trainer *t, int i, float *dst,
                          lx_err *e)
{
	lx_tensor x;
	int j = lx_st_find(st, name);

	if (j < 0)
		return lx_errf(e, LX_EMODEL, "%s: missing tensor %s", path, name);
	lx_st_name(st, j, &x);
	if (x.dtype != LX_F32 || (size_t)x.numel != numel(t, i) || x.shape[0] != t->d0[i])
		return lx_errf(e, LX_EMODEL, "%s: tensor %s does not have the model's shape and dtype F32", path, name);
	memcpy(dst, x.data, numel(t, i) * sizeof(float));
	return LX_OK;
}

lx_status lx_trainer_load_checkpoint(lx_trainer *t, const char *path, int64_t *extra, int nextra, char *settings,
                                     size_t n, lx_err *e)
{
	lx_st *st;
	lx_tensor x;
	char name[600];
	lx_status rc = LX_OK;
	int i, j;

	if ((rc = lx_st_open(&st, path, e)))
		return rc;
	for (i = 0; !rc && i < t->nt; i++) {
		rc = load_one(st, path, t->names[i], t, i, t->param + t->off[i], e);
		snprintf(name, sizeof name, "adam_m.%s", t->names[i]);
		if (!rc)
			rc = load_one(st, path, name, t, i, t->m + t->off[i], e);
		snprintf(name, sizeof name, "adam_v.%s", t->names[i]);
		if (!rc)
			rc = load_one(st, path, name, t, i, t->v + t->off[i], e);
	}
	if (!rc) {
		if ((j = lx_st_find(st, "trainer.state")) < 0)
			rc = lx_errf(e, LX_EMODEL, "%s: missing tensor trainer.state", path);
		else {
			lx_st_name(st, j, &x);
			if (x.dtype != LX_I64 || x.ndim != 1 || x.numel < 1 + nextra)
				rc = lx_errf(e, LX_EMODEL, "%s: tensor trainer.state is not int64 [%d]", path, 1 + nextra);
			else {
				int64_t v;
				memcpy(&v, x.data, 8);
				t->step = (long)v;
				for (i = 0; i < nextra; i++)
					memcpy(&extra[i], (const char *)x.data + 8 * (1 + i), 8);
			}
		}
	}
	if (!rc && settings && n > 0) {
		*settings = 0;
		if ((j = lx_st_find(st, "trainer.settings")) >= 0) {
			lx_st_name(st, j, &x);
			if (x.dtype != LX_U8 || x.ndim != 1 || (size_t)x.numel >= n)
				rc = lx_errf(e, LX_EMODEL, "%s: tensor trainer.settings is not uint8 text of fewer than %zu bytes", path,
				             n);
			else {
				memcpy(settings, x.data, (size_t)x.numel);
				settings[x.numel] = 0;
			}
		}
	}
	lx_st_free(st);
	return rc;
}

uint64_t lx_trainer_digest(const lx_trainer *t, const char *prefix)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t k, n, len = strlen(prefix);
	const unsigned char *p;
	int i;

	for (i = 0; i < t->nt; i++) {
		if (strncmp(t->names[i], prefix, len))
			continue;
		for (p = (const unsigned char *)t->names[i]; *p; p++)
			h = (h ^ *p) * 0x100000001b3ULL;
		h = (h ^ (uint64_t)t->d0[i] ^ ((uint64_t)(uint32_t)t->d1[i] << 32)) * 0x100000001b3ULL;
		for (k = 0, n = numel(t, i), p = (const unsigned char *)(t->param + t->off[i]); k < n; k++) {
			uint32_t w;
			memcpy(&w, p + 4 * k, 4);
			h = (h ^ w) * 0x100000001b3ULL;
		}
	}
	return h;
}

double lx_train_memory(const lx_config *c, int heads, int T, int N)
{
	double H = c->hidden_size, t = T, n = N, wide = c->visual_feat_dim, floats = 0;

	if (c->num_object_labels > wide)
		wide = c->num_object_labels;
	if (c->num_attr_labels > wide)
		wide = c->num_attr_labels;
	/* the heads' rows: 6 of H (2H for the answer head), a norm, and the scores with their gradient */
	if (heads & LX_HEAD_QA)
		floats += 10 * H + 1 + 2 * c->num_qa_labels;
	if (heads & LX_HEAD_MATCH)
		floats += H + 4;
	if (heads & LX_HEAD_MLM)
		floats += t * (6 * H + 1 + c->vocab_size + 2);
	if (heads & LX_HEAD_OBJ)
		floats += n * (6 * H + 1 + 2 * wide);
	return lx_example_memory(c, 0, LX_F32, T, N, NULL) + lx_tape_memory(c, T, N, 0) + 4 * floats;
}

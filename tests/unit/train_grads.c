/*
 * Gradient checks of the training forward and backward passes against torch autograd
 * (tests/fixtures/micro/golden_grads.safetensors, made with HF transformers 4.21 and torch, dropout off):
 * HF's pretraining loss on golden case 6 and the gradient of every parameter; the authors' VQA loss on
 * case 0 and its gradients; the parameters after one AdamW step. Tolerances as the fixtures' README asks:
 * gradients within 1e-4 of each tensor's largest value, losses within 1e-5 relative, parameters after the
 * step within 1e-6.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_train.h"
#include "check.h"

#define MICRO "tests/fixtures/micro"

/* A golden tensor as a new float or int32 array (NULL if absent). */
static void *golden(lx_st *st, const char *fmt, const char *arg, int ints, int64_t *numel)
{
	char name[512];
	lx_tensor t;
	void *p;
	lx_err e;
	int i;

	snprintf(name, sizeof name, fmt, arg);
	if ((i = lx_st_find(st, name)) < 0)
		return NULL;
	lx_st_name(st, i, &t);
	if (numel)
		*numel = t.numel;
	p = malloc((size_t)t.numel * 4 + 4);
	if (ints ? lx_tensor_to_i32(&t, p, name, &e) : lx_tensor_to_f32(&t, p, name, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	return p;
}

/*
 * An attention key bias adds the same amount to every score of a query row, which softmax ignores: its
 * gradient is zero, and both sides hold rounding noise (about 1e-8) instead. Those are checked for being
 * below 1e-6, and after the AdamW step within 1e-4 (with eps 1e-6 the step turns noise g into about
 * lr g / (|g| + eps)), not relative to their largest value.
 */
static int key_bias(const char *name)
{
	size_t n = strlen(name);

	return n > 9 && strcmp(name + n - 9, ".key.bias") == 0;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

/* Every tensor's gradient against prefix.<name>; returns the worst error relative to the tensor's largest. */
static double check_grads(const lx_trainer *t, lx_st *gg, const char *prefix)
{
	double worst = 0;
	int i, k, d0, d1;

	for (i = 0; i < lx_trainer_count(t); i++) {
		const float *g;
		const char *name = lx_trainer_tensor(t, i, &d0, &d1, NULL, &g);
		char full[512];
		int64_t n;
		float *want;
		double mx = 0, err = 0;
		snprintf(full, sizeof full, "%s.%s", prefix, name);
		want = golden(gg, "%s", full, 0, &n);
		CHECK(want != NULL);
		if (!want)
			continue;
		CHECK(n == (int64_t)d0 * (d1 < 0 ? 1 : d1));
		for (k = 0; k < n; k++) {
			mx = fmax(mx, fabs(want[k]));
			err = fmax(err, fabs(g[k] - want[k]));
		}
		/* a tensor the loss does not reach has an all-zero golden gradient: ours must be zero too */
		if (key_bias(name))
			CHECK(err < 1e-6);
		else if (mx == 0)
			CHECK(err == 0);
		else if (err / mx > 1e-4) {
			fprintf(stderr, "%s: max error %g, largest value %g\n", full, err, mx);
			check_failures++;
		}
		if (!key_bias(name) && mx > 0 && err / mx > worst)
			worst = err / mx;
		free(want);
	}
	return worst;
}

static lx_trainer *open_micro_p(float dropout)
{
	lx_train_opts o;
	lx_trainer *t;
	lx_err e;

	lx_train_opts_init(&o);
	o.dropout = dropout;
	if (lx_trainer_open(&t, MICRO, &o, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	return t;
}

static lx_trainer *open_micro(void) { return open_micro_p(0); }

static void example(lx_st *g, const char *c, lx_example *x, int T, int N)
{
	memset(x, 0, sizeof *x);
	x->T = T;
	x->N = N;
	x->input_ids = golden(g, "%s.input_ids", c, 1, NULL);
	x->visual_feats = golden(g, "%s.visual_feats", c, 0, NULL);
	x->visual_pos = golden(g, "%s.visual_pos", c, 0, NULL);
}

static void free_example(lx_example *x)
{
	free((void *)x->input_ids);
	free((void *)x->visual_feats);
	free((void *)x->visual_pos);
}

static void test_pretrain(lx_st *g, lx_st *gg)
{
	lx_trainer *t = open_micro();
	lx_example x;
	lx_train_labels l;
	lx_losses loss;
	lx_err e;
	int32_t *ans = golden(g, "%s.ans", "case6", 1, NULL), *ml = golden(g, "%s.matched_label", "case6", 1, NULL);
	float *want = golden(gg, "%s", "pretrain.loss", 0, NULL);
	double worst;

	example(g, "case6", &x, 9, 8);
	memset(&l, 0, sizeof l);
	l.l.T = 9;
	l.l.N = 8;
	l.l.mlm_labels = golden(g, "%s.labels", "case6", 1, NULL);
	l.l.has_matched = l.l.has_ans = 1;
	l.l.matched_label = ml[0];
	l.l.ans = ans[0];
	l.l.obj_labels = golden(g, "%s.obj_labels", "case6", 1, NULL);
	l.l.obj_mask = golden(g, "%s.obj_mask", "case6", 0, NULL);
	l.l.attr_labels = golden(g, "%s.attr_labels", "case6", 1, NULL);
	l.l.attr_mask = golden(g, "%s.attr_mask", "case6", 0, NULL);
	l.l.feat_mask = golden(g, "%s.feat_mask", "case6", 0, NULL);
	l.l.feat_target = x.visual_feats;
	if (lx_trainer_grad(t, &x, &l, 1, &loss, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	CHECK(rel(loss.total, want[0]) < 1e-5);
	worst = check_grads(t, gg, "pretrain.grad");
	printf("pretraining loss %.7g (torch %.7g); gradients: worst error %.2g of the tensor's largest value\n",
	       loss.total, want[0], worst);
	free((void *)l.l.mlm_labels);
	free((void *)l.l.obj_labels);
	free((void *)l.l.obj_mask);
	free((void *)l.l.attr_labels);
	free((void *)l.l.attr_mask);
	free((void *)l.l.feat_mask);
	free(ans);
	free(ml);
	free(want);
	free_example(&x);
	lx_trainer_free(t);
}

/* A fresh micro trainer's gradients of case 0 with the VQA soft scores vqa.target as labels. */
typedef struct {
	lx_trainer *t;
	lx_example x;
	lx_train_labels l;
	lx_losses loss;
} vqa_run;

static void vqa_grads(vqa_run *r, lx_st *g, lx_st *gg)
{
	lx_err e;

	r->t = open_micro();
	example(g, "case0", &r->x, 10, 10);
	memset(&r->l, 0, sizeof r->l);
	r->l.l.T = 10;
	r->l.l.N = 10;
	r->l.qa_target = golden(gg, "%s", "vqa.target", 0, NULL);
	if (lx_trainer_grad(r->t, &r->x, &r->l, 1, &r->loss, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
}

static void vqa_free(vqa_run *r)
{
	free((void *)r->l.qa_target);
	free_example(&r->x);
	lx_trainer_free(r->t);
}

/* Every parameter against the golden tensor fmt (with %s the parameter's name) of st: the largest
 * difference, the attention keys' biases (key_bias) checked apart within 1e-4. */
static double params_error(lx_trainer *t, lx_st *st, const char *fmt)
{
	double werr = 0;
	int i, k, d0, d1;

	for (i = 0; i < lx_trainer_count(t); i++) {
		float *p, *a;
		const char *name = lx_trainer_tensor(t, i, &d0, &d1, &p, NULL);
		int64_t n;
		a = golden(st, fmt, name, 0, &n);
		CHECK(a != NULL);
		for (k = 0; a && k < n; k++) {
			if (key_bias(name))
				CHECK(fabs(p[k] - a[k]) < 1e-4);
			else
				werr = fmax(werr, fabs(p[k] - a[k]));
		}
		free(a);
	}
	return werr;
}

static void test_vqa(lx_st *g, lx_st *gg)
{
	vqa_run r;
	float *want = golden(gg, "%s", "vqa.loss", 0, NULL);
	double worst, werr;

	vqa_grads(&r, g, gg);
	CHECK(r.loss.has[LX_LOSS_QA] && rel(r.loss.total, want[0]) < 1e-5);
	worst = check_grads(r.t, gg, "vqa.grad");
	/* one AdamW step: lr 1e-3, betas 0.9/0.999, eps 1e-6, weight decay 0.01 on every parameter */
	lx_trainer_step(r.t, 1e-3f);
	werr = params_error(r.t, gg, "vqa.adamw1.%s");
	CHECK(werr <= 1e-6);
	printf("VQA loss %.7g (torch %.7g); gradients: worst %.2g; after one AdamW step: max error %.2g\n",
	       r.loss.total, want[0], worst, werr);
	free(want);
	vqa_free(&r);
}

/*
 * Gradient-norm clipping (lx-train --clip-norm) against torch: the VQA gradients of case 0 clipped by
 * torch.nn.utils.clip_grad_norm_ at a hundredth of their norm, then one AdamW step (golden_clip.safetensors, made by
 * tests/py/clip_golden.py). The norm within 1e-5 relative, the parameters after the step within 1e-6. A
 * max_norm above the norm, or 0, leaves the gradients as they were: the step is vqa.adamw1's.
 */
static void test_clip(lx_st *g, lx_st *gg, lx_st *gc, double max_norm, const char *prefix)
{
	vqa_run r;
	float *want_norm = golden(gc, "%s", "clip.norm", 0, NULL);
	double norm, werr;
	int own = strcmp(prefix, "clip.adamw1") == 0;

	vqa_grads(&r, g, gg);
	norm = lx_trainer_clip(r.t, max_norm);
	CHECK(rel(norm, want_norm[0]) < 1e-5);
	lx_trainer_step(r.t, 1e-3f);
	werr = params_error(r.t, own ? gc : gg, own ? "clip.adamw1.%s" : "vqa.adamw1.%s");
	CHECK(werr <= 1e-6);
	printf("clipping at %g: norm %.7g (torch %.7g); after one AdamW step against %s: max error %.2g\n", max_norm,
	       norm, want_norm[0], prefix, werr);
	free(want_norm);
	vqa_free(&r);
}

/* The loss of one example with the trainer's current weights (gradients recomputed, not used). */
static double loss_of(lx_trainer *t, const lx_example *x, const lx_train_labels *l)
{
	lx_losses loss;
	lx_err e;

	if (lx_trainer_grad(t, x, l, 1, &loss, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	return loss.total;
}

/*
 * With dropout on (0.1), the masks are a function of the seed, the step and the element, so the loss is
 * still a function of the weights: central differences (h = 1e-2) of the VQA loss must agree with the
 * backward pass through the dropped embeddings, attention probabilities and block outputs. Checked on the
 * largest-gradient element of every tensor the loss reaches, within 5% (float32 differences).
 */
static void test_dropout_fd(lx_st *g, lx_st *gg)
{
	lx_trainer *t = open_micro_p(0.1f);
	lx_example x;
	lx_train_labels l;
	int i, k, d0, d1, checked = 0;
	double worst = 0;

	example(g, "case0", &x, 10, 10);
	memset(&l, 0, sizeof l);
	l.l.T = l.l.N = 10;
	l.qa_target = golden(gg, "%s", "vqa.target", 0, NULL);
	for (i = 0; i < lx_trainer_count(t); i++) {
		float *p, save, gk;
		const float *gr;
		const char *name;
		int best = 0;
		double up, down, fd, err;
		loss_of(t, &x, &l);
		name = lx_trainer_tensor(t, i, &d0, &d1, &p, &gr);
		for (k = 1; k < d0 * (d1 < 0 ? 1 : d1); k++)
			if (fabsf(gr[k]) > fabsf(gr[best]))
				best = k;
		gk = gr[best];
		if (fabsf(gk) < 1e-3f)
			continue;
		save = p[best];
		p[best] = save + 1e-2f;
		up = loss_of(t, &x, &l);
		p[best] = save - 1e-2f;
		down = loss_of(t, &x, &l);
		p[best] = save;
		fd = (up - down) / 2e-2;
		err = fabs(fd - gk) / fabs(gk);
		if (err > 0.05) {
			fprintf(stderr, "dropout: %s[%d]: backward %g, central difference %g\n", name, best, gk, fd);
			check_failures++;
		}
		worst = fmax(worst, err);
		checked++;
	}
	CHECK(checked > 60);
	/* and dropout did drop: the loss is not the dropout-free one */
	{
		float *want = golden(gg, "%s", "vqa.loss", 0, NULL);
		CHECK(fabs(loss_of(t, &x, &l) - want[0]) > 1e-3);
		free(want);
	}
	printf("dropout 0.1: %d tensors, backward against central differences: worst %.2g relative\n", checked, worst);
	free((void *)l.qa_target);
	free_example(&x);
	lx_trainer_free(t);
}

/* A batch of two examples of different lengths (packed rows, per-example attention groups) gives the mean
 * of the two examples' gradients under the VQA loss. */
static void test_batch(lx_st *g, lx_st *gg)
{
	lx_trainer *t = open_micro();
	lx_example x[2];
	lx_train_labels l[2];
	lx_losses loss;
	lx_err e;
	float *sum[200];
	int i, k, d0, d1, n = lx_trainer_count(t);
	double worst = 0;

	example(g, "case0", &x[0], 10, 10);
	example(g, "case1", &x[1], 9, 36);
	memset(l, 0, sizeof l);
	l[0].qa_target = l[1].qa_target = golden(gg, "%s", "vqa.target", 0, NULL);
	CHECK(n <= 200);
	for (k = 0; k < 2; k++) {
		if (lx_trainer_grad(t, &x[k], &l[k], 1, &loss, &e))
			exit(1);
		for (i = 0; i < n; i++) {
			const float *gr;
			int j, m;
			lx_trainer_tensor(t, i, &d0, &d1, NULL, &gr);
			m = d0 * (d1 < 0 ? 1 : d1);
			if (!k)
				sum[i] = calloc((size_t)m, sizeof(float));
			for (j = 0; j < m; j++)
				sum[i][j] += gr[j] / 2;
		}
	}
	if (lx_trainer_grad(t, x, l, 2, &loss, &e))
		exit(1);
	for (i = 0; i < n; i++) {
		const float *gr;
		const char *name = lx_trainer_tensor(t, i, &d0, &d1, NULL, &gr);
		double mx = 0, err = 0;
		int j, m = d0 * (d1 < 0 ? 1 : d1);
		for (j = 0; j < m; j++) {
			mx = fmax(mx, fabs(sum[i][j]));
			err = fmax(err, fabs(gr[j] - sum[i][j]));
		}
		if (!key_bias(name) && mx > 0) {
			CHECK(err / mx < 1e-5);
			worst = fmax(worst, err / mx);
		}
		free(sum[i]);
	}
	printf("a batch of two (T 10 and 9, N 10 and 36): the mean of their gradients, worst %.2g relative\n", worst);
	free((void *)l[0].qa_target);
	free_example(&x[0]);
	free_example(&x[1]);
	lx_trainer_free(t);
}

int main(void)
{
	lx_st *g, *gg, *gc;
	lx_err e;
	float *max_norm;

	if (lx_st_open(&g, MICRO "/golden.safetensors", &e) || lx_st_open(&gg, MICRO "/golden_grads.safetensors", &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	test_pretrain(g, gg);
	test_vqa(g, gg);
	if (lx_st_open(&gc, MICRO "/golden_clip.safetensors", &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	max_norm = golden(gc, "%s", "clip.max_norm", 0, NULL);
	test_clip(g, gg, gc, max_norm[0], "clip.adamw1");
	test_clip(g, gg, gc, 1e6, "vqa.adamw1");
	test_clip(g, gg, gc, 0, "vqa.adamw1");
	free(max_norm);
	lx_st_free(gc);
	test_dropout_fd(g, gg);
	test_batch(g, gg);
	lx_st_free(g);
	lx_st_free(gg);
	return check_done("train_grads");
}

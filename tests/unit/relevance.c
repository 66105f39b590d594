/*
 * Relevance maps (lx_explain_relevance) against tests/fixtures/relevance-tiny: Chefer et al.'s maps computed
 * in float64 by HF's LXMERT and torch autograd on the tiny model's golden cases (the fixture's README). Each
 * case must give the same answer, and R_tt and R_ti within 1e-5 absolute and 1e-3 relative on the entries
 * above 1e-3. Then the padded case of tests/fixtures/tiny (case 4, left out of the fixture because the
 * reference divides by zero there) must give the maps of the same case with its padding removed, and zeros
 * in the rows and columns of padded positions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_train.h"
#include "check.h"

#define TINY "tests/fixtures/tiny"
#define FIXTURE "tests/fixtures/relevance-tiny/golden.safetensors"

/* Tensor prefix.name of st as a new float or int32 array (NULL if absent); numel receives its size. */
static void *tensor(const lx_st *st, const char *prefix, const char *name, int ints, int64_t *numel)
{
	char full[256];
	lx_tensor t;
	lx_err e;
	void *p;
	int i;

	snprintf(full, sizeof full, "%s.%s", prefix, name);
	if ((i = lx_st_find(st, full)) < 0)
		return NULL;
	lx_st_name(st, i, &t);
	if (numel)
		*numel = t.numel;
	if (!(p = malloc((size_t)t.numel * 4 + 4)) ||
	    (ints ? lx_tensor_to_i32(&t, p, full, &e) : lx_tensor_to_f32(&t, p, full, &e))) {
		fprintf(stderr, "%s: %s\n", full, p ? e.msg : "out of memory");
		exit(1);
	}
	return p;
}

/* The inputs of case prefix as an example (arrays to free with free_example). */
static int load_example(const lx_st *st, const char *prefix, lx_example *x)
{
	int64_t T, N4;

	memset(x, 0, sizeof *x);
	if (!(x->input_ids = tensor(st, prefix, "input_ids", 1, &T)))
		return 0;
	x->visual_pos = tensor(st, prefix, "visual_pos", 0, &N4);
	x->visual_feats = tensor(st, prefix, "visual_feats", 0, NULL);
	x->token_type_ids = tensor(st, prefix, "token_type_ids", 1, NULL);
	x->attention_mask = tensor(st, prefix, "attention_mask", 0, NULL);
	x->visual_mask = tensor(st, prefix, "visual_attention_mask", 0, NULL);
	x->T = (int)T;
	x->N = (int)(N4 / 4);
	return 1;
}

static void free_example(lx_example *x)
{
	free((void *)x->input_ids);
	free((void *)x->visual_pos);
	free((void *)x->visual_feats);
	free((void *)x->token_type_ids);
	free((void *)x->attention_mask);
	free((void *)x->visual_mask);
}

static int argmax(const float *s, int n)
{
	int i, best = 0;

	for (i = 1; i < n; i++)
		if (s[i] > s[best])
			best = i;
	return best;
}

/* The worst absolute difference, and relative one over the entries above 1e-3, of got against want. */
static void compare(const float *got, const float *want, size_t n, double *abs_worst, double *rel_worst)
{
	size_t i;

	for (i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]);
		if (d > *abs_worst)
			*abs_worst = d;
		if (fabs(want[i]) > 1e-3 && d / fabs(want[i]) > *rel_worst)
			*rel_worst = d / fabs(want[i]);
	}
}

static void test_fixture(lx_explainer *x, int A)
{
	lx_st *st = NULL;
	lx_err e;
	double aw = 0, rw = 0;
	int k, cases = 0;

	if (lx_st_open(&st, FIXTURE, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	for (k = 0;; k++) {
		char prefix[32];
		lx_example ex;
		const float *s;
		float *tt, *ti, *want_tt, *want_ti;
		int32_t *want_a;

		snprintf(prefix, sizeof prefix, "case%d", k);
		if (!load_example(st, prefix, &ex))
			break;
		want_a = tensor(st, prefix, "answer_index", 1, NULL);
		want_tt = tensor(st, prefix, "R_tt", 0, NULL);
		want_ti = tensor(st, prefix, "R_ti", 0, NULL);
		tt = malloc((size_t)ex.T * ex.T * sizeof *tt);
		ti = malloc((size_t)ex.T * ex.N * sizeof *ti);
		s = lx_explain_run(x, &ex, &e);
		CHECKF(s, "%s: %s", prefix, e.msg);
		if (s) {
			int a = argmax(s, A);
			CHECKF(a == want_a[0], "%s: answer %d, the reference's %d", prefix, a, want_a[0]);
			CHECK(lx_explain_relevance(x, want_a[0], tt, ti, &e) == LX_OK);
			compare(tt, want_tt, (size_t)ex.T * ex.T, &aw, &rw);
			compare(ti, want_ti, (size_t)ex.T * ex.N, &aw, &rw);
			cases++;
		}
		free(tt);
		free(ti);
		free(want_a);
		free(want_tt);
		free(want_ti);
		free_example(&ex);
	}
	lx_st_free(st);
	printf("relevance-tiny: %d cases, max abs diff %.3g, max rel diff (entries > 1e-3) %.3g\n", cases, aw, rw);
	CHECK(cases == 6);
	CHECKF(aw <= 1e-5, "max abs diff %g > 1e-5", aw);
	CHECKF(rw <= 1e-3, "max rel diff %g > 1e-3", rw);
}

/* Golden case 4 of tiny pads the text with 4 zeros and masks the last 6 of 16 boxes. */
static void test_padding(lx_explainer *x, int A)
{
	lx_st *st = NULL;
	lx_err e;
	lx_example pad, cut;
	const float *s;
	float *ptt, *pti, *ctt, *cti;
	int T, N, Tc = 0, Nc = 0, a, i, j;
	double worst = 0;

	if (lx_st_open(&st, TINY "/golden.safetensors", &e) || !load_example(st, "case4", &pad)) {
		fprintf(stderr, "%s\n", "tiny case 4 unreadable");
		exit(1);
	}
	T = pad.T;
	N = pad.N;
	for (i = 0; i < T; i++)
		Tc += pad.attention_mask[i] != 0;
	for (i = 0; i < N; i++)
		Nc += pad.visual_mask[i] != 0;
	CHECK(Tc == T - 4 && Nc == N - 6);
	/* the unpadded case: the first Tc words and Nc boxes, no masks */
	cut = pad;
	cut.T = Tc;
	cut.N = Nc;
	cut.attention_mask = cut.visual_mask = NULL;
	ptt = calloc((size_t)T * T, sizeof *ptt);
	pti = calloc((size_t)T * N, sizeof *pti);
	ctt = calloc((size_t)Tc * Tc, sizeof *ctt);
	cti = calloc((size_t)Tc * Nc, sizeof *cti);

	CHECK((s = lx_explain_run(x, &cut, &e)) != NULL);
	a = s ? argmax(s, A) : 0;
	CHECK(lx_explain_relevance(x, a, ctt, cti, &e) == LX_OK);
	CHECK((s = lx_explain_run(x, &pad, &e)) != NULL);
	CHECKF(s && argmax(s, A) == a, "padded answer %d, unpadded %d", s ? argmax(s, A) : -1, a);
	CHECK(lx_explain_relevance(x, a, ptt, pti, &e) == LX_OK);
	for (i = 0; i < T; i++) {
		for (j = 0; j < T; j++) {
			float want = i < Tc && j < Tc ? ctt[i * Tc + j] : 0;
			if (fabs(ptt[i * T + j] - want) > worst)
				worst = fabs(ptt[i * T + j] - want);
		}
		for (j = 0; j < N; j++) {
			float want = i < Tc && j < Nc ? cti[i * Nc + j] : 0;
			if (fabs(pti[i * N + j] - want) > worst)
				worst = fabs(pti[i * N + j] - want);
		}
	}
	printf("padded against unpadded: max abs diff %.3g\n", worst);
	CHECKF(worst <= 1e-5, "padded maps differ from unpadded by %g", worst);
	/* the maps are not all zero: row 0 explains something */
	CHECK(ctt[1] > 0 || cti[0] > 0);
	free(ptt);
	free(pti);
	free(ctt);
	free(cti);
	free_example(&pad);
	lx_st_free(st);
}

static void test_errors(lx_explainer *x, int A)
{
	float tt[16], ti[16];
	lx_err e;

	CHECK(lx_explain_relevance(x, -1, tt, ti, &e) == LX_EINPUT);
	CHECK(lx_explain_relevance(x, A, tt, ti, &e) == LX_EINPUT);
}

int main(void)
{
	lx_model *m = NULL;
	lx_explainer *x = NULL;
	lx_err e;
	int A;

	if (lx_model_open(&m, TINY, &e) || lx_explainer_new(&x, m, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	A = lx_model_config(m)->num_qa_labels;
	test_fixture(x, A);
	test_padding(x, A);
	test_errors(x, A);
	lx_explainer_free(x);
	lx_model_free(m);
	return check_done("relevance");
}

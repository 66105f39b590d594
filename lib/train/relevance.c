/*
 * relevance.c - relevance maps of an answer over words and boxes (Chefer, Gur & Wolf 2021; the rules are in
 * lx_train.h). The attention maps and their gradients come from the training forward and backward passes
 * (backward.c: lx_answer_forward, lx_answer_backward); the maps are accumulated here in double, one example
 * at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "train/train_impl.h"

struct lx_explainer {
	const lx_model *m;
	lx_encoder *enc;
	lx_tape *tape;
	float *scores;           /* [num_qa_labels] */
	double *buf;             /* the maps and their scratch (sized by maps()) */
	size_t cap;
	int ran;                 /* an example has been run */
};

lx_status lx_explainer_new(lx_explainer **out, const lx_model *m, lx_err *e)
{
	lx_explainer *x;

	*out = NULL;
	if (!lx_model_weights(m)->has_qa)
		return lx_errf(e, LX_EMODEL, "%s: the model has no answer head", lx_model_dir(m));
	if (!(x = calloc(1, sizeof *x)) || !(x->enc = lx_encoder_new(m, 0)) || !(x->tape = lx_tape_new()) ||
	    !(x->scores = malloc((size_t)lx_model_config(m)->num_qa_labels * sizeof(float)))) {
		lx_explainer_free(x);
		return lx_errf(e, LX_EIO, "out of memory for an explainer");
	}
	x->m = m;
	*out = x;
	return LX_OK;
}

void lx_explainer_free(lx_explainer *x)
{
	if (!x)
		return;
	lx_encoder_free(x->enc);
	lx_tape_free(x->tape);
	free(x->scores);
	free(x->buf);
	free(x);
}

const float *lx_explain_run(lx_explainer *x, const lx_example *ex, lx_err *e)
{
	x->ran = 0;
	if (lx_answer_forward(x->tape, x->enc, ex, 1, x->scores, e))
		return NULL;
	x->ran = 1;
	return x->scores;
}

/* ---- small dense products in double ---- */

/* c[m, n] = op(a) b with op(a) [m, k] = a, or a^T when a is stored [k, m]. */
static void mm(double *c, const double *a, int ta, const double *b, int m, int k, int n)
{
	int i, j, l;

	memset(c, 0, (size_t)m * n * sizeof *c);
	for (i = 0; i < m; i++)
		for (l = 0; l < k; l++) {
			double v = ta ? a[(size_t)l * m + i] : a[(size_t)i * k + l];
			const double *br = b + (size_t)l * n;
			double *cr = c + (size_t)i * n;
			if (v == 0)
				continue;
			for (j = 0; j < n; j++)
				cr[j] += v * br[j];
		}
}

static void add(double *r, const double *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		r[i] += d[i];
}

static void identity(double *r, int n)
{
	int i;

	memset(r, 0, (size_t)n * n * sizeof *r);
	for (i = 0; i < n; i++)
		r[(size_t)i * n + i] = 1;
}

/* out[n, n] = R - I with each row divided by its sum (a row summing to 0 left at 0), plus I. */
static void residual_norm(double *out, const double *r, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
		const double *ri = r + (size_t)i * n;
		double *o = out + (size_t)i * n, s = 0;
		for (j = 0; j < n; j++)
			s += o[j] = ri[j] - (i == j);
		for (j = 0; j < n; j++)
			o[j] = (s != 0 ? o[j] / s : 0) + (i == j);
	}
}

/* Abar[tq, tk] = mean over nh heads of max(0, dA * A), 0 in the rows and columns whose mask is 0. */
static void head_mean(double *out, const float *A, const float *dA, int nh, int tq, int tk, const float *qmask,
                      const float *kmask)
{
	size_t n = (size_t)tq * tk, i;
	int h;

	memset(out, 0, n * sizeof *out);
	for (h = 0; h < nh; h++)
		for (i = 0; i < n; i++) {
			double v = (double)A[h * n + i] * dA[h * n + i];
			if (v > 0)
				out[i] += v;
		}
	for (i = 0; i < n; i++) {
		int q = (int)(i / tk), k = (int)(i % tk);
		out[i] = (qmask && qmask[q] == 0) || (kmask && kmask[k] == 0) ? 0 : out[i] / nh;
	}
}

/* The maps of one example and their scratch, laid over x->buf. */
typedef struct {
	double *tt, *ii, *ti, *it;         /* R_tt [T, T], R_ii [N, N], R_ti [T, N], R_it [N, T] */
	double *cam, *cam2;                /* Abar [max^2] each */
	double *ntt, *nii, *tmp, *d1, *d2; /* nrm(R_tt), nrm(R_ii), products [max^2] */
} maps;

/* Lays the maps for T words and N boxes over base (NULL: only counts); returns the doubles used. */
static size_t lay_maps(maps *r, double *base, int T, int N)
{
	size_t M = (size_t)(T > N ? T : N), sq = M * M, off = 0;
	double **p[] = {&r->tt, &r->ii, &r->ti, &r->it, &r->cam, &r->cam2, &r->ntt, &r->nii, &r->tmp, &r->d1, &r->d2};
	size_t i;

	for (i = 0; i < sizeof p / sizeof *p; i++) {
		*p[i] = base ? base + off : NULL;
		off += sq;
	}
	return off;
}

/* Self-attention of a side of s positions over itself, the other side having q: R_ss += Abar R_ss,
 * R_sq += Abar R_sq. */
static void self_rule(maps *r, double *rss, double *rsq, int s, int q)
{
	mm(r->tmp, r->cam, 0, rss, s, s, s);
	add(rss, r->tmp, (size_t)s * s);
	mm(r->tmp, r->cam, 0, rsq, s, s, q);
	add(rsq, r->tmp, (size_t)s * q);
}

/* A cross layer's cross-attention, Abar_ti in r->cam and (unless lang_only) Abar_it in r->cam2. */
static void cross_rule(maps *r, int T, int N, int lang_only)
{
	residual_norm(r->ntt, r->tt, T);
	residual_norm(r->nii, r->ii, N);
	/* R_ti += nrm(R_tt)^T Abar_ti nrm(R_ii) and R_tt += Abar_ti R_it, from the values before the layer */
	mm(r->tmp, r->cam, 0, r->nii, T, N, N);
	mm(r->d1, r->ntt, 1, r->tmp, T, T, N);
	mm(r->d2, r->cam, 0, r->it, T, N, T);
	if (!lang_only) {
		/* R_it += nrm(R_ii)^T Abar_it nrm(R_tt) (its product in ntt, no longer needed); R_ii += Abar_it R_ti */
		mm(r->tmp, r->cam2, 0, r->ntt, N, T, T);
		mm(r->ntt, r->nii, 1, r->tmp, N, N, T);
		add(r->it, r->ntt, (size_t)N * T);
		mm(r->tmp, r->cam2, 0, r->ti, N, T, N);
		add(r->ii, r->tmp, (size_t)N * N);
	}
	add(r->ti, r->d1, (size_t)T * N);
	add(r->tt, r->d2, (size_t)T * T);
}

lx_status lx_explain_relevance(lx_explainer *x, int answer, float *r_tt, float *r_ti, lx_err *e)
{
	const lx_config *c = lx_model_config(x->m);
	const lx_example *ex = x->enc->ex;
	int nh = c->num_attention_heads, A = c->num_qa_labels, crossed = 0, b, i, j, T, N;
	const float *tm, *vm;
	size_t need;
	maps r;

	if (!x->ran)
		return lx_errf(e, LX_EINPUT, "no example to explain");
	if (answer < 0 || answer >= A)
		return lx_errf(e, LX_EINPUT, "answer %d is outside [0, %d)", answer, A);
	T = ex->T;
	N = ex->N;
	tm = ex->attention_mask;
	vm = ex->visual_mask;
	need = lay_maps(&r, NULL, T, N);
	if (need > x->cap) {
		free(x->buf);
		if (!(x->buf = malloc(need * sizeof *x->buf)))
			return x->cap = 0, lx_errf(e, LX_EIO, "out of memory for relevance maps (T %d, N %d)", T, N);
		x->cap = need;
	}
	lay_maps(&r, x->buf, T, N);
	lx_answer_backward(x->tape, x->enc, &answer);

	identity(r.tt, T);
	identity(r.ii, N);
	memset(r.ti, 0, (size_t)T * N * sizeof(double));
	memset(r.it, 0, (size_t)N * T * sizeof(double));
	for (b = 0; b < lx_tape_blocks(x->tape); b++) {
		const float *P, *dP;
		int kind = lx_tape_block(x->tape, b, &P, &dP), last = crossed == c->x_layers;
		if (kind == LX_ATT_LANG) {
			head_mean(r.cam, P, dP, nh, T, T, tm, tm);
			self_rule(&r, r.tt, r.ti, T, N);
		} else if (kind == LX_ATT_VISN && !last) {
			head_mean(r.cam, P, dP, nh, N, N, vm, vm);
			self_rule(&r, r.ii, r.it, N, T);
		} else if (kind == LX_ATT_CROSS) {
			/* the words over the boxes [heads, T, N], then the boxes over the words [heads, N, T] */
			size_t tn = (size_t)nh * T * N;
			last = ++crossed == c->x_layers;
			head_mean(r.cam, P, dP, nh, T, N, tm, vm);
			if (!last)
				head_mean(r.cam2, P + tn, dP + tn, nh, N, T, vm, tm);
			cross_rule(&r, T, N, last);
		}
	}

	r.tt[0] = 0;
	for (i = 0; i < T; i++) {
		int pi = tm && tm[i] == 0;
		for (j = 0; j < T; j++)
			r_tt[(size_t)i * T + j] = pi || (tm && tm[j] == 0) ? 0 : (float)r.tt[(size_t)i * T + j];
		for (j = 0; j < N; j++)
			r_ti[(size_t)i * N + j] = pi || (vm && vm[j] == 0) ? 0 : (float)r.ti[(size_t)i * N + j];
	}
	return LX_OK;
}

double lx_tape_memory(const lx_config *c, int T, int N, int keep_dprobs)
{
	double H = c->hidden_size, h = c->num_attention_heads, l = c->l_layers, r = c->r_layers, x = c->x_layers;
	double I = c->intermediate_size, F = c->visual_feat_dim, t = T, n = N, m = T > N ? T : N, floats;

	/* the embeddings, the cross encoder's input, seven gradients of every row, the pooler; the wide rows
	 * and the scores' scratch of the backward */
	floats = 2 * t * H + t + 4 * n * H + n * F + 6 * n + 8 * (t + n) * H + 3 * H + 2 * m * I + 2 * m * m;
	/* the blocks: an attention block keeps 6 rows of H and one float a row, a feed-forward block I + 2H + 1
	 * a row; a cross layer (cross-attention, both self-attentions, both feed-forwards) 14H + I + 3 a row */
	floats += (l * t + r * n) * (8 * H + I + 2) + x * (t + n) * (14 * H + I + 3);
	/* the attention maps of every head, and their gradients */
	floats += (keep_dprobs ? 2 : 1) * h * (l * t * t + r * n * n + x * (2 * t * n + t * t + n * n));
	/* the heads' buffers (the answer head's: 8H + 1 + the answers) */
	floats += 8 * H + 1 + c->num_qa_labels;
	return 4 * floats;
}

double lx_explain_memory(const lx_config *c, int T, int N)
{
	maps r;
	double t = T, n = N;

	/* the encoder's scratch and the inputs, the tape, the maps in double, and R_tt [T, T] and R_ti [T, N]
	 * twice as floats (the tool's buffers and the record's copy) */
	return lx_example_memory(c, 0, LX_F32, T, N, NULL) + lx_tape_memory(c, T, N, 1) +
	       8 * (double)lay_maps(&r, NULL, T, N) + 2 * 4 * (t * t + t * n + t + n);
}

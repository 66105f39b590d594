/*
 * bench_explain - seconds per question of lx-explain's method (lx_explain_run and lx_explain_relevance: the
 * forward pass with the answer head, the backward pass to every attention map, the relevance rules) beside
 * lx_encode's own time per question, both at batch 1.
 *
 *   bench_explain DIR [REPS [T N [THREADS]]]     (default 10 questions, T=20 words, N=36 boxes, 2 threads)
 *
 * One warm-up question of each is not timed. Prints both times and their ratio.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lx.h"
#include "lx_train.h"

int main(int argc, char **argv)
{
	int reps = argc > 2 ? atoi(argv[2]) : 10, T = argc > 4 ? atoi(argv[3]) : 20, N = argc > 4 ? atoi(argv[4]) : 36;
	int threads = argc > 5 ? atoi(argv[5]) : 2, i, r;
	lx_model *m;
	lx_encoder *enc;
	lx_explainer *x;
	lx_outputs out;
	lx_example ex = {0};
	lx_err e;
	const lx_config *c;
	int32_t *ids;
	float *feats, *pos, *tt, *ti;
	double t0, t_enc, t_exp;

	if (argc < 2 || reps < 1 || T < 1 || N < 1 || threads < 1) {
		fprintf(stderr, "usage: bench_explain DIR [REPS [T N [THREADS]]]\n");
		return 2;
	}
	if (lx_model_open(&m, argv[1], &e) || lx_explainer_new(&x, m, &e)) {
		fprintf(stderr, "bench_explain: %s\n", e.msg);
		return 3;
	}
	c = lx_model_config(m);
	lx_set_threads(threads);
	enc = lx_encoder_new(m, 0);
	ids = malloc((size_t)T * sizeof *ids);
	feats = malloc((size_t)N * c->visual_feat_dim * sizeof *feats);
	pos = malloc((size_t)N * 4 * sizeof *pos);
	tt = malloc((size_t)T * T * sizeof *tt);
	ti = malloc((size_t)T * N * sizeof *ti);
	for (i = 0; i < T; i++)
		ids[i] = i == 0 ? 101 : i == T - 1 ? 102 : 1000 + i * 37 % c->vocab_size;
	for (i = 0; i < N * c->visual_feat_dim; i++)
		feats[i] = (float)((i * 7919) % 1000) / 500.0f;
	for (i = 0; i < N * 4; i++)
		pos[i] = (float)((i * 31) % 100) / 100.0f;
	ex.T = T;
	ex.N = N;
	ex.input_ids = ids;
	ex.visual_feats = feats;
	ex.visual_pos = pos;

	t0 = 0;
	for (r = -1; r < reps; r++) {
		if (r == 0)
			t0 = lx_now();
		if (lx_encode(enc, &ex, 1, &out, &e)) {
			fprintf(stderr, "bench_explain: %s\n", e.msg);
			return 1;
		}
	}
	t_enc = (lx_now() - t0) / reps;
	for (r = -1; r < reps; r++) {
		const float *s;
		if (r == 0)
			t0 = lx_now();
		if (!(s = lx_explain_run(x, &ex, &e)) || lx_explain_relevance(x, 0, tt, ti, &e)) {
			fprintf(stderr, "bench_explain: %s\n", e.msg);
			return 1;
		}
	}
	t_exp = (lx_now() - t0) / reps;
	printf("model %s: T=%d N=%d, batch 1, %d threads, %d timed questions\n", argv[1], T, N, threads, reps);
	printf("lx-encode  %.4f s/question\nlx-explain %.4f s/question (%.2fx lx-encode)\n", t_enc, t_exp, t_exp / t_enc);
	lx_explainer_free(x);
	lx_encoder_free(enc);
	lx_model_free(m);
	free(ids);
	free(feats);
	free(pos);
	free(tt);
	free(ti);
	return 0;
}

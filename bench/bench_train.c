/*
 * bench_train - how fast a training step runs on a model directory, beside the machine's own sgemm rate.
 *
 *   bench_train DIR [STEPS [BATCH [T N]]]     (default 3 steps of 32 questions, T=20 words, N=36 boxes)
 *
 * Each step is lx_trainer_grad (forward, the authors' VQA loss, backward) and an AdamW update, dropout 0.1.
 * Prints training examples/s, the achieved GFLOP/s counting a training step as 3 forward passes (the usual
 * estimate: the backward pass costs two), and lx_op_matmul's rate on the model's largest product with the same
 * thread count. One warm-up step is not timed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "lx_train.h"
#include "sgemm_rate.h"

static double flops_per_question(const lx_config *c, double T, double N)
{
	double H = c->hidden_size, Dff = c->intermediate_size, F = c->visual_feat_dim;
	double row = 8 * H * H + 4 * H * Dff;
	double f = 2 * N * F * H + 2 * N * 4 * H;
	f += c->l_layers * (T * row + 4 * T * T * H);
	f += c->r_layers * (N * row + 4 * N * N * H);
	f += c->x_layers * ((T + N) * (16 * H * H + 4 * H * Dff) + 8 * T * N * H + 4 * (T * T + N * N) * H);
	return f + 2 * H * H + 2 * (2 * H * H + 2 * H * c->num_qa_labels);
}

int main(int argc, char **argv)
{
	int steps = argc > 2 ? atoi(argv[2]) : 3, B = argc > 3 ? atoi(argv[3]) : 32;
	int T = argc > 5 ? atoi(argv[4]) : 20, N = argc > 5 ? atoi(argv[5]) : 36, i, s, th;
	lx_train_opts o;
	lx_trainer *t;
	lx_err e;
	const lx_config *c;
	lx_example *ex;
	lx_train_labels *lab;
	lx_losses loss;
	int32_t *ids;
	float *feats, *pos, *target;

	if (argc < 2 || steps < 1 || B < 1) {
		fprintf(stderr, "usage: bench_train DIR [STEPS [BATCH [T N]]]\n");
		return 2;
	}
	lx_train_opts_init(&o);
	if (lx_trainer_open(&t, argv[1], &o, &e)) {
		fprintf(stderr, "bench_train: %s\n", e.msg);
		return 3;
	}
	c = lx_model_config(lx_trainer_model(t));
	ids = malloc((size_t)T * sizeof *ids);
	feats = malloc((size_t)N * c->visual_feat_dim * sizeof *feats);
	pos = malloc((size_t)N * 4 * sizeof *pos);
	target = calloc((size_t)c->num_qa_labels, sizeof *target);
	ex = calloc((size_t)B, sizeof *ex);
	lab = calloc((size_t)B, sizeof *lab);
	for (i = 0; i < T; i++)
		ids[i] = i == 0 ? 101 : i == T - 1 ? 102 : 1000 + i * 37 % c->vocab_size;
	for (i = 0; i < N * c->visual_feat_dim; i++)
		feats[i] = (float)((i * 7919) % 1000) / 500.0f;
	for (i = 0; i < N * 4; i++)
		pos[i] = (float)((i * 31) % 100) / 100.0f;
	target[1 % c->num_qa_labels] = 1.0f;
	for (i = 0; i < B; i++) {
		ex[i].T = T;
		ex[i].N = N;
		ex[i].input_ids = ids;
		ex[i].visual_feats = feats;
		ex[i].visual_pos = pos;
		lab[i].qa_target = target;
	}
	printf("model %s: T=%d N=%d batch %d, %d timed steps; a step counted as 3 forward passes, %.2f GFLOP per question\n",
	       argv[1], T, N, B, steps, 3 * flops_per_question(c, T, N) / 1e9);
	printf("%7s %12s %10s %10s %12s %7s\n", "threads", "examples/s", "s/step", "GFLOP/s", "sgemm GF/s", "ratio");
	for (th = 1; th <= 2; th++) {
		double t0 = 0, dt, peak, gf;
		lx_set_threads(th);
		peak = sgemm_rate(B * (T + N) / 2, c->intermediate_size, c->hidden_size);
		for (s = -1; s < steps; s++) {
			if (s == 0)
				t0 = lx_now();
			if (lx_trainer_grad(t, ex, lab, B, &loss, &e)) {
				fprintf(stderr, "bench_train: %s\n", e.msg);
				return 1;
			}
			lx_trainer_step(t, 1e-5f);
		}
		dt = lx_now() - t0;
		gf = 3 * flops_per_question(c, T, N) * B * steps / dt / 1e9;
		printf("%7d %12.2f %10.2f %10.1f %12.1f %6.0f%%\n", th, B * steps / dt, dt / steps, gf, peak, 100 * gf / peak);
		fflush(stdout);
	}
	lx_trainer_free(t);
	free(ids);
	free(feats);
	free(pos);
	free(target);
	free(ex);
	free(lab);
	return 0;
}

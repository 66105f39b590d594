/*
 * bench_encode - how fast lx_encode runs on a model directory, beside the machine's own sgemm rate.
 *
 *   bench_encode [--int8|--bf16] [--threads N --batch B] DIR [T N]
 *                              (default T=20 words, N=36 boxes: VQA with the authors' features)
 *   bench_encode --backend     prints the backend the matrix products run on (LX_MATMUL, built-in ones)
 *
 * --int8 / --bf16 open the model computing in that precision (lx_model_open_as); --threads and --batch
 * time that one configuration only (for perf record / perf stat). Each configuration runs for 3 seconds, or
 * LX_BENCH_SECONDS.
 *
 * For batch 1, 8 and 32 and 1 and 2 threads: questions/s, ms/question, CPU ms/question of every thread and of
 * the calling thread alone (which also runs what is not shared: on a busy machine the rates fall, these much
 * less, and a quiet one's ms/question is near the larger of the caller's and half of all), achieved GFLOP/s,
 * and the ratio to
 * lx_op_matmul's rate (on the backend it prints) on the model's largest product (rows = batch x (T+N) / 2,
 * hidden x intermediate) measured in the same run with the same thread count. Also the time to open the model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lx.h"
#include "sgemm_rate.h"

/* The CPU time so far of the process (CLOCK_PROCESS_CPUTIME_ID) or of the calling thread, in seconds. */
static double cpu_now(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double flops_per_question(const lx_config *c, double T, double N)
{
	double H = c->hidden_size, Dff = c->intermediate_size, F = c->visual_feat_dim;
	double row = 8 * H * H + 4 * H * Dff; /* q, k, v, o and the two feed-forward products, per row */
	double f = 2 * N * F * H + 2 * N * 4 * H;
	f += c->l_layers * (T * row + 4 * T * T * H);
	f += c->r_layers * (N * row + 4 * N * N * H);
	/* a cross layer: the shared cross-attention both ways, two self-attentions, two feed-forwards */
	f += c->x_layers * ((T + N) * (16 * H * H + 4 * H * Dff) + 8 * T * N * H + 4 * (T * T + N * N) * H);
	return f + 2 * H * H;
}

int main(int argc, char **argv)
{
	int batches[] = {1, 8, 32}, threads[] = {1, 2}, nb = 3, nt = 2, compute = LX_F32;
	lx_model *m;
	lx_err e;
	const lx_config *c;
	double t0, open_ms, fq;
	int T, N, bi, ti, i;
	double seconds = getenv("LX_BENCH_SECONDS") ? atof(getenv("LX_BENCH_SECONDS")) : 3.0;
	int32_t *ids;
	float *feats, *pos;
	lx_example ex[32];
	lx_outputs out[32];

	if (argc == 2 && !strcmp(argv[1], "--backend")) {
		printf("%s\n", lx_matmul_backend());
		return 0;
	}
	for (; argc > 2 && argv[1][0] == '-'; argc--, argv++)
		if (!strcmp(argv[1], "--int8"))
			compute = LX_I8;
		else if (!strcmp(argv[1], "--bf16"))
			compute = LX_BF16;
		else if (!strcmp(argv[1], "--threads") && argc > 3) {
			threads[0] = atoi(argv[2]);
			nt = 1;
			argc--, argv++;
		} else if (!strcmp(argv[1], "--batch") && argc > 3) {
			batches[0] = atoi(argv[2]);
			nb = 1;
			argc--, argv++;
		} else
			break;
	if (argc < 2 || argv[1][0] == '-' || batches[0] < 1 || batches[0] > 32 || threads[0] < 1) {
		fprintf(stderr, "usage: bench_encode [--int8|--bf16] [--threads N] [--batch B (1-32)] DIR [T N]\n");
		return 2;
	}
	T = argc > 3 ? atoi(argv[2]) : 20;
	N = argc > 3 ? atoi(argv[3]) : 36;
	t0 = lx_now();
	if (lx_model_open_as(&m, argv[1], compute, &e)) {
		fprintf(stderr, "bench_encode: %s\n", e.msg);
		return 3;
	}
	open_ms = (lx_now() - t0) * 1e3;
	c = lx_model_config(m);
	fq = flops_per_question(c, T, N);
	ids = malloc((size_t)T * sizeof *ids);
	feats = malloc((size_t)N * c->visual_feat_dim * sizeof *feats);
	pos = malloc((size_t)N * 4 * sizeof *pos);
	for (i = 0; i < T; i++)
		ids[i] = i == 0 ? 101 : i == T - 1 ? 102 : 1000 + i * 37 % c->vocab_size;
	for (i = 0; i < N * c->visual_feat_dim; i++)
		feats[i] = (float)((i * 7919) % 1000) / 500.0f;
	for (i = 0; i < N * 4; i++)
		pos[i] = (float)((i * 31) % 100) / 100.0f;
	for (i = 0; i < 32; i++) {
		memset(&ex[i], 0, sizeof ex[i]);
		ex[i].T = T;
		ex[i].N = N;
		ex[i].input_ids = ids;
		ex[i].visual_feats = feats;
		ex[i].visual_pos = pos;
	}
	printf("model %s%s: open %.1f ms; T=%d N=%d: %.2f GFLOP per question; matrix products on %s\n", argv[1],
	       compute == LX_I8 ? " (int8)" : compute == LX_BF16 ? " (bf16)" : "", open_ms, T, N, fq / 1e9,
	       lx_matmul_backend());
	printf("%7s %7s %12s %12s %9s %9s %10s %12s %7s\n", "threads", "batch", "questions/s", "ms/question", "CPU ms/q",
	       "caller's", "GFLOP/s", "sgemm GF/s", "ratio");
	for (ti = 0; ti < nt; ti++) {
		double peak;
		lx_set_threads(threads[ti]);
		peak = sgemm_rate(32 * (T + N) / 2, c->intermediate_size, c->hidden_size);
		for (bi = 0; bi < nb; bi++) {
			int b = batches[bi], runs = 0;
			lx_encoder *enc = lx_encoder_new(m, 0);
			double t, c0, c1;
			lx_encode(enc, ex, b, out, &e); /* sizes the buffers */
			t0 = lx_now();
			c0 = cpu_now(CLOCK_PROCESS_CPUTIME_ID);
			c1 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
			do {
				if (lx_encode(enc, ex, b, out, &e)) {
					fprintf(stderr, "bench_encode: %s\n", e.msg);
					return 1;
				}
				runs++;
				t = lx_now() - t0;
			} while (t < seconds);
			c0 = cpu_now(CLOCK_PROCESS_CPUTIME_ID) - c0;
			c1 = cpu_now(CLOCK_THREAD_CPUTIME_ID) - c1;
			lx_encoder_free(enc);
			printf("%7d %7d %12.2f %12.1f %9.1f %9.1f %10.1f %12.1f %6.0f%%\n", threads[ti], b, runs * b / t,
			       t * 1e3 / (runs * b), c0 * 1e3 / (runs * b), c1 * 1e3 / (runs * b), fq * runs * b / t / 1e9, peak,
			       100 * fq * runs * b / t / 1e9 / peak);
			fflush(stdout);
		}
	}
	lx_model_free(m);
	free(ids);
	free(feats);
	free(pos);
	return 0;
}

/* tests/unit/ops.c - the encoder's vectorized operations against libm and double-precision references, and
 * linear layers on packed weights (oneDNN, split among threads) against the plain ones. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"
#include "nn/ops.h"
#include "check.h"

static unsigned long long rng = 12345;

static float uniform(float lo, float hi)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

/* GELU in both forms against libm's erf and tanh in double. */
static void gelu(void)
{
	enum { N = 4001 };
	static float x[N];
	int form, i;

	for (form = 0; form < 2; form++) {
		double worst = 0;
		for (i = 0; i < N; i++)
			x[i] = -10.0f + 20.0f * i / (N - 1);
		lx_op_gelu(x, N, form);
		for (i = 0; i < N; i++) {
			double v = -10.0 + 20.0 * i / (N - 1), ref = form ? 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
			                                                 : 0.5 * v * (1 + erf(v / sqrt(2.0)));
			double d = fabs(x[i] - ref);
			worst = d > worst ? d : worst;
		}
		CHECKF(worst < 2e-6, "gelu (%s form): max abs difference %g from libm", form ? "tanh" : "erf", worst);
	}
}

/* Softmax rows against double precision; masked entries exactly 0. */
static void softmax(void)
{
	enum { R = 7, C = 37 };
	float s[R * C], mask[C];
	double worst = 0;
	int r, j;

	for (j = 0; j < C; j++)
		mask[j] = j % 5 == 3 ? 0.0f : 1.0f;
	for (j = 0; j < R * C; j++)
		s[j] = uniform(-30, 30);
	{
		float orig[R * C];
		memcpy(orig, s, sizeof s);
		lx_op_softmax_rows(s, R, C, 8.0f, mask);
		for (r = 0; r < R; r++) {
			double mx = -1e300, sum = 0;
			for (j = 0; j < C; j++)
				if (mask[j] && orig[r * C + j] / 8.0 > mx)
					mx = orig[r * C + j] / 8.0;
			for (j = 0; j < C; j++)
				sum += mask[j] ? exp(orig[r * C + j] / 8.0 - mx) : 0;
			for (j = 0; j < C; j++) {
				double ref = mask[j] ? exp(orig[r * C + j] / 8.0 - mx) / sum : 0;
				if (!mask[j])
					CHECKF(s[r * C + j] == 0.0f, "softmax: masked entry %d,%d is %g", r, j, s[r * C + j]);
				worst = fabs(s[r * C + j] - ref) > worst ? fabs(s[r * C + j] - ref) : worst;
			}
		}
	}
	CHECKF(worst < 1e-6, "softmax: max abs difference %g from double precision", worst);
}

/* A linear layer on packed weights, on 2 threads, against the plain float32 product and the plain C int8
 * kernel (integer sums: the same bytes). */
static void packed(void)
{
	enum { M = 100, OUT = 256, IN = 512 };
	float *x = malloc(sizeof(float) * M * IN), *w = malloc(sizeof(float) * OUT * IN), *b = malloc(sizeof(float) * OUT);
	float *y0 = malloc(sizeof(float) * M * OUT), *y1 = malloc(sizeof(float) * M * OUT), *qs = malloc(sizeof(float) * OUT);
	float *s = malloc(sizeof(float) * M);
	signed char *q = malloc(OUT * IN), *a = malloc(M * IN);
	lx_linear_w l = {0};
	lx_pack *pk;
	double worst = 0;
	int i, j;

	for (i = 0; i < M * IN; i++)
		x[i] = uniform(-1, 1);
	for (i = 0; i < OUT * IN; i++)
		w[i] = uniform(-0.05f, 0.05f);
	for (i = 0; i < OUT; i++)
		b[i] = uniform(-0.1f, 0.1f);
	lx_set_threads(2);
	pk = lx_pack_new();
	if (!pk) {
		printf("ops: no packed weights on this backend (%s): packed products not checked\n", lx_matmul_backend());
		goto out;
	}
	l.w = w;
	l.b = b;
	lx_op_linear(y0, x, M, &l, OUT, IN);
	CHECK(lx_op_linear_packed(pk, y1, x, NULL, M, &l, OUT, IN) == 0);
	for (i = 0; i < M * OUT; i++)
		worst = fabs(y0[i] - y1[i]) > worst ? fabs(y0[i] - y1[i]) : worst;
	CHECKF(worst < 1e-5, "packed float32: max abs difference %g from the plain product", worst);

	/* int8: per-channel weights, per-row activations */
	for (i = 0; i < OUT; i++) {
		float mx = 0;
		for (j = 0; j < IN; j++)
			mx = fabsf(w[i * IN + j]) > mx ? fabsf(w[i * IN + j]) : mx;
		qs[i] = mx / 127;
		for (j = 0; j < IN; j++)
			q[i * IN + j] = (signed char)lrintf(w[i * IN + j] / qs[i]);
	}
	l = (lx_linear_w){NULL, b, q, qs, NULL};
	lx_op_quantize(a, s, x, M, IN);
	lx_op_linear_int8(y0, a, s, M, &l, OUT, IN);
	CHECK(lx_op_linear_packed(pk, y1, a, s, M, &l, OUT, IN) == 0);
	CHECKF(!memcmp(y0, y1, sizeof(float) * M * OUT), "packed int8 differs from the plain C kernel");

	/* the GELU in the int8 epilogue: the bytes of the product, then lx_op_gelu (checked against libm above) */
	for (j = 0; j < 2; j++) {
		lx_op_gelu(y0, (size_t)M * OUT, j);
		CHECK(lx_op_linear_packed_act(pk, y1, a, s, M, &l, OUT, IN, j ? LX_ACT_GELU_TANH : LX_ACT_GELU) == 0);
		CHECKF(!memcmp(y0, y1, sizeof(float) * M * OUT), "int8 with GELU (%s) differs from int8, then lx_op_gelu",
		       j ? "tanh" : "erf");
		lx_op_linear_int8(y0, a, s, M, &l, OUT, IN);
	}
	lx_pack_free(pk);
out:
	free(x), free(w), free(b), free(y0), free(y1), free(qs), free(s), free(q), free(a);
}

/* Attention over heads on 2 threads against a double-precision reference, with a masked key; and the bytes
 * of 1 thread. */
static void attention(void)
{
	enum { TQ = 7, TK = 11, NH = 12, DH = 64, LD = NH * DH };
	static float Q[TQ * LD], K[TK * LD], V[TK * LD], C[TQ * LD], C1[TQ * LD], P[NH * TQ * TK], mask[TK];
	double worst = 0, wp = 0;
	int h, i, j, d;

	for (i = 0; i < TQ * LD; i++)
		Q[i] = uniform(-2, 2);
	for (i = 0; i < TK * LD; i++)
		K[i] = uniform(-2, 2), V[i] = uniform(-1, 1);
	for (j = 0; j < TK; j++)
		mask[j] = j != 3;
	lx_set_threads(2);
	lx_op_attention(C, P, Q, K, V, TQ, TK, NH, DH, LD, 8.0f, mask);
	for (h = 0; h < NH; h++)
		for (i = 0; i < TQ; i++) {
			double sc[TK], mx = -1e300, sum = 0;
			for (j = 0; j < TK; j++) {
				sc[j] = 0;
				for (d = 0; d < DH; d++)
					sc[j] += (double)Q[i * LD + h * DH + d] * K[j * LD + h * DH + d];
				sc[j] /= 8;
				if (mask[j] && sc[j] > mx)
					mx = sc[j];
			}
			for (j = 0; j < TK; j++)
				sum += (sc[j] = mask[j] ? exp(sc[j] - mx) : 0);
			for (j = 0; j < TK; j++) {
				float p = P[((size_t)h * TQ + i) * TK + j];
				wp = fabs(p - sc[j] / sum) > wp ? fabs(p - sc[j] / sum) : wp;
			}
			for (d = 0; d < DH; d++) {
				double c = 0;
				for (j = 0; j < TK; j++)
					c += sc[j] / sum * V[j * LD + h * DH + d];
				worst = fabs(C[i * LD + h * DH + d] - c) > worst ? fabs(C[i * LD + h * DH + d] - c) : worst;
			}
		}
	CHECKF(wp < 1e-6, "attention: probabilities %g from double precision", wp);
	CHECKF(worst < 1e-5, "attention: context %g from double precision", worst);
	lx_set_threads(1);
	lx_op_attention(C1, P, Q, K, V, TQ, TK, NH, DH, LD, 8.0f, mask);
	CHECKF(!memcmp(C, C1, sizeof C), "attention: 1 thread and 2 differ");
}

int main(void)
{
	gelu();
	softmax();
	packed();
	attention();
	return check_done("ops");
}

/*
 * mkmodel - a model directory of any LXMERT shape with random weights, and optionally a stream of random
 * questions for it: what the benchmarks run on, since the real weights are not always at hand.
 *
 *   mkmodel [options] OUTDIR
 *     --hidden H (768) --heads K (12) --intermediate I (3072) --layers L,R,X (9,5,5) --vocab V (30522)
 *     --feat-dim F (2048) --answers A (3129) --with-heads qa,match,mlm,obj (qa) --seed S (1)
 *     --inputs COUNT (0): also write OUTDIR/inputs.mp, COUNT records of --tokens T (20) and --boxes N (36)
 *
 * Weights are N(0, 0.02) (LayerNorm gains 1 + N(0, 0.02), biases N(0, 0.02)), as BERT initialises them.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lx.h"
#include "lx_ckpt.h"

typedef struct {
	lx_st_entry *e;
	float **data;
	int n, cap;
	uint64_t rng;
	lx_status rc;
} maker;

static double uniform(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((*s >> 11) + 0.5) / 9007199254740992.0;
}

static float normal(uint64_t *s)
{
	return (float)(sqrt(-2 * log(uniform(s))) * cos(6.283185307179586 * uniform(s)));
}

static void add(void *ctx, const char *name, int d0, int d1)
{
	maker *m = ctx;
	size_t n = (size_t)d0 * (d1 < 0 ? 1 : (size_t)d1), i;
	size_t len = strlen(name);
	int gain = len > 7 && strcmp(name + len - 7, ".weight") == 0 && d1 < 0;
	float *p;

	if (m->rc)
		return;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->e = realloc(m->e, (size_t)m->cap * sizeof *m->e);
		m->data = realloc(m->data, (size_t)m->cap * sizeof *m->data);
	}
	if (!m->e || !m->data || !(p = malloc(n * sizeof *p))) {
		m->rc = LX_EIO;
		return;
	}
	for (i = 0; i < n; i++)
		p[i] = (gain ? 1.0f : 0.0f) + 0.02f * normal(&m->rng);
	memset(&m->e[m->n], 0, sizeof m->e[m->n]);
	m->e[m->n].name = strdup(name);
	m->e[m->n].dtype = LX_F32;
	m->e[m->n].src.dtype = LX_F32;
	m->e[m->n].src.ndim = d1 < 0 ? 1 : 2;
	m->e[m->n].src.shape[0] = d0;
	m->e[m->n].src.shape[1] = d1;
	m->e[m->n].src.numel = (int64_t)n;
	m->e[m->n].src.data = p;
	m->data[m->n++] = p;
}

static int heads_of(const char *s)
{
	int h = 0;

	if (strstr(s, "qa"))
		h |= LX_HEAD_QA;
	if (strstr(s, "match"))
		h |= LX_HEAD_MATCH;
	if (strstr(s, "mlm"))
		h |= LX_HEAD_MLM;
	if (strstr(s, "obj"))
		h |= LX_HEAD_OBJ;
	return h;
}

static int write_inputs(const char *path, const lx_config *c, int count, int T, int N, uint64_t *rng, lx_err *e)
{
	FILE *f = fopen(path, "wb");
	lx_writer *w;
	int32_t *ids = malloc((size_t)T * sizeof *ids);
	float *feats = malloc((size_t)N * c->visual_feat_dim * sizeof *feats), *pos = malloc((size_t)N * 4 * sizeof *pos);
	int i, k, rc = 0;

	if (!f || !ids || !feats || !pos)
		return -1;
	w = lx_writer_new(f, path);
	for (i = 0; i < count && !rc; i++) {
		lx_record *rec = lx_record_new();
		int64_t st[2];
		for (k = 0; k < T; k++)
			ids[k] = k == 0 ? 101 : k == T - 1 ? 102 : 1000 + (int)(uniform(rng) * (c->vocab_size - 1000));
		for (k = 0; k < N * c->visual_feat_dim; k++)
			feats[k] = (float)(uniform(rng) < 0.7 ? 0 : 4 * uniform(rng)); /* sparse, non-negative, like ReLU */
		for (k = 0; k < N; k++) {
			float x = (float)uniform(rng) * 0.8f, y = (float)uniform(rng) * 0.8f;
			pos[4 * k] = x;
			pos[4 * k + 1] = y;
			pos[4 * k + 2] = x + 0.2f * (float)uniform(rng);
			pos[4 * k + 3] = y + 0.2f * (float)uniform(rng);
		}
		lx_record_add_int(rec, "question_id", i);
		st[0] = T;
		lx_record_add_tensor(rec, "input_ids", LX_I32, 1, st, ids);
		st[0] = N;
		st[1] = c->visual_feat_dim;
		lx_record_add_tensor(rec, "visual_feats", LX_F32, 2, st, feats);
		st[1] = 4;
		lx_record_add_tensor(rec, "visual_pos", LX_F32, 2, st, pos);
		rc = lx_writer_put(w, rec, e) != LX_OK;
		lx_record_free(rec);
	}
	if (!rc)
		rc = lx_writer_flush(w, e) != LX_OK;
	lx_writer_free(w);
	if (fclose(f))
		rc = 1;
	free(ids);
	free(feats);
	free(pos);
	return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"hidden", 1, 0, 'H'}, {"heads", 1, 0, 'k'},   {"intermediate", 1, 0, 'I'}, {"layers", 1, 0, 'L'},
		{"vocab", 1, 0, 'v'},  {"feat-dim", 1, 0, 'F'}, {"answers", 1, 0, 'A'},      {"with-heads", 1, 0, 'w'},
		{"seed", 1, 0, 's'},   {"inputs", 1, 0, 'n'},   {"tokens", 1, 0, 'T'},       {"boxes", 1, 0, 'N'},
		{0, 0, 0, 0},
	};
	lx_ckpt_config cc;
	lx_config *c = &cc.c;
	maker m;
	lx_err e;
	char path[4096];
	int ch, heads = LX_HEAD_QA, inputs = 0, T = 20, N = 36, i;
	uint64_t seed = 1;

	memset(&cc, 0, sizeof cc);
	memset(&m, 0, sizeof m);
	lx_config_parse(c, "{}", 2, "defaults", &e); /* LxmertConfig's defaults: lxmert-base */
	c->num_qa_labels = 3129;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': c->hidden_size = atoi(optarg); break;
		case 'k': c->num_attention_heads = atoi(optarg); break;
		case 'I': c->intermediate_size = atoi(optarg); break;
		case 'L': sscanf(optarg, "%d,%d,%d", &c->l_layers, &c->r_layers, &c->x_layers); break;
		case 'v': c->vocab_size = atoi(optarg); break;
		case 'F': c->visual_feat_dim = atoi(optarg); break;
		case 'A': c->num_qa_labels = atoi(optarg); break;
		case 'w': heads = heads_of(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'n': inputs = atoi(optarg); break;
		case 'T': T = atoi(optarg); break;
		case 'N': N = atoi(optarg); break;
		default: fprintf(stderr, "usage: mkmodel [options] OUTDIR (see bench/mkmodel.c)\n"); return 2;
		}
	}
	if (optind + 1 != argc || c->hidden_size % c->num_attention_heads) {
		fprintf(stderr, "usage: mkmodel [options] OUTDIR (hidden must be a multiple of heads)\n");
		return 2;
	}
	m.rng = seed;
	cc.heads_given = 1;
	cc.has_qa = !!(heads & LX_HEAD_QA);
	cc.has_match = !!(heads & LX_HEAD_MATCH);
	cc.has_mlm = !!(heads & LX_HEAD_MLM);
	cc.has_obj = !!(heads & LX_HEAD_OBJ);
	if (lx_model_tensors(c, heads, add, &m, &e) || m.rc) {
		fprintf(stderr, "mkmodel: out of memory\n");
		return 4;
	}
	mkdir(argv[optind], 0777);
	snprintf(path, sizeof path, "%s/model.safetensors", argv[optind]);
	if (lx_st_write(path, m.e, m.n, &e)) {
		fprintf(stderr, "mkmodel: %s\n", e.msg);
		return 4;
	}
	snprintf(path, sizeof path, "%s/config.json", argv[optind]);
	if (lx_ckpt_write_config(&cc, path, &e)) {
		fprintf(stderr, "mkmodel: %s\n", e.msg);
		return 4;
	}
	if (inputs > 0) {
		snprintf(path, sizeof path, "%s/inputs.mp", argv[optind]);
		if (write_inputs(path, c, inputs, T, N, &m.rng, &e)) {
			fprintf(stderr, "mkmodel: %s: cannot write\n", path);
			return 4;
		}
	}
	for (i = 0; i < m.n; i++) {
		free(m.data[i]);
		free((char *)m.e[i].name);
	}
	free(m.data);
	free(m.e);
	return 0;
}

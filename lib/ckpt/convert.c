/* convert.c - from the authors' state-dict names to Hugging Face's, and an LXMERT config from the tensors
 * (lx_ckpt.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_ckpt.h"

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

const char *lx_ckpt_hf_name(const char *key, char *buf, size_t n)
{
	static const struct { const char *from, *to; } map[] = {
		{"lxrt_encoder.model.bert.", "lxmert."}, /* fine-tuned task snapshots (BEST.pth) */
		{"lxrt_encoder.model.", ""},
		{"bert.", "lxmert."},                    /* pretraining snapshots (model_LXRT.pth) */
		{"logit_fc.", "answer_head.logit_fc."},
		{"embeddings.", "lxmert.embeddings."},   /* a bare LxmertModel */
		{"encoder.", "lxmert.encoder."},
		{"pooler.", "lxmert.pooler."},
	};
	char bare[1024], *m;
	size_t k;
	int w;

	/* nn.DataParallel's "module." wherever it wraps a part: at the start, or inside
	 * (lxrt_encoder.model.module.bert.* from the authors' multi-GPU fine-tuning) */
	while (starts(key, "module."))
		key += strlen("module.");
	w = snprintf(bare, sizeof bare, "%s", key);
	if (w < 0 || (size_t)w >= sizeof bare)
		return NULL;
	while ((m = strstr(bare, ".module.")) != NULL)
		memmove(m + 1, m + strlen(".module."), strlen(m + strlen(".module.")) + 1);
	key = bare;
	for (k = 0; k < sizeof map / sizeof *map; k++)
		if (starts(key, map[k].from)) {
			w = snprintf(buf, n, "%s%s", map[k].to, key + strlen(map[k].from));
			return w >= 0 && (size_t)w < n ? buf : NULL;
		}
	w = snprintf(buf, n, "%s", key);
	return w >= 0 && (size_t)w < n ? buf : NULL;
}

int lx_ckpt_nlvr2_rename(lx_st_entry *t, int n, char **names)
{
	static const char from[] = "answer_head.logit_fc.", to[] = "nlvr2_head.logit_fc.";
	int i, h = -1, nlvr2 = 0;

	for (i = 0; i < n; i++)
		if (!strcmp(t[i].name, "lxmert.embeddings.word_embeddings.weight") && t[i].src.ndim == 2)
			h = (int)t[i].src.shape[1];
	for (i = 0; i < n; i++)
		if (!strcmp(t[i].name, "answer_head.logit_fc.0.weight"))
			nlvr2 = h > 0 && t[i].src.ndim == 2 && t[i].src.shape[1] == 2 * h;
	for (i = 0; nlvr2 && i < n; i++)
		if (starts(names[i], from)) {
			memcpy(names[i], to, strlen(to));
			memmove(names[i] + strlen(to), names[i] + strlen(from), strlen(names[i] + strlen(from)) + 1);
		}
	return nlvr2;
}

int lx_ckpt_heads_held(const lx_st_entry *t, int n)
{
	static const struct { const char *prefix; int bit; } heads[] = {
		{"answer_head.", LX_HEAD_QA}, {"cls.seq_relationship.", LX_HEAD_MATCH}, {"cls.predictions.", LX_HEAD_MLM},
		{"obj_predict_head.", LX_HEAD_OBJ}, {"nlvr2_head.", LX_HEAD_NLVR2},
	};
	int i, bits = 0;
	size_t k;

	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof heads / sizeof *heads; k++)
			if (starts(t[i].name, heads[k].prefix))
				bits |= heads[k].bit;
	return bits;
}

/* ---- inferring the config ---- */

typedef struct {
	const lx_st_entry *t;
	int n;
	const char *path;
	lx_err *e;
} tensors;

static const lx_tensor *find(const tensors *T, const char *name)
{
	int i;

	for (i = 0; i < T->n; i++)
		if (!strcmp(T->t[i].name, name))
			return &T->t[i].src;
	return NULL;
}

/* Number of layers: 1 + the largest i of any "<prefix><i>." name; 0 if none. */
static int count_layers(const tensors *T, const char *prefix)
{
	size_t pl = strlen(prefix);
	long best = -1, v;
	char *end;
	int i;

	for (i = 0; i < T->n; i++) {
		const char *nm = T->t[i].name;
		if (strncmp(nm, prefix, pl) || nm[pl] < '0' || nm[pl] > '9')
			continue;
		errno = 0;
		v = strtol(nm + pl, &end, 10);
		if (*end == '.' && !errno && v < 100000 && v > best)
			best = v;
	}
	return (int)(best + 1);
}

/* The tensor called name, which must be 2-D, or 1-D if rows is NULL; dimensions must be positive and fit an int.
 * *rows and *cols get its shape. */
static lx_status need(const tensors *T, const char *name, int *rows, int *cols)
{
	const lx_tensor *t = find(T, name);
	int nd = rows ? 2 : 1;

	if (!t)
		return lx_errf(T->e, LX_EMODEL, "%s: tensor %s is missing: the config cannot be inferred without it",
		               T->path, name);
	if (t->ndim != nd || t->shape[0] <= 0 || t->shape[0] > 1 << 30 ||
	    (nd == 2 && (t->shape[1] <= 0 || t->shape[1] > 1 << 30)))
		return lx_errf(T->e, LX_EMODEL, "%s: tensor %s: %d dimensions, first %lld, expected %d positive "
		               "dimensions", T->path, name, t->ndim, t->ndim ? (long long)t->shape[0] : 0LL, nd);
	if (rows) {
		*rows = (int)t->shape[0];
		*cols = (int)t->shape[1];
	} else {
		*cols = (int)t->shape[0];
	}
	return LX_OK;
}

static lx_status mismatch(const tensors *T, const char *name, const char *dim, int found, const char *what,
                          int expected)
{
	return lx_errf(T->e, LX_EMODEL, "%s: tensor %s: %s is %d, expected %s %d", T->path, name, dim, found, what,
	               expected);
}

/* The part of the config the embeddings and the visual input give. */
static lx_status infer_embeddings(lx_config *c, const tensors *T)
{
	static const char *w = "lxmert.embeddings.word_embeddings.weight",
	                  *p = "lxmert.embeddings.position_embeddings.weight",
	                  *ty = "lxmert.embeddings.token_type_embeddings.weight",
	                  *vf = "lxmert.encoder.visn_fc.visn_fc.weight", *bf = "lxmert.encoder.visn_fc.box_fc.weight";
	lx_status st;
	int h;

	if ((st = need(T, w, &c->vocab_size, &c->hidden_size)) != LX_OK ||
	    (st = need(T, p, &c->max_position_embeddings, &h)) != LX_OK)
		return st;
	if (h != c->hidden_size)
		return mismatch(T, p, "dimension 1", h, "hidden_size", c->hidden_size);
	if ((st = need(T, ty, &c->type_vocab_size, &h)) != LX_OK)
		return st;
	if (h != c->hidden_size)
		return mismatch(T, ty, "dimension 1", h, "hidden_size", c->hidden_size);
	if ((st = need(T, vf, &h, &c->visual_feat_dim)) != LX_OK)
		return st;
	if (h != c->hidden_size)
		return mismatch(T, vf, "dimension 0", h, "hidden_size", c->hidden_size);
	if ((st = need(T, bf, &h, &c->visual_pos_dim)) != LX_OK)
		return st;
	if (h != c->hidden_size)
		return mismatch(T, bf, "dimension 0", h, "hidden_size", c->hidden_size);
	return LX_OK;
}

/* intermediate_size, from the first FFN there is. */
static lx_status infer_ffn(lx_config *c, const tensors *T)
{
	static const char *cand[] = {"lxmert.encoder.layer.0.intermediate.dense.weight",
	                             "lxmert.encoder.r_layers.0.intermediate.dense.weight",
	                             "lxmert.encoder.x_layers.0.lang_inter.dense.weight"};
	lx_status st;
	size_t k;
	int h;

	for (k = 0; k < sizeof cand / sizeof *cand; k++)
		if (find(T, cand[k])) {
			if ((st = need(T, cand[k], &c->intermediate_size, &h)) != LX_OK)
				return st;
			return h == c->hidden_size ? LX_OK : mismatch(T, cand[k], "dimension 1", h, "hidden_size",
			                                              c->hidden_size);
		}
	return lx_errf(T->e, LX_EMODEL, "%s: no encoder layer (no tensor %s): the config cannot be inferred", T->path,
	               cand[0]);
}

static lx_status infer_heads(lx_ckpt_config *cfg, const tensors *T)
{
	static const char *qa0 = "answer_head.logit_fc.0.weight", *qa3 = "answer_head.logit_fc.3.weight",
	                  *obj = "obj_predict_head.decoder_dict.obj.weight",
	                  *attr = "obj_predict_head.decoder_dict.attr.weight";
	lx_config *c = &cfg->c;
	lx_status st;
	int r, h;

	cfg->has_mlm = find(T, "cls.predictions.bias") != NULL;
	cfg->has_match = find(T, "cls.seq_relationship.weight") != NULL;
	cfg->has_qa = find(T, qa3) != NULL;
	cfg->has_obj = find(T, obj) != NULL;
	cfg->has_nlvr2 = find(T, "nlvr2_head.logit_fc.3.weight") != NULL;
	if (cfg->has_qa) {
		if ((st = need(T, qa0, &r, &h)) != LX_OK)
			return st;
		if (h != c->hidden_size)
			return lx_errf(T->e, LX_EMODEL, "%s: tensor %s: shape [%d, %d], expected [%d, %d]: an answer head "
			               "over %d inputs (NLVR2's two images?) is not LXMERT's QA head", T->path, qa0, r, h,
			               2 * c->hidden_size, c->hidden_size, h);
		if ((st = need(T, qa3, &c->num_qa_labels, &h)) != LX_OK)
			return st;
		if (h != r)
			return mismatch(T, qa3, "dimension 1", h, "the rows of answer_head.logit_fc.0.weight,", r);
	}
	if (cfg->has_obj) {
		if ((st = need(T, obj, &c->num_object_labels, &h)) != LX_OK)
			return st;
		if (find(T, attr) && (st = need(T, attr, &c->num_attr_labels, &h)) != LX_OK)
			return st;
	}
	return LX_OK;
}

lx_status lx_ckpt_infer_config(lx_ckpt_config *cfg, const lx_st_entry *t, int n, int heads, const char *path,
                               lx_err *e)
{
	tensors T = {t, n, path, e};
	lx_config *c = &cfg->c;
	lx_status st;

	memset(cfg, 0, sizeof *cfg);
	c->num_qa_labels = 9500;          /* LxmertConfig's defaults, for heads the file lacks */
	c->num_object_labels = 1600;
	c->num_attr_labels = 400;
	c->layer_norm_eps = 1e-12f;
	c->visual_loss_normalizer = 6.67f;
	if ((st = infer_embeddings(c, &T)) != LX_OK || (st = infer_ffn(c, &T)) != LX_OK ||
	    (st = infer_heads(cfg, &T)) != LX_OK)
		return st;
	c->l_layers = count_layers(&T, "lxmert.encoder.layer.");
	c->r_layers = count_layers(&T, "lxmert.encoder.r_layers.");
	c->x_layers = count_layers(&T, "lxmert.encoder.x_layers.");
	cfg->heads_given = heads > 0;
	if (heads <= 0) {
		if (c->hidden_size % 64)
			return lx_errf(e, LX_EMODEL, "%s: num_attention_heads cannot be read from the weights, and "
			               "hidden_size %d is not a multiple of BERT's head size 64: give it with --num-attention-heads N",
			               path, c->hidden_size);
		heads = c->hidden_size / 64;
	}
	if (c->hidden_size % heads)
		return lx_errf(e, LX_EMODEL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
		               c->hidden_size, heads);
	c->num_attention_heads = heads;
	return LX_OK;
}

/* ---- config.json ---- */

/* In the JSON text s, the value of key (a boolean) set to v when it is the other one; 1 if it changed.
 * The text is rewritten in place, keeping everything else byte for byte ("false" is one byte longer:
 * s has room for the growth, as the caller sizes it). */
static int set_flag(char *s, const char *key, int v)
{
	char quoted[64], *p;

	snprintf(quoted, sizeof quoted, "\"%s\"", key);
	if (!(p = strstr(s, quoted)))
		return 0;
	p += strlen(quoted);
	p += strspn(p, " \t\r\n");
	if (*p != ':')
		return 0;
	p++;
	p += strspn(p, " \t\r\n");
	if (v && !strncmp(p, "false", 5)) {
		memcpy(p, "true", 4);
		memmove(p + 4, p + 5, strlen(p + 5) + 1);
		return 1;
	}
	if (!v && !strncmp(p, "true", 4)) {
		memmove(p + 5, p + 4, strlen(p + 4) + 1);
		memcpy(p, "false", 5);
		return 1;
	}
	return 0;
}

lx_status lx_ckpt_config_flags(const char *src, const char *dst, int heads, int *changed, lx_err *e)
{
	static const struct { const char *key; int bit; } flags[] = {
		{"task_mask_lm", LX_HEAD_MLM}, {"task_matched", LX_HEAD_MATCH}, {"task_obj_predict", LX_HEAD_OBJ},
		{"task_qa", LX_HEAD_QA}, {"visual_attr_loss", LX_HEAD_OBJ}, {"visual_feat_loss", LX_HEAD_OBJ},
		{"visual_obj_loss", LX_HEAD_OBJ},
	};
	FILE *f = fopen(src, "rb");
	char *text;
	long len;
	size_t k;
	int bad;

	*changed = 0;
	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", src, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
	    !(text = malloc((size_t)len + sizeof flags / sizeof *flags + 1))) {
		fclose(f);
		return lx_errf(e, LX_EIO, "%s: %s", src, strerror(errno ? errno : ENOMEM));
	}
	bad = fread(text, 1, (size_t)len, f) != (size_t)len;
	fclose(f);
	if (bad) {
		free(text);
		return lx_errf(e, LX_EIO, "%s: read failed", src);
	}
	text[len] = 0;
	for (k = 0; k < sizeof flags / sizeof *flags; k++)
		*changed += set_flag(text, flags[k].key, (heads & flags[k].bit) != 0);
	if (!(f = fopen(dst, "wb"))) {
		free(text);
		return lx_errf(e, LX_EIO, "%s: %s", dst, strerror(errno));
	}
	bad = fwrite(text, 1, strlen(text), f) != strlen(text);
	free(text);
	bad |= fflush(f) || ferror(f) || fsync(fileno(f));
	if (fclose(f) || bad)
		return lx_errf(e, LX_EIO, "%s: %s", dst, strerror(errno));
	return LX_OK;
}

/* The shortest decimal that reads back as the same float (1e-12, 6.67, as Python writes them). */
static void fmt_real(char *buf, size_t n, float v)
{
	int p;

	for (p = 1; p <= 9; p++) {
		snprintf(buf, n, "%.*g", p, (double)v);
		if (strtof(buf, NULL) == v)
			break;
	}
	if (!strpbrk(buf, ".en"))
		strncat(buf, ".0", n - strlen(buf) - 1);
}

static lx_status write_config(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const lx_ckpt_config *cfg = ctx;
	const lx_config *c = &cfg->c;
	const char *arch = cfg->has_mlm || cfg->has_match || cfg->has_obj ? "LxmertForPreTraining" :
	                   cfg->has_qa ? "LxmertForQuestionAnswering" : "LxmertModel";
	const char *tf[2] = {"false", "true"};
	char eps[32], norm[32];

	fmt_real(eps, sizeof eps, c->layer_norm_eps);
	fmt_real(norm, sizeof norm, c->visual_loss_normalizer);
	fprintf(f, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n", arch);
	fprintf(f, "  \"attention_probs_dropout_prob\": 0.1,\n  \"hidden_act\": \"%s\",\n",
	        c->gelu_tanh ? "gelu_new" : "gelu");
	fprintf(f, "  \"hidden_dropout_prob\": 0.1,\n  \"hidden_size\": %d,\n", c->hidden_size);
	fprintf(f, "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n", c->intermediate_size);
	fprintf(f, "  \"l_layers\": %d,\n  \"layer_norm_eps\": %s,\n", c->l_layers, eps);
	fprintf(f, "  \"max_position_embeddings\": %d,\n  \"model_type\": \"lxmert\",\n", c->max_position_embeddings);
	fprintf(f, "  \"num_attention_heads\": %d,\n  \"num_attr_labels\": %d,\n", c->num_attention_heads,
	        c->num_attr_labels);
	fprintf(f, "  \"num_hidden_layers\": {\n    \"cross_encoder\": %d,\n    \"language\": %d,\n"
	        "    \"vision\": %d\n  },\n", c->x_layers, c->l_layers, c->r_layers);
	fprintf(f, "  \"num_object_labels\": %d,\n  \"num_qa_labels\": %d,\n", c->num_object_labels,
	        c->num_qa_labels);
	fprintf(f, "  \"output_attentions\": false,\n  \"output_hidden_states\": false,\n");
	fprintf(f, "  \"r_layers\": %d,\n", c->r_layers);
	fprintf(f, "  \"task_mask_lm\": %s,\n  \"task_matched\": %s,\n", tf[cfg->has_mlm], tf[cfg->has_match]);
	fprintf(f, "  \"task_obj_predict\": %s,\n  \"task_qa\": %s,\n", tf[cfg->has_obj], tf[cfg->has_qa]);
	fprintf(f, "  \"type_vocab_size\": %d,\n", c->type_vocab_size);
	fprintf(f, "  \"visual_attr_loss\": %s,\n  \"visual_feat_dim\": %d,\n", tf[cfg->has_obj], c->visual_feat_dim);
	fprintf(f, "  \"visual_feat_loss\": %s,\n  \"visual_loss_normalizer\": %s,\n", tf[cfg->has_obj], norm);
	fprintf(f, "  \"visual_obj_loss\": %s,\n  \"visual_pos_dim\": %d,\n", tf[cfg->has_obj], c->visual_pos_dim);
	fprintf(f, "  \"vocab_size\": %d,\n  \"x_layers\": %d\n}", c->vocab_size, c->x_layers);
	return LX_OK;
}

lx_status lx_ckpt_write_config(const lx_ckpt_config *cfg, const char *path, lx_err *e)
{
	return lx_write_atomic(path, write_config, (void *)cfg, e);
}

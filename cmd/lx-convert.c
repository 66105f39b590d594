/* lx-convert - a PyTorch LXMERT checkpoint to a model directory (model.safetensors, config.json, vocab.txt),
 * without Python; or --list the tensors of a checkpoint. See lx-convert(1). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lx.h"
#include "lx_ckpt.h"
#include "tool.h"

enum { O_CONFIG = 256, O_VOCAB, O_HEADS };

static const char synopsis[] = "[options] IN OUTDIR\n--list FILE";
static const char about[] =
	"Converts a PyTorch LXMERT checkpoint to a model directory: OUTDIR/model.safetensors (Hugging Face's\n"
	"tensor names) and OUTDIR/config.json, plus vocab.txt when one is given. IN is a pytorch_model.bin, one\n"
	"of the authors' .pth files, or a directory holding pytorch_model.bin (its config.json and vocab.txt\n"
	"are copied; without a config.json one is inferred from the tensors). No Python code runs: the pickle is\n"
	"read, never executed, and only the globals a state dict needs are accepted.";

static const tool_option option_table[] = {
	{'t', "dtype", "f32|f16|bf16|int8", "dtype of the floats written (default: as stored); int8: the linear weights"},
	{O_CONFIG, "config", "FILE", "copy this config.json instead of IN's or an inferred one"},
	{O_VOCAB, "vocab", "FILE", "copy this vocab.txt into OUTDIR"},
	{O_HEADS, "num-attention-heads", "N", "heads of an inferred config (default: hidden_size / 64)"},
	{'f', "force", NULL, "replace OUTDIR if it exists"},
	{'l', "list", NULL, "print the tensors of FILE (name, dtype, shape), one a line"},
	{'q', "quiet", NULL, "no summary on stderr"},
	TOOL_OPT_END,
};
static const tool_info info = {"lx-convert", synopsis, about, option_table};


typedef struct {
	const char *in, *out, *config, *vocab;
	int dtype;              /* -1: as stored */
	int heads, force, quiet;
} opts;

/* The temporary directory and the files in it, removed if the run stops half-way. */
static char tmp_dir[PATH_MAX], tmp_files[3][PATH_MAX + 32];

static void cleanup_tmp(void)
{
	int k;

	for (k = 0; k < 3; k++)
		if (tmp_files[k][0])
			unlink(tmp_files[k]);
	if (tmp_dir[0])
		rmdir(tmp_dir);
}

/* A failure the library described: its message, its status. */
static int fail(const lx_err *e) { return tool_fail(e->status, "%s", e->msg); }

/* ---- --list ---- */

static void list_line(const char *name, const lx_tensor *t)
{
	int k;

	printf("%s\t%s\t[", name, lx_dtype_safetensors(t->dtype));
	for (k = 0; k < t->ndim; k++)
		printf("%s%lld", k ? ", " : "", (long long)t->shape[k]);
	printf("]\n");
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int list(const char *path)
{
	lx_ckpt *c;
	lx_st *st;
	lx_tensor t;
	lx_err e;
	int i;

	if (has_suffix(path, ".safetensors")) {
		if (lx_st_open(&st, path, &e) != LX_OK)
			return fail(&e);
		for (i = 0; i < lx_st_count(st); i++) {
			const char *name = lx_st_name(st, i, &t);
			list_line(name, &t);
		}
		lx_st_free(st);
	} else {
		if (lx_ckpt_open(&c, path, &e) != LX_OK)
			return fail(&e);
		for (i = 0; i < lx_ckpt_count(c); i++) {
			const char *name = lx_ckpt_name(c, i, &t);
			list_line(name, &t);
		}
		lx_ckpt_free(c);
	}
	if (fflush(stdout) || ferror(stdout) || fclose(stdout))
		return tool_fail(LX_EIO, "stdout: write failed:");
	return LX_OK;
}

/* ---- files ---- */

static int copy_file(const char *src, const char *dst)
{
	char buf[65536];
	FILE *in = fopen(src, "rb"), *out;
	size_t n;
	int bad = 0;

	if (!in) /* an input that cannot be used: status 3, as in every tool */
		return tool_fail(LX_EMODEL, "%s: %s", src, strerror(errno));
	if (!(out = fopen(dst, "wb"))) {
		fclose(in);
		return tool_fail(LX_EIO, "%s: %s", dst, strerror(errno));
	}
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n) {
			bad = 1;
			break;
		}
	if (ferror(in)) {
		fclose(in);
		fclose(out);
		return tool_fail(LX_EIO, "%s: %s", src, strerror(errno));
	}
	fclose(in);
	if (bad | fflush(out) | fsync(fileno(out)) | fclose(out))
		return tool_fail(LX_EIO, "%s: %s", dst, strerror(errno));
	return LX_OK;
}

static int is_dir(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *p)
{
	struct stat sb;

	return lstat(p, &sb) == 0;
}

/* An OUTDIR that --force may replace: a directory of regular files only (a model directory). */
static int check_outdir(const opts *o)
{
	struct dirent *d;
	struct stat sb;
	char p[PATH_MAX + 256];
	DIR *dir;

	if (!exists(o->out))
		return LX_OK;
	if (!o->force)
		return tool_fail(LX_EUSAGE, "%s: exists (use --force to replace it)", o->out);
	if (!is_dir(o->out))
		return tool_fail(LX_EUSAGE, "%s: exists and is not a directory; not replacing it", o->out);
	if (!(dir = opendir(o->out)))
		return tool_fail(LX_EIO, "%s: %s", o->out, strerror(errno));
	while ((d = readdir(dir)) != NULL) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", o->out, d->d_name);
		if (lstat(p, &sb) || !S_ISREG(sb.st_mode)) {
			int rc = tool_fail(LX_EUSAGE, "%s: holds %s, which is not a regular file; not replacing it", o->out,
			             d->d_name); /* before closedir, which frees d */
			closedir(dir);
			return rc;
		}
	}
	closedir(dir);
	return LX_OK;
}

/* Whether path lies inside dir (or is dir), comparing real paths; dir that does not exist holds nothing. */
static int inside(const char *path, const char *dir)
{
	char rp[PATH_MAX], rd[PATH_MAX];
	size_t n;

	if (!path || !realpath(path, rp) || !realpath(dir, rd))
		return 0;
	n = strlen(rd);
	return !strncmp(rp, rd, n) && (rp[n] == '/' || rp[n] == 0 || n == 1);
}

/* Refuses an input that replacing OUTDIR would delete: IN, --config, --vocab. */
static int check_inputs(const opts *o)
{
	const char *in[] = {o->in, o->config, o->vocab};
	const char *what[] = {"IN", "--config", "--vocab"};
	int k;

	for (k = 0; k < 3; k++)
		if (inside(in[k], o->out))
			return tool_fail(LX_EUSAGE, "%s (%s) lies inside OUTDIR %s, which the conversion would replace: "
			                 "write the model directory elsewhere", in[k], what[k], o->out);
	return LX_OK;
}

/* Moves the finished temporary directory to OUTDIR: only if nothing is there at that moment, or, with
 * --force, swapped with what is there in one step. */
static int install(const opts *o)
{
	lx_err e;

	if (lx_dir_publish(tmp_dir, o->out, o->force, &e) != LX_OK) {
		if (e.status == LX_EUSAGE)
			return tool_fail(LX_EUSAGE, "%s: appeared while converting; not replacing it (use --force to replace "
			                 "it)", o->out);
		return fail(&e);
	}
	tmp_dir[0] = 0;
	memset(tmp_files, 0, sizeof tmp_files);
	return LX_OK;
}

/* Makes the temporary directory beside OUTDIR. */
static int make_tmp(const opts *o)
{
	lx_err e;

	return lx_dir_aside(o->out, tmp_dir, sizeof tmp_dir, &e) != LX_OK ? fail(&e) : LX_OK;
}

/* ---- the tensors to write ---- */

typedef struct {
	lx_st_entry *ents;       /* [n], sorted by name */
	const char **keys;       /* [n] the names in the checkpoint */
	char **hf;               /* the HF names, owned */
	int n, nhf;
	int64_t params;
	uint64_t bytes;
} plan;

static int known_prefix(const char *s)
{
	return !strncmp(s, "lxmert.", 7) || !strncmp(s, "cls.", 4) || !strncmp(s, "obj_predict_head.", 17) ||
	       !strncmp(s, "answer_head.", 12) || !strncmp(s, "nlvr2_head.", 11);
}

static int has_encoder(const plan *P)
{
	int i;

	for (i = 0; i < P->n; i++)
		if (!strncmp(P->ents[i].name, "lxmert.", 7))
			return 1;
	return 0;
}

static int find_ent(const plan *P, const char *name)
{
	int i;

	for (i = 0; i < P->n; i++)
		if (!strcmp(P->ents[i].name, name))
			return i;
	return -1;
}

static void drop(plan *P, int i)
{
	memmove(&P->ents[i], &P->ents[i + 1], (size_t)(P->n - i - 1) * sizeof *P->ents);
	memmove(&P->keys[i], &P->keys[i + 1], (size_t)(P->n - i - 1) * sizeof *P->keys);
	P->n--;
}

/* Leaves out cls.predictions.decoder.weight when it equals the word embeddings, as HF does. */
static void drop_tied_decoder(plan *P)
{
	int d = find_ent(P, "cls.predictions.decoder.weight");
	int w = find_ent(P, "lxmert.embeddings.word_embeddings.weight");
	const lx_tensor *a, *b;

	if (d < 0 || w < 0)
		return;
	a = &P->ents[d].src;
	b = &P->ents[w].src;
	if (a->dtype == b->dtype && a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof a->shape) &&
	    !memcmp(a->data, b->data, (size_t)a->numel * lx_dtype_size(a->dtype)))
		drop(P, d);
}

static const plan *sort_ctx; /* for by_index: qsort has no context argument */

static int by_index(const void *a, const void *b)
{
	return strcmp(sort_ctx->ents[*(const int *)a].name, sort_ctx->ents[*(const int *)b].name);
}

/* Sorts the entries by name, keeping keys alongside. */
static int sort_plan(plan *P)
{
	lx_st_entry *e2 = malloc((size_t)P->n * sizeof *e2 + 1);
	const char **k2 = malloc((size_t)P->n * sizeof *k2 + 1);
	int *idx = malloc((size_t)P->n * sizeof *idx + 1), i;

	if (!e2 || !k2 || !idx) {
		free(e2);
		free(k2);
		free(idx);
		return -1;
	}
	for (i = 0; i < P->n; i++)
		idx[i] = i;
	sort_ctx = P;
	qsort(idx, (size_t)P->n, sizeof *idx, by_index);
	for (i = 0; i < P->n; i++) {
		e2[i] = P->ents[idx[i]];
		k2[i] = P->keys[idx[i]];
	}
	free(P->ents);
	free(P->keys);
	free(idx);
	P->ents = e2;
	P->keys = k2;
	return 0;
}

/* HF names for every tensor; unknown ones are left out with a note, a name reached twice is an error. */
static int make_plan(plan *P, lx_ckpt *c, const char *path, int dtype, int quiet)
{
	char buf[1024];
	const char *first_out = NULL;
	int i, k, n = lx_ckpt_count(c), left_out = 0;

	P->ents = calloc((size_t)n + 1, sizeof *P->ents);
	P->keys = calloc((size_t)n + 1, sizeof *P->keys);
	P->hf = calloc((size_t)n + 1, sizeof *P->hf);
	if (!P->ents || !P->keys || !P->hf)
		return tool_fail(LX_EIO, "%s: out of memory", path);
	for (i = 0; i < n; i++) {
		lx_st_entry *en = &P->ents[P->n];
		const char *key = lx_ckpt_name(c, i, &en->src), *hf = lx_ckpt_hf_name(key, buf, sizeof buf);
		if (!hf || !known_prefix(hf)) {
			tool_warn("%s: tensor %s: not part of LXMERT, left out", path, key);
			if (!left_out++)
				first_out = key;
			continue;
		}
		if (!(P->hf[P->nhf] = strdup(hf)))
			return tool_fail(LX_EIO, "%s: out of memory", path);
		en->name = P->hf[P->nhf++];
		en->dtype = dtype >= 0 && lx_dtype_is_float(en->src.dtype) ? (lx_dtype)dtype : en->src.dtype;
		P->keys[P->n++] = key;
	}
	if (P->n == 0)
		return tool_fail(LX_EMODEL, "%s: no LXMERT tensors in the checkpoint", path);
	if (!has_encoder(P))
		return left_out ? tool_fail(LX_EMODEL, "%s: no tensor of LXMERT's encoder (lxmert.*, the authors' bert.*) "
		                            "among the names: %d tensors left out (the first: %s); refusing a model without "
		                            "its encoder", path, left_out, first_out)
		                : tool_fail(LX_EMODEL, "%s: no tensor of LXMERT's encoder (lxmert.*, the authors' bert.*): "
		                            "refusing a model of heads alone", path);
	if (lx_ckpt_nlvr2_rename(P->ents, P->n, P->hf) && !quiet)
		tool_warn("%s: logit_fc over two pooled outputs: the authors' NLVR2 classifier, kept as "
		          "nlvr2_head.logit_fc.*", path);
	if (sort_plan(P))
		return tool_fail(LX_EIO, "%s: out of memory", path);
	for (k = 1; k < P->n; k++)
		if (!strcmp(P->ents[k - 1].name, P->ents[k].name))
			return tool_fail(LX_EMODEL, "%s: tensor %s: two tensors of the checkpoint map to this name (%s and %s)",
			           path, P->ents[k].name, P->keys[k - 1], P->keys[k]);
	drop_tied_decoder(P);
	for (k = 0; k < P->n; k++) {
		P->params += P->ents[k].src.numel;
		P->bytes += (uint64_t)P->ents[k].src.numel * lx_dtype_size(P->ents[k].dtype);
	}
	return LX_OK;
}

static void plan_free(plan *P)
{
	int i;

	for (i = 0; i < P->nhf; i++)
		free(P->hf[i]);
	free(P->hf);
	free(P->keys);
	free(P->ents);
}

/* ---- the config ---- */

static void say_inferred(const lx_ckpt_config *cfg, const char *path)
{
	const lx_config *c = &cfg->c;

	fprintf(stderr, "%s: %s: no config.json: inferred from the tensors: vocab_size %d, hidden_size %d, "
	        "intermediate_size %d, layers language %d vision %d cross_encoder %d, max_position_embeddings %d, "
	        "type_vocab_size %d, visual_feat_dim %d, visual_pos_dim %d", tool_name, path, c->vocab_size, c->hidden_size,
	        c->intermediate_size, c->l_layers, c->r_layers, c->x_layers, c->max_position_embeddings,
	        c->type_vocab_size, c->visual_feat_dim, c->visual_pos_dim);
	fprintf(stderr, cfg->has_qa ? ", num_qa_labels %d" : "; num_qa_labels %d (no answer head: the default)",
	        c->num_qa_labels);
	if (cfg->has_obj)
		fprintf(stderr, ", num_object_labels %d, num_attr_labels %d", c->num_object_labels, c->num_attr_labels);
	else
		fprintf(stderr, "; num_object_labels %d, num_attr_labels %d (no object head: the defaults)",
		        c->num_object_labels, c->num_attr_labels);
	fprintf(stderr, "; num_attention_heads %d (%s); hidden_act gelu, layer_norm_eps 1e-12 (LXMERT's)\n",
	        c->num_attention_heads, cfg->heads_given ? "given" : "hidden_size / 64");
}

static int check_json(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	int ok = j && json_is_object(j);

	json_decref(j);
	if (!j)
		return tool_fail(LX_EMODEL, "%s: line %d: %s (expected a JSON object)", path, je.line, je.text);
	return ok ? LX_OK : tool_fail(LX_EMODEL, "%s: not a JSON object", path);
}

/* ---- converting ---- */

/* The LXMERT demo's detector: its tensors under their own names, and IN's config.yaml copied. */
static int convert_detector(const opts *o, const lx_ckpt *c, const char *weights)
{
	lx_st_entry *t;
	lx_err e;
	int n, st;

	snprintf(tmp_files[1], sizeof tmp_files[1], "%s/config.yaml", o->in);
	if (!is_dir(o->in) || !exists(tmp_files[1]))
		return tool_fail(LX_EMODEL, "%s: a detector: give the directory that holds it and its config.yaml", weights);
	tmp_files[1][0] = 0;
	if (lx_ckpt_detector_entries(c, &t, &n, weights, &e) != LX_OK)
		return fail(&e);
	if ((st = make_tmp(o)) == LX_OK) {
		snprintf(tmp_files[0], sizeof tmp_files[0], "%s/model.safetensors", tmp_dir);
		snprintf(tmp_files[1], sizeof tmp_files[1], "%s/config.yaml", tmp_dir);
		char yaml[PATH_MAX + 16];
		snprintf(yaml, sizeof yaml, "%s/config.yaml", o->in);
		if (lx_st_write(tmp_files[0], t, n, &e) != LX_OK)
			st = fail(&e);
		else if ((st = copy_file(yaml, tmp_files[1])) == LX_OK && (st = install(o)) == LX_OK && !o->quiet)
			tool_warn("%s: a detector, %d tensors", o->out, n);
	}
	free(t);
	return st;
}

static int write_all(const opts *o, const plan *P, const lx_ckpt_config *cfg)
{
	lx_err e;
	int st;

	snprintf(tmp_files[0], sizeof tmp_files[0], "%s/model.safetensors", tmp_dir);
	if (o->dtype == LX_I8) { /* the linear weights quantized, the other tensors as stored */
		lx_ckpt_int8 *k;
		const lx_st_entry *ents;
		int n;
		if (lx_ckpt_int8_make(&k, P->ents, P->n, &e) != LX_OK)
			return fail(&e);
		ents = lx_ckpt_int8_entries(k, &n);
		st = lx_st_write(tmp_files[0], ents, n, &e);
		lx_ckpt_int8_free(k);
		if (st != LX_OK)
			return fail(&e);
	} else if (lx_st_write(tmp_files[0], P->ents, P->n, &e) != LX_OK)
		return fail(&e);
	snprintf(tmp_files[1], sizeof tmp_files[1], "%s/config.json", tmp_dir);
	if (o->config) {
		int changed;
		if (lx_ckpt_config_flags(o->config, tmp_files[1], lx_ckpt_heads_held(P->ents, P->n), &changed, &e))
			return fail(&e);
		if (changed && !o->quiet)
			tool_warn("%s: %d task flags set to the heads the checkpoint holds", o->config, changed);
	} else if (lx_ckpt_write_config(cfg, tmp_files[1], &e) != LX_OK) {
		return fail(&e);
	}
	if (o->vocab) {
		snprintf(tmp_files[2], sizeof tmp_files[2], "%s/vocab.txt", tmp_dir);
		if ((st = copy_file(o->vocab, tmp_files[2])) != LX_OK)
			return st;
	}
	return install(o);
}

static int convert(opts *o)
{
	static char weights[PATH_MAX], cfg_path[PATH_MAX], vocab_path[PATH_MAX];
	lx_ckpt_config cfg;
	lx_ckpt *c = NULL;
	lx_lock *lock = NULL;
	plan P = {0};
	lx_err e;
	int st;

	snprintf(weights, sizeof weights, "%s", o->in);
	if (is_dir(o->in)) {
		snprintf(weights, sizeof weights, "%s/pytorch_model.bin", o->in);
		if (!exists(weights))
			return tool_fail(LX_EMODEL, "%s: no pytorch_model.bin in this directory", o->in);
		snprintf(cfg_path, sizeof cfg_path, "%s/config.json", o->in);
		if (!o->config && exists(cfg_path))
			o->config = cfg_path;
		snprintf(vocab_path, sizeof vocab_path, "%s/vocab.txt", o->in);
		if (!o->vocab && exists(vocab_path))
			o->vocab = vocab_path;
	}
	if ((st = check_inputs(o)) != LX_OK)
		return st;
	/* one conversion into OUTDIR at a time; what a killed one left beside it goes */
	if (lx_lock_take(o->out, &lock, &e) != LX_OK)
		return fail(&e);
	if (lx_clean_stale(o->out, &e) != LX_OK)
		tool_warn("%s", e.msg);
	if ((st = check_outdir(o)) != LX_OK)
		goto done;
	if (o->config && (st = check_json(o->config)) != LX_OK)
		goto done;
	if (lx_ckpt_open(&c, weights, &e) != LX_OK) {
		st = fail(&e);
		goto done;
	}
	if (lx_ckpt_is_detector(c)) {
		st = convert_detector(o, c, weights);
		goto done;
	}
	if ((st = make_plan(&P, c, weights, o->dtype == LX_I8 ? -1 : o->dtype, o->quiet)) != LX_OK)
		goto done;
	if (!o->config) {
		if (lx_ckpt_infer_config(&cfg, P.ents, P.n, o->heads, weights, &e) != LX_OK) {
			st = fail(&e);
			goto done;
		}
		say_inferred(&cfg, weights);
	}
	if ((st = make_tmp(o)) != LX_OK)
		goto done;
	if ((st = write_all(o, &P, &cfg)) != LX_OK)
		goto done;
	if (!o->quiet)
		tool_warn("%s: %d tensors, %lld parameters, %llu bytes of data", o->out, P.n, (long long)P.params,
		          (unsigned long long)P.bytes);
done:
	if (st != LX_OK)
		cleanup_tmp();
	plan_free(&P);
	lx_ckpt_free(c);
	lx_lock_release(lock);
	return st;
}

int main(int argc, char **argv)
{
	static const char *const dtypes[] = {"f32", "f16", "bf16", "float32", "float16", "bfloat16", "int8", NULL};
	static const int dtype_of[] = {LX_F32, LX_F16, LX_BF16, LX_F32, LX_F16, LX_BF16, LX_I8};
	opts o = {0};
	int ch, do_list = 0;

	o.dtype = -1;
	while ((ch = tool_options(&info, argc, argv)) != -1) {
		switch (ch) {
		case 't': o.dtype = dtype_of[tool_choice(optarg, "--dtype", dtypes)]; break;
		case O_CONFIG: o.config = optarg; break;
		case O_VOCAB: o.vocab = optarg; break;
		case O_HEADS: o.heads = (int)tool_long(optarg, "--num-attention-heads", 1, 4096); break;
		case 'f': o.force = 1; break;
		case 'l': do_list = 1; break;
		case 'q': o.quiet = 1; break;
		}
	}
	if (do_list) {
		if (argc - optind != 1)
			tool_usage("--list takes one FILE");
		return list(argv[optind]);
	}
	if (argc - optind != 2)
		tool_usage("expected IN and OUTDIR");
	o.in = argv[optind];
	o.out = argv[optind + 1];
	tool_signals(cleanup_tmp); /* a half-written OUTDIR is worth nothing: removed, status 5 */
	return convert(&o);
}

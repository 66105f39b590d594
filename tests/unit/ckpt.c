/* Unit tests of the checkpoint reader: name mapping, the pickle interpreter on hand-made pickles, and a
 * deterministic sweep of truncated and mutated checkpoints that must each end in a clean error or a
 * result whose tensors lie inside the file. Run from the top of the tree (make check). */
#include <stdlib.h>
#include <string.h>

#include "lx_ckpt.h"
#include "ckpt/torch.h"
#include "fmt/pickle.h"
#include "fmt/zip.h"
#include "check.h"

static void test_names(void)
{
	static const char *cases[][2] = {
		{"module.bert.encoder.layer.0.output.dense.weight", "lxmert.encoder.layer.0.output.dense.weight"},
		{"bert.embeddings.word_embeddings.weight", "lxmert.embeddings.word_embeddings.weight"},
		{"module.lxrt_encoder.model.bert.pooler.dense.bias", "lxmert.pooler.dense.bias"},
		{"logit_fc.3.weight", "answer_head.logit_fc.3.weight"},
		{"module.cls.predictions.bias", "cls.predictions.bias"},
		{"embeddings.LayerNorm.weight", "lxmert.embeddings.LayerNorm.weight"},
		{"lxmert.encoder.x_layers.0.visn_inter.dense.bias", "lxmert.encoder.x_layers.0.visn_inter.dense.bias"},
		{"answer_head.logit_fc.0.weight", "answer_head.logit_fc.0.weight"},
		{"module.module.obj_predict_head.transform.dense.bias", "obj_predict_head.transform.dense.bias"},
	};
	char buf[128], small[8];
	size_t k;

	for (k = 0; k < sizeof cases / sizeof *cases; k++) {
		const char *got = lx_ckpt_hf_name(cases[k][0], buf, sizeof buf);
		CHECKF(got && !strcmp(got, cases[k][1]), "hf_name(%s) = %s, expected %s", cases[k][0],
		       got ? got : "NULL", cases[k][1]);
	}
	CHECKF(!lx_ckpt_hf_name("bert.pooler.dense.bias", small, sizeof small), "a name that does not fit");
}

/* Runs a pickle; returns its status and, through *msg, the error. */
static lx_status run(const char *bytes, size_t n, lx_pk **root, char *msg)
{
	ckpt_storages s = {0};
	lx_pickle *p = ckpt_torch_pickle(&s);
	lx_err e = {0};
	size_t used;
	lx_status st = lx_pickle_load(p, (const unsigned char *)bytes, n, "t.pkl", root, &used, &e);

	strcpy(msg, st ? e.msg : "");
	lx_pickle_free(p);
	free(s.v);
	return st;
}

static void expect_error(const char *bytes, size_t n, const char *want)
{
	char msg[512];
	lx_pk *root;
	lx_status st = run(bytes, n, &root, msg);

	CHECKF(st == LX_EMODEL && !strcmp(msg, want), "pickle gave status %d \"%s\", expected \"%s\"", st, msg, want);
}

static void test_pickle(void)
{
	/* {'a': ((1, -2, 'xy'),)} with a memo round trip: PROTO 2, }, q0, (, X'a', (, K1, J-2, q1, h1, 0 (pop),
	 * U'xy', t, TUPLE1, u, . */
	static const char ok[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "a(K\x01J\xfe\xff\xff\xffq\x01h\x01" "0U\x02xyt"
	                         "\x85u.";
	ckpt_storages s = {0};
	lx_pickle *p = ckpt_torch_pickle(&s);
	lx_err e = {0};
	lx_pk *root, *v;
	size_t used;
	char deep[200003], msg[512];
	int i;

	CHECKF(lx_pickle_load(p, (const unsigned char *)ok, sizeof ok - 1, "t.pkl", &root, &used, &e) == LX_OK,
	      "valid pickle refused: %s", e.msg);
	if (root) {
		CHECKF(used == sizeof ok - 1, "used %zu of %zu bytes", used, sizeof ok - 1);
		v = lx_pk_get(root, "a");
		CHECKF(v && v->type == LX_PK_TUPLE && v->n == 1 && v->items[0]->type == LX_PK_TUPLE, "dict value");
		if (v && v->n == 1 && v->items[0]->n == 3) {
			v = v->items[0];
			CHECKF(v->items[0]->i == 1 && v->items[1]->i == -2 && !strcmp(v->items[2]->s, "xy"),
			      "tuple items %lld %lld", (long long)v->items[0]->i, (long long)v->items[1]->i);
		}
	}
	lx_pickle_free(p);
	free(s.v);

	expect_error("\x80\x02", 2, "t.pkl: pickle offset 2: the pickle ends without a STOP opcode: truncated?");
	expect_error("\x80\x02X\xff\x00\x00\x00ab.", 10, "t.pkl: pickle offset 2: string runs past the end of the pickle");
	expect_error("\x80\x02h\x05.", 5, "t.pkl: pickle offset 2: memo fetch of an index never stored");
	expect_error("\x80\x02Nr\xff\xff\xff\x7f.", 9,
	             "t.pkl: pickle offset 3: memo index 2147483647 past the limit of 65540 for a pickle of this size");
	expect_error("\x80\x02(0.", 5, "t.pkl: pickle offset 3: POP on an empty stack");
	expect_error("\x80\x02N\x81.", 5, "t.pkl: pickle offset 3: opcode 0x81 is not allowed in a state dict (only data "
	             "opcodes are read)");
	expect_error("\x80\x02" "cbuiltins\nexec\n.", 17, "t.pkl: pickle offset 2: global builtins.exec is not allowed (a "
	             "state dict needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage); "
	             "refusing the file");
	expect_error("\x80\x02" "ctorch\nload\n.", 15, "t.pkl: pickle offset 2: global torch.load is not allowed (a "
	             "state dict needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage); "
	             "refusing the file");
	expect_error("\x80\x02" "ctorch\nFloatStorage\n)R.", 25, "t.pkl: pickle offset 23: a torch.*Storage type cannot "
	             "be called");
	expect_error("\x80\x02NN.", 5, "t.pkl: pickle offset 4: STOP with other than one value on the stack");
	/* 200000 nested marks and lists: no recursion, so no stack overflow, only a clean error or result */
	deep[0] = (char)0x80;
	deep[1] = 2;
	for (i = 0; i < 100000; i++) {
		deep[2 + 2 * i] = '(';
		deep[3 + 2 * i] = ']';
	}
	deep[200002] = '.';
	CHECKF(run(deep, sizeof deep, &root, msg) == LX_EMODEL, "deep marks accepted");
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	b = malloc((size_t)len);
	if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*n = (size_t)len;
	return b;
}

/* Opens buf[0..n): an error must carry a message, a success tensors inside buf or owned copies. */
static int probe(const unsigned char *buf, size_t n, const char *what, size_t at)
{
	lx_ckpt *c;
	lx_err e = {0};
	lx_tensor t;
	int i, ok = 1;

	if (lx_ckpt_open_mem(&c, buf, n, "f", &e) != LX_OK) {
		if (strncmp(e.msg, "f: ", 3) && strncmp(e.msg, "f (", 3)) {
			CHECKF(0, "%s at %zu: error without a proper message: \"%s\"", what, at, e.msg);
			return 0;
		}
		return 1;
	}
	for (i = 0; i < lx_ckpt_count(c); i++) {
		const unsigned char *d;
		lx_ckpt_name(c, i, &t);
		d = t.data;
		if (t.numel && d >= buf && d < buf + n && (size_t)(d - buf) + (size_t)t.numel * lx_dtype_size(t.dtype) > n)
			ok = 0;
	}
	CHECKF(ok, "%s at %zu: a tensor runs past the buffer", what, at);
	lx_ckpt_free(c);
	return ok;
}

static void sweep(const char *path)
{
	size_t n, k, step, i;
	unsigned char *orig = slurp(path, &n), *b;
	unsigned long seed = 12345;

	CHECKF(orig != NULL, "%s: cannot read (run from the top of the tree)", path);
	if (!orig)
		return;
	CHECKF(probe(orig, n, "whole file", n), "%s: the whole file", path);
	b = malloc(n);
	step = n / 800 + 1;
	for (k = 0; k < n; k += (k < 600 || n - k < 600) ? 1 : step) {
		memcpy(b, orig, k); /* a fresh copy of exactly k bytes, so that reads past it are caught by ASan */
		probe(b, k, "truncation", k);
	}
	for (i = 0; i < 2500; i++) {
		size_t pos;
		memcpy(b, orig, n);
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		pos = (size_t)(seed >> 33) % n;
		b[pos] ^= (unsigned char)(1u << ((seed >> 20) & 7));
		if (i % 4 == 0) /* also a random byte value elsewhere */
			b[(size_t)(seed >> 13) % n] = (unsigned char)(seed >> 40);
		probe(b, n, "mutation", pos);
	}
	free(b);
	free(orig);
}

int main(void)
{
	test_names();
	test_pickle();
	sweep("tests/fixtures/micro/pytorch_model.bin");
	sweep("tests/fixtures/micro/pytorch_model_legacy.bin");
	sweep("tests/fixtures/micro/lxrt_original.pth");
	return check_done("ckpt");
}

/* Unit tests of what every tool decodes from records and writes as JSON: lx_example_decode, lx_labels_decode,
 * lx_soft_label, lx_names_load_model and the JSON writer, on records made by hand, against values worked
 * out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx.h"
#include "lx_heads.h"
#include "check.h"

/* Runs `body` with f a memory stream, then closes it: out holds what was written. */
#define CAPTURE(out, body)                                    \
	do {                                                      \
		size_t len_;                                          \
		FILE *f = open_memstream(&(out), &len_);              \
		body;                                                 \
		fclose(f);                                            \
	} while (0)

static void json(void)
{
	char buf[8], *out = NULL;
	lx_record *rec = lx_record_new();
	int32_t x[4] = {1, 2, 3, 4};
	int64_t shape[2] = {2, 2};
	lx_json *j = lx_json_new();
	lx_err e;

	CHECK(strcmp(lx_json_escape('"', 0, buf), "\\\"") == 0);
	CHECK(strcmp(lx_json_escape('\\', 0, buf), "\\\\") == 0);
	CHECK(strcmp(lx_json_escape('\n', 0, buf), "\\u000a") == 0);
	CHECK(strcmp(lx_json_escape('\n', LX_JSON_SHORT, buf), "\\n") == 0);
	CHECK(strcmp(lx_json_escape(0x1f, LX_JSON_SHORT, buf), "\\u001f") == 0);
	CHECK(lx_json_escape('<', 0, buf) == NULL);
	CHECK(strcmp(lx_json_escape('<', LX_JSON_SCRIPT, buf), "\\u003c") == 0);
	CHECK(strcmp(lx_json_escape('&', LX_JSON_SCRIPT, buf), "\\u0026") == 0);
	CHECK(lx_json_escape('/', LX_JSON_SCRIPT | LX_JSON_SHORT, buf) == NULL);
	CHECK(lx_json_escape(0xc3, LX_JSON_SCRIPT, buf) == NULL); /* UTF-8 passes */

	CAPTURE(out, lx_json_str(f, "a\"b\t<\xc3\xa9", 7, LX_JSON_SHORT));
	CHECK(strcmp(out, "\"a\\\"b\\t<\xc3\xa9\"") == 0);
	free(out);
	CAPTURE(out, lx_json_str(f, "a\tb<", 4, LX_JSON_SCRIPT));
	CHECK(strcmp(out, "\"a\\u0009b\\u003c\"") == 0);
	free(out);
	/* 1/3 needs 16 digits to read back as the same double, 0.1f only 1 as a float */
	CAPTURE(out, (lx_json_num(f, 1.0 / 3, 0), fputc(' ', f), lx_json_num(f, 0.1f, 1), fputc(' ', f),
	              lx_json_num(f, NAN, 0)));
	CHECK(strcmp(out, "0.3333333333333333 0.1 null") == 0);
	free(out);

	CHECK(j != NULL);
	CHECK(lx_record_add_str(rec, "sent", "a\tb", 3) == LX_OK);
	CHECK(lx_record_add_int(rec, "question_id", 7) == LX_OK);
	CHECK(lx_record_add_tensor(rec, "x", LX_I32, 2, shape, x) == LX_OK);
	CHECK(lx_record_add_float(rec, "f", 0.25) == LX_OK);
	CAPTURE(out, CHECK(lx_json_record(j, f, rec, 0, &e) == LX_OK));
	CHECK(strcmp(out, "{\"sent\": \"a\\tb\", \"question_id\": 7, \"f\": 0.25}\n") == 0);
	free(out);
	CAPTURE(out, CHECK(lx_json_record(j, f, rec, 1, &e) == LX_OK));
	CHECK(strcmp(out, "{\"sent\": \"a\\tb\", \"question_id\": 7, \"x\": [[1, 2], [3, 4]], \"f\": 0.25}\n") == 0);
	free(out);
	lx_json_free(j);
	lx_record_free(rec);
}

static lx_config small_config(void)
{
	lx_config c;

	memset(&c, 0, sizeof c);
	c.vocab_size = 200;
	c.type_vocab_size = 2;
	c.max_position_embeddings = 8;
	c.visual_feat_dim = 3;
	c.num_qa_labels = 12;
	return c;
}

/* A record of T tokens and N boxes (the features 0.5 * their index, the boxes 0.25). */
static lx_record *example_record(int T, int N, lx_dtype feat_dtype)
{
	lx_record *rec = lx_record_new();
	int64_t ids[8] = {101, 5, 102, 7, 7, 7, 7, 7}, s1[1] = {T}, s2[2] = {N, 3}, s4[2] = {N, 4};
	float *feats = malloc((size_t)N * 3 * sizeof *feats), *pos = malloc((size_t)N * 4 * sizeof *pos);
	int32_t *ifeats = malloc((size_t)N * 3 * sizeof *ifeats);
	int i;

	for (i = 0; i < N * 3; i++) {
		feats[i] = 0.5f * (float)i;
		ifeats[i] = i;
	}
	for (i = 0; i < N * 4; i++)
		pos[i] = 0.25f;
	lx_record_add_tensor(rec, "input_ids", LX_I64, 1, s1, ids);
	lx_record_add_tensor(rec, "visual_feats", feat_dtype, 2, s2, feat_dtype == LX_F32 ? (void *)feats : ifeats);
	lx_record_add_tensor(rec, "visual_pos", LX_F32, 2, s4, pos);
	free(feats);
	free(ifeats);
	free(pos);
	return rec;
}

static void examples(void)
{
	lx_config c = small_config();
	lx_example_data d;
	lx_record *rec = example_record(3, 2, LX_F32);
	int32_t mask[3] = {1, 1, 0};
	int64_t s3[1] = {3};
	lx_err e;

	memset(&d, 0, sizeof d);
	lx_record_add_tensor(rec, "attention_mask", LX_I32, 1, s3, mask);
	CHECK(lx_example_decode(&c, rec, &d, &e) == LX_OK);
	CHECK(d.x.T == 3 && d.x.N == 2);
	CHECK(d.x.input_ids[0] == 101 && d.x.input_ids[1] == 5 && d.x.input_ids[2] == 102);
	CHECK(d.x.visual_feats[5] == 2.5f && d.x.visual_pos[7] == 0.25f);
	CHECK(d.x.token_type_ids == NULL && d.x.visual_mask == NULL);
	CHECK(d.x.attention_mask && d.x.attention_mask[0] == 1.0f && d.x.attention_mask[2] == 0.0f);
	lx_record_free(rec);

	/* a smaller record into the same buffers: no mask this time */
	rec = example_record(1, 1, LX_F32);
	CHECK(lx_example_decode(&c, rec, &d, &e) == LX_OK);
	CHECK(d.x.T == 1 && d.x.N == 1 && d.x.attention_mask == NULL && d.x.input_ids[0] == 101);
	lx_record_free(rec);

	rec = example_record(3, LX_MAX_BOXES + 1, LX_F32);
	CHECK(lx_example_decode(&c, rec, &d, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field visual_feats: 4097 boxes, more than 4096") == 0);
	lx_record_free(rec);
	rec = example_record(3, LX_MAX_BOXES, LX_F32);
	CHECK(lx_example_decode(&c, rec, &d, &e) == LX_OK && d.x.N == 4096);
	lx_record_free(rec);

	rec = example_record(3, 2, LX_I32);
	CHECK(lx_example_decode(&c, rec, &d, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field visual_feats: dtype <i4, expected a float dtype (<f4)") == 0);
	lx_record_free(rec);
	lx_example_data_destroy(&d);
}

static void labels(void)
{
	lx_config c = small_config();
	lx_labels_data d;
	lx_record *rec = lx_record_new();
	int32_t obj[2] = {3, -100}, omask[2] = {1, 0};
	float feats[6] = {0}, fmask[2] = {1, 1}, flabels[2] = {1, 2};
	int64_t s2[1] = {2};
	int any;
	lx_err e;

	memset(&d, 0, sizeof d);
	CHECK(lx_labels_decode(&c, LX_HEAD_QA | LX_HEAD_MATCH | LX_HEAD_MLM | LX_HEAD_OBJ, rec, 3, 2, "visual_feats",
	                       NULL, &d, &any, &e) == LX_OK);
	CHECK(any == 0);

	/* obj_labels without obj_mask: refused, naming the mask (lx-train used to drop the loss silently) */
	lx_record_add_tensor(rec, "obj_labels", LX_I32, 1, s2, obj);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field obj_mask is missing (obj_labels needs it)") == 0);
	/* the obj head not asked for: not looked at */
	CHECK(lx_labels_decode(&c, LX_HEAD_QA, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_OK && !any);

	lx_record_add_tensor(rec, "obj_mask", LX_I32, 1, s2, omask);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_OK && any);
	CHECK(d.l.T == 3 && d.l.N == 2);
	CHECK(d.l.obj_labels[0] == 3 && d.l.obj_labels[1] == -100);
	CHECK(d.l.obj_mask[0] == 1.0f && d.l.obj_mask[1] == 0.0f);
	CHECK(d.l.attr_labels == NULL && d.l.feat_mask == NULL);

	/* feat_mask takes the caller's features, or else the record's visual_feats */
	lx_record_add_tensor(rec, "feat_mask", LX_F32, 1, s2, fmask);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 2, "visual_feats", feats, &d, &any, &e) == LX_OK);
	CHECK(d.l.feat_target == feats && d.l.feat_mask[1] == 1.0f);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 2, "vision_output", NULL, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field visual_feats is missing (feat_mask needs the features as targets)") == 0);
	fmask[0] = NAN;
	lx_record_add_tensor(rec, "feat_mask", LX_F32, 1, s2, fmask);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 2, "visual_feats", feats, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field feat_mask: non-finite value (nan) at element 0") == 0);
	lx_record_remove(rec, "feat_mask");

	/* labels are integers; their length is the example's */
	lx_record_add_tensor(rec, "attr_labels", LX_F32, 1, s2, flabels);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field attr_labels: dtype <f4, expected an integer dtype (<i4 or <i8)") == 0);
	CHECK(lx_labels_decode(&c, LX_HEAD_OBJ, rec, 3, 5, "vision_output", NULL, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field obj_labels: shape must be [5] to match vision_output") == 0);

	lx_record_add_int(rec, "ans", 12);
	CHECK(lx_labels_decode(&c, LX_HEAD_QA, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field ans: 12 is outside the answer list [0, 12)") == 0);
	lx_record_add_int(rec, "ans", -100);
	CHECK(lx_labels_decode(&c, LX_HEAD_QA, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_OK);
	CHECK(any && d.l.has_ans && d.l.ans == -100);
	lx_record_add_int(rec, "matched_label", 2);
	CHECK(lx_labels_decode(&c, LX_HEAD_MATCH, rec, 3, 2, "visual_feats", NULL, &d, &any, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field matched_label: 2, expected 0 or 1") == 0);
	lx_record_free(rec);
	lx_labels_data_destroy(&d);
}

/* A msgpack map {k[i]: v[i]} (v[i] < 0: the integer -1) unpacked into up. */
static const msgpack_object *score_map(msgpack_unpacked *up, msgpack_sbuffer *sb, const char *const *k,
                                       const double *v, int n)
{
	msgpack_packer pk;
	int i;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (i = 0; i < n; i++) {
		if (k[i]) {
			msgpack_pack_str(&pk, strlen(k[i]));
			msgpack_pack_str_body(&pk, k[i], strlen(k[i]));
		} else
			msgpack_pack_int(&pk, 5);
		if (v[i] == 1)
			msgpack_pack_int(&pk, 1);
		else
			msgpack_pack_double(&pk, v[i]);
	}
	msgpack_unpacked_init(up);
	msgpack_unpack_next(up, sb->data, sb->size, NULL);
	return &up->data;
}

static void soft_labels(void)
{
	static const char list[] = "[\"yes\", \"no\", \"two\"]";
	static const char *const k1[] = {"no", "two", "cat"}, *const k2[] = {"yes", NULL};
	static const double v1[] = {0.3, 1, 0.6}, v2[] = {1.5, 0.5};
	lx_names *ans;
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	const msgpack_object *m;
	float t[3] = {9, 9, 9};
	int unknown;
	lx_err e;

	CHECK(lx_names_parse(&ans, list, sizeof list - 1, "a.json", LX_NAMES_ANSWERS, &e) == LX_OK);
	m = score_map(&up, &sb, k1, v1, 3);
	CHECK(lx_soft_label(m, ans, t, &unknown, &e) == LX_OK);
	CHECK(t[0] == 0 && t[1] == 0.3f && t[2] == 1 && unknown == 1);
	CHECK(lx_soft_label(m, ans, t, NULL, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field label: answer \"cat\" is not in the answer list a.json") == 0);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);

	m = score_map(&up, &sb, k2, v2, 1);
	CHECK(lx_soft_label(m, ans, t, &unknown, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field label: the score of \"yes\" is 1.5, outside [0, 1]") == 0);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	m = score_map(&up, &sb, k2 + 1, v2 + 1, 1);
	CHECK(lx_soft_label(m, ans, t, &unknown, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "field label: a key is not a string") == 0);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	lx_names_free(ans);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static void model_names(void)
{
	char dir[] = "/tmp/lx-unit-names-XXXXXX", path[256], want[512];
	lx_names *n;
	lx_err e;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/answers.txt", dir);
	put(path, "red\nblue\ngreen\n");
	CHECK(lx_names_load_model(&n, dir, LX_LIST_ANSWERS, NULL, 3, &e) == LX_OK);
	CHECK(n && lx_names_count(n) == 3 && strcmp(lx_names_get(n, 2), "green") == 0);
	lx_names_free(n);
	CHECK(lx_names_load_model(&n, dir, LX_LIST_ANSWERS, NULL, 4, &e) == LX_EMODEL && n == NULL);
	snprintf(want, sizeof want, "%s: 3 names, but the model has 4 answers (num_qa_labels)", path);
	CHECK(strcmp(e.msg, want) == 0);
	/* answers.json comes first */
	snprintf(path, sizeof path, "%s/answers.json", dir);
	put(path, "[\"a\", \"b\"]");
	CHECK(lx_names_load_model(&n, dir, LX_LIST_ANSWERS, NULL, 2, &e) == LX_OK && lx_names_count(n) == 2);
	lx_names_free(n);
	/* no objects_vocab.txt: no list, no error; a given file is read instead */
	CHECK(lx_names_load_model(&n, dir, LX_LIST_OBJECTS, NULL, 1600, &e) == LX_OK && n == NULL);
	snprintf(path, sizeof path, "%s/objs", dir);
	put(path, "dog,dogs\ncat\n");
	CHECK(lx_names_load_model(&n, dir, LX_LIST_OBJECTS, path, 2, &e) == LX_OK);
	CHECK(n && strcmp(lx_names_get(n, 0), "dog") == 0);
	lx_names_free(n);
	snprintf(path, sizeof path, "%s/answers.txt", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/answers.json", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/objs", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	json();
	examples();
	labels();
	soft_labels();
	model_names();
	return check_done("records");
}

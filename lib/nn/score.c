/* score.c - scores over the heads' answers and the submission files, shared by lx-head and lx-merge so that a
 * merged run adds the same numbers in the same order as one process. */
#include <string.h>

#include "lx_fmt.h"
#include "lx_heads.h"

lx_status lx_score_answer(lx_score *s, const msgpack_object *label, const char *answer, lx_err *e)
{
	size_t n = strlen(answer);
	uint32_t i;
	double v;

	for (i = 0; i < label->via.map.size; i++) {
		const msgpack_object *k = &label->via.map.ptr[i].key, *val = &label->via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != n || memcmp(k->via.str.ptr, answer, n))
			continue;
		if (!lx_object_number(val, &v))
			return lx_errf(e, LX_EINPUT, "field label: the score of \"%s\" is not a number", answer);
		s->sum += v;
		break;
	}
	s->questions++;
	return LX_OK;
}

void lx_score_print(const lx_score *s, FILE *f, const char *prefix)
{
	if (s->questions || !s->pairs)
		fprintf(f, "%s: score %.6f over %ld questions%s", prefix, s->questions ? s->sum / s->questions : 0.0,
		        s->questions, s->failed ? "" : "\n");
	if (s->failed && (s->questions || !s->pairs))
		fprintf(f, ", %ld failed and counted as wrong\n", s->failed);
	if (s->pairs)
		fprintf(f, "%s: NLVR2 accuracy %.6f over %ld pairs%s", prefix, (double)s->correct / s->pairs, s->pairs,
		        s->failed && !s->questions ? "" : "\n");
	if (s->failed && s->pairs && !s->questions)
		fprintf(f, ", %ld failed and counted as wrong\n", s->failed);
}

void lx_score_json(const lx_score *s, FILE *f)
{
	fputc('{', f);
	if (s->questions || !s->pairs) {
		fputs("\"score\": ", f);
		lx_json_num(f, s->questions ? s->sum / s->questions : 0.0, 0);
		fprintf(f, ", \"questions\": %ld", s->questions);
	}
	if (s->pairs) {
		fputs(s->questions ? ", \"nlvr2_accuracy\": " : "\"nlvr2_accuracy\": ", f);
		lx_json_num(f, (double)s->correct / s->pairs, 0);
		fprintf(f, ", \"pairs\": %ld", s->pairs);
	}
	if (s->failed)
		fprintf(f, ", \"failed\": %ld", s->failed);
	fputs("}\n", f);
}

const msgpack_object *lx_submit_id(const lx_record *rec, int set)
{
	const msgpack_object *id = lx_record_get(rec, "question_id");

	return !id && set == LX_SUBMIT_GQA ? lx_record_get(rec, "questionId") : id;
}

void lx_submit_entry(FILE *f, int set, long n, const msgpack_object *id, const char *answer)
{
	char ids[256];

	fputs(n ? ",\n" : "[\n", f);
	if (set == LX_SUBMIT_VQA) {
		fputs("{\"question_id\": ", f);
		lx_json_value(f, id);
		fputs(", \"answer\": ", f);
	} else {
		lx_object_text(id, ids, sizeof ids);
		fputs("{\"questionId\": ", f);
		lx_json_str(f, ids, strlen(ids), LX_JSON_SHORT);
		fputs(", \"prediction\": ", f);
	}
	lx_json_str(f, answer, strlen(answer), LX_JSON_SHORT);
	fputs("}", f);
}

void lx_submit_end(FILE *f, int set, long n)
{
	if (set != LX_SUBMIT_NLVR2)
		fputs(n ? "\n]\n" : "[]\n", f);
}

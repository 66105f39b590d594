/* Unit tests of lx_heads.h's helpers: top-k, softmax, sigmoid, BCE, and the name lists' three layouts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_heads.h"
#include "check.h"

static void test_topk(void)
{
	float x[] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, -INFINITY};
	int idx[6];

	lx_topk(x, 6, 3, idx);
	/* equal values keep index order */
	CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 4);
	lx_topk(x, 6, 6, idx);
	CHECK(idx[3] == 0 && idx[4] == 2 && idx[5] == 5);
	lx_topk(x, 6, 1, idx);
	CHECK(idx[0] == 1);
}

static void test_softmax(void)
{
	/* softmax(0, ln 3) = (1/4, 3/4); large values do not overflow */
	float x[] = {0.0f, logf(3.0f)}, big[] = {1000.0f, 1000.0f}, p[2];

	lx_softmax(x, 2, p);
	CHECK(fabsf(p[0] - 0.25f) < 1e-6f && fabsf(p[1] - 0.75f) < 1e-6f);
	lx_softmax(big, 2, p);
	CHECK(p[0] == 0.5f && p[1] == 0.5f);
	CHECK(fabs(lx_sigmoid(0) - 0.5) < 1e-15);
	CHECK(fabs(lx_sigmoid(log(3.0)) - 0.75) < 1e-12);
	CHECK(lx_sigmoid(-1000) == 0 && lx_sigmoid(1000) == 1);
}

static void test_bce(void)
{
	/* logit 0: -log(1/2) whatever the target; logit ln 3 against 0.5: -(0.5 log 3/4 + 0.5 log 1/4) */
	float x[] = {0.0f, 0.0f, logf(3.0f)}, t[] = {1.0f, 0.0f, 0.5f}, big[] = {-1000.0f}, one[] = {1.0f};
	double want = 2 * log(2.0) - 0.5 * log(0.75) - 0.5 * log(0.25);

	CHECK(fabs(lx_bce_loss(x, t, 3) - want) < 1e-6);
	CHECK(fabs(lx_bce_loss(big, one, 1) - 1000.0) < 1e-9);
}

/* Writes text to a new temporary file; returns its path in buf. */
static const char *temp_file(char *buf, const char *text)
{
	int fd;
	FILE *f;

	strcpy(buf, "/tmp/lx-heads-unit-XXXXXX");
	if ((fd = mkstemp(buf)) < 0 || !(f = fdopen(fd, "w"))) {
		perror("mkstemp");
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	return buf;
}

/* Loads text as kind and checks the names, given as one string separated by '|'. */
static void check_names(const char *text, int kind, const char *want)
{
	char path[64], expect[256], *tok, *save = NULL;
	lx_names *n = NULL;
	lx_err e;
	int i = 0;

	temp_file(path, text);
	CHECK(lx_names_load(&n, path, kind, &e) == LX_OK);
	unlink(path);
	if (!n)
		return;
	snprintf(expect, sizeof expect, "%s", want);
	for (tok = strtok_r(expect, "|", &save); tok; tok = strtok_r(NULL, "|", &save), i++) {
		const char *s = strcmp(tok, "<empty>") == 0 ? "" : tok;
		CHECK(i < lx_names_count(n) && strcmp(lx_names_get(n, i), s) == 0);
	}
	CHECK(lx_names_count(n) == i);
	lx_names_free(n);
}

static void test_names(void)
{
	char path[64];
	lx_names *n;
	lx_err e;

	check_names("[\"\", \"woods\", \"trash can\"]\n", LX_NAMES_ANSWERS, "<empty>|woods|trash can");
	check_names("[{\"ans\": \"0\", \"dsets\": []}, {\"ans\": \"\\\"stop\\\"\"}]", LX_NAMES_ANSWERS, "0|\"stop\"");
	check_names("yes\r\nno\n\nred", LX_NAMES_ANSWERS, "yes|no|<empty>|red");
	check_names("gray,grey\nmulti colored,multi-colored\nred\n", LX_NAMES_FIRST, "gray|multi colored|red");
	check_names("[PAD]\n,\n##s\n", LX_NAMES_LINES, "[PAD]|,|##s");

	temp_file(path, "[\"a\", 3]");
	CHECK(lx_names_load(&n, path, LX_NAMES_ANSWERS, &e) == LX_EMODEL && n == NULL);
	CHECK(strstr(e.msg, "entry 1 is neither a string") != NULL);
	unlink(path);
	temp_file(path, "[\"a\",");
	CHECK(lx_names_load(&n, path, LX_NAMES_ANSWERS, &e) == LX_EMODEL && strstr(e.msg, ": line 1: ") != NULL);
	unlink(path);
	temp_file(path, "");
	CHECK(lx_names_load(&n, path, LX_NAMES_LINES, &e) == LX_EMODEL && strstr(e.msg, "holds no names") != NULL);
	unlink(path);
}

int main(void)
{
	test_topk();
	test_softmax();
	test_bce();
	test_names();
	return check_done("heads");
}

/*
 * tests/unit/check.h - what every C unit test uses: CHECK(cond) and CHECKF(cond, fmt, ...) report a failed
 * check with its file and line and count it; main ends with `return check_done("name");`, which prints the
 * count of failed checks (or that all passed) and gives the exit status.
 */
#ifndef LX_TEST_CHECK_H
#define LX_TEST_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                                       \
	do {                                                                                  \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
			check_failures++;                                                             \
		}                                                                                 \
	} while (0)

#define CHECKF(cond, ...)                                                                 \
	do {                                                                                  \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__);                 \
			fprintf(stderr, __VA_ARGS__);                                                 \
			fputc('\n', stderr);                                                          \
			check_failures++;                                                             \
		}                                                                                 \
	} while (0)

static int check_done(const char *name)
{
	if (check_failures)
		fprintf(stderr, "%s: %d checks failed\n", name, check_failures);
	else
		printf("%s: all checks passed\n", name);
	return check_failures != 0;
}

#endif

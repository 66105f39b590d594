/* libFuzzer target: config.json. */
#include "lx.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	lx_config c;
	lx_err e;

	lx_config_parse(&c, (const char *)data, size, "config.json", &e);
	return 0;
}

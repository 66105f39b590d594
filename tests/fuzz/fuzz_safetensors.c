/* libFuzzer target: a safetensors file (header JSON, offsets, shapes), read through a memfd. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lx.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char path[64];
	lx_st *st;
	lx_err e;
	int fd = memfd_create("st", 0), i;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		if (lx_st_open(&st, path, &e) == LX_OK) {
			volatile unsigned char sink = 0;
			for (i = 0; i < lx_st_count(st); i++) {
				lx_tensor t;
				lx_st_name(st, i, &t);
				if (t.numel)
					sink ^= ((const unsigned char *)t.data)[t.numel * lx_dtype_size(t.dtype) - 1];
			}
			(void)sink;
			lx_st_free(st);
		}
	}
	close(fd);
	return 0;
}

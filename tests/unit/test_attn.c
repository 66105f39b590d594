/* Unit tests of the picture and attention helpers: base64 (RFC 4648's test vectors), the colour scale's ends,
 * rectangles, rollout (worked out by hand), the NPY header layout, PNG round trips and text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lx_attn.h"
#include "lx_image.h"
#include "check.h"

static void base64(void)
{
	static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	lx_err e;
	size_t i;

	for (i = 0; i < sizeof in / sizeof in[0]; i++) {
		char *s;
		CHECK(lx_base64((const unsigned char *)in[i], strlen(in[i]), &s, &e) == LX_OK);
		CHECK(strcmp(s, out[i]) == 0);
		free(s);
	}
}

static void colours(void)
{
	CHECK(lx_colormap(0) == 0xfcfbf6);
	CHECK(lx_colormap(1) == 0x5c062a);
	CHECK(lx_colormap(-3) == lx_colormap(0));
	CHECK(lx_colormap(7) == lx_colormap(1));
	CHECK(lx_colormap(NAN) == lx_colormap(0));
}

static uint32_t pixel(const lx_image *im, int x, int y)
{
	const uint8_t *p = im->px + ((size_t)y * im->w + x) * 3;
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static void rectangles(void)
{
	lx_image *im;
	lx_err e;

	CHECK(lx_image_new(&im, 10, 8, 0xffffff, &e) == LX_OK);
	lx_image_frame(im, 1, 1, 6, 5, 1, 0x000000);
	CHECK(pixel(im, 1, 1) == 0 && pixel(im, 6, 5) == 0 && pixel(im, 3, 3) == 0xffffff && pixel(im, 7, 1) == 0xffffff);
	lx_image_fill(im, -5, -5, 7, 7, 0xff0000); /* clipped to (0,0)-(1,1) */
	CHECK(pixel(im, 1, 1) == 0xff0000 && pixel(im, 2, 2) == 0xffffff);
	lx_image_blend(im, 8, 6, 50, 50, 0x000000, 0.5f); /* 255 * 0.5 = 127.5, rounds to 128 */
	CHECK(pixel(im, 9, 7) == 0x808080 && pixel(im, 7, 7) == 0xffffff);
	lx_image_free(im);
	CHECK(lx_image_new(&im, 0, 5, 0, &e) == LX_EINPUT && im == NULL);
}

static void rollout(void)
{
	/* one head, one layer A = [[1, 0], [0.5, 0.5]]: B = (A + I) / 2 = [[1, 0], [0.25, 0.75]]; two such
	 * layers: B B = [[1, 0], [0.25 + 0.1875, 0.5625]] */
	static const float a[] = {1, 0, 0.5f, 0.5f, 1, 0, 0.5f, 0.5f};
	lx_attn m[2] = {{1, 1, 2, 2, a}, {1, 1, 2, 2, a + 4}};
	float out[4], scratch[12];
	lx_attn bad = {1, 1, 2, 3, a};
	lx_err e;

	CHECK(lx_attn_rollout(m, 1, out, scratch, &e) == LX_OK);
	CHECK(out[0] == 1 && out[1] == 0 && out[2] == 0.25f && out[3] == 0.75f);
	CHECK(lx_attn_rollout(m, 2, out, scratch, &e) == LX_OK);
	CHECK(out[0] == 1 && out[1] == 0 && out[2] == 0.4375f && out[3] == 0.5625f);
	CHECK(lx_attn_rollout(&bad, 1, out, scratch, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "rollout: map 0 is 2x3, expected 2x2") == 0);
}

static void head_mean(void)
{
	static const float a[] = {1, 0, 0, 1, 0, 1, 1, 0}; /* 1 layer, 2 heads, 2 x 2 */
	lx_attn m = {1, 2, 2, 2, a};
	float out[4];

	lx_attn_head_mean(&m, 0, out);
	CHECK(out[0] == 0.5f && out[1] == 0.5f && out[2] == 0.5f && out[3] == 0.5f);
}

static void npy(void)
{
	static const float v[] = {1.5f, -2, 0.25f, 8, 0, 1, 2, 3, 4, 5, 6, 7};
	static const char want[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 2), }";
	const int64_t shape[] = {2, 3, 2}, one[] = {3};
	char path[] = "/tmp/lx-test-npy-XXXXXX", buf[256];
	unsigned char head[10];
	int fd = mkstemp(path);
	FILE *f;
	lx_err e;
	float back[12];
	size_t hl;

	CHECK(fd >= 0);
	close(fd);
	CHECK(lx_npy_write(path, v, 3, shape, &e) == LX_OK);
	f = fopen(path, "rb");
	CHECK(f && fread(head, 1, 10, f) == 10);
	CHECK(memcmp(head, "\x93NUMPY\x01\x00", 8) == 0);
	hl = head[8] | (size_t)head[9] << 8;
	CHECK((10 + hl) % 64 == 0 && hl < sizeof buf);
	CHECK(fread(buf, 1, hl, f) == hl);
	CHECK(memcmp(buf, want, strlen(want)) == 0 && buf[hl - 1] == '\n' && buf[hl - 2] == ' ');
	CHECK(fread(back, 4, 12, f) == 12 && memcmp(back, v, sizeof v) == 0 && fgetc(f) == EOF);
	fclose(f);
	CHECK(lx_npy_write(path, v, 1, one, &e) == LX_OK); /* a 1-tuple is written "(3,)" */
	f = fopen(path, "rb");
	CHECK(f && fread(head, 1, 10, f) == 10 && head[8] == 118 && head[9] == 0 && fread(buf, 1, 118, f) == 118);
	buf[118] = 0; /* 57 characters and a newline do not fit in 54: 128 bytes in all */
	CHECK(strstr(buf, "'shape': (3,), }") != NULL);
	fclose(f);
	unlink(path);
	CHECK(lx_npy_write("/nonexistent/x.npy", v, 1, one, &e) == LX_EIO);
}

static void png_round_trip(void)
{
	char path[] = "/tmp/lx-test-png-XXXXXX";
	int fd = mkstemp(path), x, y, same = 1;
	lx_image *im, *back;
	lx_err e;

	CHECK(fd >= 0);
	close(fd);
	CHECK(lx_image_new(&im, 7, 5, 0x123456, &e) == LX_OK);
	for (y = 0; y < 5; y++)
		for (x = 0; x < 7; x++)
			lx_image_fill(im, x, y, 1, 1, (uint32_t)(x * 30) << 16 | (uint32_t)(y * 50) << 8 | 7);
	CHECK(lx_image_write_png(im, path, &e) == LX_OK);
	CHECK(lx_image_load(&back, path, &e) == LX_OK);
	CHECK(back && back->w == 7 && back->h == 5);
	for (y = 0; back && y < 5; y++)
		for (x = 0; x < 7; x++)
			same &= pixel(back, x, y) == pixel(im, x, y);
	CHECK(same);
	lx_image_free(back);
	CHECK(lx_image_load(&back, "/nonexistent.png", &e) == LX_EMODEL);
	CHECK(strcmp(e.msg, "/nonexistent.png: No such file or directory") == 0);
	unlink(path);
	lx_image_free(im);
}

static void text(void)
{
	lx_font *f;
	lx_image *im;
	lx_err e;
	int x, y, ink = 0;

	if (lx_font_open(&f, "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", &e) != LX_OK) {
		fprintf(stderr, "test_attn: %s\n", e.msg);
		check_failures++;
		return;
	}
	CHECK(lx_font_width(f, 12, "") == 0);
	CHECK(lx_font_width(f, 12, "ii") < lx_font_width(f, 12, "WW"));
	CHECK(lx_font_width(f, 24, "word") > lx_font_width(f, 12, "word"));
	CHECK(lx_image_new(&im, 60, 20, 0xffffff, &e) == LX_OK);
	lx_font_draw(f, im, 2, 2, 12, "lx", 0x000000, 0);
	for (y = 0; y < 20; y++)
		for (x = 0; x < 60; x++)
			ink += pixel(im, x, y) != 0xffffff;
	CHECK(ink > 20);
	CHECK(lx_font_draw_fit(f, im, 0, 0, 12, "a long word that cannot fit", 0, 0, 40) <= 40);
	lx_image_free(im);
	lx_font_free(f);
	CHECK(lx_font_open(&f, "/nonexistent.ttf", &e) == LX_EMODEL);
	CHECK(strcmp(e.msg, "/nonexistent.ttf: not a font file FreeType can read") == 0);
}

int main(void)
{
	base64();
	colours();
	rectangles();
	rollout();
	head_mean();
	npy();
	png_round_trip();
	text();
	return check_done("test_attn");
}

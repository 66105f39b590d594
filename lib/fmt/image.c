/* image.c - RGB images: PNG and JPEG files, scaling, rectangles, the colour scale (lx_image.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "lx_image.h"

#define MAX_SIDE 32768

lx_status lx_image_new(lx_image **out, int w, int h, uint32_t rgb, lx_err *e)
{
	lx_image *im;

	*out = NULL;
	if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
		return lx_errf(e, LX_EINPUT, "image size %dx%d, expected sides from 1 to %d", w, h, MAX_SIDE);
	im = malloc(sizeof *im);
	if (!im || !(im->px = malloc((size_t)w * (size_t)h * 3))) {
		free(im);
		return lx_errf(e, LX_EIO, "out of memory for a %dx%d image", w, h);
	}
	im->w = w;
	im->h = h;
	lx_image_fill(im, 0, 0, w, h, rgb);
	*out = im;
	return LX_OK;
}

void lx_image_free(lx_image *im)
{
	if (!im)
		return;
	free(im->px);
	free(im);
}

/* ---- PNG ---- */

static lx_status load_png(lx_image **out, const char *path, lx_err *e)
{
	png_image pi;
	png_color white = {255, 255, 255};
	lx_status rc;

	memset(&pi, 0, sizeof pi);
	pi.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&pi, path))
		return lx_errf(e, LX_EMODEL, "%s: not a readable PNG image: %s", path, pi.message);
	pi.format = PNG_FORMAT_RGB;
	if (pi.width < 1 || pi.width > MAX_SIDE || pi.height < 1 || pi.height > MAX_SIDE) {
		rc = lx_errf(e, LX_EMODEL, "%s: a %lu x %lu PNG image, expected sides from 1 to %d", path,
		             (unsigned long)pi.width, (unsigned long)pi.height, MAX_SIDE);
		png_image_free(&pi);
		return rc;
	}
	if ((rc = lx_image_new(out, (int)pi.width, (int)pi.height, 0xffffff, e))) {
		png_image_free(&pi);
		return rc;
	}
	if (!png_image_finish_read(&pi, &white, (*out)->px, 0, NULL)) {
		lx_image_free(*out);
		*out = NULL;
		rc = lx_errf(e, LX_EMODEL, "%s: not a readable PNG image: %s", path, pi.message);
		png_image_free(&pi);
		return rc;
	}
	return LX_OK;
}

lx_status lx_image_write_png(const lx_image *im, const char *path, lx_err *e)
{
	png_image pi;

	memset(&pi, 0, sizeof pi);
	pi.version = PNG_IMAGE_VERSION;
	pi.width = (png_uint_32)im->w;
	pi.height = (png_uint_32)im->h;
	pi.format = PNG_FORMAT_RGB;
	errno = 0;
	if (!png_image_write_to_file(&pi, path, 0, im->px, 0, NULL))
		return lx_errf(e, LX_EIO, "%s: cannot write the PNG file: %s", path,
		               errno ? strerror(errno) : pi.message);
	return LX_OK;
}

lx_status lx_image_encode_png(const lx_image *im, unsigned char **buf, size_t *len, lx_err *e)
{
	png_image pi;
	png_alloc_size_t n = 0;

	*buf = NULL;
	memset(&pi, 0, sizeof pi);
	pi.version = PNG_IMAGE_VERSION;
	pi.width = (png_uint_32)im->w;
	pi.height = (png_uint_32)im->h;
	pi.format = PNG_FORMAT_RGB;
	/* the most the PNG can take, so that it is compressed once (asking its size first compresses it twice) */
	n = PNG_IMAGE_PNG_SIZE_MAX(pi);
	if (!(*buf = malloc(n)))
		return lx_errf(e, LX_EIO, "out of memory for a PNG image");
	if (!png_image_write_to_memory(&pi, *buf, &n, 0, im->px, 0, NULL)) {
		free(*buf);
		*buf = NULL;
		return lx_errf(e, LX_EIO, "cannot encode a PNG image: %s", pi.message);
	}
	*len = n;
	return LX_OK;
}

/* ---- JPEG ---- */

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
	int warned;  /* corrupt or truncated data libjpeg read past */
} jpeg_fail;

static void jpeg_error_exit(j_common_ptr cinfo)
{
	jpeg_fail *f = (jpeg_fail *)cinfo->err;

	f->pub.format_message(cinfo, f->msg);
	longjmp(f->jump, 1);
}

lx_status lx_image_encode_jpeg(const lx_image *im, int quality, unsigned char **buf, size_t *len, lx_err *e)
{
	struct jpeg_compress_struct ci;
	jpeg_fail fail;
	unsigned char *mem = NULL;
	unsigned long n = 0;
	JSAMPROW row;

	*buf = NULL;
	memset(&fail, 0, sizeof fail);
	ci.err = jpeg_std_error(&fail.pub);
	fail.pub.error_exit = jpeg_error_exit;
	if (setjmp(fail.jump)) {
		jpeg_destroy_compress(&ci);
		free(mem);
		return lx_errf(e, LX_EIO, "cannot encode a JPEG image: %s", fail.msg);
	}
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &mem, &n);
	ci.image_width = (JDIMENSION)im->w;
	ci.image_height = (JDIMENSION)im->h;
	ci.input_components = 3;
	ci.in_color_space = JCS_RGB;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, quality, TRUE);
	jpeg_start_compress(&ci, TRUE);
	while (ci.next_scanline < ci.image_height) {
		row = im->px + (size_t)ci.next_scanline * (size_t)im->w * 3;
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	*buf = mem;
	*len = n;
	return LX_OK;
}

/* Warnings (level -1: corrupt data, a file cut short) make the picture unusable too: keep the first. */
static void jpeg_warn(j_common_ptr cinfo, int level)
{
	jpeg_fail *f = (jpeg_fail *)cinfo->err;

	if (level < 0 && !f->warned) {
		f->pub.format_message(cinfo, f->msg);
		f->warned = 1;
	}
}

static lx_status load_jpeg(lx_image **out, const char *path, lx_err *e)
{
	struct jpeg_decompress_struct ci;
	jpeg_fail fail;
	FILE *f = fopen(path, "rb");
	lx_image *volatile im = NULL;
	lx_status rc;

	*out = NULL;
	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	ci.err = jpeg_std_error(&fail.pub);
	fail.pub.error_exit = jpeg_error_exit;
	fail.pub.emit_message = jpeg_warn;
	fail.warned = 0;
	if (setjmp(fail.jump)) {
		jpeg_destroy_decompress(&ci);
		fclose(f);
		lx_image_free(im);
		return lx_errf(e, LX_EMODEL, "%s: not a readable JPEG image: %s", path, fail.msg);
	}
	jpeg_create_decompress(&ci);
	jpeg_stdio_src(&ci, f);
	jpeg_read_header(&ci, TRUE);
	if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
		jpeg_destroy_decompress(&ci);
		fclose(f);
		return lx_errf(e, LX_EMODEL, "%s: a CMYK JPEG image, expected RGB or greyscale", path);
	}
	ci.out_color_space = JCS_RGB;
	jpeg_start_decompress(&ci);
	if ((rc = lx_image_new((lx_image **)&im, (int)ci.output_width, (int)ci.output_height, 0xffffff, e))) {
		jpeg_destroy_decompress(&ci);
		fclose(f);
		return rc == LX_EIO ? rc : lx_errf(e, LX_EMODEL, "%s: %s", path, e->msg);
	}
	while (ci.output_scanline < ci.output_height) {
		JSAMPROW row = im->px + (size_t)ci.output_scanline * (size_t)im->w * 3;
		jpeg_read_scanlines(&ci, &row, 1);
	}
	jpeg_finish_decompress(&ci);
	jpeg_destroy_decompress(&ci);
	fclose(f);
	if (fail.warned) {
		lx_image_free(im);
		return lx_errf(e, LX_EMODEL, "%s: not a readable JPEG image: %s", path, fail.msg);
	}
	*out = im;
	return LX_OK;
}

lx_status lx_image_load(lx_image **out, const char *path, lx_err *e)
{
	unsigned char magic[8] = {0};
	FILE *f = fopen(path, "rb");
	size_t n;

	*out = NULL;
	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	n = fread(magic, 1, sizeof magic, f);
	fclose(f);
	if (n >= 8 && !png_sig_cmp(magic, 0, 8))
		return load_png(out, path, e);
	if (n >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff)
		return load_jpeg(out, path, e);
	return lx_errf(e, LX_EMODEL, "%s: not a PNG or JPEG image", path);
}

/* ---- scaling ---- */

/* Shrinks by averaging the source pixels each target pixel covers (whole pixels, by their centres). */
static void shrink(const lx_image *s, lx_image *d)
{
	int x, y, c, sx, sy;

	for (y = 0; y < d->h; y++) {
		int y0 = (int)((long)y * s->h / d->h), y1 = (int)((long)(y + 1) * s->h / d->h);
		if (y1 <= y0)
			y1 = y0 + 1;
		for (x = 0; x < d->w; x++) {
			int x0 = (int)((long)x * s->w / d->w), x1 = (int)((long)(x + 1) * s->w / d->w);
			unsigned sum[3] = {0, 0, 0}, n = 0;
			if (x1 <= x0)
				x1 = x0 + 1;
			for (sy = y0; sy < y1; sy++)
				for (sx = x0; sx < x1; sx++, n++)
					for (c = 0; c < 3; c++)
						sum[c] += s->px[((size_t)sy * s->w + sx) * 3 + c];
			for (c = 0; c < 3; c++)
				d->px[((size_t)y * d->w + x) * 3 + c] = (uint8_t)((sum[c] + n / 2) / n);
		}
	}
}

static void grow(const lx_image *s, lx_image *d)
{
	int x, y, c;

	for (y = 0; y < d->h; y++) {
		float fy = ((float)y + 0.5f) * (float)s->h / (float)d->h - 0.5f;
		int y0 = fy < 0 ? 0 : (int)fy, y1 = y0 + 1 < s->h ? y0 + 1 : s->h - 1;
		float ty = fy < 0 ? 0 : fy - (float)y0;
		for (x = 0; x < d->w; x++) {
			float fx = ((float)x + 0.5f) * (float)s->w / (float)d->w - 0.5f;
			int x0 = fx < 0 ? 0 : (int)fx, x1 = x0 + 1 < s->w ? x0 + 1 : s->w - 1;
			float tx = fx < 0 ? 0 : fx - (float)x0;
			for (c = 0; c < 3; c++) {
				float a = s->px[((size_t)y0 * s->w + x0) * 3 + c], b = s->px[((size_t)y0 * s->w + x1) * 3 + c];
				float p = s->px[((size_t)y1 * s->w + x0) * 3 + c], q = s->px[((size_t)y1 * s->w + x1) * 3 + c];
				float v = (a + (b - a) * tx) * (1 - ty) + (p + (q - p) * tx) * ty;
				d->px[((size_t)y * d->w + x) * 3 + c] = (uint8_t)(v + 0.5f);
			}
		}
	}
}

lx_image *lx_image_scaled(const lx_image *im, int w, int h)
{
	lx_image *d;
	lx_err e;

	if (lx_image_new(&d, w, h, 0xffffff, &e))
		return NULL;
	if (w <= im->w && h <= im->h)
		shrink(im, d);
	else
		grow(im, d);
	return d;
}

/* ---- rectangles ---- */

/* Clips (x, y, w, h) to the image; returns 0 if nothing is left. */
static int clip(const lx_image *im, int *x, int *y, int *w, int *h)
{
	if (*x < 0) {
		*w += *x;
		*x = 0;
	}
	if (*y < 0) {
		*h += *y;
		*y = 0;
	}
	if (*x + *w > im->w)
		*w = im->w - *x;
	if (*y + *h > im->h)
		*h = im->h - *y;
	return *w > 0 && *h > 0;
}

void lx_image_fill(lx_image *im, int x, int y, int w, int h, uint32_t rgb)
{
	int i, j;
	uint8_t r = (uint8_t)(rgb >> 16), g = (uint8_t)(rgb >> 8), b = (uint8_t)rgb;

	if (!clip(im, &x, &y, &w, &h))
		return;
	for (j = y; j < y + h; j++) {
		uint8_t *p = im->px + ((size_t)j * im->w + x) * 3;
		for (i = 0; i < w; i++, p += 3) {
			p[0] = r;
			p[1] = g;
			p[2] = b;
		}
	}
}

void lx_image_blend(lx_image *im, int x, int y, int w, int h, uint32_t rgb, float alpha)
{
	int i, j, c;
	float col[3] = {(float)(rgb >> 16 & 255), (float)(rgb >> 8 & 255), (float)(rgb & 255)};

	if (alpha <= 0 || !clip(im, &x, &y, &w, &h))
		return;
	if (alpha > 1)
		alpha = 1;
	for (j = y; j < y + h; j++) {
		uint8_t *p = im->px + ((size_t)j * im->w + x) * 3;
		for (i = 0; i < w; i++, p += 3)
			for (c = 0; c < 3; c++)
				p[c] = (uint8_t)((float)p[c] * (1 - alpha) + col[c] * alpha + 0.5f);
	}
}

void lx_image_frame(lx_image *im, int x, int y, int w, int h, int t, uint32_t rgb)
{
	if (2 * t >= w || 2 * t >= h) {
		lx_image_fill(im, x, y, w, h, rgb);
		return;
	}
	lx_image_fill(im, x, y, w, t, rgb);
	lx_image_fill(im, x, y + h - t, w, t, rgb);
	lx_image_fill(im, x, y + t, t, h - 2 * t, rgb);
	lx_image_fill(im, x + w - t, y + t, t, h - 2 * t, rgb);
}

void lx_image_paste(lx_image *im, const lx_image *src, int x, int y)
{
	int j, sx = 0, w = src->w, h = src->h, x0 = x, y0 = y;

	if (!clip(im, &x, &y, &w, &h))
		return;
	sx = x - x0;
	for (j = 0; j < h; j++)
		memcpy(im->px + ((size_t)(y + j) * im->w + x) * 3,
		       src->px + ((size_t)(y - y0 + j) * src->w + sx) * 3, (size_t)w * 3);
}

/* ---- the colour scale ---- */

uint32_t lx_colormap(float v)
{
	/* Stops chosen for this project: near white, pale yellow, amber, orange-red, crimson, dark wine. The
	 * lightness falls steadily, so the scale reads in greyscale too. */
	static const uint8_t stop[][3] = {
		{252, 251, 246}, {250, 232, 150}, {245, 180, 70}, {226, 104, 40}, {180, 30, 48}, {92, 6, 42},
	};
	const int n = (int)(sizeof stop / sizeof stop[0]) - 1;
	float t;
	int i, c;
	uint32_t out = 0;

	if (!(v > 0))
		v = 0;
	if (v > 1)
		v = 1;
	t = v * (float)n;
	i = (int)t;
	if (i >= n)
		i = n - 1;
	t -= (float)i;
	for (c = 0; c < 3; c++) {
		float x = (float)stop[i][c] + ((float)stop[i + 1][c] - (float)stop[i][c]) * t;
		out = out << 8 | (uint32_t)(x + 0.5f);
	}
	return out;
}

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

/* Reading follows OpenCV's imread (IMREAD_COLOR): 16-bit samples keep their high byte (>> 8), an alpha
 * channel or tRNS transparency is dropped (not composited), palettes and grey (1, 2 and 4 bits scaled to 8)
 * become RGB, gAMA and the other colour chunks are ignored: the samples as stored. */

typedef struct {
	jmp_buf jump;
	char msg[160];
} png_fail;

static void png_error_fn(png_structp png, png_const_charp msg)
{
	png_fail *f = png_get_error_ptr(png);

	snprintf(f->msg, sizeof f->msg, "%s", msg);
	longjmp(f->jump, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* Refuses a w x h image past max_pixels, from its header, before anything is allocated for it. */
static lx_status check_pixels(const char *path, const char *kind, unsigned long w, unsigned long h,
                              long long max_pixels, lx_err *e)
{
	long long n = (long long)w * (long long)h;

	if (max_pixels > 0 && n > max_pixels)
		return lx_errf(e, LX_EINPUT, "%s: a %lu x %lu %s image, %lld pixels, more than the limit of %lld (--max-pixels)",
		               path, w, h, kind, n, max_pixels);
	return LX_OK;
}

static lx_status load_png(lx_image **out, const char *path, long long max_pixels, lx_err *e)
{
	png_fail fail = {.msg = "unreadable"};
	png_structp png;
	png_infop info = NULL;
	lx_image *volatile im = NULL;
	png_bytep *volatile rows = NULL;
	volatile lx_status rc = LX_OK;
	png_uint_32 w, h, y;
	int depth, type;
	FILE *f = fopen(path, "rb");

	*out = NULL;
	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &fail, png_error_fn, png_warning_fn);
	if (!png || !(info = png_create_info_struct(png))) {
		png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
		fclose(f);
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	}
	if (setjmp(fail.jump)) {
		if (!rc)
			rc = lx_errf(e, LX_EMODEL, "%s: not a readable PNG image: %s", path, fail.msg);
		goto done;
	}
	png_init_io(png, f);
	png_read_info(png, info);
	png_get_IHDR(png, info, &w, &h, &depth, &type, NULL, NULL, NULL);
	if (w < 1 || w > MAX_SIDE || h < 1 || h > MAX_SIDE) {
		rc = lx_errf(e, LX_EMODEL, "%s: a %lu x %lu PNG image, expected sides from 1 to %d", path,
		             (unsigned long)w, (unsigned long)h, MAX_SIDE);
		goto done;
	}
	if ((rc = check_pixels(path, "PNG", w, h, max_pixels, e)))
		goto done;
	if (depth == 16)
		png_set_strip_16(png);
	if (type == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (!(type & PNG_COLOR_MASK_COLOR)) {
		if (depth < 8)
			png_set_expand_gray_1_2_4_to_8(png);
		png_set_gray_to_rgb(png);
	}
	png_set_strip_alpha(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	if (png_get_rowbytes(png, info) != (size_t)w * 3) {
		rc = lx_errf(e, LX_EMODEL, "%s: a PNG image whose rows do not decode to RGB", path);
		goto done;
	}
	if ((rc = lx_image_new((lx_image **)&im, (int)w, (int)h, 0, e)))
		goto done;
	if (!(rows = malloc((size_t)h * sizeof *rows))) {
		rc = lx_errf(e, LX_EIO, "%s: out of memory", path);
		goto done;
	}
	for (y = 0; y < h; y++)
		rows[y] = im->px + (size_t)y * w * 3;
	png_read_image(png, rows);
	png_read_end(png, NULL);
	*out = im;
	im = NULL;
done:
	png_destroy_read_struct(&png, &info, NULL);
	free(rows);
	lx_image_free(im);
	fclose(f);
	return rc;
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

/* The EXIF orientation (1 to 8) of the first APP1 marker holding "Exif\0\0", or 1 (none, or unreadable). */
static int exif_orientation(j_decompress_ptr ci)
{
	jpeg_saved_marker_ptr m;

	for (m = ci->marker_list; m; m = m->next) {
		const JOCTET *t = m->data + 6;
		size_t n, ifd, k, count;
		int le;

		if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 + 8 || memcmp(m->data, "Exif\0\0", 6))
			continue;
		n = m->data_length - 6;
		le = t[0] == 'I';
		if (!((le && t[1] == 'I') || (t[0] == 'M' && t[1] == 'M')))
			return 1;
#define U16(p) (le ? ((size_t)(p)[0] | (size_t)(p)[1] << 8) : ((size_t)(p)[0] << 8 | (size_t)(p)[1]))
#define U32(p) (le ? (U16(p) | U16((p) + 2) << 16) : (U16(p) << 16 | U16((p) + 2)))
		ifd = U32(t + 4);
		if (ifd > n - 2)
			return 1;
		count = U16(t + ifd);
		for (k = 0; k < count && ifd + 2 + 12 * (k + 1) <= n; k++) {
			const JOCTET *en = t + ifd + 2 + 12 * k;
			if (U16(en) == 0x0112) {
				size_t v = U16(en + 2) == 3 ? U16(en + 8) : 1;
				return v >= 1 && v <= 8 ? (int)v : 1;
			}
		}
#undef U16
#undef U32
		return 1;
	}
	return 1;
}

/* The image as EXIF orientation o says it is to be seen (OpenCV's imread): 2 mirrored left-right, 3 turned
 * 180 degrees, 4 mirrored top-bottom, 5 transposed, 6 turned 90 degrees clockwise, 7 transposed and turned 180
 * degrees, 8 turned 90 degrees anticlockwise. NULL when out of memory. */
static lx_image *orient(const lx_image *s, int o)
{
	int ow = o >= 5 ? s->h : s->w, oh = o >= 5 ? s->w : s->h, x, y;
	int fx = o == 2 || o == 3 || o == 6 || o == 7, fy = o == 3 || o == 4 || o == 7 || o == 8;
	lx_image *d;
	lx_err e;

	if (lx_image_new(&d, ow, oh, 0, &e))
		return NULL;
	for (y = 0; y < oh; y++)
		for (x = 0; x < ow; x++) {
			int px = fx ? ow - 1 - x : x, py = fy ? oh - 1 - y : y;
			int sx = o >= 5 ? py : px, sy = o >= 5 ? px : py;
			memcpy(d->px + ((size_t)y * ow + x) * 3, s->px + ((size_t)sy * s->w + sx) * 3, 3);
		}
	return d;
}

static lx_status load_jpeg(lx_image **out, const char *path, long long max_pixels, lx_err *e)
{
	struct jpeg_decompress_struct ci;
	jpeg_fail fail;
	FILE *f = fopen(path, "rb");
	lx_image *volatile im = NULL;
	lx_status rc;
	int o;

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
	jpeg_save_markers(&ci, JPEG_APP0 + 1, 0xffff);
	jpeg_read_header(&ci, TRUE);
	o = exif_orientation(&ci);  /* the saved markers go when the decompression finishes */
	if ((rc = check_pixels(path, "JPEG", ci.image_width, ci.image_height, max_pixels, e))) {
		jpeg_destroy_decompress(&ci);
		fclose(f);
		return rc;
	}
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
		if (rc != LX_EIO) {
			char msg[sizeof e->msg];
			snprintf(msg, sizeof msg, "%s", e->msg);
			rc = lx_errf(e, LX_EMODEL, "%s: %s", path, msg);
		}
		return rc;
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
	if (o != 1) {
		lx_image *turned = orient(im, o);
		lx_image_free(im);
		if (!turned)
			return lx_errf(e, LX_EIO, "%s: out of memory", path);
		im = turned;
	}
	*out = im;
	return LX_OK;
}

lx_status lx_image_load(lx_image **out, const char *path, lx_err *e)
{
	return lx_image_read(out, path, LX_IMAGE_MAX_PIXELS, e);
}

lx_status lx_image_read(lx_image **out, const char *path, long long max_pixels, lx_err *e)
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
		return load_png(out, path, max_pixels, e);
	if (n >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff)
		return load_jpeg(out, path, max_pixels, e);
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

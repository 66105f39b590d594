/*
 * lx_image.h - pictures for liblx: an RGB image, PNG and JPEG files (libpng, libjpeg), the few drawing
 * primitives the attention pictures need and a colour scale (base64 for data: URIs is in lx_fmt.h).
 *
 * Ownership follows lx_core.h: lx_image_new/lx_image_load/lx_image_scaled make an image freed by lx_image_free.
 * Buffers returned through a pointer argument (lx_image_encode_png) are malloc'ed and freed by the caller
 * with free().
 * Drawing functions clip to the image and never fail.
 */
#ifndef LX_IMAGE_H
#define LX_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "lx_core.h"
#include "lx_fmt.h"

/* Colours are 0xRRGGBB. */
typedef struct {
	int w, h;
	uint8_t *px;  /* [h][w][3], RGB, rows top to bottom */
} lx_image;

/* A w x h image filled with rgb; w and h in [1, 32768]. */
lx_status lx_image_new(lx_image **out, int w, int h, uint32_t rgb, lx_err *e);
void lx_image_free(lx_image *im);
/* Reads a PNG or JPEG file (told apart by their first bytes) as OpenCV's imread (IMREAD_COLOR) does, so that
 * the detector sees the demo's pixels and the attention pictures the detector's photo: a JPEG's EXIF
 * orientation (APP1, tag 0x0112, 2 to 8) applied, grey to RGB; a PNG's alpha or tRNS transparency dropped (the
 * colours as stored, nothing composited), 16-bit samples >> 8, palettes and grey of any depth to RGB, gAMA and
 * the other colour chunks ignored. LX_EMODEL (a named file that cannot be used) with the path in the message
 * on any failure. */
lx_status lx_image_load(lx_image **out, const char *path, lx_err *e);
/* The most pixels (width x height) lx_image_load decodes: 64 megapixels, a 61-megapixel camera's full frame
 * (9504 x 6336) with room; a decoded pixel takes 3 bytes here and 12 more as the detector's float planes, so
 * 64 MP is at most 960 MB (lx-limits(7)). */
#define LX_IMAGE_MAX_PIXELS 64000000LL
/* lx_image_load with another limit (0: none but the sides' 32768): an image of more than max_pixels pixels is
 * LX_EINPUT, "PATH: a W x H KIND image, P pixels, more than the limit of M (--max-pixels)", refused from its
 * header before its pixels are allocated. */
lx_status lx_image_read(lx_image **out, const char *path, long long max_pixels, lx_err *e);
/* Writes im as an 8-bit RGB PNG file. LX_EIO on failure. */
lx_status lx_image_write_png(const lx_image *im, const char *path, lx_err *e);
/* The PNG file of im in memory: *buf (malloc'ed) and *len. */
lx_status lx_image_encode_png(const lx_image *im, unsigned char **buf, size_t *len, lx_err *e);
/* The baseline JPEG file of im in memory at quality 1 to 100 (libjpeg's scale): *buf (malloc'ed) and *len. */
lx_status lx_image_encode_jpeg(const lx_image *im, int quality, unsigned char **buf, size_t *len, lx_err *e);
/* A copy of im scaled to w x h (area average when shrinking, bilinear when growing); NULL if out of memory. */
lx_image *lx_image_scaled(const lx_image *im, int w, int h);

void lx_image_fill(lx_image *im, int x, int y, int w, int h, uint32_t rgb);
/* Mixes rgb into the rectangle: pixel = (1 - alpha) pixel + alpha rgb, alpha in [0, 1]. */
void lx_image_blend(lx_image *im, int x, int y, int w, int h, uint32_t rgb, float alpha);
/* The outline of a rectangle, t pixels thick, inside (x, y, w, h). */
void lx_image_frame(lx_image *im, int x, int y, int w, int h, int t, uint32_t rgb);
/* Copies src into im with its top-left corner at (x, y). */
void lx_image_paste(lx_image *im, const lx_image *src, int x, int y);

/* The attention colour scale: v in [0, 1] (clamped) from near white through yellow and orange to dark red. */
uint32_t lx_colormap(float v);


#endif

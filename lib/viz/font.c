/* font.c - text on lx_images with FreeType: anti-aliased glyphs, upright or rotated upwards (lx_image.h). */
#include <stdlib.h>
#include <string.h>

#include <ft2build.h>
#include FT_FREETYPE_H
#include <utf8proc.h>

#include "lx_font.h"

struct lx_font {
	FT_Library lib;
	FT_Face face;
	int px;  /* the size set on face, 0 before the first */
};

lx_status lx_font_open(lx_font **out, const char *path, lx_err *e)
{
	lx_font *f = calloc(1, sizeof *f);

	*out = NULL;
	if (!f)
		return lx_errf(e, LX_EIO, "out of memory");
	if (FT_Init_FreeType(&f->lib)) {
		free(f);
		return lx_errf(e, LX_EMODEL, "%s: FreeType cannot start", path);
	}
	if (FT_New_Face(f->lib, path, 0, &f->face)) {
		FT_Done_FreeType(f->lib);
		free(f);
		return lx_errf(e, LX_EMODEL, "%s: not a font file FreeType can read", path);
	}
	if (!FT_IS_SCALABLE(f->face)) {
		lx_font_free(f);
		return lx_errf(e, LX_EMODEL, "%s: a bitmap font, expected a scalable (TrueType or OpenType) font", path);
	}
	*out = f;
	return LX_OK;
}

void lx_font_free(lx_font *f)
{
	if (!f)
		return;
	FT_Done_Face(f->face);
	FT_Done_FreeType(f->lib);
	free(f);
}

static void set_size(lx_font *f, int px)
{
	if (px < 4)
		px = 4;
	if (f->px != px) {
		FT_Set_Pixel_Sizes(f->face, 0, (FT_UInt)px);
		f->px = px;
	}
}

/* The next code point of s (advancing *s); '?' for an invalid byte. */
static int32_t next_char(const char **s)
{
	utf8proc_int32_t c;
	utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)*s, -1, &c);

	if (n < 1) {
		(*s)++;
		return '?';
	}
	*s += n;
	return c;
}

static int advance(lx_font *f, int32_t c, int32_t prev, FT_Pos *kern)
{
	FT_UInt g = FT_Get_Char_Index(f->face, (FT_ULong)c);

	*kern = 0;
	if (prev >= 0 && FT_HAS_KERNING(f->face)) {
		FT_Vector k;
		if (!FT_Get_Kerning(f->face, FT_Get_Char_Index(f->face, (FT_ULong)prev), g, FT_KERNING_DEFAULT, &k))
			*kern = k.x;
	}
	if (FT_Load_Glyph(f->face, g, FT_LOAD_DEFAULT))
		return 0;
	return (int)f->face->glyph->advance.x;
}

int lx_font_width(lx_font *f, int px, const char *s)
{
	FT_Pos w = 0, kern;
	int32_t prev = -1;

	set_size(f, px);
	while (*s) {
		int32_t c = next_char(&s);
		int a = advance(f, c, prev, &kern);
		w += kern + a;
		prev = c;
	}
	return (int)((w + 63) >> 6);
}

int lx_font_height(lx_font *f, int px)
{
	set_size(f, px);
	return (int)((f->face->size->metrics.ascender - f->face->size->metrics.descender + 63) >> 6);
}

/* Mixes one glyph bitmap into im: bitmap pixel (u, v) (u along the text, v down the line) goes to
 * (ox + u, oy + v) upright, or (ox + v, oy - u) rotated upwards. */
static void blit(lx_image *im, const FT_Bitmap *b, int ox, int oy, uint32_t rgb, int up)
{
	float col[3] = {(float)(rgb >> 16 & 255), (float)(rgb >> 8 & 255), (float)(rgb & 255)};
	unsigned u, v;
	int c;

	for (v = 0; v < b->rows; v++) {
		for (u = 0; u < b->width; u++) {
			float a = (float)b->buffer[(size_t)v * (size_t)b->pitch + u] / 255.0f;
			int x = up ? ox + (int)v : ox + (int)u, y = up ? oy - (int)u : oy + (int)v;
			uint8_t *p;
			if (a <= 0 || x < 0 || y < 0 || x >= im->w || y >= im->h)
				continue;
			p = im->px + ((size_t)y * im->w + x) * 3;
			for (c = 0; c < 3; c++)
				p[c] = (uint8_t)((float)p[c] * (1 - a) + col[c] * a + 0.5f);
		}
	}
}

/* Draws at most the first n bytes of s; returns the pen's advance in 26.6 units. */
static FT_Pos draw_n(lx_font *f, lx_image *im, int x, int y, int px, const char *s, size_t n, uint32_t rgb,
                     int up)
{
	const char *end = s + n;
	FT_Pos pen = 0, kern;
	int32_t prev = -1;
	int asc;

	set_size(f, px);
	asc = (int)((f->face->size->metrics.ascender + 63) >> 6);
	while (s < end && *s) {
		int32_t c = next_char(&s);
		int a = advance(f, c, prev, &kern);
		FT_GlyphSlot g = f->face->glyph;
		pen += kern;
		if (!FT_Render_Glyph(g, FT_RENDER_MODE_NORMAL) && g->bitmap.pixel_mode == FT_PIXEL_MODE_GRAY) {
			int u0 = (int)(pen >> 6) + g->bitmap_left, v0 = asc - g->bitmap_top;
			if (up)
				blit(im, &g->bitmap, x + v0, y - 1 - u0, rgb, 1);
			else
				blit(im, &g->bitmap, x + u0, y + v0, rgb, 0);
		}
		pen += a;
		prev = c;
	}
	return pen;
}

void lx_font_draw(lx_font *f, lx_image *im, int x, int y, int px, const char *s, uint32_t rgb, int up)
{
	draw_n(f, im, x, y, px, s, strlen(s), rgb, up);
}

int lx_font_draw_fit(lx_font *f, lx_image *im, int x, int y, int px, const char *s, uint32_t rgb, int up,
                     int maxw)
{
	static const char dots[] = "\xe2\x80\xa6"; /* U+2026 */
	size_t n = strlen(s);
	int w = lx_font_width(f, px, s), dw;
	char buf[256];

	if (w <= maxw) {
		draw_n(f, im, x, y, px, s, n, rgb, up);
		return w;
	}
	dw = lx_font_width(f, px, dots);
	if (n >= sizeof buf - sizeof dots)
		n = sizeof buf - sizeof dots - 1;
	while (n > 0) {
		/* back off to the start of a UTF-8 sequence, then measure the cut text */
		do
			n--;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80);
		memcpy(buf, s, n);
		buf[n] = 0;
		if (lx_font_width(f, px, buf) + dw <= maxw)
			break;
	}
	memcpy(buf + n, dots, sizeof dots);
	w = lx_font_width(f, px, buf);
	if (w > maxw)
		return 0;
	draw_n(f, im, x, y, px, buf, strlen(buf), rgb, up);
	return w;
}

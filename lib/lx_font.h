/*
 * lx_font.h - text on lx_image pictures (FreeType): the attention pictures' labels.
 *
 * lx_font_open makes a font freed by lx_font_free. Drawing functions clip to the image and never fail.
 */
#ifndef LX_FONT_H
#define LX_FONT_H

#include "lx_core.h"
#include "lx_image.h"

typedef struct lx_font lx_font;

/* Opens a TrueType/OpenType font file. LX_EMODEL with the path in the message if it cannot be used. */
lx_status lx_font_open(lx_font **out, const char *path, lx_err *e);
void lx_font_free(lx_font *f);
/* Width in pixels of UTF-8 text at size px (the em height in pixels); invalid UTF-8 bytes count as '?'. */
int lx_font_width(lx_font *f, int px, const char *s);
/* Height in pixels of a line of text at size px (ascender to descender). */
int lx_font_height(lx_font *f, int px);
/* Draws UTF-8 text with its line box's top-left corner at (x, y). With up set, the text runs upwards
 * (rotated 90 degrees anticlockwise) and (x, y) is the bottom-left corner of the rotated line box. */
void lx_font_draw(lx_font *f, lx_image *im, int x, int y, int px, const char *s, uint32_t rgb, int up);
/* Draws text cut with an ellipsis to at most maxw pixels. Returns the width drawn. */
int lx_font_draw_fit(lx_font *f, lx_image *im, int x, int y, int px, const char *s, uint32_t rgb, int up,
                     int maxw);

#endif

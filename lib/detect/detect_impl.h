/* detect_impl.h - the detector's stages, internal to lib/detect/ and its unit test. */
#ifndef LX_DETECT_IMPL_H
#define LX_DETECT_IMPL_H

#include "lx_detect.h"

/* Where the convolutions run: oneDNN's engine, stream, the primitives made so far (one per layer and input
 * shape, with the layer's weights reordered once into the layout the primitive wants) and the scratch the
 * layouts are converted in. Without oneDNN (no LX_DNNL) there is none and every convolution is im2col + sgemm.
 * One detector's convolutions run on one thread at a time. */
typedef struct det_engine det_engine;

/* *out gets a new engine, or NULL when the library is built without oneDNN. LX_EMODEL when oneDNN fails. */
lx_status det_engine_new(det_engine **out, lx_err *e);
/* Whether the engine can run layers in bfloat16 (det_conv.bf16): LX_EMODEL when oneDNN is absent (g NULL) or
 * the CPU (as oneDNN sees it: DNNL_MAX_CPU_ISA) has no avx512_bf16. Drops the primitives made so far, so that
 * layers marked after it are made again. */
lx_status det_engine_bf16(det_engine *g, lx_err *e);
/* Frees the engine, its primitives and reordered weights; NULL is a no-op. */
void det_engine_free(det_engine *g);

/* A 2-D convolution with its bias (BatchNorm folded in at load). Weights [cout][cin/groups][k][k]. */
typedef struct {
	int cin, cout, k, stride, pad, dil, groups;
	const float *w;
	const float *b;   /* [cout], or NULL */
	det_engine *eng;  /* NULL: im2col + sgemm */
	int bf16;         /* on eng: weights (reordered once) and input in bfloat16, float32 sums, bias and output */
	/* on eng, NHWC only: weights in int8, wq = round(w * wscale[o]) with wscale[o] = 127 / max |w| of the output
	 * channel, and the input quantized to uint8 at each run by its largest value (it follows a ReLU) */
	const signed char *wq;  /* [cout][cin/groups][k][k], or NULL: not in int8 */
	const float *wscale;    /* [cout] */
} det_conv;

/* Output size of c on an input of size n (one side). */
int det_conv_out(const det_conv *c, int n);
/* y[b] (+)= conv(x[b]) + bias for b < batch, x [batch][cin][h][w], y [batch][cout][oh][ow]; with accumulate y
 * already holds values to add to (the shortcut); then max(0, y) when relu. LX_EIO when memory runs out. */
lx_status det_conv_run(const det_conv *c, const float *x, int batch, int h, int w, float *y, int accumulate, int relu,
                       lx_err *e);
/* The same with x [batch][h][w][cin] and y [batch][oh][ow][cout] (NHWC): oneDNN runs it in that layout, so that
 * a chain of convolutions needs no reorder between them; without oneDNN it goes through NCHW copies. */
lx_status det_conv_run_nhwc(const det_conv *c, const float *x, int batch, int h, int w, float *y, int accumulate,
                            int relu, lx_err *e);
/* Flags of det_conv_run_bf16: x, y hold bfloat16 values (uint16_t, the high half of the float32). */
#define DET_NHWC 1
#define DET_IN_BF16 2
#define DET_OUT_BF16 4
/* det_conv_run_nhwc on a layer in bfloat16 (det_conv.bf16) with x (DET_IN_BF16) and/or y (DET_OUT_BF16)
 * in bfloat16: the maps between two convolutions kept in the precision the next one takes, so that no
 * conversion runs between them (the same values: the next convolution would round its input so). y in
 * bfloat16 cannot accumulate. LX_EMODEL on a layer in float32. */
lx_status det_conv_run_bf16(const det_conv *c, const void *x, int batch, int h, int w, void *y, int accumulate,
                            int relu, int io, lx_err *e);

/* Whether the engine can run layers in int8 (det_conv.wq): oneDNN with VNNI (avx512_core_vnni), whose
 * 32-bit dot products do not saturate; LX_EMODEL otherwise. */
lx_status det_engine_int8(det_engine *g, lx_err *e);
/* The largest value of x [n], and x [n] to uint8 as round(max(0, min(255, x * scale))) (threaded). */
float det_max(const float *x, size_t n);
void det_quantize_u8(const float *x, size_t n, float scale, unsigned char *q);

/* The demo's resize: the size an h x w image becomes (shortest side min_size, longest at most max_size). */
void det_resize_size(int h, int w, int min_size, int max_size, int *oh, int *ow);
/* Bilinear resampling of c planes [c][h][w] to [c][oh][ow], align_corners false, as F.interpolate. */
void det_resize_bilinear(const float *x, int c, int h, int w, float *y, int oh, int ow);

/* The cell anchors [n][4] (x1, y1, x2, y2 around 0) of config c: sizes outer, ratios inner. */
int det_cell_anchors(const lx_detect_config *c, float *out);
/* Box deltas (dx, dy, dw, dh) divided by weights, the scale clamped to log(1000/16), applied to box. */
void det_apply_deltas(const float *box, const float *delta, const double *weights, float *out);
/* The indices of scores [n] by decreasing score, ties by index (a stable sort). -1 when out of memory. */
int det_order(const float *scores, int n, int *order);
/* Greedy NMS as torchvision's: boxes [n][4], scores [n]; keep (n entries) gets the kept indices in order of
 * decreasing score (ties by index). Returns how many. */
int det_nms(const float *boxes, const float *scores, int n, double thresh, int *keep, lx_err *e);
/* torchvision's RoIPool of one box (x1, y1, x2, y2, input pixels) on a [c][h][w] map into [c][r][r], or with
 * nhwc on [h][w][c] into [r][r][c]. */
void det_roipool(const float *map, int c, int h, int w, const float *box, float scale, int r, int nhwc, float *out);
/* The max-pool after the stem: 3x3 stride 2, caffe (no padding, ceil) or padding 1 (floor), on x [c][h][w]
 * into y [c][oh][ow], or with nhwc on [h][w][c] into [oh][ow][c]. */
void det_maxpool(const float *x, int c, int h, int w, int caffe, int nhwc, float *y, int *oh, int *ow);
/* n matrices [rows][cols] to [cols][rows]: NCHW to NHWC is rows c, cols h * w; back, rows h * w, cols c. */
void det_transpose(const float *x, int n, int rows, int cols, float *y);

#endif

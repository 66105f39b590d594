/* conv.c - the detector's convolutions: oneDNN's convolution primitives where the library is built with it
 * (LX_DNNL), otherwise im2col and one cblas_sgemm per image and group. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "detect/detect_impl.h"

int det_conv_out(const det_conv *c, int n)
{
	return (n + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
}

/* col [cin_g * k * k][oh * ow] for the channels [c0, c0 + cg) of one image x [cin][h][w]. */
static void im2col(const det_conv *c, const float *x, int c0, int cg, int h, int w, int oh, int ow, float *col)
{
	int ci, ky, kx, oy, ox;

	for (ci = 0; ci < cg; ci++) {
		const float *xc = x + (size_t)(c0 + ci) * h * w;
		for (ky = 0; ky < c->k; ky++)
			for (kx = 0; kx < c->k; kx++) {
				float *dst = col + ((size_t)(ci * c->k + ky) * c->k + kx) * oh * ow;
				for (oy = 0; oy < oh; oy++) {
					int iy = oy * c->stride - c->pad + ky * c->dil;
					float *d = dst + (size_t)oy * ow;
					if (iy < 0 || iy >= h) {
						memset(d, 0, (size_t)ow * sizeof *d);
						continue;
					}
					for (ox = 0; ox < ow; ox++) {
						int ix = ox * c->stride - c->pad + kx * c->dil;
						d[ox] = ix >= 0 && ix < w ? xc[(size_t)iy * w + ix] : 0.0f;
					}
				}
			}
	}
}

/* ---- oneDNN ---- */

#ifdef LX_DNNL
#include <dnnl.h>

/* The most primitives kept; past it they are all dropped and made again as shapes come (many image sizes). */
#define DET_MAX_PRIMS 1024

/* One primitive: layer c on input [n][cin][h][w] (or [n][h][w][cin] with the flag DET_NHWC in nhwc, the
 * input and output then in bfloat16 with DET_IN_BF16, DET_OUT_BF16), with or without the sum and the ReLU. */
typedef struct {
	const det_conv *c;
	const float *w_data, *b_data;  /* c's weights and bias when made: a layer at the same place with others is another */
	int n, h, w, acc, relu, nhwc;
	dnnl_primitive_t conv, src_in, dst_in, dst_out;  /* the three reorders are NULL where the layout is plain */
	dnnl_memory_t user_src, user_dst, src, dst, wei, bias;
	dnnl_memory_t scale;                             /* int8: the per-channel factor of the first post-op */
	int owns_wei;                                    /* wei was reordered for this primitive, not borrowed */
	size_t src_bytes, dst_bytes;                     /* of src, dst when they are not the user's */
} det_prim;

struct det_engine {
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	det_prim *p;
	int np;
	void *scratch[4];  /* the converted src and dst, the quantized src and an int8 layer's factors and bias,
	                    * shared by every primitive */
	size_t scratch_size[4];
};

static lx_status dnnl_fail(lx_err *e, const char *what, dnnl_status_t s)
{
	return lx_errf(e, s == dnnl_out_of_memory ? LX_EIO : LX_EMODEL, "oneDNN: %s failed (status %d)", what, (int)s);
}

lx_status det_engine_new(det_engine **out, lx_err *e)
{
	det_engine *g = calloc(1, sizeof *g);
	dnnl_status_t s;

	*out = NULL;
	if (!g)
		return lx_errf(e, LX_EIO, "out of memory");
	if ((s = dnnl_engine_create(&g->engine, dnnl_cpu, 0)) || (s = dnnl_stream_create(&g->stream, g->engine,
	                                                                                   dnnl_stream_default_flags))) {
		det_engine_free(g);
		return dnnl_fail(e, "creating the CPU engine", s);
	}
	*out = g;
	return LX_OK;
}

static void prim_destroy(det_prim *p)
{
	dnnl_primitive_destroy(p->conv);
	dnnl_primitive_destroy(p->src_in);
	dnnl_primitive_destroy(p->dst_in);
	dnnl_primitive_destroy(p->dst_out);
	dnnl_memory_destroy(p->user_src);
	dnnl_memory_destroy(p->user_dst);
	dnnl_memory_destroy(p->src);
	dnnl_memory_destroy(p->dst);
	if (p->owns_wei)
		dnnl_memory_destroy(p->wei);
	dnnl_memory_destroy(p->bias);
	dnnl_memory_destroy(p->scale);
}

static void prims_clear(det_engine *g)
{
	for (int i = 0; i < g->np; i++)
		prim_destroy(&g->p[i]);
	free(g->p);
	g->p = NULL;
	g->np = 0;
}

void det_engine_free(det_engine *g)
{
	if (!g)
		return;
	prims_clear(g);
	for (int i = 0; i < 4; i++)
		free(g->scratch[i]);
	if (g->stream)
		dnnl_stream_destroy(g->stream);
	if (g->engine)
		dnnl_engine_destroy(g->engine);
	free(g);
}

/* A reorder from a to b, or NULL when they are the same layout. */
static dnnl_status_t reorder_make(det_engine *g, const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b,
                                  dnnl_primitive_t *r)
{
	dnnl_primitive_desc_t pd;
	dnnl_status_t s;

	*r = NULL;
	if (dnnl_memory_desc_equal(a, b))
		return dnnl_success;
	if ((s = dnnl_reorder_primitive_desc_create(&pd, a, g->engine, b, g->engine, NULL)))
		return s;
	s = dnnl_primitive_create(r, pd);
	dnnl_primitive_desc_destroy(pd);
	return s;
}

static dnnl_status_t reorder_run(det_engine *g, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
	dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
	return dnnl_primitive_execute(r, g->stream, 2, args);
}

/* The layer's weights in the layout md, reordered once: borrowed from another primitive of the same layer
 * that wants the same layout, or made now. */
static dnnl_status_t weights_for(det_engine *g, det_prim *p, const dnnl_memory_desc_t *plain,
                                 const dnnl_memory_desc_t *md)
{
	dnnl_memory_t user;
	dnnl_primitive_t r;
	dnnl_status_t s;

	for (int i = 0; i < g->np; i++) {
		const dnnl_memory_desc_t *have;
		if (g->p[i].c != p->c || g->p[i].w_data != p->w_data || dnnl_memory_get_memory_desc(g->p[i].wei, &have) || !dnnl_memory_desc_equal(have, md))
			continue;
		p->wei = g->p[i].wei;
		return dnnl_success;
	}
	if ((s = dnnl_memory_create(&p->wei, md, g->engine, DNNL_MEMORY_ALLOCATE)))
		return s;
	p->owns_wei = 1;
	if ((s = dnnl_memory_create(&user, plain, g->engine, p->c->wq ? (void *)p->c->wq : (void *)p->c->w)))
		return s;
	if (!(s = reorder_make(g, plain, md, &r))) {
		if (r) {
			if (!(s = reorder_run(g, r, user, p->wei)))
				s = dnnl_stream_wait(g->stream);
			dnnl_primitive_destroy(r);
		} else {
			void *dst;
			if (!(s = dnnl_memory_get_data_handle(p->wei, &dst)))
				memcpy(dst, p->c->w, dnnl_memory_desc_get_size(md));
		}
	}
	dnnl_memory_destroy(user);
	return s;
}

/* The primitive of c on [n][cin][h][w], made: oneDNN picks the layouts (format any); the plain ones are
 * reordered to them around the convolution. In NHWC the convolution runs in that layout itself (oneDNN's
 * kernels take it), so that the maps pass from one layer to the next as they are. */
static dnnl_status_t prim_make(det_engine *g, det_prim *p)
{
	const det_conv *c = p->c;
	int oh = det_conv_out(c, p->h), ow = det_conv_out(c, p->w), cg = c->cin / c->groups, og = c->cout / c->groups;
	dnnl_dims_t sd = {p->n, c->cin, p->h, p->w}, dd = {p->n, c->cout, oh, ow}, bd = {c->cout};
	dnnl_dims_t wd = {c->cout, cg, c->k, c->k}, gwd = {c->groups, og, cg, c->k, c->k};
	dnnl_dims_t strides = {c->stride, c->stride}, dil = {c->dil - 1, c->dil - 1}, pad = {c->pad, c->pad};
	dnnl_memory_desc_t src_plain, dst_plain, wei_plain, bias_md, src_any, dst_any, wei_any;
	/* of the convolution's src and weights: int8 takes uint8 maps (they follow a ReLU) and int8 weights */
	dnnl_data_type_t dt = c->wq ? dnnl_u8 : c->bf16 ? dnnl_bf16 : dnnl_f32, wdt = c->wq ? dnnl_s8 : dt;
	dnnl_convolution_desc_t cd;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t ops = NULL;
	dnnl_primitive_desc_t pd = NULL;
	const dnnl_memory_desc_t *src_md, *dst_md, *wei_md;
	dnnl_status_t s;

	/* of x and y as the caller has them (int8: x quantized by dnnl_conv_run) */
	dnnl_data_type_t in = c->wq ? dnnl_u8 : p->nhwc & DET_IN_BF16 ? dnnl_bf16 : dnnl_f32;
	dnnl_memory_desc_t scale_md;
	dnnl_dims_t scd = {1, c->cout, 1, 1};
	dnnl_data_type_t out = p->nhwc & DET_OUT_BF16 ? dnnl_bf16 : dnnl_f32;

	dnnl_memory_desc_init_by_tag(&src_plain, 4, sd, in, p->nhwc ? dnnl_nhwc : dnnl_nchw);
	dnnl_memory_desc_init_by_tag(&dst_plain, 4, dd, out, p->nhwc ? dnnl_nhwc : dnnl_nchw);
	if (c->groups > 1)
		dnnl_memory_desc_init_by_tag(&wei_plain, 5, gwd, c->wq ? dnnl_s8 : dnnl_f32, dnnl_goihw);
	else
		dnnl_memory_desc_init_by_tag(&wei_plain, 4, wd, c->wq ? dnnl_s8 : dnnl_f32, dnnl_oihw);
	dnnl_memory_desc_init_by_tag(&scale_md, 4, scd, dnnl_f32, dnnl_nhwc);
	dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_x);
	dnnl_memory_desc_init_by_tag(&src_any, 4, sd, dt, p->nhwc ? dnnl_nhwc : dnnl_format_tag_any);
	dnnl_memory_desc_init_by_tag(&dst_any, 4, dd, out, p->nhwc ? dnnl_nhwc : dnnl_format_tag_any);
	dnnl_memory_desc_init_by_tag(&wei_any, c->groups > 1 ? 5 : 4, c->groups > 1 ? gwd : wd, wdt,
	                             dnnl_format_tag_any);
	if ((s = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
	                                                     &src_any, &wei_any, c->b ? &bias_md : NULL, &dst_any,
	                                                     strides, dil, pad, pad)) ||
	    (s = dnnl_primitive_attr_create(&attr)) || (s = dnnl_post_ops_create(&ops)) ||
	    (c->wq && (s = dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &scale_md))) ||
	    (p->acc && (s = dnnl_post_ops_append_sum(ops, 1.0f))) ||
	    (p->relu && (s = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f))) ||
	    (s = dnnl_primitive_attr_set_post_ops(attr, ops)) ||
	    (s = dnnl_primitive_desc_create(&pd, &cd, attr, g->engine, NULL)))
		goto out;
	src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
	dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
	wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	p->src_bytes = dnnl_memory_desc_get_size(src_md);
	p->dst_bytes = dnnl_memory_desc_get_size(dst_md);
	if ((s = dnnl_primitive_create(&p->conv, pd)) || (s = weights_for(g, p, &wei_plain, wei_md)) ||
	    (s = dnnl_memory_create(&p->user_src, &src_plain, g->engine, DNNL_MEMORY_NONE)) ||
	    (s = dnnl_memory_create(&p->user_dst, &dst_plain, g->engine, DNNL_MEMORY_NONE)) ||
	    (s = dnnl_memory_create(&p->src, src_md, g->engine, DNNL_MEMORY_NONE)) ||
	    (s = dnnl_memory_create(&p->dst, dst_md, g->engine, DNNL_MEMORY_NONE)) ||
	    (c->b && (s = dnnl_memory_create(&p->bias, &bias_md, g->engine, c->wq ? DNNL_MEMORY_NONE : (void *)c->b))) ||
	    (c->wq && (s = dnnl_memory_create(&p->scale, &scale_md, g->engine, DNNL_MEMORY_NONE))) ||
	    (s = reorder_make(g, &src_plain, src_md, &p->src_in)) ||
	    (p->acc && (s = reorder_make(g, &dst_plain, dst_md, &p->dst_in))) ||
	    (s = reorder_make(g, dst_md, &dst_plain, &p->dst_out)))
		goto out;
out:
	dnnl_primitive_desc_destroy(pd);
	dnnl_post_ops_destroy(ops);
	dnnl_primitive_attr_destroy(attr);
	return s;
}

/* The primitive for this layer and shape: found, or made and kept. */
static lx_status prim_get(det_engine *g, const det_conv *c, int n, int h, int w, int acc, int relu, int nhwc,
                          det_prim **out, lx_err *e)
{
	det_prim *p;
	dnnl_status_t s;

	for (int i = 0; i < g->np; i++) {
		p = &g->p[i];
		if (p->c == c && p->w_data == c->w && p->b_data == c->b && p->n == n && p->h == h && p->w == w &&
		    p->acc == acc && p->relu == relu && p->nhwc == nhwc) {
			*out = p;
			return LX_OK;
		}
	}
	if (g->np == DET_MAX_PRIMS)
		prims_clear(g);
	if (!g->p && !(g->p = calloc(DET_MAX_PRIMS, sizeof *g->p)))
		return lx_errf(e, LX_EIO, "out of memory (oneDNN primitives)");
	p = &g->p[g->np];
	*p = (det_prim){.c = c, .w_data = c->w, .b_data = c->b, .n = n, .h = h, .w = w, .acc = acc, .relu = relu,
	                .nhwc = nhwc};
	if ((s = prim_make(g, p))) {
		prim_destroy(p);
		return dnnl_fail(e, "making a convolution", s);
	}
	g->np++;
	*out = p;
	return LX_OK;
}

/* Scratch slot i of at least n bytes. */
static void *scratch(det_engine *g, int i, size_t n)
{
	if (g->scratch_size[i] < n) {
		void *q = NULL;
		free(g->scratch[i]);
		g->scratch[i] = NULL;
		g->scratch_size[i] = 0;
		if (posix_memalign(&q, 64, n))
			return NULL;
		g->scratch[i] = q;
		g->scratch_size[i] = n;
	}
	return g->scratch[i];
}

static lx_status dnnl_conv_run(const det_conv *c, const void *x, int n, int h, int w, void *y, int acc, int relu,
                               int nhwc, lx_err *e)
{
	det_engine *g = c->eng;
	det_prim *p = NULL;
	dnnl_memory_t src, dst;
	dnnl_status_t s;
	lx_status rc;

	if (c->wq && !(nhwc & DET_NHWC))
		return lx_errf(e, LX_EMODEL, "int8 convolutions run on NHWC maps only");
	if ((rc = prim_get(g, c, n, h, w, acc, relu, nhwc, &p, e)))
		return rc;
	if (c->wq) {
		/* x to uint8 by its largest value; the convolution's int32 sums back to float32 by the first post-op,
		 * sum * 1 / (sx * wscale[o]), with the bias put where the sums are: b[o] * sx * wscale[o] */
		size_t nx = (size_t)n * h * w * c->cin;
		unsigned char *q = scratch(g, 2, nx);
		float *v = scratch(g, 3, 2 * (size_t)c->cout * sizeof *v), m;
		double sx;
		if (!q || !v)
			return lx_errf(e, LX_EIO, "out of memory (convolution of %d x %d)", h, w);
		m = det_max(x, nx);
		sx = m > 0.0f ? 255.0 / m : 1.0;
		det_quantize_u8(x, nx, (float)sx, q);
		for (int o = 0; o < c->cout; o++) {
			v[o] = (float)(1.0 / (sx * c->wscale[o]));
			v[c->cout + o] = c->b ? (float)(c->b[o] * sx * c->wscale[o]) : 0.0f;
		}
		x = q;
		if ((s = dnnl_memory_set_data_handle(p->scale, v)) ||
		    (p->bias && (s = dnnl_memory_set_data_handle(p->bias, v + c->cout))))
			return dnnl_fail(e, "binding a convolution's data", s);
	}
	if ((s = dnnl_memory_set_data_handle(p->user_src, (void *)x)) || (s = dnnl_memory_set_data_handle(p->user_dst, y)))
		return dnnl_fail(e, "binding a convolution's data", s);
	src = p->src_in ? p->src : p->user_src;
	dst = p->dst_out ? p->dst : p->user_dst;
	if (p->src_in && !scratch(g, 0, p->src_bytes))
		return lx_errf(e, LX_EIO, "out of memory (convolution of %d x %d)", h, w);
	if (p->dst_out && !scratch(g, 1, p->dst_bytes))
		return lx_errf(e, LX_EIO, "out of memory (convolution of %d x %d)", h, w);
	{
		dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p->wei}, {DNNL_ARG_DST, dst}};
		int na = 3;
		if (p->bias)
			args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias};
		if (p->scale)
			args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, p->scale};
		if ((p->src_in && ((s = dnnl_memory_set_data_handle(p->src, g->scratch[0])) ||
		                   (s = reorder_run(g, p->src_in, p->user_src, p->src)))) ||
		    (p->dst_out && (s = dnnl_memory_set_data_handle(p->dst, g->scratch[1]))) ||
		    (p->dst_in && (s = reorder_run(g, p->dst_in, p->user_dst, p->dst))) ||
		    (s = dnnl_primitive_execute(p->conv, g->stream, na, args)) ||
		    (p->dst_out && (s = reorder_run(g, p->dst_out, p->dst, p->user_dst))) ||
		    (s = dnnl_stream_wait(g->stream)))
			return dnnl_fail(e, "running a convolution", s);
	}
	return LX_OK;
}

lx_status det_engine_bf16(det_engine *g, lx_err *e)
{
	if (!g || (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) != dnnl_cpu_isa_avx512_core_bf16)
		return lx_errf(e, LX_EMODEL, "bfloat16 convolutions need oneDNN on a CPU with avx512_bf16");
	prims_clear(g);
	return LX_OK;
}

lx_status det_engine_int8(det_engine *g, lx_err *e)
{
	if (!g || (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_vnni) != dnnl_cpu_isa_avx512_core_vnni)
		return lx_errf(e, LX_EMODEL, "int8 convolutions need oneDNN on a CPU with avx512_vnni");
	prims_clear(g);
	return LX_OK;
}
#else
lx_status det_engine_new(det_engine **out, lx_err *e)
{
	*out = NULL;
	return LX_OK;
}

lx_status det_engine_bf16(det_engine *g, lx_err *e)
{
	return lx_errf(e, LX_EMODEL, "bfloat16 convolutions need oneDNN on a CPU with avx512_bf16 (built without it)");
}

lx_status det_engine_int8(det_engine *g, lx_err *e)
{
	return lx_errf(e, LX_EMODEL, "int8 convolutions need oneDNN on a CPU with avx512_vnni (built without it)");
}

void det_engine_free(det_engine *g)
{
}
#endif

/* ---- im2col + sgemm ---- */

lx_status det_conv_run(const det_conv *c, const float *x, int batch, int h, int w, float *y, int accumulate, int relu,
                       lx_err *e)
{
	int oh = det_conv_out(c, h), ow = det_conv_out(c, w), cg = c->cin / c->groups, og = c->cout / c->groups;
	int direct = c->k == 1 && c->stride == 1 && c->pad == 0, kk = cg * c->k * c->k, b, g, o;
	size_t plane = (size_t)oh * ow;
	float *col = NULL;

#ifdef LX_DNNL
	if (c->eng)
		return dnnl_conv_run(c, x, batch, h, w, y, accumulate, relu, 0, e);
#endif
	if (!direct && !(col = malloc((size_t)kk * plane * sizeof *col + 1)))
		return lx_errf(e, LX_EIO, "out of memory (convolution of %d x %d)", h, w);
	for (b = 0; b < batch; b++) {
		const float *xb = x + (size_t)b * c->cin * h * w;
		float *yb = y + (size_t)b * c->cout * plane;
		for (o = 0; o < c->cout; o++) {
			float *yo = yb + (size_t)o * plane, bias = c->b ? c->b[o] : 0.0f;
			size_t i;
			if (accumulate)
				for (i = 0; i < plane; i++)
					yo[i] += bias;
			else
				for (i = 0; i < plane; i++)
					yo[i] = bias;
		}
		for (g = 0; g < c->groups; g++) {
			const float *src = xb + (size_t)g * cg * h * w;
			if (!direct) {
				im2col(c, xb, g * cg, cg, h, w, oh, ow, col);
				src = col;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, og, (int)plane, kk, 1.0f,
			            c->w + (size_t)g * og * kk, kk, src, (int)plane, 1.0f, yb + (size_t)g * og * plane, (int)plane);
		}
		if (relu)
			for (size_t i = 0; i < (size_t)c->cout * plane; i++)
				yb[i] = yb[i] > 0.0f ? yb[i] : 0.0f;
	}
	free(col);
	return LX_OK;
}

lx_status det_conv_run_bf16(const det_conv *c, const void *x, int batch, int h, int w, void *y, int accumulate,
                            int relu, int io, lx_err *e)
{
#ifdef LX_DNNL
	if (c->eng && c->bf16)
		return dnnl_conv_run(c, x, batch, h, w, y, accumulate, relu, DET_NHWC | io, e);
#endif
	return lx_errf(e, LX_EMODEL, "bfloat16 maps need a layer in bfloat16");
}

lx_status det_conv_run_nhwc(const det_conv *c, const float *x, int batch, int h, int w, float *y, int accumulate,
                            int relu, lx_err *e)
{
	int oh = det_conv_out(c, h), ow = det_conv_out(c, w);
	size_t nx = (size_t)batch * c->cin * h * w, ny = (size_t)batch * c->cout * oh * ow;
	float *xc, *yc;
	lx_status rc;

#ifdef LX_DNNL
	if (c->eng)
		return dnnl_conv_run(c, x, batch, h, w, y, accumulate, relu, DET_NHWC, e);
#endif
	if (!(xc = malloc((nx + ny) * sizeof *xc + 1)))
		return lx_errf(e, LX_EIO, "out of memory (convolution of %d x %d)", h, w);
	yc = xc + nx;
	det_transpose(x, batch, h * w, c->cin, xc);
	if (accumulate)
		det_transpose(y, batch, oh * ow, c->cout, yc);
	if (!(rc = det_conv_run(c, xc, batch, h, w, yc, accumulate, relu, e)))
		det_transpose(yc, batch, c->cout, oh * ow, y);
	free(xc);
	return rc;
}

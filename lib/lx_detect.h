/*
 * lx_detect.h - the Faster R-CNN that LXMERT's region features come from (Hugging Face's LXMERT demo, the hub's
 * unc-nlp/frcnn-vg-finetuned: ResNet C4, RPN, RoIPool, res5, Visual Genome objects and attributes), in float32:
 * from a photo to the fields of an image record (formats/feat-stream.md).
 *
 * A model directory holds config.yaml (the demo's Config layout, formats/frcnn-config.md) and model.safetensors
 * (the hub's tensor names). lx_detector_open reads both, checks every tensor's name and shape against the
 * config and folds each BatchNorm into its convolution. lx_detect runs one image.
 *
 * Ownership follows lx_core.h. A detector is not shared between threads while it runs (it keeps scratch
 * buffers); open one per thread.
 */
#ifndef LX_DETECT_H
#define LX_DETECT_H

#include <stdint.h>

#include "lx_core.h"
#include "lx_image.h"

#define LX_DETECT_MAX_LIST 16  /* the longest list the config may give (anchor sizes, ratios, thresholds) */

/* What config.yaml says, in the demo's names. Keys the detector does not use are ignored. */
typedef struct {
	double pixel_mean[3], pixel_std[3];  /* MODEL.PIXEL_MEAN, PIXEL_STD: per plane fed to the network */
	int caffe_maxpool;                   /* MODEL.MAX_POOL: 3x3 stride 2 with no padding, ceil (else pad 1) */
	int min_size, max_size;              /* INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST */
	int bgr;                             /* INPUT.FORMAT: 1 "BGR" (RGB planes are fed, as the demo does), 0 "RGB" */
	int depth;                           /* RESNETS.DEPTH: 50, 101 or 152 */
	int groups, width_per_group;         /* RESNETS.NUM_GROUPS, WIDTH_PER_GROUP */
	int stem_out, res2_out;              /* RESNETS.STEM_OUT_CHANNELS, RES2_OUT_CHANNELS */
	int stride_in_1x1;                   /* RESNETS.STRIDE_IN_1X1 */
	int nsizes, nratios;                 /* ANCHOR_GENERATOR.SIZES[0], ASPECT_RATIOS[0] */
	double sizes[LX_DETECT_MAX_LIST], ratios[LX_DETECT_MAX_LIST];
	double anchor_offset;                /* ANCHOR_GENERATOR.OFFSET */
	int rpn_hidden;                      /* PROPOSAL_GENERATOR.HIDDEN_CHANNELS (-1: res4's channels) */
	double rpn_min_size;                 /* PROPOSAL_GENERATOR.MIN_SIZE */
	double rpn_nms;                      /* RPN.NMS_THRESH */
	int pre_nms_topk, post_nms_topk;     /* RPN.PRE_NMS_TOPK_TEST, POST_NMS_TOPK_TEST */
	double rpn_weights[4];               /* RPN.BBOX_REG_WEIGHTS */
	int classes, attrs;                  /* ROI_HEADS.NUM_CLASSES, ROI_BOX_HEAD.NUM_ATTRS */
	int pooler;                          /* ROI_BOX_HEAD.POOLER_RESOLUTION */
	int res5_halve;                      /* ROI_BOX_HEAD.RES5HALVE (0: res5 keeps the pooled size, dilation 2) */
	int agnostic;                        /* ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG */
	double box_weights[4];               /* ROI_BOX_HEAD.BBOX_REG_WEIGHTS */
	int nnms;                            /* ROI_HEADS.NMS_THRESH_TEST: tried in turn */
	double nms[LX_DETECT_MAX_LIST];
	int max_det, min_det;                /* MAX_DETECTIONS, MIN_DETECTIONS */
} lx_detect_config;

/* Reads config.yaml with libyaml. LX_EMODEL naming the file and the key on a missing or unusable value. */
lx_status lx_detect_config_read(lx_detect_config *c, const char *path, lx_err *e);

typedef struct lx_detector lx_detector;

/* Opens DIR (config.yaml, model.safetensors). LX_EMODEL naming the file and tensor on any mismatch. */
lx_status lx_detector_open(lx_detector **out, const char *dir, lx_err *e);
void lx_detector_free(lx_detector *d);
/* Runs res5 (nine tenths of the work at the real shapes) in bfloat16 from now on (instead of int8 if that was
 * asked): weights rounded once per layer, inputs at each convolution, float32 sums and outputs. The backbone,
 * the RPN (so the proposals) and the linear heads stay float32. Faster, with features and scores that move a
 * little (README.md, "lx-detect"). LX_EMODEL without oneDNN or on a CPU without avx512_bf16. */
lx_status lx_detector_bf16(lx_detector *d, lx_err *e);
/* Runs res5 in int8 from now on (instead of bfloat16 if that was asked): weights quantized once per output
 * channel, each convolution's input to uint8 by its largest value over the batch of proposals, int32 sums,
 * float32 outputs. The backbone, the RPN and the heads stay float32. A photo in 0.7 times --bf16's time, with
 * features and scores that move more (README.md, "lx-detect"). LX_EMODEL without oneDNN or on a CPU without
 * avx512_vnni. */
lx_status lx_detector_int8(lx_detector *d, lx_err *e);
/* The detector's config; the caller may change max_det and min_det (nothing else) between images. */
lx_detect_config *lx_detector_config(lx_detector *d);

/* One image's detections: the fields of an image record. */
typedef struct {
	int img_h, img_w;    /* the image as decoded */
	int n, dim;          /* boxes; feature size (res5's channels) */
	float *boxes;        /* [n,4] x1, y1, x2, y2 in the image's pixels */
	float *visual_pos;   /* [n,4] the boxes divided by the image's size */
	float *feats;        /* [n,dim] res5 over the box, averaged over space */
	int32_t *obj_ids;    /* [n] the best class without background */
	float *obj_conf;     /* [n] its probability */
	int32_t *attr_ids;   /* [n] the best attribute without the last ("no attribute") */
	float *attr_conf;    /* [n] its probability */
} lx_detection;

/* Every stage the demo's code can be compared on, kept when a trace is passed to lx_detect. */
typedef struct {
	int h, w;            /* the resized image */
	float scale_y, scale_x; /* original size / resized size, in float32 */
	float *image;        /* [3,h,w] after resizing and normalising */
	int fc, fh, fw;      /* res4's channels and size */
	float *res4;         /* [fc,fh,fw] */
	int p;               /* proposals after the RPN's NMS */
	float *proposals;    /* [p,4] in the resized image's pixels */
	float *objectness;   /* [p] */
	float *roi_pooled;   /* [p,dim] */
	float *obj_logits;   /* [p,classes+1] */
	float *attr_logits;  /* [p,attrs+1] */
	float *box_deltas;   /* [p,4*classes] (4 when class-agnostic) */
} lx_detect_trace;

/* Detects the objects of im (RGB). trace may be NULL. LX_EINPUT for an image too small for the network (the
 * message says why), LX_EIO when memory runs out. */
lx_status lx_detect(lx_detector *d, const lx_image *im, lx_detection *out, lx_detect_trace *trace, lx_err *e);
void lx_detection_destroy(lx_detection *r);
void lx_detect_trace_destroy(lx_detect_trace *t);

#endif

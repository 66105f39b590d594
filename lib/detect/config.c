/* config.c - the detector's config.yaml (the demo's Config layout), read with libyaml's document API. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "lx_detect.h"

typedef struct {
	yaml_document_t doc;
	const char *path;
	lx_err *e;
	lx_status rc;
} yconf;

/* The node at a dotted path of mapping keys ("RPN.NMS_THRESH"), or NULL. */
static yaml_node_t *lookup(yconf *y, const char *key)
{
	yaml_node_t *n = yaml_document_get_root_node(&y->doc);
	const char *p = key;

	while (n && *p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		yaml_node_pair_t *pair;
		yaml_node_t *found = NULL;

		if (n->type != YAML_MAPPING_NODE)
			return NULL;
		for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
			yaml_node_t *k = yaml_document_get_node(&y->doc, pair->key);
			if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == len &&
			    !memcmp(k->data.scalar.value, p, len)) {
				found = yaml_document_get_node(&y->doc, pair->value);
				break;
			}
		}
		n = found;
		p = dot ? dot + 1 : p + len;
	}
	return n;
}

static yaml_node_t *need(yconf *y, const char *key)
{
	yaml_node_t *n;

	if (y->rc)
		return NULL;
	if (!(n = lookup(y, key)))
		y->rc = lx_errf(y->e, LX_EMODEL, "%s: no key %s", y->path, key);
	return n;
}

static int scalar_num(yaml_node_t *n, double *v)
{
	char *end;

	if (!n || n->type != YAML_SCALAR_NODE || !n->data.scalar.length)
		return -1;
	errno = 0;
	*v = strtod((const char *)n->data.scalar.value, &end);
	return *end || errno || !isfinite(*v) ? -1 : 0;
}

static double num(yconf *y, const char *key)
{
	yaml_node_t *n = need(y, key);
	double v = 0;

	if (n && scalar_num(n, &v))
		y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s is not a number", y->path, key);
	return v;
}

/* An integer in [lo, hi]. */
static int integer(yconf *y, const char *key, long lo, long hi)
{
	double v = num(y, key);

	if (!y->rc && (v != floor(v) || v < lo || v > hi))
		y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s is %g, expected an integer in [%ld, %ld]", y->path, key, v, lo, hi);
	return (int)v;
}

static int boolean(yconf *y, const char *key)
{
	yaml_node_t *n = need(y, key);
	const char *s;

	if (!n)
		return 0;
	s = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
	if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
		return 1;
	if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
		return 0;
	y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s is not true or false", y->path, key);
	return 0;
}

static int string_is(yconf *y, const char *key, const char *want)
{
	yaml_node_t *n = need(y, key);

	return n && n->type == YAML_SCALAR_NODE && !strcmp((const char *)n->data.scalar.value, want);
}

/* A list of numbers: a scalar alone (one value), a sequence, or (nested) the sequence's first sequence, as
 * ANCHOR_GENERATOR.SIZES gives one list per feature map. At least one value, at most LX_DETECT_MAX_LIST. */
static int list(yconf *y, const char *key, double *v, int nested)
{
	yaml_node_t *n = need(y, key);
	yaml_node_item_t *it;
	int k = 0;

	if (!n)
		return 0;
	if (n->type == YAML_SCALAR_NODE) {
		if (scalar_num(n, v))
			goto bad;
		return 1;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		goto bad;
	if (nested) {
		if (n->data.sequence.items.top - n->data.sequence.items.start != 1) {
			y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s holds several lists, expected one (one feature map, res4)",
			                y->path, key);
			return 0;
		}
		n = yaml_document_get_node(&y->doc, *n->data.sequence.items.start);
		if (!n || n->type != YAML_SEQUENCE_NODE)
			goto bad;
	}
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		if (k == LX_DETECT_MAX_LIST || scalar_num(yaml_document_get_node(&y->doc, *it), &v[k]))
			goto bad;
		k++;
	}
	if (k)
		return k;
bad:
	y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s is not a list of 1 to %d numbers", y->path, key, LX_DETECT_MAX_LIST);
	return 0;
}

static void exactly(yconf *y, const char *key, double *v, int n)
{
	double tmp[LX_DETECT_MAX_LIST];
	int k = list(y, key, tmp, 0);

	if (!y->rc && k != n)
		y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s has %d values, expected %d", y->path, key, k, n);
	else if (!y->rc)
		memcpy(v, tmp, (size_t)n * sizeof *v);
}

/* Values the detector does not implement otherwise: the demo's only layout. */
static void require(yconf *y, int ok, const char *key, const char *what)
{
	if (!y->rc && !ok)
		y->rc = lx_errf(y->e, LX_EMODEL, "%s: %s must be %s", y->path, key, what);
}

/* A list of one name, res4: the C4 detector has one feature map. */
static void res4_only(yconf *y, const char *key)
{
	yaml_node_t *n = need(y, key), *f = NULL;

	if (n && n->type == YAML_SEQUENCE_NODE && n->data.sequence.items.top - n->data.sequence.items.start == 1)
		f = yaml_document_get_node(&y->doc, *n->data.sequence.items.start);
	require(y, f && f->type == YAML_SCALAR_NODE && !strcmp((const char *)f->data.scalar.value, "res4"), key,
	        "[res4]");
}

static void read_all(yconf *y, lx_detect_config *c)
{
	int i;

	exactly(y, "MODEL.PIXEL_MEAN", c->pixel_mean, 3);
	exactly(y, "MODEL.PIXEL_STD", c->pixel_std, 3);
	for (i = 0; i < 3 && !y->rc; i++)
		require(y, c->pixel_std[i] != 0, "MODEL.PIXEL_STD", "non-zero");
	c->caffe_maxpool = boolean(y, "MODEL.MAX_POOL");
	c->min_size = integer(y, "INPUT.MIN_SIZE_TEST", 1, 100000);
	c->max_size = integer(y, "INPUT.MAX_SIZE_TEST", 1, 100000);
	c->bgr = string_is(y, "INPUT.FORMAT", "BGR");
	require(y, c->bgr || string_is(y, "INPUT.FORMAT", "RGB"), "INPUT.FORMAT", "BGR or RGB");
	require(y, integer(y, "SIZE_DIVISIBILITY", 0, 0) == 0, "SIZE_DIVISIBILITY", "0");
	c->depth = integer(y, "RESNETS.DEPTH", 50, 152);
	require(y, c->depth == 50 || c->depth == 101 || c->depth == 152, "RESNETS.DEPTH", "50, 101 or 152");
	require(y, string_is(y, "RESNETS.NORM", "BN") || string_is(y, "RESNETS.NORM", "FrozenBN"), "RESNETS.NORM",
	        "BN or FrozenBN");
	c->groups = integer(y, "RESNETS.NUM_GROUPS", 1, 1024);
	c->width_per_group = integer(y, "RESNETS.WIDTH_PER_GROUP", 1, 65536);
	c->stem_out = integer(y, "RESNETS.STEM_OUT_CHANNELS", 1, 65536);
	c->res2_out = integer(y, "RESNETS.RES2_OUT_CHANNELS", 2, 65536);
	c->stride_in_1x1 = boolean(y, "RESNETS.STRIDE_IN_1X1");
	res4_only(y, "RESNETS.OUT_FEATURES");
	res4_only(y, "RPN.IN_FEATURES");
	res4_only(y, "ROI_HEADS.IN_FEATURES");
	c->nsizes = list(y, "ANCHOR_GENERATOR.SIZES", c->sizes, 1);
	c->nratios = list(y, "ANCHOR_GENERATOR.ASPECT_RATIOS", c->ratios, 1);
	for (i = 0; i < c->nsizes; i++)
		require(y, c->sizes[i] > 0, "ANCHOR_GENERATOR.SIZES", "positive");
	for (i = 0; i < c->nratios; i++)
		require(y, c->ratios[i] > 0, "ANCHOR_GENERATOR.ASPECT_RATIOS", "positive");
	c->anchor_offset = num(y, "ANCHOR_GENERATOR.OFFSET");
	require(y, c->anchor_offset >= 0 && c->anchor_offset < 1, "ANCHOR_GENERATOR.OFFSET", "in [0, 1)");
	c->rpn_hidden = integer(y, "PROPOSAL_GENERATOR.HIDDEN_CHANNELS", -1, 65536);
	require(y, c->rpn_hidden != 0, "PROPOSAL_GENERATOR.HIDDEN_CHANNELS", "-1 or positive");
	c->rpn_min_size = num(y, "PROPOSAL_GENERATOR.MIN_SIZE");
	c->rpn_nms = num(y, "RPN.NMS_THRESH");
	c->pre_nms_topk = integer(y, "RPN.PRE_NMS_TOPK_TEST", 1, 1000000);
	c->post_nms_topk = integer(y, "RPN.POST_NMS_TOPK_TEST", 1, 1000000);
	exactly(y, "RPN.BBOX_REG_WEIGHTS", c->rpn_weights, 4);
	c->classes = integer(y, "ROI_HEADS.NUM_CLASSES", 1, 1000000);
	c->nnms = list(y, "ROI_HEADS.NMS_THRESH_TEST", c->nms, 0);
	require(y, boolean(y, "ROI_BOX_HEAD.ATTR"), "ROI_BOX_HEAD.ATTR", "true (the attribute head)");
	c->attrs = integer(y, "ROI_BOX_HEAD.NUM_ATTRS", 1, 1000000);
	c->pooler = integer(y, "ROI_BOX_HEAD.POOLER_RESOLUTION", 1, 1024);
	require(y, string_is(y, "ROI_BOX_HEAD.POOLER_TYPE", "ROIPool"), "ROI_BOX_HEAD.POOLER_TYPE", "ROIPool");
	c->res5_halve = boolean(y, "ROI_BOX_HEAD.RES5HALVE");
	c->agnostic = boolean(y, "ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG");
	exactly(y, "ROI_BOX_HEAD.BBOX_REG_WEIGHTS", c->box_weights, 4);
	for (i = 0; i < 4; i++) {
		require(y, c->rpn_weights[i] != 0, "RPN.BBOX_REG_WEIGHTS", "non-zero");
		require(y, c->box_weights[i] != 0, "ROI_BOX_HEAD.BBOX_REG_WEIGHTS", "non-zero");
	}
	c->max_det = integer(y, "MAX_DETECTIONS", 1, 1000000);
	c->min_det = integer(y, "MIN_DETECTIONS", 0, 1000000);
}

lx_status lx_detect_config_read(lx_detect_config *c, const char *path, lx_err *e)
{
	yaml_parser_t parser;
	yconf y = {.path = path, .e = e};
	FILE *f = fopen(path, "rb");
	int ok;

	memset(c, 0, sizeof *c);
	if (!f)
		return lx_errf(e, LX_EMODEL, "%s: %s", path, strerror(errno));
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return lx_errf(e, LX_EIO, "%s: out of memory", path);
	}
	yaml_parser_set_input_file(&parser, f);
	ok = yaml_parser_load(&parser, &y.doc);
	if (!ok) {
		lx_status rc = lx_errf(e, LX_EMODEL, "%s:%lu: not YAML: %s", path, (unsigned long)parser.problem_mark.line + 1,
		                       parser.problem ? parser.problem : "unreadable");
		yaml_parser_delete(&parser);
		fclose(f);
		return rc;
	}
	yaml_parser_delete(&parser);
	fclose(f);
	if (!yaml_document_get_root_node(&y.doc))
		y.rc = lx_errf(e, LX_EMODEL, "%s: empty", path);
	else
		read_all(&y, c);
	yaml_document_delete(&y.doc);
	return y.rc;
}

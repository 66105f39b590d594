/* config.c - config.json with Hugging Face's LxmertConfig names and defaults. */
#include <string.h>

#include <jansson.h>

#include "lx_model.h"

/* An integer field: absent means the default; present must be an integer in [lo, hi]. */
static lx_status get_int(json_t *root, const char *key, int def, int lo, int hi, int *out, const char *path,
                         lx_err *e)
{
	json_t *v = json_object_get(root, key);

	if (!v || json_is_null(v)) {
		*out = def;
		return LX_OK;
	}
	if (!json_is_integer(v))
		return lx_errf(e, LX_EMODEL, "%s: %s is not an integer", path, key);
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return lx_errf(e, LX_EMODEL, "%s: %s %lld is outside [%d, %d]", path, key,
		               (long long)json_integer_value(v), lo, hi);
	*out = (int)json_integer_value(v);
	return LX_OK;
}

static lx_status get_float(json_t *root, const char *key, double def, float *out, const char *path, lx_err *e)
{
	json_t *v = json_object_get(root, key);

	if (!v || json_is_null(v)) {
		*out = (float)def;
		return LX_OK;
	}
	if (!json_is_number(v))
		return lx_errf(e, LX_EMODEL, "%s: %s is not a number", path, key);
	*out = (float)json_number_value(v);
	return LX_OK;
}

/* l_layers, r_layers, x_layers, or the newer num_hidden_layers {language, vision, cross_encoder}. */
static lx_status get_layers(json_t *root, lx_config *c, const char *path, lx_err *e)
{
	static const struct { const char *flat, *nested; int def; size_t off; } f[] = {
		{"l_layers", "language", 9, offsetof(lx_config, l_layers)},
		{"r_layers", "vision", 5, offsetof(lx_config, r_layers)},
		{"x_layers", "cross_encoder", 5, offsetof(lx_config, x_layers)},
	};
	json_t *nh = json_object_get(root, "num_hidden_layers");
	size_t i;
	lx_status rc;

	if (nh && !json_is_object(nh) && !json_is_null(nh))
		return lx_errf(e, LX_EMODEL, "%s: num_hidden_layers is not an object", path);
	for (i = 0; i < 3; i++) {
		int *dst = (int *)((char *)c + f[i].off), nested;
		int has_flat = json_object_get(root, f[i].flat) != NULL;
		if ((rc = get_int(root, f[i].flat, f[i].def, 0, 1000, dst, path, e)))
			return rc;
		if (!json_is_object(nh) || !json_object_get(nh, f[i].nested))
			continue;
		if ((rc = get_int(nh, f[i].nested, 0, 0, 1000, &nested, path, e)))
			return lx_errf(e, LX_EMODEL, "%s: num_hidden_layers.%s is not an integer in [0, 1000]", path,
			               f[i].nested);
		if (has_flat && nested != *dst)
			return lx_errf(e, LX_EMODEL, "%s: %s %d disagrees with num_hidden_layers.%s %d", path, f[i].flat,
			               *dst, f[i].nested, nested);
		*dst = nested;
	}
	return LX_OK;
}

lx_status lx_config_parse(lx_config *c, const char *text, size_t len, const char *path, lx_err *e)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, 0, &je), *act;
	lx_status rc = LX_OK;

	memset(c, 0, sizeof *c);
	if (!root)
		return lx_errf(e, LX_EMODEL, "%s: line %d: not valid JSON: %s", path, je.line, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return lx_errf(e, LX_EMODEL, "%s: not a JSON object", path);
	}
#define INT(k, d, lo, hi) \
	if (!rc) rc = get_int(root, #k, d, lo, hi, &c->k, path, e)
	INT(vocab_size, 30522, 1, 1 << 24);
	INT(hidden_size, 768, 1, 1 << 16);
	INT(num_attention_heads, 12, 1, 1 << 10);
	INT(intermediate_size, 3072, 1, 1 << 18);
	INT(max_position_embeddings, 512, 1, 1 << 20);
	INT(type_vocab_size, 2, 1, 1 << 10);
	INT(visual_feat_dim, 2048, 1, 1 << 16);
	INT(visual_pos_dim, 4, 4, 4);
	INT(num_qa_labels, 9500, 0, 1 << 24);
	INT(num_object_labels, 1600, 0, 1 << 24);
	INT(num_attr_labels, 400, 0, 1 << 24);
#undef INT
	if (!rc)
		rc = get_layers(root, c, path, e);
	if (!rc)
		rc = get_float(root, "layer_norm_eps", 1e-12, &c->layer_norm_eps, path, e);
	if (!rc)
		rc = get_float(root, "visual_loss_normalizer", 6.67, &c->visual_loss_normalizer, path, e);
	if (!rc && (act = json_object_get(root, "hidden_act")) != NULL) {
		const char *s = json_is_string(act) ? json_string_value(act) : "";
		if (strcmp(s, "gelu") == 0)
			c->gelu_tanh = 0;
		else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
			c->gelu_tanh = 1;
		else
			rc = lx_errf(e, LX_EMODEL, "%s: hidden_act \"%s\" is not supported (gelu, gelu_new)", path, s);
	}
	if (!rc && c->hidden_size % c->num_attention_heads)
		rc = lx_errf(e, LX_EMODEL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
		             c->hidden_size, c->num_attention_heads);
	json_decref(root);
	return rc;
}

/*
 * lx_ckpt.h - PyTorch checkpoints without Python: reading state dicts, mapping the authors' names to
 * Hugging Face's, inferring an LXMERT config, and writing safetensors (formats/pytorch-checkpoint.md,
 * lx-convert(1)).
 *
 * Ownership and errors as in lx_core.h. Writing safetensors is in lx_fmt.h.
 */
#ifndef LX_CKPT_H
#define LX_CKPT_H

#include "lx_model.h"

/* ---- reading a checkpoint ---------------------------------------------------------------------------- */
/*
 * Both layouts torch.save writes: the zip archive (torch >= 1.6) and the legacy sequence of pickles. The
 * pickles are interpreted, never executed: only data opcodes and an allow-list of globals are read
 * (lx_pickle.h); any other global is refused before anything else happens. The file is mapped read-only;
 * a tensor whose view is contiguous points into the mapping (tied tensors share their bytes), any other view
 * is copied once into memory the lx_ckpt owns. Every offset, length and view is checked against the file.
 */
typedef struct lx_ckpt lx_ckpt;

/* Opens path. LX_EIO if it cannot be read, LX_EMODEL if it is not a usable checkpoint; the message names the
 * file and, where there is one, the tensor. */
lx_status lx_ckpt_open(lx_ckpt **out, const char *path, lx_err *e);
/* The same on bytes in memory (buf must outlive the lx_ckpt); name is used in messages. */
lx_status lx_ckpt_open_mem(lx_ckpt **out, const void *buf, size_t len, const char *name, lx_err *e);
void lx_ckpt_free(lx_ckpt *c);
int lx_ckpt_count(const lx_ckpt *c);
/* The i-th tensor in the file's order: its name, and (if t) its dtype, shape and contiguous row-major data. */
const char *lx_ckpt_name(const lx_ckpt *c, int i, lx_tensor *t);
/* "zip" or "legacy". */
const char *lx_ckpt_format(const lx_ckpt *c);

/* ---- the detector (lx-detect(1)) -------------------------------------------------------------------- */

/* Whether c is the LXMERT demo's Faster R-CNN (it holds backbone.stem.conv1.weight and
 * proposal_generator.rpn_head.conv.weight) rather than an LXMERT. */
int lx_ckpt_is_detector(const lx_ckpt *c);
/* *out (malloc'ed, freed by the caller; names and data borrowed from c) gets the detector's tensors to write as
 * model.safetensors, sorted by name, under the names they have in c; BatchNorm's num_batches_tracked are left
 * out. LX_EMODEL, naming the tensor, for any other tensor that is not a float. path is for messages. */
lx_status lx_ckpt_detector_entries(const lx_ckpt *c, lx_st_entry **out, int *n, const char *path, lx_err *e);

/* ---- names and config -------------------------------------------------------------------------------- */

/* Hugging Face's name for a state-dict key of HF or of the authors' code (airsplay/lxmert): "module." is
 * dropped wherever nn.DataParallel put it (at the start or inside, as in lxrt_encoder.model.module.bert.), "bert." and "lxrt_encoder.model.bert." become "lxmert.", "logit_fc." becomes
 * "answer_head.logit_fc.", and the keys of a bare LxmertModel ("embeddings.", "encoder.", "pooler.") get
 * "lxmert.". Writes into buf (n bytes) and returns buf, or NULL if the name does not fit. */
const char *lx_ckpt_hf_name(const char *key, char *buf, size_t n);

/* The authors' NLVR2 classifier: when the tensors t[0..n) (HF names, after lx_ckpt_hf_name) hold an answer
 * head over 2H inputs (their logit_fc over the two images' pooled outputs), renames its tensors from
 * answer_head.logit_fc.* to nlvr2_head.logit_fc.* (lx_model.h), in names[0..n), the strings t[i].name points
 * to, and returns 1; else returns 0. */
int lx_ckpt_nlvr2_rename(lx_st_entry *t, int n, char **names);
/* The LX_HEAD_* bits of the heads the tensors t[0..n) (HF names) hold. */
int lx_ckpt_heads_held(const lx_st_entry *t, int n);
/* Copies the config.json src to dst with its task flags (task_qa, task_matched, task_mask_lm,
 * task_obj_predict, visual_obj_loss, visual_attr_loss, visual_feat_loss) set to what heads (LX_HEAD_* bits)
 * holds; flags it lacks stay out, everything else is kept byte for byte. *changed counts the flags changed. */
lx_status lx_ckpt_config_flags(const char *src, const char *dst, int heads, int *changed, lx_err *e);

/* A config inferred from tensors with HF names. */
typedef struct {
	lx_config c;
	int has_mlm, has_match, has_qa, has_obj, has_nlvr2;   /* which heads the tensors hold */
	int heads_given;                           /* num_attention_heads came from the caller */
} lx_ckpt_config;

/* Infers the shapes of c from the tensors t[0..n) (name and src; HF names). num_attention_heads cannot be
 * read from weights: heads > 0 is taken as given, heads 0 means hidden_size / 64 (BERT's head size), an
 * error if that does not divide. Values no tensor holds (hidden_act, layer_norm_eps, visual_loss_normalizer, and the
 * label counts of heads the file lacks) get LXMERT's defaults. LX_EMODEL, naming the tensor, when a tensor
 * the model needs is missing or has a shape that disagrees with the others. path is for messages. */
lx_status lx_ckpt_infer_config(lx_ckpt_config *cfg, const lx_st_entry *t, int n, int heads, const char *path,
                               lx_err *e);
/* Writes cfg as config.json in the layout transformers writes (keys sorted, two-space indent, no
 * final newline, like the fixtures), atomically (lx_write_atomic). */
lx_status lx_ckpt_write_config(const lx_ckpt_config *cfg, const char *path, lx_err *e);

/* ---- int8 -------------------------------------------------------------------------------------------- */

/* The tensors t[0..n) (HF names) for an int8 model.safetensors: every float weight lx_model_int8_tensor
 * names quantized per output channel (lx_quantize_rows) into `name` I8 [out, in] and `name`.scale F32 [out]
 * (formats/safetensors-int8.md), the others as given. The entries, in that order, and the data they point
 * to stay owned by *out until lx_ckpt_int8_free. */
typedef struct lx_ckpt_int8 lx_ckpt_int8;
lx_status lx_ckpt_int8_make(lx_ckpt_int8 **out, const lx_st_entry *t, int n, lx_err *e);
const lx_st_entry *lx_ckpt_int8_entries(const lx_ckpt_int8 *k, int *n);
void lx_ckpt_int8_free(lx_ckpt_int8 *k);

#endif

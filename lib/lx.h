/*
 * lx.h - liblx, LXMERT (Tan & Bansal 2019) in C: the stream, the model and its encoders.
 *
 * Layers, lowest first (lib/LAYERS; a file includes headers of its own layer and those below only):
 *   core < fmt < model < text < feat < nn < ckpt < train < viz
 *
 * This header gathers the layers most tools use; each layer's public header can also be included alone:
 * lx_core.h (errors, tensors, the stream), lx_fmt.h (safetensors), lx_model.h (config and model directory),
 * lx_encoder.h (the encoders). The others: lx_names.h, lx_tokenizer.h (text), lx_feat.h (feat), lx_heads.h
 * (nn), lx_ckpt.h (ckpt), lx_train.h (train), lx_image.h, lx_attn.h (viz). Ownership and errors: lx_core.h.
 */
#ifndef LX_H
#define LX_H

#include "lx_core.h"
#include "lx_fmt.h"
#include "lx_model.h"
#include "lx_encoder.h"

#endif

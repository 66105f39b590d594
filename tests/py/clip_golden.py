"""The golden of one clipped AdamW step on tests/fixtures/micro, by torch (lx-train --clip-norm).

    clip_golden.py MICRO_DIR OUT.safetensors

Starts from micro's parameters and the authors' VQA gradients in golden_grads.safetensors (vqa.grad.*). A
tensor that golden_grads' step left as it was is one the loss does not reach: its grad is None, as in the run
that made them; the token-type table, whose gradient is all zero but which the loss reaches, was decayed by
that step, so its grad is the zero tensor. The gradients are clipped with torch.nn.utils.clip_grad_norm_
at a hundredth of their norm, rounded down to 1e-3 (small enough that many come near AdamW's eps, where the
step is not invariant to the scale of the gradient), before one torch.optim.AdamW step (lr 1e-3, betas
0.9/0.999, eps 1e-6, weight decay 0.01). Writes clip.max_norm [1], clip.norm [1] (the norm before clipping)
and clip.adamw1.<param>. As a check of the recipe, the same step without clipping must give golden_grads'
vqa.adamw1.* within 1e-7.
"""
import math
import sys

import numpy as np
import torch

from encode_cases import write_safetensors
from lxtest import read_safetensors


def step(model, grads, max_norm):
    params = {k: torch.nn.Parameter(torch.from_numpy(v.astype(np.float32).copy())) for k, v in model.items()}
    used = []
    for k, p in params.items():
        g = grads.get("vqa.grad." + k)
        if g is not None and np.any(grads["vqa.adamw1." + k] != model[k]):
            p.grad = torch.from_numpy(g.astype(np.float32).copy())
            used.append(p)
    norm = torch.nn.utils.clip_grad_norm_(used, max_norm) if max_norm else None
    opt = torch.optim.AdamW(list(params.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    opt.step()
    return {k: p.detach().numpy() for k, p in params.items()}, norm


def main():
    micro, out = sys.argv[1], sys.argv[2]
    model = read_safetensors(micro + "/model.safetensors")
    grads = read_safetensors(micro + "/golden_grads.safetensors")
    plain, _ = step(model, grads, 0)
    worst = max(float(np.max(np.abs(plain[k] - grads["vqa.adamw1." + k]))) for k in model)
    assert worst <= 1e-7, worst
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for k, g in grads.items()
                          if k.startswith("vqa.grad.")))
    max_norm = math.floor(total / 100 * 1000) / 1000
    clipped, norm = step(model, grads, max_norm)
    tensors = {"clip.max_norm": np.array([max_norm], np.float32), "clip.norm": np.array([float(norm)], np.float32)}
    for k in model:
        tensors["clip.adamw1." + k] = clipped[k]
    write_safetensors(out, tensors)
    print("norm %.6g, clipped at %.6g; the unclipped step agrees with vqa.adamw1 within %.2g" % (norm, max_norm, worst))


if __name__ == "__main__":
    main()

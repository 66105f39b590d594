"""A small random LXMERT checkpoint in the hub's layout whose visual_feat_dim is 128, the width of the features
of tests/fixtures/frcnn-tiny's detector: tests/fixtures/tiny's tensor names and shapes with every 2048 (the
feature width there) made 128, values drawn N(0, 0.02) (LayerNorm gains 1), written as torch.save's zip layout
by ckpt_helper (no torch needed), with tiny's config.json (visual_feat_dim 128) and vocab.txt, for lx-convert.

usage: /usr/bin/python3 tests/py/mklxmert128.py OUTDIR
"""
import json
import os
import shutil
import sys

import numpy as np

import ckpt_helper as h

TINY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "tiny")


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(128)
    sd = h.collections.OrderedDict()
    for i, (name, entry) in enumerate(h.read_st(os.path.join(TINY, "model.safetensors"))[0].items()):
        shape = [128 if d == 2048 else d for d in entry[1]]
        x = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if "LayerNorm.weight" in name or name.endswith("layer_norm.weight"):
            x += 1
        sd[name] = h.Tensor(h.Storage(str(i), "F32", x.tobytes()), 0, x.shape, h.contiguous(x))
    h.save(sd, os.path.join(out, "pytorch_model.bin"), "zip")
    cfg = json.load(open(os.path.join(TINY, "config.json")))
    cfg["visual_feat_dim"] = 128
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(TINY, "vocab.txt"), out)


if __name__ == "__main__":
    main(sys.argv[1])

"""The LXMERT demo's Faster R-CNN at its real shapes with random weights, for bench/detect.sh, and the work it does.

usage: /usr/bin/python3 bench/mkfrcnn.py make DIR      config.yaml, model.safetensors and, where torch imports,
                                                      pytorch_model.bin (the hub's layout) in DIR
       /usr/bin/python3 bench/mkfrcnn.py flops DIR H W P
                                                      GFLOP of one H x W photo with P proposals (2 per multiply-add:
                                                      every convolution and linear layer)
Shapes (unc-nlp/frcnn-vg-finetuned): ResNet-101 C4, res4 1024 and res5 2048 channels, RPN on res4 with 15 anchors,
600/1000 pixels, 6000/300 proposals, 14x14 RoIPool, res5 at 14x14 (the Visual Genome variant), 1600 classes,
400 attributes, 10 to 36 boxes.
"""
import json, math, os, struct, sys

import numpy as np

DEPTH = {50: (3, 4, 6), 101: (3, 4, 23)}
FULL = dict(depth=101, stem=64, res2=256, width=64, rpn=512, classes=1600, attrs=400, sizes=[32, 64, 128, 256, 512],
            ratios=[0.5, 1.0, 2.0], min_size=600, max_size=1000, pre=6000, post=300, pooler=14, maxd=36, mind=10)

CONFIG = """MODEL:
  DEVICE: cpu
  MAX_POOL: true
  META_ARCHITECTURE: GeneralizedRCNN
  PIXEL_MEAN: [102.9801, 115.9465, 122.7717]
  PIXEL_STD: [1.0, 1.0, 1.0]
RESNETS: {{DEPTH: {depth}, NORM: BN, NUM_GROUPS: 1, OUT_FEATURES: [res4], RES2_OUT_CHANNELS: {res2}, RES5_DILATION: 1,
  STEM_OUT_CHANNELS: {stem}, STRIDE_IN_1X1: true, WIDTH_PER_GROUP: {width}}}
BACKBONE: {{FREEZE_AT: 2, NAME: build_resnet_backbone}}
ANCHOR_GENERATOR: {{SIZES: [{sizes}], ASPECT_RATIOS: [{ratios}], OFFSET: 0.0, ANGLES: [[-90, 0, 90]]}}
PROPOSAL_GENERATOR: {{HIDDEN_CHANNELS: {rpn}, MIN_SIZE: 0, NAME: RPN}}
RPN: {{IN_FEATURES: [res4], NMS_THRESH: 0.7, PRE_NMS_TOPK_TEST: {pre}, POST_NMS_TOPK_TEST: {post},
  BBOX_REG_WEIGHTS: [1.0, 1.0, 1.0, 1.0], HEAD_NAME: StandardRPNHead, PRE_NMS_TOPK_TRAIN: 12000,
  POST_NMS_TOPK_TRAIN: 2000, BATCH_SIZE_PER_IMAGE: 256, BOUNDARY_THRESH: -1, IOU_LABELS: [0, -1, 1],
  IOU_THRESHOLDS: [0.3, 0.7], LOSS_WEIGHT: 1.0, POSITIVE_FRACTION: 0.5, SMOOTH_L1_BETA: 0.0}}
ROI_HEADS: {{IN_FEATURES: [res4], NUM_CLASSES: {classes}, NMS_THRESH_TEST: [0.3], SCORE_THRESH_TEST: 0.2,
  NAME: Res5ROIHeads, IOU_LABELS: [0, 1], IOU_THRESHOLDS: [0.5], POSITIVE_FRACTION: 0.25, PROPOSAL_APPEND_GT: true,
  BATCH_SIZE_PER_IMAGE: 512}}
ROI_BOX_HEAD: {{ATTR: true, NUM_ATTRS: {attrs}, POOLER_RESOLUTION: {pooler}, POOLER_SAMPLING_RATIO: 0,
  POOLER_TYPE: ROIPool, RES5HALVE: false, BBOX_REG_WEIGHTS: [10.0, 10.0, 5.0, 5.0], CLS_AGNOSTIC_BBOX_REG: false,
  SMOOTH_L1_BETA: 0.0}}
INPUT: {{MIN_SIZE_TEST: {min_size}, MAX_SIZE_TEST: {max_size}, FORMAT: BGR}}
MAX_DETECTIONS: {maxd}
MIN_DETECTIONS: {mind}
PAD_VALUE: 0
SIZE_DIVISIBILITY: 0
"""


def layers(p):
    """(name, kind, shape): every tensor of the hub's state dict; kind conv_bn, conv, linear, embedding, anchors."""
    out = [("backbone.stem.conv1", "conv_bn", (p["stem"], 3, 7, 7))]
    cin, cout, bott = p["stem"], p["res2"], p["width"]

    def block(prefix, cin, bott, cout):
        if cin != cout:
            out.append((prefix + ".shortcut", "conv_bn", (cout, cin, 1, 1)))
        out.extend([(prefix + ".conv1", "conv_bn", (bott, cin, 1, 1)), (prefix + ".conv2", "conv_bn", (bott, bott, 3, 3)),
                    (prefix + ".conv3", "conv_bn", (cout, bott, 1, 1))])
    for s, n in enumerate(DEPTH[p["depth"]]):
        for i in range(n):
            block("backbone.res%d.%d" % (s + 2, i), cout if i else cin, bott, cout)
        cin, cout, bott = cout, cout * 2, bott * 2
    c4, c5 = cin, p["res2"] * 8
    for i in range(3):
        block("roi_heads.res5.%d" % i, c5 if i else c4, bott, c5)
    a = len(p["sizes"]) * len(p["ratios"])
    out += [("proposal_generator.anchor_generator.cell_anchors.0", "anchors", (a, 4)),
            ("proposal_generator.rpn_head.conv", "conv", (p["rpn"], c4, 3, 3)),
            ("proposal_generator.rpn_head.objectness_logits", "conv", (a, p["rpn"], 1, 1)),
            ("proposal_generator.rpn_head.anchor_deltas", "conv", (4 * a, p["rpn"], 1, 1)),
            ("roi_heads.box_predictor.cls_score", "linear", (p["classes"] + 1, c5)),
            ("roi_heads.box_predictor.bbox_pred", "linear", (4 * p["classes"], c5)),
            ("roi_heads.box_predictor.cls_embedding", "embedding", (p["classes"] + 1, c5 // 8)),
            ("roi_heads.box_predictor.fc_attr", "linear", (c5 // 4, c5 + c5 // 8)),
            ("roi_heads.box_predictor.attr_score", "linear", (p["attrs"] + 1, c5 // 4))]
    return out


def cell_anchors(p):
    rows = []
    for size in p["sizes"]:
        for r in p["ratios"]:
            w = math.sqrt(size * size / r)
            h = r * w
            rows.append([-w / 2, -h / 2, w / 2, h / 2])
    return np.array(rows, np.float32)


def tensors(p, seed=1):
    g = np.random.default_rng(seed)
    t = {}
    for name, kind, shape in layers(p):
        if kind == "anchors":
            t[name] = cell_anchors(p)
            continue
        fan = int(np.prod(shape[1:]))
        # He's scale; the box deltas small, so that proposals are spread boxes, not all the clamped image
        scale = 0.1 / math.sqrt(fan) if "deltas" in name or "bbox" in name else math.sqrt(2.0 / fan)
        w = g.standard_normal(shape, np.float32) * np.float32(scale)
        t[name + ".weight"] = w
        if kind in ("conv", "linear"):
            t[name + ".bias"] = (g.standard_normal(shape[0], np.float32) * np.float32(0.05))
        if kind == "conv_bn":
            small = ".conv3" in name
            t[name + ".norm.weight"] = (g.random(shape[0], np.float32) * np.float32(0.3) + np.float32(0.1 if small else 0.8))
            t[name + ".norm.bias"] = g.standard_normal(shape[0], np.float32) * np.float32(0.05)
            t[name + ".norm.running_mean"] = g.standard_normal(shape[0], np.float32) * np.float32(0.1)
            t[name + ".norm.running_var"] = g.random(shape[0], np.float32) + np.float32(0.5)
    return t


def write_safetensors(path, t):
    head, off = {}, 0
    for k, v in t.items():
        head[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
        off += v.nbytes
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for v in t.values():
            f.write(np.ascontiguousarray(v).tobytes())


def resized(h, w, p):
    s = p["min_size"] / min(h, w)
    if max(h, w) * s > p["max_size"]:
        s = p["max_size"] / max(h, w)
    return int(h * s + 0.5), int(w * s + 0.5)


def flops(p, h, w, props):
    """Multiply-adds x 2 of every convolution and linear layer on an h x w photo (before resizing)."""
    h, w = resized(h, w, p)
    conv_out = lambda n, k, s, pad, d=1: (n + 2 * pad - d * (k - 1) - 1) // s + 1
    h, w = conv_out(h, 7, 2, 3), conv_out(w, 7, 2, 3)
    total = 2 * h * w * p["stem"] * 3 * 49
    h, w = math.ceil((h - 3) / 2) + 1, math.ceil((w - 3) / 2) + 1  # the caffe max-pool
    for name, kind, shape in layers(p):
        k = shape[-1] if kind in ("conv", "conv_bn") else 1
        if name.startswith("backbone.res"):
            stage, blk = int(name.split(".")[1][3:]), int(name.split(".")[2])
            first = blk == 0 and stage > 2 and (name.endswith("conv1") or name.endswith("shortcut"))
            if first:  # the stride-2 1x1 of the stage's first block (and its shortcut): both see the input size
                oh, ow = conv_out(h, 1, 2, 0), conv_out(w, 1, 2, 0)
                total += 2 * oh * ow * shape[0] * shape[1]
                if name.endswith("shortcut"):
                    continue
                h, w = oh, ow
            else:
                total += 2 * h * w * int(np.prod(shape))
        elif name.startswith("roi_heads.res5"):
            total += 2 * props * p["pooler"] ** 2 * int(np.prod(shape))
        elif name.startswith("proposal_generator.rpn_head"):
            total += 2 * h * w * int(np.prod(shape))
        elif kind == "linear":
            total += 2 * props * int(np.prod(shape))
    return total / 1e9


def main():
    p = FULL
    if sys.argv[1:2] == ["make"] and len(sys.argv) == 3:
        d = sys.argv[2]
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.yaml"), "w") as f:
            f.write(CONFIG.format(sizes=p["sizes"], ratios=p["ratios"], **{k: v for k, v in p.items()
                                                                           if k not in ("sizes", "ratios")}))
        t = tensors(p)
        write_safetensors(os.path.join(d, "model.safetensors"), t)
        try:
            import torch
        except ImportError:
            return
        sd = {k: torch.from_numpy(v) for k, v in t.items()}
        for name, kind, _ in layers(p):
            if kind == "conv_bn":
                sd[name + ".norm.num_batches_tracked"] = torch.tensor(0)
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    elif sys.argv[1:2] == ["flops"] and len(sys.argv) == 6:
        print("%.1f" % flops(p, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

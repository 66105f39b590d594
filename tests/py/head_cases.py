"""Inputs, model directories and checks for tests/lx-head.bats, with numpy, json, csv and msgpack only.

  head_cases.py labelled GOLDEN                 golden case 6's inputs and labels as a record (for lx-encode)
  head_cases.py outputs GOLDEN [CASE...]        records holding the golden encoder outputs (pooled_output,
                                                language_output, vision_output), input_ids, visual_feats and
                                                `case`, `question_id` 1000+case, `sent`
  head_cases.py compare GOLDEN < STREAM         the head outputs against the golden ones within 1e-4
  head_cases.py loss GOLDEN < STREAM            case 6's `loss` against the golden total within 1e-4 relative
  head_cases.py model SRC DST KIND [N]          a model directory from SRC: qa N (an answer head of N answers,
                                                seeded random weights), no-qa (no answer head), no-heads
  head_cases.py answer-head DIR GOLDEN CASE     the answer logits of DIR's answer head on the golden
                                                pooled_output, one a line (numpy)
  head_cases.py text-labels JSON TXT            writes a label2ans JSON list as one answer a line
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

from lxtest import INPUTS, golden_cases, read_records, read_safetensors, write_records

TOL = 1e-4
LABEL_FIELDS = ("labels", "matched_label", "ans", "obj_labels", "obj_mask", "attr_labels", "attr_mask", "feat_mask")
HEAD_FIELDS = ("question_answering_score", "cross_relationship_score", "obj_head_obj", "obj_head_attr",
               "obj_head_feat")


def labelled(golden):
    c = golden_cases(golden)[6]
    r = {k: v for k, v in c.items() if k in INPUTS or k in LABEL_FIELDS}
    r["case"] = 6
    write_records([r])


def outputs(golden, want):
    cases = golden_cases(golden)
    recs = []
    for k in want or list(cases):
        c = cases[k]
        r = {"case": k, "question_id": 1000 + k, "sent": "case %d" % k}
        for f in ("input_ids", "visual_feats", "pooled_output", "language_output", "vision_output"):
            r[f] = c[f]
        recs.append(r)
    write_records(recs)


def compare(golden):
    cases = golden_cases(golden)
    recs = read_records()
    bad, worst, n = 0, 0.0, 0
    for r in recs:
        g = cases[r["case"]]
        pairs = [(f, r.get(f), g[f]) for f in HEAD_FIELDS if f in g]
        got = r.get("prediction_logits")
        if "prediction_logits" in g:
            pairs.append(("prediction_logits", got, g["prediction_logits"]))
        else:
            pairs.append(("prediction_logits_pos0", None if got is None else got[0], g["prediction_logits_pos0"]))
        for name, a, b in pairs:
            if a is None:
                print("case %d: missing %s" % (r["case"], name), file=sys.stderr)
                bad += 1
                continue
            a = np.asarray(a)
            if a.shape != b.shape or a.dtype != np.float32:
                print("case %d: %s: %s%s, expected float32%s" % (r["case"], name, a.dtype, a.shape, b.shape),
                      file=sys.stderr)
                bad += 1
                continue
            d = float(np.max(np.abs(a - b)))
            worst = max(worst, d)
            n += 1
            if not d <= TOL:
                print("case %d: %s: max abs difference %.3g" % (r["case"], name, d), file=sys.stderr)
                bad += 1
    print("%d records, %d fields, max abs difference %.3g" % (len(recs), n, worst), file=sys.stderr)
    return 1 if bad or not recs else 0


def loss(golden):
    want = float(golden_cases(golden)[6]["loss"][0])
    recs = [r for r in read_records() if r.get("case") == 6]
    if len(recs) != 1 or "loss" not in recs[0]:
        print("no case 6 record with a loss", file=sys.stderr)
        return 1
    got = float(recs[0]["loss"])
    rel = abs(got - want) / abs(want)
    print("loss %.7g, golden %.7g, relative difference %.3g" % (got, want, rel), file=sys.stderr)
    return 0 if rel <= TOL else 1


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model(src, dst, kind, n=None):
    os.makedirs(dst, exist_ok=True)
    cfg = json.load(open(os.path.join(src, "config.json")))
    t = dict(read_safetensors(os.path.join(src, "model.safetensors")))
    if kind == "qa":
        rng = np.random.default_rng(7)
        hid2 = 2 * cfg["hidden_size"]
        t["answer_head.logit_fc.3.weight"] = rng.standard_normal((int(n), hid2)).astype(np.float32)
        t["answer_head.logit_fc.3.bias"] = rng.standard_normal(int(n)).astype(np.float32)
        cfg["num_qa_labels"] = int(n)
    elif kind == "no-qa":
        t = {k: v for k, v in t.items() if not k.startswith("answer_head.")}
    elif kind == "no-heads":
        t = {k: v for k, v in t.items() if k.startswith("lxmert.")}
    else:
        raise SystemExit("unknown kind " + kind)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=1)
    write_safetensors(os.path.join(dst, "model.safetensors"), t)
    if os.path.exists(os.path.join(src, "vocab.txt")):
        shutil.copy(os.path.join(src, "vocab.txt"), dst)
    return 0


def answer_head(d, golden, case):
    """LxmertVisualAnswerHead in numpy: Linear, gelu (erf), LayerNorm(eps 1e-12), Linear."""
    t = read_safetensors(os.path.join(d, "model.safetensors"))
    x = golden_cases(golden)[int(case)]["pooled_output"].astype(np.float64)
    p = "answer_head.logit_fc."
    h = t[p + "0.weight"] @ x + t[p + "0.bias"]
    h = h * 0.5 * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    h = (h - h.mean()) / np.sqrt(h.var() + 1e-12) * t[p + "2.weight"] + t[p + "2.bias"]
    for v in t[p + "3.weight"] @ h + t[p + "3.bias"]:
        print(repr(float(v)))
    return 0


def text_labels(src, dst):
    with open(dst, "w") as f:
        for a in json.load(open(src)):
            f.write(a + "\n")
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "labelled":
        return labelled(args[0]) or 0
    if cmd == "outputs":
        return outputs(args[0], [int(a) for a in args[1:]]) or 0
    if cmd == "compare":
        return compare(args[0])
    if cmd == "loss":
        return loss(args[0])
    if cmd == "model":
        return model(*args)
    if cmd == "answer-head":
        return answer_head(*args)
    if cmd == "text-labels":
        return text_labels(*args)
    raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    sys.exit(main())

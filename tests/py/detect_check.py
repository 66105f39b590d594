"""Checks lx-detect's records against the demo's own detections (tests/fixtures/frcnn-tiny/golden.safetensors),
read with numpy only.

Usage (Debian's python3):
  detect_check.py golden STREAM FIXTURE [--max-boxes N] [CASE...]
      record i of STREAM is golden case CASE[i] (default: every case of golden.json, in order): the fields and
      dtypes lx-featpack writes, img_id the file name without extension, boxes to 1e-3 pixels, ids equal,
      scores to 1e-5, features within 1e-5 of the largest |feature|; with --max-boxes, the first N detections
  detect_check.py match STREAM FIXTURE BOX FEAT CONF FRAC
      matching detections (a lower-precision run, lx-detect --bf16): each golden detection of each case is
      matched to the record's detection of the same object id whose box is nearest (largest corner difference);
      at least FRAC of them must be matched within BOX pixels and, when matched, have features within FEAT of
      the largest |feature| (relative) and object and attribute scores within CONF; prints the measured figures
      (on stderr) and "ok"
  detect_check.py join JOINED QUESTIONS FILEMODE
      JOINED is QUESTIONS with the image fields of FILEMODE's record of the same img_id added, byte for byte
  detect_check.py questions OUT IMG_ID...          one question record per img_id (a repeated one twice)
Prints "ok" and exits 0 when the check passes; raises otherwise.
"""
import json
import os
import sys

import msgpack
import msgpack_numpy
import numpy as np

from lxtest import read_safetensors

FIELDS = {"img_h": int, "img_w": int, "boxes": "<f4", "visual_pos": "<f4", "visual_feats": "<f4",
          "obj_ids": "<i4", "obj_conf": "<f4", "attr_ids": "<i4", "attr_conf": "<f4"}
GOLDEN = {"boxes": "boxes", "visual_pos": "normalized_boxes", "visual_feats": "roi_features", "obj_ids": "obj_ids",
          "obj_conf": "obj_probs", "attr_ids": "attr_ids", "attr_conf": "attr_probs"}


def records(path):
    return list(msgpack.Unpacker(open(path, "rb"), object_hook=msgpack_numpy.decode, raw=False))


def golden(stream, fixture, args):
    maxb = None
    if args[:1] == ["--max-boxes"]:
        maxb, args = int(args[1]), args[2:]
    meta = json.load(open(os.path.join(fixture, "golden.json")))["cases"]
    cases = [int(c) for c in args] if args else list(range(len(meta)))
    g = read_safetensors(os.path.join(fixture, "golden.safetensors"))
    recs = records(stream)
    assert len(recs) == len(cases), f"{len(recs)} records, expected {len(cases)}"
    for rec, k in zip(recs, cases):
        case = meta[k]
        assert set(rec) == set(FIELDS) | {"img_id"}, sorted(rec)
        assert rec["img_id"] == os.path.splitext(case["image"])[0], rec["img_id"]
        assert [rec["img_h"], rec["img_w"]] == case["raw_hw"], (rec["img_h"], rec["img_w"])
        n = case["detections"] if maxb is None else min(maxb, case["detections"])
        for f, t in FIELDS.items():
            if t is int:
                assert isinstance(rec[f], int), f
                continue
            assert rec[f].dtype == np.dtype(t), (f, rec[f].dtype)
            ref = g[f"case{k}.{GOLDEN[f]}"][:n]
            assert rec[f].shape == ref.shape, (f, rec[f].shape, ref.shape)
            if f.endswith("_ids"):
                assert (rec[f] == ref).all(), (k, f, rec[f], ref)
                continue
            diff = float(np.abs(rec[f].astype(np.float64) - ref).max()) if n else 0.0
            tol = {"boxes": 1e-3, "visual_pos": 1e-5, "obj_conf": 1e-5, "attr_conf": 1e-5,
                   "visual_feats": 1e-5 * float(np.abs(ref).max()) if n else 0}[f]
            assert diff <= tol, (k, f, diff, tol)
    print("ok")


def match(stream, fixture, box_tol, feat_tol, conf_tol, frac):
    meta = json.load(open(os.path.join(fixture, "golden.json")))["cases"]
    g = read_safetensors(os.path.join(fixture, "golden.safetensors"))
    recs = records(stream)
    assert len(recs) == len(meta), f"{len(recs)} records, expected {len(meta)}"
    total = matched = attr_same = 0
    worst = {"box": 0.0, "feat": 0.0, "obj_conf": 0.0, "attr_conf": 0.0}
    for k, rec in enumerate(recs):
        ref = {f: g[f"case{k}.{GOLDEN[f]}"] for f in GOLDEN}
        scale = float(np.abs(ref["visual_feats"]).max()) if len(ref["boxes"]) else 1.0
        for i in range(len(ref["boxes"])):
            total += 1
            same = np.flatnonzero(rec["obj_ids"] == ref["obj_ids"][i])
            if not len(same):
                continue
            d = np.abs(rec["boxes"][same].astype(np.float64) - ref["boxes"][i]).max(axis=1)
            j, d = same[int(d.argmin())], float(d.min())
            if d > box_tol:
                continue
            matched += 1
            attr_same += int(rec["attr_ids"][j] == ref["attr_ids"][i])
            diff = {"box": d,
                    "feat": float(np.abs(rec["visual_feats"][j].astype(np.float64) - ref["visual_feats"][i]).max()) / scale,
                    "obj_conf": abs(float(rec["obj_conf"][j]) - float(ref["obj_conf"][i])),
                    "attr_conf": abs(float(rec["attr_conf"][j]) - float(ref["attr_conf"][i]))}
            for f, v in diff.items():
                worst[f] = max(worst[f], v)
    print(f"{matched}/{total} matched within {box_tol} px; attribute ids equal on {attr_same}; worst: box "
          f"{worst['box']:.4g} px, features {worst['feat']:.4g} of the largest, obj_conf {worst['obj_conf']:.4g}, "
          f"attr_conf {worst['attr_conf']:.4g}", file=sys.stderr)
    assert matched >= frac * total, (matched, total, frac)
    assert worst["feat"] <= feat_tol and worst["obj_conf"] <= conf_tol and worst["attr_conf"] <= conf_tol, worst
    print("ok")


def join(joined, questions, filemode):
    by_id = {r["img_id"]: r for r in records(filemode)}
    out, qs = records(joined), records(questions)
    assert len(out) == len(qs), (len(out), len(qs))
    for o, q in zip(out, qs):
        img = by_id[q["img_id"]]
        want = dict(q)
        want.update({k: v for k, v in img.items() if k != "img_id"})
        assert list(o) == list(want), (list(o), list(want))
        for k, v in want.items():
            if isinstance(v, np.ndarray):
                assert o[k].dtype == v.dtype and o[k].shape == v.shape and (o[k] == v).all(), k
            else:
                assert o[k] == v, k
    print("ok")


def questions(out, ids):
    with open(out, "wb") as f:
        for i, img in enumerate(ids):
            f.write(msgpack.packb({"question_id": i, "img_id": img, "sent": f"what is in {img}?"}))


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "golden":
        golden(a[0], a[1], a[2:])
    elif cmd == "match":
        match(a[0], a[1], *map(float, a[2:6]))
    elif cmd == "join":
        join(*a)
    elif cmd == "questions":
        questions(a[0], a[1:])
    else:
        raise SystemExit(__doc__)

"""Inputs and model directories for tests/lx-encode.bats, made with numpy and msgpack only.

  encode_cases.py record KIND GOLDEN        one record of KIND on stdout (see RECORDS)
  encode_cases.py repeat GOLDEN COUNT       COUNT records cycling through the golden cases, `seq` numbered
  encode_cases.py extras GOLDEN             case 0 with extra fields of every msgpack type
  encode_cases.py check-extras < STREAM     exit 0 if the extra fields came back unchanged
  encode_cases.py check-order COUNT < S     exit 0 if S holds records seq 0..COUNT-1 in order
  encode_cases.py same A B [TOL]            exit 0 if streams A and B hold the same fields within TOL
  encode_cases.py shapes CONFIG < STREAM    exit 0 if every output has the documented shape and dtype
  encode_cases.py model SRC DST KIND        a model directory from SRC: f16, bf16, f32-of-f16, f32-of-bf16,
                                            no-heads, nested-layers, missing, misshapen, unexpected, truncated
"""
import json
import os
import shutil
import struct
import sys

import msgpack
import numpy as np

from lxtest import INPUTS, golden_cases, read_records, read_safetensors, write_records


def case0(golden):
    c = golden_cases(golden)[0]
    return {k: v for k, v in c.items() if k in INPUTS}


def record(kind, golden):
    r = case0(golden)
    if kind == "no-input-ids":
        del r["input_ids"]
    elif kind == "no-visual-feats":
        del r["visual_feats"]
    elif kind == "float-ids":
        r["input_ids"] = r["input_ids"].astype(np.float32)
    elif kind == "int-feats":
        r["visual_feats"] = r["visual_feats"].astype(np.int32)
    elif kind == "rank1-feats":
        r["visual_feats"] = r["visual_feats"].reshape(-1)
    elif kind == "zero-boxes":
        r["visual_feats"] = r["visual_feats"][:0]
        r["visual_pos"] = r["visual_pos"][:0]
    elif kind == "zero-tokens":
        r["input_ids"] = r["input_ids"][:0]
    elif kind == "too-long":
        r["input_ids"] = np.full(65, 1000, np.int32)
    elif kind == "narrow-feats":
        r["visual_feats"] = np.ascontiguousarray(r["visual_feats"][:, :1024])
    elif kind == "id-outside-vocab":
        r["input_ids"] = r["input_ids"].copy()
        r["input_ids"][2] = 30522
    elif kind == "nan-feats":
        r["visual_feats"] = r["visual_feats"].copy()
        r["visual_feats"][3, 7] = np.nan
    elif kind == "int64-ids":
        r["input_ids"] = r["input_ids"].astype(np.int64)
    elif kind == "list-ids":
        r["input_ids"] = [int(x) for x in r["input_ids"]]
    elif kind == "not-a-map":
        r = [1, 2, 3]
    elif kind == "too-many-boxes":
        r["visual_feats"] = np.zeros((4097, 2048), np.float32)
        r["visual_pos"] = np.zeros((4097, 4), np.float32)
    elif kind == "mask-length":
        r["attention_mask"] = np.ones(3, np.int32)
    else:
        raise SystemExit("unknown kind " + kind)
    if isinstance(r, dict):
        r["question_id"] = 77
    write_records([r])


EXTRAS = {
    "question_id": 458752000,
    "img_id": "COCO_val2014_000000000042",
    "sent": "What is on the table?",
    "label": {"net": 1, "ball": 0.3},
    "negative": -5,
    "ratio": 0.25,
    "flag": True,
    "nothing": None,
    "raw": b"\x00\x01\xff",
    "nested": [1, [2, "three"], {"four": 4.5}],
    "ext1": msgpack.ExtType(5, b"a"),
    "ext3": msgpack.ExtType(6, b"abc"),
    "ext300": msgpack.ExtType(7, b"x" * 300),
    "ext70000": msgpack.ExtType(8, b"y" * 70000),
    "big": 2**63 + 5,
    "f32": 1.5,
    "long_text": "z" * 70000,
}


def extras(golden):
    r = case0(golden)
    r.update(EXTRAS)
    write_records([r])


def check_extras():
    (r,) = read_records()
    for k, v in EXTRAS.items():
        if r.get(k) != v:
            print(f"{k}: {r.get(k)!r} != {v!r}", file=sys.stderr)
            return 1
    return 0


def repeat(golden, count):
    cases = golden_cases(golden)
    keys = list(cases)
    recs = []
    for i in range(count):
        c = cases[keys[i % len(keys)]]
        r = {k: v for k, v in c.items() if k in INPUTS}
        r["seq"] = i
        recs.append(r)
    write_records(recs)


def check_order(count):
    recs = read_records()
    seqs = [r["seq"] for r in recs]
    if seqs != list(range(count)):
        print(f"got {len(seqs)} records, first out of order at "
              f"{next((i for i, s in enumerate(seqs) if s != i), len(seqs))}", file=sys.stderr)
        return 1
    return 0


def same(a, b, tol):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ra, rb = read_records(fa), read_records(fb)
    if len(ra) != len(rb) or not ra:
        print(f"{len(ra)} records against {len(rb)}", file=sys.stderr)
        return 1
    worst = 0.0
    for x, y in zip(ra, rb):
        if sorted(x) != sorted(y):
            print("fields differ", file=sys.stderr)
            return 1
        for k in x:
            if isinstance(x[k], np.ndarray):
                if x[k].shape != y[k].shape:
                    print(f"{k}: shapes differ", file=sys.stderr)
                    return 1
                if x[k].size:
                    worst = max(worst, float(np.max(np.abs(x[k].astype(np.float64) - y[k]))))
            elif x[k] != y[k]:
                print(f"{k}: values differ", file=sys.stderr)
                return 1
    print(f"max abs difference {worst:.3g}", file=sys.stderr)
    return 0 if worst <= tol else 1


def shapes(config):
    cfg = json.load(open(config))
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    l, r, x = cfg["l_layers"], cfg["r_layers"], cfg["x_layers"]
    for rec in read_records():
        T, N = len(rec["input_ids"]), len(rec["visual_pos"])
        want = {
            "language_output": (T, H), "vision_output": (N, H), "pooled_output": (H,),
            "language_hidden_states": (l + x, T, H), "vision_hidden_states": (r + x, N, H),
            "language_attentions": (l, nh, T, T), "vision_attentions": (r, nh, N, N),
            "cross_encoder_attentions": (x, nh, T, N), "cross_encoder_vision_attentions": (x, nh, N, T),
            "cross_encoder_language_self_attentions": (x, nh, T, T),
            "cross_encoder_vision_self_attentions": (x, nh, N, N),
        }
        for k, s in want.items():
            v = rec.get(k)
            if not isinstance(v, np.ndarray) or v.shape != s or v.dtype != np.float32:
                print(f"{k}: {getattr(v, 'dtype', type(v))} {getattr(v, 'shape', '')}, expected float32 {s}",
                      file=sys.stderr)
                return 1
        # attention rows are probability distributions
        for k in want:
            if k.endswith("attentions") and not np.allclose(rec[k].sum(-1), 1, atol=1e-5):
                print(f"{k}: rows do not sum to 1", file=sys.stderr)
                return 1
    return 0


def write_safetensors(path, tensors, dtypes=None):
    dtypes = dtypes or {}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        dt = dtypes.get(name, "F32")
        if dt == "F32":
            raw = np.ascontiguousarray(arr, "<f4").tobytes()
        elif dt == "F16":
            raw = np.ascontiguousarray(arr, "<f2").tobytes()
        else:  # BF16: round to nearest even, keep the high half
            u = np.ascontiguousarray(arr, "<f4").view("<u4").astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
            raw = u.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-(len(h) + 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16_round(a):
    u = np.ascontiguousarray(a, "<f4").view("<u4").astype(np.uint64)
    u = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype("<u4")
    return u.view("<f4")


def model(src, dst, kind):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    t = dict(read_safetensors(os.path.join(src, "model.safetensors")))
    dtypes = {}
    out = os.path.join(dst, "model.safetensors")
    if kind in ("f16", "bf16"):
        dtypes = {k: kind.upper() for k in t}
    elif kind == "f32-of-f16":
        t = {k: v.astype(np.float16).astype(np.float32) for k, v in t.items()}
    elif kind == "f32-of-bf16":
        t = {k: bf16_round(v) for k, v in t.items()}
    elif kind == "no-heads":
        t = {k: v for k, v in t.items() if k.startswith("lxmert.")}
    elif kind == "nested-layers":
        cfg = json.load(open(os.path.join(src, "config.json")))
        for k in ("l_layers", "r_layers", "x_layers"):
            del cfg[k]
        json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
    elif kind == "missing":
        del t["lxmert.encoder.x_layers.1.visn_self_att.self.key.bias"]
    elif kind == "misshapen":
        t["lxmert.pooler.dense.weight"] = t["lxmert.pooler.dense.weight"][:, :16]
    elif kind == "unexpected":
        t["lxmert.encoder.x_layers.2.lang_inter.dense.bias"] = np.zeros(64, np.float32)
    elif kind != "truncated":
        raise SystemExit("unknown kind " + kind)
    write_safetensors(out, t, dtypes)
    if kind == "truncated":
        size = os.path.getsize(out)
        with open(out, "r+b") as f:
            f.truncate(size - 1000)


def main():
    a = sys.argv[1:]
    if a[0] == "record":
        return record(a[1], a[2])
    if a[0] == "repeat":
        return repeat(a[1], int(a[2]))
    if a[0] == "extras":
        return extras(a[1])
    if a[0] == "check-extras":
        return check_extras()
    if a[0] == "check-order":
        return check_order(int(a[1]))
    if a[0] == "same":
        return same(a[1], a[2], float(a[3]) if len(a) > 3 else 1e-5)
    if a[0] == "shapes":
        return shapes(a[1])
    if a[0] == "model":
        return model(a[1], a[2], a[3])
    raise SystemExit("unknown command " + a[0])


if __name__ == "__main__":
    sys.exit(main() or 0)

"""Streams for tests/faults.bats: good records for a model, bad ones of many kinds, and a reader that shows
what came out (one line a record). Uses only numpy, msgpack and msgpack_numpy, never the code under test.

    faults.py records DIR N [AT KIND]   N records for the model in DIR; record AT (1-based) is KIND instead
    faults.py repeat DIR COUNT          one record COUNT times (for memory over long streams)
    faults.py show FILE                 "question_id error|- has_language_output" for each record of FILE
"""
import json
import sys

import msgpack
import msgpack_numpy
import numpy as np


def config(d):
    with open(d + "/config.json") as f:
        return json.load(f)


def good(c, i, rng):
    T, N, F = 5, 3, c["visual_feat_dim"]
    ids = np.concatenate([[1], rng.integers(5, c["vocab_size"], T - 2), [2]]).astype(np.int32)
    return {"question_id": 1000 + i, "img_id": "img%d" % i, "input_ids": ids,
            "visual_feats": rng.random((N, F), np.float32), "visual_pos": rng.random((N, 4), np.float32)}


def tensor(dtype, shape, data):
    """A msgpack-numpy map written by hand, so that shape and data may disagree."""
    return {b"nd": True, b"type": dtype, b"kind": b"", b"shape": list(shape), b"data": data}


def bad(kind, c, i, rng):
    r = good(c, i, rng)
    if kind == "no-feats":
        del r["visual_feats"]
    elif kind == "nan-feats":
        r["visual_feats"][1, 2] = np.nan
    elif kind == "inf-pos":
        r["visual_pos"][0, 0] = np.inf
    elif kind == "ids-string":
        r["input_ids"] = "what is this"
    elif kind == "huge-shape":
        r["visual_feats"] = tensor("<f4", [2 ** 31, 2 ** 31], b"\0" * 16)
    elif kind == "id-out-of-range":
        r["input_ids"][1] = c["vocab_size"] + 7
    elif kind == "error":
        r = {"question_id": 1000 + i, "img_id": "img%d" % i, "error": "lx-tokenize: stdin: line %d: earlier" % i}
    elif kind == "not-map":
        return [1, 2, 3]
    else:
        raise SystemExit("faults.py: unknown kind " + kind)
    return r


def pack(r):
    return msgpack.packb(r, default=msgpack_numpy.encode, use_bin_type=True)


def records(d, n, at=0, kind=None):
    c = config(d)
    rng = np.random.default_rng(0)
    out = sys.stdout.buffer
    for i in range(1, n + 1):
        out.write(pack(bad(kind, c, i, rng) if i == at else good(c, i, rng)))


def repeat(d, count):
    one = pack(good(config(d), 1, np.random.default_rng(0)))
    out = sys.stdout.buffer
    chunk = one * 1000
    for _ in range(count // 1000):
        out.write(chunk)
    out.write(one * (count % 1000))


def show(path):
    with open(path, "rb") as f:
        for r in msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False, max_buffer_size=2 ** 31 - 1):
            if not isinstance(r, dict):
                print("not-a-map")
                continue
            print(r.get("question_id", "-"), r.get("error", "-"), int("language_output" in r))


def main():
    a = sys.argv[1:]
    if a[0] == "records":
        records(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 0, a[4] if len(a) > 4 else None)
    elif a[0] == "repeat":
        repeat(a[1], int(a[2]))
    elif a[0] == "show":
        show(a[1])
    else:
        raise SystemExit("usage: faults.py records|repeat|show ...")


main()

"""Test helpers: safetensors files through json + numpy, streams through msgpack + msgpack_numpy.

Nothing here uses the project's code: it is the independent side of every comparison.
"""
import json
import struct
import sys

import msgpack
import msgpack_numpy
import numpy as np

ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "|u1", "I8": "|i1"}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        if v["dtype"] == "BF16":
            u = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            arr = u.view("<f4")
        else:
            arr = np.frombuffer(raw, ST_DTYPES[v["dtype"]])
        out[name] = arr.reshape(v["shape"])
    return out


def golden_cases(path):
    """{case number: {field: array}} from a golden.safetensors file."""
    cases = {}
    for name, arr in read_safetensors(path).items():
        case, field = name.split(".", 1)
        cases.setdefault(int(case[4:]), {})[field] = arr
    return dict(sorted(cases.items()))


INPUTS = ("input_ids", "visual_feats", "visual_pos", "attention_mask", "visual_attention_mask", "token_type_ids")


def write_records(records, f=None):
    f = f or sys.stdout.buffer
    for r in records:
        f.write(msgpack.packb(r, default=msgpack_numpy.encode, use_bin_type=True))
    f.flush()


def read_records(f=None):
    f = f or sys.stdin.buffer
    return list(msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False, max_buffer_size=2**31 - 1))

"""Test helper for lx-convert: writes PyTorch-layout checkpoints with Python's pickle (no torch needed),
reads them back with a restricted Unpickler, and reads safetensors with json + numpy.

    ckpt_helper.py list FILE                 tensors of a .bin/.pth: name, dtype, shape (reference for --list)
    ckpt_helper.py same A.safetensors B.safetensors [--skip NAME]...
    ckpt_helper.py cast ORIG.safetensors CONV.safetensors f16|bf16
    ckpt_helper.py make CASE OUT [zip|legacy] builds the checkpoint of one test case
    ckpt_helper.py check-views OUT.safetensors
"""
import collections
import io
import os
import json
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

# ---- safetensors -----------------------------------------------------------------------------------------

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
             "BF16": np.uint16, "U8": np.uint8}


def read_st(path):
    """name -> (dtype string, shape list, raw bytes); checks the layout on the way."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    data = b[8 + n:]
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], data[lo:hi])
    return out, head.get("__metadata__")


def array(entry):
    dt, shape, raw = entry
    return np.frombuffer(raw, dtype=ST_DTYPES[dt]).reshape(shape)


def cmd_same(a, b, skip):
    ta, _ = read_st(a)
    tb, meta = read_st(b)
    for s in skip:
        ta.pop(s, None)
    bad = 0
    if sorted(ta) != sorted(tb):
        print("names differ:", sorted(set(ta) ^ set(tb)))
        return 1
    for k in ta:
        if ta[k] != tb[k]:
            print("tensor", k, "differs:", ta[k][:2], tb[k][:2])
            bad = 1
    if meta != {"format": "pt"}:
        print("metadata", meta)
        bad = 1
    return bad


def bf16_round(x):
    """float32 -> bfloat16 bits, round to nearest even (by hand: numpy has no bfloat16)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def cmd_cast(orig, conv, kind):
    to, _ = read_st(orig)
    tc, _ = read_st(conv)
    want = {"f16": "F16", "bf16": "BF16"}[kind]
    if sorted(to) != sorted(tc):
        print("names differ")
        return 1
    for k in to:
        if tc[k][0] != want or tc[k][1] != to[k][1]:
            print("tensor", k, "is", tc[k][:2])
            return 1
        x = array(to[k])
        expect = x.astype(np.float16).view(np.uint16) if kind == "f16" else bf16_round(x)
        if not np.array_equal(array(tc[k]).view(np.uint16), expect):
            print("tensor", k, "values differ")
            return 1
    return 0

# ---- reading a checkpoint with Python's pickle (restricted) ------------------------------------------------


class RefUnpickler(pickle.Unpickler):
    """Resolves only what a state dict names; tensors become (dtype, shape)."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda st, off, size, stride, *rest: (st, list(size))
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError("global %s.%s" % (module, name))

    def persistent_load(self, pid):
        return {"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16"}[pid[1]]


def cmd_list(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"PK":
        z = zipfile.ZipFile(path)
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        sd = RefUnpickler(io.BytesIO(z.read(pkl))).load()
    else:
        f = io.BytesIO(raw)
        for _ in range(3):
            pickle.load(f)
        sd = RefUnpickler(f).load()
    for k, (dt, shape) in sd.items():
        print("%s\t%s\t[%s]" % (k, dt, ", ".join(str(d) for d in shape)))
    return 0

# ---- writing a checkpoint in torch.save's layouts ------------------------------------------------------------
# Stand-ins for torch's globals, registered as the modules pickle looks them up in, so that Python's own
# Pickler writes exactly the globals torch.save writes.

_torch = types.ModuleType("torch")
_utils = types.ModuleType("torch._utils")
sys.modules.setdefault("torch", _torch)
sys.modules.setdefault("torch._utils", _utils)


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
for _n in ("FloatStorage", "HalfStorage", "BFloat16Storage", "ComplexFloatStorage"):
    setattr(_torch, _n, type(_n, (), {"__module__": "torch"}))

STORAGE_OF = {"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage", "C64": "ComplexFloatStorage"}
ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "C64": 8}


class Storage:
    def __init__(self, key, dtype, raw, numel=None):
        self.key, self.dtype, self.raw = key, dtype, raw
        self.numel = len(raw) // ITEMSIZE[dtype] if numel is None else numel


class Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.shape, self.stride, False,
                                     collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", getattr(_torch, STORAGE_OF[obj.dtype]), obj.key, "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


def contiguous(x):
    return [s // x.itemsize for s in x.strides]


def dump(obj, legacy):
    f = io.BytesIO()
    p = TorchPickler(f, protocol=2)
    p.legacy = legacy
    p.dump(obj)
    return f.getvalue()


def storages_of(sd):
    seen = collections.OrderedDict()
    for t in sd.values():
        if isinstance(t, Tensor):
            seen.setdefault(t.storage.key, t.storage)
    return list(seen.values())


def save(sd, out, layout, raw_pickle=None):
    """Writes sd (name -> Tensor) like torch.save; raw_pickle replaces the object pickle if given."""
    body = raw_pickle if raw_pickle is not None else dump(sd, layout == "legacy")
    sts = storages_of(sd) if raw_pickle is None else []
    if layout == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", body)
            for s in sts:
                z.writestr("archive/data/" + s.key, s.raw)
            z.writestr("archive/version", "3\n")
        return
    with open(out, "wb") as f:
        f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
        f.write(body)
        f.write(pickle.dumps([s.key for s in sts], protocol=2))
        for s in sts:
            f.write(struct.pack("<q", len(s.raw) // ITEMSIZE[s.dtype]))
            f.write(s.raw)


def from_st(path, rename=lambda k: k):
    """The tensors of a safetensors file as a state dict, one storage each (F32)."""
    sd = collections.OrderedDict()
    for i, (k, e) in enumerate(read_st(path)[0].items()):
        if rename(k) is None:
            continue
        x = array(e)
        sd[rename(k)] = Tensor(Storage(str(i), "F32", x.tobytes()), 0, x.shape, contiguous(x))
    return sd


class Evil:
    """An object whose pickle calls fn(arg) when Python loads it."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


VIEW_BASE = np.arange(24, dtype=np.float32) * 0.5 - 3  # one storage, 24 floats


def views_sd():
    """Views of one storage: a slice at an offset, a transposed (strided) view, a 0-d scalar, the whole."""
    s = Storage("0", "F32", VIEW_BASE.tobytes())
    h = Storage("1", "F16", VIEW_BASE.astype(np.float16).tobytes())
    return collections.OrderedDict([
        ("lxmert.v.whole", Tensor(s, 0, (4, 6), (6, 1))),
        ("lxmert.v.slice", Tensor(s, 6, (2, 6), (6, 1))),
        ("lxmert.v.transposed", Tensor(s, 0, (6, 4), (1, 6))),
        ("lxmert.v.every_other", Tensor(s, 1, (3, 2), (8, 2))),
        ("lxmert.v.scalar", Tensor(s, 23, (), ())),
        ("lxmert.v.half_t", Tensor(h, 2, (3, 2), (1, 6))),
    ])


def views_expected():
    b = VIEW_BASE
    st = np.lib.stride_tricks.as_strided
    return {
        "lxmert.v.whole": b.reshape(4, 6),
        "lxmert.v.slice": b[6:18].reshape(2, 6),
        "lxmert.v.transposed": b.reshape(4, 6).T,
        "lxmert.v.every_other": st(b[1:], shape=(3, 2), strides=(32, 8)),
        "lxmert.v.scalar": b[23],
        "lxmert.v.half_t": st(b.astype(np.float16)[2:], shape=(3, 2), strides=(2, 12)),
    }


def cmd_check_views(path):
    got, _ = read_st(path)
    exp = views_expected()
    if sorted(got) != sorted(exp):
        print("names", sorted(got))
        return 1
    for k, x in exp.items():
        y = array(got[k])
        if y.dtype != x.dtype or y.shape != x.shape or not np.array_equal(y, x):
            print("tensor", k, "got", y, "expected", x)
            return 1
    return 0


def make(case, out, layout):
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    micro = os.path.join(tests, "fixtures", "micro", "model.safetensors")
    if case == "views":
        return save(views_sd(), out, layout)
    if case in ("system", "eval"):
        evil = Evil(os.system if case == "system" else eval,
                    "touch " + out + ".ran" if case == "system" else "open(%r, 'w')" % (out + ".ran"))
        return save({}, out, layout, raw_pickle=pickle.dumps(collections.OrderedDict(w=evil), protocol=2))
    if case == "short":      # the storage holds 10 floats, the tensor needs 12
        s = Storage("0", "F32", np.zeros(10, np.float32).tobytes())
        return save({"lxmert.x": Tensor(s, 0, (3, 4), (4, 1))}, out, layout)
    if case == "broadcast":  # 12 elements from a storage of 4: stride 0 repeats them
        s = Storage("0", "F32", np.arange(4, dtype=np.float32).tobytes())
        return save({"lxmert.b": Tensor(s, 0, (3, 4), (0, 1))}, out, layout)
    if case == "complex":
        s = Storage("0", "C64", np.zeros(4, np.complex64).tobytes())
        return save({"lxmert.ok": Tensor(Storage("1", "F32", b"\0" * 8), 0, (2,), (1,)),
                     "lxmert.z": Tensor(s, 0, (4,), (1,))}, out, layout)
    if case == "twice":      # the authors' name and HF's name of one tensor
        sd = from_st(micro)
        sd["bert.pooler.dense.bias"] = sd["lxmert.pooler.dense.bias"]
        return save(sd, out, layout)
    if case == "finetuned":  # BEST.pth of the authors' VQA task: lxrt_encoder.model.bert.*, logit_fc.*
        def rename(k):
            if k.startswith("lxmert."):
                return "module.lxrt_encoder.model.bert." + k[len("lxmert."):]
            if k.startswith("answer_head."):
                return "module." + k[len("answer_head."):]
            return None
        return save(from_st(micro, rename), out, layout)
    raise SystemExit("unknown case " + case)


def main(argv):
    if argv[0] == "list":
        return cmd_list(argv[1])
    if argv[0] == "same":
        return cmd_same(argv[1], argv[2], [argv[i + 1] for i in range(3, len(argv) - 1) if argv[i] == "--skip"])
    if argv[0] == "cast":
        return cmd_cast(argv[1], argv[2], argv[3])
    if argv[0] == "make":
        return make(argv[1], argv[2], argv[3] if len(argv) > 3 else "zip")
    if argv[0] == "check-views":
        return cmd_check_views(argv[1])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

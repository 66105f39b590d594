"""Writes the seed corpora of the feature-file fuzz targets (tests/fuzz/seeds/NAME/) from small images made
with numpy, base64, csv and pickle, and the labels seeds from the fixtures. Run from the top directory with
Debian's python3; the files it writes are in git, so this only needs running when a layout changes."""
import base64
import io
import os
import pickle
import zipfile

import msgpack
import msgpack_numpy
import numpy as np

S = "tests/fuzz/seeds"


def put(target, name, data):
    os.makedirs(os.path.join(S, target), exist_ok=True)
    with open(os.path.join(S, target, name), "wb") as f:
        f.write(data)


def image(k=2, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    b = np.array([[0, 0, 40, 30]] * k, np.float32) + np.arange(k, dtype=np.float32)[:, None]
    return 50, 60, b, rng.random((k, dim), dtype=np.float32)


def enc(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def obj36():
    lines = []
    for i in range(2):
        h, w, b, f = image(2 + i)
        k = len(b)
        lines.append("\t".join(["img%d" % i, str(h), str(w), enc(np.arange(k, dtype=np.int64)),
                                enc(np.ones(k, np.float32)), enc(np.arange(k, dtype=np.int64)),
                                enc(np.ones(k, np.float32)), str(k), enc(b), enc(f)]) + "\r\n")
    return "".join(lines).encode()


def butd():
    lines = []
    for i in range(2):
        h, w, b, f = image(3, 2, i)
        lines.append("\t".join([str(4000 + i), str(w), str(h), "3", enc(b), enc(f)]) + "\r\n")
    return "".join(lines).encode()


def npy_bytes(obj, **kw):
    f = io.BytesIO()
    np.save(f, obj, **kw)
    return f.getvalue()


def npz_bytes(compress, **arrays):
    f = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(f, **arrays)
    return f.getvalue()


def main():
    put("fuzz_tsv", "obj36.tsv", obj36())
    put("fuzz_tsv", "butd.tsv", butd())
    put("fuzz_tsv", "base64", enc(np.arange(5, dtype=np.float32)).encode())
    h, w, b, f = image()
    d = {"x": f, "bbox": b.astype(np.float64), "num_bbox": 2, "image_h": np.int64(h), "image_w": w,
         "objects_id": np.arange(2), "objects_conf": np.ones(2, np.float32)}
    put("fuzz_npy", "dict.npy", npy_bytes(d))
    info = {"bbox": b, "num_boxes": 2, "image_height": h, "image_width": np.int32(w),
            "objects": np.arange(2), "cls_prob": np.ones((2, 3))}
    put("fuzz_npy", "mmf.npy", npy_bytes(f) + b"\n--info--\n" + npy_bytes(info))
    put("fuzz_npz", "stored.npz", npz_bytes(False, x=f, bbox=b, num_bbox=2, image_h=h, image_w=w))
    put("fuzz_npz", "deflated.npz", npz_bytes(True, x=f, bbox=b, num_bbox=2, image_h=h, image_w=w,
                                             info={"objects_id": np.arange(2), "objects_conf": np.ones(2)}))
    for proto in (2, 4, 5):
        put("fuzz_feat_pickle", "dict%d.pkl" % proto, pickle.dumps(d, protocol=proto))
    rec = {"img_id": "img0", "img_h": h, "img_w": w, "boxes": b, "visual_pos": b / 100, "visual_feats": f}
    put("fuzz_feat_stream", "feats.mp", b"".join(msgpack.packb(dict(rec, img_id="img%d" % i),
                                                               default=msgpack_numpy.encode) for i in range(2)))
    put("fuzz_labels", "answers.json", b"\x00" + b'["yes", "no", "2"]')
    put("fuzz_labels", "all_ans.json", b"\x00" + b'[{"ans": "yes"}, {"ans": "no"}]')
    put("fuzz_labels", "objects.txt", b"\x02" + open("tests/fixtures/vg_objects_vocab.txt", "rb").read()[:300])
    put("fuzz_labels", "lines.txt", b"\x01" + b"[PAD]\n[UNK]\r\nthe\n")
    put("fuzz_featidx", "good.lxidx", b"lx-featidx 1\nsize %d mtime 1000000000.500000000 format obj36 count 3\n"
        b"0\t1\timg0\n%d\t2\timg1\n%d\t3\timg2\n" % (3 * LINE, LINE, 2 * LINE))
    bounds_seeds(f, b, h, w)


def bounds_seeds(f, b, h, w):
    """The small inputs of issue 16 that asked for a lot of memory, each cut to fit -max_len."""
    # x.npy declared (1, 8388608) <f4: 32 MiB of zeros from a few KB of deflate, refused before inflating
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as a:
        for name, v in (("num_bbox", 1), ("image_h", h), ("image_w", w), ("bbox", b[:1])):
            a.writestr(name + ".npy", npy_bytes(np.asarray(v)))
        with a.open("x.npy", "w", force_zip64=True) as m:
            hdr = io.BytesIO()
            np.lib.format.write_array_header_1_0(hdr, {"descr": "<f4", "fortran_order": False, "shape": (1, 1 << 23)})
            m.write(hdr.getvalue())
            for _ in range(32):
                m.write(bytes(1 << 20))
    put("fuzz_npz", "wide.npz", z.getvalue())
    # an obj36 line whose img_id holds a NUL
    put("fuzz_tsv", "nul.tsv", b"a\0" + obj36()[4:])
    # a pickle of EMPTY_LIST opcodes, and of EMPTY_TUPLEs (a value per byte)
    put("fuzz_feat_pickle", "lists.pkl", b"\x80\x02" + b"]" * 30000 + b".")
    put("fuzz_feat_pickle", "tuples.pkl", b"\x80\x02" + b")" * 30000 + b".")
    # a memo index far past the budget
    put("fuzz_feat_pickle", "memo.pkl", b"\x80\x02Nr" + (1000000).to_bytes(4, "little") + b"0.")
    # a record of nils (a value per byte), and one with a field twice
    put("fuzz_stream", "nils.mp", b"\xdf" + (30000).to_bytes(4, "big") + b"\xc0" * 60000)
    put("fuzz_stream", "dup.mp", b"\x82" + msgpack.packb("language_output") + msgpack.packb(1)
        + msgpack.packb("language_output") + msgpack.packb(2))
    # a record nested 40 deep
    put("fuzz_stream", "deep.mp", b"\x81" + msgpack.packb("x") + b"\x91" * 40 + b"\xc0")


LINE = 162  # bytes of one line of fuzz_featidx.c's feature file
main()

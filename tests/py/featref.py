"""Reference readers and writers for lx-featpack's tests, built only on Python's and numpy's own libraries.

Usage (Debian's python3):
  featref.py questions IN.jsonl                  question records (msgpack) as lx-tokenize would write them
  featref.py pairs IN.jsonl                      NLVR2-style records: img0/img1 from consecutive questions
  featref.py write-butd OUT.tsv N                a BUTD TSV written the way generate_tsv.py writes it
  featref.py write-obj36 OUT.tsv N [BOXES DIM]   an obj36 TSV written the way the authors' extractor does
  featref.py write-npz DIR N stored|deflated     one .npz an image (np.savez / np.savez_compressed)
  featref.py write-npy DIR N [PROTOCOL]          one .npy an image: np.save of a dict, or MMF's pair
  featref.py check STREAM [--max-boxes N] [--normalized] SOURCE...
                                                 every record of STREAM equals its image in SOURCE
  featref.py check-join JOINED QUESTIONS [--pairs] SOURCE...
                                                 JOINED is QUESTIONS, each with its image's fields added
  featref.py check-expected STREAM EXPECTED.json the sample's expected values
  featref.py names STREAM VOCAB FIELD COUNT      ids of each record as vocabulary names
  featref.py answers-seen JOINED OBJECTS ATTRS   questions whose answer names one of their image's boxes
  featref.py corrupt SRC OUT LINE FIELD set|damage VALUE
  featref.py normalize-tsv SRC OUT               an obj36 TSV with boxes already in [0, 1]
  featref.py bench-questions N IMAGES SEED       N questions about random images of write-obj36
  featref.py shuffle STREAM SEED                 the records of STREAM in a random order
Prints "ok" and exits 0 when the check passes; raises otherwise.
"""
import base64
import csv
import json
import os
import sys

import msgpack
import msgpack_numpy
import numpy as np

csv.field_size_limit(sys.maxsize)
OBJ36 = ["img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "num_boxes",
         "boxes", "features"]
BUTD = ["image_id", "image_w", "image_h", "num_boxes", "boxes", "features"]


def read_obj36(path):
    """The authors' load_obj_tsv (lxmert/src/utils.py), without its topk."""
    out = {}
    with open(path) as f:
        for item in csv.DictReader(f, OBJ36, delimiter="\t"):
            n = int(item["num_boxes"])
            img = {"img_h": int(item["img_h"]), "img_w": int(item["img_w"])}
            for key, shape, dtype in (("objects_id", (n,), np.int64), ("objects_conf", (n,), np.float32),
                                      ("attrs_id", (n,), np.int64), ("attrs_conf", (n,), np.float32),
                                      ("boxes", (n, 4), np.float32), ("features", (n, -1), np.float32)):
                img[key] = np.frombuffer(base64.b64decode(item[key]), dtype=dtype).reshape(shape)
            out[item["img_id"]] = img
    return out


def read_butd(path):
    out = {}
    with open(path) as f:
        for item in csv.DictReader(f, BUTD, delimiter="\t"):
            n = int(item["num_boxes"])
            out[item["image_id"]] = {
                "img_h": int(item["image_h"]), "img_w": int(item["image_w"]),
                "boxes": np.frombuffer(base64.b64decode(item["boxes"]), dtype=np.float32).reshape(n, 4),
                "features": np.frombuffer(base64.b64decode(item["features"]), dtype=np.float32).reshape(n, -1)}
    return out


def read_npz(path):
    z = np.load(path)
    img = {"img_h": int(z["image_h"]), "img_w": int(z["image_w"]), "boxes": z["bbox"].astype(np.float32),
           "features": z["x"].astype(np.float32)}
    for key in ("objects_id", "objects_conf", "attrs_id", "attrs_conf"):
        if key in z.files:
            img[key] = z[key]
    if "info" in z.files:
        ids_from(np.load(path, allow_pickle=True)["info"].item(), img)
    return {os.path.basename(path)[:-4]: img}


def ids_from(d, img):
    for key in ("objects_id", "objects_conf", "attrs_id", "attrs_conf"):
        if key in d and key not in img:
            img[key] = np.asarray(d[key])
    return img


def read_npy(path):
    """np.load of a dict saved with np.save, or MMF's features with their _info.npy."""
    a = np.load(path, allow_pickle=True)
    if a.dtype == object:
        d = a.item()
        img = {"img_h": int(d["image_h"]), "img_w": int(d["image_w"]),
               "boxes": np.asarray(d["bbox"]).astype(np.float32), "features": np.asarray(d["x"]).astype(np.float32)}
    else:
        d = np.load(path[:-4] + "_info.npy", allow_pickle=True).item()
        img = {"img_h": int(d["image_height"]), "img_w": int(d["image_width"]),
               "boxes": np.asarray(d["bbox"]).astype(np.float32), "features": a.astype(np.float32)}
    return {os.path.basename(path)[:-4]: ids_from(d, img)}


def read_source(path):
    if os.path.isdir(path):
        out = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".npz"):
                out.update(read_npz(os.path.join(path, name)))
            elif name.endswith(".npy") and not name.endswith("_info.npy"):
                out.update(read_npy(os.path.join(path, name)))
        return out
    if path.endswith(".npz"):
        return read_npz(path)
    if path.endswith(".npy"):
        return read_npy(path)
    with open(path) as f:
        fields = f.readline().count("\t") + 1
    return read_obj36(path) if fields == 10 else read_butd(path)


def read_sources(paths):
    out = {}
    for p in paths:
        out.update(read_source(p))
    return out


def authors_pos(img, normalized):
    """lxmert/src/tasks/vqa_data.py: boxes = img_info['boxes'].copy(); boxes[:, (0, 2)] /= img_w; ..."""
    boxes = img["boxes"].copy()
    if not normalized:
        boxes[:, (0, 2)] /= img["img_w"]
        boxes[:, (1, 3)] /= img["img_h"]
    np.testing.assert_array_less(boxes, 1 + 1e-5)
    np.testing.assert_array_less(-boxes, 0 + 1e-5)
    return boxes


def same(a, b, what):
    a = np.asarray(a)
    if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
        raise AssertionError("%s: %s %s differs from %s %s" % (what, a.dtype, a.shape, b.dtype, b.shape))


def check_image(rec, img, sfx, max_boxes, normalized, what):
    n = len(img["boxes"]) if not max_boxes else min(max_boxes, len(img["boxes"]))
    assert rec["img_h" + sfx] == img["img_h"] and rec["img_w" + sfx] == img["img_w"], what
    pos = authors_pos(img, normalized)[:n]
    same(pos, rec["visual_pos" + sfx], what + " visual_pos")
    pix = img["boxes"][:n]
    if normalized:
        pix = pos * np.array([img["img_w"], img["img_h"]] * 2, dtype=np.float32)
    same(pix, rec["boxes" + sfx], what + " boxes")
    same(np.ascontiguousarray(img["features"][:n]), rec["visual_feats" + sfx], what + " visual_feats")
    pairs = (("objects_id", "obj_ids", np.int32), ("objects_conf", "obj_conf", np.float32),
             ("attrs_id", "attr_ids", np.int32), ("attrs_conf", "attr_conf", np.float32))
    for src, dst, dtype in pairs:
        if src in img:
            same(img[src][:n].astype(dtype), rec[dst + sfx], what + " " + dst)
        else:
            assert dst + sfx not in rec, what + " has " + dst


def load_stream(path):
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False))


def opt(args, name, conv=str):
    if name in args:
        i = args.index(name)
        val = conv(args[i + 1]) if conv is not bool else True
        del args[i:i + (1 if conv is bool else 2)]
        return val
    return None


def cmd_check(args):
    max_boxes = opt(args, "--max-boxes", int)
    normalized = opt(args, "--normalized", bool)
    recs = load_stream(args[0])
    imgs = read_sources(args[1:])
    assert [r["img_id"] for r in recs] == list(imgs), "records are not the file's images in order"
    for r in recs:
        check_image(r, imgs[r["img_id"]], "", max_boxes, normalized, r["img_id"])
    print("ok")


def cmd_check_join(args):
    pairs = opt(args, "--pairs", bool)
    joined = load_stream(args[0])
    questions = load_stream(args[1])
    imgs = read_sources(args[2:])
    assert len(joined) == len(questions), "%d records, %d questions" % (len(joined), len(questions))
    for j, q in zip(joined, questions):
        for k, v in q.items():
            if isinstance(v, np.ndarray):
                same(v, j[k], "field " + k)
            else:
                assert j[k] == v, "field %s changed" % k
        if pairs:
            check_image(j, imgs[q["img0"]], "0", None, False, q["img0"])
            check_image(j, imgs[q["img1"]], "1", None, False, q["img1"])
        else:
            check_image(j, imgs[q["img_id"]], "", None, False, q["img_id"])
    print("ok")


def question_records(path):
    out = []
    with open(path) as f:
        for line in f:
            q = json.loads(line)
            q["input_ids"] = np.array([101] + [1000 + len(w) for w in q["sent"].split()] + [102], dtype=np.int32)
            out.append(q)
    return out


def write_records(recs):
    for r in recs:
        sys.stdout.buffer.write(msgpack.packb(r, default=msgpack_numpy.encode, use_bin_type=True))


def cmd_pairs(path):
    qs = question_records(path)
    out = []
    for i in range(0, len(qs) - 1, 2):
        out.append({"identifier": "dev-%d-0-0" % i, "img0": qs[i]["img_id"], "img1": qs[i + 1]["img_id"],
                    "sent": qs[i]["sent"], "label": i % 2, "input_ids": qs[i]["input_ids"]})
    write_records(out)


def random_image(rng, i, boxes, dim):
    h, w = int(rng.integers(200, 640)), int(rng.integers(200, 640))
    x1 = rng.uniform(0, w / 2, boxes)
    y1 = rng.uniform(0, h / 2, boxes)
    b = np.stack([x1, y1, rng.uniform(x1 + 1, w), rng.uniform(y1 + 1, h)], 1).astype(np.float32)
    b[0] = [0, 0, w, h]  # a box that touches every edge
    return h, w, b, rng.random((boxes, dim), dtype=np.float32)


def cmd_write_obj36(out, n, boxes=36, dim=2048):
    rng = np.random.default_rng(7)
    with open(out, "w", newline="") as f:
        wr = csv.DictWriter(f, OBJ36, delimiter="\t")
        for i in range(n):
            h, w, b, feat = random_image(rng, i, boxes, dim)
            enc = lambda a: base64.b64encode(np.ascontiguousarray(a)).decode()
            wr.writerow({"img_id": "img%06d" % i, "img_h": h, "img_w": w,
                         "objects_id": enc(rng.integers(0, 1600, boxes).astype(np.int64)),
                         "objects_conf": enc(rng.random(boxes, dtype=np.float32)),
                         "attrs_id": enc(rng.integers(0, 400, boxes).astype(np.int64)),
                         "attrs_conf": enc(rng.random(boxes, dtype=np.float32)),
                         "num_boxes": boxes, "boxes": enc(b), "features": enc(feat)})


def cmd_write_butd(out, n):
    """bottom-up-attention/tools/generate_tsv.py: csv.DictWriter(tsvfile, delimiter='\\t', fieldnames=...)"""
    rng = np.random.default_rng(11)
    with open(out, "w", newline="") as f:
        wr = csv.DictWriter(f, BUTD, delimiter="\t")
        for i in range(n):
            k = 10 + i
            h, w, b, feat = random_image(rng, i, k, 64)
            wr.writerow({"image_id": 4000 + i, "image_w": w, "image_h": h, "num_boxes": k,
                         "boxes": base64.b64encode(b).decode(), "features": base64.b64encode(feat).decode()})


def cmd_write_npz(out, n, how):
    rng = np.random.default_rng(13)
    os.makedirs(out, exist_ok=True)
    save = np.savez_compressed if how == "deflated" else np.savez
    for i in range(n):
        k = 5 + 3 * i
        h, w, b, feat = random_image(rng, i, k, 32)
        extra = {}
        if i % 2:
            extra = {"objects_id": rng.integers(0, 1600, k), "objects_conf": rng.random(k, dtype=np.float32)}
        elif i % 4 == 2:  # MILVLG: the ids in a pickled dict
            extra = {"info": {"objects_id": rng.integers(0, 1600, k), "objects_conf": rng.random(k, dtype=np.float32),
                              "attrs_id": rng.integers(0, 400, k), "attrs_conf": rng.random(k, dtype=np.float32)}}
        save(os.path.join(out, "%012d" % ((500 if how == "deflated" else 600) + i)), x=feat, bbox=b, num_bbox=k, image_h=h, image_w=w, **extra)


def cmd_check_expected(stream, expected):
    """The fixture's expected values, with tolerances: ids exact, float32 values to 1e-7, the float64
    normalised box to 1e-6 (the fixture divided in float64, the authors in float32), feature sums to 1e-9
    relative."""
    recs = load_stream(stream)
    exp = json.load(open(expected))
    assert len(recs) == len(exp), "%d records, %d expected" % (len(recs), len(exp))
    for r, x in zip(recs, exp):
        what = x["img_id"]
        assert r["img_id"] == x["img_id"] and r["img_h"] == x["img_h"] and r["img_w"] == x["img_w"], what
        assert r["visual_feats"].shape == (x["num_boxes"], 2048), what
        assert list(r["obj_ids"][:5]) == x["objects_id_first5"], what
        assert list(r["attr_ids"][:5]) == x["attrs_id_first5"], what
        assert np.allclose(r["obj_conf"][:3], x["objects_conf_first3"], rtol=0, atol=1e-7), what
        assert list(r["boxes"][0].astype(float)) == x["box0_pixels"], what
        assert np.allclose(r["visual_pos"][0], x["box0_normalized"], rtol=0, atol=1e-6), what
        assert abs(r["visual_feats"].astype(np.float64).sum() - x["features_sum"]) <= 1e-9 * x["features_sum"], what
        assert list(r["visual_feats"][0, :4].astype(float)) == x["features_row0_first4"], what
    print("ok")


def cmd_names(stream, vocab, field, count):
    """The first COUNT ids of FIELD of each record, as the first name on their vocabulary line."""
    names = [line.rstrip("\n").split(",")[0] for line in open(vocab)]
    for r in load_stream(stream):
        print(r["img_id"], " ".join(names[i] for i in r[field][:count]))


def cmd_answers_seen(joined, objects, attributes):
    """Prints each joined question whose answer names one of its image's boxes (an object or an attribute,
    any synonym on the vocabulary line)."""
    objs = [line.rstrip("\n").split(",") for line in open(objects)]
    attrs = [line.rstrip("\n").split(",") for line in open(attributes)]
    for r in load_stream(joined):
        ans = max(r["label"], key=r["label"].get)
        seen = {w for i in r["obj_ids"] for w in objs[i]} | {w for i in r["attr_ids"] for w in attrs[i]}
        if ans in seen:
            print(r["question_id"], ans)


def cmd_corrupt(src, out, line, field, how, value):
    """Copies SRC to OUT with field FIELD (from 0) of line LINE (from 1) replaced by VALUE (how=set) or
    with the character at offset VALUE of that field replaced by '*' (how=damage)."""
    with open(src, "rb") as f:
        lines = f.read().split(b"\r\n")
    fields = lines[line - 1].split(b"\t")
    if how == "set":
        fields[field] = value.encode()
    else:
        k = int(value)
        fields[field] = fields[field][:k] + b"*" + fields[field][k + 1:]
    lines[line - 1] = b"\t".join(fields)
    with open(out, "wb") as f:
        f.write(b"\r\n".join(lines))


def cmd_normalize_tsv(src, out):
    """An obj36 TSV whose boxes are already divided by the image size (float32, as the authors do)."""
    imgs = read_obj36(src)
    with open(out, "w", newline="") as f:
        wr = csv.DictWriter(f, OBJ36, delimiter="\t")
        for k, img in imgs.items():
            row = {"img_id": k, "img_h": img["img_h"], "img_w": img["img_w"], "num_boxes": len(img["boxes"])}
            for key in OBJ36[3:7] + ["features"]:
                row[key] = base64.b64encode(img[key]).decode()
            row["boxes"] = base64.b64encode(authors_pos(img, False)).decode()
            wr.writerow(row)


def cmd_shuffle(stream, seed):
    recs = load_stream(stream)
    np.random.default_rng(int(seed)).shuffle(recs)
    write_records(recs)


def cmd_bench_questions(n, images, seed):
    """N question records about images img000000.. (write-obj36's names), in a random order."""
    rng = np.random.default_rng(int(seed))
    ids = np.array([101, 2054, 3609, 2003, 1996, 3712, 1029, 102], dtype=np.int32)
    pack = msgpack.Packer(default=msgpack_numpy.encode, use_bin_type=True)
    for q, i in enumerate(rng.integers(0, int(images), int(n))):
        rec = {"question_id": q, "img_id": "img%06d" % i, "sent": "What color is the sky?", "input_ids": ids}
        sys.stdout.buffer.write(pack.pack(rec))


def cmd_write_npy(out, n, protocol=None):
    """Even images: np.save of a dict (python and numpy scalars); odd ones: MMF's features .npy and
    _info.npy. With PROTOCOL, the dict .npy files are written with that pickle protocol instead of
    np.save's own."""
    rng = np.random.default_rng(17)
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        k = 4 + 2 * i
        h, w, b, feat = random_image(rng, i, k, 16)
        name = os.path.join(out, "%012d" % (700 + i))
        if i % 2 == 0:
            d = {"x": feat, "bbox": b.astype(np.float64), "num_bbox": k, "image_h": np.int64(h), "image_w": w,
                 "objects_id": rng.integers(0, 1600, k), "objects_conf": rng.random(k, dtype=np.float32)}
            if protocol is None:
                np.save(name, d)
            else:
                import pickle
                arr = np.empty((), dtype=object)
                arr[()] = d
                with open(name + ".npy", "wb") as f:
                    np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
                    pickle.dump(arr, f, protocol=int(protocol))
        else:
            np.save(name, feat)
            np.save(name + "_info", {"bbox": b, "num_boxes": k, "image_height": h, "image_width": np.int32(w),
                                     "objects": rng.integers(0, 1600, k), "cls_prob": rng.random((k, 5))})


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "questions":
        write_records(question_records(args[0]))
    elif cmd == "pairs":
        cmd_pairs(args[0])
    elif cmd == "write-obj36":
        cmd_write_obj36(args[0], int(args[1]), *[int(a) for a in args[2:]])
    elif cmd == "write-butd":
        cmd_write_butd(args[0], int(args[1]))
    elif cmd == "write-npz":
        cmd_write_npz(args[0], int(args[1]), args[2])
    elif cmd == "write-npy":
        cmd_write_npy(*([args[0], int(args[1])] + args[2:]))
    elif cmd == "check":
        cmd_check(args)
    elif cmd == "check-join":
        cmd_check_join(args)
    elif cmd == "check-expected":
        cmd_check_expected(*args)
    elif cmd == "names":
        cmd_names(args[0], args[1], args[2], int(args[3]))
    elif cmd == "answers-seen":
        cmd_answers_seen(*args)
    elif cmd == "corrupt":
        cmd_corrupt(args[0], args[1], int(args[2]), int(args[3]), args[4], args[5])
    elif cmd == "normalize-tsv":
        cmd_normalize_tsv(*args)
    elif cmd == "bench-questions":
        cmd_bench_questions(*args)
    elif cmd == "shuffle":
        cmd_shuffle(*args)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()

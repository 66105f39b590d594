"""Test driver for lx-attnviz: makes input records and photos, and checks what the tool wrote.

  attnviz.py records [--bare] [--bad KIND]   records for lx-encode on stdout: questions on the scenes of
                                              fixtures/attnviz/scenes.json (real COCO boxes and sizes, object
                                              names), with tokens, sent, img_id, img_h, img_w, boxes,
                                              visual_pos, random visual_feats, obj_ids, objects and answers as
                                              lx-tokenize, lx-featpack and lx-head add them. --bare leaves out
                                              tokens, objects, answers, sent and boxes.
  attnviz.py photos DIR                       the first scene as DIR/<img_id>.jpg, the third as .png
  attnviz.py check DIR CELL [PHOTOS [MIN]] < S
                                              every file of every record of the encoded stream S is in DIR:
                                              .npy equal to the stream's maps (rollouts recomputed here),
                                              PNGs that decode with the expected sizes, pages and the index;
                                              MIN: pixels of each picture that must be compared with the
                                              photo or canvas where no box covers it
  attnviz.py strongest DIR TOKEN LAYER HEAD < S
                                              the boxes pictures (made with --top 1) frame the right box
  attnviz.py edit WHAT < S > S2              changes encoded records to make bad input (see EDITS)

Everything here is independent of the code under test: numpy, msgpack, PIL, json.
"""
import base64
import json
import os
import re
import sys

import numpy as np
from PIL import Image

from lxtest import read_records, write_records

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
SCENES = os.path.join(HERE, "fixtures", "attnviz", "scenes.json")
VOCAB = os.path.join(HERE, "fixtures", "tiny", "vocab.txt")
KINDS = {
    "lang": "language_attentions",
    "vision": "vision_attentions",
    "cross": "cross_encoder_attentions",
    "cross-vision": "cross_encoder_vision_attentions",
    "cross-lang-self": "cross_encoder_language_self_attentions",
    "cross-vision-self": "cross_encoder_vision_self_attentions",
}
ROLLOUTS = {"rollout-lang": ("language_attentions", "cross_encoder_language_self_attentions"),
            "rollout-vision": ("vision_attentions", "cross_encoder_vision_self_attentions")}
MAX_SIDE = 640


def scenes():
    with open(SCENES) as f:
        return json.load(f)


def wordpieces(sent, vocab):
    """Whole words and punctuation, lower-cased: enough for these questions, every word is in the vocab."""
    words = re.findall(r"\w+|[^\w\s]", sent.lower())
    return ["[CLS]"] + [w if w in vocab else "[UNK]" for w in words] + ["[SEP]"]


def answers(label):
    """What lx-head would add, made from the dataset's label: the labelled answers first, then two others."""
    names = sorted(label, key=lambda a: -label[a]) + [a for a in ("yes", "two") if a not in label]
    return [{"answer": a, "score": round(0.6 / (i + 1), 3), "index": i} for i, a in enumerate(names[:3])]


def records(bare=False):
    with open(VOCAB) as f:
        vocab = {w.rstrip("\n"): i for i, w in enumerate(f)}
    rng = np.random.default_rng(7)
    out = []
    for s in scenes():
        boxes = np.array(s["boxes"], np.float32)
        wh = np.array([s["img_w"], s["img_h"], s["img_w"], s["img_h"]], np.float32)
        for q in s["questions"]:
            toks = wordpieces(q["sent"], vocab)
            r = {"question_id": q["question_id"], "img_id": s["img_id"]}
            r["input_ids"] = np.array([vocab[t] for t in toks], np.int32)
            r["visual_feats"] = rng.random((len(boxes), 2048), np.float32)
            r["visual_pos"] = boxes / wh
            if not bare:
                r.update(sent=q["sent"], tokens=toks, img_h=s["img_h"], img_w=s["img_w"], boxes=boxes,
                         obj_ids=np.array(s["obj_ids"], np.int32), objects=s["objects"],
                         answers=answers(q["label"]))
            out.append(r)
    return out


def photos(d):
    os.makedirs(d, exist_ok=True)
    for i, s in enumerate(scenes()):
        if i == 1:
            continue
        w, h = s["img_w"], s["img_h"]
        y, x = np.mgrid[0:h, 0:w]
        px = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 90)], -1).astype(np.uint8)
        Image.fromarray(px).save(os.path.join(d, s["img_id"] + (".jpg" if i == 0 else ".png")))


def rollout(rec, fields):
    """Abnar & Zuidema: per layer B = (mean over heads + I) / 2, rows normalised; R = B_last ... B_1."""
    a0 = rec[fields[0]]
    q = a0.shape[2]
    r = np.eye(q)
    for f in fields:
        for layer in rec[f].astype(np.float64):
            b = layer.mean(0) + np.eye(q)
            b /= b.sum(1, keepdims=True)
            r = b @ r
    return r


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def png(path):
    if not os.path.exists(path):
        fail(f"missing {path}")
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            fail(f"{path}: not a PNG file")
    im = Image.open(path)
    im.load()
    if im.mode != "RGB":
        fail(f"{path}: mode {im.mode}, expected RGB")
    return im


def picture_size(rec, photo_dir):
    w, h = rec.get("img_w", 640), rec.get("img_h", 480)
    sc = min(1.0, MAX_SIDE / max(w, h))
    return int(w * sc + 0.5), int(h * sc + 0.5)


def check_picture(rec, area, photo_dir):
    """Where no box covers the picture (1 pixel of margin), it shows the photo, else the blank canvas's grey.
    Returns how many pixels were compared."""
    ph, pw = area.shape[:2]
    scale = np.array([pw / rec["img_w"], ph / rec["img_h"]] * 2) if "boxes" in rec else np.array([pw, ph] * 2)
    boxes = (rec["boxes"] if "boxes" in rec else rec["visual_pos"]) * scale
    free = np.ones((ph, pw), bool)
    for x1, y1, x2, y2 in boxes:
        free[max(0, int(y1) - 1):int(y2) + 2, max(0, int(x1) - 1):int(x2) + 2] = False
    path = next((os.path.join(photo_dir, rec.get("img_id", "") + e) for e in (".jpg", ".png")
                 if photo_dir and os.path.exists(os.path.join(photo_dir, rec.get("img_id", "") + e))), None)
    if path:
        want = np.asarray(Image.open(path).convert("RGB").resize((pw, ph))).astype(int)
        tol = 12 if path.endswith(".jpg") else 0
    else:
        want, tol = np.full((ph, pw, 3), 233), 0
    worst = np.abs(area[free] - want[free]).max() if free.any() else 0
    if worst > tol:
        fail(f"{rec.get('question_id')}: the picture outside the boxes differs from "
             f"{path or 'the blank grey canvas'} by {worst}")
    return int(free.sum())


def page_map(kind):
    """A map of the page's data: base64 of little-endian uint16, value * 65535 (formats/attnviz.md)."""
    return np.frombuffer(base64.b64decode(kind["data16"]), "<u2") / 65535.0


def page_data(path):
    with open(path, encoding="utf-8") as f:
        return json.loads(f.read().split('id="data">', 1)[1].split("</script>", 1)[0])


def npy_header(path):
    """NPY 1.0 as written by hand: magic, version, header length, dict, spaces, newline, 64-byte aligned."""
    with open(path, "rb") as f:
        head = f.read(10)
        n = int.from_bytes(head[8:10], "little")
        text = f.read(n).decode("latin-1")
    if head[:8] != b"\x93NUMPY\x01\x00" or (10 + n) % 64 or not text.endswith("\n") or \
            not text.startswith("{'descr': '<f4', 'fortran_order': False, 'shape': ("):
        fail(f"{path}: header {head!r} {text!r} is not NPY 1.0 as documented")


def check_grid(path, kind, arr, cell):
    """The grid holds layers x (heads + mean) panels of q*cell by k*cell pixels, 14 pixels apart."""
    im = png(path)
    if kind.startswith("rollout"):
        layers, cols, (q, k) = 1, 1, arr.shape
    else:
        layers, heads, q, k = arr.shape
        cols = heads + 1
    gw, gh = cols * k * cell + (cols - 1) * 14, layers * q * cell + (layers - 1) * 14
    w, h = im.size
    if not (gw < w <= gw + 400 and gh < h <= gh + 400):
        fail(f"{path}: {w}x{h}, expected a little more than the {gw}x{gh} of the panels")
    # the panels use the colour scale: its darkest colour is where the largest value is
    px = np.asarray(im).reshape(-1, 3)
    if not (px == [92, 6, 42]).all(1).any():
        fail(f"{path}: no entry in the darkest colour of the scale")


def check(d, cell, photo_dir=None, min_bare=0):
    recs = read_records()
    if not recs:
        fail("no records")
    names = set()
    shown = 0
    for n, rec in enumerate(recs, 1):
        stem = str(rec.get("question_id", rec.get("img_id", f"record-{n}")))
        names.add(stem)
        for kind, field in KINDS.items():
            npy_header(os.path.join(d, f"{stem}.{kind}.npy"))
            got = np.load(os.path.join(d, f"{stem}.{kind}.npy"))
            if got.dtype != np.float32 or not np.array_equal(got, rec[field]):
                fail(f"{stem}.{kind}.npy: {got.dtype}{got.shape} differs from {field} {rec[field].shape}")
            check_grid(os.path.join(d, f"{stem}.{kind}.png"), kind, got, cell)
        for kind, fields in ROLLOUTS.items():
            got = np.load(os.path.join(d, f"{stem}.{kind}.npy"))
            want = rollout(rec, fields)
            if got.shape != want.shape or np.abs(got - want).max() > 1e-5:
                fail(f"{stem}.{kind}.npy differs from the rollout computed with numpy by "
                     f"{np.abs(got - want).max() if got.shape == want.shape else got.shape}")
            if np.abs(got.sum(1) - 1).max() > 1e-5:
                fail(f"{stem}.{kind}.npy: rows do not sum to 1")
            check_grid(os.path.join(d, f"{stem}.{kind}.png"), kind, got, cell)
        pw, ph = picture_size(rec, photo_dir)
        im = png(os.path.join(d, f"{stem}.boxes.png"))
        w, h = im.size
        if w != max(pw, 480) or not 30 <= h - ph <= 90:
            fail(f"{stem}.boxes.png: {w}x{h}, expected {max(pw, 480)} wide and a caption above {ph} rows")
        uncovered = check_picture(rec, np.asarray(im)[h - ph:, :pw].astype(int), photo_dir)
        shown += uncovered > 0
        if uncovered < min_bare:
            fail(f"{stem}.boxes.png: {uncovered} pixels outside the boxes compared, fewer than {min_bare}")
        with open(os.path.join(d, f"{stem}.html"), encoding="utf-8") as f:
            page = f.read()
        photo = photo_dir and any(os.path.exists(os.path.join(photo_dir, rec.get("img_id", "") + e))
                                  for e in (".jpg", ".png"))
        for needle in ('<script type="application/json" id="data">',
                       "data:image/jpeg;base64," if photo else "data:image/png;base64,"):
            if needle not in page:
                fail(f"{stem}.html: no {needle}")
        if re.search(r"""(src|href)=["']?(https?:)?//""", page):
            fail(f"{stem}.html: refers to something on the network")
        data = json.loads(page.split('id="data">', 1)[1].split("</script>", 1)[0])
        want_tokens = rec.get("tokens") or [str(i) for i in rec["input_ids"]]
        if data["tokens"] != list(want_tokens):
            fail(f"{stem}.html: tokens {data['tokens']}, expected {want_tokens}")
        want_boxes = [f"#{i} {o}" for i, o in enumerate(rec["objects"])] if "objects" in rec else \
            [f"#{i}" for i in range(len(rec["visual_pos"]))]
        if data["boxLabels"] != want_boxes:
            fail(f"{stem}.html: box labels {data['boxLabels'][:3]}..., expected {want_boxes[:3]}...")
        cross = next(k for k in data["kinds"] if k["key"] == "cross")
        diff = np.abs(page_map(cross) - rec["cross_encoder_attentions"].ravel()).max()
        if diff > 1e-4:
            fail(f"{stem}.html: cross map differs from the stream by {diff}")
    with open(os.path.join(d, "index.html"), encoding="utf-8") as f:
        index = f.read()
    linked = set(re.findall(r'<a href="([^"]+)\.html"', index))
    if linked != names:
        fail(f"index.html links {sorted(linked)}, expected {sorted(names)}")
    if not shown:
        fail("no record leaves any of its picture outside the boxes: nothing shows the photo or canvas")
    print(f"{len(recs)} records: every file present and right", file=sys.stderr)


def shrink(r, f=0.2):
    """Boxes a fifth of their size at their top-left corners, so that most of the picture is left bare."""
    r = dict(r)
    for k in ("boxes", "visual_pos"):
        b = r[k].copy()
        b[:, 2:] = b[:, :2] + f * (b[:, 2:] - b[:, :2])
        r[k] = b
    return r


def strongest(d, token, layer, head):
    """With --top 1, the box word `token` attends to most (cross-attention at `layer`, `head` or the mean) is
    framed in the darkest colour of the scale, and no box whose corner is away from it is."""
    for rec in read_records():
        a = rec["cross_encoder_attentions"][layer]
        w = a.mean(0)[token] if head == "mean" else a[int(head)][token]
        best = int(np.argmax(w))
        im = np.asarray(png(os.path.join(d, f"{rec['question_id']}.boxes.png"))).astype(int)
        pw, ph = picture_size(rec, None)
        area = im[im.shape[0] - ph:, :pw]
        b = rec["boxes"] * np.array([pw / rec["img_w"], ph / rec["img_h"]] * 2)
        dark = (area == [92, 6, 42]).all(2)
        x, y = int(b[best][0] + 0.5), int(b[best][1] + 0.5)
        if not dark[y, x]:
            fail(f"{rec['question_id']}: box {best} (weight {w[best]:.4f}, the largest) is not framed in the darkest colour")
        others = [i for i in range(len(b)) if abs(b[i][0] - b[best][0]) > 30 and abs(b[i][1] - b[best][1]) > 30
                  and dark[int(b[i][1] + 0.5), int(b[i][0] + 0.5)]]
        if others:
            fail(f"{rec['question_id']}: boxes {others} are framed in the darkest colour too")
    print("the strongest box is framed in every record", file=sys.stderr)


EDITS = {
    # every record's boxes shrunk to a fifth
    "shrink": lambda i, r: shrink(r),
    # drops every attention map from the third record
    "no-attentions": lambda i, r: {k: v for k, v in r.items() if "attentions" not in k} if i == 2 else r,
    # one token too many in the third record
    "tokens": lambda i, r: dict(r, tokens=r["tokens"] + ["extra"]) if i == 2 else r,
    # one box too few in the third record's object names
    "objects": lambda i, r: dict(r, objects=r["objects"][:-1]) if i == 2 else r,
    # pixel boxes for one box too few in the third record
    "boxes": lambda i, r: dict(r, boxes=r["boxes"][:-1]) if i == 2 else r,
    # the second record named by its img_id, the third by its number
    "ids": lambda i, r: {k: v for k, v in r.items() if k != "question_id" and (i != 2 or k != "img_id")}
    if i in (1, 2) else r,
    # the third record's cross-attention over one box less than its other maps
    "shapes": lambda i, r: dict(r, cross_encoder_attentions=r["cross_encoder_attentions"][..., :-1]) if i == 2 else r,
}


def main():
    cmd = sys.argv[1]
    if cmd == "records":
        write_records(records(bare="--bare" in sys.argv))
    elif cmd == "photos":
        photos(sys.argv[2])
    elif cmd == "check":
        check(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None,
              int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif cmd == "strongest":
        strongest(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "edit":
        write_records([EDITS[sys.argv[2]](i, r) for i, r in enumerate(read_records())])
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

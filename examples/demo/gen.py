"""gen.py - the demo model's training data: questions about the detector's own labels, on scenes mixed
from the boxes of the ten sample images.

    gen.py IMAGES OBJECTS ATTRIBUTES OUTDIR [--scenes N] [--valid-scenes N] [--questions K] [--seed S]

IMAGES is `lx-featpack train2014_obj36_sample.tsv` (one record per image, with obj_ids, obj_conf, attr_ids);
OBJECTS and ATTRIBUTES are the Visual Genome vocabularies. A scene takes 36 boxes from two or three images
(features and positions as the detector gave them), so that no scene is one whole sample image. Each scene
gets K questions from templates whose answers come from the boxes' labels:

    what color is the bus?            the colour attribute of the most confident "bus" box
    is there a horse in the picture?  yes / no (an object of another scene)
    how many horses are there?        boxes labelled horse or horses (confidence >= 0.2)
    what is the table made of?        a material attribute (wooden -> wood, metal, glass, ...)
    what is orange?                   the one object whose attribute is that colour
    what animal is in the picture?    the one animal in the scene

Writes OUTDIR/scenes.mp (image records lx-featpack --join reads), train.jsonl and valid.jsonl (the
authors' VQA layout: question_id, img_id, sent, label) and answers.json (every answer, sorted). Validation
scenes are other box combinations of the same images, from another random stream.
"""
import argparse
import json
import os

import msgpack
import msgpack_numpy
import numpy as np

COLORS = {"white", "black", "blue", "green", "red", "brown", "yellow", "gray", "grey", "orange", "pink",
          "purple", "silver", "tan", "gold", "beige"}
MATERIALS = {"wooden": "wood", "wood": "wood", "metal": "metal", "glass": "glass", "plastic": "plastic",
             "concrete": "concrete", "brick": "brick", "stone": "stone", "leather": "leather"}
ANIMALS = {"cat", "dog", "horse", "horses", "sheep", "cow", "cows", "bird", "elephant", "giraffe", "zebra",
           "bear", "dogs", "cats"}
PRESENT = 0.2  # a box counts as present from this confidence on
COUNT_LIMIT = 6


def first_names(path):
    return [line.rstrip("\r\n").split(",")[0] for line in open(path, encoding="utf-8")]


def load_images(path):
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False, max_buffer_size=2**31 - 1))


def make_scene(rng, images):
    """36 (image, box) pairs from two or three images."""
    k = int(rng.integers(2, 4))
    srcs = rng.choice(len(images), size=k, replace=False)
    cuts = np.sort(rng.choice(np.arange(6, 31), size=k - 1, replace=False))
    sizes = np.diff(np.concatenate([[0], cuts, [36]]))
    if k == 3 and min(sizes) < 4:
        sizes = np.array([12, 12, 12])
    boxes = []
    for s, n in zip(srcs, sizes):
        for b in rng.choice(36, size=int(n), replace=False):
            boxes.append((int(s), int(b)))
    order = rng.permutation(len(boxes))
    return [boxes[i] for i in order]


def scene_record(name, boxes, images):
    feats = np.stack([images[s]["visual_feats"][b] for s, b in boxes]).astype(np.float32)
    pos = np.stack([images[s]["visual_pos"][b] for s, b in boxes]).astype(np.float32)
    rec = {"img_id": name, "img_h": 1000, "img_w": 1000, "boxes": pos * 1000, "visual_feats": feats}
    for f in ("obj_ids", "obj_conf", "attr_ids", "attr_conf"):
        rec[f] = np.stack([images[s][f][b] for s, b in boxes])
    return rec


IRREGULAR = {"man": "men", "woman": "women", "person": "people", "child": "children", "foot": "feet",
             "leaf": "leaves", "shelf": "shelves", "knife": "knives", "glass": "glasses", "bus": "buses",
             "sheep": "sheep", "dish": "dishes", "bench": "benches", "box": "boxes"}
MASS = {"water", "snow", "grass", "sky", "dirt", "graffiti", "sand", "wood", "hair", "ground", "dirt", "smoke"}


def plural(o):
    return IRREGULAR.get(o, o if o.endswith("s") else o + "s")


def is_there(o):
    return "is there %s in the picture?" % o if o in MASS else "is there a %s in the picture?" % o


def questions(rng, boxes, images, objs, attrs, all_objects, k):
    """Up to k (sentence, answer) pairs about one scene."""
    lab = []
    for s, b in boxes:
        im = images[s]
        lab.append((objs[int(im["obj_ids"][b])], attrs[int(im["attr_ids"][b])], float(im["obj_conf"][b])))
    present = sorted({o for o, a, c in lab if c >= PRESENT})
    best = {}
    for o, a, c in lab:
        if c >= PRESENT and (o not in best or c > best[o][1]):
            best[o] = (a, c)
    pool = []
    for o, (a, c) in best.items():
        if a in COLORS:
            pool.append(("what color is the %s?" % o, a))
        if a in MATERIALS:
            pool.append(("what is the %s made of?" % o, MATERIALS[a]))
    for o in present:
        if o.endswith("s"):
            continue
        n = sum(1 for p, a, c in lab if c >= PRESENT and p in (o, plural(o)))
        if n <= COUNT_LIMIT and o not in MASS:
            pool.append(("how many %s are there?" % plural(o), str(n)))
        pool.append((is_there(o), "yes"))
    absent = [o for o in all_objects if o not in {p for p, a, c in lab}]
    for o in rng.choice(absent, size=min(len(absent), max(2, len(pool) // 3)), replace=False):
        pool.append((is_there(o), "no"))
    by_color = {}
    for o, (a, c) in best.items():
        if a in COLORS and c >= 0.3:
            by_color.setdefault(a, set()).add(o)
    for a, os_ in by_color.items():
        if len(os_) == 1:
            pool.append(("what is %s?" % a, next(iter(os_))))
    animals = sorted({o for o in present if o in ANIMALS})
    if len(animals) == 1:
        pool.append(("what animal is in the picture?", animals[0].rstrip("s") if animals[0] != "horses" else "horse"))
    idx = rng.permutation(len(pool))[:k]
    return [pool[i] for i in idx]


def write_split(path, scenes, images, objs, attrs, all_objects, rng, k, first_id, answers):
    qid = first_id
    with open(path, "w", encoding="utf-8") as f:
        for name, boxes in scenes:
            for sent, ans in questions(rng, boxes, images, objs, attrs, all_objects, k):
                f.write(json.dumps({"question_id": qid, "img_id": name, "sent": sent, "label": {ans: 1.0}}) + "\n")
                answers.add(ans)
                qid += 1
    return qid - first_id


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("objects")
    ap.add_argument("attributes")
    ap.add_argument("outdir")
    ap.add_argument("--scenes", type=int, default=1000)
    ap.add_argument("--valid-scenes", type=int, default=100)
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    images = load_images(a.images)
    objs, attrs = first_names(a.objects), first_names(a.attributes)
    all_objects = sorted({objs[int(o)] for im in images for o, c in zip(im["obj_ids"], im["obj_conf"])
                          if c >= PRESENT and not objs[int(o)].endswith("s")})
    rng_train, rng_valid = np.random.default_rng(a.seed), np.random.default_rng(a.seed + 1000)
    train = [("scene%05d" % i, make_scene(rng_train, images)) for i in range(a.scenes)]
    valid = [("vscene%05d" % i, make_scene(rng_valid, images)) for i in range(a.valid_scenes)]
    seen = {tuple(sorted(b)) for _, b in train}
    valid = [(n, b) for n, b in valid if tuple(sorted(b)) not in seen]  # held-out combinations only
    os.makedirs(a.outdir, exist_ok=True)
    with open(os.path.join(a.outdir, "scenes.mp"), "wb") as f:
        for name, boxes in train + valid:
            f.write(msgpack.packb(scene_record(name, boxes, images), default=msgpack_numpy.encode, use_bin_type=True))
    answers = {"yes", "no"}
    nt = write_split(os.path.join(a.outdir, "train.jsonl"), train, images, objs, attrs, all_objects, rng_train,
                     a.questions, 1, answers)
    nv = write_split(os.path.join(a.outdir, "valid.jsonl"), valid, images, objs, attrs, all_objects, rng_valid,
                     a.questions, 10000001, answers)
    with open(os.path.join(a.outdir, "answers.json"), "w", encoding="utf-8") as f:
        json.dump(sorted(answers), f)
        f.write("\n")
    print("gen.py: %d training questions on %d scenes, %d validation questions on %d scenes, %d answers"
          % (nt, len(train), nv, len(valid), len(answers)))


if __name__ == "__main__":
    main()

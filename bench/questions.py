"""questions.py - a generated VQA evaluation for make bench-pipeline: N questions on the sample images.

    questions.py IMAGES OBJECTS ATTRIBUTES N [--per-image K] [--seed S] > questions.jsonl

IMAGES is `lx-featpack tests/fixtures/train2014_obj36_sample.tsv` (one record per image with its detector
labels); OBJECTS and ATTRIBUTES the Visual Genome vocabularies. The questions come from the templates of
examples/demo/gen.py, asked of each whole sample image (the demo model was trained on scenes mixed from
their boxes, so its score here means something), K in a row about one image (as VQA asks about 5 per image),
going round the images. Each line is in the authors' VQA layout: question_id, img_id, sent, label.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "demo"))
import gen  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("objects")
    ap.add_argument("attributes")
    ap.add_argument("n", type=int)
    ap.add_argument("--per-image", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    images = gen.load_images(a.images)
    objs, attrs = gen.first_names(a.objects), gen.first_names(a.attributes)
    all_objects = sorted({objs[int(o)] for im in images for o, c in zip(im["obj_ids"], im["obj_conf"])
                          if c >= gen.PRESENT and not objs[int(o)].endswith("s")})
    rng = np.random.default_rng(a.seed)
    out = sys.stdout
    qid, i = 1, 0
    while qid <= a.n:
        s = i % len(images)
        boxes = [(s, b) for b in range(len(images[s]["obj_ids"]))]
        for sent, ans in gen.questions(rng, boxes, images, objs, attrs, all_objects, a.per_image):
            if qid > a.n:
                break
            out.write(json.dumps({"question_id": qid, "img_id": images[s]["img_id"], "sent": sent,
                                  "label": {ans: 1.0}}) + "\n")
            qid += 1
        i += 1


if __name__ == "__main__":
    main()

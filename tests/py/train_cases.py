"""Training streams for lx-train's tests: a task the tiny model can learn, made with numpy alone.

    train_cases.py COUNT SEED [ans|label|none|unknown|unknowns|pretrain|micro] > stream

Each record asks the same question over 4 to 6 boxes whose features carry the answer: class k raises
features 8k .. 8k+7 of every box. `ans` gives the class index (12 classes, the tiny model's answer head),
`label` the authors' soft-score dict over answer names a0..a5 (for --new-head 6 with tests/fixtures/train_answers.json),
`none` no label at all, `unknown` a label dict naming an answer outside the list, `unknowns` the labels of
`label` but record 2's names only answers outside the list and record 4's one inside and one outside,
`pretrain` HF's pretraining labels (masked words, match, objects, attributes, features). `micro` records for
tests/fixtures/micro (features of width 8, words below 99, ans among its 5 answers), written one at a time,
so that a long stream takes little memory.
"""
import sys

import numpy as np

from lxtest import write_records


def main():
    count, seed, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(seed)
    if kind == "micro":
        out = sys.stdout.buffer
        for i in range(count):
            n = int(rng.integers(2, 5))
            write_records([{"question_id": i, "input_ids": np.array([1, 5 + i % 90, 2], dtype=np.int32),
                            "visual_feats": rng.random((n, 8), dtype=np.float32),
                            "visual_pos": np.sort(rng.random((n, 4), dtype=np.float32), axis=1),
                            "ans": int(rng.integers(5))}], out)
        return
    classes = 6 if kind in ("label", "unknown", "unknowns") else 12
    out = []
    for i in range(count):
        k = int(rng.integers(classes))
        n = int(rng.integers(4, 7))
        feats = rng.random((n, 2048), dtype=np.float32) * 0.5
        feats[:, 8 * k:8 * k + 8] += 2.0
        pos = np.sort(rng.random((n, 4), dtype=np.float32), axis=1)
        r = {"question_id": i, "input_ids": np.array([101, 2054, 2003, 2009, 102], dtype=np.int32),
             "visual_feats": feats, "visual_pos": pos}
        if kind == "ans":
            r["ans"] = k
        elif kind == "label":
            r["label"] = {"a%d" % k: 1.0, "a%d" % ((k + 1) % classes): 0.3}
        elif kind == "unknowns":
            r["label"] = {"zebra": 1.0} if i == 2 else {"a%d" % k: 1.0, "zebra": 0.3} if i == 4 else \
                {"a%d" % k: 1.0, "a%d" % ((k + 1) % classes): 0.3}
        elif kind == "unknown":
            r["label"] = {"a%d" % k: 1.0, "zebra" if i == 2 else "a0": 0.3}
        elif kind == "pretrain":
            labels = np.full(5, -100, dtype=np.int32)
            labels[2] = 2003
            r["labels"] = labels
            r["matched_label"] = 1
            r["ans"] = k
            r["obj_labels"] = rng.integers(0, 1600, n).astype(np.int32)
            r["obj_mask"] = np.ones(n, dtype=np.float32)
            r["attr_labels"] = rng.integers(0, 400, n).astype(np.int32)
            r["attr_mask"] = np.ones(n, dtype=np.float32)
            r["feat_mask"] = (rng.random(n) < 0.5).astype(np.float32)
        out.append(r)
    write_records(out)


if __name__ == "__main__":
    main()

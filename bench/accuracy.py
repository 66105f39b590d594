"""Accuracy of reduced precision against float32 on the same records (README, "int8 and bfloat16").

  accuracy.py REF OTHER...   streams of lx-head output (answer logits in `answer_logits` or the field named
                             by LX_LOGITS) and pooled_output: max and mean |diff| of pooled_output and of the
                             logits, top-1 agreement where REF's top-2 margin exceeds 0.1 and over every
                             record, and, when the records carry lx-head's `answers` and a VQA `label`, the
                             VQA score of each stream (bench/demo_accuracy.sh).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))
from lxtest import read_records  # noqa: E402


def load(path):
    with open(path, "rb") as f:
        recs = read_records(f)
    key = os.environ.get("LX_LOGITS", "answer_logits")
    score = None
    if recs and all("answers" in r and isinstance(r.get("label"), dict) for r in recs):
        score = float(np.mean([r["label"].get(r["answers"][0]["answer"], 0.0) for r in recs]))
    return (np.stack([np.asarray(r["pooled_output"], np.float32) for r in recs]),
            np.stack([np.asarray(r[key], np.float32) for r in recs]), score)


def main():
    ref_p, ref_l, ref_s = load(sys.argv[1])
    top2 = np.sort(ref_l, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 0.1
    if ref_s is not None:
        print("%-30s score %.4f over %d records" % (os.path.basename(sys.argv[1]), ref_s, len(ref_l)))
    for path in sys.argv[2:]:
        p, l, s = load(path)
        dp, dl = np.abs(p - ref_p), np.abs(l - ref_l)
        same = np.argmax(l, 1) == np.argmax(ref_l, 1)
        agree = same[clear]
        print("%-30s pooled max %.4f mean %.5f | logits max %.4f mean %.5f | top-1 %d/%d = %.1f%% (margin > 0.1),"
              " %d/%d = %.1f%% (all)%s"
              % (os.path.basename(path), dp.max(), dp.mean(), dl.max(), dl.mean(), agree.sum(), agree.size,
                 100.0 * agree.mean() if agree.size else float("nan"), same.sum(), same.size, 100.0 * same.mean(),
                 "" if s is None else " | score %.4f (%+.4f)" % (s, s - ref_s)))


if __name__ == "__main__":
    main()

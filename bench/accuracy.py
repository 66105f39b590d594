"""Accuracy of reduced precision against float32 on the same records (make bench-accuracy, README).

  accuracy.py REF OTHER...   streams of lx-head output (answer logits in `answer_logits` or the field named
                             by LX_LOGITS) and pooled_output: max and mean |diff| of pooled_output and of the
                             logits, and top-1 agreement where REF's top-2 margin exceeds 0.1.
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
    return (np.stack([np.asarray(r["pooled_output"], np.float32) for r in recs]),
            np.stack([np.asarray(r[key], np.float32) for r in recs]))


def main():
    ref_p, ref_l = load(sys.argv[1])
    top2 = np.sort(ref_l, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 0.1
    for path in sys.argv[2:]:
        p, l = load(path)
        dp, dl = np.abs(p - ref_p), np.abs(l - ref_l)
        agree = (np.argmax(l, 1) == np.argmax(ref_l, 1))[clear]
        print("%-30s pooled max %.4f mean %.5f | logits max %.4f mean %.5f | top-1 %d/%d = %.1f%% (margin > 0.1)"
              % (os.path.basename(path), dp.max(), dp.mean(), dl.max(), dl.mean(), agree.sum(), agree.size,
                 100.0 * agree.mean() if agree.size else float("nan")))


if __name__ == "__main__":
    main()

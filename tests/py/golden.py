"""Golden-case driver for lx-encode.

  golden.py inputs GOLDEN [CASE...]      write the cases' inputs as records (with a `case` field) on stdout
  golden.py compare GOLDEN FIELD... < S  compare the named output fields of stream S with the golden values

Tolerance: 1e-4 absolute (fixtures/README: a correct float32 implementation agrees to about 1e-5 on hidden
states and 1e-6 on attention probabilities). Masked positions of case 4 are compared too: the reference
computes them like any other position.
"""
import os
import sys

import numpy as np

from lxtest import INPUTS, golden_cases, read_records, write_records

TOL = float(os.environ.get("LX_TOL", "1e-4"))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    cases = golden_cases(path)
    if cmd == "inputs":
        want = [int(c) for c in sys.argv[3:]] or list(cases)
        recs = []
        for c in want:
            r = {"case": c}
            r.update({k: v for k, v in cases[c].items() if k in INPUTS})
            recs.append(r)
        write_records(recs)
        return 0
    fields = sys.argv[3:]
    bad = 0
    worst = 0.0
    recs = read_records()
    if not recs:
        print("no records", file=sys.stderr)
        return 1
    for r in recs:
        g = cases[r["case"]]
        for field in fields:
            if field not in g:
                continue
            if field not in r:
                print(f"case {r['case']}: missing {field}", file=sys.stderr)
                bad += 1
                continue
            got, exp = np.asarray(r[field]), g[field]
            if got.shape != exp.shape or got.dtype != np.float32:
                print(f"case {r['case']}: {field}: {got.dtype}{got.shape}, expected float32{exp.shape}",
                      file=sys.stderr)
                bad += 1
                continue
            d = float(np.max(np.abs(got - exp))) if got.size else 0.0
            worst = max(worst, d)
            if not d <= TOL:
                print(f"case {r['case']}: {field}: max abs difference {d:.3g} > {TOL}", file=sys.stderr)
                bad += 1
    print(f"{len(recs)} records, max abs difference {worst:.3g}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Checks lx-explain's records against reference values.

  relevance.py fixture GOLDEN < S      each record (with `case`) against relevance-tiny's answer_index, R_tt, R_ti:
                                       the same answer, the maps within 1e-5 absolute and 1e-3 relative on the
                                       entries above 1e-3; relevance_words and relevance_boxes are row 0 of each
  relevance.py top GOLDEN K < S        K records per case, in input order, whose answers are the K best of the
                                       golden question_answering_score (tiny's golden.safetensors)
  relevance.py same A B                two streams with the same records, maps equal within 1e-6
"""
import sys

import numpy as np

from lxtest import golden_cases, read_records

FIELDS = ("relevance_tt", "relevance_ti", "relevance_words", "relevance_boxes")


def rows_match(r):
    """relevance_words and relevance_boxes are row 0 of the maps, with their shapes."""
    tt, ti = r["relevance_tt"], r["relevance_ti"]
    T, N = len(r["input_ids"]), len(r["visual_pos"])
    assert tt.shape == (T, T) and ti.shape == (T, N), (tt.shape, ti.shape, T, N)
    assert tt.dtype == np.float32 and ti.dtype == np.float32
    assert np.array_equal(r["relevance_words"], tt[0]) and np.array_equal(r["relevance_boxes"], ti[0])
    assert tt[0, 0] == 0


def fixture(path):
    cases = golden_cases(path)
    recs = read_records()
    worst_abs = worst_rel = 0.0
    for r in recs:
        g = cases[r["case"]]
        rows_match(r)
        if r["relevance_answer"] != int(g["answer_index"][0]):
            print(f"case {r['case']}: answer {r['relevance_answer']}, the reference's {g['answer_index'][0]}",
                  file=sys.stderr)
            return 1
        for got, want in ((r["relevance_tt"], g["R_tt"]), (r["relevance_ti"], g["R_ti"])):
            d = np.abs(got.astype(np.float64) - want)
            worst_abs = max(worst_abs, float(d.max()))
            big = np.abs(want) > 1e-3
            if big.any():
                worst_rel = max(worst_rel, float((d[big] / np.abs(want[big])).max()))
    print(f"{len(recs)} records, max abs diff {worst_abs:.3g}, max rel diff (entries > 1e-3) {worst_rel:.3g}",
          file=sys.stderr)
    ok = len(recs) == len(cases) and worst_abs <= 1e-5 and worst_rel <= 1e-3
    return 0 if ok else 1


def top(path, k):
    cases = golden_cases(path)
    recs = read_records()
    if len(recs) != k * len(cases):
        print(f"{len(recs)} records for {len(cases)} cases and --top {k}", file=sys.stderr)
        return 1
    for i, (c, g) in enumerate(cases.items()):
        group = recs[i * k:(i + 1) * k]
        want = list(np.argsort(-g["question_answering_score"], kind="stable")[:k])
        got = [r["relevance_answer"] for r in group]
        if [r["case"] for r in group] != [c] * k or got != want:
            print(f"case {c}: answers {got}, the reference's best {want}", file=sys.stderr)
            return 1
        for r in group:
            rows_match(r)
    return 0


def same(a, b):
    ra, rb = read_records(open(a, "rb")), read_records(open(b, "rb"))
    if len(ra) != len(rb):
        print(f"{len(ra)} records against {len(rb)}", file=sys.stderr)
        return 1
    for x, y in zip(ra, rb):
        if x["relevance_answer"] != y["relevance_answer"]:
            return 1
        for f in FIELDS:
            if x[f].shape != y[f].shape or np.abs(x[f] - y[f]).max() > 1e-6:
                print(f"{f} differs", file=sys.stderr)
                return 1
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "fixture":
        return fixture(sys.argv[2])
    if cmd == "top":
        return top(sys.argv[2], int(sys.argv[3]))
    if cmd == "same":
        return same(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

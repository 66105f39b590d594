"""by_type.py - lx-head --json lines of the validation questions in, the VQA score of each question type
out (the type is the question's first two words)."""
import collections
import json
import sys

score, count = collections.Counter(), collections.Counter()
for line in sys.stdin:
    r = json.loads(line)
    kind = " ".join(r["sent"].split()[:2])
    score[kind] += r["label"].get(r["answers"][0]["answer"], 0)
    count[kind] += 1
for kind in sorted(count, key=lambda k: -count[k]):
    print("%-12s %4d questions  score %.3f" % (kind, count[kind], score[kind] / count[kind]))
print("%-12s %4d questions  score %.3f" % ("all", sum(count.values()), sum(score.values()) / sum(count.values())))

"""show.py - lx-head --json lines in, one line a question out: the question, its three best answers with
their scores, and the answers its label gives (the sample questions' labels were written by hand)."""
import json
import sys

for line in sys.stdin:
    r = json.loads(line)
    best = ", ".join("%s %.2f" % (a["answer"], a["score"]) for a in r["answers"])
    label = "/".join(sorted(r.get("label", {}), key=lambda k: -r["label"][k]))
    print("%-40s %-36s (label: %s)" % (r["sent"], best, label))

"""NLVR2 pair records from ../fixtures/nlvr2-micro and checks against its golden values.

  nlvr2_cases.py inputs DIR [label]    pair records (input_ids, visual_feats0/1, visual_pos0/1, identifier, and
                                       with `label` the golden label as a JSON boolean) on stdout
  nlvr2_cases.py compare DIR KEYS      lx-head or lx-encode records on stdin: each comma-separated key of KEYS
                                       (pooled_output0, pooled_output1, nlvr2_logits) within 1e-4 of the golden
  nlvr2_cases.py module IN OUT         the checkpoint IN saved again with DataParallel's `module.` inside the keys
"""
import json
import sys

import numpy as np

from lxtest import golden_cases, read_records, write_records


def cases(d):
    meta = json.load(open(d + "/golden.json"))["cases"]
    gold = golden_cases(d + "/golden.safetensors")
    return [(m, gold[int(m["name"][4:])]) for m in meta]


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "inputs":
        recs = []
        for m, g in cases(d):
            r = {"identifier": m["identifier"], "input_ids": g["input_ids"]}
            for k in ("visual_feats0", "visual_pos0", "visual_feats1", "visual_pos1"):
                r[k] = g[k]
            if len(sys.argv) > 3:
                r["label"] = m["label"]
            recs.append(r)
        write_records(recs)
    elif cmd == "compare":
        keys = sys.argv[3].split(",")
        out = read_records()
        cs = cases(d)
        assert len(out) == len(cs), (len(out), len(cs))
        for r, (m, g) in zip(out, cs):
            assert r["identifier"] == m["identifier"], (r["identifier"], m["identifier"])
            for k in keys:
                diff = np.abs(np.asarray(r[k], np.float64) - g[k]).max()
                assert diff < 1e-4, (m["name"], k, diff)
    elif cmd == "module":
        import torch
        sd = torch.load(d)
        out = {k.replace("lxrt_encoder.model.", "lxrt_encoder.model.module."): v for k, v in sd.items()}
        torch.save(out, sys.argv[3], _use_new_zipfile_serialization=False)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()

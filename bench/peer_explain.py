"""The PyTorch peer of `make bench-explain`: the relevance maps of Chefer, Gur & Wolf (ICCV 2021, "Generic
Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", without LRP) on
peer.py's plain-PyTorch LXMERT. The model runs in float32 with every attention-probability map kept; the best
answer's logit is back-propagated by torch autograd to those maps (the weights take no gradient: the first map
of each side is a leaf); then the rules of tests/fixtures/relevance-tiny/'s README run in float64.

  peer_explain.py check DIR GOLDEN   the relevance fixture's cases (GOLDEN/golden.safetensors) on the model in
                                     DIR: the same answer, R_tt and R_ti within 1e-5 absolute and 1e-3 relative
                                     on entries above 1e-3; prints the worst differences
  peer_explain.py bench DIR [--threads 2] [--T 20] [--N 36] [--n 10]
                                     seconds per question at batch 1 over n random questions (after one
                                     warm-up); prints one line of JSON: peer, threads, s_per_question

Unpadded inputs only (masks all ones): the rules here do not drop padded positions. Run with /usr/bin/python3.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from peer import Attention, open_model, random_inputs


def keep_maps(m, on):
    """Have every attention module of m keep its probability maps (in call order), or stop."""
    mods = [x for x in m.modules() if isinstance(x, Attention)]
    for x in mods:
        x.kept = [] if on else None
    return mods


def head_mean(p):
    """Ā = mean over heads of max(0, dA * A), in float64, for a batch-1 map [1, heads, rows, cols]."""
    return (p.grad[0].double() * p.detach()[0].double()).clamp(min=0).mean(0)


def norm(R):
    """(R - I) with each row divided by its sum, plus I."""
    eye = torch.eye(R.shape[0], dtype=R.dtype)
    D = R - eye
    return D / D.sum(-1, keepdim=True) + eye


def explain(m, ids, types, lmask, feats, boxes, vmask):
    """(answer index, R_tt [T,T], R_ti [T,N]) for one question (batch 1), float64."""
    m.lxmert.encoder.zero_grad(set_to_none=True)
    keep_maps(m, True)
    enc = m.lxmert.encoder
    _, _, pooled = m.lxmert(ids, types, lmask, feats, boxes, vmask)
    score = m.answer_head(pooled)[0]
    ans = int(score.argmax())
    score[ans].backward()
    T, N = ids.shape[1], feats.shape[1]
    Rtt, Rii = torch.eye(T, dtype=torch.float64), torch.eye(N, dtype=torch.float64)
    Rti, Rit = torch.zeros(T, N, dtype=torch.float64), torch.zeros(N, T, dtype=torch.float64)
    for layer in enc.layer:
        a = head_mean(layer.attention.self.kept[0])
        Rtt, Rti = Rtt + a @ Rtt, Rti + a @ Rti
    for layer in enc.r_layers:
        a = head_mean(layer.attention.self.kept[0])
        Rii, Rit = Rii + a @ Rii, Rit + a @ Rit
    for i, layer in enumerate(enc.x_layers):
        last = i == len(enc.x_layers) - 1
        cross = layer.visual_attention.att.kept  # words over boxes, then boxes over words
        a_ti = head_mean(cross[0])
        add_ti, add_tt = norm(Rtt).T @ a_ti @ norm(Rii), a_ti @ Rit
        if not last:
            a_it = head_mean(cross[1])
            Rit, Rii = Rit + norm(Rii).T @ a_it @ norm(Rtt), Rii + a_it @ Rti
        Rti, Rtt = Rti + add_ti, Rtt + add_tt
        a = head_mean(layer.lang_self_att.self.kept[0])
        Rtt, Rti = Rtt + a @ Rtt, Rti + a @ Rti
        if not last:
            a = head_mean(layer.visn_self_att.self.kept[0])
            Rii, Rit = Rii + a @ Rii, Rit + a @ Rit
    keep_maps(m, False)
    Rtt[0, 0] = 0
    return ans, Rtt, Rti


def check(d, golden):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))
    from lxtest import golden_cases

    c, m = open_model(d)
    m.requires_grad_(False)
    worst_abs, worst_rel, bad = 0.0, 0.0, 0
    for case, g in golden_cases(os.path.join(golden, "golden.safetensors")).items():
        T, N = len(g["input_ids"]), len(g["visual_feats"])

        def get(k, n, dt, fill):
            return torch.tensor(g[k], dtype=dt)[None] if k in g else torch.full((1, n), fill, dtype=dt)

        ans, Rtt, Rti = explain(m, get("input_ids", T, torch.long, 0), get("token_type_ids", T, torch.long, 0),
                                get("attention_mask", T, torch.float32, 1), torch.tensor(g["visual_feats"])[None],
                                torch.tensor(g["visual_pos"])[None], get("visual_attention_mask", N, torch.float32, 1))
        if ans != int(g["answer_index"][0]):
            print(f"case {case}: answer {ans}, fixture {int(g['answer_index'][0])}", file=sys.stderr)
            bad += 1
            continue
        for name, got in (("R_tt", Rtt.numpy()), ("R_ti", Rti.numpy())):
            want = g[name].astype(np.float64)
            diff = np.abs(got - want)
            big = np.abs(want) > 1e-3
            rel = float(np.max(diff[big] / np.abs(want[big]))) if big.any() else 0.0
            worst_abs, worst_rel = max(worst_abs, float(diff.max())), max(worst_rel, rel)
            if not (diff.max() <= 1e-5 and rel <= 1e-3):
                print(f"case {case}: {name}: max abs difference {diff.max():.3g}, relative {rel:.3g}", file=sys.stderr)
                bad += 1
    print(f"peer_explain.py check {golden}: same answers; R_tt, R_ti max abs difference {worst_abs:.3g}, "
          f"relative {worst_rel:.3g} (entries above 1e-3)")
    return 1 if bad else 0


def bench(a):
    torch.set_num_threads(a.threads)
    c, m = open_model(a.dir)
    m.requires_grad_(False)
    rng = np.random.RandomState(0)
    qs = [random_inputs(c, rng, 1, a.T, a.N) for _ in range(a.n + 1)]
    explain(m, *qs[0])  # warm-up
    t = time.time()
    for q in qs[1:]:
        explain(m, *q)
    per = (time.time() - t) / a.n
    print(json.dumps({"peer": "pytorch " + torch.__version__ + " fp32", "threads": a.threads,
                      "s_per_question": round(per, 4)}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check", "bench"])
    ap.add_argument("dir")
    ap.add_argument("golden", nargs="?")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--N", type=int, default=36)
    ap.add_argument("--n", type=int, default=10)
    a = ap.parse_args()
    if a.cmd == "check":
        if not a.golden:
            ap.error("check needs DIR and GOLDEN")
        return check(a.dir, a.golden)
    return bench(a)


if __name__ == "__main__":
    sys.exit(main())

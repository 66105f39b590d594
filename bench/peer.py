"""The PyTorch peer of `make bench-encode`: LXMERT's encoder and answer head written here in plain PyTorch
(nn.Linear, nn.LayerNorm, softmax; parameter names as in model.safetensors), on the same model directory.

  peer.py check DIR            the fixture's golden cases (DIR/golden.safetensors), one at a time: prints the
                               max abs difference of each output and fails above 1e-5
  peer.py bench DIR [--int8] [--threads N] [--T 20] [--N 36] [--n 64]
                               open the model (fp32, or int8 by torch.quantization.quantize_dynamic on every
                               nn.Linear), then time batch 32 over n questions and batch 1 over n / 4; prints
                               one line of JSON: open_s, qps_b32, ms_b1, peak_rss_mb

Run with /usr/bin/python3 (Debian's python3-torch, python3-numpy).
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
from torch import nn


def st_header(path):
    """The JSON header of a safetensors file and the offset of its data."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def read_safetensors(path, keep):
    """{name: tensor} of the tensors whose names keep() accepts, copied out of a memory map."""
    header, start = st_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=start)
    out = {}
    for name, v in header.items():
        if name == "__metadata__" or not keep(name):
            continue
        b, e = v["data_offsets"]
        dt = {"F32": "<f4", "I32": "<i4", "I64": "<i8"}[v["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dt).reshape(v["shape"]).copy())
    return out


class Attention(nn.Module):
    """Multi-head attention of x over y, without the output projection."""

    def __init__(s, H, heads):
        super().__init__()
        s.heads, s.kept = heads, None
        s.query, s.key, s.value = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)

    def forward(s, x, y, bias):
        B, Tq, H = x.shape
        d = H // s.heads

        def split(t):
            return t.view(B, -1, s.heads, d).transpose(1, 2)  # [B, heads, rows, d]

        q, k, v = split(s.query(x)), split(s.key(y)), split(s.value(y))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias  # bias [B, 1, 1, Tk]
        probs = scores.softmax(-1)
        if s.kept is not None:  # peer_explain.py: every map, with its gradient after backward()
            if probs.requires_grad:
                probs.retain_grad()
            else:
                probs.requires_grad_()  # the first map of its side: a leaf, so the weights need no gradient
            s.kept.append(probs)
        return (probs @ v).transpose(1, 2).reshape(B, Tq, H)


class AddNorm(nn.Module):
    """LayerNorm(dense(h) + x)."""

    def __init__(s, din, H, eps):
        super().__init__()
        s.dense, s.LayerNorm = nn.Linear(din, H), nn.LayerNorm(H, eps=eps)

    def forward(s, h, x):
        return s.LayerNorm(s.dense(h) + x)


class AttBlock(nn.Module):
    def __init__(s, H, heads, eps, inner="self"):
        super().__init__()
        s.inner = inner
        setattr(s, inner, Attention(H, heads))
        s.output = AddNorm(H, H, eps)

    def forward(s, x, y, bias):
        return s.output(getattr(s, s.inner)(x, y, bias), x)


class Dense(nn.Module):
    def __init__(s, H, I):
        super().__init__()
        s.dense = nn.Linear(H, I)

    def forward(s, x):
        return nn.functional.gelu(s.dense(x))


class Layer(nn.Module):
    """A BERT layer: self-attention, then the feed-forward block."""

    def __init__(s, c):
        super().__init__()
        H, eps = c["hidden_size"], c["layer_norm_eps"]
        s.attention = AttBlock(H, c["num_attention_heads"], eps)
        s.intermediate = Dense(H, c["intermediate_size"])
        s.output = AddNorm(c["intermediate_size"], H, eps)

    def forward(s, x, bias):
        a = s.attention(x, x, bias)
        return s.output(s.intermediate(a), a)


class CrossLayer(nn.Module):
    """The cross-modality layer: one cross-attention module both ways, each side's self-attention, each
    side's feed-forward."""

    def __init__(s, c):
        super().__init__()
        H, I, nh, eps = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"], c["layer_norm_eps"]
        s.visual_attention = AttBlock(H, nh, eps, inner="att")
        s.lang_self_att, s.visn_self_att = AttBlock(H, nh, eps), AttBlock(H, nh, eps)
        s.lang_inter, s.visn_inter = Dense(H, I), Dense(H, I)
        s.lang_output, s.visn_output = AddNorm(I, H, eps), AddNorm(I, H, eps)

    def forward(s, lang, visn, lbias, vbias):
        l2 = s.visual_attention(lang, visn, vbias)
        v2 = s.visual_attention(visn, lang, lbias)
        l2, v2 = s.lang_self_att(l2, l2, lbias), s.visn_self_att(v2, v2, vbias)
        return s.lang_output(s.lang_inter(l2), l2), s.visn_output(s.visn_inter(v2), v2)


class Embeddings(nn.Module):
    def __init__(s, c):
        super().__init__()
        H = c["hidden_size"]
        s.word_embeddings = nn.Embedding(c["vocab_size"], H)
        s.position_embeddings = nn.Embedding(c["max_position_embeddings"], H)
        s.token_type_embeddings = nn.Embedding(c["type_vocab_size"], H)
        s.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])

    def forward(s, ids, types):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        return s.LayerNorm(s.word_embeddings(ids) + s.position_embeddings(pos) + s.token_type_embeddings(types))


class VisualEmbeddings(nn.Module):
    def __init__(s, c):
        super().__init__()
        H, eps = c["hidden_size"], c["layer_norm_eps"]
        s.visn_fc, s.visn_layer_norm = nn.Linear(c["visual_feat_dim"], H), nn.LayerNorm(H, eps=eps)
        s.box_fc, s.box_layer_norm = nn.Linear(c["visual_pos_dim"], H), nn.LayerNorm(H, eps=eps)

    def forward(s, feats, boxes):
        return (s.visn_layer_norm(s.visn_fc(feats)) + s.box_layer_norm(s.box_fc(boxes))) / 2


class Encoder(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.visn_fc = VisualEmbeddings(c)
        s.layer = nn.ModuleList(Layer(c) for _ in range(c["l_layers"]))
        s.r_layers = nn.ModuleList(Layer(c) for _ in range(c["r_layers"]))
        s.x_layers = nn.ModuleList(CrossLayer(c) for _ in range(c["x_layers"]))


class Pooler(nn.Module):
    def __init__(s, H):
        super().__init__()
        s.dense = nn.Linear(H, H)

    def forward(s, lang):
        return torch.tanh(s.dense(lang[:, 0]))


class Lxmert(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.embeddings, s.encoder, s.pooler = Embeddings(c), Encoder(c), Pooler(c["hidden_size"])

    def forward(s, ids, types, lmask, feats, boxes, vmask):
        lo = torch.finfo(torch.float32).min
        lbias = ((1.0 - lmask) * lo)[:, None, None, :]
        vbias = ((1.0 - vmask) * lo)[:, None, None, :]
        lang, visn = s.embeddings(ids, types), s.encoder.visn_fc(feats, boxes)
        for layer in s.encoder.layer:
            lang = layer(lang, lbias)
        for layer in s.encoder.r_layers:
            visn = layer(visn, vbias)
        for layer in s.encoder.x_layers:
            lang, visn = layer(lang, visn, lbias, vbias)
        return lang, visn, s.pooler(lang)


class AnswerHead(nn.Module):
    def __init__(s, H, answers):
        super().__init__()
        s.logit_fc = nn.Sequential(nn.Linear(H, 2 * H), nn.GELU(), nn.LayerNorm(2 * H, eps=1e-12),
                                   nn.Linear(2 * H, answers))

    def forward(s, pooled):
        return s.logit_fc(pooled)


class Model(nn.Module):
    def __init__(s, c, qa):
        super().__init__()
        s.lxmert = Lxmert(c)
        s.answer_head = AnswerHead(c["hidden_size"], c["num_qa_labels"]) if qa else None


def open_model(d, int8=False):
    c = json.load(open(os.path.join(d, "config.json")))
    qa = any(k.startswith("answer_head.") for k in st_header(os.path.join(d, "model.safetensors"))[0])
    m = Model(c, qa).eval()
    sd = read_safetensors(os.path.join(d, "model.safetensors"), lambda k: k.startswith(("lxmert.", "answer_head.")))
    m.load_state_dict(sd, strict=True)
    del sd
    if int8:
        m = torch.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    return c, m


def run(m, ids, types, lmask, feats, boxes, vmask):
    with torch.no_grad():
        lang, visn, pooled = m.lxmert(ids, types, lmask, feats, boxes, vmask)
        qa = m.answer_head(pooled) if m.answer_head is not None else None
    return lang, visn, pooled, qa


def check(d):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))
    from lxtest import golden_cases

    c, m = open_model(d)
    worst, bad = 0.0, 0
    for case, g in golden_cases(os.path.join(d, "golden.safetensors")).items():
        T, N = len(g["input_ids"]), len(g["visual_feats"])

        def get(k, n, dt, fill):
            return torch.tensor(g[k], dtype=dt)[None] if k in g else torch.full((1, n), fill, dtype=dt)

        outs = run(m, get("input_ids", T, torch.long, 0), get("token_type_ids", T, torch.long, 0),
                   get("attention_mask", T, torch.float32, 1), torch.tensor(g["visual_feats"])[None],
                   torch.tensor(g["visual_pos"])[None], get("visual_attention_mask", N, torch.float32, 1))
        for name, got in zip(("language_output", "vision_output", "pooled_output", "question_answering_score"), outs):
            if got is None or name not in g:
                continue
            diff = float(np.max(np.abs(got[0].numpy() - g[name])))
            worst = max(worst, diff)
            if not diff <= 1e-5:
                print(f"case {case}: {name}: max abs difference {diff:.3g} > 1e-5", file=sys.stderr)
                bad += 1
    print(f"peer.py check {d}: max abs difference {worst:.3g} (language, vision, pooled outputs and answer scores)")
    return 1 if bad else 0


def random_inputs(c, rng, B, T, N):
    """B random questions of T words (CLS first, SEP last) and N boxes, unpadded, as run() takes them."""
    ids = torch.tensor(rng.randint(1000, c["vocab_size"], size=(B, T)))
    ids[:, 0], ids[:, -1] = 101, 102
    feats = torch.tensor(np.maximum(rng.normal(0, 1.5, size=(B, N, c["visual_feat_dim"])), 0).astype(np.float32))
    boxes = torch.tensor(rng.uniform(0, 1, size=(B, N, 4)).astype(np.float32))
    return ids, torch.zeros_like(ids), torch.ones(B, T), feats, boxes, torch.ones(B, N)


def bench(a):
    torch.set_num_threads(a.threads)
    t0 = time.time()
    c, m = open_model(a.dir, a.int8)
    open_s = time.time() - t0
    rng = np.random.RandomState(0)

    def timed(B, n):
        x = random_inputs(c, rng, B, a.T, a.N)
        run(m, *x)  # warm-up
        t, done = time.time(), 0
        while done < n:
            run(m, *x)
            done += B
        return (time.time() - t) / done

    per_b32 = timed(32, a.n)
    per_b1 = timed(1, max(a.n // 4, 1))
    print(json.dumps({"peer": "pytorch " + torch.__version__ + (" int8" if a.int8 else " fp32"), "threads": a.threads,
                      "open_s": round(open_s, 3), "qps_b32": round(1 / per_b32, 2), "ms_b1": round(1000 * per_b1, 1),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check", "bench"])
    ap.add_argument("dir")
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--N", type=int, default=36)
    ap.add_argument("--n", type=int, default=64)
    a = ap.parse_args()
    return check(a.dir) if a.cmd == "check" else bench(a)


if __name__ == "__main__":
    sys.exit(main())

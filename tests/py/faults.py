"""Streams for tests/faults.bats: good records for a model, bad ones of many kinds, and a reader that shows
what came out (one line a record). Uses only numpy, msgpack and msgpack_numpy, never the code under test.

    faults.py records DIR N [AT KIND]   N records for the model in DIR; record AT (1-based) is KIND instead
    faults.py repeat DIR COUNT          one record COUNT times (for memory over long streams)
    faults.py show FILE                 "question_id error|- has_language_output" for each record of FILE
    faults.py signal SIG OUT CMD...     runs CMD reading a FIFO; writes stdin to it, waits until CMD has read
                                        it all and is blocked reading more, sends SIG (INT or TERM), prints
                                        CMD's exit status; CMD's stdout goes to OUT, its stderr to ours
"""
import json
import os
import signal as sig
import subprocess
import sys
import tempfile
import time

import msgpack
import msgpack_numpy
import numpy as np


def config(d):
    with open(d + "/config.json") as f:
        return json.load(f)


def good(c, i, rng):
    T, N, F = 5, 3, c["visual_feat_dim"]
    ids = np.concatenate([[1], rng.integers(5, c["vocab_size"], T - 2), [2]]).astype(np.int32)
    return {"question_id": 1000 + i, "img_id": "img%d" % i, "input_ids": ids,
            "visual_feats": rng.random((N, F), np.float32), "visual_pos": rng.random((N, 4), np.float32)}


def tensor(dtype, shape, data):
    """A msgpack-numpy map written by hand, so that shape and data may disagree."""
    return {b"nd": True, b"type": dtype, b"kind": b"", b"shape": list(shape), b"data": data}


def bad(kind, c, i, rng):
    r = good(c, i, rng)
    if kind == "no-feats":
        del r["visual_feats"]
    elif kind == "nan-feats":
        r["visual_feats"][1, 2] = np.nan
    elif kind == "inf-pos":
        r["visual_pos"][0, 0] = np.inf
    elif kind == "ids-string":
        r["input_ids"] = "what is this"
    elif kind == "huge-shape":
        r["visual_feats"] = tensor("<f4", [2 ** 31, 2 ** 31], b"\0" * 16)
    elif kind == "id-out-of-range":
        r["input_ids"][1] = c["vocab_size"] + 7
    elif kind == "error":
        r = {"question_id": 1000 + i, "img_id": "img%d" % i, "error": "lx-tokenize: stdin: line %d: earlier" % i}
    elif kind == "not-map":
        return [1, 2, 3]
    else:
        raise SystemExit("faults.py: unknown kind " + kind)
    return r


def pack(r):
    return msgpack.packb(r, default=msgpack_numpy.encode, use_bin_type=True)


def records(d, n, at=0, kind=None):
    c = config(d)
    rng = np.random.default_rng(0)
    out = sys.stdout.buffer
    for i in range(1, n + 1):
        out.write(pack(bad(kind, c, i, rng) if i == at else good(c, i, rng)))


def repeat(d, count):
    one = pack(good(config(d), 1, np.random.default_rng(0)))
    out = sys.stdout.buffer
    chunk = one * 1000
    for _ in range(count // 1000):
        out.write(chunk)
    out.write(one * (count % 1000))


def decode(obj):
    try:
        return msgpack_numpy.decode(obj)
    except ValueError:  # a tensor whose shape and data disagree: shown as it is
        return obj


def show(path):
    with open(path, "rb") as f:
        for r in msgpack.Unpacker(f, object_hook=decode, raw=False, max_buffer_size=2 ** 31 - 1):
            if not isinstance(r, dict):
                print("not-a-map")
                continue
            print(r.get("question_id", "-"), r.get("error", "-"), int("language_output" in r))


def blocked_reading(pid):
    """True when pid's main thread sleeps in read(0, ...)."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()[:2] == ["0", "0x0"]
    except OSError:
        return False


def signal_run(name, out, cmd):
    data = sys.stdin.buffer.read()
    d = tempfile.mkdtemp()
    fifo = os.path.join(d, "in")
    os.mkfifo(fifo)
    with open(out, "wb") as o:
        p = subprocess.Popen(["sh", "-c", 'exec "$@" < "$0"', fifo] + cmd, stdout=o)
        w = os.open(fifo, os.O_WRONLY)  # waits for the tool to open its end
        os.write(w, data)
        deadline = time.time() + 60
        while not blocked_reading(p.pid) and p.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        p.send_signal(getattr(sig, "SIG" + name))
        try:
            rc = p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "still running 60 s after the signal"
        os.close(w)
    os.unlink(fifo)
    os.rmdir(d)
    print(rc)


def main():
    a = sys.argv[1:]
    if a[0] == "records":
        records(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 0, a[4] if len(a) > 4 else None)
    elif a[0] == "repeat":
        repeat(a[1], int(a[2]))
    elif a[0] == "show":
        show(a[1])
    elif a[0] == "signal":
        signal_run(a[1], a[2], a[3:])
    else:
        raise SystemExit("usage: faults.py records|repeat|show ...")


main()

"""Checks lx-tokenize's output from Python (msgpack + msgpack_numpy). Usage:

  tokcheck.py input CASES plain|jsonl       the reference cases as lx-tokenize input (plain: one text a line,
                                            leaving out texts with a line break; jsonl: {"text": ...})
  tokcheck.py cases CASES plain|jsonl       stdin holds lx-tokenize --tokens output for that input: input_ids
                                            (int32 [T]) and tokens must equal the reference's, case by case
  tokcheck.py ids JSON|@FILE                the input_ids of the records on stdin are the lists in JSON
  tokcheck.py field NAME JSON               field NAME of each record on stdin, as a list, equals JSON
  tokcheck.py carried LINES                 each record on stdin holds the fields of the JSON object on the
                                            same line of the file LINES, in order, with the same types and
                                            values, followed by input_ids
  tokcheck.py oracle-self CASES VOCAB       bert_ref.py reproduces every reference case (trust the oracle)
  tokcheck.py oracle-input                  strings around every code point of planes 0 and 1 and every
                                            7th of planes 2 and 14, and random mixes: the oracle test's input
  tokcheck.py oracle INPUT VOCAB            the tokens on stdin equal bert_ref.py's for each line of INPUT
Exits 1 with a message on the first difference."""
import ctypes
import ctypes.util
import json
import random
import sys
import unicodedata

import msgpack
import msgpack_numpy
import numpy as np

import bert_ref


def records():
    return list(msgpack.Unpacker(sys.stdin.buffer, object_hook=msgpack_numpy.decode, raw=False,
                                 strict_map_key=False))


def fail(msg):
    print("tokcheck: " + msg, file=sys.stderr)
    sys.exit(1)


def load_cases(path, mode):
    with open(path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    if mode == "plain":
        cases = [c for c in cases if "\n" not in c["text"] and "\r" not in c["text"]]
    return cases


def ids_of(rec, n):
    a = rec.get("input_ids")
    if not isinstance(a, np.ndarray) or a.dtype != np.int32 or a.ndim != 1:
        fail("record %d: input_ids is %r, expected an int32 [T] tensor" % (n, type(a)))
    return a.tolist()


def cmd_input(path, mode):
    out = sys.stdout.buffer
    for c in load_cases(path, mode):
        if mode == "plain":
            out.write(c["text"].encode("utf-8") + b"\n")
        else:
            out.write(json.dumps({"text": c["text"]}).encode("ascii") + b"\n")


def cmd_cases(path, mode):
    cases, recs = load_cases(path, mode), records()
    if len(recs) != len(cases):
        fail("%d records for %d cases" % (len(recs), len(cases)))
    for n, (c, r) in enumerate(zip(cases, recs), 1):
        text = r.get("sent" if mode == "plain" else "text")
        if text != c["text"]:
            fail("record %d: text %r, expected %r" % (n, text, c["text"]))
        if ids_of(r, n) != c["input_ids"]:
            fail("case %r: input_ids %r, expected %r" % (c["text"], ids_of(r, n), c["input_ids"]))
        if r.get("tokens") != c["tokens"]:
            fail("case %r: tokens %r, expected %r" % (c["text"], r.get("tokens"), c["tokens"]))
    print("%d cases identical" % len(cases))


def cmd_ids(expected):
    if expected.startswith("@"):
        with open(expected[1:]) as f:
            expected = f.read()
    want, recs = json.loads(expected), records()
    got = [ids_of(r, n) for n, r in enumerate(recs, 1)]
    if got != want:
        fail("input_ids %s, expected %s" % (json.dumps(got)[:2000], json.dumps(want)[:2000]))


def cmd_field(name, expected):
    want, recs = json.loads(expected), records()
    got = [r.get(name) for r in recs]
    if got != want:
        fail("%s %r, expected %r" % (name, got, want))


def same_typed(a, b):
    """Equal values with equal Python types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same_typed(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_typed(x, y) for x, y in zip(a, b))
    return a == b


def cmd_carried(lines_path):
    with open(lines_path, encoding="utf-8") as f:
        objs = [json.loads(line) for line in f]
    recs = records()
    if len(recs) != len(objs):
        fail("%d records for %d lines" % (len(recs), len(objs)))
    for n, (o, r) in enumerate(zip(objs, recs), 1):
        keys = list(r.keys())
        if keys != list(o.keys()) + ["input_ids"]:
            fail("record %d: keys %r, expected %r + input_ids" % (n, keys, list(o.keys())))
        ids_of(r, n)
        del r["input_ids"]
        if not same_typed(r, o):
            fail("record %d: %r, expected %r" % (n, r, o))


def utf8proc_differs():
    """Code points to which utf8proc and Python's unicodedata give a different category: the two follow
    different Unicode versions (utf8proc 2.6: 13.0; Python 3.11: 14.0), so there the tool and the oracle
    may both be right. The set is printed so that it stays small."""
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc"))
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_category.argtypes = [ctypes.c_int32]
    names = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
             "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]
    return {cp for cp in oracle_points() if names[lib.utf8proc_category(cp)] != unicodedata.category(chr(cp))}


def oracle_points():
    planes = list(range(0, 0x20000)) + list(range(0x20000, 0x30000, 7)) + list(range(0xE0000, 0xE1000, 7))
    return [cp for cp in planes if not 0xD800 <= cp <= 0xDFFF and cp not in (0x0A, 0x0D)]


def oracle_lines():
    skip = utf8proc_differs()
    lines = []
    for cp in oracle_points():
        if cp in skip:
            continue
        c = chr(cp)
        lines.append("A%sb %s %s%sX" % (c, c, c, c))
    rng = random.Random(1)
    pool = list("aZ09 .,'-[]\t") + ["[MASK]", "[CLS]", "[mask]", "[UNK]", "[PAD]", "[SEP]", "[MAS"] + \
        [chr(x) for x in (0xC9, 0xE9, 0x301, 0x316, 0x323, 0x345, 0x1FEF, 0x37E, 0x130, 0x3A3, 0x3C2, 0x2028,
                          0x2029, 0xA0, 0x3000, 0x200B, 0x200D, 0xAD, 0xFFFD, 0x0, 0x85, 0x4E2D, 0xF900, 0xD55C,
                          0x1100, 0x1161, 0x3042, 0x30AB, 0x1F600, 0x20000, 0xFF21, 0xFB01, 0x1C5, 0xDF, 0x1E9E,
                          0x212A, 0x2126, 0xE000, 0x10FFFD, 0x0E3F, 0x0E31, 0x0F71, 0x0F72, 0x0F80, 0x05B0,
                          0x0591, 0x1D165, 0x1D16D)]
    for _ in range(30000):
        lines.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 24))))
    words = ["a" * 99, "a" * 100, "a" * 101, "bb" * 50, "é" * 100, "é" * 101, "a" + "\u0301" * 150]
    lines.extend(words)
    return lines, len(skip)


def cmd_oracle_input():
    lines, skipped = oracle_lines()
    out = sys.stdout.buffer
    for line in lines:
        out.write(line.encode("utf-8") + b"\n")
    print("%d lines, %d code points left out as Unicode-version differences" % (len(lines), skipped),
          file=sys.stderr)


def cmd_oracle_self(cases_path, vocab_path):
    vocab = bert_ref.load_vocab(vocab_path)
    cases = load_cases(cases_path, "jsonl")
    for c in cases:
        toks = bert_ref.tokenize(c["text"], vocab)
        if toks != c["tokens"] or bert_ref.ids(toks, vocab) != c["input_ids"]:
            fail("the oracle gives %r for %r, the reference %r" % (toks, c["text"], c["tokens"]))
    print("the oracle reproduces %d cases" % len(cases))


def cmd_oracle(input_path, vocab_path):
    vocab = bert_ref.load_vocab(vocab_path)
    with open(input_path, "rb") as f:
        lines = [line[:-1].decode("utf-8") for line in f]
    recs = records()
    if len(recs) != len(lines):
        fail("%d records for %d lines" % (len(recs), len(lines)))
    for n, (line, r) in enumerate(zip(lines, recs), 1):
        want = bert_ref.tokenize(line, vocab)
        if r.get("tokens") != want or ids_of(r, n) != bert_ref.ids(want, vocab):
            fail("line %d %r: tokens %r, the oracle says %r" % (n, line, r.get("tokens"), want))
    print("%d lines identical" % len(lines))


def main(argv):
    cmds = {"input": cmd_input, "cases": cmd_cases, "ids": cmd_ids, "field": cmd_field,
            "carried": cmd_carried, "oracle-self": cmd_oracle_self,
            "oracle-input": cmd_oracle_input, "oracle": cmd_oracle}
    if len(argv) < 2 or argv[1] not in cmds:
        fail(__doc__)
    cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)

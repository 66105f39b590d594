#!/bin/sh
# tests/snapshot.sh BINDIR OUTDIR: a byte-for-byte snapshot of what every tool writes, to prove that a
# refactor changes no output. Runs the tools in BINDIR over this checkout's fixtures (tests/fixtures,
# models/demo, examples/) and writes into OUTDIR (made if missing, refused if not empty):
#   CASE          the stdout of each case, one file a case, named after it
#   CASE.d/       the directory a case writes (lx-convert, lx-train, lx-attnviz, examples/vqa-eval)
#   CASE.lxidx    the index lx-featpack --index wrote, with its mtime replaced by MTIME
#   CASE.json     the --score-file lx-head wrote
#   STATUS        "CASE EXIT-STATUS", one line a case, in the order they ran
#   INPUTS        sha256 of the inputs made for the cases (a change there is a change in the helpers)
#   DIRS          every directory under OUTDIR, empty ones too
#   SHA256SUMS    sha256sum of every other file, sorted by path, paths relative to OUTDIR
# Compare two snapshots with `diff A/SHA256SUMS B/SHA256SUMS`, then cmp the files it names.
#
# Stderr is not kept, as its wording may change; exit statuses are. Some stdout holds message text all
# the same: the error records of --keep-going (the *.keep-going cases) and the usage (help.*).
# Everything is deterministic: inputs come from the Python helpers of tests/py/ (fixed seeds; tests/ in
# older checkouts), run in one process of $LX_PYTHON (default /usr/bin/python3, with numpy, msgpack,
# msgpack_numpy and PIL); lx-encode and lx-train run with --threads 1; every tool is run from a scratch
# directory on relative paths (the checkout as r/, OUTDIR as o/, scratch files in t/), so that no output
# depends on where the checkout, OUTDIR or the scratch directory lie. About 15 s of CPU.
set -u

die() { echo "snapshot.sh: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: sh tests/snapshot.sh BINDIR OUTDIR"
ROOT=$(cd "$(dirname "$0")/.." && pwd) || die "cannot find the checkout"
BIN=$(cd "$1" 2> /dev/null && pwd) || die "$1: no such directory"
for t in lx-tokenize lx-featpack lx-encode lx-head lx-attnviz lx-convert lx-train; do
	[ -x "$BIN/$t" ] || die "$BIN/$t: not an executable"
done
mkdir -p "$2" || die "$2: cannot make it"
OUT=$(cd "$2" && pwd)
[ -z "$(ls -A "$OUT")" ] || die "$OUT is not empty"
PYTHON=${LX_PYTHON:-/usr/bin/python3}
W=$(mktemp -d "${TMPDIR:-/tmp}/lx-snapshot.XXXXXX") || die "cannot make a scratch directory"
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
cd "$W" || die "$W: cannot enter it"
ln -s "$ROOT" r
ln -s "$OUT" o
mkdir t
START=$(date +%s)

# Relative names from here on: r = the checkout, o = OUTDIR, t = scratch.
F=r/tests/fixtures
TSV=$F/train2014_obj36_sample.tsv
VOCAB=$F/vocab.txt
TINY=$F/tiny
MICRO=$F/micro
LAB=$F/labels
DEMO=r/models/demo
TOK=$BIN/lx-tokenize
FP=$BIN/lx-featpack
ENC=$BIN/lx-encode
HEAD=$BIN/lx-head
VIZ=$BIN/lx-attnviz
CONV=$BIN/lx-convert
TRAIN=$BIN/lx-train

# run CASE CMD [ARG]...: stdout to o/CASE, stderr dropped, "CASE STATUS" to STATUS.
run() {
	c=$1
	shift
	[ ! -e "o/$c" ] || die "case $c twice"
	"$@" > "o/$c" 2>> t/stderr
	echo "$c $?" >> o/STATUS
}
# index CASE FILE: FILE.lxidx as o/CASE.lxidx, the mtime on line 2 replaced by MTIME.
index() {
	sed '2s/ mtime [0-9.]* / mtime MTIME /' "$2.lxidx" > "o/$1.lxidx"
}

# ---- the inputs ----
# Written by the tests' own helpers through their command lines (helper(OUT, SCRIPT, ARGS..., stdin=IN) is
# `python3 SCRIPT ARGS... < IN > OUT`), all in one process to save numpy's start-up time.
printf '%s\n' "supercalifragilisticexpialidocious antidisestablishmentarianism" \
	"user@example.com http://www.example.org/path?q=1&b=2" "Is the plate empty?" > t/long.txt
printf '%s\n' "A man riding a wave on top of a surfboard." "3.14159 and \$5.00 and 50% off" "ภาษาไทย" \
	"What's the name of the street?" "C++ C# F# .NET node.js" "A [MASK] is sleeping." "" \
	"is the zebra's stripe black or white?" "don't won't can't it's" > t/decode.txt
cat > t/carried.jsonl << 'EOF'
{"question_id": 458752000, "img_id": "COCO_val2014_000000000042", "sent": "What is this?", "label": {"net": 1, "yes": 0.3}, "score": 0.1, "flag": true, "off": false, "none": null, "list": [1, "a", [2.5, null, {"k": -7}]], "neg": -9007199254740993, "empty": {}, "nothing": [], "uni": "\u03a9\u00e9\u0000x"}
{"question_id": "07333408", "img_id": "2375429", "sent": "", "label": {"pipe": 1.0}}
{"input_ids": [1, 2], "tokens": "x", "sent": "Is the plate empty?", "question": "Is it going to rain?"}
EOF
printf 'Is the plate empty?\r\nWhat are they eating?\r\n\n\nlast line without an ending' > t/crlf.txt
printf '{"sent": "Is it?"}\n{"sent": "c",}\n{"sent": 42}\n["a"]\n{"question": "no sent"}\n{"sent": "Is the plate empty?"}\n' \
	> t/bad.jsonl
printf '\202\246img_id\315\017\241\241n\001' > t/int.mp # {"img_id": 4001, "n": 1}
cp $TSV t/feats.tsv
mkdir t/hub
cp $MICRO/pytorch_model.bin $MICRO/config.json t/hub/
printf '[PAD]\n[UNK]\nhello\n' > t/hub/vocab.txt
cp -r $TINY t/m12
for i in 0 1 2 3 4 5 6 7 8 9 10 11; do echo "a$i"; done > t/m12/answers.txt
cp -r $MICRO t/micro5
printf 'n0\nn1\nn2\nn3\nn4\n' > t/micro5/answers.txt

# The tests' Python helpers are in tests/py/, or in tests/ in older checkouts.
HELPERS=r/tests/py
[ -f $HELPERS/lxtest.py ] || HELPERS=r/tests
PYTHONPATH=$HELPERS "$PYTHON" - $HELPERS << 'EOF' || die "making the inputs failed"
import io, os, runpy, sys
import msgpack, msgpack_numpy, numpy as np
from lxtest import read_records, read_safetensors, write_records

H, F = sys.argv[1], "r/tests/fixtures"
TINY, MICRO, LAB = F + "/tiny", F + "/micro", F + "/labels"
failed = []


def attempt(what, fn, *args):
    """fn(*args); a failure is reported and the other inputs are made all the same (the cases that need
    this one then fail, and INPUTS and STATUS show it)."""
    try:
        fn(*args)
    except SystemExit as e:
        if e.code:
            failed.append("%s: exit status %s" % (what, e.code))
    except Exception as e:
        failed.append("%s: %s: %s" % (what, type(e).__name__, e))


def helper(out, script, *args, stdin=None):
    saved = sys.argv, sys.stdin, sys.stdout, sys.path
    modules = set(sys.modules)  # the modules a helper adds (ckpt_helper's fake torch) go with it
    argv = [os.path.join(H, script)] + [str(a) for a in args]
    try:
        with open(out or os.devnull, "wb") as f, open(stdin or os.devnull, "rb") as i:
            sys.argv, sys.path = argv, [H] + sys.path  # sys.path[0] as for `python3 SCRIPT`
            sys.stdin = io.TextIOWrapper(i, encoding="utf-8")
            sys.stdout = io.TextIOWrapper(f, encoding="utf-8", write_through=True)
            attempt(" ".join(argv), runpy.run_path, argv[0], None, "__main__")
            sys.stdout.flush()
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.path = saved
        for m in set(sys.modules) - modules:
            del sys.modules[m]


def records(path):
    with open(path, "rb") as f:
        return read_records(f)


def write(path, recs):
    with open(path, "wb") as f:
        write_records(recs, f)


def first(src, dst, n):
    attempt(dst, lambda: write(dst, records(src)[:n]))


def pack(path, objs):
    with open(path, "wb") as f:
        for o in objs:
            f.write(msgpack.packb(o, default=msgpack_numpy.encode))


# lx-tokenize
helper("t/cases.jsonl", "tokcheck.py", "input", F + "/tokenizer_cases.jsonl", "jsonl")
helper("t/cases.txt", "tokcheck.py", "input", F + "/tokenizer_cases.jsonl", "plain")
with open("t/invalid.txt", "wb") as f:
    f.write(b"control\x00chars\x07here\xff\nIs\xf0\x9f\x98 it\xed\xa0\x80?\xc0\xaf \xe0\x80\xe2\x82\n\xf4\x90\x80\x80x\xc3\n")
pack("t/ids.mp", [{"input_ids": np.array([101, 2054, 2003, 2023, 1029, 102, 0, 0], np.int64)},
                  {"input_ids": [101, 14477, 20961, 3468, 102]}, {"question_id": 7, "input_ids": [101, 30522, 102]},
                  {"input_ids": [101, 2054, 102]}])

# lx-featpack
helper("t/q.mp", "featref.py", "questions", F + "/questions.jsonl")
helper("t/pairs.mp", "featref.py", "pairs", F + "/questions.jsonl")
helper("t/shuf.mp", "featref.py", "shuffle", "t/q.mp", 3)
helper(None, "featref.py", "write-butd", "t/butd.tsv", 5)
helper(None, "featref.py", "write-npz", "t/deflated", 3, "deflated")
helper(None, "featref.py", "write-npz", "t/stored", 3, "stored")
helper(None, "featref.py", "write-npy", "t/npy", 4)
helper(None, "featref.py", "write-npy", "t/p2", 2, 2)
helper(None, "featref.py", "write-npy", "t/p5", 2, 5)
helper(None, "featref.py", "normalize-tsv", F + "/train2014_obj36_sample.tsv", "t/norm.tsv")
helper(None, "featref.py", "write-obj36", "t/obj36.tsv", 3, 12, 64)
helper(None, "featref.py", "write-npz", "t/mixed", 2, "deflated")
helper(None, "featref.py", "write-npy", "t/mixed", 2)
pack("t/mixed.mp", [{"img_id": i, "question_id": len(i)} for i in
                    ["000000000501", "4002", "000000000701", "COCO_train2014_000000084002", "000000000500", "4000",
                     "000000000700", "img000002"]])
pack("t/missing.mp", [{"question_id": q, "img_id": "COCO_train2014_000000" + i}
                      for q, i in enumerate(["132417", "999999", "573195"])])

# lx-encode
helper("t/tiny.mp", "golden.py", "inputs", TINY + "/golden.safetensors")
helper("t/micro.mp", "golden.py", "inputs", MICRO + "/golden.safetensors")
helper("t/extras.mp", "encode_cases.py", "extras", TINY + "/golden.safetensors")
helper("t/repeat.mp", "encode_cases.py", "repeat", TINY + "/golden.safetensors", 23)
helper("t/int64.mp", "encode_cases.py", "record", "int64-ids", TINY + "/golden.safetensors")
helper("t/list.mp", "encode_cases.py", "record", "list-ids", TINY + "/golden.safetensors")
helper("t/nan.mp", "encode_cases.py", "record", "nan-feats", TINY + "/golden.safetensors")
attempt("t/badenc.mp", lambda: write("t/badenc.mp", records("t/tiny.mp")[:2] + records("t/nan.mp") +
                                     records("t/tiny.mp")[2:3]))
for k in ("f16", "bf16", "no-heads"):
    helper(None, "encode_cases.py", "model", TINY, "t/tiny-" + k, k)

# lx-head
helper("t/out.mp", "head_cases.py", "outputs", TINY + "/golden.safetensors", 0, 1, 2, 3, 4, 5, 6)
helper("t/out0.mp", "head_cases.py", "outputs", TINY + "/golden.safetensors", 0)
helper("t/lab-tiny.mp", "head_cases.py", "labelled", TINY + "/golden.safetensors")
helper("t/lab-micro.mp", "head_cases.py", "labelled", MICRO + "/golden.safetensors")
for n in (3129, 9500, 1842):
    helper(None, "head_cases.py", "model", TINY, "t/m%d" % n, "qa", n)
helper(None, "head_cases.py", "model", TINY, "t/noqa", "no-qa")
helper(None, "head_cases.py", "text-labels", LAB + "/gqa_trainval_label2ans.json", "t/gqa.txt")


def labelled():
    recs = records("t/out.mp")
    recs[0].update({"img_id": "COCO_val2014_000000000042", "label": {"net": 1, "ball": 0.3}, "flag": True,
                    "nothing": None, "nested": [1, -2, [3.5, "x"]], "quote": "a \"b\"\n\u00e9"})
    recs[1]["question_id"] = "07333408"
    every = lambda s: {"a%d" % i: s for i in range(12)}
    for r, label in zip(recs[2:], [every(1.0), every(0.3), {}, {"not an answer": 1}, {"a3": 0.9, "a7": 0.6}]):
        r["label"] = label
    for r, i in zip(recs, ["dev-1-0-0", "dev-1-0-0", "dev-2-1-0", "dev-2-1-0", "dev-3-0-1", "dev-4-0-0",
                           "dev-4-0-0"]):
        r["identifier"] = i
    write("t/rich.mp", recs)
    for r, v in zip(recs, [1, 1, 0, 0, 1, 0, 0]):
        r["label"] = v
    write("t/nlvr2.mp", recs)
    recs = records("t/out.mp")
    del recs[1]["pooled_output"]
    write("t/nopooled.mp", recs)
    target = read_safetensors(MICRO + "/golden_grads.safetensors")["vqa.target"]
    recs = records("t/micro.mp")
    recs[0]["label"] = {"n%d" % i: float(v) for i, v in enumerate(target) if v}
    recs[0]["label"]["not an answer"] = 1
    write("t/vqa-micro.mp", recs)


attempt("t/rich.mp, t/nlvr2.mp, t/nopooled.mp, t/vqa-micro.mp", labelled)

# lx-attnviz
helper("t/viz.mp", "attnviz.py", "records")
helper("t/viz-bare.mp", "attnviz.py", "records", "--bare")
helper(None, "attnviz.py", "photos", "t/photos")
for what, n in (("shrink", 2), ("ids", 3), ("tokens", 3)):
    helper("t/viz-" + what + ".mp", "attnviz.py", "edit", what, stdin="t/viz.mp")
    first("t/viz-" + what + ".mp", "t/viz-%s%d.mp" % (what, n), n)
first("t/viz-bare.mp", "t/viz-bare2.mp", 2)

# lx-convert
helper(None, "ckpt_helper.py", "make", "finetuned", "t/finetuned.pth", "legacy")
helper(None, "ckpt_helper.py", "make", "views", "t/views.bin", "legacy")
helper(None, "ckpt_helper.py", "make", "system", "t/evil.bin", "legacy")

# lx-train
helper("t/train.mp", "train_cases.py", 32, 1, "ans")
helper("t/valid.mp", "train_cases.py", 16, 2, "ans")
helper("t/label.mp", "train_cases.py", 24, 1, "label")
helper("t/pretrain.mp", "train_cases.py", 16, 3, "pretrain")
helper("t/nolabel.mp", "train_cases.py", 4, 1, "none")
attempt("t/lab-micro6.mp", lambda: write("t/lab-micro6.mp", records("t/lab-micro.mp") * 6))

with open("t/failed", "w") as f:
    for m in failed:
        print("snapshot.sh: could not make an input: " + m, file=sys.stderr)
        print(m, file=f)
EOF
(cd t && find . -type f ! -name '*.npz' ! -name failed -print | sed 's|^\./||' | LC_ALL=C sort | tr '\n' '\0' |
	xargs -0 sha256sum) > o/INPUTS # not the .npz, whose zip members hold the time they were written

# ---- lx-tokenize ----
run tok.cases.jsonl "$TOK" --vocab $VOCAB --jsonl --field text --tokens < t/cases.jsonl
run tok.cases.plain "$TOK" --vocab $VOCAB --tokens < t/cases.txt
run tok.cases.plain.ids "$TOK" -m $TINY < t/cases.txt
run tok.cases.max8 "$TOK" --vocab $VOCAB --max-length 8 < t/cases.txt
run tok.long.max2 "$TOK" --vocab $VOCAB --max-length 2 --tokens < t/long.txt
run tok.long.max20 "$TOK" --vocab $VOCAB --max-length 20 < t/long.txt
run tok.questions "$TOK" --vocab $VOCAB --jsonl $F/questions.jsonl
run tok.questions.tokens.max20 "$TOK" -m $DEMO --jsonl --tokens --max-length 20 $F/questions.jsonl
run tok.questions.field "$TOK" --vocab $VOCAB --jsonl --field img_id < $F/questions.jsonl
run tok.carried "$TOK" --vocab $VOCAB --jsonl --tokens < t/carried.jsonl
run tok.carried.field.keep-going "$TOK" --vocab $VOCAB --jsonl --field question --keep-going < t/carried.jsonl
run tok.crlf-files "$TOK" --vocab $VOCAB t/crlf.txt - t/long.txt < t/decode.txt
run tok.replace-invalid "$TOK" --vocab $VOCAB --replace-invalid --tokens < t/invalid.txt
run tok.invalid "$TOK" --vocab $VOCAB < t/invalid.txt
run tok.invalid.keep-going "$TOK" --vocab $VOCAB --keep-going < t/invalid.txt
run tok.bad-jsonl "$TOK" --vocab $VOCAB --jsonl < t/bad.jsonl
run tok.bad-jsonl.keep-going "$TOK" --vocab $VOCAB --jsonl --keep-going < t/bad.jsonl
run tok.decode.ids "$TOK" --vocab $VOCAB < t/decode.txt
run tok.decode "$TOK" --vocab $VOCAB --decode < o/tok.decode.ids
run tok.decode.cases "$TOK" --vocab $VOCAB --decode < o/tok.cases.plain
run tok.decode.questions "$TOK" -m $DEMO --decode < o/tok.questions.tokens.max20
run tok.decode.int64-outside "$TOK" --vocab $VOCAB --decode < t/ids.mp

# ---- lx-featpack ----
run fp.obj36 "$FP" $TSV
run fp.obj36.max10 "$FP" --max-boxes 10 $TSV
run fp.obj36.random "$FP" t/obj36.tsv
run fp.stream "$FP" o/fp.obj36
run fp.stdin "$FP" /dev/stdin < $TSV
run fp.butd "$FP" t/butd.tsv
run fp.npz "$FP" t/deflated t/stored/000000000601.npz t/stored
run fp.npy "$FP" t/npy
run fp.npy.pickle2 "$FP" t/p2/000000000700.npy
run fp.npy.pickle5 "$FP" t/p5/000000000700.npy
run fp.no-normalize "$FP" --no-normalize t/norm.tsv
run fp.join "$FP" --join $TSV < t/q.mp
run fp.join.tokenized "$FP" --join --max-boxes 20 $TSV < o/tok.questions
run fp.join.cache1 "$FP" --join --cache 1 $TSV < t/shuf.mp
run fp.join.pairs "$FP" --join $TSV < t/pairs.mp
run fp.join.pairs.keys "$FP" --join --key img1 --key img0 $TSV < t/pairs.mp
run fp.join.pairs.key1 "$FP" --join --key img1 $TSV < t/pairs.mp
run fp.join.mixed "$FP" --join t/mixed t/butd.tsv o/fp.obj36 t/obj36.tsv < t/mixed.mp
run fp.join.int-id "$FP" --join t/butd.tsv < t/int.mp
run fp.join.index "$FP" --join --index t/feats.tsv < t/q.mp
index fp.join.index t/feats.tsv
run fp.join.index.reread "$FP" --join --index --cache 2 t/feats.tsv < t/shuf.mp
cp o/fp.obj36 t/feats.mp
run fp.join.index.stream "$FP" --join --index --cache 2 t/feats.mp < t/shuf.mp
index fp.join.index.stream t/feats.mp
run fp.join.missing "$FP" --join $TSV < t/missing.mp
run fp.join.missing.keep-going "$FP" --join --keep-going $TSV < t/missing.mp

# ---- lx-encode ----
run enc.tiny "$ENC" -m $TINY --threads 1 < t/tiny.mp
run enc.tiny.all "$ENC" -m $TINY --attentions --hidden-states --threads 1 < t/tiny.mp
run enc.tiny.all.b1 "$ENC" -m $TINY --attentions --hidden-states --batch 1 --threads 1 < t/tiny.mp
run enc.tiny.all.b4 "$ENC" -m $TINY --attentions --hidden-states --batch 4 --threads 1 < t/tiny.mp
run enc.tiny.att.b4 "$ENC" -m $TINY --attentions --batch 4 --threads 1 < t/tiny.mp
run enc.tiny.hidden.b1 "$ENC" -m $TINY --hidden-states --batch 1 --threads 1 < t/tiny.mp
run enc.micro "$ENC" -m $MICRO --threads 1 < t/micro.mp
run enc.micro.all "$ENC" -m $MICRO --attentions --hidden-states --threads 1 < t/micro.mp
run enc.micro.all.b1 "$ENC" -m $MICRO --attentions --hidden-states --batch 1 --threads 1 < t/micro.mp
run enc.micro.all.b4 "$ENC" -m $MICRO --attentions --hidden-states --batch 4 --threads 1 < t/micro.mp
run enc.repeat23.b1 "$ENC" -m $TINY --batch 1 --threads 1 < t/repeat.mp
run enc.repeat23.b4 "$ENC" -m $TINY --batch 4 --threads 1 < t/repeat.mp
run enc.repeat23.b7.all "$ENC" -m $TINY --attentions --hidden-states --batch 7 --threads 1 < t/repeat.mp
run enc.extras "$ENC" -m $TINY --threads 1 < t/extras.mp
run enc.int64-ids "$ENC" -m $TINY --threads 1 < t/int64.mp
run enc.list-ids "$ENC" -m $TINY --threads 1 < t/list.mp
run enc.f16 "$ENC" -m t/tiny-f16 --threads 1 < t/tiny.mp
run enc.bf16 "$ENC" -m t/tiny-bf16 --batch 4 --threads 1 < t/tiny.mp
run enc.no-heads "$ENC" -m t/tiny-no-heads --threads 1 < t/tiny.mp
run enc.bad-record "$ENC" -m $TINY --threads 1 < t/badenc.mp
run enc.bad-record.keep-going "$ENC" -m $TINY --batch 4 --threads 1 --keep-going < t/badenc.mp
run enc.empty "$ENC" -m $TINY --threads 1 < /dev/null

# ---- lx-head ----
run head.tiny "$HEAD" -m $TINY < t/out.mp
run head.tiny.all-logits "$HEAD" -m $TINY --all-logits < t/out.mp
run head.tiny.from-encode "$HEAD" -m $TINY --all-logits < o/enc.tiny
run head.micro.from-encode "$HEAD" -m $MICRO --all-logits < o/enc.micro
run head.tiny.json "$HEAD" -m $TINY --json < t/rich.mp
run head.tiny.json-tensors "$HEAD" -m $TINY --heads qa,obj --json --json-tensors < t/out0.mp
run head.tiny.qa.top3 "$HEAD" -m $TINY --heads qa --top 3 < t/out.mp
run head.tiny.qa.sigmoid "$HEAD" -m $TINY --heads qa --answer-prob sigmoid --json < t/out.mp
run head.tiny.qa.softmax "$HEAD" -m $TINY --heads qa --answer-prob softmax --json < t/out.mp
run head.tiny.mlm.top4 "$HEAD" -m $TINY --heads mlm --top 4 < t/out.mp
run head.tiny.mlm.json "$HEAD" -m $TINY --heads mlm --json < t/out.mp
run head.tiny.match "$HEAD" -m $TINY --heads match < t/out.mp
run head.tiny.obj.names "$HEAD" -m $TINY --heads obj --objects $LAB/vg_objects_vocab.txt \
	--attributes $LAB/vg_attributes_vocab.txt --json < t/out.mp
run head.tiny.match-obj "$HEAD" -m $TINY --heads match,obj < t/out.mp
run head.labels.vqa "$HEAD" -m t/m3129 --heads qa --labels $LAB/vqa_trainval_label2ans.json --json < t/out.mp
run head.labels.lxmert-all "$HEAD" -m t/m9500 --heads qa --labels $LAB/lxmert_all_ans.json < t/out0.mp
run head.labels.gqa-text "$HEAD" -m t/m1842 --heads qa --labels t/gqa.txt --json < t/out.mp
run head.answers-txt "$HEAD" -m t/m12 --heads qa --top 12 --json < t/out.mp
run head.submit.vqa "$HEAD" -m t/m3129 --labels $LAB/vqa_trainval_label2ans.json --submit vqa < t/rich.mp
run head.submit.gqa "$HEAD" -m t/m1842 --labels $LAB/gqa_trainval_label2ans.json --submit gqa < t/rich.mp
run head.submit.nlvr2 "$HEAD" -m $TINY --submit nlvr2 < t/rich.mp
run head.submit.vqa.empty "$HEAD" -m t/m12 --submit vqa < /dev/null
run head.score "$HEAD" -m t/m12 --heads qa --score --score-file o/head.score.json --json < t/rich.mp
run head.score.nlvr2 "$HEAD" -m $TINY --heads match --score --score-file o/head.score.nlvr2.json < t/nlvr2.mp
run head.loss.tiny.encode "$ENC" -m $TINY --threads 1 < t/lab-tiny.mp
run head.loss.tiny "$HEAD" -m $TINY < o/head.loss.tiny.encode
run head.loss.tiny.json "$HEAD" -m $TINY --json < o/head.loss.tiny.encode
run head.loss.micro.encode "$ENC" -m $MICRO --threads 1 < t/lab-micro.mp
run head.loss.micro "$HEAD" -m $MICRO < o/head.loss.micro.encode
run head.vqa-loss.micro.encode "$ENC" -m t/micro5 --threads 1 < t/vqa-micro.mp
run head.vqa-loss.micro "$HEAD" -m t/micro5 --heads qa < o/head.vqa-loss.micro.encode
run head.no-qa "$HEAD" -m t/noqa < t/out.mp
run head.extras "$HEAD" -m $TINY < o/enc.extras
run head.no-pooled "$HEAD" -m $TINY < t/nopooled.mp
run head.no-pooled.keep-going "$HEAD" -m $TINY --keep-going --json < t/nopooled.mp
run head.empty "$HEAD" -m $TINY < /dev/null

# ---- lx-attnviz ----
run viz.encode "$ENC" -m $TINY --attentions --threads 1 < t/viz.mp
run viz.photos "$VIZ" -o o/viz.photos.d --images t/photos --cell 7 < o/viz.encode
run viz.encode.shrink "$ENC" -m $TINY --attentions --threads 1 < t/viz-shrink2.mp
run viz.canvas "$VIZ" -o o/viz.canvas.d --cell 5 --top 0 < o/viz.encode.shrink
run viz.encode.bare "$ENC" -m $TINY --attentions --threads 1 < t/viz-bare2.mp
run viz.bare "$VIZ" -o o/viz.bare.d --cell 6 --top 1 --token 2 --layer 0 --head 3 < o/viz.encode.bare
run viz.encode.ids "$ENC" -m $TINY --attentions --threads 1 < t/viz-ids3.mp
run viz.ids "$VIZ" -o o/viz.ids.d --cell 4 --max-side 200 < o/viz.encode.ids
run viz.encode.bad "$ENC" -m $TINY --attentions --threads 1 < t/viz-tokens3.mp
run viz.bad "$VIZ" -o o/viz.bad.d --cell 3 < o/viz.encode.bad
run viz.empty "$VIZ" -o o/viz.empty.d < /dev/null

# ---- lx-convert ----
for f in pytorch_model.bin pytorch_model_legacy.bin lxrt_original.pth model.safetensors; do
	run conv.list.$f "$CONV" --list $MICRO/$f
done
run conv.zip "$CONV" -q --num-attention-heads 2 $MICRO/pytorch_model.bin o/conv.zip.d
run conv.legacy "$CONV" -q --num-attention-heads 2 $MICRO/pytorch_model_legacy.bin o/conv.legacy.d
run conv.lxrt "$CONV" --num-attention-heads 2 $MICRO/lxrt_original.pth o/conv.lxrt.d
run conv.f16 "$CONV" --dtype f16 --config $MICRO/config.json $MICRO/pytorch_model.bin o/conv.f16.d
run conv.bf16 "$CONV" -q -t bf16 --config $MICRO/config.json --vocab $TINY/vocab.txt \
	$MICRO/pytorch_model_legacy.bin o/conv.bf16.d
run conv.hub "$CONV" t/hub o/conv.hub.d
run conv.finetuned "$CONV" -q --num-attention-heads 2 t/finetuned.pth o/conv.finetuned.d
run conv.views "$CONV" -q --config $MICRO/config.json t/views.bin o/conv.views.d
run conv.evil "$CONV" t/evil.bin o/conv.evil.d
run conv.zip.encode "$ENC" -m o/conv.zip.d --attentions --threads 1 < t/micro.mp

# ---- lx-train ----
run train.ans "$TRAIN" -m $TINY -o o/train.ans.d --epochs 2 --batch 8 --lr 1e-3 --seed 7 --threads 1 \
	--valid t/valid.mp t/train.mp
run train.stop "$TRAIN" -m $TINY -o o/train.stop.d --epochs 2 --batch 8 --lr 1e-3 --seed 7 --threads 1 \
	--stop-after 3 t/train.mp
cp -r o/train.stop.d t/resumed
run train.resume "$TRAIN" -m $TINY -o t/resumed --epochs 2 --batch 8 --lr 1e-3 --seed 7 --threads 1 --resume t/train.mp
cp -r t/resumed o/train.resume.d
run train.new-head "$TRAIN" -m $TINY -o o/train.new-head.d --new-head 6 --labels $F/train_answers.json \
	--epochs 2 --batch 8 --lr 1e-3 --threads 1 t/label.mp
run train.new-head.answers "$HEAD" -m o/train.new-head.d --heads qa --json --top 2 < o/enc.tiny
run train.freeze-f16 "$TRAIN" -m $TINY -o o/train.freeze-f16.d --freeze encoder --f16 --batch 4 --threads 1 \
	--warmup 2 --weight-decay 0 < t/train.mp
run train.pretrain "$TRAIN" -m $TINY -o o/train.pretrain.d --epochs 2 --batch 8 --lr 1e-3 --dropout 0 --threads 1 \
	--valid t/pretrain.mp t/pretrain.mp
run train.micro "$TRAIN" -m $MICRO -o o/train.micro.d --batch 3 --seed 3 --threads 1 --save-every 2 --stop-after 5 \
	t/lab-micro6.mp
run train.no-label "$TRAIN" -m $TINY -o o/train.no-label.d t/nolabel.mp

# ---- the demo pipeline: examples/demo/run.sh, its stages one by one, examples/vqa-eval ----
run demo.run sh -c 'cd r && LX_BIN="$1" exec sh examples/demo/run.sh' sh "$BIN"
run demo.tokenize "$TOK" -m $DEMO --jsonl --max-length 20 $F/questions.jsonl
run demo.join "$FP" --join $TSV < o/demo.tokenize
run demo.encode "$ENC" -m $DEMO --threads 1 < o/demo.join
run demo.head.json "$HEAD" -m $DEMO --heads qa --top 3 --json < o/demo.encode
run demo.head "$HEAD" -m $DEMO --score-file o/demo.head.score.json < o/demo.encode
run demo.submit "$HEAD" -m $DEMO --submit vqa < o/demo.encode
run demo.vqa-eval make -s --no-print-directory -C r/examples/vqa-eval BIN="$BIN" MODEL="$W/$DEMO" \
	QUESTIONS="$W/$F/questions.jsonl" FEATS="$W/$TSV" LABELS="$W/$DEMO/answers.json" OUT="$W/o/demo.vqa-eval.d" \
	PYTHON="$PYTHON"
mv o/demo.vqa-eval.d/settings t/vqa-eval.settings # the Makefile's stamp of its settings names this scratch directory

# ---- usage ----
for t in lx-tokenize lx-featpack lx-encode lx-head lx-attnviz lx-convert lx-train; do
	run help.$t "$BIN/$t" -h
	run usage.$t "$BIN/$t" --no-such-option
done

# ---- the sums ----
(cd o && find . -mindepth 1 -type d -print | sed 's|^\./||' | LC_ALL=C sort) > o/DIRS # (empty ones too)
(cd o && find . -type f ! -name SHA256SUMS -print | sed 's|^\./||' | LC_ALL=C sort | tr '\n' '\0' |
	xargs -0 sha256sum) > o/SHA256SUMS
cases=$(wc -l < o/STATUS)
failed=$(awk '$2 != 0' o/STATUS | wc -l)
files=$(wc -l < o/SHA256SUMS)
echo "snapshot.sh: $cases cases ($failed with a nonzero status, some on purpose: see STATUS), $files files," \
	"$(($(date +%s) - START)) s: $OUT" >&2
[ ! -s t/failed ] || echo "snapshot.sh: $(wc -l < t/failed) inputs could not be made (see above): the cases" \
	"that read them fail" >&2

#!/usr/bin/env bats
# lx-cat: every stage's output of the sample pipeline as JSON lines (compared with what Python's msgpack reads)
# and back, byte for byte; jq at every stage; bad input.
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	CAT="$BIN/lx-cat"
	SEP=--separate-stderr
}

# The sample questions through every stage, each stage's output in $T/STAGE.mp.
stages() {
	"$BIN/lx-tokenize" -m "$FIX/tiny" --jsonl --tokens --max-length 20 "$FIX/questions.jsonl" > "$T/tokenize.mp"
	"$BIN/lx-featpack" --join "$FIX/train2014_obj36_sample.tsv" < "$T/tokenize.mp" > "$T/featpack.mp"
	"$BIN/lx-encode" -m "$FIX/tiny" --attentions --hidden-states < "$T/featpack.mp" > "$T/encode.mp"
	"$BIN/lx-head" -m "$FIX/tiny" < "$T/encode.mp" > "$T/head.mp"
	"$BIN/lx-explain" -m "$FIX/tiny" < "$T/encode.mp" > "$T/explain.mp"
}

@test "gives back every stage's stream byte for byte from its JSON lines with --full" {
	stages
	for s in tokenize featpack encode head explain; do
		"$CAT" --full < "$T/$s.mp" > "$T/$s.jsonl"
		"$CAT" -r < "$T/$s.jsonl" > "$T/$s.back"
		cmp "$T/$s.mp" "$T/$s.back"
		[ "$(wc -l < "$T/$s.jsonl")" -eq 20 ]
	done
}

@test "writes each record as the JSON object Python's msgpack reads, tensors as dtype and shape or in full" {
	stages
	for s in tokenize featpack encode head; do
		"$CAT" < "$T/$s.mp" > "$T/$s.jsonl"
		"$CAT" --full < "$T/$s.mp" > "$T/$s.full"
		$PY - "$T/$s.mp" "$T/$s.jsonl" "$T/$s.full" <<'PY'
import json, sys
import numpy as np
from lxtest import read_records

recs = read_records(open(sys.argv[1], "rb"))
short = [json.loads(l) for l in open(sys.argv[2])]
full = [json.loads(l) for l in open(sys.argv[3])]
assert len(recs) == len(short) == len(full) == 20
def same(a, b):
    if isinstance(a, float):
        return isinstance(b, float) and a == b       # a float stays a float (1.0, not 1)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) == type(b) and a == b
for r, s, f in zip(recs, short, full):
    assert list(r) == list(s) == list(f), (list(r), list(s))
    for k, v in r.items():
        if isinstance(v, np.ndarray):
            assert s[k] == {"dtype": v.dtype.str, "shape": list(v.shape)}, (k, s[k])
            assert f[k]["dtype"] == v.dtype.str and f[k]["shape"] == list(v.shape), k
            got = np.array(f[k]["data"], dtype=v.dtype).reshape(v.shape)
            assert np.array_equal(got, v), k
        else:
            assert same(v, s[k]) and same(v, f[k]), (k, v, s[k])
PY
	done
}

@test "lets jq read any stage" {
	stages
	[ "$("$CAT" < "$T/featpack.mp" | jq -r 'select(.question_id == 132417000) | .visual_feats.shape | @csv')" = "36,2048" ]
	[ "$("$CAT" < "$T/head.mp" | jq -r '.answers[0] | has("index")' | sort -u)" = "true" ]
	[ "$("$CAT" < "$T/tokenize.mp" | jq -r '.tokens[1]' | head -1)" = "what" ]
}

@test "packs edited JSON lines: nested lists with --tensor, flat data, field order kept" {
	printf '%s\n' '{"question_id": "q1", "input_ids": [[101, 2054], [102, 0]], "score": 1.0, "n": 1, "x": {"dtype": "<f2", "shape": [2, 2], "data": [0.5, -1, 65504, null]}}' \
		'' '{"b": true, "a": null, "s": "caf\u00e9\n", "l": [1, 2.5, "z"]}' > "$T/in.jsonl"
	"$CAT" -r --tensor input_ids=int64 < "$T/in.jsonl" > "$T/out.mp"
	$PY - "$T/out.mp" <<'PY'
import sys, math
import msgpack, numpy as np
from lxtest import read_records
raw = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
assert [list(r) for r in raw] == [["question_id", "input_ids", "score", "n", "x"], ["b", "a", "s", "l"]], raw
recs = read_records(open(sys.argv[1], "rb"))
ids = recs[0]["input_ids"]
assert ids.dtype == np.int64 and ids.tolist() == [[101, 2054], [102, 0]], ids
assert type(recs[0]["score"]) is float and recs[0]["score"] == 1.0 and type(recs[0]["n"]) is int
x = recs[0]["x"]
assert x.dtype == np.float16 and x.shape == (2, 2) and x.ravel()[:3].tolist() == [0.5, -1, 65504] and math.isnan(x[1, 1])
assert recs[1] == {"b": True, "a": None, "s": "caf\u00e9\n", "l": [1, 2.5, "z"]}, recs[1]
PY
}

@test "refuses bad JSON lines naming the line, and goes on with --keep-going" {
	printf '%s\n' '{"a": 1}' 'not json' '{"t": {"dtype": "<f4", "shape": [2]}}' '{"a": 1, "a": 2}' \
		'{"t": {"dtype": "<f4", "shape": [3], "data": [1, 2]}}' '[1]' '{"u": {"dtype": "|u1", "shape": [1], "data": [256]}}' \
		'{"ok": 2}' > "$T/bad.jsonl"
	run $SEP "$CAT" -r < "$T/bad.jsonl"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-cat: stdin: line 2: not JSON: '[' or '{' expected near 'not' (column 3)" ]
	run $SEP "$CAT" -r --keep-going < "$T/bad.jsonl"
	[ "$status" -eq 1 ]
	"$CAT" -r --keep-going < "$T/bad.jsonl" 2> /dev/null | "$CAT" > "$T/out.jsonl" || true
	cat > "$T/want" <<'EOF2'
{"a": 1}
{"error": "lx-cat: stdin: line 2: not JSON: '[' or '{' expected near 'not' (column 3)"}
{"error": "lx-cat: stdin: line 3: field t: a tensor without its data (write the records with lx-cat --full)"}
{"error": "lx-cat: stdin: line 4: not JSON: duplicate object key near '\"a\"' (column 12)"}
{"error": "lx-cat: stdin: line 5: field t: data is not a regular array of shape [3, ...] at dimension 0"}
{"error": "lx-cat: stdin: line 6: a JSON value that is not an object"}
{"error": "lx-cat: stdin: line 7: field u: element 0, 256, is out of the range of |u1"}
{"ok": 2}
EOF2
	diff "$T/want" "$T/out.jsonl"
	[ "${stderr_lines[-1]}" = "lx-cat: 6 of 8 lines were bad, written with an error field" ]
}

@test "refuses JSON nested deeper than the stream allows, and a line longer than --max-line" {
	deep=$(printf '[%.0s' $(seq 40))$(printf ']%.0s' $(seq 40))
	printf '{"d": %s}\n' "$deep" > "$T/deep.jsonl"
	run $SEP "$CAT" -r < "$T/deep.jsonl"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-cat: stdin: line 1: nested deeper than 32 levels (the stream's limit)" ]
	$PY -c 'print("{\"s\": \"" + "x" * 5000 + "\"}"); print("{\"a\": 1}")' > "$T/long.jsonl"
	run $SEP "$CAT" -r --max-line 4096 < "$T/long.jsonl"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-cat: stdin: line 1: line longer than 4096 bytes (--max-line)" ]
	"$CAT" -r --max-line 4096 --keep-going < "$T/long.jsonl" 2> /dev/null | "$CAT" | tail -1 | grep -qx '{"a": 1}'
}

@test "writes a record with a broken tensor as an error record with --keep-going, and stops at it without" {
	$PY -c '
import msgpack, sys
ok = {"a": 1}
bad = {"t": {b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [3], b"data": b"\0" * 8}}
sys.stdout.buffer.write(b"".join(msgpack.packb(r, use_bin_type=True) for r in (ok, bad, ok)))' > "$T/bad.mp"
	run $SEP "$CAT" < "$T/bad.mp"
	[ "$status" -eq 1 ]
	[ "$output" = '{"a": 1}' ]
	[ "$stderr" = "lx-cat: stdin: record 2: field t: tensor data holds 8 bytes, shape and type need 12" ]
	run $SEP "$CAT" --keep-going < "$T/bad.mp"
	[ "$status" -eq 1 ]
	[ "${lines[1]}" = '{"t": {"nd": true, "type": "<f4", "kind": "", "shape": [3], "data": "AAAAAAAAAAA="}, "error": "lx-cat: stdin: record 2: field t: tensor data holds 8 bytes, shape and type need 12"}' ]
	[ "${lines[2]}" = '{"a": 1}' ]
}

@test "prints its usage with -h, and exits 2 on a bad command line" {
	run $SEP "$CAT" -h
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: lx-cat [--full] [options]" ]
	run $SEP "$CAT" --full -r
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-cat: --full goes without -r (the JSON read back may hold tensors in full or not)" ]
	run $SEP "$CAT" -r --tensor ids=float7
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-cat: --tensor takes KEY=DTYPE with a DTYPE such as <f4 or float32, not 'ids=float7'" ]
	run $SEP "$CAT" file
	[ "$status" -eq 2 ]
}

#!/usr/bin/env bats
# --shard K/N (lx-tokenize, lx-detect, lx-featpack) and lx-merge: record i goes to shard i mod N with its
# position, and the shards' outputs merge into exactly what one process writes, whatever N; a shard missing,
# given twice or cut short is an error naming it. The one-process runs are the reference; the demo model's
# score on the sample questions (0.400 over 20) is the README's.

load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	M="$TOP/models/demo"
	Q="$FIX/questions.jsonl"
	F="$FIX/train2014_obj36_sample.tsv"
}

# The pipeline up to lx-head --json on the sample questions, its arguments added to lx-tokenize. --batch 1: the
# encoder's floats do not depend on which records share a batch, so the JSON lines compare byte for byte.
answer() {
	"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$@" "$Q" | "$BIN/lx-featpack" --join "$F" |
		"$BIN/lx-encode" -m "$M" --batch 1 | "$BIN/lx-head" -m "$M" --json
}

@test "lx-tokenize --shard K/N writes input lines K, K+N, K+2N, ... each with its position and the shard count" {
	"$BIN/lx-tokenize" -m "$M" --jsonl --shard 2/7 "$Q" > "$T/s.mp"
	run $PY -c '
import json, sys
from lxtest import read_records
qs = [json.loads(l)["question_id"] for l in open(sys.argv[1])]
got = [(r["question_id"], r["position"], r["shards"]) for r in read_records(open(sys.argv[2], "rb"))]
want = [(qs[i], i, 7) for i in range(2, len(qs), 7)]
assert got == want, (got, want)
print(len(got))' "$Q" "$T/s.mp"
	[ "$status" -eq 0 ]
	[ "$output" = 3 ]
}

@test "lx-tokenize --shard reads the authors' JSON array too, counting its elements" {
	$PY -c 'import json, sys; json.dump([json.loads(l) for l in sys.stdin], sys.stdout)' < "$Q" > "$T/q.json"
	"$BIN/lx-tokenize" -m "$M" --jsonl --shard 1/3 "$Q" > "$T/lines.mp"
	"$BIN/lx-tokenize" -m "$M" --jsonl --shard 1/3 "$T/q.json" > "$T/array.mp"
	cmp "$T/lines.mp" "$T/array.mp"
}

@test "with more shards than records a shard is empty, and the merge of them all is the one run's stream" {
	"$BIN/lx-tokenize" -m "$M" --jsonl "$Q" > "$T/one.mp"
	for k in $(seq 0 24); do "$BIN/lx-tokenize" -m "$M" --jsonl --shard "$k/25" "$Q" > "$T/s$k.mp"; done
	[ ! -s "$T/s24.mp" ]
	"$BIN/lx-merge" "$T"/s*.mp > "$T/merged.mp"
	cmp "$T/one.mp" "$T/merged.mp"
}

@test "merging N = 1, 3 and 7 shards gives one process's JSON lines, score file and submission, byte for byte" {
	answer > "$T/one.jsonl"
	"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$Q" | "$BIN/lx-featpack" --join "$F" |
		"$BIN/lx-encode" -m "$M" --batch 1 | "$BIN/lx-head" -m "$M" --submit vqa --score-file "$T/one.score" > "$T/one.sub"
	[ "$(cat "$T/one.score")" = '{"score": 0.4, "questions": 20}' ]
	for n in 1 3 7; do
		for k in $(seq 0 $((n - 1))); do answer --shard "$k/$n" > "$T/n$n-$k.jsonl"; done
		# in any order: each file says which shard it is
		ls "$T"/n$n-*.jsonl | sort -r > "$T/files"
		"$BIN/lx-merge" --json $(cat "$T/files") > "$T/m$n.jsonl"
		cmp "$T/one.jsonl" "$T/m$n.jsonl"
		run "$BIN/lx-merge" --submit vqa --score-file "$T/m$n.score" $(cat "$T/files")
		[ "$status" -eq 0 ]
		[ "$output" = "$(cat "$T/one.sub")
lx-merge: score 0.400000 over 20 questions" ]
		cmp "$T/one.score" "$T/m$n.score"
	done
}

@test "a failed question is submitted empty and scored wrong by the merge as by lx-head, in the same place" {
	# the second question (one the model answers right) names an image that is not among the features:
	# lx-featpack --keep-going makes it an error record
	$PY -c '
import json, sys
for i, l in enumerate(sys.stdin):
    q = json.loads(l)
    if i == 1: q["img_id"] = "nowhere"
    print(json.dumps(q))' < "$Q" > "$T/q.jsonl"
	pipe() {
		"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$@" "$T/q.jsonl" | "$BIN/lx-featpack" --join --keep-going "$F" |
			"$BIN/lx-encode" -m "$M" --batch 1 | "$BIN/lx-head" -m "$M" --json
	}
	"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$T/q.jsonl" | "$BIN/lx-featpack" --join --keep-going "$F" 2> /dev/null |
		"$BIN/lx-encode" -m "$M" --batch 1 | "$BIN/lx-head" -m "$M" --submit vqa --score-file "$T/one.score" > "$T/one.sub" 2> "$T/one.err"
	for k in 0 1 2; do pipe --shard "$k/3" > "$T/s$k.jsonl" 2> /dev/null; done
	run "$BIN/lx-merge" --submit vqa --score-file "$T/m.score" "$T"/s?.jsonl
	[ "$status" -eq 0 ]
	cmp "$T/one.score" "$T/m.score"
	[ "$(cat "$T/m.score")" = '{"score": 0.35, "questions": 20, "failed": 1}' ]
	[ "$(printf '%s\n' "$output" | grep -v '^lx-merge:')" = "$(cat "$T/one.sub")" ]
	grep 'record 2 (id 132417001): failed: submitted with an empty answer' "$T/one.err"
	[[ "$output" == *"lx-merge: record 2 (id 132417001): failed: submitted with an empty answer"* ]]
}

# lx-merge's messages alone: what it merged before the fault goes to /dev/null.
merge_err() {
	"$BIN/lx-merge" "$@" 2>&1 > /dev/null
}

@test "lx-merge names a missing shard, a shard given twice, and a shard cut short" {
	for k in 0 1 2; do "$BIN/lx-tokenize" -m "$M" --jsonl --shard "$k/3" "$Q" > "$T/s$k.mp"; done
	run merge_err "$T/s0.mp" "$T/s2.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-merge: shard 1 of 3 is missing: 2 files given for 3 shards" ]
	run merge_err "$T/s0.mp" "$T/s1.mp" "$T/s1.mp" "$T/s2.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-merge: $T/s1.mp and $T/s1.mp are both shard 1 of 3: a shard given twice" ]
	: > "$T/empty.mp"
	run merge_err "$T/s0.mp" "$T/empty.mp" "$T/s2.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-merge: $T/empty.mp: shard 1 of 3 ends after 0 records, but $T/s0.mp goes on at position 3: records of shard 1 are missing" ]
	# the first two records of shard 1 (positions 1 and 4), then the fourth (10): position 7 is missing
	$PY -c '
import sys
from lxtest import read_records, write_records
r = read_records(open(sys.argv[1], "rb"))
write_records(r[:2] + r[3:], open(sys.argv[2], "wb"))' "$T/s1.mp" "$T/cut.mp"
	run merge_err "$T/s0.mp" "$T/cut.mp" "$T/s2.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-merge: $T/cut.mp: record 3: position 10, expected 7: records of this shard are missing" ]
	run merge_err "$Q"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-merge: $Q: line 1: no fields position and shards (a non-negative integer each): not a record of a shard (--shard K/N)" ]
	run merge_err "$T/s0.mp" "$T/nothere.mp"
	[ "$status" -eq 3 ]
}

@test "--shard takes K/N with K below N, and only where a pipeline starts" {
	run "$BIN/lx-tokenize" -m "$M" --shard 3/3 < /dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-tokenize: --shard takes K/N, N from 1 to 1000000 and K from 0 to N-1 (Slurm's --array=0-(N-1)), not '3/3'" ]
	for bad in 1 /2 1/0 -1/2 1/2x 1/1000001; do
		run "$BIN/lx-tokenize" -m "$M" --shard "$bad" < /dev/null
		[ "$status" -eq 2 ]
	done
	run "$BIN/lx-tokenize" -m "$M" --decode --shard 0/2 < /dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-tokenize: --shard selects lines of text, not --decode's records" ]
	run "$BIN/lx-featpack" --join --shard 0/2 "$F" < /dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-featpack: --shard selects the images of the files, not --join's records (shard them upstream)" ]
	run "$BIN/lx-detect" -m "$FIX/frcnn-tiny" --join "$T" --shard 0/2 < /dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-detect: --shard selects images named on the command line or stdin, not --join's records" ]
}

@test "lx-featpack --shard over a feature file, merged, is the one conversion" {
	"$BIN/lx-featpack" "$F" > "$T/one.mp"
	"$BIN/lx-featpack" --shard 0/2 "$F" > "$T/a.mp"
	"$BIN/lx-featpack" --shard 1/2 "$F" > "$T/b.mp"
	run $PY -c '
import sys
from lxtest import read_records
print(" ".join("%s:%d/%d" % (r["img_id"][-6:], r["position"], r["shards"]) for r in read_records(open(sys.argv[1], "rb"))))' "$T/b.mp"
	[ "$status" -eq 0 ]
	[ -n "$output" ]
	"$BIN/lx-merge" "$T/b.mp" "$T/a.mp" > "$T/merged.mp"
	cmp "$T/one.mp" "$T/merged.mp"
}

@test "lx-detect --shard detects only its images, named by position, and examples/slurm/detect.sbatch runs a task" {
	ls "$FIX"/frcnn-tiny/images/* > "$T/images.txt"
	mkdir "$T/out"
	SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 BIN="$BIN" DETECTOR="$FIX/frcnn-tiny" IMAGES="$T/images.txt" \
		OUT="$T/out" bash "$TOP/examples/slurm/detect.sbatch"
	run $PY -c '
import sys
from lxtest import read_records
print(" ".join("%s:%d/%d" % (r["img_id"], r["position"], r["shards"]) for r in read_records(open(sys.argv[1], "rb"))))' "$T/out/shard-1.mp"
	[ "$status" -eq 0 ]
	[ "$output" = "001150:1/2 COCO_train2014_000000132417:3/2" ]
}

#!/usr/bin/env bats
# Scaling past one process: records are independent, so GNU parallel over shards of the question file gives
# what one run gives (README, "Performance").

load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	command -v parallel > /dev/null || skip "GNU parallel is not installed (make deps)"
	PIPE="$BIN/lx-tokenize -m $FIX/tiny --jsonl --max-length 20 | $BIN/lx-featpack --join $FIX/train2014_obj36_sample.tsv | $BIN/lx-encode -m $FIX/tiny --batch 4"
}

@test "parallel --pipe over shards of the questions gives the records of a single run, in order" {
	sh -c "$PIPE" < "$FIX/questions.jsonl" > "$T/one.mp"
	parallel --pipe -k -L 3 -j 2 "$PIPE" < "$FIX/questions.jsonl" > "$T/many.mp"
	# the same records in the same order; the encoder's outputs equal to float32 rounding (the batches differ)
	$PY "$TOP/tests/py/encode_cases.py" same "$T/one.mp" "$T/many.mp" 1e-5
	run $PY -c 'import sys; from lxtest import read_records; print(len(read_records()))' < "$T/many.mp"
	[ "$output" = 20 ]
}

@test "with --batch 1 the sharded run is byte for byte the single run" {
	PIPE="${PIPE/--batch 4/--batch 1}"
	sh -c "$PIPE" < "$FIX/questions.jsonl" > "$T/one.mp"
	parallel --pipe -k -L 3 -j 2 "$PIPE" < "$FIX/questions.jsonl" > "$T/many.mp"
	cmp "$T/one.mp" "$T/many.mp"
}

@test "the README's scale-out pattern runs lx-head once, after the shards: one score, one submission list" {
	$PY "$TOP/tests/py/docblocks.py" "$T/b" "$TOP/README.md"
	block=$(grep -l '^parallel --pipe' "$T"/b/*.sh)
	[ -n "$block" ]
	# the README's names: M the model, feats.tsv the features; shards of 3 questions
	sed "s#\(^\|[ ']\)lx-#\1$BIN/lx-#g; s#-L 5000#-L 3#; s#-m M#-m $TOP/models/demo#g; s#feats.tsv#$FIX/train2014_obj36_sample.tsv#" "$block" > "$T/run.sh"
	cp "$FIX/questions.jsonl" "$T/questions.jsonl"
	cd "$T"
	run bash -e -o pipefail run.sh
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | grep -c 'lx-head: score')" -eq 1 ]
	[[ "$output" == *"lx-head: score 0.400000 over 20 questions"* ]]
	$PY -c 'import json; s = json.load(open("submission.json")); assert len(s) == 20, len(s)'
}

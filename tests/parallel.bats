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

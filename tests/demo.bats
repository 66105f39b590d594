#!/usr/bin/env bats
# models/demo, the small model lx-train trained on the sample images' own labels (README, "The demo model"):
# it opens with every tool, and it answers the sample questions it was trained for as their hand-written
# labels say.
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	M="$TOP/models/demo"
}

@test "the demo model answers the eight sample questions the README counts as right as their labels say" {
	"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$FIX/questions.jsonl" |
		"$BIN/lx-featpack" --join "$FIX/train2014_obj36_sample.tsv" | "$BIN/lx-encode" -m "$M" |
		"$BIN/lx-head" -m "$M" --heads qa --top 1 --json > "$T/json" 2> /dev/null
	$PY - "$T/json" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 20
# README, "The demo model": the sky, the water, the bus, the snow, the first wall, the truck, the jacket, the table
right = {132417000, 132417001, 494628001, 84002001}
right |= {r["question_id"] for r in rows if r["sent"] in ("What color is the bus?", "What color is the truck?",
                                                          "What color is the jacket?", "What is the table made of?")}
assert len(right) == 8
for r in rows:
    ok = r["answers"][0]["answer"] in r["label"]
    assert ok == (r["question_id"] in right), (r["sent"], r["answers"], r["label"])
EOF
}

@test "make demo's script prints each sample question with its three best answers" {
	run -0 env LX_BIN="$BIN" sh -c "cd '$TOP' && sh examples/demo/run.sh 2> /dev/null"
	[ "${#lines[@]}" -eq 20 ]
	[[ "${lines[0]}" =~ ^"What color is the sky?"\ +blue\ [0-9.]+,\ [a-z0-9]+\ [0-9.]+,\ [a-z0-9]+\ [0-9.]+\ +"(label: blue)"$ ]]
}

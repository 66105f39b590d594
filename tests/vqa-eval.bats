#!/usr/bin/env bats
# examples/vqa-eval/Makefile: questions cut as in training, results remade when a setting changes, the model's
# own answer names by default, nothing written into the source tree. Run on the demo model and the sample
# questions (whose score the README gives: 0.400).
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	MK="make --no-print-directory -f $TOP/examples/vqa-eval/Makefile BIN=$BIN"
	cd "$T"
	cp "$FIX/train2014_obj36_sample.tsv" val2014_obj36.tsv
	$PY -c 'import json, sys; json.dump([json.loads(l) for l in sys.stdin], sys.stdout)' \
		< "$FIX/questions.jsonl" > minival.json
	cp -r "$TOP/models/demo" demo
}

answers() {
	$PY -c 'import json, sys; print(" ".join(a["answer"] for a in json.load(open(sys.argv[1]))))' "$1"
}

@test "vqa-eval scores the questions with the model's own answers.json, in out/ of the current directory" {
	find "$TOP/examples/vqa-eval" -newer minival.json > tree.before
	run $MK MODEL=demo
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = '{"score": 0.4, "questions": 20}' ]
	[ "$(answers out/submission.json | wc -w)" -eq 20 ]
	find "$TOP/examples/vqa-eval" -newer minival.json | diff tree.before -
}

@test "vqa-eval cuts questions to 20 word pieces, as training does" {
	run $MK -n MODEL=demo
	[[ "$output" == *"lx-tokenize -m demo --jsonl --max-length 20 minival.json"* ]]
}

@test "vqa-eval remakes the results when MODEL, LABELS, FEATS or TASK change, and not otherwise" {
	$MK MODEL=demo
	before=$(answers out/submission.json)
	run $MK MODEL=demo
	[[ "$output" != *lx-encode* ]]
	# the same answers under other names: the submission follows LABELS
	$PY -c 'import json; print(json.dumps([a.upper() for a in json.load(open("demo/answers.json"))]))' > upper.json
	$MK MODEL=demo LABELS=upper.json
	[ "$(answers out/submission.json)" = "$(echo "$before" | tr a-z A-Z)" ]
	# another model directory: the same weights, upper-case answer names
	cp -r demo demo2 && cp upper.json demo2/answers.json
	$MK MODEL=demo
	[ "$(answers out/submission.json)" = "$before" ]
	$MK MODEL=demo2
	[ "$(answers out/submission.json)" = "$(echo "$before" | tr a-z A-Z)" ]
	# features of other images: every question refused
	head -n 1 val2014_obj36.tsv | sed 's/^[^\t]*/COCO_none/' > other.tsv
	run $MK MODEL=demo FEATS=other.tsv
	[ "$status" -ne 0 ]
	[[ "$output" == *"lx-featpack"* ]]
	run $MK MODEL=demo TASK=gqa
	[ "$status" -eq 0 ]
	grep -q '"questionId"' out/submission.json
}

#!/usr/bin/env bats
# lx-explain: relevance maps against the reference (relevance-tiny: HF's LXMERT and torch autograd in float64),
# --top and --answer, bad records, --keep-going, usage and model errors.

load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	EXP="$BIN/lx-explain"
	GOLD="$PY $TOP/tests/py/golden.py"
	REL="$PY $TOP/tests/py/relevance.py"
	CASES="$PY $TOP/tests/py/encode_cases.py"
	SEP=--separate-stderr
}

# lx-explain with stdout to $T/out.mp, for `run`, which would otherwise capture it.
explain() {
	"$EXP" "$@" > "$T/out.mp"
}

@test "gives the reference's answer and maps on every relevance-tiny case (1e-5 absolute, 1e-3 relative)" {
	$GOLD inputs "$FIX/relevance-tiny/golden.safetensors" > "$T/in.mp"
	"$EXP" -m "$FIX/tiny" < "$T/in.mp" > "$T/out.mp"
	$REL fixture "$FIX/relevance-tiny/golden.safetensors" < "$T/out.mp"
}

@test "--top 3 writes three records per input, for the three best answers of the reference's scores" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	"$EXP" -m "$FIX/tiny" --top 3 < "$T/in.mp" > "$T/out.mp"
	$REL top "$FIX/tiny/golden.safetensors" 3 < "$T/out.mp"
	"$EXP" -m "$FIX/tiny" < "$T/in.mp" > "$T/one.mp"
	$REL top "$FIX/tiny/golden.safetensors" 1 < "$T/one.mp"
}

@test "--answer INDEX and --answer NAME give the maps of that answer" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" 0 > "$T/in.mp"
	"$EXP" -m "$FIX/tiny" --top 12 < "$T/in.mp" > "$T/all.mp"
	"$PY" -c 'import sys, lxtest; lxtest.write_records([r for r in lxtest.read_records() if r["relevance_answer"] == 5])' \
		< "$T/all.mp" > "$T/five.mp"
	"$EXP" -m "$FIX/tiny" --answer 5 < "$T/in.mp" > "$T/by-index.mp"
	$REL same "$T/five.mp" "$T/by-index.mp"
	printf '["zero", "one", "two", "three", "four", "blue", "six", "seven", "eight", "nine", "ten", "eleven"]' \
		> "$T/answers.json"
	"$EXP" -m "$FIX/tiny" --labels "$T/answers.json" --answer blue < "$T/in.mp" > "$T/by-name.mp"
	$REL same "$T/five.mp" "$T/by-name.mp"
}

@test "a padded record gives zeros at its padded positions" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" 4 > "$T/in.mp"
	"$EXP" -m "$FIX/tiny" < "$T/in.mp" > "$T/out.mp"
	"$PY" - "$T/out.mp" <<'PY'
import sys, numpy as np, lxtest
r = lxtest.read_records(open(sys.argv[1], "rb"))[0]
t, v = r["attention_mask"] == 0, r["visual_attention_mask"] == 0
tt, ti = r["relevance_tt"], r["relevance_ti"]
assert t.sum() == 4 and v.sum() == 6
assert not tt[t].any() and not tt[:, t].any() and not ti[t].any() and not ti[:, v].any()
assert np.isfinite(tt).all() and np.isfinite(ti).all() and ti[0, ~v].sum() > 0
PY
}

@test "rejects a bad record after writing the records before it" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" 0 1 > "$T/in.mp"
	$CASES record too-long "$FIX/tiny/golden.safetensors" >> "$T/in.mp"
	$GOLD inputs "$FIX/tiny/golden.safetensors" 2 >> "$T/in.mp"
	run $SEP explain -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-explain: stdin: record 3 (id 77): field input_ids: 65 tokens, more than max_position_embeddings 64" ]
	[ "$("$PY" -c 'import lxtest; print(len(lxtest.read_records()))' < "$T/out.mp")" = 2 ]
}

@test "--keep-going writes a bad record with an error field and goes on" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" 0 > "$T/in.mp"
	$CASES record int-feats "$FIX/tiny/golden.safetensors" >> "$T/in.mp"
	$GOLD inputs "$FIX/tiny/golden.safetensors" 1 >> "$T/in.mp"
	run $SEP explain -m "$FIX/tiny" --keep-going < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | head -1)" = "lx-explain: stdin: record 2 (id 77): field visual_feats: dtype <i4, expected a float dtype (<f4)" ]
	[ "$(printf '%s\n' "$stderr" | tail -1)" = "lx-explain: 1 of 3 records were bad, written with an error field" ]
	"$PY" - "$T/out.mp" <<'PY'
import sys, lxtest
r = lxtest.read_records(open(sys.argv[1], "rb"))
assert [("error" in x, "relevance_tt" in x) for x in r] == [(False, True), (True, False), (False, True)], r
assert r[1]["error"].startswith("lx-explain: stdin: record 2 (id 77): field visual_feats")
PY
}

@test "usage errors: --answer with --top, an answer out of range or unknown, no -m" {
	run $SEP "$EXP" -m "$FIX/tiny" --answer 1 --top 2 < /dev/null
	[ "$status" -eq 2 ]
	[ "${stderr%%$'\n'*}" = "lx-explain: --answer and --top exclude each other" ]
	run $SEP "$EXP" -m "$FIX/tiny" --answer 12 < /dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "lx-explain: --answer 12 is outside [0, 12) (num_qa_labels)" ]
	run $SEP "$EXP" -m "$FIX/tiny" --answer blue < /dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = "lx-explain: --answer blue: no answer names ($FIX/tiny/answers.json or answers.txt, or --labels FILE)" ]
	run $SEP "$EXP" -m "$FIX/tiny" --top 13 < /dev/null
	[ "$status" -eq 2 ]
	run $SEP "$EXP" < /dev/null
	[ "$status" -eq 2 ]
}

@test "refuses a model without the answer head (status 3)" {
	$CASES model "$FIX/tiny" "$T/m" no-heads
	run $SEP "$EXP" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-explain: $T/m: the model has no answer head" ]
}

@test "passes error records through and writes nothing for an empty input" {
	"$PY" -c 'import lxtest; lxtest.write_records([{"error": "lx-tokenize: earlier"}])' > "$T/in.mp"
	"$EXP" -m "$FIX/tiny" < "$T/in.mp" > "$T/out.mp"
	cmp "$T/in.mp" "$T/out.mp"
	"$EXP" -m "$FIX/tiny" < /dev/null > "$T/empty.mp"
	[ ! -s "$T/empty.mp" ]
}

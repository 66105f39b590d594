#!/usr/bin/env bats
# lx-encode: golden outputs of the reference (HF transformers, float32), batching, the stream, bad input.

load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	ENC="$BIN/lx-encode"
	CASES="$PY $TOP/tests/py/encode_cases.py"
	GOLD="$PY $TOP/tests/py/golden.py"
	SEP=--separate-stderr
	ALL="language_output vision_output pooled_output language_hidden_states vision_hidden_states language_attentions vision_attentions cross_encoder_attentions"
}

# lx-encode with stdout to $T/out.mp, for `run`, which would otherwise capture it.
encode() {
	"$ENC" "$@" > "$T/out.mp"
}

# One bad record after two good ones: status, message word for word, and the two good ones on stdout.
bad_record() {
	local kind=$1 msg=$2
	$GOLD inputs "$FIX/tiny/golden.safetensors" 0 1 > "$T/in.mp"
	$CASES record "$kind" "$FIX/tiny/golden.safetensors" >> "$T/in.mp"
	run $SEP encode -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "$msg" ]
	$GOLD compare "$FIX/tiny/golden.safetensors" language_output < "$T/out.mp" 2> "$T/cmp"
	grep -q '^2 records' "$T/cmp"
}

@test "matches every output of every tiny golden case within 1e-4" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$FIX/tiny" --attentions --hidden-states < "$T/in.mp" > "$T/out.mp"
	$GOLD compare "$FIX/tiny/golden.safetensors" $ALL < "$T/out.mp"
}

@test "matches every output of every micro golden case within 1e-4" {
	$GOLD inputs "$FIX/micro/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$FIX/micro" --attentions --hidden-states < "$T/in.mp" > "$T/out.mp"
	$GOLD compare "$FIX/micro/golden.safetensors" $ALL < "$T/out.mp"
}

@test "writes every documented output with its shape, and attention rows sum to one" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$FIX/tiny" --attentions --hidden-states < "$T/in.mp" > "$T/out.mp"
	$CASES shapes "$FIX/tiny/config.json" < "$T/out.mp"
}

@test "gives the same outputs within 1e-5 whatever the batch size and thread count" {
	$CASES repeat "$FIX/tiny/golden.safetensors" 23 > "$T/in.mp"
	"$ENC" -m "$FIX/tiny" --attentions --hidden-states --batch 1 --threads 1 < "$T/in.mp" > "$T/ref.mp"
	for b in 2 7 32; do
		for t in 1 2; do
			"$ENC" -m "$FIX/tiny" --attentions --hidden-states --batch $b --threads $t < "$T/in.mp" > "$T/b.mp"
			$CASES same "$T/ref.mp" "$T/b.mp" 1e-5
		done
	done
}

@test "questions that share an image (lx-featpack --join, repeats far apart) give the outputs of one record a batch" {
	# the object-relationship layers run once an image in a batch; each record must still get what it would
	# alone, its own vision attention maps included: every sample image twice or four times, some with a
	# visual_attention_mask (golden case 4), between images seen once
	"$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl --max-length 20 "$FIX/questions.jsonl" |
		"$BIN/lx-featpack" --join "$FIX/train2014_obj36_sample.tsv" > "$T/join.mp"
	{ cat "$T/join.mp"; $GOLD inputs "$FIX/tiny/golden.safetensors" 4 0 4 1; cat "$T/join.mp"; } > "$T/in.mp"
	for p in "" --int8; do
		"$ENC" -m "$FIX/tiny" $p --attentions --hidden-states --batch 1 < "$T/in.mp" > "$T/ref.mp"
		for t in 1 2; do
			"$ENC" -m "$FIX/tiny" $p --attentions --hidden-states --batch 48 --threads $t < "$T/in.mp" > "$T/b.mp"
			$CASES same "$T/ref.mp" "$T/b.mp" 1e-5
		done
	done
}

@test "leaves out hidden states and attentions unless asked" {
	$GOLD inputs "$FIX/micro/golden.safetensors" 0 > "$T/in.mp"
	"$ENC" -m "$FIX/micro" < "$T/in.mp" > "$T/out.mp"
	run $PY -c 'import sys; from lxtest import read_records; r, = read_records(); print(" ".join(sorted(r)))' < "$T/out.mp"
	[ "$output" = "case input_ids language_output pooled_output vision_output visual_pos" ]
}

@test "leaves visual_feats out unless --keep-features, --attentions or the record's feat_mask keeps them as they came" {
	$GOLD inputs "$FIX/micro/golden.safetensors" > "$T/in.mp"
	$PY - "$T/in.mp" > "$T/mask.mp" <<'EOF'
import sys
import numpy as np
from lxtest import read_records, write_records
recs = read_records(open(sys.argv[1], "rb"))
recs[1]["feat_mask"] = np.ones(len(recs[1]["visual_pos"]), np.float32)
write_records(recs)
EOF
	"$ENC" -m "$FIX/micro" < "$T/mask.mp" > "$T/drop.mp"
	"$ENC" -m "$FIX/micro" --keep-features < "$T/mask.mp" > "$T/keep.mp"
	"$ENC" -m "$FIX/micro" --attentions < "$T/mask.mp" > "$T/att.mp"
	$PY -c 'import sys; from lxtest import read_records; assert all("visual_feats" in r and "vision_attentions" in r for r in read_records())' < "$T/att.mp"
	$PY "$TOP/tests/py/nlvr2_cases.py" inputs "$FIX/nlvr2-micro" | "$ENC" -m "$FIX/micro" > "$T/pairs.mp"
	$PY -c 'import sys; from lxtest import read_records; r = read_records(); assert r and all("visual_feats0" not in x and "visual_feats1" not in x and "visual_pos1" in x and "pooled_output1" in x for x in r)' < "$T/pairs.mp"
	$PY - "$T/mask.mp" "$T/drop.mp" "$T/keep.mp" <<'EOF'
import sys
import numpy as np
from lxtest import read_records
i, d, k = (read_records(open(p, "rb")) for p in sys.argv[1:])
assert len(i) == len(d) == len(k) >= 2
for n, (a, b, c) in enumerate(zip(i, d, k)):
    assert ("visual_feats" in b) == (n == 1), n
    assert list(c) == list(a) + ["language_output", "vision_output", "pooled_output"], list(c)
    assert np.array_equal(c["visual_feats"], a["visual_feats"])
    assert np.array_equal(b["visual_pos"], a["visual_pos"])
    if n == 1:
        assert np.array_equal(b["visual_feats"], a["visual_feats"])
    for f in ("language_output", "vision_output", "pooled_output"):
        assert np.array_equal(b[f], c[f]), f
EOF
}

@test "carries unknown fields through unchanged" {
	$CASES extras "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$FIX/tiny" < "$T/in.mp" > "$T/out.mp"
	$CASES check-extras < "$T/out.mp"
}

@test "keeps a stream of 1000 records complete and in order" {
	$CASES repeat "$FIX/micro/golden.safetensors" 1000 > "$T/in.mp"
	"$ENC" -m "$FIX/micro" --batch 13 < "$T/in.mp" > "$T/out.mp"
	$CASES check-order 1000 < "$T/out.mp"
}

@test "reads int64 ids and plain msgpack arrays as numpy writes them" {
	$CASES record int64-ids "$FIX/tiny/golden.safetensors" > "$T/a.mp"
	$CASES record list-ids "$FIX/tiny/golden.safetensors" > "$T/b.mp"
	"$ENC" -m "$FIX/tiny" < "$T/a.mp" > "$T/a.out"
	"$ENC" -m "$FIX/tiny" < "$T/b.mp" > "$T/b.out"
	$GOLD inputs "$FIX/tiny/golden.safetensors" 0 | "$ENC" -m "$FIX/tiny" > "$T/ref.out"
	$PY - "$T/a.out" "$T/b.out" "$T/ref.out" <<'PY'
import sys
import numpy as np
from lxtest import read_records
ref, = read_records(open(sys.argv[3], "rb"))
for p in sys.argv[1:3]:
    r, = read_records(open(p, "rb"))
    assert np.array_equal(r["language_output"], ref["language_output"]), p
PY
}

@test "an empty stream gives an empty output and status 0" {
	run $SEP "$ENC" -m "$FIX/tiny" < /dev/null
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "loads F16 and BF16 weights exactly as their float32 values" {
	for k in f16 f32-of-f16 bf16 f32-of-bf16; do $CASES model "$FIX/tiny" "$T/$k" $k; done
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	for k in f16 f32-of-f16 bf16 f32-of-bf16; do "$ENC" -m "$T/$k" < "$T/in.mp" > "$T/$k.out"; done
	$CASES same "$T/f16.out" "$T/f32-of-f16.out" 0
	$CASES same "$T/bf16.out" "$T/f32-of-bf16.out" 0
}

@test "encodes with a model that has no heads" {
	$CASES model "$FIX/tiny" "$T/m" no-heads
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$T/m" < "$T/in.mp" > "$T/out.mp"
	$GOLD compare "$FIX/tiny/golden.safetensors" language_output vision_output pooled_output < "$T/out.mp"
}

@test "reads the layer counts from num_hidden_layers alone" {
	$CASES model "$FIX/tiny" "$T/m" nested-layers
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$T/m" < "$T/in.mp" > "$T/out.mp"
	$GOLD compare "$FIX/tiny/golden.safetensors" language_output vision_output < "$T/out.mp"
}

@test "a python record in, numpy arrays out: the msgpack-numpy round trip" {
	$PY - > "$T/in.mp" <<'PY'
import sys, msgpack, msgpack_numpy, numpy as np
rng = np.random.default_rng(0)
rec = {"input_ids": np.array([101, 2054, 2003, 102], np.int32),
       "visual_feats": rng.random((5, 2048), np.float32), "visual_pos": rng.random((5, 4), np.float32)}
sys.stdout.buffer.write(msgpack.packb(rec, default=msgpack_numpy.encode))
PY
	"$ENC" -m "$FIX/tiny" < "$T/in.mp" > "$T/out.mp"
	$PY - "$T/out.mp" <<'PY'
import sys, msgpack, msgpack_numpy
with open(sys.argv[1], "rb") as f:
    r, = list(msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False))
assert r["language_output"].shape == (4, 32) and r["language_output"].dtype == "float32"
assert r["vision_output"].shape == (5, 32) and r["pooled_output"].shape == (32,)
PY
}

@test "rejects a record without input_ids" {
	bad_record no-input-ids "lx-encode: stdin: record 3 (id 77): missing field input_ids"
}

@test "rejects a record without visual_feats" {
	bad_record no-visual-feats "lx-encode: stdin: record 3 (id 77): missing field visual_feats"
}

@test "rejects float input_ids" {
	bad_record float-ids "lx-encode: stdin: record 3 (id 77): field input_ids: dtype <f4, expected an integer dtype (<i4 or <i8)"
}

@test "rejects integer visual_feats" {
	bad_record int-feats "lx-encode: stdin: record 3 (id 77): field visual_feats: dtype <i4, expected a float dtype (<f4)"
}

@test "rejects visual_feats of rank 1" {
	bad_record rank1-feats "lx-encode: stdin: record 3 (id 77): field visual_feats: rank 1, expected a matrix [N, 2048]"
}

@test "rejects a record with no boxes" {
	bad_record zero-boxes "lx-encode: stdin: record 3 (id 77): field visual_feats has no boxes"
}

@test "rejects a record with no tokens" {
	bad_record zero-tokens "lx-encode: stdin: record 3 (id 77): field input_ids is empty"
}

@test "rejects more tokens than max_position_embeddings" {
	bad_record too-long "lx-encode: stdin: record 3 (id 77): field input_ids: 65 tokens, more than max_position_embeddings 64"
}

@test "rejects a feature width other than visual_feat_dim" {
	bad_record narrow-feats "lx-encode: stdin: record 3 (id 77): field visual_feats: 1024 features per box, the model expects 2048"
}

@test "rejects an id outside the vocabulary" {
	bad_record id-outside-vocab "lx-encode: stdin: record 3 (id 77): field input_ids: id 30522 at position 2 is outside the vocabulary [0, 30522)"
}

@test "rejects non-finite features" {
	bad_record nan-feats "lx-encode: stdin: record 3 (id 77): field visual_feats: non-finite value at box 3, feature 7"
}

@test "rejects more than 4096 boxes, the limit of every tool" {
	bad_record too-many-boxes "lx-encode: stdin: record 3 (id 77): field visual_feats: 4097 boxes, more than 4096"
}

@test "rejects a mask whose length differs from its side" {
	bad_record mask-length "lx-encode: stdin: record 3 (id 77): field attention_mask: shape must be [11] to match its side"
}

@test "rejects a record that is not a map" {
	bad_record not-a-map "lx-encode: stdin: record 3: a msgpack array, expected a map"
}

@test "rejects a stream that ends inside a record, after writing the records before it" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" 0 1 2 > "$T/full.mp"
	head -c -100 "$T/full.mp" > "$T/in.mp"
	run $SEP encode -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 3: the stream ends inside the record" ]
	$GOLD compare "$FIX/tiny/golden.safetensors" language_output < "$T/out.mp" 2> "$T/cmp"
	grep -q '^2 records' "$T/cmp"
}

@test "rejects bytes that are not msgpack" {
	printf '\xc1\x00\x00' > "$T/in.mp"
	run $SEP encode -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 1: not valid msgpack" ]
}

@test "rejects a model directory without config.json" {
	mkdir "$T/m"
	cp "$FIX/micro/model.safetensors" "$T/m/"
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/config.json: No such file or directory" ]
}

@test "rejects a config.json that is not JSON" {
	mkdir "$T/m"
	cp "$FIX/micro/model.safetensors" "$T/m/"
	printf '{"hidden_size": 16,\n oops}\n' > "$T/m/config.json"
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[[ "$stderr" == "lx-encode: $T/m/config.json: line 2: not valid JSON: "* ]]
}

@test "rejects a config whose hidden size does not split into heads" {
	mkdir "$T/m"
	cp "$FIX/micro/model.safetensors" "$T/m/"
	sed 's/"num_attention_heads": 2/"num_attention_heads": 3/' "$FIX/micro/config.json" > "$T/m/config.json"
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/config.json: hidden_size 16 is not a multiple of num_attention_heads 3" ]
}

@test "rejects a model without model.safetensors" {
	mkdir "$T/m"
	cp "$FIX/micro/config.json" "$T/m/"
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/model.safetensors: No such file or directory" ]
}

@test "rejects a missing tensor, naming it" {
	$CASES model "$FIX/tiny" "$T/m" missing
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/model.safetensors: missing tensor lxmert.encoder.x_layers.1.visn_self_att.self.key.bias" ]
}

@test "rejects a misshapen tensor, naming what was found and expected" {
	$CASES model "$FIX/tiny" "$T/m" misshapen
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/model.safetensors: tensor lxmert.pooler.dense.weight has shape [32, 16], expected [32, 32]" ]
}

@test "rejects an unexpected tensor" {
	$CASES model "$FIX/tiny" "$T/m" unexpected
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/model.safetensors: unexpected tensor lxmert.encoder.x_layers.2.lang_inter.dense.bias" ]
}

@test "rejects a truncated model.safetensors" {
	$CASES model "$FIX/tiny" "$T/m" truncated
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/model.safetensors: tensor obj_predict_head.transform.dense.weight: data_offsets [5164512, 5168608) outside the 5167608 data bytes" ]
}

@test "rejects a safetensors header longer than the file" {
	mkdir "$T/m"
	cp "$FIX/micro/config.json" "$T/m/"
	printf '\xff\xff\xff\x00\x00\x00\x00\x00{}' > "$T/m/model.safetensors"
	run $SEP "$ENC" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/model.safetensors: header of 16777215 bytes does not fit in the file (10 bytes)" ]
}

@test "prints usage on -h to stdout and exits 0" {
	run $SEP "$ENC" -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: lx-encode -m DIR "* ]]
}

@test "exits 2 with usage on stderr without a model" {
	run $SEP "$ENC"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[ "${stderr_lines[0]}" = "lx-encode: -m DIR is required" ]
	[ "${stderr_lines[1]}" = "usage: lx-encode -m DIR [options]" ]
}

@test "rejects a batch size that is not a positive number" {
	run $SEP "$ENC" -m "$FIX/micro" --batch 0
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-encode: --batch takes a whole number from 1 to 1048576, not '0'" ]
	[ "${stderr_lines[1]}" = "usage: lx-encode -m DIR [options]" ]
}

@test "a full disk is an error, status 4" {
	$GOLD inputs "$FIX/tiny/golden.safetensors" > "$T/in.mp"
	run $SEP bash -c '"$0" -m "$1" --attentions < "$2" > /dev/full' "$ENC" "$FIX/tiny" "$T/in.mp"
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-encode: stdout: write failed: No space left on device" ]
}

@test "shows progress on stderr when asked, never on stdout" {
	$GOLD inputs "$FIX/micro/golden.safetensors" > "$T/in.mp"
	"$ENC" -m "$FIX/micro" --progress < "$T/in.mp" > "$T/out.mp" 2> "$T/err"
	# not a terminal: no line until ten seconds have passed, then the final one, which stays
	[[ "$(cat "$T/err")" =~ ^"lx-encode:   7 records in 0:0"[0-9]", "[0-9.]+" records/s, "[0-9.]+" "[KM]?B$ ]]
	$GOLD compare "$FIX/micro/golden.safetensors" language_output < "$T/out.mp"
}

@test "a map declaring four billion entries is refused without allocating for them (fuzz regression)" {
	printf '\xdf\xff\xff\xff\xff\xa1b' > "$T/in.mp"
	run $SEP encode -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 1: the stream ends inside the record" ]
}

@test "rejects containers nested deeper than 32 levels" {
	$PY -c 'import sys; sys.stdout.buffer.write(b"\x91" * 40 + b"\x80")' > "$T/in.mp"
	run $SEP encode -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 1: nested deeper than 32 levels" ]
}

# ---- pair records (NLVR2: one statement, two images) ----

@test "encodes a pair record as two examples: pooled_output0/1 match the nlvr2-micro golden within 1e-4" {
	N="$FIX/nlvr2-micro"
	$PY "$TOP/tests/py/nlvr2_cases.py" inputs "$N" | "$ENC" -m "$FIX/micro" > "$T/out.mp"
	$PY "$TOP/tests/py/nlvr2_cases.py" compare "$N" pooled_output0,pooled_output1 < "$T/out.mp"
}

@test "every output of a pair record carries its image's suffix and equals encoding that image alone" {
	$PY "$TOP/tests/py/nlvr2_cases.py" inputs "$FIX/nlvr2-micro" > "$T/pairs.mp"
	"$ENC" -m "$FIX/micro" --attentions --hidden-states --batch 4 < "$T/pairs.mp" > "$T/out.mp"
	$PY - "$T/pairs.mp" > "$T/singles.mp" <<'PY'
import sys
from lxtest import read_records, write_records
out = []
for r in read_records(open(sys.argv[1], "rb")):
    for k in "01":
        out.append({"input_ids": r["input_ids"], "visual_feats": r["visual_feats" + k], "visual_pos": r["visual_pos" + k]})
write_records(out)
PY
	"$ENC" -m "$FIX/micro" --attentions --hidden-states --batch 3 < "$T/singles.mp" > "$T/single.out"
	$PY - "$T/out.mp" "$T/single.out" <<'PY'
import sys
import numpy as np
from lxtest import read_records
pairs = read_records(open(sys.argv[1], "rb"))
singles = read_records(open(sys.argv[2], "rb"))
outs = ["language_output", "vision_output", "pooled_output", "language_hidden_states", "vision_hidden_states",
        "language_attentions", "vision_attentions", "cross_encoder_attentions", "cross_encoder_vision_attentions",
        "cross_encoder_language_self_attentions", "cross_encoder_vision_self_attentions"]
assert len(pairs) * 2 == len(singles) == 12
for i, p in enumerate(pairs):
    assert not any(k in p for k in outs), sorted(p)
    assert "visual_feats0" in p and "visual_feats1" in p, sorted(p)  # kept with --attentions
    for k in "01":
        s = singles[2 * i + int(k)]
        for o in outs:
            assert np.abs(p[o + k] - s[o]).max() < 1e-5, (i, o + k)
PY
}

@test "a pair record without visual_feats1 is refused, naming the field" {
	$PY - > "$T/in.mp" <<'PY'
import numpy as np
from lxtest import write_records
write_records([{"input_ids": np.array([1, 2], np.int32), "visual_feats0": np.zeros((2, 8), np.float32),
                "visual_pos0": np.zeros((2, 4), np.float32)}])
PY
	run -1 "$ENC" -m "$FIX/micro" < "$T/in.mp"
	[[ "$output" == *"field visual_feats1 is missing"* ]]
}

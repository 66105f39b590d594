#!/usr/bin/env bats
# lx-train: training LXMERT. The gradients themselves are checked against torch autograd by the unit test
# tests/unit/train_grads.c (golden_grads.safetensors); these tests check the tool: that training learns,
# that runs are reproducible and resumable, what is frozen stays frozen, and bad input is refused.
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	TINY="$FIX/tiny"
	CASES="$TOP/tests/py/train_cases.py"
	ANSWERS="$FIX/train_answers.json"
}

# A training stream: COUNT SEED KIND (see tests/py/train_cases.py).
stream() { $PY "$CASES" "$@"; }

# The validation losses printed at the end of each epoch, one a line.
valid_losses() { sed -n 's/^lx-train: epoch [0-9]*: validation score [0-9.]*, loss \([0-9.]*\) .*/\1/p' "$1"; }

@test "training the tiny model on a fixed stream lowers the validation loss epoch after epoch" {
	stream 64 1 ans > "$T/train"
	stream 32 2 ans > "$T/valid"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --epochs 4 --batch 8 --lr 1e-3 --valid "$T/valid" "$T/train" 2> "$T/err"
	valid_losses "$T/err" > "$T/losses"
	[ "$(wc -l < "$T/losses")" -eq 4 ]
	# each epoch's loss below the one before
	awk 'NR > 1 && $1 >= prev { exit 1 } { prev = $1 }' "$T/losses"
}

@test "training on HF's pretraining labels lowers the loss" {
	stream 32 3 pretrain > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --epochs 3 --batch 8 --lr 1e-3 --dropout 0 --valid "$T/train" "$T/train" \
		2> "$T/err"
	valid_losses "$T/err" > "$T/losses"
	[ "$(wc -l < "$T/losses")" -eq 3 ]
	awk 'NR == 1 { first = $1 } END { exit !($1 < first) }' "$T/losses"
}

@test "prints step, loss and examples/s on stderr, and nothing on stdout" {
	stream 16 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --log-every 2 "$T/train" > "$T/stdout" 2> "$T/err"
	[ ! -s "$T/stdout" ]
	grep -q '^lx-train: 16 training records, 4 steps (4 a epoch), warm-up 0, lr 5e-05, batch 4$' "$T/err"
	[ "$(grep -c '^lx-train: step [24]/4 epoch 1 loss [0-9.]* lr [0-9.e-]* [0-9.]* examples/s$' "$T/err")" -eq 2 ]
}

@test "the same seed and thread count give the same weights, bit for bit; another seed does not" {
	stream 32 1 ans > "$T/train"
	for run in a b; do
		"$BIN/lx-train" -m "$TINY" -o "$T/$run" --epochs 2 --batch 8 --lr 1e-3 --seed 7 "$T/train" 2> /dev/null
	done
	"$BIN/lx-train" -m "$TINY" -o "$T/c" --epochs 2 --batch 8 --lr 1e-3 --seed 8 "$T/train" 2> /dev/null
	cmp "$T/a/model.safetensors" "$T/b/model.safetensors"
	! cmp -s "$T/a/model.safetensors" "$T/c/model.safetensors"
	for run in d e; do
		"$BIN/lx-train" -m "$TINY" -o "$T/$run" --epochs 2 --batch 8 --lr 1e-3 --seed 7 --threads 2 "$T/train" \
			2> /dev/null
	done
	cmp "$T/d/model.safetensors" "$T/e/model.safetensors"
}

@test "--resume from a checkpoint gives the same weights as an uninterrupted run" {
	stream 40 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/full" --epochs 2 --batch 8 --lr 1e-3 "$T/train" 2> /dev/null
	"$BIN/lx-train" -m "$TINY" -o "$T/part" --epochs 2 --batch 8 --lr 1e-3 --stop-after 7 "$T/train" 2> "$T/err"
	grep -q '^lx-train: stopped after step 7; --resume continues$' "$T/err"
	! cmp -s "$T/full/model.safetensors" "$T/part/model.safetensors"
	"$BIN/lx-train" -m "$TINY" -o "$T/part" --epochs 2 --batch 8 --lr 1e-3 --resume "$T/train" 2> "$T/err"
	grep -q '^lx-train: 10 steps in ' "$T/err"
	cmp "$T/full/model.safetensors" "$T/part/model.safetensors"
}

@test "--freeze encoder leaves every encoder tensor bit-identical and trains the heads" {
	stream 32 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --freeze encoder --epochs 2 --batch 8 --lr 1e-3 "$T/train" 2> "$T/err"
	grep -q 'encoder frozen' "$T/err"
	$PY - "$TINY/model.safetensors" "$T/out/model.safetensors" <<'EOF'
import sys
import numpy as np
from lxtest import read_safetensors
a, b = read_safetensors(sys.argv[1]), read_safetensors(sys.argv[2])
assert sorted(a) == sorted(b)
enc = [k for k in a if k.startswith("lxmert.")]
assert len(enc) > 100
for k in enc:
    assert a[k].tobytes() == b[k].tobytes(), k
assert any(a[k].tobytes() != b[k].tobytes() for k in a if k.startswith("answer_head."))
EOF
}

@test "a new answer head trained on soft-score labels gives a directory lx-encode and lx-head open" {
	stream 48 1 label > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" --epochs 2 --batch 8 --lr 1e-3 \
		"$T/train" 2> /dev/null
	cmp "$TINY/vocab.txt" "$T/out/vocab.txt"
	grep -q '"num_qa_labels": 6,' "$T/out/config.json"
	"$BIN/lx-encode" -m "$T/out" < "$T/train" | "$BIN/lx-head" -m "$T/out" --heads qa --json --top 1 > "$T/json"
	$PY - "$T/json" "$T/out/answers.json" "$ANSWERS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 48
assert all(r["answers"][0]["answer"] in ["a%d" % i for i in range(6)] for r in rows)
assert json.load(open(sys.argv[2])) == json.load(open(sys.argv[3]))
EOF
}

@test "--f16 writes half-precision weights that lx-encode reads" {
	stream 16 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --f16 --batch 8 "$T/train" 2> /dev/null
	$PY - "$T/out/model.safetensors" <<'EOF'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
assert {v["dtype"] for k, v in h.items() if k != "__metadata__"} == {"F16"}
EOF
	"$BIN/lx-encode" -m "$T/out" < "$T/train" > /dev/null
}

# ---- bad input ----

@test "refuses a record without labels, naming it" {
	stream 4 1 none > "$T/train"
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" "$T/train"
	[ "$output" = "lx-train: $T/train: record 1 (id 0): no label to train on (label, ans, matched_label, labels, obj_labels, attr_labels or feat_mask, for a head the model has)" ]
}

@test "refuses a label naming an answer outside the answer list" {
	stream 4 1 unknown > "$T/train"
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" "$T/train"
	[ "$output" = "lx-train: $T/train: record 3 (id 2): field label: answer \"zebra\" is not in the answer list $ANSWERS" ]
}

@test "refuses an ans outside the answer head" {
	$PY - > "$T/train" <<'EOF'
import numpy as np
from lxtest import write_records
write_records([{"input_ids": np.array([101, 102], np.int32), "visual_feats": np.zeros((1, 2048), np.float32),
                "visual_pos": np.zeros((1, 4), np.float32), "ans": 12}])
EOF
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" "$T/train"
	[ "$output" = "lx-train: $T/train: record 1: field ans: 12 is outside the answer list [0, 12)" ]
}

@test "refuses obj_labels without obj_mask, as lx-head does, instead of dropping the loss" {
	$PY - > "$T/train" <<'EOF'
import numpy as np
from lxtest import write_records
write_records([{"input_ids": np.array([101, 102], np.int32), "visual_feats": np.zeros((2, 2048), np.float32),
                "visual_pos": np.zeros((2, 4), np.float32), "ans": 1, "obj_labels": np.array([3, 4], np.int32)}])
EOF
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" "$T/train"
	[ "$output" = "lx-train: $T/train: record 1: field obj_mask is missing (obj_labels needs it)" ]
}

@test "refuses a soft-score label when the model has no answer list" {
	stream 4 1 label > "$T/train"
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" "$T/train"
	[ "$output" = "lx-train: $T/train: record 1 (id 0): field label: a soft-score label needs the answer list (--labels FILE, or answers.json in the model directory)" ]
}

@test "refuses an output directory that exists unless --force" {
	stream 8 1 ans > "$T/train"
	mkdir "$T/out"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" "$T/train"
	[ "$output" = "lx-train: $T/out: the output directory exists (--force to write into it, --resume to continue)" ]
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --force "$T/train" 2> /dev/null
	[ -f "$T/out/model.safetensors" ]
}

@test "--resume without a checkpoint, or with another batch size, is refused" {
	stream 8 1 ans > "$T/train"
	mkdir "$T/empty"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/empty" --resume "$T/train"
	[ "$output" = "lx-train: $T/empty/checkpoint.safetensors: no checkpoint to resume from" ]
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --stop-after 1 "$T/train" 2> /dev/null
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 2 --resume "$T/train"
	[[ "$output" == *"lx-train: $T/out/checkpoint.safetensors: saved by a run over 8 records with --batch 4 --seed 1; this one has 8, 2, 1" ]]
}

@test "a write that fails while saving a checkpoint leaves the previous checkpoint whole" {
	stream 32 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 8 --epochs 2 --save-every 2 --stop-after 2 "$T/train" 2> /dev/null
	cp "$T/out/checkpoint.safetensors" "$T/saved"
	# files may grow to 4 MB only: the next checkpoint (about 15 MB) cannot be written, as on a full disk
	run -4 bash -c "trap '' XFSZ; ulimit -f 4096; '$BIN/lx-train' -m '$TINY' -o '$T/out' --batch 8 --epochs 2 \
		--save-every 2 --resume '$T/train' 2>&1"
	[[ "$output" == *"lx-train: $T/out/checkpoint.safetensors.tmp: File too large" ]]
	cmp "$T/saved" "$T/out/checkpoint.safetensors"
	[ ! -e "$T/out/checkpoint.safetensors.tmp" ]
	# and the run resumes from it
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 8 --epochs 2 --save-every 2 --resume "$T/train" 2> /dev/null
	[ -f "$T/out/model.safetensors" ]
}

@test "prints usage on -h and exits 0" {
	run "$BIN/lx-train" -h
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: lx-train -m DIR -o OUTDIR [options] [TRAIN]" ]]
}

@test "rejects bad usage with status 2" {
	run -2 "$BIN/lx-train" -m "$TINY"
	[ "${lines[0]}" = "lx-train: -o OUTDIR is required" ]
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/o" --freeze heads
	[ "${lines[0]}" = "lx-train: --freeze: \"heads\": only \"encoder\" can be frozen" ]
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/o" --epochs 0
	[ "${lines[0]}" = "lx-train: --epochs takes a whole number from 1 to 1000000, not '0'" ]
	[ "${lines[1]}" = "usage: lx-train -m DIR -o OUTDIR [options] [TRAIN]" ]
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/o" --labels "$ANSWERS"
	[ "${lines[0]}" = "lx-train: --labels names the answers of a --new-head" ]
}

@test "an interrupt writes a checkpoint, exits with status 5, and --resume goes on from it" {
	stream 32 1 ans > "$T/train"
	run -5 timeout --preserve-status -s INT 1 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 100000 "$T/train"
	[[ "${lines[-1]}" =~ ^"lx-train: interrupted after step "[0-9]+"; $T/out/checkpoint.safetensors written, --resume continues"$ ]]
	step=$(echo "${lines[-1]}" | sed 's/.*after step \([0-9]*\);.*/\1/')
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 100000 --stop-after $((step + 2)) --resume "$T/train" \
		2> "$T/err"
	grep -q "^lx-train: stopped after step $((step + 2)); --resume continues$" "$T/err"
}

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
	# without clipping: at this learning rate the clipped steps (the default, at 5) go down less evenly
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --epochs 4 --batch 8 --lr 1e-3 --clip-norm 0 --valid "$T/valid" "$T/train" \
		2> "$T/err"
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
	[ "$output" = "lx-train: $T/out/checkpoint.safetensors: saved by a run with --batch 4; this one has --batch 2; --force without --resume starts afresh" ]
	stream 9 1 ans > "$T/train9"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --resume "$T/train9"
	[ "$output" = "lx-train: $T/out/checkpoint.safetensors: saved by a run over 8 training records; this one has 9; --force without --resume starts afresh" ]
}

@test "a write that fails while saving a checkpoint leaves the previous checkpoint whole" {
	stream 32 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 8 --epochs 2 --save-every 2 --stop-after 2 "$T/train" 2> /dev/null
	cp "$T/out/checkpoint.safetensors" "$T/saved"
	# files may grow to 4 MB only: the next checkpoint (about 15 MB) cannot be written, as on a full disk
	run -4 bash -c "trap '' XFSZ; ulimit -f 4096; '$BIN/lx-train' -m '$TINY' -o '$T/out' --batch 8 --epochs 2 \
		--save-every 2 --resume '$T/train' 2>&1"
	[[ "$output" == *"lx-train: $T/out/checkpoint.safetensors: File too large" ]]
	cmp "$T/saved" "$T/out/checkpoint.safetensors"
	# and no temporary beside it
	[ "$(ls -A "$T/out" | tr '\n' ' ')" = "checkpoint.safetensors config.json model.safetensors vocab.txt " ]
	# and the run resumes from it
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 8 --epochs 2 --save-every 2 --resume "$T/train" 2> /dev/null
	[ -f "$T/out/model.safetensors" ]
}

@test "a run that fails before its first checkpoint leaves no output directory" {
	stream 4 1 none > "$T/train"
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" "$T/train"
	[ ! -e "$T/out" ]
	# so the next run needs no --force
	stream 8 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 "$T/train" 2> /dev/null
	[ -f "$T/out/model.safetensors" ]
}

@test "--skip-unknown-answers skips records whose labels name only unknown answers and keeps the known ones" {
	stream 8 1 unknowns > "$T/train"
	run -1 "$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" "$T/train"
	[ "$output" = "lx-train: $T/train: record 3 (id 2): field label: answer \"zebra\" is not in the answer list $ANSWERS" ]
	run -0 --separate-stderr "$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" \
		--skip-unknown-answers --batch 7 "$T/train"
	[ "${stderr_lines[0]}" = "lx-train: $T/train: 1 record skipped: its label names only answers outside the answer list (--skip-unknown-answers)" ]
	[ "${stderr_lines[1]}" = "lx-train: $T/train: 2 answers outside the answer list left out of the labels (--skip-unknown-answers)" ]
	[ "${stderr_lines[2]}" = "lx-train: 7 training records, 1 steps (1 a epoch), warm-up 0, lr 5e-05, batch 7" ]
	# the record whose label is partly known trains on its known answer: the same model as with the unknown
	# answers taken out of the stream by hand, bit for bit
	$PY - "$T/train" "$T/clean" <<'END'
import sys
from lxtest import read_records, write_records
recs = read_records(open(sys.argv[1], "rb"))
del recs[2]
recs[3]["label"] = {k: v for k, v in recs[3]["label"].items() if k != "zebra"}
write_records(recs, open(sys.argv[2], "wb"))
END
	"$BIN/lx-train" -m "$TINY" -o "$T/clean.d" --new-head 6 --labels "$ANSWERS" --batch 7 "$T/clean" 2> /dev/null
	cmp "$T/out/model.safetensors" "$T/clean.d/model.safetensors"
}

# A copy of the tiny model whose answer head is drawn anew (seed 5) and whose 12 answers are named so that
# three of a0..a5 (train_answers.json) are among them, at other rows: a3 at row 1, a0 at row 3, a5 at row 7.
other_head() {
	mkdir "$1"
	cp "$TINY/config.json" "$TINY/vocab.txt" "$1/"
	$PY - "$TINY/model.safetensors" "$1" <<'END'
import json, sys
import numpy as np
from lxtest import read_safetensors
from encode_cases import write_safetensors
t = {k: np.array(v) for k, v in read_safetensors(sys.argv[1]).items()}
rng = np.random.default_rng(5)
for k in t:
    if k.startswith("answer_head."):
        t[k] = rng.standard_normal(t[k].shape).astype(np.float32)
write_safetensors(sys.argv[2] + "/model.safetensors", t)
names = ["q%d" % i for i in range(12)]
names[1], names[3], names[7] = "a3", "a0", "a5"
json.dump(names, open(sys.argv[2] + "/answers.json", "w"))
END
}

@test "--init-answers starts the answer head from another model's, rows matched by answer name" {
	other_head "$T/other"
	stream 8 1 label > "$T/train"
	# at --lr 0 the weights written are the initial ones
	run -0 --separate-stderr "$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" \
		--init-answers "$T/other" --lr 0 --batch 8 "$T/train"
	[ "${stderr_lines[0]}" = "lx-train: --init-answers $T/other: 3 of 6 answers found by name; the other 3 start from zero" ]
	$PY - "$T/other/model.safetensors" "$T/out/model.safetensors" "$TINY/model.safetensors" <<'END'
import sys
from lxtest import read_safetensors
other, out, tiny = (read_safetensors(p) for p in sys.argv[1:])
# the layers before the last: the other model's, whole
for k in ("0.weight", "0.bias", "2.weight", "2.bias"):
    k = "answer_head.logit_fc." + k
    assert out[k].tobytes() == other[k].tobytes(), k
    assert out[k].tobytes() != tiny[k].tobytes(), k
# the last layer, by name: a0 <- row 3, a3 <- row 1, a5 <- row 7; a1, a2, a4 zero (as load_lxmert_qa)
w, b = out["answer_head.logit_fc.3.weight"], out["answer_head.logit_fc.3.bias"]
ow, ob = other["answer_head.logit_fc.3.weight"], other["answer_head.logit_fc.3.bias"]
assert w.shape == (6, 64) and b.shape == (6,)
for mine, theirs in ((0, 3), (3, 1), (5, 7)):
    assert w[mine].tobytes() == ow[theirs].tobytes() and b[mine] == ob[theirs], mine
for mine in (1, 2, 4):
    assert not w[mine].any() and b[mine] == 0, mine
# the encoder is the -m model's
assert out["lxmert.pooler.dense.weight"].tobytes() == tiny["lxmert.pooler.dense.weight"].tobytes()
END
}

@test "--init-answers refuses a model of another width, or one without an answer list" {
	stream 8 1 label > "$T/train"
	run -3 "$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" --init-answers "$TOP/models/demo" \
		"$T/train"
	[ "$output" = "lx-train: $TOP/models/demo/model.safetensors: tensor answer_head.logit_fc.0.weight is not a float tensor of 2048 values in 64 rows, as this model's" ]
	run -3 "$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" --init-answers "$TINY" "$T/train"
	[ "$output" = "lx-train: $TINY: no answers.json or answers.txt to match the answers by name" ]
	[ ! -e "$T/out" ]
}

@test "clipping is on at 5 by default, and --clip-norm 0 turns it off" {
	stream 16 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/a" --batch 8 --lr 1e-3 "$T/train" 2> /dev/null
	"$BIN/lx-train" -m "$TINY" -o "$T/b" --batch 8 --lr 1e-3 --clip-norm 5 "$T/train" 2> /dev/null
	"$BIN/lx-train" -m "$TINY" -o "$T/c" --batch 8 --lr 1e-3 --clip-norm 0 "$T/train" 2> /dev/null
	cmp "$T/a/model.safetensors" "$T/b/model.safetensors"
	! cmp -s "$T/a/model.safetensors" "$T/c/model.safetensors"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/d" --clip-norm -1 "$T/train"
	[ "${lines[0]}" = "lx-train: --clip-norm takes a number from 0 to 1e+30, not '-1'" ]
}

@test "a pipe is spooled: two epochs from a pipe give the file's weights, bit for bit, and no spool is left" {
	stream 24 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/file" --epochs 2 --batch 8 "$T/train" 2> /dev/null
	cat "$T/train" | TMPDIR="$T" "$BIN/lx-train" -m "$TINY" -o "$T/pipe" --epochs 2 --batch 8 2> /dev/null
	cmp "$T/file/model.safetensors" "$T/pipe/model.safetensors"
	[ "$(ls -A "$T" | tr '\n' ' ')" = "file pipe train " ]
}

@test "SIGTERM while lx-train waits on a pipe ends it with status 5 and leaves no output directory" {
	stream 8 1 ans > "$T/train"
	mkfifo "$T/fifo"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" < "$T/fifo" 2> "$T/err" &
	pid=$!
	exec 5> "$T/fifo"
	cat "$T/train" >&5
	# a fixed point: lx-train blocked in read(2) on its standard input (system call 0, descriptor 0)
	for _ in $(seq 300); do
		[ "$(cut -d' ' -f1,2 /proc/$pid/syscall 2> /dev/null)" = "0 0x0" ] && break
		sleep 0.1
	done
	[ "$(cut -d' ' -f1,2 /proc/$pid/syscall)" = "0 0x0" ]
	kill -TERM $pid
	status=0
	wait $pid || status=$?
	exec 5>&-
	[ "$status" -eq 5 ]
	[ "$(cat "$T/err")" = "lx-train: interrupted while reading stdin" ]
	[ ! -e "$T/out" ]
}

@test "memory does not grow with the training stream: 50,000 records take no more than 500 (plain build)" {
	nm "$BIN/lx-train" 2> /dev/null | grep -q __asan_init && skip "a sanitizer build's quarantine grows by design"
	stream 500 1 micro > "$T/small"
	stream 50000 1 micro > "$T/large"
	for n in small large; do
		/usr/bin/time -f %M -o "$T/rss.$n" "$BIN/lx-train" -m "$FIX/micro" -o "$T/out.$n" --batch 32 "$T/$n" \
			2> /dev/null
	done
	small=$(tail -n 1 "$T/rss.small") large=$(tail -n 1 "$T/rss.large")
	echo "# peak RSS: $small KiB over 500 records, $large KiB over 50,000" >&3
	# what grows is the index of where each record starts (12 bytes a record: 586 KiB at 50,000) and the
	# epoch's order (4 bytes a record: 195 KiB); nothing else. The index doubles as it grows, so its capacity
	# is at most twice what it holds, and while realloc moves it the old and new arrays stand together: at most
	# 3 x 586 + 195 = 1953 KiB (measured 0.9 to 1.4 MB above the small run; 1200 KiB was too tight under load)
	[ "$large" -le $((small + 1953)) ]
}

@test "--resume refuses a checkpoint of a run with another setting, naming it" {
	stream 8 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --lr 1e-3 --stop-after 1 "$T/train" 2> /dev/null
	afresh="--force without --resume starts afresh"
	for change in "--lr 2e-3|--lr 0.001; this one has --lr 0.002" "--clip-norm 1|--clip-norm 5; this one has --clip-norm 1" \
		"--epochs 2|--epochs 1; this one has --epochs 2" "--warmup 3|--warmup default; this one has --warmup 3" \
		"--dropout 0|--dropout 0.100000001; this one has --dropout 0" \
		"--weight-decay 0|--weight-decay 0.00999999978; this one has --weight-decay 0" \
		"--seed 2|--seed 1; this one has --seed 2" "--freeze encoder|--freeze none; this one has --freeze encoder"; do
		run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --lr 1e-3 ${change%%|*} --resume "$T/train"
		[ "$output" = "lx-train: $T/out/checkpoint.safetensors: saved by a run with ${change#*|}; $afresh" ]
	done
	# another model: the tiny model with one weight changed
	mkdir "$T/other"
	cp "$TINY"/* "$T/other/"
	$PY -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(-4, 2); f.write(b"\0\0\x80\x3f")' "$T/other/model.safetensors"
	run -2 "$BIN/lx-train" -m "$T/other" -o "$T/out" --batch 4 --lr 1e-3 --resume "$T/train"
	[ "$output" = "lx-train: $T/out/checkpoint.safetensors: saved by a run from another model (-m: its weights differ); $afresh" ]
	# the same settings resume
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --lr 1e-3 --resume "$T/train" 2> /dev/null
	# another answer list (the same names in another order), another head to start from
	stream 8 1 label > "$T/label"
	"$BIN/lx-train" -m "$TINY" -o "$T/lab" --new-head 6 --labels "$ANSWERS" --batch 4 --stop-after 1 "$T/label" \
		2> /dev/null
	$PY -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))[::-1], open(sys.argv[2], "w"))' "$ANSWERS" \
		"$T/reversed.json"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/lab" --new-head 6 --labels "$T/reversed.json" --batch 4 --resume "$T/label"
	[ "$output" = "lx-train: $T/lab/checkpoint.safetensors: saved by a run with another answer list; $afresh" ]
	other_head "$T/head"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/lab" --new-head 6 --labels "$ANSWERS" --init-answers "$T/head" --batch 4 \
		--resume "$T/label"
	[ "${lines[-1]}" = "lx-train: $T/lab/checkpoint.safetensors: saved by a run whose answer head started from another --init-answers; $afresh" ]
}
@test "--resume refuses a checkpoint that does not record its settings, saying how to start afresh" {
	stream 8 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --stop-after 1 "$T/train" 2> /dev/null
	# the checkpoint as an earlier lx-train wrote it: without the tensor trainer.settings
	$PY - "$T/out/checkpoint.safetensors" <<'END'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
head, body = json.loads(data[8:8 + n]), data[8 + n:]
assert "trainer.settings" in head
out, blobs, off = {}, [], 0
for k, v in head.items():
    if k in ("__metadata__", "trainer.settings"):
        continue
    raw = body[v["data_offsets"][0]:v["data_offsets"][1]]
    out[k] = dict(v, data_offsets=[off, off + len(raw)])
    blobs.append(raw)
    off += len(raw)
h = json.dumps(out).encode()
h += b" " * (-(len(h) + 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
END
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --resume "$T/train"
	[ "$output" = "lx-train: $T/out/checkpoint.safetensors: written by an lx-train that did not record its settings, so this run cannot be checked against it; --force without --resume starts afresh" ]
}

@test "a damaged checkpoint is refused before the training set is read" {
	stream 8 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --stop-after 1 "$T/train" 2> /dev/null
	truncate -s -100 "$T/out/checkpoint.safetensors"
	# the training set is a FIFO no one writes: reading it would wait until the timeout (status 124)
	mkfifo "$T/fifo"
	run -3 timeout 60 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --resume "$T/fifo"
	[[ "$output" == "lx-train: $T/out/checkpoint.safetensors: "* ]]
}

@test "--force sets the earlier run's checkpoint aside, so that --resume cannot continue it" {
	stream 8 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --stop-after 1 "$T/train" 2> /dev/null
	cp "$T/out/checkpoint.safetensors" "$T/first"
	# the new run dies before its first checkpoint: killed once it has begun training (after the line that
	# counts the records; --log-every 1000000 keeps it from printing again)
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 1000000 --log-every 1000000 --force "$T/train" \
		2> "$T/err" &
	pid=$!
	for _ in $(seq 300); do grep -q 'training records' "$T/err" && break; sleep 0.1; done
	kill -KILL $pid
	wait $pid || true
	grep -q "^lx-train: $T/out/checkpoint.safetensors: the earlier run's checkpoint, set aside as $T/out/checkpoint.safetensors.old$" "$T/err"
	[ ! -e "$T/out/checkpoint.safetensors" ]
	cmp "$T/first" "$T/out/checkpoint.safetensors.old"
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --resume "$T/train"
	[ "$output" = "lx-train: $T/out/checkpoint.safetensors: no checkpoint to resume from" ]
}

@test "a second run on the same OUTDIR is refused with status 2, naming the first one's pid" {
	stream 8 1 ans > "$T/train"
	mkfifo "$T/fifo"
	# the first run holds OUTDIR's lock while it waits for its training stream
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 < "$T/fifo" 2> "$T/err1" &
	pid=$!
	exec 5> "$T/fifo"
	for _ in $(seq 300); do
		[ "$(cut -d' ' -f1,2 /proc/$pid/syscall 2> /dev/null)" = "0 0x0" ] && break
		sleep 0.1
	done
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 "$T/train"
	[ "$output" = "lx-train: $T/out: being written by another process (pid $pid)" ]
	# the first goes on and finishes
	cat "$T/train" >&5
	exec 5>&-
	wait $pid
	[ -f "$T/out/model.safetensors" ]
	[ "$(ls -A "$T" | tr '\n' ' ')" = "err1 fifo out train " ]
}

@test "a run killed while it writes the model directory leaves the earlier one whole, and the next run cleans up" {
	stream 8 1 label > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$ANSWERS" --batch 4 "$T/train" 2> /dev/null
	cp -r "$T/out" "$T/saved"
	$PY -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))[::-1], open(sys.argv[2], "w"))' "$ANSWERS" \
		"$T/reversed.json"
	# a fixed point: SIGKILL at the second rename, once the new model.safetensors is whole (before, lx-train wrote
	# OUTDIR file by file, and this left new weights beside the old answers.json)
	run strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:signal=KILL:when=2 \
		"$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$T/reversed.json" --batch 4 --force "$T/train"
	[ "$status" -eq 137 ]
	diff -r "$T/saved" "$T/out"
	# what it left beside OUTDIR goes with the next run
	[ -n "$(ls -d "$T"/.out.tmp-* 2> /dev/null)" ]
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --new-head 6 --labels "$T/reversed.json" --batch 4 --force "$T/train" \
		2> /dev/null
	[ -z "$(ls -d "$T"/.out.tmp-* 2> /dev/null)" ]
	cmp "$T/reversed.json" <($PY -c 'import json, sys; json.dump(json.load(open(sys.argv[1])), sys.stdout)' "$T/out/answers.json")
}

@test "a checkpoint temporary left by a killed run is removed by the next run, and kept while its writer runs" {
	stream 8 1 ans > "$T/train"
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 2 --stop-after 1 "$T/train" 2> /dev/null
	# a run killed at its checkpoint's rename leaves the full-size temporary
	run strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:signal=KILL:when=1 \
		"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 2 --save-every 2 --resume "$T/train"
	[ "$status" -eq 137 ]
	ls -A "$T/out" | grep -q '^\.checkpoint\.safetensors\.tmp-'
	# while another process holds OUTDIR's lock, nothing is removed (and the run is refused)
	$PY - "$T/.out.lock" <<'END' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
open(sys.argv[1] + ".held", "w").close()
time.sleep(60)
END
	holder=$!
	for _ in $(seq 300); do [ -e "$T/.out.lock.held" ] && break; sleep 0.1; done
	run -2 "$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 2 --save-every 2 --resume "$T/train"
	[ "$output" = "lx-train: $T/out: being written by another process (pid $holder)" ]
	ls -A "$T/out" | grep -q '^\.checkpoint\.safetensors\.tmp-'
	kill $holder
	wait $holder || true
	rm -f "$T/.out.lock.held"
	# once it is free, the next run removes it
	"$BIN/lx-train" -m "$TINY" -o "$T/out" --batch 4 --epochs 2 --save-every 2 --resume "$T/train" 2> /dev/null
	! ls -A "$T/out" | grep -q 'tmp-'
}

@test "a full disk while the model directory is written leaves the earlier one whole (a 8 MB tmpfs)" {
	unshare -m true 2> /dev/null || skip "needs root for a private mount namespace"
	stream 8 1 label > "$T/train"
	mkdir "$T/disk"
	run unshare -m bash -c "
		set -e
		mount -t tmpfs -o size=8m tmpfs '$T/disk'
		'$BIN/lx-train' -m '$TINY' -o '$T/disk/out' --new-head 6 --labels '$ANSWERS' --batch 4 '$T/train' 2> /dev/null
		cp -r '$T/disk/out' '$T/saved'
		# a second model (5 MB) does not fit beside the first
		status=0
		'$BIN/lx-train' -m '$TINY' -o '$T/disk/out' --new-head 6 --labels '$ANSWERS' --batch 4 --force --seed 2 \
			'$T/train' 2> '$T/err' || status=\$?
		echo status \$status
		diff -r '$T/saved' '$T/disk/out' && echo whole
		ls -A '$T/disk'
	"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "status 4" ]
	[ "${lines[1]}" = "whole" ]
	[ "${lines[2]}" = "out" ]
	[[ "$(cat "$T/err")" == *"No space left on device" ]]
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

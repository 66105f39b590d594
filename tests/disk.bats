#!/usr/bin/env bats
# Nothing lost on disk (issue 17): outputs that appear whole or not at all, one writer at a time, temporaries
# a killed run left removed by the next, directories fsync'ed, a mapped model file that changes under a tool,
# lx-featpack's index as a cache, lx-head's --score-file. Kills come at fixed system calls (strace's fault
# injection) or at a fixed point (a FIFO the tool blocks on), never from timing; full disks are a small tmpfs
# in a private mount namespace (root only: skipped, saying so, otherwise).
load helpers

setup() {
	M="$FIX/micro"
	T="$BATS_TEST_TMPDIR"
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
}

# Waits (up to 60 s) until the shell condition $1 holds.
wait_for() {
	local i
	for ((i = 0; i < 600; i++)); do
		eval "$1" && return 0
		sleep 0.1
	done
	echo "timed out waiting for: $1" >&2
	return 1
}

# Every entry of directory $1, hidden ones too, on one line.
entries() {
	ls -A "$1" | tr '\n' ' ' | sed 's/ $//'
}

# A conversion of micro into $1 in dtype $2, its files kept as $T/$2.* to compare with.
convert_micro() {
	"$BIN/lx-convert" -q -t "$2" --config "$M/config.json" "$M/pytorch_model.bin" "$1"
}

# The status, for a program killed by strace's injection.
strace_kill() {
	local call=$1 when=$2
	shift 2
	strace -f -qq -o /dev/null -e trace="$call" -e inject="$call:signal=KILL:when=$when" "$@"
}

# ---- lx-convert ----

@test "lx-convert refuses (status 2) an IN inside OUTDIR, even with --force, and deletes nothing" {
	mkdir "$T/mine"
	cp "$M/lxrt_original.pth" "$T/mine/BEST.pth"
	echo notes > "$T/mine/notes.txt"
	run "$BIN/lx-convert" -q --force --config "$M/config.json" "$T/mine/BEST.pth" "$T/mine"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/mine/BEST.pth (IN) lies inside OUTDIR $T/mine, which the conversion would replace: write the model directory elsewhere" ]
	[ "$(entries "$T/mine")" = "BEST.pth notes.txt" ]
	cmp "$T/mine/BEST.pth" "$M/lxrt_original.pth"
	[ "$(entries "$T")" = "mine" ]
}

@test "lx-convert --force DIR DIR is refused (status 2): pytorch_model.bin stays" {
	mkdir "$T/m"
	cp "$M/pytorch_model.bin" "$M/config.json" "$T/m/"
	run "$BIN/lx-convert" -q --force "$T/m" "$T/m/"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/m (IN) lies inside OUTDIR $T/m/, which the conversion would replace: write the model directory elsewhere" ]
	[ "$(entries "$T/m")" = "config.json pytorch_model.bin" ]
	cmp "$T/m/pytorch_model.bin" "$M/pytorch_model.bin"
}

@test "lx-convert refuses (status 2) a --config or --vocab inside OUTDIR, through a symbolic link too" {
	mkdir "$T/out"
	cp "$M/config.json" "$T/out/cfg.json"
	echo '[PAD]' > "$T/out/vocab.txt"
	ln -s "$T/out" "$T/link"
	run "$BIN/lx-convert" -q --force --config "$T/out/cfg.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/out/cfg.json (--config) lies inside OUTDIR $T/out, which the conversion would replace: write the model directory elsewhere" ]
	run "$BIN/lx-convert" -q --force --config "$M/config.json" --vocab "$T/link/vocab.txt" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/link/vocab.txt (--vocab) lies inside OUTDIR $T/out, which the conversion would replace: write the model directory elsewhere" ]
	[ "$(entries "$T/out")" = "cfg.json vocab.txt" ]
}

# lx-convert into $T/out, stopped at a fixed point: it opens --vocab, a FIFO, after writing the model and
# config into its temporary directory, and waits there for a writer.
start_stopped_convert() {
	mkfifo "$T/vocab.fifo"
	"$BIN/lx-convert" -q "$@" --config "$M/config.json" --vocab "$T/vocab.fifo" "$M/pytorch_model.bin" "$T/out" \
		2> "$T/first.err" &
	FIRST=$!
	PIDS+=("$FIRST")
	wait_for 'ls "$T"/.out.tmp-*/config.json > /dev/null 2>&1'
}

@test "lx-convert without --force does not replace a directory that appears at OUTDIR while it runs (status 2)" {
	start_stopped_convert
	mkdir "$T/out"
	echo theirs > "$T/out/theirs.txt"
	cp "$FIX/tiny/vocab.txt" "$T/vocab.fifo"
	status=0
	wait "$FIRST" || status=$?
	[ "$status" -eq 2 ]
	[ "$(cat "$T/first.err")" = "lx-convert: $T/out: appeared while converting; not replacing it (use --force to replace it)" ]
	[ "$(entries "$T/out")" = "theirs.txt" ]
	[ "$(entries "$T")" = "first.err out vocab.fifo" ]
}

@test "a second lx-convert into the same OUTDIR while one runs is refused (status 2) naming the first's pid" {
	start_stopped_convert
	run "$BIN/lx-convert" -q --force --config "$M/config.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/out: being written by another process (pid $FIRST)" ]
	[ ! -e "$T/out" ]
	cp "$FIX/tiny/vocab.txt" "$T/vocab.fifo"
	status=0
	wait "$FIRST" || status=$?
	[ "$status" -eq 0 ]
	[ "$(entries "$T/out")" = "config.json model.safetensors vocab.txt" ]
	[ "$(entries "$T")" = "first.err out vocab.fifo" ]
}

@test "lx-convert --force killed at each rename leaves OUTDIR whole, old or new; the next run removes what is left" {
	convert_micro "$T/new" f32
	convert_micro "$T/old" f16
	convert_micro "$T/out" f16
	local n status
	for ((n = 1; n < 20; n++)); do
		status=0
		strace_kill rename,renameat,renameat2 "$n" \
			"$BIN/lx-convert" -q --force --config "$M/config.json" "$M/pytorch_model.bin" "$T/out" || status=$?
		[ "$(entries "$T/out")" = "config.json model.safetensors" ]
		cmp "$T/out/config.json" "$T/new/config.json"
		cmp "$T/out/model.safetensors" "$T/old/model.safetensors" ||
			cmp "$T/out/model.safetensors" "$T/new/model.safetensors"
		[ "$status" -eq 0 ] && break
	done
	[ "$n" -ge 3 ] # killed at least at the two files' renames and at the swap
	cmp "$T/out/model.safetensors" "$T/new/model.safetensors"
	[ "$(entries "$T")" = "new old out" ]
}

@test "a conversion killed while writing leaves a hidden temporary that the next one removes" {
	strace_kill fsync 1 "$BIN/lx-convert" -q --config "$M/config.json" "$M/pytorch_model.bin" "$T/out" || true
	[ ! -e "$T/out" ]
	[[ "$(entries "$T")" == ".out.lock .out.tmp-"?????? ]]
	convert_micro "$T/out" f32
	[ "$(entries "$T")" = "out" ]
	cmp "$T/out/model.safetensors" "$M/model.safetensors"
}

@test "lx-convert fsyncs OUTDIR's parent after moving OUTDIR in, and the new OUTDIR before" {
	mkdir "$T/w"
	strace -f -qq -y -o "$T/trace" -e trace=rename,renameat,renameat2,fsync \
		"$BIN/lx-convert" -q --config "$M/config.json" "$M/pytorch_model.bin" "$T/w/out"
	# the rename of the temporary directory to OUTDIR, then an fsync of the directory holding it
	run awk -v out="\"$T/w/out\"" -v dir="<$T/w>" '
		/rename/ && index($0, out ",") || /rename/ && index($0, out ")") { moved = NR }
		/^[0-9 ]*fsync\(/ && moved && index($0, dir) { synced = NR }
		END { print (moved ? "moved" : "not moved"), (synced > moved ? "synced" : "not synced") }' "$T/trace"
	[ "$output" = "moved synced" ]
	grep -q "fsync([0-9]*<$T/w/.out.tmp-[^>]*>" "$T/trace"
}

# ---- lx-head --score-file ----

@test "lx-head --score-file: a run that fails keeps the previous score; one that succeeds replaces it whole" {
	cp -r "$FIX/tiny" "$T/m"
	for i in 0 1 2 3 4 5 6 7 8 9 10 11; do echo "a$i"; done > "$T/m/answers.txt"
	$PY "$TOP/tests/py/head_cases.py" outputs "$FIX/tiny/golden.safetensors" 0 1 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
for r in recs:
    r["label"] = {"a%d" % i: 1.0 for i in range(12)}
write_records(recs)' > "$T/in"
	echo '{"score": 0.5, "questions": 8}' > "$T/score.json"
	head -c -10 "$T/in" > "$T/cut" # the stream ends inside its second record
	run "$BIN/lx-head" -m "$T/m" --heads qa --score-file "$T/score.json" < "$T/cut"
	[ "$status" -eq 1 ]
	[ "$(cat "$T/score.json")" = '{"score": 0.5, "questions": 8}' ]
	"$BIN/lx-head" -m "$T/m" --heads qa --score-file "$T/score.json" < "$T/in" > /dev/null 2>&1
	$PY -c 'import json, sys; assert json.loads(open(sys.argv[1]).read()) == {"score": 1.0, "questions": 2}' \
		"$T/score.json"
	[ "$(entries "$T")" = "cut in m score.json" ]
}

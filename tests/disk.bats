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

needs_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount in a private mount namespace (unshare -m)"
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

@test "lx-convert on a full disk: status 4 naming the file, nothing left behind, an earlier OUTDIR kept" {
	needs_root
	mkdir "$T/full"
	run unshare -m sh -c '
		mount -t tmpfs -o size=100k none "$1/full" || exit 99
		"$2" -q -t f16 --config "$3/config.json" "$3/pytorch_model.bin" "$1/full/out" || exit 98
		"$2" -q --force --config "$3/config.json" "$3/pytorch_model.bin" "$1/full/out"
		echo "status $?"
		ls -A "$1/full" "$1/full/out" | tr "\n" " "' _ "$T" "$BIN/lx-convert" "$M"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "lx-convert: $T/full/.out.tmp-"??????"/model.safetensors: No space left on device" ]]
	[ "${lines[1]}" = "status 4" ]
	[ "${lines[2]}" = "$T/full: out  $T/full/out: config.json model.safetensors " ]
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

# ---- a mapped model file that changes ----

@test "a model file truncated while lx-encode has it mapped: one line and status 4, not a Bus error" {
	cp -r "$FIX/tiny" "$T/m"
	$PY "$TOP/tests/py/faults.py" records "$FIX/tiny" 3 > "$T/in.mp"
	mkfifo "$T/fifo"
	"$BIN/lx-encode" -m "$T/m" < "$T/fifo" > "$T/out.mp" 2> "$T/err" &
	local p=$!
	PIDS+=("$p")
	exec 8> "$T/fifo" # lx-encode's stdin opens; it maps the model before its first read
	wait_for 'grep -q "$T/m/model.safetensors" /proc/$p/maps'
	truncate -s 0 "$T/m/model.safetensors"
	cat "$T/in.mp" >&8
	exec 8>&-
	status=0
	wait "$p" || status=$?
	[ "$status" -eq 4 ]
	[ "$(cat "$T/err")" = "lx-encode: model file changed while in use (truncated or rewritten in place; replace it by renaming a new file over it, see lx-stream(5))" ]
}

# ---- lx-featpack's index: a cache ----

feat_setup() {
	REF="$TOP/tests/py/featref.py"
	TSV="$FIX/train2014_obj36_sample.tsv"
	mkdir "$T/data"
	cp "$TSV" "$T/data/feats.tsv"
	$PY "$REF" questions "$FIX/questions.jsonl" > "$T/q.mp"
	# the index as a run on an intact file writes it
	"$BIN/lx-featpack" --join --index "$T/data/feats.tsv" < /dev/null
	mv "$T/data/feats.tsv.lxidx" "$T/good.lxidx"
}

# lx-featpack --join ARGS... < q.mp > out.mp, its stderr in $T/err and its status in $status.
join_q() {
	status=0
	"$BIN/lx-featpack" --join "$@" < "$T/q.mp" > "$T/out.mp" 2> "$T/err" || status=$?
}

# The joined records are those of the authors' reader on the sample.
joined_right() {
	run "$PY" "$REF" check-join "$T/out.mp" "$T/q.mp" "$TSV"
	[ "$output" = "ok" ]
}

@test "lx-featpack rebuilds, with a warning, an index cut inside its last line, and writes it back whole" {
	feat_setup
	head -c -5 "$T/good.lxidx" > "$T/data/feats.tsv.lxidx"
	join_q --index "$T/data/feats.tsv"
	[ "$status" -eq 0 ]
	[ "$(cat "$T/err")" = "lx-featpack: $T/data/feats.tsv.lxidx: line 12: cut short (no line end); rebuilt and written back" ]
	joined_right
	cmp "$T/data/feats.tsv.lxidx" "$T/good.lxidx"
	[ "$(entries "$T/data")" = "feats.tsv feats.tsv.lxidx" ]
}

@test "lx-featpack rebuilds a stale index with a warning; --strict-index refuses it (status 3)" {
	feat_setup
	cp "$T/good.lxidx" "$T/data/feats.tsv.lxidx"
	touch -d '2020-01-02 03:04:05' "$T/data/feats.tsv"
	join_q --index --strict-index "$T/data/feats.tsv"
	[ "$status" -eq 3 ]
	join_q --index "$T/data/feats.tsv"
	[ "$status" -eq 0 ]
	[[ "$(cat "$T/err")" == "lx-featpack: $T/data/feats.tsv.lxidx: stale index: made for 3951820 bytes modified at "*", the file now has 3951820 bytes modified at 1577934245.000000000; rebuilt and written back" ]]
	joined_right
	[ "$(sed -n 2p "$T/data/feats.tsv.lxidx" | cut -d' ' -f1-4)" = "size 3951820 mtime 1577934245.000000000" ]
	join_q --index --strict-index "$T/data/feats.tsv"
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
}

@test "lx-featpack rebuilds the index of a stream file whose offset was forged, and joins the right images" {
	feat_setup
	"$BIN/lx-featpack" "$TSV" > "$T/data/feats.mp"
	"$BIN/lx-featpack" --join --index "$T/data/feats.mp" < /dev/null
	cp "$T/data/feats.mp.lxidx" "$T/good.lxidx"
	# entry 3: an offset one byte into its record (still in order, inside the file)
	awk -F'\t' -v OFS='\t' 'NR == 5 { $1 = $1 + 1 } { print }' "$T/good.lxidx" > "$T/data/feats.mp.lxidx"
	! cmp -s "$T/good.lxidx" "$T/data/feats.mp.lxidx"
	join_q --index "$T/data/feats.mp"
	[ "$status" -eq 0 ]
	[[ "$(cat "$T/err")" == "lx-featpack: $T/data/feats.mp.lxidx: does not match its file: $T/data/feats.mp: "*"; rebuilt and written back" ]]
	[ "$(wc -l < "$T/err")" -eq 1 ]
	joined_right
	cmp "$T/data/feats.mp.lxidx" "$T/good.lxidx"
}

@test "lx-featpack --reindex rebuilds a damaged index without reading it; without it, a warning" {
	feat_setup
	printf 'lx-featidx 1\nsize 3951820 oops\n' > "$T/data/feats.tsv.lxidx"
	join_q --index --reindex "$T/data/feats.tsv"
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
	cmp "$T/data/feats.tsv.lxidx" "$T/good.lxidx"
	printf 'lx-featidx 1\nsize 3951820 oops\n' > "$T/data/feats.tsv.lxidx"
	join_q --index "$T/data/feats.tsv"
	[ "$status" -eq 0 ]
	[ "$(cat "$T/err")" = "lx-featpack: $T/data/feats.tsv.lxidx: line 2: expected \"size S mtime T.N format F count C\"; rebuilt and written back" ]
	cmp "$T/data/feats.tsv.lxidx" "$T/good.lxidx"
	joined_right
}

@test "lx-featpack leaves the index to another process writing it: the join goes on, with the index in memory" {
	feat_setup
	# an fcntl lock on the index's sidecar, as another lx-featpack writing the index holds it
	"$PY" -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
os.write(fd, b"%d\n" % os.getpid())
print("locked", flush=True)
time.sleep(120)' "$T/data/.feats.tsv.lxidx.lock" > "$T/locked" &
	PIDS+=($!)
	wait_for '[ -s "$T/locked" ]'
	join_q --index "$T/data/feats.tsv"
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
	joined_right
	[ "$(entries "$T/data")" = ".feats.tsv.lxidx.lock feats.tsv" ]
}

@test "two lx-featpack runs building one index at once both join, and the index is whole" {
	feat_setup
	"$BIN/lx-featpack" --join --index "$T/data/feats.tsv" < "$T/q.mp" > "$T/a.mp" 2> "$T/a.err" &
	local a=$!
	"$BIN/lx-featpack" --join --index "$T/data/feats.tsv" < "$T/q.mp" > "$T/b.mp" 2> "$T/b.err"
	wait "$a"
	cmp "$T/a.mp" "$T/b.mp"
	[ ! -s "$T/a.err" ] && [ ! -s "$T/b.err" ]
	cmp "$T/data/feats.tsv.lxidx" "$T/good.lxidx"
	[ "$(entries "$T/data")" = "feats.tsv feats.tsv.lxidx" ]
}

@test "lx-featpack on a read-only dataset directory keeps the index in memory; --index-file puts it elsewhere" {
	needs_root
	feat_setup
	run unshare -m sh -c '
		mount --bind "$1/data" "$1/data" && mount -o remount,bind,ro "$1/data" || exit 99
		"$2" --join --index "$1/data/feats.tsv" < "$1/q.mp" > "$1/out.mp" || exit
		"$2" --join --index-file "$1/feats.idx" "$1/data/feats.tsv" < "$1/q.mp" > "$1/out2.mp"' _ "$T" "$BIN/lx-featpack"
	[ "$status" -eq 0 ]
	[ "$output" = "lx-featpack: $T/data/.feats.tsv.lxidx.lock: Read-only file system: the index is kept in memory" ]
	joined_right
	cmp "$T/out.mp" "$T/out2.mp"
	cmp "$T/feats.idx" "$T/good.lxidx"
	[ "$(entries "$T/data")" = "feats.tsv" ]
}

@test "lx-featpack on a full disk keeps the index in memory, the join goes on, nothing is left behind" {
	needs_root
	feat_setup
	mkdir "$T/full"
	run unshare -m sh -c '
		mount -t tmpfs -o size=4m none "$1/full" || exit 99
		cp "$1/data/feats.tsv" "$1/full/" && { dd if=/dev/zero of="$1/full/fill" bs=4k 2> /dev/null; true; }
		"$2" --join --index "$1/full/feats.tsv" < "$1/q.mp" > "$1/out.mp" || exit
		ls -A "$1/full" | tr "\n" " "' _ "$T" "$BIN/lx-featpack"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "lx-featpack: $T/full/.feats.tsv.lxidx.lock: No space left on device: the index is kept in memory" ]
	[ "${lines[1]}" = "feats.tsv fill " ]
	joined_right
}

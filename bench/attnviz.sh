#!/bin/sh
# bench/attnviz.sh: lx-attnviz's records per second and bytes per record, on records of the tiny test model
# (tests/fixtures/tiny: T about 10, N = 36, 2 layers of 4 heads; the test scenes, with photos) and of an
# lxmert-base-shaped model with random weights (build/bench/out/base, made once by mkmodel and shared with
# bench/encode.sh: T = 20, N = 36, 9/5/5 layers of 12 heads; the sample photo under every record), with the
# default kinds and with --kinds all --png. Run through `make bench-attnviz`. Nothing here is a pass/fail
# test; the load is printed with each row, and the CPU time (user + sys) beside the wall time, which the
# machine's load and its disk (one sync per run) inflate.
set -eu
OUT=${LX_BENCH_OUT:-build/bench/out}
BB=${LX_BENCH_BIN:-build/bench/bin}
BIN=${LX_BIN:-build/bin}
PY=/usr/bin/python3
TOP=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$TOP/tests/py"
W=$OUT/attnviz
mkdir -p "$W"
D=$OUT/base
if [ ! -f "$D/model.safetensors" ]; then
	echo "making $D (lxmert-base shapes, random weights, 64 questions)..."
	"$BB/mkmodel" --with-heads qa --inputs 64 "$D"
fi
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u '+%Y-%m-%d %H:%M UTC')"

# the records: the six test questions ten times over (tiny), and 16 questions at lxmert-base shapes
$PY "$TOP/tests/py/attnviz.py" photos "$W/photos"
$PY "$TOP/tests/py/attnviz.py" records | "$BIN/lx-encode" -m "$TOP/tests/fixtures/tiny" --attentions > "$W/tiny1.mp"
for i in 1 2 3 4 5 6 7 8 9 10; do cat "$W/tiny1.mp"; done > "$W/tiny.mp"
if [ ! -f "$W/base.mp" ]; then
	$PY - "$D/inputs.mp" 16 <<'PY' | "$BIN/lx-encode" -m "$D" --attentions > "$W/base.mp"
import sys
from lxtest import read_records, write_records
recs = read_records(open(sys.argv[1], "rb"))[:int(sys.argv[2])]
for i, r in enumerate(recs):   # the photo of the first test scene under every record
    r.update(question_id=i, img_id="COCO_train2014_000000132417", img_w=500, img_h=333)
write_records(recs)
PY
fi

bench() { # name records-file options...
	name=$1 in=$2
	shift 2
	n=$($PY -c 'import sys; from lxtest import read_records; print(len(read_records(open(sys.argv[1], "rb"))))' "$in")
	rm -rf "$W/out"
	l=$(load)
	/usr/bin/time -f "%e %U %S" -o "$W/time" "$BIN/lx-attnviz" -o "$W/out" --images "$W/photos" "$@" < "$in"
	bytes=$(du -sb "$W/out" | cut -f1)
	$PY - "$n" "$(cat "$W/time")" "$bytes" "$name" "$l" <<'PY'
import sys
n, (wall, user, sys_), b = int(sys.argv[1]), map(float, sys.argv[2].split()), int(sys.argv[3])
print("%-32s %3d records %6.1f records/s (wall) %6.1f records/s (CPU: user+sys) %6.0f KB/record (load %s)"
      % (sys.argv[4], n, n / wall, n / (user + sys_), b / n / 1e3, sys.argv[5]))
PY
}
bench "tiny, default kinds" "$W/tiny.mp"
bench "tiny, --kinds all --png" "$W/tiny.mp" --kinds all --png
bench "lxmert-base, default kinds" "$W/base.mp"
bench "lxmert-base, --kinds all" "$W/base.mp" --kinds all
bench "lxmert-base, --kinds all --png" "$W/base.mp" --kinds all --png

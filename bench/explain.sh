#!/bin/sh
# bench/explain.sh: lx-explain's seconds per question on a full-size lxmert-base-shaped model with random
# weights (build/bench/out/base, made once by mkmodel, shared with bench/encode.sh), T=20 words, N=36 boxes,
# batch 1, 2 threads, beside lx-encode's own time per question and, in the same run, the same method in
# PyTorch (bench/peer_explain.py on bench/peer.py's LXMERT; skipped when /usr/bin/python3 has no torch).
# Run through `make bench-explain`. Nothing here is a pass/fail test; the load is printed with each row.
set -eu
OUT=${LX_BENCH_OUT:-build/bench/out}
BB=${LX_BENCH_BIN:-build/bench/bin}
PY=/usr/bin/python3
HERE=$(dirname "$0")
REPS=${BENCH_EXPLAIN_REPS:-10}
D=$OUT/base
mkdir -p "$OUT"
if [ ! -f "$D/model.safetensors" ]; then
	echo "making $D (lxmert-base shapes, random weights, 64 questions)..."
	"$BB/mkmodel" --with-heads qa --inputs 64 "$D"
fi
cat "$D/model.safetensors" > /dev/null
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "load before lx: $(load)"
/usr/bin/time -f "peak RSS %M KB" "$BB/bench_explain" "$D" "$REPS" 20 36 2 | tee "$OUT/explain.txt"
lx=$(sed -n 's/^lx-explain *\([0-9.]*\) s\/question.*/\1/p' "$OUT/explain.txt")
if $PY -c 'import torch' 2>/dev/null; then
	echo "load before PyTorch: $(load)"
	$PY "$HERE/peer_explain.py" bench "$D" --threads 2 --T 20 --N 36 --n "$REPS" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
s, lx = r["s_per_question"], float(sys.argv[1])
print("%s %.4f s/question (%s threads; lx-explain %.2fx faster)" % (r["peer"], s, r["threads"], s / lx))' "$lx"
	echo "load after: $(load)"
else
	echo "(the PyTorch peer is skipped: $PY has no torch; Debian's python3-torch provides it, make bench-deps)"
fi

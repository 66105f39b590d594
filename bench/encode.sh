#!/bin/sh
# bench/encode.sh: lx-encode's speed and memory on a full-size lxmert-base-shaped model with random weights
# (made once in build/bench/out/base by mkmodel), T=20 words and N=36 boxes per question.
# Run through `make bench-encode` (or `make bench`). Prints a table; nothing here is a pass/fail test.
set -eu
B=${LX_BIN:-bin}
OUT=${LX_BENCH_OUT:-build/bench/out}
BB=${LX_BENCH_BIN:-build/bench/bin}
D=$OUT/base
mkdir -p "$OUT"
if [ ! -f "$D/model.safetensors" ]; then
	echo "making $D (lxmert-base shapes, random weights, 64 questions)..."
	"$BB/mkmodel" --with-heads qa --inputs 64 "$D"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BB/bench_encode" "$D"
# the whole tool: open time with the file in the page cache, and peak RSS at batch 32
cat "$D/model.safetensors" > /dev/null
t0=$(date +%s.%N)
"$B/lx-encode" -m "$D" < /dev/null
t1=$(date +%s.%N)
echo "lx-encode on an empty stream (open the model, read nothing): $(echo "($t1 - $t0) * 1000" | bc -l | cut -c1-5) ms"
for b in 1 32; do
	/usr/bin/time -f "%e %M" -o "$OUT/time" "$B/lx-encode" -m "$D" --batch $b < "$D/inputs.mp" > /dev/null
	read -r secs kb < "$OUT/time"
	echo "lx-encode --batch $b, 64 questions: $secs s, $(echo "64 / $secs" | bc -l | cut -c1-5) questions/s, peak RSS $((kb / 1024)) MB"
done

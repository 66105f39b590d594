#!/bin/sh
# bench/train.sh: training speed on a full-size lxmert-base-shaped model with random weights (build/bench/out/base,
# made once by mkmodel, shared with bench/encode.sh), T=20 words, N=36 boxes, batch 32, the authors'
# VQA loss. Full-size steps take seconds each here: a handful is timed (BENCH_TRAIN_STEPS, default 3).
# Run through `make bench-train` (or `make bench`). Nothing here is a pass/fail test.
set -eu
OUT=${LX_BENCH_OUT:-build/bench/out}
BB=${LX_BENCH_BIN:-build/bench/bin}
D=$OUT/base
mkdir -p "$OUT"
if [ ! -f "$D/model.safetensors" ]; then
	echo "making $D (lxmert-base shapes, random weights, 64 questions)..."
	"$BB/mkmodel" --with-heads qa --inputs 64 "$D"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "peak RSS %M KB" "$BB/bench_train" "$D" "${BENCH_TRAIN_STEPS:-3}" 32 20 36

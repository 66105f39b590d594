#!/bin/sh
# bench/explain.sh: lx-explain's seconds per question on a full-size lxmert-base-shaped model with random
# weights (build/bench/out/base, made once by mkmodel, shared with bench/encode.sh), T=20 words, N=36 boxes,
# batch 1, 2 threads, beside lx-encode's own time per question. Run through `make bench-explain`.
# Nothing here is a pass/fail test.
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
/usr/bin/time -f "peak RSS %M KB" "$BB/bench_explain" "$D" "${BENCH_EXPLAIN_REPS:-10}" 20 36 2

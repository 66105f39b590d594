#!/bin/sh
# bench/encode.sh: lx-encode beside a PyTorch LXMERT (bench/peer.py) on a full-size lxmert-base-shaped model
# with random weights (made once in build/bench/out/base by mkmodel), T=20 words and N=36 boxes a question,
# the same threads (LX_BENCH_THREADS, default every core) and the same run. Then bench_encode's breakdown by
# batch size and thread count. Run through `make bench-encode` (or `make bench`); nothing here is a pass/fail
# test. The machine's load is printed with each row: numbers taken on a busy machine are not comparable.
set -eu
B=${LX_BIN:-bin}
OUT=${LX_BENCH_OUT:-build/bench/out}
BB=${LX_BENCH_BIN:-build/bench/bin}
PY=/usr/bin/python3
TH=${LX_BENCH_THREADS:-$(nproc)}
HERE=$(dirname "$0")
D=$OUT/base
mkdir -p "$OUT"
if [ ! -f "$D/model.safetensors" ]; then
	echo "making $D (lxmert-base shapes, random weights, 64 questions)..."
	"$BB/mkmodel" --with-heads qa --inputs 64 "$D"
fi
cat "$D/model.safetensors" > /dev/null
load() { cut -d' ' -f1 /proc/loadavg; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "lxmert-base shapes (hidden 768, 12 heads, 9/5/5 layers), T=20, N=36, $TH threads; 64 questions at batch 32 and at batch 1"
printf '%-28s %12s %12s %14s %10s %6s\n' "" "q/s batch 32" "ms batch 1" "peak RSS (MB)" "open (s)" "load"

# One row of lx-encode, the whole tool: label, then LX_MATMUL's value, then lx-encode's options.
row() {
	label=$1 be=$2
	shift 2
	t0=$(date +%s.%N)
	LX_MATMUL=$be "$B/lx-encode" -m "$D" --threads "$TH" "$@" < /dev/null
	t1=$(date +%s.%N)
	l=$(load)
	LX_MATMUL=$be /usr/bin/time -f "%e %M" -o "$OUT/time32" "$B/lx-encode" -m "$D" --threads "$TH" --batch 32 "$@" \
		< "$D/inputs.mp" > /dev/null
	LX_MATMUL=$be /usr/bin/time -f "%e %M" -o "$OUT/time1" "$B/lx-encode" -m "$D" --threads "$TH" --batch 1 "$@" \
		< "$D/inputs.mp" > /dev/null
	read -r s32 kb32 < "$OUT/time32"
	read -r s1 kb1 < "$OUT/time1"
	printf '%-28s %12.2f %12.1f %14d %10.3f %6s\n' "$label" "$(echo "64 / $s32" | bc -l)" \
		"$(echo "$s1 * 1000 / 64" | bc -l)" $(( (kb32 > kb1 ? kb32 : kb1) / 1024 )) "$(echo "$t1 - $t0" | bc -l)" "$l"
}

# on each backend built in: LX_MATMUL names it (bench_encode prints which ran); int8 and bfloat16 on oneDNN
for be in dnnl openblas; do
	got=$(LX_MATMUL=$be "$BB/bench_encode" --backend)
	[ "$got" = "$be" ] || continue
	row "lx-encode fp32 ($be)" $be
	[ $be = dnnl ] || continue
	row "lx-encode int8 ($be)" $be --int8
	if grep -qw avx512_bf16 /proc/cpuinfo; then
		row "lx-encode bf16 ($be)" $be --bf16
	else
		echo "(lx-encode bf16 skipped: this CPU has no avx512_bf16)"
	fi
done

# the peer: plain PyTorch (Debian's python3-torch), fp32 and dynamic int8
if $PY -c 'import torch' 2>/dev/null; then
	for q in "" --int8; do
		l=$(load)
		$PY "$HERE/peer.py" bench "$D" --threads "$TH" $q | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-28s %12.2f %12.1f %14d %10.3f %6s" % (r["peer"], r["qps_b32"], r["ms_b1"], r["peak_rss_mb"], r["open_s"], sys.argv[1]))' "$l"
	done
else
	echo "(the PyTorch peer is skipped: $PY has no torch; Debian's python3-torch provides it, make bench-deps)"
fi
echo
"$BB/bench_encode" "$D"

#!/bin/sh
# bench/encode.sh: lx-encode beside a PyTorch LXMERT (bench/peer.py) on a full-size lxmert-base-shaped model
# with random weights (made once in build/bench/out/base by mkmodel), T=20 words and N=36 boxes a question,
# the same threads (LX_BENCH_THREADS, default every core) and the same run. Then bench_encode's breakdown by
# batch size and thread count. Run through `make bench-encode` (or `make bench`); nothing here is a pass/fail
# test. The machine's load is printed with each row: numbers taken on a busy machine are not comparable.
# Rates exclude the start (lx: open, packing, first question; the peer: open, warm-up): see row().
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
# The int8 model as lx-convert --dtype int8 writes it (from a pytorch_model.bin of the same weights, which
# needs torch to write); without torch, --int8 quantizes the float32 model at open instead.
Q8=$OUT/base-int8
if [ ! -f "$Q8/model.safetensors" ] && $PY -c 'import torch' 2>/dev/null; then
	echo "making $Q8 (lx-convert --dtype int8 of the same weights)..."
	$PY -c '
import sys, torch
sys.path.insert(0, sys.argv[1])
from peer import read_safetensors
torch.save(read_safetensors(sys.argv[2] + "/model.safetensors", lambda n: True), sys.argv[3])' "$HERE" "$D" "$OUT/base.bin"
	"$B/lx-convert" -q -f --dtype int8 --config "$D/config.json" "$OUT/base.bin" "$Q8"
	rm -f "$OUT/base.bin"
fi

load() { cut -d' ' -f1 /proc/loadavg; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "lxmert-base shapes (hidden 768, 12 heads, 9/5/5 layers), T=20, N=36, $TH threads; 128 questions (the 64 twice) at batch 32 and at batch 1"
printf '%-28s %12s %12s %14s %10s %6s\n' "" "q/s batch 32" "ms batch 1" "peak RSS (MB)" "start (s)" "load"

# One row of lx-encode, the whole tool: label, model directory, LX_MATMUL's value, then lx-encode's options.
# The start (open, weights packed, one question) is timed on one record; the rates are over the 127 questions
# after it (128 run, less the one-record run's time), as the peer's exclude its open and warm-up.
row() {
	label=$1 dir=$2 be=$3
	shift 3
	l=$(load)
	for run in 1:1 32:128 1:128; do
		b=${run%:*} n=${run#*:}
		LX_MATMUL=$be /usr/bin/time -f "%e %M" -o "$OUT/time$b-$n" "$B/lx-encode" -m "$dir" --threads "$TH" \
			--batch "$b" "$@" < "$OUT/in$n.mp" > /dev/null
	done
	read -r s0 kb0 < "$OUT/time1-1"
	read -r s32 kb32 < "$OUT/time32-128"
	read -r s1 kb1 < "$OUT/time1-128"
	kb=$((kb32 > kb1 ? kb32 : kb1))
	printf '%-28s %12.2f %12.1f %14d %10.3f %6s\n' "$label" "$(echo "127 / ($s32 - $s0)" | bc -l)" \
		"$(echo "($s1 - $s0) * 1000 / 127" | bc -l)" $((kb / 1024)) "$s0" "$l"
}
cat "$D/inputs.mp" "$D/inputs.mp" > "$OUT/in128.mp"
$PY - "$D/inputs.mp" "$OUT/in1.mp" <<'PYEOF'
import sys
import msgpack
u = msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False, strict_map_key=False)
open(sys.argv[2], "wb").write(msgpack.packb(next(u), use_bin_type=True))
PYEOF

# on each backend built in: LX_MATMUL names it (bench_encode prints which ran); int8 and bfloat16 on oneDNN
for be in dnnl openblas; do
	got=$(LX_MATMUL=$be "$BB/bench_encode" --backend)
	[ "$got" = "$be" ] || continue
	row "lx-encode fp32 ($be)" "$D" $be
	[ $be = dnnl ] || continue
	if [ -f "$Q8/model.safetensors" ]; then
		row "lx-encode int8 model ($be)" "$Q8" $be
	fi
	row "lx-encode --int8 ($be)" "$D" $be --int8
	if grep -qw avx512_bf16 /proc/cpuinfo; then
		row "lx-encode bf16 ($be)" "$D" $be --bf16
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

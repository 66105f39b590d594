#!/bin/sh
# lx-detect's speed at the real detector's shapes (ResNet-101 C4, 600/1000 pixels, 6000/300 proposals, 1600
# classes, 400 attributes, 36 boxes; random weights), in seconds per photo and GFLOP/s, beside the LXMERT demo's
# own PyTorch code on the same model and photos when a local copy of it is named.
# Environment: FRCNN_MODEL (a detector directory with config.yaml and model.safetensors, e.g. from the shared
# tools' gen_frcnn.py --preset full; by default bench/mkfrcnn.py makes one in LX_BENCH_OUT/frcnn-full),
# FRCNN_DEMO (the demo's modeling_frcnn.py, processing_image.py, utils.py) and FRCNN_PEER (the script that times
# it, the shared tools' bench_frcnn.py, which needs pytorch_model.bin in the model directory): without both the
# peer is skipped with a note; FRCNN_GEN (the shared tools' gen_frcnn.py) adds a comparison with the demo's own
# detections at the real shapes. IMAGES (the four photos of tests/fixtures/frcnn-tiny by default).
# The machine may be shared: the load average is printed with every figure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
py=${LX_PYTHON:-/usr/bin/python3}
out=${LX_BENCH_OUT:-$top/build/bench/out}
bin=${LX_BENCH_BIN:-$top/build/bench/bin}
tools=${LX_BIN:-$top/build/bin}
model=${FRCNN_MODEL:-$out/frcnn-full}
images=${IMAGES:-$(ls "$top"/tests/fixtures/frcnn-tiny/images/*)}
[ -x /usr/bin/time ] || { echo "bench/detect.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
if [ ! -s "$model/model.safetensors" ]; then
	echo "making a random detector at the real shapes in $model ..." >&2
	"$py" "$top/bench/mkfrcnn.py" make "$model"
fi
load() { cut -d' ' -f1-3 /proc/loadavg; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

echo "detector: $model; $(nproc) cores"
# one run of bench_detect per precision: float32 (the default, the golden one), res5 in bfloat16 (--bf16, where
# the CPU has avx512_bf16) and in int8 (--int8, where it has avx512_vnni); "cpu" is the process's CPU seconds a
# photo, which moves less with the load than the wall clock
gflop=0 n=0
for prec in fp32 bf16 int8; do
	flag=
	if [ $prec != fp32 ]; then
		need=avx512_bf16
		[ $prec = bf16 ] || need=avx512_vnni
		if ! grep -qw $need /proc/cpuinfo; then
			echo "lx --$prec: skipped (this CPU has no $need)"
			continue
		fi
		flag=--$prec
	fi
	echo "lx $prec (bench_detect${flag:+ $flag}, after one warm-up photo; load average before: $(load)):"
	/usr/bin/time -v "$bin/bench_detect" $flag "$model" $images > "$out/detect-$prec.txt" 2> "$out/detect-$prec.time" ||
		{ echo "  failed:"; grep -v '^	' "$out/detect-$prec.time" | tail -3; continue; }
	grep -E '^(load|warm-up)' "$out/detect-$prec.time" | sed 's/^/  /'
	total=0 cpu=0 gflop=0 n=0
	while read -r f h w rh rw p k s c; do
		g=$("$py" "$top/bench/mkfrcnn.py" flops "$model" "$h" "$w" "$p")
		printf '  %s: %dx%d -> %dx%d, %d proposals, %d boxes: %s s (cpu %s s), %s GFLOP, %s GFLOP/s (load %s)\n' \
			"$(basename "$f")" "$w" "$h" "$rw" "$rh" "$p" "$k" "$s" "$c" "$g" "$(calc "$g / $s" 0)" "$(load)"
		total=$(calc "$total + $s" 3) cpu=$(calc "$cpu + $c" 3) gflop=$(calc "$gflop + $g" 1) n=$((n + 1))
	done < "$out/detect-$prec.txt"
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/detect-$prec.time")
	s=$(calc "$total / $n" 3)
	printf '  lx %s: %s s per photo (cpu %s s), %s GFLOP/s, peak RSS %d MB (load %s)\n' "$prec" "$s" \
		"$(calc "$cpu / $n" 3)" "$(calc "$gflop / $total" 0)" "$((rss / 1024))" "$(load)"
	eval "lx_$prec=$s"
	[ $prec != fp32 ] || gf32=$gflop n32=$n
done

# what the lower precisions cost: each photo through the float32 detector and the other, compared stage by
# stage (bench/detect_precision.c says what each figure is)
for prec in bf16 int8; do
	eval "s=\${lx_$prec:-}"
	[ -n "$s" ] || continue
	echo "lx --$prec against float32 (detect_precision):"
	"$bin/detect_precision" --$prec "$model" $images | sed 's/^/  /' || echo "  failed"
done

if [ -z "${FRCNN_DEMO:-}" ] || [ -z "${FRCNN_PEER:-}" ]; then
	echo "the demo's PyTorch detector: skipped (set FRCNN_DEMO to a local copy of its files and FRCNN_PEER to bench_frcnn.py)"
	exit 0
fi
if [ ! -s "$model/pytorch_model.bin" ]; then
	echo "the demo's PyTorch detector: skipped ($model has no pytorch_model.bin)"
	exit 0
fi
echo "the demo's PyTorch code (load average before: $(load)):"
peer=$("$py" "$FRCNN_PEER" --demo "$FRCNN_DEMO" --model "$model" $images 2> "$out/peer.err") ||
	{ echo "  failed:"; tail -3 "$out/peer.err"; exit 1; }
ps=$(echo "$peer" | "$py" -c 'import json,sys; d=json.load(sys.stdin); print("%.3f %d" % (d["s_per_image"], d["peak_rss_mb"]))')
printf '  demo: %s s per photo, %s GFLOP/s, peak RSS %s MB (load %s)\n' "${ps% *}" \
	"$(calc "${gf32:-$gflop} / ${n32:-$n} / ${ps% *}" 0)" "${ps#* }" "$(load)"
for prec in fp32 bf16 int8; do
	eval "s=\${lx_$prec:-}"
	[ -z "$s" ] || printf 'lx %s is %sx the demo'"'"'s speed\n' "$prec" "$(calc "${ps% *} / $s" 1)"
done

# The same answers at the real shapes: with FRCNN_GEN naming the shared tools' gen_frcnn.py, a random detector
# at the real shapes (seed 3) and the demo's own outputs on the photos are made once in LX_BENCH_OUT/frcnn-golden,
# and lx-detect's records are compared with them by matching detections (same class, box within 1 pixel,
# features), as near ties at these shapes can reorder rows (tests/py/detect_check.py match).
[ -n "${FRCNN_GEN:-}" ] || { echo "the demo's detections at the real shapes: skipped (set FRCNN_GEN to gen_frcnn.py)"; exit 0; }
gold=$out/frcnn-golden
if [ ! -s "$gold/golden.json" ] || [ "$(cat "$gold/images" 2>/dev/null)" != "$images" ]; then
	echo "making the demo's detections at the real shapes in $gold ..." >&2
	rm -f "$gold/images"
	"$py" "$FRCNN_GEN" --demo "$FRCNN_DEMO" --preset full --seed 3 --out "$gold" $images > "$out/gen.log" 2>&1 ||
		{ echo "  failed:"; tail -3 "$out/gen.log"; exit 1; }
	echo "$images" > "$gold/images"  # the photos the goldens are of, in their order
fi
for prec in fp32 bf16 int8; do
	flag=
	[ $prec = fp32 ] || flag=--$prec
	eval "s=\${lx_$prec:-}"
	[ -n "$s" ] || continue
	"$tools/lx-detect" -m "$gold" $flag $images > "$out/golden-$prec.mp"
	printf 'lx %s against the demo at the real shapes: ' $prec
	"$py" "$top/tests/py/detect_check.py" match "$out/golden-$prec.mp" "$gold" 1 1 1 0 2>&1 | head -1
done

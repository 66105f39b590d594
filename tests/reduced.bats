#!/usr/bin/env bats
# Reduced precision: lx-encode --int8 / --bf16, int8 models written by lx-convert --dtype int8, and the
# tools that refuse them. The bounds are those measured on the fixtures (README, "Performance": int8 with
# activations quantized per row, max |diff| from the float32 golden outputs, tiny 0.088 and micro 0.065;
# per tensor 0.106 and 0.085), with some margin: a bound is not a tolerance of float32 arithmetic.
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	GOLD="$PY $TOP/tests/py/golden.py"
	OUTS="language_output vision_output pooled_output"
}

@test "--int8 outputs stay within the measured bounds of the golden ones (0.12; per tensor 0.15), and differ from float32" {
	for f in tiny micro; do
		$GOLD inputs "$FIX/$f/golden.safetensors" > "$T/in.mp"
		"$BIN/lx-encode" -m "$FIX/$f" --int8 < "$T/in.mp" > "$T/row.mp"
		LX_INT8_ACT=tensor "$BIN/lx-encode" -m "$FIX/$f" --int8 < "$T/in.mp" > "$T/tensor.mp"
		LX_TOL=0.12 $GOLD compare "$FIX/$f/golden.safetensors" $OUTS < "$T/row.mp"
		LX_TOL=0.15 $GOLD compare "$FIX/$f/golden.safetensors" $OUTS < "$T/tensor.mp"
		# int8 really ran: float32 would meet 1e-3
		! LX_TOL=1e-3 $GOLD compare "$FIX/$f/golden.safetensors" language_output < "$T/row.mp" 2>/dev/null
		! cmp -s "$T/row.mp" "$T/tensor.mp"
	done
}

@test "float32 still meets the golden tolerance when --int8 is not given" {
	$GOLD inputs "$FIX/micro/golden.safetensors" > "$T/in.mp"
	"$BIN/lx-encode" -m "$FIX/micro" < "$T/in.mp" > "$T/out.mp"
	$GOLD compare "$FIX/micro/golden.safetensors" $OUTS < "$T/out.mp"
}

@test "lx-convert --dtype int8 stores each linear weight as I8 [out, in] and .scale F32 [out], max |w| / 127" {
	run "$BIN/lx-convert" -q --dtype int8 --num-attention-heads 2 "$FIX/micro/pytorch_model.bin" "$T/q"
	[ "$status" -eq 0 ]
	$PY - "$FIX/micro/model.safetensors" "$T/q/model.safetensors" <<'PY'
import sys
import numpy as np
from lxtest import read_safetensors
ref, got = read_safetensors(sys.argv[1]), read_safetensors(sys.argv[2])
n = 0
for name, w in ref.items():
    linear = w.ndim == 2 and name.endswith(".weight") and name.startswith(("lxmert.encoder.", "lxmert.pooler."))
    if not linear:
        assert got[name].dtype == w.dtype and np.array_equal(got[name], w), name
        continue
    q, s = got[name], got[name + ".scale"]
    assert q.dtype == np.int8 and q.shape == w.shape and s.dtype == np.float32 and s.shape == (w.shape[0],), name
    want = np.abs(w).max(axis=1) / np.float32(127)
    assert np.allclose(s, want, rtol=1e-6), name
    # round to nearest: within half a step of w / scale (ties may go either way)
    assert np.all(np.abs(q - w / s[:, None]) <= 0.5 + 1e-4), name
    n += 1
assert set(got) == set(ref) | {k + ".scale" for k in ref if k + ".scale" in got}, sorted(set(got) ^ set(ref))
assert n > 20, n
PY
}

@test "an int8 model directory computes in int8 as stored: the bytes of --int8 on the float32 model" {
	"$BIN/lx-convert" -q --dtype int8 --num-attention-heads 2 "$FIX/micro/pytorch_model.bin" "$T/q"
	$GOLD inputs "$FIX/micro/golden.safetensors" > "$T/in.mp"
	"$BIN/lx-encode" -m "$T/q" < "$T/in.mp" > "$T/stored.mp"
	"$BIN/lx-encode" -m "$FIX/micro" --int8 < "$T/in.mp" > "$T/open.mp"
	cmp "$T/stored.mp" "$T/open.mp"
}

@test "lx-train refuses an int8 model with status 3" {
	"$BIN/lx-convert" -q --dtype int8 --num-attention-heads 2 "$FIX/micro/pytorch_model.bin" "$T/q"
	run "$BIN/lx-train" -m "$T/q" -o "$T/out" /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-train: $T/q: the model is stored in int8: lx-train trains float32 models only" ]
	[ ! -e "$T/out" ]
}

@test "--bf16 on a stored int8 model is refused with status 3" {
	"$BIN/lx-convert" -q --dtype int8 --num-attention-heads 2 "$FIX/micro/pytorch_model.bin" "$T/q"
	run "$BIN/lx-encode" -m "$T/q" --bf16 < /dev/null
	[ "$status" -eq 3 ]
	[[ "$output" == "lx-encode: $T/q/model.safetensors: tensor "*" is stored in int8: the model computes in int8 only" ]]
}

@test "--bf16 outputs stay within the measured bounds of the golden ones (0.05; measured 0.027 tiny, 0.019 micro)" {
	grep -qw avx512_bf16 /proc/cpuinfo || skip "this CPU has no avx512_bf16"
	ldd "$BIN/lx-encode" | grep -q libdnnl || skip "built without oneDNN"
	for f in tiny micro; do
		$GOLD inputs "$FIX/$f/golden.safetensors" > "$T/in.mp"
		"$BIN/lx-encode" -m "$FIX/$f" --bf16 < "$T/in.mp" > "$T/out.mp"
		LX_TOL=0.05 $GOLD compare "$FIX/$f/golden.safetensors" $OUTS < "$T/out.mp"
		! LX_TOL=1e-3 $GOLD compare "$FIX/$f/golden.safetensors" language_output < "$T/out.mp" 2>/dev/null
	done
}

@test "--bf16 without oneDNN's bfloat16 products is refused with status 3, naming what it needs" {
	$GOLD inputs "$FIX/micro/golden.safetensors" 0 > "$T/in.mp"
	LX_MATMUL=openblas run "$BIN/lx-encode" -m "$FIX/micro" --bf16 < "$T/in.mp"
	[ "$status" -eq 3 ]
	[[ "$output" == *"bfloat16 needs oneDNN (built in and chosen: LX_MATMUL) on a CPU with avx512_bf16" ]]
}

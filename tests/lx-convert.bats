#!/usr/bin/env bats
# lx-convert: PyTorch checkpoints (zip, legacy, the authors' names) to model directories, and refusals.
load helpers

setup() {
	M="$FIX/micro"
	T="$BATS_TEST_TMPDIR"
	H="$PY $TOP/tests/py/ckpt_helper.py"
}

# No file or directory of the test's scratch space other than those named is left behind.
only_left() {
	run ls -A "$T"
	[ "$output" = "$*" ]
}

@test "converts pytorch_model.bin (zip layout) to the bytes of model.safetensors" {
	run "$BIN/lx-convert" -q --num-attention-heads 2 "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 0 ]
	$H same "$M/model.safetensors" "$T/out/model.safetensors"
	cmp "$T/out/model.safetensors" "$M/model.safetensors"
}

@test "converts pytorch_model_legacy.bin (pre-1.6 layout) to the bytes of model.safetensors" {
	run "$BIN/lx-convert" -q --num-attention-heads 2 "$M/pytorch_model_legacy.bin" "$T/out"
	[ "$status" -eq 0 ]
	$H same "$M/model.safetensors" "$T/out/model.safetensors"
	cmp "$T/out/model.safetensors" "$M/model.safetensors"
}

@test "converts the authors' lxrt_original.pth (module.bert.* names) to the bytes of model.safetensors" {
	run "$BIN/lx-convert" -q --num-attention-heads 2 "$M/lxrt_original.pth" "$T/out"
	[ "$status" -eq 0 ]
	$H same "$M/model.safetensors" "$T/out/model.safetensors"
	cmp "$T/out/model.safetensors" "$M/model.safetensors"
	run ls "$T/out"
	[ "$output" = "$(printf 'config.json\nmodel.safetensors')" ]
}

@test "infers from lxrt_original.pth the config of micro/config.json and says what it inferred" {
	run "$BIN/lx-convert" --num-attention-heads 2 "$M/lxrt_original.pth" "$T/out"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "lx-convert: $M/lxrt_original.pth: no config.json: inferred from the tensors: vocab_size 99, hidden_size 16, intermediate_size 24, layers language 1 vision 1 cross_encoder 1, max_position_embeddings 32, type_vocab_size 2, visual_feat_dim 8, visual_pos_dim 4, num_qa_labels 5, num_object_labels 7, num_attr_labels 3; num_attention_heads 2 (given); hidden_act gelu, layer_norm_eps 1e-12 (LXMERT's)" ]
	[ "${lines[1]}" = "lx-convert: $T/out: 112 tensors, 13500 parameters, 54000 bytes of data" ]
	$PY -c 'import json, sys; a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); sys.exit(a != b)' \
		"$M/config.json" "$T/out/config.json"
	cmp "$T/out/config.json" "$M/config.json"
}

@test "refuses to guess num_attention_heads when hidden_size is not a multiple of 64" {
	run "$BIN/lx-convert" "$M/lxrt_original.pth" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $M/lxrt_original.pth: num_attention_heads cannot be read from the weights, and hidden_size 16 is not a multiple of BERT's head size 64: give it with --num-attention-heads N" ]
	only_left ""
}

@test "converts a fine-tuned snapshot (lxrt_encoder.model.bert.*, logit_fc.*) of either layout" {
	for layout in zip legacy; do
		$H make finetuned "$T/BEST.pth" $layout
		run "$BIN/lx-convert" -q --num-attention-heads 2 "$T/BEST.pth" "$T/out"
		[ "$status" -eq 0 ]
		[ "$output" = "lx-convert: $T/BEST.pth: no config.json: inferred from the tensors: vocab_size 99, hidden_size 16, intermediate_size 24, layers language 1 vision 1 cross_encoder 1, max_position_embeddings 32, type_vocab_size 2, visual_feat_dim 8, visual_pos_dim 4, num_qa_labels 5; num_object_labels 1600, num_attr_labels 400 (no object head: the defaults); num_attention_heads 2 (given); hidden_act gelu, layer_norm_eps 1e-12 (LXMERT's)" ]
		run $PY -c 'import json, sys; c = json.load(open(sys.argv[1])); print(c["architectures"][0], c["task_qa"], c["task_mask_lm"], c["num_qa_labels"])' "$T/out/config.json"
		[ "$output" = "LxmertForQuestionAnswering True False 5" ]
		# the same tensors as the micro model, without the pretraining heads
		run $PY -c '
import sys; sys.path.insert(0, sys.argv[3]); import ckpt_helper as h
a, _ = h.read_st(sys.argv[1]); b, _ = h.read_st(sys.argv[2])
want = {k: v for k, v in a.items() if k.startswith(("lxmert.", "answer_head."))}
sys.exit(want != b)' "$M/model.safetensors" "$T/out/model.safetensors" "$TOP/tests/py"
		[ "$status" -eq 0 ]
		rm -rf "$T/out" "$T/BEST.pth"
	done
}

@test "converts a Hugging Face directory, copying its config.json and vocab.txt" {
	mkdir "$T/hub"
	cp "$M/pytorch_model.bin" "$M/config.json" "$T/hub/"
	printf '[PAD]\n[UNK]\nhello\n' > "$T/hub/vocab.txt"
	run "$BIN/lx-convert" "$T/hub" "$T/out"
	[ "$status" -eq 0 ]
	[ "$output" = "lx-convert: $T/out: 112 tensors, 13500 parameters, 54000 bytes of data" ]
	cmp "$T/out/model.safetensors" "$M/model.safetensors"
	cmp "$T/out/config.json" "$M/config.json"
	cmp "$T/out/vocab.txt" "$T/hub/vocab.txt"
}

@test "--vocab and --config copy the files given" {
	printf '[PAD]\nword\n' > "$T/v.txt"
	run "$BIN/lx-convert" -q --vocab "$T/v.txt" --config "$M/config.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	cmp "$T/out/vocab.txt" "$T/v.txt"
	cmp "$T/out/config.json" "$M/config.json"
}

@test "--dtype f16 writes numpy's float16 conversion of every tensor" {
	run "$BIN/lx-convert" --dtype f16 --config "$M/config.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 0 ]
	[ "$output" = "lx-convert: $T/out: 112 tensors, 13500 parameters, 27000 bytes of data" ]
	$H cast "$M/model.safetensors" "$T/out/model.safetensors" f16
}

@test "--dtype bf16 rounds every float32 to the nearest bfloat16, ties to even" {
	run "$BIN/lx-convert" -q -t bf16 --config "$M/config.json" "$M/pytorch_model_legacy.bin" "$T/out"
	[ "$status" -eq 0 ]
	$H cast "$M/model.safetensors" "$T/out/model.safetensors" bf16
}

@test "reads views: offsets, strides (transposed, every other element), 0-d tensors, float16 storages" {
	for layout in zip legacy; do
		$H make views "$T/v.bin" $layout
		run "$BIN/lx-convert" -q --config "$M/config.json" "$T/v.bin" "$T/out"
		[ "$status" -eq 0 ]
		$H check-views "$T/out/model.safetensors"
		rm -rf "$T/out"
	done
}

@test "--list prints name, dtype and shape of every tensor, in the file's order" {
	for f in pytorch_model.bin pytorch_model_legacy.bin lxrt_original.pth; do
		"$BIN/lx-convert" --list "$M/$f" > "$T/got"
		$H list "$M/$f" > "$T/want"
		cmp "$T/got" "$T/want"
	done
	run "$BIN/lx-convert" --list "$M/lxrt_original.pth"
	[ "${lines[0]}" = "$(printf 'module.bert.embeddings.word_embeddings.weight\tF32\t[99, 16]')" ]
	[ "${#lines[@]}" -eq 113 ]
}

@test "refuses a pickle that calls os.system, before running or writing anything" {
	for layout in zip legacy; do
		$H make system "$T/evil.bin" $layout
		run "$BIN/lx-convert" "$T/evil.bin" "$T/out"
		[ "$status" -eq 3 ]
		where=$([ $layout = zip ] && echo archive/data.pkl || echo legacy object)
		[ "$output" = "lx-convert: $T/evil.bin ($where): pickle offset 41: global posix.system is not allowed (a state dict needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage); refusing the file" ]
		run "$BIN/lx-convert" --list "$T/evil.bin"
		[ "$status" -eq 3 ]
		only_left "evil.bin"
		rm "$T/evil.bin"
	done
}

@test "refuses a pickle that calls eval, with protocol 2 (GLOBAL) and 4 (STACK_GLOBAL)" {
	$H make eval "$T/evil.bin" zip
	run "$BIN/lx-convert" "$T/evil.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/evil.bin (archive/data.pkl): pickle offset 41: global __builtin__.eval is not allowed (a state dict needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage); refusing the file" ]
	$PY - "$T/evil4.bin" <<-'PYEOF'
	import pickle, sys, zipfile
	class Evil:
	    def __reduce__(self):
	        return (eval, ("open(%r, 'w')" % (sys.argv[1] + ".ran"),))
	with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
	    z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=4))
	PYEOF
	run "$BIN/lx-convert" "$T/evil4.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/evil4.bin (archive/data.pkl): pickle offset 35: global builtins.eval is not allowed (a state dict needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage); refusing the file" ]
	only_left "$(printf 'evil.bin\nevil4.bin')"
}

@test "refuses a truncated zip archive" {
	head -c 60000 "$M/pytorch_model.bin" > "$T/cut.bin"
	run "$BIN/lx-convert" --config "$M/config.json" "$T/cut.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/cut.bin: no zip end-of-central-directory record: the file is truncated or not a zip archive" ]
	only_left "cut.bin"
}

@test "refuses a truncated legacy checkpoint" {
	head -c 60000 "$M/pytorch_model_legacy.bin" > "$T/cut.bin"
	run "$BIN/lx-convert" --list "$T/cut.bin"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/cut.bin: storage 596007888: 384 elements run past the end of the file: truncated?" ]
}

@test "refuses a damaged storage (CRC-32 mismatch)" {
	cp "$M/pytorch_model.bin" "$T/bad.bin"
	printf 'X' | dd of="$T/bad.bin" bs=1 seek=30000 conv=notrunc status=none
	run "$BIN/lx-convert" --list "$T/bad.bin"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/bad.bin: zip entry pytorch_model/data/1: CRC-32 mismatch: the file is damaged" ]
}

@test "refuses a storage shorter than its tensor, naming the tensor" {
	for layout in zip legacy; do
		$H make short "$T/s.bin" $layout
		run "$BIN/lx-convert" --config "$M/config.json" "$T/s.bin" "$T/out"
		[ "$status" -eq 3 ]
		[ "$output" = "lx-convert: $T/s.bin: tensor lxmert.x: shape [3, 4], strides [4, 1] at offset 0 need element 11 of storage 0, which holds 10: the storage is shorter than its tensor" ]
		only_left "s.bin"
		rm "$T/s.bin"
	done
}

@test "refuses a broadcast view, whose copy would repeat elements of its storage" {
	$H make broadcast "$T/b.bin" zip
	run "$BIN/lx-convert" --config "$M/config.json" "$T/b.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/b.bin: tensor lxmert.b: shape [3, 4], strides [0, 1] repeat elements of storage 0 (broadcast or overlapping views are not supported)" ]
	only_left "b.bin"
}

@test "refuses an unknown dtype, naming the tensor" {
	for layout in zip legacy; do
		$H make complex "$T/c.bin" $layout
		run "$BIN/lx-convert" --config "$M/config.json" "$T/c.bin" "$T/out"
		[ "$status" -eq 3 ]
		[ "$output" = "lx-convert: $T/c.bin: tensor lxmert.z: unknown dtype: storage type torch.ComplexFloatStorage (supported: Float, Half, BFloat16, Double, Long, Int, Short, Char, Byte, Bool)" ]
		only_left "c.bin"
		rm "$T/c.bin"
	done
}

@test "refuses two tensors that map to one name" {
	$H make twice "$T/t.bin" legacy
	run "$BIN/lx-convert" --config "$M/config.json" "$T/t.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/t.bin: tensor lxmert.pooler.dense.bias: two tensors of the checkpoint map to this name (lxmert.pooler.dense.bias and bert.pooler.dense.bias)" ]
	only_left "t.bin"
}

@test "refuses a file that is not a checkpoint, and a missing one" {
	run "$BIN/lx-convert" --list "$M/config.json"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $M/config.json: not a PyTorch checkpoint (neither a zip archive nor the legacy torch.save layout)" ]
	run "$BIN/lx-convert" --list "$T/nothing.bin"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/nothing.bin: No such file or directory" ]
}

@test "refuses a --config that is not a JSON object" {
	printf '[1, 2]\n' > "$T/a.json"
	run "$BIN/lx-convert" --config "$T/a.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/a.json: not a JSON object" ]
	printf '{"vocab_size": 99,\n oops}\n' > "$T/b.json"
	run "$BIN/lx-convert" --config "$T/b.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/b.json: line 2: string or '}' expected near 'oops' (expected a JSON object)" ]
	only_left "$(printf 'a.json\nb.json')"
}

@test "refuses an existing OUTDIR unless --force, which replaces it" {
	mkdir "$T/out"
	echo old > "$T/out/old.txt"
	run "$BIN/lx-convert" -q --config "$M/config.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/out: exists (use --force to replace it)" ]
	[ -f "$T/out/old.txt" ]
	run "$BIN/lx-convert" -q --force --config "$M/config.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 0 ]
	run ls "$T/out"
	[ "$output" = "$(printf 'config.json\nmodel.safetensors')" ]
	only_left "out"
}

@test "--force does not replace a directory that holds a subdirectory" {
	mkdir -p "$T/out/sub"
	run "$BIN/lx-convert" -q --force --config "$M/config.json" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 2 ]
	[ "$output" = "lx-convert: $T/out: holds sub, which is not a regular file; not replacing it" ]
	[ -d "$T/out/sub" ]
}

@test "leaves no half-written directory when a late step fails" {
	run "$BIN/lx-convert" -q --config "$M/config.json" --vocab "$T/missing.txt" "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-convert: $T/missing.txt: No such file or directory" ]
	only_left ""
}

@test "--list to a full disk is an I/O error" {
	run sh -c '"$1" --list "$2" > /dev/full' sh "$BIN/lx-convert" "$M/pytorch_model.bin"
	[ "$status" -eq 4 ]
	[ "$output" = "lx-convert: stdout: write failed: No space left on device" ]
}

@test "-h prints usage on stdout; bad usage prints it on stderr with status 2" {
	run "$BIN/lx-convert" -h
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: lx-convert [options] IN OUTDIR" ]
	run "$BIN/lx-convert" "$M/pytorch_model.bin"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-convert: expected IN and OUTDIR" ]
	[ "${lines[1]}" = "usage: lx-convert [options] IN OUTDIR" ]
	run "$BIN/lx-convert" --dtype f8 "$M/pytorch_model.bin" "$T/out"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-convert: --dtype takes f32, f16, bf16, float32, float16, bfloat16 or int8, not 'f8'" ]
	[ "${lines[1]}" = "usage: lx-convert [options] IN OUTDIR" ]
	[ "${lines[2]}" = "       lx-convert --list FILE" ]
	only_left ""
}

@test "each converted checkpoint gives the golden outputs through lx-encode (1e-4)" {
	for f in pytorch_model.bin pytorch_model_legacy.bin lxrt_original.pth; do
		rm -rf "$T/out"
		"$BIN/lx-convert" -q --num-attention-heads 2 "$M/$f" "$T/out" 2>/dev/null
		$PY "$TOP/tests/py/golden.py" inputs "$M/golden.safetensors" |
			"$BIN/lx-encode" -m "$T/out" --attentions --hidden-states > "$T/enc.mp"
		$PY "$TOP/tests/py/golden.py" compare "$M/golden.safetensors" language_output vision_output \
			pooled_output language_hidden_states vision_hidden_states language_attentions vision_attentions \
			cross_encoder_attentions < "$T/enc.mp"
	done
}

@test "an f16 conversion gives the golden outputs within f16 tolerance (1e-2; measured 2.9e-3), bf16 within 5e-2" {
	"$BIN/lx-convert" -q --dtype f16 --num-attention-heads 2 "$M/pytorch_model.bin" "$T/f16" 2>/dev/null
	"$BIN/lx-convert" -q --dtype bf16 --num-attention-heads 2 "$M/pytorch_model.bin" "$T/bf16" 2>/dev/null
	$PY "$TOP/tests/py/golden.py" inputs "$M/golden.safetensors" > "$T/in.mp"
	"$BIN/lx-encode" -m "$T/f16" < "$T/in.mp" > "$T/f16.mp"
	"$BIN/lx-encode" -m "$T/bf16" < "$T/in.mp" > "$T/bf16.mp"
	LX_TOL=1e-2 $PY "$TOP/tests/py/golden.py" compare "$M/golden.safetensors" language_output vision_output pooled_output < "$T/f16.mp"
	LX_TOL=5e-2 $PY "$TOP/tests/py/golden.py" compare "$M/golden.safetensors" language_output vision_output pooled_output < "$T/bf16.mp"
	# and f16 is not simply the float32 model: the difference is real
	! $PY "$TOP/tests/py/golden.py" compare "$M/golden.safetensors" language_output < "$T/f16.mp" 2>/dev/null
}

@test "--list reads a safetensors file: the tensors of pytorch_model.bin less the tied decoder" {
	"$BIN/lx-convert" --list "$M/model.safetensors" | sort > "$T/st"
	"$BIN/lx-convert" --list "$M/pytorch_model.bin" | grep -v '^cls.predictions.decoder.weight	' | sort > "$T/bin"
	cmp "$T/st" "$T/bin"
	[ "$(wc -l < "$T/st")" -eq 112 ]  # as many as the header lists (counted with python)
}

# ---- the authors' NLVR2 model (../fixtures/nlvr2-micro) ----

@test "converts the authors' NLVR2 BEST.pth: the encoder as micro's, logit_fc kept as nlvr2_head.logit_fc" {
	run "$BIN/lx-convert" --config "$M/config.json" "$FIX/nlvr2-micro/BEST.pth" "$T/out"
	[ "$status" -eq 0 ]
	[[ "$output" == *"NLVR2 classifier, kept as nlvr2_head.logit_fc.*"* ]]
	$PY - "$T/out/model.safetensors" "$M/model.safetensors" "$FIX/nlvr2-micro/BEST.pth" <<'PY'
import sys
import numpy as np
import torch
from lxtest import read_safetensors
out, micro = read_safetensors(sys.argv[1]), read_safetensors(sys.argv[2])
sd = torch.load(sys.argv[3])
for k in ("0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"):
    assert np.array_equal(out["nlvr2_head.logit_fc." + k], sd["logit_fc." + k].numpy()), k
enc = {k for k in out if k.startswith("lxmert.")}
assert enc == {k for k in micro if k.startswith("lxmert.")}
assert all(np.array_equal(out[k], micro[k]) for k in enc)
assert set(out) - enc == {"nlvr2_head.logit_fc." + k for k in ("0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias")}
PY
}

@test "a config naming heads the checkpoint lacks is no error: its task flags are set to what the checkpoint holds" {
	run "$BIN/lx-convert" --config "$M/config.json" "$FIX/nlvr2-micro/BEST.pth" "$T/out"
	[ "$status" -eq 0 ]
	[[ "$output" == *"config.json: 7 task flags set to the heads the checkpoint holds"* ]]
	sed -e 's/"task_\(.*\)": true/"task_\1": false/' -e 's/"visual_\(.*\)_loss": true/"visual_\1_loss": false/' \
		"$M/config.json" > "$T/want"
	cmp "$T/want" "$T/out/config.json"
	run ls "$T/out"
	[ "$output" = "$(printf 'config.json\nmodel.safetensors')" ]
	"$BIN/lx-encode" -m "$T/out" < /dev/null
}

@test "the NLVR2 checkpoint saved with module. inside its keys (multi-GPU) converts to the same bytes" {
	$PY "$TOP/tests/py/nlvr2_cases.py" module "$FIX/nlvr2-micro/BEST.pth" "$T/module.pth"
	"$BIN/lx-convert" --list "$T/module.pth" | grep -q '^lxrt_encoder\.model\.module\.bert\.pooler\.dense\.weight'
	"$BIN/lx-convert" -q --config "$M/config.json" "$FIX/nlvr2-micro/BEST.pth" "$T/a"
	run "$BIN/lx-convert" -q --config "$M/config.json" "$T/module.pth" "$T/b"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	cmp "$T/a/model.safetensors" "$T/b/model.safetensors"
	cmp "$T/a/config.json" "$T/b/config.json"
}

@test "refuses (status 3) a conversion that would leave out the encoder, and writes nothing" {
	$PY - "$FIX/nlvr2-micro/BEST.pth" "$T/wrapped.pth" <<'PY'
import sys
import torch
sd = torch.load(sys.argv[1])
torch.save({k.replace("lxrt_encoder.model.", "wrapper.net."): v for k, v in sd.items()}, sys.argv[2])
PY
	run "$BIN/lx-convert" -q --config "$M/config.json" "$T/wrapped.pth" "$T/out"
	[ "$status" -eq 3 ]
	[[ "${lines[-1]}" == "lx-convert: $T/wrapped.pth: no tensor of LXMERT's encoder (lxmert.*, the authors' bert.*) among the names: 89 tensors left out (the first: wrapper.net.bert."*"); refusing a model without its encoder" ]]
	only_left wrapped.pth
}

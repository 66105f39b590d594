#!/bin/sh
# bench/demo_accuracy.sh: what int8 and bfloat16 cost models/demo, against float32 on the same records
# (README, "int8 and bfloat16"): the answers and the VQA score on the sample questions
# (tests/fixtures/questions.jsonl on their images) and on the held-out template questions of
# examples/demo/gen.py, made as `make train-demo` makes them (same seed and counts: 600 questions on 100
# scenes). bench/accuracy.py compares lx-head's outputs (question_answering_score, pooled_output, answers).
# bf16 is skipped with a note on a CPU without avx512_bf16. Environment: LX_BIN, BENCH_DIR
# (/tmp/lx-bench-accuracy: gen.py's files, about 330 MB, kept and reused). Run by `make bench-accuracy`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${LX_BIN:-$top/build/bin}
PY=${LX_PYTHON:-/usr/bin/python3}
dir=${BENCH_DIR:-/tmp/lx-bench-accuracy}
M=$top/models/demo
mkdir -p "$dir"
if [ ! -s "$dir/valid.jsonl" ]; then
	"$B/lx-featpack" "$top/tests/fixtures/train2014_obj36_sample.tsv" > "$dir/images.mp"
	"$PY" "$top/examples/demo/gen.py" "$dir/images.mp" "$top/labels/vg_objects_vocab.txt" \
		"$top/labels/vg_attributes_vocab.txt" "$dir" --scenes 1000 --valid-scenes 100 --questions 6 --seed 1
fi
kinds="fp32 int8"
if grep -qw avx512_bf16 /proc/cpuinfo; then kinds="$kinds bf16"; else echo "(bf16 skipped: this CPU has no avx512_bf16)"; fi
for set in sample heldout; do
	if [ $set = sample ]; then q=$top/tests/fixtures/questions.jsonl f=$top/tests/fixtures/train2014_obj36_sample.tsv
	else q=$dir/valid.jsonl f=$dir/scenes.mp; fi
	"$B/lx-tokenize" -m "$M" --jsonl --max-length 20 "$q" | "$B/lx-featpack" --join "$f" > "$dir/$set.in.mp"
	for k in $kinds; do
		opt=; [ $k = fp32 ] || opt=--$k
		"$B/lx-encode" -m "$M" $opt < "$dir/$set.in.mp" | "$B/lx-head" -m "$M" --heads qa --top 1 > "$dir/$set.$k.mp"
	done
	echo "$set questions ($(wc -l < "$q")):"
	LX_LOGITS=question_answering_score "$PY" "$top/bench/accuracy.py" $(for k in $kinds; do echo "$dir/$set.$k.mp"; done)
done

#!/bin/sh
# examples/demo/train.sh: the recipe of models/demo (run by `make train-demo`).
#  1. lx-featpack decodes the ten sample images (36 boxes each, with the detector's labels);
#  2. gen.py mixes their boxes into scenes of 36 and writes template questions whose answers are the boxes'
#     object and attribute labels (examples/demo/gen.py says which), plus held-out scenes for validation;
#  3. lx-tokenize | lx-featpack --join turns the questions into training streams;
#  4. mkmodel makes a small random LXMERT (hidden 128, 4 heads, intermediate 512, l/r/x 2/2/2, BERT's
#     vocabulary) and lx-train trains it from scratch with a fresh answer head, then writes models/demo
#     (F16 weights, vocab.txt, answers.json).
# The work files (about 2 GB) go to examples/demo/build/, which is not kept in git.
set -eu
BIN=${LX_BIN:-bin}
BENCH=${LX_BENCH_BIN:-bench/bin}
PY=${LX_PYTHON:-/usr/bin/python3}
B=examples/demo/build
OUT=${DEMO_OUT:-models/demo}
EPOCHS=${DEMO_EPOCHS:-20}
mkdir -p "$B"
"$BIN/lx-featpack" tests/fixtures/train2014_obj36_sample.tsv > "$B/images.mp"
"$PY" examples/demo/gen.py "$B/images.mp" labels/vg_objects_vocab.txt labels/vg_attributes_vocab.txt "$B" \
	--scenes 1000 --valid-scenes 100 --questions 6 --seed 1
for s in train valid; do
	"$BIN/lx-tokenize" --vocab tests/fixtures/tiny/vocab.txt --jsonl --max-length 20 "$B/$s.jsonl" |
		"$BIN/lx-featpack" --join "$B/scenes.mp" > "$B/$s.mp"
done
A=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$B/answers.json")
rm -rf "$B/init"
"$BENCH/mkmodel" --hidden 128 --heads 4 --intermediate 512 --layers 2,2,2 --with-heads qa --answers "$A" --seed 1 \
	"$B/init"
cp tests/fixtures/tiny/vocab.txt "$B/init/"
mkdir -p "$(dirname "$OUT")"
"$BIN/lx-train" -m "$B/init" -o "$OUT" --force --new-head "$A" --labels "$B/answers.json" \
	--epochs "$EPOCHS" --batch 32 --lr 1e-3 --warmup 200 --seed 1 --threads 2 --f16 --log-every 100 \
	--valid "$B/valid.mp" "$B/train.mp"
rm -f "$OUT/checkpoint.safetensors"

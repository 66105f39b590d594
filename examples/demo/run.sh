#!/bin/sh
# examples/demo/run.sh: the demo model's answers to the sample questions (run by `make demo`):
# lx-tokenize | lx-featpack --join | lx-encode | lx-head, then each question with its three best answers.
set -eu
BIN=${LX_BIN:-bin}
M=${DEMO_MODEL:-models/demo}
Q=${DEMO_QUESTIONS:-tests/fixtures/questions.jsonl}
"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$Q" |
	"$BIN/lx-featpack" --join tests/fixtures/train2014_obj36_sample.tsv |
	"$BIN/lx-encode" -m "$M" |
	"$BIN/lx-head" -m "$M" --heads qa --top 3 --json |
	"${LX_PYTHON:-/usr/bin/python3}" examples/demo/show.py

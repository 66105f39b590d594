#!/bin/sh
# bench/pipeline.sh: a generated VQA evaluation end to end, the way a user runs one:
#   lx-tokenize --jsonl | lx-featpack --join | lx-encode | lx-head --submit vqa --score-file
# with models/demo (QUESTIONS, default 100000) and with a model of lxmert-base's shapes and random weights
# (BASE_QUESTIONS, default 500: it is about 40 times slower a question). The questions come from
# bench/questions.py (examples/demo/gen.py's templates on the ten sample images, 5 in a row about one image);
# the features from tests/fixtures/train2014_obj36_sample.tsv. Each stage runs under GNU time: its CPU
# seconds (user + system) and CPU per record, and its peak RSS; the pipeline's wall time and records/s,
# with the machine's 1-minute load at the start (figures on a busy machine are not comparable).
# Environment: LX_BIN, LX_BENCH_BIN (mkmodel), LX_BENCH_OUT (the base model is made once there), BENCH_DIR
# (/tmp/lx-bench-pipeline: generated files, kept and reused), QUESTIONS, BASE_QUESTIONS, ENCODE_OPTS, HEAD_OPTS
# (extra options of lx-encode and lx-head, e.g. ENCODE_OPTS=--int8). Run through `make bench-pipeline`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${LX_BIN:-$top/build/bin}
BB=${LX_BENCH_BIN:-$top/build/bench/bin}
OUT=${LX_BENCH_OUT:-$top/build/bench/out}
PY=${LX_PYTHON:-/usr/bin/python3}
dir=${BENCH_DIR:-/tmp/lx-bench-pipeline}
nq=${QUESTIONS:-100000} nb=${BASE_QUESTIONS:-500}
TSV=$top/tests/fixtures/train2014_obj36_sample.tsv
[ -x /usr/bin/time ] || { echo "bench/pipeline.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
mkdir -p "$dir" "$OUT"

if [ ! -s "$dir/images.mp" ]; then
	"$B/lx-featpack" "$TSV" > "$dir/images.mp.tmp"
	mv "$dir/images.mp.tmp" "$dir/images.mp"
fi
questions() { # N: the file of N generated questions
	f=$dir/questions_$1.jsonl
	if [ ! -s "$f" ]; then
		"$PY" "$top/bench/questions.py" "$dir/images.mp" "$top/labels/vg_objects_vocab.txt" \
			"$top/labels/vg_attributes_vocab.txt" "$1" > "$f.tmp"
		mv "$f.tmp" "$f"
	fi
	echo "$f"
}

# lxmert-base's shapes, random weights, a 3129-answer head named after the demo's answers and then a1, a2, ...
base=$OUT/pipeline-base
if [ ! -f "$base/answers.json" ]; then
	echo "making $base (lxmert-base shapes, random weights)..." >&2
	"$BB/mkmodel" --with-heads qa --answers 3129 "$base" > /dev/null
	cp "$top/tests/fixtures/tiny/vocab.txt" "$base/"
	"$PY" -c 'import json, sys
a = json.load(open(sys.argv[1]))
a += ["a%d" % i for i in range(len(a), 3129)]
json.dump(a, open(sys.argv[2], "w"))' "$top/models/demo/answers.json" "$base/answers.json.tmp"
	mv "$base/answers.json.tmp" "$base/answers.json"
fi

# run LABEL MODEL QUESTIONS: the pipeline once, then one line per stage
run() {
	label=$1 m=$2 q=$3 n=$(wc -l < "$3") t=$dir/time
	cat "$m/model.safetensors" > /dev/null
	load=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s.%N)
	/usr/bin/time -f "%e %U %S %M" -o "$t.tokenize" "$B/lx-tokenize" -m "$m" --jsonl --max-length 20 "$q" |
		/usr/bin/time -f "%e %U %S %M" -o "$t.join" "$B/lx-featpack" --join "$TSV" |
		/usr/bin/time -f "%e %U %S %M" -o "$t.encode" "$B/lx-encode" -m "$m" ${ENCODE_OPTS:-} |
		/usr/bin/time -f "%e %U %S %M" -o "$t.head" "$B/lx-head" -m "$m" --submit vqa --score-file "$dir/score.json" \
			${HEAD_OPTS:-} > "$dir/submission.json" 2> "$dir/head.err"
	t1=$(date +%s.%N)
	wall=$(echo "$t1 - $t0" | bc -l)
	printf '%s: %d questions in %.1f s, %.1f records/s (load %s at the start); %s\n' "$label" "$n" "$wall" \
		"$(echo "$n / $wall" | bc -l)" "$load" "$(cat "$dir/score.json")"
	printf '    %-12s %10s %10s %14s %10s\n' stage "wall (s)" "CPU (s)" "CPU/record (ms)" "RSS (MB)"
	for s in tokenize join encode head; do
		read -r e u y k < "$t.$s"
		printf '    %-12s %10.1f %10.2f %14.3f %10d\n' "$s" "$e" "$(echo "$u + $y" | bc -l)" \
			"$(echo "($u + $y) * 1000 / $n" | bc -l)" $((k / 1024))
	done
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u '+%Y-%m-%d %H:%M UTC')"
run "models/demo" "$top/models/demo" "$(questions "$nq")"
run "lxmert-base shapes" "$base" "$(questions "$nb")"

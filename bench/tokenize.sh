#!/bin/sh
# bench/tokenize.sh - lx-tokenize's speed on generated VQA-length questions, on one core.
# Target: 10,000,000 questions a minute (about 167,000 a second) in every mode.
# LX_BENCH_QUESTIONS sets how many questions (default 2,000,000), LX_BENCH_VOCAB the vocabulary, LX_BIN
# the directory of the tools (default bin/).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
tok="${LX_BIN:-$top/bin}/lx-tokenize"
n=${LX_BENCH_QUESTIONS:-2000000}
vocab=${LX_BENCH_VOCAB:-$top/tests/fixtures/vocab.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Questions of 4 to 12 words with a question mark, some with an apostrophe, a comma or an accented word,
# as in VQA (about 35 bytes on average); and the same as the authors' JSON records, one a line.
awk -v n="$n" 'BEGIN {
	srand(7)
	nw = split("what is the color of man woman dog cat on in left right holding wearing how many people " \
		"are there this a red blue car table sitting standing picture room kind sport does look like where " \
		"which side plate giraffes broccoli surfboard zebra'"'"'s café frisbee umbrella, skateboard bananas " \
		"tennis racket kitchen bathroom sky clouds grass street sign traffic light bus train", w, " ")
	nq = split("what is|how many|is the|are there|what color is|where is|does the|which|who is|why is", q, "|")
	for (i = 0; i < n; i++) {
		s = q[1 + int(rand() * nq)]
		k = 2 + int(rand() * 9)
		for (j = 0; j < k; j++)
			s = s " " w[1 + int(rand() * nw)]
		print toupper(substr(s, 1, 1)) substr(s, 2) "?"
	}
}' > "$tmp/q.txt"
awk '{ printf "{\"answer_type\": \"other\", \"img_id\": \"COCO_val2014_%012d\", \"label\": {\"yes\": 1}, " \
	"\"question_id\": %d, \"question_type\": \"what\", \"sent\": \"%s\"}\n", NR % 40504, NR * 1000, $0 }' \
	"$tmp/q.txt" > "$tmp/q.jsonl"

now() { date +%s.%N; }

# CPU seconds (user + system) used so far by the finished children of this shell: times must run in this
# shell, not in a $(...) subshell
cpu() {
	times > "$tmp/times"
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' \
		"$tmp/times" > "$tmp/cpu"
}

# run LABEL FILE ARGS...: times lx-tokenize ARGS < FILE > /dev/null; the rates are per CPU second (the
# tool runs on one core), the wall time is shown beside them
run() {
	label=$1 file=$2
	shift 2
	cpu
	c0=$(cat "$tmp/cpu") t0=$(now)
	"$tok" --vocab "$vocab" "$@" < "$file" > "$tmp/out"
	t1=$(now)
	cpu
	c1=$(cat "$tmp/cpu")
	out=$(wc -c < "$tmp/out")
	bytes=$(wc -c < "$file")
	awk -v l="$label" -v n="$n" -v b="$bytes" -v o="$out" -v c0="$c0" -v c1="$c1" \
		-v t0="$t0" -v t1="$t1" 'BEGIN {
		s = c1 - c0; if (s <= 0) s = 0.001
		qps = n / s
		printf "%-36s %6.2f s cpu %6.2f s wall %9.0f questions/s %6.1f MB/s in %6.1f M/min  %s\n", l, s, t1 - t0,
			qps, b / s / 1e6, qps * 60 / 1e6, (qps * 60 >= 1e7 ? "ok" : "BELOW TARGET (10 M/min)")
	}'
}

printf 'lx-tokenize: %d questions, %d bytes of text, %d bytes of JSON\n' "$n" "$(wc -c < "$tmp/q.txt")" \
	"$(wc -c < "$tmp/q.jsonl")"
run "plain text" "$tmp/q.txt"
run "plain text --tokens --max-length 20" "$tmp/q.txt" --tokens --max-length 20
run "--jsonl" "$tmp/q.jsonl" --jsonl
run "--jsonl --tokens --max-length 20" "$tmp/q.jsonl" --jsonl --tokens --max-length 20

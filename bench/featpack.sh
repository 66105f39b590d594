#!/bin/sh
# Join throughput of lx-featpack: questions in random order joined to an obj36 TSV of IMAGES images.
# Environment: IMAGES (10000), BOXES (36), DIM (2048), QUESTIONS (20000), CACHE (16),
# BENCH_DIR (/tmp/lx-bench-featpack: the generated files are kept there and reused).
# Prints records/s (wall and CPU), peak RSS (GNU time -v) and the TSV's size, and the time to build the index.
# Output goes to /dev/null: what is measured is lx-featpack alone.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
py=${LX_PYTHON:-/usr/bin/python3}
images=${IMAGES:-10000} boxes=${BOXES:-36} dim=${DIM:-2048} questions=${QUESTIONS:-20000} cache=${CACHE:-16}
dir=${BENCH_DIR:-/tmp/lx-bench-featpack}
tsv="$dir/obj36_${images}x${boxes}x${dim}.tsv"
qs="$dir/questions_${questions}_${images}.mp"
[ -x /usr/bin/time ] || { echo "bench/featpack.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
mkdir -p "$dir"
if [ ! -s "$tsv" ]; then
	echo "generating $tsv ..." >&2
	"$py" "$top/tests/py/featref.py" write-obj36 "$tsv.tmp" "$images" "$boxes" "$dim"
	mv "$tsv.tmp" "$tsv"
fi
[ -s "$qs" ] || "$py" "$top/tests/py/featref.py" bench-questions "$questions" "$images" 1 > "$qs"
rm -f "$tsv.lxidx"
t0=$(date +%s.%N)
"${LX_BIN:-$top/bin}/lx-featpack" --join --index "$tsv" < /dev/null
t1=$(date +%s.%N)
/usr/bin/time -v "${LX_BIN:-$top/bin}/lx-featpack" --join --index --cache "$cache" "$tsv" < "$qs" 2> "$dir/time.txt" \
	> /dev/null
t2=$(date +%s.%N)
user=$(sed -n 's/.*User time (seconds): //p' "$dir/time.txt")
sys=$(sed -n 's/.*System time (seconds): //p' "$dir/time.txt")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.txt")
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
wall=$(calc "$t2 - $t1")
printf 'featpack join: %d questions over %d images (%d boxes x %d features), TSV %s bytes\n' \
	"$questions" "$images" "$boxes" "$dim" "$(stat -c %s "$tsv")"
printf '  index build: %s s; join: %s s, %s records/s (%s s CPU, %s records per CPU second), peak RSS %d MB\n' \
	"$(calc "$t1 - $t0")" "$wall" "$(calc "$questions / $wall")" "$(calc "$user + $sys")" \
	"$(calc "$questions / ($user + $sys)")" "$((rss / 1024))"

#!/bin/sh
# valgrind.sh BINDIR: the sample pipeline of the README, each stage under valgrind (memcheck) on its own,
# so that every stage's status is seen: an error or a definite or indirect leak makes valgrind exit 99.
#   lx-tokenize --jsonl < questions.jsonl | lx-featpack --join train2014_obj36_sample.tsv |
#   lx-encode -m tiny | lx-head -m tiny
# Then the same with --keep-going and a bad line, so that error records are made and passed through; and
# lx-detect on a photo and a file that is not one, with --keep-going (the float32 detector, on the kernels
# oneDNN picks for the CPU valgrind shows it: no AVX-512).
set -eu
bin=$1
fix=tests/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
# stage STATUS NAME IN OUT ARGS...: runs bin/NAME under valgrind; it must exit with STATUS.
stage() {
	want=$1 name=$2 in=$3 out=$4
	shift 4
	rc=0
	$vg "$bin/$name" "$@" < "$in" > "$out" 2> "$tmp/$name.err" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		cat "$tmp/$name.err" >&2
		echo "valgrind: $name $*: exit $rc, expected $want" >&2
		exit 1
	fi
	echo "valgrind: $name $*: no error, no leak ($(wc -c < "$out") bytes out)"
}
stage 0 lx-tokenize "$fix/questions.jsonl" "$tmp/tok.mp" -m "$fix/tiny" --jsonl
stage 0 lx-featpack "$tmp/tok.mp" "$tmp/feat.mp" --join "$fix/train2014_obj36_sample.tsv"
stage 0 lx-encode "$tmp/feat.mp" "$tmp/enc.mp" -m "$fix/tiny"
stage 0 lx-head "$tmp/enc.mp" "$tmp/out.mp" -m "$fix/tiny"
{ head -n 3 "$fix/questions.jsonl"; echo 'not json'; echo '{"img_id": "nowhere", "sent": "where?"}'; } > "$tmp/bad.jsonl"
stage 1 lx-tokenize "$tmp/bad.jsonl" "$tmp/tok.mp" -m "$fix/tiny" --jsonl --keep-going
stage 1 lx-featpack "$tmp/tok.mp" "$tmp/feat.mp" --join --keep-going "$fix/train2014_obj36_sample.tsv"
stage 0 lx-encode "$tmp/feat.mp" "$tmp/enc.mp" -m "$fix/tiny" --keep-going
stage 0 lx-head "$tmp/enc.mp" "$tmp/out.mp" -m "$fix/tiny" --keep-going --json
printf 'not an image\n' > "$tmp/bad.jpg"
stage 1 lx-detect /dev/null "$tmp/det.mp" -m "$fix/frcnn-tiny" --keep-going "$fix/frcnn-tiny/images/001763.png" "$tmp/bad.jpg"

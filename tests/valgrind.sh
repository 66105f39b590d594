#!/bin/sh
# valgrind.sh BINDIR: the sample pipeline of the README, each stage under valgrind (memcheck) on its own,
# so that every stage's status is seen: an error or a definite or indirect leak makes valgrind exit 99.
#   lx-tokenize --jsonl < questions.jsonl | lx-featpack --join train2014_obj36_sample.tsv |
#   lx-encode -m tiny | lx-head -m tiny
set -eu
bin=$1
fix=tests/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
stage() {
	name=$1 in=$2 out=$3
	shift 3
	if $vg "$bin/$name" "$@" < "$in" > "$out" 2> "$tmp/$name.err"; then
		echo "valgrind: $name: no error, no leak ($(wc -c < "$out") bytes out)"
	else
		rc=$?
		cat "$tmp/$name.err" >&2
		echo "valgrind: $name: exit $rc" >&2
		exit 1
	fi
}
stage lx-tokenize "$fix/questions.jsonl" "$tmp/tok.mp" -m "$fix/tiny" --jsonl
stage lx-featpack "$tmp/tok.mp" "$tmp/feat.mp" --join "$fix/train2014_obj36_sample.tsv"
stage lx-encode "$tmp/feat.mp" "$tmp/enc.mp" -m "$fix/tiny"
stage lx-head "$tmp/enc.mp" "$tmp/out.mp" -m "$fix/tiny"

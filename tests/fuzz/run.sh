#!/bin/sh
# run.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS, two at a time, each with its corpus in
# build-fuzz/corpus/NAME seeded from tests/fuzz/seeds/NAME and the fixtures; prints each one's last status
# line (executions, coverage). Exits non-zero if any target found a crash (kept in build-fuzz/).
#
# Memory is part of what is fuzzed: every target runs with -malloc_limit_mb, the memory model of
# man/lx-limits.7 taken at the target's -max_len, so that a small input asking for one large allocation is a
# finding (libFuzzer reports "out-of-memory (malloc(N))" and keeps the input), and with -rss_limit_mb for the
# many small ones (that limit includes AddressSanitizer's own memory). Per target:
#   -max_len 65536 and 64 MB: one input byte may cost at most about a kilobyte (the readers' budgets of
#     values per byte, a TSV line decoded, a record of 64 KB);
#   fuzz_npz: -max_len 16384, as deflate lets 16 KB stand for 16 MB (zip's ratio limit of 1032), held twice
#     at most (the member inflated, and its features as float32);
#   fuzz_ckpt: -max_len 200000 (its seeds are 98 KB), stored tensors read in place.
secs=$1
shift
status=0
limits() {
	case $1 in
	fuzz_npz) echo "16384 64" ;;
	fuzz_ckpt) echo "200000 64" ;;
	*) echo "65536 64" ;;
	esac
}
run_one() {
	name=$(basename "$1")
	corpus=build-fuzz/corpus/$name
	set -- "$1" $(limits "$name")
	mkdir -p "$corpus"
	[ -d "tests/fuzz/seeds/$name" ] && cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null
	"$1" -max_total_time="$secs" -max_len="$2" -malloc_limit_mb="$3" -rss_limit_mb=1024 \
		-artifact_prefix="build-fuzz/$name-" "$corpus" > "build-fuzz/$name.log" 2>&1
	rc=$?
	line=$(grep -E '^#[0-9]+' "build-fuzz/$name.log" | tail -n 1)
	echo "$name (-max_len $2, -malloc_limit_mb $3): exit $rc: $line"
	return $rc
}
set -- "$@"
while [ $# -gt 0 ]; do
	run_one "$1" & p1=$!
	p2=
	if [ $# -gt 1 ]; then run_one "$2" & p2=$!; shift; fi
	shift
	wait $p1 || status=1
	[ -n "$p2" ] && { wait $p2 || status=1; }
done
exit $status

#!/bin/sh
# run.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS, two at a time, each with its corpus in
# build-fuzz/corpus/NAME seeded from tests/fuzz/seeds/NAME and the fixtures; prints each one's last status
# line (executions, coverage). Exits non-zero if any target found a crash (kept in build-fuzz/).
secs=$1
shift
status=0
run_one() {
	name=$(basename "$1")
	corpus=build-fuzz/corpus/$name
	mkdir -p "$corpus"
	[ -d "tests/fuzz/seeds/$name" ] && cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null
	"$1" -max_total_time="$secs" -rss_limit_mb=1024 -max_len=200000 -artifact_prefix="build-fuzz/$name-" \
		"$corpus" > "build-fuzz/$name.log" 2>&1
	rc=$?
	line=$(grep -E '^#[0-9]+' "build-fuzz/$name.log" | tail -n 1)
	echo "$name: exit $rc: $line"
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

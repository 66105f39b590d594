#!/usr/bin/env bats
# Memory stays flat over a long stream: lx-encode and lx-head on the micro model over 1,000 and 100,000
# records have the same peak RSS (GNU time's %M, in KiB) within 4 MiB. Run by `make check-long` (not by
# `make check`, whose sanitizer run keeps freed memory in quarantine and so grows by design).

load ../helpers
TOP="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
BIN="${LX_BIN:-$TOP/bin}"
FIX="$TOP/tests/fixtures"

setup() {
	T="$BATS_TEST_TMPDIR"
	FAULTS="$PY $TOP/tests/py/faults.py"
}

# rss IN OUT CMD...: the peak RSS (KiB) of CMD reading IN, writing OUT.
rss() {
	local in=$1 out=$2
	shift 2
	/usr/bin/time -f %M -o "$T/rss" "$@" < "$in" > "$out"
	cat "$T/rss"
}

flat() {
	local small=$1 large=$2
	echo "peak RSS: $small KiB over 1,000 records, $large KiB over 100,000" >&3
	[ "$large" -le $((small + 4096)) ]
	[ "$large" -ge $((small - 4096)) ]
}

@test "lx-encode and lx-head keep the same peak RSS over 1,000 and 100,000 records" {
	$FAULTS repeat "$FIX/micro" 1000 > "$T/small.mp"
	$FAULTS repeat "$FIX/micro" 100000 > "$T/large.mp"
	e1=$(rss "$T/small.mp" "$T/small.enc" "$BIN/lx-encode" -m "$FIX/micro")
	e2=$(rss "$T/large.mp" "$T/large.enc" "$BIN/lx-encode" -m "$FIX/micro")
	[ "$($PY -c 'import sys, msgpack; print(sum(1 for _ in msgpack.Unpacker(open(sys.argv[1], "rb"))))' "$T/large.enc")" -eq 100000 ]
	flat "$e1" "$e2"
	h1=$(rss "$T/small.enc" /dev/null "$BIN/lx-head" -m "$FIX/micro")
	h2=$(rss "$T/large.enc" /dev/null "$BIN/lx-head" -m "$FIX/micro")
	flat "$h1" "$h2"
}

#!/usr/bin/env bats
# liblx(3): the example program builds against liblx.a and gives the reference's pooled outputs; the
# commands of the man page's EXAMPLES run as written.

load helpers

setup() {
	T="$(mktemp -d)"
	EX="$BIN/../examples/pooled"
}

teardown() {
	rm -rf "$T"
}

@test "examples/liblx/pooled.c gives HF's pooled_output on every golden case of tiny and micro" {
	for m in tiny micro; do
		$PY "$TOP/tests/py/golden.py" inputs "$FIX/$m/golden.safetensors" | "$EX" "$FIX/$m" > "$T/out"
		run $PY "$TOP/tests/py/golden.py" compare "$FIX/$m/golden.safetensors" pooled_output < "$T/out"
		[ "$status" -eq 0 ]
	done
}

@test "the example stops at a bad record with the library's message and status" {
	printf '\x81\xa1a\x01' | { run "$EX" "$FIX/tiny"; echo "$output" > "$T/msg"; echo "$status" > "$T/st"; }
	[ "$(cat "$T/st")" -eq 1 ]
	[ "$(cat "$T/msg")" = "pooled: missing field input_ids" ] || { cat "$T/msg"; false; }
}

@test "liblx(3)'s EXAMPLES build the program by hand and run it in the pipeline" {
	cd "$TOP"
	sed -n '/^\.SH EXAMPLES/,/^\.SH FILES/p' man/liblx.3 | sed -n '/^\.nf/,/^\.fi/p' | sed '1d;$d' |
		sed 's/\\-/-/g; s/\\\\$/\\/' | sed "s#^cc #cc -o $T/pooled #; s#-o pooled ##; s#\./pooled#$T/pooled#; s#> pooled.lx#> $T/pooled.lx#" |
		sed "s#^lx-tokenize#$BIN/lx-tokenize#; s#lx-featpack#$BIN/lx-featpack#" |
		sed "s#PKG_CONFIG_PATH=build/lib/pkgconfig#PKG_CONFIG_PATH=$BIN/../lib/pkgconfig#" > "$T/cmds.sh"
	grep -q 'pkg-config --cflags --libs liblx' "$T/cmds.sh"
	run sh -e "$T/cmds.sh"
	[ "$status" -eq 0 ]
	# one record per question, each with a pooled_output of the demo model's hidden size
	run $PY -c '
import sys, msgpack, msgpack_numpy as m
rs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), object_hook=m.decode, raw=False))
print(len(rs), {r["pooled_output"].shape for r in rs})' "$T/pooled.lx"
	[ "$output" = "$(wc -l < "$FIX/questions.jsonl" | tr -d ' ') {(128,)}" ]
}

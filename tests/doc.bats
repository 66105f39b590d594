#!/usr/bin/env bats
# The documentation runs: every command block of README.md and every EXAMPLES section of the man pages
# (tests/doc.sh, with the fixtures standing in for the hub's models and the datasets). The listing of what ran
# and what was skipped, and why, is printed on the terminal (fd 3).
load helpers

@test "every command block of README.md runs" {
	run sh "$TOP/tests/doc.sh" "$BIN" "$TOP/README.md"
	printf '%s\n' "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" =~ ^doc\ tests:\ ([0-9]+)\ blocks\ ran ]]
	[ "${BASH_REMATCH[1]}" -ge 8 ]
}

@test "every EXAMPLES section of the man pages runs" {
	run sh "$TOP/tests/doc.sh" "$BIN" "$TOP"/man/*.[135]
	printf '%s\n' "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" =~ ^doc\ tests:\ ([0-9]+)\ blocks\ ran ]]
	[ "${BASH_REMATCH[1]}" -ge 15 ]
}

@test "the extraction finds fenced, indented and man page blocks, drops shown output, and honours the marker" {
	T="$BATS_TEST_TMPDIR"
	printf '%s\n' 'Text' '' '```sh' 'lx-tokenize --vocab v < a' '```' '' '    lx-head -m M [--top K]' '' 'a' '' \
		'    lx-encode -m M < x |' '      lx-head -m M' '' 'b' '' '    threads  speed' '' '```sh' '# (needs the hub)' \
		'huggingface-cli download x' '```' > "$T/doc.md"
	printf '%s\n' '.SH EXAMPLES' '.EX' 'echo hi | lx-tokenize \-m m' 'what is shown' '.EE' '.nf' 'import os' '.fi' \
		'.SH SEE ALSO' '.nf' 'lx-head not an example' '.fi' > "$T/doc.1"
	$PY "$TOP/tests/py/docblocks.py" "$T/b" "$T/doc.md" "$T/doc.1"
	cut -f 2- "$T/b/index.tsv" > "$T/index"
	printf 'sh\tdoc.md:4\t\nother\tdoc.md:7\t\nsh\tdoc.md:11\t\nother\tdoc.md:16\t\nskip\tdoc.md:19\tneeds the hub\nsh\tdoc.1:3\t\npython\tdoc.1:7\t\n' > "$T/want"
	diff "$T/want" "$T/index"
	[ "$(cat "$T/b/003.sh")" = "$(printf 'lx-encode -m M < x |\n  lx-head -m M')" ]
	[ "$(cat "$T/b/006.sh")" = "echo hi | lx-tokenize -m m" ]
}

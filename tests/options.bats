#!/usr/bin/env bats
# The command line every tool shares (cmd/tool.c): --help and --version on stdout with status 0, bad usage
# with status 2 and the usage line on stderr, and --help naming exactly the options its man page documents.

load helpers

TOOLS="lx-tokenize lx-featpack lx-encode lx-head lx-attnviz lx-convert lx-train lx-explain lx-detect lx-merge"

# The options a man page's OPTIONS section documents: the -x and --name in the tag line of each .TP.
man_options() {
	$PY -c '
import re, sys
lines = open(sys.argv[1]).read().split("\n")
on, found = False, set()
for i, line in enumerate(lines):
    if line.startswith(".SH"):
        on = line.strip() == ".SH OPTIONS"
    elif on and i > 0 and lines[i - 1] == ".TP":
        found.update(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z])(?![\w-])", re.sub(r"\\f[BIRP]", "", line).replace("\\-", "-")))
print("\n".join(sorted(found)))' "$1"
}

# The options --help lists: "  -x, --name ARG   text" or "      --name ARG   text".
help_options() {
	"$BIN/$1" --help | sed -nE 's/^  (-[a-zA-Z]), (--[a-z0-9-]+).*/\1\n\2/p; s/^      (--[a-z0-9-]+).*/\1/p' | sort
}

@test "every tool's --help names the options its man page documents, and no other" {
	bad=0
	for t in $TOOLS; do
		man_options "$TOP/man/$t.1" > "$T/man"
		help_options "$t" > "$T/help"
		[ -s "$T/man" ]
		if ! diff -u "$T/man" "$T/help" > "$T/diff"; then
			echo "$t: man/$t.1 (-) and --help (+) disagree:"
			grep '^[-+]-' "$T/diff"
			bad=1
		fi
	done
	[ "$bad" -eq 0 ]
}

@test "every tool answers --help and -h on stdout with status 0, beginning with its usage line" {
	for t in $TOOLS; do
		run --separate-stderr "$BIN/$t" --help
		[ "$status" -eq 0 ]
		[ -z "$stderr" ]
		[[ "${lines[0]}" == "usage: $t "* ]]
		grep -q -e '^  -h, --help ' <<< "$output"
		grep -q -e '^  -V, --version ' <<< "$output"
		run --separate-stderr "$BIN/$t" -h
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == "usage: $t "* ]]
	done
}

@test "every tool answers --version and -V with its name and the version of lx_core.h, status 0" {
	version=$(sed -n 's/^#define LX_VERSION "\(.*\)"$/\1/p' "$TOP/lib/lx_core.h")
	[ -n "$version" ]
	for t in $TOOLS; do
		run --separate-stderr "$BIN/$t" --version
		[ "$status" -eq 0 ]
		[ -z "$stderr" ]
		[ "$output" = "$t $version" ]
		run --separate-stderr "$BIN/$t" -V
		[ "$status" -eq 0 ]
		[ "$output" = "$t $version" ]
	done
}

@test "every tool refuses an unknown option with status 2, the reason, then its usage line on stderr" {
	for t in $TOOLS; do
		run --separate-stderr "$BIN/$t" --no-such-option
		[ "$status" -eq 2 ]
		[ -z "$output" ]
		[ "${stderr_lines[0]}" = "$t: --no-such-option is not an option of $t" ]
		[[ "${stderr_lines[1]}" == "usage: $t "* ]]
		run --separate-stderr "$BIN/$t" -Z
		[ "$status" -eq 2 ]
		[ "${stderr_lines[0]}" = "$t: -Z is not an option of $t" ]
	done
}

@test "an option missing its argument is a usage error naming it" {
	run --separate-stderr "$BIN/lx-encode" --batch
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-encode: --batch needs an argument (N)" ]
	run --separate-stderr "$BIN/lx-head" -m
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-head: -m needs an argument (DIR)" ]
}

@test "the options shared by several tools have one long name each, and -m is always the model" {
	for t in $TOOLS; do
		help_options "$t" > "$T/$t"
	done
	# --keep-going, --progress, --threads, --batch: the same spelling wherever they are
	! cat "$T"/lx-* | grep -E -e '^--(keepgoing|keep_going|continue|verbose|nthreads|jobs|batch-size)$'
	grep -qx -- --progress "$T/lx-encode"
	grep -qx -- --keep-going "$T/lx-head"
	grep -qx -- --threads "$T/lx-train"
	grep -qx -- --batch "$T/lx-encode"
	# -m comes with --model in every tool that has it
	for t in $TOOLS; do
		if grep -qx -- -m "$T/$t"; then
			"$BIN/$t" --help | grep -q -e '^  -m, --model DIR '
		fi
	done
}

@test "lx-featpack -m 36 is refused, naming --max-boxes" {
	run --separate-stderr "$BIN/lx-featpack" -m 36 "$FIX/train2014_obj36_sample.tsv"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[ "${stderr_lines[0]}" = "lx-featpack: -m is the model in the lx tools; the number of boxes is --max-boxes N" ]
}

setup() {
	T="$BATS_TEST_TMPDIR"
}

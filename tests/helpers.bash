# shellcheck shell=bash
# Shared by every bats suite: where things are.
bats_require_minimum_version 1.5.0
TOP="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
BIN="${LX_BIN:-$TOP/bin}"
FIX="$TOP/tests/fixtures"
# Debian's python3 has numpy and msgpack-numpy (make deps); a python3 earlier on PATH may not.
PY="${LX_PYTHON:-/usr/bin/python3}"
export PYTHONPATH="$TOP/tests/py${PYTHONPATH:+:$PYTHONPATH}"

# strace for the tests that kill or trace at fixed system calls. LeakSanitizer cannot run under ptrace (it
# stops the program with a fatal error at its exit), so a sanitizer build's leak check is off under strace;
# check-asan's other tests keep it.
strace() {
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" command strace "$@"
}

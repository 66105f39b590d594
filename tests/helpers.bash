# shellcheck shell=bash
# Shared by every bats suite: where things are.
bats_require_minimum_version 1.5.0
TOP="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
BIN="${LX_BIN:-$TOP/bin}"
FIX="$TOP/tests/fixtures"
# Debian's python3 has numpy and msgpack-numpy (make deps); a python3 earlier on PATH may not.
PY="${LX_PYTHON:-/usr/bin/python3}"
export PYTHONPATH="$TOP/tests/py${PYTHONPATH:+:$PYTHONPATH}"

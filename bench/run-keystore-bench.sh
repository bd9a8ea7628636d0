#!/bin/sh
# Keystore sign path vs a plain Esys_Sign loop, on one private swtpm. Usage: run-keystore-bench.sh [ARGS]
# (ARGS go to agentid-bench-keystore, e.g. --rounds=21 --batch=500).
. "$(dirname "$0")/../scripts/lib.sh"

install_deps
build "$AGENTID_SRC/build"
make_tmp
start_swtpm
"$AGENTID_SRC/build/bench/agentid-bench-keystore" "$@"

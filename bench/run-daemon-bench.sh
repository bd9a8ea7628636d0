#!/bin/sh
# Sign over D-Bus (1, 4, 16, 64 clients) against Esys_Sign in-process, on one private swtpm with a
# private bus and agentidd. Usage: run-daemon-bench.sh [--rounds=N] [--seconds=S]
. "$(dirname "$0")/../scripts/lib.sh"

install_deps
build "$AGENTID_SRC/build"
make_tmp
start_swtpm
start_bus
start_daemon "$AGENTID_SRC/build"
"$AGENTID_SRC/build/ctl/agentidctl" create bench --owner=bench --uid=0 >/dev/null
"$AGENTID_SRC/build/bench/agentid-bench-daemon" "$@"

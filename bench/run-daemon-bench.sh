#!/bin/sh
# Sign over D-Bus (1, 4, 16, 64 clients) against Esys_Sign in-process, on one private swtpm with a
# private bus, twice in one run: agentidd without a policy, then agentidd with a 1,000-rule policy whose
# last rule decides. The audit log is on in both (it cannot be switched off): every signature's record
# is durable before its reply. Usage: run-daemon-bench.sh [--rounds=N] [--seconds=S]
#
# AGENTID_BENCH_BASELINE=BUILD_DIR adds a first run with BUILD_DIR/dbus/agentidd, e.g. a build of an
# older commit (the daemon before the audit log existed: the "bare path" of docs/performance.md).
. "$(dirname "$0")/../scripts/lib.sh"

install_deps
build "$AGENTID_SRC/build"
make_tmp
start_swtpm
start_bus

/usr/bin/python3 - "$AGENTID_TMP/policy.json" <<'PY'
import json, sys
rules = [{"name": "other-%d" % i, "keys": ["other-%d-*" % i], "actions": ["sign"], "effect": "allow"}
         for i in range(999)]
rules.append({"name": "bench", "keys": ["bench"], "actions": ["sign"], "effect": "allow"})
json.dump({"version": 1, "rules": rules}, open(sys.argv[1], "w"))
PY

run() {
        what=$1 bdir=$2
        shift 2
        start_daemon "$bdir" "$@"
        [ -f "$AGENTID_TMP/state/keys/bench" ] ||
                "$AGENTID_SRC/build/ctl/agentidctl" create bench --owner=bench --uid=0 >/dev/null
        say "$what"
        "$AGENTID_SRC/build/bench/agentid-bench-daemon" $bench_args
        kill "$AGENTID_DAEMON_PID"
        wait "$AGENTID_DAEMON_PID" 2>/dev/null || true
}
bench_args="$*"
[ -n "${AGENTID_BENCH_BASELINE:-}" ] &&
        run "baseline: $AGENTID_BENCH_BASELINE/dbus/agentidd without a policy" "$AGENTID_BENCH_BASELINE" --policy=
run "agentidd without a policy (audit on)" "$AGENTID_SRC/build" --policy=
run "agentidd with 1,000 policy rules, the last one deciding (audit on)" "$AGENTID_SRC/build" \
        --policy="$AGENTID_TMP/policy.json"

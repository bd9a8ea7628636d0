#!/bin/sh
# Sign over D-Bus (1, 4, 16, 64 clients) against Esys_Sign in-process, on one private swtpm with a
# private bus, twice in one run: agentidd without a policy, then agentidd with a 1,000-rule policy whose
# last rule decides. The audit log is on in both (it cannot be switched off): every signature's record
# is durable before its reply. Usage: run-daemon-bench.sh [--rounds=N] [--seconds=S]
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

for policy in "" "$AGENTID_TMP/policy.json"; do
        start_daemon "$AGENTID_SRC/build" --policy="$policy"
        if [ -z "$policy" ]; then
                "$AGENTID_SRC/build/ctl/agentidctl" create bench --owner=bench --uid=0 >/dev/null
                say "agentidd without a policy (audit on)"
        else
                say "agentidd with 1,000 policy rules, the last one deciding (audit on)"
        fi
        "$AGENTID_SRC/build/bench/agentid-bench-daemon" "$@"
        kill "$AGENTID_DAEMON_PID"
        wait "$AGENTID_DAEMON_PID" 2>/dev/null || true
done

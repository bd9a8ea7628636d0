#!/bin/sh
# Sign over D-Bus against the TPM's limit on a model of a hardware TPM: bench/tpm-latency-relay.py in
# front of swtpm makes TPM2_Sign take SIGN_MS and every other command OTHER_MS (a discrete TPM: ECDSA
# P-256 in 30-80 ms). The limit (Esys_Sign in-process) and agentidd (audit on, no policy) use the same
# relayed swtpm, one after the other in each round, with 1, 4 and 16 clients.
#
# Usage: run-latency-bench.sh [--sign-ms=40] [--other-ms=5] [--rounds=3] [--seconds=4]
# AGENTID_BUILD=DIR builds and runs DIR (default: build/). AGENTID_BENCH_OUT=DIR keeps the CSV
# (performance-latency.csv, rows appended) there.
. "$(dirname "$0")/../scripts/lib.sh"

sign_ms=40
other_ms=5
rounds=3
seconds=4
for a in "$@"; do
        case $a in
        --sign-ms=*) sign_ms=${a#--sign-ms=} ;;
        --other-ms=*) other_ms=${a#--other-ms=} ;;
        --rounds=*) rounds=${a#--rounds=} ;;
        --seconds=*) seconds=${a#--seconds=} ;;
        *) die "unknown option $a (see the header of $0)" ;;
        esac
done

AGENTID_BUILD=${AGENTID_BUILD:-$AGENTID_SRC/build}
install_deps
build "$AGENTID_BUILD"
make_tmp
start_swtpm

slow="$AGENTID_TMP/slow-tpm.sock"
/usr/bin/python3 "$AGENTID_SRC/bench/tpm-latency-relay.py" --listen="$slow" --upstream="${AGENTID_TCTI#swtpm:path=}" \
        --sign-ms="$sign_ms" --other-ms="$other_ms" >"$AGENTID_TMP/relay.log" 2>&1 &
AGENTID_PIDS="$AGENTID_PIDS $!"
wait_for_socket "$slow.ctrl" "the latency relay (see $AGENTID_TMP/relay.log)"
export AGENTID_TCTI="swtpm:path=$slow"

start_bus
start_daemon "$AGENTID_BUILD" --policy=
"$AGENTID_BUILD/ctl/agentidctl" create bench --owner=bench --uid=0 >/dev/null || die "creating the key failed"

out=${AGENTID_BENCH_OUT:-$AGENTID_TMP}
mkdir -p "$out"
csv="$out/performance-latency.csv"      # rows are appended: one run per TPM model
say "TPM model: TPM2_Sign $sign_ms ms, other commands $other_ms ms (bench/tpm-latency-relay.py)"
"$AGENTID_BUILD/bench/agentid-bench-daemon" --label="latency-sign${sign_ms}-other${other_ms}" --csv="$csv" \
        --rounds="$rounds" --seconds="$seconds" --max-clients=16 --no-destroy
say "CSV: $csv"

#!/bin/sh
# agentidd over D-Bus against the TPM's limit and against tpm2-tools, all on one private swtpm with a
# private bus, in one run:
#
#   1. with no agentidd on the TPM: Esys_Create in-process (the limit of CreateKey), and tpm2_sign per
#      signature as a user runs it (a saved key context; tpm2_flushcontext after each signature,
#      since swtpm has no resource manager and each tpm2_sign leaves its object loaded);
#   2. agentidd without a policy: Sign with 1, 4, 16, 64 clients against Esys_Sign in-process, then
#      SignMessage, IssueToken, Attest, Task.Sign and CreateKey with 1 and 4 clients, Destroy under a
#      16-client Sign flood; it also saves evidence, a token and the keys for step 4;
#   3. agentidd with a 1,000-rule policy whose last rule decides: Sign and Destroy again;
#   4. per core (taskset -c 0), no TPM: tpm2_checkquote per quote against agentid-verify per
#      evidence (one process each, as a script would call them), and agentid-bench-verify in-process.
#
# The audit log is on in every agentidd run (it cannot be switched off): every signature's record is
# durable before its reply. Usage: run-daemon-bench.sh [--rounds=N] [--seconds=S]
#
# AGENTID_BUILD=DIR builds and runs DIR (default: build/). AGENTID_BENCH_OUT=DIR keeps the CSV
# (performance-daemon.csv) there; without it the CSV goes to the temporary directory and is lost.
# AGENTID_BENCH_BASELINE=BUILD_DIR adds a first run with BUILD_DIR/dbus/agentidd, e.g. a build of an
# older commit (the daemon before the audit log existed: the "bare path" of docs/performance.md).
. "$(dirname "$0")/../scripts/lib.sh"

AGENTID_BUILD=${AGENTID_BUILD:-$AGENTID_SRC/build}
install_deps
build "$AGENTID_BUILD"
make_tmp
start_swtpm
start_bus

out=${AGENTID_BENCH_OUT:-$AGENTID_TMP}
mkdir -p "$out"
csv="$out/performance-daemon.csv"
rm -f "$csv"
art="$AGENTID_TMP/artefacts"
mkdir -p "$art"

rounds=5
for a in "$@"; do
        case $a in
        --rounds=*) rounds=${a#--rounds=} ;;
        esac
done

/usr/bin/python3 - "$AGENTID_TMP/policy.json" <<'PY'
import json, sys
rules = [{"name": "other-%d" % i, "keys": ["other-%d-*" % i], "actions": ["sign"], "effect": "allow"}
         for i in range(999)]
rules.append({"name": "bench", "keys": ["bench"], "actions": ["sign"], "effect": "allow"})
json.dump({"version": 1, "rules": rules}, open(sys.argv[1], "w"))
PY

# median of the numbers on stdin
median() {
        sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# rate N CMD...: runs CMD N times, prints calls per second (wall clock, including process start-up).
rate() {
        n=$1
        shift
        t0=$(date +%s%N)
        i=0
        while [ "$i" -lt "$n" ]; do
                "$@" >/dev/null 2>&1 || die "failed: $*"
                i=$((i + 1))
        done
        t1=$(date +%s%N)
        awk -v n="$n" -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f\n", n / (ns / 1e9) }'
}

# csv_row RUN ROW RATE: a row for a process-per-call measurement (p50 = the median time per call).
csv_row() {
        awk -v run="$1" -v row="$2" -v r="$3" 'BEGIN { printf "%s,%s,1,%s,,%.3f,\n", run, row, r, 1e3 / r }' >>"$csv"
}

# ---- 1. no agentidd on the TPM: Esys_Create and tpm2_sign ---------------------------------------------
export TPM2TOOLS_TCTI="$AGENTID_TCTI"
tools="$AGENTID_TMP/tools"
mkdir -p "$tools"

say "limit of CreateKey: Esys_Create in-process"
"$AGENTID_BUILD/bench/agentid-bench-daemon" --create-limit --csv="$csv" --label=tpm "$@"

say "tpm2-tools: tpm2_sign + tpm2_flushcontext per signature"
(
        cd "$tools"
        # The key as a user makes one: an ECC primary under the owner hierarchy, a P-256 ECDSA key,
        # loaded once and its context saved. No resource manager: flush what every tool leaves behind.
        tpm2_createprimary -Q -C o -G ecc -c primary.ctx
        tpm2_create -Q -C primary.ctx -G ecc256:ecdsa-sha256 -u key.pub -r key.priv
        tpm2_flushcontext -t
        tpm2_load -Q -C primary.ctx -u key.pub -r key.priv -c key.ctx
        tpm2_flushcontext -t
        head -c 32 /dev/urandom >digest.bin
        # For the quote comparison in step 4: an EK, an AK under it, one quote of PCRs 0-7.
        tpm2_createek -Q -c ek.ctx -G ecc -u ek.pub
        tpm2_createak -Q -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pem -f pem -n ak.name
        tpm2_flushcontext -t
        tpm2_quote -Q -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q 00112233445566778899aabbccddeeff -m quote.msg \
                -s quote.sig -o quote.pcrs -g sha256
        tpm2_flushcontext -t
) || die "tpm2-tools set-up failed"
sign_once() {
        tpm2_sign -c "$tools/key.ctx" -g sha256 -d -f plain -o "$tools/sig.bin" "$tools/digest.bin" &&
                tpm2_flushcontext -t
}
for _ in $(seq "$rounds"); do
        rate 30 sign_once
done | median >"$AGENTID_TMP/tpm2_sign.rate"
echo "tpm2_sign: $(cat "$AGENTID_TMP/tpm2_sign.rate") signatures/s"
csv_row tpm2-tools tpm2_sign "$(cat "$AGENTID_TMP/tpm2_sign.rate")"

# ---- 2., 3. agentidd -------------------------------------------------------------------------------
run() {
        what=$1 label=$2 bdir=$3
        shift 3
        start_daemon "$bdir" "$@"
        [ -f "$AGENTID_TMP/state/keys/bench" ] ||
                "$AGENTID_BUILD/ctl/agentidctl" create bench --owner=bench --uid=0 >/dev/null
        say "$what"
        "$AGENTID_BUILD/bench/agentid-bench-daemon" --label="$label" --csv="$csv" $bench_args
        kill "$AGENTID_DAEMON_PID"
        wait "$AGENTID_DAEMON_PID" 2>/dev/null || true
}
bench_args="$*"
[ -n "${AGENTID_BENCH_BASELINE:-}" ] &&
        run "baseline: $AGENTID_BENCH_BASELINE/dbus/agentidd without a policy" baseline "$AGENTID_BENCH_BASELINE" \
                --policy=
bench_args="$* --ops=signmessage,issuetoken,attest,task-sign,createkey --save=$art"
run "agentidd without a policy (audit on)" nopolicy "$AGENTID_BUILD" --policy=
bench_args="$*"
run "agentidd with 1,000 policy rules, the last one deciding (audit on)" policy1000 "$AGENTID_BUILD" \
        --policy="$AGENTID_TMP/policy.json"

# ---- 4. verification per core ---------------------------------------------------------------------
say "verification on one core: tpm2_checkquote per quote, agentid-verify per evidence and token"
verify="$AGENTID_BUILD/tools/agentid-verify"
nonce=$(cat "$art/nonce.hex")
# The evidence must verify: otherwise the rate below would time an error path.
"$verify" evidence --nonce="$nonce" --trusted-ak="$art/ak.tpmt" --max-age=86400 "$art/evidence.cbor" >/dev/null ||
        die "agentid-verify refuses the benchmark's evidence"
"$verify" token --public-key="$art/key.der" --audience=bench-api "$art/token.cbor" >/dev/null ||
        die "agentid-verify refuses the benchmark's token"
tpm2_checkquote -u "$tools/ak.pem" -m "$tools/quote.msg" -s "$tools/quote.sig" -f "$tools/quote.pcrs" -g sha256 \
        -q 00112233445566778899aabbccddeeff >/dev/null || die "tpm2_checkquote refuses its quote"
for what in checkquote evidence token; do
        for _ in $(seq "$rounds"); do
                case $what in
                checkquote)
                        rate 50 taskset -c 0 tpm2_checkquote -u "$tools/ak.pem" -m "$tools/quote.msg" \
                                -s "$tools/quote.sig" -f "$tools/quote.pcrs" -g sha256 \
                                -q 00112233445566778899aabbccddeeff ;;
                evidence)
                        rate 50 taskset -c 0 "$verify" evidence --nonce="$nonce" --trusted-ak="$art/ak.tpmt" \
                                --max-age=86400 "$art/evidence.cbor" ;;
                token)
                        rate 50 taskset -c 0 "$verify" token --public-key="$art/key.der" --audience=bench-api \
                                "$art/token.cbor" ;;
                esac
        done | median >"$AGENTID_TMP/$what.rate"
done
echo "tpm2_checkquote: $(cat "$AGENTID_TMP/checkquote.rate")/s; agentid-verify evidence:" \
        "$(cat "$AGENTID_TMP/evidence.rate")/s, token: $(cat "$AGENTID_TMP/token.rate")/s (one process each)"
csv_row process tpm2_checkquote "$(cat "$AGENTID_TMP/checkquote.rate")"
csv_row process agentid-verify-evidence "$(cat "$AGENTID_TMP/evidence.rate")"
csv_row process agentid-verify-token "$(cat "$AGENTID_TMP/token.rate")"

taskset -c 0 "$AGENTID_BUILD/bench/agentid-bench-verify" --csv="$csv"

say "CSV: $csv"

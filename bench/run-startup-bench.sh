#!/bin/sh
# agentidd's start-up time (fork until org.agentid1 is owned on the bus) and peak RSS (VmHWM) with
# 10, 1,000 and 10,000 keys, on a private swtpm and bus. Usage: run-startup-bench.sh [--rounds=N]
#
# Creating 10,000 TPM keys takes minutes, so the first run creates them once (through the keystore
# API, in agentid-bench-startup) and keeps the swtpm state and the three state directories in
# AGENTID_BENCH_CACHE (default /tmp/agentid-bench-cache); later runs copy them. The keys are wrapped
# under that swtpm's storage root key, so the cache holds both. Delete the directory to start over.
#
# AGENTID_BUILD=DIR builds and runs DIR (default: build/). AGENTID_BENCH_OUT=DIR keeps the CSV
# (performance-startup.csv) there.
. "$(dirname "$0")/../scripts/lib.sh"

AGENTID_BUILD=${AGENTID_BUILD:-$AGENTID_SRC/build}
cache=${AGENTID_BENCH_CACHE:-/tmp/agentid-bench-cache}
bench="$AGENTID_BUILD/bench/agentid-bench-startup"
install_deps
build "$AGENTID_BUILD"
make_tmp

out=${AGENTID_BENCH_OUT:-$AGENTID_TMP}
mkdir -p "$out"
csv="$out/performance-startup.csv"
rm -f "$csv"

# swtpm_at STATE_DIR: swtpm_on (scripts/lib.sh) with a fresh socket name.
swtpm_at() {
        swtpm_on "$1" "$AGENTID_TMP/tpm-$$-$(date +%s%N).sock"
}

swtpm_stop() {
        kill "$SWTPM_PID"
        wait "$SWTPM_PID" 2>/dev/null || true
}

if [ ! -f "$cache/done" ]; then
        say "Creating 10,000 keys once (cached in $cache)"
        mkdir -p "$cache"
        [ -d "$cache/tpm-state" ] || {
                sh "$AGENTID_SRC/tests/lib/make-tpm-template.sh" "$AGENTID_TMP/tpm-template" ||
                        die "swtpm_setup failed"
                cp -a "$AGENTID_TMP/tpm-template/state" "$cache/tpm-state"
        }
        swtpm_at "$cache/tpm-state"
        "$bench" populate --state-dir="$cache/state-10000" --keys=10000 || die "creating the keys failed"
        swtpm_stop
        # Fewer keys: the same state with only the first records (each record is a file of its own).
        for n in 10 1000; do
                rm -rf "$cache/state-$n"
                cp -a "$cache/state-10000" "$cache/state-$n"
                find "$cache/state-$n/keys" -maxdepth 1 -type f -name 'k[0-9]*' | sort | tail -n +$((n + 1)) |
                        xargs rm -f
        done
        touch "$cache/done"
fi

start_bus
cp -a "$cache/tpm-state" "$AGENTID_TMP/tpm-state"
swtpm_at "$AGENTID_TMP/tpm-state"
for n in 10 1000 10000; do
        rm -rf "$AGENTID_TMP/state"
        cp -a "$cache/state-$n" "$AGENTID_TMP/state"
        "$bench" measure --state-dir="$AGENTID_TMP/state" --agentidd="$AGENTID_BUILD/dbus/agentidd" --keys="$n" \
                --label="$n-keys" --csv="$csv" "$@" -- --policy= ||
                die "measuring $n keys failed (see above)"
done
say "CSV: $csv"

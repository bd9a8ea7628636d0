#!/bin/sh
# Every benchmark of docs/performance.md in one go, on a private swtpm and bus; writes
# docs/performance-daemon.csv, docs/performance-startup.csv, docs/performance-latency.csv (a model of
# a hardware TPM: 40 ms signatures), docs/performance.json and docs/performance-sign.png, and prints the targets of issue 11 against the numbers.
#
# Usage: sh bench/run-all.sh [--rounds=N] [--seconds=S]   (passed to run-daemon-bench.sh; default 5 x 3 s)
# AGENTID_BUILD=DIR (default build/), AGENTID_BENCH_OUT=DIR (default docs/). Takes about 10 minutes,
# plus a few minutes the first time to create the 10,000 keys of the start-up benchmark (cached in
# /tmp/agentid-bench-cache). Run it on an otherwise idle machine: the numbers are only as quiet as it.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
export AGENTID_BENCH_OUT="${AGENTID_BENCH_OUT:-$src/docs}"

# The plot needs gnuplot; only the benchmarks install it, never the build or the tests.
if ! command -v gnuplot >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ]; then
                echo "gnuplot is missing (Debian: gnuplot-nox); run as root to install it" >&2
                exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null ||
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                        gnuplot-nox >/dev/null; }
fi

sh "$src/bench/run-daemon-bench.sh" "$@"
sh "$src/bench/run-startup-bench.sh"
rm -f "$AGENTID_BENCH_OUT/performance-latency.csv"
sh "$src/bench/run-latency-bench.sh" --sign-ms=40 --other-ms=5
sh "$src/bench/run-latency-bench.sh" --sign-ms=30 --other-ms=2
sh "$src/bench/plot.sh" "$AGENTID_BENCH_OUT/performance-daemon.csv" "$AGENTID_BENCH_OUT/performance-sign.png"
/usr/bin/python3 "$src/bench/report.py" "$AGENTID_BENCH_OUT/performance-daemon.csv" \
        "$AGENTID_BENCH_OUT/performance-startup.csv" --json="$AGENTID_BENCH_OUT/performance.json"
echo "Written: $AGENTID_BENCH_OUT/performance-daemon.csv performance-startup.csv performance.json performance-sign.png"

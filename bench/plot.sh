#!/bin/sh
# plot.sh CSV PNG: Sign over D-Bus from run-daemon-bench.sh's CSV — throughput and p99 latency against
# the number of clients, with the limit (Esys_Sign in-process on the same swtpm) as a line. gnuplot
# (Debian: gnuplot-nox) draws it; run-all.sh installs it when missing.
set -eu

csv=$1 png=$2
tmp=$(mktemp -d /tmp/agentid-plot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# One data file per agentidd run: clients, sign/s, p99 ms.
for run in nopolicy policy1000 baseline; do
        awk -F, -v run="$run" '$1 == run && $2 == "sign" { print $3, $4, $7 }' "$csv" >"$tmp/$run.dat"
done
limit=$(awk -F, '$1 == "nopolicy" && $2 == "limit-sign" { print $4 }' "$csv")
limit_p99=$(awk -F, '$1 == "nopolicy" && $2 == "limit-sign" { print $7 }' "$csv")
[ -s "$tmp/nopolicy.dat" ] && [ -n "$limit" ] || { echo "plot.sh: no Sign rows in $csv" >&2; exit 1; }

extra=""
[ -s "$tmp/baseline.dat" ] && extra=", '$tmp/baseline.dat' using 1:COL with linespoints lw 2 pt 9 title 'baseline'"

gnuplot <<GP
set terminal pngcairo size 1000,420 font 'DejaVu Sans,10'
set output '$png'
set datafile separator ' '
set multiplot layout 1,2 title "agentidd Key.Sign over D-Bus on swtpm (ECDSA P-256), one run; medians over rounds"
set logscale x 2
set xtics (1, 4, 16, 64)
set xrange [0.8:80]
set xlabel 'concurrent clients (own bus connection each)'
set grid
set key bottom right
set ylabel 'signatures per second'
set yrange [0:*]
plot $limit with lines dt 2 lw 2 lc rgb '#444444' title 'limit: Esys\\_Sign in-process', \
     '$tmp/nopolicy.dat' using 1:2 with linespoints lw 2 pt 7 title 'agentidd, audit on', \
     '$tmp/policy1000.dat' using 1:2 with linespoints lw 2 pt 5 title 'agentidd, audit on, 1,000 policy rules' \
     $(echo "$extra" | sed 's/COL/2/')
set ylabel 'p99 latency (ms)'
set logscale y
set yrange [*:*]
set key top left
plot $limit_p99 with lines dt 2 lw 2 lc rgb '#444444' title 'limit: Esys\\_Sign p99, one caller', \
     '$tmp/nopolicy.dat' using 1:3 with linespoints lw 2 pt 7 title 'agentidd, audit on', \
     '$tmp/policy1000.dat' using 1:3 with linespoints lw 2 pt 5 title 'agentidd, audit on, 1,000 policy rules' \
     $(echo "$extra" | sed 's/COL/3/')
unset multiplot
GP

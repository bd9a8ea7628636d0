#!/bin/sh
# Installs the build into a scratch root and checks the systemd unit the way systemd 252 reads it:
# `systemd-analyze verify` must be clean, and the offline security exposure must stay at or below 1.5
# (hostnamed's score here). Also checks that the bus policy and activation files are installed.
# usage: test-units.sh BUILD_DIR
set -eu

build=$1
root=$(mktemp -d /tmp/agentid-units.XXXXXX)
trap 'rm -rf "$root"' EXIT

DESTDIR="$root" meson install -C "$build" --no-rebuild --quiet
unit=$(cd "$root" && find . -name agentidd.service -path '*systemd/system*' | head -n1 | sed 's|^\.||')
[ -n "$unit" ] || { echo "agentidd.service was not installed" >&2; exit 1; }
find "$root" -name org.agentid1.conf -path '*dbus-1/system.d*' | grep -q . || { echo "bus policy not installed" >&2; exit 1; }
find "$root" -name org.agentid1.service -path '*dbus-1/system-services*' | grep -q . ||
        { echo "activation file not installed" >&2; exit 1; }

# What the unit refers to outside this project: the stock targets, slices and sockets, and kill(1).
mkdir -p "$root/lib/systemd/system" "$root/usr/bin"
cp -a /lib/systemd/system/*.target /lib/systemd/system/*.slice /lib/systemd/system/*.socket \
        "$root/lib/systemd/system/" 2>/dev/null || true
cp /usr/bin/kill "$root/usr/bin/"

out=$(systemd-analyze verify --man=no --root="$root" "$unit" 2>&1) || { echo "$out" >&2; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify complained:" >&2; echo "$out" >&2; exit 1; }
echo "systemd-analyze verify: clean"

exposure=$(systemd-analyze security --offline=yes --root="$root" agentidd.service 2>/dev/null |
        sed -n 's/.*exposure level for agentidd.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || { echo "no exposure score" >&2; exit 1; }
echo "systemd-analyze security exposure: $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e <= 1.5) }' || { echo "exposure $exposure is above 1.5" >&2; exit 1; }

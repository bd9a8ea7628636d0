# Shared by the run, test and benchmark scripts: dependencies, build, a private swtpm.
# Sourced, not executed. Everything started here is stopped by pid on exit.

set -eu

AGENTID_SRC=${AGENTID_SRC:-$(cd "$(dirname "$0")/.." && pwd)}

# Debian packages the project needs to build, test and run its scenario.
AGENTID_PACKAGES="gcc clang libc6-dev meson ninja-build pkg-config
libtss2-dev libcbor-dev libsystemd-dev libssl-dev libjansson-dev libcmocka-dev
swtpm swtpm-tools tpm2-tools openssl valgrind
dbus-daemon util-linux systemd python3 python3-dbus python3-gi python3-cryptography python3-cbor2"

say() {
        printf '\033[1m==> %s\033[0m\n' "$*"
}

die() {
        printf 'error: %s\n' "$*" >&2
        exit 1
}

# Install whatever is missing (apt-get update first); fails loudly when it cannot.
install_deps() {
        missing=""
        for p in $AGENTID_PACKAGES; do
                dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
                        missing="$missing $p"
        done
        [ -z "$missing" ] && return 0
        [ "$(id -u)" -eq 0 ] || die "missing Debian packages:$missing (run as root to install them)"
        say "Installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || die "apt-get update failed"
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install failed"
}

# build DIR [meson options...]
build() {
        dir=$1
        shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" "$AGENTID_SRC" "$@" >/dev/null || die "meson setup $dir failed"
        fi
        ninja -C "$dir" >/dev/null || { ninja -C "$dir"; die "build in $dir failed"; }
}

AGENTID_PIDS=""
AGENTID_TMP=""

cleanup() {
        for pid in $AGENTID_PIDS; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        [ -n "$AGENTID_TMP" ] && rm -rf "$AGENTID_TMP"
}

make_tmp() {
        AGENTID_TMP=$(mktemp -d /tmp/agentid-run.XXXXXX)
        trap cleanup EXIT INT TERM
}

# start_swtpm: a manufactured swtpm (EKs and certificates) on a private unix socket in $AGENTID_TMP;
# sets AGENTID_TCTI.
start_swtpm() {
        sh "$AGENTID_SRC/tests/lib/make-tpm-template.sh" "$AGENTID_TMP/tpm-template" ||
                die "swtpm_setup failed"
        cp -a "$AGENTID_TMP/tpm-template/state" "$AGENTID_TMP/tpm-state"
        swtpm_on "$AGENTID_TMP/tpm-state" "$AGENTID_TMP/tpm.sock"
}

# swtpm_on STATE_DIR SOCKET: a swtpm over that state on a private socket (SOCKET.ctrl its control
# channel), stopped at exit; sets SWTPM_PID and AGENTID_TCTI.
swtpm_on() {
        swtpm socket --tpm2 --tpmstate "dir=$1" --server "type=unixio,path=$2" --ctrl "type=unixio,path=$2.ctrl" \
                --flags not-need-init,startup-clear >>"$AGENTID_TMP/swtpm.log" 2>&1 &
        SWTPM_PID=$!
        AGENTID_PIDS="$AGENTID_PIDS $SWTPM_PID"
        wait_for_socket "$2" "swtpm (see $AGENTID_TMP/swtpm.log)"
        export AGENTID_TCTI="swtpm:path=$2"
        # tss2 prints every TPM error it sees; agentid reports errors itself.
        export TSS2_LOG="${TSS2_LOG:-all+none}"
}

# wait_for_socket PATH WHAT: up to 5 s for a process to create its socket.
wait_for_socket() {
        for _ in $(seq 100); do
                [ -S "$1" ] && return 0
                sleep 0.05
        done
        die "$2 did not start"
}

# start_bus: a private system-type dbus-daemon whose policy includes the project's own
# units/org.agentid1.conf; sets DBUS_SYSTEM_BUS_ADDRESS.
start_bus() {
        cat >"$AGENTID_TMP/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$AGENTID_TMP/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"/>
  </policy>
  <include>$AGENTID_SRC/units/org.agentid1.conf</include>
</busconfig>
CONF
        dbus-daemon --config-file="$AGENTID_TMP/bus.conf" --nofork --print-address=1 \
                >"$AGENTID_TMP/bus.address" 2>"$AGENTID_TMP/bus.log" &
        AGENTID_PIDS="$AGENTID_PIDS $!"
        for _ in $(seq 100); do
                [ -s "$AGENTID_TMP/bus.address" ] && break
                sleep 0.05
        done
        [ -s "$AGENTID_TMP/bus.address" ] || die "dbus-daemon did not start (see $AGENTID_TMP/bus.log)"
        DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$AGENTID_TMP/bus.address")
        export DBUS_SYSTEM_BUS_ADDRESS
}

# start_daemon BUILD_DIR [agentidd options]: agentidd on the private bus and swtpm; waits for its name.
start_daemon() {
        bdir=$1
        shift
        "$bdir/dbus/agentidd" --tcti="$AGENTID_TCTI" --state-dir="$AGENTID_TMP/state" "$@" \
                >>"$AGENTID_TMP/agentidd.log" 2>&1 &
        AGENTID_DAEMON_PID=$!
        AGENTID_PIDS="$AGENTID_PIDS $AGENTID_DAEMON_PID"
        for _ in $(seq 200); do
                busctl --system status org.agentid1 >/dev/null 2>&1 && return 0
                kill -0 "$AGENTID_DAEMON_PID" 2>/dev/null || break
                sleep 0.05
        done
        cat "$AGENTID_TMP/agentidd.log" >&2
        die "agentidd did not come up"
}

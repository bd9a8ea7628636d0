#!/bin/sh
# The main job, end to end on a private software TPM and a private system bus:
#   an admin creates TPM-resident identities for two agents that run as two different uids;
#   each agent signs a request carrying a task ID and the other verifies it with the public key alone;
#   a third uid is refused; one agent retires: its key is destroyed, the signed receipt is shown,
#   and the key can no longer sign.
# Installs missing Debian packages (as root), builds, starts swtpm, dbus-daemon and agentidd, and
# stops them again by pid.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root: the scenario switches to other uids with setpriv"
# The test suite runs this scenario on the build it tests (AGENTID_BUILD_DIR); by hand it builds.
if [ -n "${AGENTID_BUILD_DIR:-}" ]; then
        bdir=$AGENTID_BUILD_DIR
else
        install_deps
        bdir="$AGENTID_SRC/build"
        build "$bdir"
fi
make_tmp
chmod 0755 "$AGENTID_TMP"

ctl="$bdir/ctl/agentidctl"
PLANNER=daemon      # uid 1 on Debian: runs agent "planner"
PAYMENTS=bin        # uid 2: runs agent "payments"
OUTSIDER=nobody     # uid 65534: has no key
as() {
        user=$1
        shift
        setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups "$@"
}
step() {
        printf '\n\033[1;34m--- %s\033[0m\n' "$*"
}
for u in $PLANNER $PAYMENTS; do
        mkdir -p "$AGENTID_TMP/$u"
        chown "$u:" "$AGENTID_TMP/$u"
done

step "1. Start a private software TPM, a private system bus, and agentidd"
start_swtpm
start_bus
start_daemon "$bdir"
"$ctl" status

step "2. The admin creates an identity for each agent, with an accountable owner"
"$ctl" create planner --owner="research-platform@example.com" --user-name=$PLANNER --ttl=86400 \
        --description="plans supplier payments"
"$ctl" create payments --owner="finance-platform@example.com" --user-name=$PAYMENTS --ttl=86400 \
        --description="executes approved payments"
"$ctl" list
"$ctl" show planner

step "3. planner (uid $(id -u $PLANNER)) signs a request for payments, carrying its task ID"
cat >"$AGENTID_TMP/$PLANNER/request.json" <<JSON
{"task_id": "task-7f3a", "action": "pay", "supplier": "ACME", "amount": "120.00"}
JSON
cat "$AGENTID_TMP/$PLANNER/request.json"
as $PLANNER "$ctl" sign planner "$AGENTID_TMP/$PLANNER/request.json" --task-id=task-7f3a \
        --audience="agentid://payments" --format=der --output="$AGENTID_TMP/$PLANNER/request.sig"
echo "signature: $(base64 -w0 "$AGENTID_TMP/$PLANNER/request.sig")"

step "4. payments (uid $(id -u $PAYMENTS)) verifies it with planner's public key alone"
"$ctl" public-key planner --output="$AGENTID_TMP/planner.pem"
cat "$AGENTID_TMP/planner.pem"
as $PAYMENTS openssl dgst -sha256 -verify "$AGENTID_TMP/planner.pem" \
        -signature "$AGENTID_TMP/$PLANNER/request.sig" "$AGENTID_TMP/$PLANNER/request.json"

step "5. payments answers with a signed result; planner verifies it"
cat >"$AGENTID_TMP/$PAYMENTS/result.json" <<JSON
{"task_id": "task-7f3a", "status": "paid", "reference": "PAY-20261125-0042"}
JSON
as $PAYMENTS "$ctl" sign payments "$AGENTID_TMP/$PAYMENTS/result.json" --task-id=task-7f3a \
        --parent-task-id=task-7f3a --format=der --output="$AGENTID_TMP/$PAYMENTS/result.sig"
"$ctl" public-key payments --output="$AGENTID_TMP/payments.pem"
as $PLANNER openssl dgst -sha256 -verify "$AGENTID_TMP/payments.pem" \
        -signature "$AGENTID_TMP/$PAYMENTS/result.sig" "$AGENTID_TMP/$PAYMENTS/result.json"

step "6. Nobody else may use an agent's key: uid $(id -u $OUTSIDER) and root are refused"
if as $OUTSIDER "$ctl" sign planner "$AGENTID_TMP/$PLANNER/request.json" >/dev/null; then
        die "uid $(id -u $OUTSIDER) signed with planner's key"
fi
if "$ctl" sign planner "$AGENTID_TMP/$PLANNER/request.json" >/dev/null; then
        die "root signed with planner's key"
fi
echo "(both refused, as they must be)"

step "7. payments retires: the admin destroys its key and gets a signed receipt"
"$ctl" destroy payments --reason="agent retired: supplier payments moved to a new service" \
        --output="$AGENTID_TMP/payments.receipt"
/usr/bin/python3 - "$AGENTID_TMP/payments.receipt" <<'PY'
import sys, cbor2
data = open(sys.argv[1], "rb").read()
assert data[0] == 0xd2, "not a tagged COSE_Sign1"
protected, unprotected, payload, signature = cbor2.loads(data[1:])
print("receipt (COSE_Sign1, %d bytes), signed by the host key %s" % (len(data), cbor2.loads(protected)[4].hex()))
for k, v in cbor2.loads(payload).items():
        print("  %-12s %s" % (k, v.hex() if isinstance(v, bytes) else v))
PY
"$ctl" list

step "8. The destroyed key can no longer sign"
if as $PAYMENTS "$ctl" sign payments "$AGENTID_TMP/$PAYMENTS/result.json" >/dev/null; then
        die "a destroyed key signed"
fi
echo "(refused, as it must be)"

printf '\n\033[1;32mScenario complete.\033[0m\n'

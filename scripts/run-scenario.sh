#!/bin/sh
# The main job, end to end on a private software TPM and a private system bus:
#   an admin creates TPM-resident identities for two agents that run as two different uids;
#   each agent signs a request carrying a task ID and the other verifies it with the public key alone;
#   the same hop in Python: an agent over D-Bus (examples/agent.py) and a peer that verifies its
#   request and task token with agentid-verify and refuses tampered or misaddressed ones (examples/peer.py);
#   policy-as-code decides every request: planner must name a task, and each payment needs a human's
#   approval, which the admin gives;
#   the verifier also checks TPM evidence that the signing key lives in this host's TPM;
#   a third uid is refused; one agent retires: its key is destroyed, the receipt is verified against
#   the TPM-certified host key, an offboarding hook tells the peers, and the key can no longer sign;
#   the other agent's key is rotated: the token it issued before is refused by a verifier holding the
#   host's signed revocation list, and the rotation statement vouches for the new key.
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
verify="$bdir/tools/agentid-verify"
# Prints a verdict and the claims a peer cares about from agentid-verify's JSON.
summary() {
        /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
print("verdict:", d["verdict"], "(%d checks)" % len(d["checks"]))
for name in sys.argv[1:]:
        v = d["claims"]
        for part in name.split("."):
                v = v.get(part, {}) if isinstance(v, dict) else {}
        print("  %-22s %s" % (name, v))
sys.exit(d["verdict"] != "valid")' "$@"
}
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

step "1. Start a private software TPM, a private system bus, and agentidd with its policy"
cat >"$AGENTID_TMP/policy.json" <<'JSON'
{
  "version": 1,
  "rules": [
    {"name": "planner-works-in-tasks", "keys": ["planner"],
     "actions": ["sign", "sign_message", "issue_token", "attest"], "require_task": true, "effect": "allow"},
    {"name": "a-human-approves-payments", "keys": ["payments"], "actions": ["sign"], "tasks": ["task-*"],
     "effect": "confirm"},
    {"name": "payments-evidence", "keys": ["payments"], "actions": ["attest"], "effect": "allow"}
  ]
}
JSON
"$ctl" policy check "$AGENTID_TMP/policy.json"
# An offboarding hook: here it only writes the notice a real one would send to the agent's peers.
mkdir -m 0755 "$AGENTID_TMP/offboard.d"
cat >"$AGENTID_TMP/offboard.d/50-notify-peers" <<SH
#!/bin/sh
echo "\$AGENTID_EVENT \$AGENTID_KEY kid=\$AGENTID_KID owner=\$AGENTID_OWNER reason=\$AGENTID_REASON" \\
        >>"$AGENTID_TMP/peer-notices.log"
SH
chmod 0755 "$AGENTID_TMP/offboard.d/50-notify-peers"
start_swtpm
start_bus
start_daemon "$bdir" --policy="$AGENTID_TMP/policy.json" --offboard-hooks="$AGENTID_TMP/offboard.d"
"$ctl" status

step "1b. A verifier enrolls this host's attestation key against the TPM's EK certificate"
# swtpm's EK certificates come from a local CA made with the TPM: it plays the TPM manufacturer here.
ca="$AGENTID_TMP/tpm-template/ca/var/lib/swtpm-localca"
mkdir -p "$AGENTID_TMP/verifier"
"$ctl" enroll request --output="$AGENTID_TMP/enroll-request.cbor"
"$verify" enroll challenge --ek-ca="$ca/swtpm-localca-rootca-cert.pem" --ek-ca="$ca/issuercert.pem" \
        --request="$AGENTID_TMP/enroll-request.cbor" --out="$AGENTID_TMP/challenge.cbor" \
        --state="$AGENTID_TMP/verifier/enroll.state" >/dev/null
"$ctl" enroll respond --challenge="$AGENTID_TMP/challenge.cbor" --output="$AGENTID_TMP/response.cbor"
"$verify" enroll finish --state="$AGENTID_TMP/verifier/enroll.state" --response="$AGENTID_TMP/response.cbor" \
        --out="$AGENTID_TMP/ak.record" | /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
assert d["verdict"] == "valid", d
print("AK enrolled: the TPM that owns the certified EK released the credential")'
# The record is what verifiers trust from now on (--trusted-ak accepts it).
ak="$AGENTID_TMP/ak.record"
chmod 0644 "$ak"

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

step "4b. ...and checks that the key lives in this host's TPM: fresh evidence for its own nonce"
nonce=$(openssl rand -hex 32)
as $PLANNER "$ctl" attest planner --nonce="$nonce" --task-id=task-7f3a --output="$AGENTID_TMP/$PLANNER/evidence.cbor"
as $PAYMENTS "$verify" evidence --nonce="$nonce" --trusted-ak="$ak" \
        "$AGENTID_TMP/$PLANNER/evidence.cbor" | summary sub owner task_id workload.uid workload.exe_path tpm.reset_count
"$ctl" public-key planner --format=der --output="$AGENTID_TMP/planner.der"
as $PAYMENTS "$verify" evidence --nonce="$nonce" --trusted-ak="$ak" \
        "$AGENTID_TMP/$PLANNER/evidence.cbor" | /usr/bin/python3 -c 'import json, sys
certified = bytes.fromhex(json.load(sys.stdin)["claims"]["public_key"])
assert certified == open(sys.argv[1], "rb").read(), "evidence certifies another key"
print("  the TPM-certified key is the key that signed the request")' "$AGENTID_TMP/planner.der"
if as $PAYMENTS "$verify" evidence --nonce="$(openssl rand -hex 32)" --trusted-ak="$ak" \
        "$AGENTID_TMP/$PLANNER/evidence.cbor" >/dev/null; then
        die "evidence verified for another nonce"
fi
echo "  (the same evidence for another nonce is refused: it cannot be replayed)"

step "4c. planner hands payments a task token; payments checks it against the same evidence"
payments_uri=$("$ctl" show payments --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["Uri"])')
as $PLANNER "$ctl" issue-token planner --audience="$payments_uri" --task-id=task-7f3a --scope=payments:execute \
        --ttl=600 --output="$AGENTID_TMP/$PLANNER/task.cwt"
chmod 0644 "$AGENTID_TMP/$PLANNER/task.cwt" "$AGENTID_TMP/$PLANNER/evidence.cbor"
as $PAYMENTS "$verify" token --evidence="$AGENTID_TMP/$PLANNER/evidence.cbor" --nonce="$nonce" --trusted-ak="$ak" \
        --audience="$payments_uri" "$AGENTID_TMP/$PLANNER/task.cwt" |
        summary iss aud task_id scope owner
if as $PAYMENTS "$verify" token --public-key="$AGENTID_TMP/planner.der" --audience="agentid://someone-else" \
        "$AGENTID_TMP/$PLANNER/task.cwt" >/dev/null; then
        die "a token verified for another audience"
fi
echo "  (the same token presented to anyone else is refused: its audience is payments)"

step "4d. The same hop in Python: planner runs examples/agent.py, payments examples/peer.py"
# agent.py speaks D-Bus (python3-dbus): it signs the request with SignMessage for payments' URI and
# task-7f3a, gets a task token and evidence for payments' nonce. peer.py verifies both with
# agentid-verify and decides. Only /usr/bin/python3 has Debian's python3-dbus.
hop="$AGENTID_TMP/$PLANNER/hop"
as $PLANNER mkdir "$hop"
planner_uri=$("$ctl" show planner --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["Uri"])')
nonce=$(openssl rand -hex 32)
echo "[planner, uid $(id -u $PLANNER): examples/agent.py, with payments' nonce]"
as $PLANNER /usr/bin/python3 "$AGENTID_SRC/examples/agent.py" planner --peer=payments --task-id=task-7f3a \
        --scope=payments:execute --ttl=600 --request="$AGENTID_TMP/$PLANNER/request.json" \
        --attest-nonce="$nonce" --out-dir="$hop"
peer_checks() {
        as $PAYMENTS /usr/bin/python3 "$AGENTID_SRC/examples/peer.py" --agentid-verify="$verify" \
                --audience="$payments_uri" --evidence="$hop/evidence.cbor" --nonce="$nonce" --trusted-ak="$ak" \
                --issuer="$planner_uri" --task-id=task-7f3a --scope=payments:execute "$@"
}
# refused CHECK [peer.py options]: payments refuses (exit 1), for the failed check CHECK — not a crash.
refused() {
        want=$1
        shift
        rc=0
        out=$(peer_checks "$@") || rc=$?
        echo "$out"
        [ "$rc" -eq 1 ] || return 1
        case $out in
        "REFUSE: "*"($want: "*) return 0 ;;
        *) return 1 ;;
        esac
}
echo "[payments, uid $(id -u $PAYMENTS): examples/peer.py, with planner's evidence and the enrolled AK]"
peer_checks --message="$hop/request.cose" --token="$hop/task.cwt" --request="$hop/request.json" ||
        die "payments refused planner's request"
# Someone on the way raises the amount inside the signed request: the signature no longer verifies.
/usr/bin/python3 -c 'import sys
m = open(sys.argv[1], "rb").read()
assert m.count(b"120.00") == 1, "the amount is not in the signed request"
open(sys.argv[2], "wb").write(m.replace(b"120.00", b"920.00"))' "$hop/request.cose" "$AGENTID_TMP/tampered.cose"
chmod 0644 "$AGENTID_TMP/tampered.cose"
printf '  amount changed in the signed request:  '
refused message_signature --message="$AGENTID_TMP/tampered.cose" --token="$hop/task.cwt" ||
        die "payments did not refuse a tampered request"
# planner addresses a request and token to another agent: payments must not act on them.
hop2="$AGENTID_TMP/$PLANNER/hop-auditor"
as $PLANNER mkdir "$hop2"
as $PLANNER /usr/bin/python3 "$AGENTID_SRC/examples/agent.py" planner --peer-uri="${payments_uri%/*}/auditor" \
        --task-id=task-7f3a --scope=payments:execute --request="$AGENTID_TMP/$PLANNER/request.json" \
        --out-dir="$hop2" >/dev/null
printf '  request and token for another agent:   '
refused message_audience --message="$hop2/request.cose" --token="$hop2/task.cwt" ||
        die "payments did not refuse a request addressed to another agent"
printf '  only the token for another agent:      '
refused token_audience --message="$hop/request.cose" --token="$hop2/task.cwt" ||
        die "payments did not refuse a token addressed to another agent"

step "5. payments signs the payment; policy holds it until a human approves; planner verifies it"
cat >"$AGENTID_TMP/$PAYMENTS/result.json" <<JSON
{"task_id": "task-7f3a", "status": "paid", "reference": "PAY-20261125-0042"}
JSON
as $PAYMENTS "$ctl" sign payments "$AGENTID_TMP/$PAYMENTS/result.json" --task-id=task-7f3a \
        --parent-task-id=task-7f3a --format=der --output="$AGENTID_TMP/$PAYMENTS/result.sig" &
signer=$!
request=
for _ in $(seq 100); do
        request=$("$ctl" approvals --json | /usr/bin/python3 -c 'import json, sys
print(next((a["id"] for a in json.load(sys.stdin) if a["key"] == "payments"), ""))')
        [ -n "$request" ] && break
        sleep 0.1
done
[ -n "$request" ] || die "the payment was not held for approval"
"$ctl" approvals
"$ctl" approve "$request"
wait $signer || die "the approved payment was not signed"
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
# Nor through the D-Bus API directly: the Python agent of step 4d, run as uid 65534.
mkdir "$AGENTID_TMP/$OUTSIDER"
chown "$OUTSIDER:" "$AGENTID_TMP/$OUTSIDER"
rc=0
out=$(as $OUTSIDER /usr/bin/python3 "$AGENTID_SRC/examples/agent.py" planner --peer=payments --task-id=task-7f3a \
        --request="$AGENTID_TMP/$PLANNER/request.json" --out-dir="$AGENTID_TMP/$OUTSIDER" 2>&1 >/dev/null) || rc=$?
echo "$out"
case $rc:$out in
1:*org.freedesktop.DBus.Error.AccessDenied*) ;;
*) die "examples/agent.py as uid $(id -u $OUTSIDER): exit $rc, not refused with AccessDenied" ;;
esac
echo "(all refused, as they must be)"
if as $PLANNER "$ctl" sign planner "$AGENTID_TMP/$PLANNER/request.json" >/dev/null; then
        die "planner signed outside a task"
fi
echo "(planner without a task ID: refused by rule planner-works-in-tasks)"
"$ctl" policy explain --policy="$AGENTID_TMP/policy.json" --key=planner --action=sign --user-name=$PLANNER || true

step "7. payments retires: the admin destroys its key and gets a signed receipt"
"$ctl" destroy payments --reason="agent retired: supplier payments moved to a new service" \
        --output="$AGENTID_TMP/payments.receipt"
# Which key signs receipts? Platform evidence certifies the host key in the same TPM.
nonce=$(openssl rand -hex 32)
"$ctl" platform-evidence --nonce="$nonce" --output="$AGENTID_TMP/platform.cbor"
"$verify" platform --nonce="$nonce" --trusted-ak="$ak" "$AGENTID_TMP/platform.cbor" |
        /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
assert d["verdict"] == "valid", d["reason"]
open(sys.argv[1], "wb").write(bytes.fromhex(d["claims"]["host_public_key"]))
print("host key certified by the TPM:", d["claims"]["host_kid"])' "$AGENTID_TMP/host.der"
"$verify" receipt --host-key="$AGENTID_TMP/host.der" "$AGENTID_TMP/payments.receipt" | summary name owner reason by_uid

"$ctl" list

step "7a. Peers learn of it: the offboarding hook ran, and the host's revocation list names the key"
for _ in $(seq 100); do
        [ -s "$AGENTID_TMP/peer-notices.log" ] && break
        sleep 0.1
done
cat "$AGENTID_TMP/peer-notices.log" || die "the offboarding hook did not run"
"$ctl" revocations export --output="$AGENTID_TMP/revocations.cbor"
"$verify" revocations --host-key="$AGENTID_TMP/host.der" "$AGENTID_TMP/revocations.cbor"

step "7b. planner's key is rotated: the old key is revoked, the host and the old key vouch for the new one"
"$ctl" public-key planner --format=der --output="$AGENTID_TMP/planner-old.der"
"$ctl" rotate planner --reason="quarterly key rotation" --output="$AGENTID_TMP/planner-rotation.cose"
"$verify" rotation --old-key="$AGENTID_TMP/planner-old.der" --host-key="$AGENTID_TMP/host.der" \
        "$AGENTID_TMP/planner-rotation.cose"
"$ctl" revocations export --output="$AGENTID_TMP/revocations.cbor"
chmod 0644 "$AGENTID_TMP/revocations.cbor" "$AGENTID_TMP/host.der"
# The token planner issued in step 4c is still well-formed and signed, but a verifier holding the
# list refuses it: the key that signed it is revoked.
if as $PAYMENTS "$verify" token --public-key="$AGENTID_TMP/planner.der" --audience="$payments_uri" \
        --revocations="$AGENTID_TMP/revocations.cbor" --host-key="$AGENTID_TMP/host.der" \
        "$AGENTID_TMP/$PLANNER/task.cwt" >"$AGENTID_TMP/revoked-verdict.json"; then
        die "a token of a rotated-out key verified against the revocation list"
fi
/usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["reason"] == "revoked", d
print("  the old token is refused:", [c["detail"] for c in d["checks"] if c["name"] == "revoked"][0])' \
        "$AGENTID_TMP/revoked-verdict.json"
as $PLANNER "$ctl" sign planner "$AGENTID_TMP/$PLANNER/request.json" --task-id=task-7f3a \
        --format=der --output="$AGENTID_TMP/$PLANNER/request-new.sig"
"$ctl" public-key planner --output="$AGENTID_TMP/planner-new.pem"
as $PAYMENTS openssl dgst -sha256 -verify "$AGENTID_TMP/planner-new.pem" \
        -signature "$AGENTID_TMP/$PLANNER/request-new.sig" "$AGENTID_TMP/$PLANNER/request.json"
echo "  (planner signs on with its new key, under the same name and URI)"

step "7c. The audit log: every decision above, hash-chained, checked against a signed head"
"$ctl" audit-head --nonce="$(openssl rand -hex 32)" --output="$AGENTID_TMP/audit-head.cose"
"$ctl" audit show --state-dir="$AGENTID_TMP/state" | tail -n 8
"$ctl" audit verify --state-dir="$AGENTID_TMP/state" --host-key="$AGENTID_TMP/host.der" \
        --head="$AGENTID_TMP/audit-head.cose"

step "8. The destroyed key can no longer sign"
if as $PAYMENTS "$ctl" sign payments "$AGENTID_TMP/$PAYMENTS/result.json" >/dev/null; then
        die "a destroyed key signed"
fi
echo "(refused, as it must be)"

printf '\n\033[1;32mScenario complete.\033[0m\n'

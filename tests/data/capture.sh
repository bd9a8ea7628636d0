#!/bin/sh
# Re-captures the golden evidence in tests/data/ from a private swtpm through agentidd (run as root
# from the source tree after building build/). The files are public data: evidence, public keys,
# a receipt. The offline verifier tests check them with --now pinned to the capture time.
AGENTID_SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$AGENTID_SRC/scripts/lib.sh"

bdir="$AGENTID_SRC/build"
out="$AGENTID_SRC/tests/data"
make_tmp
chmod 0755 "$AGENTID_TMP"
start_swtpm
start_bus
start_daemon "$bdir"
ctl="$bdir/ctl/agentidctl"

nonce=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
"$ctl" create golden-agent --owner="golden@example.com" --uid=1 --description="golden evidence" >/dev/null
mkdir -p "$AGENTID_TMP/agent" && chown 1:1 "$AGENTID_TMP/agent"
setpriv --reuid=1 --regid=1 --clear-groups "$ctl" attest golden-agent --nonce=$nonce --task-id=task-golden \
        --output="$AGENTID_TMP/agent/agent.cbor"
cp "$AGENTID_TMP/agent/agent.cbor" "$out/agent-evidence.cbor"
"$ctl" platform-evidence --nonce=$nonce --output="$out/platform-evidence.cbor"
"$ctl" attestation-key --output="$out/ak-public.tpmt"
"$ctl" public-key golden-agent --format=der --output="$out/agent-public.der"
"$ctl" status --json | /usr/bin/python3 -c 'import json, sys
sys.stdout.buffer.write(bytes.fromhex(json.load(sys.stdin)["HostPublicKey"]))' >"$out/host-public.der"
"$ctl" destroy golden-agent --reason="golden receipt" --output="$out/receipt.cose"
echo "$nonce" >"$out/nonce.hex"
date +%s >"$out/captured-at.txt"
echo "captured into $out"

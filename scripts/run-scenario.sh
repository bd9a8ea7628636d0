#!/bin/sh
# The main job, end to end on a private software TPM: an admin creates a TPM-resident identity for an
# agent, the agent signs a request carrying a task ID, anyone verifies it with OpenSSL and the
# public key alone, the key is destroyed at retirement and then refuses to sign.
# Installs missing Debian packages (as root), builds, starts swtpm, and stops it again.
. "$(dirname "$0")/lib.sh"

install_deps
build "$AGENTID_SRC/build"
make_tmp

tool() {
        "$AGENTID_SRC/build/tools/agentid-keystore" --state-dir="$AGENTID_TMP/state" "$@"
}
step() {
        printf '\n\033[1;34m--- %s\033[0m\n' "$*"
}

step "1. Start a private software TPM (swtpm, manufactured with EK certificates)"
start_swtpm
echo "TCTI: $AGENTID_TCTI"
echo "host-id: $(tool host-id)"

step "2. Create a non-exportable signing key in the TPM for agent 'invoice-bot'"
tool create invoice-bot --owner="finance-platform@example.com" --uid=1000 --ttl=86400 \
        --description="pays approved invoices"

step "3. The agent signs a request that carries its task ID"
cat >"$AGENTID_TMP/request.json" <<JSON
{"task_id": "task-7f3a", "method": "POST", "url": "https://erp.example.com/payments", "amount": "120.00"}
JSON
cat "$AGENTID_TMP/request.json"
tool sign invoice-bot "$AGENTID_TMP/request.json" --format=der --output="$AGENTID_TMP/request.sig"
echo "signature: $(base64 -w0 "$AGENTID_TMP/request.sig")"

step "4. A verifier checks it with OpenSSL and the public key only"
tool public-key invoice-bot --output="$AGENTID_TMP/invoice-bot.der"
openssl pkey -pubin -inform DER -in "$AGENTID_TMP/invoice-bot.der" -out "$AGENTID_TMP/invoice-bot.pem"
cat "$AGENTID_TMP/invoice-bot.pem"
openssl dgst -sha256 -verify "$AGENTID_TMP/invoice-bot.pem" -signature "$AGENTID_TMP/request.sig" \
        "$AGENTID_TMP/request.json"

step "5. A tampered request does not verify"
sed 's/120.00/9120.00/' "$AGENTID_TMP/request.json" >"$AGENTID_TMP/tampered.json"
if openssl dgst -sha256 -verify "$AGENTID_TMP/invoice-bot.pem" -signature "$AGENTID_TMP/request.sig" \
        "$AGENTID_TMP/tampered.json"; then
        die "a tampered request verified"
fi
echo "(refused, as it must be)"

step "6. The agent retires: destroy its key"
tool list
tool destroy invoice-bot
tool list

step "7. The destroyed key refuses to sign, and its name stays reserved"
if tool sign invoice-bot "$AGENTID_TMP/request.json" >/dev/null; then
        die "a destroyed key signed"
fi
if tool create invoice-bot --owner="someone@example.com" >/dev/null; then
        die "a destroyed key's name was reused"
fi
echo "(both refused, as they must be)"

printf '\n\033[1;32mScenario complete.\033[0m\n'

#!/bin/sh
# Prepare a manufactured swtpm state once per build: an RSA-2048 and an ECC P-384 EK with
# certificates from a private local CA, a platform certificate, SHA-256 PCR bank only.
# Every TPM test copies this state into its own directory and runs its own swtpm on it.
#
# usage: make-tpm-template.sh DIR      (DIR/state, DIR/ca and DIR/done appear on success)
set -eu

dir=$1
tmp=$(mktemp -d "$dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A private swtpm-localca configuration: the system one writes to /var/lib/swtpm-localca.
export XDG_CONFIG_HOME="$tmp/ca"
mkdir -p "$XDG_CONFIG_HOME" "$tmp/state"
swtpm_setup --create-config-files root,skip-if-exist >/dev/null
swtpm_setup --tpm2 --tpmstate "$tmp/state" --create-ek-cert --create-platform-cert \
        --pcr-banks sha256 --config "$XDG_CONFIG_HOME/swtpm_setup.conf" --overwrite >"$tmp/setup.log" 2>&1 || {
        cat "$tmp/setup.log" >&2
        exit 1
}

rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
touch "$dir/done"

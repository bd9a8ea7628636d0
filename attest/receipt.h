/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Destroy receipts (DESIGN §5 "Receipt"; CDDL in docs/formats.md): what Key.Destroy returns, a
 * COSE_Sign1 by the host key, without label 15 claims, over the deterministic CBOR map
 * {"type": "destroy", "name", "uri", "kid", "spki_sha256", "owner", "reason", "time", "by_uid",
 * ? "audit_seq"}. It names the destroyed key by kid and spki_sha256, the same pair revocation entries
 * carry, so a verifier can match it against the key it actually used.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/cose.h"

#define RECEIPT_KID_SIZE 34U            /* TPM Name: 00 0b || SHA-256(TPMT_PUBLIC) */
#define RECEIPT_SPKI_DIGEST_SIZE 32U    /* SHA-256 of the DER SubjectPublicKeyInfo */
/* Bound on every text field, in bytes. */
#define RECEIPT_TEXT_MAX 1024U

typedef struct DestroyReceipt {
        const char *name;               /* key name */
        const char *uri;                /* agent URI, agentid://<host-id>/<name> */
        const char *owner;              /* accountable owner recorded with the key */
        const char *reason;             /* as given to Destroy; may be empty */
        const uint8_t *kid;             /* RECEIPT_KID_SIZE bytes */
        const uint8_t *spki_sha256;     /* RECEIPT_SPKI_DIGEST_SIZE bytes */
        uint64_t time;                  /* NumericDate of the destruction */
        uint32_t by_uid;                /* who destroyed it */
        bool has_audit_seq;             /* audit_seq is omitted until the audit log exists */
        uint64_t audit_seq;
} DestroyReceipt;

/*
 * receipt_destroy_payload() - deterministic CBOR payload of a destroy receipt
 *
 * name, uri and owner must be 1..RECEIPT_TEXT_MAX bytes, reason 0..RECEIPT_TEXT_MAX, all UTF-8; kid
 * and spki_sha256 must be set.
 *
 * Return: 0 and a malloc'd buffer; -EINVAL for a missing or invalid field; -ENOMEM.
 */
int receipt_destroy_payload(const DestroyReceipt *r, uint8_t **ret, size_t *ret_size);

/*
 * receipt_destroy_prepare() - the receipt payload, made ready for signing by the host key
 * @host_kid: the host key's TPM Name (1..COSE_KID_MAX bytes)
 *
 * cose_sign1_prepare() over receipt_destroy_payload() without claims; sign cose_sign1_digest() with
 * the host key and call cose_sign1_finish().
 *
 * Return: as receipt_destroy_payload() and cose_sign1_prepare().
 */
int receipt_destroy_prepare(const DestroyReceipt *r, const uint8_t *host_kid, size_t host_kid_size,
                            CoseSign1 **ret);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Encoding of agent evidence (Key.Attest) and platform evidence (Manager.GetPlatformEvidence),
 * DESIGN §5 and docs/formats.md. The producer side only; verification is attest/verify-evidence.c.
 */

#include <stddef.h>
#include <stdint.h>

#define EAT_PROFILE "tag:agentid.org,2026:v1"
#define EVIDENCE_PCR_COUNT 8U
#define EVIDENCE_NONCE_MIN 16U
#define EVIDENCE_NONCE_MAX 64U

/* What the daemon measured about the caller. Optional fields are NULL/absent. */
typedef struct EatWorkload {
        const uint8_t *exe_sha256;     /* 32 bytes */
        const char *exe_path;          /* raw bytes of the path; a tstr if valid UTF-8, else a bstr */
        const char *unit;
        uint32_t uid;
        uint32_t pid;
} EatWorkload;

typedef struct EatClaims {
        const uint8_t *nonce;          /* eat_nonce (10): the verifier's nonce, 16..64 bytes */
        size_t nonce_size;
        uint64_t iat;                  /* 6 */
        const char *sub;               /* 2: agent URI */
        const uint8_t *x, *y;          /* 8 cnf: the agent key's P-256 point, 32 bytes each */
        const char *owner;
        uint32_t uid;
        uint64_t created;
        uint64_t not_after;            /* 0: omitted */
        EatWorkload workload;
        const char *task_id;           /* optional */
        const char *parent_task_id;    /* optional */
        const char *daemon;            /* agentidd version */
} EatClaims;

/* The TPM's part of the evidence, as byte strings (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE). */
typedef struct EvidenceTpm {
        const uint8_t *key_pub;        /* agent key, or host key for platform evidence */
        size_t key_pub_size;
        const uint8_t *certify;
        size_t certify_size;
        const uint8_t *certify_sig;
        size_t certify_sig_size;
        const uint8_t *quote;
        size_t quote_size;
        const uint8_t *quote_sig;
        size_t quote_sig_size;
        const uint8_t (*pcrs)[32];     /* EVIDENCE_PCR_COUNT values, selection order */
        const uint8_t *ak_pub;
        size_t ak_pub_size;
        const uint8_t *srk_name;       /* 34 bytes */
} EvidenceTpm;

/* The EAT claims set (deterministic CBOR). Return: 0; -EINVAL for missing/oversized fields; -ENOMEM. */
int eat_claims_encode(const EatClaims *c, uint8_t **ret, size_t *ret_size);

/* {"v": 1, "eat": bstr .cbor COSE_Sign1_Tagged, "tpm": {...}}. */
int evidence_agent_encode(const uint8_t *eat, size_t eat_size, const EvidenceTpm *t, uint8_t **ret, size_t *ret_size);

/* {"v": 1, "type": "platform", "tpm": {..., "host_pub", "host_certify", "host_certify_sig"}}. */
int evidence_platform_encode(const EvidenceTpm *t, uint8_t **ret, size_t *ret_size);

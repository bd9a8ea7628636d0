/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Internals shared by the sources of libagentid-verify: the verifier and the verdict machinery live in
 * verify-evidence.c, tokens and signed messages in verify-token.c, revocation lists and rotation
 * statements in verify-revocation.c. Nothing here is exported (the library is built with
 * -fvisibility=hidden); callers see verdicts only through agentid_verdict_*().
 *
 * A verdict holds a fixed, ordered list of checks. Every entry starts out failed with a "not checked"
 * detail; a check passes or fails once (a failure sticks); the verdict is valid only if every entry
 * passed, and its reason is the first entry that did not.
 */

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/verify.h"
#include "common/macro.h"

typedef enum VerdictKind {
        VERDICT_EVIDENCE,       /* agent or platform evidence */
        VERDICT_TOKEN,
        VERDICT_MESSAGE,
        VERDICT_ROTATION,
} VerdictKind;

/*
 * A verdict whose checks are order[0..n_order), each failed with the detail not_checked. When
 * revocations_of is a verifier that holds a revocation list, AGENTID_REASON_REVOKED is appended as the
 * last check (so verdicts keep their shape when no list is used). NULL on allocation failure (or more
 * checks than a verdict holds).
 */
AgentidVerdict *verdict_new(const AgentidVerifier *revocations_of, VerdictKind kind, const AgentidReason *order,
                            size_t n_order, const char *not_checked);

/* Record the outcome of a check in the verdict's list (a check not in it is ignored). */
void _printf_(4, 0) verdict_record_v(AgentidVerdict *d, AgentidReason reason, bool ok, const char *fmt, va_list ap);

/* Decide: valid if every check passed; the reason is the first check that did not. */
void verdict_conclude(AgentidVerdict *d);

/* Outputs of a token or message verdict, freed with it by free_extra. Handed back by
 * verdict_get_extra() only while the verdict is valid and of that kind. */
void verdict_set_extra(AgentidVerdict *d, void *extra, void (*free_extra)(void *extra));
void *verdict_get_extra(const AgentidVerdict *d, VerdictKind kind);

/* The time to verify at: agentid_verifier_set_now()'s, or the system clock. Return: 0 or -errno. */
int verifier_now(const AgentidVerifier *v, uint64_t *ret);
uint64_t verifier_max_age(const AgentidVerifier *v);

/* An agent URI (DESIGN §2): "agentid://" 32 lower-case hex digits "/" key name. */
bool agent_uri_is_valid(const char *s, size_t n);

/* Hex of a kid, SPKI hash or cti (at most AGENTID_TPM_NAME_SIZE bytes; longer input is cut there), for a
 * verdict's details. Returned by value, so it can be an argument of printf: detail_hex(kid, 34).s. */
typedef struct DetailHex {
        char s[2 * AGENTID_TPM_NAME_SIZE + 1];
} DetailHex;

DetailHex detail_hex(const uint8_t *p, size_t n);

/* A caller's key: a DER SubjectPublicKeyInfo of an EC P-256 key and nothing after it, and the SHA-256
 * of its canonical DER encoding (what revocation entries name). Return: 0; -EINVAL; -ENOMEM. */
int spki_key_load(const uint8_t *der, size_t size, EVP_PKEY **ret, uint8_t ret_spki_sha256[AGENTID_SHA256_SIZE]);

/* ---- revocation lists (verify-revocation.c) ------------------------------------------------------ */

typedef struct RevocationStore RevocationStore;

RevocationStore *revocation_store_free(RevocationStore *s);
/* The verifier's lists: NULL until one was added. */
const RevocationStore *verifier_revocations(const AgentidVerifier *v);
RevocationStore **verifier_revocations_slot(AgentidVerifier *v);
bool verifier_has_revocations(const AgentidVerifier *v);

/* Everything kid-shaped the "revoked" check compares: expected kid, header kid, a credential's kid,
 * and one per hop. */
#define REVOKED_KIDS_MAX (3U + AGENTID_TOKEN_HOPS_MAX)

/* The keys a verification involved, named for the verdict's detail. NULL members are unknown. */
typedef struct RevokedQuery {
        const uint8_t *spki_sha256;             /* of the key the signature verified with */
        const char *spki_what;                  /* e.g. "the key verified with" */
        struct {
                const uint8_t *kid;
                const char *what;               /* e.g. "the token's kid", "the kid of hop" */
                int index;                      /* appended to what when >= 0 (a hop) */
        } kids[REVOKED_KIDS_MAX];
        size_t n_kids;
        const uint8_t *cti;                     /* a task credential's cti: task_end entries */
} RevokedQuery;

/* Add a kid to q (ignored beyond REVOKED_KIDS_MAX or when kid is NULL). */
void revoked_query_add_kid(RevokedQuery *q, const uint8_t *kid, const char *what, int index);

/*
 * verdict_check_revoked() - the check "revoked", when v holds lists: fails naming the entry (type, name,
 * time, reason, list) if any entry names the SPKI hash or one of the kids (or, for task_end, the cti);
 * with q NULL, or nothing in it, fails as "not checked: " why. A no-op without lists.
 */
void verdict_check_revoked(const AgentidVerifier *v, AgentidVerdict *d, const RevokedQuery *q, const char *why);

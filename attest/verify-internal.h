/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Internals shared by the sources of libagentid-verify: the verifier and the verdict machinery live in
 * verify-evidence.c, tokens and signed messages in verify-token.c, the task credential a token issued by
 * a task key carries in verify-task.c, revocation lists and rotation statements in
 * verify-revocation.c, the peer registry tokens can be checked against in verify-peers.c. Nothing here is exported (the library is built with
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

#include "attest/peers.h"
#include "attest/task-credential.h"
#include "attest/token.h"
#include "attest/tpm2-types.h"
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
/* Record check reason as passed / failed with a detail; a skipped check is failed with "not checked:
 * why" (its input is missing because an earlier check failed). */
void _printf_(3, 4) verdict_pass(AgentidVerdict *d, AgentidReason reason, const char *fmt, ...);
void _printf_(3, 4) verdict_fail(AgentidVerdict *d, AgentidReason reason, const char *fmt, ...);
void verdict_skip(AgentidVerdict *d, AgentidReason reason, const char *why);

/* Decide: valid if every check passed; the reason is the first check that did not. */
void verdict_conclude(AgentidVerdict *d);

/* Outputs of a token or message verdict, freed with it by free_extra. Handed back by
 * verdict_get_extra() only while the verdict is valid and of that kind. */
void verdict_set_extra(AgentidVerdict *d, void *extra, void (*free_extra)(void *extra));
void *verdict_get_extra(const AgentidVerdict *d, VerdictKind kind);

/* The time to verify at: agentid_verifier_set_now()'s, or the system clock. Return: 0 or -errno. */
int verifier_now(const AgentidVerifier *v, uint64_t *ret);
uint64_t verifier_max_age(const AgentidVerifier *v);

/* agent_uri_is_valid(), the agent URI of DESIGN §2: attest/task-credential.h. */

/* The trusted AKs (agentid_verifier_add_trusted_ak()): how many, and one after the other (*state starts
 * at 0; false at the end). *ret_pkey is NULL for an AK that is not ECC P-256. All borrowed from v. */
size_t verifier_n_trusted_aks(const AgentidVerifier *v);
bool verifier_trusted_ak_next(const AgentidVerifier *v, size_t *state, const Tpm2Public **ret_parsed,
                              EVP_PKEY **ret_pkey, const uint8_t **ret_pub, size_t *ret_pub_size);

/* Required of a restricted signing AK (tpm-notes §2.1, Part 2 §8.3.3): it only signs TPM-generated
 * structures, so a TPMS_ATTEST signed by it was made by the TPM. */
#define AK_ATTRIBUTES_SET                                                                               \
        (TPM2P_OBJ_FIXEDTPM | TPM2P_OBJ_FIXEDPARENT | TPM2P_OBJ_SENSITIVEDATAORIGIN | TPM2P_OBJ_RESTRICTED | \
         TPM2P_OBJ_SIGN)
#define AK_ATTRIBUTES_CLEAR TPM2P_OBJ_DECRYPT

/* Whether a public area is ECC NIST P-256 with the scheme ECDSA-SHA256 and nameAlg SHA-256; if not, why
 * in buf. */
bool is_es256_key(const Tpm2Public *p, char *buf, size_t n);
/* Whether attributes lack a bit of set or have a bit of clear, naming the wrong ones in buf (only
 * fixedTPM, fixedParent, sensitiveDataOrigin, noDA, restricted, decrypt and sign are known by name:
 * other bits in set or clear are not checked). */
bool attributes_wrong(uint32_t attributes, uint32_t set, uint32_t clear, char *buf, size_t n);

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
        const uint8_t *spki_sha256_2;           /* another key involved (a task token: the agent key that */
        const char *spki_what_2;                /* signed its credential), or NULL */
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

/* ---- task credentials (verify-task.c) ------------------------------------------------------------ */

/*
 * token_peek_credential() - the "credential" claim of a token whose envelope token_peek_kid() accepted,
 * read BEFORE any signature: it only decides which checks run (the credential says which key signs the
 * token) and is itself checked by verify_credential() with the agent key.
 *
 * Return: 1 and a malloc'd copy when the claim is what token.c requires of it (a byte string holding a
 * COSE_Sign1_Tagged of at most TOKEN_CREDENTIAL_MAX bytes); 0 when the payload has no such claim, has a
 * malformed one, or is no claims map at all (the token is then verified as one without a credential,
 * and token_claims says what is wrong); -ENOMEM.
 */
int token_peek_credential(const uint8_t *token, size_t size, uint8_t **ret, size_t *ret_size);

/* What verify_credential() found: the credential once its signature verified, and from then on the
 * task key the token must verify with (its cnf), the task key's Name (from task_key.pub: the token's
 * kid) and the SHA-256 of its DER SubjectPublicKeyInfo. */
typedef struct TaskKeyFound {
        TaskCredentialVerified *credential;
        EVP_PKEY *pkey;
        uint8_t kid[AGENTID_TPM_NAME_SIZE];
        uint8_t *spki;
        size_t spki_size;
        uint8_t spki_sha256[AGENTID_SHA256_SIZE];
} TaskKeyFound;

void task_key_found_done(TaskKeyFound *k);

/*
 * verify_credential() - the checks credential_format, credential_signature (by agent_key; its kid =
 * expected_kid when not NULL), credential_task_key (certified by a trusted AK, a policy-only TPM key,
 * cnf = its point) and credential_expiry (now < exp), recorded in d
 * @credential: token_peek_credential()'s
 *
 * Return: 0 (*ret filled as far as the checks got: ret->pkey set once the credential's signature and
 *         claims verified); -ENOMEM; -EIO.
 */
int verify_credential(const AgentidVerifier *v, AgentidVerdict *d, const uint8_t *credential, size_t size,
                      EVP_PKEY *agent_key, const uint8_t *expected_kid, uint64_t now, TaskKeyFound *ret);

/* credential_binding: the token speaks within its credential (same issuer and task, exp not later, an
 * audience of the list, a narrower scope). */
void check_credential_binding(AgentidVerdict *d, const TaskCredentialClaims *credential, const TokenClaims *token);

/* ---- peer registries (verify-peers.c) ------------------------------------------------------------ */

/* The verifier's registry (attest/peers.h): NULL until one was added. */
const PeerRegistry *verifier_peers(const AgentidVerifier *v);
/* Install a registry and its peers' keys, decoded once (keys[i] is peer_registry_get(reg, i)'s);
 * the verifier takes both. */
void verifier_set_peers(AgentidVerifier *v, PeerRegistry *reg, EVP_PKEY **keys);
/* The decoded key of the i-th peer of the verifier's registry. */
EVP_PKEY *verifier_peer_key(const AgentidVerifier *v, size_t i);

/* What agentid_verify_token_from_peer() found in the registry for a token, before any signature. */
typedef struct TokenPeer {
        const PeerRegistry *peers;
        const char *iss;                /* the iss the payload states, UNVERIFIED; NULL if none was readable */
        const Peer *peer;               /* the registered peer with that URI, or NULL: then there is no key */
        EVP_PKEY *key;                  /* peer's key, decoded when the registry was added (borrowed) */
} TokenPeer;

/*
 * verify_token() - agentid_verify_token() (peer NULL: the caller's key and kid) and
 * agentid_verify_token_from_peer() (peer not NULL: spki_der and expected_kid are peer->peer's, or NULL
 * when no registered peer was found, and the checks token_peer and token_peer_hops run as well)
 *
 * Return: as agentid_verify_token().
 */
int verify_token(const AgentidVerifier *v, const uint8_t *token, size_t size, const uint8_t *spki_der,
                 size_t spki_size, const uint8_t *expected_kid, const char *audience, const TokenPeer *peer,
                 AgentidVerdict **ret);

/* token_peer: the issuer found in the registry (format_ok: token_format passed, so iss could be read). */
void check_token_peer(AgentidVerdict *d, const TokenPeer *peer, bool format_ok);

/* token_peer_hops, once the token verified (t NULL: not checked, because): every hop through a registered
 * peer with its registered kid. Also fails token_peer if the verified iss is not the peer found before
 * the signature (it cannot be: both were read from the same signed bytes). */
void check_token_peer_hops(AgentidVerdict *d, const TokenPeer *peer, const TokenVerified *t, const char *because);

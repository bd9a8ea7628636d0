/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef AGENTID_VERIFY_H
#define AGENTID_VERIFY_H

/*
 * libagentid-verify: offline verification of agentid attestation evidence, task tokens and signed
 * messages (installed as <agentid/verify.h>; pkg-config name libagentid-verify).
 *
 * Agent evidence (org.agentid1.Key.Attest) proves that a signing key lives in a genuine TPM, was
 * certified by that TPM's attestation key (AK) for the verifier's nonce, and that the key itself
 * signed a set of claims (owner, workload, task) bound to a PCR quote. Platform evidence
 * (org.agentid1.Manager.GetPlatformEvidence) does the same for the host key that signs receipts and
 * revocation lists. Task tokens and signed messages are checked against the agent key such evidence
 * certifies (or a pinned one, or the one a registry of approved peers holds for the issuer), and
 * against the host's revocation lists. The formats are in docs/formats.md §5, §6, §8, §12, §3, §10,
 * §11 and §13; every check, its name and its reason code are listed in docs/verifier.md.
 *
 * Use:
 *
 *     AgentidVerifier *v = agentid_verifier_new();
 *     agentid_verifier_add_trusted_ak(v, ak_tpmt_public, ak_size);    // once per trusted TPM
 *     AgentidVerdict *d = NULL;
 *     int r = agentid_verify_evidence(v, evidence, size, nonce, nonce_size, &d);
 *     if (r < 0)
 *             ... internal failure (-ENOMEM, bad arguments): no verdict ...
 *     else if (agentid_verdict_is_valid(d))
 *             ... agentid_verdict_get_claims(d) ...
 *     else
 *             ... agentid_verdict_reason(d) says which check failed first ...
 *     agentid_verdict_free(d);
 *
 * Return conventions: functions return 0 (or a count) on success and a negative errno on failure.
 * An *invalid* evidence document is not a failure of the call: it yields a verdict whose reason is a
 * positive AgentidReason. Outputs are written only on success.
 *
 * Threads: configure a verifier first; afterwards agentid_verify_*() only read it, so one verifier may
 * serve any number of threads at once. Verdicts are independent objects.
 *
 * Dependencies: OpenSSL 3 (libcrypto) and libcbor; no TPM software stack, no D-Bus.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define AGENTID_EXPORT __attribute__((visibility("default")))
#else
#define AGENTID_EXPORT
#endif

/* Nonce sizes accepted (EAT eat_nonce, RFC 9711 §4.1, capped at what a TPM2B_DATA carries). */
#define AGENTID_NONCE_MIN 16U
#define AGENTID_NONCE_MAX 64U
/* Largest evidence document accepted, in bytes. */
#define AGENTID_EVIDENCE_MAX (16U * 1024U)
/* Default --max-age: how old an agent evidence's iat may be, in seconds. */
#define AGENTID_DEFAULT_MAX_AGE 300U
/* How far in the future an iat may lie (clock skew), in seconds. */
#define AGENTID_MAX_CLOCK_SKEW 60U
/* PCRs covered by the quote (SHA-256 bank, PCRs 0-7) and the size of each value. */
#define AGENTID_PCR_COUNT 8U
#define AGENTID_PCR_SIZE 32U
/* TPM Name of a key with nameAlg SHA-256: 00 0b || SHA-256(TPMT_PUBLIC). */
#define AGENTID_TPM_NAME_SIZE 34U
#define AGENTID_SHA256_SIZE 32U

/*
 * Reason codes. Every check has one; a verdict's reason is the code of the first check that failed,
 * in the order the checks run, or AGENTID_REASON_VALID. That is the order of this list, except for
 * the checks of a token issued by a task key, which run among the token checks (see
 * AGENTID_REASON_CREDENTIAL_FORMAT), and those of a token verified against a peer registry (see
 * AGENTID_REASON_TOKEN_PEER). The numbers are stable: new checks get new numbers, existing ones
 * never change. agentid_reason_to_string() gives the check name used in the verdict and in the CLI's
 * JSON.
 */
typedef enum AgentidReason {
        AGENTID_REASON_VALID = 0,               /* "valid": every check passed */
        AGENTID_REASON_FORMAT = 1,              /* "format": evidence CBOR, keys, types, sizes */
        AGENTID_REASON_AK_TRUSTED = 2,          /* "ak_trusted": AK is one the caller trusts */
        AGENTID_REASON_AK_ATTRIBUTES = 3,       /* "ak_attributes": restricted ECDSA-SHA256 P-256 signing key */
        AGENTID_REASON_CERTIFY_SIGNATURE = 4,   /* "certify_signature": AK signature over the certify */
        AGENTID_REASON_CERTIFY_STRUCTURE = 5,   /* "certify_structure": magic, type, full unmarshal */
        AGENTID_REASON_CERTIFY_NONCE = 6,       /* "certify_nonce": extraData = SHA-256(nonce) */
        AGENTID_REASON_KEY_ATTRIBUTES = 7,      /* "key_attributes": TPM-bound ES256 key */
        AGENTID_REASON_CERTIFIED_NAME = 8,      /* "certified_name": certified Name = Name(key) */
        AGENTID_REASON_QUALIFIED_NAME = 9,      /* "qualified_name": key is a child of the SRK */
        AGENTID_REASON_QUOTE_SIGNATURE = 10,    /* "quote_signature": AK signature over the quote */
        AGENTID_REASON_QUOTE_STRUCTURE = 11,    /* "quote_structure": magic, type, full unmarshal */
        AGENTID_REASON_QUALIFIED_SIGNER = 12,   /* "qualified_signer": same signer in certify and quote */
        AGENTID_REASON_CLOCK = 13,              /* "clock": same boot (resetCount, restartCount) */
        AGENTID_REASON_SAFE = 14,               /* "safe": TPM clock safe (required only on request) */
        AGENTID_REASON_PCR_SELECTION = 15,      /* "pcr_selection": exactly SHA-256 PCRs 0-7 */
        AGENTID_REASON_PCR_DIGEST = 16,         /* "pcr_digest": quoted digest of the PCR values */
        AGENTID_REASON_REFERENCE_PCRS = 17,     /* "reference_pcrs": caller's expected PCR values */
        AGENTID_REASON_EAT_SIGNATURE = 18,      /* "eat_signature": claims signed by the certified key */
        AGENTID_REASON_QUOTE_BINDING = 19,      /* "quote_binding": quote extraData binds nonce, key, claims */
        AGENTID_REASON_CLAIMS = 20,             /* "claims": EAT claims set structure */
        AGENTID_REASON_PROFILE = 21,            /* "profile": eat_profile is agentid's */
        AGENTID_REASON_NONCE = 22,              /* "nonce": eat_nonce = the caller's nonce */
        AGENTID_REASON_FRESHNESS = 23,          /* "freshness": iat within max-age of now */
        AGENTID_REASON_CNF = 24,                /* "cnf": confirmation key = the certified key */
        AGENTID_REASON_HOST_ID = 25,            /* "host_id": host-id in sub = this TPM's SRK */
        AGENTID_REASON_KEY_EXPIRY = 26,         /* "key_expiry": not_after not passed */
        AGENTID_REASON_WORKLOAD = 27,           /* "workload": executable on the allow-list */

        /* Task tokens (agentid_verify_token()), in the order they run */
        AGENTID_REASON_TOKEN_FORMAT = 28,       /* "token_format": COSE_Sign1 envelope in the token profile */
        AGENTID_REASON_TOKEN_SIGNATURE = 29,    /* "token_signature": ES256 by the given key */
        AGENTID_REASON_TOKEN_KID = 30,          /* "token_kid": kid = the expected TPM Name */
        AGENTID_REASON_TOKEN_CLAIMS = 31,       /* "token_claims": exactly the token claims, iss an agent URI */
        AGENTID_REASON_TOKEN_AUDIENCE = 32,     /* "token_audience": aud = the verifier's audience */
        AGENTID_REASON_TOKEN_NOT_BEFORE = 33,   /* "token_not_before": nbf <= now + skew */
        AGENTID_REASON_TOKEN_EXPIRY = 34,       /* "token_expiry": now < exp */
        AGENTID_REASON_TOKEN_HOPS = 35,         /* "token_hops": delegation chain well-formed */

        /* Signed messages (agentid_verify_message()), in the order they run */
        AGENTID_REASON_MESSAGE_FORMAT = 36,     /* "message_format": COSE_Sign1 with label 15 claims */
        AGENTID_REASON_MESSAGE_SIGNATURE = 37,  /* "message_signature": ES256 by the given key */
        AGENTID_REASON_MESSAGE_KID = 38,        /* "message_kid": kid = the expected TPM Name */
        AGENTID_REASON_MESSAGE_AUDIENCE = 39,   /* "message_audience": aud = the audience, if one is required */
        AGENTID_REASON_MESSAGE_FRESHNESS = 40,  /* "message_freshness": iat within max-age of now */

        /* The last check of evidence, tokens, messages and rotation statements when a revocation list is set */
        AGENTID_REASON_REVOKED = 41,            /* "revoked": no key used is on the revocation list */

        /* Rotation statements (agentid_verify_rotation()), in the order they run */
        AGENTID_REASON_ROTATION_FORMAT = 42,    /* "rotation_format": COSE_Sign, two signers, statement fields */
        AGENTID_REASON_ROTATION_OLD_SIGNATURE = 43,  /* "rotation_old_signature": signed by the old key */
        AGENTID_REASON_ROTATION_HOST_SIGNATURE = 44, /* "rotation_host_signature": signed by the host key */

        /* Tokens issued by a task key: they carry a task credential ("credential" claim) and are checked
         * in this order: token_format, credential_format, credential_signature, credential_task_key,
         * credential_expiry, token_signature (by the task key), token_kid (the task key's Name),
         * token_claims, credential_binding, token_audience, token_not_before, token_expiry, token_hops
         * (and revoked). */
        AGENTID_REASON_CREDENTIAL_FORMAT = 45,    /* "credential_format": the claim is a task credential */
        AGENTID_REASON_CREDENTIAL_SIGNATURE = 46, /* "credential_signature": by the given (agent) key, kid as expected */
        AGENTID_REASON_CREDENTIAL_TASK_KEY = 47,  /* "credential_task_key": certified by a trusted AK, policy-only, = cnf */
        AGENTID_REASON_CREDENTIAL_EXPIRY = 48,    /* "credential_expiry": now < the credential's exp */
        AGENTID_REASON_CREDENTIAL_BINDING = 49,   /* "credential_binding": the token stays within its credential */

        /* Tokens verified against a peer registry (agentid_verify_token_from_peer()): token_peer runs
         * right after token_format (it picks the key, so it comes before every signature), token_peer_hops
         * after token_hops (it reads the hops, so only once the signature verified). */
        AGENTID_REASON_TOKEN_PEER = 50,           /* "token_peer": iss (read before the signature) is a registered peer */
        AGENTID_REASON_TOKEN_PEER_HOPS = 51,      /* "token_peer_hops": every hop's iss is a registered peer, with its kid */
} AgentidReason;

/* The name of a reason code ("valid", "format", ...), or NULL for an unknown code. */
AGENTID_EXPORT const char *agentid_reason_to_string(AgentidReason reason);

typedef struct AgentidVerifier AgentidVerifier;
typedef struct AgentidVerdict AgentidVerdict;

/* A verifier with no trusted AK, max-age AGENTID_DEFAULT_MAX_AGE, the system clock, safe not
 * required, no reference PCRs and no workload allow-list. NULL on allocation failure. */
AGENTID_EXPORT AgentidVerifier *agentid_verifier_new(void);
/* Frees v and everything it holds; returns NULL. NULL is allowed. */
AGENTID_EXPORT AgentidVerifier *agentid_verifier_free(AgentidVerifier *v);

/*
 * agentid_verifier_add_trusted_ak() - trust an attestation key
 * @tpmt_public: the AK's public area as a marshalled TPMT_PUBLIC (no TPM2B size prefix), exactly as
 *         org.agentid1.Manager.GetAttestationKey returns it; copied
 *
 * Evidence is only valid if its "ak_pub" is byte-for-byte one of the trusted AKs. The public key is
 * decoded here, once, and kept for every later verification.
 *
 * Return: 0; -EEXIST if already trusted; -EBADMSG if not a TPMT_PUBLIC; -EINVAL; -ENOMEM.
 */
AGENTID_EXPORT int agentid_verifier_add_trusted_ak(AgentidVerifier *v, const uint8_t *tpmt_public, size_t size);

/* Verify as of this time (seconds since the epoch) instead of the system clock; 0 restores the
 * system clock. Applies to evidence, tokens and signed messages. Return: 0 or -EINVAL. */
AGENTID_EXPORT int agentid_verifier_set_now(AgentidVerifier *v, uint64_t unix_seconds);
/* How old an agent evidence's or a signed message's iat may be (default AGENTID_DEFAULT_MAX_AGE).
 * Return: 0 or -EINVAL. */
AGENTID_EXPORT int agentid_verifier_set_max_age(AgentidVerifier *v, uint64_t seconds);
/* Require clockInfo.safe = 1 in both attestations (default: reported only; after an unclean power
 * loss a real TPM reports safe = 0 for a while). Return: 0 or -EINVAL. */
AGENTID_EXPORT int agentid_verifier_set_require_safe(AgentidVerifier *v, bool require);
/*
 * agentid_verifier_add_reference_pcr() - require a PCR to hold a value
 * @index: 0..7 (the PCRs the quote covers); @digest: the SHA-256 bank value
 *
 * Return: 0; -ERANGE for another index; -EEXIST if that index already has a value; -EINVAL.
 */
AGENTID_EXPORT int agentid_verifier_add_reference_pcr(AgentidVerifier *v, unsigned index,
                                                      const uint8_t digest[AGENTID_PCR_SIZE]);
/*
 * agentid_verifier_add_allowed_workload() - add an executable digest to the workload allow-list
 *
 * With a non-empty list, agent evidence is valid only if its workload claims an exe_sha256 on it.
 *
 * Return: 0 (also when already listed); -EINVAL; -ENOMEM.
 */
AGENTID_EXPORT int agentid_verifier_add_allowed_workload(AgentidVerifier *v, const uint8_t sha256[AGENTID_SHA256_SIZE]);

/*
 * agentid_verify_evidence() - verify agent evidence (Key.Attest) for a nonce
 * @nonce: the nonce the verifier sent, AGENTID_NONCE_MIN..AGENTID_NONCE_MAX bytes
 * @ret: the verdict, valid or invalid; free with agentid_verdict_free()
 *
 * Return: 0 and a verdict; -EINVAL for bad arguments (NULL pointers, nonce size); -ENOMEM; -EIO if
 *         OpenSSL fails for another reason than the evidence. Invalid evidence returns 0.
 */
AGENTID_EXPORT int agentid_verify_evidence(const AgentidVerifier *v, const uint8_t *evidence, size_t size,
                                           const uint8_t *nonce, size_t nonce_size, AgentidVerdict **ret);

/*
 * agentid_verify_platform() - verify platform evidence (Manager.GetPlatformEvidence) for a nonce
 *
 * As agentid_verify_evidence(); the verdict carries the certified host key
 * (agentid_verdict_get_platform()) instead of agent claims.
 */
AGENTID_EXPORT int agentid_verify_platform(const AgentidVerifier *v, const uint8_t *evidence, size_t size,
                                           const uint8_t *nonce, size_t nonce_size, AgentidVerdict **ret);

/* ------------------------------------------------------------------------------------------------
 * Task tokens (org.agentid1.Key.IssueToken) and signed messages (Key.SignMessage): COSE_Sign1 by an
 * agent key (docs/formats.md §3 and §8). The key is the caller's: pinned, or the certified key of
 * valid agent evidence (AgentidClaims.public_key and .kid), which is how a peer learns that the key
 * lives in a TPM. Only the clock and max-age of the verifier are used.
 */

/* Largest token accepted, in bytes; hops in a delegation chain; size of a cti. */
#define AGENTID_TOKEN_MAX (8U * 1024U)
#define AGENTID_TOKEN_HOPS_MAX 8U
#define AGENTID_TOKEN_CTI_SIZE 16U
/* Largest payload of a signed message accepted, in bytes. */
#define AGENTID_MESSAGE_PAYLOAD_MAX (1024U * 1024U)

/* Most audiences a task credential lists. */
#define AGENTID_CREDENTIAL_AUDIENCES_MAX 16U

/*
 * agentid_verify_token() - verify a task token for an audience
 * @token: the token (COSE_Sign1_Tagged, CWT) as IssueToken returned it
 * @spki_der: the issuer's public key, DER SubjectPublicKeyInfo of an EC P-256 key; copied
 * @expected_kid: the TPM Name (AGENTID_TPM_NAME_SIZE bytes) the token's kid must equal, or NULL to
 *         accept any kid (then only the key vouches for the issuer)
 * @audience: the verifier's own name; the token's aud must be exactly this string (required)
 * @ret: the verdict, valid or invalid; free with agentid_verdict_free()
 *
 * Checks, in order: token_format, token_signature, token_kid, token_claims, token_audience,
 * token_not_before (nbf <= now + AGENTID_MAX_CLOCK_SKEW), token_expiry (now < exp) and token_hops
 * (docs/verifier.md). The claims are looked at only after the signature verified.
 *
 * A token issued by a task key (one with a "credential" claim, docs/formats.md §12) is followed to the
 * agent key: spki_der and expected_kid then name the AGENT key, which must have signed the credential
 * (credential_signature; expected_kid is compared with the credential's kid), the task key the
 * credential names must be certified by one of the verifier's trusted AKs
 * (agentid_verifier_add_trusted_ak(); without one credential_task_key fails), and the token must be
 * signed by that task key (token_signature) with its TPM Name as kid (token_kid) and stay within the
 * credential (credential_binding). The order is the one listed at AGENTID_REASON_CREDENTIAL_FORMAT:
 * 13 checks instead of 8.
 *
 * Return: 0 and a verdict; -EINVAL for bad arguments (NULL pointers, an empty audience, a key that is
 *         not a DER EC P-256 public key); -ENOMEM; -EIO. An invalid token returns 0.
 */
AGENTID_EXPORT int agentid_verify_token(const AgentidVerifier *v, const uint8_t *token, size_t size,
                                        const uint8_t *spki_der, size_t spki_size,
                                        const uint8_t *expected_kid, const char *audience, AgentidVerdict **ret);

/* ------------------------------------------------------------------------------------------------
 * Tokens from approved peers: the issuer's key comes from a peer registry (docs/formats.md §13, what
 * `agentidctl peers export` writes) instead of from the caller, so a gateway can accept the tokens of
 * every agent an administrator approved, and only delegation chains that pass through approved agents.
 */

/* Largest peer registry accepted, in bytes (1024 peers). */
#define AGENTID_PEERS_MAX (512U * 1024U)

/*
 * agentid_verifier_add_peers() - use a peer registry for agentid_verify_token_from_peer()
 * @registry: the registry file, deterministic CBOR {"v": 1, "peers": [...]} (docs/formats.md §13); copied
 * @ret_error: on -EBADMSG, a static explanation (may be NULL)
 *
 * Parsed as strictly as agentidd reads its own: every entry an agent URI, a canonical DER P-256
 * SubjectPublicKeyInfo and optionally a 34-byte SHA-256 TPM Name (kid), sorted by URI, no URI or kid
 * twice, nothing else. A registry that is not exactly that is refused as a whole, never partly used.
 * A registry with no peers is accepted (then every token is refused with token_peer).
 *
 * A verifier holds at most one registry: registries are not merged (two could name one URI with
 * different keys, and which wins would be a trust decision). Export the union from the daemon instead.
 *
 * Return: 0; -EBADMSG (not a registry, *ret_error says why); -E2BIG (more than 1024 peers); -EFBIG
 *         (over AGENTID_PEERS_MAX); -EEXIST (the verifier already holds a registry); -EINVAL; -ENOMEM.
 *         On failure the verifier is unchanged.
 */
AGENTID_EXPORT int agentid_verifier_add_peers(AgentidVerifier *v, const uint8_t *registry, size_t size,
                                              const char **ret_error);

/*
 * agentid_verify_token_from_peer() - verify a task token issued by a registered peer
 * @audience: the verifier's own name; the token's aud must be exactly this string (required)
 * @ret: the verdict, valid or invalid; free with agentid_verdict_free()
 *
 * As agentid_verify_token(), but the key and kid are the registry's (agentid_verifier_add_peers()):
 *
 * - token_peer: the token's iss, read from the payload BEFORE the signature only to choose the key,
 *   must be the URI of a registered peer. The token is then verified with that peer's key (token_signature)
 *   and, when the peer was registered with a kid, its kid must be that kid (token_kid); iss is compared
 *   with the peer's URI again once the signature verified.
 * - token_peer_hops: every hop of the delegation chain must name a registered peer as iss and, when that
 *   peer was registered with a kid, carry that kid: a token is accepted only if every agent it passed
 *   through is approved. (A hop's own token is not at hand, so its signature cannot be checked here:
 *   agentidd checked each parent when it delegated.)
 *
 * Checks, in order: token_format, token_peer, token_signature, token_kid, token_claims, token_audience,
 * token_not_before, token_expiry, token_hops, token_peer_hops (and revoked, with revocation lists). A
 * token issued by a task key (it carries a task credential) is followed to the peer's agent key as in
 * agentid_verify_token(): token_format, token_peer, credential_format .. credential_expiry,
 * token_signature, token_kid, token_claims, credential_binding, token_audience, token_not_before,
 * token_expiry, token_hops, token_peer_hops. The registry says nothing about task keys: the AK that
 * certified them must still be trusted (agentid_verifier_add_trusted_ak()).
 *
 * Agents of the verifier's own host are trusted this way only if they are in the registry too; a key
 * the caller already holds is verified with agentid_verify_token().
 *
 * Return: 0 and a verdict; -ENOKEY (the verifier holds no peer registry); -EINVAL for bad arguments
 *         (NULL pointers, an empty audience); -ENOMEM; -EIO. A token of an unregistered issuer, or any
 *         other invalid token, returns 0 with an invalid verdict.
 */
AGENTID_EXPORT int agentid_verify_token_from_peer(const AgentidVerifier *v, const uint8_t *token, size_t size,
                                                  const char *audience, AgentidVerdict **ret);

/*
 * agentid_verify_message() - verify a signed message
 * @msg: the COSE_Sign1_Tagged SignMessage returned
 * @audience: if not NULL, the message's aud (label 15) must be present and exactly this string
 *
 * As agentid_verify_token(), with the checks message_format, message_signature, message_kid,
 * message_audience and message_freshness (iat at most max-age before now and at most
 * AGENTID_MAX_CLOCK_SKEW after it). The payload is the caller's to interpret.
 *
 * Return: 0 and a verdict; -EINVAL (also an empty audience); -ENOMEM; -EIO.
 */
AGENTID_EXPORT int agentid_verify_message(const AgentidVerifier *v, const uint8_t *msg, size_t size,
                                          const uint8_t *spki_der, size_t spki_size,
                                          const uint8_t *expected_kid, const char *audience, AgentidVerdict **ret);

/* ------------------------------------------------------------------------------------------------
 * Revocation lists (org.agentid1.Manager.GetRevocations; docs/formats.md §10) and rotation statements
 * (org.agentid1.Key.Rotate; §11).
 */

/* Largest revocation list accepted (COSE_Sign1), in bytes. */
#define AGENTID_REVOCATIONS_MAX (16U * 1024U * 1024U + 4096U)
/* Most lists one verifier holds at once (a replaced list does not count twice). */
#define AGENTID_REVOCATION_SETS_MAX 64U
/* Largest rotation statement accepted, in bytes. */
#define AGENTID_ROTATION_MAX 4096U

/*
 * agentid_verifier_add_revocations() - refuse anything signed by a key on this list
 * @list: the COSE_Sign1 GetRevocations returned
 * @host_spki_der: the host key (DER SubjectPublicKeyInfo, e.g. from valid platform evidence); if NULL
 *         the signature is not checked — a forged list can then only add refusals, never remove one
 * @min_seq: refuse a list whose seq is lower (rollback to an older list); 0 accepts any. Applies to
 *         every list, checked or not.
 * @ret_error: on failure, a static explanation (may be NULL)
 *
 * A verifier holds up to AGENTID_REVOCATION_SETS_MAX lists and applies all of them. Which list a new one
 * replaces is decided by the key that verified it, never by what its payload claims alone:
 *
 * - A checked list (host_spki_der given) is identified by its "host" and the SHA-256 of the host key's
 *   DER SubjectPublicKeyInfo (as decoded and re-encoded; give a host key in the same form every time).
 *   It replaces the list of that identity if there is one and its seq is equal or higher; with a lower
 *   seq it is refused (-ESTALE) and nothing changes. It is never compared with, and never replaces, a
 *   list checked with another key (even one claiming the same host) or an unchecked list: so a host key
 *   can only ever supersede lists it signed itself.
 * - An unchecked list (host_spki_der NULL) is always kept in addition: it replaces nothing, no seq is
 *   compared with it, and it never makes another list -ESTALE. It can only add refusals.
 * - A list that would be kept in addition while the verifier already holds AGENTID_REVOCATION_SETS_MAX
 *   lists is refused (-E2BIG); a replacement is still accepted.
 *
 * Once a list is set, evidence, tokens and messages run the check "revoked" last: the key the signature
 * verified with (SPKI hash), its TPM Name where known (evidence's certified key; the expected kid of a
 * token or message; the header kid), the kid of every hop of a token, and for a token carrying a task
 * credential also the agent key given (SPKI hash), the kid that signed the credential and its cti
 * (task_end entries) must not be named by any entry of any list (the key a task token verified with is
 * its task key, whose TPM Name is the header kid); rotation verdicts check the new key (agentid_verify_rotation()). The verdict's detail
 * names the entry (type, name, time, reason, list). The list's own kid is informational.
 *
 * Return: 0; -EBADMSG (malformed, ret_error says where); -EKEYREJECTED (not signed by host_spki_der);
 *         -ESTALE (seq < min_seq, or lower than the list of the same host checked with the same host
 *         key); -E2BIG (AGENTID_REVOCATION_SETS_MAX lists held already); -EFBIG (over
 *         AGENTID_REVOCATIONS_MAX); -EINVAL (also a host key that is not DER EC P-256); -ENOMEM. On
 *         failure nothing is added or replaced.
 */
AGENTID_EXPORT int agentid_verifier_add_revocations(AgentidVerifier *v, const uint8_t *list, size_t size,
                                                    const uint8_t *host_spki_der, size_t host_spki_size,
                                                    uint64_t min_seq, const char **ret_error);

/* What the last list added said: host-id (NULL if none; the outputs are then untouched), seq, issued and
 * its number of entries. Outputs may be NULL. */
AGENTID_EXPORT const char *agentid_verifier_revocations_info(const AgentidVerifier *v, uint64_t *ret_seq,
                                                             uint64_t *ret_issued, size_t *ret_n_entries);

/* What a valid rotation statement says. */
typedef struct AgentidRotation {
        const char *name;
        const char *uri;
        uint8_t old_kid[AGENTID_TPM_NAME_SIZE];
        uint8_t new_kid[AGENTID_TPM_NAME_SIZE];
        uint8_t new_spki_sha256[AGENTID_SHA256_SIZE];
        const char *reason;
        uint64_t time;
} AgentidRotation;

/*
 * agentid_verify_rotation() - verify a rotation statement
 * @old_spki_der: the key that was rotated out (DER SubjectPublicKeyInfo)
 * @host_spki_der: the host key
 *
 * Checks rotation_format, rotation_old_signature, rotation_host_signature and, when the verifier holds
 * revocation lists, "revoked" last: no entry may name the new key (new_kid or new_spki_sha256), so that
 * trust never moves to a successor revoked since. The old key is not looked up: a "rotate" entry for it
 * is what the rotation itself leaves on the list. A caller that then trusts the new key must still
 * compare its SPKI hash with new_spki_sha256.
 * Return: 0 and a verdict; -EINVAL (also keys that are not DER EC P-256); -ENOMEM; -EIO.
 */
AGENTID_EXPORT int agentid_verify_rotation(const AgentidVerifier *v, const uint8_t *statement, size_t size,
                                           const uint8_t *old_spki_der, size_t old_spki_size,
                                           const uint8_t *host_spki_der, size_t host_spki_size,
                                           AgentidVerdict **ret);

AGENTID_EXPORT AgentidVerdict *agentid_verdict_free(AgentidVerdict *d);

AGENTID_EXPORT bool agentid_verdict_is_valid(const AgentidVerdict *d);
/* AGENTID_REASON_VALID, or the first failed check (AGENTID_REASON_FORMAT for a NULL verdict). */
AGENTID_EXPORT AgentidReason agentid_verdict_reason(const AgentidVerdict *d);

/* Number of check results: always the full list for the verdict's type, in order. */
AGENTID_EXPORT size_t agentid_verdict_n_checks(const AgentidVerdict *d);
/*
 * agentid_verdict_get_check() - the i-th check result
 * @ret_reason: the check's reason code; @ret_name: its name (agentid_reason_to_string());
 * @ret_ok: whether it passed; @ret_detail: a human-readable explanation (what was compared, or
 *         "not checked: ..." when an earlier failure left nothing to check). Any output may be NULL.
 *         Strings are owned by the verdict.
 *
 * Return: 0; -ERANGE if i >= agentid_verdict_n_checks(); -EINVAL.
 */
AGENTID_EXPORT int agentid_verdict_get_check(const AgentidVerdict *d, size_t i, AgentidReason *ret_reason,
                                             const char **ret_name, bool *ret_ok, const char **ret_detail);

/* TPM clock and PCR state reported by a verified quote. */
typedef struct AgentidTpmState {
        uint64_t clock;                 /* ms the TPM has been powered (never obfuscated) */
        uint32_t reset_count;           /* obfuscated unless the AK is in the endorsement hierarchy */
        uint32_t restart_count;         /* likewise */
        bool safe;
        uint64_t firmware_version;      /* likewise */
        uint8_t ak_name[AGENTID_TPM_NAME_SIZE];         /* Name of the AK that signed */
        uint8_t pcrs[AGENTID_PCR_COUNT][AGENTID_PCR_SIZE]; /* SHA-256 PCRs 0-7, as quoted */
} AgentidTpmState;

/*
 * Claims of valid agent evidence. Everything here was checked: TPM-derived fields by the TPM's
 * signatures, the rest by the agent key's signature over the EAT. Strings are NUL-terminated UTF-8
 * and owned by the verdict; absent optional values are NULL / has_* false. The library allocates
 * this structure; fields may be appended in later versions.
 */
typedef struct AgentidClaims {
        const uint8_t *nonce;           /* eat_nonce (= the caller's nonce) */
        size_t nonce_size;
        uint64_t iat;                   /* NumericDate */
        const char *sub;                /* agent URI: agentid://<host_id>/<key_name> */
        const char *host_id;            /* 32 hex digits */
        const char *key_name;
        const char *profile;            /* eat_profile */
        const char *owner;
        uint32_t uid;                   /* who may use the key */
        uint64_t created;               /* NumericDate */
        bool has_not_after;
        uint64_t not_after;             /* NumericDate */
        struct {
                bool has_exe_sha256;
                uint8_t exe_sha256[AGENTID_SHA256_SIZE];
                const uint8_t *exe_path;        /* NULL if absent; not NUL-terminated if !exe_path_is_text */
                size_t exe_path_size;
                bool exe_path_is_text;          /* tstr (UTF-8) or bstr (a path that is not UTF-8) */
                const char *unit;               /* systemd unit, or NULL */
                uint32_t uid;                   /* the caller that requested the evidence */
                uint32_t pid;
        } workload;
        const char *task_id;            /* NULL if absent */
        const char *parent_task_id;     /* NULL if absent */
        const char *daemon;             /* agentidd version */
        /* The certified agent key */
        uint8_t kid[AGENTID_TPM_NAME_SIZE];     /* its TPM Name */
        const uint8_t *public_key;      /* DER SubjectPublicKeyInfo */
        size_t public_key_size;
        uint8_t spki_sha256[AGENTID_SHA256_SIZE]; /* SHA-256 of public_key (revocation entries use it) */
        AgentidTpmState tpm;
} AgentidClaims;

/* What valid platform evidence certifies. */
typedef struct AgentidPlatform {
        char host_id[2 * 16 + 1];       /* hex of SHA-256(SRK Name)[:16] */
        uint8_t srk_name[AGENTID_TPM_NAME_SIZE];
        uint8_t host_kid[AGENTID_TPM_NAME_SIZE];        /* the host key's TPM Name */
        const uint8_t *host_public_key; /* DER SubjectPublicKeyInfo: pin it to check receipts */
        size_t host_public_key_size;
        uint8_t host_spki_sha256[AGENTID_SHA256_SIZE];
        AgentidTpmState tpm;
} AgentidPlatform;

/* One step of a delegation chain: the parent token (DESIGN §5: [parent.iss, parent.cti, parent.kid]). */
typedef struct AgentidTokenHop {
        const char *iss;                /* the parent's issuer, an agent URI */
        uint8_t cti[AGENTID_TOKEN_CTI_SIZE];
        uint8_t kid[AGENTID_TPM_NAME_SIZE];     /* the key that signed the parent */
} AgentidTokenHop;

/*
 * Claims of a valid token, all covered by its signature. Strings are NUL-terminated UTF-8 owned by the
 * verdict; absent optional claims are NULL / 0. Allocated by the library; fields may be appended.
 */
typedef struct AgentidToken {
        const char *iss;                /* = sub: the issuing agent's URI */
        const char *aud;
        uint64_t exp, nbf, iat;         /* NumericDate */
        uint8_t cti[AGENTID_TOKEN_CTI_SIZE];
        const char *scope;              /* space-separated scope tokens, or NULL */
        const char *task_id;
        const char *parent_task_id;     /* NULL if absent */
        const char *owner;
        uint8_t kid[AGENTID_TPM_NAME_SIZE];     /* from the protected header */
        uint8_t spki_sha256[AGENTID_SHA256_SIZE]; /* of the key it verified with (revocation entries use it) */
        size_t n_hops;                  /* 0 for a root token */
        const AgentidTokenHop *hops;    /* oldest ancestor first; the last is the direct parent */
        bool has_credential;            /* issued by a task key: its task credential (COSE_Sign1_Tagged) */
        const uint8_t *credential;
        size_t credential_size;

        /* Appended: what a task token's credential says, all covered by the agent key's signature
         * (zero / NULL when has_credential is false). kid and spki_sha256 above are then the TASK key's:
         * its TPM Name (= Name(task_key.pub), which the AK certified) and the SHA-256 of its DER
         * SubjectPublicKeyInfo (task_public_key); the agent key is the one the caller gave. */
        uint8_t credential_kid[AGENTID_TPM_NAME_SIZE];          /* the agent key that signed the credential */
        uint8_t agent_spki_sha256[AGENTID_SHA256_SIZE];         /* of the agent key given */
        uint8_t credential_cti[AGENTID_TOKEN_CTI_SIZE];         /* what a task_end revocation entry names */
        uint64_t credential_iat, credential_exp;                /* NumericDate; the token's exp is not later */
        const char *credential_scope;                           /* NULL if absent; the token's scope is within */
        const char *const *credential_audiences;                /* the audiences tokens may have; none = any */
        size_t n_credential_audiences;
        const uint8_t *task_public_key;                         /* the task key, DER SubjectPublicKeyInfo */
        size_t task_public_key_size;
} AgentidToken;

/* What a valid signed message says, all covered by its signature. */
typedef struct AgentidMessage {
        uint64_t iat;                   /* NumericDate */
        const char *aud;                /* NULL if absent */
        const char *task_id;            /* NULL if absent */
        const char *parent_task_id;     /* NULL if absent */
        uint8_t kid[AGENTID_TPM_NAME_SIZE];
        uint8_t spki_sha256[AGENTID_SHA256_SIZE];
        const uint8_t *payload;         /* the signed bytes */
        size_t payload_size;
} AgentidMessage;

/* Claims of a valid agent-evidence verdict; NULL for an invalid one or for any other kind. */
AGENTID_EXPORT const AgentidClaims *agentid_verdict_get_claims(const AgentidVerdict *d);
/* Certified host key of a valid platform verdict; NULL otherwise. */
AGENTID_EXPORT const AgentidPlatform *agentid_verdict_get_platform(const AgentidVerdict *d);
/* Claims of a valid token verdict; NULL otherwise. */
AGENTID_EXPORT const AgentidToken *agentid_verdict_get_token(const AgentidVerdict *d);
/* Claims and payload of a valid signed-message verdict; NULL otherwise. */
AGENTID_EXPORT const AgentidMessage *agentid_verdict_get_message(const AgentidVerdict *d);
/* What a valid rotation verdict says; NULL otherwise. */
AGENTID_EXPORT const AgentidRotation *agentid_verdict_get_rotation(const AgentidVerdict *d);

#ifdef __cplusplus
}
#endif

#endif /* AGENTID_VERIFY_H */

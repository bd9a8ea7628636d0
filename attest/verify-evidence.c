/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify: agent and platform evidence (DESIGN §5; formats in docs/formats.md §5-§6; the
 * checks and reason codes in docs/verifier.md).
 *
 * A verification fills a fixed, ordered list of checks. Every entry starts out failed ("not checked");
 * each check either passes, fails with a reason, or stays "not checked" because an input it needs
 * could not be parsed (which an earlier check in the list has already reported as a failure). The
 * verdict is valid only if every entry passed, so a check that is forgotten or skipped can never make
 * evidence valid. Checks keep running after a failure, so one verdict shows everything that is wrong.
 *
 * Input reaches libcbor only after cbor_util_validate() (deterministic encoding, size and depth
 * limits); TPM structures are parsed by attest/tpm2-types.c. Only OpenSSL, libcbor and common/.
 *
 * The verifier and the verdict machinery here also serve tokens and signed messages
 * (verify-token.c) and rotation statements (verify-revocation.c), through verify-internal.h. When the
 * verifier holds revocation lists, the check "revoked" runs last, on the certified key.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attest/cose.h"
#include "attest/tpm2-types.h"
#include "attest/verify-internal.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/hashmap.h"
#include "common/hexutil.h"
#include "common/macro.h"

/* Our public symbols are exported from the shared library; everything else there is hidden. */
#define PUBLIC AGENTID_EXPORT

/* eat_profile of agentid evidence (DESIGN §5). */
#define AGENTID_EAT_PROFILE "tag:agentid.org,2026:v1"
#define AGENT_URI_PREFIX "agentid://"
/* host-id: hex of the first 16 bytes of SHA-256(SRK Name) (DESIGN §2). */
#define HOST_ID_BYTES 16U
#define HOST_ID_HEX (2 * HOST_ID_BYTES)

/* Bounds on the TPM byte strings inside evidence: the largest RSA-4096 TPMT_PUBLIC or TPMT_SIGNATURE
 * is about 600 bytes, a TPMS_ATTEST with the bounds of tpm2-types.h about 400. */
#define TPM_BLOB_MAX 1024U

/* Claim limits (bytes). Texts that name something (owner, task) follow the key record and the
 * COSE claims; a path may be as long as PATH_MAX. */
#define CLAIM_TEXT_MAX 256U
#define CLAIM_PATH_MAX 4096U
#define CLAIM_DAEMON_MAX 64U
#define KEY_NAME_MAX 64U

/* EAT / CWT claim keys (RFC 8392 §3.1, RFC 9711 §4) and COSE_Key labels (RFC 9052 §7.1, RFC 9053 §7.1). */
#define CLAIM_SUB 2
#define CLAIM_IAT 6
#define CLAIM_CNF 8
#define CLAIM_EAT_NONCE 10
#define CLAIM_EAT_PROFILE 265
#define CNF_COSE_KEY 1                  /* RFC 8747 §3.1 */
#define COSE_KEY_KTY 1
#define COSE_KEY_CRV (-1)
#define COSE_KEY_X (-2)
#define COSE_KEY_Y (-3)
#define COSE_KTY_EC2 2
#define COSE_CRV_P256 1

#define DETAIL_MAX 320U
#define CHECKS_MAX 32U

/* The selection every quote must carry (DESIGN §5): TPML_PCR_SELECTION 00000001 000b 03 ff0000. */
static const uint8_t pcr_select_0_7[3] = { 0xff, 0x00, 0x00 };

static const AgentidReason agent_checks[] = {
        AGENTID_REASON_FORMAT,
        AGENTID_REASON_AK_TRUSTED,
        AGENTID_REASON_AK_ATTRIBUTES,
        AGENTID_REASON_CERTIFY_SIGNATURE,
        AGENTID_REASON_CERTIFY_STRUCTURE,
        AGENTID_REASON_CERTIFY_NONCE,
        AGENTID_REASON_KEY_ATTRIBUTES,
        AGENTID_REASON_CERTIFIED_NAME,
        AGENTID_REASON_QUALIFIED_NAME,
        AGENTID_REASON_QUOTE_SIGNATURE,
        AGENTID_REASON_QUOTE_STRUCTURE,
        AGENTID_REASON_QUALIFIED_SIGNER,
        AGENTID_REASON_CLOCK,
        AGENTID_REASON_SAFE,
        AGENTID_REASON_PCR_SELECTION,
        AGENTID_REASON_PCR_DIGEST,
        AGENTID_REASON_REFERENCE_PCRS,
        AGENTID_REASON_EAT_SIGNATURE,
        AGENTID_REASON_QUOTE_BINDING,
        AGENTID_REASON_CLAIMS,
        AGENTID_REASON_PROFILE,
        AGENTID_REASON_NONCE,
        AGENTID_REASON_FRESHNESS,
        AGENTID_REASON_CNF,
        AGENTID_REASON_HOST_ID,
        AGENTID_REASON_KEY_EXPIRY,
        AGENTID_REASON_WORKLOAD,
};

static const AgentidReason platform_checks[] = {
        AGENTID_REASON_FORMAT,
        AGENTID_REASON_AK_TRUSTED,
        AGENTID_REASON_AK_ATTRIBUTES,
        AGENTID_REASON_CERTIFY_SIGNATURE,
        AGENTID_REASON_CERTIFY_STRUCTURE,
        AGENTID_REASON_CERTIFY_NONCE,
        AGENTID_REASON_KEY_ATTRIBUTES,
        AGENTID_REASON_CERTIFIED_NAME,
        AGENTID_REASON_QUALIFIED_NAME,
        AGENTID_REASON_QUOTE_SIGNATURE,
        AGENTID_REASON_QUOTE_STRUCTURE,
        AGENTID_REASON_QUALIFIED_SIGNER,
        AGENTID_REASON_CLOCK,
        AGENTID_REASON_SAFE,
        AGENTID_REASON_PCR_SELECTION,
        AGENTID_REASON_PCR_DIGEST,
        AGENTID_REASON_REFERENCE_PCRS,
        AGENTID_REASON_QUOTE_BINDING,
};

static const char *const reason_names[] = {
        [AGENTID_REASON_VALID] = "valid",
        [AGENTID_REASON_FORMAT] = "format",
        [AGENTID_REASON_AK_TRUSTED] = "ak_trusted",
        [AGENTID_REASON_AK_ATTRIBUTES] = "ak_attributes",
        [AGENTID_REASON_CERTIFY_SIGNATURE] = "certify_signature",
        [AGENTID_REASON_CERTIFY_STRUCTURE] = "certify_structure",
        [AGENTID_REASON_CERTIFY_NONCE] = "certify_nonce",
        [AGENTID_REASON_KEY_ATTRIBUTES] = "key_attributes",
        [AGENTID_REASON_CERTIFIED_NAME] = "certified_name",
        [AGENTID_REASON_QUALIFIED_NAME] = "qualified_name",
        [AGENTID_REASON_QUOTE_SIGNATURE] = "quote_signature",
        [AGENTID_REASON_QUOTE_STRUCTURE] = "quote_structure",
        [AGENTID_REASON_QUALIFIED_SIGNER] = "qualified_signer",
        [AGENTID_REASON_CLOCK] = "clock",
        [AGENTID_REASON_SAFE] = "safe",
        [AGENTID_REASON_PCR_SELECTION] = "pcr_selection",
        [AGENTID_REASON_PCR_DIGEST] = "pcr_digest",
        [AGENTID_REASON_REFERENCE_PCRS] = "reference_pcrs",
        [AGENTID_REASON_EAT_SIGNATURE] = "eat_signature",
        [AGENTID_REASON_QUOTE_BINDING] = "quote_binding",
        [AGENTID_REASON_CLAIMS] = "claims",
        [AGENTID_REASON_PROFILE] = "profile",
        [AGENTID_REASON_NONCE] = "nonce",
        [AGENTID_REASON_FRESHNESS] = "freshness",
        [AGENTID_REASON_CNF] = "cnf",
        [AGENTID_REASON_HOST_ID] = "host_id",
        [AGENTID_REASON_KEY_EXPIRY] = "key_expiry",
        [AGENTID_REASON_WORKLOAD] = "workload",
        [AGENTID_REASON_TOKEN_FORMAT] = "token_format",
        [AGENTID_REASON_TOKEN_SIGNATURE] = "token_signature",
        [AGENTID_REASON_TOKEN_KID] = "token_kid",
        [AGENTID_REASON_TOKEN_CLAIMS] = "token_claims",
        [AGENTID_REASON_TOKEN_AUDIENCE] = "token_audience",
        [AGENTID_REASON_TOKEN_NOT_BEFORE] = "token_not_before",
        [AGENTID_REASON_TOKEN_EXPIRY] = "token_expiry",
        [AGENTID_REASON_TOKEN_HOPS] = "token_hops",
        [AGENTID_REASON_MESSAGE_FORMAT] = "message_format",
        [AGENTID_REASON_MESSAGE_SIGNATURE] = "message_signature",
        [AGENTID_REASON_MESSAGE_KID] = "message_kid",
        [AGENTID_REASON_MESSAGE_AUDIENCE] = "message_audience",
        [AGENTID_REASON_MESSAGE_FRESHNESS] = "message_freshness",
        [AGENTID_REASON_REVOKED] = "revoked",
        [AGENTID_REASON_ROTATION_FORMAT] = "rotation_format",
        [AGENTID_REASON_ROTATION_OLD_SIGNATURE] = "rotation_old_signature",
        [AGENTID_REASON_ROTATION_HOST_SIGNATURE] = "rotation_host_signature",
        [AGENTID_REASON_CREDENTIAL_FORMAT] = "credential_format",
        [AGENTID_REASON_CREDENTIAL_SIGNATURE] = "credential_signature",
        [AGENTID_REASON_CREDENTIAL_TASK_KEY] = "credential_task_key",
        [AGENTID_REASON_CREDENTIAL_EXPIRY] = "credential_expiry",
        [AGENTID_REASON_CREDENTIAL_BINDING] = "credential_binding",
        [AGENTID_REASON_TOKEN_PEER] = "token_peer",
        [AGENTID_REASON_TOKEN_PEER_HOPS] = "token_peer_hops",
};

PUBLIC const char *agentid_reason_to_string(AgentidReason reason) {
        if ((unsigned) reason >= ELEMENTSOF(reason_names))
                return NULL;
        return reason_names[reason];
}

/* ------------------------------------------------------------------------------------------------ */
/* Verifier configuration */

typedef struct TrustedAk {
        char key[2 * SHA256_DIGEST_SIZE + 1];   /* hashmap key: hex SHA-256 of the bytes */
        uint8_t *pub;
        size_t pub_size;
        Tpm2Public parsed;
        EVP_PKEY *pkey;                         /* NULL unless ECC P-256 */
} TrustedAk;

struct AgentidVerifier {
        Hashmap *aks;                           /* TrustedAk by key */
        EVP_PKEY *p256;                         /* P-256 parameters: the template for every key */
        uint64_t now;                           /* 0 = system clock */
        uint64_t max_age;
        bool require_safe;
        bool have_reference[AGENTID_PCR_COUNT];
        uint8_t reference[AGENTID_PCR_COUNT][AGENTID_PCR_SIZE];
        uint8_t (*workloads)[SHA256_DIGEST_SIZE];
        size_t n_workloads;
        RevocationStore *revocations;           /* verify-revocation.c; NULL until a list is added */
        PeerRegistry *peers;                    /* verify-peers.c; NULL until a registry is added */
        EVP_PKEY **peer_keys;                   /* each peer's key, decoded once, in registry order */
};

static TrustedAk *trusted_ak_free(TrustedAk *t) {
        if (!t)
                return NULL;
        EVP_PKEY_free(t->pkey);
        free(t->pub);
        return mfree(t);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(TrustedAk *, trusted_ak_free);

PUBLIC AgentidVerifier *agentid_verifier_new(void) {
        AgentidVerifier *v = calloc(1, sizeof(*v));
        if (!v)
                return NULL;
        v->max_age = AGENTID_DEFAULT_MAX_AGE;
        v->aks = hashmap_new();
        if (!v->aks || tpm2_p256_params_new(&v->p256) < 0)
                return agentid_verifier_free(v);
        return v;
}

PUBLIC AgentidVerifier *agentid_verifier_free(AgentidVerifier *v) {
        void *value;
        size_t state = 0;

        if (!v)
                return NULL;
        while (hashmap_iterate(v->aks, &state, &value))
                trusted_ak_free(value);
        hashmap_free(v->aks);
        EVP_PKEY_free(v->p256);
        free(v->workloads);
        revocation_store_free(v->revocations);
        for (size_t i = 0; v->peer_keys && i < peer_registry_size(v->peers); i++)
                EVP_PKEY_free(v->peer_keys[i]);
        free(v->peer_keys);
        peer_registry_free(v->peers);
        return mfree(v);
}

const PeerRegistry *verifier_peers(const AgentidVerifier *v) {
        return v ? v->peers : NULL;
}

void verifier_set_peers(AgentidVerifier *v, PeerRegistry *reg, EVP_PKEY **keys) {
        v->peers = reg;
        v->peer_keys = keys;
}

EVP_PKEY *verifier_peer_key(const AgentidVerifier *v, size_t i) {
        return v->peer_keys[i];
}

const RevocationStore *verifier_revocations(const AgentidVerifier *v) {
        return v ? v->revocations : NULL;
}

RevocationStore **verifier_revocations_slot(AgentidVerifier *v) {
        return &v->revocations;
}

size_t verifier_n_trusted_aks(const AgentidVerifier *v) {
        return hashmap_size(v->aks);
}

bool verifier_trusted_ak_next(const AgentidVerifier *v, size_t *state, const Tpm2Public **ret_parsed,
                              EVP_PKEY **ret_pkey, const uint8_t **ret_pub, size_t *ret_pub_size) {
        void *value;

        if (!hashmap_iterate(v->aks, state, &value))
                return false;
        const TrustedAk *t = value;
        *ret_parsed = &t->parsed;
        *ret_pkey = t->pkey;
        *ret_pub = t->pub;
        *ret_pub_size = t->pub_size;
        return true;
}

static int key_of_bytes(const uint8_t *p, size_t n, char ret[2 * SHA256_DIGEST_SIZE + 1]) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        int r = sha256(p, n, digest);
        if (r < 0)
                return r;
        hex_encode_to(digest, sizeof(digest), ret);
        return 0;
}

PUBLIC int agentid_verifier_add_trusted_ak(AgentidVerifier *v, const uint8_t *tpmt_public, size_t size) {
        _cleanup_(trusted_ak_freep) TrustedAk *t = NULL;
        int r;

        if (!v || !tpmt_public || size == 0 || size > TPM_BLOB_MAX)
                return -EINVAL;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        r = tpm2_public_parse(tpmt_public, size, &t->parsed);
        if (r < 0)
                return r == -EINVAL ? r : -EBADMSG;
        t->pub = malloc(size);
        if (!t->pub)
                return -ENOMEM;
        memcpy(t->pub, tpmt_public, size);
        t->pub_size = size;

        /* Decoded once here: building an EVP_PKEY costs about as much as the signature check itself.
         * An AK that is not ECC P-256 is kept (it is still "trusted"), and ak_attributes refuses it. */
        r = tpm2_public_to_pkey(&t->parsed, v->p256, &t->pkey);
        if (r == -ENOMEM)
                return r;

        r = key_of_bytes(t->pub, t->pub_size, t->key);
        if (r < 0)
                return r;
        r = hashmap_put(v->aks, t->key, t);
        if (r < 0)
                return r;
        TAKE_PTR(t);
        return 0;
}

PUBLIC int agentid_verifier_set_now(AgentidVerifier *v, uint64_t unix_seconds) {
        if (!v)
                return -EINVAL;
        v->now = unix_seconds;
        return 0;
}

PUBLIC int agentid_verifier_set_max_age(AgentidVerifier *v, uint64_t seconds) {
        if (!v)
                return -EINVAL;
        v->max_age = seconds;
        return 0;
}

PUBLIC int agentid_verifier_set_require_safe(AgentidVerifier *v, bool require) {
        if (!v)
                return -EINVAL;
        v->require_safe = require;
        return 0;
}

PUBLIC int agentid_verifier_add_reference_pcr(AgentidVerifier *v, unsigned index,
                                              const uint8_t digest[AGENTID_PCR_SIZE]) {
        if (!v || !digest)
                return -EINVAL;
        if (index >= AGENTID_PCR_COUNT)
                return -ERANGE;
        if (v->have_reference[index])
                return -EEXIST;
        memcpy(v->reference[index], digest, AGENTID_PCR_SIZE);
        v->have_reference[index] = true;
        return 0;
}

PUBLIC int agentid_verifier_add_allowed_workload(AgentidVerifier *v, const uint8_t sha256_digest[AGENTID_SHA256_SIZE]) {
        if (!v || !sha256_digest)
                return -EINVAL;
        for (size_t i = 0; i < v->n_workloads; i++)
                if (memcmp(v->workloads[i], sha256_digest, SHA256_DIGEST_SIZE) == 0)
                        return 0;

        size_t n;
        if (!size_add(v->n_workloads, 1, &n) || !size_mul(n, SHA256_DIGEST_SIZE, &n))
                return -ENOMEM;
        uint8_t (*w)[SHA256_DIGEST_SIZE] = realloc(v->workloads, n);
        if (!w)
                return -ENOMEM;
        v->workloads = w;
        memcpy(v->workloads[v->n_workloads++], sha256_digest, SHA256_DIGEST_SIZE);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Verdicts */

typedef struct CheckResult {
        AgentidReason reason;
        bool ok;
        bool done;
        char detail[DETAIL_MAX];
} CheckResult;

struct AgentidVerdict {
        VerdictKind kind;
        bool platform;
        bool valid;
        AgentidReason reason;
        size_t n_checks;
        CheckResult checks[CHECKS_MAX];

        /* Filled while checking; handed out only when valid. */
        AgentidClaims claims;
        AgentidPlatform platform_info;
        uint8_t nonce[AGENTID_NONCE_MAX];
        char *sub, *host_id, *key_name, *profile, *owner, *unit, *task_id, *parent_task_id, *daemon;
        uint8_t *exe_path;
        uint8_t spki[TPM2P_P256_SPKI_SIZE];

        /* Token and message verdicts keep their outputs here (verify-token.c). */
        void *extra;
        void (*free_extra)(void *extra);
};

PUBLIC AgentidVerdict *agentid_verdict_free(AgentidVerdict *d) {
        if (!d)
                return NULL;
        free(d->sub);
        free(d->host_id);
        free(d->key_name);
        free(d->profile);
        free(d->owner);
        free(d->unit);
        free(d->task_id);
        free(d->parent_task_id);
        free(d->daemon);
        free(d->exe_path);
        if (d->free_extra)
                d->free_extra(d->extra);
        return mfree(d);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

PUBLIC bool agentid_verdict_is_valid(const AgentidVerdict *d) {
        return d && d->valid;
}

PUBLIC AgentidReason agentid_verdict_reason(const AgentidVerdict *d) {
        return d ? d->reason : AGENTID_REASON_FORMAT;
}

PUBLIC size_t agentid_verdict_n_checks(const AgentidVerdict *d) {
        return d ? d->n_checks : 0;
}

PUBLIC int agentid_verdict_get_check(const AgentidVerdict *d, size_t i, AgentidReason *ret_reason,
                                     const char **ret_name, bool *ret_ok, const char **ret_detail) {
        if (!d)
                return -EINVAL;
        if (i >= d->n_checks)
                return -ERANGE;
        const CheckResult *c = &d->checks[i];
        if (ret_reason)
                *ret_reason = c->reason;
        if (ret_name)
                *ret_name = agentid_reason_to_string(c->reason);
        if (ret_ok)
                *ret_ok = c->ok;
        if (ret_detail)
                *ret_detail = c->detail;
        return 0;
}

PUBLIC const AgentidClaims *agentid_verdict_get_claims(const AgentidVerdict *d) {
        return d && d->valid && d->kind == VERDICT_EVIDENCE && !d->platform ? &d->claims : NULL;
}

PUBLIC const AgentidPlatform *agentid_verdict_get_platform(const AgentidVerdict *d) {
        return d && d->valid && d->kind == VERDICT_EVIDENCE && d->platform ? &d->platform_info : NULL;
}

AgentidVerdict *verdict_new(const AgentidVerifier *revocations_of, VerdictKind kind, const AgentidReason *order,
                            size_t n_order, const char *not_checked) {
        bool revoked = verifier_has_revocations(revocations_of);
        AgentidVerdict *d;

        if (n_order + revoked > CHECKS_MAX)
                return NULL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->kind = kind;
        d->n_checks = n_order + revoked;
        for (size_t i = 0; i < d->n_checks; i++) {
                /* "revoked" last: it refuses a key only after everything else said what the key is. */
                d->checks[i].reason = i < n_order ? order[i] : AGENTID_REASON_REVOKED;
                snprintf(d->checks[i].detail, sizeof(d->checks[i].detail), "%s", not_checked);
        }
        return d;
}

void verdict_record_v(AgentidVerdict *d, AgentidReason reason, bool ok, const char *fmt, va_list ap) {
        for (size_t i = 0; i < d->n_checks; i++) {
                CheckResult *c = &d->checks[i];
                if (c->reason != reason)
                        continue;
                /* A failure sticks: nothing recorded later can turn it into a pass. */
                if (c->done && !c->ok)
                        return;
                c->ok = ok;
                c->done = true;
                vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
                return;
        }
}

void verdict_conclude(AgentidVerdict *d) {
        /* Valid only if every check in the list ran and passed; the reason is the first that did not. */
        d->valid = true;
        d->reason = AGENTID_REASON_VALID;
        for (size_t i = 0; i < d->n_checks; i++)
                if (!d->checks[i].done || !d->checks[i].ok) {
                        d->valid = false;
                        d->reason = d->checks[i].reason;
                        break;
                }
}

void verdict_set_extra(AgentidVerdict *d, void *extra, void (*free_extra)(void *extra)) {
        if (d->free_extra)
                d->free_extra(d->extra);
        d->extra = extra;
        d->free_extra = free_extra;
}

void *verdict_get_extra(const AgentidVerdict *d, VerdictKind kind) {
        return d && d->valid && d->kind == kind ? d->extra : NULL;
}

int verifier_now(const AgentidVerifier *v, uint64_t *ret) {
        struct timespec ts;

        if (v->now != 0) {
                *ret = v->now;
                return 0;
        }
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        *ret = (uint64_t) ts.tv_sec;
        return 0;
}

uint64_t verifier_max_age(const AgentidVerifier *v) {
        return v->max_age;
}

/* ------------------------------------------------------------------------------------------------ */
/* One verification */

typedef struct Blob {
        const uint8_t *data;
        size_t size;
} Blob;

typedef struct Verification {
        const AgentidVerifier *v;
        AgentidVerdict *d;
        bool platform;
        const uint8_t *nonce;
        size_t nonce_size;
        uint64_t now;

        /* "format": the evidence, and borrowed views of its byte strings */
        cbor_item_t *evidence;
        bool format_ok;
        Blob eat, key_pub, certify, certify_sig, quote, quote_sig, ak_pub, srk_name;
        const uint8_t *pcrs[AGENTID_PCR_COUNT];

        /* the AK: the trusted entry when ak_pub is one, else parsed here */
        const TrustedAk *trusted;
        Tpm2Public ak_local;
        const Tpm2Public *ak;
        EVP_PKEY *ak_pkey;              /* borrowed from trusted, or ak_pkey_owned */
        EVP_PKEY *ak_pkey_owned;
        uint8_t ak_name[TPM2P_NAME_SHA256_SIZE];
        bool ak_named;

        /* the certified key (agent key K, or the host key) */
        Tpm2Public key;
        bool key_parsed, key_named;
        uint8_t key_name[TPM2P_NAME_SHA256_SIZE];
        EVP_PKEY *key_pkey;

        Tpm2Attest certify_a, quote_a;
        bool certify_usable, quote_usable;      /* parsed and of the right type */

        uint8_t *payload;               /* EAT claims bytes, once eat_signature passed */
        size_t payload_size;
        cbor_item_t *claims;
        bool claims_ok;
        const uint8_t *cnf_x, *cnf_y;
} Verification;

static void verification_done(Verification *x) {
        if (x->evidence)
                cbor_decref(&x->evidence);
        if (x->claims)
                cbor_decref(&x->claims);
        EVP_PKEY_free(x->ak_pkey_owned);
        EVP_PKEY_free(x->key_pkey);
        free(x->payload);
}

static void _printf_(3, 4) pass(Verification *x, AgentidReason reason, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        verdict_record_v(x->d, reason, true, fmt, ap);
        va_end(ap);
}

static void _printf_(3, 4) fail(Verification *x, AgentidReason reason, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        verdict_record_v(x->d, reason, false, fmt, ap);
        va_end(ap);
}

/* A check whose input is missing because an earlier check failed: it stays failed. */
static void skip(Verification *x, AgentidReason reason, const char *why) {
        fail(x, reason, "not checked: %s", why);
}

/* Hex of up to 34 bytes, for details. */
typedef struct Hex {
        char s[2 * TPM2P_NAME_MAX + 1];
} Hex;

static Hex hex(const uint8_t *p, size_t n) {
        Hex h;
        hex_encode_to(p, MIN(n, (size_t) TPM2P_NAME_MAX), h.s);
        return h;
}

static bool bytes_equal(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
        return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* ---- format -------------------------------------------------------------------------------- */

static void describe_key(const cbor_item_t *k, char *buf, size_t n) {
        const char *s;
        size_t l;
        int64_t i;

        if (k && cbor_util_get_text(k, &s, &l) >= 0)
                snprintf(buf, n, "\"%.*s\"", (int) MIN(l, (size_t) 40), s);
        else if (k && cbor_util_get_int(k, &i) >= 0)
                snprintf(buf, n, "%lld", (long long) i);
        else
                snprintf(buf, n, "a key that is neither text nor integer");
}

static int get_blob(Verification *x, const cbor_item_t *map, const char *key, size_t min, size_t max, Blob *ret) {
        const cbor_item_t *item = cbor_util_map_get_text(map, key);

        if (!item) {
                fail(x, AGENTID_REASON_FORMAT, "\"tpm\" lacks \"%s\"", key);
                return -EBADMSG;
        }
        if (cbor_util_get_bytes(item, &ret->data, &ret->size) < 0) {
                fail(x, AGENTID_REASON_FORMAT, "\"%s\" is not a byte string", key);
                return -EBADMSG;
        }
        if (ret->size < min || ret->size > max) {
                fail(x, AGENTID_REASON_FORMAT, "\"%s\" has %zu bytes, expected %zu..%zu", key, ret->size, min, max);
                return -EBADMSG;
        }
        return 0;
}

static int check_keys(Verification *x, const cbor_item_t *map, const char *where, const char *const *keys,
                      size_t n_keys) {
        const cbor_item_t *unknown = NULL;
        char name[64];

        if (cbor_util_map_check_text_keys(map, keys, n_keys, &unknown) < 0) {
                describe_key(unknown, name, sizeof(name));
                fail(x, AGENTID_REASON_FORMAT, "unknown key %s in %s", name, where);
                return -EBADMSG;
        }
        return 0;
}

/* DESIGN §5: the outer map, the "tpm" map and the byte strings in it, before anything is checked. */
static int check_format(Verification *x, const uint8_t *buf, size_t size) {
        static const CborLimits limits = {
                .max_size = AGENTID_EVIDENCE_MAX,
                .max_depth = 3,         /* evidence map > "tpm" map > "pcrs" array */
                .max_items = 64,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        static const char *const agent_keys[] = { "v", "eat", "tpm" };
        static const char *const platform_keys[] = { "v", "type", "tpm" };
        static const char *const agent_tpm_keys[] = {
                "key_pub", "certify", "certify_sig", "quote", "quote_sig", "pcrs", "ak_pub", "srk_name",
        };
        static const char *const platform_tpm_keys[] = {
                "quote", "quote_sig", "pcrs", "ak_pub", "srk_name", "host_pub", "host_certify", "host_certify_sig",
        };
        const char *what = x->platform ? "platform evidence" : "agent evidence";
        CborError error = {};
        uint64_t version;
        int r;

        r = cbor_util_decode(buf, size, &limits, &x->evidence, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                fail(x, AGENTID_REASON_FORMAT, "not a deterministic CBOR item of at most %u bytes: %s at offset %zu",
                     AGENTID_EVIDENCE_MAX, error.reason ?: "invalid", error.offset);
                return 0;
        }
        if (!cbor_isa_map(x->evidence)) {
                fail(x, AGENTID_REASON_FORMAT, "%s is not a map", what);
                return 0;
        }
        if (x->platform) {
                if (check_keys(x, x->evidence, what, platform_keys, ELEMENTSOF(platform_keys)) < 0)
                        return 0;
        } else if (check_keys(x, x->evidence, what, agent_keys, ELEMENTSOF(agent_keys)) < 0)
                return 0;

        if (cbor_util_get_uint(cbor_util_map_get_text(x->evidence, "v"), &version) < 0 || version != 1) {
                fail(x, AGENTID_REASON_FORMAT, "\"v\" is missing or not 1");
                return 0;
        }
        if (x->platform) {
                const char *s;
                size_t l;
                if (cbor_util_get_text(cbor_util_map_get_text(x->evidence, "type"), &s, &l) < 0 ||
                    !bytes_equal((const uint8_t *) s, l, (const uint8_t *) "platform", strlen("platform"))) {
                        fail(x, AGENTID_REASON_FORMAT, "\"type\" is missing or not \"platform\"");
                        return 0;
                }
        } else {
                const cbor_item_t *eat = cbor_util_map_get_text(x->evidence, "eat");
                if (cbor_util_get_bytes(eat, &x->eat.data, &x->eat.size) < 0 || x->eat.size == 0) {
                        fail(x, AGENTID_REASON_FORMAT, "\"eat\" is missing or not a non-empty byte string");
                        return 0;
                }
        }

        const cbor_item_t *tpm = cbor_util_map_get_text(x->evidence, "tpm");
        if (!tpm || !cbor_isa_map(tpm)) {
                fail(x, AGENTID_REASON_FORMAT, "\"tpm\" is missing or not a map");
                return 0;
        }
        if (x->platform) {
                if (check_keys(x, tpm, "\"tpm\"", platform_tpm_keys, ELEMENTSOF(platform_tpm_keys)) < 0)
                        return 0;
        } else if (check_keys(x, tpm, "\"tpm\"", agent_tpm_keys, ELEMENTSOF(agent_tpm_keys)) < 0)
                return 0;

        if (get_blob(x, tpm, x->platform ? "host_pub" : "key_pub", 1, TPM_BLOB_MAX, &x->key_pub) < 0 ||
            get_blob(x, tpm, x->platform ? "host_certify" : "certify", 1, TPM_BLOB_MAX, &x->certify) < 0 ||
            get_blob(x, tpm, x->platform ? "host_certify_sig" : "certify_sig", 1, TPM_BLOB_MAX, &x->certify_sig) < 0 ||
            get_blob(x, tpm, "quote", 1, TPM_BLOB_MAX, &x->quote) < 0 ||
            get_blob(x, tpm, "quote_sig", 1, TPM_BLOB_MAX, &x->quote_sig) < 0 ||
            get_blob(x, tpm, "ak_pub", 1, TPM_BLOB_MAX, &x->ak_pub) < 0 ||
            get_blob(x, tpm, "srk_name", TPM2P_NAME_SHA256_SIZE, TPM2P_NAME_SHA256_SIZE, &x->srk_name) < 0)
                return 0;
        /* The SRK's Name must be a SHA-256 Name (Part 1 §16): the host-id and QN(SRK) are computed from it. */
        if (x->srk_name.data[0] != 0x00 || x->srk_name.data[1] != (uint8_t) TPM2P_ALG_SHA256) {
                fail(x, AGENTID_REASON_FORMAT, "\"srk_name\" is not a SHA-256 TPM Name (00 0b ...)");
                return 0;
        }

        const cbor_item_t *pcrs = cbor_util_map_get_text(tpm, "pcrs");
        if (!pcrs || !cbor_isa_array(pcrs) || cbor_array_size(pcrs) != AGENTID_PCR_COUNT || !cbor_array_handle(pcrs)) {
                fail(x, AGENTID_REASON_FORMAT, "\"pcrs\" is not an array of %u values", AGENTID_PCR_COUNT);
                return 0;
        }
        for (size_t i = 0; i < AGENTID_PCR_COUNT; i++) {
                const uint8_t *p;
                size_t n;
                if (cbor_util_get_bytes(cbor_array_handle(pcrs)[i], &p, &n) < 0 || n != AGENTID_PCR_SIZE) {
                        fail(x, AGENTID_REASON_FORMAT, "\"pcrs\"[%zu] is not a byte string of %u bytes", i,
                             AGENTID_PCR_SIZE);
                        return 0;
                }
                x->pcrs[i] = p;
        }

        x->format_ok = true;
        pass(x, AGENTID_REASON_FORMAT, "%s v1, %zu bytes", what, size);
        return 0;
}

/* ---- the attestation key ---------------------------------------------------------------------- */

static int check_ak_trusted(Verification *x) {
        char key[2 * SHA256_DIGEST_SIZE + 1];
        int r;

        if (hashmap_size(x->v->aks) == 0) {
                fail(x, AGENTID_REASON_AK_TRUSTED, "no trusted AK configured");
                return 0;
        }
        r = key_of_bytes(x->ak_pub.data, x->ak_pub.size, key);
        if (r < 0)
                return r;
        const TrustedAk *t = hashmap_get(x->v->aks, key);
        /* The hash only finds the candidate; the bytes decide. */
        if (!t || !bytes_equal(t->pub, t->pub_size, x->ak_pub.data, x->ak_pub.size)) {
                fail(x, AGENTID_REASON_AK_TRUSTED, "ak_pub is not a trusted AK (SHA-256 of ak_pub %s)", key);
                return 0;
        }
        x->trusted = t;
        /* For an AK with nameAlg SHA-256 this digest is its Name without the 000b prefix. */
        pass(x, AGENTID_REASON_AK_TRUSTED, "ak_pub is a trusted AK (SHA-256 of ak_pub %s)", key);
        return 0;
}

/* AK_ATTRIBUTES_SET and _CLEAR, required of a restricted signing AK: verify-internal.h. */

/* Agent and host keys (tpm-notes §1.2 step 7): never leaves the TPM, generated inside it, no
 * dictionary-attack lockout, single purpose, unrestricted so it can sign COSE digests. */
#define KEY_ATTRIBUTES_SET                                                                              \
        (TPM2P_OBJ_FIXEDTPM | TPM2P_OBJ_FIXEDPARENT | TPM2P_OBJ_SENSITIVEDATAORIGIN | TPM2P_OBJ_SIGN | \
         TPM2P_OBJ_NODA)
#define KEY_ATTRIBUTES_CLEAR (TPM2P_OBJ_RESTRICTED | TPM2P_OBJ_DECRYPT)

static const struct {
        uint32_t bit;
        const char *name;
} attribute_names[] = {
        { TPM2P_OBJ_FIXEDTPM, "fixedTPM" },
        { TPM2P_OBJ_FIXEDPARENT, "fixedParent" },
        { TPM2P_OBJ_SENSITIVEDATAORIGIN, "sensitiveDataOrigin" },
        { TPM2P_OBJ_NODA, "noDA" },
        { TPM2P_OBJ_RESTRICTED, "restricted" },
        { TPM2P_OBJ_DECRYPT, "decrypt" },
        { TPM2P_OBJ_SIGN, "sign" },
};

/* Describe what is wrong with attributes into buf; returns false if they are as required. */
bool attributes_wrong(uint32_t attributes, uint32_t set, uint32_t clear, char *buf, size_t n) {
        size_t off = 0;
        bool wrong = false;

        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(attribute_names); i++) {
                uint32_t bit = attribute_names[i].bit;
                const char *state = NULL;

                if ((set & bit) && !(attributes & bit))
                        state = "clear";
                else if ((clear & bit) && (attributes & bit))
                        state = "set";
                if (!state)
                        continue;
                wrong = true;
                int k = snprintf(buf + off, n - off, "%s%s %s", off ? ", " : "", attribute_names[i].name, state);
                if (k < 0 || (size_t) k >= n - off)
                        break;
                off += (size_t) k;
        }
        return wrong;
}

/* ECC NIST P-256 with the scheme fixed to ECDSA-SHA256 (Part 2 §12.2.3.6): ES256 and nothing else. */
bool is_es256_key(const Tpm2Public *p, char *buf, size_t n) {
        if (p->type != TPM2P_ALG_ECC)
                snprintf(buf, n, "type 0x%04x, not ECC", p->type);
        else if (p->curve_id != TPM2P_ECC_NIST_P256)
                snprintf(buf, n, "curve 0x%04x, not NIST P-256", p->curve_id);
        else if (p->scheme.scheme != TPM2P_ALG_ECDSA || p->scheme.hash_alg != TPM2P_ALG_SHA256)
                snprintf(buf, n, "scheme 0x%04x/0x%04x, not ECDSA-SHA256", p->scheme.scheme, p->scheme.hash_alg);
        else if (p->name_alg != TPM2P_ALG_SHA256)
                snprintf(buf, n, "nameAlg 0x%04x, not SHA-256", p->name_alg);
        else
                return true;
        return false;
}

static int check_ak_attributes(Verification *x) {
        char why[160];
        int r;

        if (x->trusted) {
                x->ak = &x->trusted->parsed;
                x->ak_pkey = x->trusted->pkey;
        } else {
                r = tpm2_public_parse(x->ak_pub.data, x->ak_pub.size, &x->ak_local);
                if (r < 0) {
                        fail(x, AGENTID_REASON_AK_ATTRIBUTES, "ak_pub does not unmarshal as a TPMT_PUBLIC");
                        return 0;
                }
                x->ak = &x->ak_local;
                r = tpm2_public_to_pkey(x->ak, x->v->p256, &x->ak_pkey_owned);
                if (r == -ENOMEM)
                        return r;
                x->ak_pkey = x->ak_pkey_owned;
        }
        if (tpm2_public_name(x->ak, x->ak_pub.data, x->ak_pub.size, x->ak_name) >= 0)
                x->ak_named = true;

        if (!is_es256_key(x->ak, why, sizeof(why))) {
                fail(x, AGENTID_REASON_AK_ATTRIBUTES, "AK: %s", why);
                return 0;
        }
        if (attributes_wrong(x->ak->attributes, AK_ATTRIBUTES_SET, AK_ATTRIBUTES_CLEAR, why, sizeof(why))) {
                fail(x, AGENTID_REASON_AK_ATTRIBUTES, "AK attributes 0x%08x: %s", x->ak->attributes, why);
                return 0;
        }
        if (!x->ak_pkey) {
                fail(x, AGENTID_REASON_AK_ATTRIBUTES, "AK public point is not on P-256");
                return 0;
        }
        pass(x, AGENTID_REASON_AK_ATTRIBUTES, "restricted ECDSA-SHA256 P-256 signing key, attributes 0x%08x",
             x->ak->attributes);
        return 0;
}

/* ---- attestations ----------------------------------------------------------------------------- */

/* The AK's signature over the raw TPMS_ATTEST bytes (Part 3 §18.2/§18.4: the TPM signs
 * H_scheme(attest)); the hash must be SHA-256, the AK's fixed scheme (tpm-notes §1.2 step 1). */
static int check_attest_signature(Verification *x, AgentidReason reason, const char *what, const Blob *attest,
                                  const Blob *sig_blob) {
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        Tpm2Signature sig;
        size_t der_size;
        int r;

        if (!x->ak_pkey) {
                skip(x, reason, "no usable AK public key");
                return 0;
        }
        r = tpm2_signature_parse(sig_blob->data, sig_blob->size, &sig);
        if (r == -EOPNOTSUPP || (r >= 0 && sig.sig_alg != TPM2P_ALG_ECDSA)) {
                fail(x, reason, "%s signature is not ECDSA", what);
                return 0;
        }
        if (r < 0) {
                fail(x, reason, "%s signature does not unmarshal as a TPMT_SIGNATURE", what);
                return 0;
        }
        if (sig.hash_alg != TPM2P_ALG_SHA256) {
                fail(x, reason, "%s signature hash 0x%04x, not SHA-256", what, sig.hash_alg);
                return 0;
        }
        r = tpm2_signature_ecdsa_to_der(&sig, P256_COORD_SIZE, &der, &der_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                fail(x, reason, "%s signature r or s is longer than 32 bytes", what);
                return 0;
        }
        r = sha256(attest->data, attest->size, digest);
        if (r < 0)
                return r;
        r = ecdsa_verify_digest(x->ak_pkey, digest, der, der_size);
        if (r < 0)
                return r;
        if (r == 0) {
                fail(x, reason, "%s signature does not verify with the AK", what);
                return 0;
        }
        pass(x, reason, "ECDSA-SHA256 by the AK over the %zu %s bytes", attest->size, what);
        return 0;
}

/* Part 2 §10.12.8: full unmarshal, magic = TPM_GENERATED_VALUE (§6.2), type (§6.9). The magic and
 * type are what keep a quote from passing as a certify and either from passing as data the AK was
 * asked to sign (CVE-2024-29038). */
static void check_attest_structure(Verification *x, AgentidReason reason, const char *what, const Blob *attest,
                                   uint16_t type, Tpm2Attest *ret, bool *ret_usable) {
        int r = tpm2_attest_parse(attest->data, attest->size, ret);
        if (r == -EPROTONOSUPPORT) {
                /* The parser only gets that far with magic and type read: 6 bytes at least. */
                fail(x, reason, "%s has type 0x%02x%02x, expected 0x%04x", what, attest->data[4], attest->data[5], type);
                return;
        }
        if (r < 0) {
                fail(x, reason, "%s does not unmarshal as a TPMS_ATTEST (truncated, oversized or trailing bytes)",
                     what);
                return;
        }
        if (ret->type != type) {
                fail(x, reason, "%s has type 0x%04x, expected 0x%04x", what, ret->type, type);
                return;
        }
        *ret_usable = true;
        if (ret->magic != TPM2P_GENERATED_VALUE) {
                fail(x, reason, "%s magic 0x%08x is not TPM_GENERATED_VALUE 0xff544347", what, ret->magic);
                return;
        }
        pass(x, reason, "TPMS_ATTEST magic 0xff544347, type 0x%04x, %zu bytes", type, attest->size);
}

static int check_certify_nonce(Verification *x) {
        uint8_t expected[SHA256_DIGEST_SIZE];
        int r;

        if (!x->certify_usable) {
                skip(x, AGENTID_REASON_CERTIFY_NONCE, "certify unusable");
                return 0;
        }
        /* DESIGN §5: qualifyingData = SHA-256(nonce), copied into extraData (Part 3 §18.2). */
        r = sha256(x->nonce, x->nonce_size, expected);
        if (r < 0)
                return r;
        const Tpm2Data *e = &x->certify_a.extra_data;
        if (!bytes_equal(e->buffer, e->size, expected, sizeof(expected))) {
                fail(x, AGENTID_REASON_CERTIFY_NONCE, "certify extraData %s is not SHA-256(nonce) %s",
                     hex(e->buffer, e->size).s, hex(expected, sizeof(expected)).s);
                return 0;
        }
        pass(x, AGENTID_REASON_CERTIFY_NONCE, "extraData = SHA-256(nonce)");
        return 0;
}

static int check_key_attributes(Verification *x) {
        const char *who = x->platform ? "host key" : "agent key";
        char why[160];
        int r;

        r = tpm2_public_parse(x->key_pub.data, x->key_pub.size, &x->key);
        if (r < 0) {
                fail(x, AGENTID_REASON_KEY_ATTRIBUTES, "%s public area does not unmarshal as a TPMT_PUBLIC", who);
                return 0;
        }
        x->key_parsed = true;
        r = tpm2_public_name(&x->key, x->key_pub.data, x->key_pub.size, x->key_name);
        if (r < 0 && r != -EOPNOTSUPP)
                return r;
        x->key_named = r >= 0;

        if (!is_es256_key(&x->key, why, sizeof(why))) {
                fail(x, AGENTID_REASON_KEY_ATTRIBUTES, "%s: %s", who, why);
                return 0;
        }
        r = tpm2_public_to_pkey(&x->key, x->v->p256, &x->key_pkey);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                fail(x, AGENTID_REASON_KEY_ATTRIBUTES, "%s public point is not on P-256", who);
                return 0;
        }
        if (attributes_wrong(x->key.attributes, KEY_ATTRIBUTES_SET, KEY_ATTRIBUTES_CLEAR, why, sizeof(why))) {
                fail(x, AGENTID_REASON_KEY_ATTRIBUTES, "%s attributes 0x%08x: %s", who, x->key.attributes, why);
                return 0;
        }
        pass(x, AGENTID_REASON_KEY_ATTRIBUTES, "%s: ES256 P-256, fixedTPM fixedParent sensitiveDataOrigin sign noDA, "
             "attributes 0x%08x", who, x->key.attributes);
        return 0;
}

static void check_certified_name(Verification *x) {
        if (!x->certify_usable || !x->key_named) {
                skip(x, AGENTID_REASON_CERTIFIED_NAME, !x->certify_usable ? "certify unusable" : "key has no SHA-256 Name");
                return;
        }
        /* tpm-notes §1.2 step 6: the Name commits to the whole public area, attributes included, so the
         * attributes checked above are the ones the TPM certified. */
        const Tpm2Name *n = &x->certify_a.certify.name;
        if (!bytes_equal(n->name, n->size, x->key_name, sizeof(x->key_name))) {
                fail(x, AGENTID_REASON_CERTIFIED_NAME, "certified Name %s, key Name %s", hex(n->name, n->size).s,
                     hex(x->key_name, sizeof(x->key_name)).s);
                return;
        }
        pass(x, AGENTID_REASON_CERTIFIED_NAME, "certified Name %s", hex(x->key_name, sizeof(x->key_name)).s);
}

static int check_qualified_name(Verification *x) {
        uint8_t srk_qn[TPM2P_NAME_SHA256_SIZE], qn[TPM2P_NAME_SHA256_SIZE];
        int r;

        if (!x->certify_usable || !x->key_named) {
                skip(x, AGENTID_REASON_QUALIFIED_NAME, !x->certify_usable ? "certify unusable" : "key has no SHA-256 Name");
                return 0;
        }
        /* Part 1 §16; tpm-notes §1.2 step 7, §8.17: QN(SRK) = 000b || H(40000001 || Name(SRK)),
         * QN(K) = 000b || H(QN(SRK) || Name(K)): K is a child of that SRK in the owner hierarchy. */
        r = tpm2_primary_qualified_name(TPM2P_RH_OWNER, x->srk_name.data, srk_qn);
        if (r < 0)
                return r;
        r = tpm2_qualified_name(srk_qn, x->key_name, qn);
        if (r < 0)
                return r;
        const Tpm2Name *q = &x->certify_a.certify.qualified_name;
        if (!bytes_equal(q->name, q->size, qn, sizeof(qn))) {
                fail(x, AGENTID_REASON_QUALIFIED_NAME, "certified qualifiedName %s is not QN(key) under srk_name %s",
                     hex(q->name, q->size).s, hex(qn, sizeof(qn)).s);
                return 0;
        }
        pass(x, AGENTID_REASON_QUALIFIED_NAME, "qualifiedName = QN(key) under SRK %s",
             hex(x->srk_name.data, x->srk_name.size).s);
        return 0;
}

static bool both_usable(Verification *x, AgentidReason reason) {
        if (x->certify_usable && x->quote_usable)
                return true;
        skip(x, reason, !x->certify_usable ? "certify unusable" : "quote unusable");
        return false;
}

static void check_qualified_signer(Verification *x) {
        if (!both_usable(x, AGENTID_REASON_QUALIFIED_SIGNER))
                return;
        /* Both attestations come from the same AK in the same hierarchy position (Part 2 §10.12.8). */
        const Tpm2Name *a = &x->certify_a.qualified_signer, *b = &x->quote_a.qualified_signer;
        if (!bytes_equal(a->name, a->size, b->name, b->size)) {
                fail(x, AGENTID_REASON_QUALIFIED_SIGNER, "certify signer %s, quote signer %s", hex(a->name, a->size).s,
                     hex(b->name, b->size).s);
                return;
        }
        pass(x, AGENTID_REASON_QUALIFIED_SIGNER, "qualifiedSigner %s in both", hex(a->name, a->size).s);
}

static void check_clock(Verification *x) {
        if (!both_usable(x, AGENTID_REASON_CLOCK))
                return;
        /* tpm-notes §3.5: resetCount/restartCount change with every TPM Reset/Restart; equal values mean
         * the certify and the quote were made in the same boot (offsets may be obfuscated, equality is
         * still meaningful for one AK). */
        const Tpm2Attest *c = &x->certify_a, *q = &x->quote_a;
        if (c->reset_count != q->reset_count || c->restart_count != q->restart_count) {
                fail(x, AGENTID_REASON_CLOCK, "certify resetCount/restartCount %u/%u, quote %u/%u", c->reset_count,
                     c->restart_count, q->reset_count, q->restart_count);
                return;
        }
        pass(x, AGENTID_REASON_CLOCK, "resetCount %u, restartCount %u in both", c->reset_count, c->restart_count);
}

static void check_safe(Verification *x) {
        if (!both_usable(x, AGENTID_REASON_SAFE))
                return;
        /* Part 2 §10.11.1: safe = NO after an unorderly shutdown may have let the clock roll back. */
        bool safe = x->certify_a.safe && x->quote_a.safe;
        if (!safe && x->v->require_safe) {
                fail(x, AGENTID_REASON_SAFE, "clockInfo.safe is 0 (certify %u, quote %u) and safe is required",
                     x->certify_a.safe, x->quote_a.safe);
                return;
        }
        pass(x, AGENTID_REASON_SAFE, "clockInfo.safe %u%s", safe ? 1 : 0,
             safe ? "" : " (accepted: safe not required)");
}

static void check_pcr_selection(Verification *x) {
        if (!x->quote_usable) {
                skip(x, AGENTID_REASON_PCR_SELECTION, "quote unusable");
                return;
        }
        /* tpm-notes §3.3 step 7 (CVE-2024-29039): the selection must be exactly the one asked for, or the
         * digest could cover other PCRs than the values presented. */
        const Tpm2Attest *q = &x->quote_a;
        if (q->quote.n_selections != 1 || q->quote.selections[0].hash != TPM2P_ALG_SHA256 ||
            !bytes_equal(q->quote.selections[0].select, q->quote.selections[0].size_of_select, pcr_select_0_7,
                         sizeof(pcr_select_0_7))) {
                fail(x, AGENTID_REASON_PCR_SELECTION, "quote selection is not exactly SHA-256 PCRs 0-7 (00000001 000b 03 ff0000)");
                return;
        }
        pass(x, AGENTID_REASON_PCR_SELECTION, "SHA-256 PCRs 0-7");
}

static int check_pcr_digest(Verification *x) {
        const void *parts[AGENTID_PCR_COUNT];
        size_t sizes[AGENTID_PCR_COUNT];
        uint8_t digest[SHA256_DIGEST_SIZE];
        int r;

        if (!x->quote_usable) {
                skip(x, AGENTID_REASON_PCR_DIGEST, "quote unusable");
                return 0;
        }
        /* Part 2 §10.12.4: pcrDigest = H_sign(PCR values in selection order, indices ascending). */
        for (size_t i = 0; i < AGENTID_PCR_COUNT; i++) {
                parts[i] = x->pcrs[i];
                sizes[i] = AGENTID_PCR_SIZE;
        }
        r = sha256_parts(parts, sizes, AGENTID_PCR_COUNT, digest);
        if (r < 0)
                return r;
        const Tpm2Digest *d = &x->quote_a.quote.pcr_digest;
        if (!bytes_equal(d->buffer, d->size, digest, sizeof(digest))) {
                fail(x, AGENTID_REASON_PCR_DIGEST, "quoted pcrDigest %s, SHA-256 of \"pcrs\" %s", hex(d->buffer, d->size).s,
                     hex(digest, sizeof(digest)).s);
                return 0;
        }
        pass(x, AGENTID_REASON_PCR_DIGEST, "pcrDigest = SHA-256 of the 8 PCR values");
        return 0;
}

static void check_reference_pcrs(Verification *x) {
        char list[64] = "";
        size_t off = 0, n = 0;

        for (unsigned i = 0; i < AGENTID_PCR_COUNT; i++) {
                if (!x->v->have_reference[i])
                        continue;
                if (memcmp(x->v->reference[i], x->pcrs[i], AGENTID_PCR_SIZE) != 0) {
                        fail(x, AGENTID_REASON_REFERENCE_PCRS, "PCR %u is %s, expected %s", i,
                             hex(x->pcrs[i], AGENTID_PCR_SIZE).s, hex(x->v->reference[i], AGENTID_PCR_SIZE).s);
                        return;
                }
                int k = snprintf(list + off, sizeof(list) - off, "%s%u", n ? ", " : "", i);
                if (k > 0 && (size_t) k < sizeof(list) - off)
                        off += (size_t) k;
                n++;
        }
        if (n == 0)
                pass(x, AGENTID_REASON_REFERENCE_PCRS, "no reference values configured");
        else
                pass(x, AGENTID_REASON_REFERENCE_PCRS, "PCR %s as expected", list);
}

/* ---- the EAT ---------------------------------------------------------------------------------- */

static int check_eat_signature(Verification *x) {
        static const CborLimits limits = {
                .max_size = COSE_PROTECTED_MAX,
                .max_depth = 2,
                .max_items = 32,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_free_ uint8_t *prot = NULL;
        _cleanup_cbor_ cbor_item_t *header = NULL;
        size_t prot_size = 0;
        const uint8_t *kid;
        size_t kid_size;
        int r;

        if (!x->key_pkey || !x->key_named) {
                skip(x, AGENTID_REASON_EAT_SIGNATURE, "no usable agent key");
                return 0;
        }
        /* RFC 9052 §4.2/§4.4 with agentid's profile (docs/formats.md §3): proof of possession of K. */
        r = cose_sign1_check(x->eat.data, x->eat.size, x->key_pkey, &prot, &prot_size, &x->payload, &x->payload_size);
        if (r == -ENOMEM)
                return r;
        if (r == -EKEYREJECTED) {
                fail(x, AGENTID_REASON_EAT_SIGNATURE, "COSE_Sign1 signature does not verify with the certified key");
                return 0;
        }
        if (r < 0) {
                fail(x, AGENTID_REASON_EAT_SIGNATURE, "\"eat\" is not an agentid COSE_Sign1 (ES256, tag 18, deterministic)");
                return 0;
        }

        /* The protected header is exactly {1: -7, 4: kid}: no CWT claims (label 15) in evidence. */
        r = cbor_util_decode(prot, prot_size, &limits, &header, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(header) || cbor_map_size(header) != 2 ||
            cbor_util_get_bytes(cbor_util_map_get_int(header, COSE_HEADER_KID), &kid, &kid_size) < 0) {
                fail(x, AGENTID_REASON_EAT_SIGNATURE, "protected header is not exactly {1: -7, 4: kid}");
                x->payload = mfree(x->payload);
                return 0;
        }
        if (!bytes_equal(kid, kid_size, x->key_name, sizeof(x->key_name))) {
                fail(x, AGENTID_REASON_EAT_SIGNATURE, "kid %s is not the certified key's Name %s", hex(kid, kid_size).s,
                     hex(x->key_name, sizeof(x->key_name)).s);
                x->payload = mfree(x->payload);
                return 0;
        }
        pass(x, AGENTID_REASON_EAT_SIGNATURE, "ES256 by the certified key, kid = its Name, %zu-byte payload",
             x->payload_size);
        return 0;
}

static int check_quote_binding(Verification *x) {
        uint8_t payload_digest[SHA256_DIGEST_SIZE], expected[SHA256_DIGEST_SIZE];
        int r;

        if (!x->quote_usable || !x->key_named || (!x->platform && !x->payload)) {
                skip(x, AGENTID_REASON_QUOTE_BINDING, !x->quote_usable ? "quote unusable" :
                                                      !x->key_named ? "key has no SHA-256 Name" :
                                                                      "EAT not verified");
                return 0;
        }
        /* DESIGN §5: agent evidence binds nonce, key and claims into the quote:
         * extraData = SHA-256(nonce || Name(K) || SHA-256(EAT payload)); platform evidence binds the
         * host key: SHA-256(nonce || Name(host key)). */
        if (x->platform) {
                const void *parts[] = { x->nonce, x->key_name };
                const size_t sizes[] = { x->nonce_size, sizeof(x->key_name) };
                r = sha256_parts(parts, sizes, ELEMENTSOF(parts), expected);
        } else {
                r = sha256(x->payload, x->payload_size, payload_digest);
                if (r < 0)
                        return r;
                const void *parts[] = { x->nonce, x->key_name, payload_digest };
                const size_t sizes[] = { x->nonce_size, sizeof(x->key_name), sizeof(payload_digest) };
                r = sha256_parts(parts, sizes, ELEMENTSOF(parts), expected);
        }
        if (r < 0)
                return r;

        const Tpm2Data *e = &x->quote_a.extra_data;
        if (!bytes_equal(e->buffer, e->size, expected, sizeof(expected))) {
                fail(x, AGENTID_REASON_QUOTE_BINDING, "quote extraData %s, expected %s", hex(e->buffer, e->size).s,
                     hex(expected, sizeof(expected)).s);
                return 0;
        }
        pass(x, AGENTID_REASON_QUOTE_BINDING, x->platform ? "extraData = SHA-256(nonce || Name(host key))" :
                                                             "extraData = SHA-256(nonce || Name(K) || SHA-256(claims))");
        return 0;
}

/* ---- claims ----------------------------------------------------------------------------------- */

static bool text_equal(const char *s, size_t n, const char *literal) {
        return n == strlen(literal) && memcmp(s, literal, n) == 0;
}

/* A text claim of min..max bytes, copied NUL-terminated (the validator checked UTF-8; no NUL inside). */
static int claim_text(Verification *x, const cbor_item_t *item, const char *name, size_t min, size_t max,
                      char **ret) {
        const char *s;
        size_t n;

        if (cbor_util_get_text(item, &s, &n) < 0 || n < min || n > max) {
                fail(x, AGENTID_REASON_CLAIMS, "\"%s\" is not a text of %zu..%zu bytes", name, min, max);
                return -EBADMSG;
        }
        char *c = memdup_cstr(s, n);
        if (!c)
                return -ENOMEM;
        free(*ret);
        *ret = c;
        return 0;
}

static int claim_u32(Verification *x, const cbor_item_t *item, const char *name, uint32_t *ret) {
        uint64_t u;
        /* uids and pids are 32-bit; (uid_t) -1 is "no uid" and never a valid claim. */
        if (cbor_util_get_uint(item, &u) < 0 || u >= UINT32_MAX) {
                fail(x, AGENTID_REASON_CLAIMS, "\"%s\" is not an unsigned integer below 2^32-1", name);
                return -EBADMSG;
        }
        *ret = (uint32_t) u;
        return 0;
}

static int claim_uint(Verification *x, const cbor_item_t *item, const char *name, uint64_t *ret) {
        if (cbor_util_get_uint(item, ret) < 0) {
                fail(x, AGENTID_REASON_CLAIMS, "\"%s\" is not an unsigned integer", name);
                return -EBADMSG;
        }
        return 0;
}

/* agent_uri_is_valid() (the agent URI of DESIGN §2) is attest/task-credential.c's: credentials need it
 * too, and they are decoded outside this library. */

static int claim_sub(Verification *x, const cbor_item_t *item) {
        AgentidVerdict *d = x->d;
        const char *s;
        size_t n, prefix = strlen(AGENT_URI_PREFIX);
        int r;

        r = claim_text(x, item, "sub", 1, prefix + HOST_ID_HEX + 1 + KEY_NAME_MAX, &d->sub);
        if (r < 0)
                return r;
        s = d->sub;
        n = strlen(s);
        if (!agent_uri_is_valid(s, n)) {
                fail(x, AGENTID_REASON_CLAIMS, "\"sub\" is not agentid://<32 hex digits>/<key name>");
                return -EBADMSG;
        }
        d->host_id = memdup_cstr(s + prefix, HOST_ID_HEX);
        d->key_name = strdup(s + prefix + HOST_ID_HEX + 1);
        if (!d->host_id || !d->key_name)
                return -ENOMEM;
        return 0;
}

/* cnf = {1: {1: 2, -1: 1, -2: x, -3: y}} (RFC 8747 §3.1; COSE_Key EC2 P-256, RFC 9053 §7.1.1). */
static int claim_cnf(Verification *x, const cbor_item_t *item) {
        const cbor_item_t *key;
        int64_t kty, crv;
        size_t xn, yn;

        if (!item || !cbor_isa_map(item) || cbor_map_size(item) != 1 ||
            !(key = cbor_util_map_get_int(item, CNF_COSE_KEY)) || !cbor_isa_map(key) || cbor_map_size(key) != 4 ||
            cbor_util_get_int(cbor_util_map_get_int(key, COSE_KEY_KTY), &kty) < 0 || kty != COSE_KTY_EC2 ||
            cbor_util_get_int(cbor_util_map_get_int(key, COSE_KEY_CRV), &crv) < 0 || crv != COSE_CRV_P256 ||
            cbor_util_get_bytes(cbor_util_map_get_int(key, COSE_KEY_X), &x->cnf_x, &xn) < 0 || xn != P256_COORD_SIZE ||
            cbor_util_get_bytes(cbor_util_map_get_int(key, COSE_KEY_Y), &x->cnf_y, &yn) < 0 || yn != P256_COORD_SIZE) {
                fail(x, AGENTID_REASON_CLAIMS, "\"cnf\" is not {1: {1: 2, -1: 1, -2: x(32), -3: y(32)}}");
                return -EBADMSG;
        }
        return 0;
}

static int claim_workload(Verification *x, const cbor_item_t *item) {
        static const char *const keys[] = { "exe_sha256", "exe_path", "unit", "uid", "pid" };
        AgentidClaims *c = &x->d->claims;
        const cbor_item_t *unknown = NULL, *v;
        char name[64];
        int r;

        if (!item || !cbor_isa_map(item)) {
                fail(x, AGENTID_REASON_CLAIMS, "\"workload\" is not a map");
                return -EBADMSG;
        }
        if (cbor_util_map_check_text_keys(item, keys, ELEMENTSOF(keys), &unknown) < 0) {
                describe_key(unknown, name, sizeof(name));
                fail(x, AGENTID_REASON_CLAIMS, "unknown key %s in \"workload\"", name);
                return -EBADMSG;
        }
        if ((v = cbor_util_map_get_text(item, "exe_sha256"))) {
                const uint8_t *p;
                size_t n;
                if (cbor_util_get_bytes(v, &p, &n) < 0 || n != SHA256_DIGEST_SIZE) {
                        fail(x, AGENTID_REASON_CLAIMS, "\"workload\".\"exe_sha256\" is not a byte string of 32 bytes");
                        return -EBADMSG;
                }
                memcpy(c->workload.exe_sha256, p, n);
                c->workload.has_exe_sha256 = true;
        }
        if ((v = cbor_util_map_get_text(item, "exe_path"))) {
                /* DESIGN §5: a tstr, or a bstr when the path is not UTF-8. */
                const uint8_t *p;
                const char *s;
                size_t n;
                bool text = cbor_util_get_text(v, &s, &n) >= 0;
                if (text)
                        p = (const uint8_t *) s;
                else if (cbor_util_get_bytes(v, &p, &n) < 0 || memchr(p, 0, n))
                        n = 0;
                if (n < 1 || n > CLAIM_PATH_MAX) {
                        fail(x, AGENTID_REASON_CLAIMS, "\"workload\".\"exe_path\" is not a path of 1..%u bytes",
                             CLAIM_PATH_MAX);
                        return -EBADMSG;
                }
                x->d->exe_path = malloc(n + 1);
                if (!x->d->exe_path)
                        return -ENOMEM;
                memcpy(x->d->exe_path, p, n);
                x->d->exe_path[n] = 0;
                c->workload.exe_path = x->d->exe_path;
                c->workload.exe_path_size = n;
                c->workload.exe_path_is_text = text;
        }
        if ((v = cbor_util_map_get_text(item, "unit"))) {
                r = claim_text(x, v, "workload.unit", 1, CLAIM_TEXT_MAX, &x->d->unit);
                if (r < 0)
                        return r;
                c->workload.unit = x->d->unit;
        }
        r = claim_u32(x, cbor_util_map_get_text(item, "uid"), "workload.uid", &c->workload.uid);
        if (r < 0)
                return r;
        return claim_u32(x, cbor_util_map_get_text(item, "pid"), "workload.pid", &c->workload.pid);
}

/* The EAT claims set (docs/formats.md §5): integer keys 2, 6, 8, 10, 265 and agentid's text keys,
 * no other key, required ones present, each of its type and size. */
static int claims_parse(Verification *x) {
        static const CborLimits limits = {
                .max_size = AGENTID_EVIDENCE_MAX,
                .max_depth = 3,         /* claims > cnf > COSE_Key, claims > workload */
                .max_items = 64,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        AgentidVerdict *d = x->d;
        AgentidClaims *c = &d->claims;
        bool have_sub = false, have_iat = false, have_cnf = false, have_nonce = false, have_profile = false,
             have_owner = false, have_uid = false, have_created = false, have_workload = false, have_daemon = false;
        CborError error = {};
        char name[64];
        int r;

        r = cbor_util_decode(x->payload, x->payload_size, &limits, &x->claims, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                fail(x, AGENTID_REASON_CLAIMS, "EAT payload is not deterministic CBOR: %s at offset %zu",
                     error.reason ?: "invalid", error.offset);
                return -EBADMSG;
        }
        if (!cbor_isa_map(x->claims)) {
                fail(x, AGENTID_REASON_CLAIMS, "EAT payload is not a map");
                return -EBADMSG;
        }

        size_t n = cbor_map_size(x->claims);
        struct cbor_pair *pairs = cbor_map_handle(x->claims);
        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *k = pairs[i].key, *v = pairs[i].value;
                const char *s;
                size_t l;
                int64_t label;

                /* Keys are unique (the validator refuses duplicates), so each branch runs at most once. */
                if (cbor_util_get_int(k, &label) >= 0) {
                        switch (label) {
                        case CLAIM_SUB:
                                r = claim_sub(x, v);
                                have_sub = true;
                                break;
                        case CLAIM_IAT:
                                r = claim_uint(x, v, "iat", &c->iat);
                                have_iat = true;
                                break;
                        case CLAIM_CNF:
                                r = claim_cnf(x, v);
                                have_cnf = true;
                                break;
                        case CLAIM_EAT_NONCE: {
                                /* RFC 9711 §4.1: one nonce, a bstr; ours is 16..64 bytes. */
                                const uint8_t *p;
                                r = 0;
                                if (cbor_util_get_bytes(v, &p, &l) < 0 || l < AGENTID_NONCE_MIN || l > AGENTID_NONCE_MAX) {
                                        fail(x, AGENTID_REASON_CLAIMS, "eat_nonce is not a byte string of %u..%u bytes",
                                             AGENTID_NONCE_MIN, AGENTID_NONCE_MAX);
                                        r = -EBADMSG;
                                } else {
                                        memcpy(d->nonce, p, l);
                                        c->nonce = d->nonce;
                                        c->nonce_size = l;
                                }
                                have_nonce = true;
                                break;
                        }
                        case CLAIM_EAT_PROFILE:
                                r = claim_text(x, v, "eat_profile", 1, CLAIM_TEXT_MAX, &d->profile);
                                have_profile = true;
                                break;
                        default:
                                describe_key(k, name, sizeof(name));
                                fail(x, AGENTID_REASON_CLAIMS, "unknown claim %s", name);
                                r = -EBADMSG;
                        }
                } else if (cbor_util_get_text(k, &s, &l) >= 0) {
                        if (text_equal(s, l, "owner")) {
                                r = claim_text(x, v, "owner", 1, CLAIM_TEXT_MAX, &d->owner);
                                have_owner = true;
                        } else if (text_equal(s, l, "uid")) {
                                r = claim_u32(x, v, "uid", &c->uid);
                                have_uid = true;
                        } else if (text_equal(s, l, "created")) {
                                r = claim_uint(x, v, "created", &c->created);
                                have_created = true;
                        } else if (text_equal(s, l, "not_after")) {
                                r = claim_uint(x, v, "not_after", &c->not_after);
                                c->has_not_after = true;
                        } else if (text_equal(s, l, "workload")) {
                                r = claim_workload(x, v);
                                have_workload = true;
                        } else if (text_equal(s, l, "task_id"))
                                r = claim_text(x, v, "task_id", 1, CLAIM_TEXT_MAX, &d->task_id);
                        else if (text_equal(s, l, "parent_task_id"))
                                r = claim_text(x, v, "parent_task_id", 1, CLAIM_TEXT_MAX, &d->parent_task_id);
                        else if (text_equal(s, l, "daemon")) {
                                r = claim_text(x, v, "daemon", 1, CLAIM_DAEMON_MAX, &d->daemon);
                                have_daemon = true;
                        } else {
                                describe_key(k, name, sizeof(name));
                                fail(x, AGENTID_REASON_CLAIMS, "unknown claim %s", name);
                                r = -EBADMSG;
                        }
                } else {
                        fail(x, AGENTID_REASON_CLAIMS, "a claim key is neither an integer nor a text");
                        r = -EBADMSG;
                }
                if (r < 0)
                        return r;
        }

        static const char *const names[] = {
                "sub (2)", "iat (6)", "cnf (8)", "eat_nonce (10)", "eat_profile (265)", "owner", "uid", "created",
                "workload", "daemon",
        };
        const bool have[] = {
                have_sub, have_iat, have_cnf, have_nonce, have_profile, have_owner, have_uid, have_created,
                have_workload, have_daemon,
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (!have[i]) {
                        fail(x, AGENTID_REASON_CLAIMS, "claim %s is missing", names[i]);
                        return -EBADMSG;
                }

        c->sub = d->sub;
        c->host_id = d->host_id;
        c->key_name = d->key_name;
        c->profile = d->profile;
        c->owner = d->owner;
        c->task_id = d->task_id;
        c->parent_task_id = d->parent_task_id;
        c->daemon = d->daemon;
        return 0;
}

static int check_claims(Verification *x) {
        int r;

        if (!x->payload) {
                skip(x, AGENTID_REASON_CLAIMS, "EAT not verified");
                return 0;
        }
        r = claims_parse(x);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;       /* recorded */
        x->claims_ok = true;
        pass(x, AGENTID_REASON_CLAIMS, "EAT claims set with %zu claims", cbor_map_size(x->claims));
        return 0;
}

static bool claims_usable(Verification *x, AgentidReason reason) {
        if (x->claims_ok)
                return true;
        skip(x, reason, "claims unusable");
        return false;
}

static void check_profile(Verification *x) {
        if (!claims_usable(x, AGENTID_REASON_PROFILE))
                return;
        if (!streq(x->d->profile, AGENTID_EAT_PROFILE)) {
                fail(x, AGENTID_REASON_PROFILE, "eat_profile is not %s", AGENTID_EAT_PROFILE);
                return;
        }
        pass(x, AGENTID_REASON_PROFILE, "%s", AGENTID_EAT_PROFILE);
}

static void check_nonce(Verification *x) {
        if (!claims_usable(x, AGENTID_REASON_NONCE))
                return;
        const AgentidClaims *c = &x->d->claims;
        if (!bytes_equal(c->nonce, c->nonce_size, x->nonce, x->nonce_size)) {
                fail(x, AGENTID_REASON_NONCE, "eat_nonce is not the nonce given");
                return;
        }
        pass(x, AGENTID_REASON_NONCE, "eat_nonce = the nonce given (%zu bytes)", x->nonce_size);
}

static void check_freshness(Verification *x) {
        if (!claims_usable(x, AGENTID_REASON_FRESHNESS))
                return;
        uint64_t iat = x->d->claims.iat, now = x->now;
        if (iat > now && iat - now > AGENTID_MAX_CLOCK_SKEW) {
                fail(x, AGENTID_REASON_FRESHNESS, "iat %llu is %llu s after now %llu (at most %u s allowed)",
                     (unsigned long long) iat, (unsigned long long) (iat - now), (unsigned long long) now,
                     AGENTID_MAX_CLOCK_SKEW);
                return;
        }
        if (iat < now && now - iat > x->v->max_age) {
                fail(x, AGENTID_REASON_FRESHNESS, "iat %llu is %llu s before now %llu, max age %llu s",
                     (unsigned long long) iat, (unsigned long long) (now - iat), (unsigned long long) now,
                     (unsigned long long) x->v->max_age);
                return;
        }
        pass(x, AGENTID_REASON_FRESHNESS, "iat %llu, now %llu, max age %llu s", (unsigned long long) iat,
             (unsigned long long) now, (unsigned long long) x->v->max_age);
}

static void check_cnf(Verification *x) {
        uint8_t kx[P256_COORD_SIZE], ky[P256_COORD_SIZE];

        if (!claims_usable(x, AGENTID_REASON_CNF))
                return;
        if (!x->key_parsed || tpm2_public_p256_point(&x->key, kx, ky) < 0) {
                skip(x, AGENTID_REASON_CNF, "no P-256 agent key");
                return;
        }
        /* RFC 8747 §3.1: the confirmation key is the key that signed, i.e. the certified one. */
        if (memcmp(kx, x->cnf_x, P256_COORD_SIZE) != 0 || memcmp(ky, x->cnf_y, P256_COORD_SIZE) != 0) {
                fail(x, AGENTID_REASON_CNF, "cnf COSE_Key is not the certified key");
                return;
        }
        pass(x, AGENTID_REASON_CNF, "cnf COSE_Key = the certified key");
}

static int host_id_of(const uint8_t *srk_name, char ret[HOST_ID_HEX + 1]) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        int r = sha256(srk_name, TPM2P_NAME_SHA256_SIZE, digest);
        if (r < 0)
                return r;
        /* DESIGN §2: host-id = hex of the first 16 bytes of SHA-256(SRK Name). */
        hex_encode_to(digest, HOST_ID_BYTES, ret);
        return 0;
}

static int check_host_id(Verification *x) {
        char expected[HOST_ID_HEX + 1];
        int r;

        if (!claims_usable(x, AGENTID_REASON_HOST_ID))
                return 0;
        r = host_id_of(x->srk_name.data, expected);
        if (r < 0)
                return r;
        /* srk_name is bound by the qualified name check; this ties the URI to the same SRK. */
        if (!streq(x->d->host_id, expected)) {
                fail(x, AGENTID_REASON_HOST_ID, "sub names host %s, srk_name gives %s", x->d->host_id, expected);
                return 0;
        }
        pass(x, AGENTID_REASON_HOST_ID, "host-id %s = SHA-256(srk_name)[:16]", expected);
        return 0;
}

static void check_key_expiry(Verification *x) {
        if (!claims_usable(x, AGENTID_REASON_KEY_EXPIRY))
                return;
        const AgentidClaims *c = &x->d->claims;
        if (!c->has_not_after) {
                pass(x, AGENTID_REASON_KEY_EXPIRY, "key has no expiry");
                return;
        }
        if (x->now >= c->not_after) {
                fail(x, AGENTID_REASON_KEY_EXPIRY, "key expired at %llu, now %llu", (unsigned long long) c->not_after,
                     (unsigned long long) x->now);
                return;
        }
        pass(x, AGENTID_REASON_KEY_EXPIRY, "key valid until %llu", (unsigned long long) c->not_after);
}

static void check_workload(Verification *x) {
        if (!claims_usable(x, AGENTID_REASON_WORKLOAD))
                return;
        const AgentidClaims *c = &x->d->claims;
        if (x->v->n_workloads == 0) {
                pass(x, AGENTID_REASON_WORKLOAD, "no allow-list configured");
                return;
        }
        if (!c->workload.has_exe_sha256) {
                fail(x, AGENTID_REASON_WORKLOAD, "workload has no exe_sha256 and an allow-list is configured");
                return;
        }
        for (size_t i = 0; i < x->v->n_workloads; i++)
                if (memcmp(x->v->workloads[i], c->workload.exe_sha256, SHA256_DIGEST_SIZE) == 0) {
                        pass(x, AGENTID_REASON_WORKLOAD, "exe_sha256 %s is allowed",
                             hex(c->workload.exe_sha256, SHA256_DIGEST_SIZE).s);
                        return;
                }
        fail(x, AGENTID_REASON_WORKLOAD, "exe_sha256 %s is not on the allow-list",
             hex(c->workload.exe_sha256, SHA256_DIGEST_SIZE).s);
}

/* ---- driver ----------------------------------------------------------------------------------- */

static void fill_tpm_state(Verification *x, AgentidTpmState *t) {
        t->clock = x->quote_a.clock;
        t->reset_count = x->quote_a.reset_count;
        t->restart_count = x->quote_a.restart_count;
        t->safe = x->quote_a.safe && x->certify_a.safe;
        t->firmware_version = x->quote_a.firmware_version;
        memcpy(t->ak_name, x->ak_name, sizeof(t->ak_name));
        for (size_t i = 0; i < AGENTID_PCR_COUNT; i++)
                memcpy(t->pcrs[i], x->pcrs[i], AGENTID_PCR_SIZE);
}

/* What a valid verdict hands out beyond the claims: the certified key. */
static int fill_outputs(Verification *x) {
        AgentidVerdict *d = x->d;
        int r;

        /* Built by hand: OpenSSL's encoder (i2d_PUBKEY) costs more than a signature check. */
        r = tpm2_public_p256_spki(&x->key, d->spki);
        if (r < 0)
                return -EIO;    /* cannot happen: key_attributes built a P-256 key from it */

        if (x->platform) {
                AgentidPlatform *p = &d->platform_info;
                r = host_id_of(x->srk_name.data, p->host_id);
                if (r < 0)
                        return r;
                memcpy(p->srk_name, x->srk_name.data, sizeof(p->srk_name));
                memcpy(p->host_kid, x->key_name, sizeof(p->host_kid));
                p->host_public_key = d->spki;
                p->host_public_key_size = sizeof(d->spki);
                r = sha256(d->spki, sizeof(d->spki), p->host_spki_sha256);
                if (r < 0)
                        return r;
                fill_tpm_state(x, &p->tpm);
        } else {
                AgentidClaims *c = &d->claims;
                memcpy(c->kid, x->key_name, sizeof(c->kid));
                c->public_key = d->spki;
                c->public_key_size = sizeof(d->spki);
                r = sha256(d->spki, sizeof(d->spki), c->spki_sha256);
                if (r < 0)
                        return r;
                fill_tpm_state(x, &c->tpm);
        }
        return 0;
}

/* "revoked" (only when the verifier holds lists): the certified key, by its TPM Name and the SHA-256
 * of its SubjectPublicKeyInfo, whatever else failed — a revoked key is worth reporting in any case. */
static int check_revoked(Verification *x) {
        uint8_t spki[TPM2P_P256_SPKI_SIZE], spki_sha256[SHA256_DIGEST_SIZE];
        RevokedQuery q = {};
        const char *who = x->platform ? "the certified host key" : "the certified agent key";
        int r;

        if (!verifier_has_revocations(x->v))
                return 0;
        /* key_attributes built the P-256 key only for an ES256 area: then its SPKI is known. */
        if (x->key_pkey) {
                r = tpm2_public_p256_spki(&x->key, spki);
                if (r < 0)
                        return -EIO;    /* cannot happen: key_attributes accepted the area */
                r = sha256(spki, sizeof(spki), spki_sha256);
                if (r < 0)
                        return r;
                q.spki_sha256 = spki_sha256;
                q.spki_what = who;
        }
        if (x->key_named)
                revoked_query_add_kid(&q, x->key_name, x->platform ? "the host key's TPM Name" :
                                                                     "the agent key's TPM Name", -1);
        verdict_check_revoked(x->v, x->d, &q, "the certified key is unknown (evidence malformed)");
        return 0;
}

static int run_checks(Verification *x, const uint8_t *buf, size_t size) {
        int r;

        r = check_format(x, buf, size);
        if (r < 0)
                return r;
        if (!x->format_ok)
                return 0;       /* everything else stays "not checked" */

        r = check_ak_trusted(x);
        if (r < 0)
                return r;
        r = check_ak_attributes(x);
        if (r < 0)
                return r;

        r = check_attest_signature(x, AGENTID_REASON_CERTIFY_SIGNATURE, "certify", &x->certify, &x->certify_sig);
        if (r < 0)
                return r;
        check_attest_structure(x, AGENTID_REASON_CERTIFY_STRUCTURE, "certify", &x->certify, TPM2P_ST_ATTEST_CERTIFY,
                               &x->certify_a, &x->certify_usable);
        r = check_certify_nonce(x);
        if (r < 0)
                return r;
        r = check_key_attributes(x);
        if (r < 0)
                return r;
        check_certified_name(x);
        r = check_qualified_name(x);
        if (r < 0)
                return r;

        r = check_attest_signature(x, AGENTID_REASON_QUOTE_SIGNATURE, "quote", &x->quote, &x->quote_sig);
        if (r < 0)
                return r;
        check_attest_structure(x, AGENTID_REASON_QUOTE_STRUCTURE, "quote", &x->quote, TPM2P_ST_ATTEST_QUOTE,
                               &x->quote_a, &x->quote_usable);
        check_qualified_signer(x);
        check_clock(x);
        check_safe(x);
        check_pcr_selection(x);
        r = check_pcr_digest(x);
        if (r < 0)
                return r;
        check_reference_pcrs(x);

        if (!x->platform) {
                r = check_eat_signature(x);
                if (r < 0)
                        return r;
        }
        r = check_quote_binding(x);
        if (r < 0)
                return r;
        if (x->platform)
                return 0;

        r = check_claims(x);
        if (r < 0)
                return r;
        check_profile(x);
        check_nonce(x);
        check_freshness(x);
        check_cnf(x);
        r = check_host_id(x);
        if (r < 0)
                return r;
        check_key_expiry(x);
        check_workload(x);
        return 0;
}

static int verify(const AgentidVerifier *v, bool platform, const uint8_t *evidence, size_t size,
                  const uint8_t *nonce, size_t nonce_size, AgentidVerdict **ret) {
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_(verification_done) Verification x = {};
        const AgentidReason *order = platform ? platform_checks : agent_checks;
        size_t n_order = platform ? ELEMENTSOF(platform_checks) : ELEMENTSOF(agent_checks);
        int r;

        if (!v || (!evidence && size > 0) || !nonce || !ret)
                return -EINVAL;
        if (nonce_size < AGENTID_NONCE_MIN || nonce_size > AGENTID_NONCE_MAX)
                return -EINVAL;

        d = verdict_new(v, VERDICT_EVIDENCE, order, n_order, "not checked: evidence malformed");
        if (!d)
                return -ENOMEM;
        d->platform = platform;

        x = (Verification) {
                .v = v,
                .d = d,
                .platform = platform,
                .nonce = nonce,
                .nonce_size = nonce_size,
        };
        r = verifier_now(v, &x.now);
        if (r < 0)
                return r;

        r = run_checks(&x, evidence, size);
        if (r < 0)
                return r;
        r = check_revoked(&x);
        if (r < 0)
                return r;

        verdict_conclude(d);

        if (d->valid) {
                r = fill_outputs(&x);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(d);
        return 0;
}

PUBLIC int agentid_verify_evidence(const AgentidVerifier *v, const uint8_t *evidence, size_t size,
                                   const uint8_t *nonce, size_t nonce_size, AgentidVerdict **ret) {
        return verify(v, false, evidence, size, nonce, nonce_size, ret);
}

PUBLIC int agentid_verify_platform(const AgentidVerifier *v, const uint8_t *evidence, size_t size,
                                   const uint8_t *nonce, size_t nonce_size, AgentidVerdict **ret) {
        return verify(v, true, evidence, size, nonce, nonce_size, ret);
}

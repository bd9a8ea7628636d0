/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify: task tokens and signed messages (DESIGN §5; formats in docs/formats.md §3 and §8;
 * the checks and reason codes in docs/verifier.md).
 *
 * The same verdict machinery as evidence (verify-internal.h): a fixed, ordered list of named checks,
 * each failed until it passes, a failure that sticks, valid only if all passed. The bytes are parsed by
 * attest/token.c and attest/cose.c, which validate everything before libcbor sees it; what is decided
 * here is what needs the verifier's context: which key, which kid, which audience, what time.
 *
 * Nothing the payload says is looked at before the signature verified with the caller's key: every
 * check after the signature stays "not checked" when it fails.
 *
 * A token issued by a task key carries its task credential: then the caller's key is the agent key,
 * which must have signed the credential, and the token must verify with the task key the credential
 * names and the AK certified (verify-task.c), and stay within the credential. Such a verdict has its own
 * list of checks (task_token_checks); a token without a credential keeps the list it always had.
 *
 * A token verified against the peer registry (agentid_verify_token_from_peer(), verify-peers.c) takes its
 * key and kid from the registered peer its iss names, and has two checks more: token_peer (the issuer is
 * registered, decided before the signature since it picks the key) and token_peer_hops (every hop goes
 * through a registered peer, decided once the signature verified).
 *
 * With revocation lists (verify-revocation.c) the check "revoked" runs last, on the keys actually
 * involved: the one the signature verified with (its SPKI hash), the expected kid, the header kid, and
 * for tokens every hop's kid and, when the token carries a task credential, the agent key (its SPKI
 * hash and the kid that signed the credential) and the credential's cti (task_end entries).
 */

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <string.h>

#include "attest/cose.h"
#include "attest/token.h"
#include "attest/verify-internal.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/hexutil.h"
#include "common/macro.h"

/* Our public symbols are exported from the shared library; everything else there is hidden. */
#define PUBLIC AGENTID_EXPORT

/* The public limits are those of the parsers. */
_Static_assert(AGENTID_TOKEN_MAX == TOKEN_MAX, "token size limit");
_Static_assert(AGENTID_TOKEN_HOPS_MAX == TOKEN_HOPS_MAX, "hops limit");
_Static_assert(AGENTID_TOKEN_CTI_SIZE == TOKEN_CTI_SIZE, "cti size");
_Static_assert(AGENTID_TPM_NAME_SIZE == TOKEN_KID_SIZE, "kid size");
_Static_assert(AGENTID_MESSAGE_PAYLOAD_MAX == COSE_PAYLOAD_MAX, "message payload limit");

static const AgentidReason token_checks[] = {
        AGENTID_REASON_TOKEN_FORMAT,
        AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,
        AGENTID_REASON_TOKEN_CLAIMS,
        AGENTID_REASON_TOKEN_AUDIENCE,
        AGENTID_REASON_TOKEN_NOT_BEFORE,
        AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
};

/* A token with a "credential" claim (verify.h, AGENTID_REASON_CREDENTIAL_FORMAT): the credential is
 * checked with the agent key before the token with the task key, and the token against the credential
 * once its claims are known. */
static const AgentidReason task_token_checks[] = {
        AGENTID_REASON_TOKEN_FORMAT,
        AGENTID_REASON_CREDENTIAL_FORMAT,
        AGENTID_REASON_CREDENTIAL_SIGNATURE,
        AGENTID_REASON_CREDENTIAL_TASK_KEY,
        AGENTID_REASON_CREDENTIAL_EXPIRY,
        AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,
        AGENTID_REASON_TOKEN_CLAIMS,
        AGENTID_REASON_CREDENTIAL_BINDING,
        AGENTID_REASON_TOKEN_AUDIENCE,
        AGENTID_REASON_TOKEN_NOT_BEFORE,
        AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
};

/* A token verified against the peer registry (verify-peers.c): the registry names the key, so token_peer
 * runs before any signature; the hops are read only after it, so token_peer_hops runs last. */
static const AgentidReason peer_token_checks[] = {
        AGENTID_REASON_TOKEN_FORMAT,
        AGENTID_REASON_TOKEN_PEER,
        AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,
        AGENTID_REASON_TOKEN_CLAIMS,
        AGENTID_REASON_TOKEN_AUDIENCE,
        AGENTID_REASON_TOKEN_NOT_BEFORE,
        AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
        AGENTID_REASON_TOKEN_PEER_HOPS,
};

static const AgentidReason peer_task_token_checks[] = {
        AGENTID_REASON_TOKEN_FORMAT,
        AGENTID_REASON_TOKEN_PEER,
        AGENTID_REASON_CREDENTIAL_FORMAT,
        AGENTID_REASON_CREDENTIAL_SIGNATURE,
        AGENTID_REASON_CREDENTIAL_TASK_KEY,
        AGENTID_REASON_CREDENTIAL_EXPIRY,
        AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,
        AGENTID_REASON_TOKEN_CLAIMS,
        AGENTID_REASON_CREDENTIAL_BINDING,
        AGENTID_REASON_TOKEN_AUDIENCE,
        AGENTID_REASON_TOKEN_NOT_BEFORE,
        AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
        AGENTID_REASON_TOKEN_PEER_HOPS,
};

static const AgentidReason message_checks[] = {
        AGENTID_REASON_MESSAGE_FORMAT,
        AGENTID_REASON_MESSAGE_SIGNATURE,
        AGENTID_REASON_MESSAGE_KID,
        AGENTID_REASON_MESSAGE_AUDIENCE,
        AGENTID_REASON_MESSAGE_FRESHNESS,
};

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

void verdict_pass(AgentidVerdict *d, AgentidReason reason, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        verdict_record_v(d, reason, true, fmt, ap);
        va_end(ap);
}

void verdict_fail(AgentidVerdict *d, AgentidReason reason, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        verdict_record_v(d, reason, false, fmt, ap);
        va_end(ap);
}

void verdict_skip(AgentidVerdict *d, AgentidReason reason, const char *why) {
        verdict_fail(d, reason, "not checked: %s", why);
}

/* Shared by the verdict details of tokens, messages, revocation and rotation (verify-internal.h). */
DetailHex detail_hex(const uint8_t *p, size_t n) {
        DetailHex h;
        hex_encode_to(p, MIN(n, (size_t) AGENTID_TPM_NAME_SIZE), h.s);
        return h;
}

/* The caller's key: a DER SubjectPublicKeyInfo of an EC P-256 key, nothing after it. Its SHA-256 is
 * taken over the canonical re-encoding (uncompressed point), the form revocation entries name
 * (DESIGN §5), whatever form the caller had. Return: 0; -EINVAL; -ENOMEM. */
int spki_key_load(const uint8_t *der, size_t size, EVP_PKEY **ret, uint8_t ret_spki_sha256[SHA256_DIGEST_SIZE]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL, *checked = NULL;
        _cleanup_free_ uint8_t *canonical = NULL;
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];
        const unsigned char *p = der;
        size_t canonical_size = 0;
        int r;

        if (size == 0 || size > LONG_MAX)
                return -EINVAL;
        /* The form agentidd hands out (PublicKey, peer registries) is already canonical: take the
         * point from it. OpenSSL 3's d2i_PUBKEY() plus the re-encoding cost about four times the
         * ECDSA verification a token needs (docs/performance.md). p256_pkey_from_xy() checks the
         * point is on the curve. */
        if (size == P256_SPKI_DER_SIZE) {
                _cleanup_free_ uint8_t *expected = NULL;
                size_t expected_size = 0;
                const uint8_t *px = der + P256_SPKI_DER_SIZE - 2 * P256_COORD_SIZE, *py = px + P256_COORD_SIZE;

                r = p256_spki_from_xy(px, py, &expected, &expected_size);
                if (r < 0)
                        return r;
                if (memcmp(expected, der, size) == 0) {
                        r = p256_pkey_from_xy(px, py, &pkey);
                        if (r < 0)
                                return r == -ENOMEM ? r : -EINVAL;
                        r = sha256(der, size, ret_spki_sha256);
                        if (r < 0)
                                return r;
                        *ret = TAKE_PTR(pkey);
                        return 0;
                }
        }
        pkey = d2i_PUBKEY(NULL, &p, (long) size);
        if (!pkey || (size_t) (p - der) != size) {
                ERR_clear_error();
                return -EINVAL;
        }
        /* ES256 (RFC 9053 §2.1): a P-256 point, checked (d2i_PUBKEY() takes the point at infinity,
         * with which any signature verifies). Revocation entries hash the uncompressed form: a key
         * given compressed must hash the same, so the hash is over the canonical re-encoding. */
        r = p256_pkey_canonical(pkey, &checked, x, y);
        if (r < 0)
                return r;
        r = p256_spki_from_xy(x, y, &canonical, &canonical_size);
        if (r < 0)
                return r;
        r = sha256(canonical, canonical_size, ret_spki_sha256);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(checked);
        return 0;
}

static bool kid_is_tpm_name(const uint8_t *kid, size_t n) {
        return n == AGENTID_TPM_NAME_SIZE && kid[0] == 0x00 && kid[1] == 0x0b;
}

/* kid against the expected TPM Name. The kid is only a label: it is the key that vouches, so this
 * check runs after the signature, and binds the label to the key the caller trusts (for a key
 * certified in evidence, its Name). */
static void check_kid(AgentidVerdict *d, AgentidReason reason, bool signature_ok, const uint8_t *kid,
                      const uint8_t *expected_kid) {
        if (!signature_ok) {
                verdict_skip(d, reason, "signature not verified");
                return;
        }
        if (!expected_kid) {
                verdict_pass(d, reason, "kid %s (no kid expected)", detail_hex(kid, AGENTID_TPM_NAME_SIZE).s);
                return;
        }
        if (memcmp(kid, expected_kid, AGENTID_TPM_NAME_SIZE) != 0) {
                verdict_fail(d, reason, "kid %s, expected %s", detail_hex(kid, AGENTID_TPM_NAME_SIZE).s,
                             detail_hex(expected_kid, AGENTID_TPM_NAME_SIZE).s);
                return;
        }
        verdict_pass(d, reason, "kid %s as expected", detail_hex(kid, AGENTID_TPM_NAME_SIZE).s);
}

/* ------------------------------------------------------------------------------------------------ */
/* Tokens */

/* What a valid token verdict hands out; the strings point into verified (and task.credential). */
typedef struct TokenOutput {
        AgentidToken token;
        AgentidTokenHop hops[TOKEN_HOPS_MAX];
        TokenVerified *verified;
        TaskKeyFound task;              /* a task token's credential and task key */
} TokenOutput;

static void token_output_free(void *p) {
        TokenOutput *o = p;
        if (!o)
                return;
        token_verified_free(o->verified);
        task_key_found_done(&o->task);
        free(o);
}

static bool uri_is_valid(const char *s) {
        return agent_uri_is_valid(s, strlen(s));
}

static void check_token_claims(AgentidVerdict *d, const TokenVerified *t) {
        const TokenClaims *c = &t->claims;

        /* token.c checked the key set, the types and sizes, iss = sub, nbf <= exp and iat <= exp;
         * what it does not know is the agent URI form (DESIGN §2). */
        if (!uri_is_valid(c->iss)) {
                verdict_fail(d, AGENTID_REASON_TOKEN_CLAIMS,
                             "iss \"%.120s\" is not agentid://<32 hex digits>/<key name>",
                             c->iss);
                return;
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_CLAIMS,
                     "iss = sub = %s, task %.120s, owner %.120s%s%s", c->iss, c->task_id,
                     c->owner, c->scope ? ", scope " : "", c->scope ? c->scope : "");
}

static void check_token_audience(AgentidVerdict *d, const TokenClaims *c, const char *audience) {
        /* RFC 8392 §3.1.3 / RFC 7519 §4.1.3: a recipient that does not identify itself with aud must
         * reject the token. aud is a single string here (DESIGN §5), compared exactly. */
        if (!streq(c->aud, audience)) {
                verdict_fail(d, AGENTID_REASON_TOKEN_AUDIENCE, "aud \"%.120s\" is not \"%.120s\"", c->aud, audience);
                return;
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_AUDIENCE, "aud \"%.120s\"", c->aud);
}

static void check_token_not_before(AgentidVerdict *d, const TokenClaims *c, uint64_t now) {
        /* RFC 8392 §3.1.5, with the clock skew evidence allows for iat. */
        if (c->nbf > now && c->nbf - now > AGENTID_MAX_CLOCK_SKEW) {
                verdict_fail(d, AGENTID_REASON_TOKEN_NOT_BEFORE,
                             "nbf %llu is %llu s after now %llu (at most %u s allowed)",
                             (unsigned long long) c->nbf, (unsigned long long) (c->nbf - now), (unsigned long long) now,
                             AGENTID_MAX_CLOCK_SKEW);
                return;
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_NOT_BEFORE, "nbf %llu, now %llu", (unsigned long long) c->nbf,
                     (unsigned long long) now);
}

static void check_token_expiry(AgentidVerdict *d, const TokenClaims *c, uint64_t now) {
        /* RFC 8392 §3.1.4: not accepted on or after exp. Short-lived credentials get no grace. */
        if (now >= c->exp) {
                verdict_fail(d, AGENTID_REASON_TOKEN_EXPIRY, "expired at %llu, now %llu", (unsigned long long) c->exp,
                             (unsigned long long) now);
                return;
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_EXPIRY, "valid until %llu, now %llu", (unsigned long long) c->exp,
                     (unsigned long long) now);
}

static void check_token_hops(AgentidVerdict *d, const TokenClaims *c) {
        if (c->n_hops == 0) {
                verdict_pass(d, AGENTID_REASON_TOKEN_HOPS, "root token (no hops)");
                return;
        }
        /* token.c checked count (1..8) and shape ([tstr, bstr 16, bstr 34]). Each hop names a parent
         * token by its issuer, cti and key (DESIGN §5); a cti twice would be a chain that loops. */
        for (size_t i = 0; i < c->n_hops; i++) {
                const TokenHop *h = &c->hops[i];

                if (!uri_is_valid(h->iss)) {
                        verdict_fail(d, AGENTID_REASON_TOKEN_HOPS,
                                     "hop %zu: iss \"%.120s\" is not an agent URI", i, h->iss);
                        return;
                }
                if (memcmp(h->cti, c->cti, TOKEN_CTI_SIZE) == 0) {
                        verdict_fail(d, AGENTID_REASON_TOKEN_HOPS, "hop %zu has the token's own cti", i);
                        return;
                }
                for (size_t j = 0; j < i; j++)
                        if (memcmp(h->cti, c->hops[j].cti, TOKEN_CTI_SIZE) == 0) {
                                verdict_fail(d, AGENTID_REASON_TOKEN_HOPS, "hops %zu and %zu have the same cti", j, i);
                                return;
                        }
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_HOPS,
                     "%zu hop%s, delegated by %.120s", c->n_hops, c->n_hops == 1 ? "" : "s",
                     c->hops[c->n_hops - 1].iss);
}

/* "revoked" for a token (only with lists): the key verified with, the expected and the header kid, the
 * hops; for a task token (task not NULL) the task key (SPKI hash, and its Name, the header kid), the
 * agent key (SPKI hash, the expected kid and the kid that signed the credential) and the credential's
 * cti (task_end entries). */
static void check_token_revoked(const AgentidVerifier *v, AgentidVerdict *d, bool signature_ok,
                                const uint8_t spki_sha256[SHA256_DIGEST_SIZE], const uint8_t *expected_kid,
                                const uint8_t kid[TOKEN_KID_SIZE], const TokenVerified *t, const TaskKeyFound *task) {
        RevokedQuery q = {
                .spki_sha256 = spki_sha256,
                .spki_what = "the key the token verified with",
        };

        if (!verifier_has_revocations(v))
                return;
        if (!signature_ok) {
                verdict_check_revoked(v, d, NULL, "signature not verified");
                return;
        }
        if (task) {
                /* The token verified with the task key; the agent key vouched for it. */
                q.spki_sha256 = task->spki_sha256;
                q.spki_what = "the task key the token verified with";
                q.spki_sha256_2 = spki_sha256;
                q.spki_what_2 = "the agent key";
                revoked_query_add_kid(&q, expected_kid, "the expected kid", -1);
                revoked_query_add_kid(&q, task->credential->kid, "the kid that signed the task credential", -1);
                revoked_query_add_kid(&q, kid, "the token's kid (the task key)", -1);
                q.cti = task->credential->claims.cti;
        } else {
                revoked_query_add_kid(&q, expected_kid, "the expected kid", -1);
                revoked_query_add_kid(&q, kid, "the token's kid", -1);
        }
        if (t)
                for (size_t i = 0; i < t->claims.n_hops; i++)
                        revoked_query_add_kid(&q, t->claims.hops[i].kid, "the kid of hop", (int) i);
        verdict_check_revoked(v, d, &q, NULL);
}

/* The outputs of a valid verdict, taking over *t and, for a task token, *task (has_credential). */
static int token_output(AgentidVerdict *d, TokenVerified **t, const uint8_t spki_sha256[SHA256_DIGEST_SIZE],
                        TaskKeyFound *task, bool has_credential) {
        TokenOutput *o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;

        const TokenClaims *c = &(*t)->claims;
        AgentidToken *k = &o->token;
        *k = (AgentidToken) {
                .iss = c->iss,
                .aud = c->aud,
                .exp = c->exp,
                .nbf = c->nbf,
                .iat = c->iat,
                .scope = c->scope,
                .task_id = c->task_id,
                .parent_task_id = c->parent_task_id,
                .owner = c->owner,
                .n_hops = c->n_hops,
                .hops = c->n_hops > 0 ? o->hops : NULL,
                .has_credential = c->credential != NULL,
                .credential = c->credential,
                .credential_size = c->credential_size,
        };
        memcpy(k->cti, c->cti, sizeof(k->cti));
        memcpy(k->kid, (*t)->kid, sizeof(k->kid));
        memcpy(k->spki_sha256, spki_sha256, sizeof(k->spki_sha256));
        for (size_t i = 0; i < c->n_hops; i++) {
                o->hops[i].iss = c->hops[i].iss;
                memcpy(o->hops[i].cti, c->hops[i].cti, sizeof(o->hops[i].cti));
                memcpy(o->hops[i].kid, c->hops[i].kid, sizeof(o->hops[i].kid));
        }
        if (has_credential) {
                const TaskCredentialClaims *cc = &task->credential->claims;

                /* The key verified with is the task key; the caller's key is the agent key. */
                memcpy(k->spki_sha256, task->spki_sha256, sizeof(k->spki_sha256));
                memcpy(k->agent_spki_sha256, spki_sha256, sizeof(k->agent_spki_sha256));
                memcpy(k->credential_kid, task->credential->kid, sizeof(k->credential_kid));
                memcpy(k->credential_cti, cc->cti, sizeof(k->credential_cti));
                k->credential_iat = cc->iat;
                k->credential_exp = cc->exp;
                k->credential_scope = cc->scope;
                k->credential_audiences = cc->audiences;
                k->n_credential_audiences = cc->n_audiences;
                k->task_public_key = task->spki;
                k->task_public_key_size = task->spki_size;
                o->task = *task;
                *task = (TaskKeyFound) {};
        }
        o->verified = TAKE_PTR(*t);
        verdict_set_extra(d, o, token_output_free);
        return 0;
}

PUBLIC int agentid_verify_token(const AgentidVerifier *v, const uint8_t *token, size_t size,
                                const uint8_t *spki_der, size_t spki_size, const uint8_t *expected_kid,
                                const char *audience, AgentidVerdict **ret) {
        if (!spki_der)
                return -EINVAL;
        return verify_token(v, token, size, spki_der, spki_size, expected_kid, audience, NULL, ret);
}

int verify_token(const AgentidVerifier *v, const uint8_t *token, size_t size, const uint8_t *spki_der,
                 size_t spki_size, const uint8_t *expected_kid, const char *audience, const TokenPeer *peer,
                 AgentidVerdict **ret) {
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(token_verified_freep) TokenVerified *t = NULL;
        _cleanup_(task_key_found_done) TaskKeyFound task = {};
        _cleanup_free_ uint8_t *credential = NULL;
        uint8_t kid[TOKEN_KID_SIZE] = {}, spki_sha256[SHA256_DIGEST_SIZE] = {};
        size_t credential_size = 0;
        const char *why = NULL;
        bool signature_ok = false;
        int has_credential = 0, peek;
        uint64_t now;
        int r;

        /* No key only after a registry lookup that found no peer: the verdict then says so (token_peer). */
        if (!v || (!token && size > 0) || (!spki_der && !peer) || !audience || !*audience || !ret)
                return -EINVAL;
        if (peer && peer->key) {
                /* A registered peer's key, decoded when the registry was added. */
                if (EVP_PKEY_up_ref(peer->key) != 1)
                        return -EIO;
                pkey = peer->key;
                memcpy(spki_sha256, peer->peer->spki_sha256, sizeof(spki_sha256));
        } else if (spki_der) {
                r = spki_key_load(spki_der, spki_size, &pkey, spki_sha256);
                if (r < 0)
                        return r;
        }
        r = verifier_now(v, &now);
        if (r < 0)
                return r;

        /* token_format: the envelope, exactly as token_verify() checks it first (token.h). Then, before
         * any signature, whether the token carries a task credential: that decides which key it must
         * verify with, and so which checks run (verify-task.c says why this is safe). */
        peek = token_peek_kid(token, size, kid, &why);
        if (peek == -ENOMEM)
                return peek;
        if (peek == 0) {
                has_credential = token_peek_credential(token, size, &credential, &credential_size);
                if (has_credential < 0)
                        return has_credential;
        }

        if (peer)
                d = has_credential ?
                        verdict_new(v, VERDICT_TOKEN, peer_task_token_checks, ELEMENTSOF(peer_task_token_checks),
                                    "not checked: token malformed") :
                        verdict_new(v, VERDICT_TOKEN, peer_token_checks, ELEMENTSOF(peer_token_checks),
                                    "not checked: token malformed");
        else
                d = has_credential ?
                        verdict_new(v, VERDICT_TOKEN, task_token_checks, ELEMENTSOF(task_token_checks),
                                    "not checked: token malformed") :
                        verdict_new(v, VERDICT_TOKEN, token_checks, ELEMENTSOF(token_checks),
                                    "not checked: token malformed");
        if (!d)
                return -ENOMEM;
        if (peer)
                check_token_peer(d, peer, peek == 0);

        if (peek == -E2BIG)
                verdict_fail(d, AGENTID_REASON_TOKEN_FORMAT, "%zu bytes, more than %u", size, TOKEN_MAX);
        else if (peek < 0)
                verdict_fail(d, AGENTID_REASON_TOKEN_FORMAT, "not an agentid token: %s", why ?: "malformed");
        else {
                EVP_PKEY *signer = pkey;

                verdict_pass(d, AGENTID_REASON_TOKEN_FORMAT,
                             "COSE_Sign1 (tag 18, ES256, deterministic), protected header {1: -7, 4: kid}, "
                             "%zu bytes", size);

                /* A task token: the given key must have signed the credential, and the credential names
                 * the key the token is signed with. */
                if (has_credential && pkey) {
                        r = verify_credential(v, d, credential, credential_size, pkey, expected_kid, now, &task);
                        if (r < 0)
                                return r;
                        signer = task.pkey;
                } else if (has_credential) {
                        verdict_skip(d, AGENTID_REASON_CREDENTIAL_FORMAT,
                                     "the issuer is not a registered peer: no agent key");
                        verdict_skip(d, AGENTID_REASON_CREDENTIAL_SIGNATURE,
                                     "the issuer is not a registered peer: no agent key");
                        verdict_skip(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                                     "the issuer is not a registered peer: no agent key");
                        verdict_skip(d, AGENTID_REASON_CREDENTIAL_EXPIRY,
                                     "the issuer is not a registered peer: no agent key");
                }

                /* token_signature, then token_claims: after a good envelope, -EBADMSG can only be the
                 * claims, which token_verify() parses after the signature verified. */
                if (!pkey)
                        verdict_skip(d, AGENTID_REASON_TOKEN_SIGNATURE, "the issuer is not a registered peer: no key");
                else if (!signer)
                        verdict_skip(d, AGENTID_REASON_TOKEN_SIGNATURE,
                                     "the task credential did not verify: no task key");
                else {
                        r = token_verify(token, size, signer, &t, &why);
                        if (r == -EKEYREJECTED)
                                verdict_fail(d, AGENTID_REASON_TOKEN_SIGNATURE,
                                             "does not verify with the %s (token kid %s)",
                                             has_credential ? "task key the credential names" :
                                             peer ? "registered peer's key" : "given key",
                                             detail_hex(kid, sizeof(kid)).s);
                        else if (r == 0 || r == -EBADMSG) {
                                signature_ok = true;
                                verdict_pass(d, AGENTID_REASON_TOKEN_SIGNATURE,
                                             "ES256 by the %s (SHA-256 of its SPKI %s)",
                                             has_credential ? "task key (the credential's cnf)" :
                                             peer ? "registered peer's key" : "given key",
                                             detail_hex(has_credential ? task.spki_sha256 : spki_sha256,
                                             AGENTID_SHA256_SIZE).s);
                                if (r < 0)
                                        verdict_fail(d, AGENTID_REASON_TOKEN_CLAIMS, "%s", why ?: "claims malformed");
                        } else
                                return r;
                }
        }

        /* A task token's kid is the task key's TPM Name, the one the AK certified. */
        check_kid(d, AGENTID_REASON_TOKEN_KID, signature_ok, kid, has_credential ? task.kid : expected_kid);

        if (!t) {
                const char *because = signature_ok ? "claims malformed" : "signature not verified";
                verdict_skip(d, AGENTID_REASON_TOKEN_CLAIMS, because);
                verdict_skip(d, AGENTID_REASON_CREDENTIAL_BINDING, because);
                verdict_skip(d, AGENTID_REASON_TOKEN_AUDIENCE, because);
                verdict_skip(d, AGENTID_REASON_TOKEN_NOT_BEFORE, because);
                verdict_skip(d, AGENTID_REASON_TOKEN_EXPIRY, because);
                verdict_skip(d, AGENTID_REASON_TOKEN_HOPS, because);
                if (peer)
                        check_token_peer_hops(d, peer, NULL, because);
        } else {
                check_token_claims(d, t);
                /* Both read the same claims map, so this cannot happen; if it did, a credential would be
                 * accepted unchecked. */
                if (!has_credential && t->claims.credential)
                        verdict_fail(d, AGENTID_REASON_TOKEN_CLAIMS, "carries a task credential that was not followed");
                if (has_credential)
                        check_credential_binding(d, &task.credential->claims, &t->claims);
                check_token_audience(d, &t->claims, audience);
                check_token_not_before(d, &t->claims, now);
                check_token_expiry(d, &t->claims, now);
                check_token_hops(d, &t->claims);
                if (peer)
                        check_token_peer_hops(d, peer, t, NULL);
        }

        check_token_revoked(v, d, signature_ok, spki_sha256, expected_kid, kid, t, has_credential ? &task : NULL);

        verdict_conclude(d);
        if (agentid_verdict_is_valid(d)) {
                r = token_output(d, &t, spki_sha256, &task, has_credential);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(d);
        return 0;
}

PUBLIC const AgentidToken *agentid_verdict_get_token(const AgentidVerdict *d) {
        TokenOutput *o = verdict_get_extra(d, VERDICT_TOKEN);
        return o ? &o->token : NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Signed messages */

/* What a valid message verdict hands out; the payload points into parsed. */
typedef struct MessageOutput {
        AgentidMessage message;
        CoseSign1Parsed parsed;
        char *aud, *task_id, *parent_task_id;
} MessageOutput;

static void message_output_free(void *p) {
        MessageOutput *o = p;
        if (!o)
                return;
        cose_sign1_parsed_done(&o->parsed);
        free(o->aud);
        free(o->task_id);
        free(o->parent_task_id);
        free(o);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(MessageOutput *, message_output_free);

/* An optional text claim of label 15, copied NUL-terminated; cose.c checked its type and size. */
static int label15_text(const cbor_item_t *item, char **ret) {
        if (!item)
                return 0;
        return cbor_util_get_text_dup(item, ret);
}

static void check_message_audience(AgentidVerdict *d, const MessageOutput *o, const char *audience) {
        if (!audience) {
                verdict_pass(d, AGENTID_REASON_MESSAGE_AUDIENCE,
                             "no audience required (aud %s%.120s%s)", o->aud ? "\"" : "",
                             o->aud ?: "absent", o->aud ? "\"" : "");
                return;
        }
        if (!o->aud) {
                verdict_fail(d, AGENTID_REASON_MESSAGE_AUDIENCE, "no aud, \"%.120s\" required", audience);
                return;
        }
        if (!streq(o->aud, audience)) {
                verdict_fail(d, AGENTID_REASON_MESSAGE_AUDIENCE, "aud \"%.120s\" is not \"%.120s\"", o->aud, audience);
                return;
        }
        verdict_pass(d, AGENTID_REASON_MESSAGE_AUDIENCE, "aud \"%.120s\"", o->aud);
}

static void check_message_freshness(AgentidVerdict *d, uint64_t iat, uint64_t now, uint64_t max_age) {
        /* The rule evidence applies to its iat: not older than max-age, not further in the future than
         * the clock skew. */
        if (iat > now && iat - now > AGENTID_MAX_CLOCK_SKEW) {
                verdict_fail(d, AGENTID_REASON_MESSAGE_FRESHNESS,
                             "iat %llu is %llu s after now %llu (at most %u s allowed)",
                             (unsigned long long) iat, (unsigned long long) (iat - now), (unsigned long long) now,
                             AGENTID_MAX_CLOCK_SKEW);
                return;
        }
        if (iat < now && now - iat > max_age) {
                verdict_fail(d, AGENTID_REASON_MESSAGE_FRESHNESS, "iat %llu is %llu s before now %llu, max age %llu s",
                             (unsigned long long) iat, (unsigned long long) (now - iat), (unsigned long long) now,
                             (unsigned long long) max_age);
                return;
        }
        verdict_pass(d, AGENTID_REASON_MESSAGE_FRESHNESS,
                     "iat %llu, now %llu, max age %llu s", (unsigned long long) iat,
                     (unsigned long long) now, (unsigned long long) max_age);
}

PUBLIC int agentid_verify_message(const AgentidVerifier *v, const uint8_t *msg, size_t size,
                                  const uint8_t *spki_der, size_t spki_size, const uint8_t *expected_kid,
                                  const char *audience, AgentidVerdict **ret) {
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(message_output_freep) MessageOutput *o = NULL;
        uint8_t spki_sha256[SHA256_DIGEST_SIZE];
        const char *why = NULL;
        bool format_ok = false, signature_ok = false;
        uint64_t now, iat = 0;
        int r;

        if (!v || (!msg && size > 0) || !spki_der || (audience && !*audience) || !ret)
                return -EINVAL;
        r = spki_key_load(spki_der, spki_size, &pkey, spki_sha256);
        if (r < 0)
                return r;
        r = verifier_now(v, &now);
        if (r < 0)
                return r;

        d = verdict_new(v, VERDICT_MESSAGE, message_checks, ELEMENTSOF(message_checks), "not checked: message malformed");
        o = calloc(1, sizeof(*o));
        if (!d || !o)
                return -ENOMEM;

        /* message_format: the COSE_Sign1 profile (formats.md §3) with what SignMessage always writes: a
         * 34-byte TPM Name as kid and the label 15 claims. */
        r = cose_sign1_parse(msg, size, &o->parsed, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                verdict_fail(d, AGENTID_REASON_MESSAGE_FORMAT, "not an agentid COSE_Sign1: %s", why ?: "malformed");
        else if (!kid_is_tpm_name(o->parsed.kid, o->parsed.kid_size))
                verdict_fail(d, AGENTID_REASON_MESSAGE_FORMAT, "kid is not a 34-byte SHA-256 TPM Name (00 0b ...)");
        else if (!o->parsed.claims)
                verdict_fail(d, AGENTID_REASON_MESSAGE_FORMAT, "no CWT claims (label 15): not a signed message");
        else {
                format_ok = true;
                verdict_pass(d, AGENTID_REASON_MESSAGE_FORMAT,
                             "COSE_Sign1 (tag 18, ES256, deterministic) with label 15 claims, %zu-byte payload",
                             o->parsed.payload_size);
        }

        if (format_ok) {
                r = cose_sign1_verify_parsed(&o->parsed, pkey);
                if (r == -EKEYREJECTED || r == -EBADMSG)
                        verdict_fail(d, AGENTID_REASON_MESSAGE_SIGNATURE,
                                     "does not verify with the given key (message kid %s)",
                                     detail_hex(o->parsed.kid, o->parsed.kid_size).s);
                else if (r < 0)
                        return r;
                else {
                        signature_ok = true;
                        verdict_pass(d, AGENTID_REASON_MESSAGE_SIGNATURE,
                                     "ES256 by the given key (SHA-256 of its SPKI %s)",
                                     detail_hex(spki_sha256, AGENTID_SHA256_SIZE).s);
                }
        }

        check_kid(d, AGENTID_REASON_MESSAGE_KID, signature_ok, o->parsed.kid, expected_kid);

        if (!signature_ok) {
                verdict_skip(d, AGENTID_REASON_MESSAGE_AUDIENCE,
                             format_ok ? "signature not verified" : "message malformed");
                verdict_skip(d, AGENTID_REASON_MESSAGE_FRESHNESS,
                             format_ok ? "signature not verified" : "message malformed");
        } else {
                const cbor_item_t *claims = o->parsed.claims;

                /* cose.c checked label 15: iat a uint, the others texts of 1..256 bytes, nothing else. */
                if (cbor_util_get_uint(cbor_util_map_get_int(claims, CWT_CLAIM_IAT), &iat) < 0)
                        return -EIO;            /* cannot happen: cose.c requires it */
                r = label15_text(cbor_util_map_get_int(claims, CWT_CLAIM_AUD), &o->aud);
                if (r >= 0)
                        r = label15_text(cbor_util_map_get_text(claims, "task_id"), &o->task_id);
                if (r >= 0)
                        r = label15_text(cbor_util_map_get_text(claims, "parent_task_id"), &o->parent_task_id);
                if (r < 0)
                        return r;

                check_message_audience(d, o, audience);
                check_message_freshness(d, iat, now, verifier_max_age(v));
        }

        /* "revoked" (only with lists): the key verified with, the expected kid and the header kid. */
        if (!signature_ok)
                verdict_check_revoked(v, d, NULL, format_ok ? "signature not verified" : "message malformed");
        else {
                RevokedQuery q = {
                        .spki_sha256 = spki_sha256,
                        .spki_what = "the key the message verified with",
                };
                revoked_query_add_kid(&q, expected_kid, "the expected kid", -1);
                revoked_query_add_kid(&q, o->parsed.kid, "the message's kid", -1);
                verdict_check_revoked(v, d, &q, NULL);
        }

        verdict_conclude(d);
        if (agentid_verdict_is_valid(d)) {
                AgentidMessage *m = &o->message;
                *m = (AgentidMessage) {
                        .iat = iat,
                        .aud = o->aud,
                        .task_id = o->task_id,
                        .parent_task_id = o->parent_task_id,
                        .payload = o->parsed.payload,
                        .payload_size = o->parsed.payload_size,
                };
                memcpy(m->kid, o->parsed.kid, sizeof(m->kid));
                memcpy(m->spki_sha256, spki_sha256, sizeof(m->spki_sha256));
                verdict_set_extra(d, TAKE_PTR(o), message_output_free);
        }

        *ret = TAKE_PTR(d);
        return 0;
}

PUBLIC const AgentidMessage *agentid_verdict_get_message(const AgentidVerdict *d) {
        MessageOutput *o = verdict_get_extra(d, VERDICT_MESSAGE);
        return o ? &o->message : NULL;
}

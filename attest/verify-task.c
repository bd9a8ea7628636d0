/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify: the task credential a token issued by a task key carries (DESIGN §5 "Task
 * credential"; format in docs/formats.md §12; the checks in docs/verifier.md).
 *
 * The chain a verifier follows: the token is signed by a task key T; its "credential" claim is a CWT
 * signed by the agent key K the caller trusts (pinned, or certified by agent evidence); the credential
 * names T (cnf) and carries T's TPM public area with a TPM2_Certify of it by the AK, qualifyingData =
 * SHA-256(cti). So K vouches for T and for the task's limits (issuer, task, expiry, audiences, scope),
 * the AK vouches that T lives in the TPM and signs only through a policy, and T vouches for the token.
 * The verifier therefore needs K and the AK; it never needs T in advance.
 *
 * The credential is the only thing read from a token before a signature verified: it decides which key
 * the token must verify with. That is safe because the credential authenticates itself (K's signature,
 * checked before its claims are read) and T's signature over the token covers the claim that carries
 * it.
 *
 * The TPM structures go through attest/tpm2-types.c; the AK is one of the verifier's trusted AKs, with
 * the attributes evidence requires of an AK (verify-evidence.c), so a TPMS_ATTEST it signed was made by
 * the TPM (tpm-notes §2.1).
 */

#include <string.h>

#include "attest/cose.h"
#include "attest/task-credential.h"
#include "attest/token.h"
#include "attest/tpm2-types.h"
#include "attest/verify-internal.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/macro.h"
#include "common/task-policy.h"

_Static_assert(AGENTID_CREDENTIAL_AUDIENCES_MAX == TASK_CREDENTIAL_AUDIENCES_MAX, "credential audiences limit");

/* A task key (keystore/task-key.h): never leaves the TPM, generated inside it, single purpose,
 * unrestricted so it can sign COSE digests. userWithAuth must be clear too (checked on its own below,
 * attributes_wrong() does not know it): the key then signs only through its policy (Part 1 §19.7.2). */
#define TASK_KEY_ATTRIBUTES_SET \
        (TPM2P_OBJ_FIXEDTPM | TPM2P_OBJ_FIXEDPARENT | TPM2P_OBJ_SENSITIVEDATAORIGIN | TPM2P_OBJ_SIGN)
#define TASK_KEY_ATTRIBUTES_CLEAR (TPM2P_OBJ_RESTRICTED | TPM2P_OBJ_DECRYPT)

static bool bytes_equal(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
        return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* The claim */

int token_peek_credential(const uint8_t *token, size_t size, uint8_t **ret, size_t *ret_size) {
        /* token.c's limits for the claims map: what it would refuse, this does not look into either. */
        static const CborLimits limits = {
                .max_size = TOKEN_MAX,
                .max_depth = 3,
                .max_items = 96,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_cbor_ cbor_item_t *claims = NULL;
        const uint8_t *bytes;
        size_t n;
        int r;

        r = cose_sign1_parse(token, size, &p, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        r = cbor_util_decode(p.payload, p.payload_size, &limits, &claims, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(claims))
                return 0;

        /* What token.c requires of the claim (formats.md §8): a byte string holding a COSE_Sign1_Tagged
         * of at most 4096 bytes. Anything else is a malformed token, and token_claims says so. */
        if (cbor_util_get_bytes(cbor_util_map_get_text(claims, "credential"), &bytes, &n) < 0 || n < 1 ||
            n > TOKEN_CREDENTIAL_MAX)
                return 0;
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed inner = {};
        r = cose_sign1_parse(bytes, n, &inner, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        r = memdup_sized(bytes, n, ret, ret_size);
        if (r < 0)
                return r;
        return 1;
}

void task_key_found_done(TaskKeyFound *k) {
        if (!k)
                return;
        task_credential_verified_free(k->credential);
        EVP_PKEY_free(k->pkey);
        free(k->spki);
        *k = (TaskKeyFound) {};
}

/* ------------------------------------------------------------------------------------------------ */
/* credential_task_key */

/* The AK's ECDSA-SHA256 signature over the raw certify bytes (Part 3 §18.2: the TPM signs
 * H_scheme(attest)), by one of the trusted AKs that is a restricted signing key. Return: 1 and the AK's
 * Name; 0 with *ret_why; -errno. */
static int certify_signer(const AgentidVerifier *v, const TaskCredentialClaims *c, uint8_t ret_ak_name[TPM2P_NAME_SHA256_SIZE],
                          const char **ret_why) {
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        const Tpm2Public *ak;
        const uint8_t *ak_pub;
        Tpm2Signature sig;
        EVP_PKEY *ak_pkey;
        size_t der_size = 0, ak_pub_size, state = 0;
        char why[160];
        int r;

        r = tpm2_signature_parse(c->certify_sig, c->certify_sig_size, &sig);
        if (r == -EOPNOTSUPP || (r >= 0 && sig.sig_alg != TPM2P_ALG_ECDSA)) {
                *ret_why = "task_key.certify_sig is not an ECDSA signature";
                return 0;
        }
        if (r < 0) {
                *ret_why = "task_key.certify_sig does not unmarshal as a TPMT_SIGNATURE";
                return 0;
        }
        if (sig.hash_alg != TPM2P_ALG_SHA256) {
                *ret_why = "task_key.certify_sig is not over SHA-256";
                return 0;
        }
        r = tpm2_signature_ecdsa_to_der(&sig, P256_COORD_SIZE, &der, &der_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_why = "task_key.certify_sig has an r or s longer than 32 bytes";
                return 0;
        }
        r = sha256(c->certify, c->certify_size, digest);
        if (r < 0)
                return r;

        /* The credential does not say which AK: each trusted one that could have made a TPMS_ATTEST is
         * tried (a verifier trusts a handful). One that is not a restricted ES256 signing key would sign
         * anything it is given, so its signature would prove nothing about the TPM. */
        while (verifier_trusted_ak_next(v, &state, &ak, &ak_pkey, &ak_pub, &ak_pub_size)) {
                if (!ak_pkey || !is_es256_key(ak, why, sizeof(why)) ||
                    attributes_wrong(ak->attributes, AK_ATTRIBUTES_SET, AK_ATTRIBUTES_CLEAR, why, sizeof(why)))
                        continue;
                r = ecdsa_verify_digest(ak_pkey, digest, der, der_size);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                r = tpm2_public_name(ak, ak_pub, ak_pub_size, ret_ak_name);
                if (r < 0)
                        return r;
                return 1;
        }
        *ret_why = "task_key.certify_sig does not verify with any trusted AK (a restricted ECDSA-SHA256 P-256 "
                   "signing key)";
        return 0;
}

static int check_task_key(const AgentidVerifier *v, AgentidVerdict *d, const TaskCredentialClaims *c) {
        uint8_t ak_name[TPM2P_NAME_SHA256_SIZE], name[TPM2P_NAME_SHA256_SIZE], expected[SHA256_DIGEST_SIZE];
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];
        const char *what = NULL;
        Tpm2Attest attest;
        Tpm2Public pub;
        char why[160];
        int r;

        if (verifier_n_trusted_aks(v) == 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "no trusted AK: the task key's certification cannot be checked (trust the AK with "
                             "agentid_verifier_add_trusted_ak(), agentid-verify --trusted-ak=)");
                return 0;
        }

        /* The certify first: only a TPMS_ATTEST a trusted AK signed says anything about the task key. */
        r = certify_signer(v, c, ak_name, &what);
        if (r < 0)
                return r;
        if (r == 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY, "%s", what);
                return 0;
        }

        /* Part 2 §10.12.8: full unmarshal, magic = TPM_GENERATED_VALUE (§6.2), type certify (§6.9). */
        r = tpm2_attest_parse(c->certify, c->certify_size, &attest);
        if (r == -EPROTONOSUPPORT) {
                /* The parser only gets that far with magic and type read: 6 bytes at least. */
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task_key.certify has type 0x%02x%02x, expected 0x%04x",
                             c->certify[4], c->certify[5], TPM2P_ST_ATTEST_CERTIFY);
                return 0;
        }
        if (r < 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task_key.certify does not unmarshal as a TPMS_ATTEST (truncated, oversized or "
                             "trailing bytes)");
                return 0;
        }
        if (attest.type != TPM2P_ST_ATTEST_CERTIFY) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY, "task_key.certify has type 0x%04x, expected 0x%04x",
                             attest.type, TPM2P_ST_ATTEST_CERTIFY);
                return 0;
        }
        if (attest.magic != TPM2P_GENERATED_VALUE) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task_key.certify magic 0x%08x is not TPM_GENERATED_VALUE 0xff544347", attest.magic);
                return 0;
        }

        /* DESIGN §5: qualifyingData = SHA-256(cti), which the TPM copies into extraData (Part 3 §18.2):
         * this certification was made for this credential, not lifted from another one. */
        r = sha256(c->cti, TOKEN_CTI_SIZE, expected);
        if (r < 0)
                return r;
        if (!bytes_equal(attest.extra_data.buffer, attest.extra_data.size, expected, sizeof(expected))) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task_key.certify extraData %s is not SHA-256(cti) %s",
                             detail_hex(attest.extra_data.buffer, attest.extra_data.size).s,
                             detail_hex(expected, sizeof(expected)).s);
                return 0;
        }

        /* The public area, and that it is the one certified: the Name commits to all of it, attributes and
         * authPolicy included (Part 1 §16). */
        r = tpm2_public_parse(c->task_pub, c->task_pub_size, &pub);
        if (r < 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY, "task_key.pub does not unmarshal as a TPMT_PUBLIC");
                return 0;
        }
        if (!is_es256_key(&pub, why, sizeof(why))) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY, "task key: %s", why);
                return 0;
        }
        r = tpm2_public_name(&pub, c->task_pub, c->task_pub_size, name);
        if (r < 0)
                return r;       /* nameAlg SHA-256 was checked just above */
        const Tpm2Name *n = &attest.certify.name;
        if (!bytes_equal(n->name, n->size, name, sizeof(name))) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY, "certified Name %s is not Name(task_key.pub) %s",
                             detail_hex(n->name, n->size).s, detail_hex(name, sizeof(name)).s);
                return 0;
        }
        if (attributes_wrong(pub.attributes, TASK_KEY_ATTRIBUTES_SET, TASK_KEY_ATTRIBUTES_CLEAR, why, sizeof(why))) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task key attributes 0x%08x: %s", pub.attributes, why);
                return 0;
        }
        if (pub.attributes & TPM2P_OBJ_USERWITHAUTH) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task key attributes 0x%08x: userWithAuth set (it would "
                             "sign with its auth value, not only through its policy)", pub.attributes);
                return 0;
        }
        /* Part 1 §19.7.2: with userWithAuth clear, USER role authorization needs a policy session whose
         * digest equals authPolicy. Recomputed here from clock_limit and the counters of the
         * certification (the TPM signed them; Part 3 §18.1 leaves them unobfuscated for an AK in the
         * endorsement hierarchy), it proves the TPM refuses the key from clock_limit on and after any
         * reset or restart of the boot it was certified in. */
        uint8_t policy[SHA256_DIGEST_SIZE];
        r = task_policy_digest(c->clock_limit, attest.reset_count, attest.restart_count, policy);
        if (r < 0)
                return r;
        if (!bytes_equal(pub.auth_policy.buffer, pub.auth_policy.size, policy, sizeof(policy))) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task key authPolicy %s is not the policy clock < %llu, resetCount %u, restartCount %u "
                             "(%s)", detail_hex(pub.auth_policy.buffer, pub.auth_policy.size).s,
                             (unsigned long long) c->clock_limit, attest.reset_count, attest.restart_count,
                             detail_hex(policy, sizeof(policy)).s);
                return 0;
        }
        /* The key was made with clock_limit = (TPM clock before it) + its lifetime, and certified after:
         * the TPM gives it at most exp - iat of its own clock (milliseconds, compared exactly), which
         * runs only while powered. iat <= exp is checked when the claims are read. */
        uint64_t lifetime = c->exp - c->iat;
        if (attest.clock >= c->clock_limit ||
            (lifetime <= UINT64_MAX / 1000 && c->clock_limit - attest.clock > lifetime * 1000)) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task key clock_limit %llu is not within the credential's lifetime of %llu s after "
                             "its certification at TPM clock %llu", (unsigned long long) c->clock_limit,
                             (unsigned long long) (c->exp - c->iat), (unsigned long long) attest.clock);
                return 0;
        }

        /* cnf is the key tokens verify with: it must be the key the AK certified. */
        r = tpm2_public_p256_point(&pub, x, y);
        if (r < 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "task key point has a coordinate longer than 32 bytes");
                return 0;
        }
        if (memcmp(x, c->x, sizeof(x)) != 0 || memcmp(y, c->y, sizeof(y)) != 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                             "cnf (x %s...) is not the certified task key (x %s...)",
                             detail_hex(c->x, 8).s, detail_hex(x, 8).s);
                return 0;
        }

        verdict_pass(d, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                     "certified by the AK %s for this cti; ES256 sign key, fixedTPM "
                     "fixedParent sensitiveDataOrigin, userWithAuth clear, signs only while TPM clock < %llu "
                     "(certified at %llu) in resetCount %u restartCount %u; cnf = the certified key",
                     detail_hex(ak_name, sizeof(ak_name)).s, (unsigned long long) c->clock_limit,
                     (unsigned long long) attest.clock, attest.reset_count, attest.restart_count);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* credential_format, _signature, _task_key, _expiry */

static void skip_after_signature(AgentidVerdict *d, const char *why) {
        verdict_skip(d, AGENTID_REASON_CREDENTIAL_TASK_KEY, why);
        verdict_skip(d, AGENTID_REASON_CREDENTIAL_EXPIRY, why);
}

/* The credential's kid against the expected one: a label, checked after the signature (as token_kid). */
static void check_credential_signature(AgentidVerdict *d, const uint8_t kid[TOKEN_KID_SIZE],
                                       const uint8_t *expected_kid) {
        if (expected_kid && memcmp(kid, expected_kid, TOKEN_KID_SIZE) != 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_SIGNATURE, "ES256 by the given key, but kid %s, expected %s",
                             detail_hex(kid, TOKEN_KID_SIZE).s, detail_hex(expected_kid, TOKEN_KID_SIZE).s);
                return;
        }
        verdict_pass(d, AGENTID_REASON_CREDENTIAL_SIGNATURE, "ES256 by the given (agent) key, kid %s%s",
                     detail_hex(kid, TOKEN_KID_SIZE).s, expected_kid ? " as expected" : " (no kid expected)");
}

/* The task key the token must verify with: cnf, its Name (the token's kid) and SPKI hash. */
static int task_key_fill(TaskKeyFound *k) {
        const TaskCredentialClaims *c = &k->credential->claims;
        int r;

        r = p256_pkey_from_xy(c->x, c->y, &k->pkey);
        if (r < 0)
                return r == -ENOMEM ? r : -EIO;         /* task_credential_verify() checked the point */
        /* The Name the AK certified (Part 1 §16): 00 0b || SHA-256(TPMT_PUBLIC). */
        k->kid[0] = 0x00;
        k->kid[1] = (uint8_t) TPM2P_ALG_SHA256;
        r = sha256(c->task_pub, c->task_pub_size, k->kid + 2);
        if (r < 0)
                return r;
        /* What a task_end or destroy entry names besides the kid (DESIGN §5): the uncompressed point. */
        r = pkey_to_spki_der(k->pkey, &k->spki, &k->spki_size);
        if (r < 0)
                return r == -ENOMEM ? r : -EIO;
        return sha256(k->spki, k->spki_size, k->spki_sha256);
}

int verify_credential(const AgentidVerifier *v, AgentidVerdict *d, const uint8_t *credential, size_t size,
                      EVP_PKEY *agent_key, const uint8_t *expected_kid, uint64_t now, TaskKeyFound *ret) {
        uint8_t kid[TOKEN_KID_SIZE];
        const char *why = NULL;
        int r;

        /* credential_format, first the envelope: as task_credential_verify() checks it before anything. */
        r = task_credential_peek_kid(credential, size, kid, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (r == -E2BIG)
                        verdict_fail(d, AGENTID_REASON_CREDENTIAL_FORMAT,
                                     "%zu bytes, more than %u", size, TASK_CREDENTIAL_MAX);
                else
                        verdict_fail(d, AGENTID_REASON_CREDENTIAL_FORMAT,
                                     "not a task credential: %s", why ?: "malformed");
                verdict_skip(d, AGENTID_REASON_CREDENTIAL_SIGNATURE, "credential malformed");
                skip_after_signature(d, "credential malformed");
                return 0;
        }

        /* credential_signature by the agent key, then the claims: after a good envelope, -EBADMSG can
         * only be the claims, which task_credential_verify() parses after the signature verified. */
        r = task_credential_verify(credential, size, agent_key, &ret->credential, &why);
        if (r == -EKEYREJECTED) {
                verdict_pass(d, AGENTID_REASON_CREDENTIAL_FORMAT,
                             "COSE_Sign1 (tag 18, ES256), protected header {1: -7, 4: kid}, "
                             "%zu bytes; claims not read", size);
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_SIGNATURE,
                             "does not verify with the given (agent) key (credential "
                             "kid %s)", detail_hex(kid, sizeof(kid)).s);
                skip_after_signature(d, "credential signature not verified");
                return 0;
        }
        if (r == -EBADMSG) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_FORMAT, "%s", why ?: "credential claims malformed");
                check_credential_signature(d, kid, expected_kid);
                skip_after_signature(d, "credential claims malformed");
                return 0;
        }
        if (r < 0)
                return r;

        const TaskCredentialClaims *c = &ret->credential->claims;
        verdict_pass(d, AGENTID_REASON_CREDENTIAL_FORMAT,
                     "task credential of %s for task %.120s, cti %s, %zu audience%s, "
                     "%zu bytes", c->iss, c->task_id, detail_hex(c->cti, TOKEN_CTI_SIZE).s, c->n_audiences,
                     c->n_audiences == 1 ? "" : "s", size);
        check_credential_signature(d, kid, expected_kid);

        r = task_key_fill(ret);
        if (r < 0)
                return r;
        r = check_task_key(v, d, c);
        if (r < 0)
                return r;

        /* RFC 8392 §3.1.4 as for tokens: not accepted on or after exp. */
        if (now >= c->exp)
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_EXPIRY,
                             "expired at %llu, now %llu", (unsigned long long) c->exp,
                             (unsigned long long) now);
        else
                verdict_pass(d, AGENTID_REASON_CREDENTIAL_EXPIRY,
                             "valid until %llu, now %llu", (unsigned long long) c->exp,
                             (unsigned long long) now);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* credential_binding */

void check_credential_binding(AgentidVerdict *d, const TaskCredentialClaims *c, const TokenClaims *t) {
        bool listed = c->n_audiences == 0;

        /* The agent's word on the task bounds what the task key may say: same issuer and task, no later
         * expiry, one of the audiences, no scope beyond the credential's (as delegation narrows, §8.2). */
        if (!streq(t->iss, c->iss)) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING,
                             "token iss %.120s is not the credential's %.120s", t->iss,
                             c->iss);
                return;
        }
        if (!streq(t->task_id, c->task_id)) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING,
                             "token task_id \"%.120s\" is not the credential's \"%.120s\"",
                             t->task_id, c->task_id);
                return;
        }
        if (!streq_ptr(t->parent_task_id, c->parent_task_id)) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING,
                             "token parent_task_id %s%.120s%s is not the credential's "
                             "%s%.120s%s", t->parent_task_id ? "\"" : "", t->parent_task_id ?: "(none)",
                             t->parent_task_id ? "\"" : "", c->parent_task_id ? "\"" : "",
                             c->parent_task_id ?: "(none)", c->parent_task_id ? "\"" : "");
                return;
        }
        /* A task key's tokens do not delegate (docs/tasks.md): hops would let it claim to act for
         * agents the credential does not name. */
        if (t->n_hops > 0) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING,
                             "a task token carries %zu delegation hops; task tokens "
                             "do not delegate", t->n_hops);
                return;
        }
        if (t->exp > c->exp) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING, "token exp %llu is after the credential's exp %llu",
                             (unsigned long long) t->exp, (unsigned long long) c->exp);
                return;
        }
        for (size_t i = 0; !listed && i < c->n_audiences; i++)
                listed = streq(t->aud, c->audiences[i]);
        if (!listed) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING,
                             "token aud \"%.120s\" is not one of the credential's %zu "
                             "audiences", t->aud, c->n_audiences);
                return;
        }
        if (!token_scope_is_subset(t->scope, c->scope)) {
                verdict_fail(d, AGENTID_REASON_CREDENTIAL_BINDING,
                             "token scope \"%.200s\" is not within the credential's %s%.200s%s",
                             t->scope, c->scope ? "\"" : "", c->scope ?: "(no scope)", c->scope ? "\"" : "");
                return;
        }
        verdict_pass(d, AGENTID_REASON_CREDENTIAL_BINDING,
                     "same iss and task, exp %llu <= %llu, aud %s, scope within the "
                     "credential's", (unsigned long long) t->exp, (unsigned long long) c->exp,
                     c->n_audiences == 0 ? "(any audience)" : "listed");
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Task credentials (see task-credential.h; CDDL in docs/formats.md §12).
 *
 * As for tokens (attest/token.c): one deterministic encoding per claims set, and a decoder that accepts
 * exactly that set of encodings. The payload passes cbor_util_validate() (deterministic, sizes, depth,
 * no duplicate keys) before libcbor sees it, then every key must be one of the claims below with its
 * type and size. So a credential task_credential_verify() accepts re-encodes, through
 * task_credential_encode(), to the payload it carried.
 *
 * The envelope is the COSE_Sign1 of cose.c in the token profile: protected header exactly
 * {1: -7, 4: kid} with a 34-byte TPM Name (the agent key's), no label 15. The payload is read only after
 * the agent key's signature verified.
 *
 * What needs a TPM parser — the task key's public area, its certification by the AK, and that cnf is
 * that key — is libagentid-verify's (attest/verify-task.c): attest/ stays free of TPM structures so the
 * daemon can use this module without the verifier library.
 */

#include <string.h>

#include "attest/cose.h"
#include "attest/cwt.h"
#include "attest/task-credential.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"

/* agentid's own claims (DESIGN §5: short text keys of the profile tag:agentid.org,2026:v1). */
#define CLAIM_TASK_ID "task_id"
#define CLAIM_PARENT_TASK_ID "parent_task_id"
#define CLAIM_AUDIENCES "audiences"
#define CLAIM_TASK_KEY "task_key"
#define TASK_KEY_PUB "pub"
#define TASK_KEY_CERTIFY "certify"
#define TASK_KEY_CERTIFY_SIG "certify_sig"
#define TASK_KEY_CLOCK_LIMIT "clock_limit"

/* cnf (RFC 8747 §3.1) holding a COSE_Key (RFC 9052 §7.1) of type EC2 on P-256 (RFC 9053 §7.1.1). */
#define CWT_CNF 8
#define CNF_COSE_KEY 1
#define COSE_KEY_KTY 1
#define COSE_KEY_CRV (-1)
#define COSE_KEY_X (-2)
#define COSE_KEY_Y (-3)
#define COSE_KTY_EC2 2
#define COSE_CRV_P256 1


/* DESIGN §2: agentid://<host-id>/<key name>, host-id 32 lower-case hex digits. */
#define AGENT_URI_PREFIX "agentid://"
#define HOST_ID_HEX 32U
#define KEY_NAME_MAX 64U

static const CwtProfile credential_profile = {
        .max = TASK_CREDENTIAL_MAX,
        .too_large = "task credential larger than 4 KiB",
        .signed_message = "protected header carries CWT claims (label 15): a signed message, not a task credential",
};

/* ------------------------------------------------------------------------------------------------ */
/* Agent URIs */

static bool key_name_valid(const char *s, size_t n) {
        /* DESIGN §2: [a-z0-9][a-z0-9._-]{0,63} */
        if (n < 1 || n > KEY_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          (i > 0 && (c == '.' || c == '_' || c == '-'));
                if (!ok)
                        return false;
        }
        return true;
}

bool agent_uri_is_valid(const char *s, size_t n) {
        size_t prefix = strlen(AGENT_URI_PREFIX);

        bool ok = n > prefix + HOST_ID_HEX + 1 && memcmp(s, AGENT_URI_PREFIX, prefix) == 0 &&
                  s[prefix + HOST_ID_HEX] == '/';
        for (size_t i = 0; ok && i < HOST_ID_HEX; i++) {
                char c = s[prefix + i];
                ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }
        return ok && key_name_valid(s + prefix + HOST_ID_HEX + 1, n - prefix - HOST_ID_HEX - 1);
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoding */

static bool blob_is_valid(const uint8_t *p, size_t n) {
        return p && n >= 1 && n <= TASK_CREDENTIAL_TPM_MAX;
}

static int claims_check_for_encoding(const TaskCredentialClaims *c) {
        if (!cwt_text_is_valid(c->iss) || !agent_uri_is_valid(c->iss, strlen(c->iss)))
                return -EINVAL;
        if (!cwt_text_is_valid(c->task_id) || (c->parent_task_id && !cwt_text_is_valid(c->parent_task_id)))
                return -EINVAL;
        if (c->scope && !token_scope_is_valid(c->scope))
                return -EINVAL;
        /* The decoder refuses a credential that ends before it was issued. */
        if (c->iat > c->exp)
                return -EINVAL;
        if (c->n_audiences > TASK_CREDENTIAL_AUDIENCES_MAX || (c->n_audiences > 0 && !c->audiences))
                return -EINVAL;
        for (size_t i = 0; i < c->n_audiences; i++) {
                if (!cwt_text_is_valid(c->audiences[i]))
                        return -EINVAL;
                /* A list, not a multiset: each audience once, so the list has one meaning. */
                for (size_t j = 0; j < i; j++)
                        if (streq(c->audiences[i], c->audiences[j]))
                                return -EINVAL;
        }
        if (!blob_is_valid(c->task_pub, c->task_pub_size) || !blob_is_valid(c->certify, c->certify_size) ||
            !blob_is_valid(c->certify_sig, c->certify_sig_size) || c->clock_limit == 0)
                return -EINVAL;
        return 0;
}

/* DESIGN §5 "cnf": {1: {1: 2, -1: 1, -2: x, -3: y}}, nothing else. */
static cbor_item_t *cnf_build(const uint8_t x[32], const uint8_t y[32]) {
        _cleanup_cbor_ cbor_item_t *cnf = cbor_util_new_map();

        if (!cnf || cbor_util_map_put_int(cnf, CNF_COSE_KEY, cose_key_p256(x, y)) < 0)
                return NULL;
        return TAKE_PTR(cnf);
}

static cbor_item_t *audiences_build(const char *const *audiences, size_t n) {
        _cleanup_cbor_ cbor_item_t *array = cbor_util_new_array();
        int k = 0;

        if (!array)
                return NULL;
        for (size_t i = 0; i < n; i++)
                k |= cbor_util_array_push(array, cbor_util_new_text(audiences[i]));
        return k == 0 ? TAKE_PTR(array) : NULL;
}

static cbor_item_t *task_key_build(const TaskCredentialClaims *c) {
        _cleanup_cbor_ cbor_item_t *map = cbor_util_new_map();
        int k = 0;

        if (!map)
                return NULL;
        /* DESIGN §5: TPM structures as byte strings, marshalled without TPM2B size prefixes. */
        k |= cbor_util_map_put_text(map, TASK_KEY_PUB, cbor_util_new_bytes(c->task_pub, c->task_pub_size));
        k |= cbor_util_map_put_text(map, TASK_KEY_CERTIFY, cbor_util_new_bytes(c->certify, c->certify_size));
        k |= cbor_util_map_put_text(map, TASK_KEY_CERTIFY_SIG, cbor_util_new_bytes(c->certify_sig, c->certify_sig_size));
        k |= cbor_util_map_put_text(map, TASK_KEY_CLOCK_LIMIT, cbor_util_new_uint(c->clock_limit));
        return k == 0 ? TAKE_PTR(map) : NULL;
}

int task_credential_encode(const TaskCredentialClaims *c, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int k = 0, r;

        if (!c || !ret || !ret_size)
                return -EINVAL;
        r = claims_check_for_encoding(c);
        if (r < 0)
                return r;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;

        /* RFC 8392 §3.1 registered claims under their integer keys, cnf under RFC 8747's; cbor_util_encode()
         * sorts the keys (RFC 8949 §4.2.1). sub = iss: the agent vouches for its own task key. */
        k |= cbor_util_map_put_int(map, CWT_ISS, cbor_util_new_text(c->iss));
        k |= cbor_util_map_put_int(map, CWT_SUB, cbor_util_new_text(c->iss));
        k |= cbor_util_map_put_int(map, CWT_EXP, cbor_util_new_uint(c->exp));
        k |= cbor_util_map_put_int(map, CWT_IAT, cbor_util_new_uint(c->iat));
        k |= cbor_util_map_put_int(map, CWT_CTI, cbor_util_new_bytes(c->cti, TOKEN_CTI_SIZE));
        k |= cbor_util_map_put_int(map, CWT_CNF, cnf_build(c->x, c->y));
        if (c->scope)
                k |= cbor_util_map_put_int(map, CWT_SCOPE, cbor_util_new_text(c->scope));
        k |= cbor_util_map_put_text(map, CLAIM_TASK_ID, cbor_util_new_text(c->task_id));
        if (c->parent_task_id)
                k |= cbor_util_map_put_text(map, CLAIM_PARENT_TASK_ID, cbor_util_new_text(c->parent_task_id));
        k |= cbor_util_map_put_text(map, CLAIM_AUDIENCES, audiences_build(c->audiences, c->n_audiences));
        k |= cbor_util_map_put_text(map, CLAIM_TASK_KEY, task_key_build(c));
        if (k != 0)
                return -ENOMEM;

        r = cbor_util_encode(map, &buf, &size);
        if (r < 0)
                return r;
        /* Tokens carry the signed credential, at most TASK_CREDENTIAL_MAX bytes of it. */
        if (size > TASK_CREDENTIAL_MAX - CWT_ENVELOPE_SIZE)
                return -EINVAL;

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Decoding */

/* A TaskCredentialVerified and what its pointers point into. */
typedef struct CredentialStorage {
        TaskCredentialVerified verified;        /* first: task_credential_verified_free() gets its address */
        const char *audiences[TASK_CREDENTIAL_AUDIENCES_MAX];
        CwtArena arena;                         /* every text (NUL-terminated) and the TPM byte strings */
} CredentialStorage;

TaskCredentialVerified *task_credential_verified_free(TaskCredentialVerified *c) {
        if (!c)
                return NULL;
        CredentialStorage *s = (CredentialStorage *) c;
        free(s->arena.buf);
        return mfree(s);
}

static void credential_storage_freep(CredentialStorage **s) {
        if (*s)
                task_credential_verified_free(&(*s)->verified);
}

static int claim_blob(CredentialStorage *s, const cbor_item_t *item, const uint8_t **ret, size_t *ret_size) {
        const uint8_t *p;
        size_t n;

        if (cbor_util_get_bytes(item, &p, &n) < 0 || n < 1 || n > TASK_CREDENTIAL_TPM_MAX)
                return -EBADMSG;
        const uint8_t *copy = cwt_arena_copy(&s->arena, p, n, false);
        if (!copy)
                return -EBADMSG;
        *ret = copy;
        *ret_size = n;
        return 0;
}

/* cnf = {1: {1: 2, -1: 1, -2: x, -3: y}} exactly (DESIGN §5), (x, y) a point on P-256. Return: 0;
 * -EBADMSG with *reason; -ENOMEM. */
static int cnf_parse(const cbor_item_t *item, TaskCredentialClaims *c, const char **reason) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *point = NULL;
        const cbor_item_t *key;
        int64_t kty, crv;
        int r;

        /* Map sizes and four distinct labels found (the validator refuses duplicate keys): exactly these. */
        if (!item || !cbor_isa_map(item) || cbor_map_size(item) != 1 ||
            !(key = cbor_util_map_get_int(item, CNF_COSE_KEY)) || !cbor_isa_map(key) || cbor_map_size(key) != 4 ||
            cbor_util_get_int(cbor_util_map_get_int(key, COSE_KEY_KTY), &kty) < 0 || kty != COSE_KTY_EC2 ||
            cbor_util_get_int(cbor_util_map_get_int(key, COSE_KEY_CRV), &crv) < 0 || crv != COSE_CRV_P256 ||
            cwt_claim_bytes(cbor_util_map_get_int(key, COSE_KEY_X), 32, c->x) < 0 ||
            cwt_claim_bytes(cbor_util_map_get_int(key, COSE_KEY_Y), 32, c->y) < 0)
                return cwt_bad(reason, "cnf (8) is not {1: {1: 2, -1: 1, -2: x(32), -3: y(32)}}");

        /* The key tokens of this task must verify with: a point the verifier can use at all. */
        r = p256_pkey_from_xy(c->x, c->y, &point);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return cwt_bad(reason, "cnf (8) is not a point on P-256");
        return 0;
}

static int audiences_parse(CredentialStorage *s, const cbor_item_t *item, const char **reason) {
        TaskCredentialClaims *c = &s->verified.claims;

        if (!item || !cbor_isa_array(item))
                return cwt_bad(reason, "\"audiences\" is not an array");
        size_t n = cbor_array_size(item);
        if (n > TASK_CREDENTIAL_AUDIENCES_MAX)
                return cwt_bad(reason, "\"audiences\" has more than 16 entries");
        cbor_item_t **e = cbor_array_handle(item);
        if (n > 0 && !e)
                return cwt_bad(reason, "\"audiences\" is not an array");

        for (size_t i = 0; i < n; i++) {
                if (cwt_claim_text(&s->arena, e[i], TOKEN_TEXT_MAX, &s->audiences[i]) < 0)
                        return cwt_bad(reason, "an audience is not a text of 1..256 bytes");
                for (size_t j = 0; j < i; j++)
                        if (streq(s->audiences[i], s->audiences[j]))
                                return cwt_bad(reason, "an audience appears twice in \"audiences\"");
        }
        /* An empty list is a claim too (any audience): audiences stays NULL with n 0. */
        c->audiences = n > 0 ? s->audiences : NULL;
        c->n_audiences = n;
        return 0;
}

static int task_key_parse(CredentialStorage *s, const cbor_item_t *item, const char **reason) {
        TaskCredentialClaims *c = &s->verified.claims;

        /* Four entries and four distinct keys found: exactly {pub, certify, certify_sig, clock_limit}. */
        if (!item || !cbor_isa_map(item) || cbor_map_size(item) != 4)
                return cwt_bad(reason, "\"task_key\" is not a map of exactly pub, certify, certify_sig, clock_limit");
        if (claim_blob(s, cbor_util_map_get_text(item, TASK_KEY_PUB), &c->task_pub, &c->task_pub_size) < 0)
                return cwt_bad(reason, "\"task_key\" lacks \"pub\", or it is not a byte string of 1..1024 bytes");
        if (claim_blob(s, cbor_util_map_get_text(item, TASK_KEY_CERTIFY), &c->certify, &c->certify_size) < 0)
                return cwt_bad(reason, "\"task_key\" lacks \"certify\", or it is not a byte string of 1..1024 bytes");
        if (claim_blob(s, cbor_util_map_get_text(item, TASK_KEY_CERTIFY_SIG), &c->certify_sig,
                       &c->certify_sig_size) < 0)
                return cwt_bad(reason, "\"task_key\" lacks \"certify_sig\", or it is not a byte string of 1..1024 bytes");
        if (cbor_util_get_uint(cbor_util_map_get_text(item, TASK_KEY_CLOCK_LIMIT), &c->clock_limit) < 0 ||
            c->clock_limit == 0)
                return cwt_bad(reason, "\"task_key\" lacks \"clock_limit\", or it is not a positive integer");
        return 0;
}

/* The payload: exactly the claims of task-credential.h, each of its type and size. Return: 0; -EBADMSG
 * with *reason; -ENOMEM. */
static int claims_parse(const uint8_t *payload, size_t size, CredentialStorage *s, const char **reason) {
        static const CborLimits limits = {
                .max_size = TASK_CREDENTIAL_MAX,
                .max_depth = 3,         /* claims map > cnf > COSE_Key */
                /* 11 claims, cnf, task_key and 16 audiences with room: a 17th audience is reported as
                 * such, not as too many items. */
                .max_items = 128,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_cbor_ cbor_item_t *map = NULL;
        TaskCredentialClaims *c = &s->verified.claims;
        const char *sub = NULL;
        bool have_exp = false, have_iat = false, have_cti = false, have_cnf = false, have_audiences = false;
        struct cbor_pair *pairs = NULL;
        size_t n = 0;
        int r;

        /* Texts: iss, sub, scope, task_id, parent_task_id and the audiences. */
        r = cwt_claims_open(payload, size, &limits, 5 + TASK_CREDENTIAL_AUDIENCES_MAX, &s->arena, &map, &pairs, &n,
                            reason);
        if (r < 0)
                return r;

        /* Keys are unique (the validator refuses duplicates), so each claim is seen at most once. */
        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *key = pairs[i].key, *v = pairs[i].value;
                const char *k;
                size_t l;
                int64_t label;

                if (cbor_util_get_int(key, &label) >= 0) {
                        switch (label) {
                        case CWT_ISS:
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->iss) < 0)
                                        return cwt_bad(reason, "iss (1) is not a text of 1..256 bytes");
                                break;
                        case CWT_SUB:
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &sub) < 0)
                                        return cwt_bad(reason, "sub (2) is not a text of 1..256 bytes");
                                break;
                        case CWT_EXP:
                                /* NumericDate (RFC 8392 §2): untagged unsigned seconds. */
                                if (cbor_util_get_uint(v, &c->exp) < 0)
                                        return cwt_bad(reason, "exp (4) is not an unsigned integer");
                                have_exp = true;
                                break;
                        case CWT_IAT:
                                if (cbor_util_get_uint(v, &c->iat) < 0)
                                        return cwt_bad(reason, "iat (6) is not an unsigned integer");
                                have_iat = true;
                                break;
                        case CWT_CTI:
                                if (cwt_claim_bytes(v, TOKEN_CTI_SIZE, c->cti) < 0)
                                        return cwt_bad(reason, "cti (7) is not a byte string of 16 bytes");
                                have_cti = true;
                                break;
                        case CWT_CNF:
                                r = cnf_parse(v, c, reason);
                                if (r < 0)
                                        return r;
                                have_cnf = true;
                                break;
                        case CWT_SCOPE:
                                /* RFC 8693 §4.2: one space-separated string, the rules of token.h. */
                                if (cwt_claim_text(&s->arena, v, TOKEN_SCOPE_MAX, &c->scope) < 0 ||
                                    !token_scope_is_valid(c->scope))
                                        return cwt_bad(reason, "scope (9) is not a valid scope string");
                                break;
                        default:
                                return cwt_bad(reason, "unknown claim with an integer key");
                        }
                } else if (cbor_util_get_text(key, &k, &l) >= 0) {
                        if (cwt_text_key_is(k, l, CLAIM_TASK_ID)) {
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->task_id) < 0)
                                        return cwt_bad(reason, "\"task_id\" is not a text of 1..256 bytes");
                        } else if (cwt_text_key_is(k, l, CLAIM_PARENT_TASK_ID)) {
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->parent_task_id) < 0)
                                        return cwt_bad(reason, "\"parent_task_id\" is not a text of 1..256 bytes");
                        } else if (cwt_text_key_is(k, l, CLAIM_AUDIENCES)) {
                                r = audiences_parse(s, v, reason);
                                if (r < 0)
                                        return r;
                                have_audiences = true;
                        } else if (cwt_text_key_is(k, l, CLAIM_TASK_KEY)) {
                                r = task_key_parse(s, v, reason);
                                if (r < 0)
                                        return r;
                        } else
                                return cwt_bad(reason, "unknown claim with a text key");
                } else
                        return cwt_bad(reason, "a claim key is neither an integer nor a text");
        }

        if (!c->iss || !sub || !have_exp || !have_iat || !have_cti || !have_cnf || !c->task_id || !have_audiences ||
            !c->task_pub)
                return cwt_bad(reason, "a required claim is missing (iss, sub, exp, iat, cti, cnf, task_id, audiences, "
                                   "task_key)");
        /* The agent vouches for its own task key (DESIGN §5). */
        if (!streq(c->iss, sub))
                return cwt_bad(reason, "sub (2) is not iss (1)");
        if (!agent_uri_is_valid(c->iss, strlen(c->iss)))
                return cwt_bad(reason, "iss (1) is not agentid://<32 hex digits>/<key name>");
        if (c->iat > c->exp)
                return cwt_bad(reason, "iat (6) is after exp (4)");
        return 0;
}

int task_credential_peek_kid(const uint8_t *cred, size_t size, uint8_t ret_kid[TOKEN_KID_SIZE],
                             const char **ret_reason) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        const char *reason = NULL;
        int r;

        if ((!cred && size > 0) || !ret_kid)
                return -EINVAL;

        r = cwt_envelope_parse(&credential_profile, cred, size, &p, &reason);
        if (r < 0)
                return cwt_refused(r, reason, ret_reason);
        memcpy(ret_kid, p.kid, TOKEN_KID_SIZE);
        return 0;
}

int task_credential_verify(const uint8_t *cred, size_t size, EVP_PKEY *agent_key, TaskCredentialVerified **ret,
                           const char **ret_reason) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_(credential_storage_freep) CredentialStorage *s = NULL;
        const char *reason = NULL;
        int r;

        if ((!cred && size > 0) || !agent_key || !ret)
                return -EINVAL;

        r = cwt_envelope_parse(&credential_profile, cred, size, &p, &reason);
        if (r < 0)
                return cwt_refused(r, reason, ret_reason);

        /* The signature before the claims: nothing the payload says is looked at until the agent key is
         * known to have said it. A signature that cannot even be converted does not verify either, so
         * -EBADMSG keeps meaning "the claims" from here on. */
        r = cose_sign1_verify_parsed(&p, agent_key);
        if (r == -EKEYREJECTED || r == -EBADMSG)
                return cwt_refused(-EKEYREJECTED, "the signature does not verify with the agent key", ret_reason);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        r = claims_parse(p.payload, p.payload_size, s, &reason);
        if (r < 0)
                return cwt_refused(r, reason, ret_reason);
        memcpy(s->verified.kid, p.kid, TOKEN_KID_SIZE);

        *ret = &TAKE_PTR(s)->verified;
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Task tokens and signed messages (suite "unit"): attest/token.c (scope rules, deterministic encoding
 * and the golden vectors of docs/formats.md §8, strict decoding), and the verifier API on top of it
 * (agentid_verify_token(), agentid_verify_message()) with the exact reason code of every refusal.
 * OpenSSL P-256 keys stand in for the TPM: cose_sign1_prepare(), ECDSA over cose_sign1_digest(),
 * cose_sign1_finish(). The last test drives the agentid-verify CLI of the same build.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/cose.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "tests/lib/cli-run.h"
#include "tests/lib/fake-evidence.h"
#include "tests/lib/golden.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

/* The inputs of the golden vectors (docs/formats.md §8). */
#define HOST "8119af52884ed2bc28b62a373dc1f85b"
#define ISS_ROOT "agentid://" HOST "/invoice-bot"
#define ISS_CHILD "agentid://" HOST "/ledger-bot"
#define T0 UINT64_C(1764000000)

static const uint8_t cti_root[TOKEN_CTI_SIZE] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};
static const uint8_t cti_child[TOKEN_CTI_SIZE] = {
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static struct {
        EVP_PKEY *key, *child_key, *other;
        uint8_t *spki, *child_spki, *other_spki;
        size_t spki_size, child_spki_size, other_spki_size;
        uint8_t kid[TOKEN_KID_SIZE], child_kid[TOKEN_KID_SIZE];
} k;

static void kid_fill(uint8_t kid[TOKEN_KID_SIZE], uint8_t fill) {
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, fill, TOKEN_KID_SIZE - 2);
}

static int setup(void **state) {
        k.key = fake_key_from_seed("agentid token test: invoice-bot");
        k.child_key = fake_key_from_seed("agentid token test: ledger-bot");
        k.other = fake_key_from_seed("agentid token test: someone else");
        assert_non_null(k.key);
        assert_non_null(k.child_key);
        assert_non_null(k.other);
        assert_int_equal(pkey_to_spki_der(k.key, &k.spki, &k.spki_size), 0);
        assert_int_equal(pkey_to_spki_der(k.child_key, &k.child_spki, &k.child_spki_size), 0);
        assert_int_equal(pkey_to_spki_der(k.other, &k.other_spki, &k.other_spki_size), 0);
        kid_fill(k.kid, 0x22);
        kid_fill(k.child_kid, 0x55);
        return 0;
}

static int teardown(void **state) {
        EVP_PKEY_free(k.key);
        EVP_PKEY_free(k.child_key);
        EVP_PKEY_free(k.other);
        free(k.spki);
        free(k.child_spki);
        free(k.other_spki);
        return 0;
}

/* The golden root token: invoice-bot, for ledger-api, one hour. */
static TokenClaims root_claims(void) {
        TokenClaims c = {
                .iss = ISS_ROOT,
                .aud = "ledger-api",
                .exp = T0 + 3600,
                .nbf = T0,
                .iat = T0,
                .scope = "invoices:read invoices:pay",
                .task_id = "task-7f3a",
                .owner = "finance-platform@example.com",
        };
        memcpy(c.cti, cti_root, sizeof(c.cti));
        return c;
}

/* The golden delegated token: ledger-bot, delegated by the root token, narrower and shorter. */
static const TokenHop child_hops[] = {
        {
                .iss = ISS_ROOT,
                .cti = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f },
                .kid = { 0x00, 0x0b, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                         0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22 },
        },
};

static TokenClaims child_claims(void) {
        TokenClaims c = {
                .iss = ISS_CHILD,
                .aud = "bank-api",
                .exp = T0 + 1800,
                .nbf = T0 + 60,
                .iat = T0 + 60,
                .scope = "invoices:read",
                .task_id = "task-7f3a",
                .owner = "ledger-team@example.com",
                .hops = child_hops,
                .n_hops = 1,
        };
        memcpy(c.cti, cti_child, sizeof(c.cti));
        return c;
}


/* A COSE_Sign1 over payload as agentidd makes one; claims NULL for a token. */
static void sign_cose(EVP_PKEY *key, const uint8_t *kid, size_t kid_size, const CoseClaims *claims,
                      const uint8_t *payload, size_t payload_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        uint8_t rs[COSE_ES256_SIG_SIZE];

        assert_int_equal(cose_sign1_prepare(kid, kid_size, claims, payload, payload_size, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, ret, ret_size), 0);
}

static void sign_token(EVP_PKEY *key, const uint8_t kid[TOKEN_KID_SIZE], const TokenClaims *c, uint8_t **ret,
                       size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;

        assert_int_equal(token_claims_encode(c, &payload, &payload_size), 0);
        sign_cose(key, kid, TOKEN_KID_SIZE, NULL, payload, payload_size, ret, ret_size);
}

/* The claims of c as an editable libcbor map. */
static cbor_item_t *claims_map(const TokenClaims *c) {
        static const CborLimits limits = { .max_size = TOKEN_MAX, .max_depth = 3, .max_items = 128,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        cbor_item_t *map = NULL;

        assert_int_equal(token_claims_encode(c, &payload, &payload_size), 0);
        assert_int_equal(cbor_util_decode(payload, payload_size, &limits, &map, NULL), 0);
        return map;
}

/* Sign an edited claims map (consumed) as the payload of a token by the root key. */
static void sign_map(cbor_item_t *map, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;

        assert_int_equal(cbor_util_encode(map, &payload, &payload_size), 0);
        cbor_decref(&map);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, payload, payload_size, ret, ret_size);
}

static cbor_item_t *hop_item(const char *iss, const uint8_t *cti, size_t cti_size, const uint8_t *kid, size_t kid_size) {
        cbor_item_t *hop = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(hop, cbor_util_new_text(iss)), 0);
        assert_int_equal(cbor_util_array_push(hop, cbor_util_new_bytes(cti, cti_size)), 0);
        assert_int_equal(cbor_util_array_push(hop, cbor_util_new_bytes(kid, kid_size)), 0);
        return hop;
}

static void assert_bytes_golden(const char *vector, const uint8_t *got, size_t got_size) {
        _cleanup_free_ uint8_t *golden = NULL;
        size_t golden_size = 0;

        assert_int_equal(golden_load(vector, &golden, &golden_size), 0);
        if (got_size != golden_size || memcmp(got, golden, got_size) != 0) {
                _cleanup_free_ char *h = hex_encode(got, got_size);
                fail_msg("docs/formats.md golden:%s differs; the code gives %s", vector, h);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Verdict helpers */

static AgentidVerifier *verifier_at(uint64_t now) {
        AgentidVerifier *v = agentid_verifier_new();
        assert_non_null(v);
        assert_int_equal(agentid_verifier_set_now(v, now), 0);
        return v;
}

/* The verdict's invariants, and its reason. */
static void assert_reason(const AgentidVerdict *d, AgentidReason expected) {
        AgentidReason reason = agentid_verdict_reason(d);
        bool seen_failure = false;

        if (reason != expected) {
                for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                        const char *name, *detail;
                        bool ok;
                        assert_int_equal(agentid_verdict_get_check(d, i, NULL, &name, &ok, &detail), 0);
                        print_message("  %s %s: %s\n", ok ? "ok  " : "FAIL", name, detail);
                }
                fail_msg("reason %s (%d), expected %s (%d)", agentid_reason_to_string(reason), reason,
                         agentid_reason_to_string(expected), expected);
        }
        assert_int_equal(agentid_verdict_is_valid(d), expected == AGENTID_REASON_VALID);
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason r;
                bool ok;
                const char *name, *detail;
                assert_int_equal(agentid_verdict_get_check(d, i, &r, &name, &ok, &detail), 0);
                assert_string_equal(name, agentid_reason_to_string(r));
                assert_true(strlen(detail) > 0);
                if (!ok && !seen_failure) {
                        assert_int_equal(r, expected);
                        seen_failure = true;
                }
        }
        assert_int_equal(seen_failure, expected != AGENTID_REASON_VALID);
}

static AgentidVerdict *verify_token_as(const AgentidVerifier *v, const uint8_t *t, size_t n, const uint8_t *spki,
                                       size_t spki_size, const uint8_t *kid, const char *aud) {
        AgentidVerdict *d = NULL;
        assert_int_equal(agentid_verify_token(v, t, n, spki, spki_size, kid, aud, &d), 0);
        assert_non_null(d);
        assert_int_equal(agentid_verdict_n_checks(d), 8);
        assert_null(agentid_verdict_get_claims(d));
        assert_null(agentid_verdict_get_platform(d));
        assert_null(agentid_verdict_get_message(d));
        assert_true((agentid_verdict_get_token(d) != NULL) == agentid_verdict_is_valid(d));
        return d;
}

/* A root-key token verified at T0 + 10 for ledger-api, expecting kid 000b 22..: its reason. */
static void expect_token(const uint8_t *t, size_t n, AgentidReason expected) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_as(v, t, n, k.spki, k.spki_size, k.kid,
                                                                             "ledger-api");
        assert_reason(d, expected);
}

static void expect_map(cbor_item_t *map, AgentidReason expected) {
        _cleanup_free_ uint8_t *t = NULL;
        size_t n = 0;
        sign_map(map, &t, &n);
        expect_token(t, n, expected);
}

/* ------------------------------------------------------------------------------------------------ */
/* Scope */

static void test_scope_valid(void **state) {
        char many[40 * 4], big[TOKEN_SCOPE_MAX + 2];
        size_t off = 0;

        assert_true(token_scope_is_valid("a"));
        assert_true(token_scope_is_valid("invoices:read invoices:pay"));
        assert_true(token_scope_is_valid("!#[]~ x"));       /* the edges of RFC 6749 §3.3 */

        assert_false(token_scope_is_valid(NULL));
        assert_false(token_scope_is_valid(""));
        assert_false(token_scope_is_valid(" a"));
        assert_false(token_scope_is_valid("a "));
        assert_false(token_scope_is_valid("a  b"));         /* double space */
        assert_false(token_scope_is_valid("a b a"));        /* a token twice */
        assert_false(token_scope_is_valid("read read"));
        assert_false(token_scope_is_valid("a\"b"));         /* quote */
        assert_false(token_scope_is_valid("a\\b"));         /* backslash */
        assert_false(token_scope_is_valid("a\tb"));
        assert_false(token_scope_is_valid("caf\xc3\xa9"));  /* not ASCII */
        assert_false(token_scope_is_valid("a\x7f"));

        /* 32 tokens: fine; 33: too many. */
        for (int i = 0; i < 33; i++)
                off += (size_t) snprintf(many + off, sizeof(many) - off, "%ss%02d", i ? " " : "", i);
        assert_false(token_scope_is_valid(many));
        many[off - 4] = 0;
        assert_true(token_scope_is_valid(many));

        /* TOKEN_SCOPE_MAX bytes in one token: fine; one more: too long. */
        memset(big, 'x', sizeof(big));
        big[TOKEN_SCOPE_MAX] = 0;
        assert_true(token_scope_is_valid(big));
        big[TOKEN_SCOPE_MAX] = 'x';
        big[TOKEN_SCOPE_MAX + 1] = 0;
        assert_false(token_scope_is_valid(big));
}

static void test_scope_subset(void **state) {
        assert_true(token_scope_is_subset(NULL, NULL));
        assert_true(token_scope_is_subset(NULL, "a"));
        assert_false(token_scope_is_subset("a", NULL));
        assert_true(token_scope_is_subset("a", "a"));
        assert_true(token_scope_is_subset("b", "a b c"));
        assert_true(token_scope_is_subset("c a", "a b c"));
        assert_true(token_scope_is_subset("a b c", "c b a"));
        assert_false(token_scope_is_subset("a d", "a b c"));
        assert_false(token_scope_is_subset("ab", "a b"));   /* whole tokens, not prefixes */
        assert_false(token_scope_is_subset("a", "ab"));
        assert_false(token_scope_is_subset("invoices", "invoices:read"));
        /* Invalid strings are subsets of nothing and have no subsets. */
        assert_false(token_scope_is_subset("a  b", "a b"));
        assert_false(token_scope_is_subset("a", "a a"));
        assert_false(token_scope_is_subset("", "a"));
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoding */

static void test_golden(void **state) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_free_ uint8_t *root = NULL, *child = NULL, *token = NULL;
        size_t root_size = 0, child_size = 0, token_size = 0;
        uint8_t standin[COSE_ES256_SIG_SIZE];
        TokenClaims rc = root_claims(), cc = child_claims();

        assert_int_equal(token_claims_encode(&rc, &root, &root_size), 0);
        assert_bytes_golden("token-claims", root, root_size);
        assert_int_equal(token_claims_encode(&cc, &child, &child_size), 0);
        assert_bytes_golden("token-claims-delegated", child, child_size);

        /* The envelope around the root claims, with the stand-in signature of §3. */
        memset(standin, 0x5a, sizeof(standin));
        assert_int_equal(cose_sign1_prepare(k.kid, TOKEN_KID_SIZE, NULL, root, root_size, &c), 0);
        assert_int_equal(cose_sign1_finish(c, standin, &token, &token_size), 0);
        assert_bytes_golden("token-cose-sign1", token, token_size);
        assert_int_equal(cose_sign1_parse(token, token_size, &p, NULL), 0);
        assert_bytes_golden("token-protected", p.protected, p.protected_size);
        assert_null(p.claims);

        /* The golden token parses as what it is. */
        uint8_t kid[TOKEN_KID_SIZE];
        assert_int_equal(token_peek_kid(token, token_size, kid, NULL), 0);
        assert_memory_equal(kid, k.kid, TOKEN_KID_SIZE);
}

static void test_encode_refuses(void **state) {
        char long_text[TOKEN_TEXT_MAX + 2];
        TokenHop hops[TOKEN_HOPS_MAX + 1];
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        TokenClaims c;

        memset(long_text, 'o', sizeof(long_text));
        long_text[TOKEN_TEXT_MAX + 1] = 0;
        for (size_t i = 0; i < ELEMENTSOF(hops); i++) {
                hops[i] = (TokenHop) { .iss = ISS_ROOT };
                memset(hops[i].cti, (int) i + 1, TOKEN_CTI_SIZE);
                kid_fill(hops[i].kid, 0x22);
        }

#define REFUSED(edit)                                                                   \
        do {                                                                            \
                c = root_claims();                                                      \
                edit;                                                                   \
                assert_int_equal(token_claims_encode(&c, &buf, &size), -EINVAL);       \
                assert_null(buf);                                                       \
        } while (0)

        REFUSED(c.iss = NULL);
        REFUSED(c.iss = "");
        REFUSED(c.aud = NULL);
        REFUSED(c.task_id = NULL);
        REFUSED(c.owner = NULL);
        REFUSED(c.owner = long_text);
        REFUSED(c.parent_task_id = "");
        REFUSED(c.task_id = "t\xff");                       /* not UTF-8 */
        REFUSED(c.scope = "a  b");
        REFUSED(c.scope = "a a");
        REFUSED(c.scope = "");
        REFUSED(c.nbf = c.exp + 1);
        REFUSED(c.iat = c.exp + 1);
        REFUSED({ c.hops = hops; c.n_hops = TOKEN_HOPS_MAX + 1; });
        REFUSED(c.n_hops = 1);                              /* hops NULL */
        REFUSED({ c.hops = hops; c.n_hops = 2; hops[1].iss = ""; });
        hops[1].iss = ISS_ROOT;
        REFUSED({ c.hops = hops; c.n_hops = 2; hops[1].kid[1] = 0x0c; });
        hops[1].kid[1] = 0x0b;
        REFUSED({ c.credential = (const uint8_t *) "junk"; c.credential_size = 4; });
        REFUSED({ c.credential = (const uint8_t *) "junk"; c.credential_size = 0; });
        REFUSED(c.credential_size = 10);
#undef REFUSED

        /* Large texts and a credential of 4 KiB fit; with eight long hops and a long scope too, the
         * token would exceed TOKEN_MAX. */
        _cleanup_free_ uint8_t *cred = NULL, *big = malloc(TOKEN_CREDENTIAL_MAX);
        size_t cred_size = 0;
        assert_non_null(big);
        memset(big, 0x77, TOKEN_CREDENTIAL_MAX);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, big, TOKEN_CREDENTIAL_MAX - 150, &cred, &cred_size);
        assert_true(cred_size <= TOKEN_CREDENTIAL_MAX);
        long_text[TOKEN_TEXT_MAX] = 0;
        c = root_claims();
        c.aud = c.owner = c.task_id = c.parent_task_id = long_text;
        c.credential = cred;
        c.credential_size = cred_size;
        assert_int_equal(token_claims_encode(&c, &buf, &size), 0);      /* still fits */
        free(buf);
        buf = NULL;
        char scope[TOKEN_SCOPE_MAX + 1];
        size_t off = 0;
        for (int i = 0; i < (int) TOKEN_SCOPES_MAX; i++)
                off += (size_t) snprintf(scope + off, sizeof(scope) - off, "%sscope-%02d-xxxxxxxxxxxxxxxxxxxxx", i ? " " : "", i);
        assert_true(token_scope_is_valid(scope));
        c.scope = scope;
        c.hops = hops;
        c.n_hops = TOKEN_HOPS_MAX;
        for (size_t i = 0; i < TOKEN_HOPS_MAX; i++)
                hops[i].iss = long_text;
        assert_int_equal(token_claims_encode(&c, &buf, &size), -EINVAL);

        assert_int_equal(token_claims_encode(NULL, &buf, &size), -EINVAL);
        c = root_claims();
        assert_int_equal(token_claims_encode(&c, NULL, &size), -EINVAL);
}

/* Encode, sign, verify, compare every field, and re-encode to the same bytes. */
static void roundtrip(const TokenClaims *c) {
        _cleanup_(token_verified_freep) TokenVerified *t = NULL;
        _cleanup_free_ uint8_t *payload = NULL, *token = NULL, *again = NULL;
        size_t payload_size = 0, token_size = 0, again_size = 0;
        const char *why = NULL;

        assert_int_equal(token_claims_encode(c, &payload, &payload_size), 0);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, payload, payload_size, &token, &token_size);
        assert_true(token_size <= TOKEN_MAX);
        if (token_verify(token, token_size, k.key, &t, &why) != 0)
                fail_msg("token_verify: %s", why);

        const TokenClaims *d = &t->claims;
        assert_string_equal(d->iss, c->iss);
        assert_string_equal(d->aud, c->aud);
        assert_int_equal(d->exp, c->exp);
        assert_int_equal(d->nbf, c->nbf);
        assert_int_equal(d->iat, c->iat);
        assert_memory_equal(d->cti, c->cti, TOKEN_CTI_SIZE);
        assert_true(streq_ptr(d->scope, c->scope));
        assert_string_equal(d->task_id, c->task_id);
        assert_true(streq_ptr(d->parent_task_id, c->parent_task_id));
        assert_string_equal(d->owner, c->owner);
        assert_int_equal(d->n_hops, c->n_hops);
        for (size_t i = 0; i < c->n_hops; i++) {
                assert_string_equal(d->hops[i].iss, c->hops[i].iss);
                assert_memory_equal(d->hops[i].cti, c->hops[i].cti, TOKEN_CTI_SIZE);
                assert_memory_equal(d->hops[i].kid, c->hops[i].kid, TOKEN_KID_SIZE);
        }
        assert_int_equal(d->credential_size, c->credential_size);
        assert_true((d->credential != NULL) == (c->credential != NULL));
        if (c->credential)
                assert_memory_equal(d->credential, c->credential, c->credential_size);
        assert_memory_equal(t->kid, k.kid, TOKEN_KID_SIZE);

        assert_int_equal(token_claims_encode(d, &again, &again_size), 0);
        assert_int_equal(again_size, payload_size);
        assert_memory_equal(again, payload, payload_size);
}

static void test_roundtrip(void **state) {
        _cleanup_free_ uint8_t *cred = NULL;
        size_t cred_size = 0;
        char long_text[TOKEN_TEXT_MAX + 1];
        TokenHop hops[TOKEN_HOPS_MAX];
        TokenClaims c;

        c = root_claims();
        roundtrip(&c);
        c = child_claims();
        roundtrip(&c);

        /* Optional claims absent; extreme times. */
        c = root_claims();
        c.scope = NULL;
        c.nbf = c.iat = 0;
        c.exp = UINT64_MAX;
        roundtrip(&c);
        c.nbf = c.iat = c.exp = 0;
        roundtrip(&c);

        /* Everything at its largest, UTF-8 texts, a credential (a task key's token). */
        memset(long_text, 'x', TOKEN_TEXT_MAX);
        long_text[TOKEN_TEXT_MAX] = 0;
        for (size_t i = 0; i < TOKEN_HOPS_MAX; i++) {
                hops[i] = (TokenHop) { .iss = i % 2 ? ISS_ROOT : "agentid://" HOST "/t\xc3\xa2" "che" };
                memset(hops[i].cti, 0xa0 + (int) i, TOKEN_CTI_SIZE);
                kid_fill(hops[i].kid, (uint8_t) (0x30 + i));
        }
        const CoseClaims cc = { .iat = T0 };
        sign_cose(k.child_key, k.child_kid, TOKEN_KID_SIZE, &cc, (const uint8_t *) "{}", 2, &cred, &cred_size);
        c = root_claims();
        c.aud = long_text;
        c.parent_task_id = "parent-\xe2\x9c\x93";
        c.owner = "\xc3\xa9quipe finance";
        c.hops = hops;
        c.n_hops = TOKEN_HOPS_MAX;
        c.credential = cred;
        c.credential_size = cred_size;
        roundtrip(&c);
}

/* ------------------------------------------------------------------------------------------------ */
/* token.c on its own */

static void test_peek_and_verify_errors(void **state) {
        _cleanup_free_ uint8_t *token = NULL, *msg = NULL, *big = NULL, *short_kid = NULL;
        size_t token_size = 0, msg_size = 0, big_size = 0, short_kid_size = 0;
        uint8_t kid[TOKEN_KID_SIZE];
        const char *why = NULL;
        TokenVerified *t = NULL;
        TokenClaims c = root_claims();

        sign_token(k.key, k.kid, &c, &token, &token_size);
        assert_int_equal(token_peek_kid(token, token_size, kid, &why), 0);
        assert_memory_equal(kid, k.kid, TOKEN_KID_SIZE);
        assert_null(why);

        /* Bad arguments. */
        assert_int_equal(token_peek_kid(NULL, 5, kid, NULL), -EINVAL);
        assert_int_equal(token_peek_kid(token, token_size, NULL, NULL), -EINVAL);
        assert_int_equal(token_verify(token, token_size, NULL, &t, NULL), -EINVAL);
        assert_int_equal(token_verify(token, token_size, k.key, NULL, NULL), -EINVAL);

        /* Not a token: empty, a signed message, too big. */
        assert_int_equal(token_peek_kid(NULL, 0, kid, &why), -EBADMSG);
        assert_non_null(why);
        const CoseClaims claims = { .iat = T0, .aud = "ledger-api" };
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, &claims, (const uint8_t *) "x", 1, &msg, &msg_size);
        why = NULL;
        assert_int_equal(token_peek_kid(msg, msg_size, kid, &why), -EBADMSG);
        assert_non_null(strstr(why, "label 15"));
        assert_int_equal(token_verify(msg, msg_size, k.key, &t, NULL), -EBADMSG);

        _cleanup_free_ uint8_t *zeros = calloc(1, TOKEN_MAX);
        assert_non_null(zeros);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, zeros, TOKEN_MAX, &big, &big_size);
        assert_int_equal(token_peek_kid(big, big_size, kid, NULL), -E2BIG);
        assert_int_equal(token_verify(big, big_size, k.key, &t, NULL), -E2BIG);

        uint8_t kid33[33];
        memcpy(kid33, k.kid, sizeof(kid33));
        sign_cose(k.key, kid33, sizeof(kid33), NULL, (const uint8_t *) "x", 1, &short_kid, &short_kid_size);
        why = NULL;
        assert_int_equal(token_peek_kid(short_kid, short_kid_size, kid, &why), -EBADMSG);
        assert_non_null(strstr(why, "kid"));

        /* The signature is checked before the claims: a bad payload signed by another key is a bad
         * signature, the same payload signed by the key is bad claims. */
        free(token);
        sign_cose(k.other, k.kid, TOKEN_KID_SIZE, NULL, (const uint8_t *) "x", 1, &token, &token_size);
        assert_int_equal(token_peek_kid(token, token_size, kid, NULL), 0);
        assert_int_equal(token_verify(token, token_size, k.key, &t, NULL), -EKEYREJECTED);
        free(token);
        token = NULL;
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, (const uint8_t *) "x", 1, &token, &token_size);
        why = NULL;
        assert_int_equal(token_verify(token, token_size, k.key, &t, &why), -EBADMSG);
        assert_non_null(why);
        assert_null(t);

        /* A key that is not P-256. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_EC_gen("P-384");
        assert_non_null(p384);
        free(token);
        token = NULL;
        sign_token(k.key, k.kid, &c, &token, &token_size);
        assert_int_equal(token_verify(token, token_size, p384, &t, NULL), -EINVAL);
        assert_null(t);
}

/* Every single-byte change and every truncation of a valid token is refused. */
static void test_every_flip(void **state) {
        _cleanup_free_ uint8_t *token = NULL;
        size_t token_size = 0;
        TokenClaims c = child_claims();

        sign_token(k.key, k.kid, &c, &token, &token_size);
        for (size_t i = 0; i < token_size; i++)
                for (unsigned mask = 0x01; mask <= 0x80; mask <<= 3) {
                        TokenVerified *t = NULL;
                        token[i] ^= (uint8_t) mask;
                        int r = token_verify(token, token_size, k.key, &t, NULL);
                        if (r == 0)
                                fail_msg("byte %zu ^ %02x accepted", i, mask);
                        assert_true(r == -EBADMSG || r == -EKEYREJECTED);
                        token[i] ^= (uint8_t) mask;
                }
        for (size_t n = 0; n < token_size; n++) {
                TokenVerified *t = NULL;
                assert_int_not_equal(token_verify(token, n, k.key, &t, NULL), 0);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* agentid_verify_token() */

static void test_token_valid(void **state) {
        _cleanup_free_ uint8_t *root = NULL, *child = NULL;
        size_t root_size = 0, child_size = 0;
        TokenClaims rc = root_claims(), cc = child_claims();
        uint8_t spki_sha256[SHA256_DIGEST_SIZE];

        sign_token(k.key, k.kid, &rc, &root, &root_size);
        sign_token(k.child_key, k.child_kid, &cc, &child, &child_size);
        assert_int_equal(sha256(k.child_spki, k.child_spki_size, spki_sha256), 0);

        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 120);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_as(v, root, root_size, k.spki, k.spki_size,
                                                                             k.kid, "ledger-api");
        assert_reason(d, AGENTID_REASON_VALID);
        const AgentidToken *t = agentid_verdict_get_token(d);
        assert_string_equal(t->iss, ISS_ROOT);
        assert_string_equal(t->aud, "ledger-api");
        assert_int_equal(t->exp, T0 + 3600);
        assert_string_equal(t->scope, "invoices:read invoices:pay");
        assert_int_equal(t->n_hops, 0);
        assert_null(t->hops);
        assert_false(t->has_credential);

        /* The delegated token, with no kid expected. */
        _cleanup_(agentid_verdict_freep) AgentidVerdict *e = verify_token_as(v, child, child_size, k.child_spki,
                                                                             k.child_spki_size, NULL, "bank-api");
        assert_reason(e, AGENTID_REASON_VALID);
        t = agentid_verdict_get_token(e);
        assert_string_equal(t->iss, ISS_CHILD);
        assert_string_equal(t->task_id, "task-7f3a");
        assert_null(t->parent_task_id);
        assert_string_equal(t->owner, "ledger-team@example.com");
        assert_memory_equal(t->cti, cti_child, TOKEN_CTI_SIZE);
        assert_memory_equal(t->kid, k.child_kid, TOKEN_KID_SIZE);
        assert_memory_equal(t->spki_sha256, spki_sha256, SHA256_DIGEST_SIZE);
        assert_int_equal(t->n_hops, 1);
        assert_string_equal(t->hops[0].iss, ISS_ROOT);
        assert_memory_equal(t->hops[0].cti, cti_root, TOKEN_CTI_SIZE);
        assert_memory_equal(t->hops[0].kid, k.kid, TOKEN_KID_SIZE);

        /* The delegation rules of DESIGN §5 hold between the two golden tokens. */
        _cleanup_(agentid_verdict_freep) AgentidVerdict *p = verify_token_as(v, root, root_size, k.spki, k.spki_size,
                                                                             NULL, "ledger-api");
        const AgentidToken *parent = agentid_verdict_get_token(p);
        assert_string_equal(t->hops[0].iss, parent->iss);
        assert_memory_equal(t->hops[0].cti, parent->cti, TOKEN_CTI_SIZE);
        assert_memory_equal(t->hops[0].kid, parent->kid, TOKEN_KID_SIZE);
        assert_string_equal(t->task_id, parent->task_id);
        assert_true(token_scope_is_subset(t->scope, parent->scope));
        assert_true(t->exp <= parent->exp);
}

static void test_token_time(void **state) {
        _cleanup_free_ uint8_t *token = NULL;
        size_t size = 0;
        TokenClaims c = root_claims();
        const struct {
                uint64_t now;
                AgentidReason reason;
        } cases[] = {
                { T0 - AGENTID_MAX_CLOCK_SKEW - 1, AGENTID_REASON_TOKEN_NOT_BEFORE },
                { T0 - AGENTID_MAX_CLOCK_SKEW, AGENTID_REASON_VALID },
                { T0, AGENTID_REASON_VALID },
                { T0 + 3599, AGENTID_REASON_VALID },
                { T0 + 3600, AGENTID_REASON_TOKEN_EXPIRY },
                { T0 + 86400, AGENTID_REASON_TOKEN_EXPIRY },
        };

        sign_token(k.key, k.kid, &c, &token, &size);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(cases[i].now);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_as(v, token, size, k.spki, k.spki_size,
                                                                                     k.kid, "ledger-api");
                assert_reason(d, cases[i].reason);
        }

        /* The system clock: the golden token expired long ago. */
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_as(v, token, size, k.spki, k.spki_size, k.kid,
                                                                             "ledger-api");
        assert_reason(d, AGENTID_REASON_TOKEN_EXPIRY);
}

static void test_token_envelope_negative(void **state) {
        _cleanup_free_ uint8_t *good = NULL, *t = NULL;
        size_t good_size = 0, n = 0;
        TokenClaims c = root_claims();

        sign_token(k.key, k.kid, &c, &good, &good_size);
        expect_token(good, good_size, AGENTID_REASON_VALID);

        /* Signature: flipped in the signature, in the payload, or another key. */
        t = malloc(good_size + 8);
        assert_non_null(t);
        memcpy(t, good, good_size);
        t[good_size - 1] ^= 0x01;
        expect_token(t, good_size, AGENTID_REASON_TOKEN_SIGNATURE);
        memcpy(t, good, good_size);
        t[good_size - 66 - 10] ^= 0x01;                     /* inside the payload */
        expect_token(t, good_size, AGENTID_REASON_TOKEN_SIGNATURE);
        {
                _cleanup_free_ uint8_t *o = NULL;
                size_t on = 0;
                sign_token(k.other, k.kid, &c, &o, &on);
                expect_token(o, on, AGENTID_REASON_TOKEN_SIGNATURE);
        }

        /* Trailing bytes; indefinite array; the signature's length in a longer form. */
        memcpy(t, good, good_size);
        t[good_size] = 0x00;
        expect_token(t, good_size + 1, AGENTID_REASON_TOKEN_FORMAT);
        memcpy(t, good, good_size);
        assert_int_equal(t[1], 0x84);
        t[1] = 0x9f;
        t[good_size] = 0xff;
        expect_token(t, good_size + 1, AGENTID_REASON_TOKEN_FORMAT);
        memcpy(t, good, good_size - 66);
        assert_int_equal(t[good_size - 66], 0x58);
        t[good_size - 66] = 0x59;
        t[good_size - 65] = 0x00;
        t[good_size - 64] = 0x40;
        memcpy(t + good_size - 63, good + good_size - 64, 64);
        expect_token(t, good_size + 1, AGENTID_REASON_TOKEN_FORMAT);
        /* Untagged. */
        expect_token(good + 1, good_size - 1, AGENTID_REASON_TOKEN_FORMAT);
        expect_token(NULL, 0, AGENTID_REASON_TOKEN_FORMAT);
        free(t);
        t = NULL;

        /* Label 15: a signed message is not a token, even with token claims as its payload. */
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        const CoseClaims claims = { .iat = T0, .aud = "ledger-api" };
        assert_int_equal(token_claims_encode(&c, &payload, &payload_size), 0);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, &claims, payload, payload_size, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_FORMAT);
        free(t);
        t = NULL;

        /* kid: 33 bytes, 35 bytes, 34 bytes that are no SHA-256 Name. */
        uint8_t kid[TOKEN_KID_SIZE + 1];
        memcpy(kid, k.kid, TOKEN_KID_SIZE);
        kid[TOKEN_KID_SIZE] = 0x22;
        sign_cose(k.key, kid, TOKEN_KID_SIZE - 1, NULL, payload, payload_size, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_FORMAT);
        free(t);
        sign_cose(k.key, kid, TOKEN_KID_SIZE + 1, NULL, payload, payload_size, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_FORMAT);
        free(t);
        kid[1] = 0x0c;
        sign_cose(k.key, kid, TOKEN_KID_SIZE, NULL, payload, payload_size, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_FORMAT);
        free(t);
        t = NULL;

        /* Over TOKEN_MAX, whatever it holds. */
        _cleanup_free_ uint8_t *junk = calloc(1, TOKEN_MAX);
        assert_non_null(junk);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, junk, TOKEN_MAX - 100, &t, &n);
        assert_true(n > TOKEN_MAX);
        expect_token(t, n, AGENTID_REASON_TOKEN_FORMAT);
        free(t);
        t = NULL;

        /* The expected kid differs (the key is right). */
        {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d =
                        verify_token_as(v, good, good_size, k.spki, k.spki_size, k.child_kid, "ledger-api");
                assert_reason(d, AGENTID_REASON_TOKEN_KID);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *e =
                        verify_token_as(v, good, good_size, k.spki, k.spki_size, k.kid, "bank-api");
                assert_reason(e, AGENTID_REASON_TOKEN_AUDIENCE);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *f =
                        verify_token_as(v, good, good_size, k.spki, k.spki_size, k.kid, "ledger-ap");
                assert_reason(f, AGENTID_REASON_TOKEN_AUDIENCE);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *g =
                        verify_token_as(v, good, good_size, k.other_spki, k.other_spki_size, k.kid, "ledger-api");
                assert_reason(g, AGENTID_REASON_TOKEN_SIGNATURE);
                /* Nothing after a bad signature is looked at. */
                for (size_t i = 2; i < agentid_verdict_n_checks(g); i++) {
                        const char *detail;
                        bool ok;
                        assert_int_equal(agentid_verdict_get_check(g, i, NULL, NULL, &ok, &detail), 0);
                        assert_false(ok);
                        assert_non_null(strstr(detail, "not checked"));
                }
        }
}

static void test_token_claims_negative(void **state) {
        static const int64_t required_int[] = { CWT_ISS, CWT_SUB, CWT_AUD, CWT_EXP, CWT_NBF, CWT_IAT, CWT_CTI };
        static const char *const required_text[] = { "task_id", "owner" };
        TokenClaims c = root_claims();
        cbor_item_t *m;

        /* Missing claims. */
        for (size_t i = 0; i < ELEMENTSOF(required_int); i++) {
                m = claims_map(&c);
                fake_map_delete(&m, NULL, required_int[i]);
                expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        }
        for (size_t i = 0; i < ELEMENTSOF(required_text); i++) {
                m = claims_map(&c);
                fake_map_delete(&m, required_text[i], 0);
                expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        }

        /* Unknown claims: a registered one agentid does not use (cnf), and text keys. */
        m = claims_map(&c);
        fake_map_set(&m, NULL, 8, cbor_util_new_uint(1));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        m = claims_map(&c);
        fake_map_set(&m, "role", 0, cbor_util_new_text("admin"));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        m = claims_map(&c);
        fake_map_set(&m, NULL, -1, cbor_util_new_uint(1));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);

        /* Wrong types and sizes. */
        struct {
                const char *text_key;
                int64_t int_key;
                cbor_item_t *value;
        } wrong[] = {
                { NULL, CWT_ISS, cbor_util_new_bytes(ISS_ROOT, strlen(ISS_ROOT)) },
                { NULL, CWT_AUD, cbor_util_new_array() },
                { NULL, CWT_AUD, cbor_util_new_text("") },
                { NULL, CWT_EXP, cbor_util_new_text("1764003600") },
                { NULL, CWT_EXP, cbor_util_new_int(-1) },
                { NULL, CWT_NBF, cbor_util_new_bytes("x", 1) },
                { NULL, CWT_IAT, cbor_util_new_map() },
                { NULL, CWT_CTI, cbor_util_new_bytes(cti_root, 15) },
                { NULL, CWT_CTI, cbor_util_new_bytes(cti_root, 0) },
                { NULL, CWT_CTI, cbor_util_new_text("0123456789abcdef") },
                { NULL, CWT_SCOPE, cbor_util_new_array() },
                { NULL, CWT_SCOPE, cbor_util_new_text("invoices:read  invoices:pay") },    /* double space */
                { NULL, CWT_SCOPE, cbor_util_new_text("invoices:read invoices:read") },    /* token twice */
                { NULL, CWT_SCOPE, cbor_util_new_text("invoices:\"read\"") },             /* quote */
                { NULL, CWT_SCOPE, cbor_util_new_text("") },
                { "task_id", 0, cbor_util_new_text("") },
                { "task_id", 0, cbor_util_new_uint(7) },
                { "owner", 0, cbor_util_new_textn("owner\0x", 7) },                         /* NUL inside */
                { "parent_task_id", 0, cbor_util_new_bytes("p", 1) },
                { "hops", 0, cbor_util_new_map() },
                { "hops", 0, cbor_util_new_array() },                                      /* empty */
                { "credential", 0, cbor_util_new_text("x") },
                { "credential", 0, cbor_util_new_bytes("\xd2\x84", 2) },
        };
        for (size_t i = 0; i < ELEMENTSOF(wrong); i++) {
                m = claims_map(&c);
                assert_non_null(wrong[i].value);
                fake_map_set(&m, wrong[i].text_key, wrong[i].int_key, wrong[i].value);
                expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        }
        m = claims_map(&c);
        {
                char owner[TOKEN_TEXT_MAX + 2];
                memset(owner, 'o', sizeof(owner));
                owner[TOKEN_TEXT_MAX + 1] = 0;
                fake_map_set(&m, "owner", 0, cbor_util_new_text(owner));
        }
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);

        /* iss = sub, nbf <= exp, iat <= exp. */
        m = claims_map(&c);
        fake_map_set(&m, NULL, CWT_SUB, cbor_util_new_text(ISS_CHILD));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        m = claims_map(&c);
        fake_map_set(&m, NULL, CWT_NBF, cbor_util_new_uint(c.exp + 1));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        m = claims_map(&c);
        fake_map_set(&m, NULL, CWT_IAT, cbor_util_new_uint(c.exp + 1));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);

        /* iss and sub agree but are no agent URI. */
        m = claims_map(&c);
        fake_map_set(&m, NULL, CWT_ISS, cbor_util_new_text("https://example.com/bot"));
        fake_map_set(&m, NULL, CWT_SUB, cbor_util_new_text("https://example.com/bot"));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        m = claims_map(&c);
        fake_map_set(&m, NULL, CWT_ISS, cbor_util_new_text("agentid://" HOST "/Invoice-Bot"));
        fake_map_set(&m, NULL, CWT_SUB, cbor_util_new_text("agentid://" HOST "/Invoice-Bot"));
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);

        /* Not deterministic inside the payload: exp in a longer form, the map indefinite. */
        _cleanup_free_ uint8_t *payload = NULL, *t = NULL;
        size_t payload_size = 0, n = 0;
        static const uint8_t exp_short[] = { 0x04, 0x1a, 0x69, 0x24, 0x8f, 0x10 };
        assert_int_equal(token_claims_encode(&c, &payload, &payload_size), 0);
        uint8_t *at = memmem(payload, payload_size, exp_short, sizeof(exp_short));
        assert_non_null(at);
        _cleanup_free_ uint8_t *longer = malloc(payload_size + 4);
        assert_non_null(longer);
        size_t off = (size_t) (at - payload);
        memcpy(longer, payload, off);
        memcpy(longer + off, (const uint8_t[]) { 0x04, 0x1b, 0, 0, 0, 0, 0x69, 0x24, 0x8f, 0x10 }, 10);
        memcpy(longer + off + 10, payload + off + sizeof(exp_short), payload_size - off - sizeof(exp_short));
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, longer, payload_size + 4, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_CLAIMS);
        free(t);
        t = NULL;

        _cleanup_free_ uint8_t *indefinite = malloc(payload_size + 1);
        assert_non_null(indefinite);
        memcpy(indefinite, payload, payload_size);
        assert_true((indefinite[0] & 0xe0) == 0xa0);
        indefinite[0] = 0xbf;
        indefinite[payload_size] = 0xff;
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, indefinite, payload_size + 1, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_CLAIMS);
        free(t);
        t = NULL;

        /* Trailing bytes after the claims map; a payload that is no map. */
        memcpy(indefinite, payload, payload_size);
        indefinite[payload_size] = 0x00;
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, indefinite, payload_size + 1, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_CLAIMS);
        free(t);
        t = NULL;
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, (const uint8_t *) "\x80", 1, &t, &n);
        expect_token(t, n, AGENTID_REASON_TOKEN_CLAIMS);
}

static void test_token_hops_negative(void **state) {
        TokenClaims c = root_claims();
        uint8_t kid33[TOKEN_KID_SIZE];
        cbor_item_t *m, *hops;

        kid_fill(kid33, 0x22);

        /* Nine hops: more than a chain may have (checked with the claims). */
        m = claims_map(&c);
        hops = cbor_util_new_array();
        for (int i = 0; i < (int) TOKEN_HOPS_MAX + 1; i++) {
                uint8_t cti[TOKEN_CTI_SIZE];
                memset(cti, 0x80 + i, sizeof(cti));
                assert_int_equal(cbor_util_array_push(hops, hop_item(ISS_CHILD, cti, sizeof(cti), k.kid, TOKEN_KID_SIZE)), 0);
        }
        fake_map_set(&m, "hops", 0, hops);
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);

        /* Malformed hops. */
        cbor_item_t *bad_hops[] = {
                hop_item(ISS_CHILD, cti_child, 15, k.kid, TOKEN_KID_SIZE),
                hop_item(ISS_CHILD, cti_child, TOKEN_CTI_SIZE, k.kid, 33),
                hop_item(ISS_CHILD, cti_child, TOKEN_CTI_SIZE, (const uint8_t *) "\x00\x0c" "0123456789abcdef0123456789abcdef", TOKEN_KID_SIZE),
                hop_item("", cti_child, TOKEN_CTI_SIZE, k.kid, TOKEN_KID_SIZE),
                cbor_util_new_array(),
                cbor_util_new_text(ISS_CHILD),
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_hops); i++) {
                m = claims_map(&c);
                hops = cbor_util_new_array();
                assert_int_equal(cbor_util_array_push(hops, bad_hops[i]), 0);
                fake_map_set(&m, "hops", 0, hops);
                expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);
        }
        /* A hop of four. */
        m = claims_map(&c);
        hops = cbor_util_new_array();
        cbor_item_t *four = hop_item(ISS_CHILD, cti_child, TOKEN_CTI_SIZE, k.kid, TOKEN_KID_SIZE);
        assert_int_equal(cbor_util_array_push(four, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_array_push(hops, four), 0);
        fake_map_set(&m, "hops", 0, hops);
        expect_map(m, AGENTID_REASON_TOKEN_CLAIMS);

        /* Well-formed, but the chain is not: an issuer that is no agent URI, a cti twice, the
         * token's own cti. */
        m = claims_map(&c);
        hops = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(hops, hop_item("https://example.com", cti_child, TOKEN_CTI_SIZE, k.kid, TOKEN_KID_SIZE)), 0);
        fake_map_set(&m, "hops", 0, hops);
        expect_map(m, AGENTID_REASON_TOKEN_HOPS);
        m = claims_map(&c);
        hops = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(hops, hop_item(ISS_CHILD, cti_child, TOKEN_CTI_SIZE, k.kid, TOKEN_KID_SIZE)), 0);
        assert_int_equal(cbor_util_array_push(hops, hop_item(ISS_CHILD, cti_child, TOKEN_CTI_SIZE, kid33, TOKEN_KID_SIZE)), 0);
        fake_map_set(&m, "hops", 0, hops);
        expect_map(m, AGENTID_REASON_TOKEN_HOPS);
        m = claims_map(&c);
        hops = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(hops, hop_item(ISS_CHILD, cti_root, TOKEN_CTI_SIZE, k.kid, TOKEN_KID_SIZE)), 0);
        fake_map_set(&m, "hops", 0, hops);
        expect_map(m, AGENTID_REASON_TOKEN_HOPS);

        /* Eight hops are fine. */
        m = claims_map(&c);
        hops = cbor_util_new_array();
        for (int i = 0; i < (int) TOKEN_HOPS_MAX; i++) {
                uint8_t cti[TOKEN_CTI_SIZE];
                memset(cti, 0x80 + i, sizeof(cti));
                assert_int_equal(cbor_util_array_push(hops, hop_item(ISS_CHILD, cti, sizeof(cti), k.kid, TOKEN_KID_SIZE)), 0);
        }
        fake_map_set(&m, "hops", 0, hops);
        expect_map(m, AGENTID_REASON_VALID);
}

/* A token carrying a task credential is followed to the agent key (formats.md §12; the valid chain and
 * every refusal are in tests/unit/test-task-credential.c). Here the claim is a COSE_Sign1 but no task
 * credential (label 15, no claims), so the verdict has the 13 task-token checks and fails
 * credential_format; nothing is handed out. */
static void test_token_credential(void **state) {
        _cleanup_free_ uint8_t *cred = NULL, *t = NULL;
        size_t cred_size = 0, n = 0;
        const CoseClaims cc = { .iat = T0 };
        TokenClaims c = root_claims();

        sign_cose(k.child_key, k.child_kid, TOKEN_KID_SIZE, &cc, (const uint8_t *) "cred", 4, &cred, &cred_size);
        c.credential = cred;
        c.credential_size = cred_size;
        sign_token(k.key, k.kid, &c, &t, &n);

        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        assert_int_equal(agentid_verify_token(v, t, n, k.spki, k.spki_size, k.kid, "ledger-api", &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 13);
        assert_reason(d, AGENTID_REASON_CREDENTIAL_FORMAT);
        assert_null(agentid_verdict_get_token(d));
}

static void test_token_api(void **state) {
        _cleanup_free_ uint8_t *t = NULL, *spki_trailing = NULL, *p384_spki = NULL;
        size_t n = 0, p384_size = 0;
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_EC_gen("P-384");
        AgentidVerdict *d = NULL;
        TokenClaims c = root_claims();

        sign_token(k.key, k.kid, &c, &t, &n);
        assert_int_equal(agentid_verify_token(NULL, t, n, k.spki, k.spki_size, NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_token(v, NULL, n, k.spki, k.spki_size, NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_token(v, t, n, NULL, k.spki_size, NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_token(v, t, n, k.spki, 0, NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_token(v, t, n, k.spki, k.spki_size, NULL, NULL, &d), -EINVAL);
        assert_int_equal(agentid_verify_token(v, t, n, k.spki, k.spki_size, NULL, "", &d), -EINVAL);
        assert_int_equal(agentid_verify_token(v, t, n, k.spki, k.spki_size, NULL, "a", NULL), -EINVAL);
        assert_int_equal(agentid_verify_token(v, t, n, k.spki, k.spki_size - 1, NULL, "a", &d), -EINVAL);
        spki_trailing = malloc(k.spki_size + 1);
        assert_non_null(spki_trailing);
        memcpy(spki_trailing, k.spki, k.spki_size);
        spki_trailing[k.spki_size] = 0;
        assert_int_equal(agentid_verify_token(v, t, n, spki_trailing, k.spki_size + 1, NULL, "a", &d), -EINVAL);
        /* The canonical form with a point off the curve (the fast path of spki_key_load()). */
        memcpy(spki_trailing, k.spki, k.spki_size);
        spki_trailing[k.spki_size - 1] ^= 0x01;
        assert_int_equal(agentid_verify_token(v, t, n, spki_trailing, k.spki_size, NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_message(v, t, n, spki_trailing, k.spki_size, NULL, NULL, &d), -EINVAL);
        /* The point at infinity (review finding): d2i_PUBKEY() takes it, and with it every ECDSA
         * signature verifies (s = 1, r = x(e·G) needs no private key). It is no key. */
        static const uint8_t infinity[] = {
                0x30, 0x19, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x02, 0x00, 0x00,
        };
        assert_int_equal(agentid_verify_token(v, t, n, infinity, sizeof(infinity), NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_message(v, t, n, infinity, sizeof(infinity), NULL, NULL, &d), -EINVAL);
        EVP_PKEY *inf_pkey = NULL;
        assert_int_equal(pkey_from_pem_or_der(infinity, sizeof(infinity), &inf_pkey), -EINVAL);
        assert_null(inf_pkey);
        assert_non_null(p384);
        assert_int_equal(pkey_to_spki_der(p384, &p384_spki, &p384_size), 0);
        assert_int_equal(agentid_verify_token(v, t, n, p384_spki, p384_size, NULL, "a", &d), -EINVAL);
        assert_int_equal(agentid_verify_message(v, t, n, p384_spki, p384_size, NULL, NULL, &d), -EINVAL);
        assert_int_equal(agentid_verify_message(v, t, n, k.spki, k.spki_size, NULL, "", &d), -EINVAL);
        assert_null(d);

        /* Names of the new codes, and accessors of the wrong kind. */
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_TOKEN_FORMAT), "token_format");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_TOKEN_HOPS), "token_hops");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_MESSAGE_FORMAT), "message_format");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_MESSAGE_FRESHNESS), "message_freshness");
        assert_null(agentid_verdict_get_token(NULL));
        assert_null(agentid_verdict_get_message(NULL));

        /* An evidence verdict has no token, a token verdict no evidence claims. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = fake_key_from_seed("agentid token test: AK");
        _cleanup_free_ uint8_t *ev = NULL, *ak_pub = NULL;
        size_t ev_size = 0, ak_size = 0;
        FakeSpec spec;
        assert_non_null(ak);
        fake_spec_default(&spec, false, ak, k.key);
        assert_int_equal(fake_evidence_build(&spec, &ev, &ev_size), 0);
        assert_int_equal(fake_ak_public_bytes(ak, &ak_pub, &ak_size), 0);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak_pub, ak_size), 0);
        assert_int_equal(agentid_verify_evidence(v, ev, ev_size, spec.nonce, spec.nonce_size, &d), 0);
        assert_true(agentid_verdict_is_valid(d));
        assert_non_null(agentid_verdict_get_claims(d));
        assert_null(agentid_verdict_get_token(d));
        assert_null(agentid_verdict_get_message(d));
        d = agentid_verdict_free(d);
}

/* ------------------------------------------------------------------------------------------------ */
/* agentid_verify_message() */

static AgentidVerdict *verify_message_as(uint64_t now, uint64_t max_age, const uint8_t *msg, size_t size,
                                         const uint8_t *spki, size_t spki_size, const uint8_t *kid, const char *aud) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(now);
        AgentidVerdict *d = NULL;

        if (max_age > 0)
                assert_int_equal(agentid_verifier_set_max_age(v, max_age), 0);
        assert_int_equal(agentid_verify_message(v, msg, size, spki, spki_size, kid, aud, &d), 0);
        assert_non_null(d);
        assert_int_equal(agentid_verdict_n_checks(d), 5);
        assert_null(agentid_verdict_get_token(d));
        assert_null(agentid_verdict_get_claims(d));
        assert_true((agentid_verdict_get_message(d) != NULL) == agentid_verdict_is_valid(d));
        return d;
}

static void expect_message(uint64_t now, const uint8_t *msg, size_t size, const uint8_t *kid, const char *aud,
                           AgentidReason expected) {
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_message_as(now, 0, msg, size, k.spki, k.spki_size,
                                                                               kid, aud);
        assert_reason(d, expected);
}

static void test_message(void **state) {
        static const uint8_t payload[] = "pay invoice 42";
        const CoseClaims claims = { .iat = T0, .aud = "ledger-api", .task_id = "task-7f3a", .parent_task_id = "task-1" };
        const CoseClaims iat_only = { .iat = T0 };
        _cleanup_free_ uint8_t *msg = NULL, *bare = NULL, *receipt = NULL, *token = NULL, *short_kid = NULL;
        size_t size = 0, bare_size = 0, receipt_size = 0, token_size = 0, short_kid_size = 0;
        TokenClaims c = root_claims();

        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, &claims, payload, sizeof(payload) - 1, &msg, &size);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, &iat_only, NULL, 0, &bare, &bare_size);

        /* Valid, with and without a required audience; the outputs. */
        {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d =
                        verify_message_as(T0 + 5, 0, msg, size, k.spki, k.spki_size, k.kid, "ledger-api");
                assert_reason(d, AGENTID_REASON_VALID);
                const AgentidMessage *m = agentid_verdict_get_message(d);
                assert_int_equal(m->iat, T0);
                assert_string_equal(m->aud, "ledger-api");
                assert_string_equal(m->task_id, "task-7f3a");
                assert_string_equal(m->parent_task_id, "task-1");
                assert_memory_equal(m->kid, k.kid, TOKEN_KID_SIZE);
                assert_int_equal(m->payload_size, sizeof(payload) - 1);
                assert_memory_equal(m->payload, payload, sizeof(payload) - 1);
        }
        {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d =
                        verify_message_as(T0, 0, bare, bare_size, k.spki, k.spki_size, NULL, NULL);
                assert_reason(d, AGENTID_REASON_VALID);
                const AgentidMessage *m = agentid_verdict_get_message(d);
                assert_null(m->aud);
                assert_null(m->task_id);
                assert_null(m->parent_task_id);
                assert_int_equal(m->payload_size, 0);
                assert_non_null(m->payload);
        }
        expect_message(T0, msg, size, NULL, NULL, AGENTID_REASON_VALID);

        /* Audience. */
        expect_message(T0, msg, size, k.kid, "bank-api", AGENTID_REASON_MESSAGE_AUDIENCE);
        expect_message(T0, bare, bare_size, k.kid, "ledger-api", AGENTID_REASON_MESSAGE_AUDIENCE);

        /* Freshness: at most max-age old (default 300 s), at most 60 s ahead. */
        expect_message(T0 + AGENTID_DEFAULT_MAX_AGE, msg, size, k.kid, NULL, AGENTID_REASON_VALID);
        expect_message(T0 + AGENTID_DEFAULT_MAX_AGE + 1, msg, size, k.kid, NULL, AGENTID_REASON_MESSAGE_FRESHNESS);
        expect_message(T0 - AGENTID_MAX_CLOCK_SKEW, msg, size, k.kid, NULL, AGENTID_REASON_VALID);
        expect_message(T0 - AGENTID_MAX_CLOCK_SKEW - 1, msg, size, k.kid, NULL, AGENTID_REASON_MESSAGE_FRESHNESS);
        {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d =
                        verify_message_as(T0 + 3600, 3600, msg, size, k.spki, k.spki_size, k.kid, NULL);
                assert_reason(d, AGENTID_REASON_VALID);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *e =
                        verify_message_as(T0 + 11, 10, msg, size, k.spki, k.spki_size, k.kid, NULL);
                assert_reason(e, AGENTID_REASON_MESSAGE_FRESHNESS);
        }

        /* Key and kid. */
        {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d =
                        verify_message_as(T0, 0, msg, size, k.other_spki, k.other_spki_size, k.kid, NULL);
                assert_reason(d, AGENTID_REASON_MESSAGE_SIGNATURE);
        }
        expect_message(T0, msg, size, k.child_kid, NULL, AGENTID_REASON_MESSAGE_KID);
        msg[size - 1] ^= 0x80;
        expect_message(T0, msg, size, k.kid, NULL, AGENTID_REASON_MESSAGE_SIGNATURE);
        msg[size - 1] ^= 0x80;

        /* Not a signed message: no label 15 (a receipt), a token, a 33-byte kid, garbage. */
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE, NULL, payload, sizeof(payload) - 1, &receipt, &receipt_size);
        expect_message(T0, receipt, receipt_size, k.kid, NULL, AGENTID_REASON_MESSAGE_FORMAT);
        sign_token(k.key, k.kid, &c, &token, &token_size);
        expect_message(T0, token, token_size, k.kid, NULL, AGENTID_REASON_MESSAGE_FORMAT);
        sign_cose(k.key, k.kid, TOKEN_KID_SIZE - 1, &claims, payload, sizeof(payload) - 1, &short_kid, &short_kid_size);
        expect_message(T0, short_kid, short_kid_size, NULL, NULL, AGENTID_REASON_MESSAGE_FORMAT);
        expect_message(T0, (const uint8_t *) "\xd2\x80", 2, NULL, NULL, AGENTID_REASON_MESSAGE_FORMAT);
        expect_message(T0, NULL, 0, NULL, NULL, AGENTID_REASON_MESSAGE_FORMAT);

        /* Every byte flip is refused. */
        for (size_t i = 0; i < size; i++) {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0);
                msg[i] ^= 0x04;
                assert_int_equal(agentid_verify_message(v, msg, size, k.spki, k.spki_size, NULL, NULL, &d), 0);
                if (agentid_verdict_is_valid(d))
                        fail_msg("message byte %zu ^ 04 accepted", i);
                msg[i] ^= 0x04;
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* The CLI of this build: tools/agentid-verify, next to tests/unit/ in the build tree. */

/* Run the CLI; its standard output in *ret_out. Return: the exit status. */
/* The CLI test's scratch directory; removed by cli_cleanup() also when the test fails. */
static char cli_dir[] = "/tmp/test-token-XXXXXX";
static bool cli_dir_made;

static int cli_cleanup(void **state) {
        if (!cli_dir_made)
                return 0;
        cli_dir_made = false;
        return test_remove_dir(cli_dir) < 0 ? -1 : 0;
}

static void test_cli(void **state) {
        _cleanup_free_ char *cli = test_cli_path("agentid-verify");
        const char *dir = cli_dir;

        if (!cli)
                skip();
        assert_non_null(mkdtemp(cli_dir));
        cli_dir_made = true;

        /* Agent evidence for the root key, and a token and a message with the certified key's kid. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = fake_key_from_seed("agentid token test: AK");
        _cleanup_free_ uint8_t *ev = NULL, *ak_pub = NULL, *token = NULL, *msg = NULL, *wrong = NULL;
        size_t ev_size = 0, ak_size = 0, token_size = 0, msg_size = 0, wrong_size = 0;
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        FakeSpec spec;
        char nonce_hex[2 * 64 + 1], now[32];

        assert_non_null(ak);
        fake_spec_default(&spec, false, ak, k.key);
        assert_int_equal(fake_evidence_build(&spec, &ev, &ev_size), 0);
        assert_int_equal(fake_ak_public_bytes(ak, &ak_pub, &ak_size), 0);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak_pub, ak_size), 0);
        assert_int_equal(agentid_verify_evidence(v, ev, ev_size, spec.nonce, spec.nonce_size, &d), 0);
        assert_true(agentid_verdict_is_valid(d));
        const uint8_t *certified_kid = agentid_verdict_get_claims(d)->kid;

        TokenClaims c = root_claims();
        const CoseClaims mc = { .iat = T0, .aud = "ledger-api", .task_id = "task-7f3a" };
        sign_token(k.key, certified_kid, &c, &token, &token_size);
        sign_token(k.key, k.kid, &c, &wrong, &wrong_size);             /* right key, kid not the certified Name */
        sign_cose(k.key, certified_kid, TOKEN_KID_SIZE, &mc, (const uint8_t *) "hello", 5, &msg, &msg_size);
        hex_encode_to(spec.nonce, spec.nonce_size, nonce_hex);
        snprintf(now, sizeof(now), "--now=%llu", (unsigned long long) (T0 + 10));

        _cleanup_free_ char *key_path = test_write_tmp(dir, "key.der", k.spki, k.spki_size),
                            *token_path = test_write_tmp(dir, "token.cose", token, token_size),
                            *wrong_path = test_write_tmp(dir, "wrong.cose", wrong, wrong_size),
                            *msg_path = test_write_tmp(dir, "msg.cose", msg, msg_size),
                            *ev_path = test_write_tmp(dir, "evidence.cbor", ev, ev_size),
                            *ak_path = test_write_tmp(dir, "ak.pub", ak_pub, ak_size),
                            *b64_path = NULL, *key_opt = NULL, *ev_opt = NULL, *ak_opt = NULL, *nonce_opt = NULL;
        {
                /* What agentidctl prints without --output: base64. */
                char b64[4 * TOKEN_MAX / 3 + 8];
                int len = EVP_EncodeBlock((unsigned char *) b64, token, (int) token_size);
                assert_true(len > 0);
                b64[len++] = '\n';
                b64_path = test_write_tmp(dir, "token.b64", b64, (size_t) len);
        }
        assert_true(asprintf(&key_opt, "--public-key=%s", key_path) > 0);
        assert_true(asprintf(&ev_opt, "--evidence=%s", ev_path) > 0);
        assert_true(asprintf(&ak_opt, "--trusted-ak=%s", ak_path) > 0);
        assert_true(asprintf(&nonce_opt, "--nonce=%s", nonce_hex) > 0);

        struct {
                char *argv[10];
                int status;
                const char *expect;     /* in the output */
        } cases[] = {
                { { cli, "token", key_opt, "--audience=ledger-api", now, token_path }, 0, "\"verdict\": \"valid\"" },
                { { cli, "token", key_opt, "--audience=ledger-api", now, b64_path }, 0, "\"task_id\": \"task-7f3a\"" },
                { { cli, "token", key_opt, "--audience=bank-api", now, token_path }, 1, "\"reason\": \"token_audience\"" },
                { { cli, "token", key_opt, "--audience=ledger-api", "--now=1764003600", token_path }, 1, "token_expiry" },
                { { cli, "token", key_opt, "--audience=ledger-api", now, msg_path }, 1, "\"reason\": \"token_format\"" },
                { { cli, "token", key_opt, now, token_path }, 2, "" },                                /* no audience */
                { { cli, "token", "--audience=ledger-api", now, token_path }, 2, "" },                /* no key */
                { { cli, "token", key_opt, ev_opt, "--audience=ledger-api", now, token_path }, 2, "" }, /* both */
                { { cli, "token", key_opt, "--audience=ledger-api", "--max-age=5", now, token_path }, 2, "" },
                { { cli, "token", ev_opt, nonce_opt, ak_opt, "--audience=ledger-api", now, token_path }, 0, "\"evidence\"" },
                { { cli, "token", ev_opt, nonce_opt, ak_opt, "--audience=ledger-api", now, wrong_path }, 1, "\"reason\": \"token_kid\"" },
                { { cli, "token", ev_opt, "--nonce=00000000000000000000000000000000", ak_opt, "--audience=ledger-api", now,
                    token_path }, 1, "\"reason\": \"certify_nonce\"" },
                { { cli, "message", key_opt, now, msg_path }, 0, "\"payload\": \"68656c6c6f\"" },
                { { cli, "message", key_opt, "--audience=ledger-api", now, msg_path }, 0, "\"aud\": \"ledger-api\"" },
                { { cli, "message", key_opt, "--audience=bank-api", now, msg_path }, 1, "message_audience" },
                { { cli, "message", key_opt, "--max-age=5", now, msg_path }, 1, "message_freshness" },
                { { cli, "message", ev_opt, nonce_opt, ak_opt, now, msg_path }, 0, "\"message_kid\"" },
                { { cli, "message", key_opt, now, token_path }, 1, "message_format" },
                { { cli, "receipt", key_opt, token_path }, 2, "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                int status = test_run_cli(dir, cases[i].argv, &out);
                if (status != cases[i].status || !strstr(out, cases[i].expect))
                        fail_msg("case %zu: exit %d (expected %d), output:\n%s", i, status, cases[i].status, out);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scope_valid),
                cmocka_unit_test(test_scope_subset),
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_encode_refuses),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_peek_and_verify_errors),
                cmocka_unit_test(test_every_flip),
                cmocka_unit_test(test_token_valid),
                cmocka_unit_test(test_token_time),
                cmocka_unit_test(test_token_envelope_negative),
                cmocka_unit_test(test_token_claims_negative),
                cmocka_unit_test(test_token_hops_negative),
                cmocka_unit_test(test_token_credential),
                cmocka_unit_test(test_token_api),
                cmocka_unit_test(test_message),
                cmocka_unit_test_teardown(test_cli, cli_cleanup),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

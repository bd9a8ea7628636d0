/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * COSE_Sign1 / ES256 and destroy receipts (suite "unit"): round trips with OpenSSL keys standing in
 * for the TPM, the golden vectors of docs/formats.md, and every way a received message can be wrong.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "tests/lib/fake-evidence.h"

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "attest/cose.h"
#include "attest/receipt.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/hexutil.h"
#include "tests/lib/golden.h"

static const uint8_t hello[] = "hello";
#define HELLO_SIZE (sizeof(hello) - 1)

static void example_kid(uint8_t kid[34], uint8_t fill) {
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, fill, 32);
}

static EVP_PKEY *new_p256(void) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        assert_non_null(k);
        return k;
}


static void make_message(EVP_PKEY *key, const uint8_t *kid, size_t kid_size, const CoseClaims *claims,
                         const uint8_t *payload, size_t payload_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        uint8_t sig[COSE_ES256_SIG_SIZE];

        assert_int_equal(cose_sign1_prepare(kid, kid_size, claims, payload, payload_size, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), sig), 0);
        assert_int_equal(cose_sign1_finish(c, sig, ret, ret_size), 0);
}

static void make_example_message(EVP_PKEY *key, uint8_t **ret, size_t *ret_size) {
        const CoseClaims claims = { .iat = 1764000000, .aud = "agentid://peer", .task_id = "task-7f3a" };
        uint8_t kid[34];

        example_kid(kid, 0x22);
        make_message(key, kid, sizeof(kid), &claims, hello, HELLO_SIZE, ret, ret_size);
}

static void encode_consume(cbor_item_t *item, uint8_t **ret, size_t *ret_size) {
        assert_non_null(item);
        assert_int_equal(cbor_util_encode(item, ret, ret_size), 0);
        cbor_decref(&item);
}

/* 0xd2 followed by the deterministic encoding of array (consumed). */
static void encode_tagged(cbor_item_t *array, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *inner = NULL;
        size_t inner_size = 0;

        encode_consume(array, &inner, &inner_size);
        *ret = malloc(inner_size + 1);
        assert_non_null(*ret);
        (*ret)[0] = 0xd2;
        memcpy(*ret + 1, inner, inner_size);
        *ret_size = inner_size + 1;
}

/* A correctly signed message around arbitrary protected bytes and unprotected header (consumed;
 * NULL = the empty map), for checks that must fail on the profile rather than on the signature. */
static void assemble_signed(EVP_PKEY *key, const uint8_t *prot, size_t prot_size, cbor_item_t *unprotected,
                            const uint8_t *payload, size_t payload_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *tbs = NULL;
        size_t tbs_size = 0;
        uint8_t digest[SHA256_DIGEST_SIZE], sig[COSE_ES256_SIG_SIZE];
        cbor_item_t *array = cbor_util_new_array();

        assert_int_equal(cose_sign1_sig_structure(prot, prot_size, payload, payload_size, &tbs, &tbs_size), 0);
        assert_int_equal(sha256(tbs, tbs_size, digest), 0);
        assert_int_equal(fake_sign_digest(key, digest, sig), 0);

        assert_int_equal(cbor_util_array_push(array, cbor_util_new_bytes(prot, prot_size)), 0);
        assert_int_equal(cbor_util_array_push(array, unprotected ?: cbor_util_new_map()), 0);
        assert_int_equal(cbor_util_array_push(array, cbor_util_new_bytes(payload, payload_size)), 0);
        assert_int_equal(cbor_util_array_push(array, cbor_util_new_bytes(sig, sizeof(sig))), 0);
        encode_tagged(array, ret, ret_size);
}

static int check(const uint8_t *msg, size_t size, EVP_PKEY *key) {
        return cose_sign1_check(msg, size, key, NULL, NULL, NULL, NULL);
}

static void assert_golden(const char *vector, const uint8_t *got, size_t got_size) {
        _cleanup_free_ uint8_t *golden = NULL;
        size_t golden_size = 0;

        assert_int_equal(golden_load(vector, &golden, &golden_size), 0);
        if (got_size != golden_size || memcmp(got, golden, got_size) != 0) {
                _cleanup_free_ char *hex = hex_encode(got, got_size);
                fail_msg("encoding differs from docs/formats.md golden:%s; encoder gives %s", vector, hex);
        }
}

/* ------------------------------------------------------------------------------------------------ */

static void test_roundtrip(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *msg = NULL, *prot = NULL, *payload = NULL;
        size_t size = 0, prot_size = 0, payload_size = 0;

        make_example_message(key, &msg, &size);
        assert_int_equal(msg[0], 0xd2);
        assert_int_equal(cose_sign1_check(msg, size, key, &prot, &prot_size, &payload, &payload_size), 0);
        assert_int_equal(payload_size, HELLO_SIZE);
        assert_memory_equal(payload, hello, HELLO_SIZE);

        /* The protected header comes back as sent: alg, kid and the label 15 claims. */
        static const CborLimits lim = { .max_size = 4096, .max_depth = 2, .max_items = 32,
                                        .flags = CBOR_VALIDATE_DETERMINISTIC };
        _cleanup_cbor_ cbor_item_t *h = NULL;
        const uint8_t *kid;
        size_t kid_size;
        int64_t alg;
        uint64_t iat;
        const char *s;
        size_t l;

        assert_int_equal(cbor_util_decode(prot, prot_size, &lim, &h, NULL), 0);
        assert_int_equal(cbor_util_get_int(cbor_util_map_get_int(h, 1), &alg), 0);
        assert_int_equal(alg, -7);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_int(h, 4), &kid, &kid_size), 0);
        assert_int_equal(kid_size, 34);
        const cbor_item_t *claims = cbor_util_map_get_int(h, 15);
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_int(claims, 6), &iat), 0);
        assert_int_equal(iat, 1764000000);
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_int(claims, 3), &s, &l), 0);
        assert_int_equal(l, strlen("agentid://peer"));
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(claims, "task_id"), &s, &l), 0);
        assert_null(cbor_util_map_get_text(claims, "parent_task_id"));
}

static void test_roundtrip_variants(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        uint8_t kid64[COSE_KID_MAX], kid1[1] = { 0x07 };
        char text_max[COSE_CLAIM_TEXT_MAX + 1];

        memset(kid64, 0xab, sizeof(kid64));
        memset(text_max, 'x', COSE_CLAIM_TEXT_MAX);
        text_max[COSE_CLAIM_TEXT_MAX] = 0;

        const CoseClaims all = { .iat = UINT64_MAX, .aud = text_max, .task_id = "tâche-✓",
                                 .parent_task_id = text_max };
        const CoseClaims iat_only = { .iat = 0 };
        struct {
                const uint8_t *kid;
                size_t kid_size;
                const CoseClaims *claims;
                const uint8_t *payload;
                size_t payload_size;
        } cases[] = {
                { kid1, sizeof(kid1), NULL, hello, HELLO_SIZE },
                { kid64, sizeof(kid64), &all, hello, HELLO_SIZE },
                { kid64, sizeof(kid64), &iat_only, NULL, 0 },
                { kid1, sizeof(kid1), NULL, NULL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ uint8_t *msg = NULL, *payload = NULL;
                size_t size = 0, payload_size = 1;

                make_message(key, cases[i].kid, cases[i].kid_size, cases[i].claims, cases[i].payload,
                             cases[i].payload_size, &msg, &size);
                assert_int_equal(cose_sign1_check(msg, size, key, NULL, NULL, &payload, &payload_size), 0);
                assert_non_null(payload);
                assert_int_equal(payload_size, cases[i].payload_size);
                if (payload_size > 0)
                        assert_memory_equal(payload, cases[i].payload, payload_size);
        }
}

static void test_largest_payload(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *big = malloc(COSE_PAYLOAD_MAX), *msg = NULL, *out = NULL;
        size_t size = 0, out_size = 0;
        uint8_t kid[34];

        assert_non_null(big);
        for (size_t i = 0; i < COSE_PAYLOAD_MAX; i++)
                big[i] = (uint8_t) (i * 7);
        example_kid(kid, 0x22);
        make_message(key, kid, sizeof(kid), NULL, big, COSE_PAYLOAD_MAX, &msg, &size);
        assert_int_equal(cose_sign1_check(msg, size, key, NULL, NULL, &out, &out_size), 0);
        assert_int_equal(out_size, COSE_PAYLOAD_MAX);
        assert_memory_equal(out, big, COSE_PAYLOAD_MAX);
}

/* Any COSE implementation verifies ES256 over the Sig_structure itself (hash inside the signature
 * operation): that must agree with our digest-then-sign split. */
static void test_interop_sig_structure(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *msg = NULL, *prot = NULL, *payload = NULL, *tbs = NULL, *der = NULL;
        size_t size = 0, prot_size = 0, payload_size = 0, tbs_size = 0, der_size = 0;
        uint8_t digest[SHA256_DIGEST_SIZE], sig[COSE_ES256_SIG_SIZE];
        const CoseClaims claims = { .iat = 42, .parent_task_id = "p" };
        uint8_t kid[34];

        example_kid(kid, 0x22);
        assert_int_equal(cose_sign1_prepare(kid, sizeof(kid), &claims, hello, HELLO_SIZE, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), sig), 0);
        assert_int_equal(cose_sign1_finish(c, sig, &msg, &size), 0);
        assert_int_equal(cose_sign1_check(msg, size, key, &prot, &prot_size, &payload, &payload_size), 0);

        assert_int_equal(cose_sign1_sig_structure(prot, prot_size, payload, payload_size, &tbs, &tbs_size), 0);
        assert_int_equal(sha256(tbs, tbs_size, digest), 0);
        assert_memory_equal(digest, cose_sign1_digest(c), SHA256_DIGEST_SIZE);

        assert_int_equal(ecdsa_raw_to_der(sig, P256_COORD_SIZE, &der, &der_size), 0);
        assert_non_null(md);
        assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestVerify(md, der, der_size, tbs, tbs_size), 1);

        /* finish does not consume c: the same signature gives the same bytes again. */
        _cleanup_free_ uint8_t *again = NULL;
        size_t again_size = 0;
        assert_int_equal(cose_sign1_finish(c, sig, &again, &again_size), 0);
        assert_int_equal(again_size, size);
        assert_memory_equal(again, msg, size);
}

static void test_prepare_rejects(void **state) {
        uint8_t kid[COSE_KID_MAX + 1] = {}, one = 0;
        char long_text[COSE_CLAIM_TEXT_MAX + 2];
        CoseSign1 *c = NULL;

        memset(long_text, 'a', sizeof(long_text) - 1);
        long_text[COSE_CLAIM_TEXT_MAX + 1] = 0;

        assert_int_equal(cose_sign1_prepare(NULL, 34, NULL, hello, HELLO_SIZE, &c), -EINVAL);
        assert_int_equal(cose_sign1_prepare(kid, 0, NULL, hello, HELLO_SIZE, &c), -EINVAL);
        assert_int_equal(cose_sign1_prepare(kid, COSE_KID_MAX + 1, NULL, hello, HELLO_SIZE, &c), -EINVAL);
        assert_int_equal(cose_sign1_prepare(kid, 34, NULL, NULL, 1, &c), -EINVAL);
        /* The size is checked before the buffer is read. */
        assert_int_equal(cose_sign1_prepare(kid, 34, NULL, &one, (size_t) COSE_PAYLOAD_MAX + 1, &c), -EINVAL);
        assert_int_equal(cose_sign1_prepare(kid, 34, NULL, hello, HELLO_SIZE, NULL), -EINVAL);

        const CoseClaims bad[] = {
                { .iat = 1, .aud = "" },
                { .iat = 1, .task_id = "" },
                { .iat = 1, .parent_task_id = long_text },
                { .iat = 1, .aud = "\xff" },                    /* not UTF-8 */
                { .iat = 1, .task_id = "\xc0\xaf" },            /* overlong "/" */
                { .iat = 1, .parent_task_id = "\xed\xa0\x80" }, /* surrogate */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(cose_sign1_prepare(kid, 34, &bad[i], hello, HELLO_SIZE, &c), -EINVAL);
        long_text[COSE_CLAIM_TEXT_MAX] = 0;
        const CoseClaims longest = { .iat = 1, .aud = long_text, .task_id = long_text, .parent_task_id = long_text };
        assert_int_equal(cose_sign1_prepare(kid, COSE_KID_MAX, &longest, hello, HELLO_SIZE, &c), 0);
        c = cose_sign1_free(c);
        assert_null(c);

        uint8_t sig[COSE_ES256_SIG_SIZE] = {}, *out = NULL;
        size_t out_size = 0;
        assert_int_equal(cose_sign1_finish(NULL, sig, &out, &out_size), -EINVAL);
        assert_null(cose_sign1_digest(NULL));
        assert_null(cose_sign1_free(NULL));
}

/* ------------------------------------------------------------------------------------------------ */
/* Golden vectors */

static const uint8_t fixed_sig[COSE_ES256_SIG_SIZE] = {
        [0 ... COSE_ES256_SIG_SIZE - 1] = 0x5a,
};

/* The array elements of a COSE_Sign1_Tagged we made ourselves (test side, not the code under test). */
static void split_message(const uint8_t *msg, size_t size, cbor_item_t **ret_array) {
        static const CborLimits lim = { .max_size = 1 << 20, .max_depth = 4, .max_items = 16,
                                        .flags = CBOR_VALIDATE_DETERMINISTIC };
        assert_true(size > 1);
        assert_int_equal(msg[0], 0xd2);
        assert_int_equal(cbor_util_decode(msg + 1, size - 1, &lim, ret_array, NULL), 0);
        assert_true(cbor_isa_array(*ret_array));
        assert_int_equal(cbor_array_size(*ret_array), 4);
}

static void test_golden_message(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *msg = NULL, *tbs = NULL, *golden_tbs = NULL;
        _cleanup_cbor_ cbor_item_t *array = NULL;
        size_t size = 0, tbs_size = 0, golden_tbs_size = 0;
        const CoseClaims claims = { .iat = 1764000000, .aud = "agentid://peer", .task_id = "task-7f3a" };
        const uint8_t *prot, *payload;
        size_t prot_size, payload_size;
        uint8_t kid[34], digest[SHA256_DIGEST_SIZE];

        example_kid(kid, 0x22);
        assert_int_equal(cose_sign1_prepare(kid, sizeof(kid), &claims, hello, HELLO_SIZE, &c), 0);
        assert_int_equal(cose_sign1_finish(c, fixed_sig, &msg, &size), 0);
        assert_golden("message-cose-sign1", msg, size);

        /* The Sig_structure built from the message's own protected bytes and payload ... */
        split_message(msg, size, &array);
        assert_int_equal(cbor_util_get_bytes(cbor_array_handle(array)[0], &prot, &prot_size), 0);
        assert_int_equal(cbor_util_get_bytes(cbor_array_handle(array)[2], &payload, &payload_size), 0);
        assert_int_equal(cose_sign1_sig_structure(prot, prot_size, payload, payload_size, &tbs, &tbs_size), 0);
        assert_golden("message-sig-structure", tbs, tbs_size);

        /* ... is what the digest handed to the TPM is the hash of. */
        assert_int_equal(golden_load("message-sig-structure", &golden_tbs, &golden_tbs_size), 0);
        assert_int_equal(sha256(golden_tbs, golden_tbs_size, digest), 0);
        assert_memory_equal(digest, cose_sign1_digest(c), SHA256_DIGEST_SIZE);

        /* The golden message is well-formed; only its made-up signature is wrong. */
        assert_int_equal(check(msg, size, key), -EKEYREJECTED);
}

static const char example_uri[] = "agentid://8119af52884ed2bc28b62a373dc1f85b/invoice-bot";

static void example_receipt(DestroyReceipt *r, uint8_t kid[34], uint8_t spki[32]) {
        example_kid(kid, 0x22);
        memset(spki, 0x33, 32);
        *r = (DestroyReceipt) {
                .name = "invoice-bot",
                .uri = example_uri,
                .owner = "finance-platform@example.com",
                .reason = "retired",
                .kid = kid,
                .spki_sha256 = spki,
                .time = 1764050000,
                .by_uid = 0,
        };
}

static void test_golden_receipt(void **state) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *payload = NULL, *msg = NULL;
        size_t payload_size = 0, size = 0;
        uint8_t kid[34], spki[32], host_kid[34];
        DestroyReceipt r;

        example_receipt(&r, kid, spki);
        assert_int_equal(receipt_destroy_payload(&r, &payload, &payload_size), 0);
        assert_golden("receipt-destroy-payload", payload, payload_size);

        example_kid(host_kid, 0x44);
        assert_int_equal(receipt_destroy_prepare(&r, host_kid, sizeof(host_kid), &c), 0);
        assert_int_equal(cose_sign1_finish(c, fixed_sig, &msg, &size), 0);
        assert_golden("receipt-destroy-cose-sign1", msg, size);
}

static void test_receipt_signed(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *host = new_p256();
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *msg = NULL, *payload = NULL;
        _cleanup_cbor_ cbor_item_t *map = NULL;
        size_t size = 0, payload_size = 0;
        uint8_t kid[34], spki[32], host_kid[34], sig[COSE_ES256_SIG_SIZE];
        DestroyReceipt r;
        uint64_t v;
        const char *s;
        size_t l;

        example_receipt(&r, kid, spki);
        r.has_audit_seq = true;
        r.audit_seq = 4711;
        r.by_uid = 1000;
        example_kid(host_kid, 0x44);
        assert_int_equal(receipt_destroy_prepare(&r, host_kid, sizeof(host_kid), &c), 0);
        assert_int_equal(fake_sign_digest(host, cose_sign1_digest(c), sig), 0);
        assert_int_equal(cose_sign1_finish(c, sig, &msg, &size), 0);
        assert_int_equal(cose_sign1_check(msg, size, host, NULL, NULL, &payload, &payload_size), 0);

        static const CborLimits lim = { .max_size = 8192, .max_depth = 1, .max_items = 21,
                                        .flags = CBOR_VALIDATE_DETERMINISTIC };
        static const char *const fields[] = { "type", "name", "uri", "kid", "spki_sha256", "owner",
                                              "reason", "time", "by_uid", "audit_seq" };
        assert_int_equal(cbor_util_decode(payload, payload_size, &lim, &map, NULL), 0);
        assert_int_equal(cbor_map_size(map), 10);
        assert_int_equal(cbor_util_map_check_text_keys(map, fields, ELEMENTSOF(fields), NULL), 0);
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(map, "type"), &s, &l), 0);
        assert_true(l == 7 && memcmp(s, "destroy", 7) == 0);
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_text(map, "audit_seq"), &v), 0);
        assert_int_equal(v, 4711);
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_text(map, "by_uid"), &v), 0);
        assert_int_equal(v, 1000);
}

static void test_receipt_rejects(void **state) {
        uint8_t kid[34], spki[32], *out = NULL;
        size_t size = 0;
        char long_text[RECEIPT_TEXT_MAX + 2];
        DestroyReceipt r;

        memset(long_text, 'r', sizeof(long_text) - 1);
        long_text[RECEIPT_TEXT_MAX + 1] = 0;

        assert_int_equal(receipt_destroy_payload(NULL, &out, &size), -EINVAL);
#define EXPECT_BAD(field, value)                                                        \
        do {                                                                            \
                example_receipt(&r, kid, spki);                                         \
                r.field = value;                                                        \
                assert_int_equal(receipt_destroy_payload(&r, &out, &size), -EINVAL);    \
                assert_null(out);                                                       \
        } while (0)
        EXPECT_BAD(name, NULL);
        EXPECT_BAD(name, "");
        EXPECT_BAD(uri, NULL);
        EXPECT_BAD(owner, "");
        EXPECT_BAD(owner, "\xe2\x82");          /* truncated UTF-8 */
        EXPECT_BAD(reason, NULL);
        EXPECT_BAD(reason, long_text);
        EXPECT_BAD(kid, NULL);
        EXPECT_BAD(spki_sha256, NULL);
#undef EXPECT_BAD

        /* An empty reason is a reason not given, still recorded; the longest one fits. */
        example_receipt(&r, kid, spki);
        r.reason = "";
        assert_int_equal(receipt_destroy_payload(&r, &out, &size), 0);
        out = mfree(out);
        long_text[RECEIPT_TEXT_MAX] = 0;
        r.reason = long_text;
        assert_int_equal(receipt_destroy_payload(&r, &out, &size), 0);
        out = mfree(out);

        CoseSign1 *c = NULL;
        example_receipt(&r, kid, spki);
        assert_int_equal(receipt_destroy_prepare(&r, kid, 0, &c), -EINVAL);
        assert_null(c);
}

/* ------------------------------------------------------------------------------------------------ */
/* Refusals */

static void test_tampered(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256(), *other = new_p256();
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0;

        make_example_message(key, &msg, &size);
        assert_int_equal(check(msg, size, key), 0);

        /* Wrong key. */
        assert_int_equal(check(msg, size, other), -EKEYREJECTED);

        /* Payload, protected header (a kid byte, an aud byte) and signature: still well-formed,
         * no longer what was signed. */
        uint8_t *p = memmem(msg, size, "hello", 5);
        assert_non_null(p);
        p[0] ^= 0x20;
        assert_int_equal(check(msg, size, key), -EKEYREJECTED);
        p[0] ^= 0x20;

        static const uint8_t kid_bytes[] = { 0x22, 0x22, 0x22, 0x22 };
        p = memmem(msg, size, kid_bytes, sizeof(kid_bytes));
        assert_non_null(p);
        p[0] ^= 0x01;
        assert_int_equal(check(msg, size, key), -EKEYREJECTED);
        p[0] ^= 0x01;

        p = memmem(msg, size, "peer", 4);
        assert_non_null(p);
        p[0] = 'b';
        assert_int_equal(check(msg, size, key), -EKEYREJECTED);
        p[0] = 'p';

        msg[size - 1] ^= 0x80;
        assert_int_equal(check(msg, size, key), -EKEYREJECTED);
        msg[size - 1] ^= 0x80;

        /* r = s = 0 is never a valid signature. */
        uint8_t saved[COSE_ES256_SIG_SIZE];
        memcpy(saved, msg + size - 64, 64);
        memset(msg + size - 64, 0, 64);
        assert_int_equal(check(msg, size, key), -EKEYREJECTED);
        memcpy(msg + size - 64, saved, 64);

        assert_int_equal(check(msg, size, key), 0);
}

static void test_tag(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *msg = NULL, *buf = NULL;
        size_t size = 0;

        make_example_message(key, &msg, &size);
        buf = malloc(size + 2);
        assert_non_null(buf);

        /* Untagged COSE_Sign1. */
        assert_int_equal(check(msg + 1, size - 1, key), -EBADMSG);
        /* COSE_Mac0 (17), COSE_Sign (98), tag 18 in a two-byte head. */
        static const uint8_t heads[][2] = { { 0xd1, 0 }, { 0xd8, 0x62 }, { 0xd8, 0x12 }, { 0xd2, 0xd2 } };
        for (size_t i = 0; i < ELEMENTSOF(heads); i++) {
                size_t n = heads[i][1] ? 2 : 1;
                memcpy(buf, heads[i], n);
                memcpy(buf + n, msg + 1, size - 1);
                assert_int_equal(check(buf, size - 1 + n, key), -EBADMSG);
        }
}

static void test_trailing_and_truncated(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *msg = NULL, *longer = NULL;
        size_t size = 0;

        make_example_message(key, &msg, &size);
        longer = malloc(size + 1);
        assert_non_null(longer);
        memcpy(longer, msg, size);
        longer[size] = 0x00;
        assert_int_equal(check(longer, size + 1, key), -EBADMSG);

        for (size_t n = 0; n < size; n++) {
                /* A buffer of exactly n bytes, so that ASan sees any read past the end. */
                _cleanup_free_ uint8_t *cut = malloc(n ? n : 1);
                assert_non_null(cut);
                memcpy(cut, msg, n);
                assert_int_equal(check(cut, n, key), -EBADMSG);
        }
        assert_int_equal(check(NULL, 0, key), -EBADMSG);
}

static void test_every_flip(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0;

        make_example_message(key, &msg, &size);
        /* The signature is the last 64 bytes, the payload "hello" the 5 before its 0x58 0x40 head. */
        size_t sig_start = size - 64, payload_start = size - 64 - 2 - HELLO_SIZE;
        assert_memory_equal(msg + payload_start, hello, HELLO_SIZE);

        for (size_t i = 0; i < size; i++) {
                for (unsigned v = 0; v < 9; v++) {
                        /* Every single bit, then the whole byte. */
                        uint8_t mask = v < 8 ? (uint8_t) (1u << v) : 0xff;
                        int r;

                        msg[i] ^= mask;
                        r = check(msg, size, key);
                        msg[i] ^= mask;

                        if (i >= sig_start || (i >= payload_start && i < payload_start + HELLO_SIZE)) {
                                if (r != -EKEYREJECTED)
                                        fail_msg("flip 0x%02x at %zu (signed content): %d", mask, i, r);
                        } else if (r != -EBADMSG && r != -EKEYREJECTED)
                                fail_msg("flip 0x%02x at %zu: %d", mask, i, r);
                }
        }
        assert_int_equal(check(msg, size, key), 0);
}

/* Protected header maps that are signed correctly but outside the profile. */
static void expect_protected_refused(EVP_PKEY *key, const uint8_t *prot, size_t prot_size, const char *what) {
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0;

        assemble_signed(key, prot, prot_size, NULL, hello, HELLO_SIZE, &msg, &size);
        int r = check(msg, size, key);
        if (r != -EBADMSG)
                fail_msg("protected header '%s' not refused: %d", what, r);
}

static void expect_protected_map_refused(EVP_PKEY *key, cbor_item_t *map, const char *what) {
        _cleanup_free_ uint8_t *prot = NULL;
        size_t prot_size = 0;

        encode_consume(map, &prot, &prot_size);
        expect_protected_refused(key, prot, prot_size, what);
}

/* {1: alg, 4: kid} plus claims (consumed; NULL = none). */
static cbor_item_t *header(int64_t alg, const uint8_t *kid, size_t kid_size, cbor_item_t *claims) {
        cbor_item_t *map = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(map, 1, cbor_util_new_int(alg)), 0);
        assert_int_equal(cbor_util_map_put_int(map, 4, cbor_util_new_bytes(kid, kid_size)), 0);
        if (claims)
                assert_int_equal(cbor_util_map_put_int(map, 15, claims), 0);
        return map;
}

static cbor_item_t *claims_iat(void) {
        cbor_item_t *c = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(c, 6, cbor_util_new_uint(1764000000)), 0);
        return c;
}

static void test_protected_profile(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        uint8_t kid[COSE_KID_MAX + 1];
        char long_text[COSE_CLAIM_TEXT_MAX + 2];
        cbor_item_t *m, *c;

        memset(kid, 0x22, sizeof(kid));
        memset(long_text, 'a', sizeof(long_text) - 1);
        long_text[COSE_CLAIM_TEXT_MAX + 1] = 0;

        /* Sanity: the helpers make an acceptable message when nothing is wrong. */
        {
                _cleanup_free_ uint8_t *prot = NULL, *msg = NULL;
                size_t prot_size = 0, size = 0;
                encode_consume(header(-7, kid, 34, claims_iat()), &prot, &prot_size);
                assemble_signed(key, prot, prot_size, NULL, hello, HELLO_SIZE, &msg, &size);
                assert_int_equal(check(msg, size, key), 0);
        }

        expect_protected_map_refused(key, header(-35, kid, 34, NULL), "alg ES384");
        expect_protected_map_refused(key, header(-8, kid, 34, NULL), "alg EdDSA");
        expect_protected_map_refused(key, header(7, kid, 34, NULL), "alg 7");
        expect_protected_map_refused(key, header(-7, kid, 0, NULL), "empty kid");
        expect_protected_map_refused(key, header(-7, kid, COSE_KID_MAX + 1, NULL), "kid of 65 bytes");

        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(m, 4, cbor_util_new_bytes(kid, 34)), 0);
        expect_protected_map_refused(key, m, "no alg");

        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_int(-7)), 0);
        expect_protected_map_refused(key, m, "no kid");

        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_text("ES256")), 0);
        assert_int_equal(cbor_util_map_put_int(m, 4, cbor_util_new_bytes(kid, 34)), 0);
        expect_protected_map_refused(key, m, "alg as text");

        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_int(-7)), 0);
        assert_int_equal(cbor_util_map_put_int(m, 4, cbor_util_new_text("kid")), 0);
        expect_protected_map_refused(key, m, "kid as text");

        m = header(-7, kid, 34, NULL);
        assert_int_equal(cbor_util_map_put_int(m, 3, cbor_util_new_text("application/json")), 0);
        expect_protected_map_refused(key, m, "content type label");

        m = header(-7, kid, 34, NULL);
        cbor_item_t *crit = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(crit, cbor_util_new_int(99)), 0);
        assert_int_equal(cbor_util_map_put_int(m, 2, crit), 0);
        assert_int_equal(cbor_util_map_put_int(m, 99, cbor_util_new_uint(1)), 0);
        expect_protected_map_refused(key, m, "crit");

        m = header(-7, kid, 34, NULL);
        assert_int_equal(cbor_util_map_put_text(m, "alg", cbor_util_new_int(-7)), 0);
        expect_protected_map_refused(key, m, "text label");

        /* Label 15 exactly as written by cose_sign1_prepare(). */
        expect_protected_map_refused(key, header(-7, kid, 34, cbor_util_new_uint(1)), "claims not a map");
        expect_protected_map_refused(key, header(-7, kid, 34, cbor_util_new_map()), "claims without iat");

        c = claims_iat();
        assert_int_equal(cbor_util_map_put_text(c, "scope", cbor_util_new_text("pay")), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "unknown claim");

        c = claims_iat();
        assert_int_equal(cbor_util_map_put_int(c, 4, cbor_util_new_uint(1)), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "exp claim");

        c = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(c, 6, cbor_util_new_int(-1)), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "negative iat");

        c = claims_iat();
        assert_int_equal(cbor_util_map_put_int(c, 3, cbor_util_new_bytes("peer", 4)), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "aud as bstr");

        c = claims_iat();
        assert_int_equal(cbor_util_map_put_text(c, "task_id", cbor_util_new_text("")), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "empty task_id");

        c = claims_iat();
        assert_int_equal(cbor_util_map_put_text(c, "parent_task_id", cbor_util_new_text(long_text)), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "parent_task_id too long");

        c = claims_iat();
        assert_int_equal(cbor_util_map_put_text(c, "task_id", cbor_util_new_textn("a\0b", 3)), 0);
        expect_protected_map_refused(key, header(-7, kid, 34, c), "task_id with NUL");

        /* Raw bytes the encoder would never write. */
        static const struct {
                const char *hex;
                const char *what;
        } raw[] = {
                { "", "empty protected header" },
                { "a0", "empty map" },
                { "a2 0126 0441aa 00", "trailing byte" },
                { "a2 0441aa 0126", "keys out of order" },
                { "a2 013806 0441aa", "alg not in shortest form" },
                { "a2 0126 045801aa", "kid length not in shortest form" },
                { "bf 0126 0441aa ff", "indefinite map" },
                { "a3 0126 0441aa 0126", "duplicate alg" },
                { "82 0126", "array" },
        };
        for (size_t i = 0; i < ELEMENTSOF(raw); i++) {
                _cleanup_free_ char *compact = malloc(strlen(raw[i].hex) + 1);
                _cleanup_free_ uint8_t *bytes = NULL;
                size_t n = 0, k = 0;

                for (const char *q = raw[i].hex; *q; q++)
                        if (*q != ' ')
                                compact[k++] = *q;
                compact[k] = 0;
                assert_int_equal(hex_decode(compact, &bytes, &n), 0);
                expect_protected_refused(key, bytes, n, raw[i].what);
        }
}

static void test_envelope_profile(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *prot = NULL;
        size_t prot_size = 0;
        uint8_t kid[34], sig[COSE_ES256_SIG_SIZE + 1] = {};
        cbor_item_t *u;

        example_kid(kid, 0x22);
        encode_consume(header(-7, kid, sizeof(kid), NULL), &prot, &prot_size);

        /* A non-empty unprotected header, even one that repeats the protected kid. */
        {
                _cleanup_free_ uint8_t *msg = NULL;
                size_t size = 0;
                u = cbor_util_new_map();
                assert_int_equal(cbor_util_map_put_int(u, 4, cbor_util_new_bytes(kid, sizeof(kid))), 0);
                assemble_signed(key, prot, prot_size, u, hello, HELLO_SIZE, &msg, &size);
                assert_int_equal(check(msg, size, key), -EBADMSG);
        }
        {
                _cleanup_free_ uint8_t *msg = NULL;
                size_t size = 0;
                assemble_signed(key, prot, prot_size, cbor_util_new_array(), hello, HELLO_SIZE, &msg, &size);
                assert_int_equal(check(msg, size, key), -EBADMSG);
        }

        /* Element types and counts. Signatures here are zeros: the structure fails first. */
        struct {
                const char *what;
                int n;                  /* elements: 3, 4 or 5 */
                bool payload_text;
                size_t sig_size;
                bool prot_text;
        } cases[] = {
                { "three elements", 3, false, 64, false },
                { "five elements", 5, false, 64, false },
                { "payload as text", 4, true, 64, false },
                { "63-byte signature", 4, false, 63, false },
                { "65-byte signature", 4, false, 65, false },
                { "empty signature", 4, false, 0, false },
                { "protected as text", 4, false, 64, true },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ uint8_t *msg = NULL;
                size_t size = 0;
                cbor_item_t *a = cbor_util_new_array();

                if (cases[i].prot_text)
                        assert_int_equal(cbor_util_array_push(a, cbor_util_new_text("a2")), 0);
                else
                        assert_int_equal(cbor_util_array_push(a, cbor_util_new_bytes(prot, prot_size)), 0);
                assert_int_equal(cbor_util_array_push(a, cbor_util_new_map()), 0);
                if (cases[i].n >= 4) {
                        if (cases[i].payload_text)
                                assert_int_equal(cbor_util_array_push(a, cbor_util_new_text("hello")), 0);
                        else
                                assert_int_equal(cbor_util_array_push(a, cbor_util_new_bytes(hello, HELLO_SIZE)), 0);
                }
                assert_int_equal(cbor_util_array_push(a, cbor_util_new_bytes(sig, cases[i].sig_size)), 0);
                if (cases[i].n == 5)
                        assert_int_equal(cbor_util_array_push(a, cbor_util_new_uint(0)), 0);
                encode_tagged(a, &msg, &size);
                int r = check(msg, size, key);
                if (r != -EBADMSG)
                        fail_msg("%s: not refused as malformed (%d)", cases[i].what, r);
        }

        /* Hostile headers and non-deterministic envelopes. */
        static const struct {
                const uint8_t bytes[8];
                size_t n;
        } hostile[] = {
                { { 0xd2 }, 1 },
                { { 0xd2, 0x9a, 0x10, 0x00, 0x00, 0x00 }, 6 },                 /* array of 2^28 */
                { { 0xd2, 0x84, 0x5a, 0xff, 0xff, 0xff, 0xff }, 7 },           /* 4 GiB bstr */
                { { 0xd2, 0x9f, 0x40, 0xa0, 0x40, 0x40, 0xff }, 7 },           /* indefinite array */
                { { 0xd2, 0xf6 }, 2 },                                         /* null */
        };
        for (size_t i = 0; i < ELEMENTSOF(hostile); i++)
                assert_int_equal(check(hostile[i].bytes, hostile[i].n, key), -EBADMSG);

        {
                /* A valid message with its array head in a two-byte form (98 04 instead of 84). */
                _cleanup_free_ uint8_t *msg = NULL, *wide = NULL;
                size_t size = 0;
                assemble_signed(key, prot, prot_size, NULL, hello, HELLO_SIZE, &msg, &size);
                assert_int_equal(check(msg, size, key), 0);
                assert_int_equal(msg[1], 0x84);
                wide = malloc(size + 1);
                assert_non_null(wide);
                wide[0] = 0xd2;
                wide[1] = 0x98;
                wide[2] = 0x04;
                memcpy(wide + 3, msg + 2, size - 2);
                assert_int_equal(check(wide, size + 1, key), -EBADMSG);
        }
}

static void test_oversized(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *prot = NULL, *big = NULL, *msg = NULL;
        size_t prot_size = 0, size = 0;
        uint8_t kid[34], sig[COSE_ES256_SIG_SIZE] = {};

        example_kid(kid, 0x22);
        encode_consume(header(-7, kid, sizeof(kid), NULL), &prot, &prot_size);

        /* One byte over the payload limit: within the envelope slack, refused by the payload check;
         * far over it: refused by the size limit before anything is parsed. */
        for (size_t extra = 1; extra <= 8192; extra *= 8192) {
                size_t n = COSE_PAYLOAD_MAX + extra;
                cbor_item_t *a = cbor_util_new_array();

                big = calloc(1, n);
                assert_non_null(big);
                assert_int_equal(cbor_util_array_push(a, cbor_util_new_bytes(prot, prot_size)), 0);
                assert_int_equal(cbor_util_array_push(a, cbor_util_new_map()), 0);
                assert_int_equal(cbor_util_array_push(a, cbor_util_new_bytes(big, n)), 0);
                assert_int_equal(cbor_util_array_push(a, cbor_util_new_bytes(sig, sizeof(sig))), 0);
                encode_tagged(a, &msg, &size);
                assert_int_equal(check(msg, size, key), -EBADMSG);
                big = mfree(big);
                msg = mfree(msg);
        }
}

static void test_key_types(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_EC_gen("P-384");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0;

        assert_non_null(p384);
        assert_non_null(ed);
        make_example_message(key, &msg, &size);
        assert_int_equal(check(msg, size, p384), -EINVAL);
        assert_int_equal(check(msg, size, ed), -EINVAL);
        assert_int_equal(check(msg, size, NULL), -EINVAL);
        assert_int_equal(cose_sign1_check(NULL, 5, key, NULL, NULL, NULL, NULL), -EINVAL);

        /* Outputs stay untouched on failure. */
        uint8_t *p = (uint8_t *) 0x1, *q = (uint8_t *) 0x2;
        size_t ps = 7, qs = 9;
        msg[size - 1] ^= 1;
        assert_int_equal(cose_sign1_check(msg, size, key, &p, &ps, &q, &qs), -EKEYREJECTED);
        assert_ptr_equal(p, (uint8_t *) 0x1);
        assert_ptr_equal(q, (uint8_t *) 0x2);
        assert_int_equal(ps, 7);
        assert_int_equal(qs, 9);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_roundtrip_variants),
                cmocka_unit_test(test_largest_payload),
                cmocka_unit_test(test_interop_sig_structure),
                cmocka_unit_test(test_prepare_rejects),
                cmocka_unit_test(test_golden_message),
                cmocka_unit_test(test_golden_receipt),
                cmocka_unit_test(test_receipt_signed),
                cmocka_unit_test(test_receipt_rejects),
                cmocka_unit_test(test_tampered),
                cmocka_unit_test(test_tag),
                cmocka_unit_test(test_trailing_and_truncated),
                cmocka_unit_test(test_every_flip),
                cmocka_unit_test(test_protected_profile),
                cmocka_unit_test(test_envelope_profile),
                cmocka_unit_test(test_oversized),
                cmocka_unit_test(test_key_types),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

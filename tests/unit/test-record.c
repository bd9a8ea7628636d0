/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Key records: validation of names and text, the CBOR encoding against the golden vectors in
 * docs/formats.md, and hostile or inconsistent record files (suite "unit").
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "common/cbor-util.h"
#include "common/hexutil.h"
#include "keystore/record.h"
#include "tests/lib/golden.h"

static const uint8_t example_pub[] = { 0x00, 0x06, 0x00, 0x23, 0x00, 0x0b, 0x00, 0x04 };
static const uint8_t example_priv[] = { 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef };

/* The example record of docs/formats.md (blobs shortened: the format does not look inside them). */
static KeyRecord *example_record(bool active) {
        KeyRecord *r = calloc(1, sizeof(*r));
        assert_non_null(r);
        r->name = strdup("invoice-bot");
        r->owner = strdup("finance-platform@example.com");
        r->description = strdup("pays approved invoices");
        r->uid = 1000;
        r->created = 1764000000;
        r->not_after = 1764086400;
        r->has_exe_digest = true;
        memset(r->exe_sha256, 0x11, sizeof(r->exe_sha256));
        r->kid[1] = 0x0b;
        memset(r->kid + 2, 0x22, 32);
        r->parent[1] = 0x0b;
        memset(r->parent + 2, 0x33, 32);
        if (active) {
                r->state = KEY_STATE_ACTIVE;
                assert_int_equal(key_record_set_blobs(r, example_pub, sizeof(example_pub), example_priv,
                                                      sizeof(example_priv)), 0);
                memset(r->auth, 0x44, sizeof(r->auth));
        } else {
                r->state = KEY_STATE_DESTROYED;
                r->destroyed = 1764050000;
        }
        return r;
}

static void test_names(void **state) {
        const char *good[] = { "a", "0", "agent-1", "a.b_c-d", "9lives",
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 64 */ };
        const char *bad[] = { "", "A", "Agent", "-a", ".a", "_a", "a/b", "../x", "a b", "a\n", "é", "a:b",
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 65 */ };

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(key_name_is_valid(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(key_name_is_valid(bad[i]));
        assert_false(key_name_is_valid(NULL));
}

static void test_owner_and_description(void **state) {
        char big[KEY_DESCRIPTION_MAX + 2];

        assert_true(key_owner_is_valid("Ana Müller <ana@example.com>"));
        assert_true(key_owner_is_valid("チーム"));
        assert_false(key_owner_is_valid(""));
        assert_false(key_owner_is_valid("a\tb"));
        assert_false(key_owner_is_valid("a\x7f"));
        assert_false(key_owner_is_valid("\xc2\x85"));        /* C1 control (NEL) */
        assert_false(key_owner_is_valid("\xc0\xaf"));        /* overlong "/" */
        assert_false(key_owner_is_valid("\xed\xa0\x80"));    /* surrogate */
        assert_false(key_owner_is_valid("\xf4\x90\x80\x80")); /* > U+10FFFF */
        assert_false(key_owner_is_valid("\xe2\x82"));        /* truncated */
        assert_true(key_description_is_valid(""));

        memset(big, 'x', sizeof(big));
        big[KEY_DESCRIPTION_MAX] = 0;
        assert_true(key_description_is_valid(big));
        big[KEY_DESCRIPTION_MAX] = 'x';
        big[KEY_DESCRIPTION_MAX + 1] = 0;
        assert_false(key_description_is_valid(big));
        big[KEY_OWNER_MAX + 1] = 0;
        assert_false(key_owner_is_valid(big));
        big[KEY_OWNER_MAX] = 0;
        assert_true(key_owner_is_valid(big));
}

static void check_golden(bool active, const char *vector) {
        _cleanup_(key_record_freep) KeyRecord *r = example_record(active), *back = NULL;
        _cleanup_free_ uint8_t *enc = NULL, *golden = NULL;
        size_t enc_size = 0, golden_size = 0;

        assert_int_equal(key_record_to_cbor(r, &enc, &enc_size), 0);
        assert_int_equal(golden_load(vector, &golden, &golden_size), 0);
        if (enc_size != golden_size || memcmp(enc, golden, enc_size) != 0) {
                _cleanup_free_ char *hex = hex_encode(enc, enc_size);
                fail_msg("encoding differs from docs/formats.md golden:%s; encoder gives %s", vector, hex);
        }

        /* ...and decodes back to the same record. */
        assert_int_equal(key_record_from_cbor(golden, golden_size, &back, NULL), 0);
        assert_string_equal(back->name, r->name);
        assert_string_equal(back->owner, r->owner);
        assert_string_equal(back->description, r->description);
        assert_int_equal(back->uid, r->uid);
        assert_int_equal(back->created, r->created);
        assert_int_equal(back->not_after, r->not_after);
        assert_int_equal(back->destroyed, r->destroyed);
        assert_int_equal(back->state, r->state);
        assert_true(back->has_exe_digest);
        assert_memory_equal(back->exe_sha256, r->exe_sha256, 32);
        assert_memory_equal(back->kid, r->kid, KEY_KID_SIZE);
        assert_memory_equal(back->parent, r->parent, KEY_KID_SIZE);
        assert_int_equal(back->pub_size, r->pub_size);
        assert_int_equal(back->priv_size, r->priv_size);
        if (active) {
                assert_memory_equal(back->pub, r->pub, r->pub_size);
                assert_memory_equal(back->priv, r->priv, r->priv_size);
                assert_memory_equal(back->auth, r->auth, KEY_AUTH_SIZE);
        }
}

static void test_golden_active(void **state) {
        check_golden(true, "key-record-active");
}

static void test_golden_tombstone(void **state) {
        check_golden(false, "key-record-tombstone");
}

static void test_minimal_record(void **state) {
        /* Optional fields absent: they are omitted, never null, and come back absent. */
        _cleanup_(key_record_freep) KeyRecord *r = example_record(true), *back = NULL;
        _cleanup_free_ uint8_t *enc = NULL;
        size_t size = 0;

        r->description = mfree(r->description);
        r->not_after = 0;
        r->has_exe_digest = false;
        assert_int_equal(key_record_to_cbor(r, &enc, &size), 0);
        assert_int_equal(key_record_from_cbor(enc, size, &back, NULL), 0);
        assert_null(back->description);
        assert_int_equal(back->not_after, 0);
        assert_false(back->has_exe_digest);
}

static void test_inconsistent_not_encoded(void **state) {
        _cleanup_(key_record_freep) KeyRecord *r = example_record(true);
        uint8_t *enc = NULL;
        size_t size = 0;

        /* An active record without its private blob. */
        r->priv = NULL;
        r->priv_size = 0;
        assert_int_equal(key_record_to_cbor(r, &enc, &size), -EINVAL);
        assert_int_equal(key_record_set_blobs(r, example_pub, sizeof(example_pub), example_priv, 1), 0);
        assert_int_equal(key_record_set_blobs(r, example_pub, sizeof(example_pub), example_priv, 0), -EINVAL);
        free(r->name);
        r->name = strdup("Bad");
        assert_int_equal(key_record_to_cbor(r, &enc, &size), -EINVAL);
}

/* Re-encode the example with one field replaced (or added, or removed when value is NULL). */
static void encode_variant(bool active, const char *key, cbor_item_t *value, uint8_t **ret, size_t *ret_size) {
        _cleanup_(key_record_freep) KeyRecord *r = example_record(active);
        _cleanup_free_ uint8_t *enc = NULL;
        _cleanup_cbor_ cbor_item_t *in = NULL;
        size_t size = 0;
        CborLimits lim = { .max_size = 65536, .max_depth = 4, .max_items = 100 };

        assert_int_equal(key_record_to_cbor(r, &enc, &size), 0);
        assert_int_equal(cbor_util_decode(enc, size, &lim, &in, NULL), 0);
        cbor_item_t *out = cbor_util_new_map();
        struct cbor_pair *pairs = cbor_map_handle(in);
        for (size_t i = 0; i < cbor_map_size(in); i++) {
                const char *k = NULL;
                size_t kl = 0;
                assert_int_equal(cbor_util_get_text(pairs[i].key, &k, &kl), 0);
                if (kl == strlen(key) && memcmp(k, key, kl) == 0)
                        continue;
                assert_int_equal(cbor_util_map_put(out, cbor_incref(pairs[i].key), cbor_incref(pairs[i].value)), 0);
        }
        if (value)
                assert_int_equal(cbor_util_map_put_text(out, key, value), 0);
        assert_int_equal(cbor_util_encode(out, ret, ret_size), 0);
        cbor_decref(&out);
}

static void expect_rejected(bool active, const char *key, cbor_item_t *value) {
        _cleanup_free_ uint8_t *enc = NULL;
        size_t size = 0;
        KeyRecord *r = NULL;
        const char *reason = NULL;

        encode_variant(active, key, value, &enc, &size);
        int k = key_record_from_cbor(enc, size, &r, &reason);
        if (k != -EBADMSG)
                fail_msg("variant with field '%s' was not rejected (%d)", key, k);
        assert_non_null(reason);
        assert_null(r);
}

static void test_rejects_bad_fields(void **state) {
        uint8_t kid33[33] = {}, auth31[31] = {}, blob[2000] = {};

        expect_rejected(true, "v", cbor_util_new_uint(2));
        expect_rejected(true, "v", NULL);
        expect_rejected(true, "v", cbor_util_new_text("1"));
        expect_rejected(true, "unknown", cbor_util_new_uint(1));
        expect_rejected(true, "name", cbor_util_new_text("Invalid Name"));
        expect_rejected(true, "name", NULL);
        expect_rejected(true, "owner", cbor_util_new_text(""));
        expect_rejected(true, "owner", cbor_util_new_bytes("x", 1));
        expect_rejected(true, "uid", cbor_util_new_uint(UINT32_MAX));
        expect_rejected(true, "uid", cbor_util_new_int(-1));
        expect_rejected(true, "created", NULL);
        expect_rejected(true, "created", cbor_util_new_text("yesterday"));
        expect_rejected(true, "state", cbor_util_new_text("paused"));
        expect_rejected(true, "kid", cbor_util_new_bytes(kid33, sizeof(kid33)));
        expect_rejected(true, "parent", NULL);
        expect_rejected(true, "auth", cbor_util_new_bytes(auth31, sizeof(auth31)));
        expect_rejected(true, "auth", NULL);
        expect_rejected(true, "priv", NULL);
        expect_rejected(true, "pub", cbor_util_new_bytes(blob, sizeof(blob)));
        expect_rejected(true, "destroyed", cbor_util_new_uint(5));
        expect_rejected(true, "exe_sha256", cbor_util_new_bytes(kid33, 31));
        /* A tombstone never carries secrets or blobs. */
        expect_rejected(false, "auth", cbor_util_new_bytes(kid33, 32));
        expect_rejected(false, "priv", cbor_util_new_bytes(kid33, 4));
        expect_rejected(false, "destroyed", NULL);
}

/* A rotated key names the key it replaced: all three fields come back; one alone is refused. */
static void test_replaces(void **state) {
        _cleanup_(key_record_freep) KeyRecord *r = example_record(true), *back = NULL, *copy = NULL;
        _cleanup_free_ uint8_t *enc = NULL;
        uint8_t kid[KEY_KID_SIZE] = { 0x00, 0x0b, 0x55 };
        size_t size = 0;

        uint8_t spki[KEY_SPKI_DIGEST_SIZE];
        memset(spki, 0x66, sizeof(spki));
        assert_int_equal(key_record_set_replaces(r, kid, spki, "quarterly\nrotation"), -EINVAL);
        assert_null(r->replaces);
        assert_int_equal(key_record_set_replaces(r, kid, spki, "quarterly rotation"), 0);
        assert_int_equal(key_record_to_cbor(r, &enc, &size), 0);
        assert_int_equal(key_record_from_cbor(enc, size, &back, NULL), 0);
        assert_non_null(back->replaces);
        assert_memory_equal(back->replaces->kid, kid, sizeof(kid));
        assert_memory_equal(back->replaces->spki_sha256, spki, 32);
        assert_string_equal(back->replaces->reason, "quarterly rotation");
        assert_int_equal(key_record_copy(back, &copy), 0);
        assert_string_equal(copy->replaces->reason, "quarterly rotation");
        assert_memory_equal(copy->pub, back->pub, back->pub_size);
        assert_memory_equal(copy->priv, back->priv, back->priv_size);
        assert_ptr_equal(copy->priv, copy->pub + copy->pub_size);

        /* named_tasks_only travels with the record; written only when set, and never as false. */
        r->named_tasks_only = true;
        enc = mfree(enc);
        back = key_record_free(back);
        assert_int_equal(key_record_to_cbor(r, &enc, &size), 0);
        assert_int_equal(key_record_from_cbor(enc, size, &back, NULL), 0);
        assert_true(back->named_tasks_only);
        expect_rejected(true, "named_tasks_only", cbor_util_new_bool(false));
        expect_rejected(true, "named_tasks_only", cbor_util_new_uint(1));

        /* Inconsistent in memory: not encoded. */
        r->replaces->reason[0] = '\n';
        enc = mfree(enc);
        assert_int_equal(key_record_to_cbor(r, &enc, &size), -EINVAL);

        /* One of the three on disk: refused. */
        expect_rejected(true, "replaces_kid", cbor_util_new_bytes(kid, sizeof(kid)));
        expect_rejected(true, "replaces_reason", cbor_util_new_text("x"));
        expect_rejected(true, "replaces_spki", cbor_util_new_bytes(kid, 32));
}

static void test_rejects_hostile_bytes(void **state) {
        _cleanup_(key_record_freep) KeyRecord *r = example_record(true);
        _cleanup_free_ uint8_t *enc = NULL;
        size_t size = 0;
        KeyRecord *out = NULL;

        assert_int_equal(key_record_from_cbor((const uint8_t *) "\x9a\x10\x00\x00\x00", 5, &out, NULL), -EBADMSG);
        assert_int_equal(key_record_from_cbor((const uint8_t *) "", 0, &out, NULL), -EBADMSG);
        assert_int_equal(key_record_from_cbor((const uint8_t *) "\xa0", 1, &out, NULL), -EBADMSG);

        /* Every truncation of a valid record is refused; every single-bit flip is refused or yields a
         * record that still satisfies every check (never a crash or a leak). */
        assert_int_equal(key_record_to_cbor(r, &enc, &size), 0);
        for (size_t n = 0; n < size; n++)
                assert_true(key_record_from_cbor(enc, n, &out, NULL) < 0);
        for (size_t i = 0; i < size; i++)
                for (unsigned bit = 0; bit < 8; bit++) {
                        enc[i] ^= (uint8_t) (1u << bit);
                        if (key_record_from_cbor(enc, size, &out, NULL) == 0)
                                out = key_record_free(out);
                        enc[i] ^= (uint8_t) (1u << bit);
                }

        /* A trailing byte after a valid record. */
        uint8_t *longer = malloc(size + 1);
        memcpy(longer, enc, size);
        longer[size] = 0;
        assert_int_equal(key_record_from_cbor(longer, size + 1, &out, NULL), -EBADMSG);
        free(longer);
}

static void test_tombstone_conversion(void **state) {
        _cleanup_(key_record_freep) KeyRecord *r = example_record(true), *copy = NULL;

        assert_int_equal(key_record_copy(r, &copy), 0);
        assert_memory_equal(copy->auth, r->auth, KEY_AUTH_SIZE);
        key_record_make_tombstone(copy, 77);
        assert_int_equal(copy->state, KEY_STATE_DESTROYED);
        assert_int_equal(copy->destroyed, 77);
        assert_null(copy->pub);
        assert_null(copy->priv);
        static const uint8_t zero[KEY_AUTH_SIZE] = {};
        assert_memory_equal(copy->auth, zero, KEY_AUTH_SIZE);
        /* The original is untouched. */
        assert_non_null(r->priv);
        assert_int_equal(r->state, KEY_STATE_ACTIVE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_owner_and_description),
                cmocka_unit_test(test_golden_active),
                cmocka_unit_test(test_golden_tombstone),
                cmocka_unit_test(test_minimal_record),
                cmocka_unit_test(test_inconsistent_not_encoded),
                cmocka_unit_test(test_rejects_bad_fields),
                cmocka_unit_test(test_rejects_hostile_bytes),
                cmocka_unit_test(test_replaces),
                cmocka_unit_test(test_tombstone_conversion),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

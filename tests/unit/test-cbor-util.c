/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for common/cbor-util.c: the validator against hostile and non-deterministic inputs, the
 * deterministic encoder against golden vectors (RFC 8949 §4.2.1), reference counting of the builders,
 * the accessors, and an exhaustive mutation of a valid document.
 *
 * Every input is copied into a heap buffer of exactly its length, so that a read past the end shows up
 * under AddressSanitizer and valgrind.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cbor-util.h"
#include "tests/lib/golden.h"
#include "tests/lib/test-budget.h"
#include "common/macro.h"

static const uint64_t test_tags[] = { 1, 18, 98, 1000 };

#define TEST_LIMITS(f)                                          \
        {                                                       \
                .max_size = 1 << 20,                            \
                .max_depth = CBOR_UTIL_MAX_DEPTH,               \
                .max_items = 100000,                            \
                .tags = test_tags,                              \
                .n_tags = ELEMENTSOF(test_tags),                \
                .flags = (f),                                   \
        }

static const CborLimits plain = TEST_LIMITS(0);
static const CborLimits det = TEST_LIMITS(CBOR_VALIDATE_DETERMINISTIC);

/* For the mutation test: without 18, whose one-byte form the encoder writes and the validator refuses
 * (it is carried inside a byte string and stripped by hand, DESIGN §5). */
static const uint64_t mutation_tags[] = { 1, 98, 1000 };
static const CborLimits mut_plain = {
        .max_size = 1 << 20,
        .max_depth = CBOR_UTIL_MAX_DEPTH,
        .max_items = 100000,
        .tags = mutation_tags,
        .n_tags = ELEMENTSOF(mutation_tags),
};
static const CborLimits mut_det = {
        .max_size = 1 << 20,
        .max_depth = CBOR_UTIL_MAX_DEPTH,
        .max_items = 100000,
        .tags = mutation_tags,
        .n_tags = ELEMENTSOF(mutation_tags),
        .flags = CBOR_VALIDATE_DETERMINISTIC,
};

/* ---------------------------------------------------------------------------------------------- */
/* Helpers */

/* Hex with optional spaces into an exactly sized heap buffer (never NULL, even when empty). */
static uint8_t *unhex(const char *hex, size_t *ret_len) {
        size_t n = 0;
        uint8_t *p = malloc(strlen(hex) / 2 + 1);

        assert_non_null(p);
        for (const char *c = hex; *c;) {
                unsigned v;
                if (*c == ' ') {
                        c++;
                        continue;
                }
                assert_int_equal(sscanf(c, "%2x", &v), 1);
                p[n++] = (uint8_t) v;
                c += 2;
        }
        /* Shrink to the exact size so that over-reads are caught. */
        uint8_t *q = malloc(n ?: 1);
        assert_non_null(q);
        memcpy(q, p, n);
        free(p);
        *ret_len = n;
        return q;
}

static char *tohex(const uint8_t *p, size_t n) {
        char *s = malloc(2 * n + 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                sprintf(s + 2 * i, "%02x", p[i]);
        s[2 * n] = 0;
        return s;
}

static char *strip_spaces(const char *hex) {
        char *s = strdup(hex), *o = s;
        assert_non_null(s);
        for (const char *c = hex; *c; c++)
                if (*c != ' ')
                        *o++ = *c;
        *o = 0;
        return s;
}

static int validate_hex_err(const char *hex, const CborLimits *limits, CborError *err) {
        size_t n;
        _cleanup_free_ uint8_t *b = unhex(hex, &n);
        return cbor_util_validate(b, n, limits, err);
}

static int validate_hex(const char *hex, const CborLimits *limits) {
        CborError err = {};
        int r = validate_hex_err(hex, limits, &err);
        if (r < 0)
                assert_non_null(err.reason);    /* every failure says why */
        return r;
}

static void assert_refused(const char *hex, const CborLimits *limits, int expected, size_t offset) {
        CborError err = {};
        int r = validate_hex_err(hex, limits, &err);
        if (r != expected || err.offset != offset)
                print_error("input %s: r=%d offset=%zu reason=%s\n", hex, r, err.offset, err.reason);
        assert_int_equal(r, expected);
        assert_int_equal(err.offset, offset);
        assert_non_null(err.reason);
}

static void assert_reason_contains(const char *hex, const CborLimits *limits, const char *what) {
        CborError err = {};
        assert_true(validate_hex_err(hex, limits, &err) < 0);
        assert_non_null(err.reason);
        if (!strstr(err.reason, what))
                print_error("input %s: reason '%s' lacks '%s'\n", hex, err.reason, what);
        assert_non_null(strstr(err.reason, what));
}

/* Encodes item (consuming it) and compares with the expected hex. */
static void assert_encodes(cbor_item_t *item, const char *expected_hex) {
        _cleanup_cbor_ cbor_item_t *i = item;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *got = NULL, *want = strip_spaces(expected_hex);
        size_t len = 0;

        assert_non_null(i);
        assert_int_equal(cbor_util_encode(i, &buf, &len), 0);
        got = tohex(buf, len);
        assert_string_equal(got, want);
}

static void assert_encode_fails(cbor_item_t *item, int expected) {
        _cleanup_cbor_ cbor_item_t *i = item;
        uint8_t *buf = (uint8_t *) 0x1;         /* must stay untouched */
        size_t len = 77;

        assert_non_null(i);
        assert_int_equal(cbor_util_encode(i, &buf, &len), expected);
        assert_ptr_equal(buf, (uint8_t *) 0x1);
        assert_int_equal(len, 77);
}

/* A string of n nested containers or tags around an innermost item. */
static char *nested_hex(const char *open, unsigned n, const char *inner) {
        size_t l = strlen(open) * n + strlen(inner) + 1;
        char *s = malloc(l);
        assert_non_null(s);
        s[0] = 0;
        for (unsigned i = 0; i < n; i++)
                strcat(s, open);
        strcat(s, inner);
        return s;
}

/* ---------------------------------------------------------------------------------------------- */
/* Validator: well-formed input */

static void test_validate_accepts_basic(_unused_ void **state) {
        static const char *const ok[] = {
                "00", "17", "1818", "18ff", "190100", "1a00010000", "1b0000000100000000",
                "1bffffffffffffffff", "20", "37", "3818", "3b7fffffffffffffff", "3bffffffffffffffff",
                "40", "43010203", "60", "6176", "80", "83010203", "a0", "a1 00 00", "f4", "f5",
                "c1 1a 5f5e1000", "d8 62 80", "d9 03e8 00", "82 81 80 a1 61 61 f5",
                "a5 01 00 19 0109 00 20 00 61 76 01 63 656174 40",
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                if (validate_hex(ok[i], &det) != 0 || validate_hex(ok[i], &plain) != 0)
                        print_error("refused: %s\n", ok[i]);
                assert_int_equal(validate_hex(ok[i], &det), 0);
                assert_int_equal(validate_hex(ok[i], &plain), 0);
        }
}

static void test_validate_success_leaves_error_alone(_unused_ void **state) {
        CborError err = { .offset = 4711, .reason = "untouched" };
        assert_int_equal(validate_hex_err("00", &det, &err), 0);
        assert_int_equal(err.offset, 4711);
        assert_string_equal(err.reason, "untouched");

        /* A NULL error pointer is fine on both paths. */
        assert_int_equal(validate_hex_err("00", &det, NULL), 0);
        assert_int_equal(validate_hex_err("ff", &det, NULL), -EBADMSG);
}

static void test_validate_bad_arguments(_unused_ void **state) {
        CborError err = {};
        uint8_t b = 0;
        CborLimits l = TEST_LIMITS(0);

        assert_int_equal(cbor_util_validate(&b, 1, NULL, &err), -EINVAL);
        assert_non_null(err.reason);
        assert_int_equal(cbor_util_validate(NULL, 1, &plain, NULL), -EINVAL);

        l.max_depth = CBOR_UTIL_MAX_DEPTH + 1;
        assert_int_equal(cbor_util_validate(&b, 1, &l, NULL), -EINVAL);

        l = (CborLimits) TEST_LIMITS(0);
        l.tags = NULL;
        assert_int_equal(cbor_util_validate(&b, 1, &l, NULL), -EINVAL);
        l.n_tags = 0;
        assert_int_equal(cbor_util_validate(&b, 1, &l, NULL), 0);
}

static void test_validate_empty(_unused_ void **state) {
        CborError err = {};
        assert_int_equal(cbor_util_validate(NULL, 0, &plain, &err), -EBADMSG);
        assert_int_equal(err.offset, 0);
        assert_int_equal(validate_hex("", &det), -EBADMSG);
}

/* ---------------------------------------------------------------------------------------------- */
/* Validator: hostile headers */

static void test_validate_huge_array_count(_unused_ void **state) {
        /* libcbor 0.8 would allocate 2 GiB for this; we must fail on the header alone. */
        assert_refused("9a 10000000", &plain, -EBADMSG, 0);
        assert_refused("9a 10000000", &det, -EBADMSG, 0);
        assert_reason_contains("9a 10000000", &plain, "array count");
        assert_refused("9b ffffffffffffffff", &plain, -EBADMSG, 0);
        assert_refused("9b ffffffffffffffff 00 00 00", &plain, -EBADMSG, 0);
        assert_refused("82 9a 10000000", &plain, -EBADMSG, 1);
        /* Count equal to the bytes left but the elements are too big. */
        assert_refused("83 19 0100 00", &plain, -EBADMSG, 5);
}

static void test_validate_huge_map_count(_unused_ void **state) {
        assert_refused("ba 10000000 00", &plain, -EBADMSG, 0);
        assert_reason_contains("ba 10000000 00", &plain, "map count");
        assert_refused("bb ffffffffffffffff 00 00", &plain, -EBADMSG, 0);
        assert_refused("bb 8000000000000000 00 00", &plain, -EBADMSG, 0);
        /* Two pairs need at least four bytes. */
        assert_refused("a2 00 00 00", &plain, -EBADMSG, 0);
}

static void test_validate_huge_string_length(_unused_ void **state) {
        assert_refused("5a ffffffff", &plain, -EBADMSG, 0);
        assert_reason_contains("5a ffffffff", &plain, "string longer");
        assert_refused("7a ffffffff", &plain, -EBADMSG, 0);
        assert_refused("5b ffffffffffffffff 00", &plain, -EBADMSG, 0);
        assert_refused("7b ffffffffffffffff 00", &plain, -EBADMSG, 0);
        assert_refused("7b 8000000000000000 00", &plain, -EBADMSG, 0);
        assert_refused("41", &plain, -EBADMSG, 0);
        assert_refused("62 61", &plain, -EBADMSG, 0);
        assert_refused("81 43 0102", &plain, -EBADMSG, 1);
}

static void test_validate_truncated_heads(_unused_ void **state) {
        static const char *const bad[] = {
                "18", "19 01", "1a 000100", "1b 00000001000000", "38", "58", "78", "98", "b8", "d8",
                "d9 03", "f9 3c", "fa 3f80", "fb 3ff0",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(validate_hex(bad[i], &plain), -EBADMSG);
                assert_int_equal(validate_hex(bad[i], &det), -EBADMSG);
        }
}

static void test_validate_indefinite_refused(_unused_ void **state) {
        static const char *const bad[] = {
                "9f ff", "9f 01 02 ff", "bf ff", "bf 01 02 ff", "5f ff", "5f 41 00 ff", "7f ff",
                "7f 61 61 ff",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_refused(bad[i], &plain, -EBADMSG, 0);
                assert_refused(bad[i], &det, -EBADMSG, 0);
                assert_reason_contains(bad[i], &plain, "indefinite");
        }
        assert_refused("81 9f ff", &plain, -EBADMSG, 1);
        assert_refused("a1 00 bf ff", &plain, -EBADMSG, 2);
}

static void test_validate_break_refused(_unused_ void **state) {
        assert_refused("ff", &plain, -EBADMSG, 0);
        assert_reason_contains("ff", &plain, "break");
        assert_refused("81 ff", &plain, -EBADMSG, 1);
        assert_refused("a1 ff 00", &plain, -EBADMSG, 1);
        assert_refused("a1 00 ff", &plain, -EBADMSG, 2);
        assert_refused("c1 ff", &plain, -EBADMSG, 1);
        /* ai 31 is not well-formed for integers and tags at all (RFC 8949 §3). */
        assert_refused("1f", &plain, -EBADMSG, 0);
        assert_refused("3f", &plain, -EBADMSG, 0);
        assert_refused("df 00", &plain, -EBADMSG, 0);
}

static void test_validate_reserved_ai(_unused_ void **state) {
        for (unsigned major = 0; major < 8; major++)
                for (unsigned ai = 28; ai <= 30; ai++) {
                        char hex[64];
                        snprintf(hex, sizeof(hex), "%02x 00 00 00 00 00 00 00 00", major << 5 | ai);
                        assert_refused(hex, &plain, -EBADMSG, 0);
                        assert_refused(hex, &det, -EBADMSG, 0);
                        assert_reason_contains(hex, &plain, "reserved");
                }
}

static void test_validate_trailing_bytes(_unused_ void **state) {
        assert_refused("00 00", &plain, -EBADMSG, 1);
        assert_reason_contains("00 00", &plain, "trailing");
        assert_refused("80 00", &det, -EBADMSG, 1);
        assert_refused("a0 ff", &det, -EBADMSG, 1);
        assert_refused("6176 76", &det, -EBADMSG, 2);
        assert_refused("82 01 02 03", &plain, -EBADMSG, 3);
}

static void test_validate_every_prefix_refused(_unused_ void **state) {
        const char *doc = "a5 01 82 20 f5 19 0109 c1 1a 5f5e1000 20 43 010203 61 76 01 "
                          "63 656174 a2 00 62 c3a9 01 d8 62 81 64 f09f9880";
        size_t n;
        _cleanup_free_ uint8_t *b = unhex(doc, &n);

        assert_int_equal(cbor_util_validate(b, n, &det, NULL), 0);
        for (size_t l = 0; l < n; l++) {
                _cleanup_free_ uint8_t *p = malloc(l ?: 1);
                assert_non_null(p);
                memcpy(p, b, l);
                assert_int_equal(cbor_util_validate(p, l, &det, NULL), -EBADMSG);
                assert_int_equal(cbor_util_validate(p, l, &plain, NULL), -EBADMSG);
        }
}

/* ---------------------------------------------------------------------------------------------- */
/* Validator: simple values, UTF-8, tags */

static void test_validate_simple_values(_unused_ void **state) {
        assert_int_equal(validate_hex("f4", &det), 0);
        assert_int_equal(validate_hex("f5", &det), 0);

        assert_refused("f6", &plain, -EBADMSG, 0);
        assert_reason_contains("f6", &plain, "null");
        assert_refused("f7", &plain, -EBADMSG, 0);
        assert_reason_contains("f7", &plain, "undefined");
        assert_refused("e0", &plain, -EBADMSG, 0);
        assert_refused("f3", &plain, -EBADMSG, 0);
        assert_refused("f8 20", &plain, -EBADMSG, 0);
        assert_refused("f8 ff", &plain, -EBADMSG, 0);
        assert_refused("f8 18", &plain, -EBADMSG, 0);
        assert_refused("f8 14", &plain, -EBADMSG, 0);   /* false in a non-well-formed two-byte form */
        assert_refused("82 f5 f6", &plain, -EBADMSG, 2);
}

static void test_validate_floats_refused(_unused_ void **state) {
        static const char *const floats[] = {
                "f9 3c00", "f9 7e00", "fa 3f800000", "fb 3ff0000000000000", "f9 0000",
        };
        for (size_t i = 0; i < ELEMENTSOF(floats); i++) {
                assert_refused(floats[i], &plain, -EBADMSG, 0);
                assert_refused(floats[i], &det, -EBADMSG, 0);
                assert_reason_contains(floats[i], &plain, "floating-point");
        }
        assert_refused("a1 00 fb 3ff0000000000000", &plain, -EBADMSG, 2);
}

static void test_validate_utf8(_unused_ void **state) {
        static const char *const good[] = {
                "61 00",                /* NUL is valid UTF-8 (get_text refuses it) */
                "61 7f", "62 c280", "62 dfbf", "62 c3a9", "63 e0a080", "63 e282ac", "63 ed9fbf",
                "63 ee8080", "63 efbfbf", "64 f0908080", "64 f09f9880", "64 f48fbfbf",
        };
        static const struct {
                const char *hex;
                size_t offset;
        } bad[] = {
                { "61 80", 1 },                 /* lone continuation byte */
                { "61 bf", 1 },
                { "62 c080", 1 },               /* overlong NUL */
                { "62 c1bf", 1 },               /* overlong */
                { "63 e08080", 1 },             /* overlong 3-byte */
                { "63 e09fbf", 1 },
                { "64 f08fbfbf", 1 },           /* overlong 4-byte */
                { "63 eda080", 1 },             /* surrogate U+D800 */
                { "63 edbfbf", 1 },             /* surrogate U+DFFF */
                { "64 f4908080", 1 },           /* U+110000 */
                { "64 f7bfbfbf", 1 },
                { "61 f5", 1 },
                { "61 ff", 1 },
                { "61 fe", 1 },
                { "61 c3", 1 },                 /* truncated sequence */
                { "62 e282", 1 },
                { "63 f09f98", 1 },
                { "62 c328", 1 },               /* bad continuation */
                { "63 e228a1", 1 },
                { "64 f0289f80", 1 },
                { "64 61 62 63 c3", 4 },        /* offset of the bad byte */
                { "82 61 61 62 61 ff", 5 },
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_int_equal(validate_hex(good[i], &det), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_refused(bad[i].hex, &plain, -EBADMSG, bad[i].offset);
                assert_reason_contains(bad[i].hex, &plain, "UTF-8");
        }
        /* Byte strings are not text: anything goes. */
        assert_int_equal(validate_hex("42 c080", &det), 0);
}

static void test_validate_tags(_unused_ void **state) {
        CborLimits none = TEST_LIMITS(0);

        assert_int_equal(validate_hex("c1 00", &det), 0);
        assert_int_equal(validate_hex("d8 62 80", &det), 0);
        assert_int_equal(validate_hex("d9 03e8 00", &det), 0);
        assert_int_equal(validate_hex("c1 c1 00", &det), 0);

        assert_refused("c2 40", &plain, -EBADMSG, 0);
        assert_reason_contains("c2 40", &plain, "tag not allowed");
        assert_refused("d8 20 60", &plain, -EBADMSG, 0);
        assert_refused("c1", &plain, -EBADMSG, 1);     /* tag without content */

        /* The one-byte heads 0xc6..0xd4 are refused even when the tag is allowed (18 is). */
        for (unsigned t = 6; t <= 20; t++) {
                char hex[16];
                snprintf(hex, sizeof(hex), "%02x 80", 0xc0 | t);
                assert_refused(hex, &plain, -EBADMSG, 0);
                assert_refused(hex, &det, -EBADMSG, 0);
        }
        assert_reason_contains("d2 80", &plain, "tag 6..20");
        assert_refused("81 d2 80", &plain, -EBADMSG, 1);
        assert_refused("a1 00 d2 80", &plain, -EBADMSG, 2);

        /* Tag 18 in a wider form is refused too: it would re-encode as the one-byte form (fuzzing found
         * that the two could not round-trip). */
        assert_refused("d8 12 80", &plain, -EBADMSG, 0);
        assert_refused("d8 12 80", &det, -EBADMSG, 0);

        none.tags = NULL;
        none.n_tags = 0;
        assert_refused("c1 00", &none, -EBADMSG, 0);
}

/* ---------------------------------------------------------------------------------------------- */
/* Validator: maps */

static void test_validate_duplicate_keys_deterministic(_unused_ void **state) {
        assert_refused("a2 01 00 01 00", &det, -EBADMSG, 3);
        assert_reason_contains("a2 01 00 01 00", &det, "duplicate");
        assert_refused("a2 6176 00 6176 01", &det, -EBADMSG, 4);
        assert_refused("a2 82 01 02 00 82 01 02 00", &det, -EBADMSG, 5);
        assert_refused("81 a2 20 f4 20 f5", &det, -EBADMSG, 4);
}

static void test_validate_duplicate_keys_plain(_unused_ void **state) {
        /* Adjacent duplicates. */
        assert_refused("a2 01 00 01 00", &plain, -EBADMSG, 3);
        assert_refused("a2 6176 00 6176 01", &plain, -EBADMSG, 4);
        /* Duplicates found only after sorting: the offset is the later one. */
        assert_refused("a3 02 00 01 00 02 00", &plain, -EBADMSG, 5);
        assert_reason_contains("a3 02 00 01 00 02 00", &plain, "duplicate");
        assert_refused("a3 6176 00 01 00 6176 00", &plain, -EBADMSG, 6);
        /* Same value in different widths is the same key to libcbor and to every accessor. */
        assert_refused("a2 05 00 18 05 00", &plain, -EBADMSG, 3);
        assert_refused("a2 18 05 00 05 00", &plain, -EBADMSG, 4);
        assert_refused("a3 18 05 00 01 00 1a 00000005 00", &plain, -EBADMSG, 6);
        assert_refused("a2 6176 00 78 01 76 00", &plain, -EBADMSG, 4);
        assert_refused("a2 c1 00 00 d8 01 00 00", &plain, -EBADMSG, 4);
        assert_refused("a2 82 01 02 00 98 02 01 02 00", &plain, -EBADMSG, 5);
        /* Different values that look alike are fine. */
        assert_int_equal(validate_hex("a2 05 00 25 00", &plain), 0);
        assert_int_equal(validate_hex("a2 45 0102030405 00 65 0102030405 00", &plain), 0);
        assert_int_equal(validate_hex("a2 82 01 02 00 82 01 03 00", &plain), 0);
        assert_int_equal(validate_hex("a3 02 00 01 00 03 00", &plain), 0);
}

/* A big map with keys in descending order and one duplicate: exercises the sort. */
static void test_validate_duplicate_keys_large_map(_unused_ void **state) {
        const unsigned n = 300;          /* keys 1000..702 (two-byte), count in two bytes */
        char *hex = malloc(16 * (n + 2));
        assert_non_null(hex);

        sprintf(hex, "b9 %04x", n);
        for (unsigned i = 0; i < n - 1; i++)
                sprintf(hex + strlen(hex), " 19 %04x 00", 1000 - i);
        sprintf(hex + strlen(hex), " 19 %04x 00", 1000 - 57);

        size_t len;
        _cleanup_free_ uint8_t *b = unhex(hex, &len);
        CborError err = {};
        assert_int_equal(cbor_util_validate(b, len, &plain, &err), -EBADMSG);
        assert_int_equal(err.offset, 3 + 4 * (n - 1));
        assert_int_equal(cbor_util_validate(b, len, &det, &err), -EBADMSG);
        assert_int_equal(err.offset, 3 + 4);   /* the second key is already out of order */

        /* Replace the duplicate by a fresh key: fine without the flag. */
        b[len - 3] = 0x01;
        b[len - 2] = 0x00;
        assert_int_equal(cbor_util_validate(b, len, &plain, NULL), 0);
        free(hex);
}

static void test_validate_key_order(_unused_ void **state) {
        /* RFC 8949 §4.2.1: bytewise order of the encoded keys. */
        assert_int_equal(validate_hex("a2 01 00 02 00", &det), 0);
        assert_refused("a2 02 00 01 00", &det, -EBADMSG, 3);
        assert_reason_contains("a2 02 00 01 00", &det, "order");
        assert_int_equal(validate_hex("a2 02 00 01 00", &plain), 0);

        /* "v" (61 76) before "eat" (63 65 61 74): shorter encodings come first here. */
        assert_int_equal(validate_hex("a2 6176 00 63656174 00", &det), 0);
        assert_refused("a2 63656174 00 6176 00", &det, -EBADMSG, 6);
        assert_int_equal(validate_hex("a2 63656174 00 6176 00", &plain), 0);

        /* 265 (19 01 09) before -1 (20); integers before text. */
        assert_int_equal(validate_hex("a2 190109 00 20 00", &det), 0);
        assert_refused("a2 20 00 190109 00", &det, -EBADMSG, 3);
        assert_refused("a2 20 00 01 00", &det, -EBADMSG, 3);
        assert_refused("a2 6161 00 17 00", &det, -EBADMSG, 4);
        assert_int_equal(validate_hex("a3 17 00 1818 00 6161 00", &det), 0);
        assert_int_equal(validate_hex("a2 6161 00 6162 00", &det), 0);
        assert_refused("a2 6162 00 6161 00", &det, -EBADMSG, 4);

        /* The order holds in nested maps too. */
        assert_refused("a1 00 a2 02 00 01 00", &det, -EBADMSG, 5);
}

static void test_validate_golden_map(_unused_ void **state) {
        assert_int_equal(validate_hex("a5 01 00 19 0109 00 20 00 61 76 01 63 656174 40", &det), 0);
        /* The same map in insertion order is not deterministic. */
        assert_refused("a5 6176 01 63656174 40 190109 00 20 00 01 00", &det, -EBADMSG, 9);
        assert_int_equal(validate_hex("a5 6176 01 63656174 40 190109 00 20 00 01 00", &plain), 0);
}

/* ---------------------------------------------------------------------------------------------- */
/* Validator: deterministic argument forms */

static void test_validate_non_shortest(_unused_ void **state) {
        static const char *const long_forms[] = {
                "18 00", "18 05", "18 17", "19 0005", "19 00ff", "1a 00000005", "1a 0000ffff",
                "1b 0000000000000005", "1b 00000000ffffffff", "38 00", "38 17", "39 0000", "39 00ff",
                "3a 0000ffff", "3b 00000000ffffffff", "58 00", "59 0001 00", "78 00", "78 01 76",
                "98 00", "99 0001 00", "b8 00", "b9 0001 00 00", "d8 01 00", "d9 0062 80",
                "da 000003e8 00", "82 18 05 00", "a1 18 05 00", "a1 00 18 05",
        };
        for (size_t i = 0; i < ELEMENTSOF(long_forms); i++) {
                if (validate_hex(long_forms[i], &plain) != 0)
                        print_error("refused without the flag: %s\n", long_forms[i]);
                assert_int_equal(validate_hex(long_forms[i], &plain), 0);
                assert_int_equal(validate_hex(long_forms[i], &det), -EBADMSG);
                assert_reason_contains(long_forms[i], &det, "shortest");
        }
        assert_refused("82 00 18 05", &det, -EBADMSG, 2);

        /* The boundaries themselves are shortest. */
        static const char *const shortest[] = {
                "17", "18 18", "18 ff", "19 0100", "19 ffff", "1a 00010000", "1a ffffffff",
                "1b 0000000100000000", "37", "38 18", "39 0100",
                "58 18 000000000000000000000000000000000000000000000000",
        };
        for (size_t i = 0; i < ELEMENTSOF(shortest); i++)
                assert_int_equal(validate_hex(shortest[i], &det), 0);
}

/* ---------------------------------------------------------------------------------------------- */
/* Validator: limits */

static void test_validate_depth(_unused_ void **state) {
        _cleanup_free_ char *a16 = nested_hex("81", 15, "80");
        _cleanup_free_ char *a17 = nested_hex("81", 16, "80");
        _cleanup_free_ char *m16 = nested_hex("a1 00", 15, "a0");
        _cleanup_free_ char *m17 = nested_hex("a1 00", 16, "a0");
        _cleanup_free_ char *t16 = nested_hex("c1", 16, "00");
        _cleanup_free_ char *t17 = nested_hex("c1", 17, "00");
        _cleanup_free_ char *x16 = nested_hex("81 c1 a1 00", 5, "80");
        _cleanup_free_ char *x17 = nested_hex("81 c1 a1 00", 5, "81 80");

        assert_int_equal(validate_hex(a16, &det), 0);
        assert_refused(a17, &det, -E2BIG, 16);
        assert_reason_contains(a17, &det, "nesting");
        assert_int_equal(validate_hex(m16, &det), 0);
        assert_refused(m17, &det, -E2BIG, 32);
        assert_int_equal(validate_hex(t16, &det), 0);
        assert_refused(t17, &plain, -E2BIG, 16);
        assert_int_equal(validate_hex(x16, &plain), 0);
        assert_int_equal(validate_hex(x17, &plain), -E2BIG);

        CborLimits l = TEST_LIMITS(0);
        l.max_depth = 2;
        assert_int_equal(validate_hex("81 81 00", &l), 0);
        assert_int_equal(validate_hex("81 c1 00", &l), 0);
        assert_refused("81 81 81 00", &l, -E2BIG, 2);
        assert_refused("81 81 c1 00", &l, -E2BIG, 2);
        l.max_depth = 0;
        assert_int_equal(validate_hex("00", &l), 0);
        assert_int_equal(validate_hex("6161", &l), 0);
        assert_refused("80", &l, -E2BIG, 0);
        assert_refused("c1 00", &l, -E2BIG, 0);
}

static void test_validate_deep_map_keys(_unused_ void **state) {
        /* 17 levels reached through map keys: {{{... : 0} : 0} : 0}. */
        char hex[256] = "";
        for (unsigned i = 0; i < 16; i++)
                strcat(hex, "a1");
        strcat(hex, "a0");
        for (unsigned i = 0; i < 16; i++)
                strcat(hex, "00");
        assert_refused(hex, &plain, -E2BIG, 16);

        hex[0] = 0;
        for (unsigned i = 0; i < 15; i++)
                strcat(hex, "a1");
        strcat(hex, "a0");
        for (unsigned i = 0; i < 15; i++)
                strcat(hex, "00");
        assert_int_equal(validate_hex(hex, &plain), 0);
        assert_int_equal(validate_hex(hex, &det), 0);
}

static void test_validate_max_size(_unused_ void **state) {
        CborLimits l = TEST_LIMITS(0);
        l.max_size = 3;
        assert_refused("83 01 02 03", &l, -E2BIG, 0);
        assert_reason_contains("83 01 02 03", &l, "larger");
        l.max_size = 4;
        assert_int_equal(validate_hex("83 01 02 03", &l), 0);
        l.max_size = 0;
        assert_refused("00", &l, -E2BIG, 0);
}

static void test_validate_max_items(_unused_ void **state) {
        CborLimits l = TEST_LIMITS(CBOR_VALIDATE_DETERMINISTIC);

        l.max_items = 3;
        assert_refused("83 01 02 03", &l, -E2BIG, 0);  /* refused on the declared count */
        assert_reason_contains("83 01 02 03", &l, "too many");
        l.max_items = 4;
        assert_int_equal(validate_hex("83 01 02 03", &l), 0);

        l.max_items = 4;
        assert_refused("a2 01 02 03 04", &l, -E2BIG, 0);
        l.max_items = 5;
        assert_int_equal(validate_hex("a2 01 02 03 04", &l), 0);

        /* Tags count as items. */
        l.max_items = 1;
        assert_refused("c1 00", &l, -E2BIG, 1);
        l.max_items = 2;
        assert_int_equal(validate_hex("c1 00", &l), 0);

        /* Items inside nested containers add up. */
        l.max_items = 5;
        assert_refused("82 82 01 02 82 03 04", &l, -E2BIG, 4);
        l.max_items = 7;
        assert_int_equal(validate_hex("82 82 01 02 82 03 04", &l), 0);

        l.max_items = 0;
        assert_refused("00", &l, -E2BIG, 0);

        /* A count beyond the bytes left is malformed first, whatever the item limit. */
        l.max_items = 2;
        assert_refused("9a 10000000", &l, -EBADMSG, 0);
}

/* ---------------------------------------------------------------------------------------------- */
/* Decode and strip_tag */

static void test_decode_valid(_unused_ void **state) {
        size_t n;
        _cleanup_free_ uint8_t *b = unhex("a5 01 00 19 0109 00 20 00 61 76 01 63 656174 40", &n);
        _cleanup_cbor_ cbor_item_t *item = NULL;
        uint64_t u;
        int64_t i;
        const uint8_t *p;
        size_t l;

        assert_int_equal(cbor_util_decode(b, n, &det, &item, NULL), 0);
        assert_non_null(item);
        assert_true(cbor_isa_map(item));
        assert_int_equal(cbor_map_size(item), 5);

        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_text(item, "v"), &u), 0);
        assert_int_equal(u, 1);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(item, "eat"), &p, &l), 0);
        assert_int_equal(l, 0);
        assert_non_null(p);
        assert_int_equal(cbor_util_get_int(cbor_util_map_get_int(item, 265), &i), 0);
        assert_int_equal(i, 0);
        assert_non_null(cbor_util_map_get_int(item, -1));
        assert_non_null(cbor_util_map_get_int(item, 1));
        assert_null(cbor_util_map_get_int(item, 2));
        assert_null(cbor_util_map_get_text(item, "x"));
}

static void test_decode_refused_leaves_ret(_unused_ void **state) {
        static const char *const bad[] = {
                "9a 10000000", "5a ffffffff", "9f ff", "ff", "00 00", "a2 01 00 01 00", "f6", "d2 80",
                "61 ff", "",
        };
        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                size_t n;
                _cleanup_free_ uint8_t *b = unhex(bad[k], &n);
                cbor_item_t *item = (cbor_item_t *) 0x1;
                CborError err = {};

                assert_int_equal(cbor_util_decode(b, n, &plain, &item, &err), -EBADMSG);
                assert_ptr_equal(item, (cbor_item_t *) 0x1);
                assert_non_null(err.reason);
                /* The validator refused it: libcbor never saw the bytes. */
                assert_null(strstr(err.reason, "libcbor refused"));
        }
}

static void test_decode_limits_and_args(_unused_ void **state) {
        size_t n;
        _cleanup_free_ uint8_t *b = unhex("83 01 02 03", &n);
        cbor_item_t *item = NULL;
        CborLimits l = TEST_LIMITS(0);

        l.max_items = 2;
        assert_int_equal(cbor_util_decode(b, n, &l, &item, NULL), -E2BIG);
        assert_null(item);
        assert_int_equal(cbor_util_decode(b, n, NULL, &item, NULL), -EINVAL);
        assert_int_equal(cbor_util_decode(b, n, &plain, NULL, NULL), -EINVAL);
}

static void test_decode_non_deterministic_values(_unused_ void **state) {
        /* Long forms decode to their values when the flag is not set. */
        size_t n;
        _cleanup_free_ uint8_t *b = unhex("84 1b 0000000000000005 39 0000 d9 0062 80 78 01 76", &n);
        _cleanup_cbor_ cbor_item_t *item = NULL;
        uint64_t u;
        int64_t i;
        const char *s;
        size_t l;

        assert_int_equal(cbor_util_decode(b, n, &plain, &item, NULL), 0);
        cbor_item_t **e = cbor_array_handle(item);
        assert_int_equal(cbor_util_get_uint(e[0], &u), 0);
        assert_int_equal(u, 5);
        assert_int_equal(cbor_util_get_int(e[1], &i), 0);
        assert_int_equal(i, -1);
        assert_true(cbor_isa_tag(e[2]));
        assert_int_equal(cbor_tag_value(e[2]), 98);
        assert_int_equal(cbor_util_get_text(e[3], &s, &l), 0);
        assert_int_equal(l, 1);
        assert_memory_equal(s, "v", 1);

        /* ...and re-encode in the shortest form. */
        _cleanup_free_ uint8_t *out = NULL;
        size_t out_len;
        assert_int_equal(cbor_util_encode(item, &out, &out_len), 0);
        _cleanup_free_ char *hex = tohex(out, out_len);
        assert_string_equal(hex, "840520d862806176");
}

static void test_strip_tag(_unused_ void **state) {
        size_t n;
        _cleanup_free_ uint8_t *b = unhex("d2 84 43 a10126 a0 44 74657374 40", &n);
        const uint8_t *inner = NULL;
        size_t inner_len = 0;
        _cleanup_cbor_ cbor_item_t *item = NULL;

        /* libcbor 0.8 cannot decode 0xd2; the validator refuses it... */
        assert_int_equal(cbor_util_decode(b, n, &det, &item, NULL), -EBADMSG);
        /* ...so it is stripped by hand, and the rest decodes. */
        assert_int_equal(cbor_util_strip_tag(b, n, 18, &inner, &inner_len), 0);
        assert_ptr_equal(inner, b + 1);
        assert_int_equal(inner_len, n - 1);
        assert_int_equal(cbor_util_decode(inner, inner_len, &det, &item, NULL), 0);
        assert_true(cbor_isa_array(item));
        assert_int_equal(cbor_array_size(item), 4);

        inner = NULL;
        assert_int_equal(cbor_util_strip_tag(b, n, 17, &inner, &inner_len), -EBADMSG);
        assert_null(inner);
        assert_int_equal(cbor_util_strip_tag(b + 1, n - 1, 18, &inner, &inner_len), -EBADMSG);
        assert_int_equal(cbor_util_strip_tag(b, 0, 18, &inner, &inner_len), -EBADMSG);
        assert_int_equal(cbor_util_strip_tag(NULL, 0, 18, &inner, &inner_len), -EBADMSG);
        assert_int_equal(cbor_util_strip_tag(b, n, 24, &inner, &inner_len), -EINVAL);

        /* A bare tag byte leaves nothing, which the validator then refuses. */
        assert_int_equal(cbor_util_strip_tag(b, 1, 18, &inner, &inner_len), 0);
        assert_int_equal(inner_len, 0);
        assert_int_equal(cbor_util_validate(inner, inner_len, &det, NULL), -EBADMSG);

        /* Tag 1 is 0xc1. */
        uint8_t t1[] = { 0xc1, 0x00 };
        assert_int_equal(cbor_util_strip_tag(t1, sizeof(t1), 1, &inner, &inner_len), 0);
        assert_int_equal(inner_len, 1);
}

/* ---------------------------------------------------------------------------------------------- */
/* Encoder: golden vectors */

static void test_encode_uint_golden(_unused_ void **state) {
        assert_encodes(cbor_build_uint32(5), "05");
        assert_encodes(cbor_build_uint64(5), "05");
        assert_encodes(cbor_build_uint8(0), "00");
        assert_encodes(cbor_build_uint8(23), "17");
        assert_encodes(cbor_build_uint8(24), "1818");
        assert_encodes(cbor_build_uint64(24), "1818");
        assert_encodes(cbor_build_uint16(255), "18ff");
        assert_encodes(cbor_build_uint16(256), "190100");
        assert_encodes(cbor_build_uint64(65535), "19ffff");
        assert_encodes(cbor_build_uint32(65536), "1a00010000");
        assert_encodes(cbor_build_uint64(UINT32_MAX), "1affffffff");
        assert_encodes(cbor_build_uint64(UINT64_C(1) << 32), "1b0000000100000000");
        assert_encodes(cbor_build_uint64(UINT64_MAX), "1bffffffffffffffff");
        assert_encodes(cbor_util_new_uint(1000000), "1a000f4240");
}

static void test_encode_negint_golden(_unused_ void **state) {
        assert_encodes(cbor_util_new_int(-1), "20");
        assert_encodes(cbor_build_negint32(0), "20");
        assert_encodes(cbor_util_new_int(-24), "37");
        assert_encodes(cbor_util_new_int(-25), "3818");
        assert_encodes(cbor_util_new_int(-256), "38ff");
        assert_encodes(cbor_util_new_int(-257), "390100");
        assert_encodes(cbor_util_new_int(-65537), "3a00010000");
        assert_encodes(cbor_util_new_int(-7), "26");
        assert_encodes(cbor_util_new_int(INT64_MIN), "3b7fffffffffffffff");
        assert_encodes(cbor_util_new_int(INT64_MAX), "1b7fffffffffffffff");
        assert_encodes(cbor_util_new_int(0), "00");
        assert_encodes(cbor_build_negint64(UINT64_MAX), "3bffffffffffffffff");
}

static void test_encode_strings_golden(_unused_ void **state) {
        static const uint8_t bytes[] = { 1, 2, 3 };
        char long_text[25];
        uint8_t big[300];

        assert_encodes(cbor_util_new_text("v"), "6176");
        assert_encodes(cbor_util_new_text(""), "60");
        assert_encodes(cbor_util_new_text("eat"), "63656174");
        assert_encodes(cbor_util_new_text("\xc3\xa9"), "62c3a9");
        assert_encodes(cbor_util_new_textn("abc", 2), "626162");
        assert_encodes(cbor_util_new_bytes(bytes, sizeof(bytes)), "43010203");
        assert_encodes(cbor_util_new_bytes(NULL, 0), "40");

        memset(long_text, 'a', 24);
        long_text[24] = 0;
        assert_encodes(cbor_util_new_text(long_text),
                       "7818 616161616161616161616161616161616161616161616161");

        memset(big, 0xab, sizeof(big));
        cbor_item_t *b = cbor_util_new_bytes(big, sizeof(big));
        _cleanup_free_ uint8_t *out = NULL;
        size_t len;
        assert_int_equal(cbor_util_encode(b, &out, &len), 0);
        assert_int_equal(len, 3 + sizeof(big));
        assert_memory_equal(out, "\x59\x01\x2c", 3);
        assert_memory_equal(out + 3, big, sizeof(big));
        cbor_decref(&b);
}

static void test_encode_indefinite_strings_flattened(_unused_ void **state) {
        cbor_item_t *s = cbor_new_indefinite_string();
        assert_true(cbor_string_add_chunk(s, cbor_move(cbor_build_string("ab"))));
        assert_true(cbor_string_add_chunk(s, cbor_move(cbor_build_string(""))));
        assert_true(cbor_string_add_chunk(s, cbor_move(cbor_build_string("c"))));
        assert_encodes(s, "63616263");

        assert_encodes(cbor_new_indefinite_string(), "60");

        cbor_item_t *b = cbor_new_indefinite_bytestring();
        static const uint8_t x[] = { 1, 2 }, y[] = { 3 };
        assert_true(cbor_bytestring_add_chunk(b, cbor_move(cbor_build_bytestring(x, sizeof(x)))));
        assert_true(cbor_bytestring_add_chunk(b, cbor_move(cbor_build_bytestring(y, sizeof(y)))));
        assert_encodes(b, "43010203");

        /* RFC 8949 §3.2.3: a character may not be split between chunks. */
        cbor_item_t *split = cbor_new_indefinite_string();
        assert_true(cbor_string_add_chunk(split, cbor_move(cbor_build_stringn("\xc3", 1))));
        assert_true(cbor_string_add_chunk(split, cbor_move(cbor_build_stringn("\xa9", 1))));
        assert_encode_fails(split, -EINVAL);
}

static void test_encode_invalid_utf8_refused(_unused_ void **state) {
        assert_encode_fails(cbor_util_new_textn("\xff", 1), -EINVAL);
        assert_encode_fails(cbor_util_new_textn("\xed\xa0\x80", 3), -EINVAL);
        assert_encode_fails(cbor_util_new_textn("\xc0\x80", 2), -EINVAL);

        cbor_item_t *a = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(a, cbor_util_new_textn("ok\xc3", 3)), 0);
        assert_encode_fails(a, -EINVAL);
}

static void test_encode_arrays_golden(_unused_ void **state) {
        cbor_item_t *a = cbor_util_new_array(), *inner = cbor_util_new_array();

        assert_int_equal(cbor_util_array_push(inner, cbor_util_new_uint(2)), 0);
        assert_int_equal(cbor_util_array_push(inner, cbor_util_new_uint(3)), 0);
        assert_int_equal(cbor_util_array_push(a, cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_array_push(a, inner), 0);
        assert_int_equal(cbor_util_array_push(a, cbor_util_new_array()), 0);
        assert_encodes(a, "83 01 82 02 03 80");

        /* A definite libcbor array writes the same. */
        cbor_item_t *d = cbor_new_definite_array(2);
        assert_true(cbor_array_push(d, cbor_move(cbor_build_uint32(1000))));
        assert_true(cbor_array_push(d, cbor_move(cbor_build_bool(true))));
        assert_encodes(d, "82 1903e8 f5");

        /* 25 elements need a one-byte count. */
        cbor_item_t *l = cbor_util_new_array();
        for (unsigned i = 0; i < 25; i++)
                assert_int_equal(cbor_util_array_push(l, cbor_util_new_uint(0)), 0);
        assert_encodes(l, "9819 00000000000000000000000000000000000000000000000000");

        assert_encodes(cbor_util_new_array(), "80");
}

static void test_encode_map_golden(_unused_ void **state) {
        cbor_item_t *m = cbor_util_new_map();

        /* {"v": 1, "eat": h'', 265: 0, -1: 0, 1: 0}, inserted in this order. */
        assert_int_equal(cbor_util_map_put_text(m, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "eat", cbor_util_new_bytes(NULL, 0)), 0);
        assert_int_equal(cbor_util_map_put_int(m, 265, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_int(m, -1, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_uint(0)), 0);
        assert_encodes(m, "a5 01 00 19 0109 00 20 00 61 76 01 63 656174 40");

        /* The same map is the example in docs/formats.md §1. */
        _cleanup_free_ uint8_t *golden = NULL, *enc = NULL;
        size_t golden_len = 0, enc_len = 0;
        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "eat", cbor_util_new_bytes(NULL, 0)), 0);
        assert_int_equal(cbor_util_map_put_int(m, -1, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_int(m, 265, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_encode(m, &enc, &enc_len), 0);
        cbor_decref(&m);
        assert_int_equal(golden_load("deterministic-map", &golden, &golden_len), 0);
        assert_int_equal(enc_len, golden_len);
        assert_memory_equal(enc, golden, enc_len);

        assert_encodes(cbor_util_new_map(), "a0");

        /* A definite libcbor map with keys built at odd widths sorts by the shortest encoding. */
        cbor_item_t *d = cbor_new_definite_map(3);
        assert_true(cbor_map_add(d, (struct cbor_pair) { .key = cbor_move(cbor_build_uint64(300)),
                                                          .value = cbor_move(cbor_build_bool(false)) }));
        assert_true(cbor_map_add(d, (struct cbor_pair) { .key = cbor_move(cbor_build_uint64(2)),
                                                          .value = cbor_move(cbor_build_bool(true)) }));
        assert_true(cbor_map_add(d, (struct cbor_pair) { .key = cbor_move(cbor_build_negint8(0)),
                                                          .value = cbor_move(cbor_build_uint8(7)) }));
        assert_encodes(d, "a3 02 f5 19012c f4 20 07");

        /* cnf = {1: {1: 2, -1: 1, -2: x, -3: y}} (DESIGN §5), values shortened here. */
        cbor_item_t *key = cbor_util_new_map(), *cnf = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(key, -3, cbor_util_new_bytes("y", 1)), 0);
        assert_int_equal(cbor_util_map_put_int(key, -2, cbor_util_new_bytes("x", 1)), 0);
        assert_int_equal(cbor_util_map_put_int(key, -1, cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_int(key, 1, cbor_util_new_uint(2)), 0);
        assert_int_equal(cbor_util_map_put_int(cnf, 1, key), 0);
        assert_encodes(cnf, "a1 01 a4 01 02 20 01 21 4178 22 4179");
}

static void test_encode_duplicate_keys_refused(_unused_ void **state) {
        cbor_item_t *m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_int(m, 1, cbor_util_new_uint(1)), 0);
        assert_encode_fails(m, -EINVAL);

        /* Equal values built at different widths are equal keys. */
        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put(m, cbor_build_uint8(5), cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put(m, cbor_build_uint64(5), cbor_util_new_uint(1)), 0);
        assert_encode_fails(m, -EINVAL);

        m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_text(m, "a", cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "b", cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "a", cbor_util_new_uint(0)), 0);
        assert_encode_fails(m, -EINVAL);

        /* Nested: the failure propagates, nothing leaks. */
        cbor_item_t *outer = cbor_util_new_array(), *inner = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_text(inner, "x", cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_text(inner, "x", cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_array_push(outer, cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_array_push(outer, inner), 0);
        assert_encode_fails(outer, -EINVAL);
}

static void test_encode_bool_and_refused_simple(_unused_ void **state) {
        assert_encodes(cbor_build_bool(true), "f5");
        assert_encodes(cbor_build_bool(false), "f4");

        assert_encode_fails(cbor_build_float2(1.0f), -EINVAL);
        assert_encode_fails(cbor_build_float4(1.0f), -EINVAL);
        assert_encode_fails(cbor_build_float8(1.0), -EINVAL);
        assert_encode_fails(cbor_build_float8(0.0), -EINVAL);
        assert_encode_fails(cbor_new_null(), -EINVAL);
        assert_encode_fails(cbor_new_undef(), -EINVAL);
        assert_encode_fails(cbor_build_ctrl(16), -EINVAL);

        cbor_item_t *m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_text(m, "a", cbor_util_new_uint(0)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "f", cbor_build_float8(2.5)), 0);
        assert_encode_fails(m, -EINVAL);
}

static void test_encode_tags(_unused_ void **state) {
        cbor_item_t *inner = cbor_util_new_array();
        cbor_item_t *t = cbor_new_tag(18);
        cbor_tag_set_item(t, inner);
        assert_int_equal(cbor_refcount(inner), 2);
        assert_encodes(cbor_incref(t), "d2 80");
        /* cbor_tag_item()'s new reference was dropped again. */
        assert_int_equal(cbor_refcount(inner), 2);
        cbor_decref(&t);
        assert_int_equal(cbor_refcount(inner), 1);
        cbor_decref(&inner);

        t = cbor_new_tag(98);
        cbor_tag_set_item(t, cbor_move(cbor_util_new_uint(1)));
        assert_encodes(t, "d862 01");

        t = cbor_new_tag(1000);
        cbor_tag_set_item(t, cbor_move(cbor_util_new_text("v")));
        assert_encodes(t, "d903e8 6176");

        t = cbor_new_tag(UINT64_C(1) << 40);
        cbor_tag_set_item(t, cbor_move(cbor_build_bool(true)));
        assert_encodes(t, "db 0000010000000000 f5");

        /* A tag whose item was never set cannot be encoded (and must not crash). */
        assert_encode_fails(cbor_new_tag(1), -EINVAL);
}

static cbor_item_t *nested_arrays(unsigned n) {
        cbor_item_t *item = cbor_util_new_array();
        for (unsigned i = 1; i < n; i++) {
                cbor_item_t *outer = cbor_util_new_array();
                assert_int_equal(cbor_util_array_push(outer, item), 0);
                item = outer;
        }
        return item;
}

static void test_encode_depth(_unused_ void **state) {
        cbor_item_t *a16 = nested_arrays(16);
        _cleanup_free_ uint8_t *out = NULL;
        size_t len;

        assert_int_equal(cbor_util_encode(a16, &out, &len), 0);
        assert_int_equal(len, 16);
        assert_int_equal(cbor_util_validate(out, len, &det, NULL), 0);
        cbor_decref(&a16);

        assert_encode_fails(nested_arrays(17), -EINVAL);

        /* Tags count as levels, as in the validator. */
        cbor_item_t *t = cbor_new_tag(1);
        cbor_tag_set_item(t, cbor_move(nested_arrays(16)));
        assert_encode_fails(t, -EINVAL);
}

static void test_encode_bad_arguments(_unused_ void **state) {
        uint8_t *buf = NULL;
        size_t len = 0;
        cbor_item_t *i = cbor_util_new_uint(1);

        assert_int_equal(cbor_util_encode(NULL, &buf, &len), -EINVAL);
        assert_int_equal(cbor_util_encode(i, NULL, &len), -EINVAL);
        assert_int_equal(cbor_util_encode(i, &buf, NULL), -EINVAL);
        assert_null(buf);
        cbor_decref(&i);
}

/* ---------------------------------------------------------------------------------------------- */
/* Round trip and mutation */

/* A document touching every encodable kind, built in a non-sorted order. */
static cbor_item_t *build_document(void) {
        cbor_item_t *doc = cbor_util_new_map(), *tpm = cbor_util_new_map(), *pcrs = cbor_util_new_array();
        static const uint8_t digest[8] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03 };

        assert_non_null(doc);
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(cbor_util_array_push(pcrs, cbor_util_new_bytes(digest, sizeof(digest) - i)), 0);

        assert_int_equal(cbor_util_map_put_text(tpm, "quote", cbor_util_new_bytes(digest, 4)), 0);
        assert_int_equal(cbor_util_map_put_text(tpm, "pcrs", pcrs), 0);
        assert_int_equal(cbor_util_map_put_text(tpm, "safe", cbor_build_bool(true)), 0);

        cbor_item_t *tagged = cbor_new_tag(1);
        cbor_tag_set_item(tagged, cbor_move(cbor_util_new_uint(1700000000)));

        cbor_item_t *t98 = cbor_new_tag(98);
        cbor_item_t *t98_inner = cbor_util_new_array();
        assert_int_equal(cbor_util_array_push(t98_inner, cbor_util_new_int(-7)), 0);
        assert_int_equal(cbor_util_array_push(t98_inner, cbor_util_new_text("\xe2\x82\xac")), 0);
        cbor_tag_set_item(t98, cbor_move(t98_inner));

        assert_int_equal(cbor_util_map_put_text(doc, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_text(doc, "tpm", tpm), 0);
        assert_int_equal(cbor_util_map_put_int(doc, 265, cbor_util_new_text("tag:agentid.org,2026:v1")), 0);
        assert_int_equal(cbor_util_map_put_int(doc, -1, cbor_util_new_int(-1000)), 0);
        assert_int_equal(cbor_util_map_put_int(doc, 6, tagged), 0);
        assert_int_equal(cbor_util_map_put_int(doc, 10, cbor_util_new_bytes(digest, sizeof(digest))), 0);
        assert_int_equal(cbor_util_map_put_text(doc, "eat", t98), 0);
        assert_int_equal(cbor_util_map_put_text(doc, "ok", cbor_build_bool(false)), 0);
        assert_int_equal(cbor_util_map_put_int(doc, 70000, cbor_util_new_uint(UINT64_C(1) << 33)), 0);
        return doc;
}

static void test_round_trip(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *doc = build_document(), *decoded = NULL;
        _cleanup_free_ uint8_t *first = NULL, *second = NULL;
        size_t first_len, second_len;
        CborError err = {};

        assert_int_equal(cbor_util_encode(doc, &first, &first_len), 0);
        if (cbor_util_validate(first, first_len, &det, &err) != 0)
                print_error("offset %zu: %s\n", err.offset, err.reason);
        assert_int_equal(cbor_util_validate(first, first_len, &det, &err), 0);
        assert_int_equal(cbor_util_decode(first, first_len, &det, &decoded, NULL), 0);
        assert_int_equal(cbor_util_encode(decoded, &second, &second_len), 0);
        assert_int_equal(first_len, second_len);
        assert_memory_equal(first, second, first_len);

        /* Spot-check through the accessors. */
        const cbor_item_t *tpm = cbor_util_map_get_text(decoded, "tpm");
        static const char *const tpm_keys[] = { "quote", "pcrs", "safe" };
        bool safe = false;
        assert_int_equal(cbor_util_map_check_text_keys(tpm, tpm_keys, ELEMENTSOF(tpm_keys), NULL), 0);
        assert_int_equal(cbor_util_get_bool(cbor_util_map_get_text(tpm, "safe"), &safe), 0);
        assert_true(safe);
        _cleanup_free_ char *profile = NULL;
        assert_int_equal(cbor_util_get_text_dup(cbor_util_map_get_int(decoded, 265), &profile), 0);
        assert_string_equal(profile, "tag:agentid.org,2026:v1");
}

static void check_mutant(const uint8_t *p, size_t n) {
        _cleanup_free_ uint8_t *copy = malloc(n ?: 1);
        assert_non_null(copy);
        memcpy(copy, p, n);

        int r = cbor_util_validate(copy, n, &mut_det, NULL);
        assert_true(r == 0 || r == -EBADMSG || r == -E2BIG);
        if (r == 0) {
                /* Accepted as deterministic: must decode and re-encode to the very same bytes. */
                _cleanup_cbor_ cbor_item_t *item = NULL;
                _cleanup_free_ uint8_t *out = NULL;
                size_t out_len;

                assert_int_equal(cbor_util_decode(copy, n, &mut_det, &item, NULL), 0);
                assert_int_equal(cbor_util_encode(item, &out, &out_len), 0);
                assert_int_equal(out_len, n);
                assert_memory_equal(out, copy, n);
        }

        r = cbor_util_validate(copy, n, &mut_plain, NULL);
        assert_true(r == 0 || r == -EBADMSG || r == -E2BIG);
        if (r == 0) {
                /* Whatever the validator accepts, libcbor decodes, and we can write deterministically. */
                _cleanup_cbor_ cbor_item_t *item = NULL;
                _cleanup_free_ uint8_t *out = NULL;
                size_t out_len;

                assert_int_equal(cbor_util_decode(copy, n, &mut_plain, &item, NULL), 0);
                assert_int_equal(cbor_util_encode(item, &out, &out_len), 0);
                assert_int_equal(cbor_util_validate(out, out_len, &mut_det, NULL), 0);
        }
}

static void test_exhaustive_mutation(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *doc = build_document();
        _cleanup_free_ uint8_t *enc = NULL, *m = NULL;
        size_t n;
        unsigned accepted = 0;

        assert_int_equal(cbor_util_encode(doc, &enc, &n), 0);
        assert_int_equal(cbor_util_validate(enc, n, &mut_det, NULL), 0);
        assert_true(n > 100);

        m = malloc(n);
        assert_non_null(m);
        for (size_t i = 0; i < n; i += test_exhaustive_step())
                for (unsigned v = 0; v < 256; v++) {
                        if (v == enc[i])
                                continue;
                        memcpy(m, enc, n);
                        m[i] = (uint8_t) v;
                        check_mutant(m, n);
                        accepted += cbor_util_validate(m, n, &mut_det, NULL) == 0;
                }

        /* Every truncation is refused. */
        for (size_t l = 0; l < n; l++) {
                _cleanup_free_ uint8_t *p = malloc(l ?: 1);
                assert_non_null(p);
                memcpy(p, enc, l);
                assert_int_equal(cbor_util_validate(p, l, &mut_det, NULL), -EBADMSG);
                assert_int_equal(cbor_util_validate(p, l, &mut_plain, NULL), -EBADMSG);
        }

        /* Many mutants (changed payload bytes) are still valid: the round-trip path was exercised. */
        print_message("%zu bytes, %u of %zu mutants deterministic\n", n, accepted, n * 255);
        assert_true(accepted * test_exhaustive_step() > 100);
}

/* ---------------------------------------------------------------------------------------------- */
/* Builders and reference counting */

static void test_map_put_refcounts(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *m = cbor_util_new_map();
        cbor_item_t *k = cbor_util_new_text("a"), *v = cbor_util_new_uint(1);

        cbor_incref(k);
        cbor_incref(v);
        assert_int_equal(cbor_util_map_put(m, k, v), 0);
        /* Our extra references plus the map's. */
        assert_int_equal(cbor_refcount(k), 2);
        assert_int_equal(cbor_refcount(v), 2);
        assert_int_equal(cbor_map_size(m), 1);
        cbor_decref(&k);
        cbor_decref(&v);
}

static void test_map_put_consumes_on_failure(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *m = cbor_util_new_map(), *a = cbor_util_new_array();
        cbor_item_t *k = cbor_util_new_text("a"), *v = cbor_util_new_uint(1);

        cbor_incref(k);
        assert_int_equal(cbor_util_map_put(m, k, NULL), -EINVAL);
        assert_int_equal(cbor_refcount(k), 1);

        cbor_incref(v);
        assert_int_equal(cbor_util_map_put(m, NULL, v), -EINVAL);
        assert_int_equal(cbor_refcount(v), 1);

        cbor_incref(k);
        cbor_incref(v);
        assert_int_equal(cbor_util_map_put(a, k, v), -EINVAL);         /* not a map */
        assert_int_equal(cbor_refcount(k), 1);
        assert_int_equal(cbor_refcount(v), 1);
        assert_int_equal(cbor_util_map_put(NULL, k, v), -EINVAL);      /* drops our last refs */

        assert_int_equal(cbor_map_size(m), 0);
        assert_int_equal(cbor_util_map_put(m, NULL, NULL), -EINVAL);

        /* A failed builder inside a chain. */
        assert_int_equal(cbor_util_map_put_text(m, "x", cbor_util_new_text(NULL)), -EINVAL);
        assert_int_equal(cbor_util_map_put_text(m, NULL, cbor_util_new_uint(1)), -EINVAL);
        assert_int_equal(cbor_util_map_put_int(m, 1, NULL), -EINVAL);
        assert_int_equal(cbor_util_map_put_int(a, 1, cbor_util_new_uint(1)), -EINVAL);
        assert_int_equal(cbor_map_size(m), 0);
}

static void test_map_put_text_int(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *m = cbor_util_new_map();
        int64_t i;
        uint64_t u;

        assert_int_equal(cbor_util_map_put_text(m, "task_id", cbor_util_new_text("t1")), 0);
        assert_int_equal(cbor_util_map_put_int(m, INT64_MIN, cbor_util_new_uint(2)), 0);
        assert_int_equal(cbor_util_map_put_int(m, INT64_MAX, cbor_util_new_uint(3)), 0);
        assert_int_equal(cbor_util_map_put_int(m, -1, cbor_util_new_uint(4)), 0);

        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_int(m, INT64_MIN), &u), 0);
        assert_int_equal(u, 2);
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_int(m, INT64_MAX), &u), 0);
        assert_int_equal(u, 3);
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_int(m, -1), &u), 0);
        assert_int_equal(u, 4);
        assert_null(cbor_util_map_get_int(m, 1));
        assert_null(cbor_util_map_get_int(m, 0));
        assert_null(cbor_util_map_get_text(m, "task"));
        assert_null(cbor_util_map_get_text(m, "task_id_"));
        assert_null(cbor_util_map_get_text(m, NULL));
        assert_non_null(cbor_util_map_get_text(m, "task_id"));

        /* Keys are not cross-typed. */
        assert_int_equal(cbor_util_get_int(cbor_util_map_get_text(m, "task_id"), &i), -EBADMSG);
        assert_null(cbor_util_map_get_int(NULL, 1));
        _cleanup_cbor_ cbor_item_t *a = cbor_util_new_array();
        assert_null(cbor_util_map_get_int(a, 1));
        assert_null(cbor_util_map_get_text(a, "x"));
}

static void test_array_push(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *a = cbor_util_new_array(), *m = cbor_util_new_map();
        cbor_item_t *x = cbor_util_new_uint(1);

        cbor_incref(x);
        assert_int_equal(cbor_util_array_push(a, x), 0);
        assert_int_equal(cbor_refcount(x), 2);
        assert_int_equal(cbor_array_size(a), 1);

        cbor_incref(x);
        assert_int_equal(cbor_util_array_push(m, x), -EINVAL);         /* not an array */
        assert_int_equal(cbor_refcount(x), 2);
        cbor_incref(x);
        assert_int_equal(cbor_util_array_push(NULL, x), -EINVAL);
        assert_int_equal(cbor_refcount(x), 2);
        assert_int_equal(cbor_util_array_push(a, NULL), -EINVAL);
        cbor_decref(&x);

        /* A definite array that is full: failure still consumes. */
        _cleanup_cbor_ cbor_item_t *d = cbor_new_definite_array(0);
        cbor_item_t *y = cbor_util_new_uint(2);
        cbor_incref(y);
        assert_int_equal(cbor_util_array_push(d, y), -ENOMEM);
        assert_int_equal(cbor_refcount(y), 1);
        cbor_decref(&y);
}

static void test_builders(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *b = cbor_util_new_bytes(NULL, 0), *t = cbor_util_new_textn("a\0b", 3),
                                   *e = cbor_util_new_textn(NULL, 0), *m = cbor_util_new_map(),
                                   *a = cbor_util_new_array();
        const uint8_t *p;
        size_t l;

        assert_null(cbor_util_new_bytes(NULL, 1));
        assert_null(cbor_util_new_text(NULL));
        assert_null(cbor_util_new_textn(NULL, 1));

        assert_int_equal(cbor_util_get_bytes(b, &p, &l), 0);
        assert_int_equal(l, 0);
        assert_true(cbor_isa_string(t));
        assert_int_equal(cbor_string_length(t), 3);
        assert_true(cbor_isa_string(e));
        assert_int_equal(cbor_string_length(e), 0);
        assert_true(cbor_map_is_indefinite(m));
        assert_true(cbor_array_is_indefinite(a));
}

static void test_new_int_extremes(_unused_ void **state) {
        static const int64_t values[] = { 0, 1, -1, 23, -24, -25, INT64_MAX, INT64_MIN, INT64_MIN + 1 };

        for (size_t k = 0; k < ELEMENTSOF(values); k++) {
                _cleanup_cbor_ cbor_item_t *i = cbor_util_new_int(values[k]);
                int64_t v;
                assert_int_equal(cbor_util_get_int(i, &v), 0);
                assert_true(v == values[k]);
                assert_true(values[k] < 0 ? cbor_isa_negint(i) : cbor_isa_uint(i));
        }

        _cleanup_cbor_ cbor_item_t *min = cbor_util_new_int(INT64_MIN);
        assert_true(cbor_get_int(min) == (uint64_t) INT64_MAX);
}

/* ---------------------------------------------------------------------------------------------- */
/* Accessors */

static void test_get_uint(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *u8 = cbor_build_uint8(7), *u16 = cbor_build_uint16(700),
                                   *u32 = cbor_build_uint32(70000), *u64 = cbor_build_uint64(UINT64_MAX),
                                   *neg = cbor_util_new_int(-1), *text = cbor_util_new_text("1");
        uint64_t v = 42;

        assert_int_equal(cbor_util_get_uint(u8, &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(cbor_util_get_uint(u16, &v), 0);
        assert_int_equal(v, 700);
        assert_int_equal(cbor_util_get_uint(u32, &v), 0);
        assert_int_equal(v, 70000);
        assert_int_equal(cbor_util_get_uint(u64, &v), 0);
        assert_true(v == UINT64_MAX);

        v = 42;
        assert_int_equal(cbor_util_get_uint(neg, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_uint(text, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_uint(NULL, &v), -EBADMSG);
        assert_int_equal(v, 42);
}

static void test_get_int(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *max = cbor_build_uint64(INT64_MAX),
                                   *too_big = cbor_build_uint64((uint64_t) INT64_MAX + 1),
                                   *min = cbor_build_negint64(INT64_MAX),
                                   *too_small = cbor_build_negint64((uint64_t) INT64_MAX + 1),
                                   *neg8 = cbor_build_negint8(24), *b = cbor_build_bool(true);
        int64_t v = 42;

        assert_int_equal(cbor_util_get_int(max, &v), 0);
        assert_true(v == INT64_MAX);
        assert_int_equal(cbor_util_get_int(min, &v), 0);
        assert_true(v == INT64_MIN);
        assert_int_equal(cbor_util_get_int(neg8, &v), 0);
        assert_int_equal(v, -25);

        v = 42;
        assert_int_equal(cbor_util_get_int(too_big, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_int(too_small, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_int(b, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_int(NULL, &v), -EBADMSG);
        assert_int_equal(v, 42);
}

static void test_get_bool(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *t = cbor_build_bool(true), *f = cbor_build_bool(false),
                                   *null = cbor_new_null(), *undef = cbor_new_undef(),
                                   *fl = cbor_build_float4(1.0f), *zero = cbor_build_float2(0.0f),
                                   *u = cbor_util_new_uint(1);
        bool v = false;

        assert_int_equal(cbor_util_get_bool(t, &v), 0);
        assert_true(v);
        assert_int_equal(cbor_util_get_bool(f, &v), 0);
        assert_false(v);

        v = true;
        assert_int_equal(cbor_util_get_bool(null, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_bool(undef, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_bool(fl, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_bool(zero, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_bool(u, &v), -EBADMSG);
        assert_int_equal(cbor_util_get_bool(NULL, &v), -EBADMSG);
        assert_true(v);
}

static void test_get_bytes(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *b = cbor_util_new_bytes("\x01\x02", 2), *t = cbor_util_new_text("ab"),
                                   *indef = cbor_new_indefinite_bytestring(),
                                   *empty = cbor_new_definite_bytestring();
        const uint8_t *p = NULL;
        size_t l = 0;

        assert_int_equal(cbor_util_get_bytes(b, &p, &l), 0);
        assert_int_equal(l, 2);
        assert_memory_equal(p, "\x01\x02", 2);

        /* A definite byte string without storage reads as empty, with a usable pointer. */
        assert_int_equal(cbor_util_get_bytes(empty, &p, &l), 0);
        assert_int_equal(l, 0);
        assert_non_null(p);

        p = NULL;
        assert_int_equal(cbor_util_get_bytes(indef, &p, &l), -EBADMSG);
        assert_int_equal(cbor_util_get_bytes(t, &p, &l), -EBADMSG);
        assert_int_equal(cbor_util_get_bytes(NULL, &p, &l), -EBADMSG);
        assert_null(p);
}

static void test_get_text(_unused_ void **state) {
        _cleanup_cbor_ cbor_item_t *t = cbor_util_new_text("owner"), *nul = cbor_util_new_textn("a\0b", 3),
                                   *indef = cbor_new_indefinite_string(), *b = cbor_util_new_bytes("a", 1),
                                   *empty = cbor_util_new_text("");
        const char *s = NULL;
        size_t l = 0;
        char *dup = NULL;

        assert_int_equal(cbor_util_get_text(t, &s, &l), 0);
        assert_int_equal(l, 5);
        assert_memory_equal(s, "owner", 5);
        assert_int_equal(cbor_util_get_text(empty, &s, &l), 0);
        assert_int_equal(l, 0);
        assert_non_null(s);

        s = NULL;
        assert_int_equal(cbor_util_get_text(nul, &s, &l), -EBADMSG);
        assert_int_equal(cbor_util_get_text(indef, &s, &l), -EBADMSG);
        assert_int_equal(cbor_util_get_text(b, &s, &l), -EBADMSG);
        assert_int_equal(cbor_util_get_text(NULL, &s, &l), -EBADMSG);
        assert_null(s);

        assert_int_equal(cbor_util_get_text_dup(t, &dup), 0);
        assert_string_equal(dup, "owner");
        free(dup);
        dup = NULL;
        assert_int_equal(cbor_util_get_text_dup(empty, &dup), 0);
        assert_string_equal(dup, "");
        free(dup);
        dup = NULL;
        assert_int_equal(cbor_util_get_text_dup(nul, &dup), -EBADMSG);
        assert_int_equal(cbor_util_get_text_dup(b, &dup), -EBADMSG);
        assert_null(dup);
}

static void test_map_check_text_keys(_unused_ void **state) {
        static const char *const allowed[] = { "v", "eat", "tpm" };
        _cleanup_cbor_ cbor_item_t *m = cbor_util_new_map(), *a = cbor_util_new_array();
        const cbor_item_t *unknown = (const cbor_item_t *) 0x1;

        assert_int_equal(cbor_util_map_check_text_keys(m, allowed, ELEMENTSOF(allowed), &unknown), 0);
        assert_ptr_equal(unknown, (const cbor_item_t *) 0x1);

        assert_int_equal(cbor_util_map_put_text(m, "eat", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_check_text_keys(m, allowed, ELEMENTSOF(allowed), &unknown), 0);
        assert_int_equal(cbor_util_map_check_text_keys(m, allowed, ELEMENTSOF(allowed), NULL), 0);

        /* "ea" is a prefix of an allowed key, not an allowed key. */
        assert_int_equal(cbor_util_map_put_text(m, "ea", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_check_text_keys(m, allowed, ELEMENTSOF(allowed), &unknown), -EBADMSG);
        const char *s;
        size_t l;
        assert_int_equal(cbor_util_get_text(unknown, &s, &l), 0);
        assert_int_equal(l, 2);
        assert_memory_equal(s, "ea", 2);
        assert_int_equal(cbor_util_map_check_text_keys(m, allowed, ELEMENTSOF(allowed), NULL), -EBADMSG);

        _cleanup_cbor_ cbor_item_t *m2 = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_text(m2, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_int(m2, 1, cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_check_text_keys(m2, allowed, ELEMENTSOF(allowed), &unknown), -EBADMSG);
        assert_true(cbor_isa_uint(unknown));
        assert_int_equal(cbor_util_map_check_text_keys(m2, NULL, 0, &unknown), -EBADMSG);
        assert_true(cbor_isa_string(unknown));

        assert_int_equal(cbor_util_map_check_text_keys(a, allowed, ELEMENTSOF(allowed), &unknown), -EBADMSG);
        assert_null(unknown);
        assert_int_equal(cbor_util_map_check_text_keys(NULL, allowed, ELEMENTSOF(allowed), NULL), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_validate_accepts_basic),
                cmocka_unit_test(test_validate_success_leaves_error_alone),
                cmocka_unit_test(test_validate_bad_arguments),
                cmocka_unit_test(test_validate_empty),
                cmocka_unit_test(test_validate_huge_array_count),
                cmocka_unit_test(test_validate_huge_map_count),
                cmocka_unit_test(test_validate_huge_string_length),
                cmocka_unit_test(test_validate_truncated_heads),
                cmocka_unit_test(test_validate_indefinite_refused),
                cmocka_unit_test(test_validate_break_refused),
                cmocka_unit_test(test_validate_reserved_ai),
                cmocka_unit_test(test_validate_trailing_bytes),
                cmocka_unit_test(test_validate_every_prefix_refused),
                cmocka_unit_test(test_validate_simple_values),
                cmocka_unit_test(test_validate_floats_refused),
                cmocka_unit_test(test_validate_utf8),
                cmocka_unit_test(test_validate_tags),
                cmocka_unit_test(test_validate_duplicate_keys_deterministic),
                cmocka_unit_test(test_validate_duplicate_keys_plain),
                cmocka_unit_test(test_validate_duplicate_keys_large_map),
                cmocka_unit_test(test_validate_key_order),
                cmocka_unit_test(test_validate_golden_map),
                cmocka_unit_test(test_validate_non_shortest),
                cmocka_unit_test(test_validate_depth),
                cmocka_unit_test(test_validate_deep_map_keys),
                cmocka_unit_test(test_validate_max_size),
                cmocka_unit_test(test_validate_max_items),
                cmocka_unit_test(test_decode_valid),
                cmocka_unit_test(test_decode_refused_leaves_ret),
                cmocka_unit_test(test_decode_limits_and_args),
                cmocka_unit_test(test_decode_non_deterministic_values),
                cmocka_unit_test(test_strip_tag),
                cmocka_unit_test(test_encode_uint_golden),
                cmocka_unit_test(test_encode_negint_golden),
                cmocka_unit_test(test_encode_strings_golden),
                cmocka_unit_test(test_encode_indefinite_strings_flattened),
                cmocka_unit_test(test_encode_invalid_utf8_refused),
                cmocka_unit_test(test_encode_arrays_golden),
                cmocka_unit_test(test_encode_map_golden),
                cmocka_unit_test(test_encode_duplicate_keys_refused),
                cmocka_unit_test(test_encode_bool_and_refused_simple),
                cmocka_unit_test(test_encode_tags),
                cmocka_unit_test(test_encode_depth),
                cmocka_unit_test(test_encode_bad_arguments),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_exhaustive_mutation),
                cmocka_unit_test(test_map_put_refcounts),
                cmocka_unit_test(test_map_put_consumes_on_failure),
                cmocka_unit_test(test_map_put_text_int),
                cmocka_unit_test(test_array_push),
                cmocka_unit_test(test_builders),
                cmocka_unit_test(test_new_int_extremes),
                cmocka_unit_test(test_get_uint),
                cmocka_unit_test(test_get_int),
                cmocka_unit_test(test_get_bool),
                cmocka_unit_test(test_get_bytes),
                cmocka_unit_test(test_get_text),
                cmocka_unit_test(test_map_check_text_keys),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

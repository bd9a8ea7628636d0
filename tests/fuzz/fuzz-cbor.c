/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The safe-CBOR layer (common/cbor-util.h): the validator with and without the deterministic rules,
 * then decoding with libcbor and re-encoding. Invariants:
 *   - deterministic validity implies plain validity (the flag only adds rules);
 *   - cbor_util_decode() accepts exactly what cbor_util_validate() accepts;
 *   - whatever the validator let through, cbor_util_encode() can encode, its output is deterministic,
 *     and encoding is idempotent (decode(encode(x)) encodes to the same bytes);
 *   - for deterministic input the re-encoding is the input itself.
 */

#include <errno.h>
#include <string.h>

#include "common/cbor-util.h"
#include "tests/fuzz/fuzz.h"

/* A few tags of two or more bytes, as a format could allow them. Not 6..20: the validator refuses
 * their one-byte form always, so `d8 12` would validate (non-deterministic) but not its shortest form. */
static const uint64_t fuzz_tags[] = { 24, 32, 55799 };

static const CborLimits limits_det = {
        .max_size = 64 * 1024,
        .max_depth = CBOR_UTIL_MAX_DEPTH,
        .max_items = 4096,
        .tags = fuzz_tags,
        .n_tags = ELEMENTSOF(fuzz_tags),
        .flags = CBOR_VALIDATE_DETERMINISTIC,
};

static const CborLimits limits_any = {
        .max_size = 64 * 1024,
        .max_depth = CBOR_UTIL_MAX_DEPTH,
        .max_items = 4096,
        .tags = fuzz_tags,
        .n_tags = ELEMENTSOF(fuzz_tags),
        .flags = 0,
};

static void check_error(int r, const CborError *e, size_t size) {
        FUZZ_CHECK(r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
        FUZZ_CHECK(e->reason);
        FUZZ_CHECK(e->offset <= size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CborError e_det = {}, e_any = {};
        int r_det, r_any;

        r_det = cbor_util_validate(data, size, &limits_det, &e_det);
        if (r_det < 0)
                check_error(r_det, &e_det, size);
        r_any = cbor_util_validate(data, size, &limits_any, &e_any);
        if (r_any < 0)
                check_error(r_any, &e_any, size);
        if (r_any == -ENOMEM)
                return 0;
        if (r_det == 0)
                FUZZ_CHECK(r_any == 0);

        _cleanup_cbor_ cbor_item_t *item = NULL;
        CborError e_dec = {};
        int r = cbor_util_decode(data, size, &limits_any, &item, &e_dec);
        if (r == -ENOMEM)
                return 0;
        FUZZ_CHECK((r == 0) == (r_any == 0));
        if (r < 0) {
                FUZZ_CHECK(!item);
                return 0;
        }
        FUZZ_CHECK(item);

        _cleanup_free_ uint8_t *enc = NULL;
        size_t enc_size = 0;
        r = cbor_util_encode(item, &enc, &enc_size);
        if (r == -ENOMEM)
                return 0;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(enc && enc_size > 0);

        /* The encoder's output is deterministic, and no larger than the input's deterministic form. */
        FUZZ_CHECK(cbor_util_validate(enc, enc_size, &limits_det, NULL) == 0);
        FUZZ_CHECK(enc_size <= size);
        if (r_det == 0) {
                FUZZ_CHECK(enc_size == size);
                FUZZ_CHECK(memcmp(enc, data, size) == 0);
        }

        /* Idempotence: decoding the canonical form and encoding again changes nothing. */
        _cleanup_cbor_ cbor_item_t *again = NULL;
        r = cbor_util_decode(enc, enc_size, &limits_det, &again, NULL);
        if (r == -ENOMEM)
                return 0;
        FUZZ_CHECK(r == 0);
        _cleanup_free_ uint8_t *enc2 = NULL;
        size_t enc2_size = 0;
        r = cbor_util_encode(again, &enc2, &enc2_size);
        if (r == -ENOMEM)
                return 0;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(enc2_size == enc_size && memcmp(enc2, enc, enc_size) == 0);

        return 0;
}

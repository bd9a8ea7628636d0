/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CWT profile shared by tokens and task credentials (see cwt.h).
 */

#include <stdlib.h>
#include <string.h>

#include "attest/cwt.h"
#include "common/cbor-util.h"
#include "common/macro.h"

const void *cwt_arena_copy(CwtArena *a, const void *p, size_t n, bool terminate) {
        size_t need;

        if (!size_add(n, terminate ? 1 : 0, &need) || need > a->size - a->used)
                return NULL;
        uint8_t *d = a->buf + a->used;
        if (n > 0)
                memcpy(d, p, n);
        if (terminate)
                d[n] = 0;
        a->used += need;
        return d;
}

int cwt_claim_text(CwtArena *a, const cbor_item_t *item, size_t max, const char **ret) {
        const char *t;
        size_t n;

        /* The validator checked UTF-8; cbor_util_get_text() refuses an embedded NUL. */
        if (cbor_util_get_text(item, &t, &n) < 0 || n < 1 || n > max)
                return -EBADMSG;
        const char *copy = cwt_arena_copy(a, t, n, true);
        if (!copy)
                return -EBADMSG;
        *ret = copy;
        return 0;
}

int cwt_claim_bytes(const cbor_item_t *item, size_t size, uint8_t *ret) {
        const uint8_t *p;
        size_t n;

        if (cbor_util_get_bytes(item, &p, &n) < 0 || n != size)
                return -EBADMSG;
        memcpy(ret, p, n);
        return 0;
}

bool cwt_text_key_is(const char *s, size_t n, const char *key) {
        return n == strlen(key) && memcmp(s, key, n) == 0;
}

bool cwt_kid_is_valid(const uint8_t *kid, size_t n) {
        return n == CWT_KID_SIZE && kid[0] == 0x00 && kid[1] == 0x0b;
}

bool cwt_text_is_valid(const char *s) {
        if (!s)
                return false;
        size_t n = strnlen(s, CWT_TEXT_MAX + 1);
        return n >= 1 && n <= CWT_TEXT_MAX;
}

int cwt_claims_open(const uint8_t *payload, size_t size, const CborLimits *limits, size_t n_texts, CwtArena *a,
                    cbor_item_t **ret_map, struct cbor_pair **ret_pairs, size_t *ret_n, const char **reason) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        CborError error = {};
        int r;

        r = cbor_util_decode(payload, size, limits, &map, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return cwt_bad(reason, error.reason ?: "claims are not a single deterministic CBOR item");
        if (!cbor_isa_map(map))
                return cwt_bad(reason, "claims are not a map");
        size_t n = cbor_map_size(map);
        struct cbor_pair *pairs = cbor_map_handle(map);
        if (n > 0 && !pairs)
                return cwt_bad(reason, "claims are not a map");

        a->size = size + n_texts;
        a->used = 0;
        a->buf = malloc(a->size);
        if (!a->buf)
                return -ENOMEM;
        *ret_pairs = pairs;
        *ret_n = n;
        *ret_map = TAKE_PTR(map);
        return 0;
}

int cwt_bad(const char **reason, const char *why) {
        *reason = why;
        return -EBADMSG;
}

int cwt_refused(int r, const char *reason, const char **ret_reason) {
        if (ret_reason && reason)
                *ret_reason = reason;
        return r;
}

int cwt_envelope_parse(const CwtProfile *profile, const uint8_t *data, size_t size, CoseSign1Parsed *ret,
                       const char **reason) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        int r;

        if (size > profile->max) {
                *reason = profile->too_large;
                return -E2BIG;
        }
        r = cose_sign1_parse(data, size, &p, reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EBADMSG;
        /* Label 15 belongs to signed messages (DESIGN §5): a CWT's claims are all in its payload, so a
         * signed message can never pass for one. */
        if (p.claims)
                return cwt_bad(reason, profile->signed_message);
        if (!cwt_kid_is_valid(p.kid, p.kid_size))
                return cwt_bad(reason, "kid is not a 34-byte SHA-256 TPM Name (00 0b ...)");

        *ret = p;
        p = (CoseSign1Parsed) {};
        return 0;
}

cbor_item_t *cose_key_p256(const uint8_t x[32], const uint8_t y[32]) {
        cbor_item_t *key = cbor_util_new_map();
        int k = 0;

        if (!key)
                return NULL;
        k |= cbor_util_map_put_int(key, 1, cbor_util_new_uint(2));    /* kty: EC2 */
        k |= cbor_util_map_put_int(key, -1, cbor_util_new_uint(1));   /* crv: P-256 */
        k |= cbor_util_map_put_int(key, -2, cbor_util_new_bytes(x, 32));
        k |= cbor_util_map_put_int(key, -3, cbor_util_new_bytes(y, 32));
        if (k != 0) {
                cbor_decref(&key);
                return NULL;
        }
        return key;
}

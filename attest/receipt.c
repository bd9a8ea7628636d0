/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Destroy receipts (see receipt.h). Only the payload is defined here; the envelope is the common
 * COSE_Sign1 of cose.c, so a receipt verifies with cose_sign1_check() and the host public key.
 */

#include <string.h>

#include "attest/receipt.h"
#include "common/cbor-util.h"

static bool text_is_valid(const char *s, bool allow_empty) {
        if (!s)
                return false;
        size_t n = strnlen(s, RECEIPT_TEXT_MAX + 1);
        return n <= RECEIPT_TEXT_MAX && (allow_empty || n > 0);
}

int receipt_destroy_payload(const DestroyReceipt *r, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int k = 0;

        if (!r || !ret || !ret_size)
                return -EINVAL;
        if (!text_is_valid(r->name, false) || !text_is_valid(r->uri, false) || !text_is_valid(r->owner, false) ||
            !text_is_valid(r->reason, true) || !r->kid || !r->spki_sha256)
                return -EINVAL;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;

        /* "type" first so that host-key statements (receipts, revocation lists, audit heads) can never
         * be mistaken for one another: each payload names what it is. */
        k |= cbor_util_map_put_text(map, "type", cbor_util_new_text("destroy"));
        k |= cbor_util_map_put_text(map, "name", cbor_util_new_text(r->name));
        k |= cbor_util_map_put_text(map, "uri", cbor_util_new_text(r->uri));
        k |= cbor_util_map_put_text(map, "kid", cbor_util_new_bytes(r->kid, RECEIPT_KID_SIZE));
        k |= cbor_util_map_put_text(map, "spki_sha256", cbor_util_new_bytes(r->spki_sha256, RECEIPT_SPKI_DIGEST_SIZE));
        k |= cbor_util_map_put_text(map, "owner", cbor_util_new_text(r->owner));
        k |= cbor_util_map_put_text(map, "reason", cbor_util_new_text(r->reason));
        k |= cbor_util_map_put_text(map, "time", cbor_util_new_uint(r->time));
        k |= cbor_util_map_put_text(map, "by_uid", cbor_util_new_uint(r->by_uid));
        /* Absent values are omitted keys, never null (DESIGN §5). */
        if (r->has_audit_seq)
                k |= cbor_util_map_put_text(map, "audit_seq", cbor_util_new_uint(r->audit_seq));
        if (k != 0)
                return -ENOMEM;

        /* -EINVAL here means a text field that is not UTF-8. */
        return cbor_util_encode(map, ret, ret_size);
}

int receipt_destroy_prepare(const DestroyReceipt *r, const uint8_t *host_kid, size_t host_kid_size,
                            CoseSign1 **ret) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        int k;

        k = receipt_destroy_payload(r, &payload, &payload_size);
        if (k < 0)
                return k;
        /* Host-key statements carry no label 15: everything they say is in the payload. */
        return cose_sign1_prepare(host_kid, host_kid_size, NULL, payload, payload_size, ret);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The key-record loader (keystore/record.h): what agentidd reads from its state directory at start.
 * Invariants: a rejection has a reason; an accepted record satisfies the checks the header promises
 * (valid name, owner, description, state-dependent blobs) and encodes again; records are deterministic
 * CBOR, so the encoding is the input byte for byte, and parsing the encoding gives it back; a deep
 * copy encodes the same.
 */

#include <errno.h>
#include <string.h>

#include "keystore/record.h"
#include "tests/fuzz/fuzz.h"

static void free_erased(uint8_t *p, size_t n) {
        if (p)
                erase(p, n);
        free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(key_record_freep) KeyRecord *rec = NULL, *back = NULL, *copy = NULL;
        const char *reason = NULL;
        uint8_t *enc = NULL, *enc2 = NULL;
        size_t enc_size = 0, enc2_size = 0;
        int r;

        r = key_record_from_cbor(data, size, &rec, &reason);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
                FUZZ_CHECK(r != -EBADMSG || reason);
                FUZZ_CHECK(!rec);
                return 0;
        }
        FUZZ_CHECK(rec);
        FUZZ_CHECK(size <= KEY_RECORD_MAX_SIZE);

        FUZZ_CHECK(key_name_is_valid(rec->name));
        FUZZ_CHECK(key_owner_is_valid(rec->owner));
        FUZZ_CHECK(!rec->description || key_description_is_valid(rec->description));
        FUZZ_CHECK(key_state_to_string(rec->state));
        if (rec->state == KEY_STATE_ACTIVE)
                FUZZ_CHECK(rec->pub && rec->pub_size > 0 && rec->priv && rec->priv_size > 0);
        else {
                FUZZ_CHECK(rec->state == KEY_STATE_DESTROYED);
                FUZZ_CHECK(!rec->pub && !rec->priv);
        }

        r = key_record_to_cbor(rec, &enc, &enc_size);
        if (r == -ENOMEM)
                return 0;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(enc_size == size && memcmp(enc, data, size) == 0);

        r = key_record_from_cbor(enc, enc_size, &back, &reason);
        if (r == -ENOMEM)
                goto out;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(strcmp(back->name, rec->name) == 0);
        FUZZ_CHECK(back->state == rec->state && back->uid == rec->uid && back->created == rec->created);

        r = key_record_copy(rec, &copy);
        if (r == -ENOMEM)
                goto out;
        FUZZ_CHECK(r == 0);
        r = key_record_to_cbor(copy, &enc2, &enc2_size);
        if (r == -ENOMEM)
                goto out;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(enc2_size == enc_size && memcmp(enc2, enc, enc_size) == 0);

        /* A tombstone made from any accepted record is itself a valid record. */
        if (copy->state == KEY_STATE_ACTIVE) {
                key_record_make_tombstone(copy, copy->created + 1);
                free_erased(enc2, enc2_size);
                enc2 = NULL;
                r = key_record_to_cbor(copy, &enc2, &enc2_size);
                if (r == -ENOMEM)
                        goto out;
                FUZZ_CHECK(r == 0);
                key_record_free(back);
                back = NULL;
                r = key_record_from_cbor(enc2, enc2_size, &back, &reason);
                FUZZ_CHECK(r == 0 || r == -ENOMEM);
        }

out:
        free_erased(enc, enc_size);
        free_erased(enc2, enc2_size);
        return 0;
}

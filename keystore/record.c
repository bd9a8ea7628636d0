/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Key records (see record.h). The encoding is CBOR through common/cbor-util, deterministic, so the
 * same record always has the same bytes; decoding goes through the safe validator first since a
 * record file may be torn, foreign or planted.
 */

#include <stdio.h>

#include "common/cbor-util.h"
#include "common/utf8.h"
#include "keystore/record.h"

#define KEY_RECORD_VERSION 1U

static const char *const key_state_names[_KEY_STATE_MAX] = {
        [KEY_STATE_ACTIVE] = "active",
        [KEY_STATE_DESTROYED] = "destroyed",
};

const char *key_state_to_string(KeyState s) {
        if (s < 0 || s >= _KEY_STATE_MAX)
                return NULL;
        return key_state_names[s];
}

KeyState key_state_from_string(const char *s) {
        for (size_t i = 0; s && i < _KEY_STATE_MAX; i++)
                if (streq(s, key_state_names[i]))
                        return (KeyState) i;
        return _KEY_STATE_INVALID;
}

bool key_name_is_valid(const char *name) {
        if (!name)
                return false;
        size_t n = strlen(name);
        if (n < 1 || n > KEY_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return false;
        }
        return true;
}

/* Valid UTF-8 without C0/C1 control characters or DEL, at most max bytes. */
bool key_text_is_valid(const char *s, size_t max, bool allow_empty) {
        size_t n = s ? strlen(s) : 0;

        if (!s || n > max || (n == 0 && !allow_empty))
                return false;
        return utf8_is_text(s, n);
}

bool key_owner_is_valid(const char *owner) {
        return key_text_is_valid(owner, KEY_OWNER_MAX, false);
}

bool key_description_is_valid(const char *description) {
        return key_text_is_valid(description, KEY_DESCRIPTION_MAX, true);
}

static void key_record_drop_blobs(KeyRecord *r) {
        erase(r->priv, r->priv_size);
        r->pub = mfree(r->pub); /* priv's too */
        r->priv = NULL;
        r->pub_size = r->priv_size = 0;
}

KeyRecord *key_record_free(KeyRecord *r) {
        if (!r)
                return NULL;
        key_record_drop_blobs(r);
        erase(r->auth, sizeof(r->auth));
        free(r->name);
        free(r->owner);
        free(r->description);
        free(r->replaces);
        return mfree(r);
}

int key_record_set_blobs(KeyRecord *r, const uint8_t *pub, size_t pub_size, const uint8_t *priv, size_t priv_size) {
        if (pub_size == 0 || priv_size == 0 || pub_size > SIZE_MAX - priv_size)
                return -EINVAL;
        uint8_t *p = malloc(pub_size + priv_size);
        if (!p)
                return -ENOMEM;
        key_record_drop_blobs(r);
        memcpy(p, pub, pub_size);
        memcpy(p + pub_size, priv, priv_size);
        r->pub = p;
        r->pub_size = pub_size;
        r->priv = p + pub_size;
        r->priv_size = priv_size;
        return 0;
}

int key_record_set_replaces(KeyRecord *r, const uint8_t kid[KEY_KID_SIZE],
                            const uint8_t spki_sha256[KEY_SPKI_DIGEST_SIZE], const char *reason) {
        if (!key_text_is_valid(reason, KEY_REASON_MAX, true))
                return -EINVAL;
        size_t n = strlen(reason);
        KeyReplaces *x = malloc(sizeof(KeyReplaces) + n + 1);
        if (!x)
                return -ENOMEM;
        memcpy(x->kid, kid, KEY_KID_SIZE);
        memcpy(x->spki_sha256, spki_sha256, KEY_SPKI_DIGEST_SIZE);
        memcpy(x->reason, reason, n + 1);
        free(r->replaces);
        r->replaces = x;
        return 0;
}

void key_record_make_tombstone(KeyRecord *r, uint64_t now) {
        key_record_drop_blobs(r);
        erase(r->auth, sizeof(r->auth));
        r->state = KEY_STATE_DESTROYED;
        r->destroyed = now;
}

int key_record_copy(const KeyRecord *r, KeyRecord **ret) {
        _cleanup_(key_record_freep) KeyRecord *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        *c = *r;
        c->name = c->owner = c->description = NULL;
        c->pub = c->priv = NULL;
        c->pub_size = c->priv_size = 0;
        c->replaces = NULL;
        c->name = strdup(r->name);
        c->owner = strdup(r->owner);
        if (!c->name || !c->owner)
                return -ENOMEM;
        if (r->description && !(c->description = strdup(r->description)))
                return -ENOMEM;
        if (r->replaces &&
            key_record_set_replaces(c, r->replaces->kid, r->replaces->spki_sha256, r->replaces->reason) < 0)
                return -ENOMEM;
        if (r->pub && key_record_set_blobs(c, r->pub, r->pub_size, r->priv, r->priv_size) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(c);
        return 0;
}

static bool key_record_is_consistent(const KeyRecord *r) {
        if (!key_name_is_valid(r->name) || !key_owner_is_valid(r->owner))
                return false;
        if (r->description && !key_description_is_valid(r->description))
                return false;
        if (r->uid == UINT32_MAX || r->created == 0)
                return false;
        if (r->replaces && !key_text_is_valid(r->replaces->reason, KEY_REASON_MAX, true))
                return false;
        switch (r->state) {
        case KEY_STATE_ACTIVE:
                return r->pub && r->pub_size > 0 && r->priv && r->priv_size > 0 && r->destroyed == 0 &&
                       !r->has_spki;
        case KEY_STATE_DESTROYED:
                return !r->pub && !r->priv && r->destroyed != 0;
        default:
                return false;
        }
}

/* libcbor keeps its own copies of byte strings, and cbor_decref() frees them without zeroing: scrub
 * the authValue and private blob inside the item before releasing it. */
static void record_map_releasep(cbor_item_t **p) {
        static const char *const secret_fields[] = { "auth", "priv" };

        if (!*p)
                return;
        for (size_t i = 0; cbor_isa_map(*p) && i < ELEMENTSOF(secret_fields); i++) {
                const cbor_item_t *v = cbor_util_map_get_text(*p, secret_fields[i]);
                if (v && cbor_isa_bytestring(v) && cbor_bytestring_is_definite(v))
                        erase(cbor_bytestring_handle(v), cbor_bytestring_length(v));
        }
        cbor_decref(p);
}

int key_record_to_cbor(const KeyRecord *r, uint8_t **ret, size_t *ret_size) {
        _cleanup_(record_map_releasep) cbor_item_t *map = NULL;
        bool active = r->state == KEY_STATE_ACTIVE;
        int k = 0;

        if (!key_record_is_consistent(r))
                return -EINVAL;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;

        /* Absent values are omitted keys, never null (DESIGN §5). */
        k |= cbor_util_map_put_text(map, "v", cbor_util_new_uint(KEY_RECORD_VERSION));
        k |= cbor_util_map_put_text(map, "name", cbor_util_new_text(r->name));
        k |= cbor_util_map_put_text(map, "owner", cbor_util_new_text(r->owner));
        k |= cbor_util_map_put_text(map, "uid", cbor_util_new_uint(r->uid));
        if (r->description)
                k |= cbor_util_map_put_text(map, "description", cbor_util_new_text(r->description));
        k |= cbor_util_map_put_text(map, "created", cbor_util_new_uint(r->created));
        if (r->not_after != 0)
                k |= cbor_util_map_put_text(map, "not_after", cbor_util_new_uint(r->not_after));
        if (r->has_exe_digest)
                k |= cbor_util_map_put_text(map, "exe_sha256", cbor_util_new_bytes(r->exe_sha256, KEY_EXE_DIGEST_SIZE));
        if (r->named_tasks_only)
                k |= cbor_util_map_put_text(map, "named_tasks_only", cbor_util_new_bool(true));
        k |= cbor_util_map_put_text(map, "state", cbor_util_new_text(key_state_to_string(r->state)));
        k |= cbor_util_map_put_text(map, "kid", cbor_util_new_bytes(r->kid, KEY_KID_SIZE));
        k |= cbor_util_map_put_text(map, "parent", cbor_util_new_bytes(r->parent, KEY_KID_SIZE));
        if (active) {
                k |= cbor_util_map_put_text(map, "pub", cbor_util_new_bytes(r->pub, r->pub_size));
                k |= cbor_util_map_put_text(map, "priv", cbor_util_new_bytes(r->priv, r->priv_size));
                k |= cbor_util_map_put_text(map, "auth", cbor_util_new_bytes(r->auth, KEY_AUTH_SIZE));
        } else {
                k |= cbor_util_map_put_text(map, "destroyed", cbor_util_new_uint(r->destroyed));
                if (r->has_spki)
                        k |= cbor_util_map_put_text(map, "spki_sha256",
                                                    cbor_util_new_bytes(r->spki_sha256, KEY_SPKI_DIGEST_SIZE));
        }
        if (r->replaces) {
                k |= cbor_util_map_put_text(map, "replaces_kid", cbor_util_new_bytes(r->replaces->kid, KEY_KID_SIZE));
                k |= cbor_util_map_put_text(map, "replaces_spki",
                                            cbor_util_new_bytes(r->replaces->spki_sha256, KEY_SPKI_DIGEST_SIZE));
                k |= cbor_util_map_put_text(map, "replaces_reason", cbor_util_new_text(r->replaces->reason));
        }
        if (k != 0)
                return -ENOMEM;

        return cbor_util_encode(map, ret, ret_size);
}

static const char *const key_record_fields[] = {
        "v", "name", "owner", "uid", "description", "created", "not_after", "exe_sha256",
        "state", "kid", "parent", "pub", "priv", "auth", "destroyed",
        "replaces_kid", "replaces_spki", "replaces_reason", "spki_sha256", "named_tasks_only",
};

#define FAIL(reason_text)                               \
        do {                                            \
                if (ret_reason)                         \
                        *ret_reason = (reason_text);    \
                return -EBADMSG;                        \
        } while (0)

static int get_fixed_bytes(const cbor_item_t *map, const char *key, uint8_t *out, size_t size, bool *ret_present) {
        const cbor_item_t *v = cbor_util_map_get_text(map, key);
        const uint8_t *p;
        size_t n;

        if (ret_present)
                *ret_present = v != NULL;
        if (!v)
                return ret_present ? 0 : -EBADMSG;
        if (cbor_util_get_bytes(v, &p, &n) < 0 || n != size)
                return -EBADMSG;
        memcpy(out, p, size);
        return 0;
}

/* A byte string of 1..max bytes, borrowed from the map; absent: NULL. */
static int get_blob(const cbor_item_t *map, const char *key, size_t max, const uint8_t **ret, size_t *ret_size) {
        const cbor_item_t *v = cbor_util_map_get_text(map, key);

        *ret = NULL;
        *ret_size = 0;
        if (!v)
                return 0;
        if (cbor_util_get_bytes(v, ret, ret_size) < 0 || *ret_size == 0 || *ret_size > max)
                return -EBADMSG;
        return 0;
}

static int get_text_opt(const cbor_item_t *map, const char *key, char **ret) {
        const cbor_item_t *v = cbor_util_map_get_text(map, key);
        *ret = NULL;
        if (!v)
                return 0;
        return cbor_util_get_text_dup(v, ret);
}

static int get_uint_opt(const cbor_item_t *map, const char *key, uint64_t *ret) {
        const cbor_item_t *v = cbor_util_map_get_text(map, key);
        *ret = 0;
        if (!v)
                return 0;
        return cbor_util_get_uint(v, ret);
}

int key_record_from_cbor(const uint8_t *buf, size_t size, KeyRecord **ret, const char **ret_reason) {
        static const CborLimits limits = {
                .max_size = KEY_RECORD_MAX_SIZE,
                .max_depth = 2,
                .max_items = 2 * ELEMENTSOF(key_record_fields) + 1,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(record_map_releasep) cbor_item_t *map = NULL;
        _cleanup_(key_record_freep) KeyRecord *r = NULL;
        _cleanup_free_ char *state = NULL;
        CborError cerr = {};
        uint64_t v, uid;
        bool present;
        int k;

        if (ret_reason)
                *ret_reason = NULL;

        k = cbor_util_decode(buf, size, &limits, &map, &cerr);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                if (ret_reason)
                        *ret_reason = cerr.reason ? cerr.reason : "not valid CBOR";
                return k == -E2BIG ? -E2BIG : -EBADMSG;
        }
        if (!cbor_isa_map(map))
                FAIL("record is not a map");
        if (cbor_util_map_check_text_keys(map, key_record_fields, ELEMENTSOF(key_record_fields), NULL) < 0)
                FAIL("unknown field");

        const cbor_item_t *ver = cbor_util_map_get_text(map, "v");
        if (!ver || cbor_util_get_uint(ver, &v) < 0 || v != KEY_RECORD_VERSION)
                FAIL("unsupported record version");

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;

        k = get_text_opt(map, "name", &r->name);
        k = k ?: get_text_opt(map, "owner", &r->owner);
        k = k ?: get_text_opt(map, "description", &r->description);
        k = k ?: get_text_opt(map, "state", &state);
        if (k == -ENOMEM)
                return k;
        if (k < 0 || !r->name || !r->owner || !state)
                FAIL("missing or malformed name, owner or state");
        r->state = key_state_from_string(state);

        const cbor_item_t *u = cbor_util_map_get_text(map, "uid");
        if (!u || cbor_util_get_uint(u, &uid) < 0 || uid >= UINT32_MAX)
                FAIL("missing or malformed uid");
        r->uid = (uint32_t) uid;

        if (get_uint_opt(map, "created", &r->created) < 0 || get_uint_opt(map, "not_after", &r->not_after) < 0 ||
            get_uint_opt(map, "destroyed", &r->destroyed) < 0)
                FAIL("malformed time");

        if (get_fixed_bytes(map, "exe_sha256", r->exe_sha256, KEY_EXE_DIGEST_SIZE, &present) < 0)
                FAIL("malformed exe_sha256");
        r->has_exe_digest = present;
        if (get_fixed_bytes(map, "kid", r->kid, KEY_KID_SIZE, NULL) < 0)
                FAIL("missing or malformed kid");
        if (get_fixed_bytes(map, "parent", r->parent, KEY_KID_SIZE, NULL) < 0)
                FAIL("missing or malformed parent");

        if (get_fixed_bytes(map, "spki_sha256", r->spki_sha256, KEY_SPKI_DIGEST_SIZE, &r->has_spki) < 0)
                FAIL("malformed spki_sha256");
        /* Written only when set: present means true. */
        const cbor_item_t *nto = cbor_util_map_get_text(map, "named_tasks_only");
        if (nto && (cbor_util_get_bool(nto, &r->named_tasks_only) < 0 || !r->named_tasks_only))
                FAIL("malformed named_tasks_only");

        /* A rotated key's predecessor: all three fields or none. */
        uint8_t replaces_kid[KEY_KID_SIZE], replaces_spki[KEY_SPKI_DIGEST_SIZE];
        _cleanup_free_ char *replaces_reason = NULL;
        bool has_kid, has_spki;
        if (get_fixed_bytes(map, "replaces_kid", replaces_kid, KEY_KID_SIZE, &has_kid) < 0 ||
            get_fixed_bytes(map, "replaces_spki", replaces_spki, KEY_SPKI_DIGEST_SIZE, &has_spki) < 0)
                FAIL("malformed replaces_kid or replaces_spki");
        k = get_text_opt(map, "replaces_reason", &replaces_reason);
        if (k == -ENOMEM)
                return k;
        if (k < 0 || has_spki != has_kid || (replaces_reason != NULL) != has_kid)
                FAIL("incomplete or malformed replaces_* fields");
        if (has_kid) {
                k = key_record_set_replaces(r, replaces_kid, replaces_spki, replaces_reason);
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        FAIL("malformed replaces_reason");
        }

        /* Bounds: a marshalled TPM2B_PUBLIC/TPM2B_PRIVATE is far below 1 KiB for an ECC key. */
        const uint8_t *pub, *priv;
        size_t pub_size, priv_size;
        if (get_blob(map, "pub", 1024, &pub, &pub_size) < 0 || get_blob(map, "priv", 1024, &priv, &priv_size) < 0 ||
            !pub != !priv)
                FAIL("malformed pub or priv");
        if (pub && key_record_set_blobs(r, pub, pub_size, priv, priv_size) < 0)
                return -ENOMEM;

        if (get_fixed_bytes(map, "auth", r->auth, KEY_AUTH_SIZE, &present) < 0)
                FAIL("malformed auth");
        if (present != (r->state == KEY_STATE_ACTIVE))
                FAIL("auth present in a tombstone or missing in an active record");

        if (!key_record_is_consistent(r))
                FAIL("inconsistent record");

        *ret = TAKE_PTR(r);
        return 0;
}

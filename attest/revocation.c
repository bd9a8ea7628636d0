/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Revocation lists and rotation statements (see revocation.h; CDDL in docs/formats.md §10, §11).
 *
 * A list may hold 100,000 entries (16 MiB). Building it as one libcbor tree, or loading it as one,
 * would cost about 1.5 KiB of small allocations per entry, so both directions work entry by entry:
 * each entry is a small map encoded with cbor_util_encode() and decoded with cbor_util_decode(), and
 * the few bytes around them (the outer map, its scalar values and the array head) are written and read
 * here, in the one order RFC 8949 §4.2.1 allows. Before anything is read, the whole input has passed
 * cbor_util_validate() with the deterministic flag (shortest forms, sorted unique keys, no trailing
 * bytes, counts no larger than the bytes left), so the reader below walks bytes that are known to be
 * well-formed; it still checks every bound.
 *
 * The encoded size of a list is computed from its fields (list_size()), so an append that would make
 * the list too large to be read back is refused before the list changes.
 */

#include <string.h>

#include "attest/revocation.h"
#include "common/cbor-util.h"
#include "common/macro.h"
#include "common/utf8.h"

/* Major types (RFC 8949 §3.1). */
enum {
        MAJOR_UINT = 0,
        MAJOR_TEXT = 3,
        MAJOR_ARRAY = 4,
        MAJOR_MAP = 5,
};

#define LIST_TYPE "revocations"
#define ROTATION_TYPE "rotate"

static const char *const type_names[_REVOCATION_TYPE_MAX] = {
        [REVOCATION_DESTROY] = "destroy",
        [REVOCATION_ROTATE] = "rotate",
        [REVOCATION_TASK_END] = "task_end",
};

const char *revocation_type_to_string(RevocationType t) {
        if ((unsigned) t >= _REVOCATION_TYPE_MAX)
                return NULL;
        return type_names[t];
}

static int type_from_bytes(const char *s, size_t n) {
        for (size_t i = 0; i < _REVOCATION_TYPE_MAX; i++)
                if (strlen(type_names[i]) == n && memcmp(type_names[i], s, n) == 0)
                        return (int) i;
        return -EINVAL;
}

int revocation_type_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        return type_from_bytes(s, strlen(s));
}

/* ------------------------------------------------------------------------------------------------ */
/* Field rules, shared by the encoders and the decoders */

static bool text_valid(const char *s, size_t n, size_t min) {
        return n >= min && n <= REVOCATION_TEXT_MAX && utf8_is_text(s, n);
}

/* A C string for encoding: NULL counts as empty where that is allowed (min 0). */
static bool cstr_valid(const char *s, size_t min) {
        if (!s)
                return min == 0;
        return text_valid(s, strnlen(s, REVOCATION_TEXT_MAX + 1), min);
}

/* TPM Name of a SHA-256 object: nameAlg TPM_ALG_SHA256 (0x000b) first (TPM 2.0 Part 1 §16). */
static bool kid_valid(const uint8_t *kid) {
        return kid && kid[0] == 0x00 && kid[1] == 0x0b;
}

/* host-id: 32 lower-case hex digits (DESIGN §2), so one host has one spelling. */
static bool host_valid(const char *s, size_t n) {
        if (n != REVOCATION_HOST_ID_SIZE)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static bool entry_valid(const RevocationEntry *e) {
        if (!e || (unsigned) e->type >= _REVOCATION_TYPE_MAX)
                return false;
        if (!cstr_valid(e->name, 1) || !cstr_valid(e->reason, 0) || !kid_valid(e->kid))
                return false;
        /* A task_end entry names the task credential too, and may say when it expires; no other entry
         * has a cti or an exp (formats.md §10). */
        return e->has_cti == (e->type == REVOCATION_TASK_END) && (e->exp == 0 || e->type == REVOCATION_TASK_END);
}

/* ------------------------------------------------------------------------------------------------ */
/* Sizes: what cbor_util_encode() writes, computed (RFC 8949 §3 heads in their shortest form) */

static size_t head_size(uint64_t v) {
        return v < 24 ? 1 : v <= UINT8_MAX ? 2 : v <= UINT16_MAX ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static size_t text_size(size_t n) {
        return head_size(n) + n;
}

/* A text key and its value's head-plus-data size. */
#define PAIR_SIZE(key, value_size) (text_size(sizeof(key) - 1) + (value_size))

static size_t entry_size(const RevocationEntry *e) {
        size_t name = e->name ? strlen(e->name) : 0, reason = e->reason ? strlen(e->reason) : 0;

        return 1 +                                                      /* map(6) .. map(8) */
               (e->has_cti ? PAIR_SIZE("cti", text_size(REVOCATION_CTI_SIZE)) : 0) +
               (e->exp > 0 ? PAIR_SIZE("exp", head_size(e->exp)) : 0) +
               PAIR_SIZE("kid", text_size(REVOCATION_KID_SIZE)) +
               PAIR_SIZE("name", text_size(name)) +
               PAIR_SIZE("time", head_size(e->time)) +
               PAIR_SIZE("type", text_size(strlen(type_names[e->type]))) +
               PAIR_SIZE("reason", text_size(reason)) +
               PAIR_SIZE("spki_sha256", text_size(REVOCATION_SPKI_DIGEST_SIZE));
}

static size_t header_size(uint64_t seq, uint64_t issued, size_t n_entries) {
        return 1 +                                                      /* map(5) */
               PAIR_SIZE("seq", head_size(seq)) +
               PAIR_SIZE("host", text_size(REVOCATION_HOST_ID_SIZE)) +
               PAIR_SIZE("type", text_size(strlen(LIST_TYPE))) +
               PAIR_SIZE("issued", head_size(issued)) +
               PAIR_SIZE("entries", head_size(n_entries));
}

/* The encoded size of l with seq replaced and extra (if not NULL) appended; entries must be valid.
 * Stops counting beyond REVOCATION_LIST_MAX. */
static size_t list_size(const RevocationList *l, uint64_t seq, const RevocationEntry *extra) {
        size_t n = l->n_entries + (extra ? 1 : 0);
        size_t total = header_size(seq, l->issued, n);

        for (size_t i = 0; i < l->n_entries && total <= REVOCATION_LIST_MAX; i++)
                total += entry_size(&l->entries[i]);
        if (extra)
                total += entry_size(extra);
        return total;
}

/* ------------------------------------------------------------------------------------------------ */
/* The list in memory */

static void entry_done(RevocationEntry *e) {
        e->name = mfree(e->name);
        e->reason = mfree(e->reason);
}

void revocation_list_done(RevocationList *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n_entries; i++)
                entry_done(&l->entries[i]);
        l->entries = mfree(l->entries);
        l->n_entries = 0;
}

int revocation_list_check_room(const RevocationList *l, const RevocationEntry *e) {
        if (!l || !entry_valid(e))
                return -EINVAL;
        if (l->n_entries >= REVOCATION_ENTRIES_MAX || l->seq == UINT64_MAX)
                return -E2BIG;
        /* The entries already there came through here or through the decoder, so they are valid; only
         * their sizes are summed (O(n), about a millisecond at 100,000 entries; appends are rare).
         * Never grow a list past what a verifier accepts: it could not be read back. */
        if (list_size(l, l->seq + 1, e) > REVOCATION_LIST_MAX)
                return -E2BIG;
        return 0;
}

int revocation_list_append(RevocationList *l, const RevocationEntry *e) {
        _cleanup_free_ char *name = NULL, *reason = NULL;
        int r;

        r = revocation_list_check_room(l, e);
        if (r < 0)
                return r;

        name = strdup(e->name);
        reason = strdup(e->reason ?: "");
        if (!name || !reason)
                return -ENOMEM;

        size_t bytes;
        if (!size_mul(l->n_entries + 1, sizeof(RevocationEntry), &bytes))
                return -E2BIG;
        RevocationEntry *entries = realloc(l->entries, bytes);
        if (!entries)
                return -ENOMEM;
        l->entries = entries;

        RevocationEntry *copy = &l->entries[l->n_entries++];
        *copy = *e;
        copy->name = TAKE_PTR(name);
        copy->reason = TAKE_PTR(reason);
        if (!copy->has_cti)
                memset(copy->cti, 0, sizeof(copy->cti));
        l->seq++;
        return 0;
}

size_t revocation_list_prune(RevocationList *l, uint64_t before) {
        size_t kept = 0;

        /* Another list needs another seq: none left, no pruning (as no appending). */
        if (!l || l->seq == UINT64_MAX)
                return 0;
        for (size_t i = 0; i < l->n_entries; i++) {
                RevocationEntry *e = &l->entries[i];
                if (e->type == REVOCATION_TASK_END && e->exp > 0 && e->exp < before)
                        entry_done(e);
                else
                        l->entries[kept++] = *e;
        }
        size_t dropped = l->n_entries - kept;
        l->n_entries = kept;
        if (dropped > 0)
                l->seq++;
        return dropped;
}

const RevocationEntry *revocation_list_find(const RevocationList *l, const uint8_t *kid, const uint8_t *spki_sha256) {
        if (!l || (!kid && !spki_sha256))
                return NULL;
        /* Linear: the daemon's list is consulted when a key is used, and holds what this host revoked;
         * the verifier indexes its lists (attest/verify-revocation.c). */
        for (size_t i = 0; i < l->n_entries; i++) {
                const RevocationEntry *e = &l->entries[i];
                if ((kid && memcmp(e->kid, kid, REVOCATION_KID_SIZE) == 0) ||
                    (spki_sha256 && memcmp(e->spki_sha256, spki_sha256, REVOCATION_SPKI_DIGEST_SIZE) == 0))
                        return e;
        }
        return NULL;
}

const RevocationEntry *revocation_list_find_cti(const RevocationList *l, const uint8_t cti[REVOCATION_CTI_SIZE]) {
        if (!l || !cti)
                return NULL;
        for (size_t i = 0; i < l->n_entries; i++) {
                const RevocationEntry *e = &l->entries[i];
                if (e->type == REVOCATION_TASK_END && e->has_cti && memcmp(e->cti, cti, REVOCATION_CTI_SIZE) == 0)
                        return e;
        }
        return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoding */

typedef struct Writer {
        uint8_t *buf;
        size_t size, pos;
} Writer;

/* A head in its shortest form (RFC 8949 §3, §4.2.1). Return: 0, or -EINVAL if it does not fit. */
static int put_head(Writer *w, uint8_t major, uint64_t arg) {
        size_t n = head_size(arg), width = n - 1;
        /* Additional information: the value itself below 24, else 24..27 for 1, 2, 4, 8 bytes. */
        uint8_t ai = n == 1 ? (uint8_t) arg : n == 2 ? 24 : n == 3 ? 25 : n == 5 ? 26 : 27;

        if (n > w->size - w->pos)
                return -EINVAL;
        w->buf[w->pos] = (uint8_t) (major << 5 | ai);
        for (size_t i = 0; i < width; i++)
                w->buf[w->pos + 1 + i] = (uint8_t) (arg >> (8 * (width - 1 - i)));
        w->pos += n;
        return 0;
}

static int put_bytes(Writer *w, const void *p, size_t n) {
        if (n > w->size - w->pos)
                return -EINVAL;
        if (n > 0)
                memcpy(w->buf + w->pos, p, n);
        w->pos += n;
        return 0;
}

static int put_text(Writer *w, const char *s, size_t n) {
        int r = put_head(w, MAJOR_TEXT, n);
        return r < 0 ? r : put_bytes(w, s, n);
}

#define put_key(w, key) put_text((w), (key), sizeof(key) - 1)

static int entry_encode(const RevocationEntry *e, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = cbor_util_new_map();
        int k = 0;

        if (!map)
                return -ENOMEM;
        /* cbor_util_encode() sorts the keys: "cti", "exp", "kid", "name", "time", "type", "reason",
         * "spki_sha256" (shorter encodings first, then bytewise; RFC 8949 §4.2.1). */
        k |= cbor_util_map_put_text(map, "type", cbor_util_new_text(type_names[e->type]));
        k |= cbor_util_map_put_text(map, "name", cbor_util_new_text(e->name));
        k |= cbor_util_map_put_text(map, "kid", cbor_util_new_bytes(e->kid, REVOCATION_KID_SIZE));
        k |= cbor_util_map_put_text(map, "spki_sha256",
                                    cbor_util_new_bytes(e->spki_sha256, REVOCATION_SPKI_DIGEST_SIZE));
        k |= cbor_util_map_put_text(map, "time", cbor_util_new_uint(e->time));
        k |= cbor_util_map_put_text(map, "reason", cbor_util_new_text(e->reason ?: ""));
        if (e->has_cti)
                k |= cbor_util_map_put_text(map, "cti", cbor_util_new_bytes(e->cti, REVOCATION_CTI_SIZE));
        if (e->exp > 0)
                k |= cbor_util_map_put_text(map, "exp", cbor_util_new_uint(e->exp));
        if (k != 0)
                return -ENOMEM;
        return cbor_util_encode(map, ret, ret_size);
}

int revocation_list_encode(const RevocationList *l, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;
        int r;

        if (!l || !ret || !ret_size || (!l->entries && l->n_entries > 0))
                return -EINVAL;
        if (!host_valid(l->host, strnlen(l->host, sizeof(l->host))))
                return -EINVAL;
        if (l->n_entries > REVOCATION_ENTRIES_MAX)
                return -E2BIG;
        for (size_t i = 0; i < l->n_entries; i++)
                if (!entry_valid(&l->entries[i]))
                        return -EINVAL;

        size = list_size(l, l->seq, NULL);
        if (size > REVOCATION_LIST_MAX)
                return -E2BIG;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;

        /* The outer map's keys in their deterministic order (RFC 8949 §4.2.1): "seq" (63 ...) before
         * the four-letter keys, "host" (64 68 ...) before "type" (64 74 ...), then "issued" (66 ...)
         * and "entries" (67 ...). */
        Writer w = { .buf = buf, .size = size };
        r = put_head(&w, MAJOR_MAP, 5);
        if (r >= 0)
                r = put_key(&w, "seq");
        if (r >= 0)
                r = put_head(&w, MAJOR_UINT, l->seq);
        if (r >= 0)
                r = put_key(&w, "host");
        if (r >= 0)
                r = put_text(&w, l->host, REVOCATION_HOST_ID_SIZE);
        if (r >= 0)
                r = put_key(&w, "type");
        if (r >= 0)
                r = put_text(&w, LIST_TYPE, strlen(LIST_TYPE));
        if (r >= 0)
                r = put_key(&w, "issued");
        if (r >= 0)
                r = put_head(&w, MAJOR_UINT, l->issued);
        if (r >= 0)
                r = put_key(&w, "entries");
        if (r >= 0)
                r = put_head(&w, MAJOR_ARRAY, l->n_entries);
        if (r < 0)
                return r;

        for (size_t i = 0; i < l->n_entries; i++) {
                _cleanup_free_ uint8_t *e = NULL;
                size_t e_size = 0;

                r = entry_encode(&l->entries[i], &e, &e_size);
                if (r < 0)
                        return r;
                /* The computed size and the encoding must agree, or the list would not be what
                 * list_size() promised. */
                if (e_size != entry_size(&l->entries[i]))
                        return -EINVAL;
                r = put_bytes(&w, e, e_size);
                if (r < 0)
                        return r;
        }
        if (w.pos != size)
                return -EINVAL;

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int revocation_list_prepare(const RevocationList *l, const uint8_t *host_kid, size_t host_kid_size,
                            CoseSign1 **ret) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        int r;

        r = revocation_list_encode(l, &payload, &payload_size);
        if (r < 0)
                return r;
        /* Host-key statements carry no label 15: everything they say is in the payload. */
        return cose_sign1_prepare_large(host_kid, host_kid_size, payload, payload_size, ret);
}

/* ------------------------------------------------------------------------------------------------ */
/* Decoding */

/* Return: -EBADMSG with *reason set. */
static int bad(const char **reason, const char *why) {
        if (reason)
                *reason = why;
        return -EBADMSG;
}

/* A reader over bytes cbor_util_validate() accepted. */
typedef struct Reader {
        const uint8_t *buf;
        size_t size, pos;
} Reader;

static int get_head(Reader *r, uint8_t *ret_major, uint64_t *ret_arg) {
        if (r->pos >= r->size)
                return -EBADMSG;
        uint8_t major = r->buf[r->pos] >> 5, ai = r->buf[r->pos] & 0x1f;
        uint64_t arg = ai;
        size_t width = 0;

        if (ai >= 24 && ai <= 27)
                width = (size_t) 1 << (ai - 24);
        else if (ai > 27)
                return -EBADMSG;        /* the validator refused these */
        if (width > r->size - r->pos - 1)
                return -EBADMSG;
        if (width > 0) {
                arg = 0;
                for (size_t i = 0; i < width; i++)
                        arg = arg << 8 | r->buf[r->pos + 1 + i];
        }
        r->pos += 1 + width;
        *ret_major = major;
        *ret_arg = arg;
        return 0;
}

/* The next item's extent, without looking inside (iterative: one count of items still to pass). */
static int skip_item(Reader *r) {
        uint64_t pending = 1;

        while (pending > 0) {
                uint8_t major;
                uint64_t arg;

                if (get_head(r, &major, &arg) < 0)
                        return -EBADMSG;
                pending--;
                switch (major) {
                case 2:
                case MAJOR_TEXT:
                        if (arg > r->size - r->pos)
                                return -EBADMSG;
                        r->pos += (size_t) arg;
                        break;
                case MAJOR_ARRAY:
                        if (arg > r->size - r->pos)
                                return -EBADMSG;
                        pending += arg;
                        break;
                case MAJOR_MAP:
                        if (arg > (r->size - r->pos) / 2)
                                return -EBADMSG;
                        pending += 2 * arg;
                        break;
                case 6:
                        pending++;
                        break;
                default:
                        break;          /* integers, false, true: the head is all */
                }
        }
        return 0;
}

static int get_uint(Reader *r, uint64_t *ret) {
        uint8_t major;
        uint64_t arg;

        if (get_head(r, &major, &arg) < 0 || major != MAJOR_UINT)
                return -EBADMSG;
        *ret = arg;
        return 0;
}

/* A text string, borrowed from the input. */
static int get_text(Reader *r, const char **ret, size_t *ret_size) {
        uint8_t major;
        uint64_t arg;

        if (get_head(r, &major, &arg) < 0 || major != MAJOR_TEXT || arg > r->size - r->pos)
                return -EBADMSG;
        *ret = (const char *) r->buf + r->pos;
        *ret_size = (size_t) arg;
        r->pos += (size_t) arg;
        return 0;
}

static bool bytes_are(const char *s, size_t n, const char *literal) {
        return n == strlen(literal) && memcmp(s, literal, n) == 0;
}

/* A text field: 1..REVOCATION_TEXT_MAX (min 1) or 0.. (min 0) bytes without control characters. */
static int field_text(const cbor_item_t *map, const char *key, size_t min, char **ret) {
        const char *s;
        size_t n;

        /* cbor_util_get_text() refuses an embedded NUL (a C0 control character anyway). */
        if (cbor_util_get_text(cbor_util_map_get_text(map, key), &s, &n) < 0 || !text_valid(s, n, min))
                return -EBADMSG;
        char *copy = memdup_cstr(s, n);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int field_bytes(const cbor_item_t *map, const char *key, uint8_t *ret, size_t size) {
        const uint8_t *p;
        size_t n;

        if (cbor_util_get_bytes(cbor_util_map_get_text(map, key), &p, &n) < 0 || n != size)
                return -EBADMSG;
        memcpy(ret, p, n);
        return 0;
}

/* One entry, from its own span of the (validated) list. Return: 0; -EBADMSG with *reason; -ENOMEM. */
static int entry_decode(const uint8_t *buf, size_t size, RevocationEntry *e, const char **reason) {
        static const CborLimits limits = {
                .max_size = 1024,       /* texts of 256 bytes and the fixed fields fit */
                .max_depth = 1,
                .max_items = 18,        /* map(8) and its 16 keys and values, and one more to name */
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        static const char *const keys[] = { "type", "name", "kid", "spki_sha256", "time", "reason", "cti", "exp" };
        _cleanup_cbor_ cbor_item_t *map = NULL;
        const char *s;
        size_t n;
        int r;

        r = cbor_util_decode(buf, size, &limits, &map, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(map))
                return bad(reason, "an entry is not a map of at most 1024 bytes");
        if (cbor_util_map_check_text_keys(map, keys, ELEMENTSOF(keys), NULL) < 0)
                return bad(reason, "an entry has an unknown key");

        if (cbor_util_get_text(cbor_util_map_get_text(map, "type"), &s, &n) < 0)
                return bad(reason, "an entry's \"type\" is missing or not a text");
        r = type_from_bytes(s, n);
        if (r < 0)
                return bad(reason, "an entry's \"type\" is not \"destroy\", \"rotate\" or \"task_end\"");
        e->type = (RevocationType) r;

        r = field_text(map, "name", 1, &e->name);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return bad(reason, "an entry's \"name\" is missing or not 1..256 bytes of text without control "
                                   "characters");
        r = field_text(map, "reason", 0, &e->reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return bad(reason, "an entry's \"reason\" is missing or not 0..256 bytes of text without control "
                                   "characters");
        if (field_bytes(map, "kid", e->kid, REVOCATION_KID_SIZE) < 0 || !kid_valid(e->kid))
                return bad(reason, "an entry's \"kid\" is missing or not a 34-byte SHA-256 TPM Name (00 0b ...)");
        if (field_bytes(map, "spki_sha256", e->spki_sha256, REVOCATION_SPKI_DIGEST_SIZE) < 0)
                return bad(reason, "an entry's \"spki_sha256\" is missing or not 32 bytes");
        if (cbor_util_get_uint(cbor_util_map_get_text(map, "time"), &e->time) < 0)
                return bad(reason, "an entry's \"time\" is missing or not an unsigned integer");

        const cbor_item_t *cti = cbor_util_map_get_text(map, "cti");
        if (e->type == REVOCATION_TASK_END) {
                if (!cti || field_bytes(map, "cti", e->cti, REVOCATION_CTI_SIZE) < 0)
                        return bad(reason, "a task_end entry's \"cti\" is missing or not 16 bytes");
                e->has_cti = true;
        } else if (cti)
                return bad(reason, "an entry other than task_end has a \"cti\"");

        const cbor_item_t *exp = cbor_util_map_get_text(map, "exp");
        if (exp && e->type != REVOCATION_TASK_END)
                return bad(reason, "an entry other than task_end has an \"exp\"");
        if (exp && (cbor_util_get_uint(exp, &e->exp) < 0 || e->exp == 0))
                return bad(reason, "a task_end entry's \"exp\" is not a positive integer");
        return 0;
}

int revocation_list_decode(const uint8_t *buf, size_t size, RevocationList *ret, const char **ret_reason) {
        static const CborLimits limits = {
                .max_size = REVOCATION_LIST_MAX,
                .max_depth = 3,         /* list map > "entries" > entry map */
                /* The outer map (11 items) and 17 items per entry, at most: a list with one entry too
                 * many is reported as such below, not as too many items. */
                .max_items = 16 + (size_t) REVOCATION_ENTRIES_MAX * 17,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(revocation_list_done) RevocationList l = {};
        bool have_seq = false, have_host = false, have_type = false, have_issued = false, have_entries = false;
        CborError error = {};
        Reader rd = { .buf = buf, .size = size };
        uint8_t major;
        uint64_t n_pairs;
        int r;

        if ((!buf && size > 0) || !ret)
                return -EINVAL;
        if (size > REVOCATION_LIST_MAX)
                return -EFBIG;

        r = cbor_util_validate(buf, size, &limits, &error);
        if (r == -ENOMEM || r == -EINVAL)
                return r;
        if (r < 0)
                return bad(ret_reason, error.reason ?: "not a single deterministic CBOR item");

        if (get_head(&rd, &major, &n_pairs) < 0 || major != MAJOR_MAP)
                return bad(ret_reason, "the list is not a map");

        /* Keys are unique and sorted (the validator checked), so each is seen at most once. */
        for (uint64_t i = 0; i < n_pairs; i++) {
                const char *key, *s;
                size_t key_size, n;

                if (get_text(&rd, &key, &key_size) < 0)
                        return bad(ret_reason, "the list has a key that is not a text");

                if (bytes_are(key, key_size, "seq")) {
                        if (get_uint(&rd, &l.seq) < 0)
                                return bad(ret_reason, "\"seq\" is not an unsigned integer");
                        have_seq = true;
                } else if (bytes_are(key, key_size, "issued")) {
                        if (get_uint(&rd, &l.issued) < 0)
                                return bad(ret_reason, "\"issued\" is not an unsigned integer");
                        have_issued = true;
                } else if (bytes_are(key, key_size, "host")) {
                        if (get_text(&rd, &s, &n) < 0 || !host_valid(s, n))
                                return bad(ret_reason, "\"host\" is not 32 lower-case hex digits");
                        memcpy(l.host, s, n);
                        l.host[n] = 0;
                        have_host = true;
                } else if (bytes_are(key, key_size, "type")) {
                        if (get_text(&rd, &s, &n) < 0 || !bytes_are(s, n, LIST_TYPE))
                                return bad(ret_reason, "\"type\" is not \"revocations\"");
                        have_type = true;
                } else if (bytes_are(key, key_size, "entries")) {
                        uint64_t count;

                        if (get_head(&rd, &major, &count) < 0 || major != MAJOR_ARRAY)
                                return bad(ret_reason, "\"entries\" is not an array");
                        if (count > REVOCATION_ENTRIES_MAX)
                                return bad(ret_reason, "\"entries\" has more than 100000 entries");
                        /* The validator checked the count against the bytes left. */
                        if (count > 0) {
                                l.entries = calloc((size_t) count, sizeof(RevocationEntry));
                                if (!l.entries)
                                        return -ENOMEM;
                        }
                        for (uint64_t j = 0; j < count; j++) {
                                size_t start = rd.pos;

                                if (skip_item(&rd) < 0)
                                        return bad(ret_reason, "an entry is malformed");
                                /* Counted before decoding, so revocation_list_done() frees what a
                                 * failure leaves half filled. */
                                l.n_entries++;
                                r = entry_decode(buf + start, rd.pos - start, &l.entries[j], ret_reason);
                                if (r < 0)
                                        return r;
                        }
                        have_entries = true;
                } else
                        return bad(ret_reason, "the list has an unknown key");
        }
        if (rd.pos != size)
                return bad(ret_reason, "trailing bytes after the list");       /* the validator refused these */
        if (!have_seq || !have_host || !have_type || !have_issued || !have_entries)
                return bad(ret_reason, "the list lacks one of \"type\", \"host\", \"seq\", \"issued\", \"entries\"");

        *ret = l;
        l = (RevocationList) {};
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Rotation statements */

static bool rotation_valid(const RotationStatement *s) {
        return s && cstr_valid(s->name, 1) && cstr_valid(s->uri, 1) && cstr_valid(s->reason, 0) &&
               kid_valid(s->old_kid) && kid_valid(s->new_kid) && s->new_spki_sha256;
}

int rotation_statement_payload(const RotationStatement *s, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int k = 0;

        if (!rotation_valid(s) || !ret || !ret_size)
                return -EINVAL;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;
        /* "type" keeps a rotation statement from passing for any other statement (DESIGN §5). */
        k |= cbor_util_map_put_text(map, "type", cbor_util_new_text(ROTATION_TYPE));
        k |= cbor_util_map_put_text(map, "name", cbor_util_new_text(s->name));
        k |= cbor_util_map_put_text(map, "uri", cbor_util_new_text(s->uri));
        k |= cbor_util_map_put_text(map, "old_kid", cbor_util_new_bytes(s->old_kid, REVOCATION_KID_SIZE));
        k |= cbor_util_map_put_text(map, "new_kid", cbor_util_new_bytes(s->new_kid, REVOCATION_KID_SIZE));
        k |= cbor_util_map_put_text(map, "new_spki_sha256",
                                    cbor_util_new_bytes(s->new_spki_sha256, REVOCATION_SPKI_DIGEST_SIZE));
        k |= cbor_util_map_put_text(map, "reason", cbor_util_new_text(s->reason ?: ""));
        k |= cbor_util_map_put_text(map, "time", cbor_util_new_uint(s->time));
        if (k != 0)
                return -ENOMEM;
        return cbor_util_encode(map, ret, ret_size);
}

int rotation_statement_prepare(const RotationStatement *s, const uint8_t *host_kid, size_t host_kid_size,
                               CoseSign **ret) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        int r;

        r = rotation_statement_payload(s, &payload, &payload_size);
        if (r < 0)
                return r;

        /* Signed by the key that goes (it agrees to be replaced, and proves the statement comes from
         * its holder) and then by the host key (the host that holds both keys vouches for it). */
        const uint8_t *kids[] = { s->old_kid, host_kid };
        const size_t kid_sizes[] = { REVOCATION_KID_SIZE, host_kid_size };
        return cose_sign_prepare(kids, kid_sizes, ELEMENTSOF(kids), payload, payload_size, ret);
}

void rotation_statement_parsed_done(RotationStatementParsed *p) {
        if (!p)
                return;
        free(p->name);
        free(p->uri);
        free(p->reason);
        *p = (RotationStatementParsed) {};
}

int rotation_statement_decode(const uint8_t *buf, size_t size, RotationStatementParsed *ret, const char **ret_reason) {
        static const CborLimits limits = {
                .max_size = ROTATION_PAYLOAD_MAX,
                .max_depth = 1,
                .max_items = 32,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        static const char *const keys[] = {
                "type", "name", "uri", "old_kid", "new_kid", "new_spki_sha256", "reason", "time",
        };
        _cleanup_(rotation_statement_parsed_done) RotationStatementParsed p = {};
        _cleanup_cbor_ cbor_item_t *map = NULL;
        CborError error = {};
        const char *s;
        size_t n;
        int r;

        if ((!buf && size > 0) || !ret)
                return -EINVAL;

        r = cbor_util_decode(buf, size, &limits, &map, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return bad(ret_reason, error.reason ?: "not a single deterministic CBOR item");
        if (!cbor_isa_map(map))
                return bad(ret_reason, "the statement is not a map");
        if (cbor_util_map_check_text_keys(map, keys, ELEMENTSOF(keys), NULL) < 0)
                return bad(ret_reason, "the statement has an unknown key");
        if (cbor_util_get_text(cbor_util_map_get_text(map, "type"), &s, &n) < 0 || !bytes_are(s, n, ROTATION_TYPE))
                return bad(ret_reason, "\"type\" is missing or not \"rotate\"");

        r = field_text(map, "name", 1, &p.name);
        if (r >= 0)
                r = field_text(map, "uri", 1, &p.uri);
        if (r >= 0)
                r = field_text(map, "reason", 0, &p.reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return bad(ret_reason, "\"name\", \"uri\" or \"reason\" is missing or not text of the allowed size "
                                       "without control characters");
        if (field_bytes(map, "old_kid", p.old_kid, REVOCATION_KID_SIZE) < 0 || !kid_valid(p.old_kid) ||
            field_bytes(map, "new_kid", p.new_kid, REVOCATION_KID_SIZE) < 0 || !kid_valid(p.new_kid))
                return bad(ret_reason, "\"old_kid\" or \"new_kid\" is missing or not a 34-byte SHA-256 TPM Name");
        if (field_bytes(map, "new_spki_sha256", p.new_spki_sha256, REVOCATION_SPKI_DIGEST_SIZE) < 0)
                return bad(ret_reason, "\"new_spki_sha256\" is missing or not 32 bytes");
        if (cbor_util_get_uint(cbor_util_map_get_text(map, "time"), &p.time) < 0)
                return bad(ret_reason, "\"time\" is missing or not an unsigned integer");

        *ret = p;
        p = (RotationStatementParsed) {};
        return 0;
}

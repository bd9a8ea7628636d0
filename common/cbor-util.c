/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Safe CBOR (see cbor-util.h).
 *
 * Three parts: a validator that walks the raw bytes before libcbor is allowed to see them (it never
 * trusts a declared count or length further than the bytes that are actually there), the one
 * serializer that writes RFC 8949 §4.2.1 deterministic encoding from a libcbor tree, and small
 * builders and accessors with the reference-counting rules spelled out once.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cbor-util.h"
#include "common/utf8.h"
#include "common/macro.h"

/* Major types, RFC 8949 §3.1. */
enum {
        MAJOR_UINT = 0,
        MAJOR_NEGINT = 1,
        MAJOR_BYTES = 2,
        MAJOR_TEXT = 3,
        MAJOR_ARRAY = 4,
        MAJOR_MAP = 5,
        MAJOR_TAG = 6,
        MAJOR_SIMPLE = 7,
};

/* Additional information values, RFC 8949 §3. */
enum {
        AI_1BYTE = 24,
        AI_8BYTE = 27,
        AI_INDEFINITE = 31,
        SIMPLE_FALSE = 20,
        SIMPLE_TRUE = 21,
        SIMPLE_NULL = 22,
        SIMPLE_UNDEFINED = 23,
};

/* One-byte tag heads 0xc6..0xd4: libcbor 0.8 reports them as malformed (DESIGN §5). */
#define LIBCBOR_BAD_TAG_MIN 6U
#define LIBCBOR_BAD_TAG_MAX 20U

/* ------------------------------------------------------------------------------------------------ */
/* Validator */

typedef struct Head {
        uint8_t major;
        uint8_t ai;
        uint64_t arg;
        size_t offset;          /* of the initial byte */
} Head;

/* A map key as the bytes it was encoded in (always a complete, already validated item). */
typedef struct KeySpan {
        const uint8_t *p;
        size_t n;
} KeySpan;

typedef struct Validator {
        const uint8_t *buf;
        size_t len;
        size_t pos;
        size_t n_items;
        const CborLimits *limits;
        CborError *error;
} Validator;

static int validate_item(Validator *v, unsigned depth);

static int fail(Validator *v, int r, size_t offset, const char *reason) {
        if (v->error)
                *v->error = (CborError) {
                        .offset = offset,
                        .reason = reason,
                };
        return r;
}

static bool deterministic(const Validator *v) {
        return v->limits->flags & CBOR_VALIDATE_DETERMINISTIC;
}

/* Parses a head (RFC 8949 §3) without trusting anything: ai 28-30 are reserved (§3), ai 31 means an
 * indefinite length or break, which no agentid format uses (DESIGN §4). */
static int read_head(Validator *v, Head *ret) {
        size_t start = v->pos;

        if (start >= v->len)
                return fail(v, -EBADMSG, start, "truncated: data item expected");

        Head h = {
                .major = v->buf[start] >> 5,
                .ai = v->buf[start] & 0x1f,
                .offset = start,
        };

        if (h.ai >= 28 && h.ai <= 30)
                return fail(v, -EBADMSG, start, "reserved additional information 28-30 (RFC 8949 §3)");

        if (h.major == MAJOR_SIMPLE) {
                /* RFC 8949 §3.3: of the simple values and floats only false and true are used; an absent
                 * value is an omitted key, never null (DESIGN §5). */
                switch (h.ai) {
                case SIMPLE_FALSE:
                case SIMPLE_TRUE:
                        h.arg = h.ai;
                        v->pos = start + 1;
                        *ret = h;
                        return 0;
                case SIMPLE_NULL:
                        return fail(v, -EBADMSG, start, "null not allowed");
                case SIMPLE_UNDEFINED:
                        return fail(v, -EBADMSG, start, "undefined not allowed");
                case 25 ... 27:
                        return fail(v, -EBADMSG, start, "floating-point number not allowed");
                case AI_INDEFINITE:
                        return fail(v, -EBADMSG, start, "break outside an indefinite-length item");
                default:
                        return fail(v, -EBADMSG, start, "simple value not allowed");
                }
        }

        if (h.ai == AI_INDEFINITE) {
                if (h.major >= MAJOR_BYTES && h.major <= MAJOR_MAP)
                        return fail(v, -EBADMSG, start, "indefinite length not allowed");
                return fail(v, -EBADMSG, start,
                            "additional information 31 not well-formed for this major type (RFC 8949 §3)");
        }

        if (h.ai < AI_1BYTE) {
                h.arg = h.ai;
                v->pos = start + 1;
                *ret = h;
                return 0;
        }

        size_t n = (size_t) 1 << (h.ai - AI_1BYTE);
        if (n > v->len - start - 1)
                return fail(v, -EBADMSG, start, "truncated: argument of data item");
        for (size_t i = 0; i < n; i++)
                h.arg = h.arg << 8 | v->buf[start + 1 + i];

        /* RFC 8949 §4.2.1: the argument must use the shortest form that holds it. */
        if (deterministic(v)) {
                static const uint64_t below[] = {
                        AI_1BYTE, UINT64_C(0x100), UINT64_C(0x10000), UINT64_C(0x100000000),
                };
                if (h.arg < below[h.ai - AI_1BYTE])
                        return fail(v, -EBADMSG, start, "argument not in shortest form (RFC 8949 §4.2.1)");
        }

        v->pos = start + 1 + n;
        *ret = h;
        return 0;
}

/* Reads the head of an item that validate_item() has already accepted. */
static size_t trusted_head(const uint8_t *p, size_t n, size_t pos, uint8_t *ret_major, uint64_t *ret_arg) {
        uint8_t ai = p[pos] & 0x1f;
        uint64_t arg = ai;
        size_t size = 0;

        *ret_major = p[pos] >> 5;
        if (ai >= AI_1BYTE && ai <= AI_8BYTE) {
                size = (size_t) 1 << (ai - AI_1BYTE);
                arg = 0;
                for (size_t i = 0; i < size && pos + 1 + i < n; i++)
                        arg = arg << 8 | p[pos + 1 + i];
        }
        *ret_arg = arg;
        return MIN(pos + 1 + size, n);
}

/* Orders keys by value: head by head, (major type, argument), string contents bytewise. For keys in
 * shortest form this is exactly the bytewise order of §4.2.1, and it makes `05` and `18 05` equal, as
 * libcbor (and every accessor) would see them. Both spans are complete items, so while the heads agree
 * so does the structure, and both walks end together. */
static int key_cmp_value(const KeySpan *a, const KeySpan *b) {
        size_t i = 0, j = 0;

        while (i < a->n && j < b->n) {
                uint8_t ma, mb;
                uint64_t va, vb;

                i = trusted_head(a->p, a->n, i, &ma, &va);
                j = trusted_head(b->p, b->n, j, &mb, &vb);
                if (ma != mb)
                        return ma < mb ? -1 : 1;
                if (va != vb)
                        return va < vb ? -1 : 1;
                if (ma == MAJOR_BYTES || ma == MAJOR_TEXT) {
                        size_t l = (size_t) MIN(va, (uint64_t) MIN(a->n - i, b->n - j));
                        int c = memcmp(a->p + i, b->p + j, l);
                        if (c != 0)
                                return c < 0 ? -1 : 1;
                        i += l;
                        j += l;
                }
        }
        return (i < a->n) - (j < b->n);
}

static int key_cmp_value_qsort(const void *a, const void *b) {
        return key_cmp_value(a, b);
}

/* Bytewise lexicographic order of the encoded keys, a prefix first (RFC 8949 §4.2.1). */
static int key_cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
        int c = memcmp(a, b, MIN(an, bn));
        if (c != 0)
                return c < 0 ? -1 : 1;
        return (an > bn) - (an < bn);
}

static int validate_map(Validator *v, const Head *h, unsigned depth) {
        _cleanup_free_ KeySpan *keys = NULL;
        size_t n_keys = 0, n_allocated = 0;
        KeySpan prev = {};
        bool sorted = true;
        int r;

        for (uint64_t i = 0; i < h->arg; i++) {
                size_t key_start = v->pos;

                r = validate_item(v, depth + 1);
                if (r < 0)
                        return r;

                KeySpan key = { v->buf + key_start, v->pos - key_start };
                if (i > 0) {
                        int c = deterministic(v) ? key_cmp_bytes(prev.p, prev.n, key.p, key.n)
                                                 : key_cmp_value(&prev, &key);
                        if (c == 0)
                                return fail(v, -EBADMSG, key_start, "duplicate map key");
                        if (c > 0) {
                                if (deterministic(v))
                                        return fail(v, -EBADMSG, key_start,
                                                    "map keys not in ascending order (RFC 8949 §4.2.1)");
                                sorted = false;
                        }
                }
                prev = key;

                /* Without the flag keys may come in any order; keep them to sort once the map is read.
                 * Growth follows the keys actually present, never the declared count. */
                if (!deterministic(v)) {
                        if (n_keys == n_allocated) {
                                size_t m, bytes;
                                if (!size_mul(MAX(n_allocated, (size_t) 4), 2, &m) ||
                                    !size_mul(m, sizeof(KeySpan), &bytes))
                                        return fail(v, -ENOMEM, key_start, "out of memory");
                                KeySpan *k = realloc(keys, bytes);
                                if (!k)
                                        return fail(v, -ENOMEM, key_start, "out of memory");
                                keys = k;
                                n_allocated = m;
                        }
                        keys[n_keys++] = key;
                }

                r = validate_item(v, depth + 1);
                if (r < 0)
                        return r;
        }

        if (!sorted) {
                qsort(keys, n_keys, sizeof(KeySpan), key_cmp_value_qsort);
                for (size_t i = 1; i < n_keys; i++)
                        if (key_cmp_value(&keys[i - 1], &keys[i]) == 0)
                                return fail(v, -EBADMSG, (size_t) (MAX(keys[i - 1].p, keys[i].p) - v->buf),
                                            "duplicate map key");
        }

        return 0;
}

static int validate_tag(Validator *v, const Head *h) {
        /* Refused in every width: libcbor 0.8 cannot decode the one-byte form, and a wider form (d8 12)
         * would re-encode as the one-byte form, so what we accept could not round-trip. */
        if (h->arg >= LIBCBOR_BAD_TAG_MIN && h->arg <= LIBCBOR_BAD_TAG_MAX)
                return fail(v, -EBADMSG, h->offset,
                            "tag 6..20 (libcbor 0.8 cannot decode it; strip it first)");

        for (size_t i = 0; i < v->limits->n_tags; i++)
                if (v->limits->tags[i] == h->arg)
                        return 0;

        return fail(v, -EBADMSG, h->offset, "tag not allowed");
}

/* depth = number of arrays, maps and tags enclosing this item. */
static int validate_item(Validator *v, unsigned depth) {
        Head h;
        int r;

        r = read_head(v, &h);
        if (r < 0)
                return r;

        if (v->n_items >= v->limits->max_items)
                return fail(v, -E2BIG, h.offset, "too many data items");
        v->n_items++;

        /* Every declared count and length is checked against the bytes left before anything is
         * read: a count of 2^32 in a 5-byte input fails here, not after 2^32 iterations. */
        size_t left = v->len - v->pos;

        switch (h.major) {

        case MAJOR_UINT:
        case MAJOR_NEGINT:
        case MAJOR_SIMPLE:
                return 0;

        case MAJOR_BYTES:
        case MAJOR_TEXT: {
                if (h.arg > (uint64_t) left)
                        return fail(v, -EBADMSG, h.offset, "truncated: string longer than the input left");

                size_t n = (size_t) h.arg, bad;
                if (h.major == MAJOR_TEXT && !utf8_is_valid(v->buf + v->pos, n, &bad))
                        return fail(v, -EBADMSG, v->pos + bad, "text string is not valid UTF-8 (RFC 8949 §3.1)");
                v->pos += n;
                return 0;
        }

        case MAJOR_ARRAY:
                if (depth >= v->limits->max_depth)
                        return fail(v, -E2BIG, h.offset, "nesting too deep");
                /* Each element takes at least one byte. */
                if (h.arg > (uint64_t) left)
                        return fail(v, -EBADMSG, h.offset, "truncated: array count larger than the input left");
                if (h.arg > (uint64_t) (v->limits->max_items - v->n_items))
                        return fail(v, -E2BIG, h.offset, "too many data items");
                for (uint64_t i = 0; i < h.arg; i++) {
                        r = validate_item(v, depth + 1);
                        if (r < 0)
                                return r;
                }
                return 0;

        case MAJOR_MAP:
                if (depth >= v->limits->max_depth)
                        return fail(v, -E2BIG, h.offset, "nesting too deep");
                /* Each pair takes at least two bytes; h.arg <= left / 2 keeps 2 * h.arg from overflowing. */
                if (h.arg > (uint64_t) (left / 2))
                        return fail(v, -EBADMSG, h.offset, "truncated: map count larger than the input left");
                if (2 * h.arg > (uint64_t) (v->limits->max_items - v->n_items))
                        return fail(v, -E2BIG, h.offset, "too many data items");
                return validate_map(v, &h, depth);

        case MAJOR_TAG:
                if (depth >= v->limits->max_depth)
                        return fail(v, -E2BIG, h.offset, "nesting too deep");
                r = validate_tag(v, &h);
                if (r < 0)
                        return r;
                return validate_item(v, depth + 1);
        }

        return fail(v, -EBADMSG, h.offset, "unknown major type");    /* not reached: 3 bits */
}

int cbor_util_validate(const uint8_t *buf, size_t len, const CborLimits *limits, CborError *ret_error) {
        Validator v = {
                .buf = buf,
                .len = len,
                .limits = limits,
                .error = ret_error,
        };
        int r;

        if (!limits || (!buf && len > 0) || limits->max_depth > CBOR_UTIL_MAX_DEPTH ||
            (!limits->tags && limits->n_tags > 0))
                return fail(&v, -EINVAL, 0, "invalid arguments");

        if (len > limits->max_size)
                return fail(&v, -E2BIG, 0, "input larger than allowed");

        r = validate_item(&v, 0);
        if (r < 0)
                return r;

        /* libcbor stops after the first item; we do not let it ignore the rest. */
        if (v.pos != len)
                return fail(&v, -EBADMSG, v.pos, "trailing bytes after the data item");

        return 0;
}

int cbor_util_decode(const uint8_t *buf, size_t len, const CborLimits *limits, cbor_item_t **ret,
                     CborError *ret_error) {
        struct cbor_load_result result = {};
        int r;

        if (!ret) {
                if (ret_error)
                        *ret_error = (CborError) { .reason = "invalid arguments" };
                return -EINVAL;
        }

        r = cbor_util_validate(buf, len, limits, ret_error);
        if (r < 0)
                return r;

        _cleanup_cbor_ cbor_item_t *item = cbor_load(buf, len, &result);
        if (result.error.code == CBOR_ERR_MEMERROR) {
                if (ret_error)
                        *ret_error = (CborError) { .offset = result.error.position, .reason = "out of memory" };
                return -ENOMEM;
        }
        if (!item || result.error.code != CBOR_ERR_NONE || result.read != len) {
                if (ret_error)
                        *ret_error = (CborError) {
                                .offset = result.error.position,
                                .reason = "libcbor refused the data item",
                        };
                return -EBADMSG;
        }

        *ret = TAKE_PTR(item);
        return 0;
}

int cbor_util_strip_tag(const uint8_t *buf, size_t len, uint8_t tag, const uint8_t **ret_inner,
                        size_t *ret_len) {
        if (tag >= AI_1BYTE)
                return -EINVAL;

        /* A tag below 24 is the single byte 0xc0 | tag (RFC 8949 §3.4). */
        if (!buf || len < 1 || buf[0] != (uint8_t) (MAJOR_TAG << 5 | tag))
                return -EBADMSG;

        *ret_inner = buf + 1;
        *ret_len = len - 1;
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoder */

typedef struct Buffer {
        uint8_t *data;
        size_t len;
        size_t allocated;
} Buffer;

/* Encoded items may hold secrets (a key record's authValue): every buffer is zeroed before it goes
 * back to the allocator, including the old one when the buffer grows. */
static void buffer_done(Buffer *b) {
        erase(b->data, b->allocated);
        b->data = mfree(b->data);
        b->len = b->allocated = 0;
}

static int buffer_reserve(Buffer *b, size_t n) {
        size_t need, m;

        if (!size_add(b->len, n, &need))
                return -ENOMEM;
        if (need <= b->allocated)
                return 0;

        m = MAX(b->allocated, (size_t) 64);
        while (m < need)
                if (!size_mul(m, 2, &m)) {
                        m = need;
                        break;
                }

        uint8_t *p = malloc(m);
        if (!p)
                return -ENOMEM;
        if (b->len > 0)
                memcpy(p, b->data, b->len);
        erase(b->data, b->allocated);
        free(b->data);
        b->data = p;
        b->allocated = m;
        return 0;
}

static int buffer_append(Buffer *b, const void *p, size_t n) {
        int r;

        if (n == 0)
                return 0;
        r = buffer_reserve(b, n);
        if (r < 0)
                return r;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

/* The shortest head for arg (RFC 8949 §4.2.1). */
static int buffer_put_head(Buffer *b, uint8_t major, uint64_t arg) {
        uint8_t head[9], ai;
        size_t n;

        if (arg < AI_1BYTE) {
                head[0] = (uint8_t) (major << 5 | arg);
                return buffer_append(b, head, 1);
        }

        if (arg <= UINT8_MAX) {
                ai = 24;
                n = 1;
        } else if (arg <= UINT16_MAX) {
                ai = 25;
                n = 2;
        } else if (arg <= UINT32_MAX) {
                ai = 26;
                n = 4;
        } else {
                ai = 27;
                n = 8;
        }

        head[0] = (uint8_t) (major << 5 | ai);
        for (size_t i = 0; i < n; i++)
                head[1 + i] = (uint8_t) (arg >> (8 * (n - 1 - i)));
        return buffer_append(b, head, 1 + n);
}

static int encode_item(Buffer *b, const cbor_item_t *item, unsigned depth);

static bool string_is_definite(const cbor_item_t *s, bool text) {
        return text ? cbor_string_is_definite(s) : cbor_bytestring_is_definite(s);
}

static int string_data(const cbor_item_t *s, bool text, const uint8_t **ret, size_t *ret_len) {
        const uint8_t *p = text ? cbor_string_handle(s) : cbor_bytestring_handle(s);
        size_t n = text ? cbor_string_length(s) : cbor_bytestring_length(s);

        if (!p && n > 0)
                return -EINVAL;
        /* RFC 8949 §3.2.3: each chunk of a text string is valid UTF-8 on its own. */
        if (text && !utf8_is_valid(p, n, NULL))
                return -EINVAL;
        *ret = p;
        *ret_len = n;
        return 0;
}

/* Byte and text strings, always definite: libcbor's chunked strings are concatenated. */
static int encode_string(Buffer *b, const cbor_item_t *item, bool text) {
        uint8_t major = text ? MAJOR_TEXT : MAJOR_BYTES;
        const uint8_t *p;
        size_t n, total = 0;
        int r;

        if (string_is_definite(item, text)) {
                r = string_data(item, text, &p, &n);
                if (r < 0)
                        return r;
                r = buffer_put_head(b, major, n);
                if (r < 0)
                        return r;
                return buffer_append(b, p, n);
        }

        cbor_item_t **chunks = text ? cbor_string_chunks_handle(item) : cbor_bytestring_chunks_handle(item);
        size_t n_chunks = text ? cbor_string_chunk_count(item) : cbor_bytestring_chunk_count(item);
        if (!chunks && n_chunks > 0)
                return -EINVAL;

        for (size_t i = 0; i < n_chunks; i++) {
                if (!chunks[i] || cbor_typeof(chunks[i]) != cbor_typeof(item) ||
                    !string_is_definite(chunks[i], text))
                        return -EINVAL;
                r = string_data(chunks[i], text, &p, &n);
                if (r < 0)
                        return r;
                if (!size_add(total, n, &total))
                        return -EINVAL;
        }

        r = buffer_put_head(b, major, total);
        if (r < 0)
                return r;
        r = buffer_reserve(b, total);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_chunks; i++) {
                r = string_data(chunks[i], text, &p, &n);
                if (r < 0)
                        return r;
                r = buffer_append(b, p, n);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int encode_array(Buffer *b, const cbor_item_t *item, unsigned depth) {
        size_t n = cbor_array_size(item);
        cbor_item_t **elements = cbor_array_handle(item);    /* borrowed, unlike cbor_array_get() */
        int r;

        if (!elements && n > 0)
                return -EINVAL;

        r = buffer_put_head(b, MAJOR_ARRAY, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = encode_item(b, elements[i], depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One encoded key/value pair inside the output buffer. */
typedef struct EncodedPair {
        size_t offset;          /* of the key; the value follows it */
        size_t key_len;
        size_t len;             /* key and value */
        const uint8_t *key;     /* set once the buffer no longer moves */
} EncodedPair;

static int encoded_pair_cmp(const void *a, const void *b) {
        const EncodedPair *x = a, *y = b;
        return key_cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

/* RFC 8949 §4.2.1: keys sorted by their deterministic encoding, so every pair is encoded first,
 * then the pairs are put in order. Equal encodings mean equal keys (§5.6), which we refuse. */
static int encode_map(Buffer *b, const cbor_item_t *item, unsigned depth) {
        size_t n = cbor_map_size(item);
        struct cbor_pair *pairs = cbor_map_handle(item);
        int r;

        if (!pairs && n > 0)
                return -EINVAL;

        r = buffer_put_head(b, MAJOR_MAP, n);
        if (r < 0)
                return r;
        if (n == 0)
                return 0;

        _cleanup_free_ EncodedPair *enc = calloc(n, sizeof(EncodedPair));
        if (!enc)
                return -ENOMEM;

        size_t start = b->len;
        for (size_t i = 0; i < n; i++) {
                if (!pairs[i].key || !pairs[i].value)
                        return -EINVAL;
                enc[i].offset = b->len;
                r = encode_item(b, pairs[i].key, depth + 1);
                if (r < 0)
                        return r;
                enc[i].key_len = b->len - enc[i].offset;
                r = encode_item(b, pairs[i].value, depth + 1);
                if (r < 0)
                        return r;
                enc[i].len = b->len - enc[i].offset;
        }

        for (size_t i = 0; i < n; i++)
                enc[i].key = b->data + enc[i].offset;
        qsort(enc, n, sizeof(EncodedPair), encoded_pair_cmp);
        for (size_t i = 1; i < n; i++)
                if (encoded_pair_cmp(&enc[i - 1], &enc[i]) == 0)
                        return -EINVAL;

        size_t region = b->len - start;
        uint8_t *copy = malloc(region);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, b->data + start, region);

        size_t pos = start;
        for (size_t i = 0; i < n; i++) {
                memcpy(b->data + pos, copy + (enc[i].offset - start), enc[i].len);
                pos += enc[i].len;
        }
        erase(copy, region);
        free(copy);
        return 0;
}

static int encode_tag(Buffer *b, const cbor_item_t *item, unsigned depth) {
        int r;

        /* cbor_tag_item() would dereference a missing item (cbor_new_tag() without cbor_tag_set_item()). */
        if (!item->metadata.tag_metadata.tagged_item)
                return -EINVAL;

        _cleanup_cbor_ cbor_item_t *tagged = cbor_tag_item(item);    /* a new reference */

        r = buffer_put_head(b, MAJOR_TAG, cbor_tag_value(item));
        if (r < 0)
                return r;
        return encode_item(b, tagged, depth + 1);
}

/* depth = number of arrays, maps and tags enclosing this item; bounded so that what we write passes
 * our own validator, and so that a tree that contains itself cannot recurse forever. */
static int encode_item(Buffer *b, const cbor_item_t *item, unsigned depth) {
        if (!item)
                return -EINVAL;

        switch (cbor_typeof(item)) {

        case CBOR_TYPE_UINT:
                /* cbor_get_int() reads any width; the head is chosen from the value alone. */
                return buffer_put_head(b, MAJOR_UINT, cbor_get_int(item));

        case CBOR_TYPE_NEGINT:
                return buffer_put_head(b, MAJOR_NEGINT, cbor_get_int(item));

        case CBOR_TYPE_BYTESTRING:
                return encode_string(b, item, false);

        case CBOR_TYPE_STRING:
                return encode_string(b, item, true);

        case CBOR_TYPE_ARRAY:
                if (depth >= CBOR_UTIL_MAX_DEPTH)
                        return -EINVAL;
                return encode_array(b, item, depth);

        case CBOR_TYPE_MAP:
                if (depth >= CBOR_UTIL_MAX_DEPTH)
                        return -EINVAL;
                return encode_map(b, item, depth);

        case CBOR_TYPE_TAG:
                if (depth >= CBOR_UTIL_MAX_DEPTH)
                        return -EINVAL;
                return encode_tag(b, item, depth);

        case CBOR_TYPE_FLOAT_CTRL: {
                /* Check the width first: cbor_is_bool() asserts on floats in libcbor 0.8. */
                if (!cbor_float_ctrl_is_ctrl(item) || !cbor_is_bool(item))
                        return -EINVAL;
                uint8_t byte = (uint8_t) (MAJOR_SIMPLE << 5 | (cbor_get_bool(item) ? SIMPLE_TRUE : SIMPLE_FALSE));
                return buffer_append(b, &byte, 1);
        }
        }

        return -EINVAL;
}

int cbor_util_encode(const cbor_item_t *item, uint8_t **ret_buf, size_t *ret_len) {
        _cleanup_(buffer_done) Buffer b = {};
        int r;

        if (!item || !ret_buf || !ret_len)
                return -EINVAL;

        r = encode_item(&b, item, 0);
        if (r < 0)
                return r;

        *ret_len = b.len;
        *ret_buf = TAKE_PTR(b.data);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Builders */

cbor_item_t *cbor_util_new_uint(uint64_t v) {
        /* The width does not matter: cbor_util_encode() picks the shortest form. */
        return cbor_build_uint64(v);
}

cbor_item_t *cbor_util_new_bool(bool v) {
        return cbor_build_bool(v);
}

cbor_item_t *cbor_util_new_int(int64_t v) {
        if (v >= 0)
                return cbor_build_uint64((uint64_t) v);
        /* Major type 1 holds -1 - v (RFC 8949 §3.1); -(v + 1) cannot overflow, even for INT64_MIN. */
        return cbor_build_negint64((uint64_t) -(v + 1));
}

cbor_item_t *cbor_util_new_bytes(const void *p, size_t n) {
        if (!p && n > 0)
                return NULL;
        return cbor_build_bytestring(p ?: (const void *) "", n);
}

cbor_item_t *cbor_util_new_text(const char *s) {
        if (!s)
                return NULL;
        return cbor_build_string(s);
}

cbor_item_t *cbor_util_new_textn(const char *s, size_t n) {
        if (!s && n > 0)
                return NULL;
        return cbor_build_stringn(s ?: "", n);
}

cbor_item_t *cbor_util_new_map(void) {
        return cbor_new_indefinite_map();
}

cbor_item_t *cbor_util_new_array(void) {
        return cbor_new_indefinite_array();
}

int cbor_util_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value) {
        /* cbor_map_add() takes its own references (libcbor 0.8 maps.c) and takes none when it fails, so
         * ours are dropped on every path. */
        _cleanup_cbor_ cbor_item_t *k = key;
        _cleanup_cbor_ cbor_item_t *v = value;

        if (!map || !cbor_isa_map(map) || !k || !v)
                return -EINVAL;
        if (!cbor_map_add(map, (struct cbor_pair) { .key = k, .value = v }))
                return -ENOMEM;
        return 0;
}

int cbor_util_map_put_text(cbor_item_t *map, const char *key, cbor_item_t *value) {
        _cleanup_cbor_ cbor_item_t *v = value;

        if (!key)
                return -EINVAL;
        cbor_item_t *k = cbor_util_new_text(key);
        if (!k)
                return -ENOMEM;
        return cbor_util_map_put(map, k, TAKE_PTR(v));
}

int cbor_util_map_put_int(cbor_item_t *map, int64_t key, cbor_item_t *value) {
        _cleanup_cbor_ cbor_item_t *v = value;

        cbor_item_t *k = cbor_util_new_int(key);
        if (!k)
                return -ENOMEM;
        return cbor_util_map_put(map, k, TAKE_PTR(v));
}

int cbor_util_array_push(cbor_item_t *array, cbor_item_t *item) {
        /* cbor_array_push() increments the refcount itself, and only on success. */
        _cleanup_cbor_ cbor_item_t *i = item;

        if (!array || !cbor_isa_array(array) || !i)
                return -EINVAL;
        if (!cbor_array_push(array, i))
                return -ENOMEM;
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Accessors */

/* Keys are unique in anything cbor_util_decode() returned, so the first match is the only one. */
const cbor_item_t *cbor_util_map_get_text(const cbor_item_t *map, const char *key) {
        if (!map || !key || !cbor_isa_map(map))
                return NULL;

        size_t n = cbor_map_size(map), l = strlen(key);
        struct cbor_pair *pairs = cbor_map_handle(map);

        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *k = pairs[i].key;
                const char *s;
                size_t sl;

                /* Length first: records are read field by field, so most keys compared here differ
                 * (agentidd reads every key record at start-up, docs/performance.md). */
                if (!k || !cbor_isa_string(k) || !cbor_string_is_definite(k) || cbor_string_length(k) != l)
                        continue;
                if (cbor_util_get_text(k, &s, &sl) >= 0 && sl == l && memcmp(s, key, l) == 0)
                        return pairs[i].value;
        }
        return NULL;
}

const cbor_item_t *cbor_util_map_get_int(const cbor_item_t *map, int64_t key) {
        if (!map || !cbor_isa_map(map))
                return NULL;

        size_t n = cbor_map_size(map);
        struct cbor_pair *pairs = cbor_map_handle(map);

        for (size_t i = 0; i < n; i++) {
                int64_t v;

                if (pairs[i].key && cbor_util_get_int(pairs[i].key, &v) >= 0 && v == key)
                        return pairs[i].value;
        }
        return NULL;
}

int cbor_util_get_uint(const cbor_item_t *item, uint64_t *ret) {
        if (!item || !cbor_isa_uint(item))
                return -EBADMSG;
        *ret = cbor_get_int(item);
        return 0;
}

int cbor_util_get_int(const cbor_item_t *item, int64_t *ret) {
        if (!item || !cbor_is_int(item))
                return -EBADMSG;

        uint64_t v = cbor_get_int(item);
        if (v > INT64_MAX)
                return -EBADMSG;

        /* A negint holds n for the value -1 - n (RFC 8949 §3.1); n <= INT64_MAX gives >= INT64_MIN. */
        *ret = cbor_isa_uint(item) ? (int64_t) v : -1 - (int64_t) v;
        return 0;
}

int cbor_util_get_bool(const cbor_item_t *item, bool *ret) {
        if (!item || !cbor_isa_float_ctrl(item) || !cbor_float_ctrl_is_ctrl(item) || !cbor_is_bool(item))
                return -EBADMSG;
        *ret = cbor_get_bool(item);
        return 0;
}

int cbor_util_get_bytes(const cbor_item_t *item, const uint8_t **ret, size_t *ret_len) {
        if (!item || !cbor_isa_bytestring(item) || !cbor_bytestring_is_definite(item))
                return -EBADMSG;

        const uint8_t *p = cbor_bytestring_handle(item);
        size_t n = cbor_bytestring_length(item);
        if (!p && n > 0)
                return -EBADMSG;

        *ret = p ?: (const uint8_t *) "";    /* an empty string built without storage */
        *ret_len = n;
        return 0;
}

int cbor_util_get_text(const cbor_item_t *item, const char **ret, size_t *ret_len) {
        if (!item || !cbor_isa_string(item) || !cbor_string_is_definite(item))
                return -EBADMSG;

        const char *p = (const char *) cbor_string_handle(item);
        size_t n = cbor_string_length(item);
        if (!p && n > 0)
                return -EBADMSG;
        /* An embedded NUL would make C string handling see a different (shorter) value. */
        if (n > 0 && memchr(p, 0, n))
                return -EBADMSG;

        *ret = p ?: "";
        *ret_len = n;
        return 0;
}

int cbor_util_get_text_dup(const cbor_item_t *item, char **ret) {
        const char *p;
        size_t n;
        int r;

        r = cbor_util_get_text(item, &p, &n);
        if (r < 0)
                return r;

        /* libcbor's string is not NUL-terminated. */
        char *s = memdup_cstr(p, n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int cbor_util_map_check_text_keys(const cbor_item_t *map, const char *const *allowed, size_t n_allowed,
                                  const cbor_item_t **ret_unknown) {
        if (!map || !cbor_isa_map(map)) {
                if (ret_unknown)
                        *ret_unknown = NULL;
                return -EBADMSG;
        }

        size_t n = cbor_map_size(map);
        struct cbor_pair *pairs = cbor_map_handle(map);

        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *k = pairs[i].key;
                const char *s;
                size_t l;
                bool found = false;

                if (k && cbor_util_get_text(k, &s, &l) >= 0)
                        for (size_t j = 0; j < n_allowed && !found; j++)
                                found = allowed[j] && strlen(allowed[j]) == l && memcmp(allowed[j], s, l) == 0;

                if (!found) {
                        if (ret_unknown)
                                *ret_unknown = k;
                        return -EBADMSG;
                }
        }
        return 0;
}

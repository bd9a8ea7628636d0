/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Safe CBOR for every agentid format.
 *
 * libcbor 0.8 must never see untrusted bytes directly: it allocates whatever a header declares
 * (`9a 10 00 00 00` makes it allocate 2 GiB), accepts duplicate map keys and indefinite lengths, stops
 * at the first item and ignores what follows, and cannot decode the one-byte tags 6..20 (COSE_Sign1's
 * tag 18 among them). So decoding is: cbor_util_validate() over the raw bytes first, then cbor_load(),
 * then typed accessors that borrow from the item.
 *
 * Encoding goes through cbor_util_encode(), the one serializer that emits RFC 8949 §4.2.1 core
 * deterministic encoding (shortest integer and length forms, definite lengths, map keys sorted by their
 * encoded bytes). libcbor's own serializer keeps the width an item was built with and the insertion
 * order of map keys, so it is never used for wire formats.
 */

#include <cbor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/* Deepest nesting any agentid format may use (DESIGN §4). */
#define CBOR_UTIL_MAX_DEPTH 16U

typedef enum CborValidateFlags {
        /* Require RFC 8949 §4.2.1 deterministic encoding: shortest forms, sorted unique map keys. */
        CBOR_VALIDATE_DETERMINISTIC = 1 << 0,
} CborValidateFlags;

typedef struct CborLimits {
        size_t max_size;        /* the whole input, in bytes */
        unsigned max_depth;     /* nesting of arrays, maps and tags; at most CBOR_UTIL_MAX_DEPTH */
        size_t max_items;       /* data items in total (every key, value, element and tag counts) */
        const uint64_t *tags;   /* allowed tags; one-byte tags 6..20 are always refused */
        size_t n_tags;
        unsigned flags;         /* CborValidateFlags */
} CborLimits;

/* Where and why validation failed; reason is a static string. */
typedef struct CborError {
        size_t offset;
        const char *reason;
} CborError;

/*
 * cbor_util_validate() - check that buf holds exactly one well-formed, acceptable CBOR item
 *
 * Accepts only: definite lengths; declared counts and lengths no larger than the bytes left; nesting up
 * to limits->max_depth; tags from limits->tags; text strings that are valid UTF-8; the simple values
 * false and true (no null, undefined, other simple values or floats); no duplicate map keys (compared
 * by value, so `05` and `18 05` are the same key); and with CBOR_VALIDATE_DETERMINISTIC the §4.2.1
 * rules: every argument in its shortest form and map keys strictly ascending by their encoded bytes.
 * The item must end exactly at the end of buf. Never calls libcbor; allocates only for the keys of
 * maps when the flag is not set.
 *
 * Return: 0 if valid; -EBADMSG if malformed or not allowed; -E2BIG if over a limit; -EINVAL for bad
 *         arguments; -ENOMEM. On failure *ret_error (if not NULL) says where and why.
 */
int cbor_util_validate(const uint8_t *buf, size_t len, const CborLimits *limits, CborError *ret_error);

/*
 * cbor_util_decode() - validate, then parse with libcbor
 *
 * Return: 0 and a new reference in *ret; -EBADMSG, -E2BIG, -EINVAL as cbor_util_validate(); -ENOMEM.
 */
int cbor_util_decode(const uint8_t *buf, size_t len, const CborLimits *limits, cbor_item_t **ret,
                     CborError *ret_error);

/*
 * cbor_util_strip_tag() - remove a leading one-byte tag head (tag < 24) that libcbor 0.8 cannot decode
 *
 * COSE_Sign1_Tagged starts with 0xd2 (tag 18, RFC 9052 §2). Returns the bytes after the tag head.
 *
 * Return: 0, -EBADMSG if buf does not start with that tag, or -EINVAL if tag >= 24.
 */
int cbor_util_strip_tag(const uint8_t *buf, size_t len, uint8_t tag, const uint8_t **ret_inner,
                        size_t *ret_len);

/*
 * cbor_util_encode() - serialize an item in deterministic encoding (RFC 8949 §4.2.1)
 *
 * Integers and lengths in their shortest form whatever width the item was built with; definite lengths
 * (indefinite strings built by libcbor are flattened); map keys sorted by their encoded bytes.
 * Duplicate map keys, floats, simple values other than false/true, text strings that are not valid
 * UTF-8, and nesting of arrays, maps and tags deeper than CBOR_UTIL_MAX_DEPTH are refused.
 *
 * Intermediate buffers are zeroed before they are freed, so secrets in the item leave no copies
 * behind; erase the returned buffer yourself when it holds one.
 *
 * Return: 0 and a malloc'd buffer; -EINVAL for an item that cannot be encoded; -ENOMEM.
 */
int cbor_util_encode(const cbor_item_t *item, uint8_t **ret_buf, size_t *ret_len);

/* Builders. Each returns a new reference or NULL on allocation failure. Containers are built
 * indefinite (so they grow); cbor_util_encode() writes them definite. */
cbor_item_t *cbor_util_new_uint(uint64_t v);
cbor_item_t *cbor_util_new_int(int64_t v);
cbor_item_t *cbor_util_new_bool(bool v);
cbor_item_t *cbor_util_new_bytes(const void *p, size_t n);
cbor_item_t *cbor_util_new_text(const char *s);
cbor_item_t *cbor_util_new_textn(const char *s, size_t n);
cbor_item_t *cbor_util_new_map(void);
cbor_item_t *cbor_util_new_array(void);

/* Add key/value to a map built by cbor_util_new_map(). Always consumes both references, also on
 * failure, so calls can be chained without leaks. Return: 0 or -ENOMEM (or -EINVAL if key or value is
 * NULL, i.e. an earlier builder failed, or map is not a map). */
int cbor_util_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value);
int cbor_util_map_put_text(cbor_item_t *map, const char *key, cbor_item_t *value);
int cbor_util_map_put_int(cbor_item_t *map, int64_t key, cbor_item_t *value);
/* Append to an array built by cbor_util_new_array(); consumes item, also on failure.
 * Return: 0, -ENOMEM, or -EINVAL if item is NULL or array is not an array. */
int cbor_util_array_push(cbor_item_t *array, cbor_item_t *item);

/* Accessors. Results borrow from the item. Return 0 or -EBADMSG on a type or range mismatch; a NULL
 * item (a key the map lacks) is a mismatch too, so lookups can be chained. Map lookups return NULL
 * when the key is absent. */
const cbor_item_t *cbor_util_map_get_text(const cbor_item_t *map, const char *key);
const cbor_item_t *cbor_util_map_get_int(const cbor_item_t *map, int64_t key);
int cbor_util_get_uint(const cbor_item_t *item, uint64_t *ret);
int cbor_util_get_int(const cbor_item_t *item, int64_t *ret);
int cbor_util_get_bool(const cbor_item_t *item, bool *ret);
int cbor_util_get_bytes(const cbor_item_t *item, const uint8_t **ret, size_t *ret_len);
/* A text string with no embedded NUL; *ret is not NUL-terminated. */
int cbor_util_get_text(const cbor_item_t *item, const char **ret, size_t *ret_len);
/* A NUL-terminated copy of a text string with no embedded NUL. Return: 0, -EBADMSG or -ENOMEM. */
int cbor_util_get_text_dup(const cbor_item_t *item, char **ret);

/*
 * cbor_util_map_check_text_keys() - every key of map is a text string from allowed[]
 *
 * Return: 0; -EBADMSG when map is not a map or a key is not a text string from allowed[]; then
 *         *ret_unknown (if not NULL) is set to a borrowed pointer to that key (NULL if map is not a map).
 */
int cbor_util_map_check_text_keys(const cbor_item_t *map, const char *const *allowed, size_t n_allowed,
                                  const cbor_item_t **ret_unknown);

static inline void cbor_util_unrefp(cbor_item_t **p) {
        if (*p)
                cbor_decref(p);
}
#define _cleanup_cbor_ _cleanup_(cbor_util_unrefp)

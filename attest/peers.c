/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The registry of approved peers (see peers.h). Entries are kept sorted by URI, so the encoded form
 * depends only on the set of peers, never on the order they were added in.
 */

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "attest/cose.h"
#include "attest/peers.h"
#include "attest/task-credential.h"
#include "attest/token.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"

struct PeerRegistry {
        Peer **peers;                   /* sorted by uri (strcmp), no uri or kid twice */
        size_t n;
};

Peer *peer_free(Peer *p) {
        if (!p)
                return NULL;
        free(p->uri);
        free(p->spki_der);
        free(p);
        return NULL;
}

PeerRegistry *peer_registry_new(void) {
        return calloc(1, sizeof(PeerRegistry));
}

PeerRegistry *peer_registry_free(PeerRegistry *reg) {
        if (!reg)
                return NULL;
        for (size_t i = 0; i < reg->n; i++)
                peer_free(reg->peers[i]);
        free(reg->peers);
        free(reg);
        return NULL;
}

size_t peer_registry_size(const PeerRegistry *reg) {
        return reg ? reg->n : 0;
}

const Peer *peer_registry_get(const PeerRegistry *reg, size_t i) {
        return reg && i < reg->n ? reg->peers[i] : NULL;
}

/* TPM 2.0 Part 1 §16: a Name starts with its nameAlg; agentid's keys use SHA-256 (0x000b). */
static bool kid_is_valid(const uint8_t *kid, size_t n) {
        return n == PEER_KID_SIZE && kid[0] == 0x00 && kid[1] == 0x0b;
}

int peer_spki_canonicalize(const uint8_t *der, size_t size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL, *canonical = NULL;
        uint8_t point[1 + 2 * P256_COORD_SIZE];
        const unsigned char *p = der;
        char group[64];
        size_t n = 0;
        int r;

        if (!der || size == 0 || size > PEER_SPKI_MAX || !ret || !ret_size)
                return -EINVAL;
        pkey = d2i_PUBKEY(NULL, &p, (long) size);
        if (!pkey || (size_t) (p - der) != size) {
                ERR_clear_error();
                return -EINVAL;
        }
        /* ES256 (RFC 9053 §2.1): ECDSA on P-256. Explicit curve parameters have no group name. */
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
            !streq(group, "prime256v1")) {
                ERR_clear_error();
                return -EINVAL;
        }
        /* OpenSSL keeps the point form it decoded; ask for the uncompressed one (SEC 1 §2.3.3). */
        if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                           OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1 ||
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &n) != 1 ||
            n != sizeof(point) || point[0] != 0x04) {
                ERR_clear_error();
                return -EINVAL;
        }
        /* Built again from the coordinates: a named-curve key whose point passed the on-curve check. */
        r = p256_pkey_from_xy(point + 1, point + 1 + P256_COORD_SIZE, &canonical);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EINVAL;
        r = pkey_to_spki_der(canonical, ret, ret_size);
        return r == -ENOMEM || r >= 0 ? r : -EINVAL;
}

/* Where uri is, or would be inserted (binary search over the sorted array). */
static size_t find_slot(const PeerRegistry *reg, const char *uri, bool *ret_found) {
        size_t lo = 0, hi = reg->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(reg->peers[mid]->uri, uri);
                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

const Peer *peer_registry_find_by_uri(const PeerRegistry *reg, const char *uri) {
        bool found;

        if (!reg || !uri)
                return NULL;
        size_t i = find_slot(reg, uri, &found);
        return found ? reg->peers[i] : NULL;
}

const Peer *peer_registry_find_by_kid(const PeerRegistry *reg, const uint8_t kid[PEER_KID_SIZE]) {
        if (!reg || !kid)
                return NULL;
        for (size_t i = 0; i < reg->n; i++)
                if (reg->peers[i]->has_kid && memcmp(reg->peers[i]->kid, kid, PEER_KID_SIZE) == 0)
                        return reg->peers[i];
        return NULL;
}

/* Insert p (checked already) at its place. Ownership passes on success only. */
static int insert(PeerRegistry *reg, Peer *p) {
        bool found;

        if (reg->n >= PEERS_MAX)
                return -E2BIG;
        size_t i = find_slot(reg, p->uri, &found);
        if (found)
                return -EEXIST;
        if (p->has_kid && peer_registry_find_by_kid(reg, p->kid))
                return -ENOTUNIQ;
        Peer **a = reallocarray(reg->peers, reg->n + 1, sizeof(Peer *));
        if (!a)
                return -ENOMEM;
        reg->peers = a;
        memmove(a + i + 1, a + i, (reg->n - i) * sizeof(Peer *));
        a[i] = p;
        reg->n++;
        return 0;
}

int peer_registry_add(PeerRegistry *reg, const char *uri, const uint8_t *spki_der, size_t spki_size,
                      const uint8_t *kid, uint64_t added, uint32_t by_uid) {
        _cleanup_(peer_freep) Peer *p = NULL;
        int r;

        if (!reg || !uri || !agent_uri_is_valid(uri, strlen(uri)))
                return -EINVAL;
        if (kid && !kid_is_valid(kid, PEER_KID_SIZE))
                return -EINVAL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = peer_spki_canonicalize(spki_der, spki_size, &p->spki_der, &p->spki_size);
        if (r < 0)
                return r;
        r = sha256(p->spki_der, p->spki_size, p->spki_sha256);
        if (r < 0)
                return r;
        p->uri = strdup(uri);
        if (!p->uri)
                return -ENOMEM;
        if (kid) {
                p->has_kid = true;
                memcpy(p->kid, kid, PEER_KID_SIZE);
        }
        p->added = added;
        p->by_uid = by_uid;

        r = insert(reg, p);
        if (r < 0)
                return r;
        TAKE_PTR(p);
        return 0;
}

int peer_registry_remove(PeerRegistry *reg, const char *uri, Peer **ret_removed) {
        bool found;

        if (!reg || !uri)
                return -EINVAL;
        size_t i = find_slot(reg, uri, &found);
        if (!found)
                return -ENOENT;
        Peer *p = reg->peers[i];
        memmove(reg->peers + i, reg->peers + i + 1, (reg->n - i - 1) * sizeof(Peer *));
        reg->n--;
        if (ret_removed)
                *ret_removed = p;
        else
                peer_free(p);
        return 0;
}

int peer_registry_restore(PeerRegistry *reg, Peer *p) {
        int r;

        if (!reg || !p) {
                peer_free(p);
                return -EINVAL;
        }
        r = insert(reg, p);
        if (r < 0)
                peer_free(p);
        return r;
}

/* ---- the encoded form ----------------------------------------------------------------------- */

static cbor_item_t *peer_to_cbor(const Peer *p) {
        cbor_item_t *m = cbor_util_new_map();
        int r;

        if (!m)
                return NULL;
        r = cbor_util_map_put_text(m, "uri", cbor_util_new_text(p->uri));
        if (r >= 0)
                r = cbor_util_map_put_text(m, "spki", cbor_util_new_bytes(p->spki_der, p->spki_size));
        if (r >= 0 && p->has_kid)
                r = cbor_util_map_put_text(m, "kid", cbor_util_new_bytes(p->kid, PEER_KID_SIZE));
        if (r >= 0)
                r = cbor_util_map_put_text(m, "added", cbor_util_new_uint(p->added));
        if (r >= 0)
                r = cbor_util_map_put_text(m, "by_uid", cbor_util_new_uint(p->by_uid));
        if (r < 0)
                cbor_decref(&m);
        return m;
}

int peer_registry_encode(const PeerRegistry *reg, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *top = NULL;
        cbor_item_t *list;
        int r;

        if (!reg || !ret || !ret_size)
                return -EINVAL;
        top = cbor_util_new_map();
        list = cbor_util_new_array();
        if (!top || !list) {
                if (list)
                        cbor_decref(&list);
                return -ENOMEM;
        }
        r = cbor_util_map_put_text(top, "v", cbor_util_new_uint(1));
        for (size_t i = 0; r >= 0 && i < reg->n; i++)
                r = cbor_util_array_push(list, peer_to_cbor(reg->peers[i]));
        if (r < 0) {
                cbor_decref(&list);
                return r == -EINVAL ? -ENOMEM : r; /* a NULL item: a builder ran out of memory */
        }
        r = cbor_util_map_put_text(top, "peers", list);
        if (r < 0)
                return r;
        return cbor_util_encode(top, ret, ret_size);
}

static int bad(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

/* One entry of "peers"; appended to reg, whose last entry must sort before it. */
static int parse_peer(const cbor_item_t *m, PeerRegistry *reg, const char **ret_reason) {
        static const char *const keys[] = { "uri", "spki", "kid", "added", "by_uid" };
        _cleanup_(peer_freep) Peer *p = NULL;
        const uint8_t *spki, *kid;
        size_t spki_size, kid_size;
        uint64_t by_uid;
        int r;

        if (!cbor_isa_map(m))
                return bad(ret_reason, "a peer is not a map");
        if (cbor_util_map_check_text_keys(m, keys, ELEMENTSOF(keys), NULL) < 0)
                return bad(ret_reason, "a peer has an unknown field");
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = cbor_util_get_text_dup(cbor_util_map_get_text(m, "uri"), &p->uri);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !agent_uri_is_valid(p->uri, strlen(p->uri)))
                return bad(ret_reason, "a peer's \"uri\" is missing or not an agent URI");
        if (cbor_util_get_bytes(cbor_util_map_get_text(m, "spki"), &spki, &spki_size) < 0)
                return bad(ret_reason, "a peer's \"spki\" is missing or not a byte string");
        r = peer_spki_canonicalize(spki, spki_size, &p->spki_der, &p->spki_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return bad(ret_reason, "a peer's \"spki\" is not an EC P-256 public key");
        /* What this code writes is canonical; anything else was not written by it. */
        if (p->spki_size != spki_size || memcmp(p->spki_der, spki, spki_size) != 0)
                return bad(ret_reason, "a peer's \"spki\" is not in canonical form (named curve, uncompressed)");
        r = sha256(p->spki_der, p->spki_size, p->spki_sha256);
        if (r < 0)
                return r;
        const cbor_item_t *k = cbor_util_map_get_text(m, "kid");
        if (k) {
                if (cbor_util_get_bytes(k, &kid, &kid_size) < 0 || !kid_is_valid(kid, kid_size))
                        return bad(ret_reason, "a peer's \"kid\" is not a 34-byte SHA-256 TPM Name");
                p->has_kid = true;
                memcpy(p->kid, kid, PEER_KID_SIZE);
        }
        if (cbor_util_get_uint(cbor_util_map_get_text(m, "added"), &p->added) < 0)
                return bad(ret_reason, "a peer's \"added\" is missing or not an unsigned integer");
        if (cbor_util_get_uint(cbor_util_map_get_text(m, "by_uid"), &by_uid) < 0 || by_uid > UINT32_MAX)
                return bad(ret_reason, "a peer's \"by_uid\" is missing or not a uid");
        p->by_uid = (uint32_t) by_uid;

        /* Strictly ascending: one order for one set of peers, and no URI twice. */
        if (reg->n > 0 && strcmp(reg->peers[reg->n - 1]->uri, p->uri) >= 0)
                return bad(ret_reason, "peers are not sorted by URI, or a URI is listed twice");
        r = insert(reg, p);
        if (r == -ENOTUNIQ)
                return bad(ret_reason, "two peers have the same kid");
        if (r == -E2BIG)
                return bad(ret_reason, "more than 1024 peers");
        if (r < 0)
                return r;
        TAKE_PTR(p);
        return 0;
}

int peer_registry_parse(const uint8_t *buf, size_t size, PeerRegistry **ret, const char **ret_reason) {
        static const CborLimits limits = {
                .max_size = PEERS_FILE_MAX,
                .max_depth = 3,         /* registry map > "peers" > peer map */
                /* The outer map (5 items) and 11 items per peer: one peer too many is still read, and
                 * reported as such below. */
                .max_items = 8 + (size_t) (PEERS_MAX + 1) * 11,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        static const char *const keys[] = { "v", "peers" };
        _cleanup_(peer_registry_freep) PeerRegistry *reg = NULL;
        _cleanup_cbor_ cbor_item_t *top = NULL;
        CborError error = {};
        uint64_t v;
        int r;

        if ((!buf && size > 0) || !ret)
                return -EINVAL;
        if (size > PEERS_FILE_MAX)
                return -E2BIG;
        r = cbor_util_decode(buf, size, &limits, &top, &error);
        if (r == -ENOMEM || r == -E2BIG)
                return r;
        if (r < 0)
                return bad(ret_reason, error.reason ?: "not a single deterministic CBOR item");
        if (!cbor_isa_map(top) || cbor_util_map_check_text_keys(top, keys, ELEMENTSOF(keys), NULL) < 0)
                return bad(ret_reason, "not a map of \"v\" and \"peers\"");
        if (cbor_util_get_uint(cbor_util_map_get_text(top, "v"), &v) < 0 || v != 1)
                return bad(ret_reason, "\"v\" is missing or not 1");
        const cbor_item_t *list = cbor_util_map_get_text(top, "peers");
        if (!list || !cbor_isa_array(list) || !cbor_array_is_definite(list))
                return bad(ret_reason, "\"peers\" is missing or not an array");
        size_t n = cbor_array_size(list);
        if (n > PEERS_MAX)
                return -E2BIG;

        reg = peer_registry_new();
        if (!reg)
                return -ENOMEM;
        cbor_item_t **items = cbor_array_handle(list);
        for (size_t i = 0; i < n; i++) {
                r = parse_peer(items[i], reg, ret_reason);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(reg);
        return 0;
}

int peer_registry_load(int dir_fd, const char *name, PeerRegistry **ret, const char **ret_reason) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        if (!name || !ret)
                return -EINVAL;
        r = read_file_at(dir_fd, name, PEERS_FILE_MAX, &buf, &size);
        if (r == -ENOENT) {
                PeerRegistry *reg = peer_registry_new();
                if (!reg)
                        return -ENOMEM;
                *ret = reg;
                return 0;
        }
        if (r < 0)
                return r;
        return peer_registry_parse(buf, size, ret, ret_reason);
}

int peer_registry_save(const PeerRegistry *reg, int dir_fd, const char *name) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = peer_registry_encode(reg, &buf, &size);
        if (r < 0)
                return r;
        return write_file_atomic_at(dir_fd, name, buf, size, 0600, 0);
}

/* ---- tokens --------------------------------------------------------------------------------- */

int peer_token_peek_issuer(const uint8_t *token, size_t size, char **ret_iss) {
        static const CborLimits limits = {
                .max_size = TOKEN_MAX,
                .max_depth = 4,         /* claims > "hops" > hop > (texts, bytes) */
                .max_items = 512,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_cbor_ cbor_item_t *claims = NULL;
        const char *s;
        size_t n;
        int r;

        if ((!token && size > 0) || !ret_iss)
                return -EINVAL;
        if (size > TOKEN_MAX)
                return -EBADMSG;
        r = cose_sign1_parse(token, size, &p, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EBADMSG;
        r = cbor_util_decode(p.payload, p.payload_size, &limits, &claims, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(claims))
                return -EBADMSG;
        if (cbor_util_get_text(cbor_util_map_get_int(claims, CWT_ISS), &s, &n) < 0 || n == 0 || n > TOKEN_TEXT_MAX)
                return -EBADMSG;
        char *iss = memdup_cstr(s, n);
        if (!iss)
                return -ENOMEM;
        *ret_iss = iss;
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * COSE_Sign1 and COSE_Sign / ES256 (see cose.h). Everything is encoded with cbor_util_encode(), so a message is a
 * pure function of its inputs and the signature, and the verifier insists on that same deterministic
 * encoding: there is exactly one byte string for every valid message.
 */

#include <openssl/ec.h>
#include <openssl/objects.h>
#include <string.h>

#include "attest/cose.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"

/* Sig_structure context string for COSE_Sign1 (RFC 9052 §4.4). */
#define SIG_STRUCTURE_CONTEXT "Signature1"

/* Slack around the payload for the array, headers and signature in a received message. */
#define COSE_ENVELOPE_MAX 4096U

struct CoseSign1 {
        uint8_t *protected;
        size_t protected_size;
        uint8_t *payload;
        size_t payload_size;
        uint8_t digest[SHA256_DIGEST_SIZE];
};

static int memdup_out(const void *p, size_t n, uint8_t **ret) {
        /* malloc(0) may return NULL; an empty payload is still a valid, non-NULL buffer. */
        uint8_t *c = malloc(n > 0 ? n : 1);
        if (!c)
                return -ENOMEM;
        if (n > 0)
                memcpy(c, p, n);
        *ret = c;
        return 0;
}

/* NULL = omitted claim. Otherwise 1..COSE_CLAIM_TEXT_MAX bytes; UTF-8 is checked by the encoder. */
static bool claim_text_is_valid(const char *s) {
        if (!s)
                return true;
        size_t n = strnlen(s, COSE_CLAIM_TEXT_MAX + 1);
        return n >= 1 && n <= COSE_CLAIM_TEXT_MAX;
}

/* Protected header (RFC 9052 §3): {1: -7, 4: kid, ? 15: {6: iat, ? 3: aud, ? "task_id", ?
 * "parent_task_id"}}. cbor_util_encode() sorts the keys, so insertion order does not matter. */
static int protected_encode(const uint8_t *kid, size_t kid_size, const CoseClaims *claims, uint8_t **ret,
                            size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int k = 0;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;

        k |= cbor_util_map_put_int(map, COSE_HEADER_ALG, cbor_util_new_int(COSE_ALG_ES256));
        k |= cbor_util_map_put_int(map, COSE_HEADER_KID, cbor_util_new_bytes(kid, kid_size));
        if (claims) {
                cbor_item_t *cm = cbor_util_new_map();

                /* RFC 9597 §2: label 15 holds a CWT Claims Set, integer keys as in RFC 8392 §3.1. */
                if (cm) {
                        k |= cbor_util_map_put_int(cm, CWT_CLAIM_IAT, cbor_util_new_uint(claims->iat));
                        if (claims->aud)
                                k |= cbor_util_map_put_int(cm, CWT_CLAIM_AUD, cbor_util_new_text(claims->aud));
                        if (claims->task_id)
                                k |= cbor_util_map_put_text(cm, "task_id", cbor_util_new_text(claims->task_id));
                        if (claims->parent_task_id)
                                k |= cbor_util_map_put_text(cm, "parent_task_id",
                                                            cbor_util_new_text(claims->parent_task_id));
                }
                k |= cbor_util_map_put_int(map, COSE_HEADER_CWT_CLAIMS, cm);
        }
        if (k != 0)
                return -ENOMEM;

        /* -EINVAL here means a claim text that is not UTF-8. */
        return cbor_util_encode(map, ret, ret_size);
}

int cose_sign1_sig_structure(const uint8_t *protected, size_t protected_size, const uint8_t *payload,
                             size_t payload_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *array = NULL;
        int k = 0;

        if ((!protected && protected_size > 0) || (!payload && payload_size > 0) || !ret || !ret_size)
                return -EINVAL;
        if (protected_size > COSE_PROTECTED_MAX || payload_size > COSE_PAYLOAD_MAX)
                return -EINVAL;

        /* RFC 9052 §4.4: Sig_structure = [context, body_protected, external_aad, payload]; agentid
         * uses no external AAD, which is the empty byte string. */
        array = cbor_util_new_array();
        if (!array)
                return -ENOMEM;
        k |= cbor_util_array_push(array, cbor_util_new_text(SIG_STRUCTURE_CONTEXT));
        k |= cbor_util_array_push(array, cbor_util_new_bytes(protected, protected_size));
        k |= cbor_util_array_push(array, cbor_util_new_bytes(NULL, 0));
        k |= cbor_util_array_push(array, cbor_util_new_bytes(payload, payload_size));
        if (k != 0)
                return -ENOMEM;

        return cbor_util_encode(array, ret, ret_size);
}

/* The head of a byte string of n bytes in its shortest form (RFC 8949 §3, §4.2.1). Return: its size. */
static size_t bstr_head(uint64_t n, uint8_t ret[9]) {
        size_t width;

        if (n < 24) {
                ret[0] = (uint8_t) (0x40 | n);
                return 1;
        }
        if (n <= UINT8_MAX) {
                ret[0] = 0x58;
                width = 1;
        } else if (n <= UINT16_MAX) {
                ret[0] = 0x59;
                width = 2;
        } else if (n <= UINT32_MAX) {
                ret[0] = 0x5a;
                width = 4;
        } else {
                ret[0] = 0x5b;
                width = 8;
        }
        for (size_t i = 0; i < width; i++)
                ret[1 + i] = (uint8_t) (n >> (8 * (width - 1 - i)));
        return 1 + width;
}

/*
 * SHA-256 of a Sig_structure (RFC 9052 §4.4), hashed in parts so that a large payload (a revocation
 * list) is not copied twice more: [context, body_protected, ? sign_protected, external_aad = h'',
 * payload]. sign_protected is NULL for COSE_Sign1 ("Signature1"), the signer's protected header for
 * COSE_Sign ("Signature"). The elements before the payload are encoded as an array of their own; its
 * count is below 24 and so sits in the head byte itself (RFC 8949 §3), which one more element turns
 * into the count of the whole Sig_structure. The bytes are exactly what cose_sign1_sig_structure()
 * builds.
 */
static int sig_structure_digest_ex(const char *context, const uint8_t *body_protected, size_t body_protected_size,
                                   const uint8_t *sign_protected, size_t sign_protected_size, const uint8_t *payload,
                                   size_t payload_size, uint8_t ret[SHA256_DIGEST_SIZE]) {
        _cleanup_cbor_ cbor_item_t *array = NULL;
        _cleanup_free_ uint8_t *prefix = NULL;
        size_t prefix_size = 0, head_size;
        uint8_t head[9];
        int k = 0, r;

        if ((!body_protected && body_protected_size > 0) || (!payload && payload_size > 0))
                return -EINVAL;
        if (body_protected_size > COSE_PROTECTED_MAX || sign_protected_size > COSE_PROTECTED_MAX ||
            payload_size > COSE_LARGE_PAYLOAD_MAX)
                return -EINVAL;

        array = cbor_util_new_array();
        if (!array)
                return -ENOMEM;
        k |= cbor_util_array_push(array, cbor_util_new_text(context));
        k |= cbor_util_array_push(array, cbor_util_new_bytes(body_protected, body_protected_size));
        if (sign_protected)
                k |= cbor_util_array_push(array, cbor_util_new_bytes(sign_protected, sign_protected_size));
        k |= cbor_util_array_push(array, cbor_util_new_bytes(NULL, 0));
        if (k != 0)
                return -ENOMEM;

        r = cbor_util_encode(array, &prefix, &prefix_size);
        if (r < 0)
                return r;
        /* 0x83 or 0x84 (array of 3 or 4) becomes 0x84 or 0x85 with the payload. */
        if (prefix_size < 1 || (prefix[0] != 0x83 && prefix[0] != 0x84))
                return -EINVAL;
        prefix[0]++;

        head_size = bstr_head(payload_size, head);
        const void *parts[] = { prefix, head, payload ?: (const uint8_t *) "" };
        const size_t sizes[] = { prefix_size, head_size, payload_size };
        return sha256_parts(parts, sizes, ELEMENTSOF(parts), ret);
}

static int sig_structure_digest(const uint8_t *protected, size_t protected_size, const uint8_t *payload,
                                size_t payload_size, uint8_t ret[SHA256_DIGEST_SIZE]) {
        return sig_structure_digest_ex(SIG_STRUCTURE_CONTEXT, protected, protected_size, NULL, 0, payload,
                                       payload_size, ret);
}

CoseSign1 *cose_sign1_free(CoseSign1 *c) {
        if (!c)
                return NULL;
        free(c->protected);
        free(c->payload);
        return mfree(c);
}

static int sign1_prepare(const uint8_t *kid, size_t kid_size, const CoseClaims *claims, const uint8_t *payload,
                         size_t payload_size, size_t payload_max, CoseSign1 **ret) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        int r;

        if (!kid || kid_size < 1 || kid_size > COSE_KID_MAX || !ret)
                return -EINVAL;
        if ((!payload && payload_size > 0) || payload_size > payload_max)
                return -EINVAL;
        if (claims && (!claim_text_is_valid(claims->aud) || !claim_text_is_valid(claims->task_id) ||
                       !claim_text_is_valid(claims->parent_task_id)))
                return -EINVAL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        r = protected_encode(kid, kid_size, claims, &c->protected, &c->protected_size);
        if (r < 0)
                return r;
        /* Cannot happen with the limits above (64 + 3 × 256 bytes of values), but the verifier
         * refuses larger headers, so never produce one. */
        if (c->protected_size > COSE_PROTECTED_MAX)
                return -EINVAL;

        r = memdup_out(payload, payload_size, &c->payload);
        if (r < 0)
                return r;
        c->payload_size = payload_size;

        r = sig_structure_digest(c->protected, c->protected_size, c->payload, c->payload_size, c->digest);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int cose_sign1_prepare(const uint8_t *kid, size_t kid_size, const CoseClaims *claims, const uint8_t *payload,
                       size_t payload_size, CoseSign1 **ret) {
        return sign1_prepare(kid, kid_size, claims, payload, payload_size, COSE_PAYLOAD_MAX, ret);
}

int cose_sign1_prepare_large(const uint8_t *kid, size_t kid_size, const uint8_t *payload, size_t payload_size,
                             CoseSign1 **ret) {
        /* Host-key statements carry no label 15 (formats.md §4): no claims here. */
        return sign1_prepare(kid, kid_size, NULL, payload, payload_size, COSE_LARGE_PAYLOAD_MAX, ret);
}

const uint8_t *cose_sign1_digest(const CoseSign1 *c) {
        return c ? c->digest : NULL;
}

int cose_sign1_finish(const CoseSign1 *c, const uint8_t sig_rs[COSE_ES256_SIG_SIZE], uint8_t **ret,
                      size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *array = NULL, *tag = NULL;
        int k = 0;

        if (!c || !sig_rs || !ret || !ret_size)
                return -EINVAL;

        /* RFC 9052 §4.2: COSE_Sign1 = [protected: bstr, unprotected: header_map, payload: bstr,
         * signature: bstr]. The unprotected header is always empty in agentid (DESIGN §5): nothing
         * that is not covered by the signature travels with the message. */
        array = cbor_util_new_array();
        if (!array)
                return -ENOMEM;
        k |= cbor_util_array_push(array, cbor_util_new_bytes(c->protected, c->protected_size));
        k |= cbor_util_array_push(array, cbor_util_new_map());
        k |= cbor_util_array_push(array, cbor_util_new_bytes(c->payload, c->payload_size));
        /* RFC 9053 §2.1: the ES256 signature is r || s, not DER. */
        k |= cbor_util_array_push(array, cbor_util_new_bytes(sig_rs, COSE_ES256_SIG_SIZE));
        if (k != 0)
                return -ENOMEM;

        /* RFC 9052 §2: COSE_Sign1_Tagged = #6.18(COSE_Sign1); written as the single byte 0xd2. */
        tag = cbor_new_tag(COSE_SIGN1_TAG);
        if (!tag)
                return -ENOMEM;
        cbor_tag_set_item(tag, array);    /* takes its own reference */

        return cbor_util_encode(tag, ret, ret_size);
}

/* ------------------------------------------------------------------------------------------------ */
/* Verifier */

static int claim_text_check(const cbor_item_t *v) {
        const char *s;
        size_t n;

        /* cbor_util_get_text() refuses an embedded NUL; the validator already checked UTF-8. */
        if (cbor_util_get_text(v, &s, &n) < 0 || n < 1 || n > COSE_CLAIM_TEXT_MAX)
                return -EBADMSG;
        return 0;
}

/* Label 15 exactly as protected_encode() writes it: 6 => uint (required), 3 => tstr,
 * "task_id" => tstr, "parent_task_id" => tstr, nothing else. */
static int claims_check(const cbor_item_t *claims, const char **reason) {
        struct cbor_pair *pairs;
        bool have_iat = false;
        size_t n;

        *reason = "CWT claims (label 15) are not a map";
        if (!claims || !cbor_isa_map(claims))
                return -EBADMSG;
        n = cbor_map_size(claims);
        pairs = cbor_map_handle(claims);
        if (n > 0 && !pairs)
                return -EBADMSG;

        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *key = pairs[i].key, *value = pairs[i].value;
                const char *s;
                size_t l;
                int64_t label;
                uint64_t u;

                *reason = "CWT claims (label 15): a claim has the wrong type or size";
                if (cbor_util_get_int(key, &label) >= 0) {
                        if (label == CWT_CLAIM_IAT) {
                                if (cbor_util_get_uint(value, &u) < 0)
                                        return -EBADMSG;
                                have_iat = true;
                        } else if (label == CWT_CLAIM_AUD) {
                                if (claim_text_check(value) < 0)
                                        return -EBADMSG;
                        } else {
                                *reason = "CWT claims (label 15): unknown claim";
                                return -EBADMSG;
                        }
                } else if (cbor_util_get_text(key, &s, &l) >= 0) {
                        bool known = (l == strlen("task_id") && memcmp(s, "task_id", l) == 0) ||
                                     (l == strlen("parent_task_id") && memcmp(s, "parent_task_id", l) == 0);
                        if (!known) {
                                *reason = "CWT claims (label 15): unknown claim";
                                return -EBADMSG;
                        }
                        if (claim_text_check(value) < 0)
                                return -EBADMSG;
                } else {
                        *reason = "CWT claims (label 15): a key is neither an integer nor a text";
                        return -EBADMSG;
                }
        }

        *reason = "CWT claims (label 15) lack iat (6)";
        return have_iat ? 0 : -EBADMSG;
}

/* The protected header bytes: a deterministic map with alg ES256, a kid, optionally label 15, and no
 * other label (RFC 9052 §3.1: a label we do not understand might be listed in crit). */
static int protected_parse(const uint8_t *buf, size_t size, CoseSign1Parsed *p, const char **reason) {
        static const CborLimits limits = {
                .max_size = COSE_PROTECTED_MAX,
                .max_depth = 2,         /* the header map and the claims map inside it */
                .max_items = 32,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        bool have_alg = false, have_kid = false;
        int r;

        /* RFC 9052 §4.2 allows a zero-length protected header, but ours always carries alg and kid. */
        r = cbor_util_decode(buf, size, &limits, &p->header, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(p->header)) {
                *reason = "protected header is not a deterministic CBOR map";
                return -EBADMSG;
        }

        size_t n = cbor_map_size(p->header);
        struct cbor_pair *pairs = cbor_map_handle(p->header);
        if (n > 0 && !pairs) {
                *reason = "protected header is not a deterministic CBOR map";
                return -EBADMSG;
        }

        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *value = pairs[i].value;
                int64_t label, alg;

                /* Labels are unique: the validator refuses duplicate keys. */
                if (cbor_util_get_int(pairs[i].key, &label) < 0) {
                        *reason = "protected header has a label that is not an integer";
                        return -EBADMSG;
                }
                switch (label) {
                case COSE_HEADER_ALG:
                        /* The algorithm is protected so it cannot be swapped (RFC 9052 §3.1). */
                        if (cbor_util_get_int(value, &alg) < 0 || alg != COSE_ALG_ES256) {
                                *reason = "alg (1) is not ES256 (-7)";
                                return -EBADMSG;
                        }
                        have_alg = true;
                        break;
                case COSE_HEADER_KID:
                        if (cbor_util_get_bytes(value, &p->kid, &p->kid_size) < 0 || p->kid_size < 1 ||
                            p->kid_size > COSE_KID_MAX) {
                                *reason = "kid (4) is not a byte string of 1..64 bytes";
                                return -EBADMSG;
                        }
                        have_kid = true;
                        break;
                case COSE_HEADER_CWT_CLAIMS:
                        r = claims_check(value, reason);
                        if (r < 0)
                                return r;
                        p->claims = value;
                        break;
                default:
                        *reason = "protected header has a label other than 1, 4 and 15";
                        return -EBADMSG;
                }
        }

        if (!have_alg || !have_kid) {
                *reason = !have_alg ? "protected header lacks alg (1)" : "protected header lacks kid (4)";
                return -EBADMSG;
        }
        return 0;
}

/* 1: an EC key on P-256; 0: another key; -EIO: an EC key whose curve OpenSSL could not report (it
 * allocates to answer, so this is how an allocation failure inside OpenSSL shows), not a wrong key.
 * EVP_PKEY_get_id() rather than EVP_PKEY_is_a(): the latter allocates too, and a failure there would
 * make a P-256 key look like a wrong one. */
static int pkey_check_p256(EVP_PKEY *pkey) {
        char group[64];
        int nid;

        if (EVP_PKEY_get_id(pkey) != EVP_PKEY_EC)
                return 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1)
                return -EIO;
        nid = OBJ_sn2nid(group);
        if (nid == NID_undef)
                nid = EC_curve_nist2nid(group);
        return nid == NID_X9_62_prime256v1;
}

void cose_sign1_parsed_done(CoseSign1Parsed *p) {
        if (!p)
                return;
        if (p->message)
                cbor_decref(&p->message);
        if (p->header)
                cbor_decref(&p->header);
        *p = (CoseSign1Parsed) {};
}

/* -EBADMSG, saying why when the caller asked. */
static int refuse(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

static int sign1_parse(const uint8_t *cose, size_t size, size_t payload_max, CoseSign1Parsed *ret,
                       const char **ret_reason) {
        const CborLimits limits = {
                .max_size = payload_max + COSE_ENVELOPE_MAX,
                .max_depth = 4,
                /* The array and its four elements; a little room so that an oversized unprotected map
                 * is reported as not empty rather than as too big (both are -EBADMSG). */
                .max_items = 16,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        const char *reason = NULL;
        const uint8_t *inner;
        size_t inner_size, sig_size;
        CborError error = {};
        int r;

        if ((!cose && size > 0) || !ret)
                return -EINVAL;

        /* libcbor 0.8 cannot decode the one-byte tag 18, so it is checked and removed by hand
         * (RFC 9052 §2: COSE_Sign1_Tagged; DESIGN §5). */
        if (cbor_util_strip_tag(cose, size, COSE_SIGN1_TAG, &inner, &inner_size) < 0)
                return refuse(ret_reason, "not tagged 18 (COSE_Sign1_Tagged starts with d2)");

        r = cbor_util_decode(inner, inner_size, &limits, &p.message, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                /* The validator's reasons are static strings too. */
                return refuse(ret_reason, error.reason ?: "not a single deterministic CBOR item");

        /* RFC 9052 §4.2: [protected, unprotected, payload, signature]. */
        if (!cbor_isa_array(p.message) || cbor_array_size(p.message) != 4 || !cbor_array_handle(p.message))
                return refuse(ret_reason, "not an array of four (RFC 9052 §4.2)");
        cbor_item_t **e = cbor_array_handle(p.message);

        if (cbor_util_get_bytes(e[0], &p.protected, &p.protected_size) < 0 || p.protected_size > COSE_PROTECTED_MAX)
                return refuse(ret_reason, "protected header is not a byte string of at most 2048 bytes");
        /* Unprotected parameters are not signed; agentid sends none and accepts none (DESIGN §5). */
        if (!cbor_isa_map(e[1]) || cbor_map_size(e[1]) != 0)
                return refuse(ret_reason, "unprotected header is not the empty map");
        /* A detached payload (nil, RFC 9052 §4.1) is refused by the validator already (no null). */
        if (cbor_util_get_bytes(e[2], &p.payload, &p.payload_size) < 0 || p.payload_size > payload_max)
                return refuse(ret_reason, payload_max > COSE_PAYLOAD_MAX ?
                                          "payload is not a byte string of at most 16 MiB" :
                                          "payload is not a byte string of at most 1 MiB");
        if (cbor_util_get_bytes(e[3], &p.signature, &sig_size) < 0 || sig_size != COSE_ES256_SIG_SIZE)
                return refuse(ret_reason, "signature is not a byte string of 64 bytes (ES256 r || s)");

        r = protected_parse(p.protected, p.protected_size, &p, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return refuse(ret_reason, reason);

        *ret = p;
        p = (CoseSign1Parsed) {};
        return 0;
}

int cose_sign1_parse(const uint8_t *cose, size_t size, CoseSign1Parsed *ret, const char **ret_reason) {
        return sign1_parse(cose, size, COSE_PAYLOAD_MAX, ret, ret_reason);
}

int cose_sign1_parse_max(const uint8_t *cose, size_t size, size_t payload_max, CoseSign1Parsed *ret,
                         const char **ret_reason) {
        if (payload_max > COSE_LARGE_PAYLOAD_MAX)
                return -EINVAL;
        return sign1_parse(cose, size, payload_max, ret, ret_reason);
}

int cose_sign1_verify_parsed(const CoseSign1Parsed *p, EVP_PKEY *pkey) {
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        size_t der_size;
        int r;

        if (!p || !p->protected || !p->payload || !p->signature || !pkey)
                return -EINVAL;
        /* ES256 is ECDSA with SHA-256 on P-256 here: r and s are 32 bytes each (RFC 9053 §2.1). */
        r = pkey_check_p256(pkey);
        if (r <= 0)
                return r ?: -EINVAL;

        /* Rebuilt from the bytes received, never from a re-encoding of the parsed header: the
         * signature covers the protected header exactly as it was sent (RFC 9052 §4.4). */
        r = sig_structure_digest(p->protected, p->protected_size, p->payload, p->payload_size, digest);
        /* -EIO: OpenSSL could not hash (it allocates to do so); not a fault of the message. */
        if (r == -ENOMEM || r == -EIO)
                return r;
        if (r < 0)
                return -EBADMSG;

        r = ecdsa_raw_to_der(p->signature, COSE_ES256_SIG_SIZE / 2, &der, &der_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EBADMSG;

        r = ecdsa_verify_digest(pkey, digest, der, der_size);
        if (r < 0)
                return r;
        return r == 0 ? -EKEYREJECTED : 0;
}

int cose_sign1_check(const uint8_t *cose, size_t size, EVP_PKEY *pkey, uint8_t **ret_protected,
                     size_t *ret_protected_size, uint8_t **ret_payload, size_t *ret_payload_size) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_free_ uint8_t *prot_copy = NULL, *payload_copy = NULL;
        int r;

        if ((!cose && size > 0) || !pkey)
                return -EINVAL;
        if ((ret_protected && !ret_protected_size) || (ret_payload && !ret_payload_size))
                return -EINVAL;
        r = pkey_check_p256(pkey);
        if (r <= 0)
                return r ?: -EINVAL;

        r = cose_sign1_parse(cose, size, &p, NULL);
        if (r < 0)
                return r;
        r = cose_sign1_verify_parsed(&p, pkey);
        if (r < 0)
                return r;

        if (ret_protected && memdup_out(p.protected, p.protected_size, &prot_copy) < 0)
                return -ENOMEM;
        if (ret_payload && memdup_out(p.payload, p.payload_size, &payload_copy) < 0)
                return -ENOMEM;

        if (ret_protected) {
                *ret_protected = TAKE_PTR(prot_copy);
                *ret_protected_size = p.protected_size;
        }
        if (ret_payload) {
                *ret_payload = TAKE_PTR(payload_copy);
                *ret_payload_size = p.payload_size;
        }
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* COSE_Sign: several signers (RFC 9052 §4.1) */

/* Sig_structure context string for a signature of COSE_Sign (RFC 9052 §4.4). */
#define SIG_STRUCTURE_CONTEXT_SIGN "Signature"

struct CoseSign {
        uint8_t *payload;
        size_t payload_size;
        size_t n_signers;
        struct {
                uint8_t *protected;     /* {1: -7, 4: kid} */
                size_t protected_size;
                uint8_t digest[SHA256_DIGEST_SIZE];
        } signers[COSE_SIGN_SIGNERS_MAX];
};

CoseSign *cose_sign_free(CoseSign *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_signers; i++)
                free(c->signers[i].protected);
        free(c->payload);
        return mfree(c);
}

int cose_sign_prepare(const uint8_t *const *kids, const size_t *kid_sizes, size_t n, const uint8_t *payload,
                      size_t payload_size, CoseSign **ret) {
        _cleanup_(cose_sign_freep) CoseSign *c = NULL;
        int r;

        if (!kids || !kid_sizes || n < 1 || n > COSE_SIGN_SIGNERS_MAX || !ret)
                return -EINVAL;
        if ((!payload && payload_size > 0) || payload_size > COSE_PAYLOAD_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!kids[i] || kid_sizes[i] < 1 || kid_sizes[i] > COSE_KID_MAX)
                        return -EINVAL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        r = memdup_out(payload, payload_size, &c->payload);
        if (r < 0)
                return r;
        c->payload_size = payload_size;

        for (size_t i = 0; i < n; i++) {
                /* RFC 9052 §4.1: each COSE_Signature has its own protected header, the algorithm and the
                 * signer's kid; the body's protected header stays empty (h''), so each signature covers
                 * exactly its own header and the payload. */
                r = protected_encode(kids[i], kid_sizes[i], NULL, &c->signers[i].protected,
                                     &c->signers[i].protected_size);
                if (r < 0)
                        return r;
                c->n_signers++;
                r = sig_structure_digest_ex(SIG_STRUCTURE_CONTEXT_SIGN, NULL, 0, c->signers[i].protected,
                                            c->signers[i].protected_size, c->payload, c->payload_size,
                                            c->signers[i].digest);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

const uint8_t *cose_sign_digest(const CoseSign *c, size_t i) {
        return c && i < c->n_signers ? c->signers[i].digest : NULL;
}

size_t cose_sign_n_signers(const CoseSign *c) {
        return c ? c->n_signers : 0;
}

int cose_sign_finish(const CoseSign *c, const uint8_t (*sigs)[COSE_ES256_SIG_SIZE], uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *array = NULL, *signatures = NULL, *tag = NULL;
        int k = 0;

        if (!c || !sigs || !ret || !ret_size)
                return -EINVAL;

        /* RFC 9052 §4.1: COSE_Signature = [protected: bstr, unprotected: header_map, signature: bstr]. */
        signatures = cbor_util_new_array();
        if (!signatures)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_signers; i++) {
                cbor_item_t *s = cbor_util_new_array();
                if (s) {
                        k |= cbor_util_array_push(s, cbor_util_new_bytes(c->signers[i].protected,
                                                                         c->signers[i].protected_size));
                        k |= cbor_util_array_push(s, cbor_util_new_map());
                        k |= cbor_util_array_push(s, cbor_util_new_bytes(sigs[i], COSE_ES256_SIG_SIZE));
                }
                k |= cbor_util_array_push(signatures, s);
        }

        /* COSE_Sign = [protected: bstr, unprotected: header_map, payload: bstr, signatures: [+
         * COSE_Signature]]; both body headers are empty, as in agentid's COSE_Sign1 nothing travels
         * unprotected. */
        array = cbor_util_new_array();
        if (!array)
                return -ENOMEM;
        k |= cbor_util_array_push(array, cbor_util_new_bytes(NULL, 0));
        k |= cbor_util_array_push(array, cbor_util_new_map());
        k |= cbor_util_array_push(array, cbor_util_new_bytes(c->payload, c->payload_size));
        k |= cbor_util_array_push(array, TAKE_PTR(signatures));
        if (k != 0)
                return -ENOMEM;

        /* RFC 9052 §2: COSE_Sign_Tagged = #6.98(COSE_Sign), the two bytes d8 62. */
        tag = cbor_new_tag(COSE_SIGN_TAG);
        if (!tag)
                return -ENOMEM;
        cbor_tag_set_item(tag, array);    /* takes its own reference */

        return cbor_util_encode(tag, ret, ret_size);
}

/* A COSE_Sign_Tagged whose structure sign_parse() accepted; the pointers borrow from message. */
typedef struct CoseSignParsed {
        cbor_item_t *message;           /* the tag item */
        const uint8_t *payload;
        size_t payload_size;
        size_t n_signers;
        struct {
                const uint8_t *protected;
                size_t protected_size;
                const uint8_t *signature;
        } signers[COSE_SIGN_SIGNERS_MAX];
} CoseSignParsed;

static void cose_sign_parsed_done(CoseSignParsed *p) {
        if (p->message)
                cbor_decref(&p->message);
        *p = (CoseSignParsed) {};
}

/* An empty map, the only unprotected header agentid accepts (DESIGN §5). */
static bool is_empty_map(const cbor_item_t *item) {
        return item && cbor_isa_map(item) && cbor_map_size(item) == 0;
}

/* A signer's protected header: exactly {1: -7, 4: kid} (no label 15: only signed messages carry it). */
static int signer_protected_check(const uint8_t *buf, size_t size, const char **reason) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed h = {};
        int r;

        r = protected_parse(buf, size, &h, reason);
        if (r < 0)
                return r;
        if (h.claims) {
                *reason = "a signer's protected header carries CWT claims (label 15)";
                return -EBADMSG;
        }
        return 0;
}

static int sign_parse(const uint8_t *msg, size_t size, size_t n, CoseSignParsed *ret, const char **reason) {
        static const uint64_t tags[] = { COSE_SIGN_TAG };
        static const CborLimits limits = {
                .max_size = COSE_PAYLOAD_MAX + COSE_ENVELOPE_MAX,
                /* tag > COSE_Sign > signatures > COSE_Signature > its unprotected map */
                .max_depth = 5,
                /* The tag, the array and its four elements, four items per signer; room so that an
                 * unprotected map that is not empty is reported as such (both are -EBADMSG). */
                .max_items = 64,
                .tags = tags,
                .n_tags = ELEMENTSOF(tags),
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(cose_sign_parsed_done) CoseSignParsed p = {};
        _cleanup_cbor_ cbor_item_t *body = NULL;
        const uint8_t *body_protected;
        size_t body_protected_size;
        CborError error = {};
        int r;

        /* The tag is checked on the raw bytes first: d8 62 is the only encoding of tag 98 in the
         * deterministic form, and without it this is not a COSE_Sign_Tagged (RFC 9052 §2). */
        if (size < 2 || msg[0] != 0xd8 || msg[1] != COSE_SIGN_TAG) {
                *reason = "not tagged 98 (COSE_Sign_Tagged starts with d8 62)";
                return -EBADMSG;
        }
        /* Tag 98 has a two-byte head that libcbor 0.8 decodes; only the one-byte tags 6..20 need
         * stripping by hand. */
        r = cbor_util_decode(msg, size, &limits, &p.message, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *reason = error.reason ?: "not a single deterministic CBOR item";
                return -EBADMSG;
        }
        if (!cbor_isa_tag(p.message) || cbor_tag_value(p.message) != COSE_SIGN_TAG) {
                *reason = "not tagged 98 (COSE_Sign_Tagged)";
                return -EBADMSG;
        }
        body = cbor_tag_item(p.message);        /* a new reference */

        /* RFC 9052 §4.1: [protected, unprotected, payload, signatures]. */
        if (!body || !cbor_isa_array(body) || cbor_array_size(body) != 4 || !cbor_array_handle(body)) {
                *reason = "not an array of four (RFC 9052 §4.1)";
                return -EBADMSG;
        }
        cbor_item_t **e = cbor_array_handle(body);
        /* The body's headers: both empty, so every signature covers only its own header and the
         * payload, and nothing unsigned travels with the message. */
        if (cbor_util_get_bytes(e[0], &body_protected, &body_protected_size) < 0 || body_protected_size != 0) {
                *reason = "body protected header is not the empty byte string";
                return -EBADMSG;
        }
        if (!is_empty_map(e[1])) {
                *reason = "body unprotected header is not the empty map";
                return -EBADMSG;
        }
        if (cbor_util_get_bytes(e[2], &p.payload, &p.payload_size) < 0 || p.payload_size > COSE_PAYLOAD_MAX) {
                *reason = "payload is not a byte string of at most 1 MiB";
                return -EBADMSG;
        }
        if (!cbor_isa_array(e[3]) || cbor_array_size(e[3]) < 1 || !cbor_array_handle(e[3])) {
                *reason = "signatures are not a non-empty array";
                return -EBADMSG;
        }
        if (cbor_array_size(e[3]) != n) {
                *reason = "not the expected number of signatures";
                return -EBADMSG;
        }

        cbor_item_t **sigs = cbor_array_handle(e[3]);
        for (size_t i = 0; i < n; i++) {
                size_t sig_size;

                if (!cbor_isa_array(sigs[i]) || cbor_array_size(sigs[i]) != 3 || !cbor_array_handle(sigs[i])) {
                        *reason = "a COSE_Signature is not an array of three (RFC 9052 §4.1)";
                        return -EBADMSG;
                }
                cbor_item_t **f = cbor_array_handle(sigs[i]);
                if (cbor_util_get_bytes(f[0], &p.signers[i].protected, &p.signers[i].protected_size) < 0 ||
                    p.signers[i].protected_size > COSE_PROTECTED_MAX) {
                        *reason = "a signer's protected header is not a byte string of at most 2048 bytes";
                        return -EBADMSG;
                }
                if (!is_empty_map(f[1])) {
                        *reason = "a signer's unprotected header is not the empty map";
                        return -EBADMSG;
                }
                if (cbor_util_get_bytes(f[2], &p.signers[i].signature, &sig_size) < 0 ||
                    sig_size != COSE_ES256_SIG_SIZE) {
                        *reason = "a signature is not a byte string of 64 bytes (ES256 r || s)";
                        return -EBADMSG;
                }
                r = signer_protected_check(p.signers[i].protected, p.signers[i].protected_size, reason);
                if (r < 0)
                        return r;
        }
        p.n_signers = n;

        *ret = p;
        p = (CoseSignParsed) {};
        return 0;
}

/* Arguments shared by cose_sign_parse() and cose_sign_check(). */
static bool sign_args_valid(const uint8_t *msg, size_t size, size_t n, uint8_t **ret_payload,
                            size_t *ret_payload_size) {
        return (msg || size == 0) && n >= 1 && n <= COSE_SIGN_SIGNERS_MAX && (!ret_payload || ret_payload_size);
}

int cose_sign_parse(const uint8_t *msg, size_t size, size_t n, uint8_t **ret_payload, size_t *ret_payload_size,
                    const char **ret_reason) {
        _cleanup_(cose_sign_parsed_done) CoseSignParsed p = {};
        const char *reason = NULL;
        int r;

        if (!sign_args_valid(msg, size, n, ret_payload, ret_payload_size))
                return -EINVAL;

        r = sign_parse(msg, size, n, &p, &reason);
        if (r == -EBADMSG)
                return refuse(ret_reason, reason);
        if (r < 0)
                return r;

        if (ret_payload) {
                r = memdup_out(p.payload, p.payload_size, ret_payload);
                if (r < 0)
                        return r;
                *ret_payload_size = p.payload_size;
        }
        return 0;
}

int cose_sign_check(const uint8_t *msg, size_t size, EVP_PKEY *const *pkeys, size_t n, size_t *ret_failed,
                    uint8_t **ret_payload, size_t *ret_payload_size) {
        _cleanup_(cose_sign_parsed_done) CoseSignParsed p = {};
        const char *reason = NULL;
        int r;

        if (!sign_args_valid(msg, size, n, ret_payload, ret_payload_size) || !pkeys)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!pkeys[i])
                        return -EINVAL;
                r = pkey_check_p256(pkeys[i]);
                if (r <= 0)
                        return r ?: -EINVAL;
        }

        r = sign_parse(msg, size, n, &p, &reason);
        if (r < 0)
                return r;

        /* In order: signature i with key i. The order is part of the profile (a rotation statement is
         * signed by the old key first, then by the host key), so swapped signatures do not verify. */
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ uint8_t *der = NULL;
                uint8_t digest[SHA256_DIGEST_SIZE];
                size_t der_size;

                /* Rebuilt from the bytes received (RFC 9052 §4.4): body_protected is h''. */
                r = sig_structure_digest_ex(SIG_STRUCTURE_CONTEXT_SIGN, NULL, 0, p.signers[i].protected,
                                            p.signers[i].protected_size, p.payload, p.payload_size, digest);
                if (r == -ENOMEM || r == -EIO)
                        return r;
                if (r < 0)
                        return -EBADMSG;
                r = ecdsa_raw_to_der(p.signers[i].signature, COSE_ES256_SIG_SIZE / 2, &der, &der_size);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0)
                        r = ecdsa_verify_digest(pkeys[i], digest, der, der_size);
                else
                        r = 0;          /* r or s out of range: not a signature that verifies */
                if (r < 0)
                        return r;
                if (r == 0) {
                        if (ret_failed)
                                *ret_failed = i;
                        return -EKEYREJECTED;
                }
        }

        if (ret_payload) {
                r = memdup_out(p.payload, p.payload_size, ret_payload);
                if (r < 0)
                        return r;
                *ret_payload_size = p.payload_size;
        }
        return 0;
}

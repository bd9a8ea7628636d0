/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attest/peers: the registry of approved peers — adding (and what is refused), finding, removing,
 * the encoded form and its strict reader, the file in a directory, and the unverified issuer peek used
 * to pick a peer's key (suite "unit").
 */

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "attest/cose.h"
#include "attest/peers.h"
#include "attest/token.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "tests/lib/test-budget.h"

#define HOST_A "0123456789abcdef0123456789abcdef"
#define HOST_B "fedcba9876543210fedcba9876543210"
#define URI_A "agentid://" HOST_A "/planner"
#define URI_B "agentid://" HOST_B "/remote-agent"
#define URI_C "agentid://" HOST_B "/zeta.agent_1"

typedef struct Key {
        uint8_t *der;           /* canonical (uncompressed) SPKI */
        size_t size;
        uint8_t *compressed;    /* the same key, compressed point */
        size_t compressed_size;
} Key;

static Key key_a, key_b;

static void key_make(Key *k, const char *curve) {
        EVP_PKEY *pkey = EVP_EC_gen(curve);
        unsigned char *der = NULL;
        int n;

        assert_non_null(pkey);
        n = i2d_PUBKEY(pkey, &der);
        assert_true(n > 0);
        assert_int_equal(memdup_sized(der, (size_t) n, &k->der, &k->size), 0);
        OPENSSL_free(der);
        der = NULL;
        assert_int_equal(EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                        OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED), 1);
        n = i2d_PUBKEY(pkey, &der);
        assert_true(n > 0);
        assert_int_equal(memdup_sized(der, (size_t) n, &k->compressed, &k->compressed_size), 0);
        OPENSSL_free(der);
        EVP_PKEY_free(pkey);
}

static void key_done(Key *k) {
        free(k->der);
        free(k->compressed);
        *k = (Key) {};
}

static int setup(void **state) {
        key_make(&key_a, "P-256");
        key_make(&key_b, "P-256");
        return 0;
}

static int teardown(void **state) {
        key_done(&key_a);
        key_done(&key_b);
        return 0;
}

static void kid_make(uint8_t kid[PEER_KID_SIZE], uint8_t fill) {
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, fill, PEER_KID_SIZE - 2);
}

/* Three peers, added out of URI order. */
static PeerRegistry *registry_abc(void) {
        PeerRegistry *reg = peer_registry_new();
        uint8_t kid[PEER_KID_SIZE];

        assert_non_null(reg);
        kid_make(kid, 0x22);
        assert_int_equal(peer_registry_add(reg, URI_C, key_a.der, key_a.size, NULL, 1764000000, 0), 0);
        assert_int_equal(peer_registry_add(reg, URI_B, key_b.compressed, key_b.compressed_size, kid, 1764000001, 1000), 0);
        assert_int_equal(peer_registry_add(reg, URI_A, key_a.der, key_a.size, NULL, 1764000002, 0), 0);
        return reg;
}

static void encode_ok(const PeerRegistry *reg, uint8_t **buf, size_t *size) {
        assert_int_equal(peer_registry_encode(reg, buf, size), 0);
        /* The encoding is deterministic CBOR by construction; check it with the validator too. */
        CborLimits limits = { .max_size = PEERS_FILE_MAX, .max_depth = 3, .max_items = 100000,
                              .flags = CBOR_VALIDATE_DETERMINISTIC };
        assert_int_equal(cbor_util_validate(*buf, *size, &limits, NULL), 0);
}

static void test_canonical_key(void **state) {
        uint8_t *der = NULL;
        size_t size = 0;

        assert_int_equal(peer_spki_canonicalize(key_a.der, key_a.size, &der, &size), 0);
        assert_int_equal(size, 91);
        assert_memory_equal(der, key_a.der, size);
        free(der);
        /* A compressed point comes back uncompressed: one key, one SPKI, one hash. */
        assert_int_equal(peer_spki_canonicalize(key_a.compressed, key_a.compressed_size, &der, &size), 0);
        assert_int_equal(size, key_a.size);
        assert_memory_equal(der, key_a.der, size);
        free(der);
}

static void test_round_trip(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = registry_abc(), *again = NULL;
        _cleanup_free_ uint8_t *buf = NULL, *buf2 = NULL;
        size_t size = 0, size2 = 0;
        uint8_t kid[PEER_KID_SIZE], sha[32];

        assert_int_equal(peer_registry_size(reg), 3);
        /* Sorted by URI whatever the order of adding. */
        assert_string_equal(peer_registry_get(reg, 0)->uri, URI_A);
        assert_string_equal(peer_registry_get(reg, 1)->uri, URI_B);
        assert_string_equal(peer_registry_get(reg, 2)->uri, URI_C);
        assert_null(peer_registry_get(reg, 3));

        const Peer *b = peer_registry_get(reg, 1);
        kid_make(kid, 0x22);
        assert_true(b->has_kid);
        assert_memory_equal(b->kid, kid, PEER_KID_SIZE);
        assert_int_equal(b->spki_size, key_b.size);
        assert_memory_equal(b->spki_der, key_b.der, key_b.size); /* stored canonically */
        assert_int_equal(sha256(key_b.der, key_b.size, sha), 0);
        assert_memory_equal(b->spki_sha256, sha, 32);
        assert_int_equal(b->added, 1764000001);
        assert_int_equal(b->by_uid, 1000);
        assert_false(peer_registry_get(reg, 0)->has_kid);

        encode_ok(reg, &buf, &size);
        assert_int_equal(peer_registry_parse(buf, size, &again, NULL), 0);
        assert_int_equal(peer_registry_size(again), 3);
        for (size_t i = 0; i < 3; i++) {
                const Peer *x = peer_registry_get(reg, i), *y = peer_registry_get(again, i);
                assert_string_equal(x->uri, y->uri);
                assert_int_equal(x->spki_size, y->spki_size);
                assert_memory_equal(x->spki_der, y->spki_der, x->spki_size);
                assert_memory_equal(x->spki_sha256, y->spki_sha256, 32);
                assert_int_equal(x->has_kid, y->has_kid);
                assert_memory_equal(x->kid, y->kid, PEER_KID_SIZE);
                assert_int_equal(x->added, y->added);
                assert_int_equal(x->by_uid, y->by_uid);
        }
        encode_ok(again, &buf2, &size2);
        assert_int_equal(size, size2);
        assert_memory_equal(buf, buf2, size);

        /* The empty registry: {"v": 1, "peers": []}. */
        _cleanup_(peer_registry_freep) PeerRegistry *empty = peer_registry_new();
        _cleanup_free_ uint8_t *e = NULL;
        size_t esize = 0;
        static const uint8_t golden[] = { 0xa2, 0x61, 'v', 0x01, 0x65, 'p', 'e', 'e', 'r', 's', 0x80 };
        encode_ok(empty, &e, &esize);
        assert_int_equal(esize, sizeof(golden));
        assert_memory_equal(e, golden, sizeof(golden));
}

static void test_refusals(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = registry_abc();
        uint8_t kid[PEER_KID_SIZE];
        static const char *const bad_uris[] = {
                "",
                "agentid://" HOST_A,
                "agentid://" HOST_A "/",
                "agentid://0123456789ABCDEF0123456789abcdef/planner",   /* upper-case hex */
                "agentid://0123456789abcdef0123456789abcde/planner",    /* 31 digits */
                "agentid://" HOST_A "/Planner",
                "agentid://" HOST_A "/-planner",
                "agentid://" HOST_A "/plan/ner",
                "https://" HOST_A "/planner",
                "agentid://" HOST_A "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_uris); i++)
                assert_int_equal(peer_registry_add(reg, bad_uris[i], key_a.der, key_a.size, NULL, 1, 0), -EINVAL);

        /* Keys: another curve, not a key, trailing bytes, truncated, empty. */
        Key p384 = {};
        key_make(&p384, "P-384");
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", p384.der, p384.size, NULL, 1, 0), -EINVAL);
        key_done(&p384);
        uint8_t junk[100];
        memset(junk, 0x30, sizeof(junk));
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", junk, sizeof(junk), NULL, 1, 0), -EINVAL);
        uint8_t longer[128];
        memcpy(longer, key_a.der, key_a.size);
        longer[key_a.size] = 0;
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", longer, key_a.size + 1, NULL, 1, 0), -EINVAL);
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", key_a.der, key_a.size - 1, NULL, 1, 0), -EINVAL);
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", key_a.der, 0, NULL, 1, 0), -EINVAL);
        /* A point off the curve. */
        uint8_t off[91];
        memcpy(off, key_a.der, sizeof(off));
        off[90] ^= 1;
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", off, sizeof(off), NULL, 1, 0), -EINVAL);

        /* A kid that is no SHA-256 TPM Name. */
        kid_make(kid, 0x33);
        kid[1] = 0x0c;
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", key_a.der, key_a.size, kid, 1, 0), -EINVAL);

        /* Duplicates: the URI, or the kid of another peer. */
        assert_int_equal(peer_registry_add(reg, URI_B, key_a.der, key_a.size, NULL, 1, 0), -EEXIST);
        kid_make(kid, 0x22);
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_A "/x", key_a.der, key_a.size, kid, 1, 0), -ENOTUNIQ);

        assert_int_equal(peer_registry_size(reg), 3); /* nothing changed */
}

static void limit_body(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = peer_registry_new(), *again = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        char uri[128];

        for (unsigned i = 0; i < PEERS_MAX; i++) {
                snprintf(uri, sizeof(uri), "agentid://" HOST_A "/agent-%04u", i);
                assert_int_equal(peer_registry_add(reg, uri, key_a.der, key_a.size, NULL, 1, 0), 0);
        }
        assert_int_equal(peer_registry_add(reg, "agentid://" HOST_B "/one-more", key_a.der, key_a.size, NULL, 1, 0),
                         -E2BIG);
        assert_int_equal(peer_registry_size(reg), PEERS_MAX);
        /* A full registry fits its file and reads back. */
        encode_ok(reg, &buf, &size);
        assert_true(size <= PEERS_FILE_MAX);
        assert_int_equal(peer_registry_parse(buf, size, &again, NULL), 0);
        assert_int_equal(peer_registry_size(again), PEERS_MAX);
}

static void test_find_remove(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = registry_abc();
        uint8_t kid[PEER_KID_SIZE];
        Peer *removed = NULL;

        assert_string_equal(peer_registry_find_by_uri(reg, URI_C)->uri, URI_C);
        assert_null(peer_registry_find_by_uri(reg, "agentid://" HOST_A "/nobody"));
        kid_make(kid, 0x22);
        assert_string_equal(peer_registry_find_by_kid(reg, kid)->uri, URI_B);
        kid_make(kid, 0x23);
        assert_null(peer_registry_find_by_kid(reg, kid));

        assert_int_equal(peer_registry_remove(reg, "agentid://" HOST_A "/nobody", NULL), -ENOENT);
        assert_int_equal(peer_registry_remove(reg, URI_B, &removed), 0);
        assert_non_null(removed);
        assert_string_equal(removed->uri, URI_B);
        assert_int_equal(peer_registry_size(reg), 2);
        assert_null(peer_registry_find_by_uri(reg, URI_B));
        kid_make(kid, 0x22);
        assert_null(peer_registry_find_by_kid(reg, kid));
        /* Given back (as after a failed save), it is found again, in order. */
        assert_int_equal(peer_registry_restore(reg, removed), 0);
        assert_string_equal(peer_registry_get(reg, 1)->uri, URI_B);
        assert_non_null(peer_registry_find_by_kid(reg, kid));

        assert_int_equal(peer_registry_remove(reg, URI_A, NULL), 0);
        assert_int_equal(peer_registry_remove(reg, URI_A, NULL), -ENOENT);
        assert_int_equal(peer_registry_size(reg), 2);
}

/* ---- the strict reader ---------------------------------------------------------------------- */

typedef struct Entry {
        const char *uri;
        const uint8_t *spki;
        size_t spki_size;
        const uint8_t *kid;
        size_t kid_size;
        bool no_added, no_by_uid;
        uint64_t by_uid;
        const char *extra;      /* an unknown field */
} Entry;

/* A file built field by field (map keys are sorted by the encoder; the array keeps this order). */
static void file_make(uint64_t v, const Entry *entries, size_t n, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *top = cbor_util_new_map();
        cbor_item_t *list = cbor_util_new_array();

        assert_int_equal(cbor_util_map_put_text(top, "v", cbor_util_new_uint(v)), 0);
        for (size_t i = 0; i < n; i++) {
                const Entry *e = entries + i;
                cbor_item_t *m = cbor_util_new_map();
                assert_int_equal(cbor_util_map_put_text(m, "uri", cbor_util_new_text(e->uri)), 0);
                assert_int_equal(cbor_util_map_put_text(m, "spki", cbor_util_new_bytes(e->spki, e->spki_size)), 0);
                if (e->kid)
                        assert_int_equal(cbor_util_map_put_text(m, "kid", cbor_util_new_bytes(e->kid, e->kid_size)), 0);
                if (!e->no_added)
                        assert_int_equal(cbor_util_map_put_text(m, "added", cbor_util_new_uint(1764000000)), 0);
                if (!e->no_by_uid)
                        assert_int_equal(cbor_util_map_put_text(m, "by_uid", cbor_util_new_uint(e->by_uid)), 0);
                if (e->extra)
                        assert_int_equal(cbor_util_map_put_text(m, e->extra, cbor_util_new_uint(1)), 0);
                assert_int_equal(cbor_util_array_push(list, m), 0);
        }
        assert_int_equal(cbor_util_map_put_text(top, "peers", list), 0);
        assert_int_equal(cbor_util_encode(top, ret, ret_size), 0);
}

static void parse_fails(const uint8_t *buf, size_t size, int expected, const char *what) {
        PeerRegistry *reg = NULL;
        const char *reason = NULL;

        int r = peer_registry_parse(buf, size, &reg, &reason);
        if (r != expected)
                fail_msg("%s: peer_registry_parse() = %d (%s), expected %d", what, r, reason ?: "", expected);
        assert_null(reg);
        if (expected == -EBADMSG)
                assert_non_null(reason);
}

static void file_fails(uint64_t v, const Entry *entries, size_t n, const char *what) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;

        file_make(v, entries, n, &buf, &size);
        parse_fails(buf, size, -EBADMSG, what);
}

/* Replace the first occurrence of from (n bytes) with to (m bytes); the result is malloc'd. */
static uint8_t *bytes_replace(const uint8_t *buf, size_t size, const void *from, size_t n, const void *to, size_t m,
                       size_t *ret_size) {
        for (size_t i = 0; i + n <= size; i++)
                if (memcmp(buf + i, from, n) == 0) {
                        uint8_t *out = malloc(size - n + m);
                        assert_non_null(out);
                        memcpy(out, buf, i);
                        memcpy(out + i, to, m);
                        memcpy(out + i + m, buf + i + n, size - i - n);
                        *ret_size = size - n + m;
                        return out;
                }
        fail_msg("bytes_replace: pattern not found");
        return NULL;
}

static void test_corrupt(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = registry_abc();
        _cleanup_free_ uint8_t *good = NULL;
        size_t size = 0;
        uint8_t kid[PEER_KID_SIZE], kid2[PEER_KID_SIZE];
        PeerRegistry *out = NULL;

        encode_ok(reg, &good, &size);

        /* Well-formed files, each with one thing wrong. */
        kid_make(kid, 0x44);
        kid_make(kid2, 0x44);
        Entry ok = { .uri = URI_A, .spki = key_a.der, .spki_size = key_a.size };
        Entry ok2 = { .uri = URI_B, .spki = key_b.der, .spki_size = key_b.size };
        {
                /* The baseline is accepted. */
                _cleanup_free_ uint8_t *buf = NULL;
                size_t n = 0;
                Entry both[] = { ok, ok2 };
                file_make(1, both, 2, &buf, &n);
                assert_int_equal(peer_registry_parse(buf, n, &out, NULL), 0);
                out = peer_registry_free(out);
        }
        file_fails(2, &ok, 1, "v 2");
        Entry e;
        e = ok, e.uri = "agentid://nothex/x";
        file_fails(1, &e, 1, "bad uri");
        e = ok, e.spki = key_a.compressed, e.spki_size = key_a.compressed_size;
        file_fails(1, &e, 1, "compressed (non-canonical) key");
        e = ok, e.spki_size = key_a.size - 3;
        file_fails(1, &e, 1, "truncated key");
        e = ok, e.kid = kid, e.kid_size = 33;
        file_fails(1, &e, 1, "short kid");
        e = ok, e.no_added = true;
        file_fails(1, &e, 1, "no added");
        e = ok, e.no_by_uid = true;
        file_fails(1, &e, 1, "no by_uid");
        e = ok, e.by_uid = 1ULL << 32;
        file_fails(1, &e, 1, "by_uid over 32 bits");
        e = ok, e.extra = "comment";
        file_fails(1, &e, 1, "unknown field");
        {
                Entry unsorted[] = { ok2, ok };
                file_fails(1, unsorted, 2, "entries not sorted");
                Entry twice[] = { ok, ok };
                file_fails(1, twice, 2, "a URI twice");
                Entry same_kid[] = { ok, ok2 };
                same_kid[0].kid = kid, same_kid[0].kid_size = PEER_KID_SIZE;
                same_kid[1].kid = kid2, same_kid[1].kid_size = PEER_KID_SIZE;
                file_fails(1, same_kid, 2, "a kid twice");
        }

        /* Byte-level damage to a good file. */
        parse_fails(good, size - 1, -EBADMSG, "truncated");
        parse_fails(good, 0, -EBADMSG, "empty");
        {
                _cleanup_free_ uint8_t *longer = malloc(size + 1);
                memcpy(longer, good, size);
                longer[size] = 0x00;
                parse_fails(longer, size + 1, -EBADMSG, "trailing byte");
        }
        {
                /* Non-deterministic: by_uid 1000 (19 03 e8) written with a 4-byte argument. */
                static const uint8_t from[] = { 0x66, 'b', 'y', '_', 'u', 'i', 'd', 0x19, 0x03, 0xe8 };
                static const uint8_t to[] = { 0x66, 'b', 'y', '_', 'u', 'i', 'd', 0x1a, 0x00, 0x00, 0x03, 0xe8 };
                size_t n = 0;
                _cleanup_free_ uint8_t *buf = bytes_replace(good, size, from, sizeof(from), to, sizeof(to), &n);
                parse_fails(buf, n, -EBADMSG, "long integer");
        }
        {
                /* Non-deterministic: the top-level keys in the wrong order ("peers" before "v"). */
                static const uint8_t from[] = { 0xa2, 0x61, 'v', 0x01 };
                static const uint8_t to[] = { 0xa2 };
                size_t n = 0;
                _cleanup_free_ uint8_t *buf = bytes_replace(good, size, from, sizeof(from), to, sizeof(to), &n);
                uint8_t *swapped = realloc(buf, n + 3);
                assert_non_null(swapped);
                buf = swapped;
                memcpy(buf + n, (const uint8_t[]) { 0x61, 'v', 0x01 }, 3);
                parse_fails(buf, n + 3, -EBADMSG, "unsorted map keys");
        }
        {
                /* An indefinite-length array. */
                static const uint8_t from[] = { 0x65, 'p', 'e', 'e', 'r', 's', 0x83 };
                static const uint8_t to[] = { 0x65, 'p', 'e', 'e', 'r', 's', 0x9f };
                size_t n = 0;
                _cleanup_free_ uint8_t *buf = bytes_replace(good, size, from, sizeof(from), to, sizeof(to), &n);
                uint8_t *more = realloc(buf, n + 1);
                assert_non_null(more);
                buf = more;
                buf[n] = 0xff;
                parse_fails(buf, n + 1, -EBADMSG, "indefinite array");
        }
        {
                _cleanup_free_ uint8_t *huge = calloc(1, PEERS_FILE_MAX + 1);
                parse_fails(huge, PEERS_FILE_MAX + 1, -E2BIG, "too large");
        }
}

static void test_file(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = registry_abc(), *loaded = NULL, *missing = NULL;
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        const char *reason = NULL;
        char dir[] = "/tmp/test-peers-XXXXXX";
        struct stat st;

        assert_non_null(mkdtemp(dir));
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);

        /* No file yet: an empty registry. */
        assert_int_equal(peer_registry_load(fd, PEERS_FILE, &missing, &reason), 0);
        assert_int_equal(peer_registry_size(missing), 0);

        assert_int_equal(peer_registry_save(reg, fd, PEERS_FILE), 0);
        assert_int_equal(fstatat(fd, PEERS_FILE, &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(peer_registry_load(fd, PEERS_FILE, &loaded, &reason), 0);
        assert_int_equal(peer_registry_size(loaded), 3);
        encode_ok(reg, &a, &na);
        encode_ok(loaded, &b, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);

        /* A damaged file is an error, never an empty registry. */
        assert_int_equal(write_file_atomic_at(fd, PEERS_FILE, a, na - 2, 0600, 0), 0);
        PeerRegistry *bad = NULL;
        reason = NULL;
        assert_int_equal(peer_registry_load(fd, PEERS_FILE, &bad, &reason), -EBADMSG);
        assert_null(bad);
        assert_non_null(reason);

        assert_int_equal(unlinkat(fd, PEERS_FILE, 0), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void test_peek_issuer(void **state) {
        _cleanup_free_ uint8_t *payload = NULL, *token = NULL;
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        size_t payload_size = 0, token_size = 0;
        uint8_t kid[PEER_KID_SIZE], sig[COSE_ES256_SIG_SIZE] = {};
        char *iss = NULL;

        kid_make(kid, 0x22);
        TokenClaims claims = {
                .iss = URI_B, .aud = URI_A, .exp = 1764000600, .nbf = 1764000000, .iat = 1764000000,
                .task_id = "t", .owner = "o",
        };
        assert_int_equal(token_claims_encode(&claims, &payload, &payload_size), 0);
        assert_int_equal(cose_sign1_prepare(kid, sizeof(kid), NULL, payload, payload_size, &c), 0);
        assert_int_equal(cose_sign1_finish(c, sig, &token, &token_size), 0);

        /* The claim as stated (the signature is not looked at). */
        assert_int_equal(peer_token_peek_issuer(token, token_size, &iss), 0);
        assert_string_equal(iss, URI_B);
        free(iss);

        assert_int_equal(peer_token_peek_issuer(token, token_size - 1, &iss), -EBADMSG);
        assert_int_equal(peer_token_peek_issuer(payload, payload_size, &iss), -EBADMSG);
        assert_int_equal(peer_token_peek_issuer(NULL, 0, &iss), -EBADMSG);
}

/* A registry of PEERS_MAX peers: Skipped under memcheck (tests/lib/test-budget.h). */
static void test_limit(void **state) {
        if (test_under_valgrind())
                skip();
        limit_body(state);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_canonical_key),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_find_remove),
                cmocka_unit_test(test_corrupt),
                cmocka_unit_test(test_file),
                cmocka_unit_test(test_peek_issuer),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

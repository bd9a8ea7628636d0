/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OpenSSL 3 helpers (see crypto-util.h). Every function clears the OpenSSL error queue on failure so
 * a stale error never surfaces in a later, unrelated call.
 */

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/crypto-util.h"
#include "common/log.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(ECDSA_SIG *, ECDSA_SIG_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free);

/* OpenSSL allocated der: hand out a malloc() copy, since callers free() without knowing about
 * OPENSSL_free(). Consumes der. */
static int take_openssl_der(unsigned char *der, int len, uint8_t **ret, size_t *ret_size) {
        int r = memdup_sized(der, (size_t) len, ret, ret_size);
        OPENSSL_free(der);
        return r;
}

/* Empties OpenSSL's error queue. Returns whether an allocation failed (OpenSSL 3.0 raises
 * ERR_R_MALLOC_FAILURE for that) and the first error in *ret_first. */
static bool openssl_errors_drain(unsigned long *ret_first) {
        unsigned long e, first = 0;
        bool oom = false;

        while ((e = ERR_get_error()) != 0) {
                if (first == 0)
                        first = e;
                if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
                        oom = true;
        }
        if (ret_first)
                *ret_first = first;
        return oom;
}

/* error, or -ENOMEM when memory ran out inside OpenSSL: a valid key, point or signature must not be
 * called malformed because of that (found by tests/fuzz/alloc-fail.c). */
static int openssl_fail(int error, const char *what) {
        unsigned long e;
        bool oom = openssl_errors_drain(&e);

        log_debug("%s failed: %s", what, e ? ERR_reason_error_string(e) : "unknown error");
        return oom ? -ENOMEM : error;
}

int sha256_parts(const void *const *parts, const size_t *sizes, size_t n_parts, uint8_t ret[SHA256_DIGEST_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int len = 0;

        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return openssl_fail(-EIO, "EVP_DigestInit_ex");
        for (size_t i = 0; i < n_parts; i++)
                if (sizes[i] > 0 && EVP_DigestUpdate(ctx, parts[i], sizes[i]) != 1)
                        return openssl_fail(-EIO, "EVP_DigestUpdate");
        if (EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != SHA256_DIGEST_SIZE)
                return openssl_fail(-EIO, "EVP_DigestFinal_ex");
        return 0;
}

int sha256(const void *data, size_t size, uint8_t ret[SHA256_DIGEST_SIZE]) {
        return sha256_parts(&data, &size, 1, ret);
}

int sha256_fd(int fd, uint64_t max, uint8_t ret[SHA256_DIGEST_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t buf[64 * 1024];
        unsigned int len = 0;
        uint64_t total = 0;

        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return openssl_fail(-EIO, "EVP_DigestInit_ex");
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > max)
                        return -EFBIG;
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1)
                        return openssl_fail(-EIO, "EVP_DigestUpdate");
        }
        if (EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != SHA256_DIGEST_SIZE)
                return openssl_fail(-EIO, "EVP_DigestFinal_ex");
        return 0;
}

bool base64_is_char(uint8_t c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
               c == '=';
}

int base64_decode(const void *text, size_t size, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *clean = NULL, *out = NULL;
        const uint8_t *in = text;
        size_t n = 0;

        clean = malloc(size + 1);
        if (!clean)
                return -ENOMEM;
        for (size_t i = 0; i < size; i++) {
                if (in[i] == ' ' || in[i] == '\n' || in[i] == '\r' || in[i] == '\t')
                        continue;
                if (!base64_is_char(in[i]))
                        return -EINVAL;
                clean[n++] = in[i];
        }
        if (n == 0 || n % 4 != 0 || n > INT_MAX)
                return -EINVAL;
        out = malloc(n / 4 * 3);
        if (!out)
                return -ENOMEM;
        int k = EVP_DecodeBlock(out, clean, (int) n);
        if (k < 0)
                return -EINVAL;
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        size_t len = (size_t) k - (clean[n - 1] == '=') - (clean[n - 2] == '=');
        *ret = TAKE_PTR(out);
        *ret_size = len;
        return 0;
}

int random_bytes(void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = getrandom(p, n, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

bool memeq_secret(const void *a, const void *b, size_t n) {
        return CRYPTO_memcmp(a, b, n) == 0;
}

int ecdsa_raw_to_der(const uint8_t *raw, size_t coord_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
        _cleanup_(BN_freep) BIGNUM *r = NULL, *s = NULL;
        unsigned char *der = NULL;

        if (coord_size == 0 || coord_size > 66)
                return -EINVAL;
        sig = ECDSA_SIG_new();
        r = BN_bin2bn(raw, (int) coord_size, NULL);
        s = BN_bin2bn(raw + coord_size, (int) coord_size, NULL);
        if (!sig || !r || !s)
                return openssl_fail(-ENOMEM, "ECDSA_SIG_new");
        if (ECDSA_SIG_set0(sig, r, s) != 1)
                return openssl_fail(-EIO, "ECDSA_SIG_set0");
        r = s = NULL; /* owned by sig now */

        int len = i2d_ECDSA_SIG(sig, &der);
        if (len <= 0)
                return openssl_fail(-ENOMEM, "i2d_ECDSA_SIG");
        return take_openssl_der(der, len, ret, ret_size);
}

int ecdsa_der_to_raw(const uint8_t *der, size_t der_size, size_t coord_size, uint8_t *ret_raw) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
        const unsigned char *p = der;
        const BIGNUM *r, *s;
        unsigned char *reencoded = NULL;

        if (der_size == 0 || der_size > 256)
                return -EBADMSG;
        sig = d2i_ECDSA_SIG(NULL, &p, (long) der_size);
        if (!sig)
                return openssl_fail(-EBADMSG, "d2i_ECDSA_SIG");
        if ((size_t) (p - der) != der_size)
                return -EBADMSG;

        /* Strict DER: the canonical re-encoding must be byte-identical (no BER leniency). */
        int len = i2d_ECDSA_SIG(sig, &reencoded);
        bool same = len > 0 && (size_t) len == der_size && memcmp(reencoded, der, der_size) == 0;
        OPENSSL_free(reencoded);
        if (!same)
                return -EBADMSG;

        ECDSA_SIG_get0(sig, &r, &s);
        if (BN_is_negative(r) || BN_is_negative(s) || BN_bn2binpad(r, ret_raw, (int) coord_size) < 0 ||
            BN_bn2binpad(s, ret_raw + coord_size, (int) coord_size) < 0)
                return openssl_fail(-EBADMSG, "BN_bn2binpad");
        return 0;
}

int p256_pkey_from_xy(const uint8_t x[P256_COORD_SIZE], const uint8_t y[P256_COORD_SIZE], EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *check = NULL;
        EVP_PKEY *pkey = NULL;
        uint8_t point[1 + 2 * P256_COORD_SIZE];

        /* SEC 1 §2.3.3 uncompressed point: 0x04 || x || y. */
        point[0] = 0x04;
        memcpy(point + 1, x, P256_COORD_SIZE);
        memcpy(point + 1 + P256_COORD_SIZE, y, P256_COORD_SIZE);

        bld = OSSL_PARAM_BLD_new();
        if (!bld ||
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1)
                return openssl_fail(-ENOMEM, "OSSL_PARAM_BLD");
        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!params || !ctx)
                return openssl_fail(-ENOMEM, "EVP_PKEY_CTX_new_from_name");
        if (EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
                return openssl_fail(-EBADMSG, "EVP_PKEY_fromdata");

        /* fromdata does not insist the point is on the curve; a public-key check does. The quick check
         * (point at infinity, coordinates in range, on the curve) is the whole of SEC 1 §3.2.2.1 for
         * P-256: its cofactor is 1, so the full check's extra n·Q = O multiplication proves nothing
         * more and cost about as much as an ECDSA verification (docs/performance.md). */
        check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check || EVP_PKEY_public_check_quick(check) != 1) {
                EVP_PKEY_free(pkey);
                return openssl_fail(-EBADMSG, "EVP_PKEY_public_check");
        }
        *ret = pkey;
        return 0;
}

int p256_spki_to_xy(const uint8_t *der, size_t der_size, uint8_t x[P256_COORD_SIZE], uint8_t y[P256_COORD_SIZE]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        const unsigned char *p = der;
        uint8_t point[1 + 2 * P256_COORD_SIZE];
        char group[32];
        size_t n = 0;

        pkey = d2i_PUBKEY(NULL, &p, (long) der_size);
        if (!pkey || (size_t) (p - der) != der_size)
                return openssl_fail(-EBADMSG, "d2i_PUBKEY");
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
            !streq(group, "prime256v1"))
                return -EINVAL;
        /* SEC 1 §2.3.3 uncompressed point 04 || x || y. */
        if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &n) != 1 ||
            n != sizeof(point) || point[0] != 0x04)
                return openssl_fail(-EBADMSG, "EVP_PKEY_get_octet_string_param");
        memcpy(x, point + 1, P256_COORD_SIZE);
        memcpy(y, point + 1 + P256_COORD_SIZE, P256_COORD_SIZE);
        return 0;
}

int p256_pkey_canonical(EVP_PKEY *pkey, EVP_PKEY **ret, uint8_t x[P256_COORD_SIZE], uint8_t y[P256_COORD_SIZE]) {
        uint8_t point[1 + 2 * P256_COORD_SIZE];
        char group[32];
        size_t n = 0;
        int r;

        /* ES256 (RFC 9053 §2.1) is ECDSA on P-256 only. */
        if (EVP_PKEY_get_id(pkey) != EVP_PKEY_EC ||
            EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
            !streq(group, "prime256v1"))
                return openssl_fail(-EINVAL, "EVP_PKEY_get_utf8_string_param");
        /* The uncompressed point (SEC 1 §2.3.3) whatever form was decoded; infinity has none. */
        if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                           OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1 ||
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &n) != 1 ||
            n != sizeof(point) || point[0] != 0x04)
                return openssl_fail(-EINVAL, "EVP_PKEY_get_octet_string_param");
        memcpy(x, point + 1, P256_COORD_SIZE);
        memcpy(y, point + 1 + P256_COORD_SIZE, P256_COORD_SIZE);
        r = p256_pkey_from_xy(x, y, ret);
        return r == -ENOMEM ? r : r < 0 ? -EINVAL : 0;
}

int pkey_from_pem_or_der(const uint8_t *buf, size_t size, EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];

        if (size > INT_MAX)
                return -EINVAL;
        if (size > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
                BIO *bio = BIO_new_mem_buf(buf, (int) size);
                if (!bio)
                        return -ENOMEM;
                pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
                BIO_free(bio);
        } else {
                const unsigned char *p = buf;
                pkey = d2i_PUBKEY(NULL, &p, (long) size);
                if (pkey && (size_t) (p - buf) != size)
                        pkey = (EVP_PKEY_free(pkey), NULL);
        }
        ERR_clear_error();
        if (!pkey)
                return -EINVAL;
        return p256_pkey_canonical(pkey, ret, x, y);
}

int pkey_to_spki_der(EVP_PKEY *pkey, uint8_t **ret, size_t *ret_size) {
        unsigned char *der = NULL;
        int len = i2d_PUBKEY(pkey, &der);
        if (len <= 0)
                return openssl_fail(-EINVAL, "i2d_PUBKEY");
        return take_openssl_der(der, len, ret, ret_size);
}

void p256_spki_write(const uint8_t x[P256_COORD_SIZE], const uint8_t y[P256_COORD_SIZE],
                     uint8_t ret[P256_SPKI_DER_SIZE]) {
        /* RFC 5480 §2: SEQUENCE { SEQUENCE { id-ecPublicKey, secp256r1 }, BIT STRING { 04 || x || y } }. */
        static const uint8_t prefix[] = {
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        };

        _Static_assert(sizeof(prefix) + 2 * P256_COORD_SIZE == P256_SPKI_DER_SIZE, "P-256 SPKI size");
        memcpy(ret, prefix, sizeof(prefix));
        memcpy(ret + sizeof(prefix), x, P256_COORD_SIZE);
        memcpy(ret + sizeof(prefix) + P256_COORD_SIZE, y, P256_COORD_SIZE);
}

int p256_spki_from_xy(const uint8_t x[P256_COORD_SIZE], const uint8_t y[P256_COORD_SIZE], uint8_t **ret,
                      size_t *ret_size) {
        uint8_t *der = malloc(P256_SPKI_DER_SIZE);

        if (!der)
                return -ENOMEM;
        p256_spki_write(x, y, der);
        *ret = der;
        *ret_size = P256_SPKI_DER_SIZE;
        return 0;
}

int ecdsa_verify_digest(EVP_PKEY *pkey, const uint8_t digest[SHA256_DIGEST_SIZE], const uint8_t *der_sig,
                        size_t der_size) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

        if (!ctx)
                return openssl_fail(-ENOMEM, "EVP_PKEY_CTX_new_from_pkey");
        if (EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
                return openssl_fail(-EIO, "EVP_PKEY_verify_init");

        int r = EVP_PKEY_verify(ctx, der_sig, der_size, digest, SHA256_DIGEST_SIZE);
        if (r == 1)
                return 1;
        /* A negative result also stands for a malformed signature, so only an allocation failure inside
         * OpenSSL keeps this from being a verdict: a valid signature must not be reported as invalid
         * because memory ran out. */
        return openssl_errors_drain(NULL) ? -ENOMEM : 0;
}

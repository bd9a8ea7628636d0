/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Enrollment by credential activation, verifier side (see enroll.h; formats in docs/formats.md §7,
 * the maths in tpm-notes §2.4).
 *
 * Everything the TPM does in TPM2_MakeCredential is done here in software, with the *EK's* nameAlg and
 * symmetric definition (the TPM unwraps with those, Part 1 §24.4-§24.5), never the AK's: the two
 * differ for the P-384 high-range EK (SHA-384, AES-256) and a mix-up only shows as a TPM integrity
 * error. The EK public area is never taken from the host: it is rebuilt from the certified key and the
 * template of the TCG EK Credential Profile, so a host cannot point the challenge at a key of its own.
 */

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attest/enroll.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/macro.h"

/* A CA file: a few PEM certificates or one DER certificate. */
#define CA_FILE_MAX (256U * 1024U)

/* TPM_ECC_CURVE NIST P-384 (Part 2 §6.4). */
#define ECC_NIST_P384 0x0004U

/* EK templates (TCG EK Credential Profile 2.x §2.1.5; tpm-notes §2.2). */
#define EK_ATTRIBUTES_LOW 0x000300b2U   /* fixedTPM fixedParent sensitiveDataOrigin adminWithPolicy restricted decrypt */
#define EK_ATTRIBUTES_HIGH 0x000300f2U  /* the same + userWithAuth */

/* PolicyA (SHA-256): PolicySecret(TPM_RH_ENDORSEMENT). */
static const uint8_t policy_a_sha256[32] = {
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
        0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

/* PolicyB (SHA-384): PolicyOR{PolicyA-SHA384, PolicyC-SHA384}, the high-range templates' authPolicy. */
static const uint8_t policy_b_sha384[48] = {
        0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
        0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
        0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
};

/* Required of the AK (tpm-notes §2.1; the evidence verifier's ak_attributes check): a restricted
 * signing key that never leaves the TPM and was generated in it. */
#define AK_ATTRIBUTES_SET                                                                               \
        (TPM2P_OBJ_FIXEDTPM | TPM2P_OBJ_FIXEDPARENT | TPM2P_OBJ_SENSITIVEDATAORIGIN | TPM2P_OBJ_RESTRICTED | \
         TPM2P_OBJ_SIGN)
#define AK_ATTRIBUTES_CLEAR TPM2P_OBJ_DECRYPT

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free);

static void x509_stack_freep(STACK_OF(X509) **p) {
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}

static void secret_erase(uint8_t (*p)[ENROLL_SECRET_SIZE]) {
        erase(*p, sizeof(*p));
}

/* Zero the "secret" byte string inside a decoded or built state before the item is freed: libcbor does
 * not zero what it frees. */
static void cbor_secret_unrefp(cbor_item_t **p) {
        const uint8_t *b;
        size_t n;
        if (!*p)
                return;
        if (cbor_isa_map(*p) && cbor_util_get_bytes(cbor_util_map_get_text(*p, "secret"), &b, &n) >= 0)
                erase((void *) b, n);
        cbor_decref(p);
}

_printf_(3, 4) static int refuse(EnrollError *err, const char *check, const char *fmt, ...) {
        if (err) {
                va_list ap;
                err->check = check;
                va_start(ap, fmt);
                vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
                va_end(ap);
        }
        return -EKEYREJECTED;
}

_printf_(3, 4) static int malformed(EnrollError *err, const char *check, const char *fmt, ...) {
        if (err) {
                va_list ap;
                err->check = check;
                va_start(ap, fmt);
                vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

const char *enroll_ek_type_to_string(EnrollEkType t) {
        return t == ENROLL_EK_RSA ? "rsa" : t == ENROLL_EK_ECC ? "ecc" : NULL;
}

EnrollRequest *enroll_request_free(EnrollRequest *req) {
        if (!req)
                return NULL;
        free(req->ak_pub);
        free(req->ek_pub);
        free(req->ek_cert);
        return mfree(req);
}

void enroll_record_done(EnrollRecord *rec) {
        if (!rec)
                return;
        free(rec->ak_pub);
        free(rec->ek_cert);
        *rec = (EnrollRecord) {};
}

/* ---- hashes and KDFs -------------------------------------------------------------------------- */

static const char *hash_name(uint16_t alg) {
        switch (alg) {
        case TPM2P_ALG_SHA256:
                return "SHA256";
        case TPM2P_ALG_SHA384:
                return "SHA384";
        case TPM2P_ALG_SHA512:
                return "SHA512";
        default:
                return NULL;
        }
}

static size_t hash_size(uint16_t alg) {
        switch (alg) {
        case TPM2P_ALG_SHA256:
                return 32;
        case TPM2P_ALG_SHA384:
                return 48;
        case TPM2P_ALG_SHA512:
                return 64;
        default:
                return 0;
        }
}

static void put_u32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

/*
 * KDFa (Part 1 §11.4.10.2, SP 800-108 counter mode with HMAC):
 *   K(i) = HMAC_h(key, [i]32 || label || 00 || contextU || contextV || [bits]32), output the first bits.
 * Labels here are "STORAGE" and "INTEGRITY"; bits is a multiple of 8.
 */
static int kdfa(uint16_t alg, const uint8_t *key, size_t key_size, const char *label, const uint8_t *u, size_t u_size,
                const uint8_t *v, size_t v_size, size_t bits, uint8_t *out) {
        const char *md = hash_name(alg);
        size_t h = hash_size(alg), label_size = strlen(label) + 1, n, off = 0;
        _cleanup_free_ uint8_t *msg = NULL;
        uint8_t block[64];

        if (!md || bits == 0 || bits % 8 != 0)
                return -EINVAL;
        n = 4 + label_size + u_size + v_size + 4;
        msg = malloc(n);
        if (!msg)
                return -ENOMEM;
        memcpy(msg + 4, label, label_size);     /* with its terminating NUL */
        if (u_size)
                memcpy(msg + 4 + label_size, u, u_size);
        if (v_size)
                memcpy(msg + 4 + label_size + u_size, v, v_size);
        put_u32(msg + n - 4, (uint32_t) bits);

        for (uint32_t i = 1; off < bits / 8; i++) {
                size_t got = 0;
                put_u32(msg, i);
                if (!EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, key, key_size, msg, n, block, sizeof(block), &got) ||
                    got != h) {
                        ERR_clear_error();
                        return -EIO;
                }
                size_t take = MIN(h, bits / 8 - off);
                memcpy(out + off, block, take);
                off += take;
        }
        erase(block, sizeof(block));
        return 0;
}

/*
 * KDFe (Part 1 §11.4.10.3, SP 800-56A concatenation KDF):
 *   K(i) = H([i]32 || Z || label || 00 || partyU || partyV), output the first bits.
 */
static int kdfe(uint16_t alg, const uint8_t *z, size_t z_size, const char *label, const uint8_t *u, size_t u_size,
                const uint8_t *v, size_t v_size, size_t bits, uint8_t *out) {
        const EVP_MD *md = EVP_get_digestbyname(hash_name(alg) ?: "");
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t h = hash_size(alg), off = 0;
        uint8_t block[64], counter[4];

        if (!md || bits == 0 || bits % 8 != 0)
                return -EINVAL;
        if (!ctx)
                return -ENOMEM;
        for (uint32_t i = 1; off < bits / 8; i++) {
                put_u32(counter, i);
                if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, counter, 4) ||
                    !EVP_DigestUpdate(ctx, z, z_size) || !EVP_DigestUpdate(ctx, label, strlen(label) + 1) ||
                    !EVP_DigestUpdate(ctx, u, u_size) || !EVP_DigestUpdate(ctx, v, v_size) ||
                    !EVP_DigestFinal_ex(ctx, block, NULL)) {
                        ERR_clear_error();
                        return -EIO;
                }
                size_t take = MIN(h, bits / 8 - off);
                memcpy(out + off, block, take);
                off += take;
        }
        erase(block, sizeof(block));
        return 0;
}

/* ---- marshalling ------------------------------------------------------------------------------ */

typedef struct Writer {
        uint8_t buf[ENROLL_EK_PUB_MAX];
        size_t off;
        bool overflow;
} Writer;

static void w_bytes(Writer *w, const void *p, size_t n) {
        if (w->overflow || n > sizeof(w->buf) - w->off) {
                w->overflow = true;
                return;
        }
        if (n)
                memcpy(w->buf + w->off, p, n);
        w->off += n;
}

static void w_u16(Writer *w, uint16_t v) {
        uint8_t b[2] = { (uint8_t) (v >> 8), (uint8_t) v };
        w_bytes(w, b, 2);
}

static void w_u32(Writer *w, uint32_t v) {
        uint8_t b[4];
        put_u32(b, v);
        w_bytes(w, b, 4);
}

static void w_tpm2b(Writer *w, const void *p, size_t n) {
        w_u16(w, (uint16_t) n);
        w_bytes(w, p, n);
}

/* A big number as exactly n big-endian bytes. */
static int bn_param(EVP_PKEY *pkey, const char *param, uint8_t *out, size_t n) {
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        if (!EVP_PKEY_get_bn_param(pkey, param, &bn) || BN_bn2binpad(bn, out, (int) n) != (int) n) {
                ERR_clear_error();
                return -EIO;
        }
        return 0;
}

int enroll_ek_public_from_cert(X509 *cert, EnrollEkType *ret_type, uint8_t **ret, size_t *ret_size) {
        EVP_PKEY *pkey;         /* borrowed from cert */
        Writer w = {};
        EnrollEkType type;
        int r;

        if (!cert || !ret_type || !ret || !ret_size)
                return -EINVAL;
        pkey = X509_get0_pubkey(cert);
        if (!pkey) {
                ERR_clear_error();
                return -EOPNOTSUPP;
        }

        if (EVP_PKEY_is_a(pkey, "RSA")) {
                /* L-1: RSA-2048, exponent 65537 (marshalled as 0, the default, Part 2 §12.2.3.5). */
                uint8_t n[256], e[4];
                if (EVP_PKEY_get_bits(pkey) != 2048)
                        return -EOPNOTSUPP;
                r = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n));
                if (r < 0)
                        return r;
                r = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, e, sizeof(e));
                if (r < 0)
                        return r;
                if (memcmp(e, (const uint8_t[]) { 0, 1, 0, 1 }, 4) != 0)
                        return -EOPNOTSUPP;
                type = ENROLL_EK_RSA;
                w_u16(&w, TPM2P_ALG_RSA);
                w_u16(&w, TPM2P_ALG_SHA256);
                w_u32(&w, EK_ATTRIBUTES_LOW);
                w_tpm2b(&w, policy_a_sha256, sizeof(policy_a_sha256));
                w_u16(&w, TPM2P_ALG_AES);
                w_u16(&w, 128);
                w_u16(&w, TPM2P_ALG_CFB);
                w_u16(&w, TPM2P_ALG_NULL);      /* scheme */
                w_u16(&w, 2048);                /* keyBits */
                w_u32(&w, 0);                   /* exponent */
                w_tpm2b(&w, n, sizeof(n));
        } else if (EVP_PKEY_is_a(pkey, "EC")) {
                char group[64];
                uint8_t x[48], y[48];
                size_t coord;
                bool p384;

                if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL)) {
                        ERR_clear_error();
                        return -EOPNOTSUPP;
                }
                if (streq(group, "prime256v1") || streq(group, "P-256"))
                        p384 = false;
                else if (streq(group, "secp384r1") || streq(group, "P-384"))
                        p384 = true;
                else
                        return -EOPNOTSUPP;
                coord = p384 ? 48 : 32;
                r = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, x, coord);
                if (r < 0)
                        return r;
                r = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, y, coord);
                if (r < 0)
                        return r;
                type = ENROLL_EK_ECC;
                /* L-2 (P-256, SHA-256, AES-128) or H-3 (P-384, SHA-384, AES-256, userWithAuth, PolicyB). */
                w_u16(&w, TPM2P_ALG_ECC);
                w_u16(&w, p384 ? TPM2P_ALG_SHA384 : TPM2P_ALG_SHA256);
                w_u32(&w, p384 ? EK_ATTRIBUTES_HIGH : EK_ATTRIBUTES_LOW);
                if (p384)
                        w_tpm2b(&w, policy_b_sha384, sizeof(policy_b_sha384));
                else
                        w_tpm2b(&w, policy_a_sha256, sizeof(policy_a_sha256));
                w_u16(&w, TPM2P_ALG_AES);
                w_u16(&w, p384 ? 256 : 128);
                w_u16(&w, TPM2P_ALG_CFB);
                w_u16(&w, TPM2P_ALG_NULL);      /* scheme */
                w_u16(&w, p384 ? ECC_NIST_P384 : TPM2P_ECC_NIST_P256);
                w_u16(&w, TPM2P_ALG_NULL);      /* kdf */
                w_tpm2b(&w, x, coord);
                w_tpm2b(&w, y, coord);
        } else
                return -EOPNOTSUPP;

        if (w.overflow)
                return -EIO;
        r = memdup_sized(w.buf, w.off, ret, ret_size);
        if (r < 0)
                return r;
        *ret_type = type;
        return 0;
}

/* Name = nameAlg || H_nameAlg(TPMT_PUBLIC) (Part 1 §16), for any of our hashes. */
static int public_name(uint16_t name_alg, const uint8_t *pub, size_t size, uint8_t *ret, size_t *ret_size) {
        const EVP_MD *md = EVP_get_digestbyname(hash_name(name_alg) ?: "");
        unsigned n = 0;

        if (!md)
                return -EOPNOTSUPP;
        ret[0] = (uint8_t) (name_alg >> 8);
        ret[1] = (uint8_t) name_alg;
        if (!EVP_Digest(pub, size, ret + 2, &n, md, NULL)) {
                ERR_clear_error();
                return -EIO;
        }
        *ret_size = 2 + n;
        return 0;
}

/* ---- MakeCredential --------------------------------------------------------------------------- */

/* RSA EK (Part 1 Annex B.10.3): seed = random(|digest|), encrypted with RSA-OAEP using the EK's nameAlg
 * for the hash and MGF1 and the label "IDENTITY" with its NUL. */
static int seed_rsa(const Tpm2Public *ek, uint8_t *seed, size_t seed_size, uint8_t **ret_enc, size_t *ret_enc_size) {
        static const char label[] = "IDENTITY";
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL, *fctx = NULL;
        _cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        OSSL_PARAM params[3];
        _cleanup_free_ uint8_t *nbuf = NULL, *ebuf = NULL;
        const char *md = hash_name(ek->name_alg);
        size_t out_size = 0;
        int r;

        if (!md)
                return -EOPNOTSUPP;
        r = random_bytes(seed, seed_size);
        if (r < 0)
                return r;

        n = BN_bin2bn(ek->modulus.buffer, ek->modulus.size, NULL);
        e = BN_new();
        if (!n || !e || !BN_set_word(e, ek->exponent ?: 65537))
                return -ENOMEM;
        /* OSSL_PARAM wants native-endian integers. */
        size_t nlen = (size_t) BN_num_bytes(n), elen = (size_t) BN_num_bytes(e);
        nbuf = malloc(nlen);
        ebuf = malloc(elen);
        if (!nbuf || !ebuf)
                return -ENOMEM;
        if (BN_bn2nativepad(n, nbuf, (int) nlen) < 0 || BN_bn2nativepad(e, ebuf, (int) elen) < 0)
                return -EIO;
        params[0] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, nbuf, nlen);
        params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, ebuf, elen);
        params[2] = OSSL_PARAM_construct_end();
        fctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        if (!fctx || EVP_PKEY_fromdata_init(fctx) <= 0 ||
            EVP_PKEY_fromdata(fctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
                goto ossl;

        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!ctx || EVP_PKEY_encrypt_init(ctx) <= 0 || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) <= 0)
                goto ossl;
        /* set0 takes ownership of an OPENSSL_malloc'd label. */
        void *l = OPENSSL_memdup(label, sizeof(label));
        if (!l)
                return -ENOMEM;
        if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int) sizeof(label)) <= 0) {
                OPENSSL_free(l);
                goto ossl;
        }
        if (EVP_PKEY_encrypt(ctx, NULL, &out_size, seed, seed_size) <= 0)
                goto ossl;
        out = malloc(out_size);
        if (!out)
                return -ENOMEM;
        if (EVP_PKEY_encrypt(ctx, out, &out_size, seed, seed_size) <= 0)
                goto ossl;
        *ret_enc = TAKE_PTR(out);
        *ret_enc_size = out_size;
        return 0;
ossl:
        ERR_clear_error();
        return -EIO;
}

/* ECC EK (Part 1 Annex C.6.4, §11.4.10.3): an ephemeral key Qe on the EK's curve, Z = x([de]Qek),
 * seed = KDFe(nameAlg, Z, "IDENTITY", Qe.x, Qek.x, |digest|); the TPM gets Qe as a TPMS_ECC_POINT. */
static int seed_ecc(const Tpm2Public *ek, uint8_t *seed, size_t seed_size, uint8_t **ret_enc, size_t *ret_enc_size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *peer = NULL, *eph = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *fctx = NULL, *dctx = NULL;
        uint8_t point[1 + 2 * 66], z[66], ex[66], ey[66];
        const char *group;
        size_t coord, z_size = sizeof(z);
        Writer w = {};
        int r;

        if (ek->curve_id == TPM2P_ECC_NIST_P256) {
                group = "P-256";
                coord = 32;
        } else if (ek->curve_id == ECC_NIST_P384) {
                group = "P-384";
                coord = 48;
        } else
                return -EOPNOTSUPP;
        if (ek->x.size != coord || ek->y.size != coord)
                return -EOPNOTSUPP;

        /* The EK's public key, validated on the curve by OpenSSL when it is imported. */
        point[0] = 0x04;
        memcpy(point + 1, ek->x.buffer, coord);
        memcpy(point + 1 + coord, ek->y.buffer, coord);
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *) group, 0),
                OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord),
                OSSL_PARAM_construct_end(),
        };
        fctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!fctx || EVP_PKEY_fromdata_init(fctx) <= 0 ||
            EVP_PKEY_fromdata(fctx, &peer, EVP_PKEY_PUBLIC_KEY, params) <= 0)
                goto ossl;

        eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
        if (!eph)
                goto ossl;
        r = bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_X, ex, coord);
        if (r < 0)
                return r;
        r = bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_Y, ey, coord);
        if (r < 0)
                return r;

        /* OpenSSL's ECDH output is the x-coordinate of the shared point, padded to the field size. */
        dctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
        if (!dctx || EVP_PKEY_derive_init(dctx) <= 0 || EVP_PKEY_derive_set_peer(dctx, peer) <= 0 ||
            EVP_PKEY_derive(dctx, z, &z_size) <= 0 || z_size != coord)
                goto ossl;

        r = kdfe(ek->name_alg, z, z_size, "IDENTITY", ex, coord, ek->x.buffer, coord, seed_size * 8, seed);
        erase(z, sizeof(z));
        if (r < 0)
                return r;

        w_tpm2b(&w, ex, coord);
        w_tpm2b(&w, ey, coord);
        return memdup_sized(w.buf, w.off, ret_enc, ret_enc_size);
ossl:
        ERR_clear_error();
        return -EIO;
}

int enroll_make_credential(const uint8_t *ek_pub, size_t ek_pub_size, const uint8_t *name, size_t name_size,
                           const uint8_t *secret, size_t secret_size, uint8_t **ret_blob, size_t *ret_blob_size,
                           uint8_t **ret_enc_secret, size_t *ret_enc_secret_size) {
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *cctx = NULL;
        _cleanup_free_ uint8_t *enc = NULL, *blob = NULL, *mac_input = NULL, *wrapped = NULL, *enc_out = NULL;
        uint8_t seed[64], sym_key[32], hmac_key[64], hmac[64], iv[16] = {}, plain[2 + 64];
        size_t enc_size = 0, h, blob_size, sym_bytes;
        const EVP_CIPHER *cipher;
        Tpm2Public ek;
        int r, k = 0, k2 = 0;

        if (!ek_pub || !name || name_size == 0 || name_size > TPM2P_NAME_MAX || !secret || secret_size == 0 ||
            !ret_blob || !ret_blob_size || !ret_enc_secret || !ret_enc_secret_size)
                return -EINVAL;
        r = tpm2_public_parse(ek_pub, ek_pub_size, &ek);
        if (r < 0)
                return -EINVAL;
        h = hash_size(ek.name_alg);
        if (h == 0)
                return -EOPNOTSUPP;
        if (secret_size > h)
                return -EINVAL;
        /* The EK's symmetric definition protects the credential (Part 1 §24.4): AES-CFB only. */
        if (ek.symmetric.algorithm != TPM2P_ALG_AES || ek.symmetric.mode != TPM2P_ALG_CFB)
                return -EOPNOTSUPP;
        if (ek.symmetric.key_bits == 128)
                cipher = EVP_aes_128_cfb128();
        else if (ek.symmetric.key_bits == 256)
                cipher = EVP_aes_256_cfb128();
        else
                return -EOPNOTSUPP;
        sym_bytes = ek.symmetric.key_bits / 8;

        /* The seed, |digest(ekNameAlg)| bytes, shared with the EK's private key. */
        if (ek.type == TPM2P_ALG_RSA)
                r = seed_rsa(&ek, seed, h, &enc, &enc_size);
        else if (ek.type == TPM2P_ALG_ECC)
                r = seed_ecc(&ek, seed, h, &enc, &enc_size);
        else
                r = -EOPNOTSUPP;
        if (r < 0)
                goto finish;

        /* Part 1 §24.4: symKey = KDFa(ekNameAlg, seed, "STORAGE", Name(AK), "", ekSymKeyBits). */
        r = kdfa(ek.name_alg, seed, h, "STORAGE", name, name_size, NULL, 0, sym_bytes * 8, sym_key);
        if (r < 0)
                goto finish;
        /* encIdentity = CFB(symKey, IV 0, TPM2B_DIGEST(secret)): the marshalled size goes in too. */
        plain[0] = (uint8_t) (secret_size >> 8);
        plain[1] = (uint8_t) secret_size;
        memcpy(plain + 2, secret, secret_size);
        wrapped = malloc(2 + secret_size);
        cctx = EVP_CIPHER_CTX_new();
        if (!wrapped || !cctx) {
                r = -ENOMEM;
                goto finish;
        }
        if (!EVP_EncryptInit_ex(cctx, cipher, NULL, sym_key, iv) ||
            !EVP_EncryptUpdate(cctx, wrapped, &k, plain, (int) (2 + secret_size)) ||
            !EVP_EncryptFinal_ex(cctx, wrapped + k, &k2) || (size_t) (k + k2) != 2 + secret_size) {
                ERR_clear_error();
                r = -EIO;
                goto finish;
        }

        /* Part 1 §24.5: hmacKey = KDFa(ekNameAlg, seed, "INTEGRITY", "", "", |digest|),
         * outerHMAC = HMAC(hmacKey, encIdentity || Name(AK)). */
        r = kdfa(ek.name_alg, seed, h, "INTEGRITY", NULL, 0, NULL, 0, h * 8, hmac_key);
        if (r < 0)
                goto finish;
        mac_input = malloc(2 + secret_size + name_size);
        if (!mac_input) {
                r = -ENOMEM;
                goto finish;
        }
        memcpy(mac_input, wrapped, 2 + secret_size);
        memcpy(mac_input + 2 + secret_size, name, name_size);
        size_t got = 0;
        if (!EVP_Q_mac(NULL, "HMAC", NULL, hash_name(ek.name_alg), NULL, hmac_key, h, mac_input,
                       2 + secret_size + name_size, hmac, sizeof(hmac), &got) || got != h) {
                ERR_clear_error();
                r = -EIO;
                goto finish;
        }

        /* TPM2B_ID_OBJECT: u16 size || TPM2B_DIGEST(outerHMAC) || encIdentity (no size of its own). */
        blob_size = 2 + 2 + h + 2 + secret_size;
        blob = malloc(blob_size);
        enc_out = malloc(2 + enc_size);
        if (!blob || !enc_out) {
                r = -ENOMEM;
                goto finish;
        }
        blob[0] = (uint8_t) ((blob_size - 2) >> 8);
        blob[1] = (uint8_t) (blob_size - 2);
        blob[2] = (uint8_t) (h >> 8);
        blob[3] = (uint8_t) h;
        memcpy(blob + 4, hmac, h);
        memcpy(blob + 4 + h, wrapped, 2 + secret_size);
        /* TPM2B_ENCRYPTED_SECRET: u16 size || the OAEP ciphertext or the marshalled TPMS_ECC_POINT. */
        enc_out[0] = (uint8_t) (enc_size >> 8);
        enc_out[1] = (uint8_t) enc_size;
        memcpy(enc_out + 2, enc, enc_size);

        *ret_blob = TAKE_PTR(blob);
        *ret_blob_size = blob_size;
        *ret_enc_secret = TAKE_PTR(enc_out);
        *ret_enc_secret_size = 2 + enc_size;
        r = 0;
finish:
        erase(seed, sizeof(seed));
        erase(sym_key, sizeof(sym_key));
        erase(hmac_key, sizeof(hmac_key));
        erase(plain, sizeof(plain));
        if (wrapped)
                erase(wrapped, 2 + secret_size);
        return r;
}

/* ---- the EK certificate ----------------------------------------------------------------------- */

/* Critical extensions of an EK certificate (TCG EK Credential Profile §3.2) that OpenSSL does not
 * process. The critical SAN (swtpm and several vendors mark it so; it holds a directoryName of TPM
 * manufacturer, model and version) is one OpenSSL knows, so it passes as is. Subject Directory
 * Attributes (the TPM specification level) is not known to OpenSSL: it is descriptive and constrains
 * nothing, so the EK certificate may mark it critical. Any other unhandled critical extension, or one
 * in a CA certificate, still fails the chain. */
static bool ek_extension_ok(X509 *cert) {
        for (int i = 0; i < X509_get_ext_count(cert); i++) {
                X509_EXTENSION *ext = X509_get_ext(cert, i);
                if (!X509_EXTENSION_get_critical(ext) || X509_supported_extension(ext))
                        continue;
                if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_directory_attributes)
                        return false;
        }
        return true;
}

static int verify_callback(int ok, X509_STORE_CTX *ctx) {
        if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION &&
            X509_STORE_CTX_get_error_depth(ctx) == 0 && ek_extension_ok(X509_STORE_CTX_get_current_cert(ctx))) {
                X509_STORE_CTX_set_error(ctx, X509_V_OK);
                return 1;
        }
        return ok;
}

/* Certificates from one file: PEM (any number) or DER (one). */
static int load_certs(const char *path, STACK_OF(X509) *out, EnrollError *err) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r, n = 0;

        r = read_file_or_stdin(path, CA_FILE_MAX, &buf, &size);
        if (r < 0) {
                if (err) {
                        err->check = "ek_ca";
                        snprintf(err->detail, sizeof(err->detail), "cannot read %s: %s", path, strerror(-r));
                }
                return r;
        }
        if (size > 10 && memmem(buf, size, "-----BEGIN", 10)) {
                _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(buf, (int) size);
                if (!bio)
                        return -ENOMEM;
                for (;;) {
                        X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                        if (!c)
                                break;
                        if (!sk_X509_push(out, c)) {
                                X509_free(c);
                                return -ENOMEM;
                        }
                        n++;
                }
                ERR_clear_error();      /* the end of the PEM data is reported as an error */
        } else {
                const unsigned char *p = buf;
                X509 *c = d2i_X509(NULL, &p, (long) size);
                if (c && (size_t) (p - buf) == size) {
                        if (!sk_X509_push(out, c)) {
                                X509_free(c);
                                return -ENOMEM;
                        }
                        n++;
                } else
                        X509_free(c);
                ERR_clear_error();
        }
        if (n == 0) {
                if (err) {
                        err->check = "ek_ca";
                        snprintf(err->detail, sizeof(err->detail), "%s holds no certificate (PEM or DER)", path);
                }
                return -EINVAL;
        }
        return 0;
}

/* The EK certificate must chain to a self-signed CA certificate from the files, through any of the
 * others; the verification time is now. No purpose is required: EK certificates carry the TCG EKU
 * (2.23.133.8.1), which OpenSSL's purposes do not know. */
static int check_chain(X509 *leaf, const char *const *ca_files, size_t n_ca_files, EnrollError *err) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *all = sk_X509_new_null(), *untrusted = sk_X509_new_null();
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        size_t n_roots = 0;
        int r;

        if (!all || !untrusted || !store || !ctx)
                return -ENOMEM;
        for (size_t i = 0; i < n_ca_files; i++) {
                r = load_certs(ca_files[i], all, err);
                if (r < 0)
                        return r;
        }
        while (sk_X509_num(all) > 0) {
                X509 *c = sk_X509_shift(all);
                /* Self-signed (issuer = subject and the signature verifies): a root, trusted. */
                if (X509_self_signed(c, 1) == 1) {
                        if (!X509_STORE_add_cert(store, c)) {
                                X509_free(c);
                                ERR_clear_error();
                                continue;       /* the same root given twice */
                        }
                        X509_free(c);   /* the store holds its own reference */
                        n_roots++;
                } else if (!sk_X509_push(untrusted, c)) {
                        X509_free(c);
                        return -ENOMEM;
                }
        }
        ERR_clear_error();
        if (n_roots == 0) {
                if (err) {
                        err->check = "ek_ca";
                        snprintf(err->detail, sizeof(err->detail), "no self-signed root among the --ek-ca certificates");
                }
                return -EINVAL;
        }
        X509_STORE_set_verify_cb(store, verify_callback);
        if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted)) {
                ERR_clear_error();
                return -ENOMEM;
        }
        r = X509_verify_cert(ctx);
        if (r != 1) {
                int e = X509_STORE_CTX_get_error(ctx);
                ERR_clear_error();
                return refuse(err, "ek_certificate", "EK certificate does not chain to a given CA: %s (depth %d)",
                              X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(ctx));
        }
        return 0;
}

/* ---- the AK ----------------------------------------------------------------------------------- */

static int check_ak(const uint8_t *pub, size_t size, uint8_t name[ENROLL_AK_NAME_SIZE], EnrollError *err) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        Tpm2Public p;
        int r;

        if (tpm2_public_parse(pub, size, &p) < 0)
                return refuse(err, "ak_attributes", "ak_pub does not unmarshal as a TPMT_PUBLIC");
        /* The same requirements as the evidence verifier's ak_attributes (docs/verifier.md): a record
         * for an AK that evidence would refuse is of no use. */
        if (p.type != TPM2P_ALG_ECC || p.curve_id != TPM2P_ECC_NIST_P256)
                return refuse(err, "ak_attributes", "AK is not an ECC NIST P-256 key");
        if (p.scheme.scheme != TPM2P_ALG_ECDSA || p.scheme.hash_alg != TPM2P_ALG_SHA256)
                return refuse(err, "ak_attributes", "AK scheme 0x%04x/0x%04x, not ECDSA-SHA256", p.scheme.scheme,
                              p.scheme.hash_alg);
        if (p.name_alg != TPM2P_ALG_SHA256)
                return refuse(err, "ak_attributes", "AK nameAlg 0x%04x, not SHA-256", p.name_alg);
        if ((p.attributes & AK_ATTRIBUTES_SET) != AK_ATTRIBUTES_SET || (p.attributes & AK_ATTRIBUTES_CLEAR))
                return refuse(err, "ak_attributes",
                              "AK attributes 0x%08x: need fixedTPM, fixedParent, sensitiveDataOrigin, restricted, "
                              "sign set and decrypt clear", p.attributes);
        r = tpm2_public_to_pkey(&p, NULL, &pkey);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return refuse(err, "ak_attributes", "AK public point is not on P-256");
        r = tpm2_public_name(&p, pub, size, name);
        if (r < 0)
                return r == -ENOMEM ? r : -EIO;
        return 0;
}

/* ---- documents -------------------------------------------------------------------------------- */

static bool host_id_valid(const char *s, size_t n) {
        if (n != ENROLL_HOST_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static bool text_is(const cbor_item_t *item, const char *want) {
        const char *s;
        size_t n;
        return cbor_util_get_text(item, &s, &n) >= 0 && n == strlen(want) && memcmp(s, want, n) == 0;
}

static bool version_is_1(const cbor_item_t *map) {
        uint64_t v;
        return cbor_util_get_uint(cbor_util_map_get_text(map, "v"), &v) >= 0 && v == 1;
}

static int get_bytes_bounded(const cbor_item_t *map, const char *key, size_t min, size_t max, const uint8_t **ret,
                             size_t *ret_size) {
        if (cbor_util_get_bytes(cbor_util_map_get_text(map, key), ret, ret_size) < 0 || *ret_size < min ||
            *ret_size > max)
                return -EBADMSG;
        return 0;
}

static int get_host_id(const cbor_item_t *map, char ret[ENROLL_HOST_ID_LEN + 1]) {
        const char *s;
        size_t n;
        if (cbor_util_get_text(cbor_util_map_get_text(map, "host_id"), &s, &n) < 0 || !host_id_valid(s, n))
                return -EBADMSG;
        memcpy(ret, s, n);
        ret[n] = 0;
        return 0;
}

static int decode_doc(const uint8_t *buf, size_t size, size_t max_items, unsigned depth, cbor_item_t **ret) {
        const CborLimits limits = {
                .max_size = ENROLL_DOCUMENT_MAX,
                .max_depth = depth,
                .max_items = max_items,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        int r = cbor_util_decode(buf, size, &limits, ret, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(*ret))
                return -EBADMSG;
        return 0;
}

int enroll_check_request(const uint8_t *buf, size_t size, const char *const *ca_files, size_t n_ca_files,
                         EnrollRequest **ret, EnrollError *err) {
        static const char *const keys[] = { "v", "type", "host_id", "ak_pub", "ek" };
        static const char *const ek_keys[] = { "alg", "pub", "cert" };
        _cleanup_(enroll_request_freep) EnrollRequest *req = NULL;
        _cleanup_cbor_ cbor_item_t *map = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        const uint8_t *ak_pub, *ek_pub, *ek_cert;
        size_t ak_pub_size, ek_pub_size, ek_cert_size;
        const cbor_item_t *ek;
        EnrollEkType claimed;
        int r;

        if ((!buf && size > 0) || (!ca_files && n_ca_files > 0) || !ret)
                return -EINVAL;
        if (n_ca_files == 0)
                return malformed(err, "ek_ca", "no CA certificate given"), -EINVAL;

        /* Untrusted CBOR: validated (deterministic, bounded) before libcbor sees it (DESIGN §4). */
        r = decode_doc(buf, size, 32, 2, &map);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return malformed(err, "format", "request is not a deterministic CBOR map of at most %u bytes",
                                 ENROLL_DOCUMENT_MAX);
        if (cbor_util_map_check_text_keys(map, keys, ELEMENTSOF(keys), NULL) < 0 || !version_is_1(map) ||
            !text_is(cbor_util_map_get_text(map, "type"), "enroll-request"))
                return malformed(err, "format", "not an enroll-request v1 (keys v, type, host_id, ak_pub, ek)");
        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        if (get_host_id(map, req->host_id) < 0)
                return malformed(err, "format", "\"host_id\" is not 32 lower-case hex digits");
        if (get_bytes_bounded(map, "ak_pub", 1, ENROLL_AK_PUB_MAX, &ak_pub, &ak_pub_size) < 0)
                return malformed(err, "format", "\"ak_pub\" is not a byte string of 1..%u bytes", ENROLL_AK_PUB_MAX);
        ek = cbor_util_map_get_text(map, "ek");
        if (!ek || !cbor_isa_map(ek) || cbor_util_map_check_text_keys(ek, ek_keys, ELEMENTSOF(ek_keys), NULL) < 0)
                return malformed(err, "format", "\"ek\" is not a map of alg, pub, cert");
        if (text_is(cbor_util_map_get_text(ek, "alg"), "rsa"))
                claimed = ENROLL_EK_RSA;
        else if (text_is(cbor_util_map_get_text(ek, "alg"), "ecc"))
                claimed = ENROLL_EK_ECC;
        else
                return malformed(err, "format", "\"ek\".\"alg\" is not \"rsa\" or \"ecc\"");
        if (get_bytes_bounded(ek, "pub", 1, ENROLL_EK_PUB_MAX, &ek_pub, &ek_pub_size) < 0 ||
            get_bytes_bounded(ek, "cert", 1, ENROLL_EK_CERT_MAX, &ek_cert, &ek_cert_size) < 0)
                return malformed(err, "format", "\"ek\".\"pub\" (1..%u bytes) or \"cert\" (1..%u bytes) missing",
                                 ENROLL_EK_PUB_MAX, ENROLL_EK_CERT_MAX);

        /* The EK certificate: strict DER, nothing after it, chaining to a given CA. */
        const unsigned char *p = ek_cert;
        cert = d2i_X509(NULL, &p, (long) ek_cert_size);
        if (!cert || (size_t) (p - ek_cert) != ek_cert_size) {
                ERR_clear_error();
                return refuse(err, "ek_certificate", "\"ek\".\"cert\" is not a DER X.509 certificate");
        }
        r = check_chain(cert, ca_files, n_ca_files, err);
        if (r < 0)
                return r;
        X509_NAME_oneline(X509_get_subject_name(cert), req->ek_subject, sizeof(req->ek_subject));

        /* The EK public area: rebuilt from the certified key and the standard template. The host's copy is
         * only compared: a TPM's EK made from that template is exactly this area (TCG EK Credential
         * Profile §2.1.5), so a difference means the host reports another key. */
        r = enroll_ek_public_from_cert(cert, &req->ek_type, &req->ek_pub, &req->ek_pub_size);
        if (r == -ENOMEM)
                return r;
        if (r == -EOPNOTSUPP)
                return refuse(err, "ek_public",
                              "EK certificate key is not RSA-2048 (e=65537), ECC P-256 or ECC P-384 "
                              "(templates L-1, L-2, H-3)");
        if (r < 0)
                return r;
        if (req->ek_type != claimed)
                return refuse(err, "ek_public", "\"ek\".\"alg\" is \"%s\" but the certificate holds an %s key",
                              enroll_ek_type_to_string(claimed), enroll_ek_type_to_string(req->ek_type));
        if (ek_pub_size != req->ek_pub_size || memcmp(ek_pub, req->ek_pub, ek_pub_size) != 0)
                return refuse(err, "ek_public",
                              "the host's EK public area differs from the one rebuilt from the certificate");
        Tpm2Public ek_parsed;
        if (tpm2_public_parse(req->ek_pub, req->ek_pub_size, &ek_parsed) < 0)
                return -EIO;
        r = public_name(ek_parsed.name_alg, req->ek_pub, req->ek_pub_size, req->ek_name, &req->ek_name_size);
        if (r < 0)
                return r;

        r = check_ak(ak_pub, ak_pub_size, req->ak_name, err);
        if (r < 0)
                return r;

        r = memdup_sized(ak_pub, ak_pub_size, &req->ak_pub, &req->ak_pub_size);
        if (r < 0)
                return r;
        r = memdup_sized(ek_cert, ek_cert_size, &req->ek_cert, &req->ek_cert_size);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(req);
        return 0;
}

static int encode_and_take(cbor_item_t *map, int put_result, uint8_t **ret, size_t *ret_size) {
        if (put_result < 0)
                return put_result == -EINVAL ? -ENOMEM : put_result;
        return cbor_util_encode(map, ret, ret_size);
}

int enroll_make_challenge(const EnrollRequest *req, uint64_t now, uint8_t **ret_challenge, size_t *ret_challenge_size,
                          uint8_t **ret_state, size_t *ret_state_size) {
        _cleanup_(secret_erase) uint8_t secret[ENROLL_SECRET_SIZE] = {};
        _cleanup_free_ uint8_t *blob = NULL, *enc = NULL, *challenge = NULL;
        _cleanup_cbor_ cbor_item_t *c = NULL;
        _cleanup_(cbor_secret_unrefp) cbor_item_t *s = NULL;
        size_t blob_size = 0, enc_size = 0, challenge_size = 0;
        int r;

        if (!req || !ret_challenge || !ret_challenge_size || !ret_state || !ret_state_size)
                return -EINVAL;
        r = random_bytes(secret, sizeof(secret));
        if (r < 0)
                return r;
        r = enroll_make_credential(req->ek_pub, req->ek_pub_size, req->ak_name, sizeof(req->ak_name), secret,
                                   sizeof(secret), &blob, &blob_size, &enc, &enc_size);
        if (r < 0)
                return r;

        c = cbor_util_new_map();
        s = cbor_util_new_map();
        if (!c || !s)
                return -ENOMEM;
        r = 0;
        r = r ?: cbor_util_map_put_text(c, "v", cbor_util_new_uint(1));
        r = r ?: cbor_util_map_put_text(c, "type", cbor_util_new_text("enroll-challenge"));
        r = r ?: cbor_util_map_put_text(c, "ek", cbor_util_new_text(enroll_ek_type_to_string(req->ek_type)));
        r = r ?: cbor_util_map_put_text(c, "credential_blob", cbor_util_new_bytes(blob, blob_size));
        r = r ?: cbor_util_map_put_text(c, "encrypted_secret", cbor_util_new_bytes(enc, enc_size));
        r = encode_and_take(c, r, &challenge, &challenge_size);
        if (r < 0)
                return r;

        r = 0;
        r = r ?: cbor_util_map_put_text(s, "v", cbor_util_new_uint(1));
        r = r ?: cbor_util_map_put_text(s, "type", cbor_util_new_text("enroll-state"));
        r = r ?: cbor_util_map_put_text(s, "secret", cbor_util_new_bytes(secret, sizeof(secret)));
        r = r ?: cbor_util_map_put_text(s, "ak_pub", cbor_util_new_bytes(req->ak_pub, req->ak_pub_size));
        r = r ?: cbor_util_map_put_text(s, "ak_name", cbor_util_new_bytes(req->ak_name, sizeof(req->ak_name)));
        r = r ?: cbor_util_map_put_text(s, "ek_cert", cbor_util_new_bytes(req->ek_cert, req->ek_cert_size));
        r = r ?: cbor_util_map_put_text(s, "host_id", cbor_util_new_text(req->host_id));
        r = r ?: cbor_util_map_put_text(s, "issued", cbor_util_new_uint(now));
        r = encode_and_take(s, r, ret_state, ret_state_size);
        /* cbor_util_encode() zeroes its own buffers; the item's copy is zeroed by its cleanup. */
        if (r < 0)
                return r;
        *ret_challenge = TAKE_PTR(challenge);
        *ret_challenge_size = challenge_size;
        return 0;
}

int enroll_finish(const uint8_t *state, size_t state_size, const uint8_t *response, size_t response_size,
                  uint64_t now, uint8_t **ret_record, size_t *ret_record_size, EnrollError *err) {
        static const char *const state_keys[] = { "v", "type", "secret", "ak_pub", "ak_name", "ek_cert", "host_id",
                                                  "issued" };
        static const char *const response_keys[] = { "v", "type", "secret" };
        _cleanup_(cbor_secret_unrefp) cbor_item_t *s = NULL, *resp = NULL;
        _cleanup_cbor_ cbor_item_t *rec = NULL;
        const uint8_t *secret, *answer, *ak_pub, *ak_name, *ek_cert;
        size_t secret_size, answer_size, ak_pub_size, ak_name_size, ek_cert_size;
        char host_id[ENROLL_HOST_ID_LEN + 1];
        uint64_t issued;
        int r;

        if ((!state && state_size > 0) || (!response && response_size > 0) || !ret_record || !ret_record_size)
                return -EINVAL;

        r = decode_doc(state, state_size, 32, 1, &s);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || cbor_util_map_check_text_keys(s, state_keys, ELEMENTSOF(state_keys), NULL) < 0 ||
            !version_is_1(s) || !text_is(cbor_util_map_get_text(s, "type"), "enroll-state") ||
            get_bytes_bounded(s, "secret", ENROLL_SECRET_SIZE, ENROLL_SECRET_SIZE, &secret, &secret_size) < 0 ||
            get_bytes_bounded(s, "ak_pub", 1, ENROLL_AK_PUB_MAX, &ak_pub, &ak_pub_size) < 0 ||
            get_bytes_bounded(s, "ak_name", ENROLL_AK_NAME_SIZE, ENROLL_AK_NAME_SIZE, &ak_name, &ak_name_size) < 0 ||
            get_bytes_bounded(s, "ek_cert", 1, ENROLL_EK_CERT_MAX, &ek_cert, &ek_cert_size) < 0 ||
            get_host_id(s, host_id) < 0 || cbor_util_get_uint(cbor_util_map_get_text(s, "issued"), &issued) < 0)
                return malformed(err, "state", "state is not an enroll-state v1 document");

        r = decode_doc(response, response_size, 8, 1, &resp);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || cbor_util_map_check_text_keys(resp, response_keys, ELEMENTSOF(response_keys), NULL) < 0 ||
            !version_is_1(resp) || !text_is(cbor_util_map_get_text(resp, "type"), "enroll-response") ||
            cbor_util_get_bytes(cbor_util_map_get_text(resp, "secret"), &answer, &answer_size) < 0)
                return malformed(err, "format", "response is not an enroll-response v1 document");

        /* Only the TPM holding the EK's private key, with an object of exactly Name(AK) loaded, can have
         * unwrapped the secret (Part 1 §24). Constant time: the comparison must not tell a guesser how
         * many leading bytes were right. */
        if (answer_size != secret_size || !memeq_secret(answer, secret, secret_size))
                return refuse(err, "secret", "the response's secret is not the one this challenge issued");

        rec = cbor_util_new_map();
        if (!rec)
                return -ENOMEM;
        r = 0;
        r = r ?: cbor_util_map_put_text(rec, "v", cbor_util_new_uint(1));
        r = r ?: cbor_util_map_put_text(rec, "type", cbor_util_new_text("ak-record"));
        r = r ?: cbor_util_map_put_text(rec, "ak_pub", cbor_util_new_bytes(ak_pub, ak_pub_size));
        r = r ?: cbor_util_map_put_text(rec, "ak_name", cbor_util_new_bytes(ak_name, ak_name_size));
        r = r ?: cbor_util_map_put_text(rec, "ek_cert", cbor_util_new_bytes(ek_cert, ek_cert_size));
        r = r ?: cbor_util_map_put_text(rec, "host_id", cbor_util_new_text(host_id));
        r = r ?: cbor_util_map_put_text(rec, "time", cbor_util_new_uint(now));
        return encode_and_take(rec, r, ret_record, ret_record_size);
}

int enroll_record_parse(const uint8_t *buf, size_t size, EnrollRecord *ret) {
        static const char *const keys[] = { "v", "type", "ak_pub", "ak_name", "ek_cert", "host_id", "time" };
        _cleanup_cbor_ cbor_item_t *map = NULL;
        const uint8_t *ak_pub, *ak_name, *ek_cert;
        size_t ak_pub_size, ak_name_size, ek_cert_size;
        uint8_t name[ENROLL_AK_NAME_SIZE];
        EnrollRecord rec = {};
        Tpm2Public p;
        int r;

        if ((!buf && size > 0) || !ret)
                return -EINVAL;
        r = decode_doc(buf, size, 32, 1, &map);
        if (r < 0)
                return r;
        if (cbor_util_map_check_text_keys(map, keys, ELEMENTSOF(keys), NULL) < 0 || !version_is_1(map) ||
            !text_is(cbor_util_map_get_text(map, "type"), "ak-record") ||
            get_bytes_bounded(map, "ak_pub", 1, ENROLL_AK_PUB_MAX, &ak_pub, &ak_pub_size) < 0 ||
            get_bytes_bounded(map, "ak_name", ENROLL_AK_NAME_SIZE, ENROLL_AK_NAME_SIZE, &ak_name, &ak_name_size) < 0 ||
            get_bytes_bounded(map, "ek_cert", 1, ENROLL_EK_CERT_MAX, &ek_cert, &ek_cert_size) < 0 ||
            get_host_id(map, rec.host_id) < 0 || cbor_util_get_uint(cbor_util_map_get_text(map, "time"), &rec.time) < 0)
                return -EBADMSG;
        /* The Name is redundant; a record whose Name is not its AK's was not written by enroll_finish(). */
        if (tpm2_public_parse(ak_pub, ak_pub_size, &p) < 0 || tpm2_public_name(&p, ak_pub, ak_pub_size, name) < 0 ||
            memcmp(name, ak_name, sizeof(name)) != 0)
                return -EBADMSG;
        memcpy(rec.ak_name, name, sizeof(name));
        r = memdup_sized(ak_pub, ak_pub_size, &rec.ak_pub, &rec.ak_pub_size);
        if (r < 0)
                return r;
        r = memdup_sized(ek_cert, ek_cert_size, &rec.ek_cert, &rec.ek_cert_size);
        if (r < 0) {
                enroll_record_done(&rec);
                return r;
        }
        *ret = rec;
        return 0;
}

int enroll_ak_public(const uint8_t *buf, size_t size, uint8_t **ret, size_t *ret_size) {
        const uint8_t *p = buf;
        size_t n = size;

        if (enroll_is_cbor_map(buf, size)) {
                EnrollRecord rec = {};
                int r = enroll_record_parse(buf, size, &rec);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(rec.ak_pub);
                *ret_size = rec.ak_pub_size;
                enroll_record_done(&rec);
                return 0;
        }
        /* A TPM2B_PUBLIC is the TPMT_PUBLIC behind a 2-byte size. A bare TPMT_PUBLIC cannot look like
         * one: it starts with its type (0x0001 or 0x0023), and an area of 3 or 37 bytes is no key. */
        if (n > 2 && (size_t) (p[0] << 8 | p[1]) == n - 2) {
                p += 2;
                n -= 2;
        }
        return memdup_sized(p, n, ret, ret_size);
}

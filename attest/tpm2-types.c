/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parsers for the TPM 2.0 structures in attestation evidence (see tpm2-types.h). A Reader walks the
 * input; every read checks the bytes left, every TPM2B its bound, and each top-level parser ends with
 * "all bytes consumed". Parsing is into a local and copied out only on success, so *ret is never left
 * half-written.
 */

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <string.h>

#include "attest/tpm2-types.h"
#include "common/crypto-util.h"
#include "common/macro.h"

typedef struct Reader {
        const uint8_t *p;
        size_t size;
        size_t off;
} Reader;

static int read_bytes(Reader *r, void *out, size_t n) {
        if (n > r->size - r->off)
                return -EBADMSG;
        if (n > 0)
                memcpy(out, r->p + r->off, n);
        r->off += n;
        return 0;
}

static int read_u8(Reader *r, uint8_t *ret) {
        return read_bytes(r, ret, 1);
}

/* Part 1 §9: integers are big-endian on the wire. */
static int read_u16(Reader *r, uint16_t *ret) {
        uint8_t b[2];
        if (read_bytes(r, b, sizeof(b)) < 0)
                return -EBADMSG;
        *ret = (uint16_t) (b[0] << 8 | b[1]);
        return 0;
}

static int read_u32(Reader *r, uint32_t *ret) {
        uint8_t b[4];
        if (read_bytes(r, b, sizeof(b)) < 0)
                return -EBADMSG;
        *ret = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
        return 0;
}

static int read_u64(Reader *r, uint64_t *ret) {
        uint32_t hi, lo;
        if (read_u32(r, &hi) < 0 || read_u32(r, &lo) < 0)
                return -EBADMSG;
        *ret = (uint64_t) hi << 32 | lo;
        return 0;
}

/* A TPM2B: UINT16 size, then that many bytes, at most max (the size of the TPM's buffer). */
static int read_tpm2b(Reader *r, uint8_t *buf, size_t max, uint16_t *ret_size) {
        uint16_t n;
        if (read_u16(r, &n) < 0 || n > max)
                return -EBADMSG;
        if (read_bytes(r, buf, n) < 0)
                return -EBADMSG;
        *ret_size = n;
        return 0;
}

#define READ_TPM2B(r, b) read_tpm2b((r), (b)->buffer, sizeof((b)->buffer), &(b)->size)

static int reader_end(const Reader *r) {
        /* No trailing bytes: a structure followed by anything else is not the structure that was signed
         * or named (tpm-notes §1.2 step 2). */
        return r->off == r->size ? 0 : -EBADMSG;
}

static bool hash_alg_known(uint16_t alg) {
        return alg == TPM2P_ALG_SHA1 || alg == TPM2P_ALG_SHA256 || alg == TPM2P_ALG_SHA384 ||
               alg == TPM2P_ALG_SHA512 || alg == 0x0012 /* SM3_256 */;
}

/* TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): NULL, or a block cipher with keyBits and mode. XOR is not
 * allowed for objects. */
static int read_sym_def_object(Reader *r, Tpm2SymDef *ret) {
        if (read_u16(r, &ret->algorithm) < 0)
                return -EBADMSG;
        switch (ret->algorithm) {
        case TPM2P_ALG_NULL:
                ret->key_bits = ret->mode = 0;
                return 0;
        case TPM2P_ALG_AES:
        case TPM2P_ALG_SM4:
        case TPM2P_ALG_CAMELLIA:
                if (read_u16(r, &ret->key_bits) < 0 || read_u16(r, &ret->mode) < 0)
                        return -EBADMSG;
                return 0;
        default:
                return -EBADMSG;
        }
}

/* TPMT_ECC_SCHEME (§11.2.5.6) or TPMT_RSA_SCHEME (§11.2.4.2): the scheme, then TPMS_SCHEME_HASH
 * for every scheme but NULL and RSAES (TPMS_EMPTY), and hash + count for ECDAA (§11.1.18). */
static int read_asym_scheme(Reader *r, bool ecc, Tpm2Scheme *ret) {
        *ret = (Tpm2Scheme) {};
        if (read_u16(r, &ret->scheme) < 0)
                return -EBADMSG;
        switch (ret->scheme) {
        case TPM2P_ALG_NULL:
                return 0;
        case TPM2P_ALG_RSAES:
                return ecc ? -EBADMSG : 0;
        case TPM2P_ALG_RSASSA:
        case TPM2P_ALG_RSAPSS:
        case TPM2P_ALG_OAEP:
                if (ecc)
                        return -EBADMSG;
                break;
        case TPM2P_ALG_ECDSA:
        case TPM2P_ALG_ECDH:
        case TPM2P_ALG_ECDAA:
        case TPM2P_ALG_SM2:
        case TPM2P_ALG_ECSCHNORR:
        case TPM2P_ALG_ECMQV:
                if (!ecc)
                        return -EBADMSG;
                break;
        default:
                return -EBADMSG;
        }
        if (read_u16(r, &ret->hash_alg) < 0 || !hash_alg_known(ret->hash_alg))
                return -EBADMSG;
        if (ret->scheme == TPM2P_ALG_ECDAA && read_u16(r, &ret->count) < 0)
                return -EBADMSG;
        return 0;
}

/* TPMT_KDF_SCHEME (§11.2.3.3): NULL or a KDF with its hash. */
static int read_kdf_scheme(Reader *r, Tpm2Scheme *ret) {
        *ret = (Tpm2Scheme) {};
        if (read_u16(r, &ret->scheme) < 0)
                return -EBADMSG;
        switch (ret->scheme) {
        case TPM2P_ALG_NULL:
                return 0;
        case TPM2P_ALG_MGF1:
        case TPM2P_ALG_KDF1_SP800_56A:
        case TPM2P_ALG_KDF2:
        case TPM2P_ALG_KDF1_SP800_108:
                if (read_u16(r, &ret->hash_alg) < 0 || !hash_alg_known(ret->hash_alg))
                        return -EBADMSG;
                return 0;
        default:
                return -EBADMSG;
        }
}

int tpm2_public_parse(const uint8_t *buf, size_t size, Tpm2Public *ret) {
        Reader r = { .p = buf, .size = size };
        Tpm2Public p = {};

        if ((!buf && size > 0) || !ret)
                return -EINVAL;

        /* Part 2 §12.2.4: type, nameAlg, objectAttributes, authPolicy, parameters, unique. */
        if (read_u16(&r, &p.type) < 0 || read_u16(&r, &p.name_alg) < 0 || read_u32(&r, &p.attributes) < 0 ||
            READ_TPM2B(&r, &p.auth_policy) < 0)
                return -EBADMSG;
        /* TPMI_ALG_HASH+ : NULL is allowed for nameAlg only of permanent handles; objects need a hash. */
        if (!hash_alg_known(p.name_alg))
                return -EBADMSG;

        switch (p.type) {
        case TPM2P_ALG_ECC:
                /* TPMS_ECC_PARMS (§12.2.3.6): symmetric, scheme, curveID, kdf; unique TPMS_ECC_POINT. */
                if (read_sym_def_object(&r, &p.symmetric) < 0 || read_asym_scheme(&r, true, &p.scheme) < 0 ||
                    read_u16(&r, &p.curve_id) < 0 || read_kdf_scheme(&r, &p.kdf) < 0 ||
                    READ_TPM2B(&r, &p.x) < 0 || READ_TPM2B(&r, &p.y) < 0)
                        return -EBADMSG;
                break;
        case TPM2P_ALG_RSA:
                /* TPMS_RSA_PARMS (§12.2.3.5): symmetric, scheme, keyBits, exponent; unique
                 * TPM2B_PUBLIC_KEY_RSA. */
                if (read_sym_def_object(&r, &p.symmetric) < 0 || read_asym_scheme(&r, false, &p.scheme) < 0 ||
                    read_u16(&r, &p.key_bits) < 0 || read_u32(&r, &p.exponent) < 0 ||
                    READ_TPM2B(&r, &p.modulus) < 0)
                        return -EBADMSG;
                break;
        default:
                /* KEYEDHASH and SYMCIPHER objects are never keys a verifier checks signatures with. */
                return -EBADMSG;
        }

        if (reader_end(&r) < 0)
                return -EBADMSG;
        *ret = p;
        return 0;
}

int tpm2_signature_parse(const uint8_t *buf, size_t size, Tpm2Signature *ret) {
        Reader r = { .p = buf, .size = size };
        Tpm2Signature s = {};

        if ((!buf && size > 0) || !ret)
                return -EINVAL;

        /* Part 2 §11.3.4: sigAlg selects the TPMU_SIGNATURE member. */
        if (read_u16(&r, &s.sig_alg) < 0)
                return -EBADMSG;
        switch (s.sig_alg) {
        case TPM2P_ALG_ECDSA:
                /* TPMS_SIGNATURE_ECC (§11.3.2): hash, signatureR, signatureS. */
                if (read_u16(&r, &s.hash_alg) < 0 || READ_TPM2B(&r, &s.r) < 0 || READ_TPM2B(&r, &s.s) < 0)
                        return -EBADMSG;
                break;
        case TPM2P_ALG_RSASSA:
                /* TPMS_SIGNATURE_RSA (§11.3.1): hash, sig. */
                if (read_u16(&r, &s.hash_alg) < 0 || READ_TPM2B(&r, &s.rsa) < 0)
                        return -EBADMSG;
                break;
        default:
                return -EOPNOTSUPP;
        }

        if (reader_end(&r) < 0)
                return -EBADMSG;
        *ret = s;
        return 0;
}

static int read_name(Reader *r, Tpm2Name *ret) {
        return read_tpm2b(r, ret->name, sizeof(ret->name), &ret->size);
}

int tpm2_attest_parse(const uint8_t *buf, size_t size, Tpm2Attest *ret) {
        Reader r = { .p = buf, .size = size };
        Tpm2Attest attest = {}, *a = &attest;

        if ((!buf && size > 0) || !ret)
                return -EINVAL;

        /* Part 2 §10.12.8: magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion,
         * attested (selected by type). */
        if (read_u32(&r, &a->magic) < 0 || read_u16(&r, &a->type) < 0 || read_name(&r, &a->qualified_signer) < 0 ||
            READ_TPM2B(&r, &a->extra_data) < 0)
                return -EBADMSG;
        /* TPMS_CLOCK_INFO (§10.11.1): clock, resetCount, restartCount, safe (TPMI_YES_NO). */
        if (read_u64(&r, &a->clock) < 0 || read_u32(&r, &a->reset_count) < 0 ||
            read_u32(&r, &a->restart_count) < 0 || read_u8(&r, &a->safe) < 0 || a->safe > 1)
                return -EBADMSG;
        if (read_u64(&r, &a->firmware_version) < 0)
                return -EBADMSG;

        switch (a->type) {
        case TPM2P_ST_ATTEST_CERTIFY:
                /* TPMS_CERTIFY_INFO (§10.12.3): name, qualifiedName. */
                if (read_name(&r, &a->certify.name) < 0 || read_name(&r, &a->certify.qualified_name) < 0)
                        return -EBADMSG;
                break;
        case TPM2P_ST_ATTEST_QUOTE:
                /* TPMS_QUOTE_INFO (§10.12.4): TPML_PCR_SELECTION pcrSelect, TPM2B_DIGEST pcrDigest. */
                if (read_u32(&r, &a->quote.n_selections) < 0 || a->quote.n_selections > TPM2P_PCR_SELECTIONS_MAX)
                        return -EBADMSG;
                for (uint32_t i = 0; i < a->quote.n_selections; i++) {
                        Tpm2PcrSelection *sel = &a->quote.selections[i];

                        /* TPMS_PCR_SELECTION (§10.6.2): hash, sizeofSelect, pcrSelect[sizeofSelect]. */
                        if (read_u16(&r, &sel->hash) < 0 || read_u8(&r, &sel->size_of_select) < 0 ||
                            sel->size_of_select > TPM2P_PCR_SELECT_MAX ||
                            read_bytes(&r, sel->select, sel->size_of_select) < 0)
                                return -EBADMSG;
                }
                if (READ_TPM2B(&r, &a->quote.pcr_digest) < 0)
                        return -EBADMSG;
                break;
        default:
                /* The layout of the rest depends on the type; one we do not know cannot be parsed. */
                return -EPROTONOSUPPORT;
        }

        if (reader_end(&r) < 0)
                return -EBADMSG;
        *ret = attest;
        return 0;
}

int tpm2_public_name(const Tpm2Public *pub, const uint8_t *raw, size_t raw_size,
                     uint8_t ret[TPM2P_NAME_SHA256_SIZE]) {
        if (!pub || !raw || !ret)
                return -EINVAL;
        if (pub->name_alg != TPM2P_ALG_SHA256)
                return -EOPNOTSUPP;

        /* Part 1 §16: Name = nameAlg || H_nameAlg(TPMT_PUBLIC), hashed without the TPM2B size. */
        ret[0] = (uint8_t) (TPM2P_ALG_SHA256 >> 8);
        ret[1] = (uint8_t) (TPM2P_ALG_SHA256 & 0xff);
        return sha256(raw, raw_size, ret + 2);
}

int tpm2_qualified_name(const uint8_t parent_qn[TPM2P_NAME_SHA256_SIZE], const uint8_t name[TPM2P_NAME_SHA256_SIZE],
                        uint8_t ret[TPM2P_NAME_SHA256_SIZE]) {
        const void *parts[] = { parent_qn, name };
        const size_t sizes[] = { TPM2P_NAME_SHA256_SIZE, TPM2P_NAME_SHA256_SIZE };
        uint8_t out[TPM2P_NAME_SHA256_SIZE];
        int r;

        if (!parent_qn || !name || !ret)
                return -EINVAL;

        /* Part 1 §16: QN(B) = H_nameAlg(B)(QN(A) || Name(B)), prefixed by nameAlg(B) like a Name. */
        out[0] = (uint8_t) (TPM2P_ALG_SHA256 >> 8);
        out[1] = (uint8_t) (TPM2P_ALG_SHA256 & 0xff);
        r = sha256_parts(parts, sizes, ELEMENTSOF(parts), out + 2);
        if (r < 0)
                return r;
        memcpy(ret, out, sizeof(out));
        return 0;
}

int tpm2_primary_qualified_name(uint32_t hierarchy, const uint8_t name[TPM2P_NAME_SHA256_SIZE],
                                uint8_t ret[TPM2P_NAME_SHA256_SIZE]) {
        const uint8_t handle[4] = {
                (uint8_t) (hierarchy >> 24), (uint8_t) (hierarchy >> 16), (uint8_t) (hierarchy >> 8),
                (uint8_t) hierarchy,
        };
        const void *parts[] = { handle, name };
        const size_t sizes[] = { sizeof(handle), TPM2P_NAME_SHA256_SIZE };
        uint8_t out[TPM2P_NAME_SHA256_SIZE];
        int r;

        if (!name || !ret)
                return -EINVAL;

        /* Part 1 §16: the qualified name of a hierarchy is its handle. */
        out[0] = (uint8_t) (TPM2P_ALG_SHA256 >> 8);
        out[1] = (uint8_t) (TPM2P_ALG_SHA256 & 0xff);
        r = sha256_parts(parts, sizes, ELEMENTSOF(parts), out + 2);
        if (r < 0)
                return r;
        memcpy(ret, out, sizeof(out));
        return 0;
}

/* Strip leading zeros and left-pad to coord_size; -EBADMSG if more significant bytes than that. */
static int normalize_coord(const uint8_t *p, size_t n, size_t coord_size, uint8_t *out) {
        while (n > 0 && p[0] == 0) {
                p++;
                n--;
        }
        if (n > coord_size)
                return -EBADMSG;
        memset(out, 0, coord_size - n);
        if (n > 0)
                memcpy(out + coord_size - n, p, n);
        return 0;
}

int tpm2_signature_ecdsa_to_der(const Tpm2Signature *sig, size_t coord_size, uint8_t **ret, size_t *ret_size) {
        uint8_t raw[2 * TPM2P_ECC_PARAMETER_MAX];

        if (!sig || !ret || !ret_size || coord_size == 0 || coord_size > TPM2P_ECC_PARAMETER_MAX)
                return -EINVAL;
        if (sig->sig_alg != TPM2P_ALG_ECDSA)
                return -EBADMSG;
        /* tpm-notes §3.6: some TPMs strip leading zeros of r and s; OpenSSL wants DER integers. */
        if (normalize_coord(sig->r.buffer, sig->r.size, coord_size, raw) < 0 ||
            normalize_coord(sig->s.buffer, sig->s.size, coord_size, raw + coord_size) < 0)
                return -EBADMSG;
        return ecdsa_raw_to_der(raw, coord_size, ret, ret_size);
}

int tpm2_public_p256_point(const Tpm2Public *pub, uint8_t ret_x[32], uint8_t ret_y[32]) {
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];

        if (!pub || !ret_x || !ret_y)
                return -EINVAL;
        if (pub->type != TPM2P_ALG_ECC || pub->curve_id != TPM2P_ECC_NIST_P256)
                return -EOPNOTSUPP;
        if (normalize_coord(pub->x.buffer, pub->x.size, P256_COORD_SIZE, x) < 0 ||
            normalize_coord(pub->y.buffer, pub->y.size, P256_COORD_SIZE, y) < 0)
                return -EBADMSG;
        memcpy(ret_x, x, sizeof(x));
        memcpy(ret_y, y, sizeof(y));
        return 0;
}

int tpm2_p256_params_new(EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        char group[] = "prime256v1";
        EVP_PKEY *pkey = NULL;

        if (!ret)
                return -EINVAL;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                OSSL_PARAM_construct_end(),
        };
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEY_PARAMETERS, params) != 1) {
                ERR_clear_error();
                return -ENOMEM;
        }
        *ret = pkey;
        return 0;
}

int tpm2_public_to_pkey(const Tpm2Public *pub, EVP_PKEY *params, EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *own_params = NULL, *pkey = NULL;
        uint8_t point[1 + 2 * P256_COORD_SIZE];
        int r;

        if (!ret)
                return -EINVAL;
        /* SEC 1 §2.3.3 uncompressed point: 04 || x || y. */
        point[0] = 0x04;
        r = tpm2_public_p256_point(pub, point + 1, point + 1 + P256_COORD_SIZE);
        if (r < 0)
                return r;
        if (!params) {
                r = tpm2_p256_params_new(&own_params);
                if (r < 0)
                        return r;
                params = own_params;
        }

        pkey = EVP_PKEY_dup(params);
        if (!pkey) {
                ERR_clear_error();
                return -ENOMEM;
        }
        /* EC_POINT_oct2point underneath refuses a point that is not on the curve. */
        if (EVP_PKEY_set1_encoded_public_key(pkey, point, sizeof(point)) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = TAKE_PTR(pkey);
        return 0;
}

int tpm2_public_p256_spki(const Tpm2Public *pub, uint8_t ret[TPM2P_P256_SPKI_SIZE]) {
        /* RFC 5480 §2: SEQUENCE { SEQUENCE { OID id-ecPublicKey 1.2.840.10045.2.1,
         * OID secp256r1 1.2.840.10045.3.1.7 }, BIT STRING (0 unused bits) 04 || x || y }. */
        static const uint8_t prefix[] = {
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        };
        uint8_t out[TPM2P_P256_SPKI_SIZE];
        int r;

        if (!ret)
                return -EINVAL;
        memcpy(out, prefix, sizeof(prefix));
        out[sizeof(prefix)] = 0x04;
        r = tpm2_public_p256_point(pub, out + sizeof(prefix) + 1, out + sizeof(prefix) + 1 + P256_COORD_SIZE);
        if (r < 0)
                return r;
        memcpy(ret, out, sizeof(out));
        return 0;
}

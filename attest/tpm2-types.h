/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * TPM 2.0 structures a verifier receives, parsed by our own code (no tss2 headers in attest/, so the
 * verifier library runs where there is no TPM stack): TPMT_PUBLIC (Part 2 §12.2.4), TPMT_SIGNATURE
 * (Part 2 §11.3.4) and TPMS_ATTEST (Part 2 §10.12.8) for the certify and quote types.
 *
 * Every parser reads big-endian (Part 1 §9 "the canonical form is big-endian"), checks each length
 * against the bytes left and against the size of the corresponding TPM buffer, and insists the input
 * is consumed exactly: no trailing bytes. Unknown algorithms and attestation types are refused rather
 * than skipped, since the layout after them is not known. Parsing says nothing about whether a value
 * is acceptable; the checks on values (magic, type, attributes) are the verifier's.
 *
 * The constants are named TPM2P_* (P for "parser") so that they never clash with the TPM2_* names of
 * tss2 in a program that includes both.
 */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TPM_GENERATED_VALUE (Part 2 §6.2): first field of every TPMS_ATTEST the TPM signs. */
#define TPM2P_GENERATED_VALUE 0xff544347U

/* TPM_ST attestation structure tags (Part 2 §6.9). */
#define TPM2P_ST_ATTEST_CERTIFY 0x8017U
#define TPM2P_ST_ATTEST_QUOTE 0x8018U

/* TPM_ALG_ID (Part 2 §6.3; values from the TCG Algorithm Registry). */
#define TPM2P_ALG_RSA 0x0001U
#define TPM2P_ALG_SHA1 0x0004U
#define TPM2P_ALG_AES 0x0006U
#define TPM2P_ALG_MGF1 0x0007U
#define TPM2P_ALG_KEYEDHASH 0x0008U
#define TPM2P_ALG_SHA256 0x000BU
#define TPM2P_ALG_SHA384 0x000CU
#define TPM2P_ALG_SHA512 0x000DU
#define TPM2P_ALG_NULL 0x0010U
#define TPM2P_ALG_SM4 0x0013U
#define TPM2P_ALG_RSASSA 0x0014U
#define TPM2P_ALG_RSAES 0x0015U
#define TPM2P_ALG_RSAPSS 0x0016U
#define TPM2P_ALG_OAEP 0x0017U
#define TPM2P_ALG_ECDSA 0x0018U
#define TPM2P_ALG_ECDH 0x0019U
#define TPM2P_ALG_ECDAA 0x001AU
#define TPM2P_ALG_SM2 0x001BU
#define TPM2P_ALG_ECSCHNORR 0x001CU
#define TPM2P_ALG_ECMQV 0x001DU
#define TPM2P_ALG_KDF1_SP800_56A 0x0020U
#define TPM2P_ALG_KDF2 0x0021U
#define TPM2P_ALG_KDF1_SP800_108 0x0022U
#define TPM2P_ALG_ECC 0x0023U
#define TPM2P_ALG_SYMCIPHER 0x0025U
#define TPM2P_ALG_CAMELLIA 0x0026U
#define TPM2P_ALG_CFB 0x0043U

/* TPM_ECC_CURVE (Part 2 §6.4). */
#define TPM2P_ECC_NIST_P256 0x0003U

/* TPMA_OBJECT bits (Part 2 §8.3.2). */
#define TPM2P_OBJ_FIXEDTPM (1U << 1)
#define TPM2P_OBJ_STCLEAR (1U << 2)
#define TPM2P_OBJ_FIXEDPARENT (1U << 4)
#define TPM2P_OBJ_SENSITIVEDATAORIGIN (1U << 5)
#define TPM2P_OBJ_USERWITHAUTH (1U << 6)
#define TPM2P_OBJ_ADMINWITHPOLICY (1U << 7)
#define TPM2P_OBJ_NODA (1U << 10)
#define TPM2P_OBJ_ENCRYPTEDDUPLICATION (1U << 11)
#define TPM2P_OBJ_RESTRICTED (1U << 16)
#define TPM2P_OBJ_DECRYPT (1U << 17)
#define TPM2P_OBJ_SIGN (1U << 18)

/* TPM_RH_OWNER (Part 2 §7.4): the hierarchy handle that roots the qualified name of the SRK. */
#define TPM2P_RH_OWNER 0x40000001U

/* Buffer bounds: sizeof() of the TPMU each TPM2B holds, for a TPM with digests up to SHA-512
 * (Part 2 §10.5.3 TPM2B_NAME, §10.4.3 TPM2B_DATA, §10.4.2 TPM2B_DIGEST, §11.2.5.1
 * TPM2B_ECC_PARAMETER for curves up to P-521, §11.2.4.5 TPM2B_PUBLIC_KEY_RSA up to RSA-4096). */
#define TPM2P_NAME_MAX 68U
#define TPM2P_DATA_MAX 64U
#define TPM2P_DIGEST_MAX 64U
#define TPM2P_ECC_PARAMETER_MAX 66U
#define TPM2P_RSA_MAX 512U
/* TPML_PCR_SELECTION entries (one per bank) and bytes of one PCR bitmap (PCR_SELECT_MAX: 32 PCRs). */
#define TPM2P_PCR_SELECTIONS_MAX 16U
#define TPM2P_PCR_SELECT_MAX 4U

/* A Name whose nameAlg is SHA-256 (Part 1 §16): 00 0b || 32-byte digest. */
#define TPM2P_NAME_SHA256_SIZE 34U

typedef struct Tpm2Name {
        uint16_t size;
        uint8_t name[TPM2P_NAME_MAX];
} Tpm2Name;

typedef struct Tpm2Data {
        uint16_t size;
        uint8_t buffer[TPM2P_DATA_MAX];
} Tpm2Data;

typedef struct Tpm2Digest {
        uint16_t size;
        uint8_t buffer[TPM2P_DIGEST_MAX];
} Tpm2Digest;

typedef struct Tpm2EccParameter {
        uint16_t size;
        uint8_t buffer[TPM2P_ECC_PARAMETER_MAX];
} Tpm2EccParameter;

typedef struct Tpm2RsaBuffer {
        uint16_t size;
        uint8_t buffer[TPM2P_RSA_MAX];
} Tpm2RsaBuffer;

/* TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): algorithm, then keyBits and mode unless it is NULL. */
typedef struct Tpm2SymDef {
        uint16_t algorithm;
        uint16_t key_bits;              /* 0 when algorithm is NULL */
        uint16_t mode;                  /* 0 when algorithm is NULL */
} Tpm2SymDef;

/* TPMT_ECC_SCHEME / TPMT_RSA_SCHEME / TPMT_KDF_SCHEME (Part 2 §11.2): scheme, then its details. */
typedef struct Tpm2Scheme {
        uint16_t scheme;
        uint16_t hash_alg;              /* 0 when the scheme carries no hash (NULL, RSAES) */
        uint16_t count;                 /* ECDAA only */
} Tpm2Scheme;

/* TPMT_PUBLIC (Part 2 §12.2.4) of an ECC or RSA key. */
typedef struct Tpm2Public {
        uint16_t type;                  /* TPM2P_ALG_ECC or TPM2P_ALG_RSA */
        uint16_t name_alg;
        uint32_t attributes;            /* TPMA_OBJECT */
        Tpm2Digest auth_policy;
        Tpm2SymDef symmetric;
        Tpm2Scheme scheme;
        /* ECC: TPMS_ECC_PARMS (§12.2.3.6) and TPMS_ECC_POINT (§11.2.5.2) */
        uint16_t curve_id;
        Tpm2Scheme kdf;
        Tpm2EccParameter x, y;
        /* RSA: TPMS_RSA_PARMS (§12.2.3.5) and TPM2B_PUBLIC_KEY_RSA */
        uint16_t key_bits;
        uint32_t exponent;              /* 0 means the default 65537 (§12.2.3.5) */
        Tpm2RsaBuffer modulus;
} Tpm2Public;

/* TPMT_SIGNATURE (Part 2 §11.3.4) with ECDSA (TPMS_SIGNATURE_ECC) or RSASSA (TPMS_SIGNATURE_RSA). */
typedef struct Tpm2Signature {
        uint16_t sig_alg;
        uint16_t hash_alg;
        Tpm2EccParameter r, s;          /* ECDSA */
        Tpm2RsaBuffer rsa;              /* RSASSA */
} Tpm2Signature;

/* TPMS_PCR_SELECTION (Part 2 §10.6.2). */
typedef struct Tpm2PcrSelection {
        uint16_t hash;
        uint8_t size_of_select;
        uint8_t select[TPM2P_PCR_SELECT_MAX];
} Tpm2PcrSelection;

/* TPMS_ATTEST (Part 2 §10.12.8) with TPMS_CERTIFY_INFO (§10.12.3) or TPMS_QUOTE_INFO (§10.12.4). */
typedef struct Tpm2Attest {
        uint32_t magic;
        uint16_t type;
        Tpm2Name qualified_signer;
        Tpm2Data extra_data;
        /* TPMS_CLOCK_INFO (§10.11.1) */
        uint64_t clock;
        uint32_t reset_count;
        uint32_t restart_count;
        uint8_t safe;                   /* TPMI_YES_NO: 0 or 1 */
        uint64_t firmware_version;
        union {
                struct {
                        Tpm2Name name;
                        Tpm2Name qualified_name;
                } certify;
                struct {
                        uint32_t n_selections;
                        Tpm2PcrSelection selections[TPM2P_PCR_SELECTIONS_MAX];
                        Tpm2Digest pcr_digest;
                } quote;
        };
} Tpm2Attest;

/*
 * tpm2_public_parse() - unmarshal a TPMT_PUBLIC (no TPM2B size prefix) of type ECC or RSA
 *
 * Return: 0; -EBADMSG if truncated, oversized, followed by trailing bytes, or using a type, scheme,
 *         symmetric or KDF algorithm whose layout this parser does not know; -EINVAL for bad arguments.
 *         *ret is written only on success.
 */
int tpm2_public_parse(const uint8_t *buf, size_t size, Tpm2Public *ret);

/*
 * tpm2_signature_parse() - unmarshal a TPMT_SIGNATURE; only ECDSA and RSASSA are accepted
 *
 * Return: 0; -EBADMSG (malformed, trailing bytes); -EOPNOTSUPP for another signature algorithm;
 *         -EINVAL. *ret is written only on success.
 */
int tpm2_signature_parse(const uint8_t *buf, size_t size, Tpm2Signature *ret);

/*
 * tpm2_attest_parse() - unmarshal a TPMS_ATTEST as the TPM signed it (no TPM2B size prefix)
 *
 * Only certify (0x8017) and quote (0x8018) bodies are known; the magic is stored, not checked.
 *
 * Return: 0; -EBADMSG (malformed, trailing bytes, safe not 0/1, more selections or a longer bitmap
 *         than the bounds above); -EPROTONOSUPPORT for another attestation type; -EINVAL.
 *         *ret is written only on success.
 */
int tpm2_attest_parse(const uint8_t *buf, size_t size, Tpm2Attest *ret);

/*
 * tpm2_public_name() - Name of an object (Part 1 §16): nameAlg || H_nameAlg(marshalled TPMT_PUBLIC)
 * @pub: the parsed area; @raw, @raw_size: the exact bytes it was parsed from
 *
 * Only nameAlg SHA-256 is supported: ret = 00 0b || SHA-256(raw).
 *
 * Return: 0; -EOPNOTSUPP for another nameAlg; -EINVAL; -ENOMEM/-EIO from OpenSSL.
 */
int tpm2_public_name(const Tpm2Public *pub, const uint8_t *raw, size_t raw_size,
                     uint8_t ret[TPM2P_NAME_SHA256_SIZE]);

/*
 * tpm2_qualified_name() - QN(obj) = 00 0b || SHA-256(QN(parent) || Name(obj)) (Part 1 §16)
 */
int tpm2_qualified_name(const uint8_t parent_qn[TPM2P_NAME_SHA256_SIZE], const uint8_t name[TPM2P_NAME_SHA256_SIZE],
                        uint8_t ret[TPM2P_NAME_SHA256_SIZE]);

/*
 * tpm2_primary_qualified_name() - QN of a primary object: 00 0b || SHA-256(hierarchy handle || Name)
 *
 * The qualified name of a hierarchy is its handle (Part 1 §16), so QN(SRK) =
 * 00 0b || SHA-256(40000001 || Name(SRK)) for an SRK in the owner hierarchy (tpm-notes §1.1, §8.17).
 */
int tpm2_primary_qualified_name(uint32_t hierarchy, const uint8_t name[TPM2P_NAME_SHA256_SIZE],
                                uint8_t ret[TPM2P_NAME_SHA256_SIZE]);

/*
 * tpm2_signature_ecdsa_to_der() - an ECDSA TPMT_SIGNATURE as DER ECDSA-Sig-Value for OpenSSL
 * @coord_size: field size of the curve (32 for P-256)
 *
 * r and s are big-endian TPM2B_ECC_PARAMETERs; TPMs may strip leading zeros or pad, so leading zeros
 * are removed and the values left-padded to coord_size (tpm-notes §3.6).
 *
 * Return: 0 and a malloc'd buffer; -EBADMSG if not ECDSA or r/s do not fit; -EINVAL; -ENOMEM.
 */
int tpm2_signature_ecdsa_to_der(const Tpm2Signature *sig, size_t coord_size, uint8_t **ret, size_t *ret_size);

/*
 * tpm2_public_p256_point() - the public point of an ECC NIST P-256 area as x, y (left-padded to 32)
 *
 * Return: 0; -EOPNOTSUPP if not ECC P-256; -EBADMSG if a coordinate is longer than 32 significant bytes.
 */
int tpm2_public_p256_point(const Tpm2Public *pub, uint8_t ret_x[32], uint8_t ret_y[32]);

/*
 * tpm2_p256_params_new() - an EVP_PKEY holding only the NIST P-256 domain parameters
 *
 * A template for tpm2_public_to_pkey(): duplicating it is several times cheaper than building the
 * group from its name for every key. Read-only once made, so threads may share it.
 *
 * Return: 0 and a new EVP_PKEY; -ENOMEM.
 */
int tpm2_p256_params_new(EVP_PKEY **ret);

/*
 * tpm2_public_to_pkey() - an OpenSSL public key for an ECC NIST P-256 area
 * @params: a template from tpm2_p256_params_new(), or NULL to build the group here (slower)
 *
 * The point is given to OpenSSL in uncompressed form (SEC 1 §2.3.3), which cannot encode the point at
 * infinity, and OpenSSL refuses a point that is not on the curve; P-256 has cofactor 1, so that is
 * full public-key validation (SEC 1 §3.2.2.1) and no n·Q = O multiplication is needed. Building a key
 * still costs a fair part of a signature check, so callers that see the same key often (the verifier
 * with its trusted AKs) build it once and keep it.
 *
 * Return: 0 and a new EVP_PKEY; -EOPNOTSUPP if not ECC P-256; -EBADMSG if the point is not on the
 *         curve; -ENOMEM.
 */
int tpm2_public_to_pkey(const Tpm2Public *pub, EVP_PKEY *params, EVP_PKEY **ret);

/* DER SubjectPublicKeyInfo of a P-256 key (RFC 5480 §2): a fixed 26-byte prefix, then 04 || x || y. */
#define TPM2P_P256_SPKI_SIZE 91U

/*
 * tpm2_public_p256_spki() - the DER SubjectPublicKeyInfo of an ECC NIST P-256 area, without OpenSSL's
 * encoder (which costs more than a signature check). Does not check the point: build the key with
 * tpm2_public_to_pkey() first.
 *
 * Return: 0; -EOPNOTSUPP if not ECC P-256; -EBADMSG if a coordinate does not fit.
 */
int tpm2_public_p256_spki(const Tpm2Public *pub, uint8_t ret[TPM2P_P256_SPKI_SIZE]);

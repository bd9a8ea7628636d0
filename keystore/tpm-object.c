/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TPM object templates and public-area helpers (see tpm-object.h).
 */

#include <tss2/tss2_mu.h>

#include "common/log.h"
#include "keystore/tpm-object.h"

void tpm_template_signing_key(TPM2B_PUBLIC *ret) {
        *ret = (TPM2B_PUBLIC) {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = SIGNING_KEY_ATTRIBUTES,
                        .parameters.eccDetail = {
                                .symmetric.algorithm = TPM2_ALG_NULL,
                                /* Fixing the scheme stops a caller from choosing another hash at sign time. */
                                .scheme = {
                                        .scheme = TPM2_ALG_ECDSA,
                                        .details.ecdsa.hashAlg = TPM2_ALG_SHA256,
                                },
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                },
        };
}

void tpm_template_srk(TPM2B_PUBLIC *ret) {
        *ret = (TPM2B_PUBLIC) {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = SRK_ATTRIBUTES,
                        .parameters.eccDetail = {
                                .symmetric = {
                                        .algorithm = TPM2_ALG_AES,
                                        .keyBits.aes = 128,
                                        .mode.aes = TPM2_ALG_CFB,
                                },
                                .scheme.scheme = TPM2_ALG_NULL,
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                        /* EK Credential Profile L-2: unique x and y are 32 zero bytes each. */
                        .unique.ecc = {
                                .x.size = 32,
                                .y.size = 32,
                        },
                },
        };
}

bool tpm_public_is_usable_srk(const TPMT_PUBLIC *p) {
        const TPMS_ECC_PARMS *e = &p->parameters.eccDetail;

        return p->type == TPM2_ALG_ECC && p->nameAlg == TPM2_ALG_SHA256 &&
               (p->objectAttributes | TPMA_OBJECT_NODA) == SRK_ATTRIBUTES && p->authPolicy.size == 0 &&
               e->symmetric.algorithm == TPM2_ALG_AES && e->symmetric.keyBits.aes == 128 &&
               e->symmetric.mode.aes == TPM2_ALG_CFB && e->scheme.scheme == TPM2_ALG_NULL &&
               e->curveID == TPM2_ECC_NIST_P256 && e->kdf.scheme == TPM2_ALG_NULL;
}

bool tpm_public_is_signing_key(const TPMT_PUBLIC *p) {
        const TPMS_ECC_PARMS *e = &p->parameters.eccDetail;

        return p->type == TPM2_ALG_ECC && p->nameAlg == TPM2_ALG_SHA256 &&
               p->objectAttributes == SIGNING_KEY_ATTRIBUTES && p->authPolicy.size == 0 &&
               e->symmetric.algorithm == TPM2_ALG_NULL && e->scheme.scheme == TPM2_ALG_ECDSA &&
               e->scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256 && e->curveID == TPM2_ECC_NIST_P256 &&
               e->kdf.scheme == TPM2_ALG_NULL && p->unique.ecc.x.size == P256_COORD_SIZE &&
               p->unique.ecc.y.size == P256_COORD_SIZE;
}

int tpm_public_name(const TPMT_PUBLIC *p, uint8_t ret[TPM_NAME_SHA256_SIZE]) {
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;

        if (p->nameAlg != TPM2_ALG_SHA256)
                return -EINVAL;
        if (Tss2_MU_TPMT_PUBLIC_Marshal(p, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;

        /* Part 1 §16: the Name hashes the TPMT_PUBLIC without the TPM2B size prefix. */
        ret[0] = (uint8_t) (TPM2_ALG_SHA256 >> 8);
        ret[1] = (uint8_t) (TPM2_ALG_SHA256 & 0xff);
        return sha256(buf, off, ret + 2);
}

int tpm_marshal_public(const TPM2B_PUBLIC *p, uint8_t **ret, size_t *ret_size) {
        uint8_t buf[sizeof(TPM2B_PUBLIC)];
        size_t off = 0;

        if (Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        return memdup_sized(buf, off, ret, ret_size);
}

int tpm_unmarshal_public(const uint8_t *buf, size_t size, TPM2B_PUBLIC *ret) {
        size_t off = 0;

        /* tss2 refuses to unmarshal a TPM2B into a destination whose size is not zero. */
        *ret = (TPM2B_PUBLIC) {};
        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, size, &off, ret) != TSS2_RC_SUCCESS || off != size)
                return -EBADMSG;
        return 0;
}

int tpm_marshal_private(const TPM2B_PRIVATE *p, uint8_t **ret, size_t *ret_size) {
        uint8_t buf[sizeof(TPM2B_PRIVATE)];
        size_t off = 0;
        int r;

        if (Tss2_MU_TPM2B_PRIVATE_Marshal(p, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        r = memdup_sized(buf, off, ret, ret_size);
        erase(buf, off);
        return r;
}

int tpm_unmarshal_private(const uint8_t *buf, size_t size, TPM2B_PRIVATE *ret) {
        size_t off = 0;

        *ret = (TPM2B_PRIVATE) {};
        if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, size, &off, ret) != TSS2_RC_SUCCESS || off != size)
                return -EBADMSG;
        return 0;
}

int tpm_public_to_pkey(const TPMT_PUBLIC *p, EVP_PKEY **ret) {
        const TPMS_ECC_POINT *q = &p->unique.ecc;
        uint8_t x[P256_COORD_SIZE] = {}, y[P256_COORD_SIZE] = {};

        if (p->type != TPM2_ALG_ECC || p->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256)
                return -EINVAL;
        if (q->x.size > P256_COORD_SIZE || q->y.size > P256_COORD_SIZE)
                return -EBADMSG;

        /* Some TPMs strip leading zero bytes of coordinates: left-pad to the field size. */
        memcpy(x + P256_COORD_SIZE - q->x.size, q->x.buffer, q->x.size);
        memcpy(y + P256_COORD_SIZE - q->y.size, q->y.buffer, q->y.size);
        return p256_pkey_from_xy(x, y, ret);
}

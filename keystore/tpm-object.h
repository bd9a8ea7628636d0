/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * TPM object templates and public-area helpers (internal to keystore/).
 *
 * Agent keys and the host key share one template: ECC NIST P-256, scheme fixed to ECDSA-SHA256,
 * fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | sign (Part 2 §8.3 TPMA_OBJECT),
 * never restricted or decrypt. The storage root key follows the TCG Provisioning Guidance ECC SRK
 * template (EK Credential Profile template L-2 with userWithAuth and noDA set).
 */

#include <tss2/tss2_tpm2_types.h>

#include "common/crypto-util.h"

/* Name = nameAlg (UINT16) || SHA-256(marshalled TPMT_PUBLIC) (Part 1 §16). */
#define TPM_NAME_SHA256_SIZE 34U

#define SIGNING_KEY_ATTRIBUTES                                                                   \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |     \
         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT)

#define SRK_ATTRIBUTES                                                                           \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |     \
         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

/* The persistent handle the TCG Provisioning Guidance reserves for the SRK. */
#define SRK_PERSISTENT_HANDLE 0x81000001U

void tpm_template_signing_key(TPM2B_PUBLIC *ret);
void tpm_template_srk(TPM2B_PUBLIC *ret);

/* Is this (e.g. a persistent key found at 0x81000001) an ECC P-256 SRK we can use as parent?
 * noDA may be set or clear; everything else must match the template. */
bool tpm_public_is_usable_srk(const TPMT_PUBLIC *p);

/* Does this public area have exactly the agent/host key template (type, attributes, scheme,
 * curve, empty policy)? */
bool tpm_public_is_signing_key(const TPMT_PUBLIC *p);

/* Return: 0 and the Name in ret; -EINVAL if the area cannot be marshalled. */
int tpm_public_name(const TPMT_PUBLIC *p, uint8_t ret[TPM_NAME_SHA256_SIZE]);

/* Marshal/unmarshal a TPM2B_PUBLIC / TPM2B_PRIVATE. Unmarshalling insists on the exact length. */
int tpm_marshal_public(const TPM2B_PUBLIC *p, uint8_t **ret, size_t *ret_size);
int tpm_unmarshal_public(const uint8_t *buf, size_t size, TPM2B_PUBLIC *ret);
int tpm_marshal_private(const TPM2B_PRIVATE *p, uint8_t **ret, size_t *ret_size);
int tpm_unmarshal_private(const uint8_t *buf, size_t size, TPM2B_PRIVATE *ret);

/* The OpenSSL public key of an ECC P-256 public area. */
int tpm_public_to_pkey(const TPMT_PUBLIC *p, EVP_PKEY **ret);

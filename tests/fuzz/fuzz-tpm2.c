/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The verifier's own TPM structure parsers (attest/tpm2-types.h). Every input is given to all three
 * (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE), so corpus files are raw marshalled structures as they
 * appear in evidence. Invariants: only the documented errors; nothing parsed exceeds the buffer
 * bounds; and for what parses, the helpers the verifier uses next agree with each other (a P-256 key
 * built from an area has the SubjectPublicKeyInfo computed without OpenSSL, an ECDSA signature becomes
 * DER that OpenSSL reads back).
 */

#include <errno.h>
#include <openssl/ecdsa.h>
#include <openssl/x509.h>
#include <string.h>

#include "attest/tpm2-types.h"
#include "common/crypto-util.h"
#include "common/macro.h"
#include "tests/fuzz/fuzz.h"

static EVP_PKEY *p256_params(void) {
        static EVP_PKEY *params = NULL;

        if (!params)
                FUZZ_CHECK(tpm2_p256_params_new(&params) == 0);
        return params;
}

static void fuzz_public(const uint8_t *data, size_t size) {
        Tpm2Public pub;
        int r;

        r = tpm2_public_parse(data, size, &pub);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG);
                return;
        }
        FUZZ_CHECK(pub.type == TPM2P_ALG_ECC || pub.type == TPM2P_ALG_RSA);
        FUZZ_CHECK(pub.auth_policy.size <= TPM2P_DIGEST_MAX);
        FUZZ_CHECK(pub.x.size <= TPM2P_ECC_PARAMETER_MAX && pub.y.size <= TPM2P_ECC_PARAMETER_MAX);
        FUZZ_CHECK(pub.modulus.size <= TPM2P_RSA_MAX);

        uint8_t name[TPM2P_NAME_SHA256_SIZE];
        r = tpm2_public_name(&pub, data, size, name);
        if (pub.name_alg == TPM2P_ALG_SHA256) {
                FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO);
                FUZZ_CHECK(r < 0 || (name[0] == 0x00 && name[1] == 0x0b));
        } else
                FUZZ_CHECK(r == -EOPNOTSUPP);

        uint8_t x[32], y[32];
        r = tpm2_public_p256_point(&pub, x, y);
        FUZZ_CHECK(r == 0 || r == -EOPNOTSUPP || r == -EBADMSG);
        bool is_p256 = r == 0;

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        r = tpm2_public_to_pkey(&pub, p256_params(), &key);
        FUZZ_CHECK(r == 0 || r == -EOPNOTSUPP || r == -EBADMSG || r == -ENOMEM);
        if (r < 0) {
                FUZZ_CHECK(!key);
                return;
        }
        FUZZ_CHECK(is_p256 && key);

        /* The SPKI built by hand is the one of the key OpenSSL accepted. */
        uint8_t spki[TPM2P_P256_SPKI_SIZE];
        FUZZ_CHECK(tpm2_public_p256_spki(&pub, spki) == 0);
        const unsigned char *p = spki;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *back = d2i_PUBKEY(NULL, &p, sizeof(spki));
        if (!back && fuzz_out_of_memory())
                return;
        FUZZ_CHECK(back);
        FUZZ_CHECK(p == spki + sizeof(spki));
        FUZZ_CHECK(EVP_PKEY_eq(key, back) == 1 || fuzz_out_of_memory());
        FUZZ_CHECK(memcmp(spki + 27, x, 32) == 0 && memcmp(spki + 59, y, 32) == 0);
}

static void fuzz_attest(const uint8_t *data, size_t size) {
        Tpm2Attest a;
        int r;

        r = tpm2_attest_parse(data, size, &a);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -EPROTONOSUPPORT);
                return;
        }
        FUZZ_CHECK(a.type == TPM2P_ST_ATTEST_CERTIFY || a.type == TPM2P_ST_ATTEST_QUOTE);
        FUZZ_CHECK(a.safe <= 1);
        FUZZ_CHECK(a.qualified_signer.size <= TPM2P_NAME_MAX);
        FUZZ_CHECK(a.extra_data.size <= TPM2P_DATA_MAX);
        if (a.type == TPM2P_ST_ATTEST_CERTIFY) {
                FUZZ_CHECK(a.certify.name.size <= TPM2P_NAME_MAX);
                FUZZ_CHECK(a.certify.qualified_name.size <= TPM2P_NAME_MAX);
        } else {
                FUZZ_CHECK(a.quote.n_selections <= TPM2P_PCR_SELECTIONS_MAX);
                for (uint32_t i = 0; i < a.quote.n_selections; i++)
                        FUZZ_CHECK(a.quote.selections[i].size_of_select <= TPM2P_PCR_SELECT_MAX);
                FUZZ_CHECK(a.quote.pcr_digest.size <= TPM2P_DIGEST_MAX);
        }
}

static void fuzz_signature(const uint8_t *data, size_t size) {
        Tpm2Signature sig;
        int r;

        r = tpm2_signature_parse(data, size, &sig);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -EOPNOTSUPP);
                return;
        }
        FUZZ_CHECK(sig.sig_alg == TPM2P_ALG_ECDSA || sig.sig_alg == TPM2P_ALG_RSASSA);
        FUZZ_CHECK(sig.r.size <= TPM2P_ECC_PARAMETER_MAX && sig.s.size <= TPM2P_ECC_PARAMETER_MAX);
        FUZZ_CHECK(sig.rsa.size <= TPM2P_RSA_MAX);

        _cleanup_free_ uint8_t *der = NULL;
        size_t der_size = 0;
        r = tpm2_signature_ecdsa_to_der(&sig, 32, &der, &der_size);
        if (sig.sig_alg != TPM2P_ALG_ECDSA) {
                FUZZ_CHECK(r == -EBADMSG);
                return;
        }
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
        if (r < 0)
                return;

        /* OpenSSL reads back exactly the DER made, and the integers fit the curve's field size. */
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long) der_size);
        if (!es && fuzz_out_of_memory())
                return;
        FUZZ_CHECK(es);
        FUZZ_CHECK(p == der + der_size);
        FUZZ_CHECK(BN_num_bytes(ECDSA_SIG_get0_r(es)) <= 32 && BN_num_bytes(ECDSA_SIG_get0_s(es)) <= 32);
        ECDSA_SIG_free(es);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_public(data, size);
        fuzz_attest(data, size);
        fuzz_signature(data, size);
        return 0;
}

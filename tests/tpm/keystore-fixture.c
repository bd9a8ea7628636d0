/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keystore TPM tests' shared fixture (see keystore-fixture.h).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <tss2/tss2_mu.h>

#include "common/crypto-util.h"
#include "tests/tpm/keystore-fixture.h"

int fixture_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        assert_int_equal(tpm_sim_start(&f->sim), 0);
        snprintf(f->state_dir, sizeof(f->state_dir), "%s/state-dir", f->sim->dir);
        f->opts = (KeystoreOptions) { .tcti = f->sim->tcti, .state_dir = f->state_dir };
        *state = f;
        return 0;
}

int fixture_teardown(void **state) {
        Fixture *f = *state;
        tpm_sim_free(f->sim);
        free(f);
        return 0;
}

Keystore *fixture_open_keystore(Fixture *f) {
        char err[KEYSTORE_ERROR_MAX] = "";
        Keystore *ks = NULL;
        int r = keystore_open(&f->opts, &ks, err);
        if (r < 0)
                fail_msg("keystore_open: %s (%d)", err, r);
        return ks;
}

void verify_tpm_signature(const uint8_t *pub_area, size_t pub_size, const uint8_t *msg, size_t msg_size,
                          const uint8_t *sig, size_t sig_size) {
        TPMT_PUBLIC pub = {};
        TPMT_SIGNATURE s = {};
        size_t off = 0;
        uint8_t raw[64] = {}, digest[32], *der = NULL;
        size_t der_size = 0;
        EVP_PKEY *pkey = NULL;

        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(pub_area, pub_size, &off, &pub), TSS2_RC_SUCCESS);
        off = 0;
        assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig, sig_size, &off, &s), TSS2_RC_SUCCESS);
        assert_int_equal(off, sig_size);
        assert_int_equal(s.sigAlg, TPM2_ALG_ECDSA);
        assert_int_equal(s.signature.ecdsa.hash, TPM2_ALG_SHA256);
        memcpy(raw + 32 - s.signature.ecdsa.signatureR.size, s.signature.ecdsa.signatureR.buffer,
               s.signature.ecdsa.signatureR.size);
        memcpy(raw + 64 - s.signature.ecdsa.signatureS.size, s.signature.ecdsa.signatureS.buffer,
               s.signature.ecdsa.signatureS.size);
        assert_int_equal(p256_pkey_from_xy(pub.unique.ecc.x.buffer, pub.unique.ecc.y.buffer, &pkey), 0);
        assert_int_equal(ecdsa_raw_to_der(raw, 32, &der, &der_size), 0);
        assert_int_equal(sha256(msg, msg_size, digest), 0);
        assert_int_equal(ecdsa_verify_digest(pkey, digest, der, der_size), 1);
        free(der);
        EVP_PKEY_free(pkey);
}

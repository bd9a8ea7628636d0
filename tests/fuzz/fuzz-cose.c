/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The COSE_Sign1 verifier (attest/cose.h), with a fixed P-256 key: the host key of tests/data (so the
 * captured receipt.cose in the corpus verifies and the fuzzer sees the accepting path too).
 * Invariants: only the documented errors; outputs only on success; what was accepted is a tagged,
 * deterministic item whose protected header and payload come back as they were sent.
 */

#include <errno.h>
#include <openssl/x509.h>
#include <string.h>

#include "attest/cose.h"
#include "common/cbor-util.h"
#include "tests/fuzz/fuzz.h"

/* tests/data/host-public.der: DER SubjectPublicKeyInfo of the host key that signed receipt.cose. */
static const uint8_t host_public_der[] = {
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
        0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x04, 0x2b, 0x9d, 0x11, 0x4a,
        0x28, 0xc6, 0xc1, 0xf2, 0x93, 0xa0, 0x98, 0xcf, 0xd6, 0x99, 0x2e, 0xec, 0x2e, 0x21, 0x94, 0x76,
        0xa6, 0x45, 0x15, 0x38, 0x91, 0x27, 0xe4, 0x48, 0xbe, 0x50, 0x3d, 0xd5, 0x53, 0x43, 0xd5, 0xb6,
        0xe7, 0x99, 0x0d, 0x4c, 0xe4, 0x0f, 0x01, 0x47, 0xcd, 0x5c, 0x2e, 0x7e, 0x46, 0x84, 0x00, 0xe5,
        0x16, 0x6b, 0xda, 0x6b, 0xbc, 0xb1, 0x4f, 0xae, 0x3d, 0x95, 0x89,
};

static EVP_PKEY *fuzz_key(void) {
        static EVP_PKEY *key = NULL;

        if (!key) {
                const unsigned char *p = host_public_der;
                key = d2i_PUBKEY(NULL, &p, sizeof(host_public_der));
                FUZZ_CHECK(key);
        }
        return key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        EVP_PKEY *key = fuzz_key();
        _cleanup_free_ uint8_t *prot = NULL, *payload = NULL;
        size_t prot_size = 0, payload_size = 0;
        int r;

        r = cose_sign1_check(data, size, key, &prot, &prot_size, &payload, &payload_size);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -EKEYREJECTED || r == -ENOMEM || r == -EIO);
                FUZZ_CHECK(!prot && !payload);
                return 0;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(size > 1 && data[0] == 0xd2);
        FUZZ_CHECK(prot && prot_size > 0 && prot_size <= COSE_PROTECTED_MAX);
        FUZZ_CHECK(payload_size <= COSE_PAYLOAD_MAX);
        FUZZ_CHECK(payload || payload_size == 0);

        /* The protected bytes and the payload are copied out of the message unchanged. */
        FUZZ_CHECK(memmem(data, size, prot, prot_size));
        FUZZ_CHECK(payload_size == 0 || memmem(data, size, payload, payload_size));

        /* Without output pointers the verdict is the same. */
        r = cose_sign1_check(data, size, key, NULL, NULL, NULL, NULL);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || (r == -EIO && fuzz_out_of_memory()));

        /* Re-signing is impossible here, but the Sig_structure rebuilt from the outputs is well-formed. */
        _cleanup_free_ uint8_t *tbs = NULL;
        size_t tbs_size = 0;
        r = cose_sign1_sig_structure(prot, prot_size, payload, payload_size, &tbs, &tbs_size);
        FUZZ_CHECK(r == 0 || r == -ENOMEM);

        return 0;
}

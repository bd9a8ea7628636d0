/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the keystore's TPM tests share: a private swtpm and state directory per test (cmocka setup and
 * teardown), opening the keystore on it, and checking a TPM signature with OpenSSL.
 */

#include <stddef.h>
#include <stdint.h>

#include "keystore/keystore.h"
#include "tests/lib/tpm-sim.h"

typedef struct Fixture {
        TpmSim *sim;
        char state_dir[64];
        KeystoreOptions opts;
} Fixture;

int fixture_setup(void **state);
int fixture_teardown(void **state);
/* keystore_open() with the fixture's options; fails the test if it fails. */
Keystore *fixture_open_keystore(Fixture *f);
/* sig (marshalled TPMT_SIGNATURE, ECDSA-SHA256) verifies over SHA-256(msg) with the P-256 key of
 * pub_area (marshalled TPMT_PUBLIC); fails the test otherwise. */
void verify_tpm_signature(const uint8_t *pub_area, size_t pub_size, const uint8_t *msg, size_t msg_size,
                          const uint8_t *sig, size_t sig_size);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Task keys (the tasks issue; DESIGN §5 "Task credential"): ephemeral ECDSA P-256 signing keys for one
 * task of one agent, created under a primary in the TPM's NULL hierarchy, so that
 *
 *   - they cannot outlive the boot: the NULL seed changes at every TPM Reset, and neither the key nor
 *     any context of it loads afterwards (TPM 2.0 Part 1 §14.4; measured: 0x1DF);
 *   - no blob is ever written to disk: the key lives in memory as a saved TPM context only;
 *   - the TPM itself enforces their expiry: authPolicy = PolicyCounterTimer(clock < limit) AND
 *     PolicyCounterTimer(resetCount == R) AND PolicyCounterTimer(restartCount == S) (Part 3 §23.10,
 *     operands at offsets 8, 16, 20 of TPMS_TIME_INFO), with userWithAuth CLEAR so the policy is the
 *     only way to sign (USER role); the limit comes from TPM2_ReadClock at creation. adminWithPolicy
 *     is CLEAR too, so the AK's TPM2_Certify (ADMIN role) works with a random authValue that is
 *     forgotten right after it.
 *
 * The TPM clock counts milliseconds the TPM has been powered: it stops while the TPM is off, so a task
 * key's limit is powered time, and the wall-clock expiry agentidd enforces (and the credential's exp)
 * may come first. A suspend or hibernation that powers the TPM down (TPM2_Shutdown(STATE), then a
 * TPM Resume or Restart) increments restartCount and so ends every task key (-EKEYEXPIRED).
 *
 * Each signature costs ContextLoad + StartAuthSession + three PolicyCounterTimer + Sign + two
 * FlushContext (measured in the tpm suite, test-tpm-task; numbers in docs/keystore.md "Task keys").
 *
 * Functions follow keystore.h: one thread, -errno, keystore_last_error() for the message. They keep
 * the TPM's three-object budget: the task key's parent is flushed right after creation.
 */

#include <stdint.h>

#include "keystore/keystore.h"

#define TASK_KEY_TTL_MAX_MS (24ULL * 3600 * 1000)   /* a task lives at most a day of TPM time */

typedef struct TaskKey TaskKey;

/* What a verifier needs to check a task key: its public area and its certification by the AK. */
typedef struct TaskKeyCertificate {
        uint8_t *pub;                   /* marshalled TPMT_PUBLIC (no size prefix) */
        size_t pub_size;
        uint8_t *certify;               /* TPMS_ATTEST as signed (type 0x8017) */
        size_t certify_size;
        uint8_t *certify_sig;           /* TPMT_SIGNATURE by the AK */
        size_t certify_sig_size;
} TaskKeyCertificate;

void task_key_certificate_done(TaskKeyCertificate *c);

/*
 * keystore_task_key_create() - a new task key, certified by the AK
 * @ttl_ms: TPM-clock lifetime, 1..TASK_KEY_TTL_MAX_MS
 * @certify_data: TPM2_Certify qualifyingData (the credential's SHA-256(cti))
 *
 * Return: 0, the key and its certificate; -EINVAL; -EOPNOTSUPP (attestation unavailable: no AK); TPM
 *         errors as keystore.h maps them.
 */
int keystore_task_key_create(Keystore *ks, uint64_t ttl_ms, const uint8_t certify_data[32], TaskKey **ret,
                             TaskKeyCertificate *ret_cert);

/*
 * keystore_task_key_sign() - sign a SHA-256 digest with the task key, through its policy
 *
 * Return: 0; -EKEYEXPIRED (the TPM refused the policy: the clock passed the limit — also when the
 *         TPM restarted since, restartCount changed); -EKEYREVOKED (the key is gone: its context no
 *         longer loads, i.e. a TPM Reset); other TPM errors. Both verdicts are final: the saved
 *         context is dropped and later calls answer the same without asking the TPM.
 */
int keystore_task_key_sign(Keystore *ks, TaskKey *t, const uint8_t digest[KEYSTORE_DIGEST_SIZE],
                           uint8_t ret_sig[KEYSTORE_SIGNATURE_SIZE]);

/* The task key's TPM Name (KEY_KID_SIZE bytes: its kid) and DER SubjectPublicKeyInfo. */
const uint8_t *task_key_name(const TaskKey *t);
int task_key_public_der(const TaskKey *t, uint8_t **ret, size_t *ret_size);
/* The TPM-clock limit (ms) and the resetCount/restartCount the key is bound to. */
void task_key_limits(const TaskKey *t, uint64_t *ret_clock_limit, uint32_t *ret_reset_count,
                     uint32_t *ret_restart_count);

/* Forget the key: the saved context is zeroed and freed (nothing is loaded in the TPM between calls). */
TaskKey *task_key_free(TaskKey *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TaskKey *, task_key_free);

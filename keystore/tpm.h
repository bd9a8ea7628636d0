/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The TPM connection: one TCTI and one ESAPI context, used by one thread at a time (ESAPI contexts are
 * not thread-safe). This header is internal to keystore/: it is the boundary where TSS2_RC values are
 * decoded, once, into -errno plus a human-readable message kept in Tpm.last_error.
 *
 * Error mapping (docs/keystore.md has the same table):
 *   TCTI unreachable, I/O error              -ENODEV        TPM unavailable
 *   TPM_RC_INITIALIZE (no TPM2_Startup)      -ENXIO         TPM unavailable
 *   RETRY / YIELDED / TESTING                retried with backoff, then -EBUSY
 *   TPM_RC_LOCKOUT                           -ENOLCK        dictionary-attack lockout
 *   AUTH_FAIL / BAD_AUTH                     -EKEYREJECTED  wrong authorisation value
 *   OBJECT_MEMORY / SESSION_MEMORY / MEMORY  -ENOBUFS       TPM out of slots
 *   HANDLE / REFERENCE_Hx                    -ESTALE        handle no longer loaded (TPM reset)
 *   INTEGRITY                                -EBADMSG       blob or context does not belong here
 *   ESAPI allocation failure                 -ENOMEM
 *   anything else                            -EIO           TPM failure
 */

#include <stdbool.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "common/macro.h"

/* Attempts for TPM_RC_RETRY / YIELDED / TESTING before giving up with -EBUSY (backoff 1, 2, 4, ... ms). */
#define TPM_RETRY_MAX 8U

#define TPM_ERROR_MAX 256U

typedef struct Tpm {
        char *tcti_conf;
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        TSS2_RC last_rc;
        char last_error[TPM_ERROR_MAX];
        char manufacturer[5];
} Tpm;

/*
 * tpm_open() - connect to the TPM named by a TCTI configuration string and check it can do our work
 *
 * Checks ECC NIST P-256, SHA-256 and ECDSA support with TPM2_GetCapability, which also proves the TPM
 * answers. On failure ret_error (TPM_ERROR_MAX bytes, may be NULL) says why, naming the TCTI.
 * Return: 0; -ENODEV/-ENXIO when unreachable; -EOPNOTSUPP when an algorithm is missing; other -errno.
 */
int tpm_open(const char *tcti_conf, Tpm **ret, char *ret_error);
Tpm *tpm_close(Tpm *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Tpm *, tpm_close);

/* Decode rc into -errno, remembering a message "<what>: <decoded rc>" in t->last_error. */
int tpm_rc_to_errno(Tpm *t, TSS2_RC rc, const char *what);
bool tpm_rc_is_retryable(TSS2_RC rc);
void tpm_backoff(unsigned attempt);

/* Run an ESAPI call, retrying transient TPM conditions, and decode the result into 0 / -errno. */
#define TPM_CALL(t, what, call)                                                 \
        ({                                                                      \
                TSS2_RC _rc;                                                    \
                for (unsigned _attempt = 0;; _attempt++) {                      \
                        _rc = (call);                                           \
                        if (!tpm_rc_is_retryable(_rc) || _attempt + 1 >= TPM_RETRY_MAX) \
                                break;                                          \
                        tpm_backoff(_attempt);                                  \
                }                                                               \
                tpm_rc_to_errno((t), _rc, (what));                              \
        })

/* Flush a transient object or session; failures are ignored (used on cleanup paths). */
void tpm_flush(Tpm *t, ESYS_TR *handle);

static inline void esys_freep(void *p) {
        Esys_Free(*(void **) p);
}
#define _cleanup_esys_ _cleanup_(esys_freep)

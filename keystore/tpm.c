/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TPM connection and TSS2_RC decoding (see tpm.h).
 */

#include <stdio.h>
#include <time.h>

#include "common/log.h"
#include "keystore/tpm.h"

/* Part 2 §6.6: format-one codes carry the error in bits 0..5 plus bit 7; format zero in bits 0..6
 * plus the VER1 (bit 8) and WARN (bit 11) flags. Strip parameter/handle/session numbers. */
static TSS2_RC tpm_rc_base(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        /* A resource manager may forward TPM codes in its own layer; they mean the same thing. */
        if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
                return rc;
        rc &= ~TSS2_RC_LAYER_MASK;
        if (rc & TPM2_RC_FMT1)
                return rc & (TPM2_RC_FMT1 | 0x3f);
        return rc & 0xfff & ~(TSS2_RC) 0x400; /* drop the vendor/"T" bit 10 but keep WARN and VER1 */
}

bool tpm_rc_is_retryable(TSS2_RC rc) {
        TSS2_RC b = tpm_rc_base(rc);
        return b == TPM2_RC_RETRY || b == TPM2_RC_YIELDED || b == TPM2_RC_TESTING;
}

void tpm_backoff(unsigned attempt) {
        struct timespec ts = {
                .tv_sec = 0,
                .tv_nsec = (long) (1000000L << MIN(attempt, 9U)), /* 1 ms, doubling, at most 512 ms */
        };
        (void) nanosleep(&ts, NULL);
}

int tpm_rc_to_errno(Tpm *t, TSS2_RC rc, const char *what) {
        if (rc == TSS2_RC_SUCCESS)
                return 0;

        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
        TSS2_RC base = tpm_rc_base(rc);
        int r;

        if (layer == TSS2_TCTI_RC_LAYER)
                r = (rc & 0xffff) == TSS2_BASE_RC_MEMORY ? -ENOMEM : -ENODEV;
        else if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER) {
                switch (rc & 0xffff) {
                case TSS2_BASE_RC_MEMORY:
                        r = -ENOMEM;
                        break;
                case TSS2_BASE_RC_IO_ERROR:
                case TSS2_BASE_RC_NO_CONNECTION:
                case TSS2_BASE_RC_TRY_AGAIN:
                        r = -ENODEV;
                        break;
                case TSS2_BASE_RC_BAD_VALUE:
                case TSS2_BASE_RC_BAD_REFERENCE:
                case TSS2_BASE_RC_INSUFFICIENT_BUFFER:
                        r = -EINVAL;
                        break;
                default:
                        r = -EIO;
                }
        } else {
                switch (base) {
                case TPM2_RC_INITIALIZE:
                        r = -ENXIO;
                        break;
                case TPM2_RC_RETRY:
                case TPM2_RC_YIELDED:
                case TPM2_RC_TESTING:
                        r = -EBUSY;
                        break;
                case TPM2_RC_LOCKOUT:
                        r = -ENOLCK;
                        break;
                case TPM2_RC_AUTH_FAIL:
                case TPM2_RC_BAD_AUTH:
                        r = -EKEYREJECTED;
                        break;
                case TPM2_RC_OBJECT_MEMORY:
                case TPM2_RC_SESSION_MEMORY:
                case TPM2_RC_MEMORY:
                case TPM2_RC_OBJECT_HANDLES:
                case TPM2_RC_SESSION_HANDLES:
                        r = -ENOBUFS;
                        break;
                case TPM2_RC_HANDLE:
                case TPM2_RC_REFERENCE_H0:
                case TPM2_RC_REFERENCE_H1:
                case TPM2_RC_REFERENCE_H2:
                case TPM2_RC_REFERENCE_H3:
                case TPM2_RC_REFERENCE_H4:
                case TPM2_RC_REFERENCE_H5:
                case TPM2_RC_REFERENCE_H6:
                        r = -ESTALE;
                        break;
                case TPM2_RC_INTEGRITY:
                        r = -EBADMSG;
                        break;
                default:
                        r = -EIO;
                }
        }

        if (t) {
                t->last_rc = rc;
                (void) snprintf(t->last_error, sizeof(t->last_error), "%s: %s (0x%x)", what,
                                Tss2_RC_Decode(rc), (unsigned) rc);
                log_debug("TPM %s", t->last_error);
        }
        return r;
}

void tpm_flush(Tpm *t, ESYS_TR *handle) {
        if (!t || !t->esys || *handle == ESYS_TR_NONE)
                return;

        TSS2_RC rc = Esys_FlushContext(t->esys, *handle);
        if (rc != TSS2_RC_SUCCESS) {
                /* The TPM may have forgotten the object already (reset); release ESAPI's metadata. */
                log_debug("Flushing TPM handle failed, closing it: %s", Tss2_RC_Decode(rc));
                (void) Esys_TR_Close(t->esys, handle);
        }
        *handle = ESYS_TR_NONE;
}

Tpm *tpm_close(Tpm *t) {
        if (!t)
                return NULL;
        if (t->esys)
                Esys_Finalize(&t->esys);
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        free(t->tcti_conf);
        return mfree(t);
}

static int tpm_get_capability(Tpm *t, TPM2_CAP cap, UINT32 property, UINT32 count, TPMS_CAPABILITY_DATA **ret) {
        TPMI_YES_NO more = TPM2_NO;
        return TPM_CALL(t, "TPM2_GetCapability",
                        Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, cap, property,
                                           count, &more, ret));
}

static int tpm_check_algorithm(Tpm *t, TPM2_ALG_ID alg, const char *name) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *caps = NULL;
        int r = tpm_get_capability(t, TPM2_CAP_ALGS, alg, 1, &caps);
        if (r < 0)
                return r;
        if (caps->data.algorithms.count < 1 || caps->data.algorithms.algProperties[0].alg != alg) {
                (void) snprintf(t->last_error, sizeof(t->last_error), "TPM does not implement %s", name);
                return -EOPNOTSUPP;
        }
        return 0;
}

static int tpm_check_capabilities(Tpm *t) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *curves = NULL, *props = NULL;
        int r;

        r = tpm_get_capability(t, TPM2_CAP_ECC_CURVES, TPM2_ECC_NONE, TPM2_MAX_ECC_CURVES, &curves);
        if (r < 0)
                return r;
        bool p256 = false;
        for (UINT32 i = 0; i < curves->data.eccCurves.count; i++)
                p256 = p256 || curves->data.eccCurves.eccCurves[i] == TPM2_ECC_NIST_P256;
        if (!p256) {
                (void) snprintf(t->last_error, sizeof(t->last_error), "TPM does not implement ECC NIST P-256");
                return -EOPNOTSUPP;
        }

        r = tpm_check_algorithm(t, TPM2_ALG_SHA256, "SHA-256");
        if (r < 0)
                return r;
        r = tpm_check_algorithm(t, TPM2_ALG_ECDSA, "ECDSA");
        if (r < 0)
                return r;

        /* Part 2 §6.13 TPM_PT_MANUFACTURER: four ASCII characters, big-endian in a UINT32. */
        r = tpm_get_capability(t, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1, &props);
        if (r < 0)
                return r;
        if (props->data.tpmProperties.count >= 1 &&
            props->data.tpmProperties.tpmProperty[0].property == TPM2_PT_MANUFACTURER) {
                UINT32 v = props->data.tpmProperties.tpmProperty[0].value;
                for (unsigned i = 0; i < 4; i++) {
                        char c = (char) (v >> (24 - 8 * i));
                        t->manufacturer[i] = (c >= 0x20 && c < 0x7f) ? c : ' ';
                }
                /* Trailing NULs/spaces are padding. */
                for (int i = 3; i >= 0 && t->manufacturer[i] == ' '; i--)
                        t->manufacturer[i] = '\0';
        }
        return 0;
}

int tpm_open(const char *tcti_conf, Tpm **ret, char *ret_error) {
        _cleanup_(tpm_closep) Tpm *t = NULL;
        TSS2_RC rc;
        int r;

        if (!tcti_conf || !*tcti_conf)
                return -EINVAL;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->tcti_conf = strdup(tcti_conf);
        if (!t->tcti_conf)
                return -ENOMEM;

        rc = Tss2_TctiLdr_Initialize(tcti_conf, &t->tcti);
        if (rc != TSS2_RC_SUCCESS) {
                (void) tpm_rc_to_errno(t, rc, "opening TCTI");
                /* Any failure to even open the transport means: no TPM there. */
                r = -ENODEV;
                goto fail;
        }
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm_rc_to_errno(t, rc, "Esys_Initialize");
                goto fail;
        }
        r = tpm_check_capabilities(t);
        if (r < 0)
                goto fail;

        *ret = TAKE_PTR(t);
        return 0;

fail:
        /* Name the TCTI in the message so "which TPM?" is never a question. */
        if (ret_error)
                (void) snprintf(ret_error, TPM_ERROR_MAX, "TPM at '%s' is not usable: %s", tcti_conf,
                                t->last_error[0] ? t->last_error : strerror(-r));
        log_debug("TPM at '%s' is not usable: %s", tcti_conf, t->last_error);
        return r;
}

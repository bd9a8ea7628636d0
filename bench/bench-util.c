/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark helpers (see bench-util.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tss2/tss2_tctildr.h>

#include "bench/bench-util.h"

double bench_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

double bench_quantile(double *v, size_t n, double q) {
        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), cmp_double);
        return v[(size_t) (q * (double) (n - 1) + 0.5)];
}

static void check(TSS2_RC rc, const char *what) {
        if (rc != TSS2_RC_SUCCESS) {
                fprintf(stderr, "%s failed: 0x%x\n", what, (unsigned) rc);
                exit(1);
        }
}

/* The storage root key as agentid derives it (ECC P-256, AES-128-CFB) and the agent-key template. */
static const TPM2B_PUBLIC srk_template = { .publicArea = {
        .type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA256,
        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
        .parameters.eccDetail = {
                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                .scheme.scheme = TPM2_ALG_NULL, .curveID = TPM2_ECC_NIST_P256, .kdf.scheme = TPM2_ALG_NULL,
        },
} };

static const TPM2B_PUBLIC key_template = { .publicArea = {
        .type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA256,
        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT,
        .parameters.eccDetail = {
                .symmetric.algorithm = TPM2_ALG_NULL,
                .scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
                .curveID = TPM2_ECC_NIST_P256, .kdf.scheme = TPM2_ALG_NULL,
        },
} };

static void key_sensitive(TPM2B_SENSITIVE_CREATE *s) {
        *s = (TPM2B_SENSITIVE_CREATE) { .sensitive.userAuth = { .size = 32 } };
        memset(s->sensitive.userAuth.buffer, 0xa5, 32);
}

void raw_srk_setup(const char *tcti, RawKey *k) {
        TPM2B_SENSITIVE_CREATE sens = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        TPM2B_PUBLIC *srk_pub = NULL;
        TPM2B_CREATION_DATA *cd = NULL;
        TPM2B_DIGEST *ch = NULL;
        TPMT_TK_CREATION *ct = NULL;

        check(Tss2_TctiLdr_Initialize(tcti, &k->tcti), "Tss2_TctiLdr_Initialize");
        check(Esys_Initialize(&k->esys, k->tcti, NULL), "Esys_Initialize");
        check(Esys_CreatePrimary(k->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                 &srk_template, &outside, &pcrs, &k->key, &srk_pub, &cd, &ch, &ct),
              "Esys_CreatePrimary");
        Esys_Free(srk_pub);
        Esys_Free(cd);
        Esys_Free(ch);
        Esys_Free(ct);
}

/* One key under the SRK, as keystore_create_key() asks the TPM for it; returns the blobs. */
static void raw_create_blobs(RawKey *srk, TPM2B_PRIVATE **ret_priv, TPM2B_PUBLIC **ret_pub) {
        TPM2B_SENSITIVE_CREATE key_sens;
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        TPM2B_CREATION_DATA *cd = NULL;
        TPM2B_DIGEST *ch = NULL;
        TPMT_TK_CREATION *ct = NULL;

        key_sensitive(&key_sens);
        check(Esys_Create(srk->esys, srk->key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &key_sens, &key_template,
                          &outside, &pcrs, ret_priv, ret_pub, &cd, &ch, &ct),
              "Esys_Create");
        Esys_Free(cd);
        Esys_Free(ch);
        Esys_Free(ct);
}

void raw_create(RawKey *srk) {
        TPM2B_PRIVATE *priv = NULL;
        TPM2B_PUBLIC *pub = NULL;

        raw_create_blobs(srk, &priv, &pub);
        Esys_Free(priv);
        Esys_Free(pub);
}

void raw_key_setup(const char *tcti, RawKey *k) {
        TPM2B_SENSITIVE_CREATE key_sens;
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_PRIVATE *priv = NULL;
        RawKey srk = {};

        raw_srk_setup(tcti, &srk);
        raw_create_blobs(&srk, &priv, &pub);
        *k = (RawKey) { .tcti = srk.tcti, .esys = srk.esys };
        check(Esys_Load(k->esys, srk.key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &k->key),
              "Esys_Load");
        check(Esys_FlushContext(k->esys, srk.key), "Esys_FlushContext");
        key_sensitive(&key_sens);
        check(Esys_TR_SetAuth(k->esys, k->key, &key_sens.sensitive.userAuth), "Esys_TR_SetAuth");
        Esys_Free(pub);
        Esys_Free(priv);
}

void raw_key_sign(RawKey *k, const uint8_t digest[32]) {
        TPM2B_DIGEST d = { .size = 32 };
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
        TPMT_SIGNATURE *sig = NULL;

        memcpy(d.buffer, digest, 32);
        check(Esys_Sign(k->esys, k->key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme, &ticket, &sig),
              "Esys_Sign");
        Esys_Free(sig);
}

void raw_key_done(RawKey *k) {
        if (k->esys) {
                (void) Esys_FlushContext(k->esys, k->key);
                Esys_Finalize(&k->esys);
        }
        if (k->tcti)
                Tss2_TctiLdr_Finalize(&k->tcti);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Task keys: ephemeral, policy-bound signing keys under a NULL-hierarchy primary (see task-key.h).
 *
 * The key's authPolicy is computed in software (Part 3 §23.10) from the values TPM2_ReadClock returns
 * (ReadClock is not an attestation, so nothing is obfuscated), and the TPM checks the result: a
 * public area whose policy differs from the template is refused, and the tpm suite compares the digest
 * with a trial session's.
 *
 * Slot plan of keystore_task_key_create() (three objects at most, as in attestation.c):
 *   empty the key cache;  TPM2_ReadClock;
 *   NULL primary (1);  TPM2_Create under it (primary + the scratch slot Create needs = 2);
 *   TPM2_Load (primary + task key = 2);  primary flushed (1);
 *   AK by ContextLoad (2) — or EK + AK Load (3), EK released (2);
 *   TPM2_Certify (AK + task key);  TPM2_ContextSave of the task key;  task key and AK flushed (0).
 * keystore_task_key_sign(): the task key by ContextLoad next to at most KEYSTORE_MAX_LOADED cached keys
 * (= 3 objects), plus one policy session (sessions have slots of their own); both flushed on every path.
 */

#include "common/crypto-util.h"
#include "common/log.h"
#include "common/task-policy.h"
#include "keystore/keystore-internal.h"
#include "keystore/task-key.h"
#include "keystore/tpm-object.h"

/* Part 2 §8.3: like agent keys, but userWithAuth CLEAR (signing only through the policy) and
 * adminWithPolicy CLEAR (TPM2_Certify with the authValue). */
#define TASK_KEY_ATTRIBUTES                                                                      \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |     \
         TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT)


/* common/task-policy.h spells the TPM constants out for the verifier, which has no tss2 headers. */
_Static_assert(TASK_POLICY_EO_EQ == TPM2_EO_EQ && TASK_POLICY_EO_UNSIGNED_LT == TPM2_EO_UNSIGNED_LT &&
               TASK_POLICY_CC_POLICY_COUNTER_TIMER == TPM2_CC_PolicyCounterTimer,
               "TPM constants of common/task-policy.h");

struct TaskKey {
        TPMT_PUBLIC pub;
        uint8_t name[KEY_KID_SIZE];
        uint8_t *context;                  /* marshalled TPMS_CONTEXT (with ESAPI's metadata) */
        size_t context_size;
        int dead;                          /* -EKEYEXPIRED / -EKEYREVOKED once the TPM said so */
        uint64_t clock_limit;
        uint32_t reset_count;
        uint32_t restart_count;
};

/* Did the TPM refuse the policy? TPM_RC_POLICY (format zero, from PolicyCounterTimer when the
 * comparison fails, Part 3 §23.10) or TPM_RC_POLICY_FAIL (format one, with a session number, from the
 * authorised command when the digest does not match) — Part 2 §6.6, numbers stripped as tpm.c does. */
static bool rc_is_policy_refusal(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
                return false;
        rc &= ~TSS2_RC_LAYER_MASK;
        if (rc & TPM2_RC_FMT1)
                return (rc & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_POLICY_FAIL;
        return (rc & 0xfff & ~(TSS2_RC) 0x400) == TPM2_RC_POLICY;
}

/* The template the TPM must have followed exactly (Part 2 §12.2.4), given its policy digest. */
static bool task_public_is_expected(const TPMT_PUBLIC *p, const uint8_t policy[SHA256_DIGEST_SIZE]) {
        const TPMS_ECC_PARMS *e = &p->parameters.eccDetail;

        return p->type == TPM2_ALG_ECC && p->nameAlg == TPM2_ALG_SHA256 &&
               p->objectAttributes == TASK_KEY_ATTRIBUTES && p->authPolicy.size == SHA256_DIGEST_SIZE &&
               memcmp(p->authPolicy.buffer, policy, SHA256_DIGEST_SIZE) == 0 &&
               e->symmetric.algorithm == TPM2_ALG_NULL && e->scheme.scheme == TPM2_ALG_ECDSA &&
               e->scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256 && e->curveID == TPM2_ECC_NIST_P256 &&
               e->kdf.scheme == TPM2_ALG_NULL && p->unique.ecc.x.size > 0 &&
               p->unique.ecc.x.size <= P256_COORD_SIZE && p->unique.ecc.y.size > 0 &&
               p->unique.ecc.y.size <= P256_COORD_SIZE;
}

/* The key will never sign again: forget its context and remember why. */
static void task_key_bury(TaskKey *t, int reason) {
        if (t->context)
                erase(t->context, t->context_size);
        t->context = mfree(t->context);
        t->context_size = 0;
        t->dead = reason;
}

void task_key_certificate_done(TaskKeyCertificate *c) {
        if (!c)
                return;
        free(c->pub);
        free(c->certify);
        free(c->certify_sig);
        *c = (TaskKeyCertificate) {};
}

TaskKey *task_key_free(TaskKey *t) {
        if (!t)
                return NULL;
        task_key_bury(t, 0);
        erase(t, sizeof(*t));
        return mfree(t);
}

const uint8_t *task_key_name(const TaskKey *t) {
        return t->name;
}

int task_key_public_der(const TaskKey *t, uint8_t **ret, size_t *ret_size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        r = tpm_public_to_pkey(&t->pub, &pkey);
        if (r < 0)
                return r;
        return pkey_to_spki_der(pkey, ret, ret_size);
}

void task_key_limits(const TaskKey *t, uint64_t *ret_clock_limit, uint32_t *ret_reset_count,
                     uint32_t *ret_restart_count) {
        if (ret_clock_limit)
                *ret_clock_limit = t->clock_limit;
        if (ret_reset_count)
                *ret_reset_count = t->reset_count;
        if (ret_restart_count)
                *ret_restart_count = t->restart_count;
}

/* ---- creation -------------------------------------------------------------------------------- */

/* Read the clock and fill the limits and the template (attributes, policy) of a new task key. */
static int task_key_prepare(Keystore *ks, uint64_t ttl_ms, TaskKey *t, TPM2B_PUBLIC *ret_template) {
        _cleanup_esys_ TPMS_TIME_INFO *now = NULL;
        int r;

        /* TPM2_ReadClock (Part 3 §29.1) answers the real counters; only attestations obfuscate them. */
        r = TPM_CALL(ks->tpm, "TPM2_ReadClock",
                     Esys_ReadClock(ks->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &now));
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Reading the TPM clock");
        if (now->clockInfo.clock > UINT64_MAX - ttl_ms)
                return keystore_fail(ks, -ERANGE, "The TPM clock is too close to its end for a task key");

        t->clock_limit = now->clockInfo.clock + ttl_ms;
        t->reset_count = now->clockInfo.resetCount;
        t->restart_count = now->clockInfo.restartCount;

        tpm_template_signing_key(ret_template);
        ret_template->publicArea.objectAttributes = TASK_KEY_ATTRIBUTES;
        ret_template->publicArea.authPolicy.size = SHA256_DIGEST_SIZE;
        r = task_policy_digest(t->clock_limit, t->reset_count, t->restart_count,
                               ret_template->publicArea.authPolicy.buffer);
        if (r < 0)
                return keystore_fail(ks, r, "Computing the task key's policy digest failed");
        return 0;
}

/* The whole TPM sequence of a creation (header comment: slot plan). Flushes everything it loaded. */
static int task_key_make(Keystore *ks, uint64_t ttl_ms, const uint8_t certify_data[32], TaskKey *t,
                         TaskKeyCertificate *c) {
        _cleanup_esys_ TPM2B_PUBLIC *primary_pub = NULL, *pub = NULL;
        _cleanup_esys_ TPM2B_PRIVATE *priv = NULL;
        _cleanup_esys_ TPM2B_CREATION_DATA *cd1 = NULL, *cd2 = NULL;
        _cleanup_esys_ TPM2B_DIGEST *ch1 = NULL, *ch2 = NULL;
        _cleanup_esys_ TPMT_TK_CREATION *ct1 = NULL, *ct2 = NULL;
        _cleanup_esys_ TPM2B_NAME *loaded_name = NULL;
        TPM2B_SENSITIVE_CREATE sens = { .sensitive.userAuth.size = KEY_AUTH_SIZE };
        TPM2B_SENSITIVE_CREATE primary_sens = {};
        TPM2B_PUBLIC template, primary_template;
        TPM2B_AUTH auth = { .size = KEY_AUTH_SIZE };
        const TPM2B_AUTH no_auth = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        ESYS_TR primary = ESYS_TR_NONE, key = ESYS_TR_NONE, ak = ESYS_TR_NONE;
        uint8_t area[sizeof(TPMT_PUBLIC)];
        size_t area_size = 0;
        int r;

        /* The AK may need its EK next to the task key: nothing cached stays loaded meanwhile. */
        r = keystore_cache_make_room(ks, 0);
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Making room for a task key");

        r = task_key_prepare(ks, ttl_ms, t, &template);
        if (r < 0)
                return r;

        /* Only Certify (ADMIN role) ever uses the authValue; it is forgotten right after. */
        r = random_bytes(sens.sensitive.userAuth.buffer, KEY_AUTH_SIZE);
        if (r < 0)
                return keystore_fail(ks, r, "Generating the task key's authorisation value failed");
        memcpy(auth.buffer, sens.sensitive.userAuth.buffer, KEY_AUTH_SIZE);

        /* The parent lives in the NULL hierarchy: its seed changes at every TPM Reset, taking the task
         * key and every saved context of it along. Same template as the SRK (tpm-object.h). */
        tpm_template_srk(&primary_template);
        r = TPM_CALL(ks->tpm, "TPM2_CreatePrimary (NULL hierarchy)",
                     Esys_CreatePrimary(ks->tpm->esys, ESYS_TR_RH_NULL, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &primary_sens, &primary_template, &outside, &pcrs, &primary,
                                        &primary_pub, &cd1, &ch1, &ct1));
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Creating the task key's parent");
                goto finish;
        }
        r = TPM_CALL(ks->tpm, "TPM2_Create (task key)",
                     Esys_Create(ks->tpm->esys, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                 &template, &outside, &pcrs, &priv, &pub, &cd2, &ch2, &ct2));
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Creating the task key");
                goto finish;
        }
        r = TPM_CALL(ks->tpm, "TPM2_Load (task key)",
                     Esys_Load(ks->tpm->esys, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub,
                               &key));
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Loading the task key");
                goto finish;
        }
        /* The parent's slot is needed for the AK (and maybe its EK) now. */
        tpm_flush(ks->tpm, &primary);

        /* Defence in depth: exactly the template, and the loaded object is the key we were given. */
        if (!task_public_is_expected(&pub->publicArea, template.publicArea.authPolicy.buffer)) {
                r = keystore_fail(ks, -EIO, "The TPM returned a task key with unexpected attributes or policy");
                goto finish;
        }
        r = tpm_public_name(&pub->publicArea, t->name);
        if (r < 0) {
                r = keystore_fail(ks, r, "Computing the task key's Name failed");
                goto finish;
        }
        r = TPM_CALL(ks->tpm, "Esys_TR_GetName", Esys_TR_GetName(ks->tpm->esys, key, &loaded_name));
        if (r >= 0 && (loaded_name->size != KEY_KID_SIZE || memcmp(loaded_name->name, t->name, KEY_KID_SIZE) != 0))
                r = keystore_fail(ks, -EIO, "The loaded task key does not have the expected Name");
        else if (r < 0)
                r = keystore_fail_tpm(ks, r, "Reading the task key's Name");
        if (r < 0)
                goto finish;

        r = TPM_CALL(ks->tpm, "Esys_TR_SetAuth (task key)", Esys_TR_SetAuth(ks->tpm->esys, key, &auth));
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Setting the task key's authorisation");
                goto finish;
        }
        r = keystore_ak_acquire(ks, &ak);
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Loading the attestation key");
                goto finish;
        }
        r = keystore_certify(ks, ak, key, certify_data, &c->certify, &c->certify_size, &c->certify_sig,
                             &c->certify_sig_size);
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Certifying the task key");
                goto finish;
        }
        /* Overwrite ESAPI's copy of the authValue: nothing needs it any more. */
        (void) Esys_TR_SetAuth(ks->tpm->esys, key, &no_auth);

        r = keystore_context_save(ks, key, &t->context, &t->context_size);
        if (r < 0) {
                r = keystore_fail_tpm(ks, r, "Saving the task key's context");
                goto finish;
        }

        if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, area, sizeof(area), &area_size) != TSS2_RC_SUCCESS) {
                r = keystore_fail(ks, -EINVAL, "Marshalling the task key's public area failed");
                goto finish;
        }
        r = memdup_sized(area, area_size, &c->pub, &c->pub_size);
        if (r < 0)
                goto finish;
        t->pub = pub->publicArea;

finish:
        /* ESAPI keeps a copy of the authValue with the handle: overwrite it on every path. */
        if (key != ESYS_TR_NONE)
                (void) Esys_TR_SetAuth(ks->tpm->esys, key, &no_auth);
        tpm_flush(ks->tpm, &key);
        tpm_flush(ks->tpm, &ak);
        tpm_flush(ks->tpm, &primary);
        erase(&sens, sizeof(sens));
        erase(&auth, sizeof(auth));
        if (priv)
                erase(priv, sizeof(*priv));
        return r;
}

int keystore_task_key_create(Keystore *ks, uint64_t ttl_ms, const uint8_t certify_data[32], TaskKey **ret,
                             TaskKeyCertificate *ret_cert) {
        _cleanup_(task_key_freep) TaskKey *t = NULL;
        _cleanup_(task_key_certificate_done) TaskKeyCertificate c = {};
        int r;

        if (!certify_data || !ret || !ret_cert)
                return keystore_fail(ks, -EINVAL, "Missing argument");
        if (ttl_ms == 0 || ttl_ms > TASK_KEY_TTL_MAX_MS)
                return keystore_fail(ks, -EINVAL, "A task key lives 1..%llu ms of TPM time",
                                     (unsigned long long) TASK_KEY_TTL_MAX_MS);
        r = keystore_require_ak(ks);
        if (r >= 0)
                r = keystore_ensure_connected(ks);
        if (r < 0)
                return r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;

        for (unsigned attempt = 0; attempt < 2; attempt++) {
                r = task_key_make(ks, ttl_ms, certify_data, t, &c);
                if (r != -ESTALE)
                        break;
                /* A TPM reset under us (a cached handle or the AK's context went stale): once more. */
                log_debug("Task key creation hit a stale handle (TPM reset?); starting again.");
                keystore_forget_objects(ks);
                task_key_certificate_done(&c);
                task_key_bury(t, 0);
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(t);
        *ret_cert = c;
        c = (TaskKeyCertificate) {};
        return 0;
}

/* ---- signing --------------------------------------------------------------------------------- */

/* A policy session satisfied for t (the three PolicyCounterTimer, in the order of the digest). */
static int task_key_policy_session(Keystore *ks, const TaskKey *t, ESYS_TR *ret) {
        TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
        TPM2B_NONCE nonce = { .size = SHA256_DIGEST_SIZE };
        TaskPolicyTerm terms[TASK_POLICY_TERMS];
        ESYS_TR s = ESYS_TR_NONE;
        int r;

        /* Our own nonceCaller: tss2-esys 3.2 draws it from OpenSSL in a way that costs ~1.5 ms per
         * session (measured), getrandom() costs nothing. */
        r = random_bytes(nonce.buffer, nonce.size);
        if (r < 0)
                return r;
        /* Unsalted and unbound: the policy carries no secret, and nothing here needs encryption. */
        r = TPM_CALL(ks->tpm, "TPM2_StartAuthSession (task key policy)",
                     Esys_StartAuthSession(ks->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, &nonce, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &s));
        if (r < 0)
                return r;

        task_policy_terms(t->clock_limit, t->reset_count, t->restart_count, terms);
        for (size_t i = 0; i < TASK_POLICY_TERMS && r >= 0; i++) {
                TPM2B_OPERAND operand = { .size = terms[i].operand_size };

                memcpy(operand.buffer, terms[i].operand, operand.size);
                r = TPM_CALL(ks->tpm, "TPM2_PolicyCounterTimer",
                             Esys_PolicyCounterTimer(ks->tpm->esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                                     &operand, terms[i].offset, terms[i].operation));
        }
        if (r < 0) {
                tpm_flush(ks->tpm, &s);
                return r;
        }
        *ret = s;
        return 0;
}

int keystore_task_key_sign(Keystore *ks, TaskKey *t, const uint8_t digest[KEYSTORE_DIGEST_SIZE],
                           uint8_t ret_sig[KEYSTORE_SIGNATURE_SIZE]) {
        _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
        TPM2B_DIGEST d = { .size = KEYSTORE_DIGEST_SIZE };
        /* Key scheme applies (ECDSA-SHA256); an unrestricted key accepts a NULL ticket (Part 3 §20.2). */
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
        ESYS_TR key = ESYS_TR_NONE, session = ESYS_TR_NONE;
        int r;

        if (!t || !digest || !ret_sig)
                return keystore_fail(ks, -EINVAL, "Missing argument");
        if (t->dead == -EKEYEXPIRED)
                return keystore_fail(ks, -EKEYEXPIRED, "The task key expired (the TPM refused its policy before)");
        if (t->dead < 0 || !t->context)
                return keystore_fail(ks, -EKEYREVOKED, "The task key is gone (its context stopped loading: TPM reset)");

        r = keystore_ensure_connected(ks);
        if (r < 0)
                return r;
        /* By the cache's invariant this evicts nothing: two cached keys plus the task key are three. */
        r = keystore_cache_make_room(ks, KEYSTORE_MAX_LOADED);
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Making room for the task key");

        r = keystore_context_load(ks, t->context, t->context_size, &key);
        if (r == -EBADMSG || r == -ESTALE) {
                /* Part 3 §28.3: the context's integrity covers the NULL hierarchy's proof and the reset
                 * count, so after a TPM Reset it fails (measured: 0x1DF) and never loads again. */
                task_key_bury(t, -EKEYREVOKED);
                return keystore_fail(ks, -EKEYREVOKED, "The task key is gone (TPM reset since its creation): %s",
                                     ks->tpm->last_error);
        }
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Loading the task key");

        ks->tpm->last_rc = TSS2_RC_SUCCESS; /* a refusal below must be this sequence's, not an earlier one */
        r = task_key_policy_session(ks, t, &session);
        if (r >= 0) {
                memcpy(d.buffer, digest, KEYSTORE_DIGEST_SIZE);
                r = TPM_CALL(ks->tpm, "TPM2_Sign (task key)",
                             Esys_Sign(ks->tpm->esys, key, session, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme, &ticket,
                                       &sig));
        }
        tpm_flush(ks->tpm, &session);
        tpm_flush(ks->tpm, &key);

        if (r < 0 && rc_is_policy_refusal(ks->tpm->last_rc)) {
                /* The clock passed the limit, or the TPM was restarted or resumed (restartCount): the
                 * clock only moves forward within one resetCount, so this is final. */
                task_key_bury(t, -EKEYEXPIRED);
                return keystore_fail(ks, -EKEYEXPIRED, "The TPM refused the task key's policy (expired): %s",
                                     ks->tpm->last_error);
        }
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Signing with the task key");

        const TPMS_SIGNATURE_ECC *ecc = &sig->signature.ecdsa;
        if (sig->sigAlg != TPM2_ALG_ECDSA || ecc->hash != TPM2_ALG_SHA256 || ecc->signatureR.size > 32 ||
            ecc->signatureS.size > 32)
                return keystore_fail(ks, -EIO, "The TPM returned an unexpected signature format");

        /* Part 2 §11.3.4: r and s are TPM2B_ECC_PARAMETERs and may come without leading zeros. */
        memset(ret_sig, 0, KEYSTORE_SIGNATURE_SIZE);
        memcpy(ret_sig + 32 - ecc->signatureR.size, ecc->signatureR.buffer, ecc->signatureR.size);
        memcpy(ret_sig + 64 - ecc->signatureS.size, ecc->signatureS.buffer, ecc->signatureS.size);
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Task keys against a real software TPM (suite "tpm"): NULL-hierarchy parent, PolicyCounterTimer
 * expiry enforced by the TPM, certification by the AK, TPM reset and resume, slot and session hygiene,
 * and what a signature costs. Every test gets its own swtpm (tests/lib/tpm-sim.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "common/crypto-util.h"
#include "common/fileio.h"
#include "keystore/keystore.h"
#include "keystore/task-key.h"
#include "keystore/tpm-object.h"
#include "tests/lib/tpm-sim.h"
#include "tests/tpm/keystore-fixture.h"

/* Handle ranges for TPM2_GetCapability(TPM_CAP_HANDLES) (Part 2 §7.2): written out, because tss2's
 * TPM2_TRANSIENT_FIRST shifts into the sign bit. */
#define HANDLES_TRANSIENT ((TPM2_HC) 0x80000000U)
#define HANDLES_LOADED_SESSION ((TPM2_HC) 0x02000000U)
#define HANDLES_SAVED_SESSION ((TPM2_HC) 0x03000000U)
/* fixedTPM | fixedParent | sensitiveDataOrigin | noDA | sign: no userWithAuth, no adminWithPolicy. */
#define TASK_KEY_ATTRIBUTES_EXPECTED 0x00040432U

static KeyRecord *agent_key_ok(Keystore *ks, const char *name) {
        KeySpec spec = { .name = name, .owner = "team-a@example.com", .uid = 1000 };
        KeyRecord *r = NULL;
        int k = keystore_create_key(ks, &spec, (uint64_t) time(NULL), &r);
        if (k < 0)
                fail_msg("create %s: %s (%d)", name, keystore_last_error(ks), k);
        return r;
}

static TaskKey *task_ok(Keystore *ks, uint64_t ttl_ms, const uint8_t data[32], TaskKeyCertificate *ret_cert) {
        TaskKeyCertificate cert = {};
        TaskKey *t = NULL;
        int k = keystore_task_key_create(ks, ttl_ms, data, &t, &cert);
        if (k < 0)
                fail_msg("task key create: %s (%d)", keystore_last_error(ks), k);
        assert_non_null(t);
        if (ret_cert)
                *ret_cert = cert;
        else
                task_key_certificate_done(&cert);
        return t;
}

static void verify_raw_sig(const uint8_t *spki, size_t spki_size, uint8_t digest[32], const uint8_t sig[64]) {
        _cleanup_free_ uint8_t *der = NULL;
        size_t der_size = 0;
        const unsigned char *p = spki;
        EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long) spki_size);

        assert_non_null(pkey);
        assert_int_equal(ecdsa_raw_to_der(sig, 32, &der, &der_size), 0);
        assert_int_equal(ecdsa_verify_digest(pkey, digest, der, der_size), 1);
        /* ...and a different digest does not verify. */
        digest[0] ^= 1;
        assert_int_equal(ecdsa_verify_digest(pkey, digest, der, der_size), 0);
        digest[0] ^= 1;
        EVP_PKEY_free(pkey);
}

/* Sign through the policy and check the signature with OpenSSL against the exported public key. */
static void task_sign_and_verify(Keystore *ks, TaskKey *t, uint8_t fill) {
        _cleanup_free_ uint8_t *spki = NULL;
        size_t spki_size = 0;
        uint8_t digest[32], sig[64];

        memset(digest, fill, sizeof(digest));
        int k = keystore_task_key_sign(ks, t, digest, sig);
        if (k < 0)
                fail_msg("task key sign: %s (%d)", keystore_last_error(ks), k);
        assert_int_equal(task_key_public_der(t, &spki, &spki_size), 0);
        verify_raw_sig(spki, spki_size, digest, sig);
}

static void agent_sign_and_verify(Keystore *ks, const KeyRecord *r, uint8_t fill) {
        _cleanup_free_ uint8_t *spki = NULL;
        size_t spki_size = 0;
        uint8_t digest[32], sig[64];

        memset(digest, fill, sizeof(digest));
        int k = keystore_sign(ks, r, digest, sig);
        if (k < 0)
                fail_msg("sign with %s: %s (%d)", r->name, keystore_last_error(ks), k);
        assert_int_equal(keystore_key_public_der(r, &spki, &spki_size), 0);
        verify_raw_sig(spki, spki_size, digest, sig);
}

static int task_sign(Keystore *ks, TaskKey *t) {
        uint8_t digest[32] = { 0x5a }, sig[64];
        return keystore_task_key_sign(ks, t, digest, sig);
}

/* ---- an independent view of the TPM: a second ESAPI context on the same swtpm ---------------- */

typedef struct Probe {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
} Probe;

static void probe_open(Fixture *f, Probe *p) {
        assert_int_equal(Tss2_TctiLdr_Initialize(f->sim->tcti, &p->tcti), TSS2_RC_SUCCESS);
        assert_int_equal(Esys_Initialize(&p->esys, p->tcti, NULL), TSS2_RC_SUCCESS);
}

static void probe_close(Probe *p) {
        Esys_Finalize(&p->esys);
        Tss2_TctiLdr_Finalize(&p->tcti);
}

/* How many handles of one type (the range's top byte) the TPM holds. */
static unsigned count_handles(Fixture *f, TPM2_HC first) {
        TPMS_CAPABILITY_DATA *caps = NULL;
        TPMI_YES_NO more = TPM2_NO;
        Probe p = {};
        unsigned n = 0;

        probe_open(f, &p);
        assert_int_equal(Esys_GetCapability(p.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, first,
                                            TPM2_MAX_CAP_HANDLES, &more, &caps),
                         TSS2_RC_SUCCESS);
        for (UINT32 i = 0; i < caps->data.handles.count; i++)
                if ((caps->data.handles.handle[i] & 0xff000000U) == first)
                        n++;
        Esys_Free(caps);
        probe_close(&p);
        return n;
}

static void assert_tpm_holds(Fixture *f, unsigned transient) {
        assert_int_equal(count_handles(f, HANDLES_TRANSIENT), transient);
        assert_int_equal(count_handles(f, HANDLES_LOADED_SESSION), 0);
        assert_int_equal(count_handles(f, HANDLES_SAVED_SESSION), 0);
}

static void put_be(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

/* The key's three PolicyCounterTimer operands, as a verifier would rebuild them from the limits. */
static void policy_operands(const TaskKey *t, TPM2B_OPERAND ops[3]) {
        uint64_t limit;
        uint32_t reset, restart;

        task_key_limits(t, &limit, &reset, &restart);
        ops[0] = (TPM2B_OPERAND) { .size = 8 };
        put_be(ops[0].buffer, limit, 8);
        ops[1] = (TPM2B_OPERAND) { .size = 4 };
        put_be(ops[1].buffer, reset, 4);
        ops[2] = (TPM2B_OPERAND) { .size = 4 };
        put_be(ops[2].buffer, restart, 4);
}

static const UINT16 policy_offsets[3] = { 8, 16, 20 };
static const TPM2_EO policy_ops[3] = { TPM2_EO_UNSIGNED_LT, TPM2_EO_EQ, TPM2_EO_EQ };

/* The policy digest by a trial session: the TPM's own computation (Part 3 §23.10, §23.19). */
static void trial_policy_digest(Fixture *f, const TaskKey *t, uint8_t ret[32]) {
        TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
        TPM2B_OPERAND ops[3];
        TPM2B_DIGEST *d = NULL;
        ESYS_TR s = ESYS_TR_NONE;
        Probe p = {};

        policy_operands(t, ops);
        probe_open(f, &p);
        assert_int_equal(Esys_StartAuthSession(p.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                               ESYS_TR_NONE, NULL, TPM2_SE_TRIAL, &sym, TPM2_ALG_SHA256, &s),
                         TSS2_RC_SUCCESS);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(Esys_PolicyCounterTimer(p.esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ops[i],
                                                         policy_offsets[i], policy_ops[i]),
                                 TSS2_RC_SUCCESS);
        assert_int_equal(Esys_PolicyGetDigest(p.esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &d),
                         TSS2_RC_SUCCESS);
        assert_int_equal(d->size, 32);
        memcpy(ret, d->buffer, 32);
        Esys_Free(d);
        assert_int_equal(Esys_FlushContext(p.esys, s), TSS2_RC_SUCCESS);
        probe_close(&p);
}

/* The same digest in software, as a verifier without a TPM computes it. */
static void software_policy_digest(const TaskKey *t, uint8_t ret[32]) {
        TPM2B_OPERAND ops[3];
        uint8_t digest[32] = {}, buf[32 + 4 + 32], args_in[8 + 4], args[32];

        policy_operands(t, ops);
        for (size_t i = 0; i < 3; i++) {
                memcpy(args_in, ops[i].buffer, ops[i].size);
                put_be(args_in + ops[i].size, policy_offsets[i], 2);
                put_be(args_in + ops[i].size + 2, policy_ops[i], 2);
                assert_int_equal(sha256(args_in, ops[i].size + 4U, args), 0);
                memcpy(buf, digest, 32);
                put_be(buf + 32, TPM2_CC_PolicyCounterTimer, 4);
                memcpy(buf + 36, args, 32);
                assert_int_equal(sha256(buf, sizeof(buf), digest), 0);
        }
        memcpy(ret, digest, 32);
}

/* The Name of the NULL-hierarchy primary the keystore makes: the same template in the same boot gives
 * the same key, so a probe can re-derive it. */
static void null_primary_name(Fixture *f, uint8_t ret[34]) {
        TPM2B_SENSITIVE_CREATE sens = {};
        TPM2B_PUBLIC template;
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        TPM2B_PUBLIC *out = NULL;
        TPM2B_CREATION_DATA *cd = NULL;
        TPM2B_DIGEST *ch = NULL;
        TPMT_TK_CREATION *ct = NULL;
        TPM2B_NAME *name = NULL;
        ESYS_TR h = ESYS_TR_NONE;
        Probe p = {};

        tpm_template_srk(&template);
        probe_open(f, &p);
        assert_int_equal(Esys_CreatePrimary(p.esys, ESYS_TR_RH_NULL, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                            &sens, &template, &outside, &pcrs, &h, &out, &cd, &ch, &ct),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_TR_GetName(p.esys, h, &name), TSS2_RC_SUCCESS);
        assert_int_equal(name->size, 34);
        memcpy(ret, name->name, 34);
        assert_int_equal(Esys_FlushContext(p.esys, h), TSS2_RC_SUCCESS);
        Esys_Free(out);
        Esys_Free(cd);
        Esys_Free(ch);
        Esys_Free(ct);
        Esys_Free(name);
        probe_close(&p);
}

/* Everything a verifier holding the AK can check about a task key from its certificate. */
static void check_task_certificate(Fixture *f, Keystore *ks, const TaskKey *t, const TaskKeyCertificate *c,
                                   const uint8_t data[32], uint64_t ttl_ms) {
        _cleanup_free_ uint8_t *ak = NULL, *spki = NULL;
        size_t ak_size = 0, spki_size = 0, off = 0;
        uint8_t ak_name[KEY_KID_SIZE], name[KEY_KID_SIZE] = { 0x00, 0x0b }, trial[32], soft[32];
        uint8_t x[32], y[32];
        TPMT_PUBLIC pub = {};
        TPMS_ATTEST attest = {};
        uint64_t limit;
        uint32_t reset, restart;

        task_key_limits(t, &limit, &reset, &restart);

        /* The public area: exactly the task key template. */
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(c->pub, c->pub_size, &off, &pub), TSS2_RC_SUCCESS);
        assert_int_equal(off, c->pub_size);
        assert_int_equal(pub.objectAttributes, TASK_KEY_ATTRIBUTES_EXPECTED);
        assert_int_equal(pub.objectAttributes & TPMA_OBJECT_USERWITHAUTH, 0);
        assert_int_equal(pub.objectAttributes & TPMA_OBJECT_ADMINWITHPOLICY, 0);
        assert_int_equal(pub.type, TPM2_ALG_ECC);
        assert_int_equal(pub.nameAlg, TPM2_ALG_SHA256);
        assert_int_equal(pub.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);
        assert_int_equal(pub.parameters.eccDetail.scheme.scheme, TPM2_ALG_ECDSA);
        assert_int_equal(pub.parameters.eccDetail.scheme.details.ecdsa.hashAlg, TPM2_ALG_SHA256);

        /* Its authPolicy is the counter/timer policy: the TPM's trial session and software agree. */
        assert_int_equal(pub.authPolicy.size, 32);
        trial_policy_digest(f, t, trial);
        software_policy_digest(t, soft);
        assert_memory_equal(trial, soft, 32);
        assert_memory_equal(pub.authPolicy.buffer, trial, 32);

        /* Name = 000b || SHA-256(TPMT_PUBLIC); the DER key is the public area's point. */
        assert_int_equal(sha256(c->pub, c->pub_size, name + 2), 0);
        assert_memory_equal(task_key_name(t), name, KEY_KID_SIZE);
        assert_int_equal(task_key_public_der(t, &spki, &spki_size), 0);
        assert_int_equal(p256_spki_to_xy(spki, spki_size, x, y), 0);
        assert_int_equal(pub.unique.ecc.x.size, 32);
        assert_memory_equal(x, pub.unique.ecc.x.buffer, 32);
        assert_memory_equal(y, pub.unique.ecc.y.buffer, 32);

        /* The certify: signed by the AK over the attest bytes, for this key and this qualifyingData. */
        assert_int_equal(keystore_ak_public(ks, &ak, &ak_size, ak_name), 0);
        verify_tpm_signature(ak, ak_size, c->certify, c->certify_size, c->certify_sig, c->certify_sig_size);
        off = 0;
        assert_int_equal(Tss2_MU_TPMS_ATTEST_Unmarshal(c->certify, c->certify_size, &off, &attest), TSS2_RC_SUCCESS);
        assert_int_equal(off, c->certify_size);
        assert_int_equal(attest.magic, TPM2_GENERATED_VALUE);
        assert_int_equal(attest.type, 0x8017);
        assert_int_equal(attest.extraData.size, 32);
        assert_memory_equal(attest.extraData.buffer, data, 32);
        assert_int_equal(attest.attested.certify.name.size, KEY_KID_SIZE);
        assert_memory_equal(attest.attested.certify.name.name, name, KEY_KID_SIZE);

        /* The AK is under the EK, so the counters are real (tpm-notes §3.5): they are the ones the policy
         * binds, and the clock was read just before, ttl_ms short of the limit. */
        assert_int_equal(attest.clockInfo.resetCount, reset);
        assert_int_equal(attest.clockInfo.restartCount, restart);
        assert_true(attest.clockInfo.clock < limit);
        assert_true(limit - attest.clockInfo.clock <= ttl_ms);
        assert_true(limit - attest.clockInfo.clock > ttl_ms - 5000);

        /* qualifiedName chains to the NULL hierarchy: QN(P) = 000b || H(40000007 || Name(P)),
         * QN(K) = 000b || H(QN(P) || Name(K)) (Part 1 §16) — the key dies with the boot. */
        uint8_t parent[34], qn_p[34] = { 0x00, 0x0b }, qn_k[34] = { 0x00, 0x0b }, buf[68];
        null_primary_name(f, parent);
        memcpy(buf, "\x40\x00\x00\x07", 4);
        memcpy(buf + 4, parent, 34);
        assert_int_equal(sha256(buf, 38, qn_p + 2), 0);
        memcpy(buf, qn_p, 34);
        memcpy(buf + 34, name, 34);
        assert_int_equal(sha256(buf, 68, qn_k + 2), 0);
        assert_int_equal(attest.attested.certify.qualifiedName.size, 34);
        assert_memory_equal(attest.attested.certify.qualifiedName.name, qn_k, 34);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_create_sign_verify(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        uint8_t data[32];
        TaskKeyCertificate cert = {};
        uint64_t limit;
        uint32_t reset, restart;

        memset(data, 0xc7, sizeof(data));
        TaskKey *t = task_ok(ks, 60000, data, &cert);
        task_sign_and_verify(ks, t, 0x01);
        task_sign_and_verify(ks, t, 0x02);
        task_sign_and_verify(ks, t, 0x03);

        task_key_limits(t, &limit, &reset, &restart);
        assert_true(limit > 60000);
        /* A fresh swtpm from the template has been reset a handful of times at most. */
        assert_true(reset < 100);
        /* Two task keys are two different keys. */
        TaskKey *u = task_ok(ks, 60000, data, NULL);
        assert_memory_not_equal(task_key_name(t), task_key_name(u), KEY_KID_SIZE);
        task_sign_and_verify(ks, u, 0x04);
        task_sign_and_verify(ks, t, 0x05);

        task_key_certificate_done(&cert);
        task_key_free(u);
        task_key_free(t);
        keystore_free(ks);
}

static void test_certificate(void **state, KeystoreEkType ek) {
        Fixture *f = *state;
        f->opts.ek = ek;
        Keystore *ks = fixture_open_keystore(f);
        TaskKeyCertificate cert = {};
        uint8_t data[32];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) i;
        TaskKey *t = task_ok(ks, 30000, data, &cert);
        check_task_certificate(f, ks, t, &cert, data, 30000);
        task_sign_and_verify(ks, t, 0x11);
        task_key_certificate_done(&cert);
        task_key_free(t);
        keystore_free(ks);
}

static void test_certificate_rsa_ek(void **state) {
        test_certificate(state, KEYSTORE_EK_RSA);
}

static void test_certificate_ecc_ek(void **state) {
        test_certificate(state, KEYSTORE_EK_ECC);
}

static void test_bad_arguments(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        uint8_t data[32] = {};
        TaskKeyCertificate cert = {};
        TaskKey *t = NULL;

        assert_int_equal(keystore_task_key_create(ks, 0, data, &t, &cert), -EINVAL);
        assert_int_equal(keystore_task_key_create(ks, TASK_KEY_TTL_MAX_MS + 1, data, &t, &cert), -EINVAL);
        assert_null(t);
        assert_null(cert.pub);
        /* The longest lifetime is fine. */
        t = task_ok(ks, TASK_KEY_TTL_MAX_MS, data, NULL);
        task_sign_and_verify(ks, t, 0x21);
        task_key_free(t);
        keystore_free(ks);
}

static void test_needs_attestation_key(void **state) {
        Fixture *f = *state;
        uint8_t data[32] = {};
        TaskKeyCertificate cert = {};
        TaskKey *t = NULL;

        /* An endorsement password the keystore does not know: no AK, so no certified task keys. */
        const char *argv[] = { "tpm2_changeauth", "-c", "e", "endorse", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, argv), 0);
        Keystore *ks = fixture_open_keystore(f);
        assert_non_null(keystore_attestation_error(ks));
        assert_int_equal(keystore_task_key_create(ks, 1000, data, &t, &cert), -EOPNOTSUPP);
        assert_null(t);
        assert_tpm_holds(f, 0);
        keystore_free(ks);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void test_expiry_enforced_by_tpm(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = agent_key_ok(ks, "agent-a");
        uint8_t data[32] = { 1 };

        TaskKey *brief = task_ok(ks, 1500, data, NULL);
        TaskKey *lasting = task_ok(ks, 120000, data, NULL);
        task_sign_and_verify(ks, brief, 0x31);
        task_sign_and_verify(ks, lasting, 0x32);

        /* swtpm's clock follows real time: 2.5 s later the first limit has passed, the second not. */
        sleep_ms(2500);
        assert_int_equal(task_sign(ks, brief), -EKEYEXPIRED);
        /* TPM_RC_POLICY from PolicyCounterTimer: the TPM itself refused (Part 3 §23.10). */
        assert_non_null(strstr(keystore_last_error(ks), "0x126"));
        /* The verdict is final, and repeating it touches nothing in the TPM. */
        assert_int_equal(task_sign(ks, brief), -EKEYEXPIRED);
        task_sign_and_verify(ks, lasting, 0x33);
        agent_sign_and_verify(ks, a, 0x34);
        /* The failed attempt left no session or object behind: only the cached agent key. */
        assert_tpm_holds(f, 1);

        task_key_free(brief);
        task_key_free(lasting);
        key_record_free(a);
        keystore_free(ks);
}

/* A TPM Reset in one of three ways: the task keys are gone for good, everything else carries on. */
static void test_reset(void **state, int how) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = agent_key_ok(ks, "agent-a");
        uint8_t data[32] = { 2 };

        TaskKey *t = task_ok(ks, 600000, data, NULL);
        task_sign_and_verify(ks, t, 0x41);
        agent_sign_and_verify(ks, a, 0x42);

        if (how == 0)
                assert_int_equal(tpm_sim_reboot(f->sim, true), 0);
        else if (how == 1)
                assert_int_equal(tpm_sim_reboot(f->sim, false), 0);
        else
                assert_int_equal(tpm_sim_restart(f->sim), 0);

        assert_int_equal(task_sign(ks, t), -EKEYREVOKED);
        /* TPM_RC_INTEGRITY on the context (the NULL seed changed with the reset). */
        assert_non_null(strstr(keystore_last_error(ks), "0x1df"));
        assert_int_equal(task_sign(ks, t), -EKEYREVOKED);
        agent_sign_and_verify(ks, a, 0x43);
        /* A new task key is bound to the new resetCount. */
        TaskKey *u = task_ok(ks, 600000, data, NULL);
        uint32_t r_old, r_new;
        task_key_limits(t, NULL, &r_old, NULL);
        task_key_limits(u, NULL, &r_new, NULL);
        assert_true(r_new > r_old);
        task_sign_and_verify(ks, u, 0x44);
        assert_int_equal(task_sign(ks, t), -EKEYREVOKED);
        assert_tpm_holds(f, 0);

        task_key_free(u);
        task_key_free(t);
        key_record_free(a);
        keystore_free(ks);
}

static void test_reset_orderly(void **state) {
        test_reset(state, 0);
}

static void test_reset_unclean(void **state) {
        test_reset(state, 1);
}

static void test_reset_swtpm_restarted(void **state) {
        test_reset(state, 2);
}

/*
 * TPM2_Shutdown(STATE), power off, then TPM2_Startup(STATE) (a TPM Resume: suspend to RAM) or
 * TPM2_Startup(CLEAR) (a TPM Restart: hibernation). The NULL seed survives both, so the context still
 * loads — and the TPM refuses the policy because restartCount moved.
 */
static void test_restart(void **state, bool resume) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        uint8_t data[32] = { 3 };
        char ctrl[4200];

        TaskKey *t = task_ok(ks, 600000, data, NULL);
        task_sign_and_verify(ks, t, 0x51);

        snprintf(ctrl, sizeof(ctrl), "%s.ctrl", f->sim->socket);
        const char *shutdown[] = { "tpm2_shutdown", NULL };
        const char *init[] = { "swtpm_ioctl", "--unix", ctrl, "-i", NULL };
        const char *startup[] = { "tpm2_startup", resume ? NULL : "-c", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, shutdown), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, init), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, startup), 0);

        assert_int_equal(task_sign(ks, t), -EKEYEXPIRED);
        assert_non_null(strstr(keystore_last_error(ks), "0x126"));
        TaskKey *u = task_ok(ks, 600000, data, NULL);
        uint32_t reset_t, reset_u, restart_t, restart_u;
        task_key_limits(t, NULL, &reset_t, &restart_t);
        task_key_limits(u, NULL, &reset_u, &restart_u);
        assert_int_equal(reset_u, reset_t);
        assert_true(restart_u > restart_t);
        task_sign_and_verify(ks, u, 0x52);
        assert_int_equal(task_sign(ks, t), -EKEYEXPIRED);
        assert_tpm_holds(f, 0);

        task_key_free(u);
        task_key_free(t);
        keystore_free(ks);
}

static void test_resume_expires(void **state) {
        test_restart(state, true);
}

static void test_restart_expires(void **state) {
        test_restart(state, false);
}

static void test_no_handles_or_sessions_left(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = agent_key_ok(ks, "agent-a"), *b = agent_key_ok(ks, "agent-b");
        uint8_t data[32] = { 4 };

        agent_sign_and_verify(ks, a, 0x61);
        agent_sign_and_verify(ks, b, 0x62);
        assert_tpm_holds(f, 2);

        for (unsigned i = 0; i < 25; i++) {
                TaskKey *t = task_ok(ks, 60000, data, NULL);
                /* Creation empties the cache (the AK may need its EK next to the task key). */
                if (i == 0)
                        assert_tpm_holds(f, 0);
                task_sign_and_verify(ks, t, (uint8_t) i);
                task_sign_and_verify(ks, t, (uint8_t) (i + 100));
                task_key_free(t);
        }
        assert_tpm_holds(f, 0);

        /* Signing with a task key leaves both cached agent keys loaded: 2 + 1 = 3 objects fit. */
        agent_sign_and_verify(ks, a, 0x63);
        agent_sign_and_verify(ks, b, 0x64);
        TaskKey *t = task_ok(ks, 60000, data, NULL);
        agent_sign_and_verify(ks, a, 0x65);
        agent_sign_and_verify(ks, b, 0x66);
        for (unsigned i = 0; i < 25; i++)
                task_sign_and_verify(ks, t, (uint8_t) i);
        assert_tpm_holds(f, 2);

        /* Failure paths leave nothing either: an expired key, then a reset one. */
        TaskKey *brief = task_ok(ks, 1000, data, NULL);
        agent_sign_and_verify(ks, a, 0x67);
        agent_sign_and_verify(ks, b, 0x68);
        sleep_ms(1800);
        assert_int_equal(task_sign(ks, brief), -EKEYEXPIRED);
        assert_tpm_holds(f, 2);
        assert_int_equal(tpm_sim_reboot(f->sim, true), 0);
        assert_int_equal(task_sign(ks, t), -EKEYREVOKED);
        assert_tpm_holds(f, 0);

        task_key_free(brief);
        task_key_free(t);
        key_record_free(a);
        key_record_free(b);
        keystore_free(ks);
}

static void test_interleaved_with_agent_keys(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = agent_key_ok(ks, "agent-a"), *b = agent_key_ok(ks, "agent-b"), *c = agent_key_ok(ks, "agent-c");
        uint8_t data[32] = { 5 }, cdata[32] = { 6 };
        KeystoreEvidence e = {};

        TaskKey *t = task_ok(ks, 600000, data, NULL);
        TaskKey *u = NULL;
        for (unsigned i = 0; i < 30; i++) {
                agent_sign_and_verify(ks, a, (uint8_t) i);
                task_sign_and_verify(ks, t, (uint8_t) i);
                agent_sign_and_verify(ks, b, (uint8_t) i);
                agent_sign_and_verify(ks, c, (uint8_t) i);
                if (u)
                        task_sign_and_verify(ks, u, (uint8_t) i);
                agent_sign_and_verify(ks, keystore_host_key(ks), (uint8_t) i);
                if (i == 10)
                        u = task_ok(ks, 600000, data, NULL);
                if (i % 10 == 5) {
                        /* Agent evidence in between (AK + key + SRK at its peak). */
                        assert_int_equal(keystore_attest(ks, a, cdata, cdata, &e), 0);
                        keystore_evidence_done(&e);
                }
        }
        assert_true(count_handles(f, HANDLES_TRANSIENT) <= 2);
        assert_int_equal(count_handles(f, HANDLES_LOADED_SESSION), 0);
        assert_int_equal(count_handles(f, HANDLES_SAVED_SESSION), 0);

        task_key_free(u);
        task_key_free(t);
        key_record_free(a);
        key_record_free(b);
        key_record_free(c);
        keystore_free(ks);
}

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int cmp_double(const void *x, const void *y) {
        double a = *(const double *) x, b = *(const double *) y;
        return a < b ? -1 : a > b;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define COST_ROUNDS 200U
#define COST_CREATES 20U

/* What a task key signature costs next to an agent key's (printed, not asserted: it is a simulator). */
static void test_cost(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = agent_key_ok(ks, "agent-a");
        uint8_t data[32] = { 7 }, digest[32], sig[64];
        double task[COST_ROUNDS], agent[COST_ROUNDS], create[COST_CREATES];

        for (unsigned i = 0; i < COST_CREATES; i++) {
                TaskKeyCertificate cert = {};
                TaskKey *t = NULL;
                double t0 = now_us();
                assert_int_equal(keystore_task_key_create(ks, 600000, data, &t, &cert), 0);
                create[i] = now_us() - t0;
                task_key_certificate_done(&cert);
                task_key_free(t);
        }

        TaskKey *t = task_ok(ks, 600000, data, NULL);
        agent_sign_and_verify(ks, a, 0);
        task_sign_and_verify(ks, t, 0);
        /* Alternate, so both see the same simulator conditions. */
        for (unsigned i = 0; i < COST_ROUNDS; i++) {
                memset(digest, (int) i, sizeof(digest));
                double t0 = now_us();
                assert_int_equal(keystore_task_key_sign(ks, t, digest, sig), 0);
                double t1 = now_us();
                assert_int_equal(keystore_sign(ks, a, digest, sig), 0);
                double t2 = now_us();
                task[i] = t1 - t0;
                agent[i] = t2 - t1;
        }
        double mt = median(task, COST_ROUNDS), ma = median(agent, COST_ROUNDS), mc = median(create, COST_CREATES);
        print_message("task key cost on swtpm, median of %u: keystore_task_key_sign %.0f us, keystore_sign (cached "
                      "agent key) %.0f us, ratio %.1f; keystore_task_key_create %.0f us (median of %u)\n",
                      COST_ROUNDS, mt, ma, mt / ma, mc, COST_CREATES);
        assert_tpm_holds(f, 1);

        task_key_free(t);
        key_record_free(a);
        keystore_free(ks);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_create_sign_verify, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_certificate_rsa_ek, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_certificate_ecc_ek, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_needs_attestation_key, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_expiry_enforced_by_tpm, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reset_orderly, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reset_unclean, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reset_swtpm_restarted, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_resume_expires, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_restart_expires, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_no_handles_or_sessions_left, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_interleaved_with_agent_keys, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_cost, fixture_setup, fixture_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

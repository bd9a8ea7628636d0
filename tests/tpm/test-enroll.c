/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Enrollment, verifier side (attest/enroll.c), against a real software TPM (suite "tpm"): the
 * verifier's software MakeCredential must be what TPM2_ActivateCredential unwraps, for swtpm's RSA-2048
 * EK (L-1, 0x81010001) and its ECC P-384 EK (H-3, 0x81010016), with the EK certificates from NV and
 * swtpm's local CA. The host side is played here with ESAPI directly.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "attest/enroll.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "tests/lib/tpm-sim.h"

#define EK_RSA_HANDLE 0x81010001U
#define EK_ECC_HANDLE 0x81010016U
#define EK_RSA_CERT_NV "0x01C00002"
#define EK_ECC_CERT_NV "0x01C00016"
#define HOST_ID "00112233445566778899aabbccddeeff"

typedef struct Fixture {
        TpmSim *sim;
        char root_ca[512], issuer_ca[512];
        /* What the host reads before ESAPI opens the TPM (swtpm serves one connection at a time). */
        uint8_t *rsa_cert, *ecc_cert, *rsa_pub, *ecc_pub;
        size_t rsa_cert_size, ecc_cert_size, rsa_pub_size, ecc_pub_size;
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        /* A transient EK used instead of the persistent ones (the L-2 test); userWithAuth clear. */
        bool has_transient_ek;
        ESYS_TR transient_ek;
} Fixture;

static void read_with_tool(Fixture *f, const char *const *argv, const char *out, uint8_t **ret, size_t *ret_size) {
        assert_int_equal(tpm_sim_run_tool(f->sim, argv), 0);
        assert_int_equal(read_file_at(AT_FDCWD, out, 64 * 1024, ret, ret_size), 0);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char path[4][512];

        assert_non_null(f);
        assert_int_equal(tpm_sim_start(&f->sim), 0);
        const char *tmpl = getenv("AGENTID_TEST_TPM_TEMPLATE");
        assert_non_null(tmpl);
        snprintf(f->root_ca, sizeof(f->root_ca), "%s/ca/var/lib/swtpm-localca/swtpm-localca-rootca-cert.pem", tmpl);
        snprintf(f->issuer_ca, sizeof(f->issuer_ca), "%s/ca/var/lib/swtpm-localca/issuercert.pem", tmpl);

        for (size_t i = 0; i < 4; i++)
                snprintf(path[i], sizeof(path[i]), "%s/host-%zu.bin", f->sim->dir, i);
        const char *nv_rsa[] = { "tpm2_nvread", EK_RSA_CERT_NV, "-C", "o", "-o", path[0], NULL };
        const char *nv_ecc[] = { "tpm2_nvread", EK_ECC_CERT_NV, "-C", "o", "-o", path[1], NULL };
        const char *pub_rsa[] = { "tpm2_readpublic", "-Q", "-c", "0x81010001", "-f", "tpmt", "-o", path[2], NULL };
        const char *pub_ecc[] = { "tpm2_readpublic", "-Q", "-c", "0x81010016", "-f", "tpmt", "-o", path[3], NULL };
        read_with_tool(f, nv_rsa, path[0], &f->rsa_cert, &f->rsa_cert_size);
        read_with_tool(f, nv_ecc, path[1], &f->ecc_cert, &f->ecc_cert_size);
        read_with_tool(f, pub_rsa, path[2], &f->rsa_pub, &f->rsa_pub_size);
        read_with_tool(f, pub_ecc, path[3], &f->ecc_pub, &f->ecc_pub_size);

        assert_int_equal(Tss2_TctiLdr_Initialize(f->sim->tcti, &f->tcti), TSS2_RC_SUCCESS);
        assert_int_equal(Esys_Initialize(&f->esys, f->tcti, NULL), TSS2_RC_SUCCESS);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        Esys_Finalize(&f->esys);
        Tss2_TctiLdr_Finalize(&f->tcti);
        tpm_sim_free(f->sim);
        free(f->rsa_cert);
        free(f->ecc_cert);
        free(f->rsa_pub);
        free(f->ecc_pub);
        free(f);
        return 0;
}

/* ---- the host side, with ESAPI ---------------------------------------------------------------- */

/* The EK's user role: PolicySecret(TPM_RH_ENDORSEMENT) for the L-1 EK (userWithAuth clear);
 * its empty password for the H-3 EK (userWithAuth set). tpm-notes §2.4. */
static ESYS_TR ek_session(Fixture *f, bool rsa) {
        static const TPMT_SYM_DEF sym_null = { .algorithm = TPM2_ALG_NULL };
        ESYS_TR s = ESYS_TR_NONE;

        if (!rsa)
                return ESYS_TR_PASSWORD;
        assert_int_equal(Esys_StartAuthSession(f->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                               ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym_null, TPM2_ALG_SHA256, &s),
                         TSS2_RC_SUCCESS);
        TPM2B_TIMEOUT *timeout = NULL;
        TPMT_TK_AUTH *ticket = NULL;
        assert_int_equal(Esys_PolicySecret(f->esys, ESYS_TR_RH_ENDORSEMENT, s, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                           ESYS_TR_NONE, NULL, NULL, NULL, 0, &timeout, &ticket),
                         TSS2_RC_SUCCESS);
        Esys_Free(timeout);
        Esys_Free(ticket);
        return s;
}

static void ek_session_done(Fixture *f, ESYS_TR s) {
        if (s != ESYS_TR_PASSWORD)
                (void) Esys_FlushContext(f->esys, s);
}

static ESYS_TR ek_handle(Fixture *f, bool rsa) {
        ESYS_TR ek = ESYS_TR_NONE;
        if (f->has_transient_ek)
                return f->transient_ek;
        assert_int_equal(Esys_TR_FromTPMPublic(f->esys, rsa ? EK_RSA_HANDLE : EK_ECC_HANDLE, ESYS_TR_NONE,
                                               ESYS_TR_NONE, ESYS_TR_NONE, &ek),
                         TSS2_RC_SUCCESS);
        return ek;
}

/* An AK under the EK (so its clock info is not obfuscated): the recommended restricted ECDSA-SHA256
 * P-256 template of tpm-notes §2.1, nameAlg SHA-256 whatever the EK's. Loaded; *ret_pub marshalled. */
static ESYS_TR create_ak(Fixture *f, bool rsa, uint8_t **ret_pub, size_t *ret_pub_size) {
        TPM2B_PUBLIC in = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                            TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT,
                        .parameters.eccDetail = {
                                .symmetric.algorithm = TPM2_ALG_NULL,
                                .scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                },
        };
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        TPM2B_PRIVATE *priv = NULL;
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_CREATION_DATA *cdata = NULL;
        TPM2B_DIGEST *chash = NULL;
        TPMT_TK_CREATION *ticket = NULL;
        ESYS_TR ek = ek_handle(f, rsa), s, ak = ESYS_TR_NONE;

        s = ek_session(f, rsa);
        assert_int_equal(Esys_Create(f->esys, ek, s, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in, &outside, &pcrs,
                                     &priv, &pub, &cdata, &chash, &ticket),
                         TSS2_RC_SUCCESS);
        ek_session_done(f, s);
        s = ek_session(f, rsa);
        assert_int_equal(Esys_Load(f->esys, ek, s, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &ak), TSS2_RC_SUCCESS);
        ek_session_done(f, s);

        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
        *ret_pub = malloc(off);
        assert_non_null(*ret_pub);
        memcpy(*ret_pub, buf, off);
        *ret_pub_size = off;
        Esys_Free(priv);
        Esys_Free(pub);
        Esys_Free(cdata);
        Esys_Free(chash);
        Esys_Free(ticket);
        return ak;
}

/* TPM2_ActivateCredential with the challenge's two byte strings, unmarshalled exactly as sent.
 * Returns the TPM's response code; on success *ret_secret (malloc'd) is certInfo's buffer. */
static TSS2_RC activate(Fixture *f, bool rsa, ESYS_TR ak, const uint8_t *blob, size_t blob_size, const uint8_t *enc,
                        size_t enc_size, uint8_t **ret_secret, size_t *ret_secret_size) {
        TPM2B_ID_OBJECT id = {};
        TPM2B_ENCRYPTED_SECRET secret = {};
        TPM2B_DIGEST *cert_info = NULL;
        size_t off = 0;
        TSS2_RC rc;

        assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blob_size, &off, &id), TSS2_RC_SUCCESS);
        assert_int_equal(off, blob_size);
        off = 0;
        assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(enc, enc_size, &off, &secret), TSS2_RC_SUCCESS);
        assert_int_equal(off, enc_size);

        ESYS_TR ek = ek_handle(f, rsa), s = ek_session(f, rsa);
        rc = Esys_ActivateCredential(f->esys, ak, ek, ESYS_TR_PASSWORD, s, ESYS_TR_NONE, &id, &secret, &cert_info);
        ek_session_done(f, s);
        if (rc == TSS2_RC_SUCCESS) {
                *ret_secret = malloc(cert_info->size);
                assert_non_null(*ret_secret);
                memcpy(*ret_secret, cert_info->buffer, cert_info->size);
                *ret_secret_size = cert_info->size;
                Esys_Free(cert_info);
        }
        return rc;
}

/* ---- documents -------------------------------------------------------------------------------- */

static void build_request(bool rsa, const uint8_t *ak_pub, size_t ak_pub_size, const uint8_t *ek_pub,
                          size_t ek_pub_size, const uint8_t *cert, size_t cert_size, uint8_t **ret, size_t *ret_size) {
        cbor_item_t *m = cbor_util_new_map(), *ek = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_text(ek, "alg", cbor_util_new_text(rsa ? "rsa" : "ecc")), 0);
        assert_int_equal(cbor_util_map_put_text(ek, "pub", cbor_util_new_bytes(ek_pub, ek_pub_size)), 0);
        assert_int_equal(cbor_util_map_put_text(ek, "cert", cbor_util_new_bytes(cert, cert_size)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "type", cbor_util_new_text("enroll-request")), 0);
        assert_int_equal(cbor_util_map_put_text(m, "host_id", cbor_util_new_text(HOST_ID)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "ak_pub", cbor_util_new_bytes(ak_pub, ak_pub_size)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "ek", ek), 0);
        assert_int_equal(cbor_util_encode(m, ret, ret_size), 0);
        cbor_decref(&m);
}

static void build_response(const uint8_t *secret, size_t size, uint8_t **ret, size_t *ret_size) {
        cbor_item_t *m = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_text(m, "v", cbor_util_new_uint(1)), 0);
        assert_int_equal(cbor_util_map_put_text(m, "type", cbor_util_new_text("enroll-response")), 0);
        assert_int_equal(cbor_util_map_put_text(m, "secret", cbor_util_new_bytes(secret, size)), 0);
        assert_int_equal(cbor_util_encode(m, ret, ret_size), 0);
        cbor_decref(&m);
}

typedef struct Challenge {
        uint8_t *doc, *state;
        size_t doc_size, state_size;
        const uint8_t *blob, *enc;     /* borrowed from item */
        size_t blob_size, enc_size;
        cbor_item_t *item;
} Challenge;

static void challenge_done(Challenge *c) {
        free(c->doc);
        free(c->state);
        if (c->item)
                cbor_decref(&c->item);
        *c = (Challenge) {};
}

static void make_challenge(const EnrollRequest *req, Challenge *c) {
        static const CborLimits limits = { .max_size = 8192, .max_depth = 1, .max_items = 16,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        const char *s;
        size_t n;

        assert_int_equal(enroll_make_challenge(req, 1700000000, &c->doc, &c->doc_size, &c->state, &c->state_size), 0);
        assert_int_equal(cbor_util_decode(c->doc, c->doc_size, &limits, &c->item, NULL), 0);
        assert_int_equal(cbor_map_size(c->item), 5);
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(c->item, "type"), &s, &n), 0);
        assert_true(n == 16 && memcmp(s, "enroll-challenge", 16) == 0);
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(c->item, "ek"), &s, &n), 0);
        assert_true(n == 3 && memcmp(s, req->ek_type == ENROLL_EK_RSA ? "rsa" : "ecc", 3) == 0);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(c->item, "credential_blob"), &c->blob,
                                             &c->blob_size), 0);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(c->item, "encrypted_secret"), &c->enc,
                                             &c->enc_size), 0);
        /* Both carry their TPM2B size prefix. */
        assert_int_equal((size_t) (c->blob[0] << 8 | c->blob[1]), c->blob_size - 2);
        assert_int_equal((size_t) (c->enc[0] << 8 | c->enc[1]), c->enc_size - 2);
}

static const char *cas(const Fixture *f, size_t i) {
        return i == 0 ? f->root_ca : f->issuer_ca;
}

static int check(Fixture *f, const uint8_t *req, size_t size, EnrollRequest **ret, EnrollError *err) {
        const char *files[] = { cas(f, 0), cas(f, 1) };
        *err = (EnrollError) {};
        return enroll_check_request(req, size, files, 2, ret, err);
}

/* ---- the whole exchange ----------------------------------------------------------------------- */

static void exchange(Fixture *f, bool rsa) {
        const uint8_t *cert = rsa ? f->rsa_cert : f->ecc_cert, *host_ek = rsa ? f->rsa_pub : f->ecc_pub;
        size_t cert_size = rsa ? f->rsa_cert_size : f->ecc_cert_size;
        size_t host_ek_size = rsa ? f->rsa_pub_size : f->ecc_pub_size;
        _cleanup_free_ uint8_t *ak_pub = NULL, *req_doc = NULL, *secret = NULL, *resp = NULL, *record = NULL;
        size_t ak_pub_size = 0, req_size = 0, secret_size = 0, resp_size = 0, record_size = 0;
        EnrollRequest *req = NULL;
        EnrollError err = {};
        Challenge c = {};

        ESYS_TR ak = create_ak(f, rsa, &ak_pub, &ak_pub_size);
        build_request(rsa, ak_pub, ak_pub_size, host_ek, host_ek_size, cert, cert_size, &req_doc, &req_size);
        int r = check(f, req_doc, req_size, &req, &err);
        if (r < 0)
                fail_msg("enroll_check_request: %d %s: %s", r, err.check, err.detail);
        assert_int_equal(req->ek_type, rsa ? ENROLL_EK_RSA : ENROLL_EK_ECC);
        /* Rebuilt from the certificate, it is byte for byte the TPM's own EK. */
        assert_int_equal(req->ek_pub_size, host_ek_size);
        assert_memory_equal(req->ek_pub, host_ek, host_ek_size);

        /* The TPM computes the same Name for the AK. */
        TPM2B_NAME *name = NULL;
        assert_int_equal(Esys_TR_GetName(f->esys, ak, &name), TSS2_RC_SUCCESS);
        assert_int_equal(name->size, ENROLL_AK_NAME_SIZE);
        assert_memory_equal(name->name, req->ak_name, ENROLL_AK_NAME_SIZE);
        Esys_Free(name);

        make_challenge(req, &c);
        assert_int_equal(activate(f, rsa, ak, c.blob, c.blob_size, c.enc, c.enc_size, &secret, &secret_size),
                         TSS2_RC_SUCCESS);
        assert_int_equal(secret_size, ENROLL_SECRET_SIZE);
        build_response(secret, secret_size, &resp, &resp_size);
        r = enroll_finish(c.state, c.state_size, resp, resp_size, 1700000100, &record, &record_size, &err);
        if (r < 0)
                fail_msg("enroll_finish: %d %s: %s", r, err.check, err.detail);

        /* The record names the AK (agentid-verify --trusted-ak takes it; tested with the CLI). */
        EnrollRecord rec = {};
        assert_true(enroll_is_cbor_map(record, record_size));
        assert_int_equal(enroll_record_parse(record, record_size, &rec), 0);
        assert_int_equal(rec.ak_pub_size, ak_pub_size);
        assert_memory_equal(rec.ak_pub, ak_pub, ak_pub_size);
        assert_memory_equal(rec.ak_name, req->ak_name, ENROLL_AK_NAME_SIZE);
        assert_int_equal(rec.ek_cert_size, cert_size);
        assert_string_equal(rec.host_id, HOST_ID);
        assert_int_equal(rec.time, 1700000100);
        Tpm2Public parsed;
        assert_int_equal(tpm2_public_parse(rec.ak_pub, rec.ak_pub_size, &parsed), 0);
        enroll_record_done(&rec);

        /* A record whose Name is not its AK's is refused. */
        uint8_t *p = memmem(record, record_size, req->ak_name, ENROLL_AK_NAME_SIZE);
        assert_non_null(p);
        p[10] ^= 1;
        assert_int_equal(enroll_record_parse(record, record_size, &rec), -EBADMSG);

        /* Replay: the same response against a new challenge for the same request is refused. */
        Challenge c2 = {};
        make_challenge(req, &c2);
        free(record);
        record = NULL;
        assert_int_equal(enroll_finish(c2.state, c2.state_size, resp, resp_size, 1700000200, &record, &record_size, &err),
                         -EKEYREJECTED);
        assert_string_equal(err.check, "secret");
        assert_null(record);

        /* A tampered credential blob: the TPM's integrity check refuses it. */
        _cleanup_free_ uint8_t *bad = malloc(c2.blob_size);
        assert_non_null(bad);
        memcpy(bad, c2.blob, c2.blob_size);
        bad[c2.blob_size - 1] ^= 0x01;          /* in encIdentity */
        free(secret);
        secret = NULL;
        assert_int_not_equal(activate(f, rsa, ak, bad, c2.blob_size, c2.enc, c2.enc_size, &secret, &secret_size),
                             TSS2_RC_SUCCESS);
        memcpy(bad, c2.blob, c2.blob_size);
        bad[5] ^= 0x80;                         /* in outerHMAC */
        assert_int_not_equal(activate(f, rsa, ak, bad, c2.blob_size, c2.enc, c2.enc_size, &secret, &secret_size),
                             TSS2_RC_SUCCESS);
        /* ...while the untampered one still activates. */
        assert_int_equal(activate(f, rsa, ak, c2.blob, c2.blob_size, c2.enc, c2.enc_size, &secret, &secret_size),
                         TSS2_RC_SUCCESS);
        free(secret);
        secret = NULL;

        challenge_done(&c);
        challenge_done(&c2);
        enroll_request_free(req);

        /* A substituted AK: the request names another key than the one the host activates with; the
         * credential is bound to Name(other key), so the TPM refuses to release it. */
        _cleanup_free_ uint8_t *other_pub = NULL, *req2 = NULL;
        size_t other_pub_size = 0, req2_size = 0;
        ESYS_TR other = create_ak(f, rsa, &other_pub, &other_pub_size);
        (void) Esys_FlushContext(f->esys, other);
        build_request(rsa, other_pub, other_pub_size, host_ek, host_ek_size, cert, cert_size, &req2, &req2_size);
        assert_int_equal(check(f, req2, req2_size, &req, &err), 0);
        make_challenge(req, &c);
        assert_int_not_equal(activate(f, rsa, ak, c.blob, c.blob_size, c.enc, c.enc_size, &secret, &secret_size),
                             TSS2_RC_SUCCESS);
        challenge_done(&c);
        enroll_request_free(req);

        (void) Esys_FlushContext(f->esys, ak);
}

static void test_exchange_rsa_ek(void **state) {
        exchange(*state, true);
}

static void test_exchange_ecc_ek(void **state) {
        exchange(*state, false);
}

/* ---- refused requests ------------------------------------------------------------------------- */

/* A throwaway self-signed CA (P-256), written as PEM. */
static void make_ca(const char *path, EVP_PKEY **ret_key, X509 **ret_cert) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        X509 *c = X509_new();
        X509_NAME *n = X509_NAME_new();
        assert_non_null(key);
        assert_non_null(c);
        assert_non_null(n);
        assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) "swtpm-localca", -1, -1,
                                               0));
        assert_true(X509_set_version(c, 2));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(c), 1));
        assert_true(X509_set_subject_name(c, n));
        assert_true(X509_set_issuer_name(c, n));
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(c), -3600));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(c), 3600));
        assert_true(X509_set_pubkey(c, key));
        X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
        assert_non_null(bc);
        assert_true(X509_add_ext(c, bc, -1));
        X509_EXTENSION_free(bc);
        assert_true(X509_sign(c, key, EVP_sha256()) > 0);
        FILE *fp = fopen(path, "we");
        assert_non_null(fp);
        assert_true(PEM_write_X509(fp, c));
        fclose(fp);
        X509_NAME_free(n);
        if (ret_key)
                *ret_key = key;
        else
                EVP_PKEY_free(key);
        if (ret_cert)
                *ret_cert = c;
        else
                X509_free(c);
}

static void make_other_ca(const char *path) {
        make_ca(path, NULL, NULL);
}

static void test_refused(void **state) {
        Fixture *f = *state;
        _cleanup_free_ uint8_t *ak_pub = NULL, *doc = NULL;
        size_t ak_pub_size = 0, size = 0;
        EnrollRequest *req = NULL;
        EnrollError err = {};
        char other_ca[600];

        ESYS_TR ak = create_ak(f, true, &ak_pub, &ak_pub_size);
        (void) Esys_FlushContext(f->esys, ak);

        /* The good request passes (the baseline for every refusal below). */
        build_request(true, ak_pub, ak_pub_size, f->rsa_pub, f->rsa_pub_size, f->rsa_cert, f->rsa_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), 0);
        req = enroll_request_free(req);

        /* A certificate from another CA (same subject name, other key). */
        snprintf(other_ca, sizeof(other_ca), "%s/other-ca.pem", f->sim->dir);
        make_other_ca(other_ca);
        const char *only_other[] = { other_ca };
        assert_int_equal(enroll_check_request(doc, size, only_other, 1, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ek_certificate");
        /* The intermediate alone is not a root: nothing to trust. */
        const char *only_issuer[] = { f->issuer_ca };
        assert_int_equal(enroll_check_request(doc, size, only_issuer, 1, &req, &err), -EINVAL);
        assert_string_equal(err.check, "ek_ca");
        /* The root without the intermediate: no chain. */
        const char *only_root[] = { f->root_ca };
        assert_int_equal(enroll_check_request(doc, size, only_root, 1, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ek_certificate");
        /* Both CA certificates in one PEM file work as well as two files. */
        char both[600];
        snprintf(both, sizeof(both), "%s/both.pem", f->sim->dir);
        {
                _cleanup_free_ uint8_t *a = NULL, *b = NULL;
                size_t na = 0, nb = 0;
                assert_int_equal(read_file_at(AT_FDCWD, f->root_ca, 65536, &a, &na), 0);
                assert_int_equal(read_file_at(AT_FDCWD, f->issuer_ca, 65536, &b, &nb), 0);
                FILE *fp = fopen(both, "we");
                assert_non_null(fp);
                assert_int_equal(fwrite(b, 1, nb, fp), nb);
                assert_int_equal(fwrite(a, 1, na, fp), na);
                fclose(fp);
        }
        const char *one_file[] = { both };
        assert_int_equal(enroll_check_request(doc, size, one_file, 1, &req, &err), 0);
        req = enroll_request_free(req);
        free(doc);
        doc = NULL;

        /* The host's EK public area differs from the certified key: another key's, or one bit off. */
        build_request(true, ak_pub, ak_pub_size, f->ecc_pub, f->ecc_pub_size, f->rsa_cert, f->rsa_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ek_public");
        free(doc);
        _cleanup_free_ uint8_t *ek = malloc(f->rsa_pub_size);
        assert_non_null(ek);
        memcpy(ek, f->rsa_pub, f->rsa_pub_size);
        ek[f->rsa_pub_size - 7] ^= 0x10;
        build_request(true, ak_pub, ak_pub_size, ek, f->rsa_pub_size, f->rsa_cert, f->rsa_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ek_public");
        free(doc);
        /* "alg" disagreeing with the certificate. */
        build_request(false, ak_pub, ak_pub_size, f->rsa_pub, f->rsa_pub_size, f->rsa_cert, f->rsa_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ek_public");
        free(doc);

        /* An AK that is not a restricted signing key: decrypt set, restricted clear. */
        _cleanup_free_ uint8_t *bad_ak = malloc(ak_pub_size);
        assert_non_null(bad_ak);
        memcpy(bad_ak, ak_pub, ak_pub_size);
        bad_ak[5] |= 0x02;                      /* attributes byte 1 (big-endian 0x00XY0000): decrypt */
        build_request(true, bad_ak, ak_pub_size, f->rsa_pub, f->rsa_pub_size, f->rsa_cert, f->rsa_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ak_attributes");
        free(doc);
        memcpy(bad_ak, ak_pub, ak_pub_size);
        bad_ak[5] &= (uint8_t) ~0x01;           /* restricted */
        build_request(true, bad_ak, ak_pub_size, f->rsa_pub, f->rsa_pub_size, f->rsa_cert, f->rsa_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ak_attributes");

        /* Not deterministic / trailing bytes / wrong type: format. */
        _cleanup_free_ uint8_t *longer = malloc(size + 1);
        assert_non_null(longer);
        memcpy(longer, doc, size);
        longer[size] = 0x00;
        assert_int_equal(check(f, longer, size + 1, &req, &err), -EBADMSG);
        assert_string_equal(err.check, "format");
        free(doc);
        doc = NULL;
}

/* The RSA EK's key re-certified by a CA of our own, with one extra critical extension (OID, any
 * content: OpenSSL does not process either). */
static void issue_with_critical(EVP_PKEY *ca_key, X509 *ca, EVP_PKEY *ek_key, const char *oid, uint8_t **ret,
                                size_t *ret_size) {
        X509 *leaf = X509_new();
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
        static const uint8_t content[] = { 0x30, 0x00 };       /* an empty SEQUENCE */

        assert_non_null(leaf);
        assert_non_null(obj);
        assert_non_null(value);
        assert_true(ASN1_OCTET_STRING_set(value, content, sizeof(content)));
        X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, value);
        assert_non_null(ext);
        assert_true(X509_set_version(leaf, 2));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(leaf), 7));
        assert_true(X509_set_subject_name(leaf, X509_get_subject_name(ca)));
        assert_true(X509_set_issuer_name(leaf, X509_get_subject_name(ca)));
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(leaf), -3600));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(leaf), 3600));
        assert_true(X509_set_pubkey(leaf, ek_key));
        assert_true(X509_add_ext(leaf, ext, -1));
        assert_true(X509_sign(leaf, ca_key, EVP_sha256()) > 0);
        unsigned char *der = NULL;
        int n = i2d_X509(leaf, &der);
        assert_true(n > 0);
        *ret = malloc((size_t) n);
        assert_non_null(*ret);
        memcpy(*ret, der, (size_t) n);
        *ret_size = (size_t) n;
        OPENSSL_free(der);
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(value);
        ASN1_OBJECT_free(obj);
        X509_free(leaf);
}

/* Critical extensions OpenSSL does not process: Subject Directory Attributes (TCG EK profile) in the
 * EK certificate is accepted, any other is refused. */
static void test_critical_extensions(void **state) {
        Fixture *f = *state;
        _cleanup_free_ uint8_t *ak_pub = NULL, *cert = NULL, *doc = NULL;
        size_t ak_pub_size = 0, cert_size = 0, size = 0;
        EVP_PKEY *ca_key = NULL;
        X509 *ca = NULL, *ek_cert = NULL;
        EnrollRequest *req = NULL;
        EnrollError err = {};
        char ca_path[600];

        ESYS_TR ak = create_ak(f, true, &ak_pub, &ak_pub_size);
        (void) Esys_FlushContext(f->esys, ak);
        snprintf(ca_path, sizeof(ca_path), "%s/ext-ca.pem", f->sim->dir);
        make_ca(ca_path, &ca_key, &ca);
        const unsigned char *p = f->rsa_cert;
        ek_cert = d2i_X509(NULL, &p, (long) f->rsa_cert_size);
        assert_non_null(ek_cert);
        const char *files[] = { ca_path };

        issue_with_critical(ca_key, ca, X509_get0_pubkey(ek_cert), "2.5.29.9", &cert, &cert_size);
        build_request(true, ak_pub, ak_pub_size, f->rsa_pub, f->rsa_pub_size, cert, cert_size, &doc, &size);
        int r = enroll_check_request(doc, size, files, 1, &req, &err);
        if (r < 0)
                fail_msg("enroll_check_request: %d %s: %s", r, err.check, err.detail);
        req = enroll_request_free(req);
        free(cert);
        free(doc);

        issue_with_critical(ca_key, ca, X509_get0_pubkey(ek_cert), "1.3.6.1.4.1.99999.1", &cert, &cert_size);
        build_request(true, ak_pub, ak_pub_size, f->rsa_pub, f->rsa_pub_size, cert, cert_size, &doc, &size);
        assert_int_equal(enroll_check_request(doc, size, files, 1, &req, &err), -EKEYREJECTED);
        assert_string_equal(err.check, "ek_certificate");

        X509_free(ek_cert);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
}

/* The response must be what the state holds: a wrong size or a document of another type is refused. */
static void test_finish_malformed(void **state) {
        Fixture *f = *state;
        _cleanup_free_ uint8_t *ak_pub = NULL, *doc = NULL, *resp = NULL, *record = NULL;
        size_t ak_pub_size = 0, size = 0, resp_size = 0, record_size = 0;
        EnrollRequest *req = NULL;
        EnrollError err = {};
        Challenge c = {};
        uint8_t zero[ENROLL_SECRET_SIZE + 1] = {};

        ESYS_TR ak = create_ak(f, false, &ak_pub, &ak_pub_size);
        (void) Esys_FlushContext(f->esys, ak);
        build_request(false, ak_pub, ak_pub_size, f->ecc_pub, f->ecc_pub_size, f->ecc_cert, f->ecc_cert_size, &doc, &size);
        assert_int_equal(check(f, doc, size, &req, &err), 0);
        make_challenge(req, &c);

        build_response(zero, sizeof(zero), &resp, &resp_size);
        assert_int_equal(enroll_finish(c.state, c.state_size, resp, resp_size, 1, &record, &record_size, &err),
                         -EKEYREJECTED);
        assert_string_equal(err.check, "secret");
        free(resp);
        build_response(zero, ENROLL_SECRET_SIZE, &resp, &resp_size);
        assert_int_equal(enroll_finish(c.state, c.state_size, resp, resp_size, 1, &record, &record_size, &err),
                         -EKEYREJECTED);
        /* The state is not a response, and a response is not a state. */
        assert_int_equal(enroll_finish(c.state, c.state_size, c.state, c.state_size, 1, &record, &record_size, &err),
                         -EBADMSG);
        assert_string_equal(err.check, "format");
        assert_int_equal(enroll_finish(resp, resp_size, resp, resp_size, 1, &record, &record_size, &err), -EBADMSG);
        assert_string_equal(err.check, "state");
        assert_null(record);
        challenge_done(&c);
        enroll_request_free(req);
}

/* ---- a low-range ECC P-256 EK (L-2) -------------------------------------------------------------- */

/* swtpm has no certificate for an L-2 EK: create the EK from the template (TCG EK Credential Profile
 * §2.1.5.2, as tpm2_createek -G ecc does) and certify its key with a CA made here. */
static void test_exchange_ecc_p256_l2(void **state) {
        static const uint8_t policy_a[32] = {
                0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
                0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
        };
        Fixture *f = *state;
        TPM2B_PUBLIC in = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = 0x000300b2,
                        .authPolicy = { .size = 32 },
                        .parameters.eccDetail = {
                                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                                .scheme.scheme = TPM2_ALG_NULL,
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                        .unique.ecc = { .x.size = 32, .y.size = 32 },
                },
        };
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        TPM2B_PUBLIC *out = NULL;
        TPM2B_CREATION_DATA *cdata = NULL;
        TPM2B_DIGEST *chash = NULL;
        TPMT_TK_CREATION *ticket = NULL;
        ESYS_TR ek = ESYS_TR_NONE;

        memcpy(in.publicArea.authPolicy.buffer, policy_a, sizeof(policy_a));
        assert_int_equal(Esys_CreatePrimary(f->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                            ESYS_TR_NONE, &sensitive, &in, &outside, &pcrs, &ek, &out, &cdata, &chash,
                                            &ticket),
                         TSS2_RC_SUCCESS);
        uint8_t ek_pub[sizeof(TPMT_PUBLIC)];
        size_t ek_pub_size = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&out->publicArea, ek_pub, sizeof(ek_pub), &ek_pub_size),
                         TSS2_RC_SUCCESS);
        f->has_transient_ek = true;
        f->transient_ek = ek;

        /* The EK certificate: the EK's point, issued by a CA of our own. */
        char ca_path[600];
        EVP_PKEY *ca_key = NULL, *ek_key = NULL;
        X509 *ca = NULL, *leaf = X509_new();
        snprintf(ca_path, sizeof(ca_path), "%s/l2-ca.pem", f->sim->dir);
        make_ca(ca_path, &ca_key, &ca);
        assert_int_equal(p256_pkey_from_xy(out->publicArea.unique.ecc.x.buffer, out->publicArea.unique.ecc.y.buffer,
                                           &ek_key), 0);
        assert_non_null(leaf);
        X509_NAME *subject = X509_NAME_new();
        assert_true(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *) "l2 ek", -1, -1, 0));
        assert_true(X509_set_version(leaf, 2));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(leaf), 2));
        assert_true(X509_set_subject_name(leaf, subject));
        assert_true(X509_set_issuer_name(leaf, X509_get_subject_name(ca)));
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(leaf), -3600));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(leaf), 3600));
        assert_true(X509_set_pubkey(leaf, ek_key));
        assert_true(X509_sign(leaf, ca_key, EVP_sha256()) > 0);
        unsigned char *der = NULL;
        int der_size = i2d_X509(leaf, &der);
        assert_true(der_size > 0);

        _cleanup_free_ uint8_t *ak_pub = NULL, *doc = NULL, *secret = NULL, *resp = NULL, *record = NULL;
        size_t ak_pub_size = 0, size = 0, secret_size = 0, resp_size = 0, record_size = 0;
        EnrollRequest *req = NULL;
        EnrollError err = {};
        Challenge c = {};
        ESYS_TR ak = create_ak(f, true, &ak_pub, &ak_pub_size);
        build_request(false, ak_pub, ak_pub_size, ek_pub, ek_pub_size, der, (size_t) der_size, &doc, &size);
        const char *files[] = { ca_path };
        int r = enroll_check_request(doc, size, files, 1, &req, &err);
        if (r < 0)
                fail_msg("enroll_check_request: %d %s: %s", r, err.check, err.detail);
        assert_int_equal(req->ek_pub_size, ek_pub_size);
        assert_memory_equal(req->ek_pub, ek_pub, ek_pub_size);
        make_challenge(req, &c);
        assert_int_equal(c.enc_size, 2 + 2 + 32 + 2 + 32);
        assert_int_equal(activate(f, true, ak, c.blob, c.blob_size, c.enc, c.enc_size, &secret, &secret_size),
                         TSS2_RC_SUCCESS);
        build_response(secret, secret_size, &resp, &resp_size);
        assert_int_equal(enroll_finish(c.state, c.state_size, resp, resp_size, 1, &record, &record_size, &err), 0);

        challenge_done(&c);
        enroll_request_free(req);
        OPENSSL_free(der);
        X509_NAME_free(subject);
        X509_free(leaf);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(ek_key);
        Esys_Free(out);
        Esys_Free(cdata);
        Esys_Free(chash);
        Esys_Free(ticket);
        (void) Esys_FlushContext(f->esys, ak);
        (void) Esys_FlushContext(f->esys, ek);
        f->has_transient_ek = false;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_exchange_rsa_ek, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exchange_ecc_ek, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exchange_ecc_p256_l2, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_critical_extensions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finish_malformed, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attestation on the TPM side: the endorsement key (EK), the attestation key (AK) under it, and the
 * TPM2_Certify + TPM2_Quote pair that agent and platform evidence are made of (DESIGN §5).
 *
 * The AK is an ECC P-256 restricted signing key with its scheme fixed to ECDSA-SHA256 (tpm-notes §2.1),
 * created under the EK chosen by --ek so that a verifier can prove, by credential activation against
 * the EK's certificate, that the AK lives in this TPM. Under the endorsement hierarchy its attestations
 * carry real resetCount/restartCount values (Part 3 §18.1 obfuscates them for owner-hierarchy keys).
 * Its blobs and random authValue live in the state directory (ak-rsa / ak-ecc); its loaded context is
 * saved once per boot, so an Attest job costs a ContextLoad instead of an EK session and a Load.
 *
 * Slot plan of an Attest job (three objects at most, persistent ones counted while in use):
 *   empty the key cache;  AK via ContextLoad (1)  — or EK + AK Load (2), EK released afterwards;
 *   K via the SRK (AK + SRK + K = 3), SRK flushed;  Certify (AK + K);  Quote (AK);  AK flushed.
 */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/log.h"
#include "keystore/keystore-internal.h"
#include "keystore/tpm-object.h"

#define EK_RSA_PERSISTENT 0x81010001U        /* TCG EK Credential Profile, L-1 */
#define EK_ECC_PERSISTENT_HIGH 0x81010016U   /* swtpm's P-384 high-range EK (H-3) */
#define EK_ECC_PERSISTENT_LOW 0x81010002U    /* L-2 by convention */
#define AK_RECORD_MAX 4096U
#define AK_ATTRIBUTES                                                                            \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |     \
         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)
/* PolicyA of the EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT), SHA-256. */
static const uint8_t ek_policy_a[32] = {
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
        0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

const char *keystore_ek_type_to_string(KeystoreEkType t) {
        return t == KEYSTORE_EK_ECC ? "ecc" : "rsa";
}

int keystore_ek_type_from_string(const char *s) {
        if (streq(s, "rsa"))
                return KEYSTORE_EK_RSA;
        if (streq(s, "ecc"))
                return KEYSTORE_EK_ECC;
        return -EINVAL;
}

/* EK templates L-1 (RSA 2048) and L-2 (ECC P-256) of the TCG EK Credential Profile (tpm-notes §2.2). */
static void ek_template(KeystoreEkType type, TPM2B_PUBLIC *ret) {
        *ret = (TPM2B_PUBLIC) {
                .publicArea = {
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                                            TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                        .authPolicy.size = sizeof(ek_policy_a),
                },
        };
        memcpy(ret->publicArea.authPolicy.buffer, ek_policy_a, sizeof(ek_policy_a));
        TPMT_SYM_DEF_OBJECT aes128 = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
        if (type == KEYSTORE_EK_RSA) {
                ret->publicArea.type = TPM2_ALG_RSA;
                ret->publicArea.parameters.rsaDetail = (TPMS_RSA_PARMS) {
                        .symmetric = aes128,
                        .scheme.scheme = TPM2_ALG_NULL,
                        .keyBits = 2048,
                };
                ret->publicArea.unique.rsa.size = 256;
        } else {
                ret->publicArea.type = TPM2_ALG_ECC;
                ret->publicArea.parameters.eccDetail = (TPMS_ECC_PARMS) {
                        .symmetric = aes128,
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                };
                ret->publicArea.unique.ecc.x.size = 32;
                ret->publicArea.unique.ecc.y.size = 32;
        }
}

static void ak_template(TPM2B_PUBLIC *ret) {
        *ret = (TPM2B_PUBLIC) {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = AK_ATTRIBUTES,
                        .parameters.eccDetail = {
                                .symmetric.algorithm = TPM2_ALG_NULL,
                                /* Fixed, so nobody can choose the quote's hash at sign time (tpm-notes §2.1). */
                                .scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                },
        };
}

/* ---- EK ------------------------------------------------------------------------------------- */

static int persistent_object(Keystore *ks, TPM2_HANDLE handle, ESYS_TR *ret, TPM2B_PUBLIC **ret_pub) {
        _cleanup_esys_ TPM2B_NAME *name = NULL, *qname = NULL;
        ESYS_TR h = ESYS_TR_NONE;
        int r;

        TSS2_RC rc = Esys_TR_FromTPMPublic(ks->tpm->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h);
        if (rc != TSS2_RC_SUCCESS)
                return tpm_rc_to_errno(ks->tpm, rc, "looking up a persistent EK");
        r = TPM_CALL(ks->tpm, "TPM2_ReadPublic (EK)",
                     Esys_ReadPublic(ks->tpm->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ret_pub, &name,
                                     &qname));
        if (r < 0) {
                (void) Esys_TR_Close(ks->tpm->esys, &h);
                return r;
        }
        *ret = h;
        return 0;
}

/* The EK of a type: persistent if provisioned, else (if allowed) re-created from its template. */
static int ek_acquire_type(Keystore *ks, KeystoreEkType type, bool allow_create, ESYS_TR *ret, bool *ret_transient,
                           TPM2B_PUBLIC **ret_pub) {
        static const TPM2_HANDLE rsa[] = { EK_RSA_PERSISTENT }, ecc[] = { EK_ECC_PERSISTENT_HIGH, EK_ECC_PERSISTENT_LOW };
        const TPM2_HANDLE *candidates = type == KEYSTORE_EK_RSA ? rsa : ecc;
        size_t n = type == KEYSTORE_EK_RSA ? ELEMENTSOF(rsa) : ELEMENTSOF(ecc);
        int r;

        for (size_t i = 0; i < n; i++) {
                r = persistent_object(ks, candidates[i], ret, ret_pub);
                if (r == -ENODEV || r == -ENXIO)
                        return r;
                if (r >= 0) {
                        TPMI_ALG_PUBLIC want = type == KEYSTORE_EK_RSA ? TPM2_ALG_RSA : TPM2_ALG_ECC;
                        if ((*ret_pub)->publicArea.type == want &&
                            ((*ret_pub)->publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED) &&
                            ((*ret_pub)->publicArea.objectAttributes & TPMA_OBJECT_DECRYPT)) {
                                *ret_transient = false;
                                return 0;
                        }
                        (void) Esys_TR_Close(ks->tpm->esys, ret);
                        Esys_Free(*ret_pub);
                        *ret_pub = NULL;
                }
        }

        if (!allow_create)
                return -ENOENT;

        /* No provisioned EK: the template makes the same key every time (it is a primary key). */
        _cleanup_esys_ TPM2B_CREATION_DATA *cd = NULL;
        _cleanup_esys_ TPM2B_DIGEST *ch = NULL;
        _cleanup_esys_ TPMT_TK_CREATION *ct = NULL;
        TPM2B_SENSITIVE_CREATE sens = {};
        TPM2B_PUBLIC template;
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};

        ek_template(type, &template);
        r = TPM_CALL(ks->tpm, "TPM2_CreatePrimary (EK)",
                     Esys_CreatePrimary(ks->tpm->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &sens, &template, &outside, &pcrs, ret, ret_pub, &cd, &ch, &ct));
        if (r < 0)
                return r;
        *ret_transient = true;
        return 0;
}

/* The EK that parents the AK (--ek). */
static int ek_acquire(Keystore *ks, ESYS_TR *ret, bool *ret_transient, TPM2B_PUBLIC **ret_pub) {
        return ek_acquire_type(ks, ks->ek_type, true, ret, ret_transient, ret_pub);
}

static void ek_release(Keystore *ks, ESYS_TR *h, bool transient) {
        if (transient)
                tpm_flush(ks->tpm, h);
        else if (*h != ESYS_TR_NONE)
                (void) Esys_TR_Close(ks->tpm->esys, h);
        *h = ESYS_TR_NONE;
}

/* Authorisation for using the EK as a parent: low-range EKs have userWithAuth clear, so only their
 * policy (PolicySecret on the endorsement hierarchy, Part 3 §23.4) opens them; high-range ones also
 * take their (empty) password (tpm-notes §2.4). */
static int ek_session(Keystore *ks, const TPM2B_PUBLIC *ek_pub, ESYS_TR *ret) {
        _cleanup_esys_ TPM2B_TIMEOUT *timeout = NULL;
        _cleanup_esys_ TPMT_TK_AUTH *ticket = NULL;
        TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
        ESYS_TR s = ESYS_TR_NONE;
        int r;

        if (ek_pub->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH) {
                *ret = ESYS_TR_PASSWORD;
                return 0;
        }
        r = TPM_CALL(ks->tpm, "TPM2_StartAuthSession (EK policy)",
                     Esys_StartAuthSession(ks->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym, ek_pub->publicArea.nameAlg, &s));
        if (r < 0)
                return r;
        r = TPM_CALL(ks->tpm, "TPM2_PolicySecret (endorsement)",
                     Esys_PolicySecret(ks->tpm->esys, ESYS_TR_RH_ENDORSEMENT, s, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                       ESYS_TR_NONE, NULL, NULL, NULL, 0, &timeout, &ticket));
        if (r < 0) {
                tpm_flush(ks->tpm, &s);
                return r;
        }
        *ret = s;
        return 0;
}

static void ek_session_release(Keystore *ks, ESYS_TR *s) {
        if (*s != ESYS_TR_PASSWORD)
                tpm_flush(ks->tpm, s);
        *s = ESYS_TR_NONE;
}

/* ---- AK ------------------------------------------------------------------------------------- */

static const char *ak_file(const Keystore *ks) {
        return ks->ek_type == KEYSTORE_EK_RSA ? "ak-rsa" : "ak-ecc";
}

static int ak_write(Keystore *ks) {
        _cleanup_cbor_ cbor_item_t *map = cbor_util_new_map();
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int k = 0;

        if (!map)
                return -ENOMEM;
        k |= cbor_util_map_put_text(map, "v", cbor_util_new_uint(1));
        k |= cbor_util_map_put_text(map, "ek", cbor_util_new_text(keystore_ek_type_to_string(ks->ek_type)));
        k |= cbor_util_map_put_text(map, "pub", cbor_util_new_bytes(ks->ak_pub, ks->ak_pub_size));
        k |= cbor_util_map_put_text(map, "priv", cbor_util_new_bytes(ks->ak_priv, ks->ak_priv_size));
        k |= cbor_util_map_put_text(map, "auth", cbor_util_new_bytes(ks->ak_auth, KEY_AUTH_SIZE));
        if (k != 0)
                return -ENOMEM;
        k = cbor_util_encode(map, &buf, &size);
        const cbor_item_t *a = cbor_util_map_get_text(map, "auth");
        if (a)
                erase(cbor_bytestring_handle(a), cbor_bytestring_length(a));
        if (k < 0)
                return k;
        k = write_file_atomic_at(ks->state_fd, ak_file(ks), buf, size, 0600, 0);
        erase(buf, size);
        return k;
}

static int ak_read(Keystore *ks) {
        static const CborLimits limits = { .max_size = AK_RECORD_MAX, .max_depth = 2, .max_items = 16,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        static const char *const fields[] = { "v", "ek", "pub", "priv", "auth" };
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_cbor_ cbor_item_t *map = NULL;
        const uint8_t *p, *q, *a;
        size_t size = 0, np, nq, na;
        const char *ek;
        size_t ek_len;
        uint64_t v;
        int r;

        r = read_file_at(ks->state_fd, ak_file(ks), AK_RECORD_MAX, &buf, &size);
        if (r < 0)
                return r;
        r = cbor_util_decode(buf, size, &limits, &map, NULL);
        erase(buf, size);
        if (r < 0 || !cbor_isa_map(map) || cbor_util_map_check_text_keys(map, fields, ELEMENTSOF(fields), NULL) < 0 ||
            cbor_util_get_uint(cbor_util_map_get_text(map, "v"), &v) < 0 || v != 1 ||
            cbor_util_get_text(cbor_util_map_get_text(map, "ek"), &ek, &ek_len) < 0 ||
            ek_len != 3 || memcmp(ek, keystore_ek_type_to_string(ks->ek_type), 3) != 0 ||
            cbor_util_get_bytes(cbor_util_map_get_text(map, "pub"), &p, &np) < 0 || np == 0 || np > 1024 ||
            cbor_util_get_bytes(cbor_util_map_get_text(map, "priv"), &q, &nq) < 0 || nq == 0 || nq > 1024 ||
            cbor_util_get_bytes(cbor_util_map_get_text(map, "auth"), &a, &na) < 0 || na != KEY_AUTH_SIZE)
                r = -EBADMSG;
        if (r >= 0) {
                ks->ak_pub = malloc(np);
                ks->ak_priv = malloc(nq);
                if (!ks->ak_pub || !ks->ak_priv)
                        r = -ENOMEM;
                else {
                        memcpy(ks->ak_pub, p, np);
                        memcpy(ks->ak_priv, q, nq);
                        memcpy(ks->ak_auth, a, KEY_AUTH_SIZE);
                        ks->ak_pub_size = np;
                        ks->ak_priv_size = nq;
                }
        }
        const cbor_item_t *secret = map && cbor_isa_map(map) ? cbor_util_map_get_text(map, "auth") : NULL;
        if (secret && cbor_isa_bytestring(secret))
                erase(cbor_bytestring_handle(secret), cbor_bytestring_length(secret));
        return r;
}

static int ak_create(Keystore *ks) {
        _cleanup_esys_ TPM2B_PUBLIC *ek_pub = NULL, *pub = NULL;
        _cleanup_esys_ TPM2B_PRIVATE *priv = NULL;
        _cleanup_esys_ TPM2B_CREATION_DATA *cd = NULL;
        _cleanup_esys_ TPM2B_DIGEST *ch = NULL;
        _cleanup_esys_ TPMT_TK_CREATION *ct = NULL;
        TPM2B_SENSITIVE_CREATE sens = { .sensitive.userAuth.size = KEY_AUTH_SIZE };
        TPM2B_PUBLIC template;
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
        bool transient = false;
        int r;

        r = random_bytes(ks->ak_auth, KEY_AUTH_SIZE);
        if (r < 0)
                return r;
        memcpy(sens.sensitive.userAuth.buffer, ks->ak_auth, KEY_AUTH_SIZE);
        ak_template(&template);

        r = keystore_cache_make_room(ks, 0);
        if (r >= 0)
                r = ek_acquire(ks, &ek, &transient, &ek_pub);
        if (r >= 0) {
                r = ek_session(ks, ek_pub, &session);
                if (r >= 0) {
                        r = TPM_CALL(ks->tpm, "TPM2_Create (AK)",
                                     Esys_Create(ks->tpm->esys, ek, session, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                                 &template, &outside, &pcrs, &priv, &pub, &cd, &ch, &ct));
                        ek_session_release(ks, &session);
                }
                ek_release(ks, &ek, transient);
        }
        erase(&sens, sizeof(sens));
        if (r < 0)
                return r;

        if (pub->publicArea.objectAttributes != AK_ATTRIBUTES)
                return -EIO;
        r = tpm_marshal_public(pub, &ks->ak_pub, &ks->ak_pub_size);
        if (r >= 0)
                r = tpm_marshal_private(priv, &ks->ak_priv, &ks->ak_priv_size);
        erase(priv, sizeof(*priv));
        if (r < 0)
                return r;
        return ak_write(ks);
}

/* "<ak file>.check": written when the owner hierarchy was found cleared, removed once this type's AK
 * was checked (docs/architecture.md, "State directory"). */
static const char *ak_check_file(KeystoreEkType t) {
        return t == KEYSTORE_EK_RSA ? "ak-rsa.check" : "ak-ecc.check";
}

int keystore_mark_aks_for_check(Keystore *ks) {
        static const KeystoreEkType types[] = { KEYSTORE_EK_RSA, KEYSTORE_EK_ECC };

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                int r = write_file_atomic_at(ks->state_fd, ak_check_file(types[i]), "", 0, 0600, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void ak_check_done(Keystore *ks) {
        if (unlinkat(ks->state_fd, ak_check_file(ks->ek_type), 0) < 0) {
                if (errno != ENOENT)
                        log_warning_errno(errno, "Removing %s failed (the next start checks the AK again): %m",
                                          ak_check_file(ks->ek_type));
                return;
        }
        (void) fsync_directory(ks->state_fd);
}

int keystore_setup_ak(Keystore *ks) {
        bool check = faccessat(ks->state_fd, ak_check_file(ks->ek_type), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
        int r = ak_read(ks);
        if (r == -ENOENT) {
                r = ak_create(ks);
                if (r < 0)
                        return keystore_fail_tpm(ks, r, "Creating the attestation key under the EK");
                log_debug("Created the attestation key under the %s EK.", keystore_ek_type_to_string(ks->ek_type));
                if (check)
                        ak_check_done(ks);
                return 0;
        }
        if (r < 0)
                return keystore_fail(ks, r, "The attestation key record %s is unreadable: %s", ak_file(ks),
                                     strerror(-r));
        if (check) {
                /* The owner hierarchy was cleared. TPM2_Clear changes ehProof too (Part 3 §24.6), and an AK
                 * made under the EK before may no longer load (TPM_RC_INTEGRITY with swtpm). Checked only
                 * then, as loading it costs an EK session. Keep the old record, like the retired host key. */
                ESYS_TR h = ESYS_TR_NONE;
                r = keystore_ak_acquire(ks, &h);
                tpm_flush(ks->tpm, &h);
                if (r == -EBADMSG) {
                        char retired[64];
                        snprintf(retired, sizeof(retired), "%s.retired-%" PRIu64, ak_file(ks),
                                 (uint64_t) time(NULL));
                        if (renameat(ks->state_fd, ak_file(ks), ks->state_fd, retired) < 0)
                                return keystore_fail(ks, -errno, "Retiring the unusable attestation key failed: %m");
                        ks->ak_pub = mfree(ks->ak_pub);
                        ks->ak_priv = mfree(ks->ak_priv);
                        ks->ak_pub_size = ks->ak_priv_size = 0;
                        ks->ak_context = mfree(ks->ak_context);
                        ks->ak_context_size = 0;
                        r = ak_create(ks);
                        if (r < 0)
                                return keystore_fail_tpm(ks, r, "Creating the attestation key under the EK");
                        log_info("The attestation key no longer loads (owner hierarchy cleared): made a new one; "
                                 "enroll it again.");
                } else if (r < 0)
                        return keystore_fail_tpm(ks, r, "Loading the attestation key");
                ak_check_done(ks);
        }
        return 0;
}

/* The AK, loaded: from its saved context when it has one (once per boot), else under the EK. */
int keystore_ak_acquire(Keystore *ks, ESYS_TR *ret) {
        TPM2B_AUTH auth = { .size = KEY_AUTH_SIZE };
        ESYS_TR h = ESYS_TR_NONE;
        int r;

        if (ks->ak_context) {
                r = keystore_context_load(ks, ks->ak_context, ks->ak_context_size, &h);
                if (r == -ENODEV || r == -ENXIO)
                        return r;
                if (r < 0) {
                        ks->ak_context = mfree(ks->ak_context);
                        ks->ak_context_size = 0;
                }
        }
        if (h == ESYS_TR_NONE) {
                _cleanup_esys_ TPM2B_PUBLIC *ek_pub = NULL;
                TPM2B_PUBLIC pub;
                TPM2B_PRIVATE priv;
                ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
                bool transient = false;

                if (tpm_unmarshal_public(ks->ak_pub, ks->ak_pub_size, &pub) < 0 ||
                    tpm_unmarshal_private(ks->ak_priv, ks->ak_priv_size, &priv) < 0)
                        return -EBADMSG;
                r = ek_acquire(ks, &ek, &transient, &ek_pub);
                if (r >= 0) {
                        r = ek_session(ks, ek_pub, &session);
                        if (r >= 0) {
                                r = TPM_CALL(ks->tpm, "TPM2_Load (AK)",
                                             Esys_Load(ks->tpm->esys, ek, session, ESYS_TR_NONE, ESYS_TR_NONE, &priv,
                                                       &pub, &h));
                                ek_session_release(ks, &session);
                        }
                        ek_release(ks, &ek, transient);
                }
                erase(&priv, sizeof(priv));
                if (r < 0)
                        return r;
                /* Saved once per boot: later Attest jobs skip the EK session entirely. */
                if (keystore_context_save(ks, h, &ks->ak_context, &ks->ak_context_size) < 0)
                        log_debug("Saving the AK context failed; it will be loaded under the EK again.");
        }

        memcpy(auth.buffer, ks->ak_auth, KEY_AUTH_SIZE);
        TSS2_RC rc = Esys_TR_SetAuth(ks->tpm->esys, h, &auth);
        erase(&auth, sizeof(auth));
        if (rc != TSS2_RC_SUCCESS) {
                tpm_flush(ks->tpm, &h);
                return tpm_rc_to_errno(ks->tpm, rc, "Esys_TR_SetAuth (AK)");
        }
        *ret = h;
        return 0;
}

int keystore_require_ak(Keystore *ks) {
        if (ks->ak_error)
                return keystore_fail(ks, -EOPNOTSUPP, "No attestation key: %s", ks->ak_error);
        return 0;
}

int keystore_ak_public(Keystore *ks, uint8_t **ret, size_t *ret_size, uint8_t ret_name[KEY_KID_SIZE]) {
        TPM2B_PUBLIC pub;
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        int r;

        r = keystore_require_ak(ks);
        if (r < 0)
                return r;
        r = tpm_unmarshal_public(ks->ak_pub, ks->ak_pub_size, &pub);
        if (r < 0)
                return r;
        if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        r = tpm_public_name(&pub.publicArea, ret_name);
        if (r < 0)
                return r;
        return memdup_sized(buf, off, ret, ret_size);
}

/* ---- Certify and Quote ---------------------------------------------------------------------- */

static int marshal_attest(const TPM2B_ATTEST *a, uint8_t **ret, size_t *ret_size) {
        /* Evidence carries the attest bytes as signed: the TPMS_ATTEST without the TPM2B size. */
        return memdup_sized(a->attestationData, a->size, ret, ret_size);
}

static int marshal_signature(const TPMT_SIGNATURE *s, uint8_t **ret, size_t *ret_size) {
        uint8_t buf[sizeof(TPMT_SIGNATURE)];
        size_t off = 0;

        if (Tss2_MU_TPMT_SIGNATURE_Marshal(s, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        return memdup_sized(buf, off, ret, ret_size);
}

int keystore_certify(Keystore *ks, ESYS_TR ak, ESYS_TR key, const uint8_t data[32], uint8_t **ret_attest,
                     size_t *ret_attest_size, uint8_t **ret_sig, size_t *ret_sig_size) {
        _cleanup_esys_ TPM2B_ATTEST *info = NULL;
        _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
        _cleanup_free_ uint8_t *attest = NULL;
        size_t attest_size = 0;
        TPM2B_DATA q = { .size = 32 };
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        int r;

        memcpy(q.buffer, data, 32);
        /* Part 3 §18.2: the object needs ADMIN role (its authValue, adminWithPolicy being clear). */
        r = TPM_CALL(ks->tpm, "TPM2_Certify",
                     Esys_Certify(ks->tpm->esys, key, ak, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &q,
                                  &scheme, &info, &sig));
        if (r < 0)
                return r;
        r = marshal_attest(info, &attest, &attest_size);
        if (r >= 0)
                r = marshal_signature(sig, ret_sig, ret_sig_size);
        if (r < 0)
                return r;
        *ret_attest = TAKE_PTR(attest);
        *ret_attest_size = attest_size;
        return 0;
}

/* SHA-256 PCRs 0..7: TPML_PCR_SELECTION 00000001 000b 03 ff0000 (DESIGN §5). */
static const TPML_PCR_SELECTION quote_selection = {
        .count = 1,
        .pcrSelections = { { .hash = TPM2_ALG_SHA256, .sizeofSelect = 3, .pcrSelect = { 0xff, 0x00, 0x00 } } },
};

static int read_pcrs(Keystore *ks, uint8_t ret[KEYSTORE_PCR_COUNT][32]) {
        _cleanup_esys_ TPML_PCR_SELECTION *out_sel = NULL;
        _cleanup_esys_ TPML_DIGEST *values = NULL;
        UINT32 counter = 0;
        int r;

        r = TPM_CALL(ks->tpm, "TPM2_PCR_Read",
                     Esys_PCR_Read(ks->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &quote_selection, &counter,
                                   &out_sel, &values));
        if (r < 0)
                return r;
        /* The TPM may drop PCRs or banks it does not have: insist on all eight. */
        if (values->count != KEYSTORE_PCR_COUNT || out_sel->count != 1 ||
            memcmp(&out_sel->pcrSelections[0], &quote_selection.pcrSelections[0], sizeof(TPMS_PCR_SELECTION)) != 0)
                return -EOPNOTSUPP;
        for (unsigned i = 0; i < KEYSTORE_PCR_COUNT; i++) {
                if (values->digests[i].size != 32)
                        return -EOPNOTSUPP;
                memcpy(ret[i], values->digests[i].buffer, 32);
        }
        return 0;
}

static int quote(Keystore *ks, ESYS_TR ak, const uint8_t data[32], KeystoreEvidence *e) {
        TPM2B_DATA q = { .size = 32 };
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        int r;

        memcpy(q.buffer, data, 32);
        /* PCRs can change between the quote and the read; then the digests disagree: try again. */
        for (unsigned attempt = 0; attempt < 5; attempt++) {
                _cleanup_esys_ TPM2B_ATTEST *quoted = NULL;
                _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
                TPMS_ATTEST attest = {};
                uint8_t digest[32];
                size_t off = 0;

                r = TPM_CALL(ks->tpm, "TPM2_Quote",
                             Esys_Quote(ks->tpm->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &q, &scheme,
                                        &quote_selection, &quoted, &sig));
                if (r < 0)
                        return r;
                r = read_pcrs(ks, e->pcrs);
                if (r < 0)
                        return r;
                if (Tss2_MU_TPMS_ATTEST_Unmarshal(quoted->attestationData, quoted->size, &off, &attest) !=
                    TSS2_RC_SUCCESS || attest.type != TPM2_ST_ATTEST_QUOTE)
                        return -EIO;
                r = sha256(e->pcrs, sizeof(e->pcrs), digest);
                if (r < 0)
                        return r;
                const TPM2B_DIGEST *qd = &attest.attested.quote.pcrDigest;
                if (qd->size != 32 || memcmp(qd->buffer, digest, 32) != 0) {
                        log_debug("PCRs changed between quote and read; quoting again.");
                        continue;
                }
                free(e->quote);
                free(e->quote_sig);
                r = marshal_attest(quoted, &e->quote, &e->quote_size);
                if (r >= 0)
                        r = marshal_signature(sig, &e->quote_sig, &e->quote_sig_size);
                return r;
        }
        return -EAGAIN;
}

void keystore_evidence_done(KeystoreEvidence *e) {
        if (!e)
                return;
        free(e->key_pub);
        free(e->certify);
        free(e->certify_sig);
        free(e->quote);
        free(e->quote_sig);
        free(e->ak_pub);
        *e = (KeystoreEvidence) {};
}

int keystore_attest(Keystore *ks, const KeyRecord *r, const uint8_t certify_data[32], const uint8_t quote_data[32],
                    KeystoreEvidence *ret) {
        _cleanup_(keystore_evidence_done) KeystoreEvidence e = {};
        uint8_t ak_name[KEY_KID_SIZE];
        ESYS_TR ak = ESYS_TR_NONE, key = ESYS_TR_NONE;
        bool cached;
        int k;

        if (r->state != KEY_STATE_ACTIVE)
                return keystore_fail(ks, -EKEYREVOKED, "Key '%s' was destroyed", r->name);
        k = keystore_require_ak(ks);
        if (k >= 0)
                k = keystore_ensure_connected(ks);
        if (k < 0)
                return k;

        k = keystore_key_public_area(r, &e.key_pub, &e.key_pub_size);
        if (k >= 0)
                k = keystore_ak_public(ks, &e.ak_pub, &e.ak_pub_size, ak_name);
        if (k < 0)
                return keystore_fail(ks, k, "Preparing evidence for '%s' failed", r->name);
        memcpy(e.srk_name, ks->srk_name, KEY_KID_SIZE);

        /* Slot plan (header comment): nothing cached stays loaded while the AK is in. */
        for (unsigned attempt = 0; attempt < 2; attempt++) {
                k = keystore_cache_make_room(ks, 0);
                if (k >= 0)
                        k = keystore_ak_acquire(ks, &ak);
                if (k >= 0)
                        k = keystore_key_acquire(ks, r, &key, &cached);
                if (k >= 0)
                        k = keystore_certify(ks, ak, key, certify_data, &e.certify, &e.certify_size, &e.certify_sig,
                                             &e.certify_sig_size);
                if (k >= 0)
                        k = quote(ks, ak, quote_data, &e);
                tpm_flush(ks->tpm, &ak);
                if (k != -ESTALE)
                        break;
                /* A TPM reset in between: start again from the blobs, once, without what the first
                 * attempt got (a certify, maybe). */
                e.certify = mfree(e.certify);
                e.certify_sig = mfree(e.certify_sig);
                e.quote = mfree(e.quote);
                e.quote_sig = mfree(e.quote_sig);
                e.certify_size = e.certify_sig_size = e.quote_size = e.quote_sig_size = 0;
                keystore_forget_objects(ks);
                ks->ak_context = mfree(ks->ak_context);
                ks->ak_context_size = 0;
        }
        if (k < 0)
                return keystore_fail_tpm(ks, k, "Attesting");

        *ret = e;
        e = (KeystoreEvidence) {};
        return 0;
}

int keystore_ek_public(Keystore *ks, KeystoreEkType type, uint8_t **ret, size_t *ret_size) {
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        ESYS_TR ek = ESYS_TR_NONE;
        bool transient = false;
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        int r;

        r = keystore_ensure_connected(ks);
        if (r >= 0)
                r = keystore_cache_make_room(ks, KEYSTORE_MAX_LOADED - 1);
        if (r >= 0)
                /* Only the AK's parent is re-created from its template; the other type only if provisioned. */
                r = ek_acquire_type(ks, type, type == ks->ek_type, &ek, &transient, &pub);
        if (r == -ENOENT)
                return keystore_fail(ks, r, "No %s EK is provisioned", keystore_ek_type_to_string(type));
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Reading the EK");
        ek_release(ks, &ek, transient);
        if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        return memdup_sized(buf, off, ret, ret_size);
}

/* ---- enrollment ----------------------------------------------------------------------------- */

/* TCG EK Credential Profile NV indices of EK certificates: L-1 RSA, H-3 ECC P-384, L-2 ECC P-256. */
#define EK_CERT_NV_RSA 0x01C00002U
#define EK_CERT_NV_ECC_P384 0x01C00016U
#define EK_CERT_NV_ECC_P256 0x01C0000AU
#define EK_CERT_MAX (8U * 1024U)
#define NV_CHUNK_DEFAULT 512U

static unsigned nv_buffer_max(Keystore *ks) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *caps = NULL;
        TPMI_YES_NO more = TPM2_NO;

        if (Esys_GetCapability(ks->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                               TPM2_PT_NV_BUFFER_MAX, 1, &more, &caps) != TSS2_RC_SUCCESS ||
            caps->data.tpmProperties.count < 1 ||
            caps->data.tpmProperties.tpmProperty[0].property != TPM2_PT_NV_BUFFER_MAX)
                return NV_CHUNK_DEFAULT;
        return MIN(caps->data.tpmProperties.tpmProperty[0].value, (UINT32) sizeof(((TPM2B_MAX_NV_BUFFER *) 0)->buffer));
}

/* Read a whole NV index with owner authorisation, in chunks of at most TPM2_PT_NV_BUFFER_MAX. */
static int nv_read_all(Keystore *ks, TPM2_HANDLE index, uint8_t **ret, size_t *ret_size) {
        _cleanup_esys_ TPM2B_NV_PUBLIC *pub = NULL;
        _cleanup_esys_ TPM2B_NAME *name = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        ESYS_TR nv = ESYS_TR_NONE;
        unsigned chunk = nv_buffer_max(ks);
        int r;

        TSS2_RC rc = Esys_TR_FromTPMPublic(ks->tpm->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm_rc_to_errno(ks->tpm, rc, "looking up an NV index");
                return r == -ESTALE ? -ENOENT : r;
        }
        r = TPM_CALL(ks->tpm, "TPM2_NV_ReadPublic",
                     Esys_NV_ReadPublic(ks->tpm->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name));
        size_t size = r >= 0 ? pub->nvPublic.dataSize : 0;
        if (r >= 0 && (size == 0 || size > EK_CERT_MAX))
                r = -EBADMSG;
        if (r >= 0 && !(buf = malloc(size)))
                r = -ENOMEM;
        for (size_t off = 0; r >= 0 && off < size;) {
                _cleanup_esys_ TPM2B_MAX_NV_BUFFER *data = NULL;
                UINT16 n = (UINT16) MIN((size_t) chunk, size - off);
                r = TPM_CALL(ks->tpm, "TPM2_NV_Read",
                             Esys_NV_Read(ks->tpm->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                          ESYS_TR_NONE, n, (UINT16) off, &data));
                if (r >= 0 && data->size != n)
                        r = -EIO;
                if (r >= 0) {
                        memcpy(buf + off, data->buffer, n);
                        off += n;
                }
        }
        (void) Esys_TR_Close(ks->tpm->esys, &nv);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int keystore_ek_certificate(Keystore *ks, KeystoreEkType type, uint8_t **ret, size_t *ret_size) {
        static const TPM2_HANDLE rsa[] = { EK_CERT_NV_RSA }, ecc[] = { EK_CERT_NV_ECC_P384, EK_CERT_NV_ECC_P256 };
        const TPM2_HANDLE *list = type == KEYSTORE_EK_RSA ? rsa : ecc;
        size_t n = type == KEYSTORE_EK_RSA ? ELEMENTSOF(rsa) : ELEMENTSOF(ecc);
        int r = keystore_ensure_connected(ks);

        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = nv_read_all(ks, list[i], ret, ret_size);
                if (r >= 0 || r == -ENODEV || r == -ENXIO)
                        break;
        }
        if (r < 0)
                return keystore_fail(ks, r == -ENODEV || r == -ENXIO ? r : -ENOENT,
                                     "No EK certificate in NV for the %s EK", keystore_ek_type_to_string(type));
        return 0;
}

int keystore_activate_credential(Keystore *ks, const uint8_t *blob, size_t blob_size, const uint8_t *secret,
                                 size_t secret_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_esys_ TPM2B_PUBLIC *ek_pub = NULL;
        _cleanup_esys_ TPM2B_DIGEST *cert_info = NULL;
        TPM2B_ID_OBJECT id = {};
        TPM2B_ENCRYPTED_SECRET enc = {};
        ESYS_TR ak = ESYS_TR_NONE, ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
        bool transient = false;
        size_t off = 0;
        int r;

        /* Both arrive marshalled with their TPM2B size prefix, exactly as MakeCredential produced them. */
        if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blob_size, &off, &id) != TSS2_RC_SUCCESS || off != blob_size)
                return keystore_fail(ks, -EINVAL, "The credential blob is not a TPM2B_ID_OBJECT");
        off = 0;
        if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret, secret_size, &off, &enc) != TSS2_RC_SUCCESS ||
            off != secret_size)
                return keystore_fail(ks, -EINVAL, "The encrypted secret is not a TPM2B_ENCRYPTED_SECRET");

        r = keystore_require_ak(ks);
        if (r >= 0)
                r = keystore_ensure_connected(ks);
        if (r < 0)
                return r;
        /* Slots: AK + EK, nothing cached (Part 3 §12.5: activateHandle is the AK, keyHandle the EK). */
        r = keystore_cache_make_room(ks, 0);
        if (r >= 0)
                r = keystore_ak_acquire(ks, &ak);
        if (r >= 0)
                r = ek_acquire(ks, &ek, &transient, &ek_pub);
        if (r >= 0)
                r = ek_session(ks, ek_pub, &session);
        if (r >= 0)
                r = TPM_CALL(ks->tpm, "TPM2_ActivateCredential",
                             Esys_ActivateCredential(ks->tpm->esys, ak, ek, ESYS_TR_PASSWORD, session, ESYS_TR_NONE,
                                                     &id, &enc, &cert_info));
        if (session != ESYS_TR_NONE)
                ek_session_release(ks, &session);
        if (ek != ESYS_TR_NONE)
                ek_release(ks, &ek, transient);
        tpm_flush(ks->tpm, &ak);
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Activating the credential");
        r = memdup_sized(cert_info->buffer, cert_info->size, ret, ret_size);
        erase(cert_info->buffer, cert_info->size);
        return r;
}

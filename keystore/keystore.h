/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The keystore: non-exportable ECDSA P-256 signing keys in the TPM, and their records in the state
 * directory. This is the public interface of keystore/; it exposes no TPM types, so callers never
 * include tss2 headers.
 *
 * A Keystore is used by one thread at a time (it owns one ESAPI context). It holds the storage root
 * key (SRK), the host key and a small cache of loaded and context-saved keys that stays within the
 * TPM's guaranteed three object slots (docs/keystore.md, "Slots").
 *
 * Errors are -errno; see keystore/tpm.h for how TPM conditions map, plus:
 *   -EEXIST       a key (or tombstone) of that name exists
 *   -ENOENT       no record of that name
 *   -EKEYREVOKED  the key was destroyed
 *   -EMEDIUMTYPE  the key belongs to another TPM or an owner hierarchy that has since been cleared
 *   -EBUSY        the state directory is in use by another process
 * keystore_last_error() gives a message for the most recent failure.
 */

#include <stdbool.h>
#include <stdint.h>

#include "keystore/record.h"

#define KEYSTORE_ERROR_MAX 256U
#define KEYSTORE_HOST_ID_SIZE 16U          /* bytes; hex in agent URIs */
#define KEYSTORE_DIGEST_SIZE 32U           /* SHA-256 */
#define KEYSTORE_SIGNATURE_SIZE 64U        /* raw r || s */

typedef struct Keystore Keystore;

/* Which endorsement key parents the attestation key (--ek). */
typedef enum KeystoreEkType {
        KEYSTORE_EK_RSA,   /* RSA-2048 (L-1): the common case on hardware TPMs */
        KEYSTORE_EK_ECC,   /* ECC: swtpm's P-384 high-range EK, else an L-2 P-256 EK */
} KeystoreEkType;

typedef struct KeystoreOptions {
        const char *tcti;                  /* TCTI configuration, e.g. "device:/dev/tpmrm0" */
        const char *state_dir;             /* created 0700 if missing */
        const char *owner_auth_file;       /* owner hierarchy password, optional */
        const char *endorsement_auth_file; /* endorsement hierarchy password, optional */
        bool flush_stale_handles;          /* flush every transient object at start (no RM only) */
        KeystoreEkType ek;
} KeystoreOptions;

typedef struct KeySpec {
        const char *name;
        const char *owner;
        const char *description;           /* optional */
        uint32_t uid;
        uint64_t not_after;                /* seconds since the epoch, 0 = none */
        const uint8_t *exe_sha256;         /* KEY_EXE_DIGEST_SIZE bytes, optional */
        bool named_tasks_only;
} KeySpec;

/* Called for each record file the loader cannot use; reason is human-readable. */
typedef void (*KeystoreProblemFn)(const char *file, int error, const char *reason, void *userdata);

/*
 * keystore_open() - connect to the TPM, lock and check the state directory, derive the SRK,
 *                   create or load the host key, and finish interrupted destroys
 * @ret_error: KEYSTORE_ERROR_MAX bytes for a message on failure (may be NULL)
 *
 * The state directory must be owned by the caller and not writable by group or others (-EPERM).
 */
int keystore_open(const KeystoreOptions *o, Keystore **ret, char *ret_error);
Keystore *keystore_free(Keystore *ks);
DEFINE_TRIVIAL_CLEANUP_FUNC(Keystore *, keystore_free);

const char *keystore_last_error(const Keystore *ks);
/* Hex of the first 16 bytes of SHA-256(SRK Name): 32 characters (DESIGN §2 host-id). */
const char *keystore_host_id(const Keystore *ks);
const uint8_t *keystore_srk_name(const Keystore *ks);          /* KEY_KID_SIZE bytes */
const char *keystore_tpm_manufacturer(const Keystore *ks);
const KeyRecord *keystore_host_key(const Keystore *ks);
/* True when open found the host key under another storage root key (owner hierarchy cleared), kept
 * it as host-key.retired-<time> and made a new one: receipts are signed by a new key from now on. */
bool keystore_host_key_replaced(const Keystore *ks);

/*
 * keystore_create_key() - create a new TPM key with a random authValue and persist its record
 *
 * Return: 0 and the new record; -EINVAL for a bad spec; -EEXIST; TPM errors.
 */
int keystore_create_key(Keystore *ks, const KeySpec *spec, uint64_t now, KeyRecord **ret);

/* Read one record from disk. Return: 0; -ENOENT; -EBADMSG (reason in keystore_last_error()). */
int keystore_load_record(Keystore *ks, const char *name, KeyRecord **ret);

/*
 * keystore_load_all() - read every record, reporting (and skipping) torn, foreign or corrupt files
 *
 * Records that parse but belong to another SRK are returned; keystore_key_check() tells.
 * Return: 0 and an array of records (free each, then the array); -errno if the directory cannot be read.
 */
int keystore_load_all(Keystore *ks, KeystoreProblemFn report, void *userdata, KeyRecord ***ret, size_t *ret_n);

/* Can this record be used with this TPM? Return: 0; -EKEYREVOKED; -EMEDIUMTYPE; -EBADMSG. */
int keystore_key_check(Keystore *ks, const KeyRecord *r);

/*
 * keystore_sign() - sign a SHA-256 digest with the key of an active record
 * @ret_sig: r || s, each left-padded to 32 bytes
 *
 * Reuses a loaded or context-saved copy of the key when it has one. A TPM reset in between is noticed
 * (stale handles) and handled by reloading from the blob once.
 */
int keystore_sign(Keystore *ks, const KeyRecord *r, const uint8_t digest[KEYSTORE_DIGEST_SIZE],
                  uint8_t ret_sig[KEYSTORE_SIGNATURE_SIZE]);

/*
 * keystore_destroy_key() - flush the key, replace its record with a tombstone, wipe the old file
 *
 * On return the record on disk is a tombstone (the name stays reserved) and r is one too. See
 * docs/keystore.md for what destroying does and does not guarantee.
 * Return: 0; -EKEYREVOKED if already destroyed; -EPERM for the host key; -errno.
 */
int keystore_destroy_key(Keystore *ks, KeyRecord *r, uint64_t now);

/*
 * keystore_rotate_begin() - create a new TPM key for the same name, owner, uid, expiry and workload pin
 * @old_spki_sha256: SHA-256 of the old key's DER SubjectPublicKeyInfo, kept in the new record
 *
 * Nothing is written: the new record (naming the old key in replaces_*) exists only in memory until
 * keystore_rotate_commit(), so statements can be signed by the old key in between, and a failure
 * leaves the old key as it was.
 * Return: 0; -EPERM for the host key; -EKEYREVOKED; -EINVAL (also an expired key); TPM errors.
 */
int keystore_rotate_begin(Keystore *ks, const KeyRecord *old, const uint8_t old_spki_sha256[KEY_SPKI_DIGEST_SIZE],
                          const char *reason, uint64_t now, KeyRecord **ret);
/* Atomically replace the old record with the new one, wipe the old file and forget the old key. */
int keystore_rotate_commit(Keystore *ks, const KeyRecord *old, const KeyRecord *new);

/* The key's public key as DER SubjectPublicKeyInfo. */
int keystore_key_public_der(const KeyRecord *r, uint8_t **ret, size_t *ret_size);
/* SHA-256 of the key's DER SubjectPublicKeyInfo, as revocations and receipts name it. Return: 0;
 * -EKEYREVOKED, -EINVAL, -EBADMSG as keystore_key_public_point(); -ENOMEM, -EIO (hashing). */
int keystore_key_spki_sha256(const KeyRecord *r, uint8_t ret[KEY_SPKI_DIGEST_SIZE]);
/* The key's public point (P-256 affine coordinates, left-padded). Return: 0; -EKEYREVOKED for a
 * tombstone; -EINVAL, -EBADMSG for a public area that is not a P-256 key. */
int keystore_key_public_point(const KeyRecord *r, uint8_t x[32], uint8_t y[32]);
/* The key's public area (marshalled TPMT_PUBLIC, no size prefix), as evidence carries it. */
int keystore_key_public_area(const KeyRecord *r, uint8_t **ret, size_t *ret_size);

/* ---- attestation (keystore/attestation.c) ----------------------------------------------------- */

#define KEYSTORE_PCR_COUNT 8U              /* SHA-256 PCRs 0..7 are quoted */

/* The TPM's part of agent and platform evidence (DESIGN §5), as byte strings. */
typedef struct KeystoreEvidence {
        uint8_t *key_pub;                  /* TPMT_PUBLIC of the certified key */
        size_t key_pub_size;
        uint8_t *certify;                  /* TPMS_ATTEST as signed (type 0x8017) */
        size_t certify_size;
        uint8_t *certify_sig;              /* TPMT_SIGNATURE */
        size_t certify_sig_size;
        uint8_t *quote;                    /* TPMS_ATTEST as signed (type 0x8018) */
        size_t quote_size;
        uint8_t *quote_sig;
        size_t quote_sig_size;
        uint8_t pcrs[KEYSTORE_PCR_COUNT][32];
        uint8_t *ak_pub;                   /* TPMT_PUBLIC of the AK */
        size_t ak_pub_size;
        uint8_t srk_name[KEY_KID_SIZE];
} KeystoreEvidence;

void keystore_evidence_done(KeystoreEvidence *e);
const char *keystore_ek_type_to_string(KeystoreEkType t);
int keystore_ek_type_from_string(const char *s);

/*
 * keystore_attest() - TPM2_Certify of the key by the AK with certify_data as qualifyingData, and a
 *                     TPM2_Quote of SHA-256 PCRs 0..7 with quote_data, plus the PCR values quoted
 *
 * Retries when the PCRs change between the quote and their read. Return: 0; -EKEYREVOKED; TPM errors.
 */
int keystore_attest(Keystore *ks, const KeyRecord *r, const uint8_t certify_data[32], const uint8_t quote_data[32],
                    KeystoreEvidence *ret);

/* The AK's public area (TPMT_PUBLIC, no size prefix) and Name. */
int keystore_ak_public(Keystore *ks, uint8_t **ret, size_t *ret_size, uint8_t ret_name[KEY_KID_SIZE]);
/* The public area (TPMT_PUBLIC) of an EK: the AK's parent (re-created from its template if it is not
 * provisioned), or the other type if provisioned (-ENOENT if not). */
int keystore_ek_public(Keystore *ks, KeystoreEkType type, uint8_t **ret, size_t *ret_size);
KeystoreEkType keystore_ek_type(const Keystore *ks);
/* NULL when attestation works; otherwise why the AK could not be set up at open. */
const char *keystore_attestation_error(const Keystore *ks);

/* The DER certificate of an EK type, from its TCG NV index. Return: 0; -ENOENT if none. */
int keystore_ek_certificate(Keystore *ks, KeystoreEkType type, uint8_t **ret, size_t *ret_size);

/*
 * keystore_activate_credential() - TPM2_ActivateCredential with the AK and the EK (enrollment)
 * @blob: marshalled TPM2B_ID_OBJECT, @secret: marshalled TPM2B_ENCRYPTED_SECRET (size prefixes
 *        included), as a verifier's software MakeCredential made them for Name(AK) and this EK
 *
 * The TPM releases the secret only if the AK is loaded in the TPM that owns the EK (Part 1 §24).
 * Return: 0 and the secret; -EINVAL for malformed input; TPM errors (a wrong blob fails integrity).
 */
int keystore_activate_credential(Keystore *ks, const uint8_t *blob, size_t blob_size, const uint8_t *secret,
                                 size_t secret_size, uint8_t **ret, size_t *ret_size);

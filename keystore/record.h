/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Key records: what the state directory remembers about one key (DESIGN §5 "Key record"; CDDL in
 * docs/formats.md). This header has no TPM types: TPM structures travel as marshalled bytes, so the
 * daemon can hold records without including tss2 headers.
 *
 * A record is either active (it carries the TPM blobs and the key's authValue) or a tombstone
 * (destroyed: blobs and authValue gone, the name and kid kept so the name stays reserved and the key
 * can be named in revocations).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define KEY_NAME_MAX 64U
#define KEY_OWNER_MAX 256U
#define KEY_DESCRIPTION_MAX 1024U
#define KEY_AUTH_SIZE 32U
#define KEY_KID_SIZE 34U
#define KEY_EXE_DIGEST_SIZE 32U
#define KEY_SPKI_DIGEST_SIZE 32U
#define KEY_REASON_MAX 256U
/* Largest record file accepted; real ones are under 1 KiB. */
#define KEY_RECORD_MAX_SIZE (16U * 1024U)

typedef enum KeyState {
        KEY_STATE_ACTIVE,
        KEY_STATE_DESTROYED,
        _KEY_STATE_MAX,
        _KEY_STATE_INVALID = -EINVAL,
} KeyState;

/* A key made by Key.Rotate names the key it replaced, so the revocation of that key can be completed
 * at start if agentidd stopped between writing the new record and the revocation. */
typedef struct KeyReplaces {
        uint8_t kid[KEY_KID_SIZE];
        uint8_t spki_sha256[KEY_SPKI_DIGEST_SIZE];
        char reason[];                   /* as given to Rotate (may be empty) */
} KeyReplaces;

/* agentidd keeps one per key in memory (10,000 and more): rarely used parts live out of line, and the
 * two TPM blobs share one allocation (docs/performance.md, "Start-up and memory"). */
typedef struct KeyRecord {
        char *name;
        char *owner;             /* accountable person or team */
        char *description;       /* may be NULL */
        uint32_t uid;            /* who may use the key */
        KeyState state;
        uint64_t created;        /* seconds since the epoch */
        uint64_t not_after;      /* seconds since the epoch, 0 = no expiry */
        uint64_t destroyed;      /* seconds since the epoch, tombstones only */
        /* Active only, set by key_record_set_blobs(): pub owns the allocation, priv points into it. */
        uint8_t *pub;            /* marshalled TPM2B_PUBLIC */
        size_t pub_size;
        uint8_t *priv;           /* marshalled TPM2B_PRIVATE */
        size_t priv_size;
        KeyReplaces *replaces;           /* made by Rotate: the key it replaced; else NULL */
        uint8_t kid[KEY_KID_SIZE];       /* TPM Name of the key */
        uint8_t parent[KEY_KID_SIZE];    /* TPM Name of the storage root key it was created under */
        uint8_t auth[KEY_AUTH_SIZE];     /* authValue (active only); secret */
        uint8_t exe_sha256[KEY_EXE_DIGEST_SIZE];
        /* Tombstones: SHA-256 of the destroyed key's DER SubjectPublicKeyInfo, so its revocation
         * entry can be rebuilt at start if the list lost it. */
        uint8_t spki_sha256[KEY_SPKI_DIGEST_SIZE];
        bool has_exe_digest;
        bool has_spki;
        bool named_tasks_only;   /* only task IDs a policy rule names may be used (CreateKey option) */
} KeyRecord;

/* Key names: [a-z0-9][a-z0-9._-]{0,63} (DESIGN §2). */
bool key_name_is_valid(const char *name);
/* UTF-8 text without control characters, at most max bytes (and not empty unless allowed). */
bool key_text_is_valid(const char *s, size_t max, bool allow_empty);
/* Owner and description: non-empty (owner) UTF-8 without control characters, bounded. */
bool key_owner_is_valid(const char *owner);
bool key_description_is_valid(const char *description);

const char *key_state_to_string(KeyState s);
KeyState key_state_from_string(const char *s);

KeyRecord *key_record_free(KeyRecord *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(KeyRecord *, key_record_free);

/* Turn an active record into a tombstone in memory: zero and drop the blobs and authValue. */
void key_record_make_tombstone(KeyRecord *r, uint64_t now);

/* Copy the marshalled TPM2B_PUBLIC and TPM2B_PRIVATE into r (one allocation), replacing any it had.
 * Return: 0; -EINVAL (an empty blob); -ENOMEM. */
int key_record_set_blobs(KeyRecord *r, const uint8_t *pub, size_t pub_size, const uint8_t *priv, size_t priv_size);
/* Name the key r replaced (Rotate). Return: 0; -EINVAL (reason too long or not text); -ENOMEM. */
int key_record_set_replaces(KeyRecord *r, const uint8_t kid[KEY_KID_SIZE],
                            const uint8_t spki_sha256[KEY_SPKI_DIGEST_SIZE], const char *reason);

/* Deep copy (the secret parts too). Return: 0 or -ENOMEM. */
int key_record_copy(const KeyRecord *r, KeyRecord **ret);

/*
 * key_record_to_cbor() - deterministic CBOR encoding of a record
 * Return: 0 and a malloc'd buffer (holding the authValue: erase before freeing); -EINVAL if the
 *         record is inconsistent; -ENOMEM.
 */
int key_record_to_cbor(const KeyRecord *r, uint8_t **ret, size_t *ret_size);

/*
 * key_record_from_cbor() - parse and check a record
 * @ret_reason: set to a static string explaining a -EBADMSG (may be NULL)
 *
 * Checks structure only (fields, types, sizes, states); the keystore checks the TPM blobs.
 * Return: 0; -EBADMSG (malformed, unknown version or field, inconsistent); -E2BIG; -ENOMEM.
 */
int key_record_from_cbor(const uint8_t *buf, size_t size, KeyRecord **ret, const char **ret_reason);

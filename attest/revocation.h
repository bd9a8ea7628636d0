/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Revocation lists and rotation statements (DESIGN §5; CDDL in docs/formats.md §10, §11).
 *
 * A revocation list is the payload {"type": "revocations", "host": host-id, "seq", "issued",
 * "entries": [entry...]} in deterministic CBOR, signed by the host key as a COSE_Sign1. An entry is
 * {"type": "destroy" | "rotate" | "task_end", "name", "kid", "spki_sha256", "time", "reason",
 * ? "cti", ? "exp"} ("cti" only, and always, for task_end; "exp" only for task_end, optional). The same payload, unsigned, is what agentidd keeps in
 * its state directory; it signs it with the host key when a list is asked for.
 *
 * Entries name the key that was revoked by what a verifier can compute from the key it actually used
 * (its TPM Name and the SHA-256 of its DER SubjectPublicKeyInfo), never by claims.
 *
 * A rotation statement is a COSE_Sign (tag 98, RFC 9052 §4.1) over {"type": "rotate", "name", "uri",
 * "old_kid", "new_kid", "new_spki_sha256", "reason", "time"}, signed first by the old key, then by the
 * host key (cose_sign_* in attest/cose.h).
 *
 * Depends on common/ (CBOR), no TPM, no D-Bus: the verifier library uses the same decoder.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/cose.h"

#define REVOCATION_KID_SIZE 34U               /* TPM Name: 00 0b || SHA-256(TPMT_PUBLIC) */
#define REVOCATION_SPKI_DIGEST_SIZE 32U
#define REVOCATION_CTI_SIZE 16U
#define REVOCATION_TEXT_MAX 256U              /* name and reason, bytes of UTF-8 */
#define REVOCATION_HOST_ID_SIZE 32U           /* hex characters */
/* Largest encoded list (payload) accepted or produced: ~100,000 entries. */
#define REVOCATION_LIST_MAX (16U * 1024U * 1024U)
#define REVOCATION_ENTRIES_MAX 100000U

typedef enum RevocationType {
        REVOCATION_DESTROY,
        REVOCATION_ROTATE,
        REVOCATION_TASK_END,
        _REVOCATION_TYPE_MAX,
} RevocationType;

const char *revocation_type_to_string(RevocationType t);
/* Return: the type, or -EINVAL. */
int revocation_type_from_string(const char *s);

typedef struct RevocationEntry {
        RevocationType type;
        char *name;                              /* the key's name (1..REVOCATION_TEXT_MAX bytes) */
        uint8_t kid[REVOCATION_KID_SIZE];
        uint8_t spki_sha256[REVOCATION_SPKI_DIGEST_SIZE];
        uint64_t time;                           /* NumericDate of the revocation */
        char *reason;                            /* 0..REVOCATION_TEXT_MAX bytes */
        bool has_cti;                            /* task_end: the task credential's cti */
        uint8_t cti[REVOCATION_CTI_SIZE];
        uint64_t exp;                            /* task_end: the credential's exp; 0: not given */
} RevocationEntry;

typedef struct RevocationList {
        char host[REVOCATION_HOST_ID_SIZE + 1];  /* host-id: 32 lower-case hex digits */
        uint64_t seq;                            /* grows with every change */
        uint64_t issued;                         /* NumericDate this version was made */
        RevocationEntry *entries;                /* oldest first */
        size_t n_entries;
} RevocationList;

/* Frees the entries; the list is then empty (seq and host kept). */
void revocation_list_done(RevocationList *l);

/*
 * revocation_list_append() - add a copy of e and increase seq by one
 *
 * Texts: name 1..REVOCATION_TEXT_MAX bytes, reason 0..REVOCATION_TEXT_MAX (NULL = empty), UTF-8
 * without control characters (C0, DEL, C1). kid a SHA-256 TPM Name (00 0b ...).
 *
 * Return: 0; -EINVAL for an entry that would not encode (bad text or kid, missing cti for task_end or
 *         cti or exp on another type); -E2BIG at REVOCATION_ENTRIES_MAX, when the encoded list would exceed
 *         REVOCATION_LIST_MAX, or when seq cannot grow; -ENOMEM. On failure l is unchanged.
 */
int revocation_list_append(RevocationList *l, const RevocationEntry *e);

/*
 * revocation_list_prune() - drop the task_end entries whose credential expired before a time
 * @before: NumericDate; entries with 0 < exp < before go
 *
 * Such an entry refuses nothing any more: every verifier refuses the credential past its exp anyway.
 * A list that lost entries is another version: seq grows by one (nothing is dropped once seq is at
 * its maximum). Entries without exp stay. Return: the number of entries dropped.
 */
size_t revocation_list_prune(RevocationList *l, uint64_t before);

/* Would revocation_list_append() take e? Return: 0, or its error; l is never changed. */
int revocation_list_check_room(const RevocationList *l, const RevocationEntry *e);

/*
 * revocation_list_find() - the first entry naming a key
 * @kid, @spki_sha256: what the caller verified with; either may be NULL (not known), not both
 *
 * An entry matches if its kid equals kid or its spki_sha256 equals spki_sha256.
 * Return: the entry (borrowed from l) or NULL.
 */
const RevocationEntry *revocation_list_find(const RevocationList *l, const uint8_t *kid, const uint8_t *spki_sha256);

/* The entry of a task credential's cti (task_end entries only), or NULL. */
const RevocationEntry *revocation_list_find_cti(const RevocationList *l, const uint8_t cti[REVOCATION_CTI_SIZE]);

/*
 * revocation_list_encode() - deterministic CBOR of the payload (keys sorted by encoded bytes)
 * Return: 0 and a malloc'd buffer; -EINVAL (inconsistent list); -E2BIG over REVOCATION_LIST_MAX; -ENOMEM.
 */
int revocation_list_encode(const RevocationList *l, uint8_t **ret, size_t *ret_size);

/*
 * revocation_list_decode() - strict decoding of a payload that revocation_list_encode() would produce
 * @ret_reason: on -EBADMSG, a static string naming the first problem (may be NULL)
 *
 * The bytes go through the safe-CBOR validator first (common/cbor-util.h) and must be the deterministic
 * encoding; unknown, missing or duplicate keys, wrong types and sizes are refused.
 * Return: 0 and *ret filled (release with revocation_list_done()); -EBADMSG; -EFBIG over
 *         REVOCATION_LIST_MAX; -ENOMEM.
 */
int revocation_list_decode(const uint8_t *buf, size_t size, RevocationList *ret, const char **ret_reason);

/* The list, made ready for signing by the host key: cose_sign1_prepare_large() over the encoded payload
 * (a list may be larger than COSE_PAYLOAD_MAX; verifiers parse it with cose_sign1_parse_max()).
 * Return: as revocation_list_encode() and cose_sign1_prepare_large(). */
int revocation_list_prepare(const RevocationList *l, const uint8_t *host_kid, size_t host_kid_size,
                            CoseSign1 **ret);

/* ---- rotation statements --------------------------------------------------------------------- */

typedef struct RotationStatement {
        const char *name;
        const char *uri;
        const uint8_t *old_kid;                  /* REVOCATION_KID_SIZE bytes */
        const uint8_t *new_kid;                  /* REVOCATION_KID_SIZE bytes */
        const uint8_t *new_spki_sha256;          /* REVOCATION_SPKI_DIGEST_SIZE bytes */
        const char *reason;                      /* 0..REVOCATION_TEXT_MAX bytes */
        uint64_t time;
} RotationStatement;

/* Largest rotation statement payload accepted (bytes); the whole COSE_Sign stays within 4096 too. */
#define ROTATION_PAYLOAD_MAX 4096U

/* Deterministic CBOR of the statement's payload: name and uri 1..REVOCATION_TEXT_MAX bytes, reason
 * 0..REVOCATION_TEXT_MAX (NULL = empty), texts as for revocation entries; kids SHA-256 TPM Names.
 * Return: 0; -EINVAL; -ENOMEM. */
int rotation_statement_payload(const RotationStatement *s, uint8_t **ret, size_t *ret_size);

/* A statement payload as rotation_statement_decode() found it; the texts are malloc'd. */
typedef struct RotationStatementParsed {
        char *name;
        char *uri;
        uint8_t old_kid[REVOCATION_KID_SIZE];
        uint8_t new_kid[REVOCATION_KID_SIZE];
        uint8_t new_spki_sha256[REVOCATION_SPKI_DIGEST_SIZE];
        char *reason;
        uint64_t time;
} RotationStatementParsed;

void rotation_statement_parsed_done(RotationStatementParsed *p);

/*
 * rotation_statement_decode() - strict decoding of what rotation_statement_payload() writes
 * @ret_reason: on -EBADMSG, a static string naming the first problem (may be NULL)
 *
 * Through the safe-CBOR validator (deterministic encoding, at most ROTATION_PAYLOAD_MAX bytes), then
 * exactly the eight keys with their types and sizes, "type" = "rotate".
 * Return: 0 and *ret filled (release with rotation_statement_parsed_done()); -EBADMSG; -ENOMEM.
 */
int rotation_statement_decode(const uint8_t *buf, size_t size, RotationStatementParsed *ret, const char **ret_reason);

/*
 * rotation_statement_prepare() - the statement as a COSE_Sign for two signers: the old key (signature
 * 0, kid old_kid) and the host key (signature 1, kid host_kid)
 *
 * Return: as rotation_statement_payload() and cose_sign_prepare().
 */
int rotation_statement_prepare(const RotationStatement *s, const uint8_t *host_kid, size_t host_kid_size,
                               CoseSign **ret);

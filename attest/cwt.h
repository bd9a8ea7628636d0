/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What task tokens (token.c) and task credentials (task-credential.c) share as CWTs (RFC 8392) in
 * agentid's COSE_Sign1 profile: the envelope check (protected header exactly {1: -7, 4: kid} with a
 * 34-byte TPM Name, no label 15), the claim readers that copy into one arena per verified object, and
 * the COSE_Key of a cnf claim. Internal to attest/.
 */

#include <cbor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/cose.h"
#include "common/cbor-util.h"

/* What cose_sign1_finish() wraps around a payload of 256..65535 bytes: the tag (1), the array head
 * (1), the protected bstr {1: -7, 4: kid(34)} (2 + 40), the empty unprotected map (1), the payload's
 * bstr head (3) and the signature (2 + 64). A payload up to a format's maximum minus this makes a
 * signed object within that maximum. */
#define CWT_ENVELOPE_SIZE 114U
#define CWT_KID_SIZE 34U
#define CWT_TEXT_MAX 256U

/* One allocation holding every text (NUL-terminated) and byte string a verified object hands out. */
typedef struct CwtArena {
        uint8_t *buf;
        size_t size, used;
} CwtArena;

/* Copy n bytes (and a NUL if terminate) into the arena. NULL if it does not fit: the callers size it
 * for the whole payload plus a NUL per text, so that never happens for what they copy. */
const void *cwt_arena_copy(CwtArena *a, const void *p, size_t n, bool terminate);
/* A text claim of 1..max bytes (UTF-8 checked by the validator), copied. Return: 0 or -EBADMSG. */
int cwt_claim_text(CwtArena *a, const cbor_item_t *item, size_t max, const char **ret);
/* A byte string claim of exactly size bytes, copied to ret. Return: 0 or -EBADMSG. */
int cwt_claim_bytes(const cbor_item_t *item, size_t size, uint8_t *ret);
/* Is the text map key s[0..n) exactly key? */
bool cwt_text_key_is(const char *s, size_t n, const char *key);
/* A TPM Name of a SHA-256 object: nameAlg TPM_ALG_SHA256 (0x000b) first (TPM 2.0 Part 1 §16). */
bool cwt_kid_is_valid(const uint8_t *kid, size_t n);
/* 1..CWT_TEXT_MAX bytes (UTF-8 is checked by cbor_util_encode()). */
bool cwt_text_is_valid(const char *s);

/*
 * cwt_claims_open() - the claims payload as a map, and the arena its claims are copied into
 * @limits: the format's validator limits (deterministic encoding)
 * @n_texts: how many NUL-terminated texts the format may copy at most (the arena holds the payload's
 *      size plus one NUL per text, so every copy of a part of the payload fits)
 *
 * Return: 0 with *ret_map, its pairs and count, and a->buf allocated; -EBADMSG with *reason; -ENOMEM.
 */
int cwt_claims_open(const uint8_t *payload, size_t size, const CborLimits *limits, size_t n_texts, CwtArena *a,
                    cbor_item_t **ret_map, struct cbor_pair **ret_pairs, size_t *ret_n, const char **reason);

/* Return -EBADMSG with *reason = why. */
int cwt_bad(const char **reason, const char *why);
/* A refusal, saying why when the caller asked. Returns r. */
int cwt_refused(int r, const char *reason, const char **ret_reason);

/* How one format names its limits in refusals. */
typedef struct CwtProfile {
        size_t max;                     /* largest signed object, bytes */
        const char *too_large;          /* reason for an object over max */
        const char *signed_message;     /* reason for label 15 (a signed message is never this) */
} CwtProfile;

/*
 * cwt_envelope_parse() - the COSE_Sign1 structure of cose_sign1_parse() in the CWT profile
 * Return: 0 and *ret (release with cose_sign1_parsed_done()); -E2BIG, -EBADMSG with *reason; -ENOMEM.
 */
int cwt_envelope_parse(const CwtProfile *profile, const uint8_t *data, size_t size, CoseSign1Parsed *ret,
                       const char **reason);

/* COSE_Key EC2 on P-256 (RFC 9052 §7.1, RFC 9053 §7.1.1): {1: 2, -1: 1, -2: x, -3: y}. NULL on
 * allocation failure. */
cbor_item_t *cose_key_p256(const uint8_t x[32], const uint8_t y[32]);

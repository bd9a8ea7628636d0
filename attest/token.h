/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Task tokens (DESIGN §5 "Task token"; CDDL in docs/formats.md): CWTs (RFC 8392) — COSE_Sign1_Tagged
 * by the agent key with the protected header {1: -7, 4: kid} and no label 15 — whose payload is the
 * deterministic CBOR claims map
 *
 *   {1: iss, 2: sub (= iss), 3: aud, 4: exp, 5: nbf, 6: iat, 7: cti (bstr 16), ? 9: scope,
 *    "task_id", ? "parent_task_id", "owner", ? "hops": [+ [iss, cti, kid]], ? "credential"}
 *
 * scope (RFC 8693 §4.2) is one string of space-separated scope tokens. A delegated token extends the
 * parent's hops with [parent.iss, parent.cti, parent.kid] (at most TOKEN_HOPS_MAX entries).
 *
 * The producer (agentidd) encodes claims with token_claims_encode() and signs them through
 * cose_sign1_prepare()/cose_sign1_finish(). The consumers — agentidd checking a parent token, and
 * libagentid-verify — parse with token_peek_kid() (which key?) and token_verify() (signature and
 * strict claims). Time, audience, revocation and delegation rules are the caller's checks: this module
 * only says what the token is and that the key signed it.
 */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define TOKEN_MAX (8U * 1024U)          /* bytes of an encoded token */
#define TOKEN_HOPS_MAX 8U
#define TOKEN_CTI_SIZE 16U
#define TOKEN_KID_SIZE 34U              /* TPM Name: 00 0b || SHA-256(TPMT_PUBLIC) */
#define TOKEN_TEXT_MAX 256U             /* iss, aud, owner, task ids: 1..256 bytes of UTF-8 */
#define TOKEN_SCOPE_MAX 1024U           /* the scope string */
#define TOKEN_SCOPES_MAX 32U            /* scope tokens in it */
#define TOKEN_CREDENTIAL_MAX (4U * 1024U)

/* CWT claim keys (RFC 8392 §3.1; scope: RFC 8693 §4.2 as registered for CWT, RFC 9200 §5.8.1.1). */
#define CWT_ISS 1
#define CWT_SUB 2
#define CWT_AUD 3
#define CWT_EXP 4
#define CWT_NBF 5
#define CWT_IAT 6
#define CWT_CTI 7
#define CWT_SCOPE 9

typedef struct TokenHop {
        const char *iss;                /* the parent's issuer URI */
        uint8_t cti[TOKEN_CTI_SIZE];    /* the parent's cti */
        uint8_t kid[TOKEN_KID_SIZE];    /* the key that signed the parent */
} TokenHop;

/* Claims of one token. For encoding, pointers are borrowed from the caller; in a TokenVerified they
 * point into that object. NULL texts and n_hops == 0 / credential NULL are omitted claims. */
typedef struct TokenClaims {
        const char *iss;                /* = sub: the agent URI */
        const char *aud;
        uint64_t exp, nbf, iat;         /* NumericDate */
        uint8_t cti[TOKEN_CTI_SIZE];
        const char *scope;              /* NULL: no scope claim; else 1..TOKEN_SCOPES_MAX tokens */
        const char *task_id;            /* required */
        const char *parent_task_id;
        const char *owner;              /* required */
        const TokenHop *hops;
        size_t n_hops;
        const uint8_t *credential;      /* bstr .cbor COSE_Sign1_Tagged (task tokens, a later issue) */
        size_t credential_size;
} TokenClaims;

/*
 * token_scope_is_valid() - a scope string: 1..TOKEN_SCOPES_MAX tokens of printable ASCII other than
 * space, '"' and '\' (RFC 6749 §3.3 scope-token), separated by single spaces, no leading or trailing
 * space, no token twice, at most TOKEN_SCOPE_MAX bytes in all.
 */
bool token_scope_is_valid(const char *scope);
/* Whether every token of child appears in parent (both valid scope strings; child NULL = no scope:
 * true; parent NULL: true only for child NULL). */
bool token_scope_is_subset(const char *child, const char *parent);

/*
 * token_claims_encode() - the deterministic CBOR payload of a token (RFC 8949 §4.2.1)
 *
 * Checks what it writes: iss, aud, owner, task_id 1..TOKEN_TEXT_MAX bytes of UTF-8; parent_task_id
 * likewise if set; a valid scope if set; nbf <= exp, iat <= exp; n_hops <= TOKEN_HOPS_MAX with valid
 * iss texts; credential at most TOKEN_CREDENTIAL_MAX bytes.
 * Also: every hop kid a SHA-256 TPM Name (00 0b ...), a credential that parses as a COSE_Sign1_Tagged
 * (structure only), and a payload small enough for the signed token to stay within TOKEN_MAX.
 *
 * Return: 0 and a malloc'd buffer; -EINVAL; -ENOMEM.
 */
int token_claims_encode(const TokenClaims *c, uint8_t **ret, size_t *ret_size);

/*
 * token_peek_kid() - the kid of a token's protected header, without checking the signature
 *
 * Parses the COSE_Sign1 structure as strictly as token_verify() does (so a token it accepts is at least
 * well-formed), to find the key to verify it with.
 *
 * Return: 0; -EBADMSG (not an agentid token, with *ret_reason set to a static explanation when
 *         ret_reason is not NULL); -E2BIG (over TOKEN_MAX); -EINVAL (bad arguments); -ENOMEM.
 */
int token_peek_kid(const uint8_t *token, size_t size, uint8_t ret_kid[TOKEN_KID_SIZE], const char **ret_reason);

/* A token whose signature verified: its claims, kid, and the bytes they point into. */
typedef struct TokenVerified {
        TokenClaims claims;
        uint8_t kid[TOKEN_KID_SIZE];
} TokenVerified;

/*
 * token_verify() - parse a token and verify its ES256 signature with pkey
 *
 * The COSE profile of cose_sign1_check() with kid exactly TOKEN_KID_SIZE bytes and no label 15; the
 * payload a deterministic CBOR map with exactly the claims above, each of its type and size, iss ==
 * sub, nbf <= exp, iat <= exp, hops entries well-formed and at most TOKEN_HOPS_MAX, a valid scope.
 *
 * Order: the envelope exactly as token_peek_kid() checks it, then the signature, then the claims. So
 * for a token token_peek_kid() accepted, -EBADMSG means the claims, and nothing in the payload is
 * looked at before the signature verified.
 *
 * Return: 0 and a TokenVerified (free with token_verified_free()); -EBADMSG (malformed or outside the
 *         profile; *ret_reason names the first problem); -EKEYREJECTED (signature does not verify with
 *         pkey); -E2BIG; -EINVAL (bad arguments); -ENOMEM; -EIO (OpenSSL failure).
 */
int token_verify(const uint8_t *token, size_t size, EVP_PKEY *pkey, TokenVerified **ret, const char **ret_reason);
TokenVerified *token_verified_free(TokenVerified *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TokenVerified *, token_verified_free);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Task credentials (DESIGN §5 "Task credential"; CDDL in docs/formats.md §12): what Key.StartTask
 * returns and what every token a task key issues carries in its "credential" claim. A CWT (RFC 8392)
 * — COSE_Sign1_Tagged by the AGENT key, protected header {1: -7, 4: kid of the agent key}, no label
 * 15 — over the deterministic CBOR claims map
 *
 *   {1: iss, 2: sub (= iss, the agent URI), 4: exp, 6: iat, 7: cti (bstr 16),
 *    8: cnf {1: COSE_Key EC2 P-256 of the task key (as DESIGN §5 "cnf")}, ? 9: scope,
 *    "task_id", ? "parent_task_id", "audiences": [* tstr] (may be empty = any),
 *    "task_key": {"pub": bstr (TPMT_PUBLIC), "certify": bstr (TPMS_ATTEST), "certify_sig": bstr (TPMT_SIGNATURE),
 *                 "clock_limit": uint (TPM clock, ms)}}
 *
 * The task key's TPM2_Certify by the AK has qualifyingData = SHA-256(cti), so a verifier holding the
 * AK can check that the task key is TPM-resident and bound to this credential, and, from its public
 * area, that it only signs through the policy of common/task-policy.h: clock < clock_limit in the
 * boot the certification reports.
 *
 * The producer encodes the claims here and signs with cose_sign1_prepare()/cose_sign1_finish(); the
 * verifier side lives in libagentid-verify (agentid_verify_token() follows a token's credential). This
 * module checks what it can without a TPM parser: the COSE profile, the agent key's signature and the
 * claims' structure; the TPM structures in "task_key" are only byte strings here.
 */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/token.h"
#include "common/macro.h"

#define TASK_CREDENTIAL_MAX TOKEN_CREDENTIAL_MAX  /* bytes of a signed credential: it travels in tokens */
#define TASK_CREDENTIAL_AUDIENCES_MAX 16U
#define TASK_CREDENTIAL_TPM_MAX 1024U           /* each of pub, certify, certify_sig */

typedef struct TaskCredentialClaims {
        const char *iss;                        /* = sub: the agent URI */
        uint64_t exp, iat;                      /* NumericDate; iat <= exp */
        uint8_t cti[TOKEN_CTI_SIZE];
        uint8_t x[32], y[32];                   /* the task key's public point (cnf) */
        const char *scope;                      /* NULL: none; else a valid scope string (token.h) */
        const char *task_id;                    /* required, 1..TOKEN_TEXT_MAX */
        const char *parent_task_id;             /* optional */
        const char *const *audiences;           /* 0..TASK_CREDENTIAL_AUDIENCES_MAX texts */
        size_t n_audiences;
        const uint8_t *task_pub, *certify, *certify_sig;
        size_t task_pub_size, certify_size, certify_sig_size;
        uint64_t clock_limit;                   /* the TPM clock (ms) from which the task key refuses to sign */
} TaskCredentialClaims;

/* An agent URI (DESIGN §2): "agentid://" 32 lower-case hex digits "/" key name
 * ([a-z0-9][a-z0-9._-]{0,63}). Also used by libagentid-verify for evidence, tokens and rotations. */
bool agent_uri_is_valid(const char *s, size_t n);

/*
 * task_credential_encode() - the deterministic CBOR payload of a task credential
 *
 * Checks what it writes: iss an agent URI; iat <= exp; a valid scope if set; task_id (and
 * parent_task_id if set) 1..TOKEN_TEXT_MAX bytes; at most TASK_CREDENTIAL_AUDIENCES_MAX audiences of
 * 1..TOKEN_TEXT_MAX bytes, no two equal; pub, certify and certify_sig 1..TASK_CREDENTIAL_TPM_MAX bytes,
 * clock_limit not 0;
 * and a payload small enough for the signed credential to stay within TASK_CREDENTIAL_MAX. The point
 * (x, y) is written as given (the verifier checks it is on P-256 and is the certified key's).
 *
 * Return: 0 and a malloc'd buffer; -EINVAL for a missing or invalid field; -ENOMEM.
 */
int task_credential_encode(const TaskCredentialClaims *c, uint8_t **ret, size_t *ret_size);

/*
 * task_credential_peek_kid() - the agent key's kid of a credential, without checking the signature
 *
 * The envelope exactly as task_credential_verify() checks it first: at most TASK_CREDENTIAL_MAX bytes,
 * the COSE_Sign1 profile of cose.h, protected header {1: -7, 4: kid} with a 34-byte SHA-256 TPM Name,
 * no label 15.
 *
 * Return: 0; -EBADMSG (*ret_reason set when not NULL); -E2BIG; -EINVAL; -ENOMEM.
 */
int task_credential_peek_kid(const uint8_t *cred, size_t size, uint8_t ret_kid[TOKEN_KID_SIZE],
                             const char **ret_reason);

/* A credential whose signature verified (pointers into the object). */
typedef struct TaskCredentialVerified {
        TaskCredentialClaims claims;
        uint8_t kid[TOKEN_KID_SIZE];            /* the agent key that signed it */
} TaskCredentialVerified;

/*
 * task_credential_verify() - parse a credential (COSE_Sign1_Tagged) and verify the agent key's
 * signature; strict claims as encoded above, nothing in the payload read before the signature.
 *
 * Order: the envelope as task_credential_peek_kid() checks it, the signature, then the claims: a
 * deterministic map with exactly the keys above, each of its type and size, iss = sub an agent URI,
 * iat <= exp, a valid scope, distinct audiences, "task_key" exactly {pub, certify, certify_sig}, cnf
 * exactly {1: {1: 2, -1: 1, -2: x, -3: y}} with (x, y) a point on P-256. So for a credential the peek
 * accepted, -EBADMSG means the claims.
 *
 * Return: 0; -EBADMSG (ret_reason names the problem); -EKEYREJECTED; -E2BIG; -EINVAL; -ENOMEM; -EIO.
 */
int task_credential_verify(const uint8_t *cred, size_t size, EVP_PKEY *agent_key, TaskCredentialVerified **ret,
                           const char **ret_reason);
TaskCredentialVerified *task_credential_verified_free(TaskCredentialVerified *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TaskCredentialVerified *, task_credential_verified_free);

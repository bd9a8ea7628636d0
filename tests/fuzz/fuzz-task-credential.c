/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Task credentials and the tokens that carry them: task_credential_peek_kid(), task_credential_verify()
 * and task_credential_encode() (attest/task-credential.h) on the input as a credential, and
 * agentid_verify_token() (attest/verify-task.c) on the input as a task token, with the agent key and the
 * AK of tests/unit/test-task-credential.c (private scalars SHA-256("agentid task credential test:
 * agent") and SHA-256("agentid task credential test: AK"), tests/lib/fake-evidence.c). The seeds in
 * corpus/task-credential/ were written by that test (AGENTID_TEST_DUMP_DIR), so the accepting paths are
 * reached too.
 *
 * Invariants: only the documented errors, and a reason with every refusal; peek and verify agree on the
 * envelope; what task_credential_verify() accepts has consistent claims and re-encodes, through
 * task_credential_encode(), to exactly the payload it carried; a token verdict has one of the two check
 * lists, in order, its reason the first that failed, and a valid one followed a credential that the
 * library accepts on its own.
 */

#include <errno.h>
#include <openssl/x509.h>
#include <string.h>

#include "attest/cose.h"
#include "attest/task-credential.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "tests/fuzz/fuzz.h"

/* DER SubjectPublicKeyInfo of the agent key that signed the seed credentials. */
static const uint8_t agent_key_der[] = {
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
        0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x87, 0x8c, 0xba, 0xe0, 0x51,
        0xf5, 0x31, 0x5e, 0xce, 0x16, 0x10, 0x5b, 0x10, 0xae, 0x80, 0xc5, 0xe9, 0x85, 0xd9, 0xd8, 0x04,
        0x50, 0x14, 0x52, 0x0e, 0x08, 0x5f, 0xcd, 0xf9, 0xbf, 0xa1, 0x5e, 0x77, 0x4a, 0x96, 0x2c, 0xe8,
        0x99, 0xeb, 0x11, 0x10, 0xb0, 0x26, 0xf9, 0x72, 0xc4, 0xd3, 0x81, 0x64, 0x58, 0xeb, 0x79, 0xbd,
        0x06, 0xf1, 0x07, 0x93, 0x5d, 0x2c, 0x99, 0x0a, 0xe0, 0xae, 0x99,
};

/* TPMT_PUBLIC of the AK that certified the seeds' task key. */
static const uint8_t ak_public[] = {
        0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x04, 0x72, 0x00, 0x00, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0b,
        0x00, 0x03, 0x00, 0x10, 0x00, 0x20, 0x59, 0xce, 0xd1, 0x33, 0x0b, 0xa4, 0xcc, 0xa9, 0x1a, 0xa4,
        0x47, 0x0b, 0x09, 0x22, 0x37, 0x63, 0x49, 0x23, 0xe1, 0x34, 0x14, 0xc1, 0x8f, 0x0b, 0xb0, 0x18,
        0x41, 0xe4, 0xc0, 0xd9, 0xe2, 0xa5, 0x00, 0x20, 0xd0, 0x78, 0xc3, 0x55, 0x51, 0xca, 0x36, 0xee,
        0x5c, 0xd2, 0x91, 0xdf, 0x57, 0xe9, 0x35, 0xd9, 0x1f, 0xc8, 0x77, 0xee, 0x37, 0x04, 0x20, 0x58,
        0x09, 0xae, 0x2e, 0xe7, 0xb5, 0xe2, 0x35, 0xaf,
};

/* The seeds' time and audience: 10 s after the credential was issued. */
#define SEED_NOW UINT64_C(1764000010)
#define SEED_AUDIENCE "ledger-api"

static const AgentidReason token_order[] = {
        AGENTID_REASON_TOKEN_FORMAT,   AGENTID_REASON_TOKEN_SIGNATURE,   AGENTID_REASON_TOKEN_KID,
        AGENTID_REASON_TOKEN_CLAIMS,   AGENTID_REASON_TOKEN_AUDIENCE,    AGENTID_REASON_TOKEN_NOT_BEFORE,
        AGENTID_REASON_TOKEN_EXPIRY,   AGENTID_REASON_TOKEN_HOPS,
};

static const AgentidReason task_token_order[] = {
        AGENTID_REASON_TOKEN_FORMAT,        AGENTID_REASON_CREDENTIAL_FORMAT,  AGENTID_REASON_CREDENTIAL_SIGNATURE,
        AGENTID_REASON_CREDENTIAL_TASK_KEY, AGENTID_REASON_CREDENTIAL_EXPIRY,  AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,           AGENTID_REASON_TOKEN_CLAIMS,       AGENTID_REASON_CREDENTIAL_BINDING,
        AGENTID_REASON_TOKEN_AUDIENCE,      AGENTID_REASON_TOKEN_NOT_BEFORE,   AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
};

static EVP_PKEY *agent_key(void) {
        static EVP_PKEY *key = NULL;

        if (!key) {
                const unsigned char *p = agent_key_der;
                key = d2i_PUBKEY(NULL, &p, sizeof(agent_key_der));
                FUZZ_CHECK(key);
        }
        return key;
}

static const AgentidVerifier *fuzz_verifier(void) {
        static AgentidVerifier *v = NULL;

        if (!v) {
                v = agentid_verifier_new();
                FUZZ_CHECK(v);
                FUZZ_CHECK(agentid_verifier_set_now(v, SEED_NOW) == 0);
                FUZZ_CHECK(agentid_verifier_add_trusted_ak(v, ak_public, sizeof(ak_public)) == 0);
        }
        return v;
}

/* What task_credential_verify() accepted, checked against the rules it claims to enforce. */
static void check_accepted(const uint8_t *data, size_t size, const TaskCredentialVerified *c) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_free_ uint8_t *payload = NULL;
        const TaskCredentialClaims *cl = &c->claims;
        size_t payload_size = 0;
        int r;

        FUZZ_CHECK(size <= TASK_CREDENTIAL_MAX && data[0] == 0xd2);
        FUZZ_CHECK(cl->iss && agent_uri_is_valid(cl->iss, strlen(cl->iss)) && cl->task_id);
        FUZZ_CHECK(cl->iat <= cl->exp);
        FUZZ_CHECK(!cl->scope || token_scope_is_valid(cl->scope));
        FUZZ_CHECK(cl->n_audiences <= TASK_CREDENTIAL_AUDIENCES_MAX && (cl->n_audiences == 0) == !cl->audiences);
        for (size_t i = 0; i < cl->n_audiences; i++)
                for (size_t j = 0; j < i; j++)
                        FUZZ_CHECK(strcmp(cl->audiences[i], cl->audiences[j]) != 0);
        FUZZ_CHECK(cl->task_pub_size >= 1 && cl->task_pub_size <= TASK_CREDENTIAL_TPM_MAX);
        FUZZ_CHECK(cl->certify_size >= 1 && cl->certify_size <= TASK_CREDENTIAL_TPM_MAX);
        FUZZ_CHECK(cl->certify_sig_size >= 1 && cl->certify_sig_size <= TASK_CREDENTIAL_TPM_MAX);
        FUZZ_CHECK(c->kid[0] == 0x00 && c->kid[1] == 0x0b);

        /* One encoding per claims set: the decoded claims encode to the payload received. */
        r = cose_sign1_parse(data, size, &p, NULL);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        r = task_credential_encode(cl, &payload, &payload_size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(payload_size == p.payload_size && memcmp(payload, p.payload, payload_size) == 0);
        FUZZ_CHECK(memcmp(c->kid, p.kid, TOKEN_KID_SIZE) == 0);
}

static void fuzz_credential(const uint8_t *data, size_t size) {
        _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;
        uint8_t kid[TOKEN_KID_SIZE];
        const char *peek_why = NULL, *why = NULL;
        int peek, r;

        peek = task_credential_peek_kid(data, size, kid, &peek_why);
        FUZZ_CHECK(peek == 0 || peek == -EBADMSG || peek == -E2BIG || peek == -ENOMEM);
        FUZZ_CHECK(peek == 0 || peek == -ENOMEM || peek_why);

        r = task_credential_verify(data, size, agent_key(), &c, &why);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EKEYREJECTED || r == -E2BIG || r == -ENOMEM || r == -EIO);
        FUZZ_CHECK((r == 0) == (c != NULL));
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO || why);
        /* The envelope is checked the same way by both; only then the signature and the claims. */
        if (peek == -EBADMSG || peek == -E2BIG)
                FUZZ_CHECK(r == peek || r == -ENOMEM || r == -EIO);
        if (r == 0 || r == -EKEYREJECTED)
                FUZZ_CHECK(peek == 0 || peek == -ENOMEM);
        if (r == 0) {
                FUZZ_CHECK(peek != 0 || memcmp(kid, c->kid, TOKEN_KID_SIZE) == 0);
                check_accepted(data, size, c);
        }
}

/* The verdict's list is one of the two, in order; the reason is the first failure. */
static void check_verdict(const AgentidVerdict *d) {
        AgentidReason reason = agentid_verdict_reason(d), second = AGENTID_REASON_VALID;
        bool seen_failure = false;

        FUZZ_CHECK(agentid_verdict_is_valid(d) == (reason == AGENTID_REASON_VALID));
        FUZZ_CHECK(agentid_verdict_n_checks(d) >= 2);
        FUZZ_CHECK(agentid_verdict_get_check(d, 1, &second, NULL, NULL, NULL) == 0);
        bool task = second == AGENTID_REASON_CREDENTIAL_FORMAT;
        const AgentidReason *order = task ? task_token_order : token_order;
        size_t n = task ? sizeof(task_token_order) / sizeof(task_token_order[0]) :
                          sizeof(token_order) / sizeof(token_order[0]);

        FUZZ_CHECK(agentid_verdict_n_checks(d) == n);
        for (size_t i = 0; i < n; i++) {
                AgentidReason r;
                const char *name = NULL, *detail = NULL;
                bool ok;

                FUZZ_CHECK(agentid_verdict_get_check(d, i, &r, &name, &ok, &detail) == 0);
                FUZZ_CHECK(r == order[i]);
                FUZZ_CHECK(name && detail && strcmp(name, agentid_reason_to_string(r)) == 0);
                if (!ok && !seen_failure) {
                        FUZZ_CHECK(reason == r);
                        seen_failure = true;
                }
        }
        FUZZ_CHECK(seen_failure == (reason != AGENTID_REASON_VALID));
}

static void fuzz_token(const uint8_t *data, size_t size) {
        AgentidVerdict *d = NULL;
        int r;

        r = agentid_verify_token(fuzz_verifier(), data, size, agent_key_der, sizeof(agent_key_der), NULL,
                                 SEED_AUDIENCE, &d);
        /* Under an injected allocation failure (alloc-fail.c) any refusal is acceptable: OpenSSL 3.0
         * cannot always tell an allocation failure inside EVP_PKEY_fromdata() from a bad key, so the
         * caller's key may be refused as invalid. Refusing is safe; accepting is checked below. */
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO || (r < 0 && fuzz_out_of_memory()));
        if (r < 0)
                return;
        check_verdict(d);
        const AgentidToken *t = agentid_verdict_get_token(d);
        FUZZ_CHECK((t != NULL) == agentid_verdict_is_valid(d));
        if (t) {
                FUZZ_CHECK(strcmp(t->aud, SEED_AUDIENCE) == 0 && SEED_NOW < t->exp);
                if (t->has_credential) {
                        _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;

                        /* The credential followed verifies on its own, and the token is within it. */
                        r = task_credential_verify(t->credential, t->credential_size, agent_key(), &c, NULL);
                        FUZZ_CHECK(r == 0 || (r < 0 && fuzz_out_of_memory()));
                        if (r == 0) {
                                FUZZ_CHECK(memcmp(c->claims.cti, t->credential_cti, TOKEN_CTI_SIZE) == 0);
                                FUZZ_CHECK(t->exp <= t->credential_exp && SEED_NOW < t->credential_exp);
                                FUZZ_CHECK(strcmp(t->iss, c->claims.iss) == 0 &&
                                           strcmp(t->task_id, c->claims.task_id) == 0);
                                FUZZ_CHECK(token_scope_is_subset(t->scope, t->credential_scope));
                                FUZZ_CHECK(t->task_public_key && t->task_public_key_size > 0);
                        }
                }
        }
        agentid_verdict_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_credential(data, size);
        fuzz_token(data, size);
        return 0;
}

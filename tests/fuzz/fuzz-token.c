/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Task tokens and signed messages: token_peek_kid() and token_verify() (attest/token.h), and the
 * verifier's agentid_verify_token() and agentid_verify_message() (attest/verify.h), all with one fixed
 * P-256 key. The seeds in corpus/token/ were signed with it (private scalar SHA-256("agentid fuzz token
 * key"), tests/lib/fake-evidence.c), so the accepting paths are reached too.
 *
 * Invariants: only the documented errors, and a reason with every refusal; peek and verify agree on
 * the envelope; what token_verify() accepts has consistent claims and re-encodes, through
 * token_claims_encode(), to exactly the payload it carried; a verdict lists its checks in order, its
 * reason is the first that failed, and it is valid only when the lower layers accept the bytes.
 */

#include <errno.h>
#include <openssl/x509.h>
#include <string.h>

#include "attest/cose.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "common/crypto-util.h"
#include "tests/fuzz/fuzz.h"

/* DER SubjectPublicKeyInfo of the key that signed the seeds. */
static const uint8_t token_key_der[] = {
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
        0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x9e, 0x65, 0xa4, 0x51, 0x6a,
        0xee, 0x83, 0x01, 0xf9, 0xb3, 0x3e, 0x0e, 0x5c, 0x84, 0xf5, 0xcf, 0x93, 0xf2, 0xf8, 0x15, 0xbf,
        0x8d, 0xb9, 0xb2, 0x96, 0x46, 0xf2, 0x1b, 0xc1, 0xe6, 0x80, 0xe6, 0xe3, 0x2e, 0xb7, 0x58, 0x70,
        0x21, 0x39, 0x25, 0x90, 0xaf, 0x26, 0x3b, 0xea, 0xf8, 0x0b, 0x64, 0xe1, 0x6b, 0x37, 0x4b, 0xb1,
        0x30, 0x92, 0x42, 0xd2, 0x7e, 0x0f, 0x1d, 0xaf, 0x7a, 0xe4, 0xf8,
};

/* The seeds' times and audience: 10 s after they were issued. */
#define SEED_NOW UINT64_C(1764000010)
#define SEED_AUDIENCE "ledger-api"

static EVP_PKEY *fuzz_key(void) {
        static EVP_PKEY *key = NULL;

        if (!key) {
                const unsigned char *p = token_key_der;
                key = d2i_PUBKEY(NULL, &p, sizeof(token_key_der));
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
        }
        return v;
}

/* A token carrying a task credential is checked in this order (verify.h); it is not verified with the
 * fuzz key, but its verdict must still have this shape. */
static const AgentidReason task_token_order[] = {
        AGENTID_REASON_TOKEN_FORMAT,        AGENTID_REASON_CREDENTIAL_FORMAT,  AGENTID_REASON_CREDENTIAL_SIGNATURE,
        AGENTID_REASON_CREDENTIAL_TASK_KEY, AGENTID_REASON_CREDENTIAL_EXPIRY,  AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,           AGENTID_REASON_TOKEN_CLAIMS,       AGENTID_REASON_CREDENTIAL_BINDING,
        AGENTID_REASON_TOKEN_AUDIENCE,      AGENTID_REASON_TOKEN_NOT_BEFORE,   AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
};

/* The verdict's list: in order (first..last, or for a task token task_token_order), each check named,
 * the reason the first failure. */
static void check_verdict(const AgentidVerdict *d, AgentidReason first, AgentidReason last) {
        static int verbose = -1;
        AgentidReason reason = agentid_verdict_reason(d), second = AGENTID_REASON_VALID;
        bool seen_failure = false;

        /* FUZZ_VERBOSE=1: say what each input got, to see which corpus files reach which check. */
        if (verbose < 0)
                verbose = !!getenv("FUZZ_VERBOSE");
        if (verbose)
                fprintf(stderr, "%s: %s\n", first == AGENTID_REASON_TOKEN_FORMAT ? "token" : "message",
                        agentid_reason_to_string(reason));

        bool task = first == AGENTID_REASON_TOKEN_FORMAT && agentid_verdict_n_checks(d) > 1 &&
                    agentid_verdict_get_check(d, 1, &second, NULL, NULL, NULL) == 0 &&
                    second == AGENTID_REASON_CREDENTIAL_FORMAT;
        size_t n = task ? sizeof(task_token_order) / sizeof(task_token_order[0]) : (size_t) (last - first) + 1;

        FUZZ_CHECK(agentid_verdict_is_valid(d) == (reason == AGENTID_REASON_VALID));
        FUZZ_CHECK(agentid_verdict_n_checks(d) == n);
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason r, expected = task ? task_token_order[i] : (AgentidReason) (first + (int) i);
                const char *name = NULL, *detail = NULL;
                bool ok;

                FUZZ_CHECK(agentid_verdict_get_check(d, i, &r, &name, &ok, &detail) == 0);
                FUZZ_CHECK(r == expected);
                FUZZ_CHECK(name && detail && strcmp(name, agentid_reason_to_string(r)) == 0);
                if (!ok && !seen_failure) {
                        FUZZ_CHECK(reason == r);
                        seen_failure = true;
                }
        }
        FUZZ_CHECK(seen_failure == (reason != AGENTID_REASON_VALID));
}

/* What token_verify() accepted, checked against the rules it claims to enforce. */
static void check_accepted(const uint8_t *data, size_t size, const TokenVerified *t) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        const TokenClaims *c = &t->claims;
        int r;

        FUZZ_CHECK(size <= TOKEN_MAX && data[0] == 0xd2);
        FUZZ_CHECK(c->iss && c->aud && c->task_id && c->owner);
        FUZZ_CHECK(c->nbf <= c->exp && c->iat <= c->exp);
        FUZZ_CHECK(!c->scope || token_scope_is_valid(c->scope));
        FUZZ_CHECK(token_scope_is_subset(c->scope, c->scope));
        FUZZ_CHECK(c->n_hops <= TOKEN_HOPS_MAX && (c->n_hops == 0) == !c->hops);
        FUZZ_CHECK(!c->credential || (c->credential_size > 0 && c->credential_size <= TOKEN_CREDENTIAL_MAX));
        FUZZ_CHECK(t->kid[0] == 0x00 && t->kid[1] == 0x0b);

        /* One encoding per claims set: the decoded claims encode to the payload received. */
        r = cose_sign1_parse(data, size, &p, NULL);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        r = token_claims_encode(c, &payload, &payload_size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(payload_size == p.payload_size && memcmp(payload, p.payload, payload_size) == 0);
        FUZZ_CHECK(memcmp(t->kid, p.kid, TOKEN_KID_SIZE) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(token_verified_freep) TokenVerified *t = NULL;
        EVP_PKEY *key = fuzz_key();
        const AgentidVerifier *v = fuzz_verifier();
        uint8_t kid[TOKEN_KID_SIZE];
        const char *peek_why = NULL, *why = NULL;
        int peek, r;

        peek = token_peek_kid(data, size, kid, &peek_why);
        FUZZ_CHECK(peek == 0 || peek == -EBADMSG || peek == -E2BIG || peek == -ENOMEM);
        FUZZ_CHECK(peek != -EBADMSG || peek_why);
        FUZZ_CHECK(peek != -E2BIG || size > TOKEN_MAX);

        r = token_verify(data, size, key, &t, &why);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EKEYREJECTED || r == -E2BIG || r == -ENOMEM || r == -EIO);
        FUZZ_CHECK((r == 0) == (t != NULL));
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO || why);
        /* The envelope is checked the same way by both; only then the signature and the claims. */
        if (peek == -EBADMSG || peek == -E2BIG)
                FUZZ_CHECK(r == peek || r == -ENOMEM || r == -EIO);
        if (r == 0 || r == -EKEYREJECTED)
                FUZZ_CHECK(peek == 0 || peek == -ENOMEM);
        if (r == 0) {
                FUZZ_CHECK(peek != 0 || memcmp(kid, t->kid, TOKEN_KID_SIZE) == 0);
                check_accepted(data, size, t);
        }

        /* The verifier on the same bytes, as a token and as a signed message. */
        AgentidVerdict *d = NULL;
        r = agentid_verify_token(v, data, size, token_key_der, sizeof(token_key_der), NULL, SEED_AUDIENCE, &d);
        /* Under an injected allocation failure (alloc-fail.c) any refusal is acceptable: OpenSSL 3.0
         * cannot always tell an allocation failure inside EVP_PKEY_fromdata() from a bad key, so the
         * caller's key may be refused as invalid. Refusing is safe; accepting is checked below. */
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO || (r < 0 && fuzz_out_of_memory()));
        if (r == 0) {
                check_verdict(d, AGENTID_REASON_TOKEN_FORMAT, AGENTID_REASON_TOKEN_HOPS);
                FUZZ_CHECK((agentid_verdict_get_token(d) != NULL) == agentid_verdict_is_valid(d));
                /* What the verifier accepts, token_verify() accepted too, unless memory ran out there. */
                FUZZ_CHECK(!agentid_verdict_is_valid(d) || t || fuzz_out_of_memory());
                if (agentid_verdict_is_valid(d) && t) {
                        const AgentidToken *tok = agentid_verdict_get_token(d);
                        FUZZ_CHECK(strcmp(tok->aud, SEED_AUDIENCE) == 0);
                        FUZZ_CHECK(SEED_NOW < tok->exp);
                        FUZZ_CHECK(tok->n_hops == t->claims.n_hops);
                }
                /* token_format is token_peek_kid(). */
                FUZZ_CHECK((agentid_verdict_reason(d) == AGENTID_REASON_TOKEN_FORMAT) == (peek != 0) ||
                           peek == -ENOMEM);
        }
        d = agentid_verdict_free(d);

        r = agentid_verify_message(v, data, size, token_key_der, sizeof(token_key_der), NULL, NULL, &d);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO || (r < 0 && fuzz_out_of_memory()));
        if (r == 0) {
                check_verdict(d, AGENTID_REASON_MESSAGE_FORMAT, AGENTID_REASON_MESSAGE_FRESHNESS);
                FUZZ_CHECK((agentid_verdict_get_message(d) != NULL) == agentid_verdict_is_valid(d));
                if (agentid_verdict_is_valid(d)) {
                        /* A message is never a token, and the COSE layer agrees it is signed. */
                        FUZZ_CHECK(peek == -EBADMSG || peek == -E2BIG || peek == -ENOMEM);
                        r = cose_sign1_check(data, size, key, NULL, NULL, NULL, NULL);
                        FUZZ_CHECK(r == 0 || (r < 0 && fuzz_out_of_memory()));
                        const AgentidMessage *m = agentid_verdict_get_message(d);
                        FUZZ_CHECK(m->payload && m->payload_size < size);
                }
        }
        agentid_verdict_free(d);
        return 0;
}

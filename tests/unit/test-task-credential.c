/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Task credentials (suite "unit"): attest/task-credential.c (deterministic encoding and the golden
 * vector of docs/formats.md §12, strict decoding, every refusal), and agentid_verify_token() following a
 * task token to the agent key (attest/verify-task.c): the valid chain, then one refusal per check with
 * its exact reason code, revocation of the keys and the cti involved, and the agentid-verify CLI.
 *
 * Software keys stand in for the TPM: the AK, the agent key and the task key are P-256 keys from fixed
 * seeds; tests/lib/fake-evidence.c marshals the task key's TPMT_PUBLIC and the AK's TPM2_Certify of it
 * byte for byte as a TPM does, and its hooks alter one field at a time with everything depending on it
 * (Names, signatures) following.
 *
 * With AGENTID_TEST_DUMP_DIR set, the fuzz seeds of tests/fuzz/corpus/task-credential/ are written there.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/cose.h"
#include "attest/revocation.h"
#include "attest/task-credential.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/task-policy.h"
#include "tests/lib/cli-run.h"
#include "tests/lib/fake-evidence.h"
#include "tests/lib/golden.h"
#include "tests/lib/test-budget.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

/* The inputs of the golden vector (docs/formats.md §12). */
#define HOST "8119af52884ed2bc28b62a373dc1f85b"
#define ISS "agentid://" HOST "/invoice-bot"
#define T0 UINT64_C(1764000000)
#define AUD "ledger-api"

static const uint8_t golden_cti[TOKEN_CTI_SIZE] = {
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
};
static const uint8_t token_cti[TOKEN_CTI_SIZE] = {
        0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
};
static const char *const golden_audiences[] = { "ledger-api", "bank-api" };

static struct {
        EVP_PKEY *agent, *task, *ak, *other_ak, *other, *host;
        uint8_t *agent_spki, *task_spki, *other_spki;
        size_t agent_spki_size, task_spki_size, other_spki_size;
        uint8_t agent_kid[TOKEN_KID_SIZE], other_kid[TOKEN_KID_SIZE];
        uint8_t agent_sha[32], task_sha[32];
        uint8_t *ak_pub, *other_ak_pub;
        size_t ak_pub_size, other_ak_pub_size;
} k;

static void kid_fill(uint8_t kid[TOKEN_KID_SIZE], uint8_t fill) {
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, fill, TOKEN_KID_SIZE - 2);
}

static int setup(void **state) {
        k.agent = fake_key_from_seed("agentid task credential test: agent");
        k.task = fake_key_from_seed("agentid task credential test: task key");
        k.ak = fake_key_from_seed("agentid task credential test: AK");
        k.other_ak = fake_key_from_seed("agentid task credential test: other AK");
        k.other = fake_key_from_seed("agentid task credential test: someone else");
        k.host = fake_key_from_seed("agentid task credential test: host");
        assert_true(k.agent && k.task && k.ak && k.other_ak && k.other && k.host);
        assert_int_equal(pkey_to_spki_der(k.agent, &k.agent_spki, &k.agent_spki_size), 0);
        assert_int_equal(pkey_to_spki_der(k.task, &k.task_spki, &k.task_spki_size), 0);
        assert_int_equal(pkey_to_spki_der(k.other, &k.other_spki, &k.other_spki_size), 0);
        assert_int_equal(sha256(k.agent_spki, k.agent_spki_size, k.agent_sha), 0);
        assert_int_equal(sha256(k.task_spki, k.task_spki_size, k.task_sha), 0);
        assert_int_equal(fake_ak_public_bytes(k.ak, &k.ak_pub, &k.ak_pub_size), 0);
        assert_int_equal(fake_ak_public_bytes(k.other_ak, &k.other_ak_pub, &k.other_ak_pub_size), 0);
        kid_fill(k.agent_kid, 0x22);
        kid_fill(k.other_kid, 0x99);
        return 0;
}

static int teardown(void **state) {
        EVP_PKEY_free(k.agent);
        EVP_PKEY_free(k.task);
        EVP_PKEY_free(k.ak);
        EVP_PKEY_free(k.other_ak);
        EVP_PKEY_free(k.other);
        EVP_PKEY_free(k.host);
        free(k.agent_spki);
        free(k.task_spki);
        free(k.other_spki);
        free(k.ak_pub);
        free(k.other_ak_pub);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Helpers */

static void assert_contains(const char *s, const char *needle) {
        if (!strstr(s, needle))
                fail_msg("\"%s\" does not contain \"%s\"", s, needle);
}

static void dump(const char *name, const uint8_t *p, size_t n) {
        const char *dir = getenv("AGENTID_TEST_DUMP_DIR");
        _cleanup_free_ char *path = NULL;
        if (!dir)
                return;
        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        assert_int_equal(write_file_atomic(path, p, n, 0644, 0), 0);
}

/* A COSE_Sign1 over payload as agentidd makes one, without label 15. */
static void sign_cose(EVP_PKEY *key, const uint8_t *kid, size_t kid_size, const CoseClaims *claims,
                      const uint8_t *payload, size_t payload_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        uint8_t rs[COSE_ES256_SIG_SIZE];

        assert_int_equal(cose_sign1_prepare(kid, kid_size, claims, payload, payload_size, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, ret, ret_size), 0);
}

/* Stand-in r and s (TPMT_SIGNATURE) for the golden vector: ECDSA signatures are not deterministic. */
static void golden_sig_hook(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY_SIG) {
                FakeSignature *s = object;
                memset(s->r, 0x5a, 32);
                memset(s->s, 0x6b, 32);
        }
}

/* The task key certified by the AK for cti; hook alters it (NULL: as agentidd and the TPM make it). */
static void task_key_for(const uint8_t cti[TOKEN_CTI_SIZE], FakeHook hook, void *userdata, FakeTaskKey *ret) {
        FakeSpec spec;

        fake_spec_default(&spec, false, k.ak, k.task);
        spec.hook = hook;
        spec.userdata = userdata;
        assert_int_equal(fake_task_key_build(&spec, cti, ret), 0);
}

/* The golden credential's claims: invoice-bot's task task-7f3a for an hour, two audiences, the scope of
 * the golden token (formats.md §8), its TPM part in tk. */
static TaskCredentialClaims golden_claims(const FakeTaskKey *tk) {
        TaskCredentialClaims c = {
                .iss = ISS,
                .exp = T0 + 3600,
                .iat = T0,
                .scope = "invoices:read invoices:pay",
                .task_id = "task-7f3a",
                .audiences = golden_audiences,
                .n_audiences = ELEMENTSOF(golden_audiences),
                .task_pub = tk->pub.data,
                .task_pub_size = tk->pub.size,
                .certify = tk->certify.data,
                .certify_size = tk->certify.size,
                .certify_sig = tk->certify_sig.data,
                .certify_sig_size = tk->certify_sig.size,
                .clock_limit = FAKE_TASK_CLOCK_LIMIT,
        };
        memcpy(c.cti, golden_cti, sizeof(c.cti));
        assert_int_equal(fake_key_point(k.task, c.x, c.y), 0);
        return c;
}

static void make_credential(const TaskCredentialClaims *c, EVP_PKEY *signer, const uint8_t *kid, uint8_t **ret,
                            size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;

        assert_int_equal(task_credential_encode(c, &payload, &payload_size), 0);
        sign_cose(signer, kid, TOKEN_KID_SIZE, NULL, payload, payload_size, ret, ret_size);
}

/* The token the task key issues under the golden credential: for ledger-api, ten minutes. */
static TokenClaims task_token_claims(const uint8_t *cred, size_t cred_size) {
        TokenClaims t = {
                .iss = ISS,
                .aud = AUD,
                .exp = T0 + 600,
                .nbf = T0,
                .iat = T0,
                .scope = "invoices:read",
                .task_id = "task-7f3a",
                .owner = "finance-platform@example.com",
                .credential = cred,
                .credential_size = cred_size,
        };
        memcpy(t.cti, token_cti, sizeof(t.cti));
        return t;
}

static void make_token(const TokenClaims *t, EVP_PKEY *signer, const uint8_t kid[TOKEN_KID_SIZE], uint8_t **ret,
                       size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;

        assert_int_equal(token_claims_encode(t, &payload, &payload_size), 0);
        sign_cose(signer, kid, TOKEN_KID_SIZE, NULL, payload, payload_size, ret, ret_size);
}

/* Name(T): 00 0b || SHA-256(TPMT_PUBLIC). */
static void name_of(const FakeBytes *pub, uint8_t ret[TOKEN_KID_SIZE]) {
        ret[0] = 0x00;
        ret[1] = 0x0b;
        assert_int_equal(sha256(pub->data, pub->size, ret + 2), 0);
}

/*
 * One task token, built as agentidd builds it, with one thing changed: hook alters the TPM part,
 * edit_credential the credential's claims, edit_token the token's; credential_signer and token_signer
 * replace the agent key and the task key (token_kid then the signer's kid).
 */
typedef struct Variant {
        FakeHook hook;
        void *userdata;
        void (*edit_credential)(TaskCredentialClaims *c);
        void (*edit_token)(TokenClaims *t);
        EVP_PKEY *credential_signer;
        const uint8_t *credential_kid;
        EVP_PKEY *token_signer;
        const uint8_t *token_kid;
} Variant;

typedef struct Built {
        uint8_t *token, *credential;
        size_t token_size, credential_size;
        uint8_t task_kid[TOKEN_KID_SIZE];
        FakeTaskKey tk;
} Built;

static void built_done(Built *b) {
        free(b->token);
        free(b->credential);
        fake_task_key_done(&b->tk);
}

static void build(const Variant *var, Built *ret) {
        *ret = (Built) {};
        task_key_for(golden_cti, var ? var->hook : NULL, var ? var->userdata : NULL, &ret->tk);
        name_of(&ret->tk.pub, ret->task_kid);

        TaskCredentialClaims c = golden_claims(&ret->tk);
        if (var && var->edit_credential)
                var->edit_credential(&c);
        make_credential(&c, var && var->credential_signer ? var->credential_signer : k.agent,
                        var && var->credential_kid ? var->credential_kid : k.agent_kid, &ret->credential,
                        &ret->credential_size);

        TokenClaims t = task_token_claims(ret->credential, ret->credential_size);
        if (var && var->edit_token)
                var->edit_token(&t);
        make_token(&t, var && var->token_signer ? var->token_signer : k.task,
                   var && var->token_kid ? var->token_kid : ret->task_kid, &ret->token, &ret->token_size);
}

static AgentidVerifier *verifier_at(uint64_t now, bool trust_ak) {
        AgentidVerifier *v = agentid_verifier_new();
        assert_non_null(v);
        assert_int_equal(agentid_verifier_set_now(v, now), 0);
        if (trust_ak)
                assert_int_equal(agentid_verifier_add_trusted_ak(v, k.ak_pub, k.ak_pub_size), 0);
        return v;
}

/* An unchecked revocation list naming entries[0..n) (an unchecked list can only add refusals, which is
 * all these tests need). */
static void add_revocations(AgentidVerifier *v, const RevocationEntry *entries, size_t n) {
        _cleanup_(revocation_list_done) RevocationList l = { .issued = T0 + 5 };
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *list = NULL;
        size_t size = 0;
        uint8_t host_kid[TOKEN_KID_SIZE], rs[64];
        const char *why = NULL;

        snprintf(l.host, sizeof(l.host), "%s", HOST);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(revocation_list_append(&l, &entries[i]), 0);
        kid_fill(host_kid, 0x44);
        assert_int_equal(revocation_list_prepare(&l, host_kid, sizeof(host_kid), &c), 0);
        assert_int_equal(fake_sign_digest(k.host, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, &list, &size), 0);
        if (agentid_verifier_add_revocations(v, list, size, NULL, 0, 0, &why) < 0)
                fail_msg("revocation list refused: %s", why);
}

static AgentidVerdict *verify_with(const AgentidVerifier *v, const Built *b, const uint8_t *spki, size_t spki_size,
                                   const uint8_t *expected_kid) {
        AgentidVerdict *d = NULL;
        assert_int_equal(agentid_verify_token(v, b->token, b->token_size, spki, spki_size, expected_kid, AUD, &d), 0);
        assert_non_null(d);
        return d;
}

/* Verify b as of now, with the golden AK trusted or not, the agent key pinned with its kid. */
static AgentidVerdict *verify_at(const Built *b, uint64_t now, bool trust_ak) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(now, trust_ak);
        return verify_with(v, b, k.agent_spki, k.agent_spki_size, k.agent_kid);
}

static const char *check_detail(const AgentidVerdict *d, AgentidReason which) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason r;
                const char *detail;
                assert_int_equal(agentid_verdict_get_check(d, i, &r, NULL, NULL, &detail), 0);
                if (r == which)
                        return detail;
        }
        fail_msg("no check %s", agentid_reason_to_string(which));
        return NULL;
}

static void assert_reason(const AgentidVerdict *d, AgentidReason expect) {
        if (agentid_verdict_reason(d) != expect)
                fail_msg("expected %s, got %s: %s", agentid_reason_to_string(expect),
                         agentid_reason_to_string(agentid_verdict_reason(d)),
                         check_detail(d, agentid_verdict_reason(d) == AGENTID_REASON_VALID ?
                                                 AGENTID_REASON_TOKEN_FORMAT : agentid_verdict_reason(d)));
        assert_true(agentid_verdict_is_valid(d) == (expect == AGENTID_REASON_VALID));
        assert_true((agentid_verdict_get_token(d) != NULL) == (expect == AGENTID_REASON_VALID));
}

/* The variant v fails exactly check expect, whose detail says needle. */
static void expect_variant(const Variant *var, uint64_t now, bool trust_ak, AgentidReason expect, const char *needle) {
        _cleanup_(built_done) Built b = {};
        build(var, &b);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_at(&b, now, trust_ak);
        assert_reason(d, expect);
        if (needle)
                assert_contains(check_detail(d, expect), needle);
}

/* ------------------------------------------------------------------------------------------------ */
/* Format */

static void assert_bytes_golden(const char *vector, const uint8_t *got, size_t got_size) {
        _cleanup_free_ uint8_t *golden = NULL;
        size_t golden_size = 0;

        assert_int_equal(golden_load(vector, &golden, &golden_size), 0);
        if (got_size != golden_size || memcmp(got, golden, got_size) != 0) {
                _cleanup_free_ char *h = hex_encode(got, got_size);
                fail_msg("docs/formats.md golden:%s differs; the code gives %s", vector, h);
        }
}

/* The claims map built item by item, independently of task_credential_encode(). */
static cbor_item_t *claims_map(const TaskCredentialClaims *c) {
        cbor_item_t *m = cbor_util_new_map(), *cnf = cbor_util_new_map(), *key = cbor_util_new_map(),
                    *aud = cbor_util_new_array(), *tk = cbor_util_new_map();
        int r = 0;

        assert_true(m && cnf && key && aud && tk);
        r |= cbor_util_map_put_int(key, 1, cbor_util_new_uint(2));
        r |= cbor_util_map_put_int(key, -1, cbor_util_new_uint(1));
        r |= cbor_util_map_put_int(key, -2, cbor_util_new_bytes(c->x, 32));
        r |= cbor_util_map_put_int(key, -3, cbor_util_new_bytes(c->y, 32));
        r |= cbor_util_map_put_int(cnf, 1, key);
        for (size_t i = 0; i < c->n_audiences; i++)
                r |= cbor_util_array_push(aud, cbor_util_new_text(c->audiences[i]));
        r |= cbor_util_map_put_text(tk, "pub", cbor_util_new_bytes(c->task_pub, c->task_pub_size));
        r |= cbor_util_map_put_text(tk, "certify", cbor_util_new_bytes(c->certify, c->certify_size));
        r |= cbor_util_map_put_text(tk, "certify_sig", cbor_util_new_bytes(c->certify_sig, c->certify_sig_size));
        r |= cbor_util_map_put_text(tk, "clock_limit", cbor_util_new_uint(c->clock_limit));
        r |= cbor_util_map_put_int(m, 1, cbor_util_new_text(c->iss));
        r |= cbor_util_map_put_int(m, 2, cbor_util_new_text(c->iss));
        r |= cbor_util_map_put_int(m, 4, cbor_util_new_uint(c->exp));
        r |= cbor_util_map_put_int(m, 6, cbor_util_new_uint(c->iat));
        r |= cbor_util_map_put_int(m, 7, cbor_util_new_bytes(c->cti, 16));
        r |= cbor_util_map_put_int(m, 8, cnf);
        if (c->scope)
                r |= cbor_util_map_put_int(m, 9, cbor_util_new_text(c->scope));
        r |= cbor_util_map_put_text(m, "task_id", cbor_util_new_text(c->task_id));
        if (c->parent_task_id)
                r |= cbor_util_map_put_text(m, "parent_task_id", cbor_util_new_text(c->parent_task_id));
        r |= cbor_util_map_put_text(m, "audiences", aud);
        r |= cbor_util_map_put_text(m, "task_key", tk);
        assert_int_equal(r, 0);
        return m;
}

static void assert_claims_equal(const TaskCredentialClaims *a, const TaskCredentialClaims *b) {
        assert_string_equal(a->iss, b->iss);
        assert_int_equal(a->exp, b->exp);
        assert_int_equal(a->iat, b->iat);
        assert_memory_equal(a->cti, b->cti, 16);
        assert_memory_equal(a->x, b->x, 32);
        assert_memory_equal(a->y, b->y, 32);
        assert_true(streq_ptr(a->scope, b->scope));
        assert_string_equal(a->task_id, b->task_id);
        assert_true(streq_ptr(a->parent_task_id, b->parent_task_id));
        assert_int_equal(a->n_audiences, b->n_audiences);
        for (size_t i = 0; i < a->n_audiences; i++)
                assert_string_equal(a->audiences[i], b->audiences[i]);
        assert_true(a->n_audiences > 0 || !a->audiences);
        assert_int_equal(a->task_pub_size, b->task_pub_size);
        assert_memory_equal(a->task_pub, b->task_pub, a->task_pub_size);
        assert_int_equal(a->certify_size, b->certify_size);
        assert_memory_equal(a->certify, b->certify, a->certify_size);
        assert_int_equal(a->certify_sig_size, b->certify_sig_size);
        assert_memory_equal(a->certify_sig, b->certify_sig, a->certify_sig_size);
        assert_int_equal(a->clock_limit, b->clock_limit);
}

static void test_golden(void **state) {
        _cleanup_(fake_task_key_done) FakeTaskKey tk = {};
        _cleanup_free_ uint8_t *payload = NULL, *independent = NULL, *cred = NULL, *again = NULL;
        _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;
        size_t size = 0, independent_size = 0, cred_size = 0, again_size = 0;
        _cleanup_cbor_ cbor_item_t *m = NULL;
        const char *why = NULL;

        task_key_for(golden_cti, golden_sig_hook, NULL, &tk);
        TaskCredentialClaims g = golden_claims(&tk);
        assert_int_equal(task_credential_encode(&g, &payload, &size), 0);
        assert_bytes_golden("task-credential-claims", payload, size);

        /* The same map built item by item encodes to the same bytes. */
        m = claims_map(&g);
        assert_int_equal(cbor_util_encode(m, &independent, &independent_size), 0);
        assert_int_equal(independent_size, size);
        assert_memory_equal(independent, payload, size);

        /* Signed, it verifies and says what was encoded; the claims re-encode to the same payload. */
        sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, NULL, payload, size, &cred, &cred_size);
        assert_int_equal(task_credential_verify(cred, cred_size, k.agent, &c, &why), 0);
        assert_claims_equal(&c->claims, &g);
        assert_memory_equal(c->kid, k.agent_kid, TOKEN_KID_SIZE);
        assert_int_equal(task_credential_encode(&c->claims, &again, &again_size), 0);
        assert_int_equal(again_size, size);
        assert_memory_equal(again, payload, size);
}

static void test_round_trip(void **state) {
        _cleanup_(fake_task_key_done) FakeTaskKey tk = {};
        static const char *const many[] = { "a", "b", "c", "d", "e", "f", "g", "h",
                                            "i", "j", "k", "l", "m", "n", "o", "p" };

        task_key_for(golden_cti, NULL, NULL, &tk);

        /* The golden claims, then: no scope and no audiences (any), a parent task, 16 audiences, exp =
         * iat, the largest times. */
        for (int variant = 0; variant < 5; variant++) {
                _cleanup_free_ uint8_t *payload = NULL, *cred = NULL, *again = NULL;
                _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;
                size_t size = 0, cred_size = 0, again_size = 0;
                uint8_t kid[TOKEN_KID_SIZE];
                const char *why = NULL;
                TaskCredentialClaims g = golden_claims(&tk);

                switch (variant) {
                case 1:
                        g.scope = NULL;
                        g.audiences = NULL;
                        g.n_audiences = 0;
                        break;
                case 2:
                        g.parent_task_id = "task-0001";
                        break;
                case 3:
                        g.audiences = many;
                        g.n_audiences = ELEMENTSOF(many);
                        break;
                case 4:
                        g.iat = g.exp = UINT64_MAX;
                        break;
                }
                assert_int_equal(task_credential_encode(&g, &payload, &size), 0);
                sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, NULL, payload, size, &cred, &cred_size);
                assert_int_equal(task_credential_peek_kid(cred, cred_size, kid, &why), 0);
                assert_memory_equal(kid, k.agent_kid, TOKEN_KID_SIZE);
                assert_int_equal(task_credential_verify(cred, cred_size, k.agent, &c, &why), 0);
                assert_claims_equal(&c->claims, &g);
                assert_int_equal(task_credential_encode(&c->claims, &again, &again_size), 0);
                assert_int_equal(again_size, size);
                assert_memory_equal(again, payload, size);
                if (variant == 0)
                        dump("seed-credential", cred, cred_size);
                else if (variant == 2)
                        dump("seed-credential-parent", cred, cred_size);
        }
}

static void test_encode_refusals(void **state) {
        _cleanup_(fake_task_key_done) FakeTaskKey tk = {};
        static const char *const dup[] = { "a", "b", "a" };
        static const char *const empty[] = { "" };
        static const char *const seventeen[17] = { "a", "b", "c", "d", "e", "f", "g", "h", "i",
                                                   "j", "k", "l", "m", "n", "o", "p", "q" };
        char long_text[TOKEN_TEXT_MAX + 2];
        uint8_t big[TASK_CREDENTIAL_TPM_MAX + 1];

        task_key_for(golden_cti, NULL, NULL, &tk);
        memset(long_text, 'a', sizeof(long_text) - 1);
        long_text[sizeof(long_text) - 1] = 0;
        memset(big, 0x11, sizeof(big));

#define REFUSED(edit)                                                                           \
        do {                                                                                    \
                _cleanup_free_ uint8_t *_p = NULL;                                              \
                size_t _n = 0;                                                                  \
                TaskCredentialClaims c = golden_claims(&tk);                                    \
                edit;                                                                           \
                assert_int_equal(task_credential_encode(&c, &_p, &_n), -EINVAL);               \
                assert_null(_p);                                                                \
        } while (0)

        REFUSED(c.iss = NULL);
        REFUSED(c.iss = "");
        REFUSED(c.iss = "https://example.com/invoice-bot");
        REFUSED(c.iss = "agentid://" HOST "/Invoice-bot");
        REFUSED(c.iss = "agentid://8119AF52884ED2BC28B62A373DC1F85B/invoice-bot");
        REFUSED(c.task_id = NULL);
        REFUSED(c.task_id = "");
        REFUSED(c.task_id = long_text);
        REFUSED(c.parent_task_id = "");
        REFUSED(c.scope = "");
        REFUSED(c.scope = "a  b");
        REFUSED(c.scope = "a a");
        REFUSED(c.iat = c.exp + 1);
        REFUSED({ c.audiences = dup; c.n_audiences = 3; });
        REFUSED({ c.audiences = empty; c.n_audiences = 1; });
        REFUSED({ c.audiences = seventeen; c.n_audiences = 17; });
        REFUSED({ c.audiences = NULL; c.n_audiences = 1; });
        REFUSED(c.task_pub = NULL);
        REFUSED(c.task_pub_size = 0);
        REFUSED({ c.certify = big; c.certify_size = sizeof(big); });
        REFUSED(c.certify_sig_size = 0);
        REFUSED(c.clock_limit = 0);
        REFUSED(c.task_id = "\xff\xfe");        /* not UTF-8 (cbor_util_encode()) */

        /* Everything at its largest does not fit in 4 KiB once signed. */
        REFUSED({
                static char auds[16][TOKEN_TEXT_MAX + 1];
                static const char *aud_list[16];
                for (size_t i = 0; i < 16; i++) {
                        memset(auds[i], 'a' + (int) i, TOKEN_TEXT_MAX);
                        auds[i][TOKEN_TEXT_MAX] = 0;
                        aud_list[i] = auds[i];
                }
                c.audiences = aud_list;
                c.n_audiences = 16;
        });
#undef REFUSED

        _cleanup_free_ uint8_t *p = NULL;
        size_t n = 0;
        TaskCredentialClaims c = golden_claims(&tk);
        assert_int_equal(task_credential_encode(NULL, &p, &n), -EINVAL);
        assert_int_equal(task_credential_encode(&c, NULL, &n), -EINVAL);
        assert_int_equal(task_credential_encode(&c, &p, NULL), -EINVAL);
}

/* The golden claims map with one edit, signed by the agent key: task_credential_verify() refuses the
 * claims (-EBADMSG, reason containing needle); the signature verified first. */
typedef void (*MapEdit)(cbor_item_t **m);

static void expect_claims_refused_bytes(const uint8_t *payload, size_t size, const char *needle) {
        _cleanup_free_ uint8_t *cred = NULL;
        _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;
        size_t cred_size = 0;
        uint8_t kid[TOKEN_KID_SIZE];
        const char *why = NULL;

        sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, NULL, payload, size, &cred, &cred_size);
        /* The envelope is fine: peek accepts, verify refuses the claims. */
        assert_int_equal(task_credential_peek_kid(cred, cred_size, kid, NULL), 0);
        assert_int_equal(task_credential_verify(cred, cred_size, k.agent, &c, &why), -EBADMSG);
        assert_null(c);
        assert_non_null(why);
        if (needle && !strstr(why, needle))
                fail_msg("refused with \"%s\", expected \"%s\"", why, needle);

        /* Signed by another key, the same bytes are refused for the signature: nothing is read first. */
        cred = mfree(cred);
        sign_cose(k.other, k.agent_kid, TOKEN_KID_SIZE, NULL, payload, size, &cred, &cred_size);
        assert_int_equal(task_credential_verify(cred, cred_size, k.agent, &c, &why), -EKEYREJECTED);
}

static void expect_map_refused(cbor_item_t *m, const char *needle) {
        _cleanup_cbor_ cbor_item_t *owned = m;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t size = 0;

        assert_int_equal(cbor_util_encode(owned, &payload, &size), 0);
        expect_claims_refused_bytes(payload, size, needle);
}

static void test_decode_refusals(void **state) {
        _cleanup_(fake_task_key_done) FakeTaskKey tk = {};
        uint8_t other_x[32], other_y[32];

        task_key_for(golden_cti, NULL, NULL, &tk);
        const TaskCredentialClaims g = golden_claims(&tk);
        assert_int_equal(fake_key_point(k.other, other_x, other_y), 0);

        static const struct {
                const char *text_key;
                int64_t int_key;
                const char *needle;
        } missing[] = {
                { NULL, 1, "required claim is missing" },
                { NULL, 2, "required claim is missing" },
                { NULL, 4, "required claim is missing" },
                { NULL, 6, "required claim is missing" },
                { NULL, 7, "required claim is missing" },
                { NULL, 8, "required claim is missing" },
                { "task_id", 0, "required claim is missing" },
                { "audiences", 0, "required claim is missing" },
                { "task_key", 0, "required claim is missing" },
        };
        for (size_t i = 0; i < ELEMENTSOF(missing); i++) {
                cbor_item_t *m = claims_map(&g);
                fake_map_delete(&m, missing[i].text_key, missing[i].int_key);
                expect_map_refused(m, missing[i].needle);
        }
        /* Without scope the claims are fine (it is optional). */
        {
                _cleanup_cbor_ cbor_item_t *m = claims_map(&g);
                _cleanup_free_ uint8_t *payload = NULL, *cred = NULL;
                _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;
                size_t size = 0, cred_size = 0;
                fake_map_delete(&m, NULL, 9);
                assert_int_equal(cbor_util_encode(m, &payload, &size), 0);
                sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, NULL, payload, size, &cred, &cred_size);
                assert_int_equal(task_credential_verify(cred, cred_size, k.agent, &c, NULL), 0);
                assert_null(c->claims.scope);
        }

        /* Each claim with a value of the wrong type, size or form. */
        struct {
                const char *text_key;
                int64_t int_key;
                cbor_item_t *value;
                const char *needle;
        } wrong[] = {
                { NULL, 1, cbor_util_new_bytes("x", 1), "iss (1)" },
                { NULL, 1, cbor_util_new_text("agentid://" HOST "/other-bot"), "sub (2) is not iss (1)" },
                { NULL, 2, cbor_util_new_text("agentid://" HOST "/other-bot"), "sub (2) is not iss (1)" },
                { NULL, 2, cbor_util_new_uint(1), "sub (2)" },
                { NULL, 4, cbor_util_new_text("soon"), "exp (4)" },
                { NULL, 4, cbor_util_new_int(-1), "exp (4)" },
                { NULL, 4, cbor_util_new_uint(T0 - 1), "iat (6) is after exp (4)" },
                { NULL, 6, cbor_util_new_bytes("\x01", 1), "iat (6)" },
                { NULL, 7, cbor_util_new_bytes(golden_cti, 15), "cti (7)" },
                { NULL, 7, cbor_util_new_text("0123456789abcdef"), "cti (7)" },
                { NULL, 8, cbor_util_new_uint(1), "cnf (8)" },
                { NULL, 9, cbor_util_new_text("a  b"), "scope (9)" },
                { NULL, 9, cbor_util_new_text("a a"), "scope (9)" },
                { NULL, 9, cbor_util_new_array(), "scope (9)" },
                { NULL, 3, cbor_util_new_text(AUD), "unknown claim with an integer key" },
                { NULL, 5, cbor_util_new_uint(T0), "unknown claim with an integer key" },
                { NULL, 10, cbor_util_new_uint(T0), "unknown claim with an integer key" },
                { NULL, -1, cbor_util_new_uint(T0), "unknown claim with an integer key" },
                { "task_id", 0, cbor_util_new_text(""), "\"task_id\"" },
                { "task_id", 0, cbor_util_new_bytes("t", 1), "\"task_id\"" },
                { "parent_task_id", 0, cbor_util_new_uint(7), "\"parent_task_id\"" },
                { "audiences", 0, cbor_util_new_text(AUD), "\"audiences\" is not an array" },
                { "audiences", 0, cbor_util_new_map(), "\"audiences\" is not an array" },
                { "task_key", 0, cbor_util_new_bytes("k", 1), "\"task_key\" is not a map" },
                { "owner", 0, cbor_util_new_text("someone"), "unknown claim with a text key" },
                { "credential", 0, cbor_util_new_bytes("c", 1), "unknown claim with a text key" },
        };
        for (size_t i = 0; i < ELEMENTSOF(wrong); i++) {
                cbor_item_t *m = claims_map(&g);
                assert_non_null(wrong[i].value);
                fake_map_set(&m, wrong[i].text_key, wrong[i].int_key, wrong[i].value);
                expect_map_refused(m, wrong[i].needle);
        }
        /* iss not an agent URI (sub following it). */
        {
                cbor_item_t *m = claims_map(&g);
                fake_map_set(&m, NULL, 1, cbor_util_new_text("https://example.com/bot"));
                fake_map_set(&m, NULL, 2, cbor_util_new_text("https://example.com/bot"));
                expect_map_refused(m, "not agentid://");
        }

        /* cnf in every wrong shape: extra entries, other kty/crv, coordinates of the wrong size, a point
         * off the curve. */
        for (int variant = 0; variant < 8; variant++) {
                cbor_item_t *cnf = cbor_util_new_map(), *key = cbor_util_new_map();
                int r = 0;
                uint8_t x[33], y[32];

                memcpy(x, g.x, 32);
                x[32] = 0;
                memcpy(y, g.y, 32);
                if (variant == 6)
                        y[31] ^= 1;             /* off the curve */
                r |= cbor_util_map_put_int(key, 1, cbor_util_new_uint(variant == 0 ? 3 : 2));
                r |= cbor_util_map_put_int(key, -1, cbor_util_new_uint(variant == 1 ? 2 : 1));
                r |= cbor_util_map_put_int(key, -2, cbor_util_new_bytes(x, variant == 2 ? 33 : 32));
                r |= cbor_util_map_put_int(key, -3, cbor_util_new_bytes(y, variant == 3 ? 31 : 32));
                if (variant == 4)
                        r |= cbor_util_map_put_int(key, 2, cbor_util_new_bytes("k", 1));      /* kid */
                r |= cbor_util_map_put_int(cnf, 1, key);
                if (variant == 5)
                        r |= cbor_util_map_put_int(cnf, 3, cbor_util_new_bytes("x", 1));
                if (variant == 7) {
                        cbor_decref(&cnf);
                        cnf = cbor_util_new_map();
                        r |= cbor_util_map_put_int(cnf, 2, cbor_util_new_bytes(g.x, 32));       /* not a COSE_Key */
                }
                assert_int_equal(r, 0);
                cbor_item_t *m = claims_map(&g);
                fake_map_set(&m, NULL, 8, cnf);
                expect_map_refused(m, variant == 6 ? "not a point on P-256" : "cnf (8) is not {1:");
        }

        /* audiences: too many, a repeated one, one that is not a text or is empty. */
        for (int variant = 0; variant < 4; variant++) {
                cbor_item_t *a = cbor_util_new_array();
                int r = 0;
                if (variant == 0)
                        for (int i = 0; i < 17; i++) {
                                char s[8];
                                snprintf(s, sizeof(s), "aud-%d", i);
                                r |= cbor_util_array_push(a, cbor_util_new_text(s));
                        }
                else {
                        r |= cbor_util_array_push(a, cbor_util_new_text(AUD));
                        r |= cbor_util_array_push(a, variant == 1 ? cbor_util_new_text(AUD) :
                                                     variant == 2 ? cbor_util_new_bytes("b", 1) : cbor_util_new_text(""));
                }
                assert_int_equal(r, 0);
                cbor_item_t *m = claims_map(&g);
                fake_map_set(&m, "audiences", 0, a);
                expect_map_refused(m, variant == 0 ? "more than 16" : variant == 1 ? "appears twice" :
                                                                                     "an audience is not a text");
        }

        /* task_key: each member missing, empty, too large or of another type; an extra member. */
        static const char *const members[] = { "pub", "certify", "certify_sig" };
        uint8_t big[TASK_CREDENTIAL_TPM_MAX + 1];
        memset(big, 0x22, sizeof(big));
        for (size_t i = 0; i < ELEMENTSOF(members); i++)
                for (int variant = 0; variant < 4; variant++) {
                        cbor_item_t *tkm = cbor_util_new_map();
                        int r = 0;
                        for (size_t j = 0; j < ELEMENTSOF(members); j++) {
                                const uint8_t *p = j == 0 ? g.task_pub : j == 1 ? g.certify : g.certify_sig;
                                size_t n = j == 0 ? g.task_pub_size : j == 1 ? g.certify_size : g.certify_sig_size;
                                if (j != i)
                                        r |= cbor_util_map_put_text(tkm, members[j], cbor_util_new_bytes(p, n));
                                else if (variant == 0)
                                        r |= cbor_util_map_put_text(tkm, "other", cbor_util_new_bytes(p, n));
                                else if (variant == 1)
                                        r |= cbor_util_map_put_text(tkm, members[j], cbor_util_new_bytes("", 0));
                                else if (variant == 2)
                                        r |= cbor_util_map_put_text(tkm, members[j], cbor_util_new_bytes(big, sizeof(big)));
                                else
                                        r |= cbor_util_map_put_text(tkm, members[j], cbor_util_new_text("x"));
                        }
                        r |= cbor_util_map_put_text(tkm, "clock_limit", cbor_util_new_uint(g.clock_limit));
                        assert_int_equal(r, 0);
                        cbor_item_t *m = claims_map(&g);
                        fake_map_set(&m, "task_key", 0, tkm);
                        expect_map_refused(m, members[i]);
                }
        /* clock_limit missing (another key in its place), 0, negative, a byte string, a text. */
        for (int variant = 0; variant < 5; variant++) {
                cbor_item_t *tkm = cbor_util_new_map(), *v;
                int r = 0;
                r |= cbor_util_map_put_text(tkm, "pub", cbor_util_new_bytes(g.task_pub, g.task_pub_size));
                r |= cbor_util_map_put_text(tkm, "certify", cbor_util_new_bytes(g.certify, g.certify_size));
                r |= cbor_util_map_put_text(tkm, "certify_sig", cbor_util_new_bytes(g.certify_sig, g.certify_sig_size));
                v = variant == 1 ? cbor_util_new_uint(0) : variant == 2 ? cbor_util_new_int(-5) :
                    variant == 3 ? cbor_util_new_bytes("\x01", 1) : variant == 4 ? cbor_util_new_text("1") :
                    cbor_util_new_uint(g.clock_limit);
                r |= cbor_util_map_put_text(tkm, variant == 0 ? "clock_limiT" : "clock_limit", v);
                assert_int_equal(r, 0);
                cbor_item_t *m = claims_map(&g);
                fake_map_set(&m, "task_key", 0, tkm);
                expect_map_refused(m, "lacks \"clock_limit\", or it is not a positive integer");
        }
        {
                cbor_item_t *tkm = cbor_util_new_map();
                int r = 0;
                r |= cbor_util_map_put_text(tkm, "pub", cbor_util_new_bytes(g.task_pub, g.task_pub_size));
                r |= cbor_util_map_put_text(tkm, "certify", cbor_util_new_bytes(g.certify, g.certify_size));
                r |= cbor_util_map_put_text(tkm, "certify_sig", cbor_util_new_bytes(g.certify_sig, g.certify_sig_size));
                r |= cbor_util_map_put_text(tkm, "clock_limit", cbor_util_new_uint(g.clock_limit));
                r |= cbor_util_map_put_text(tkm, "quote", cbor_util_new_bytes("q", 1));
                assert_int_equal(r, 0);
                cbor_item_t *m = claims_map(&g);
                fake_map_set(&m, "task_key", 0, tkm);
                expect_map_refused(m, "exactly pub, certify, certify_sig, clock_limit");
        }

        /* Not a map at all; not deterministic; a duplicate key; trailing bytes. */
        expect_map_refused(cbor_util_new_array(), "claims are not a map");
        {
                _cleanup_free_ uint8_t *payload = NULL, *raw = NULL;
                size_t size = 0;
                assert_int_equal(task_credential_encode(&g, &payload, &size), 0);

                /* exp (04 1a 69248f10) written as 04 1b 00000000 69248f10: not the shortest form. */
                static const uint8_t exp_short[] = { 0x04, 0x1a, 0x69, 0x24, 0x8f, 0x10 };
                uint8_t *at = memmem(payload, size, exp_short, sizeof(exp_short));
                assert_non_null(at);
                size_t off = (size_t) (at - payload);
                raw = malloc(size + 4);
                assert_non_null(raw);
                memcpy(raw, payload, off);
                static const uint8_t exp_long[] = { 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x69, 0x24, 0x8f, 0x10 };
                memcpy(raw + off, exp_long, sizeof(exp_long));
                memcpy(raw + off + sizeof(exp_long), payload + off + sizeof(exp_short), size - off - sizeof(exp_short));
                expect_claims_refused_bytes(raw, size + 4, NULL);

                /* The map head (aa: 10 pairs) claiming one more, a repeated "task_id" appended. */
                raw = mfree(raw);
                static const uint8_t dup_pair[] = { 0x67, 't', 'a', 's', 'k', '_', 'i', 'd', 0x61, 'x' };
                raw = malloc(size + sizeof(dup_pair));
                assert_non_null(raw);
                assert_int_equal(payload[0], 0xaa);
                memcpy(raw, payload, size);
                raw[0] = 0xab;
                memcpy(raw + size, dup_pair, sizeof(dup_pair));
                expect_claims_refused_bytes(raw, size + sizeof(dup_pair), NULL);

                /* A byte after the map. */
                raw = mfree(raw);
                raw = malloc(size + 1);
                assert_non_null(raw);
                memcpy(raw, payload, size);
                raw[size] = 0x00;
                expect_claims_refused_bytes(raw, size + 1, NULL);
        }
}

static void test_envelope_refusals(void **state) {
        _cleanup_(fake_task_key_done) FakeTaskKey tk = {};
        _cleanup_free_ uint8_t *payload = NULL, *cred = NULL, *with_claims = NULL, *kid33 = NULL, *trailing = NULL;
        _cleanup_(task_credential_verified_freep) TaskCredentialVerified *c = NULL;
        size_t size = 0, cred_size = 0, with_claims_size = 0, kid33_size = 0;
        uint8_t kid[TOKEN_KID_SIZE + 1];
        const char *why = NULL;
        const CoseClaims cc = { .iat = T0 };

        task_key_for(golden_cti, NULL, NULL, &tk);
        TaskCredentialClaims g = golden_claims(&tk);
        assert_int_equal(task_credential_encode(&g, &payload, &size), 0);
        sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, NULL, payload, size, &cred, &cred_size);

        /* Truncated at every length, and one byte more. */
        for (size_t n = 0; n < cred_size; n++) {
                assert_int_equal(task_credential_peek_kid(cred, n, kid, &why), -EBADMSG);
                assert_non_null(why);
                assert_int_equal(task_credential_verify(cred, n, k.agent, &c, &why), -EBADMSG);
        }
        trailing = malloc(cred_size + 1);
        assert_non_null(trailing);
        memcpy(trailing, cred, cred_size);
        trailing[cred_size] = 0;
        assert_int_equal(task_credential_verify(trailing, cred_size + 1, k.agent, &c, &why), -EBADMSG);

        /* A signed message (label 15) is never a credential; a kid that is not a 34-byte TPM Name. */
        sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, &cc, payload, size, &with_claims, &with_claims_size);
        assert_int_equal(task_credential_peek_kid(with_claims, with_claims_size, kid, &why), -EBADMSG);
        assert_contains(why, "label 15");
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, 0x22, sizeof(kid) - 2);
        sign_cose(k.agent, kid, sizeof(kid), NULL, payload, size, &kid33, &kid33_size);
        assert_int_equal(task_credential_verify(kid33, kid33_size, k.agent, &c, &why), -EBADMSG);
        assert_contains(why, "34-byte");

        /* Another key: refused for the signature. Larger than 4 KiB: -E2BIG. */
        assert_int_equal(task_credential_verify(cred, cred_size, k.other, &c, &why), -EKEYREJECTED);
        assert_null(c);
        _cleanup_free_ uint8_t *huge = calloc(1, TASK_CREDENTIAL_MAX + 1);
        assert_non_null(huge);
        assert_int_equal(task_credential_peek_kid(huge, TASK_CREDENTIAL_MAX + 1, kid, &why), -E2BIG);
        assert_int_equal(task_credential_verify(huge, TASK_CREDENTIAL_MAX + 1, k.agent, &c, &why), -E2BIG);

        /* Arguments. */
        assert_int_equal(task_credential_peek_kid(NULL, 1, kid, NULL), -EINVAL);
        assert_int_equal(task_credential_peek_kid(cred, cred_size, NULL, NULL), -EINVAL);
        assert_int_equal(task_credential_verify(cred, cred_size, NULL, &c, NULL), -EINVAL);
        assert_int_equal(task_credential_verify(cred, cred_size, k.agent, NULL, NULL), -EINVAL);
        assert_null(task_credential_verified_free(NULL));

        /* Every single-bit flip of a valid credential is refused (or, in the signature, not accepted). */
        for (size_t i = 0; i < cred_size; i++) {
                cred[i] ^= 0x01;
                if (task_credential_verify(cred, cred_size, k.agent, &c, NULL) == 0)
                        fail_msg("credential byte %zu ^ 01 accepted", i);
                cred[i] ^= 0x01;
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* agentid_verify_token() with a task token */

static const AgentidReason task_token_order[] = {
        AGENTID_REASON_TOKEN_FORMAT,      AGENTID_REASON_CREDENTIAL_FORMAT, AGENTID_REASON_CREDENTIAL_SIGNATURE,
        AGENTID_REASON_CREDENTIAL_TASK_KEY, AGENTID_REASON_CREDENTIAL_EXPIRY, AGENTID_REASON_TOKEN_SIGNATURE,
        AGENTID_REASON_TOKEN_KID,         AGENTID_REASON_TOKEN_CLAIMS,      AGENTID_REASON_CREDENTIAL_BINDING,
        AGENTID_REASON_TOKEN_AUDIENCE,    AGENTID_REASON_TOKEN_NOT_BEFORE,  AGENTID_REASON_TOKEN_EXPIRY,
        AGENTID_REASON_TOKEN_HOPS,
};

static void test_valid(void **state) {
        _cleanup_(built_done) Built b = {};
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;

        build(NULL, &b);
        d = verify_at(&b, T0 + 10, true);
        assert_reason(d, AGENTID_REASON_VALID);

        /* 13 checks, in the order they run, each passed. */
        assert_int_equal(agentid_verdict_n_checks(d), ELEMENTSOF(task_token_order));
        for (size_t i = 0; i < ELEMENTSOF(task_token_order); i++) {
                AgentidReason r;
                const char *name, *detail;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, &r, &name, &ok, &detail), 0);
                assert_int_equal(r, task_token_order[i]);
                assert_string_equal(name, agentid_reason_to_string(r));
                assert_true(ok);
        }
        assert_contains(check_detail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY), "certified by the AK 000b");
        assert_contains(check_detail(d, AGENTID_REASON_TOKEN_SIGNATURE), "task key");

        /* What the verdict hands out: the token's claims, the task key as the key verified with, the
         * credential's limits. */
        const AgentidToken *t = agentid_verdict_get_token(d);
        assert_string_equal(t->iss, ISS);
        assert_string_equal(t->aud, AUD);
        assert_string_equal(t->scope, "invoices:read");
        assert_memory_equal(t->cti, token_cti, 16);
        assert_memory_equal(t->kid, b.task_kid, TOKEN_KID_SIZE);
        assert_memory_equal(t->spki_sha256, k.task_sha, 32);
        assert_true(t->has_credential);
        assert_int_equal(t->credential_size, b.credential_size);
        assert_memory_equal(t->credential, b.credential, b.credential_size);
        assert_memory_equal(t->credential_kid, k.agent_kid, TOKEN_KID_SIZE);
        assert_memory_equal(t->agent_spki_sha256, k.agent_sha, 32);
        assert_memory_equal(t->credential_cti, golden_cti, 16);
        assert_int_equal(t->credential_iat, T0);
        assert_int_equal(t->credential_exp, T0 + 3600);
        assert_string_equal(t->credential_scope, "invoices:read invoices:pay");
        assert_int_equal(t->n_credential_audiences, 2);
        assert_string_equal(t->credential_audiences[0], "ledger-api");
        assert_string_equal(t->credential_audiences[1], "bank-api");
        assert_int_equal(t->task_public_key_size, k.task_spki_size);
        assert_memory_equal(t->task_public_key, k.task_spki, k.task_spki_size);

        /* Without an expected kid the credential's kid is only reported. */
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10, true);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d2 = verify_with(v, &b, k.agent_spki, k.agent_spki_size, NULL);
        assert_reason(d2, AGENTID_REASON_VALID);
        assert_contains(check_detail(d2, AGENTID_REASON_CREDENTIAL_SIGNATURE), "no kid expected");

        dump("seed-task-token", b.token, b.token_size);
}

/* A token without a credential keeps its eight checks, whatever the verifier holds. */
static void test_plain_token_shape(void **state) {
        _cleanup_free_ uint8_t *token = NULL;
        size_t size = 0;
        TokenClaims t = task_token_claims(NULL, 0);

        make_token(&t, k.agent, k.agent_kid, &token, &size);
        dump("seed-plain-token", token, size);
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10, true);
        AgentidVerdict *d = NULL;
        assert_int_equal(agentid_verify_token(v, token, size, k.agent_spki, k.agent_spki_size, k.agent_kid, AUD, &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 8);
        assert_reason(d, AGENTID_REASON_VALID);
        assert_false(agentid_verdict_get_token(d)->has_credential);
        agentid_verdict_free(d);
}

/* The chain to evidence: the agent key certified by agent evidence, its Name the credential's kid. */
static void test_agent_key_from_evidence(void **state) {
        _cleanup_free_ uint8_t *ev = NULL, *agent_pub = NULL;
        size_t ev_size = 0, agent_pub_size = 0;
        uint8_t agent_name[TOKEN_KID_SIZE];
        FakePublic p;
        FakeSpec spec;

        fake_spec_default(&spec, false, k.ak, k.agent);
        assert_int_equal(fake_evidence_build(&spec, &ev, &ev_size), 0);
        fake_public_key(k.agent, &p);
        assert_int_equal(fake_public_marshal(&p, &agent_pub, &agent_pub_size), 0);
        agent_name[0] = 0x00;
        agent_name[1] = 0x0b;
        assert_int_equal(sha256(agent_pub, agent_pub_size, agent_name + 2), 0);

        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(spec.iat + 10, true);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *ed = NULL;
        assert_int_equal(agentid_verify_evidence(v, ev, ev_size, spec.nonce, spec.nonce_size, &ed), 0);
        assert_true(agentid_verdict_is_valid(ed));
        const AgentidClaims *c = agentid_verdict_get_claims(ed);
        assert_memory_equal(c->kid, agent_name, TOKEN_KID_SIZE);

        /* The credential signed with that kid: valid; with the golden stand-in kid: credential_signature. */
        const Variant var = { .credential_kid = agent_name };
        _cleanup_(built_done) Built good = {}, stand_in = {};
        build(&var, &good);
        build(NULL, &stand_in);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, &good, c->public_key, c->public_key_size,
                                                                         c->kid);
        assert_reason(d, AGENTID_REASON_VALID);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d2 = verify_with(v, &stand_in, c->public_key,
                                                                          c->public_key_size, c->kid);
        assert_reason(d2, AGENTID_REASON_CREDENTIAL_SIGNATURE);
        assert_contains(check_detail(d2, AGENTID_REASON_CREDENTIAL_SIGNATURE), "expected 000b");
}

/* ---- one refusal per check ------------------------------------------------------------------------ */

static void hook_other_ak(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY_SIGN)
                ((FakeSignature *) object)->signer = k.other_ak;
}

static void hook_extra_data(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY)
                ((FakeAttest *) object)->extra_data[0] ^= 0x01;
}

static void hook_user_with_auth(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_KEY_PUBLIC)
                ((FakePublic *) object)->attributes |= 0x40;
}

static void hook_empty_policy(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_KEY_PUBLIC)
                ((FakePublic *) object)->auth_policy_size = 0;
}

static void hook_zero_policy(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_KEY_PUBLIC)
                memset(((FakePublic *) object)->auth_policy, 0, 32);
}

/* The task key's policy for the TPM-clock limit *userdata (the fake counters), as if made for it. */
static void hook_policy_limit(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_KEY_PUBLIC)
                assert_int_equal(task_policy_digest(*(const uint64_t *) userdata, FAKE_RESET_COUNT,
                                                    FAKE_RESTART_COUNT, ((FakePublic *) object)->auth_policy), 0);
}

/* The certification reports another boot than the one the policy names. */
static void hook_other_boot(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY)
                ((FakeAttest *) object)->reset_count++;
}

static void hook_restricted(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_KEY_PUBLIC)
                ((FakePublic *) object)->attributes |= 0x10000;
}

static void hook_not_fixed_tpm(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_KEY_PUBLIC)
                ((FakePublic *) object)->attributes &= ~0x2U;
}

static void hook_quote_type(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY_BYTES) {
                FakeBytes *b = object;
                b->data[5] = 0x18;              /* 0x8017 -> 0x8018: body no longer matches */
        }
}

static void hook_magic(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY)
                ((FakeAttest *) object)->magic = 0xff544348;
}

static void hook_certified_name(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY)
                ((FakeAttest *) object)->name[33] ^= 0x01;
}

static void hook_sha384_sig(FakeStage stage, void *object, void *userdata) {
        if (stage == FAKE_CERTIFY_SIGN)
                ((FakeSignature *) object)->md = EVP_sha384();
}

static void edit_cnf_other(TaskCredentialClaims *c) {
        assert_int_equal(fake_key_point(k.other, c->x, c->y), 0);
}

static const uint64_t limit_5s = FAKE_CLOCK + 5000, limit_2h = FAKE_CLOCK + 7200000, limit_now = FAKE_CLOCK,
                      limit_1ms_more = FAKE_CLOCK + 3600001;

/* A task of 5 s, its key made for 5 s of TPM clock. */
static void edit_short_credential(TaskCredentialClaims *c) {
        c->exp = T0 + 5;
        c->clock_limit = limit_5s;
}

/* A task of an hour whose key the TPM would let sign for two. */
static void edit_limit_2h(TaskCredentialClaims *c) {
        c->clock_limit = limit_2h;
}

static void edit_limit_now(TaskCredentialClaims *c) {
        c->clock_limit = limit_now;
}

/* A millisecond more of TPM time than the hour of the task (review finding: seconds rounded it away). */
static void edit_limit_1ms_more(TaskCredentialClaims *c) {
        c->clock_limit = limit_1ms_more;
}

/* The credential names another limit than the key's policy holds. */
static void edit_limit_other(TaskCredentialClaims *c) {
        c->clock_limit = FAKE_TASK_CLOCK_LIMIT - 1;
}

static void edit_no_audiences(TaskCredentialClaims *c) {
        c->audiences = NULL;
        c->n_audiences = 0;
}

static void edit_no_scope(TaskCredentialClaims *c) {
        c->scope = NULL;
}

static void edit_parent(TaskCredentialClaims *c) {
        c->parent_task_id = "task-0001";
}

static void edit_token_exp(TokenClaims *t) {
        t->exp = T0 + 3601;
}

static void edit_token_aud(TokenClaims *t) {
        t->aud = "payments-api";
}

static void edit_token_scope(TokenClaims *t) {
        t->scope = "invoices:read invoices:delete";
}

static void edit_token_task(TokenClaims *t) {
        t->task_id = "task-other";
}

static void edit_token_iss(TokenClaims *t) {
        t->iss = "agentid://" HOST "/ledger-bot";
}

/* A task token that claims to act for another agent (review finding: hops were not looked at). */
static void edit_token_hops(TokenClaims *t) {
        static TokenHop hop = { .iss = "agentid://" HOST "/boss", .kid = { 0x00, 0x0b, 0x42 } };
        t->hops = &hop;
        t->n_hops = 1;
}

static void edit_token_no_scope(TokenClaims *t) {
        t->scope = NULL;
}

static void test_refusals(void **state) {
        /* credential_signature: the credential signed by another key (its kid still the agent's). */
        expect_variant(&(Variant) { .credential_signer = k.other }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_SIGNATURE,
                       "does not verify with the given (agent) key");
        /* ... by the agent key but naming another kid. */
        expect_variant(&(Variant) { .credential_kid = k.other_kid }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_SIGNATURE,
                       "expected 000b2222");

        /* credential_task_key */
        expect_variant(NULL, T0 + 10, false, AGENTID_REASON_CREDENTIAL_TASK_KEY, "no trusted AK");
        expect_variant(&(Variant) { .hook = hook_other_ak }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "does not verify with any trusted AK");
        expect_variant(&(Variant) { .hook = hook_sha384_sig }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "not over SHA-256");
        expect_variant(&(Variant) { .hook = hook_extra_data }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "is not SHA-256(cti)");
        expect_variant(&(Variant) { .hook = hook_quote_type }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "task_key.certify");
        expect_variant(&(Variant) { .hook = hook_magic }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "TPM_GENERATED_VALUE");
        expect_variant(&(Variant) { .hook = hook_certified_name }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "is not Name(task_key.pub)");
        expect_variant(&(Variant) { .hook = hook_user_with_auth }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "userWithAuth set");
        /* The authPolicy must be the counter/timer policy for clock_limit in the certified boot. */
        expect_variant(&(Variant) { .hook = hook_empty_policy }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "is not the policy clock < 127056789, resetCount 2, restartCount 0");
        expect_variant(&(Variant) { .hook = hook_zero_policy }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "authPolicy 0000000000000000");
        expect_variant(&(Variant) { .edit_credential = edit_limit_other }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_TASK_KEY, "is not the policy clock < 127056788");
        expect_variant(&(Variant) { .hook = hook_other_boot }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "resetCount 3");
        /* ... and give the key no more TPM time than the credential's lifetime, after its certification. */
        expect_variant(&(Variant) { .hook = hook_policy_limit, .userdata = (void *) &limit_2h,
                                    .edit_credential = edit_limit_2h }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_TASK_KEY, "is not within the credential's lifetime of 3600 s");
        expect_variant(&(Variant) { .hook = hook_policy_limit, .userdata = (void *) &limit_1ms_more,
                                    .edit_credential = edit_limit_1ms_more }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_TASK_KEY, "is not within the credential's lifetime of 3600 s");
        expect_variant(&(Variant) { .hook = hook_policy_limit, .userdata = (void *) &limit_now,
                                    .edit_credential = edit_limit_now }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_TASK_KEY, "after its certification at TPM clock 123456789");
        expect_variant(&(Variant) { .hook = hook_restricted }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "restricted set");
        expect_variant(&(Variant) { .hook = hook_not_fixed_tpm }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_TASK_KEY,
                       "fixedTPM clear");
        expect_variant(&(Variant) { .edit_credential = edit_cnf_other }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_TASK_KEY, "is not the certified task key");

        /* credential_expiry: the credential ended (the token would still be within its own exp). */
        expect_variant(&(Variant) { .hook = hook_policy_limit, .userdata = (void *) &limit_5s,
                                    .edit_credential = edit_short_credential }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_EXPIRY, "expired at 1764000005");

        /* token_signature: the token signed by the agent key (with the task key's Name as kid, or its
         * own), not by the task key. */
        expect_variant(&(Variant) { .token_signer = k.agent }, T0 + 10, true, AGENTID_REASON_TOKEN_SIGNATURE,
                       "task key the credential names");
        expect_variant(&(Variant) { .token_signer = k.agent, .token_kid = k.agent_kid }, T0 + 10, true,
                       AGENTID_REASON_TOKEN_SIGNATURE, NULL);

        /* token_kid: signed by the task key but naming another kid. */
        expect_variant(&(Variant) { .token_kid = k.agent_kid }, T0 + 10, true, AGENTID_REASON_TOKEN_KID,
                       "kid 000b2222");

        /* credential_binding, one rule at a time. */
        expect_variant(&(Variant) { .edit_token = edit_token_exp }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "after the credential's exp");
        expect_variant(&(Variant) { .edit_token = edit_token_aud }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "not one of the credential's 2 audiences");
        expect_variant(&(Variant) { .edit_token = edit_token_scope }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "not within the credential's");
        expect_variant(&(Variant) { .edit_token = edit_token_task }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "task_id");
        expect_variant(&(Variant) { .edit_token = edit_token_iss }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "token iss");
        expect_variant(&(Variant) { .edit_credential = edit_parent }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "parent_task_id");
        expect_variant(&(Variant) { .edit_token = edit_token_hops }, T0 + 10, true, AGENTID_REASON_CREDENTIAL_BINDING,
                       "do not delegate");
        expect_variant(&(Variant) { .edit_credential = edit_no_scope }, T0 + 10, true,
                       AGENTID_REASON_CREDENTIAL_BINDING, "(no scope)");

        /* ... and what the credential allows: no audiences = any audience; no scope with no scope. */
        expect_variant(&(Variant) { .edit_credential = edit_no_audiences, .edit_token = edit_token_aud }, T0 + 10,
                       true, AGENTID_REASON_TOKEN_AUDIENCE, NULL);
        expect_variant(&(Variant) { .edit_credential = edit_no_audiences }, T0 + 10, true, AGENTID_REASON_VALID, NULL);
        expect_variant(&(Variant) { .edit_credential = edit_no_scope, .edit_token = edit_token_no_scope }, T0 + 10, true,
                       AGENTID_REASON_VALID, NULL);

        /* The token's own checks still run: expired token, audience. */
        expect_variant(NULL, T0 + 600, true, AGENTID_REASON_TOKEN_EXPIRY, NULL);
        expect_variant(NULL, T0 + 3600, true, AGENTID_REASON_CREDENTIAL_EXPIRY, NULL);
}

/* Each failure leaves what it could not establish "not checked", and later checks that do not depend on
 * it still run. */
static void test_not_checked(void **state) {
        _cleanup_(built_done) Built b = {};
        build(&(Variant) { .credential_signer = k.other }, &b);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_at(&b, T0 + 10, true);

        assert_reason(d, AGENTID_REASON_CREDENTIAL_SIGNATURE);
        assert_contains(check_detail(d, AGENTID_REASON_CREDENTIAL_FORMAT), "claims not read");
        assert_contains(check_detail(d, AGENTID_REASON_CREDENTIAL_TASK_KEY), "not checked");
        assert_contains(check_detail(d, AGENTID_REASON_CREDENTIAL_EXPIRY), "not checked");
        assert_contains(check_detail(d, AGENTID_REASON_TOKEN_SIGNATURE), "not checked");
        assert_contains(check_detail(d, AGENTID_REASON_TOKEN_KID), "not checked");
        assert_contains(check_detail(d, AGENTID_REASON_CREDENTIAL_BINDING), "not checked");
        assert_contains(check_detail(d, AGENTID_REASON_TOKEN_HOPS), "not checked");

        /* Without an AK the task key cannot be trusted, yet the rest is reported. */
        _cleanup_(built_done) Built g = {};
        build(NULL, &g);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d2 = verify_at(&g, T0 + 10, false);
        assert_reason(d2, AGENTID_REASON_CREDENTIAL_TASK_KEY);
        for (size_t i = 0; i < agentid_verdict_n_checks(d2); i++) {
                AgentidReason r;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d2, i, &r, NULL, &ok, NULL), 0);
                assert_true(ok == (r != AGENTID_REASON_CREDENTIAL_TASK_KEY));
        }
}

/* A credential claim that is a COSE_Sign1 but not a task credential: credential_format. */
static void test_credential_format(void **state) {
        _cleanup_free_ uint8_t *cred = NULL, *token = NULL, *with_claims = NULL, *token2 = NULL;
        size_t cred_size = 0, token_size = 0, with_claims_size = 0, token2_size = 0;
        const CoseClaims cc = { .iat = T0 };
        uint8_t task_kid[TOKEN_KID_SIZE];

        kid_fill(task_kid, 0x77);
        sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, NULL, (const uint8_t *) "\xa0", 1, &cred, &cred_size);
        TokenClaims t = task_token_claims(cred, cred_size);
        make_token(&t, k.task, task_kid, &token, &token_size);
        Built b = { .token = token, .token_size = token_size };
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_at(&b, T0 + 10, true);
        assert_reason(d, AGENTID_REASON_CREDENTIAL_FORMAT);
        assert_contains(check_detail(d, AGENTID_REASON_CREDENTIAL_FORMAT), "required claim is missing");
        assert_true(agentid_verdict_n_checks(d) == ELEMENTSOF(task_token_order));

        /* A signed message (label 15) in the claim: refused before its signature is checked. */
        sign_cose(k.agent, k.agent_kid, TOKEN_KID_SIZE, &cc, (const uint8_t *) "\xa0", 1, &with_claims,
                  &with_claims_size);
        t = task_token_claims(with_claims, with_claims_size);
        make_token(&t, k.task, task_kid, &token2, &token2_size);
        Built b2 = { .token = token2, .token_size = token2_size };
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d2 = verify_at(&b2, T0 + 10, true);
        assert_reason(d2, AGENTID_REASON_CREDENTIAL_FORMAT);
        assert_contains(check_detail(d2, AGENTID_REASON_CREDENTIAL_FORMAT), "label 15");
        assert_contains(check_detail(d2, AGENTID_REASON_CREDENTIAL_SIGNATURE), "not checked");
        dump("seed-task-token-bad-credential", token2, token2_size);
}

/* ---- revocation ------------------------------------------------------------------------------------- */

static RevocationEntry entry(RevocationType type, const uint8_t *kid, const uint8_t *spki_sha, const uint8_t *cti) {
        RevocationEntry e = {
                .type = type,
                .name = (char *) "invoice-bot",
                .time = T0 + 1,
                .reason = (char *) "test",
        };
        if (kid)
                memcpy(e.kid, kid, TOKEN_KID_SIZE);
        else
                kid_fill(e.kid, 0xee);
        if (spki_sha)
                memcpy(e.spki_sha256, spki_sha, 32);
        else
                memset(e.spki_sha256, 0xef, 32);
        if (cti) {
                e.has_cti = true;
                memcpy(e.cti, cti, 16);
        } else if (type == REVOCATION_TASK_END) {
                e.has_cti = true;
                memset(e.cti, 0xcc, 16);
        }
        return e;
}

static const char *revoked_detail(const AgentidVerdict *d) {
        return check_detail(d, AGENTID_REASON_REVOKED);
}

static void test_revoked(void **state) {
        _cleanup_(built_done) Built b = {};
        build(NULL, &b);

        struct {
                RevocationEntry e;
                AgentidReason expect;
                const char *detail;
        } cases[] = {
                /* Nothing of this chain listed: the SPKI hashes of both keys, three kids and the cti checked. */
                { entry(REVOCATION_DESTROY, NULL, NULL, NULL), AGENTID_REASON_VALID,
                  "not revoked: 2 SPKI SHA-256s and 3 kids and a task credential's cti" },
                /* The task key, by Name and by SPKI hash (task_end names it so, with the cti). */
                { entry(REVOCATION_DESTROY, b.task_kid, NULL, NULL), AGENTID_REASON_REVOKED,
                  "the token's kid (the task key)" },
                { entry(REVOCATION_DESTROY, NULL, k.task_sha, NULL), AGENTID_REASON_REVOKED,
                  "the task key the token verified with (SPKI SHA-256)" },
                /* The agent key, by SPKI hash and by kid. */
                { entry(REVOCATION_DESTROY, NULL, k.agent_sha, NULL), AGENTID_REASON_REVOKED,
                  "the agent key (SPKI SHA-256)" },
                { entry(REVOCATION_ROTATE, k.agent_kid, NULL, NULL), AGENTID_REASON_REVOKED, "the expected kid" },
                /* The task ended: its credential's cti. */
                { entry(REVOCATION_TASK_END, NULL, NULL, golden_cti), AGENTID_REASON_REVOKED,
                  "the task credential's cti a0a1a2a3" },
                /* Another task's end does not touch this one. */
                { entry(REVOCATION_TASK_END, NULL, NULL, token_cti), AGENTID_REASON_VALID, "not revoked" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10, true);
                add_revocations(v, &cases[i].e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, &b, k.agent_spki, k.agent_spki_size,
                                                                                 k.agent_kid);
                assert_int_equal(agentid_verdict_n_checks(d), ELEMENTSOF(task_token_order) + 1);
                assert_reason(d, cases[i].expect);
                assert_contains(revoked_detail(d), cases[i].detail);
        }

        /* The credential's kid (not expected by the caller) is checked too. */
        {
                RevocationEntry e = entry(REVOCATION_DESTROY, k.agent_kid, NULL, NULL);
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10, true);
                add_revocations(v, &e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, &b, k.agent_spki, k.agent_spki_size,
                                                                                 NULL);
                assert_reason(d, AGENTID_REASON_REVOKED);
                assert_contains(revoked_detail(d), "the kid that signed the task credential");
        }
        /* A token whose credential did not verify: "revoked" is not checked. */
        {
                _cleanup_(built_done) Built bad = {};
                build(&(Variant) { .credential_signer = k.other }, &bad);
                RevocationEntry e = entry(REVOCATION_DESTROY, NULL, NULL, NULL);
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10, true);
                add_revocations(v, &e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, &bad, k.agent_spki,
                                                                                 k.agent_spki_size, k.agent_kid);
                assert_reason(d, AGENTID_REASON_CREDENTIAL_SIGNATURE);
                assert_contains(revoked_detail(d), "not checked");
        }
}

static void test_reason_names(void **state) {
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_CREDENTIAL_FORMAT), "credential_format");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_CREDENTIAL_SIGNATURE), "credential_signature");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_CREDENTIAL_TASK_KEY), "credential_task_key");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_CREDENTIAL_EXPIRY), "credential_expiry");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_CREDENTIAL_BINDING), "credential_binding");
        assert_int_equal(AGENTID_REASON_CREDENTIAL_FORMAT, 45);
        assert_int_equal(AGENTID_REASON_CREDENTIAL_BINDING, 49);
        assert_null(agentid_reason_to_string((AgentidReason) (AGENTID_REASON_TOKEN_PEER_HOPS + 1)));
}

/* Every single-bit flip of a valid task token is refused. */
static void test_token_bit_flips(void **state) {
        _cleanup_(built_done) Built b = {};
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_at(T0 + 10, true);

        build(NULL, &b);
        for (size_t i = 0; i < b.token_size; i += test_exhaustive_step()) {
                AgentidVerdict *d = NULL;
                b.token[i] ^= 0x01;
                assert_int_equal(agentid_verify_token(v, b.token, b.token_size, k.agent_spki, k.agent_spki_size,
                                                      k.agent_kid, AUD, &d), 0);
                if (agentid_verdict_is_valid(d))
                        fail_msg("task token byte %zu ^ 01 accepted", i);
                agentid_verdict_free(d);
                b.token[i] ^= 0x01;
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* The CLI of this build: tools/agentid-verify, next to tests/unit/ in the build tree. */

static char cli_dir[] = "/tmp/test-task-credential-XXXXXX";
static bool cli_dir_made;

static int cli_cleanup(void **state) {
        if (!cli_dir_made)
                return 0;
        cli_dir_made = false;
        return test_remove_dir(cli_dir) < 0 ? -1 : 0;
}

static void test_cli(void **state) {
        _cleanup_free_ char *cli = test_cli_path("agentid-verify");
        const char *dir = cli_dir;

        if (!cli)
                skip();
        assert_non_null(mkdtemp(cli_dir));
        cli_dir_made = true;

        _cleanup_(built_done) Built b = {}, other_ak = {};
        build(NULL, &b);
        build(&(Variant) { .hook = hook_other_ak }, &other_ak);
        _cleanup_free_ char *token = test_write_tmp(dir, "token.cbor", b.token, b.token_size),
                            *bad = test_write_tmp(dir, "other-ak.cbor", other_ak.token, other_ak.token_size),
                            *agent = test_write_tmp(dir, "agent.der", k.agent_spki, k.agent_spki_size),
                            *ak = test_write_tmp(dir, "ak.tpmt", k.ak_pub, k.ak_pub_size),
                            *kid_hex = hex_encode(k.agent_kid, TOKEN_KID_SIZE), *out = NULL;
        _cleanup_free_ char *arg_key = NULL, *arg_ak = NULL, *arg_kid = NULL, *arg_now = NULL;
        assert_true(asprintf(&arg_key, "--public-key=%s", agent) > 0);
        assert_true(asprintf(&arg_ak, "--trusted-ak=%s", ak) > 0);
        assert_true(asprintf(&arg_kid, "--kid=%s", kid_hex) > 0);
        assert_true(asprintf(&arg_now, "--now=%llu", (unsigned long long) (T0 + 10)) > 0);

        /* The agent key pinned with its kid, the AK trusted: valid, with the credential's claims. */
        char *valid_argv[] = { cli, (char *) "token", arg_key, arg_kid, arg_ak, (char *) "--audience=" AUD, arg_now,
                               token, NULL };
        assert_int_equal(test_run_cli(dir, valid_argv, &out), 0);
        assert_contains(out, "\"verdict\": \"valid\"");
        assert_contains(out, "\"credential_task_key\"");
        assert_contains(out, "\"credential_cti\": \"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\"");
        assert_contains(out, "\"credential_audiences\": [");
        out = mfree(out);

        /* Certified by an AK that is not trusted: invalid (exit 1), reason credential_task_key. */
        char *bad_argv[] = { cli, (char *) "token", arg_key, arg_ak, (char *) "--audience=" AUD, arg_now, bad, NULL };
        assert_int_equal(test_run_cli(dir, bad_argv, &out), 1);
        assert_contains(out, "\"reason\": \"credential_task_key\"");
        out = mfree(out);

        /* Without --trusted-ak a task token cannot be checked: a usage error (exit 2). */
        char *no_ak_argv[] = { cli, (char *) "token", arg_key, (char *) "--audience=" AUD, arg_now, token, NULL };
        assert_int_equal(test_run_cli(dir, no_ak_argv, &out), 2);
        out = mfree(out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_encode_refusals),
                cmocka_unit_test(test_decode_refusals),
                cmocka_unit_test(test_envelope_refusals),
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_plain_token_shape),
                cmocka_unit_test(test_agent_key_from_evidence),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_not_checked),
                cmocka_unit_test(test_credential_format),
                cmocka_unit_test(test_revoked),
                cmocka_unit_test(test_reason_names),
                cmocka_unit_test(test_token_bit_flips),
                cmocka_unit_test_teardown(test_cli, cli_cleanup),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify against a peer registry (suite "unit"): agentid_verifier_add_peers() — what it
 * accepts and refuses — and agentid_verify_token_from_peer() — a registered issuer, an unregistered one,
 * the right iss with another key, a registered kid the token does not carry, delegation chains through
 * registered and unregistered agents — with the reason code of every refusal; then the CLI's --peers=.
 * OpenSSL P-256 keys stand in for the TPM (fake_sign_digest() over cose_sign1_digest()).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include "attest/cose.h"
#include "attest/peers.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "tests/lib/cli-run.h"
#include "tests/lib/fake-evidence.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

#define HOST_A "0123456789abcdef0123456789abcdef"
#define HOST_B "fedcba9876543210fedcba9876543210"
#define URI_ROOT "agentid://" HOST_A "/planner"         /* registered with its kid */
#define URI_CHILD "agentid://" HOST_B "/executor"       /* registered without a kid */
#define URI_STRANGER "agentid://" HOST_B "/stranger"    /* not registered */
#define AUDIENCE "gateway"
#define T0 UINT64_C(1764000000)

static struct {
        EVP_PKEY *root, *child, *stranger;
        uint8_t *root_spki, *child_spki;
        size_t root_spki_size, child_spki_size;
        uint8_t root_kid[TOKEN_KID_SIZE], child_kid[TOKEN_KID_SIZE], stranger_kid[TOKEN_KID_SIZE];
        uint8_t *registry;
        size_t registry_size;
} k;

static void kid_fill(uint8_t kid[TOKEN_KID_SIZE], uint8_t fill) {
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, fill, TOKEN_KID_SIZE - 2);
}

static int setup(void **state) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = peer_registry_new();

        k.root = fake_key_from_seed("agentid peers test: planner");
        k.child = fake_key_from_seed("agentid peers test: executor");
        k.stranger = fake_key_from_seed("agentid peers test: stranger");
        assert_non_null(k.root);
        assert_non_null(k.child);
        assert_non_null(k.stranger);
        assert_int_equal(pkey_to_spki_der(k.root, &k.root_spki, &k.root_spki_size), 0);
        assert_int_equal(pkey_to_spki_der(k.child, &k.child_spki, &k.child_spki_size), 0);
        kid_fill(k.root_kid, 0x22);
        kid_fill(k.child_kid, 0x55);
        kid_fill(k.stranger_kid, 0x77);

        /* What `agentidctl peers export` writes for these two approvals. */
        assert_non_null(reg);
        assert_int_equal(peer_registry_add(reg, URI_ROOT, k.root_spki, k.root_spki_size, k.root_kid, T0 - 86400, 0), 0);
        assert_int_equal(peer_registry_add(reg, URI_CHILD, k.child_spki, k.child_spki_size, NULL, T0 - 3600, 1000), 0);
        assert_int_equal(peer_registry_encode(reg, &k.registry, &k.registry_size), 0);
        return 0;
}

static int teardown(void **state) {
        EVP_PKEY_free(k.root);
        EVP_PKEY_free(k.child);
        EVP_PKEY_free(k.stranger);
        free(k.root_spki);
        free(k.child_spki);
        free(k.registry);
        return 0;
}

/* A token as agentidd issues one: iss, for AUDIENCE, an hour from T0, with the given hops. */
static TokenClaims claims(const char *iss, const TokenHop *hops, size_t n_hops) {
        TokenClaims c = {
                .iss = iss,
                .aud = AUDIENCE,
                .exp = T0 + 3600,
                .nbf = T0,
                .iat = T0,
                .scope = "tickets:read",
                .task_id = "task-42",
                .owner = "ops@example.com",
                .hops = hops,
                .n_hops = n_hops,
        };
        memset(c.cti, 0xc0, sizeof(c.cti));
        return c;
}

static void sign_token(EVP_PKEY *key, const uint8_t kid[TOKEN_KID_SIZE], const TokenClaims *c, uint8_t **ret,
                       size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *cose = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t rs[COSE_ES256_SIG_SIZE];
        size_t payload_size = 0;

        assert_int_equal(token_claims_encode(c, &payload, &payload_size), 0);
        assert_int_equal(cose_sign1_prepare(kid, TOKEN_KID_SIZE, NULL, payload, payload_size, &cose), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(cose), rs), 0);
        assert_int_equal(cose_sign1_finish(cose, rs, ret, ret_size), 0);
}

static AgentidVerifier *verifier_with_peers(void) {
        AgentidVerifier *v = agentid_verifier_new();
        const char *why = NULL;

        assert_non_null(v);
        assert_int_equal(agentid_verifier_set_now(v, T0 + 10), 0);
        assert_int_equal(agentid_verifier_add_peers(v, k.registry, k.registry_size, &why), 0);
        return v;
}

/* Whether check name in d passed, and its detail. */
static bool check_ok(const AgentidVerdict *d, AgentidReason which, const char **ret_detail) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason r;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, &r, NULL, &ok, ret_detail), 0);
                if (r == which)
                        return ok;
        }
        fail_msg("no check %s", agentid_reason_to_string(which));
        return false;
}

/* Verify token from the registry and expect reason (AGENTID_REASON_VALID: a valid verdict). */
static void expect(const uint8_t *token, size_t size, AgentidReason reason, const char *what) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with_peers();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;

        assert_int_equal(agentid_verify_token_from_peer(v, token, size, AUDIENCE, &d), 0);
        if (agentid_verdict_reason(d) != reason)
                fail_msg("%s: expected %s, got %s", what, agentid_reason_to_string(reason),
                         agentid_reason_to_string(agentid_verdict_reason(d)));
        assert_int_equal(agentid_verdict_is_valid(d), reason == AGENTID_REASON_VALID);
        assert_int_equal(agentid_verdict_get_token(d) != NULL, reason == AGENTID_REASON_VALID);
}

/* ------------------------------------------------------------------------------------------------ */

static void test_registry_accepted(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new(), *none = agentid_verifier_new();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_(peer_registry_freep) PeerRegistry *empty = peer_registry_new();
        _cleanup_free_ uint8_t *token = NULL, *empty_buf = NULL;
        size_t token_size = 0, empty_size = 0;
        const char *why = NULL;

        assert_non_null(v);
        assert_non_null(none);
        TokenClaims c = claims(URI_ROOT, NULL, 0);
        sign_token(k.root, k.root_kid, &c, &token, &token_size);

        /* Without a registry there is nothing to look the issuer up in: a usage error, not a verdict. */
        assert_int_equal(agentid_verify_token_from_peer(none, token, token_size, AUDIENCE, &d), -ENOKEY);
        assert_null(d);

        assert_int_equal(agentid_verifier_add_peers(v, k.registry, k.registry_size, &why), 0);
        /* One registry per verifier: a second is refused, whatever it says. */
        assert_int_equal(agentid_verifier_add_peers(v, k.registry, k.registry_size, &why), -EEXIST);
        assert_int_equal(agentid_verifier_add_peers(NULL, k.registry, k.registry_size, &why), -EINVAL);
        assert_int_equal(agentid_verifier_add_peers(none, NULL, 5, &why), -EINVAL);

        assert_int_equal(agentid_verify_token_from_peer(v, token, token_size, NULL, &d), -EINVAL);
        assert_int_equal(agentid_verify_token_from_peer(v, token, token_size, "", &d), -EINVAL);
        assert_int_equal(agentid_verify_token_from_peer(v, NULL, 3, AUDIENCE, &d), -EINVAL);
        assert_int_equal(agentid_verify_token_from_peer(v, token, token_size, AUDIENCE, NULL), -EINVAL);
        /* The caller's-key API still needs the caller's key. */
        assert_int_equal(agentid_verify_token(v, token, token_size, NULL, 0, NULL, AUDIENCE, &d), -EINVAL);
        assert_null(d);

        /* An empty registry is a registry: it approves nobody. */
        assert_non_null(empty);
        assert_int_equal(peer_registry_encode(empty, &empty_buf, &empty_size), 0);
        assert_int_equal(agentid_verifier_add_peers(none, empty_buf, empty_size, &why), 0);
        assert_int_equal(agentid_verify_token_from_peer(none, token, token_size, AUDIENCE, &d), 0);
        assert_int_equal(agentid_verdict_reason(d), AGENTID_REASON_TOKEN_PEER);
}

/* The registry with "v" (or another top-level key) replaced; encoded deterministically. */
static void registry_edit(const char *key, cbor_item_t *value, uint8_t **ret, size_t *ret_size) {
        static const CborLimits limits = { .max_size = PEERS_FILE_MAX, .max_depth = 3, .max_items = 1000,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        cbor_item_t *map = NULL;

        assert_int_equal(cbor_util_decode(k.registry, k.registry_size, &limits, &map, NULL), 0);
        fake_map_set(&map, key, 0, value);
        assert_int_equal(cbor_util_encode(map, ret, ret_size), 0);
        cbor_decref(&map);
}

static void test_registry_refused(void **state) {
        _cleanup_free_ uint8_t *v2 = NULL, *extra = NULL, *big = NULL, *swapped = NULL;
        size_t v2_size = 0, extra_size = 0, swapped_size = 0;
        static const uint8_t empty_map[] = { 0xa0 };
        static const uint8_t json[] = "{\"v\": 1, \"peers\": []}";
        /* {"v": 1, "peers": []} with the 1 as a two-byte integer: not the shortest form (RFC 8949 §4.2.1). */
        static const uint8_t long_int[] = { 0xa2, 0x61, 'v', 0x18, 0x01, 0x65, 'p', 'e', 'e', 'r', 's', 0x80 };
        static const uint8_t shortest[] = { 0xa2, 0x61, 'v', 0x01, 0x65, 'p', 'e', 'e', 'r', 's', 0x80 };

        registry_edit("v", cbor_util_new_uint(2), &v2, &v2_size);
        registry_edit("note", cbor_util_new_text("hi"), &extra, &extra_size);

        /* The two peers listed in the wrong order: their entries swapped in place. */
        {
                static const CborLimits limits = { .max_size = PEERS_FILE_MAX, .max_depth = 3, .max_items = 1000,
                                                   .flags = CBOR_VALIDATE_DETERMINISTIC };
                cbor_item_t *map = NULL;
                assert_int_equal(cbor_util_decode(k.registry, k.registry_size, &limits, &map, NULL), 0);
                cbor_item_t *list = (cbor_item_t *) cbor_util_map_get_text(map, "peers");
                assert_non_null(list);
                assert_int_equal(cbor_array_size(list), 2);
                cbor_item_t **items = cbor_array_handle(list);
                cbor_item_t *tmp = items[0];
                items[0] = items[1];
                items[1] = tmp;
                assert_int_equal(cbor_util_encode(map, &swapped, &swapped_size), 0);
                cbor_decref(&map);
        }

        struct {
                const uint8_t *buf;
                size_t size;
                int expect;
                const char *what;
        } cases[] = {
                { k.registry, k.registry_size - 1, -EBADMSG, "truncated" },
                { k.registry, 0, -EBADMSG, "empty" },
                { empty_map, sizeof(empty_map), -EBADMSG, "an empty map" },
                { json, sizeof(json) - 1, -EBADMSG, "JSON" },
                { long_int, sizeof(long_int), -EBADMSG, "not deterministic" },
                { v2, v2_size, -EBADMSG, "v 2" },
                { extra, extra_size, -EBADMSG, "an unknown field" },
                { swapped, swapped_size, -EBADMSG, "peers out of order" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                const char *why = NULL;
                int r;

                assert_non_null(v);
                r = agentid_verifier_add_peers(v, cases[i].buf, cases[i].size, &why);
                if (r != cases[i].expect)
                        fail_msg("%s: %d, expected %d", cases[i].what, r, cases[i].expect);
                assert_non_null(why);
                /* Refused as a whole: the verifier holds no registry afterwards. */
                assert_int_equal(agentid_verify_token_from_peer(v, k.registry, k.registry_size, AUDIENCE, &d), -ENOKEY);
                /* And a good one is still accepted after a refusal. */
                assert_int_equal(agentid_verifier_add_peers(v, k.registry, k.registry_size, &why), 0);
        }

        /* The same minimal registry in its shortest form is fine. */
        {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
                assert_int_equal(agentid_verifier_add_peers(v, shortest, sizeof(shortest), NULL), 0);
        }

        /* Over the size limit: refused before it is parsed. */
        big = calloc(1, AGENTID_PEERS_MAX + 1);
        assert_non_null(big);
        {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
                assert_int_equal(agentid_verifier_add_peers(v, big, AGENTID_PEERS_MAX + 1, NULL), -EFBIG);
        }
}

static void test_registered_issuer(void **state) {
        static const AgentidReason order[] = {
                AGENTID_REASON_TOKEN_FORMAT,     AGENTID_REASON_TOKEN_PEER,       AGENTID_REASON_TOKEN_SIGNATURE,
                AGENTID_REASON_TOKEN_KID,        AGENTID_REASON_TOKEN_CLAIMS,     AGENTID_REASON_TOKEN_AUDIENCE,
                AGENTID_REASON_TOKEN_NOT_BEFORE, AGENTID_REASON_TOKEN_EXPIRY,     AGENTID_REASON_TOKEN_HOPS,
                AGENTID_REASON_TOKEN_PEER_HOPS,
        };
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with_peers();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL, *d2 = NULL;
        _cleanup_free_ uint8_t *token = NULL, *child = NULL;
        size_t token_size = 0, child_size = 0;
        uint8_t sha[32];

        TokenClaims c = claims(URI_ROOT, NULL, 0);
        sign_token(k.root, k.root_kid, &c, &token, &token_size);
        assert_int_equal(agentid_verify_token_from_peer(v, token, token_size, AUDIENCE, &d), 0);
        assert_true(agentid_verdict_is_valid(d));

        /* Every check ran and passed, in the documented order. */
        assert_int_equal(agentid_verdict_n_checks(d), ELEMENTSOF(order));
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                AgentidReason r;
                const char *name;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, &r, &name, &ok, NULL), 0);
                assert_int_equal(r, order[i]);
                assert_string_equal(name, agentid_reason_to_string(order[i]));
                assert_true(ok);
        }
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_TOKEN_PEER), "token_peer");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_TOKEN_PEER_HOPS), "token_peer_hops");

        /* The claims, and the key the registry gave. */
        const AgentidToken *t = agentid_verdict_get_token(d);
        assert_non_null(t);
        assert_string_equal(t->iss, URI_ROOT);
        assert_memory_equal(t->kid, k.root_kid, TOKEN_KID_SIZE);
        assert_int_equal(sha256(k.root_spki, k.root_spki_size, sha), 0);
        assert_memory_equal(t->spki_sha256, sha, sizeof(sha));

        /* A peer registered without a kid: any kid (only its key vouches). */
        TokenClaims cc = claims(URI_CHILD, NULL, 0);
        sign_token(k.child, k.stranger_kid, &cc, &child, &child_size);
        assert_int_equal(agentid_verify_token_from_peer(v, child, child_size, AUDIENCE, &d2), 0);
        assert_true(agentid_verdict_is_valid(d2));

        /* The caller's-key API is unchanged: its 8 checks, none about peers. */
        agentid_verdict_free(d2);
        d2 = NULL;
        assert_int_equal(agentid_verify_token(v, token, token_size, k.root_spki, k.root_spki_size, k.root_kid, AUDIENCE,
                                              &d2), 0);
        assert_true(agentid_verdict_is_valid(d2));
        assert_int_equal(agentid_verdict_n_checks(d2), 8);
}

static void test_unregistered_issuer(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with_peers();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *token = NULL;
        size_t token_size = 0;
        const char *detail = NULL;

        TokenClaims c = claims(URI_STRANGER, NULL, 0);
        sign_token(k.stranger, k.stranger_kid, &c, &token, &token_size);
        assert_int_equal(agentid_verify_token_from_peer(v, token, token_size, AUDIENCE, &d), 0);
        assert_int_equal(agentid_verdict_reason(d), AGENTID_REASON_TOKEN_PEER);
        assert_false(check_ok(d, AGENTID_REASON_TOKEN_PEER, &detail));
        assert_non_null(strstr(detail, "not a registered peer"));
        /* No key: nothing signed was looked at. */
        assert_false(check_ok(d, AGENTID_REASON_TOKEN_SIGNATURE, &detail));
        assert_non_null(strstr(detail, "not checked"));
        assert_false(check_ok(d, AGENTID_REASON_TOKEN_PEER_HOPS, &detail));
        assert_non_null(strstr(detail, "not checked"));

        /* Not a token at all: token_format, and token_peer not checked. */
        static const uint8_t junk[] = { 0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40 };
        agentid_verdict_free(d);
        d = NULL;
        assert_int_equal(agentid_verify_token_from_peer(v, junk, sizeof(junk), AUDIENCE, &d), 0);
        assert_int_equal(agentid_verdict_reason(d), AGENTID_REASON_TOKEN_FORMAT);
        assert_false(check_ok(d, AGENTID_REASON_TOKEN_PEER, &detail));
        assert_non_null(strstr(detail, "not checked"));
}

static void test_wrong_key(void **state) {
        _cleanup_free_ uint8_t *token = NULL;
        size_t token_size = 0;

        /* A registered peer's URI and kid, signed by someone else's key. */
        TokenClaims c = claims(URI_ROOT, NULL, 0);
        sign_token(k.stranger, k.root_kid, &c, &token, &token_size);
        expect(token, token_size, AGENTID_REASON_TOKEN_SIGNATURE, "right iss, wrong key");

        /* Another registered peer's key does not do either. */
        free(token);
        token = NULL;
        sign_token(k.child, k.root_kid, &c, &token, &token_size);
        expect(token, token_size, AGENTID_REASON_TOKEN_SIGNATURE, "right iss, another peer's key");
}

static void test_kid_mismatch(void **state) {
        _cleanup_free_ uint8_t *token = NULL;
        size_t token_size = 0;

        /* The right key, but not the TPM Name the peer was registered with. */
        TokenClaims c = claims(URI_ROOT, NULL, 0);
        sign_token(k.root, k.stranger_kid, &c, &token, &token_size);
        expect(token, token_size, AGENTID_REASON_TOKEN_KID, "registered kid mismatch");
}

/* One entry of "hops": [parent.iss, parent.cti, parent.kid]. */
static TokenHop hop(const char *iss, uint8_t cti_fill, const uint8_t kid[TOKEN_KID_SIZE]) {
        TokenHop h = { .iss = iss };
        memset(h.cti, cti_fill, sizeof(h.cti));
        memcpy(h.kid, kid, sizeof(h.kid));
        return h;
}

static void test_hops(void **state) {
        _cleanup_free_ uint8_t *via_stranger = NULL, *via_root = NULL, *via_root_bad_kid = NULL, *deep = NULL,
                               *deep_bad = NULL, *self = NULL;
        size_t via_stranger_size = 0, via_root_size = 0, via_root_bad_kid_size = 0, deep_size = 0, deep_bad_size = 0,
               self_size = 0;
        const TokenHop stranger_hop[] = { hop(URI_STRANGER, 1, k.stranger_kid) };
        const TokenHop root_hop[] = { hop(URI_ROOT, 2, k.root_kid) };
        const TokenHop root_hop_bad_kid[] = { hop(URI_ROOT, 3, k.stranger_kid) };
        /* The second hop's peer is registered without a kid: any kid. */
        const TokenHop deep_hops[] = { hop(URI_ROOT, 4, k.root_kid), hop(URI_CHILD, 5, k.stranger_kid) };
        const TokenHop deep_bad_hops[] = { hop(URI_STRANGER, 6, k.stranger_kid), hop(URI_ROOT, 7, k.root_kid) };

        /* The executor (registered) delegated to by a stranger: the chain leaves the approved agents. */
        TokenClaims c = claims(URI_CHILD, stranger_hop, 1);
        sign_token(k.child, k.child_kid, &c, &via_stranger, &via_stranger_size);
        expect(via_stranger, via_stranger_size, AGENTID_REASON_TOKEN_PEER_HOPS, "hop through an unregistered agent");

        /* Delegated by the planner (registered, with the kid it was registered with). */
        c = claims(URI_CHILD, root_hop, 1);
        sign_token(k.child, k.child_kid, &c, &via_root, &via_root_size);
        expect(via_root, via_root_size, AGENTID_REASON_VALID, "hop through a registered agent");

        /* The planner's URI in the hop, but another key's kid: not the approved agent. */
        c = claims(URI_CHILD, root_hop_bad_kid, 1);
        sign_token(k.child, k.child_kid, &c, &via_root_bad_kid, &via_root_bad_kid_size);
        expect(via_root_bad_kid, via_root_bad_kid_size, AGENTID_REASON_TOKEN_PEER_HOPS, "hop kid not the registered one");

        /* Two hops, both registered (the second without a registered kid). */
        c = claims(URI_CHILD, deep_hops, 2);
        sign_token(k.child, k.child_kid, &c, &deep, &deep_size);
        expect(deep, deep_size, AGENTID_REASON_VALID, "two registered hops");

        /* The oldest ancestor unregistered: refused although the direct parent is registered. */
        c = claims(URI_CHILD, deep_bad_hops, 2);
        sign_token(k.child, k.child_kid, &c, &deep_bad, &deep_bad_size);
        expect(deep_bad, deep_bad_size, AGENTID_REASON_TOKEN_PEER_HOPS, "an unregistered ancestor");

        /* The root token of the planner (no hops) passes token_peer_hops trivially. */
        c = claims(URI_ROOT, NULL, 0);
        sign_token(k.root, k.root_kid, &c, &self, &self_size);
        expect(self, self_size, AGENTID_REASON_VALID, "root token");
}

/* ------------------------------------------------------------------------------------------------ */
/* The CLI: agentid-verify token --peers=FILE */

/* The CLI test's scratch directory; removed by cli_cleanup() also when the test fails. */
static char cli_dir[] = "/tmp/test-verify-peers-XXXXXX";
static bool cli_dir_made;

static int cli_cleanup(void **state) {
        if (!cli_dir_made)
                return 0;
        cli_dir_made = false;
        return test_remove_dir(cli_dir) < 0 ? -1 : 0;
}

static void test_cli(void **state) {
        _cleanup_free_ char *cli = test_cli_path("agentid-verify");
        _cleanup_free_ uint8_t *token = NULL, *stranger = NULL, *via_stranger = NULL;
        size_t token_size = 0, stranger_size = 0, via_stranger_size = 0;
        const char *dir = cli_dir;
        char now[32];

        if (!cli)
                skip();
        assert_non_null(mkdtemp(cli_dir));
        cli_dir_made = true;

        TokenHop parent = hop(URI_STRANGER, 1, k.stranger_kid);
        TokenClaims c = claims(URI_ROOT, NULL, 0);
        sign_token(k.root, k.root_kid, &c, &token, &token_size);
        c = claims(URI_STRANGER, NULL, 0);
        sign_token(k.stranger, k.stranger_kid, &c, &stranger, &stranger_size);
        c = claims(URI_CHILD, &parent, 1);
        sign_token(k.child, k.child_kid, &c, &via_stranger, &via_stranger_size);
        snprintf(now, sizeof(now), "--now=%llu", (unsigned long long) (T0 + 10));

        _cleanup_free_ char *peers_path = test_write_tmp(dir, "peers", k.registry, k.registry_size),
                            *bad_path = test_write_tmp(dir, "bad-peers", k.registry, k.registry_size - 1),
                            *key_path = test_write_tmp(dir, "key.der", k.root_spki, k.root_spki_size),
                            *token_path = test_write_tmp(dir, "token.cose", token, token_size),
                            *stranger_path = test_write_tmp(dir, "stranger.cose", stranger, stranger_size),
                            *hop_path = test_write_tmp(dir, "hop.cose", via_stranger, via_stranger_size),
                            *peers_opt = NULL, *bad_opt = NULL, *key_opt = NULL;
        assert_true(asprintf(&peers_opt, "--peers=%s", peers_path) > 0);
        assert_true(asprintf(&bad_opt, "--peers=%s", bad_path) > 0);
        assert_true(asprintf(&key_opt, "--public-key=%s", key_path) > 0);

        struct {
                char *argv[10];
                int status;
                const char *expect;     /* in the output */
        } cases[] = {
                { { cli, "token", peers_opt, "--audience=" AUDIENCE, now, token_path }, 0, "\"verdict\": \"valid\"" },
                { { cli, "token", peers_opt, "--audience=" AUDIENCE, now, token_path }, 0, "\"token_peer_hops\"" },
                { { cli, "token", peers_opt, "--audience=" AUDIENCE, now, stranger_path }, 1, "\"reason\": \"token_peer\"" },
                { { cli, "token", peers_opt, "--audience=" AUDIENCE, now, hop_path }, 1, "\"reason\": \"token_peer_hops\"" },
                { { cli, "token", peers_opt, "--audience=other", now, token_path }, 1, "\"reason\": \"token_audience\"" },
                /* Exactly one source of the key; the registry's kid, not --kid; tokens only. */
                { { cli, "token", peers_opt, key_opt, "--audience=" AUDIENCE, now, token_path }, 2, "" },
                { { cli, "token", peers_opt, "--kid=000b2222222222222222222222222222222222222222222222222222222222222222",
                    "--audience=" AUDIENCE, now, token_path }, 2, "" },
                { { cli, "message", peers_opt, now, token_path }, 2, "" },
                { { cli, "evidence", peers_opt, "--nonce=00000000000000000000000000000000", token_path }, 2, "" },
                /* A damaged registry is an input error, never a registry with fewer peers. */
                { { cli, "token", bad_opt, "--audience=" AUDIENCE, now, token_path }, 2, "" },
                /* The pinned-key path still works alongside. */
                { { cli, "token", key_opt, "--audience=" AUDIENCE, now, token_path }, 0, "\"verdict\": \"valid\"" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                int status = test_run_cli(dir, cases[i].argv, &out);
                if (status != cases[i].status || !strstr(out, cases[i].expect))
                        fail_msg("case %zu: exit %d (expected %d), output:\n%s", i, status, cases[i].status, out);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_registry_accepted),
                cmocka_unit_test(test_registry_refused),
                cmocka_unit_test(test_registered_issuer),
                cmocka_unit_test(test_unregistered_issuer),
                cmocka_unit_test(test_wrong_key),
                cmocka_unit_test(test_kid_mismatch),
                cmocka_unit_test(test_hops),
                cmocka_unit_test_teardown(test_cli, cli_cleanup),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Revocation lists and rotation statements (suite "unit"): attest/revocation.c (the golden vectors of
 * docs/formats.md §10-§11, round trips, every field the decoder refuses, non-deterministic and hostile
 * CBOR, the size limits), COSE_Sign with several signers (attest/cose.c), and libagentid-verify on top:
 * lists added to a verifier (signature, rollback, several hosts, which list replaces which: by host and
 * host key, never by the claimed host alone; unchecked lists only add; the limit on lists held;
 * 100,000 entries), the check "revoked" for evidence, tokens (hops, task credentials), messages and
 * rotation verdicts (the new key only), and the agentid-verify CLI of the same build. Software P-256
 * keys stand in for the TPM (tests/lib/fake-evidence.c).
 *
 * With AGENTID_TEST_DUMP_DIR set, the fuzz seeds of tests/fuzz/corpus/revocation/ are written there.
 */

#include <openssl/core_names.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <time.h>
#include <unistd.h>

#include "attest/cose.h"
#include "attest/revocation.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "tests/lib/cli-run.h"
#include "tests/lib/fake-evidence.h"
#include "tests/lib/golden.h"
#include "tests/lib/test-budget.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

/* The inputs of the golden vectors (docs/formats.md §10, §11). */
#define HOST "8119af52884ed2bc28b62a373dc1f85b"
#define OTHER_HOST "0123456789abcdef0123456789abcdef"
#define URI "agentid://" HOST "/invoice-bot"
#define T0 UINT64_C(1764000000)
#define ISSUED UINT64_C(1764090000)

static struct {
        EVP_PKEY *host, *other_host, *agent, *child, *fresh, *other, *ak;
        uint8_t *host_spki, *other_host_spki, *agent_spki, *child_spki, *fresh_spki, *other_spki;
        size_t host_spki_size, other_host_spki_size, agent_spki_size, child_spki_size, fresh_spki_size,
                other_spki_size;
        uint8_t agent_sha[32], child_sha[32], fresh_sha[32];
        uint8_t host_kid[34], agent_kid[34], child_kid[34], fresh_kid[34];
} k;

static void kid_fill(uint8_t kid[34], uint8_t fill) {
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, fill, 32);
}

static void spki_of(EVP_PKEY *key, uint8_t **ret, size_t *ret_size, uint8_t *ret_sha) {
        assert_int_equal(pkey_to_spki_der(key, ret, ret_size), 0);
        if (ret_sha)
                assert_int_equal(sha256(*ret, *ret_size, ret_sha), 0);
}

static int setup(void **state) {
        k.host = fake_key_from_seed("agentid revocation test: host key");
        k.other_host = fake_key_from_seed("agentid revocation test: another host key");
        k.agent = fake_key_from_seed("agentid revocation test: invoice-bot");
        k.child = fake_key_from_seed("agentid revocation test: ledger-bot");
        k.fresh = fake_key_from_seed("agentid revocation test: invoice-bot after rotation");
        k.other = fake_key_from_seed("agentid revocation test: someone else");
        k.ak = fake_key_from_seed("agentid revocation test: AK");
        assert_true(k.host && k.other_host && k.agent && k.child && k.fresh && k.other && k.ak);
        spki_of(k.host, &k.host_spki, &k.host_spki_size, NULL);
        spki_of(k.other_host, &k.other_host_spki, &k.other_host_spki_size, NULL);
        spki_of(k.agent, &k.agent_spki, &k.agent_spki_size, k.agent_sha);
        spki_of(k.child, &k.child_spki, &k.child_spki_size, k.child_sha);
        spki_of(k.fresh, &k.fresh_spki, &k.fresh_spki_size, k.fresh_sha);
        spki_of(k.other, &k.other_spki, &k.other_spki_size, NULL);
        kid_fill(k.host_kid, 0x44);
        kid_fill(k.agent_kid, 0x22);
        kid_fill(k.child_kid, 0x55);
        kid_fill(k.fresh_kid, 0x99);
        return 0;
}

static int teardown(void **state) {
        EVP_PKEY_free(k.host);
        EVP_PKEY_free(k.other_host);
        EVP_PKEY_free(k.agent);
        EVP_PKEY_free(k.child);
        EVP_PKEY_free(k.fresh);
        EVP_PKEY_free(k.other);
        EVP_PKEY_free(k.ak);
        free(k.host_spki);
        free(k.other_host_spki);
        free(k.agent_spki);
        free(k.child_spki);
        free(k.fresh_spki);
        free(k.other_spki);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Helpers */

static void assert_bytes_golden(const char *vector, const uint8_t *got, size_t got_size) {
        _cleanup_free_ uint8_t *golden = NULL;
        size_t golden_size = 0;

        assert_int_equal(golden_load(vector, &golden, &golden_size), 0);
        if (got_size != golden_size || memcmp(got, golden, got_size) != 0) {
                _cleanup_free_ char *h = hex_encode(got, got_size);
                fail_msg("docs/formats.md golden:%s differs; the code gives %s", vector, h);
        }
}

static void dump(const char *name, const uint8_t *p, size_t n) {
        const char *dir = getenv("AGENTID_TEST_DUMP_DIR");
        _cleanup_free_ char *path = NULL;
        if (!dir)
                return;
        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        assert_int_equal(write_file_atomic(path, p, n, 0644, 0), 0);
}

/* Bytes from hex pieces, NULL-terminated; spaces are skipped. */
static size_t unhex(uint8_t *out, size_t max, ...) {
        va_list ap;
        size_t n = 0;

        va_start(ap, max);
        for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
                for (; *s; s++) {
                        if (*s == ' ')
                                continue;
                        unsigned v;
                        assert_int_equal(sscanf(s, "%2x", &v), 1);
                        assert_true(n < max);
                        out[n++] = (uint8_t) v;
                        s++;
                }
        va_end(ap);
        return n;
}

/* The golden list's entries: one of each type (formats.md §10). */
static RevocationEntry golden_entry(RevocationType type) {
        RevocationEntry e = { .type = type };

        switch (type) {
        case REVOCATION_DESTROY:
                e.name = (char *) "invoice-bot";
                kid_fill(e.kid, 0x22);
                memset(e.spki_sha256, 0x33, 32);
                e.time = 1764050000;
                e.reason = (char *) "retired";
                break;
        case REVOCATION_ROTATE:
                e.name = (char *) "ledger-bot";
                kid_fill(e.kid, 0x55);
                memset(e.spki_sha256, 0x66, 32);
                e.time = 1764060000;
                e.reason = (char *) "scheduled";
                break;
        default:
                e.name = (char *) "invoice-bot";
                kid_fill(e.kid, 0x77);
                memset(e.spki_sha256, 0x88, 32);
                e.time = 1764070000;
                e.reason = (char *) "task-7f3a done";
                e.has_cti = true;
                for (size_t i = 0; i < 16; i++)
                        e.cti[i] = (uint8_t) (0xa0 + i);
                break;
        }
        return e;
}

static void golden_list(RevocationList *l) {
        *l = (RevocationList) { .host = HOST, .issued = ISSUED };
        for (RevocationType t = 0; t < _REVOCATION_TYPE_MAX; t++) {
                RevocationEntry e = golden_entry(t);
                assert_int_equal(revocation_list_append(l, &e), 0);
        }
        assert_int_equal(l->seq, 3);
}

static void golden_payload(uint8_t **ret, size_t *ret_size) {
        _cleanup_(revocation_list_done) RevocationList l = {};
        golden_list(&l);
        assert_int_equal(revocation_list_encode(&l, ret, ret_size), 0);
}

/* A COSE_Sign1 by key over payload, as agentidd signs host-key statements (no label 15). */
static void sign_payload(EVP_PKEY *key, const uint8_t *payload, size_t size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        uint8_t rs[COSE_ES256_SIG_SIZE];

        assert_int_equal(cose_sign1_prepare_large(k.host_kid, 34, payload, size, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, ret, ret_size), 0);
}

static void sign_list(EVP_PKEY *key, const RevocationList *l, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        uint8_t rs[COSE_ES256_SIG_SIZE];

        assert_int_equal(revocation_list_prepare(l, k.host_kid, 34, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, ret, ret_size), 0);
}

/* A COSE_Sign by keys[0..n) with kids[0..n) over payload. */
static void sign_multi(EVP_PKEY *const *keys, const uint8_t *const *kids, size_t n, const uint8_t *payload,
                       size_t size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign_freep) CoseSign *c = NULL;
        uint8_t sigs[COSE_SIGN_SIGNERS_MAX][COSE_ES256_SIG_SIZE];
        size_t kid_sizes[COSE_SIGN_SIGNERS_MAX];

        for (size_t i = 0; i < n; i++)
                kid_sizes[i] = 34;
        assert_int_equal(cose_sign_prepare(kids, kid_sizes, n, payload, size, &c), 0);
        assert_int_equal(cose_sign_n_signers(c), n);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(fake_sign_digest(keys[i], cose_sign_digest(c, i), sigs[i]), 0);
        assert_null(cose_sign_digest(c, n));
        assert_int_equal(cose_sign_finish(c, (const uint8_t (*)[COSE_ES256_SIG_SIZE]) sigs, ret, ret_size), 0);
}

static RotationStatement golden_rotation(void) {
        static uint8_t old_kid[34], new_kid[34], new_spki[32];
        kid_fill(old_kid, 0x22);
        kid_fill(new_kid, 0x99);
        memset(new_spki, 0xaa, sizeof(new_spki));
        return (RotationStatement) {
                .name = "invoice-bot",
                .uri = URI,
                .old_kid = old_kid,
                .new_kid = new_kid,
                .new_spki_sha256 = new_spki,
                .reason = "scheduled",
                .time = 1764080000,
        };
}

/* A rotation of the agent key to the fresh key, signed by old_key then host_key, as Rotate makes it. */
static void make_rotation(EVP_PKEY *old_key, EVP_PKEY *host_key, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign_freep) CoseSign *c = NULL;
        uint8_t sigs[2][COSE_ES256_SIG_SIZE];
        RotationStatement s = golden_rotation();

        s.old_kid = k.agent_kid;
        s.new_kid = k.fresh_kid;
        s.new_spki_sha256 = k.fresh_sha;
        assert_int_equal(rotation_statement_prepare(&s, k.host_kid, 34, &c), 0);
        assert_int_equal(cose_sign_n_signers(c), 2);
        assert_int_equal(fake_sign_digest(old_key, cose_sign_digest(c, 0), sigs[0]), 0);
        assert_int_equal(fake_sign_digest(host_key, cose_sign_digest(c, 1), sigs[1]), 0);
        assert_int_equal(cose_sign_finish(c, (const uint8_t (*)[COSE_ES256_SIG_SIZE]) sigs, ret, ret_size), 0);
}

static void print_checks(const AgentidVerdict *d) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                const char *name, *detail;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, NULL, &name, &ok, &detail), 0);
                print_message("  %s %s: %s\n", ok ? "ok  " : "FAIL", name, detail);
        }
}

/* The verdict's reason, and that the first failed check is that one. */
static void assert_reason(const AgentidVerdict *d, AgentidReason expected) {
        AgentidReason reason = agentid_verdict_reason(d);
        bool seen_failure = false;

        if (reason != expected) {
                print_checks(d);
                fail_msg("reason %s (%d), expected %s (%d)", agentid_reason_to_string(reason), reason,
                         agentid_reason_to_string(expected), expected);
        }
        assert_int_equal(agentid_verdict_is_valid(d), expected == AGENTID_REASON_VALID);
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason r;
                bool ok;
                const char *name, *detail;
                assert_int_equal(agentid_verdict_get_check(d, i, &r, &name, &ok, &detail), 0);
                assert_string_equal(name, agentid_reason_to_string(r));
                assert_true(strlen(detail) > 0);
                if (!ok && !seen_failure) {
                        assert_int_equal(r, expected);
                        seen_failure = true;
                }
        }
        assert_int_equal(seen_failure, expected != AGENTID_REASON_VALID);
}

/* The detail of the verdict's check "revoked" (which must be its last). */
static const char *revoked_detail(const AgentidVerdict *d) {
        size_t n = agentid_verdict_n_checks(d);
        AgentidReason r;
        const char *detail;

        assert_true(n > 0);
        assert_int_equal(agentid_verdict_get_check(d, n - 1, &r, NULL, NULL, &detail), 0);
        assert_int_equal(r, AGENTID_REASON_REVOKED);
        return detail;
}

static void assert_contains(const char *s, const char *needle) {
        if (!strstr(s, needle))
                fail_msg("\"%s\" does not contain \"%s\"", s, needle);
}

/* A list of host HOST at seq, signed by the host key, naming entries[0..n). */
static void signed_list(uint64_t seq, const char *host, const RevocationEntry *entries, size_t n, EVP_PKEY *signer,
                        uint8_t **ret, size_t *ret_size) {
        _cleanup_(revocation_list_done) RevocationList l = { .issued = ISSUED };

        snprintf(l.host, sizeof(l.host), "%s", host);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(revocation_list_append(&l, &entries[i]), 0);
        assert_true(seq >= n);
        l.seq = seq;
        sign_list(signer, &l, ret, ret_size);
}

/* An entry of type t naming the key with this kid and SPKI hash. */
static RevocationEntry entry_for(RevocationType t, const uint8_t *kid, const uint8_t *spki_sha) {
        RevocationEntry e = golden_entry(t);
        if (kid)
                memcpy(e.kid, kid, 34);
        else
                kid_fill(e.kid, 0xee);
        if (spki_sha)
                memcpy(e.spki_sha256, spki_sha, 32);
        else
                memset(e.spki_sha256, 0xef, 32);
        return e;
}

static AgentidVerifier *verifier_with(const RevocationEntry *entries, size_t n) {
        _cleanup_free_ uint8_t *list = NULL;
        size_t size = 0;
        AgentidVerifier *v = agentid_verifier_new();

        assert_non_null(v);
        assert_int_equal(agentid_verifier_set_now(v, T0 + 10), 0);
        if (n > 0) {
                signed_list(n, HOST, entries, n, k.host, &list, &size);
                assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.host_spki, k.host_spki_size, 0, NULL),
                                 0);
        }
        return v;
}

/* ------------------------------------------------------------------------------------------------ */
/* Format: golden vectors, round trips */

static void test_golden(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = {}, back = {};
        _cleanup_free_ uint8_t *payload = NULL, *again = NULL, *rot = NULL, *cose = NULL;
        size_t size = 0, again_size = 0, rot_size = 0, cose_size = 0;
        RotationStatement s = golden_rotation();
        const char *why = NULL;

        golden_list(&l);
        assert_int_equal(revocation_list_encode(&l, &payload, &size), 0);
        assert_bytes_golden("revocation-list-payload", payload, size);

        assert_int_equal(revocation_list_decode(payload, size, &back, &why), 0);
        assert_string_equal(back.host, HOST);
        assert_int_equal(back.seq, 3);
        assert_int_equal(back.issued, ISSUED);
        assert_int_equal(back.n_entries, 3);
        for (size_t i = 0; i < 3; i++) {
                RevocationEntry e = golden_entry((RevocationType) i);
                assert_int_equal(back.entries[i].type, e.type);
                assert_string_equal(back.entries[i].name, e.name);
                assert_string_equal(back.entries[i].reason, e.reason);
                assert_memory_equal(back.entries[i].kid, e.kid, 34);
                assert_memory_equal(back.entries[i].spki_sha256, e.spki_sha256, 32);
                assert_int_equal(back.entries[i].time, e.time);
                assert_int_equal(back.entries[i].has_cti, e.has_cti);
                if (e.has_cti)
                        assert_memory_equal(back.entries[i].cti, e.cti, 16);
        }
        assert_int_equal(revocation_list_encode(&back, &again, &again_size), 0);
        assert_int_equal(again_size, size);
        assert_memory_equal(again, payload, size);

        /* The list's envelope is the receipt's (formats.md §4): {1: -7, 4: host kid}, no label 15. */
        {
                _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
                _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
                _cleanup_free_ uint8_t *signed_bytes = NULL;
                size_t signed_size = 0;
                uint8_t standin[COSE_ES256_SIG_SIZE];

                memset(standin, 0x5a, sizeof(standin));
                assert_int_equal(revocation_list_prepare(&l, k.host_kid, 34, &c), 0);
                assert_int_equal(cose_sign1_finish(c, standin, &signed_bytes, &signed_size), 0);
                assert_int_equal(cose_sign1_parse(signed_bytes, signed_size, &p, NULL), 0);
                assert_null(p.claims);
                assert_int_equal(p.payload_size, size);
                assert_memory_equal(p.payload, payload, size);
                assert_memory_equal(p.kid, k.host_kid, 34);
        }

        assert_int_equal(rotation_statement_payload(&s, &rot, &rot_size), 0);
        assert_bytes_golden("rotation-payload", rot, rot_size);

        /* The statement with stand-in signatures 64 × 5a (old key, kid 000b 22..) and 64 × 6b (host key,
         * kid 000b 44..). */
        {
                _cleanup_(cose_sign_freep) CoseSign *c = NULL;
                _cleanup_(rotation_statement_parsed_done) RotationStatementParsed parsed = {};
                _cleanup_free_ uint8_t *inner = NULL;
                size_t inner_size = 0;
                uint8_t sigs[2][COSE_ES256_SIG_SIZE];

                memset(sigs[0], 0x5a, COSE_ES256_SIG_SIZE);
                memset(sigs[1], 0x6b, COSE_ES256_SIG_SIZE);
                assert_int_equal(rotation_statement_prepare(&s, k.host_kid, 34, &c), 0);
                assert_int_equal(cose_sign_finish(c, (const uint8_t (*)[COSE_ES256_SIG_SIZE]) sigs, &cose, &cose_size), 0);
                assert_bytes_golden("rotation-cose-sign", cose, cose_size);
                assert_int_equal(cose_sign_parse(cose, cose_size, 2, &inner, &inner_size, NULL), 0);
                assert_int_equal(inner_size, rot_size);
                assert_memory_equal(inner, rot, rot_size);
                assert_int_equal(rotation_statement_decode(inner, inner_size, &parsed, NULL), 0);
                assert_string_equal(parsed.name, "invoice-bot");
                assert_string_equal(parsed.uri, URI);
                assert_string_equal(parsed.reason, "scheduled");
                assert_int_equal(parsed.time, 1764080000);
                assert_memory_equal(parsed.old_kid, s.old_kid, 34);
                assert_memory_equal(parsed.new_kid, s.new_kid, 34);
                assert_memory_equal(parsed.new_spki_sha256, s.new_spki_sha256, 32);

                /* Each signer's digest is SHA-256 of ["Signature", h'', its protected header, h'',
                 * payload] (RFC 9052 §4.4), rebuilt here independently. */
                for (size_t i = 0; i < 2; i++) {
                        _cleanup_cbor_ cbor_item_t *tbs = cbor_util_new_array(), *prot = cbor_util_new_map();
                        _cleanup_free_ uint8_t *prot_bytes = NULL, *tbs_bytes = NULL;
                        size_t prot_size = 0, tbs_size = 0;
                        uint8_t digest[32];

                        assert_int_equal(cbor_util_map_put_int(prot, 1, cbor_util_new_int(-7)), 0);
                        assert_int_equal(cbor_util_map_put_int(prot, 4, cbor_util_new_bytes(i == 0 ? s.old_kid :
                                                                                            k.host_kid, 34)), 0);
                        assert_int_equal(cbor_util_encode(prot, &prot_bytes, &prot_size), 0);
                        assert_int_equal(cbor_util_array_push(tbs, cbor_util_new_text("Signature")), 0);
                        assert_int_equal(cbor_util_array_push(tbs, cbor_util_new_bytes(NULL, 0)), 0);
                        assert_int_equal(cbor_util_array_push(tbs, cbor_util_new_bytes(prot_bytes, prot_size)), 0);
                        assert_int_equal(cbor_util_array_push(tbs, cbor_util_new_bytes(NULL, 0)), 0);
                        assert_int_equal(cbor_util_array_push(tbs, cbor_util_new_bytes(rot, rot_size)), 0);
                        assert_int_equal(cbor_util_encode(tbs, &tbs_bytes, &tbs_size), 0);
                        assert_int_equal(sha256(tbs_bytes, tbs_size, digest), 0);
                        assert_memory_equal(digest, cose_sign_digest(c, i), 32);
                        if (i == 0)
                                assert_bytes_golden("rotation-sig-structure-old", tbs_bytes, tbs_size);
                }
        }

        dump("seed-list-payload", payload, size);
        dump("seed-rotation-payload", rot, rot_size);
        dump("seed-rotation-golden", cose, cose_size);
        /* The keys the fuzz harness embeds (the seeds below verify with them). */
        dump("key-host.der", k.host_spki, k.host_spki_size);
        dump("key-old.der", k.agent_spki, k.agent_spki_size);
}

static void roundtrip(const RevocationList *l) {
        _cleanup_(revocation_list_done) RevocationList back = {};
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        size_t a_size = 0, b_size = 0;
        const char *why = NULL;

        assert_int_equal(revocation_list_encode(l, &a, &a_size), 0);
        if (revocation_list_decode(a, a_size, &back, &why) != 0)
                fail_msg("decode refused its own encoding: %s", why);
        assert_int_equal(back.n_entries, l->n_entries);
        assert_int_equal(back.seq, l->seq);
        assert_int_equal(back.issued, l->issued);
        assert_string_equal(back.host, l->host);
        for (size_t i = 0; i < l->n_entries; i++)
                assert_int_equal(back.entries[i].exp, l->entries[i].exp);
        assert_int_equal(revocation_list_encode(&back, &b, &b_size), 0);
        assert_int_equal(a_size, b_size);
        assert_memory_equal(a, b, a_size);
}

static void test_roundtrip(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = { .host = HOST };
        char longest[REVOCATION_TEXT_MAX + 1];

        roundtrip(&l);                                  /* no entries */
        l.issued = UINT64_MAX;
        l.seq = UINT64_MAX - 6;
        roundtrip(&l);

        memset(longest, 'x', REVOCATION_TEXT_MAX);
        longest[REVOCATION_TEXT_MAX] = 0;
        RevocationEntry e = golden_entry(REVOCATION_DESTROY);
        e.name = longest;
        e.reason = longest;
        e.time = UINT64_MAX;
        assert_int_equal(revocation_list_append(&l, &e), 0);
        e = golden_entry(REVOCATION_TASK_END);
        e.name = (char *) "caf\xc3\xa9-bot \xf0\x9f\xa4\x96";   /* UTF-8 is fine, controls are not */
        e.reason = NULL;                                         /* = empty */
        e.time = 0;
        assert_int_equal(revocation_list_append(&l, &e), 0);
        e = golden_entry(REVOCATION_TASK_END);
        e.exp = UINT64_MAX;
        kid_fill(e.kid, 0x78);
        assert_int_equal(revocation_list_append(&l, &e), 0);
        e = golden_entry(REVOCATION_ROTATE);
        e.time = 23;
        assert_int_equal(revocation_list_append(&l, &e), 0);
        e.time = 24;
        assert_int_equal(revocation_list_append(&l, &e), 0);
        e.time = 65536;
        assert_int_equal(revocation_list_append(&l, &e), 0);
        assert_int_equal(l.seq, UINT64_MAX);
        roundtrip(&l);

        /* seq at its maximum cannot grow. */
        assert_int_equal(revocation_list_append(&l, &e), -E2BIG);
        assert_int_equal(l.n_entries, 6);
        assert_string_equal(l.entries[1].reason, "");
}

static void test_types_and_find(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = {};
        uint8_t kid[34], spki[32], cti[16];

        for (RevocationType t = 0; t < _REVOCATION_TYPE_MAX; t++)
                assert_int_equal(revocation_type_from_string(revocation_type_to_string(t)), (int) t);
        assert_int_equal(revocation_type_from_string("destroyed"), -EINVAL);
        assert_int_equal(revocation_type_from_string(NULL), -EINVAL);
        assert_null(revocation_type_to_string(_REVOCATION_TYPE_MAX));

        golden_list(&l);
        kid_fill(kid, 0x55);
        assert_ptr_equal(revocation_list_find(&l, kid, NULL), &l.entries[1]);
        memset(spki, 0x88, sizeof(spki));
        assert_ptr_equal(revocation_list_find(&l, NULL, spki), &l.entries[2]);
        kid_fill(kid, 0x12);
        assert_null(revocation_list_find(&l, kid, NULL));
        assert_ptr_equal(revocation_list_find(&l, kid, spki), &l.entries[2]);
        assert_null(revocation_list_find(&l, NULL, NULL));
        memcpy(cti, l.entries[2].cti, 16);
        assert_ptr_equal(revocation_list_find_cti(&l, cti), &l.entries[2]);
        cti[0] ^= 1;
        assert_null(revocation_list_find_cti(&l, cti));
        /* The first entry naming a key wins. */
        RevocationEntry again = golden_entry(REVOCATION_ROTATE);
        memcpy(again.kid, l.entries[0].kid, 34);
        assert_int_equal(revocation_list_append(&l, &again), 0);
        assert_ptr_equal(revocation_list_find(&l, l.entries[0].kid, NULL), &l.entries[0]);
}

/* Task entries whose credential expired leave the list, nothing else does; a change is a new seq. */
static void test_prune(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = { .host = HOST };
        static const uint64_t exps[] = { 0, 100, 200, 300 };   /* 0: an older entry without exp */
        RevocationEntry e;

        e = golden_entry(REVOCATION_DESTROY);
        assert_int_equal(revocation_list_append(&l, &e), 0);
        for (size_t i = 0; i < ELEMENTSOF(exps); i++) {
                e = golden_entry(REVOCATION_TASK_END);
                kid_fill(e.kid, (uint8_t) (0x70 + i));
                e.exp = exps[i];
                assert_int_equal(revocation_list_append(&l, &e), 0);
        }
        e = golden_entry(REVOCATION_ROTATE);
        assert_int_equal(revocation_list_append(&l, &e), 0);
        assert_int_equal(l.seq, 6);

        assert_int_equal(revocation_list_prune(&l, 100), 0);   /* exp 100 is not before 100 */
        assert_int_equal(l.seq, 6);
        assert_int_equal(revocation_list_prune(&l, 201), 2);
        assert_int_equal(l.seq, 7);
        assert_int_equal(l.n_entries, 4);
        assert_int_equal(l.entries[0].type, REVOCATION_DESTROY);
        assert_int_equal(l.entries[1].exp, 0);
        assert_int_equal(l.entries[2].exp, 300);
        assert_int_equal(l.entries[3].type, REVOCATION_ROTATE);
        roundtrip(&l);
        /* seq at its end: a smaller list would need another seq; nothing goes. */
        l.seq = UINT64_MAX;
        assert_int_equal(revocation_list_prune(&l, UINT64_MAX), 0);
        assert_int_equal(l.n_entries, 4);
        l.seq = 7;
        assert_int_equal(revocation_list_prune(&l, UINT64_MAX), 1);
        assert_int_equal(l.n_entries, 3);
        assert_int_equal(l.seq, 8);
        assert_int_equal(revocation_list_prune(&l, UINT64_MAX), 0);
        assert_int_equal(revocation_list_prune(NULL, 1), 0);
        roundtrip(&l);
}

static void test_append_refuses(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = { .host = HOST };
        char long_text[REVOCATION_TEXT_MAX + 2];
        static const char *const bad_texts[] = {
                "", "a\nb", "tab\there", "del\x7f", "c1\xc2\x85", "\xff", "caf\xc3", "\xed\xa0\x80",
                "\xc0\xaf", "\xf4\x90\x80\x80", "esc\x1b[31m",
        };
        RevocationEntry e;

        memset(long_text, 'x', sizeof(long_text));
        long_text[REVOCATION_TEXT_MAX + 1] = 0;

        for (size_t i = 0; i < ELEMENTSOF(bad_texts); i++) {
                e = golden_entry(REVOCATION_DESTROY);
                e.name = (char *) bad_texts[i];
                assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
                if (i > 0) {            /* an empty reason is fine */
                        e = golden_entry(REVOCATION_DESTROY);
                        e.reason = (char *) bad_texts[i];
                        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
                }
        }
        e = golden_entry(REVOCATION_DESTROY);
        e.name = long_text;
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_DESTROY);
        e.reason = long_text;
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_DESTROY);
        e.name = NULL;
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_DESTROY);
        e.kid[1] = 0x0c;                                /* not a SHA-256 Name */
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_DESTROY);
        e.has_cti = true;                               /* cti on another type */
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_TASK_END);
        e.has_cti = false;                              /* task_end without cti */
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_ROTATE);
        e.exp = 1764003600;                             /* exp on another type */
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        e = golden_entry(REVOCATION_DESTROY);
        e.type = _REVOCATION_TYPE_MAX;
        assert_int_equal(revocation_list_append(&l, &e), -EINVAL);
        assert_int_equal(revocation_list_append(NULL, &e), -EINVAL);
        assert_int_equal(revocation_list_append(&l, NULL), -EINVAL);

        /* Nothing changed. */
        assert_int_equal(l.n_entries, 0);
        assert_int_equal(l.seq, 0);

        /* The encoder refuses an inconsistent list. */
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        memcpy(l.host, "8119AF52884ED2BC28B62A373DC1F85B", 33);    /* upper case */
        assert_int_equal(revocation_list_encode(&l, &buf, &size), -EINVAL);
        memcpy(l.host, "8119af52884ed2bc28b62a373dc1f85", 32);     /* 31 digits */
        assert_int_equal(revocation_list_encode(&l, &buf, &size), -EINVAL);
        assert_null(buf);
}

/* Lists at the size limits: 100,000 short entries fit; with 256-byte texts, REVOCATION_LIST_MAX is
 * reached first, and an append beyond it is refused before the list changes. */
static void size_limits_body(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = { .host = HOST, .issued = ISSUED };
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *text = malloc(REVOCATION_TEXT_MAX + 1);
        size_t size = 0, n;

        assert_non_null(text);
        memset(text, 'y', REVOCATION_TEXT_MAX);
        text[REVOCATION_TEXT_MAX] = 0;

        /* Built directly (append would work too, at O(n) each): 26,200 entries of 640 bytes. */
        n = 26200;
        l.entries = calloc(n + 200, sizeof(RevocationEntry));
        assert_non_null(l.entries);
        for (size_t i = 0; i < n; i++) {
                RevocationEntry *e = &l.entries[i];
                *e = golden_entry(REVOCATION_DESTROY);
                e->name = strdup(text);
                e->reason = strdup(text);
                assert_true(e->name && e->reason);
                memcpy(e->kid + 2, &i, sizeof(i));
        }
        l.n_entries = n;
        l.seq = n;
        assert_int_equal(revocation_list_encode(&l, &buf, &size), 0);
        assert_true(size <= REVOCATION_LIST_MAX);
        assert_true(size > REVOCATION_LIST_MAX - 10000);
        buf = mfree(buf);

        /* Appending until the limit: the last append fails and leaves the list as it was. */
        RevocationEntry e = golden_entry(REVOCATION_DESTROY);
        e.name = text;
        e.reason = text;
        int r;
        size_t appended = 0;
        while ((r = revocation_list_append(&l, &e)) == 0)
                appended++;
        assert_int_equal(r, -E2BIG);
        assert_true(appended > 0 && appended < 100);
        assert_int_equal(l.n_entries, n + appended);
        assert_int_equal(l.seq, n + appended);
        assert_int_equal(revocation_list_encode(&l, &buf, &size), 0);
        assert_true(size <= REVOCATION_LIST_MAX);
        assert_true(size + 640 > REVOCATION_LIST_MAX);
        {
                _cleanup_(revocation_list_done) RevocationList back = {};
                assert_int_equal(revocation_list_decode(buf, size, &back, NULL), 0);
                assert_int_equal(back.n_entries, l.n_entries);
        }
        /* A payload over the limit is refused as such. */
        _cleanup_free_ uint8_t *big = calloc(1, REVOCATION_LIST_MAX + 1);
        RevocationList dummy = {};
        assert_non_null(big);
        assert_int_equal(revocation_list_decode(big, REVOCATION_LIST_MAX + 1, &dummy, NULL), -EFBIG);

        /* One entry too many for REVOCATION_ENTRIES_MAX: append refuses, the decoder too. */
        revocation_list_done(&l);
        l.entries = calloc(REVOCATION_ENTRIES_MAX + 1, sizeof(RevocationEntry));
        assert_non_null(l.entries);
        for (size_t i = 0; i < REVOCATION_ENTRIES_MAX; i++) {
                RevocationEntry *x = &l.entries[i];
                *x = golden_entry(REVOCATION_ROTATE);
                x->name = strdup("k");
                x->reason = strdup("");
                assert_true(x->name && x->reason);
                l.n_entries++;
        }
        l.seq = REVOCATION_ENTRIES_MAX;
        e = golden_entry(REVOCATION_ROTATE);
        assert_int_equal(revocation_list_append(&l, &e), -E2BIG);
        buf = mfree(buf);
        assert_int_equal(revocation_list_encode(&l, &buf, &size), 0);

        /* The same bytes with one more entry: patch the array head 9a 000186a0 to 9a 000186a1 and
         * append a copy of the last entry. */
        size_t entry_size = 0;
        {
                _cleanup_free_ uint8_t *one = NULL;
                _cleanup_(revocation_list_done) RevocationList single = { .host = HOST, .issued = ISSUED };
                size_t one_size = 0;
                RevocationEntry x = golden_entry(REVOCATION_ROTATE);
                x.name = (char *) "k";
                x.reason = (char *) "";
                assert_int_equal(revocation_list_append(&single, &x), 0);
                single.seq = REVOCATION_ENTRIES_MAX;
                assert_int_equal(revocation_list_encode(&single, &one, &one_size), 0);
                /* The entry is what follows "entries" 81. */
                static const uint8_t key[] = { 0x67, 'e', 'n', 't', 'r', 'i', 'e', 's', 0x81 };
                uint8_t *at = memmem(one, one_size, key, sizeof(key));
                assert_non_null(at);
                entry_size = one_size - (size_t) (at + sizeof(key) - one);
        }
        static const uint8_t head[] = { 0x67, 'e', 'n', 't', 'r', 'i', 'e', 's', 0x9a, 0x00, 0x01, 0x86, 0xa0 };
        uint8_t *at = memmem(buf, size, head, sizeof(head));
        assert_non_null(at);
        _cleanup_free_ uint8_t *more = malloc(size + entry_size);
        assert_non_null(more);
        memcpy(more, buf, size);
        memcpy(more + size, buf + size - entry_size, entry_size);
        more[(at - buf) + sizeof(head) - 1] = 0xa1;
        const char *why = NULL;
        RevocationList refused = {};
        assert_int_equal(revocation_list_decode(more, size + entry_size, &refused, &why), -EBADMSG);
        assert_contains(why, "more than 100000");
        assert_int_equal(refused.n_entries, 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* Decoder refusals */

static cbor_item_t *golden_map(void) {
        static const CborLimits limits = { .max_size = 4096, .max_depth = 3, .max_items = 128,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        _cleanup_free_ uint8_t *payload = NULL;
        size_t size = 0;
        cbor_item_t *map = NULL;

        golden_payload(&payload, &size);
        assert_int_equal(cbor_util_decode(payload, size, &limits, &map, NULL), 0);
        return map;
}

/* The i-th entry of a list map, as an editable slot. */
static cbor_item_t **entry_slot(cbor_item_t *map, size_t i) {
        cbor_item_t *entries = (cbor_item_t *) cbor_util_map_get_text(map, "entries");
        assert_non_null(entries);
        assert_true(i < cbor_array_size(entries));
        return &cbor_array_handle(entries)[i];
}

/* map (consumed) must be refused, with a reason containing expect. */
static void expect_refused(cbor_item_t *map, const char *expect) {
        _cleanup_(revocation_list_done) RevocationList l = {};
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        const char *why = NULL;

        assert_int_equal(cbor_util_encode(map, &buf, &size), 0);
        cbor_decref(&map);
        int r = revocation_list_decode(buf, size, &l, &why);
        if (r != -EBADMSG)
                fail_msg("accepted (%d), expected a refusal mentioning \"%s\"", r, expect);
        assert_non_null(why);
        assert_contains(why, expect);
        assert_int_equal(l.n_entries, 0);
}

static void expect_bytes_refused(const uint8_t *buf, size_t size) {
        _cleanup_(revocation_list_done) RevocationList l = {};
        const char *why = NULL;
        int r = revocation_list_decode(buf, size, &l, &why);
        if (r != -EBADMSG) {
                _cleanup_free_ char *h = hex_encode(buf, MIN(size, (size_t) 64));
                fail_msg("%zu bytes %s... gave %d, expected -EBADMSG", size, h, r);
        }
        assert_non_null(why);
}

static void test_decode_refuses_fields(void **state) {
        uint8_t kid33[33], kid35[35], kid_bad[34], b31[31], b15[15];
        cbor_item_t *m;

        memset(kid33, 0, sizeof(kid33));
        kid33[1] = 0x0b;
        memset(kid35, 0, sizeof(kid35));
        kid35[1] = 0x0b;
        kid_fill(kid_bad, 0x22);
        kid_bad[1] = 0x04;                              /* SHA-1 Name */
        memset(b31, 0x33, sizeof(b31));
        memset(b15, 0xa0, sizeof(b15));

        /* The list */
        static const char *const top[] = { "type", "host", "seq", "issued", "entries" };
        for (size_t i = 0; i < ELEMENTSOF(top); i++) {
                m = golden_map();
                fake_map_delete(&m, top[i], 0);
                expect_refused(m, "lacks");
        }
        m = golden_map();
        fake_map_set(&m, "extra", 0, cbor_util_new_uint(1));
        expect_refused(m, "unknown key");
        m = golden_map();
        fake_map_set(&m, NULL, 1, cbor_util_new_uint(1));
        expect_refused(m, "not a text");
        m = golden_map();
        fake_map_set(&m, "type", 0, cbor_util_new_text("revocation"));
        expect_refused(m, "\"type\"");
        m = golden_map();
        fake_map_set(&m, "type", 0, cbor_util_new_text("destroy"));
        expect_refused(m, "\"type\"");
        m = golden_map();
        fake_map_set(&m, "host", 0, cbor_util_new_text("8119AF52884ED2BC28B62A373DC1F85B"));
        expect_refused(m, "\"host\"");
        m = golden_map();
        fake_map_set(&m, "host", 0, cbor_util_new_text("8119af52884ed2bc28b62a373dc1f85"));
        expect_refused(m, "\"host\"");
        m = golden_map();
        fake_map_set(&m, "host", 0, cbor_util_new_text("8119af52884ed2bc28b62a373dc1f85bz"));
        expect_refused(m, "\"host\"");
        m = golden_map();
        fake_map_set(&m, "host", 0, cbor_util_new_text("8119af52884ed2bc28b62a373dc1f8-b"));
        expect_refused(m, "\"host\"");
        m = golden_map();
        fake_map_set(&m, "host", 0, cbor_util_new_bytes(HOST, 32));
        expect_refused(m, "\"host\"");
        m = golden_map();
        fake_map_set(&m, "seq", 0, cbor_util_new_int(-1));
        expect_refused(m, "\"seq\"");
        m = golden_map();
        fake_map_set(&m, "seq", 0, cbor_util_new_text("3"));
        expect_refused(m, "\"seq\"");
        m = golden_map();
        fake_map_set(&m, "issued", 0, cbor_build_bool(true));
        expect_refused(m, "\"issued\"");
        m = golden_map();
        fake_map_set(&m, "entries", 0, cbor_util_new_map());
        expect_refused(m, "\"entries\"");
        m = golden_map();
        fake_map_set(&m, "entries", 0, cbor_util_new_uint(0));
        expect_refused(m, "\"entries\"");
        {
                /* An entry that is not a map. */
                m = golden_map();
                cbor_item_t **slot = entry_slot(m, 1);
                cbor_decref(slot);
                *slot = cbor_util_new_text("destroy");
                expect_refused(m, "not a map");
        }

        /* Each entry field */
        static const char *const fields[] = { "type", "name", "kid", "spki_sha256", "time", "reason" };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                m = golden_map();
                fake_map_delete(entry_slot(m, 0), fields[i], 0);
                expect_refused(m, fields[i]);
        }
        m = golden_map();
        fake_map_delete(entry_slot(m, 2), "cti", 0);
        expect_refused(m, "\"cti\" is missing");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "cti", 0, cbor_util_new_bytes(b15, 15));
        expect_refused(m, "other than task_end");
        m = golden_map();
        fake_map_set(entry_slot(m, 2), "cti", 0, cbor_util_new_bytes(b15, 15));
        expect_refused(m, "\"cti\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "exp", 0, cbor_util_new_uint(1764003600));
        expect_refused(m, "other than task_end has an \"exp\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 2), "exp", 0, cbor_util_new_uint(0));
        expect_refused(m, "\"exp\" is not a positive integer");
        m = golden_map();
        fake_map_set(entry_slot(m, 2), "exp", 0, cbor_util_new_text("1764003600"));
        expect_refused(m, "\"exp\" is not a positive integer");
        m = golden_map();
        fake_map_set(entry_slot(m, 2), "exp", 0, cbor_util_new_int(-1));
        expect_refused(m, "\"exp\" is not a positive integer");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "extra", 0, cbor_util_new_text("x"));
        expect_refused(m, "unknown key");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), NULL, 7, cbor_util_new_bytes(b15, 15));
        expect_refused(m, "unknown key");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "type", 0, cbor_util_new_text("revoke"));
        expect_refused(m, "\"type\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "type", 0, cbor_util_new_uint(0));
        expect_refused(m, "\"type\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "kid", 0, cbor_util_new_bytes(kid33, 33));
        expect_refused(m, "\"kid\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "kid", 0, cbor_util_new_bytes(kid35, 35));
        expect_refused(m, "\"kid\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "kid", 0, cbor_util_new_bytes(kid_bad, 34));
        expect_refused(m, "\"kid\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "spki_sha256", 0, cbor_util_new_bytes(b31, 31));
        expect_refused(m, "\"spki_sha256\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "time", 0, cbor_util_new_int(-5));
        expect_refused(m, "\"time\"");
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "time", 0, cbor_util_new_text("1764050000"));
        expect_refused(m, "\"time\"");

        static const char *const bad_texts[] = { "a\nb", "del\x7f", "c1\xc2\x9f", "nul" };
        for (size_t i = 0; i < ELEMENTSOF(bad_texts); i++) {
                cbor_item_t *t = i == 3 ? cbor_util_new_textn("n\0l", 3) : cbor_util_new_text(bad_texts[i]);
                m = golden_map();
                fake_map_set(entry_slot(m, 0), i % 2 ? "reason" : "name", 0, t);
                expect_refused(m, i % 2 ? "\"reason\"" : "\"name\"");
        }
        m = golden_map();
        fake_map_set(entry_slot(m, 0), "name", 0, cbor_util_new_text(""));
        expect_refused(m, "\"name\"");
        {
                char long_text[REVOCATION_TEXT_MAX + 2];
                memset(long_text, 'x', sizeof(long_text) - 1);
                long_text[REVOCATION_TEXT_MAX + 1] = 0;
                m = golden_map();
                fake_map_set(entry_slot(m, 1), "reason", 0, cbor_util_new_text(long_text));
                expect_refused(m, "\"reason\"");
                m = golden_map();
                fake_map_set(entry_slot(m, 1), "name", 0, cbor_util_new_text(long_text));
                expect_refused(m, "\"name\"");
        }

        /* The golden map itself, re-encoded, is still accepted (the edits above are the only change). */
        m = golden_map();
        {
                _cleanup_(revocation_list_done) RevocationList l = {};
                _cleanup_free_ uint8_t *buf = NULL;
                size_t size = 0;
                assert_int_equal(cbor_util_encode(m, &buf, &size), 0);
                assert_int_equal(revocation_list_decode(buf, size, &l, NULL), 0);
        }
        cbor_decref(&m);
}

/* An empty list by hand, to spell out encodings no encoder writes. */
#define HOST_HEX "38313139616635323838346564326263323862363261333733646331663835 62"
#define SEQ_KEY "63736571"
#define HOST_KEY "64686f7374"
#define TYPE_KEY "6474797065"
#define ISSUED_KEY "66697373756564"
#define ENTRIES_KEY "67656e7472696573"
#define TYPE_VALUE "6b7265766f636174696f6e73"

static void test_decode_refuses_encoding(void **state) {
        uint8_t buf[512];
        size_t n;
        _cleanup_(revocation_list_done) RevocationList l = {};

        /* The reference: accepted. */
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "80", NULL);
        assert_int_equal(revocation_list_decode(buf, n, &l, NULL), 0);
        assert_int_equal(l.issued, ISSUED);
        assert_int_equal(l.n_entries, 0);

        /* Not the shortest form: seq 0 as 18 00, a text length as 78 04, the map head as b8 05. */
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "1800", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "a5", "7803736571", "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE,
                  ISSUED_KEY, "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "b805", SEQ_KEY, "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        /* Keys out of order ("host" before "seq"), a key twice. */
        n = unhex(buf, sizeof(buf), "a5", HOST_KEY, "7820", HOST_HEX, SEQ_KEY, "00", TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "a6", SEQ_KEY, "00", SEQ_KEY, "01", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE,
                  ISSUED_KEY, "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        /* Indefinite lengths. */
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "9fff", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "bf", SEQ_KEY, "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "80ff", NULL);
        expect_bytes_refused(buf, n);
        /* Huge declared counts: the validator compares them with the bytes left, nothing is allocated. */
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "9a10000000", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "00", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "9bffffffffffffffff", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "bbffffffffffffffff", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "00", HOST_KEY, "7b7fffffffffffffff", NULL);
        expect_bytes_refused(buf, n);
        /* Not a map; a tag; null; a float. */
        n = unhex(buf, sizeof(buf), "80", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "d818a0", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "f6", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE, ISSUED_KEY,
                  "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        n = unhex(buf, sizeof(buf), "a5", SEQ_KEY, "f90000", HOST_KEY, "7820", HOST_HEX, TYPE_KEY, TYPE_VALUE,
                  ISSUED_KEY, "1a6925e090", ENTRIES_KEY, "80", NULL);
        expect_bytes_refused(buf, n);
        expect_bytes_refused(buf, 0);

        /* The golden payload: every truncation, trailing bytes, every byte flip never crashes and never
         * yields a list that does not re-encode to the input. */
        _cleanup_free_ uint8_t *payload = NULL;
        size_t size = 0;
        golden_payload(&payload, &size);
        for (size_t i = 0; i < size; i += test_exhaustive_step())
                expect_bytes_refused(payload, i);
        _cleanup_free_ uint8_t *longer = malloc(size + 1);
        assert_non_null(longer);
        memcpy(longer, payload, size);
        longer[size] = 0x00;
        expect_bytes_refused(longer, size + 1);
        for (size_t i = 0; i < size; i += test_exhaustive_step())
                for (unsigned bit = 0; bit < 8; bit++) {
                        _cleanup_(revocation_list_done) RevocationList x = {};
                        _cleanup_free_ uint8_t *again = NULL;
                        size_t again_size = 0;

                        longer[i] = payload[i] ^ (uint8_t) (1U << bit);
                        if (revocation_list_decode(longer, size, &x, NULL) == 0) {
                                assert_int_equal(revocation_list_encode(&x, &again, &again_size), 0);
                                assert_int_equal(again_size, size);
                                assert_memory_equal(again, longer, size);
                        }
                        longer[i] = payload[i];
                }
}

/* ------------------------------------------------------------------------------------------------ */
/* COSE_Sign */

static void test_cose_sign(void **state) {
        static const uint8_t payload[] = "rotate me";
        EVP_PKEY *keys2[] = { k.agent, k.host }, *swapped[] = { k.host, k.agent },
                 *keys3[] = { k.agent, k.host, k.child }, *wrong[] = { k.agent, k.other };
        const uint8_t *kids[] = { k.agent_kid, k.host_kid, k.child_kid, k.fresh_kid, k.fresh_kid };
        _cleanup_free_ uint8_t *msg = NULL, *msg3 = NULL, *out = NULL;
        size_t size = 0, size3 = 0, out_size = 0, failed = 99;
        const char *why = NULL;

        sign_multi(keys2, kids, 2, payload, sizeof(payload) - 1, &msg, &size);
        assert_true(size > 2 && msg[0] == 0xd8 && msg[1] == 0x62);

        assert_int_equal(cose_sign_check(msg, size, keys2, 2, &failed, &out, &out_size), 0);
        assert_int_equal(failed, 99);           /* untouched on success */
        assert_int_equal(out_size, sizeof(payload) - 1);
        assert_memory_equal(out, payload, out_size);
        assert_int_equal(cose_sign_check(msg, size, keys2, 2, NULL, NULL, NULL), 0);

        /* Wrong order, a wrong key: the first signature that does not verify is named. */
        assert_int_equal(cose_sign_check(msg, size, swapped, 2, &failed, NULL, NULL), -EKEYREJECTED);
        assert_int_equal(failed, 0);
        assert_int_equal(cose_sign_check(msg, size, wrong, 2, &failed, NULL, NULL), -EKEYREJECTED);
        assert_int_equal(failed, 1);
        /* Another number of signers than expected is a format error. */
        assert_int_equal(cose_sign_check(msg, size, keys3, 3, &failed, NULL, NULL), -EBADMSG);
        assert_int_equal(cose_sign_check(msg, size, keys2, 1, &failed, NULL, NULL), -EBADMSG);
        assert_int_equal(cose_sign_parse(msg, size, 3, NULL, NULL, &why), -EBADMSG);
        assert_contains(why, "number of signatures");

        /* A third signer. */
        sign_multi(keys3, kids, 3, payload, sizeof(payload) - 1, &msg3, &size3);
        assert_int_equal(cose_sign_check(msg3, size3, keys3, 3, &failed, NULL, NULL), 0);
        assert_int_equal(cose_sign_check(msg3, size3, keys2, 2, &failed, NULL, NULL), -EBADMSG);
        EVP_PKEY *keys3_bad[] = { k.agent, k.host, k.other };
        assert_int_equal(cose_sign_check(msg3, size3, keys3_bad, 3, &failed, NULL, NULL), -EKEYREJECTED);
        assert_int_equal(failed, 2);

        /* A tampered payload: the first signature fails. The payload "rotate me" sits before the
         * signatures. */
        _cleanup_free_ uint8_t *t = malloc(size);
        assert_non_null(t);
        memcpy(t, msg, size);
        uint8_t *p = memmem(t, size, "rotate me", 9);
        assert_non_null(p);
        p[0] = 'R';
        assert_int_equal(cose_sign_check(t, size, keys2, 2, &failed, NULL, NULL), -EKEYREJECTED);
        assert_int_equal(failed, 0);

        /* Every byte flip: never valid; every truncation and an extra byte: malformed. */
        for (size_t i = 0; i < size; i += test_exhaustive_step()) {
                memcpy(t, msg, size);
                t[i] ^= 0x01;
                int r = cose_sign_check(t, size, keys2, 2, &failed, NULL, NULL);
                assert_true(r == -EBADMSG || r == -EKEYREJECTED);
                assert_int_equal(cose_sign_check(msg, i, keys2, 2, &failed, NULL, NULL), -EBADMSG);
        }
        _cleanup_free_ uint8_t *longer = malloc(size + 1);
        assert_non_null(longer);
        memcpy(longer, msg, size);
        longer[size] = 0;
        assert_int_equal(cose_sign_check(longer, size + 1, keys2, 2, &failed, NULL, NULL), -EBADMSG);

        /* Bad arguments. */
        EVP_PKEY *none[] = { k.agent, NULL };
        assert_int_equal(cose_sign_check(msg, size, none, 2, &failed, NULL, NULL), -EINVAL);
        assert_int_equal(cose_sign_check(msg, size, keys2, 0, &failed, NULL, NULL), -EINVAL);
        assert_int_equal(cose_sign_check(msg, size, keys2, COSE_SIGN_SIGNERS_MAX + 1, &failed, NULL, NULL), -EINVAL);
        {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_EC_gen("P-384");
                EVP_PKEY *not_p256[] = { k.agent, p384 };
                assert_non_null(p384);
                assert_int_equal(cose_sign_check(msg, size, not_p256, 2, &failed, NULL, NULL), -EINVAL);
        }
        CoseSign *c = NULL;
        size_t sizes[5] = { 34, 34, 34, 34, 34 };
        assert_int_equal(cose_sign_prepare(kids, sizes, 0, payload, 9, &c), -EINVAL);
        assert_int_equal(cose_sign_prepare(kids, sizes, COSE_SIGN_SIGNERS_MAX + 1, payload, 9, &c), -EINVAL);
        sizes[1] = 0;
        assert_int_equal(cose_sign_prepare(kids, sizes, 2, payload, 9, &c), -EINVAL);
        sizes[1] = COSE_KID_MAX + 1;
        assert_int_equal(cose_sign_prepare(kids, sizes, 2, payload, 9, &c), -EINVAL);
        sizes[1] = 34;
        assert_int_equal(cose_sign_prepare(kids, sizes, 2, NULL, 9, &c), -EINVAL);
        assert_null(c);
        assert_int_equal(cose_sign_prepare(kids, sizes, COSE_SIGN_SIGNERS_MAX, payload, 9, &c), 0);
        assert_int_equal(cose_sign_n_signers(c), COSE_SIGN_SIGNERS_MAX);
        c = cose_sign_free(c);
        assert_int_equal(cose_sign_n_signers(NULL), 0);
        assert_null(cose_sign_digest(NULL, 0));
}

/* COSE_Sign structures outside the profile, built by hand around a valid signer. */
static void test_cose_sign_profile(void **state) {
        EVP_PKEY *keys[] = { k.agent };
        const uint8_t *kids[] = { k.agent_kid };
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0, failed = 0;
        const char *why = NULL;

        sign_multi(keys, kids, 1, (const uint8_t *) "x", 1, &msg, &size);
        assert_int_equal(cose_sign_check(msg, size, keys, 1, &failed, NULL, NULL), 0);

        /* The message is d8 62 84 40 a0 41 78 81 83 <protected> a0 5840 <sig>. */
        assert_true(size > 8);
        assert_int_equal(msg[2], 0x84);
        assert_int_equal(msg[3], 0x40);
        assert_int_equal(msg[4], 0xa0);

        struct {
                const char *what;
                size_t at, remove;              /* SIZE_MAX: everything from at */
                const char *insert;             /* hex */
                const char *reason;
        } cases[] = {
                { "tag 18 instead of 98", 0, 2, "d2", "tagged 98" },
                { "tag 98 in a longer form", 0, 2, "d90062", "tagged 98" },
                { "untagged", 0, 2, "", "tagged 98" },
                { "body protected not empty", 3, 1, "41a0", "body protected" },
                { "body unprotected not empty", 4, 1, "a10100", "body unprotected" },
                { "payload detached (null)", 5, 2, "f6", "null" },
                { "array of five", 2, 1, "85", "" },
                { "signatures empty", 7, SIZE_MAX, "80", "non-empty array" },
                { "signatures not an array", 7, SIZE_MAX, "a0", "non-empty array" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t insert[8], *t = malloc(size + 8);
                size_t n_insert = unhex(insert, sizeof(insert), cases[i].insert, NULL), n = 0;

                assert_non_null(t);
                if (cases[i].remove == SIZE_MAX)
                        cases[i].remove = size - cases[i].at;
                memcpy(t, msg, cases[i].at);
                n = cases[i].at;
                memcpy(t + n, insert, n_insert);
                n += n_insert;
                memcpy(t + n, msg + cases[i].at + cases[i].remove, size - cases[i].at - cases[i].remove);
                n += size - cases[i].at - cases[i].remove;
                why = NULL;
                int r = cose_sign_parse(t, n, 1, NULL, NULL, &why);
                if (r != -EBADMSG)
                        fail_msg("%s: %d", cases[i].what, r);
                assert_contains(why, cases[i].reason);
                assert_int_equal(cose_sign_check(t, n, keys, 1, &failed, NULL, NULL), -EBADMSG);
                free(t);
        }

        /* A signer whose header carries label 15, or an unprotected parameter. */
        {
                _cleanup_cbor_ cbor_item_t *tag = NULL, *body = NULL;
                _cleanup_free_ uint8_t *prot = NULL, *bad = NULL;
                size_t prot_size = 0, bad_size = 0;
                cbor_item_t *p = cbor_util_new_map(), *claims = cbor_util_new_map(), *sig = cbor_util_new_array(),
                            *sigs = cbor_util_new_array(), *unprot = cbor_util_new_map();
                uint8_t rs[64];

                memset(rs, 0x11, sizeof(rs));
                assert_int_equal(cbor_util_map_put_int(claims, 6, cbor_util_new_uint(T0)), 0);
                assert_int_equal(cbor_util_map_put_int(p, 1, cbor_util_new_int(-7)), 0);
                assert_int_equal(cbor_util_map_put_int(p, 4, cbor_util_new_bytes(k.agent_kid, 34)), 0);
                assert_int_equal(cbor_util_map_put_int(p, 15, claims), 0);
                assert_int_equal(cbor_util_encode(p, &prot, &prot_size), 0);
                cbor_decref(&p);
                assert_int_equal(cbor_util_array_push(sig, cbor_util_new_bytes(prot, prot_size)), 0);
                assert_int_equal(cbor_util_array_push(sig, cbor_util_new_map()), 0);
                assert_int_equal(cbor_util_array_push(sig, cbor_util_new_bytes(rs, 64)), 0);
                assert_int_equal(cbor_util_array_push(sigs, sig), 0);
                body = cbor_util_new_array();
                assert_int_equal(cbor_util_array_push(body, cbor_util_new_bytes(NULL, 0)), 0);
                assert_int_equal(cbor_util_array_push(body, unprot), 0);
                assert_int_equal(cbor_util_array_push(body, cbor_util_new_bytes("x", 1)), 0);
                assert_int_equal(cbor_util_array_push(body, sigs), 0);
                tag = cbor_new_tag(98);
                cbor_tag_set_item(tag, body);
                assert_int_equal(cbor_util_encode(tag, &bad, &bad_size), 0);
                assert_int_equal(cose_sign_parse(bad, bad_size, 1, NULL, NULL, &why), -EBADMSG);
                assert_contains(why, "label 15");
        }
}

/* COSE_Sign1 with a payload beyond COSE_PAYLOAD_MAX: only the _large/_max variants. */
static void test_cose_sign1_large(void **state) {
        size_t n = COSE_PAYLOAD_MAX + 100;
        _cleanup_free_ uint8_t *payload = malloc(n), *msg = NULL;
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        CoseSign1 *c = NULL;
        size_t size = 0;
        const char *why = NULL;

        assert_non_null(payload);
        memset(payload, 0x42, n);
        assert_int_equal(cose_sign1_prepare(k.host_kid, 34, NULL, payload, n, &c), -EINVAL);
        assert_int_equal(cose_sign1_prepare_large(k.host_kid, 34, payload, COSE_LARGE_PAYLOAD_MAX + 1, &c), -EINVAL);
        sign_payload(k.host, payload, n, &msg, &size);
        assert_int_equal(cose_sign1_parse(msg, size, &p, &why), -EBADMSG);
        assert_int_equal(cose_sign1_parse_max(msg, size, COSE_LARGE_PAYLOAD_MAX + 1, &p, &why), -EINVAL);
        assert_int_equal(cose_sign1_parse_max(msg, size, n - 1, &p, &why), -EBADMSG);
        assert_int_equal(cose_sign1_parse_max(msg, size, COSE_LARGE_PAYLOAD_MAX, &p, &why), 0);
        assert_int_equal(p.payload_size, n);
        assert_int_equal(cose_sign1_verify_parsed(&p, k.host), 0);
        assert_int_equal(cose_sign1_verify_parsed(&p, k.other), -EKEYREJECTED);
}

/* ------------------------------------------------------------------------------------------------ */
/* Rotation statements */

static void test_rotation_format(void **state) {
        RotationStatement s;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        uint8_t bad_kid[34];

        kid_fill(bad_kid, 0x22);
        bad_kid[0] = 0x01;

        s = golden_rotation();
        s.name = "";
        assert_int_equal(rotation_statement_payload(&s, &buf, &size), -EINVAL);
        s = golden_rotation();
        s.uri = NULL;
        assert_int_equal(rotation_statement_payload(&s, &buf, &size), -EINVAL);
        s = golden_rotation();
        s.reason = "line\nbreak";
        assert_int_equal(rotation_statement_payload(&s, &buf, &size), -EINVAL);
        s = golden_rotation();
        s.old_kid = bad_kid;
        assert_int_equal(rotation_statement_payload(&s, &buf, &size), -EINVAL);
        s = golden_rotation();
        s.new_spki_sha256 = NULL;
        assert_int_equal(rotation_statement_payload(&s, &buf, &size), -EINVAL);
        assert_null(buf);

        s = golden_rotation();
        s.reason = NULL;                /* = empty */
        assert_int_equal(rotation_statement_payload(&s, &buf, &size), 0);

        /* Decoder refusals, from the payload as a map. */
        static const CborLimits limits = { .max_size = 4096, .max_depth = 1, .max_items = 32,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        static const char *const keys[] = { "type", "name", "uri", "old_kid", "new_kid", "new_spki_sha256",
                                             "reason", "time" };
        for (size_t i = 0; i <= ELEMENTSOF(keys) + 3; i++) {
                _cleanup_(rotation_statement_parsed_done) RotationStatementParsed parsed = {};
                _cleanup_free_ uint8_t *edited = NULL;
                size_t edited_size = 0;
                cbor_item_t *m = NULL;
                const char *why = NULL;

                assert_int_equal(cbor_util_decode(buf, size, &limits, &m, NULL), 0);
                if (i < ELEMENTSOF(keys))
                        fake_map_delete(&m, keys[i], 0);
                else if (i == ELEMENTSOF(keys))
                        fake_map_set(&m, "type", 0, cbor_util_new_text("destroy"));
                else if (i == ELEMENTSOF(keys) + 1)
                        fake_map_set(&m, "extra", 0, cbor_util_new_uint(0));
                else if (i == ELEMENTSOF(keys) + 2)
                        fake_map_set(&m, "new_kid", 0, cbor_util_new_bytes(bad_kid, 34));
                else
                        fake_map_set(&m, "name", 0, cbor_util_new_text("esc\x1b"));
                assert_int_equal(cbor_util_encode(m, &edited, &edited_size), 0);
                cbor_decref(&m);
                assert_int_equal(rotation_statement_decode(edited, edited_size, &parsed, &why), -EBADMSG);
                assert_non_null(why);
        }
        {
                _cleanup_(rotation_statement_parsed_done) RotationStatementParsed parsed = {};
                assert_int_equal(rotation_statement_decode(buf, size, &parsed, NULL), 0);
                assert_string_equal(parsed.reason, "");
                for (size_t i = 0; i < size; i++) {
                        RotationStatementParsed x = {};
                        assert_int_equal(rotation_statement_decode(buf, i, &x, NULL), -EBADMSG);
                }
        }
}

static AgentidVerdict *verify_rotation(const uint8_t *st, size_t size, const uint8_t *old_spki, size_t old_size,
                                       const uint8_t *host_spki, size_t host_size) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        AgentidVerdict *d = NULL;

        assert_non_null(v);
        assert_int_equal(agentid_verify_rotation(v, st, size, old_spki, old_size, host_spki, host_size, &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 3);
        assert_true((agentid_verdict_get_rotation(d) != NULL) == agentid_verdict_is_valid(d));
        assert_null(agentid_verdict_get_token(d));
        assert_null(agentid_verdict_get_claims(d));
        return d;
}

static void expect_rotation(const uint8_t *st, size_t size, AgentidReason expected) {
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_rotation(st, size, k.agent_spki, k.agent_spki_size,
                                                                             k.host_spki, k.host_spki_size);
        assert_reason(d, expected);
}

/* A statement with these fields, signed by the agent key and the host key. */
static void sign_statement(const RotationStatement *s, EVP_PKEY *old_key, EVP_PKEY *host_key, uint8_t **ret,
                           size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        EVP_PKEY *keys[] = { old_key, host_key };
        const uint8_t *kids[] = { s->old_kid, k.host_kid };

        assert_int_equal(rotation_statement_payload(s, &payload, &payload_size), 0);
        sign_multi(keys, kids, 2, payload, payload_size, ret, ret_size);
}

static void test_rotation_verify(void **state) {
        _cleanup_free_ uint8_t *st = NULL, *swapped = NULL, *three = NULL, *sign1 = NULL;
        size_t size = 0, swapped_size = 0, three_size = 0, sign1_size = 0;
        AgentidVerdict *d = NULL;

        make_rotation(k.agent, k.host, &st, &size);
        dump("seed-rotation", st, size);
        {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *v = verify_rotation(st, size, k.agent_spki,
                                                                                     k.agent_spki_size, k.host_spki,
                                                                                     k.host_spki_size);
                assert_reason(v, AGENTID_REASON_VALID);
                const AgentidRotation *r = agentid_verdict_get_rotation(v);
                assert_string_equal(r->name, "invoice-bot");
                assert_string_equal(r->uri, URI);
                assert_string_equal(r->reason, "scheduled");
                assert_int_equal(r->time, 1764080000);
                assert_memory_equal(r->old_kid, k.agent_kid, 34);
                assert_memory_equal(r->new_kid, k.fresh_kid, 34);
                /* What the caller then compares with the new key it is given. */
                assert_memory_equal(r->new_spki_sha256, k.fresh_sha, 32);
        }

        /* Wrong old key, wrong host key, keys swapped, signatures in the wrong order. */
        d = verify_rotation(st, size, k.other_spki, k.other_spki_size, k.host_spki, k.host_spki_size);
        assert_reason(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE);
        d = agentid_verdict_free(d);
        d = verify_rotation(st, size, k.agent_spki, k.agent_spki_size, k.other_spki, k.other_spki_size);
        assert_reason(d, AGENTID_REASON_ROTATION_HOST_SIGNATURE);
        d = agentid_verdict_free(d);
        d = verify_rotation(st, size, k.host_spki, k.host_spki_size, k.agent_spki, k.agent_spki_size);
        assert_reason(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE);
        d = agentid_verdict_free(d);
        {
                RotationStatement s = golden_rotation();
                s.old_kid = k.agent_kid;
                s.new_kid = k.fresh_kid;
                s.new_spki_sha256 = k.fresh_sha;
                sign_statement(&s, k.host, k.agent, &swapped, &swapped_size);
                expect_rotation(swapped, swapped_size, AGENTID_REASON_ROTATION_OLD_SIGNATURE);

                /* Three signers, or a COSE_Sign1: not a rotation statement. */
                _cleanup_free_ uint8_t *payload = NULL;
                size_t payload_size = 0;
                EVP_PKEY *keys[] = { k.agent, k.host, k.child };
                const uint8_t *kids[] = { k.agent_kid, k.host_kid, k.child_kid };
                assert_int_equal(rotation_statement_payload(&s, &payload, &payload_size), 0);
                sign_multi(keys, kids, 3, payload, payload_size, &three, &three_size);
                expect_rotation(three, three_size, AGENTID_REASON_ROTATION_FORMAT);
                sign_payload(k.host, payload, payload_size, &sign1, &sign1_size);
                expect_rotation(sign1, sign1_size, AGENTID_REASON_ROTATION_FORMAT);

                /* Inconsistent statements, validly signed. */
                static const struct {
                        const char *name, *uri;
                        bool same_kid, same_spki;
                } bad[] = {
                        { "invoice-bot", "https://example.com/invoice-bot", false, false },
                        { "invoice-bot", "agentid://" HOST "/ledger-bot", false, false },
                        { "bot", "agentid://" HOST "/invoice-bot", false, false },
                        { "invoice-bot", URI, true, false },
                        { "invoice-bot", URI, false, true },
                };
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        _cleanup_free_ uint8_t *b = NULL;
                        size_t b_size = 0;
                        RotationStatement x = s;
                        x.name = bad[i].name;
                        x.uri = bad[i].uri;
                        if (bad[i].same_kid)
                                x.new_kid = x.old_kid;
                        if (bad[i].same_spki)
                                x.new_spki_sha256 = k.agent_sha;
                        sign_statement(&x, k.agent, k.host, &b, &b_size);
                        expect_rotation(b, b_size, AGENTID_REASON_ROTATION_FORMAT);
                }
        }

        /* A tampered byte anywhere: never valid. */
        _cleanup_free_ uint8_t *t = malloc(size);
        assert_non_null(t);
        for (size_t i = 0; i < size; i++) {
                memcpy(t, st, size);
                t[i] ^= 0x20;
                d = verify_rotation(t, size, k.agent_spki, k.agent_spki_size, k.host_spki, k.host_spki_size);
                assert_false(agentid_verdict_is_valid(d));
                d = agentid_verdict_free(d);
        }

        /* Oversized, empty. */
        _cleanup_free_ uint8_t *big = calloc(1, AGENTID_ROTATION_MAX + 1);
        assert_non_null(big);
        memcpy(big, st, size);
        expect_rotation(big, AGENTID_ROTATION_MAX + 1, AGENTID_REASON_ROTATION_FORMAT);
        expect_rotation(NULL, 0, AGENTID_REASON_ROTATION_FORMAT);

        /* Bad arguments. */
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        assert_int_equal(agentid_verify_rotation(NULL, st, size, k.agent_spki, k.agent_spki_size, k.host_spki,
                                                 k.host_spki_size, &d), -EINVAL);
        assert_int_equal(agentid_verify_rotation(v, st, size, NULL, 0, k.host_spki, k.host_spki_size, &d), -EINVAL);
        assert_int_equal(agentid_verify_rotation(v, st, size, k.agent_spki, k.agent_spki_size - 1, k.host_spki,
                                                 k.host_spki_size, &d), -EINVAL);
        assert_int_equal(agentid_verify_rotation(v, st, size, k.agent_spki, k.agent_spki_size, st, size, &d), -EINVAL);
        assert_null(d);
        assert_null(agentid_verdict_get_rotation(NULL));
}

/* ------------------------------------------------------------------------------------------------ */
/* Lists in the verifier */

static void test_add_revocations(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        _cleanup_free_ uint8_t *list = NULL, *older = NULL, *newer = NULL, *forged = NULL, *other = NULL,
                               *unsigned_newer = NULL;
        size_t size = 0, older_size = 0, newer_size = 0, forged_size = 0, other_size = 0, unsigned_newer_size = 0;
        RevocationEntry entries[3];
        const char *why = NULL;
        uint64_t seq = 0, issued = 0;
        size_t n = 0;

        for (size_t i = 0; i < 3; i++)
                entries[i] = golden_entry((RevocationType) i);
        entries[REVOCATION_TASK_END].exp = 1764003600;  /* as agentidd writes task_end entries now */
        assert_non_null(v);
        assert_null(agentid_verifier_revocations_info(v, &seq, &issued, &n));
        assert_null(agentid_verifier_revocations_info(NULL, NULL, NULL, NULL));

        signed_list(5, HOST, entries, 3, k.host, &list, &size);
        dump("seed-list", list, size);

        /* The wrong host key: refused, nothing added. */
        assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.other_spki, k.other_spki_size, 0, &why),
                         -EKEYREJECTED);
        assert_contains(why, "not signed by the host key");
        assert_null(agentid_verifier_revocations_info(v, &seq, &issued, &n));
        /* Rollback below min_seq. */
        assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.host_spki, k.host_spki_size, 6, &why), -ESTALE);
        /* Bad arguments and inputs. */
        assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.host_spki, 10, 0, &why), -EINVAL);
        assert_int_equal(agentid_verifier_add_revocations(NULL, list, size, NULL, 0, 0, &why), -EINVAL);
        assert_int_equal(agentid_verifier_add_revocations(v, list, AGENTID_REVOCATIONS_MAX + 1, NULL, 0, 0, &why), -EFBIG);
        assert_int_equal(agentid_verifier_add_revocations(v, list, size - 1, NULL, 0, 0, &why), -EBADMSG);
        assert_int_equal(agentid_verifier_add_revocations(v, list + 1, size - 1, NULL, 0, 0, &why), -EBADMSG);
        assert_contains(why, "tag");
        {
                /* A signed message (label 15) is not a list; a receipt payload is not either. */
                _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
                _cleanup_free_ uint8_t *msg = NULL, *payload = NULL;
                size_t msg_size = 0, payload_size = 0;
                uint8_t rs[64];
                const CoseClaims claims = { .iat = T0 };
                _cleanup_(revocation_list_done) RevocationList l = {};

                golden_list(&l);
                assert_int_equal(revocation_list_encode(&l, &payload, &payload_size), 0);
                assert_int_equal(cose_sign1_prepare(k.host_kid, 34, &claims, payload, payload_size, &c), 0);
                assert_int_equal(fake_sign_digest(k.host, cose_sign1_digest(c), rs), 0);
                assert_int_equal(cose_sign1_finish(c, rs, &msg, &msg_size), 0);
                assert_int_equal(agentid_verifier_add_revocations(v, msg, msg_size, k.host_spki, k.host_spki_size, 0,
                                                                  &why), -EBADMSG);
                assert_contains(why, "label 15");
                msg = mfree(msg);
                sign_payload(k.host, (const uint8_t *) "\xa1\x64type\x67" "destroy", 14, &msg, &msg_size);
                assert_int_equal(agentid_verifier_add_revocations(v, msg, msg_size, k.host_spki, k.host_spki_size, 0,
                                                                  &why), -EBADMSG);
        }
        assert_null(agentid_verifier_revocations_info(v, &seq, &issued, &n));

        /* Accepted. */
        why = NULL;
        assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.host_spki, k.host_spki_size, 5, &why), 0);
        assert_null(why);
        assert_string_equal(agentid_verifier_revocations_info(v, &seq, &issued, &n), HOST);
        assert_int_equal(seq, 5);
        assert_int_equal(issued, ISSUED);
        assert_int_equal(n, 3);

        /* The same host with a lower seq: refused; equal or higher: replaces. */
        signed_list(4, HOST, entries, 3, k.host, &older, &older_size);
        assert_int_equal(agentid_verifier_add_revocations(v, older, older_size, k.host_spki, k.host_spki_size, 0, &why),
                         -ESTALE);
        assert_contains(why, "same host");
        assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.host_spki, k.host_spki_size, 0, &why), 0);
        signed_list(9, HOST, entries, 1, k.host, &newer, &newer_size);
        assert_int_equal(agentid_verifier_add_revocations(v, newer, newer_size, k.host_spki, k.host_spki_size, 0, &why), 0);
        assert_string_equal(agentid_verifier_revocations_info(v, &seq, NULL, &n), HOST);
        assert_int_equal(seq, 9);
        assert_int_equal(n, 1);

        /* Another host's list is added next to it. */
        signed_list(1, OTHER_HOST, entries + 1, 1, k.other_host, &other, &other_size);
        assert_int_equal(agentid_verifier_add_revocations(v, other, other_size, k.other_host_spki,
                                                          k.other_host_spki_size, 0, &why), 0);
        assert_string_equal(agentid_verifier_revocations_info(v, &seq, NULL, &n), OTHER_HOST);
        assert_int_equal(seq, 1);

        /* An unchecked list of the same host with a higher seq and no entries does not replace the
         * checked one (it could be forged); one with a lower seq is not compared with anything either:
         * it is kept in addition, since it can only add refusals. */
        signed_list(20, HOST, NULL, 0, k.other, &forged, &forged_size);
        assert_int_equal(agentid_verifier_add_revocations(v, forged, forged_size, NULL, 0, 0, &why), 0);
        assert_int_equal(agentid_verifier_add_revocations(v, older, older_size, NULL, 0, 0, &why), 0);
        signed_list(21, HOST, entries + 2, 1, k.other, &unsigned_newer, &unsigned_newer_size);
        assert_int_equal(agentid_verifier_add_revocations(v, unsigned_newer, unsigned_newer_size, NULL, 0, 0, &why), 0);
        {
                /* Entry 0 (from the checked list of seq 9), entry 1 (the other host) and entry 2 (an
                 * unchecked list) all still refuse their keys; a message by the agent key shows it. */
                for (size_t i = 0; i < 3; i++) {
                        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                        _cleanup_free_ uint8_t *msg = NULL;
                        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
                        size_t msg_size = 0;
                        uint8_t rs[64];
                        const CoseClaims claims = { .iat = T0 };

                        assert_int_equal(cose_sign1_prepare(entries[i].kid, 34, &claims, (const uint8_t *) "m", 1, &c), 0);
                        assert_int_equal(fake_sign_digest(k.agent, cose_sign1_digest(c), rs), 0);
                        assert_int_equal(cose_sign1_finish(c, rs, &msg, &msg_size), 0);
                        assert_int_equal(agentid_verifier_set_now(v, T0 + 1), 0);
                        assert_int_equal(agentid_verify_message(v, msg, msg_size, k.agent_spki, k.agent_spki_size, NULL,
                                                                NULL, &d), 0);
                        assert_reason(d, AGENTID_REASON_REVOKED);
                        assert_contains(revoked_detail(d), "the message's kid");
                        assert_contains(revoked_detail(d), revocation_type_to_string(entries[i].type));
                }
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Which list replaces which (the host key decides, not the "host" a payload claims) */

static AgentidVerifier *verifier_now(void) {
        AgentidVerifier *v = agentid_verifier_new();
        assert_non_null(v);
        assert_int_equal(agentid_verifier_set_now(v, T0 + 10), 0);
        return v;
}

/* A list (seq, host, entries[0..n)) signed by signer, added to v checked with host_spki (NULL: not
 * checked). Return: what agentid_verifier_add_revocations() said. */
static int add_list(AgentidVerifier *v, uint64_t seq, const char *host, const RevocationEntry *entries, size_t n,
                    EVP_PKEY *signer, const uint8_t *host_spki, size_t host_spki_size, uint64_t min_seq,
                    const char **ret_error) {
        _cleanup_free_ uint8_t *list = NULL;
        size_t size = 0;

        signed_list(seq, host, entries, n, signer, &list, &size);
        return agentid_verifier_add_revocations(v, list, size, host_spki, host_spki_size, min_seq, ret_error);
}

/* A message signed by key, kid its TPM Name, verified with v: valid or refused as expected; the detail
 * of "revoked" (the last check) contains detail. */
static void expect_message(const AgentidVerifier *v, EVP_PKEY *key, const uint8_t *kid, const uint8_t *spki,
                           size_t spki_size, AgentidReason expected, const char *detail) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0;
        uint8_t rs[64];
        const CoseClaims claims = { .iat = T0 };

        assert_int_equal(cose_sign1_prepare(kid, 34, &claims, (const uint8_t *) "m", 1, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, &msg, &size), 0);
        assert_int_equal(agentid_verify_message(v, msg, size, spki, spki_size, NULL, NULL, &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 6);
        assert_reason(d, expected);
        if (detail)
                assert_contains(revoked_detail(d), detail);
}

static void expect_agent(const AgentidVerifier *v, AgentidReason expected, const char *detail) {
        expect_message(v, k.agent, k.agent_kid, k.agent_spki, k.agent_spki_size, expected, detail);
}

static void expect_child(const AgentidVerifier *v, AgentidReason expected, const char *detail) {
        expect_message(v, k.child, k.child_kid, k.child_spki, k.child_spki_size, expected, detail);
}

/* A list signed by another host's key that claims this host's host-id: it is that key's list, kept next
 * to this host's, never in its place (the review's first proof of concept). */
static void test_list_of_another_host_key(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_now();
        const RevocationEntry agent = entry_for(REVOCATION_DESTROY, k.agent_kid, k.agent_sha);
        const RevocationEntry child = entry_for(REVOCATION_DESTROY, k.child_kid, k.child_sha);
        const char *why = NULL;
        uint64_t seq = 0;
        size_t n = SIZE_MAX;

        assert_int_equal(add_list(v, 1, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 1)");

        /* Host B's key, "host": A, empty, seq 2^64 - 2: accepted as B's own list. A's entry stays. */
        assert_int_equal(add_list(v, UINT64_MAX - 1, HOST, NULL, 0, k.other_host, k.other_host_spki,
                                  k.other_host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 1)");

        /* A's next list is not stale against B's seq; it replaces A's own. A's older list is stale
         * against A's, and changes nothing. */
        assert_int_equal(add_list(v, 2, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 2)");
        assert_string_equal(agentid_verifier_revocations_info(v, &seq, NULL, &n), HOST);
        assert_int_equal(seq, 2);
        assert_int_equal(n, 1);
        why = NULL;
        assert_int_equal(add_list(v, 1, HOST, NULL, 0, k.host, k.host_spki, k.host_spki_size, 0, &why), -ESTALE);
        assert_contains(why, "same host key");
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 2)");

        /* B's key supersedes only B's list: a lower seq is stale against it, a higher one replaces it and
         * its entries refuse too (every list is consulted), A's list untouched. */
        assert_int_equal(add_list(v, 5, HOST, &child, 1, k.other_host, k.other_host_spki, k.other_host_spki_size, 0,
                                  &why), -ESTALE);
        expect_child(v, AGENTID_REASON_VALID, "against 2 lists");
        assert_int_equal(add_list(v, UINT64_MAX, HOST, &child, 1, k.other_host, k.other_host_spki,
                                  k.other_host_spki_size, 0, &why), 0);
        expect_child(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 18446744073709551615)");
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 2)");

        /* A's key claiming another host-id is another source too: A's list of HOST stays. */
        assert_int_equal(add_list(v, 3, OTHER_HOST, NULL, 0, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 2)");
        assert_string_equal(agentid_verifier_revocations_info(v, &seq, NULL, &n), OTHER_HOST);
        assert_int_equal(seq, 3);
        assert_int_equal(n, 0);
}

/* Lists added without a host key: kept in addition, compared with nothing, so they can neither remove
 * an entry nor make a genuine list stale (the review's second proof of concept); min_seq still
 * applies to them. */
static void test_unchecked_lists(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_now();
        const RevocationEntry agent = entry_for(REVOCATION_DESTROY, k.agent_kid, k.agent_sha);
        const RevocationEntry child = entry_for(REVOCATION_ROTATE, k.child_kid, k.child_sha);
        const char *why = NULL;

        /* An unchecked list claiming HOST with seq 2^64 - 2 first: A's real list is still taken. */
        assert_int_equal(add_list(v, UINT64_MAX - 1, HOST, NULL, 0, k.other, NULL, 0, 0, &why), 0);
        assert_int_equal(add_list(v, 3, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 3)");

        /* Between two of A's lists: A's next one is taken and replaces A's. */
        assert_int_equal(add_list(v, UINT64_MAX, HOST, NULL, 0, k.other, NULL, 0, 0, &why), 0);
        assert_int_equal(add_list(v, 4, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 4)");

        /* A lower seq than A's: not a rollback of anything, kept; its entry refuses, marked unchecked. */
        assert_int_equal(add_list(v, 1, HOST, &child, 1, k.other, NULL, 0, 0, &why), 0);
        expect_child(v, AGENTID_REASON_REVOKED, "(list of host " HOST ", seq 1, signature not checked)");

        /* A's next list drops the agent's entry (replacing A's list); the unchecked entry stays. */
        assert_int_equal(add_list(v, 5, HOST, NULL, 0, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_VALID, "against 4 lists (1 entries)");
        expect_child(v, AGENTID_REASON_REVOKED, "signature not checked");

        /* min_seq is the caller's own request: it applies to unchecked lists too. */
        why = NULL;
        assert_int_equal(add_list(v, 6, HOST, &agent, 1, k.other, NULL, 0, 7, &why), -ESTALE);
        assert_contains(why, "minimum");
        expect_agent(v, AGENTID_REASON_VALID, "against 4 lists");
        /* An unchecked list of any host adds refusals. */
        assert_int_equal(add_list(v, 6, OTHER_HOST, &agent, 1, k.other, NULL, 0, 6, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "(list of host " OTHER_HOST ", seq 6, signature not checked)");
}

/* The same host key and host: an equal or higher seq replaces, a lower one is refused. */
static void test_same_key_replaces(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_now();
        const RevocationEntry agent = entry_for(REVOCATION_DESTROY, k.agent_kid, k.agent_sha);
        const RevocationEntry child = entry_for(REVOCATION_DESTROY, k.child_kid, k.child_sha);
        const char *why = NULL;
        uint64_t seq = 0;
        size_t n = SIZE_MAX;

        assert_int_equal(add_list(v, 5, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "seq 5)");
        expect_child(v, AGENTID_REASON_VALID, "against 1 list (1 entries)");

        /* Equal seq: replaces (the agent's entry is gone, the child's is there). */
        assert_int_equal(add_list(v, 5, HOST, &child, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_VALID, "against 1 list (1 entries)");
        expect_child(v, AGENTID_REASON_REVOKED, "seq 5)");

        /* Higher: replaces. */
        assert_int_equal(add_list(v, 9, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_agent(v, AGENTID_REASON_REVOKED, "seq 9)");
        expect_child(v, AGENTID_REASON_VALID, "against 1 list (1 entries)");

        /* Lower: -ESTALE, nothing changes. */
        why = NULL;
        assert_int_equal(add_list(v, 8, HOST, &child, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), -ESTALE);
        assert_contains(why, "same host");
        expect_agent(v, AGENTID_REASON_REVOKED, "seq 9)");
        expect_child(v, AGENTID_REASON_VALID, "against 1 list (1 entries)");
        assert_string_equal(agentid_verifier_revocations_info(v, &seq, NULL, &n), HOST);
        assert_int_equal(seq, 9);
        assert_int_equal(n, 1);
}

/* At most AGENTID_REVOCATION_SETS_MAX lists: -E2BIG for one more, replacements still taken, and the
 * same checked list added over and over is one list. */
static void test_list_limit(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_now(), *w = verifier_now();
        _cleanup_free_ uint8_t *unchecked = NULL, *checked = NULL;
        size_t unchecked_size = 0, checked_size = 0;
        const RevocationEntry agent = entry_for(REVOCATION_DESTROY, k.agent_kid, k.agent_sha);
        const char *why = NULL;

        assert_int_equal(AGENTID_REVOCATION_SETS_MAX, 64);
        assert_int_equal(add_list(v, 1, HOST, NULL, 0, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        signed_list(1, HOST, &agent, 1, k.other, &unchecked, &unchecked_size);
        for (size_t i = 1; i < AGENTID_REVOCATION_SETS_MAX; i++)
                assert_int_equal(agentid_verifier_add_revocations(v, unchecked, unchecked_size, NULL, 0, 0, &why), 0);
        expect_child(v, AGENTID_REASON_VALID, "against 64 lists (63 entries)");

        /* Full: another unchecked list, or a checked one of another source, is refused. */
        why = NULL;
        assert_int_equal(agentid_verifier_add_revocations(v, unchecked, unchecked_size, NULL, 0, 0, &why), -E2BIG);
        assert_contains(why, "64 revocation lists");
        assert_int_equal(add_list(v, 1, OTHER_HOST, NULL, 0, k.other_host, k.other_host_spki, k.other_host_spki_size,
                                  0, &why), -E2BIG);
        assert_int_equal(add_list(v, 1, OTHER_HOST, NULL, 0, k.host, k.host_spki, k.host_spki_size, 0, &why), -E2BIG);
        expect_child(v, AGENTID_REASON_VALID, "against 64 lists (63 entries)");
        /* A replacement adds no list: still taken; a rollback is still -ESTALE. */
        assert_int_equal(add_list(v, 2, HOST, &agent, 1, k.host, k.host_spki, k.host_spki_size, 0, &why), 0);
        expect_child(v, AGENTID_REASON_VALID, "against 64 lists (64 entries)");
        assert_int_equal(add_list(v, 1, HOST, NULL, 0, k.host, k.host_spki, k.host_spki_size, 0, &why), -ESTALE);
        expect_agent(v, AGENTID_REASON_REVOKED, "seq 2)");

        /* The same checked list in a loop: it replaces itself, one list. */
        signed_list(7, HOST, &agent, 1, k.host, &checked, &checked_size);
        for (size_t i = 0; i < 4 * AGENTID_REVOCATION_SETS_MAX; i++)
                assert_int_equal(agentid_verifier_add_revocations(w, checked, checked_size, k.host_spki,
                                                                  k.host_spki_size, 0, &why), 0);
        expect_child(w, AGENTID_REASON_VALID, "against 1 list (1 entries)");
}

/* Rotation verdicts with lists: "revoked" last, on the new key only. */
static void test_rotation_revoked(void **state) {
        _cleanup_free_ uint8_t *st = NULL;
        size_t size = 0;

        make_rotation(k.agent, k.host, &st, &size);
        const struct {
                RevocationEntry e[2];
                size_t n;
                AgentidReason expect;
                const char *detail;
        } cases[] = {
                /* The old key, as the rotation itself lists it: valid. */
                { { entry_for(REVOCATION_ROTATE, k.agent_kid, k.agent_sha) }, 1, AGENTID_REASON_VALID,
                  "not revoked: the SPKI SHA-256 and 1 kid checked against 1 list (1 entries)" },
                /* The new key, by kid, by SPKI hash, or next to the old key: revoked. */
                { { entry_for(REVOCATION_DESTROY, k.fresh_kid, NULL) }, 1, AGENTID_REASON_REVOKED,
                  "the new key's kid 000b9999" },
                { { entry_for(REVOCATION_ROTATE, NULL, k.fresh_sha) }, 1, AGENTID_REASON_REVOKED,
                  "the new key (SPKI SHA-256)" },
                { { entry_for(REVOCATION_ROTATE, k.agent_kid, k.agent_sha),
                    entry_for(REVOCATION_DESTROY, k.fresh_kid, k.fresh_sha) }, 2, AGENTID_REASON_REVOKED,
                  "is revoked: destroy" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(cases[i].e, cases[i].n);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;

                assert_int_equal(agentid_verify_rotation(v, st, size, k.agent_spki, k.agent_spki_size, k.host_spki,
                                                         k.host_spki_size, &d), 0);
                assert_int_equal(agentid_verdict_n_checks(d), 4);
                assert_reason(d, cases[i].expect);
                assert_contains(revoked_detail(d), cases[i].detail);
                assert_true((agentid_verdict_get_rotation(d) != NULL) == (cases[i].expect == AGENTID_REASON_VALID));
        }

        /* Nothing known of the new key: "not checked", after the check that failed. */
        const RevocationEntry fresh = entry_for(REVOCATION_DESTROY, k.fresh_kid, k.fresh_sha);
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&fresh, 1);
        AgentidVerdict *d = NULL;
        assert_int_equal(agentid_verify_rotation(v, st, size, k.other_spki, k.other_spki_size, k.host_spki,
                                                 k.host_spki_size, &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 4);
        assert_reason(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE);
        assert_string_equal(revoked_detail(d), "not checked: signatures not verified");
        d = agentid_verdict_free(d);
        assert_int_equal(agentid_verify_rotation(v, st, size - 1, k.agent_spki, k.agent_spki_size, k.host_spki,
                                                 k.host_spki_size, &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 4);
        assert_reason(d, AGENTID_REASON_ROTATION_FORMAT);
        assert_string_equal(revoked_detail(d), "not checked: statement malformed");
        d = agentid_verdict_free(d);

        /* Without lists: three checks, as before. */
        _cleanup_(agentid_verifier_freep) AgentidVerifier *none = verifier_with(NULL, 0);
        assert_int_equal(agentid_verify_rotation(none, st, size, k.agent_spki, k.agent_spki_size, k.host_spki,
                                                 k.host_spki_size, &d), 0);
        assert_int_equal(agentid_verdict_n_checks(d), 3);
        assert_reason(d, AGENTID_REASON_VALID);
        agentid_verdict_free(d);
}

/* Evidence: the certified key's SPKI hash or TPM Name on a list makes it invalid, "revoked" last. */
static void test_evidence_revoked(void **state) {
        _cleanup_free_ uint8_t *ev = NULL, *ak = NULL, *pev = NULL;
        size_t ev_size = 0, ak_size = 0, pev_size = 0;
        uint8_t kid[34], spki_sha[32];
        FakeSpec spec, pspec;

        fake_spec_default(&spec, false, k.ak, k.agent);
        assert_int_equal(fake_evidence_build(&spec, &ev, &ev_size), 0);
        fake_spec_default(&pspec, true, k.ak, k.host);
        assert_int_equal(fake_evidence_build(&pspec, &pev, &pev_size), 0);
        assert_int_equal(fake_ak_public_bytes(k.ak, &ak, &ak_size), 0);

        /* Without a list: 27 checks, valid; the certified key's names. */
        {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(NULL, 0);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
                assert_int_equal(agentid_verify_evidence(v, ev, ev_size, spec.nonce, spec.nonce_size, &d), 0);
                assert_reason(d, AGENTID_REASON_VALID);
                assert_int_equal(agentid_verdict_n_checks(d), 27);
                memcpy(kid, agentid_verdict_get_claims(d)->kid, 34);
                memcpy(spki_sha, agentid_verdict_get_claims(d)->spki_sha256, 32);
                assert_memory_equal(spki_sha, k.agent_sha, 32);
        }

        struct {
                RevocationEntry e;
                AgentidReason expect;
                const char *detail;
        } cases[] = {
                { entry_for(REVOCATION_DESTROY, NULL, NULL), AGENTID_REASON_VALID, "not revoked" },
                { entry_for(REVOCATION_DESTROY, NULL, spki_sha), AGENTID_REASON_REVOKED,
                  "the certified agent key (SPKI SHA-256)" },
                { entry_for(REVOCATION_ROTATE, kid, NULL), AGENTID_REASON_REVOKED, "the agent key's TPM Name" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&cases[i].e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL, *p = NULL;

                assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
                assert_int_equal(agentid_verify_evidence(v, ev, ev_size, spec.nonce, spec.nonce_size, &d), 0);
                assert_int_equal(agentid_verdict_n_checks(d), 28);
                assert_reason(d, cases[i].expect);
                assert_contains(revoked_detail(d), cases[i].detail);
                assert_true((agentid_verdict_get_claims(d) != NULL) == (cases[i].expect == AGENTID_REASON_VALID));
                if (cases[i].expect == AGENTID_REASON_REVOKED) {
                        assert_contains(revoked_detail(d), cases[i].e.type == REVOCATION_DESTROY ?
                                                           "destroy \"invoice-bot\" at 1764050000, reason \"retired\"" :
                                                           "rotate \"ledger-bot\" at 1764060000, reason \"scheduled\"");
                        assert_contains(revoked_detail(d), "list of host " HOST ", seq 1");
                }

                /* Platform evidence has the check too; its host key is not on the list. */
                assert_int_equal(agentid_verify_platform(v, pev, pev_size, pspec.nonce, pspec.nonce_size, &p), 0);
                assert_int_equal(agentid_verdict_n_checks(p), 19);
                assert_reason(p, AGENTID_REASON_VALID);
        }

        /* Evidence that fails elsewhere still reports a revoked key; malformed evidence: not checked. */
        {
                RevocationEntry e = entry_for(REVOCATION_DESTROY, kid, NULL);
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL, *m = NULL;
                uint8_t nonce[32] = {};
                AgentidReason r;
                bool ok;
                const char *detail;

                assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
                assert_int_equal(agentid_verify_evidence(v, ev, ev_size, nonce, sizeof(nonce), &d), 0);
                assert_reason(d, AGENTID_REASON_CERTIFY_NONCE);
                assert_int_equal(agentid_verdict_get_check(d, 27, &r, NULL, &ok, &detail), 0);
                assert_int_equal(r, AGENTID_REASON_REVOKED);
                assert_false(ok);
                assert_contains(detail, "is revoked");

                assert_int_equal(agentid_verify_evidence(v, ev, 10, spec.nonce, spec.nonce_size, &m), 0);
                assert_reason(m, AGENTID_REASON_FORMAT);
                assert_contains(revoked_detail(m), "not checked");
        }
}

/* A token by key with kid, claims c. */
static void sign_token(EVP_PKEY *key, const uint8_t *kid, const TokenClaims *c, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *s = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        uint8_t rs[64];

        assert_int_equal(token_claims_encode(c, &payload, &payload_size), 0);
        assert_int_equal(cose_sign1_prepare(kid, 34, NULL, payload, payload_size, &s), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(s), rs), 0);
        assert_int_equal(cose_sign1_finish(s, rs, ret, ret_size), 0);
}

static AgentidVerdict *verify_token_with(const AgentidVerifier *v, const uint8_t *t, size_t n, const uint8_t *spki,
                                         size_t spki_size, const uint8_t *kid) {
        AgentidVerdict *d = NULL;
        assert_int_equal(agentid_verify_token(v, t, n, spki, spki_size, kid, "bank-api", &d), 0);
        return d;
}

static void test_token_revoked(void **state) {
        static const uint8_t cti_root[16] = { 1 }, cti_child[16] = { 2 };
        _cleanup_free_ uint8_t *token = NULL;
        size_t size = 0;
        TokenHop hops[] = { { .iss = "agentid://" HOST "/invoice-bot" } };
        TokenClaims c = {
                .iss = "agentid://" HOST "/ledger-bot",
                .aud = "bank-api",
                .exp = T0 + 3600,
                .nbf = T0,
                .iat = T0,
                .task_id = "task-7f3a",
                .owner = "ledger-team@example.com",
                .hops = hops,
                .n_hops = 1,
        };

        memcpy(c.cti, cti_child, 16);
        memcpy(hops[0].cti, cti_root, 16);
        memcpy(hops[0].kid, k.agent_kid, 34);
        sign_token(k.child, k.child_kid, &c, &token, &size);

        /* Without a list: 8 checks, valid. */
        {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(NULL, 0);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_with(v, token, size, k.child_spki,
                                                                                       k.child_spki_size, k.child_kid);
                assert_int_equal(agentid_verdict_n_checks(d), 8);
                assert_reason(d, AGENTID_REASON_VALID);
        }

        uint8_t other_kid[34], expected[34];
        kid_fill(other_kid, 0x31);
        kid_fill(expected, 0x32);
        struct {
                const uint8_t *t;
                size_t n;
                const uint8_t *expected_kid;
                RevocationEntry e;
                AgentidReason expect;
                const char *detail;
        } cases[] = {
                { token, size, k.child_kid, entry_for(REVOCATION_DESTROY, other_kid, NULL), AGENTID_REASON_VALID,
                  "not revoked: the SPKI SHA-256 and 3 kids" },
                { token, size, NULL, entry_for(REVOCATION_DESTROY, NULL, k.child_sha), AGENTID_REASON_REVOKED,
                  "the key the token verified with (SPKI SHA-256)" },
                { token, size, NULL, entry_for(REVOCATION_ROTATE, k.child_kid, NULL), AGENTID_REASON_REVOKED,
                  "the token's kid" },
                { token, size, NULL, entry_for(REVOCATION_DESTROY, k.agent_kid, NULL), AGENTID_REASON_REVOKED,
                  "the kid of hop 0" },
                /* Tokens carrying a task credential (its signer, the task key, its cti as task_end):
                 * tests/unit/test-task-credential.c, test_revoked. */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&cases[i].e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_with(v, cases[i].t, cases[i].n,
                                                                                       k.child_spki, k.child_spki_size,
                                                                                       cases[i].expected_kid);
                assert_int_equal(agentid_verdict_n_checks(d), 9);
                assert_reason(d, cases[i].expect);
                assert_contains(revoked_detail(d), cases[i].detail);
                assert_true((agentid_verdict_get_token(d) != NULL) == (cases[i].expect == AGENTID_REASON_VALID));
        }

        /* An expected kid that is revoked. */
        {
                RevocationEntry e = entry_for(REVOCATION_DESTROY, expected, NULL);
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_with(v, token, size, k.child_spki,
                                                                                       k.child_spki_size, expected);
                /* token_kid fails first (the kid is not the expected one), and "revoked" too. */
                assert_reason(d, AGENTID_REASON_TOKEN_KID);
                assert_contains(revoked_detail(d), "the expected kid");
        }
        /* A signature that does not verify: "revoked" is not checked (nothing is known of the key). */
        {
                RevocationEntry e = entry_for(REVOCATION_DESTROY, NULL, NULL);
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_token_with(v, token, size, k.other_spki,
                                                                                       k.other_spki_size, NULL);
                assert_reason(d, AGENTID_REASON_TOKEN_SIGNATURE);
                assert_contains(revoked_detail(d), "not checked: signature not verified");
        }
}

static void test_message_revoked(void **state) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *msg = NULL;
        size_t size = 0;
        uint8_t rs[64], other_kid[34];
        const CoseClaims claims = { .iat = T0, .aud = "bank-api" };

        assert_int_equal(cose_sign1_prepare(k.agent_kid, 34, &claims, (const uint8_t *) "hello", 5, &c), 0);
        assert_int_equal(fake_sign_digest(k.agent, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, &msg, &size), 0);
        kid_fill(other_kid, 0x31);

        struct {
                RevocationEntry e;
                const uint8_t *expected_kid;
                AgentidReason expect;
                const char *detail;
        } cases[] = {
                { entry_for(REVOCATION_DESTROY, other_kid, NULL), k.agent_kid, AGENTID_REASON_VALID, "2 kids" },
                { entry_for(REVOCATION_DESTROY, NULL, k.agent_sha), NULL, AGENTID_REASON_REVOKED,
                  "the key the message verified with" },
                { entry_for(REVOCATION_ROTATE, k.agent_kid, NULL), NULL, AGENTID_REASON_REVOKED, "the message's kid" },
                { entry_for(REVOCATION_ROTATE, k.agent_kid, NULL), k.agent_kid, AGENTID_REASON_REVOKED, "the expected kid" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&cases[i].e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                assert_int_equal(agentid_verify_message(v, msg, size, k.agent_spki, k.agent_spki_size,
                                                        cases[i].expected_kid, "bank-api", &d), 0);
                assert_int_equal(agentid_verdict_n_checks(d), 6);
                assert_reason(d, cases[i].expect);
                assert_contains(revoked_detail(d), cases[i].detail);
                assert_true((agentid_verdict_get_message(d) != NULL) == (cases[i].expect == AGENTID_REASON_VALID));
        }
        {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(NULL, 0);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                assert_int_equal(agentid_verify_message(v, msg, size, k.agent_spki, k.agent_spki_size, NULL, NULL, &d), 0);
                assert_int_equal(agentid_verdict_n_checks(d), 5);
                assert_reason(d, AGENTID_REASON_VALID);
        }
        {
                /* The same key given in compressed form (59 bytes of DER) hashes like the entry, which
                 * names the uncompressed form: the revocation is not dodged by re-encoding the key. */
                RevocationEntry e = entry_for(REVOCATION_DESTROY, NULL, k.agent_sha);
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(&e, 1);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *copy = EVP_PKEY_dup(k.agent);
                _cleanup_free_ uint8_t *compressed = NULL;
                size_t compressed_size = 0;
                assert_non_null(copy);
                assert_int_equal(EVP_PKEY_set_utf8_string_param(copy, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                                OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED), 1);
                spki_of(copy, &compressed, &compressed_size, NULL);
                assert_int_equal(compressed_size, 59);
                assert_int_equal(agentid_verify_message(v, msg, size, compressed, compressed_size, NULL, NULL, &d), 0);
                assert_reason(d, AGENTID_REASON_REVOKED);
        }
}

/* 100,000 entries: added, indexed, found (the last entry, by SPKI hash and by kid) quickly. */
static void large_list_body(void **state) {
        _cleanup_(revocation_list_done) RevocationList l = { .host = HOST, .issued = ISSUED };
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(NULL, 0);
        _cleanup_free_ uint8_t *list = NULL, *msg = NULL;
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        size_t size = 0, msg_size = 0, n = 0;
        struct timespec a, b;
        const char *why = NULL;
        uint8_t rs[64];
        const CoseClaims claims = { .iat = T0 };

        l.entries = calloc(REVOCATION_ENTRIES_MAX, sizeof(RevocationEntry));
        assert_non_null(l.entries);
        for (size_t i = 0; i < REVOCATION_ENTRIES_MAX; i++) {
                RevocationEntry *e = &l.entries[i];
                char name[16];

                *e = golden_entry(i % 3 == 2 ? REVOCATION_TASK_END : i % 3 ? REVOCATION_ROTATE : REVOCATION_DESTROY);
                snprintf(name, sizeof(name), "key-%zu", i);
                e->name = strdup(name);
                e->reason = strdup("");
                assert_true(e->name && e->reason);
                /* Distinct kids, SPKI hashes and ctis, in an order unlike their sorted one. */
                uint32_t x = (uint32_t) (i * 2654435761U);
                memcpy(e->kid + 2, &x, sizeof(x));
                memcpy(e->spki_sha256 + 7, &x, sizeof(x));
                memcpy(e->cti + 3, &x, sizeof(x));
                l.n_entries++;
        }
        memcpy(l.entries[REVOCATION_ENTRIES_MAX - 1].spki_sha256, k.agent_sha, 32);
        l.seq = REVOCATION_ENTRIES_MAX;
        sign_list(k.host, &l, &list, &size);
        print_message("  list of %u entries: %zu bytes\n", REVOCATION_ENTRIES_MAX, size);

        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(agentid_verifier_add_revocations(v, list, size, k.host_spki, k.host_spki_size, 0, &why), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        print_message("  added in %.0f ms\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
        assert_non_null(agentid_verifier_revocations_info(v, NULL, NULL, &n));
        assert_int_equal(n, REVOCATION_ENTRIES_MAX);

        assert_int_equal(cose_sign1_prepare(k.agent_kid, 34, &claims, (const uint8_t *) "m", 1, &c), 0);
        assert_int_equal(fake_sign_digest(k.agent, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, &msg, &msg_size), 0);

        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < 100; i++) {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                assert_int_equal(agentid_verify_message(v, msg, msg_size, k.agent_spki, k.agent_spki_size, NULL, NULL,
                                                        &d), 0);
                assert_reason(d, AGENTID_REASON_REVOKED);
                if (i == 0)
                        assert_contains(revoked_detail(d), "key-99999");
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        print_message("  100 verifications against it in %.1f ms\n",
                      (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);

        /* By kid and by cti too: a kid in the middle of the list. */
        {
                _cleanup_(cose_sign1_freep) CoseSign1 *c2 = NULL;
                _cleanup_free_ uint8_t *m2 = NULL;
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                size_t m2_size = 0;
                assert_int_equal(cose_sign1_prepare(l.entries[50001].kid, 34, &claims, (const uint8_t *) "m", 1, &c2), 0);
                assert_int_equal(fake_sign_digest(k.child, cose_sign1_digest(c2), rs), 0);
                assert_int_equal(cose_sign1_finish(c2, rs, &m2, &m2_size), 0);
                assert_int_equal(agentid_verify_message(v, m2, m2_size, k.child_spki, k.child_spki_size, NULL, NULL, &d),
                                 0);
                assert_reason(d, AGENTID_REASON_REVOKED);
                assert_contains(revoked_detail(d), "\"key-50001\"");
        }
}

/* Names of the new reason codes. */
static void test_reason_names(void **state) {
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_REVOKED), "revoked");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_ROTATION_FORMAT), "rotation_format");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_ROTATION_OLD_SIGNATURE), "rotation_old_signature");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_ROTATION_HOST_SIGNATURE), "rotation_host_signature");
        assert_null(agentid_reason_to_string((AgentidReason) (AGENTID_REASON_TOKEN_PEER_HOPS + 1)));
        for (int i = 0; i <= AGENTID_REASON_TOKEN_PEER_HOPS; i++) {
                const char *a = agentid_reason_to_string((AgentidReason) i);
                assert_non_null(a);
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(a, agentid_reason_to_string((AgentidReason) j));
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* The CLI of this build: tools/agentid-verify, next to tests/unit/ in the build tree. */

static char cli_dir[] = "/tmp/test-revocation-XXXXXX";
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

        _cleanup_free_ uint8_t *ev = NULL, *ak = NULL, *msg = NULL, *list = NULL, *clean = NULL, *rot = NULL;
        size_t ev_size = 0, ak_size = 0, msg_size = 0, list_size = 0, clean_size = 0, rot_size = 0;
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        char nonce_hex[2 * 64 + 1], now[32];
        uint8_t rs[64], kid[34];
        FakeSpec spec;
        const CoseClaims claims = { .iat = T0 };

        fake_spec_default(&spec, false, k.ak, k.agent);
        assert_int_equal(fake_evidence_build(&spec, &ev, &ev_size), 0);
        assert_int_equal(fake_ak_public_bytes(k.ak, &ak, &ak_size), 0);
        hex_encode_to(spec.nonce, spec.nonce_size, nonce_hex);
        snprintf(now, sizeof(now), "--now=%llu", (unsigned long long) (T0 + 10));
        {
                /* The certified kid, to sign the message with it. */
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_with(NULL, 0);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
                assert_int_equal(agentid_verify_evidence(v, ev, ev_size, spec.nonce, spec.nonce_size, &d), 0);
                memcpy(kid, agentid_verdict_get_claims(d)->kid, 34);
        }
        assert_int_equal(cose_sign1_prepare(kid, 34, &claims, (const uint8_t *) "hello", 5, &c), 0);
        assert_int_equal(fake_sign_digest(k.agent, cose_sign1_digest(c), rs), 0);
        assert_int_equal(cose_sign1_finish(c, rs, &msg, &msg_size), 0);

        RevocationEntry revoked = entry_for(REVOCATION_DESTROY, NULL, k.agent_sha), other = entry_for(REVOCATION_ROTATE,
                                                                                                        NULL, NULL);
        RevocationEntry both[] = { other, revoked };
        signed_list(7, HOST, both, 2, k.host, &list, &list_size);
        signed_list(8, HOST, &other, 1, k.host, &clean, &clean_size);
        make_rotation(k.agent, k.host, &rot, &rot_size);

        _cleanup_free_ char *ev_path = test_write_tmp(dir, "evidence.cbor", ev, ev_size),
                            *ak_path = test_write_tmp(dir, "ak.pub", ak, ak_size),
                            *msg_path = test_write_tmp(dir, "msg.cose", msg, msg_size),
                            *list_path = test_write_tmp(dir, "list.cose", list, list_size),
                            *clean_path = test_write_tmp(dir, "clean.cose", clean, clean_size),
                            *bad_path = test_write_tmp(dir, "bad.cose", list, list_size - 1),
                            *rot_path = test_write_tmp(dir, "rotation.cose", rot, rot_size),
                            *host_path = test_write_tmp(dir, "host.der", k.host_spki, k.host_spki_size),
                            *agent_path = test_write_tmp(dir, "agent.der", k.agent_spki, k.agent_spki_size),
                            *other_path = test_write_tmp(dir, "other.der", k.other_spki, k.other_spki_size),
                            *ev_opt = NULL, *ak_opt = NULL, *nonce_opt = NULL, *list_opt = NULL, *clean_opt = NULL,
                            *bad_opt = NULL, *host_opt = NULL, *key_opt = NULL, *old_opt = NULL, *other_host_opt = NULL,
                            *other_old_opt = NULL;
        assert_true(asprintf(&ev_opt, "--evidence=%s", ev_path) > 0);
        assert_true(asprintf(&ak_opt, "--trusted-ak=%s", ak_path) > 0);
        assert_true(asprintf(&nonce_opt, "--nonce=%s", nonce_hex) > 0);
        assert_true(asprintf(&list_opt, "--revocations=%s", list_path) > 0);
        assert_true(asprintf(&clean_opt, "--revocations=%s", clean_path) > 0);
        assert_true(asprintf(&bad_opt, "--revocations=%s", bad_path) > 0);
        assert_true(asprintf(&host_opt, "--host-key=%s", host_path) > 0);
        assert_true(asprintf(&other_host_opt, "--host-key=%s", other_path) > 0);
        assert_true(asprintf(&key_opt, "--public-key=%s", agent_path) > 0);
        assert_true(asprintf(&old_opt, "--old-key=%s", agent_path) > 0);
        assert_true(asprintf(&other_old_opt, "--old-key=%s", other_path) > 0);

        struct {
                char *argv[12];
                int status;
                const char *expect;
        } cases[] = {
                /* Evidence, message and token paths with a list. */
                { { cli, "evidence", nonce_opt, ak_opt, now, list_opt, host_opt, ev_path }, 1, "\"reason\": \"revoked\"" },
                { { cli, "evidence", nonce_opt, ak_opt, now, clean_opt, host_opt, ev_path }, 0, "\"name\": \"revoked\"" },
                { { cli, "evidence", nonce_opt, ak_opt, now, clean_opt, host_opt, "--min-seq=8", ev_path }, 0, "valid" },
                { { cli, "evidence", nonce_opt, ak_opt, now, clean_opt, host_opt, "--min-seq=9", ev_path }, 2, "" },
                { { cli, "evidence", nonce_opt, ak_opt, now, list_opt, other_host_opt, ev_path }, 2, "" },
                { { cli, "evidence", nonce_opt, ak_opt, now, bad_opt, ev_path }, 2, "" },
                { { cli, "evidence", nonce_opt, ak_opt, now, host_opt, ev_path }, 2, "" },   /* --host-key alone */
                { { cli, "evidence", nonce_opt, ak_opt, now, "--min-seq=1", ev_path }, 2, "" },
                { { cli, "evidence", nonce_opt, ak_opt, now, list_opt, ev_path }, 1, "is revoked: destroy" },
                { { cli, "message", key_opt, now, list_opt, host_opt, msg_path }, 1, "\"reason\": \"revoked\"" },
                { { cli, "message", key_opt, now, clean_opt, host_opt, msg_path }, 0, "\"verdict\": \"valid\"" },
                { { cli, "message", ev_opt, nonce_opt, ak_opt, now, list_opt, host_opt, msg_path }, 1,
                  "\"reason\": \"revoked\"" },
                { { cli, "receipt", host_opt, list_opt, msg_path }, 2, "" },
                /* The revocations command. */
                { { cli, "revocations", host_opt, list_path }, 0, "seq:      7" },
                { { cli, "revocations", host_opt, "--json", list_path }, 0, "\"n_entries\": 2" },
                { { cli, "revocations", list_path }, 0, "signature NOT checked" },
                { { cli, "revocations", other_host_opt, list_path }, 1, "invalid (signature)" },
                { { cli, "revocations", other_host_opt, "--json", list_path }, 1, "\"reason\": \"signature\"" },
                { { cli, "revocations", host_opt, "--min-seq=8", list_path }, 1, "invalid (seq)" },
                { { cli, "revocations", host_opt, bad_path }, 1, "invalid (format)" },
                { { cli, "revocations", host_opt, nonce_opt, list_path }, 2, "" },
                /* The rotation command. */
                { { cli, "rotation", old_opt, host_opt, rot_path }, 0, "\"new_kid\": \"000b9999" },
                { { cli, "rotation", other_old_opt, host_opt, rot_path }, 1, "\"reason\": \"rotation_old_signature\"" },
                { { cli, "rotation", old_opt, other_host_opt, rot_path }, 1, "rotation_host_signature" },
                { { cli, "rotation", old_opt, host_opt, list_path }, 1, "\"reason\": \"rotation_format\"" },
                { { cli, "rotation", old_opt, rot_path }, 2, "" },
                { { cli, "rotation", old_opt, host_opt, list_opt, rot_path }, 2, "" },
                { { cli, "token", key_opt, "--audience=x", old_opt, msg_path }, 2, "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                int status = test_run_cli(dir, cases[i].argv, &out);
                if (status != cases[i].status || !strstr(out, cases[i].expect))
                        fail_msg("case %zu: exit %d (expected %d), output:\n%s", i, status, cases[i].status, out);
        }
}

/* Lists at their size limits, thousands of entries: Skipped under memcheck (tests/lib/test-budget.h). */
static void test_size_limits(void **state) {
        if (test_under_valgrind())
                skip();
        size_limits_body(state);
}

/* The largest list end to end: Skipped under memcheck (tests/lib/test-budget.h). */
static void test_large_list(void **state) {
        if (test_under_valgrind())
                skip();
        large_list_body(state);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_types_and_find),
                cmocka_unit_test(test_prune),
                cmocka_unit_test(test_append_refuses),
                cmocka_unit_test(test_size_limits),
                cmocka_unit_test(test_decode_refuses_fields),
                cmocka_unit_test(test_decode_refuses_encoding),
                cmocka_unit_test(test_cose_sign),
                cmocka_unit_test(test_cose_sign_profile),
                cmocka_unit_test(test_cose_sign1_large),
                cmocka_unit_test(test_rotation_format),
                cmocka_unit_test(test_rotation_verify),
                cmocka_unit_test(test_add_revocations),
                cmocka_unit_test(test_list_of_another_host_key),
                cmocka_unit_test(test_unchecked_lists),
                cmocka_unit_test(test_same_key_replaces),
                cmocka_unit_test(test_list_limit),
                cmocka_unit_test(test_rotation_revoked),
                cmocka_unit_test(test_evidence_revoked),
                cmocka_unit_test(test_token_revoked),
                cmocka_unit_test(test_message_revoked),
                cmocka_unit_test(test_large_list),
                cmocka_unit_test(test_reason_names),
                cmocka_unit_test_teardown(test_cli, cli_cleanup),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

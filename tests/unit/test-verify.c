/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify (suite "unit"): agent and platform evidence made by tests/lib/fake-evidence.c with
 * software keys standing in for the TPM. A negative test for every check, built by altering one field
 * and re-signing whatever depends on it, so each hits the check it aims at (asserted by reason code and
 * check name); every single-byte flip, truncation and extension of a valid document; malformed CBOR;
 * the TPM structure parsers; the golden vectors of docs/formats.md §5-§6.
 *
 * With AGENTID_TEST_DUMP_DIR set, the golden evidence and the AK public area are also written there
 * (for trying agent-verify by hand).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/x509.h>

#include "attest/cose.h"
#include "attest/enroll.h"
#include "attest/tpm2-types.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "tests/lib/fake-evidence.h"
#include "tests/lib/golden.h"
#include "tests/lib/test-budget.h"

#define IAT 1764000000ULL
#define NOW (IAT + 10)

static struct {
        EVP_PKEY *ak, *key, *host, *other;
} keys;

static int group_setup(void **state) {
        keys.ak = fake_key_from_seed("agentid test AK");
        keys.key = fake_key_from_seed("agentid test agent key");
        keys.host = fake_key_from_seed("agentid test host key");
        keys.other = fake_key_from_seed("agentid test attacker key");
        return keys.ak && keys.key && keys.host && keys.other ? 0 : -1;
}

static int group_teardown(void **state) {
        EVP_PKEY_free(keys.ak);
        EVP_PKEY_free(keys.key);
        EVP_PKEY_free(keys.host);
        EVP_PKEY_free(keys.other);
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

static void spec_default(FakeSpec *spec, bool platform) {
        fake_spec_default(spec, platform, keys.ak, platform ? keys.host : keys.key);
}

static void build(const FakeSpec *spec, uint8_t **ret, size_t *ret_size) {
        assert_int_equal(fake_evidence_build(spec, ret, ret_size), 0);
}

/* A verifier that trusts the default AK, at NOW. */
static AgentidVerifier *verifier_default(void) {
        _cleanup_free_ uint8_t *ak = NULL;
        size_t ak_size = 0;
        AgentidVerifier *v = agentid_verifier_new();

        assert_non_null(v);
        assert_int_equal(fake_ak_public_bytes(keys.ak, &ak, &ak_size), 0);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
        assert_int_equal(agentid_verifier_set_now(v, NOW), 0);
        return v;
}

static void print_checks(const AgentidVerdict *d) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                const char *name, *detail;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, NULL, &name, &ok, &detail), 0);
                print_message("    %-18s %s  %s\n", name, ok ? "ok  " : "FAIL", detail);
        }
}

static AgentidVerdict *verify_with(const AgentidVerifier *v, bool platform, const uint8_t *ev, size_t size,
                                   const uint8_t *nonce, size_t nonce_size) {
        AgentidVerdict *d = NULL;
        int r = platform ? agentid_verify_platform(v, ev, size, nonce, nonce_size, &d) :
                           agentid_verify_evidence(v, ev, size, nonce, nonce_size, &d);
        assert_int_equal(r, 0);
        assert_non_null(d);
        return d;
}

static void assert_valid(const AgentidVerdict *d) {
        if (!agentid_verdict_is_valid(d)) {
                print_checks(d);
                fail_msg("verdict invalid: %s", agentid_reason_to_string(agentid_verdict_reason(d)));
        }
        assert_int_equal(agentid_verdict_reason(d), AGENTID_REASON_VALID);
}

/* The verdict failed first at expect: that check failed, every check before it passed. */
static void assert_reason(const AgentidVerdict *d, AgentidReason expect, const char *what) {
        if (agentid_verdict_is_valid(d) || agentid_verdict_reason(d) != expect) {
                print_checks(d);
                fail_msg("%s: expected %s, got %s", what, agentid_reason_to_string(expect),
                         agentid_reason_to_string(agentid_verdict_reason(d)));
        }
        assert_null(agentid_verdict_get_claims(d));
        assert_null(agentid_verdict_get_platform(d));

        bool found = false;
        for (size_t i = 0; i < agentid_verdict_n_checks(d) && !found; i++) {
                AgentidReason reason;
                const char *name, *detail;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, &reason, &name, &ok, &detail), 0);
                assert_non_null(detail);
                if (reason == expect) {
                        assert_false(ok);
                        assert_string_equal(name, agentid_reason_to_string(expect));
                        assert_null(strstr(detail, "not checked"));
                        found = true;
                } else if (!ok)
                        fail_msg("%s: check %s failed before %s", what, name, agentid_reason_to_string(expect));
        }
        assert_true(found);
}

static bool check_ok(const AgentidVerdict *d, AgentidReason which) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason reason;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, &reason, NULL, &ok, NULL), 0);
                if (reason == which)
                        return ok;
        }
        fail_msg("no check %s", agentid_reason_to_string(which));
        return false;
}

static void bytes_append(FakeBytes *b, const void *p, size_t n) {
        uint8_t *c = realloc(b->data, b->size + n);
        assert_non_null(c);
        memcpy(c + b->size, p, n);
        b->data = c;
        b->size += n;
}

static void bytes_insert(FakeBytes *b, size_t at, uint8_t v) {
        bytes_append(b, &v, 1);
        memmove(b->data + at + 1, b->data + at, b->size - at - 1);
        b->data[at] = v;
}

/* ------------------------------------------------------------------------------------------------ */
/* Negative cases: one altered field each */

typedef struct Case {
        const char *what;
        bool platform;
        FakeHook hook;
        AgentidReason expect;
        void (*configure)(AgentidVerifier *v);
        enum {
                TRUST_EVIDENCE_AK,      /* trust the AK the evidence carries: what fails is the altered field */
                TRUST_DEFAULT_AK,       /* trust the generator's default AK */
                TRUST_NO_AK,            /* trust nothing but what configure() adds */
        } trust;
        bool wrong_nonce;               /* verify with another nonce than the evidence was made for */
} Case;

#define HOOK(name, STAGE, type, ...)                                                     \
        static void name(FakeStage stage, void *object, void *userdata) {               \
                type *o = object;                                                       \
                if (stage != (STAGE))                                                   \
                        return;                                                         \
                __VA_ARGS__;                                                            \
        }

#define HOOK_MAP(name, STAGE, ...) HOOK(name, STAGE, cbor_item_t *, __VA_ARGS__)

static uint8_t filler[80];

static cbor_item_t *bytes_of(uint8_t fill, size_t n) {
        memset(filler, fill, sizeof(filler));
        return cbor_util_new_bytes(filler, n);
}

/* Replace a value inside the "workload" claim map. */
static void workload_edit(cbor_item_t **claims, const char *key, cbor_item_t *value) {
        cbor_item_t *w = (cbor_item_t *) cbor_util_map_get_text(*claims, "workload");
        assert_non_null(w);
        cbor_incref(w);
        if (value)
                fake_map_set(&w, key, 0, value);
        else
                fake_map_delete(&w, key, 0);
        fake_map_set(claims, "workload", 0, w);
}

static cbor_item_t *cose_key(int64_t kty, const uint8_t *x, bool extra) {
        cbor_item_t *cnf = cbor_util_new_map(), *k = cbor_util_new_map();
        uint8_t y[32];
        memset(y, 0x07, sizeof(y));
        assert_int_equal(cbor_util_map_put_int(k, 1, cbor_util_new_int(kty)), 0);
        assert_int_equal(cbor_util_map_put_int(k, -1, cbor_util_new_int(1)), 0);
        assert_int_equal(cbor_util_map_put_int(k, -2, cbor_util_new_bytes(x, 32)), 0);
        assert_int_equal(cbor_util_map_put_int(k, -3, cbor_util_new_bytes(y, 32)), 0);
        if (extra)
                assert_int_equal(cbor_util_map_put_int(k, 2, cbor_util_new_bytes("kid", 3)), 0);
        assert_int_equal(cbor_util_map_put_int(cnf, 1, k), 0);
        return cnf;
}

static cbor_item_t *pcr_array(size_t n, size_t short_index) {
        cbor_item_t *a = cbor_util_new_array();
        for (size_t i = 0; i < n; i++)
                assert_int_equal(cbor_util_array_push(a, bytes_of((uint8_t) (0xa0 + i), i == short_index ? 31 : 32)), 0);
        return a;
}

/* format */
HOOK_MAP(top_unknown, FAKE_EVIDENCE_MAP, fake_map_set(o, "log", 0, cbor_util_new_uint(1)))
HOOK_MAP(top_no_eat, FAKE_EVIDENCE_MAP, fake_map_delete(o, "eat", 0))
HOOK_MAP(top_v2, FAKE_EVIDENCE_MAP, fake_map_set(o, "v", 0, cbor_util_new_uint(2)))
HOOK_MAP(top_int_key, FAKE_EVIDENCE_MAP, fake_map_set(o, NULL, 1, cbor_util_new_uint(1)))
HOOK_MAP(top_eat_text, FAKE_EVIDENCE_MAP, fake_map_set(o, "eat", 0, cbor_util_new_text("eat")))
HOOK_MAP(top_tpm_array, FAKE_EVIDENCE_MAP, fake_map_set(o, "tpm", 0, cbor_util_new_array()))
HOOK_MAP(top_type_agent, FAKE_EVIDENCE_MAP, fake_map_set(o, "type", 0, cbor_util_new_text("agent")))
HOOK_MAP(top_platform_eat, FAKE_EVIDENCE_MAP, fake_map_set(o, "eat", 0, cbor_util_new_bytes("x", 1)))
HOOK_MAP(tpm_unknown, FAKE_TPM_MAP, fake_map_set(o, "log", 0, cbor_util_new_bytes("x", 1)))
HOOK_MAP(tpm_no_srk, FAKE_TPM_MAP, fake_map_delete(o, "srk_name", 0))
HOOK_MAP(tpm_no_quote, FAKE_TPM_MAP, fake_map_delete(o, "quote", 0))
HOOK_MAP(tpm_srk_short, FAKE_TPM_MAP, fake_map_set(o, "srk_name", 0, bytes_of(0x0b, 33)))
HOOK_MAP(tpm_srk_sha384, FAKE_TPM_MAP, {
        uint8_t n[34];
        memset(n, 0x33, sizeof(n));
        n[0] = 0x00;
        n[1] = 0x0c;
        fake_map_set(o, "srk_name", 0, cbor_util_new_bytes(n, sizeof(n)));
})
HOOK_MAP(tpm_pcrs_seven, FAKE_TPM_MAP, fake_map_set(o, "pcrs", 0, pcr_array(7, 99)))
HOOK_MAP(tpm_pcr_short, FAKE_TPM_MAP, fake_map_set(o, "pcrs", 0, pcr_array(8, 5)))
HOOK_MAP(tpm_key_pub_text, FAKE_TPM_MAP, fake_map_set(o, "key_pub", 0, cbor_util_new_text("key")))
HOOK_MAP(tpm_quote_empty, FAKE_TPM_MAP, fake_map_set(o, "quote", 0, cbor_util_new_bytes(NULL, 0)))
HOOK_MAP(tpm_certify_huge, FAKE_TPM_MAP, {
        _cleanup_free_ uint8_t *big = calloc(1, 1025);
        fake_map_set(o, "certify", 0, cbor_util_new_bytes(big, 1025));
})
HOOK(bytes_v_wide, FAKE_EVIDENCE_BYTES, FakeBytes, {
        /* a3 61 76 01 ...: "v": 1 written as 18 01, not in its shortest form */
        assert_int_equal(o->data[3], 0x01);
        bytes_insert(o, 3, 0x18);
})

/* ak_trusted */
static void configure_other_ak(AgentidVerifier *v) {
        _cleanup_free_ uint8_t *ak = NULL;
        size_t ak_size = 0;
        assert_int_equal(fake_ak_public_bytes(keys.other, &ak, &ak_size), 0);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
}
HOOK(ak_other_key, FAKE_AK_PUBLIC, FakePublic, fake_public_ak(keys.other, o))
HOOK(ak_noda_clear, FAKE_AK_PUBLIC, FakePublic, o->attributes &= ~0x400U)

/* ak_attributes (the verifier trusts the altered AK, so the attributes are what fails) */
HOOK(ak_unrestricted, FAKE_AK_PUBLIC, FakePublic, o->attributes &= ~0x10000U)
HOOK(ak_no_sign, FAKE_AK_PUBLIC, FakePublic, o->attributes &= ~0x40000U)
HOOK(ak_not_fixedtpm, FAKE_AK_PUBLIC, FakePublic, o->attributes &= ~0x2U)
HOOK(ak_not_fixedparent, FAKE_AK_PUBLIC, FakePublic, o->attributes &= ~0x10U)
HOOK(ak_not_sdo, FAKE_AK_PUBLIC, FakePublic, o->attributes &= ~0x20U)
HOOK(ak_decrypt, FAKE_AK_PUBLIC, FakePublic, o->attributes |= 0x20000U)
HOOK(ak_sha384_scheme, FAKE_AK_PUBLIC, FakePublic, o->scheme_hash = 0x000c)
HOOK(ak_null_scheme, FAKE_AK_PUBLIC, FakePublic, o->scheme = 0x0010)
HOOK(ak_p384, FAKE_AK_PUBLIC, FakePublic, o->curve = 0x0004)
HOOK(ak_name_sha384, FAKE_AK_PUBLIC, FakePublic, o->name_alg = 0x000c)
HOOK(ak_off_curve, FAKE_AK_PUBLIC, FakePublic, o->y[31] ^= 1)
HOOK(ak_trailing, FAKE_AK_PUBLIC_BYTES, FakeBytes, bytes_append(o, "", 1))

/* certify_signature */
HOOK(certify_other_signer, FAKE_CERTIFY_SIGN, FakeSignature, o->signer = keys.other)
HOOK(certify_sha384, FAKE_CERTIFY_SIGN, FakeSignature, o->md = EVP_sha384())
HOOK(certify_sha1_label, FAKE_CERTIFY_SIG, FakeSignature, o->hash = 0x0004)
HOOK(certify_rsapss, FAKE_CERTIFY_SIG, FakeSignature, o->sig_alg = 0x0016)
HOOK(certify_rsassa, FAKE_CERTIFY_SIG, FakeSignature, o->sig_alg = 0x0014)
HOOK(certify_r_long, FAKE_CERTIFY_SIG, FakeSignature, {
        memmove(o->r + 1, o->r, 32);
        o->r[0] = 0x01;
        o->r_size = 33;
})
HOOK(certify_sig_trailing, FAKE_CERTIFY_SIG_BYTES, FakeBytes, bytes_append(o, "", 1))
HOOK(certify_s_swapped, FAKE_CERTIFY_SIG, FakeSignature, {
        uint8_t t[32];
        memcpy(t, o->r, 32);
        memcpy(o->r, o->s, 32);
        memcpy(o->s, t, 32);
})

/* certify_structure */
HOOK(certify_magic, FAKE_CERTIFY, FakeAttest, o->magic = 0xff544348)
HOOK(certify_type_quote, FAKE_CERTIFY, FakeAttest, {
        o->type = 0x8018;
        o->n_selections = 0;
        o->pcr_digest_size = 0;
})
HOOK(certify_type_creation, FAKE_CERTIFY, FakeAttest, o->type = 0x801a)
HOOK(certify_trailing, FAKE_CERTIFY_BYTES, FakeBytes, bytes_append(o, "", 1))
HOOK(certify_truncated, FAKE_CERTIFY_BYTES, FakeBytes, o->size--)
HOOK(certify_safe_2, FAKE_CERTIFY, FakeAttest, o->safe = 2)
HOOK(certify_name_oversized, FAKE_CERTIFY, FakeAttest, o->name_size = 69)

/* certify_nonce */
HOOK(certify_extra_raw_nonce, FAKE_CERTIFY, FakeAttest, {
        for (size_t i = 0; i < 32; i++)
                o->extra_data[i] = (uint8_t) i;
})
HOOK(certify_extra_empty, FAKE_CERTIFY, FakeAttest, o->extra_data_size = 0)

/* key_attributes */
HOOK(key_restricted, FAKE_KEY_PUBLIC, FakePublic, o->attributes |= 0x10000U)
HOOK(key_no_noda, FAKE_KEY_PUBLIC, FakePublic, o->attributes &= ~0x400U)
HOOK(key_not_fixedtpm, FAKE_KEY_PUBLIC, FakePublic, o->attributes &= ~0x2U)
HOOK(key_not_fixedparent, FAKE_KEY_PUBLIC, FakePublic, o->attributes &= ~0x10U)
HOOK(key_not_sdo, FAKE_KEY_PUBLIC, FakePublic, o->attributes &= ~0x20U)
HOOK(key_no_sign, FAKE_KEY_PUBLIC, FakePublic, o->attributes &= ~0x40000U)
HOOK(key_decrypt, FAKE_KEY_PUBLIC, FakePublic, o->attributes |= 0x20000U)
HOOK(key_sha384_scheme, FAKE_KEY_PUBLIC, FakePublic, o->scheme_hash = 0x000c)
HOOK(key_ecdh, FAKE_KEY_PUBLIC, FakePublic, o->scheme = 0x0019)
HOOK(key_p384, FAKE_KEY_PUBLIC, FakePublic, o->curve = 0x0004)
HOOK(key_name_sha384, FAKE_KEY_PUBLIC, FakePublic, o->name_alg = 0x000c)
HOOK(key_off_curve, FAKE_KEY_PUBLIC, FakePublic, o->x[31] ^= 1)
HOOK(key_trailing, FAKE_KEY_PUBLIC_BYTES, FakeBytes, bytes_append(o, "", 1))
HOOK(key_rsa_type, FAKE_KEY_PUBLIC, FakePublic, o->type = 0x0001)

/* certified_name, qualified_name */
HOOK(certify_name_flip, FAKE_CERTIFY, FakeAttest, o->name[9] ^= 1)
HOOK(certify_name_short, FAKE_CERTIFY, FakeAttest, o->name_size = 33)
HOOK(certify_qn_flip, FAKE_CERTIFY, FakeAttest, o->qualified_name[20] ^= 1)
HOOK(certify_qn_is_name, FAKE_CERTIFY, FakeAttest, memcpy(o->qualified_name, o->name, 34))

/* quote_signature, quote_structure */
HOOK(quote_other_signer, FAKE_QUOTE_SIGN, FakeSignature, o->signer = keys.key)
HOOK(quote_sha384, FAKE_QUOTE_SIGN, FakeSignature, o->md = EVP_sha384())
HOOK(quote_sig_truncated, FAKE_QUOTE_SIG_BYTES, FakeBytes, o->size -= 1)
HOOK(quote_magic, FAKE_QUOTE, FakeAttest, o->magic = 0)
HOOK(quote_type_certify, FAKE_QUOTE, FakeAttest, {
        o->type = 0x8017;
        o->name_size = 34;
        o->qualified_name_size = 34;
})
HOOK(quote_trailing, FAKE_QUOTE_BYTES, FakeBytes, bytes_append(o, "\0\0", 2))
HOOK(quote_many_selections, FAKE_QUOTE, FakeAttest, o->n_selections = 17)

/* qualified_signer, clock, safe */
HOOK(quote_signer_flip, FAKE_QUOTE, FakeAttest, o->qualified_signer[33] ^= 1)
HOOK(quote_reset, FAKE_QUOTE, FakeAttest, o->reset_count++)
HOOK(quote_restart, FAKE_QUOTE, FakeAttest, o->restart_count++)
HOOK(quote_unsafe, FAKE_QUOTE, FakeAttest, o->safe = 0)
HOOK(certify_unsafe, FAKE_CERTIFY, FakeAttest, o->safe = 0)
static void configure_require_safe(AgentidVerifier *v) {
        assert_int_equal(agentid_verifier_set_require_safe(v, true), 0);
}

/* pcr_selection, pcr_digest, reference_pcrs */
HOOK(sel_two_banks, FAKE_QUOTE, FakeAttest, {
        o->n_selections = 2;
        o->selections[1].hash = 0x0004;
        o->selections[1].size_of_select = 3;
})
HOOK(sel_sha1, FAKE_QUOTE, FakeAttest, o->selections[0].hash = 0x0004)
HOOK(sel_four_bytes, FAKE_QUOTE, FakeAttest, o->selections[0].size_of_select = 4)
HOOK(sel_pcr23, FAKE_QUOTE, FakeAttest, o->selections[0].select[2] = 0x80)
HOOK(sel_pcr0_missing, FAKE_QUOTE, FakeAttest, o->selections[0].select[0] = 0xfe)
HOOK(sel_none, FAKE_QUOTE, FakeAttest, o->n_selections = 0)
HOOK(quote_digest_flip, FAKE_QUOTE, FakeAttest, o->pcr_digest[0] ^= 1)
HOOK_MAP(tpm_pcr_changed, FAKE_TPM_MAP, {
        /* The generator quoted PCR i = 32 bytes of a0 + i; present another PCR 7. */
        cbor_item_t *a = cbor_util_new_array();
        for (size_t i = 0; i < 8; i++)
                assert_int_equal(cbor_util_array_push(a, bytes_of((uint8_t) (i == 7 ? 0x00 : 0xa0 + i), 32)), 0);
        fake_map_set(o, "pcrs", 0, a);
})
static void configure_reference_wrong(AgentidVerifier *v) {
        uint8_t d[32];
        memset(d, 0xa0, sizeof(d));     /* PCR 0 is right */
        assert_int_equal(agentid_verifier_add_reference_pcr(v, 0, d), 0);
        memset(d, 0x00, sizeof(d));     /* PCR 4 holds a4... */
        assert_int_equal(agentid_verifier_add_reference_pcr(v, 4, d), 0);
}

/* eat_signature */
HOOK(eat_other_signer, FAKE_EAT, FakeCose, o->signer = keys.other)
HOOK(eat_kid_flip, FAKE_EAT, FakeCose, o->kid[7] ^= 1)
HOOK(eat_kid_short, FAKE_EAT, FakeCose, o->kid_size = 33)
HOOK(eat_label15, FAKE_EAT, FakeCose, o->with_claims = true)
HOOK(eat_untagged, FAKE_EAT_BYTES, FakeBytes, {
        memmove(o->data, o->data + 1, o->size - 1);
        o->size--;
})
HOOK(eat_sig_flip, FAKE_EAT_BYTES, FakeBytes, o->data[o->size - 1] ^= 1)

/* quote_binding */
HOOK(quote_extra_flip, FAKE_QUOTE, FakeAttest, o->extra_data[31] ^= 1)
HOOK(quote_extra_certify, FAKE_QUOTE, FakeAttest, {
        uint8_t nonce[32];
        for (size_t i = 0; i < 32; i++)
                nonce[i] = (uint8_t) i;
        assert_int_equal(sha256(nonce, sizeof(nonce), o->extra_data), 0);
})

/* claims */
HOOK_MAP(claims_exp, FAKE_CLAIMS, fake_map_set(o, NULL, 4, cbor_util_new_uint(IAT + 60)))
HOOK_MAP(claims_scope, FAKE_CLAIMS, fake_map_set(o, "scope", 0, cbor_util_new_text("pay")))
HOOK_MAP(claims_no_daemon, FAKE_CLAIMS, fake_map_delete(o, "daemon", 0))
HOOK_MAP(claims_no_iat, FAKE_CLAIMS, fake_map_delete(o, NULL, 6))
HOOK_MAP(claims_no_cnf, FAKE_CLAIMS, fake_map_delete(o, NULL, 8))
HOOK_MAP(claims_no_workload, FAKE_CLAIMS, fake_map_delete(o, "workload", 0))
HOOK_MAP(claims_iat_negative, FAKE_CLAIMS, fake_map_set(o, NULL, 6, cbor_util_new_int(-1)))
HOOK_MAP(claims_sub_upper, FAKE_CLAIMS, {
        const char *s;
        size_t n;
        char sub[128];
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_int(*o, 2), &s, &n), 0);
        snprintf(sub, sizeof(sub), "%.*s", (int) n, s);
        sub[10] = (char) (sub[10] >= 'a' ? sub[10] - 'a' + 'A' : 'A');
        fake_map_set(o, NULL, 2, cbor_util_new_text(sub));
})
HOOK_MAP(claims_sub_scheme, FAKE_CLAIMS,
         fake_map_set(o, NULL, 2, cbor_util_new_text("spiffe://8119af52884ed2bc28b62a373dc1f85b/invoice-bot")))
HOOK_MAP(claims_sub_bad_name, FAKE_CLAIMS,
         fake_map_set(o, NULL, 2, cbor_util_new_text("agentid://8119af52884ed2bc28b62a373dc1f85b/-bot")))
HOOK_MAP(claims_sub_no_name, FAKE_CLAIMS,
         fake_map_set(o, NULL, 2, cbor_util_new_text("agentid://8119af52884ed2bc28b62a373dc1f85b/")))
HOOK_MAP(claims_cnf_extra, FAKE_CLAIMS, fake_map_set(o, NULL, 8, cose_key(2, filler, true)))
HOOK_MAP(claims_cnf_kty_okp, FAKE_CLAIMS, fake_map_set(o, NULL, 8, cose_key(1, filler, false)))
HOOK_MAP(claims_nonce_short, FAKE_CLAIMS, fake_map_set(o, NULL, 10, bytes_of(0, 8)))
HOOK_MAP(claims_nonce_text, FAKE_CLAIMS, fake_map_set(o, NULL, 10, cbor_util_new_text("nonce")))
HOOK_MAP(claims_uid_text, FAKE_CLAIMS, fake_map_set(o, "uid", 0, cbor_util_new_text("1000")))
HOOK_MAP(claims_uid_max, FAKE_CLAIMS, fake_map_set(o, "uid", 0, cbor_util_new_uint(UINT32_MAX)))
HOOK_MAP(claims_owner_empty, FAKE_CLAIMS, fake_map_set(o, "owner", 0, cbor_util_new_text("")))
HOOK_MAP(claims_owner_long, FAKE_CLAIMS, {
        char s[258];
        memset(s, 'o', 257);
        s[257] = 0;
        fake_map_set(o, "owner", 0, cbor_util_new_text(s));
})
HOOK_MAP(claims_task_empty, FAKE_CLAIMS, fake_map_set(o, "task_id", 0, cbor_util_new_text("")))
HOOK_MAP(claims_task_null, FAKE_CLAIMS, fake_map_set(o, "task_id", 0, cbor_util_new_textn("a\0b", 3)))
HOOK_MAP(claims_not_after_text, FAKE_CLAIMS, fake_map_set(o, "not_after", 0, cbor_util_new_text("never")))
HOOK_MAP(workload_unknown, FAKE_CLAIMS, workload_edit(o, "gid", cbor_util_new_uint(1)))
HOOK_MAP(workload_no_pid, FAKE_CLAIMS, workload_edit(o, "pid", NULL))
HOOK_MAP(workload_no_uid, FAKE_CLAIMS, workload_edit(o, "uid", NULL))
HOOK_MAP(workload_exe_short, FAKE_CLAIMS, workload_edit(o, "exe_sha256", bytes_of(0x11, 31)))
HOOK_MAP(workload_path_empty, FAKE_CLAIMS, workload_edit(o, "exe_path", cbor_util_new_text("")))
HOOK_MAP(workload_path_uint, FAKE_CLAIMS, workload_edit(o, "exe_path", cbor_util_new_uint(7)))
HOOK_MAP(workload_not_map, FAKE_CLAIMS, fake_map_set(o, "workload", 0, cbor_util_new_array()))
HOOK(payload_indefinite, FAKE_PAYLOAD_BYTES, FakeBytes, {
        /* The same claims as an indefinite-length map: not deterministic (RFC 8949 §4.2.1). */
        assert_int_equal(o->data[0] & 0xe0, 0xa0);
        o->data[0] = 0xbf;
        bytes_append(o, "\xff", 1);
})
HOOK(payload_array, FAKE_PAYLOAD_BYTES, FakeBytes, {
        free(o->data);
        o->data = malloc(1);
        o->data[0] = 0x80;
        o->size = 1;
})

/* profile, nonce, freshness, cnf, host_id, key_expiry, workload */
HOOK_MAP(claims_profile, FAKE_CLAIMS, fake_map_set(o, NULL, 265, cbor_util_new_text("tag:agentid.org,2026:v2")))
HOOK_MAP(claims_nonce_other, FAKE_CLAIMS, fake_map_set(o, NULL, 10, bytes_of(0x42, 32)))
HOOK_MAP(claims_iat_old, FAKE_CLAIMS, fake_map_set(o, NULL, 6, cbor_util_new_uint(NOW - 301)))
HOOK_MAP(claims_iat_future, FAKE_CLAIMS, fake_map_set(o, NULL, 6, cbor_util_new_uint(NOW + 61)))
static void cnf_other(FakeStage stage, void *object, void *userdata) {
        uint8_t point[65];
        size_t n = 0;
        if (stage != FAKE_CLAIMS)
                return;
        assert_int_equal(EVP_PKEY_get_octet_string_param(keys.other, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &n), 1);
        cbor_item_t *cnf = cbor_util_new_map(), *k = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(k, 1, cbor_util_new_int(2)), 0);
        assert_int_equal(cbor_util_map_put_int(k, -1, cbor_util_new_int(1)), 0);
        assert_int_equal(cbor_util_map_put_int(k, -2, cbor_util_new_bytes(point + 1, 32)), 0);
        assert_int_equal(cbor_util_map_put_int(k, -3, cbor_util_new_bytes(point + 33, 32)), 0);
        assert_int_equal(cbor_util_map_put_int(cnf, 1, k), 0);
        fake_map_set(object, NULL, 8, cnf);
}
HOOK_MAP(claims_cnf_y_flip, FAKE_CLAIMS, {
        const cbor_item_t *k = cbor_util_map_get_int(cbor_util_map_get_int(*o, 8), 1);
        const uint8_t *x, *y;
        size_t xn, yn;
        uint8_t y2[32];
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_int(k, -2), &x, &xn), 0);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_int(k, -3), &y, &yn), 0);
        memcpy(y2, y, 32);
        y2[31] ^= 1;
        cbor_item_t *cnf = cbor_util_new_map(), *nk = cbor_util_new_map();
        assert_int_equal(cbor_util_map_put_int(nk, 1, cbor_util_new_int(2)), 0);
        assert_int_equal(cbor_util_map_put_int(nk, -1, cbor_util_new_int(1)), 0);
        assert_int_equal(cbor_util_map_put_int(nk, -2, cbor_util_new_bytes(x, 32)), 0);
        assert_int_equal(cbor_util_map_put_int(nk, -3, cbor_util_new_bytes(y2, 32)), 0);
        assert_int_equal(cbor_util_map_put_int(cnf, 1, nk), 0);
        fake_map_set(o, NULL, 8, cnf);
})
HOOK_MAP(claims_other_host, FAKE_CLAIMS,
         fake_map_set(o, NULL, 2, cbor_util_new_text("agentid://00000000000000000000000000000000/invoice-bot")))
HOOK_MAP(tpm_other_srk, FAKE_TPM_MAP, {
        uint8_t n[34];
        memset(n, 0x44, sizeof(n));
        n[0] = 0x00;
        n[1] = 0x0b;
        fake_map_set(o, "srk_name", 0, cbor_util_new_bytes(n, sizeof(n)));
})
HOOK_MAP(claims_expired, FAKE_CLAIMS, fake_map_set(o, "not_after", 0, cbor_util_new_uint(NOW)))
HOOK_MAP(claims_no_exe, FAKE_CLAIMS, workload_edit(o, "exe_sha256", NULL))
static void configure_old_now(AgentidVerifier *v) {
        /* iat is NOW - 10; a max age of 9 s makes it stale. */
        assert_int_equal(agentid_verifier_set_max_age(v, 9), 0);
}
static void configure_allow_other(AgentidVerifier *v) {
        uint8_t d[32];
        memset(d, 0x22, sizeof(d));
        assert_int_equal(agentid_verifier_add_allowed_workload(v, d), 0);
}
static void configure_allow_default(AgentidVerifier *v) {
        uint8_t d[32];
        memset(d, 0x11, sizeof(d));
        assert_int_equal(agentid_verifier_add_allowed_workload(v, d), 0);
}

/* platform */
HOOK(host_certify_extra_binding, FAKE_CERTIFY, FakeAttest, o->extra_data[0] ^= 1)
HOOK(host_restricted, FAKE_KEY_PUBLIC, FakePublic, o->attributes |= 0x10000U)

static const Case cases[] = {
        { "unknown top-level key", false, top_unknown, AGENTID_REASON_FORMAT },
        { "no eat", false, top_no_eat, AGENTID_REASON_FORMAT },
        { "v 2", false, top_v2, AGENTID_REASON_FORMAT },
        { "integer top-level key", false, top_int_key, AGENTID_REASON_FORMAT },
        { "eat as text", false, top_eat_text, AGENTID_REASON_FORMAT },
        { "tpm as array", false, top_tpm_array, AGENTID_REASON_FORMAT },
        { "unknown tpm key", false, tpm_unknown, AGENTID_REASON_FORMAT },
        { "no srk_name", false, tpm_no_srk, AGENTID_REASON_FORMAT },
        { "no quote", false, tpm_no_quote, AGENTID_REASON_FORMAT },
        { "srk_name 33 bytes", false, tpm_srk_short, AGENTID_REASON_FORMAT },
        { "srk_name SHA-384", false, tpm_srk_sha384, AGENTID_REASON_FORMAT },
        { "seven pcrs", false, tpm_pcrs_seven, AGENTID_REASON_FORMAT },
        { "pcr of 31 bytes", false, tpm_pcr_short, AGENTID_REASON_FORMAT },
        { "key_pub as text", false, tpm_key_pub_text, AGENTID_REASON_FORMAT },
        { "empty quote", false, tpm_quote_empty, AGENTID_REASON_FORMAT },
        { "certify over 1024 bytes", false, tpm_certify_huge, AGENTID_REASON_FORMAT },
        { "v not shortest", false, bytes_v_wide, AGENTID_REASON_FORMAT },
        { "platform: type agent", true, top_type_agent, AGENTID_REASON_FORMAT },
        { "platform: eat", true, top_platform_eat, AGENTID_REASON_FORMAT },

        { "AK of another TPM", false, ak_other_key, AGENTID_REASON_AK_TRUSTED, NULL, TRUST_DEFAULT_AK },
        { "AK public area altered", false, ak_noda_clear, AGENTID_REASON_AK_TRUSTED, NULL, TRUST_DEFAULT_AK },
        { "AK public area trailing byte", false, ak_trailing, AGENTID_REASON_AK_TRUSTED, NULL, TRUST_DEFAULT_AK },
        { "trusted AK is another", false, NULL, AGENTID_REASON_AK_TRUSTED, configure_other_ak, TRUST_NO_AK },
        { "no AK trusted", false, NULL, AGENTID_REASON_AK_TRUSTED, NULL, TRUST_NO_AK },

        { "AK not restricted", false, ak_unrestricted, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK not sign", false, ak_no_sign, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK not fixedTPM", false, ak_not_fixedtpm, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK not fixedParent", false, ak_not_fixedparent, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK not sensitiveDataOrigin", false, ak_not_sdo, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK decrypt", false, ak_decrypt, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK scheme ECDSA-SHA384", false, ak_sha384_scheme, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK scheme NULL", false, ak_null_scheme, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK curve P-384", false, ak_p384, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK nameAlg SHA-384", false, ak_name_sha384, AGENTID_REASON_AK_ATTRIBUTES },
        { "AK point off the curve", false, ak_off_curve, AGENTID_REASON_AK_ATTRIBUTES },

        { "certify signed by another key", false, certify_other_signer, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signed with SHA-384", false, certify_sha384, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signature labelled SHA-1", false, certify_sha1_label, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signature RSAPSS", false, certify_rsapss, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signature RSASSA", false, certify_rsassa, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signature r of 33 bytes", false, certify_r_long, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signature trailing byte", false, certify_sig_trailing, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "certify signature r and s swapped", false, certify_s_swapped, AGENTID_REASON_CERTIFY_SIGNATURE },

        { "certify magic", false, certify_magic, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "certify typed as quote", false, certify_type_quote, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "certify typed as creation", false, certify_type_creation, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "certify trailing byte", false, certify_trailing, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "certify truncated", false, certify_truncated, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "certify safe 2", false, certify_safe_2, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "certify name over 68 bytes", false, certify_name_oversized, AGENTID_REASON_CERTIFY_STRUCTURE },

        { "certify extraData = nonce", false, certify_extra_raw_nonce, AGENTID_REASON_CERTIFY_NONCE },
        { "certify extraData empty", false, certify_extra_empty, AGENTID_REASON_CERTIFY_NONCE },

        { "key restricted", false, key_restricted, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key without noDA", false, key_no_noda, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key not fixedTPM", false, key_not_fixedtpm, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key not fixedParent", false, key_not_fixedparent, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key not sensitiveDataOrigin", false, key_not_sdo, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key not sign", false, key_no_sign, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key decrypt", false, key_decrypt, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key scheme ECDSA-SHA384", false, key_sha384_scheme, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key scheme ECDH", false, key_ecdh, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key curve P-384", false, key_p384, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key nameAlg SHA-384", false, key_name_sha384, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key point off the curve", false, key_off_curve, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key_pub trailing byte", false, key_trailing, AGENTID_REASON_KEY_ATTRIBUTES },
        { "key typed RSA", false, key_rsa_type, AGENTID_REASON_KEY_ATTRIBUTES },

        { "certified Name differs", false, certify_name_flip, AGENTID_REASON_CERTIFIED_NAME },
        { "certified Name 33 bytes", false, certify_name_short, AGENTID_REASON_CERTIFIED_NAME },
        { "qualifiedName differs", false, certify_qn_flip, AGENTID_REASON_QUALIFIED_NAME },
        { "qualifiedName = Name", false, certify_qn_is_name, AGENTID_REASON_QUALIFIED_NAME },

        { "quote signed by the agent key", false, quote_other_signer, AGENTID_REASON_QUOTE_SIGNATURE },
        { "quote signed with SHA-384", false, quote_sha384, AGENTID_REASON_QUOTE_SIGNATURE },
        { "quote signature truncated", false, quote_sig_truncated, AGENTID_REASON_QUOTE_SIGNATURE },
        { "quote magic", false, quote_magic, AGENTID_REASON_QUOTE_STRUCTURE },
        { "quote typed as certify", false, quote_type_certify, AGENTID_REASON_QUOTE_STRUCTURE },
        { "quote trailing bytes", false, quote_trailing, AGENTID_REASON_QUOTE_STRUCTURE },
        { "quote with 17 selections", false, quote_many_selections, AGENTID_REASON_QUOTE_STRUCTURE },

        { "qualifiedSigner differs", false, quote_signer_flip, AGENTID_REASON_QUALIFIED_SIGNER },
        { "resetCount differs", false, quote_reset, AGENTID_REASON_CLOCK },
        { "restartCount differs", false, quote_restart, AGENTID_REASON_CLOCK },
        { "quote not safe, safe required", false, quote_unsafe, AGENTID_REASON_SAFE, configure_require_safe },
        { "certify not safe, safe required", false, certify_unsafe, AGENTID_REASON_SAFE, configure_require_safe },

        { "two banks selected", false, sel_two_banks, AGENTID_REASON_PCR_SELECTION },
        { "SHA-1 bank", false, sel_sha1, AGENTID_REASON_PCR_SELECTION },
        { "sizeofSelect 4", false, sel_four_bytes, AGENTID_REASON_PCR_SELECTION },
        { "PCR 23 added", false, sel_pcr23, AGENTID_REASON_PCR_SELECTION },
        { "PCR 0 missing", false, sel_pcr0_missing, AGENTID_REASON_PCR_SELECTION },
        { "no selection", false, sel_none, AGENTID_REASON_PCR_SELECTION },
        { "pcrDigest differs", false, quote_digest_flip, AGENTID_REASON_PCR_DIGEST },
        { "PCR value changed", false, tpm_pcr_changed, AGENTID_REASON_PCR_DIGEST },
        { "reference PCR 4", false, NULL, AGENTID_REASON_REFERENCE_PCRS, configure_reference_wrong },

        { "EAT signed by another key", false, eat_other_signer, AGENTID_REASON_EAT_SIGNATURE },
        { "EAT kid differs", false, eat_kid_flip, AGENTID_REASON_EAT_SIGNATURE },
        { "EAT kid 33 bytes", false, eat_kid_short, AGENTID_REASON_EAT_SIGNATURE },
        { "EAT with label 15", false, eat_label15, AGENTID_REASON_EAT_SIGNATURE },
        { "EAT untagged", false, eat_untagged, AGENTID_REASON_EAT_SIGNATURE },
        { "EAT signature flipped", false, eat_sig_flip, AGENTID_REASON_EAT_SIGNATURE },

        { "quote extraData differs", false, quote_extra_flip, AGENTID_REASON_QUOTE_BINDING },
        { "quote extraData = SHA-256(nonce)", false, quote_extra_certify, AGENTID_REASON_QUOTE_BINDING },

        { "exp claim", false, claims_exp, AGENTID_REASON_CLAIMS },
        { "scope claim", false, claims_scope, AGENTID_REASON_CLAIMS },
        { "no daemon", false, claims_no_daemon, AGENTID_REASON_CLAIMS },
        { "no iat", false, claims_no_iat, AGENTID_REASON_CLAIMS },
        { "no cnf", false, claims_no_cnf, AGENTID_REASON_CLAIMS },
        { "no workload", false, claims_no_workload, AGENTID_REASON_CLAIMS },
        { "negative iat", false, claims_iat_negative, AGENTID_REASON_CLAIMS },
        { "sub with upper-case hex", false, claims_sub_upper, AGENTID_REASON_CLAIMS },
        { "sub with another scheme", false, claims_sub_scheme, AGENTID_REASON_CLAIMS },
        { "sub with a bad key name", false, claims_sub_bad_name, AGENTID_REASON_CLAIMS },
        { "sub without key name", false, claims_sub_no_name, AGENTID_REASON_CLAIMS },
        { "cnf with a kid", false, claims_cnf_extra, AGENTID_REASON_CLAIMS },
        { "cnf kty OKP", false, claims_cnf_kty_okp, AGENTID_REASON_CLAIMS },
        { "eat_nonce 8 bytes", false, claims_nonce_short, AGENTID_REASON_CLAIMS },
        { "eat_nonce as text", false, claims_nonce_text, AGENTID_REASON_CLAIMS },
        { "uid as text", false, claims_uid_text, AGENTID_REASON_CLAIMS },
        { "uid 2^32-1", false, claims_uid_max, AGENTID_REASON_CLAIMS },
        { "owner empty", false, claims_owner_empty, AGENTID_REASON_CLAIMS },
        { "owner 257 bytes", false, claims_owner_long, AGENTID_REASON_CLAIMS },
        { "task_id empty", false, claims_task_empty, AGENTID_REASON_CLAIMS },
        { "task_id with NUL", false, claims_task_null, AGENTID_REASON_CLAIMS },
        { "not_after as text", false, claims_not_after_text, AGENTID_REASON_CLAIMS },
        { "workload gid", false, workload_unknown, AGENTID_REASON_CLAIMS },
        { "workload without pid", false, workload_no_pid, AGENTID_REASON_CLAIMS },
        { "workload without uid", false, workload_no_uid, AGENTID_REASON_CLAIMS },
        { "exe_sha256 31 bytes", false, workload_exe_short, AGENTID_REASON_CLAIMS },
        { "exe_path empty", false, workload_path_empty, AGENTID_REASON_CLAIMS },
        { "exe_path integer", false, workload_path_uint, AGENTID_REASON_CLAIMS },
        { "workload array", false, workload_not_map, AGENTID_REASON_CLAIMS },
        { "claims indefinite map", false, payload_indefinite, AGENTID_REASON_CLAIMS },
        { "claims an array", false, payload_array, AGENTID_REASON_CLAIMS },

        { "eat_profile v2", false, claims_profile, AGENTID_REASON_PROFILE },
        { "eat_nonce differs", false, claims_nonce_other, AGENTID_REASON_NONCE },
        { "iat too old", false, claims_iat_old, AGENTID_REASON_FRESHNESS },
        { "iat in the future", false, claims_iat_future, AGENTID_REASON_FRESHNESS },
        { "max age 9 s", false, NULL, AGENTID_REASON_FRESHNESS, configure_old_now },
        { "cnf another key", false, cnf_other, AGENTID_REASON_CNF },
        { "cnf y differs", false, claims_cnf_y_flip, AGENTID_REASON_CNF },
        { "sub of another host", false, claims_other_host, AGENTID_REASON_HOST_ID },
        { "not_after = now", false, claims_expired, AGENTID_REASON_KEY_EXPIRY },
        { "exe not on the allow-list", false, NULL, AGENTID_REASON_WORKLOAD, configure_allow_other },
        { "no exe_sha256 with an allow-list", false, claims_no_exe, AGENTID_REASON_WORKLOAD, configure_allow_default },

        { "wrong nonce", false, NULL, AGENTID_REASON_CERTIFY_NONCE, NULL, TRUST_EVIDENCE_AK, true },
        { "srk_name of another TPM", false, tpm_other_srk, AGENTID_REASON_QUALIFIED_NAME },

        /* Platform evidence: the same checks where they apply. */
        { "platform: AK of another TPM", true, ak_other_key, AGENTID_REASON_AK_TRUSTED, NULL, TRUST_DEFAULT_AK },
        { "platform: AK unrestricted", true, ak_unrestricted, AGENTID_REASON_AK_ATTRIBUTES },
        { "platform: certify signer", true, certify_other_signer, AGENTID_REASON_CERTIFY_SIGNATURE },
        { "platform: certify magic", true, certify_magic, AGENTID_REASON_CERTIFY_STRUCTURE },
        { "platform: certify extraData", true, host_certify_extra_binding, AGENTID_REASON_CERTIFY_NONCE },
        { "platform: host key restricted", true, host_restricted, AGENTID_REASON_KEY_ATTRIBUTES },
        { "platform: certified Name", true, certify_name_flip, AGENTID_REASON_CERTIFIED_NAME },
        { "platform: qualifiedName", true, certify_qn_flip, AGENTID_REASON_QUALIFIED_NAME },
        { "platform: quote signer", true, quote_other_signer, AGENTID_REASON_QUOTE_SIGNATURE },
        { "platform: quote type", true, quote_type_certify, AGENTID_REASON_QUOTE_STRUCTURE },
        { "platform: qualifiedSigner", true, quote_signer_flip, AGENTID_REASON_QUALIFIED_SIGNER },
        { "platform: resetCount", true, quote_reset, AGENTID_REASON_CLOCK },
        { "platform: safe required", true, quote_unsafe, AGENTID_REASON_SAFE, configure_require_safe },
        { "platform: PCR 23", true, sel_pcr23, AGENTID_REASON_PCR_SELECTION },
        { "platform: PCR value", true, tpm_pcr_changed, AGENTID_REASON_PCR_DIGEST },
        { "platform: reference PCR", true, NULL, AGENTID_REASON_REFERENCE_PCRS, configure_reference_wrong },
        { "platform: quote extraData", true, quote_extra_flip, AGENTID_REASON_QUOTE_BINDING },
        { "platform: wrong nonce", true, NULL, AGENTID_REASON_CERTIFY_NONCE, NULL, TRUST_EVIDENCE_AK, true },
};

typedef struct Harness {
        const Case *c;
        uint8_t *ak_pub;
        size_t ak_pub_size;
} Harness;

static void harness_hook(FakeStage stage, void *object, void *userdata) {
        Harness *h = userdata;

        if (h->c->hook)
                h->c->hook(stage, object, NULL);
        if (stage == FAKE_AK_PUBLIC_BYTES) {
                const FakeBytes *b = object;
                free(h->ak_pub);
                h->ak_pub = malloc(b->size);
                assert_non_null(h->ak_pub);
                memcpy(h->ak_pub, b->data, b->size);
                h->ak_pub_size = b->size;
        }
}

static void run_case(const Case *c, bool *covered) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        Harness h = { .c = c };
        FakeSpec spec;
        size_t size = 0;
        uint8_t nonce[32];

        spec_default(&spec, c->platform);
        spec.hook = harness_hook;
        spec.userdata = &h;
        build(&spec, &ev, &size);

        if (c->trust == TRUST_NO_AK) {
                v = agentid_verifier_new();
                assert_non_null(v);
                assert_int_equal(agentid_verifier_set_now(v, NOW), 0);
        } else if (c->trust == TRUST_DEFAULT_AK)
                v = verifier_default();
        else {
                /* Trust the AK the evidence carries, so what fails is the altered field, not the trust. */
                v = agentid_verifier_new();
                assert_non_null(v);
                assert_int_equal(agentid_verifier_add_trusted_ak(v, h.ak_pub, h.ak_pub_size), 0);
                assert_int_equal(agentid_verifier_set_now(v, NOW), 0);
        }
        free(h.ak_pub);
        if (c->configure)
                c->configure(v);

        memcpy(nonce, spec.nonce, sizeof(nonce));
        if (c->wrong_nonce)
                nonce[0] ^= 1;
        d = verify_with(v, c->platform, ev, size, nonce, sizeof(nonce));
        assert_reason(d, c->expect, c->what);
        covered[c->expect] = true;
}

static void test_every_check_negative(void **state) {
        bool covered_agent[64] = {}, covered_platform[64] = {};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_case(&cases[i], cases[i].platform ? covered_platform : covered_agent);

        /* Every check of each evidence type has at least one case that fails it first. */
        _cleanup_free_ uint8_t *ev = NULL;
        size_t size = 0;
        for (int platform = 0; platform <= 1; platform++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                FakeSpec spec;

                spec_default(&spec, platform);
                build(&spec, &ev, &size);
                d = verify_with(v, platform, ev, size, spec.nonce, spec.nonce_size);
                for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                        AgentidReason reason;
                        assert_int_equal(agentid_verdict_get_check(d, i, &reason, NULL, NULL, NULL), 0);
                        if (!(platform ? covered_platform : covered_agent)[reason])
                                fail_msg("%s check %s has no negative test", platform ? "platform" : "agent",
                                         agentid_reason_to_string(reason));
                }
                ev = mfree(ev);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Valid evidence */

static void test_valid_agent(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        unsigned char *der = NULL;
        FakeSpec spec;
        size_t size = 0;

        spec_default(&spec, false);
        build(&spec, &ev, &size);
        d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
        assert_valid(d);
        assert_null(agentid_verdict_get_platform(d));

        /* All 27 checks, in the documented order, each with a detail. */
        assert_int_equal(agentid_verdict_n_checks(d), 27);
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason reason;
                const char *name, *detail;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(d, i, &reason, &name, &ok, &detail), 0);
                assert_int_equal(reason, (AgentidReason) (i + 1));
                assert_true(ok);
                assert_true(strlen(detail) > 0);
        }
        assert_int_equal(agentid_verdict_get_check(d, 27, NULL, NULL, NULL, NULL), -ERANGE);
        assert_int_equal(agentid_verdict_get_check(NULL, 0, NULL, NULL, NULL, NULL), -EINVAL);

        const AgentidClaims *c = agentid_verdict_get_claims(d);
        assert_non_null(c);
        assert_int_equal(c->nonce_size, 32);
        assert_memory_equal(c->nonce, spec.nonce, 32);
        assert_int_equal(c->iat, IAT);
        assert_string_equal(c->key_name, "invoice-bot");
        assert_int_equal(strlen(c->host_id), 32);
        assert_true(strncmp(c->sub, "agentid://", 10) == 0);
        assert_string_equal(c->profile, "tag:agentid.org,2026:v1");
        assert_string_equal(c->owner, "finance-platform@example.com");
        assert_int_equal(c->uid, 1000);
        assert_int_equal(c->created, IAT - 3600);
        assert_true(c->has_not_after);
        assert_int_equal(c->not_after, IAT + 86400);
        assert_true(c->workload.has_exe_sha256);
        assert_int_equal(c->workload.exe_sha256[0], 0x11);
        assert_true(c->workload.exe_path_is_text);
        assert_string_equal((const char *) c->workload.exe_path, "/usr/libexec/invoice-bot");
        assert_string_equal(c->workload.unit, "invoice-bot.service");
        assert_int_equal(c->workload.uid, 1000);
        assert_int_equal(c->workload.pid, 4242);
        assert_string_equal(c->task_id, "task-7f3a");
        assert_null(c->parent_task_id);
        assert_string_equal(c->daemon, "0.1.0");
        assert_int_equal(c->tpm.reset_count, 2);
        assert_int_equal(c->tpm.clock, 123456789);
        assert_true(c->tpm.safe);
        assert_int_equal(c->tpm.pcrs[7][0], 0xa7);
        assert_int_equal(c->kid[0], 0x00);
        assert_int_equal(c->kid[1], 0x0b);

        /* The public key handed out is the agent key. */
        int n = i2d_PUBKEY(keys.key, &der);
        assert_true(n > 0);
        assert_int_equal(c->public_key_size, (size_t) n);
        assert_memory_equal(c->public_key, der, (size_t) n);
        uint8_t digest[32];
        assert_int_equal(sha256(der, (size_t) n, digest), 0);
        assert_memory_equal(c->spki_sha256, digest, 32);
        OPENSSL_free(der);
}

static void test_valid_platform(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        unsigned char *der = NULL;
        FakeSpec spec;
        size_t size = 0;
        uint8_t digest[32];
        char host_id[33];

        spec_default(&spec, true);
        build(&spec, &ev, &size);
        d = verify_with(v, true, ev, size, spec.nonce, spec.nonce_size);
        assert_valid(d);
        assert_int_equal(agentid_verdict_n_checks(d), 18);
        assert_null(agentid_verdict_get_claims(d));

        const AgentidPlatform *p = agentid_verdict_get_platform(d);
        assert_non_null(p);
        int n = i2d_PUBKEY(keys.host, &der);
        assert_true(n > 0);
        assert_int_equal(p->host_public_key_size, (size_t) n);
        assert_memory_equal(p->host_public_key, der, (size_t) n);
        OPENSSL_free(der);
        assert_memory_equal(p->srk_name, spec.srk_name, 34);
        assert_int_equal(sha256(spec.srk_name, 34, digest), 0);
        hex_encode_to(digest, 16, host_id);
        assert_string_equal(p->host_id, host_id);
        assert_int_equal(p->tpm.firmware_version, 0x2019102300163636ULL);

        /* Agent evidence is not platform evidence, and the other way round. */
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d2 = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
        assert_reason(d2, AGENTID_REASON_FORMAT, "platform evidence as agent evidence");
        _cleanup_free_ uint8_t *agent = NULL;
        spec_default(&spec, false);
        build(&spec, &agent, &size);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d3 = verify_with(v, true, agent, size, spec.nonce, spec.nonce_size);
        assert_reason(d3, AGENTID_REASON_FORMAT, "agent evidence as platform evidence");
}

/* Variations that must stay valid. */
HOOK_MAP(var_parent_task, FAKE_CLAIMS, fake_map_set(o, "parent_task_id", 0, cbor_util_new_text("task-0001")))
HOOK_MAP(var_path_bytes, FAKE_CLAIMS, workload_edit(o, "exe_path", cbor_util_new_bytes("/opt/\xff\xfe", 7)))
HOOK_MAP(var_minimal, FAKE_CLAIMS, {
        fake_map_delete(o, "not_after", 0);
        fake_map_delete(o, "task_id", 0);
        workload_edit(o, "exe_sha256", NULL);
        workload_edit(o, "exe_path", NULL);
        workload_edit(o, "unit", NULL);
})
HOOK(var_r_padded, FAKE_QUOTE_SIG, FakeSignature, {
        /* A leading zero byte more than needed: the verifier normalises r (tpm-notes §3.6). */
        memmove(o->r + 1, o->r, 32);
        o->r[0] = 0x00;
        o->r_size = 33;
})
HOOK(var_s_stripped, FAKE_CERTIFY_SIG, FakeSignature, {
        /* As a TPM that strips leading zeros would send it, when s happens to start with one; otherwise
         * an equivalent left-padded form with 0 bytes stripped. */
        size_t z = 0;
        while (z < o->s_size && o->s[z] == 0)
                z++;
        memmove(o->s, o->s + z, o->s_size - z);
        o->s_size = (uint16_t) (o->s_size - z);
})
HOOK(var_unsafe, FAKE_QUOTE, FakeAttest, o->safe = 0)
HOOK(var_auth_policy, FAKE_KEY_PUBLIC, FakePublic, {
        memset(o->auth_policy, 0x5a, 32);
        o->auth_policy_size = 32;
        o->attributes |= 0x80;  /* adminWithPolicy: how use is authorised is the host's choice */
})

static void test_valid_variants(void **state) {
        static const struct {
                const char *what;
                FakeHook hook;
                size_t nonce_size;
                void (*configure)(AgentidVerifier *v);
        } variants[] = {
                { "parent_task_id", var_parent_task, 32, NULL },
                { "exe_path not UTF-8", var_path_bytes, 32, NULL },
                { "only required claims", var_minimal, 32, NULL },
                { "r with a leading zero", var_r_padded, 32, NULL },
                { "s stripped", var_s_stripped, 32, NULL },
                { "not safe, not required", var_unsafe, 32, NULL },
                { "key with a policy", var_auth_policy, 32, NULL },
                { "16-byte nonce", NULL, 16, NULL },
                { "64-byte nonce", NULL, 64, NULL },
                { "allow-listed workload", NULL, 32, configure_allow_default },
                { "safe required", NULL, 32, configure_require_safe },
        };

        for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
                _cleanup_free_ uint8_t *ev = NULL;
                FakeSpec spec;
                size_t size = 0;

                spec_default(&spec, false);
                spec.hook = variants[i].hook;
                spec.nonce_size = variants[i].nonce_size;
                for (size_t k = 0; k < spec.nonce_size; k++)
                        spec.nonce[k] = (uint8_t) (0x80 + k);
                build(&spec, &ev, &size);
                if (variants[i].configure)
                        variants[i].configure(v);
                d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
                if (!agentid_verdict_is_valid(d)) {
                        print_checks(d);
                        fail_msg("variant \"%s\" refused", variants[i].what);
                }
        }

        /* The exe_path bytes come back as bytes. */
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        FakeSpec spec;
        size_t size = 0;
        spec_default(&spec, false);
        spec.hook = var_path_bytes;
        build(&spec, &ev, &size);
        d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
        const AgentidClaims *c = agentid_verdict_get_claims(d);
        assert_non_null(c);
        assert_false(c->workload.exe_path_is_text);
        assert_int_equal(c->workload.exe_path_size, 7);
        assert_memory_equal(c->workload.exe_path, "/opt/\xff\xfe", 7);
}

static void test_freshness_bounds(void **state) {
        _cleanup_free_ uint8_t *ev = NULL;
        FakeSpec spec;
        size_t size = 0;
        static const struct {
                uint64_t now, max_age;
                bool valid;
        } t[] = {
                { IAT, 0, true },
                { IAT + 300, 300, true },
                { IAT + 301, 300, false },
                { IAT - 60, 300, true },        /* iat 60 s ahead of our clock: tolerated skew */
                { IAT - 61, 300, false },
                { IAT + 86399, 86400, true },
                { IAT + 86400, UINT64_MAX, false }, /* not_after = IAT + 86400 */
        };

        spec_default(&spec, false);
        build(&spec, &ev, &size);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;

                assert_int_equal(agentid_verifier_set_now(v, t[i].now), 0);
                assert_int_equal(agentid_verifier_set_max_age(v, t[i].max_age), 0);
                d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
                if (agentid_verdict_is_valid(d) != t[i].valid) {
                        print_checks(d);
                        fail_msg("now %llu max-age %llu: expected %s", (unsigned long long) t[i].now,
                                 (unsigned long long) t[i].max_age, t[i].valid ? "valid" : "invalid");
                }
        }

        /* The system clock is ~2026 or later; the evidence is from 2025-11: too old. */
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        assert_int_equal(agentid_verifier_set_now(v, 0), 0);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
        assert_reason(d, AGENTID_REASON_FRESHNESS, "system clock");
}

static void test_reference_pcrs(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        FakeSpec spec;
        size_t size = 0;
        uint8_t pcr[32];

        for (unsigned i = 0; i < 8; i++) {
                memset(pcr, 0xa0 + (int) i, sizeof(pcr));
                assert_int_equal(agentid_verifier_add_reference_pcr(v, i, pcr), 0);
        }
        assert_int_equal(agentid_verifier_add_reference_pcr(v, 3, pcr), -EEXIST);
        assert_int_equal(agentid_verifier_add_reference_pcr(v, 8, pcr), -ERANGE);
        assert_int_equal(agentid_verifier_add_reference_pcr(v, 23, pcr), -ERANGE);
        assert_int_equal(agentid_verifier_add_reference_pcr(NULL, 0, pcr), -EINVAL);
        spec_default(&spec, false);
        build(&spec, &ev, &size);
        d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
        assert_valid(d);
        assert_true(check_ok(d, AGENTID_REASON_REFERENCE_PCRS));
}

/* A failure early in the list does not hide the checks that do not depend on it. */
static void test_all_failures_reported(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *ev = NULL;
        FakeSpec spec;
        size_t size = 0;
        uint8_t nonce[32];

        spec_default(&spec, false);
        build(&spec, &ev, &size);
        memcpy(nonce, spec.nonce, sizeof(nonce));
        nonce[31] ^= 0x80;
        d = verify_with(v, false, ev, size, nonce, sizeof(nonce));
        assert_reason(d, AGENTID_REASON_CERTIFY_NONCE, "wrong nonce");
        assert_true(check_ok(d, AGENTID_REASON_CERTIFY_SIGNATURE));
        assert_true(check_ok(d, AGENTID_REASON_EAT_SIGNATURE));
        assert_false(check_ok(d, AGENTID_REASON_QUOTE_BINDING));
        assert_false(check_ok(d, AGENTID_REASON_NONCE));
        assert_true(check_ok(d, AGENTID_REASON_CNF));
        assert_true(check_ok(d, AGENTID_REASON_HOST_ID));

        /* Malformed evidence: format fails, everything else is "not checked". */
        _cleanup_(agentid_verdict_freep) AgentidVerdict *m = verify_with(v, false, (const uint8_t *) "\xa0", 1, nonce, 32);
        assert_reason(m, AGENTID_REASON_FORMAT, "empty map");
        assert_int_equal(agentid_verdict_n_checks(m), 27);
        for (size_t i = 1; i < agentid_verdict_n_checks(m); i++) {
                const char *detail;
                bool ok;
                assert_int_equal(agentid_verdict_get_check(m, i, NULL, NULL, &ok, &detail), 0);
                assert_false(ok);
                assert_non_null(strstr(detail, "not checked"));
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Hostile bytes */

static void test_every_flip(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();

        for (int platform = 0; platform <= 1; platform++) {
                _cleanup_free_ uint8_t *ev = NULL;
                FakeSpec spec;
                size_t size = 0;
                static const uint8_t masks[] = { 0x01, 0x80, 0xff };

                spec_default(&spec, platform);
                build(&spec, &ev, &size);
                for (size_t i = 0; i < size; i += test_exhaustive_step())
                        for (size_t m = 0; m < ELEMENTSOF(masks); m++) {
                                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;

                                ev[i] ^= masks[m];
                                d = verify_with(v, platform, ev, size, spec.nonce, spec.nonce_size);
                                if (agentid_verdict_is_valid(d))
                                        fail_msg("%s evidence with byte %zu ^ %02x accepted", platform ? "platform" : "agent",
                                                 i, masks[m]);
                                ev[i] ^= masks[m];
                        }
                /* Unflipped, it is still valid. */
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, platform, ev, size, spec.nonce, spec.nonce_size);
                assert_valid(d);
        }
}

static void test_truncated_and_extended(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        _cleanup_free_ uint8_t *ev = NULL, *longer = NULL;
        FakeSpec spec;
        size_t size = 0;

        spec_default(&spec, false);
        build(&spec, &ev, &size);
        for (size_t n = 0; n < size; n++) {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, ev, n, spec.nonce, spec.nonce_size);
                if (agentid_reason_to_string(agentid_verdict_reason(d)) == NULL || agentid_verdict_is_valid(d) ||
                    agentid_verdict_reason(d) != AGENTID_REASON_FORMAT)
                        fail_msg("prefix of %zu bytes not refused as malformed", n);
        }

        longer = malloc(size + 16);
        assert_non_null(longer);
        memcpy(longer, ev, size);
        for (size_t extra = 1; extra <= 16; extra++) {
                memset(longer + size, extra == 1 ? 0x00 : 0xa0, extra);
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, longer, size + extra, spec.nonce,
                                                                                 spec.nonce_size);
                assert_reason(d, AGENTID_REASON_FORMAT, "trailing bytes");
        }

        /* A second copy appended (a CBOR sequence) is not one document either. */
        _cleanup_free_ uint8_t *twice = malloc(2 * size);
        assert_non_null(twice);
        memcpy(twice, ev, size);
        memcpy(twice + size, ev, size);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, twice, 2 * size, spec.nonce, spec.nonce_size);
        assert_reason(d, AGENTID_REASON_FORMAT, "two documents");
}

static void test_malformed_cbor(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = verifier_default();
        static const struct {
                const char *hex;
                const char *what;
        } bad[] = {
                { "", "empty input" },
                { "9a10000000", "array of 2^28 elements" },
                { "bb0000000100000000", "map of 2^32 pairs" },
                { "5affffffff", "4 GiB byte string" },
                { "a0", "empty map" },
                { "f6", "null" },
                { "80", "empty array" },
                { "bf6176 01ff", "indefinite map" },
                { "a1617601", "only v" },
                { "a26176016176 01", "duplicate key" },
                { "a2637470 6da0 617601", "keys out of order" },
                { "d2a0", "tag 18" },
                { "c0a0", "tag 0" },
                { "a3617601 63656174 40 63 74706d a0", "empty tpm map" },
                { "a3617601 63656174 5f40ff 63 74706d a0", "indefinite byte string" },
                { "fb3ff0000000000000", "float" },
                { "818181818181818181818181818181818181", "deep nesting" },
        };
        uint8_t nonce[32] = {};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *compact = malloc(strlen(bad[i].hex) + 1);
                _cleanup_free_ uint8_t *bytes = NULL;
                size_t n = 0, k = 0;

                for (const char *q = bad[i].hex; *q; q++)
                        if (*q != ' ')
                                compact[k++] = *q;
                compact[k] = 0;
                assert_int_equal(hex_decode(compact, &bytes, &n), 0);
                for (int platform = 0; platform <= 1; platform++) {
                        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, platform, bytes, n, nonce, 32);
                        assert_reason(d, AGENTID_REASON_FORMAT, bad[i].what);
                }
        }

        /* Over the size limit: refused before parsing. */
        _cleanup_free_ uint8_t *big = calloc(1, AGENTID_EVIDENCE_MAX + 8);
        assert_non_null(big);
        big[0] = 0x5a;  /* bstr with a 4-byte length */
        big[3] = (uint8_t) ((AGENTID_EVIDENCE_MAX + 3) >> 8);
        big[4] = (uint8_t) (AGENTID_EVIDENCE_MAX + 3);
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, big, AGENTID_EVIDENCE_MAX + 8, nonce, 32);
        assert_reason(d, AGENTID_REASON_FORMAT, "oversized");
}

/* ------------------------------------------------------------------------------------------------ */
/* API */

static void test_api(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        _cleanup_free_ uint8_t *ak = NULL, *ev = NULL;
        AgentidVerdict *d = (AgentidVerdict *) 0x1;
        size_t ak_size = 0, size = 0;
        uint8_t nonce[65] = {}, w[32] = {};
        FakeSpec spec;

        assert_non_null(v);
        assert_int_equal(fake_ak_public_bytes(keys.ak, &ak, &ak_size), 0);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), -EEXIST);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size - 1), -EBADMSG);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, (const uint8_t *) "\x00\x23", 2), -EBADMSG);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, NULL, 5), -EINVAL);
        assert_int_equal(agentid_verifier_add_trusted_ak(NULL, ak, ak_size), -EINVAL);
        assert_int_equal(agentid_verifier_add_allowed_workload(v, w), 0);
        assert_int_equal(agentid_verifier_add_allowed_workload(v, w), 0);
        assert_int_equal(agentid_verifier_add_allowed_workload(v, NULL), -EINVAL);
        assert_int_equal(agentid_verifier_set_max_age(NULL, 1), -EINVAL);
        assert_int_equal(agentid_verifier_set_now(NULL, 1), -EINVAL);
        assert_int_equal(agentid_verifier_set_require_safe(NULL, true), -EINVAL);

        spec_default(&spec, false);
        build(&spec, &ev, &size);
        assert_int_equal(agentid_verify_evidence(v, ev, size, nonce, 15, &d), -EINVAL);
        assert_int_equal(agentid_verify_evidence(v, ev, size, nonce, 65, &d), -EINVAL);
        assert_int_equal(agentid_verify_evidence(v, ev, size, NULL, 32, &d), -EINVAL);
        assert_int_equal(agentid_verify_evidence(NULL, ev, size, nonce, 32, &d), -EINVAL);
        assert_int_equal(agentid_verify_evidence(v, NULL, 3, nonce, 32, &d), -EINVAL);
        assert_int_equal(agentid_verify_platform(v, ev, size, nonce, 32, NULL), -EINVAL);
        assert_ptr_equal(d, (AgentidVerdict *) 0x1);     /* untouched on failure */

        assert_null(agentid_verdict_free(NULL));
        assert_null(agentid_verifier_free(NULL));
        assert_false(agentid_verdict_is_valid(NULL));
        assert_int_equal(agentid_verdict_n_checks(NULL), 0);
        assert_null(agentid_verdict_get_claims(NULL));

        /* Reason names: every code has one, unique; out of range has none. */
        for (int i = 0; i <= AGENTID_REASON_TOKEN_PEER_HOPS; i++) {
                const char *a = agentid_reason_to_string((AgentidReason) i);
                assert_non_null(a);
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(a, agentid_reason_to_string((AgentidReason) j));
        }
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_VALID), "valid");
        assert_string_equal(agentid_reason_to_string(AGENTID_REASON_QUOTE_BINDING), "quote_binding");
        assert_null(agentid_reason_to_string((AgentidReason) (AGENTID_REASON_TOKEN_PEER_HOPS + 1)));
        assert_null(agentid_reason_to_string((AgentidReason) -1));
}

/* Many trusted AKs: the matching one is found (and its cached key used). */
static void test_many_aks(void **state) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        _cleanup_free_ uint8_t *ev = NULL;
        FakeSpec spec;
        size_t size = 0;

        assert_non_null(v);
        for (int i = 0; i < 50; i++) {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
                _cleanup_free_ uint8_t *pub = NULL;
                size_t n = 0;
                char seed[32];

                snprintf(seed, sizeof(seed), "AK %d", i);
                k = fake_key_from_seed(seed);
                assert_non_null(k);
                assert_int_equal(fake_ak_public_bytes(i == 37 ? keys.ak : k, &pub, &n), 0);
                assert_int_equal(agentid_verifier_add_trusted_ak(v, pub, n), 0);
        }
        assert_int_equal(agentid_verifier_set_now(v, NOW), 0);
        spec_default(&spec, false);
        build(&spec, &ev, &size);
        for (int i = 0; i < 3; i++) {
                _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, ev, size, spec.nonce, spec.nonce_size);
                assert_valid(d);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* TPM structure parsers */

static void hex_bytes(const char *hex, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *compact = malloc(strlen(hex) + 1);
        size_t k = 0;
        for (const char *q = hex; *q; q++)
                if (*q != ' ')
                        compact[k++] = *q;
        compact[k] = 0;
        assert_int_equal(hex_decode(compact, ret, ret_size), 0);
}

static void test_tpm2_public(void **state) {
        _cleanup_free_ uint8_t *ecc = NULL, *rsa = NULL;
        size_t ecc_size = 0, rsa_size = 0;
        Tpm2Public p;

        assert_int_equal(fake_ak_public_bytes(keys.ak, &ecc, &ecc_size), 0);
        assert_int_equal(tpm2_public_parse(ecc, ecc_size, &p), 0);
        assert_int_equal(p.type, TPM2P_ALG_ECC);
        assert_int_equal(p.name_alg, TPM2P_ALG_SHA256);
        assert_int_equal(p.attributes, 0x00050472);
        assert_int_equal(p.symmetric.algorithm, TPM2P_ALG_NULL);
        assert_int_equal(p.scheme.scheme, TPM2P_ALG_ECDSA);
        assert_int_equal(p.scheme.hash_alg, TPM2P_ALG_SHA256);
        assert_int_equal(p.curve_id, TPM2P_ECC_NIST_P256);
        assert_int_equal(p.kdf.scheme, TPM2P_ALG_NULL);
        assert_int_equal(p.x.size, 32);
        assert_int_equal(p.y.size, 32);

        /* Every truncation and an extension are refused; *ret stays untouched. */
        for (size_t n = 0; n < ecc_size; n++) {
                Tpm2Public q = { .type = 0x7777 };
                assert_int_equal(tpm2_public_parse(ecc, n, &q), -EBADMSG);
                assert_int_equal(q.type, 0x7777);
        }
        _cleanup_free_ uint8_t *longer = malloc(ecc_size + 1);
        memcpy(longer, ecc, ecc_size);
        longer[ecc_size] = 0;
        assert_int_equal(tpm2_public_parse(longer, ecc_size + 1, &p), -EBADMSG);

        /* An RSA-2048 EK (TCG EK Credential Profile template L-1): AES-128-CFB, policy, 256-byte modulus. */
        char hex[1024];
        int off = snprintf(hex, sizeof(hex),
                           "0001 000b 000300b2 0020 837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
                           " 0006 0080 0043 0010 0800 00000000 0100 ");
        for (int i = 0; i < 256; i++)
                off += snprintf(hex + off, sizeof(hex) - (size_t) off, "%02x", (unsigned) (i | 0x80));
        hex_bytes(hex, &rsa, &rsa_size);
        assert_int_equal(tpm2_public_parse(rsa, rsa_size, &p), 0);
        assert_int_equal(p.type, TPM2P_ALG_RSA);
        assert_int_equal(p.attributes, 0x000300b2);
        assert_int_equal(p.auth_policy.size, 32);
        assert_int_equal(p.symmetric.algorithm, TPM2P_ALG_AES);
        assert_int_equal(p.symmetric.key_bits, 128);
        assert_int_equal(p.symmetric.mode, TPM2P_ALG_CFB);
        assert_int_equal(p.scheme.scheme, TPM2P_ALG_NULL);
        assert_int_equal(p.key_bits, 2048);
        assert_int_equal(p.modulus.size, 256);
        EVP_PKEY *pk = NULL;
        assert_int_equal(tpm2_public_to_pkey(&p, NULL, &pk), -EOPNOTSUPP);

        /* Layouts this parser does not know are refused, not skipped. */
        static const char *const refused[] = {
                "0008 000b 00000000 0000 0010 0010",            /* KEYEDHASH */
                "0023 0000 00000000 0000 0010 0010 0003 0010 0000 0000", /* nameAlg NULL */
                "0023 000b 00000000 0000 000a 0010 0003 0010 0000 0000", /* symmetric XOR */
                "0023 000b 00000000 0000 0010 0014 000b 0003 0010 0000 0000", /* RSASSA on ECC */
                "0023 000b 00000000 0000 0010 0018 0099 0003 0010 0000 0000", /* unknown hash */
                "0023 000b 00000000 0041 0010 0018 000b 0003 0010 0000 0000", /* policy of 65 bytes */
                "0023 000b 00000000 0000 0010 0018 000b 0003 0099 0000 0000", /* unknown KDF */
                "0023 000b 00000000 0000 0010 0018 000b 0003 0010 0043 0000", /* x of 67 bytes */
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_free_ uint8_t *b = NULL;
                size_t n = 0;
                hex_bytes(refused[i], &b, &n);
                assert_int_equal(tpm2_public_parse(b, n, &p), -EBADMSG);
        }
        /* ... and ones it does, minimal: ECDAA with count, KDF with hash, empty point. */
        {
                _cleanup_free_ uint8_t *b = NULL;
                size_t n = 0;
                hex_bytes("0023 000b 00040000 0000 0006 0100 0043 001a 000b 0001 0003 0020 000b 0000 0000", &b, &n);
                assert_int_equal(tpm2_public_parse(b, n, &p), 0);
                assert_int_equal(p.scheme.count, 1);
                assert_int_equal(p.kdf.hash_alg, TPM2P_ALG_SHA256);
                assert_int_equal(p.symmetric.key_bits, 256);
        }
}

static void test_tpm2_signature(void **state) {
        _cleanup_free_ uint8_t *b = NULL, *der = NULL;
        size_t n = 0, der_size = 0;
        Tpm2Signature s;
        uint8_t raw[64];

        /* RSASSA parses; anything but RSASSA and ECDSA is refused as unsupported. */
        hex_bytes("0014 000b 0004 01020304", &b, &n);
        assert_int_equal(tpm2_signature_parse(b, n, &s), 0);
        assert_int_equal(s.sig_alg, TPM2P_ALG_RSASSA);
        assert_int_equal(s.rsa.size, 4);
        assert_int_equal(tpm2_signature_ecdsa_to_der(&s, 32, &der, &der_size), -EBADMSG);
        b = mfree(b);
        hex_bytes("0016 000b 0004 01020304", &b, &n);
        assert_int_equal(tpm2_signature_parse(b, n, &s), -EOPNOTSUPP);
        b = mfree(b);
        hex_bytes("0005 000b", &b, &n);
        assert_int_equal(tpm2_signature_parse(b, n, &s), -EOPNOTSUPP);
        b = mfree(b);
        hex_bytes("0018 000b 0001 05 0001", &b, &n);
        assert_int_equal(tpm2_signature_parse(b, n, &s), -EBADMSG);  /* s truncated */
        b = mfree(b);

        /* r stripped to one byte, s with leading zeros: both normalised to 32 bytes. */
        hex_bytes("0018 000b 0001 05 0023 0000000000000000000000000000000000000000000000000000000000000000000007", &b, &n);
        assert_int_equal(tpm2_signature_parse(b, n, &s), 0);
        assert_int_equal(tpm2_signature_ecdsa_to_der(&s, 32, &der, &der_size), 0);
        assert_int_equal(ecdsa_der_to_raw(der, der_size, 32, raw), 0);
        for (size_t i = 0; i < 31; i++) {
                assert_int_equal(raw[i], 0);
                assert_int_equal(raw[32 + i], 0);
        }
        assert_int_equal(raw[31], 5);
        assert_int_equal(raw[63], 7);
        der = mfree(der);
        b = mfree(b);

        /* 33 significant bytes do not fit P-256. */
        hex_bytes("0018 000b 0021 010000000000000000000000000000000000000000000000000000000000000000 0001 01", &b, &n);
        assert_int_equal(tpm2_signature_parse(b, n, &s), 0);
        assert_int_equal(tpm2_signature_ecdsa_to_der(&s, 32, &der, &der_size), -EBADMSG);
}

static void test_tpm2_attest(void **state) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n = 0;
        Tpm2Attest a;

        /* The quote of tpm-notes §3.1, field by field (145 bytes). */
        hex_bytes("ff544347 8018"
                  " 0022 000bfed41e730000000000000000000000000000000000000000000000000000c39d"
                  " 0020 31e200000000000000000000000000000000000000000000000000000000710f"
                  " 000000000000c604 00000002 00000000 01 2019102300163636"
                  " 00000001 000b 03 000080"
                  " 0020 644d000000000000000000000000000000000000000000000000000000004f62",
                  &b, &n);
        assert_int_equal(n, 145);
        assert_int_equal(tpm2_attest_parse(b, n, &a), 0);
        assert_int_equal(a.magic, TPM2P_GENERATED_VALUE);
        assert_int_equal(a.type, TPM2P_ST_ATTEST_QUOTE);
        assert_int_equal(a.qualified_signer.size, 34);
        assert_int_equal(a.extra_data.size, 32);
        assert_int_equal(a.clock, 0xc604);
        assert_int_equal(a.reset_count, 2);
        assert_int_equal(a.safe, 1);
        assert_int_equal(a.firmware_version, 0x2019102300163636ULL);
        assert_int_equal(a.quote.n_selections, 1);
        assert_int_equal(a.quote.selections[0].hash, TPM2P_ALG_SHA256);
        assert_int_equal(a.quote.selections[0].size_of_select, 3);
        assert_int_equal(a.quote.selections[0].select[2], 0x80);
        assert_int_equal(a.quote.pcr_digest.size, 32);
        for (size_t k = 0; k < n; k++)
                assert_int_equal(tpm2_attest_parse(b, k, &a), -EBADMSG);

        /* safe must be 0 or 1; sizeofSelect at most 4; at most 16 selections; known types only. */
        uint8_t c[145];
        memcpy(c, b, n);
        c[92] = 2;
        assert_int_equal(tpm2_attest_parse(c, n, &a), -EBADMSG);
        memcpy(c, b, n);
        c[107] = 5;
        assert_int_equal(tpm2_attest_parse(c, n, &a), -EBADMSG);
        memcpy(c, b, n);
        c[104] = 17;
        assert_int_equal(tpm2_attest_parse(c, n, &a), -EBADMSG);
        memcpy(c, b, n);
        c[5] = 0x1a;
        assert_int_equal(tpm2_attest_parse(c, n, &a), -EPROTONOSUPPORT);
        memcpy(c, b, n);
        c[5] = 0x17;    /* now read as a certify: the quote body does not fit */
        assert_int_equal(tpm2_attest_parse(c, n, &a), -EBADMSG);
}

static void test_tpm2_names(void **state) {
        _cleanup_free_ uint8_t *pub = NULL;
        size_t size = 0;
        Tpm2Public p;
        uint8_t name[34], expected[34], qn[34], srk[34], buf[38];

        assert_int_equal(fake_ak_public_bytes(keys.ak, &pub, &size), 0);
        assert_int_equal(tpm2_public_parse(pub, size, &p), 0);
        assert_int_equal(tpm2_public_name(&p, pub, size, name), 0);
        expected[0] = 0x00;
        expected[1] = 0x0b;
        assert_int_equal(sha256(pub, size, expected + 2), 0);
        assert_memory_equal(name, expected, 34);
        p.name_alg = TPM2P_ALG_SHA384;
        assert_int_equal(tpm2_public_name(&p, pub, size, name), -EOPNOTSUPP);

        /* QN(SRK) = 000b || H(40000001 || Name(SRK)); QN(K) = 000b || H(QN(SRK) || Name(K)). */
        memset(srk, 0x33, sizeof(srk));
        srk[0] = 0x00;
        srk[1] = 0x0b;
        assert_int_equal(tpm2_primary_qualified_name(TPM2P_RH_OWNER, srk, qn), 0);
        memcpy(buf, "\x40\x00\x00\x01", 4);
        memcpy(buf + 4, srk, 34);
        assert_int_equal(sha256(buf, 38, expected + 2), 0);
        assert_memory_equal(qn, expected, 34);
        uint8_t both[68], qk[34];
        memcpy(both, qn, 34);
        memcpy(both + 34, name, 34);
        assert_int_equal(tpm2_qualified_name(qn, name, qk), 0);
        assert_int_equal(sha256(both, 68, expected + 2), 0);
        assert_memory_equal(qk, expected, 34);
}

/* ------------------------------------------------------------------------------------------------ */
/* Golden vectors (docs/formats.md §5, §6) */

typedef struct GoldenSigs {
        uint8_t certify_r[32], certify_s[32], quote_r[32], quote_s[32], cose[64];
} GoldenSigs;

static void golden_signature(const cbor_item_t *tpm, const char *key, uint8_t r[32], uint8_t s[32]) {
        const uint8_t *b;
        size_t n;
        Tpm2Signature sig;
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(tpm, key), &b, &n), 0);
        assert_int_equal(tpm2_signature_parse(b, n, &sig), 0);
        assert_int_equal(sig.r.size, 32);
        assert_int_equal(sig.s.size, 32);
        memcpy(r, sig.r.buffer, 32);
        memcpy(s, sig.s.buffer, 32);
}

static void golden_hook(FakeStage stage, void *object, void *userdata) {
        const GoldenSigs *g = userdata;
        FakeSignature *s = object;
        FakeBytes *b = object;

        /* ECDSA signatures are randomised; put the documented ones in place of the fresh ones. */
        switch (stage) {
        case FAKE_CERTIFY_SIG:
                memcpy(s->r, g->certify_r, 32);
                memcpy(s->s, g->certify_s, 32);
                break;
        case FAKE_QUOTE_SIG:
                memcpy(s->r, g->quote_r, 32);
                memcpy(s->s, g->quote_s, 32);
                break;
        case FAKE_EAT_BYTES:
                memcpy(b->data + b->size - 64, g->cose, 64);
                break;
        default:
                break;
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

static void check_golden(bool platform) {
        static const CborLimits limits = { .max_size = 16384, .max_depth = 3, .max_items = 64,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        const char *vector = platform ? "platform-evidence" : "agent-evidence";
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *golden = NULL, *fresh = NULL, *regen = NULL, *ak = NULL;
        _cleanup_cbor_ cbor_item_t *item = NULL;
        size_t golden_size = 0, fresh_size = 0, regen_size = 0, ak_size = 0;
        GoldenSigs sigs = {};
        FakeSpec spec;

        spec_default(&spec, platform);
        build(&spec, &fresh, &fresh_size);
        dump(platform ? "platform-evidence.cbor" : "agent-evidence.cbor", fresh, fresh_size);
        assert_int_equal(fake_ak_public_bytes(keys.ak, &ak, &ak_size), 0);
        dump("ak.pub", ak, ak_size);

        int r = golden_load(vector, &golden, &golden_size);
        if (r < 0) {
                _cleanup_free_ char *hex = hex_encode(fresh, fresh_size);
                fail_msg("no golden:%s in docs/formats.md (%d); the generator gives %s", vector, r, hex);
        }

        /* The documented AK is the generator's, and the documented evidence verifies with it as the
         * only trusted AK, pinned to its time. */
        _cleanup_free_ uint8_t *golden_ak = NULL;
        size_t golden_ak_size = 0;
        assert_int_equal(golden_load("agent-evidence-ak", &golden_ak, &golden_ak_size), 0);
        assert_int_equal(golden_ak_size, ak_size);
        assert_memory_equal(golden_ak, ak, ak_size);
        _cleanup_(agentid_verifier_freep) AgentidVerifier *pinned = agentid_verifier_new();
        assert_non_null(pinned);
        assert_int_equal(agentid_verifier_add_trusted_ak(pinned, golden_ak, golden_ak_size), 0);
        assert_int_equal(agentid_verifier_set_now(pinned, NOW), 0);
        d = verify_with(pinned, platform, golden, golden_size, spec.nonce, spec.nonce_size);
        assert_valid(d);
        if (!platform) {
                const AgentidClaims *c = agentid_verdict_get_claims(d);
                assert_string_equal(c->sub, "agentid://20ea50163be2209e6701d09fb8081506/invoice-bot");
        } else
                assert_string_equal(agentid_verdict_get_platform(d)->host_id, "20ea50163be2209e6701d09fb8081506");

        /* And it is exactly what agentidd's format produces for these inputs, signatures aside. */
        assert_int_equal(cbor_util_decode(golden, golden_size, &limits, &item, NULL), 0);
        const cbor_item_t *tpm = cbor_util_map_get_text(item, "tpm");
        golden_signature(tpm, platform ? "host_certify_sig" : "certify_sig", sigs.certify_r, sigs.certify_s);
        golden_signature(tpm, "quote_sig", sigs.quote_r, sigs.quote_s);
        if (!platform) {
                const uint8_t *eat;
                size_t n;
                assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(item, "eat"), &eat, &n), 0);
                memcpy(sigs.cose, eat + n - 64, 64);
        }
        spec.hook = golden_hook;
        spec.userdata = &sigs;
        build(&spec, &regen, &regen_size);
        if (regen_size != golden_size || memcmp(regen, golden, golden_size) != 0) {
                _cleanup_free_ char *hex = hex_encode(fresh, fresh_size);
                fail_msg("golden:%s differs from the generator; freshly generated: %s", vector, hex);
        }
}

static void test_golden_agent(void **state) {
        check_golden(false);
}

static void test_golden_platform(void **state) {
        check_golden(true);
}

/* ------------------------------------------------------------------------------------------------ */
/* Evidence captured from swtpm through agentidd (tests/data/, tests/data/capture.sh) */

/* tests/data/NAME: the build passes .../docs/formats.md, and tests/ is its sibling. */
static int data_load(const char *name, uint8_t **ret, size_t *ret_size) {
        const char *doc = getenv("AGENTID_TEST_FORMATS_DOC");
        _cleanup_free_ char *dir = NULL, *path = NULL;
        char *end;

        if (!doc)
                return -ENOENT;
        dir = strdup(doc);
        assert_non_null(dir);
        end = strrchr(dir, '/');
        assert_non_null(end);
        *end = 0;                               /* .../docs */
        assert_true(asprintf(&path, "%s/../tests/data/%s", dir, name) > 0);
        return read_file_at(AT_FDCWD, path, 1 << 20, ret, ret_size);
}

static void data_text(const char *name, char *buf, size_t n) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t size = 0;
        assert_int_equal(data_load(name, &b, &size), 0);
        size_t k = 0;
        for (size_t i = 0; i < size && k + 1 < n; i++)
                if (b[i] != '\n' && b[i] != ' ')
                        buf[k++] = (char) b[i];
        buf[k] = 0;
}

static void test_captured_swtpm(void **state) {
        _cleanup_free_ uint8_t *ak = NULL, *agent = NULL, *platform = NULL, *agent_der = NULL, *host_der = NULL,
                               *receipt = NULL, *nonce = NULL, *payload = NULL;
        size_t ak_size = 0, agent_size = 0, platform_size = 0, agent_der_size = 0, host_der_size = 0,
               receipt_size = 0, nonce_size = 0, payload_size = 0;
        char nonce_hex[160], at[32];

        if (data_load("agent-evidence.cbor", &agent, &agent_size) == -ENOENT)
                skip();
        assert_int_equal(data_load("ak-public.tpmt", &ak, &ak_size), 0);
        assert_int_equal(data_load("platform-evidence.cbor", &platform, &platform_size), 0);
        assert_int_equal(data_load("agent-public.der", &agent_der, &agent_der_size), 0);
        assert_int_equal(data_load("host-public.der", &host_der, &host_der_size), 0);
        assert_int_equal(data_load("receipt.cose", &receipt, &receipt_size), 0);
        data_text("nonce.hex", nonce_hex, sizeof(nonce_hex));
        data_text("captured-at.txt", at, sizeof(at));
        assert_int_equal(hex_decode(nonce_hex, &nonce, &nonce_size), 0);

        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = agentid_verifier_new();
        assert_non_null(v);
        assert_int_equal(agentid_verifier_add_trusted_ak(v, ak, ak_size), 0);
        assert_int_equal(agentid_verifier_set_now(v, strtoull(at, NULL, 10)), 0);

        /* Agent evidence: valid, and the key it certifies is the key agentidctl public-key printed. */
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = verify_with(v, false, agent, agent_size, nonce, nonce_size);
        assert_valid(d);
        const AgentidClaims *c = agentid_verdict_get_claims(d);
        assert_int_equal(c->public_key_size, agent_der_size);
        assert_memory_equal(c->public_key, agent_der, agent_der_size);
        assert_string_equal(c->key_name, "golden-agent");
        assert_string_equal(c->task_id, "task-golden");

        /* Platform evidence: valid, and the host key it certifies is the HostPublicKey property. */
        _cleanup_(agentid_verdict_freep) AgentidVerdict *p = verify_with(v, true, platform, platform_size, nonce, nonce_size);
        assert_valid(p);
        const AgentidPlatform *pl = agentid_verdict_get_platform(p);
        assert_int_equal(pl->host_public_key_size, host_der_size);
        assert_memory_equal(pl->host_public_key, host_der, host_der_size);
        assert_string_equal(pl->host_id, c->host_id);

        /* The receipt of that key's destruction verifies with the certified host key and names the key
         * the evidence certified, by kid and spki_sha256. */
        static const CborLimits limits = { .max_size = 4096, .max_depth = 1, .max_items = 32,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        const unsigned char *q = pl->host_public_key;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *host = d2i_PUBKEY(NULL, &q, (long) pl->host_public_key_size);
        assert_non_null(host);
        assert_int_equal(cose_sign1_check(receipt, receipt_size, host, NULL, NULL, &payload, &payload_size), 0);
        _cleanup_cbor_ cbor_item_t *r = NULL;
        const uint8_t *kid, *spki;
        size_t kid_size, spki_size;
        assert_int_equal(cbor_util_decode(payload, payload_size, &limits, &r, NULL), 0);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(r, "kid"), &kid, &kid_size), 0);
        assert_int_equal(cbor_util_get_bytes(cbor_util_map_get_text(r, "spki_sha256"), &spki, &spki_size), 0);
        assert_int_equal(kid_size, 34);
        assert_memory_equal(kid, c->kid, 34);
        assert_int_equal(spki_size, 32);
        assert_memory_equal(spki, c->spki_sha256, 32);

        /* Real TPM bytes, flipped one at a time, are refused like the generator's. */
        for (size_t i = 0; i < agent_size; i += test_exhaustive_step()) {
                agent[i] ^= 0x20;
                _cleanup_(agentid_verdict_freep) AgentidVerdict *f = verify_with(v, false, agent, agent_size, nonce, nonce_size);
                if (agentid_verdict_is_valid(f))
                        fail_msg("captured agent evidence with byte %zu ^ 20 accepted", i);
                agent[i] ^= 0x20;
        }
}

/* What verifiers are given as the trusted AK: a TPMT_PUBLIC as is, a TPM2B_PUBLIC unwrapped, a CBOR map
 * only if it is an AK record. */
static void test_ak_public_containers(void **state) {
        _cleanup_free_ uint8_t *ak = NULL, *out = NULL, *wrapped = NULL;
        size_t ak_size = 0, out_size = 0;
        static const uint8_t not_a_record[] = { 0xa1, 0x01, 0x02 };

        if (data_load("ak-public.tpmt", &ak, &ak_size) == -ENOENT)
                skip();
        assert_int_equal(enroll_ak_public(ak, ak_size, &out, &out_size), 0);
        assert_int_equal(out_size, ak_size);
        assert_memory_equal(out, ak, ak_size);
        out = mfree(out);

        wrapped = malloc(ak_size + 2);
        assert_non_null(wrapped);
        wrapped[0] = (uint8_t) (ak_size >> 8);
        wrapped[1] = (uint8_t) ak_size;
        memcpy(wrapped + 2, ak, ak_size);
        assert_int_equal(enroll_ak_public(wrapped, ak_size + 2, &out, &out_size), 0);
        assert_int_equal(out_size, ak_size);
        assert_memory_equal(out, ak, ak_size);
        out = mfree(out);

        assert_int_equal(enroll_ak_public(not_a_record, sizeof(not_a_record), &out, &out_size), -EBADMSG);
        assert_null(out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_agent),
                cmocka_unit_test(test_ak_public_containers),
                cmocka_unit_test(test_valid_platform),
                cmocka_unit_test(test_valid_variants),
                cmocka_unit_test(test_freshness_bounds),
                cmocka_unit_test(test_reference_pcrs),
                cmocka_unit_test(test_every_check_negative),
                cmocka_unit_test(test_all_failures_reported),
                cmocka_unit_test(test_every_flip),
                cmocka_unit_test(test_truncated_and_extended),
                cmocka_unit_test(test_malformed_cbor),
                cmocka_unit_test(test_api),
                cmocka_unit_test(test_many_aks),
                cmocka_unit_test(test_tpm2_public),
                cmocka_unit_test(test_tpm2_signature),
                cmocka_unit_test(test_tpm2_attest),
                cmocka_unit_test(test_tpm2_names),
                cmocka_unit_test(test_golden_agent),
                cmocka_unit_test(test_golden_platform),
                cmocka_unit_test(test_captured_swtpm),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

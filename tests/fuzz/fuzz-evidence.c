/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The evidence verifier (attest/verify.h): every input goes through agentid_verify_evidence() and
 * agentid_verify_platform() with one verifier configured once: the AK of tests/data/ak-public.tpmt,
 * the clock pinned to tests/data/captured-at.txt and the nonce of tests/data/nonce.hex, so the
 * captured evidence in the corpus is valid and the fuzzer reaches every check.
 *
 * Invariants: an input never makes the call fail except for -ENOMEM/-EIO; the verdict lists every
 * check of its type, in reason order; the verdict's reason is the first failed check and every check
 * before it passed; a valid verdict has claims (agent) or a platform (platform), an invalid one has
 * neither, and what they hold matches what was checked.
 */

#include <errno.h>
#include <string.h>

#include "attest/verify.h"
#include "tests/fuzz/fuzz.h"

/* tests/data/ak-public.tpmt */
static const uint8_t ak_public[] = {
        0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x04, 0x72, 0x00, 0x00, 0x00, 0x10,
        0x00, 0x18, 0x00, 0x0b, 0x00, 0x03, 0x00, 0x10, 0x00, 0x20, 0x0a, 0x09,
        0x78, 0x0f, 0x22, 0x0b, 0x2e, 0x5c, 0x22, 0x99, 0xae, 0x92, 0xac, 0x75,
        0x11, 0x75, 0xbc, 0x1f, 0xb9, 0xef, 0x6b, 0x35, 0x02, 0x10, 0x44, 0x80,
        0x95, 0xd3, 0x2f, 0x6e, 0xbf, 0xcf, 0x00, 0x20, 0x35, 0xf3, 0xbd, 0xcc,
        0xcb, 0x01, 0x7a, 0x07, 0xd3, 0x81, 0xbe, 0x0b, 0x27, 0xaf, 0x64, 0xf4,
        0x4f, 0xe2, 0xb2, 0xbb, 0x6b, 0x6b, 0x29, 0x31, 0x03, 0xfa, 0x43, 0xc5,
        0xa3, 0x27, 0xf9, 0xab
};

/* tests/data/nonce.hex */
static const uint8_t nonce[32] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

/* tests/data/captured-at.txt: when the evidence there was made. */
#define CAPTURED_AT UINT64_C(1795649674)

static const AgentidVerifier *fuzz_verifier(void) {
        static AgentidVerifier *v = NULL;

        if (!v) {
                v = agentid_verifier_new();
                FUZZ_CHECK(v);
                FUZZ_CHECK(agentid_verifier_add_trusted_ak(v, ak_public, sizeof(ak_public)) == 0);
                FUZZ_CHECK(agentid_verifier_set_now(v, CAPTURED_AT) == 0);
        }
        return v;
}

static void check_verdict(const AgentidVerdict *d, bool platform) {
        static int verbose = -1;
        AgentidReason reason = agentid_verdict_reason(d);

        /* FUZZ_VERBOSE=1: say what each input got, to see which corpus files reach which check. */
        if (verbose < 0)
                verbose = !!getenv("FUZZ_VERBOSE");
        if (verbose)
                fprintf(stderr, "%s: %s\n", platform ? "platform" : "agent", agentid_reason_to_string(reason));

        bool valid = agentid_verdict_is_valid(d);
        size_t n = agentid_verdict_n_checks(d);
        bool seen_failure = false;

        FUZZ_CHECK(agentid_reason_to_string(reason));
        FUZZ_CHECK(valid == (reason == AGENTID_REASON_VALID));
        FUZZ_CHECK(n > 0);

        for (size_t i = 0; i < n; i++) {
                AgentidReason cr;
                const char *name = NULL, *detail = NULL;
                bool ok;

                FUZZ_CHECK(agentid_verdict_get_check(d, i, &cr, &name, &ok, &detail) == 0);
                FUZZ_CHECK(name && detail);
                FUZZ_CHECK(agentid_reason_to_string(cr) && strcmp(name, agentid_reason_to_string(cr)) == 0);
                if (!ok && !seen_failure) {
                        FUZZ_CHECK(cr == reason);
                        seen_failure = true;
                }
        }
        FUZZ_CHECK(seen_failure == !valid);
        FUZZ_CHECK(agentid_verdict_get_check(d, n, NULL, NULL, NULL, NULL) == -ERANGE);

        const AgentidClaims *c = agentid_verdict_get_claims(d);
        const AgentidPlatform *p = agentid_verdict_get_platform(d);
        if (!valid) {
                FUZZ_CHECK(!c && !p);
                return;
        }
        if (platform) {
                FUZZ_CHECK(p && !c);
                FUZZ_CHECK(strlen(p->host_id) == 32);
                FUZZ_CHECK(p->host_public_key && p->host_public_key_size > 0);
        } else {
                FUZZ_CHECK(c && !p);
                FUZZ_CHECK(c->nonce_size == sizeof(nonce) && memcmp(c->nonce, nonce, sizeof(nonce)) == 0);
                FUZZ_CHECK(c->sub && c->host_id && c->key_name && c->profile && c->owner && c->daemon);
                FUZZ_CHECK(strlen(c->host_id) == 32);
                FUZZ_CHECK(c->public_key && c->public_key_size > 0);
                FUZZ_CHECK(c->iat <= CAPTURED_AT + AGENTID_MAX_CLOCK_SKEW);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const AgentidVerifier *v = fuzz_verifier();
        AgentidVerdict *d = NULL;
        int r;

        r = agentid_verify_evidence(v, data, size, nonce, sizeof(nonce), &d);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO);
        if (r == 0) {
                FUZZ_CHECK(d);
                check_verdict(d, false);
        } else
                FUZZ_CHECK(!d);
        d = agentid_verdict_free(d);

        r = agentid_verify_platform(v, data, size, nonce, sizeof(nonce), &d);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO);
        if (r == 0) {
                FUZZ_CHECK(d);
                check_verdict(d, true);
        } else
                FUZZ_CHECK(!d);
        agentid_verdict_free(d);

        return 0;
}

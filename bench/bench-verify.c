/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-verify: verifications per second on one core, the way a gateway runs them: one
 * AgentidVerifier configured once (trusted AK decoded and cached), then one agentid_verify_evidence(),
 * agentid_verify_platform() or agentid_verify_token() per document. The evidence is made by the test
 * generator with software keys (tests/lib/fake-evidence.c), the token as agentidd encodes one
 * (token_claims_encode(), COSE_Sign1 ES256) signed by a software key; sizes and structure are those of
 * real ones.
 *
 * Batches of --batch verifications are timed --rounds times; the report gives the median rate and
 * the spread; --csv=FILE appends the medians in bench-daemon's columns. Not run by the test suites:
 * numbers belong in docs/verifier.md and docs/performance.md, not in timed tests.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "attest/cose.h"
#include "attest/peers.h"
#include "attest/token.h"
#include "attest/verify.h"
#include "bench/bench-util.h"
#include "common/crypto-util.h"
#include "common/macro.h"
#include "tests/lib/fake-evidence.h"

static unsigned arg_rounds = 15;
static unsigned arg_batch = 1000;
static const char *arg_csv = NULL;

/* The token every round verifies, and what the verifier is given with it. */
typedef struct TokenCase {
        uint8_t *token, *spki;
        size_t size, spki_size;
        uint8_t kid[AGENTID_TPM_NAME_SIZE];
        bool from_peer;         /* verified with the registry's key (agentid_verify_token_from_peer()) */
} TokenCase;

static double now_us(void) {
        return bench_now() * 1e6;
}

static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "rounds", required_argument, NULL, 'r' },
                { "batch", required_argument, NULL, 'b' },
                { "csv", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "r:b:c:h", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        arg_rounds = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'b':
                        arg_batch = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'c':
                        arg_csv = optarg;
                        break;
                case 'h':
                        printf("Usage: agentid-bench-verify [--rounds=N] [--batch=N] [--csv=FILE]\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        if (arg_rounds == 0 || arg_batch == 0)
                return -EINVAL;
        return 1;
}

/* One timed pass over a batch; returns verifications per second, or < 0 if one was not valid. With
 * tc, the token is verified instead of the evidence. */
static double run_batch(const AgentidVerifier *v, bool platform, const uint8_t *ev, size_t size, const uint8_t *nonce,
                        size_t nonce_size, const TokenCase *tc) {
        double t0 = now_us();
        for (unsigned i = 0; i < arg_batch; i++) {
                AgentidVerdict *d = NULL;
                int r = tc && tc->from_peer ? agentid_verify_token_from_peer(v, tc->token, tc->size, "bench-api", &d) :
                        tc ? agentid_verify_token(v, tc->token, tc->size, tc->spki, tc->spki_size, tc->kid, "bench-api",
                                                  &d) :
                        platform ? agentid_verify_platform(v, ev, size, nonce, nonce_size, &d) :
                                   agentid_verify_evidence(v, ev, size, nonce, nonce_size, &d);
                bool ok = r >= 0 && agentid_verdict_is_valid(d);
                agentid_verdict_free(d);
                if (!ok)
                        return -1;
        }
        return (double) arg_batch / ((now_us() - t0) / 1e6);
}

static void report(const char *what, const char *row, size_t size, double *rates) {
        double p10 = bench_quantile(rates, arg_rounds, 0.1), med = bench_quantile(rates, arg_rounds, 0.5),
               p90 = bench_quantile(rates, arg_rounds, 0.9);
        printf("%-18s %5zu bytes  median %7.0f/s  (%.0f µs each; p10 %.0f/s, p90 %.0f/s; %u x %u)\n", what, size,
               med, 1e6 / med, p10, p90, arg_rounds, arg_batch);
        if (arg_csv) {
                FILE *f = fopen(arg_csv, "ae");
                if (!f)
                        return;
                if (ftell(f) == 0)
                        fprintf(f, "run,row,clients,per_s,x_limit,p50_ms,p99_ms\n");
                fprintf(f, "verify,%s,1,%.1f,,%.4f,\n", row, med, 1e3 / med);
                fclose(f);
        }
}

static int bench(const char *what, bool platform, EVP_PKEY *ak, EVP_PKEY *key) {
        _cleanup_free_ uint8_t *ev = NULL, *ak_pub = NULL;
        _cleanup_free_ double *rates = calloc(arg_rounds, sizeof(double));
        size_t size = 0, ak_size = 0;
        AgentidVerifier *v = agentid_verifier_new();
        FakeSpec spec;

        if (!rates || !v)
                return -ENOMEM;
        fake_spec_default(&spec, platform, ak, key);
        if (fake_evidence_build(&spec, &ev, &size) < 0 || fake_ak_public_bytes(ak, &ak_pub, &ak_size) < 0 ||
            agentid_verifier_add_trusted_ak(v, ak_pub, ak_size) < 0 || agentid_verifier_set_now(v, spec.iat + 10) < 0) {
                agentid_verifier_free(v);
                return -EIO;
        }

        /* Warm up (page faults, OpenSSL's lazily built tables), then the timed rounds. */
        if (run_batch(v, platform, ev, size, spec.nonce, spec.nonce_size, NULL) < 0) {
                agentid_verifier_free(v);
                fprintf(stderr, "%s: evidence does not verify\n", what);
                return -EIO;
        }
        for (unsigned r = 0; r < arg_rounds; r++)
                rates[r] = run_batch(v, platform, ev, size, spec.nonce, spec.nonce_size, NULL);
        agentid_verifier_free(v);
        report(what, platform ? "platform-evidence" : "agent-evidence", size, rates);
        return 0;
}

/* A root token as IssueToken makes one (a task, an audience, a scope, one hour), verified for its
 * audience with the issuer's DER key and TPM Name, as a gateway holding the agent's key does; then
 * as a gateway with a peer registry naming the issuer does, whose keys are decoded once (key cached). */
static int bench_token(EVP_PKEY *key) {
        _cleanup_free_ double *rates = calloc(arg_rounds, sizeof(double));
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_(cose_sign1_freep) CoseSign1 *cose = NULL;
        _cleanup_(peer_registry_freep) PeerRegistry *reg = NULL;
        _cleanup_free_ uint8_t *registry = NULL;
        size_t registry_size = 0;
        TokenCase tc = {};
        uint64_t now = 1764000000;
        TokenClaims claims = {
                .iss = "agentid://8119af52884ed2bc28b62a373dc1f85b/bench",
                .aud = "bench-api",
                .exp = now + 3600, .nbf = now, .iat = now,
                .scope = "invoices:read invoices:pay",
                .task_id = "bench",
                .owner = "bench@example.com",
        };
        uint8_t rs[COSE_ES256_SIG_SIZE];
        size_t payload_size = 0;
        int r = -EIO;

        if (!rates)
                return -ENOMEM;
        memset(claims.cti, 0x42, sizeof(claims.cti));
        tc.kid[0] = 0x00;
        tc.kid[1] = 0x0b;
        memset(tc.kid + 2, 0x22, sizeof(tc.kid) - 2);
        AgentidVerifier *v = agentid_verifier_new();
        if (!v || agentid_verifier_set_now(v, now + 10) < 0 ||
            token_claims_encode(&claims, &payload, &payload_size) < 0 ||
            cose_sign1_prepare(tc.kid, sizeof(tc.kid), NULL, payload, payload_size, &cose) < 0 ||
            fake_sign_digest(key, cose_sign1_digest(cose), rs) < 0 ||
            cose_sign1_finish(cose, rs, &tc.token, &tc.size) < 0 ||
            pkey_to_spki_der(key, &tc.spki, &tc.spki_size) < 0)
                goto finish;
        if (run_batch(v, false, NULL, 0, NULL, 0, &tc) < 0) {
                fprintf(stderr, "token: does not verify\n");
                goto finish;
        }
        for (unsigned i = 0; i < arg_rounds; i++)
                rates[i] = run_batch(v, false, NULL, 0, NULL, 0, &tc);
        report("task token", "token", tc.size, rates);

        reg = peer_registry_new();
        tc.from_peer = true;
        if (!reg || peer_registry_add(reg, claims.iss, tc.spki, tc.spki_size, tc.kid, now, 0) < 0 ||
            peer_registry_encode(reg, &registry, &registry_size) < 0 ||
            agentid_verifier_add_peers(v, registry, registry_size, NULL) < 0 ||
            run_batch(v, false, NULL, 0, NULL, 0, &tc) < 0) {
                fprintf(stderr, "token from a registered peer: does not verify\n");
                goto finish;
        }
        for (unsigned i = 0; i < arg_rounds; i++)
                rates[i] = run_batch(v, false, NULL, 0, NULL, 0, &tc);
        report("peer token", "token-peer", tc.size, rates);
        r = 0;
finish:
        agentid_verifier_free(v);
        free(tc.token);
        free(tc.spki);
        return r;
}

int main(int argc, char *argv[]) {
        EVP_PKEY *ak = NULL, *key = NULL, *host = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        ak = fake_key_from_seed("agentid test AK");
        key = fake_key_from_seed("agentid test agent key");
        host = fake_key_from_seed("agentid test host key");
        if (!ak || !key || !host)
                r = -EIO;
        else if ((r = bench("agent evidence", false, ak, key)) >= 0 &&
                 (r = bench("platform evidence", true, ak, host)) >= 0)
                r = bench_token(key);
        EVP_PKEY_free(ak);
        EVP_PKEY_free(key);
        EVP_PKEY_free(host);
        return r < 0 ? 1 : 0;
}

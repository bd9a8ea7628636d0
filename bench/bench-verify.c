/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-verify: agent evidence verifications per second on one core, the way a gateway runs
 * them: one AgentidVerifier configured once (trusted AK decoded and cached), then one
 * agentid_verify_evidence() per document. The evidence is made by the test generator with software
 * keys (tests/lib/fake-evidence.c); its size and structure are those of real evidence.
 *
 * Batches of --batch verifications are timed --rounds times; the report gives the median rate and
 * the spread. Not run by the test suites: numbers belong in docs/verifier.md, not in timed tests.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "attest/verify.h"
#include "bench/bench-util.h"
#include "common/macro.h"
#include "tests/lib/fake-evidence.h"

static unsigned arg_rounds = 15;
static unsigned arg_batch = 1000;

static double now_us(void) {
        return bench_now() * 1e6;
}

static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "rounds", required_argument, NULL, 'r' },
                { "batch", required_argument, NULL, 'b' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "r:b:h", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        arg_rounds = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'b':
                        arg_batch = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'h':
                        printf("Usage: agentid-bench-verify [--rounds=N] [--batch=N]\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        if (arg_rounds == 0 || arg_batch == 0)
                return -EINVAL;
        return 1;
}

/* One timed pass over a batch; returns verifications per second, or < 0 if one was not valid. */
static double run_batch(const AgentidVerifier *v, bool platform, const uint8_t *ev, size_t size, const uint8_t *nonce,
                        size_t nonce_size) {
        double t0 = now_us();
        for (unsigned i = 0; i < arg_batch; i++) {
                AgentidVerdict *d = NULL;
                int r = platform ? agentid_verify_platform(v, ev, size, nonce, nonce_size, &d) :
                                   agentid_verify_evidence(v, ev, size, nonce, nonce_size, &d);
                bool ok = r >= 0 && agentid_verdict_is_valid(d);
                agentid_verdict_free(d);
                if (!ok)
                        return -1;
        }
        return (double) arg_batch / ((now_us() - t0) / 1e6);
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
        if (run_batch(v, platform, ev, size, spec.nonce, spec.nonce_size) < 0) {
                agentid_verifier_free(v);
                fprintf(stderr, "%s: evidence does not verify\n", what);
                return -EIO;
        }
        for (unsigned r = 0; r < arg_rounds; r++)
                rates[r] = run_batch(v, platform, ev, size, spec.nonce, spec.nonce_size);
        agentid_verifier_free(v);

        double p10 = bench_quantile(rates, arg_rounds, 0.1), med = bench_quantile(rates, arg_rounds, 0.5),
               p90 = bench_quantile(rates, arg_rounds, 0.9);
        printf("%-18s %5zu bytes  median %7.0f/s  (%.0f µs each; p10 %.0f/s, p90 %.0f/s; %u x %u)\n", what, size,
               med, 1e6 / med, p10, p90, arg_rounds, arg_batch);
        return 0;
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
        else if ((r = bench("agent evidence", false, ak, key)) >= 0)
                r = bench("platform evidence", true, ak, host);
        EVP_PKEY_free(ak);
        EVP_PKEY_free(key);
        EVP_PKEY_free(host);
        return r < 0 ? 1 : 0;
}

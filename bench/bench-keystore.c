/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-keystore: the keystore's sign path against a plain Esys_Sign loop on the same TPM,
 * side by side in one run. Batches of the two alternate so drift (other load, swtpm state) hits both
 * alike; the report gives medians. Run through bench/run-keystore-bench.sh, which starts a swtpm.
 *
 * The raw loop is the limit: one loaded key, password session, no bookkeeping. The keystore adds its
 * record checks, cache lookup and signature formatting on top.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "bench/bench-util.h"
#include "common/macro.h"
#include "keystore/keystore.h"

static unsigned arg_rounds = 15;
static unsigned arg_batch = 200;

static double now_us(void) {
        return bench_now() * 1e6;
}

static void keystore_sign_or_die(Keystore *ks, const KeyRecord *r, const uint8_t digest[32]) {
        uint8_t sig[64];
        int k = keystore_sign(ks, r, digest, sig);
        if (k < 0) {
                fprintf(stderr, "keystore_sign failed: %s\n", keystore_last_error(ks));
                exit(1);
        }
}

int main(int argc, char *argv[]) {
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
                        printf("Usage: AGENTID_TCTI=CONF agentid-bench-keystore [--rounds=N] [--batch=N]\n");
                        return 0;
                default:
                        return 2;
                }
        const char *tcti = getenv("AGENTID_TCTI");
        if (!tcti || arg_rounds == 0 || arg_batch == 0) {
                fprintf(stderr, "AGENTID_TCTI must name a TPM used by nothing else; rounds and batch > 0.\n");
                return 2;
        }

        char dir[] = "/tmp/agentid-bench-XXXXXX";
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        char state[64];
        snprintf(state, sizeof(state), "%s/state", dir);

        char err[KEYSTORE_ERROR_MAX] = "";
        KeystoreOptions o = { .tcti = tcti, .state_dir = state };
        Keystore *ks = NULL;
        if (keystore_open(&o, &ks, err) < 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        KeySpec spec = { .name = "bench", .owner = "bench", .uid = 0 };
        KeyRecord *rec = NULL;
        if (keystore_create_key(ks, &spec, (uint64_t) time(NULL), &rec) < 0) {
                fprintf(stderr, "%s\n", keystore_last_error(ks));
                return 1;
        }

        uint8_t digest[32];
        memset(digest, 0x5c, sizeof(digest));
        keystore_sign_or_die(ks, rec, digest); /* loads the key: one slot */

        RawKey raw = {};
        raw_key_setup(tcti, &raw); /* SRK + key, then SRK flushed: one more slot */

        for (unsigned i = 0; i < 50; i++) {
                raw_key_sign(&raw, digest);
                keystore_sign_or_die(ks, rec, digest);
        }

        size_t n = (size_t) arg_rounds * arg_batch;
        double *lat_raw = calloc(n, sizeof(double)), *lat_ks = calloc(n, sizeof(double));
        double *tp_raw = calloc(arg_rounds, sizeof(double)), *tp_ks = calloc(arg_rounds, sizeof(double));
        if (!lat_raw || !lat_ks || !tp_raw || !tp_ks)
                return 1;

        for (unsigned round = 0; round < arg_rounds; round++) {
                /* Alternate which goes first so neither always follows the other. */
                for (unsigned which = 0; which < 2; which++) {
                        bool use_ks = (round + which) % 2;
                        double *lat = use_ks ? lat_ks : lat_raw;
                        double start = now_us();
                        for (unsigned i = 0; i < arg_batch; i++) {
                                double t0 = now_us();
                                digest[0] = (uint8_t) i;
                                if (use_ks)
                                        keystore_sign_or_die(ks, rec, digest);
                                else
                                        raw_key_sign(&raw, digest);
                                lat[round * arg_batch + i] = now_us() - t0;
                        }
                        double per_s = arg_batch / ((now_us() - start) / 1e6);
                        (use_ks ? tp_ks : tp_raw)[round] = per_s;
                }
        }

        double m_raw = bench_quantile(tp_raw, arg_rounds, 0.5), m_ks = bench_quantile(tp_ks, arg_rounds, 0.5);
        double l_raw = bench_quantile(lat_raw, n, 0.5), l_ks = bench_quantile(lat_ks, n, 0.5);
        double p99_raw = bench_quantile(lat_raw, n, 0.99), p99_ks = bench_quantile(lat_ks, n, 0.99);

        printf("Sign path, %u rounds x %u signatures each, alternating, one swtpm (%s)\n", arg_rounds, arg_batch, tcti);
        printf("%-28s %12s %12s %12s\n", "", "sign/s (med)", "p50 us", "p99 us");
        printf("%-28s %12.0f %12.1f %12.1f\n", "raw Esys_Sign loop", m_raw, l_raw, p99_raw);
        printf("%-28s %12.0f %12.1f %12.1f\n", "keystore_sign", m_ks, l_ks, p99_ks);
        printf("ratio keystore/raw (throughput medians): %.3f\n", m_ks / m_raw);
        printf("csv,%s,%u,%u,%.0f,%.1f,%.1f,%.0f,%.1f,%.1f,%.3f\n", "keystore-sign", arg_rounds, arg_batch, m_raw,
               l_raw, p99_raw, m_ks, l_ks, p99_ks, m_ks / m_raw);

        raw_key_done(&raw);
        key_record_free(rec);
        keystore_free(ks);
        free(lat_raw);
        free(lat_ks);
        free(tp_raw);
        free(tp_ks);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : 1;
}

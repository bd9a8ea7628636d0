/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-policy: the cost of one policy_decide() over 1,000 rules of which only the last matches
 * the request, the worst case of first-match-wins. Three shapes of the 999 rules that do not match:
 *
 *   literal   "agent-N-key"          all literal: the index finds no candidate but the last rule
 *   prefix    "agent-N-*"            "prefix*" globs: one memcmp() each
 *   general   "[a-c]gent-N-?x*"      general globs: the compiled matcher, one rule after the other
 *   same ends "agent-10*XY*-xyz"     general globs (XY two letters) that agree with the name in its
 *                                    first and last bytes and its length, so the index's filter
 *                                    passes them all and each one runs the compiled matcher in full
 *                                    (the worst case we know)
 *
 * and, for scale, a plain loop of fnmatch(3) over the 1,000 patterns of the general shapes: what a
 * naive evaluator would spend (in the C locale; in a UTF-8 one glibc's fnmatch() is several times
 * slower). Every decision is timed on its own (CLOCK_MONOTONIC; the timer's own
 * cost is measured and printed) after a warm-up; the report gives the median and the 99th percentile.
 * Not run by the test suites: the numbers belong in docs/performance.md.
 */

#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench-util.h"
#include "governance/policy.h"

#define N_RULES 1000U
#define REQUEST_KEY "agent-1000-xyz"

static unsigned arg_decisions = 200000;

typedef enum Shape {
        SHAPE_LITERAL,
        SHAPE_PREFIX,
        SHAPE_GENERAL,
        SHAPE_SAME_ENDS,
        _SHAPE_MAX,
} Shape;

static const char *const shape_names[_SHAPE_MAX] = {
        [SHAPE_LITERAL] = "literal keys",
        [SHAPE_PREFIX] = "prefix globs",
        [SHAPE_GENERAL] = "general globs",
        [SHAPE_SAME_ENDS] = "general globs, same ends",
};

/* The key glob of rule i; the last one matches REQUEST_KEY, no other does. */
static void pattern(Shape shape, unsigned i, char *buf, size_t size) {
        bool last = i == N_RULES - 1;

        switch (shape) {
        case SHAPE_LITERAL:
                snprintf(buf, size, last ? REQUEST_KEY : "agent-%u-key", i);
                break;
        case SHAPE_PREFIX:
                snprintf(buf, size, last ? "agent-1000-*" : "agent-%u-*", i);
                break;
        case SHAPE_GENERAL:
                snprintf(buf, size, last ? "[a-c]gent-1000-?y*" : "[a-c]gent-%u-?x*", i);
                break;
        default:
                /* Two letters that "agent-1000-xyz" does not contain between "agent-10" and "-xyz". */
                if (last)
                        snprintf(buf, size, "agent-10*00*-xyz");
                else
                        snprintf(buf, size, "agent-10*%c%c*-xyz", "abcdefghijklmnopqrstuvwxyzABCDEF"[i / 32],
                                 "abcdefghijklmnopqrstuvwxyzABCDEF"[i % 32]);
        }
}

static Policy *build(Shape shape) {
        char error[POLICY_ERROR_MAX], *doc = NULL;
        size_t size = 0;
        Policy *p = NULL;
        FILE *f;

        f = open_memstream(&doc, &size);
        if (!f)
                exit(1);
        fputs("{\"version\": 1, \"rules\": [", f);
        for (unsigned i = 0; i < N_RULES; i++) {
                char glob[64];
                pattern(shape, i, glob, sizeof(glob));
                fprintf(f, "%s\n{\"name\": \"r%u\", \"keys\": [\"%s\"], \"effect\": \"allow\"}", i ? "," : "", i,
                        glob);
        }
        fputs("]}", f);
        fclose(f);

        if (policy_parse(doc, size, &p, error) < 0) {
                fprintf(stderr, "policy_parse: %s\n", error);
                exit(1);
        }
        free(doc);
        return p;
}

static double now_ns(void) {
        return bench_now() * 1e9;
}

static void report(const char *what, double *samples, size_t n, double timer_ns) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += samples[i];
        double mean = sum / (double) n;
        double p50 = bench_quantile(samples, n, 0.50);
        double p99 = bench_quantile(samples, n, 0.99);
        printf("%-52s median %8.0f ns   p99 %8.0f ns   mean %8.0f ns   (timer %.0f ns included)\n", what, p50,
               p99, mean, timer_ns);
}

/* The cost of the two clock reads around each measurement, subtracted from nothing but printed. */
static double timer_cost(double *samples, size_t n) {
        for (size_t i = 0; i < n; i++) {
                double t0 = now_ns();
                samples[i] = now_ns() - t0;
        }
        return bench_quantile(samples, n, 0.50);
}

static void bench_shape(Shape shape, double *samples, double timer_ns) {
        PolicyRequest req = {
                .action = POLICY_ACTION_SIGN,
                .key = REQUEST_KEY,
                .uid = 1000,
                .login_session = -1,
        };
        Policy *p = build(shape);
        PolicyDecision d;

        policy_decide(p, &req, &d);
        if (d.effect != POLICY_ALLOW || !d.rule || strcmp(d.rule, "r999") != 0) {
                fprintf(stderr, "%s: the request is not decided by the last rule\n", shape_names[shape]);
                exit(1);
        }

        for (unsigned i = 0; i < arg_decisions / 20; i++)
                policy_decide(p, &req, &d);
        for (unsigned i = 0; i < arg_decisions; i++) {
                double t0 = now_ns();
                policy_decide(p, &req, &d);
                samples[i] = now_ns() - t0;
        }
        char what[64];
        snprintf(what, sizeof(what), "policy_decide, %s", shape_names[shape]);
        report(what, samples, arg_decisions, timer_ns);
        policy_free(p);
}

static void bench_fnmatch(Shape shape, double *samples, double timer_ns) {
        static char patterns[N_RULES][64];
        volatile unsigned matched = 0;

        for (unsigned i = 0; i < N_RULES; i++)
                pattern(shape, i, patterns[i], sizeof(patterns[i]));

        /* fnmatch() is slow enough that a tenth of the decisions gives a stable figure. */
        unsigned n = MAX(arg_decisions / 10, 1U);
        for (unsigned k = 0; k < n / 20 + 1; k++)
                for (unsigned i = 0; i < N_RULES; i++)
                        if (fnmatch(patterns[i], REQUEST_KEY, 0) == 0) {
                                matched++;
                                break;
                        }
        for (unsigned k = 0; k < n; k++) {
                double t0 = now_ns();
                for (unsigned i = 0; i < N_RULES; i++)
                        if (fnmatch(patterns[i], REQUEST_KEY, 0) == 0) {
                                matched++;
                                break;
                        }
                samples[k] = now_ns() - t0;
        }
        char what[64];
        snprintf(what, sizeof(what), "reference: fnmatch() loop, %s", shape_names[shape]);
        report(what, samples, n, timer_ns);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "decisions", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "n:h", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        arg_decisions = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'h':
                        printf("Usage: agentid-bench-policy [--decisions=N]\n");
                        return 0;
                default:
                        return 1;
                }
        if (arg_decisions < 100) {
                fprintf(stderr, "--decisions must be at least 100\n");
                return 1;
        }

        double *samples = malloc(arg_decisions * sizeof(double));
        if (!samples)
                return 1;

        double timer_ns = timer_cost(samples, arg_decisions);
        printf("%u rules, only the last matches \"%s\"; %u timed decisions per shape\n", N_RULES, REQUEST_KEY,
               arg_decisions);
        for (Shape s = 0; s < _SHAPE_MAX; s++)
                bench_shape(s, samples, timer_ns);
        bench_fnmatch(SHAPE_GENERAL, samples, timer_ns);
        bench_fnmatch(SHAPE_SAME_ENDS, samples, timer_ns);
        free(samples);
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The policy parser (governance/policy.h): what agentidd reads from /etc/agentid/policy.json and what
 * `agentidctl policy check` is given. Invariants: a refusal is -EINVAL, -EFBIG or -ENOMEM with a
 * message; an accepted policy hashes to the input's SHA-256; every decision has a valid effect, a
 * rule unless "no rule matches", a reason exactly for denials; and, since each request below uses
 * its own key (so every rate bucket it touches is fresh and full; a NULL key counts as ""), the
 * indexed decision equals the linear explain path, whose trace ends at the deciding rule.
 */

#include <errno.h>
#include <string.h>

#include "common/crypto-util.h"
#include "governance/policy.h"
#include "tests/fuzz/fuzz.h"

typedef struct Trace {
        size_t n;
        const char *last_rule;
        const char *last_mismatch;
} Trace;

static void trace_cb(const char *rule, const char *mismatch, void *userdata) {
        Trace *t = userdata;
        FUZZ_CHECK(rule);
        t->n++;
        t->last_rule = rule;
        t->last_mismatch = mismatch;
}

static void check_decision(const PolicyDecision *d) {
        FUZZ_CHECK(d->effect == POLICY_ALLOW || d->effect == POLICY_DENY || d->effect == POLICY_CONFIRM);
        if (!d->rule)
                FUZZ_CHECK(d->effect == POLICY_DENY && d->reason && strcmp(d->reason, "no rule matches") == 0);
        if (d->effect == POLICY_DENY)
                FUZZ_CHECK(d->reason);
        else
                FUZZ_CHECK(!d->reason);
        if (d->effect == POLICY_DENY)
                FUZZ_CHECK(d->max_token_ttl == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t exe[32] = { 0xaa, 0xbb };
        static const uint32_t gids[] = { 0, 100, 1000 };
        static const char *const scopes[] = { "read:invoices", "write" };
        const PolicyRequest requests[] = {
                { .action = POLICY_ACTION_SIGN, .key = "k", .uid = 1000, .login_session = -1 },
                { .action = POLICY_ACTION_CREATE, .key = "agent-1", .uid = 0, .gids = gids, .n_gids = 3,
                  .login_session = 0 },
                { .action = POLICY_ACTION_ISSUE_TOKEN, .key = "billing-bot", .uid = 1001, .gids = gids,
                  .n_gids = 1, .exe_sha256 = exe, .unit = "billing.service", .login_session = 0,
                  .audience = "https://api.example.com/pay", .peer = "agentid://0123/planner",
                  .task_id = "invoice-7", .scopes = scopes, .n_scopes = 2, .now_usec = 1 },
                { .action = POLICY_ACTION_ATTEST, .key = "ci-build", .uid = 65534, .unit = "user@1000.service",
                  .login_session = 1, .task_id = "", .now_usec = UINT64_MAX },
                { .action = POLICY_ACTION_START_TASK, .key = ".", .uid = 4294967294U, .login_session = 7 },
                { .action = POLICY_ACTION_DESTROY, .key = NULL, .uid = 0, .login_session = 0 },
        };
        char error[POLICY_ERROR_MAX] = "";
        _cleanup_(policy_freep) Policy *p = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        int r;

        r = policy_parse(data, size, &p, error);
        if (r < 0) {
                /* -EIO: OpenSSL could not hash the document, which only an allocation failure causes. */
                FUZZ_CHECK(r == -EINVAL || r == -EFBIG || r == -ENOMEM || (r == -EIO && fuzz_out_of_memory()));
                FUZZ_CHECK(error[0] != 0);
                FUZZ_CHECK(memchr(error, 0, sizeof(error)));
                FUZZ_CHECK(!p);
                return 0;
        }
        FUZZ_CHECK(p);
        FUZZ_CHECK(size <= POLICY_FILE_MAX);
        FUZZ_CHECK(policy_rule_count(p) <= POLICY_RULES_MAX);
        FUZZ_CHECK((policy_needs(p) & ~0xfU) == 0);
        if (sha256(data, size, digest) == 0)
                FUZZ_CHECK(memcmp(policy_digest(p), digest, sizeof(digest)) == 0);

        for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
                PolicyDecision d, e;
                Trace t = {};

                policy_decide(p, &requests[i], &d);
                check_decision(&d);
                policy_explain(p, &requests[i], trace_cb, &t, &e);
                check_decision(&e);

                /* Fail closed: a rate bucket that cannot be allocated counts as exhausted, which only
                 * policy_decide() consults (policy.c, rate_take()). */
                if (fuzz_out_of_memory() && d.effect == POLICY_DENY && e.effect != POLICY_DENY &&
                    strcmp(d.reason, "the rule's rate limit is exhausted") == 0)
                        continue;
                FUZZ_CHECK(d.effect == e.effect);
                FUZZ_CHECK(d.rule == e.rule);
                FUZZ_CHECK(d.reason == e.reason);
                FUZZ_CHECK(d.max_token_ttl == e.max_token_ttl);
                FUZZ_CHECK(t.n <= policy_rule_count(p));
                if (e.rule) {
                        FUZZ_CHECK(t.last_rule == e.rule && !t.last_mismatch);
                } else
                        FUZZ_CHECK(t.n == policy_rule_count(p) && (t.n == 0 || t.last_mismatch));

                /* A second decision may find the bucket empty, but stays a valid decision by the same
                 * rule. */
                policy_decide(p, &requests[i], &d);
                check_decision(&d);
                FUZZ_CHECK(d.rule == e.rule);
        }
        return 0;
}

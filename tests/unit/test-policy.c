/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * governance/policy: the language (every field, matching and not), decisions and limits, the error
 * paths of the parser, globs against fnmatch(3), and the index against the linear explain path on
 * random policies (suite "unit").
 */

#include <fnmatch.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "common/crypto-util.h"
#include "governance/policy.h"

/* policy.c keeps at most this many rate buckets per rule (the least recently used one goes). */
#define RATE_BUCKETS_MAX 4096U

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef"

static const uint8_t exe_a[32] = {
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
};
static const uint8_t exe_b[32] = {
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
};

static Policy *parse_ok(const char *json) {
        char error[POLICY_ERROR_MAX] = "";
        Policy *p = NULL;
        int r;

        r = policy_parse(json, strlen(json), &p, error);
        if (r < 0)
                fail_msg("policy_parse(%s): %d %s", json, r, error);
        assert_non_null(p);
        return p;
}

static void parse_fails(const char *json, const char *expected) {
        char error[POLICY_ERROR_MAX] = "";
        Policy *p = NULL;

        assert_int_equal(policy_parse(json, strlen(json), &p, error), -EINVAL);
        assert_null(p);
        assert_string_equal(error, expected);
}

/* A policy of one rule, given as the members of its object. */
static Policy *one_rule(const char *members) {
        char json[4096];
        snprintf(json, sizeof(json), "{\"version\": 1, \"rules\": [{%s}]}", members);
        return parse_ok(json);
}

static void rule_fails(const char *members, const char *expected) {
        char json[4096];
        snprintf(json, sizeof(json), "{\"version\": 1, \"rules\": [{%s}]}", members);
        parse_fails(json, expected);
}

/* A request that matches nothing in particular: uid 1000 signs with key "k", nothing else known. */
static PolicyRequest base_request(void) {
        return (PolicyRequest) {
                .action = POLICY_ACTION_SIGN,
                .key = "k",
                .uid = 1000,
                .login_session = -1,
                .now_usec = 1000000,
        };
}

/* Decide, check that explain agrees, and return the effect. */
static PolicyEffect decide(Policy *p, const PolicyRequest *req, PolicyDecision *ret) {
        PolicyDecision d, e;

        policy_decide(p, req, &d);
        policy_explain(p, req, NULL, NULL, &e);
        assert_int_equal(d.effect, e.effect);
        assert_true(streq_ptr(d.rule, e.rule));
        if (ret)
                *ret = d;
        return d.effect;
}

static bool allowed(Policy *p, const PolicyRequest *req) {
        return decide(p, req, NULL) == POLICY_ALLOW;
}

static void test_strings(void **state) {
        for (int a = 0; a < _POLICY_ACTION_MAX; a++) {
                const char *s = policy_action_to_string((PolicyAction) a);
                assert_non_null(s);
                assert_int_equal(policy_action_from_string(s), a);
        }
        assert_string_equal(policy_action_to_string(POLICY_ACTION_SIGN_MESSAGE), "sign_message");
        assert_string_equal(policy_action_to_string(POLICY_ACTION_START_TASK), "start_task");
        assert_null(policy_action_to_string(_POLICY_ACTION_MAX));
        assert_int_equal(policy_action_from_string("Sign"), -EINVAL);
        assert_int_equal(policy_action_from_string(""), -EINVAL);
        assert_int_equal(policy_action_from_string(NULL), -EINVAL);
        assert_string_equal(policy_effect_to_string(POLICY_ALLOW), "allow");
        assert_string_equal(policy_effect_to_string(POLICY_DENY), "deny");
        assert_string_equal(policy_effect_to_string(POLICY_CONFIRM), "confirm");
        assert_null(policy_effect_to_string((PolicyEffect) 3));
}

static void test_match_actions_keys_ids(void **state) {
        PolicyRequest req = base_request();
        Policy *p;

        p = one_rule("\"actions\": [\"sign\", \"attest\"], \"effect\": \"allow\"");
        assert_true(allowed(p, &req));
        req.action = POLICY_ACTION_ATTEST;
        assert_true(allowed(p, &req));
        req.action = POLICY_ACTION_CREATE;
        assert_false(allowed(p, &req));
        req.action = _POLICY_ACTION_MAX; /* not an action: nothing matches */
        assert_false(allowed(p, &req));
        policy_free(p);

        req = base_request();
        p = one_rule("\"keys\": [\"k\", \"other\"], \"effect\": \"allow\"");
        assert_true(allowed(p, &req));
        req.key = "other";
        assert_true(allowed(p, &req));
        req.key = "kk";
        assert_false(allowed(p, &req));
        req.key = NULL;
        assert_false(allowed(p, &req));
        policy_free(p);

        req = base_request();
        p = one_rule("\"uids\": [0, 1000, 4294967294], \"effect\": \"allow\"");
        assert_true(allowed(p, &req));
        req.uid = 0;
        assert_true(allowed(p, &req));
        req.uid = 4294967294U;
        assert_true(allowed(p, &req));
        req.uid = 1001;
        assert_false(allowed(p, &req));
        policy_free(p);

        uint32_t gids_yes[] = { 10, 50 }, gids_no[] = { 10, 1000 };
        req = base_request();
        p = one_rule("\"gids\": [50, 60], \"effect\": \"allow\"");
        req.gids = gids_yes;
        req.n_gids = ELEMENTSOF(gids_yes);
        assert_true(allowed(p, &req));
        req.gids = gids_no;
        req.n_gids = ELEMENTSOF(gids_no);
        assert_false(allowed(p, &req)); /* the uid is no gid */
        req.n_gids = 0;
        assert_false(allowed(p, &req));
        req.gids = NULL; /* not measured */
        assert_false(allowed(p, &req));
        policy_free(p);
}

static void test_match_exe_unit_session(void **state) {
        PolicyRequest req = base_request();
        Policy *p;

        /* Upper and lower case hex both compare as bytes. */
        p = one_rule("\"exe_sha256\": [\"" HEX_B "\", \"" HEX_A "\"], \"effect\": \"allow\"");
        req.exe_sha256 = exe_a;
        assert_true(allowed(p, &req));
        req.exe_sha256 = exe_b;
        assert_true(allowed(p, &req));
        uint8_t other[32];
        memcpy(other, exe_b, 32);
        other[31] ^= 1;
        req.exe_sha256 = other;
        assert_false(allowed(p, &req));
        req.exe_sha256 = NULL;
        assert_false(allowed(p, &req));
        policy_free(p);

        req = base_request();
        p = one_rule("\"units\": [\"agent-*.service\", \"cron.service\"], \"effect\": \"allow\"");
        req.unit = "agent-billing.service";
        assert_true(allowed(p, &req));
        req.unit = "cron.service";
        assert_true(allowed(p, &req));
        req.unit = "user@1000.service";
        assert_false(allowed(p, &req));
        req.unit = NULL;
        assert_false(allowed(p, &req));
        policy_free(p);

        req = base_request();
        p = one_rule("\"no_login_sessions\": true, \"effect\": \"allow\"");
        req.login_session = 0;
        assert_true(allowed(p, &req));
        req.login_session = 1;
        assert_false(allowed(p, &req));
        req.login_session = -1; /* unknown is not "known not to be in one" */
        assert_false(allowed(p, &req));
        policy_free(p);

        p = one_rule("\"no_login_sessions\": false, \"effect\": \"allow\"");
        for (int s = -1; s <= 1; s++) {
                req.login_session = s;
                assert_true(allowed(p, &req));
        }
        policy_free(p);
}

static void test_match_audience_peer_task(void **state) {
        PolicyRequest req = base_request();
        Policy *p;

        p = one_rule("\"audiences\": [\"https://api.example.com/*\"], \"effect\": \"allow\"");
        req.audience = "https://api.example.com/v1/pay";
        assert_true(allowed(p, &req));
        req.audience = "https://api.example.org/";
        assert_false(allowed(p, &req));
        req.audience = NULL;
        assert_false(allowed(p, &req));
        policy_free(p);

        req = base_request();
        p = one_rule("\"peers\": [\"agentid://*/planner\"], \"effect\": \"allow\"");
        req.peer = "agentid://0123abcd/planner";
        assert_true(allowed(p, &req));
        req.peer = "agentid://0123abcd/planner2";
        assert_false(allowed(p, &req));
        req.peer = NULL;
        assert_false(allowed(p, &req));
        policy_free(p);

        req = base_request();
        p = one_rule("\"tasks\": [\"invoice-*\", \"TICKET-1\"], \"effect\": \"allow\"");
        req.task_id = "invoice-2026-001";
        assert_true(allowed(p, &req));
        req.task_id = "TICKET-1";
        assert_true(allowed(p, &req));
        req.task_id = "ticket-1";
        assert_false(allowed(p, &req));
        req.task_id = NULL;
        assert_false(allowed(p, &req));
        policy_free(p);
}

static void test_match_scopes(void **state) {
        PolicyRequest req = base_request();
        const char *none[] = { NULL };
        const char *one[] = { "read:invoices" };
        const char *two[] = { "read:invoices", "write:docs" };
        const char *bad[] = { "read:invoices", "write:payments" };
        Policy *p;

        p = one_rule("\"scopes\": [\"read:*\", \"write:docs\"], \"effect\": \"allow\"");
        /* Every requested scope must be covered; asking for none is covered vacuously. */
        assert_true(allowed(p, &req));
        req.scopes = none;
        req.n_scopes = 0;
        assert_true(allowed(p, &req));
        req.scopes = one;
        req.n_scopes = 1;
        assert_true(allowed(p, &req));
        req.scopes = two;
        req.n_scopes = 2;
        assert_true(allowed(p, &req));
        req.scopes = bad;
        req.n_scopes = 2;
        assert_false(allowed(p, &req));
        req.scopes = none; /* a NULL entry is nothing the rule allows */
        req.n_scopes = 1;
        assert_false(allowed(p, &req));
        policy_free(p);
}

/* Deny rules catch a request if any scope it asks for is listed; asking for none is not caught. */
static void test_deny_scopes(void **state) {
        PolicyRequest req = base_request();
        const char *admin_read[] = { "admin", "read" };
        const char *read[] = { "read" };
        PolicyDecision d;
        Policy *p;

        p = parse_ok("{\"version\": 1, \"rules\": ["
                     "{\"name\": \"no-admin\", \"scopes\": [\"admin\"], \"effect\": \"deny\"},"
                     "{\"name\": \"rest\", \"effect\": \"allow\"}]}");
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        assert_string_equal(d.rule, "rest");
        req.action = POLICY_ACTION_ISSUE_TOKEN;
        req.scopes = admin_read;
        req.n_scopes = 2;
        assert_int_equal(decide(p, &req, &d), POLICY_DENY);
        assert_string_equal(d.rule, "no-admin");
        req.scopes = read;
        req.n_scopes = 1;
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        policy_free(p);
}

/* A rule without "actions" never extends key management (DESIGN §3): create, destroy and rotate must
 * be named. */
static void test_key_management_must_be_named(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        Policy *p;

        p = one_rule("\"name\": \"everything\", \"effect\": \"allow\"");
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        for (PolicyAction a = POLICY_ACTION_CREATE; a <= POLICY_ACTION_ROTATE; a++) {
                req.action = a;
                assert_int_equal(decide(p, &req, &d), POLICY_DENY);
                assert_null(d.rule);
        }
        req.action = POLICY_ACTION_START_TASK;
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        policy_free(p);

        p = one_rule("\"actions\": [\"create\"], \"effect\": \"allow\"");
        req.action = POLICY_ACTION_CREATE;
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        policy_free(p);
}

/* "create" is rate-limited per caller uid: every new name would otherwise bring a full bucket. */
static void test_create_rate_per_uid(void **state) {
        PolicyRequest req = base_request();
        const char *names[] = { "a", "b", "c" };
        Policy *p;

        p = one_rule("\"actions\": [\"create\"], \"rate\": {\"limit\": 2, \"interval\": 3600}, "
                     "\"effect\": \"allow\"");
        req.action = POLICY_ACTION_CREATE;
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                PolicyDecision d;
                req.key = names[i];
                policy_decide(p, &req, &d);
                assert_int_equal(d.effect, i < 2 ? POLICY_ALLOW : POLICY_DENY);
        }
        req.uid = 1001;
        assert_true(allowed(p, &req));
        policy_free(p);
}

static void test_effects_and_reasons(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        Policy *p;

        p = one_rule("\"name\": \"ok\", \"effect\": \"allow\"");
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        assert_string_equal(d.rule, "ok");
        assert_null(d.reason);
        assert_int_equal(d.max_token_ttl, 0);
        policy_free(p);

        p = one_rule("\"effect\": \"deny\"");
        assert_int_equal(decide(p, &req, &d), POLICY_DENY);
        assert_string_equal(d.rule, "rules[0]");
        assert_string_equal(d.reason, "denied by rule");
        policy_free(p);

        p = one_rule("\"effect\": \"confirm\", \"max_token_ttl\": 300");
        assert_int_equal(decide(p, &req, &d), POLICY_CONFIRM);
        assert_string_equal(d.rule, "rules[0]");
        assert_null(d.reason);
        assert_int_equal(d.max_token_ttl, 300);
        policy_free(p);

        p = one_rule("\"effect\": \"allow\", \"max_token_ttl\": 3153600000");
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        assert_int_equal(d.max_token_ttl, 3153600000ULL);
        policy_free(p);
}

static void test_first_match_and_no_match(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        Policy *p;

        /* Literal keys (the index's hash table) and globs (its wildcard list) interleave in rule
         * order. */
        p = parse_ok("{\"version\": 1, \"rules\": ["
                     "{\"name\": \"g0\", \"keys\": [\"k*\"], \"uids\": [1], \"effect\": \"deny\"},"
                     "{\"name\": \"l1\", \"keys\": [\"k\"], \"uids\": [2], \"effect\": \"deny\"},"
                     "{\"name\": \"g2\", \"keys\": [\"?\"], \"uids\": [3], \"effect\": \"confirm\"},"
                     "{\"name\": \"l3\", \"keys\": [\"k\", \"j\"], \"effect\": \"allow\"},"
                     "{\"name\": \"all\", \"effect\": \"deny\"}]}");
        const struct {
                uint32_t uid;
                const char *key;
                PolicyEffect effect;
                const char *rule;
        } cases[] = {
                { 1, "k", POLICY_DENY, "g0" },   { 2, "k", POLICY_DENY, "l1" },
                { 3, "k", POLICY_CONFIRM, "g2" }, { 4, "k", POLICY_ALLOW, "l3" },
                { 3, "j", POLICY_CONFIRM, "g2" }, { 4, "j", POLICY_ALLOW, "l3" },
                { 1, "kx", POLICY_DENY, "g0" },  { 4, "kx", POLICY_DENY, "all" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                req.uid = cases[i].uid;
                req.key = cases[i].key;
                assert_int_equal(decide(p, &req, &d), cases[i].effect);
                assert_string_equal(d.rule, cases[i].rule);
        }
        assert_int_equal(policy_rule_count(p), 5);
        policy_free(p);

        /* No rule matches: deny, no rule. */
        req = base_request();
        p = one_rule("\"uids\": [0], \"effect\": \"allow\"");
        assert_int_equal(decide(p, &req, &d), POLICY_DENY);
        assert_null(d.rule);
        assert_string_equal(d.reason, "no rule matches");
        policy_free(p);

        /* No rule at all: everything is denied. */
        p = parse_ok("{\"version\": 1, \"rules\": [], \"comment\": \"locked down\"}");
        assert_int_equal(policy_rule_count(p), 0);
        for (int a = 0; a < _POLICY_ACTION_MAX; a++) {
                req.action = (PolicyAction) a;
                assert_int_equal(decide(p, &req, &d), POLICY_DENY);
                assert_null(d.rule);
                assert_string_equal(d.reason, "no rule matches");
        }
        policy_free(p);
}

static void test_require_task(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        Policy *p;

        p = parse_ok("{\"version\": 1, \"rules\": ["
                     "{\"name\": \"needs-task\", \"keys\": [\"k\"], \"require_task\": true, \"effect\": \"allow\"},"
                     "{\"name\": \"fallback\", \"effect\": \"allow\"}]}");
        /* The first matching rule decides: its limit denies, the next rule is not consulted. */
        assert_int_equal(decide(p, &req, &d), POLICY_DENY);
        assert_string_equal(d.rule, "needs-task");
        assert_string_equal(d.reason, "the rule requires a task_id");
        req.task_id = "t-1";
        assert_int_equal(decide(p, &req, &d), POLICY_ALLOW);
        assert_string_equal(d.rule, "needs-task");
        policy_free(p);

        p = one_rule("\"require_task\": false, \"effect\": \"confirm\"");
        req.task_id = NULL;
        assert_int_equal(decide(p, &req, &d), POLICY_CONFIRM);
        policy_free(p);
}

static void test_rate(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        Policy *p;
        uint64_t t0 = 5 * 1000000ULL;

        p = parse_ok("{\"version\": 1, \"rules\": ["
                     "{\"name\": \"slow\", \"uids\": [1000], \"rate\": {\"limit\": 3, \"interval\": 30},"
                     " \"effect\": \"allow\"},"
                     "{\"name\": \"other\", \"uids\": [1001], \"rate\": {\"interval\": 30, \"limit\": 1},"
                     " \"effect\": \"confirm\", \"max_token_ttl\": 60}]}");
        req.now_usec = t0;
        for (int i = 0; i < 3; i++) {
                policy_decide(p, &req, &d);
                assert_int_equal(d.effect, POLICY_ALLOW);
        }
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_string_equal(d.rule, "slow");
        assert_string_equal(d.reason, "the rule's rate limit is exhausted");
        assert_int_equal(d.max_token_ttl, 0);

        /* explain never touches the buckets and reports the rate as not exhausted. */
        policy_explain(p, &req, NULL, NULL, &d);
        assert_int_equal(d.effect, POLICY_ALLOW);

        /* Another key has its own bucket. */
        req.key = "k2";
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_ALLOW);
        req.key = "k";

        /* Another rule has its own bucket for the same key. */
        req.uid = 1001;
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_CONFIRM);
        assert_int_equal(d.max_token_ttl, 60);
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_string_equal(d.rule, "other");
        req.uid = 1000;

        /* Refill: 3 per 30 s is one every 10 s. */
        req.now_usec = t0 + 9999999;
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);
        req.now_usec = t0 + 10000000;
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_ALLOW);
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);

        /* A clock going backwards refills nothing (and breaks nothing). */
        req.now_usec = t0;
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);

        /* A long pause refills to the capacity, not beyond. */
        req.now_usec = t0 + 3600 * 1000000ULL;
        for (int i = 0; i < 3; i++) {
                policy_decide(p, &req, &d);
                assert_int_equal(d.effect, POLICY_ALLOW);
        }
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);
        policy_free(p);

        /* A rule's limit applies after its own checks: a denied require_task takes no token. */
        p = one_rule("\"require_task\": true, \"rate\": {\"limit\": 1, \"interval\": 60}, \"effect\": \"allow\"");
        req = base_request();
        policy_decide(p, &req, &d);
        assert_string_equal(d.reason, "the rule requires a task_id");
        req.task_id = "t";
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_ALLOW);
        policy_decide(p, &req, &d);
        assert_string_equal(d.reason, "the rule's rate limit is exhausted");
        policy_free(p);
}

static void test_rate_buckets_bounded(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        char key[32];
        Policy *p;

        p = one_rule("\"rate\": {\"limit\": 1, \"interval\": 3600}, \"effect\": \"allow\"");
        req.key = "victim";
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_ALLOW);

        /* With RATE_BUCKETS_MAX - 2 other keys in between the victim's bucket is still tracked... */
        for (unsigned i = 0; i < RATE_BUCKETS_MAX - 2; i++) {
                snprintf(key, sizeof(key), "a-%u", i);
                req.key = key;
                policy_decide(p, &req, &d);
                assert_int_equal(d.effect, POLICY_ALLOW);
        }
        req.key = "victim";
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_DENY);

        /* ...and once RATE_BUCKETS_MAX others were used since, it is the least recently used one. */
        for (unsigned i = 0; i < RATE_BUCKETS_MAX; i++) {
                snprintf(key, sizeof(key), "b-%u", i);
                req.key = key;
                policy_decide(p, &req, &d);
                assert_int_equal(d.effect, POLICY_ALLOW);
        }
        req.key = "victim";
        policy_decide(p, &req, &d);
        assert_int_equal(d.effect, POLICY_ALLOW);
        policy_free(p);
}

static bool key_matches(const char *pattern_json, const char *key) {
        PolicyRequest req = base_request();
        char members[1024];
        bool ok;

        snprintf(members, sizeof(members), "\"keys\": [%s], \"effect\": \"allow\"", pattern_json);
        Policy *p = one_rule(members);
        req.key = key;
        ok = allowed(p, &req);
        policy_free(p);
        return ok;
}

static void test_glob_kinds(void **state) {
        const struct {
                const char *pattern; /* JSON */
                const char *key;
                bool match;
        } cases[] = {
                { "\"agent\"", "agent", true },
                { "\"agent\"", "agents", false },
                { "\"agent\"", "agen", false },
                { "\"*\"", "", true },
                { "\"*\"", "a/b", true },
                { "\"***\"", "x", true },
                { "\"agent-*\"", "agent-", true },
                { "\"agent-*\"", "agent-1/2", true },
                { "\"agent-*\"", "agent", false },
                { "\"*.service\"", "a.service", true },
                { "\"*.service\"", ".service", true },
                { "\"*.service\"", "a.socket", false },
                { "\"*mid*\"", "mid", true },
                { "\"*mid*\"", "a-mid-b", true },
                { "\"*mid*\"", "mi-d", false },
                { "\"**mid**\"", "xmidx", true },
                { "\"a?c\"", "abc", true },
                { "\"a?c\"", "a/c", true },
                { "\"a?c\"", "ac", false },
                { "\"a?c\"", "abbc", false },
                { "\"[ab]*\"", "apple", true },
                { "\"[ab]*\"", "b", true },
                { "\"[ab]*\"", "cab", false },
                { "\"[!ab]*\"", "cab", true },
                { "\"[!ab]*\"", "ab", false },
                { "\"[a-c]x\"", "bx", true },
                { "\"[a-c]x\"", "dx", false },
                { "\"x[]]\"", "x]", true },
                { "\"x[!]]\"", "x]", false },
                { "\"x[!]]\"", "xa", true },
                { "\"[a-]\"", "-", true },
                { "\"[[:digit:]]*\"", "7up", true },
                { "\"[[:digit:]]*\"", "up", false },
                { "\"[[:upper:][:space:]]\"", " ", true },
                { "\"\\\\*\"", "*", true },     /* pattern \* is the literal '*' */
                { "\"\\\\*\"", "x", false },
                { "\"a\\\\?*\"", "a?b", true }, /* a\?* is the prefix "a?" */
                { "\"a\\\\?*\"", "abb", false },
                { "\"[\\\\]]\"", "]", true },
                { "\"*a*b?\"", "xxaybz", true },
                { "\"*a*b?\"", "xxaybzbq", true },
                { "\"*a*b?\"", "xxaybzz", false },
                { "\"*a*b?\"", "xxayb", false },
                { "\"é*\"", "été", true },
                { "\"?t?\"", "été", false }, /* '?' is one byte, é is two */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (key_matches(cases[i].pattern, cases[i].key) != cases[i].match)
                        fail_msg("pattern %s, key \"%s\": expected %s", cases[i].pattern, cases[i].key,
                                 cases[i].match ? "match" : "no match");

        /* A literal key with an escape goes into the index by its unescaped name. */
        assert_true(key_matches("\"a\\\\b\"", "ab"));
        assert_false(key_matches("\"a\\\\b\"", "a\\b"));
}

static void test_glob_refused(void **state) {
        const struct {
                const char *pattern;
                const char *error;
        } cases[] = {
                { "\"[abc\"", "unterminated bracket expression" },
                { "\"[]\"", "unterminated bracket expression" },
                { "\"[!]\"", "unterminated bracket expression" },
                { "\"abc\\\\\"", "pattern ends with a backslash" },
                { "\"[^a]\"", "\"[^\" is ambiguous, write \"[!\" to negate" },
                { "\"[[=a=]]\"", "equivalence classes and collating symbols are not supported" },
                { "\"[[.a.]]\"", "equivalence classes and collating symbols are not supported" },
                { "\"[[:alpha]]\"", "unterminated character class" },
                { "\"[[:word:]]\"", "unknown character class" },
                { "\"[[:alpha:]-z]\"", "a range cannot start at a character class" },
                { "\"[a-[:alpha:]]\"", "a range cannot end at a character class" },
                { "\"[z-a]\"", "reversed range" },
                { "\"[é]\"", "non-ASCII character in a bracket expression" },
        };
        char members[256], expected[256];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(members, sizeof(members), "\"keys\": [\"ok\", %s], \"effect\": \"allow\"",
                         cases[i].pattern);
                snprintf(expected, sizeof(expected), "$.rules[0].keys[1]: %s", cases[i].error);
                rule_fails(members, expected);
        }
}

/* xorshift64*: the random tests are the same on every machine. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t) ((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

static void json_string_append(char *buf, size_t size, const char *s) {
        size_t n = strlen(buf);
        n += (size_t) snprintf(buf + n, size - n, "\"");
        for (; *s && n + 3 < size; s++) {
                if (*s == '"' || *s == '\\')
                        buf[n++] = '\\';
                buf[n++] = *s;
        }
        buf[n] = 0;
        snprintf(buf + n, size - n, "\"");
}

/* The compiled matcher against glibc's fnmatch(pattern, s, 0) in the C locale, on random patterns
 * built from the pieces that make globs interesting and on plain random bytes. */
static void test_glob_against_fnmatch(void **state) {
        static const char *const pieces[] = {
                "a", "b", "1", "/", "-", "*", "**", "?", "[ab]", "[!a]", "[a-c]", "[[:digit:]]",
                "[[:alpha:]]", "[![:alpha:]-]", "[]a]", "[!]]", "\\*", "\\?", "\\[", "\\a", "[\\]]",
                "[--/]", "[*?]", "[[]",
        };
        static const char alphabet[] = "ab1c/-]*?[\\ !";
        unsigned accepted = 0, matched = 0;

        assert_non_null(setlocale(LC_ALL, "C"));
        for (unsigned iter = 0; iter < 4000; iter++) {
                char pattern[64] = "", json[256] = "";
                Policy *p = NULL;

                if (iter % 4 == 0)
                        for (unsigned i = 0, n = 1 + rnd(8); i < n; i++)
                                pattern[i] = alphabet[rnd(sizeof(alphabet) - 1)];
                else
                        for (unsigned i = 0, n = 1 + rnd(5); i < n; i++)
                                strcat(pattern, pieces[rnd(ELEMENTSOF(pieces))]);

                strcpy(json, "{\"version\": 1, \"rules\": [{\"effect\": \"allow\", \"keys\": [");
                json_string_append(json, sizeof(json), pattern);
                strcat(json, "]}]}");
                if (policy_parse(json, strlen(json), &p, NULL) < 0)
                        continue;
                accepted++;

                for (unsigned k = 0; k < 20; k++) {
                        PolicyRequest req = base_request();
                        char key[16] = "";
                        for (unsigned i = 0, n = rnd(8); i < n; i++)
                                key[i] = alphabet[rnd(sizeof(alphabet) - 1)];
                        /* Half of the time a string the pattern is likelier to match: itself. */
                        req.key = k == 0 ? pattern : key;
                        bool expected = fnmatch(pattern, req.key, 0) == 0;
                        bool got = allowed(p, &req);
                        if (got != expected)
                                fail_msg("pattern \"%s\" key \"%s\": fnmatch %d, policy %d", pattern, req.key,
                                         expected, got);
                        matched += got;
                }
                policy_free(p);
        }
        print_message("%u patterns accepted, %u matches\n", accepted, matched);
        /* The generator must exercise both outcomes, not just refusals. */
        assert_true(accepted > 2000);
        assert_true(matched > 1000);
}

static void test_parse_errors(void **state) {
        const struct {
                const char *json;
                const char *error;
        } cases[] = {
                { "[]", "$: not an object" },
                { "{\"rules\": []}", "$.version: missing" },
                { "{\"version\": \"1\", \"rules\": []}", "$.version: not an integer" },
                { "{\"version\": 2, \"rules\": []}", "$.version: unsupported version 2 (only 1 is defined)" },
                { "{\"version\": 1.0, \"rules\": []}", "$.version: not an integer" },
                { "{\"version\": 1}", "$.rules: missing" },
                { "{\"version\": 1, \"rules\": {}}", "$.rules: not an array" },
                { "{\"version\": 1, \"rules\": [], \"extra\": 1}", "$.extra: unknown field" },
                { "{\"version\": 1, \"rules\": [], \"comment\": 5}", "$.comment: not a string" },
                { "{\"version\": 1, \"rules\": [], \"comment\": \"\"}", "$.comment: empty string" },
                { "{\"version\": 1, \"rules\": [1]}", "$.rules[0]: not an object" },
                { "{\"version\": 1, \"rules\": [{\"effect\": \"allow\"}, {}]}", "$.rules[1].effect: missing" },
                { "{\"version\": 1, \"rules\": [{\"effect\": \"allow\"}, {\"effect\": \"allow\", \"Keys\": [\"a\"]}]}",
                  "$.rules[1].Keys: unknown field" },
                { "{\"version\": 1, \"rules\": [{\"effect\": \"allow\", \"a b\\n\": 1}]}",
                  "$.rules[0].a?b?: unknown field" },
                /* jansson's own refusals: duplicate keys, trailing data, NUL, syntax */
                { "{\"version\": 1, \"version\": 1, \"rules\": []}",
                  "line 1 column 24: duplicate object key near '\"version\"'" },
                { "{\"version\": 1, \"rules\": [{\"effect\": \"allow\", \"effect\": \"deny\"}]}",
                  "line 1 column 53: duplicate object key near '\"effect\"'" },
                { "{\"version\": 1, \"rules\": []} x", "line 1 column 29: end of file expected near 'x'" },
                { "{\"version\": 1, \"rules\": []}{}", "line 1 column 28: end of file expected near '{'" },
                { "{\"version\": 1,\n \"rules\": [,]}", "line 2 column 12: unexpected token near ','" },
                { "{\"version\": 1, \"rules\": [], \"comment\": \"a\\u0000b\"}",
                  "line 1 column 49: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000b\"'" },
                { "", "line 1 column 0: '[' or '{' expected near end of file" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                parse_fails(cases[i].json, cases[i].error);

        /* A NUL byte after the document is trailing data too. */
        char error[POLICY_ERROR_MAX];
        Policy *p = NULL;
        const char doc[] = "{\"version\": 1, \"rules\": []}";
        assert_int_equal(policy_parse(doc, sizeof(doc), &p, error), -EINVAL);
        assert_string_equal(error, "line 1 column 28: end of file expected near end of file");
        assert_int_equal(policy_parse(doc, sizeof(doc), &p, NULL), -EINVAL);
        assert_null(p);
}

static void test_rule_errors(void **state) {
        /* Wrong types, field by field. */
        const struct {
                const char *members;
                const char *error;
        } cases[] = {
                { "\"effect\": 1", "$.rules[0].effect: not a string" },
                { "\"effect\": \"maybe\"", "$.rules[0].effect: unknown effect \"maybe\" (allow, deny or confirm)" },
                { "\"effect\": \"Allow\"", "$.rules[0].effect: unknown effect \"Allow\" (allow, deny or confirm)" },
                { "\"name\": 1, \"effect\": \"allow\"", "$.rules[0].name: not a string" },
                { "\"name\": \"a b\", \"effect\": \"allow\"",
                  "$.rules[0].name: not a valid rule name ([A-Za-z0-9._-], 1..64 characters)" },
                { "\"name\": \"rules[1]\", \"effect\": \"allow\"",
                  "$.rules[0].name: not a valid rule name ([A-Za-z0-9._-], 1..64 characters)" },
                { "\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"effect\": \"allow\"",
                  "$.rules[0].name: not a valid rule name ([A-Za-z0-9._-], 1..64 characters)" },
                { "\"comment\": true, \"effect\": \"allow\"", "$.rules[0].comment: not a string" },
                { "\"comment\": \"two\\nlines\", \"effect\": \"allow\"", "$.rules[0].comment: contains a control character" },
                { "\"actions\": \"sign\", \"effect\": \"allow\"", "$.rules[0].actions: not an array" },
                { "\"actions\": [1], \"effect\": \"allow\"", "$.rules[0].actions[0]: not a string" },
                { "\"actions\": [], \"effect\": \"allow\"", "$.rules[0].actions: empty list matches nothing" },
                { "\"actions\": [\"sign\", \"sing\"], \"effect\": \"allow\"", "$.rules[0].actions[1]: unknown action \"sing\"" },
                { "\"actions\": [\"sign\", \"attest\", \"sign\"], \"effect\": \"allow\"",
                  "$.rules[0].actions[2]: duplicate action \"sign\"" },
                { "\"keys\": \"k\", \"effect\": \"allow\"", "$.rules[0].keys: not an array" },
                { "\"keys\": [\"k\", null], \"effect\": \"allow\"", "$.rules[0].keys[1]: not a string" },
                { "\"keys\": [], \"effect\": \"allow\"", "$.rules[0].keys: empty list matches nothing" },
                { "\"keys\": [\"\"], \"effect\": \"allow\"", "$.rules[0].keys[0]: empty string" },
                { "\"keys\": [\"a\\tb\"], \"effect\": \"allow\"", "$.rules[0].keys[0]: contains a control character" },
                { "\"keys\": [\"a\\u0085b\"], \"effect\": \"allow\"", "$.rules[0].keys[0]: contains a control character" },
                { "\"keys\": [\"a\\u007fb\"], \"effect\": \"allow\"", "$.rules[0].keys[0]: contains a control character" },
                { "\"uids\": 0, \"effect\": \"allow\"", "$.rules[0].uids: not an array" },
                { "\"uids\": [\"0\"], \"effect\": \"allow\"", "$.rules[0].uids[0]: not an integer" },
                { "\"uids\": [1.5], \"effect\": \"allow\"", "$.rules[0].uids[0]: not an integer" },
                { "\"uids\": [0, 4294967295], \"effect\": \"allow\"", "$.rules[0].uids[1]: out of range (0..4294967294)" },
                { "\"uids\": [-1], \"effect\": \"allow\"", "$.rules[0].uids[0]: out of range (0..4294967294)" },
                { "\"gids\": [true], \"effect\": \"allow\"", "$.rules[0].gids[0]: not an integer" },
                { "\"gids\": [], \"effect\": \"allow\"", "$.rules[0].gids: empty list matches nothing" },
                { "\"exe_sha256\": \"" HEX_A "\", \"effect\": \"allow\"", "$.rules[0].exe_sha256: not an array" },
                { "\"exe_sha256\": [1], \"effect\": \"allow\"", "$.rules[0].exe_sha256[0]: not a string" },
                { "\"exe_sha256\": [\"abcd\"], \"effect\": \"allow\"", "$.rules[0].exe_sha256[0]: not 64 hexadecimal digits" },
                { "\"exe_sha256\": [\"" HEX_A "\", \"" HEX_A "0\"], \"effect\": \"allow\"",
                  "$.rules[0].exe_sha256[1]: not 64 hexadecimal digits" },
                { "\"exe_sha256\": [\"zz" HEX_A "\"], \"effect\": \"allow\"",
                  "$.rules[0].exe_sha256[0]: not 64 hexadecimal digits" },
                { "\"exe_sha256\": [\"gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"], \"effect\": \"allow\"",
                  "$.rules[0].exe_sha256[0]: not 64 hexadecimal digits" },
                { "\"units\": {}, \"effect\": \"allow\"", "$.rules[0].units: not an array" },
                { "\"units\": [5], \"effect\": \"allow\"", "$.rules[0].units[0]: not a string" },
                { "\"no_login_sessions\": \"yes\", \"effect\": \"allow\"", "$.rules[0].no_login_sessions: not a boolean" },
                { "\"no_login_sessions\": 1, \"effect\": \"allow\"", "$.rules[0].no_login_sessions: not a boolean" },
                { "\"audiences\": [null], \"effect\": \"allow\"", "$.rules[0].audiences[0]: not a string" },
                { "\"peers\": [[]], \"effect\": \"allow\"", "$.rules[0].peers[0]: not a string" },
                { "\"tasks\": [{}], \"effect\": \"allow\"", "$.rules[0].tasks[0]: not a string" },
                { "\"scopes\": \"read\", \"effect\": \"allow\"", "$.rules[0].scopes: not an array" },
                { "\"scopes\": [], \"effect\": \"allow\"", "$.rules[0].scopes: empty list matches nothing" },
                { "\"max_token_ttl\": \"60\", \"effect\": \"allow\"", "$.rules[0].max_token_ttl: not an integer" },
                { "\"max_token_ttl\": 0, \"effect\": \"allow\"", "$.rules[0].max_token_ttl: out of range (1..3153600000)" },
                { "\"max_token_ttl\": 3153600001, \"effect\": \"allow\"",
                  "$.rules[0].max_token_ttl: out of range (1..3153600000)" },
                { "\"rate\": 5, \"effect\": \"allow\"", "$.rules[0].rate: not an object" },
                { "\"rate\": {\"limit\": \"5\", \"interval\": 1}, \"effect\": \"allow\"",
                  "$.rules[0].rate.limit: not an integer" },
                { "\"rate\": {\"interval\": 1}, \"effect\": \"allow\"", "$.rules[0].rate.limit: missing" },
                { "\"rate\": {\"limit\": 5}, \"effect\": \"allow\"", "$.rules[0].rate.interval: missing" },
                { "\"rate\": {\"limit\": 0, \"interval\": 1}, \"effect\": \"allow\"",
                  "$.rules[0].rate.limit: out of range (1..1000000)" },
                { "\"rate\": {\"limit\": 1000001, \"interval\": 1}, \"effect\": \"allow\"",
                  "$.rules[0].rate.limit: out of range (1..1000000)" },
                { "\"rate\": {\"limit\": 1, \"interval\": 86401}, \"effect\": \"allow\"",
                  "$.rules[0].rate.interval: out of range (1..86400)" },
                { "\"rate\": {\"limit\": 1, \"interval\": 1, \"burst\": 2}, \"effect\": \"allow\"",
                  "$.rules[0].rate.burst: unknown field" },
                { "\"require_task\": 1, \"effect\": \"allow\"", "$.rules[0].require_task: not a boolean" },
                /* limits on deny rules would never apply */
                { "\"max_token_ttl\": 60, \"effect\": \"deny\"",
                  "$.rules[0].max_token_ttl: a limit on a deny rule would never apply" },
                { "\"rate\": {\"limit\": 1, \"interval\": 1}, \"effect\": \"deny\"",
                  "$.rules[0].rate: a limit on a deny rule would never apply" },
                { "\"require_task\": false, \"effect\": \"deny\"",
                  "$.rules[0].require_task: a limit on a deny rule would never apply" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                rule_fails(cases[i].members, cases[i].error);

        /* Duplicate names, also against a default name's rule index. */
        parse_fails("{\"version\": 1, \"rules\": [{\"name\": \"a\", \"effect\": \"allow\"}, {\"effect\": \"deny\"},"
                    " {\"name\": \"a\", \"effect\": \"deny\"}]}",
                    "$.rules[2].name: duplicate rule name \"a\"");

        /* Strings: 256 bytes are fine, 257 are not. */
        char members[1024], big[300];
        memset(big, 'x', 256);
        big[256] = 0;
        snprintf(members, sizeof(members), "\"keys\": [\"%s\"], \"effect\": \"allow\"", big);
        policy_free(one_rule(members));
        big[256] = 'x';
        big[257] = 0;
        snprintf(members, sizeof(members), "\"keys\": [\"%s\"], \"effect\": \"allow\"", big);
        rule_fails(members, "$.rules[0].keys[0]: longer than 256 bytes");
}

static void test_size_limits(void **state) {
        char error[POLICY_ERROR_MAX];
        Policy *p = NULL;
        char *doc;
        size_t n;
        FILE *f;

        /* Too large is refused before parsing. */
        doc = malloc(POLICY_FILE_MAX + 1);
        assert_non_null(doc);
        memset(doc, ' ', POLICY_FILE_MAX + 1);
        assert_int_equal(policy_parse(doc, POLICY_FILE_MAX + 1, &p, error), -EFBIG);
        assert_null(p);
        assert_string_equal(error, "the document is larger than 1048576 bytes");
        free(doc);

        /* POLICY_RULES_MAX rules, then one more. */
        for (unsigned extra = 0; extra <= 1; extra++) {
                f = open_memstream(&doc, &n);
                fputs("{\"version\": 1, \"rules\": [", f);
                for (unsigned i = 0; i < POLICY_RULES_MAX + extra; i++)
                        fprintf(f, "%s{\"effect\": \"allow\"}", i ? "," : "");
                fputs("]}", f);
                fclose(f);
                if (extra) {
                        assert_int_equal(policy_parse(doc, n, &p, error), -EINVAL);
                        assert_string_equal(error, "$.rules: more than 10000 rules");
                } else {
                        assert_int_equal(policy_parse(doc, n, &p, error), 0);
                        assert_int_equal(policy_rule_count(p), POLICY_RULES_MAX);
                        p = policy_free(p);
                }
                free(doc);
        }

        /* POLICY_LIST_MAX entries, then one more. */
        for (unsigned extra = 0; extra <= 1; extra++) {
                f = open_memstream(&doc, &n);
                fputs("{\"version\": 1, \"rules\": [{\"effect\": \"allow\", \"uids\": [", f);
                for (unsigned i = 0; i < POLICY_LIST_MAX + extra; i++)
                        fprintf(f, "%s%u", i ? "," : "", i);
                fputs("]}]}", f);
                fclose(f);
                if (extra) {
                        assert_int_equal(policy_parse(doc, n, &p, error), -EINVAL);
                        assert_string_equal(error, "$.rules[0].uids: more than 1024 entries");
                } else {
                        assert_int_equal(policy_parse(doc, n, &p, error), 0);
                        p = policy_free(p);
                }
                free(doc);
        }
}

static void test_load_file(void **state) {
        char dir[] = "/tmp/agentid-test-policy-XXXXXX", path[128], link[128], error[POLICY_ERROR_MAX];
        const char doc[] = "{\"version\": 1, \"rules\": [{\"effect\": \"allow\"}]}";
        uint8_t digest[32];
        Policy *p = NULL;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/policy.json", dir);
        snprintf(link, sizeof(link), "%s/link.json", dir);

        assert_int_equal(policy_load_file(path, &p, error), -ENOENT);
        assert_null(p);
        char expected[256];
        snprintf(expected, sizeof(expected), "%s: No such file or directory", path);
        assert_string_equal(error, expected);

        /* -EINVAL texts come without the path (callers add it), read errors with it. */
        assert_int_equal(policy_load_file(dir, &p, error), -EINVAL);
        assert_string_equal(error, "not a regular file");
        assert_int_equal(policy_load_file("/dev/null", &p, error), -EINVAL);
        assert_string_equal(error, "not a regular file");

        f = fopen(path, "we");
        assert_non_null(f);
        fputs(doc, f);
        fclose(f);
        assert_int_equal(symlink("policy.json", link), 0);

        /* Symlinks are followed; the digest is that of the bytes read. */
        assert_int_equal(policy_load_file(link, &p, error), 0);
        assert_int_equal(policy_rule_count(p), 1);
        assert_int_equal(sha256(doc, strlen(doc), digest), 0);
        assert_memory_equal(policy_digest(p), digest, 32);
        p = policy_free(p);

        f = fopen(path, "we");
        fputs("{\"version\": 1, \"rules\": [{\"effect\": \"allow\", \"keys\": [7]}]}", f);
        fclose(f);
        assert_int_equal(policy_load_file(path, &p, error), -EINVAL);
        assert_string_equal(error, "$.rules[0].keys[0]: not a string");

        assert_int_equal(truncate(path, POLICY_FILE_MAX + 1), 0);
        assert_int_equal(policy_load_file(path, &p, error), -EFBIG);
        snprintf(expected, sizeof(expected), "%s: File too large", path);
        assert_string_equal(error, expected);
        assert_null(p);

        assert_int_equal(unlink(link), 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void test_digest_and_needs(void **state) {
        const char *docs[] = {
                "{\"version\": 1, \"rules\": []}",
                "{\"version\":1,\"rules\":[]}\n",
        };
        uint8_t digest[32];

        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                Policy *p = parse_ok(docs[i]);
                assert_int_equal(sha256(docs[i], strlen(docs[i]), digest), 0);
                assert_memory_equal(policy_digest(p), digest, 32);
                assert_int_equal(policy_needs(p), 0);
                policy_free(p);
        }

        const struct {
                const char *members;
                unsigned needs;
        } cases[] = {
                { "\"effect\": \"allow\", \"keys\": [\"k\"], \"uids\": [1], \"audiences\": [\"a\"], \"tasks\": [\"t\"],"
                  " \"peers\": [\"p\"], \"scopes\": [\"s\"], \"no_login_sessions\": false", 0 },
                { "\"effect\": \"allow\", \"gids\": [1]", POLICY_NEED_GIDS },
                { "\"effect\": \"allow\", \"exe_sha256\": [\"" HEX_A "\"]", POLICY_NEED_EXE },
                { "\"effect\": \"deny\", \"units\": [\"*\"]", POLICY_NEED_UNIT },
                { "\"effect\": \"allow\", \"no_login_sessions\": true", POLICY_NEED_SESSION },
        };
        unsigned all = 0;
        char json[4096] = "{\"version\": 1, \"rules\": [";
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Policy *p = one_rule(cases[i].members);
                assert_int_equal(policy_needs(p), cases[i].needs);
                policy_free(p);
                all |= cases[i].needs;
                snprintf(json + strlen(json), sizeof(json) - strlen(json), "%s{%s}", i ? "," : "",
                         cases[i].members);
        }
        strcat(json, "]}");
        Policy *p = parse_ok(json);
        assert_int_equal(policy_needs(p), all);
        assert_int_equal(all, POLICY_NEED_GIDS | POLICY_NEED_EXE | POLICY_NEED_UNIT | POLICY_NEED_SESSION);
        policy_free(p);
}

/* The complete examples of docs/policy.md parse and mean what the text says. */
static void test_doc_examples(void **state) {
        const char *formats = getenv("AGENTID_TEST_FORMATS_DOC");
        char path[4096], *doc = NULL, *at;
        Policy *examples[8] = {};
        size_t n = 0, size = 0;
        FILE *f;

        if (!formats)
                skip();
        snprintf(path, sizeof(path), "%s", formats);
        assert_non_null(strrchr(path, '/'));
        strcpy(strrchr(path, '/') + 1, "policy.md");
        f = fopen(path, "re");
        assert_non_null(f);
        assert_int_equal(getdelim(&doc, &size, 0, f) > 0, 1);
        fclose(f);

        for (at = doc; (at = strstr(at, "```json\n")); ) {
                char *start = at + 8, *end = strstr(start, "```");
                assert_non_null(end);
                *end = 0;
                at = end + 3;
                if (!strstr(start, "\"version\""))
                        continue; /* a rule on its own */
                assert_true(n < ELEMENTSOF(examples));
                examples[n++] = parse_ok(start);
        }
        free(doc);
        assert_int_equal(n, 4);

        PolicyRequest req = base_request();
        PolicyDecision d;

        /* The strict one: payments need a ticket and a human, other keys a task. */
        req.key = "payments-bot";
        req.uid = 2001;
        req.exe_sha256 = (const uint8_t *) "\x9f\x86\xd0\x81\x88\x4c\x7d\x65\x9a\x2f\xea\xa0\xc5\x5a\xd0\x15"
                                           "\xa3\xbf\x4f\x1b\x2b\x0b\x82\x2c\xd1\x5d\x6c\x15\xb0\xf0\x0a\x08";
        req.task_id = "PAY-42";
        assert_int_equal(decide(examples[1], &req, &d), POLICY_CONFIRM);
        req.task_id = NULL;
        assert_int_equal(decide(examples[1], &req, &d), POLICY_DENY);
        assert_string_equal(d.rule, "payments-deny");
        req = base_request();
        req.key = "agent-7";
        req.uid = 2003;
        assert_int_equal(decide(examples[1], &req, &d), POLICY_DENY);
        assert_string_equal(d.reason, "the rule requires a task_id");
        req.task_id = "t";
        assert_int_equal(decide(examples[1], &req, &d), POLICY_ALLOW);
        /* A rule without "actions" does not cover key management: no rule matches create. */
        req.key = "dev-x";
        req.action = POLICY_ACTION_CREATE;
        assert_int_equal(decide(examples[1], &req, &d), POLICY_DENY);
        assert_null(d.rule);

        /* Units: the service may sign, a shell needs approval, a user service nothing. */
        req = base_request();
        req.key = "billing-eu";
        req.unit = "billing-agent@eu.service";
        req.login_session = 0;
        assert_int_equal(decide(examples[2], &req, &d), POLICY_ALLOW);
        req.unit = "session-4.scope";
        req.login_session = 1;
        assert_int_equal(decide(examples[2], &req, &d), POLICY_CONFIRM);
        req.unit = "user@1000.service";
        req.login_session = 0;
        assert_int_equal(decide(examples[2], &req, &d), POLICY_DENY);
        assert_null(d.rule);

        /* Rates: 100 signatures per second for an ordinary key. */
        req = base_request();
        for (int i = 0; i < 100; i++) {
                policy_decide(examples[3], &req, &d);
                assert_int_equal(d.effect, POLICY_ALLOW);
        }
        policy_decide(examples[3], &req, &d);
        assert_string_equal(d.reason, "the rule's rate limit is exhausted");
        assert_string_equal(d.rule, "sign");

        for (size_t i = 0; i < n; i++)
                policy_free(examples[i]);
}

typedef struct TraceLog {
        char text[1024];
} TraceLog;

static void trace_cb(const char *rule, const char *mismatch, void *userdata) {
        TraceLog *log = userdata;
        size_t n = strlen(log->text);
        snprintf(log->text + n, sizeof(log->text) - n, "%s:%s;", rule, mismatch ? mismatch : "MATCH");
}

static void test_explain_trace(void **state) {
        PolicyRequest req = base_request();
        PolicyDecision d;
        TraceLog log = {};
        Policy *p;

        p = parse_ok("{\"version\": 1, \"rules\": ["
                     "{\"name\": \"admins\", \"uids\": [0], \"effect\": \"allow\"},"
                     "{\"actions\": [\"attest\"], \"effect\": \"allow\"},"
                     "{\"keys\": [\"db-*\"], \"effect\": \"deny\"},"
                     "{\"name\": \"ci\", \"keys\": [\"ci-*\"], \"uids\": [1000], \"units\": [\"ci.service\"],"
                     " \"effect\": \"allow\"},"
                     "{\"name\": \"ci-task\", \"keys\": [\"ci-*\"], \"tasks\": [\"build-*\"], \"effect\": \"allow\"},"
                     "{\"name\": \"ci-confirm\", \"keys\": [\"ci-*\"], \"scopes\": [\"x\"], \"effect\": \"confirm\"},"
                     "{\"name\": \"never-reached\", \"effect\": \"allow\"}]}");
        req.key = "ci-build";
        policy_explain(p, &req, trace_cb, &log, &d);
        assert_string_equal(log.text, "admins:uids;rules[1]:actions;rules[2]:keys;ci:units;ci-task:tasks;ci-confirm:MATCH;");
        assert_int_equal(d.effect, POLICY_CONFIRM);
        assert_string_equal(d.rule, "ci-confirm");

        /* No match: every rule is traced. */
        PolicyRequest none = base_request();
        none.action = _POLICY_ACTION_MAX;
        log = (TraceLog) {};
        policy_explain(p, &none, trace_cb, &log, &d);
        assert_string_equal(log.text, "admins:actions;rules[1]:actions;rules[2]:actions;ci:actions;ci-task:actions;"
                                      "ci-confirm:actions;never-reached:actions;");
        assert_null(d.rule);
        policy_free(p);
}

/* Random policies: the indexed decision equals the linear one on every request. */
static void append_list(FILE *f, const char *field, const char *const *values, size_t n_values, unsigned max) {
        unsigned n = 1 + rnd(max);
        fprintf(f, ", \"%s\": [", field);
        for (unsigned i = 0; i < n; i++)
                fprintf(f, "%s\"%s\"", i ? ", " : "", values[rnd((uint32_t) n_values)]);
        fputs("]", f);
}

static void test_index_equals_linear(void **state) {
        static const char *const keys[] = {
                "key-0", "key-1", "key-2", "key-3", "key-4", "key-5", "key-6", "key-7", "key-8", "key-9",
                "key-10", "key-11", "key-12", "xkey-3", "k", "key-12345678-abc", "key-12345678-abd",
        };
        /* Every kind, and general globs whose ends the index's byte filter reads. */
        static const char *const key_globs[] = {
                "key-1*", "*-3", "*y-1*", "key-?", "[kx]ey-[0-5]", "*", "key-1[0-9]", "x*", "k*-[0-9]",
                "*y-1?", "key*1", "key-1234*-ab?", "?ey-12345678-abc", "k*", "*c", "key-12345678-ab[!c]",
                "key*1*", "k*-*1", "key-1*2*abc", "key-12345678*", "*-12345678-abc", "*?",
        };
        static const char *const units[] = { "a.service", "b.service", "*.service", "a*" };
        static const char *const auds[] = { "https://a/", "https://b/*", "*" };
        static const char *const tasks[] = { "t-1", "t-*", "u-?" };
        static const char *const scopes[] = { "read", "write", "r*" };
        static const char *const req_units[] = { "a.service", "b.service", "c.socket" };
        static const char *const req_auds[] = { "https://a/", "https://b/x", "https://c/" };
        static const char *const req_tasks[] = { "t-1", "t-2", "u-1", "v" };
        static const char *const req_scopes[] = { "read", "write", "rw", "admin" };
        const uint32_t gid_sets[][3] = { { 10, 11, 12 }, { 20, 21, 22 }, { 10, 20, 30 } };
        unsigned matched_at[4] = {};

        for (unsigned round = 0; round < 4; round++) {
                char *doc = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&doc, &size);
                /* A small policy leaves requests unmatched, strict big ones decide deep down. */
                unsigned n_rules = round == 0 ? 30 : 100 + rnd(300);
                bool strict = round >= 2;

                fputs("{\"version\": 1, \"rules\": [", f);
                for (unsigned i = 0; i < n_rules; i++) {
                        unsigned effect = rnd(3);
                        fprintf(f, "%s{\"effect\": \"%s\"", i ? ",\n" : "",
                                effect == 0 ? "allow" : effect == 1 ? "deny" : "confirm");
                        if (rnd(2) == 0) {
                                unsigned n = 1 + rnd(3), mask = 0;
                                fputs(", \"actions\": [", f);
                                for (unsigned k = 0; k < n; k++) {
                                        unsigned a = rnd(_POLICY_ACTION_MAX);
                                        if (mask & (1U << a))
                                                continue;
                                        fprintf(f, "%s\"%s\"", mask ? ", " : "", policy_action_to_string(a));
                                        mask |= 1U << a;
                                }
                                fputs("]", f);
                        }
                        switch (rnd(8)) {
                        case 0:
                                if (!strict)
                                        break;
                                __attribute__((fallthrough));
                        case 1 ... 3:
                                append_list(f, "keys", keys, ELEMENTSOF(keys), 3);
                                break;
                        case 4 ... 5:
                                fprintf(f, ", \"keys\": [\"%s\"]", key_globs[rnd(ELEMENTSOF(key_globs))]);
                                break;
                        default:
                                /* A glob among literals makes the whole rule a wildcard one. */
                                fprintf(f, ", \"keys\": [\"%s\", \"%s\"]", keys[rnd(ELEMENTSOF(keys))],
                                        key_globs[rnd(ELEMENTSOF(key_globs))]);
                        }
                        if (strict || rnd(2) == 0)
                                fprintf(f, ", \"uids\": [%u, %u]", rnd(7), rnd(7));
                        if (rnd(6) == 0)
                                fprintf(f, ", \"gids\": [%u]", 10 * (1 + rnd(3)) + rnd(3));
                        if (rnd(8) == 0)
                                fprintf(f, ", \"exe_sha256\": [\"%s\"]", rnd(2) ? HEX_A : HEX_B);
                        if (rnd(6) == 0)
                                append_list(f, "units", units, ELEMENTSOF(units), 2);
                        if (rnd(8) == 0)
                                fprintf(f, ", \"no_login_sessions\": %s", rnd(4) ? "true" : "false");
                        if (rnd(6) == 0)
                                append_list(f, "audiences", auds, ELEMENTSOF(auds), 2);
                        if (rnd(8) == 0)
                                append_list(f, "peers", auds, ELEMENTSOF(auds), 2);
                        if (rnd(6) == 0)
                                append_list(f, "tasks", tasks, ELEMENTSOF(tasks), 2);
                        if (rnd(6) == 0)
                                append_list(f, "scopes", scopes, ELEMENTSOF(scopes), 2);
                        if (effect != 1 && rnd(5) == 0)
                                fputs(", \"require_task\": true", f);
                        if (effect != 1 && rnd(5) == 0)
                                fprintf(f, ", \"max_token_ttl\": %u", 1 + rnd(1000));
                        fputs("}", f);
                }
                fputs("]}", f);
                fclose(f);

                Policy *p = parse_ok(doc);
                free(doc);

                for (unsigned k = 0; k < 1000; k++) {
                        PolicyRequest req = {
                                .action = (PolicyAction) rnd(_POLICY_ACTION_MAX),
                                .key = rnd(20) ? keys[rnd(ELEMENTSOF(keys))] : (rnd(2) ? NULL : rnd(2) ? "" : "zzz"),
                                .uid = rnd(7),
                                .login_session = (int) rnd(3) - 1,
                        };
                        const char *sc[2];
                        if (rnd(2)) {
                                unsigned g = rnd(ELEMENTSOF(gid_sets));
                                req.gids = gid_sets[g];
                                req.n_gids = 1 + rnd(3);
                        }
                        if (rnd(2))
                                req.exe_sha256 = rnd(2) ? exe_a : exe_b;
                        if (rnd(2))
                                req.unit = req_units[rnd(ELEMENTSOF(req_units))];
                        if (rnd(2))
                                req.audience = req_auds[rnd(ELEMENTSOF(req_auds))];
                        if (rnd(3) == 0)
                                req.peer = req_auds[rnd(ELEMENTSOF(req_auds))];
                        if (rnd(2))
                                req.task_id = req_tasks[rnd(ELEMENTSOF(req_tasks))];
                        req.n_scopes = rnd(3);
                        for (size_t s = 0; s < req.n_scopes; s++)
                                sc[s] = req_scopes[rnd(ELEMENTSOF(req_scopes))];
                        req.scopes = sc;

                        PolicyDecision d, e;
                        policy_decide(p, &req, &d);
                        policy_explain(p, &req, NULL, NULL, &e);
                        assert_int_equal(d.effect, e.effect);
                        assert_ptr_equal(d.rule, e.rule);
                        assert_ptr_equal(d.reason, e.reason);
                        assert_int_equal(d.max_token_ttl, e.max_token_ttl);

                        /* Where the decisions came from, so the test is known to reach deep rules. */
                        if (!d.rule)
                                matched_at[0]++;
                        else if (strncmp(d.rule, "rules[", 6) == 0 && atoi(d.rule + 6) >= 20)
                                matched_at[2]++;
                        else
                                matched_at[1]++;
                        if (d.reason && streq(d.reason, "the rule requires a task_id"))
                                matched_at[3]++;
                }
                policy_free(p);
        }
        print_message("decisions: %u without a rule, %u by rules 0..19, %u by later rules, %u require_task\n",
                      matched_at[0], matched_at[1], matched_at[2], matched_at[3]);
        assert_true(matched_at[0] > 100); /* no rule */
        assert_true(matched_at[1] > 500); /* an early rule */
        assert_true(matched_at[2] > 500); /* a rule from index 20 on */
        assert_true(matched_at[3] > 50);  /* require_task */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_match_actions_keys_ids),
                cmocka_unit_test(test_match_exe_unit_session),
                cmocka_unit_test(test_match_audience_peer_task),
                cmocka_unit_test(test_match_scopes),
                cmocka_unit_test(test_deny_scopes),
                cmocka_unit_test(test_key_management_must_be_named),
                cmocka_unit_test(test_create_rate_per_uid),
                cmocka_unit_test(test_effects_and_reasons),
                cmocka_unit_test(test_first_match_and_no_match),
                cmocka_unit_test(test_require_task),
                cmocka_unit_test(test_rate),
                cmocka_unit_test(test_rate_buckets_bounded),
                cmocka_unit_test(test_glob_kinds),
                cmocka_unit_test(test_glob_refused),
                cmocka_unit_test(test_glob_against_fnmatch),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_rule_errors),
                cmocka_unit_test(test_size_limits),
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_digest_and_needs),
                cmocka_unit_test(test_doc_examples),
                cmocka_unit_test(test_explain_trace),
                cmocka_unit_test(test_index_equals_linear),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

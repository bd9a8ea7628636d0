/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `agentidctl policy check FILE` and `agentidctl policy explain ...` (see ctl-policy.h). explain walks
 * the rules in order with the same matcher agentidd uses and says, for each rule it passes over, the
 * first field that did not match — the answer to "why was I refused?".
 */

#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>

#include "common/hexutil.h"
#include "common/log.h"
#include "ctl/ctl-policy.h"

/* Exit codes shared with agentidctl.c. */
#define CTL_EXIT_REFUSED 1
#define CTL_EXIT_USAGE 2

static int print_json(json_t *j) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        printf("%s\n", s);
        free(s);
        return 0;
}

static int load(const char *path, Policy **ret) {
        char err[POLICY_ERROR_MAX] = "";
        int r = policy_load_file(path, ret, err);
        if (r == -EINVAL) {
                fprintf(stderr, "%s: %s\n", path, err);
                return -CTL_EXIT_REFUSED;
        }
        if (r < 0) {
                fprintf(stderr, "%s\n", err[0] ? err : strerror(-r));
                return -CTL_EXIT_REFUSED;
        }
        return 0;
}

int ctl_policy_check(const char *path, bool json) {
        _cleanup_(policy_freep) Policy *p = NULL;
        char hex[65];
        int r;

        r = load(path, &p);
        if (r < 0)
                return r;
        hex_encode_to(policy_digest(p), 32, hex);
        if (json)
                return print_json(json_pack("{s:s, s:b, s:I, s:s}", "file", path, "valid", 1, "rules",
                                            (json_int_t) policy_rule_count(p), "sha256", hex));
        printf("%s: valid, %zu rule(s), sha256 %s\n", path, policy_rule_count(p), hex);
        return 0;
}

typedef struct Trace {
        json_t *steps;
        bool json;
} Trace;

static void trace_step(const char *rule, const char *mismatch, void *userdata) {
        Trace *t = userdata;

        if (t->json) {
                json_array_append_new(t->steps, mismatch ? json_pack("{s:s, s:s}", "rule", rule, "mismatch", mismatch)
                                                         : json_pack("{s:s, s:b}", "rule", rule, "matched", 1));
                return;
        }
        if (mismatch)
                printf("  %-24s does not match: %s\n", rule, mismatch);
        else
                printf("  %-24s matches\n", rule);
}

int ctl_policy_explain(const ExplainArgs *a) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_free_ uint8_t *exe = NULL;
        uint32_t gids[256];
        size_t n_gids = 0;
        bool have_gids = false;
        PolicyDecision d;
        int r;

        if (!a->key || !a->action || a->uid < 0) {
                log_error("policy explain needs --key=, --action= and --uid= (or --user-name=).");
                return -CTL_EXIT_USAGE;
        }
        r = policy_action_from_string(a->action);
        if (r < 0) {
                log_error("Unknown --action '%s' (create, destroy, rotate, sign, sign_message, issue_token, "
                          "attest, start_task).", a->action);
                return -CTL_EXIT_USAGE;
        }
        PolicyAction action = (PolicyAction) r;
        if (a->exe_sha256) {
                size_t n = 0;
                if (hex_decode(a->exe_sha256, &exe, &n) < 0 || n != 32) {
                        log_error("--exe-sha256= must be 64 hex digits.");
                        return -CTL_EXIT_USAGE;
                }
        }
        /* Groups as agentidd sees them: the account's, from the group database. */
        struct passwd *pw = getpwuid((uid_t) a->uid);
        if (pw) {
                gid_t groups[256];
                int n = ELEMENTSOF(groups);
                if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) >= 0) {
                        for (int i = 0; i < n; i++)
                                gids[i] = (uint32_t) groups[i];
                        n_gids = (size_t) n;
                        have_gids = true;
                }
        }

        r = load(a->policy, &p);
        if (r < 0)
                return r;

        PolicyRequest req = {
                .action = action,
                .key = a->key,
                .uid = (uint32_t) a->uid,
                .gids = have_gids ? gids : NULL,
                .n_gids = n_gids,
                .exe_sha256 = exe,
                .unit = a->unit,
                .login_session = a->login_session,
                .audience = a->audience,
                .peer = a->peer,
                .task_id = a->task_id,
                .scopes = a->scopes,
                .n_scopes = a->n_scopes,
        };
        Trace t = { .json = a->json, .steps = a->json ? json_array() : NULL };
        if (!a->json)
                printf("%s for uid %lld with key '%s' under %s:\n", a->action, a->uid, a->key, a->policy);
        policy_explain(p, &req, trace_step, &t, &d);

        if (a->json) {
                json_t *o = json_pack("{s:s, s:o}", "effect", policy_effect_to_string(d.effect), "trace", t.steps);
                if (d.rule)
                        json_object_set_new(o, "rule", json_string(d.rule));
                if (d.reason)
                        json_object_set_new(o, "reason", json_string(d.reason));
                if (d.max_token_ttl)
                        json_object_set_new(o, "max_token_ttl", json_integer((json_int_t) d.max_token_ttl));
                r = print_json(o);
        } else {
                printf("Decision: %s", policy_effect_to_string(d.effect));
                if (d.rule)
                        printf(" (rule %s)", d.rule);
                if (d.reason)
                        printf(": %s", d.reason);
                if (d.max_token_ttl)
                        printf("; tokens at most %llu s", (unsigned long long) d.max_token_ttl);
                printf("\n");
                if (policy_needs(p) & (POLICY_NEED_UNIT | POLICY_NEED_SESSION | POLICY_NEED_EXE))
                        printf("(Rules look at the caller's unit, login session or executable: agentidd measures "
                               "them; here they are what you gave.)\n");
        }
        if (r < 0)
                return r;
        /* Scripts can branch on it: denied is 1, allowed or held for approval is 0. */
        return d.effect == POLICY_DENY ? -CTL_EXIT_REFUSED : 0;
}

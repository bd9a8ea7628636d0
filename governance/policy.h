/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Policy-as-code (DESIGN §5, docs/policy.md): a JSON document of rules, first match wins, no match =
 * deny. The daemon asks for a decision after its own key check passed; a policy only narrows that check.
 *
 * Parsing is strict (jansson with JSON_REJECT_DUPLICATES, the whole input, unknown fields and wrong
 * types refused) and every refusal names the JSON path of the offending value. Matchers are compiled
 * at load and rules are indexed by action and by literal key name, so a decision costs a few
 * comparisons, not one fnmatch() per rule.
 *
 * No sd-bus, no TPM: the daemon measures the caller's facts (only those policy_needs() asks for) and
 * fills a PolicyRequest. Not thread-safe: policy_decide() updates the rate buckets.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define POLICY_FILE_MAX (1024U * 1024U)   /* bytes */
#define POLICY_RULES_MAX 10000U
#define POLICY_LIST_MAX 1024U             /* entries of any array in a rule */
#define POLICY_STRING_MAX 256U            /* bytes of any glob or string */
#define POLICY_RULE_NAME_MAX 64U
#define POLICY_ERROR_MAX 512U
#define POLICY_TTL_MAX (100ULL * 365 * 24 * 3600)

typedef enum PolicyAction {
        POLICY_ACTION_CREATE,
        POLICY_ACTION_DESTROY,
        POLICY_ACTION_ROTATE,
        POLICY_ACTION_SIGN,
        POLICY_ACTION_SIGN_MESSAGE,
        POLICY_ACTION_ISSUE_TOKEN,
        POLICY_ACTION_ATTEST,
        POLICY_ACTION_START_TASK,
        _POLICY_ACTION_MAX,
} PolicyAction;

typedef enum PolicyEffect {
        POLICY_ALLOW,
        POLICY_DENY,
        POLICY_CONFIRM,
} PolicyEffect;

/* The words of the policy file and of the audit log. NULL / -EINVAL for unknown ones. */
const char *policy_action_to_string(PolicyAction a);
int policy_action_from_string(const char *s);
const char *policy_effect_to_string(PolicyEffect e);

/* Caller facts that cost something to measure; the daemon gathers only those some rule looks at. */
typedef enum PolicyNeed {
        POLICY_NEED_GIDS = 1U << 0,     /* "gids" */
        POLICY_NEED_EXE = 1U << 1,      /* "exe_sha256" */
        POLICY_NEED_UNIT = 1U << 2,     /* "units" */
        POLICY_NEED_SESSION = 1U << 3,  /* "no_login_sessions" */
} PolicyNeed;

typedef struct PolicyRequest {
        PolicyAction action;
        const char *key;                /* key name (for create: the name asked for) */
        uint32_t uid;                   /* the caller's euid as the bus reports it */
        const uint32_t *gids;           /* the account's groups, primary included; NULL: not measured */
        size_t n_gids;
        const uint8_t *exe_sha256;      /* 32 bytes; NULL: not measured or not measurable */
        const char *unit;               /* systemd unit of the caller; NULL: none or not measured */
        int login_session;              /* > 0 in a login session, 0 not, < 0 unknown */
        const char *audience;           /* NULL: none */
        const char *peer;               /* issuer URI of a parent token; NULL: none */
        const char *task_id;            /* NULL: none */
        const char *const *scopes;      /* requested scopes (tokens, tasks) */
        size_t n_scopes;
        uint64_t now_usec;              /* CLOCK_MONOTONIC, for the rate buckets */
} PolicyRequest;

typedef struct PolicyDecision {
        PolicyEffect effect;
        /* The matching rule's name ("name" in the file, else "rules[N]", N from 0); NULL when no rule
         * matched. Points into the Policy: valid until it is freed. */
        const char *rule;
        /* Why a deny was given, for the error message: "no rule matches", "denied by rule", "the rule
         * requires a task_id", "the rule's rate limit is exhausted". NULL for allow and confirm. */
        const char *reason;
        uint64_t max_token_ttl;         /* seconds, 0 = the rule sets no limit */
        bool names_task;                /* the rule lists tasks (globs), and the request's task matched */
} PolicyDecision;

typedef struct Policy Policy;

/*
 * policy_parse() - compile a policy document
 *
 * @text, @size: the document (at most POLICY_FILE_MAX bytes; need not be NUL-terminated)
 * @error: on -EINVAL, "<JSON path>: <what is wrong>" (e.g. "$.rules[3].keys[0]: not a string") or
 *         "line L column C: <jansson's message>" for syntax errors
 *
 * Return: 0; -EINVAL (invalid document, error filled); -EFBIG (too large); -ENOMEM; -EIO (OpenSSL
 *         could not hash the document). error says why on every failure.
 */
int policy_parse(const void *text, size_t size, Policy **ret, char error[POLICY_ERROR_MAX]);
/* Read and compile a file (regular, at most POLICY_FILE_MAX). -ENOENT and other -errno from reading
 * come back unchanged, with error filled. (error: "<path>: <strerror>" for those; for -EINVAL — an
 * invalid document or not a regular file — policy_parse()'s text without the path, which the caller
 * adds.) */
int policy_load_file(const char *path, Policy **ret, char error[POLICY_ERROR_MAX]);
Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);

/* SHA-256 of the document's bytes (the PolicyDigest property). */
const uint8_t *policy_digest(const Policy *p);
size_t policy_rule_count(const Policy *p);
/* Bitmask of PolicyNeed. */
unsigned policy_needs(const Policy *p);

/*
 * policy_decide() - the first rule that matches req, and its effect after the rule's limits
 *
 * A rule matches when every field it has matches. Absent request facts never match a field that asks
 * for them (a rule with "tasks" does not match a request without a task_id). Then the matching rule's
 * limits apply: "require_task" turns a request without a task_id into a deny, and "rate" takes one
 * token from the bucket of (rule, key) — empty means deny. Consumes rate tokens, so not const.
 */
void policy_decide(Policy *p, const PolicyRequest *req, PolicyDecision *ret);

/*
 * policy_explain() - the same decision, evaluated rule by rule without the index and without touching
 * the rate buckets (a rate limit is reported as not exhausted). trace, if set, is called for each rule
 * looked at, in order, with the first field that did not match (e.g. "keys", "uids") or NULL for the
 * rule that matched. For `agentidctl policy explain` and tests.
 */
typedef void (*PolicyTraceFn)(const char *rule, const char *mismatch, void *userdata);
void policy_explain(const Policy *p, const PolicyRequest *req, PolicyTraceFn trace, void *userdata,
                    PolicyDecision *ret);

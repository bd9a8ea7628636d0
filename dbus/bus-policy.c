/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policy on the bus: after a handler's own key check passed, the policy decides (DESIGN §3, §5).
 * "allow" queues the job, "deny" answers PolicyDenied naming the rule, "confirm" holds the job until an
 * administrator approves or denies it, the approval times out, or the caller disconnects.
 *
 * A held request keeps its Job (and with it the call and the caller's Client) but is not queued on the
 * TPM worker, so held requests take no queue space; they are bounded by governance/approval.h instead.
 */

#include <time.h>

#include "common/hexutil.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/caller.h"
#include "dbus/errors.h"

typedef struct HeldRequest {
        Manager *manager;
        Approval *approval;      /* owned; data points back here */
        Job *job;                /* owned */
        sd_event_source *timer;
} HeldRequest;

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- loading ------------------------------------------------------------------------------- */

int bus_policy_load(Manager *m, sd_bus_error *error) {
        _cleanup_(policy_freep) Policy *p = NULL;
        char err[POLICY_ERROR_MAX] = "";
        int r;

        if (!m->policy_path)
                return 0; /* --policy= (empty): no policy by choice */
        r = policy_load_file(m->policy_path, &p, err);
        if (r == -ENOENT && !m->policy_required && !m->policy) {
                log_info("No policy file %s: every request that passes the key checks is allowed.",
                         m->policy_path);
                return 0;
        }
        if (r < 0) {
                /* The old policy (or none) stays: a typo must not open or close everything. */
                log_error("Refusing policy %s: %s%s", m->policy_path, err,
                          m->policy ? " (the previous policy stays in force)" : "");
                return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_INVALID, "%s: %s", m->policy_path, err);
        }

        bool changed = !m->policy || memcmp(policy_digest(m->policy), policy_digest(p), 32) != 0;
        policy_free(m->policy);
        m->policy = TAKE_PTR(p);
        char hex[65];
        hex_encode_to(policy_digest(m->policy), 32, hex);
        log_info("Policy %s loaded: %zu rule(s), sha256 %s.", m->policy_path, policy_rule_count(m->policy), hex);
        if (changed && m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE,
                                                      "PolicyDigest", NULL);
        return 0;
}

/* ---- the caller's facts ------------------------------------------------------------------- */

typedef struct Facts {
        gid_t groups[UID_GROUPS_MAX];
        uint32_t gids[UID_GROUPS_MAX];
        int n_gids;              /* < 0: not measured */
        bool has_exe;
        uint8_t exe_sha256[32];
        char *unit;
        int session;             /* < 0: not measured */
} Facts;

static void facts_done(Facts *f) {
        free(f->unit);
}

/* Measure what the policy looks at (and for held requests, what a reviewer wants to see). Facts that
 * cannot be measured stay absent, and absent facts never match a rule that asks for them. */
static void facts_gather(Manager *m, const PolicyCall *call, unsigned needs, Facts *f) {
        f->n_gids = -1;
        f->session = -1;
        if (needs & POLICY_NEED_GIDS) {
                f->n_gids = uid_groups(call->uid, f->groups, UID_GROUPS_MAX);
                for (int i = 0; i < f->n_gids; i++)
                        f->gids[i] = (uint32_t) f->groups[i];
        }
        if (needs & POLICY_NEED_EXE)
                f->has_exe = caller_exe_digest(m->exe_cache, call->pid, call->uid, f->exe_sha256) >= 0;
        if (needs & (POLICY_NEED_UNIT | POLICY_NEED_SESSION))
                if (caller_cgroup_facts(call->pid, &f->unit, &f->session) < 0) {
                        f->unit = NULL;
                        f->session = -1;
                }
}

/* ---- holding -------------------------------------------------------------------------------- */

static HeldRequest *held_free(HeldRequest *h) {
        if (!h)
                return NULL;
        approval_queue_remove(&h->manager->approvals, h->approval);
        approval_free(h->approval);
        sd_event_source_disable_unref(h->timer);
        job_free(h->job);
        free(h);
        return NULL;
}

/* Answer the held call with an error and forget it. */
static void held_fail(HeldRequest *h, const char *name, const char *message) {
        if (name)
                (void) sd_bus_reply_method_errorf(h->job->call, name, "%s", message);
        held_free(h);
}

static int on_approval_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        HeldRequest *h = userdata;

        log_info("Request %s (%s with key '%s' by uid %u) was not approved in time.", h->approval->id,
                 policy_action_to_string(h->approval->action), h->approval->key, h->approval->uid);
        held_fail(h, AGENTID_ERROR_APPROVAL_TIMEOUT, "Nobody approved the request in time");
        return 0;
}

static int append_context(sd_bus_message *reply, const Approval *a) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}", "uid", "u", (uint32_t) a->uid, "pid", "u",
                                          (uint32_t) a->pid, "rule", "s", a->rule, "requested_at", "t",
                                          a->requested_usec, "expires_at", "t", a->expires_usec);
        const struct {
                const char *name, *value;
        } strings[] = {
                { "unit", a->unit },
                { "task_id", a->task_id },
                { "parent_task_id", a->parent_task_id },
                { "audience", a->audience },
        };
        for (size_t i = 0; i < ELEMENTSOF(strings) && r >= 0; i++)
                if (strings[i].value)
                        r = sd_bus_message_append(reply, "{sv}", strings[i].name, "s", strings[i].value);
        const struct {
                const char *name;
                bool present;
                const uint8_t *value;
        } digests[] = {
                { "exe_sha256", a->has_exe, a->exe_sha256 },
                { "digest", a->has_digest, a->digest },
        };
        for (size_t i = 0; i < ELEMENTSOF(digests) && r >= 0; i++) {
                if (!digests[i].present)
                        continue;
                r = sd_bus_message_open_container(reply, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", digests[i].name);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', digests[i].value, 32);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int emit_approval_requested(Manager *m, const Approval *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *signal = NULL;
        int r;

        r = sd_bus_message_new_signal(m->bus, &signal, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE,
                                      "ApprovalRequested");
        if (r >= 0)
                r = sd_bus_message_append(signal, "sss", a->id, a->key, policy_action_to_string(a->action));
        if (r >= 0)
                r = append_context(signal, a);
        if (r >= 0)
                r = sd_bus_send(m->bus, signal, NULL);
        return r;
}

static int hold(Manager *m, sd_bus_message *msg, Job **job, const PolicyCall *call, const PolicyDecision *d,
                const Facts *facts, sd_bus_error *error) {
        _cleanup_(approval_freep) Approval *a = NULL;
        _cleanup_free_ char *unit = NULL;
        int session = -1, r;

        if (!sd_bus_message_get_allow_interactive_authorization(msg))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                         "Policy rule '%s' requires a human's approval for %s with key '%s'; "
                                         "call again allowing interactive authorization (agentidctl does)",
                                         d->rule, policy_action_to_string(call->action), call->key);

        r = approval_new(call->action, call->key, d->rule, call->uid, &a);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Cannot hold the request: %s", strerror(-r));
        /* What a reviewer is shown: the workload as well as the request. */
        if (!facts->unit && call->pid > 0 && caller_cgroup_facts(call->pid, &unit, &session) < 0)
                unit = NULL;
        r = approval_set_context(a, facts->unit ?: unit, call->task_id, call->parent_task_id, call->audience);
        if (r < 0)
                return r;
        a->pid = call->pid;
        a->has_exe = facts->has_exe ||
                     (call->pid > 0 && caller_exe_digest(m->exe_cache, call->pid, call->uid, a->exe_sha256) >= 0);
        if (facts->has_exe)
                memcpy(a->exe_sha256, facts->exe_sha256, 32);
        if (call->digest) {
                a->has_digest = true;
                memcpy(a->digest, call->digest, 32);
        }
        a->requested_usec = now_usec(CLOCK_REALTIME);
        a->expires_usec = a->requested_usec + m->approval_timeout_usec;

        HeldRequest *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->manager = m;
        r = sd_event_add_time_relative(m->event, &h->timer, CLOCK_MONOTONIC, m->approval_timeout_usec, 0,
                                       on_approval_timeout, h);
        if (r < 0) {
                free(h);
                return r;
        }
        r = approval_queue_add(&m->approvals, a);
        if (r < 0) {
                sd_event_source_disable_unref(h->timer);
                free(h);
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY,
                                         r == -EDQUOT ? "Too many of uid %u's requests await approval"
                                                      : "Too many requests await approval (uid %u)",
                                         call->uid);
        }
        a->data = h;
        h->approval = TAKE_PTR(a);
        h->job = TAKE_PTR(*job);

        log_info("Request %s: %s with key '%s' by uid %u awaits approval (rule '%s').", h->approval->id,
                 policy_action_to_string(call->action), call->key, call->uid, d->rule);
        r = emit_approval_requested(m, h->approval);
        if (r < 0)
                log_warning_errno(r, "Emitting ApprovalRequested failed, ignoring: %m");
        return 1;
}

/* ---- deciding ------------------------------------------------------------------------------- */

int bus_policy_submit(Manager *m, sd_bus_message *msg, Job **job, const PolicyCall *call, sd_bus_error *error) {
        _cleanup_(facts_done) Facts f = {};
        PolicyDecision d;
        int r;

        if (!m->policy) {
                if (call->extends_key_check)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Only administrators may %s keys (no policy extends it)",
                                                 policy_action_to_string(call->action));
                goto submit;
        }

        facts_gather(m, call, policy_needs(m->policy), &f);
        PolicyRequest req = {
                .action = call->action,
                .key = call->key,
                .uid = (uint32_t) call->uid,
                .gids = f.n_gids >= 0 ? f.gids : NULL,
                .n_gids = f.n_gids >= 0 ? (size_t) f.n_gids : 0,
                .exe_sha256 = f.has_exe ? f.exe_sha256 : NULL,
                .unit = f.unit,
                .login_session = f.session,
                .audience = call->audience,
                .task_id = call->task_id,
                .now_usec = now_usec(CLOCK_MONOTONIC),
        };
        policy_decide(m->policy, &req, &d);

        switch (d.effect) {
        case POLICY_ALLOW:
                break;
        case POLICY_CONFIRM:
                return hold(m, msg, job, call, &d, &f, error);
        case POLICY_DENY:
        default:
                log_info("Policy denies %s with key '%s' to uid %u: %s%s%s.", policy_action_to_string(call->action),
                         call->key, call->uid, d.reason, d.rule ? " by rule " : "", d.rule ?: "");
                if (call->extends_key_check)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Only administrators may %s keys (policy: %s%s%s)",
                                                 policy_action_to_string(call->action), d.reason,
                                                 d.rule ? ", rule " : "", d.rule ?: "");
                if (d.rule)
                        return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_DENIED,
                                                 "Policy rule '%s' refuses %s with key '%s': %s", d.rule,
                                                 policy_action_to_string(call->action), call->key, d.reason);
                return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_DENIED, "Policy refuses %s with key '%s': %s",
                                         policy_action_to_string(call->action), call->key, d.reason);
        }

submit:
        r = manager_submit(m, *job, error);
        if (r < 0)
                return r;
        *job = NULL;
        return 1;
}

/* ---- approvals on the bus ------------------------------------------------------------------- */

static int check_admin(Manager *m, sd_bus_message *msg, uid_t *ret_uid, const char *what, sd_bus_error *error) {
        uid_t uid;

        if (caller_get_creds(msg, &uid, NULL) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_uid_is_admin(m, uid))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Only administrators may %s", what);
        if (ret_uid)
                *ret_uid = uid;
        return 0;
}

int method_list_approvals(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = check_admin(m, msg, NULL, "list approvals", error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssa{sv})");
        for (Approval *a = m->approvals.head; a && r >= 0; a = a->next) {
                r = sd_bus_message_open_container(reply, 'r', "sssa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "sss", a->id, a->key, policy_action_to_string(a->action));
                if (r >= 0)
                        r = append_context(reply, a);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int method_approve(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error submit_error = SD_BUS_ERROR_NULL;
        const char *id;
        int allow, r;
        uid_t uid;

        r = sd_bus_message_read(msg, "sb", &id, &allow);
        if (r < 0)
                return r;
        r = check_admin(m, msg, &uid, "approve requests", error);
        if (r < 0)
                return r;
        Approval *a = approval_queue_find(&m->approvals, id);
        if (!a)
                return sd_bus_error_setf(error, AGENTID_ERROR_NO_SUCH_APPROVAL,
                                         "No request '%.64s' awaits approval (answered, timed out, or withdrawn)", id);
        /* Four eyes: whoever asked cannot also say yes (or no). */
        if (a->uid == uid)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "uid %u may not approve its own request", uid);

        HeldRequest *h = a->data;
        log_info("Request %s (%s with key '%s' by uid %u) %s by uid %u.", a->id, policy_action_to_string(a->action),
                 a->key, a->uid, allow ? "approved" : "denied", uid);
        if (!allow) {
                held_fail(h, AGENTID_ERROR_APPROVAL_DENIED, "An administrator denied the request");
                return sd_bus_reply_method_return(msg, NULL);
        }

        /* The key may have expired or been destroyed while the request waited. */
        if (h->job->key)
                r = key_check_usable(h->job->key, &submit_error);
        if (r >= 0)
                r = manager_submit(m, h->job, &submit_error);
        if (r < 0) {
                /* Both sides learn why the approved work could not be queued. */
                (void) sd_bus_reply_method_error(h->job->call, &submit_error);
                held_free(h);
                return sd_bus_reply_method_error(msg, &submit_error);
        }
        h->job = NULL; /* the worker's now */
        held_free(h);
        return sd_bus_reply_method_return(msg, NULL);
}

int method_reload_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = check_admin(m, msg, NULL, "reload the policy", error);
        if (r < 0)
                return r;
        r = bus_policy_load(m, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

void bus_approvals_client_gone(Manager *m, Client *c) {
        for (Approval *a = m->approvals.head, *next; a; a = next) {
                next = a->next;
                HeldRequest *h = a->data;
                if (h->job->client != c)
                        continue;
                log_info("Request %s withdrawn: its caller disconnected.", a->id);
                held_fail(h, NULL, NULL);
        }
}

void bus_approvals_cancel_all(Manager *m) {
        while (m->approvals.head)
                held_fail(m->approvals.head->data, AGENTID_ERROR_BUSY, "agentidd is shutting down");
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policy on the bus: after a handler's own key check passed, the policy decides (DESIGN §3, §5).
 * "allow" queues the job, "deny" answers PolicyDenied naming the rule, "confirm" holds the job until an
 * administrator approves or denies it, the approval times out, or the caller disconnects.
 *
 * A held request keeps its Job (and with it the call and the caller's Client) but is not queued on the
 * TPM worker, so held requests take no queue space; they are bounded by governance/approval.h instead.
 */

#include <stdio.h>
#include <time.h>

#include "common/hexutil.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"

typedef struct HeldRequest {
        Manager *manager;
        Approval *approval;      /* owned; data points back here */
        Job *job;                /* owned */
        sd_event_source *timer;
} HeldRequest;


static void held_fail(HeldRequest *h, const char *decision, const uid_t *by_uid, const char *name,
                      const char *message);

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
                log_error("Refusing policy %s%s%s%s", r == -EINVAL ? m->policy_path : "", r == -EINVAL ? ": " : "", err,
                          m->policy ? " (the previous policy stays in force)" : "");
                AuditEntry e = { .action = "policy_reload", .decision = "failed", .reason = err };
                (void) bus_audit(m, &e, NULL);
                /* policy_load_file() names the file itself except for an invalid document. */
                if (r == -EINVAL)
                        return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_INVALID, "%s: %s", m->policy_path, err);
                return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_INVALID, "%s", err);
        }

        bool changed = !m->policy || memcmp(policy_digest(m->policy), policy_digest(p), 32) != 0;
        policy_free(m->policy);
        m->policy = TAKE_PTR(p);
        /* Held requests were decided by the old rules; an emergency change must stop them too. */
        if (changed)
                while (m->approvals.head)
                        held_fail(m->approvals.head->data, "withdrawn", NULL, AGENTID_ERROR_POLICY_DENIED,
                                  "The policy changed while the request waited for approval; ask again");
        char hex[65];
        hex_encode_to(policy_digest(m->policy), 32, hex);
        log_info("Policy %s loaded: %zu rule(s), sha256 %s.", m->policy_path, policy_rule_count(m->policy), hex);
        AuditEntry e = {
                .action = "policy_reload",
                .decision = "done",
                .reason = m->policy_path,
                .policy_sha256 = policy_digest(m->policy),
        };
        (void) bus_audit(m, &e, NULL);
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

/* Measure what the policy looks at, and nothing else. Return: NULL, or the name of a fact a rule
 * needs that could not be measured — the caller then refuses: "unknown" must not slip past a deny rule
 * that would have matched (a caller can make itself unmeasurable, e.g. by exiting after connecting). */
static const char *facts_gather(Manager *m, const PolicyCall *call, unsigned needs, Facts *f) {
        f->n_gids = -1;
        f->session = -1;
        if (needs & POLICY_NEED_GIDS) {
                f->n_gids = uid_groups(call->uid, f->groups, UID_GROUPS_MAX);
                if (f->n_gids < 0)
                        return "groups";
                for (int i = 0; i < f->n_gids; i++)
                        f->gids[i] = (uint32_t) f->groups[i];
        }
        if (needs & POLICY_NEED_EXE) {
                f->has_exe = caller_exe_digest(m->exe_cache, call->pid, call->uid, f->exe_sha256) >= 0;
                if (!f->has_exe)
                        return "executable";
        }
        if (needs & (POLICY_NEED_UNIT | POLICY_NEED_SESSION))
                if (caller_cgroup_facts(call->pid, call->uid, &f->unit, &f->session) < 0) {
                        f->unit = NULL;
                        f->session = -1;
                        return "unit and login session";
                }
        return NULL;
}

/* The audit record of call: what was asked, by whom, and (filled by the caller) what was decided. */
static void audit_entry_for(const PolicyCall *call, const Facts *f, AuditCaller *caller, AuditEntry *e) {
        *caller = (AuditCaller) {
                .uid = (uint32_t) call->uid,
                .pid = (uint32_t) call->pid,
                .exe_sha256 = f && f->has_exe ? f->exe_sha256 : NULL,
                .unit = f ? f->unit : NULL,
        };
        *e = (AuditEntry) {
                .action = policy_action_to_string(call->action),
                .caller = caller,
                .key = call->key,
                .kid = call->kid,
                .task_id = call->task_id,
                .parent_task_id = call->parent_task_id,
                .audience = call->audience,
                .digest = call->digest,
                .reason = call->reason,
                .scope = call->scope,
                .exp = call->exp,
                .cti = call->cti,
        };
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

/* Record what became of a held request: approved, denied, timeout, withdrawn. */
static int audit_held(HeldRequest *h, const char *decision, const uid_t *by_uid, uint64_t *ret_seq) {
        const Approval *a = h->approval;
        AuditCaller caller = {
                .uid = (uint32_t) a->uid,
                .pid = (uint32_t) a->pid,
                .exe_sha256 = a->has_exe ? a->exe_sha256 : NULL,
                .unit = a->unit,
        };
        AuditEntry e = {
                .action = policy_action_to_string(a->action),
                .decision = decision,
                .caller = &caller,
                .key = a->key,
                .kid = h->job->key ? h->job->key->record->kid : NULL,
                .task_id = a->task_id,
                .parent_task_id = a->parent_task_id,
                .audience = a->audience,
                .digest = a->has_digest ? a->digest : NULL,
                .rule = a->rule,
                .request = a->id,
                .scope = a->scope,
                .exp = a->exp,
                .has_by_uid = by_uid != NULL,
                .by_uid = by_uid ? (uint32_t) *by_uid : 0,
        };
        return bus_audit(h->manager, &e, ret_seq);
}

/* Answer the held call with an error (none if name is NULL), record why, and forget it. */
static void held_fail(HeldRequest *h, const char *decision, const uid_t *by_uid, const char *name,
                      const char *message) {
        (void) audit_held(h, decision, by_uid, NULL);
        if (name)
                (void) sd_bus_reply_method_errorf(h->job->call, name, "%s", message);
        held_free(h);
}

static int on_approval_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        HeldRequest *h = userdata;

        log_info("Request %s (%s with key '%s' by uid %u) was not approved in time.", h->approval->id,
                 policy_action_to_string(h->approval->action), h->approval->key, h->approval->uid);
        held_fail(h, "timeout", NULL, AGENTID_ERROR_APPROVAL_TIMEOUT, "Nobody approved the request in time");
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
                { "scope", a->scope },
                { "peer", a->peer },
        };
        for (size_t i = 0; i < ELEMENTSOF(strings) && r >= 0; i++)
                if (strings[i].value)
                        r = sd_bus_message_append(reply, "{sv}", strings[i].name, "s", strings[i].value);
        if (r >= 0 && a->exp > 0)
                r = sd_bus_message_append(reply, "{sv}", "token_exp", "t", a->exp * USEC_PER_SEC);
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

/* Signals reach every peer on the bus: the announcement carries only who asked, under which rule and
 * until when; the rest (digest, task, audience, workload) is for admins, through ListApprovals. */
static int emit_approval_requested(Manager *m, const Approval *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *signal = NULL;
        int r;

        r = sd_bus_message_new_signal(m->bus, &signal, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE,
                                      "ApprovalRequested");
        if (r >= 0)
                r = sd_bus_message_append(signal, "sss", a->id, a->key, policy_action_to_string(a->action));
        if (r >= 0)
                r = sd_bus_message_append(signal, "a{sv}", 3, "uid", "u", (uint32_t) a->uid, "rule", "s", a->rule,
                                          "expires_at", "t", a->expires_usec);
        if (r >= 0)
                r = sd_bus_send(m->bus, signal, NULL);
        return r;
}

static int hold(Manager *m, sd_bus_message *msg, Job **job, const PolicyCall *call, const PolicyDecision *d,
                const Facts *facts, sd_bus_error *error) {
        _cleanup_(approval_freep) Approval *a = NULL;
        _cleanup_free_ char *unit = NULL;
        int session = -1, r;

        r = approval_new(call->action, call->key, d->rule, call->uid, &a);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Cannot hold the request: %s", strerror(-r));
        /* What a reviewer is shown: the workload as well as the request. */
        if (facts->session < 0 && call->pid > 0 && caller_cgroup_facts(call->pid, call->uid, &unit, &session) < 0)
                unit = NULL;
        r = approval_set_context(a, facts->unit ?: unit, call->task_id, call->parent_task_id, call->audience);
        if (r >= 0 && call->action == POLICY_ACTION_ISSUE_TOKEN)
                r = approval_set_token(a, call->scope, call->exp, call->peer);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Cannot hold the request: %s", strerror(-r));
        a->pid = call->pid;
        a->has_exe = facts->has_exe ||
                     (call->pid > 0 && caller_exe_digest(m->exe_cache, call->pid, call->uid, a->exe_sha256) >= 0);
        if (facts->has_exe)
                memcpy(a->exe_sha256, facts->exe_sha256, 32);
        if (call->digest) {
                a->has_digest = true;
                memcpy(a->digest, call->digest, 32);
        }
        a->requested_usec = clock_now_usec(CLOCK_REALTIME);
        a->expires_usec = a->requested_usec + m->approval_timeout_usec;

        HeldRequest *h = calloc(1, sizeof(*h));
        if (!h)
                return bus_error_setf_errno(error, -ENOMEM, "Cannot hold the request: out of memory");
        h->manager = m;
        r = sd_event_add_time_relative(m->event, &h->timer, CLOCK_MONOTONIC, m->approval_timeout_usec, 0,
                                       on_approval_timeout, h);
        if (r < 0) {
                free(h);
                return bus_error_setf_errno(error, r, "Cannot hold the request: %s", strerror(-r));
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
        AuditCaller caller;
        AuditEntry e;
        audit_entry_for(call, facts, &caller, &e);
        e.decision = "confirm";
        e.rule = d->rule;
        e.request = h->approval->id;
        (void) bus_audit(m, &e, NULL);
        r = emit_approval_requested(m, h->approval);
        if (r < 0)
                log_warning_errno(r, "Emitting ApprovalRequested failed, ignoring: %m");
        return 1;
}

/* ---- deciding ------------------------------------------------------------------------------- */

/* Refuse with error (already set), recording the refusal. */
static int refuse(Manager *m, AuditEntry *e, const char *rule, const char *reason, int r) {
        e->decision = "deny";
        e->rule = rule;
        e->reason = reason;
        bus_audit_record_refusal(m, e);
        m->refusal_recorded = true;
        return r;
}

int bus_policy_submit(Manager *m, sd_bus_message *msg, Job **job, const PolicyCall *call, sd_bus_error *error) {
        _cleanup_(facts_done) Facts f = { .n_gids = -1, .session = -1 };
        char unmeasured_reason[128];
        PolicyDecision d = { .effect = POLICY_ALLOW };
        AuditCaller caller;
        AuditEntry e;
        uint64_t seq = 0;
        int r;

        const char *unmeasured = NULL;
        if (m->policy && !call->admin_exempt) {
                unmeasured = facts_gather(m, call, policy_needs(m->policy), &f);
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
                        .peer = call->peer,
                        .task_id = call->task_id,
                        .scopes = call->scopes,
                        .n_scopes = call->n_scopes,
                        .now_usec = clock_now_usec(CLOCK_MONOTONIC),
                };
                policy_decide(m->policy, &req, &d);
                /* Several audiences (StartTask): each is decided; the strictest answer counts, so an
                 * allowed audience cannot carry a denied one along. The call's rate is taken once
                 * (above): the others are decided without touching the buckets. */
                for (size_t i = 1; i < call->n_audiences && d.effect != POLICY_DENY; i++) {
                        PolicyDecision other = { .effect = POLICY_ALLOW };
                        req.audience = call->audiences[i];
                        policy_explain(m->policy, &req, NULL, NULL, &other);
                        bool names_task = d.names_task && other.names_task;
                        uint64_t ttl_limit = d.max_token_ttl == 0 ? other.max_token_ttl :
                                             other.max_token_ttl == 0 ? d.max_token_ttl :
                                             MIN(d.max_token_ttl, other.max_token_ttl);
                        if (other.effect == POLICY_DENY || (other.effect == POLICY_CONFIRM && d.effect == POLICY_ALLOW))
                                d = other;
                        d.max_token_ttl = ttl_limit;
                        d.names_task = names_task; /* named only if every audience's rule names it */
                }
                if (unmeasured) {
                        (void) snprintf(unmeasured_reason, sizeof(unmeasured_reason),
                                        "the caller's %s, which the policy looks at, cannot be measured", unmeasured);
                        d = (PolicyDecision) { .effect = POLICY_DENY, .reason = unmeasured_reason };
                }
                /* DESIGN §3: a request beyond a limit is refused naming the rule, never capped. */
                if (d.effect != POLICY_DENY && call->ttl > 0 && d.max_token_ttl > 0 && call->ttl > d.max_token_ttl) {
                        /* Static text: a refusal's reason is part of its aggregation identity, so
                         * nothing the caller chooses may go into it. */
                        d.effect = POLICY_DENY;
                        d.reason = "the token's ttl is over the rule's max_token_ttl";
                }
        } else if (!m->policy && call->extends_key_check) {
                d.effect = POLICY_DENY;
                d.reason = "no policy extends key management to non-administrators";
        }
        /* named_tasks_only (CreateKey): the key works only in tasks a rule names by its `tasks`
         * globs — or that a human reviews (a confirm rule). Static reasons: they are part of a
         * refusal's aggregation identity. */
        Key *k = (*job)->key;
        if (k && k->record->named_tasks_only && d.effect != POLICY_DENY &&
            (call->action == POLICY_ACTION_SIGN || call->action == POLICY_ACTION_SIGN_MESSAGE ||
             call->action == POLICY_ACTION_ISSUE_TOKEN || call->action == POLICY_ACTION_START_TASK ||
             /* evidence names the task it was asked for: no improvised task there either */
             (call->action == POLICY_ACTION_ATTEST && call->task_id))) {
                const char *why = !call->task_id ? "the key only works in named tasks; the call names no task" :
                                  !m->policy ? "the key only works in tasks a policy rule names; there is no policy" :
                                  d.effect == POLICY_ALLOW && !d.names_task ?
                                          "the key only works in tasks a policy rule names; the deciding rule names none" :
                                          NULL;
                if (why)
                        d = (PolicyDecision) { .effect = POLICY_DENY, .rule = d.rule, .reason = why };
        }
        audit_entry_for(call, &f, &caller, &e);

        switch (d.effect) {
        case POLICY_ALLOW:
                break;
        case POLICY_CONFIRM:
                if (!sd_bus_message_get_allow_interactive_authorization(msg)) {
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                              "Policy rule '%s' requires a human's approval for %s with key '%s'; "
                                              "call again allowing interactive authorization (agentidctl does)",
                                              d.rule, policy_action_to_string(call->action), call->key);
                        return refuse(m, &e, d.rule, "approval required, but the call does not allow waiting", r);
                }
                r = hold(m, msg, job, call, &d, &f, error);
                if (r < 0)
                        return refuse(m, &e, d.rule, "cannot hold the request for approval", r);
                return r;
        case POLICY_DENY:
        default:
                log_info("Policy denies %s with key '%s' to uid %u: %s%s%s.", policy_action_to_string(call->action),
                         call->key, call->uid, d.reason, d.rule ? " by rule " : "", d.rule ?: "");
                if (call->extends_key_check)
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                              "Only administrators may %s keys (policy: %s%s%s)",
                                              policy_action_to_string(call->action), d.reason,
                                              d.rule ? ", rule " : "", d.rule ?: "");
                else if (d.rule)
                        r = sd_bus_error_setf(error, AGENTID_ERROR_POLICY_DENIED,
                                              "Policy rule '%s' refuses %s with key '%s': %s", d.rule,
                                              policy_action_to_string(call->action), call->key, d.reason);
                else
                        r = sd_bus_error_setf(error, AGENTID_ERROR_POLICY_DENIED, "Policy refuses %s with key '%s': %s",
                                              policy_action_to_string(call->action), call->key, d.reason);
                return refuse(m, &e, d.rule, d.reason, r);
        }

        /* A full queue refuses the call before its allow is recorded, so it leaves one record (the
         * caller's Busy refusal), not an allow and then a deny. */
        if (!worker_has_room(m->worker, *job))
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "The TPM queue is full; retry later");

        /* Fail closed: what cannot be recorded is not done — except an administrator's Destroy, since
         * a full or broken log must not keep a compromised key alive (it goes to the journal). */
        e.decision = "allow";
        e.rule = d.rule;
        r = bus_audit(m, &e, &seq);
        if (r < 0 && !(call->action == POLICY_ACTION_DESTROY && call->admin_exempt)) {
                m->refusal_recorded = true;
                /* Whatever the errno (EIO from a failing disk, a sticky fdatasync error), it is the state
                 * directory that failed, not the TPM (docs/dbus-api.md). */
                if (r == -ENOMEM)
                        return bus_error_setf_errno(error, r, "The decision cannot be recorded in the audit log: %s",
                                                    strerror(-r));
                return sd_bus_error_setf(error, AGENTID_ERROR_STORAGE_FAILURE,
                                         "The decision cannot be recorded in the audit log: %s", strerror(-r));
        }
        if (r < 0)
                log_error("Destroying key '%s' although the audit log cannot record it.", call->key);
        (*job)->audit_seq = seq;
        r = manager_submit(m, *job, error);
        if (r < 0)
                return r;
        *job = NULL;
        return 1;
}

/* ---- approvals on the bus ------------------------------------------------------------------- */

static int check_admin(Manager *m, sd_bus_message *msg, uid_t *ret_uid, const char *what, sd_bus_error *error) {
        uid_t uid;

        if (caller_get_creds(m->creds_cache, msg, &uid, NULL) < 0)
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
                                         "No request '%.*s' awaits approval (answered, timed out, or withdrawn)",
                                         bus_quote_len(id, 64), id);
        /* Four eyes: whoever asked cannot also say yes (or no). */
        if (a->uid == uid) {
                AuditCaller caller = { .uid = (uint32_t) uid };
                AuditEntry e = {
                        .action = policy_action_to_string(a->action),
                        .decision = "deny",
                        .caller = &caller,
                        .key = a->key,
                        .request = a->id,
                        .reason = "an administrator tried to approve their own request",
                };
                bus_audit_record_refusal(m, &e);
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "uid %u may not approve its own request", uid);
        }

        HeldRequest *h = a->data;
        log_info("Request %s (%s with key '%s' by uid %u) %s by uid %u.", a->id, policy_action_to_string(a->action),
                 a->key, a->uid, allow ? "approved" : "denied", uid);
        if (!allow) {
                held_fail(h, "denied", &uid, AGENTID_ERROR_APPROVAL_DENIED, "An administrator denied the request");
                return sd_bus_reply_method_return(msg, NULL);
        }

        /* The key may have expired or been destroyed while the request waited. An expired key may
         * still be destroyed (that is offboarding); a destroyed one only once. */
        r = 0;
        if (h->job->type == JOB_DESTROY) {
                if (key_status(h->job->key, (uint64_t) time(NULL)) == KEY_STATUS_DESTROYED)
                        r = bus_error_setf_errno(&submit_error, -EKEYREVOKED, "Key '%s' was destroyed meanwhile",
                                                 h->job->key->name);
                h->job->now = (uint64_t) time(NULL); /* the receipt tells when it happened, not when asked */
        } else if (h->job->key)
                r = key_check_usable(h->job->key, &submit_error);
        /* A rotation's statement and revocation entry tell when it ran, too. */
        if (h->job->type == JOB_ROTATE)
                h->job->now = (uint64_t) time(NULL);
        /* A delegated token needs its parent's key still active, and must not be born expired. */
        if (r >= 0 && h->job->issuer &&
            (key_status(h->job->issuer, (uint64_t) time(NULL)) != KEY_STATUS_ACTIVE ||
             atomic_load(&h->job->issuer->refusing)))
                r = bus_error_setf_errno(&submit_error, -EKEYREVOKED,
                                         "The parent token's key is no longer active");
        if (r >= 0 && h->job->peer_parent && atomic_load(&h->manager->peers_removed) != h->job->peers_removed)
                r = bus_error_setf_errno(&submit_error, -EKEYREVOKED,
                                         "An approved peer was removed while the request was held; ask again");
        if (r >= 0 && h->job->token_exp > 0 && h->job->token_exp <= (uint64_t) time(NULL))
                r = sd_bus_error_setf(&submit_error, SD_BUS_ERROR_INVALID_ARGS,
                                      "The token would be expired by now; ask again");
        if (r >= 0) {
                r = audit_held(h, "approved", &uid, &h->job->audit_seq);
                if (r < 0)
                        r = bus_error_setf_errno(&submit_error, r, "The approval cannot be recorded: %s", strerror(-r));
        }
        if (r >= 0)
                r = manager_submit(m, h->job, &submit_error);
        if (r < 0) {
                /* Both sides learn why the approved work could not be queued; the log too. */
                (void) sd_bus_reply_method_error(h->job->call, &submit_error);
                held_fail(h, "failed", &uid, NULL, NULL);
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
                held_fail(h, "withdrawn", NULL, NULL, NULL);
        }
}

void bus_approvals_cancel_all(Manager *m) {
        while (m->approvals.head)
                held_fail(m->approvals.head->data, "withdrawn", NULL, AGENTID_ERROR_BUSY, "agentidd is shutting down");
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bus objects of agentidd: registration and the answers to finished TPM jobs. */

#include "dbus/manager.h"
#include "attest/evidence.h"
#include "attest/token.h"
#include "dbus/worker.h"

int bus_manager_register(Manager *m);
void bus_manager_job_done(Manager *m, Job *j);

int bus_key_register(Manager *m);
void bus_key_job_done(Manager *m, Job *j);
/* The caller may use k: its uid, and its pinned executable if any. */
int bus_key_authorize_use(Manager *m, sd_bus_message *msg, Key *k, uid_t *ret_uid, pid_t *ret_pid,
                          sd_bus_error *error);
/* Sign / SignMessage / IssueToken of a key, or of one of its tasks (task != NULL: the task key signs). */
int bus_key_sign(sd_bus_message *msg, Key *k, Task *task, bool message, sd_bus_error *error);
int bus_key_issue_token(sd_bus_message *msg, Key *k, Task *task, sd_bus_error *error);
/* scope tokens -> the space-separated claim (RFC 8693 §4.2); NULL for none. */
int scope_join(char **scope, char **ret);

/* ---- tasks (bus-task.c) ---- */

/* Create <state>/tasks and revoke every task journalled there (it did not survive the restart). */
int bus_tasks_open(Manager *m, int state_fd);
int bus_tasks_register(Manager *m);
/* End every running task (agentidd is stopping). */
void bus_tasks_end_all(Manager *m, const char *reason);
/* At exit: end what is left, free the table. */
void bus_tasks_close(Manager *m);
int method_start_task(sd_bus_message *msg, void *userdata, sd_bus_error *error);
void bus_task_start_done(Manager *m, Job *j);
/* End a task once: revoke it (task_end entry), forget its journal, take it off the bus, TaskEnded. */
void task_end(Task *t, const char *reason, uid_t by_uid);
/* End every task of k (it is destroyed or rotated). */
void bus_tasks_end_for_key(Manager *m, Key *k, const char *reason);

/* The TPM part of a finished JOB_ATTEST/JOB_PLATFORM, for the evidence encoder. */
void job_evidence_tpm(const Job *j, EvidenceTpm *ret);

/* ---- policy and approvals (bus-policy.c) ---- */

/* What a handler tells the policy about a call that passed its own key check. */
typedef struct PolicyCall {
        PolicyAction action;
        const char *key;              /* key name */
        uid_t uid;                    /* bus-reported euid */
        pid_t pid;                    /* for measured facts; 0 = unknown */
        const char *task_id, *parent_task_id, *audience;
        const char *const *audiences; /* StartTask: every audience (audience = the first), each decided */
        size_t n_audiences;
        const uint8_t *digest;        /* 32 bytes shown to reviewers, or NULL */
        const char *const *scopes;    /* IssueToken: requested scope tokens */
        size_t n_scopes;
        const char *peer;             /* IssueToken with a parent token: the parent's issuer */
        uint64_t ttl;                 /* IssueToken: seconds, checked against max_token_ttl */
        /* For the audit record */
        const uint8_t *kid;           /* the key's TPM Name */
        const char *scope;            /* IssueToken: the scope claim */
        uint64_t exp;                 /* IssueToken: the exp claim */
        const uint8_t *cti;           /* IssueToken: 16 bytes */
        const char *reason;           /* Destroy */
        /* An admin's CreateKey/Destroy: recorded, never decided by policy (DESIGN §3). */
        bool admin_exempt;
        /* create/destroy by a non-admin: the key check said no, only a rule can extend it (and a
         * policy's refusal is then AccessDenied, as without a policy). */
        bool extends_key_check;
} PolicyCall;

/* (Re)load m->policy_path. An invalid file is refused (PolicyInvalid) and the old policy stays. */
int bus_policy_load(Manager *m, sd_bus_error *error);

/*
 * bus_policy_submit() - decide call by policy, then queue *job (allow), hold it for approval
 * (confirm), or refuse (deny)
 *
 * Return: 1 with *job taken (queued or held); < 0 with error set and *job untouched.
 */
int bus_policy_submit(Manager *m, sd_bus_message *msg, Job **job, const PolicyCall *call, sd_bus_error *error);

int method_list_approvals(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_approve(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_reload_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* The client disconnected: withdraw its held requests (nobody is left to answer). */
void bus_approvals_client_gone(Manager *m, Client *c);
/* Shutting down: answer every held request with Busy. */
void bus_approvals_cancel_all(Manager *m);

/* ---- the audit log (bus-audit.c) ---- */

/* Open <state>/audit, start its sync thread, record the start. */
int bus_audit_open(Manager *m, int state_fd);
/* At exit: answer what is parked, sync, close. */
void bus_audit_close(Manager *m);
/* Stopping: write the stop record and queue the final checkpoint. Return: true while that work is
 * outstanding (the daemon must not exit yet). */
bool bus_audit_stop(Manager *m);
/* Append a decision (copied to the journal; checkpoints as due). Return: 0 or -errno (logged). */
int bus_audit(Manager *m, const AuditEntry *e, uint64_t *ret_seq);
/* Append or count (aggregation) a refusal. */
void bus_audit_record_refusal(Manager *m, const AuditEntry *e);
/* Handlers return through this: a refusal (r < 0) is audited with the error as its reason, unless
 * bus_policy_submit() already recorded it. Returns r. */
int bus_audit_refused(Manager *m, sd_bus_message *msg, const char *action, const char *key, const uint8_t *kid,
                      int r, sd_bus_error *error);
/* A job came back from the worker: answer it now, or once its audit record is durable. */
void bus_job_finished(Manager *m, Job *j);
void bus_audit_job_done(Manager *m, Job *j);
int method_get_audit_head(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* ---- approved peers (bus-peers.c) ---- */

/* Load <state>/peers into m->peers (missing: none approved; damaged: logged, and agentidd stops). */
int bus_peers_open(Manager *m, int state_fd);
int method_add_peer(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_remove_peer(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/*
 * bus_peers_verify_parent() - a parent token whose kid is no key of this host: an approved peer's?
 *
 * Finds the peer by kid (peers approved with one) or by the token's claimed iss, verifies the token
 * with the peer's key, and requires iss = the peer's URI and, if one was approved, kid = its kid.
 * Return: 0 and the verified token; < 0 with error set (InvalidArgs) or -ENOMEM.
 */
int bus_peers_verify_parent(Manager *m, const uint8_t kid[PEER_KID_SIZE], const uint8_t *token, size_t size,
                            TokenVerified **ret, sd_bus_error *error);

/* ---- offboarding (bus-offboard.c) ---- */

/* Load <state>/revocations (an unreadable list stops agentidd), open <state>/receipts, set up the
 * hooks of m->hooks_dir. state_fd stays the caller's. */
int bus_offboard_open(Manager *m, int state_fd, const char *state_dir);
/* With the keys loaded: finish interrupted rotations and destroys, sign the list, arm the expiry timer. */
int bus_offboard_start(Manager *m);
/* True while hooks run or wait (the daemon does not exit yet). */
bool bus_offboard_busy(Manager *m);
void bus_offboard_close(Manager *m);
/*
 * offboard_revoke() - add a key to the revocation list (once per kid), save it, audit, re-sign
 * Return: 0; -errno if the entry could not be added, or was added but could not be saved (it is
 *         served from memory and saved with the next change; logged and audited).
 */
int offboard_revoke(Manager *m, RevocationType type, Key *k, const uint8_t kid[KEY_KID_SIZE],
                    const uint8_t spki_sha256[32], uint64_t time, const char *reason);
/* The task_end entry of a task of k: its task key's kid and SPKI hash, its credential's cti and exp
 * (the entry leaves the list an hour after exp). */
int offboard_revoke_task(Manager *m, Key *k, const uint8_t kid[KEY_KID_SIZE], const uint8_t spki_sha256[32],
                         const uint8_t cti[16], uint64_t exp, uint64_t time, const char *reason);
/* Can the list take the entry a Rotate of k will add? 0 or -E2BIG (full), -EINVAL. */
int offboard_check_room(Manager *m, Key *k, const char *reason);
/* A Destroy finished (receipt kept, hooks queued) or failed (agentidd retries it). */
void bus_offboard_destroyed(Manager *m, Key *k, Job *j);
void bus_offboard_destroy_failed(Manager *m, Key *k);
/* A Rotate finished: revoke the old key, keep the statement, queue the hooks. */
int bus_offboard_rotated(Manager *m, Key *k, const uint8_t old_kid[KEY_KID_SIZE], const uint8_t old_spki[32],
                         Job *j);
/* A key was added or changed: its NotAfter may be the next deadline. */
void bus_offboard_key_changed(Manager *m);
/* JOB_HOST_SIGN with ->revocations finished. */
void bus_offboard_job_done(Manager *m, Job *j);
int method_get_revocations(sd_bus_message *msg, void *userdata, sd_bus_error *error);

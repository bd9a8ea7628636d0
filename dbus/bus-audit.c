/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log on the daemon's side (governance/audit.h has the format and the writer): which
 * decisions are recorded, copying records to the journal, holding each reply until its record is
 * durable, aggregated refusals, checkpoints signed by the host key, and GetAuditHead.
 *
 * Durability without serialising behind the TPM: a decision's record is written when the request is
 * accepted, the audit log's sync thread fdatasync()s it while the TPM works, and the finished job is
 * parked until both are done. Many requests share one fdatasync (group commit).
 */

#include <stdio.h>
#include <sys/eventfd.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto-util.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "config.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"


/* ---- the journal copy ------------------------------------------------------------------------ */

static void journal_copy(Manager *m, uint64_t seq, const AuditEntry *e) {
        if (!m->journal)
                return;
        char kid[2 * KEY_KID_SIZE + 1] = "";
        if (e->kid)
                hex_encode_to(e->kid, KEY_KID_SIZE, kid);
        /* Structured fields so that journalctl AGENTID_KEY=... finds every decision about a key. */
        (void) sd_journal_send("MESSAGE=audit %llu: %s %s%s%s%s%s", (unsigned long long) seq, e->action, e->decision,
                               e->key ? " key " : "", e->key ?: "", e->rule ? " rule " : "", e->rule ?: "",
                               "PRIORITY=%d", LOG_INFO,
                               "SYSLOG_IDENTIFIER=agentidd",
                               "AGENTID_SEQ=%llu", (unsigned long long) seq,
                               "AGENTID_ACTION=%s", e->action,
                               "AGENTID_DECISION=%s", e->decision,
                               "AGENTID_KEY=%s", e->key ?: "",
                               "AGENTID_KID=%s", kid,
                               "AGENTID_UID=%lld", e->caller ? (long long) e->caller->uid : -1LL,
                               "AGENTID_PID=%lld", e->caller ? (long long) e->caller->pid : -1LL,
                               "AGENTID_TASK_ID=%s", e->task_id ?: "",
                               "AGENTID_PARENT_TASK_ID=%s", e->parent_task_id ?: "",
                               "AGENTID_AUDIENCE=%s", e->audience ?: "",
                               "AGENTID_RULE=%s", e->rule ?: "",
                               "AGENTID_REASON=%s", e->reason ?: "",
                               "AGENTID_COUNT=%llu", (unsigned long long) e->count,
                               NULL);
}

/* ---- checkpoints and heads ------------------------------------------------------------------- */

/* A host-key statement over the audit head (DESIGN §5 "Audit head"): a checkpoint when call is NULL,
 * else the answer to GetAuditHead with the caller's nonce. */
static int submit_head(Manager *m, sd_bus_message *call, Client *client, uid_t uid, const uint8_t *nonce,
                       size_t nonce_size, sd_bus_error *error) {
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t head[AUDIT_HEAD_SIZE];
        size_t payload_size = 0;
        uint64_t seq;
        int r;

        audit_log_head(m->audit, &seq, head);
        r = audit_head_payload(seq, head, (uint64_t) time(NULL), nonce, nonce_size, &payload, &payload_size);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Encoding the audit head failed: %s", strerror(-r));
        j = job_new(JOB_HOST_SIGN, call, client, uid, NULL);
        if (!j)
                return -ENOMEM;
        j->checkpoint = !call;
        r = job_prepare_cose(j, m->host_kid, NULL, payload, payload_size);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Encoding the audit head failed: %s", strerror(-r));
        /* A head may only be handed out once the records it covers are on disk. */
        j->audit_seq = seq;
        r = manager_submit(m, j, error);
        if (r < 0)
                return r;
        TAKE_PTR(j);
        return 1;
}

static void maybe_checkpoint(Manager *m) {
        uint64_t seq;

        audit_log_head(m->audit, &seq, NULL);
        if (m->checkpoint_pending || m->audit_checkpoint_every == 0 ||
            audit_log_since_checkpoint(m->audit) < m->audit_checkpoint_every || seq < m->checkpoint_retry_seq)
                return;
        int r = submit_head(m, NULL, NULL, 0, NULL, 0, NULL);
        if (r < 0)
                log_warning_errno(r, "Queueing an audit checkpoint failed; trying again later: %m");
        else
                m->checkpoint_pending = true;
}

void bus_audit_job_done(Manager *m, Job *j) {
        _cleanup_free_ uint8_t *cose = NULL;
        size_t size = 0;
        int r;

        if (j->checkpoint) {
                m->checkpoint_pending = false;
                /* If this one fails, the next try waits for a tenth of the interval more records,
                 * rather than taking the admin lane again at once. */
                uint64_t seq;
                audit_log_head(m->audit, &seq, NULL);
                m->checkpoint_retry_seq = seq + MAX(m->audit_checkpoint_every / 10, 1U);
        }
        if (j->result < 0) {
                log_error_errno(j->result, "Signing the audit head failed: %s", j->error);
                if (j->call)
                        (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        r = cose_sign1_finish(j->cose, j->signature, &cose, &size);
        if (r < 0) {
                log_error_errno(r, "Encoding the audit head failed: %m");
                if (j->call)
                        (void) bus_reply_errno(j->call, r, "Encoding the audit head failed");
                return;
        }
        if (j->checkpoint) {
                uint64_t seq;
                r = audit_log_append_checkpoint(m->audit, cose, size, &seq);
                if (r < 0)
                        log_error_errno(r, "Writing an audit checkpoint failed: %m");
                else
                        log_debug("Audit checkpoint %llu written.", (unsigned long long) seq);
                return;
        }
        r = bus_reply_bytes(j->call, cose, size);
        if (r < 0)
                log_warning_errno(r, "Sending the audit head failed, ignoring: %m");
}

int method_get_audit_head(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const void *nonce;
        size_t nonce_size;
        Client *client;
        uid_t uid;
        int r;

        r = sd_bus_message_read_array(msg, 'y', &nonce, &nonce_size);
        if (r < 0)
                return r;
        if (nonce_size < EVIDENCE_NONCE_MIN || nonce_size > EVIDENCE_NONCE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The nonce must be %u..%u bytes, got %zu",
                                         EVIDENCE_NONCE_MIN, EVIDENCE_NONCE_MAX, nonce_size);
        if (caller_get_creds(m->creds_cache, msg, &uid, NULL) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_uid_is_admin(m, uid))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Only administrators may read the audit head");
        if (m->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        r = manager_client_for_message(m, msg, &client, error);
        if (r < 0)
                return r;
        return submit_head(m, msg, client, uid, nonce, nonce_size, error);
}

/* ---- recording ------------------------------------------------------------------------------- */

int bus_audit(Manager *m, const AuditEntry *e, uint64_t *ret_seq) {
        uint64_t seq = 0;
        int r;

        if (!m->audit) {
                /* Only before the log is open at start-up, when no request can arrive yet. */
                if (ret_seq)
                        *ret_seq = 0;
                return 0;
        }

        r = audit_log_append(m->audit, e, &seq);
        if (r < 0)
                return log_error_errno(r, "Writing the audit record (%s %s) failed: %m", e->action, e->decision);
        journal_copy(m, seq, e);
        maybe_checkpoint(m);
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

static int on_flush_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
        int r = audit_log_flush_refusals(m->audit, now, false);
        if (r < 0)
                log_error_errno(r, "Writing aggregated refusals failed: %m");
        uint64_t next = audit_log_next_flush(m->audit);
        /* A window that could not be written stays open: try again a window later, not at once. */
        if (next > 0 && next <= now)
                next = now + AUDIT_AGGREGATE_WINDOW_USEC;
        if (next > 0) {
                (void) sd_event_source_set_time(s, next);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        return 0;
}

void bus_audit_record_refusal(Manager *m, const AuditEntry *e) {
        uint64_t seq = 0;
        int r;

        if (!m->audit)
                return;
        r = audit_log_refusal(m->audit, e, clock_now_usec(CLOCK_MONOTONIC), &seq);
        if (r < 0) {
                log_error_errno(r, "Writing the audit record of a refusal failed: %m");
                return;
        }
        if (seq > 0) {
                journal_copy(m, seq, e);
                maybe_checkpoint(m);
        }
        uint64_t next = audit_log_next_flush(m->audit);
        if (next == 0)
                return;
        if (!m->audit_flush_timer)
                r = sd_event_add_time(m->event, &m->audit_flush_timer, CLOCK_MONOTONIC, next, 0, on_flush_timer, m);
        else {
                uint64_t current = 0;
                int enabled = SD_EVENT_OFF;
                (void) sd_event_source_get_time(m->audit_flush_timer, &current);
                (void) sd_event_source_get_enabled(m->audit_flush_timer, &enabled);
                r = 0;
                if (enabled == SD_EVENT_OFF || next < current)
                        r = sd_event_source_set_time(m->audit_flush_timer, next);
                if (r >= 0)
                        r = sd_event_source_set_enabled(m->audit_flush_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                log_warning_errno(r, "Arming the refusal flush timer failed: %m");
}

int bus_audit_refused(Manager *m, sd_bus_message *msg, const char *action, const char *key, const uint8_t *kid,
                      int r, sd_bus_error *error) {
        char reason[512];
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;

        if (r >= 0)
                return r;
        if (m->refusal_recorded) {
                m->refusal_recorded = false;
                return r;
        }
        /* The error's name, not its message: messages quote what the caller sent, and a refusal's
         * reason is part of its aggregation identity — varying it would defeat the aggregation. */
        if (sd_bus_error_is_set(error))
                (void) snprintf(reason, sizeof(reason), "%s", error->name);
        else
                (void) snprintf(reason, sizeof(reason), "%s", bus_error_name_from_errno(r));
        (void) caller_get_creds(m->creds_cache, msg, &uid, &pid);
        AuditCaller caller = { .uid = (uint32_t) uid, .pid = (uint32_t) pid };
        AuditEntry e = {
                .action = action,
                .decision = "deny",
                .caller = &caller,
                .key = key,
                .kid = kid,
                .reason = reason,
        };
        bus_audit_record_refusal(m, &e);
        return r;
}

/* ---- holding replies until their record is durable --------------------------------------------- */

static void job_finish(Manager *m, Job *j) {
        switch (j->type) {
        case JOB_CREATE:
        case JOB_PLATFORM:
        case JOB_ACTIVATE:
                bus_manager_job_done(m, j);
                break;
        case JOB_START_TASK:
                bus_task_start_done(m, j);
                break;
        case JOB_HOST_SIGN:
                if (j->revocations)
                        bus_offboard_job_done(m, j);
                else
                        bus_audit_job_done(m, j);
                break;
        default:
                bus_key_job_done(m, j);
                break;
        }
        job_free(j);
        m->n_pending--;
}

static void release_parked(Manager *m, bool closing);

void bus_job_finished(Manager *m, Job *j) {
        if (!m->audit || (!m->parked_head && j->audit_seq <= audit_log_durable_seq(m->audit))) {
                job_finish(m, j);
                return;
        }
        /* Behind whatever is parked already, so answers keep the order their jobs finished in (a
         * signature made before a Destroy is answered before the Destroy). */
        j->next = NULL;
        if (m->parked_tail)
                m->parked_tail->next = j;
        else
                m->parked_head = j;
        m->parked_tail = j;
        release_parked(m, false);
}

/* Release parked jobs whose records are durable; if the log cannot be synced (or is being closed),
 * fail the others closed: a signature whose decision is not on disk is not handed out. */
static void release_parked(Manager *m, bool closing) {
        uint64_t durable = audit_log_durable_seq(m->audit);
        int error = audit_log_sync_error(m->audit);

        while (m->parked_head) {
                Job *j = m->parked_head;
                if (j->audit_seq > durable && error == 0 && !closing)
                        break; /* in order: later ones wait behind it */
                m->parked_head = j->next;
                if (!m->parked_head)
                        m->parked_tail = NULL;
                j->next = NULL;
                if (j->audit_seq > durable) {
                        /* The record will never be durable: fail closed, the result is not handed out. */
                        if (j->call)
                                (void) bus_reply_errno(j->call, error < 0 ? error : -EIO,
                                                       "The audit record of this request could not be written");
                        /* The done handler still updates state (a Destroy did happen) but must not
                         * answer a second time. */
                        j->call = sd_bus_message_unref(j->call);
                }
                job_finish(m, j);
        }
}

static int on_audit_durable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        uint64_t v;

        (void) read(fd, &v, sizeof(v));
        if (audit_log_sync_error(m->audit) < 0)
                log_error_errno(audit_log_sync_error(m->audit), "The audit log cannot be synced: %m");
        release_parked(m, false);
        manager_maybe_exit(m);
        return 0;
}

/* ---- opening and closing --------------------------------------------------------------------- */

int bus_audit_open(Manager *m, int state_fd) {
        char err[AUDIT_ERROR_MAX] = "";
        uint64_t recovered = 0;
        int r, fd;

        r = audit_log_open(state_fd, 0, &m->audit, &recovered, err);
        if (r < 0)
                return log_error_errno(r, "Opening the audit log failed: %s", err);
        r = audit_log_start_sync(m->audit, &fd);
        if (r < 0)
                return log_error_errno(r, "Starting the audit sync thread failed: %m");
        r = sd_event_add_io(m->event, &m->audit_source, fd, EPOLLIN, on_audit_durable, m);
        if (r < 0)
                return log_error_errno(r, "Watching the audit log failed: %m");
        m->journal = access("/run/systemd/journal/socket", F_OK) >= 0;

        if (recovered > 0) {
                char reason[96];
                (void) snprintf(reason, sizeof(reason), "%llu bytes of a torn last record cut off",
                                (unsigned long long) recovered);
                log_warning("Audit log: %s (agentidd stopped in the middle of an append).", reason);
                AuditEntry e = { .action = "recovered", .decision = "done", .reason = reason };
                r = bus_audit(m, &e, NULL);
                if (r < 0)
                        return r;
        }
        AuditEntry e = {
                .action = "start",
                .decision = "done",
                .reason = "agentidd " AGENTID_VERSION,
                .policy_sha256 = m->policy ? policy_digest(m->policy) : NULL,
        };
        return bus_audit(m, &e, NULL);
}

bool bus_audit_stop(Manager *m) {
        if (!m->audit)
                return false;
        if (!m->audit_stopping) {
                m->audit_stopping = true;
                (void) audit_log_flush_refusals(m->audit, 0, true);
                AuditEntry e = { .action = "stop", .decision = "done" };
                (void) bus_audit(m, &e, NULL);
        }
        if (m->checkpoint_pending || m->parked_head)
                return true;
        /* The last word of this run, signed: a verifier can tell a clean stop from a cut log. Tried
         * once; a TPM that cannot sign it must not keep the daemon from exiting. */
        if (!m->audit_final_checkpoint && audit_log_since_checkpoint(m->audit) > 0) {
                m->audit_final_checkpoint = true;
                if (submit_head(m, NULL, NULL, 0, NULL, 0, NULL) >= 0) {
                        m->checkpoint_pending = true;
                        return true;
                }
        }
        return false;
}

void bus_audit_close(Manager *m) {
        if (!m->audit)
                return;
        /* Sync first, then answer only what is on disk; the rest is failed, never sent unrecorded. */
        int r = audit_log_sync(m->audit);
        if (r < 0)
                log_error_errno(r, "Syncing the audit log at exit failed: %m");
        release_parked(m, true);
        m->audit_source = sd_event_source_disable_unref(m->audit_source);
        m->audit_flush_timer = sd_event_source_disable_unref(m->audit_flush_timer);
        m->audit = audit_log_close(m->audit);
}

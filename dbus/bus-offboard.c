/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Offboarding on the daemon's side: the revocation list, receipts kept in the state directory, the
 * hooks that run after a key is retired, and the timer that retires keys at their NotAfter.
 *
 * Order of events, chosen so that a crash at any point fails closed:
 *   Destroy   the revocation entry is written (and the key refuses) before the job is queued; a key
 *             found active at start while its kid is listed is destroyed again by agentidd itself.
 *   Rotate    the new record, naming the old key, replaces the old one in one rename; the entry is
 *             written when the job is back, and at start for a record whose predecessor is unlisted.
 *   Expiry    a key refuses use from NotAfter on (key_status()); the timer then destroys it like an
 *             administrator would, with reason "expired" — also for keys that expired while agentidd
 *             was not running.
 *
 * The list is kept unsigned in <state>/revocations (written atomically) and signed by the host key
 * once per change; GetRevocations hands out the last signed form and waits while a newer one is made.
 */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"

#define REVOCATIONS_FILE "revocations"
#define RECEIPTS_DIR "receipts"
/* A Destroy of agentidd's own that failed (TPM away, disk full) is tried again after this long. */
#define OFFBOARD_RETRY_USEC (30ULL * USEC_PER_SEC)
/* Bytes of a task_end entry's reason (the audit record keeps the whole reason). */
#define TASK_END_REASON_MAX 64U
/* A task_end entry stays this long after its credential's exp, for verifiers whose clocks lag. */
#define TASK_END_KEEP_AFTER_EXP 3600U

static void schedule_expiry(Manager *m);

/* ---- the revocation list --------------------------------------------------------------------- */

static int revocations_save(Manager *m) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = revocation_list_encode(&m->revocations, &buf, &size);
        if (r < 0)
                return r;
        return write_file_atomic_at(m->state_fd, REVOCATIONS_FILE, buf, size, 0600, 0);
}

static int revocations_load(Manager *m) {
        _cleanup_free_ uint8_t *buf = NULL;
        const char *reason = NULL;
        size_t size = 0;
        int r;

        r = read_file_at(m->state_fd, REVOCATIONS_FILE, REVOCATION_LIST_MAX, &buf, &size);
        if (r == -ENOENT) {
                /* The first start: an empty list, saved at once so that a missing file later stands out. */
                size_t i = 0, n_destroyed = 0;
                void *v;
                while (hashmap_iterate(m->keys, &i, &v))
                        n_destroyed += ((Key *) v)->record->state == KEY_STATE_DESTROYED;
                if (n_destroyed > 0)
                        log_warning("There is no revocation list in the state directory, but %zu key(s) were "
                                    "destroyed: it was deleted, or the keys predate revocation lists. They are "
                                    "not listed (a tombstone keeps no public key); starting a new list.",
                                    n_destroyed);
                snprintf(m->revocations.host, sizeof(m->revocations.host), "%s", m->host_id);
                r = revocations_save(m);
                if (r < 0)
                        return log_error_errno(r, "Creating the revocation list failed: %m");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Reading %s failed: %m", REVOCATIONS_FILE);
        r = revocation_list_decode(buf, size, &m->revocations, &reason);
        if (r < 0)
                /* Never start over with an empty list: that would quietly un-revoke keys. */
                return log_error_errno(r, "The revocation list in the state directory is unreadable (%s); "
                                       "restore it from a backup or an exported copy",
                                       reason ?: strerror(-r));
        if (!streq(m->revocations.host, m->host_id))
                log_warning("The revocation list was made for host %s, this TPM is host %s (owner hierarchy "
                            "cleared?); keeping its entries and its sequence.", m->revocations.host, m->host_id);
        snprintf(m->revocations.host, sizeof(m->revocations.host), "%s", m->host_id);
        return 0;
}

/* Sign the current list unless that is under way; the job's end signs again if it changed meanwhile. */
static void revocations_sign(Manager *m) {
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_(cose_sign1_freep) CoseSign1 *cose = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (m->revocations_signing || m->stopping)
                return;
        m->revocations.issued = (uint64_t) time(NULL);
        j = job_new(JOB_HOST_SIGN, NULL, NULL, geteuid(), NULL);
        if (!j)
                return (void) log_error_errno(ENOMEM, "Signing the revocation list failed: %m");
        j->revocations = true;
        j->revocation_seq = m->revocations.seq;
        r = revocation_list_prepare(&m->revocations, m->host_kid, KEY_KID_SIZE, &j->cose);
        if (r >= 0) {
                memcpy(j->digest, cose_sign1_digest(j->cose), KEYSTORE_DIGEST_SIZE);
                r = manager_submit(m, j, &error);
        }
        if (r < 0) {
                log_warning("Signing revocation list %" PRIu64 " failed: %s", m->revocations.seq,
                            error.message ?: strerror(-r));
                return;
        }
        TAKE_PTR(j);
        m->revocations_signing = true;
}

/* Answer the waiting GetRevocations calls: on error all of them, else those the signed list is at
 * least as new for as the list was when they called. */
static void answer_waiters(Manager *m, int error, const char *message) {
        size_t kept = 0;

        for (size_t i = 0; i < m->n_revocation_waiters; i++) {
                RevocationWaiter *w = &m->revocation_waiters[i];
                if (error >= 0 && w->seq > m->revocations_signed_seq) {
                        m->revocation_waiters[kept++] = *w;
                        continue;
                }
                if (error < 0)
                        (void) bus_reply_errno(w->call, error, message);
                else
                        (void) bus_reply_bytes(w->call, m->revocations_signed, m->revocations_signed_size);
                sd_bus_message_unref(w->call);
        }
        m->n_revocation_waiters = kept;
}

void bus_offboard_job_done(Manager *m, Job *j) {
        _cleanup_free_ uint8_t *list = NULL;
        size_t size = 0;
        int r;

        m->revocations_signing = false;
        r = j->result;
        if (r >= 0)
                r = cose_sign1_finish(j->cose, j->signature, &list, &size);
        if (r < 0) {
                log_error_errno(r, "Signing revocation list %" PRIu64 " failed: %s", j->revocation_seq,
                                j->result < 0 ? j->error : strerror(-r));
                answer_waiters(m, r, "The revocation list could not be signed; retry later");
                return;
        }
        if (j->revocation_seq >= m->revocations_signed_seq || !m->revocations_signed) {
                free(m->revocations_signed);
                m->revocations_signed = TAKE_PTR(list);
                m->revocations_signed_size = size;
                m->revocations_signed_seq = j->revocation_seq;
        }
        answer_waiters(m, 0, NULL);
        if (m->revocations_signed_seq != m->revocations.seq)
                revocations_sign(m); /* it changed while this one was signed */
}

static RevocationEntry entry_for(RevocationType type, Key *k, const uint8_t kid[KEY_KID_SIZE],
                                 const uint8_t spki_sha256[32], uint64_t time, const char *reason) {
        RevocationEntry e = {
                .type = type,
                .name = k->name,
                .time = time,
                .reason = (char *) reason,
        };
        memcpy(e.kid, kid, KEY_KID_SIZE);
        memcpy(e.spki_sha256, spki_sha256, sizeof(e.spki_sha256));
        return e;
}

int offboard_check_room(Manager *m, Key *k, const char *reason) {
        static const uint8_t any_spki[32] = {};  /* only the entry's size matters here */
        RevocationEntry e = entry_for(REVOCATION_ROTATE, k, k->record->kid, any_spki, UINT64_MAX, reason);
        return revocation_list_check_room(&m->revocations, &e);
}

/* Drop task_end entries whose credentials expired over an hour ago: they refuse nothing any more, and
 * tasks would otherwise fill the list. Done before every addition, so the list is bounded by the
 * tasks of the last day rather than of all time. Return: whether any went (the list must be saved). */
static bool revocations_prune(Manager *m) {
        uint64_t now = (uint64_t) time(NULL);
        char reason[96];
        size_t n = revocation_list_prune(&m->revocations,
                                         now > TASK_END_KEEP_AFTER_EXP ? now - TASK_END_KEEP_AFTER_EXP : 0);
        if (n == 0)
                return false;
        log_info("Dropped %zu task_end entries of expired task credentials from the revocation list "
                 "(now seq %" PRIu64 ").", n, m->revocations.seq);
        snprintf(reason, sizeof(reason), "%zu task_end entries of expired task credentials dropped", n);
        AuditCaller caller = { .uid = (uint32_t) geteuid() };
        AuditEntry a = {
                .action = "revoke",
                .decision = "pruned",
                .caller = &caller,
                .reason = reason,
                .revocation_seq = m->revocations.seq,
        };
        (void) bus_audit(m, &a, NULL);
        return true;
}

/* A new version of the list exists: tell watchers, sign it. */
static void revocations_publish(Manager *m) {
        (void) sd_bus_emit_properties_changed(m->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE,
                                              "RevocationSeq", NULL);
        revocations_sign(m);
}

/* The list lost entries but gains none: save it. Unsaved, it is not published: a restart would
 * bring back the old list under the same seq and the next change would reuse that seq. */
static void revocations_save_pruned(Manager *m) {
        int r = revocations_save(m);
        if (r < 0)
                return (void) log_error_errno(r, "Saving the pruned revocation list failed; saved with the next "
                                              "change: %m");
        revocations_publish(m);
}

/* Add e (once per kid), save, audit, re-sign. pruned: the list lost entries just before; it is then
 * saved and re-signed even if e is not added. */
static int revocation_add(Manager *m, Key *k, const RevocationEntry *e, bool pruned) {
        int r;

        /* Listed already (a Destroy retried after a failure): one entry per key. */
        r = revocation_list_find(&m->revocations, e->kid, NULL) ? -EEXIST :
            revocation_list_append(&m->revocations, e);
        if (r < 0) {
                if (pruned)
                        revocations_save_pruned(m);
                if (r == -EEXIST)
                        return 0;
                return log_error_errno(r, "Adding key '%s' to the revocation list failed: %m", k->name);
        }
        /* A list that cannot be saved is still handed out (in memory the entry is there), and the next
         * change saves it; the audit log and the journal say so, and the caller learns it (a task keeps
         * its journal). Should agentidd stop before that, a destroyed key's tombstone or a task's
         * journal brings the entry back at start. */
        int saved = revocations_save(m);
        if (saved < 0)
                log_error_errno(saved, "Saving the revocation list failed; entry %" PRIu64 " for key '%s' lives in "
                                "memory until the next successful save: %m", m->revocations.seq, k->name);

        AuditCaller caller = { .uid = (uint32_t) geteuid() };
        AuditEntry a = {
                .action = "revoke",
                .decision = saved < 0 ? "failed" : "done",
                .caller = &caller,
                .key = k->name,
                .kid = e->kid,
                .cti = e->has_cti ? e->cti : NULL,
                .reason = e->reason,
                .rule = revocation_type_to_string(e->type),
                .revocation_seq = m->revocations.seq,
        };
        (void) bus_audit(m, &a, NULL);
        revocations_publish(m);
        return saved < 0 ? saved : 0;
}

int offboard_revoke(Manager *m, RevocationType type, Key *k, const uint8_t kid[KEY_KID_SIZE],
                    const uint8_t spki_sha256[32], uint64_t time, const char *reason) {
        RevocationEntry e = entry_for(type, k, kid, spki_sha256, time, reason);
        return revocation_add(m, k, &e, revocations_prune(m));
}

int offboard_revoke_task(Manager *m, Key *k, const uint8_t kid[KEY_KID_SIZE], const uint8_t spki_sha256[32],
                         const uint8_t cti[16], uint64_t exp, uint64_t time, const char *reason) {
        char short_reason[TASK_END_REASON_MAX + 1];
        size_t n = strnlen(reason, TASK_END_REASON_MAX);
        bool pruned = revocations_prune(m);

        /* Tasks come and go by the thousand; destroys and rotations must always find room. So task
         * entries take at most half of the list, and carry a short reason (the audit log has it all). */
        if (m->revocations.n_entries >= REVOCATION_ENTRIES_MAX / 2) {
                if (pruned)
                        revocations_save_pruned(m);
                return log_error_errno(E2BIG, "The revocation list has no room left for tasks (%zu entries); a task "
                                       "of key '%s' is not revoked", m->revocations.n_entries, k->name);
        }
        while (n > 0 && n < strlen(reason) && ((uint8_t) reason[n] & 0xc0) == 0x80)
                n--; /* never cut inside a UTF-8 sequence */
        memcpy(short_reason, reason, n);
        short_reason[n] = 0;
        RevocationEntry e = entry_for(REVOCATION_TASK_END, k, kid, spki_sha256, time, short_reason);
        e.has_cti = true;
        memcpy(e.cti, cti, sizeof(e.cti));
        e.exp = exp;
        return revocation_add(m, k, &e, pruned);
}

int method_get_revocations(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uid_t uid;

        /* Open to everyone, and a list can be large: the per-uid budget of GetPlatformEvidence
         * (administrators, who export it, are not limited). */
        if (caller_get_creds(m->creds_cache, msg, &uid, NULL) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_uid_is_admin(m, uid) && !manager_rate_allow(m, uid))
                return sd_bus_error_setf(error, AGENTID_ERROR_RATE_LIMITED,
                                         "Too many requests; at most %.0f per second", EVIDENCE_RATE_PER_SEC);
        if (m->revocations_signed && m->revocations_signed_seq == m->revocations.seq)
                return bus_reply_bytes(msg, m->revocations_signed, m->revocations_signed_size);
        /* A newer list is being signed (or the last attempt failed): wait for it. */
        if (m->n_revocation_waiters >= REVOCATION_WAITERS_MAX)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "Too many callers wait for the revocation list");
        m->revocation_waiters[m->n_revocation_waiters++] = (RevocationWaiter) {
                .call = sd_bus_message_ref(msg),
                .seq = m->revocations.seq,
        };
        revocations_sign(m);
        if (!m->revocations_signing) {
                /* Could not even be queued: answer now rather than leave the caller waiting. */
                answer_waiters(m, -EBUSY, "The revocation list cannot be signed right now; retry later");
        }
        return 1;
}

/* ---- receipts and hooks ---------------------------------------------------------------------- */

/* Keep a receipt or rotation statement as <name>-destroy.cbor (a name is destroyed once) or
 * <name>-rotate-<first 8 bytes of the new kid, hex>.cbor; hooks get its path. */
static int save_statement(Manager *m, const char *name, const char *what, const uint8_t *new_kid,
                          const uint8_t *data, size_t size, char **ret_path) {
        _cleanup_free_ char *file = NULL;
        char tag[2 * 8 + 2] = "";
        int r;

        if (m->receipts_fd < 0 || !data)
                return -ENOENT;
        if (new_kid) {
                tag[0] = '-';
                hex_encode_to(new_kid + 2, 8, tag + 1);
        }
        if (asprintf(&file, "%s-%s%s.cbor", name, what, tag) < 0)
                return -ENOMEM;
        r = write_file_atomic_at(m->receipts_fd, file, data, size, 0600, 0);
        if (r < 0)
                return log_warning_errno(r, "Keeping the %s of key '%s' failed: %m", what, name);
        if (asprintf(ret_path, "%s/" RECEIPTS_DIR "/%s", m->state_dir, file) < 0)
                return -ENOMEM;
        return 0;
}

static void run_hooks(Manager *m, const char *event, Key *k, const uint8_t kid[KEY_KID_SIZE], const char *reason,
                      const char *receipt_path) {
        char kid_hex[2 * KEY_KID_SIZE + 1], uri[KEY_URI_SIZE];
        int r;

        if (!m->hooks)
                return;
        hex_encode_to(kid, KEY_KID_SIZE, kid_hex);
        HookEvent e = {
                .event = event,
                .key = k->name,
                .uri = key_uri(k, uri),
                .kid_hex = kid_hex,
                .owner = k->record->owner,
                .reason = reason,
                .receipt_path = receipt_path ?: "",
        };
        r = hook_runner_queue(m->hooks, &e);
        if (r < 0) {
                log_error_errno(r, "Queueing the offboarding hooks of key '%s' failed: %m", k->name);
                AuditCaller caller = { .uid = (uint32_t) geteuid() };
                AuditEntry a = {
                        .action = "hook",
                        .decision = "failed",
                        .caller = &caller,
                        .key = k->name,
                        .kid = kid,
                        .hook = m->hooks_dir,
                        .reason = r == -EBUSY ? "too many offboardings wait for their hooks" : strerror(-r),
                };
                (void) bus_audit(m, &a, NULL);
        }
}

static const char *hook_outcome_decision(HookOutcome o) {
        switch (o) {
        case HOOK_EXITED:
                return "done";
        case HOOK_SKIPPED:
                return "skipped";
        case HOOK_CANCELLED:
                return "cancelled";
        default:
                return "failed";
        }
}

static void on_hook_result(const HookResult *res, void *userdata) {
        Manager *m = userdata;
        char detail[128];

        if (!res->path) {
                manager_maybe_exit(m); /* stopping waits for the hooks */
                return;
        }
        const char *reason = res->detail;
        bool failed = res->outcome != HOOK_EXITED || res->status != 0;
        switch (res->outcome) {
        case HOOK_EXITED:
                if (res->status != 0) {
                        snprintf(detail, sizeof(detail), "exited with status %d", res->status);
                        reason = detail;
                }
                break;
        case HOOK_KILLED:
                snprintf(detail, sizeof(detail), "killed by signal %d (%s)", res->status, strsignal(res->status));
                reason = detail;
                break;
        case HOOK_TIMED_OUT:
                reason = "timed out and was killed";
                break;
        default:
                break;
        }
        if (failed)
                log_warning("Offboarding hook %s for key '%s' %s: %s", res->path, res->event->key,
                            hook_outcome_decision(res->outcome), reason ?: "failed");
        else
                log_info("Offboarding hook %s for key '%s' succeeded.", res->path, res->event->key);

        AuditCaller caller = { .uid = (uint32_t) geteuid() };
        _cleanup_free_ uint8_t *kid = NULL;
        size_t kid_size = 0;
        bool has_kid = hex_decode(res->event->kid_hex, &kid, &kid_size) >= 0 && kid_size == KEY_KID_SIZE;
        AuditEntry a = {
                .action = "hook",
                .decision = res->outcome == HOOK_EXITED && res->status != 0 ? "failed" :
                            hook_outcome_decision(res->outcome),
                .caller = &caller,
                .key = res->event->key,
                .kid = has_kid ? kid : NULL,
                .rule = res->event->event,
                .hook = res->path,
                .reason = reason,
                .has_status = res->outcome == HOOK_EXITED,
                .status = (uint8_t) res->status,
                .output = res->output_size > 0 ? res->output : NULL,
                .output_size = res->output_size,
        };
        (void) bus_audit(m, &a, NULL);
}

/* ---- after a destroy or a rotation ----------------------------------------------------------- */

void bus_offboard_destroyed(Manager *m, Key *k, Job *j) {
        _cleanup_free_ char *path = NULL;

        if (j->result >= 0)
                (void) save_statement(m, k->name, "destroy", NULL, j->receipt, j->receipt_size, &path);
        run_hooks(m, j->hook_event ?: "destroy", k, k->record->kid, j->reason, path);
        schedule_expiry(m);
}

void bus_offboard_destroy_failed(Manager *m, Key *k) {
        /* It keeps refusing (its kid is listed); agentidd tries again on its own. */
        k->retry_after_usec = clock_now_usec(CLOCK_REALTIME) + OFFBOARD_RETRY_USEC;
        schedule_expiry(m);
}

int bus_offboard_rotated(Manager *m, Key *k, const uint8_t old_kid[KEY_KID_SIZE], const uint8_t old_spki[32],
                         Job *j) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = offboard_revoke(m, REVOCATION_ROTATE, k, old_kid, old_spki, j->now, j->reason);
        (void) save_statement(m, k->name, "rotate", k->record->kid, j->receipt, j->receipt_size, &path);
        run_hooks(m, "rotate", k, old_kid, j->reason, path);
        schedule_expiry(m);
        return r;
}

/* ---- agentidd's own destroys: expiry, and revocations found at start -------------------------- */

static int auto_destroy(Manager *m, Key *k, const char *reason, const char *event) {
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        j = job_new(JOB_DESTROY, NULL, NULL, geteuid(), k);
        if (!j)
                return -ENOMEM;
        j->reason = strdup(reason);
        if (!j->reason)
                return -ENOMEM;
        /* One clock for the deadline and the stamp: never "destroyed" before NotAfter. */
        j->now = clock_now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
        if (k->record->not_after > j->now)
                j->now = k->record->not_after;
        j->hook_event = event;

        AuditCaller caller = { .uid = (uint32_t) geteuid() };
        AuditEntry a = {
                .action = "destroy",
                .decision = "allow",
                .caller = &caller,
                .key = k->name,
                .kid = k->record->kid,
                .reason = reason,
                .rule = event,
                .has_by_uid = true,
                .by_uid = (uint32_t) geteuid(),
        };
        /* Like an administrator's Destroy: a log that cannot record it does not keep the key alive. */
        if (bus_audit(m, &a, &j->audit_seq) < 0)
                log_error("Destroying key '%s' (%s) although the audit log cannot record it.", k->name, event);

        r = manager_submit(m, j, &error);
        if (r < 0)
                return log_warning_errno(r, "Queueing the destroy of key '%s' (%s) failed, retrying later: %s",
                                         k->name, event, error.message ?: strerror(-r));
        TAKE_PTR(j);
        log_info("Offboarding key '%s': %s.", k->name, reason);
        return 0;
}

/* What agentidd should do about k now: 1 = destroy it, 0 = nothing; *ret_due = when to look again
 * (µs, CLOCK_REALTIME; UINT64_MAX = never). */
static int key_offboard_due(Key *k, uint64_t now_usec, uint64_t *ret_due) {
        *ret_due = UINT64_MAX;
        if (k->record->state != KEY_STATE_ACTIVE || k->destroy_pending || k->deferred_destroy || k->unusable)
                return 0;
        /* The last try failed (a full queue, the TPM away): pause before the next. */
        if (now_usec < k->retry_after_usec) {
                *ret_due = k->retry_after_usec;
                return 0;
        }
        /* Listed (a Destroy that did not finish): destroy it again. */
        if (atomic_load(&k->refusing))
                return 1;
        if (k->record->not_after == 0)
                return 0;
        uint64_t deadline = k->record->not_after * USEC_PER_SEC;
        if (now_usec >= deadline)
                return 1;
        *ret_due = deadline;
        return 0;
}

static int on_expiry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        size_t i = 0;
        void *v;

        while (!m->stopping && hashmap_iterate(m->keys, &i, &v)) {
                Key *k = v;
                uint64_t due;

                if (key_offboard_due(k, now, &due) <= 0)
                        continue;
                bool listed = atomic_load(&k->refusing);
                const RevocationEntry *e = listed ? revocation_list_find(&m->revocations, k->record->kid, NULL) : NULL;
                if (auto_destroy(m, k, e ? e->reason : listed ? "destroy did not finish" : "expired",
                                 listed ? "destroy" : "expire") < 0)
                        k->retry_after_usec = now + OFFBOARD_RETRY_USEC;
        }
        schedule_expiry(m);
        return 0;
}

static void schedule_expiry(Manager *m) {
        uint64_t now = clock_now_usec(CLOCK_REALTIME), next = UINT64_MAX;
        size_t i = 0;
        void *v;
        int r;

        if (m->stopping)
                return;
        while (hashmap_iterate(m->keys, &i, &v)) {
                uint64_t due;
                if (key_offboard_due(v, now, &due) > 0)
                        due = now;
                next = MIN(next, due);
        }
        if (next == UINT64_MAX) {
                if (m->expiry_timer)
                        (void) sd_event_source_set_enabled(m->expiry_timer, SD_EVENT_OFF);
                return;
        }
        if (!m->expiry_timer) {
                /* CLOCK_REALTIME: NotAfter is a wall-clock date; a clock change moves the deadline too. */
                r = sd_event_add_time(m->event, &m->expiry_timer, CLOCK_REALTIME, next, USEC_PER_SEC / 10,
                                      on_expiry_timer, m);
                if (r < 0)
                        log_error_errno(r, "Setting up the expiry timer failed; expired keys refuse use but "
                                        "are not offboarded: %m");
                return;
        }
        (void) sd_event_source_set_time(m->expiry_timer, next);
        (void) sd_event_source_set_enabled(m->expiry_timer, SD_EVENT_ONESHOT);
}

void bus_offboard_key_changed(Manager *m) {
        schedule_expiry(m);
}

/* ---- start and stop -------------------------------------------------------------------------- */

int bus_offboard_open(Manager *m, int state_fd, const char *state_dir) {
        int r;

        m->state_fd = state_fd;
        m->state_dir = strdup(state_dir);
        if (!m->state_dir)
                return log_error_errno(ENOMEM, "Out of memory");
        r = revocations_load(m);
        if (r < 0)
                return r;

        if (mkdirat(state_fd, RECEIPTS_DIR, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Creating %s/%s failed: %m", state_dir, RECEIPTS_DIR);
        m->receipts_fd = openat(state_fd, RECEIPTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (m->receipts_fd < 0)
                return log_error_errno(errno, "Opening %s/%s failed: %m", state_dir, RECEIPTS_DIR);
        /* A receipt cut off by a crash before its rename; the key's tombstone and entry are what count. */
        (void) remove_temp_files_at(m->receipts_fd);

        if (m->hooks_dir && *m->hooks_dir) {
                /* Under systemd the hooks leave agentidd's sandbox as transient units (docs/hooks.md). */
                const char *systemd_run = sd_booted() > 0 && access("/usr/bin/systemd-run", X_OK) >= 0 ?
                                          "/usr/bin/systemd-run" : NULL;
                HookRunnerOptions o = {
                        .dir = m->hooks_dir,
                        .timeout_usec = m->hook_timeout_usec,
                        .systemd_run = systemd_run,
                };
                r = hook_runner_new(m->event, &o, on_hook_result, m, &m->hooks);
                if (r < 0)
                        return log_error_errno(r, "Setting up the offboarding hooks failed: %m");
        }
        return 0;
}

static int kid_compare(const void *a, const void *b) {
        return memcmp(a, b, KEY_KID_SIZE);
}

/* Is kid in the sorted copy of the listed kids? */
static bool kid_listed(const uint8_t (*index)[KEY_KID_SIZE], size_t n, const uint8_t *kid) {
        return n > 0 && bsearch(kid, index, n, KEY_KID_SIZE, kid_compare) != NULL;
}

int bus_offboard_start(Manager *m) {
        _cleanup_free_ uint8_t (*index)[KEY_KID_SIZE] = NULL;
        size_t n = m->revocations.n_entries, i = 0;
        void *v;

        /* Finish what a crash may have left half done (see the top of this file). One sorted copy of
         * the listed kids (a copy: adding entries below moves the list): every key is looked up, and
         * there may be 100,000 of each. */
        index = n > 0 ? calloc(n, KEY_KID_SIZE) : NULL;
        if (n > 0 && !index)
                return log_error_errno(ENOMEM, "Out of memory");
        for (size_t e = 0; e < n; e++)
                memcpy(index[e], m->revocations.entries[e].kid, KEY_KID_SIZE);
        if (n > 0)
                qsort(index, n, KEY_KID_SIZE, kid_compare);

        while (hashmap_iterate(m->keys, &i, &v)) {
                Key *k = v;
                KeyRecord *rec = k->record;
                int r = 0;

                /* Errors are logged and audited; the rest of the keys are still looked at, and the
                 * daemon starts: refusing to start would keep every other key from working. */
                if (rec->replaces && !kid_listed(index, n, rec->replaces->kid)) {
                        log_notice("Key '%s' was rotated but its old key is not on the revocation list; adding it.",
                                   k->name);
                        r = offboard_revoke(m, REVOCATION_ROTATE, k, rec->replaces->kid, rec->replaces->spki_sha256,
                                            rec->created, rec->replaces->reason);
                }
                if (rec->state == KEY_STATE_DESTROYED && rec->has_spki && !kid_listed(index, n, rec->kid)) {
                        log_notice("Key '%s' was destroyed but is not on the revocation list (the list lost an "
                                   "entry); adding it.", k->name);
                        r = offboard_revoke(m, REVOCATION_DESTROY, k, rec->kid, rec->spki_sha256, rec->destroyed,
                                            "destroyed (entry restored from the tombstone)");
                }
                if (rec->state == KEY_STATE_ACTIVE && kid_listed(index, n, rec->kid)) {
                        log_notice("Key '%s' is on the revocation list but was not destroyed; destroying it.",
                                   k->name);
                        atomic_store(&k->refusing, true);
                }
                if (r < 0)
                        log_error_errno(r, "Key '%s' could not be put on the revocation list: %m", k->name);
        }
        /* The first signed list, so GetRevocations answers at once. */
        revocations_sign(m);
        schedule_expiry(m);
        return 0;
}

bool bus_offboard_busy(Manager *m) {
        return m->hooks && hook_runner_busy(m->hooks);
}

void bus_offboard_close(Manager *m) {
        answer_waiters(m, -ESHUTDOWN, "agentidd is shutting down");
        m->hooks = hook_runner_free(m->hooks);
        m->expiry_timer = sd_event_source_disable_unref(m->expiry_timer);
        revocation_list_done(&m->revocations);
        m->revocations_signed = mfree(m->revocations_signed);
        m->receipts_fd = safe_close(m->receipts_fd);
        m->state_dir = mfree(m->state_dir);
}

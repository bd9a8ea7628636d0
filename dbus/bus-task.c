/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tasks (Key.StartTask, org.agentid1.Task): just-in-time TPM credentials that end with the task.
 *
 * StartTask creates a task key in the TPM's NULL hierarchy (keystore/task-key.h: it cannot outlive the
 * boot, never touches the disk, and the TPM refuses it after its TPM-clock limit), has the AK certify
 * it, and has the agent key sign the task credential (attest/task-credential.h). The task is
 * journalled in <state>/tasks/ before the credential is handed out, so that whatever ends it — End,
 * its expiry, the key's destroy or rotation, agentidd stopping, or a crash and the next start — ends
 * with exactly one revocation entry (type task_end, with the credential's cti: every token the task
 * key issued chains to it and falls with it).
 *
 * A task's object lives at <key path>/task/<encoded task id>; its Sign, SignMessage and IssueToken are
 * the key's (bus-key.c) with the task key as the signer.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attest/task-credential.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"
#include "keystore/task-key.h"

#define TASKS_DIR "tasks"
#define TASK_JOURNAL_MAX 4096U

Task *task_ref(Task *t) {
        if (t)
                t->n_ref++;
        return t;
}

Task *task_unref(Task *t) {
        if (!t || --t->n_ref > 0)
                return NULL;
        sd_event_source_disable_unref(t->timer);
        key_unref(t->key);
        free(t->task_id);
        free(t->parent_task_id);
        free(t->scope);
        strv_free(t->audiences);
        free(t->path);
        free(t->public_der);
        free(t->credential);
        task_key_free(t->tpm);
        return mfree(t);
}

/* ---- the journal of running tasks --------------------------------------------------------------- */

static int journal_name(const Task *t, char name[static 2 * 16 + 1]) {
        hex_encode_to(t->cti, sizeof(t->cti), name);
        return 0;
}

/* {"key", "task_id", "kid", "spki_sha256", "cti", "exp"}: what the task_end entry needs. */
static int journal_write(Manager *m, const Task *t) {
        _cleanup_cbor_ cbor_item_t *map = cbor_util_new_map();
        _cleanup_free_ uint8_t *buf = NULL;
        char name[33];
        size_t size = 0;
        int k = 0;

        if (!map)
                return -ENOMEM;
        k |= cbor_util_map_put_text(map, "key", cbor_util_new_text(t->key->name));
        k |= cbor_util_map_put_text(map, "task_id", cbor_util_new_text(t->task_id));
        k |= cbor_util_map_put_text(map, "kid", cbor_util_new_bytes(t->kid, sizeof(t->kid)));
        k |= cbor_util_map_put_text(map, "spki_sha256", cbor_util_new_bytes(t->spki_sha256, sizeof(t->spki_sha256)));
        k |= cbor_util_map_put_text(map, "cti", cbor_util_new_bytes(t->cti, sizeof(t->cti)));
        k |= cbor_util_map_put_text(map, "exp", cbor_util_new_uint(t->not_after));
        if (k != 0)
                return -ENOMEM;
        k = cbor_util_encode(map, &buf, &size);
        if (k < 0)
                return k;
        journal_name(t, name);
        return write_file_atomic_at(m->tasks_fd, name, buf, size, 0600, WRITE_FILE_NOREPLACE);
}

static void journal_remove(Manager *m, const Task *t) {
        char name[33];

        journal_name(t, name);
        if (unlinkat(m->tasks_fd, name, 0) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Removing the journal of task '%s' failed; it is revoked again at the next "
                                  "start: %m", t->task_id);
        else
                (void) fsync_directory(m->tasks_fd);
}

/* ---- ending a task -------------------------------------------------------------------------------- */

static void task_audit(Manager *m, const Task *t, const char *action, const char *decision, const char *reason,
                       uid_t uid) {
        AuditCaller caller = { .uid = (uint32_t) uid };
        AuditEntry a = {
                .action = action,
                .decision = decision,
                .caller = &caller,
                .key = t->key->name,
                .kid = t->kid,
                .task_id = t->task_id,
                .parent_task_id = t->parent_task_id,
                .cti = t->cti,
                .exp = t->not_after,
                .reason = reason,
        };
        (void) bus_audit(m, &a, NULL);
}

void task_end(Task *t, const char *reason, uid_t by_uid) {
        Manager *m = t->manager;
        _cleanup_(task_unrefp) Task *ref = task_ref(t);
        int r;

        if (atomic_exchange(&t->ended, true))
                return;
        /* Revoked first: from here no token of the task is valid for a verifier holding the list. A
         * task ending at or after its exp needs no entry: verifiers refuse its credential by then
         * (docs/tasks.md). The precise clock: its expiry timer fires just after not_after, when
         * time(2) (glibc reads the coarse clock) may still give the second before, and the expired
         * task would be revoked needlessly. */
        uint64_t now = clock_now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
        r = now >= t->not_after ? 0 :
            offboard_revoke_task(m, t->key, t->kid, t->spki_sha256, t->cti, t->not_after, now, reason);
        if (r < 0)
                /* The journal stays: the next start revokes the task again, durably. */
                log_error_errno(r, "Task '%s' of key '%s' ended without a durable revocation entry: %m",
                                t->task_id, t->key->name);
        else
                journal_remove(m, t);
        t->timer = sd_event_source_disable_unref(t->timer);
        if (t->exported) {
                (void) sd_bus_emit_object_removed(m->bus, t->path);
                t->exported = false;
                t->key->n_tasks--;
                (void) hashmap_remove(m->tasks, t->path);
                task_unref(t); /* the table's reference */
        }
        (void) sd_bus_emit_signal(m->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE, "TaskEnded", "ssos",
                                  t->key->name, t->task_id, t->path, reason);
        task_audit(m, t, "end_task", "done", reason, by_uid);
        log_info("Task '%s' of key '%s' ended: %s.", t->task_id, t->key->name, reason);
}

void bus_tasks_end_for_key(Manager *m, Key *k, const char *reason) {
        size_t i = 0;
        void *v;

        /* task_end() removes from the table: restart the walk after each. */
        while (k->n_tasks > 0 && hashmap_iterate(m->tasks, &i, &v)) {
                Task *t = v;
                if (t->key != k)
                        continue;
                task_end(t, reason, geteuid());
                i = 0;
        }
}

static int on_task_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        task_end(userdata, "expired", geteuid());
        return 0;
}

/* ---- StartTask ------------------------------------------------------------------------------------- */

static int read_audiences(char **l, size_t *ret_n, sd_bus_error *error) {
        size_t n = 0;

        for (char **i = l; i && *i; i++, n++) {
                if (!string_is_printable_id(*i, AUDIENCE_MAX))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Each audience must be 1..%u printable ASCII characters", AUDIENCE_MAX);
                for (char **j = l; j < i; j++)
                        if (streq(*i, *j))
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Audience '%.64s' is listed twice", *i);
        }
        *ret_n = n;
        return 0;
}

static int method_start_task_impl(sd_bus_message *msg, Key *k, sd_bus_error *error) {
        Manager *m = k->manager;
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_(task_unrefp) Task *t = NULL;
        _cleanup_(strv_freep) char **scope = NULL;
        _cleanup_free_ char *parent_task_id = NULL;
        const char *task_id;
        uint64_t ttl = 0, now = (uint64_t) time(NULL);
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        Client *client;
        int r;

        if (m->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        if (!m->ak_public)
                return sd_bus_error_setf(error, AGENTID_ERROR_TPM_FAILURE,
                                         "Attestation is unavailable on this host: task keys cannot be certified");
        r = sd_bus_message_read(msg, "s", &task_id);
        if (r < 0)
                return r;
        if (!string_is_printable_id(task_id, CONTEXT_ID_MAX))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The task ID must be 1..%u printable ASCII characters", CONTEXT_ID_MAX);

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_ref = 1;
        t->manager = m;
        atomic_init(&t->ended, false);
        BusOption options[] = {
                { .name = "parent_task_id", .type = BUS_OPTION_STRING, .ret = &parent_task_id, .max = CONTEXT_ID_MAX, .printable = true },
                { .name = "audiences", .type = BUS_OPTION_STRV, .ret = &t->audiences, .max = TASK_CREDENTIAL_AUDIENCES_MAX },
                { .name = "scope", .type = BUS_OPTION_STRV, .ret = &scope, .max = TOKEN_SCOPES_MAX },
                { .name = "ttl", .type = BUS_OPTION_UINT64, .ret = &ttl },
        };
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        r = read_audiences(t->audiences, &t->n_audiences, error);
        if (r < 0)
                return r;
        for (char **i = scope; i && *i; i++)
                if (strchr(*i, ' ') || !token_scope_is_valid(*i))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Invalid scope token '%.*s' (printable ASCII; no space, quote or "
                                                 "backslash)", bus_quote_len(*i, 64), *i);
        r = scope_join(scope, &t->scope);
        if (r < 0)
                return r;
        if (t->scope && !token_scope_is_valid(t->scope))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'scope' must be 1..%u distinct scope tokens (printable ASCII, no "
                                         "space, quote or backslash)", TOKEN_SCOPES_MAX);
        if (!options[3].present)
                ttl = TASK_TTL_DEFAULT;
        if (ttl == 0 || ttl > TASK_KEY_TTL_MAX_MS / 1000)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option 'ttl' must be 1..%llu seconds",
                                         TASK_KEY_TTL_MAX_MS / 1000);

        r = key_check_usable(k, error);
        if (r < 0)
                return r;
        r = bus_key_authorize_use(m, msg, k, &uid, &pid, error);
        if (r < 0)
                return r;
        if (k->record->not_after && now + ttl > k->record->not_after)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The task would outlive key '%s'; ask for a ttl of at most %llu s", k->name,
                                         (unsigned long long) (k->record->not_after > now ? k->record->not_after - now : 0));

        t->task_id = strdup(task_id);
        if (!t->task_id)
                return -ENOMEM;
        t->parent_task_id = TAKE_PTR(parent_task_id);
        t->key = key_ref(k);
        _cleanup_free_ char *prefix = NULL;
        char key_object[KEY_PATH_SIZE];
        if (asprintf(&prefix, "%s/task", key_path(k, key_object)) < 0)
                return -ENOMEM;
        r = sd_bus_path_encode(prefix, task_id, &t->path);
        if (r < 0)
                return r;
        /* Task IDs travel between agents, so two keys may run the same one; one key may not. */
        if (hashmap_get(m->tasks, t->path))
                return sd_bus_error_setf(error, AGENTID_ERROR_TASK_EXISTS, "Key '%s' already runs task '%s'", k->name,
                                         task_id);
        if (k->n_tasks + k->n_tasks_starting >= TASKS_PER_KEY_MAX ||
            hashmap_size(m->tasks) + m->n_tasks_starting >= TASKS_MAX)
                return bus_error_setf_errno(error, -EBUSY, "Too many running tasks (%u per key, %u in all)",
                                            TASKS_PER_KEY_MAX, TASKS_MAX);
        t->created = now;
        t->not_after = now + ttl;
        r = random_bytes(t->cti, sizeof(t->cti));
        if (r < 0)
                return r;

        r = manager_client_for_message(m, msg, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_START_TASK, msg, client, uid, k);
        if (!j)
                return -ENOMEM;
        j->task = task_ref(t);
        /* Counted from here until the job is freed, whatever becomes of it (held, refused, run). */
        j->counted_start = true;
        m->n_tasks_starting++;
        k->n_tasks_starting++;
        /* A late approval must not start a task that would be over already. */
        j->token_exp = t->not_after;
        /* The TPM's clock runs only while it is powered; the wall-clock timer (and exp) end the task
         * no later, the TPM limit is the backstop. */
        j->task_ttl_ms = ttl * 1000;

        _cleanup_free_ const char **scopes = NULL;
        size_t n_scopes = 0;
        for (char **i = scope; i && *i; i++)
                n_scopes++;
        PolicyCall call = {
                .action = POLICY_ACTION_START_TASK,
                .key = k->name,
                .kid = k->record->kid,
                .uid = uid,
                .pid = pid,
                .task_id = t->task_id,
                .parent_task_id = t->parent_task_id,
                .audience = t->n_audiences > 0 ? t->audiences[0] : NULL,
                .audiences = (const char *const *) t->audiences,
                .n_audiences = t->n_audiences,
                .scopes = (const char *const *) scope,
                .n_scopes = n_scopes,
                .scope = t->scope,
                .ttl = ttl,
                .exp = t->not_after,
                .cti = t->cti,
        };
        return bus_policy_submit(m, msg, &j, &call, error);
}

int method_start_task(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Key *k = userdata;
        int r = method_start_task_impl(msg, k, error);
        return bus_audit_refused(k->manager, msg, "start_task", k->name, k->record->kid, r, error);
}

void bus_task_start_done(Manager *m, Job *j) {
        Task *t = j->task;
        Key *k = j->key;
        int r;

        if (j->result >= 0 && m->stopping) {
                j->result = -ESHUTDOWN;
                snprintf(j->error, sizeof(j->error), "agentidd is shutting down");
        }
        if (j->result < 0) {
                log_full_errno(j->result == -EKEYREVOKED ? LOG_INFO : LOG_ERR, j->result,
                               "Starting task '%s' of key '%s' failed: %s", t->task_id, k->name, j->error);
                if (j->call)
                        (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        /* The key may have been destroyed or rotated while the TPM worked: that task never runs. */
        if (key_status(k, (uint64_t) time(NULL)) != KEY_STATUS_ACTIVE || atomic_load(&k->generation) != j->key_generation) {
                if (j->call)
                        (void) bus_reply_errno(j->call, -EKEYREVOKED, "The key was destroyed or rotated meanwhile");
                return;
        }
        if (hashmap_get(m->tasks, t->path)) {
                if (j->call)
                        (void) sd_bus_reply_method_errorf(j->call, AGENTID_ERROR_TASK_EXISTS,
                                                          "Key '%s' already runs task '%s'", k->name, t->task_id);
                return;
        }

        /* Journalled before anyone learns of the credential: a crash from here on still revokes it. */
        r = journal_write(m, t);
        if (r < 0) {
                log_error_errno(r, "Journalling task '%s' of key '%s' failed: %m", t->task_id, k->name);
                if (j->call)
                        (void) bus_reply_errno(j->call, r, "The task cannot be recorded in the state directory");
                return;
        }
        r = hashmap_put(m->tasks, t->path, task_ref(t));
        if (r < 0) {
                task_unref(t);
                journal_remove(m, t);
                if (j->call)
                        (void) bus_reply_errno(j->call, r, "Out of memory");
                return;
        }
        t->exported = true;
        k->n_tasks++;
        r = sd_event_add_time(m->event, &t->timer, CLOCK_REALTIME, t->not_after * USEC_PER_SEC, USEC_PER_SEC / 10,
                              on_task_timer, t);
        if (r < 0)
                log_warning_errno(r, "Arming the expiry of task '%s' failed; its TPM limit still ends it: %m",
                                  t->task_id);
        (void) sd_bus_emit_object_added(m->bus, t->path);
        log_info("Task '%s' of key '%s' started (until %llu).", t->task_id, k->name, (unsigned long long) t->not_after);

        if (!j->call)
                return;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        r = sd_bus_message_new_method_return(j->call, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "o", t->path);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', t->credential, t->credential_size);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "Replying to StartTask failed, ignoring: %m");
}

/* ---- org.agentid1.Task ------------------------------------------------------------------------------ */

static int task_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                            sd_bus_error *error) {
        Manager *m = userdata;
        Task *t = hashmap_get(m->tasks, path);

        if (!t || !t->exported)
                return 0;
        *found = t;
        return 1;
}

static int task_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        size_t n = 0, i = 0;
        void *v;

        char **list = calloc(hashmap_size(m->tasks) + 1, sizeof(char *));
        if (!list)
                return -ENOMEM;
        while (hashmap_iterate(m->tasks, &i, &v)) {
                list[n] = strdup(((Task *) v)->path);
                if (!list[n]) {
                        strv_free(list);
                        return -ENOMEM;
                }
                n++;
        }
        *nodes = list;
        return 1;
}

static int task_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Task *t = userdata;

        if (streq(property, "TaskId"))
                return sd_bus_message_append(reply, "s", t->task_id);
        if (streq(property, "ParentTaskId"))
                return sd_bus_message_append(reply, "s", t->parent_task_id ?: "");
        if (streq(property, "Key")) {
                char key_object[KEY_PATH_SIZE];
                return sd_bus_message_append(reply, "o", key_path(t->key, key_object));
        }
        if (streq(property, "Audiences"))
                return sd_bus_message_append_strv(reply, t->audiences);
        if (streq(property, "Scope"))
                return sd_bus_message_append(reply, "s", t->scope ?: "");
        if (streq(property, "NotAfter"))
                return sd_bus_message_append(reply, "t", t->not_after * USEC_PER_SEC);
        if (streq(property, "State"))
                return sd_bus_message_append(reply, "s", atomic_load(&t->ended) ? "ended" : "running");
        if (streq(property, "PublicKey"))
                return sd_bus_message_append_array(reply, 'y', t->public_der, t->public_der_size);
        if (streq(property, "TpmName"))
                return sd_bus_message_append_array(reply, 'y', t->kid, sizeof(t->kid));
        if (streq(property, "Credential"))
                return sd_bus_message_append_array(reply, 'y', t->credential, t->credential_size);
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property '%s'", property);
}

static int method_task_sign(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Task *t = userdata;
        return bus_key_sign(msg, t->key, t, false, error);
}

static int method_task_sign_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Task *t = userdata;
        return bus_key_sign(msg, t->key, t, true, error);
}

static int method_task_issue_token(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Task *t = userdata;
        return bus_key_issue_token(msg, t->key, t, error);
}

static int method_task_end_impl(sd_bus_message *msg, Task *t, sd_bus_error *error) {
        Manager *m = t->manager;
        const char *reason;
        uid_t uid;
        int r;

        r = sd_bus_message_read(msg, "s", &reason);
        if (r < 0)
                return r;
        if (!key_text_is_valid(reason, REASON_MAX, false))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The reason must be 1..%u bytes of text without control characters",
                                         REASON_MAX);
        r = caller_get_creds(m->creds_cache, msg, &uid, NULL);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        /* Administrators end any task (offboarding); otherwise whoever may use the key (its uid, with
         * its pinned executable). */
        if (!manager_uid_is_admin(m, uid)) {
                pid_t pid;
                r = bus_key_authorize_use(m, msg, t->key, &uid, &pid, error);
                if (r < 0)
                        return r;
        }
        task_end(t, reason, uid);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_task_end(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Task *t = userdata;
        _cleanup_(task_unrefp) Task *ref = task_ref(t); /* ending drops the table's reference */
        int r = method_task_end_impl(msg, t, error);
        return bus_audit_refused(t->manager, msg, "end_task", t->key->name, t->kid, r, error);
}

static const sd_bus_vtable task_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("TaskId", "s", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ParentTaskId", "s", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Key", "o", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Audiences", "as", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Scope", "s", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("NotAfter", "t", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", task_property_get, 0, 0),
        SD_BUS_PROPERTY("PublicKey", "ay", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TpmName", "ay", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Credential", "ay", task_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Sign",
                                SD_BUS_ARGS("ay", digest, "a{sv}", context),
                                SD_BUS_RESULT("ay", signature),
                                method_task_sign,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SignMessage",
                                SD_BUS_ARGS("ay", payload, "a{sv}", context),
                                SD_BUS_RESULT("ay", cose_sign1),
                                method_task_sign_message,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("IssueToken",
                                SD_BUS_ARGS("a{sv}", request),
                                SD_BUS_RESULT("ay", token),
                                method_task_issue_token,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("End",
                                SD_BUS_ARGS("s", reason),
                                SD_BUS_NO_RESULT,
                                method_task_end,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- start and stop ------------------------------------------------------------------------------- */

/* A journalled task from before this start: its key is gone from the TPM (contexts die with the
 * process), so it is over; revoke it and forget it. */
static int revoke_journalled(Manager *m, const char *name) {
        static const CborLimits limits = { .max_size = TASK_JOURNAL_MAX, .max_depth = 1, .max_items = 16,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        _cleanup_cbor_ cbor_item_t *map = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *key = NULL;
        const uint8_t *kid, *spki, *cti;
        size_t kid_size, spki_size, cti_size;
        size_t size = 0;
        int r;

        r = read_file_at(m->tasks_fd, name, TASK_JOURNAL_MAX, &buf, &size);
        if (r >= 0)
                r = cbor_util_decode(buf, size, &limits, &map, NULL);
        if (r < 0 || !cbor_isa_map(map) ||
            cbor_util_get_text_dup(cbor_util_map_get_text(map, "key"), &key) < 0 ||
            cbor_util_get_bytes(cbor_util_map_get_text(map, "kid"), &kid, &kid_size) < 0 || kid_size != KEY_KID_SIZE ||
            cbor_util_get_bytes(cbor_util_map_get_text(map, "spki_sha256"), &spki, &spki_size) < 0 || spki_size != 32 ||
            cbor_util_get_bytes(cbor_util_map_get_text(map, "cti"), &cti, &cti_size) < 0 || cti_size != 16)
                /* Kept for an administrator: a journal that cannot be read cannot be revoked either. */
                return log_error_errno(r < 0 ? r : EBADMSG, "Task journal %s/%s is unreadable; its task is not "
                                       "revoked: %m", TASKS_DIR, name);

        Key *k = manager_find_key(m, key);
        if (!k)
                return log_error_errno(ENOENT, "Task journal %s/%s names key '%s', which does not exist; not revoked",
                                       TASKS_DIR, name, key);
        uint64_t exp = 0;
        if (cbor_util_get_uint(cbor_util_map_get_text(map, "exp"), &exp) < 0)
                return log_error_errno(EBADMSG, "Task journal %s/%s has no exp; its task is not revoked", TASKS_DIR,
                                       name);
        /* Past its exp: nothing of it verifies any more; no entry needed. */
        r = exp > (uint64_t) time(NULL) ?
            offboard_revoke_task(m, k, kid, spki, cti, exp, (uint64_t) time(NULL), "agentidd restarted") : 0;
        if (r < 0)
                return r;
        if (unlinkat(m->tasks_fd, name, 0) < 0)
                return log_warning_errno(errno, "Removing task journal %s failed: %m", name);
        log_notice("Task %s of key '%s' did not survive the restart; revoked.", name, key);
        return 0;
}

int bus_tasks_open(Manager *m, int state_fd) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        int r;

        m->tasks = hashmap_new();
        if (!m->tasks)
                return log_error_errno(ENOMEM, "Out of memory");
        if (mkdirat(state_fd, TASKS_DIR, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Creating %s failed: %m", TASKS_DIR);
        m->tasks_fd = openat(state_fd, TASKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (m->tasks_fd < 0)
                return log_error_errno(errno, "Opening %s failed: %m", TASKS_DIR);

        /* A journal entry still under its temporary name: StartTask was never answered, nothing to revoke. */
        r = remove_temp_files_at(m->tasks_fd);
        if (r > 0)
                log_debug("Removed %d unfinished task journal file(s).", r);

        fd = fcntl(m->tasks_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0 || !(d = fdopendir(fd)))
                return log_error_errno(errno, "Reading %s failed: %m", TASKS_DIR);
        TAKE_FD(fd);
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                r = revoke_journalled(m, de->d_name);
                if (r == -ENOMEM) {
                        closedir(d);
                        return r;
                }
        }
        closedir(d);
        (void) fsync_directory(m->tasks_fd);
        return 0;
}

int bus_tasks_register(Manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, NULL, AGENTID_KEY_PREFIX, AGENTID_TASK_INTERFACE, task_vtable,
                                       task_object_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, NULL, AGENTID_KEY_PREFIX, task_node_enumerator, m);
}

void bus_tasks_end_all(Manager *m, const char *reason) {
        size_t i = 0;
        void *v;

        /* task_end() removes from the table: restart the walk after each. */
        while (m->tasks && hashmap_iterate(m->tasks, &i, &v)) {
                task_end(v, reason, geteuid());
                i = 0;
        }
}

void bus_tasks_close(Manager *m) {
        bus_tasks_end_all(m, "agentidd stopped");
        m->tasks = hashmap_free(m->tasks);
        m->tasks_fd = safe_close(m->tasks_fd);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The TPM worker thread and its two-lane queue (see worker.h).
 *
 * Thread rules: the worker touches a Job's inputs and results, the Keystore, a Key's record and its
 * atomic flags, a Task's `ended` flag and its TaskKey, the fields of a Task a JOB_START_TASK fills in
 * before the Task is published, and a Client's `gone` flag — nothing else. Message and Key reference counts are
 * only changed by the event loop (job_new/job_free), so they need no locking.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>

#include "attest/receipt.h"
#include "attest/revocation.h"
#include "attest/task-credential.h"
#include "keystore/task-key.h"
#include "common/crypto-util.h"
#include "common/log.h"
#include "dbus/worker.h"

typedef struct UidQueue {
        uid_t uid;
        Job *head, *tail;
        unsigned n;
} UidQueue;

struct Worker {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t wake;

        Keystore *ks;

        Job *admin_head, *admin_tail;
        UidQueue *uids;          /* agent lane, one FIFO per uid with queued work */
        size_t n_uids, rr;      /* rr: next uid to serve */
        unsigned depth;          /* agent lane */
        unsigned admin_depth;

        Job *done_head, *done_tail;
        int event_fd;
        bool stopping;
};

Job *job_new(JobType type, sd_bus_message *call, Client *client, uid_t uid, Key *key) {
        Job *j = calloc(1, sizeof(*j));
        if (!j)
                return NULL;
        j->type = type;
        j->call = sd_bus_message_ref(call);
        j->client = client;
        if (client)
                client->n_jobs++;
        j->uid = uid;
        j->key = key ? key_ref(key) : NULL;
        j->key_generation = key ? atomic_load(&key->generation) : 0;
        return j;
}

int job_prepare_cose(Job *j, const uint8_t kid[KEY_KID_SIZE], const CoseClaims *claims, const uint8_t *payload,
                     size_t payload_size) {
        int r = cose_sign1_prepare(kid, KEY_KID_SIZE, claims, payload, payload_size, &j->cose);
        if (r < 0)
                return r;
        memcpy(j->digest, cose_sign1_digest(j->cose), KEYSTORE_DIGEST_SIZE);
        return 0;
}

Job *job_free(Job *j) {
        if (!j)
                return NULL;
        sd_bus_message_unref(j->call);
        if (j->client)
                manager_client_release(j->client->manager, j->client);
        key_unref(j->key);
        key_unref(j->issuer);
        if (j->counted_start) {
                j->task->manager->n_tasks_starting--;
                j->key->n_tasks_starting--;
        }
        task_unref(j->task);
        free(j->name);
        free(j->owner);
        free(j->description);
        free(j->reason);
        cose_sign1_free(j->cose);
        key_record_free(j->created);
        key_record_free(j->tombstone);
        free(j->receipt);
        keystore_evidence_done(&j->evidence);
        free(j->credential_blob);
        free(j->encrypted_secret);
        if (j->activated)
                erase(j->activated, j->activated_size);
        free(j->activated);
        erase(j->signature, sizeof(j->signature));
        return mfree(j);
}

static void job_fail(Job *j, int r, const char *msg) {
        j->result = r;
        (void) snprintf(j->error, sizeof(j->error), "%s", msg);
}

static void run_create(Keystore *ks, Job *j) {
        KeySpec spec = {
                .name = j->name,
                .owner = j->owner,
                .description = j->description,
                .uid = j->key_uid,
                .not_after = j->not_after,
                .exe_sha256 = j->has_exe_digest ? j->exe_sha256 : NULL,
                .named_tasks_only = j->named_tasks_only,
        };
        int r = keystore_create_key(ks, &spec, (uint64_t) time(NULL), &j->created);
        if (r < 0)
                job_fail(j, r, keystore_last_error(ks));
}

/* The task's key signs, as long as the task runs (End sets `ended` before anything else). */
static void run_task_sign(Keystore *ks, Job *j) {
        if (atomic_load(&j->task->ended)) {
                job_fail(j, -EKEYREVOKED, "The task ended");
                return;
        }
        int r = keystore_task_key_sign(ks, j->task->tpm, j->digest, j->signature);
        if (r < 0) {
                j->task_key_gone = r == -EKEYREVOKED || r == -EKEYEXPIRED;
                job_fail(j, r, keystore_last_error(ks));
        }
}

/* Whether the key may still sign for j (it is checked again here: the job may have waited). */
static void run_sign_checks(Job *j) {
        /* Destroy takes effect before its own job runs: queued signing for the key is refused here. */
        if (atomic_load(&j->key->refusing))
                job_fail(j, -EKEYREVOKED, "The key was destroyed");
        else if (atomic_load(&j->key->rotating))
                job_fail(j, -EBUSY, "The key is being rotated; retry in a moment");
        /* Made for the key before a rotation (its kid, its cnf): the new key must not sign it. The
         * event loop swaps the record before it counts the generation and clears `rotating`, so a
         * job that gets past here reads the record of its own generation. */
        else if (atomic_load(&j->key->generation) != j->key_generation)
                job_fail(j, -EBUSY, "The key was rotated while the request waited; ask again");
        /* A delegated token falls with its parent's key, also while it waited in the queue. */
        else if (j->issuer && atomic_load(&j->issuer->refusing))
                job_fail(j, -EKEYREVOKED, "The parent token's key was destroyed");
        /* ...and with its peer: any RemovePeer since the parent was checked (rare) sends the caller
         * back, to be checked against the registry as it is now. */
        else if (j->peer_parent && atomic_load(&j->key->manager->peers_removed) != j->peers_removed)
                job_fail(j, -EKEYREVOKED, "An approved peer was removed while the request waited; ask again");
}

static void run_sign(Keystore *ks, Job *j) {
        run_sign_checks(j);
        if (j->result < 0)
                return;
        if (j->task) {
                run_task_sign(ks, j);
                return;
        }
        int r = keystore_sign(ks, j->key->record, j->digest, j->signature);
        if (r < 0)
                job_fail(j, r, keystore_last_error(ks));
}

/* The receipt of DESIGN §5: a COSE_Sign1 by the host key over what was destroyed, when and why. */
static int build_receipt(Keystore *ks, Job *j) {
        const KeyRecord *host = keystore_host_key(ks);
        const Key *k = j->key;
        _cleanup_(cose_sign1_freep) CoseSign1 *cose = NULL;
        static const uint8_t no_spki[KEY_SPKI_DIGEST_SIZE] = {}; /* a key never usable: nothing to name */
        uint8_t sig[KEYSTORE_SIGNATURE_SIZE];
        char uri[KEY_URI_SIZE];
        int r;

        DestroyReceipt receipt = {
                .name = k->record->name,
                .uri = key_uri(k, uri),
                .owner = k->record->owner,
                .reason = j->reason,
                .kid = k->record->kid,
                .spki_sha256 = j->tombstone->has_spki ? j->tombstone->spki_sha256 : no_spki,
                .time = j->now,
                .by_uid = (uint32_t) j->uid,
                .has_audit_seq = j->audit_seq > 0,
                .audit_seq = j->audit_seq,
        };
        r = receipt_destroy_prepare(&receipt, host->kid, KEY_KID_SIZE, &cose);
        if (r < 0)
                return r;
        r = keystore_sign(ks, host, cose_sign1_digest(cose), sig);
        if (r < 0)
                return r;
        return cose_sign1_finish(cose, sig, &j->receipt, &j->receipt_size);
}

static void run_destroy(Keystore *ks, Job *j) {
        /* Destroy a copy: the event loop keeps reading the key's record until it swaps this one in. */
        int r = key_record_copy(j->key->record, &j->tombstone);
        if (r < 0) {
                job_fail(j, r, "Out of memory");
                return;
        }
        r = keystore_destroy_key(ks, j->tombstone, j->now);
        if (r < 0) {
                j->tombstone = key_record_free(j->tombstone);
                job_fail(j, r, keystore_last_error(ks));
                return;
        }
        r = build_receipt(ks, j);
        if (r < 0) {
                /* The key is gone for good; only the receipt could not be made. */
                char msg[KEYSTORE_ERROR_MAX];
                (void) snprintf(msg, sizeof(msg), "The key was destroyed, but signing the receipt failed: %s",
                                keystore_last_error(ks));
                job_fail(j, r, msg);
        }
}

/*
 * Key.Rotate: a new TPM key, the rotation statement signed by the old key and the host key (so both
 * vouch for the successor), then the record swap. The old key signs before its record is replaced;
 * any failure before the swap leaves everything as it was.
 */
static void run_rotate(Keystore *ks, Job *j) {
        const KeyRecord *old = j->key->record, *host = keystore_host_key(ks);
        _cleanup_(cose_sign_freep) CoseSign *cose = NULL;
        uint8_t old_spki[32], new_spki[32], sigs[2][KEYSTORE_SIGNATURE_SIZE];
        char uri[KEY_URI_SIZE];
        int r;

        r = key_spki_sha256(j->key, old_spki);
        if (r < 0) {
                job_fail(j, r, "Reading the old public key failed");
                return;
        }
        r = keystore_rotate_begin(ks, old, old_spki, j->reason, j->now, &j->created);
        if (r < 0) {
                job_fail(j, r, keystore_last_error(ks));
                return;
        }

        r = keystore_key_spki_sha256(j->created, new_spki);
        if (r < 0) {
                job_fail(j, r, "Reading the new public key failed");
                goto fail;
        }
        RotationStatement s = {
                .name = old->name,
                .uri = key_uri(j->key, uri),
                .old_kid = old->kid,
                .new_kid = j->created->kid,
                .new_spki_sha256 = new_spki,
                .reason = j->reason,
                .time = j->now,
        };
        r = rotation_statement_prepare(&s, host->kid, KEY_KID_SIZE, &cose);
        if (r < 0) {
                job_fail(j, r, "Encoding the rotation statement failed");
                goto fail;
        }
        r = keystore_sign(ks, old, cose_sign_digest(cose, 0), sigs[0]);
        if (r >= 0)
                r = keystore_sign(ks, host, cose_sign_digest(cose, 1), sigs[1]);
        if (r < 0) {
                job_fail(j, r, keystore_last_error(ks));
                goto fail;
        }
        r = cose_sign_finish(cose, (const uint8_t (*)[COSE_ES256_SIG_SIZE]) sigs, &j->receipt, &j->receipt_size);
        if (r < 0) {
                job_fail(j, r, "Encoding the rotation statement failed");
                goto fail;
        }
        /* A Destroy accepted meanwhile wins: the old key is revoked already, a successor must not
         * appear (the Destroy runs next, on the old record). */
        if (atomic_load(&j->key->refusing)) {
                job_fail(j, -EKEYREVOKED, "The key is being destroyed");
                goto fail;
        }
        r = keystore_rotate_commit(ks, old, j->created);
        if (r < 0) {
                job_fail(j, r, keystore_last_error(ks));
                goto fail;
        }
        return;

fail:
        /* The new key was never written: its blob dies with the record. */
        j->created = key_record_free(j->created);
        j->receipt = mfree(j->receipt);
}

/*
 * Key.StartTask: the task key (NULL hierarchy, certified by the AK over SHA-256(cti)), then the
 * credential, signed by the agent key. The Task is not on the bus yet: this thread fills it in.
 */
static void run_start_task(Keystore *ks, Job *j) {
        Task *t = j->task;
        _cleanup_(task_key_certificate_done) TaskKeyCertificate cert = {};
        _cleanup_(cose_sign1_freep) CoseSign1 *cose = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t certify_data[32], x[32], y[32], sig[KEYSTORE_SIGNATURE_SIZE];
        char uri[KEY_URI_SIZE];
        size_t payload_size = 0;
        int r;

        /* The agent key must be usable for it, exactly as for a signature. */
        run_sign_checks(j);
        if (j->result < 0)
                return;
        r = sha256(t->cti, sizeof(t->cti), certify_data);
        if (r >= 0)
                r = keystore_task_key_create(ks, j->task_ttl_ms, certify_data, &t->tpm, &cert);
        if (r < 0) {
                job_fail(j, r, keystore_last_error(ks));
                return;
        }
        memcpy(t->kid, task_key_name(t->tpm), sizeof(t->kid));
        r = task_key_public_der(t->tpm, &t->public_der, &t->public_der_size);
        if (r >= 0)
                r = sha256(t->public_der, t->public_der_size, t->spki_sha256);
        if (r >= 0)
                r = p256_spki_to_xy(t->public_der, t->public_der_size, x, y);
        if (r < 0) {
                job_fail(j, r, "Reading the task key failed");
                return;
        }

        TaskCredentialClaims c = {
                .iss = key_uri(j->key, uri),
                .exp = t->not_after,
                .iat = t->created,
                .scope = t->scope,
                .task_id = t->task_id,
                .parent_task_id = t->parent_task_id,
                .audiences = (const char *const *) t->audiences,
                .n_audiences = t->n_audiences,
                .task_pub = cert.pub,
                .task_pub_size = cert.pub_size,
                .certify = cert.certify,
                .certify_size = cert.certify_size,
                .certify_sig = cert.certify_sig,
                .certify_sig_size = cert.certify_sig_size,
        };
        task_key_limits(t->tpm, &c.clock_limit, NULL, NULL);
        memcpy(c.cti, t->cti, sizeof(c.cti));
        memcpy(c.x, x, sizeof(x));
        memcpy(c.y, y, sizeof(y));
        r = task_credential_encode(&c, &payload, &payload_size);
        if (r >= 0)
                r = cose_sign1_prepare(j->key->record->kid, KEY_KID_SIZE, NULL, payload, payload_size, &cose);
        if (r < 0) {
                job_fail(j, r, "Encoding the task credential failed");
                return;
        }
        r = keystore_sign(ks, j->key->record, cose_sign1_digest(cose), sig);
        if (r < 0) {
                job_fail(j, r, keystore_last_error(ks));
                return;
        }
        r = cose_sign1_finish(cose, sig, &t->credential, &t->credential_size);
        if (r < 0)
                job_fail(j, r, "Encoding the task credential failed");
}

/* Agent evidence: the EAT signed by the key (proof of possession), then certify and quote. */
static void run_attest(Keystore *ks, Job *j) {
        run_sign(ks, j);
        if (j->result < 0)
                return;
        int r = keystore_attest(ks, j->key->record, j->certify_data, j->quote_data, &j->evidence);
        if (r < 0)
                job_fail(j, r, keystore_last_error(ks));
}

static void run_platform(Keystore *ks, Job *j) {
        int r = keystore_attest(ks, keystore_host_key(ks), j->certify_data, j->quote_data, &j->evidence);
        if (r < 0)
                job_fail(j, r, keystore_last_error(ks));
}

static void run_activate(Keystore *ks, Job *j) {
        int r = keystore_activate_credential(ks, j->credential_blob, j->credential_blob_size, j->encrypted_secret,
                                             j->encrypted_secret_size, &j->activated, &j->activated_size);
        if (r < 0)
                job_fail(j, r, keystore_last_error(ks));
}

static bool job_is_admin(const Job *j) {
        if (j->agent_lane)
                return false;
        return j->type == JOB_CREATE || j->type == JOB_DESTROY || j->type == JOB_ACTIVATE ||
               j->type == JOB_HOST_SIGN || j->type == JOB_ROTATE;
}

/* Audit checkpoints and heads: statements by the host key, like receipts. */
static void run_host_sign(Keystore *ks, Job *j) {
        int r = keystore_sign(ks, keystore_host_key(ks), j->digest, j->signature);
        if (r < 0)
                job_fail(j, r, keystore_last_error(ks));
}

static void run_job(Keystore *ks, Job *j) {
        /* Nobody is waiting for an agent-lane answer any more: spend no TPM time on it. */
        if (!job_is_admin(j) && j->client && atomic_load(&j->client->gone)) {
                job_fail(j, -ECANCELED, "The caller disconnected");
                return;
        }
        switch (j->type) {
        case JOB_CREATE:
                run_create(ks, j);
                break;
        case JOB_DESTROY:
                run_destroy(ks, j);
                break;
        case JOB_SIGN:
                run_sign(ks, j);
                break;
        case JOB_ATTEST:
                run_attest(ks, j);
                break;
        case JOB_PLATFORM:
                run_platform(ks, j);
                break;
        case JOB_ACTIVATE:
                run_activate(ks, j);
                break;
        case JOB_HOST_SIGN:
                run_host_sign(ks, j);
                break;
        case JOB_ROTATE:
                run_rotate(ks, j);
                break;
        case JOB_START_TASK:
                run_start_task(ks, j);
                break;
        }
}

/* Next job: the admin lane first, then the agent lane's uids in turn. Called with the lock held. */
static Job *dequeue_locked(Worker *w) {
        Job *j = w->admin_head;

        if (j) {
                w->admin_head = j->next;
                if (!w->admin_head)
                        w->admin_tail = NULL;
                w->admin_depth--;
        } else if (w->n_uids > 0) {
                if (w->rr >= w->n_uids)
                        w->rr = 0;
                UidQueue *q = &w->uids[w->rr];
                j = q->head;
                q->head = j->next;
                q->n--;
                if (!q->head) {
                        /* Drop the empty queue; the next uid slides into this index. */
                        w->uids[w->rr] = w->uids[--w->n_uids];
                } else
                        w->rr++;
                w->depth--;
        } else
                return NULL;

        j->next = NULL;
        return j;
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                Job *j = dequeue_locked(w);
                if (!j) {
                        if (w->stopping)
                                break;
                        pthread_cond_wait(&w->wake, &w->lock);
                        continue;
                }
                pthread_mutex_unlock(&w->lock);

                run_job(w->ks, j);

                pthread_mutex_lock(&w->lock);
                if (w->done_tail)
                        w->done_tail->next = j;
                else
                        w->done_head = j;
                w->done_tail = j;
                uint64_t one = 1;
                if (write(w->event_fd, &one, sizeof(one)) < 0)
                        log_debug("Waking the event loop failed: %m");
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int worker_start(Keystore *ks, Worker **ret, int *ret_event_fd) {
        Worker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->event_fd < 0) {
                r = -errno;
                worker_stop(w);
                return r;
        }
        w->ks = ks;
        r = -pthread_create(&w->thread, NULL, worker_main, w);
        if (r < 0) {
                w->ks = NULL; /* still the caller's */
                worker_stop(w);
                return r;
        }
        w->thread_started = true;
        *ret = w;
        *ret_event_fd = w->event_fd;
        return 0;
}

/* Whether j fits now (w->lock held): -EBUSY if agentidd stops, or j's lane or its uid's share of
 * the queue is full. *ret_q: the uid's queue, if it has one yet. */
static int room_locked(Worker *w, const Job *j, UidQueue **ret_q) {
        *ret_q = NULL;
        if (w->stopping)
                return -EBUSY;
        if (job_is_admin(j))
                return w->admin_depth < WORKER_ADMIN_QUEUE_MAX ? 0 : -EBUSY;
        if (w->depth >= WORKER_QUEUE_MAX)
                return -EBUSY;
        for (size_t i = 0; i < w->n_uids; i++)
                if (w->uids[i].uid == j->uid) {
                        *ret_q = &w->uids[i];
                        /* One uid may hold at most a share of the queue, so others always find room. */
                        return w->uids[i].n < WORKER_QUEUE_PER_UID_MAX ? 0 : -EBUSY;
                }
        return 0;
}

bool worker_has_room(Worker *w, const Job *j) {
        UidQueue *q;

        pthread_mutex_lock(&w->lock);
        int r = room_locked(w, j, &q);
        pthread_mutex_unlock(&w->lock);
        return r >= 0;
}

int worker_submit(Worker *w, Job *j) {
        UidQueue *q;
        int r;

        j->next = NULL;
        pthread_mutex_lock(&w->lock);
        r = room_locked(w, j, &q);
        if (r < 0)
                goto unlock;

        if (job_is_admin(j)) {
                w->admin_depth++;
                if (w->admin_tail)
                        w->admin_tail->next = j;
                else
                        w->admin_head = j;
                w->admin_tail = j;
        } else {
                if (!q) {
                        UidQueue *n = reallocarray(w->uids, w->n_uids + 1, sizeof(UidQueue));
                        if (!n) {
                                r = -ENOMEM;
                                goto unlock;
                        }
                        w->uids = n;
                        q = &w->uids[w->n_uids++];
                        *q = (UidQueue) { .uid = j->uid };
                }
                if (q->head)
                        q->tail->next = j;
                else
                        q->head = j;
                q->tail = j;
                q->n++;
                w->depth++;
        }
        pthread_cond_signal(&w->wake);
unlock:
        pthread_mutex_unlock(&w->lock);
        return r;
}

Job *worker_take_done(Worker *w) {
        uint64_t v;

        (void) read(w->event_fd, &v, sizeof(v));
        pthread_mutex_lock(&w->lock);
        Job *list = w->done_head;
        w->done_head = w->done_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        return list;
}

void worker_cancel_agent_lane(Worker *w) {
        bool any = false;

        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->n_uids; i++)
                for (Job *j = w->uids[i].head, *next; j; j = next) {
                        next = j->next;
                        j->next = NULL;
                        job_fail(j, -ESHUTDOWN, "agentidd is shutting down; the request was not carried out");
                        if (w->done_tail)
                                w->done_tail->next = j;
                        else
                                w->done_head = j;
                        w->done_tail = j;
                        any = true;
                }
        w->n_uids = 0;
        w->depth = 0;
        if (any) {
                uint64_t one = 1;
                if (write(w->event_fd, &one, sizeof(one)) < 0)
                        log_debug("Waking the event loop failed: %m");
        }
        pthread_mutex_unlock(&w->lock);
}

unsigned worker_queue_depth(Worker *w) {
        pthread_mutex_lock(&w->lock);
        unsigned d = w->depth + w->admin_depth;
        pthread_mutex_unlock(&w->lock);
        return d;
}

Worker *worker_stop(Worker *w) {
        if (!w)
                return NULL;

        if (w->thread_started) {
                pthread_mutex_lock(&w->lock);
                w->stopping = true;
                pthread_cond_signal(&w->wake);
                pthread_mutex_unlock(&w->lock);
                (void) pthread_join(w->thread, NULL);
        }
        for (Job *j = w->done_head, *next; j; j = next) {
                next = j->next;
                job_free(j);
        }
        keystore_free(w->ks);
        free(w->uids);
        safe_close(w->event_fd);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        return mfree(w);
}

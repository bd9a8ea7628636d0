/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The TPM worker: one thread owns the Keystore (an ESAPI context is not thread-safe) and runs jobs
 * from a bounded queue with two lanes:
 *
 *   lane 1 (admin)  CreateKey, Destroy, Rotate, host-key statements: always served first, so
 *                   offboarding is never stuck behind a signing flood;
 *   lane 2 (agent)  signing work, one FIFO per caller uid served round robin, so one flooding uid
 *                   cannot starve the others.
 *
 * The event loop submits a Job and gets it back, finished, through an eventfd it watches; replies are
 * sent from the event loop. A full queue, or a uid over its share, answers -EBUSY at submission.
 */

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "attest/cose.h"
#include "dbus/manager.h"
#include "keystore/keystore.h"

#define WORKER_QUEUE_MAX 1024U          /* agent lane */
#define WORKER_QUEUE_PER_UID_MAX 256U
#define WORKER_ADMIN_QUEUE_MAX 256U     /* admin lane, counted apart: a signing flood never blocks it */

typedef enum JobType {
        JOB_CREATE,        /* admin lane */
        JOB_DESTROY,       /* admin lane */
        JOB_SIGN,          /* Sign and SignMessage */
        JOB_ATTEST,        /* Key.Attest: sign the EAT, certify the key, quote */
        JOB_PLATFORM,      /* GetPlatformEvidence: certify the host key, quote */
        JOB_ACTIVATE,      /* ActivateCredential (admin lane) */
        JOB_HOST_SIGN,     /* the host key signs cose: audit checkpoints, GetAuditHead, revocation lists
                            * (admin lane) */
        JOB_ROTATE,        /* Key.Rotate (admin lane) */
        JOB_START_TASK,    /* Key.StartTask: a task key, certified, and its credential signed by the key */
} JobType;

typedef struct Job {
        JobType type;
        sd_bus_message *call;    /* the method call to answer (event-loop thread only) */
        Client *client;          /* its sender */
        uid_t uid;               /* caller's euid: fairness and receipts */
        Key *key;                /* the key (a reference), for the jobs that use one */
        unsigned key_generation; /* the key's generation when the job was made (see Key) */
        bool agent_lane;         /* JOB_ROTATE by a key's own uid: queued as that uid's work, so a
                                  * rotating agent cannot crowd out administrators */
        /* The audit record of the decision: the reply waits until it is durable; a destroy
         * receipt names it. 0 = none. */
        uint64_t audit_seq;
        bool checkpoint;         /* JOB_HOST_SIGN: an audit checkpoint, not a GetAuditHead answer */
        bool revocations;        /* JOB_HOST_SIGN: the revocation list of seq revocation_seq */
        uint64_t revocation_seq;

        /* JOB_CREATE */
        char *name, *owner, *description;
        uint32_t key_uid;
        uint64_t not_after;
        bool has_exe_digest;
        uint8_t exe_sha256[32];
        bool named_tasks_only;

        /* JOB_SIGN */
        uint8_t digest[KEYSTORE_DIGEST_SIZE];
        Task *task;              /* JOB_SIGN by a task key; JOB_START_TASK: the task being made (a reference) */
        uint64_t task_ttl_ms;    /* JOB_START_TASK: the task key's TPM-clock lifetime */
        bool task_key_gone;      /* JOB_SIGN by a task key: the TPM refused it for good (reset, limit) */
        bool counted_start;      /* JOB_START_TASK: counted in n_tasks_starting until freed */
        Key *issuer;             /* IssueToken with a parent token: the parent's key, which must stay
                                  * active until the child is signed (a reference) */
        bool peer_parent;        /* IssueToken whose parent is an approved peer's token: fails if any
                                  * peer is removed before it is signed (peers_removed moved on) */
        unsigned peers_removed;  /* Manager.peers_removed when the parent was checked */
        uint64_t token_exp;      /* IssueToken: the exp claim */
        CoseSign1 *cose;         /* SignMessage, IssueToken, Attest, HOST_SIGN: finished with the
                                  * signature by the event loop */

        /* JOB_DESTROY, JOB_ROTATE */
        char *reason;
        uint64_t now;
        const char *hook_event;  /* JOB_DESTROY: "destroy", or "expire" for agentidd's own */

        /* JOB_ACTIVATE: marshalled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET in, the secret out */
        uint8_t *credential_blob, *encrypted_secret;
        size_t credential_blob_size, encrypted_secret_size;
        uint8_t *activated;
        size_t activated_size;

        /* JOB_ATTEST, JOB_PLATFORM: qualifyingData of the certify and of the quote (DESIGN §5) */
        uint8_t certify_data[32];
        uint8_t quote_data[32];

        /* Results */
        int result;
        char error[KEYSTORE_ERROR_MAX];
        uint8_t signature[KEYSTORE_SIGNATURE_SIZE];
        KeyRecord *created;      /* JOB_CREATE; JOB_ROTATE: the new record, swapped in by the event loop */
        KeyRecord *tombstone;    /* JOB_DESTROY: the destroyed record, swapped in by the event loop */
        uint8_t *receipt;        /* JOB_DESTROY: receipt; JOB_ROTATE: rotation statement */
        size_t receipt_size;
        KeystoreEvidence evidence;

        struct Job *next;
} Job;

Job *job_new(JobType type, sd_bus_message *call, Client *client, uid_t uid, Key *key);
/* A job that signs a COSE_Sign1: encode the headers around payload and set the digest the TPM signs.
 * Return: as cose_sign1_prepare(). */
int job_prepare_cose(Job *j, const uint8_t kid[KEY_KID_SIZE], const CoseClaims *claims, const uint8_t *payload,
                     size_t payload_size);
/* Releases everything the job holds; event-loop thread only (it unrefs the message and key). */
Job *job_free(Job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);

/* Take ownership of ks and start the thread. *ret_event_fd becomes readable when jobs are done. */
int worker_start(Keystore *ks, Worker **ret, int *ret_event_fd);
/* Queue a job (ownership passes to the worker on success). Return: 0; -EBUSY. */
int worker_submit(Worker *w, Job *j);
/* Whether worker_submit() would take j now. Only this thread queues jobs, and the worker only takes
 * them away, so a yes stays true until this thread queues something else. */
bool worker_has_room(Worker *w, const Job *j);
/* All finished jobs, oldest first, as a list linked by ->next (ownership passes to the caller). */
Job *worker_take_done(Worker *w);
unsigned worker_queue_depth(Worker *w);
/* Shutting down: answer every queued agent-lane job with -ESHUTDOWN now (admin work still runs). */
void worker_cancel_agent_lane(Worker *w);
/* Finish the queue, stop the thread, free the keystore. Remaining finished jobs are freed. */
Worker *worker_stop(Worker *w);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * agentidd's central state. Everything here belongs to the event-loop thread, except what a Job hands
 * to the TPM worker (see worker.h) and the atomic flags on Key and Client the worker reads.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "attest/revocation.h"
#include "common/hashmap.h"
#include "governance/approval.h"
#include "governance/audit.h"
#include "governance/hooks.h"
#include "attest/peers.h"
#include "common/crypto-util.h"
#include "governance/policy.h"
#include "keystore/keystore.h"

#define AGENTID_BUS_NAME "org.agentid1"
#define AGENTID_MANAGER_PATH "/org/agentid1"
#define AGENTID_MANAGER_INTERFACE "org.agentid1.Manager"
#define AGENTID_KEY_PREFIX "/org/agentid1/key"
#define AGENTID_KEY_INTERFACE "org.agentid1.Key"
#define AGENTID_TASK_INTERFACE "org.agentid1.Task"

/* Limits on what callers control (docs/dbus-api.md). */
#define SIGN_MESSAGE_PAYLOAD_MAX (64U * 1024U)
#define CONTEXT_ID_MAX 128U          /* task_id, parent_task_id */
#define AUDIENCE_MAX 256U
#define REASON_MAX 256U              /* = KEY_REASON_MAX = REVOCATION_TEXT_MAX */
#define KEY_TTL_MAX (100ULL * 365 * 24 * 3600)
#define KEYS_MAX 100000U
#define KEYS_ADMIN_RESERVE 1000U     /* names only admins may take */
#define SELF_SERVICE_KEYS_PER_UID 64U /* keys a non-admin may create under a "create" rule */
#define TOKEN_TTL_DEFAULT 300U       /* IssueToken without "ttl", seconds */
#define TASK_TTL_DEFAULT 3600U       /* StartTask without "ttl", seconds */
#define TASKS_PER_KEY_MAX 64U
#define TASKS_MAX 4096U
/* Marshalled TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET: a TPM2B size and at most a digest plus an
 * encrypted digest (ID object), or an RSA-4096 ciphertext / ECC point (secret). Generous bounds. */
#define CREDENTIAL_BLOB_MAX 1024U
#define ENCRYPTED_SECRET_MAX 1024U
#define USEC_PER_SEC 1000000ULL
/* GetPlatformEvidence is open to everyone: a token bucket per uid keeps it from being a free way to
 * keep the TPM busy. */
#define EVIDENCE_RATE_PER_SEC 5.0
#define EVIDENCE_RATE_BURST 10.0
#define RATE_BUCKETS_MAX 1024U
/* GetRevocations callers waiting for a freshly signed list; more are told to retry. */
#define REVOCATION_WAITERS_MAX 64U

typedef struct Manager Manager;
typedef struct Worker Worker;
typedef struct ExeCache ExeCache;
typedef struct CredsCache CredsCache;
typedef struct Job Job;

typedef enum KeyStatus {
        KEY_STATUS_ACTIVE,
        KEY_STATUS_EXPIRED,
        KEY_STATUS_DESTROYED,
        KEY_STATUS_UNUSABLE,  /* another TPM / cleared owner hierarchy / bad blob */
} KeyStatus;

typedef struct TaskKey TaskKey;

/*
 * A running task of a key (Key.StartTask): an ephemeral TPM key in the NULL hierarchy, the credential
 * the agent key signed for it, and its object on the bus. Ending it (End, its expiry, the key's
 * destroy or rotation, a restart) revokes it once (a task_end entry).
 */
typedef struct Task {
        unsigned n_ref;
        Manager *manager;
        struct Key *key;         /* the agent key (a reference) */
        char *task_id, *parent_task_id;
        char *scope;             /* space-separated scope tokens, or NULL */
        char **audiences;        /* NULL-terminated; empty: any */
        size_t n_audiences;
        char *path;              /* <key path>/task/<encoded task id> */
        uint64_t created, not_after;     /* seconds since the epoch */
        uint8_t cti[16];         /* the credential's */
        uint8_t kid[34];         /* the task key's TPM Name */
        uint8_t spki_sha256[32];
        uint8_t *public_der;     /* the task key, DER SubjectPublicKeyInfo */
        size_t public_der_size;
        uint8_t *credential;     /* COSE_Sign1 by the agent key */
        size_t credential_size;
        TaskKey *tpm;            /* the worker's: signs through it */
        atomic_bool ended;       /* from End on, the worker refuses queued work */
        sd_event_source *timer;  /* ends the task at not_after */
        bool exported;
} Task;

/*
 * A key on the bus. Kept small: agentidd holds one per key (10,000 and more), so what can be derived
 * from the record — object path, URI, public key — is derived when a call needs it (key_path(),
 * key_uri(), key_public()), not stored (docs/performance.md, "Start-up and memory").
 */
typedef struct Key {
        unsigned n_ref;
        Manager *manager;
        KeyRecord *record;       /* the worker uses pub/priv/auth; this thread only the metadata */
        bool unusable;
        /* Set the moment Destroy is accepted (or found on the revocation list at start); the worker
         * refuses queued work for the key from then on. */
        atomic_bool refusing;
        /* Set while a Rotate runs: new work is refused with Busy, queued work too. */
        atomic_bool rotating;
        /* Counts rotations: a job made for one generation of the key is not signed by the next. */
        atomic_uint generation;
        bool destroy_pending;    /* a Destroy is queued (one at a time) */
        bool rotate_pending;     /* a Rotate is queued (one at a time) */
        bool exported;           /* has an object on the bus */
        Job *deferred_destroy;   /* a Destroy accepted while a Rotate ran: queued when the Rotate is back */
        unsigned n_tasks;        /* running (exported) tasks */
        unsigned n_tasks_starting; /* StartTask jobs alive (queued, held, running) */
        uint64_t retry_after_usec; /* CLOCK_REALTIME: a failed Destroy is tried again from then on */
        char name[];             /* the key table's key: outlives record swaps */
} Key;

/* The public key of an active record in the forms the handlers use. */
typedef struct KeyPublic {
        uint8_t der[P256_SPKI_DER_SIZE];   /* DER SubjectPublicKeyInfo */
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE]; /* cnf claims, verifying its tokens */
} KeyPublic;

/* "agentid://" host-id "/" name (DESIGN §2), NUL included. */
#define KEY_URI_SIZE (sizeof("agentid://") + 2 * KEYSTORE_HOST_ID_SIZE + 1 + KEY_NAME_MAX)
/* AGENTID_KEY_PREFIX "/" and the name with every byte escaped (_xx), NUL included. */
#define KEY_PATH_SIZE (sizeof(AGENTID_KEY_PREFIX "/") + 3 * KEY_NAME_MAX)

/* A bus peer with queued work; when it disconnects its queued work is dropped. */
typedef struct Client {
        Manager *manager;
        char *name;              /* unique bus name */
        sd_bus_track *track;
        unsigned n_jobs;
        atomic_bool gone;
        struct Client *next;
} Client;

/* A GetRevocations call waiting for a list at least as new as seq. */
typedef struct RevocationWaiter {
        sd_bus_message *call;
        uint64_t seq;
} RevocationWaiter;

typedef struct RateBucket {
        uid_t uid;
        double tokens;
        uint64_t last_usec;      /* CLOCK_MONOTONIC */
} RateBucket;

struct Manager {
        sd_event *event;
        sd_bus *bus;
        Worker *worker;
        ExeCache *exe_cache;
        CredsCache *creds_cache; /* callers' euid and pid, by unique name (caller.h) */
        Hashmap *keys;           /* name -> Key*, tombstones included */
        Hashmap *tasks;          /* object path -> Task*, running tasks */
        unsigned n_tasks_starting; /* StartTask jobs alive (queued, held, running) */
        Client *clients;

        char *admin_group;
        gid_t admin_gid;         /* (gid_t) -1: no admin group */
        bool user_bus;

        /* Copied from the keystore before the worker owns it. */
        char host_id[2 * KEYSTORE_HOST_ID_SIZE + 1];
        char tpm_manufacturer[8];
        uint8_t *host_public_der;
        size_t host_public_der_size;
        uint8_t host_kid[KEY_KID_SIZE];
        uint8_t *ak_public;      /* TPMT_PUBLIC */
        size_t ak_public_size;
        uint8_t ak_name[KEY_KID_SIZE];
        const char *ek_type;     /* "rsa" or "ecc": the AK's parent */
        struct {
                const char *type;
                uint8_t *pub;    /* TPMT_PUBLIC */
                size_t pub_size;
                uint8_t *cert;   /* DER certificate from NV, or NULL */
                size_t cert_size;
        } eks[2];                /* the AK's parent first, then the other type if provisioned */
        unsigned n_eks;

        /* Policy (NULL: none, every key check that passes is allowed) and the requests it holds. */
        Policy *policy;
        char *policy_path;
        bool policy_required;    /* an explicit --policy must exist; the default path may not */
        uint64_t approval_timeout_usec;
        ApprovalQueue approvals;

        /* The audit log (bus-audit.c). Replies wait in `parked` until their record is durable. */
        AuditLog *audit;
        sd_event_source *audit_source;    /* its eventfd: records became durable */
        sd_event_source *audit_flush_timer;
        Job *parked_head, *parked_tail;
        uint64_t audit_checkpoint_every;
        bool checkpoint_pending;
        uint64_t checkpoint_retry_seq; /* no new checkpoint job before the log reaches this seq */
        bool audit_stopping;     /* the stop record is written */
        bool audit_final_checkpoint; /* the final checkpoint was queued (once) */
        bool refusal_recorded;   /* bus_policy_submit() audited the refusal it returns */
        bool journal;            /* a journal is there to copy records to */

        /* Offboarding (bus-offboard.c): the revocation list as kept in <state>/revocations, its
         * last signed form, receipts in <state>/receipts, the hooks, and the expiry timer. */
        int state_fd;            /* borrowed from run() */
        char *state_dir;
        int receipts_fd;
        int tasks_fd;            /* <state>/tasks: the journal of running tasks (bus-task.c) */
        RevocationList revocations;
        uint8_t *revocations_signed;    /* COSE_Sign1 of seq revocations_signed_seq, or NULL */
        size_t revocations_signed_size;
        uint64_t revocations_signed_seq;
        bool revocations_signing;       /* a host-key job signs the current list */
        RevocationWaiter revocation_waiters[REVOCATION_WAITERS_MAX]; /* GetRevocations calls */
        size_t n_revocation_waiters;
        HookRunner *hooks;
        char *hooks_dir;
        uint64_t hook_timeout_usec;
        sd_event_source *expiry_timer;

        PeerRegistry *peers;     /* approved peers, as in <state>/peers (bus-peers.c) */
        atomic_uint peers_removed; /* + 1 with every RemovePeer: work a peer's token started re-checks it */

        RateBucket rate[RATE_BUCKETS_MAX];
        unsigned n_rate;

        bool storage_root_lost;  /* the TPM's SRK changed under us: every key unusable until restart */
        unsigned n_pending;      /* jobs queued or running */
        bool stopping;
        int exit_code;
};

Task *task_ref(Task *t);
Task *task_unref(Task *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Task *, task_unref);

Key *key_ref(Key *k);
Key *key_unref(Key *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(Key *, key_unref);

/* Wrap a record into a Key and add it to the table; a public key that cannot be read makes it unusable. */
int manager_add_key(Manager *m, KeyRecord *record, Key **ret);
Key *manager_find_key(Manager *m, const char *name);
/* Swap in a new active record of the same key (Rotate). Return: 0 (k takes record) or -errno (its
 * public key cannot be read; nothing changed). */
int key_replace_record(Key *k, KeyRecord *record);
/* The key's D-Bus object path, written to buf; returns buf. */
const char *key_path(const Key *k, char buf[static KEY_PATH_SIZE]);
/* The key's agent URI, written to buf; returns buf. */
const char *key_uri(const Key *k, char buf[static KEY_URI_SIZE]);
/* The public key of the key's record. Return: 0; -EKEYREVOKED (tombstone); -EBADMSG, -EINVAL. */
int key_public(const Key *k, KeyPublic *ret);
/* SHA-256 of its DER SubjectPublicKeyInfo as revocations and receipts name it; zeros for a key whose
 * public area cannot be read (unusable since it was loaded: nothing it signed verifies). Return: 0;
 * -ENOMEM, -EIO (hashing failed). */
int key_spki_sha256(const Key *k, uint8_t ret[KEY_SPKI_DIGEST_SIZE]);
KeyStatus key_status(const Key *k, uint64_t now);
const char *key_status_to_string(KeyStatus s);
/* 0 if k is active now; otherwise the error (KeyExpired, KeyDestroyed, KeyUnusable) set in error. */
int key_check_usable(Key *k, sd_bus_error *error);
unsigned manager_count_active_keys(Manager *m);
/* A job found the TPM's storage root key changed (-EMEDIUMTYPE: owner hierarchy cleared, another
 * TPM): no key of this state directory loads any more, so all are unusable until a restart adopts
 * the new SRK. Once; logged. */
void manager_storage_root_lost(Manager *m);

/* Resolve --admin-group now (again on SIGHUP: the group may be created after start). */
int manager_resolve_admin_group(Manager *m);
/* uid 0, or a member of the admin group by getgrouplist() on the account of uid. */
bool manager_uid_is_admin(Manager *m, uid_t uid);
/* The groups of uid's account, primary group included. Return: how many; -ENOENT (no account);
 * -E2BIG (more than max; groups[0] is still the primary group). */
#define UID_GROUPS_MAX 256
int uid_groups(uid_t uid, gid_t *groups, int max);

/* Get (or make) the Client of the sender of m, tracking its disconnection. */
int manager_client_for_message(Manager *m, sd_bus_message *msg, Client **ret, sd_bus_error *error);
void manager_client_release(Manager *m, Client *c);
void manager_client_free(Manager *m, Client *c);
/* Queue a job on the worker (answering Busy when full); counts it as pending. Return 1 or < 0. */
int manager_submit(Manager *m, Job *j, sd_bus_error *error);

/* Microseconds on clock (CLOCK_MONOTONIC, CLOCK_REALTIME). */
uint64_t clock_now_usec(clockid_t clock);

/* Take one token from uid's bucket. Return: true if the request may go ahead. */
bool manager_rate_allow(Manager *m, uid_t uid);

/* Stop when nothing is pending any more (after SIGTERM/SIGINT). */
void manager_maybe_exit(Manager *m);

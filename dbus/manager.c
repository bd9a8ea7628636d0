/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentidd state: the key table, bus clients, admin membership (see manager.h).
 */

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <time.h>

#include "common/crypto-util.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/caller.h"
#include "dbus/errors.h"
#include "dbus/manager.h"
#include "dbus/worker.h"

Key *key_ref(Key *k) {
        if (k)
                k->n_ref++;
        return k;
}

Key *key_unref(Key *k) {
        if (!k || --k->n_ref > 0)
                return NULL;
        key_record_free(k->record);
        return mfree(k);
}

static const char *const key_status_names[] = {
        [KEY_STATUS_ACTIVE] = "active",
        [KEY_STATUS_EXPIRED] = "expired",
        [KEY_STATUS_DESTROYED] = "destroyed",
        [KEY_STATUS_UNUSABLE] = "unusable",
};

const char *key_status_to_string(KeyStatus s) {
        return key_status_names[s];
}

KeyStatus key_status(const Key *k, uint64_t now) {
        if (k->record->state == KEY_STATE_DESTROYED || atomic_load(&k->refusing))
                return KEY_STATUS_DESTROYED;
        if (k->unusable)
                return KEY_STATUS_UNUSABLE;
        if (k->record->not_after != 0 && now >= k->record->not_after)
                return KEY_STATUS_EXPIRED;
        return KEY_STATUS_ACTIVE;
}

int key_public(const Key *k, KeyPublic *ret) {
        /* Straight from the public area: no OpenSSL decoding, which cost a millisecond per key. */
        int r = keystore_key_public_point(k->record, ret->x, ret->y);
        if (r < 0)
                return r;
        p256_spki_write(ret->x, ret->y, ret->der);
        return 0;
}

int key_spki_sha256(const Key *k, uint8_t ret[KEY_SPKI_DIGEST_SIZE]) {
        int r = keystore_key_spki_sha256(k->record, ret);
        if (r == -ENOMEM || r == -EIO)
                return r;
        if (r < 0)
                memset(ret, 0, KEY_SPKI_DIGEST_SIZE);
        return 0;
}

const char *key_path(const Key *k, char buf[static KEY_PATH_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        char *p = stpcpy(buf, AGENTID_KEY_PREFIX "/");

        /* sd_bus_path_encode()'s label escaping, without its allocation: ASCII letters stay, and digits
         * except in first place; every other byte becomes _ and two lower-case hex digits.
         * sd_bus_path_decode() in the object lookup reverses it. */
        for (const char *c = k->name; *c; c++) {
                bool keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                            (c > k->name && *c >= '0' && *c <= '9');
                if (keep)
                        *p++ = *c;
                else {
                        *p++ = '_';
                        *p++ = hex[(uint8_t) *c >> 4];
                        *p++ = hex[(uint8_t) *c & 15];
                }
        }
        *p = '\0';
        return buf;
}

const char *key_uri(const Key *k, char buf[static KEY_URI_SIZE]) {
        /* Cannot be cut: key names and host-ids are bounded (DESIGN §2). */
        (void) snprintf(buf, KEY_URI_SIZE, "agentid://%s/%s", k->manager->host_id, k->name);
        return buf;
}

int key_replace_record(Key *k, KeyRecord *record) {
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];
        int r = keystore_key_public_point(record, x, y);
        if (r < 0)
                return r;
        key_record_free(k->record);
        k->record = record;
        return 0;
}

int manager_add_key(Manager *m, KeyRecord *record, Key **ret) {
        _cleanup_(key_unrefp) Key *k = NULL;
        size_t n = strlen(record->name);
        int r;

        k = calloc(1, offsetof(Key, name) + n + 1);
        if (!k)
                return -ENOMEM;
        k->n_ref = 1;
        k->manager = m;
        memcpy(k->name, record->name, n + 1);
        atomic_init(&k->refusing, false);
        atomic_init(&k->rotating, false);
        atomic_init(&k->generation, 0);

        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];
        if (record->state == KEY_STATE_ACTIVE && keystore_key_public_point(record, x, y) < 0) {
                log_warning("Key '%s' has an unreadable public key, marking it unusable.", record->name);
                k->unusable = true;
        }

        r = hashmap_put(m->keys, k->name, k);
        if (r < 0)
                return r;
        k->record = record;
        *ret = TAKE_PTR(k);
        return 0;
}

Key *manager_find_key(Manager *m, const char *name) {
        return hashmap_get(m->keys, name);
}

int key_check_usable(Key *k, sd_bus_error *error) {
        if (atomic_load(&k->rotating) && !atomic_load(&k->refusing))
                return bus_error_setf_errno(error, -EBUSY, "Key '%s' is being rotated; retry in a moment",
                                            k->record->name);
        switch (key_status(k, (uint64_t) time(NULL))) {
        case KEY_STATUS_ACTIVE:
                return 0;
        case KEY_STATUS_EXPIRED:
                return bus_error_setf_errno(error, -EKEYEXPIRED, "Key '%s' expired", k->record->name);
        case KEY_STATUS_DESTROYED:
                return bus_error_setf_errno(error, -EKEYREVOKED, "Key '%s' was destroyed", k->record->name);
        case KEY_STATUS_UNUSABLE:
                return bus_error_setf_errno(error, -EMEDIUMTYPE,
                                            "Key '%s' cannot be used with this TPM (see the daemon log)",
                                            k->record->name);
        }
        return -EINVAL;
}

unsigned manager_count_active_keys(Manager *m) {
        uint64_t now = (uint64_t) time(NULL);
        unsigned n = 0;
        size_t i = 0;
        void *v;

        while (hashmap_iterate(m->keys, &i, &v))
                if (key_status(v, now) != KEY_STATUS_DESTROYED)
                        n++;
        return n;
}

void manager_storage_root_lost(Manager *m) {
        unsigned n = 0;
        size_t i = 0;
        void *v;

        if (m->storage_root_lost)
                return;
        m->storage_root_lost = true;
        while (hashmap_iterate(m->keys, &i, &v)) {
                Key *k = v;
                if (k->record->state == KEY_STATE_ACTIVE && !k->unusable) {
                        k->unusable = true;
                        n++;
                }
        }
        log_error("The TPM's storage root key changed while agentidd ran (owner hierarchy cleared, or another "
                  "TPM): %u key(s) marked unusable. Restart agentidd to adopt the new storage root key; keys "
                  "made before stay unusable and should be destroyed.", n);
}

int manager_resolve_admin_group(Manager *m) {
        struct group grp, *result = NULL;
        char buf[16384];

        m->admin_gid = (gid_t) -1;
        if (!m->admin_group)
                return 0;
        int r = getgrnam_r(m->admin_group, &grp, buf, sizeof(buf), &result);
        if (r != 0 || !result)
                return log_warning_errno(r ?: ENOENT, "Admin group '%s' not found; only root is admin.",
                                         m->admin_group);
        m->admin_gid = result->gr_gid;
        return 0;
}

int uid_groups(uid_t uid, gid_t *groups, int max) {
        struct passwd pw, *result = NULL;
        char buf[16384];
        int n = max;

        /* From the group database for that account, never from /proc of the caller: supplementary
         * groups there are whatever the caller's parent chose. */
        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &result) != 0 || !result)
                return -ENOENT;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0) {
                groups[0] = pw.pw_gid; /* the primary group, certain even when the rest is too long */
                return -E2BIG;
        }
        return n;
}

bool manager_uid_is_admin(Manager *m, uid_t uid) {
        gid_t groups[UID_GROUPS_MAX];

        if (uid == 0)
                return true;
        if (m->admin_gid == (gid_t) -1)
                return false;
        int n = uid_groups(uid, groups, ELEMENTSOF(groups));
        if (n == -E2BIG)
                return groups[0] == m->admin_gid; /* more groups than we read: trust only the primary */
        for (int i = 0; i < n; i++)
                if (groups[i] == m->admin_gid)
                        return true;
        return false;
}

void manager_client_free(Manager *m, Client *c) {
        for (Client **p = &m->clients; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        sd_bus_track_unref(c->track);
        free(c->name);
        free(c);
}

static int on_client_gone(sd_bus_track *track, void *userdata) {
        Client *c = userdata;

        log_debug("Client %s disconnected; dropping its queued work.", c->name);
        creds_cache_forget(c->manager->creds_cache, c->name);
        /* Before it counts as gone: freeing its held jobs must not free the client under us. */
        bus_approvals_client_gone(c->manager, c);
        atomic_store(&c->gone, true);
        /* Done with tracking: returning 0 would make sd-bus dispatch this empty track again and again. */
        c->track = sd_bus_track_unref(c->track);
        if (c->n_jobs == 0)
                manager_client_free(c->manager, c);
        return 1;
}

static int client_for_message(Manager *m, sd_bus_message *msg, Client **ret) {
        const char *sender = sd_bus_message_get_sender(msg);
        int r;

        if (!sender)
                sender = ":direct"; /* peer-to-peer connection: nothing to track */
        for (Client *c = m->clients; c; c = c->next)
                if (streq(c->name, sender) && !atomic_load(&c->gone)) {
                        *ret = c;
                        return 0;
                }

        Client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        atomic_init(&c->gone, false);
        c->name = strdup(sender);
        if (!c->name) {
                free(c);
                return -ENOMEM;
        }
        if (sd_bus_message_get_sender(msg)) {
                r = sd_bus_track_new(m->bus, &c->track, on_client_gone, c);
                if (r >= 0)
                        r = sd_bus_track_add_sender(c->track, msg);
                if (r < 0) {
                        sd_bus_track_unref(c->track);
                        free(c->name);
                        free(c);
                        return r;
                }
        }
        c->next = m->clients;
        m->clients = c;
        *ret = c;
        return 0;
}

int manager_client_for_message(Manager *m, sd_bus_message *msg, Client **ret, sd_bus_error *error) {
        int r = client_for_message(m, msg, ret);
        /* -ENXIO: the sender is already gone; the answer will reach nobody, but name it properly. */
        if (r < 0)
                return bus_error_setf_errno(error, r == -ENOMEM ? r : -EBUSY, "Cannot track the caller: %s",
                                            strerror(-r));
        return 0;
}

void manager_client_release(Manager *m, Client *c) {
        /* Connected clients stay known (their tracking match is set up once); gone ones leave with
         * their last job. */
        if (--c->n_jobs == 0 && atomic_load(&c->gone))
                manager_client_free(m, c);
}

/* A Destroy's first steps: the key refuses use and is listed, before the TPM and the disk have caught
 * up (DESIGN §4). If anything later fails (a full queue, the TPM, a crash), the key stays listed and
 * refusing, and agentidd finishes the destroy itself. */
static void destroy_begin(Manager *m, Job *j, const uint8_t spki_sha256[KEY_SPKI_DIGEST_SIZE]) {
        atomic_store(&j->key->refusing, true);
        bus_tasks_end_for_key(m, j->key, "key destroyed");
        int r = offboard_revoke(m, REVOCATION_DESTROY, j->key, j->key->record->kid, spki_sha256, j->now,
                                j->reason);
        if (r < 0)
                log_error("Destroying key '%s' without a durable revocation entry: %s", j->key->name, strerror(-r));
}

int manager_submit(Manager *m, Job *j, sd_bus_error *error) {
        Key *k = j->key;
        int r;

        if (j->type == JOB_DESTROY) {
                uint8_t spki[KEY_SPKI_DIGEST_SIZE];

                if (k->destroy_pending || k->deferred_destroy)
                        return bus_error_setf_errno(error, -EBUSY, "Key '%s' is being destroyed", k->name);
                r = key_spki_sha256(k, spki);
                if (r < 0) /* nothing happened yet: the caller may retry */
                        return bus_error_setf_errno(error, r, "Hashing the public key of '%s' failed", k->name);
                destroy_begin(m, j, spki);
                if (k->rotate_pending) {
                        /* Offboarding is never locked out by a rotation: the key refuses use now, the
                         * rotation gives up if it has not finished, and this Destroy is queued when
                         * it is back — on whichever record is then current. */
                        k->deferred_destroy = j;
                        log_info("Destroying key '%s' for uid %u once its rotation is back: %s", k->name, j->uid,
                                 j->reason);
                        return 1;
                }
        } else if (j->type == JOB_ROTATE) {
                if (k->destroy_pending || k->rotate_pending || k->deferred_destroy)
                        return bus_error_setf_errno(error, -EBUSY, "Key '%s' is being destroyed or rotated", k->name);
                /* Nothing is revoked yet: a rotation that fails leaves the key as it was. */
                atomic_store(&k->rotating, true);
        }

        r = worker_submit(m->worker, j);
        if (r < 0) {
                if (j->type == JOB_ROTATE)
                        atomic_store(&k->rotating, false);
                else if (j->type == JOB_DESTROY)
                        bus_offboard_key_changed(m); /* listed and refusing: agentidd retries it */
                if (r == -EBUSY)
                        return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "The TPM queue is full; retry later");
                return bus_error_setf_errno(error, r, "Queueing the request failed: %s", strerror(-r));
        }
        if (j->type == JOB_DESTROY || j->type == JOB_ROTATE) {
                if (j->type == JOB_DESTROY)
                        k->destroy_pending = true;
                else
                        k->rotate_pending = true;
                log_info("%s key '%s' (owner %s) for uid %u: %s", j->type == JOB_DESTROY ? "Destroying" : "Rotating",
                         k->name, k->record->owner, j->uid, j->reason);
        }
        m->n_pending++;
        return 1;
}

uint64_t clock_now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

bool manager_rate_allow(Manager *m, uid_t uid) {
        RateBucket *b = NULL, *oldest = NULL;
        uint64_t now = clock_now_usec(CLOCK_MONOTONIC);

        for (unsigned i = 0; i < m->n_rate && !b; i++) {
                if (m->rate[i].uid == uid)
                        b = &m->rate[i];
                else if (!oldest || m->rate[i].last_usec < oldest->last_usec)
                        oldest = &m->rate[i];
        }
        if (!b) {
                /* A full table forgets the uid seen least recently (it starts again with a full bucket). */
                b = m->n_rate < RATE_BUCKETS_MAX ? &m->rate[m->n_rate++] : oldest;
                *b = (RateBucket) { .uid = uid, .tokens = EVIDENCE_RATE_BURST, .last_usec = now };
        }
        b->tokens = MIN(EVIDENCE_RATE_BURST, b->tokens + (double) (now - b->last_usec) / USEC_PER_SEC *
                                                                 EVIDENCE_RATE_PER_SEC);
        b->last_usec = now;
        if (b->tokens < 1.0)
                return false;
        b->tokens -= 1.0;
        return true;
}

void manager_maybe_exit(Manager *m) {
        if (!m->stopping || m->n_pending > 0 || bus_offboard_busy(m))
                return;
        /* The audit log's stop record and final checkpoint come last. */
        if (bus_audit_stop(m))
                return;
        (void) sd_event_exit(m->event, m->exit_code);
}

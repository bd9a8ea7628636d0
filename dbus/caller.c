/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Caller credentials and executable measurement (see caller.h).
 */

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/log.h"
#include "dbus/caller.h"

typedef struct ExeCacheEntry {
        bool used;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
        uint8_t digest[32];
        uint64_t tick;
} ExeCacheEntry;

struct ExeCache {
        ExeCacheEntry entries[EXE_CACHE_SIZE];
        uint64_t tick;
};

ExeCache *exe_cache_new(void) {
        return calloc(1, sizeof(ExeCache));
}

ExeCache *exe_cache_free(ExeCache *c) {
        return mfree(c);
}

/*
 * sd_bus_query_sender_creds() on a bus connection asks the bus daemon (GetConnectionCredentials or
 * GetConnectionUnixUser) and waits for the answer, for every call: a round trip per request, with
 * the event loop blocked. The answer for a unique name does not change, so it is kept: dbus-daemon
 * and dbus-broker take a connection's credentials from the kernel once, when it connects
 * (SO_PEERCRED), and a bus never gives a unique name to a second connection (D-Bus specification,
 * "Message Bus Names"). Only for messages that came through the bus: on a peer-to-peer connection the
 * peer writes the sender field itself. agentidd has one bus connection for its whole life, so names
 * from one bus never meet another's. An entry is dropped when its caller is seen to disconnect.
 */
#define UNIQUE_NAME_MAX 32U     /* ":1.4294967295" and such; longer names are not cached */

typedef struct CredsCacheEntry {
        char name[UNIQUE_NAME_MAX];   /* empty: unused */
        uid_t euid;
        pid_t pid;                    /* 0: not asked for yet */
        uint64_t tick;                /* last use, for LRU; 0: unused */
} CredsCacheEntry;

struct CredsCache {
        CredsCacheEntry entries[CREDS_CACHE_SIZE];
        uint64_t tick;
};

CredsCache *creds_cache_new(void) {
        return calloc(1, sizeof(CredsCache));
}

CredsCache *creds_cache_free(CredsCache *c) {
        return mfree(c);
}

/* The entry of name, or (*ret_found false) the one to replace: an unused one, else the least recently used. */
static CredsCacheEntry *creds_cache_slot(CredsCache *c, const char *name, bool *ret_found) {
        CredsCacheEntry *oldest = &c->entries[0];

        for (size_t i = 0; i < CREDS_CACHE_SIZE; i++) {
                CredsCacheEntry *e = &c->entries[i];
                if (e->tick > 0 && streq(e->name, name)) {
                        *ret_found = true;
                        return e;
                }
                if (e->tick < oldest->tick)
                        oldest = e;
        }
        *ret_found = false;
        return oldest;
}

void creds_cache_forget(CredsCache *c, const char *name) {
        bool found;
        CredsCacheEntry *e;

        if (!c || !name)
                return;
        e = creds_cache_slot(c, name, &found);
        if (found)
                *e = (CredsCacheEntry) {};
}

int caller_get_creds(CredsCache *cache, sd_bus_message *m, uid_t *ret_euid, pid_t *ret_pid) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(m);
        uint64_t mask = SD_BUS_CREDS_EUID | (ret_pid ? SD_BUS_CREDS_PID : 0);
        CredsCacheEntry *e = NULL;
        bool found = false;
        int r;

        if (cache && sender && sender[0] == ':' && strlen(sender) < UNIQUE_NAME_MAX &&
            sd_bus_is_bus_client(sd_bus_message_get_bus(m)) > 0)
                e = creds_cache_slot(cache, sender, &found);
        if (found && (!ret_pid || e->pid > 0)) {
                e->tick = ++cache->tick;
                *ret_euid = e->euid;
                if (ret_pid)
                        *ret_pid = e->pid;
                return 0;
        }

        r = sd_bus_query_sender_creds(m, mask, &creds);
        if (r < 0)
                return r;
        /* Only what the bus itself vouches for: augmented fields come from /proc and can race. */
        if (sd_bus_creds_get_augmented_mask(creds) & mask)
                return -EPERM;
        r = sd_bus_creds_get_euid(creds, ret_euid);
        if (r < 0)
                return r;
        if (ret_pid) {
                r = sd_bus_creds_get_pid(creds, ret_pid);
                if (r < 0)
                        return r;
        }
        if (e) {
                if (!found)
                        *e = (CredsCacheEntry) {};
                strcpy(e->name, sender);
                e->euid = *ret_euid;
                if (ret_pid)
                        e->pid = *ret_pid;
                e->tick = ++cache->tick;
        }
        return 0;
}

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot; identifies one process. */
static int proc_start_time(pid_t pid, unsigned long long *ret) {
        char path[64];
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        int r = read_file_at(AT_FDCWD, path, 4096, &buf, &size);
        if (r < 0)
                return r;
        /* The command name (field 2) may hold spaces and ')': parse after the last ')'. */
        char *p = strrchr((char *) buf, ')');
        if (!p)
                return -EIO;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EIO;
        }
        *ret = strtoull(p + 1, NULL, 10);
        return 0;
}

static int proc_euid(pid_t pid, uid_t *ret) {
        char path[64];
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        unsigned long real, effective;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        int r = read_file_at(AT_FDCWD, path, 64 * 1024, &buf, &size);
        if (r < 0)
                return r;
        const char *uid_line = strstr((const char *) buf, "\nUid:");
        if (!uid_line || sscanf(uid_line, "\nUid: %lu %lu", &real, &effective) != 2)
                return -EIO;
        *ret = (uid_t) effective;
        return 0;
}

/* Alive (signal 0 through the pidfd; EPERM still means alive) and still the process that started then. */
static bool process_unchanged(int pidfd, pid_t pid, unsigned long long start) {
        unsigned long long now;

        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno != EPERM)
                return false;
        return proc_start_time(pid, &now) >= 0 && now == start;
}

static bool entry_matches(const ExeCacheEntry *e, const struct stat *st) {
        return e->used && e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
               e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
               e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

int caller_exe_digest(ExeCache *cache, pid_t pid, uid_t expected_euid, uint8_t ret[32]) {
        _cleanup_close_ int pidfd = -EBADF, exe_fd = -EBADF;
        unsigned long long start_before;
        struct stat st, st_after;
        uint8_t digest[32];
        char path[64];
        uid_t euid;
        int r;

        if (pid <= 0)
                return -ESRCH;
        /* Pin the process: a pidfd keeps naming this process even if the pid is reused later. */
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        r = proc_start_time(pid, &start_before);
        if (r < 0)
                return log_debug_errno(ESRCH, "Reading the start time of process %d failed: %s", (int) pid,
                                       strerror(-r));

        snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
        exe_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (exe_fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        if (fstat(exe_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if ((unsigned long long) st.st_size > EXE_SIZE_MAX)
                return -EFBIG;

        ExeCacheEntry *hit = NULL, *victim = &cache->entries[0];
        for (size_t i = 0; i < EXE_CACHE_SIZE; i++) {
                ExeCacheEntry *e = &cache->entries[i];
                if (entry_matches(e, &st)) {
                        hit = e;
                        break;
                }
                if (!e->used || (victim->used && e->tick < victim->tick))
                        victim = e;
        }
        if (hit)
                memcpy(digest, hit->digest, sizeof(digest));
        else {
                struct stat st_hashed;
                r = sha256_fd(exe_fd, EXE_SIZE_MAX, digest);
                if (r < 0)
                        return r;
                /* Written to while hashed (where ETXTBSY does not protect it): the digest describes
                 * no version of the file, so neither use nor cache it. */
                if (fstat(exe_fd, &st_hashed) < 0)
                        return -errno;
                if (st_hashed.st_size != st.st_size || st_hashed.st_mtim.tv_sec != st.st_mtim.tv_sec ||
                    st_hashed.st_mtim.tv_nsec != st.st_mtim.tv_nsec || st_hashed.st_ctim.tv_sec != st.st_ctim.tv_sec ||
                    st_hashed.st_ctim.tv_nsec != st.st_ctim.tv_nsec)
                        return log_debug_errno(ESRCH, "The executable of process %d changed while it was hashed.",
                                               (int) pid);
        }

        /* Re-check after measuring: same process (alive, same start time), same executable, and still
         * running as the uid the bus reported. */
        if (!process_unchanged(pidfd, pid, start_before))
                return log_debug_errno(ESRCH, "Process %d exited or was replaced while it was measured.", (int) pid);
        if (stat(path, &st_after) < 0 || st_after.st_dev != st.st_dev || st_after.st_ino != st.st_ino)
                return log_debug_errno(ESRCH, "Process %d executed another program while it was measured.",
                                       (int) pid);
        r = proc_euid(pid, &euid);
        if (r < 0)
                return log_debug_errno(ESRCH, "Reading the credentials of process %d failed.", (int) pid);
        if (euid != expected_euid)
                return -EPERM;

        if (!hit) {
                *victim = (ExeCacheEntry) {
                        .used = true,
                        .dev = st.st_dev,
                        .ino = st.st_ino,
                        .size = st.st_size,
                        .mtime = st.st_mtim,
                        .ctime = st.st_ctim,
                };
                memcpy(victim->digest, digest, sizeof(digest));
                hit = victim;
        }
        hit->tick = ++cache->tick;
        memcpy(ret, digest, sizeof(digest));
        return 0;
}

/* "No such thing" from sd-login: the process is in no unit / no session (ENXIO: its cgroup path has
 * none; ENODATA: no cgroup information for it at all). */
static bool sd_login_none(int r) {
        return r == -ENXIO || r == -ENODATA;
}

int caller_cgroup_facts(pid_t pid, uid_t expected_euid, char **ret_unit, int *ret_session) {
        _cleanup_close_ int pidfd = -EBADF;
        _cleanup_free_ char *unit = NULL, *session = NULL;
        unsigned long long start;
        uid_t euid;
        int r, s;

        if (pid <= 0)
                return -ESRCH;
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return errno == ESRCH ? -ESRCH : -errno;
        if (proc_start_time(pid, &start) < 0)
                return -ESRCH;

        r = sd_pid_get_unit(pid, &unit);
        if (r < 0 && !sd_login_none(r))
                return r == -ENOMEM ? r : -EIO;
        s = sd_pid_get_session(pid, &session);
        if (s < 0 && !sd_login_none(s))
                return s == -ENOMEM ? s : -EIO;

        /* The same process, still running as the caller: a pid reused by another uid's process must
         * not lend the caller its unit. */
        if (!process_unchanged(pidfd, pid, start))
                return log_debug_errno(ESRCH, "Process %d changed while its cgroup was read.", (int) pid);
        if (proc_euid(pid, &euid) < 0 || euid != expected_euid)
                return log_debug_errno(ESRCH, "Process %d no longer runs as uid %u.", (int) pid, expected_euid);
        *ret_unit = r >= 0 ? TAKE_PTR(unit) : NULL;
        *ret_session = s >= 0;
        return 0;
}

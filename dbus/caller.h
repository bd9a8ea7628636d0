/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who is calling. Authorisation uses only the effective uid the bus reports for the sender (taken by
 * the bus from the kernel at connect time, race-free); the pid is used to measure the executable for
 * workload pinning. Measuring is racy by nature on this kernel and libsystemd (no pidfd credentials
 * before systemd 256): the pid is pinned with pidfd_open() and its start time, /proc/PID/exe is hashed
 * through an open fd, and afterwards the process, its start time, its euid and its executable's
 * (device, inode) are checked again. docs/dbus-api.md describes what this does and does not stop.
 */

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* Larger executables are refused, not hashed: hashing runs on the event loop (a cache miss on 256 MiB
 * costs about a second), so this bounds how long one caller can stall the others. */
#define EXE_SIZE_MAX (256ULL * 1024 * 1024)
#define EXE_CACHE_SIZE 64U

typedef struct ExeCache ExeCache;

ExeCache *exe_cache_new(void);
ExeCache *exe_cache_free(ExeCache *c);

/* Credentials of the bus's unique names, kept for CREDS_CACHE_SIZE callers (least recently used go). */
#define CREDS_CACHE_SIZE 128U
typedef struct CredsCache CredsCache;

CredsCache *creds_cache_new(void);
CredsCache *creds_cache_free(CredsCache *c);

/*
 * caller_get_creds() - the sender's euid (and pid if ret_pid) as the bus reports them
 *
 * Never augmented from /proc. Asked of the bus once per unique name (GetConnectionCredentials, a
 * synchronous round trip), then answered from cache (may be NULL: always ask).
 */
int caller_get_creds(CredsCache *cache, sd_bus_message *m, uid_t *ret_euid, pid_t *ret_pid);
/* Drop what is kept for a unique name (its connection is gone). */
void creds_cache_forget(CredsCache *cache, const char *name);

/*
 * caller_exe_digest() - SHA-256 of the executable process pid runs, as uid expected_euid
 *
 * Cached by (device, inode, size, mtime, ctime). Return: 0; -ESRCH if the process went away or changed
 * (exec, pid reuse) while it was measured; -EPERM if it does not run as expected_euid; -EFBIG; -errno.
 */
int caller_exe_digest(ExeCache *cache, pid_t pid, uid_t expected_euid, uint8_t ret[32]);

/*
 * caller_cgroup_facts() - the caller's systemd unit and whether it runs in a login session
 *
 * Read from the process's cgroup (sd_pid_get_unit/sd_pid_get_session); afterwards the process must be
 * the same one (alive, same start time) and still run as expected_euid, so a recycled pid cannot lend
 * its cgroup to a caller that exited. *ret_unit is NULL when the process is in no unit; *ret_session
 * is 1 or 0.
 * Return: 0; -ESRCH if the process went away or changed; -EIO if the cgroup could not be read;
 *         -ENOMEM. Any error means "unknown", never "none".
 */
int caller_cgroup_facts(pid_t pid, uid_t expected_euid, char **ret_unit, int *ret_session);

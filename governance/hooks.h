/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Offboarding hooks (--offboard-hooks=DIR, default /etc/agentid/offboard.d): after a key is destroyed,
 * rotated out or expires, every executable in DIR runs once, in name order (strcmp), one at a time,
 * without a shell, with a timeout, and with this environment only:
 *
 *     PATH=/usr/sbin:/usr/bin:/sbin:/bin  AGENTID_KEY  AGENTID_URI  AGENTID_KID (hex)  AGENTID_OWNER
 *     AGENTID_REASON  AGENTID_RECEIPT (path of the receipt file)  AGENTID_EVENT (destroy|rotate|expire)
 *
 * A hook file must be a regular file (symlinks are not followed), owned by root (uid 0), not writable
 * by group or others, and executable; others are skipped and reported. Names starting with "." and
 * names ending in "~" are ignored silently (editor and package-manager leftovers). The directory itself
 * must be owned by root and not writable by group or others; every ancestor up to "/" must be a
 * directory owned by root and either not writable by group or others or sticky (like /tmp); no
 * component of DIR may be a symbolic link, "." or "..". Else nothing in it runs (reported once per
 * offboarding as a skip of the directory, the detail naming the offending path). These path checks are
 * what makes running each hook by path ("DIR/NAME", resolved again by execve() or systemd-run) after
 * checking it through a descriptor safe: only root can change what the path leads to in between. A
 * missing directory (or ancestor) means no hooks; one that cannot be opened or read (not a directory,
 * EACCES, ...) is one HOOK_FAILED with path = the directory.
 *
 * Under systemd (HookRunnerOptions.systemd_run set) each hook runs as a transient service through
 * `systemd-run --wait --pipe --collect --quiet --service-type=exec -p RuntimeMaxSec=<timeout>
 * --setenv=... -- PATH`, so it is not confined by agentidd's own sandbox (a hook may need the network
 * to tell peers); otherwise it is forked and executed directly with stdin from /dev/null, stdout and
 * stderr to one pipe, all other descriptors closed, in its own process group.
 *
 * Output (stdout and stderr together) is captured up to HOOK_OUTPUT_MAX bytes; the rest is counted and
 * dropped. At the timeout the process group gets SIGKILL. A failing hook never undoes anything; the
 * caller records each result (the audit log).
 *
 * Offboardings are queued (HOOK_QUEUE_MAX; beyond it hook_runner_queue() refuses the event, whose hooks
 * then never run for it: the caller records that) and run in order. Everything runs on the sd-event
 * loop of the caller; no threads. The directory and its path are checked and read when an offboarding's
 * turn comes (not when it is queued) and each file is checked right before it runs. After the main
 * process of a hook exits, whatever it left running in its process group is killed too (systemd-run does
 * the same with the unit's cgroup): hooks never overlap.
 *
 * What the caller must do: block SIGCHLD (sigprocmask) before any thread starts, so that every thread
 * has it blocked, and keep its disposition SIG_DFL (not SIG_IGN, which would reap hooks behind the
 * runner's back); sd_event_add_child() requires this. Children are reaped by sd-event. Hooks start with
 * an empty signal mask and default dispositions whatever the daemon blocks or ignores.
 *
 * Re-entrancy: fn runs from the event loop (never from inside hook_runner_queue()). It may call
 * hook_runner_queue() and hook_runner_busy(); it may call hook_runner_free(), which then takes effect
 * when fn returns (the remaining results are reported as HOOK_CANCELLED after that).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "common/macro.h"

#define HOOK_OUTPUT_MAX 4096U
#define HOOK_QUEUE_MAX 1024U       /* offboardings waiting for their hooks */
#define HOOKS_PER_DIR_MAX 64U      /* more files than this: the rest are skipped and reported */
#define HOOK_TIMEOUT_DEFAULT_USEC (30ULL * 1000000ULL)

typedef struct HookRunner HookRunner;

typedef struct HookRunnerOptions {
        const char *dir;                 /* the hook directory; a missing directory means no hooks */
        uint64_t timeout_usec;           /* per hook; 0 = HOOK_TIMEOUT_DEFAULT_USEC */
        const char *systemd_run;         /* path of systemd-run to use transient units, or NULL: direct */
} HookRunnerOptions;

/* The environment of one offboarding; every field is required (reason may be ""). Copied. */
typedef struct HookEvent {
        const char *event;               /* "destroy", "rotate" or "expire" */
        const char *key;
        const char *uri;
        const char *kid_hex;
        const char *owner;
        const char *reason;
        const char *receipt_path;
} HookEvent;

typedef enum HookOutcome {
        HOOK_EXITED,                     /* status holds the exit status (0 = success); under
                                          * systemd-run, systemd-run's (the service's, or non-zero if
                                          * the service died by a signal) */
        HOOK_KILLED,                     /* status holds the signal */
        HOOK_TIMED_OUT,                  /* killed at the timeout; status holds the signal (SIGKILL) */
        HOOK_SKIPPED,                    /* not run; detail says why (owner, mode, not executable, ...) */
        HOOK_FAILED,                     /* could not be started; detail says why */
        HOOK_CANCELLED,                  /* the runner was freed before it could run */
} HookOutcome;

typedef struct HookResult {
        const char *path;                /* the hook (or the directory, for a directory-wide skip) */
        const HookEvent *event;
        HookOutcome outcome;
        int status;
        const char *detail;              /* skip/failure reason; NULL otherwise */
        const uint8_t *output;           /* captured output, not NUL-terminated, maybe not UTF-8 */
        size_t output_size;
        size_t output_dropped;           /* bytes beyond HOOK_OUTPUT_MAX */
        uint64_t duration_usec;
} HookResult;

/* Called once per hook file (and per skip), in order; then once with path == NULL when every hook of
 * the event has been handled. Borrowed data is valid only during the call. */
typedef void (*HookResultFn)(const HookResult *result, void *userdata);

/* o->dir and o->systemd_run must be absolute paths. Return: 0; -EINVAL; -ENOMEM; -EBUSY (SIGCHLD is not
 * blocked in the calling thread; see above). The runner does not read the directory until an event's
 * turn comes. */
int hook_runner_new(sd_event *event, const HookRunnerOptions *o, HookResultFn fn, void *userdata,
                    HookRunner **ret);

/* Queue one offboarding. Return: 0; -EINVAL (missing field, or an event other than destroy, rotate or
 * expire); -EBUSY (HOOK_QUEUE_MAX waiting); -ESHUTDOWN (called from fn while the runner is being freed);
 * -ENOMEM. */
int hook_runner_queue(HookRunner *h, const HookEvent *e);

/* True while a hook runs or events wait. */
bool hook_runner_busy(const HookRunner *h);

/* Kills a running hook (SIGKILL to its group, reaped; blocks until it is), reports it as HOOK_CANCELLED
 * (path = the hook, with its output so far), then the hooks of its event not yet run as one
 * HOOK_CANCELLED (path = the directory) and the event's path == NULL call; then each queued event as
 * one HOOK_CANCELLED (path = the directory) and its path == NULL call. Frees the runner. NULL is
 * allowed. */
HookRunner *hook_runner_free(HookRunner *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HookRunner *, hook_runner_free);

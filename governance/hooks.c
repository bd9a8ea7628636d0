/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Offboarding hook runner (see hooks.h).
 *
 * One state machine on the caller's sd-event loop. A defer source ("step") starts events and hooks, so
 * the result callback never runs inside hook_runner_queue() and never nests; while a hook runs, a child
 * source, an io source on its output pipe and a timer watch it. The directory is read when an event
 * starts and each file is checked right before it runs, so a hook added or fixed in between counts.
 *
 * Hooks are checked through a descriptor but run by path, resolved again at exec; that is safe because
 * the path itself is checked first: no symbolic link, and nothing on it that anyone but root could
 * rename or write (runner_open_dir() says why in full).
 *
 * agentidd has threads, so between fork() and execve() the child makes only async-signal-safe calls on
 * data prepared before the fork. A CLOEXEC status pipe carries the child's errno back if execve() (or
 * the set-up before it) fails; the parent waits on it, which takes as long as one execve().
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "governance/hooks.h"

#define HOOK_ENV_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define HOOK_ENV_N 8U                            /* PATH and the seven AGENTID_* variables */
#define HOOK_ARGV_MAX 32U
#define HOOK_DETAIL_MAX (PATH_MAX + 256U)        /* room to name a path */
#define HOOK_READ_BURST (64U * 1024U)            /* per wake-up, so a chatty hook cannot starve the loop */
#define HOOK_DRAIN_MAX (1024U * 1024U)           /* after exit: what is left in the pipe, bounded */
#define USEC_PER_SEC_ UINT64_C(1000000)
#define USEC_PER_MSEC_ UINT64_C(1000)

typedef struct HookJob {
        struct HookJob *next;
        char *fields[7];
        HookEvent event;                         /* points into fields */
} HookJob;

struct HookRunner {
        sd_event *event;
        char *dir;
        char *systemd_run;
        uint64_t timeout_usec;
        HookResultFn fn;
        void *userdata;

        HookJob *queue, **queue_tail;            /* waiting, oldest first */
        size_t n_queued;
        sd_event_source *step_source;

        /* The event whose hooks are being handled. */
        HookJob *job;
        int dir_fd;
        char **names;                            /* sorted, at most HOOKS_PER_DIR_MAX */
        size_t n_names, next_name;
        size_t n_over;                           /* files beyond HOOKS_PER_DIR_MAX */

        /* The running hook, while pid > 0. */
        pid_t pid;
        char *path;
        sd_event_source *child_source, *output_source, *timer_source;
        int output_fd;
        uint8_t output[HOOK_OUTPUT_MAX];
        size_t output_size, output_dropped;
        uint64_t start_usec;
        bool timed_out;

        unsigned reporting;                      /* > 0 while fn runs */
        bool free_requested;                     /* fn called hook_runner_free(); done once fn returns */
        bool freeing;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC_ + (uint64_t) ts.tv_nsec / 1000U;
}

static HookJob *hook_job_free(HookJob *j) {
        if (!j)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(j->fields); i++)
                free(j->fields[i]);
        free(j);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(HookJob *, hook_job_free);

static bool hook_event_name_valid(const char *s) {
        return streq(s, "destroy") || streq(s, "rotate") || streq(s, "expire");
}

/* A fixed-capacity list of malloc'd strings, for argv and envp built before fork(). */
typedef struct StringList {
        char *v[HOOK_ARGV_MAX + 1];
        size_t n;
} StringList;

static void string_list_done(StringList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        l->n = 0;
}

_printf_(2, 3) static int string_list_addf(StringList *l, const char *fmt, ...) {
        va_list ap;
        char *s;
        int k;

        if (l->n >= HOOK_ARGV_MAX)
                return -E2BIG;
        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        l->v[l->n++] = s;
        l->v[l->n] = NULL;
        return 0;
}

/* Keep our descriptors off 0..2, so that dup2() onto stdio in the child always clears FD_CLOEXEC. */
static int fd_move_above_stdio(int *fd) {
        int copy;

        if (*fd > STDERR_FILENO)
                return 0;
        copy = fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (copy < 0)
                return -errno;
        safe_close(*fd);
        *fd = copy;
        return 0;
}

static void runner_report(HookRunner *h, const HookResult *result) {
        h->reporting++;
        h->fn(result, h->userdata);
        h->reporting--;
}

static void runner_report_simple(HookRunner *h, const char *path, HookOutcome outcome, const char *detail) {
        HookResult result = {
                .path = path,
                .event = &h->job->event,
                .outcome = outcome,
                .detail = detail,
        };

        runner_report(h, &result);
}

static void runner_kick(HookRunner *h) {
        int r;

        r = sd_event_source_set_enabled(h->step_source, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "hooks: enabling the step source failed: %m");
}

static int hook_check_file(int dir_fd, const char *name, char *detail, size_t n) {
        struct stat st;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                int r = -errno;
                snprintf(detail, n, "cannot stat: %s", strerror(-r));
                return r;
        }
        if (S_ISLNK(st.st_mode)) {
                snprintf(detail, n, "symbolic link (not followed)");
                return -ELOOP;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(detail, n, "not a regular file");
                return -EBADFD;
        }
        if (st.st_uid != 0) {
                snprintf(detail, n, "owned by uid %u, not root", (unsigned) st.st_uid);
                return -EPERM;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                snprintf(detail, n, "writable by group or others (mode %04o)", (unsigned) (st.st_mode & 07777));
                return -EPERM;
        }
        if (!(st.st_mode & S_IXUSR)) {
                snprintf(detail, n, "not executable by its owner (mode %04o)", (unsigned) (st.st_mode & 07777));
                return -EACCES;
        }
        return 0;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool hook_name_ignored(const char *name) {
        size_t n = strlen(name);

        /* Covers "." and ".."; editors leave "x~" and ".x.swp" behind, package managers ".x.dpkg-new". */
        return n == 0 || name[0] == '.' || name[n - 1] == '~';
}

static void runner_free_names(HookRunner *h) {
        for (size_t i = 0; i < h->n_names; i++)
                free(h->names[i]);
        h->names = mfree(h->names);
        h->n_names = h->next_name = h->n_over = 0;
}

/* A directory no one but root can change: owned by root, and group and others cannot write it unless
 * the sticky bit is set (like /tmp, 1777: then only an entry's owner, the directory's owner or root may
 * rename or remove it, so root's entries stay put). With a POSIX ACL the group bits are the ACL mask,
 * so a named user or group allowed to write shows up as S_IWGRP. */
static bool ancestor_is_safe(const struct stat *st) {
        return st->st_uid == 0 && (!(st->st_mode & (S_IWGRP | S_IWOTH)) || (st->st_mode & S_ISVTX));
}

/* Checks one component of the hook directory's path (the first len bytes of path name it). */
static int dir_component_check(const struct stat *st, bool last, const char *path, size_t len,
                               HookOutcome *ret_outcome, char *detail, size_t n) {
        int shown = (int) MIN(len, (size_t) INT_MAX);

        *ret_outcome = HOOK_SKIPPED;
        if (S_ISLNK(st->st_mode)) {
                snprintf(detail, n, "%.*s is a symbolic link (not followed); no hook run", shown, path);
                return -ELOOP;
        }
        if (!S_ISDIR(st->st_mode)) {
                *ret_outcome = HOOK_FAILED;
                snprintf(detail, n, "cannot open %.*s: %s", shown, path, strerror(ENOTDIR));
                return -ENOTDIR;
        }
        if (!last) {
                if (st->st_uid != 0) {
                        snprintf(detail, n, "ancestor %.*s owned by uid %u, not root; no hook run", shown, path,
                                 (unsigned) st->st_uid);
                        return -EPERM;
                }
                if (!ancestor_is_safe(st)) {
                        snprintf(detail, n,
                                 "ancestor %.*s writable by group or others without the sticky bit (mode %04o); "
                                 "no hook run",
                                 shown, path, (unsigned) (st->st_mode & 07777));
                        return -EPERM;
                }
                return 0;
        }
        /* Whoever can write here can make agentidd run anything as root; sticky or not, anyone who can
         * write may add a file. */
        if (st->st_uid != 0) {
                snprintf(detail, n, "directory owned by uid %u, not root; no hook run", (unsigned) st->st_uid);
                return -EPERM;
        }
        if (st->st_mode & (S_IWGRP | S_IWOTH)) {
                snprintf(detail, n, "directory writable by group or others (mode %04o); no hook run",
                         (unsigned) (st->st_mode & 07777));
                return -EPERM;
        }
        return 0;
}

/*
 * Opens h->dir one component at a time from "/", following nothing (no symbolic link, no "." or ".."),
 * and checks each step: every ancestor, "/" included, must be a directory that only root can change
 * (ancestor_is_safe()); the directory itself must be owned by root and not writable by group or others.
 *
 * Why: each hook is checked with fstatat() on the descriptor returned here, but runs by path,
 * "<dir>/<name>", which execve() or systemd-run resolves again. Running the checked file itself
 * (fexecve()) would need, for a "#!" script, a descriptor left open across the exec, which the
 * interpreter would inherit; not worth it. Resolving again is safe only if no one but root can change
 * what the path leads to between the check and the exec, which is what these checks establish: from
 * "/" down, every directory on the path can be renamed, replaced or written only by root, and no
 * symbolic link redirects the walk. Without them a user who owns an ancestor (/srv/x of
 * /srv/x/offboard.d) could swap the directory in between and have root run their code. The walk runs
 * when each event starts, so a path fixed (or broken) in between counts.
 *
 * Return: 1 and *ret_fd (the directory, open for reading); 0 when a component does not exist (no
 *         hooks); -errno with *ret_outcome (HOOK_SKIPPED for a path that fails the checks, HOOK_FAILED
 *         otherwise) and detail naming the offending path.
 */
static int runner_open_dir(HookRunner *h, int *ret_fd, HookOutcome *ret_outcome, char *detail, size_t n) {
        _cleanup_close_ int fd = -EBADF;
        const char *p = h->dir;
        struct stat st;
        bool last;
        int dir_fd, r;

        fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                *ret_outcome = HOOK_FAILED;
                snprintf(detail, n, "cannot open /: %s", strerror(-r));
                return r;
        }
        last = p[strspn(p, "/")] == '\0';
        r = dir_component_check(&st, last, "/", 1, ret_outcome, detail, n);
        if (r < 0)
                return r;

        while (!last) {
                _cleanup_close_ int next = -EBADF;
                char name[NAME_MAX + 1];
                size_t len, upto;
                int shown;

                p += strspn(p, "/");
                len = strcspn(p, "/");
                upto = (size_t) (p - h->dir) + len;     /* h->dir up to this component, for details */
                shown = (int) MIN(upto, (size_t) INT_MAX);
                last = p[len + strspn(p + len, "/")] == '\0';
                if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
                        *ret_outcome = HOOK_SKIPPED;
                        snprintf(detail, n, "%.*s: \".\" or \"..\" in the path (not resolved); no hook run", shown,
                                 h->dir);
                        return -EINVAL;
                }
                if (len > NAME_MAX) {
                        *ret_outcome = HOOK_FAILED;
                        snprintf(detail, n, "cannot open %.*s: %s", shown, h->dir, strerror(ENAMETOOLONG));
                        return -ENAMETOOLONG;
                }
                memcpy(name, p, len);
                name[len] = '\0';
                p += len;

                /* With O_PATH, O_NOFOLLOW opens a symbolic link itself, and fstat() then says so. */
                next = openat(fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 || fstat(next, &st) < 0) {
                        if (errno == ENOENT)
                                return 0;
                        r = -errno;
                        *ret_outcome = HOOK_FAILED;
                        snprintf(detail, n, "cannot open %.*s: %s", shown, h->dir, strerror(-r));
                        return r;
                }
                r = dir_component_check(&st, last, h->dir, upto, ret_outcome, detail, n);
                if (r < 0)
                        return r;
                safe_close(fd);
                fd = TAKE_FD(next);
        }

        /* The directory that was checked, not the path once more. */
        dir_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) {
                r = -errno;
                *ret_outcome = HOOK_FAILED;
                snprintf(detail, n, "cannot open the directory: %s", strerror(-r));
                return r;
        }
        *ret_fd = dir_fd;
        return 1;
}

/*
 * Opens the directory through runner_open_dir() (which checks it and its path) and lists the hook names
 * of the event that starts.
 *
 * Return: 0 (names listed; none if the directory or an ancestor does not exist); -errno with
 *         *ret_outcome (HOOK_SKIPPED for a path that fails the checks, HOOK_FAILED otherwise) and detail
 *         set.
 */
static int runner_read_dir(HookRunner *h, HookOutcome *ret_outcome, char *detail, size_t n) {
        _cleanup_close_ int fd = -EBADF;
        char **names = NULL;
        size_t n_names = 0, n_alloc = 0;
        DIR *d;
        int r;

        r = runner_open_dir(h, &fd, ret_outcome, detail, n);
        if (r <= 0)
                return r;
        r = 0;

        int list_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (list_fd < 0 || !(d = fdopendir(list_fd))) {
                r = -errno;
                safe_close(list_fd);
                *ret_outcome = HOOK_FAILED;
                snprintf(detail, n, "cannot read the directory: %s", strerror(-r));
                return r;
        }
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        r = -errno;
                        break;
                }
                if (hook_name_ignored(de->d_name))
                        continue;
                if (n_names == n_alloc) {
                        size_t m = n_alloc ? n_alloc * 2 : 16, bytes;
                        char **grown;

                        if (!size_mul(m, sizeof(char *), &bytes) || !(grown = realloc(names, bytes))) {
                                r = -ENOMEM;
                                break;
                        }
                        names = grown;
                        n_alloc = m;
                }
                names[n_names] = strdup(de->d_name);
                if (!names[n_names]) {
                        r = -ENOMEM;
                        break;
                }
                n_names++;
        }
        closedir(d);
        if (r < 0) {
                for (size_t i = 0; i < n_names; i++)
                        free(names[i]);
                free(names);
                *ret_outcome = HOOK_FAILED;
                snprintf(detail, n, "cannot read the directory: %s", strerror(-r));
                return r;
        }

        if (n_names > 0)
                qsort(names, n_names, sizeof(char *), name_compare);
        if (n_names > HOOKS_PER_DIR_MAX) {
                for (size_t i = HOOKS_PER_DIR_MAX; i < n_names; i++)
                        free(names[i]);
                h->n_over = n_names - HOOKS_PER_DIR_MAX;
                n_names = HOOKS_PER_DIR_MAX;
        }
        h->names = names;
        h->n_names = n_names;
        h->next_name = 0;
        h->dir_fd = TAKE_FD(fd);
        return 0;
}

/* Runs in the forked child; never returns. Only async-signal-safe calls from here on. */
_Noreturn static void hook_child(int null_fd, int output_fd, int status_fd, char *const *argv,
                                 char *const *envp) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t none;
        int error;

        /* Its own group, so the timeout kills whatever it started too. */
        if (setpgid(0, 0) < 0)
                goto fail;

        /* The daemon's handlers and ignored signals are not the hook's; the mask survives execve(), and
         * agentidd blocks the signals its event loop takes through signalfd. Dispositions first, so a
         * signal pending behind the mask meets the default action. Errors are for SIGKILL, SIGSTOP and
         * the libc-internal signals, which need no reset. */
        for (int sig = 1; sig < _NSIG; sig++)
                (void) sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                goto fail;

        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(output_fd, STDOUT_FILENO) < 0 ||
            dup2(output_fd, STDERR_FILENO) < 0)
                goto fail;
        /* The status pipe moves to 3 and stays close-on-exec; everything above goes. */
        if (status_fd != 3) {
                if (dup3(status_fd, 3, O_CLOEXEC) < 0)
                        goto fail;
                status_fd = 3;
        }
        if (close_range(4, ~0U, 0) < 0) {
                struct rlimit rl;
                int max = 65536;

                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX)
                        max = (int) rl.rlim_cur;
                for (int fd = 4; fd < max; fd++)
                        (void) close(fd);
        }
        if (chdir("/") < 0)
                goto fail;

        execve(argv[0], argv, envp);
fail:
        error = errno;
        while (write(status_fd, &error, sizeof(error)) < 0 && errno == EINTR)
                ;
        _exit(127);
}

static void runner_clear_running(HookRunner *h) {
        h->child_source = sd_event_source_disable_unref(h->child_source);
        h->output_source = sd_event_source_disable_unref(h->output_source);
        h->timer_source = sd_event_source_disable_unref(h->timer_source);
        h->output_fd = safe_close(h->output_fd);
        h->path = mfree(h->path);
        h->pid = 0;
        h->output_size = h->output_dropped = 0;
        h->timed_out = false;
}

/* Return: 1 when nothing more will come (EOF or an error), 0 when the pipe is empty for now or max was
 * read. */
static int runner_read_output(HookRunner *h, size_t max) {
        uint8_t discard[4096];
        size_t total = 0;

        if (h->output_fd < 0)
                return 1;
        while (total < max) {
                ssize_t k;

                if (h->output_size < HOOK_OUTPUT_MAX)
                        k = read(h->output_fd, h->output + h->output_size, HOOK_OUTPUT_MAX - h->output_size);
                else
                        k = read(h->output_fd, discard, sizeof(discard));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        log_debug_errno(errno, "hooks: %s: reading output failed: %m", h->path);
                        return 1;
                }
                if (k == 0)
                        return 1;
                if (h->output_size < HOOK_OUTPUT_MAX)
                        h->output_size += (size_t) k;
                else
                        h->output_dropped += (size_t) k;
                total += (size_t) k;
        }
        return 0;
}

static void runner_free_if_requested(HookRunner *h) {
        if (h->free_requested && h->reporting == 0) {
                h->free_requested = false;
                (void) hook_runner_free(h);
        }
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HookRunner *h = userdata;

        /* At EOF a level-triggered source would fire forever; the child source finishes the hook. */
        if (runner_read_output(h, HOOK_READ_BURST) > 0)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        HookRunner *h = userdata;

        /* The child is not reaped before its child source is dispatched, so the group id is still ours. */
        log_debug("hooks: %s: timed out after %" PRIu64 " us, killing its process group", h->path,
                  h->timeout_usec);
        h->timed_out = true;
        if (kill(-h->pid, SIGKILL) < 0)
                log_debug_errno(errno, "hooks: %s: killing process group %d failed: %m", h->path, (int) h->pid);
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        HookRunner *h = userdata;
        HookResult result = {
                .path = h->path,
                .event = &h->job->event,
                .output = h->output,
        };

        /* sd-event reaps the child only after this returns, so its group id cannot have been reused: a
         * hook runs alone, so whatever it left behind in its group goes too (as under systemd-run). */
        (void) kill(-h->pid, SIGKILL);
        (void) runner_read_output(h, HOOK_DRAIN_MAX);

        /* The timeout wins even if the hook exited before the SIGKILL landed: it was due. */
        if (h->timed_out) {
                result.outcome = HOOK_TIMED_OUT;
                result.status = SIGKILL;
        } else if (si->si_code == CLD_EXITED) {
                result.outcome = HOOK_EXITED;
                result.status = si->si_status;
        } else {
                result.outcome = HOOK_KILLED;
                result.status = si->si_status;
        }
        result.output_size = h->output_size;
        result.output_dropped = h->output_dropped;
        result.duration_usec = now_usec() - h->start_usec;
        log_debug("hooks: %s: finished (outcome %d, status %d)", h->path, (int) result.outcome, result.status);

        runner_report(h, &result);
        runner_clear_running(h);
        runner_kick(h);
        runner_free_if_requested(h);
        return 0;
}

static void reap_blocking(pid_t pid) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* Return: 0 with the hook running; -errno with detail set when it could not be started. */
static int runner_spawn(HookRunner *h, const char *path, char *detail, size_t n) {
        _cleanup_(string_list_done) StringList env = {}, argv = {};
        _cleanup_close_ int null_fd = -EBADF, output_r = -EBADF, output_w = -EBADF, status_r = -EBADF,
                            status_w = -EBADF;
        const HookEvent *e = &h->job->event;
        int pipe_fds[2], child_error = 0, r;
        ssize_t k;
        pid_t pid;

        if ((r = string_list_addf(&env, "%s", HOOK_ENV_PATH)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_KEY=%s", e->key)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_URI=%s", e->uri)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_KID=%s", e->kid_hex)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_OWNER=%s", e->owner)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_REASON=%s", e->reason)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_RECEIPT=%s", e->receipt_path)) < 0 ||
            (r = string_list_addf(&env, "AGENTID_EVENT=%s", e->event)) < 0)
                goto fail_setup;

        if (h->systemd_run) {
                uint64_t t = h->timeout_usec;

                if ((r = string_list_addf(&argv, "%s", h->systemd_run)) < 0 ||
                    (r = string_list_addf(&argv, "--wait")) < 0 ||
                    (r = string_list_addf(&argv, "--pipe")) < 0 ||
                    (r = string_list_addf(&argv, "--collect")) < 0 ||
                    (r = string_list_addf(&argv, "--quiet")) < 0 ||
                    (r = string_list_addf(&argv, "--service-type=exec")) < 0 ||
                    (r = string_list_addf(&argv, "-p")) < 0)
                        goto fail_setup;
                /* The unit outlives a killed systemd-run; systemd enforces the same limit on it. */
                if (t % USEC_PER_SEC_ == 0)
                        r = string_list_addf(&argv, "RuntimeMaxSec=%" PRIu64 "s", t / USEC_PER_SEC_);
                else if (t % USEC_PER_MSEC_ == 0)
                        r = string_list_addf(&argv, "RuntimeMaxSec=%" PRIu64 "ms", t / USEC_PER_MSEC_);
                else
                        r = string_list_addf(&argv, "RuntimeMaxSec=%" PRIu64 "us", t);
                if (r < 0)
                        goto fail_setup;
                for (size_t i = 0; i < env.n; i++)
                        if ((r = string_list_addf(&argv, "--setenv=%s", env.v[i])) < 0)
                                goto fail_setup;
                if ((r = string_list_addf(&argv, "--")) < 0 || (r = string_list_addf(&argv, "%s", path)) < 0)
                        goto fail_setup;
                /* systemd-run itself needs nothing of the event; the unit gets it through --setenv. */
                for (size_t i = 1; i < env.n; i++)
                        env.v[i] = mfree(env.v[i]);
                env.n = 1;
        } else if ((r = string_list_addf(&argv, "%s", path)) < 0)
                goto fail_setup;

        null_fd = open("/dev/null", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (null_fd < 0) {
                r = -errno;
                goto fail_setup;
        }
        if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail_setup;
        }
        output_r = pipe_fds[0];
        output_w = pipe_fds[1];
        if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail_setup;
        }
        status_r = pipe_fds[0];
        status_w = pipe_fds[1];
        /* Only our end: a hook writing to a non-blocking stdout would see EAGAIN. */
        if (fcntl(output_r, F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                goto fail_setup;
        }
        if ((r = fd_move_above_stdio(&null_fd)) < 0 || (r = fd_move_above_stdio(&output_w)) < 0 ||
            (r = fd_move_above_stdio(&status_w)) < 0)
                goto fail_setup;

        h->start_usec = now_usec();
        pid = fork();
        if (pid < 0) {
                r = -errno;
                snprintf(detail, n, "fork failed: %s", strerror(-r));
                return r;
        }
        if (pid == 0)
                hook_child(null_fd, output_w, status_w, argv.v, env.v);

        null_fd = safe_close(null_fd);
        output_w = safe_close(output_w);
        status_w = safe_close(status_w);

        /* EOF: execve() succeeded and closed the child's end. */
        do
                k = read(status_r, &child_error, sizeof(child_error));
        while (k < 0 && errno == EINTR);
        if (k == (ssize_t) sizeof(child_error)) {
                reap_blocking(pid);
                r = child_error > 0 ? -child_error : -EIO;
                snprintf(detail, n, "cannot execute %s: %s", argv.v[0], strerror(-r));
                return r;
        }

        h->pid = pid;
        h->output_fd = TAKE_FD(output_r);
        h->path = strdup(path);
        if (!h->path) {
                r = -ENOMEM;
                goto fail_running;
        }
        r = sd_event_add_child(h->event, &h->child_source, pid, WEXITED, on_child, h);
        if (r < 0)
                goto fail_running;
        r = sd_event_add_io(h->event, &h->output_source, h->output_fd, EPOLLIN, on_output, h);
        if (r < 0)
                goto fail_running;
        r = sd_event_add_time_relative(h->event, &h->timer_source, CLOCK_MONOTONIC, h->timeout_usec,
                                       USEC_PER_MSEC_, on_timeout, h);
        if (r < 0)
                goto fail_running;
        (void) sd_event_source_set_description(h->child_source, "hook-child");
        (void) sd_event_source_set_description(h->output_source, "hook-output");
        (void) sd_event_source_set_description(h->timer_source, "hook-timeout");
        log_debug("hooks: %s: started as pid %d", path, (int) pid);
        return 0;

fail_running:
        /* It runs but cannot be watched: stop it rather than leave it unsupervised. */
        (void) kill(-pid, SIGKILL);
        reap_blocking(pid);
        runner_clear_running(h);
        snprintf(detail, n, "cannot watch the hook: %s", strerror(-r));
        return r;
fail_setup:
        snprintf(detail, n, "cannot prepare to run the hook: %s", strerror(-r));
        return r;
}

static void runner_begin_job(HookRunner *h) {
        char detail[HOOK_DETAIL_MAX] = "";
        HookOutcome outcome = HOOK_FAILED;
        int r;

        h->job = h->queue;
        h->queue = h->job->next;
        if (!h->queue)
                h->queue_tail = &h->queue;
        h->job->next = NULL;
        h->n_queued--;

        r = runner_read_dir(h, &outcome, detail, sizeof(detail));
        if (r < 0) {
                log_debug("hooks: %s: %s", h->dir, detail);
                runner_report_simple(h, h->dir, outcome, detail);
        }
}

static void runner_end_job(HookRunner *h) {
        _cleanup_(hook_job_freep) HookJob *job = NULL;

        if (h->n_over > 0) {
                char detail[HOOK_DETAIL_MAX];

                snprintf(detail, sizeof(detail), "%zu more files than the limit of %u; not run", h->n_over,
                         HOOKS_PER_DIR_MAX);
                h->n_over = 0;
                runner_report_simple(h, h->dir, HOOK_SKIPPED, detail);
                if (h->free_requested)
                        return;
        }
        runner_free_names(h);
        h->dir_fd = safe_close(h->dir_fd);

        /* Out of h before fn sees it, so a hook_runner_queue() from fn starts cleanly. */
        job = TAKE_PTR(h->job);
        runner_report(h, &(HookResult) { .event = &job->event });
}

static void runner_run_next(HookRunner *h) {
        _cleanup_free_ char *path = NULL;
        char detail[HOOK_DETAIL_MAX] = "";
        const char *name = h->names[h->next_name++];
        int r;

        if (asprintf(&path, "%s/%s", h->dir, name) < 0) {
                path = NULL;
                runner_report_simple(h, name, HOOK_FAILED, "out of memory");
                return;
        }
        r = hook_check_file(h->dir_fd, name, detail, sizeof(detail));
        if (r < 0) {
                log_debug("hooks: %s: skipped: %s", path, detail);
                runner_report_simple(h, path, HOOK_SKIPPED, detail);
                return;
        }
        r = runner_spawn(h, path, detail, sizeof(detail));
        if (r < 0) {
                log_debug_errno(r, "hooks: %s: %s", path, detail);
                runner_report_simple(h, path, HOOK_FAILED, detail);
        }
}

static int on_step(sd_event_source *s, void *userdata) {
        HookRunner *h = userdata;

        /* Until a hook runs (its child source continues) or there is nothing left. */
        while (!h->free_requested && h->pid <= 0) {
                if (!h->job) {
                        if (!h->queue)
                                break;
                        runner_begin_job(h);
                } else if (h->next_name < h->n_names)
                        runner_run_next(h);
                else
                        runner_end_job(h);
        }
        runner_free_if_requested(h);
        return 0;
}

int hook_runner_new(sd_event *event, const HookRunnerOptions *o, HookResultFn fn, void *userdata,
                    HookRunner **ret) {
        _cleanup_(hook_runner_freep) HookRunner *h = NULL;
        sigset_t mask;
        int r;

        if (!event || !o || !fn || !ret || !o->dir || o->dir[0] != '/' ||
            (o->systemd_run && o->systemd_run[0] != '/'))
                return -EINVAL;
        /* sd_event_add_child() needs it, and it must be blocked before threads start (see hooks.h). */
        if (pthread_sigmask(SIG_SETMASK, NULL, &mask) != 0 || sigismember(&mask, SIGCHLD) != 1)
                return -EBUSY;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->fn = fn;
        h->userdata = userdata;
        h->timeout_usec = o->timeout_usec ?: HOOK_TIMEOUT_DEFAULT_USEC;
        h->queue_tail = &h->queue;
        h->dir_fd = -EBADF;
        h->output_fd = -EBADF;
        h->dir = strdup(o->dir);
        if (!h->dir)
                return -ENOMEM;
        if (o->systemd_run) {
                h->systemd_run = strdup(o->systemd_run);
                if (!h->systemd_run)
                        return -ENOMEM;
        }
        r = sd_event_add_defer(event, &h->step_source, on_step, h);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(h->step_source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->step_source, "hook-step");

        *ret = TAKE_PTR(h);
        return 0;
}

int hook_runner_queue(HookRunner *h, const HookEvent *e) {
        _cleanup_(hook_job_freep) HookJob *j = NULL;
        const char *fields[ELEMENTSOF(j->fields)];

        if (!h || !e)
                return -EINVAL;
        if (h->freeing || h->free_requested)
                return -ESHUTDOWN;
        fields[0] = e->event;
        fields[1] = e->key;
        fields[2] = e->uri;
        fields[3] = e->kid_hex;
        fields[4] = e->owner;
        fields[5] = e->reason;
        fields[6] = e->receipt_path;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (!fields[i])
                        return -EINVAL;
        if (!hook_event_name_valid(e->event))
                return -EINVAL;
        if (h->n_queued >= HOOK_QUEUE_MAX)
                return -EBUSY;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                j->fields[i] = strdup(fields[i]);
                if (!j->fields[i])
                        return -ENOMEM;
        }
        j->event = (HookEvent) {
                .event = j->fields[0],
                .key = j->fields[1],
                .uri = j->fields[2],
                .kid_hex = j->fields[3],
                .owner = j->fields[4],
                .reason = j->fields[5],
                .receipt_path = j->fields[6],
        };

        *h->queue_tail = TAKE_PTR(j);
        h->queue_tail = &(*h->queue_tail)->next;
        h->n_queued++;
        runner_kick(h);
        return 0;
}

bool hook_runner_busy(const HookRunner *h) {
        return h && (h->job || h->queue);
}

static void runner_cancel_all(HookRunner *h) {
        char detail[HOOK_DETAIL_MAX];

        if (h->pid > 0) {
                HookResult result = {
                        .path = h->path,
                        .event = &h->job->event,
                        .outcome = HOOK_CANCELLED,
                        .detail = "the runner was stopped while the hook ran",
                        .output = h->output,
                };
                pid_t pid = h->pid;

                (void) kill(-pid, SIGKILL);
                (void) runner_read_output(h, HOOK_DRAIN_MAX);
                /* Reaped here: no loop iteration will dispatch its child source any more. */
                h->child_source = sd_event_source_disable_unref(h->child_source);
                reap_blocking(pid);
                result.output_size = h->output_size;
                result.output_dropped = h->output_dropped;
                result.duration_usec = now_usec() - h->start_usec;
                runner_report(h, &result);
                runner_clear_running(h);
        }

        if (h->job) {
                _cleanup_(hook_job_freep) HookJob *job = NULL;
                size_t left = h->n_names - h->next_name + h->n_over;

                if (left > 0) {
                        snprintf(detail, sizeof(detail), "%zu more hooks not run: the runner was stopped", left);
                        runner_report_simple(h, h->dir, HOOK_CANCELLED, detail);
                }
                runner_free_names(h);
                h->dir_fd = safe_close(h->dir_fd);
                job = TAKE_PTR(h->job);
                runner_report(h, &(HookResult) { .event = &job->event });
        }

        while (h->queue) {
                _cleanup_(hook_job_freep) HookJob *job = h->queue;

                h->queue = job->next;
                h->n_queued--;
                runner_report(h, &(HookResult) {
                        .path = h->dir,
                        .event = &job->event,
                        .outcome = HOOK_CANCELLED,
                        .detail = "not run: the runner was stopped",
                });
                runner_report(h, &(HookResult) { .event = &job->event });
        }
        h->queue_tail = &h->queue;
}

HookRunner *hook_runner_free(HookRunner *h) {
        if (!h || h->freeing)
                return NULL;
        /* From fn: the caller still uses h on the way out; the dispatcher frees it when fn returns. */
        if (h->reporting > 0) {
                h->free_requested = true;
                return NULL;
        }
        h->freeing = true;

        runner_cancel_all(h);
        h->step_source = sd_event_source_disable_unref(h->step_source);
        h->event = sd_event_unref(h->event);
        free(h->dir);
        free(h->systemd_run);
        free(h);
        return NULL;
}

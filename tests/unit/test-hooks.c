/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The offboarding hook runner (suite "unit"; needs root for chown and root-owned hook files): order,
 * environment, output capture, exit statuses and signals, the timeout, the checks on files, on the
 * directory and on its path (ancestors, symbolic links), queueing, cancellation, re-entrant callbacks
 * and the systemd-run command line (against a fake systemd-run). Each test gets a fresh directory under
 * /tmp with small /bin/sh hooks.
 */

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "governance/hooks.h"

#define REPORTS_MAX 2100U

typedef struct Report {
        char *path;                     /* NULL: the end of an event */
        char *key;
        HookOutcome outcome;
        int status;
        char *detail;
        char *output;
        size_t output_size, output_dropped;
        uint64_t duration_usec;
} Report;

typedef struct Ctx {
        char root[PATH_MAX];
        char hooks[PATH_MAX];
        sd_event *event;
        HookRunner *runner;
        Report reports[REPORTS_MAX];
        size_t n_reports, n_done;

        /* Re-entrancy knobs, acted on from the callback. */
        const HookEvent *queue_on_first_done;
        size_t free_at_report;          /* 1-based; 0 = never */
        HookRunner *freed_runner;
        int queue_while_freeing;
} Ctx;

static const HookEvent event_a = {
        .event = "destroy",
        .key = "agent-a",
        .uri = "agentid://host-1/agent-a",
        .kid_hex = "00112233445566778899aabbccddeeff",
        .owner = "1000",
        .reason = "offboarded by admin; ticket 42",
        .receipt_path = "/var/lib/agentid/receipts/agent-a.cbor",
};

static const HookEvent event_b = {
        .event = "rotate",
        .key = "agent-b",
        .uri = "agentid://host-1/agent-b",
        .kid_hex = "ffeeddccbbaa99887766554433221100",
        .owner = "0",
        .reason = "",
        .receipt_path = "/var/lib/agentid/receipts/agent-b.cbor",
};

static uint64_t now_usec(void) {
        struct timespec ts;

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static char *strdup_or_null(const char *s) {
        char *copy;

        if (!s)
                return NULL;
        copy = strdup(s);
        assert_non_null(copy);
        return copy;
}

static void on_result(const HookResult *r, void *userdata) {
        Ctx *c = userdata;
        Report *rep;

        assert_true(c->n_reports < REPORTS_MAX);
        assert_non_null(r->event);
        rep = &c->reports[c->n_reports++];
        *rep = (Report) {
                .path = strdup_or_null(r->path),
                .key = strdup_or_null(r->event->key),
                .outcome = r->outcome,
                .status = r->status,
                .detail = strdup_or_null(r->detail),
                .output = memdup_cstr(r->output, r->output_size),
                .output_size = r->output_size,
                .output_dropped = r->output_dropped,
                .duration_usec = r->duration_usec,
        };
        assert_non_null(rep->output);
        assert_true(r->output_size <= HOOK_OUTPUT_MAX);

        if (c->freed_runner && c->queue_while_freeing == 0)
                c->queue_while_freeing = hook_runner_queue(c->freed_runner, &event_a);
        if (c->free_at_report == c->n_reports) {
                /* Takes effect when we return; the rest arrives as cancellations. */
                c->freed_runner = c->runner;
                c->runner = hook_runner_free(c->runner);
        }
        if (!r->path) {
                c->n_done++;
                if (c->n_done == 1 && c->queue_on_first_done)
                        assert_int_equal(hook_runner_queue(c->runner, c->queue_on_first_done), 0);
        }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int setup(void **state) {
        Ctx *c = calloc(1, sizeof(Ctx));

        assert_non_null(c);
        snprintf(c->root, sizeof(c->root), "/tmp/agentid-test-hooks-XXXXXX");
        assert_non_null(mkdtemp(c->root));
        assert_int_equal(chmod(c->root, 0755), 0);
        snprintf(c->hooks, sizeof(c->hooks), "%s/offboard.d", c->root);
        assert_int_equal(mkdir(c->hooks, 0755), 0);
        assert_int_equal(chmod(c->hooks, 0755), 0);
        assert_int_equal(sd_event_new(&c->event), 0);
        *state = c;
        return 0;
}

static int teardown(void **state) {
        Ctx *c = *state;

        c->runner = hook_runner_free(c->runner);
        for (size_t i = 0; i < c->n_reports; i++) {
                free(c->reports[i].path);
                free(c->reports[i].key);
                free(c->reports[i].detail);
                free(c->reports[i].output);
        }
        c->event = sd_event_unref(c->event);
        /* Orphans of killed hooks come to us (subreaper). */
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        assert_int_equal(nftw(c->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(c);
        return 0;
}

static void write_file(const char *path, const char *content, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t n = strlen(content);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, n), (ssize_t) n);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(close(fd), 0);
}

_printf_(4, 5) static void add_hook(Ctx *c, const char *name, mode_t mode, const char *fmt, ...) {
        char path[PATH_MAX + 64], *body;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&body, fmt, ap);
        va_end(ap);
        assert_true(k >= 0);
        snprintf(path, sizeof(path), "%s/%s", c->hooks, name);
        write_file(path, body, mode);
        free(body);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
        char buf[65536];
        int in = open(from, O_RDONLY | O_CLOEXEC);
        int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ssize_t k;

        assert_true(in >= 0 && out >= 0);
        while ((k = read(in, buf, sizeof(buf))) > 0)
                assert_int_equal(write(out, buf, (size_t) k), k);
        assert_int_equal(k, 0);
        assert_int_equal(fchmod(out, mode), 0);
        close(in);
        assert_int_equal(close(out), 0);
}

static char *read_text(const char *path) {
        FILE *f = fopen(path, "re");
        char *s = NULL;
        size_t n = 0;

        if (!f)
                return NULL;
        assert_true(getdelim(&s, &n, '\0', f) >= 0 || feof(f));
        fclose(f);
        return s ?: strdup("");
}

static bool file_exists(const char *path) {
        return access(path, F_OK) == 0;
}

static void new_runner(Ctx *c, const char *dir, uint64_t timeout_usec, const char *systemd_run) {
        HookRunnerOptions o = { .dir = dir, .timeout_usec = timeout_usec, .systemd_run = systemd_run };

        assert_int_equal(hook_runner_new(c->event, &o, on_result, c, &c->runner), 0);
}

static void run_until_done(Ctx *c, size_t n_done) {
        uint64_t deadline = now_usec() + 60U * 1000000U;

        while (c->n_done < n_done) {
                assert_true(now_usec() < deadline);
                assert_true(sd_event_run(c->event, 100 * 1000) >= 0);
        }
        /* Nothing is left over for the next iteration to report. */
        assert_true(sd_event_run(c->event, 0) >= 0);
        assert_int_equal(c->n_done, n_done);
}

static void run_and_collect(Ctx *c, const HookEvent *e) {
        assert_int_equal(hook_runner_queue(c->runner, e), 0);
        assert_true(hook_runner_busy(c->runner));
        run_until_done(c, c->n_done + 1);
        assert_false(hook_runner_busy(c->runner));
}

static void assert_report(const Report *r, const char *name_or_dir, HookOutcome outcome, int status) {
        const char *slash;

        assert_non_null(r->path);
        slash = strrchr(r->path, '/');
        assert_non_null(slash);
        if (name_or_dir[0] == '/')
                assert_string_equal(r->path, name_or_dir);
        else
                assert_string_equal(slash + 1, name_or_dir);
        assert_int_equal(r->outcome, outcome);
        assert_int_equal(r->status, status);
}

static void assert_done(const Report *r, const char *key) {
        assert_null(r->path);
        assert_string_equal(r->key, key);
}

static void assert_detail_contains(const Report *r, const char *needle) {
        assert_non_null(r->detail);
        if (!strstr(r->detail, needle))
                fail_msg("detail \"%s\" lacks \"%s\"", r->detail, needle);
}

static pid_t read_pid(const char *path) {
        _cleanup_free_ char *s = read_text(path);

        assert_non_null(s);
        return (pid_t) atoi(s);
}

/* The killed group's members die asynchronously and, orphaned, are reaped by us (subreaper). */
static void assert_group_gone(pid_t pgid) {
        uint64_t deadline = now_usec() + 5U * 1000000U;

        assert_true(pgid > 1);
        for (;;) {
                while (waitpid(-pgid, NULL, WNOHANG) > 0)
                        ;
                if (kill(-pgid, 0) < 0 && errno == ESRCH)
                        return;
                assert_true(now_usec() < deadline);
                usleep(10 * 1000);
        }
}

static void test_new_invalid(void **state) {
        Ctx *c = *state;
        HookRunnerOptions o = { .dir = c->hooks };
        HookRunner *h = NULL;
        sigset_t chld;

        assert_int_equal(hook_runner_new(NULL, &o, on_result, c, &h), -EINVAL);
        assert_int_equal(hook_runner_new(c->event, NULL, on_result, c, &h), -EINVAL);
        assert_int_equal(hook_runner_new(c->event, &o, NULL, c, &h), -EINVAL);
        o.dir = "relative/offboard.d";
        assert_int_equal(hook_runner_new(c->event, &o, on_result, c, &h), -EINVAL);
        o.dir = c->hooks;
        o.systemd_run = "systemd-run";
        assert_int_equal(hook_runner_new(c->event, &o, on_result, c, &h), -EINVAL);
        o.systemd_run = NULL;

        /* sd_event_add_child() would refuse later; the runner says so up front. */
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        assert_int_equal(sigprocmask(SIG_UNBLOCK, &chld, NULL), 0);
        assert_int_equal(hook_runner_new(c->event, &o, on_result, c, &h), -EBUSY);
        assert_int_equal(sigprocmask(SIG_BLOCK, &chld, NULL), 0);
        assert_null(h);

        assert_int_equal(hook_runner_new(c->event, &o, on_result, c, &h), 0);
        assert_false(hook_runner_busy(h));
        assert_null(hook_runner_free(h));
        assert_null(hook_runner_free(NULL));
        assert_int_equal(c->n_reports, 0);
}

static void test_order(void **state) {
        Ctx *c = *state;
        const char *names[] = { "01-a", "02-b", "10-c", "9-z", "B-upper", "a-lower" };
        char log[PATH_MAX + 16];
        _cleanup_free_ char *text = NULL;

        snprintf(log, sizeof(log), "%s/order.log", c->root);
        /* Created in an order different from the expected one. */
        for (size_t i = ELEMENTSOF(names); i > 0; i--)
                add_hook(c, names[i - 1], 0755, "#!/bin/sh\necho %s >> %s\n", names[i - 1], log);
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);

        text = read_text(log);
        assert_string_equal(text, "01-a\n02-b\n10-c\n9-z\nB-upper\na-lower\n");
        assert_int_equal(c->n_reports, ELEMENTSOF(names) + 1);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char expected[PATH_MAX + 16];

                assert_report(&c->reports[i], names[i], HOOK_EXITED, 0);
                snprintf(expected, sizeof(expected), "%s/%s", c->hooks, names[i]);
                assert_string_equal(c->reports[i].path, expected);
                assert_string_equal(c->reports[i].key, "agent-a");
                assert_null(c->reports[i].detail);
                assert_int_equal(c->reports[i].output_size, 0);
        }
        assert_done(&c->reports[ELEMENTSOF(names)], "agent-a");
}

static void test_environment(void **state) {
        Ctx *c = *state;
        char path[PATH_MAX + 16];

        /* env itself, not a shell script: a shell adds PWD. */
        snprintf(path, sizeof(path), "%s/50-env", c->hooks);
        copy_file("/usr/bin/env", path, 0755);
        assert_int_equal(setenv("AGENTID_TEST_LEAK", "must-not-reach-hooks", 1), 0);
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);
        run_and_collect(c, &event_b);
        assert_int_equal(unsetenv("AGENTID_TEST_LEAK"), 0);

        assert_int_equal(c->n_reports, 4);
        assert_report(&c->reports[0], "50-env", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].output,
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                            "AGENTID_KEY=agent-a\n"
                            "AGENTID_URI=agentid://host-1/agent-a\n"
                            "AGENTID_KID=00112233445566778899aabbccddeeff\n"
                            "AGENTID_OWNER=1000\n"
                            "AGENTID_REASON=offboarded by admin; ticket 42\n"
                            "AGENTID_RECEIPT=/var/lib/agentid/receipts/agent-a.cbor\n"
                            "AGENTID_EVENT=destroy\n");
        assert_done(&c->reports[1], "agent-a");
        assert_report(&c->reports[2], "50-env", HOOK_EXITED, 0);
        assert_string_equal(c->reports[2].output,
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                            "AGENTID_KEY=agent-b\n"
                            "AGENTID_URI=agentid://host-1/agent-b\n"
                            "AGENTID_KID=ffeeddccbbaa99887766554433221100\n"
                            "AGENTID_OWNER=0\n"
                            "AGENTID_REASON=\n"
                            "AGENTID_RECEIPT=/var/lib/agentid/receipts/agent-b.cbor\n"
                            "AGENTID_EVENT=rotate\n");
        assert_done(&c->reports[3], "agent-b");
}

static void test_output(void **state) {
        Ctx *c = *state;

        add_hook(c, "01-both", 0755, "#!/bin/sh\necho out\necho err >&2\necho out2\n");
        add_hook(c, "02-cut", 0755, "#!/bin/sh\nhead -c 5000 /dev/zero | tr '\\000' x\n");
        /* Far more than a pipe holds: the hook blocks unless the runner keeps reading. */
        add_hook(c, "03-flood", 0755, "#!/bin/sh\nhead -c 1048576 /dev/zero\necho done >&2\nexit 7\n");
        add_hook(c, "04-quiet", 0755, "#!/bin/sh\nexec >&- 2>&-\nsleep 0.2\nexit 0\n");
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);

        assert_int_equal(c->n_reports, 5);
        assert_report(&c->reports[0], "01-both", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].output, "out\nerr\nout2\n");
        assert_int_equal(c->reports[0].output_dropped, 0);

        assert_report(&c->reports[1], "02-cut", HOOK_EXITED, 0);
        assert_int_equal(c->reports[1].output_size, HOOK_OUTPUT_MAX);
        assert_int_equal(c->reports[1].output_dropped, 5000 - HOOK_OUTPUT_MAX);
        for (size_t i = 0; i < HOOK_OUTPUT_MAX; i++)
                assert_int_equal(c->reports[1].output[i], 'x');

        assert_report(&c->reports[2], "03-flood", HOOK_EXITED, 7);
        assert_int_equal(c->reports[2].output_size, HOOK_OUTPUT_MAX);
        assert_int_equal(c->reports[2].output_dropped, 1048576 + strlen("done\n") - HOOK_OUTPUT_MAX);
        assert_int_equal(c->reports[2].output[0], 0);

        /* Closing its output early does not end a hook; its exit does. */
        assert_report(&c->reports[3], "04-quiet", HOOK_EXITED, 0);
        assert_int_equal(c->reports[3].output_size, 0);
        assert_true(c->reports[3].duration_usec >= 150 * 1000);
        assert_done(&c->reports[4], "agent-a");
}

/* Valgrind cannot survive an execve() that fails after its own checks passed (a missing interpreter). */
static bool under_valgrind(void) {
        const char *p = getenv("LD_PRELOAD");

        return p && strstr(p, "vgpreload");
}

static void test_exit_signals_exec_failure(void **state) {
        Ctx *c = *state;
        bool valgrind = under_valgrind();

        add_hook(c, "01-exit", 0755, "#!/bin/sh\necho failing\nexit 3\n");
        /* main() blocks SIGUSR1 and ignores SIGUSR2: the hook must get neither the mask nor SIG_IGN. */
        add_hook(c, "02-usr1", 0755, "#!/bin/sh\nkill -USR1 $$\nsleep 5\nexit 0\n");
        add_hook(c, "03-usr2", 0755, "#!/bin/sh\nkill -USR2 $$\nsleep 5\nexit 0\n");
        add_hook(c, "04-noexec", 0755, "this is not a program\n");
        if (!valgrind)
                add_hook(c, "05-badinterp", 0755, "#!/nonexistent/interpreter\n");
        add_hook(c, "06-ok", 0755, "#!/bin/sh\nexit 0\n");
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);

        assert_int_equal(c->n_reports, valgrind ? 6 : 7);
        assert_report(&c->reports[0], "01-exit", HOOK_EXITED, 3);
        assert_string_equal(c->reports[0].output, "failing\n");
        assert_report(&c->reports[1], "02-usr1", HOOK_KILLED, SIGUSR1);
        assert_true(c->reports[1].duration_usec < 4U * 1000000U);
        assert_report(&c->reports[2], "03-usr2", HOOK_KILLED, SIGUSR2);
        assert_report(&c->reports[3], "04-noexec", HOOK_FAILED, 0);
        assert_detail_contains(&c->reports[3], strerror(ENOEXEC));
        if (!valgrind) {
                assert_report(&c->reports[4], "05-badinterp", HOOK_FAILED, 0);
                assert_detail_contains(&c->reports[4], strerror(ENOENT));
        }
        /* A failure does not stop the others. */
        assert_report(&c->reports[c->n_reports - 2], "06-ok", HOOK_EXITED, 0);
        assert_done(&c->reports[c->n_reports - 1], "agent-a");
}

static void test_timeout(void **state) {
        Ctx *c = *state;
        char pid_file[PATH_MAX + 16], after[PATH_MAX + 16];
        uint64_t start;
        pid_t pgid;

        snprintf(pid_file, sizeof(pid_file), "%s/pgid", c->root);
        snprintf(after, sizeof(after), "%s/after", c->root);
        add_hook(c, "01-slow", 0755, "#!/bin/sh\necho started\necho $$ > %s\nsleep 10\necho late > %s\n", pid_file,
                 after);
        add_hook(c, "02-next", 0755, "#!/bin/sh\necho next\n");
        new_runner(c, c->hooks, 200 * 1000, NULL);
        start = now_usec();
        run_and_collect(c, &event_a);
        assert_true(now_usec() - start < 5U * 1000000U);

        assert_int_equal(c->n_reports, 3);
        assert_report(&c->reports[0], "01-slow", HOOK_TIMED_OUT, SIGKILL);
        assert_string_equal(c->reports[0].output, "started\n");
        assert_true(c->reports[0].duration_usec >= 200 * 1000);
        assert_true(c->reports[0].duration_usec < 5U * 1000000U);
        assert_report(&c->reports[1], "02-next", HOOK_EXITED, 0);
        assert_string_equal(c->reports[1].output, "next\n");
        assert_done(&c->reports[2], "agent-a");

        /* The sleep was in the hook's group, and went with it. */
        pgid = read_pid(pid_file);
        assert_group_gone(pgid);
        assert_false(file_exists(after));
}

static void test_leftovers_killed(void **state) {
        Ctx *c = *state;
        char pid_file[PATH_MAX + 16];

        snprintf(pid_file, sizeof(pid_file), "%s/bg", c->root);
        /* The background sleep keeps the output pipe open; the hook ends when its main process does. */
        add_hook(c, "01-bg", 0755, "#!/bin/sh\nsleep 30 &\necho $$ > %s\necho spawned\n", pid_file);
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);

        assert_int_equal(c->n_reports, 2);
        assert_report(&c->reports[0], "01-bg", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].output, "spawned\n");
        assert_true(c->reports[0].duration_usec < 5U * 1000000U);
        assert_group_gone(read_pid(pid_file));
}

static void test_descriptors_and_group(void **state) {
        Ctx *c = *state;
        int fd;

        /* Not close-on-exec, as a careless library might leave one. (dash keeps the script at fd 10+.) */
        fd = open("/dev/null", O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(dup2(fd, 42), 42);
        close(fd);

        add_hook(c, "01-fds", 0755,
                 "#!/bin/sh\n"
                 "readlink /proc/$$/fd/0\n"
                 "for n in 0 1 2; do [ -e /proc/$$/fd/$n ] && echo fd $n; done\n"
                 "for n in 3 4 5 6 7 8 9 42; do [ -e /proc/$$/fd/$n ] && echo leaked $n; done\n"
                 "set -- $(cat /proc/$$/stat)\n"
                 "[ \"$5\" = \"$$\" ] && echo own-group\n"
                 "pwd\n");
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);
        close(42);

        assert_int_equal(c->n_reports, 2);
        assert_report(&c->reports[0], "01-fds", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].output, "/dev/null\nfd 0\nfd 1\nfd 2\nown-group\n/\n");
}

static void test_file_checks(void **state) {
        Ctx *c = *state;
        char path[PATH_MAX + 64], target[PATH_MAX + 64], marker[PATH_MAX + 16];

        snprintf(marker, sizeof(marker), "%s/marker", c->root);
        add_hook(c, "01-ok", 0755, "#!/bin/sh\necho ok\n");
        add_hook(c, "02-groupw", 0775, "#!/bin/sh\ntouch %s\n", marker);
        add_hook(c, "03-otherw", 0757, "#!/bin/sh\ntouch %s\n", marker);
        add_hook(c, "04-nobody", 0755, "#!/bin/sh\ntouch %s\n", marker);
        snprintf(path, sizeof(path), "%s/04-nobody", c->hooks);
        assert_int_equal(chown(path, 65534, 65534), 0);
        snprintf(target, sizeof(target), "%s/01-ok", c->hooks);
        snprintf(path, sizeof(path), "%s/05-link", c->hooks);
        assert_int_equal(symlink(target, path), 0);
        add_hook(c, "06-noexec", 0644, "#!/bin/sh\ntouch %s\n", marker);
        add_hook(c, "07-groupx", 0654, "#!/bin/sh\ntouch %s\n", marker);
        snprintf(path, sizeof(path), "%s/08-subdir", c->hooks);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/09-fifo", c->hooks);
        assert_int_equal(mkfifo(path, 0755), 0);
        /* Ignored silently, however runnable. */
        add_hook(c, ".hidden", 0755, "#!/bin/sh\ntouch %s\n", marker);
        add_hook(c, "10-backup~", 0755, "#!/bin/sh\ntouch %s\n", marker);
        add_hook(c, "11-ok", 0700, "#!/bin/sh\necho ok2\n");
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);

        assert_int_equal(c->n_reports, 11);
        assert_report(&c->reports[0], "01-ok", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].output, "ok\n");
        assert_report(&c->reports[1], "02-groupw", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[1], "writable by group or others (mode 0775)");
        assert_report(&c->reports[2], "03-otherw", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[2], "writable by group or others (mode 0757)");
        assert_report(&c->reports[3], "04-nobody", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[3], "owned by uid 65534");
        assert_report(&c->reports[4], "05-link", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[4], "symbolic link");
        assert_report(&c->reports[5], "06-noexec", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[5], "not executable");
        assert_report(&c->reports[6], "07-groupx", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[6], "not executable");
        assert_report(&c->reports[7], "08-subdir", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[7], "not a regular file");
        assert_report(&c->reports[8], "09-fifo", HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[8], "not a regular file");
        assert_report(&c->reports[9], "11-ok", HOOK_EXITED, 0);
        assert_string_equal(c->reports[9].output, "ok2\n");
        for (size_t i = 1; i <= 8; i++) {
                assert_int_equal(c->reports[i].output_size, 0);
                assert_int_equal(c->reports[i].duration_usec, 0);
        }
        assert_done(&c->reports[10], "agent-a");
        assert_false(file_exists(marker));
}

static void test_directory_checks(void **state) {
        Ctx *c = *state;
        char marker[PATH_MAX + 16];
        static const struct {
                mode_t mode;
                uid_t uid;
                const char *detail;
        } cases[] = {
                { 0757, 0, "directory writable by group or others (mode 0757)" },
                { 0775, 0, "directory writable by group or others (mode 0775)" },
                { 0755, 65534, "directory owned by uid 65534" },
        };

        snprintf(marker, sizeof(marker), "%s/marker", c->root);
        add_hook(c, "01-would-run", 0755, "#!/bin/sh\ntouch %s\n", marker);
        new_runner(c, c->hooks, 0, NULL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(chmod(c->hooks, cases[i].mode), 0);
                assert_int_equal(chown(c->hooks, cases[i].uid, 0), 0);
                run_and_collect(c, &event_a);
                assert_int_equal(c->n_reports, 2 * (i + 1));
                assert_report(&c->reports[2 * i], c->hooks, HOOK_SKIPPED, 0);
                assert_detail_contains(&c->reports[2 * i], cases[i].detail);
                assert_done(&c->reports[2 * i + 1], "agent-a");
        }
        assert_false(file_exists(marker));

        /* Fixed between two offboardings: the directory is read when an event starts. */
        assert_int_equal(chown(c->hooks, 0, 0), 0);
        assert_int_equal(chmod(c->hooks, 0755), 0);
        run_and_collect(c, &event_b);
        assert_report(&c->reports[6], "01-would-run", HOOK_EXITED, 0);
        assert_done(&c->reports[7], "agent-b");
        assert_true(file_exists(marker));
}

static void make_dir(const char *path, mode_t mode, uid_t uid) {
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(chown(path, uid, 0), 0);
        /* Not through mkdir(): the umask would take the group and other bits away. */
        assert_int_equal(chmod(path, mode), 0);
}

/* Runs the hooks of dir for one event with a fresh runner; returns the event's first report. */
static const Report *run_dir(Ctx *c, const char *dir) {
        size_t first = c->n_reports;

        new_runner(c, dir, 0, NULL);
        run_and_collect(c, &event_a);
        c->runner = hook_runner_free(c->runner);
        return &c->reports[first];
}

/* The whole directory is skipped: one report naming it, then the end of the event. */
static void assert_dir_skipped(Ctx *c, const char *dir, const char *detail) {
        size_t first = c->n_reports;
        const Report *r = run_dir(c, dir);

        assert_int_equal(c->n_reports, first + 2);
        assert_report(r, dir, HOOK_SKIPPED, 0);
        assert_detail_contains(r, detail);
        assert_int_equal(r->output_size, 0);
        assert_done(r + 1, "agent-a");
}

static void assert_dir_runs(Ctx *c, const char *dir, const char *name) {
        size_t first = c->n_reports;
        const Report *r = run_dir(c, dir);

        assert_int_equal(c->n_reports, first + 2);
        assert_report(r, name, HOOK_EXITED, 0);
        assert_string_equal(r->output, "ran\n");
        assert_done(r + 1, "agent-a");
}

static void test_ancestor_owner(void **state) {
        Ctx *c = *state;
        char user[PATH_MAX], mid[PATH_MAX + 8], dir[PATH_MAX + 32], hook[PATH_MAX + 48], marker[PATH_MAX + 16],
                body[PATH_MAX + 64], detail[2 * PATH_MAX];

        /* root/user (uid 65534) / mid (root) / offboard.d (root): not only the parent is checked. */
        snprintf(user, sizeof(user), "%s/user", c->root);
        snprintf(mid, sizeof(mid), "%s/mid", user);
        snprintf(dir, sizeof(dir), "%s/offboard.d", mid);
        snprintf(hook, sizeof(hook), "%s/01-hook", dir);
        snprintf(marker, sizeof(marker), "%s/marker", c->root);
        make_dir(user, 0755, 65534);
        make_dir(mid, 0755, 0);
        make_dir(dir, 0755, 0);
        snprintf(body, sizeof(body), "#!/bin/sh\ntouch %s\necho ran\n", marker);
        write_file(hook, body, 0755);

        snprintf(detail, sizeof(detail), "ancestor %s owned by uid 65534, not root", user);
        assert_dir_skipped(c, dir, detail);
        assert_false(file_exists(marker));

        /* Checked when each event starts: fixed in between, the next event of the same runner runs the
         * hooks. */
        new_runner(c, dir, 0, NULL);
        run_and_collect(c, &event_a);
        assert_report(&c->reports[2], dir, HOOK_SKIPPED, 0);
        assert_done(&c->reports[3], "agent-a");
        assert_int_equal(chown(user, 0, 0), 0);
        run_and_collect(c, &event_b);
        assert_int_equal(c->n_reports, 6);
        assert_report(&c->reports[4], "01-hook", HOOK_EXITED, 0);
        assert_done(&c->reports[5], "agent-b");
        assert_true(file_exists(marker));
        c->runner = hook_runner_free(c->runner);

        /* And broken again: an ancestor given away after start-up counts too. */
        assert_int_equal(chown(mid, 65534, 65534), 0);
        snprintf(detail, sizeof(detail), "ancestor %s owned by uid 65534, not root", mid);
        assert_dir_skipped(c, dir, detail);
}

static void test_ancestor_writable(void **state) {
        Ctx *c = *state;
        static const mode_t modes[] = { 0775, 0757, 0777, 0770, 0702 };
        char anc[PATH_MAX], dir[PATH_MAX + 16], hook[PATH_MAX + 32], detail[2 * PATH_MAX];

        snprintf(anc, sizeof(anc), "%s/shared", c->root);
        snprintf(dir, sizeof(dir), "%s/offboard.d", anc);
        snprintf(hook, sizeof(hook), "%s/01-hook", dir);
        make_dir(anc, 0755, 0);
        make_dir(dir, 0755, 0);
        write_file(hook, "#!/bin/sh\necho ran\n", 0755);
        assert_dir_runs(c, dir, "01-hook");

        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                assert_int_equal(chmod(anc, modes[i]), 0);
                snprintf(detail, sizeof(detail),
                         "ancestor %s writable by group or others without the sticky bit (mode %04o)", anc,
                         (unsigned) modes[i]);
                assert_dir_skipped(c, dir, detail);
        }

        assert_int_equal(chmod(anc, 0755), 0);
        assert_dir_runs(c, dir, "01-hook");
}

static void test_ancestor_sticky(void **state) {
        Ctx *c = *state;
        char anc[PATH_MAX], dir[PATH_MAX + 16], hook[PATH_MAX + 32], detail[2 * PATH_MAX];
        struct stat st;

        /* Every test's hooks live under /tmp, normally root's and 1777: this one says so explicitly. */
        add_hook(c, "01-hook", 0755, "#!/bin/sh\necho ran\n");
        assert_int_equal(lstat("/tmp", &st), 0);
        if (st.st_uid == 0 && (st.st_mode & 07777) == 01777)
                assert_dir_runs(c, c->hooks, "01-hook");

        snprintf(anc, sizeof(anc), "%s/tmp-like", c->root);
        snprintf(dir, sizeof(dir), "%s/offboard.d", anc);
        snprintf(hook, sizeof(hook), "%s/01-hook", dir);
        make_dir(anc, 01777, 0);
        make_dir(dir, 0755, 0);
        write_file(hook, "#!/bin/sh\necho ran\n", 0755);

        /* Sticky and root's: only root can rename or remove root's entries, writable or not. */
        assert_dir_runs(c, dir, "01-hook");
        assert_int_equal(chmod(anc, 01775), 0);
        assert_dir_runs(c, dir, "01-hook");

        /* The sticky bit does not help a directory that is not root's: its owner can swap anything. */
        assert_int_equal(chown(anc, 65534, 0), 0);
        assert_int_equal(chmod(anc, 01777), 0);
        snprintf(detail, sizeof(detail), "ancestor %s owned by uid 65534, not root", anc);
        assert_dir_skipped(c, dir, detail);
        assert_int_equal(chown(anc, 0, 0), 0);
        assert_int_equal(chmod(anc, 01777), 0);

        /* Nor the hook directory itself: in a sticky directory anyone who can write may add a hook. */
        assert_int_equal(chmod(dir, 01777), 0);
        assert_dir_skipped(c, dir, "directory writable by group or others (mode 1777)");
        assert_int_equal(chmod(dir, 01755), 0);
        assert_dir_runs(c, dir, "01-hook");
}

static void test_path_not_resolved(void **state) {
        Ctx *c = *state;
        char real[PATH_MAX], dir[PATH_MAX + 16], hook[PATH_MAX + 32], link[PATH_MAX + 16], path[PATH_MAX + 64],
                detail[2 * PATH_MAX];

        snprintf(real, sizeof(real), "%s/real", c->root);
        snprintf(dir, sizeof(dir), "%s/offboard.d", real);
        snprintf(hook, sizeof(hook), "%s/01-hook", dir);
        make_dir(real, 0755, 0);
        make_dir(dir, 0755, 0);
        write_file(hook, "#!/bin/sh\necho ran\n", 0755);
        assert_dir_runs(c, dir, "01-hook");

        /* A symbolic link among the ancestors, even a root-owned one to a good directory. */
        snprintf(link, sizeof(link), "%s/link", c->root);
        assert_int_equal(symlink(real, link), 0);
        snprintf(path, sizeof(path), "%s/offboard.d", link);
        snprintf(detail, sizeof(detail), "%s is a symbolic link (not followed)", link);
        assert_dir_skipped(c, path, detail);

        /* The last component a symbolic link. */
        snprintf(link, sizeof(link), "%s/hooks-link", c->root);
        assert_int_equal(symlink(dir, link), 0);
        snprintf(detail, sizeof(detail), "%s is a symbolic link (not followed)", link);
        assert_dir_skipped(c, link, detail);

        /* "." and ".." are not resolved either. */
        snprintf(path, sizeof(path), "%s/./offboard.d", real);
        assert_dir_skipped(c, path, "\".\" or \"..\" in the path");
        snprintf(path, sizeof(path), "%s/../real/offboard.d", real);
        assert_dir_skipped(c, path, "\".\" or \"..\" in the path");

        /* Repeated and trailing slashes are only separators. */
        snprintf(path, sizeof(path), "/%s//offboard.d/", real);
        assert_dir_runs(c, path, "01-hook");

        /* A missing ancestor is a missing directory: no hooks, nothing to report. */
        snprintf(path, sizeof(path), "%s/missing/offboard.d", c->root);
        {
                size_t first = c->n_reports;
                const Report *r = run_dir(c, path);

                assert_int_equal(c->n_reports, first + 1);
                assert_done(r, "agent-a");
        }

        /* An ancestor that is a file cannot be opened, and is recorded as such. */
        snprintf(path, sizeof(path), "%s/01-hook/offboard.d", dir);
        {
                size_t first = c->n_reports;
                const Report *r = run_dir(c, path);

                assert_int_equal(c->n_reports, first + 2);
                assert_report(r, path, HOOK_FAILED, 0);
                assert_detail_contains(r, hook);
                assert_detail_contains(r, strerror(ENOTDIR));
        }
}

static void test_directory_missing_or_not_dir(void **state) {
        Ctx *c = *state;
        char path[PATH_MAX + 16];

        snprintf(path, sizeof(path), "%s/does-not-exist", c->root);
        new_runner(c, path, 0, NULL);
        run_and_collect(c, &event_a);
        assert_int_equal(c->n_reports, 1);
        assert_done(&c->reports[0], "agent-a");
        c->runner = hook_runner_free(c->runner);

        /* Something that is not a directory is an error worth recording, unlike nothing at all. */
        snprintf(path, sizeof(path), "%s/a-file", c->root);
        write_file(path, "", 0644);
        new_runner(c, path, 0, NULL);
        run_and_collect(c, &event_a);
        assert_int_equal(c->n_reports, 3);
        assert_report(&c->reports[1], path, HOOK_FAILED, 0);
        assert_detail_contains(&c->reports[1], strerror(ENOTDIR));
        assert_done(&c->reports[2], "agent-a");
}

static void test_two_events_in_order(void **state) {
        Ctx *c = *state;
        char log[PATH_MAX + 16];
        _cleanup_free_ char *text = NULL;

        snprintf(log, sizeof(log), "%s/events.log", c->root);
        add_hook(c, "01-first", 0755, "#!/bin/sh\necho \"1 $AGENTID_KEY $AGENTID_EVENT\" >> %s\n", log);
        add_hook(c, "02-second", 0755, "#!/bin/sh\necho \"2 $AGENTID_KEY\" >> %s\n", log);
        new_runner(c, c->hooks, 0, NULL);
        assert_int_equal(hook_runner_queue(c->runner, &event_a), 0);
        assert_int_equal(hook_runner_queue(c->runner, &event_b), 0);
        /* Queueing never reports synchronously. */
        assert_int_equal(c->n_reports, 0);
        assert_true(hook_runner_busy(c->runner));
        run_until_done(c, 2);
        assert_false(hook_runner_busy(c->runner));

        text = read_text(log);
        assert_string_equal(text, "1 agent-a destroy\n2 agent-a\n1 agent-b rotate\n2 agent-b\n");
        assert_int_equal(c->n_reports, 6);
        assert_report(&c->reports[0], "01-first", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].key, "agent-a");
        assert_report(&c->reports[1], "02-second", HOOK_EXITED, 0);
        assert_done(&c->reports[2], "agent-a");
        assert_report(&c->reports[3], "01-first", HOOK_EXITED, 0);
        assert_string_equal(c->reports[3].key, "agent-b");
        assert_report(&c->reports[4], "02-second", HOOK_EXITED, 0);
        assert_done(&c->reports[5], "agent-b");
}

static void test_free_while_running(void **state) {
        Ctx *c = *state;
        char pid_file[PATH_MAX + 16], marker[PATH_MAX + 16];
        uint64_t deadline = now_usec() + 10U * 1000000U;
        pid_t pid;

        snprintf(pid_file, sizeof(pid_file), "%s/pid", c->root);
        snprintf(marker, sizeof(marker), "%s/marker", c->root);
        add_hook(c, "01-sleep", 0755, "#!/bin/sh\necho partial\necho $$ > %s.tmp\nmv %s.tmp %s\nsleep 10\n",
                 pid_file, pid_file, pid_file);
        add_hook(c, "02-never", 0755, "#!/bin/sh\ntouch %s\n", marker);
        add_hook(c, "03-never", 0755, "#!/bin/sh\ntouch %s\n", marker);
        new_runner(c, c->hooks, 0, NULL);
        assert_int_equal(hook_runner_queue(c->runner, &event_a), 0);
        assert_int_equal(hook_runner_queue(c->runner, &event_b), 0);
        while (!file_exists(pid_file)) {
                assert_true(now_usec() < deadline);
                assert_true(sd_event_run(c->event, 10 * 1000) >= 0);
        }
        /* Let the output reach the runner before it stops. */
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(c->event, 10 * 1000) >= 0);
        pid = read_pid(pid_file);
        assert_int_equal(c->n_reports, 0);

        c->runner = hook_runner_free(c->runner);
        assert_int_equal(c->n_reports, 5);
        assert_report(&c->reports[0], "01-sleep", HOOK_CANCELLED, 0);
        assert_string_equal(c->reports[0].key, "agent-a");
        assert_string_equal(c->reports[0].output, "partial\n");
        assert_non_null(c->reports[0].detail);
        assert_report(&c->reports[1], c->hooks, HOOK_CANCELLED, 0);
        assert_detail_contains(&c->reports[1], "2 more hooks");
        assert_done(&c->reports[2], "agent-a");
        assert_report(&c->reports[3], c->hooks, HOOK_CANCELLED, 0);
        assert_string_equal(c->reports[3].key, "agent-b");
        assert_done(&c->reports[4], "agent-b");

        /* Reaped by the runner (no zombie left for us), and its group is gone. */
        assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_group_gone(pid);
        assert_false(file_exists(marker));
        /* Nothing of the runner is left in the loop. */
        assert_true(sd_event_run(c->event, 0) >= 0);
        assert_int_equal(c->n_reports, 5);
}

static void test_queue_limits_and_validation(void **state) {
        Ctx *c = *state;
        char path[PATH_MAX + 16];
        HookEvent e = event_a;

        snprintf(path, sizeof(path), "%s/does-not-exist", c->root);
        new_runner(c, path, 0, NULL);

        assert_int_equal(hook_runner_queue(NULL, &event_a), -EINVAL);
        assert_int_equal(hook_runner_queue(c->runner, NULL), -EINVAL);
        e.reason = NULL;
        assert_int_equal(hook_runner_queue(c->runner, &e), -EINVAL);
        e = event_a;
        e.receipt_path = NULL;
        assert_int_equal(hook_runner_queue(c->runner, &e), -EINVAL);
        e = event_a;
        e.event = "delete";
        assert_int_equal(hook_runner_queue(c->runner, &e), -EINVAL);
        assert_false(hook_runner_busy(c->runner));

        for (unsigned i = 0; i < HOOK_QUEUE_MAX; i++)
                assert_int_equal(hook_runner_queue(c->runner, i % 2 ? &event_b : &event_a), 0);
        assert_int_equal(hook_runner_queue(c->runner, &event_a), -EBUSY);
        run_until_done(c, HOOK_QUEUE_MAX);
        assert_int_equal(c->n_reports, HOOK_QUEUE_MAX);
        for (unsigned i = 0; i < HOOK_QUEUE_MAX; i++)
                assert_done(&c->reports[i], i % 2 ? "agent-b" : "agent-a");
        assert_false(hook_runner_busy(c->runner));
        /* Room again. */
        run_and_collect(c, &event_a);
}

static void test_too_many_files(void **state) {
        Ctx *c = *state;
        const unsigned n = HOOKS_PER_DIR_MAX + 6;

        for (unsigned i = 0; i < n; i++) {
                char name[16];

                snprintf(name, sizeof(name), "%03u", i);
                add_hook(c, name, 0755, "#!/bin/sh\nexit 0\n");
        }
        new_runner(c, c->hooks, 0, NULL);
        run_and_collect(c, &event_a);

        assert_int_equal(c->n_reports, HOOKS_PER_DIR_MAX + 2);
        for (unsigned i = 0; i < HOOKS_PER_DIR_MAX; i++) {
                char name[16];

                snprintf(name, sizeof(name), "%03u", i);
                assert_report(&c->reports[i], name, HOOK_EXITED, 0);
        }
        assert_report(&c->reports[HOOKS_PER_DIR_MAX], c->hooks, HOOK_SKIPPED, 0);
        assert_detail_contains(&c->reports[HOOKS_PER_DIR_MAX], "6 more files");
        assert_done(&c->reports[HOOKS_PER_DIR_MAX + 1], "agent-a");
}

static void test_reentrant_queue(void **state) {
        Ctx *c = *state;

        add_hook(c, "01-key", 0755, "#!/bin/sh\necho \"$AGENTID_KEY\"\n");
        new_runner(c, c->hooks, 0, NULL);
        c->queue_on_first_done = &event_b;
        assert_int_equal(hook_runner_queue(c->runner, &event_a), 0);
        run_until_done(c, 2);
        assert_false(hook_runner_busy(c->runner));

        assert_int_equal(c->n_reports, 4);
        assert_string_equal(c->reports[0].output, "agent-a\n");
        assert_done(&c->reports[1], "agent-a");
        assert_string_equal(c->reports[2].output, "agent-b\n");
        assert_done(&c->reports[3], "agent-b");
}

static void test_reentrant_free(void **state) {
        Ctx *c = *state;
        char marker[PATH_MAX + 16];

        snprintf(marker, sizeof(marker), "%s/marker", c->root);
        add_hook(c, "01-first", 0755, "#!/bin/sh\nexit 0\n");
        add_hook(c, "02-never", 0755, "#!/bin/sh\ntouch %s\n", marker);
        new_runner(c, c->hooks, 0, NULL);
        c->free_at_report = 1;
        assert_int_equal(hook_runner_queue(c->runner, &event_a), 0);
        assert_int_equal(hook_runner_queue(c->runner, &event_b), 0);
        /* The loop runs until the runner is gone: its step and child sources were the only ones. */
        for (int i = 0; i < 100 && c->n_done < 2; i++)
                assert_true(sd_event_run(c->event, 100 * 1000) >= 0);
        assert_null(c->runner);

        assert_int_equal(c->n_reports, 5);
        assert_report(&c->reports[0], "01-first", HOOK_EXITED, 0);
        assert_report(&c->reports[1], c->hooks, HOOK_CANCELLED, 0);
        assert_detail_contains(&c->reports[1], "1 more hooks");
        assert_done(&c->reports[2], "agent-a");
        assert_report(&c->reports[3], c->hooks, HOOK_CANCELLED, 0);
        assert_done(&c->reports[4], "agent-b");
        /* fn may not queue into a runner on its way out. */
        assert_int_equal(c->queue_while_freeing, -ESHUTDOWN);
        assert_false(file_exists(marker));
}

static void test_systemd_run(void **state) {
        Ctx *c = *state;
        char fake[PATH_MAX + 32], argv_file[PATH_MAX + 16], env_file[PATH_MAX + 16], hook[PATH_MAX + 16],
                script[4 * PATH_MAX], expected[8192];
        _cleanup_free_ char *argv_text = NULL, *env_text = NULL;

        snprintf(fake, sizeof(fake), "%s/fake-systemd-run", c->root);
        snprintf(argv_file, sizeof(argv_file), "%s/argv", c->root);
        snprintf(env_file, sizeof(env_file), "%s/sr-env", c->root);
        snprintf(hook, sizeof(hook), "%s/50-env", c->hooks);
        /* Records its argv, then does what systemd-run would: the hook with the --setenv values only. */
        snprintf(script, sizeof(script),
                 "#!/bin/sh\n"
                 "printf '%%s\\n' \"$0\" \"$@\" > %s\n"
                 "env > %s\n"
                 "hook=\n"
                 "for a do\n"
                 "        shift\n"
                 "        case \"$a\" in\n"
                 "        --setenv=*) set -- \"$@\" \"${a#--setenv=}\" ;;\n"
                 "        esac\n"
                 "        hook=$a\n"
                 "done\n"
                 "exec /usr/bin/env -i \"$@\" \"$hook\"\n",
                 argv_file, env_file);
        write_file(fake, script, 0755);
        copy_file("/usr/bin/env", hook, 0755);

        new_runner(c, c->hooks, 0, fake);
        run_and_collect(c, &event_a);
        assert_int_equal(c->n_reports, 2);
        assert_report(&c->reports[0], "50-env", HOOK_EXITED, 0);
        assert_string_equal(c->reports[0].output,
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                            "AGENTID_KEY=agent-a\n"
                            "AGENTID_URI=agentid://host-1/agent-a\n"
                            "AGENTID_KID=00112233445566778899aabbccddeeff\n"
                            "AGENTID_OWNER=1000\n"
                            "AGENTID_REASON=offboarded by admin; ticket 42\n"
                            "AGENTID_RECEIPT=/var/lib/agentid/receipts/agent-a.cbor\n"
                            "AGENTID_EVENT=destroy\n");
        assert_done(&c->reports[1], "agent-a");

        argv_text = read_text(argv_file);
        snprintf(expected, sizeof(expected),
                 "%s\n--wait\n--pipe\n--collect\n--quiet\n--service-type=exec\n-p\nRuntimeMaxSec=30s\n"
                 "--setenv=PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                 "--setenv=AGENTID_KEY=agent-a\n"
                 "--setenv=AGENTID_URI=agentid://host-1/agent-a\n"
                 "--setenv=AGENTID_KID=00112233445566778899aabbccddeeff\n"
                 "--setenv=AGENTID_OWNER=1000\n"
                 "--setenv=AGENTID_REASON=offboarded by admin; ticket 42\n"
                 "--setenv=AGENTID_RECEIPT=/var/lib/agentid/receipts/agent-a.cbor\n"
                 "--setenv=AGENTID_EVENT=destroy\n"
                 "--\n%s\n",
                 fake, hook);
        assert_string_equal(argv_text, expected);
        /* systemd-run itself gets PATH (its shell adds PWD), nothing of the event. */
        env_text = read_text(env_file);
        assert_non_null(strstr(env_text, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
        assert_null(strstr(env_text, "AGENTID_"));
        c->runner = hook_runner_free(c->runner);

        /* Sub-second timeouts keep their precision; the file checks still apply. */
        assert_int_equal(chmod(hook, 0775), 0);
        add_hook(c, "60-ok", 0755, "#!/bin/sh\nexit 5\n");
        new_runner(c, c->hooks, 1500 * 1000, fake);
        run_and_collect(c, &event_b);
        assert_int_equal(c->n_reports, 5);
        assert_report(&c->reports[2], "50-env", HOOK_SKIPPED, 0);
        assert_report(&c->reports[3], "60-ok", HOOK_EXITED, 5);
        assert_done(&c->reports[4], "agent-b");
        free(argv_text);
        argv_text = read_text(argv_file);
        assert_non_null(strstr(argv_text, "\n-p\nRuntimeMaxSec=1500ms\n"));
        assert_non_null(strstr(argv_text, "\n--setenv=AGENTID_REASON=\n"));
        c->runner = hook_runner_free(c->runner);

        /* A systemd-run that cannot be executed fails each hook, and says why. */
        snprintf(fake, sizeof(fake), "%s/no-such-systemd-run", c->root);
        new_runner(c, c->hooks, 0, fake);
        run_and_collect(c, &event_a);
        assert_int_equal(c->n_reports, 8);
        assert_report(&c->reports[5], "50-env", HOOK_SKIPPED, 0);
        assert_report(&c->reports[6], "60-ok", HOOK_FAILED, 0);
        assert_detail_contains(&c->reports[6], fake);
        assert_detail_contains(&c->reports[6], strerror(ENOENT));
        assert_done(&c->reports[7], "agent-a");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_new_invalid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
                cmocka_unit_test_setup_teardown(test_output, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exit_signals_exec_failure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_leftovers_killed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_descriptors_and_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_checks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_directory_checks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_directory_missing_or_not_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ancestor_owner, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ancestor_writable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ancestor_sticky, setup, teardown),
                cmocka_unit_test_setup_teardown(test_path_not_resolved, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_events_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_while_running, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queue_limits_and_validation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_many_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reentrant_queue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reentrant_free, setup, teardown),
                cmocka_unit_test_setup_teardown(test_systemd_run, setup, teardown),
        };
        sigset_t mask;

        if (geteuid() != 0) {
                fprintf(stderr, "test-hooks needs root (root-owned hook files, chown); skipping.\n");
                return 77;
        }
        /* As agentidd must: SIGCHLD blocked before anything else (hooks.h). SIGUSR1 blocked and SIGUSR2
         * ignored only to prove that hooks do not inherit either. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return 1;
        (void) signal(SIGUSR2, SIG_IGN);
        /* Orphans of killed hooks are reparented to us, so their end can be checked and no zombie stays. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}

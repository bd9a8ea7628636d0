/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private swtpm instances for tests (see tpm-sim.h).
 */

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "tests/lib/tpm-sim.h"

extern char **environ;

static int run_argv(const char *const *argv, char *const *envp) {
        pid_t pid;
        int status;
        int r = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *) argv, envp ? envp : environ);
        if (r != 0) {
                fprintf(stderr, "tpm-sim: cannot run %s: %s\n", argv[0], strerror(r));
                return -r;
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Make the manufactured template once per build; concurrent tests wait on the lock. */
static int ensure_template(const char **ret_dir) {
        const char *dir = getenv("AGENTID_TEST_TPM_TEMPLATE");
        const char *script = getenv("AGENTID_TEST_MAKE_TEMPLATE");
        char path[4096];

        if (!dir || !script) {
                fprintf(stderr, "tpm-sim: AGENTID_TEST_TPM_TEMPLATE and AGENTID_TEST_MAKE_TEMPLATE must be set "
                                "(run the tests through meson)\n");
                return -EINVAL;
        }
        snprintf(path, sizeof(path), "%s.lock", dir);
        _cleanup_close_ int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock < 0 || flock(lock, LOCK_EX) < 0) {
                fprintf(stderr, "tpm-sim: cannot lock %s: %m\n", path);
                return -errno;
        }

        snprintf(path, sizeof(path), "%s/done", dir);
        if (access(path, F_OK) != 0) {
                const char *argv[] = { "sh", script, dir, NULL };
                int r = run_argv(argv, NULL);
                if (r != 0) {
                        fprintf(stderr, "tpm-sim: making the swtpm template failed (exit %d)\n", r);
                        return -EIO;
                }
        }
        *ret_dir = dir;
        return 0;
}

static int socket_ready(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        return connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? -errno : 0;
}

static int spawn_swtpm(TpmSim *s) {
        char state_arg[4200], server_arg[4200], ctrl_arg[4200];

        snprintf(state_arg, sizeof(state_arg), "dir=%s/state", s->dir);
        snprintf(server_arg, sizeof(server_arg), "type=unixio,path=%s", s->socket);
        snprintf(ctrl_arg, sizeof(ctrl_arg), "type=unixio,path=%s.ctrl", s->socket);
        (void) unlink(s->socket);

        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Never outlive the test, even if it crashes. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                /* swtpm chats on both streams ("Data client disconnected" per command). */
                char log[4200];
                snprintf(log, sizeof(log), "%s/swtpm.log", s->dir);
                int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (out >= 0) {
                        (void) dup2(out, STDOUT_FILENO);
                        (void) dup2(out, STDERR_FILENO);
                }
                execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", state_arg, "--server", server_arg,
                       "--ctrl", ctrl_arg, "--flags", "not-need-init,startup-clear", (char *) NULL);
                fprintf(stderr, "tpm-sim: cannot execute swtpm: %m\n");
                _exit(127);
        }
        s->pid = pid;

        /* Wait until it accepts connections (at most 10 s), noticing an early exit. */
        for (unsigned i = 0; i < 1000; i++) {
                int status;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        s->pid = 0;
                        fprintf(stderr, "tpm-sim: swtpm exited during start-up\n");
                        return -EIO;
                }
                if (socket_ready(s->socket) == 0)
                        return 0;
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        fprintf(stderr, "tpm-sim: swtpm did not start listening on %s\n", s->socket);
        return -ETIMEDOUT;
}

int tpm_sim_start(TpmSim **ret) {
        const char *template_dir = NULL;
        char tmpl[] = "/tmp/agentid-tpm-XXXXXX";
        int r;

        r = ensure_template(&template_dir);
        if (r < 0)
                return r;

        TpmSim *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        if (!mkdtemp(tmpl)) {
                free(s);
                return -errno;
        }
        s->dir = strdup(tmpl);
        if (!s->dir || asprintf(&s->socket, "%s/tpm.sock", s->dir) < 0 ||
            asprintf(&s->tcti, "swtpm:path=%s", s->socket) < 0) {
                tpm_sim_free(s);
                return -ENOMEM;
        }

        char src[4200];
        snprintf(src, sizeof(src), "%s/state", template_dir);
        const char *cp[] = { "cp", "-a", src, s->dir, NULL };
        if (run_argv(cp, NULL) != 0) {
                tpm_sim_free(s);
                return -EIO;
        }

        r = spawn_swtpm(s);
        if (r < 0) {
                tpm_sim_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int stop_pid(TpmSim *s, int sig) {
        if (s->pid <= 0)
                return 0;
        (void) kill(s->pid, sig);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        s->pid = 0;
        return 0;
}

int tpm_sim_kill(TpmSim *s) {
        return stop_pid(s, SIGKILL);
}

int tpm_sim_restart(TpmSim *s) {
        (void) stop_pid(s, SIGKILL);
        return spawn_swtpm(s);
}

int tpm_sim_run_tool(TpmSim *s, const char *const *argv) {
        char tcti_env[4200];
        char *envp[] = { tcti_env, (char *) "PATH=/usr/local/bin:/usr/bin:/bin", NULL };

        snprintf(tcti_env, sizeof(tcti_env), "TPM2TOOLS_TCTI=%s", s->tcti);
        return run_argv(argv, envp);
}

int tpm_sim_reboot(TpmSim *s, bool orderly) {
        char ctrl[4200];
        int r;

        if (orderly) {
                const char *shutdown[] = { "tpm2_shutdown", "-c", NULL };
                r = tpm_sim_run_tool(s, shutdown);
                if (r != 0)
                        return -EIO;
        }

        /* CMD_INIT is the power cycle; swtpm's startup-clear flag does not apply to it, so start up. */
        snprintf(ctrl, sizeof(ctrl), "%s.ctrl", s->socket);
        const char *init[] = { "swtpm_ioctl", "--unix", ctrl, "-i", NULL };
        if (run_argv(init, NULL) != 0)
                return -EIO;
        const char *startup[] = { "tpm2_startup", "-c", NULL };
        return tpm_sim_run_tool(s, startup) == 0 ? 0 : -EIO;
}

TpmSim *tpm_sim_free(TpmSim *s) {
        if (!s)
                return NULL;
        (void) stop_pid(s, SIGTERM);
        if (s->dir) {
                const char *rm[] = { "rm", "-rf", s->dir, NULL };
                (void) run_argv(rm, NULL);
        }
        free(s->dir);
        free(s->socket);
        free(s->tcti);
        free(s);
        return NULL;
}

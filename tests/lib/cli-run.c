/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Running this build's CLIs from unit tests (see cli-run.h).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "tests/lib/cli-run.h"

extern char **environ;

static _Noreturn void fixture_failed(const char *what) {
        fprintf(stderr, "test fixture: %s: %s\n", what, strerror(errno));
        abort();
}

char *test_cli_path(const char *tool) {
        char self[4096], *path = NULL;
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
                return NULL;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (!slash)
                return NULL;
        *slash = 0;
        if (asprintf(&path, "%s/../../tools/%s", self, tool) < 0)
                return NULL;
        if (access(path, X_OK) < 0)
                return mfree(path);
        return path;
}

int test_run_cli(const char *dir, char *const argv[], char **ret_out) {
        _cleanup_free_ char *out_path = NULL;
        posix_spawn_file_actions_t fa;
        int status;
        pid_t pid;

        if (asprintf(&out_path, "%s/stdout", dir) < 0)
                fixture_failed("asprintf");
        if (posix_spawn_file_actions_init(&fa) != 0 ||
            posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600) != 0 ||
            posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) != 0)
                fixture_failed("posix_spawn_file_actions");
        errno = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
        if (errno != 0)
                fixture_failed(argv[0]);
        posix_spawn_file_actions_destroy(&fa);
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
                fixture_failed("waitpid");

        uint8_t *out = NULL;
        size_t out_size = 0;
        errno = -read_file_at(AT_FDCWD, out_path, 1 << 20, &out, &out_size);
        if (errno != 0)
                fixture_failed(out_path);
        *ret_out = (char *) out;
        return WEXITSTATUS(status);
}

char *test_write_tmp(const char *dir, const char *name, const void *data, size_t size) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                fixture_failed("asprintf");
        errno = -write_file_atomic(path, data, size, 0600, 0);
        if (errno != 0)
                fixture_failed(path);
        return path;
}

int test_remove_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;

        while (d && (e = readdir(d)))
                if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
                        (void) unlinkat(dirfd(d), e->d_name, 0);
        if (d)
                closedir(d);
        return rmdir(dir) < 0 ? -errno : 0;
}

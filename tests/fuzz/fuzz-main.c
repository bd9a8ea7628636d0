/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Replay driver for builds without libFuzzer (after systemd's src/fuzz/fuzz-main.c): every file
 * named on the command line, and every regular file directly inside a directory named there, is read
 * and passed to LLVMFuzzerTestOneInput() once. So each corpus runs as a regression test in the
 * normal "fuzz" suite with gcc, and under ASan/UBSan when the build has them.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

/* Corpus files are small; a bigger one is a mistake, not an input. */
#define REPLAY_FILE_MAX (4U * 1024U * 1024U)

static int replay_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }

        uint8_t *buf = malloc(REPLAY_FILE_MAX + 1);
        if (!buf) {
                fclose(f);
                return -ENOMEM;
        }
        size_t n = fread(buf, 1, REPLAY_FILE_MAX + 1, f);
        int err = ferror(f);
        fclose(f);
        if (err || n > REPLAY_FILE_MAX) {
                fprintf(stderr, "%s: %s\n", path, err ? "read error" : "too large");
                free(buf);
                return -EIO;
        }

        /* An exact-size copy, so ASan sees reads past the end of the input. */
        uint8_t *data = malloc(n ? n : 1);
        if (!data) {
                free(buf);
                return -ENOMEM;
        }
        memcpy(data, buf, n);
        free(buf);

        fprintf(stderr, "%s (%zu bytes)\n", path, n);
        (void) LLVMFuzzerTestOneInput(data, n);
        free(data);
        return 0;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int replay_dir(const char *path, unsigned *count) {
        DIR *d = opendir(path);
        if (!d) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }

        char **names = NULL;
        size_t n = 0, allocated = 0;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == allocated) {
                        size_t k = allocated ? 2 * allocated : 64;
                        char **p = realloc(names, k * sizeof(char *));
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        names = p;
                        allocated = k;
                }
                if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);

        /* Sorted, so a failure names the same file on every run. */
        if (r == 0)
                qsort(names, n, sizeof(char *), compare_names);
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (r == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
                        r = replay_file(names[i]);
                        if (r == 0)
                                (*count)++;
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                if (S_ISDIR(st.st_mode))
                        r = replay_dir(argv[i], &count);
                else {
                        r = replay_file(argv[i]);
                        if (r == 0)
                                count++;
                }
                if (r < 0)
                        return EXIT_FAILURE;
        }

        fprintf(stderr, "%u inputs replayed\n", count);
        return EXIT_SUCCESS;
}

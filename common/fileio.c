/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash-safe file helpers (see fileio.h).
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macro.h"

int loop_write(int fd, const void *buf, size_t size) {
        const uint8_t *p = buf;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int loop_read_exact(int fd, void *buf, size_t size) {
        uint8_t *p = buf;

        while (size > 0) {
                ssize_t n = read(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int fsync_directory(int dir_fd) {
        if (fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

static int make_temp_file(int dir_fd, const char *name, mode_t mode, char **ret_name) {
        /* Random suffix: several writers of the same directory must not collide. */
        for (unsigned attempt = 0; attempt < 16; attempt++) {
                uint64_t r;
                if (getentropy(&r, sizeof(r)) < 0)
                        return -errno;

                _cleanup_free_ char *tmp = NULL;
                if (asprintf(&tmp, TMP_FILE_PREFIX "%s-%016llx", name, (unsigned long long) r) < 0)
                        return -ENOMEM;

                int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
                if (fd < 0) {
                        if (errno == EEXIST)
                                continue;
                        return -errno;
                }
                *ret_name = TAKE_PTR(tmp);
                return fd;
        }
        return -EEXIST;
}

int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode,
                         unsigned flags) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!name || !*name || strchr(name, '/'))
                return -EINVAL;

        fd = make_temp_file(dir_fd, name, mode, &tmp);
        if (fd < 0)
                return fd;

        /* openat() applies the umask; the caller asked for exact permissions. */
        if (fchmod(fd, mode) < 0) {
                r = -errno;
                goto fail;
        }
        r = loop_write(fd, data, size);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        fd = safe_close(fd);

        if (flags & WRITE_FILE_NOREPLACE)
                r = renameat2(dir_fd, tmp, dir_fd, name, RENAME_NOREPLACE);
        else
                r = renameat(dir_fd, tmp, dir_fd, name);
        if (r < 0) {
                r = -errno;
                goto fail;
        }
        return fsync_directory(dir_fd);

fail:
        (void) unlinkat(dir_fd, tmp, 0);
        return r;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode, unsigned flags) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        const char *slash = strrchr(path, '/');

        /* A real directory fd even for "name": the rename must be fsync'd in that directory too. */
        dir = slash ? memdup_cstr(path, (size_t) (slash - path)) : strdup(".");
        if (!dir)
                return -ENOMEM;
        dir_fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;
        return write_file_atomic_at(dir_fd, slash ? slash + 1 : path, data, size, mode, flags);
}

/* Read fd to EOF into a new buffer, at most max bytes; hint is the expected size (0: unknown). */
static int read_fd_bounded(int fd, size_t hint, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t have = 0, allocated;

        /* Files in /proc report size 0: start small and grow, never past max. Reading up to one byte
         * more than allowed tells input that is too large from input that fits. */
        allocated = hint > 0 ? MIN(hint + 1, max + 1) : MIN((size_t) 4096, max + 1);
        buf = malloc(allocated + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (have == allocated) {
                        if (allocated > max)
                                break;
                        /* Not realloc(): what was read may be secret (passwords), zero the old copy. */
                        size_t n = MIN(allocated * 2, max + 1);
                        uint8_t *p = malloc(n + 1);
                        if (!p) {
                                erase(buf, have);
                                return -ENOMEM;
                        }
                        memcpy(p, buf, have);
                        erase(buf, have);
                        free(buf);
                        buf = p;
                        allocated = n;
                }
                ssize_t k = read(fd, buf + have, allocated - have);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        erase(buf, have);
                        return -errno;
                }
                if (k == 0)
                        break;
                have += (size_t) k;
        }
        if (have > max) {
                erase(buf, have);
                return -EFBIG;
        }
        buf[have] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = have;
        return 0;
}

int read_file_at(int dir_fd, const char *name, size_t max_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        /* O_NONBLOCK: a FIFO planted where a file is expected must not hang us before the S_ISREG check. */
        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;
        return read_fd_bounded(fd, (size_t) st.st_size, max_size, ret, ret_size);
}

int read_file_or_stdin(const char *path, size_t max_size, uint8_t **ret, size_t *ret_size) {
        if (path && !streq(path, "-"))
                return read_file_at(AT_FDCWD, path, max_size, ret, ret_size);
        return read_fd_bounded(STDIN_FILENO, 0, max_size, ret, ret_size);
}

int remove_temp_files_at(int dir_fd) {
        _cleanup_close_ int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d;
        int n = 0;

        if (fd < 0 || !(d = fdopendir(fd)))
                return -errno;
        fd = -EBADF; /* owned by d now */
        /* The duplicate shares dir_fd's position: start at the top, and leave it there for the caller. */
        rewinddir(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strncmp(de->d_name, TMP_FILE_PREFIX, strlen(TMP_FILE_PREFIX)) == 0 &&
                    unlinkat(dir_fd, de->d_name, 0) >= 0)
                        n++;
        rewinddir(d);
        closedir(d);
        if (n > 0)
                (void) fsync_directory(dir_fd);
        return n;
}

int wipe_file_at(int dir_fd, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        fd = openat(dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;

        static const uint8_t zeros[4096];
        for (off_t left = st.st_size; left > 0;) {
                size_t n = (size_t) MIN((off_t) sizeof(zeros), left);
                r = loop_write(fd, zeros, n);
                if (r < 0)
                        return r;
                left -= (off_t) n;
        }
        if (fsync(fd) < 0)
                return -errno;
        fd = safe_close(fd);

        if (unlinkat(dir_fd, name, 0) < 0)
                return -errno;
        return fsync_directory(dir_fd);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Crash-safe file helpers. A file written with write_file_atomic_at() is either the old version or the
 * new one after a crash, never a torn mix: the data goes to a temporary file in the same directory,
 * is fsync'd, renamed over the target, and the directory is fsync'd so the rename itself is durable.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Prefix of temporary files; a directory scan skips (and may remove) names starting with it. */
#define TMP_FILE_PREFIX ".tmp-"

typedef enum WriteFileFlags {
        WRITE_FILE_NOREPLACE = 1 << 0, /* fail with -EEXIST if the target exists (atomic check) */
} WriteFileFlags;

/*
 * write_file_atomic_at() - durably replace (or create) dir_fd/name with data
 * @mode: permission bits of the new file (the umask does not apply)
 *
 * Return: 0, -EEXIST (WRITE_FILE_NOREPLACE and the target exists), or another -errno. On failure the
 *         target is untouched and no temporary file is left behind.
 */
int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode,
                         unsigned flags);

/* Same for a path: the directory part is opened, the last component written atomically. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode, unsigned flags);

/*
 * read_file_at() - read a whole regular file of at most max_size bytes
 *
 * Return: 0 and a malloc'd buffer (NUL-terminated one byte past *ret_size for convenience); -EFBIG if
 *         the file is larger than max_size; -EBADF-style errors from open/read; -EINVAL if not a
 *         regular file.
 */
int read_file_at(int dir_fd, const char *name, size_t max_size, uint8_t **ret, size_t *ret_size);

/* The file at path (a plain read, following symlinks' parents as open does), or stdin for NULL or "-". */
int read_file_or_stdin(const char *path, size_t max_size, uint8_t **ret, size_t *ret_size);

/*
 * wipe_file_at() - overwrite a file's contents with zeros, fsync, then unlink it
 *
 * Overwriting is best effort against recovery from the raw disk: journaling filesystems, copy-on-write
 * filesystems and SSD wear levelling may keep older copies of the blocks (see docs/keystore.md).
 *
 * Return: 0, or -errno (the file may then still exist).
 */
int wipe_file_at(int dir_fd, const char *name);

/* Remove what write_file_atomic_at() leaves in dir_fd when the process dies before its rename (files
 * named TMP_FILE_PREFIX...): call at start, before anything writes there. Return: how many, or -errno. */
int remove_temp_files_at(int dir_fd);

/* fsync() a directory so that entries created, renamed or removed in it are durable. */
int fsync_directory(int dir_fd);

/* read() everything into buf of exactly size bytes, retrying on EINTR; -EIO on a short file. */
int loop_read_exact(int fd, void *buf, size_t size);
/* write() everything, retrying on EINTR and short writes. */
int loop_write(int fd, const void *buf, size_t size);

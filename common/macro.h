/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Cleanup attributes and small helpers shared by every module.
 *
 * Resources are held in locals marked _cleanup_(x_freep) and handed over with TAKE_PTR()/TAKE_FD(), so
 * every function has a single, implicit release path. Secrets go through erase_and_free() so they are
 * zeroed before the allocator sees them again.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Move ownership out of a cleanup-managed local. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _p_ = (p);        \
                (p) = NULL;                     \
                _p_;                            \
        })
#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd_ = (fd);                \
                (fd) = -EBADF;                  \
                _fd_;                           \
        })

/* Defines name##p(type *p) calling func(*p) when *p is set; for use with _cleanup_(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                 \
        static inline void func##p(type *p) {                   \
                if (*p)                                         \
                        func(*p);                               \
        }                                                       \
        struct __useless_struct_to_allow_trailing_semicolon__

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Zero a buffer in a way the compiler may not elide. */
static inline void erase(void *p, size_t n) {
        if (p && n > 0)
                explicit_bzero(p, n);
}

/* A secret buffer with its length, zeroed before it is freed. */
typedef struct SecretBuffer {
        uint8_t *data;
        size_t size;
} SecretBuffer;

static inline void secret_buffer_done(SecretBuffer *b) {
        if (!b)
                return;
        erase(b->data, b->size);
        free(b->data);
        *b = (SecretBuffer) {};
}

/* A malloc'd copy of n bytes (never malloc(0)). Return: 0 with *ret and *ret_size set; -ENOMEM. */
static inline int memdup_sized(const void *p, size_t n, uint8_t **ret, size_t *ret_size) {
        uint8_t *copy = malloc(n ? n : 1);
        if (!copy)
                return -ENOMEM;
        if (n)
                memcpy(copy, p, n);
        *ret = copy;
        *ret_size = n;
        return 0;
}

/* A NUL-terminated copy of n bytes that need not be NUL-terminated themselves (unlike strndup(), it
 * never looks past n). Return: the copy, or NULL on allocation failure. */
static inline char *memdup_cstr(const void *p, size_t n) {
        char *s = malloc(n + 1);
        if (!s)
                return NULL;
        if (n)
                memcpy(s, p, n);
        s[n] = 0;
        return s;
}

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

#define streq(a, b) (strcmp((a), (b)) == 0)

/* Overflow-checked size arithmetic: returns false on overflow. */
static inline bool size_add(size_t a, size_t b, size_t *ret) {
        return !__builtin_add_overflow(a, b, ret);
}
static inline bool size_mul(size_t a, size_t b, size_t *ret) {
        return !__builtin_mul_overflow(a, b, ret);
}

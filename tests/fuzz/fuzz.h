/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by the fuzz harnesses. Each harness defines LLVMFuzzerTestOneInput(); built with clang and
 * -Dfuzz=true it links libFuzzer, otherwise fuzz-main.c replays corpus files through it.
 *
 * A harness crashes (abort()) only when an invariant of the code under test is violated; rejecting
 * hostile input is the expected outcome and returns normally.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Defined only by tests/fuzz/alloc-fail.c: whether an allocation was made to fail in this run. */
__attribute__((weak)) _Bool fuzz_allocation_failed(void);

/* A harness's own follow-up checks that allocate (an OpenSSL call made only to compare a result) may
 * give up when this says an allocation failed; everywhere else it is false. */
static inline _Bool fuzz_out_of_memory(void) {
        return fuzz_allocation_failed && fuzz_allocation_failed();
}

#define FUZZ_CHECK(expr)                                                                        \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", __FILE__,       \
                                __LINE__, #expr);                                               \
                        abort();                                                                \
                }                                                                               \
        } while (0)

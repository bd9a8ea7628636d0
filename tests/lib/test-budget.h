/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How much of an exhaustive loop a unit test runs. Under memcheck (`meson test --setup=valgrind`, which
 * sets AGENTID_TEST_VALGRIND=1) each instruction costs some fifty times more, and a loop that sends
 * every byte flip or truncation of one document through the same parser learns nothing new for
 * memcheck after the first few dozen: there it takes every TEST_VALGRIND_STEP-th byte, and the tests
 * whose subject is a size limit (thousands of entries) are skipped. The fuzz corpora replayed under
 * memcheck cover hostile bytes anyway. Without valgrind everything runs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define TEST_VALGRIND_STEP 17U

static inline bool test_under_valgrind(void) {
        const char *e = getenv("AGENTID_TEST_VALGRIND");
        return e && strcmp(e, "1") == 0;
}

/* The step of a loop over every byte of an input. */
static inline size_t test_exhaustive_step(void) {
        return test_under_valgrind() ? TEST_VALGRIND_STEP : 1;
}

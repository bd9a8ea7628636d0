/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The task keys' PolicyCounterTimer terms and their digest (see task-policy.h).
 */

#include <string.h>

#include "common/macro.h"
#include "common/task-policy.h"

static void put_be(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

/* The order is part of the digest: creator and verifier must use this one. */
void task_policy_terms(uint64_t clock_limit, uint32_t reset_count, uint32_t restart_count,
                       TaskPolicyTerm ret[TASK_POLICY_TERMS]) {
        ret[0] = (TaskPolicyTerm) {
                .operand_size = 8, .offset = TASK_POLICY_OFFSET_CLOCK, .operation = TASK_POLICY_EO_UNSIGNED_LT,
        };
        put_be(ret[0].operand, clock_limit, 8);
        ret[1] = (TaskPolicyTerm) {
                .operand_size = 4, .offset = TASK_POLICY_OFFSET_RESET_COUNT, .operation = TASK_POLICY_EO_EQ,
        };
        put_be(ret[1].operand, reset_count, 4);
        ret[2] = (TaskPolicyTerm) {
                .operand_size = 4, .offset = TASK_POLICY_OFFSET_RESTART_COUNT, .operation = TASK_POLICY_EO_EQ,
        };
        put_be(ret[2].operand, restart_count, 4);
}

int task_policy_digest(uint64_t clock_limit, uint32_t reset_count, uint32_t restart_count,
                       uint8_t ret[SHA256_DIGEST_SIZE]) {
        uint8_t digest[SHA256_DIGEST_SIZE] = {}, cc[4];
        TaskPolicyTerm terms[TASK_POLICY_TERMS];
        int r;

        task_policy_terms(clock_limit, reset_count, restart_count, terms);
        put_be(cc, TASK_POLICY_CC_POLICY_COUNTER_TIMER, 4);
        for (size_t i = 0; i < TASK_POLICY_TERMS; i++) {
                uint8_t tail[4], args[SHA256_DIGEST_SIZE];

                put_be(tail, terms[i].offset, 2);
                put_be(tail + 2, terms[i].operation, 2);
                const void *a[] = { terms[i].operand, tail };
                const size_t as[] = { terms[i].operand_size, sizeof(tail) };
                r = sha256_parts(a, as, ELEMENTSOF(a), args);
                if (r < 0)
                        return r;

                const void *p[] = { digest, cc, args };
                const size_t ps[] = { sizeof(digest), sizeof(cc), sizeof(args) };
                r = sha256_parts(p, ps, ELEMENTSOF(p), digest);
                if (r < 0)
                        return r;
        }
        memcpy(ret, digest, SHA256_DIGEST_SIZE);
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The authorisation policy of a task key (docs/keystore.md "Task keys"): three TPM2_PolicyCounterTimer
 * assertions, clock < limit, resetCount == R and restartCount == S, in that order. The keystore
 * computes the key's authPolicy and satisfies it with these terms; a verifier recomputes the digest
 * from the credential's clock limit and the counters its TPM2_Certify reports, so it knows the TPM
 * itself stops the key (docs/formats.md §12).
 */

#include <stdint.h>

#include "common/crypto-util.h"

#define TASK_POLICY_TERMS 3U

/* Part 2 §10.11.6 TPMS_TIME_INFO as PolicyCounterTimer compares it, marshalled: time (UINT64) at 0,
 * then TPMS_CLOCK_INFO: clock (UINT64) at 8, resetCount (UINT32) at 16, restartCount (UINT32) at 20. */
#define TASK_POLICY_OFFSET_CLOCK 8U
#define TASK_POLICY_OFFSET_RESET_COUNT 16U
#define TASK_POLICY_OFFSET_RESTART_COUNT 20U

/* Part 2 §6.11 TPM_EO values used here, Part 2 §6.5.2 TPM_CC_PolicyCounterTimer. */
#define TASK_POLICY_EO_EQ 0x0000U
#define TASK_POLICY_EO_UNSIGNED_LT 0x0005U
#define TASK_POLICY_CC_POLICY_COUNTER_TIMER 0x0000016DU

/* One PolicyCounterTimer: operandB (big-endian, 8 or 4 bytes) compared at offset with operation. */
typedef struct TaskPolicyTerm {
        uint8_t operand[8];
        uint16_t operand_size;
        uint16_t offset;
        uint16_t operation;
} TaskPolicyTerm;

void task_policy_terms(uint64_t clock_limit, uint32_t reset_count, uint32_t restart_count,
                       TaskPolicyTerm ret[TASK_POLICY_TERMS]);

/*
 * task_policy_digest() - the policyDigest a session holds after the three terms
 *
 * Part 3 §23.10: policyDigest_new = H(policyDigest_old || TPM_CC_PolicyCounterTimer || args) with
 * args = H(operandB || offset || operation), starting from 32 zero bytes (Part 1 §19.7.7).
 *
 * Return: 0; -ENOMEM.
 */
int task_policy_digest(uint64_t clock_limit, uint32_t reset_count, uint32_t restart_count,
                       uint8_t ret[SHA256_DIGEST_SIZE]);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Requests held for a human's approval (DESIGN §3 and §5 "Confirm"): the bookkeeping only — ids,
 * bounds, what a reviewer is shown. The daemon hangs its held D-Bus call off `data` and owns the
 * timers; this module has no bus and no clock of its own.
 *
 * Bounded on purpose: a caller whose rule says "confirm" could otherwise queue requests until the
 * daemon runs out of memory or the reviewers out of patience.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "governance/policy.h"

#define APPROVALS_MAX 256U
#define APPROVALS_PER_UID_MAX 16U
#define APPROVAL_ID_SIZE 16U      /* random bytes; the id is their hex */

typedef struct Approval {
        char id[2 * APPROVAL_ID_SIZE + 1];
        PolicyAction action;
        char *key;
        char *rule;               /* the rule that asked for confirmation */
        uid_t uid;                /* who asked */
        pid_t pid;
        char *unit;               /* NULL: unknown */
        bool has_exe;
        uint8_t exe_sha256[32];
        char *task_id, *parent_task_id, *audience;
        bool has_digest;
        uint8_t digest[32];       /* what would be signed (SignMessage: SHA-256 of the payload) */
        char *scope;              /* IssueToken: what the token grants, until when, delegated by whom */
        uint64_t exp;
        char *peer;
        uint64_t requested_usec;  /* CLOCK_REALTIME, for reviewers */
        uint64_t expires_usec;    /* CLOCK_REALTIME */
        void *data;               /* the daemon's held request */
        struct Approval *next;
} Approval;

typedef struct ApprovalQueue {
        Approval *head;
        unsigned n;
} ApprovalQueue;

/*
 * approval_new() - an Approval with a fresh random id, not yet queued
 *
 * Return: 0; -ENOMEM; -EIO (no randomness).
 */
int approval_new(PolicyAction action, const char *key, const char *rule, uid_t uid, Approval **ret);
Approval *approval_free(Approval *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Approval *, approval_free);

/* Copy the optional context strings in (NULL stays NULL). Return: 0; -ENOMEM. */
int approval_set_context(Approval *a, const char *unit, const char *task_id, const char *parent_task_id,
                         const char *audience);
/* IssueToken: the scope and parent issuer (NULL: none) and exp. Return: 0; -ENOMEM. */
int approval_set_token(Approval *a, const char *scope, uint64_t exp, const char *peer);

/* Queue a (ownership passes on success). Return: 0; -EBUSY (queue full); -EDQUOT (uid has too many). */
int approval_queue_add(ApprovalQueue *q, Approval *a);
Approval *approval_queue_find(const ApprovalQueue *q, const char *id);
/* Unlink a; the caller frees it. */
void approval_queue_remove(ApprovalQueue *q, Approval *a);

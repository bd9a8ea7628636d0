/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Held requests awaiting approval (see approval.h).
 */

#include <stdlib.h>
#include <string.h>

#include "common/crypto-util.h"
#include "common/hexutil.h"
#include "governance/approval.h"

int approval_new(PolicyAction action, const char *key, const char *rule, uid_t uid, Approval **ret) {
        _cleanup_(approval_freep) Approval *a = NULL;
        uint8_t id[APPROVAL_ID_SIZE];
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        /* Unguessable, so an id seen in one place (a log line) cannot be confused with another. */
        r = random_bytes(id, sizeof(id));
        if (r < 0)
                return r;
        hex_encode_to(id, sizeof(id), a->id);
        a->action = action;
        a->uid = uid;
        a->key = strdup(key);
        a->rule = strdup(rule);
        if (!a->key || !a->rule)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

Approval *approval_free(Approval *a) {
        if (!a)
                return NULL;
        free(a->key);
        free(a->rule);
        free(a->unit);
        free(a->task_id);
        free(a->parent_task_id);
        free(a->audience);
        free(a->scope);
        free(a->peer);
        free(a);
        return NULL;
}

static int strdup_optional(const char *s, char **ret) {
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int approval_set_context(Approval *a, const char *unit, const char *task_id, const char *parent_task_id,
                         const char *audience) {
        if (strdup_optional(unit, &a->unit) < 0 || strdup_optional(task_id, &a->task_id) < 0 ||
            strdup_optional(parent_task_id, &a->parent_task_id) < 0 || strdup_optional(audience, &a->audience) < 0)
                return -ENOMEM;
        return 0;
}

int approval_set_token(Approval *a, const char *scope, uint64_t exp, const char *peer) {
        a->exp = exp;
        if (strdup_optional(scope, &a->scope) < 0 || strdup_optional(peer, &a->peer) < 0)
                return -ENOMEM;
        return 0;
}

int approval_queue_add(ApprovalQueue *q, Approval *a) {
        unsigned mine = 0;

        if (q->n >= APPROVALS_MAX)
                return -EBUSY;
        for (Approval *i = q->head; i; i = i->next)
                if (i->uid == a->uid)
                        mine++;
        if (mine >= APPROVALS_PER_UID_MAX)
                return -EDQUOT;
        /* Appended, so ListApprovals shows the oldest first. */
        Approval **p = &q->head;
        while (*p)
                p = &(*p)->next;
        *p = a;
        a->next = NULL;
        q->n++;
        return 0;
}

Approval *approval_queue_find(const ApprovalQueue *q, const char *id) {
        for (Approval *a = q->head; a; a = a->next)
                if (streq(a->id, id))
                        return a;
        return NULL;
}

void approval_queue_remove(ApprovalQueue *q, Approval *a) {
        for (Approval **p = &q->head; *p; p = &(*p)->next)
                if (*p == a) {
                        *p = a->next;
                        a->next = NULL;
                        q->n--;
                        return;
                }
}

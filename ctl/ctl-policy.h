/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * agentidctl's offline policy commands: they read a policy file with the daemon's own parser and need
 * neither the bus nor agentidd.
 */

#include <stdbool.h>

#include "governance/policy.h"

#define CTL_SCOPES_MAX 64

typedef struct ExplainArgs {
        const char *policy;           /* file */
        const char *key, *action;
        long long uid;                /* < 0: not given */
        const char *audience, *task_id, *unit, *peer;
        const char *exe_sha256;       /* hex */
        int login_session;            /* < 0 unknown */
        const char *scopes[CTL_SCOPES_MAX];
        unsigned n_scopes;
        bool json;
} ExplainArgs;

/* Return: 0 valid; -EXIT code style negative values as agentidctl's main expects (see agentidctl.c). */
int ctl_policy_check(const char *path, bool json);
int ctl_policy_explain(const ExplainArgs *a);

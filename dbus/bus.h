/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bus objects of agentidd: registration and the answers to finished TPM jobs. */

#include "dbus/manager.h"
#include "attest/evidence.h"
#include "dbus/worker.h"

int bus_manager_register(Manager *m);
void bus_manager_job_done(Manager *m, Job *j);

int bus_key_register(Manager *m);
void bus_key_job_done(Manager *m, Job *j);

/* The TPM part of a finished JOB_ATTEST/JOB_PLATFORM, for the evidence encoder. */
void job_evidence_tpm(const Job *j, EvidenceTpm *ret);

/* ---- policy and approvals (bus-policy.c) ---- */

/* What a handler tells the policy about a call that passed its own key check. */
typedef struct PolicyCall {
        PolicyAction action;
        const char *key;              /* key name */
        uid_t uid;                    /* bus-reported euid */
        pid_t pid;                    /* for measured facts; 0 = unknown */
        const char *task_id, *parent_task_id, *audience;
        const uint8_t *digest;        /* 32 bytes shown to reviewers, or NULL */
        /* create/destroy by a non-admin: the key check said no, only a rule can extend it (and a
         * policy's refusal is then AccessDenied, as without a policy). */
        bool extends_key_check;
} PolicyCall;

/* (Re)load m->policy_path. An invalid file is refused (PolicyInvalid) and the old policy stays. */
int bus_policy_load(Manager *m, sd_bus_error *error);

/*
 * bus_policy_submit() - decide call by policy, then queue *job (allow), hold it for approval
 * (confirm), or refuse (deny)
 *
 * Return: 1 with *job taken (queued or held); < 0 with error set and *job untouched.
 */
int bus_policy_submit(Manager *m, sd_bus_message *msg, Job **job, const PolicyCall *call, sd_bus_error *error);

int method_list_approvals(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_approve(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_reload_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* The client disconnected: withdraw its held requests (nobody is left to answer). */
void bus_approvals_client_gone(Manager *m, Client *c);
/* Shutting down: answer every held request with Busy. */
void bus_approvals_cancel_all(Manager *m);

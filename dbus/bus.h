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

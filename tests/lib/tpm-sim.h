/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A private software TPM for one test: swtpm on a unix socket in its own temporary directory, running
 * on a copy of a state manufactured once per build (tests/lib/make-tpm-template.sh). swtpm has no
 * resource manager and only three object slots, so no two tests ever share one.
 *
 * The build passes AGENTID_TEST_TPM_TEMPLATE (where the manufactured state lives) and
 * AGENTID_TEST_MAKE_TEMPLATE (the script that makes it); the first test to need it makes it, under
 * a lock.
 */

#include <stdbool.h>
#include <sys/types.h>

typedef struct TpmSim {
        char *dir;      /* private temporary directory */
        char *socket;   /* TPM command socket; control socket is socket + ".ctrl" */
        char *tcti;     /* "swtpm:path=<socket>" */
        pid_t pid;
} TpmSim;

/* Start a fresh simulator. Return: 0 or -errno (with a message on stderr). */
int tpm_sim_start(TpmSim **ret);
/* Stop swtpm (SIGTERM), remove the directory. */
TpmSim *tpm_sim_free(TpmSim *s);

/* Kill swtpm without warning (SIGKILL), as a crash would. */
int tpm_sim_kill(TpmSim *s);
/* Start swtpm again on the same state after tpm_sim_kill(); this is a TPM reset. */
int tpm_sim_restart(TpmSim *s);
/*
 * Reboot the TPM: orderly = TPM2_Shutdown(CLEAR) first; unclean = no Shutdown (the TPM then reports
 * safe = NO for a while). Both then re-initialise (swtpm_ioctl -i) and send TPM2_Startup(CLEAR).
 */
int tpm_sim_reboot(TpmSim *s, bool orderly);

/* Run a tpm2-tools command against this simulator; argv[0] is the tool name. Return: exit status. */
int tpm_sim_run_tool(TpmSim *s, const char *const *argv);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one place where failures become D-Bus error names. libsystemd 252 turns a bare -errno into
 * "System.Error.E*", which tells a client nothing; every failure leaving agentidd goes through here
 * and gets an org.agentid1.Error.* name or a standard one (docs/dbus-api.md lists them).
 */

#include <systemd/sd-bus.h>

#include "common/macro.h"

#define AGENTID_ERROR_NO_SUCH_KEY "org.agentid1.Error.NoSuchKey"
#define AGENTID_ERROR_KEY_EXISTS "org.agentid1.Error.KeyExists"
#define AGENTID_ERROR_KEY_EXPIRED "org.agentid1.Error.KeyExpired"
#define AGENTID_ERROR_KEY_DESTROYED "org.agentid1.Error.KeyDestroyed"
#define AGENTID_ERROR_KEY_UNUSABLE "org.agentid1.Error.KeyUnusable"
#define AGENTID_ERROR_BUSY "org.agentid1.Error.Busy"
#define AGENTID_ERROR_RATE_LIMITED "org.agentid1.Error.RateLimited"
#define AGENTID_ERROR_TPM_UNAVAILABLE "org.agentid1.Error.TpmUnavailable"
#define AGENTID_ERROR_TPM_FAILURE "org.agentid1.Error.TpmFailure"
#define AGENTID_ERROR_STORAGE_FAILURE "org.agentid1.Error.StorageFailure"
#define AGENTID_ERROR_POLICY_DENIED "org.agentid1.Error.PolicyDenied"
#define AGENTID_ERROR_POLICY_INVALID "org.agentid1.Error.PolicyInvalid"
#define AGENTID_ERROR_APPROVAL_DENIED "org.agentid1.Error.ApprovalDenied"
#define AGENTID_ERROR_APPROVAL_TIMEOUT "org.agentid1.Error.ApprovalTimeout"
#define AGENTID_ERROR_NO_SUCH_APPROVAL "org.agentid1.Error.NoSuchApproval"
#define AGENTID_ERROR_TASK_EXISTS "org.agentid1.Error.TaskExists"

/* The D-Bus error name for a -errno from the keystore or the daemon. */
const char *bus_error_name_from_errno(int r);

/* Set error from r with a formatted message; returns a negative value for the handler to return. */
int bus_error_setf_errno(sd_bus_error *error, int r, const char *fmt, ...) _printf_(3, 4);

/* Reply to call with the error for r and message. */
int bus_reply_errno(sd_bus_message *call, int r, const char *message);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Internals shared by the sources of libagentid-verify: the verifier and the verdict machinery live in
 * verify-evidence.c, tokens and signed messages in verify-token.c. Nothing here is exported (the
 * library is built with -fvisibility=hidden); callers see verdicts only through agentid_verdict_*().
 *
 * A verdict holds a fixed, ordered list of checks. Every entry starts out failed with a "not checked"
 * detail; a check passes or fails once (a failure sticks); the verdict is valid only if every entry
 * passed, and its reason is the first entry that did not.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/verify.h"
#include "common/macro.h"

typedef enum VerdictKind {
        VERDICT_EVIDENCE,       /* agent or platform evidence */
        VERDICT_TOKEN,
        VERDICT_MESSAGE,
} VerdictKind;

/* A verdict whose checks are order[0..n_order), each failed with the detail not_checked. NULL on
 * allocation failure (or more checks than a verdict holds). */
AgentidVerdict *verdict_new(VerdictKind kind, const AgentidReason *order, size_t n_order, const char *not_checked);

/* Record the outcome of a check in the verdict's list (a check not in it is ignored). */
void _printf_(4, 0) verdict_record_v(AgentidVerdict *d, AgentidReason reason, bool ok, const char *fmt, va_list ap);

/* Decide: valid if every check passed; the reason is the first check that did not. */
void verdict_conclude(AgentidVerdict *d);

/* Outputs of a token or message verdict, freed with it by free_extra. Handed back by
 * verdict_get_extra() only while the verdict is valid and of that kind. */
void verdict_set_extra(AgentidVerdict *d, void *extra, void (*free_extra)(void *extra));
void *verdict_get_extra(const AgentidVerdict *d, VerdictKind kind);

/* The time to verify at: agentid_verifier_set_now()'s, or the system clock. Return: 0 or -errno. */
int verifier_now(const AgentidVerifier *v, uint64_t *ret);
uint64_t verifier_max_age(const AgentidVerifier *v);

/* An agent URI (DESIGN §2): "agentid://" 32 lower-case hex digits "/" key name. */
bool agent_uri_is_valid(const char *s, size_t n);

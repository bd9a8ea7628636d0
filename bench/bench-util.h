/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by the benchmarks: a monotonic clock, quantiles, and the "limit" every TPM benchmark compares
 * against — a key created and loaded with plain ESAPI (the agent-key template) and signed with directly.
 */

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_esys.h>

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);
/* The q-quantile (0..1) of v; sorts v. 0 for n == 0. */
double bench_quantile(double *v, size_t n, double q);

typedef struct RawKey {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        ESYS_TR key;
} RawKey;

/* Connect, create an SRK and an agent-template key under it, load the key, flush the SRK: the key then
 * holds one TPM object slot. Exits on any failure (benchmarks have nothing to recover). */
void raw_key_setup(const char *tcti, RawKey *ret);
void raw_key_sign(RawKey *k, const uint8_t digest[32]);
/* Connect and create the SRK (agentid's template); it stays loaded in ret->key (one object slot). */
void raw_srk_setup(const char *tcti, RawKey *ret);
/* Esys_Create of one agent-template key under the SRK of raw_srk_setup(); the blobs are dropped. */
void raw_create(RawKey *srk);
/* Flush the key (or SRK) and close the connection. */
void raw_key_done(RawKey *k);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Test-only generator of agentid agent and platform evidence (DESIGN §5, docs/formats.md §5-§6), made
 * byte for byte as agentidd and a TPM make it, with software keys standing in for the TPM's: TPMT_PUBLIC
 * areas for the AK and the certified key, TPMS_ATTEST certify and quote structures with the real magic,
 * types and clock layout, TPMT_SIGNATUREs made by the software AK over the attest bytes, and the EAT
 * COSE_Sign1 made with cose_sign1_prepare()/cose_sign1_finish() and the software agent key.
 *
 * The TPM structures are marshalled here by hand, independently of attest/tpm2-types.c, so a parser bug
 * is not mirrored by the generator.
 *
 * Negative tests alter a field through a hook that sees every intermediate value before it is used:
 * the generator then computes everything that depends on it (Names, extraData, signatures) from the
 * altered value, so the result fails exactly the check aimed at and not merely a signature.
 */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cbor-util.h"

#define FAKE_NAME_SIZE 34U

/* TPMT_PUBLIC of an ECC key, field by field (TPM 2.0 Part 2 §12.2.4). Optional parts (sym key bits and
 * mode, scheme hash, kdf hash) are written only when their algorithm is not TPM_ALG_NULL (0x0010). */
typedef struct FakePublic {
        uint16_t type, name_alg;
        uint32_t attributes;
        uint8_t auth_policy[64];
        uint16_t auth_policy_size;
        uint16_t sym_alg, sym_key_bits, sym_mode;
        uint16_t scheme, scheme_hash;
        uint16_t curve;
        uint16_t kdf, kdf_hash;
        uint8_t x[80], y[80];
        uint16_t x_size, y_size;
} FakePublic;

/* TPMS_ATTEST (Part 2 §10.12.8). The body written follows type: quote info for 0x8018, certify info
 * for anything else. */
typedef struct FakeAttest {
        uint32_t magic;
        uint16_t type;
        uint8_t qualified_signer[80];
        uint16_t qualified_signer_size;
        uint8_t extra_data[80];
        uint16_t extra_data_size;
        uint64_t clock;
        uint32_t reset_count, restart_count;
        uint8_t safe;
        uint64_t firmware_version;
        /* TPMS_CERTIFY_INFO */
        uint8_t name[80];
        uint16_t name_size;
        uint8_t qualified_name[80];
        uint16_t qualified_name_size;
        /* TPMS_QUOTE_INFO */
        uint32_t n_selections;          /* entries written (at most 4) */
        struct {
                uint16_t hash;
                uint8_t size_of_select; /* bytes written (at most 8) */
                uint8_t select[8];
        } selections[4];
        uint8_t pcr_digest[80];
        uint16_t pcr_digest_size;
} FakeAttest;

/* A TPMT_SIGNATURE and how it is made (Part 2 §11.3.4). At the *_SIGN stage, signer and md say how the
 * attest bytes are signed; at the *_SIG stage the fields are what gets marshalled. */
typedef struct FakeSignature {
        EVP_PKEY *signer;               /* borrowed; default: the AK */
        const EVP_MD *md;               /* default: SHA-256 */
        uint16_t sig_alg, hash;
        uint8_t r[80], s[80];
        uint16_t r_size, s_size;
} FakeSignature;

/* The EAT COSE_Sign1 before signing: kid and optional label 15 claims for cose_sign1_prepare(). */
typedef struct FakeCose {
        EVP_PKEY *signer;               /* borrowed; default: the agent key */
        uint8_t kid[64];
        size_t kid_size;
        bool with_claims;               /* add a label 15 header (the verifier refuses it) */
        uint64_t claims_iat;
} FakeCose;

typedef struct FakeBytes {
        uint8_t *data;                  /* malloc'd; a hook may replace it (free the old one) */
        size_t size;
} FakeBytes;

typedef enum FakeStage {
        FAKE_AK_PUBLIC,                 /* FakePublic * */
        FAKE_AK_PUBLIC_BYTES,           /* FakeBytes *: the marshalled TPMT_PUBLIC */
        FAKE_KEY_PUBLIC,                /* FakePublic *: agent key, or host key */
        FAKE_KEY_PUBLIC_BYTES,          /* FakeBytes * */
        FAKE_CLAIMS,                    /* cbor_item_t **: the EAT claims map (agent only) */
        FAKE_PAYLOAD_BYTES,             /* FakeBytes *: the encoded claims */
        FAKE_EAT,                       /* FakeCose * */
        FAKE_EAT_BYTES,                 /* FakeBytes *: COSE_Sign1_Tagged */
        FAKE_PCRS,                      /* uint8_t (*)[8][32]: PCR values, before the quote digest */
        FAKE_CERTIFY,                   /* FakeAttest * */
        FAKE_CERTIFY_BYTES,             /* FakeBytes *: before signing */
        FAKE_CERTIFY_SIGN,              /* FakeSignature *: signer and md */
        FAKE_CERTIFY_SIG,               /* FakeSignature *: after signing */
        FAKE_CERTIFY_SIG_BYTES,         /* FakeBytes * */
        FAKE_QUOTE,
        FAKE_QUOTE_BYTES,
        FAKE_QUOTE_SIGN,
        FAKE_QUOTE_SIG,
        FAKE_QUOTE_SIG_BYTES,
        FAKE_TPM_MAP,                   /* cbor_item_t **: the "tpm" map */
        FAKE_EVIDENCE_MAP,              /* cbor_item_t **: the outer map */
        FAKE_EVIDENCE_BYTES,            /* FakeBytes *: the encoded evidence */
} FakeStage;

typedef void (*FakeHook)(FakeStage stage, void *object, void *userdata);

typedef struct FakeSpec {
        bool platform;
        EVP_PKEY *ak;                   /* borrowed */
        EVP_PKEY *key;                  /* agent key, or host key for platform evidence; borrowed */
        uint8_t nonce[64];
        size_t nonce_size;
        uint64_t iat;                   /* EAT iat; "created" is iat - 3600 */
        uint8_t srk_name[FAKE_NAME_SIZE];
        FakeHook hook;
        void *userdata;
} FakeSpec;

/* Deterministic P-256 key: private scalar = SHA-256(seed). NULL on failure. */
EVP_PKEY *fake_key_from_seed(const char *seed);

/* Defaults: the golden inputs of docs/formats.md §5 — nonce 00 01 .. 1f, iat 1764000000, srk_name
 * 00 0b || SHA-256("agentid test SRK"), no hook. ak and key are borrowed. */
void fake_spec_default(FakeSpec *spec, bool platform, EVP_PKEY *ak, EVP_PKEY *key);

/* The public areas agentidd's keys have: AK = restricted ECDSA-SHA256 signing key, agent/host key =
 * unrestricted ES256 key (fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | sign). */
void fake_public_ak(EVP_PKEY *key, FakePublic *ret);
void fake_public_key(EVP_PKEY *key, FakePublic *ret);
/* Marshal a FakePublic. Return: 0 and a malloc'd buffer, or -errno. */
int fake_public_marshal(const FakePublic *p, uint8_t **ret, size_t *ret_size);
/* The marshalled default AK public area of key (what the verifier is told to trust). */
int fake_ak_public_bytes(EVP_PKEY *ak, uint8_t **ret, size_t *ret_size);
/* What a TPM2_Sign gives agentidd: ECDSA P-256 over a SHA-256 digest computed elsewhere, as r || s.
 * Return: 0; -EIO; -EBADMSG. */
int fake_sign_digest(EVP_PKEY *key, const uint8_t digest[32], uint8_t rs[64]);

/* Build evidence. Return: 0 and a malloc'd buffer, or -errno. */
int fake_evidence_build(const FakeSpec *spec, uint8_t **ret, size_t *ret_size);

/* The public point of a P-256 key, x and y of 32 bytes. Return: 0 or -EINVAL. */
int fake_key_point(EVP_PKEY *key, uint8_t x[32], uint8_t y[32]);

/* The clock fields of every fake attestation (TPMS_CLOCK_INFO), and the TPM-clock limit of fake task
 * keys: an hour after their certification, as for a task of an hour. */
#define FAKE_CLOCK UINT64_C(123456789)
#define FAKE_RESET_COUNT 2U
#define FAKE_RESTART_COUNT 0U
#define FAKE_TASK_CLOCK_LIMIT (FAKE_CLOCK + UINT64_C(3600000))

/* The authPolicy of fake task keys: the PolicyCounterTimer digest of common/task-policy.h for
 * FAKE_TASK_CLOCK_LIMIT and the fake counters. */
void fake_task_policy(uint8_t ret[32]);
/* A task key's public area as agentidd makes one (keystore/task-key.h, DESIGN §5 "Task credential"):
 * an ES256 signing key with fixedTPM | fixedParent | sensitiveDataOrigin | noDA | sign, userWithAuth
 * CLEAR and authPolicy = fake_task_policy(), so it signs only through its policy. */
void fake_public_task_key(EVP_PKEY *key, FakePublic *ret);

/* The TPM part of a task credential ("task_key"): the task key's TPMT_PUBLIC, a TPM2_Certify of it by
 * the AK (qualifyingData = SHA-256(cti); the key sits under a primary of the NULL hierarchy), and the
 * AK's TPMT_SIGNATURE over it. */
typedef struct FakeTaskKey {
        FakeBytes pub, certify, certify_sig;
} FakeTaskKey;

/*
 * fake_task_key_build() - certify spec->key as a task key with spec->ak for a credential's cti
 *
 * The hook sees FAKE_AK_PUBLIC, FAKE_AK_PUBLIC_BYTES (the AK as qualifiedSigner), FAKE_KEY_PUBLIC,
 * FAKE_KEY_PUBLIC_BYTES (the task key), FAKE_CERTIFY .. FAKE_CERTIFY_SIG_BYTES, as for evidence: what
 * depends on an altered value (Name, signature) is computed from it. nonce and srk_name are not used.
 * Return: 0 and *ret (release with fake_task_key_done()), or -errno.
 */
int fake_task_key_build(const FakeSpec *spec, const uint8_t cti[16], FakeTaskKey *ret);
void fake_task_key_done(FakeTaskKey *k);

/* Map edits for hooks: remove a key, or set it (consumes value; added if absent). A text key when
 * text_key is not NULL, else the integer int_key. */
void fake_map_delete(cbor_item_t **map, const char *text_key, int64_t int_key);
void fake_map_set(cbor_item_t **map, const char *text_key, int64_t int_key, cbor_item_t *value);

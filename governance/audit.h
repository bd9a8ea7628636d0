/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The audit log (DESIGN §5 "Audit log"; CDDL in docs/formats.md): one record per decision agentidd
 * takes, hash-chained, in a CBOR sequence (RFC 8742) of deterministic maps
 *
 *   {"seq", "time", "prev" (SHA-256 of the previous record's bytes; 32 zero bytes for seq 1),
 *    "action", "decision", ? "caller" {"uid", "pid", ? "exe_sha256", ? "unit"}, ? "key", ? "kid",
 *    ? "task_id", ? "parent_task_id", ? "audience", ? "digest", ? "rule", ? "reason", ? "request",
 *    ? "by_uid", ? "count", ? "scope", ? "exp", ? "cti", ? "policy_sha256", ? "checkpoint"}
 *
 * Files live in <state>/audit/, each named by the seq of its first record ("%020llu.cbor"); the one
 * with the highest seq is appended to, and a new file starts when it would grow over file_max — its
 * first record's "prev" continues the chain, so rotation never breaks it. A checkpoint is a record
 * (action "checkpoint") carrying a COSE_Sign1 by the host key over the audit head payload
 * (audit_head_payload()) of one of the 4096 records before it (the TPM signs while other records
 * are appended); GetAuditHead returns the same payload, with the
 * verifier's nonce, signed fresh, so a verifier holding one can detect truncation later.
 *
 * Durability: audit_log_append() writes (O_APPEND) and returns the record's seq at once; a background
 * thread fdatasync()s whatever has been written (group commit) and publishes the highest durable seq,
 * waking the caller through an eventfd. agentidd answers a request only once its record is durable,
 * while the TPM works on it in parallel.
 *
 * Threads: append, rotation, refusal aggregation and close belong to one thread (the event loop); the
 * sync thread only fdatasync()s. The reader side (audit_verify_dir()) is independent of both.
 */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define AUDIT_DIR "audit"
#define AUDIT_RECORD_MAX (16U * 1024U)
#define AUDIT_FILE_MAX_DEFAULT (16ULL * 1024 * 1024)
#define AUDIT_ERROR_MAX 512U
#define AUDIT_HEAD_SIZE 32U
/* Identical refusals within this window after the first are counted, not written one by one. */
#define AUDIT_AGGREGATE_WINDOW_USEC (10ULL * 1000000)
#define AUDIT_AGGREGATE_MAX 1024U
/* Captured output of an offboarding hook kept in its record. */
#define AUDIT_OUTPUT_MAX 4096U

typedef struct AuditCaller {
        uint32_t uid;
        uint32_t pid;                   /* 0: omitted */
        const uint8_t *exe_sha256;      /* 32 bytes, or NULL */
        const char *unit;               /* or NULL */
} AuditCaller;

/* One decision. Texts are UTF-8, at most 1024 bytes (longer ones are cut at a character boundary);
 * NULL pointers and zero counts are omitted keys. */
typedef struct AuditEntry {
        uint64_t time;                  /* NumericDate; 0 = now */
        const char *action;             /* the policy words (create, destroy, rotate, sign, sign_message,
                                         * issue_token, attest, start_task) and policy_reload, start,
                                         * stop, recovered */
        const char *decision;           /* allow, deny, confirm, approved, denied, timeout, withdrawn,
                                         * done, failed */
        const AuditCaller *caller;
        const char *key;
        const uint8_t *kid;             /* 34 bytes */
        const char *task_id, *parent_task_id, *audience;
        const uint8_t *digest;          /* 32 bytes: what was signed */
        const char *rule;
        const char *reason;
        const char *request;            /* approval request id */
        bool has_by_uid;
        uint32_t by_uid;                /* who approved, denied or destroyed */
        uint64_t count;                 /* aggregated refusals (> 1) */
        const char *scope;
        uint64_t exp;                   /* tokens */
        const uint8_t *cti;             /* 16 bytes, tokens */
        const uint8_t *policy_sha256;   /* 32 bytes, policy_reload */
        const char *hook;               /* action "hook": the hook's path */
        bool has_status;
        uint8_t status;                 /* action "hook": its exit status */
        const uint8_t *output;          /* action "hook": captured output (at most AUDIT_OUTPUT_MAX) */
        size_t output_size;
        uint64_t revocation_seq;        /* destroy, rotate: the revocation list's seq with the entry */
} AuditEntry;

typedef struct AuditLog AuditLog;

/*
 * audit_log_open() - open (creating if needed) <state>/audit for appending
 * @state_fd: the state directory
 * @file_max: rotate files beyond this size (0: AUDIT_FILE_MAX_DEFAULT)
 * @ret_recovered: set to the bytes of a torn last record that were cut off (a crash mid-append), 0 if
 *         none; the caller should record that (action "recovered")
 *
 * Reads the newest file to find the last seq and head; a torn tail (an incomplete record at the end of
 * the newest file, nothing valid after it) is truncated away — anything else that does not parse or
 * chain is refused (-EBADMSG), never repaired: an administrator must look at it.
 *
 * Return: 0; -EBADMSG (error says which file and seq); -errno.
 */
int audit_log_open(int state_fd, uint64_t file_max, AuditLog **ret, uint64_t *ret_recovered,
                   char error[AUDIT_ERROR_MAX]);
/* Stop the sync thread, fdatasync, close. */
AuditLog *audit_log_close(AuditLog *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditLog *, audit_log_close);

/* Append one record (written, not yet durable). Return: 0 and its seq; -ENOSPC/-EROFS/-EIO...;
 * -EINVAL (action or decision missing). A failed write leaves the log as it was. */
int audit_log_append(AuditLog *l, const AuditEntry *e, uint64_t *ret_seq);
/* Append a checkpoint record holding cose (a COSE_Sign1_Tagged by the host key over the
 * audit_head_payload(), without nonce, of the head when it was asked for). Return: 0; -ESTALE if it
 * names no record of the last 4096 with that hash; -EINVAL (malformed); -errno as append. */
int audit_log_append_checkpoint(AuditLog *l, const uint8_t *cose, size_t size, uint64_t *ret_seq);
/* The last written record: its seq (0 for an empty log) and SHA-256 of its bytes. */
void audit_log_head(const AuditLog *l, uint64_t *ret_seq, uint8_t ret_head[AUDIT_HEAD_SIZE]);
/* Records written since the last checkpoint. */
uint64_t audit_log_since_checkpoint(const AuditLog *l);

/*
 * audit_log_refusal() - append a refusal, or count it
 *
 * The first refusal of a (caller uid, key, action, rule, reason) is appended at once and opens a window
 * of AUDIT_AGGREGATE_WINDOW_USEC; identical refusals inside it are only counted. When the window has
 * passed (audit_log_flush_refusals()), a record with "count" = the refusals counted is appended.
 * At most AUDIT_AGGREGATE_MAX windows are open; beyond that the oldest is flushed early.
 *
 * Return: 0 and the seq of the record written, or 0 in *ret_seq when only counted; -errno as append.
 */
int audit_log_refusal(AuditLog *l, const AuditEntry *e, uint64_t now_usec, uint64_t *ret_seq);
/* Append the counts of windows closed by now_usec (all of them if all). Return: records appended,
 * or -errno. */
int audit_log_flush_refusals(AuditLog *l, uint64_t now_usec, bool all);
/* When the next window closes (CLOCK_MONOTONIC µs), or 0 if none is open. */
uint64_t audit_log_next_flush(const AuditLog *l);

/*
 * Durability. audit_log_start_sync() starts the sync thread; *ret_event_fd (an eventfd owned by the
 * log) becomes readable whenever the durable seq advances — read it to reset it. Without the thread,
 * audit_log_sync() does the same synchronously.
 */
int audit_log_start_sync(AuditLog *l, int *ret_event_fd);
uint64_t audit_log_durable_seq(const AuditLog *l);
int audit_log_sync(AuditLog *l);
/* The last write or fdatasync error the sync thread met (sticky), or 0. */
int audit_log_sync_error(const AuditLog *l);

/*
 * audit_head_payload() - the payload a host key signs for a checkpoint or GetAuditHead:
 * deterministic {"type": "audit_head", "seq", "head" (bstr 32), "time", ? "nonce" (bstr 16..64)}
 *
 * Return: 0 and a malloc'd buffer; -EINVAL; -ENOMEM.
 */
int audit_head_payload(uint64_t seq, const uint8_t head[AUDIT_HEAD_SIZE], uint64_t time, const uint8_t *nonce,
                       size_t nonce_size, uint8_t **ret, size_t *ret_size);

/* ---- reading and verifying (agentidctl audit show/verify) ---- */

typedef struct AuditVerifyOptions {
        EVP_PKEY *host_key;             /* check checkpoints' and the head's signatures; NULL: skip */
        const uint8_t *head;            /* a GetAuditHead result (COSE_Sign1 by the host key), or NULL */
        size_t head_size;
} AuditVerifyOptions;

typedef struct AuditVerifyResult {
        bool ok;
        uint64_t records;               /* records read and chained */
        uint64_t checkpoints;           /* checkpoints verified (or only parsed without host_key) */
        uint64_t last_seq;
        uint8_t head[AUDIT_HEAD_SIZE];
        uint64_t bad_seq;               /* the first bad record's seq (or the seq expected there) */
        char file[64];                  /* and its file */
        char problem[256];              /* what is wrong, e.g. "prev does not match", "truncated:
                                         * the head names seq 812, the log ends at 790" */
} AuditVerifyResult;

/* Called for each record in order, with its bytes (a deterministic CBOR map); return < 0 to stop. */
typedef int (*AuditRecordFn)(uint64_t seq, const uint8_t *record, size_t size, void *userdata);

/*
 * audit_verify_dir() - read every file of an audit directory, in order, checking the whole chain
 *
 * Checks: each file parses as a sequence of valid records (AUDIT_RECORD_MAX each, the CBOR validator
 * first); seq starts at 1 and grows by one across files; each file is named by its first seq; "prev"
 * chains every record to the one before; checkpoints name the seq and head of one of the 4096 records
 * before them and (with host_key) verify; with a head: it verifies with host_key, and the log holds its seq with
 * that head (a shorter log was truncated, another head was rewritten). A torn tail is reported as a
 * problem like any other. fn (if set) sees each record that passed.
 *
 * Return: 0 with *res filled (res->ok tells the verdict); -errno if the directory cannot be read.
 */
int audit_verify_dir(int audit_dir_fd, const AuditVerifyOptions *o, AuditRecordFn fn, void *userdata,
                     AuditVerifyResult *res);

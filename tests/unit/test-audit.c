/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log (suite "unit"; any user, a fresh directory under $TMPDIR per test): appending and
 * reopening, group commit, rotation, torn tails, every kind of tampering a verifier must name, heads
 * and checkpoints signed by a software P-256 key standing in for the TPM's host key, refusal
 * aggregation, and the golden vectors of docs/formats.md.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "tests/lib/fake-evidence.h"

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "attest/cose.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "governance/audit.h"
#include "tests/lib/golden.h"

#define MAX_RECORDS 256

typedef struct Fixture {
        char dir[PATH_MAX];
        int state_fd;
} Fixture;

static const CborLimits record_limits = {
        .max_size = AUDIT_RECORD_MAX,
        .max_depth = 2,
        .max_items = 64,
        .flags = CBOR_VALIDATE_DETERMINISTIC,
};

static int setup(void **state) {
        const char *tmp = getenv("TMPDIR");
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "%s/agentid-test-audit-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        assert_non_null(mkdtemp(f->dir));
        f->state_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->state_fd >= 0);
        *state = f;
        return 0;
}

static void remove_all(int dir_fd) {
        DIR *d = fdopendir(dup(dir_fd));
        struct dirent *de;

        assert_non_null(d);
        rewinddir(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        assert_int_equal(unlinkat(dir_fd, de->d_name, 0), 0);
        closedir(d);
}

static int teardown(void **state) {
        Fixture *f = *state;
        int fd = openat(f->state_fd, AUDIT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd >= 0) {
                (void) fchmod(fd, 0700);
                remove_all(fd);
                close(fd);
                assert_int_equal(unlinkat(f->state_fd, AUDIT_DIR, AT_REMOVEDIR), 0);
        }
        remove_all(f->state_fd);
        close(f->state_fd);
        assert_int_equal(rmdir(f->dir), 0);
        free(f);
        return 0;
}

/* ---- helpers ----------------------------------------------------------------------------------- */

static AuditLog *open_log(Fixture *f, uint64_t file_max, uint64_t *ret_recovered) {
        char error[AUDIT_ERROR_MAX] = "";
        uint64_t recovered = 99;
        AuditLog *l = NULL;
        int r;

        r = audit_log_open(f->state_fd, file_max, &l, &recovered, error);
        if (r < 0)
                fail_msg("audit_log_open: %s (%s)", strerror(-r), error);
        if (ret_recovered)
                *ret_recovered = recovered;
        else
                assert_int_equal(recovered, 0);
        return l;
}

static int open_log_error(Fixture *f, char error[AUDIT_ERROR_MAX]) {
        AuditLog *l = NULL;
        int r = audit_log_open(f->state_fd, 0, &l, NULL, error);
        assert_null(l);
        return r;
}

static const AuditCaller example_caller = { .uid = 1000, .pid = 4242, .unit = "agent.service" };

/* A varied but reproducible decision, number i. */
static uint64_t append_example(AuditLog *l, unsigned i) {
        char reason[64];
        uint64_t seq = 0, before;
        AuditCaller caller = example_caller;

        audit_log_head(l, &before, NULL);
        snprintf(reason, sizeof(reason), "reason number %u", i);
        caller.pid = 4000 + i;
        const AuditEntry e = {
                .time = 1764000000 + i,
                .action = i % 3 == 0 ? "sign" : "issue_token",
                .decision = i % 5 == 0 ? "deny" : "allow",
                .caller = &caller,
                .key = "invoice-bot",
                .task_id = "task-7f3a",
                .rule = "finance",
                .reason = reason,
        };
        assert_int_equal(audit_log_append(l, &e, &seq), 0);
        assert_int_equal(seq, before + 1);
        return seq;
}

static int audit_dir_fd(Fixture *f) {
        int fd = openat(f->state_fd, AUDIT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void verify(Fixture *f, const AuditVerifyOptions *o, AuditVerifyResult *res) {
        int fd = audit_dir_fd(f);
        assert_int_equal(audit_verify_dir(fd, o, NULL, NULL, res), 0);
        close(fd);
}

static void assert_verify_ok(Fixture *f, const AuditVerifyOptions *o, uint64_t records) {
        AuditVerifyResult res;

        verify(f, o, &res);
        if (!res.ok)
                fail_msg("verify: seq %" PRIu64 " in %s: %s", res.bad_seq, res.file, res.problem);
        assert_int_equal(res.records, records);
        assert_int_equal(res.last_seq, records);
}

static void assert_verify_bad(Fixture *f, const AuditVerifyOptions *o, uint64_t bad_seq, const char *problem) {
        AuditVerifyResult res;

        verify(f, o, &res);
        assert_false(res.ok);
        if (res.bad_seq != bad_seq || (problem && !strstr(res.problem, problem)))
                fail_msg("expected seq %" PRIu64 " (%s), got seq %" PRIu64 " in %s: %s", bad_seq, problem ?: "",
                         res.bad_seq, res.file, res.problem);
        assert_true(res.problem[0] != 0);
}

static void file_name(uint64_t first, char name[32]) {
        snprintf(name, 32, "%020" PRIu64 ".cbor", first);
}

static void read_audit_file(Fixture *f, const char *name, uint8_t **ret, size_t *ret_size) {
        int fd = audit_dir_fd(f);
        assert_int_equal(read_file_at(fd, name, 64 << 20, ret, ret_size), 0);
        close(fd);
}

/* Replace a file's contents in place (keeping the name; the log is closed). */
static void write_audit_file(Fixture *f, const char *name, const uint8_t *p, size_t n) {
        int dfd = audit_dir_fd(f);
        int fd = openat(dfd, name, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, p, n), 0);
        close(fd);
        close(dfd);
}

static uint64_t audit_file_size(Fixture *f, const char *name) {
        struct stat st;
        int fd = audit_dir_fd(f);

        assert_int_equal(fstatat(fd, name, &st, 0), 0);
        close(fd);
        return (uint64_t) st.st_size;
}

/* The log of n records in one file, and where each record starts (offsets[n] = the size). */
static AuditLog *make_log(Fixture *f, unsigned n, uint64_t offsets[]) {
        AuditLog *l = open_log(f, 0, NULL);
        char name[32];

        file_name(1, name);
        for (unsigned i = 0; i < n; i++) {
                offsets[i] = i == 0 ? 0 : audit_file_size(f, name);
                append_example(l, i + 1);
        }
        offsets[n] = audit_file_size(f, name);
        return l;
}

static size_t count_files(Fixture *f) {
        int fd = audit_dir_fd(f);
        DIR *d = fdopendir(fd);
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* ---- signing, as the TPM does for the host key ------------------------------------------------- */

static EVP_PKEY *new_p256(void) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        assert_non_null(k);
        return k;
}


/* COSE_Sign1 by key over audit_head_payload(seq, head, time, nonce). */
static void make_head(EVP_PKEY *key, uint64_t seq, const uint8_t head[AUDIT_HEAD_SIZE], const uint8_t *nonce,
                      size_t nonce_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t kid[34], sig[COSE_ES256_SIG_SIZE];
        size_t payload_size = 0;

        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, 0x44, 32);
        assert_int_equal(audit_head_payload(seq, head, 1764000500, nonce, nonce_size, &payload, &payload_size), 0);
        assert_int_equal(cose_sign1_prepare(kid, sizeof(kid), NULL, payload, payload_size, &c), 0);
        assert_int_equal(fake_sign_digest(key, cose_sign1_digest(c), sig), 0);
        assert_int_equal(cose_sign1_finish(c, sig, ret, ret_size), 0);
}

static void make_current_head(AuditLog *l, EVP_PKEY *key, const uint8_t *nonce, size_t nonce_size, uint8_t **ret,
                              size_t *ret_size) {
        uint8_t head[AUDIT_HEAD_SIZE];
        uint64_t seq;

        audit_log_head(l, &seq, head);
        make_head(key, seq, head, nonce, nonce_size, ret, ret_size);
}

/* ---- tests: writing ---------------------------------------------------------------------------- */

static void test_append_reopen(void **state) {
        Fixture *f = *state;
        _cleanup_free_ uint8_t *bytes = NULL;
        uint8_t head[AUDIT_HEAD_SIZE], zeros[AUDIT_HEAD_SIZE] = {}, digest[SHA256_DIGEST_SIZE];
        uint64_t seq, offsets[4];
        size_t size = 0;
        struct stat st;
        AuditLog *l;

        /* Empty: seq 0 and the all-zero head that seq 1's prev holds. */
        l = open_log(f, 0, NULL);
        audit_log_head(l, &seq, head);
        assert_int_equal(seq, 0);
        assert_memory_equal(head, zeros, AUDIT_HEAD_SIZE);
        audit_log_close(l);

        l = make_log(f, 3, offsets);
        audit_log_head(l, &seq, head);
        assert_int_equal(seq, 3);
        assert_int_equal(audit_log_since_checkpoint(l), 3);
        audit_log_close(l);

        /* The head is the SHA-256 of the last record's exact bytes. */
        read_audit_file(f, "00000000000000000001.cbor", &bytes, &size);
        assert_int_equal(size, offsets[3]);
        assert_int_equal(sha256(bytes + offsets[2], size - offsets[2], digest), 0);
        assert_memory_equal(head, digest, AUDIT_HEAD_SIZE);

        /* Reopening continues the chain. */
        l = open_log(f, 0, NULL);
        audit_log_head(l, &seq, digest);
        assert_int_equal(seq, 3);
        assert_memory_equal(head, digest, AUDIT_HEAD_SIZE);
        assert_int_equal(audit_log_durable_seq(l), 3);
        assert_int_equal(append_example(l, 4), 4);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 4);

        /* Private: the directory 0700, the files 0600. */
        assert_int_equal(fstatat(f->state_fd, AUDIT_DIR, &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        int fd = audit_dir_fd(f);
        assert_int_equal(fstatat(fd, "00000000000000000001.cbor", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        close(fd);
}

static void test_append_invalid(void **state) {
        Fixture *f = *state;
        AuditLog *l = open_log(f, 0, NULL);
        uint64_t seq = 77;

        append_example(l, 1);
        const AuditEntry no_action = { .decision = "allow" };
        const AuditEntry no_decision = { .action = "sign" };
        const AuditEntry empty_action = { .action = "", .decision = "allow" };
        const AuditEntry forged = { .action = "checkpoint", .decision = "done" };
        const AuditEntry not_utf8 = { .action = "sign", .decision = "allow", .reason = "\xff\xfe" };
        assert_int_equal(audit_log_append(l, &no_action, &seq), -EINVAL);
        assert_int_equal(audit_log_append(l, &no_decision, &seq), -EINVAL);
        assert_int_equal(audit_log_append(l, &empty_action, &seq), -EINVAL);
        assert_int_equal(audit_log_append(l, &forged, &seq), -EINVAL);
        assert_int_equal(audit_log_append(l, &not_utf8, &seq), -EINVAL);
        assert_int_equal(seq, 77);

        /* Nothing of them reached the file. */
        audit_log_head(l, &seq, NULL);
        assert_int_equal(seq, 1);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 1);
}

/* A write cut short (here by RLIMIT_FSIZE, which binds root too) is undone: the log stays whole. */
static void test_append_failure_leaves_log(void **state) {
        Fixture *f = *state;
        struct rlimit old, lim;
        uint64_t seq = 0, size;
        AuditLog *l = open_log(f, 0, NULL);

        append_example(l, 1);
        append_example(l, 2);
        size = audit_file_size(f, "00000000000000000001.cbor");

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = (rlim_t) size + 10;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

        const AuditEntry e = { .action = "sign", .decision = "allow", .key = "k", .reason = "too long to fit" };
        int r = audit_log_append(l, &e, &seq);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_true(r == -EIO || r == -EFBIG);
        assert_int_equal(seq, 0);
        assert_int_equal(audit_file_size(f, "00000000000000000001.cbor"), size);
        assert_int_equal(audit_log_sync_error(l), 0);

        /* And it goes on from where it was. */
        assert_int_equal(append_example(l, 3), 3);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 3);
}

static int decode_record(uint64_t seq, const uint8_t *record, size_t size, void *userdata) {
        cbor_item_t **items = userdata;

        if (seq <= MAX_RECORDS)
                assert_int_equal(cbor_util_decode(record, size, &record_limits, &items[seq - 1], NULL), 0);
        return 0;
}

/* All records of the log, decoded (items[seq - 1]). */
static void decode_log(Fixture *f, cbor_item_t *items[MAX_RECORDS]) {
        AuditVerifyResult res;
        int fd = audit_dir_fd(f);

        memset(items, 0, MAX_RECORDS * sizeof(cbor_item_t *));
        assert_int_equal(audit_verify_dir(fd, NULL, decode_record, items, &res), 0);
        assert_true(res.ok);
        close(fd);
}

static void free_items(cbor_item_t *items[MAX_RECORDS]) {
        for (size_t i = 0; i < MAX_RECORDS; i++)
                if (items[i])
                        cbor_decref(&items[i]);
}

static void test_texts_cut(void **state) {
        Fixture *f = *state;
        cbor_item_t *items[MAX_RECORDS];
        char euros[2000 * 3 + 1], plain[1500];
        const char *s;
        size_t n;
        AuditLog *l = open_log(f, 0, NULL);

        /* "€" is three bytes (e2 82 ac): 1024 bytes would split the 342nd. */
        for (size_t i = 0; i < 2000; i++)
                memcpy(euros + 3 * i, "\xe2\x82\xac", 3);
        euros[sizeof(euros) - 1] = 0;
        memset(plain, 'x', sizeof(plain) - 1);
        plain[sizeof(plain) - 1] = 0;

        const AuditEntry e = { .action = "destroy", .decision = "done", .reason = euros, .key = plain };
        assert_int_equal(audit_log_append(l, &e, NULL), 0);
        audit_log_close(l);

        decode_log(f, items);
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(items[0], "reason"), &s, &n), 0);
        assert_int_equal(n, 1023);
        assert_memory_equal(s, euros, 1023);
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(items[0], "key"), &s, &n), 0);
        assert_int_equal(n, 1024);
        /* Absent values are omitted keys. */
        assert_null(cbor_util_map_get_text(items[0], "caller"));
        assert_null(cbor_util_map_get_text(items[0], "count"));
        free_items(items);
}

static void test_group_commit(void **state) {
        Fixture *f = *state;
        AuditLog *l = open_log(f, 0, NULL);
        int event_fd = -1, again = -1;
        unsigned wakeups = 0;
        uint64_t v;

        append_example(l, 1);
        assert_int_equal(audit_log_start_sync(l, &event_fd), 0);
        assert_true(event_fd >= 0);
        assert_int_equal(audit_log_start_sync(l, &again), 0);
        assert_int_equal(again, event_fd);

        for (unsigned i = 2; i <= 200; i++)
                append_example(l, i);

        /* The sync thread catches up, in as many fdatasync()s as it needed, and says so. */
        for (unsigned tries = 0; audit_log_durable_seq(l) < 200; tries++) {
                struct pollfd p = { .fd = event_fd, .events = POLLIN };
                assert_true(tries < 1000);
                if (poll(&p, 1, 100) == 1) {
                        assert_int_equal(read(event_fd, &v, sizeof(v)), (ssize_t) sizeof(v));
                        assert_true(v >= 1);
                        wakeups++;
                }
        }
        /* It may have caught up before the first poll (valgrind): then its signal is still pending. */
        struct pollfd pending = { .fd = event_fd, .events = POLLIN };
        if (poll(&pending, 1, 0) == 1 && read(event_fd, &v, sizeof(v)) == (ssize_t) sizeof(v))
                wakeups++;
        assert_true(wakeups >= 1);
        assert_int_equal(audit_log_durable_seq(l), 200);
        assert_int_equal(audit_log_sync_error(l), 0);

        /* A synchronous sync on top of the thread is harmless. */
        append_example(l, 201);
        assert_int_equal(audit_log_sync(l), 0);
        assert_int_equal(audit_log_durable_seq(l), 201);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 201);

        /* Without the thread, audit_log_sync() makes it durable. */
        l = open_log(f, 0, NULL);
        assert_int_equal(audit_log_durable_seq(l), 201);
        append_example(l, 202);
        assert_int_equal(audit_log_durable_seq(l), 201);
        assert_int_equal(audit_log_sync(l), 0);
        assert_int_equal(audit_log_durable_seq(l), 202);
        audit_log_close(l);
}

static void test_rotation(void **state) {
        Fixture *f = *state;
        AuditLog *l = open_log(f, 1024, NULL);
        char name[32];
        int fd;

        for (unsigned i = 1; i <= 60; i++)
                append_example(l, i);
        audit_log_close(l);
        assert_true(count_files(f) >= 5);

        /* Each file is named by its first record and stays within file_max. */
        fd = audit_dir_fd(f);
        DIR *d = fdopendir(dup(fd));
        struct dirent *de;
        while ((de = readdir(d))) {
                struct stat st;
                if (de->d_name[0] == '.')
                        continue;
                assert_int_equal(fstatat(fd, de->d_name, &st, 0), 0);
                assert_true(st.st_size > 0 && st.st_size <= 1024);
        }
        closedir(d);
        close(fd);
        assert_verify_ok(f, NULL, 60);

        /* Reopening picks up the newest file. */
        l = open_log(f, 1024, NULL);
        assert_int_equal(append_example(l, 61), 61);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 61);

        /* A record larger than file_max gets a file of its own. */
        l = open_log(f, 100, NULL);
        assert_int_equal(append_example(l, 62), 62);
        assert_int_equal(append_example(l, 63), 63);
        audit_log_close(l);
        file_name(63, name);
        assert_true(audit_file_size(f, name) > 100);
        assert_verify_ok(f, NULL, 63);
}

/* A crash right after a rotation leaves the new file empty, or holding only a torn record: the head
 * comes from the file before it. */
static void test_rotation_crash(void **state) {
        Fixture *f = *state;
        uint64_t recovered, seq;
        char name[32];
        AuditLog *l = open_log(f, 0, NULL);

        for (unsigned i = 1; i <= 5; i++)
                append_example(l, i);
        audit_log_close(l);

        file_name(6, name);
        write_audit_file(f, name, NULL, 0);
        assert_verify_ok(f, NULL, 5);
        l = open_log(f, 0, NULL);
        audit_log_head(l, &seq, NULL);
        assert_int_equal(seq, 5);
        assert_int_equal(append_example(l, 6), 6);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 6);

        /* Now 6 is the only record of its file; tear it. */
        uint64_t size = audit_file_size(f, name);
        int fd = audit_dir_fd(f);
        int ffd = openat(fd, name, O_WRONLY | O_CLOEXEC);
        assert_int_equal(ftruncate(ffd, (off_t) size - 7), 0);
        close(ffd);
        close(fd);
        assert_verify_bad(f, NULL, 6, "torn");

        l = open_log(f, 0, &recovered);
        assert_int_equal(recovered, size - 7);
        audit_log_head(l, &seq, NULL);
        assert_int_equal(seq, 5);
        assert_int_equal(append_example(l, 6), 6);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 6);
}

static void test_torn_tail(void **state) {
        Fixture *f = *state;
        const char *name = "00000000000000000001.cbor";
        _cleanup_free_ uint8_t *bytes = NULL;
        uint64_t offsets[6], recovered;
        size_t size = 0;
        AuditLog *l = make_log(f, 5, offsets);

        audit_log_close(l);
        read_audit_file(f, name, &bytes, &size);

        /* Cut inside record 5: a strict prefix of it. */
        write_audit_file(f, name, bytes, size - 10);
        assert_verify_bad(f, NULL, 5, "torn");
        l = open_log(f, 0, &recovered);
        assert_int_equal(recovered, offsets[5] - offsets[4] - 10);
        assert_int_equal(audit_file_size(f, name), offsets[4]);
        assert_int_equal(append_example(l, 5), 5);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 5);

        /* Zeros after the last record (a size that grew before the data landed): no record in them. */
        _cleanup_free_ uint8_t *padded = calloc(1, size + 100);
        assert_non_null(padded);
        memcpy(padded, bytes, size);
        write_audit_file(f, name, padded, size + 100);
        assert_verify_bad(f, NULL, 6, "torn");
        l = open_log(f, 0, &recovered);
        assert_int_equal(recovered, 100);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 5);

        /* Half a record followed by zeros. */
        memset(padded, 0, size + 100);
        memcpy(padded, bytes, size - 30);
        write_audit_file(f, name, padded, size + 100);
        l = open_log(f, 0, &recovered);
        assert_int_equal(recovered, size + 100 - offsets[4]);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 4);

        /* A whole last record with a flipped byte is no interrupted append: open refuses, cuts
         * nothing. */
        char error[AUDIT_ERROR_MAX] = "";
        memcpy(padded, bytes, size);
        padded[offsets[4] + 3] ^= 0x01;
        write_audit_file(f, name, padded, size);
        assert_int_equal(open_log_error(f, error), -EBADMSG);
        assert_int_equal(audit_file_size(f, name), size);
}

/* ---- tests: what a verifier detects ------------------------------------------------------------ */

/* Rewrite the single file of a 10-record log as edit() says, then check verify and open. */
typedef size_t (*EditFn)(const uint8_t *in, const uint64_t offsets[], uint8_t *out);

static void check_tampering(Fixture *f, EditFn edit, uint64_t bad_seq, const char *problem) {
        const char *name = "00000000000000000001.cbor";
        _cleanup_free_ uint8_t *bytes = NULL, *out = NULL;
        char error[AUDIT_ERROR_MAX] = "";
        uint64_t offsets[11];
        size_t size = 0;
        AuditLog *l = make_log(f, 10, offsets);

        audit_log_close(l);
        read_audit_file(f, name, &bytes, &size);
        out = malloc(2 * size);
        assert_non_null(out);
        size_t n = edit(bytes, offsets, out);
        write_audit_file(f, name, out, n);

        assert_verify_bad(f, NULL, bad_seq, problem);
        /* The writer refuses it too — never repaired, never continued. */
        assert_int_equal(open_log_error(f, error), -EBADMSG);
        assert_non_null(strstr(error, name));
}

/* The reason of record 5 ends "number 5"; make it "number 4". */
static size_t edit_flip_text(const uint8_t *in, const uint64_t offsets[], uint8_t *out) {
        memcpy(out, in, offsets[10]);
        uint8_t *p = memmem(out + offsets[4], offsets[5] - offsets[4], "number 5", 8);
        assert_non_null(p);
        p[7] ^= 0x01;
        return offsets[10];
}

/* Flip a bit in record 5's map head: it is no record any more, and valid ones follow. */
static size_t edit_flip_structure(const uint8_t *in, const uint64_t offsets[], uint8_t *out) {
        memcpy(out, in, offsets[10]);
        out[offsets[4]] ^= 0x01;
        return offsets[10];
}

static size_t edit_delete(const uint8_t *in, const uint64_t offsets[], uint8_t *out) {
        size_t n = offsets[4];
        memcpy(out, in, n);
        memcpy(out + n, in + offsets[5], offsets[10] - offsets[5]);
        return offsets[10] - (offsets[5] - offsets[4]);
}

/* Record 5 twice. */
static size_t edit_insert(const uint8_t *in, const uint64_t offsets[], uint8_t *out) {
        size_t r5 = offsets[5] - offsets[4];
        memcpy(out, in, offsets[5]);
        memcpy(out + offsets[5], in + offsets[4], r5);
        memcpy(out + offsets[5] + r5, in + offsets[5], offsets[10] - offsets[5]);
        return offsets[10] + r5;
}

/* Records 5 and 6 swapped. */
static size_t edit_swap(const uint8_t *in, const uint64_t offsets[], uint8_t *out) {
        size_t r5 = offsets[5] - offsets[4], r6 = offsets[6] - offsets[5];
        memcpy(out, in, offsets[4]);
        memcpy(out + offsets[4], in + offsets[5], r6);
        memcpy(out + offsets[4] + r6, in + offsets[4], r5);
        memcpy(out + offsets[6], in + offsets[6], offsets[10] - offsets[6]);
        return offsets[10];
}

static void test_tamper_flip_text(void **state) {
        /* Record 5 still parses; record 6's prev no longer matches it. */
        check_tampering(*state, edit_flip_text, 6, "prev");
}

static void test_tamper_flip_structure(void **state) {
        check_tampering(*state, edit_flip_structure, 5, "not a record");
}

static void test_tamper_delete(void **state) {
        check_tampering(*state, edit_delete, 5, "found seq 6 where seq 5 belongs");
}

static void test_tamper_insert(void **state) {
        check_tampering(*state, edit_insert, 6, "found seq 5 where seq 6 belongs");
}

static void test_tamper_swap(void **state) {
        check_tampering(*state, edit_swap, 5, "found seq 6 where seq 5 belongs");
}

/* A log of several files; returns their first seqs. */
static size_t make_rotated_log(Fixture *f, uint64_t firsts[], size_t max) {
        AuditLog *l = open_log(f, 800, NULL);
        size_t n = 0;

        for (unsigned i = 1; i <= 40; i++)
                append_example(l, i);
        audit_log_close(l);

        int fd = audit_dir_fd(f);
        for (uint64_t s = 1; s <= 40 && n < max; s++) {
                char name[32];
                struct stat st;
                file_name(s, name);
                if (fstatat(fd, name, &st, 0) == 0)
                        firsts[n++] = s;
        }
        close(fd);
        assert_true(n >= 4);
        return n;
}

static void test_tamper_files(void **state) {
        Fixture *f = *state;
        char name[32], other[32];
        uint64_t firsts[64];
        int fd;

        make_rotated_log(f, firsts, ELEMENTSOF(firsts));
        fd = audit_dir_fd(f);

        /* A file renamed to another seq's name. */
        file_name(firsts[2], name);
        file_name(firsts[2] + 1, other);
        assert_int_equal(renameat(fd, name, fd, other), 0);
        assert_verify_bad(f, NULL, firsts[2], "missing");
        assert_int_equal(renameat(fd, other, fd, name), 0);
        assert_verify_ok(f, NULL, 40);

        /* Renamed out of the pattern. */
        assert_int_equal(renameat(fd, name, fd, "old.cbor"), 0);
        assert_verify_bad(f, NULL, 0, "unexpected entry");
        assert_int_equal(renameat(fd, "old.cbor", fd, name), 0);

        /* A middle file removed. */
        assert_int_equal(unlinkat(fd, name, 0), 0);
        assert_verify_bad(f, NULL, firsts[2], "missing");
        close(fd);
}

static void test_tamper_first_file_removed(void **state) {
        Fixture *f = *state;
        uint64_t firsts[64];
        int fd;

        make_rotated_log(f, firsts, ELEMENTSOF(firsts));
        fd = audit_dir_fd(f);
        assert_int_equal(unlinkat(fd, "00000000000000000001.cbor", 0), 0);
        close(fd);
        assert_verify_bad(f, NULL, 1, "missing");
}

/* Removing the newest file, or cutting records off the end, leaves a shorter log that chains: only a
 * head held elsewhere shows it. */
static void test_truncation_needs_head(void **state) {
        Fixture *f = *state;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256(), *other = new_p256();
        _cleanup_free_ uint8_t *head = NULL, *bytes = NULL;
        const char *name = "00000000000000000001.cbor";
        uint8_t nonce[16];
        uint64_t offsets[11];
        size_t head_size = 0, size = 0;
        AuditLog *l = make_log(f, 10, offsets);

        memset(nonce, 0x5a, sizeof(nonce));
        make_current_head(l, key, nonce, sizeof(nonce), &head, &head_size);
        audit_log_close(l);

        AuditVerifyOptions o = { .host_key = key, .head = head, .head_size = head_size };
        assert_verify_ok(f, &o, 10);

        /* Signed by someone else: refused before anything is compared. */
        AuditVerifyOptions wrong = { .host_key = other, .head = head, .head_size = head_size };
        assert_verify_bad(f, &wrong, 0, "the head: the signature does not verify");

        /* Cut back to 8 records: chains, but is shorter than the head. */
        read_audit_file(f, name, &bytes, &size);
        write_audit_file(f, name, bytes, offsets[8]);
        assert_verify_ok(f, NULL, 8);
        assert_verify_bad(f, &o, 9, "truncated: the head names seq 10, the log ends at 8");

        /* Rewritten: two other records in place of 9 and 10, chained properly. */
        l = open_log(f, 0, NULL);
        const AuditEntry e = { .time = 1764009999, .action = "sign", .decision = "allow", .key = "other" };
        assert_int_equal(audit_log_append(l, &e, NULL), 0);
        assert_int_equal(audit_log_append(l, &e, NULL), 0);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 10);
        assert_verify_bad(f, &o, 10, "rewritten");
}

static void test_checkpoints(void **state) {
        Fixture *f = *state;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256(), *other = new_p256();
        _cleanup_free_ uint8_t *cp = NULL, *stale = NULL, *with_nonce = NULL, *bad = NULL;
        size_t cp_size = 0, stale_size = 0, with_nonce_size = 0;
        uint8_t nonce[16] = {};
        uint64_t seq = 0;
        AuditLog *l = open_log(f, 0, NULL);

        for (unsigned i = 1; i <= 3; i++)
                append_example(l, i);
        make_current_head(l, key, NULL, 0, &cp, &cp_size);
        make_current_head(l, key, nonce, sizeof(nonce), &with_nonce, &with_nonce_size);

        /* A checkpoint carries no nonce, and is not COSE garbage. */
        assert_int_equal(audit_log_append_checkpoint(l, with_nonce, with_nonce_size, &seq), -EINVAL);
        size_t bad_size = 0;
        assert_int_equal(memdup_sized(cp, cp_size, &bad, &bad_size), 0);
        bad[0] = 0xd3;
        assert_int_equal(audit_log_append_checkpoint(l, bad, cp_size, &seq), -EINVAL);

        assert_int_equal(audit_log_append_checkpoint(l, cp, cp_size, &seq), 0);
        assert_int_equal(seq, 4);
        assert_int_equal(audit_log_since_checkpoint(l), 0);

        /* A checkpoint must name a record with its hash. */
        uint8_t wrong[AUDIT_HEAD_SIZE] = {};
        _cleanup_free_ uint8_t *wrong_cp = NULL;
        size_t wrong_size = 0;
        make_head(key, 3, wrong, NULL, 0, &wrong_cp, &wrong_size);
        assert_int_equal(audit_log_append_checkpoint(l, wrong_cp, wrong_size, &seq), -ESTALE);
        append_example(l, 5);
        append_example(l, 6);
        assert_int_equal(audit_log_since_checkpoint(l), 2);
        make_current_head(l, other, NULL, 0, &stale, &stale_size);
        audit_log_close(l);

        /* The count since the last checkpoint survives a restart. */
        l = open_log(f, 0, NULL);
        assert_int_equal(audit_log_since_checkpoint(l), 2);
        audit_log_close(l);

        AuditVerifyOptions with_key = { .host_key = key };
        AuditVerifyResult res;
        verify(f, &with_key, &res);
        assert_true(res.ok);
        assert_int_equal(res.records, 6);
        assert_int_equal(res.checkpoints, 1);
        /* Without the key they are parsed and must still name a recent record with its hash. */
        assert_verify_ok(f, NULL, 6);

        AuditVerifyOptions with_other = { .host_key = other };
        assert_verify_bad(f, &with_other, 4, "checkpoint: the signature does not verify");

        /* A checkpoint (signed by the other key) appended after 6 verifies only with that key. */
        l = open_log(f, 0, NULL);
        assert_int_equal(audit_log_append_checkpoint(l, stale, stale_size, &seq), 0);
        assert_int_equal(seq, 7);
        audit_log_close(l);
        assert_verify_bad(f, &with_key, 7, "checkpoint");
}

/*
 * The TPM signs a checkpoint while other records are appended, so a checkpoint may name any of the
 * recent records — with its hash: the wrong hash is refused by the writer, and verify checks both.
 */
static void test_checkpoint_names_recent_record(void **state) {
        Fixture *f = *state;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_p256();
        _cleanup_free_ uint8_t *cp = NULL, *bad = NULL, *bytes = NULL;
        const char *name = "00000000000000000001.cbor";
        uint8_t head1[AUDIT_HEAD_SIZE], head2[AUDIT_HEAD_SIZE];
        size_t cp_size = 0, bad_size = 0, size = 0;
        uint64_t seq, offsets[4];
        AuditLog *l = make_log(f, 3, offsets);

        audit_log_close(l);
        read_audit_file(f, name, &bytes, &size);
        assert_int_equal(sha256(bytes + offsets[0], offsets[1] - offsets[0], head1), 0);
        assert_int_equal(sha256(bytes + offsets[1], offsets[2] - offsets[1], head2), 0);
        make_head(key, 2, head1, NULL, 0, &bad, &bad_size);
        make_head(key, 2, head2, NULL, 0, &cp, &cp_size);

        l = open_log(f, 0, NULL);
        assert_int_equal(audit_log_append_checkpoint(l, bad, bad_size, &seq), -ESTALE);
        assert_int_equal(audit_log_append_checkpoint(l, cp, cp_size, &seq), 0);
        assert_int_equal(seq, 4);
        audit_log_close(l);

        AuditVerifyOptions with_key = { .host_key = key };
        AuditVerifyResult res;
        verify(f, &with_key, &res);
        assert_true(res.ok);
        assert_int_equal(res.checkpoints, 1);
}

/* ---- tests: refusals --------------------------------------------------------------------------- */

#define SEC 1000000ULL

static uint64_t refuse(AuditLog *l, const char *key, const char *reason, uint64_t now) {
        const AuditEntry e = {
                .time = 1764000000 + now / SEC,
                .action = "sign",
                .decision = "deny",
                .caller = &example_caller,
                .key = key,
                .rule = "default-deny",
                .reason = reason,
                .task_id = "differs-each-time",
        };
        uint64_t seq = 99;
        assert_int_equal(audit_log_refusal(l, &e, now, &seq), 0);
        return seq;
}

static void test_refusals(void **state) {
        Fixture *f = *state;
        cbor_item_t *items[MAX_RECORDS];
        const uint64_t t0 = 1000 * SEC, W = AUDIT_AGGREGATE_WINDOW_USEC;
        uint64_t count, uid;
        AuditLog *l = open_log(f, 0, NULL);

        assert_int_equal(audit_log_next_flush(l), 0);

        /* The first is written, identical ones inside the window only counted. */
        assert_int_equal(refuse(l, "k", "no rule", t0), 1);
        assert_int_equal(refuse(l, "k", "no rule", t0 + 1 * SEC), 0);
        assert_int_equal(refuse(l, "k", "no rule", t0 + 2 * SEC), 0);
        /* Another reason is another refusal. */
        assert_int_equal(refuse(l, "k", "rate limited", t0 + 3 * SEC), 2);
        assert_int_equal(refuse(l, "k", "rate limited", t0 + 4 * SEC), 0);
        assert_int_equal(refuse(l, "k", "rate limited", t0 + 5 * SEC), 0);
        assert_int_equal(refuse(l, "k", "rate limited", t0 + 6 * SEC), 0);
        assert_int_equal(audit_log_next_flush(l), t0 + W);

        /* Nothing has closed yet. */
        assert_int_equal(audit_log_flush_refusals(l, t0 + W - 1, false), 0);
        /* The first window closes: one record with its count. */
        assert_int_equal(audit_log_flush_refusals(l, t0 + W, false), 1);
        assert_int_equal(audit_log_next_flush(l), t0 + 3 * SEC + W);
        assert_int_equal(audit_log_flush_refusals(l, t0 + 3 * SEC + W, false), 1);
        assert_int_equal(audit_log_next_flush(l), 0);

        /* After its window, the same refusal is written again. */
        assert_int_equal(refuse(l, "k", "no rule", t0 + 20 * SEC), 5);
        assert_int_equal(refuse(l, "k", "no rule", t0 + 21 * SEC), 0);
        /* One counted refusal, its window passed: written as a plain record before the new one. */
        assert_int_equal(refuse(l, "k", "no rule", t0 + 31 * SEC), 7);
        /* A window that counted nothing closes without a record. */
        assert_int_equal(audit_log_flush_refusals(l, 0, true), 0);
        audit_log_close(l);

        decode_log(f, items);
        assert_null(cbor_util_map_get_text(items[0], "count"));
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_text(items[2], "count"), &count), 0);
        assert_int_equal(count, 2);
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_text(items[3], "count"), &count), 0);
        assert_int_equal(count, 3);
        /* The count carries the identity only: the counted ones differ in pid and task. */
        const cbor_item_t *caller = cbor_util_map_get_text(items[2], "caller");
        assert_int_equal(cbor_util_get_uint(cbor_util_map_get_text(caller, "uid"), &uid), 0);
        assert_int_equal(uid, 1000);
        assert_null(cbor_util_map_get_text(caller, "pid"));
        assert_null(cbor_util_map_get_text(items[2], "task_id"));
        assert_non_null(cbor_util_map_get_text(items[0], "task_id"));
        const char *s;
        size_t n;
        assert_int_equal(cbor_util_get_text(cbor_util_map_get_text(items[3], "reason"), &s, &n), 0);
        assert_int_equal(n, strlen("rate limited"));
        assert_null(cbor_util_map_get_text(items[5], "count"));
        assert_non_null(cbor_util_map_get_text(items[5], "rule"));
        assert_null(items[7]);
        free_items(items);
}

static void test_refusal_table_bound(void **state) {
        Fixture *f = *state;
        const uint64_t t0 = 5000 * SEC;
        char key[32];
        uint64_t seq;
        AuditLog *l = open_log(f, 0, NULL);

        for (unsigned i = 0; i < AUDIT_AGGREGATE_MAX; i++) {
                snprintf(key, sizeof(key), "key-%u", i);
                assert_int_equal(refuse(l, key, "no rule", t0), i + 1);
                assert_int_equal(refuse(l, key, "no rule", t0), 0);
        }
        /* One more window: the oldest (key-0) is flushed early — its one counted refusal — first. */
        assert_int_equal(refuse(l, "one-more", "no rule", t0), AUDIT_AGGREGATE_MAX + 2);
        audit_log_head(l, &seq, NULL);
        assert_int_equal(seq, AUDIT_AGGREGATE_MAX + 2);
        /* key-0 has no window now: it is written again. */
        assert_int_equal(refuse(l, "key-0", "no rule", t0), AUDIT_AGGREGATE_MAX + 4);
        /* Closing writes what is still counted: key-2 .. key-1023 (key-1 was flushed for key-0). */
        assert_int_equal(audit_log_flush_refusals(l, 0, true), AUDIT_AGGREGATE_MAX - 2);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 2 * AUDIT_AGGREGATE_MAX + 2);
}

/* Counts still open at close are written, not lost. */
static void test_refusals_close(void **state) {
        Fixture *f = *state;
        AuditLog *l = open_log(f, 0, NULL);

        assert_int_equal(refuse(l, "k", "no rule", 0), 1);
        assert_int_equal(refuse(l, "k", "no rule", 1), 0);
        assert_int_equal(refuse(l, "k", "no rule", 2), 0);
        audit_log_close(l);
        assert_verify_ok(f, NULL, 2);
}

/* ---- tests: refusing to start ------------------------------------------------------------------ */

static void test_open_refuses(void **state) {
        Fixture *f = *state;
        char error[AUDIT_ERROR_MAX] = "";
        AuditLog *l = open_log(f, 0, NULL), *second = NULL;

        /* One writer at a time. */
        assert_int_equal(audit_log_open(f->state_fd, 0, &second, NULL, error), -EBUSY);
        assert_null(second);
        append_example(l, 1);
        audit_log_close(l);

        /* A directory others may write to. */
        assert_int_equal(fchmodat(f->state_fd, AUDIT_DIR, 0777, 0), 0);
        assert_int_equal(open_log_error(f, error), -EPERM);
        assert_int_equal(fchmodat(f->state_fd, AUDIT_DIR, 0700, 0), 0);

        /* The newest file is not named for its first record. */
        int fd = audit_dir_fd(f);
        assert_int_equal(renameat(fd, "00000000000000000001.cbor", fd, "00000000000000000002.cbor"), 0);
        assert_int_equal(open_log_error(f, error), -EBADMSG);
        assert_non_null(strstr(error, "00000000000000000002.cbor"));
        assert_int_equal(renameat(fd, "00000000000000000002.cbor", fd, "00000000000000000001.cbor"), 0);

        /* The writer ignores names outside the pattern; the verifier does not. */
        write_audit_file(f, "notes.txt", (const uint8_t *) "x", 1);
        l = open_log(f, 0, NULL);
        audit_log_close(l);
        assert_verify_bad(f, NULL, 0, "unexpected entry");
        assert_int_equal(unlinkat(fd, "notes.txt", 0), 0);

        /* Not a regular file. */
        assert_int_equal(mkdirat(fd, "00000000000000000009.cbor", 0700), 0);
        assert_int_equal(open_log_error(f, error), -EBADMSG);
        assert_int_equal(unlinkat(fd, "00000000000000000009.cbor", AT_REMOVEDIR), 0);
        assert_int_equal(symlinkat("00000000000000000001.cbor", fd, "00000000000000000002.cbor"), 0);
        assert_verify_bad(f, NULL, 2, "symbolic link");
        assert_int_equal(open_log_error(f, error), -ELOOP);
        assert_int_equal(unlinkat(fd, "00000000000000000002.cbor", 0), 0);
        close(fd);
        assert_verify_ok(f, NULL, 1);
}

static void test_verify_empty_and_garbage(void **state) {
        Fixture *f = *state;
        AuditVerifyResult res;
        uint8_t zeros[AUDIT_HEAD_SIZE] = {};

        audit_log_close(open_log(f, 0, NULL));
        verify(f, NULL, &res);
        assert_true(res.ok);
        assert_int_equal(res.records, 0);
        assert_int_equal(res.last_seq, 0);
        assert_memory_equal(res.head, zeros, AUDIT_HEAD_SIZE);

        /* A declared length of 4 GiB in a 9-byte file is never believed. */
        static const uint8_t huge[] = { 0xa5, 0x63, 's', 'e', 'q', 0x5a, 0xff, 0xff, 0xff, 0xff };
        write_audit_file(f, "00000000000000000001.cbor", huge, sizeof(huge));
        assert_verify_bad(f, NULL, 1, "not a record");

        /* A complete item that is no record is damage, not a torn append: never cut. */
        static const uint8_t not_a_map[] = { 0x82, 0x01, 0x02 };
        write_audit_file(f, "00000000000000000001.cbor", not_a_map, sizeof(not_a_map));
        assert_verify_bad(f, NULL, 1, "not a record");
}

/* ---- tests: golden vectors --------------------------------------------------------------------- */

static void assert_golden(const char *vector, const uint8_t *got, size_t got_size) {
        _cleanup_free_ uint8_t *golden = NULL;
        size_t golden_size = 0;

        assert_int_equal(golden_load(vector, &golden, &golden_size), 0);
        if (got_size != golden_size || memcmp(got, golden, got_size) != 0) {
                _cleanup_free_ char *hex = hex_encode(got, got_size);
                fail_msg("encoding differs from docs/formats.md golden:%s; encoder gives %s", vector, hex);
        }
}

static void example_record_entry(AuditCaller *caller, uint8_t exe[32], uint8_t kid[34], uint8_t digest[32],
                                 AuditEntry *ret) {
        memset(exe, 0x11, 32);
        kid[0] = 0x00;
        kid[1] = 0x0b;
        memset(kid + 2, 0x22, 32);
        memset(digest, 0x33, 32);
        *caller = (AuditCaller) { .uid = 1000, .pid = 4242, .exe_sha256 = exe, .unit = "invoice.service" };
        *ret = (AuditEntry) {
                .time = 1764000000,
                .action = "sign",
                .decision = "allow",
                .caller = caller,
                .key = "invoice-bot",
                .kid = kid,
                .task_id = "task-7f3a",
                .digest = digest,
                .rule = "finance-signing",
        };
}

static void test_golden_record(void **state) {
        Fixture *f = *state;
        _cleanup_free_ uint8_t *bytes = NULL, *payload = NULL;
        uint8_t exe[32], kid[34], digest[32], head[AUDIT_HEAD_SIZE], nonce[16];
        size_t size = 0, payload_size = 0;
        AuditCaller caller;
        AuditEntry e;
        AuditLog *l = open_log(f, 0, NULL);

        example_record_entry(&caller, exe, kid, digest, &e);
        assert_int_equal(audit_log_append(l, &e, NULL), 0);
        audit_log_close(l);
        read_audit_file(f, "00000000000000000001.cbor", &bytes, &size);
        assert_golden("audit-record", bytes, size);

        /* The checkpoint payload naming that record, and a GetAuditHead payload with a nonce. */
        assert_int_equal(sha256(bytes, size, head), 0);
        assert_int_equal(audit_head_payload(1, head, 1764000060, NULL, 0, &payload, &payload_size), 0);
        assert_golden("audit-head-payload", payload, payload_size);
        payload = mfree(payload);
        memset(nonce, 0x5a, sizeof(nonce));
        assert_int_equal(audit_head_payload(1, head, 1764000060, nonce, sizeof(nonce), &payload, &payload_size), 0);
        assert_golden("audit-head-payload-nonce", payload, payload_size);
}

static void test_head_payload_rejects(void **state) {
        uint8_t head[AUDIT_HEAD_SIZE] = {}, nonce[65] = {}, *p = NULL;
        size_t n = 0;

        assert_int_equal(audit_head_payload(1, NULL, 0, NULL, 0, &p, &n), -EINVAL);
        assert_int_equal(audit_head_payload(1, head, 0, nonce, 15, &p, &n), -EINVAL);
        assert_int_equal(audit_head_payload(1, head, 0, nonce, 65, &p, &n), -EINVAL);
        assert_int_equal(audit_head_payload(1, head, 0, NULL, 16, &p, &n), -EINVAL);
        assert_null(p);
        assert_int_equal(audit_head_payload(1, head, 0, nonce, 64, &p, &n), 0);
        free(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
                T(test_append_reopen),
                T(test_append_invalid),
                T(test_append_failure_leaves_log),
                T(test_texts_cut),
                T(test_group_commit),
                T(test_rotation),
                T(test_rotation_crash),
                T(test_torn_tail),
                T(test_tamper_flip_text),
                T(test_tamper_flip_structure),
                T(test_tamper_delete),
                T(test_tamper_insert),
                T(test_tamper_swap),
                T(test_tamper_files),
                T(test_tamper_first_file_removed),
                T(test_truncation_needs_head),
                T(test_checkpoints),
                T(test_checkpoint_names_recent_record),
                T(test_refusals),
                T(test_refusal_table_bound),
                T(test_refusals_close),
                T(test_open_refuses),
                T(test_verify_empty_and_garbage),
                T(test_golden_record),
                cmocka_unit_test(test_head_payload_rejects),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

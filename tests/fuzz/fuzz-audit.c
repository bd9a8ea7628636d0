/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log reader and writer on hostile bytes: the input becomes the only file of an audit
 * directory (00000000000000000001.cbor). audit_verify_dir() must reach a verdict, with a problem text
 * when it refuses; audit_log_open() must refuse it, or cut off exactly what verify called torn, and
 * then leave a log that an append extends and that verifies.
 *
 * The directory is made once, on tmpfs when there is one (/dev/shm), since open and close
 * fdatasync().
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "governance/audit.h"
#include "tests/fuzz/fuzz.h"

#define FILE_NAME "00000000000000000001.cbor"

static char dir[4096];
static int state_fd = -1, audit_fd = -1;

/* With getdents64() and a buffer on the stack rather than readdir(): the harness's own housekeeping
 * allocates nothing, so alloc-fail.c's injected failures only hit the code under test. */
static void clear_audit_dir(void) {
        _Alignas(struct dirent64) char buf[4096];
        ssize_t n;

        /* The last scan left the directory offset at the end. */
        FUZZ_CHECK(lseek(audit_fd, 0, SEEK_SET) == 0);
        while ((n = getdents64(audit_fd, buf, sizeof(buf))) > 0)
                for (ssize_t off = 0; off < n;) {
                        const struct dirent64 *de = (const struct dirent64 *) (buf + off);
                        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                                FUZZ_CHECK(unlinkat(audit_fd, de->d_name, 0) == 0);
                        off += de->d_reclen;
                }
        FUZZ_CHECK(n == 0);
}

static void cleanup(void) {
        if (audit_fd >= 0) {
                clear_audit_dir();
                close(audit_fd);
                (void) unlinkat(state_fd, AUDIT_DIR, AT_REMOVEDIR);
        }
        if (state_fd >= 0)
                close(state_fd);
        if (dir[0])
                (void) rmdir(dir);
}

static void init(void) {
        const char *tmp = getenv("TMPDIR");
        struct stat st;

        if (state_fd >= 0)
                return;
        if (!tmp || !tmp[0])
                tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ?
                        "/dev/shm" : "/tmp";
        snprintf(dir, sizeof(dir), "%s/agentid-fuzz-audit-XXXXXX", tmp);
        FUZZ_CHECK(mkdtemp(dir));
        state_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        FUZZ_CHECK(state_fd >= 0);
        FUZZ_CHECK(mkdirat(state_fd, AUDIT_DIR, 0700) == 0);
        audit_fd = openat(state_fd, AUDIT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        FUZZ_CHECK(audit_fd >= 0);
        atexit(cleanup);
}

static int count_record(uint64_t seq, const uint8_t *record, size_t size, void *userdata) {
        uint64_t *n = userdata;

        FUZZ_CHECK(seq == *n + 1);
        FUZZ_CHECK(size > 0 && size <= AUDIT_RECORD_MAX);
        (*n)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char error[AUDIT_ERROR_MAX] = "";
        AuditVerifyResult res, after;
        uint64_t seen = 0, recovered = 0, seq = 0;
        uint8_t head[AUDIT_HEAD_SIZE];
        AuditLog *l = NULL;
        int fd, r;

        init();
        clear_audit_dir();
        fd = openat(audit_fd, FILE_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        FUZZ_CHECK(fd >= 0);
        FUZZ_CHECK(loop_write(fd, data, size) == 0);
        close(fd);

        r = audit_verify_dir(audit_fd, NULL, count_record, &seen, &res);
        if (r == -ENOMEM || (r == -EIO && fuzz_out_of_memory()))
                return 0;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(res.ok || (res.problem[0] && memchr(res.problem, 0, sizeof(res.problem))));
        FUZZ_CHECK(seen == res.records);
        FUZZ_CHECK(res.last_seq == res.records);
        bool torn = !res.ok && strncmp(res.problem, "torn", 4) == 0;

        r = audit_log_open(state_fd, 1 << 20, &l, &recovered, error);
        if (r == -ENOMEM || (r == -EIO && fuzz_out_of_memory()))
                return 0;
        if (r < 0) {
                /* Refused exactly when verify found more than a torn tail. */
                FUZZ_CHECK(r == -EBADMSG);
                FUZZ_CHECK(!res.ok && !torn);
                FUZZ_CHECK(error[0]);
                return 0;
        }
        FUZZ_CHECK(res.ok || torn);
        FUZZ_CHECK((recovered > 0) == torn);
        audit_log_head(l, &seq, head);
        FUZZ_CHECK(seq == res.last_seq);
        FUZZ_CHECK(memcmp(head, res.head, AUDIT_HEAD_SIZE) == 0);

        const AuditCaller caller = { .uid = 0, .pid = 1 };
        const AuditEntry e = {
                .action = "recovered",
                .decision = "done",
                .caller = &caller,
                .reason = "fuzz",
                .count = recovered,
        };
        r = audit_log_append(l, &e, &seq);
        /* -EIO: OpenSSL could not hash the record, which only an allocation failure causes here. */
        if (r == -ENOMEM || (r == -EIO && fuzz_out_of_memory())) {
                /* Nothing was written: the log is as recovery left it. (One allocation fails per
                 * run under alloc-fail.c, so this verification itself has memory.) */
                audit_log_close(l);
                FUZZ_CHECK(audit_verify_dir(audit_fd, NULL, NULL, NULL, &after) == 0);
                FUZZ_CHECK(after.ok && after.records == res.last_seq);
                return 0;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(seq == res.last_seq + 1);
        audit_log_close(l);

        r = audit_verify_dir(audit_fd, NULL, NULL, NULL, &after);
        if (r == -ENOMEM || (r == -EIO && fuzz_out_of_memory()))
                return 0;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(after.ok);
        FUZZ_CHECK(after.records == seq);
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log (see audit.h; the format is in docs/formats.md §9 "Audit log", operating it in
 * docs/audit.md).
 *
 * Writing: one fd on the newest file, opened O_APPEND, and each record goes out in a single write(2),
 * so a crash can leave at most a torn tail, which audit_log_open() cuts off and reports. A write that
 * fails or comes up short is undone with ftruncate(), so our own failures never leave a torn record.
 *
 * Reading: a CBOR sequence (RFC 8742) has no framing, so the end of each record is found by walking
 * the CBOR heads under fixed bounds (AUDIT_RECORD_MAX bytes, a few dozen items, two levels) without
 * trusting any declared length further than that; the validator then checks exactly those bytes, and
 * only then does libcbor see them. Files are read through a window of two records, whatever their
 * size.
 *
 * Durability: appends only write. The sync thread fdatasync()s a dup of the current fd whenever more
 * has been written than it last synced — every append in between shares that one fdatasync (group
 * commit) — and publishes the seq it had seen written before it started. Rotation fdatasync()s the
 * old file before switching, so everything below the current file is durable already. An fdatasync
 * error is sticky: after one the kernel may have dropped the dirty pages, and a later fdatasync on
 * the same file description would not report it again, so nothing is ever published as durable
 * after it and appends are refused until the log is reopened.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "attest/cose.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/log.h"
#include "governance/audit.h"

/* Texts are cut to this many bytes (at a character boundary). */
#define AUDIT_TEXT_MAX 1024U
/* A checkpoint's COSE_Sign1: ~200 bytes in practice (header, head payload, r || s). */
#define AUDIT_CHECKPOINT_MAX 4096U
/* "%020llu.cbor": 20 digits hold every uint64_t, and sort like the numbers. */
#define AUDIT_FILE_DIGITS 20U
#define AUDIT_FILE_SUFFIX ".cbor"
#define AUDIT_FILE_NAME_MAX (AUDIT_FILE_DIGITS + sizeof(AUDIT_FILE_SUFFIX))
/* A record is a map, with "caller" the only map inside it. */
#define RECORD_DEPTH_MAX 2U
/* 26 keys and values, the caller's 4 pairs and the two maps: 62; a little slack. */
#define RECORD_ITEMS_MAX 96U
/* Keys of a record: every record has 5 (seq, time, prev, action, decision), at most 26. */
#define RECORD_KEYS_MIN 5U
#define RECORD_KEYS_MAX 26U
/* {"type", "seq", "head", "time", "nonce"} with a 64-byte nonce is under 160 bytes. */
#define HEAD_PAYLOAD_MAX 256U
#define HEAD_NONCE_MIN 16U
#define HEAD_NONCE_MAX 64U
/* Problem texts while scanning. */
#define WHY_MAX 192U
/* The read window: a whole record always fits after any offset we parse at, unless the file ends. */
#define READ_WINDOW (2U * AUDIT_RECORD_MAX)

/* Major types, RFC 8949 §3.1. */
enum {
        MAJOR_BYTES = 2,
        MAJOR_TEXT = 3,
        MAJOR_ARRAY = 4,
        MAJOR_MAP = 5,
        MAJOR_TAG = 6,
};

static const CborLimits record_limits = {
        .max_size = AUDIT_RECORD_MAX,
        .max_depth = RECORD_DEPTH_MAX,
        .max_items = RECORD_ITEMS_MAX,
        .flags = CBOR_VALIDATE_DETERMINISTIC,
};

static const CborLimits head_limits = {
        .max_size = HEAD_PAYLOAD_MAX,
        .max_depth = 1,
        .max_items = 11,
        .flags = CBOR_VALIDATE_DETERMINISTIC,
};

/* The keys a map may hold, each with its type and bounds (docs/formats.md §9 CDDL). */
typedef enum FieldType {
        FIELD_UINT,                     /* min..max is the value */
        FIELD_TEXT,                     /* min..max is the size in bytes */
        FIELD_BYTES,
        FIELD_MAP,
} FieldType;

typedef struct Field {
        const char *name;
        FieldType type;
        uint64_t min, max;
        bool required;
} Field;

enum {
        R_SEQ, R_TIME, R_PREV, R_ACTION, R_DECISION, R_CALLER, R_KEY, R_KID, R_TASK_ID, R_PARENT_TASK_ID,
        R_AUDIENCE, R_DIGEST, R_RULE, R_REASON, R_REQUEST, R_BY_UID, R_COUNT, R_SCOPE, R_EXP, R_CTI,
        R_POLICY_SHA256, R_CHECKPOINT, R_HOOK, R_STATUS, R_OUTPUT, R_REVOCATION_SEQ, _R_MAX,
};

static const Field record_fields[_R_MAX] = {
        [R_SEQ] = { "seq", FIELD_UINT, 1, UINT64_MAX, true },
        [R_TIME] = { "time", FIELD_UINT, 0, UINT64_MAX, true },
        [R_PREV] = { "prev", FIELD_BYTES, AUDIT_HEAD_SIZE, AUDIT_HEAD_SIZE, true },
        [R_ACTION] = { "action", FIELD_TEXT, 1, AUDIT_TEXT_MAX, true },
        [R_DECISION] = { "decision", FIELD_TEXT, 1, AUDIT_TEXT_MAX, true },
        [R_CALLER] = { "caller", FIELD_MAP, 0, 0, false },
        [R_KEY] = { "key", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_KID] = { "kid", FIELD_BYTES, 34, 34, false },
        [R_TASK_ID] = { "task_id", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_PARENT_TASK_ID] = { "parent_task_id", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_AUDIENCE] = { "audience", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_DIGEST] = { "digest", FIELD_BYTES, SHA256_DIGEST_SIZE, SHA256_DIGEST_SIZE, false },
        [R_RULE] = { "rule", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_REASON] = { "reason", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_REQUEST] = { "request", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_BY_UID] = { "by_uid", FIELD_UINT, 0, UINT32_MAX, false },
        /* A record stands for one decision unless it says otherwise: 0 and 1 are never written. */
        [R_COUNT] = { "count", FIELD_UINT, 2, UINT64_MAX, false },
        [R_SCOPE] = { "scope", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
        [R_EXP] = { "exp", FIELD_UINT, 1, UINT64_MAX, false },
        [R_CTI] = { "cti", FIELD_BYTES, 16, 16, false },
        [R_POLICY_SHA256] = { "policy_sha256", FIELD_BYTES, SHA256_DIGEST_SIZE, SHA256_DIGEST_SIZE, false },
        [R_CHECKPOINT] = { "checkpoint", FIELD_BYTES, 1, AUDIT_CHECKPOINT_MAX, false },
        [R_HOOK] = { "hook", FIELD_TEXT, 1, AUDIT_TEXT_MAX, false },
        [R_STATUS] = { "status", FIELD_UINT, 0, 255, false },
        [R_OUTPUT] = { "output", FIELD_BYTES, 1, AUDIT_OUTPUT_MAX, false },
        [R_REVOCATION_SEQ] = { "revocation_seq", FIELD_UINT, 1, UINT64_MAX, false },
};

enum { C_UID, C_PID, C_EXE_SHA256, C_UNIT, _C_MAX };

static const Field caller_fields[_C_MAX] = {
        [C_UID] = { "uid", FIELD_UINT, 0, UINT32_MAX, true },
        [C_PID] = { "pid", FIELD_UINT, 1, UINT32_MAX, false },
        [C_EXE_SHA256] = { "exe_sha256", FIELD_BYTES, SHA256_DIGEST_SIZE, SHA256_DIGEST_SIZE, false },
        [C_UNIT] = { "unit", FIELD_TEXT, 0, AUDIT_TEXT_MAX, false },
};

enum { H_TYPE, H_SEQ, H_HEAD, H_TIME, H_NONCE, _H_MAX };

static const Field head_fields[_H_MAX] = {
        [H_TYPE] = { "type", FIELD_TEXT, 1, 64, true },
        [H_SEQ] = { "seq", FIELD_UINT, 0, UINT64_MAX, true },
        [H_HEAD] = { "head", FIELD_BYTES, AUDIT_HEAD_SIZE, AUDIT_HEAD_SIZE, true },
        [H_TIME] = { "time", FIELD_UINT, 0, UINT64_MAX, true },
        [H_NONCE] = { "nonce", FIELD_BYTES, HEAD_NONCE_MIN, HEAD_NONCE_MAX, false },
};

/* A refusal window (audit_log_refusal()): the identity of the refusal and what was counted. */
typedef struct RefusalWindow {
        uint64_t start;                 /* now_usec of the first refusal, written at once */
        uint64_t hash;                  /* of the identity, to skip most string compares */
        uint64_t count;                 /* identical refusals since, not written one by one */
        uint64_t time;                  /* NumericDate of the last one counted (0: when written) */
        bool has_uid;
        uint32_t uid;
        char *key, *action, *decision, *rule, *reason;
} RefusalWindow;

/*
 * The hashes of the most recent records. A checkpoint is signed by the TPM while other requests go on
 * (20-200 ms on hardware), so by the time it is appended it names a recent record, not necessarily the
 * one right before it; writer and verifier both check it against this window.
 */
#define CHECKPOINT_WINDOW 4096U
typedef struct HeadRing {
        uint64_t first;                 /* lowest seq stored since the run of consecutive puts began */
        uint64_t last;                  /* 0: empty */
        uint8_t hash[CHECKPOINT_WINDOW][AUDIT_HEAD_SIZE];
} HeadRing;

static void ring_put(HeadRing *ring, uint64_t seq, const uint8_t hash[AUDIT_HEAD_SIZE]) {
        if (!ring)
                return;
        if (ring->last == 0 || seq != ring->last + 1)
                ring->first = seq;
        ring->last = seq;
        memcpy(ring->hash[seq % CHECKPOINT_WINDOW], hash, AUDIT_HEAD_SIZE);
}

/* The hash of record seq. Return: 0; -ENOENT if seq was never put (before ring->first); -ERANGE if it
 * is older than the window. */
static int ring_get(const HeadRing *ring, uint64_t seq, const uint8_t **ret) {
        if (!ring || ring->last == 0 || seq > ring->last || seq < ring->first)
                return -ENOENT;
        if (ring->last - seq >= CHECKPOINT_WINDOW)
                return -ERANGE;
        *ret = ring->hash[seq % CHECKPOINT_WINDOW];
        return 0;
}

struct AuditLog {
        int dir_fd;
        int fd;                         /* the newest file; -EBADF while the log is empty */
        uint64_t file_max;
        uint64_t file_size;
        uint64_t seq;                   /* last record written */
        uint8_t head[AUDIT_HEAD_SIZE];  /* SHA-256 of its bytes */
        uint64_t checkpoint_seq;        /* last checkpoint seen or written, 0 if none */
        HeadRing *ring;

        RefusalWindow *windows;         /* in the order they were opened */
        size_t n_windows;

        /* Shared with the sync thread: fd switches and written_seq under lock. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint64_t written_seq;
        bool stop;
        bool thread_started;
        pthread_t thread;
        int event_fd;
        _Atomic uint64_t durable_seq;
        _Atomic int sync_error;
};

/* ---- small helpers ---------------------------------------------------------------------------- */

static void set_error(char *error, const char *fmt, ...) _printf_(2, 3);
static void set_error(char *error, const char *fmt, ...) {
        va_list ap;

        if (!error)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(error, AUDIT_ERROR_MAX, fmt, ap);
        va_end(ap);
        log_debug("audit: %s", error);
}

static void format_file_name(uint64_t first_seq, char name[static AUDIT_FILE_NAME_MAX]) {
        (void) snprintf(name, AUDIT_FILE_NAME_MAX, "%020" PRIu64 AUDIT_FILE_SUFFIX, first_seq);
}

/* Exactly 20 digits and ".cbor", naming a seq >= 1 that fits in 64 bits. */
static bool parse_file_name(const char *name, uint64_t *ret) {
        uint64_t v = 0;

        if (strlen(name) != AUDIT_FILE_NAME_MAX - 1 || !streq(name + AUDIT_FILE_DIGITS, AUDIT_FILE_SUFFIX))
                return false;
        for (size_t i = 0; i < AUDIT_FILE_DIGITS; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return false;
                if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t) (name[i] - '0'), &v))
                        return false;
        }
        if (v == 0)
                return false;
        *ret = v;
        return true;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence: back off while the first
 * byte left out is a continuation byte (10xxxxxx, RFC 3629 §3). */
static size_t text_cut(const char *s, size_t max) {
        size_t n = strnlen(s, max + 1);

        if (n <= max)
                return n;
        n = max;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        return n;
}

static bool text_present(const char *s) {
        return s && s[0];
}

static uint64_t now_seconds(void) {
        time_t t = time(NULL);
        return t > 0 ? (uint64_t) t : 0;
}

/* ---- encoding ---------------------------------------------------------------------------------- */

static int put_text(cbor_item_t *map, const char *key, const char *value) {
        if (!value)
                return 0;
        return cbor_util_map_put_text(map, key, cbor_util_new_textn(value, text_cut(value, AUDIT_TEXT_MAX)));
}

static int put_bytes(cbor_item_t *map, const char *key, const uint8_t *value, size_t size) {
        if (!value)
                return 0;
        return cbor_util_map_put_text(map, key, cbor_util_new_bytes(value, size));
}

/* One record in deterministic encoding (RFC 8949 §4.2.1: the encoder sorts the keys). */
static int record_encode(const AuditEntry *e, uint64_t seq, uint64_t time, const uint8_t prev[AUDIT_HEAD_SIZE],
                         const uint8_t *checkpoint, size_t checkpoint_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int k = 0, r;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;

        k |= cbor_util_map_put_text(map, "seq", cbor_util_new_uint(seq));
        k |= cbor_util_map_put_text(map, "time", cbor_util_new_uint(time));
        k |= put_bytes(map, "prev", prev, AUDIT_HEAD_SIZE);
        k |= put_text(map, "action", e->action);
        k |= put_text(map, "decision", e->decision);
        if (e->caller) {
                cbor_item_t *caller = cbor_util_new_map();

                k |= cbor_util_map_put_text(caller, "uid", cbor_util_new_uint(e->caller->uid));
                /* Absent values are omitted keys, never null (DESIGN §5). */
                if (e->caller->pid > 0)
                        k |= cbor_util_map_put_text(caller, "pid", cbor_util_new_uint(e->caller->pid));
                k |= put_bytes(caller, "exe_sha256", e->caller->exe_sha256, SHA256_DIGEST_SIZE);
                k |= put_text(caller, "unit", e->caller->unit);
                k |= cbor_util_map_put_text(map, "caller", caller);
        }
        k |= put_text(map, "key", e->key);
        k |= put_bytes(map, "kid", e->kid, 34);
        k |= put_text(map, "task_id", e->task_id);
        k |= put_text(map, "parent_task_id", e->parent_task_id);
        k |= put_text(map, "audience", e->audience);
        k |= put_bytes(map, "digest", e->digest, SHA256_DIGEST_SIZE);
        k |= put_text(map, "rule", e->rule);
        k |= put_text(map, "reason", e->reason);
        k |= put_text(map, "request", e->request);
        if (e->has_by_uid)
                k |= cbor_util_map_put_text(map, "by_uid", cbor_util_new_uint(e->by_uid));
        /* A record stands for one decision unless it says otherwise, so a count of 1 is not written. */
        if (e->count > 1)
                k |= cbor_util_map_put_text(map, "count", cbor_util_new_uint(e->count));
        k |= put_text(map, "scope", e->scope);
        if (e->exp > 0)
                k |= cbor_util_map_put_text(map, "exp", cbor_util_new_uint(e->exp));
        k |= put_bytes(map, "cti", e->cti, 16);
        k |= put_bytes(map, "policy_sha256", e->policy_sha256, SHA256_DIGEST_SIZE);
        k |= put_bytes(map, "checkpoint", checkpoint, checkpoint_size);
        k |= put_text(map, "hook", e->hook);
        if (e->has_status)
                k |= cbor_util_map_put_text(map, "status", cbor_util_new_uint(e->status));
        if (e->output_size > 0)
                k |= put_bytes(map, "output", e->output, MIN(e->output_size, (size_t) AUDIT_OUTPUT_MAX));
        if (e->revocation_seq > 0)
                k |= cbor_util_map_put_text(map, "revocation_seq", cbor_util_new_uint(e->revocation_seq));
        if (k != 0)
                return -ENOMEM;

        /* -EINVAL here: a text that is not UTF-8. */
        r = cbor_util_encode(map, &buf, &size);
        if (r < 0)
                return r;
        if (size > AUDIT_RECORD_MAX)
                return -E2BIG;

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int audit_head_payload(uint64_t seq, const uint8_t head[AUDIT_HEAD_SIZE], uint64_t time, const uint8_t *nonce,
                       size_t nonce_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int k = 0;

        if (!head || !ret || !ret_size)
                return -EINVAL;
        if (nonce ? nonce_size < HEAD_NONCE_MIN || nonce_size > HEAD_NONCE_MAX : nonce_size != 0)
                return -EINVAL;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;
        /* "type" keeps an audit head from passing for any other host-key statement (receipts,
         * revocation lists): each payload names what it is. */
        k |= cbor_util_map_put_text(map, "type", cbor_util_new_text("audit_head"));
        k |= cbor_util_map_put_text(map, "seq", cbor_util_new_uint(seq));
        k |= cbor_util_map_put_text(map, "head", cbor_util_new_bytes(head, AUDIT_HEAD_SIZE));
        k |= cbor_util_map_put_text(map, "time", cbor_util_new_uint(time));
        if (nonce)
                k |= cbor_util_map_put_text(map, "nonce", cbor_util_new_bytes(nonce, nonce_size));
        if (k != 0)
                return -ENOMEM;

        return cbor_util_encode(map, ret, ret_size);
}

/* ---- decoding ---------------------------------------------------------------------------------- */

static bool field_valid(const Field *f, const cbor_item_t *v) {
        const uint8_t *p;
        const char *s;
        uint64_t u;
        size_t n;

        switch (f->type) {
        case FIELD_UINT:
                return cbor_util_get_uint(v, &u) >= 0 && u >= f->min && u <= f->max;
        case FIELD_TEXT:
                return cbor_util_get_text(v, &s, &n) >= 0 && n >= f->min && n <= f->max;
        case FIELD_BYTES:
                return cbor_util_get_bytes(v, &p, &n) >= 0 && n >= f->min && n <= f->max;
        case FIELD_MAP:
                return cbor_isa_map(v);
        }
        return false;
}

/*
 * map_fields() - take a decoded map apart by a schema, in one pass
 *
 * Every key must be a text naming one of fields[], with a value of its type and bounds, and every
 * required field must be there; ret[i] is the value of fields[i], or NULL. The validator has refused
 * duplicate keys already.
 *
 * Return: 0; -EBADMSG with *ret_bad naming the field missing or out of bounds (NULL: not a map, or a
 *         key that is not one of fields[]).
 */
static int map_fields(const cbor_item_t *map, const Field *fields, size_t n_fields, const cbor_item_t **ret,
                      const char **ret_bad) {
        struct cbor_pair *pairs;
        size_t n;

        *ret_bad = NULL;
        if (!map || !cbor_isa_map(map))
                return -EBADMSG;
        n = cbor_map_size(map);
        pairs = cbor_map_handle(map);
        if (n > 0 && !pairs)
                return -EBADMSG;
        for (size_t j = 0; j < n_fields; j++)
                ret[j] = NULL;

        for (size_t i = 0; i < n; i++) {
                const char *s;
                size_t l, j;

                if (cbor_util_get_text(pairs[i].key, &s, &l) < 0)
                        return -EBADMSG;
                /* s holds no NUL, so a match of l bytes means the name is at least that long. */
                for (j = 0; j < n_fields; j++)
                        if (strncmp(fields[j].name, s, l) == 0 && fields[j].name[l] == 0)
                                break;
                if (j == n_fields)
                        return -EBADMSG;
                if (!field_valid(&fields[j], pairs[i].value)) {
                        *ret_bad = fields[j].name;
                        return -EBADMSG;
                }
                ret[j] = pairs[i].value;
        }

        for (size_t j = 0; j < n_fields; j++)
                if (fields[j].required && !ret[j]) {
                        *ret_bad = fields[j].name;
                        return -EBADMSG;
                }
        return 0;
}

typedef struct HeadPayload {
        uint64_t seq, time;
        uint8_t head[AUDIT_HEAD_SIZE];
        bool has_nonce;
} HeadPayload;

static bool text_equals(const char *s, size_t n, const char *want) {
        return n == strlen(want) && memcmp(s, want, n) == 0;
}

static int head_payload_parse(const uint8_t *p, size_t n, HeadPayload *ret) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        const cbor_item_t *v[_H_MAX];
        const uint8_t *head;
        const char *type, *bad;
        size_t head_size, type_size;
        HeadPayload h = {};
        int r;

        r = cbor_util_decode(p, n, &head_limits, &map, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || map_fields(map, head_fields, _H_MAX, v, &bad) < 0)
                return -EBADMSG;
        /* "type" keeps other host-key statements (receipts, revocation lists) from passing for a head. */
        if (cbor_util_get_text(v[H_TYPE], &type, &type_size) < 0 || !text_equals(type, type_size, "audit_head"))
                return -EBADMSG;
        if (cbor_util_get_uint(v[H_SEQ], &h.seq) < 0 || cbor_util_get_uint(v[H_TIME], &h.time) < 0 ||
            cbor_util_get_bytes(v[H_HEAD], &head, &head_size) < 0)
                return -EBADMSG;
        memcpy(h.head, head, AUDIT_HEAD_SIZE);
        h.has_nonce = !!v[H_NONCE];

        *ret = h;
        return 0;
}

/*
 * The payload of a COSE_Sign1_Tagged, without checking its signature (no host key at hand): the same
 * outer shape cose_sign1_check() insists on — tag 18 (RFC 9052 §2), then one deterministic array of
 * protected bstr, unprotected map, payload bstr, signature bstr.
 */
static int cose_payload_unverified(const uint8_t *cose, size_t size, uint8_t **ret, size_t *ret_size) {
        static const CborLimits limits = {
                .max_size = AUDIT_CHECKPOINT_MAX,
                .max_depth = 2,
                .max_items = 64,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_cbor_ cbor_item_t *array = NULL;
        const uint8_t *inner, *p;
        size_t inner_size, n;
        int r;

        if (cbor_util_strip_tag(cose, size, COSE_SIGN1_TAG, &inner, &inner_size) < 0)
                return -EBADMSG;
        /* Out of memory is not a damaged checkpoint (found by tests/fuzz/alloc-fail.c). */
        r = cbor_util_decode(inner, inner_size, &limits, &array, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EBADMSG;
        if (!cbor_isa_array(array) || cbor_array_size(array) != 4)
                return -EBADMSG;

        cbor_item_t **items = cbor_array_handle(array);
        if (cbor_util_get_bytes(items[0], &p, &n) < 0 || !cbor_isa_map(items[1]) || cbor_map_size(items[1]) != 0 ||
            cbor_util_get_bytes(items[3], &p, &n) < 0 || n != COSE_ES256_SIG_SIZE ||
            cbor_util_get_bytes(items[2], &p, &n) < 0)
                return -EBADMSG;
        return memdup_sized(p, n, ret, ret_size);
}

/* The head payload inside a COSE_Sign1 by the host key; verified when key is set. */
static int cose_head_payload(const uint8_t *cose, size_t size, EVP_PKEY *key, HeadPayload *ret,
                             const char **ret_why) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        int r;

        if (key) {
                r = cose_sign1_check(cose, size, key, NULL, NULL, &payload, &payload_size);
                if (r == -EKEYREJECTED) {
                        *ret_why = "the signature does not verify with the host key";
                        return -EBADMSG;
                }
        } else
                r = cose_payload_unverified(cose, size, &payload, &payload_size);
        /* Out of memory, or OpenSSL failing (it allocates to hash and verify), says nothing about the
         * head: the caller must not report it as damaged (found by tests/fuzz/alloc-fail.c). */
        if (r == -ENOMEM || r == -EIO)
                return r;
        if (r < 0) {
                *ret_why = "not a COSE_Sign1 of agentid's profile";
                return -EBADMSG;
        }
        r = head_payload_parse(payload, payload_size, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_why = "the payload is not an audit head";
                return -EBADMSG;
        }
        return 0;
}

/*
 * record_extent() - where the record starting at p ends, trusting nothing it declares
 *
 * Walks the CBOR heads (RFC 8949 §3) of one item: a map, at most RECORD_DEPTH_MAX levels of maps and
 * arrays, RECORD_ITEMS_MAX items, AUDIT_RECORD_MAX bytes, definite lengths, no tags. Strings are
 * skipped by their declared length only once that is known to stay inside AUDIT_RECORD_MAX, and each
 * step consumes at least one byte, so the walk is bounded whatever the input says.
 *
 * Return: 1 and the size when the item is complete in p[0..n); 0 when p[0..n) is a strict prefix of
 *         an item that could still be a record (the file ends inside it); -EBADMSG when no record
 *         can start here.
 */
static int record_extent(const uint8_t *p, size_t n, size_t *ret_size) {
        uint64_t pending[RECORD_DEPTH_MAX + 1];
        unsigned depth = 0, items = 0;
        size_t pos = 0;

        if (n == 0)
                return 0;
        if (p[0] >> 5 != MAJOR_MAP)
                return -EBADMSG;

        pending[0] = 1;
        for (;;) {
                while (pending[depth] == 0) {
                        if (depth == 0) {
                                *ret_size = pos;
                                return 1;
                        }
                        depth--;
                }

                if (pos >= AUDIT_RECORD_MAX)
                        return -EBADMSG;
                if (pos >= n)
                        return 0;
                if (++items > RECORD_ITEMS_MAX)
                        return -EBADMSG;

                uint8_t major = p[pos] >> 5, ai = p[pos] & 0x1f;
                uint64_t arg = ai;
                pos++;

                /* 28-30 are reserved, 31 is an indefinite length or a break (RFC 8949 §3). */
                if (ai >= 28)
                        return -EBADMSG;
                if (ai >= 24) {
                        size_t w = (size_t) 1 << (ai - 24);
                        if (pos + w > AUDIT_RECORD_MAX)
                                return -EBADMSG;
                        if (w > n - pos)
                                return 0;
                        arg = 0;
                        for (size_t i = 0; i < w; i++)
                                arg = arg << 8 | p[pos + i];
                        pos += w;
                }
                pending[depth]--;

                switch (major) {
                case MAJOR_BYTES:
                case MAJOR_TEXT:
                        if (arg > AUDIT_RECORD_MAX - pos)
                                return -EBADMSG;
                        if (arg > n - pos)
                                return 0;
                        pos += (size_t) arg;
                        break;
                case MAJOR_ARRAY:
                case MAJOR_MAP:
                        if (depth >= RECORD_DEPTH_MAX || arg > RECORD_ITEMS_MAX)
                                return -EBADMSG;
                        depth++;
                        pending[depth] = major == MAJOR_MAP ? 2 * arg : arg;
                        break;
                case MAJOR_TAG:
                        return -EBADMSG;
                default:
                        break;  /* integers and simple values: the head is all */
                }
        }
}

/* What record_parse() takes out of a record. */
typedef struct RecordFields {
        uint64_t seq;
        uint8_t prev[AUDIT_HEAD_SIZE];
        uint8_t *checkpoint;            /* malloc'd copy of the COSE_Sign1, checkpoints only */
        size_t checkpoint_size;
} RecordFields;

static void record_fields_done(RecordFields *f) {
        f->checkpoint = mfree(f->checkpoint);
}

/*
 * record_parse() - is p[0..n) one record of docs/formats.md §9?
 *
 * The validator first (deterministic encoding, the record bounds), then the keys and their types.
 * Chaining is not looked at here.
 *
 * Return: 0; -EBADMSG with why; -ENOMEM.
 */
static int record_parse(const uint8_t *p, size_t n, RecordFields *ret, char why[static WHY_MAX]) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        const cbor_item_t *v[_R_MAX], *c[_C_MAX];
        const uint8_t *prev, *cp = NULL;
        const char *action, *decision, *bad;
        size_t prev_size, action_size, decision_size, cp_size = 0;
        RecordFields f = {};
        int r;

        r = cbor_util_decode(p, n, &record_limits, &map, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                (void) snprintf(why, WHY_MAX,
                                "not a record: CBOR that is malformed, not deterministic or over the limits");
                return -EBADMSG;
        }
        if (map_fields(map, record_fields, _R_MAX, v, &bad) < 0) {
                if (bad)
                        (void) snprintf(why, WHY_MAX, "not a record: \"%s\" missing, or of the wrong type or size",
                                        bad);
                else
                        (void) snprintf(why, WHY_MAX, "not a record: a key that is not in the format");
                return -EBADMSG;
        }
        if (v[R_CALLER] && map_fields(v[R_CALLER], caller_fields, _C_MAX, c, &bad) < 0) {
                (void) snprintf(why, WHY_MAX, "not a record: caller is not {uid, ? pid, ? exe_sha256, ? unit}");
                return -EBADMSG;
        }

        /* The schema checked them all; these only fetch. */
        (void) cbor_util_get_uint(v[R_SEQ], &f.seq);
        (void) cbor_util_get_bytes(v[R_PREV], &prev, &prev_size);
        (void) cbor_util_get_text(v[R_ACTION], &action, &action_size);
        (void) cbor_util_get_text(v[R_DECISION], &decision, &decision_size);
        memcpy(f.prev, prev, AUDIT_HEAD_SIZE);

        /* A checkpoint is exactly that and nothing else, and only a checkpoint carries one. */
        if (v[R_CHECKPOINT])
                (void) cbor_util_get_bytes(v[R_CHECKPOINT], &cp, &cp_size);
        if (!!cp != text_equals(action, action_size, "checkpoint") ||
            (cp && (!text_equals(decision, decision_size, "done") || cbor_map_size(map) != 6))) {
                (void) snprintf(why, WHY_MAX, "not a record: a checkpoint is exactly {seq, time, prev, "
                                "action: \"checkpoint\", decision: \"done\", checkpoint}");
                return -EBADMSG;
        }
        if (cp && memdup_sized(cp, cp_size, &f.checkpoint, &f.checkpoint_size) < 0)
                return -ENOMEM;

        *ret = f;
        return 0;
}

/* ---- the chain --------------------------------------------------------------------------------- */

typedef struct Chain {
        uint64_t seq;                   /* of the last record accepted (the one before the first: 0) */
        uint8_t head[AUDIT_HEAD_SIZE];  /* SHA-256 of its bytes (zeros before seq 1) */
        bool head_known;                /* false: that record is in a file we did not read */
        uint64_t checkpoint_seq;
        uint64_t records, checkpoints;
        HeadRing *ring;                 /* recent hashes, for checkpoints */
} Chain;

typedef struct RecordInfo {
        uint64_t seq;
        uint8_t hash[AUDIT_HEAD_SIZE];
        bool checkpoint;
} RecordInfo;

enum {
        RECORD_MALFORMED = 1,           /* not a record at all */
        RECORD_BROKEN = 2,              /* a record, but it does not continue the chain */
};

/*
 * record_check() - can p[0..n) come next in the chain?
 *
 * seq is one more than the last, prev is the SHA-256 of the last record's bytes, and a checkpoint
 * names one of the CHECKPOINT_WINDOW records before it with its hash (for the one right before:
 * this record's prev) in a head payload without nonce, signed by host_key when one is given.
 *
 * Return: 0 and *ret; RECORD_MALFORMED or RECORD_BROKEN with why; -ENOMEM, -EIO.
 */
static int record_check(const Chain *c, const uint8_t *p, size_t n, EVP_PKEY *host_key, RecordInfo *ret,
                        char why[static WHY_MAX]) {
        _cleanup_(record_fields_done) RecordFields f = {};
        const char *w = NULL;
        int r;

        r = record_parse(p, n, &f, why);
        if (r == -EBADMSG)
                return RECORD_MALFORMED;
        if (r < 0)
                return r;

        if (f.seq != c->seq + 1) {
                (void) snprintf(why, WHY_MAX, "found seq %" PRIu64 " where seq %" PRIu64 " belongs", f.seq,
                                c->seq + 1);
                return RECORD_BROKEN;
        }
        if (c->head_known && memcmp(f.prev, c->head, AUDIT_HEAD_SIZE) != 0) {
                (void) snprintf(why, WHY_MAX,
                                "prev is not the SHA-256 of the record before it (seq %" PRIu64 " or this one "
                                "was altered)", c->seq);
                return RECORD_BROKEN;
        }

        if (f.checkpoint) {
                HeadPayload h;

                r = cose_head_payload(f.checkpoint, f.checkpoint_size, host_key, &h, &w);
                if (r == -ENOMEM || r == -EIO)
                        return r;
                if (r < 0) {
                        (void) snprintf(why, WHY_MAX, "checkpoint: %s", w);
                        return RECORD_BROKEN;
                }
                const uint8_t *named = NULL;
                int g = h.seq + 1 == f.seq ? 0 : ring_get(c->ring, h.seq, &named);
                if (h.seq + 1 == f.seq)
                        named = f.prev;
                /* A record before what was read (-ENOENT) cannot be compared here; audit_verify_dir(),
                 * which reads from the first file, has them all within the window. */
                if (h.has_nonce || h.seq >= f.seq || g == -ERANGE ||
                    (named && memcmp(h.head, named, AUDIT_HEAD_SIZE) != 0)) {
                        (void) snprintf(why, WHY_MAX,
                                        "checkpoint: does not name one of the %u records before it with its hash "
                                        "(it names seq %" PRIu64 ")", CHECKPOINT_WINDOW, h.seq);
                        return RECORD_BROKEN;
                }
        }

        r = sha256(p, n, ret->hash);
        if (r < 0)
                return r;
        ret->seq = f.seq;
        ret->checkpoint = !!f.checkpoint;
        return 0;
}

static void chain_commit(Chain *c, const RecordInfo *ri) {
        ring_put(c->ring, ri->seq, ri->hash);
        c->seq = ri->seq;
        memcpy(c->head, ri->hash, AUDIT_HEAD_SIZE);
        c->head_known = true;
        c->records++;
        if (ri->checkpoint) {
                c->checkpoint_seq = ri->seq;
                c->checkpoints++;
        }
}

/* ---- reading files ----------------------------------------------------------------------------- */

typedef struct FileReader {
        int fd;
        uint64_t size;                  /* as found when the file was opened */
        uint8_t *buf;                   /* READ_WINDOW bytes */
        uint64_t buf_off;               /* file offset of buf[0] */
        size_t buf_len;
} FileReader;

static void file_reader_done(FileReader *fr) {
        fr->buf = mfree(fr->buf);
}

static int file_reader_init(FileReader *fr, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        *fr = (FileReader) { .fd = fd, .size = (uint64_t) st.st_size };
        fr->buf = malloc(READ_WINDOW);
        return fr->buf ? 0 : -ENOMEM;
}

/* The bytes from off on: at least a whole record's worth, fewer only where the file ends. */
static int file_reader_window(FileReader *fr, uint64_t off, const uint8_t **ret, size_t *ret_size) {
        uint64_t end = fr->buf_off + fr->buf_len;

        if (off > fr->size)
                off = fr->size;
        if (off < fr->buf_off || off > end || (end < fr->size && end - off < AUDIT_RECORD_MAX)) {
                size_t want = (size_t) MIN((uint64_t) READ_WINDOW, fr->size - off), got = 0;

                while (got < want) {
                        ssize_t k = pread(fr->fd, fr->buf + got, want - got, (off_t) (off + got));
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        if (k == 0) {
                                /* Shrunk while we read it: what is there is all there is. */
                                fr->size = off + got;
                                break;
                        }
                        got += (size_t) k;
                }
                fr->buf_off = off;
                fr->buf_len = got;
                end = off + got;
        }

        *ret = fr->buf + (off - fr->buf_off);
        *ret_size = (size_t) (end - off);
        return 0;
}

/* Whether the bytes from off to the end are what a crash in the middle of an append leaves: zeros, or
 * a strict prefix of a record followed by nothing but zeros. Return: 1, 0, or -errno. */
static int file_reader_torn_tail(FileReader *fr, uint64_t off) {
        const uint8_t *p;
        size_t n, used, len;
        int r;

        r = file_reader_window(fr, off, &p, &n);
        if (r < 0)
                return r;
        if (fr->size - off > n || n > AUDIT_RECORD_MAX)
                return 0; /* more than one record's worth: not one interrupted append */
        used = n;
        while (used > 0 && p[used - 1] == 0)
                used--;
        return used == 0 || record_extent(p, used, &len) == 0;
}

typedef enum ScanStatus {
        SCAN_CLEAN,                     /* every byte belongs to a record that passed */
        SCAN_TORN,                      /* a record cut short (and zeros) at the end */
        SCAN_CORRUPT,                   /* other bytes that are no record */
        SCAN_BROKEN,                    /* a well-formed record that does not continue the chain */
} ScanStatus;

typedef int (*ScanHook)(const Chain *c, const RecordInfo *ri, const uint8_t *p, size_t n, void *userdata,
                        char why[static WHY_MAX]);

typedef struct Scan {
        EVP_PKEY *host_key;
        ScanHook hook;                  /* called for each record that passed; > 0: broken, with why */
        void *userdata;

        ScanStatus status;
        uint64_t good_end;              /* offset after the last record that passed */
        uint64_t size;
        char why[WHY_MAX];
} Scan;

/*
 * scan_file() - read fd's records from the start, continuing c
 *
 * Stops at the first offset that does not hold a record continuing the chain. What is there decides
 * the status: the file ends inside an item (a strict prefix), or such a prefix or nothing is followed
 * only by zeros (what a crash leaves on some file systems), is SCAN_TORN; anything else malformed is
 * SCAN_CORRUPT; a well-formed record that does not chain is SCAN_BROKEN, never torn — a crash cannot
 * write one.
 *
 * Return: 0 with s->status; -errno on I/O errors; a hook's negative return.
 */
static int scan_file(int fd, Chain *c, Scan *s) {
        _cleanup_(file_reader_done) FileReader fr = {};
        uint64_t off = 0;
        int r;

        r = file_reader_init(&fr, fd);
        if (r < 0)
                return r;

        s->status = SCAN_CLEAN;
        s->why[0] = 0;
        for (;;) {
                const uint8_t *p;
                RecordInfo ri;
                size_t n, len;

                r = file_reader_window(&fr, off, &p, &n);
                if (r < 0)
                        return r;
                if (n == 0)
                        break;

                r = record_extent(p, n, &len);
                if (r == 0) {
                        s->status = SCAN_TORN;
                        (void) snprintf(s->why, WHY_MAX, "the file ends inside a record (%zu bytes)", n);
                        break;
                }
                if (r > 0) {
                        r = record_check(c, p, len, s->host_key, &ri, s->why);
                        if (r < 0)
                                return r;
                        if (r == 0 && s->hook) {
                                r = s->hook(c, &ri, p, len, s->userdata, s->why);
                                if (r < 0)
                                        return r;
                                if (r > 0)
                                        r = RECORD_BROKEN;
                        }
                        if (r == 0) {
                                chain_commit(c, &ri);
                                off += len;
                                continue;
                        }
                        if (r == RECORD_BROKEN) {
                                s->status = SCAN_BROKEN;
                                break;
                        }
                } else
                        (void) snprintf(s->why, WHY_MAX, "not a record: no CBOR map of a record's size and shape");

                /* Malformed here. A crash leaves a strict prefix of a record (above), possibly followed
                 * by zeros where the data never landed. Only that is torn; a complete item that is no
                 * record — a bit flipped in the last record, say — is damage and is never cut. */
                r = file_reader_torn_tail(&fr, off);
                if (r < 0)
                        return r;
                s->status = r > 0 ? SCAN_TORN : SCAN_CORRUPT;
                if (r > 0) {
                        size_t l = strlen(s->why);
                        (void) snprintf(s->why + l, WHY_MAX - l, " (%" PRIu64 " bytes at the end)", fr.size - off);
                }
                break;
        }

        s->good_end = off;
        s->size = fr.size;
        return 0;
}

/* ---- the directory ----------------------------------------------------------------------------- */

/* Open (creating if missing) <state>/audit: 0700, ours, writable by nobody else. */
static int open_audit_dir(int state_fd, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (mkdirat(state_fd, AUDIT_DIR, 0700) >= 0) {
                /* The new entry must survive a crash as surely as the records we put in it. */
                int r = fsync_directory(state_fd);
                if (r < 0)
                        return r;
        } else if (errno != EEXIST)
                return -errno;

        fd = openat(state_fd, AUDIT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* Anyone else able to write here could remove or replace files unnoticed until a verify. */
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return -EPERM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* An audit file, which must be a regular file: -ELOOP for a symbolic link, -EBADMSG for anything else
 * (O_NONBLOCK, so that a FIFO under such a name cannot hang the reader). */
static int open_audit_file(int dir_fd, const char *name, int flags, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = openat(dir_fd, name, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return (x > y) - (x < y);
}

/*
 * list_files() - the first seqs of the files in an audit directory, ascending
 * @ret_unexpected: if not NULL, set to the (alphabetically) first entry that is not an audit file
 *
 * Return: 0; -ENOMEM; -errno.
 */
static int list_files(int dir_fd, uint64_t **ret, size_t *ret_n, char ret_unexpected[static 256]) {
        _cleanup_free_ uint64_t *seqs = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;
        int fd, r = 0;

        ret_unexpected[0] = 0;
        fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        rewinddir(d);

        errno = 0;
        while ((de = readdir(d))) {
                uint64_t seq;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (!parse_file_name(de->d_name, &seq)) {
                        if (!ret_unexpected[0] || strcmp(de->d_name, ret_unexpected) < 0)
                                (void) snprintf(ret_unexpected, 256, "%s", de->d_name);
                        continue;
                }
                if (n == allocated) {
                        size_t m = MAX(allocated * 2, (size_t) 16);
                        uint64_t *s = reallocarray(seqs, m, sizeof(uint64_t));
                        if (!s) {
                                r = -ENOMEM;
                                break;
                        }
                        seqs = s;
                        allocated = m;
                }
                seqs[n++] = seq;
                errno = 0;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(d);
        if (r < 0)
                return r;

        if (n > 0)
                qsort(seqs, n, sizeof(uint64_t), cmp_u64);
        *ret = TAKE_PTR(seqs);
        *ret_n = n;
        return 0;
}

/* ---- open, close ------------------------------------------------------------------------------- */

static void refusal_window_done(RefusalWindow *w) {
        free(w->key);
        free(w->action);
        free(w->decision);
        free(w->rule);
        free(w->reason);
        *w = (RefusalWindow) {};
}

static int sync_set_error(AuditLog *l, int r) {
        int expected = 0;

        /* The first error is the one that matters; keep it. */
        (void) atomic_compare_exchange_strong(&l->sync_error, &expected, r);
        return atomic_load(&l->sync_error);
}

static void durable_publish(AuditLog *l, uint64_t seq) {
        uint64_t cur = atomic_load(&l->durable_seq);

        while (cur < seq && !atomic_compare_exchange_weak(&l->durable_seq, &cur, seq))
                ;
}

static void event_notify(AuditLog *l) {
        uint64_t one = 1;

        /* Non-blocking: if the counter is about to overflow, the reader is already behind anyway. */
        if (l->event_fd >= 0)
                (void) !write(l->event_fd, &one, sizeof(one));
}

AuditLog *audit_log_close(AuditLog *l) {
        if (!l)
                return NULL;

        /* Counts still open would be lost otherwise; a failure can only be noted. */
        if (l->fd >= 0 && atomic_load(&l->sync_error) == 0) {
                int r = audit_log_flush_refusals(l, 0, true);
                if (r < 0)
                        log_debug("audit: writing the open refusal counts failed: %s", strerror(-r));
        }

        if (l->thread_started) {
                pthread_mutex_lock(&l->lock);
                l->stop = true;
                pthread_cond_signal(&l->cond);
                pthread_mutex_unlock(&l->lock);
                (void) pthread_join(l->thread, NULL);
        }

        if (l->fd >= 0 && atomic_load(&l->sync_error) == 0) {
                if (fdatasync(l->fd) < 0)
                        log_debug_errno(errno, "audit: final fdatasync failed: %m");
                else
                        durable_publish(l, l->seq);
        }

        for (size_t i = 0; i < l->n_windows; i++)
                refusal_window_done(&l->windows[i]);
        free(l->windows);
        free(l->ring);

        safe_close(l->fd);
        safe_close(l->dir_fd);
        safe_close(l->event_fd);
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
        return mfree(l);
}

/*
 * Reading at open: the newest file fully, and the one before it, which holds the head the newest
 * file's first record must chain to (and the whole chain when the newest file is still empty, as a
 * crash right after a rotation leaves it). Older files are audit_verify_dir()'s business.
 */
int audit_log_open(int state_fd, uint64_t file_max, AuditLog **ret, uint64_t *ret_recovered,
                   char error[AUDIT_ERROR_MAX]) {
        _cleanup_(audit_log_closep) AuditLog *l = NULL;
        _cleanup_free_ uint64_t *seqs = NULL;
        char name[AUDIT_FILE_NAME_MAX], unexpected[256];
        Chain c = {};
        uint64_t recovered = 0;
        size_t n_seqs = 0;
        int r;

        if (error)
                error[0] = 0;
        if (state_fd < 0 || !ret)
                return -EINVAL;

        /* calloc, not a compound literal: the atomics are not to be copied. */
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->dir_fd = l->fd = l->event_fd = -EBADF;
        l->ring = calloc(1, sizeof(HeadRing));
        if (!l->ring)
                return -ENOMEM;
        l->file_max = file_max > 0 ? file_max : AUDIT_FILE_MAX_DEFAULT;
        l->lock = (pthread_mutex_t) PTHREAD_MUTEX_INITIALIZER;
        l->cond = (pthread_cond_t) PTHREAD_COND_INITIALIZER;

        r = open_audit_dir(state_fd, &l->dir_fd);
        if (r == -EPERM) {
                set_error(error, AUDIT_DIR ": owned by someone else or writable by group or others");
                return r;
        }
        if (r < 0) {
                set_error(error, AUDIT_DIR ": cannot open or create it: %s", strerror(-r));
                return r;
        }
        /* One writer: two would interleave records with the same seq. */
        if (flock(l->dir_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                set_error(error, AUDIT_DIR ": %s", r == -EBUSY ? "in use by another writer" : strerror(-r));
                return r;
        }

        r = list_files(l->dir_fd, &seqs, &n_seqs, unexpected);
        if (r < 0) {
                set_error(error, AUDIT_DIR ": cannot list it: %s", strerror(-r));
                return r;
        }

        if (n_seqs > 0) {
                uint64_t newest = seqs[n_seqs - 1];
                Scan s = {};

                if (n_seqs > 1) {
                        _cleanup_close_ int prev_fd = -EBADF;
                        uint64_t first = seqs[n_seqs - 2];

                        format_file_name(first, name);
                        r = open_audit_file(l->dir_fd, name, O_RDONLY, &prev_fd);
                        if (r < 0) {
                                set_error(error, AUDIT_DIR "/%s: %s", name,
                                          r == -EBADMSG ? "not a regular file" : strerror(-r));
                                return r;
                        }
                        /* Its first record's prev is in a file we do not read. */
                        c = (Chain) { .seq = first - 1, .head_known = first == 1, .ring = l->ring };
                        r = scan_file(prev_fd, &c, &s);
                        if (r < 0) {
                                set_error(error, AUDIT_DIR "/%s: %s", name, strerror(-r));
                                return r;
                        }
                        /* Rotation synced it before the next file existed: it cannot be torn. */
                        if (s.status != SCAN_CLEAN || c.records == 0) {
                                set_error(error, AUDIT_DIR "/%s: seq %" PRIu64 ": %s", name, c.seq + 1,
                                          c.records == 0 && s.status == SCAN_CLEAN ? "empty file before the newest"
                                                                                    : s.why);
                                return -EBADMSG;
                        }
                        if (c.seq + 1 != newest) {
                                format_file_name(newest, name);
                                set_error(error, AUDIT_DIR "/%s: named for seq %" PRIu64 ", but the file before "
                                          "it ends at seq %" PRIu64, name, newest, c.seq);
                                return -EBADMSG;
                        }
                } else
                        /* Before seq 1 there is nothing (prev = zeros); before any other first record
                         * there is a file no longer here, which only verify would miss. */
                        c = (Chain) { .seq = newest - 1, .head_known = newest == 1, .ring = l->ring };

                format_file_name(newest, name);
                r = open_audit_file(l->dir_fd, name, O_RDWR | O_APPEND, &l->fd);
                if (r < 0) {
                        set_error(error, AUDIT_DIR "/%s: %s", name,
                                  r == -EBADMSG ? "not a regular file" : strerror(-r));
                        return r;
                }
                r = scan_file(l->fd, &c, &s);
                if (r < 0) {
                        set_error(error, AUDIT_DIR "/%s: %s", name, strerror(-r));
                        return r;
                }
                if (s.status == SCAN_CORRUPT || s.status == SCAN_BROKEN) {
                        set_error(error, AUDIT_DIR "/%s: seq %" PRIu64 ": %s", name, c.seq + 1, s.why);
                        return -EBADMSG;
                }
                if (s.status == SCAN_TORN) {
                        /* A crash mid-append: cut it off, durably, before anything follows it. */
                        if (ftruncate(l->fd, (off_t) s.good_end) < 0 || fsync(l->fd) < 0) {
                                r = -errno;
                                set_error(error, AUDIT_DIR "/%s: cutting off a torn record: %s", name, strerror(-r));
                                return r;
                        }
                        recovered = s.size - s.good_end;
                        log_debug("audit: %s: cut off %" PRIu64 " bytes of a torn record", name, recovered);
                }
                if (!c.head_known) {
                        set_error(error, AUDIT_DIR "/%s: empty, and the record before seq %" PRIu64
                                  " is in no file: the chain cannot be continued", name, newest);
                        return -EBADMSG;
                }
                /* What a previous run wrote may still be only in the page cache. */
                if (s.good_end > 0 && fdatasync(l->fd) < 0) {
                        r = -errno;
                        set_error(error, AUDIT_DIR "/%s: fdatasync: %s", name, strerror(-r));
                        return r;
                }

                l->file_size = s.good_end;
                l->seq = c.seq;
                memcpy(l->head, c.head, AUDIT_HEAD_SIZE);
                /* 0 when the files read hold none: a checkpoint is due then anyway. */
                l->checkpoint_seq = c.checkpoint_seq;
        }

        l->written_seq = l->seq;
        atomic_store(&l->durable_seq, l->seq);
        if (ret_recovered)
                *ret_recovered = recovered;
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- appending --------------------------------------------------------------------------------- */

/* Start the file the next record (seq) goes into, after making the current one durable. */
static int rotate(AuditLog *l, uint64_t seq) {
        _cleanup_close_ int fd = -EBADF;
        char name[AUDIT_FILE_NAME_MAX];
        struct stat st;
        int r, old;

        /* Everything below the current file must be durable (the sync thread only looks at the current
         * one), and the old file complete before the new one's first record chains to it. */
        if (l->fd >= 0 && fdatasync(l->fd) < 0)
                return sync_set_error(l, -errno);

        format_file_name(seq, name);
        fd = openat(l->dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0 && errno == EEXIST) {
                /* Left empty by an earlier attempt that failed after creating it: take it over. */
                fd = openat(l->dir_fd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd < 0)
                        return -errno;
                if (fstat(fd, &st) < 0)
                        return -errno;
                if (!S_ISREG(st.st_mode) || st.st_size != 0)
                        return -EEXIST;
        } else if (fd < 0)
                return -errno;
        /* The umask must not decide who reads the audit log. */
        if (fchmod(fd, 0600) < 0)
                return -errno;
        r = fsync_directory(l->dir_fd);
        if (r < 0) {
                (void) unlinkat(l->dir_fd, name, 0);
                return r;
        }

        pthread_mutex_lock(&l->lock);
        old = l->fd;
        l->fd = TAKE_FD(fd);
        pthread_mutex_unlock(&l->lock);
        safe_close(old);
        l->file_size = 0;
        return 0;
}

/* Write one encoded record as the next one: a single write(2), undone if it fails. */
/* Why a write came back short: no free blocks left is ENOSPC; anything else (a quota, the file size
 * limit) is reported as EIO, which the caller treats as the same storage failure. */
static int short_write_cause(int fd) {
        struct statvfs sv;

        if (fstatvfs(fd, &sv) >= 0 && sv.f_bavail == 0)
                return -ENOSPC;
        return -EIO;
}

static int append_record(AuditLog *l, const uint8_t *buf, size_t size) {
        uint8_t hash[AUDIT_HEAD_SIZE];
        ssize_t n;
        int r;

        r = sha256(buf, size, hash);
        if (r < 0)
                return r;

        if (l->fd < 0 || (l->file_size > 0 && l->file_size + size > l->file_max)) {
                r = rotate(l, l->seq + 1);
                if (r < 0)
                        return r;
        }

        do
                n = write(l->fd, buf, size);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t) size) {
                /* A short write is ENOSPC, EFBIG or EDQUOT on its way. Not written again to learn which:
                 * a second write past RLIMIT_FSIZE raises SIGXFSZ, and one that completes the record
                 * would leave a refused decision in the log if the truncation below failed. */
                r = n < 0 ? -errno : short_write_cause(l->fd);
                if (n >= 0 && ftruncate(l->fd, (off_t) l->file_size) < 0) {
                        /* The file now ends in a torn record: stop here, the next open cuts it off. */
                        log_debug_errno(errno, "audit: undoing a failed write failed: %m");
                        return sync_set_error(l, r);
                }
                return r;
        }

        l->file_size += size;
        l->seq++;
        memcpy(l->head, hash, AUDIT_HEAD_SIZE);
        ring_put(l->ring, l->seq, hash);

        pthread_mutex_lock(&l->lock);
        l->written_seq = l->seq;
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
        return 0;
}

static int append_entry(AuditLog *l, const AuditEntry *e, const uint8_t *checkpoint, size_t checkpoint_size,
                        uint64_t *ret_seq) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = atomic_load(&l->sync_error);
        if (r < 0)
                return r;
        if (l->seq == UINT64_MAX)
                return -EOVERFLOW;

        r = record_encode(e, l->seq + 1, e->time > 0 ? e->time : now_seconds(), l->head, checkpoint,
                          checkpoint_size, &buf, &size);
        if (r < 0)
                return r;
        r = append_record(l, buf, size);
        if (r < 0)
                return r;
        if (ret_seq)
                *ret_seq = l->seq;
        return 0;
}

int audit_log_append(AuditLog *l, const AuditEntry *e, uint64_t *ret_seq) {
        if (!l || !e || !text_present(e->action) || !text_present(e->decision))
                return -EINVAL;
        /* Checkpoints only come from audit_log_append_checkpoint(), with their signature. */
        if (streq(e->action, "checkpoint"))
                return -EINVAL;
        return append_entry(l, e, NULL, 0, ret_seq);
}

int audit_log_append_checkpoint(AuditLog *l, const uint8_t *cose, size_t size, uint64_t *ret_seq) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        HeadPayload h;
        int r;

        if (!l || !cose || size == 0 || size > AUDIT_CHECKPOINT_MAX)
                return -EINVAL;

        /* Written only if it names a record in the window with its hash, so verify can check it; the
         * signature is the signer's business (and the verifier's). */
        r = cose_payload_unverified(cose, size, &payload, &payload_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || head_payload_parse(payload, payload_size, &h) < 0 || h.has_nonce)
                return -EINVAL;
        const uint8_t *named = NULL;
        if (h.seq > l->seq || ring_get(l->ring, h.seq, &named) < 0 || memcmp(h.head, named, AUDIT_HEAD_SIZE) != 0)
                return -ESTALE;

        const AuditEntry e = {
                .action = "checkpoint",
                .decision = "done",
        };
        r = append_entry(l, &e, cose, size, ret_seq);
        if (r < 0)
                return r;
        l->checkpoint_seq = l->seq;
        return 0;
}

void audit_log_head(const AuditLog *l, uint64_t *ret_seq, uint8_t ret_head[AUDIT_HEAD_SIZE]) {
        if (ret_seq)
                *ret_seq = l->seq;
        if (ret_head)
                memcpy(ret_head, l->head, AUDIT_HEAD_SIZE);
}

uint64_t audit_log_since_checkpoint(const AuditLog *l) {
        return l->seq - l->checkpoint_seq;
}

/* ---- refusal aggregation ----------------------------------------------------------------------- */

/* FNV-1a over the identity, each field ended by a byte no text contains (the texts hold no NUL). */
static uint64_t hash_mix(uint64_t h, const char *s) {
        if (s)
                for (; *s; s++)
                        h = (h ^ (unsigned char) *s) * UINT64_C(0x100000001b3);
        return (h ^ (s ? 0x00 : 0xff)) * UINT64_C(0x100000001b3);
}

static uint64_t refusal_hash(const AuditEntry *e) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        char uid[16] = "";

        if (e->caller)
                (void) snprintf(uid, sizeof(uid), "%" PRIu32, e->caller->uid);
        h = hash_mix(h, e->caller ? uid : NULL);
        h = hash_mix(h, e->key);
        h = hash_mix(h, e->action);
        h = hash_mix(h, e->decision);
        h = hash_mix(h, e->rule);
        return hash_mix(h, e->reason);
}

/* Compares the texts as they are written (cut to AUDIT_TEXT_MAX). */
static bool text_same(const char *window, const char *s) {
        if (!window || !s)
                return window == s;
        size_t n = text_cut(s, AUDIT_TEXT_MAX);
        return strlen(window) == n && memcmp(window, s, n) == 0;
}

static bool refusal_matches(const RefusalWindow *w, uint64_t hash, const AuditEntry *e) {
        return w->hash == hash && w->has_uid == !!e->caller && (!e->caller || w->uid == e->caller->uid) &&
                text_same(w->key, e->key) && text_same(w->action, e->action) &&
                text_same(w->decision, e->decision) && text_same(w->rule, e->rule) &&
                text_same(w->reason, e->reason);
}

static int strdup_cut(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = memdup_cstr(s, text_cut(s, AUDIT_TEXT_MAX));
        return *ret ? 0 : -ENOMEM;
}

/* Write what window i counted (if anything) and close it. */
static int refusal_window_flush(AuditLog *l, size_t i, bool *ret_written) {
        RefusalWindow *w = &l->windows[i];
        int r;

        *ret_written = false;
        if (w->count > 0) {
                /* Only the identity: the counted refusals may differ in everything else (pid, task). */
                const AuditCaller caller = { .uid = w->uid };
                const AuditEntry e = {
                        .time = w->time,
                        .action = w->action,
                        .decision = w->decision,
                        .caller = w->has_uid ? &caller : NULL,
                        .key = w->key,
                        .rule = w->rule,
                        .reason = w->reason,
                        .count = w->count,      /* 1: a plain record, the one refusal it stands for */
                };
                r = append_entry(l, &e, NULL, 0, NULL);
                if (r < 0)
                        return r;
                *ret_written = true;
        }

        refusal_window_done(w);
        memmove(l->windows + i, l->windows + i + 1, (l->n_windows - i - 1) * sizeof(RefusalWindow));
        l->n_windows--;
        return 0;
}

int audit_log_refusal(AuditLog *l, const AuditEntry *e, uint64_t now_usec, uint64_t *ret_seq) {
        _cleanup_(refusal_window_done) RefusalWindow w = {};
        uint64_t hash, seq;
        bool written;
        int r;

        if (!l || !e || !text_present(e->action) || !text_present(e->decision) || streq(e->action, "checkpoint"))
                return -EINVAL;

        hash = refusal_hash(e);
        for (size_t i = 0; i < l->n_windows; i++) {
                RefusalWindow *x = &l->windows[i];

                if (!refusal_matches(x, hash, e))
                        continue;
                if (now_usec < x->start + AUDIT_AGGREGATE_WINDOW_USEC) {
                        x->count++;
                        x->time = e->time;
                        if (ret_seq)
                                *ret_seq = 0;
                        return 0;
                }
                /* Its window has passed: what it counted goes first, then this one opens a new one. */
                r = refusal_window_flush(l, i, &written);
                if (r < 0)
                        return r;
                break;
        }

        w = (RefusalWindow) {
                .start = now_usec,
                .hash = hash,
                .has_uid = !!e->caller,
                .uid = e->caller ? e->caller->uid : 0,
        };
        if (strdup_cut(e->key, &w.key) < 0 || strdup_cut(e->action, &w.action) < 0 ||
            strdup_cut(e->decision, &w.decision) < 0 || strdup_cut(e->rule, &w.rule) < 0 ||
            strdup_cut(e->reason, &w.reason) < 0)
                return -ENOMEM;

        if (!l->windows) {
                l->windows = calloc(AUDIT_AGGREGATE_MAX, sizeof(RefusalWindow));
                if (!l->windows)
                        return -ENOMEM;
        }
        /* Bounded: a caller cycling through keys or reasons cannot grow the table. */
        if (l->n_windows == AUDIT_AGGREGATE_MAX) {
                r = refusal_window_flush(l, 0, &written);
                if (r < 0)
                        return r;
        }

        r = audit_log_append(l, e, &seq);
        if (r < 0)
                return r;

        l->windows[l->n_windows++] = w;
        w = (RefusalWindow) {};
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

int audit_log_flush_refusals(AuditLog *l, uint64_t now_usec, bool all) {
        int n = 0, r;

        if (!l)
                return -EINVAL;

        for (size_t i = 0; i < l->n_windows;) {
                bool written;

                if (!all && now_usec < l->windows[i].start + AUDIT_AGGREGATE_WINDOW_USEC) {
                        i++;
                        continue;
                }
                /* On failure the window stays open: its count is retried at the next flush. */
                r = refusal_window_flush(l, i, &written);
                if (r < 0)
                        return r;
                n += written;
        }
        return n;
}

uint64_t audit_log_next_flush(const AuditLog *l) {
        uint64_t next = 0;

        for (size_t i = 0; i < l->n_windows; i++) {
                uint64_t t = l->windows[i].start + AUDIT_AGGREGATE_WINDOW_USEC;
                if (next == 0 || t < next)
                        next = t;
        }
        return next;
}

/* ---- durability -------------------------------------------------------------------------------- */

static void *sync_thread(void *userdata) {
        AuditLog *l = userdata;
        uint64_t synced;

        /* From what is durable, not from what is written: appends may come before we first run. */
        pthread_mutex_lock(&l->lock);
        synced = atomic_load(&l->durable_seq);
        for (;;) {
                while (!l->stop && l->written_seq <= synced)
                        pthread_cond_wait(&l->cond, &l->lock);
                if (l->stop)
                        break;

                /* Everything up to target has been written to this fd or to a file rotation already
                 * synced; the dup keeps the file open should a rotation close l->fd meanwhile. */
                uint64_t target = l->written_seq;
                int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 3);
                int r = fd < 0 ? -errno : 0;
                pthread_mutex_unlock(&l->lock);

                if (r == 0 && fdatasync(fd) < 0)
                        r = -errno;
                safe_close(fd);
                synced = target;

                if (r < 0)
                        (void) sync_set_error(l, r);
                else if (atomic_load(&l->sync_error) == 0)
                        durable_publish(l, target);
                /* Also on errors: the event loop must learn that nothing more will become durable. */
                event_notify(l);

                pthread_mutex_lock(&l->lock);
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

int audit_log_start_sync(AuditLog *l, int *ret_event_fd) {
        sigset_t all, old;
        int r;

        if (!l || !ret_event_fd)
                return -EINVAL;
        if (l->thread_started) {
                *ret_event_fd = l->event_fd;
                return 0;
        }

        l->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->event_fd < 0)
                return -errno;

        /* Signals are the event loop's (signalfd); the thread must never take one. */
        sigfillset(&all);
        r = -pthread_sigmask(SIG_SETMASK, &all, &old);
        if (r < 0)
                return r;
        r = -pthread_create(&l->thread, NULL, sync_thread, l);
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                l->event_fd = safe_close(l->event_fd);
                return r;
        }
        l->thread_started = true;
        *ret_event_fd = l->event_fd;
        return 0;
}

uint64_t audit_log_durable_seq(const AuditLog *l) {
        return atomic_load(&l->durable_seq);
}

int audit_log_sync(AuditLog *l) {
        int r;

        if (!l)
                return -EINVAL;
        r = atomic_load(&l->sync_error);
        if (r < 0)
                return r;
        if (l->fd >= 0 && fdatasync(l->fd) < 0)
                return sync_set_error(l, -errno);
        durable_publish(l, l->seq);
        event_notify(l);
        return 0;
}

int audit_log_sync_error(const AuditLog *l) {
        return atomic_load(&l->sync_error);
}

/* ---- verifying --------------------------------------------------------------------------------- */

typedef struct VerifyState {
        AuditRecordFn fn;
        void *userdata;
        bool has_head;
        HeadPayload head;
        int fn_error;
} VerifyState;

static int verify_hook(const Chain *c, const RecordInfo *ri, const uint8_t *p, size_t n, void *userdata,
                       char why[static WHY_MAX]) {
        VerifyState *v = userdata;
        int r;

        if (v->has_head && ri->seq == v->head.seq && memcmp(ri->hash, v->head.head, AUDIT_HEAD_SIZE) != 0) {
                (void) snprintf(why, WHY_MAX, "rewritten: the head names seq %" PRIu64 " with another hash",
                                v->head.seq);
                return 1;
        }
        if (v->fn) {
                r = v->fn(ri->seq, p, n, v->userdata);
                if (r < 0) {
                        v->fn_error = r;
                        return r;
                }
        }
        return 0;
}

static void verify_fail(AuditVerifyResult *res, const Chain *c, uint64_t bad_seq, const char *file,
                        const char *fmt, ...) _printf_(5, 6);
static void verify_fail(AuditVerifyResult *res, const Chain *c, uint64_t bad_seq, const char *file,
                        const char *fmt, ...) {
        va_list ap;

        res->ok = false;
        res->records = c->records;
        res->checkpoints = c->checkpoints;
        res->last_seq = c->seq;
        memcpy(res->head, c->head, AUDIT_HEAD_SIZE);
        res->bad_seq = bad_seq;
        (void) snprintf(res->file, sizeof(res->file), "%s", file ?: "");
        va_start(ap, fmt);
        (void) vsnprintf(res->problem, sizeof(res->problem), fmt, ap);
        va_end(ap);
}

int audit_verify_dir(int audit_dir_fd, const AuditVerifyOptions *o, AuditRecordFn fn, void *userdata,
                     AuditVerifyResult *res) {
        static const AuditVerifyOptions no_options = {};
        _cleanup_free_ uint64_t *seqs = NULL;
        char name[AUDIT_FILE_NAME_MAX], unexpected[256];
        VerifyState v = { .fn = fn, .userdata = userdata };
        _cleanup_free_ HeadRing *ring = NULL;
        Chain c = { .head_known = true };
        size_t n_seqs = 0;
        int r;

        if (audit_dir_fd < 0 || !res)
                return -EINVAL;
        ring = calloc(1, sizeof(HeadRing));
        if (!ring)
                return -ENOMEM;
        c.ring = ring;
        if (!o)
                o = &no_options;
        *res = (AuditVerifyResult) {};

        r = list_files(audit_dir_fd, &seqs, &n_seqs, unexpected);
        if (r < 0)
                return r;
        /* Nothing else belongs here: a file renamed out of the pattern would otherwise vanish from
         * the chain unnoticed when it was the last. */
        if (unexpected[0]) {
                verify_fail(res, &c, 0, unexpected, "unexpected entry in the audit directory");
                return 0;
        }

        if (o->head) {
                const char *why = NULL;

                r = cose_head_payload(o->head, o->head_size, o->host_key, &v.head, &why);
                if (r == -ENOMEM || r == -EIO)
                        return r;
                if (r < 0) {
                        verify_fail(res, &c, 0, NULL, "the head: %s", why);
                        return 0;
                }
                v.has_head = true;
                if (v.head.seq == 0 && memcmp(v.head.head, c.head, AUDIT_HEAD_SIZE) != 0) {
                        verify_fail(res, &c, 0, NULL, "the head names seq 0 with a hash other than zeros");
                        return 0;
                }
        }

        for (size_t i = 0; i < n_seqs; i++) {
                _cleanup_close_ int fd = -EBADF;
                uint64_t expected = c.seq + 1;
                bool last = i + 1 == n_seqs;
                Scan s = {
                        .host_key = o->host_key,
                        .hook = verify_hook,
                        .userdata = &v,
                };

                format_file_name(seqs[i], name);
                if (seqs[i] > expected) {
                        verify_fail(res, &c, expected, name,
                                    "seq %" PRIu64 "..%" PRIu64 " missing: the next file starts at seq %" PRIu64,
                                    expected, seqs[i] - 1, seqs[i]);
                        return 0;
                }
                if (seqs[i] < expected) {
                        verify_fail(res, &c, expected, name,
                                    "file named for seq %" PRIu64 ", but seq %" PRIu64 " is the next", seqs[i],
                                    expected);
                        return 0;
                }

                r = open_audit_file(audit_dir_fd, name, O_RDONLY, &fd);
                if (r == -ELOOP || r == -EBADMSG) {
                        verify_fail(res, &c, expected, name, r == -ELOOP ? "a symbolic link" : "not a regular file");
                        return 0;
                }
                if (r < 0)
                        return r;
                r = scan_file(fd, &c, &s);
                if (r < 0)
                        return v.fn_error < 0 ? v.fn_error : r;
                if (s.status != SCAN_CLEAN) {
                        verify_fail(res, &c, c.seq + 1, name, "%s%s",
                                    s.status == SCAN_TORN ? "torn: " : "", s.why);
                        return 0;
                }
                /* Only the newest file may be empty: a crash right after a rotation leaves it so. */
                if (c.seq + 1 == expected && !last) {
                        verify_fail(res, &c, expected, name, "empty file before the newest");
                        return 0;
                }
        }

        if (v.has_head && v.head.seq > c.seq) {
                verify_fail(res, &c, c.seq + 1, NULL,
                            "truncated: the head names seq %" PRIu64 ", the log ends at %" PRIu64, v.head.seq,
                            c.seq);
                return 0;
        }

        res->ok = true;
        res->records = c.records;
        res->checkpoints = c.checkpoints;
        res->last_seq = c.seq;
        memcpy(res->head, c.head, AUDIT_HEAD_SIZE);
        return 0;
}

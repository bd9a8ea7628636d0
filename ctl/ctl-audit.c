/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `agentidctl audit show` and `agentidctl audit verify` (see ctl-audit.h). Both walk the log with
 * audit_verify_dir(), which checks every record (the CBOR validator before libcbor, the chain, the
 * checkpoints) before handing it on: show prints the records that passed and stops at the first that
 * does not, verify prints the verdict. Read-only: the directory and the files are opened O_RDONLY.
 */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <time.h>

#include "attest/cose.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "config.h"
#include "ctl/ctl-audit.h"
#include "governance/audit.h"

/* Exit codes as agentidctl's. */
#define CTL_EXIT_BAD 1
#define CTL_EXIT_USAGE 2

#define KEY_FILE_MAX (16U * 1024U)
#define HEAD_FILE_MAX (16U * 1024U)

/* Records come from audit_verify_dir(), validated already; decoding them again needs the same bounds. */
static const CborLimits record_limits = {
        .max_size = AUDIT_RECORD_MAX,
        .max_depth = 2,
        .max_items = 64,
        .flags = CBOR_VALIDATE_DETERMINISTIC,
};

static void help(void) {
        printf("Usage: agentidctl audit show [--json] [--state-dir=DIR]\n"
               "       agentidctl audit verify [--state-dir=DIR] [--host-key=FILE] [--head=FILE]\n"
               "\n"
               "Read agentidd's audit log (DIR/" AUDIT_DIR "/) without the daemon; nothing is written.\n"
               "\n"
               "  show                  One line per record (--json: one JSON object per line)\n"
               "  verify                Check the whole chain and every checkpoint\n"
               "\n"
               "  --state-dir=DIR       agentidd's state directory (default " AGENTID_DEFAULT_STATE_DIR ")\n"
               "  --host-key=FILE       The host public key (DER SubjectPublicKeyInfo or PEM): verify the\n"
               "                        checkpoints' signatures (without it they are only parsed)\n"
               "  --head=FILE           A head from `agentidctl audit-head` (binary or base64): the log\n"
               "                        must still hold it (needs --host-key)\n"
               "  --json                JSON lines for show\n"
               "\n"
               "Exit status: 0 intact, 1 a record fails a check (the first is named), 2 usage or I/O error.\n");
}

/* ---- reading inputs ---------------------------------------------------------------------------- */

static int load_host_key(const char *path, EVP_PKEY **ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = read_file_or_stdin(path, KEY_FILE_MAX, &buf, &size);
        if (r < 0) {
                fprintf(stderr, "Cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        r = pkey_from_pem_or_der(buf, size, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                fprintf(stderr, "%s is not a P-256 public key (DER SubjectPublicKeyInfo or PEM)\n", path);
                return -EINVAL;
        }
        return 0;
}

/* A head as `agentidctl audit-head` writes it: COSE_Sign1_Tagged (0xd2 ...), or its base64 on stdout. */
static int load_head(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = read_file_or_stdin(path, HEAD_FILE_MAX, &data, &size);
        if (r < 0) {
                fprintf(stderr, "Cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        if (size > 0 && data[0] == 0xd2) {
                *ret = TAKE_PTR(data);
                *ret_size = size;
                return 0;
        }

        r = base64_decode(data, size, ret, ret_size);
        if (r == -EINVAL)
                fprintf(stderr, "%s is neither an audit head nor base64 of one\n", path);
        return r;
}

static int open_audit_dir(const char *state_dir, int *ret_fd) {
        _cleanup_close_ int state_fd = -EBADF;
        int fd;

        state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (state_fd < 0) {
                int r = -errno;
                fprintf(stderr, "Cannot open %s: %s\n", state_dir, strerror(-r));
                return r;
        }
        fd = openat(state_fd, AUDIT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                int r = -errno;
                if (r == -ENOENT)
                        fprintf(stderr, "No audit log in %s (no %s/ directory)\n", state_dir, AUDIT_DIR);
                else
                        fprintf(stderr, "Cannot open %s/%s: %s\n", state_dir, AUDIT_DIR, strerror(-r));
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/* ---- show -------------------------------------------------------------------------------------- */

/* CBOR → JSON, generically: text → string, unsigned and negative integers → integers (as decimal
 * strings beyond 64-bit signed), byte strings → lower-case hex, maps → objects, arrays → arrays. */
static json_t *cbor_to_json(const cbor_item_t *item, unsigned depth) {
        if (!item || depth > CBOR_UTIL_MAX_DEPTH)
                return NULL;

        switch (cbor_typeof(item)) {

        case CBOR_TYPE_UINT: {
                uint64_t v = cbor_get_int(item);
                char s[24];

                if (v <= INT64_MAX)
                        return json_integer((json_int_t) v);
                (void) snprintf(s, sizeof(s), "%" PRIu64, v);
                return json_string(s);
        }

        case CBOR_TYPE_NEGINT: {
                uint64_t v = cbor_get_int(item);
                char s[24];

                /* -1 - v (RFC 8949 §3.1) */
                if (v <= INT64_MAX)
                        return json_integer(-1 - (json_int_t) v);
                (void) snprintf(s, sizeof(s), "-1-%" PRIu64, v);
                return json_string(s);
        }

        case CBOR_TYPE_BYTESTRING: {
                const uint8_t *p;
                size_t n;

                if (cbor_util_get_bytes(item, &p, &n) < 0)
                        return NULL;
                _cleanup_free_ char *hex = hex_encode(p, n);
                return hex ? json_string(hex) : NULL;
        }

        case CBOR_TYPE_STRING: {
                const char *s;
                size_t n;

                if (cbor_util_get_text(item, &s, &n) < 0)
                        return NULL;
                return json_stringn(s, n);
        }

        case CBOR_TYPE_ARRAY: {
                json_t *a = json_array();
                cbor_item_t **items = cbor_array_handle(item);

                for (size_t i = 0; a && i < cbor_array_size(item); i++)
                        if (json_array_append_new(a, cbor_to_json(items[i], depth + 1)) < 0)
                                a = (json_decref(a), NULL);
                return a;
        }

        case CBOR_TYPE_MAP: {
                json_t *o = json_object();
                struct cbor_pair *pairs = cbor_map_handle(item);

                for (size_t i = 0; o && i < cbor_map_size(item); i++) {
                        _cleanup_free_ char *key = NULL;
                        const char *s;
                        size_t n;

                        if (cbor_util_get_text(pairs[i].key, &s, &n) >= 0)
                                key = memdup_cstr(s, n);
                        else {
                                /* Not in a record; a non-text key becomes its JSON text. */
                                json_t *k = cbor_to_json(pairs[i].key, depth + 1);
                                key = k ? json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
                                json_decref(k);
                        }
                        if (!key || json_object_set_new(o, key, cbor_to_json(pairs[i].value, depth + 1)) < 0)
                                o = (json_decref(o), NULL);
                }
                return o;
        }

        case CBOR_TYPE_TAG: {
                _cleanup_cbor_ cbor_item_t *tagged = cbor_tag_item(item);
                return cbor_to_json(tagged, depth + 1);
        }

        case CBOR_TYPE_FLOAT_CTRL:
                if (cbor_float_ctrl_is_ctrl(item) && cbor_is_bool(item))
                        return json_boolean(cbor_get_bool(item));
                return json_null();
        }
        return NULL;
}

/* Caller-supplied texts (reasons, task ids) reach a terminal: control characters (C0, DEL, C1) are
 * escaped so one record stays one line and cannot move the cursor; so are the quote and the
 * backslash, and, outside quotes, the space. The texts are valid UTF-8 (the validator saw to it). */
static void print_text(const char *s, size_t n, bool quoted) {
        if (quoted)
                putchar('"');
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == 0xc2 && i + 1 < n && (unsigned char) s[i + 1] >= 0x80 && (unsigned char) s[i + 1] <= 0x9f) {
                        printf("\\u%04x", (unsigned char) s[i + 1]);
                        i++;
                } else if (c < 0x20 || c == 0x7f || c == '\\' || (quoted ? c == '"' : c == ' '))
                        printf("\\x%02x", c);
                else
                        putchar(c);
        }
        if (quoted)
                putchar('"');
}

/* " label=value", or " value" without a label. */
static void print_text_field(const cbor_item_t *map, const char *key, const char *label, bool quoted) {
        const char *s;
        size_t n;

        if (cbor_util_get_text(cbor_util_map_get_text(map, key), &s, &n) < 0)
                return;
        if (label)
                printf(" %s=", label);
        else
                putchar(' ');
        print_text(s, n, quoted);
}

static void print_uint_field(const cbor_item_t *map, const char *key, const char *label) {
        uint64_t v;

        if (cbor_util_get_uint(cbor_util_map_get_text(map, key), &v) >= 0)
                printf(" %s=%" PRIu64, label, v);
}

static void print_record_line(uint64_t seq, const cbor_item_t *map) {
        char when[32] = "?";
        uint64_t t = 0;
        struct tm tm;

        if (cbor_util_get_uint(cbor_util_map_get_text(map, "time"), &t) >= 0 && t <= INT64_MAX) {
                time_t tt = (time_t) t;
                if (gmtime_r(&tt, &tm))
                        (void) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }

        printf("%6" PRIu64 " %s", seq, when);
        print_text_field(map, "action", NULL, false);
        print_text_field(map, "decision", NULL, false);
        print_text_field(map, "key", "key", false);
        print_uint_field(cbor_util_map_get_text(map, "caller"), "uid", "uid");
        print_text_field(map, "task_id", "task", false);
        print_text_field(map, "rule", "rule", false);
        print_uint_field(map, "by_uid", "by_uid");
        print_uint_field(map, "count", "count");
        print_text_field(map, "reason", "reason", true);
        putchar('\n');
}

typedef struct ShowState {
        bool json;
} ShowState;

static int show_record(uint64_t seq, const uint8_t *record, size_t size, void *userdata) {
        ShowState *st = userdata;
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int r;

        r = cbor_util_decode(record, size, &record_limits, &map, NULL);
        if (r < 0)
                return r;

        if (!st->json) {
                print_record_line(seq, map);
                return 0;
        }

        json_t *j = cbor_to_json(map, 0);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!s)
                return -ENOMEM;
        puts(s);
        free(s);
        return 0;
}

/* "seq N in FILE: problem", as much of it as is known. */
static void print_problem(FILE *f, const AuditVerifyResult *res) {
        if (res->bad_seq > 0 && res->file[0])
                fprintf(f, "seq %" PRIu64 " in %s: %s\n", res->bad_seq, res->file, res->problem);
        else if (res->bad_seq > 0)
                fprintf(f, "seq %" PRIu64 ": %s\n", res->bad_seq, res->problem);
        else if (res->file[0])
                fprintf(f, "%s: %s\n", res->file, res->problem);
        else
                fprintf(f, "%s\n", res->problem);
}

static int verb_show(int dir_fd, bool json) {
        ShowState st = { .json = json };
        AuditVerifyResult res;
        int r;

        r = audit_verify_dir(dir_fd, NULL, show_record, &st, &res);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "Writing to stdout failed\n");
                return CTL_EXIT_USAGE;
        }
        if (r < 0) {
                fprintf(stderr, "Reading the audit log failed: %s\n", strerror(-r));
                return CTL_EXIT_USAGE;
        }
        if (!res.ok) {
                print_problem(stderr, &res);
                return CTL_EXIT_BAD;
        }
        return 0;
}

/* ---- verify ------------------------------------------------------------------------------------ */

/* The seq a (verified) head names, for the report. */
static int head_seq(const uint8_t *head, size_t size, EVP_PKEY *key, uint64_t *ret) {
        static const CborLimits limits = {
                .max_size = 256,
                .max_depth = 1,
                .max_items = 11,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_cbor_ cbor_item_t *map = NULL;
        size_t payload_size = 0;
        int r;

        r = cose_sign1_check(head, size, key, NULL, NULL, &payload, &payload_size);
        if (r < 0)
                return r;
        r = cbor_util_decode(payload, payload_size, &limits, &map, NULL);
        if (r < 0)
                return r;
        return cbor_util_get_uint(cbor_util_map_get_text(map, "seq"), ret);
}

static int verb_verify(int dir_fd, const char *key_path, const char *head_path) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *head = NULL;
        AuditVerifyOptions o = {};
        AuditVerifyResult res;
        char hex[2 * AUDIT_HEAD_SIZE + 1];
        uint64_t seq = 0;
        size_t head_size = 0;
        int r;

        if (key_path) {
                r = load_host_key(key_path, &key);
                if (r < 0)
                        return CTL_EXIT_USAGE;
                o.host_key = key;
        }
        if (head_path) {
                r = load_head(head_path, &head, &head_size);
                if (r < 0)
                        return CTL_EXIT_USAGE;
                o.head = head;
                o.head_size = head_size;
        }

        r = audit_verify_dir(dir_fd, &o, NULL, NULL, &res);
        if (r < 0) {
                fprintf(stderr, "Reading the audit log failed: %s\n", strerror(-r));
                return CTL_EXIT_USAGE;
        }
        if (!res.ok) {
                print_problem(stdout, &res);
                printf("(%" PRIu64 " record(s) before it verified)\n", res.records);
                return CTL_EXIT_BAD;
        }

        hex_encode_to(res.head, AUDIT_HEAD_SIZE, hex);
        printf("%" PRIu64 " record(s) verified, %" PRIu64 " checkpoint(s) %s\n", res.records, res.checkpoints,
               key ? "verified with the host key" : "parsed (signatures not checked: no --host-key)");
        printf("last seq %" PRIu64 ", head %s\n", res.last_seq, hex);
        if (head && head_seq(head, head_size, key, &seq) >= 0)
                printf("the head of %s (seq %" PRIu64 ") is in the log\n", head_path, seq);
        return 0;
}

/* ---- entry point ------------------------------------------------------------------------------- */

int ctl_audit(int argc, char *argv[]) {
        enum {
                ARG_STATE_DIR = 0x100,
                ARG_JSON,
                ARG_HOST_KEY,
                ARG_HEAD,
        };
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "json", no_argument, NULL, ARG_JSON },
                { "host-key", required_argument, NULL, ARG_HOST_KEY },
                { "head", required_argument, NULL, ARG_HEAD },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *state_dir = AGENTID_DEFAULT_STATE_DIR, *key_path = NULL, *head_path = NULL, *verb;
        _cleanup_close_ int dir_fd = -EBADF;
        bool json = false;
        int c, r;

        if (argc < 2 || !argv[1] || argv[1][0] == '-') {
                if (argc >= 2 && argv[1] && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                        help();
                        return 0;
                }
                fprintf(stderr, "Usage: agentidctl audit show|verify [OPTIONS]; see --help.\n");
                return CTL_EXIT_USAGE;
        }
        verb = argv[1];

        /* Parse from the subcommand on (it stands where getopt expects the program name); optind = 0
         * makes glibc start over whatever parsed argv before. */
        optind = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_STATE_DIR:
                        state_dir = optarg;
                        break;
                case ARG_JSON:
                        json = true;
                        break;
                case ARG_HOST_KEY:
                        key_path = optarg;
                        break;
                case ARG_HEAD:
                        head_path = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return CTL_EXIT_USAGE;
                }
        if (optind < argc - 1) {
                fprintf(stderr, "Unexpected argument '%s'; see --help.\n", argv[1 + optind]);
                return CTL_EXIT_USAGE;
        }

        if (streq(verb, "show")) {
                if (key_path || head_path) {
                        fprintf(stderr, "--host-key= and --head= are for verify.\n");
                        return CTL_EXIT_USAGE;
                }
        } else if (streq(verb, "verify")) {
                if (json) {
                        fprintf(stderr, "--json is for show.\n");
                        return CTL_EXIT_USAGE;
                }
                /* An unsigned head proves nothing: anyone can write one. */
                if (head_path && !key_path) {
                        fprintf(stderr, "--head= needs --host-key= to check the head's signature.\n");
                        return CTL_EXIT_USAGE;
                }
        } else {
                fprintf(stderr, "Unknown audit command '%s' (show or verify).\n", verb);
                return CTL_EXIT_USAGE;
        }

        r = open_audit_dir(state_dir, &dir_fd);
        if (r < 0)
                return CTL_EXIT_USAGE;

        return streq(verb, "show") ? verb_show(dir_fd, json) : verb_verify(dir_fd, key_path, head_path);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentidctl: the command-line client of agentidd, for admins (create, destroy) and agents (sign).
 * Everything goes through D-Bus; agentidd decides who may do what, on the uid the bus reports.
 *
 * Exit status: 0 success; 1 the daemon refused or failed the request; 2 usage error;
 * 3 agentidd cannot be reached.
 */

#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "config.h"
#include "ctl/ctl-util.h"
#include "ctl/ctl-audit.h"
#include "ctl/ctl-peers.h"
#include "ctl/ctl-policy.h"

#define BUS_NAME "org.agentid1"
#define MANAGER_PATH "/org/agentid1"
#define MANAGER_IFACE "org.agentid1.Manager"
#define KEY_IFACE "org.agentid1.Key"
#define TASK_IFACE "org.agentid1.Task"
/* Key.StartTask takes at most 16 audiences (docs/dbus-api.md). */
#define TASK_AUDIENCES_MAX 16
#define MESSAGE_MAX (64U * 1024U)

/* Per-call timeouts: reads are quick; TPM work waits behind a queue; key creation is slow on real
 * TPMs (seconds for some), so it gets the most. */
#define TIMEOUT_READ_USEC (10ULL * 1000000)
#define TIMEOUT_SIGN_USEC (30ULL * 1000000)
#define TIMEOUT_CREATE_USEC (120ULL * 1000000)

static bool arg_user;
static bool arg_json;
static bool arg_no_wait;
static bool arg_named_tasks_only;
static const char *arg_owner;
static const char *arg_description;
static const char *arg_reason;
static const char *arg_output;
static const char *arg_format;
static const char *arg_task_id;
static const char *arg_parent_task_id;
static const char *arg_audience;                   /* the first --audience= */
static const char *arg_audiences[TASK_AUDIENCES_MAX]; /* all of them (task start) */
static unsigned arg_n_audiences;
static const char *arg_exe;
static const char *arg_exe_sha256;
static const char *arg_nonce;
static const char *arg_challenge;
static const char *arg_parent_token;
static const char *arg_receipts_dir;
static long long arg_uid = -1;
static unsigned long long arg_ttl;
static ExplainArgs arg_explain = { .policy = AGENTID_DEFAULT_POLICY, .login_session = -1 };

static void help(void) {
        printf("Usage: agentidctl [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "Manage and use TPM-backed agent identities through agentidd.\n"
               "\n"
               "Commands:\n"
               "  status                      Daemon status (TPM, keys, queue)\n"
               "  list                        List keys with their state\n"
               "  show NAME                   Show a key's properties\n"
               "  create NAME --owner=OWNER   Create a key (admins) [--uid= | --user-name=] [--ttl=]\n"
               "                              [--description=] [--exe=PATH | --exe-sha256=HEX]\n"
               "                              [--named-tasks-only]\n"
               "  public-key NAME             Write the key's public key (--format=pem|der, --output=)\n"
               "  sign NAME [FILE|-]          SHA-256 the input and sign the digest with the key\n"
               "                              (--format=base64|der, --output=, --task-id= ...)\n"
               "  sign-message NAME [FILE|-]  Sign the input as a COSE_Sign1 message (--output=, or base64)\n"
               "  issue-token NAME --audience=AUD --task-id=ID  A task token (CWT) for a peer\n"
               "                              [--scope=S ... --ttl=SECONDS --parent-token=FILE]\n"
               "  task start NAME --task-id=ID  Start a task with its own TPM key; prints its object\n"
               "                              path [--audience=AUD ... --scope=S ... --ttl=SECONDS\n"
               "                              --parent-task-id=ID --output=FILE for the credential]\n"
               "  task end NAME ID --reason=TEXT  End (and revoke) a running task of the key\n"
               "  audit-head --nonce=HEX      A signed head of the audit log (admins; --output=)\n"
               "  destroy NAME --reason=TEXT  Destroy a key (admins); writes the receipt (--output=)\n"
               "  rotate NAME --reason=TEXT   Replace the key's TPM key, revoking the old one (admins);\n"
               "                              writes the rotation statement (--output=)\n"
               "  offboard --owner=OWNER|--uid=UID --reason=TEXT  Destroy every key of an owner or uid\n"
               "                              and print the receipts (--receipts-dir=DIR: one file each)\n"
               "  revocations export          Write the signed revocation list (--output=)\n"
               "  peers add URI --public-key=FILE [--kid=HEX]  Approve a peer agent on another host,\n"
               "                              whose tokens may then be parents (admins)\n"
               "  peers add URI --evidence=FILE --nonce=HEX --trusted-ak=FILE  The same, with the key\n"
               "                              and TPM Name its verified agent evidence certifies\n"
               "  peers list | remove URI | export --output=FILE  Show, withdraw (admins) or export\n"
               "                              (registry CBOR, for verifiers) the approved peers\n"
               "  attest NAME --nonce=HEX     Evidence that the key lives in this TPM, bound to the caller\n"
               "                              and the nonce (--output=, --task-id=)\n"
               "  platform-evidence --nonce=HEX  Quote and host key certification (--output=)\n"
               "  attestation-key             Write the AK public area for verifiers (--output=)\n"
               "  enroll request              Write an enrollment request (AK, EK and its certificate)\n"
               "  enroll respond --challenge=FILE  Activate the verifier's credential (admins) and\n"
               "                              write the response (--output=)\n"
               "  policy check FILE           Validate a policy file (no daemon needed)\n"
               "  policy explain --key= --action= --uid=  Which rule decides, and why the ones before\n"
               "                              it do not match [--policy= --audience= --task= --unit=\n"
               "                              --exe-sha256= --login-session=yes|no --scope= --peer=]\n"
               "  policy reload               Make agentidd re-read its policy (admins)\n"
               "  approvals                   Requests awaiting a human's approval (admins)\n"
               "  approve ID / deny ID        Answer a held request (admins; not one's own)\n"
               "  audit show|verify           Read or check the audit log (--state-dir=, --json,\n"
               "                              --host-key=DER_FILE, --head=FILE; no daemon needed)\n"
               "\n"
               "Options:\n"
               "  --json                      JSON output for status, list, show, approvals, offboard,\n"
               "                              policy check, policy explain\n"
               "  --task-id=ID                Task the request belongs to (sign, sign-message, attest,\n"
               "                              issue-token)\n"
               "  --parent-task-id=ID         Task that started that task\n"
               "  --audience=AUD              Who the signature is meant for (task start: repeatable)\n"
               "  --no-wait                   Fail at once (InteractiveAuthorizationRequired) instead of\n"
               "                              waiting when policy wants a human's approval\n"
               "  --user                      Talk to agentidd on the session bus\n"
               "  -h, --help                  Show this help\n"
               "      --version               Show the version\n"
               "\n"
               "Exit status: 0 success, 1 refused or failed, 2 usage error, 3 agentidd unreachable.\n"
               "See agentidctl(1).\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_USER = 0x100, ARG_JSON, ARG_OWNER, ARG_UID, ARG_USER_NAME, ARG_TTL, ARG_DESCRIPTION,
                ARG_REASON, ARG_OUTPUT, ARG_FORMAT, ARG_TASK_ID, ARG_PARENT_TASK_ID, ARG_AUDIENCE, ARG_EXE,
                ARG_EXE_SHA256, ARG_NONCE, ARG_CHALLENGE, ARG_VERSION, ARG_POLICY, ARG_KEY, ARG_ACTION,
                ARG_UNIT, ARG_PEER, ARG_LOGIN_SESSION, ARG_SCOPE, ARG_NO_WAIT, ARG_PARENT_TOKEN,
                ARG_RECEIPTS_DIR, ARG_NAMED_TASKS_ONLY,
        };
        static const struct option options[] = {
                { "user", no_argument, NULL, ARG_USER },
                { "json", no_argument, NULL, ARG_JSON },
                { "owner", required_argument, NULL, ARG_OWNER },
                { "uid", required_argument, NULL, ARG_UID },
                { "user-name", required_argument, NULL, ARG_USER_NAME },
                { "ttl", required_argument, NULL, ARG_TTL },
                { "description", required_argument, NULL, ARG_DESCRIPTION },
                { "reason", required_argument, NULL, ARG_REASON },
                { "output", required_argument, NULL, ARG_OUTPUT },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "task-id", required_argument, NULL, ARG_TASK_ID },
                { "task", required_argument, NULL, ARG_TASK_ID },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "key", required_argument, NULL, ARG_KEY },
                { "action", required_argument, NULL, ARG_ACTION },
                { "unit", required_argument, NULL, ARG_UNIT },
                { "peer", required_argument, NULL, ARG_PEER },
                { "login-session", required_argument, NULL, ARG_LOGIN_SESSION },
                { "scope", required_argument, NULL, ARG_SCOPE },
                { "no-wait", no_argument, NULL, ARG_NO_WAIT },
                { "parent-token", required_argument, NULL, ARG_PARENT_TOKEN },
                { "receipts-dir", required_argument, NULL, ARG_RECEIPTS_DIR },
                { "parent-task-id", required_argument, NULL, ARG_PARENT_TASK_ID },
                { "audience", required_argument, NULL, ARG_AUDIENCE },
                { "exe", required_argument, NULL, ARG_EXE },
                { "exe-sha256", required_argument, NULL, ARG_EXE_SHA256 },
                { "named-tasks-only", no_argument, NULL, ARG_NAMED_TASKS_ONLY },
                { "nonce", required_argument, NULL, ARG_NONCE },
                { "challenge", required_argument, NULL, ARG_CHALLENGE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        struct passwd *pw;
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_USER:
                        arg_user = true;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_OWNER:
                        arg_owner = optarg;
                        break;
                case ARG_UID:
                        errno = 0;
                        arg_uid = strtoll(optarg, &end, 10);
                        if (errno || *end || arg_uid < 0 || arg_uid >= UINT32_MAX)
                                return log_error_errno(EINVAL, "Invalid --uid: %s", optarg);
                        break;
                case ARG_USER_NAME:
                        pw = getpwnam(optarg);
                        if (!pw)
                                return log_error_errno(ENOENT, "No such user: %s", optarg);
                        arg_uid = pw->pw_uid;
                        break;
                case ARG_TTL:
                        errno = 0;
                        arg_ttl = strtoull(optarg, &end, 10);
                        if (errno || *end || arg_ttl == 0)
                                return log_error_errno(EINVAL, "Invalid --ttl (seconds > 0): %s", optarg);
                        break;
                case ARG_DESCRIPTION:
                        arg_description = optarg;
                        break;
                case ARG_REASON:
                        arg_reason = optarg;
                        break;
                case ARG_OUTPUT:
                        arg_output = optarg;
                        break;
                case ARG_FORMAT:
                        arg_format = optarg;
                        break;
                case ARG_TASK_ID:
                        arg_task_id = optarg;
                        break;
                case ARG_PARENT_TASK_ID:
                        arg_parent_task_id = optarg;
                        break;
                case ARG_AUDIENCE:
                        if (arg_n_audiences >= TASK_AUDIENCES_MAX)
                                return log_error_errno(EINVAL, "At most %d --audience= options",
                                                       TASK_AUDIENCES_MAX);
                        arg_audiences[arg_n_audiences++] = optarg;
                        arg_audience = arg_audiences[0];
                        break;
                case ARG_NAMED_TASKS_ONLY:
                        arg_named_tasks_only = true;
                        break;
                case ARG_EXE:
                        arg_exe = optarg;
                        break;
                case ARG_EXE_SHA256:
                        arg_exe_sha256 = optarg;
                        break;
                case ARG_NONCE:
                        arg_nonce = optarg;
                        break;
                case ARG_CHALLENGE:
                        arg_challenge = optarg;
                        break;
                case ARG_POLICY:
                        arg_explain.policy = optarg;
                        break;
                case ARG_KEY:
                        arg_explain.key = optarg;
                        break;
                case ARG_ACTION:
                        arg_explain.action = optarg;
                        break;
                case ARG_UNIT:
                        arg_explain.unit = optarg;
                        break;
                case ARG_PEER:
                        arg_explain.peer = optarg;
                        break;
                case ARG_LOGIN_SESSION:
                        if (!streq(optarg, "yes") && !streq(optarg, "no"))
                                return log_error_errno(EINVAL, "--login-session= must be yes or no");
                        arg_explain.login_session = streq(optarg, "yes");
                        break;
                case ARG_SCOPE:
                        if (arg_explain.n_scopes >= CTL_SCOPES_MAX)
                                return log_error_errno(EINVAL, "At most %d --scope= options", CTL_SCOPES_MAX);
                        arg_explain.scopes[arg_explain.n_scopes++] = optarg;
                        break;
                case ARG_NO_WAIT:
                        arg_no_wait = true;
                        break;
                case ARG_RECEIPTS_DIR:
                        arg_receipts_dir = optarg;
                        break;
                case ARG_PARENT_TOKEN:
                        arg_parent_token = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("agentidctl " AGENTID_VERSION "\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        return 1;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static int connect_bus(sd_bus **ret) {
        int r = arg_user ? sd_bus_open_user(ret) : sd_bus_open_system(ret);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to the %s bus: %m", arg_user ? "session" : "system");
                return -EXIT_UNREACHABLE;
        }
        return 0;
}

/*
 * Calls a policy may hold for a human's approval: allow the daemon to hold them (the D-Bus
 * ALLOW_INTERACTIVE_AUTHORIZATION flag, unless --no-wait) and wait for the approval on top of the work.
 */
static int call_may_wait_for_approval(sd_bus *bus, sd_bus_message *m, uint64_t timeout_usec, sd_bus_error *error,
                                      sd_bus_message **reply) {
        uint64_t approval_usec = 0;
        int r;

        if (!arg_no_wait) {
                r = sd_bus_message_set_allow_interactive_authorization(m, true);
                if (r < 0)
                        return r;
                /* An older daemon without the property: its default, 20 s. */
                if (sd_bus_get_property_trivial(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ApprovalTimeout", NULL,
                                                't', &approval_usec) < 0)
                        approval_usec = 20ULL * 1000000;
                timeout_usec += approval_usec;
        }
        r = sd_bus_call(bus, m, timeout_usec, error, reply);
        if (r < 0 && sd_bus_error_has_name(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED) && !arg_no_wait)
                fprintf(stderr, "agentidd did not hold the request for approval.\n");
        return r;
}

static int key_path(const char *name, char **ret) {
        int r = sd_bus_path_encode("/org/agentid1/key", name, ret);
        if (r < 0)
                return log_error_errno(r, "Invalid key name: %m");
        return 0;
}

static int read_input(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        int r = read_file_or_stdin(path, max, ret, ret_size);
        if (r == -EFBIG)
                return log_error_errno(r, "%s is larger than %zu bytes", path ?: "stdin", max);
        if (r < 0)
                return log_error_errno(r, "Reading %s failed: %m", path ?: "stdin");
        return 0;
}

/* Binary output: to --output (atomically), else base64 on stdout unless the format says DER. */
static int write_binary(const void *data, size_t size, bool base64_default) {
        if (arg_output) {
                int r = write_file_atomic(arg_output, data, size, 0644, 0);
                if (r < 0)
                        return log_error_errno(r, "Writing %s failed: %m", arg_output);
                return 0;
        }
        if (!base64_default || (arg_format && streq(arg_format, "der"))) {
                if (fwrite(data, 1, size, stdout) != size)
                        return log_error_errno(EIO, "Writing to stdout failed");
                return 0;
        }
        _cleanup_free_ char *b64 = malloc(4 * ((size + 2) / 3) + 2);
        if (!b64)
                return log_error_errno(ENOMEM, "Out of memory");
        int n = EVP_EncodeBlock((unsigned char *) b64, data, (int) size);
        printf("%.*s\n", n, b64);
        return 0;
}

/* Send m — letting a policy hold it for approval if holdable — and write the byte array it returns
 * (base64 on a terminal unless --output or --format=der). */
static int call_and_write_bytes(sd_bus *bus, sd_bus_message *m, bool holdable, const char *failed) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *out;
        size_t size;
        int r;

        r = holdable ? call_may_wait_for_approval(bus, m, TIMEOUT_SIGN_USEC, &error, &reply)
                     : sd_bus_call(bus, m, TIMEOUT_SIGN_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error(failed, &error, r);
        r = sd_bus_message_read_array(reply, 'y', &out, &size);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        return write_binary(out, size, true);
}

static int append_context(sd_bus_message *m) {
        struct {
                const char *key, *value;
        } ctx[] = {
                { "task_id", arg_task_id },
                { "parent_task_id", arg_parent_task_id },
                { "audience", arg_audience },
        };
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(ctx); i++)
                if (ctx[i].value)
                        r = sd_bus_message_append(m, "{sv}", ctx[i].key, "s", ctx[i].value);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int get_property_bytes(sd_bus *bus, const char *path, const char *iface, const char *prop, uint8_t **ret,
                              size_t *ret_size) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *p;
        size_t n;
        int r;

        r = sd_bus_get_property(bus, BUS_NAME, path, iface, prop, &error, &reply, "ay");
        if (r < 0)
                return ctl_report_error(prop, &error, r);
        r = sd_bus_message_read_array(reply, 'y', &p, &n);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        *ret = malloc(n ? n : 1);
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, p, n);
        *ret_size = n;
        return 0;
}

/* ---- commands ------------------------------------------------------------------------------- */

static int json_print(json_t *j) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        printf("%s\n", s);
        free(s);
        return 0;
}

/* An a{sv} into a JSON object: strings, integers, byte arrays as hex; other types are skipped. */
static int read_vardict(sd_bus_message *reply, json_t **ret) {
        json_t *obj = json_object();
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name, *contents;
                char type;
                json_t *v = NULL;

                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, &type, &contents);
                if (r < 0)
                        break;
                if (streq(contents, "s")) {
                        const char *s;
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        v = json_string(s);
                } else if (streq(contents, "u")) {
                        uint32_t u;
                        r = sd_bus_message_read(reply, "v", "u", &u);
                        v = json_integer(u);
                } else if (streq(contents, "t")) {
                        uint64_t t;
                        r = sd_bus_message_read(reply, "v", "t", &t);
                        v = json_integer((json_int_t) t);
                } else if (streq(contents, "ay")) {
                        const void *p;
                        size_t n;
                        r = sd_bus_message_enter_container(reply, 'v', "ay");
                        if (r >= 0)
                                r = sd_bus_message_read_array(reply, 'y', &p, &n);
                        if (r >= 0) {
                                _cleanup_free_ char *hex = hex_encode(p, n);
                                v = json_string(hex ?: "");
                                r = sd_bus_message_exit_container(reply);
                        }
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (v)
                        json_object_set_new(obj, name, v);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                json_decref(obj);
                return log_error_errno(r, "Bad reply: %m");
        }
        *ret = obj;
        return 0;
}

/* Properties of GetAll as JSON, or as "Name: value" lines. */
static int print_properties(sd_bus_message *reply) {
        json_t *obj;
        int r = read_vardict(reply, &obj);
        if (r < 0)
                return r;
        if (arg_json)
                return json_print(obj);

        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value) {
                if (json_is_string(value))
                        printf("%16s: %s\n", key, json_string_value(value));
                else
                        printf("%16s: %lld\n", key, (long long) json_integer_value(value));
        }
        json_decref(obj);
        return 0;
}

static int get_all(sd_bus *bus, const char *path, const char *iface) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply,
                                   "s", iface);
        if (r < 0)
                return ctl_report_error("Reading properties", &error, r);
        return print_properties(reply);
}

static int verb_status(sd_bus *bus) {
        return get_all(bus, MANAGER_PATH, MANAGER_IFACE);
}

static int verb_show(sd_bus *bus, const char *name) {
        _cleanup_free_ char *path = NULL;
        int r = key_path(name, &path);
        return r < 0 ? r : get_all(bus, path, KEY_IFACE);
}

static int verb_list(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *path, *state;
        json_t *arr = json_array();
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListKeys", &error, &reply, NULL);
        if (r < 0) {
                json_decref(arr);
                return ctl_report_error("Listing keys", &error, r);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sos)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sos)", &name, &path, &state)) > 0)
                json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", name, "path", path, "state", state));
        if (r < 0) {
                json_decref(arr);
                return log_error_errno(r, "Bad reply: %m");
        }
        if (arg_json)
                return json_print(arr);

        size_t i;
        json_t *e;
        printf("%-32s %-10s %s\n", "NAME", "STATE", "OBJECT");
        json_array_foreach(arr, i, e)
                printf("%-32s %-10s %s\n", json_string_value(json_object_get(e, "name")),
                       json_string_value(json_object_get(e, "state")), json_string_value(json_object_get(e, "path")));
        json_decref(arr);
        return 0;
}

static int verb_create(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ uint8_t *exe_digest = NULL;
        uint8_t digest[32];
        size_t n = 0;
        const char *path;
        int r;

        if (!arg_owner)
                return log_error_errno(EINVAL, "--owner= is required: every key has an accountable owner");
        if (arg_exe && arg_exe_sha256)
                return log_error_errno(EINVAL, "--exe= and --exe-sha256= are exclusive");
        if (arg_exe) {
                _cleanup_close_ int fd = open(arg_exe, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return log_error_errno(errno, "Opening %s failed: %m", arg_exe);
                r = sha256_fd(fd, UINT64_MAX, digest);
                if (r < 0)
                        return log_error_errno(r, "Hashing %s failed: %m", arg_exe);
        } else if (arg_exe_sha256) {
                r = hex_decode(arg_exe_sha256, &exe_digest, &n);
                if (r < 0 || n != 32)
                        return log_error_errno(EINVAL, "--exe-sha256= must be 64 hex digits");
                memcpy(digest, exe_digest, 32);
        }

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "CreateKey");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "owner", "s", arg_owner);
        if (r >= 0 && arg_uid >= 0)
                r = sd_bus_message_append(m, "{sv}", "uid", "u", (uint32_t) arg_uid);
        if (r >= 0 && arg_ttl)
                r = sd_bus_message_append(m, "{sv}", "ttl", "t", (uint64_t) arg_ttl);
        if (r >= 0 && arg_description)
                r = sd_bus_message_append(m, "{sv}", "description", "s", arg_description);
        if (r >= 0 && arg_named_tasks_only)
                r = sd_bus_message_append(m, "{sv}", "named_tasks_only", "b", 1);
        if (r >= 0 && (arg_exe || arg_exe_sha256)) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "exe_sha256");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', digest, 32);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");

        r = call_may_wait_for_approval(bus, m, TIMEOUT_CREATE_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error("Creating the key failed", &error, r);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        printf("%s\n", path);
        return 0;
}

static int verb_public_key(sd_bus *bus, const char *name) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        size_t size = 0;
        int r;

        if (arg_format && !streq(arg_format, "pem") && !streq(arg_format, "der"))
                return log_error_errno(EINVAL, "--format= must be pem or der");
        r = key_path(name, &path);
        if (r < 0)
                return r;
        r = get_property_bytes(bus, path, KEY_IFACE, "PublicKey", &der, &size);
        if (r < 0)
                return r;
        if (arg_format && streq(arg_format, "der"))
                return write_binary(der, size, false);

        /* PEM: "PUBLIC KEY" armour around the base64 of the DER SubjectPublicKeyInfo (RFC 7468 §13). */
        _cleanup_free_ char *b64 = malloc(4 * ((size + 2) / 3) + 1);
        if (!b64)
                return -ENOMEM;
        int n = EVP_EncodeBlock((unsigned char *) b64, der, (int) size);
        _cleanup_free_ char *pem = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&pem, &len);
        if (!f)
                return -ENOMEM;
        fputs("-----BEGIN PUBLIC KEY-----\n", f);
        for (int i = 0; i < n; i += 64)
                fprintf(f, "%.*s\n", MIN(64, n - i), b64 + i);
        fputs("-----END PUBLIC KEY-----\n", f);
        fclose(f);
        return write_binary(pem, len, false);
}

static int sign_common(sd_bus *bus, const char *name, const char *input, bool message) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        uint8_t digest[32];
        size_t size = 0;
        int r;

        if (arg_format && !streq(arg_format, "base64") && !streq(arg_format, "der"))
                return log_error_errno(EINVAL, "--format= must be base64 or der");
        r = key_path(name, &path);
        if (r < 0)
                return r;
        if (message) {
                r = read_input(input, MESSAGE_MAX, &data, &size);
                if (r < 0)
                        return r;
        } else {
                _cleanup_close_ int fd = input && !streq(input, "-") ? open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY) :
                                                                         fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return log_error_errno(errno, "Opening %s failed: %m", input ?: "stdin");
                r = sha256_fd(fd, UINT64_MAX, digest);
                if (r < 0)
                        return log_error_errno(r, "Hashing %s failed: %m", input ?: "stdin");
        }

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, message ? "SignMessage" : "Sign");
        if (r >= 0) {
                if (message)
                        r = sd_bus_message_append_array(m, 'y', data, size);
                else
                        r = sd_bus_message_append_array(m, 'y', digest, sizeof(digest));
        }
        if (r >= 0)
                r = append_context(m);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");

        return call_and_write_bytes(bus, m, true, "Signing failed");
}

/* Read a token file: binary CBOR, or the base64 text agentidctl prints without --output. */
static int read_token_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = read_input(path, 3 * 8192, &data, &size);
        if (r < 0)
                return r;
        if (size > 0 && data[0] != 0xd2) {
                r = base64_decode(data, size, ret, ret_size);
                if (r == -EINVAL)
                        return log_error_errno(r, "%s is neither a token nor base64 of one", path);
                return r;
        }
        *ret = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}

/* {sv} entry name -> as, for option dictionaries. */
static int append_strv_option(sd_bus_message *m, const char *name, const char *const *v, unsigned n) {
        int r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "s");
        for (unsigned i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(m, "s", v[i]);
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(m);
        return r;
}

static int verb_issue_token(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *parent = NULL;
        size_t parent_size = 0;
        int r;

        if (!arg_audience)
                return log_error_errno(EINVAL, "--audience= is required: a token is for one recipient");
        if (!arg_task_id && !arg_parent_token)
                return log_error_errno(EINVAL, "--task-id= is required (or --parent-token= to inherit its task)");
        r = key_path(name, &path);
        if (r < 0)
                return r;
        if (arg_parent_token) {
                r = read_token_file(arg_parent_token, &parent, &parent_size);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, "IssueToken");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "audience", "s", arg_audience);
        if (r >= 0 && arg_task_id)
                r = sd_bus_message_append(m, "{sv}", "task_id", "s", arg_task_id);
        if (r >= 0 && arg_parent_task_id)
                r = sd_bus_message_append(m, "{sv}", "parent_task_id", "s", arg_parent_task_id);
        if (r >= 0 && arg_ttl)
                r = sd_bus_message_append(m, "{sv}", "ttl", "t", (uint64_t) arg_ttl);
        if (r >= 0 && arg_explain.n_scopes > 0)
                r = append_strv_option(m, "scope", arg_explain.scopes, arg_explain.n_scopes);
        if (r >= 0 && parent) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "parent_token");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', parent, parent_size);
                for (int i = 0; r >= 0 && i < 2; i++)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");

        return call_and_write_bytes(bus, m, true, "Issuing the token failed");
}

/* Key.StartTask: prints the task's object path; the credential goes to --output= if given. */
static int verb_task_start(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const char *task;
        const void *credential;
        size_t size;
        int r;

        if (!arg_task_id)
                return log_error_errno(EINVAL, "--task-id= is required: the task's ID");
        r = key_path(name, &path);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, "StartTask");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", arg_task_id);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && arg_parent_task_id)
                r = sd_bus_message_append(m, "{sv}", "parent_task_id", "s", arg_parent_task_id);
        if (r >= 0 && arg_ttl)
                r = sd_bus_message_append(m, "{sv}", "ttl", "t", (uint64_t) arg_ttl);
        if (r >= 0 && arg_n_audiences > 0)
                r = append_strv_option(m, "audiences", arg_audiences, arg_n_audiences);
        if (r >= 0 && arg_explain.n_scopes > 0)
                r = append_strv_option(m, "scope", arg_explain.scopes, arg_explain.n_scopes);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");

        r = call_may_wait_for_approval(bus, m, TIMEOUT_CREATE_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error("Starting the task failed", &error, r);
        r = sd_bus_message_read(reply, "o", &task);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &credential, &size);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        if (arg_output) {
                r = write_binary(credential, size, false);
                if (r < 0)
                        return r;
        }
        printf("%s\n", task);
        return 0;
}

/* Task.End of the key's task with that ID. */
static int verb_task_end(sd_bus *bus, const char *name, const char *task_id) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL, *prefix = NULL, *task = NULL;
        int r;

        if (!arg_reason)
                return log_error_errno(EINVAL, "--reason= is required: it is recorded in the revocation and audit log");
        r = key_path(name, &path);
        if (r < 0)
                return r;
        if (asprintf(&prefix, "%s/task", path) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        r = sd_bus_path_encode(prefix, task_id, &task);
        if (r < 0)
                return log_error_errno(r, "Invalid task ID: %m");
        r = sd_bus_call_method(bus, BUS_NAME, task, TASK_IFACE, "End", &error, NULL, "s", arg_reason);
        if (r < 0)
                return ctl_report_error("Ending the task failed", &error, r);
        return 0;
}

static int verb_audit_head(sd_bus *bus) {
        _cleanup_free_ uint8_t *nonce = NULL;
        size_t n = 0;
        int r;

        if (!arg_nonce || hex_decode(arg_nonce, &nonce, &n) < 0 || n < 16 || n > 64)
                return log_error_errno(EINVAL, "--nonce= must be 16..64 bytes in hex");
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetAuditHead");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', nonce, n);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        return call_and_write_bytes(bus, m, false, "Reading the audit head failed");
}

static int verb_destroy(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const void *receipt;
        size_t size;
        int r;

        if (!arg_reason)
                return log_error_errno(EINVAL, "--reason= is required: destruction is recorded with its reason");
        r = key_path(name, &path);
        if (r < 0)
                return r;

        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, "Destroy");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", arg_reason);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        r = call_may_wait_for_approval(bus, m, TIMEOUT_SIGN_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error("Destroying the key failed", &error, r);
        r = sd_bus_message_read_array(reply, 'y', &receipt, &size);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        if (!arg_output)
                fprintf(stderr, "Key '%s' destroyed. Receipt (COSE_Sign1 by the host key):\n", name);
        return write_binary(receipt, size, true);
}

static int verb_rotate(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const void *statement;
        size_t size;
        int r;

        if (!arg_reason)
                return log_error_errno(EINVAL, "--reason= is required: rotation is recorded with its reason");
        r = key_path(name, &path);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, "Rotate");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", arg_reason);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        /* A TPM key is created: as slow as create on some TPMs. */
        r = call_may_wait_for_approval(bus, m, TIMEOUT_CREATE_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error("Rotating the key failed", &error, r);
        r = sd_bus_message_read_array(reply, 'y', &statement, &size);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        if (!arg_output)
                fprintf(stderr, "Key '%s' rotated; the old key is revoked. Rotation statement (COSE_Sign by the "
                        "old key and the host key):\n", name);
        return write_binary(statement, size, true);
}

static int verb_revocations_export(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetRevocations");
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        return call_and_write_bytes(bus, m, false, "Reading the revocation list failed");
}

/* The names of the live keys whose Owner is arg_owner or whose Uid is arg_uid. */
static int offboard_select(sd_bus *bus, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *path, *state;
        json_t *names = json_array();
        int r;

        if (!names)
                return log_error_errno(ENOMEM, "Out of memory");
        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListKeys", &error, &reply, NULL);
        if (r < 0) {
                json_decref(names);
                return ctl_report_error("Listing keys", &error, r);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sos)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sos)", &name, &path, &state)) > 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error perror = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *owner = NULL;
                uint32_t uid;

                if (streq(state, "destroyed"))
                        continue;
                r = sd_bus_get_property_string(bus, BUS_NAME, path, KEY_IFACE, "Owner", &perror, &owner);
                if (r >= 0)
                        r = sd_bus_get_property_trivial(bus, BUS_NAME, path, KEY_IFACE, "Uid", &perror, 'u', &uid);
                if (r < 0) {
                        /* Destroyed meanwhile (by someone else, or expiry): nothing left to do for it. */
                        if (sd_bus_error_has_name(&perror, SD_BUS_ERROR_UNKNOWN_OBJECT))
                                continue;
                        json_decref(names);
                        return ctl_report_error("Reading key properties", &perror, r);
                }
                if ((arg_owner && streq(owner, arg_owner)) || (arg_uid >= 0 && uid == (uint32_t) arg_uid))
                        json_array_append_new(names, json_string(name));
        }
        if (r < 0) {
                json_decref(names);
                return log_error_errno(r, "Bad reply: %m");
        }
        *ret = names;
        return 0;
}

/* Bulk offboarding: one Destroy per key of an owner or uid, each with its receipt. */
static int verb_offboard(sd_bus *bus) {
        json_t *names = NULL, *results = NULL, *v;
        _cleanup_close_ int dir_fd = -EBADF;
        size_t i, n_failed = 0;
        int r;

        if (!arg_reason)
                return log_error_errno(EINVAL, "--reason= is required: destruction is recorded with its reason");
        if (!!arg_owner == (arg_uid >= 0))
                return log_error_errno(EINVAL, "Give exactly one of --owner= and --uid= (or --user-name=)");
        if (arg_receipts_dir) {
                if (mkdir(arg_receipts_dir, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "Creating %s failed: %m", arg_receipts_dir);
                dir_fd = open(arg_receipts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd < 0)
                        return log_error_errno(errno, "Opening %s failed: %m", arg_receipts_dir);
        }

        r = offboard_select(bus, &names);
        if (r < 0)
                return r;
        results = json_array();
        if (!results) {
                json_decref(names);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        size_t n = json_array_size(names);
        if (n == 0) {
                if (arg_owner)
                        fprintf(stderr, "No live keys of owner %s.\n", arg_owner);
                else
                        fprintf(stderr, "No live keys of uid %lld.\n", arg_uid);
        }
        json_array_foreach(names, i, v) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
                _cleanup_free_ char *path = NULL, *b64 = NULL, *file = NULL;
                const char *name = json_string_value(v);
                const void *receipt = NULL;
                size_t size = 0;

                fprintf(stderr, "[%zu/%zu] destroying %s\n", i + 1, n, name);
                r = key_path(name, &path);
                if (r >= 0)
                        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, "Destroy");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", arg_reason);
                if (r >= 0)
                        r = call_may_wait_for_approval(bus, m, TIMEOUT_SIGN_USEC, &error, &reply);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &receipt, &size);
                if (r >= 0 && dir_fd >= 0) {
                        if (asprintf(&file, "%s.receipt", name) < 0)
                                r = -ENOMEM;
                        else
                                r = write_file_atomic_at(dir_fd, file, receipt, size, 0644, 0);
                }
                if (r >= 0 && !(b64 = malloc(4 * ((size + 2) / 3) + 1)))
                        r = -ENOMEM;
                if (r < 0) {
                        const char *why = sd_bus_error_is_set(&error) ? error.message : strerror(-r);
                        fprintf(stderr, "%s: %s%s%s\n", name, why, sd_bus_error_is_set(&error) ? " " : "",
                                sd_bus_error_is_set(&error) ? error.name : "");
                        json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "name", name, "result", "failed",
                                                                 "error", why ?: ""));
                        n_failed++;
                        continue;
                }
                EVP_EncodeBlock((unsigned char *) b64, receipt, (int) size);
                json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "name", name, "result", "destroyed",
                                                         file ? "receipt_file" : "receipt", file ?: b64));
        }
        json_decref(names);

        if (arg_json)
                r = json_print(results);
        else {
                json_array_foreach(results, i, v) {
                        json_t *rec = json_object_get(v, "receipt_file") ?: json_object_get(v, "receipt");
                        printf("%s\t%s\t%s%s%s\n", json_string_value(json_object_get(v, "name")),
                               json_string_value(json_object_get(v, "result")),
                               rec && json_object_get(v, "receipt_file") ? arg_receipts_dir : "",
                               rec && json_object_get(v, "receipt_file") ? "/" : "",
                               json_string_value(rec ?: json_object_get(v, "error")));
                }
                r = 0;
                json_decref(results);
        }
        if (n_failed > 0)
                return log_error_errno(EIO, "%zu of %zu keys could not be destroyed; run the command again to retry",
                                       n_failed, n);
        return r;
}

/* Attest and GetPlatformEvidence: a verifier-chosen nonce in, CBOR evidence out. */
static int verb_evidence(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *nonce = NULL;
        size_t n = 0;
        int r;

        if (!arg_nonce || hex_decode(arg_nonce, &nonce, &n) < 0 || n < 16 || n > 64)
                return log_error_errno(EINVAL, "--nonce= must be 16..64 bytes in hex (from the verifier)");
        if (name) {
                r = key_path(name, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, KEY_IFACE, "Attest");
        } else
                r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE,
                                                   "GetPlatformEvidence");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', nonce, n);
        if (r >= 0 && name) {
                r = sd_bus_message_open_container(m, 'a', "{sv}");
                if (r >= 0 && arg_task_id)
                        r = sd_bus_message_append(m, "{sv}", "task_id", "s", arg_task_id);
                if (r >= 0 && arg_parent_task_id)
                        r = sd_bus_message_append(m, "{sv}", "parent_task_id", "s", arg_parent_task_id);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        return call_and_write_bytes(bus, m, name != NULL, "Producing evidence failed");
}

static int verb_attestation_key(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *ak;
        size_t n;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetAttestationKey", &error, &reply, NULL);
        if (r < 0)
                return ctl_report_error("Reading the attestation key failed", &error, r);
        r = sd_bus_message_read_array(reply, 'y', &ak, &n);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        return write_binary(ak, n, true);
}

/* Deterministic CBOR of a finished map to --output (or stdout). */
static int write_cbor(cbor_item_t *map) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r = cbor_util_encode(map, &buf, &size);
        if (r < 0)
                return log_error_errno(r, "Encoding failed: %m");
        return write_binary(buf, size, false);
}

/* docs/formats.md §7: what a verifier needs to challenge this host's AK. */
static int verb_enroll_request(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_cbor_ cbor_item_t *map = cbor_util_new_map(), *ek = cbor_util_new_map();
        const void *ak, *name, *ek_pub = NULL, *ek_cert = NULL;
        size_t ak_size, name_size, ek_pub_size = 0, ek_cert_size = 0;
        const char *host_id = NULL, *alg = NULL, *key;
        int r, k = 0;

        if (!map || !ek)
                return log_error_errno(ENOMEM, "Out of memory");
        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetAttestationKey", &error, &reply, NULL);
        if (r < 0)
                return ctl_report_error("Reading the attestation key failed", &error, r);
        r = sd_bus_message_read_array(reply, 'y', &ak, &ak_size);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &name, &name_size);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && streq(key, "host_id"))
                        r = sd_bus_message_read(reply, "v", "s", &host_id);
                else if (r >= 0 && streq(key, "eks")) {
                        r = sd_bus_message_enter_container(reply, 'v', "a(sayay)");
                        if (r >= 0)
                                r = sd_bus_message_enter_container(reply, 'a', "(sayay)");
                        /* The AK's parent comes first; the others are read past. */
                        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "sayay")) > 0) {
                                const char *a;
                                const void *p, *c;
                                size_t np, nc;
                                r = sd_bus_message_read(reply, "s", &a);
                                if (r >= 0)
                                        r = sd_bus_message_read_array(reply, 'y', &p, &np);
                                if (r >= 0)
                                        r = sd_bus_message_read_array(reply, 'y', &c, &nc);
                                if (r >= 0 && !alg) {
                                        alg = a;
                                        ek_pub = p;
                                        ek_pub_size = np;
                                        ek_cert = c;
                                        ek_cert_size = nc;
                                }
                                if (r >= 0)
                                        r = sd_bus_message_exit_container(reply);
                        }
                        for (int i = 0; i < 2 && r >= 0; i++)
                                r = sd_bus_message_exit_container(reply);
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        if (!host_id || !alg || ek_pub_size == 0)
                return log_error_errno(EBADMSG, "agentidd did not report the EK and host id");
        if (ek_cert_size == 0)
                return log_error_errno(ENOENT, "This TPM has no EK certificate in NV: the verifier cannot check the EK");

        k |= cbor_util_map_put_text(ek, "alg", cbor_util_new_text(alg));
        k |= cbor_util_map_put_text(ek, "pub", cbor_util_new_bytes(ek_pub, ek_pub_size));
        k |= cbor_util_map_put_text(ek, "cert", cbor_util_new_bytes(ek_cert, ek_cert_size));
        k |= cbor_util_map_put_text(map, "v", cbor_util_new_uint(1));
        k |= cbor_util_map_put_text(map, "type", cbor_util_new_text("enroll-request"));
        k |= cbor_util_map_put_text(map, "host_id", cbor_util_new_text(host_id));
        k |= cbor_util_map_put_text(map, "ak_pub", cbor_util_new_bytes(ak, ak_size));
        k |= cbor_util_map_put_text(map, "ek", TAKE_PTR(ek));
        if (k != 0)
                return log_error_errno(ENOMEM, "Out of memory");
        return write_cbor(map);
}

static int verb_enroll_respond(sd_bus *bus) {
        static const CborLimits limits = { .max_size = 8192, .max_depth = 2, .max_items = 16,
                                           .flags = CBOR_VALIDATE_DETERMINISTIC };
        static const char *const fields[] = { "v", "type", "ek", "credential_blob", "encrypted_secret" };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_cbor_ cbor_item_t *challenge = NULL, *response = cbor_util_new_map();
        _cleanup_free_ uint8_t *buf = NULL;
        const uint8_t *blob, *secret;
        const char *type, *ek;
        size_t size = 0, blob_size, secret_size, type_size, ek_size;
        const void *out;
        size_t out_size;
        uint64_t v;
        CborError cerr = {};
        int r;

        if (!arg_challenge)
                return log_error_errno(EINVAL, "--challenge=FILE is required");
        r = read_input(arg_challenge, limits.max_size, &buf, &size);
        if (r < 0)
                return r;
        r = cbor_util_decode(buf, size, &limits, &challenge, &cerr);
        if (r < 0)
                return log_error_errno(EBADMSG, "%s is not a valid challenge: %s", arg_challenge,
                                       cerr.reason ?: "not CBOR");
        if (!cbor_isa_map(challenge) || cbor_util_map_check_text_keys(challenge, fields, ELEMENTSOF(fields), NULL) < 0 ||
            cbor_util_get_uint(cbor_util_map_get_text(challenge, "v"), &v) < 0 || v != 1 ||
            cbor_util_get_text(cbor_util_map_get_text(challenge, "type"), &type, &type_size) < 0 ||
            type_size != strlen("enroll-challenge") || memcmp(type, "enroll-challenge", type_size) != 0 ||
            cbor_util_get_text(cbor_util_map_get_text(challenge, "ek"), &ek, &ek_size) < 0 || ek_size > 8 ||
            cbor_util_get_bytes(cbor_util_map_get_text(challenge, "credential_blob"), &blob, &blob_size) < 0 ||
            cbor_util_get_bytes(cbor_util_map_get_text(challenge, "encrypted_secret"), &secret, &secret_size) < 0)
                return log_error_errno(EBADMSG, "%s is not an enrollment challenge (docs/formats.md §7)", arg_challenge);
        _cleanup_free_ char *ek_name = memdup_cstr(ek, ek_size);
        if (!ek_name || !response)
                return log_error_errno(ENOMEM, "Out of memory");

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ActivateCredential");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', blob, blob_size);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', secret, secret_size);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 1, "ek", "s", ek_name);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        r = sd_bus_call(bus, m, TIMEOUT_SIGN_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error("Activating the credential failed", &error, r);
        r = sd_bus_message_read_array(reply, 'y', &out, &out_size);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");

        int k = 0;
        k |= cbor_util_map_put_text(response, "v", cbor_util_new_uint(1));
        k |= cbor_util_map_put_text(response, "type", cbor_util_new_text("enroll-response"));
        k |= cbor_util_map_put_text(response, "secret", cbor_util_new_bytes(out, out_size));
        if (k != 0)
                return log_error_errno(ENOMEM, "Out of memory");
        return write_cbor(response);
}

static int verb_approvals(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_t *arr = json_array();
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListApprovals", &error, &reply, NULL);
        if (r < 0) {
                json_decref(arr);
                return ctl_report_error("Listing approvals", &error, r);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sssa{sv})");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "sssa{sv}")) > 0) {
                const char *id, *key, *action;
                json_t *context = NULL;
                r = sd_bus_message_read(reply, "sss", &id, &key, &action);
                if (r >= 0)
                        r = read_vardict(reply, &context);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o}", "id", id, "key", key, "action",
                                                             action, "context", context));
        }
        if (r < 0) {
                json_decref(arr);
                return log_error_errno(r, "Bad reply: %m");
        }
        if (arg_json)
                return json_print(arr);

        size_t i;
        json_t *e;
        uint64_t now = (uint64_t) time(NULL);
        printf("%-32s %-20s %-12s %-6s %-20s %s\n", "ID", "KEY", "ACTION", "UID", "TASK", "EXPIRES IN");
        json_array_foreach(arr, i, e) {
                json_t *c = json_object_get(e, "context");
                uint64_t expires = (uint64_t) json_integer_value(json_object_get(c, "expires_at")) / 1000000;
                printf("%-32s %-20s %-12s %-6lld %-20s %llus\n", json_string_value(json_object_get(e, "id")),
                       json_string_value(json_object_get(e, "key")), json_string_value(json_object_get(e, "action")),
                       (long long) json_integer_value(json_object_get(c, "uid")),
                       json_string_value(json_object_get(c, "task_id")) ?: "-",
                       (unsigned long long) (expires > now ? expires - now : 0));
        }
        if (json_array_size(arr) == 0)
                printf("(no requests await approval)\n");
        json_decref(arr);
        return 0;
}

static int verb_approve(sd_bus *bus, const char *id, bool allow) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "Approve", &error, NULL, "sb", id, allow);
        if (r < 0)
                return ctl_report_error(allow ? "Approving failed" : "Denying failed", &error, r);
        printf("Request %s %s.\n", id, allow ? "approved" : "denied");
        return 0;
}

static int verb_policy_reload(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ReloadPolicy", &error, NULL, NULL);
        if (r < 0)
                return ctl_report_error("Reloading the policy failed", &error, r);
        printf("Policy reloaded.\n");
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        /* "audit" reads files, not the bus, and has options of its own (ctl-audit.c); so has "peers"
         * (ctl-peers.c), which parses the whole command line. */
        for (int i = 1; i < argc; i++)
                if (argv[i][0] != '-') {
                        if (streq(argv[i], "audit"))
                                return ctl_audit(argc - i, argv + i);
                        if (streq(argv[i], "peers"))
                                return ctl_peers(argc, argv);
                        break;
                }

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (optind >= argc) {
                log_error("Missing command; see --help.");
                return EXIT_USAGE;
        }

        static const struct {
                const char *name;
                int min, max;
        } verbs[] = {
                { "status", 0, 0 }, { "list", 0, 0 },         { "show", 1, 1 },         { "create", 1, 1 },
                { "public-key", 1, 1 }, { "sign", 1, 2 },      { "sign-message", 1, 2 }, { "destroy", 1, 1 },
                { "attest", 1, 1 },     { "platform-evidence", 0, 0 }, { "attestation-key", 0, 0 },
                { "enroll", 1, 1 },     { "policy", 1, 2 },        { "approvals", 0, 0 },
                { "approve", 1, 1 },    { "deny", 1, 1 },          { "issue-token", 1, 1 },
                { "audit-head", 0, 0 }, { "rotate", 1, 1 },       { "offboard", 0, 0 },
                { "revocations", 1, 1 }, { "task", 2, 3 },
        };
        const char *verb = argv[optind];
        int nargs = argc - optind - 1;
        char **args = argv + optind + 1;
        size_t i;
        for (i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].name))
                        break;
        if (i == ELEMENTSOF(verbs)) {
                log_error("Unknown command '%s'; see --help.", verb);
                return EXIT_USAGE;
        }
        if (nargs < verbs[i].min || nargs > verbs[i].max) {
                log_error("Wrong number of arguments for '%s'; see --help.", verb);
                return EXIT_USAGE;
        }

        /* One --audience= for everything but task start, which takes a list. */
        if (arg_n_audiences > 1 && !(streq(verb, "task") && streq(args[0], "start"))) {
                log_error("--audience= may be given once for '%s'; several only for task start.", verb);
                return EXIT_USAGE;
        }

        /* The offline policy commands need no daemon. */
        if (streq(verb, "policy") && !streq(args[0], "reload")) {
                if (streq(args[0], "check") && nargs == 2)
                        r = ctl_policy_check(args[1], arg_json);
                else if (streq(args[0], "explain") && nargs == 1) {
                        arg_explain.uid = arg_uid;
                        arg_explain.audience = arg_audience;
                        arg_explain.task_id = arg_task_id;
                        arg_explain.exe_sha256 = arg_exe_sha256;
                        arg_explain.json = arg_json;
                        r = ctl_policy_explain(&arg_explain);
                } else {
                        log_error("Usage: policy check FILE | policy explain OPTIONS | policy reload");
                        return EXIT_USAGE;
                }
                return r < 0 ? -r : 0;
        }

        r = connect_bus(&bus);
        if (r < 0)
                return -r;
        (void) sd_bus_set_method_call_timeout(bus, TIMEOUT_READ_USEC);

        if (streq(verb, "status"))
                r = verb_status(bus);
        else if (streq(verb, "list"))
                r = verb_list(bus);
        else if (streq(verb, "show"))
                r = verb_show(bus, args[0]);
        else if (streq(verb, "create"))
                r = verb_create(bus, args[0]);
        else if (streq(verb, "public-key"))
                r = verb_public_key(bus, args[0]);
        else if (streq(verb, "sign"))
                r = sign_common(bus, args[0], nargs > 1 ? args[1] : NULL, false);
        else if (streq(verb, "sign-message"))
                r = sign_common(bus, args[0], nargs > 1 ? args[1] : NULL, true);
        else if (streq(verb, "destroy"))
                r = verb_destroy(bus, args[0]);
        else if (streq(verb, "attest"))
                r = verb_evidence(bus, args[0]);
        else if (streq(verb, "platform-evidence"))
                r = verb_evidence(bus, NULL);
        else if (streq(verb, "attestation-key"))
                r = verb_attestation_key(bus);
        else if (streq(verb, "policy"))
                r = nargs == 1 ? verb_policy_reload(bus) : (log_error("policy reload takes no argument."), -EINVAL);
        else if (streq(verb, "approvals"))
                r = verb_approvals(bus);
        else if (streq(verb, "issue-token"))
                r = verb_issue_token(bus, args[0]);
        else if (streq(verb, "audit-head"))
                r = verb_audit_head(bus);
        else if (streq(verb, "rotate"))
                r = verb_rotate(bus, args[0]);
        else if (streq(verb, "offboard"))
                r = verb_offboard(bus);
        else if (streq(verb, "revocations"))
                r = streq(args[0], "export") ? verb_revocations_export(bus) :
                                               (log_error("Usage: revocations export [--output=FILE]"), -EINVAL);
        else if (streq(verb, "task")) {
                if (streq(args[0], "start") && nargs == 2)
                        r = verb_task_start(bus, args[1]);
                else if (streq(args[0], "end") && nargs == 3)
                        r = verb_task_end(bus, args[1], args[2]);
                else {
                        log_error("Usage: task start NAME --task-id=ID [...] | task end NAME ID --reason=TEXT");
                        return EXIT_USAGE;
                }
        } else if (streq(verb, "approve"))
                r = verb_approve(bus, args[0], true);
        else if (streq(verb, "deny"))
                r = verb_approve(bus, args[0], false);
        else if (streq(args[0], "request"))
                r = verb_enroll_request(bus);
        else if (streq(args[0], "respond"))
                r = verb_enroll_respond(bus);
        else {
                log_error("Unknown enroll step '%s' (request or respond).", args[0]);
                return EXIT_USAGE;
        }

        if (r == -EXIT_UNREACHABLE || r == -EXIT_REFUSED)
                return -r;
        if (r == -EINVAL)
                return EXIT_USAGE;
        return r < 0 ? EXIT_REFUSED : 0;
}

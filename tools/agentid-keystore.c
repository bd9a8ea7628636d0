/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-keystore: direct access to a keystore for development, diagnosis and the README scenario
 * while no daemon runs. It opens the state directory itself (and so refuses while agentidd holds it).
 * Production use goes through agentidd, which adds authorisation, policy and audit.
 */

#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "config.h"
#include "keystore/keystore.h"

/* Bounded: the tool hashes what it signs, but refuses absurd inputs rather than reading forever. */
#define SIGN_INPUT_MAX (64U * 1024U * 1024U)

static const char *arg_tcti;
static const char *arg_state_dir;
static const char *arg_owner_auth_file;
static const char *arg_endorsement_auth_file;
static bool arg_flush_stale_handles;
static const char *arg_owner;
static const char *arg_description;
static long long arg_uid = -1;
static unsigned long long arg_ttl;
static const char *arg_format = "base64";
static const char *arg_output;

static void help(void) {
        printf("Usage: agentid-keystore [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "Direct access to an agentid keystore (TPM keys and their records) for development and\n"
               "diagnosis, while agentidd is not running.\n"
               "\n"
               "Commands:\n"
               "  create NAME --owner=OWNER [--uid=UID] [--ttl=SECONDS] [--description=TEXT]\n"
               "                          Create a TPM-resident signing key\n"
               "  list                    List keys (name, state, uid, owner)\n"
               "  sign NAME [FILE|-]      SHA-256 the input and sign it (--format=base64|der|raw)\n"
               "  public-key NAME         Write the DER SubjectPublicKeyInfo (--output=FILE)\n"
               "  destroy NAME            Flush the key and leave a tombstone that reserves the name\n"
               "  host-id                 Print the host-id used in agent URIs\n"
               "\n"
               "Options:\n"
               "  --tcti=CONF             TPM to use (env AGENTID_TCTI, default " AGENTID_DEFAULT_TCTI ")\n"
               "  --state-dir=DIR         State directory (default $STATE_DIRECTORY or " AGENTID_DEFAULT_STATE_DIR ")\n"
               "  --owner-auth-file=FILE  Owner hierarchy password\n"
               "  --endorsement-auth-file=FILE  Endorsement hierarchy password\n"
               "  --flush-stale-handles   Flush all transient TPM objects and sessions first (no RM only)\n"
               "  --output=FILE           Write binary output to FILE instead of stdout\n"
               "  -v, --verbose           Debug logging\n"
               "  -h, --help              Show this help\n"
               "      --version           Show the version\n"
               "\n"
               "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_TCTI = 0x100,
                ARG_STATE_DIR,
                ARG_OWNER_AUTH,
                ARG_ENDORSEMENT_AUTH,
                ARG_FLUSH,
                ARG_OWNER,
                ARG_UID,
                ARG_TTL,
                ARG_DESCRIPTION,
                ARG_FORMAT,
                ARG_OUTPUT,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "owner-auth-file", required_argument, NULL, ARG_OWNER_AUTH },
                { "endorsement-auth-file", required_argument, NULL, ARG_ENDORSEMENT_AUTH },
                { "flush-stale-handles", no_argument, NULL, ARG_FLUSH },
                { "owner", required_argument, NULL, ARG_OWNER },
                { "uid", required_argument, NULL, ARG_UID },
                { "ttl", required_argument, NULL, ARG_TTL },
                { "description", required_argument, NULL, ARG_DESCRIPTION },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "output", required_argument, NULL, ARG_OUTPUT },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0)
                switch (c) {
                case ARG_TCTI:
                        arg_tcti = optarg;
                        break;
                case ARG_STATE_DIR:
                        arg_state_dir = optarg;
                        break;
                case ARG_OWNER_AUTH:
                        arg_owner_auth_file = optarg;
                        break;
                case ARG_ENDORSEMENT_AUTH:
                        arg_endorsement_auth_file = optarg;
                        break;
                case ARG_FLUSH:
                        arg_flush_stale_handles = true;
                        break;
                case ARG_OWNER:
                        arg_owner = optarg;
                        break;
                case ARG_UID:
                        errno = 0;
                        arg_uid = strtoll(optarg, &end, 10);
                        if (errno || *end || arg_uid < 0 || arg_uid >= UINT32_MAX) {
                                log_error("Invalid --uid: %s", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_TTL:
                        errno = 0;
                        arg_ttl = strtoull(optarg, &end, 10);
                        if (errno || *end || arg_ttl == 0 || arg_ttl > 100ULL * 365 * 24 * 3600) {
                                log_error("Invalid --ttl (1 second .. 100 years): %s", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_DESCRIPTION:
                        arg_description = optarg;
                        break;
                case ARG_FORMAT:
                        if (!streq(optarg, "base64") && !streq(optarg, "der") && !streq(optarg, "raw")) {
                                log_error("Invalid --format (base64, der or raw): %s", optarg);
                                return -EINVAL;
                        }
                        arg_format = optarg;
                        break;
                case ARG_OUTPUT:
                        arg_output = optarg;
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("agentid-keystore " AGENTID_VERSION "\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        return 1;
}

static int open_keystore(Keystore **ret) {
        char err[KEYSTORE_ERROR_MAX] = "";
        const char *state_dir = arg_state_dir ?: secure_getenv("STATE_DIRECTORY") ?: AGENTID_DEFAULT_STATE_DIR;
        KeystoreOptions o = {
                .tcti = arg_tcti ?: secure_getenv("AGENTID_TCTI") ?: AGENTID_DEFAULT_TCTI,
                .state_dir = state_dir,
                .owner_auth_file = arg_owner_auth_file,
                .endorsement_auth_file = arg_endorsement_auth_file,
                .flush_stale_handles = arg_flush_stale_handles,
        };
        int r = keystore_open(&o, ret, err);
        if (r < 0)
                return log_error_errno(r, "%s", err);
        return 0;
}

static int write_output(const void *data, size_t size) {
        if (arg_output) {
                int r = write_file_atomic(arg_output, data, size, 0644, 0);
                if (r < 0)
                        return log_error_errno(r, "Writing %s failed: %m", arg_output);
                return 0;
        }
        if (fwrite(data, 1, size, stdout) != size || fflush(stdout) != 0)
                return log_error_errno(EIO, "Writing to stdout failed");
        return 0;
}

static int read_input(const char *path, uint8_t **ret, size_t *ret_size) {
        int r = read_file_or_stdin(path, SIGN_INPUT_MAX, ret, ret_size);
        if (r == -EFBIG)
                return log_error_errno(r, "%s is larger than %u bytes", path ?: "stdin", SIGN_INPUT_MAX);
        if (r < 0)
                return log_error_errno(r, "Reading %s failed: %m", path ?: "stdin");
        return 0;
}

static int load_key(Keystore *ks, const char *name, KeyRecord **ret) {
        int r = keystore_load_record(ks, name, ret);
        if (r == -ENOENT)
                return log_error_errno(r, "No key named '%s'", name);
        if (r < 0)
                return log_error_errno(r, "%s", keystore_last_error(ks));
        return 0;
}

static int verb_create(Keystore *ks, const char *name) {
        _cleanup_(key_record_freep) KeyRecord *r = NULL;
        uint64_t now = (uint64_t) time(NULL);

        if (!arg_owner)
                return log_error_errno(EINVAL, "--owner= is required: every key has an accountable owner");
        KeySpec spec = {
                .name = name,
                .owner = arg_owner,
                .description = arg_description,
                .uid = arg_uid >= 0 ? (uint32_t) arg_uid : (uint32_t) getuid(),
                .not_after = arg_ttl ? now + arg_ttl : 0,
        };
        int k = keystore_create_key(ks, &spec, now, &r);
        if (k < 0)
                return log_error_errno(k, "%s", keystore_last_error(ks));

        char kid[2 * KEY_KID_SIZE + 1];
        hex_encode_to(r->kid, KEY_KID_SIZE, kid);
        printf("created %s\n  uri   agentid://%s/%s\n  kid   %s\n  owner %s\n  uid   %u\n", r->name,
               keystore_host_id(ks), r->name, kid, r->owner, r->uid);
        return 0;
}

static void report_problem(const char *file, int error, const char *reason, void *userdata) {
        log_warning("Skipping record '%s': %s", file, reason);
}

static int verb_list(Keystore *ks) {
        KeyRecord **all = NULL;
        size_t n = 0;
        int r = keystore_load_all(ks, report_problem, NULL, &all, &n);
        if (r < 0)
                return log_error_errno(r, "Listing keys failed: %m");

        printf("%-24s %-10s %-8s %s\n", "NAME", "STATE", "UID", "OWNER");
        for (size_t i = 0; i < n; i++) {
                const char *state = key_state_to_string(all[i]->state);
                if (all[i]->state == KEY_STATE_ACTIVE && keystore_key_check(ks, all[i]) < 0)
                        state = "unusable";
                printf("%-24s %-10s %-8u %s\n", all[i]->name, state, all[i]->uid, all[i]->owner);
                key_record_free(all[i]);
        }
        free(all);
        return 0;
}

static int verb_sign(Keystore *ks, const char *name, const char *input) {
        _cleanup_(key_record_freep) KeyRecord *r = NULL;
        _cleanup_free_ uint8_t *data = NULL, *der = NULL;
        uint8_t digest[KEYSTORE_DIGEST_SIZE], sig[KEYSTORE_SIGNATURE_SIZE];
        size_t size = 0, der_size = 0;
        int k;

        k = load_key(ks, name, &r);
        if (k < 0)
                return k;
        k = read_input(input, &data, &size);
        if (k < 0)
                return k;
        k = sha256(data, size, digest);
        if (k < 0)
                return log_error_errno(k, "Hashing failed");
        k = keystore_sign(ks, r, digest, sig);
        if (k < 0)
                return log_error_errno(k, "%s", keystore_last_error(ks));

        if (streq(arg_format, "raw"))
                return write_output(sig, sizeof(sig));
        k = ecdsa_raw_to_der(sig, 32, &der, &der_size);
        if (k < 0)
                return log_error_errno(k, "Encoding the signature failed");
        if (streq(arg_format, "der"))
                return write_output(der, der_size);

        char b64[4 * ((P256_DER_SIG_MAX + 2) / 3) + 2];
        int len = EVP_EncodeBlock((unsigned char *) b64, der, (int) der_size);
        b64[len] = '\n';
        return write_output(b64, (size_t) len + 1);
}

static int verb_public_key(Keystore *ks, const char *name) {
        _cleanup_(key_record_freep) KeyRecord *r = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        size_t size = 0;
        int k = load_key(ks, name, &r);
        if (k < 0)
                return k;
        k = keystore_key_public_der(r, &der, &size);
        if (k == -EKEYREVOKED)
                return log_error_errno(k, "Key '%s' was destroyed", name);
        if (k < 0)
                return log_error_errno(k, "Exporting the public key of '%s' failed: %m", name);
        return write_output(der, size);
}

static int verb_destroy(Keystore *ks, const char *name) {
        _cleanup_(key_record_freep) KeyRecord *r = NULL;
        int k = load_key(ks, name, &r);
        if (k < 0)
                return k;
        k = keystore_destroy_key(ks, r, (uint64_t) time(NULL));
        if (k < 0)
                return log_error_errno(k, "%s", keystore_last_error(ks));
        printf("destroyed %s (the name stays reserved)\n", name);
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(keystore_freep) Keystore *ks = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (optind >= argc) {
                log_error("Missing command; see --help.");
                return 2;
        }

        const char *verb = argv[optind];
        int nargs = argc - optind - 1;
        char **args = argv + optind + 1;
        struct {
                const char *name;
                int min, max;
        } verbs[] = {
                { "create", 1, 1 }, { "list", 0, 0 },    { "sign", 1, 2 },
                { "public-key", 1, 1 }, { "destroy", 1, 1 }, { "host-id", 0, 0 },
        };
        size_t i;
        for (i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].name))
                        break;
        if (i == ELEMENTSOF(verbs)) {
                log_error("Unknown command '%s'; see --help.", verb);
                return 2;
        }
        if (nargs < verbs[i].min || nargs > verbs[i].max) {
                log_error("Wrong number of arguments for '%s'; see --help.", verb);
                return 2;
        }

        /* tss2 would print every TPM error itself; the keystore reports them once, with context. */
        (void) setenv("TSS2_LOG", "all+none", 0);

        r = open_keystore(&ks);
        if (r < 0)
                return 1;

        if (streq(verb, "create"))
                r = verb_create(ks, args[0]);
        else if (streq(verb, "list"))
                r = verb_list(ks);
        else if (streq(verb, "sign"))
                r = verb_sign(ks, args[0], nargs > 1 ? args[1] : NULL);
        else if (streq(verb, "public-key"))
                r = verb_public_key(ks, args[0]);
        else if (streq(verb, "destroy"))
                r = verb_destroy(ks, args[0]);
        else
                r = printf("%s\n", keystore_host_id(ks)) < 0 ? -EIO : 0;

        return r < 0 ? 1 : 0;
}

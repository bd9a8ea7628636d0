/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-verify: offline verification of agentid evidence and receipts, for peers, gateways and
 * registries. No TPM, no D-Bus: everything it needs is in the files it is given and the options.
 *
 *   agentid-verify evidence --nonce=HEX --trusted-ak=FILE [...] EVIDENCE_FILE
 *   agentid-verify platform --nonce=HEX --trusted-ak=FILE [...] EVIDENCE_FILE
 *   agentid-verify receipt --host-key=FILE RECEIPT_FILE
 *
 * The verdict is a JSON document on standard output: {"verdict": "valid"|"invalid", "reason",
 * "checks": [{"name", "ok", "detail"}], "claims": {...}} (claims only for a valid verdict). Exit status:
 * 0 valid, 1 invalid, 2 usage or I/O error. See agentid-verify(1) and docs/verifier.md.
 */

#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include "attest/cose.h"
#include "attest/verify.h"
#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "config.h"

enum {
        EXIT_VALID = 0,
        EXIT_INVALID = 1,
        EXIT_USAGE = 2,
};

/* Inputs are small: evidence is at most 16 KiB, a receipt a few hundred bytes; base64 adds a third. */
#define INPUT_MAX (64U * 1024U)
#define KEY_FILE_MAX (16U * 1024U)
#define RECEIPT_TEXT_MAX 1024U

static const char *arg_nonce;
static char **arg_trusted_aks;
static size_t arg_n_trusted_aks;
static unsigned long long arg_now;
static unsigned long long arg_max_age = AGENTID_DEFAULT_MAX_AGE;
static const char *arg_pcrs;
static char **arg_workloads;
static size_t arg_n_workloads;
static bool arg_require_safe;
static const char *arg_host_key;

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

static void help(void) {
        printf("Usage: agentid-verify COMMAND [OPTIONS] FILE\n"
               "\n"
               "Verify agentid attestation evidence and receipts offline.\n"
               "\n"
               "Commands:\n"
               "  evidence FILE          Agent evidence (org.agentid1.Key.Attest)\n"
               "  platform FILE          Platform evidence (Manager.GetPlatformEvidence); prints the\n"
               "                         certified host key\n"
               "  receipt FILE           Destroy receipt (Key.Destroy), signed by the host key\n"
               "\n"
               "Options for evidence and platform:\n"
               "  --nonce=HEX            The nonce sent with the request (16..64 bytes; required)\n"
               "  --trusted-ak=FILE      The attestation key's TPMT_PUBLIC as GetAttestationKey returns it\n"
               "                         (a TPM2B_PUBLIC is accepted too); repeat to trust several\n"
               "  --now=UNIX             Verify as of this time instead of the system clock\n"
               "  --max-age=SECONDS      How old the evidence's iat may be (default %u)\n"
               "  --pcrs=FILE            Reference PCR values, lines INDEX:HEX (SHA-256, PCRs 0-7)\n"
               "  --workload=HEX         Allowed executable SHA-256; repeat for several\n"
               "  --require-safe         Refuse evidence whose TPM clock is not 'safe'\n"
               "\n"
               "Options for receipt:\n"
               "  --host-key=FILE        The host public key, DER SubjectPublicKeyInfo or PEM\n"
               "\n"
               "  -h, --help             Show this help\n"
               "      --version          Show the version\n"
               "\n"
               "FILE may be '-' for standard input, and binary CBOR or base64. The verdict is printed\n"
               "as JSON. Exit status: 0 valid, 1 invalid, 2 usage or I/O error. See agentid-verify(1).\n",
               AGENTID_DEFAULT_MAX_AGE);
}

static int push_arg(char ***list, size_t *n, char *value) {
        char **l = realloc(*list, (*n + 1) * sizeof(char *));
        if (!l)
                return log_error_errno(ENOMEM, "Out of memory");
        l[(*n)++] = value;
        *list = l;
        return 0;
}

static int parse_uint(const char *s, const char *what, unsigned long long *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-')
                return log_error_errno(EINVAL, "Invalid %s: %s", what, s);
        *ret = v;
        return 0;
}

/* Return: 1 to go on, 0 after --help/--version, -errno on a usage error. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_NONCE = 0x100, ARG_TRUSTED_AK, ARG_NOW, ARG_MAX_AGE, ARG_PCRS, ARG_WORKLOAD, ARG_REQUIRE_SAFE,
                ARG_HOST_KEY, ARG_VERSION,
        };
        static const struct option options[] = {
                { "nonce", required_argument, NULL, ARG_NONCE },
                { "trusted-ak", required_argument, NULL, ARG_TRUSTED_AK },
                { "now", required_argument, NULL, ARG_NOW },
                { "max-age", required_argument, NULL, ARG_MAX_AGE },
                { "pcrs", required_argument, NULL, ARG_PCRS },
                { "workload", required_argument, NULL, ARG_WORKLOAD },
                { "require-safe", no_argument, NULL, ARG_REQUIRE_SAFE },
                { "host-key", required_argument, NULL, ARG_HOST_KEY },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_NONCE:
                        arg_nonce = optarg;
                        break;
                case ARG_TRUSTED_AK:
                        r = push_arg(&arg_trusted_aks, &arg_n_trusted_aks, optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_NOW:
                        r = parse_uint(optarg, "--now", &arg_now);
                        if (r < 0)
                                return r;
                        if (arg_now == 0)
                                return log_error_errno(EINVAL, "--now must be after the epoch");
                        break;
                case ARG_MAX_AGE:
                        r = parse_uint(optarg, "--max-age", &arg_max_age);
                        if (r < 0)
                                return r;
                        break;
                case ARG_PCRS:
                        arg_pcrs = optarg;
                        break;
                case ARG_WORKLOAD:
                        r = push_arg(&arg_workloads, &arg_n_workloads, optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_REQUIRE_SAFE:
                        arg_require_safe = true;
                        break;
                case ARG_HOST_KEY:
                        arg_host_key = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("agentid-verify %s\n", AGENTID_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        return 1;
}

/* ---- input ------------------------------------------------------------------------------------ */

static int read_input(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        int r = read_file_or_stdin(path, max, ret, ret_size);
        if (r == -EFBIG)
                return log_error_errno(r, "%s is larger than %zu bytes", path, max);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", path);
        return 0;
}

static bool is_base64_char(uint8_t c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
               c == '=';
}

/* Binary CBOR as is; base64 text (what agentidctl prints without --output) decoded. CBOR maps and
 * tag 18 start with bytes that are not base64 characters, so the two cannot be confused. */
static int decode_input(const char *path, uint8_t **buf, size_t *size) {
        _cleanup_free_ char *clean = NULL;
        size_t n = 0;

        if (*size == 0 || !is_base64_char((*buf)[0]))
                return 0;
        clean = malloc(*size + 1);
        if (!clean)
                return log_error_errno(ENOMEM, "Out of memory");
        for (size_t i = 0; i < *size; i++) {
                uint8_t c = (*buf)[i];
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                        continue;
                if (!is_base64_char(c))
                        return log_error_errno(EINVAL, "%s is neither CBOR nor base64", path);
                clean[n++] = (char) c;
        }
        clean[n] = 0;
        if (n == 0 || n % 4 != 0)
                return log_error_errno(EINVAL, "%s is not valid base64", path);

        _cleanup_free_ uint8_t *out = malloc(n / 4 * 3 + 1);
        if (!out)
                return log_error_errno(ENOMEM, "Out of memory");
        int k = EVP_DecodeBlock(out, (const unsigned char *) clean, (int) n);
        if (k < 0)
                return log_error_errno(EINVAL, "%s is not valid base64", path);
        /* EVP_DecodeBlock counts padding as zero bytes. */
        size_t len = (size_t) k;
        if (clean[n - 1] == '=')
                len--;
        if (clean[n - 2] == '=')
                len--;
        free(*buf);
        *buf = TAKE_PTR(out);
        *size = len;
        return 0;
}

static int parse_hex_exact(const char *s, size_t min, size_t max, const char *what, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n = 0;

        if (hex_decode(s, &b, &n) < 0 || n < min || n > max) {
                if (min == max)
                        return log_error_errno(EINVAL, "%s must be %zu bytes of hex: %s", what, min, s);
                return log_error_errno(EINVAL, "%s must be %zu..%zu bytes of hex: %s", what, min, max, s);
        }
        *ret = TAKE_PTR(b);
        *ret_size = n;
        return 0;
}

static int load_trusted_ak(AgentidVerifier *v, const char *path) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = read_input(path, KEY_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        const uint8_t *p = buf;
        size_t n = size;
        /* A TPM2B_PUBLIC (tpm2-tools writes those) is the TPMT_PUBLIC with a 2-byte size in front. A bare
         * TPMT_PUBLIC cannot look like one: it starts with its type (0x0001 or 0x0023), and an area of
         * 3 or 37 bytes is too short to be a key. */
        if (n > 2 && (size_t) (p[0] << 8 | p[1]) == n - 2) {
                p += 2;
                n -= 2;
        }
        r = agentid_verifier_add_trusted_ak(v, p, n);
        if (r == -EEXIST)
                return 0;
        if (r == -EBADMSG || r == -EINVAL)
                return log_error_errno(EBADMSG, "%s is not a TPMT_PUBLIC", path);
        if (r < 0)
                return log_error_errno(r, "Cannot use %s: %m", path);
        return 0;
}

/* Lines "INDEX:HEX"; blank lines and lines starting with '#' are skipped. */
static int load_pcrs(AgentidVerifier *v, const char *path) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned lineno = 0;
        int r;

        if (!f)
                return log_error_errno(errno, "Cannot open %s: %m", path);
        for (;;) {
                ssize_t k = getline(&line, &cap, f);
                if (k < 0)
                        break;
                lineno++;
                while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t'))
                        line[--k] = 0;
                char *s = line;
                while (*s == ' ' || *s == '\t')
                        s++;
                if (*s == 0 || *s == '#')
                        continue;

                char *colon = strchr(s, ':'), *end;
                if (!colon)
                        return log_error_errno(EINVAL, "%s:%u: expected INDEX:HEX", path, lineno);
                *colon = 0;
                for (char *t = colon - 1; t >= s && (*t == ' ' || *t == '\t'); t--)
                        *t = 0;
                errno = 0;
                unsigned long index = strtoul(s, &end, 10);
                if (errno || end == s || *end || index >= AGENTID_PCR_COUNT)
                        return log_error_errno(EINVAL, "%s:%u: PCR index must be 0..%u (the quoted PCRs)", path, lineno,
                                               AGENTID_PCR_COUNT - 1);
                _cleanup_free_ uint8_t *digest = NULL;
                size_t n = 0;
                char *hex = colon + 1;
                while (*hex == ' ' || *hex == '\t')
                        hex++;
                if (hex_decode(hex, &digest, &n) < 0 || n != AGENTID_PCR_SIZE)
                        return log_error_errno(EINVAL, "%s:%u: expected %u bytes of hex", path, lineno, AGENTID_PCR_SIZE);
                r = agentid_verifier_add_reference_pcr(v, (unsigned) index, digest);
                if (r == -EEXIST)
                        return log_error_errno(r, "%s:%u: PCR %lu given twice", path, lineno, index);
                if (r < 0)
                        return log_error_errno(r, "%s:%u: %m", path, lineno);
        }
        if (ferror(f))
                return log_error_errno(EIO, "Cannot read %s", path);
        return 0;
}

/* ---- JSON ------------------------------------------------------------------------------------- */

static json_t *json_hex(const void *p, size_t n) {
        _cleanup_free_ char *s = hex_encode(p, n);
        return s ? json_string(s) : NULL;
}

/* JSON integers are signed 64-bit in jansson; larger values (obfuscated TPM counters can be) as text. */
static json_t *json_uint(uint64_t v) {
        char buf[32];
        if (v <= (uint64_t) INT64_MAX)
                return json_integer((json_int_t) v);
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long) v);
        return json_string(buf);
}

/* json_object_set_new() that remembers a failure, so a sequence of sets needs one check. */
static void set(json_t *obj, const char *key, json_t *value, bool *failed) {
        if (!value || json_object_set_new(obj, key, value) < 0)
                *failed = true;
}

static json_t *tpm_state_json(const AgentidTpmState *t, bool *failed) {
        json_t *o = json_object(), *pcrs = json_array();
        char fw[17];

        if (!o || !pcrs) {
                json_decref(o);
                json_decref(pcrs);
                *failed = true;
                return NULL;
        }
        for (size_t i = 0; i < AGENTID_PCR_COUNT; i++)
                if (json_array_append_new(pcrs, json_hex(t->pcrs[i], AGENTID_PCR_SIZE)) < 0)
                        *failed = true;
        snprintf(fw, sizeof(fw), "%016llx", (unsigned long long) t->firmware_version);
        set(o, "ak_name", json_hex(t->ak_name, sizeof(t->ak_name)), failed);
        set(o, "clock", json_uint(t->clock), failed);
        set(o, "reset_count", json_integer(t->reset_count), failed);
        set(o, "restart_count", json_integer(t->restart_count), failed);
        set(o, "safe", json_boolean(t->safe), failed);
        set(o, "firmware_version", json_string(fw), failed);
        set(o, "pcrs", pcrs, failed);
        return o;
}

static json_t *claims_json(const AgentidClaims *c, bool *failed) {
        json_t *o = json_object(), *w = json_object();

        if (!o || !w) {
                json_decref(o);
                json_decref(w);
                *failed = true;
                return NULL;
        }
        set(o, "sub", json_string(c->sub), failed);
        set(o, "host_id", json_string(c->host_id), failed);
        set(o, "key_name", json_string(c->key_name), failed);
        set(o, "owner", json_string(c->owner), failed);
        set(o, "uid", json_integer(c->uid), failed);
        set(o, "created", json_uint(c->created), failed);
        if (c->has_not_after)
                set(o, "not_after", json_uint(c->not_after), failed);
        set(o, "iat", json_uint(c->iat), failed);
        set(o, "nonce", json_hex(c->nonce, c->nonce_size), failed);
        set(o, "eat_profile", json_string(c->profile), failed);

        if (c->workload.has_exe_sha256)
                set(w, "exe_sha256", json_hex(c->workload.exe_sha256, sizeof(c->workload.exe_sha256)), failed);
        if (c->workload.exe_path) {
                /* A path that is not UTF-8 cannot be a JSON string: it is given in hex instead. */
                if (c->workload.exe_path_is_text)
                        set(w, "exe_path", json_stringn((const char *) c->workload.exe_path, c->workload.exe_path_size),
                            failed);
                else
                        set(w, "exe_path_hex", json_hex(c->workload.exe_path, c->workload.exe_path_size), failed);
        }
        if (c->workload.unit)
                set(w, "unit", json_string(c->workload.unit), failed);
        set(w, "uid", json_integer(c->workload.uid), failed);
        set(w, "pid", json_integer(c->workload.pid), failed);
        set(o, "workload", w, failed);

        if (c->task_id)
                set(o, "task_id", json_string(c->task_id), failed);
        if (c->parent_task_id)
                set(o, "parent_task_id", json_string(c->parent_task_id), failed);
        set(o, "daemon", json_string(c->daemon), failed);
        set(o, "kid", json_hex(c->kid, sizeof(c->kid)), failed);
        set(o, "public_key", json_hex(c->public_key, c->public_key_size), failed);
        set(o, "spki_sha256", json_hex(c->spki_sha256, sizeof(c->spki_sha256)), failed);
        set(o, "tpm", tpm_state_json(&c->tpm, failed), failed);
        return o;
}

static json_t *platform_json(const AgentidPlatform *p, bool *failed) {
        json_t *o = json_object();
        if (!o) {
                *failed = true;
                return NULL;
        }
        set(o, "host_id", json_string(p->host_id), failed);
        set(o, "srk_name", json_hex(p->srk_name, sizeof(p->srk_name)), failed);
        set(o, "host_kid", json_hex(p->host_kid, sizeof(p->host_kid)), failed);
        set(o, "host_public_key", json_hex(p->host_public_key, p->host_public_key_size), failed);
        set(o, "host_spki_sha256", json_hex(p->host_spki_sha256, sizeof(p->host_spki_sha256)), failed);
        set(o, "tpm", tpm_state_json(&p->tpm, failed), failed);
        return o;
}

static int print_json(json_t *doc) {
        char *s = json_dumps(doc, JSON_INDENT(2));
        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        printf("%s\n", s);
        free(s);
        if (fflush(stdout) != 0)
                return log_error_errno(EIO, "Cannot write the verdict");
        return 0;
}

/* {"verdict", "reason", "checks", "claims"} for an evidence verdict. */
static int print_verdict(const AgentidVerdict *d) {
        _cleanup_(json_decrefp) json_t *doc = json_object();
        json_t *checks = json_array();
        bool failed = !doc || !checks, valid = agentid_verdict_is_valid(d);

        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                const char *name, *detail;
                bool ok;
                json_t *c = json_object();

                if (!c || agentid_verdict_get_check(d, i, NULL, &name, &ok, &detail) < 0) {
                        json_decref(c);
                        failed = true;
                        continue;
                }
                set(c, "name", json_string(name), &failed);
                set(c, "ok", json_boolean(ok), &failed);
                set(c, "detail", json_string(detail), &failed);
                if (json_array_append_new(checks, c) < 0)
                        failed = true;
        }
        if (failed) {
                json_decref(checks);
                return log_error_errno(ENOMEM, "Out of memory");
        }

        json_t *claims;
        if (agentid_verdict_get_claims(d))
                claims = claims_json(agentid_verdict_get_claims(d), &failed);
        else if (agentid_verdict_get_platform(d))
                claims = platform_json(agentid_verdict_get_platform(d), &failed);
        else
                claims = json_object();         /* nothing in invalid evidence is vouched for */

        set(doc, "verdict", json_string(valid ? "valid" : "invalid"), &failed);
        set(doc, "reason", json_string(agentid_reason_to_string(agentid_verdict_reason(d))), &failed);
        set(doc, "checks", checks, &failed);
        set(doc, "claims", claims, &failed);
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        return print_json(doc);
}

/* ---- commands --------------------------------------------------------------------------------- */

static int verify_evidence(bool platform, const char *path) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *nonce = NULL, *evidence = NULL;
        size_t nonce_size = 0, size = 0;
        int r;

        if (!arg_nonce)
                return log_error_errno(EINVAL, "--nonce= is required");
        if (arg_n_trusted_aks == 0)
                return log_error_errno(EINVAL, "--trusted-ak= is required");
        if (arg_host_key)
                return log_error_errno(EINVAL, "--host-key= is for receipts");
        r = parse_hex_exact(arg_nonce, AGENTID_NONCE_MIN, AGENTID_NONCE_MAX, "--nonce", &nonce, &nonce_size);
        if (r < 0)
                return r;

        v = agentid_verifier_new();
        if (!v)
                return log_error_errno(ENOMEM, "Out of memory");
        for (size_t i = 0; i < arg_n_trusted_aks; i++) {
                r = load_trusted_ak(v, arg_trusted_aks[i]);
                if (r < 0)
                        return r;
        }
        if (arg_pcrs) {
                r = load_pcrs(v, arg_pcrs);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < arg_n_workloads; i++) {
                _cleanup_free_ uint8_t *w = NULL;
                size_t n = 0;
                r = parse_hex_exact(arg_workloads[i], AGENTID_SHA256_SIZE, AGENTID_SHA256_SIZE, "--workload", &w, &n);
                if (r < 0)
                        return r;
                r = agentid_verifier_add_allowed_workload(v, w);
                if (r < 0)
                        return log_error_errno(r, "Cannot add --workload: %m");
        }
        if (agentid_verifier_set_now(v, arg_now) < 0 || agentid_verifier_set_max_age(v, arg_max_age) < 0 ||
            agentid_verifier_set_require_safe(v, arg_require_safe) < 0)
                return log_error_errno(EINVAL, "Cannot configure the verifier");

        r = read_input(path, INPUT_MAX, &evidence, &size);
        if (r < 0)
                return r;
        r = decode_input(path, &evidence, &size);
        if (r < 0)
                return r;

        r = platform ? agentid_verify_platform(v, evidence, size, nonce, nonce_size, &d) :
                       agentid_verify_evidence(v, evidence, size, nonce, nonce_size, &d);
        if (r < 0)
                return log_error_errno(r, "Verification failed: %m");
        r = print_verdict(d);
        if (r < 0)
                return r;
        return agentid_verdict_is_valid(d) ? EXIT_VALID : EXIT_INVALID;
}

static int load_host_key(const char *path, EVP_PKEY **ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        EVP_PKEY *pkey = NULL;
        int r;

        r = read_input(path, KEY_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        if (size > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
                BIO *bio = BIO_new_mem_buf(buf, (int) size);
                if (!bio)
                        return log_error_errno(ENOMEM, "Out of memory");
                pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
                BIO_free(bio);
        } else {
                const unsigned char *p = buf;
                pkey = d2i_PUBKEY(NULL, &p, (long) size);
                if (pkey && (size_t) (p - buf) != size) {
                        EVP_PKEY_free(pkey);
                        pkey = NULL;
                }
        }
        if (!pkey)
                return log_error_errno(EINVAL, "%s is not a public key (DER SubjectPublicKeyInfo or PEM)", path);
        *ret = pkey;
        return 0;
}

static int receipt_text(json_t *o, const cbor_item_t *map, const char *key, size_t min, size_t max, bool *failed) {
        const char *s;
        size_t n;
        if (cbor_util_get_text(cbor_util_map_get_text(map, key), &s, &n) < 0 || n < min || n > max)
                return -EBADMSG;
        set(o, key, json_stringn(s, n), failed);
        return 0;
}

static int receipt_bytes(json_t *o, const cbor_item_t *map, const char *key, size_t size, bool *failed) {
        const uint8_t *p;
        size_t n;
        if (cbor_util_get_bytes(cbor_util_map_get_text(map, key), &p, &n) < 0 || n != size)
                return -EBADMSG;
        set(o, key, json_hex(p, n), failed);
        return 0;
}

static bool key_name_valid(const char *s, size_t n) {
        if (n < 1 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'))))
                        return false;
        }
        return true;
}

/* The destroy receipt payload exactly (docs/formats.md §4): deterministic, these keys and no other,
 * "type" = "destroy" so no other host-key statement passes as a receipt. Fills o; -EBADMSG with *why. */
static int receipt_payload(const uint8_t *payload, size_t size, json_t *o, const char **why, bool *failed) {
        static const CborLimits limits = {
                .max_size = 8192,
                .max_depth = 1,
                .max_items = 32,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        static const char *const keys[] = {
                "type", "name", "uri", "kid", "spki_sha256", "owner", "reason", "time", "by_uid", "audit_seq",
        };
        _cleanup_cbor_ cbor_item_t *map = NULL;
        const char *s;
        size_t n;
        uint64_t u;
        int r;

        r = cbor_util_decode(payload, size, &limits, &map, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !cbor_isa_map(map)) {
                *why = "payload is not a deterministic CBOR map";
                return -EBADMSG;
        }
        if (cbor_util_map_check_text_keys(map, keys, ELEMENTSOF(keys), NULL) < 0) {
                *why = "payload has a key a destroy receipt does not have";
                return -EBADMSG;
        }
        if (cbor_util_get_text(cbor_util_map_get_text(map, "type"), &s, &n) < 0 || n != 7 || memcmp(s, "destroy", 7) != 0) {
                *why = "payload \"type\" is not \"destroy\"";
                return -EBADMSG;
        }
        set(o, "type", json_string("destroy"), failed);
        if (cbor_util_get_text(cbor_util_map_get_text(map, "name"), &s, &n) < 0 || !key_name_valid(s, n)) {
                *why = "\"name\" is not a key name";
                return -EBADMSG;
        }
        set(o, "name", json_stringn(s, n), failed);
        if (receipt_text(o, map, "uri", 1, RECEIPT_TEXT_MAX, failed) < 0 ||
            receipt_text(o, map, "owner", 1, RECEIPT_TEXT_MAX, failed) < 0 ||
            receipt_text(o, map, "reason", 0, RECEIPT_TEXT_MAX, failed) < 0) {
                *why = "\"uri\", \"owner\" or \"reason\" is missing or not a text of the right size";
                return -EBADMSG;
        }
        if (receipt_bytes(o, map, "kid", AGENTID_TPM_NAME_SIZE, failed) < 0 ||
            receipt_bytes(o, map, "spki_sha256", AGENTID_SHA256_SIZE, failed) < 0) {
                *why = "\"kid\" (34 bytes) or \"spki_sha256\" (32 bytes) is missing or malformed";
                return -EBADMSG;
        }
        if (cbor_util_get_uint(cbor_util_map_get_text(map, "time"), &u) < 0) {
                *why = "\"time\" is missing or not an unsigned integer";
                return -EBADMSG;
        }
        set(o, "time", json_uint(u), failed);
        if (cbor_util_get_uint(cbor_util_map_get_text(map, "by_uid"), &u) < 0 || u > UINT32_MAX) {
                *why = "\"by_uid\" is missing or not a 32-bit unsigned integer";
                return -EBADMSG;
        }
        set(o, "by_uid", json_uint(u), failed);
        const cbor_item_t *seq = cbor_util_map_get_text(map, "audit_seq");
        if (seq) {
                if (cbor_util_get_uint(seq, &u) < 0) {
                        *why = "\"audit_seq\" is not an unsigned integer";
                        return -EBADMSG;
                }
                set(o, "audit_seq", json_uint(u), failed);
        }
        return 0;
}

static int add_check(json_t *checks, const char *name, bool ok, const char *detail, bool *failed) {
        json_t *c = json_object();
        if (!c) {
                *failed = true;
                return -ENOMEM;
        }
        set(c, "name", json_string(name), failed);
        set(c, "ok", json_boolean(ok), failed);
        set(c, "detail", json_string(detail), failed);
        if (json_array_append_new(checks, c) < 0)
                *failed = true;
        return 0;
}

static int verify_receipt(const char *path) {
        static const CborLimits header_limits = {
                .max_size = COSE_PROTECTED_MAX,
                .max_depth = 2,
                .max_items = 32,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *receipt = NULL, *prot = NULL, *payload = NULL;
        _cleanup_(json_decrefp) json_t *doc = json_object(), *checks = json_array(), *claims = json_object();
        _cleanup_cbor_ cbor_item_t *header = NULL;
        size_t size = 0, prot_size = 0, payload_size = 0;
        const char *why = NULL, *reason = "valid";
        const uint8_t *kid = NULL;
        size_t kid_size = 0;
        bool failed = !doc || !checks || !claims, valid = false;
        int r;

        if (!arg_host_key)
                return log_error_errno(EINVAL, "--host-key= is required");
        if (arg_nonce || arg_n_trusted_aks || arg_pcrs || arg_n_workloads || arg_now || arg_require_safe)
                return log_error_errno(EINVAL, "Evidence options do not apply to receipts");
        r = load_host_key(arg_host_key, &key);
        if (r < 0)
                return r;
        r = read_input(path, INPUT_MAX, &receipt, &size);
        if (r < 0)
                return r;
        r = decode_input(path, &receipt, &size);
        if (r < 0)
                return r;

        /* RFC 9052 §4.2 in agentid's profile (docs/formats.md §3), by the pinned host key. */
        r = cose_sign1_check(receipt, size, key, &prot, &prot_size, &payload, &payload_size);
        if (r == -EINVAL)
                return log_error_errno(r, "%s is not an EC P-256 public key", arg_host_key);
        if (r == -ENOMEM || r == -EIO)
                return log_error_errno(r, "Verification failed: %m");
        if (r == -EKEYREJECTED)
                why = "the COSE_Sign1 signature does not verify with the host key";
        else if (r < 0)
                why = "not an agentid COSE_Sign1 (ES256, tag 18, deterministic)";
        else {
                /* Host-key statements carry exactly {1: -7, 4: kid}: no label 15 (formats.md §4). */
                r = cbor_util_decode(prot, prot_size, &header_limits, &header, NULL);
                if (r == -ENOMEM)
                        return log_error_errno(r, "Out of memory");
                if (r < 0 || !cbor_isa_map(header) || cbor_map_size(header) != 2 ||
                    cbor_util_get_bytes(cbor_util_map_get_int(header, COSE_HEADER_KID), &kid, &kid_size) < 0)
                        why = "protected header is not exactly {1: -7, 4: kid}";
        }
        add_check(checks, "signature", !why, why ?: "ES256 by the host key", &failed);
        if (why)
                reason = "signature";
        else {
                set(claims, "host_kid", json_hex(kid, kid_size), &failed);
                r = receipt_payload(payload, payload_size, claims, &why, &failed);
                if (r == -ENOMEM)
                        return log_error_errno(r, "Out of memory");
                add_check(checks, "payload", r >= 0, r >= 0 ? "destroy receipt" : why, &failed);
                valid = r >= 0;
                if (!valid)
                        reason = "payload";
        }

        set(doc, "verdict", json_string(valid ? "valid" : "invalid"), &failed);
        set(doc, "reason", json_string(reason), &failed);
        set(doc, "checks", json_incref(checks), &failed);
        set(doc, "claims", valid ? json_incref(claims) : json_object(), &failed);
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        r = print_json(doc);
        if (r < 0)
                return r;
        return valid ? EXIT_VALID : EXIT_INVALID;
}

int main(int argc, char *argv[]) {
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0) {
                r = r < 0 ? EXIT_USAGE : EXIT_VALID;
                goto finish;
        }
        if (argc - optind != 2) {
                log_error("Expected a command and one file; see --help.");
                r = EXIT_USAGE;
                goto finish;
        }

        const char *verb = argv[optind], *path = argv[optind + 1];
        if (streq(verb, "evidence"))
                r = verify_evidence(false, path);
        else if (streq(verb, "platform"))
                r = verify_evidence(true, path);
        else if (streq(verb, "receipt"))
                r = verify_receipt(path);
        else {
                log_error("Unknown command '%s'; see --help.", verb);
                r = -EINVAL;
        }
        if (r < 0)
                r = EXIT_USAGE;

finish:
        free(arg_trusted_aks);
        free(arg_workloads);
        return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-verify: offline verification of agentid evidence, receipts, task tokens and signed messages,
 * for peers, gateways and registries. No TPM, no D-Bus: everything it needs is in the files it is
 * given and the options.
 *
 *   agentid-verify evidence --nonce=HEX --trusted-ak=FILE [...] EVIDENCE_FILE
 *   agentid-verify platform --nonce=HEX --trusted-ak=FILE [...] EVIDENCE_FILE
 *   agentid-verify receipt --host-key=FILE RECEIPT_FILE
 *   agentid-verify token (--public-key=FILE [--kid=HEX] [--trusted-ak=FILE] | --evidence=FILE --nonce=HEX
 *           --trusted-ak=FILE [...] | --peers=FILE [--trusted-ak=FILE]) --audience=AUD [--now=UNIX] TOKEN_FILE
 *   agentid-verify message (--public-key=FILE [--kid=HEX] | --evidence=FILE ...) [--audience=AUD]
 *           [--max-age=SECONDS] [--now=UNIX] MESSAGE_FILE
 *   agentid-verify revocations [--host-key=FILE] [--min-seq=N] [--json] LIST_FILE
 *   agentid-verify rotation --old-key=FILE --host-key=FILE STATEMENT_FILE
 *   agentid-verify enroll challenge --ek-ca=FILE... --request=FILE --out=CHALLENGE --state=SECRET_FILE
 *   agentid-verify enroll finish --state=SECRET_FILE --response=FILE --out=RECORD
 *
 * The verdict is a JSON document on standard output: {"verdict": "valid"|"invalid", "reason",
 * "checks": [{"name", "ok", "detail"}], "claims": {...}} (claims only for a valid verdict). Exit status:
 * 0 valid, 1 invalid, 2 usage or I/O error. See agentid-verify(1) and docs/verifier.md.
 *
 * Enrollment (docs/formats.md §7, attest/enroll.h) prints the same shape with an "enrollment" object
 * instead of "claims"; "invalid" then means the request or the response was refused.
 *
 * Evidence, tokens and messages take --revocations=FILE (a revocation list, docs/formats.md §10), with
 * --host-key=FILE the key it must be signed by and --min-seq=N the lowest seq accepted: a key on the
 * list makes the verdict invalid with reason "revoked". A list that cannot be used is an input error
 * (exit 2), never silently ignored. "revocations" checks and prints a list (text, or JSON with
 * --json); "rotation" verifies a rotation statement (docs/formats.md §11) and prints a verdict.
 *
 * Tokens and messages with --evidence: the evidence is verified first, and the token or message must
 * then verify with the key it certifies and carry that key's TPM Name as kid. The verdict is valid only
 * if both are; "checks" lists the evidence's checks and then the token's (or message's), and the
 * objects "evidence" and "token" (or "message") give each verdict on its own.
 *
 * Tokens with --peers: the key is the one a peer registry (docs/formats.md §13, `agentidctl peers export`)
 * holds for the token's issuer, which must be a registered peer, as must every hop of its delegation
 * chain (agentid_verify_token_from_peer(); checks token_peer and token_peer_hops).
 *
 * A token issued by a task key carries its task credential (docs/formats.md §12): --public-key/--kid,
 * --evidence or --peers then name the AGENT key, which signed the credential, and the task key the credential names
 * must be certified by a trusted AK, so --trusted-ak= is required (with --evidence it is given anyway).
 */

#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "attest/cose.h"
#include "attest/enroll.h"
#include "attest/revocation.h"
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

/* Inputs are small: evidence is at most 16 KiB, a receipt a few hundred bytes, a token 8 KiB; base64
 * adds a third. A signed message carries up to 1 MiB of payload. */
#define INPUT_MAX (64U * 1024U)
#define MESSAGE_INPUT_MAX (2U * 1024U * 1024U)
#define KEY_FILE_MAX (16U * 1024U)
#define RECEIPT_TEXT_MAX 1024U
/* A revocation list of up to 16 MiB, binary or base64 (a third more, and line breaks). */
#define REVOCATIONS_INPUT_MAX (AGENTID_REVOCATIONS_MAX / 3U * 4U + AGENTID_REVOCATIONS_MAX / 32U + 64U)
/* A peer registry of up to 512 KiB, likewise. */
#define PEERS_INPUT_MAX (AGENTID_PEERS_MAX / 3U * 4U + AGENTID_PEERS_MAX / 32U + 64U)

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
static char **arg_ek_cas;
static size_t arg_n_ek_cas;
static const char *arg_request;
static const char *arg_response;
static const char *arg_out;
static const char *arg_state;
static const char *arg_public_key;
static const char *arg_kid;
static const char *arg_evidence;
static const char *arg_audience;
static const char *arg_revocations;
static unsigned long long arg_min_seq;
static bool arg_min_seq_set;
static const char *arg_old_key;
static bool arg_json;
static const char *arg_peers;

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerifier *, agentid_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

static void help(void) {
        printf("Usage: agentid-verify COMMAND [OPTIONS] FILE\n"
               "\n"
               "Verify agentid attestation evidence, receipts, task tokens and signed messages offline.\n"
               "\n"
               "Commands:\n"
               "  evidence FILE          Agent evidence (org.agentid1.Key.Attest)\n"
               "  platform FILE          Platform evidence (Manager.GetPlatformEvidence); prints the\n"
               "                         certified host key\n"
               "  receipt FILE           Destroy receipt (Key.Destroy), signed by the host key\n"
               "  token FILE             Task token (Key.IssueToken), for an audience\n"
               "  message FILE           Signed message (Key.SignMessage)\n"
               "  revocations FILE       Revocation list (Manager.GetRevocations, 'agentidctl\n"
               "                         revocations export'): check it and print its entries\n"
               "  rotation FILE          Rotation statement (Key.Rotate), signed by the old key and\n"
               "                         the host key\n"
               "  enroll challenge       Check an enrollment request (EK certificate chain, EK and AK\n"
               "                         public areas) and write a credential-activation challenge\n"
               "  enroll finish          Check the host's response and write the AK record\n"
               "\n"
               "Options for evidence and platform:\n"
               "  --nonce=HEX            The nonce sent with the request (16..64 bytes; required)\n"
               "  --trusted-ak=FILE      The attestation key: an AK record from 'enroll finish', or its\n"
               "                         TPMT_PUBLIC as GetAttestationKey returns it (a TPM2B_PUBLIC is\n"
               "                         accepted too); repeat to trust several\n"
               "  --now=UNIX             Verify as of this time instead of the system clock\n"
               "  --max-age=SECONDS      How old the evidence's iat may be (default %u)\n"
               "  --pcrs=FILE            Reference PCR values, lines INDEX:HEX (SHA-256, PCRs 0-7)\n"
               "  --workload=HEX         Allowed executable SHA-256; repeat for several\n"
               "  --require-safe         Refuse evidence whose TPM clock is not 'safe'\n"
               "\n"
               "Revocation (evidence, platform, token, message):\n"
               "  --revocations=FILE     A revocation list: a key on it makes the verdict invalid\n"
               "                         (reason 'revoked'); a list that cannot be used is an error\n"
               "  --host-key=FILE        The host key the list must be signed by (DER or PEM); without\n"
               "                         it the signature is not checked (the list can then only add\n"
               "                         refusals)\n"
               "  --min-seq=N            Refuse a list whose seq is lower (rollback)\n"
               "\n"
               "Options for receipt:\n"
               "  --host-key=FILE        The host public key, DER SubjectPublicKeyInfo or PEM\n"
               "\n"
               "Options for revocations:\n"
               "  --host-key=FILE        The host key the list must be signed by (recommended)\n"
               "  --min-seq=N            Refuse a list whose seq is lower\n"
               "  --json                 Print JSON instead of text\n"
               "\n"
               "Options for rotation:\n"
               "  --old-key=FILE         The key that was rotated out (DER or PEM; required)\n"
               "  --host-key=FILE        The host key (DER or PEM; required)\n"
               "\n"
               "Options for token and message (the key: --public-key, --evidence or --peers):\n"
               "  --public-key=FILE      The agent key, DER SubjectPublicKeyInfo or PEM (pinned)\n"
               "  --kid=HEX              With --public-key: the TPM Name (34 bytes) the kid must be\n"
               "  --evidence=FILE        Agent evidence certifying the key: verified first with\n"
               "                         --nonce, --trusted-ak and the evidence options above; the\n"
               "                         kid must then be the certified key's TPM Name\n"
               "  --peers=FILE           Token only: a peer registry ('agentidctl peers export'); the\n"
               "                         issuer must be a registered peer, the key and kid are its\n"
               "                         registered ones, and every hop must be a registered peer\n"
               "  --trusted-ak=FILE      Token issued by a task key (it carries a task credential):\n"
               "                         the AK that certified the task key (required; the key above\n"
               "                         is then the agent key that signed the credential)\n"
               "  --audience=AUD         Token: its aud must be exactly AUD (required). Message:\n"
               "                         if given, its aud must be present and exactly AUD\n"
               "  --now=UNIX             Verify as of this time instead of the system clock\n"
               "  --max-age=SECONDS      How old a message's iat may be (default %u); with\n"
               "                         --evidence also the evidence's\n"
               "\n"
               "Options for enroll:\n"
               "  --ek-ca=FILE           EK certificate CA (PEM or DER): self-signed ones are trusted\n"
               "                         roots, others intermediates; repeat for several (challenge)\n"
               "  --request=FILE         The host's enrollment request (challenge)\n"
               "  --response=FILE        The host's ActivateCredential response (finish)\n"
               "  --state=SECRET_FILE    The verifier's secret state: created (mode 0600, never\n"
               "                         overwritten) by challenge, consumed by finish\n"
               "  --out=FILE             The challenge (challenge) or the AK record (finish)\n"
               "  --now=UNIX             Time recorded in the state and the record\n"
               "\n"
               "  -h, --help             Show this help\n"
               "      --version          Show the version\n"
               "\n"
               "FILE may be '-' for standard input, and binary CBOR or base64. The verdict is printed\n"
               "as JSON (revocations: text unless --json). Exit status: 0 valid, 1 invalid, 2 usage or\n"
               "I/O error (also a --revocations list that cannot be used). See agentid-verify(1).\n",
               AGENTID_DEFAULT_MAX_AGE, AGENTID_DEFAULT_MAX_AGE);
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
                ARG_HOST_KEY, ARG_VERSION, ARG_EK_CA, ARG_REQUEST, ARG_RESPONSE, ARG_OUT, ARG_STATE,
                ARG_PUBLIC_KEY, ARG_KID, ARG_EVIDENCE, ARG_AUDIENCE, ARG_REVOCATIONS, ARG_MIN_SEQ, ARG_OLD_KEY,
                ARG_JSON, ARG_PEERS,
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
                { "ek-ca", required_argument, NULL, ARG_EK_CA },
                { "request", required_argument, NULL, ARG_REQUEST },
                { "response", required_argument, NULL, ARG_RESPONSE },
                { "out", required_argument, NULL, ARG_OUT },
                { "state", required_argument, NULL, ARG_STATE },
                { "public-key", required_argument, NULL, ARG_PUBLIC_KEY },
                { "kid", required_argument, NULL, ARG_KID },
                { "evidence", required_argument, NULL, ARG_EVIDENCE },
                { "audience", required_argument, NULL, ARG_AUDIENCE },
                { "revocations", required_argument, NULL, ARG_REVOCATIONS },
                { "min-seq", required_argument, NULL, ARG_MIN_SEQ },
                { "old-key", required_argument, NULL, ARG_OLD_KEY },
                { "json", no_argument, NULL, ARG_JSON },
                { "peers", required_argument, NULL, ARG_PEERS },
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
                case ARG_EK_CA:
                        r = push_arg(&arg_ek_cas, &arg_n_ek_cas, optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_REQUEST:
                        arg_request = optarg;
                        break;
                case ARG_RESPONSE:
                        arg_response = optarg;
                        break;
                case ARG_OUT:
                        arg_out = optarg;
                        break;
                case ARG_STATE:
                        arg_state = optarg;
                        break;
                case ARG_PUBLIC_KEY:
                        arg_public_key = optarg;
                        break;
                case ARG_KID:
                        arg_kid = optarg;
                        break;
                case ARG_EVIDENCE:
                        arg_evidence = optarg;
                        break;
                case ARG_AUDIENCE:
                        if (!*optarg)
                                return log_error_errno(EINVAL, "--audience= must not be empty");
                        arg_audience = optarg;
                        break;
                case ARG_REVOCATIONS:
                        arg_revocations = optarg;
                        break;
                case ARG_MIN_SEQ:
                        r = parse_uint(optarg, "--min-seq", &arg_min_seq);
                        if (r < 0)
                                return r;
                        arg_min_seq_set = true;
                        break;
                case ARG_OLD_KEY:
                        arg_old_key = optarg;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_PEERS:
                        arg_peers = optarg;
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

/* Binary CBOR as is; base64 text (what agentidctl prints without --output) decoded. CBOR maps and
 * tag 18 start with bytes that are not base64 characters, so the two cannot be confused. */
static int decode_input(const char *path, uint8_t **buf, size_t *size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t len = 0;

        if (*size == 0 || !base64_is_char((*buf)[0]))
                return 0;
        int r = base64_decode(*buf, *size, &out, &len);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r < 0)
                return log_error_errno(EINVAL, "%s is neither CBOR nor base64", path);
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
        _cleanup_free_ uint8_t *buf = NULL, *pub = NULL;
        size_t size = 0, pub_size = 0;
        int r;

        r = read_input(path, KEY_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        r = enroll_ak_public(buf, size, &pub, &pub_size);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r < 0)
                return log_error_errno(EBADMSG, "%s is not an AK record", path);
        r = agentid_verifier_add_trusted_ak(v, pub, pub_size);
        if (r == -EEXIST)
                return 0;
        if (r == -EBADMSG || r == -EINVAL)
                return log_error_errno(EBADMSG, "%s is not an attestation key (AK record or TPMT_PUBLIC)", path);
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

/* Append a verdict's checks, {"name", "ok", "detail"} each, in order. */
static void append_checks(json_t *checks, const AgentidVerdict *d, bool *failed) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                const char *name, *detail;
                bool ok;
                json_t *c = json_object();

                if (!c || agentid_verdict_get_check(d, i, NULL, &name, &ok, &detail) < 0) {
                        json_decref(c);
                        *failed = true;
                        continue;
                }
                set(c, "name", json_string(name), failed);
                set(c, "ok", json_boolean(ok), failed);
                set(c, "detail", json_string(detail), failed);
                if (json_array_append_new(checks, c) < 0)
                        *failed = true;
        }
}

/* {"verdict", "reason", "checks", "claims"} for an evidence verdict. */
static int print_verdict(const AgentidVerdict *d) {
        _cleanup_(json_decrefp) json_t *doc = json_object();
        json_t *checks = json_array();
        bool failed = !doc || !checks, valid = agentid_verdict_is_valid(d);

        if (checks)
                append_checks(checks, d, &failed);
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

static int load_revocations(AgentidVerifier *v);

/* Configure a verifier from the evidence options and verify the evidence in path. */
static int evidence_verify(bool platform, const char *path, AgentidVerifier **ret_v, AgentidVerdict **ret_d) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *nonce = NULL, *evidence = NULL;
        size_t nonce_size = 0, size = 0;
        int r;

        if (!arg_nonce)
                return log_error_errno(EINVAL, "--nonce= is required");
        if (arg_n_trusted_aks == 0)
                return log_error_errno(EINVAL, "--trusted-ak= is required");
        if (arg_host_key && !arg_revocations)
                return log_error_errno(EINVAL, "--host-key= is for receipts, and for the key a --revocations= list "
                                       "is signed by");
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
        r = load_revocations(v);
        if (r < 0)
                return r;

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

        *ret_v = TAKE_PTR(v);
        *ret_d = TAKE_PTR(d);
        return 0;
}

static int verify_evidence(bool platform, const char *path) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        int r;

        if (arg_public_key || arg_kid || arg_evidence || arg_audience)
                return log_error_errno(EINVAL, "--public-key=, --kid=, --evidence= and --audience= are for tokens "
                                       "and messages");
        r = evidence_verify(platform, path, &v, &d);
        if (r < 0)
                return r;
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
        r = pkey_from_pem_or_der(buf, size, &pkey);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r < 0)
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
        if (arg_public_key || arg_kid || arg_evidence || arg_audience)
                return log_error_errno(EINVAL, "--public-key=, --kid=, --evidence= and --audience= are for tokens "
                                       "and messages");
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

/* ---- tokens and signed messages --------------------------------------------------------------- */

static json_t *token_json(const AgentidToken *t, bool *failed) {
        json_t *o = json_object(), *hops = json_array();

        if (!o || !hops) {
                json_decref(o);
                json_decref(hops);
                *failed = true;
                return NULL;
        }
        set(o, "iss", json_string(t->iss), failed);
        set(o, "sub", json_string(t->iss), failed);
        set(o, "aud", json_string(t->aud), failed);
        set(o, "exp", json_uint(t->exp), failed);
        set(o, "nbf", json_uint(t->nbf), failed);
        set(o, "iat", json_uint(t->iat), failed);
        set(o, "cti", json_hex(t->cti, sizeof(t->cti)), failed);
        if (t->scope)
                set(o, "scope", json_string(t->scope), failed);
        set(o, "task_id", json_string(t->task_id), failed);
        if (t->parent_task_id)
                set(o, "parent_task_id", json_string(t->parent_task_id), failed);
        set(o, "owner", json_string(t->owner), failed);
        set(o, "kid", json_hex(t->kid, sizeof(t->kid)), failed);
        set(o, "spki_sha256", json_hex(t->spki_sha256, sizeof(t->spki_sha256)), failed);
        for (size_t i = 0; i < t->n_hops; i++) {
                json_t *h = json_object();
                if (!h) {
                        *failed = true;
                        continue;
                }
                set(h, "iss", json_string(t->hops[i].iss), failed);
                set(h, "cti", json_hex(t->hops[i].cti, sizeof(t->hops[i].cti)), failed);
                set(h, "kid", json_hex(t->hops[i].kid, sizeof(t->hops[i].kid)), failed);
                if (json_array_append_new(hops, h) < 0)
                        *failed = true;
        }
        set(o, "hops", hops, failed);
        if (t->has_credential) {
                json_t *auds = json_array();

                /* A task token: kid and spki_sha256 above are the task key's; what the credential says. */
                set(o, "credential", json_hex(t->credential, t->credential_size), failed);
                set(o, "credential_kid", json_hex(t->credential_kid, sizeof(t->credential_kid)), failed);
                set(o, "agent_spki_sha256", json_hex(t->agent_spki_sha256, sizeof(t->agent_spki_sha256)), failed);
                set(o, "credential_cti", json_hex(t->credential_cti, sizeof(t->credential_cti)), failed);
                set(o, "credential_iat", json_uint(t->credential_iat), failed);
                set(o, "credential_exp", json_uint(t->credential_exp), failed);
                if (t->credential_scope)
                        set(o, "credential_scope", json_string(t->credential_scope), failed);
                for (size_t i = 0; auds && i < t->n_credential_audiences; i++)
                        if (json_array_append_new(auds, json_string(t->credential_audiences[i])) < 0)
                                *failed = true;
                set(o, "credential_audiences", auds, failed);
                set(o, "task_public_key", json_hex(t->task_public_key, t->task_public_key_size), failed);
        }
        return o;
}

/* Whether a token verdict followed a task credential (its checks include credential_format). */
static bool verdict_has_credential(const AgentidVerdict *d) {
        for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                AgentidReason r;
                if (agentid_verdict_get_check(d, i, &r, NULL, NULL, NULL) == 0 && r == AGENTID_REASON_CREDENTIAL_FORMAT)
                        return true;
        }
        return false;
}

static json_t *message_json(const AgentidMessage *m, bool *failed) {
        json_t *o = json_object();

        if (!o) {
                *failed = true;
                return NULL;
        }
        set(o, "iat", json_uint(m->iat), failed);
        if (m->aud)
                set(o, "aud", json_string(m->aud), failed);
        if (m->task_id)
                set(o, "task_id", json_string(m->task_id), failed);
        if (m->parent_task_id)
                set(o, "parent_task_id", json_string(m->parent_task_id), failed);
        set(o, "kid", json_hex(m->kid, sizeof(m->kid)), failed);
        set(o, "spki_sha256", json_hex(m->spki_sha256, sizeof(m->spki_sha256)), failed);
        set(o, "payload", json_hex(m->payload, m->payload_size), failed);
        set(o, "payload_size", json_uint(m->payload_size), failed);
        return o;
}

/* {"verdict", "reason", "checks", "claims"} for a token or message verdict d; with evidence ev, its
 * checks come first, and "evidence" and "token"/"message" give each verdict. d is NULL when invalid
 * evidence left no key to verify with: its checks are then listed as not checked. */
static int print_signed(bool message, const AgentidVerdict *ev, const AgentidVerdict *d) {
        _cleanup_(json_decrefp) json_t *doc = json_object(), *checks = json_array();
        const char *what = message ? "message" : "token";
        bool failed = !doc || !checks;
        bool valid = (!ev || agentid_verdict_is_valid(ev)) && d && agentid_verdict_is_valid(d);
        AgentidReason reason;
        json_t *claims;

        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        if (ev)
                append_checks(checks, ev, &failed);
        if (d)
                append_checks(checks, d, &failed);
        else {
                /* The reason codes of each kind are consecutive, in the order the checks run. */
                AgentidReason first = message ? AGENTID_REASON_MESSAGE_FORMAT : AGENTID_REASON_TOKEN_FORMAT,
                              last = message ? AGENTID_REASON_MESSAGE_FRESHNESS : AGENTID_REASON_TOKEN_HOPS;
                for (AgentidReason r = first; r <= last; r++)
                        add_check(checks, agentid_reason_to_string(r), false, "not checked: evidence invalid", &failed);
        }

        reason = ev && !agentid_verdict_is_valid(ev) ? agentid_verdict_reason(ev) : agentid_verdict_reason(d);
        if (!valid)
                claims = json_object();         /* nothing in an invalid verdict is vouched for */
        else if (message)
                claims = message_json(agentid_verdict_get_message(d), &failed);
        else
                claims = token_json(agentid_verdict_get_token(d), &failed);

        set(doc, "verdict", json_string(valid ? "valid" : "invalid"), &failed);
        set(doc, "reason", json_string(agentid_reason_to_string(reason)), &failed);
        set(doc, "checks", json_incref(checks), &failed);
        set(doc, "claims", claims, &failed);
        if (ev) {
                json_t *e = json_object(), *own = json_object();
                const AgentidClaims *c = agentid_verdict_get_claims(ev);

                if (e && own) {
                        set(e, "verdict", json_string(agentid_verdict_is_valid(ev) ? "valid" : "invalid"), &failed);
                        set(e, "reason", json_string(agentid_reason_to_string(agentid_verdict_reason(ev))), &failed);
                        set(e, "claims", c ? claims_json(c, &failed) : json_object(), &failed);
                        const char *verdict = !d ? "not_checked" : agentid_verdict_is_valid(d) ? "valid" : "invalid";
                        set(own, "verdict", json_string(verdict), &failed);
                        set(own, "reason", json_string(d ? agentid_reason_to_string(agentid_verdict_reason(d)) :
                                                           "evidence"), &failed);
                }
                set(doc, "evidence", e, &failed);
                set(doc, what, own, &failed);
        }
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        return print_json(doc);
}

/* The pinned key of --public-key (DER or PEM) as DER SubjectPublicKeyInfo. */
static int load_public_key_der(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        r = load_host_key(path, &pkey);
        if (r < 0)
                return r;
        r = pkey_to_spki_der(pkey, ret, ret_size);
        if (r < 0)
                return log_error_errno(r, "Cannot encode the key of %s: %m", path);
        return 0;
}

/* A verifier for --peers=FILE: the registry (binary CBOR or base64; refused as a whole if it is not exactly
 * the format), --trusted-ak= for tokens issued by task keys, --now, --revocations. */
static int peers_verifier(AgentidVerifier **ret) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_free_ uint8_t *registry = NULL;
        const char *why = NULL;
        size_t size = 0;
        int r;

        if (arg_kid)
                return log_error_errno(EINVAL, "--kid= is for --public-key=: with --peers= the kid is the registered one");
        if (arg_nonce || arg_pcrs || arg_n_workloads || arg_require_safe)
                return log_error_errno(EINVAL, "Evidence options need --evidence=");
        if (arg_max_age != AGENTID_DEFAULT_MAX_AGE)
                return log_error_errno(EINVAL, "--max-age= applies to a token only with --evidence=");

        r = read_input(arg_peers, PEERS_INPUT_MAX, &registry, &size);
        if (r < 0)
                return r;
        r = decode_input(arg_peers, &registry, &size);
        if (r < 0)
                return r;

        v = agentid_verifier_new();
        if (!v)
                return log_error_errno(ENOMEM, "Out of memory");
        r = agentid_verifier_add_peers(v, registry, size, &why);
        if (r == -EBADMSG || r == -E2BIG)
                return log_error_errno(EBADMSG, "%s is not a peer registry: %s", arg_peers, why ?: "malformed");
        if (r == -EFBIG)
                return log_error_errno(r, "%s is larger than %u bytes", arg_peers, AGENTID_PEERS_MAX);
        if (r < 0)
                return log_error_errno(r, "Cannot use %s: %m", arg_peers);
        for (size_t i = 0; i < arg_n_trusted_aks; i++) {
                r = load_trusted_ak(v, arg_trusted_aks[i]);
                if (r < 0)
                        return r;
        }
        if (agentid_verifier_set_now(v, arg_now) < 0)
                return log_error_errno(EINVAL, "Cannot configure the verifier");
        r = load_revocations(v);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(v);
        return 0;
}

static int verify_signed(bool message, const char *path) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *ev = NULL, *d = NULL;
        _cleanup_free_ uint8_t *key = NULL, *kid = NULL, *input = NULL;
        const uint8_t *spki = NULL, *expected_kid = NULL;
        size_t key_size = 0, kid_size = 0, spki_size = 0, size = 0;
        const char *what = message ? "message" : "token";
        int r;

        if (!message && !arg_audience)
                return log_error_errno(EINVAL, "--audience= is required: a token is only valid for its audience");
        if (message && arg_peers)
                return log_error_errno(EINVAL, "--peers= is for tokens");
        if (!!arg_public_key + !!arg_evidence + !!arg_peers != 1)
                return log_error_errno(EINVAL, message ? "Exactly one of --public-key= and --evidence= is required" :
                                       "Exactly one of --public-key=, --evidence= and --peers= is required");
        if (arg_host_key && !arg_revocations)
                return log_error_errno(EINVAL, "--host-key= is for receipts, and for the key a --revocations= list "
                                       "is signed by");

        if (arg_public_key) {
                /* --trusted-ak is also a token option: the AK that certified a task key. */
                if (arg_nonce || (message && arg_n_trusted_aks) || arg_pcrs || arg_n_workloads || arg_require_safe)
                        return log_error_errno(EINVAL, "Evidence options need --evidence=");
                /* A token has no iat rule: max-age would silently do nothing. */
                if (!message && arg_max_age != AGENTID_DEFAULT_MAX_AGE)
                        return log_error_errno(EINVAL, "--max-age= applies to a token only with --evidence=");
                r = load_public_key_der(arg_public_key, &key, &key_size);
                if (r < 0)
                        return r;
                spki = key;
                spki_size = key_size;
                if (arg_kid) {
                        r = parse_hex_exact(arg_kid, AGENTID_TPM_NAME_SIZE, AGENTID_TPM_NAME_SIZE, "--kid", &kid,
                                            &kid_size);
                        if (r < 0)
                                return r;
                        expected_kid = kid;
                }
                v = agentid_verifier_new();
                if (!v)
                        return log_error_errno(ENOMEM, "Out of memory");
                for (size_t i = 0; i < arg_n_trusted_aks; i++) {
                        r = load_trusted_ak(v, arg_trusted_aks[i]);
                        if (r < 0)
                                return r;
                }
                if (agentid_verifier_set_now(v, arg_now) < 0 || agentid_verifier_set_max_age(v, arg_max_age) < 0)
                        return log_error_errno(EINVAL, "Cannot configure the verifier");
                r = load_revocations(v);
                if (r < 0)
                        return r;
        } else if (arg_peers) {
                r = peers_verifier(&v);
                if (r < 0)
                        return r;
        } else {
                if (arg_kid)
                        return log_error_errno(EINVAL, "--kid= is for --public-key=: with --evidence= the kid must be "
                                               "the certified key's Name");
                /* The evidence path exactly as "agentid-verify evidence" runs it. */
                r = evidence_verify(false, arg_evidence, &v, &ev);
                if (r < 0)
                        return r;
                const AgentidClaims *c = agentid_verdict_get_claims(ev);
                if (c) {
                        spki = c->public_key;
                        spki_size = c->public_key_size;
                        expected_kid = c->kid;
                }
        }

        r = read_input(path, message ? MESSAGE_INPUT_MAX : INPUT_MAX, &input, &size);
        if (r < 0)
                return r;
        r = decode_input(path, &input, &size);
        if (r < 0)
                return r;

        if (spki || arg_peers) {
                if (arg_peers)
                        r = agentid_verify_token_from_peer(v, input, size, arg_audience, &d);
                else if (message)
                        r = agentid_verify_message(v, input, size, spki, spki_size, expected_kid, arg_audience, &d);
                else
                        r = agentid_verify_token(v, input, size, spki, spki_size, expected_kid, arg_audience, &d);
                if (r == -EINVAL && arg_public_key)
                        return log_error_errno(r, "%s is not an EC P-256 public key", arg_public_key);
                if (r < 0)
                        return log_error_errno(r, "Cannot verify the %s: %m", what);
                /* Without an AK, credential_task_key cannot pass: say what is missing rather than print
                 * a verdict that only reflects the missing option. */
                if (!message && arg_n_trusted_aks == 0 && verdict_has_credential(d))
                        return log_error_errno(EINVAL, "--trusted-ak= is required: the token was issued by a task "
                                               "key, whose certification by the AK is part of the check");
        }

        r = print_signed(message, ev, d);
        if (r < 0)
                return r;
        return (!ev || agentid_verdict_is_valid(ev)) && agentid_verdict_is_valid(d) ? EXIT_VALID : EXIT_INVALID;
}

/* ---- revocation lists and rotation statements ------------------------------------------------- */

static int read_revocations(const char *path, uint8_t **ret, size_t *ret_size) {
        int r = read_input(path, REVOCATIONS_INPUT_MAX, ret, ret_size);
        if (r < 0)
                return r;
        return decode_input(path, ret, ret_size);
}

/* --revocations=FILE into v, signed by --host-key= if given, not older than --min-seq=. A list that
 * cannot be used is an input error: verifying without it would accept what it revokes. */
static int load_revocations(AgentidVerifier *v) {
        _cleanup_free_ uint8_t *list = NULL, *host = NULL;
        size_t size = 0, host_size = 0;
        const char *why = NULL;
        int r;

        if (!arg_revocations)
                return 0;
        r = read_revocations(arg_revocations, &list, &size);
        if (r < 0)
                return r;
        if (arg_host_key) {
                r = load_public_key_der(arg_host_key, &host, &host_size);
                if (r < 0)
                        return r;
        }

        r = agentid_verifier_add_revocations(v, list, size, host, host_size, arg_min_seq, &why);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r == -EINVAL && host)
                return log_error_errno(r, "%s is not an EC P-256 public key", arg_host_key);
        if (r < 0)
                return log_error_errno(r, "Cannot use the revocation list %s: %s", arg_revocations,
                                       why ?: "invalid");
        if (!host)
                log_warning("The signature of the revocation list %s is not checked (no --host-key=): it can only "
                            "add refusals.", arg_revocations);
        return 0;
}

static json_t *json_time(uint64_t t) {
        return json_uint(t);
}

static void format_time(uint64_t t, char *buf, size_t n) {
        time_t tt = (time_t) t;
        struct tm tm;

        if ((uint64_t) tt != t || !gmtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, n, "?");
}

static json_t *revocation_list_json(const RevocationList *l, const uint8_t *host_kid, size_t host_kid_size,
                                    bool *failed) {
        json_t *o = json_object(), *entries = json_array();

        if (!o || !entries) {
                json_decref(o);
                json_decref(entries);
                *failed = true;
                return NULL;
        }
        set(o, "host", json_string(l->host), failed);
        set(o, "seq", json_uint(l->seq), failed);
        set(o, "issued", json_time(l->issued), failed);
        set(o, "host_kid", json_hex(host_kid, host_kid_size), failed);
        for (size_t i = 0; i < l->n_entries; i++) {
                const RevocationEntry *e = &l->entries[i];
                json_t *j = json_object();

                if (!j) {
                        *failed = true;
                        continue;
                }
                set(j, "type", json_string(revocation_type_to_string(e->type)), failed);
                set(j, "name", json_string(e->name), failed);
                set(j, "kid", json_hex(e->kid, sizeof(e->kid)), failed);
                set(j, "spki_sha256", json_hex(e->spki_sha256, sizeof(e->spki_sha256)), failed);
                set(j, "time", json_time(e->time), failed);
                set(j, "reason", json_string(e->reason), failed);
                if (e->has_cti)
                        set(j, "cti", json_hex(e->cti, sizeof(e->cti)), failed);
                if (json_array_append_new(entries, j) < 0)
                        *failed = true;
        }
        set(o, "n_entries", json_uint(l->n_entries), failed);
        set(o, "entries", entries, failed);
        return o;
}

static void print_revocation_list(const RevocationList *l, const uint8_t *host_kid, size_t host_kid_size,
                                  bool signature_checked) {
        _cleanup_free_ char *kid = hex_encode(host_kid, host_kid_size);
        char when[32];

        format_time(l->issued, when, sizeof(when));
        printf("Revocation list: valid, %s\n", signature_checked ? "signed by the host key" :
                                                                    "signature NOT checked (no --host-key)");
        printf("  host:     %s\n", l->host);
        printf("  seq:      %llu\n", (unsigned long long) l->seq);
        printf("  issued:   %llu (%s)\n", (unsigned long long) l->issued, when);
        printf("  host kid: %s\n", kid ?: "?");
        printf("  entries:  %zu\n", l->n_entries);
        for (size_t i = 0; i < l->n_entries; i++) {
                const RevocationEntry *e = &l->entries[i];
                char h[2 * REVOCATION_KID_SIZE + 1];

                format_time(e->time, when, sizeof(when));
                /* Names and reasons hold no control characters (revocation.c refuses them). */
                printf("  %-8s %s at %llu (%s), reason \"%s\"\n", revocation_type_to_string(e->type), e->name,
                       (unsigned long long) e->time, when, e->reason);
                hex_encode_to(e->kid, sizeof(e->kid), h);
                printf("           kid %s\n", h);
                hex_encode_to(e->spki_sha256, sizeof(e->spki_sha256), h);
                printf("           spki_sha256 %s\n", h);
                if (e->has_cti) {
                        hex_encode_to(e->cti, sizeof(e->cti), h);
                        printf("           cti %s\n", h);
                }
        }
}

/* The reason a list was refused, for the JSON: which part of it failed. */
static const char *revocations_refusal(int r) {
        switch (r) {
        case -EKEYREJECTED:
                return "signature";
        case -ESTALE:
                return "seq";
        case -EFBIG:
                return "size";
        default:
                return "format";
        }
}

static int verify_revocations(const char *path) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_(revocation_list_done) RevocationList l = {};
        _cleanup_free_ uint8_t *list = NULL, *host = NULL;
        size_t size = 0, host_size = 0;
        const char *why = NULL;
        bool failed = false;
        int r;

        if (arg_nonce || arg_n_trusted_aks || arg_pcrs || arg_n_workloads || arg_require_safe || arg_now ||
            arg_max_age != AGENTID_DEFAULT_MAX_AGE || arg_public_key || arg_kid || arg_evidence || arg_audience)
                return log_error_errno(EINVAL, "Only --host-key=, --min-seq= and --json apply to revocations");

        r = read_revocations(path, &list, &size);
        if (r < 0)
                return r;
        if (arg_host_key) {
                r = load_public_key_der(arg_host_key, &host, &host_size);
                if (r < 0)
                        return r;
        }
        v = agentid_verifier_new();
        if (!v)
                return log_error_errno(ENOMEM, "Out of memory");

        r = agentid_verifier_add_revocations(v, list, size, host, host_size, arg_min_seq, &why);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r == -EINVAL && host)
                return log_error_errno(r, "%s is not an EC P-256 public key", arg_host_key);
        if (r < 0) {
                if (arg_json) {
                        _cleanup_(json_decrefp) json_t *doc = json_object();
                        if (!doc)
                                return log_error_errno(ENOMEM, "Out of memory");
                        set(doc, "verdict", json_string("invalid"), &failed);
                        set(doc, "reason", json_string(revocations_refusal(r)), &failed);
                        set(doc, "error", json_string(why ?: "invalid"), &failed);
                        set(doc, "list", json_object(), &failed);
                        if (failed)
                                return log_error_errno(ENOMEM, "Out of memory");
                        r = print_json(doc);
                        return r < 0 ? r : EXIT_INVALID;
                }
                printf("Revocation list: invalid (%s): %s\n", revocations_refusal(r), why ?: "invalid");
                return EXIT_INVALID;
        }

        /* Accepted: read it again for printing (the same parsers, which cannot fail now). */
        r = cose_sign1_parse_max(list, size, REVOCATION_LIST_MAX, &p, NULL);
        if (r >= 0)
                r = revocation_list_decode(p.payload, p.payload_size, &l, NULL);
        if (r < 0)
                return log_error_errno(r, "Cannot read back the revocation list: %m");

        if (!arg_json) {
                print_revocation_list(&l, p.kid, p.kid_size, host);
                if (fflush(stdout) != 0)
                        return log_error_errno(EIO, "Cannot write the list");
                return EXIT_VALID;
        }

        _cleanup_(json_decrefp) json_t *doc = json_object();
        if (!doc)
                return log_error_errno(ENOMEM, "Out of memory");
        set(doc, "verdict", json_string("valid"), &failed);
        set(doc, "reason", json_string("valid"), &failed);
        set(doc, "signature_checked", json_boolean(host), &failed);
        set(doc, "list", revocation_list_json(&l, p.kid, p.kid_size, &failed), &failed);
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        r = print_json(doc);
        return r < 0 ? r : EXIT_VALID;
}

static json_t *rotation_json(const AgentidRotation *k, bool *failed) {
        json_t *o = json_object();

        if (!o) {
                *failed = true;
                return NULL;
        }
        set(o, "type", json_string("rotate"), failed);
        set(o, "name", json_string(k->name), failed);
        set(o, "uri", json_string(k->uri), failed);
        set(o, "old_kid", json_hex(k->old_kid, sizeof(k->old_kid)), failed);
        set(o, "new_kid", json_hex(k->new_kid, sizeof(k->new_kid)), failed);
        set(o, "new_spki_sha256", json_hex(k->new_spki_sha256, sizeof(k->new_spki_sha256)), failed);
        set(o, "reason", json_string(k->reason), failed);
        set(o, "time", json_time(k->time), failed);
        return o;
}

static int verify_rotation(const char *path) {
        _cleanup_(agentid_verifier_freep) AgentidVerifier *v = NULL;
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_free_ uint8_t *old_key = NULL, *host_key = NULL, *statement = NULL;
        size_t old_size = 0, host_size = 0, size = 0;
        int r;

        if (!arg_old_key || !arg_host_key)
                return log_error_errno(EINVAL, "rotation needs --old-key= and --host-key=");
        if (arg_nonce || arg_n_trusted_aks || arg_pcrs || arg_n_workloads || arg_require_safe || arg_now ||
            arg_max_age != AGENTID_DEFAULT_MAX_AGE || arg_public_key || arg_kid || arg_evidence || arg_audience)
                return log_error_errno(EINVAL, "Only --old-key= and --host-key= apply to rotation");

        r = load_public_key_der(arg_old_key, &old_key, &old_size);
        if (r < 0)
                return r;
        r = load_public_key_der(arg_host_key, &host_key, &host_size);
        if (r < 0)
                return r;
        r = read_input(path, INPUT_MAX, &statement, &size);
        if (r < 0)
                return r;
        r = decode_input(path, &statement, &size);
        if (r < 0)
                return r;

        v = agentid_verifier_new();
        if (!v)
                return log_error_errno(ENOMEM, "Out of memory");
        r = agentid_verify_rotation(v, statement, size, old_key, old_size, host_key, host_size, &d);
        if (r == -EINVAL)
                return log_error_errno(r, "%s and %s must be EC P-256 public keys", arg_old_key, arg_host_key);
        if (r < 0)
                return log_error_errno(r, "Verification failed: %m");

        _cleanup_(json_decrefp) json_t *doc = json_object(), *checks = json_array();
        bool failed = !doc || !checks;
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        append_checks(checks, d, &failed);
        const AgentidRotation *k = agentid_verdict_get_rotation(d);
        set(doc, "verdict", json_string(agentid_verdict_is_valid(d) ? "valid" : "invalid"), &failed);
        set(doc, "reason", json_string(agentid_reason_to_string(agentid_verdict_reason(d))), &failed);
        set(doc, "checks", json_incref(checks), &failed);
        /* Nothing in an invalid statement is vouched for. */
        set(doc, "claims", k ? rotation_json(k, &failed) : json_object(), &failed);
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        r = print_json(doc);
        if (r < 0)
                return r;
        return agentid_verdict_is_valid(d) ? EXIT_VALID : EXIT_INVALID;
}

/* ---- enrollment ------------------------------------------------------------------------------- */

/* The checks of each enrollment step, in the order they run (attest/enroll.h), and what a pass means. */
static const char *const challenge_checks[] = { "format", "ek_certificate", "ek_public", "ak_attributes" };
static const char *const finish_checks[] = { "state", "format", "secret" };

static const char *enroll_check_passed(const char *name) {
        static const struct {
                const char *name, *detail;
        } table[] = {
                { "format", "deterministic CBOR, v1, every key and size as specified" },
                { "ek_certificate", "EK certificate chains to a given CA" },
                { "ek_public", "EK public area rebuilt from the certificate and the standard template; the host's copy equals it" },
                { "ak_attributes", "restricted ECDSA-SHA256 P-256 signing key (fixedTPM, fixedParent, sensitiveDataOrigin)" },
                { "state", "enroll-state v1" },
                { "secret", "the TPM released the credential: the AK is resident in the EK's TPM" },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].name, name))
                        return table[i].detail;
        return "passed";
}

/* {"verdict", "reason", "checks", "enrollment"}: every check before the failed one passed, the ones
 * after it were not reached. */
static int print_enroll(const char *const *names, size_t n, const EnrollError *err, json_t *enrollment) {
        _cleanup_(json_decrefp) json_t *doc = json_object(), *checks = json_array();
        bool failed = !doc || !checks, reached = true;

        for (size_t i = 0; i < n; i++) {
                bool is_failed = err && err->check && streq(err->check, names[i]);
                if (!reached)
                        add_check(checks, names[i], false, "not checked: an earlier check failed", &failed);
                else if (is_failed) {
                        add_check(checks, names[i], false, err->detail, &failed);
                        reached = false;
                } else
                        add_check(checks, names[i], true, enroll_check_passed(names[i]), &failed);
        }
        set(doc, "verdict", json_string(err ? "invalid" : "valid"), &failed);
        set(doc, "reason", json_string(err ? err->check : "valid"), &failed);
        set(doc, "checks", json_incref(checks), &failed);
        set(doc, "enrollment", enrollment ? json_incref(enrollment) : json_object(), &failed);
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        return print_json(doc);
}

static uint64_t now_seconds(void) {
        return arg_now ? (uint64_t) arg_now : (uint64_t) time(NULL);
}

/* Split path into an O_DIRECTORY fd of its directory and its last component. */
static int open_parent(const char *path, int *ret_fd, const char **ret_name) {
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *dir = NULL;
        int fd;

        if (!slash)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = memdup_cstr(path, (size_t) (slash - path));
        if (!dir)
                return -ENOMEM;
        if (!*(slash ? slash + 1 : path))
                return -EISDIR;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        *ret_name = slash ? slash + 1 : path;
        return 0;
}

/* write_file_atomic() for any path, a bare file name included (its directory is opened here, so
 * the rename is fsync'd in the right directory). */
static int write_output(const char *path, const void *data, size_t size, mode_t mode, unsigned flags) {
        _cleanup_close_ int dir_fd = -EBADF;
        const char *name = NULL;
        int r = open_parent(path, &dir_fd, &name);
        if (r < 0)
                return r;
        return write_file_atomic_at(dir_fd, name, data, size, mode, flags);
}

static int enroll_challenge(void) {
        _cleanup_(enroll_request_freep) EnrollRequest *req = NULL;
        _cleanup_free_ uint8_t *request = NULL, *challenge = NULL, *state = NULL;
        _cleanup_(json_decrefp) json_t *info = json_object();
        size_t request_size = 0, challenge_size = 0, state_size = 0;
        EnrollError err = {};
        struct stat st;
        bool failed = !info;
        int r;

        if (arg_n_ek_cas == 0 || !arg_request || !arg_out || !arg_state)
                return log_error_errno(EINVAL, "enroll challenge needs --ek-ca=, --request=, --out= and --state=");
        if (arg_response)
                return log_error_errno(EINVAL, "--response= is for enroll finish");
        /* The state holds the only copy of a pending secret: never replace it silently. Checked first so
         * nothing is computed for a run that cannot store its result; the write below is atomic anyway. */
        if (lstat(arg_state, &st) >= 0)
                return log_error_errno(EEXIST, "%s exists; finish or remove that enrollment first", arg_state);
        if (errno != ENOENT)
                return log_error_errno(errno, "Cannot check %s: %m", arg_state);

        r = read_input(arg_request, ENROLL_DOCUMENT_MAX, &request, &request_size);
        if (r < 0)
                return r;
        r = decode_input(arg_request, &request, &request_size);
        if (r < 0)
                return r;
        r = enroll_check_request(request, request_size, (const char *const *) arg_ek_cas, arg_n_ek_cas, &req, &err);
        if (r == -EKEYREJECTED || r == -EBADMSG) {
                r = print_enroll(challenge_checks, ELEMENTSOF(challenge_checks), &err, NULL);
                return r < 0 ? r : EXIT_INVALID;
        }
        if (r < 0 && err.check)
                return log_error_errno(r, "--ek-ca: %s", err.detail);
        if (r < 0)
                return log_error_errno(r, "Cannot check the request: %m");

        r = enroll_make_challenge(req, now_seconds(), &challenge, &challenge_size, &state, &state_size);
        if (r < 0)
                return log_error_errno(r, "Cannot make the challenge: %m");

        r = write_output(arg_state, state, state_size, 0600, WRITE_FILE_NOREPLACE);
        erase(state, state_size);
        if (r == -EEXIST)
                return log_error_errno(r, "%s exists; finish or remove that enrollment first", arg_state);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", arg_state);
        r = write_output(arg_out, challenge, challenge_size, 0644, 0);
        if (r < 0) {
                /* A state without its challenge is of no use; leave nothing behind. */
                (void) unlink(arg_state);
                return log_error_errno(r, "Cannot write %s: %m", arg_out);
        }

        set(info, "host_id", json_string(req->host_id), &failed);
        set(info, "ak_name", json_hex(req->ak_name, sizeof(req->ak_name)), &failed);
        set(info, "ek", json_string(enroll_ek_type_to_string(req->ek_type)), &failed);
        set(info, "ek_name", json_hex(req->ek_name, req->ek_name_size), &failed);
        set(info, "ek_subject", json_string(req->ek_subject), &failed);
        set(info, "challenge", json_string(arg_out), &failed);
        set(info, "state", json_string(arg_state), &failed);
        if (failed)
                return log_error_errno(ENOMEM, "Out of memory");
        r = print_enroll(challenge_checks, ELEMENTSOF(challenge_checks), NULL, info);
        return r < 0 ? r : EXIT_VALID;
}

static int enroll_finish_cmd(void) {
        _cleanup_free_ uint8_t *state = NULL, *response = NULL, *record = NULL;
        _cleanup_(json_decrefp) json_t *info = json_object();
        _cleanup_close_ int dir_fd = -EBADF;
        size_t state_size = 0, response_size = 0, record_size = 0;
        EnrollRecord rec = {};
        EnrollError err = {};
        const char *state_name = NULL;
        bool failed = !info;
        int r;

        if (!arg_state || !arg_response || !arg_out)
                return log_error_errno(EINVAL, "enroll finish needs --state=, --response= and --out=");
        if (arg_n_ek_cas || arg_request)
                return log_error_errno(EINVAL, "--ek-ca= and --request= are for enroll challenge");

        r = read_input(arg_state, ENROLL_DOCUMENT_MAX, &state, &state_size);
        if (r < 0)
                return r;
        r = read_input(arg_response, ENROLL_DOCUMENT_MAX, &response, &response_size);
        if (r < 0)
                goto finish;
        r = decode_input(arg_response, &response, &response_size);
        if (r < 0)
                goto finish;

        r = enroll_finish(state, state_size, response, response_size, now_seconds(), &record, &record_size, &err);
        if (r == -EKEYREJECTED || r == -EBADMSG) {
                r = print_enroll(finish_checks, ELEMENTSOF(finish_checks), &err, NULL);
                r = r < 0 ? r : EXIT_INVALID;
                goto finish;
        }
        if (r < 0) {
                r = log_error_errno(r, "Cannot finish the enrollment: %m");
                goto finish;
        }

        /* The state is consumed before the record exists: a replayed response then finds no state, and
         * a crash in between loses the enrollment (run it again) but never leaves a reusable secret. */
        r = open_parent(arg_state, &dir_fd, &state_name);
        if (r >= 0)
                r = wipe_file_at(dir_fd, state_name);
        if (r < 0) {
                r = log_error_errno(r, "Cannot remove %s (no record written): %m", arg_state);
                goto finish;
        }
        r = write_output(arg_out, record, record_size, 0644, 0);
        if (r < 0) {
                r = log_error_errno(r, "Cannot write %s: %m", arg_out);
                goto finish;
        }

        r = enroll_record_parse(record, record_size, &rec);
        if (r < 0) {
                r = log_error_errno(r, "Cannot read back the record: %m");
                goto finish;
        }
        set(info, "host_id", json_string(rec.host_id), &failed);
        set(info, "ak_name", json_hex(rec.ak_name, sizeof(rec.ak_name)), &failed);
        set(info, "time", json_uint(rec.time), &failed);
        set(info, "record", json_string(arg_out), &failed);
        enroll_record_done(&rec);
        if (failed) {
                r = log_error_errno(ENOMEM, "Out of memory");
                goto finish;
        }
        r = print_enroll(finish_checks, ELEMENTSOF(finish_checks), NULL, info);
        r = r < 0 ? r : EXIT_VALID;
finish:
        erase(state, state_size);
        return r;
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
        bool enroll_options = arg_n_ek_cas || arg_request || arg_response || arg_out || arg_state;
        if (streq(verb, "enroll")) {
                if (arg_nonce || arg_n_trusted_aks || arg_pcrs || arg_n_workloads || arg_require_safe || arg_host_key ||
                    arg_max_age != AGENTID_DEFAULT_MAX_AGE || arg_public_key || arg_kid || arg_evidence || arg_audience ||
                    arg_revocations || arg_min_seq_set || arg_old_key || arg_peers) {
                        log_error("Verification options do not apply to enroll; see --help.");
                        r = -EINVAL;
                } else if (streq(path, "challenge"))
                        r = enroll_challenge();
                else if (streq(path, "finish"))
                        r = enroll_finish_cmd();
                else {
                        log_error("Unknown enroll step '%s': challenge or finish.", path);
                        r = -EINVAL;
                }
        } else if (enroll_options) {
                log_error("--ek-ca=, --request=, --response=, --out= and --state= are for enroll; see --help.");
                r = -EINVAL;
        } else if (arg_peers && !streq(verb, "token")) {
                log_error("--peers= is for token; see --help.");
                r = -EINVAL;
        } else if (arg_old_key && !streq(verb, "rotation")) {
                log_error("--old-key= is for rotation; see --help.");
                r = -EINVAL;
        } else if (arg_revocations && (streq(verb, "receipt") || streq(verb, "revocations") || streq(verb, "rotation"))) {
                log_error("--revocations= is for evidence, platform, token and message; see --help.");
                r = -EINVAL;
        } else if (arg_min_seq_set && !arg_revocations && !streq(verb, "revocations")) {
                log_error("--min-seq= needs --revocations= (or the revocations command); see --help.");
                r = -EINVAL;
        } else if (streq(verb, "evidence"))
                r = verify_evidence(false, path);
        else if (streq(verb, "platform"))
                r = verify_evidence(true, path);
        else if (streq(verb, "receipt"))
                r = verify_receipt(path);
        else if (streq(verb, "token"))
                r = verify_signed(false, path);
        else if (streq(verb, "message"))
                r = verify_signed(true, path);
        else if (streq(verb, "revocations"))
                r = verify_revocations(path);
        else if (streq(verb, "rotation"))
                r = verify_rotation(path);
        else {
                log_error("Unknown command '%s'; see --help.", verb);
                r = -EINVAL;
        }
        if (r < 0)
                r = EXIT_USAGE;

finish:
        free(arg_trusted_aks);
        free(arg_workloads);
        free(arg_ek_cas);
        return r;
}

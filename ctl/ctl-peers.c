/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentidctl peers: approve, list, remove and export the peers whose task tokens agentidd accepts as
 * parents (see ctl-peers.h).
 *
 * A peer is added with its public key — given directly (an administrator who obtained it out of
 * band), or taken from the peer's agent evidence, which this command verifies first with
 * libagentid-verify against a trusted attestation key: then the key is known to live in that peer's
 * TPM, its TPM Name is pinned as the kid its tokens must carry, and the URI must be the evidence's
 * subject. agentidd itself never sees the evidence; what it is told is a URI, a key and a kid.
 */

#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "attest/enroll.h"
#include "attest/peers.h"
#include "attest/verify.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "ctl/ctl-peers.h"
#include "ctl/ctl-util.h"

#define BUS_NAME "org.agentid1"
#define MANAGER_PATH "/org/agentid1"
#define MANAGER_IFACE "org.agentid1.Manager"
#define TIMEOUT_USEC (30ULL * 1000000)
#define KEY_FILE_MAX (64U * 1024U)

typedef struct PeersArgs {
        bool user, json;
        const char *public_key, *kid, *evidence, *nonce, *trusted_ak, *output;
} PeersArgs;

static void help(void) {
        printf("Usage: agentidctl [--user] peers COMMAND [OPTIONS]\n"
               "\n"
               "Approved peers: agents on other hosts whose task tokens may be parents of this host's\n"
               "tokens (IssueToken with parent_token).\n"
               "\n"
               "Commands:\n"
               "  add URI --public-key=FILE [--kid=HEX]\n"
               "                              Approve a peer by its key (DER or PEM SubjectPublicKeyInfo,\n"
               "                              EC P-256); --kid pins the TPM Name its tokens must carry\n"
               "  add URI --evidence=FILE --nonce=HEX --trusted-ak=FILE\n"
               "                              Verify the peer's agent evidence (Key.Attest) for the nonce\n"
               "                              against a trusted AK, then approve its certified key and\n"
               "                              TPM Name; URI must be the evidence's subject\n"
               "  list [--json]               The approved peers\n"
               "  remove URI                  Withdraw the approval (its tokens are refused from then on)\n"
               "  export --output=FILE        The approved peers in the registry format, for verifiers\n"
               "\n"
               "add and remove are for administrators. Exit status: 0 success, 1 refused or failed (also\n"
               "evidence that does not verify), 2 usage error, 3 agentidd unreachable.\n");
}

static int parse_argv(int argc, char *argv[], PeersArgs *a) {
        enum {
                ARG_USER = 0x100, ARG_JSON, ARG_PUBLIC_KEY, ARG_KID, ARG_EVIDENCE, ARG_NONCE, ARG_TRUSTED_AK,
                ARG_OUTPUT,
        };
        static const struct option options[] = {
                { "user", no_argument, NULL, ARG_USER },
                { "json", no_argument, NULL, ARG_JSON },
                { "public-key", required_argument, NULL, ARG_PUBLIC_KEY },
                { "kid", required_argument, NULL, ARG_KID },
                { "evidence", required_argument, NULL, ARG_EVIDENCE },
                { "nonce", required_argument, NULL, ARG_NONCE },
                { "trusted-ak", required_argument, NULL, ARG_TRUSTED_AK },
                { "output", required_argument, NULL, ARG_OUTPUT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_USER:
                        a->user = true;
                        break;
                case ARG_JSON:
                        a->json = true;
                        break;
                case ARG_PUBLIC_KEY:
                        a->public_key = optarg;
                        break;
                case ARG_KID:
                        a->kid = optarg;
                        break;
                case ARG_EVIDENCE:
                        a->evidence = optarg;
                        break;
                case ARG_NONCE:
                        a->nonce = optarg;
                        break;
                case ARG_TRUSTED_AK:
                        a->trusted_ak = optarg;
                        break;
                case ARG_OUTPUT:
                        a->output = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        return 1;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static int read_input(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        int r = read_file_or_stdin(path, max, ret, ret_size);
        if (r == -EFBIG)
                return log_error_errno(r, "%s is larger than %zu bytes", path, max);
        if (r < 0)
                return log_error_errno(r, "Reading %s failed: %m", path);
        return 0;
}

/* A binary file, or the base64 text agentidctl prints without --output (is_binary says which). */
static int read_binary_or_base64(const char *path, size_t max, bool (*is_binary)(const uint8_t *, size_t),
                                 uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = read_input(path, max, &buf, &size);
        if (r < 0)
                return r;
        if (size > 0 && !is_binary(buf, size)) {
                r = base64_decode(buf, size, ret, ret_size);
                if (r == -EINVAL)
                        return log_error_errno(r, "%s is neither binary nor base64", path);
                return r < 0 ? log_error_errno(r, "Decoding %s failed: %m", path) : 0;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* A public key file: PEM ("PUBLIC KEY") or DER SubjectPublicKeyInfo, as DER. */
static int read_public_key(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = read_input(path, KEY_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        r = pkey_from_pem_or_der(buf, size, &pkey);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r < 0)
                return log_error_errno(EINVAL, "%s is not a public key (DER SubjectPublicKeyInfo or PEM)", path);
        /* agentidd checks the curve and re-encodes; here only the container is undone. */
        r = pkey_to_spki_der(pkey, ret, ret_size);
        if (r < 0)
                return log_error_errno(r, "Encoding the key of %s failed: %m", path);
        return 0;
}

static bool evidence_is_binary(const uint8_t *buf, size_t size) {
        return enroll_is_cbor_map(buf, size);
}

/* An AK record (CBOR map), a TPMT_PUBLIC or a TPM2B_PUBLIC: both start with 0x00. */
static bool ak_is_binary(const uint8_t *buf, size_t size) {
        return enroll_is_cbor_map(buf, size) || buf[0] == 0x00;
}

/* As agentid-verify --trusted-ak: an AK record from enrollment, or the AK's public area. */
static int load_trusted_ak(AgentidVerifier *v, const char *path) {
        _cleanup_free_ uint8_t *buf = NULL, *pub = NULL;
        size_t size = 0, pub_size = 0;
        int r;

        r = read_binary_or_base64(path, KEY_FILE_MAX, ak_is_binary, &buf, &size);
        if (r < 0)
                return r;
        r = enroll_ak_public(buf, size, &pub, &pub_size);
        if (r == -ENOMEM)
                return log_error_errno(r, "Out of memory");
        if (r < 0)
                return log_error_errno(EBADMSG, "%s is not an AK record", path);
        r = agentid_verifier_add_trusted_ak(v, pub, pub_size);
        if (r == -EBADMSG || r == -EINVAL)
                return log_error_errno(EBADMSG, "%s is not an attestation key (AK record or TPMT_PUBLIC)", path);
        if (r < 0)
                return log_error_errno(r, "Cannot use %s: %m", path);
        return 0;
}

/* The evidence's certified key and kid, after it verified, and its subject must be uri. */
static int key_from_evidence(const PeersArgs *a, const char *uri, uint8_t **ret_spki, size_t *ret_spki_size,
                             uint8_t ret_kid[PEER_KID_SIZE]) {
        _cleanup_free_ uint8_t *evidence = NULL, *nonce = NULL;
        AgentidVerifier *v = NULL;
        AgentidVerdict *d = NULL;
        size_t size = 0, nonce_size = 0;
        int r;

        if (!a->nonce || hex_decode(a->nonce, &nonce, &nonce_size) < 0 || nonce_size < AGENTID_NONCE_MIN ||
            nonce_size > AGENTID_NONCE_MAX)
                return log_error_errno(EINVAL, "--nonce= must be %u..%u bytes in hex (the nonce the evidence "
                                       "was made for)", AGENTID_NONCE_MIN, AGENTID_NONCE_MAX);
        if (!a->trusted_ak)
                return log_error_errno(EINVAL, "--evidence= needs --trusted-ak= (the peer's attestation key)");
        r = read_binary_or_base64(a->evidence, AGENTID_EVIDENCE_MAX, evidence_is_binary, &evidence, &size);
        if (r < 0)
                return r;

        v = agentid_verifier_new();
        if (!v)
                return log_error_errno(ENOMEM, "Out of memory");
        r = load_trusted_ak(v, a->trusted_ak);
        if (r >= 0) {
                r = agentid_verify_evidence(v, evidence, size, nonce, nonce_size, &d);
                if (r < 0)
                        log_error_errno(r, "Verifying %s failed: %m", a->evidence);
        }
        if (r >= 0 && !agentid_verdict_is_valid(d)) {
                fprintf(stderr, "The evidence in %s does not verify: %s\n", a->evidence,
                        agentid_reason_to_string(agentid_verdict_reason(d)) ?: "invalid");
                for (size_t i = 0; i < agentid_verdict_n_checks(d); i++) {
                        const char *name = NULL, *detail = NULL;
                        bool ok = false;
                        if (agentid_verdict_get_check(d, i, NULL, &name, &ok, &detail) == 0 && !ok)
                                fprintf(stderr, "  %s: %s\n", name ?: "?", detail ?: "");
                }
                r = -EXIT_REFUSED;
        }
        if (r >= 0) {
                const AgentidClaims *c = agentid_verdict_get_claims(d);
                if (!streq(c->sub, uri)) {
                        fprintf(stderr, "The evidence is for '%s', not for '%s'.\n", c->sub, uri);
                        r = -EXIT_REFUSED;
                } else {
                        r = memdup_sized(c->public_key, c->public_key_size, ret_spki, ret_spki_size);
                        if (r >= 0)
                                memcpy(ret_kid, c->kid, PEER_KID_SIZE);
                }
        }
        agentid_verdict_free(d);
        agentid_verifier_free(v);
        return r;
}

/* ---- commands ------------------------------------------------------------------------------- */

static int verb_add(sd_bus *bus, const PeersArgs *a, const char *uri) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ uint8_t *spki = NULL, *kid_given = NULL;
        uint8_t kid[PEER_KID_SIZE];
        bool has_kid = false;
        size_t spki_size = 0, n = 0;
        int r;

        if (!!a->public_key == !!a->evidence)
                return log_error_errno(EINVAL, "peers add needs either --public-key= or --evidence=");
        if (a->public_key) {
                if (a->nonce || a->trusted_ak)
                        return log_error_errno(EINVAL, "--nonce= and --trusted-ak= go with --evidence=");
                if (a->kid) {
                        if (hex_decode(a->kid, &kid_given, &n) < 0 || n != PEER_KID_SIZE)
                                return log_error_errno(EINVAL, "--kid= must be %u bytes in hex (a TPM Name)",
                                                       PEER_KID_SIZE);
                        memcpy(kid, kid_given, PEER_KID_SIZE);
                        has_kid = true;
                }
                r = read_public_key(a->public_key, &spki, &spki_size);
        } else {
                if (a->kid)
                        return log_error_errno(EINVAL, "--kid= goes with --public-key= (evidence names the kid)");
                r = key_from_evidence(a, uri, &spki, &spki_size, kid);
                has_kid = true;
        }
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "AddPeer");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", uri);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', spki, spki_size);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && has_kid) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "kid");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', kid, PEER_KID_SIZE);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Building the request failed: %m");
        r = sd_bus_call(bus, m, TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return ctl_report_error("Adding the peer failed", &error, r);
        return 0;
}

static int verb_remove(sd_bus *bus, const char *uri) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "RemovePeer", &error, NULL, "s", uri);
        if (r < 0)
                return ctl_report_error("Removing the peer failed", &error, r);
        return 0;
}

/* ListPeers as a registry (attest/peers.h). ListPeers does not say when or by whom each peer
 * was added, so "added" and "by_uid" are the time of this call and the caller's uid. */
static int list_peers(sd_bus *bus, PeerRegistry **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(peer_registry_freep) PeerRegistry *reg = peer_registry_new();
        uint64_t now = (uint64_t) time(NULL);
        int r;

        if (!reg)
                return log_error_errno(ENOMEM, "Out of memory");
        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListPeers", &error, &reply, NULL);
        if (r < 0)
                return ctl_report_error("Listing peers failed", &error, r);
        r = sd_bus_message_enter_container(reply, 'a', "(sayay)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "sayay")) > 0) {
                const char *uri;
                const void *spki, *kid;
                size_t spki_size, kid_size;

                r = sd_bus_message_read(reply, "s", &uri);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &spki, &spki_size);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &kid, &kid_size);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                if (kid_size != 0 && kid_size != PEER_KID_SIZE)
                        return log_error_errno(EBADMSG, "Bad reply: peer '%s' has a kid of %zu bytes", uri, kid_size);
                r = peer_registry_add(reg, uri, spki, spki_size, kid_size ? kid : NULL, now, (uint32_t) getuid());
                if (r < 0)
                        return log_error_errno(r, "Bad reply: peer '%s' cannot be listed: %m", uri);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        *ret = TAKE_PTR(reg);
        return 0;
}

static int verb_list(sd_bus *bus, const PeersArgs *a) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = NULL;
        int r;

        r = list_peers(bus, &reg);
        if (r < 0)
                return r;
        if (a->json) {
                json_t *arr = json_array();
                for (size_t i = 0; arr && i < peer_registry_size(reg); i++) {
                        const Peer *p = peer_registry_get(reg, i);
                        _cleanup_free_ char *spki = hex_encode(p->spki_der, p->spki_size);
                        _cleanup_free_ char *sha = hex_encode(p->spki_sha256, sizeof(p->spki_sha256));
                        _cleanup_free_ char *kid = p->has_kid ? hex_encode(p->kid, PEER_KID_SIZE) : NULL;
                        if (!spki || !sha || (p->has_kid && !kid) ||
                            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o}", "uri", p->uri,
                                                                 "public_key", spki, "spki_sha256", sha, "kid",
                                                                 kid ? json_string(kid) : json_null())) < 0) {
                                json_decref(arr);
                                arr = NULL;
                        }
                }
                if (!arr)
                        return log_error_errno(ENOMEM, "Out of memory");
                char *s = json_dumps(arr, JSON_INDENT(2));
                json_decref(arr);
                if (!s)
                        return log_error_errno(ENOMEM, "Out of memory");
                printf("%s\n", s);
                free(s);
                return 0;
        }

        printf("%-64s %-16s %s\n", "URI", "KEY SHA-256", "KID");
        for (size_t i = 0; i < peer_registry_size(reg); i++) {
                const Peer *p = peer_registry_get(reg, i);
                char sha[2 * 32 + 1], kid[2 * PEER_KID_SIZE + 1];
                hex_encode_to(p->spki_sha256, sizeof(p->spki_sha256), sha);
                if (p->has_kid)
                        hex_encode_to(p->kid, PEER_KID_SIZE, kid);
                printf("%-64s %.16s %s\n", p->uri, sha, p->has_kid ? kid : "-");
        }
        return 0;
}

static int verb_export(sd_bus *bus, const PeersArgs *a) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        if (!a->output && isatty(STDOUT_FILENO))
                return log_error_errno(EINVAL, "peers export writes CBOR: give --output=FILE (or redirect stdout)");
        r = list_peers(bus, &reg);
        if (r < 0)
                return r;
        r = peer_registry_encode(reg, &buf, &size);
        if (r < 0)
                return log_error_errno(r, "Encoding the registry failed: %m");
        if (a->output) {
                r = write_file_atomic(a->output, buf, size, 0644, 0);
                if (r < 0)
                        return log_error_errno(r, "Writing %s failed: %m", a->output);
                return 0;
        }
        if (fwrite(buf, 1, size, stdout) != size || fflush(stdout) != 0)
                return log_error_errno(EIO, "Writing to stdout failed");
        return 0;
}

int ctl_peers(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        PeersArgs a = {};
        int r;

        r = parse_argv(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        /* What getopt left: "peers", the command, and its arguments. */
        int nargs = argc - optind;
        char **args = argv + optind;
        if (nargs < 2 || !streq(args[0], "peers")) {
                log_error("Usage: peers add|list|remove|export; see agentidctl peers --help.");
                return EXIT_USAGE;
        }
        const char *verb = args[1];
        bool takes_uri = streq(verb, "add") || streq(verb, "remove");
        if (!takes_uri && !streq(verb, "list") && !streq(verb, "export")) {
                log_error("Unknown peers command '%s' (add, list, remove, export).", verb);
                return EXIT_USAGE;
        }
        if (nargs != (takes_uri ? 3 : 2)) {
                log_error("Wrong number of arguments for 'peers %s'; see agentidctl peers --help.", verb);
                return EXIT_USAGE;
        }

        r = a.user ? sd_bus_open_user(&bus) : sd_bus_open_system(&bus);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to the %s bus: %m", a.user ? "session" : "system");
                return EXIT_UNREACHABLE;
        }
        (void) sd_bus_set_method_call_timeout(bus, TIMEOUT_USEC);

        if (streq(verb, "add"))
                r = verb_add(bus, &a, args[2]);
        else if (streq(verb, "remove"))
                r = verb_remove(bus, args[2]);
        else if (streq(verb, "list"))
                r = verb_list(bus, &a);
        else
                r = verb_export(bus, &a);

        if (r == -EXIT_UNREACHABLE || r == -EXIT_REFUSED)
                return -r;
        if (r == -EINVAL)
                return EXIT_USAGE;
        return r < 0 ? EXIT_REFUSED : 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The registry of approved peers (DESIGN §1 "regulated setups pre-approve peers"; docs/dbus-api.md
 * "Delegation"): agents on other hosts whose task tokens may be parents of this host's tokens. A peer
 * is an agent URI bound to the P-256 key its tokens must verify with and, optionally, to the TPM Name
 * (kid) they must carry.
 *
 * The registry is data only — no bus, no clock — and needs nothing beyond attest/ and common/, so
 * libagentid-verify reads it as well as agentidd (dbus/bus-peers.c) and agentidctl
 * (agentid_verifier_add_peers(), attest/verify-peers.c). agentidd keeps it in <state>/peers
 * and `agentidctl peers export` writes the same format for verifiers: deterministic CBOR (RFC 8949
 * §4.2.1, docs/formats.md §13)
 *
 *   {"v": 1, "peers": [* {"uri": tstr, "spki": bstr, ? "kid": bstr(34), "added": uint, "by_uid": uint}]}
 *
 * with the entries sorted by URI (byte-wise, strictly ascending: no URI twice), no kid twice, every
 * "spki" a DER SubjectPublicKeyInfo of an EC P-256 key in its canonical form (named curve,
 * uncompressed point — what peer_registry_add() stores whatever form it was given), "kid" a SHA-256
 * TPM Name (00 0b ‖ 32 bytes), "added" NumericDate. A file that is not exactly this is refused as a
 * whole (never partly loaded): a registry says whom to trust, so a damaged one must stop the daemon,
 * not shrink or grow silently.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define PEERS_FILE "peers"
#define PEERS_MAX 1024U
#define PEER_KID_SIZE 34U               /* TPM Name: 00 0b || SHA-256(TPMT_PUBLIC) */
#define PEER_SPKI_MAX 128U              /* a P-256 SubjectPublicKeyInfo is 91 bytes (uncompressed) */
/* Largest registry file: 1024 entries of at most ~300 bytes (a 128-byte URI, key, kid, times). */
#define PEERS_FILE_MAX (512U * 1024U)

typedef struct Peer {
        char *uri;                      /* agentid://<32 lower-hex>/<key name> */
        uint8_t *spki_der;              /* canonical DER SubjectPublicKeyInfo (P-256, uncompressed) */
        size_t spki_size;
        uint8_t spki_sha256[32];        /* of spki_der, as revocation entries name keys */
        bool has_kid;
        uint8_t kid[PEER_KID_SIZE];     /* the TPM Name the peer's tokens must carry */
        uint64_t added;                 /* NumericDate */
        uint32_t by_uid;                /* who added it */
} Peer;

typedef struct PeerRegistry PeerRegistry;

Peer *peer_free(Peer *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Peer *, peer_free);

/* An empty registry, or NULL on allocation failure. */
PeerRegistry *peer_registry_new(void);
PeerRegistry *peer_registry_free(PeerRegistry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerRegistry *, peer_registry_free);

size_t peer_registry_size(const PeerRegistry *reg);
/* The i-th peer in URI order (i < peer_registry_size()), borrowed. */
const Peer *peer_registry_get(const PeerRegistry *reg, size_t i);

/*
 * peer_spki_canonicalize() - check a public key and re-encode it canonically
 * @der: a DER SubjectPublicKeyInfo (exactly, nothing after it)
 *
 * Accepts an EC key on P-256 (prime256v1) whose point is on the curve, given compressed or not, and
 * returns it as a named-curve SubjectPublicKeyInfo with the uncompressed point (SEC 1 §2.3.3), the
 * form agentid's keys are published in and revocation entries hash.
 *
 * Return: 0 and a malloc'd buffer; -EINVAL if it is not such a key; -ENOMEM.
 */
int peer_spki_canonicalize(const uint8_t *der, size_t size, uint8_t **ret, size_t *ret_size);

/*
 * peer_registry_add() - approve a peer
 * @uri: the peer's agent URI (DESIGN §2)
 * @spki_der: its public key, DER SubjectPublicKeyInfo (stored canonically, see above)
 * @kid: the TPM Name its tokens must carry (PEER_KID_SIZE bytes, 00 0b ...), or NULL for any
 *
 * Return: 0; -EINVAL (not an agent URI, not a P-256 key, not a SHA-256 TPM Name); -EEXIST (a peer with
 *         this URI is registered); -ENOTUNIQ (another peer is registered with this kid); -E2BIG
 *         (PEERS_MAX peers already); -ENOMEM. On failure the registry is unchanged.
 */
int peer_registry_add(PeerRegistry *reg, const char *uri, const uint8_t *spki_der, size_t spki_size,
                      const uint8_t *kid, uint64_t added, uint32_t by_uid);

/*
 * peer_registry_remove() - forget the peer with this URI
 * @ret_removed: if not NULL, receives the peer (the caller frees it, or gives it back with
 *         peer_registry_restore() when saving the smaller registry failed); else it is freed
 *
 * Return: 0; -ENOENT (no such peer).
 */
int peer_registry_remove(PeerRegistry *reg, const char *uri, Peer **ret_removed);
/* Put back a peer peer_registry_remove() returned (ownership passes, also on failure).
 * Return: 0; -EEXIST/-ENOTUNIQ (registered again meanwhile); -E2BIG; -ENOMEM. */
int peer_registry_restore(PeerRegistry *reg, Peer *p);

/* Lookups; the result is borrowed and valid until the registry changes. NULL if there is none. */
const Peer *peer_registry_find_by_uri(const PeerRegistry *reg, const char *uri);
/* Only peers registered with a kid can be found this way. */
const Peer *peer_registry_find_by_kid(const PeerRegistry *reg, const uint8_t kid[PEER_KID_SIZE]);

/*
 * peer_registry_encode() - the registry in the format above (what peer_registry_save() writes)
 *
 * Return: 0 and a malloc'd buffer; -ENOMEM; -EINVAL (cannot happen for a registry built here).
 */
int peer_registry_encode(const PeerRegistry *reg, uint8_t **ret, size_t *ret_size);

/*
 * peer_registry_parse() - a registry from its encoded form, strictly
 * @ret_reason: on -EBADMSG, a static explanation (may be NULL)
 *
 * Return: 0 and a new registry; -EBADMSG (not exactly the format above: malformed or
 *         non-deterministic CBOR, unknown or missing fields, v != 1, a bad URI, key or kid, entries
 *         not sorted, a URI or kid twice); -E2BIG (over PEERS_FILE_MAX or PEERS_MAX); -ENOMEM.
 */
int peer_registry_parse(const uint8_t *buf, size_t size, PeerRegistry **ret, const char **ret_reason);

/*
 * peer_registry_load() - read dir_fd/name
 *
 * A missing file is an empty registry (nothing approved yet).
 *
 * Return: 0 and a registry; -EBADMSG/-E2BIG as peer_registry_parse() (*ret_reason says why); -EFBIG
 *         (file over PEERS_FILE_MAX); other -errno from reading.
 */
int peer_registry_load(int dir_fd, const char *name, PeerRegistry **ret, const char **ret_reason);

/* Durably replace dir_fd/name with the registry (write_file_atomic_at(), mode 0600). Return: 0; -errno. */
int peer_registry_save(const PeerRegistry *reg, int dir_fd, const char *name);

/*
 * peer_token_peek_issuer() - the iss claim (CWT claim 1) a token's payload states, UNVERIFIED
 *
 * Only to find which registered peer's key to verify the token with; the claim means nothing until
 * that signature verified (and the caller compares iss again then). The COSE envelope is parsed as
 * strictly as for verification and the payload must be deterministic CBOR.
 *
 * Return: 0 and a malloc'd string; -EBADMSG (no well-formed iss text); -ENOMEM.
 */
int peer_token_peek_issuer(const uint8_t *token, size_t size, char **ret_iss);

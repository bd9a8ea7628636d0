/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify: tokens of approved peers (docs/verifier.md "Tokens of approved peers"). The
 * registry is agentidd's own format (attest/peers.h, docs/formats.md §13), read as strictly as agentidd
 * reads its own; the token itself is verified by verify-token.c, with the key the registry holds for its
 * issuer.
 *
 * Trust comes from the registry alone: the issuer must be a registered peer, the token must verify with
 * that peer's key and carry its registered kid (when one is registered), and every hop of a delegation
 * chain must name a registered peer with its registered kid. The iss is read before the signature only
 * to pick the key (peer_token_peek_issuer()); it means nothing until the signature verified, and is
 * compared with the peer again then.
 */

#include <string.h>

#include "attest/peers.h"
#include "attest/verify-internal.h"
#include "attest/verify.h"
#include "common/macro.h"

/* Our public symbols are exported from the shared library; everything else there is hidden. */
#define PUBLIC AGENTID_EXPORT

/* The public limits are those of the registry's parser. */
_Static_assert(AGENTID_PEERS_MAX == PEERS_FILE_MAX, "peer registry size limit");
_Static_assert(AGENTID_TPM_NAME_SIZE == PEER_KID_SIZE, "kid size");

static void peer_keys_free(EVP_PKEY **keys, size_t n) {
        for (size_t i = 0; keys && i < n; i++)
                EVP_PKEY_free(keys[i]);
        free(keys);
}

PUBLIC int agentid_verifier_add_peers(AgentidVerifier *v, const uint8_t *registry, size_t size,
                                      const char **ret_error) {
        _cleanup_(peer_registry_freep) PeerRegistry *reg = NULL;
        EVP_PKEY **keys = NULL;
        const char *why = NULL;
        size_t n;
        int r;

        if (!v || (!registry && size > 0))
                return -EINVAL;
        /* One registry: merging two could mean choosing between two keys for one URI. */
        if (verifier_peers(v))
                return -EEXIST;
        if (size > AGENTID_PEERS_MAX)
                return -EFBIG;

        r = peer_registry_parse(registry, size, &reg, &why);
        if (r == -EBADMSG && ret_error)
                *ret_error = why ?: "not a peer registry";
        else if (r == -E2BIG && ret_error)
                *ret_error = "more than 1024 peers, or more nesting or data items than a registry has";
        if (r < 0)
                return r;

        /* Each key decoded once, here: a gateway verifies many tokens of few peers, and decoding costs
         * about as much as the signature check (docs/performance.md). The registry is immutable from
         * now on, and a decoded key is only read by verifications, so threads may share it. */
        n = peer_registry_size(reg);
        keys = calloc(n ? n : 1, sizeof(EVP_PKEY *));
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const Peer *p = peer_registry_get(reg, i);
                uint8_t sha[AGENTID_SHA256_SIZE];

                r = spki_key_load(p->spki_der, p->spki_size, &keys[i], sha);
                if (r >= 0 && memcmp(sha, p->spki_sha256, sizeof(sha)) != 0)
                        r = -EINVAL;
                if (r < 0) {
                        peer_keys_free(keys, n);
                        if (r == -EINVAL) {
                                if (ret_error)
                                        *ret_error = "a peer's key is not a P-256 public key";
                                return -EBADMSG;
                        }
                        return r;
                }
        }
        verifier_set_peers(v, TAKE_PTR(reg), keys);
        return 0;
}

PUBLIC int agentid_verify_token_from_peer(const AgentidVerifier *v, const uint8_t *token, size_t size,
                                          const char *audience, AgentidVerdict **ret) {
        _cleanup_free_ char *iss = NULL;
        const PeerRegistry *peers;
        const Peer *p = NULL;
        EVP_PKEY *key = NULL;
        int r;

        if (!v || (!token && size > 0) || !audience || !*audience || !ret)
                return -EINVAL;
        peers = verifier_peers(v);
        if (!peers)
                return -ENOKEY;

        /* Which key: the registered peer the payload names. A token whose envelope or payload is malformed
         * names none; token_format or token_peer then says so. */
        r = peer_token_peek_issuer(token, size, &iss);
        if (r == -ENOMEM)
                return r;
        if (iss)
                p = peer_registry_find_by_uri(peers, iss);
        for (size_t i = 0; p && !key && i < peer_registry_size(peers); i++)
                if (peer_registry_get(peers, i) == p)
                        key = verifier_peer_key(v, i);
        if (p && !key)
                return -EIO;

        TokenPeer peer = {
                .peers = peers,
                .iss = iss,
                .peer = p,
                .key = key,
        };
        return verify_token(v, token, size, p ? p->spki_der : NULL, p ? p->spki_size : 0,
                            p && p->has_kid ? p->kid : NULL, audience, &peer, ret);
}

void check_token_peer(AgentidVerdict *d, const TokenPeer *peer, bool format_ok) {
        const Peer *p = peer->peer;

        if (!format_ok) {
                verdict_skip(d, AGENTID_REASON_TOKEN_PEER, "token malformed");
                return;
        }
        if (!peer->iss) {
                verdict_fail(d, AGENTID_REASON_TOKEN_PEER, "the payload states no issuer (iss) to look up");
                return;
        }
        if (!p) {
                verdict_fail(d, AGENTID_REASON_TOKEN_PEER, "iss \"%.120s\" is not a registered peer (%zu registered)",
                             peer->iss, peer_registry_size(peer->peers));
                return;
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_PEER,
                     "iss %.200s (read before the signature) is a registered peer: key with SPKI SHA-256 %s, "
                     "%s%s, added %llu by uid %u",
                     p->uri, detail_hex(p->spki_sha256, sizeof(p->spki_sha256)).s, p->has_kid ? "kid " : "any kid",
                     p->has_kid ? detail_hex(p->kid, sizeof(p->kid)).s : "", (unsigned long long) p->added, p->by_uid);
}

void check_token_peer_hops(AgentidVerdict *d, const TokenPeer *peer, const TokenVerified *t, const char *because) {
        const TokenClaims *c;

        if (!t) {
                verdict_skip(d, AGENTID_REASON_TOKEN_PEER_HOPS, because ?: "token not verified");
                return;
        }
        c = &t->claims;

        /* The key was picked by the iss read before the signature. Both come from the same signed bytes,
         * so they cannot differ; if they did, a claim the signature does not vouch for would have chosen
         * the key, so the issuer check fails. */
        if (!peer->peer || !streq(c->iss, peer->peer->uri))
                verdict_fail(d, AGENTID_REASON_TOKEN_PEER,
                             "the verified iss \"%.120s\" is not the peer whose key was used",
                             c->iss);

        if (c->n_hops == 0) {
                verdict_pass(d, AGENTID_REASON_TOKEN_PEER_HOPS, "root token (no hops)");
                return;
        }
        /* A hop names a parent token by its issuer and key (DESIGN §5): a chain is only accepted through
         * approved agents, each with the key it was approved with. */
        for (size_t i = 0; i < c->n_hops; i++) {
                const TokenHop *h = &c->hops[i];
                const Peer *p = peer_registry_find_by_uri(peer->peers, h->iss);

                if (!p) {
                        verdict_fail(d, AGENTID_REASON_TOKEN_PEER_HOPS,
                                     "hop %zu: iss \"%.120s\" is not a registered peer", i,
                                     h->iss);
                        return;
                }
                if (p->has_kid && memcmp(p->kid, h->kid, PEER_KID_SIZE) != 0) {
                        verdict_fail(d, AGENTID_REASON_TOKEN_PEER_HOPS,
                                     "hop %zu: kid %s, but %.120s is registered with kid %s",
                                     i, detail_hex(h->kid, sizeof(h->kid)).s, h->iss,
                                     detail_hex(p->kid, sizeof(p->kid)).s);
                        return;
                }
        }
        verdict_pass(d, AGENTID_REASON_TOKEN_PEER_HOPS,
                     "%zu hop%s, each through a registered peer with its registered kid",
                     c->n_hops, c->n_hops == 1 ? "" : "s");
}

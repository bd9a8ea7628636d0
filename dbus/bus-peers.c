/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Approved peers on the bus: Manager.AddPeer, RemovePeer and ListPeers, and the check of a parent
 * token issued on another host (docs/dbus-api.md "Delegation"). The registry itself is
 * attest/peers.c; it lives in <state>/peers.
 *
 * Every change is saved (written atomically and fsync'd) before the caller is answered, and a change
 * that cannot be saved is undone in memory too: what agentidd trusts is always what a restart will
 * trust. A registry that cannot be read stops the start-up — starting with none would silently
 * break every delegation from the peers, and guessing at a damaged one could trust a stranger.
 */

#include <openssl/x509.h>
#include <time.h>

#include "attest/task-credential.h"
#include "common/crypto-util.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"

int bus_peers_open(Manager *m, int state_fd) {
        const char *reason = NULL;
        int r;

        r = peer_registry_load(state_fd, PEERS_FILE, &m->peers, &reason);
        if (r == -EBADMSG)
                return log_error_errno(r, "The peer registry %s/%s is damaged (%s); refusing to start. Restore it "
                                       "from a backup, or move it away to start with no approved peers.",
                                       m->state_dir ?: "<state>", PEERS_FILE, reason ?: "malformed");
        if (r == -E2BIG || r == -EFBIG)
                return log_error_errno(r, "The peer registry %s/%s lists more than %u peers or is too large; "
                                       "refusing to start.", m->state_dir ?: "<state>", PEERS_FILE, PEERS_MAX);
        if (r < 0)
                return log_error_errno(r, "Reading the peer registry %s/%s failed: %m", m->state_dir ?: "<state>",
                                       PEERS_FILE);
        if (peer_registry_size(m->peers) > 0)
                log_info("%zu approved peer(s).", peer_registry_size(m->peers));
        return 0;
}

static void audit_peer(Manager *m, const char *action, bool done, uid_t uid, pid_t pid, const Peer *p,
                       const char *uri, const char *failure) {
        char reason[128];

        /* The key a peer is trusted with is what an auditor needs: its SHA-256, as revocation
         * entries name keys; the kid field carries the TPM Name the peer's tokens must have. */
        if (!done)
                (void) snprintf(reason, sizeof(reason), "%s", failure ?: "failed");
        else if (p) {
                char hex[2 * 32 + 1];
                hex_encode_to(p->spki_sha256, sizeof(p->spki_sha256), hex);
                (void) snprintf(reason, sizeof(reason), "spki_sha256 %s", hex);
        }
        AuditCaller caller = { .uid = (uint32_t) uid, .pid = (uint32_t) pid };
        AuditEntry a = {
                .action = action,
                .decision = done ? "done" : "failed",
                .caller = &caller,
                .key = uri,
                .kid = p && p->has_kid ? p->kid : NULL,
                .has_by_uid = true,
                .by_uid = (uint32_t) uid,
                .reason = done && !p ? NULL : reason,
        };
        (void) bus_audit(m, &a, NULL);
}

static int authorize_admin(Manager *m, sd_bus_message *msg, const char *what, uid_t *ret_uid, pid_t *ret_pid,
                           sd_bus_error *error) {
        int r = caller_get_creds(m->creds_cache, msg, ret_uid, ret_pid);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_uid_is_admin(m, *ret_uid))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Only administrators may %s", what);
        return 0;
}

/* ---- AddPeer -------------------------------------------------------------------------------- */

static int method_add_peer_impl(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        _cleanup_free_ uint8_t *kid = NULL;
        const char *uri;
        const void *spki;
        size_t spki_size;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        int r;

        r = sd_bus_message_read(msg, "s", &uri);
        if (r >= 0)
                r = sd_bus_message_read_array(msg, 'y', &spki, &spki_size);
        if (r < 0)
                return r;
        BusOption options[] = {
                { .name = "kid", .type = BUS_OPTION_BYTES, .ret = &kid, .max = PEER_KID_SIZE, .exact = true },
        };
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        r = authorize_admin(m, msg, "approve peers", &uid, &pid, error);
        if (r < 0)
                return r;

        /* Each refusal says which argument is wrong; peer_registry_add() checks them all again. */
        if (!agent_uri_is_valid(uri, strlen(uri)))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "'%.*s' is not an agent URI (agentid://<32 lower-case hex digits>/<key name>)",
                                         bus_quote_len(uri, 300), uri);
        /* A peer is an agent of another host: one of this host's URIs would let an outside key speak
         * for a local key (delegation and `peers` rules would take it for that key). */
        if (strncmp(uri + strlen("agentid://"), m->host_id, strlen(m->host_id)) == 0 &&
            uri[strlen("agentid://") + strlen(m->host_id)] == '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "'%.300s' names a key of this host, not a peer", uri);
        if (kid && (kid[0] != 0x00 || kid[1] != 0x0b))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'kid' must be a SHA-256 TPM Name (00 0b followed by 32 bytes)");
        r = peer_registry_add(m->peers, uri, spki, spki_size, kid, (uint64_t) time(NULL), (uint32_t) uid);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "public_key is not a DER SubjectPublicKeyInfo of an EC P-256 key");
        if (r == -EEXIST)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Peer '%s' is approved already; remove it first to change its key", uri);
        if (r == -ENOTUNIQ)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Another approved peer is registered with this kid");
        if (r == -E2BIG)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED, "The peer limit (%u) is reached",
                                         PEERS_MAX);
        if (r < 0)
                return r;

        r = peer_registry_save(m->peers, m->state_fd, PEERS_FILE);
        if (r < 0) {
                /* Not saved, not trusted: undo, so that memory and disk agree. */
                (void) peer_registry_remove(m->peers, uri, NULL);
                log_error_errno(r, "Saving the peer registry failed; peer '%s' was not added: %m", uri);
                audit_peer(m, "peer_add", false, uid, pid, NULL, uri, strerror(-r));
                return sd_bus_error_setf(error, AGENTID_ERROR_STORAGE_FAILURE,
                                         "Saving the peer registry failed: %s", strerror(-r));
        }
        const Peer *p = peer_registry_find_by_uri(m->peers, uri);
        log_info("Peer '%s' approved by uid %u%s.", uri, uid, p->has_kid ? " (kid pinned)" : "");
        audit_peer(m, "peer_add", true, uid, pid, p, uri, NULL);
        return sd_bus_reply_method_return(msg, NULL);
}

int method_add_peer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *uri = NULL;
        uid_t uid = (uid_t) -1;

        int r = method_add_peer_impl(msg, m, error);
        if (r >= 0)
                return r;
        /* As CreateKey: a refusal names the URI only for admins, whose mistakes are worth reading; a
         * non-admin's choice of text must not defeat the aggregation of refusals. */
        (void) sd_bus_message_rewind(msg, true);
        if (caller_get_creds(m->creds_cache, msg, &uid, NULL) >= 0 && manager_uid_is_admin(m, uid))
                (void) sd_bus_message_read(msg, "s", &uri);
        return bus_audit_refused(m, msg, "peer_add", uri, NULL, r, error);
}

/* ---- RemovePeer ----------------------------------------------------------------------------- */

static int method_remove_peer_impl(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        _cleanup_(peer_freep) Peer *removed = NULL;
        const char *uri;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        int r;

        r = sd_bus_message_read(msg, "s", &uri);
        if (r < 0)
                return r;
        r = authorize_admin(m, msg, "remove peers", &uid, &pid, error);
        if (r < 0)
                return r;
        r = peer_registry_remove(m->peers, uri, &removed);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "No approved peer '%.*s'",
                                         bus_quote_len(uri, 300), uri);
        if (r < 0)
                return r;
        /* Children of its tokens still queued, held or being signed must not be handed out now
         * (worker.c, bus-key.c sign_done, bus-policy.c Approve). Counted before the save: a failed
         * save only sends some callers back to ask again. */
        atomic_fetch_add(&m->peers_removed, 1);

        r = peer_registry_save(m->peers, m->state_fd, PEERS_FILE);
        if (r < 0) {
                /* Still trusted after a restart, so still trusted now: put it back. */
                int k = peer_registry_restore(m->peers, TAKE_PTR(removed));
                if (k < 0)
                        log_error_errno(k, "Restoring peer '%s' in memory failed; it stays in %s until the next "
                                        "change: %m", uri, PEERS_FILE);
                log_error_errno(r, "Saving the peer registry failed; peer '%s' was not removed: %m", uri);
                audit_peer(m, "peer_remove", false, uid, pid, NULL, uri, strerror(-r));
                return sd_bus_error_setf(error, AGENTID_ERROR_STORAGE_FAILURE,
                                         "Saving the peer registry failed: %s", strerror(-r));
        }
        log_info("Peer '%s' removed by uid %u.", uri, uid);
        audit_peer(m, "peer_remove", true, uid, pid, removed, uri, NULL);
        return sd_bus_reply_method_return(msg, NULL);
}

int method_remove_peer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *uri = NULL;
        uid_t uid = (uid_t) -1;

        int r = method_remove_peer_impl(msg, m, error);
        if (r >= 0)
                return r;
        (void) sd_bus_message_rewind(msg, true);
        if (caller_get_creds(m->creds_cache, msg, &uid, NULL) >= 0 && manager_uid_is_admin(m, uid))
                (void) sd_bus_message_read(msg, "s", &uri);
        return bus_audit_refused(m, msg, "peer_remove", uri, NULL, r, error);
}

/* ---- ListPeers ------------------------------------------------------------------------------ */

int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sayay)");
        for (size_t i = 0; r >= 0 && i < peer_registry_size(m->peers); i++) {
                const Peer *p = peer_registry_get(m->peers, i);
                r = sd_bus_message_open_container(reply, 'r', "sayay");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", p->uri);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', p->spki_der, p->spki_size);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', p->kid, p->has_kid ? PEER_KID_SIZE : 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- a parent token from another host ------------------------------------------------------- */

int bus_peers_verify_parent(Manager *m, const uint8_t kid[PEER_KID_SIZE], const uint8_t *token, size_t size,
                            TokenVerified **ret, sd_bus_error *error) {
        _cleanup_(token_verified_freep) TokenVerified *parent = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        const char *reason = NULL;
        const Peer *peer;
        int r;

        /* Which key to verify with: the peer registered with this kid, else the peer the token
         * claims as its issuer. The claim is read before the signature is checked, so it only picks
         * a key; it means something once that key verified the token, and is compared again then. */
        peer = peer_registry_find_by_kid(m->peers, kid);
        if (!peer) {
                _cleanup_free_ char *iss = NULL;
                r = peer_token_peek_issuer(token, size, &iss);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0)
                        peer = peer_registry_find_by_uri(m->peers, iss);
        }
        if (!peer)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "parent_token was issued neither by a key of this host nor by an approved peer");

        const unsigned char *p = peer->spki_der;
        pkey = d2i_PUBKEY(NULL, &p, (long) peer->spki_size);
        if (!pkey)
                return -ENOMEM; /* the registry holds only keys that decoded before */
        r = token_verify(token, size, pkey, &parent, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "parent_token does not verify with the key of peer '%s': %s", peer->uri,
                                         reason ?: strerror(-r));
        /* As for a local key: the signature proves which key signed, the iss claim must be the URI the
         * key was approved for — a peer cannot speak for another peer, nor for a key of this host. */
        if (!streq(parent->claims.iss, peer->uri))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "parent_token claims issuer '%.256s' but was signed by the key of peer '%s'",
                                         parent->claims.iss, peer->uri);
        if (peer->has_kid && memcmp(parent->kid, peer->kid, PEER_KID_SIZE) != 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "parent_token's kid is not the TPM Name approved for peer '%s'", peer->uri);
        *ret = TAKE_PTR(parent);
        return 0;
}

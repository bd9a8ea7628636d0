/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.agentid1.Key: one object per key that has not been destroyed, found through a fallback vtable
 * under /org/agentid1/key. Handlers follow one shape: read and bound the arguments, check the key's
 * state, authorise on the bus-reported euid (and the executable for pinned keys), queue the TPM work,
 * and answer when the worker is done.
 */

#include <time.h>
#include <unistd.h>

#include <limits.h>
#include <systemd/sd-login.h>

#include "attest/evidence.h"
#include "attest/token.h"
#include "common/crypto-util.h"
#include "config.h"
#include "common/log.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"
#include "dbus/worker.h"


static int key_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                           sd_bus_error *error) {
        Manager *d = userdata;
        _cleanup_free_ char *name = NULL;

        int r = sd_bus_path_decode(path, AGENTID_KEY_PREFIX, &name);
        if (r <= 0)
                return 0;
        Key *k = manager_find_key(d, name);
        if (!k || !k->exported)
                return 0;
        *found = k;
        return 1;
}

static int key_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *d = userdata;
        size_t n = 0, i = 0;
        void *v;

        char **list = calloc(hashmap_size(d->keys) + 1, sizeof(char *));
        if (!list)
                return -ENOMEM;
        while (hashmap_iterate(d->keys, &i, &v)) {
                Key *k = v;
                if (!k->exported)
                        continue;
                char path_buf[KEY_PATH_SIZE];
                list[n] = strdup(key_path(k, path_buf));
                if (!list[n]) {
                        for (size_t j = 0; j < n; j++)
                                free(list[j]);
                        free(list);
                        return -ENOMEM;
                }
                n++;
        }
        *nodes = list;
        return 1;
}

/* ---- properties ----------------------------------------------------------------------------- */

static int prop_string(sd_bus_message *reply, const char *s) {
        return sd_bus_message_append(reply, "s", s ?: "");
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Key *k = userdata;
        const KeyRecord *r = k->record;

        if (streq(property, "Name"))
                return prop_string(reply, r->name);
        if (streq(property, "Owner"))
                return prop_string(reply, r->owner);
        if (streq(property, "Description"))
                return prop_string(reply, r->description);
        if (streq(property, "Uid"))
                return sd_bus_message_append(reply, "u", r->uid);
        if (streq(property, "Uri")) {
                char uri[KEY_URI_SIZE];
                return prop_string(reply, key_uri(k, uri));
        }
        if (streq(property, "Algorithm"))
                return prop_string(reply, "ES256");
        if (streq(property, "PublicKey")) {
                KeyPublic pub;
                bool known = key_public(k, &pub) >= 0; /* tombstones have none */
                return sd_bus_message_append_array(reply, 'y', pub.der, known ? sizeof(pub.der) : 0);
        }
        if (streq(property, "TpmName"))
                return sd_bus_message_append_array(reply, 'y', r->kid, KEY_KID_SIZE);
        if (streq(property, "ExeDigest"))
                return sd_bus_message_append_array(reply, 'y', r->exe_sha256, r->has_exe_digest ? KEY_EXE_DIGEST_SIZE : 0);
        if (streq(property, "NamedTasksOnly"))
                return sd_bus_message_append(reply, "b", r->named_tasks_only);
        if (streq(property, "CreatedAt"))
                return sd_bus_message_append(reply, "t", r->created * USEC_PER_SEC);
        if (streq(property, "NotAfter"))
                return sd_bus_message_append(reply, "t", r->not_after * USEC_PER_SEC);
        if (streq(property, "State"))
                return prop_string(reply, key_status_to_string(key_status(k, (uint64_t) time(NULL))));
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property '%s'", property);
}

/* ---- shared checks -------------------------------------------------------------------------- */

/* A key is used only by its uid, with the pinned executable if it has one (DESIGN §3). */
int bus_key_authorize_use(Manager *d, sd_bus_message *m, Key *k, uid_t *ret_uid, pid_t *ret_pid,
                          sd_bus_error *error) {
        uid_t euid;
        pid_t pid = 0;
        int r;

        r = caller_get_creds(d->creds_cache, m, &euid, &pid);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (euid != k->record->uid)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Key '%s' may only be used by uid %u", k->record->name, k->record->uid);

        if (k->record->has_exe_digest) {
                uint8_t digest[32];
                r = caller_exe_digest(d->exe_cache, pid, euid, digest);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Cannot measure the caller's executable for pinned key '%s': %s",
                                                 k->record->name, strerror(-r));
                if (!memeq_secret(digest, k->record->exe_sha256, sizeof(digest)))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Key '%s' is pinned to another executable", k->record->name);
        }
        *ret_uid = euid;
        *ret_pid = pid;
        return 0;
}

typedef struct SignContext {
        char *task_id;
        char *parent_task_id;
        char *audience;
} SignContext;

static void sign_context_done(SignContext *c) {
        free(c->task_id);
        free(c->parent_task_id);
        free(c->audience);
}

static int read_sign_context(sd_bus_message *m, SignContext *c, sd_bus_error *error) {
        BusOption options[] = {
                { .name = "task_id", .type = BUS_OPTION_STRING, .ret = &c->task_id, .max = CONTEXT_ID_MAX, .printable = true },
                { .name = "parent_task_id", .type = BUS_OPTION_STRING, .ret = &c->parent_task_id, .max = CONTEXT_ID_MAX, .printable = true },
                { .name = "audience", .type = BUS_OPTION_STRING, .ret = &c->audience, .max = AUDIENCE_MAX, .printable = true },
        };
        return bus_read_options(m, options, ELEMENTSOF(options), error);
}

/* ---- Sign / SignMessage --------------------------------------------------------------------- */

/* A task's signer and context: the task must be running, its ID is the context's task (given or not),
 * and an audience must be one of its audiences. */
static int task_check_context(Task *task, SignContext *ctx, const char *audience, sd_bus_error *error) {
        if (atomic_load(&task->ended))
                return bus_error_setf_errno(error, -EKEYREVOKED, "Task '%s' ended", task->task_id);
        if (ctx && ctx->task_id && !streq(ctx->task_id, task->task_id))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "This is task '%s'; 'task_id' must be it",
                                         task->task_id);
        if (ctx && ctx->parent_task_id && !streq_ptr(ctx->parent_task_id, task->parent_task_id))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "'parent_task_id' must be the task's own parent task");
        if (ctx && !ctx->task_id) {
                ctx->task_id = strdup(task->task_id);
                if (!ctx->task_id || (task->parent_task_id && !ctx->parent_task_id &&
                                      !(ctx->parent_task_id = strdup(task->parent_task_id))))
                        return -ENOMEM;
        }
        if (audience && task->n_audiences > 0 && !strv_contains(task->audiences, audience))
                return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_DENIED,
                                         "Task '%s' may only address its audiences; '%.64s' is not one of them",
                                         task->task_id, audience);
        return 0;
}

static int method_sign_common(sd_bus_message *m, Key *k, Task *task, bool message, sd_bus_error *error) {
        Manager *d = k->manager;
        _cleanup_(sign_context_done) SignContext ctx = {};
        _cleanup_(job_freep) Job *j = NULL;
        const void *data;
        size_t size;
        uint8_t shown[32];       /* what a reviewer sees: the digest, or SHA-256 of the payload */
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        Client *client;
        int r;

        if (d->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");

        r = sd_bus_message_read_array(m, 'y', &data, &size);
        if (r < 0)
                return r;
        if (!message && size != KEYSTORE_DIGEST_SIZE)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The digest must be 32 bytes (SHA-256), got %zu", size);
        if (message && size > SIGN_MESSAGE_PAYLOAD_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The payload is larger than %u bytes",
                                         SIGN_MESSAGE_PAYLOAD_MAX);
        r = read_sign_context(m, &ctx, error);
        if (r < 0)
                return r;
        if (task) {
                r = task_check_context(task, &ctx, ctx.audience, error);
                if (r < 0)
                        return r;
        }

        r = key_check_usable(k, error);
        if (r < 0)
                return r;
        r = bus_key_authorize_use(d, m, k, &uid, &pid, error);
        if (r < 0)
                return r;

        r = manager_client_for_message(d, m, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_SIGN, m, client, uid, k);
        if (!j)
                return -ENOMEM;
        j->task = task_ref(task);
        const uint8_t *kid = task ? task->kid : k->record->kid;

        if (message) {
                /* DESIGN §5: protected header {1: -7, 4: kid, 15: {6: iat, 3: aud, task ids}}. */
                CoseClaims claims = {
                        .iat = (uint64_t) time(NULL),
                        .aud = ctx.audience,
                        .task_id = ctx.task_id,
                        .parent_task_id = ctx.parent_task_id,
                };
                r = job_prepare_cose(j, kid, &claims, data, size);
                if (r < 0)
                        return bus_error_setf_errno(error, r, "Cannot encode the message: %s", strerror(-r));
                r = sha256(data, size, shown);
                if (r < 0)
                        return r;
        } else {
                memcpy(j->digest, data, KEYSTORE_DIGEST_SIZE);
                memcpy(shown, data, sizeof(shown));
        }

        PolicyCall call = {
                .action = message ? POLICY_ACTION_SIGN_MESSAGE : POLICY_ACTION_SIGN,
                .key = k->name,
                .kid = kid,
                .uid = uid,
                .pid = pid,
                .task_id = ctx.task_id,
                .parent_task_id = ctx.parent_task_id,
                .audience = ctx.audience,
                .digest = shown,
        };
        return bus_policy_submit(d, m, &j, &call, error);
}

/* Every refusal of a key method is audited (bus_audit_refused) under the action's policy word. */
static int audited(Key *k, sd_bus_message *m, PolicyAction action, int r, sd_bus_error *error) {
        return bus_audit_refused(k->manager, m, policy_action_to_string(action), k->name, k->record->kid, r, error);
}

int bus_key_sign(sd_bus_message *m, Key *k, Task *task, bool message, sd_bus_error *error) {
        return audited(k, m, message ? POLICY_ACTION_SIGN_MESSAGE : POLICY_ACTION_SIGN,
                       method_sign_common(m, k, task, message, error), error);
}

static int method_sign(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_key_sign(m, userdata, NULL, false, error);
}

static int method_sign_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_key_sign(m, userdata, NULL, true, error);
}

static void sign_done(Job *j) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t size = 0;
        int r;

        if (j->result < 0) {
                /* The TPM says the task key is gone (a TPM Reset) or past its TPM-clock limit: the
                 * task is over, whatever the wall clock says. */
                if (j->task && j->task_key_gone && !atomic_load(&j->task->ended))
                        task_end(j->task, j->result == -EKEYREVOKED ? "the task key is gone (TPM reset)" :
                                                                       "the TPM clock passed the task key's limit",
                                 geteuid());
                if (j->result == -ECANCELED)
                        return; /* the caller is gone; nobody to answer */
                log_full_errno(j->result == -EKEYREVOKED ? LOG_DEBUG : LOG_ERR, j->result,
                               "Signing with key '%s' failed: %s", j->key->record->name, j->error);
                (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        /* The worker checked the parent's peer before signing; a RemovePeer answered while the TPM
         * signed must win too (both run on this thread, so nothing slips between). */
        if (j->peer_parent && atomic_load(&j->key->manager->peers_removed) != j->peers_removed) {
                erase(j->signature, sizeof(j->signature));
                (void) bus_reply_errno(j->call, -EKEYREVOKED,
                                       "An approved peer was removed while the request waited; ask again");
                return;
        }

        if (j->cose)
                r = cose_sign1_finish(j->cose, j->signature, &out, &size);
        else
                r = ecdsa_raw_to_der(j->signature, 32, &out, &size);
        if (r < 0) {
                log_error_errno(r, "Encoding a signature failed: %m");
                (void) bus_reply_errno(j->call, r, "Encoding the signature failed");
                return;
        }

        r = bus_reply_bytes(j->call, out, size);
        if (r < 0)
                log_warning_errno(r, "Sending a signature reply failed, ignoring: %m");
}

/* ---- IssueToken ----------------------------------------------------------------------------- */

typedef struct TokenRequest {
        char *audience, *task_id, *parent_task_id;
        char **scope;
        uint64_t ttl;
        uint8_t *parent_token;
        size_t parent_token_size;
} TokenRequest;

static void token_request_done(TokenRequest *t) {
        free(t->audience);
        free(t->task_id);
        free(t->parent_task_id);
        strv_free(t->scope);
        free(t->parent_token);
}

int scope_join(char **scope, char **ret) {
        size_t len = 0;

        *ret = NULL;
        if (!scope || !scope[0])
                return 0;
        for (char **i = scope; *i; i++)
                len += strlen(*i) + 1;
        char *s = malloc(len);
        if (!s)
                return -ENOMEM;
        s[0] = 0;
        for (char **i = scope; *i; i++) {
                if (i != scope)
                        strcat(s, " ");
                strcat(s, *i);
        }
        *ret = s;
        return 0;
}

/* An active key of this host whose TPM Name is kid, or NULL. */
static Key *find_key_by_kid(Manager *d, const uint8_t kid[KEY_KID_SIZE]) {
        size_t i = 0;
        void *v;

        while (hashmap_iterate(d->keys, &i, &v)) {
                Key *k = v;
                if (k->record->state == KEY_STATE_ACTIVE && memcmp(k->record->kid, kid, KEY_KID_SIZE) == 0)
                        return k;
        }
        return NULL;
}

/*
 * Delegation (DESIGN §5 "Task token"): the parent must be a token of an active key of this host or of
 * an approved peer (bus-peers.c), addressed to this key (aud = our URI) and valid now. The child
 * inherits the task, may only narrow the scope, must not outlive the parent, and records the parent
 * in its hops. *ret_issuer is the local key that signed the parent, NULL for a peer's; either way the
 * parent's iss is then the URI of the key that signed it.
 */
static int check_parent_token(Manager *d, Key *k, const TokenRequest *t, uint64_t now, TokenVerified **ret,
                              Key **ret_issuer, sd_bus_error *error) {
        _cleanup_(token_verified_freep) TokenVerified *parent = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        uint8_t kid[TOKEN_KID_SIZE];
        char uri[KEY_URI_SIZE];
        const char *reason = NULL;
        int r;

        r = token_peek_kid(t->parent_token, t->parent_token_size, kid, &reason);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "parent_token is not a token: %s",
                                         reason ?: strerror(-r));
        Key *issuer = find_key_by_kid(d, kid);
        if (issuer) {
                if (key_status(issuer, now) != KEY_STATUS_ACTIVE || atomic_load(&issuer->refusing))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "parent_token's key '%s' is not active (destroyed, expired or unusable)",
                                                 issuer->record->name);
                KeyPublic pub;
                r = key_public(issuer, &pub);
                if (r >= 0)
                        r = p256_pkey_from_xy(pub.x, pub.y, &pkey);
                if (r < 0)
                        return r;
                r = token_verify(t->parent_token, t->parent_token_size, pkey, &parent, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "parent_token does not verify: %s",
                                                 reason ?: strerror(-r));
                /* The signature proves which key signed, not what it claims to be: any holder of a key
                 * can sign a CWT naming another issuer (Key.Sign signs any digest). iss must be the
                 * signer's. */
                if (!streq(parent->claims.iss, key_uri(issuer, uri)))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "parent_token claims issuer '%.256s' but was signed by key '%s'",
                                                 parent->claims.iss, issuer->record->name);
        } else {
                /* Not a key of this host: an approved peer's (the same iss rule, checked there). */
                r = bus_peers_verify_parent(d, kid, t->parent_token, t->parent_token_size, &parent, error);
                if (r < 0)
                        return r;
        }

        const TokenClaims *p = &parent->claims;
        for (size_t i = 0; i < p->n_hops; i++) {
                if (memcmp(p->hops[i].cti, p->cti, TOKEN_CTI_SIZE) == 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "parent_token's hops repeat it");
                for (size_t j = i + 1; j < p->n_hops; j++)
                        if (memcmp(p->hops[i].cti, p->hops[j].cti, TOKEN_CTI_SIZE) == 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "parent_token's hops repeat a token");
        }
        if (!streq(p->aud, key_uri(k, uri)))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "parent_token is addressed to '%.256s', not to this key (%s)", p->aud, uri);
        if (now < p->nbf || now >= p->exp)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "parent_token is not valid now");
        if (p->n_hops >= TOKEN_HOPS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "parent_token already has %u hops; a token carries at most %u",
                                         TOKEN_HOPS_MAX, TOKEN_HOPS_MAX);
        if (t->task_id && !streq(t->task_id, p->task_id))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "A delegated token inherits the task '%s'", p->task_id);
        if (t->parent_task_id && !streq_ptr(t->parent_task_id, p->parent_task_id))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "A delegated token inherits the parent task of its parent token");
        *ret = TAKE_PTR(parent);
        *ret_issuer = issuer;
        return 0;
}

static int method_issue_token_impl(sd_bus_message *m, Key *k, Task *task, sd_bus_error *error) {
        Manager *d = k->manager;
        _cleanup_(token_request_done) TokenRequest t = {};
        _cleanup_(token_verified_freep) TokenVerified *parent = NULL;
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_free_ char *scope = NULL;
        _cleanup_free_ TokenHop *hops = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        char uri[KEY_URI_SIZE];
        uint64_t now = (uint64_t) time(NULL);
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        Key *issuer = NULL;
        Client *client;
        int r;

        if (d->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        BusOption options[] = {
                { .name = "audience", .type = BUS_OPTION_STRING, .ret = &t.audience, .max = AUDIENCE_MAX, .printable = true },
                { .name = "task_id", .type = BUS_OPTION_STRING, .ret = &t.task_id, .max = CONTEXT_ID_MAX, .printable = true },
                { .name = "parent_task_id", .type = BUS_OPTION_STRING, .ret = &t.parent_task_id, .max = CONTEXT_ID_MAX, .printable = true },
                { .name = "scope", .type = BUS_OPTION_STRV, .ret = &t.scope, .max = TOKEN_SCOPES_MAX },
                { .name = "ttl", .type = BUS_OPTION_UINT64, .ret = &t.ttl },
                { .name = "parent_token", .type = BUS_OPTION_BYTES, .ret = &t.parent_token, .max = TOKEN_MAX },
        };
        r = bus_read_options(m, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        t.parent_token_size = options[5].size;
        if (!t.audience)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option 'audience' is required");
        if (!options[4].present)
                t.ttl = TOKEN_TTL_DEFAULT;
        if (t.ttl == 0 || t.ttl > KEY_TTL_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option 'ttl' must be 1..%llu seconds",
                                         KEY_TTL_MAX);
        for (char **i = t.scope; i && *i; i++)
                if (strchr(*i, ' ') || !token_scope_is_valid(*i))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Invalid scope token '%.*s' (printable ASCII; no space, quote or "
                                                 "backslash)", bus_quote_len(*i, 64), *i);
        r = scope_join(t.scope, &scope);
        if (r < 0)
                return r;
        if (scope && !token_scope_is_valid(scope))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'scope' must be 1..%u distinct scope tokens (printable ASCII, no "
                                         "space, quote or backslash)", TOKEN_SCOPES_MAX);

        if (task) {
                /* A task's tokens carry its credential; they stay inside the task's task, audiences,
                 * scope and lifetime, and do not delegate (the credential is the chain). */
                if (t.parent_token)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "A task's tokens cannot take a parent_token");
                SignContext tctx = { .task_id = t.task_id, .parent_task_id = t.parent_task_id };
                r = task_check_context(task, &tctx, t.audience, error);
                t.task_id = tctx.task_id;
                t.parent_task_id = tctx.parent_task_id;
                if (r < 0)
                        return r;
                if (scope && !token_scope_is_subset(scope, task->scope))
                        return sd_bus_error_setf(error, AGENTID_ERROR_POLICY_DENIED,
                                                 "Task '%s' may only narrow its scope ('%s')", task->task_id,
                                                 task->scope);
                if (!scope && task->scope && !(scope = strdup(task->scope)))
                        return -ENOMEM;
                if (now + t.ttl > task->not_after)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "The token would outlive task '%s'; ask for a ttl of at most %llu s",
                                                 task->task_id,
                                                 (unsigned long long) (task->not_after > now ? task->not_after - now : 0));
        }
        r = key_check_usable(k, error);
        if (r < 0)
                return r;
        r = bus_key_authorize_use(d, m, k, &uid, &pid, error);
        if (r < 0)
                return r;

        uint64_t exp = now + t.ttl;
        if (k->record->not_after && exp > k->record->not_after)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The token would outlive key '%s' (NotAfter %llu); ask for a ttl of at most %llu s",
                                         k->record->name, (unsigned long long) k->record->not_after,
                                         (unsigned long long) (k->record->not_after > now ? k->record->not_after - now : 0));

        size_t n_hops = 0;
        if (t.parent_token) {
                r = check_parent_token(d, k, &t, now, &parent, &issuer, error);
                if (r < 0)
                        return r;
                const TokenClaims *p = &parent->claims;
                if (exp > p->exp)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "The token would outlive its parent; ask for a ttl of at most %llu s",
                                                 (unsigned long long) (p->exp - now));
                if (scope && !token_scope_is_subset(scope, p->scope))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "A delegated token may only narrow its parent's scope ('%s')",
                                                 p->scope ?: "");
                if (!scope && p->scope) {
                        scope = strdup(p->scope);
                        if (!scope)
                                return -ENOMEM;
                }
                /* child.hops = parent.hops || [[parent.iss, parent.cti, parent.kid]] */
                n_hops = p->n_hops + 1;
                hops = calloc(n_hops, sizeof(TokenHop));
                if (!hops)
                        return -ENOMEM;
                if (p->n_hops > 0)
                        memcpy(hops, p->hops, p->n_hops * sizeof(TokenHop));
                hops[p->n_hops].iss = p->iss; /* checked: the URI of the key that signed it */
                memcpy(hops[p->n_hops].cti, p->cti, TOKEN_CTI_SIZE);
                memcpy(hops[p->n_hops].kid, parent->kid, TOKEN_KID_SIZE);
        } else if (!t.task_id)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'task_id' is required (a token belongs to a task)");

        TokenClaims claims = {
                .iss = key_uri(k, uri),
                .aud = t.audience,
                .exp = exp,
                .nbf = now,
                .iat = now,
                .scope = scope,
                .task_id = parent ? parent->claims.task_id : t.task_id,
                .parent_task_id = parent ? parent->claims.parent_task_id : t.parent_task_id,
                .owner = k->record->owner,
                .hops = hops,
                .n_hops = n_hops,
                .credential = task ? task->credential : NULL,
                .credential_size = task ? task->credential_size : 0,
        };
        r = random_bytes(claims.cti, sizeof(claims.cti));
        if (r >= 0)
                r = token_claims_encode(&claims, &payload, &payload_size);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Encoding the token failed: %s", strerror(-r));

        r = manager_client_for_message(d, m, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_SIGN, m, client, uid, k);
        if (!j)
                return -ENOMEM;
        j->task = task_ref(task);
        r = job_prepare_cose(j, task ? task->kid : k->record->kid, NULL, payload, payload_size);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Encoding the token failed: %s", strerror(-r));
        j->issuer = issuer ? key_ref(issuer) : NULL;
        j->peer_parent = parent && !issuer;
        j->peers_removed = atomic_load(&d->peers_removed);
        j->token_exp = exp;

        /* The scope tokens as policy sees them: the claim's, which a delegated token may inherit. */
        _cleanup_free_ const char **scopes = NULL;
        size_t n_scopes = 0;
        _cleanup_free_ char *scope_copy = scope ? strdup(scope) : NULL;
        if (scope) {
                if (!scope_copy)
                        return -ENOMEM;
                scopes = calloc(TOKEN_SCOPES_MAX + 1, sizeof(char *));
                if (!scopes)
                        return -ENOMEM;
                for (char *save = NULL, *tok = strtok_r(scope_copy, " ", &save); tok && n_scopes < TOKEN_SCOPES_MAX;
                     tok = strtok_r(NULL, " ", &save))
                        scopes[n_scopes++] = tok;
        }
        PolicyCall call = {
                .action = POLICY_ACTION_ISSUE_TOKEN,
                .key = k->name,
                .uid = uid,
                .pid = pid,
                .task_id = claims.task_id,
                .parent_task_id = claims.parent_task_id,
                .audience = t.audience,
                .digest = j->digest,
                .scopes = scopes,
                .n_scopes = n_scopes,
                .peer = parent ? parent->claims.iss : NULL,
                .ttl = t.ttl,
                .kid = task ? task->kid : k->record->kid,
                .scope = scope,
                .exp = exp,
                .cti = claims.cti,
        };
        return bus_policy_submit(d, m, &j, &call, error);
}

int bus_key_issue_token(sd_bus_message *m, Key *k, Task *task, sd_bus_error *error) {
        return audited(k, m, POLICY_ACTION_ISSUE_TOKEN, method_issue_token_impl(m, k, task, error), error);
}

static int method_issue_token(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_key_issue_token(m, userdata, NULL, error);
}

/* ---- Attest --------------------------------------------------------------------------------- */

/* What the caller runs, for the workload claims. Best effort: a process that cannot be measured
 * (gone, exec'd meanwhile) simply gets no exe claims; the pid and uid come from the bus. */
typedef struct Workload {
        bool has_exe;
        uint8_t exe_sha256[32];
        char exe_path[PATH_MAX];
        char *unit;
} Workload;

static void workload_done(Workload *w) {
        free(w->unit);
}

static void measure_workload(Manager *d, pid_t pid, uid_t euid, Workload *w) {
        char link[64];

        w->has_exe = caller_exe_digest(d->exe_cache, pid, euid, w->exe_sha256) >= 0;
        snprintf(link, sizeof(link), "/proc/%d/exe", (int) pid);
        ssize_t n = readlink(link, w->exe_path, sizeof(w->exe_path) - 1);
        w->exe_path[n > 0 ? n : 0] = 0;
        /* The unit comes from /proc/PID/cgroup; here it is a claim in the evidence (policy measures
         * it separately, with re-checks, when a rule looks at it). */
        if (sd_pid_get_unit(pid, &w->unit) < 0)
                w->unit = NULL;
}

static int method_attest_impl(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Key *k = userdata;
        Manager *d = k->manager;
        _cleanup_(sign_context_done) SignContext ctx = {};
        _cleanup_(workload_done) Workload w = {};
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0, nonce_size;
        const void *nonce;
        char uri[KEY_URI_SIZE];
        KeyPublic pub;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        Client *client;
        int r;

        if (d->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        r = sd_bus_message_read_array(m, 'y', &nonce, &nonce_size);
        if (r < 0)
                return r;
        if (nonce_size < EVIDENCE_NONCE_MIN || nonce_size > EVIDENCE_NONCE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The nonce must be %u..%u bytes, got %zu",
                                         EVIDENCE_NONCE_MIN, EVIDENCE_NONCE_MAX, nonce_size);
        BusOption options[] = {
                { .name = "task_id", .type = BUS_OPTION_STRING, .ret = &ctx.task_id, .max = CONTEXT_ID_MAX, .printable = true },
                { .name = "parent_task_id", .type = BUS_OPTION_STRING, .ret = &ctx.parent_task_id, .max = CONTEXT_ID_MAX, .printable = true },
        };
        r = bus_read_options(m, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        r = key_check_usable(k, error);
        if (r < 0)
                return r;

        /* The key's uid (with its pin), or an admin: evidence then names the admin as the caller. */
        r = caller_get_creds(d->creds_cache, m, &uid, &pid);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_uid_is_admin(d, uid)) {
                r = bus_key_authorize_use(d, m, k, &uid, &pid, error);
                if (r < 0)
                        return r;
        }
        measure_workload(d, pid, uid, &w);
        r = key_public(k, &pub);
        if (r < 0)
                return bus_error_setf_errno(error, -EMEDIUMTYPE, "Key '%s' has no readable public key", k->name);

        EatClaims claims = {
                .nonce = nonce,
                .nonce_size = nonce_size,
                .iat = (uint64_t) time(NULL),
                .sub = key_uri(k, uri),
                .x = pub.x,
                .y = pub.y,
                .owner = k->record->owner,
                .uid = k->record->uid,
                .created = k->record->created,
                .not_after = k->record->not_after,
                .workload = {
                        .exe_sha256 = w.has_exe ? w.exe_sha256 : NULL,
                        .exe_path = w.exe_path[0] ? w.exe_path : NULL,
                        .unit = w.unit,
                        .uid = (uint32_t) uid,
                        .pid = (uint32_t) pid,
                },
                .task_id = ctx.task_id,
                .parent_task_id = ctx.parent_task_id,
                .daemon = "agentidd " AGENTID_VERSION,
        };
        r = eat_claims_encode(&claims, &payload, &payload_size);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Encoding the claims failed: %s", strerror(-r));

        r = manager_client_for_message(d, m, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_ATTEST, m, client, uid, k);
        if (!j)
                return -ENOMEM;
        r = job_prepare_cose(j, k->record->kid, NULL, payload, payload_size);
        if (r < 0)
                return bus_error_setf_errno(error, r, "Encoding the claims failed: %s", strerror(-r));

        /* DESIGN §5: certify qualifyingData = SHA-256(nonce); quote extraData =
         * SHA-256(nonce || Name(K) || SHA-256(EAT payload)), so the AK vouches for every claim. */
        uint8_t payload_digest[32];
        r = sha256(nonce, nonce_size, j->certify_data);
        if (r >= 0)
                r = sha256(payload, payload_size, payload_digest);
        if (r >= 0) {
                const void *parts[] = { nonce, k->record->kid, payload_digest };
                const size_t sizes[] = { nonce_size, KEY_KID_SIZE, sizeof(payload_digest) };
                r = sha256_parts(parts, sizes, ELEMENTSOF(parts), j->quote_data);
        }
        if (r < 0)
                return r;

        PolicyCall call = {
                .action = POLICY_ACTION_ATTEST,
                .key = k->name,
                .kid = k->record->kid,
                .uid = uid,
                .pid = pid,
                .task_id = ctx.task_id,
                .parent_task_id = ctx.parent_task_id,
        };
        return bus_policy_submit(d, m, &j, &call, error);
}

static int method_attest(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return audited(userdata, m, POLICY_ACTION_ATTEST, method_attest_impl(m, userdata, error), error);
}

/* The TPM part of a finished attestation job, as the encoder wants it. */
void job_evidence_tpm(const Job *j, EvidenceTpm *ret) {
        const KeystoreEvidence *e = &j->evidence;
        *ret = (EvidenceTpm) {
                .key_pub = e->key_pub, .key_pub_size = e->key_pub_size,
                .certify = e->certify, .certify_size = e->certify_size,
                .certify_sig = e->certify_sig, .certify_sig_size = e->certify_sig_size,
                .quote = e->quote, .quote_size = e->quote_size,
                .quote_sig = e->quote_sig, .quote_sig_size = e->quote_sig_size,
                .pcrs = (const uint8_t (*)[32]) e->pcrs,
                .ak_pub = e->ak_pub, .ak_pub_size = e->ak_pub_size,
                .srk_name = e->srk_name,
        };
}

static void attest_done(Job *j) {
        _cleanup_free_ uint8_t *eat = NULL, *evidence = NULL;
        size_t eat_size = 0, size = 0;
        EvidenceTpm t;
        int r;

        if (j->result < 0) {
                if (j->result == -ECANCELED)
                        return;
                log_full_errno(j->result == -EKEYREVOKED ? LOG_DEBUG : LOG_ERR, j->result,
                               "Attesting key '%s' failed: %s", j->key->record->name, j->error);
                (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        job_evidence_tpm(j, &t);
        r = cose_sign1_finish(j->cose, j->signature, &eat, &eat_size);
        if (r >= 0)
                r = evidence_agent_encode(eat, eat_size, &t, &evidence, &size);
        if (r < 0) {
                log_error_errno(r, "Encoding evidence for '%s' failed: %m", j->key->record->name);
                (void) bus_reply_errno(j->call, r, "Encoding the evidence failed");
                return;
        }
        r = bus_reply_bytes(j->call, evidence, size);
        if (r < 0)
                log_warning_errno(r, "Sending evidence failed, ignoring: %m");
}

/* ---- Destroy and Rotate ------------------------------------------------------------------------ */

/* The shared front of Destroy and Rotate: the reason, and who may (DESIGN §3: admins always; a
 * "destroy"/"rotate" rule can extend it to the key's own uid only). */
static int key_change_prepare(sd_bus_message *m, Key *k, JobType type, Job **ret, PolicyCall *ret_call,
                              sd_bus_error *error) {
        Manager *d = k->manager;
        _cleanup_(job_freep) Job *j = NULL;
        const char *reason, *verb = type == JOB_DESTROY ? "destroy" : "rotate";
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        Client *client;
        int r;

        if (d->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        r = sd_bus_message_read(m, "s", &reason);
        if (r < 0)
                return r;
        if (!key_text_is_valid(reason, REASON_MAX, false))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The reason must be 1..%u bytes of text without control characters",
                                         REASON_MAX);

        r = caller_get_creds(d->creds_cache, m, &uid, &pid);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        bool admin = manager_uid_is_admin(d, uid);
        if (!admin && uid != k->record->uid)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Only administrators may %s keys", verb);
        /* Early, before the policy is asked; manager_submit() decides for good. */
        if (k->destroy_pending || k->deferred_destroy || (type == JOB_ROTATE && k->rotate_pending))
                return bus_error_setf_errno(error, -EBUSY, "Key '%s' is being destroyed or rotated", k->record->name);

        r = manager_client_for_message(d, m, &client, error);
        if (r < 0)
                return r;
        j = job_new(type, m, client, uid, k);
        if (!j)
                return -ENOMEM;
        j->reason = strdup(reason);
        if (!j->reason)
                return -ENOMEM;
        j->now = (uint64_t) time(NULL);
        j->agent_lane = type == JOB_ROTATE && !admin;

        *ret_call = (PolicyCall) {
                .action = type == JOB_DESTROY ? POLICY_ACTION_DESTROY : POLICY_ACTION_ROTATE,
                .key = k->name,
                .kid = k->record->kid,
                .uid = uid,
                .pid = pid,
                .reason = j->reason,
                .admin_exempt = admin,
                .extends_key_check = !admin,
        };
        *ret = TAKE_PTR(j);
        return 0;
}

static int method_destroy_impl(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Key *k = userdata;
        _cleanup_(job_freep) Job *j = NULL;
        PolicyCall call;
        int r;

        r = key_change_prepare(m, k, JOB_DESTROY, &j, &call, error);
        if (r < 0)
                return r;
        return bus_policy_submit(k->manager, m, &j, &call, error);
}

static int method_destroy(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return audited(userdata, m, POLICY_ACTION_DESTROY, method_destroy_impl(m, userdata, error), error);
}

static void destroy_done(Manager *d, Job *j) {
        Key *k = j->key;
        int r;

        k->destroy_pending = false;
        if (j->tombstone) {
                /* The worker destroyed a copy; from now on this thread's record is the tombstone. */
                key_record_free(k->record);
                k->record = TAKE_PTR(j->tombstone);
        }
        if (j->result < 0 && k->record->state != KEY_STATE_DESTROYED) {
                /* Fail closed: the key is on the revocation list and keeps refusing; agentidd destroys
                 * it on its own later (also after a restart). */
                log_error_errno(j->result, "Destroying key '%s' failed; it refuses use and is retried: %s",
                                k->record->name, j->error);
                bus_offboard_destroy_failed(d, k);
                if (j->call)
                        (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }

        /* The key is destroyed on disk. Take it off the bus before anyone hears about it. */
        char path[KEY_PATH_SIZE];
        (void) sd_bus_emit_object_removed(d->bus, key_path(k, path));
        k->exported = false;
        (void) sd_bus_emit_signal(d->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE, "KeyDestroyed", "sos",
                                  k->record->name, path, j->reason);
        (void) sd_bus_emit_properties_changed(d->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE, "KeyCount",
                                              NULL);
        log_info("Destroyed key '%s'.", k->record->name);
        bus_offboard_destroyed(d, k, j);

        if (!j->call)
                return;
        if (j->result < 0) {
                (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        r = bus_reply_bytes(j->call, j->receipt, j->receipt_size);
        if (r < 0)
                log_warning_errno(r, "Sending the receipt of '%s' failed, ignoring: %m", k->record->name);
}

static int method_rotate_impl(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Key *k = userdata;
        _cleanup_(job_freep) Job *j = NULL;
        PolicyCall call;
        int r;

        r = key_change_prepare(m, k, JOB_ROTATE, &j, &call, error);
        if (r < 0)
                return r;
        /* Only an active key has a successor: an expired one is offboarded, a destroyed one is gone. */
        r = key_check_usable(k, error);
        if (r < 0)
                return r;
        /* The old key must go on the revocation list; a full list refuses the rotation up front. */
        r = offboard_check_room(k->manager, k, j->reason);
        if (r < 0)
                return bus_error_setf_errno(error, r == -E2BIG ? -ENOSPC : r,
                                            "The revocation list has no room for the old key; destroy keys instead");
        return bus_policy_submit(k->manager, m, &j, &call, error);
}

static int method_rotate(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return audited(userdata, m, POLICY_ACTION_ROTATE, method_rotate_impl(m, userdata, error), error);
}

/* A Destroy accepted while the rotation ran goes to the worker now, on the current record. */
static void submit_deferred_destroy(Manager *d, Key *k) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Job *j = TAKE_PTR(k->deferred_destroy);

        if (!j)
                return;
        int r = manager_submit(d, j, &error);
        if (r >= 0)
                return;
        /* The key stays listed and refusing; agentidd destroys it on its own (bus-offboard.c). */
        if (j->call)
                (void) sd_bus_reply_method_error(j->call, &error);
        job_free(j);
}

static void rotate_done(Manager *d, Job *j) {
        Key *k = j->key;
        uint8_t old_kid[KEY_KID_SIZE], old_spki[32];
        int r;

        k->rotate_pending = false;
        if (j->result < 0) {
                atomic_store(&k->rotating, false);
                log_error_errno(j->result, "Rotating key '%s' failed; it stays as it was: %s", k->name, j->error);
                if (j->call)
                        (void) bus_reply_errno(j->call, j->result, j->error);
                submit_deferred_destroy(d, k);
                return;
        }

        memcpy(old_kid, k->record->kid, KEY_KID_SIZE);
        memcpy(old_spki, j->created->replaces->spki_sha256, sizeof(old_spki)); /* as run_rotate() hashed it */
        r = key_replace_record(k, j->created);
        if (r < 0) {
                /* On disk the new key is in place already; this copy cannot describe it. Unusable (not
                 * offboarded: that would tombstone the new record from the old one) until a restart. */
                log_error_errno(r, "Key '%s' was rotated but its new public key cannot be read; it is unusable "
                                "until agentidd restarts: %m", k->name);
                k->unusable = true;
        } else
                j->created = NULL; /* k's now */
        /* Order matters to the worker (run_sign): the record first, then the generation, then the flag. */
        atomic_fetch_add(&k->generation, 1);
        atomic_store(&k->rotating, false);
        log_info("Rotated key '%s': %s.", k->name, j->reason);
        /* Its tasks' credentials were signed by the old key, which is revoked now. */
        bus_tasks_end_for_key(d, k, "key rotated");

        (void) bus_offboard_rotated(d, k, old_kid, old_spki, j);
        char path[KEY_PATH_SIZE];
        (void) sd_bus_emit_properties_changed(d->bus, key_path(k, path), AGENTID_KEY_INTERFACE, "PublicKey",
                                              "TpmName", "CreatedAt", NULL);
        if (j->call) {
                r = bus_reply_bytes(j->call, j->receipt, j->receipt_size);
                if (r < 0)
                        log_warning_errno(r, "Sending the rotation statement of '%s' failed, ignoring: %m", k->name);
        }
        submit_deferred_destroy(d, k);
}

/* ---- vtable --------------------------------------------------------------------------------- */

static const sd_bus_vtable key_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Uid", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Uri", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Algorithm", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        /* Rotate replaces the TPM key behind the name. */
        SD_BUS_PROPERTY("PublicKey", "ay", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TpmName", "ay", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CreatedAt", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NotAfter", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get, 0, 0),
        SD_BUS_PROPERTY("Description", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ExeDigest", "ay", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("NamedTasksOnly", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Sign",
                                SD_BUS_ARGS("ay", digest, "a{sv}", context),
                                SD_BUS_RESULT("ay", signature),
                                method_sign,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SignMessage",
                                SD_BUS_ARGS("ay", payload, "a{sv}", context),
                                SD_BUS_RESULT("ay", cose_sign1),
                                method_sign_message,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("IssueToken",
                                SD_BUS_ARGS("a{sv}", request),
                                SD_BUS_RESULT("ay", token),
                                method_issue_token,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Attest",
                                SD_BUS_ARGS("ay", nonce, "a{sv}", context),
                                SD_BUS_RESULT("ay", evidence),
                                method_attest,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Destroy",
                                SD_BUS_ARGS("s", reason),
                                SD_BUS_RESULT("ay", receipt),
                                method_destroy,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartTask",
                                SD_BUS_ARGS("s", task_id, "a{sv}", options),
                                SD_BUS_RESULT("o", task, "ay", credential),
                                method_start_task,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Rotate",
                                SD_BUS_ARGS("s", reason),
                                SD_BUS_RESULT("ay", statement),
                                method_rotate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_key_register(Manager *d) {
        int r;

        r = sd_bus_add_fallback_vtable(d->bus, NULL, AGENTID_KEY_PREFIX, AGENTID_KEY_INTERFACE, key_vtable,
                                       key_object_find, d);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(d->bus, NULL, AGENTID_KEY_PREFIX, key_node_enumerator, d);
}

void bus_key_job_done(Manager *d, Job *j) {
        switch (j->type) {
        case JOB_SIGN:
                sign_done(j);
                break;
        case JOB_DESTROY:
                destroy_done(d, j);
                break;
        case JOB_ROTATE:
                rotate_done(d, j);
                break;
        case JOB_ATTEST:
                attest_done(j);
                break;
        default:
                break;
        }
}

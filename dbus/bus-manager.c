/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.agentid1.Manager at /org/agentid1: key management and status (DESIGN §3).
 */

#include <time.h>

#include "common/crypto-util.h"
#include "common/log.h"
#include "config.h"
#include "dbus/bus.h"
#include "dbus/bus-util.h"
#include "dbus/caller.h"
#include "dbus/errors.h"

static int method_create_key_impl(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_free_ char *owner = NULL, *description = NULL;
        _cleanup_free_ uint8_t *exe = NULL;
        const char *name;
        uint32_t key_uid = 0;
        uint64_t ttl = 0;
        bool named_tasks_only = false;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        Client *client;
        int r;

        if (m->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        BusOption options[] = {
                { .name = "owner", .type = BUS_OPTION_STRING, .ret = &owner, .max = KEY_OWNER_MAX },
                { .name = "uid", .type = BUS_OPTION_UINT32, .ret = &key_uid },
                { .name = "ttl", .type = BUS_OPTION_UINT64, .ret = &ttl },
                { .name = "description", .type = BUS_OPTION_STRING, .ret = &description, .max = KEY_DESCRIPTION_MAX },
                { .name = "exe_sha256", .type = BUS_OPTION_BYTES, .ret = &exe, .max = KEY_EXE_DIGEST_SIZE, .exact = true },
                { .name = "named_tasks_only", .type = BUS_OPTION_BOOL, .ret = &named_tasks_only },
        };
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;

        /* Who first: the refusal should not depend on (or reveal) which names exist. DESIGN §3: admins
         * always may; a "create" rule can extend it to non-admins, for keys of their own uid only. */
        r = caller_get_creds(m->creds_cache, msg, &uid, &pid);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        bool admin = manager_uid_is_admin(m, uid);
        if (!admin && (!m->policy || (options[1].present && key_uid != (uint32_t) uid)))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Only administrators may create keys%s",
                                         m->policy ? " for other uids" : "");

        if (!key_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid key name '%.*s' (allowed: [a-z0-9][a-z0-9._-]{0,63})",
                                         bus_quote_len(name, 80), name);
        if (!owner)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'owner' is required: every key has an accountable owner");
        if (!key_owner_is_valid(owner))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'owner' must be 1..%u bytes of text without control characters",
                                         KEY_OWNER_MAX);
        if (description && !key_description_is_valid(description))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'description' must be text without control characters");
        if (options[1].present && key_uid == UINT32_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option 'uid' is not a valid uid");
        if (options[2].present && (ttl == 0 || ttl > KEY_TTL_MAX))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'ttl' must be 1..%llu seconds", KEY_TTL_MAX);
        if (manager_find_key(m, name))
                return bus_error_setf_errno(error, -EEXIST, "A key named '%s' exists or existed; names are never reused",
                                            name);
        /* Names are never freed, so these limits are for good: LimitsExceeded, not Busy (retry). */
        if (hashmap_size(m->keys) >= KEYS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED, "The key limit (%u) is reached",
                                         KEYS_MAX);
        /* Self-service (a "create" rule) must never use up what admins need: names are never freed, so
         * non-admins get a quota per uid and stop short of the global limit. */
        if (!admin) {
                unsigned mine = 0;
                size_t i = 0;
                void *v;
                while (hashmap_iterate(m->keys, &i, &v))
                        mine += ((Key *) v)->record->uid == (uint32_t) uid;
                if (mine >= SELF_SERVICE_KEYS_PER_UID)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                 "uid %u has %u keys (destroyed ones included), the most a "
                                                 "non-administrator may create", uid, mine);
                if (hashmap_size(m->keys) >= KEYS_MAX - KEYS_ADMIN_RESERVE)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                 "The last %u key names are reserved for administrators",
                                                 KEYS_ADMIN_RESERVE);
        }

        r = manager_client_for_message(m, msg, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_CREATE, msg, client, uid, NULL);
        if (!j)
                return -ENOMEM;
        j->name = strdup(name);
        if (!j->name)
                return -ENOMEM;
        j->owner = TAKE_PTR(owner);
        j->description = TAKE_PTR(description);
        j->key_uid = options[1].present ? key_uid : (uint32_t) uid;
        j->not_after = ttl ? (uint64_t) time(NULL) + ttl : 0;
        j->named_tasks_only = named_tasks_only;
        if (exe) {
                j->has_exe_digest = true;
                memcpy(j->exe_sha256, exe, KEY_EXE_DIGEST_SIZE);
        }

        PolicyCall call = {
                .action = POLICY_ACTION_CREATE,
                .key = name,
                .uid = uid,
                .pid = pid,
                .admin_exempt = admin,
                .extends_key_check = !admin,
        };
        return bus_policy_submit(m, msg, &j, &call, error);
}

static int method_create_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name = NULL;
        uid_t uid = (uid_t) -1;

        int r = method_create_key_impl(msg, userdata, error);
        if (r >= 0)
                return r;
        /* The refusal's record names the key only for admins: the name is the caller's choice, and a
         * new one with each call would defeat the aggregation of refusals. */
        (void) sd_bus_message_rewind(msg, true);
        if (caller_get_creds(m->creds_cache, msg, &uid, NULL) >= 0 && manager_uid_is_admin(m, uid))
                (void) sd_bus_message_read(msg, "s", &name);
        return bus_audit_refused(m, msg, "create", name, NULL, r, error);
}

static void create_done(Manager *m, Job *j) {
        Key *k = NULL;
        int r;

        if (j->result < 0) {
                log_full_errno(j->result == -EEXIST ? LOG_INFO : LOG_ERR, j->result, "Creating key '%s' failed: %s",
                               j->name, j->error);
                (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }

        KeyRecord *rec = TAKE_PTR(j->created);
        r = manager_add_key(m, rec, &k);
        if (r < 0) {
                key_record_free(rec);
                log_error_errno(r, "Registering new key '%s' failed: %m", j->name);
                (void) bus_reply_errno(j->call, r, "Registering the new key failed; it appears after a restart");
                return;
        }
        k->exported = true;
        bus_offboard_key_changed(m); /* its NotAfter may be the next deadline */
        log_info("Created key '%s' (owner %s, uid %u) for uid %u.", rec->name, rec->owner, rec->uid, j->uid);

        char path[KEY_PATH_SIZE];
        (void) sd_bus_emit_object_added(m->bus, key_path(k, path));
        (void) sd_bus_emit_signal(m->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE, "KeyCreated", "so",
                                  rec->name, path);
        (void) sd_bus_emit_properties_changed(m->bus, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE, "KeyCount",
                                              NULL);
        r = sd_bus_reply_method_return(j->call, "o", path);
        if (r < 0)
                log_warning_errno(r, "Replying to CreateKey failed, ignoring: %m");
}

static int method_list_keys(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t now = (uint64_t) time(NULL);
        size_t i = 0;
        void *v;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sos)");
        if (r < 0)
                return r;
        while (hashmap_iterate(m->keys, &i, &v)) {
                Key *k = v;
                char path[KEY_PATH_SIZE];
                /* A destroyed key has no object any more: "/" stands for none. */
                r = sd_bus_message_append(reply, "(sos)", k->record->name, k->exported ? key_path(k, path) : "/",
                                          key_status_to_string(key_status(k, now)));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (!key_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid key name");
        Key *k = manager_find_key(m, name);
        if (!k)
                return bus_error_setf_errno(error, -ENOENT, "No key named '%s'", name);
        if (!k->exported)
                return bus_error_setf_errno(error, -EKEYREVOKED, "Key '%s' was destroyed", name);
        char path[KEY_PATH_SIZE];
        return sd_bus_reply_method_return(msg, "o", key_path(k, path));
}

static int method_get_attestation_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!m->ak_public)
                return sd_bus_error_setf(error, AGENTID_ERROR_TPM_FAILURE,
                                         "This host has no attestation key (see the agentidd log)");
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', m->ak_public, m->ak_public_size);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', m->ak_name, sizeof(m->ak_name));
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
        /* eks: (algorithm, EK public area, DER certificate or empty), the AK's parent first. */
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", "eks");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "a(sayay)");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sayay)");
        for (unsigned i = 0; i < m->n_eks && r >= 0; i++) {
                r = sd_bus_message_open_container(reply, 'r', "sayay");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", m->eks[i].type);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', m->eks[i].pub, m->eks[i].pub_size);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', m->eks[i].cert, m->eks[i].cert_size);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        for (int i = 0; i < 3 && r >= 0; i++)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}", "ak_parent", "s", m->ek_type);
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}", "host_id", "s", m->host_id);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_platform_evidence(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(job_freep) Job *j = NULL;
        const void *nonce;
        size_t nonce_size;
        uid_t uid = (uid_t) -1;
        Client *client;
        int r;

        if (m->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        r = sd_bus_message_read_array(msg, 'y', &nonce, &nonce_size);
        if (r < 0)
                return r;
        if (nonce_size < EVIDENCE_NONCE_MIN || nonce_size > EVIDENCE_NONCE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The nonce must be %u..%u bytes, got %zu",
                                         EVIDENCE_NONCE_MIN, EVIDENCE_NONCE_MAX, nonce_size);
        /* Anyone may ask, within a per-uid rate; the uid also picks the fair-share queue. */
        r = caller_get_creds(m->creds_cache, msg, &uid, NULL);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_rate_allow(m, uid))
                return sd_bus_error_setf(error, AGENTID_ERROR_RATE_LIMITED,
                                         "Platform evidence is limited to %.0f requests per second per uid (burst %.0f)",
                                         EVIDENCE_RATE_PER_SEC, EVIDENCE_RATE_BURST);
        r = manager_client_for_message(m, msg, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_PLATFORM, msg, client, uid, NULL);
        if (!j)
                return -ENOMEM;

        /* DESIGN §5: host certify qualifyingData = SHA-256(nonce); quote extraData =
         * SHA-256(nonce || Name(host key)). */
        const uint8_t *host_kid = m->host_kid;
        const void *parts[] = { nonce, host_kid };
        const size_t sizes[] = { nonce_size, KEY_KID_SIZE };
        r = sha256(nonce, nonce_size, j->certify_data);
        if (r >= 0)
                r = sha256_parts(parts, sizes, ELEMENTSOF(parts), j->quote_data);
        if (r < 0)
                return r;

        r = manager_submit(m, j, error);
        if (r < 0)
                return r;
        TAKE_PTR(j);
        return 1;
}

/* Enrollment (DESIGN §3): the verifier's MakeCredential output goes to TPM2_ActivateCredential with the
 * AK and the EK; the secret comes back only if the AK lives in the TPM that owns the EK. */
static int method_activate_credential(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_free_ char *ek = NULL;
        const void *blob, *secret;
        size_t blob_size, secret_size;
        uid_t uid = (uid_t) -1;
        Client *client;
        int r;

        if (m->stopping)
                return sd_bus_error_setf(error, AGENTID_ERROR_BUSY, "agentidd is shutting down");
        r = sd_bus_message_read_array(msg, 'y', &blob, &blob_size);
        if (r >= 0)
                r = sd_bus_message_read_array(msg, 'y', &secret, &secret_size);
        if (r < 0)
                return r;
        /* TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET are bounded by their TPM2B size fields. */
        if (blob_size < 2 || blob_size > CREDENTIAL_BLOB_MAX || secret_size < 2 || secret_size > ENCRYPTED_SECRET_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "credential_blob or encrypted_secret has an impossible size");
        BusOption options[] = {
                { .name = "ek", .type = BUS_OPTION_STRING, .ret = &ek, .max = 8 },
        };
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        if (ek && !streq(ek, m->ek_type))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The AK is under the %s EK, not '%.8s'", m->ek_type ?: "(none)", ek);

        r = caller_get_creds(m->creds_cache, msg, &uid, NULL);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        if (!manager_uid_is_admin(m, uid))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Only administrators may activate credentials");

        r = manager_client_for_message(m, msg, &client, error);
        if (r < 0)
                return r;
        j = job_new(JOB_ACTIVATE, msg, client, uid, NULL);
        if (!j)
                return -ENOMEM;
        if (memdup_sized(blob, blob_size, &j->credential_blob, &j->credential_blob_size) < 0 ||
            memdup_sized(secret, secret_size, &j->encrypted_secret, &j->encrypted_secret_size) < 0)
                return -ENOMEM;
        r = manager_submit(m, j, error);
        if (r < 0)
                return r;
        TAKE_PTR(j);
        return 1;
}

static void activate_done(Job *j) {
        if (j->result < 0) {
                log_warning_errno(j->result, "Credential activation failed: %s", j->error);
                (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        log_info("Credential activated for uid %u (AK enrollment).", j->uid);
        int r = bus_reply_bytes(j->call, j->activated, j->activated_size);
        if (r < 0)
                log_warning_errno(r, "Sending the activated secret failed, ignoring: %m");
}

static void platform_done(Job *j) {
        _cleanup_free_ uint8_t *evidence = NULL;
        size_t size = 0;
        EvidenceTpm t;
        int r;

        if (j->result < 0) {
                if (j->result == -ECANCELED)
                        return;
                log_error_errno(j->result, "Platform evidence failed: %s", j->error);
                (void) bus_reply_errno(j->call, j->result, j->error);
                return;
        }
        job_evidence_tpm(j, &t);
        r = evidence_platform_encode(&t, &evidence, &size);
        if (r < 0) {
                (void) bus_reply_errno(j->call, r, "Encoding the evidence failed");
                return;
        }
        r = bus_reply_bytes(j->call, evidence, size);
        if (r < 0)
                log_warning_errno(r, "Sending platform evidence failed, ignoring: %m");
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        if (streq(property, "Version"))
                return sd_bus_message_append(reply, "s", AGENTID_VERSION);
        if (streq(property, "TpmManufacturer"))
                return sd_bus_message_append(reply, "s", m->tpm_manufacturer);
        if (streq(property, "HostPublicKey"))
                return sd_bus_message_append_array(reply, 'y', m->host_public_der, m->host_public_der_size);
        if (streq(property, "KeyCount"))
                return sd_bus_message_append(reply, "u", manager_count_active_keys(m));
        if (streq(property, "QueueDepth"))
                return sd_bus_message_append(reply, "u", worker_queue_depth(m->worker));
        if (streq(property, "PolicyDigest"))
                return sd_bus_message_append_array(reply, 'y', m->policy ? policy_digest(m->policy) : NULL,
                                                   m->policy ? 32 : 0);
        if (streq(property, "ApprovalTimeout"))
                return sd_bus_message_append(reply, "t", m->approval_timeout_usec);
        if (streq(property, "RevocationSeq"))
                return sd_bus_message_append(reply, "t", m->revocations.seq);
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property '%s'", property);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TpmManufacturer", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostPublicKey", "ay", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("KeyCount", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("QueueDepth", "u", property_get, 0, 0),
        SD_BUS_PROPERTY("PolicyDigest", "ay", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ApprovalTimeout", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("RevocationSeq", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("CreateKey",
                                SD_BUS_ARGS("s", name, "a{sv}", options),
                                SD_BUS_RESULT("o", key),
                                method_create_key,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListKeys",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sos)", keys),
                                method_list_keys,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetKey",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("o", key),
                                method_get_key,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetAttestationKey",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("ay", ak_public, "ay", ak_name, "a{sv}", info),
                                method_get_attestation_key,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetPlatformEvidence",
                                SD_BUS_ARGS("ay", nonce),
                                SD_BUS_RESULT("ay", evidence),
                                method_get_platform_evidence,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ActivateCredential",
                                SD_BUS_ARGS("ay", credential_blob, "ay", encrypted_secret, "a{sv}", options),
                                SD_BUS_RESULT("ay", secret),
                                method_activate_credential,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("ListApprovals",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssa{sv})", requests),
                                method_list_approvals,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Approve",
                                SD_BUS_ARGS("s", request_id, "b", allow),
                                SD_BUS_NO_RESULT,
                                method_approve,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetAuditHead",
                                SD_BUS_ARGS("ay", nonce),
                                SD_BUS_RESULT("ay", head),
                                method_get_audit_head,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetRevocations",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("ay", revocations),
                                method_get_revocations,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddPeer",
                                SD_BUS_ARGS("s", uri, "ay", public_key, "a{sv}", options),
                                SD_BUS_NO_RESULT,
                                method_add_peer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemovePeer",
                                SD_BUS_ARGS("s", uri),
                                SD_BUS_NO_RESULT,
                                method_remove_peer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPeers",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sayay)", peers),
                                method_list_peers,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReloadPolicy",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                method_reload_policy,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("KeyCreated", SD_BUS_ARGS("s", name, "o", key), 0),
        SD_BUS_SIGNAL_WITH_ARGS("KeyDestroyed", SD_BUS_ARGS("s", name, "o", key, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("TaskEnded", SD_BUS_ARGS("s", key, "s", task_id, "o", task, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ApprovalRequested",
                                SD_BUS_ARGS("s", request_id, "s", key, "s", action, "a{sv}", context), 0),
        SD_BUS_VTABLE_END,
};

int bus_manager_register(Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(m->bus, NULL, AGENTID_MANAGER_PATH, AGENTID_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(m->bus, NULL, AGENTID_MANAGER_PATH);
}

void bus_manager_job_done(Manager *m, Job *j) {
        if (j->type == JOB_CREATE)
                create_done(m, j);
        else if (j->type == JOB_PLATFORM)
                platform_done(j);
        else if (j->type == JOB_ACTIVATE)
                activate_done(j);
}

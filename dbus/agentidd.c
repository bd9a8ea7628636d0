/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentidd: hardware-backed identities for AI agents, on D-Bus as org.agentid1.
 *
 * Start-up order: parse options, open the keystore (TPM, state directory, host key), load every key
 * record, hand the keystore to the TPM worker thread, register the bus objects, and only then take the
 * bus name, so no call can arrive before everything is ready. SIGTERM/SIGINT stop taking new work and
 * exit once every queued request has been answered; SIGHUP re-reads the configuration (today: the
 * admin group).
 */

#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "config.h"
#include "dbus/bus.h"
#include "dbus/caller.h"

static const char *arg_tcti;
static const char *arg_state_dir;
static const char *arg_admin_group;
static const char *arg_owner_auth_file;
static const char *arg_endorsement_auth_file;
static const char *arg_policy = AGENTID_DEFAULT_POLICY;
static bool arg_policy_explicit;
static uint64_t arg_approval_timeout = 20;
static uint64_t arg_audit_checkpoint_every = 1000;
static const char *arg_offboard_hooks = AGENTID_DEFAULT_OFFBOARD_HOOKS;
static uint64_t arg_hook_timeout = 30;
static bool arg_flush_stale_handles;
static bool arg_user;
static KeystoreEkType arg_ek = KEYSTORE_EK_RSA;

static void help(void) {
        printf("Usage: agentidd [OPTIONS]\n"
               "\n"
               "Hardware-backed identities for AI agents: TPM-resident signing keys served on D-Bus\n"
               "as " AGENTID_BUS_NAME ".\n"
               "\n"
               "Options:\n"
               "  --tcti=CONF                  TPM to use (env AGENTID_TCTI; default " AGENTID_DEFAULT_TCTI ")\n"
               "  --state-dir=DIR              State directory (default $STATE_DIRECTORY or\n"
               "                               " AGENTID_DEFAULT_STATE_DIR ")\n"
               "  --admin-group=GROUP          Members may create and destroy keys (root always may)\n"
               "  --policy=FILE                Policy (default " AGENTID_DEFAULT_POLICY "; may be\n"
               "                               missing: then no policy; empty: no policy)\n"
               "  --approval-timeout=SECONDS   How long a request waits for approval (1..300,\n"
               "                               default 20)\n"
               "  --audit-checkpoint-every=N   Sign an audit checkpoint every N records (default 1000;\n"
               "                               0: only at stop)\n"
               "  --offboard-hooks=DIR         Run the executables in DIR after a key is destroyed,\n"
               "                               rotated or expires (default " AGENTID_DEFAULT_OFFBOARD_HOOKS ";\n"
               "                               empty: none)\n"
               "  --hook-timeout=SECONDS       Kill a hook running longer (1..3600, default 30)\n"
               "  --owner-auth-file=FILE       Owner hierarchy password (default: credential owner-auth)\n"
               "  --endorsement-auth-file=FILE Endorsement hierarchy password (default: credential\n"
               "                               endorsement-auth)\n"
               "  --flush-stale-handles        Flush stale TPM objects and sessions at start (only for a TPM\n"
               "                               without resource manager that nothing else uses)\n"
               "  --ek=rsa|ecc                 Which endorsement key parents the attestation key\n"
               "                               (default rsa)\n"
               "  --user                       Serve on the session bus (development)\n"
               "  --log-level=LEVEL            debug, info, notice, warning, err (default info)\n"
               "  -h, --help                   Show this help\n"
               "      --version                Show the version\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_TCTI = 0x100,
                ARG_STATE_DIR,
                ARG_ADMIN_GROUP,
                ARG_POLICY,
                ARG_APPROVAL_TIMEOUT,
                ARG_AUDIT_CHECKPOINT_EVERY,
                ARG_OFFBOARD_HOOKS,
                ARG_HOOK_TIMEOUT,
                ARG_OWNER_AUTH,
                ARG_ENDORSEMENT_AUTH,
                ARG_FLUSH,
                ARG_USER,
                ARG_EK,
                ARG_LOG_LEVEL,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "approval-timeout", required_argument, NULL, ARG_APPROVAL_TIMEOUT },
                { "audit-checkpoint-every", required_argument, NULL, ARG_AUDIT_CHECKPOINT_EVERY },
                { "offboard-hooks", required_argument, NULL, ARG_OFFBOARD_HOOKS },
                { "hook-timeout", required_argument, NULL, ARG_HOOK_TIMEOUT },
                { "owner-auth-file", required_argument, NULL, ARG_OWNER_AUTH },
                { "endorsement-auth-file", required_argument, NULL, ARG_ENDORSEMENT_AUTH },
                { "flush-stale-handles", no_argument, NULL, ARG_FLUSH },
                { "user", no_argument, NULL, ARG_USER },
                { "ek", required_argument, NULL, ARG_EK },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c, level;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_TCTI:
                        arg_tcti = optarg;
                        break;
                case ARG_STATE_DIR:
                        arg_state_dir = optarg;
                        break;
                case ARG_ADMIN_GROUP:
                        arg_admin_group = optarg;
                        break;
                case ARG_POLICY:
                        arg_policy = optarg[0] ? optarg : NULL;
                        arg_policy_explicit = true;
                        break;
                case ARG_APPROVAL_TIMEOUT: {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        /* Capped: held evidence and messages carry the time they were asked for, and
                                 * verifiers accept evidence up to 300 s old by default. */
                        if (errno || end == optarg || *end || v < 1 || v > 300)
                                return log_error_errno(EINVAL, "Invalid --approval-timeout (1..300 seconds): %s",
                                                       optarg);
                        arg_approval_timeout = v;
                        break;
                }
                case ARG_AUDIT_CHECKPOINT_EVERY: {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || v > 1000000000ULL)
                                return log_error_errno(EINVAL, "Invalid --audit-checkpoint-every: %s", optarg);
                        arg_audit_checkpoint_every = v;
                        break;
                }
                case ARG_OFFBOARD_HOOKS:
                        arg_offboard_hooks = optarg;
                        break;
                case ARG_HOOK_TIMEOUT: {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || v < 1 || v > 3600)
                                return log_error_errno(EINVAL, "Invalid --hook-timeout (1..3600 seconds): %s", optarg);
                        arg_hook_timeout = v;
                        break;
                }
                case ARG_OWNER_AUTH:
                        arg_owner_auth_file = optarg;
                        break;
                case ARG_ENDORSEMENT_AUTH:
                        arg_endorsement_auth_file = optarg;
                        break;
                case ARG_FLUSH:
                        arg_flush_stale_handles = true;
                        break;
                case ARG_USER:
                        arg_user = true;
                        break;
                case ARG_EK:
                        level = keystore_ek_type_from_string(optarg);
                        if (level < 0)
                                return log_error_errno(EINVAL, "Invalid --ek (rsa or ecc): %s", optarg);
                        arg_ek = (KeystoreEkType) level;
                        break;
                case ARG_LOG_LEVEL:
                        level = log_level_from_string(optarg);
                        if (level < 0)
                                return log_error_errno(EINVAL, "Invalid --log-level: %s", optarg);
                        log_set_max_level(level);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("agentidd " AGENTID_VERSION "\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument: %s", argv[optind]);
        return 1;
}

/* A systemd credential (LoadCredential=) of that name, if the service has one. */
static char *credential_path(const char *name) {
        const char *dir = secure_getenv("CREDENTIALS_DIRECTORY");
        char *p = NULL;

        if (!dir || asprintf(&p, "%s/%s", dir, name) < 0)
                return NULL;
        if (access(p, F_OK) < 0)
                return mfree(p);
        return p;
}

static void report_bad_record(const char *file, int error, const char *reason, void *userdata) {
        log_warning("Skipping key record '%s': %s", file, reason);
}

/* Load every record into the key table; records that cannot be used are kept and reported. */
static int load_keys(Manager *m, Keystore *ks) {
        KeyRecord **all = NULL;
        size_t n = 0;
        int r;

        r = keystore_load_all(ks, report_bad_record, NULL, &all, &n);
        if (r < 0)
                return log_error_errno(r, "Reading key records failed: %m");

        for (size_t i = 0; i < n; i++) {
                Key *k = NULL;
                bool usable = all[i]->state != KEY_STATE_ACTIVE || keystore_key_check(ks, all[i]) >= 0;
                if (!usable)
                        log_warning("Key '%s' is unusable: %s", all[i]->name, keystore_last_error(ks));

                r = manager_add_key(m, all[i], &k);
                if (r < 0) {
                        log_error_errno(r, "Registering key '%s' failed: %m", all[i]->name);
                        key_record_free(all[i]);
                        continue;
                }
                k->unusable = k->unusable || !usable;
                k->exported = all[i]->state == KEY_STATE_ACTIVE;
        }
        free(all);
        log_info("Loaded %zu key record(s).", n);
        return 0;
}

/* The EK public areas and certificates for GetAttestationKey: the AK's parent first (it must be
 * there), then the other type if the TPM has one provisioned. */
static int load_eks(Manager *m, Keystore *ks) {
        KeystoreEkType parent = keystore_ek_type(ks);
        KeystoreEkType types[] = { parent, parent == KEYSTORE_EK_RSA ? KEYSTORE_EK_ECC : KEYSTORE_EK_RSA };

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                typeof(m->eks[0]) *e = &m->eks[m->n_eks];
                int r = keystore_ek_public(ks, types[i], &e->pub, &e->pub_size);
                if (r < 0) {
                        if (i == 0)
                                return log_error_errno(r, "%s", keystore_last_error(ks));
                        continue;
                }
                e->type = keystore_ek_type_to_string(types[i]);
                if (keystore_ek_certificate(ks, types[i], &e->cert, &e->cert_size) < 0)
                        log_notice("%s; verifiers must trust this EK by other means.", keystore_last_error(ks));
                m->n_eks++;
        }
        return 0;
}

static int on_jobs_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        for (Job *j = worker_take_done(m->worker), *next; j; j = next) {
                next = j->next;
                if (j->result == -EMEDIUMTYPE)
                        manager_storage_root_lost(m);
                bus_job_finished(m, j);
        }
        manager_maybe_exit(m);
        return 0;
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (!m->stopping) {
                log_info("Received %s; finishing key management in progress, refusing queued signing, then exiting.",
                         strsignal((int) si->ssi_signo));
                /* Every queued or held request gets an answer now rather than a killed process later. */
                worker_cancel_agent_lane(m->worker);
                bus_approvals_cancel_all(m);
                /* Task keys die with this process: end (and revoke) the tasks while all is running. */
                bus_tasks_end_all(m, "agentidd stopped");
        }
        m->stopping = true;
        manager_maybe_exit(m);
        return 0;
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Reloading configuration.");
        (void) manager_resolve_admin_group(m);
        (void) bus_policy_load(m, NULL);
        return 0;
}

static void manager_done(Manager *m) {
        /* Held requests hold jobs, which hold clients and keys: answer and free them first. */
        bus_approvals_cancel_all(m);
        bus_tasks_close(m);
        bus_offboard_close(m);
        bus_audit_close(m);
        /* The worker first: it finishes queued jobs, whose cleanup still needs the key table. */
        m->worker = worker_stop(m->worker);
        while (m->clients)
                manager_client_free(m, m->clients);
        if (m->keys) {
                size_t i = 0;
                void *v;
                while (hashmap_iterate(m->keys, &i, &v))
                        key_unref(v);
                m->keys = hashmap_free(m->keys);
        }
        m->policy = policy_free(m->policy);
        m->peers = peer_registry_free(m->peers);
        free(m->policy_path);
        m->exe_cache = exe_cache_free(m->exe_cache);
        m->creds_cache = creds_cache_free(m->creds_cache);
        free(m->host_public_der);
        free(m->ak_public);
        for (unsigned i = 0; i < m->n_eks; i++) {
                free(m->eks[i].pub);
                free(m->eks[i].cert);
        }
        free(m->admin_group);
        free(m->hooks_dir);
        m->state_fd = safe_close(m->state_fd);
        m->bus = sd_bus_flush_close_unref(m->bus);
        m->event = sd_event_unref(m->event);
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_done) Manager m = { .admin_gid = (gid_t) -1, .state_fd = -EBADF, .receipts_fd = -EBADF,
                                         .tasks_fd = -EBADF };
        _cleanup_(keystore_freep) Keystore *ks = NULL;
        char err[KEYSTORE_ERROR_MAX] = "";
        int r, done_fd;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        /* Blocked before any thread starts, so the worker inherits the mask and sd-event gets them all. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD); /* offboarding hooks are reaped through sd-event */
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Blocking signals failed: %m");

        /* Key material passes through this process: no core dumps, no ptrace by other users. A zero
         * core limit as well, since a non-dumpable process still dumps (as root) where the admin set
         * fs.suid_dumpable=2. */
        (void) prctl(PR_SET_DUMPABLE, 0);
        (void) setrlimit(RLIMIT_CORE, &(struct rlimit) {});
        /* A file growing past RLIMIT_FSIZE (LimitFSIZE=, an inherited ulimit) must fail with EFBIG, a
         * StorageFailure for the caller, not kill the daemon with SIGXFSZ. Hooks get default actions. */
        (void) signal(SIGXFSZ, SIG_IGN);
        /* Nothing inherited beyond stdio: a descriptor leaked by whoever started us (a socket, a file
         * of another user) must not be usable through this process. */
        if (close_range(3, ~0U, 0) < 0)
                log_debug_errno(errno, "close_range() failed, ignoring: %m");
        umask(0077);
        /* tss2 would print every TPM error itself; the keystore reports each one once, with context. */
        (void) setenv("TSS2_LOG", "all+none", 0);

        if (arg_admin_group) {
                m.admin_group = strdup(arg_admin_group);
                if (!m.admin_group)
                        return log_error_errno(ENOMEM, "Out of memory");
        }
        (void) manager_resolve_admin_group(&m);
        m.user_bus = arg_user;

        /* Before the TPM: a broken policy should stop the start-up, not the first request. */
        if (arg_policy) {
                m.policy_path = strdup(arg_policy);
                if (!m.policy_path)
                        return log_error_errno(ENOMEM, "Out of memory");
        }
        m.policy_required = arg_policy_explicit;
        m.approval_timeout_usec = arg_approval_timeout * USEC_PER_SEC;
        m.hook_timeout_usec = arg_hook_timeout * USEC_PER_SEC;
        if (arg_offboard_hooks && *arg_offboard_hooks && !(m.hooks_dir = strdup(arg_offboard_hooks)))
                return log_error_errno(ENOMEM, "Out of memory");
        r = bus_policy_load(&m, NULL);
        if (r < 0)
                return r;

        _cleanup_free_ char *owner_auth = NULL, *endorsement_auth = NULL;
        KeystoreOptions o = {
                .tcti = arg_tcti ?: secure_getenv("AGENTID_TCTI") ?: AGENTID_DEFAULT_TCTI,
                .state_dir = arg_state_dir ?: secure_getenv("STATE_DIRECTORY") ?: AGENTID_DEFAULT_STATE_DIR,
                .owner_auth_file = arg_owner_auth_file ?: (owner_auth = credential_path("owner-auth")),
                .endorsement_auth_file = arg_endorsement_auth_file ?:
                        (endorsement_auth = credential_path("endorsement-auth")),
                .flush_stale_handles = arg_flush_stale_handles,
                .ek = arg_ek,
        };
        r = keystore_open(&o, &ks, err);
        if (r < 0)
                return log_error_errno(r, "%s", err);
        if (keystore_host_key_replaced(ks))
                log_warning("The storage root key changed (TPM owner hierarchy cleared?): the old host key was "
                            "retired and a new one created. Keys created before are unusable; verifiers must "
                            "pin the new host key.");
        log_info("TPM %s via %s; host-id %s; state in %s.", keystore_tpm_manufacturer(ks), o.tcti,
                 keystore_host_id(ks), o.state_dir);

        snprintf(m.host_id, sizeof(m.host_id), "%s", keystore_host_id(ks));
        snprintf(m.tpm_manufacturer, sizeof(m.tpm_manufacturer), "%s", keystore_tpm_manufacturer(ks));
        r = keystore_key_public_der(keystore_host_key(ks), &m.host_public_der, &m.host_public_der_size);
        if (r < 0)
                return log_error_errno(r, "Exporting the host public key failed: %m");
        memcpy(m.host_kid, keystore_host_key(ks)->kid, KEY_KID_SIZE);
        m.ek_type = keystore_ek_type_to_string(keystore_ek_type(ks));
        if (keystore_attestation_error(ks))
                log_warning("Attestation is unavailable: %s. Keys still work.", keystore_attestation_error(ks));
        else {
                r = keystore_ak_public(ks, &m.ak_public, &m.ak_public_size, m.ak_name);
                if (r < 0)
                        return log_error_errno(r, "Reading the attestation key failed: %m");
                r = load_eks(&m, ks);
                if (r < 0)
                        return r;
        }

        m.keys = hashmap_new();
        m.exe_cache = exe_cache_new();
        m.creds_cache = creds_cache_new();
        if (!m.keys || !m.exe_cache || !m.creds_cache)
                return log_error_errno(ENOMEM, "Out of memory");
        r = load_keys(&m, ks);
        if (r < 0)
                return r;

        r = worker_start(ks, &m.worker, &done_fd);
        if (r < 0)
                return log_error_errno(r, "Starting the TPM worker failed: %m");
        TAKE_PTR(ks); /* the worker's now */

        r = sd_event_default(&m.event);
        if (r < 0)
                return log_error_errno(r, "Creating the event loop failed: %m");
        if ((r = sd_event_add_signal(m.event, NULL, SIGTERM, on_stop_signal, &m)) < 0 ||
            (r = sd_event_add_signal(m.event, NULL, SIGINT, on_stop_signal, &m)) < 0 ||
            (r = sd_event_add_signal(m.event, NULL, SIGHUP, on_reload_signal, &m)) < 0 ||
            (r = sd_event_add_io(m.event, NULL, done_fd, EPOLLIN, on_jobs_done, &m)) < 0)
                return log_error_errno(r, "Setting up the event loop failed: %m");
        (void) sd_event_set_watchdog(m.event, true);

        /* The keystore checked the state directory's owner and mode; the audit log lives beside it. */
        /* Kept open until manager_done(): ending tasks and revoking write here until the very end. */
        int state_fd = m.state_fd = open(o.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (state_fd < 0)
                return log_error_errno(errno, "Opening %s failed: %m", o.state_dir);
        m.audit_checkpoint_every = arg_audit_checkpoint_every;
        r = bus_audit_open(&m, state_fd);
        if (r < 0)
                return r;
        r = bus_offboard_open(&m, state_fd, o.state_dir);
        if (r < 0)
                return r;
        r = bus_peers_open(&m, state_fd);
        if (r < 0)
                return r;

        r = arg_user ? sd_bus_open_user(&m.bus) : sd_bus_open_system(&m.bus);
        if (r < 0)
                return log_error_errno(r, "Connecting to the %s bus failed: %m", arg_user ? "session" : "system");
        (void) sd_bus_set_description(m.bus, "agentidd");
        r = sd_bus_attach_event(m.bus, m.event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Attaching the bus to the event loop failed: %m");
        r = bus_tasks_open(&m, state_fd);
        if (r < 0)
                return r;
        if ((r = bus_manager_register(&m)) < 0 || (r = bus_key_register(&m)) < 0 || (r = bus_tasks_register(&m)) < 0)
                return log_error_errno(r, "Registering bus objects failed: %m");
        r = bus_offboard_start(&m);
        if (r < 0)
                return r;

        r = sd_bus_request_name(m.bus, AGENTID_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Acquiring the bus name " AGENTID_BUS_NAME " failed: %m");
        log_info("agentidd " AGENTID_VERSION " ready on the %s bus.", arg_user ? "session" : "system");

        r = sd_event_loop(m.event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        (void) sd_bus_release_name(m.bus, AGENTID_BUS_NAME);
        log_info("agentidd stopped.");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

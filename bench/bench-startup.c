/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-startup: agentidd's start-up time and memory with many keys.
 *
 *   populate --state-dir=DIR --keys=N
 *          create keys k00000, k00001, ... through the keystore API in this process until DIR holds
 *          N of them (existing ones are kept, so an interrupted run resumes), showing progress;
 *   measure --state-dir=DIR --agentidd=PATH [--rounds=N] [--csv=FILE --label=L] [-- agentidd options]
 *          start agentidd on DIR N times; each time: the time from fork() until the bus announces
 *          org.agentid1's new owner (NameOwnerChanged), the KeyCount it reports, and VmHWM (peak RSS)
 *          from /proc right after start-up and again after one ListKeys; then SIGTERM.
 *
 * Both use AGENTID_TCTI; measure uses DBUS_SYSTEM_BUS_ADDRESS. bench/run-startup-bench.sh sets up
 * swtpm and the bus, and caches the populated state (creating 10,000 TPM keys takes minutes).
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "bench/bench-util.h"
#include "common/macro.h"
#include "keystore/keystore.h"

#define ROUNDS_MAX 50

static const char *arg_state_dir = NULL;
static const char *arg_agentidd = NULL;
static const char *arg_csv = NULL;
static const char *arg_label = "startup";
static unsigned arg_keys = 0;
static unsigned arg_rounds = 5;

static int populate(const char *tcti) {
        _cleanup_(keystore_freep) Keystore *ks = NULL;
        KeystoreOptions o = { .tcti = tcti, .state_dir = arg_state_dir };
        char err[KEYSTORE_ERROR_MAX] = "";
        unsigned created = 0;
        double t0 = bench_now();
        int r;

        r = keystore_open(&o, &ks, err);
        if (r < 0) {
                fprintf(stderr, "keystore_open: %s\n", err);
                return r;
        }
        for (unsigned i = 0; i < arg_keys; i++) {
                char name[16];
                KeyRecord *rec = NULL;
                KeySpec spec = { .name = name, .owner = "bench", .uid = 0 };

                snprintf(name, sizeof(name), "k%05u", i);
                r = keystore_create_key(ks, &spec, (uint64_t) time(NULL), &rec);
                if (r == -EEXIST)
                        continue;
                if (r < 0) {
                        fprintf(stderr, "creating %s: %s\n", name, keystore_last_error(ks));
                        return r;
                }
                key_record_free(rec);
                if (++created % 250 == 0)
                        fprintf(stderr, "\r%u/%u keys (%.1f ms each)", i + 1, arg_keys,
                                (bench_now() - t0) * 1e3 / created);
        }
        fprintf(stderr, "\r%u keys in %s (%u created now)\n", arg_keys, arg_state_dir, created);
        return 0;
}

/* VmHWM (peak resident set) of pid, in KiB, or -1. */
static long vm_hwm_kib(pid_t pid) {
        char path[64], line[256];
        long v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%ld/status", (long) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
                        break;
        fclose(f);
        return v;
}

/* CPU time (user + system) pid has used so far, in ms, or -1: on a busy machine the wall-clock
 * start-up includes waiting for a core, this does not. */
static double cpu_ms(pid_t pid) {
        char path[64], buf[1024];
        unsigned long long utime, stime;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        /* Fields 14 and 15, counted after the ")" that ends the command name (field 2). */
        const char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return -1;
        return (double) (utime + stime) * 1e3 / (double) sysconf(_SC_CLK_TCK);
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;
        bool *owned = userdata;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 && streq(name, "org.agentid1") &&
            *new_owner)
                *owned = true;
        return 0;
}

typedef struct Sample {
        double startup_ms, cpu_ms;
        long hwm_kib, hwm_after_list_kib;
        unsigned key_count;
} Sample;

static int measure_once(sd_bus *bus, char **argv, Sample *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        bool owned = false;
        sd_bus_slot *slot = NULL;
        int r, status;

        r = sd_bus_match_signal(bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "NameOwnerChanged", on_owner_changed, &owned);
        if (r < 0)
                return r;
        /* The match is in place on the bus before the daemon exists (sd_bus_match_signal() is synchronous). */
        double t0 = bench_now();
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execv(argv[0], argv);
                _exit(127);
        }
        while (!owned) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        fprintf(stderr, "agentidd exited during start-up (status %d)\n", status);
                        r = -ECHILD;
                        break;
                }
                if (bench_now() - t0 > 120) {
                        r = -ETIMEDOUT;
                        break;
                }
                (void) sd_bus_wait(bus, 100000);
        }
        double t = bench_now() - t0;
        sd_bus_slot_unref(slot);
        if (r >= 0) {
                ret->startup_ms = t * 1e3;
                ret->cpu_ms = cpu_ms(pid);
                ret->hwm_kib = vm_hwm_kib(pid);
                uint32_t count = 0;
                r = sd_bus_get_property_trivial(bus, "org.agentid1", "/org/agentid1", "org.agentid1.Manager",
                                                "KeyCount", &error, 'u', &count);
                ret->key_count = count;
        }
        if (r >= 0) {
                r = sd_bus_call_method(bus, "org.agentid1", "/org/agentid1", "org.agentid1.Manager", "ListKeys", &error,
                                       &reply, NULL);
                ret->hwm_after_list_kib = vm_hwm_kib(pid);
        }
        if (r < 0 && error.message)
                fprintf(stderr, "%s\n", error.message);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        (void) kill(pid, SIGTERM);
        (void) waitpid(pid, &status, 0);
        return r;
}

static int measure(char **extra, int n_extra) {
        _cleanup_free_ char *tcti_opt = NULL, *state_opt = NULL;
        char *argv[64];
        Sample s[ROUNDS_MAX];
        double t[ROUNDS_MAX], cpu[ROUNDS_MAX], hwm[ROUNDS_MAX], hwm_list[ROUNDS_MAX];
        sd_bus *bus = NULL;
        int n = 0, r;

        if (asprintf(&tcti_opt, "--tcti=%s", getenv("AGENTID_TCTI")) < 0 ||
            asprintf(&state_opt, "--state-dir=%s", arg_state_dir) < 0)
                return -ENOMEM;
        argv[n++] = (char *) arg_agentidd;
        argv[n++] = tcti_opt;
        argv[n++] = state_opt;
        for (int i = 0; i < n_extra && n < (int) ELEMENTSOF(argv) - 1; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "cannot connect to the bus\n");
                return r;
        }
        for (unsigned i = 0; i < arg_rounds; i++) {
                r = measure_once(bus, argv, &s[i]);
                if (r < 0) {
                        fprintf(stderr, "round %u: %s\n", i + 1, strerror(-r));
                        sd_bus_flush_close_unref(bus);
                        return r;
                }
                if (s[i].key_count < arg_keys) {
                        fprintf(stderr, "agentidd reports %u keys, expected at least %u\n", s[i].key_count, arg_keys);
                        sd_bus_flush_close_unref(bus);
                        return -EBADMSG;
                }
                t[i] = s[i].startup_ms;
                cpu[i] = s[i].cpu_ms;
                hwm[i] = (double) s[i].hwm_kib;
                hwm_list[i] = (double) s[i].hwm_after_list_kib;
        }
        sd_bus_flush_close_unref(bus);

        double mc = bench_quantile(cpu, arg_rounds, 0.5);
        double mt = bench_quantile(t, arg_rounds, 0.5), mh = bench_quantile(hwm, arg_rounds, 0.5),
               ml = bench_quantile(hwm_list, arg_rounds, 0.5);
        printf("%-12s %6u keys: start-up (fork until org.agentid1 is owned) median %.1f ms (min %.1f, max %.1f), "
               "%.0f ms of CPU; VmHWM %.1f MiB at start-up, %.1f MiB after one ListKeys (%u rounds)\n",
               arg_label, s[0].key_count, mt, bench_quantile(t, arg_rounds, 0.0), bench_quantile(t, arg_rounds, 1.0),
               mc, mh / 1024, ml / 1024, arg_rounds);
        if (arg_csv) {
                FILE *f = fopen(arg_csv, "ae");
                if (!f)
                        return -errno;
                if (ftell(f) == 0)
                        fprintf(f, "run,keys,startup_ms,cpu_ms,vmhwm_mib,vmhwm_after_listkeys_mib\n");
                fprintf(f, "%s,%u,%.1f,%.0f,%.2f,%.2f\n", arg_label, s[0].key_count, mt, mc, mh / 1024, ml / 1024);
                if (fclose(f) != 0)
                        return -EIO;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_STATE = 0x100, ARG_KEYS, ARG_AGENTIDD, ARG_ROUNDS, ARG_CSV, ARG_LABEL };
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "keys", required_argument, NULL, ARG_KEYS },
                { "agentidd", required_argument, NULL, ARG_AGENTIDD },
                { "rounds", required_argument, NULL, ARG_ROUNDS },
                { "csv", required_argument, NULL, ARG_CSV },
                { "label", required_argument, NULL, ARG_LABEL },
                {},
        };
        const char *tcti = getenv("AGENTID_TCTI"), *verb = argc > 1 ? argv[1] : "";
        int c;

        /* The verb first, then its options; "--" ends them and the rest goes to agentidd. */
        optind = 2;
        while ((c = getopt_long(argc, argv, "+", options, NULL)) >= 0)
                switch (c) {
                case ARG_STATE:
                        arg_state_dir = optarg;
                        break;
                case ARG_KEYS:
                        arg_keys = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_AGENTIDD:
                        arg_agentidd = optarg;
                        break;
                case ARG_ROUNDS:
                        arg_rounds = MIN((unsigned) strtoul(optarg, NULL, 10), (unsigned) ROUNDS_MAX);
                        break;
                case ARG_CSV:
                        arg_csv = optarg;
                        break;
                case ARG_LABEL:
                        arg_label = optarg;
                        break;
                default:
                        return 2;
                }
        if (!arg_state_dir || !tcti || arg_rounds == 0) {
                fprintf(stderr, "Usage: agentid-bench-startup populate|measure --state-dir=DIR ... "
                                "(AGENTID_TCTI set)\n");
                return 2;
        }
        if (streq(verb, "populate"))
                return populate(tcti) < 0 ? 1 : 0;
        if (streq(verb, "measure") && arg_agentidd)
                return measure(argv + optind, argc - optind) < 0 ? 1 : 0;
        fprintf(stderr, "Unknown verb '%s' (populate, or measure with --agentidd=)\n", verb);
        return 2;
}

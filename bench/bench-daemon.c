/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-daemon: Sign over D-Bus against the TPM's own limit, in one run on one swtpm.
 *
 *   limit      Esys_Sign in a loop on a loaded key, in this process (tss2 directly);
 *   dbus-N     N client threads (1, 4, 16, 64), each with its own bus connection, calling Key.Sign
 *              back to back;
 *   destroy    Destroy latency while 16 clients flood Sign (Destroy rides the admin lane).
 *
 * Each phase runs for a fixed time after a warm-up; rounds of all phases alternate and the report
 * gives medians over rounds. Run it through bench/run-daemon-bench.sh, which starts swtpm, a private
 * bus and agentidd, and creates the keys.
 */

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <time.h>


#include "bench/bench-util.h"
#include "common/macro.h"

#define MAX_CLIENTS 64
#define LAT_MAX 200000

static unsigned arg_rounds = 5;
static double arg_seconds = 3.0;
static const char *arg_key_path = "/org/agentid1/key/bench";

#define now_s bench_now
#define pct bench_quantile

/* ---- the limit: Esys_Sign in-process ---------------------------------------------------------- */

static double raw_run(RawKey *r, double seconds, double *lat, size_t *n_lat) {
        uint8_t digest[32] = {};
        double start = now_s(), end = start + seconds;
        unsigned n = 0;

        while (now_s() < end) {
                double t0 = now_s();
                digest[0] = (uint8_t) n;
                raw_key_sign(r, digest);
                if (*n_lat < LAT_MAX)
                        lat[(*n_lat)++] = now_s() - t0;
                n++;
        }
        return n / (now_s() - start);
}

/* ---- D-Bus clients ------------------------------------------------------------------------------ */

typedef struct Client {
        pthread_t thread;
        double end;
        unsigned ok, failed;
        double *lat;
        size_t n_lat, max_lat;
} Client;

static atomic_bool go;

static void *client_main(void *userdata) {
        Client *c = userdata;
        sd_bus *bus = NULL;
        uint8_t digest[32] = { 7 };

        if (sd_bus_open_system(&bus) < 0) {
                fprintf(stderr, "cannot connect to the bus\n");
                exit(1);
        }
        while (!atomic_load(&go))
                ;
        while (now_s() < c->end) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *m = NULL, *reply = NULL;
                double t0 = now_s();
                int r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", arg_key_path, "org.agentid1.Key", "Sign");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', digest, sizeof(digest));
                if (r >= 0)
                        r = sd_bus_message_append(m, "a{sv}", 1, "task_id", "s", "bench");
                if (r >= 0)
                        r = sd_bus_call(bus, m, 60 * 1000000ULL, &error, &reply);
                if (r >= 0) {
                        c->ok++;
                        if (c->n_lat < c->max_lat)
                                c->lat[c->n_lat++] = now_s() - t0;
                } else
                        c->failed++;
                sd_bus_error_free(&error);
                sd_bus_message_unref(m);
                sd_bus_message_unref(reply);
                digest[0]++;
        }
        sd_bus_flush_close_unref(bus);
        return NULL;
}

typedef struct Result {
        double throughput, p50, p99;
        unsigned failed;
} Result;

static Result dbus_run(unsigned n_clients, double seconds) {
        Client c[MAX_CLIENTS] = {};
        static double lat[MAX_CLIENTS][LAT_MAX / MAX_CLIENTS];
        static double all[LAT_MAX];
        size_t n_all = 0;
        Result res = {};
        unsigned ok = 0;

        atomic_store(&go, false);
        double end = now_s() + 0.3 + seconds;
        for (unsigned i = 0; i < n_clients; i++) {
                c[i] = (Client) { .end = end, .lat = lat[i], .max_lat = LAT_MAX / MAX_CLIENTS };
                pthread_create(&c[i].thread, NULL, client_main, &c[i]);
        }
        usleep(300000); /* connections up */
        double start = now_s();
        atomic_store(&go, true);
        for (unsigned i = 0; i < n_clients; i++) {
                pthread_join(c[i].thread, NULL);
                ok += c[i].ok;
                res.failed += c[i].failed;
                for (size_t k = 0; k < c[i].n_lat; k++)
                        all[n_all++] = c[i].lat[k];
        }
        res.throughput = ok / (now_s() - start);
        res.p50 = pct(all, n_all, 0.5);
        res.p99 = pct(all, n_all, 0.99);
        return res;
}

/* Create a key, then time its Destroy while 16 clients flood Sign on another key. */
static int destroy_under_flood(unsigned count, double *lat) {
        sd_bus *bus = NULL;
        int r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < count; i++) {
                char name[32], path[128];
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                snprintf(name, sizeof(name), "victim-%u-%ld", i, (long) getpid());
                r = sd_bus_call_method(bus, "org.agentid1", "/org/agentid1", "org.agentid1.Manager", "CreateKey", &error,
                                       &reply, "sa{sv}", name, 1, "owner", "s", "bench");
                sd_bus_message_unref(reply);
                reply = NULL;
                if (r < 0) {
                        fprintf(stderr, "CreateKey: %s\n", error.message);
                        sd_bus_error_free(&error);
                        break;
                }
                char *encoded = NULL;
                if (sd_bus_path_encode("/org/agentid1/key", name, &encoded) < 0)
                        break;
                snprintf(path, sizeof(path), "%s", encoded);
                free(encoded);

                /* Start the flood, let the queue fill, then destroy. */
                Client c[16] = {};
                static double l[16][1024];
                atomic_store(&go, false);
                double end = now_s() + 1.5;
                for (unsigned k = 0; k < 16; k++) {
                        c[k] = (Client) { .end = end, .lat = l[k], .max_lat = 1024 };
                        pthread_create(&c[k].thread, NULL, client_main, &c[k]);
                }
                usleep(200000);
                atomic_store(&go, true);
                usleep(300000);
                double t0 = now_s();
                r = sd_bus_call_method(bus, "org.agentid1", path, "org.agentid1.Key", "Destroy", &error, &reply, "s",
                                       "benchmark");
                lat[i] = now_s() - t0;
                sd_bus_message_unref(reply);
                if (r < 0)
                        fprintf(stderr, "Destroy: %s\n", error.message);
                sd_bus_error_free(&error);
                for (unsigned k = 0; k < 16; k++)
                        pthread_join(c[k].thread, NULL);
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "rounds", required_argument, NULL, 'r' },
                { "seconds", required_argument, NULL, 's' },
                { "key-path", required_argument, NULL, 'k' },
                {},
        };
        static const unsigned levels[] = { 1, 4, 16, 64 };
        static double raw_lat[LAT_MAX];
        double raw_tp[16], tp[ELEMENTSOF(levels)][16], p50[ELEMENTSOF(levels)][16], p99[ELEMENTSOF(levels)][16];
        int c;

        while ((c = getopt_long(argc, argv, "r:s:k:", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        arg_rounds = MIN((unsigned) strtoul(optarg, NULL, 10), 16U);
                        break;
                case 's':
                        arg_seconds = strtod(optarg, NULL);
                        break;
                case 'k':
                        arg_key_path = optarg;
                        break;
                default:
                        return 2;
                }
        const char *tcti = getenv("AGENTID_TCTI");
        if (!tcti || arg_rounds == 0) {
                fprintf(stderr, "AGENTID_TCTI (the daemon's swtpm) and DBUS_SYSTEM_BUS_ADDRESS must be set\n");
                return 2;
        }

        RawKey raw = {};
        raw_key_setup(tcti, &raw);

        for (unsigned round = 0; round < arg_rounds; round++) {
                size_t n = 0;
                raw_tp[round] = raw_run(&raw, arg_seconds, raw_lat, &n);
                for (size_t i = 0; i < ELEMENTSOF(levels); i++) {
                        Result r = dbus_run(levels[i], arg_seconds);
                        if (r.failed)
                                fprintf(stderr, "warning: %u failed calls at %u clients\n", r.failed, levels[i]);
                        tp[i][round] = r.throughput;
                        p50[i][round] = r.p50;
                        p99[i][round] = r.p99;
                }
                fprintf(stderr, "round %u/%u done\n", round + 1, arg_rounds);
        }

        double limit = pct(raw_tp, arg_rounds, 0.5);
        size_t n = 0;
        (void) raw_run(&raw, 1.0, raw_lat, &n);
        printf("Sign throughput, %u rounds x %.1f s per phase, medians; one swtpm (%s)\n", arg_rounds, arg_seconds, tcti);
        printf("%-26s %12s %10s %10s %10s\n", "", "sign/s", "x limit", "p50 ms", "p99 ms");
        printf("%-26s %12.0f %10.3f %10.2f %10.2f\n", "limit: Esys_Sign in-process", limit, 1.0,
               pct(raw_lat, n, 0.5) * 1e3, pct(raw_lat, n, 0.99) * 1e3);
        for (size_t i = 0; i < ELEMENTSOF(levels); i++) {
                char label[64];
                snprintf(label, sizeof(label), "Sign over D-Bus, %u client%s", levels[i], levels[i] > 1 ? "s" : "");
                double t = pct(tp[i], arg_rounds, 0.5);
                printf("%-26s %12.0f %10.3f %10.2f %10.2f\n", label, t, t / limit, pct(p50[i], arg_rounds, 0.5) * 1e3,
                       pct(p99[i], arg_rounds, 0.5) * 1e3);
        }
        printf("csv,clients,signs_per_s,ratio,p50_ms,p99_ms\ncsv,0,%.0f,1.000,%.3f,%.3f\n", limit,
               pct(raw_lat, n, 0.5) * 1e3, pct(raw_lat, n, 0.99) * 1e3);
        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                printf("csv,%u,%.0f,%.3f,%.3f,%.3f\n", levels[i], pct(tp[i], arg_rounds, 0.5),
                       pct(tp[i], arg_rounds, 0.5) / limit, pct(p50[i], arg_rounds, 0.5) * 1e3,
                       pct(p99[i], arg_rounds, 0.5) * 1e3);

        /* swtpm has no resource manager: give the daemon back the slot our key holds before it creates. */
        raw_key_done(&raw);

        double dlat[20];
        unsigned nd = ELEMENTSOF(dlat);
        if (destroy_under_flood(nd, dlat) >= 0)
                printf("Destroy under a 16-client Sign flood (%u destroys): p50 %.2f ms, p99 %.2f ms\n", nd,
                       pct(dlat, nd, 0.5) * 1e3, pct(dlat, nd, 0.99) * 1e3);

        return 0;
}

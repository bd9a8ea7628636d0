/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * agentid-bench-daemon: agentidd's methods over D-Bus against the TPM's own limit, in one run on one
 * swtpm.
 *
 *   limit      Esys_Sign in a loop on a loaded key, in this process (tss2 directly);
 *   sign-N     N client threads (1, 4, 16, 64), each with its own bus connection, calling Key.Sign
 *              back to back;
 *   --ops=     further rows with 1 and 4 clients: signmessage, issuetoken, attest, task-sign
 *              (Key.StartTask once per client, then org.agentid1.Task.Sign back to back), createkey
 *              (Manager.CreateKey of fresh names);
 *   destroy    Destroy latency while 16 clients flood Sign (Destroy rides the admin lane).
 *
 * --max-clients=N leaves out the Sign rows with more clients (a slow TPM model takes long per row).
 *
 * Each phase runs for a fixed time after a warm-up; rounds of all phases alternate and the report
 * gives medians over rounds. Each Sign row is paired with its own limit: in every round the limit is
 * measured right before the row, and "x limit" is the median of those per-round ratios, so that the
 * VM's speed drifting between phases (10-40% here) does not move the ratio. --csv=FILE appends one line per row (run, row, clients, per_s, x_limit,
 * p50_ms, p99_ms) for bench/plot-daemon.gp and bench/report.py.
 *
 * --create-limit runs no D-Bus phase: only Esys_Create of agent-template keys under the SRK, in this
 * process (the limit of CreateKey). It needs two free object slots, so the script runs it while no
 * agentidd holds the TPM (swtpm has no resource manager).
 *
 * --save=DIR writes what the verification benchmarks need, all made by this agentidd on this swtpm:
 * evidence.cbor and nonce.hex (Key.Attest), ak.tpmt (GetAttestationKey), token.cbor (IssueToken for
 * audience "bench-api") and key.der (the key's PublicKey).
 *
 * Run it through bench/run-daemon-bench.sh, which starts swtpm, a private bus and agentidd, and
 * creates the key.
 */

#include <errno.h>
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
#define ROUNDS_MAX 16

static unsigned arg_rounds = 5;
static double arg_seconds = 3.0;
static const char *arg_key_name = "bench";
static const char *arg_csv = NULL;
static const char *arg_label = "agentidd";
static const char *arg_save = NULL;
static char *arg_ops = NULL;
static bool arg_create_limit = false;
static bool arg_destroy = true;
static unsigned arg_max_clients = 64;

#define now_s bench_now
#define pct bench_quantile

typedef enum Op {
        OP_SIGN,
        OP_SIGN_MESSAGE,
        OP_ISSUE_TOKEN,
        OP_ATTEST,
        OP_TASK_SIGN,
        OP_CREATE_KEY,
        _OP_MAX,
} Op;

static const char *const op_name[_OP_MAX] = {
        [OP_SIGN] = "sign",
        [OP_SIGN_MESSAGE] = "signmessage",
        [OP_ISSUE_TOKEN] = "issuetoken",
        [OP_ATTEST] = "attest",
        [OP_TASK_SIGN] = "task-sign",
        [OP_CREATE_KEY] = "createkey",
};

static char key_path[256];

/* ---- the limits: Esys_Sign and Esys_Create in-process ------------------------------------------- */

static double raw_run(RawKey *r, bool create, double seconds, double *lat, size_t *n_lat) {
        uint8_t digest[32] = {};
        double start = now_s(), end = start + seconds;
        unsigned n = 0;

        while (now_s() < end) {
                double t0 = now_s();
                digest[0] = (uint8_t) n;
                if (create)
                        raw_create(r);
                else
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
        Op op;
        unsigned index;
        double end, last_done;
        unsigned ok, failed;
        double *lat;
        size_t n_lat, max_lat;
        char *task_path;
} Client;

static atomic_bool go;
static atomic_uint generation;

static int append_bytes(sd_bus_message *m, const void *p, size_t n) {
        return sd_bus_message_append_array(m, 'y', p, n);
}

/* One call of the client's method; the reply is dropped. */
static int call_op(sd_bus *bus, Client *c, unsigned n, sd_bus_error *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        uint8_t buf[64] = {};
        int r;

        memcpy(buf, &n, sizeof(n));
        buf[sizeof(n)] = (uint8_t) c->index;
        switch (c->op) {
        case OP_SIGN:
        case OP_SIGN_MESSAGE:
        case OP_ATTEST:
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", key_path, "org.agentid1.Key",
                                                   c->op == OP_SIGN ? "Sign" :
                                                   c->op == OP_ATTEST ? "Attest" : "SignMessage");
                if (r >= 0)
                        r = append_bytes(m, buf, c->op == OP_SIGN || c->op == OP_ATTEST ? 32 : 64);
                if (r >= 0)
                        r = c->op == OP_ATTEST ? sd_bus_message_append(m, "a{sv}", 0) :
                                                 sd_bus_message_append(m, "a{sv}", 1, "task_id", "s", "bench");
                break;
        case OP_ISSUE_TOKEN:
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", key_path, "org.agentid1.Key", "IssueToken");
                if (r >= 0)
                        r = sd_bus_message_append(m, "a{sv}", 2, "task_id", "s", "bench", "audience", "s", "bench-api");
                break;
        case OP_TASK_SIGN:
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", c->task_path, "org.agentid1.Task", "Sign");
                if (r >= 0)
                        r = append_bytes(m, buf, 32);
                if (r >= 0)
                        r = sd_bus_message_append(m, "a{sv}", 0);
                break;
        case OP_CREATE_KEY: {
                char name[64];
                snprintf(name, sizeof(name), "ck-%ld-%u-%u-%u", (long) getpid(), atomic_load(&generation), c->index, n);
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", "/org/agentid1", "org.agentid1.Manager",
                                                   "CreateKey");
                if (r >= 0)
                        r = sd_bus_message_append(m, "sa{sv}", name, 1, "owner", "s", "bench");
                break;
        }
        default:
                r = -EINVAL;
        }
        if (r >= 0)
                r = sd_bus_call(bus, m, 120 * 1000000ULL, error, &reply);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return r;
}

static int task_start(sd_bus *bus, Client *c) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        char id[64];
        int r;

        snprintf(id, sizeof(id), "bench-%ld-%u-%u", (long) getpid(), atomic_load(&generation), c->index);
        r = sd_bus_call_method(bus, "org.agentid1", key_path, "org.agentid1.Key", "StartTask", &error, &reply, "sa{sv}",
                               id, 0);
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0 && !(c->task_path = strdup(path)))
                r = -ENOMEM;
        if (r < 0)
                fprintf(stderr, "StartTask: %s\n", error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

static void task_end(sd_bus *bus, Client *c) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (!c->task_path)
                return;
        if (sd_bus_call_method(bus, "org.agentid1", c->task_path, "org.agentid1.Task", "End", &error, NULL, "s",
                               "benchmark") < 0)
                fprintf(stderr, "Task.End: %s\n", error.message);
        sd_bus_error_free(&error);
        free(c->task_path);
        c->task_path = NULL;
}

static void *client_main(void *userdata) {
        Client *c = userdata;
        sd_bus *bus = NULL;
        unsigned n = 0;

        if (sd_bus_open_system(&bus) < 0) {
                fprintf(stderr, "cannot connect to the bus\n");
                exit(1);
        }
        /* A task key is created once per client (StartTask), before the clock starts. */
        if (c->op == OP_TASK_SIGN && task_start(bus, c) < 0)
                exit(1);
        while (!atomic_load(&go))
                ;
        while (now_s() < c->end) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                double t0 = now_s();
                int r = call_op(bus, c, n++, &error);
                c->last_done = now_s();
                if (r >= 0) {
                        c->ok++;
                        if (c->n_lat < c->max_lat)
                                c->lat[c->n_lat++] = now_s() - t0;
                } else if (c->failed++ == 0)
                        fprintf(stderr, "%s: %s\n", op_name[c->op], error.message ?: strerror(-r));
                sd_bus_error_free(&error);
        }
        task_end(bus, c);
        sd_bus_flush_close_unref(bus);
        return NULL;
}

typedef struct Result {
        double throughput, p50, p99;
        unsigned failed;
} Result;

static Result dbus_run(Op op, unsigned n_clients, double seconds) {
        Client c[MAX_CLIENTS] = {};
        static double lat[MAX_CLIENTS][LAT_MAX / MAX_CLIENTS];
        static double all[LAT_MAX];
        size_t n_all = 0;
        Result res = {};
        unsigned ok = 0;
        double last = 0;

        /* Task keys take a few TPM commands each to create: give the clients time before the clock. */
        double setup = op == OP_TASK_SIGN ? 0.3 + 0.05 * n_clients : 0.3;
        atomic_fetch_add(&generation, 1);
        atomic_store(&go, false);
        double end = now_s() + setup + seconds;
        for (unsigned i = 0; i < n_clients; i++) {
                c[i] = (Client) { .op = op, .index = i, .end = end, .lat = lat[i], .max_lat = LAT_MAX / MAX_CLIENTS };
                pthread_create(&c[i].thread, NULL, client_main, &c[i]);
        }
        usleep((useconds_t) (setup * 1e6)); /* connections (and task keys) up */
        double start = now_s();
        atomic_store(&go, true);
        for (unsigned i = 0; i < n_clients; i++) {
                pthread_join(c[i].thread, NULL);
                ok += c[i].ok;
                res.failed += c[i].failed;
                last = MAX(last, c[i].last_done);
                for (size_t k = 0; k < c[i].n_lat; k++)
                        all[n_all++] = c[i].lat[k];
        }
        /* Until the last call came back: a task client's End (after its loop) is not counted. */
        res.throughput = last > start ? ok / (last - start) : 0;
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
                r = sd_bus_call_method(bus, "org.agentid1", "/org/agentid1", "org.agentid1.Manager", "CreateKey",
                                       &error, &reply, "sa{sv}", name, 1, "owner", "s", "bench");
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
                        c[k] = (Client) { .op = OP_SIGN, .index = k, .end = end, .lat = l[k], .max_lat = 1024 };
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

/* ---- output ------------------------------------------------------------------------------------- */

static FILE *csv;

static void csv_open(void) {
        if (!arg_csv)
                return;
        csv = fopen(arg_csv, "ae");
        if (!csv) {
                fprintf(stderr, "%s: %m\n", arg_csv);
                exit(1);
        }
        if (ftell(csv) == 0)
                fprintf(csv, "run,row,clients,per_s,x_limit,p50_ms,p99_ms\n");
}

/* One row of the table, and of the CSV; x <= 0 leaves "x limit" empty, per_s < 0 leaves the rate. */
static void emit(const char *label, const char *row, unsigned clients, double per_s, double x, double p50,
                 double p99) {
        char rate[32] = "", ratio[32] = "";

        if (per_s >= 0)
                snprintf(rate, sizeof(rate), "%.1f", per_s);
        if (x > 0)
                snprintf(ratio, sizeof(ratio), "%.3f", x);
        printf("%-34s %10s %8s %9.2f %9.2f\n", label, rate, ratio, p50 * 1e3, p99 * 1e3);
        if (csv)
                fprintf(csv, "%s,%s,%u,%s,%s,%.3f,%.3f\n", arg_label, row, clients, rate, ratio, p50 * 1e3, p99 * 1e3);
}

static void table_header(const char *title) {
        printf("%s\n%-34s %10s %8s %9s %9s\n", title, "", "per s", "x limit", "p50 ms", "p99 ms");
}

/* ---- artefacts for the verification benchmarks ----------------------------------------------------- */

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        bool ok = fwrite(p, 1, n, f) == n;
        if (fclose(f) != 0 || !ok)
                return -EIO;
        return 0;
}

/* Call a method whose reply starts with "ay" and write those bytes to DIR/name. */
static int save_reply_bytes(sd_bus *bus, sd_bus_message *m, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const void *p;
        size_t n;
        int r;

        r = sd_bus_call(bus, m, 120 * 1000000ULL, &error, &reply);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &p, &n);
        if (r >= 0)
                r = write_file(arg_save, name, p, n);
        if (r < 0)
                fprintf(stderr, "saving %s: %s\n", name, error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

static int save_artefacts(void) {
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint8_t nonce[32];
        char hex[65];
        int r;

        for (size_t i = 0; i < sizeof(nonce); i++) {
                nonce[i] = (uint8_t) (i * 37 + 11);
                snprintf(hex + 2 * i, 3, "%02x", nonce[i]);
        }
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = write_file(arg_save, "nonce.hex", hex, 64);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", key_path, "org.agentid1.Key", "Attest");
        if (r >= 0)
                r = append_bytes(m, nonce, sizeof(nonce));
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = save_reply_bytes(bus, m, "evidence.cbor");
        m = sd_bus_message_unref(m);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", "/org/agentid1", "org.agentid1.Manager",
                                                   "GetAttestationKey");
        if (r >= 0)
                r = save_reply_bytes(bus, m, "ak.tpmt");
        m = sd_bus_message_unref(m);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, "org.agentid1", key_path, "org.agentid1.Key", "IssueToken");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 2, "task_id", "s", "bench", "audience", "s", "bench-api");
        if (r >= 0)
                r = save_reply_bytes(bus, m, "token.cbor");
        m = sd_bus_message_unref(m);
        if (r >= 0) {
                sd_bus_message *reply = NULL;
                const void *p;
                size_t n;
                r = sd_bus_get_property(bus, "org.agentid1", key_path, "org.agentid1.Key", "PublicKey", &error, &reply,
                                        "ay");
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &p, &n);
                if (r >= 0)
                        r = write_file(arg_save, "key.der", p, n);
                if (r < 0)
                        fprintf(stderr, "saving key.der: %s\n", error.message ?: strerror(-r));
                sd_bus_message_unref(reply);
        }
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return r;
}

/* ---- main --------------------------------------------------------------------------------------- */

static int parse_ops(bool ret[_OP_MAX]) {
        char *s = arg_ops, *tok, *save = NULL;

        if (!arg_ops)
                return 0;
        for (; (tok = strtok_r(s, ",", &save)); s = NULL) {
                size_t i;
                for (i = 0; i < _OP_MAX; i++)
                        if (streq(tok, op_name[i]))
                                break;
                if (i == _OP_MAX || i == OP_SIGN) {
                        fprintf(stderr, "Unknown --ops entry '%s' (signmessage, issuetoken, attest, task-sign, "
                                        "createkey)\n", tok);
                        return -EINVAL;
                }
                ret[i] = true;
        }
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_CSV = 0x100, ARG_LABEL, ARG_OPS, ARG_SAVE, ARG_CREATE_LIMIT, ARG_NO_DESTROY, ARG_MAX_CLIENTS };
        static const struct option options[] = {
                { "rounds", required_argument, NULL, 'r' },
                { "seconds", required_argument, NULL, 's' },
                { "key", required_argument, NULL, 'k' },
                { "csv", required_argument, NULL, ARG_CSV },
                { "label", required_argument, NULL, ARG_LABEL },
                { "ops", required_argument, NULL, ARG_OPS },
                { "save", required_argument, NULL, ARG_SAVE },
                { "create-limit", no_argument, NULL, ARG_CREATE_LIMIT },
                { "no-destroy", no_argument, NULL, ARG_NO_DESTROY },
                { "max-clients", required_argument, NULL, ARG_MAX_CLIENTS },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "r:s:k:", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        arg_rounds = MIN((unsigned) strtoul(optarg, NULL, 10), (unsigned) ROUNDS_MAX);
                        break;
                case 's':
                        arg_seconds = strtod(optarg, NULL);
                        break;
                case 'k':
                        arg_key_name = optarg;
                        break;
                case ARG_CSV:
                        arg_csv = optarg;
                        break;
                case ARG_LABEL:
                        arg_label = optarg;
                        break;
                case ARG_OPS:
                        arg_ops = optarg;
                        break;
                case ARG_SAVE:
                        arg_save = optarg;
                        break;
                case ARG_CREATE_LIMIT:
                        arg_create_limit = true;
                        break;
                case ARG_NO_DESTROY:
                        arg_destroy = false;
                        break;
                case ARG_MAX_CLIENTS:
                        arg_max_clients = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        return -EINVAL;
                }
        if (arg_rounds == 0 || arg_seconds <= 0)
                return -EINVAL;
        return 0;
}

static int run_create_limit(const char *tcti) {
        static double lat[LAT_MAX];
        double tp[ROUNDS_MAX];
        size_t n = 0;

        for (unsigned round = 0; round < arg_rounds; round++) {
                RawKey srk = {};
                raw_srk_setup(tcti, &srk);
                tp[round] = raw_run(&srk, true, arg_seconds, lat, &n);
                raw_key_done(&srk);
        }
        double t = pct(tp, arg_rounds, 0.5);
        table_header("Esys_Create in-process (the limit of CreateKey), medians");
        emit("limit: Esys_Create in-process", "limit-create", 0, t, 1.0, pct(lat, n, 0.5), pct(lat, n, 0.99));
        return 0;
}

int main(int argc, char *argv[]) {
        static const unsigned levels[] = { 1, 4, 16, 64 }, op_levels[] = { 1, 4 };
        static double raw_lat[LAT_MAX];
        static double tp[_OP_MAX][ELEMENTSOF(levels)][ROUNDS_MAX], p50[_OP_MAX][ELEMENTSOF(levels)][ROUNDS_MAX],
                p99[_OP_MAX][ELEMENTSOF(levels)][ROUNDS_MAX];
        /* The limit before each Sign row of each round, and the row's ratio to it. */
        static double raw_tp[ELEMENTSOF(levels) * ROUNDS_MAX], x_sign[ELEMENTSOF(levels)][ROUNDS_MAX];
        size_t n_raw = 0;
        bool ops[_OP_MAX] = {};

        if (parse_argv(argc, argv) < 0 || parse_ops(ops) < 0)
                return 2;
        const char *tcti = getenv("AGENTID_TCTI");
        if (!tcti) {
                fprintf(stderr, "AGENTID_TCTI (the daemon's swtpm) and DBUS_SYSTEM_BUS_ADDRESS must be set\n");
                return 2;
        }
        csv_open();
        if (arg_create_limit)
                return run_create_limit(tcti);

        char *encoded = NULL;
        if (sd_bus_path_encode("/org/agentid1/key", arg_key_name, &encoded) < 0)
                return 1;
        snprintf(key_path, sizeof(key_path), "%s", encoded);
        free(encoded);

        RawKey raw = {};
        raw_key_setup(tcti, &raw);

        for (unsigned round = 0; round < arg_rounds; round++) {
                size_t n = 0;
                for (size_t i = 0; i < ELEMENTSOF(levels) && levels[i] <= arg_max_clients; i++) {
                        double lim = raw_tp[n_raw++] = raw_run(&raw, false, arg_seconds, raw_lat, &n);
                        Result r = dbus_run(OP_SIGN, levels[i], arg_seconds);
                        if (r.failed)
                                fprintf(stderr, "warning: %u failed calls at %u clients\n", r.failed, levels[i]);
                        tp[OP_SIGN][i][round] = r.throughput;
                        x_sign[i][round] = r.throughput / lim;
                        p50[OP_SIGN][i][round] = r.p50;
                        p99[OP_SIGN][i][round] = r.p99;
                }
                fprintf(stderr, "sign round %u/%u done\n", round + 1, arg_rounds);
        }

        double limit = pct(raw_tp, n_raw, 0.5);
        size_t n = 0;
        (void) raw_run(&raw, false, 1.0, raw_lat, &n);
        /* swtpm has no resource manager: give the daemon back the slot our key holds before it creates
         * keys, attests (AK, EK and key at once) or makes task keys. */
        raw_key_done(&raw);

        /* The other methods, 1 and 4 clients, rounds alternating like the Sign phases. */
        for (unsigned round = 0; round < arg_rounds; round++) {
                bool any = false;
                for (Op op = OP_SIGN + 1; op < _OP_MAX; op++) {
                        if (!ops[op])
                                continue;
                        any = true;
                        for (size_t i = 0; i < ELEMENTSOF(op_levels); i++) {
                                Result r = dbus_run(op, op_levels[i], arg_seconds);
                                if (r.failed)
                                        fprintf(stderr, "warning: %u failed %s calls at %u clients\n", r.failed,
                                                op_name[op], op_levels[i]);
                                tp[op][i][round] = r.throughput;
                                p50[op][i][round] = r.p50;
                                p99[op][i][round] = r.p99;
                        }
                }
                if (any)
                        fprintf(stderr, "ops round %u/%u done\n", round + 1, arg_rounds);
        }

        printf("%s: %u rounds x %.1f s per phase, medians; one swtpm (%s)\n", arg_label, arg_rounds, arg_seconds, tcti);
        table_header("x limit: against Esys_Sign in-process (one TPM signature per call)");
        emit("limit: Esys_Sign in-process", "limit-sign", 0, limit, 1.0, pct(raw_lat, n, 0.5), pct(raw_lat, n, 0.99));
        for (size_t i = 0; i < ELEMENTSOF(levels) && levels[i] <= arg_max_clients; i++) {
                char label[64];
                snprintf(label, sizeof(label), "Sign over D-Bus, %u client%s", levels[i], levels[i] > 1 ? "s" : "");
                emit(label, "sign", levels[i], pct(tp[OP_SIGN][i], arg_rounds, 0.5), pct(x_sign[i], arg_rounds, 0.5),
                     pct(p50[OP_SIGN][i], arg_rounds, 0.5), pct(p99[OP_SIGN][i], arg_rounds, 0.5));
        }
        for (Op op = OP_SIGN + 1; op < _OP_MAX; op++) {
                if (!ops[op])
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(op_levels); i++) {
                        char label[64];
                        snprintf(label, sizeof(label), "%s, %u client%s", op_name[op], op_levels[i],
                                 op_levels[i] > 1 ? "s" : "");
                        /* Only the signing methods compare with the signing limit (the median of all of
                         * the Sign phases: the TPM slot the limit's key holds is needed here), and less
                         * precisely than Sign; CreateKey's limit is Esys_Create (--create-limit). */
                        bool signs = op == OP_SIGN_MESSAGE || op == OP_ISSUE_TOKEN || op == OP_TASK_SIGN;
                        double per_s = pct(tp[op][i], arg_rounds, 0.5);
                        emit(label, op_name[op], op_levels[i], per_s, signs ? per_s / limit : 0,
                             pct(p50[op][i], arg_rounds, 0.5), pct(p99[op][i], arg_rounds, 0.5));
                }
        }
        fflush(stdout);

        if (arg_save && save_artefacts() < 0)
                return 1;

        if (arg_destroy) {
                double dlat[20];
                unsigned nd = ELEMENTSOF(dlat);
                if (destroy_under_flood(nd, dlat) >= 0) {
                        printf("Destroy under a 16-client Sign flood (%u destroys): p50 %.2f ms, p99 %.2f ms\n", nd,
                               pct(dlat, nd, 0.5) * 1e3, pct(dlat, nd, 0.99) * 1e3);
                        if (csv)
                                fprintf(csv, "%s,destroy-under-flood,16,,,%.3f,%.3f\n", arg_label,
                                        pct(dlat, nd, 0.5) * 1e3, pct(dlat, nd, 0.99) * 1e3);
                }
        }
        if (csv && fclose(csv) != 0)
                return 1;
        return 0;
}

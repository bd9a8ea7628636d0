/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Allocation-failure injection for the fuzz harnesses (issue 12). Linked with one harness instead of
 * fuzz-main.c; for every seed input of its corpus (CORPUS/seed-*), LLVMFuzzerTestOneInput() runs once
 * normally, then again with allocation number N failing, for N = 1, 2, ... until a run finishes without
 * reaching allocation N (or --max=N runs were made). Each run must end without a crash (the harness
 * aborts when one of its invariants fails, and they take -ENOMEM as an ordinary outcome) and without
 * leaking what it allocated.
 *
 * How allocations fail: this executable defines malloc, calloc, realloc, reallocarray, free, strdup and
 * strndup itself, so every caller in the process comes here, whatever its library: the project's own
 * code, libcbor (Debian's 0.8 has no cbor_set_allocs()), jansson and OpenSSL (CRYPTO_malloc() calls
 * malloc), and glibc's own helpers (asprintf, fdopendir). The real allocator is the next definition in
 * symbol lookup order: glibc's, valgrind's replacement of it, or ASan's (libasan comes before libc),
 * so the same interposer works in the plain build, under valgrind and in the ASan build.
 *
 * Leaks: every allocation made during a run from this executable's code (the harness and the
 * project's static libraries, whose strdup/strndup land here too) is kept in a table until it is freed;
 * whatever is left when the run returns is reported with the return address that made it. Library
 * allocations are left to LeakSanitizer (ASan build) and memcheck (`meson test --setup=valgrind`), since
 * OpenSSL keeps per-thread state it allocates on first use.
 */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

#define SEED_MAX (1U << 20)
#define SITES_MAX 4096U
#define LIVE_BITS 16
#define LIVE_SIZE (1U << LIVE_BITS)

/* ---- the interposer */

/* Not instrumented: under ASan the first calls come while ASan itself starts (its dlsym() lookups
 * allocate), before its shadow memory exists. */
#define INTERPOSER __attribute__((no_sanitize("address", "undefined")))

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);

/* dlsym() may allocate while real_malloc is being looked up; those few bytes come from here. */
static _Alignas(max_align_t) uint8_t boot_heap[16384];
static size_t boot_used;
static bool resolving;

static struct {
        bool armed;             /* counting allocations (only inside a harness run) */
        uint64_t count;         /* allocations seen since armed */
        uint64_t fail_at;       /* 0: none fails */
        bool hit;               /* allocation fail_at was reached */
        const void *hit_site;
} inj;

/* Live allocations made by this executable's code during a run: open addressing, linear probing. */
typedef struct {
        void *ptr;              /* NULL: empty; TOMBSTONE: deleted */
        const void *site;
        uint64_t seq;
} LiveSlot;

#define TOMBSTONE ((void *) 1)
static LiveSlot live[LIVE_SIZE];
static size_t n_live, n_live_overflow;
static uintptr_t exe_start, exe_end;

INTERPOSER static void *boot_alloc(size_t size) {
        size = (size + 15) & ~(size_t) 15;
        if (size > sizeof(boot_heap) - boot_used)
                return NULL;
        void *p = boot_heap + boot_used;
        boot_used += size;
        return p;
}

INTERPOSER static bool is_boot(const void *p) {
        return (const uint8_t *) p >= boot_heap && (const uint8_t *) p < boot_heap + sizeof(boot_heap);
}

INTERPOSER static void resolve(void) {
        if (real_free)
                return;
        resolving = true;
        real_malloc = (void *(*)(size_t)) dlsym(RTLD_NEXT, "malloc");
        real_calloc = (void *(*)(size_t, size_t)) dlsym(RTLD_NEXT, "calloc");
        real_realloc = (void *(*)(void *, size_t)) dlsym(RTLD_NEXT, "realloc");
        real_free = (void (*)(void *)) dlsym(RTLD_NEXT, "free");
        resolving = false;
        if (!real_malloc || !real_calloc || !real_realloc || !real_free) {
                static const char msg[] = "alloc-fail: cannot find the real allocator\n";
                (void) !write(STDERR_FILENO, msg, sizeof(msg) - 1);
                _exit(EXIT_FAILURE);
        }
}

INTERPOSER static size_t live_hash(const void *p) {
        uint64_t h = (uintptr_t) p * UINT64_C(0x9e3779b97f4a7c15);
        return (size_t) (h >> (64 - LIVE_BITS));
}

INTERPOSER static void live_add(void *p, const void *site) {
        if (n_live >= LIVE_SIZE / 2) {
                /* More live allocations than a seed needs: stop tracking rather than slow down. */
                n_live_overflow++;
                return;
        }
        for (size_t i = live_hash(p);; i = (i + 1) & (LIVE_SIZE - 1))
                if (!live[i].ptr || live[i].ptr == TOMBSTONE) {
                        live[i] = (LiveSlot) { .ptr = p, .site = site, .seq = inj.count };
                        n_live++;
                        return;
                }
}

INTERPOSER static bool live_remove(void *p) {
        if (n_live == 0)
                return false;
        for (size_t i = live_hash(p); live[i].ptr; i = (i + 1) & (LIVE_SIZE - 1))
                if (live[i].ptr == p) {
                        live[i].ptr = TOMBSTONE;
                        n_live--;
                        return true;
                }
        return false;
}

/* Counts the allocation; false when it is the one to fail. */
INTERPOSER static bool alloc_allowed(const void *site) {
        if (!inj.armed)
                return true;
        inj.count++;
        if (inj.count != inj.fail_at)
                return true;
        inj.hit = true;
        inj.hit_site = site;
        return false;
}

INTERPOSER static bool tracked(const void *site) {
        return inj.armed && (uintptr_t) site >= exe_start && (uintptr_t) site < exe_end;
}

INTERPOSER static void *do_malloc(size_t size, const void *site) {
        if (!real_malloc) {
                if (resolving)
                        return boot_alloc(size);
                resolve();
        }
        if (!alloc_allowed(site)) {
                errno = ENOMEM;
                return NULL;
        }
        void *p = real_malloc(size);
        if (p && tracked(site))
                live_add(p, site);
        return p;
}

INTERPOSER void *malloc(size_t size) {
        return do_malloc(size, __builtin_return_address(0));
}

INTERPOSER void *calloc(size_t n, size_t size) {
        const void *site = __builtin_return_address(0);

        if (!real_calloc) {
                if (resolving) {
                        if (size && n > SIZE_MAX / size)
                                return NULL;
                        return boot_alloc(n * size); /* static, so zeroed */
                }
                resolve();
        }
        if (!alloc_allowed(site)) {
                errno = ENOMEM;
                return NULL;
        }
        void *p = real_calloc(n, size);
        if (p && tracked(site))
                live_add(p, site);
        return p;
}

INTERPOSER static void *do_realloc(void *old, size_t size, const void *site) {
        if (!real_realloc)
                resolve();
        if (is_boot(old)) {
                void *p = do_malloc(size, site);
                size_t left = (size_t) (boot_heap + sizeof(boot_heap) - (uint8_t *) old);
                if (p)
                        memcpy(p, old, size < left ? size : left);
                return p;
        }
        if (!alloc_allowed(site)) {
                errno = ENOMEM;
                return NULL;
        }
        bool was_tracked = old && live_remove(old);
        void *p = real_realloc(old, size);
        if (!p) {
                if (was_tracked)
                        live_add(old, site);
                return NULL;
        }
        if (was_tracked || tracked(site))
                live_add(p, site);
        return p;
}

INTERPOSER void *realloc(void *old, size_t size) {
        return do_realloc(old, size, __builtin_return_address(0));
}

INTERPOSER void *reallocarray(void *old, size_t n, size_t size) {
        if (size && n > SIZE_MAX / size) {
                errno = ENOMEM;
                return NULL;
        }
        return do_realloc(old, n * size, __builtin_return_address(0));
}

INTERPOSER void free(void *p) {
        if (!p || is_boot(p))
                return;
        if (!real_free)
                resolve();
        live_remove(p);
        real_free(p);
}

INTERPOSER char *strdup(const char *s) {
        size_t n = strlen(s) + 1;
        char *p = do_malloc(n, __builtin_return_address(0));
        if (p)
                memcpy(p, s, n);
        return p;
}

INTERPOSER char *strndup(const char *s, size_t max) {
        size_t n = strnlen(s, max);
        char *p = do_malloc(n + 1, __builtin_return_address(0));
        if (p) {
                memcpy(p, s, n);
                p[n] = 0;
        }
        return p;
}

_Bool fuzz_allocation_failed(void) {
        return inj.hit;
}

/* ---- reporting */

static void describe_site(const void *site, char *buf, size_t size) {
        Dl_info info;

        if (site && dladdr(site, &info) && info.dli_fname)
                snprintf(buf, size, "%s+0x%zx", info.dli_fname,
                         (size_t) ((uintptr_t) site - (uintptr_t) info.dli_fbase));
        else
                snprintf(buf, size, "%p", site);
}

static const char *current_seed;
static uint64_t current_n;

static void on_fatal_signal(int sig) {
        char site[512], msg[1024];
        int n;

        /* Async-signal-safe enough for a dying process: no allocation, one write(). */
        describe_site(inj.hit_site, site, sizeof(site));
        n = snprintf(msg, sizeof(msg), "alloc-fail: signal %d in %s with allocation %" PRIu64
                     " failing (%s, failed at %s)\n", sig, current_seed ? current_seed : "(setup)",
                     current_n, inj.hit ? "reached" : "not reached yet", inj.hit ? site : "-");
        if (n > 0)
                (void) !write(STDERR_FILENO, msg, (size_t) n < sizeof(msg) ? (size_t) n : sizeof(msg) - 1);
        signal(sig, SIG_DFL);
        raise(sig);
}

static int find_exe(struct dl_phdr_info *info, size_t size, void *userdata) {
        /* The first object is the executable itself. */
        for (int i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
                        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
                        if (!exe_start || a < exe_start)
                                exe_start = a;
                        if (a + ph->p_memsz > exe_end)
                                exe_end = a + ph->p_memsz;
                }
        }
        return 1;
}

/* ---- the driver */

typedef struct {
        unsigned seeds;
        uint64_t runs;          /* runs with one allocation failing */
        uint64_t capped;        /* seeds whose allocations were not all failed (--max) */
        const void *sites[SITES_MAX];
        size_t n_sites;
        unsigned leaks;
} Totals;

static void note_site(Totals *t, const void *site) {
        for (size_t i = 0; i < t->n_sites; i++)
                if (t->sites[i] == site)
                        return;
        if (t->n_sites < SITES_MAX)
                t->sites[t->n_sites++] = site;
}

static void report_leaks(const char *seed, uint64_t n, Totals *t) {
        for (size_t i = 0; i < LIVE_SIZE; i++) {
                char site[512];

                if (!live[i].ptr || live[i].ptr == TOMBSTONE)
                        continue;
                describe_site(live[i].site, site, sizeof(site));
                fprintf(stderr, "alloc-fail: %s: leak with allocation %" PRIu64 " failing: allocation %" PRIu64
                        " from %s is never freed\n", seed, n, live[i].seq, site);
                t->leaks++;
        }
}

static void live_reset(void) {
        memset(live, 0, sizeof(live));
        n_live = 0;
}

/* One run; fail_at 0 fails nothing. Returns the number of allocations the run made. */
static uint64_t run_once(const uint8_t *data, size_t size, uint64_t fail_at, const char *seed, Totals *t) {
        uint64_t made;

        live_reset();
        current_n = fail_at;
        inj = (typeof(inj)) { .armed = true, .fail_at = fail_at };
        (void) LLVMFuzzerTestOneInput(data, size);
        inj.armed = false;
        made = inj.count;
        /* Not after the first run: what it left is the harness's lazily made state (see run_seed()). */
        if (fail_at > 0 && n_live > 0)
                report_leaks(seed, fail_at, t);
        live_reset();
        return made;
}

static int read_seed(const char *path, uint8_t **ret, size_t *ret_size) {
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        uint8_t *buf = malloc(SEED_MAX + 1);
        if (!buf) {
                fclose(f);
                return -ENOMEM;
        }
        size_t n = fread(buf, 1, SEED_MAX + 1, f);
        bool bad = ferror(f) || n > SEED_MAX;
        fclose(f);
        if (bad) {
                free(buf);
                return -EIO;
        }
        /* Exact size, so ASan sees reads past the end. */
        uint8_t *data = malloc(n ? n : 1);
        if (!data) {
                free(buf);
                return -ENOMEM;
        }
        memcpy(data, buf, n);
        free(buf);
        *ret = data;
        *ret_size = n;
        return 0;
}

static void run_seed(const char *path, uint64_t max, bool verbose, Totals *t) {
        uint8_t *data = NULL;
        size_t size = 0;
        uint64_t n, baseline;
        int r;

        r = read_seed(path, &data, &size);
        if (r < 0) {
                fprintf(stderr, "alloc-fail: %s: %s\n", path, strerror(-r));
                exit(EXIT_FAILURE);
        }
        current_seed = path;

        /* The first run, nothing failing: lazily made state of the harness (its key, its verifier,
         * OpenSSL's caches) exists before allocations start to fail, and the count is known. */
        baseline = run_once(data, size, 0, path, t);
        for (n = 1; max == 0 || n <= max; n++) {
                run_once(data, size, n, path, t);
                t->runs++;
                if (!inj.hit)
                        break;
                note_site(t, inj.hit_site);
        }
        if (max > 0 && n > max)
                t->capped++;
        if (verbose)
                fprintf(stderr, "%s: %zu bytes, %" PRIu64 " allocations, %" PRIu64 " failed one at a time%s\n",
                        path, size, baseline, n - 1, max > 0 && n > max ? " (capped)" : "");
        t->seeds++;
        current_seed = NULL;
        free(data);
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char *argv[]) {
        static Totals t;
        const char *dir = NULL;
        uint64_t max = 0;
        bool verbose = getenv("ALLOC_FAIL_VERBOSE");

        for (int i = 1; i < argc; i++) {
                if (strncmp(argv[i], "--max=", 6) == 0) {
                        char *end;
                        errno = 0;
                        max = strtoull(argv[i] + 6, &end, 10);
                        if (errno || *end || end == argv[i] + 6) {
                                fprintf(stderr, "alloc-fail: bad %s\n", argv[i]);
                                return EXIT_FAILURE;
                        }
                } else if (strcmp(argv[i], "-v") == 0)
                        verbose = true;
                else if (!dir)
                        dir = argv[i];
                else {
                        fprintf(stderr, "usage: %s [-v] [--max=N] CORPUS-DIR\n", argv[0]);
                        return EXIT_FAILURE;
                }
        }
        if (!dir) {
                fprintf(stderr, "usage: %s [-v] [--max=N] CORPUS-DIR\n", argv[0]);
                return EXIT_FAILURE;
        }

        resolve();
        dl_iterate_phdr(find_exe, NULL);
        if (!exe_start) {
                fprintf(stderr, "alloc-fail: cannot find this executable's code\n");
                return EXIT_FAILURE;
        }
        signal(SIGABRT, on_fatal_signal);
        signal(SIGSEGV, on_fatal_signal);
        signal(SIGBUS, on_fatal_signal);

        DIR *d = opendir(dir);
        if (!d) {
                fprintf(stderr, "alloc-fail: %s: %s\n", dir, strerror(errno));
                return EXIT_FAILURE;
        }
        char **names = NULL;
        size_t n_names = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "seed-", 5) != 0)
                        continue;
                names = reallocarray(names, n_names + 1, sizeof(char *));
                if (!names || asprintf(&names[n_names], "%s/%s", dir, de->d_name) < 0) {
                        fprintf(stderr, "alloc-fail: out of memory\n");
                        return EXIT_FAILURE;
                }
                n_names++;
        }
        closedir(d);
        if (n_names == 0) {
                fprintf(stderr, "alloc-fail: no seed-* files in %s\n", dir);
                return EXIT_FAILURE;
        }
        /* Sorted, so a failure names the same seed and allocation on every run. */
        qsort(names, n_names, sizeof(char *), compare_names);

        for (size_t i = 0; i < n_names; i++) {
                run_seed(names[i], max, verbose, &t);
                free(names[i]);
        }
        free(names);

        fprintf(stderr, "%u seeds, %" PRIu64 " runs with one allocation failing, %zu distinct allocation sites "
                "failed%s, %" PRIu64 " seeds capped at --max=%" PRIu64 ", %u leaks\n",
                t.seeds, t.runs, t.n_sites, t.n_sites == SITES_MAX ? " (or more)" : "", t.capped, max, t.leaks);
        if (n_live_overflow)
                fprintf(stderr, "alloc-fail: %zu allocations were not tracked (table full)\n", n_live_overflow);
        return t.leaks ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * String-keyed hash table (see hashmap.h). FNV-1a hashing; the table doubles at 70% load.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/macro.h"

typedef struct Entry {
        const char *key; /* NULL = empty */
        void *value;
        uint64_t hash;
} Entry;

struct Hashmap {
        Entry *entries;
        size_t n_buckets; /* power of two, or 0 */
        size_t n_entries;
};

static uint64_t hash_string(const char *s) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (; *s; s++) {
                h ^= (uint8_t) *s;
                h *= 0x100000001b3ULL;
        }
        return h;
}

Hashmap *hashmap_new(void) {
        return calloc(1, sizeof(Hashmap));
}

Hashmap *hashmap_free(Hashmap *h) {
        if (!h)
                return NULL;
        free(h->entries);
        return mfree(h);
}

size_t hashmap_size(const Hashmap *h) {
        return h ? h->n_entries : 0;
}

static size_t find_slot(const Hashmap *h, const char *key, uint64_t hash) {
        size_t mask = h->n_buckets - 1;
        for (size_t i = hash & mask;; i = (i + 1) & mask) {
                const Entry *e = &h->entries[i];
                if (!e->key || (e->hash == hash && streq(e->key, key)))
                        return i;
        }
}

static int grow(Hashmap *h) {
        size_t n = h->n_buckets ? h->n_buckets * 2 : 16;
        Entry *old = h->entries;
        size_t old_n = h->n_buckets;

        if (n < h->n_buckets)
                return -ENOMEM;
        Entry *e = calloc(n, sizeof(Entry));
        if (!e)
                return -ENOMEM;
        h->entries = e;
        h->n_buckets = n;
        for (size_t i = 0; i < old_n; i++)
                if (old[i].key)
                        h->entries[find_slot(h, old[i].key, old[i].hash)] = old[i];
        free(old);
        return 0;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        uint64_t hash = hash_string(key);

        if (h->n_buckets && hashmap_get(h, key))
                return -EEXIST;
        if ((h->n_entries + 1) * 10 > h->n_buckets * 7) {
                int r = grow(h);
                if (r < 0)
                        return r;
        }
        size_t i = find_slot(h, key, hash);
        h->entries[i] = (Entry) { .key = key, .value = value, .hash = hash };
        h->n_entries++;
        return 0;
}

void *hashmap_get(const Hashmap *h, const char *key) {
        if (!h || h->n_buckets == 0)
                return NULL;
        const Entry *e = &h->entries[find_slot(h, key, hash_string(key))];
        return e->key ? e->value : NULL;
}

void *hashmap_remove(Hashmap *h, const char *key) {
        if (!h || h->n_buckets == 0)
                return NULL;

        size_t mask = h->n_buckets - 1;
        size_t i = find_slot(h, key, hash_string(key));
        if (!h->entries[i].key)
                return NULL;
        void *value = h->entries[i].value;

        /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
        for (size_t j = (i + 1) & mask; h->entries[j].key; j = (j + 1) & mask) {
                size_t home = h->entries[j].hash & mask;
                /* Move j into the hole i unless its home lies cyclically in (i, j]. */
                bool stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                        h->entries[i] = h->entries[j];
                        i = j;
                }
        }
        h->entries[i] = (Entry) {};
        h->n_entries--;
        return value;
}

bool hashmap_iterate(const Hashmap *h, size_t *state, void **ret_value) {
        for (; h && *state < h->n_buckets; (*state)++)
                if (h->entries[*state].key) {
                        *ret_value = h->entries[(*state)++].value;
                        return true;
                }
        return false;
}

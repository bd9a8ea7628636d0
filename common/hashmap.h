/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small string-keyed hash table (open addressing, linear probing, backward-shift deletion). Keys
 * are borrowed: the caller keeps each key alive as long as its entry (usually it points into the
 * value). Not thread-safe.
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct Hashmap Hashmap;

Hashmap *hashmap_new(void);
Hashmap *hashmap_free(Hashmap *h);
/* Return: 0; -EEXIST if the key is present; -ENOMEM. */
int hashmap_put(Hashmap *h, const char *key, void *value);
void *hashmap_get(const Hashmap *h, const char *key);
/* Return: the removed value, or NULL. */
void *hashmap_remove(Hashmap *h, const char *key);
size_t hashmap_size(const Hashmap *h);
/* Iterate: *state starts at 0; returns false at the end. */
bool hashmap_iterate(const Hashmap *h, size_t *state, void **ret_value);

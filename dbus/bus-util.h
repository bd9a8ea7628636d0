/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading the a{sv} option dictionaries of the API strictly: every key must be known, appear once and
 * carry the documented type; strings and byte arrays are bounded. Anything else is InvalidArgs,
 * naming the option.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "common/macro.h"

typedef enum BusOptionType {
        BUS_OPTION_STRING,   /* "s" -> char ** (malloc'd) */
        BUS_OPTION_UINT32,   /* "u" -> uint32_t * */
        BUS_OPTION_UINT64,   /* "t" -> uint64_t * */
        BUS_OPTION_BYTES,    /* "ay" -> uint8_t ** (malloc'd) + size */
        BUS_OPTION_STRV,     /* "as" -> char *** (NULL-terminated, malloc'd); max: entries */
        BUS_OPTION_BOOL,     /* "b" -> bool * */
} BusOptionType;

typedef struct BusOption {
        const char *name;
        BusOptionType type;
        void *ret;
        size_t max;          /* strings: bytes; byte arrays: exact size if exact, else maximum */
        bool exact;
        bool printable;      /* strings: printable ASCII only (IDs that travel between systems) */
        bool present;        /* set by bus_read_options() */
        size_t size;         /* byte arrays: their size */
} BusOption;

/* Return: 0, or a negative value with error set (InvalidArgs naming the option). */
int bus_read_options(sd_bus_message *m, BusOption *options, size_t n_options, sd_bus_error *error);
/* Free what bus_read_options() allocated. */
void bus_options_done(BusOption *options, size_t n_options);

char **strv_free(char **l);
bool strv_contains(char *const *l, const char *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);

/* Printable ASCII (0x20..0x7e), 1..max bytes. */
bool string_is_printable_id(const char *s, size_t max);

/* How many bytes of s (valid UTF-8) an error message may quote, at most max: never a cut inside a
 * UTF-8 sequence. sd-bus refuses to send a string that is not valid UTF-8 — an error message with half
 * a character would leave the caller without any answer. Use as "%.*s", bus_quote_len(s, max), s. */
int bus_quote_len(const char *s, size_t max);

/* Reply to a method call with one byte array ("ay"). */
int bus_reply_bytes(sd_bus_message *call, const void *data, size_t size);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strict a{sv} option parsing (see bus-util.h).
 */

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "dbus/bus-util.h"

bool string_is_printable_id(const char *s, size_t max) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

int bus_quote_len(const char *s, size_t max) {
        size_t n = strnlen(s, max);

        /* Cut short: back up to the start of the sequence the cut falls into (RFC 3629 §3:
         * continuation bytes are 10xxxxxx). */
        if (n == max)
                while (n > 0 && ((uint8_t) s[n] & 0xc0) == 0x80)
                        n--;
        return (int) MIN(n, (size_t) INT_MAX);
}

static const char *type_signature(BusOptionType t) {
        switch (t) {
        case BUS_OPTION_STRING:
                return "s";
        case BUS_OPTION_UINT32:
                return "u";
        case BUS_OPTION_UINT64:
                return "t";
        case BUS_OPTION_BYTES:
                return "ay";
        case BUS_OPTION_STRV:
                return "as";
        case BUS_OPTION_BOOL:
                return "b";
        }
        return "";
}

static int read_value(sd_bus_message *m, BusOption *o, sd_bus_error *error) {
        const void *p;
        size_t n;
        const char *s;
        int r;

        switch (o->type) {
        case BUS_OPTION_STRING:
                r = sd_bus_message_read(m, "s", &s);
                if (r < 0)
                        return r;
                if (strlen(s) > o->max)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' is longer than %zu bytes", o->name, o->max);
                if (o->printable && !string_is_printable_id(s, o->max))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' must be 1..%zu printable ASCII characters", o->name,
                                                 o->max);
                char *copy = strdup(s);
                if (!copy)
                        return -ENOMEM;
                *(char **) o->ret = copy;
                return 0;
        case BUS_OPTION_UINT32:
                return sd_bus_message_read(m, "u", o->ret);
        case BUS_OPTION_UINT64:
                return sd_bus_message_read(m, "t", o->ret);
        case BUS_OPTION_BOOL: {
                int b;
                r = sd_bus_message_read(m, "b", &b);
                if (r >= 0)
                        *(bool *) o->ret = b;
                return r;
        }
        case BUS_OPTION_BYTES:
                r = sd_bus_message_read_array(m, 'y', &p, &n);
                if (r < 0)
                        return r;
                if (o->exact ? n != o->max : n > o->max)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' must be %s%zu bytes",
                                                 o->name, o->exact ? "" : "at most ", o->max);
                uint8_t *buf = malloc(n ? n : 1);
                if (!buf)
                        return -ENOMEM;
                memcpy(buf, p, n);
                *(uint8_t **) o->ret = buf;
                o->size = n;
                return 0;
        case BUS_OPTION_STRV: {
                char **l = NULL;
                r = sd_bus_message_read_strv(m, &l);
                if (r < 0)
                        return r;
                size_t count = 0;
                while (l && l[count])
                        count++;
                if (count > o->max) {
                        strv_free(l);
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' has more than %zu entries", o->name, o->max);
                }
                *(char ***) o->ret = l;
                o->size = count;
                return 0;
        }
        }
        return -EINVAL;
}

int bus_read_options(sd_bus_message *m, BusOption *options, size_t n_options, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                BusOption *o = NULL;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_options && !o; i++)
                        if (streq(options[i].name, key))
                                o = &options[i];
                if (!o)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%.*s'",
                                                 bus_quote_len(key, 64), key);
                if (o->present)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' given twice", key);

                const char *sig = type_signature(o->type);
                r = sd_bus_message_enter_container(m, 'v', sig);
                if (r == -ENXIO || r == 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' must be of type '%s'", key, sig);
                if (r < 0)
                        return r;
                r = read_value(m, o, error);
                if (r < 0)
                        return r;
                o->present = true;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

void bus_options_done(BusOption *options, size_t n_options) {
        for (size_t i = 0; i < n_options; i++) {
                if (!options[i].present)
                        continue;
                if (options[i].type == BUS_OPTION_STRV)
                        *(char ***) options[i].ret = strv_free(*(char ***) options[i].ret);
                else if (options[i].type == BUS_OPTION_STRING || options[i].type == BUS_OPTION_BYTES) {
                        free(*(void **) options[i].ret);
                        *(void **) options[i].ret = NULL;
                }
        }
}

char **strv_free(char **l) {
        for (char **i = l; i && *i; i++)
                free(*i);
        free(l);
        return NULL;
}

bool strv_contains(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

int bus_reply_bytes(sd_bus_message *call, const void *data, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', data, size);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r;
}

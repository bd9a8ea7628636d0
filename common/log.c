/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging for agentid programs and libraries (see log.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static int max_level = LOG_INFO;
static LogSink sink;
static void *sink_userdata;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };

        if (!s)
                return -EINVAL;
        if (streq(s, "error"))
                return LOG_ERR;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

void log_set_sink(LogSink s, void *userdata) {
        sink = s;
        sink_userdata = userdata;
}

/* Under systemd stderr is the journal, which understands the kernel-style priority prefix. Decided
 * once, before main() and so before any thread, instead of lazily from whichever thread logs first. */
static bool journal_prefix;

__attribute__((constructor)) static void log_init(void) {
        const char *e = secure_getenv("JOURNAL_STREAM");
        journal_prefix = e && *e;
}

static void log_to_stderr(int level, const char *message) {
        if (journal_prefix)
                fprintf(stderr, "<%d>%s\n", level, message);
        else
                fprintf(stderr, "%s\n", message);
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        /* Make %m print the error we were given, not whatever errno happens to hold. */
        int saved = errno;
        errno = error;
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        errno = saved;

        if (sink)
                sink(level, buf, sink_userdata);
        else
                log_to_stderr(level, buf);

        (void) file;
        (void) line;
        (void) func;
        return -error;
}

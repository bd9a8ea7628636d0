/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Minimal logging. Library folders (common/, keystore/, attest/) log at debug level only; the
 * programs decide what reaches the user. The sink is replaceable so the daemon can send records to
 * the journal without common/ depending on libsystemd.
 *
 * log_*_errno() return -abs(error), so "return log_error_errno(r, ...)" both logs and propagates.
 * "%m" in a message is expanded from the error passed, never from a stale errno.
 */

#include <stdarg.h>
#include <syslog.h>

#include "common/macro.h"

typedef void (*LogSink)(int level, const char *message, void *userdata);

void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses "debug", "info", "notice", "warning", "err"/"error", "crit" or a number 0..7. */
int log_level_from_string(const char *s);
/* NULL restores the default sink: stderr, with a "<N>" prefix when stderr is the journal/syslog. */
void log_set_sink(LogSink sink, void *userdata);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)

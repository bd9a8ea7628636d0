/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What agentidctl's commands share: exit statuses (agentidctl(1)) and reporting a failed call. */

#include <systemd/sd-bus.h>

enum {
        EXIT_REFUSED = 1,
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,
};

/*
 * ctl_report_error() - print a failed call with its D-Bus error name, so scripts and humans can tell
 * refusals apart
 * Return: -EXIT_UNREACHABLE when agentidd did not answer, else -EXIT_REFUSED.
 */
int ctl_report_error(const char *what, const sd_bus_error *error, int r);

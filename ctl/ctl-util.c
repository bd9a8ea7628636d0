/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of agentidctl's commands (see ctl-util.h).
 */

#include <stdio.h>
#include <string.h>

#include "ctl/ctl-util.h"

int ctl_report_error(const char *what, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error)) {
                fprintf(stderr, "%s: %s (%s)\n", what, error->message ?: "", error->name);
                if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                           SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT))
                        return -EXIT_UNREACHABLE;
        } else
                fprintf(stderr, "%s: %s\n", what, strerror(-r));
        return -EXIT_REFUSED;
}

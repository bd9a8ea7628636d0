/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Error names for D-Bus replies (see errors.h).
 */

#include <stdarg.h>
#include <stdio.h>

#include "dbus/errors.h"

const char *bus_error_name_from_errno(int r) {
        switch (r < 0 ? -r : r) {
        case ENOENT:
                return AGENTID_ERROR_NO_SUCH_KEY;
        case EEXIST:
                return AGENTID_ERROR_KEY_EXISTS;
        case EKEYEXPIRED:
                return AGENTID_ERROR_KEY_EXPIRED;
        case EKEYREVOKED:
                return AGENTID_ERROR_KEY_DESTROYED;
        case EMEDIUMTYPE:
                return AGENTID_ERROR_KEY_UNUSABLE;
        case EBUSY:
        case ECANCELED:
        case ESHUTDOWN:
                return AGENTID_ERROR_BUSY;
        case ENODEV:
        case ENXIO:
                return AGENTID_ERROR_TPM_UNAVAILABLE;
        case EACCES:
        case EPERM:
                return SD_BUS_ERROR_ACCESS_DENIED;
        case EINVAL:
        case E2BIG:
                return SD_BUS_ERROR_INVALID_ARGS;
        case ENOSPC:
        case EDQUOT:
        case EROFS:
                return AGENTID_ERROR_STORAGE_FAILURE;
        case ENOMEM:
                return SD_BUS_ERROR_NO_MEMORY;
        default:
                return AGENTID_ERROR_TPM_FAILURE;
        }
}

int bus_error_setf_errno(sd_bus_error *error, int r, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return sd_bus_error_set(error, bus_error_name_from_errno(r), msg);
}

int bus_reply_errno(sd_bus_message *call, int r, const char *message) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        (void) sd_bus_error_set(&error, bus_error_name_from_errno(r), message);
        return sd_bus_reply_method_error(call, &error);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Golden vectors from docs/formats.md (see golden.h).
 */

#include <ctype.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/macro.h"
#include "tests/lib/golden.h"

int golden_load(const char *name, uint8_t **ret, size_t *ret_size) {
        const char *doc = getenv("AGENTID_TEST_FORMATS_DOC");
        _cleanup_free_ uint8_t *text = NULL;
        _cleanup_free_ char *marker = NULL, *hex = NULL;
        size_t size = 0;
        int r;

        if (!doc)
                return -EINVAL;
        r = read_file_at(AT_FDCWD, doc, 4 << 20, &text, &size);
        if (r < 0)
                return r;
        if (asprintf(&marker, "<!-- golden:%s -->", name) < 0)
                return -ENOMEM;

        const char *p = strstr((const char *) text, marker);
        if (!p)
                return -ENOENT;
        p = strstr(p, "```hex\n");
        if (!p)
                return -EINVAL;
        p += strlen("```hex\n");
        const char *end = strstr(p, "```");
        if (!end)
                return -EINVAL;

        hex = malloc((size_t) (end - p) + 1);
        if (!hex)
                return -ENOMEM;
        size_t n = 0;
        bool comment = false;
        for (const char *q = p; q < end; q++) {
                if (*q == '\n')
                        comment = false;
                else if (*q == ';')
                        comment = true;
                else if (!comment && !isspace((unsigned char) *q))
                        hex[n++] = *q;
        }
        hex[n] = 0;
        return hex_decode(hex, ret, ret_size);
}

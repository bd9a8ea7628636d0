/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UTF-8 checks (see utf8.h).
 */

#include <stdint.h>

#include "common/utf8.h"

/* Returns true if s[0..n) is valid UTF-8; otherwise *ret_bad (if set) is the offset of the first
 * sequence that is not. */
bool utf8_is_valid(const void *data, size_t n, size_t *ret_bad) {
        const uint8_t *s = data;
        size_t i = 0;

        while (i < n) {
                uint8_t c = s[i], lo = 0x80, hi = 0xbf;
                size_t more;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        more = 1;               /* 0xc0, 0xc1 could only start overlong forms */
                else if (c == 0xe0) {
                        more = 2;
                        lo = 0xa0;              /* overlong below U+0800 */
                } else if (c == 0xed) {
                        more = 2;
                        hi = 0x9f;              /* U+D800..U+DFFF are surrogates, not scalar values */
                } else if (c >= 0xe1 && c <= 0xef)
                        more = 2;
                else if (c == 0xf0) {
                        more = 3;
                        lo = 0x90;              /* overlong below U+10000 */
                } else if (c >= 0xf1 && c <= 0xf3)
                        more = 3;
                else if (c == 0xf4) {
                        more = 3;
                        hi = 0x8f;              /* nothing above U+10FFFF */
                } else
                        goto bad;

                if (more > n - i - 1)
                        goto bad;
                if (s[i + 1] < lo || s[i + 1] > hi)
                        goto bad;
                for (size_t k = 2; k <= more; k++)
                        if ((s[i + k] & 0xc0) != 0x80)
                                goto bad;
                i += more + 1;
        }
        return true;

bad:
        if (ret_bad)
                *ret_bad = i;
        return false;
}

bool utf8_is_text(const void *data, size_t n) {
        const uint8_t *s = data;

        if (!utf8_is_valid(s, n, NULL))
                return false;
        /* Valid UTF-8 now, so control characters are single bytes (C0, DEL) or U+0080..U+009F,
         * which is encoded as c2 80..c2 9f. */
        for (size_t i = 0; i < n; i++) {
                if (s[i] < 0x20 || s[i] == 0x7f)
                        return false;
                if (s[i] == 0xc2 && i + 1 < n && s[i + 1] <= 0x9f)
                        return false;
        }
        return true;
}

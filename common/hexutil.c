/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hexadecimal helpers (see hexutil.h).
 */

#include <stdlib.h>
#include <string.h>

#include "common/hexutil.h"
#include "common/macro.h"

void hex_encode_to(const void *p, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        const uint8_t *b = p;

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 0xf];
        }
        out[2 * n] = '\0';
}

char *hex_encode(const void *p, size_t n) {
        size_t sz;
        if (!size_mul(n, 2, &sz) || !size_add(sz, 1, &sz))
                return NULL;
        char *s = malloc(sz);
        if (!s)
                return NULL;
        hex_encode_to(p, n, s);
        return s;
}

static int unhex_char(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

int hex_decode(const char *s, uint8_t **ret, size_t *ret_len) {
        size_t l = strlen(s);
        if (l % 2 != 0)
                return -EINVAL;

        _cleanup_free_ uint8_t *buf = malloc(l / 2 + 1); /* +1: never malloc(0) */
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < l / 2; i++) {
                int hi = unhex_char(s[2 * i]), lo = unhex_char(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                buf[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret = TAKE_PTR(buf);
        *ret_len = l / 2;
        return 0;
}

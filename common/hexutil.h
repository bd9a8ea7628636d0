/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Lower-case hexadecimal encoding and strict decoding. */

#include <stddef.h>
#include <stdint.h>

/* Return: a malloc'd NUL-terminated string, or NULL on allocation failure. */
char *hex_encode(const void *p, size_t n);
/* Writes 2*n+1 bytes into out. */
void hex_encode_to(const void *p, size_t n, char *out);
/* Decodes an even-length string of [0-9a-fA-F]. Return: 0, -EINVAL if malformed, -ENOMEM. */
int hex_decode(const char *s, uint8_t **ret, size_t *ret_len);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * UTF-8 (RFC 3629 §3, §4): one implementation for the CBOR validator and encoder, key records,
 * evidence and revocation lists.
 */

#include <stdbool.h>
#include <stddef.h>

/* Is s[0..n) valid UTF-8 (no overlong forms, surrogates or values past U+10FFFF)? If not and ret_bad
 * is set, it receives the offset of the first bad sequence. */
bool utf8_is_valid(const void *s, size_t n, size_t *ret_bad);

/* Valid UTF-8 without control characters (C0, DEL, C1 = U+0080..U+009F): text shown to people, where
 * a control character could rewrite what they see. */
bool utf8_is_text(const void *s, size_t n);

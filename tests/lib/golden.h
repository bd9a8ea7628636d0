/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Golden vectors live in docs/formats.md, so the documentation and the tests cannot drift apart. A
 * vector is a fenced ```hex block directly after a marker line "<!-- golden:NAME -->"; whitespace in
 * the block is ignored and ";" starts a comment that runs to the end of the line. The build passes
 * the document's path in AGENTID_TEST_FORMATS_DOC.
 */

#include <stddef.h>
#include <stdint.h>

/* Return: 0 and a malloc'd buffer; -ENOENT if no such vector; -EINVAL if malformed. */
int golden_load(const char *name, uint8_t **ret, size_t *ret_size);

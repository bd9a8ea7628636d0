/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * For unit tests that drive a command-line tool of this build (agentid-verify): where it is, a run
 * with its standard output captured, and a scratch directory's files. Test fixtures: a failure of the
 * fixture itself aborts the test program.
 */

#include <stddef.h>

/* <build>/tools/<tool> next to this test's <build>/tests/unit/, or NULL if it is not built. */
char *test_cli_path(const char *tool);
/* Run argv (argv[0] a path) with stdout to <dir>/stdout and stderr to /dev/null; *ret_out its
 * output (malloc'd, NUL-terminated). Return: the exit status. */
int test_run_cli(const char *dir, char *const argv[], char **ret_out);
/* Write <dir>/<name>; return its malloc'd path. */
char *test_write_tmp(const char *dir, const char *name, const void *data, size_t size);
/* Remove the files in dir, then dir. Return: 0 or -errno. */
int test_remove_dir(const char *dir);

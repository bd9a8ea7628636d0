/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * agentidctl's offline audit commands: they read <state>/audit/ with the daemon's own reader and need
 * neither the bus nor agentidd, only permission to read the state directory (root, usually). Nothing
 * is ever written.
 *
 *   agentidctl audit show [--json] [--state-dir=DIR]
 *   agentidctl audit verify [--state-dir=DIR] [--host-key=FILE] [--head=FILE]
 */

/*
 * ctl_audit() - run `agentidctl audit ...`
 * @argv: starting at the word "audit" (argv[0]), then the subcommand and its options; parsed here with
 *        getopt_long() (optind is reset), so call it before, or instead of, agentidctl's own parsing
 *
 * Return: the exit status: 0 the log is intact (show: every record printed); 1 a record fails a check
 *         (the first one is named); 2 usage or I/O error.
 */
int ctl_audit(int argc, char *argv[]);

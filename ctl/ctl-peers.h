/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * agentidctl's peer commands: the registry of approved peers whose task tokens may be parents of this
 * host's tokens (org.agentid1.Manager.AddPeer, RemovePeer, ListPeers; docs/dbus-api.md "Delegation").
 *
 *   agentidctl peers add URI --public-key=FILE [--kid=HEX]
 *   agentidctl peers add URI --evidence=FILE --nonce=HEX --trusted-ak=FILE
 *   agentidctl peers list [--json]
 *   agentidctl peers remove URI
 *   agentidctl peers export --output=FILE
 */

/*
 * ctl_peers() - run `agentidctl [OPTIONS] peers ...`
 * @argc, @argv: agentidctl's whole command line; parsed here with getopt_long() and peers' own options
 *
 * Return: the exit status: 0 success; 1 refused or failed (also: evidence that does not verify);
 *         2 usage error; 3 agentidd unreachable.
 */
int ctl_peers(int argc, char *argv[]);

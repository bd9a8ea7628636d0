#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An agent's side of the agent-to-agent hop, over agentidd's D-Bus API.

The agent finds its own key by name (org.agentid1.Manager.GetKey), signs a JSON request that carries
its task ID with Key.SignMessage (a COSE_Sign1 whose protected header names the audience and the
task: docs/formats.md section 3), and asks for a task token addressed to the peer (Key.IssueToken, a
CWT: section 8). With --attest-nonce it also fetches TPM evidence for the peer's nonce (Key.Attest,
section 5), so that the peer can check that the key lives in this host's TPM. Everything is written
to --out-dir for the peer, and what was written is printed (--json: as JSON).

Only Debian's python3-dbus and the standard library are used. The bus is the system bus, or the one
DBUS_SYSTEM_BUS_ADDRESS names (libdbus reads it). Calls allow interactive authorization, so a request
that a policy 'confirm' rule holds waits for an administrator's 'agentidctl approve' (up to --timeout).
"""

import argparse
import json
import os
import sys
import tempfile

try:
    import dbus
    import dbus.lowlevel
except ImportError:
    sys.exit('agent.py: the D-Bus bindings are missing: apt-get install python3-dbus '
             '(and run this with /usr/bin/python3)')

BUS_NAME = 'org.agentid1'
MANAGER_PATH = '/org/agentid1'
MANAGER_IFACE = 'org.agentid1.Manager'
KEY_IFACE = 'org.agentid1.Key'
PROPS_IFACE = 'org.freedesktop.DBus.Properties'


class Failure(Exception):
    """An error worth one line on stderr and exit status 1."""


class Agentidd:
    """Method calls to agentidd; a D-Bus error becomes a Failure naming the step, the error and its text."""

    def __init__(self, bus, timeout):
        self.bus = bus
        self.timeout = timeout

    def call(self, what, path, iface, member, signature, *args):
        msg = dbus.lowlevel.MethodCallMessage(BUS_NAME, path, iface, member)
        msg.append(*args, signature=signature)
        # A 'confirm' policy rule holds a call for a human's approval only if the caller allows
        # interactive authorization (docs/dbus-api.md); otherwise it fails at once with
        # InteractiveAuthorizationRequired. The call then waits up to --timeout for the answer.
        msg.set_allow_interactive_authorization(True)
        try:
            reply = self.bus.send_message_with_reply_and_block(msg, self.timeout)
        except dbus.exceptions.DBusException as e:
            raise Failure('%s failed: %s: %s' % (what, e.get_dbus_name(), e.get_dbus_message())) from None
        return reply.get_args_list(byte_arrays=True)

    def key_path(self, name):
        return self.call("Looking up key '%s' (Manager.GetKey)" % name, MANAGER_PATH, MANAGER_IFACE,
                         'GetKey', 's', name)[0]

    def key_property(self, name, path, prop):
        return self.call("Reading property %s of key '%s'" % (prop, name), path, PROPS_IFACE, 'Get',
                         'ss', KEY_IFACE, prop)[0]


def load_request(path, task_id):
    """The request as a JSON object carrying the task ID, in the canonical bytes that are signed."""
    try:
        if path == '-':
            request = json.load(sys.stdin)
        else:
            with open(path, encoding='utf-8') as f:
                request = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure('Cannot read the request %s: %s' % (path, e)) from None
    if not isinstance(request, dict):
        raise Failure('The request %s is not a JSON object' % path)
    if request.setdefault('task_id', task_id) != task_id:
        raise Failure("The request's task_id %r is not --task-id %r" % (request['task_id'], task_id))
    # Sorted keys, no spaces: the same request always gives the same bytes.
    return json.dumps(request, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def write_file(directory, name, data):
    """Writes DATA to DIRECTORY/NAME atomically, readable by the peer: nothing here is secret."""
    path = os.path.join(directory, name)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % name)
    except OSError as e:
        raise Failure('Cannot write %s: %s' % (path, e)) from None
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise Failure('Cannot write %s: %s' % (path, e)) from None
    return path


def parse_args():
    p = argparse.ArgumentParser(
        description="Sign a request for a peer agent and obtain a task token addressed to it, with "
                    "this agent's TPM-resident key, through agentidd on the system bus "
                    "(DBUS_SYSTEM_BUS_ADDRESS if set).",
        epilog='Writes to --out-dir: request.json (the exact bytes signed), request.cose '
               '(Key.SignMessage), task.cwt (Key.IssueToken) and, with --attest-nonce, evidence.cbor '
               '(Key.Attest); prints what it wrote (--json: as JSON). Exit status: 0 on success, 1 '
               'when agentidd refuses or a file cannot be read or written (the D-Bus error name and '
               'message are printed), 2 on usage errors.')
    p.add_argument('key', metavar='KEY', help="this agent's key name (the caller's uid must be its uid)")
    peer = p.add_mutually_exclusive_group(required=True)
    peer.add_argument('--peer', metavar='NAME',
                      help="the peer's key name on this host; its Uri property is the audience")
    peer.add_argument('--peer-uri', metavar='URI', help="the peer's agent URI (on any host)")
    p.add_argument('--task-id', required=True, metavar='ID', help='the task the request belongs to')
    p.add_argument('--parent-task-id', metavar='ID', help='the task that started this one')
    p.add_argument('--request', required=True, metavar='FILE',
                   help="the request, a JSON object ('-': stdin); task_id is added if it is absent")
    p.add_argument('--scope', action='append', default=[], metavar='TOKEN',
                   help='a scope token the token grants the peer (repeat for several)')
    p.add_argument('--ttl', type=int, default=300, metavar='SECONDS',
                   help='token lifetime in seconds (default: 300)')
    p.add_argument('--attest-nonce', metavar='HEX',
                   help="also fetch TPM evidence of the key for the peer's nonce (16..64 bytes, hex)")
    p.add_argument('--out-dir', default='.', metavar='DIR',
                   help='where to write the files (default: the current directory)')
    p.add_argument('--json', action='store_true',
                   help='print the summary as JSON (URIs, task, scope, ttl, the paths written, the nonce)')
    p.add_argument('--timeout', type=float, default=330, metavar='SECONDS',
                   help="how long to wait for each answer, e.g. while a policy rule holds the request "
                        "for a human's approval (default: 330, longer than agentidd's longest "
                        "approval timeout)")
    args = p.parse_args()
    if args.ttl <= 0:
        p.error('--ttl must be positive')
    if args.attest_nonce is not None:
        try:
            args.attest_nonce = bytes.fromhex(args.attest_nonce)
        except ValueError:
            p.error('--attest-nonce is not hex')
        if not 16 <= len(args.attest_nonce) <= 64:
            p.error('--attest-nonce must be 16..64 bytes')
    return args


def run(args):
    payload = load_request(args.request, args.task_id)
    # Before anything is signed: a signature nobody receives is still in the audit log.
    if not os.path.isdir(args.out_dir) or not os.access(args.out_dir, os.W_OK | os.X_OK):
        raise Failure('--out-dir %s is not a directory this user can write to' % args.out_dir)

    try:
        bus = dbus.SystemBus()
    except dbus.exceptions.DBusException as e:
        raise Failure('Cannot connect to the system bus (%s): %s: %s' % (
            os.environ.get('DBUS_SYSTEM_BUS_ADDRESS', 'the default address'),
            e.get_dbus_name(), e.get_dbus_message())) from None
    agentidd = Agentidd(bus, args.timeout)
    key = agentidd.key_path(args.key)
    uri = str(agentidd.key_property(args.key, key, 'Uri'))
    if args.peer:
        audience = str(agentidd.key_property(args.peer, agentidd.key_path(args.peer), 'Uri'))
    else:
        audience = args.peer_uri

    # SignMessage, not Sign: the message's signed header carries the audience and the task ID
    # (docs/formats.md §3, label 15), so the peer can check that the request was meant for it and
    # for this task, and agentid-verify checks it. A bare signature over a digest says neither.
    context = {'task_id': args.task_id, 'audience': audience}
    if args.parent_task_id:
        context['parent_task_id'] = args.parent_task_id
    message = agentidd.call('Signing the request (Key.SignMessage)', key, KEY_IFACE, 'SignMessage',
                            'aya{sv}', dbus.ByteArray(payload), context)[0]

    token_request = {
        'audience': dbus.String(audience),
        'task_id': dbus.String(args.task_id),
        'ttl': dbus.UInt64(args.ttl),
    }
    if args.scope:
        token_request['scope'] = dbus.Array(args.scope, signature='s')
    if args.parent_task_id:
        token_request['parent_task_id'] = dbus.String(args.parent_task_id)
    token = agentidd.call('Issuing the task token (Key.IssueToken)', key, KEY_IFACE, 'IssueToken',
                          'a{sv}', token_request)[0]

    evidence = None
    if args.attest_nonce is not None:
        attest_context = {'task_id': args.task_id}
        if args.parent_task_id:
            attest_context['parent_task_id'] = args.parent_task_id
        evidence = agentidd.call('Attesting the key (Key.Attest)', key, KEY_IFACE, 'Attest',
                                 'aya{sv}', dbus.ByteArray(args.attest_nonce), attest_context)[0]

    out = {
        'agent': uri,
        'audience': audience,
        'task_id': args.task_id,
        'scope': args.scope,
        'ttl': args.ttl,
        'request': write_file(args.out_dir, 'request.json', payload),
        'message': write_file(args.out_dir, 'request.cose', bytes(message)),
        'token': write_file(args.out_dir, 'task.cwt', bytes(token)),
    }
    if evidence is not None:
        out['evidence'] = write_file(args.out_dir, 'evidence.cbor', bytes(evidence))
        out['nonce'] = args.attest_nonce.hex()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write('\n')
        return
    print('%s -> %s, task %s' % (uri, audience, args.task_id))
    print('  request.json   %4d bytes: the request, exactly as signed' % len(payload))
    print('  request.cose   %4d bytes: Key.SignMessage, COSE_Sign1 naming the peer and the task' % (
        len(message)))
    print('  task.cwt       %4d bytes: Key.IssueToken, scope "%s", valid %d s' % (
        len(token), ' '.join(args.scope), args.ttl))
    if evidence is not None:
        print("  evidence.cbor  %4d bytes: Key.Attest for the peer's nonce" % len(evidence))
    print('written to %s' % args.out_dir)


def main():
    args = parse_args()
    try:
        run(args)
    except Failure as e:
        print('agent.py: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

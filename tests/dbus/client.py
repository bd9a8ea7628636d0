#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""D-Bus client that the test harness (harness.py) runs as another user.

The harness starts it as `setpriv --reuid=UID --regid=GID --clear-groups PYTHON -I client.py MODE ...`,
so the daemon sees a caller with that uid (and, for executable pinning, that /proc/PID/exe). It only
needs dbus-python and the standard library, and must stay importable on its own: the harness copies it
into the test's temporary directory so that unprivileged uids can read it.

Modes:
  call       one method call; prints one JSON line {"ok": true, "value": V} or
             {"ok": false, "error": "<D-Bus error name>", "message": "..."}. With --interactive the
             call allows interactive authorization (policy "confirm" holds it for approval).
  sign-loop  calls Key.Sign with random digests on one connection until stdin reaches EOF or the
             deadline passes; prints "ready" after --ready-after successes, then one JSON line
             {"unique_name", "uid", "records": [[t_send, t_recv, ok, error, digest_hex, sig_hex]]}
             with CLOCK_MONOTONIC times (comparable across processes).

Values cross the process boundary as JSON typed by the D-Bus signature (see to_json/from_json):
ay as a hex string, a{KV} as [[k, v], ...], other arrays and structs as lists, variants as
[signature, value]. Results are converted without a signature (plain()): byte arrays as hex,
dictionaries with string keys as objects.
"""

import argparse
import json
import os
import select
import sys
import time

import dbus
import dbus.lowlevel

BASIC = {
    'y': dbus.Byte, 'n': dbus.Int16, 'q': dbus.UInt16, 'i': dbus.Int32, 'u': dbus.UInt32,
    'x': dbus.Int64, 't': dbus.UInt64, 'b': dbus.Boolean, 'd': dbus.Double,
    's': dbus.String, 'o': dbus.ObjectPath, 'g': dbus.Signature,
}


def _end_of_type(sig, i):
    c = sig[i]
    if c == 'a':
        return _end_of_type(sig, i + 1)
    if c in '({':
        close = ')' if c == '(' else '}'
        j = i + 1
        while sig[j] != close:
            j = _end_of_type(sig, j)
        return j + 1
    return i + 1


def split_signature(sig):
    """'aya{sv}' -> ['ay', 'a{sv}']"""
    out, i = [], 0
    while i < len(sig):
        j = _end_of_type(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def variant_signature(v):
    """The D-Bus signature of a (dbus-typed) value placed in a variant."""
    if isinstance(v, (dbus.ByteArray, bytes, bytearray)):
        return 'ay'
    if isinstance(v, (dbus.Boolean, bool)):
        return 'b'
    for code, typ in BASIC.items():
        if code not in 'bs' and isinstance(v, typ):
            return code
    if isinstance(v, str):
        return 's'
    if isinstance(v, int):
        return 'i'
    if isinstance(v, float):
        return 'd'
    if isinstance(v, dbus.Dictionary) and v.signature:
        return 'a{' + v.signature + '}'
    if isinstance(v, dbus.Array) and v.signature:
        return 'a' + v.signature
    if isinstance(v, dbus.Struct):
        return '(' + ''.join(variant_signature(x) for x in v) + ')'
    raise TypeError('cannot tell the D-Bus type of %r in a variant; use dbus types' % (v,))


def to_json(sig, v):
    """A value of D-Bus type sig -> typed JSON (see the module comment)."""
    if sig == 'ay':
        return bytes(v).hex()
    c = sig[0]
    if c == 'a':
        inner = sig[1:]
        if inner[0] == '{':
            ks, vs = split_signature(inner[1:-1])
            items = v.items() if hasattr(v, 'items') else v
            return [[to_json(ks, k), to_json(vs, x)] for k, x in items]
        return [to_json(inner, x) for x in v]
    if c == '(':
        return [to_json(s, x) for s, x in zip(split_signature(sig[1:-1]), v, strict=True)]
    if c == 'v':
        s = variant_signature(v)
        return [s, to_json(s, v)]
    if c in 'ynqiuxt':
        return int(v)
    if c == 'b':
        return bool(v)
    if c == 'd':
        return float(v)
    if c in 'sog':
        return str(v)
    raise TypeError('unsupported D-Bus type ' + sig)


def from_json(sig, j):
    """Typed JSON -> a dbus-python value of type sig."""
    if sig == 'ay':
        return dbus.ByteArray(bytes.fromhex(j))
    c = sig[0]
    if c == 'a':
        inner = sig[1:]
        if inner[0] == '{':
            ks, vs = split_signature(inner[1:-1])
            return dbus.Dictionary({from_json(ks, k): from_json(vs, x) for k, x in j}, signature=ks + vs)
        return dbus.Array([from_json(inner, x) for x in j], signature=inner)
    if c == '(':
        inner = sig[1:-1]
        return dbus.Struct([from_json(s, x) for s, x in zip(split_signature(inner), j, strict=True)],
                           signature=inner)
    if c == 'v':
        s, x = j
        return from_json(s, x)
    if c in BASIC:
        return BASIC[c](j)
    raise TypeError('unsupported D-Bus type ' + sig)


def plain(v):
    """A received dbus-python value -> JSON without type information."""
    if isinstance(v, (dbus.ByteArray, bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, dbus.Array) and v.signature == 'y':
        return bytes(v).hex()
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {str(k): plain(x) for k, x in v.items()}
        return [[plain(k), plain(x)] for k, x in v.items()]
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (dbus.Boolean, bool)):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    if v is None:
        return None
    raise TypeError('cannot convert %r' % (v,))


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def do_call(a):
    bus = dbus.bus.BusConnection(a.address)
    args = json.loads(a.args)
    sigs = split_signature(a.signature)
    if len(sigs) != len(args):
        raise SystemExit('signature %r does not match %d arguments' % (a.signature, len(args)))
    values = [from_json(s, x) for s, x in zip(sigs, args)]
    try:
        if a.interactive:
            # call_blocking cannot set ALLOW_INTERACTIVE_AUTHORIZATION; build the message by hand.
            msg = dbus.lowlevel.MethodCallMessage(a.dest, a.path, a.interface, a.method)
            msg.set_allow_interactive_authorization(True)
            if values:
                msg.append(signature=a.signature, *values)
            reply = bus.send_message_with_reply_and_block(msg, a.timeout)
            out = reply.get_args_list(byte_arrays=True)
            r = out[0] if len(out) == 1 else (tuple(out) if out else None)
        else:
            r = bus.call_blocking(a.dest, a.path, a.interface, a.method, a.signature, values,
                                  timeout=a.timeout, byte_arrays=True)
    except dbus.exceptions.DBusException as e:
        emit({'ok': False, 'error': e.get_dbus_name(), 'message': e.get_dbus_message()})
    else:
        emit({'ok': True, 'value': plain(r)})
    bus.close()


def stdin_closed():
    r, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(r) and sys.stdin.buffer.read1(4096) == b''


def do_sign_loop(a):
    bus = dbus.bus.BusConnection(a.address)
    context = from_json('a{sv}', json.loads(a.context))
    deadline = time.monotonic() + a.deadline
    records = []
    successes = 0
    while time.monotonic() < deadline and not stdin_closed():
        digest = os.urandom(32)
        t_send = time.monotonic()
        try:
            sig = bus.call_blocking(a.dest, a.path, 'org.agentid1.Key', 'Sign', 'aya{sv}',
                                    [dbus.ByteArray(digest), context], timeout=a.timeout, byte_arrays=True)
        except dbus.exceptions.DBusException as e:
            records.append([t_send, time.monotonic(), False, e.get_dbus_name(), digest.hex(), None])
        else:
            records.append([t_send, time.monotonic(), True, None, digest.hex(), bytes(sig).hex()])
            successes += 1
            if successes == a.ready_after:
                sys.stdout.write('ready\n')
                sys.stdout.flush()
    emit({'unique_name': bus.get_unique_name(), 'uid': os.geteuid(), 'records': records})
    bus.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('mode', choices=['call', 'sign-loop'])
    p.add_argument('--address', required=True)
    p.add_argument('--dest', default='org.agentid1')
    p.add_argument('--path', required=True)
    p.add_argument('--interface')
    p.add_argument('--method')
    p.add_argument('--signature', default='')
    p.add_argument('--args', default='[]')
    p.add_argument('--timeout', type=float, default=30)
    p.add_argument('--interactive', action='store_true',
                   help='set ALLOW_INTERACTIVE_AUTHORIZATION (a policy "confirm" may then hold the call)')
    p.add_argument('--context', default='[]')
    p.add_argument('--ready-after', type=int, default=3)
    p.add_argument('--deadline', type=float, default=30)
    a = p.parse_args()
    if a.mode == 'call':
        do_call(a)
    else:
        do_sign_loop(a)


if __name__ == '__main__':
    main()

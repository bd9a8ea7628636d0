#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A latency model of a hardware TPM in front of swtpm, for benchmarks (docs/performance.md).

swtpm signs with ECDSA P-256 in about a millisecond; a discrete TPM takes 30-80 ms, and tens of
milliseconds for most other commands. This relay listens where a "swtpm:path=" TCTI connects (a data
socket PATH and a control socket PATH.ctrl), forwards everything to the real swtpm, and answers each
TPM command no sooner than a chosen time after it arrived: --sign-ms for TPM2_Sign, --other-ms for
every other command. The control channel (locality, power) is passed through untouched.

    tpm-latency-relay.py --listen=/tmp/slow.sock --upstream=/tmp/tpm.sock --sign-ms=40 --other-ms=5

The data channel carries bare TPM commands and responses, each a 10-byte header (tag, total size,
command or response code, big-endian) and the rest of its size. Commands are answered one at a time, as a
TPM does. Stop it with SIGTERM.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time

TPM2_CC_SIGN = 0x0000015D
HEADER_SIZE = 10
MAX_MESSAGE = 4096          # TPM2_PT_MAX_COMMAND_SIZE / RESPONSE_SIZE of swtpm

# One TPM: a command from any connection waits for the one before it.
tpm_lock = threading.Lock()


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_message(sock):
    """One TPM command or response: header, then the rest of its declared size. None at EOF."""
    header = recv_exact(sock, HEADER_SIZE)
    if header is None:
        return None
    _, size, code = struct.unpack('>HII', header)
    if size < HEADER_SIZE or size > MAX_MESSAGE:
        raise ValueError('TPM message of %d bytes' % size)
    rest = recv_exact(sock, size - HEADER_SIZE)
    if rest is None:
        raise ValueError('TPM message cut short')
    return header + rest, code


def serve_data(client, upstream_path, sign_s, other_s):
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
        up.connect(upstream_path)
        while True:
            msg = recv_message(client)
            if msg is None:
                return
            command, code = msg
            with tpm_lock:
                t0 = time.monotonic()
                up.sendall(command)
                reply = recv_message(up)
                if reply is None:
                    return
                wait = (sign_s if code == TPM2_CC_SIGN else other_s) - (time.monotonic() - t0)
                if wait > 0:
                    time.sleep(wait)
            client.sendall(reply[0])


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_ctrl(client, upstream_path):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(upstream_path)
    t = threading.Thread(target=pipe, args=(up, client), daemon=True)
    t.start()
    pipe(client, up)
    t.join()
    client.close()
    up.close()


def listen(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)
    return s


def accept_loop(server, handler, *args):
    while True:
        client, _ = server.accept()
        threading.Thread(target=handler, args=(client,) + args, daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--listen', required=True, help='data socket to create (PATH.ctrl is made too)')
    ap.add_argument('--upstream', required=True, help="swtpm's data socket (its control socket is UPSTREAM.ctrl)")
    ap.add_argument('--sign-ms', type=float, default=40.0, help='time a TPM2_Sign takes (default 40)')
    ap.add_argument('--other-ms', type=float, default=5.0, help='time any other command takes (default 5)')
    a = ap.parse_args()
    if a.sign_ms < 0 or a.other_ms < 0:
        ap.error('times must not be negative')

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    data, ctrl = listen(a.listen), listen(a.listen + '.ctrl')
    threading.Thread(target=accept_loop, args=(ctrl, serve_ctrl, a.upstream + '.ctrl'), daemon=True).start()
    accept_loop(data, serve_data, a.upstream, a.sign_ms / 1000.0, a.other_ms / 1000.0)


if __name__ == '__main__':
    main()

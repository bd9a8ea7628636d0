#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Test harness for the "dbus" suite (DESIGN §7): a private swtpm, a private system bus, agentidd.

Stack (a context manager) gives one test class its own world under /tmp/agentid-dbus-XXXXXX:

  tpm/state, tpm.sock   a copy of the manufactured swtpm template and its swtpm (no resource manager)
  bus.conf, bus.sock    a dbus-daemon of type "system" whose default policy resembles Debian's
                        /usr/share/dbus-1/system.conf and which includes the project's real
                        units/org.agentid1.conf, and nothing else, so the tests prove that policy works
  monitor.log           dbus-monitor on that bus: the order in which the bus routed every message
                        (signals, and the ordering checks of the concurrency test)
  state/                agentidd's --state-dir
  client.py, python3-*  copies readable and executable by the unprivileged test uids
  *.log                 outputs of everything started; printed when a test fails

Everything is started by this process, stopped by pid (children also get PR_SET_PDEATHSIG) and removed
at the end (set AGENTID_TEST_KEEP=1 to keep the directory). Calls as other users go through
client.py under setpriv (call_as). Also: helpers to check DER ECDSA signatures, COSE_Sign1 objects and
the deterministic CBOR encoding of DESIGN §5.

Environment (meson sets all of them; defaults suit a checkout with a build/ directory):
  AGENTID_TEST_DAEMON          agentidd binary            (default <src>/build/dbus/agentidd)
  AGENTID_TEST_BUS_POLICY      units/org.agentid1.conf    (default <src>/units/org.agentid1.conf)
  AGENTID_TEST_TPM_TEMPLATE    manufactured swtpm state, made once under "<dir>.lock"
                               (default: a fresh one inside the stack's directory)
  AGENTID_TEST_MAKE_TEMPLATE   the script that makes it   (default <src>/tests/lib/make-tpm-template.sh)
  AGENTID_TEST_DAEMON_ARGS     extra daemon arguments, split on white space
  AGENTID_TEST_DAEMON_WRAPPER  a command the daemon runs under, split like a shell would (the "valgrind"
                               suite: valgrind with --error-exitcode, so a memory error or leak turns the
                               exit status at SIGTERM, which stop_daemon() checks, into a failure);
                               the harness's timeouts for the daemon then grow AGENTID_TEST_TIMEOUT_SCALE
                               times (default 8 with a wrapper, else 1)
  AGENTID_TEST_KEEP            keep the temporary directory

`python3 tests/dbus/harness.py --selftest` (as root) checks the swtpm and bus parts without the daemon.
"""

import atexit
import ctypes
import fcntl
import hashlib
import itertools
import json
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.sax.saxutils

try:
    import dbus
except ImportError:
    # python3-dbus is a Debian package; a python3 earlier in PATH (pyenv, venv) may lack it. The test
    # files import this module first, so this covers them.
    if os.path.realpath(sys.executable) != os.path.realpath('/usr/bin/python3') and os.path.exists('/usr/bin/python3'):
        os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)
    raise
import dbus.bus  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_DIR = os.path.dirname(os.path.dirname(HERE))
# The command-line tools the tests run (meson passes the build's; by hand, build/ of the checkout).
CTL_BINARY = os.environ.get('AGENTID_TEST_CTL') or os.path.join(SRC_DIR, 'build', 'ctl', 'agentidctl')
VERIFY_BINARY = os.environ.get('AGENTID_TEST_VERIFY') or os.path.join(SRC_DIR, 'build', 'tools', 'agentid-verify')
sys.path.insert(0, HERE)
import client as client_codec  # noqa: E402  (the JSON codec shared with the child processes)

try:
    import cbor2
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
except ImportError as e:  # the self-test does not need them
    cbor2 = None
    _crypto_import_error = e

BUS_NAME = 'org.agentid1'
MANAGER_PATH = '/org/agentid1'
KEY_PATH_PREFIX = '/org/agentid1/key/'
MANAGER_IFACE = 'org.agentid1.Manager'
KEY_IFACE = 'org.agentid1.Key'
PROPS_IFACE = 'org.freedesktop.DBus.Properties'
OM_IFACE = 'org.freedesktop.DBus.ObjectManager'
INTROSPECT_IFACE = 'org.freedesktop.DBus.Introspectable'

E_ACCESS_DENIED = 'org.freedesktop.DBus.Error.AccessDenied'
E_INVALID_ARGS = 'org.freedesktop.DBus.Error.InvalidArgs'
E_UNKNOWN_OBJECT = 'org.freedesktop.DBus.Error.UnknownObject'
E_NO_SUCH_KEY = 'org.agentid1.Error.NoSuchKey'
E_KEY_EXISTS = 'org.agentid1.Error.KeyExists'
E_KEY_EXPIRED = 'org.agentid1.Error.KeyExpired'
E_KEY_DESTROYED = 'org.agentid1.Error.KeyDestroyed'
E_BUSY = 'org.agentid1.Error.Busy'

# Existing accounts (dbus-daemon refuses uids without a passwd entry).
UID_DAEMON, UID_BIN, UID_SYS, UID_NOBODY = 1, 2, 3, 65534

SYSTEM_PYTHON = '/usr/bin/python3'
DAEMON_WRAPPER = shlex.split(os.environ.get('AGENTID_TEST_DAEMON_WRAPPER', ''))
TIMEOUT_SCALE = int(os.environ.get('AGENTID_TEST_TIMEOUT_SCALE') or (8 if DAEMON_WRAPPER else 1))
CALL_TIMEOUT = 30 * TIMEOUT_SCALE

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup():
    # Never outlive the harness, even if it is killed.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class StackError(Exception):
    pass


# Stacks not closed yet: closed at exit too, so an interrupted run (KeyboardInterrupt, see
# test_daemon.py's SIGTERM handler) still stops its processes and removes its directory.
_live_stacks = []


@atexit.register
def _close_live_stacks():
    for st in list(_live_stacks):
        st.failed = True
        st.close()


# ---------------------------------------------------------------- names


def path_encode(name):
    """sd_bus_path_encode(KEY_PATH_PREFIX, name): a-zA-Z0-9 stay, except a leading digit; the rest
    becomes _xx (lower-case hex); the empty label is "_"."""
    if name == '':
        return KEY_PATH_PREFIX + '_'
    out = []
    for i, ch in enumerate(name.encode()):
        c = chr(ch)
        if (c.isascii() and c.isalpha()) or (i > 0 and c.isascii() and c.isdigit()):
            out.append(c)
        else:
            out.append('_%02x' % ch)
    return KEY_PATH_PREFIX + ''.join(out)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.digest()


# ---------------------------------------------------------------- dbus-python conveniences


def options(**kw):
    """a{sv} with the types of DESIGN §3 for the usual keys: owner/description/task ids/audience s,
    uid u, ttl t, exe_sha256 ay. dbus-typed values pass through unchanged (to test wrong types)."""
    typed = {}
    for k, v in kw.items():
        if isinstance(v, (dbus.String, dbus.UInt32, dbus.UInt64, dbus.Int32, dbus.Int64, dbus.ByteArray,
                          dbus.Boolean, dbus.Byte, dbus.Array, dbus.Dictionary, dbus.Double, dbus.ObjectPath)):
            typed[k] = v
        elif k == 'uid':
            typed[k] = dbus.UInt32(v)
        elif k == 'ttl':
            typed[k] = dbus.UInt64(v)
        elif isinstance(v, (bytes, bytearray)):
            typed[k] = dbus.ByteArray(bytes(v))
        elif isinstance(v, str):
            typed[k] = dbus.String(v)
        else:
            raise TypeError('give %s a dbus type' % k)
    return dbus.Dictionary(typed, signature='sv')


def unwrap(v):
    """dbus-python value -> plain Python (bytes for ay)."""
    if isinstance(v, (dbus.ByteArray, bytes, bytearray)):
        return bytes(v)
    if isinstance(v, dbus.Array) and v.signature == 'y':
        return bytes(v)
    if isinstance(v, dict):
        return {unwrap(k): unwrap(x) for k, x in v.items()}
    if isinstance(v, dbus.Struct) or isinstance(v, tuple):
        return tuple(unwrap(x) for x in v)
    if isinstance(v, list):
        return [unwrap(x) for x in v]
    if isinstance(v, (dbus.Boolean, bool)):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return v


class CallResult:
    """The outcome of call_as()."""

    def __init__(self, d, argv):
        self.ok = d['ok']
        self.value = d.get('value')
        self.error = d.get('error')
        self.message = d.get('message')
        self.argv = argv

    @property
    def bytes(self):
        return bytes.fromhex(self.value)

    def __repr__(self):
        if self.ok:
            v = self.value if not isinstance(self.value, str) or len(self.value) < 80 else self.value[:80] + '...'
            return '<ok %r>' % (v,)
        return '<error %s: %s>' % (self.error, self.message)


# ---------------------------------------------------------------- CBOR and COSE checks


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | info]) + n.to_bytes(width, 'big')
    raise ValueError('integer too large for CBOR')


def det_encode(o):
    """Deterministic CBOR (RFC 8949 §4.2.1: shortest forms, definite lengths, map keys sorted by their
    encoded bytes) of the plain values agentid emits."""
    if isinstance(o, bool):
        return b'\xf5' if o else b'\xf4'
    if isinstance(o, int):
        return _head(0, o) if o >= 0 else _head(1, -1 - o)
    if isinstance(o, (bytes, bytearray)):
        return _head(2, len(o)) + bytes(o)
    if isinstance(o, str):
        b = o.encode('utf-8')
        return _head(3, len(b)) + b
    if isinstance(o, (list, tuple)):
        return _head(4, len(o)) + b''.join(det_encode(x) for x in o)
    if isinstance(o, dict):
        items = sorted((det_encode(k), det_encode(v)) for k, v in o.items())
        return _head(5, len(items)) + b''.join(k + v for k, v in items)
    if cbor2 is not None and isinstance(o, cbor2.CBORTag):
        return _head(6, o.tag) + det_encode(o.value)
    raise TypeError('unexpected value in CBOR: %r' % (o,))


def cbor_strict_loads(data):
    """Decode one CBOR item that must fill `data` exactly and be deterministically encoded (which also
    rules out trailing bytes, indefinite lengths and duplicate map keys)."""
    obj = cbor2.loads(data)
    if det_encode(obj) != data:
        raise AssertionError('CBOR is not deterministically encoded (or has trailing bytes): %s' % data.hex())
    return obj


def load_spki(der):
    """A P-256 DER SubjectPublicKeyInfo -> cryptography key (and it must re-encode to the same bytes)."""
    key = serialization.load_der_public_key(bytes(der))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != 'secp256r1':
        raise AssertionError('not a P-256 public key')
    again = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if again != bytes(der):
        raise AssertionError('SubjectPublicKeyInfo is not in canonical DER')
    return key


def verify_digest_signature(spki_der, digest, der_sig):
    """Key.Sign: a strict-DER ECDSA signature over a SHA-256 digest. Raises on failure."""
    r, s = utils.decode_dss_signature(bytes(der_sig))
    if utils.encode_dss_signature(r, s) != bytes(der_sig):
        raise AssertionError('signature is not strict DER')
    try:
        load_spki(spki_der).verify(bytes(der_sig), bytes(digest), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise AssertionError('ECDSA signature does not verify') from None


class CoseSign1:
    def __init__(self, protected_bytes, protected, unprotected, payload, signature):
        self.protected_bytes = protected_bytes
        self.protected = protected
        self.unprotected = unprotected
        self.payload = payload
        self.signature = signature

    def payload_map(self):
        return cbor_strict_loads(self.payload)


def decode_cose_sign1(blob):
    """Tagged COSE_Sign1 (DESIGN §5): 0xd2, [bstr protected, {}, bstr payload, bstr(64) r||s]."""
    blob = bytes(blob)
    if not blob or blob[0] != 0xd2:
        raise AssertionError('not a tagged COSE_Sign1 (first byte %s)' % blob[:1].hex())
    arr = cbor_strict_loads(blob[1:])
    if not isinstance(arr, list) or len(arr) != 4:
        raise AssertionError('COSE_Sign1 is not an array of 4')
    prot_b, unprot, payload, sig = arr
    if not isinstance(prot_b, bytes) or not isinstance(unprot, dict) or not isinstance(payload, bytes) \
            or not isinstance(sig, bytes):
        raise AssertionError('COSE_Sign1 member types wrong')
    if unprot != {}:
        raise AssertionError('unprotected header must be the empty map, got %r' % (unprot,))
    if len(sig) != 64:
        raise AssertionError('ES256 signature must be 64 bytes, got %d' % len(sig))
    prot = cbor_strict_loads(prot_b)
    if not isinstance(prot, dict):
        raise AssertionError('protected header is not a map')
    return CoseSign1(prot_b, prot, unprot, payload, sig)


def verify_cose_sign1(blob, spki_der):
    """Decode, check alg ES256 (-7) and verify the signature over Sig_structure with spki_der."""
    c = decode_cose_sign1(blob)
    if c.protected.get(1) != -7:
        raise AssertionError('protected alg is %r, expected -7 (ES256)' % (c.protected.get(1),))
    sig_structure = cbor2.dumps(['Signature1', c.protected_bytes, b'', c.payload], canonical=True)
    r = int.from_bytes(c.signature[:32], 'big')
    s = int.from_bytes(c.signature[32:], 'big')
    try:
        load_spki(spki_der).verify(utils.encode_dss_signature(r, s), sig_structure, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError('COSE_Sign1 signature does not verify') from None
    return c


# ---------------------------------------------------------------- the bus monitor


class MonitorMessage:
    HEADER = re.compile(r'^(method call|method return|error|signal) (.*)$')
    FIELD = re.compile(r'(\w+)=(\S+)')
    ARG = re.compile(r'^   (string|object path) "(.*)"$|^   (u?int\d+|boolean) (\S+)$')

    def __init__(self, index, kind, header, body):
        self.index = index
        self.kind = kind
        self.fields = {k: v.rstrip(';') for k, v in self.FIELD.findall(header)}
        self.body = body
        # Top-level simple arguments only (nested values are indented further).
        self.args = []
        for line in body:
            m = self.ARG.match(line)
            if m and m.group(1):
                self.args.append(m.group(2))
            elif m:
                self.args.append(m.group(4) == 'true' if m.group(3) == 'boolean' else int(m.group(4)))
            elif line.startswith('   ') and not line.startswith('    '):
                self.args.append(line.strip())

    def get(self, name, default=None):
        return self.fields.get(name, default)

    def __repr__(self):
        return '<%d %s %r %r>' % (self.index, self.kind, self.fields, self.args)


class BusMonitor:
    """Parses dbus-monitor's text output incrementally. dbus-monitor prints whole messages and flushes
    after each, but a large one may arrive in pieces; the last block is only trusted once a later
    message follows it, which sync() forces with a marker call to the bus driver."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.pending = b''
        self.messages = []
        self._markers = itertools.count()

    def poll(self):
        with open(self.path, 'rb') as f:
            f.seek(self.offset)
            data = f.read()
            self.offset += len(data)
        text = self.pending + data
        # Everything before the last header line is complete.
        last = None
        pos = 0
        for line in text.split(b'\n'):
            if MonitorMessage.HEADER.match(line.decode(errors='replace')):
                last = pos
            pos += len(line) + 1
        if last is None:
            self.pending = text
            return
        complete, self.pending = text[:last], text[last:]
        kind = header = None
        body = []
        for line in complete.decode(errors='replace').split('\n'):
            m = MonitorMessage.HEADER.match(line)
            if m:
                if kind:
                    self._add(kind, header, body)
                kind, header, body = m.group(1), m.group(2), []
            elif kind and line:
                body.append(line)
        if kind:
            self._add(kind, header, body)

    def _add(self, kind, header, body):
        self.messages.append(MonitorMessage(len(self.messages), kind, header, body))

    def sync(self, conn, timeout=10):
        """Return once everything the bus routed before now has been parsed."""
        marker = 'org.agentid1.test.marker%d' % next(self._markers)
        conn.call_blocking('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                           'NameHasOwner', 's', [marker])
        deadline = time.monotonic() + timeout
        start = len(self.messages)
        while True:
            self.poll()
            for m in self.messages[start:]:
                if m.kind == 'method call' and m.get('member') == 'NameHasOwner' and m.args[:1] == [marker]:
                    return len(self.messages)
            if time.monotonic() > deadline:
                raise StackError('bus monitor did not show marker %s (see monitor.log)' % marker)
            time.sleep(0.02)


# ---------------------------------------------------------------- the stack


def _bus_config(listen_path, policy_path):
    q = xml.sax.saxutils.escape
    return f'''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- A private system bus for the agentid D-Bus tests (tests/dbus/harness.py). The default policy
     follows Debian's /usr/share/dbus-1/system.conf; only the included project policy may open holes. -->
<busconfig>
  <type>system</type>
  <listen>unix:path={q(listen_path)}</listen>
  <auth>EXTERNAL</auth>

  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>

  <!-- root may monitor the bus (the harness records message order with dbus-monitor). -->
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>

  <include>{q(policy_path)}</include>
</busconfig>
'''


def _tail(path, lines, since=0, skip=None):
    try:
        with open(path, 'rb') as f:
            f.seek(since)
            content = f.read().decode(errors='replace').splitlines()
        if skip:
            content = [line for line in content if skip not in line]
    except OSError as e:
        return '(cannot read %s: %s)' % (path, e)
    cut = content[-lines:]
    prefix = '' if len(cut) == len(content) else '(last %d of %d lines)\n' % (len(cut), len(content))
    return prefix + '\n'.join(cut)


class Stack:
    """swtpm + private system bus + bus monitor + agentidd. Use as a context manager."""

    # --policy= (empty): no policy, whatever /etc/agentid/policy.json on this machine says.
    DEFAULT_DAEMON_ARGS = ('--log-level=debug', '--flush-stale-handles', '--policy=', '--offboard-hooks=')

    def __init__(self, daemon_args=(), start_daemon=True, policy=None, daemon=None):
        self.daemon_binary = daemon or os.environ.get('AGENTID_TEST_DAEMON') or \
            os.path.join(SRC_DIR, 'build', 'dbus', 'agentidd')
        self.policy = policy or os.environ.get('AGENTID_TEST_BUS_POLICY') or \
            os.path.join(SRC_DIR, 'units', 'org.agentid1.conf')
        self.daemon_args = list(self.DEFAULT_DAEMON_ARGS) + list(daemon_args) + \
            os.environ.get('AGENTID_TEST_DAEMON_ARGS', '').split()
        self.want_daemon = start_daemon
        self.dir = None
        self.failed = False
        self.closed = False
        self.swtpm = self.bus_daemon = self.monitor_proc = self.daemon = None
        self.address = None
        self.conn = None
        self.monitor = None
        self.daemon_unique_name = None
        self.daemon_starts = 0
        self._copies = {}
        self._cgroups = []

    # --- context manager

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.failed = True
        self.close()
        return False

    # --- paths

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def tpm_socket(self):
        return self.path('tpm.sock')

    @property
    def state_dir(self):
        return self.path('state')

    # --- start

    def start(self):
        try:
            self.dir = tempfile.mkdtemp(prefix='agentid-dbus-', dir='/tmp')
            _live_stacks.append(self)
            # Unprivileged test uids must reach bus.sock, client.py and the python copies.
            os.chmod(self.dir, 0o755)
            shutil.copy(os.path.join(HERE, 'client.py'), self.path('client.py'))
            os.chmod(self.path('client.py'), 0o644)
            os.mkdir(self.state_dir, 0o700)
            self._start_swtpm()
            self._start_bus()
            if self.want_daemon:
                self.start_daemon()
        except BaseException:
            self.failed = True
            self.close()
            raise

    def _template(self):
        tdir = os.environ.get('AGENTID_TEST_TPM_TEMPLATE') or self.path('tpm-template')
        script = os.environ.get('AGENTID_TEST_MAKE_TEMPLATE') or \
            os.path.join(SRC_DIR, 'tests', 'lib', 'make-tpm-template.sh')
        # The same protocol as tests/lib/tpm-sim.c: make it once, concurrent tests wait on the lock.
        fd = os.open(tdir + '.lock', os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(tdir, 'done')):
                r = subprocess.run(['sh', script, tdir], stdin=subprocess.DEVNULL)
                if r.returncode != 0:
                    raise StackError('making the swtpm template failed (exit %d)' % r.returncode)
        finally:
            os.close(fd)
        return tdir

    def _spawn(self, argv, log, **kw):
        out = open(self.path(log), 'ab')
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_child_setup, start_new_session=True, **kw)
        finally:
            out.close()

    def _start_swtpm(self):
        tdir = self._template()
        os.mkdir(self.path('tpm'), 0o700)
        subprocess.run(['cp', '-a', os.path.join(tdir, 'state'), self.path('tpm')], check=True)
        self._spawn_swtpm()

    def restart_tpm(self):
        """Kill swtpm and start it again on the same state: a TPM Reset (no orderly TPM2_Shutdown),
        as after a power loss. Transient objects, saved contexts and the NULL seed are gone."""
        self._stop(self.swtpm, signal.SIGKILL, 10)
        for p in (self.tpm_socket, self.tpm_socket + '.ctrl'):
            if os.path.exists(p):
                os.unlink(p)
        self._spawn_swtpm()

    def kill_tpm(self):
        """SIGKILL swtpm (by its pid) and leave it down; start_tpm() brings it back on the same state."""
        self._stop(self.swtpm, signal.SIGKILL, 10)
        for p in (self.tpm_socket, self.tpm_socket + '.ctrl'):
            if os.path.exists(p):
                os.unlink(p)

    def start_tpm(self):
        if self.swtpm is not None and self.swtpm.poll() is None:
            raise StackError('swtpm already running')
        self._spawn_swtpm()

    def tpm_tool(self, *argv):
        """Run a tpm2-tools command (or swtpm_ioctl) against this stack's swtpm; raises on failure."""
        env = dict(os.environ, TPM2TOOLS_TCTI='swtpm:path=' + self.tpm_socket, TSS2_LOG='all+none')
        r = subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise StackError('%s failed (%d): %s' % (' '.join(argv), r.returncode,
                                                     (r.stdout + r.stderr).decode(errors='replace')))
        return r.stdout.decode(errors='replace')

    def power_cycle_tpm(self, shutdown=None):
        """A reboot with swtpm staying up: TPM2_Shutdown(shutdown) first ('state': TPM_SU_STATE,
        'clear': TPM_SU_CLEAR, None: none, as on power loss), a power cycle through the control
        channel (CMD_INIT), then TPM2_Startup(CLEAR): a TPM Restart after STATE, else a TPM Reset
        (Part 1 §36.2). Either way transient objects are gone; saved object contexts still load
        after a Restart, not after a Reset."""
        if shutdown == 'state':
            self.tpm_tool('tpm2_shutdown')
        elif shutdown == 'clear':
            self.tpm_tool('tpm2_shutdown', '-c')
        elif shutdown is not None:
            raise ValueError('shutdown must be None, "state" or "clear"')
        self.tpm_tool('swtpm_ioctl', '--unix', self.tpm_socket + '.ctrl', '-i')
        self.tpm_tool('tpm2_startup', '-c')

    def _spawn_swtpm(self):
        sock = self.tpm_socket
        self.swtpm = self._spawn(['swtpm', 'socket', '--tpm2',
                                  '--tpmstate', 'dir=' + self.path('tpm', 'state'),
                                  '--server', 'type=unixio,path=' + sock,
                                  '--ctrl', 'type=unixio,path=' + sock + '.ctrl',
                                  '--flags', 'not-need-init,startup-clear'], 'swtpm.log')
        deadline = time.monotonic() + 10
        while True:
            if self.swtpm.poll() is not None:
                raise StackError('swtpm exited during start-up (%d):\n%s' %
                                 (self.swtpm.returncode, _tail(self.path('swtpm.log'), 30)))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sock)
                break
            except OSError:
                pass
            finally:
                s.close()
            if time.monotonic() > deadline:
                raise StackError('swtpm did not listen on %s' % sock)
            time.sleep(0.01)

    def _start_bus(self):
        if not os.path.exists(self.policy):
            raise StackError('bus policy %s does not exist' % self.policy)
        with open(self.path('bus.conf'), 'w') as f:
            f.write(_bus_config(self.path('bus.sock'), os.path.abspath(self.policy)))
        rfd, wfd = os.pipe()
        try:
            self.bus_daemon = self._spawn(['dbus-daemon', '--config-file=' + self.path('bus.conf'), '--nofork',
                                           '--nopidfile', '--print-address=%d' % wfd],
                                          'bus.log', pass_fds=(wfd,))
            os.close(wfd)
            wfd = -1
            buf = b''
            deadline = time.monotonic() + 10
            while not buf.endswith(b'\n'):
                left = deadline - time.monotonic()
                r, _, _ = select.select([rfd], [], [], max(left, 0))
                if not r:
                    raise StackError('dbus-daemon printed no address:\n' + _tail(self.path('bus.log'), 30))
                chunk = os.read(rfd, 4096)
                if not chunk:
                    raise StackError('dbus-daemon exited during start-up:\n' + _tail(self.path('bus.log'), 30))
                buf += chunk
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        self.address = buf.decode().strip()
        self.conn = dbus.bus.BusConnection(self.address)

        # dbus-monitor records the routing order of every message on this bus.
        self.monitor_proc = subprocess.Popen(['dbus-monitor', '--address', self.address, '--monitor'],
                                             stdin=subprocess.DEVNULL, stdout=open(self.path('monitor.log'), 'wb'),
                                             stderr=open(self.path('monitor.err'), 'wb'),
                                             preexec_fn=_child_setup, start_new_session=True)
        self.monitor = BusMonitor(self.path('monitor.log'))
        deadline = time.monotonic() + 10
        while os.path.getsize(self.path('monitor.log')) == 0:
            if self.monitor_proc.poll() is not None or time.monotonic() > deadline:
                raise StackError('dbus-monitor did not start:\n' + _tail(self.path('monitor.err'), 20))
            time.sleep(0.01)
        self.monitor.sync(self.conn)

    # --- the daemon

    def name_has_owner(self, name=BUS_NAME):
        return bool(self.conn.call_blocking('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                            'NameHasOwner', 's', [name]))

    def start_daemon(self, extra_args=(), pass_fds=()):
        if self.daemon is not None:
            raise StackError('daemon already running')
        if not os.access(self.daemon_binary, os.X_OK):
            raise StackError('daemon binary %s does not exist (build it, or set AGENTID_TEST_DAEMON)'
                             % self.daemon_binary)
        argv = DAEMON_WRAPPER + \
            [self.daemon_binary, '--tcti=swtpm:path=' + self.tpm_socket, '--state-dir=' + self.state_dir] + \
            self.daemon_args + list(extra_args)
        env = {k: v for k, v in os.environ.items()
               if k not in ('DBUS_SESSION_BUS_ADDRESS', 'AGENTID_TCTI', 'STATE_DIRECTORY', 'NOTIFY_SOCKET',
                            'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'CREDENTIALS_DIRECTORY')}
        env['DBUS_SYSTEM_BUS_ADDRESS'] = self.address
        env['TSS2_LOG'] = 'all+none'
        self.daemon_starts += 1
        with open(self.path('daemon.log'), 'ab') as f:
            f.write(('==== harness: start #%d: %s\n' % (self.daemon_starts, ' '.join(argv))).encode())
        self.daemon = self._spawn(argv, 'daemon.log', env=env, pass_fds=tuple(pass_fds))
        deadline = time.monotonic() + 20 * TIMEOUT_SCALE
        while not self.name_has_owner():
            rc = self.daemon.poll()
            if rc is not None:
                self.daemon = None
                raise StackError('agentidd exited during start-up (status %d):\n%s' %
                                 (rc, _tail(self.path('daemon.log'), 60)))
            if time.monotonic() > deadline:
                raise StackError('agentidd did not own %s within %d s:\n%s' %
                                 (BUS_NAME, 20 * TIMEOUT_SCALE, _tail(self.path('daemon.log'), 60)))
            time.sleep(0.05)
        self.daemon_unique_name = str(self.conn.call_blocking(
            'org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetNameOwner', 's', [BUS_NAME]))

    def _wait_name_gone(self, timeout=10):
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while self.name_has_owner():
            if time.monotonic() > deadline:
                raise StackError('%s still has an owner after the daemon exited' % BUS_NAME)
            time.sleep(0.02)

    def _stop(self, proc, sig, timeout):
        """Signal proc (by pid), wait; SIGKILL after timeout. Returns (status, timed_out)."""
        if proc.poll() is not None:
            return proc.returncode, False
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout), False
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(), True

    def stop_daemon(self, timeout=20):
        """SIGTERM; the daemon must exit 0 (after in-flight work) within timeout."""
        if self.daemon is None:
            raise StackError('daemon not running')
        proc, self.daemon = self.daemon, None
        rc, timed_out = self._stop(proc, signal.SIGTERM, timeout * TIMEOUT_SCALE)
        self._wait_name_gone()
        if timed_out:
            raise AssertionError('agentidd did not exit within %d s of SIGTERM:\n%s' %
                                 (timeout * TIMEOUT_SCALE, self.daemon_log_tail()))
        if rc != 0:
            # Under valgrind (AGENTID_TEST_DAEMON_WRAPPER) the report is at the end of the log.
            raise AssertionError('agentidd exited with status %d after SIGTERM (expected 0):\n%s' %
                                 (rc, self.daemon_log_tail(200 if DAEMON_WRAPPER else 60)))
        return rc

    def kill_daemon(self):
        """SIGKILL (a crash)."""
        if self.daemon is None:
            raise StackError('daemon not running')
        proc, self.daemon = self.daemon, None
        self._stop(proc, signal.SIGKILL, 10)
        self._wait_name_gone()

    def restart_daemon(self, extra_args=()):
        self.stop_daemon()
        self.start_daemon(extra_args)

    # --- logs

    def daemon_log_tail(self, lines=60, since=0):
        """The last `lines` lines of the daemon's log, only from byte offset `since` on."""
        return _tail(self.path('daemon.log'), lines, since)

    def daemon_log_size(self):
        try:
            return os.path.getsize(self.path('daemon.log'))
        except OSError:
            return 0

    def log_report(self, daemon_lines=200):
        parts = []
        # swtpm logs a line per client connection; that is noise here.
        for name, n, skip in (('daemon.log', daemon_lines, None), ('swtpm.log', 30, 'Data client disconnected'),
                              ('bus.log', 30, None)):
            parts.append('----- %s -----\n%s' % (name, _tail(self.path(name), n, skip=skip)))
        return '\n'.join(parts)

    # --- cleanup

    def shut_down(self):
        """The end of a test class: stop agentidd if it runs (SIGTERM must end it with status 0), then
        everything else. A failure marks the stack failed, so its logs are shown and kept."""
        try:
            if self.daemon is not None:
                self.stop_daemon()
        except BaseException:
            self.failed = True
            raise
        finally:
            self.close()

    def close(self):
        if self.closed or self.dir is None:
            return
        self.closed = True
        if self in _live_stacks:
            _live_stacks.remove(self)
        problems = []
        if self.daemon is not None:
            proc, self.daemon = self.daemon, None
            rc, timed_out = self._stop(proc, signal.SIGTERM, 20 * TIMEOUT_SCALE)
            if timed_out or rc != 0:
                problems.append('agentidd %s at clean-up' %
                                ('did not stop on SIGTERM' if timed_out else 'exited with status %d' % rc))
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
        for proc in (self.monitor_proc, self.bus_daemon, self.swtpm):
            if proc is not None:
                self._stop(proc, signal.SIGTERM, 10)
                if proc.stdout:
                    proc.stdout.close()
        for d in reversed(self._cgroups):
            try:
                os.rmdir(d)  # empty once its processes exited
            except OSError as e:
                problems.append('cannot remove cgroup %s: %s' % (d, e))
        self._cgroups = []
        if problems:
            self.failed = True
            sys.stderr.write('harness: %s\n' % '; '.join(problems))
        if self.failed:
            sys.stderr.write('\n===== logs of %s =====\n%s\n===== end of logs =====\n' %
                             (self.dir, self.log_report()))
        if os.environ.get('AGENTID_TEST_KEEP'):
            sys.stderr.write('harness: kept %s\n' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- calls as root (the harness's own connection)

    def call(self, path, interface, method, signature='', args=(), timeout=CALL_TIMEOUT):
        return self.conn.call_blocking(BUS_NAME, path, interface, method, signature, list(args),
                                       timeout=timeout, byte_arrays=True)

    def manager(self, method, signature='', args=()):
        return self.call(MANAGER_PATH, MANAGER_IFACE, method, signature, args)

    def key(self, path, method, signature='', args=()):
        return self.call(path, KEY_IFACE, method, signature, args)

    def props(self, path, interface=KEY_IFACE):
        return unwrap(self.call(path, PROPS_IFACE, 'GetAll', 's', [interface]))

    def prop(self, path, name, interface=KEY_IFACE):
        return unwrap(self.call(path, PROPS_IFACE, 'Get', 'ss', [interface, name]))

    def manager_props(self):
        return self.props(MANAGER_PATH, MANAGER_IFACE)

    def introspect(self, path):
        return str(self.call(path, INTROSPECT_IFACE, 'Introspect'))

    def create_key(self, name, **opts):
        return str(self.manager('CreateKey', 'sa{sv}', [name, options(**opts)]))

    def sign(self, path, digest, **ctx):
        return bytes(self.key(path, 'Sign', 'aya{sv}', [dbus.ByteArray(bytes(digest)), options(**ctx)]))

    def sign_message(self, path, payload, **ctx):
        return bytes(self.key(path, 'SignMessage', 'aya{sv}', [dbus.ByteArray(bytes(payload)), options(**ctx)]))

    def destroy(self, path, reason):
        return bytes(self.key(path, 'Destroy', 's', [reason]))

    def list_keys(self):
        return [tuple(unwrap(x)) for x in self.manager('ListKeys')]

    # --- calls as another user

    def python_copy(self, modified):
        """A copy of /usr/bin/python3 in the stack's directory, runnable by every uid. With
        modified=True one byte is appended (an ELF still runs), so its SHA-256 differs."""
        if modified not in self._copies:
            dst = self.path('python3-modified' if modified else 'python3-copy')
            shutil.copyfile(os.path.realpath(SYSTEM_PYTHON), dst)
            if modified:
                with open(dst, 'ab') as f:
                    f.write(b'\0')
            os.chmod(dst, 0o755)
            self._copies[modified] = dst
        return self._copies[modified]

    def _client_argv(self, uid, exe, mode_args):
        pw = pwd.getpwuid(uid)  # the account must exist for dbus-daemon
        return ['setpriv', '--reuid=%d' % uid, '--regid=%d' % pw.pw_gid, '--clear-groups',
                exe or SYSTEM_PYTHON, '-I', self.path('client.py')] + mode_args + ['--address', self.address]

    @staticmethod
    def _client_env():
        return {'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8', 'HOME': '/', 'PYTHONDONTWRITEBYTECODE': '1'}

    def call_as(self, uid, path, interface, method, signature='', args=(), exe=None, dest=BUS_NAME,
                timeout=CALL_TIMEOUT, interactive=False, cgroup=None, background=False):
        """Make one call as `uid` (an existing account) from a child process running `exe` (default
        /usr/bin/python3). Arguments are dbus-typed as for call(); returns a CallResult.

        interactive: allow interactive authorization (a policy "confirm" then holds the call).
        cgroup: a directory of the cgroup2 hierarchy (see fake_cgroup()) the child joins before it
        executes, which is where agentidd reads its unit and login session from.
        background: return the running child (a Popen) at once; finish_call() collects the result."""
        sigs = client_codec.split_signature(signature)
        if len(sigs) != len(args):
            raise ValueError('signature %r does not match %d arguments' % (signature, len(args)))
        jargs = [client_codec.to_json(s, a) for s, a in zip(sigs, args)]
        argv = self._client_argv(uid, exe, ['call', '--dest', dest, '--path', path, '--interface', interface,
                                            '--method', method, '--signature', signature,
                                            '--args', json.dumps(jargs), '--timeout', str(timeout)] +
                                 (['--interactive'] if interactive else []))

        def join_cgroup():
            _child_setup()
            if cgroup:
                with open(os.path.join(cgroup, 'cgroup.procs'), 'w') as f:
                    f.write('%d\n' % os.getpid())

        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self._client_env(), preexec_fn=join_cgroup)
        proc.agentid_argv = argv
        proc.agentid_timeout = timeout
        if background:
            return proc
        return self.finish_call(proc)

    @staticmethod
    def finish_call(proc):
        out, err = proc.communicate(timeout=proc.agentid_timeout + 30)
        lines = out.decode(errors='replace').strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise StackError('client failed (status %d): %s\nstderr: %s' %
                             (proc.returncode, ' '.join(proc.agentid_argv), err.decode(errors='replace')))
        return CallResult(json.loads(lines[-1]), proc.agentid_argv)

    # --- fake systemd cgroups (for the policy's "units" and "no_login_sessions")

    @staticmethod
    def cgroup2_root():
        """Where the cgroup2 hierarchy is mounted writable (/sys/fs/cgroup, or .../unified on hybrid
        systems), or None. sd_pid_get_unit()/sd_pid_get_session() read a process's path there."""
        with open('/proc/self/mountinfo') as f:
            for line in f:
                fields = line.split()
                sep = fields.index('-')
                if fields[sep + 1] == 'cgroup2' and 'rw' in fields[5].split(','):
                    return fields[4]
        return None

    def fake_cgroup(self, relpath):
        """Make the cgroup relpath (e.g. 'system.slice/agentid-test-x.service' or
        'user.slice/user-1.slice/session-7.scope'); removed at close(). Returns its directory."""
        root = self.cgroup2_root()
        if root is None:
            raise StackError('no writable cgroup2 hierarchy')
        d = root
        for part in relpath.split('/'):
            d = os.path.join(d, part)
            if not os.path.isdir(d):
                os.mkdir(d)
                self._cgroups.append(d)  # created here, so removed here (children first)
        return d

    def sign_as(self, uid, path, digest, exe=None, **ctx):
        return self.call_as(uid, path, KEY_IFACE, 'Sign', 'aya{sv}',
                            [dbus.ByteArray(bytes(digest)), options(**ctx)], exe=exe)

    def start_sign_loop(self, uid, path, ready_after=3, deadline=30, **ctx):
        """A child signing in a loop as uid (client.py sign-loop). It prints "ready" after ready_after
        successes; close its stdin to stop it; finish_sign_loop() collects its records."""
        jctx = client_codec.to_json('a{sv}', options(**ctx))
        argv = self._client_argv(uid, None, ['sign-loop', '--path', path, '--context', json.dumps(jctx),
                                             '--ready-after', str(ready_after), '--deadline', str(deadline)])
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self._client_env())

    @staticmethod
    def wait_ready(procs, timeout=20):
        """Wait for the "ready" line of every sign-loop child."""
        waiting = {p.stdout.fileno(): p for p in procs}
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StackError('%d signer(s) not ready in %d s' % (len(waiting), timeout))
            r, _, _ = select.select(list(waiting), [], [], left)
            for fd in r:
                line = waiting[fd].stdout.readline()
                if line.strip() == b'ready':
                    del waiting[fd]
                elif not line:
                    p = waiting.pop(fd)
                    raise StackError('signer exited before it was ready: %s' %
                                     p.stderr.read().decode(errors='replace'))

    @staticmethod
    def finish_sign_loop(proc, timeout=60):
        out, err = proc.communicate(b'', timeout=timeout)  # EOF on stdin stops the loop
        lines = out.decode(errors='replace').strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise StackError('signer failed (status %d): %s' % (proc.returncode, err.decode(errors='replace')))
        return json.loads(lines[-1])

    # --- the monitor

    def monitor_mark(self):
        """Position in the routed message stream; messages after it come later."""
        return self.monitor.sync(self.conn)

    def monitor_messages(self, since=0):
        self.monitor.sync(self.conn)
        return self.monitor.messages[since:]

    def wait_signal(self, member, since, args=None, path=None, timeout=10):
        """The first signal `member` from the daemon after mark `since` whose leading top-level arguments
        equal `args` (strings / object paths) and whose path is `path`, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.monitor_messages(since):
                if m.kind != 'signal' or m.get('member') != member:
                    continue
                if m.get('sender') not in (self.daemon_unique_name, BUS_NAME):
                    continue
                if path is not None and m.get('path') != path:
                    continue
                if args is not None and m.args[:len(args)] != list(args):
                    continue
                return m
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


# ---------------------------------------------------------------- self-test


SELFTEST_POLICY = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root"><allow own="org.agentid1"/></policy>
  <policy context="default"><allow send_destination="org.agentid1"/></policy>
</busconfig>
'''


def selftest():
    """swtpm + bus + monitor without the daemon; calls as root and as other uids through client.py."""
    if os.geteuid() != 0:
        print('selftest: must run as root')
        return 77
    tmp_policy = None
    policy = os.environ.get('AGENTID_TEST_BUS_POLICY') or os.path.join(SRC_DIR, 'units', 'org.agentid1.conf')
    if not os.path.exists(policy):
        fd, tmp_policy = tempfile.mkstemp(prefix='agentid-dbus-selftest-', suffix='.conf', dir='/tmp')
        with os.fdopen(fd, 'w') as f:
            f.write(SELFTEST_POLICY)
        print('selftest: %s missing; using a stand-in policy with the same grants' % policy)
        policy = tmp_policy
    ok = True

    def check(cond, what):
        nonlocal ok
        print('selftest: %-70s %s' % (what, 'ok' if cond else 'FAILED'))
        ok = ok and bool(cond)

    t0 = time.monotonic()
    try:
        with Stack(start_daemon=False, policy=policy) as st:
            print('selftest: stack in %s, bus %s (%.1f s)' % (st.dir, st.address, time.monotonic() - t0))
            names = [str(n) for n in st.conn.call_blocking('org.freedesktop.DBus', '/org/freedesktop/DBus',
                                                            'org.freedesktop.DBus', 'ListNames', '', [])]
            check('org.freedesktop.DBus' in names, 'ListNames as root')
            for uid in (UID_NOBODY, UID_DAEMON):
                r = st.call_as(uid, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'ListNames',
                               dest='org.freedesktop.DBus')
                check(r.ok and 'org.freedesktop.DBus' in r.value, 'ListNames as uid %d' % uid)
                r = st.call_as(uid, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetConnectionUnixUser',
                               's', [dbus.String(':1.0')], dest='org.freedesktop.DBus')
                check(r.ok and r.value == 0, 'GetConnectionUnixUser(:1.0) as uid %d' % uid)
            # The caller really is that uid (the bus says so), also from a modified python copy.
            r = st.call_as(UID_BIN, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetId',
                           dest='org.freedesktop.DBus', exe=st.python_copy(True))
            check(r.ok and len(r.value) == 32, 'GetId as uid 2 from a modified python3 copy')
            check(file_sha256(st.python_copy(True)) != file_sha256(SYSTEM_PYTHON), 'python3 copy digest differs')
            # Method calls are denied by default (before anything owns a name with a send hole).
            r = st.call_as(UID_NOBODY, '/', INTROSPECT_IFACE, 'Introspect', dest=st.conn.get_unique_name(),
                           timeout=1)
            check(not r.ok and r.error == E_ACCESS_DENIED, 'uid 65534 may not call another unique name (%r)' % (r,))
            # Default policy: nobody may own names; the (stand-in or real) policy lets root own org.agentid1.
            r = st.call_as(UID_NOBODY, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'RequestName', 'su',
                           [dbus.String(BUS_NAME), dbus.UInt32(0)], dest='org.freedesktop.DBus')
            check(not r.ok and r.error == E_ACCESS_DENIED, 'uid 65534 may not own %s (%r)' % (BUS_NAME, r))
            rn = st.conn.call_blocking('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                       'RequestName', 'su', [BUS_NAME, 4])
            check(int(rn) == 1, 'root may own %s' % BUS_NAME)
            # Everyone may send to it (the harness connection does not answer: NoReply, not AccessDenied).
            r = st.call_as(UID_NOBODY, MANAGER_PATH, INTROSPECT_IFACE, 'Introspect', timeout=1)
            check(not r.ok and r.error == 'org.freedesktop.DBus.Error.NoReply',
                  'uid 65534 may send to %s (%r)' % (BUS_NAME, r))
            # The monitor saw it all, in order.
            mark = st.monitor_mark()
            st.call_as(UID_DAEMON, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'NameHasOwner', 's',
                       [dbus.String('selftest.name')], dest='org.freedesktop.DBus')
            msgs = st.monitor_messages(mark)
            calls = [m for m in msgs if m.kind == 'method call' and m.get('member') == 'NameHasOwner'
                     and m.args[:1] == ['selftest.name']]
            replies = [m for m in msgs if calls and m.kind == 'method return'
                       and m.get('destination') == calls[0].get('sender')
                       and m.get('reply_serial') == calls[0].get('serial')]
            check(len(calls) == 1 and len(replies) == 1 and replies[0].args == [False], 'monitor sees call and reply')
            check(st.swtpm.poll() is None and st.bus_daemon.poll() is None, 'swtpm and dbus-daemon still running')
            if cbor2 is not None:
                for what, result in _selftest_crypto():
                    check(result, what)
            else:
                check(False, 'python3-cbor2 and python3-cryptography installed (%s)' % _crypto_import_error)
            pids = [p.pid for p in (st.swtpm, st.bus_daemon, st.monitor_proc)]
            tmpdir = st.dir
        check(all(not os.path.exists('/proc/%d' % pid) or _is_zombie_or_gone(pid) for pid in pids),
              'everything stopped')
        check(not os.path.exists(tmpdir), 'temporary directory removed')
    finally:
        if tmp_policy:
            os.unlink(tmp_policy)
    print('selftest: %s (%.1f s)' % ('PASSED' if ok else 'FAILED', time.monotonic() - t0))
    return 0 if ok else 1


def _selftest_crypto():
    """The verification helpers against objects made here with cryptography."""
    def raises(fn, *a):
        try:
            fn(*a)
        except (AssertionError, ValueError):
            return True
        return False

    yield 'CBOR: 265 sorts before -1', det_encode({265: 0, -1: 0}) == bytes.fromhex('a2190109002000')
    yield 'CBOR: "v" sorts before "eat"', det_encode({'eat': 0, 'v': 0}) == bytes.fromhex('a26176006365617400')
    yield 'CBOR: non-shortest integer refused', raises(cbor_strict_loads, bytes.fromhex('1a00000005'))
    yield 'CBOR: trailing byte refused', raises(cbor_strict_loads, bytes.fromhex('0500'))
    yield 'CBOR: indefinite length refused', raises(cbor_strict_loads, bytes.fromhex('9f01ff'))
    yield 'CBOR: duplicate map key refused', raises(cbor_strict_loads, bytes.fromhex('a201010102'))

    priv = ec.generate_private_key(ec.SECP256R1())
    spki = priv.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(b'selftest').digest()
    der = priv.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    verify_digest_signature(spki, digest, der)
    yield 'DER ECDSA signature verifies', True
    yield 'DER ECDSA signature over another digest refused', \
        raises(verify_digest_signature, spki, hashlib.sha256(b'other').digest(), der)

    prot = det_encode({1: -7, 4: b'\x00\x0b' + bytes(32), 15: {6: int(time.time()), 'task_id': 't-1'}})
    payload = b'hello'
    to_sign = det_encode(['Signature1', prot, b'', payload])
    r, s_ = utils.decode_dss_signature(priv.sign(to_sign, ec.ECDSA(hashes.SHA256())))
    blob = b'\xd2' + det_encode([prot, {}, payload, r.to_bytes(32, 'big') + s_.to_bytes(32, 'big')])
    c = verify_cose_sign1(blob, spki)
    yield 'COSE_Sign1 verifies', c.payload == payload and c.protected[15]['task_id'] == 't-1'
    bad = bytearray(blob)
    bad[-1] ^= 1
    yield 'COSE_Sign1 with a flipped signature bit refused', raises(verify_cose_sign1, bytes(bad), spki)
    yield 'COSE_Sign1 without tag refused', raises(verify_cose_sign1, blob[1:], spki)
    other = b'\xd2' + det_encode([prot, {4: b'x'}, payload, r.to_bytes(32, 'big') + s_.to_bytes(32, 'big')])
    yield 'COSE_Sign1 with unprotected header refused', raises(verify_cose_sign1, other, spki)


def _is_zombie_or_gone(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(') ')[1].split()[0] == 'Z'
    except OSError:
        return True


if __name__ == '__main__':
    if sys.argv[1:] == ['--selftest']:
        sys.exit(selftest())
    print('usage: %s --selftest' % sys.argv[0], file=sys.stderr)
    sys.exit(2)

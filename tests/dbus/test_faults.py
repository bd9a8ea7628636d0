#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": faults and crash consistency of agentidd (issue 12 "Hardening"; docs/security.md
"Faults and crash consistency").

  TpmGoneTests         swtpm SIGKILLed under a signing flood, and started again on the same state
  TpmResetTests        TPM Restart and TPM Reset (orderly and unclean) under a running agentidd; the
                       clock information of the evidence's quote
  OwnerClearedTests    tpm2_clear of the owner hierarchy, while agentidd runs and between two runs
  StorageTests         the state directory on a small tmpfs: full, then read-only at start
  CrashTests           agentidd SIGKILLed at random points of a concurrent workload, 100 rounds
                       (AGENTID_TEST_CRASH_ROUNDS overrides, e.g. for the sanitizer build)

Garbage policy at reload is test_policy.py's test_reload_invalid_keeps_old_policy.

The mounts (tmpfs) are made in a private mount namespace of this process when possible, so they
vanish with it whatever happens; they are also unmounted (lazily) at the end of each test.

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_faults.py [-k PATTERN]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import ctypes
import io
import json
import queue
import random
import re
import subprocess
import threading
import time

import cbor2

from harness import (E_KEY_DESTROYED, E_KEY_EXISTS, KEY_IFACE, MANAGER_IFACE, MANAGER_PATH,  # noqa: E402
                     UID_DAEMON)
from test_daemon import DaemonTestCase, run_main, sha256  # noqa: E402

E_TPM_UNAVAILABLE = 'org.agentid1.Error.TpmUnavailable'
E_KEY_UNUSABLE = 'org.agentid1.Error.KeyUnusable'
E_STORAGE_FAILURE = 'org.agentid1.Error.StorageFailure'
E_NO_REPLY = 'org.freedesktop.DBus.Error.NoReply'
E_SERVICE_UNKNOWN = 'org.freedesktop.DBus.Error.ServiceUnknown'
E_DISCONNECTED = 'org.freedesktop.DBus.Error.Disconnected'
OWNER = 'faults@example.com'
ADMIN_ARGS = ('--admin-group=sys',)

CRASH_ROUNDS = int(os.environ.get('AGENTID_TEST_CRASH_ROUNDS') or 100)

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18


def _enter_private_mount_namespace():
    """unshare(CLONE_NEWNS) and make every mount private: the test's tmpfs mounts (and the daemons
    started here, which inherit the namespace) are then invisible to the rest of the machine and go
    away with the last process in it."""
    if _libc.unshare(_CLONE_NEWNS) != 0:
        return False
    return _libc.mount(b'none', b'/', None, _MS_REC | _MS_PRIVATE, None) == 0


def ctl_path():
    return h.CTL_BINARY


# ---------------------------------------------------------------- evidence: TPMS_CLOCK_INFO


def quote_clock_info(attest):
    """TPMS_ATTEST (Part 2 §10.12.12): magic, type, qualifiedSigner (TPM2B), extraData (TPM2B), then
    TPMS_CLOCK_INFO (§10.11.1): clock u64, resetCount u32, restartCount u32, safe u8."""
    attest = bytes(attest)
    if attest[:6] != bytes.fromhex('ff5443478018'):
        raise AssertionError('not a TPMS_ATTEST of a quote: %s' % attest[:6].hex())
    off = 6
    for _ in range(2):
        n = int.from_bytes(attest[off:off + 2], 'big')
        off += 2 + n
    if len(attest) < off + 17:
        raise AssertionError('quote too short for its clock information')
    return {'clock': int.from_bytes(attest[off:off + 8], 'big'),
            'reset_count': int.from_bytes(attest[off + 8:off + 12], 'big'),
            'restart_count': int.from_bytes(attest[off + 12:off + 16], 'big'),
            'safe': attest[off + 16]}


def tpm_clock_info(stack):
    """What tpm2_readclock says (TPM2_ReadClock), in the shape of quote_clock_info()."""
    out = stack.tpm_tool('tpm2_readclock')
    fields = dict(re.findall(r'^\s*(clock|reset_count|restart_count|safe):\s*(\S+)\s*$', out, re.M))
    return {'clock': int(fields['clock']), 'reset_count': int(fields['reset_count']),
            'restart_count': int(fields['restart_count']), 'safe': 1 if fields['safe'] == 'yes' else 0}


# ---------------------------------------------------------------- state directory checks


def state_dir_problems(state_dir, ignore=()):
    """Everything agentidd keeps must parse: key records, the host key, the revocation list, receipts,
    the task journal, the peer registry are each one deterministic CBOR item (docs/formats.md); the
    audit files are CBOR sequences whose chain `agentidctl audit verify` checks separately. No
    temporary file of an atomic write may be left over. Returns a list of problems."""
    problems = []
    for root, dirs, files in os.walk(state_dir):
        rel_root = os.path.relpath(root, state_dir)
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            path = os.path.join(root, name)
            if rel in ignore:
                continue
            if name.startswith('.tmp-') or name.startswith('.wipe-'):
                problems.append('%s: left-over temporary file' % rel)
                continue
            with open(path, 'rb') as f:
                data = f.read()
            if name == '.lock':
                continue
            if name in ('ak-rsa.check', 'ak-ecc.check'):  # empty markers (docs/architecture.md)
                if data:
                    problems.append('%s: a marker file with content' % rel)
                continue
            if rel.startswith('audit' + os.sep):
                stream = io.BytesIO(data)
                try:
                    while stream.tell() < len(data):
                        cbor2.CBORDecoder(stream).decode()
                except Exception as e:
                    problems.append('%s: torn or damaged audit file at offset %d: %s' % (rel, stream.tell(), e))
                continue
            try:
                obj = h.cbor_strict_loads(data)
            except Exception as e:
                problems.append('%s: does not parse as one deterministic CBOR item (%d bytes): %.200s' %
                                (rel, len(data), e))
                continue
            if rel.startswith('keys' + os.sep) or rel == 'host-key':
                if not isinstance(obj, dict) or obj.get('state') not in ('active', 'destroyed'):
                    problems.append('%s: not a key record' % rel)
                elif rel.startswith('keys' + os.sep) and obj.get('name') != name:
                    problems.append('%s: record names %r' % (rel, obj.get('name')))
    return problems


class FaultTestCase(DaemonTestCase):
    """A stack per test (faults break things); helpers to check what a fault left behind."""

    stack = None

    def start_stack(self, start_daemon=True, **kw):
        st = h.Stack(start_daemon=False, **kw)
        st.start()
        self.stack = st
        self.addCleanup(self._close_stack)
        if start_daemon:
            st.start_daemon(ADMIN_ARGS)
        return st

    def _close_stack(self):
        st = self.stack
        if st is None or st.closed:
            return
        st.shut_down()

    def sign_ok(self, path, digest=None, spki=None):
        digest = digest or os.urandom(32)
        spki = spki or self.stack.prop(path, 'PublicKey')
        h.verify_digest_signature(spki, digest, self.stack.sign(path, digest))

    def platform_clock(self):
        blob = bytes(self.stack.manager('GetPlatformEvidence', 'ay', [dbus.ByteArray(os.urandom(16))]))
        evidence = h.cbor_strict_loads(blob)
        return quote_clock_info(evidence['tpm']['quote'])

    def key_clock(self, path):
        blob = bytes(self.stack.key(path, 'Attest', 'aya{sv}', [dbus.ByteArray(os.urandom(32)), h.options()]))
        evidence = h.cbor_strict_loads(blob)
        h.verify_cose_sign1(evidence['eat'], self.stack.prop(path, 'PublicKey'))
        return quote_clock_info(evidence['tpm']['quote'])

    def audit_verify(self, with_host_key=True):
        """agentidctl audit verify; with_host_key: checkpoints must be signed by today's host key (not
        so after the owner hierarchy was cleared: older checkpoints are the retired host key's)."""
        args = []
        if with_host_key:
            host_der = self.stack.path('host.der')
            with open(host_der, 'wb') as f:
                f.write(self.stack.manager_props()['HostPublicKey'])
            args.append('--host-key=' + host_der)
        r = subprocess.run([ctl_path(), 'audit', 'verify', '--state-dir=' + self.stack.state_dir] + args,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, 'agentidctl audit verify: %s%s' % (r.stdout, r.stderr))
        return r.stdout

    def revocations(self):
        blob = bytes(self.stack.manager('GetRevocations'))
        return h.verify_cose_sign1(blob, self.stack.manager_props()['HostPublicKey']).payload_map()

    def assert_state_dir_consistent(self):
        self.assertEqual(state_dir_problems(self.stack.state_dir), [])

    def daemon_pid(self):
        return self.stack.daemon.pid


# ---------------------------------------------------------------- 1. the TPM goes away


class TpmGoneTests(FaultTestCase):
    def test_swtpm_killed_under_flood_and_back(self):
        """Four processes sign in a loop when swtpm is SIGKILLed: every failed call says
        TpmUnavailable, agentidd stays up and answers, and once swtpm is back on the same state the
        same agentidd signs again."""
        st = self.start_stack()
        pid = self.daemon_pid()
        path = self.create('tpm-gone', uid=UID_DAEMON)
        root_key = self.create('tpm-gone-root')
        props = st.props(path)
        procs = [st.start_sign_loop(UID_DAEMON, path, ready_after=5, deadline=60, task_id='flood-%d' % i)
                 for i in range(4)]
        try:
            st.wait_ready(procs)
            st.kill_tpm()
            t_killed = time.monotonic()
            time.sleep(1.0)  # the signers keep calling the TPM-less daemon
            # Down: management and signing fail cleanly, reads are served from memory.
            with self.assertDBusError(E_TPM_UNAVAILABLE):
                st.sign(root_key, sha256(b'no tpm'))
            with self.assertDBusError(E_TPM_UNAVAILABLE):
                st.create_key('tpm-gone-new', owner=OWNER)
            with self.assertDBusError(E_TPM_UNAVAILABLE):
                st.manager('GetPlatformEvidence', 'ay', [dbus.ByteArray(os.urandom(16))])
            mp = st.manager_props()
            self.assertEqual(mp['KeyCount'], 2)
            self.assertEqual(mp['TpmManufacturer'], 'IBM')
            self.assertEqual(st.props(path), props)
            self.assertEqual(sorted(e[0] for e in st.list_keys()), ['tpm-gone', 'tpm-gone-root'])
            results = [st.finish_sign_loop(p) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        self.assertIsNone(st.daemon.poll(), 'agentidd exited')
        records = [r for res in results for r in res['records']]
        before = [r for r in records if r[0] < t_killed]
        after = [r for r in records if r[0] > t_killed + 0.2]
        self.assertTrue(any(r[2] for r in before), 'signatures before the kill')
        self.assertTrue(after, 'calls after the kill')
        for r in records:
            if r[2]:
                h.verify_digest_signature(props['PublicKey'], bytes.fromhex(r[4]), bytes.fromhex(r[5]))
        odd = sorted({r[3] for r in records if not r[2] and r[3] != E_TPM_UNAVAILABLE})
        self.assertEqual(odd, [], 'errors other than TpmUnavailable')
        late_ok = [r[:4] for r in after if r[2]]
        self.assertEqual(late_ok, [], 'signatures while swtpm was down')
        sys.stderr.write('\n    %d calls: %d signed before the kill, %d refused TpmUnavailable ... ' %
                         (len(records), sum(1 for r in records if r[2]), sum(1 for r in records if not r[2])))

        # Back on the same state: a TPM Reset as far as agentidd knows; no restart of agentidd.
        st.start_tpm()
        for _ in range(3):
            self.sign_ok(root_key)
            self.assertCallOk(st.sign_as(UID_DAEMON, path, sha256(b'after')))
        h.verify_digest_signature(props['PublicKey'], sha256(b'after'),
                                  st.sign_as(UID_DAEMON, path, sha256(b'after')).bytes)
        self.sign_ok(self.create('tpm-gone-new'))
        self.platform_clock()
        self.assertEqual(self.daemon_pid(), pid, 'agentidd was not restarted')
        self.audit_verify()
        self.revocations()

    def test_swtpm_killed_twice_while_idle(self):
        """A second loss (the reconnect itself failing) does not wedge the reconnect logic."""
        st = self.start_stack()
        key = self.create('idle-gone')
        for _ in range(2):
            st.kill_tpm()
            for _ in range(3):
                with self.assertDBusError(E_TPM_UNAVAILABLE):
                    st.sign(key, sha256(b'x'))
            st.start_tpm()
            self.sign_ok(key)
        st.stop_daemon()


    def test_stale_sessions_flushed_at_start(self):
        """A process killed mid-command (agentidd itself, in CrashTests) leaves sessions in a TPM without a
        resource manager, and a TPM has few session slots: --flush-stale-handles must flush them, or
        StartTask and Attest fail with TPM_RC_SESSION_MEMORY from then on."""
        st = self.start_stack(start_daemon=False)
        for i in range(4):  # tpm2-tools context-saves the session and leaves it in the TPM
            st.tpm_tool('tpm2_startauthsession', '--policy-session', '-S', st.path('leak-%d.ctx' % i))
        self.assertEqual(len(self.sessions_in_tpm(st)), 4)
        st.start_daemon(ADMIN_ARGS)
        key = self.create('after-leak')
        for i in range(3):
            path, _ = st.key(key, 'StartTask', 'sa{sv}', ['leak-task-%d' % i, h.options()])
            self.assertTrue(str(path).startswith(key + '/task/'))
        self.key_clock(key)
        st.stop_daemon()
        self.assertEqual(self.sessions_in_tpm(st), [])

    @staticmethod
    def sessions_in_tpm(st):
        return re.findall(r'^- (0x\w+)$', st.tpm_tool('tpm2_getcap', 'handles-saved-session') +
                          st.tpm_tool('tpm2_getcap', 'handles-loaded-session'), re.M)


# ---------------------------------------------------------------- 2. TPM reset under agentidd


class TpmResetTests(FaultTestCase):
    MODES = (
        # (name, shutdown before the power cycle, what Part 1 §36.2 calls it)
        ('orderly-state', 'state', 'restart'),
        ('orderly-clear', 'clear', 'reset'),
        ('unclean', None, 'reset'),
    )

    def test_reset_modes(self):
        st = self.start_stack()
        keys = [self.create('boot-%d' % i) for i in range(4)]
        spki = {k: st.prop(k, 'PublicKey') for k in keys}
        for k in keys:
            self.sign_ok(k, spki=spki[k])
        for name, shutdown, kind in self.MODES:
            with self.subTest(name):
                before = self.platform_clock()
                st.power_cycle_tpm(shutdown)
                # Every key signs again: two were loaded, two context-saved, all of that is gone.
                for _ in range(2):
                    for k in keys:
                        self.sign_ok(k, spki=spki[k])
                after = self.platform_clock()
                tpm = tpm_clock_info(st)
                if kind == 'restart':
                    self.assertEqual(after['reset_count'], before['reset_count'])
                    self.assertEqual(after['restart_count'], before['restart_count'] + 1)
                else:
                    self.assertEqual(after['reset_count'], before['reset_count'] + 1)
                    self.assertEqual(after['restart_count'], 0)
                if shutdown is None:
                    self.assertEqual(after['safe'], 0, 'after an unorderly shutdown the clock is not safe')
                # The evidence reports what the TPM itself says.
                for field in ('reset_count', 'restart_count', 'safe'):
                    self.assertEqual(after[field], tpm[field], field)
                self.assertLessEqual(after['clock'], tpm['clock'])
                key_clock = self.key_clock(keys[0])
                self.assertEqual((key_clock['reset_count'], key_clock['restart_count'], key_clock['safe']),
                                 (tpm['reset_count'], tpm['restart_count'], tpm['safe']))
                sys.stderr.write('\n    %s: resetCount %d -> %d, restartCount %d -> %d, safe %d -> %d ... ' %
                                 (name, before['reset_count'], after['reset_count'], before['restart_count'],
                                  after['restart_count'], before['safe'], after['safe']))
        self.sign_ok(self.create('after-resets'))
        self.audit_verify()


# ---------------------------------------------------------------- 3. owner hierarchy cleared


class OwnerClearedTests(FaultTestCase):
    def test_cleared_while_running_then_restart(self):
        st = self.start_stack()
        old = self.create('pre-clear', uid=UID_DAEMON)
        idle = self.create('pre-clear-idle', uid=UID_DAEMON)
        old_props = st.props(old)
        self.assertCallOk(st.sign_as(UID_DAEMON, old, sha256(b'before')))
        host_before = st.manager_props()['HostPublicKey']

        st.tpm_tool('tpm2_clear', '-c', 'p')
        # While running: the keys cannot be loaded any more and say so; agentidd keeps answering. The
        # first refusal marks every key unusable, also one nobody has used since.
        self.assertEqual(st.prop(idle, 'State'), 'active')
        self.assertCallError(st.sign_as(UID_DAEMON, old, sha256(b'after clear')), E_KEY_UNUSABLE)
        self.assertEqual([st.prop(k, 'State') for k in (old, idle)], ['unusable', 'unusable'])
        self.assertEqual(self.list_entry('pre-clear-idle'), ('pre-clear-idle', idle, 'unusable'))
        self.assertCallError(st.sign_as(UID_DAEMON, idle, sha256(b'idle after clear')), E_KEY_UNUSABLE)
        self.assertIn('storage root key changed while agentidd ran', st.daemon_log_tail(200))
        with self.assertDBusError(E_KEY_UNUSABLE):
            st.create_key('post-clear-live', owner=OWNER)
        mp = st.manager_props()
        self.assertEqual(mp['HostPublicKey'], host_before)
        self.assertEqual(mp['KeyCount'], 2)
        self.assertIsNone(st.daemon.poll())

        # The next start adopts the new storage root key: new host key, old keys reported unusable.
        st.restart_daemon(ADMIN_ARGS)
        mp = st.manager_props()
        self.assertNotEqual(mp['HostPublicKey'], host_before, 'a new host key')
        self.assertEqual(st.prop(old, 'State'), 'unusable')
        self.assertEqual(self.list_entry('pre-clear'), ('pre-clear', old, 'unusable'))
        self.assertEqual(st.prop(old, 'PublicKey'), old_props['PublicKey'])
        self.assertCallError(st.sign_as(UID_DAEMON, old, sha256(b'after restart')), E_KEY_UNUSABLE)
        new = self.create('post-clear')
        self.sign_ok(new)
        self.platform_clock()
        self.revocations()
        self.audit_verify(with_host_key=False)
        # An unusable key can still be destroyed (offboarded): its name stays reserved.
        st.destroy(old, 'owner hierarchy cleared')
        self.assertEqual(self.list_entry('pre-clear'), ('pre-clear', '/', 'destroyed'))
        self.assertIn('pre-clear', [e['name'] for e in self.revocations()['entries']])
        self.assert_state_dir_consistent()

    def test_cleared_between_runs(self):
        st = self.start_stack()
        old = self.create('stopped-clear')
        host_before = st.manager_props()['HostPublicKey']
        st.stop_daemon()
        st.tpm_tool('tpm2_clear', '-c', 'p')
        st.start_daemon(ADMIN_ARGS)
        self.assertNotEqual(st.manager_props()['HostPublicKey'], host_before)
        self.assertEqual(st.prop(old, 'State'), 'unusable')
        with self.assertDBusError(E_KEY_UNUSABLE):
            st.sign(old, sha256(b'x'))
        retired = [n for n in os.listdir(st.state_dir) if n.startswith('host-key.retired-')]
        self.assertEqual(len(retired), 1, 'the old host key record is kept')
        self.sign_ok(self.create('after-clear'))
        # Only once: the next start keeps the new host key.
        host_now = st.manager_props()['HostPublicKey']
        st.restart_daemon(ADMIN_ARGS)
        self.assertEqual(st.manager_props()['HostPublicKey'], host_now)
        self.audit_verify(with_host_key=False)
        self.assert_state_dir_consistent()


# ---------------------------------------------------------------- 4. storage


class StorageTests(FaultTestCase):
    SIZE = '3m'

    def mount_tmpfs(self, st):
        """A small tmpfs over the (empty) state directory, before agentidd first starts."""
        if os.path.ismount(st.state_dir):
            raise AssertionError('state directory already a mount point')
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0700' % self.SIZE, 'agentid-faults',
                            st.state_dir], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest('cannot mount a tmpfs (%s): needs root with CAP_SYS_ADMIN, as in CI' % r.stderr.strip())
        # Registered after the stack's clean-up, so it runs before it: agentidd has stopped by then
        # only if the test stopped it, hence the lazy unmount.
        self.addCleanup(self._umount, st.state_dir)

    @staticmethod
    def _umount(path):
        subprocess.run(['umount', '-l', path], capture_output=True)

    def fill(self, st):
        """Fill the file system to the last byte; returns the filler's path."""
        filler = os.path.join(st.state_dir, 'filler')
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for n in (1 << 16, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, bytes(n))
                except OSError as e:
                    if e.errno != 28:
                        raise
        finally:
            os.close(fd)
        return filler

    def test_disk_full_then_space_returns(self):
        st = self.start_stack(start_daemon=False)
        self.mount_tmpfs(st)
        st.start_daemon(ADMIN_ARGS)
        pid = self.daemon_pid()
        key = self.create('full-a')
        victim = self.create('full-victim')
        rotated = self.create('full-rotate')
        spki = st.prop(key, 'PublicKey')
        self.sign_ok(key, spki=spki)
        filler = self.fill(st)
        try:
            # Management that must write a record: refused with StorageFailure, nothing half-done.
            with self.assertDBusError(E_STORAGE_FAILURE):
                st.create_key('full-new', owner=OWNER)
            with self.assertDBusError(h.E_NO_SUCH_KEY):
                st.manager('GetKey', 's', ['full-new'])
            rot_before = st.props(rotated)
            with self.assertDBusError(E_STORAGE_FAILURE):
                st.key(rotated, 'Rotate', 's', ['disk full'])
            self.assertEqual(st.props(rotated), rot_before, 'a failed Rotate leaves the key as it was')
            with self.assertDBusError(E_STORAGE_FAILURE):
                st.key(key, 'StartTask', 'sa{sv}', ['full-task', h.options()])
            # Destroy takes effect when accepted (docs/offboarding.md): the key refuses use at once,
            # even though its tombstone could not be written; agentidd retries.
            with self.assertDBusError(E_STORAGE_FAILURE):
                st.destroy(victim, 'disk full')
            self.assertEqual(self.list_entry('full-victim')[2], 'destroyed')
            with self.assertDBusError(E_KEY_DESTROYED, h.E_UNKNOWN_OBJECT):
                st.sign(victim, sha256(b'x'))

            # Signing needs its audit record: each Sign either succeeds with a durable record or is
            # refused StorageFailure; once the audit file's last page is used up, refusals come.
            signed, refused = [], 0
            for i in range(400):
                digest = sha256(b'full %d' % i)
                try:
                    sig = st.sign(key, digest)
                except dbus.exceptions.DBusException as e:
                    self.assertEqual(e.get_dbus_name(), E_STORAGE_FAILURE, e.get_dbus_message())
                    refused += 1
                    if refused >= 3:
                        break
                else:
                    h.verify_digest_signature(spki, digest, sig)
                    signed.append(digest)
            self.assertGreaterEqual(refused, 3, 'a full disk never refused a Sign (%d signed)' % len(signed))
            self.assertEqual(st.manager_props()['KeyCount'], 2, 'full-victim no longer counts')
            self.assertIsNone(st.daemon.poll())
            self.assertEqual(state_dir_problems(st.state_dir, ignore=('filler',)), [])
        finally:
            os.unlink(filler)
        sys.stderr.write('\n    disk full: %d signatures fitted into the audit log, then StorageFailure ... ' %
                         len(signed))

        # Space is back: the same agentidd recovers without a restart.
        self.assertEqual(self.daemon_pid(), pid)
        self.sign_ok(key, spki=spki)
        self.sign_ok(self.create('full-new'))
        path, _ = st.key(key, 'StartTask', 'sa{sv}', ['full-task', h.options()])
        self.assertTrue(str(path).startswith(key + '/task/'))
        new_rot = st.key(rotated, 'Rotate', 's', ['space is back'])
        self.assertTrue(new_rot)
        deadline = time.monotonic() + 45  # the failed Destroy is retried every 30 s; or ask again
        while True:
            try:
                st.destroy(victim, 'disk full')
            except dbus.exceptions.DBusException as e:
                self.assertIn(e.get_dbus_name(), (h.E_UNKNOWN_OBJECT, E_KEY_DESTROYED, E_STORAGE_FAILURE),
                              e.get_dbus_message())
            if self.list_entry('full-victim') == ('full-victim', '/', 'destroyed'):
                break
            self.assertLess(time.monotonic(), deadline, 'the destroy never completed')
            time.sleep(0.5)
        with self.assertDBusError(E_KEY_DESTROYED):
            st.manager('GetKey', 's', ['full-victim'])
        names = [e['name'] for e in self.revocations()['entries'] if e['type'] == 'destroy']
        self.assertIn('full-victim', names)
        # Every signature that was answered has its audit record.
        recorded = self.audit_digests()
        self.assertEqual([d for d in signed if d not in recorded], [], 'signatures without an audit record')
        self.audit_verify()
        self.assert_state_dir_consistent()

        # And across a restart.
        st.restart_daemon(ADMIN_ARGS)
        self.sign_ok(key, spki=spki)
        self.assertEqual(self.list_entry('full-victim'), ('full-victim', '/', 'destroyed'))
        self.audit_verify()
        self.assert_state_dir_consistent()

    def audit_digests(self):
        r = subprocess.run([ctl_path(), 'audit', 'show', '--json', '--state-dir=' + self.stack.state_dir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = set()
        for line in r.stdout.splitlines():
            rec = json.loads(line)
            if rec.get('action') == 'sign' and rec.get('decision') == 'allow' and rec.get('digest'):
                out.add(bytes.fromhex(rec['digest']))
        return out

    def test_read_only_state_dir_at_start(self):
        """A read-only state directory cannot be remounted under a running agentidd (its audit log is
        open for writing: EBUSY), so: read-only when it starts."""
        st = self.start_stack(start_daemon=False)
        self.mount_tmpfs(st)
        st.start_daemon(ADMIN_ARGS)
        key = self.create('ro-key')
        spki = st.prop(key, 'PublicKey')
        st.stop_daemon()
        snapshot = self.snapshot(st.state_dir)
        r = subprocess.run(['mount', '-o', 'remount,ro', st.state_dir], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            mark = st.daemon_log_size()
            with self.assertRaises(h.StackError) as cm:
                st.start_daemon(ADMIN_ARGS)
            self.assertIn('exited during start-up', str(cm.exception))
            log = st.daemon_log_tail(40, mark)
            self.assertRegex(log, r'(?i)read-only file system', 'the refusal names the cause')
            self.assertEqual(self.snapshot(st.state_dir), snapshot)
        finally:
            r = subprocess.run(['mount', '-o', 'remount,rw', st.state_dir], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        st.start_daemon(ADMIN_ARGS)
        self.sign_ok(key, spki=spki)
        self.audit_verify()
        self.assert_state_dir_consistent()

    @staticmethod
    def snapshot(state_dir):
        out = {}
        for root, dirs, files in os.walk(state_dir):
            for name in files:
                path = os.path.join(root, name)
                out[os.path.relpath(path, state_dir)] = h.file_sha256(path)
        return out


# ---------------------------------------------------------------- 5. kill -9 at random points


class CrashTests(FaultTestCase):
    THREADS = 4
    MAX_ACTIVE = 8

    def test_kill_at_random_points(self):
        st = self.start_stack(start_daemon=False)
        seed = int(os.environ.get('AGENTID_TEST_SEED') or random.SystemRandom().randrange(1 << 32))
        rng = random.Random(seed)
        sys.stderr.write('\n    seed %d (AGENTID_TEST_SEED=%d repeats it), %d rounds ... ' %
                         (seed, seed, CRASH_ROUNDS))
        st.start_daemon(ADMIN_ARGS)
        acked_create = {}      # name -> SPKI of a key whose CreateKey was answered
        acked_destroy = set()  # names whose Destroy was answered
        acked_tasks = set()    # ctis of the credentials StartTask handed out
        counts = {'create': 0, 'destroy': 0, 'sign': 0, 'start_task': 0, 'no_reply': 0, 'refused': 0, 'torn': 0}
        t0 = time.monotonic()
        for rnd in range(CRASH_ROUNDS):
            active = [name for name, _, state in st.list_keys() if state == 'active']
            ops = []
            for i in range(3):
                ops.append(('create', 'c%03d-%d' % (rnd, i)))
            for name in rng.sample(active, max(0, len(active) + 3 - self.MAX_ACTIVE)):
                ops.append(('destroy', name))
            for name in active:
                ops.append((rng.choice(['sign', 'sign', 'start_task']), name))
            rng.shuffle(ops)
            delay = rng.uniform(0, 0.2)
            results = self.run_round(st, ops, delay)
            for (op, name), (ok, value, error, message) in results:
                if ok:
                    counts[op] += 1
                    if op == 'create':
                        acked_create[name] = value
                    elif op == 'destroy':
                        acked_destroy.add(name)
                    elif op == 'start_task':
                        acked_tasks.add(value)
                elif error in (E_NO_REPLY, E_SERVICE_UNKNOWN, E_DISCONNECTED, None):
                    counts['no_reply'] += 1
                else:
                    # A Sign or StartTask racing a Destroy of the same key; nothing else may fail.
                    self.assertIn(error, (E_KEY_DESTROYED, h.E_UNKNOWN_OBJECT),
                                  'round %d: %s of %s failed: %s' % (rnd, op, name, message))
                    self.assertIn(op, ('sign', 'start_task'))
                    counts['refused'] += 1
            torn = None
            if rnd % 10 == 9:
                # As if power had failed during an append: the newest audit file ends in part of a
                # record, maybe followed by zeros (docs/audit.md "After a crash").
                torn = self.tear_audit_tail(st, rng)
                recovered_before = self.count_recovered(st)
                counts['torn'] += 1
            st.start_daemon(ADMIN_ARGS)
            if torn is not None:
                self.assertEqual(self.count_recovered(st), recovered_before + 1,
                                 'round %d: no "recovered" record after a torn tail of %d bytes' % (rnd, torn))
            try:
                self.check_after_crash(st, acked_create, acked_destroy, acked_tasks)
            except AssertionError as e:
                raise AssertionError('round %d (seed %d, kill after %.0f ms): %s' % (rnd, seed, delay * 1000, e))
        elapsed = time.monotonic() - t0
        sys.stderr.write('%d rounds in %.0f s; answered: %d creates, %d destroys, %d signs, %d task starts; '
                         '%d calls cut off by the kill, %d refused; %d torn audit tails recovered ... ' %
                         (CRASH_ROUNDS, elapsed, counts['create'], counts['destroy'], counts['sign'],
                          counts['start_task'], counts['no_reply'], counts['refused'], counts['torn']))
        self.crash_figures = (CRASH_ROUNDS, elapsed, counts)
        st.stop_daemon()
        self.assert_state_dir_consistent()

    @staticmethod
    def tear_audit_tail(st, rng):
        """Append the first part of a copy of the newest record (and maybe zeros) to the newest audit
        file: what an append interrupted by a power loss leaves. Returns the bytes appended."""
        audit_dir = os.path.join(st.state_dir, 'audit')
        newest = os.path.join(audit_dir, sorted(os.listdir(audit_dir))[-1])
        with open(newest, 'rb') as f:
            data = f.read()
        stream = io.BytesIO(data)
        last = 0
        while stream.tell() < len(data):
            last = stream.tell()
            cbor2.CBORDecoder(stream).decode()
        record = data[last:]
        tail = record[:rng.randrange(1, len(record))] + bytes(rng.choice((0, 0, 9, 4096)))
        with open(newest, 'ab') as f:
            f.write(tail)
        return len(tail)

    @staticmethod
    def count_recovered(st):
        """Records with action "recovered"; `show` stops at a torn tail (status 1), after what it printed."""
        r = subprocess.run([ctl_path(), 'audit', 'show', '--json', '--state-dir=' + st.state_dir],
                           capture_output=True, text=True, timeout=120)
        return sum(1 for line in r.stdout.splitlines() if json.loads(line).get('action') == 'recovered')

    def run_round(self, st, ops, delay):
        """Issue ops from THREADS connections at once; SIGKILL agentidd after delay. Returns
        [((op, name), (ok, value, error name))] for the ops that were sent."""
        work = queue.Queue()
        for o in ops:
            work.put(o)
        results = []
        lock = threading.Lock()
        killed = threading.Event()
        start = threading.Barrier(self.THREADS + 1)

        def worker():
            conn = dbus.bus.BusConnection(st.address)
            try:
                start.wait()
                while not killed.is_set():
                    try:
                        o = work.get_nowait()
                    except queue.Empty:
                        return
                    r = self.one_op(conn, o)
                    with lock:
                        results.append((o, r))
            finally:
                conn.close()

        threads = [threading.Thread(target=worker) for _ in range(self.THREADS)]
        for t in threads:
            t.start()
        start.wait()
        time.sleep(delay)
        st.kill_daemon()
        killed.set()
        for t in threads:
            t.join(60)
            self.assertFalse(t.is_alive(), 'a client thread hangs after the kill')
        return results

    @staticmethod
    def one_op(conn, o):
        op, name = o
        path = h.path_encode(name)
        try:
            if op == 'create':
                p = conn.call_blocking(h.BUS_NAME, MANAGER_PATH, MANAGER_IFACE, 'CreateKey', 'sa{sv}',
                                       [name, h.options(owner=OWNER)], timeout=30)
                try:
                    spki = bytes(conn.call_blocking(h.BUS_NAME, str(p), h.PROPS_IFACE, 'Get', 'ss',
                                                    [KEY_IFACE, 'PublicKey'], timeout=30, byte_arrays=True))
                except dbus.exceptions.DBusException:
                    spki = None  # cut off after the create was answered: the create still counts
                return True, spki, None, None
            if op == 'destroy':
                conn.call_blocking(h.BUS_NAME, path, KEY_IFACE, 'Destroy', 's', ['crash test'], timeout=30)
                return True, None, None, None
            if op == 'sign':
                conn.call_blocking(h.BUS_NAME, path, KEY_IFACE, 'Sign', 'aya{sv}',
                                   [dbus.ByteArray(os.urandom(32)), h.options()], timeout=30)
                return True, None, None, None
            if op == 'start_task':
                _, credential = conn.call_blocking(h.BUS_NAME, path, KEY_IFACE, 'StartTask', 'sa{sv}',
                                                   ['t-' + os.urandom(4).hex(), h.options()], timeout=30,
                                                   byte_arrays=True)
                return True, h.decode_cose_sign1(credential).payload_map()[7], None, None  # its cti
            raise ValueError(op)
        except dbus.exceptions.DBusException as e:
            return False, None, e.get_dbus_name(), e.get_dbus_message()

    def check_after_crash(self, st, acked_create, acked_destroy, acked_tasks):
        listing = {name: (path, state) for name, path, state in st.list_keys()}
        for name, spki in acked_create.items():
            self.assertIn(name, listing, 'an answered CreateKey was lost')
            if spki is not None and listing[name][1] == 'active':
                self.assertEqual(st.prop(listing[name][0], 'PublicKey'), spki, 'key %s changed' % name)
        for name in acked_destroy:
            self.assertEqual(listing.get(name), ('/', 'destroyed'), 'an answered Destroy of %s was lost' % name)
        for name, (path, state) in listing.items():
            self.assertIn(state, ('active', 'destroyed'), '%s is %s' % (name, state))
            if state == 'active':
                self.assertNotIn(name, acked_destroy)
                digest = os.urandom(32)
                h.verify_digest_signature(st.prop(path, 'PublicKey'), digest, st.sign(path, digest))
        destroyed = {n for n, (_, s) in listing.items() if s == 'destroyed'}
        for name in acked_destroy:
            with self.assertDBusError(E_KEY_DESTROYED):
                st.manager('GetKey', 's', [name])
            with self.assertDBusError(E_KEY_EXISTS):
                st.create_key(name, owner=OWNER)
        entries = self.revocations()['entries']
        revoked = {e['name'] for e in entries if e['type'] == 'destroy'}
        self.assertEqual(destroyed - revoked, set(), 'destroyed keys missing from the revocation list')
        # A task does not survive agentidd: every credential handed out is revoked by now, and the
        # journal that made that possible is empty again.
        ended = {e['cti'] for e in entries if e['type'] == 'task_end'}
        self.assertEqual(acked_tasks - ended, set(), 'task credentials not revoked after the crash')
        self.assertEqual(os.listdir(os.path.join(st.state_dir, 'tasks')), [])
        self.audit_verify()
        self.assertEqual(state_dir_problems(st.state_dir), [])


if __name__ == '__main__':
    run_main()

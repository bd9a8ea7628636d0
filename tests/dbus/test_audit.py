#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": the audit log as agentidd writes it (DESIGN §5 "Audit log", "Audit head";
docs/formats.md, docs/audit.md).

The records are read here with cbor2 straight from <state>/audit and the chain is recomputed in Python,
independently of governance/audit.c; `agentidctl audit verify` must agree, and must catch truncation
given a head from GetAuditHead.

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_audit.py [-k PATTERN]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import hashlib
import io
import json
import shutil
import subprocess
import time

import cbor2

from harness import (E_ACCESS_DENIED, KEY_IFACE, MANAGER_IFACE, MANAGER_PATH, UID_BIN, UID_DAEMON,  # noqa: E402
                     UID_SYS)
from test_daemon import DaemonTestCase, run_main, sha256  # noqa: E402

CHECKPOINT_EVERY = 8
POLICY = {
    'version': 1,
    'rules': [
        {'name': 'frozen', 'keys': ['frozen-*'], 'effect': 'deny'},
        {'name': 'held', 'keys': ['held-*'], 'effect': 'confirm'},
        {'name': 'rest', 'effect': 'allow'},
    ],
}


def read_log(audit_dir):
    """[(seq, bytes, record)] of every file, in order, with the chain checked."""
    out = []
    prev = b'\0' * 32
    for name in sorted(os.listdir(audit_dir)):
        with open(os.path.join(audit_dir, name), 'rb') as f:
            data = f.read()
        stream = io.BytesIO(data)
        first = True
        while stream.tell() < len(data):
            start = stream.tell()
            rec = cbor2.CBORDecoder(stream).decode()
            raw = data[start:stream.tell()]
            if h.det_encode(rec) != raw:
                raise AssertionError('record %r is not deterministic CBOR' % rec.get('seq'))
            if rec['prev'] != prev:
                raise AssertionError('record %d does not chain' % rec['seq'])
            if first:
                if name != '%020d.cbor' % rec['seq']:
                    raise AssertionError('file %s starts with seq %d' % (name, rec['seq']))
                first = False
            if out and rec['seq'] != out[-1][0] + 1:
                raise AssertionError('seq %d follows %d' % (rec['seq'], out[-1][0]))
            prev = hashlib.sha256(raw).digest()
            out.append((rec['seq'], raw, rec))
    return out


class AuditTests(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        path = cls.stack.path('policy.json')
        with open(path, 'w') as f:
            json.dump(POLICY, f)
        cls.stack.start_daemon(('--policy=' + path, '--audit-checkpoint-every=%d' % CHECKPOINT_EVERY,
                                '--admin-group=sys'))
        cls.ctl = h.CTL_BINARY

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    @property
    def audit_dir(self):
        return os.path.join(self.stack.state_dir, 'audit')

    def records(self):
        return read_log(self.audit_dir)

    def find(self, **want):
        return [r for _, _, r in self.records() if all(r.get(k) == v for k, v in want.items())]

    def wait_find(self, timeout=15, **want):
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(**want)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def host_key_file(self):
        path = self.stack.path('host.der')
        with open(path, 'wb') as f:
            f.write(self.stack.manager_props()['HostPublicKey'])
        return path

    def ctl_verify(self, *args, state_dir=None):
        return subprocess.run([self.ctl, 'audit', 'verify', '--state-dir=' + (state_dir or self.stack.state_dir)] +
                              list(args), capture_output=True, text=True)

    # ------------------------------------------------------------------

    def test_start_record(self):
        start = self.find(action='start')
        self.assertTrue(start)
        self.assertEqual(start[0]['seq'], 1)
        self.assertEqual(start[0]['prev'], b'\0' * 32)
        self.assertEqual(start[0]['decision'], 'done')

    def test_sign_recorded_before_reply(self):
        path = self.create('aud-sign', uid=UID_DAEMON)
        digest = sha256(b'audited')
        res = self.stack.sign_as(UID_DAEMON, path, digest, task_id='task-a', audience='peer')
        self.assertCallOk(res)
        # The reply came after the record was durable: it is on disk now, without waiting.
        recs = self.find(action='sign', key='aud-sign', decision='allow')
        self.assertEqual(len(recs), 1, recs)
        r = recs[0]
        self.assertEqual(r['digest'], digest)
        self.assertEqual((r['task_id'], r['audience']), ('task-a', 'peer'))
        self.assertEqual(r['caller']['uid'], UID_DAEMON)
        self.assertGreater(r['caller']['pid'], 0)
        self.assertEqual(r['kid'], self.stack.prop(path, 'TpmName'))
        self.assertEqual(r['rule'], 'rest')
        create = self.find(action='create', key='aud-sign', decision='allow')
        self.assertEqual(len(create), 1)
        self.assertEqual(create[0]['caller']['uid'], 0)

    def test_refusals_recorded(self):
        path = self.create('aud-refuse', uid=UID_DAEMON)
        self.assertCallError(self.stack.sign_as(UID_BIN, path, b'\1' * 32), E_ACCESS_DENIED)
        recs = self.find(action='sign', key='aud-refuse', decision='deny')
        self.assertEqual(len(recs), 1, recs)
        self.assertIn('AccessDenied', recs[0]['reason'])
        self.assertEqual(recs[0]['caller']['uid'], UID_BIN)
        frozen = self.create('frozen-aud', uid=UID_DAEMON)
        self.stack.sign_as(UID_DAEMON, frozen, b'\2' * 32)
        recs = self.find(action='sign', key='frozen-aud', decision='deny')
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]['rule'], 'frozen')

    def test_refusal_flood_is_aggregated(self):
        path = self.create('aud-flood', uid=UID_DAEMON)
        before = len(self.records())
        procs = [self.stack.call_as(UID_BIN, path, KEY_IFACE, 'Sign', 'aya{sv}',
                                    [dbus.ByteArray(b'\3' * 32), h.options()], background=True)
                 for _ in range(20)]
        for p in procs:
            self.assertCallError(h.Stack.finish_call(p), E_ACCESS_DENIED)
        recs = self.find(action='sign', key='aud-flood', decision='deny')
        self.assertEqual(len(recs), 1, 'the first refusal is written, the rest counted: %r' % recs)
        self.assertLess(len(self.records()) - before, 20)
        # The count is written when the window closes (10 s) or at stop; see test_z_stop.

    def test_held_requests_recorded(self):
        path = self.create('held-aud', uid=UID_DAEMON)
        outcomes = []
        for answer in (True, False, None):
            proc = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Sign', 'aya{sv}',
                                      [dbus.ByteArray(b'\4' * 32), h.options(task_id='t-held')],
                                      interactive=True, background=True)
            deadline = time.monotonic() + 10
            while not [a for a in h.unwrap(self.stack.manager('ListApprovals')) if a[1] == 'held-aud']:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            request = [a for a in h.unwrap(self.stack.manager('ListApprovals')) if a[1] == 'held-aud'][0][0]
            if answer is None:
                proc.kill()
                proc.communicate()
                expected = 'withdrawn'
            else:
                self.stack.call_as(UID_SYS, MANAGER_PATH, MANAGER_IFACE, 'Approve', 'sb',
                                   [dbus.String(request), dbus.Boolean(answer)])
                h.Stack.finish_call(proc)
                expected = 'approved' if answer else 'denied'
            outcomes.append((request, expected))
        for request, expected in outcomes:
            recs = self.wait_find(request=request, decision=expected)
            self.assertEqual(len(recs), 1, (request, expected))
            self.assertEqual(len(self.find(request=request, decision='confirm')), 1)
            self.assertEqual(recs[0]['task_id'], 't-held')
            if expected != 'withdrawn':
                self.assertEqual(recs[0]['by_uid'], UID_SYS)

    def test_refusal_flood_with_varying_input_is_aggregated(self):
        path = self.create('aud-vary', uid=UID_DAEMON)
        procs = [self.stack.call_as(UID_BIN, path, KEY_IFACE, 'Sign', 'aya{sv}',
                                    [dbus.ByteArray(b'\5' * n), h.options()], background=True)
                 for n in range(1, 21)]
        for p in procs:
            h.Stack.finish_call(p)
        recs = self.find(action='sign', key='aud-vary', decision='deny')
        self.assertEqual(len(recs), 1, 'refusals differing only in what the caller sent: %r' % recs)

    def test_token_recorded(self):
        path = self.create('aud-token', uid=UID_DAEMON)
        res = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'IssueToken', 'a{sv}',
                                 [h.options(audience='peer', task_id='t-1', ttl=dbus.UInt64(60),
                                            scope=dbus.Array(['read'], signature='s'))])
        token = self.assertCallOk(res).bytes
        claims = h.decode_cose_sign1(token).payload_map()
        recs = self.find(action='issue_token', key='aud-token', decision='allow')
        self.assertEqual(len(recs), 1)
        self.assertEqual((recs[0]['cti'], recs[0]['exp'], recs[0]['scope']), (claims[7], claims[4], 'read'))

    def test_destroy_receipt_names_its_record(self):
        path = self.create('aud-destroy', uid=UID_DAEMON)
        receipt = self.stack.destroy(path, 'retired')
        payload = h.decode_cose_sign1(receipt).payload_map()
        seq = payload['audit_seq']
        rec = [r for s, _, r in self.records() if s == seq]
        self.assertEqual(len(rec), 1)
        self.assertEqual((rec[0]['action'], rec[0]['key'], rec[0]['reason']), ('destroy', 'aud-destroy', 'retired'))

    def test_checkpoints(self):
        path = self.create('aud-cp', uid=UID_DAEMON)
        for i in range(CHECKPOINT_EVERY + 2):
            self.assertCallOk(self.stack.sign_as(UID_DAEMON, path, sha256(b'%d' % i)))
        cps = self.wait_find(action='checkpoint')
        self.assertTrue(cps, 'a checkpoint every %d records' % CHECKPOINT_EVERY)
        host = self.stack.manager_props()['HostPublicKey']
        by_seq = {s: raw for s, raw, _ in self.records()}
        for cp in cps:
            head = h.verify_cose_sign1(cp['checkpoint'], host).payload_map()
            self.assertEqual(head['type'], 'audit_head')
            self.assertNotIn('nonce', head)
            self.assertLess(head['seq'], cp['seq'])
            self.assertEqual(head['head'], hashlib.sha256(by_seq[head['seq']]).digest())

    def test_audit_head_and_truncation(self):
        nonce = os.urandom(32)
        blob = bytes(self.stack.manager('GetAuditHead', 'ay', [dbus.ByteArray(nonce)]))
        head = h.verify_cose_sign1(blob, self.stack.manager_props()['HostPublicKey']).payload_map()
        self.assertEqual((head['type'], head['nonce']), ('audit_head', nonce))
        by_seq = {s: raw for s, raw, _ in self.records()}
        self.assertEqual(head['head'], hashlib.sha256(by_seq[head['seq']]).digest())
        res = self.stack.call_as(UID_DAEMON, MANAGER_PATH, MANAGER_IFACE, 'GetAuditHead', 'ay',
                                 [dbus.ByteArray(nonce)])
        self.assertCallError(res, E_ACCESS_DENIED)

        head_file = self.stack.path('head.cose')
        with open(head_file, 'wb') as f:
            f.write(blob)
        host = self.host_key_file()
        res = self.ctl_verify('--host-key=' + host, '--head=' + head_file)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

        # A copy of the log cut before the head's record: verify must notice.
        copy = self.stack.path('state-copy')
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.audit_dir, os.path.join(copy, 'audit'))
        newest = sorted(os.listdir(os.path.join(copy, 'audit')))[-1]
        target = os.path.join(copy, 'audit', newest)
        with open(target, 'rb') as f:
            data = f.read()
        stream = io.BytesIO(data)
        cut = None
        while stream.tell() < len(data) and cut is None:
            start = stream.tell()
            if cbor2.CBORDecoder(stream).decode()['seq'] == head['seq']:
                cut = start
        self.assertIsNotNone(cut, 'the head record is in the newest file')
        with open(target, 'r+b') as f:
            f.truncate(cut)
        res = self.ctl_verify('--host-key=' + host, '--head=' + head_file, state_dir=copy)
        self.assertNotEqual(res.returncode, 0, 'truncation not detected:\n' + res.stdout)

        # A flipped bit in an older record: named by its seq.
        shutil.rmtree(copy)
        shutil.copytree(self.audit_dir, os.path.join(copy, 'audit'))
        first = os.path.join(copy, 'audit', sorted(os.listdir(os.path.join(copy, 'audit')))[0])
        with open(first, 'r+b') as f:
            f.seek(20)
            b = f.read(1)
            f.seek(20)
            f.write(bytes([b[0] ^ 0x01]))
        res = self.ctl_verify(state_dir=copy)
        self.assertNotEqual(res.returncode, 0, 'bit flip not detected')

    def test_show_json(self):
        res = subprocess.run([self.ctl, 'audit', 'show', '--json', '--state-dir=' + self.stack.state_dir],
                             capture_output=True, text=True, check=True)
        lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
        self.assertGreaterEqual(len(lines), 2)
        self.assertEqual(lines[0]['seq'], 1)
        self.assertEqual(lines[0]['action'], 'start')

    def test_z_stop(self):
        """Runs last (name order): a clean stop writes the aggregated counts, a stop record and a final
        checkpoint; a restart continues the chain; kill -9 mid-run leaves a log that verifies."""
        flood = self.find(key='aud-flood', decision='deny')
        host = self.host_key_file()
        self.stack.stop_daemon()
        recs = self.records()
        counted = [r for _, _, r in recs if r.get('key') == 'aud-flood' and r.get('count')]
        if flood:
            self.assertEqual(len(counted), 1, 'the aggregated refusals are written at stop')
            self.assertEqual(counted[0]['count'], 19)
        actions = [r['action'] for _, _, r in recs]
        self.assertIn('stop', actions)
        self.assertEqual(actions[-1], 'checkpoint', 'the final checkpoint comes last')
        res = self.ctl_verify('--host-key=' + host)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

        last = recs[-1][0]
        self.stack.start_daemon()
        again = self.records()
        self.assertEqual([r['action'] for s, _, r in again if s == last + 1], ['start'])
        self.stack.kill_daemon()
        res = self.ctl_verify()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


if __name__ == '__main__':
    run_main()

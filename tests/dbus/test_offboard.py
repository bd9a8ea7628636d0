#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": offboarding — the revocation list, receipts kept for hooks, offboarding hooks, expiry,
bulk offboarding and key rotation (DESIGN §3, §5 "Revocation list", "Rotation statement"; docs/offboarding.md).

Revocation lists and rotation statements are decoded here with cbor2 and verified with
python3-cryptography, independently of agentidd's C code; agentid-verify must then refuse what a
revoked key signed.

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_offboard.py [-k PATTERN]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import json
import subprocess
import time

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from harness import E_ACCESS_DENIED, KEY_IFACE, UID_BIN, UID_DAEMON, UID_SYS  # noqa: E402
from test_daemon import DaemonTestCase, run_main, sha256  # noqa: E402

E_KEY_DESTROYED = 'org.agentid1.Error.KeyDestroyed'
E_KEY_EXPIRED = 'org.agentid1.Error.KeyExpired'
E_KEY_EXISTS = 'org.agentid1.Error.KeyExists'
E_UNKNOWN_OBJECT = 'org.freedesktop.DBus.Error.UnknownObject'
E_UNKNOWN_METHOD = 'org.freedesktop.DBus.Error.UnknownMethod'
REVOCATION_ENTRY_KEYS = {'type', 'name', 'kid', 'spki_sha256', 'time', 'reason'}


def verify_raw(spki_der, data, sig_rs):
    r = int.from_bytes(sig_rs[:32], 'big')
    s = int.from_bytes(sig_rs[32:], 'big')
    try:
        h.load_spki(spki_der).verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError('signature does not verify') from None


def decode_rotation(blob, old_spki, host_spki):
    """COSE_Sign (tag 98): [h'', {}, payload, [[prot, {}, sig], [prot, {}, sig]]], signer 0 the old key,
    signer 1 the host key (RFC 9052 §4.1, §4.4). Returns (payload map, [kid0, kid1])."""
    obj = h.cbor_strict_loads(bytes(blob))
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != 98:
        raise AssertionError('not a tagged COSE_Sign')
    body_prot, unprot, payload, signers = obj.value
    if body_prot != b'' or unprot != {} or len(signers) != 2:
        raise AssertionError('COSE_Sign outside the profile: %r' % ((body_prot, unprot, len(signers)),))
    kids = []
    for (prot_b, sunprot, sig), spki in zip(signers, (old_spki, host_spki)):
        prot = h.cbor_strict_loads(prot_b)
        if set(prot) != {1, 4} or prot[1] != -7 or sunprot != {} or len(sig) != 64:
            raise AssertionError('signer outside the profile: %r' % (prot,))
        verify_raw(spki, h.det_encode(['Signature', b'', prot_b, b'', payload]), sig)
        kids.append(prot[4])
    return h.cbor_strict_loads(payload), kids


class OffboardTestCase(DaemonTestCase):
    """One stack per class, with a hook directory the tests fill."""

    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        cls.hooks_dir = cls.stack.path('offboard.d')
        os.mkdir(cls.hooks_dir, 0o755)
        cls.hook_out = cls.stack.path('hook-out')
        os.mkdir(cls.hook_out, 0o755)
        cls.stack.start_daemon(cls.daemon_args_for())
        cls.ctl = h.CTL_BINARY
        cls.verify = h.VERIFY_BINARY

    @classmethod
    def daemon_args_for(cls):
        return ('--offboard-hooks=' + cls.hooks_dir, '--admin-group=sys', '--hook-timeout=5') + tuple(cls.daemon_args)

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    # --- helpers

    def restart(self):
        self.stack.stop_daemon()
        self.stack.start_daemon(self.daemon_args_for())

    def revocations(self):
        blob = bytes(self.stack.manager('GetRevocations'))
        cose = h.verify_cose_sign1(blob, self.stack.manager_props()['HostPublicKey'])
        self.assertEqual(set(cose.protected), {1, 4})
        p = cose.payload_map()
        self.assertEqual(set(p), {'type', 'host', 'seq', 'issued', 'entries'})
        self.assertEqual(p['type'], 'revocations')
        return blob, p

    def entry_for(self, payload, kid):
        found = [e for e in payload['entries'] if e['kid'] == kid]
        self.assertEqual(len(found), 1, 'entries for kid %s: %r' % (kid.hex(), found))
        return found[0]

    def wait_for(self, what, fn, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail('timed out waiting for ' + what)
            time.sleep(0.1)

    def state_of(self, name):
        return self.list_entry(name)[2]

    def write(self, name, data):
        path = self.stack.path(name)
        with open(path, 'wb') as f:
            f.write(bytes(data))
        return path

    def run_verify(self, *args):
        return subprocess.run([self.verify] + [str(a) for a in args], capture_output=True, text=True, timeout=60)

    def add_hook(self, name, body, mode=0o755, uid=0):
        path = os.path.join(self.hooks_dir, name)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\n' + body)
        os.chown(path, uid, 0)
        os.chmod(path, mode)
        self.addCleanup(os.unlink, path)
        return path

    def audit_records(self):
        from test_audit import read_log
        return [r for _, _, r in read_log(os.path.join(self.stack.state_dir, 'audit'))]


class RevocationTests(OffboardTestCase):

    def test_destroy_adds_signed_entry(self):
        path = self.create('rev-one', uid=UID_DAEMON)
        before = self.stack.props(path)
        _, p0 = self.revocations()
        self.assertEqual(p0['host'], before['Uri'].split('/')[2])
        receipt = bytes(self.stack.key(path, 'Destroy', 's', ['retired agent']))
        blob, p1 = self.revocations()
        self.assertGreater(p1['seq'], p0['seq'])
        self.assertEqual(self.stack.manager_props()['RevocationSeq'], p1['seq'])
        e = self.entry_for(p1, before['TpmName'])
        self.assertEqual(set(e), REVOCATION_ENTRY_KEYS)
        self.assertEqual((e['type'], e['name'], e['reason']), ('destroy', 'rev-one', 'retired agent'))
        self.assertEqual(e['spki_sha256'], sha256(before['PublicKey']))
        self.assertEqual(e['time'], h.decode_cose_sign1(receipt).payload_map()['time'])
        # The receipt is kept for hooks and auditors; the decision and the entry are audited.
        receipts = os.listdir(os.path.join(self.stack.state_dir, 'receipts'))
        kept = [n for n in receipts if n == 'rev-one-destroy.cbor']
        self.assertEqual(len(kept), 1, receipts)
        with open(os.path.join(self.stack.state_dir, 'receipts', kept[0]), 'rb') as f:
            self.assertEqual(f.read(), receipt)
        revoke = [r for r in self.audit_records() if r['action'] == 'revoke' and r.get('key') == 'rev-one']
        self.assertEqual(len(revoke), 1)
        self.assertEqual(revoke[0]['revocation_seq'], p1['seq'])
        # Anyone may read the list.
        res = self.stack.call_as(UID_BIN, h.MANAGER_PATH, h.MANAGER_IFACE, 'GetRevocations')
        self.assertCallOk(res)
        self.assertEqual(res.bytes, blob)

    def test_verifier_refuses_what_a_revoked_key_signed(self):
        path = self.create('rev-verify', uid=UID_DAEMON)
        props = self.stack.props(path)
        msg = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'SignMessage', 'aya{sv}',
                                 [dbus.ByteArray(b'pay me'), h.options(task_id='t1')])
        self.assertCallOk(msg)
        token = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'IssueToken', 'a{sv}',
                                   [h.options(audience='peer-a', task_id='t1')])
        self.assertCallOk(token)
        nonce = os.urandom(32)
        evidence = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Attest', 'aya{sv}',
                                      [dbus.ByteArray(nonce), h.options()])
        self.assertCallOk(evidence)
        ak_pub, _, _ = self.stack.manager('GetAttestationKey')
        files = {
            'pub': self.write('rv-pub.der', props['PublicKey']),
            'msg': self.write('rv-msg.cbor', msg.bytes),
            'tok': self.write('rv-tok.cbor', token.bytes),
            'ev': self.write('rv-ev.cbor', evidence.bytes),
            'ak': self.write('rv-ak.bin', ak_pub),
            'host': self.write('rv-host.der', self.stack.manager_props()['HostPublicKey']),
        }
        checks = {
            'message': ['message', files['msg'], '--public-key=' + files['pub']],
            'token': ['token', files['tok'], '--public-key=' + files['pub'], '--audience=peer-a'],
            'evidence': ['evidence', files['ev'], '--nonce=' + nonce.hex(), '--trusted-ak=' + files['ak']],
        }
        _, before = self.revocations()
        list_before = self.write('rv-list0.cbor', self.revocations()[0])
        for what, argv in checks.items():
            res = self.run_verify(*argv, '--revocations=' + list_before, '--host-key=' + files['host'])
            self.assertEqual(res.returncode, 0, '%s before the destroy: %s %s' % (what, res.stdout, res.stderr))

        self.stack.key(path, 'Destroy', 's', ['compromised'])
        blob, after = self.revocations()
        listed = self.write('rv-list.cbor', blob)
        for what, argv in checks.items():
            res = self.run_verify(*argv, '--revocations=' + listed, '--host-key=' + files['host'])
            self.assertEqual(res.returncode, 1, '%s must be refused: %s %s' % (what, res.stdout, res.stderr))
            verdict = json.loads(res.stdout)
            self.assertEqual(verdict.get('reason'), 'revoked', verdict)
            self.assertIn('compromised', res.stdout, 'the verdict names the entry')
            # Without the list the signature alone is still valid: revocation is the verifier's input.
            res = self.run_verify(*argv)
            self.assertEqual(res.returncode, 0, what)

        # A list signed by another key, or older than one seen before, is refused outright.
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        from cryptography.hazmat.primitives import serialization
        other_der = self.write('rv-other.der', other.public_bytes(serialization.Encoding.DER,
                                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
        res = self.run_verify(*checks['message'], '--revocations=' + listed, '--host-key=' + other_der)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        res = self.run_verify(*checks['message'], '--revocations=' + list_before, '--host-key=' + files['host'],
                              '--min-seq=%d' % after['seq'])
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        # A tampered list (one byte of the payload) fails its signature.
        tampered = bytearray(blob)
        tampered[len(tampered) // 2] ^= 1
        res = self.run_verify(*checks['message'], '--revocations=' + self.write('rv-bad.cbor', tampered),
                              '--host-key=' + files['host'])
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        # The CLI shows the list.
        res = self.run_verify('revocations', listed, '--host-key=' + files['host'], '--json')
        self.assertEqual(res.returncode, 0, res.stderr)
        shown = json.loads(res.stdout)
        self.assertEqual((shown['verdict'], shown['signature_checked']), ('valid', True))
        shown = shown['list']
        self.assertEqual(shown['seq'], after['seq'])
        self.assertIn('rev-verify', [e['name'] for e in shown['entries']])
        self.assertTrue(before['seq'] < after['seq'])

    def test_tombstones_and_entries_survive_restart(self):
        path = self.create('rev-restart', uid=UID_DAEMON)
        kid = self.stack.prop(path, 'TpmName')
        self.stack.key(path, 'Destroy', 's', ['gone'])
        _, before = self.revocations()
        self.restart()
        _, after = self.revocations()
        self.assertEqual(after['entries'], before['entries'])
        self.assertEqual(after['seq'], before['seq'])
        self.assertEqual(self.entry_for(after, kid)['name'], 'rev-restart')
        self.assertEqual(self.state_of('rev-restart'), 'destroyed')
        with self.assertDBusError(E_KEY_EXISTS):
            self.create('rev-restart', uid=UID_DAEMON)
        with self.assertDBusError(E_KEY_DESTROYED):
            self.stack.manager('GetKey', 's', ['rev-restart'])

    def test_listed_key_found_active_at_start_is_destroyed(self):
        """A crash after the revocation entry but before the tombstone, or a record restored from a
        backup (a copied blob): agentidd destroys the key again by itself."""
        path = self.create('rev-copied', uid=UID_DAEMON)
        kid = self.stack.prop(path, 'TpmName')
        record = os.path.join(self.stack.state_dir, 'keys', 'rev-copied')
        with open(record, 'rb') as f:
            copy = f.read()
        self.stack.key(path, 'Destroy', 's', ['offboarded'])
        self.stack.stop_daemon()
        with open(record, 'wb') as f:
            f.write(copy)  # the blob copied before the destroy, put back
        self.stack.start_daemon(self.daemon_args_for())
        # It refuses at once (ListKeys says destroyed); the tombstone follows when the TPM job ran.
        self.assertEqual(self.state_of('rev-copied'), 'destroyed')

        def record_state():
            with open(record, 'rb') as f:
                return cbor2.loads(f.read())['state']
        self.wait_for('the restored key to be destroyed again', lambda: record_state() == 'destroyed')
        _, p = self.revocations()
        self.assertEqual(len([e for e in p['entries'] if e['kid'] == kid]), 1, 'one entry per key')

    def test_lost_entry_restored_from_tombstone(self):
        """The list lost an entry (a save that failed, then a crash; a list restored from an old
        backup): the tombstone keeps the destroyed key's kid and SPKI hash, and the entry comes back."""
        path = self.create('rev-lost', uid=UID_DAEMON)
        props = self.stack.props(path)
        self.stack.key(path, 'Destroy', 's', ['gone'])
        self.stack.stop_daemon()
        list_path = os.path.join(self.stack.state_dir, 'revocations')
        with open(list_path, 'rb') as f:
            saved = h.cbor_strict_loads(f.read())
        saved['entries'] = [e for e in saved['entries'] if e['kid'] != props['TpmName']]
        with open(list_path, 'wb') as f:
            f.write(h.det_encode(saved))
        self.stack.start_daemon(self.daemon_args_for())
        e = self.entry_for(self.revocations()[1], props['TpmName'])
        self.assertEqual((e['type'], e['name']), ('destroy', 'rev-lost'))
        self.assertEqual(e['spki_sha256'], sha256(props['PublicKey']))
        self.assertIn('tombstone', e['reason'])

    def test_get_revocations_rate_limited(self):
        """Anyone may read the list, within a budget per uid (burst 10, then 5 per second; admins are
        not limited): 40 calls back to back from uid 2 cannot all be answered."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            counts = [0, 0]
            try:
                os.setgroups([])
                os.setgid(UID_BIN)
                os.setuid(UID_BIN)
                conn = dbus.bus.BusConnection(self.stack.address)
                for _ in range(40):
                    try:
                        conn.call_blocking(h.BUS_NAME, h.MANAGER_PATH, h.MANAGER_IFACE, 'GetRevocations', '', [])
                        counts[0] += 1
                    except dbus.exceptions.DBusException as e:
                        counts[1] += e.get_dbus_name() == 'org.agentid1.Error.RateLimited'
            finally:
                os.write(w, json.dumps(counts).encode())
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            answered, limited = json.loads(f.read())
        os.waitpid(pid, 0)
        self.assertGreaterEqual(answered, 10)
        self.assertGreater(limited, 0)
        self.assertEqual(answered + limited, 40)

    def test_destroy_under_signing_flood(self):
        path = self.create('rev-flood', uid=UID_DAEMON)
        procs = [self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Sign', 'aya{sv}',
                                    [dbus.ByteArray(b'\7' * 32), h.options()], background=True)
                 for _ in range(12)]
        receipt = self.stack.key(path, 'Destroy', 's', ['flooded'])
        self.assertTrue(receipt)
        outcomes = [h.Stack.finish_call(p) for p in procs]
        for res in outcomes:
            if not res.ok:
                self.assertIn(res.error, (E_KEY_DESTROYED, E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD), res)
        # From the reply on, nothing signs any more.
        self.assertCallError(self.stack.sign_as(UID_DAEMON, path, b'\7' * 32), E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD)


class HookTests(OffboardTestCase):

    def test_hooks_run_in_order_with_environment(self):
        out = self.hook_out
        self.add_hook('10-env', 'env > %s/env.$AGENTID_KEY\necho first >> %s/order.$AGENTID_KEY\n' % (out, out))
        self.add_hook('20-fail', 'echo "peer unreachable" >&2\necho second >> %s/order.$AGENTID_KEY\nexit 3\n' % out)
        self.add_hook('30-writable', 'echo third >> %s/order.$AGENTID_KEY\n' % out, mode=0o777)
        self.add_hook('40-foreign', 'echo fourth >> %s/order.$AGENTID_KEY\n' % out, uid=65534)
        self.add_hook('.hidden', 'echo hidden >> %s/order.$AGENTID_KEY\n' % out)

        path = self.create('hook-one', uid=UID_DAEMON, owner='team-hooks')
        props = self.stack.props(path)
        receipt = bytes(self.stack.key(path, 'Destroy', 's', ['left the company']))
        order = os.path.join(out, 'order.hook-one')
        self.wait_for('hooks', lambda: os.path.exists(order) and open(order).read().count('\n') >= 2)
        self.wait_for('hook audit records', lambda: len(self.hook_records('hook-one')) >= 4)
        with open(order) as f:
            self.assertEqual(f.read(), 'first\nsecond\n', 'name order; skipped and hidden files do not run')

        with open(os.path.join(out, 'env.hook-one')) as f:
            env = dict(line.split('=', 1) for line in f.read().splitlines() if '=' in line)
        agentid = {k: v for k, v in env.items() if k.startswith('AGENTID_')}
        self.assertEqual(set(agentid), {'AGENTID_KEY', 'AGENTID_URI', 'AGENTID_KID', 'AGENTID_OWNER',
                                        'AGENTID_REASON', 'AGENTID_RECEIPT', 'AGENTID_EVENT'})
        self.assertEqual(agentid['AGENTID_KEY'], 'hook-one')
        self.assertEqual(agentid['AGENTID_URI'], props['Uri'])
        self.assertEqual(agentid['AGENTID_KID'], bytes(props['TpmName']).hex())
        self.assertEqual(agentid['AGENTID_OWNER'], 'team-hooks')
        self.assertEqual(agentid['AGENTID_REASON'], 'left the company')
        self.assertEqual(agentid['AGENTID_EVENT'], 'destroy')
        with open(agentid['AGENTID_RECEIPT'], 'rb') as f:
            self.assertEqual(f.read(), receipt)
        # Nothing of agentidd's own environment leaks into hooks.
        self.assertLessEqual(set(env) - set(agentid), {'PATH', 'PWD', 'SHLVL', '_'})

        recs = {os.path.basename(r['hook']): r for r in self.hook_records('hook-one')}
        self.assertEqual((recs['10-env']['decision'], recs['10-env']['status']), ('done', 0))
        self.assertEqual((recs['20-fail']['decision'], recs['20-fail']['status']), ('failed', 3))
        self.assertIn(b'peer unreachable', recs['20-fail']['output'])
        self.assertEqual(recs['30-writable']['decision'], 'skipped')
        self.assertEqual(recs['40-foreign']['decision'], 'skipped')
        self.assertNotIn('.hidden', recs)
        # A failing hook undoes nothing.
        self.assertEqual(self.state_of('hook-one'), 'destroyed')

    def hook_records(self, key):
        return [r for r in self.audit_records() if r['action'] == 'hook' and r.get('key') == key]

    def test_hook_timeout_is_killed(self):
        self.add_hook('50-slow', 'echo started >> %s/slow.$AGENTID_KEY\nsleep 60\n' % self.hook_out)
        path = self.create('hook-slow', uid=UID_DAEMON)
        self.stack.key(path, 'Destroy', 's', ['slow'])
        recs = self.wait_for('the slow hook to be killed', lambda: self.hook_records('hook-slow'), timeout=30)
        self.assertEqual(recs[0]['decision'], 'failed')
        self.assertIn('timed out', recs[0]['reason'])


class ExpiryTests(OffboardTestCase):

    def test_key_expires_and_is_offboarded(self):
        out = self.hook_out
        self.add_hook('10-event', 'echo $AGENTID_EVENT $AGENTID_REASON > %s/event.$AGENTID_KEY\n' % out)
        path = self.create('exp-soon', uid=UID_DAEMON, ttl=dbus.UInt64(2))
        props = self.stack.props(path)
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, path, b'\1' * 32))
        self.wait_for('expiry', lambda: self.state_of('exp-soon') == 'destroyed', timeout=30)
        _, p = self.revocations()
        e = self.entry_for(p, props['TpmName'])
        self.assertEqual((e['type'], e['reason']), ('destroy', 'expired'))
        self.assertGreaterEqual(e['time'], props['NotAfter'] // 1000000)
        event = os.path.join(out, 'event.exp-soon')
        self.wait_for('the expire hook', lambda: os.path.exists(event))
        with open(event) as f:
            self.assertEqual(f.read(), 'expire expired\n')
        recs = [r for r in self.audit_records() if r['action'] == 'destroy' and r.get('key') == 'exp-soon']
        self.assertEqual([(r['decision'], r.get('rule')) for r in recs], [('allow', 'expire')])

    def test_key_expired_while_stopped_is_offboarded_at_start(self):
        path = self.create('exp-stopped', uid=UID_DAEMON, ttl=dbus.UInt64(2))
        kid = self.stack.prop(path, 'TpmName')
        self.stack.stop_daemon()
        time.sleep(2.5)
        self.stack.start_daemon(self.daemon_args_for())
        self.wait_for('offboarding at start', lambda: self.state_of('exp-stopped') == 'destroyed')
        self.assertEqual(self.entry_for(self.revocations()[1], kid)['reason'], 'expired')


class BulkTests(OffboardTestCase):

    def run_ctl(self, *args):
        return subprocess.run([self.ctl] + list(args), capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.stack.address))

    def test_offboard_owner(self):
        for name in ('bulk-a', 'bulk-b', 'bulk-c'):
            self.create(name, uid=UID_DAEMON, owner='team-bulk')
        self.create('bulk-other', uid=UID_DAEMON, owner='team-stays')
        receipts = self.stack.path('bulk-receipts')
        res = self.run_ctl('offboard', '--owner=team-bulk', '--reason=team dissolved', '--receipts-dir=' + receipts)
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = [line.split('\t') for line in res.stdout.splitlines()]
        self.assertEqual(sorted(line[0] for line in lines), ['bulk-a', 'bulk-b', 'bulk-c'])
        self.assertTrue(all(line[1] == 'destroyed' for line in lines), lines)
        self.assertIn('[3/3]', res.stderr, 'progress is shown')
        host = self.stack.manager_props()['HostPublicKey']
        for name in ('bulk-a', 'bulk-b', 'bulk-c'):
            self.assertEqual(self.state_of(name), 'destroyed')
            with open(os.path.join(receipts, name + '.receipt'), 'rb') as f:
                p = h.verify_cose_sign1(f.read(), host).payload_map()
            self.assertEqual((p['name'], p['reason']), (name, 'team dissolved'))
        self.assertEqual(self.state_of('bulk-other'), 'active')
        # Nothing left: a second run succeeds and says so.
        res = self.run_ctl('offboard', '--owner=team-bulk', '--reason=again')
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn('No live keys', res.stderr)

    def test_offboard_uid_json(self):
        self.create('bulkuid-a', uid=UID_BIN)
        self.create('bulkuid-b', uid=UID_BIN)
        res = self.run_ctl('offboard', '--uid=%d' % UID_BIN, '--reason=account closed', '--json')
        self.assertEqual(res.returncode, 0, res.stderr)
        out = json.loads(res.stdout)
        self.assertEqual(sorted(e['name'] for e in out), ['bulkuid-a', 'bulkuid-b'])
        host = self.stack.manager_props()['HostPublicKey']
        import base64
        for e in out:
            self.assertEqual(e['result'], 'destroyed')
            h.verify_cose_sign1(base64.b64decode(e['receipt']), host)

    def test_offboard_usage(self):
        self.assertEqual(self.run_ctl('offboard', '--reason=x').returncode, 2)
        self.assertEqual(self.run_ctl('offboard', '--owner=a', '--uid=1', '--reason=x').returncode, 2)
        self.assertEqual(self.run_ctl('offboard', '--owner=a').returncode, 2)

    def test_offboard_refused_for_non_admin(self):
        self.create('bulk-guarded', uid=UID_DAEMON, owner='team-guarded')
        res = self.stack.call_as(UID_BIN, h.path_encode('bulk-guarded'), KEY_IFACE, 'Destroy', 's',
                                 [dbus.String('not mine')])
        self.assertCallError(res, E_ACCESS_DENIED)
        self.assertEqual(self.state_of('bulk-guarded'), 'active')


class RotationTests(OffboardTestCase):

    def test_rotate(self):
        out = self.hook_out
        self.add_hook('10-rot', 'echo $AGENTID_EVENT $AGENTID_KID > %s/rot.$AGENTID_KEY\n' % out)
        path = self.create('rot-one', uid=UID_DAEMON, owner='team-rot', ttl=dbus.UInt64(3600))
        old = self.stack.props(path)
        host = self.stack.manager_props()['HostPublicKey']
        statement = bytes(self.stack.key(path, 'Rotate', 's', ['scheduled rotation']))
        new = self.stack.props(path)
        self.assertNotEqual(new['PublicKey'], old['PublicKey'])
        self.assertNotEqual(new['TpmName'], old['TpmName'])
        for same in ('Name', 'Uri', 'Owner', 'Uid', 'NotAfter', 'ExeDigest'):
            self.assertEqual(new[same], old[same], same)
        self.assertEqual(new['State'], 'active')

        p, kids = decode_rotation(statement, old['PublicKey'], host)
        self.assertEqual(kids[0], old['TpmName'])
        self.assertEqual(p['type'], 'rotate')
        self.assertEqual((p['name'], p['uri'], p['reason']), ('rot-one', old['Uri'], 'scheduled rotation'))
        self.assertEqual((p['old_kid'], p['new_kid']), (old['TpmName'], new['TpmName']))
        self.assertEqual(p['new_spki_sha256'], sha256(new['PublicKey']))
        res = self.run_verify('rotation', self.write('rot.cbor', statement),
                              '--old-key=' + self.write('rot-old.der', old['PublicKey']),
                              '--host-key=' + self.write('rot-host.der', host))
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        res = self.run_verify('rotation', self.write('rot.cbor', statement),
                              '--old-key=' + self.write('rot-new.der', new['PublicKey']),
                              '--host-key=' + self.write('rot-host.der', host))
        self.assertEqual(res.returncode, 1, 'the statement must be signed by the old key')

        # The old key is revoked; the new one signs under the same name.
        _, lst = self.revocations()
        e = self.entry_for(lst, old['TpmName'])
        self.assertEqual((e['type'], e['name'], e['reason']), ('rotate', 'rot-one', 'scheduled rotation'))
        self.assertEqual(e['spki_sha256'], sha256(old['PublicKey']))
        self.assertFalse([x for x in lst['entries'] if x['kid'] == new['TpmName']])
        digest = sha256(b'after rotation')
        sig = self.stack.sign_as(UID_DAEMON, path, digest)
        self.assertCallOk(sig)
        h.verify_digest_signature(new['PublicKey'], digest, sig.bytes)
        rot = os.path.join(out, 'rot.rot-one')
        self.wait_for('the rotate hook', lambda: os.path.exists(rot))
        with open(rot) as f:
            self.assertEqual(f.read(), 'rotate %s\n' % bytes(old['TpmName']).hex())

        # Across a restart: the new key, the entry.
        self.restart()
        self.assertEqual(self.stack.props(path)['TpmName'], new['TpmName'])
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, path, digest))
        self.entry_for(self.revocations()[1], old['TpmName'])

    def test_rotate_refusals(self):
        path = self.create('rot-guard', uid=UID_DAEMON)
        self.assertCallError(self.stack.call_as(UID_BIN, path, KEY_IFACE, 'Rotate', 's', [dbus.String('x')]),
                             E_ACCESS_DENIED)
        # Its own uid needs a "rotate" rule; there is no policy here.
        self.assertCallError(self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Rotate', 's', [dbus.String('x')]),
                             E_ACCESS_DENIED)
        with self.assertDBusError(h.E_INVALID_ARGS):
            self.stack.key(path, 'Rotate', 's', [''])
        # An admin of the admin group may.
        res = self.stack.call_as(UID_SYS, path, KEY_IFACE, 'Rotate', 's', [dbus.String('by sys')])
        self.assertCallOk(res)
        self.stack.key(path, 'Destroy', 's', ['done'])
        with self.assertDBusError(E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD):
            self.stack.key(path, 'Rotate', 's', ['too late'])

    def race(self, path, *calls):
        """Send calls (method, args) back to back on one connection without waiting, so agentidd sees
        them in one go; returns {method: ('ok', value) | ('error', name)}."""
        from dbus.mainloop.glib import DBusGMainLoop
        from gi.repository import GLib
        conn = dbus.bus.BusConnection(self.stack.address, mainloop=DBusGMainLoop())
        loop = GLib.MainLoop()
        out = {}

        def finish(method, result):
            out[method] = result
            if len(out) == len(calls):
                loop.quit()
        for method, args in calls:
            conn.call_async(h.BUS_NAME, path, KEY_IFACE, method, 's', args,
                            reply_handler=lambda v, m=method: finish(m, ('ok', bytes(v))),
                            error_handler=lambda e, m=method: finish(m, ('error', e.get_dbus_name())),
                            timeout=60)
        GLib.timeout_add_seconds(60, loop.quit)
        loop.run()
        conn.close()
        self.assertEqual(len(out), len(calls), 'no answer to some calls: %r' % out)
        return out

    def test_destroy_wins_over_a_running_rotation(self):
        """An admin's Destroy is never refused because a Rotate is queued: it waits for the rotation,
        which gives up if it has not finished, and every kid the key had ends up on the list."""
        path = self.create('rot-race', uid=UID_DAEMON)
        old = self.stack.props(path)
        out = self.race(path, ('Rotate', ['race']), ('Destroy', ['retired during rotation']))
        self.assertEqual(out['Destroy'][0], 'ok', out)
        self.assertEqual(self.state_of('rot-race'), 'destroyed')
        _, lst = self.revocations()
        self.entry_for(lst, old['TpmName'])
        receipt_kid = h.decode_cose_sign1(out['Destroy'][1]).payload_map()['kid']
        self.entry_for(lst, receipt_kid)
        if out['Rotate'][0] == 'ok':
            # The rotation had finished: the Destroy ran on the new record, and both kids are listed.
            p, _ = decode_rotation(out['Rotate'][1], old['PublicKey'], self.stack.manager_props()['HostPublicKey'])
            self.assertEqual(receipt_kid, p['new_kid'])
        else:
            self.assertEqual(out['Rotate'][1], E_KEY_DESTROYED)
            self.assertEqual(receipt_kid, old['TpmName'])
        self.assertEqual([f for f in os.listdir(os.path.join(self.stack.state_dir, 'keys'))
                          if f.startswith('rot-race')], ['rot-race'])

    def test_interrupted_rotation_is_completed_at_start(self):
        """A crash after the new record replaced the old one but before the revocation entry was
        written: the new record names its predecessor, and agentidd lists it at start."""
        path = self.create('rot-crash', uid=UID_DAEMON)
        old = self.stack.props(path)
        self.stack.key(path, 'Rotate', 's', ['crash test'])
        self.stack.stop_daemon()
        # Take the rotate entry out of the saved list, as if the crash came before it was written.
        list_path = os.path.join(self.stack.state_dir, 'revocations')
        with open(list_path, 'rb') as f:
            saved = h.cbor_strict_loads(f.read())
        saved['entries'] = [e for e in saved['entries'] if e['kid'] != old['TpmName']]
        saved['seq'] -= 1
        with open(list_path, 'wb') as f:
            f.write(h.det_encode(saved))
        self.stack.start_daemon(self.daemon_args_for())
        e = self.entry_for(self.revocations()[1], old['TpmName'])
        self.assertEqual((e['type'], e['reason']), ('rotate', 'crash test'))

    def test_corrupt_revocation_list_stops_start(self):
        """Starting over with an empty list would quietly un-revoke keys."""
        self.stack.key(self.create('rot-corrupt', uid=UID_DAEMON), 'Destroy', 's', ['listed'])
        self.stack.stop_daemon()
        list_path = os.path.join(self.stack.state_dir, 'revocations')
        with open(list_path, 'rb') as f:
            good = f.read()
        try:
            with open(list_path, 'wb') as f:
                f.write(good[:-3])
            with self.assertRaises(h.StackError) as ctx:
                self.stack.start_daemon(self.daemon_args_for())
            self.assertIn('revocation list', str(ctx.exception))
        finally:
            with open(list_path, 'wb') as f:
                f.write(good)
            if self.stack.daemon is None:
                self.stack.start_daemon(self.daemon_args_for())


if __name__ == '__main__':
    run_main()

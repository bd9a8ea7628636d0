#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": tasks with just-in-time TPM credentials (Key.StartTask, org.agentid1.Task; DESIGN §5
"Task credential"; docs/tasks.md).

Credentials, signatures and tokens are checked here with cbor2 and python3-cryptography, independently
of agentidd's C code; agentid-verify must follow a task token to the agent key and refuse it once the
task ended, given the revocation list.

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_tasks.py [-k PATTERN]
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import json
import subprocess
import time

from harness import E_ACCESS_DENIED, E_INVALID_ARGS, KEY_IFACE, UID_BIN, UID_DAEMON, UID_SYS  # noqa: E402
from test_daemon import DaemonTestCase, run_main, sha256  # noqa: E402

TASK_IFACE = 'org.agentid1.Task'
E_POLICY_DENIED = 'org.agentid1.Error.PolicyDenied'
E_TASK_EXISTS = 'org.agentid1.Error.TaskExists'
E_KEY_DESTROYED = 'org.agentid1.Error.KeyDestroyed'
E_UNKNOWN_OBJECT = 'org.freedesktop.DBus.Error.UnknownObject'
E_UNKNOWN_METHOD = 'org.freedesktop.DBus.Error.UnknownMethod'
CREDENTIAL_KEYS = {1, 2, 4, 6, 7, 8, 'task_id', 'audiences', 'task_key'}


def strv(items):
    return dbus.Array([dbus.String(s) for s in items], signature='s')


class TaskTests(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        cls.stack.start_daemon(('--admin-group=sys',))
        cls.verify = h.VERIFY_BINARY

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    # --- helpers

    def start_task(self, uid, key_path, task_id, **opts):
        typed = {}
        for k, v in opts.items():
            typed[k] = strv(v) if k in ('audiences', 'scope') else v
        return self.stack.call_as(uid, key_path, KEY_IFACE, 'StartTask', 'sa{sv}',
                                  [dbus.String(task_id), h.options(**typed)])

    def start_ok(self, uid, key_path, task_id, **opts):
        res = self.start_task(uid, key_path, task_id, **opts)
        self.assertCallOk(res)
        path, credential = res.value
        return str(path), bytes.fromhex(credential)

    def task_call(self, uid, path, method, signature='', args=()):
        return self.stack.call_as(uid, path, TASK_IFACE, method, signature, args)

    def revocations(self):
        blob = bytes(self.stack.manager('GetRevocations'))
        return blob, h.verify_cose_sign1(blob, self.stack.manager_props()['HostPublicKey']).payload_map()

    def task_entry(self, cti):
        entries = [e for e in self.revocations()[1]['entries'] if e.get('cti') == cti]
        self.assertEqual(len(entries), 1, 'task_end entries for cti %s' % cti.hex())
        self.assertEqual(entries[0]['type'], 'task_end')
        return entries[0]

    def write(self, name, data):
        path = self.stack.path(name)
        with open(path, 'wb') as f:
            f.write(bytes(data))
        return path

    def run_verify(self, *args):
        return subprocess.run([self.verify] + [str(a) for a in args], capture_output=True, text=True, timeout=60)

    def journal(self):
        return sorted(os.listdir(os.path.join(self.stack.state_dir, 'tasks')))

    def check_credential(self, credential, key_props, task_props, task_id, audiences, scope):
        cose = h.verify_cose_sign1(credential, key_props['PublicKey'])
        self.assertEqual(cose.protected[4], key_props['TpmName'], 'the credential is signed by the agent key')
        c = cose.payload_map()
        self.assertTrue(CREDENTIAL_KEYS <= set(c) <= CREDENTIAL_KEYS | {9, 'parent_task_id'}, sorted(map(str, c)))
        self.assertEqual((c[1], c[2]), (key_props['Uri'], key_props['Uri']))
        self.assertEqual(c['task_id'], task_id)
        self.assertEqual(c['audiences'], audiences)
        self.assertEqual(c.get(9), scope)
        self.assertEqual(c[4] * 10**6, task_props['NotAfter'])
        self.assertEqual(len(c[7]), 16)
        pub = h.load_spki(task_props['PublicKey']).public_numbers()
        self.assertEqual(c[8], {1: {1: 2, -1: 1, -2: pub.x.to_bytes(32, 'big'), -3: pub.y.to_bytes(32, 'big')}})
        self.assertEqual(set(c['task_key']), {'pub', 'certify', 'certify_sig', 'clock_limit'})
        self.check_task_policy(c['task_key'], c[4] - c[6])
        return c

    def check_task_policy(self, task_key, lifetime):
        """The TPM-made authPolicy is the counter/timer policy for clock_limit and the certify's counters
        (docs/formats.md §12.1), recomputed here from the spec, and the limit is within the lifetime."""
        pub, certify, limit = task_key['pub'], task_key['certify'], task_key['clock_limit']
        (n,) = struct.unpack_from('>H', pub, 8)              # type, nameAlg, objectAttributes, authPolicy
        auth_policy = pub[10:10 + n]
        off = 6                                              # magic, type
        for _ in range(2):                                   # qualifiedSigner, extraData
            (n,) = struct.unpack_from('>H', certify, off)
            off += 2 + n
        clock, reset_count, restart_count = struct.unpack_from('>QII', certify, off)
        digest = bytes(32)
        for operand, offset, operation in ((struct.pack('>Q', limit), 8, 5), (struct.pack('>I', reset_count), 16, 0),
                                           (struct.pack('>I', restart_count), 20, 0)):
            args = sha256(operand + struct.pack('>HH', offset, operation))
            digest = sha256(digest + struct.pack('>I', 0x16d) + args)
        self.assertEqual(auth_policy, digest)
        self.assertTrue(0 < limit - clock <= lifetime * 1000, (limit, clock, lifetime))

    # --- tests

    def test_start_sign_token_end(self):
        key = self.create('task-agent', uid=UID_DAEMON)
        key_props = self.stack.props(key)
        path, credential = self.start_ok(UID_DAEMON, key, 'job-1', audiences=['peer-a', 'peer-b'],
                                         scope=['read', 'write'], ttl=dbus.UInt64(600))
        self.assertEqual(path, key + '/task/' + h.path_encode('job-1').split('/')[-1])
        props = self.stack.props(path, TASK_IFACE)
        self.assertEqual((props['TaskId'], props['Key'], props['State']), ('job-1', key, 'running'))
        self.assertEqual(props['Audiences'], ['peer-a', 'peer-b'])
        self.assertEqual(props['Scope'], 'read write')
        self.assertEqual(bytes(props['Credential']), credential)
        self.assertNotEqual(props['TpmName'], key_props['TpmName'])
        c = self.check_credential(credential, key_props, props, 'job-1', ['peer-a', 'peer-b'], 'read write')

        # The task key signs: raw digests, messages (kid = the task key) and tokens carrying the credential.
        digest = sha256(b'task work')
        res = self.task_call(UID_DAEMON, path, 'Sign', 'aya{sv}', [dbus.ByteArray(digest), h.options()])
        self.assertCallOk(res)
        h.verify_digest_signature(props['PublicKey'], digest, res.bytes)
        res = self.task_call(UID_DAEMON, path, 'SignMessage', 'aya{sv}',
                             [dbus.ByteArray(b'result'), h.options(audience='peer-a')])
        self.assertCallOk(res)
        msg = h.verify_cose_sign1(res.bytes, props['PublicKey'])
        self.assertEqual(msg.protected[4], props['TpmName'])
        self.assertEqual(msg.protected[15]['task_id'], 'job-1')
        res = self.task_call(UID_DAEMON, path, 'IssueToken', 'a{sv}',
                             [h.options(audience='peer-a', scope=strv(['read']), ttl=dbus.UInt64(120))])
        self.assertCallOk(res)
        token = res.bytes
        claims = h.verify_cose_sign1(token, props['PublicKey']).payload_map()
        self.assertEqual((claims[1], claims[3], claims[9], claims['task_id']), (key_props['Uri'], 'peer-a', 'read', 'job-1'))
        self.assertEqual(claims['credential'], credential)

        # A peer holding the agent key and the AK follows the token to the agent.
        ak_pub, _, _ = self.stack.manager('GetAttestationKey')
        files = {
            'agent': self.write('agent.der', key_props['PublicKey']),
            'ak': self.write('ak.bin', ak_pub),
            'token': self.write('task-token.cbor', token),
            'host': self.write('host.der', self.stack.manager_props()['HostPublicKey']),
        }
        argv = ['token', files['token'], '--public-key=' + files['agent'], '--trusted-ak=' + files['ak'],
                '--audience=peer-a']
        res = self.run_verify(*argv)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(json.loads(res.stdout)['verdict'], 'valid')

        # The task stays inside its audiences, scope and lifetime.
        res = self.task_call(UID_DAEMON, path, 'IssueToken', 'a{sv}', [h.options(audience='peer-c')])
        self.assertCallError(res, E_POLICY_DENIED)
        res = self.task_call(UID_DAEMON, path, 'IssueToken', 'a{sv}',
                             [h.options(audience='peer-a', scope=strv(['admin']))])
        self.assertCallError(res, E_POLICY_DENIED)
        res = self.task_call(UID_DAEMON, path, 'IssueToken', 'a{sv}',
                             [h.options(audience='peer-a', ttl=dbus.UInt64(3600))])
        self.assertCallError(res, E_INVALID_ARGS)
        res = self.task_call(UID_DAEMON, path, 'Sign', 'aya{sv}', [dbus.ByteArray(digest), h.options(task_id='job-2')])
        self.assertCallError(res, E_INVALID_ARGS)
        # Only the key's uid uses it; an admin may end it but not sign with it.
        res = self.task_call(UID_BIN, path, 'Sign', 'aya{sv}', [dbus.ByteArray(digest), h.options()])
        self.assertCallError(res, E_ACCESS_DENIED)
        res = self.task_call(0, path, 'Sign', 'aya{sv}', [dbus.ByteArray(digest), h.options()])
        self.assertCallError(res, E_ACCESS_DENIED)
        self.assertCallError(self.task_call(UID_BIN, path, 'End', 's', [dbus.String('not mine')]), E_ACCESS_DENIED)
        self.assertEqual(len(self.journal()), 1)

        # End: revoked once (task_end with the cti), gone from the bus, its tokens refused with the list.
        self.assertCallOk(self.task_call(UID_DAEMON, path, 'End', 's', [dbus.String('job done')]))
        e = self.task_entry(c[7])
        self.assertEqual((e['kid'], e['reason'], e['name']), (props['TpmName'], 'job done', 'task-agent'))
        self.assertEqual(e['spki_sha256'], sha256(props['PublicKey']))
        self.assertEqual(self.journal(), [])
        res = self.task_call(UID_DAEMON, path, 'Sign', 'aya{sv}', [dbus.ByteArray(digest), h.options()])
        self.assertCallError(res, E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD)
        listed = self.write('revocations.cbor', self.revocations()[0])
        res = self.run_verify(*argv, '--revocations=' + listed, '--host-key=' + files['host'])
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertEqual(json.loads(res.stdout)['reason'], 'revoked')
        # The key itself works on, and may run the task ID again.
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, key, digest))
        path2, credential2 = self.start_ok(UID_DAEMON, key, 'job-1')
        self.assertNotEqual(credential2, credential)
        self.assertCallOk(self.task_call(UID_DAEMON, path2, 'End', 's', [dbus.String('again')]))

    def test_agentidctl_task_start_end(self):
        """agentidctl task start / task end and create --named-tasks-only, as root on keys of uid 0."""
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.stack.address)

        def ctl(*args):
            return subprocess.run([h.CTL_BINARY] + list(args), capture_output=True, text=True, env=env, timeout=120)

        # --named-tasks-only sets the key's flag; without a policy naming the task it starts nothing.
        res = ctl('create', 'task-ctl-named', '--owner=tasks@example.com', '--uid=0', '--named-tasks-only')
        self.assertEqual(res.returncode, 0, res.stderr)
        named = res.stdout.strip()
        self.assertEqual(named, h.path_encode('task-ctl-named'))
        self.assertTrue(self.stack.prop(named, 'NamedTasksOnly'))
        res = ctl('task', 'start', 'task-ctl-named', '--task-id=job-n')
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(E_POLICY_DENIED, res.stderr)

        key = self.create('task-ctl', uid=0)
        self.assertFalse(self.stack.prop(key, 'NamedTasksOnly'))
        key_props = self.stack.props(key)
        cred_file = self.stack.path('ctl-credential.cose')
        res = ctl('task', 'start', 'task-ctl', '--task-id=job-ctl', '--audience=peer-a', '--audience=peer-b',
                  '--scope=read', '--scope=write', '--ttl=600', '--parent-task-id=outer', '--output=' + cred_file)
        self.assertEqual(res.returncode, 0, res.stderr)
        path = res.stdout.strip()
        self.assertEqual(path, key + '/task/' + h.path_encode('job-ctl').split('/')[-1])
        props = self.stack.props(path, TASK_IFACE)
        self.assertEqual((props['TaskId'], props['ParentTaskId'], props['Audiences'], props['Scope']),
                         ('job-ctl', 'outer', ['peer-a', 'peer-b'], 'read write'))
        with open(cred_file, 'rb') as f:
            credential = f.read()
        self.assertEqual(bytes(props['Credential']), credential)
        c = h.verify_cose_sign1(credential, key_props['PublicKey']).payload_map()
        self.assertEqual(c[4] - c[6], 600)

        # Usage errors (exit 2) before anything is sent; a second start of the ID is refused (exit 1).
        for argv in (('task', 'start', 'task-ctl'),                                  # no --task-id
                     ('task', 'end', 'task-ctl', 'job-ctl'),                         # no --reason
                     ('task', 'stop', 'task-ctl', 'job-ctl', '--reason=x'),
                     ('sign', 'task-ctl', '--audience=a', '--audience=b')):
            with self.subTest(argv=argv):
                res = ctl(*argv)
                self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        res = ctl('task', 'start', 'task-ctl', '--task-id=job-ctl')
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn(E_TASK_EXISTS, res.stderr)

        res = ctl('task', 'end', 'task-ctl', 'job-ctl', '--reason=done from the CLI')
        self.assertEqual(res.returncode, 0, res.stderr)
        e = self.task_entry(c[7])
        self.assertEqual((e['kid'], e['reason'], e['name']), (props['TpmName'], 'done from the CLI', 'task-ctl'))
        res = self.task_call(0, path, 'End', 's', [dbus.String('again')])
        self.assertCallError(res, E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD)
        res = ctl('task', 'end', 'task-ctl', 'job-ctl', '--reason=again')
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)

    def test_task_ids_per_key(self):
        a = self.create('task-a', uid=UID_DAEMON)
        b = self.create('task-b', uid=UID_DAEMON)
        pa, _ = self.start_ok(UID_DAEMON, a, 'shared/id:7')
        self.assertCallError(self.start_task(UID_DAEMON, a, 'shared/id:7'), E_TASK_EXISTS)
        pb, _ = self.start_ok(UID_DAEMON, b, 'shared/id:7')
        self.assertNotEqual(pa, pb)
        for bad in ('', 'x' * 129, 'ünïcode', 'tab\there'):
            self.assertCallError(self.start_task(UID_DAEMON, a, bad), E_INVALID_ARGS)
        self.assertCallError(self.start_task(UID_DAEMON, a, 'ok', ttl=dbus.UInt64(0)), E_INVALID_ARGS)
        self.assertCallError(self.start_task(UID_DAEMON, a, 'ok', ttl=dbus.UInt64(86401)), E_INVALID_ARGS)
        self.assertCallError(self.start_task(UID_DAEMON, a, 'ok', audiences=['x', 'x']), E_INVALID_ARGS)
        self.assertCallError(self.start_task(UID_DAEMON, a, 'ok', scope=['bad scope']), E_INVALID_ARGS)
        self.assertCallError(self.start_task(UID_DAEMON, a, 'ok', colour='red'), E_INVALID_ARGS)
        self.assertCallError(self.start_task(UID_BIN, a, 'ok'), E_ACCESS_DENIED)
        self.assertCallError(self.start_task(0, a, 'ok'), E_ACCESS_DENIED)
        for p in (pa, pb):
            self.assertCallOk(self.task_call(UID_SYS, p, 'End', 's', [dbus.String('admin ends it')]))

    def test_destroying_the_key_ends_its_tasks(self):
        key = self.create('task-doomed', uid=UID_DAEMON)
        path, credential = self.start_ok(UID_DAEMON, key, 'doomed-1')
        cti = h.verify_cose_sign1(credential, self.stack.prop(key, 'PublicKey')).payload_map()[7]
        self.stack.key(key, 'Destroy', 's', ['retired'])
        self.assertEqual(self.task_entry(cti)['reason'], 'key destroyed')
        with self.assertDBusError(E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD):
            self.stack.props(path, TASK_IFACE)

    def test_tpm_reset_kills_task_keys(self):
        key = self.create('task-reset', uid=UID_DAEMON)
        path, credential = self.start_ok(UID_DAEMON, key, 'reset-1')
        cti = h.verify_cose_sign1(credential, self.stack.prop(key, 'PublicKey')).payload_map()[7]
        self.stack.restart_tpm()
        digest = sha256(b'after the reset')
        # The first call may meet the reconnection; the task key never signs again.
        for _ in range(3):
            res = self.task_call(UID_DAEMON, path, 'Sign', 'aya{sv}', [dbus.ByteArray(digest), h.options()])
            self.assertFalse(res.ok, 'a task key signed after a TPM reset')
            if res.error in (E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD, E_KEY_DESTROYED):
                break
            time.sleep(0.5)
        self.assertIn('TPM reset', self.task_entry(cti)['reason'])
        # The agent key itself reloads from its blob.
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, key, digest))

    def test_expired_task_entries_leave_the_list(self):
        """A task_end entry carries its credential's exp and leaves the list an hour after it: the
        list holds the tasks of the last day, not of all time (docs/formats.md §10)."""
        key = self.create('task-prune', uid=UID_DAEMON)
        agent = self.stack.prop(key, 'PublicKey')
        path, c1 = self.start_ok(UID_DAEMON, key, 'prune-1', ttl=dbus.UInt64(600))
        self.assertCallOk(self.task_call(UID_DAEMON, path, 'End', 's', [dbus.String('done early')]))
        claims = h.verify_cose_sign1(c1, agent).payload_map()
        self.assertEqual(self.task_entry(claims[7])['exp'], claims[4])

        # Make that entry's credential have expired two hours ago, as if a day had passed.
        self.stack.stop_daemon()
        state = os.path.join(self.stack.state_dir, 'revocations')
        with open(state, 'rb') as f:
            payload = h.cbor_strict_loads(f.read())
        old = [e for e in payload['entries'] if e.get('cti') == claims[7]]
        self.assertEqual(len(old), 1)
        old[0]['exp'] = int(time.time()) - 7200
        with open(state, 'wb') as f:
            f.write(h.det_encode(payload))
        self.stack.start_daemon(('--admin-group=sys',))
        seq = self.stack.manager_props()['RevocationSeq']
        self.assertEqual(seq, payload['seq'])

        # The next entry prunes it (one version for the pruning, one for the new entry); nothing else
        # goes, and the new entry names its own credential's exp.
        path, c2 = self.start_ok(UID_DAEMON, key, 'prune-2', ttl=dbus.UInt64(600))
        self.assertCallOk(self.task_call(UID_DAEMON, path, 'End', 's', [dbus.String('done early')]))
        _, listed = self.revocations()
        self.assertEqual([e for e in listed['entries'] if e.get('cti') == claims[7]], [])
        self.assertEqual(len(listed['entries']), len(payload['entries']))
        claims2 = h.verify_cose_sign1(c2, agent).payload_map()
        self.assertEqual(self.task_entry(claims2[7])['exp'], claims2[4])
        self.assertEqual(listed['seq'], seq + 2)
        self.assertEqual(self.stack.manager_props()['RevocationSeq'], seq + 2)
        # The audit log says what went, and which version of the list that made.
        from test_audit import read_log
        pruned = [r for _, _, r in read_log(os.path.join(self.stack.state_dir, 'audit'))
                  if r['action'] == 'revoke' and r['decision'] == 'pruned']
        self.assertEqual([(r['revocation_seq'], r['reason']) for r in pruned],
                         [(seq + 1, '1 task_end entries of expired task credentials dropped')])

    def test_restart_revokes_open_tasks(self):
        key = self.create('task-crash', uid=UID_DAEMON)
        p1, c1 = self.start_ok(UID_DAEMON, key, 'crash-1')
        _, c2 = self.start_ok(UID_DAEMON, key, 'crash-2')
        agent = self.stack.prop(key, 'PublicKey')
        ctis = [h.verify_cose_sign1(c, agent).payload_map()[7] for c in (c1, c2)]
        self.assertEqual(len(self.journal()), 2)
        self.stack.kill_daemon()
        self.stack.start_daemon(('--admin-group=sys',))
        for cti in ctis:
            self.assertEqual(self.task_entry(cti)['reason'], 'agentidd restarted')
        self.assertEqual(self.journal(), [])
        with self.assertDBusError(E_UNKNOWN_OBJECT, E_UNKNOWN_METHOD):
            self.stack.props(p1, TASK_IFACE)

    def test_clean_stop_ends_tasks(self):
        key = self.create('task-stop', uid=UID_DAEMON)
        _, c = self.start_ok(UID_DAEMON, key, 'stop-1')
        cti = h.verify_cose_sign1(c, self.stack.prop(key, 'PublicKey')).payload_map()[7]
        self.stack.stop_daemon()
        self.stack.start_daemon(('--admin-group=sys',))
        self.assertEqual(self.task_entry(cti)['reason'], 'agentidd stopped')
        self.assertEqual(self.journal(), [])

    def test_task_expires(self):
        """At its NotAfter the task ends; it needs no revocation entry (verifiers refuse a credential
        past its exp, and entries are forever)."""
        key = self.create('task-short', uid=UID_DAEMON)
        path, c = self.start_ok(UID_DAEMON, key, 'short-1', ttl=dbus.UInt64(2))
        cti = h.verify_cose_sign1(c, self.stack.prop(key, 'PublicKey')).payload_map()[7]
        seq = self.stack.manager_props()['RevocationSeq']
        deadline = time.monotonic() + 15
        while True:
            try:
                self.stack.props(path, TASK_IFACE)
            except dbus.exceptions.DBusException:
                break
            self.assertLess(time.monotonic(), deadline, 'the task did not end at its NotAfter')
            time.sleep(0.2)
        self.assertEqual([e for e in self.revocations()[1]['entries'] if e.get('cti') == cti], [])
        self.assertEqual(self.stack.manager_props()['RevocationSeq'], seq)
        self.assertEqual(self.journal(), [])


class TaskPolicyTests(DaemonTestCase):
    """start_task under a policy: every audience is decided, held requests release their count."""

    POLICY = {
        'version': 1,
        'rules': [
            {'name': 'evil', 'actions': ['start_task'], 'audiences': ['evil*'], 'effect': 'deny'},
            {'name': 'ok', 'actions': ['start_task'], 'keys': ['pol-*'], 'audiences': ['ok*'], 'effect': 'allow'},
            {'name': 'held', 'actions': ['start_task'], 'keys': ['held-*'], 'effect': 'confirm'},
            {'name': 'named', 'actions': ['sign'], 'keys': ['named-*'], 'tasks': ['approved-*'], 'effect': 'allow'},
            {'name': 'review', 'actions': ['sign'], 'keys': ['named-*'], 'tasks': ['review-*'], 'effect': 'confirm'},
            # An agent identity for its service only: never from a person's login session.
            {'name': 'svc-only', 'actions': ['start_task', 'sign', 'issue_token'], 'keys': ['svc-*'],
             'units': ['agentid-test-svc*.service'], 'no_login_sessions': True, 'effect': 'allow'},
            {'name': 'svc-humans', 'keys': ['svc-*'], 'effect': 'deny'},
            {'name': 'rest', 'actions': ['sign', 'sign_message', 'issue_token'], 'effect': 'allow'},
        ],
    }

    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        path = cls.stack.path('policy.json')
        with open(path, 'w') as f:
            json.dump(cls.POLICY, f)
        cls.stack.start_daemon(('--policy=' + path, '--approval-timeout=1'))

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    start_task = TaskTests.start_task

    def test_every_audience_is_decided(self):
        key = self.create('pol-agent', uid=UID_DAEMON)
        self.assertCallOk(self.start_task(UID_DAEMON, key, 'a1', audiences=['ok-1']))
        self.assertCallError(self.start_task(UID_DAEMON, key, 'a2', audiences=['ok-1', 'evil-2']), E_POLICY_DENIED)
        self.assertCallError(self.start_task(UID_DAEMON, key, 'a3', audiences=['evil-2', 'ok-1']), E_POLICY_DENIED)
        self.assertCallError(self.start_task(UID_DAEMON, key, 'a4', audiences=['ok-1', 'other']), E_POLICY_DENIED)
        # No audiences = any: only a rule without audiences could allow it; none does.
        self.assertCallError(self.start_task(UID_DAEMON, key, 'a5'), E_POLICY_DENIED)

    def test_named_tasks_only(self):
        """A key created with named_tasks_only works only in task IDs a rule names (or that a human
        reviews); the catch-all 'rest' rule, which names no task, does not extend it."""
        named = self.create('named-strict', uid=UID_DAEMON, named_tasks_only=dbus.Boolean(True))
        free = self.create('named-free', uid=UID_DAEMON)
        self.assertEqual((self.stack.prop(named, 'NamedTasksOnly'), self.stack.prop(free, 'NamedTasksOnly')),
                         (True, False))
        digest = sha256(b'named')
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, named, digest, task_id='approved-7'))
        res = self.stack.sign_as(UID_DAEMON, named, digest, task_id='improvised')
        self.assertCallError(res, E_POLICY_DENIED)
        self.assertIn('named', res.message)
        self.assertCallError(self.stack.sign_as(UID_DAEMON, named, digest), E_POLICY_DENIED)
        res = self.stack.call_as(UID_DAEMON, named, KEY_IFACE, 'Sign', 'aya{sv}',
                                 [dbus.ByteArray(digest), h.options(task_id='review-1')], interactive=True)
        self.assertCallError(res, 'org.agentid1.Error.ApprovalTimeout')
        # Without the flag the same calls follow the rules as usual.
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, free, digest, task_id='improvised'))
        self.assertCallOk(self.stack.sign_as(UID_DAEMON, free, digest))
        # The flag survives a restart (it is in the key record).
        self.stack.stop_daemon()
        self.stack.start_daemon(('--policy=' + self.stack.path('policy.json'), '--approval-timeout=1'))
        self.assertEqual(self.stack.prop(named, 'NamedTasksOnly'), True)
        self.assertCallError(self.stack.sign_as(UID_DAEMON, named, digest, task_id='improvised'), E_POLICY_DENIED)

    def test_no_human_use_of_agent_identities(self):
        """A key bound to its service refuses the same uid calling from a login session: for starting
        tasks, for the task's own signatures and tokens, and for the key's tokens (systemd 252 has no
        pidfd credentials: the cgroup is read for the pid the bus reports; docs/policy.md)."""
        if self.stack.cgroup2_root() is None:
            self.skipTest('no writable cgroup2 hierarchy for fake units and sessions')
        service = self.stack.fake_cgroup('system.slice/agentid-test-svc-tasks.service')
        session = self.stack.fake_cgroup('user.slice/user-1.slice/session-4343.scope')
        key = self.create('svc-agent', uid=UID_DAEMON)

        def call(path, iface, method, sig, args, cgroup):
            return self.stack.call_as(UID_DAEMON, path, iface, method, sig, args, cgroup=cgroup)
        start = ('StartTask', 'sa{sv}', [dbus.String('svc-job'), h.options(audiences=strv(['peer']))])
        self.assertCallError(call(key, KEY_IFACE, *start, session), E_POLICY_DENIED)
        res = call(key, KEY_IFACE, *start, service)
        self.assertCallOk(res)
        task = str(res.value[0])
        sign = ('Sign', 'aya{sv}', [dbus.ByteArray(sha256(b'svc')), h.options()])
        self.assertCallOk(call(task, TASK_IFACE, *sign, service))
        self.assertCallError(call(task, TASK_IFACE, *sign, session), E_POLICY_DENIED)
        token = ('IssueToken', 'a{sv}', [h.options(audience='peer')])
        self.assertCallOk(call(task, TASK_IFACE, *token, service))
        self.assertCallError(call(task, TASK_IFACE, *token, session), E_POLICY_DENIED)
        key_token = ('IssueToken', 'a{sv}', [h.options(audience='peer', task_id='svc-job')])
        self.assertCallError(call(key, KEY_IFACE, *key_token, session), E_POLICY_DENIED)
        self.assertCallOk(call(key, KEY_IFACE, *key_token, service))

    def test_held_requests_release_their_count(self):
        """Held StartTasks that time out must not count as starting tasks for ever: five rounds of 16
        (the per-uid hold limit) pass the 64 tasks a key may run; a leak would turn the last into Busy."""
        key = self.create('held-agent', uid=UID_DAEMON)
        for round in range(5):
            procs = [self.stack.call_as(UID_DAEMON, key, KEY_IFACE, 'StartTask', 'sa{sv}',
                                        [dbus.String('r%d-%d' % (round, i)), h.options()], interactive=True,
                                        background=True)
                     for i in range(16)]
            for p in procs:
                self.assertCallError(h.Stack.finish_call(p), 'org.agentid1.Error.ApprovalTimeout')

if __name__ == '__main__':
    run_main()

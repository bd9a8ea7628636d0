#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": policy-as-code and human approval in agentidd (DESIGN §3, §5; docs/policy.md).

One daemon with --policy=<the POLICY below> and a short --approval-timeout; every rule concerns its own
key names, so tests stay independent. Callers: root (admin), daemon (1), bin (2), sys (3, admin through
--admin-group=sys), nobody (65534). The "units" and "no_login_sessions" tests place the calling process
in fake cgroups (system.slice/agentid-test-*.service, user.slice/user-1.slice/session-N.scope) of the
cgroup2 hierarchy, where sd_pid_get_unit()/sd_pid_get_session() read them; they are skipped where no
writable cgroup2 hierarchy exists.

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_policy.py [-k PATTERN]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import json
import signal
import time

from harness import (E_ACCESS_DENIED, E_BUSY, E_KEY_DESTROYED, KEY_IFACE, MANAGER_IFACE, MANAGER_PATH, UID_BIN, UID_DAEMON,  # noqa: E402
                     UID_NOBODY, UID_SYS)
from test_daemon import DaemonTestCase, OWNER, python_sha256, run_main, sha256  # noqa: E402

E_POLICY_DENIED = 'org.agentid1.Error.PolicyDenied'
E_POLICY_INVALID = 'org.agentid1.Error.PolicyInvalid'
E_APPROVAL_DENIED = 'org.agentid1.Error.ApprovalDenied'
E_APPROVAL_TIMEOUT = 'org.agentid1.Error.ApprovalTimeout'
E_NO_SUCH_APPROVAL = 'org.agentid1.Error.NoSuchApproval'
E_INTERACTIVE = 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired'

APPROVAL_TIMEOUT = 4  # seconds


def policy(python_digest):
    return {
        'version': 1,
        'comment': 'test policy of tests/dbus/test_policy.py',
        'rules': [
            {'name': 'frozen', 'actions': ['sign', 'sign_message'], 'keys': ['frozen-*'], 'effect': 'deny'},
            {'name': 'need-task', 'actions': ['sign'], 'keys': ['tasky'], 'effect': 'allow', 'require_task': True},
            {'name': 'task-glob', 'actions': ['sign_message'], 'keys': ['tasky'], 'tasks': ['job-*'],
             'effect': 'allow'},
            {'name': 'audience', 'actions': ['sign'], 'keys': ['aud'], 'audiences': ['https://api.example.com/*'],
             'effect': 'allow'},
            {'name': 'only-bin', 'actions': ['sign'], 'keys': ['shared-*'], 'uids': [UID_BIN], 'effect': 'allow'},
            {'name': 'group-daemon', 'actions': ['sign'], 'keys': ['grp-*'], 'gids': [1], 'effect': 'allow'},
            {'name': 'exe', 'actions': ['sign'], 'keys': ['exe-1'], 'exe_sha256': [python_digest.hex()],
             'effect': 'allow'},
            {'name': 'unit', 'actions': ['sign'], 'keys': ['unit-1'], 'units': ['agentid-test-*.service'],
             'effect': 'allow'},
            {'name': 'no-session', 'actions': ['sign'], 'keys': ['nosess-1'], 'no_login_sessions': True,
             'effect': 'allow'},
            {'name': 'rate', 'actions': ['sign'], 'keys': ['rated-1'], 'rate': {'limit': 3, 'interval': 3600},
             'effect': 'allow'},
            {'name': 'sensitive', 'actions': ['sign', 'sign_message', 'attest'], 'keys': ['sensitive-*'],
             'effect': 'confirm'},
            {'name': 'no-attest', 'actions': ['attest'], 'keys': ['noattest-1'], 'effect': 'deny'},
            {'name': 'self-service', 'actions': ['create'], 'keys': ['self-*'], 'uids': [UID_DAEMON],
             'effect': 'allow'},
            {'name': 'self-retire', 'actions': ['destroy'], 'keys': ['self-*'], 'effect': 'confirm'},
            {'name': 'self-rotate', 'actions': ['rotate'], 'keys': ['self-*'], 'uids': [UID_DAEMON],
             'effect': 'allow'},
            {'name': 'open', 'actions': ['sign', 'sign_message', 'attest'], 'keys': ['open-*', 'frozen-*'],
             'effect': 'allow'},
        ],
    }


def write_json(path, obj):
    data = json.dumps(obj, indent=2).encode()
    with open(path + '.tmp', 'wb') as f:
        f.write(data)
    os.rename(path + '.tmp', path)
    return data


class PolicyTests(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        cls.policy_path = cls.stack.path('policy.json')
        cls.policy_bytes = write_json(cls.policy_path, policy(python_sha256()))
        cls.stack.start_daemon(('--admin-group=sys', '--policy=' + cls.policy_path,
                                '--approval-timeout=%d' % APPROVAL_TIMEOUT))

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    # --- helpers

    def sign_as(self, uid, path, digest=b'\x11' * 32, **kw):
        ctx = {k: kw.pop(k) for k in ('task_id', 'parent_task_id', 'audience') if k in kw}
        return self.stack.call_as(uid, path, KEY_IFACE, 'Sign', 'aya{sv}',
                                  [dbus.ByteArray(bytes(digest)), h.options(**ctx)], **kw)

    def approvals(self, uid=0):
        if uid == 0:
            return h.unwrap(self.stack.manager('ListApprovals'))
        return self.stack.call_as(uid, MANAGER_PATH, MANAGER_IFACE, 'ListApprovals')

    def wait_approval(self, key, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [a for a in self.approvals() if a[1] == key]
            if pending:
                self.assertEqual(len(pending), 1, 'one pending request for %s: %r' % (key, pending))
                return pending[0]
            time.sleep(0.05)
        self.fail('no request for key %s awaits approval' % key)

    def approve_as(self, uid, request_id, allow):
        return self.stack.call_as(uid, MANAGER_PATH, MANAGER_IFACE, 'Approve', 'sb',
                                  [dbus.String(request_id), dbus.Boolean(allow)])

    def assertDenied(self, res, rule=None, text=None):
        self.assertCallError(res, E_POLICY_DENIED)
        if rule:
            self.assertIn("'%s'" % rule, res.message, 'the refusal names the rule')
        if text:
            self.assertIn(text, res.message)

    # --- loading

    def test_policy_digest(self):
        self.assertEqual(self.stack.manager_props()['PolicyDigest'], sha256(self.policy_bytes))
        self.assertEqual(self.stack.manager_props()['ApprovalTimeout'], APPROVAL_TIMEOUT * 1000000)

    # --- effects and fields

    def test_deny_rule(self):
        path = self.create('frozen-1', uid=UID_DAEMON)
        self.assertDenied(self.sign_as(UID_DAEMON, path), rule='frozen', text='denied by rule')
        self.assertDenied(self.sign_message_as(UID_DAEMON, path), rule='frozen')
        # Attest is not in the rule's actions: the later "open" rule allows it.
        res = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Attest', 'aya{sv}',
                                 [dbus.ByteArray(os.urandom(16)), h.options()])
        self.assertCallOk(res)

    def test_no_rule_matches(self):
        path = self.create('unlisted-1', uid=UID_DAEMON)
        self.assertDenied(self.sign_as(UID_DAEMON, path), text='no rule matches')

    def test_key_check_comes_first(self):
        # A policy allowing "open-*" to everyone gives nobody another uid's key.
        path = self.create('open-1', uid=UID_DAEMON)
        self.assertCallOk(self.sign_as(UID_DAEMON, path))
        self.assertCallError(self.sign_as(UID_BIN, path), E_ACCESS_DENIED)
        self.assertCallError(self.sign_as(0, path), E_ACCESS_DENIED)

    def ensure_key(self, name, uid):
        if name in [e[0] for e in self.stack.list_keys()]:
            return h.path_encode(name)
        return self.create(name, uid=uid)

    def sign_message_as(self, uid, path, **ctx):
        return self.stack.call_as(uid, path, KEY_IFACE, 'SignMessage', 'aya{sv}',
                                  [dbus.ByteArray(b'x'), h.options(**ctx)])

    def test_require_task(self):
        path = self.ensure_key('tasky', UID_DAEMON)
        self.assertDenied(self.sign_as(UID_DAEMON, path), rule='need-task', text='task_id')
        self.assertCallOk(self.sign_as(UID_DAEMON, path, task_id='job-1'))

    def test_tasks_glob(self):
        path = self.ensure_key('tasky', UID_DAEMON)
        self.assertCallOk(self.sign_message_as(UID_DAEMON, path, task_id='job-9'))
        self.assertDenied(self.sign_message_as(UID_DAEMON, path, task_id='other-9'), text='no rule matches')
        self.assertDenied(self.sign_message_as(UID_DAEMON, path), text='no rule matches')

    def test_audiences(self):
        path = self.create('aud', uid=UID_DAEMON)
        self.assertCallOk(self.sign_as(UID_DAEMON, path, audience='https://api.example.com/v1'))
        self.assertDenied(self.sign_as(UID_DAEMON, path, audience='https://evil.example.net/'))
        self.assertDenied(self.sign_as(UID_DAEMON, path))

    def test_uids(self):
        ok = self.create('shared-bin', uid=UID_BIN)
        self.assertCallOk(self.sign_as(UID_BIN, ok))
        other = self.create('shared-daemon', uid=UID_DAEMON)
        self.assertDenied(self.sign_as(UID_DAEMON, other))

    def test_gids(self):
        # uid 1 (daemon) is in group 1 by the group database; uid 2 (bin) is not.
        ok = self.create('grp-daemon', uid=UID_DAEMON)
        self.assertCallOk(self.sign_as(UID_DAEMON, ok))
        other = self.create('grp-bin', uid=UID_BIN)
        self.assertDenied(self.sign_as(UID_BIN, other))

    def test_exe_sha256(self):
        path = self.create('exe-1', uid=UID_DAEMON)
        self.assertCallOk(self.sign_as(UID_DAEMON, path))
        self.assertDenied(self.sign_as(UID_DAEMON, path, exe=self.stack.python_copy(modified=True)))

    def require_cgroup2(self):
        if self.stack.cgroup2_root() is None:
            self.skipTest('no writable cgroup2 hierarchy for fake units and sessions')

    def test_units(self):
        self.require_cgroup2()
        path = self.create('unit-1', uid=UID_DAEMON)
        good = self.stack.fake_cgroup('system.slice/agentid-test-policy.service')
        bad = self.stack.fake_cgroup('system.slice/other-test-policy.service')
        self.assertCallOk(self.sign_as(UID_DAEMON, path, cgroup=good))
        self.assertDenied(self.sign_as(UID_DAEMON, path, cgroup=bad))
        self.assertDenied(self.sign_as(UID_DAEMON, path))  # no unit at all

    def test_no_login_sessions(self):
        self.require_cgroup2()
        path = self.create('nosess-1', uid=UID_DAEMON)
        session = self.stack.fake_cgroup('user.slice/user-1.slice/session-4242.scope')
        service = self.stack.fake_cgroup('system.slice/agentid-test-nosess.service')
        self.assertDenied(self.sign_as(UID_DAEMON, path, cgroup=session))
        self.assertCallOk(self.sign_as(UID_DAEMON, path, cgroup=service))

    def test_rate(self):
        path = self.create('rated-1', uid=UID_DAEMON)
        for i in range(3):
            self.assertCallOk(self.sign_as(UID_DAEMON, path))
        self.assertDenied(self.sign_as(UID_DAEMON, path), rule='rate', text='rate')

    def test_attest_deny_applies_to_admins(self):
        path = self.create('noattest-1', uid=UID_DAEMON)
        for uid in (UID_DAEMON, 0):
            res = self.stack.call_as(uid, path, KEY_IFACE, 'Attest', 'aya{sv}',
                                     [dbus.ByteArray(os.urandom(16)), h.options()])
            self.assertDenied(res, rule='no-attest')

    # --- confirm

    def test_confirm_needs_interactive_flag(self):
        path = self.create('sensitive-flag', uid=UID_DAEMON)
        res = self.sign_as(UID_DAEMON, path)
        self.assertCallError(res, E_INTERACTIVE)
        self.assertIn('sensitive', res.message)
        self.assertEqual([a for a in self.approvals() if a[1] == 'sensitive-flag'], [])

    def test_confirm_approved(self):
        path = self.create('sensitive-ok', uid=UID_DAEMON)
        digest = sha256(b'wire 1000 EUR')
        mark = self.stack.monitor_mark()
        proc = self.sign_as(UID_DAEMON, path, digest, interactive=True, background=True, task_id='pay-1')
        request_id, key, action, ctx = self.wait_approval('sensitive-ok')
        self.assertEqual((key, action), ('sensitive-ok', 'sign'))
        self.assertEqual(ctx['uid'], UID_DAEMON)
        self.assertEqual(ctx['rule'], 'sensitive')
        self.assertEqual(ctx['task_id'], 'pay-1')
        self.assertEqual(ctx['digest'], digest, 'the reviewer sees what would be signed')
        self.assertEqual(ctx['exe_sha256'], python_sha256())
        self.assertGreater(ctx['pid'], 0)
        self.assertGreater(ctx['expires_at'], ctx['requested_at'])
        self.assertEqual(len(request_id), 32)
        self.assertIsNotNone(self.stack.wait_signal('ApprovalRequested', mark, args=[request_id, 'sensitive-ok',
                                                                                     'sign']))
        # Non-admins may neither see nor answer it.
        self.assertCallError(self.approvals(UID_DAEMON), E_ACCESS_DENIED)
        self.assertCallError(self.approve_as(UID_BIN, request_id, True), E_ACCESS_DENIED)

        self.assertCallOk(self.approve_as(UID_SYS, request_id, True))
        res = h.Stack.finish_call(proc)
        self.assertCallOk(res)
        h.verify_digest_signature(self.stack.prop(path, 'PublicKey'), digest, res.bytes)
        self.assertEqual([a for a in self.approvals() if a[1] == 'sensitive-ok'], [])
        # Answered once only.
        self.assertCallError(self.approve_as(UID_SYS, request_id, True), E_NO_SUCH_APPROVAL)

    def test_confirm_denied(self):
        path = self.create('sensitive-no', uid=UID_DAEMON)
        proc = self.sign_as(UID_DAEMON, path, interactive=True, background=True)
        request_id = self.wait_approval('sensitive-no')[0]
        self.stack.manager('Approve', 'sb', [request_id, False])
        self.assertCallError(h.Stack.finish_call(proc), E_APPROVAL_DENIED)

    def test_confirm_timeout(self):
        path = self.create('sensitive-late', uid=UID_DAEMON)
        start = time.monotonic()
        res = self.sign_as(UID_DAEMON, path, interactive=True)
        self.assertCallError(res, E_APPROVAL_TIMEOUT)
        self.assertGreaterEqual(time.monotonic() - start, APPROVAL_TIMEOUT - 0.5)
        self.assertEqual([a for a in self.approvals() if a[1] == 'sensitive-late'], [])

    def test_confirm_disconnect_withdraws(self):
        path = self.create('sensitive-gone', uid=UID_DAEMON)
        proc = self.sign_as(UID_DAEMON, path, interactive=True, background=True)
        request_id = self.wait_approval('sensitive-gone')[0]
        proc.kill()
        proc.communicate()
        deadline = time.monotonic() + 5
        while [a for a in self.approvals() if a[0] == request_id]:
            self.assertLess(time.monotonic(), deadline, 'a disconnected caller\'s request stays pending')
            time.sleep(0.05)
        with self.assertDBusError(E_NO_SUCH_APPROVAL):
            self.stack.manager('Approve', 'sb', [request_id, True])

    def test_confirm_own_request_refused(self):
        # root (an admin) asks; root may not approve it, another admin (sys) may.
        path = self.create('sensitive-root')
        proc = self.sign_as(0, path, interactive=True, background=True)
        request_id = self.wait_approval('sensitive-root')[0]
        with self.assertDBusError(E_ACCESS_DENIED):
            self.stack.manager('Approve', 'sb', [request_id, True])
        self.assertCallOk(self.approve_as(UID_SYS, request_id, True))
        self.assertCallOk(h.Stack.finish_call(proc))

    def test_confirm_attest(self):
        path = self.create('sensitive-attest', uid=UID_DAEMON)
        proc = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Attest', 'aya{sv}',
                                  [dbus.ByteArray(os.urandom(16)), h.options()], interactive=True, background=True)
        request_id, _, action, _ = self.wait_approval('sensitive-attest')
        self.assertEqual(action, 'attest')
        self.assertCallOk(self.approve_as(UID_SYS, request_id, True))
        self.assertCallOk(h.Stack.finish_call(proc))

    def test_confirm_sign_message_shows_payload_digest(self):
        path = self.create('sensitive-msg', uid=UID_DAEMON)
        payload = b'{"pay": "ACME", "amount": "120.00"}'
        proc = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'SignMessage', 'aya{sv}',
                                  [dbus.ByteArray(payload), h.options()], interactive=True, background=True)
        request_id, _, action, ctx = self.wait_approval('sensitive-msg')
        self.assertEqual(action, 'sign_message')
        self.assertEqual(ctx['digest'], sha256(payload))
        self.assertCallOk(self.approve_as(UID_SYS, request_id, True))
        h.verify_cose_sign1(self.assertCallOk(h.Stack.finish_call(proc)).bytes, self.stack.prop(path, 'PublicKey'))

    def test_approval_signal_is_terse(self):
        path = self.create('sensitive-signal', uid=UID_DAEMON)
        mark = self.stack.monitor_mark()
        proc = self.sign_as(UID_DAEMON, path, interactive=True, background=True, task_id='secret-task')
        request_id = self.wait_approval('sensitive-signal')[0]
        sig = self.stack.wait_signal('ApprovalRequested', mark, args=[request_id])
        self.assertIsNotNone(sig)
        body = '\n'.join(sig.body)
        self.assertNotIn('secret-task', body, 'the broadcast must not carry the task or the digest')
        self.assertNotIn('digest', body)
        self.stack.manager('Approve', 'sb', [request_id, False])
        self.assertCallError(h.Stack.finish_call(proc), E_APPROVAL_DENIED)

    def test_held_requests_per_uid_bounded(self):
        path = self.create('sensitive-many', uid=UID_BIN)
        procs = [self.sign_as(UID_BIN, path, interactive=True, background=True) for _ in range(16)]
        try:
            deadline = time.monotonic() + 20
            while len([a for a in self.approvals() if a[1] == 'sensitive-many']) < 16:
                self.assertLess(time.monotonic(), deadline, 'not all 16 requests were held')
                time.sleep(0.1)
            self.assertCallError(self.sign_as(UID_BIN, path, interactive=True), E_BUSY)
        finally:
            for p in procs:
                p.kill()
                p.communicate()
        deadline = time.monotonic() + 5
        while [a for a in self.approvals() if a[1] == 'sensitive-many']:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_reload_withdraws_held_requests(self):
        path = self.create('sensitive-reload', uid=UID_DAEMON)
        proc = self.sign_as(UID_DAEMON, path, interactive=True, background=True)
        self.wait_approval('sensitive-reload')
        changed = policy(python_sha256())
        changed['comment'] = 'changed'
        write_json(self.policy_path, changed)
        try:
            self.stack.manager('ReloadPolicy')
            res = h.Stack.finish_call(proc)
            self.assertCallError(res, E_POLICY_DENIED)
            self.assertIn('policy changed', res.message)
        finally:
            write_json(self.policy_path, policy(python_sha256()))
            self.stack.manager('ReloadPolicy')

    def test_held_destroy_of_key_that_expires_meanwhile(self):
        """agentidd offboards the key at its NotAfter while the Destroy waits; approving it then
        answers KeyDestroyed, and the key was destroyed once, by the expiry."""
        res = self.create_as(UID_DAEMON, 'self-expiring', owner=OWNER, ttl=dbus.UInt64(2))
        path = self.assertCallOk(res).value
        proc = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Destroy', 's', [dbus.String('expiring anyway')],
                                  interactive=True, background=True)
        request_id = self.wait_approval('self-expiring')[0]
        deadline = time.monotonic() + 15
        while [e for e in self.stack.list_keys() if e[0] == 'self-expiring'][0][2] != 'destroyed':
            self.assertLess(time.monotonic(), deadline, 'the expired key was not offboarded')
            time.sleep(0.1)
        self.assertCallError(self.approve_as(UID_SYS, request_id, True), E_KEY_DESTROYED)
        self.assertCallError(h.Stack.finish_call(proc), E_KEY_DESTROYED)

    def test_approval_admin_only(self):
        self.assertCallError(self.approve_as(UID_NOBODY, 'f' * 32, True), E_ACCESS_DENIED)
        self.assertCallError(self.approvals(UID_NOBODY), E_ACCESS_DENIED)
        with self.assertDBusError(E_NO_SUCH_APPROVAL):
            self.stack.manager('Approve', 'sb', ['f' * 32, True])
        res = self.stack.call_as(UID_DAEMON, MANAGER_PATH, MANAGER_IFACE, 'ReloadPolicy')
        self.assertCallError(res, E_ACCESS_DENIED)

    # --- key management extended to non-admins

    def test_create_extended_to_own_uid(self):
        res = self.create_as(UID_DAEMON, 'self-one', owner=OWNER)
        self.assertCallOk(res)
        self.assertEqual(self.stack.prop(res.value, 'Uid'), UID_DAEMON)
        # Never for another uid, never outside the rule, never for a uid the rule does not name.
        self.assertCallError(self.create_as(UID_DAEMON, 'self-two', owner=OWNER, uid=UID_BIN), E_ACCESS_DENIED)
        self.assertCallError(self.create_as(UID_DAEMON, 'notself-1', owner=OWNER), E_ACCESS_DENIED)
        self.assertCallError(self.create_as(UID_BIN, 'self-three', owner=OWNER), E_ACCESS_DENIED)

    def test_destroy_extended_with_confirm(self):
        res = self.create_as(UID_DAEMON, 'self-retire', owner=OWNER)
        path = self.assertCallOk(res).value
        # Only its own key, only with approval.
        self.assertCallError(self.destroy_as(UID_BIN, path, 'x'), E_ACCESS_DENIED)
        self.assertCallError(self.destroy_as(UID_DAEMON, path, 'done'), E_INTERACTIVE)
        proc = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Destroy', 's', [dbus.String('done')],
                                  interactive=True, background=True)
        request_id, _, action, ctx = self.wait_approval('self-retire')
        self.assertEqual(action, 'destroy')
        self.assertCallOk(self.approve_as(UID_SYS, request_id, True))
        receipt = self.assertCallOk(h.Stack.finish_call(proc)).bytes
        h.verify_cose_sign1(receipt, self.stack.manager_props()['HostPublicKey'])
        self.assertEqual(self.list_entry('self-retire')[2], 'destroyed')

    def test_rotate_extended_to_own_uid(self):
        path = self.assertCallOk(self.create_as(UID_DAEMON, 'self-rotating', owner=OWNER)).value
        old = self.stack.prop(path, 'TpmName')
        # Another uid never; the key's uid under the rule; a key the rule does not name only by admins.
        res = self.stack.call_as(UID_BIN, path, KEY_IFACE, 'Rotate', 's', [dbus.String('not mine')])
        self.assertCallError(res, E_ACCESS_DENIED)
        res = self.stack.call_as(UID_DAEMON, path, KEY_IFACE, 'Rotate', 's', [dbus.String('my schedule')])
        self.assertCallOk(res)
        self.assertNotEqual(self.stack.prop(path, 'TpmName'), old)
        other = self.create('open-rotating', uid=UID_DAEMON)
        res = self.stack.call_as(UID_DAEMON, other, KEY_IFACE, 'Rotate', 's', [dbus.String('not allowed')])
        self.assertCallError(res, E_ACCESS_DENIED)

    def test_admin_key_management_not_subject_to_policy(self):
        # No rule allows "create" or "destroy" for admins' keys here; admins are never asked.
        path = self.create('frozen-admin', uid=UID_DAEMON)
        receipt = self.stack.destroy(path, 'retired')
        h.verify_cose_sign1(receipt, self.stack.manager_props()['HostPublicKey'])
        res = self.create_as(UID_SYS, 'frozen-sys', owner=OWNER, uid=UID_BIN)
        self.assertCallOk(res)

    # --- reload

    def test_reload_invalid_keeps_old_policy(self):
        path = self.create('frozen-reload', uid=UID_DAEMON)
        digest = self.stack.manager_props()['PolicyDigest']
        bad = policy(python_sha256())
        bad['rules'][0]['keyz'] = ['x']
        write_json(self.policy_path, bad)
        try:
            try:
                self.stack.manager('ReloadPolicy')
                self.fail('an invalid policy was accepted')
            except dbus.exceptions.DBusException as e:
                self.assertEqual(e.get_dbus_name(), E_POLICY_INVALID)
                self.assertIn('keyz', e.get_dbus_message(), 'the refusal names the field')
            self.assertEqual(self.stack.manager_props()['PolicyDigest'], digest)
            self.assertDenied(self.sign_as(UID_DAEMON, path), rule='frozen')
            # SIGHUP takes the same path.
            self.stack.daemon.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            self.assertEqual(self.stack.manager_props()['PolicyDigest'], digest)

            # A valid new policy takes effect at once.
            new = policy(python_sha256())
            new['rules'][0]['effect'] = 'allow'
            data = write_json(self.policy_path, new)
            self.stack.manager('ReloadPolicy')
            self.assertEqual(self.stack.manager_props()['PolicyDigest'], sha256(data))
            self.assertCallOk(self.sign_as(UID_DAEMON, path))
        finally:
            write_json(self.policy_path, policy(python_sha256()))
            self.stack.manager('ReloadPolicy')
        self.assertEqual(self.stack.manager_props()['PolicyDigest'], sha256(self.policy_bytes))
        self.assertDenied(self.sign_as(UID_DAEMON, path), rule='frozen')


class CatchAllPolicyTests(DaemonTestCase):
    """A policy whose only rule has no "actions": it covers the agent actions, never key management."""

    def test_catch_all_and_shutdown(self):
        with h.Stack(start_daemon=False) as st:
            self.stack = st
            path = st.path('policy.json')
            write_json(path, {'version': 1, 'rules': [
                {'name': 'held', 'keys': ['held-*'], 'effect': 'confirm'},
                {'name': 'anything', 'effect': 'allow'}]})
            st.start_daemon(('--policy=' + path,))
            self.assertCallError(self.create_as(UID_DAEMON, 'mine-1', owner=OWNER), E_ACCESS_DENIED)
            key = self.create('anything-1', uid=UID_DAEMON)
            self.assertCallOk(st.sign_as(UID_DAEMON, key, b'\1' * 32))
            self.assertCallError(self.destroy_as(UID_DAEMON, key, 'x'), E_ACCESS_DENIED)

            # SIGTERM answers held requests (Busy) and still exits cleanly.
            held = self.create('held-1', uid=UID_DAEMON)
            proc = st.call_as(UID_DAEMON, held, KEY_IFACE, 'Sign', 'aya{sv}', [dbus.ByteArray(b'\2' * 32),
                              h.options()], interactive=True, background=True)
            deadline = time.monotonic() + 10
            while not h.unwrap(st.manager('ListApprovals')):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            st.stop_daemon()
            self.assertCallError(h.Stack.finish_call(proc), E_BUSY)


class PolicyStartupTests(DaemonTestCase):
    """An explicit --policy must exist and be valid; the daemon refuses to start otherwise. (And a
    descriptor the daemon inherits is closed at start, and core dumps are off.)"""

    def test_inherited_fds_closed(self):
        with h.Stack(start_daemon=False) as st:
            self.stack = st
            secret = st.path('inherited')
            with open(secret, 'w') as f:
                f.write('not for agentidd')
            fd = os.open(secret, os.O_RDONLY)
            try:
                st.start_daemon(pass_fds=(fd,))
            finally:
                os.close(fd)
            fd_dir = '/proc/%d/fd' % st.daemon.pid
            targets = [os.readlink(os.path.join(fd_dir, n)) for n in os.listdir(fd_dir)]
            self.assertNotIn(secret, targets, 'agentidd kept a descriptor it inherited')
            # ...and it cannot leave a core dump: key material passes through it.
            with open('/proc/%d/limits' % st.daemon.pid) as f:
                core = [line.split()[4:6] for line in f if line.startswith('Max core file size')]
            self.assertEqual(core, [['0', '0']])
            st.stop_daemon()

    def test_refuses_to_start(self):
        with h.Stack(start_daemon=False) as st:
            self.stack = st
            missing = st.path('missing.json')
            with self.assertRaisesRegex(h.StackError, 'exited during start-up'):
                st.start_daemon(('--policy=' + missing,))
            bad = st.path('bad.json')
            with open(bad, 'w') as f:
                f.write('{"version": 1, "rules": [{"effect": "allow", "effect": "deny"}]}')
            with self.assertRaisesRegex(h.StackError, 'exited during start-up'):
                st.start_daemon(('--policy=' + bad,))
            self.assertIn(bad, st.daemon_log_tail(20))


if __name__ == '__main__':
    run_main()

#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": Key.IssueToken, delegation with parent tokens, and the token fields of the policy
(DESIGN §3, §5 "Task token"; docs/formats.md).

One daemon with a policy whose token rules concern keys named "pol-*"; a last rule allows everything
else, so the other tests see no policy effect. Tokens are checked here independently of agentidd's C
code: COSE_Sign1 and the deterministic CBOR claims are decoded with cbor2 and verified with the key's
PublicKey through python3-cryptography (harness.verify_cose_sign1).

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_tokens.py [-k PATTERN]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import hashlib
import json
import subprocess
import time

from harness import E_ACCESS_DENIED, E_INVALID_ARGS, KEY_IFACE, UID_BIN, UID_DAEMON  # noqa: E402
from test_daemon import DaemonTestCase, OWNER, run_main  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import utils  # noqa: E402

E_POLICY_DENIED = 'org.agentid1.Error.PolicyDenied'

POLICY = {
    'version': 1,
    'rules': [
        {'name': 'peer-tokens', 'actions': ['issue_token'], 'keys': ['pol-*'], 'audiences': ['agentid://*/peer-*'],
         'scopes': ['read', 'write'], 'max_token_ttl': 600, 'require_task': True, 'effect': 'allow'},
        {'name': 'no-other-tokens', 'actions': ['issue_token'], 'keys': ['pol-*'], 'effect': 'deny'},
        {'name': 'peer-allowed', 'actions': ['issue_token'], 'keys': ['peerchild-*'],
         'peers': ['agentid://*/peerparent-ok'], 'effect': 'allow'},
        {'name': 'peer-other', 'actions': ['issue_token'], 'keys': ['peerchild-*'], 'effect': 'deny'},
        {'name': 'everything-else', 'effect': 'allow'},
    ],
}


def strv(items):
    return dbus.Array([dbus.String(s) for s in items], signature='s')


class TokenTests(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        path = cls.stack.path('policy.json')
        with open(path, 'w') as f:
            json.dump(POLICY, f)
        cls.stack.start_daemon(('--policy=' + path,))

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    # --- helpers

    def issue_as(self, uid, path, **req):
        typed = {}
        for k, v in req.items():
            if k == 'scope':
                typed[k] = strv(v)
            elif k == 'parent_token':
                typed[k] = dbus.ByteArray(bytes(v))
            else:
                typed[k] = v
        return self.stack.call_as(uid, path, KEY_IFACE, 'IssueToken', 'a{sv}', [h.options(**typed)])

    def issue_ok(self, uid, path, **req):
        return self.assertCallOk(self.issue_as(uid, path, **req)).bytes

    def decode(self, token, path):
        """Verify token with the key at path and return (protected header, claims)."""
        props = self.stack.props(path)
        cose = h.verify_cose_sign1(token, props['PublicKey'])
        self.assertEqual(cose.protected, {1: -7, 4: props['TpmName']}, 'protected header: ES256, kid, no label 15')
        claims = cose.payload_map()
        self.assertIsInstance(claims, dict)
        return cose.protected, claims

    def key(self, name, uid, **opts):
        if name in [e[0] for e in self.stack.list_keys()]:
            return h.path_encode(name)
        return self.create(name, uid=uid, **opts)

    def uri(self, path):
        return self.stack.prop(path, 'Uri')

    # --- issuing

    def test_token_claims(self):
        path = self.key('tok-a', UID_DAEMON)
        before = int(time.time())
        token = self.issue_ok(UID_DAEMON, path, audience='https://api.example.com', task_id='task-1',
                              parent_task_id='task-0', scope=['read', 'write'], ttl=120)
        after = int(time.time())
        _, c = self.decode(token, path)
        uri = self.uri(path)
        self.assertEqual(set(c), {1, 2, 3, 4, 5, 6, 7, 9, 'task_id', 'parent_task_id', 'owner'})
        self.assertEqual((c[1], c[2], c[3]), (uri, uri, 'https://api.example.com'))
        self.assertTrue(before <= c[6] <= after)
        self.assertEqual((c[5], c[4]), (c[6], c[6] + 120))
        self.assertEqual(len(c[7]), 16)
        self.assertEqual(c[9], 'read write')
        self.assertEqual((c['task_id'], c['parent_task_id'], c['owner']), ('task-1', 'task-0', OWNER))
        # Every token is unique.
        again = self.issue_ok(UID_DAEMON, path, audience='https://api.example.com', task_id='task-1')
        self.assertNotEqual(self.decode(again, path)[1][7], c[7])

    def test_token_defaults(self):
        path = self.key('tok-a', UID_DAEMON)
        _, c = self.decode(self.issue_ok(UID_DAEMON, path, audience='x', task_id='t'), path)
        self.assertEqual(c[4] - c[6], 300, 'default ttl')
        self.assertNotIn(9, c)
        self.assertNotIn('parent_task_id', c)
        self.assertNotIn('hops', c)

    def test_token_bad_requests(self):
        path = self.key('tok-a', UID_DAEMON)
        bad = [
            dict(task_id='t'),                                   # no audience
            dict(audience='x'),                                  # no task
            dict(audience='x', task_id='t', ttl=0),
            dict(audience='x', task_id='t', scope=['a b']),
            dict(audience='x', task_id='t', scope=['a', 'a']),
            dict(audience='x', task_id='t', scope=['a"']),
            dict(audience='x', task_id='t', scope=['s%d' % i for i in range(33)]),
            dict(audience='x', task_id='t', parent_token=b'\xd2\x84garbage'),
            dict(audience='x', task_id='t', parent_token=b''),
            dict(audience='x', task_id='t' * 129),
            dict(audience='x', task_id='t', colour='blue'),
        ]
        for req in bad:
            with self.subTest(req=req):
                self.assertCallError(self.issue_as(UID_DAEMON, path, **req), E_INVALID_ARGS)

    def test_token_only_for_the_keys_uid(self):
        path = self.key('tok-a', UID_DAEMON)
        self.assertCallError(self.issue_as(UID_BIN, path, audience='x', task_id='t'), E_ACCESS_DENIED)
        self.assertCallError(self.issue_as(0, path, audience='x', task_id='t'), E_ACCESS_DENIED)

    def test_token_within_key_lifetime(self):
        path = self.key('tok-short', UID_DAEMON, ttl=100)
        res = self.issue_as(UID_DAEMON, path, audience='x', task_id='t')
        self.assertCallError(res, E_INVALID_ARGS)
        self.assertIn('outlive', res.message)
        self.assertCallOk(self.issue_as(UID_DAEMON, path, audience='x', task_id='t', ttl=50))

    # --- delegation

    def delegation_pair(self):
        a = self.key('tok-del-a', UID_DAEMON)
        b = self.key('tok-del-b', UID_BIN)
        parent = self.issue_ok(UID_DAEMON, a, audience=self.uri(b), task_id='task-9', parent_task_id='task-8',
                               scope=['read', 'write'], ttl=600)
        return a, b, parent

    def test_delegation(self):
        a, b, parent = self.delegation_pair()
        _, p = self.decode(parent, a)
        child = self.issue_ok(UID_BIN, b, audience='https://downstream.example', parent_token=parent,
                              scope=['read'], ttl=60)
        _, c = self.decode(child, b)
        self.assertEqual((c['task_id'], c['parent_task_id']), ('task-9', 'task-8'), 'the task is inherited')
        self.assertEqual(c[9], 'read')
        self.assertEqual(c['hops'], [[p[1], p[7], self.stack.prop(a, 'TpmName')]])
        self.assertLessEqual(c[4], p[4])
        # Without a scope the child keeps the parent's.
        _, c2 = self.decode(self.issue_ok(UID_BIN, b, audience='y', parent_token=parent, ttl=60), b)
        self.assertEqual(c2[9], 'read write')

    def test_delegation_refusals(self):
        a, b, parent = self.delegation_pair()
        c_key = self.key('tok-del-c', UID_BIN)
        forged = bytearray(parent)
        forged[-1] ^= 1
        cases = {
            'widened scope': (b, dict(audience='y', parent_token=parent, scope=['admin'], ttl=60)),
            'outlives parent': (b, dict(audience='y', parent_token=parent, ttl=100000)),
            'another task': (b, dict(audience='y', parent_token=parent, task_id='other', ttl=60)),
            'wrong audience': (c_key, dict(audience='y', parent_token=parent, ttl=60)),
            'forged signature': (b, dict(audience='y', parent_token=bytes(forged), ttl=60)),
        }
        for what, (path, req) in cases.items():
            with self.subTest(what):
                self.assertCallError(self.issue_as(UID_BIN, path, **req), E_INVALID_ARGS)

    def test_delegation_expired_parent(self):
        a = self.key('tok-exp-a', UID_DAEMON)
        b = self.key('tok-exp-b', UID_BIN)
        parent = self.issue_ok(UID_DAEMON, a, audience=self.uri(b), task_id='t', ttl=1)
        time.sleep(2.1)
        res = self.issue_as(UID_BIN, b, audience='y', parent_token=parent, ttl=1)
        self.assertCallError(res, E_INVALID_ARGS)
        self.assertIn('not valid now', res.message)

    def test_delegation_from_destroyed_key(self):
        a = self.key('tok-gone-a', UID_DAEMON)
        b = self.key('tok-gone-b', UID_BIN)
        parent = self.issue_ok(UID_DAEMON, a, audience=self.uri(b), task_id='t', ttl=600)
        self.stack.destroy(a, 'retired')
        self.assertCallError(self.issue_as(UID_BIN, b, audience='y', parent_token=parent, ttl=60), E_INVALID_ARGS)

    def test_delegation_hops_limit(self):
        a = self.key('tok-hop-a', UID_DAEMON)
        b = self.key('tok-hop-b', UID_BIN)
        keys = [(a, UID_DAEMON), (b, UID_BIN)]
        token = self.issue_ok(UID_DAEMON, a, audience=self.uri(b), task_id='t', ttl=3600)
        for i in range(1, 9):
            path, uid = keys[i % 2]
            other = keys[(i + 1) % 2][0]
            token = self.issue_ok(uid, path, audience=self.uri(other), parent_token=token, ttl=3600 - 10 * i)
            self.assertEqual(len(self.decode(token, path)[1]['hops']), i)
        path, uid = keys[9 % 2]
        res = self.issue_as(uid, path, audience='z', parent_token=token, ttl=60)
        self.assertCallError(res, E_INVALID_ARGS)
        self.assertIn('hops', res.message)

    def test_delegation_more_refusals(self):
        a, b, parent = self.delegation_pair()
        a2 = self.key('tok-noscope-a', UID_DAEMON)
        noscope = self.issue_ok(UID_DAEMON, a2, audience=self.uri(b), task_id='t', ttl=600)
        message = self.assertCallOk(self.stack.call_as(UID_DAEMON, a, KEY_IFACE, 'SignMessage', 'aya{sv}',
                                                       [dbus.ByteArray(b'x'), h.options(audience=self.uri(b))])).bytes
        cases = {
            'another parent task': dict(audience='y', parent_token=parent, parent_task_id='other', ttl=60),
            'scope where the parent has none': dict(audience='y', parent_token=noscope, scope=['read'], ttl=60),
            'a signed message is no token': dict(audience='y', parent_token=message, ttl=60),
        }
        for what, req in cases.items():
            with self.subTest(what):
                self.assertCallError(self.issue_as(UID_BIN, b, **req), E_INVALID_ARGS)

    def test_delegation_forged_issuer(self):
        """A key holder signs, with plain Sign, a CWT that names another key as its issuer."""
        forger = self.key('tok-forger', UID_DAEMON)
        victim = self.key('tok-victim', UID_DAEMON)
        b = self.key('tok-forged-b', UID_BIN)
        now = int(time.time())
        claims = {1: self.uri(victim), 2: self.uri(victim), 3: self.uri(b), 4: now + 600, 5: now, 6: now,
                  7: os.urandom(16), 'task_id': 't', 'owner': OWNER}
        protected = h.det_encode({1: -7, 4: self.stack.prop(forger, 'TpmName')})
        payload = h.det_encode(claims)
        sig_structure = h.det_encode(['Signature1', protected, b'', payload])
        der = self.stack.sign_as(UID_DAEMON, forger, hashlib.sha256(sig_structure).digest())
        r, s_ = utils.decode_dss_signature(self.assertCallOk(der).bytes)
        token = b'\xd2' + h.det_encode([protected, {}, payload, r.to_bytes(32, 'big') + s_.to_bytes(32, 'big')])
        h.verify_cose_sign1(token, self.stack.prop(forger, 'PublicKey'))  # a valid signature...
        res = self.issue_as(UID_BIN, b, audience='y', parent_token=token, ttl=60)
        self.assertCallError(res, E_INVALID_ARGS)  # ...but not the issuer it names
        self.assertIn('claims issuer', res.message)

    def test_policy_peers(self):
        child = self.key('peerchild-1', UID_BIN)
        ok = self.key('peerparent-ok', UID_DAEMON)
        bad = self.key('peerparent-bad', UID_DAEMON)
        for parent_key, expected in ((ok, None), (bad, 'peer-other')):
            parent = self.issue_ok(UID_DAEMON, parent_key, audience=self.uri(child), task_id='t', ttl=600)
            res = self.issue_as(UID_BIN, child, audience='y', parent_token=parent, ttl=60)
            if expected is None:
                self.assertCallOk(res)
            else:
                self.assertCallError(res, E_POLICY_DENIED)
                self.assertIn("'%s'" % expected, res.message)
        # Without a parent there is no peer: the peers rule does not match.
        res = self.issue_as(UID_BIN, child, audience='y', task_id='t', ttl=60)
        self.assertCallError(res, E_POLICY_DENIED)
        self.assertIn("'peer-other'", res.message)

    # --- policy fields for tokens

    def test_policy_token_fields(self):
        path = self.key('pol-a', UID_DAEMON)
        host = self.uri(path).split('/')[2]
        ok = dict(audience='agentid://%s/peer-1' % host, task_id='t', scope=['read'], ttl=600)
        self.assertCallOk(self.issue_as(UID_DAEMON, path, **ok))
        refusals = {
            'audience': (dict(ok, audience='https://elsewhere'), 'no-other-tokens'),
            'scope': (dict(ok, scope=['read', 'admin']), 'no-other-tokens'),
            'ttl': (dict(ok, ttl=601), 'peer-tokens'),
        }
        for what, (req, rule) in refusals.items():
            with self.subTest(what):
                res = self.issue_as(UID_DAEMON, path, **req)
                self.assertCallError(res, E_POLICY_DENIED)
                self.assertIn("'%s'" % rule, res.message)
        self.assertIn('max_token_ttl', self.issue_as(UID_DAEMON, path, **dict(ok, ttl=601)).message)

    def test_agentidctl_issue_token(self):
        ctl = h.CTL_BINARY
        if not os.access(ctl, os.X_OK):
            self.skipTest('agentidctl not built')
        path = self.key('tok-ctl', 0)
        out = self.stack.path('tok-ctl.cwt')
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.stack.address)
        subprocess.run([ctl, 'issue-token', 'tok-ctl', '--audience=peer', '--task-id=t-ctl', '--scope=read',
                        '--scope=write', '--ttl=90', '--output=' + out], check=True, env=env)
        with open(out, 'rb') as f:
            _, c = self.decode(f.read(), path)
        self.assertEqual((c[3], c['task_id'], c[9], c[4] - c[6]), ('peer', 't-ctl', 'read write', 90))


if __name__ == '__main__':
    run_main()

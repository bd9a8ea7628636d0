#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": the registry of approved peers — Manager.AddPeer, RemovePeer, ListPeers — and
delegation from a peer's token (docs/dbus-api.md "Delegation"; governance/peers.h for the file).

A peer agent on another host is played by a software P-256 key (python3-cryptography): it signs parent
CWTs exactly in agentid's token format (deterministic CBOR claims, COSE_Sign1 with {1: -7, 4: kid};
docs/formats.md §8), addressed to a key of this daemon. The daemon runs with a policy whose `peers`
rule concerns keys named "peerpol-*"; everything else is allowed.

Run through meson or by hand as root: /usr/bin/python3 tests/dbus/test_peers.py [-k PATTERN]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import json
import stat
import subprocess
import time

from harness import (E_ACCESS_DENIED, E_INVALID_ARGS, KEY_IFACE, MANAGER_IFACE, MANAGER_PATH, UID_BIN,  # noqa: E402
                     UID_DAEMON)
from test_daemon import DaemonTestCase, run_main  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

E_POLICY_DENIED = 'org.agentid1.Error.PolicyDenied'
REMOTE_OWNER = 'remote-team@example.org'

POLICY = {
    'version': 1,
    'rules': [
        {'name': 'peer-ok', 'actions': ['issue_token'], 'keys': ['peerpol-*'], 'peers': ['agentid://*/remote-ok'],
         'effect': 'allow'},
        {'name': 'peer-deny', 'actions': ['issue_token'], 'keys': ['peerpol-*'], 'effect': 'deny'},
        {'name': 'peer-held', 'actions': ['issue_token'], 'keys': ['peerheld-*'], 'effect': 'confirm'},
        {'name': 'everything-else', 'effect': 'allow'},
    ],
}


def strv(items):
    return dbus.Array([dbus.String(s) for s in items], signature='s')


class RemotePeer:
    """An agent on another host: its own host-id, key name, P-256 key and TPM Name (kid)."""

    def __init__(self, name='remote-agent'):
        self.host_id = os.urandom(16).hex()
        self.uri = 'agentid://%s/%s' % (self.host_id, name)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = b'\x00\x0b' + os.urandom(32)

    def pem(self):
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, aud, iss=None, kid=None, key=None, task_id='remote-task', scope='read write', ttl=600,
              parent_task_id=None):
        """A parent CWT in agentid's format (DESIGN §5 "Task token"), signed by this peer (or `key`)."""
        now = int(time.time())
        iss = iss or self.uri
        claims = {1: iss, 2: iss, 3: aud, 4: now + ttl, 5: now - 5, 6: now - 5, 7: os.urandom(16),
                  'task_id': task_id, 'owner': REMOTE_OWNER}
        if scope:
            claims[9] = scope
        if parent_task_id:
            claims['parent_task_id'] = parent_task_id
        protected = h.det_encode({1: -7, 4: kid or self.kid})
        payload = h.det_encode(claims)
        sig_structure = h.det_encode(['Signature1', protected, b'', payload])
        der = (key or self.key).sign(sig_structure, ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        token = b'\xd2' + h.det_encode([protected, {}, payload, r.to_bytes(32, 'big') + s.to_bytes(32, 'big')])
        return token, claims


class PeerTests(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        cls.policy_path = cls.stack.path('policy.json')
        with open(cls.policy_path, 'w') as f:
            json.dump(POLICY, f)
        cls.stack.start_daemon(cls.daemon_args())
        cls.ctl = h.CTL_BINARY

    @classmethod
    def daemon_args(cls):
        return ('--policy=' + cls.policy_path,)

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()

    # --- helpers

    def key(self, name, uid):
        if name in [e[0] for e in self.stack.list_keys()]:
            return h.path_encode(name)
        return self.create(name, uid=uid)

    def uri(self, path):
        return self.stack.prop(path, 'Uri')

    def add_peer(self, peer, with_kid=True, uri=None):
        opts = h.options(kid=peer.kid) if with_kid else h.options()
        self.stack.manager('AddPeer', 'saya{sv}', [uri or peer.uri, dbus.ByteArray(peer.spki), opts])

    def add_peer_as(self, uid, uri, spki, **opts):
        return self.stack.call_as(uid, MANAGER_PATH, MANAGER_IFACE, 'AddPeer', 'saya{sv}',
                                  [dbus.String(uri), dbus.ByteArray(bytes(spki)), h.options(**opts)])

    def remove_peer(self, uri):
        self.stack.manager('RemovePeer', 's', [uri])

    def list_peers(self):
        return [tuple(h.unwrap(x)) for x in self.stack.manager('ListPeers')]

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

    def decode(self, token, path):
        props = self.stack.props(path)
        cose = h.verify_cose_sign1(token, props['PublicKey'])
        self.assertEqual(cose.protected, {1: -7, 4: props['TpmName']})
        return cose.payload_map()

    def child_key(self, name='peer-child'):
        return self.key(name, UID_BIN)

    def audit_records(self):
        from test_audit import read_log
        return [r for _, _, r in read_log(os.path.join(self.stack.state_dir, 'audit'))]

    def run_ctl(self, *args, check=True):
        if not os.access(self.ctl, os.X_OK):
            self.skipTest('agentidctl not built')
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.stack.address)
        res = subprocess.run([self.ctl] + list(args), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=60)
        if check:
            self.assertEqual(res.returncode, 0, 'agentidctl %s: %s %s' % (' '.join(args), res.stdout, res.stderr))
        return res

    def write(self, name, data):
        path = self.stack.path(name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    # --- the registry on the bus

    def test_unregistered_peer_refused(self):
        child = self.child_key()
        peer = RemotePeer()
        parent, _ = peer.token(self.uri(child))
        res = self.issue_as(UID_BIN, child, audience='downstream', parent_token=parent, ttl=60)
        self.assertCallError(res, E_INVALID_ARGS)
        self.assertIn('approved peer', res.message)

    def test_add_remove_only_admins(self):
        peer = RemotePeer()
        self.assertCallError(self.add_peer_as(UID_BIN, peer.uri, peer.spki, kid=peer.kid), E_ACCESS_DENIED)
        self.assertCallError(self.add_peer_as(UID_DAEMON, peer.uri, peer.spki), E_ACCESS_DENIED)
        self.assertNotIn(peer.uri, [p[0] for p in self.list_peers()])
        self.add_peer(peer)
        try:
            res = self.stack.call_as(UID_BIN, MANAGER_PATH, MANAGER_IFACE, 'RemovePeer', 's', [dbus.String(peer.uri)])
            self.assertCallError(res, E_ACCESS_DENIED)
            # Anyone may read the registry.
            res = self.assertCallOk(self.stack.call_as(UID_BIN, MANAGER_PATH, MANAGER_IFACE, 'ListPeers'))
            self.assertIn(peer.uri, [e[0] for e in res.value])
        finally:
            self.remove_peer(peer.uri)

    def test_add_peer_refusals(self):
        peer = RemotePeer()
        other = RemotePeer()
        p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        bad = {
            'not an agent URI': ('https://example.org/agent', peer.spki, {}),
            'upper-case host-id': ('agentid://%s/x' % peer.host_id.upper(), peer.spki, {}),
            'bad key name': ('agentid://%s/X' % peer.host_id, peer.spki, {}),
            'P-384 key': (peer.uri, p384, {}),
            'not a key': (peer.uri, b'\x30\x03\x02\x01\x01', {}),
            'short kid': (peer.uri, peer.spki, {'kid': peer.kid[:33]}),
            'kid not a SHA-256 Name': (peer.uri, peer.spki, {'kid': b'\x00\x0c' + peer.kid[2:]}),
            'unknown option': (peer.uri, peer.spki, {'colour': 'blue'}),
        }
        for what, (uri, spki, opts) in bad.items():
            with self.subTest(what):
                self.assertCallError(self.add_peer_as(0, uri, spki, **opts), E_INVALID_ARGS)
        self.add_peer(peer)
        try:
            with self.subTest('twice'):
                res = self.add_peer_as(0, peer.uri, other.spki)
                self.assertCallError(res, E_INVALID_ARGS)
                self.assertIn('already', res.message)
            with self.subTest('kid of another peer'):
                self.assertCallError(self.add_peer_as(0, other.uri, other.spki, kid=peer.kid), E_INVALID_ARGS)
        finally:
            self.remove_peer(peer.uri)
        with self.assertDBusError(E_INVALID_ARGS):
            self.remove_peer(peer.uri)

    def test_list_and_audit(self):
        peer = RemotePeer()
        nokid = RemotePeer('no-kid')
        # A compressed point is stored (and listed) in its canonical uncompressed form.
        point = peer.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.CompressedPoint)
        # SEQUENCE { AlgorithmIdentifier (as in the uncompressed form), BIT STRING 00 || point }
        compressed = b'\x30\x39' + peer.spki[2:23] + b'\x03\x22\x00' + point
        self.assertEqual(serialization.load_der_public_key(compressed).public_numbers(),
                         peer.key.public_key().public_numbers())
        self.stack.manager('AddPeer', 'saya{sv}', [peer.uri, dbus.ByteArray(compressed), h.options(kid=peer.kid)])
        self.add_peer(nokid, with_kid=False)
        try:
            listed = {e[0]: e for e in self.list_peers()}
            self.assertEqual(listed[peer.uri], (peer.uri, peer.spki, peer.kid))
            self.assertEqual(listed[nokid.uri], (nokid.uri, nokid.spki, b''))
            adds = [r for r in self.audit_records() if r['action'] == 'peer_add' and r.get('key') == peer.uri]
            self.assertEqual(len(adds), 1, adds)
            self.assertEqual((adds[0]['decision'], adds[0]['kid'], adds[0]['by_uid'], adds[0]['caller']['uid']),
                             ('done', peer.kid, 0, 0))
        finally:
            self.remove_peer(peer.uri)
            self.remove_peer(nokid.uri)
        removes = [r for r in self.audit_records() if r['action'] == 'peer_remove' and r.get('key') == peer.uri]
        self.assertEqual([r['decision'] for r in removes], ['done'])

    # --- delegation

    def test_delegation_from_peer(self):
        child = self.child_key()
        peer = RemotePeer()
        self.add_peer(peer)
        try:
            parent, p = peer.token(self.uri(child), parent_task_id='remote-parent')
            token = self.assertCallOk(self.issue_as(UID_BIN, child, audience='downstream', parent_token=parent,
                                                    scope=['read'], ttl=60)).bytes
            c = self.decode(token, child)
            self.assertEqual((c[1], c[3], c[9]), (self.uri(child), 'downstream', 'read'))
            self.assertEqual((c['task_id'], c['parent_task_id']), ('remote-task', 'remote-parent'))
            self.assertEqual(c['hops'], [[peer.uri, p[7], peer.kid]], 'the hop names the peer: iss, cti, kid')
            self.assertLessEqual(c[4], p[4])

            # The other parent checks stay: scope narrowing, lifetime, audience, task.
            refusals = {
                'widened scope': (child, dict(audience='y', parent_token=parent, scope=['admin'], ttl=60)),
                'outlives the parent': (child, dict(audience='y', parent_token=parent, ttl=100000)),
                'another task': (child, dict(audience='y', parent_token=parent, task_id='other', ttl=60)),
                'addressed to another key': (self.key('peer-other-child', UID_BIN),
                                             dict(audience='y', parent_token=parent, ttl=60)),
            }
            for what, (path, req) in refusals.items():
                with self.subTest(what):
                    self.assertCallError(self.issue_as(UID_BIN, path, **req), E_INVALID_ARGS)
            expired, _ = peer.token(self.uri(child), ttl=1)
            time.sleep(1.1)
            with self.subTest('expired'):
                self.assertCallError(self.issue_as(UID_BIN, child, audience='y', parent_token=expired, ttl=1),
                                     E_INVALID_ARGS)

            # And the child can be delegated on, on this host: the chain keeps the peer's hop.
            grandchild_key = self.key('peer-grandchild', UID_DAEMON)
            token2 = self.assertCallOk(self.issue_as(UID_BIN, child, audience=self.uri(grandchild_key),
                                                     parent_token=parent, ttl=60)).bytes
            c2 = self.decode(token2, child)
            g = self.decode(self.assertCallOk(self.issue_as(UID_DAEMON, grandchild_key, audience='z',
                                                            parent_token=token2, ttl=30)).bytes, grandchild_key)
            self.assertEqual(g['hops'], [[peer.uri, p[7], peer.kid],
                                         [self.uri(child), c2[7], self.stack.prop(child, 'TpmName')]])
        finally:
            self.remove_peer(peer.uri)

    def test_peer_token_must_be_the_peers(self):
        child = self.child_key()
        peer = RemotePeer()
        other = RemotePeer()
        local = self.key('peer-local-parent', UID_DAEMON)
        self.add_peer(peer)
        self.add_peer(other, with_kid=False)
        try:
            aud = self.uri(child)
            cases = {
                # kid found, key verifies, but the claimed issuer is another URI.
                'iss another peer': (peer.token(aud, iss=other.uri)[0], 'claims issuer'),
                'iss a key of this host': (peer.token(aud, iss=self.uri(local))[0], 'claims issuer'),
                'iss an unknown agent': (peer.token(aud, iss='agentid://%s/ghost' % peer.host_id)[0],
                                         'claims issuer'),
                # iss found, key verifies, but the kid is not the one approved.
                'kid differs': (peer.token(aud, kid=b'\x00\x0b' + os.urandom(32))[0], 'kid'),
                # Signed by another key than the approved one.
                'another key, peer kid': (peer.token(aud, key=other.key)[0], 'does not verify'),
                'another key, other kid': (peer.token(aud, kid=b'\x00\x0b' + os.urandom(32),
                                                      key=ec.generate_private_key(ec.SECP256R1()))[0],
                                           'does not verify'),
                # A peer approved without kid cannot speak for one approved with a kid, either.
                'other peer claims peer': (other.token(aud, iss=peer.uri, kid=other.kid)[0], 'does not verify'),
            }
            for what, (token, message) in cases.items():
                with self.subTest(what):
                    res = self.issue_as(UID_BIN, child, audience='y', parent_token=token, ttl=60)
                    self.assertCallError(res, E_INVALID_ARGS)
                    self.assertIn(message, res.message)
            # A peer approved without kid: any kid, found by its iss.
            token, p = other.token(aud, kid=b'\x00\x0b' + os.urandom(32))
            c = self.decode(self.assertCallOk(self.issue_as(UID_BIN, child, audience='y', parent_token=token,
                                                            ttl=60)).bytes, child)
            self.assertEqual(c['hops'], [[other.uri, p[7], h.decode_cose_sign1(token).protected[4]]])
        finally:
            self.remove_peer(peer.uri)
            self.remove_peer(other.uri)

    def test_policy_peers(self):
        child = self.key('peerpol-child', UID_BIN)
        ok = RemotePeer('remote-ok')
        bad = RemotePeer('remote-bad')
        self.add_peer(ok)
        self.add_peer(bad)
        try:
            token, _ = ok.token(self.uri(child))
            self.assertCallOk(self.issue_as(UID_BIN, child, audience='y', parent_token=token, ttl=60))
            token, _ = bad.token(self.uri(child))
            res = self.issue_as(UID_BIN, child, audience='y', parent_token=token, ttl=60)
            self.assertCallError(res, E_POLICY_DENIED)
            self.assertIn("'peer-deny'", res.message)
        finally:
            self.remove_peer(ok.uri)
            self.remove_peer(bad.uri)

    def test_removed_peer_refused(self):
        child = self.child_key()
        peer = RemotePeer()
        self.add_peer(peer)
        parent, _ = peer.token(self.uri(child))
        self.assertCallOk(self.issue_as(UID_BIN, child, audience='y', parent_token=parent, ttl=60))
        self.remove_peer(peer.uri)
        self.assertNotIn(peer.uri, [e[0] for e in self.list_peers()])
        res = self.issue_as(UID_BIN, child, audience='y', parent_token=parent, ttl=60)
        self.assertCallError(res, E_INVALID_ARGS)
        self.assertIn('approved peer', res.message)

    def test_removed_peer_fails_held_child(self):
        """A child held for approval when its parent's peer is removed is not signed on approval."""
        child = self.key('peerheld-child', UID_BIN)
        peer = RemotePeer('remote-held')
        self.add_peer(peer)
        parent, _ = peer.token(self.uri(child))
        proc = self.stack.call_as(UID_BIN, child, KEY_IFACE, 'IssueToken', 'a{sv}',
                                  [h.options(audience='y', parent_token=dbus.ByteArray(parent), ttl=60)],
                                  interactive=True, background=True)
        deadline = time.monotonic() + 10
        while True:
            held = [a for a in h.unwrap(self.stack.manager('ListApprovals')) if a[1] == 'peerheld-child']
            if held:
                break
            self.assertLess(time.monotonic(), deadline, 'the child token is not held for approval')
            time.sleep(0.05)
        self.remove_peer(peer.uri)
        # Both the approver and the caller learn why nothing was signed.
        with self.assertDBusError('org.agentid1.Error.KeyDestroyed'):
            self.stack.manager('Approve', 'sb', [held[0][0], True])
        res = h.Stack.finish_call(proc)
        self.assertCallError(res, 'org.agentid1.Error.KeyDestroyed')
        self.assertIn('peer was removed', res.message)

    def test_registry_survives_restart(self):
        child = self.child_key()
        peer = RemotePeer()
        nokid = RemotePeer('survivor-no-kid')
        self.add_peer(peer)
        self.add_peer(nokid, with_kid=False)
        try:
            path = self.stack.path('state', 'peers')
            st = os.stat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            with open(path, 'rb') as f:
                reg = h.cbor_strict_loads(f.read())
            self.assertEqual(set(reg), {'v', 'peers'})
            self.assertEqual(reg['v'], 1)
            uris = [e['uri'] for e in reg['peers']]
            self.assertEqual(uris, sorted(uris), 'entries sorted by URI')
            entry = [e for e in reg['peers'] if e['uri'] == peer.uri][0]
            self.assertEqual(set(entry), {'uri', 'spki', 'kid', 'added', 'by_uid'})
            self.assertEqual((entry['spki'], entry['kid'], entry['by_uid']), (peer.spki, peer.kid, 0))
            self.assertNear(entry['added'], time.time(), 60, 'added')
            self.assertNotIn('kid', [e for e in reg['peers'] if e['uri'] == nokid.uri][0])

            self.stack.restart_daemon(self.daemon_args())
            listed = {e[0]: e for e in self.list_peers()}
            self.assertEqual(listed[peer.uri], (peer.uri, peer.spki, peer.kid))
            self.assertEqual(listed[nokid.uri], (nokid.uri, nokid.spki, b''))
            parent, _ = peer.token(self.uri(child))
            self.assertCallOk(self.issue_as(UID_BIN, child, audience='y', parent_token=parent, ttl=60))
        finally:
            self.remove_peer(peer.uri)
            self.remove_peer(nokid.uri)

    def test_damaged_registry_stops_start(self):
        peer = RemotePeer()
        self.add_peer(peer)
        path = self.stack.path('state', 'peers')
        self.stack.stop_daemon()
        with open(path, 'rb') as f:
            good = f.read()
        try:
            for what, data in (('truncated', good[:-1]), ('garbage', b'\xff' * 16),
                               ('not deterministic', good[:-1] + b'\x18' + good[-1:] if good[-1] < 24 else None)):
                if data is None:
                    continue
                with self.subTest(what):
                    with open(path, 'wb') as f:
                        f.write(data)
                    mark = self.stack.daemon_log_size()
                    with self.assertRaises(h.StackError):
                        self.stack.start_daemon(self.daemon_args())
                    self.assertIn('peer registry', self.stack.daemon_log_tail(40, since=mark))
        finally:
            with open(path, 'wb') as f:
                f.write(good)
            os.chmod(path, 0o600)
            self.stack.start_daemon(self.daemon_args())
        self.assertIn(peer.uri, [e[0] for e in self.list_peers()])
        self.remove_peer(peer.uri)

    # --- agentidctl

    def test_agentidctl_peers(self):
        child = self.child_key()
        peer = RemotePeer()
        pem = self.write('peer.pem', peer.pem())
        der = self.write('peer.der', peer.spki)

        self.run_ctl('peers', 'add', peer.uri, '--public-key=' + pem, '--kid=' + peer.kid.hex())
        self.assertIn((peer.uri, peer.spki, peer.kid), self.list_peers())
        parent, _ = peer.token(self.uri(child))
        self.assertCallOk(self.issue_as(UID_BIN, child, audience='y', parent_token=parent, ttl=60))

        nokid = RemotePeer('ctl-no-kid')
        self.run_ctl('peers', 'add', nokid.uri, '--public-key=' + self.write('nokid.der', nokid.spki))
        self.assertIn((nokid.uri, nokid.spki, b''), self.list_peers())

        # Refusals: twice, a bad key file, no key, and not as an admin.
        res = self.run_ctl('peers', 'add', peer.uri, '--public-key=' + der, check=False)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn('InvalidArgs', res.stderr)
        res = self.run_ctl('peers', 'add', 'agentid://%s/x' % peer.host_id, '--public-key=' + self.write('j', b'x'),
                           check=False)
        self.assertEqual(res.returncode, 2, res.stderr)  # a bad input file, as elsewhere in agentidctl
        self.assertIn('not a public key', res.stderr)
        res = self.run_ctl('peers', 'add', peer.uri, check=False)
        self.assertEqual(res.returncode, 2, res.stderr)
        res = self.run_ctl('peers', 'frobnicate', check=False)
        self.assertEqual(res.returncode, 2, res.stderr)

        # list: a table and JSON.
        res = self.run_ctl('peers', 'list')
        self.assertIn(peer.uri, res.stdout)
        self.assertIn(peer.kid.hex(), res.stdout)
        listed = {e['uri']: e for e in json.loads(self.run_ctl('peers', 'list', '--json').stdout)}
        self.assertEqual(listed[peer.uri]['public_key'], peer.spki.hex())
        self.assertEqual(listed[peer.uri]['kid'], peer.kid.hex())
        self.assertIsNone(listed[nokid.uri]['kid'])

        # export: ListPeers as the registry file format (governance/peers.h).
        out = self.stack.path('peers-export.cbor')
        self.run_ctl('peers', 'export', '--output=' + out)
        with open(out, 'rb') as f:
            reg = h.cbor_strict_loads(f.read())
        self.assertEqual(reg['v'], 1)
        exported = {e['uri']: e for e in reg['peers']}
        self.assertEqual(set(exported), {e[0] for e in self.list_peers()})
        self.assertEqual((exported[peer.uri]['spki'], exported[peer.uri]['kid']), (peer.spki, peer.kid))
        self.assertNotIn('kid', exported[nokid.uri])

        # remove
        self.run_ctl('peers', 'remove', peer.uri)
        self.run_ctl('peers', 'remove', nokid.uri)
        self.assertNotIn(peer.uri, [e[0] for e in self.list_peers()])
        res = self.run_ctl('peers', 'remove', peer.uri, check=False)
        self.assertEqual(res.returncode, 1)
        self.assertCallError(self.issue_as(UID_BIN, child, audience='y', parent_token=parent, ttl=60),
                             E_INVALID_ARGS)

    def test_agentidctl_peers_from_evidence(self):
        """A real agent key plays the peer: its evidence is verified (subject, nonce, AK); agentidd then
        refuses it, since a key of this host is no peer."""
        agent = self.key('peer-ev-agent', UID_DAEMON)
        uri = self.uri(agent)
        nonce = os.urandom(32)
        evidence = bytes(self.stack.key(agent, 'Attest', 'aya{sv}', [dbus.ByteArray(nonce), h.options()]))
        ak_pub, _, _ = self.stack.manager('GetAttestationKey')
        ev = self.write('peer-ev.cbor', evidence)
        ak = self.write('peer-ak.bin', bytes(ak_pub))

        # The evidence's subject is another URI; a wrong nonce; a missing AK.
        res = self.run_ctl('peers', 'add', 'agentid://%s/someone-else' % uri.split('/')[2], '--evidence=' + ev,
                           '--nonce=' + nonce.hex(), '--trusted-ak=' + ak, check=False)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn('not for', res.stderr)
        res = self.run_ctl('peers', 'add', uri, '--evidence=' + ev, '--nonce=' + os.urandom(32).hex(),
                           '--trusted-ak=' + ak, check=False)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn('does not verify', res.stderr)
        res = self.run_ctl('peers', 'add', uri, '--evidence=' + ev, '--nonce=' + nonce.hex(), check=False)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertNotIn(uri, [e[0] for e in self.list_peers()])

        res = self.run_ctl('peers', 'add', uri, '--evidence=' + ev, '--nonce=' + nonce.hex(), '--trusted-ak=' + ak,
                           check=False)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn('names a key of this host', res.stderr)
        self.assertNotIn(uri, [e[0] for e in self.list_peers()])


class TwoHostTests(DaemonTestCase):
    """Two agentidd on two software TPMs: the second TPM's owner hierarchy is cleared first, so its
    storage root key, and with it the host id, differ from the first's (a second host)."""

    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(start_daemon=False)
        cls.stack.start()
        cls.stack.start_daemon()
        cls.remote = h.Stack(start_daemon=False)
        cls.remote.start()
        cls.remote.tpm_tool('tpm2_clear', '-c', 'p')
        cls.remote.start_daemon()
        cls.ctl = h.CTL_BINARY

    @classmethod
    def tearDownClass(cls):
        try:
            cls.remote.shut_down()
        finally:
            cls.stack.shut_down()

    def test_peer_approved_from_evidence_delegates(self):
        """The remote agent is approved from its TPM evidence (agentidctl peers add --evidence); its
        token then parents a token of a local agent, whose hop names the remote agent."""
        if not os.access(self.ctl, os.X_OK):
            self.skipTest('agentidctl not built')
        local = self.create('local-payments', uid=UID_BIN)
        remote = self.remote.create_key('remote-planner', owner=REMOTE_OWNER, uid=dbus.UInt32(UID_DAEMON))
        local_uri, remote_uri = self.stack.prop(local, 'Uri'), self.remote.prop(remote, 'Uri')
        self.assertNotEqual(local_uri.split('/')[2], remote_uri.split('/')[2], 'two hosts, two host ids')

        # What the administrator receives from the other host: evidence for a nonce of theirs, and
        # that host's AK, which they enrolled (here: taken as is).
        nonce = os.urandom(32)
        evidence = bytes(self.remote.key(remote, 'Attest', 'aya{sv}', [dbus.ByteArray(nonce), h.options()]))
        ak_pub = bytes(self.remote.manager('GetAttestationKey')[0])
        workdir = self.stack.path('two-hosts')
        os.mkdir(workdir)
        ev, ak = os.path.join(workdir, 'evidence.cbor'), os.path.join(workdir, 'ak.tpmt')
        for path, data in ((ev, evidence), (ak, ak_pub)):
            with open(path, 'wb') as f:
                f.write(data)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.stack.address)
        res = subprocess.run([self.ctl, 'peers', 'add', remote_uri, '--evidence=' + ev, '--nonce=' + nonce.hex(),
                              '--trusted-ak=' + ak], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        peers = [tuple(h.unwrap(x)) for x in self.stack.manager('ListPeers')]
        self.assertEqual([p[0] for p in peers], [remote_uri])
        try:
            # The remote agent hands the local one a token; the local agent delegates from it.
            parent = self.remote.call_as(UID_DAEMON, remote, KEY_IFACE, 'IssueToken', 'a{sv}', [h.options(
                audience=local_uri, task_id='cross-host-1', scope=dbus.Array(['pay', 'read'], signature='s'),
                ttl=dbus.UInt64(300))])
            self.assertCallOk(parent)
            child = self.stack.call_as(UID_BIN, local, KEY_IFACE, 'IssueToken', 'a{sv}', [h.options(
                audience='bank-api', parent_token=dbus.ByteArray(parent.bytes),
                scope=dbus.Array(['pay'], signature='s'), ttl=dbus.UInt64(60))])
            self.assertCallOk(child)
            claims = h.verify_cose_sign1(child.bytes, self.stack.prop(local, 'PublicKey')).payload_map()
            self.assertEqual((claims[1], claims[3], claims['task_id']), (local_uri, 'bank-api', 'cross-host-1'))
            parent_claims = h.verify_cose_sign1(parent.bytes, self.remote.prop(remote, 'PublicKey')).payload_map()
            self.assertEqual(claims['hops'], [[remote_uri, parent_claims[7], self.remote.prop(remote, 'TpmName')]])
        finally:
            self.stack.manager('RemovePeer', 's', [remote_uri])

        # Withdrawn: the same parent no longer delegates.
        res = self.stack.call_as(UID_BIN, local, KEY_IFACE, 'IssueToken', 'a{sv}', [h.options(
            audience='bank-api', parent_token=dbus.ByteArray(parent.bytes), ttl=dbus.UInt64(60))])
        self.assertCallError(res, E_INVALID_ARGS)


if __name__ == '__main__':
    run_main()

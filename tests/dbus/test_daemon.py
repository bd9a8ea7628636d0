#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Suite "dbus": agentidd on a private system bus with a private swtpm (DESIGN §3, docs/dbus-api.md).

Run through meson (`meson test -C build --suite dbus`) or by hand as root:
    /usr/bin/python3 tests/dbus/test_daemon.py [-k PATTERN] [Class.test_name ...]
(by hand the daemon is build/dbus/agentidd unless AGENTID_TEST_DAEMON says otherwise; see harness.py).
Calls as other users run client.py under setpriv as existing accounts: daemon (1), bin (2), sys (3, an
admin through --admin-group=sys), nobody (65534). Exits 77 (skipped) when not run as root.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (first: it re-executes Debian's python3 if python3-dbus is missing)
import dbus  # noqa: E402

import contextlib
import grp
import hashlib
import signal
import time
import unittest
import xml.etree.ElementTree as ET

from harness import (E_ACCESS_DENIED, E_INVALID_ARGS, E_KEY_DESTROYED, E_KEY_EXISTS,  # noqa: E402
                     E_KEY_EXPIRED, E_NO_SUCH_KEY, E_UNKNOWN_OBJECT, KEY_IFACE, MANAGER_IFACE, MANAGER_PATH,
                     UID_BIN, UID_DAEMON, UID_NOBODY, UID_SYS)

OWNER = 'agent-platform@example.com'
ADMIN_GROUP = 'sys'  # uid 3 ("sys", primary group sys) is an admin in MainTests
KEY_PROPS = {'Name': 's', 'Owner': 's', 'Uid': 'u', 'Uri': 's', 'Algorithm': 's', 'PublicKey': 'ay',
             'TpmName': 'ay', 'CreatedAt': 't', 'NotAfter': 't', 'State': 's', 'Description': 's',
             'ExeDigest': 'ay'}
MANAGER_PROPS = {'HostPublicKey': 'ay', 'Version': 's', 'TpmManufacturer': 's', 'KeyCount': 'u',
                 'QueueDepth': 'u'}
RECEIPT_KEYS = {'type', 'name', 'uri', 'kid', 'spki_sha256', 'owner', 'reason', 'time', 'by_uid'}


def sha256(b):
    return hashlib.sha256(b).digest()


def python_sha256():
    return h.file_sha256(os.path.realpath(h.SYSTEM_PYTHON))


def introspect_interfaces(xml):
    """Introspection XML -> {interface: {'method': {name: [(arg name, type, direction)]},
    'signal': {...}, 'property': {name: type}}}, plus the child node names under key None."""
    root = ET.fromstring(xml)
    out = {None: [n.get('name') for n in root.findall('node')]}
    for iface in root.findall('interface'):
        d = {'method': {}, 'signal': {}, 'property': {}}
        for kind in ('method', 'signal'):
            for m in iface.findall(kind):
                d[kind][m.get('name')] = [(a.get('name'), a.get('type'), a.get('direction', 'out' if kind == 'signal'
                                                                             else 'in'))
                                          for a in m.findall('arg')]
        for p in iface.findall('property'):
            d['property'][p.get('name')] = p.get('type')
        out[iface.get('name')] = d
    return out


class DaemonTestCase(unittest.TestCase):
    """Helpers shared by the test classes; self.stack is the harness Stack."""

    maxDiff = None
    stack = None
    log_mark = 0  # daemon.log offset when the test started (failures print the log from there)

    def setUp(self):
        if self.stack is not None and not self.stack.closed:
            self.log_mark = self.stack.daemon_log_size()

    # --- assertions

    @contextlib.contextmanager
    def assertDBusError(self, *names):
        try:
            yield
        except dbus.exceptions.DBusException as e:
            self.assertIn(e.get_dbus_name(), names, 'wrong D-Bus error (message: %s)' % e.get_dbus_message())
        else:
            self.fail('expected D-Bus error %s, the call succeeded' % ' or '.join(names))

    def assertCallError(self, res, *names):
        self.assertFalse(res.ok, 'expected %s, got success %r' % (' or '.join(names), res))
        self.assertIn(res.error, names, 'wrong D-Bus error: %r' % (res,))

    def assertCallOk(self, res):
        self.assertTrue(res.ok, 'call failed: %r' % (res,))
        return res

    def assertNear(self, value, expected, tolerance, what):
        self.assertLessEqual(abs(value - expected), tolerance, '%s: %r not within %r of %r' %
                             (what, value, tolerance, expected))

    # --- calls

    def create(self, name, owner=OWNER, **opts):
        path = self.stack.create_key(name, owner=owner, **opts)
        self.assertEqual(path, h.path_encode(name), 'object path of key %r' % name)
        return path

    def key_count(self):
        return self.stack.manager_props()['KeyCount']

    def list_entry(self, name):
        entries = [e for e in self.stack.list_keys() if e[0] == name]
        self.assertEqual(len(entries), 1, 'ListKeys entries for %r: %r' % (name, entries))
        return entries[0]

    def create_as(self, caller_uid, name, **opts):
        return self.stack.call_as(caller_uid, MANAGER_PATH, MANAGER_IFACE, 'CreateKey', 'sa{sv}',
                                  [dbus.String(name), h.options(**opts)])

    def destroy_as(self, caller_uid, path, reason):
        return self.stack.call_as(caller_uid, path, KEY_IFACE, 'Destroy', 's', [dbus.String(reason)])

    # --- checks of returned objects

    def check_receipt(self, receipt, before, reason, by_uid):
        """A destroy receipt (docs/formats.md §4) against the key's properties read before Destroy."""
        host = self.stack.manager_props()['HostPublicKey']
        cose = h.verify_cose_sign1(receipt, host)
        self.assertEqual(set(cose.protected), {1, 4}, 'receipt protected header labels')
        kid = cose.protected[4]
        self.assertEqual((len(kid), kid[:2]), (34, b'\x00\x0b'), 'receipt kid is a TPM Name (the host key)')
        self.assertNotEqual(kid, before['TpmName'], 'receipt must be signed by the host key, not the agent key')
        p = cose.payload_map()
        self.assertIsInstance(p, dict)
        self.assertTrue(RECEIPT_KEYS <= set(p) <= RECEIPT_KEYS | {'audit_seq'}, 'receipt keys %r' % sorted(p))
        self.assertEqual(p['type'], 'destroy')
        self.assertEqual(p['name'], before['Name'])
        self.assertEqual(p['uri'], before['Uri'])
        self.assertEqual(p['kid'], before['TpmName'])
        self.assertEqual(p['spki_sha256'], sha256(before['PublicKey']))
        self.assertEqual(p['owner'], before['Owner'])
        self.assertEqual(p['reason'], reason)
        self.assertEqual(p['by_uid'], by_uid)
        self.assertIsInstance(p['time'], int)
        self.assertNear(p['time'], time.time(), 60, 'receipt time')
        return p

    def check_sign_message(self, blob, props, payload, task_id=None, parent_task_id=None, audience=None):
        cose = h.verify_cose_sign1(blob, props['PublicKey'])
        self.assertEqual(set(cose.protected), {1, 4, 15}, 'message protected header labels')
        self.assertEqual(cose.protected[4], props['TpmName'], 'kid is the key\'s TpmName')
        self.assertEqual(cose.payload, payload)
        claims = cose.protected[15]
        expected = {6}
        for label, value in ((3, audience), ('task_id', task_id), ('parent_task_id', parent_task_id)):
            if value is not None:
                expected.add(label)
                self.assertEqual(claims.get(label), value, 'claim %r' % (label,))
        self.assertEqual(set(claims), expected, 'claims present (absent ones must be omitted)')
        self.assertIsInstance(claims[6], int)
        self.assertNear(claims[6], time.time(), 60, 'iat')
        return cose


class LogTailResult(unittest.TextTestResult):
    """Prints the daemon's log tail under every failure and makes the stack dump its logs at the end."""

    def _dump(self, test):
        stack = getattr(test, 'stack', None)
        if isinstance(stack, h.Stack) and stack.dir and not stack.closed:
            stack.failed = True
            since = getattr(test, 'log_mark', 0)
            self.stream.writeln('\n----- agentidd log since %s started -----\n%s\n-----' %
                                (test.id(), stack.daemon_log_tail(40, since)))
            self.stream.flush()

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._dump(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test)


class SharedStackTestCase(DaemonTestCase):
    """One stack for the whole class; tests use distinct key names and never restart the daemon."""

    DAEMON_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.stack = h.Stack(daemon_args=cls.DAEMON_ARGS)
        cls.stack.start()

    @classmethod
    def tearDownClass(cls):
        cls.stack.shut_down()


class MainTests(SharedStackTestCase):
    DAEMON_ARGS = ('--admin-group=' + ADMIN_GROUP,)

    # ------------------------------------------------------------ manager

    def test_manager_properties(self):
        props = self.stack.manager_props()
        self.assertTrue(set(MANAGER_PROPS) <= set(props), 'properties %r' % sorted(props))
        raw = self.stack.call(MANAGER_PATH, h.PROPS_IFACE, 'GetAll', 's', [MANAGER_IFACE])
        self.assertIsInstance(raw['KeyCount'], dbus.UInt32)
        self.assertIsInstance(raw['QueueDepth'], dbus.UInt32)
        self.assertTrue(props['Version'])
        self.assertEqual(props['TpmManufacturer'], 'IBM')
        h.load_spki(props['HostPublicKey'])
        # Anyone may read.
        res = self.stack.call_as(UID_NOBODY, MANAGER_PATH, h.PROPS_IFACE, 'Get', 'ss',
                                 [dbus.String(MANAGER_IFACE), dbus.String('HostPublicKey')])
        self.assertEqual(self.assertCallOk(res).bytes, props['HostPublicKey'])

    def test_introspect_manager(self):
        info = introspect_interfaces(self.stack.introspect(MANAGER_PATH))
        self.assertIn('org.freedesktop.DBus.ObjectManager', info)
        self.assertIn('key', info[None], 'child node "key" of /org/agentid1')
        m = info[MANAGER_IFACE]
        self.assertEqual(m['method']['CreateKey'][:2], [('name', 's', 'in'), ('options', 'a{sv}', 'in')])
        self.assertEqual([(t, d) for _, t, d in m['method']['CreateKey'][2:]], [('o', 'out')])
        self.assertEqual([(t, d) for _, t, d in m['method']['ListKeys']], [('a(sos)', 'out')])
        self.assertEqual(m['method']['GetKey'][0], ('name', 's', 'in'))
        self.assertEqual([(t, d) for _, t, d in m['method']['GetKey']], [('s', 'in'), ('o', 'out')])
        self.assertEqual(m['signal']['KeyCreated'], [('name', 's', 'out'), ('key', 'o', 'out')])
        self.assertEqual(m['signal']['KeyDestroyed'],
                         [('name', 's', 'out'), ('key', 'o', 'out'), ('reason', 's', 'out')])
        for name, typ in MANAGER_PROPS.items():
            self.assertEqual(m['property'].get(name), typ, 'property %s' % name)
        self.assert_all_args_named(m)

    def assert_all_args_named(self, iface):
        for kind in ('method', 'signal'):
            for member, args in iface[kind].items():
                for name, typ, direction in args:
                    self.assertTrue(name, '%s %s: unnamed %s argument of type %s' % (kind, member, direction, typ))

    def test_introspect_key(self):
        path = self.create('introspect-me')
        xml = self.stack.introspect(path)
        self.assertIn('<arg type="ay" name="digest" direction="in"/>', xml)
        info = introspect_interfaces(xml)
        k = info[KEY_IFACE]
        self.assertEqual(k['method']['Sign'][:2], [('digest', 'ay', 'in'), ('context', 'a{sv}', 'in')])
        self.assertEqual([(t, d) for _, t, d in k['method']['Sign'][2:]], [('ay', 'out')])
        self.assertEqual(k['method']['SignMessage'][:2], [('payload', 'ay', 'in'), ('context', 'a{sv}', 'in')])
        self.assertEqual([(t, d) for _, t, d in k['method']['SignMessage'][2:]], [('ay', 'out')])
        self.assertEqual(k['method']['Destroy'][0], ('reason', 's', 'in'))
        self.assertEqual([(t, d) for _, t, d in k['method']['Destroy']], [('s', 'in'), ('ay', 'out')])
        for name, typ in KEY_PROPS.items():
            self.assertEqual(k['property'].get(name), typ, 'property %s' % name)
        self.assert_all_args_named(k)

    def test_node_tree_and_managed_objects(self):
        names = ['tree-a', 'tree.b', 'tree_c']
        paths = [self.create(n, description='node tree %d' % i) for i, n in enumerate(names)]
        gone = self.create('tree-gone')
        self.stack.destroy(gone, 'node tree test')

        children = introspect_interfaces(self.stack.introspect('/org/agentid1/key'))[None]
        for p in paths:
            self.assertIn(p.rsplit('/', 1)[1], children, 'node list of /org/agentid1/key')
        self.assertNotIn(gone.rsplit('/', 1)[1], children, 'a destroyed key is no node')

        objects = h.unwrap(self.stack.call(MANAGER_PATH, h.OM_IFACE, 'GetManagedObjects'))
        for name, path in zip(names, paths):
            self.assertIn(path, objects)
            self.assertIn(KEY_IFACE, objects[path])
            self.assertEqual(objects[path][KEY_IFACE], self.stack.props(path), 'managed object %s' % path)
            self.assertEqual(objects[path][KEY_IFACE]['Name'], name)
        self.assertNotIn(gone, objects)
        # Every key that is not destroyed is there; nothing else below the key prefix.
        listed = {p for n, p, s in self.stack.list_keys() if s != 'destroyed'}
        managed = {p for p in objects if p.startswith(h.KEY_PATH_PREFIX)}
        self.assertEqual(managed, listed)
        for path in managed:
            self.assertLessEqual(set(KEY_PROPS), set(objects[path][KEY_IFACE]), 'properties of %s' % path)

    # ------------------------------------------------------------ CreateKey

    def test_create_key(self):
        st = self.stack
        count = self.key_count()
        mark = st.monitor_mark()
        t0 = time.time()
        path = self.create('create-ok', description='invoices for Q3', ttl=3600, uid=UID_BIN)
        t1 = time.time()
        self.assertEqual(path, '/org/agentid1/key/create_2dok')
        self.assertEqual(str(st.manager('GetKey', 's', ['create-ok'])), path)

        p = st.props(path)
        self.assertEqual(set(KEY_PROPS) - set(p), set(), 'missing properties')
        raw = st.call(path, h.PROPS_IFACE, 'GetAll', 's', [KEY_IFACE])
        self.assertIsInstance(raw['Uid'], dbus.UInt32)
        self.assertIsInstance(raw['CreatedAt'], dbus.UInt64)
        self.assertIsInstance(raw['NotAfter'], dbus.UInt64)
        self.assertEqual(p['Name'], 'create-ok')
        self.assertEqual(p['Owner'], OWNER)
        self.assertEqual(p['Uid'], UID_BIN)
        self.assertRegex(p['Uri'], r'^agentid://[0-9a-f]{32}/create-ok$')
        self.assertEqual(p['Algorithm'], 'ES256')
        h.load_spki(p['PublicKey'])
        self.assertEqual(len(p['TpmName']), 34)
        self.assertEqual(p['TpmName'][:2], b'\x00\x0b')
        self.assertGreaterEqual(p['CreatedAt'], int(t0 - 2) * 10**6)
        self.assertLessEqual(p['CreatedAt'], int(t1 + 2) * 10**6)
        self.assertNear(p['NotAfter'], p['CreatedAt'] + 3600 * 10**6, 2 * 10**6, 'NotAfter')
        self.assertEqual(p['State'], 'active')
        self.assertEqual(p['Description'], 'invoices for Q3')
        self.assertEqual(p['ExeDigest'], b'')
        self.assertEqual(self.key_count(), count + 1)
        self.assertEqual(self.list_entry('create-ok'), ('create-ok', path, 'active'))

        sig = st.wait_signal('KeyCreated', mark, args=['create-ok', path], path=MANAGER_PATH)
        self.assertIsNotNone(sig, 'KeyCreated("create-ok", %s) signal' % path)
        self.assertEqual(sig.get('interface'), MANAGER_IFACE)

        # Reads are for anyone; the key's own uid and others see the same.
        res = st.call_as(UID_NOBODY, path, h.PROPS_IFACE, 'Get', 'ss', [dbus.String(KEY_IFACE), dbus.String('Owner')])
        self.assertEqual(self.assertCallOk(res).value, OWNER)
        res = st.call_as(UID_NOBODY, MANAGER_PATH, MANAGER_IFACE, 'ListKeys')
        self.assertIn(['create-ok', path, 'active'], self.assertCallOk(res).value)

    def test_object_manager_signals(self):
        st = self.stack
        mark = st.monitor_mark()
        path = self.create('om-signals')
        self.assertIsNotNone(st.wait_signal('InterfacesAdded', mark, args=[path], path=MANAGER_PATH),
                             'InterfacesAdded for %s' % path)
        mark = st.monitor_mark()
        st.destroy(path, 'om test')
        self.assertIsNotNone(st.wait_signal('InterfacesRemoved', mark, args=[path], path=MANAGER_PATH),
                             'InterfacesRemoved for %s' % path)

    def test_create_key_defaults(self):
        path = self.create('defaults')
        p = self.stack.props(path)
        self.assertEqual(p['Uid'], 0, 'uid defaults to the caller')
        self.assertEqual(p['NotAfter'], 0)
        self.assertEqual(p['Description'], '')
        self.assertEqual(p['ExeDigest'], b'')
        self.assertEqual(p['State'], 'active')

    def test_create_key_uris_share_the_host_id(self):
        a = self.stack.props(self.create('host-id-a'))['Uri']
        b = self.stack.props(self.create('host-id-b'))['Uri']
        self.assertEqual(a.rsplit('/', 1)[0], b.rsplit('/', 1)[0])

    def test_create_key_name_forms(self):
        long_name = 'n' * 64
        cases = {
            long_name: '/org/agentid1/key/' + long_name,
            'a-b.c_d': '/org/agentid1/key/a_2db_2ec_5fd',
            '9lives': '/org/agentid1/key/_39lives',  # sd_bus_path_encode escapes a leading digit
            'x': '/org/agentid1/key/x',
        }
        for name, path in cases.items():
            with self.subTest(name=name):
                self.assertEqual(h.path_encode(name), path)
                self.assertEqual(self.stack.create_key(name, owner=OWNER), path)
                self.assertEqual(self.stack.prop(path, 'Name'), name)

    def test_create_refused_for_non_admins(self):
        for uid in (UID_NOBODY, UID_DAEMON, UID_BIN):
            with self.subTest(uid=uid):
                self.assertCallError(self.create_as(uid, 'not-by-%d' % uid, owner=OWNER), E_ACCESS_DENIED)
                self.assertCallError(self.create_as(uid, 'own-uid-%d' % uid, owner=OWNER, uid=uid), E_ACCESS_DENIED)
                with self.assertDBusError(E_NO_SUCH_KEY):
                    self.stack.manager('GetKey', 's', ['not-by-%d' % uid])

    def test_create_bad_names(self):
        count = self.key_count()
        for name in ('', 'Upper', '../x', '-x', '.x', '_x', 'x' * 65, 'a/b', 'a b', 'caf\u00e9', 'a\nb'):
            with self.subTest(name=name):
                with self.assertDBusError(E_INVALID_ARGS):
                    self.stack.create_key(name, owner=OWNER)
        self.assertEqual(self.key_count(), count)

    def test_create_bad_options(self):
        st = self.stack
        count = self.key_count()
        cases = {
            'missing owner': {},
            'empty owner': {'owner': ''},
            'unknown option': {'owner': OWNER, 'colour': 'blue'},
            'owner of type u': {'owner': dbus.UInt32(5)},
            'uid of type s': {'owner': OWNER, 'uid': dbus.String('1')},
            'ttl of type s': {'owner': OWNER, 'ttl': dbus.String('60')},
            'description of type ay': {'owner': OWNER, 'description': dbus.ByteArray(b'x')},
            'exe_sha256 of type s': {'owner': OWNER, 'exe_sha256': dbus.String('00' * 32)},
            'exe_sha256 of 31 bytes': {'owner': OWNER, 'exe_sha256': bytes(31)},
            'exe_sha256 of 33 bytes': {'owner': OWNER, 'exe_sha256': bytes(33)},
            'ttl 0': {'owner': OWNER, 'ttl': 0},
        }
        for i, (what, opts) in enumerate(cases.items()):
            with self.subTest(what):
                with self.assertDBusError(E_INVALID_ARGS):
                    st.manager('CreateKey', 'sa{sv}', ['bad-opt-%d' % i, h.options(**opts)])
                with self.assertDBusError(E_NO_SUCH_KEY):
                    st.manager('GetKey', 's', ['bad-opt-%d' % i])
        self.assertEqual(self.key_count(), count)

    def test_create_duplicate(self):
        path = self.create('dup')
        before = self.stack.props(path)
        with self.assertDBusError(E_KEY_EXISTS):
            self.stack.create_key('dup', owner='someone-else@example.com')
        self.assertEqual(self.stack.props(path), before, 'the first key is untouched')

    # ------------------------------------------------------------ Sign

    def test_sign_by_key_uid(self):
        st = self.stack
        path = self.create('sign-agent', uid=UID_DAEMON)
        props = st.props(path)
        digest = sha256(b'GET /invoices/42')
        res = st.sign_as(UID_DAEMON, path, digest, task_id='task-1', parent_task_id='task-0', audience='peer')
        h.verify_digest_signature(props['PublicKey'], digest, self.assertCallOk(res).bytes)
        with self.assertRaises(AssertionError):
            h.verify_digest_signature(props['PublicKey'], sha256(b'tampered'), res.bytes)

    def test_sign_by_root_for_own_key(self):
        path = self.create('sign-root')
        spki = self.stack.prop(path, 'PublicKey')
        for i in range(3):
            digest = sha256(b'request %d' % i)
            h.verify_digest_signature(spki, digest, self.stack.sign(path, digest))

    def test_sign_refused_for_other_uids(self):
        st = self.stack
        path = self.create('sign-others', uid=UID_DAEMON)
        digest = sha256(b'x')
        with self.assertDBusError(E_ACCESS_DENIED):
            st.sign(path, digest)  # root is an admin, but not this key's uid
        for uid in (UID_NOBODY, UID_BIN, UID_SYS):  # UID_SYS is an admin through --admin-group
            with self.subTest(uid=uid):
                self.assertCallError(st.sign_as(uid, path, digest), E_ACCESS_DENIED)
                res = st.call_as(uid, path, KEY_IFACE, 'SignMessage', 'aya{sv}',
                                 [dbus.ByteArray(b'hello'), h.options()])
                self.assertCallError(res, E_ACCESS_DENIED)

    def test_sign_bad_digest(self):
        path = self.create('sign-bad-digest')
        for n in (0, 31, 33, 64):
            with self.subTest(size=n):
                with self.assertDBusError(E_INVALID_ARGS):
                    self.stack.sign(path, bytes(n))

    def test_sign_context(self):
        st = self.stack
        path = self.create('sign-context')
        spki = st.prop(path, 'PublicKey')
        digest = sha256(b'context')
        good = {
            'empty': {},
            'task_id of 128': {'task_id': 't' * 128},
            'parent_task_id of 128': {'parent_task_id': 'p' * 128},
            'audience of 256': {'audience': 'a' * 256},
            'all three': {'task_id': 'task-7f3a', 'parent_task_id': 'task-0001', 'audience': 'agentid://peer'},
            'printable punctuation': {'task_id': '~!@#$%^&*()_+{}|:"<>? ,./;\'[]\\-='},
        }
        for what, ctx in good.items():
            with self.subTest(what):
                h.verify_digest_signature(spki, digest, st.sign(path, digest, **ctx))
        bad = {
            'unknown key': {'colour': 'blue'},
            'task_id of 129': {'task_id': 't' * 129},
            'parent_task_id of 129': {'parent_task_id': 'p' * 129},
            'audience of 257': {'audience': 'a' * 257},
            'task_id with a newline': {'task_id': 'a\nb'},
            'task_id with DEL': {'task_id': 'a\x7fb'},
            'task_id not ASCII': {'task_id': 't\u00e4sk'},
            'task_id of type u': {'task_id': dbus.UInt32(7)},
            'audience of type ay': {'audience': dbus.ByteArray(b'peer')},
        }
        for what, ctx in bad.items():
            with self.subTest(what):
                with self.assertDBusError(E_INVALID_ARGS):
                    st.sign(path, digest, **ctx)
                with self.assertDBusError(E_INVALID_ARGS):
                    st.sign_message(path, b'payload', **ctx)

    # ------------------------------------------------------------ SignMessage

    def test_sign_message(self):
        st = self.stack
        path = self.create('message-agent', uid=UID_DAEMON)
        props = st.props(path)
        payload = b'{"invoice": 42, "amount": "100.00"}'
        res = st.call_as(UID_DAEMON, path, KEY_IFACE, 'SignMessage', 'aya{sv}',
                         [dbus.ByteArray(payload),
                          h.options(task_id='task-7f3a', parent_task_id='task-0001', audience='agentid://peer')])
        self.check_sign_message(self.assertCallOk(res).bytes, props, payload, task_id='task-7f3a',
                                parent_task_id='task-0001', audience='agentid://peer')

    def test_sign_message_claims_omitted(self):
        st = self.stack
        path = self.create('message-root')
        props = st.props(path)
        self.check_sign_message(st.sign_message(path, b'plain'), props, b'plain')
        self.check_sign_message(st.sign_message(path, b'task only', task_id='t-1'), props, b'task only',
                                task_id='t-1')
        self.check_sign_message(st.sign_message(path, b'', audience='aud'), props, b'', audience='aud')

    def test_sign_message_size_limit(self):
        st = self.stack
        path = self.create('message-size')
        props = st.props(path)
        big = os.urandom(65536)
        self.check_sign_message(st.sign_message(path, big, task_id='big'), props, big, task_id='big')
        with self.assertDBusError(E_INVALID_ARGS):
            st.sign_message(path, big + b'!')

    # ------------------------------------------------------------ attestation

    def check_tpm_part(self, tpm, key_pub_field, certify_field, expected_key_pub=None):
        """Structure of the TPM part: attests carry the right magic and type (the offline verifier
        checks everything else; here: that the daemon sends what DESIGN section 5 names)."""
        ak_pub, ak_name, info = self.stack.manager('GetAttestationKey')
        self.assertEqual(bytes(tpm['ak_pub']), bytes(ak_pub))
        self.assertEqual(bytes(ak_name)[:2], b'\x00\x0b')
        self.assertEqual(hashlib.sha256(bytes(ak_pub)).digest(), bytes(ak_name)[2:])
        self.assertEqual(len(tpm['srk_name']), 34)
        self.assertEqual(len(tpm['pcrs']), 8)
        self.assertTrue(all(len(p) == 32 for p in tpm['pcrs']))
        self.assertEqual(tpm[certify_field][:6], bytes.fromhex('ff5443478017'))
        self.assertEqual(tpm['quote'][:6], bytes.fromhex('ff5443478018'))
        if expected_key_pub is not None:
            self.assertEqual(tpm[key_pub_field], expected_key_pub)
        # swtpm has both EKs provisioned, with certificates; the AK's parent (rsa by default) comes first.
        eks = h.unwrap(info["eks"])
        self.assertEqual([e[0] for e in eks], ['rsa', 'ecc'])
        self.assertEqual(h.unwrap(info['ak_parent']), 'rsa')
        for alg, pub, cert in eks:
            self.assertGreater(len(bytes(pub)), 64)
            self.assertEqual(bytes(cert)[0], 0x30)  # DER SEQUENCE

    def test_attest(self):
        st = self.stack
        path = self.create('attested', uid=UID_DAEMON)
        props = st.props(path)
        nonce = os.urandom(32)
        res = st.call_as(UID_DAEMON, path, KEY_IFACE, 'Attest', 'aya{sv}',
                         [dbus.ByteArray(nonce), h.options(task_id='task-att')])
        evidence = h.cbor_strict_loads(self.assertCallOk(res).bytes)
        self.assertEqual(set(evidence), {'v', 'eat', 'tpm'})
        self.assertEqual(evidence['v'], 1)
        cose = h.verify_cose_sign1(evidence['eat'], props['PublicKey'])
        claims = cose.payload_map()
        self.assertEqual(claims[10], nonce)
        self.assertEqual(claims[2], props['Uri'])
        self.assertEqual(claims[265], 'tag:agentid.org,2026:v1')
        self.assertEqual(claims['task_id'], 'task-att')
        self.assertEqual(claims['uid'], UID_DAEMON)
        self.assertEqual(claims['workload']['uid'], UID_DAEMON)
        self.assertEqual(claims['workload']['exe_sha256'], python_sha256())
        self.assertLess(abs(claims[6] - time.time()), 60)
        self.assertEqual(cose.protected[4], props['TpmName'])
        self.check_tpm_part(evidence['tpm'], 'key_pub', 'certify')
        self.assertEqual(hashlib.sha256(evidence['tpm']['key_pub']).digest(), props['TpmName'][2:])

        # An admin may attest any key; the workload claims then describe the admin.
        evidence = h.cbor_strict_loads(bytes(st.key(path, 'Attest', 'aya{sv}', [dbus.ByteArray(nonce), h.options()])))
        self.assertEqual(h.verify_cose_sign1(evidence['eat'], props['PublicKey']).payload_map()['workload']['uid'], 0)

        # Nobody else; and nonces outside 16..64 bytes are refused.
        self.assertCallError(st.call_as(UID_NOBODY, path, KEY_IFACE, 'Attest', 'aya{sv}',
                                        [dbus.ByteArray(nonce), h.options()]), E_ACCESS_DENIED)
        for n in (0, 15, 65):
            with self.assertDBusError(E_INVALID_ARGS):
                st.key(path, 'Attest', 'aya{sv}', [dbus.ByteArray(os.urandom(n)), h.options()])
        with self.assertDBusError(E_INVALID_ARGS):
            st.key(path, 'Attest', 'aya{sv}', [dbus.ByteArray(nonce), h.options(audience='x')])

    def test_platform_evidence(self):
        st = self.stack
        nonce = os.urandom(16)
        res = st.call_as(UID_NOBODY, MANAGER_PATH, MANAGER_IFACE, 'GetPlatformEvidence', 'ay',
                         [dbus.ByteArray(nonce)])
        evidence = h.cbor_strict_loads(self.assertCallOk(res).bytes)
        self.assertEqual(set(evidence), {'v', 'type', 'tpm'})
        self.assertEqual(evidence['type'], 'platform')
        self.assertEqual(set(evidence['tpm']), {'quote', 'quote_sig', 'pcrs', 'ak_pub', 'srk_name', 'host_pub',
                                                'host_certify', 'host_certify_sig'})
        self.check_tpm_part(evidence['tpm'], 'host_pub', 'host_certify')
        with self.assertDBusError(E_INVALID_ARGS):
            st.manager('GetPlatformEvidence', 'ay', [dbus.ByteArray(os.urandom(65))])

    def test_platform_evidence_rate_limited(self):
        st = self.stack
        ok = limited = 0
        start = time.monotonic()
        # Back to back until refused a few times; however slow the machine, the bucket (burst 10,
        # 5 per second) bounds how many can succeed in the time it took.
        for _ in range(300):
            try:
                st.manager('GetPlatformEvidence', 'ay', [dbus.ByteArray(os.urandom(16))])
                ok += 1
            except dbus.exceptions.DBusException as e:
                self.assertEqual(e.get_dbus_name(), 'org.agentid1.Error.RateLimited', e.get_dbus_message())
                limited += 1
                if limited == 3:
                    break
        elapsed = time.monotonic() - start
        self.assertEqual(limited, 3)
        self.assertGreaterEqual(ok, 9)
        self.assertLessEqual(ok, 10 + 5 * elapsed + 1)
        # Buckets are per uid: another uid is not affected.
        res = st.call_as(UID_NOBODY, MANAGER_PATH, MANAGER_IFACE, 'GetPlatformEvidence', 'ay',
                         [dbus.ByteArray(os.urandom(16))])
        self.assertCallOk(res)

    # ------------------------------------------------------------ executable pinning

    def test_exe_pin(self):
        st = self.stack
        digest = sha256(b'pinned request')
        modified = st.python_copy(modified=True)
        modified_sha = h.file_sha256(modified)
        self.assertNotEqual(modified_sha, python_sha256())

        path = self.create('pin-python', uid=UID_DAEMON, exe_sha256=python_sha256())
        props = st.props(path)
        self.assertEqual(props['ExeDigest'], python_sha256())
        h.verify_digest_signature(props['PublicKey'], digest, self.assertCallOk(st.sign_as(UID_DAEMON, path, digest))
                                  .bytes)
        # An identical copy is the same executable as far as the digest goes.
        res = st.sign_as(UID_DAEMON, path, digest, exe=st.python_copy(modified=False))
        h.verify_digest_signature(props['PublicKey'], digest, self.assertCallOk(res).bytes)
        self.assertCallError(st.sign_as(UID_DAEMON, path, digest, exe=modified), E_ACCESS_DENIED)
        res = st.call_as(UID_DAEMON, path, KEY_IFACE, 'SignMessage', 'aya{sv}',
                         [dbus.ByteArray(b'x'), h.options()], exe=modified)
        self.assertCallError(res, E_ACCESS_DENIED)

        path = self.create('pin-modified', uid=UID_DAEMON, exe_sha256=modified_sha)
        spki = st.prop(path, 'PublicKey')
        h.verify_digest_signature(spki, digest, self.assertCallOk(st.sign_as(UID_DAEMON, path, digest,
                                                                             exe=modified)).bytes)
        self.assertCallError(st.sign_as(UID_DAEMON, path, digest), E_ACCESS_DENIED)

        path = self.create('pin-other', uid=UID_DAEMON, exe_sha256=sha256(b'some other program'))
        self.assertCallError(st.sign_as(UID_DAEMON, path, digest), E_ACCESS_DENIED)
        # The pin adds to the uid check; it does not replace it.
        path = self.create('pin-python-uid2', uid=UID_BIN, exe_sha256=python_sha256())
        self.assertCallError(st.sign_as(UID_DAEMON, path, digest), E_ACCESS_DENIED)

    # ------------------------------------------------------------ Destroy

    def test_destroy_refused_for_non_admins(self):
        st = self.stack
        path = self.create('keep-me', uid=UID_DAEMON)
        for uid in (UID_DAEMON, UID_NOBODY, UID_BIN):  # UID_DAEMON is the key's own uid
            with self.subTest(uid=uid):
                self.assertCallError(self.destroy_as(uid, path, 'not allowed'), E_ACCESS_DENIED)
        self.assertEqual(st.prop(path, 'State'), 'active')
        self.assertCallOk(st.sign_as(UID_DAEMON, path, sha256(b'still works')))

    def test_destroy(self):
        st = self.stack
        path = self.create('retire-me', uid=UID_DAEMON, description='to be retired')
        self.assertCallOk(st.sign_as(UID_DAEMON, path, sha256(b'before')))
        before = st.props(path)
        count = self.key_count()
        mark = st.monitor_mark()

        receipt = st.destroy(path, 'agent retired')
        self.check_receipt(receipt, before, 'agent retired', 0)

        self.assertIsNotNone(st.wait_signal('KeyDestroyed', mark, args=['retire-me', path, 'agent retired'],
                                            path=MANAGER_PATH), 'KeyDestroyed signal')
        self.assertEqual(self.key_count(), count - 1)
        # The object has left the bus.
        with self.assertDBusError(E_UNKNOWN_OBJECT):
            st.props(path)
        with self.assertDBusError(E_UNKNOWN_OBJECT):
            st.destroy(path, 'again')
        self.assertCallError(st.sign_as(UID_DAEMON, path, sha256(b'after')), E_UNKNOWN_OBJECT)
        res = st.call_as(UID_DAEMON, path, KEY_IFACE, 'SignMessage', 'aya{sv}', [dbus.ByteArray(b'x'), h.options()])
        self.assertCallError(res, E_UNKNOWN_OBJECT)
        self.assertNotIn(path, h.unwrap(st.call(MANAGER_PATH, h.OM_IFACE, 'GetManagedObjects')))
        self.assertNotIn('retire_2dme', introspect_interfaces(st.introspect('/org/agentid1/key'))[None])
        # ... and stays listed, reserved.
        self.assertEqual(self.list_entry('retire-me'), ('retire-me', '/', 'destroyed'))
        with self.assertDBusError(E_KEY_DESTROYED):
            st.manager('GetKey', 's', ['retire-me'])
        with self.assertDBusError(E_KEY_EXISTS):
            st.create_key('retire-me', owner=OWNER)

    def test_admin_group(self):
        """uid 3 (sys) is an admin through --admin-group=sys: creates and destroys; uid 2 is not."""
        try:
            grp.getgrnam(ADMIN_GROUP)
        except KeyError:
            self.skipTest('no group %s' % ADMIN_GROUP)
        st = self.stack
        res = self.assertCallOk(self.create_as(UID_SYS, 'by-admin-group', owner=OWNER))
        path = res.value
        self.assertEqual(path, h.path_encode('by-admin-group'))
        self.assertEqual(st.prop(path, 'Uid'), UID_SYS, 'uid defaults to the (admin) caller')
        spki = st.prop(path, 'PublicKey')
        digest = sha256(b'admin group member signs its own key')
        h.verify_digest_signature(spki, digest, self.assertCallOk(st.sign_as(UID_SYS, path, digest)).bytes)

        other = self.create('destroyed-by-group', uid=UID_DAEMON)
        before = st.props(other)
        self.assertCallError(self.destroy_as(UID_BIN, other, 'no'), E_ACCESS_DENIED)
        res = self.assertCallOk(self.destroy_as(UID_SYS, other, 'offboarded by sys'))
        self.check_receipt(res.bytes, before, 'offboarded by sys', UID_SYS)

    def test_unknown_key(self):
        st = self.stack
        with self.assertDBusError(E_NO_SUCH_KEY):
            st.manager('GetKey', 's', ['nope'])
        res = st.call_as(UID_NOBODY, MANAGER_PATH, MANAGER_IFACE, 'GetKey', 's', [dbus.String('nope')])
        self.assertCallError(res, E_NO_SUCH_KEY)
        # A path with no key behind it: no object (docs/dbus-api.md); NoSuchKey accepted too.
        with self.assertDBusError(E_UNKNOWN_OBJECT, E_NO_SUCH_KEY):
            st.sign(h.path_encode('nope'), bytes(32))
        with self.assertDBusError(E_UNKNOWN_OBJECT, E_NO_SUCH_KEY):
            st.props(h.path_encode('nope'))
        self.assertNotIn('nope', [e[0] for e in st.list_keys()])

    # ------------------------------------------------------------ expiry

    def test_ttl_expiry(self):
        st = self.stack
        path = self.create('short-lived', ttl=2)
        p = st.props(path)
        self.assertNear(p['NotAfter'], p['CreatedAt'] + 2 * 10**6, 10**6 + 10**5, 'NotAfter')
        digest = sha256(b'ttl')
        h.verify_digest_signature(p['PublicKey'], digest, st.sign(path, digest))
        wait = p['NotAfter'] / 1e6 + 1.0 - time.time()
        self.assertLess(wait, 5)
        time.sleep(max(wait, 0))
        # Refused from NotAfter on; agentidd's expiry timer then offboards the key (test_offboard.py),
        # so by now the object may have left the bus.
        with self.assertDBusError(E_KEY_EXPIRED, E_UNKNOWN_OBJECT):
            st.sign(path, digest)
        with self.assertDBusError(E_KEY_EXPIRED, E_UNKNOWN_OBJECT):
            st.sign_message(path, b'late')
        deadline = time.monotonic() + 10
        while self.list_entry('short-lived')[2] != 'destroyed':
            self.assertEqual(self.list_entry('short-lived'), ('short-lived', path, 'expired'))
            self.assertLess(time.monotonic(), deadline, 'the expired key was not offboarded')
            time.sleep(0.1)

    # ------------------------------------------------------------ concurrency

    def test_concurrent_signers_and_destroy(self):
        """Four uid-1 processes sign in a loop on their own connections while root destroys the key.

        No signature may be issued after the Destroy reply: judged on the order in which the bus routed
        the replies (dbus-monitor; receive times in different processes can lag the routing order), and
        on the clients' clocks for requests sent after the Destroy reply arrived, which must all fail."""
        st = self.stack
        name = 'conc-destroy'
        path = self.create(name, uid=UID_DAEMON)
        before = st.props(path)
        mark = st.monitor_mark()
        procs = [st.start_sign_loop(UID_DAEMON, path, ready_after=5, deadline=40, task_id='conc-%d' % i)
                 for i in range(4)]
        try:
            st.wait_ready(procs)
            receipt = st.destroy(path, 'concurrency test')
            t_destroy_reply = time.monotonic()
            time.sleep(0.5)  # every signer keeps calling the destroyed key for a while
            results = [st.finish_sign_loop(p) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        self.check_receipt(receipt, before, 'concurrency test', 0)

        after_errors = {E_KEY_DESTROYED, E_UNKNOWN_OBJECT}
        records = [r for res in results for r in res['records']]
        successes = [r for r in records if r[2]]
        for res in results:
            self.assertEqual(res['uid'], UID_DAEMON)
            self.assertGreaterEqual(sum(1 for r in res['records'] if r[2]), 5)
            self.assertTrue(any(r[0] > t_destroy_reply for r in res['records']),
                            'signer %s made no call after the Destroy reply' % res['unique_name'])
        for r in successes:
            h.verify_digest_signature(before['PublicKey'], bytes.fromhex(r[4]), bytes.fromhex(r[5]))
        odd = [r[:4] for r in records if not r[2] and r[3] not in after_errors]
        self.assertEqual(odd, [], 'errors other than KeyDestroyed/UnknownObject')
        late = [r[:4] for r in records if r[2] and r[0] > t_destroy_reply]
        self.assertEqual(late, [], 'Sign requests sent after the Destroy reply arrived succeeded')

        # Routing order on the bus.
        msgs = st.monitor_messages(mark)
        daemon = st.daemon_unique_name
        calls = [m for m in msgs if m.kind == 'method call' and m.get('path') == path]
        sign_calls = [m for m in calls if m.get('member') == 'Sign']
        destroy_calls = [m for m in calls if m.get('member') == 'Destroy']
        self.assertEqual(len(destroy_calls), 1)
        replies = {(m.get('destination'), m.get('reply_serial')): m for m in msgs
                   if m.kind in ('method return', 'error') and m.get('sender') == daemon}
        destroy_reply = replies.get((destroy_calls[0].get('sender'), destroy_calls[0].get('serial')))
        self.assertIsNotNone(destroy_reply, 'Destroy reply seen by the monitor')
        self.assertEqual(destroy_reply.kind, 'method return')
        unanswered = [c for c in sign_calls if (c.get('sender'), c.get('serial')) not in replies]
        self.assertEqual(unanswered, [], 'Sign calls without a reply on the bus')
        sign_replies = [(c, replies[(c.get('sender'), c.get('serial'))]) for c in sign_calls]
        ok_replies = [r for _, r in sign_replies if r.kind == 'method return']
        self.assertEqual(len(ok_replies), len(successes), 'the monitor saw every successful Sign reply')
        self.assertEqual(len(sign_calls), len(records), 'the monitor saw every Sign call')
        late_ok = [r for r in ok_replies if r.index > destroy_reply.index]
        self.assertEqual(late_ok, [], 'successful Sign replies routed after the Destroy reply')
        for c, r in sign_replies:
            if c.index > destroy_reply.index:
                self.assertEqual(r.kind, 'error', 'a Sign call routed after the Destroy reply succeeded')
            if r.kind == 'error':
                self.assertIn(r.get('error_name'), after_errors)
        in_flight = [r for _, r in sign_replies if r.kind == 'error'
                     and r.index < destroy_reply.index]
        received_late = sum(1 for r in successes if r[1] > t_destroy_reply)
        sys.stderr.write('\n    %d signatures before the Destroy reply (%d of them reached their process after it), '
                         '%d refused before it and %d after it ... '
                         % (len(successes), received_late, len(in_flight), len(records) - len(successes) -
                            len(in_flight)))
        sys.stderr.flush()

        # Afterwards: no object, and the name stays reserved.
        self.assertCallError(st.sign_as(UID_DAEMON, path, sha256(b'after')), *after_errors)
        self.assertEqual(self.list_entry(name), (name, '/', 'destroyed'))
        with self.assertDBusError(E_KEY_DESTROYED):
            st.manager('GetKey', 's', [name])


class RestartTests(DaemonTestCase):
    """Each test owns its stack: the daemon is stopped, killed and started again on the same state."""

    def test_restart_persistence(self):
        with h.Stack() as st:
            self.stack = st
            host = st.manager_props()['HostPublicKey']
            keep_root = self.create('persist-root', description='survives restarts', ttl=86400)
            keep_agent = self.create('persist-agent', uid=UID_DAEMON, exe_sha256=python_sha256())
            gone = self.create('persist-gone')
            before = {p: st.props(p) for p in (keep_root, keep_agent, gone)}
            receipt = st.destroy(gone, 'before restart')
            self.check_receipt(receipt, before[gone], 'before restart', 0)
            del before[gone]
            self.assertEqual(self.key_count(), 2)

            for how in ('stop', 'kill'):
                with self.subTest(how):
                    if how == 'stop':
                        st.stop_daemon()  # asserts exit status 0
                    else:
                        st.kill_daemon()
                    st.start_daemon()
                    self.assertEqual(st.manager_props()['HostPublicKey'], host, 'host key unchanged')
                    self.assertEqual(self.key_count(), 2)
                    for path, props in before.items():
                        self.assertEqual(st.props(path), props, 'properties of %s after %s' % (path, how))
                    digest = sha256(b'after ' + how.encode())
                    h.verify_digest_signature(before[keep_root]['PublicKey'], digest, st.sign(keep_root, digest))
                    res = st.sign_as(UID_DAEMON, keep_agent, digest)
                    h.verify_digest_signature(before[keep_agent]['PublicKey'], digest, self.assertCallOk(res).bytes)
                    self.assertCallError(st.sign_as(UID_DAEMON, keep_agent, digest, exe=st.python_copy(True)),
                                         E_ACCESS_DENIED)
                    self.check_sign_message(st.sign_message(keep_root, b'after', task_id='t'), before[keep_root],
                                            b'after', task_id='t')
                    # The destroyed key stays destroyed and its name reserved.
                    self.assertEqual(self.list_entry('persist-gone'), ('persist-gone', '/', 'destroyed'))
                    with self.assertDBusError(E_UNKNOWN_OBJECT):
                        st.props(gone)
                    with self.assertDBusError(E_KEY_DESTROYED):
                        st.manager('GetKey', 's', ['persist-gone'])
                    with self.assertDBusError(E_KEY_EXISTS):
                        st.create_key('persist-gone', owner=OWNER)
            # A key made after the restarts works too.
            path = self.create('persist-new')
            digest = sha256(b'new')
            h.verify_digest_signature(st.prop(path, 'PublicKey'), digest, st.sign(path, digest))
            st.stop_daemon()


def _interrupt(signo, frame):
    raise KeyboardInterrupt('signal %d' % signo)


def run_main():
    """What every test file of this suite runs: skip (77) unless root, unwind on SIGTERM, report with log
    tails."""
    if os.geteuid() != 0:
        print('skipping: the D-Bus tests run agentidd and switch uids, so they must run as root')
        sys.exit(77)
    # meson's timeout sends SIGTERM: unwind like ^C so the stacks stop their processes and clean up.
    signal.signal(signal.SIGTERM, _interrupt)
    # One stream (stderr) for the results, the log tails and the harness's log dumps, so they interleave
    # in order in meson's test log.
    runner = unittest.TextTestRunner(verbosity=2, resultclass=LogTailResult, stream=sys.stderr)
    prog = unittest.main(testRunner=runner, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == '__main__':
    run_main()

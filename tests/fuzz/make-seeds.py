#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write the seed corpora of tests/fuzz/corpus/ from real outputs.

Sources: the golden vectors of docs/formats.md (a ```hex block after "<!-- golden:NAME -->";
";" starts a comment), the captured files of tests/data/, and the TPM structures cut out of the
captured evidence. Seeds are named seed-*; files the fuzzer added after -merge=1 are named by
their SHA-1 and are kept as they are. Run from anywhere: tests/fuzz/make-seeds.py
"""

import os
import re
import sys

top = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
corpus = os.path.join(top, 'tests', 'fuzz', 'corpus')


def golden():
    lines = open(os.path.join(top, 'docs', 'formats.md')).read().split('\n')
    out, i = {}, 0
    while i < len(lines):
        m = re.match(r'<!-- golden:(\S+) -->', lines[i].strip())
        if m:
            j = i + 1
            while not lines[j].startswith('```hex'):
                j += 1
            j += 1
            h = ''
            while not lines[j].startswith('```'):
                h += re.sub(r'\s', '', lines[j].split(';')[0])
                j += 1
            out[m.group(1)] = bytes.fromhex(h)
            i = j
        i += 1
    return out


def cbor_item(b, o):
    """Minimal definite-length CBOR decoder: (value, next offset). Maps become lists of pairs."""
    ib = b[o]
    mt, ai = ib >> 5, ib & 31
    o += 1
    if ai < 24:
        arg = ai
    else:
        n = {24: 1, 25: 2, 26: 4, 27: 8}[ai]
        arg = int.from_bytes(b[o:o + n], 'big')
        o += n
    if mt in (0, 1, 7):
        return arg, o
    if mt in (2, 3):
        return b[o:o + arg], o + arg
    if mt == 4:
        items = []
        for _ in range(arg):
            v, o = cbor_item(b, o)
            items.append(v)
        return items, o
    if mt == 5:
        items = []
        for _ in range(arg):
            k, o = cbor_item(b, o)
            v, o = cbor_item(b, o)
            items.append((k, v))
        return items, o
    return cbor_item(b, o)  # tag: skip


def get(m, key):
    for k, v in m:
        if k == key or k == key.encode():
            return v
    raise KeyError(key)


def write(name, fname, data):
    d = os.path.join(corpus, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + fname), 'wb') as f:
        f.write(data)


def main():
    g = golden()
    data = lambda f: open(os.path.join(top, 'tests', 'data', f), 'rb').read()

    # cbor: every CBOR document we have, and a non-deterministic variant of the small map.
    for k, v in g.items():
        if k != 'agent-evidence-ak':
            write('cbor', k, v)
    for f in ('agent-evidence.cbor', 'platform-evidence.cbor'):
        write('cbor', f, data(f))
    write('cbor', 'receipt-untagged', data('receipt.cose')[1:])
    write('cbor', 'non-deterministic-map', bytes.fromhex('a3 1800 01 61 61 1900 02 20 f5'.replace(' ', '')))

    for k in ('key-record-active', 'key-record-tombstone'):
        write('record', k, g[k])

    for k in ('message-cose-sign1', 'receipt-destroy-cose-sign1'):
        write('cose', k, g[k])
    write('cose', 'receipt.cose', data('receipt.cose'))

    write('evidence', 'agent-evidence.cbor', data('agent-evidence.cbor'))
    write('evidence', 'platform-evidence.cbor', data('platform-evidence.cbor'))
    write('evidence', 'golden-agent-evidence', g['agent-evidence'])
    write('evidence', 'golden-platform-evidence', g['platform-evidence'])

    # revocation: the golden payloads and the unsigned-signature statement; the signed seed-list and
    # seed-rotation come from tests/unit/test-revocation.c with AGENTID_TEST_DUMP_DIR set (they are
    # signed with the keys fuzz-revocation.c embeds).
    # task-credential: the seeds are signed credentials and tokens, written by
    # tests/unit/test-task-credential.c with AGENTID_TEST_DUMP_DIR set (fuzz-task-credential.c embeds
    # the agent key and the AK they were made with); nothing to add from here.
    write('revocation', 'list-payload', g['revocation-list-payload'])
    write('revocation', 'rotation-payload', g['rotation-payload'])
    write('revocation', 'rotation-golden', g['rotation-cose-sign'])

    write('tpm2', 'ak-public.tpmt', data('ak-public.tpmt'))
    for f in ('agent-evidence.cbor', 'platform-evidence.cbor'):
        ev, _ = cbor_item(data(f), 0)
        tpm = get(ev, 'tpm')
        for k, v in tpm:
            k = k.decode() if isinstance(k, bytes) else k
            if isinstance(v, bytes) and k != 'srk_name':
                write('tpm2', f.split('-')[0] + '-' + k, v)


if __name__ == '__main__':
    sys.exit(main())

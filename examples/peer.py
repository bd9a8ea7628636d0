#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A peer's side of the agent-to-agent hop: verify a signed request and a task token, then decide.

The peer holds what examples/agent.py wrote: the signed request (a COSE_Sign1 from Key.SignMessage),
the task token (a CWT from Key.IssueToken) and optionally the request as plain JSON. It verifies both
with agentid-verify, offline, against the agent's key: pinned (--public-key) or certified by TPM
evidence for a nonce of its own (--evidence, --nonce, --trusted-ak). Then it checks what
agentid-verify leaves to the caller: that both are addressed to this peer, carry the same task ID as
the request, were signed by the same key, that the token grants the scope the request needs and
comes from the expected agent. It prints ACCEPT or REFUSE with the reason.

Exit status: 0 only on ACCEPT; 1 on REFUSE; 2 when it cannot decide (usage errors, agentid-verify
missing or unable to read its input). Standard library only.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


class Refusal(Exception):
    """A reason to refuse the request."""


class Unverifiable(Exception):
    """agentid-verify could not do its job: no decision is possible."""


def agentid_verify(tool, what, args, path):
    """Runs 'agentid-verify WHAT ARGS PATH' and returns its JSON verdict (exit 0 valid, 1 invalid)."""
    cmd = [tool, what] + args + [path]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unverifiable('cannot run %s: %s' % (tool, e)) from None
    if p.returncode not in (0, 1):
        raise Unverifiable('%s %s failed (exit %d): %s' % (
            os.path.basename(tool), what, p.returncode,
            p.stderr.decode('utf-8', 'replace').strip() or 'no message'))
    try:
        verdict = json.loads(p.stdout)
    except ValueError:
        raise Unverifiable('%s %s printed no JSON verdict' % (os.path.basename(tool), what)) from None
    # The exit status and the verdict must agree; anything else is not a verdict to act on.
    if (p.returncode == 0) != (verdict.get('verdict') == 'valid'):
        raise Unverifiable('%s %s: exit %d with verdict %r' % (
            os.path.basename(tool), what, p.returncode, verdict.get('verdict')))
    return verdict


def own_checks(verdict, first):
    """How many checks are the message's (token's) own: with --evidence the evidence's come first."""
    names = [c.get('name') for c in verdict.get('checks', [])]
    return len(names) - names.index(first) if first in names else len(names)


def failed_check(verdict):
    """'name: detail' of the first failed check, the one the verdict's reason names."""
    for c in verdict.get('checks', []):
        if not c.get('ok'):
            return '%s: %s' % (c.get('name'), c.get('detail'))
    return verdict.get('reason', 'unknown')


def parse_args():
    p = argparse.ArgumentParser(
        description="Verify an agent's signed request and task token with agentid-verify and decide "
                    "whether to act on them.",
        epilog='Exit status: 0 when the request is accepted, 1 when it is refused (the reason is '
               'printed), 2 when no decision was possible (usage error, agentid-verify missing or '
               'unable to read its input).')
    p.add_argument('--message', required=True, metavar='FILE',
                   help='the signed request (COSE_Sign1 from Key.SignMessage; binary or base64)')
    p.add_argument('--token', required=True, metavar='FILE',
                   help='the task token (CWT from Key.IssueToken; binary or base64)')
    p.add_argument('--request', metavar='FILE',
                   help='the request as handed over in plain JSON: it must be exactly the signed bytes')
    p.add_argument('--audience', required=True, metavar='URI',
                   help="this peer's own agent URI: both the request and the token must be addressed to it")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument('--public-key', metavar='FILE',
                     help="the agent's public key, pinned (DER SubjectPublicKeyInfo or PEM)")
    key.add_argument('--evidence', metavar='FILE',
                     help="the agent's TPM evidence (Key.Attest) for --nonce: the key it certifies "
                          "must have signed both")
    p.add_argument('--nonce', metavar='HEX', help='the nonce this peer sent for --evidence')
    p.add_argument('--trusted-ak', metavar='FILE',
                   help="the host's attestation key (an AK record from 'agentid-verify enroll "
                        "finish'); required with --evidence")
    p.add_argument('--issuer', metavar='URI',
                   help="the agent expected (the token's iss; with --evidence also the evidence's sub)")
    p.add_argument('--task-id', metavar='ID', help='the task ID expected')
    p.add_argument('--scope', action='append', default=[], metavar='TOKEN',
                   help='a scope token the token must grant (repeat for several)')
    p.add_argument('--revocations', metavar='FILE',
                   help="the host's revocation list: a revoked key is refused (use with --host-key)")
    p.add_argument('--host-key', metavar='FILE', help='the host key that signed --revocations')
    p.add_argument('--max-age', type=int, metavar='SECONDS',
                   help='how old the signed request may be (agentid-verify default: 300)')
    p.add_argument('--agentid-verify', metavar='PATH',
                   help='the agentid-verify program (default: found on PATH)')
    p.add_argument('--json', action='store_true', help='print the decision as one JSON object')
    args = p.parse_args()
    if args.evidence and not (args.nonce and args.trusted_ak):
        p.error('--evidence needs --nonce and --trusted-ak')
    if args.nonce and not args.evidence:
        p.error('--nonce goes with --evidence')
    if args.host_key and not args.revocations:
        p.error('--host-key goes with --revocations')
    if args.agentid_verify is None:
        args.agentid_verify = shutil.which('agentid-verify')
        if args.agentid_verify is None:
            p.error('agentid-verify is not on PATH: give --agentid-verify=PATH')
    return args


def verify_options(args):
    """The key and revocation options both agentid-verify runs share."""
    o = []
    if args.public_key:
        o.append('--public-key=' + args.public_key)
    else:
        o += ['--evidence=' + args.evidence, '--nonce=' + args.nonce]
    # --trusted-ak verifies the evidence, and a token issued by a task key (docs/verifier.md).
    if args.trusted_ak:
        o.append('--trusted-ak=' + args.trusted_ak)
    if args.revocations:
        o.append('--revocations=' + args.revocations)
        if args.host_key:
            o.append('--host-key=' + args.host_key)
    return o


def decide(args):
    """The facts of an accepted request; raises Refusal or Unverifiable."""
    common = verify_options(args)
    facts = {}

    # 1. The signed request: signature by the agent's key, addressed to me, fresh.
    margs = common + ['--audience=' + args.audience]
    if args.max_age is not None:
        margs.append('--max-age=%d' % args.max_age)
    m = agentid_verify(args.agentid_verify, 'message', margs, args.message)
    if m['verdict'] != 'valid':
        raise Refusal('the signed request does not verify (%s)' % failed_check(m))
    mc = m['claims']
    facts['request_checks'] = own_checks(m, 'message_format')
    if args.evidence:
        facts['evidence_checks'] = len(m['checks']) - facts['request_checks']

    # 2. The task token: signature by the same key, addressed to me, within its lifetime.
    t = agentid_verify(args.agentid_verify, 'token', common + ['--audience=' + args.audience], args.token)
    if t['verdict'] != 'valid':
        raise Refusal('the task token does not verify (%s)' % failed_check(t))
    tc = t['claims']
    facts['token_checks'] = own_checks(t, 'token_format')

    # 3. What agentid-verify leaves to the caller. It already required aud == --audience of both;
    # looking again costs nothing and keeps this decision readable on its own.
    if mc.get('aud') != args.audience:
        raise Refusal('the signed request is addressed to %r, not to me' % mc.get('aud'))
    if tc.get('aud') != args.audience:
        raise Refusal('the task token is addressed to %r, not to me' % tc.get('aud'))
    # A token issued by a task key is signed by that key; the agent key signed its credential.
    token_signer = tc.get('credential_kid', tc.get('kid'))
    if mc.get('kid') != token_signer:
        raise Refusal('the request and the token were signed by different keys (%s, %s)' % (
            mc.get('kid'), token_signer))
    if args.evidence:
        sub = m['evidence']['claims'].get('sub')
        if tc.get('iss') != sub:
            raise Refusal('the token was issued by %s, but the evidence is of %s' % (tc.get('iss'), sub))
    if args.issuer and tc.get('iss') != args.issuer:
        raise Refusal('the token was issued by %s, not by %s' % (tc.get('iss'), args.issuer))

    try:
        payload = bytes.fromhex(mc['payload'])
    except (KeyError, ValueError):
        raise Refusal('the signed request has no payload') from None
    if args.request is not None:
        try:
            with open(args.request, 'rb') as f:
                handed = f.read()
        except OSError as e:
            raise Unverifiable('cannot read %s: %s' % (args.request, e)) from None
        if handed != payload:
            raise Refusal('the request handed over (%s) is not the one that was signed' % args.request)
    try:
        request = json.loads(payload)
    except ValueError:
        raise Refusal('the signed request is not JSON') from None
    if not isinstance(request, dict):
        raise Refusal('the signed request is not a JSON object')

    task = mc.get('task_id')
    if not task:
        raise Refusal('the signed request names no task')
    if request.get('task_id') != task:
        raise Refusal('the request says task %r, its signed header %r' % (request.get('task_id'), task))
    if tc.get('task_id') != task:
        raise Refusal('the token is for task %r, the request for %r' % (tc.get('task_id'), task))
    if args.task_id and task != args.task_id:
        raise Refusal('the request is for task %r, not %r' % (task, args.task_id))

    granted = set((tc.get('scope') or '').split())
    missing = [s for s in args.scope if s not in granted]
    if missing:
        raise Refusal('the token does not grant %s (it grants: %s)' % (
            ' '.join(missing), tc.get('scope') or 'nothing'))

    facts.update(issuer=tc.get('iss'), task_id=task, scope=tc.get('scope') or '',
                 expires_in=int(tc['exp']) - int(time.time()), request=request)
    return facts


def main():
    args = parse_args()
    try:
        facts = decide(args)
    except Refusal as e:
        if args.json:
            print(json.dumps({'decision': 'refuse', 'reason': str(e)}))
        else:
            print('REFUSE: %s' % e)
        return 1
    except Unverifiable as e:
        print('peer.py: %s' % e, file=sys.stderr)
        return 2

    if args.json:
        print(json.dumps(dict(facts, decision='accept'), sort_keys=True))
        return 0
    if args.evidence:
        print('evidence:       valid (%d checks): the key is in the TPM whose AK I trust' % (
            facts['evidence_checks']))
    print('signed request: valid (%d checks), addressed to me, task %s' % (
        facts['request_checks'], facts['task_id']))
    print('task token:     valid (%d checks), from %s, scope "%s", expires in %d s' % (
        facts['token_checks'], facts['issuer'], facts['scope'], facts['expires_in']))
    print('request:        %s' % json.dumps(facts['request'], sort_keys=True))
    print('ACCEPT: the request of %s for task %s' % (facts['issuer'], facts['task_id']))
    return 0


if __name__ == '__main__':
    sys.exit(main())

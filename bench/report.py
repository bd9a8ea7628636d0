#!/usr/bin/python3
# report.py DAEMON_CSV [STARTUP_CSV] --json=FILE: the benchmark CSVs as one JSON document, and the
# targets of docs/performance.md (issue 11) checked against them, printed as a table. The ratios are
# taken within one run on one swtpm, so they hold on any machine; the absolute numbers do not.
import csv
import json
import sys


def num(s):
    return float(s) if s not in (None, "") else None


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--json=")]
    out = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--json=")), None)
    if not args:
        print(__doc__ or "usage: report.py DAEMON_CSV [STARTUP_CSV] --json=FILE", file=sys.stderr)
        return 2
    rows = [dict(r, clients=int(r["clients"]), per_s=num(r["per_s"]), x_limit=num(r["x_limit"]),
                 p50_ms=num(r["p50_ms"]), p99_ms=num(r["p99_ms"])) for r in csv.DictReader(open(args[0]))]
    startup = []
    if len(args) > 1:
        startup = [dict(r, keys=int(r["keys"]), startup_ms=num(r["startup_ms"]), cpu_ms=num(r["cpu_ms"]),
                        vmhwm_mib=num(r["vmhwm_mib"]),
                        vmhwm_after_listkeys_mib=num(r["vmhwm_after_listkeys_mib"]))
                   for r in csv.DictReader(open(args[1]))]

    def get(run, row, clients=None, field="per_s"):
        for r in rows:
            if r["run"] == run and r["row"] == row and (clients is None or r["clients"] == clients):
                return r[field]
        return None

    checks = []

    def check(what, value, target, ok):
        checks.append({"what": what, "value": value, "target": target,
                       "met": None if value is None else bool(ok(value))})

    limit = get("nopolicy", "limit-sign")
    for run in ("nopolicy", "policy1000"):
        for n in (1, 4, 16, 64):
            # x_limit: the median over rounds of each round's ratio to the limit measured right before.
            check(f"Sign, {run}, {n} client(s) / limit", get(run, "sign", n, "x_limit"),
                  ">= 0.85" if n == 1 else ">= 0.95", lambda v, n=n: v >= (0.85 if n == 1 else 0.95))
        check(f"Destroy p99 under a 16-client flood, {run} (ms)", get(run, "destroy-under-flood", 16, "p99_ms"),
              "<= 50", lambda v: v <= 50)
    t2 = get("tpm2-tools", "tpm2_sign")
    for n in (1, 4):
        s = get("nopolicy", "sign", n)
        check(f"Sign, {n} client(s) / tpm2_sign", s / t2 if s and t2 else None, ">= 25", lambda v: v >= 25)
    check("agent evidence verifications per second, one core", get("verify", "agent-evidence"), ">= 2000",
          lambda v: v >= 2000)
    # The target counts verifications with the key cached: a registry's keys are decoded once
    # (agentid_verify_token_from_peer()); agentid_verify_token() decodes the caller's DER key each call.
    check("token verifications per second, one core, key cached", get("verify", "token-peer"), ">= 5000",
          lambda v: v >= 5000)
    for s in startup:
        if s["keys"] >= 10000:
            check(f"start-up with {s['keys']} keys (ms)", s["startup_ms"], "<= 300", lambda v: v <= 300)
            check(f"peak RSS with {s['keys']} keys (MiB)", s["vmhwm_after_listkeys_mib"], "<= 16", lambda v: v <= 16)

    print(f"{'target':<58} {'value':>10} {'target':>8}  met")
    for c in checks:
        v = "-" if c["value"] is None else f"{c['value']:.3g}" if c["value"] < 100 else f"{c['value']:.0f}"
        print(f"{c['what']:<58} {v:>10} {c['target']:>8}  {'-' if c['met'] is None else 'yes' if c['met'] else 'NO'}")
    extra = {
        "createkey_1_client_over_esys_create":
            (get("nopolicy", "createkey", 1) or 0) / (get("tpm", "limit-create") or 1),
        "tpm2_checkquote_per_s": get("process", "tpm2_checkquote"),
        "agentid_verify_evidence_process_per_s": get("process", "agentid-verify-evidence"),
    }
    print(f"CreateKey (1 client) / Esys_Create: {extra['createkey_1_client_over_esys_create']:.3f}; "
          f"per process: tpm2_checkquote {extra['tpm2_checkquote_per_s']}/s, "
          f"agentid-verify evidence {extra['agentid_verify_evidence_process_per_s']}/s")
    if out:
        with open(out, "w") as f:
            json.dump({"daemon": rows, "startup": startup, "targets": checks, "limit_sign_per_s": limit, **extra},
                      f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

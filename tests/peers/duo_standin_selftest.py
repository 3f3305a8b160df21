"""Self-test of the Duo stand-in's signature verifier (duo_standin.check_signature).

1. Every reference vector in tests/fixtures/duo_signatures.jsonl (computed with Duo's own Python
   client) must be accepted for its method, host, path, parameters, date (and JSON body for sig
   v5), and refused once any one parameter value, the date, or the host changes.
2. Requests with non-ASCII values (a username, a pushinfo), signed by duo_client itself and
   decoded the way the stand-in decodes a request body, must be accepted, and refused once a
   value changes.

Prints one line per failure and a summary; exits 1 if anything failed.
"""

import email.utils
import hashlib
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from duo_client.client import Client, canonicalize, normalize_params, sign  # noqa: E402
from duo_standin import check_signature, date_is_fresh, parse_form  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                        "duo_signatures.jsonl")
OTHER_HOST = "api-0badc0de.duosecurity.com"

passed = 0
failures = []


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL: {what}")


def later(date):
    """The same date one second later, in the same format."""
    parsed = email.utils.parsedate_tz(date)
    return email.utils.formatdate(email.utils.mktime_tz(parsed) + 1)


def vector_request(v, params=None, body=None):
    """check_signature's request arguments for a vector (optionally other params or body)."""
    params = v["params"] if params is None else params
    if v["sig_version"] == 5:
        return {}, (v["body_sent"] if body is None else body)
    return {k: [val] for k, val in params.items()}, None


def check_vector(n, v):
    expected_sig = f"v{v['sig_version']}-{v.get('digest', 'sha512')}"
    name = f"vector {n} ({v['method']} {v['path']}, {expected_sig})"

    def verify(host=v["host"], date=v["date"], params=None, body=None):
        sig_params, json_body = vector_request(v, params, body)
        return check_signature(v["authorization"], v["ikey"], v["skey"], v["method"], host,
                               v["path"], sig_params, date, json_body=json_body)

    sig_params, json_body = vector_request(v)
    canonical = canonicalize(v["method"], v["host"], v["path"], sig_params, v["date"],
                             v["sig_version"], body=json_body)
    check(canonical == v["canonical"],
          f"{name}: the stand-in's request gives the vector's canonical string")
    check(verify() == expected_sig, f"{name}: accepted as {expected_sig}")
    check(verify(date=later(v["date"])) is None, f"{name}: refused with another date")
    check(verify(host=OTHER_HOST) is None, f"{name}: refused with another host")
    signed_at = email.utils.mktime_tz(email.utils.parsedate_tz(v["date"]))
    check(not date_is_fresh(v["date"], signed_at + 301), f"{name}: its date is stale 301 s later")
    for key in v["params"]:
        changed = dict(v["params"], **{key: v["params"][key] + "x"})
        body = Client.canon_json(changed) if v["sig_version"] == 5 else None
        check(verify(params=changed, body=body) is None, f"{name}: refused with {key} changed")


def check_round_trip(sig_version, digest_name):
    """A non-ASCII request signed by duo_client, decoded as the stand-in decodes it."""
    name = f"non-ASCII round trip (v{sig_version} {digest_name})"
    digest = getattr(hashlib, digest_name)
    ikey, skey = "DIWJ8X6AEYOR5OMC6TQ1", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"
    host = "api-deadbeef.duosecurity.com"
    pushinfo = urllib.parse.urlencode({"from": "Société Générale", "host": "db 1 ~ Zoë"})
    params = {"username": "Zoë Åström", "factor": "push", "device": "auto", "async": "1",
              "pushinfo": pushinfo, "display_username": "Zoë Åström"}
    date = email.utils.formatdate()

    def request(params):
        """What the stand-in would see: (params decoded from the wire, JSON body or None)."""
        if sig_version == 5:
            return {}, Client.canon_json(params)
        wire = urllib.parse.urlencode(normalize_params(params), doseq=True)
        return parse_form(wire.encode("ascii")), None

    if sig_version == 5:
        authorization = sign(ikey, skey, "POST", host, "/auth/v2/auth", date, 5, {},
                             body=Client.canon_json(params), digestmod=digest)
    else:
        authorization = sign(ikey, skey, "POST", host, "/auth/v2/auth", date, 2,
                             normalize_params(params), digestmod=digest)

    def verify(params):
        sig_params, json_body = request(params)
        return check_signature(authorization, ikey, skey, "POST", host, "/auth/v2/auth",
                               sig_params, date, json_body=json_body)

    check(verify(params) == f"v{sig_version}-{digest_name}", f"{name}: accepted")
    check(verify(dict(params, username="Zoë Astrom")) is None,
          f"{name}: refused with username changed")
    check(verify(dict(params, pushinfo=pushinfo.replace("db", "dc"))) is None,
          f"{name}: refused with pushinfo changed")
    check(date_is_fresh(date, email.utils.mktime_tz(email.utils.parsedate_tz(date))),
          f"{name}: duo_client's own date format is understood")


def main():
    with open(FIXTURES, encoding="utf-8") as f:
        vectors = [json.loads(line) for line in f if line.strip()]
    check(len(vectors) > 0, "the fixture file has vectors")
    for n, v in enumerate(vectors, 1):
        check_vector(n, v)
    for sig_version, digest_name in ((2, "sha512"), (2, "sha1"), (5, "sha512")):
        check_round_trip(sig_version, digest_name)
    print(f"duo_standin_selftest: {len(vectors)} reference vectors; "
          f"{passed} checks passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Duo Auth API v2 stand-in for Padlock's end-to-end tests.

Requests are verified the way Duo verifies them, using Duo's own Python library (`duo_client`)
to rebuild the expected signature, so Padlock's client and this server cannot agree on a wrong
one. Accepted: signature v2 (form-encoded POST body or GET query; HMAC-SHA512, or HMAC-SHA1 like
old integrations, told apart by the signature's length) and v5 (JSON POST body, or a GET with an
empty body; HMAC-SHA512 over the body's hash and the X-Duo-* headers' hash).

Refusals, checked in this order (Duo's JSON error body, `{"stat": "FAIL", "code", "message"}`):
  401 40101 "Missing request credentials"           no or malformed `Authorization: Basic`
  401 40102 "Invalid integration key in request credentials"
  401 40104 "Missing request timestamp"             no `Date` (nor `X-Duo-Date`) header
  401 40105 "Bad request timestamp"                 unparseable, or more than 300 s from now
  401 40103 "Invalid signature in request credentials"
  400 40002 "Invalid request parameters"            + `message_detail` naming the parameter
  404 40401 "Resource not found"                    any other method and path under /auth/v2

Scripted users (by username; more can be added at run time with /_control/user):
  approver    preauth `auth`; a push is approved after --approve-after-ms
  denier      preauth `auth`; a push is denied after --approve-after-ms
  silent      preauth `auth`; a push is never answered: after --push-timeout-secs it ends as
              result `deny`, status `timeout`
  unenrolled  preauth `enroll` (as is any unknown username)
  bypassed    preauth `allow`; /auth answers allow (status `bypass`)
  locked      preauth `deny` ("Your account is disabled."); /auth answers deny (`locked_out`)
Every user that can `auth` has the one device DEVICE_ID and accepts the passcode 123456 once
(a Duo passcode is single use); any other passcode is denied ("Incorrect passcode. Please try
again."). /auth for a user that cannot `auth` nor `allow`/`deny` is a 400 on `username`. Factors
`push` (and `auto`, which is push here) and `passcode` are supported; `phone` and `sms` are not.

/auth/v2/auth_status long-polls like Duo's: it answers at once when the transaction's status
changed since it was last reported, otherwise it waits for a change, at most LONG_POLL_SECS.

Enrolment: /auth/v2/enroll creates a user whose device is not activated yet (preauth `enroll`,
/enroll_status `waiting`). GETting its `activation_url` (what the phone would do) or
POST /_control/activate activates it: /enroll_status says `success`, and the user then behaves
like `approver`. `activation_barcode` is a PNG served at /frame/qr.

Unsigned control endpoints, for tests only (parameters in the query string; answer
`{"ok": true}`, or 400/404 `{"error": ...}`):
  POST /_control/rate_limit?count=N&retry_after=S  the next N verified requests answer 429 with
       `{"stat": "FAIL", "code": 42901, "message": "Too Many Requests"}` (and `Retry-After: S`)
  POST /_control/outage?on=1|0  while on, every /auth/v2/ request (ping included, before any
       check) answers HTTP 503 with a plain-text body, like a load balancer with no backend
  POST /_control/activate?user_id=U       activates U's pending enrolment
  POST /_control/push?txid=T&result=allow|deny   settles a waiting push by hand
  POST /_control/user?username=N&state=S  adds (or changes) a user with a scripted state above

Output: `ready <port>` once listening, then one JSON line per request received:
  {"method", "path", "params": {name: value}, "verified": true|false|null (null: not a signed
   endpoint, or not checked), "status": HTTP status answered, "signature": "v2-sha512"|"v2-sha1"|
   "v5-sha512" when verified, "pushinfo": {decoded pairs} when the request had one}
"""

import argparse
import base64
import binascii
import datetime
import email.utils
import hashlib
import hmac
import http.server
import ipaddress
import json
import secrets
import string
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib

from duo_client.client import sign

DEVICE_ID = "DPFZRS9FB0D46QFTM891"
DEVICE = {
    "device": DEVICE_ID,
    "type": "phone",
    "number": "XXX-XXX-0100",
    "name": "",
    "display_name": "iOS (XXX-XXX-0100)",
    "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"],
}
PASSCODE = "123456"
DATE_WINDOW_SECS = 300
LONG_POLL_SECS = 5
STATES = ("approver", "denier", "silent", "unenrolled", "bypassed", "locked")
# What a push to a user in each state turns into by itself (None: never answered).
PUSH_ANSWER = {"approver": "allow", "denier": "deny", "silent": None}
# The auth_status / auth body for each state of a transaction.
OUTCOMES = {
    name: {"result": result, "status": status, "status_msg": msg}
    for name, result, status, msg in [
        ("waiting", "waiting", "pushed", "Pushed a login request to your device..."),
        ("allow", "allow", "allow", "Success. Logging you in..."),
        ("deny", "deny", "deny", "Login request denied."),
        ("timeout", "deny", "timeout", "Login timed out."),
        ("bypass", "allow", "bypass", "Bypassing Duo for this user."),
        ("locked_out", "deny", "locked_out", "Your account is disabled."),
        ("bad_passcode", "deny", "deny", "Incorrect passcode. Please try again."),
    ]
}


class Fail(Exception):
    """A Duo error answer: HTTP status, Duo code, message, optional detail and headers."""

    def __init__(self, http_status, code, message, detail=None, headers=None):
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message
        self.detail, self.headers = detail, headers or {}

    def body(self):
        body = {"stat": "FAIL", "code": self.code, "message": self.message}
        if self.detail is not None:
            body["message_detail"] = self.detail
        return body


def bad_param(name):
    """Duo's answer to a missing or invalid parameter `name`."""
    return Fail(400, 40002, "Invalid request parameters", name)


# --- Signature verification -----------------------------------------------------------------


def check_signature(authorization, ikey, skey, method, host, path, params, date,
                    json_body=None, duo_headers=None):
    """Whether `authorization` is the `Basic base64(ikey:hex signature)` that Duo expects.

    `params` maps each name to its list of values (str or bytes, as decoded from the query string
    or form body); `json_body` is the raw JSON body of a sig v5 POST (None otherwise); `duo_headers`
    the request's X-Duo-* headers. The expected value is rebuilt with duo_client's own `sign` for
    every signature the request may carry and compared in constant time. Returns the matching
    signature's name ("v2-sha512", "v2-sha1", "v5-sha512") or None.
    """
    try:
        scheme, _, blob = authorization.partition(" ")
        sent = base64.b64decode(blob.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        return None
    if scheme.lower() != "basic":
        return None
    hex_len = len(sent.partition(b":")[2])
    candidates = []
    if json_body is not None:
        candidates.append(("v5-sha512", 5, hashlib.sha512, json_body))
    else:
        if hex_len == 128:
            candidates.append(("v2-sha512", 2, hashlib.sha512, None))
        elif hex_len == 40:
            candidates.append(("v2-sha1", 2, hashlib.sha1, None))
        if method.upper() not in ("POST", "PUT", "PATCH"):
            candidates.append(("v5-sha512", 5, hashlib.sha512, ""))
    matched = None
    for name, version, digest, body in candidates:
        try:
            expected = sign(ikey, skey, method, host, path, date, version, params,
                            body=body, digestmod=digest, additional_headers=duo_headers or {})
        except ValueError:  # an X-Duo-* header duo_client refuses (duplicate, NUL...)
            continue
        expected_creds = base64.b64decode(expected.split(" ", 1)[1])
        if hmac.compare_digest(expected_creds, sent) and matched is None:
            matched = name
    return matched


def credentials_ikey(authorization):
    """The integration key in a `Basic` Authorization header, or None if it is not one."""
    scheme, _, blob = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(blob.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    ikey, colon, sig = decoded.partition(":")
    return ikey if colon and ikey and sig else None


def date_is_fresh(value, now):
    """Whether an RFC 2822 date is within DATE_WINDOW_SECS of `now` (False if unparseable)."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    if when is None:
        return False
    if when.tzinfo is None:  # "-0000", which duo_client sends: UTC
        when = when.replace(tzinfo=datetime.timezone.utc)
    return abs(when.timestamp() - now) <= DATE_WINDOW_SECS


# --- State -----------------------------------------------------------------------------------


def random_id(prefix, length=20, alphabet=string.ascii_uppercase + string.digits):
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length - len(prefix)))


class User:
    """A Duo user: `state` is one of STATES, or "pending" until an enrolment is activated."""

    def __init__(self, username, state):
        self.username, self.state = username, state
        self.user_id = random_id("DU")
        self.passcode_used = False

    def can_auth(self):
        return self.state in PUSH_ANSWER


class Transaction:
    """A push in flight. Its status follows from the clock unless settled by hand."""

    def __init__(self, user, final=None):
        self.created = time.monotonic()
        self.answer = PUSH_ANSWER.get(user.state)
        self.final = final  # set at once for bypass/locked users, or by /_control/push
        self.reported = None  # the status the last auth_status answer carried

    def status(self, cfg):
        """Current state: "waiting", or a final OUTCOMES key."""
        if self.final is not None:
            return self.final
        age = time.monotonic() - self.created
        if self.answer is not None and age >= cfg.approve_after_ms / 1000:
            return self.answer
        if age >= cfg.push_timeout_secs:
            return "timeout"
        return "waiting"

    def next_change_in(self, cfg):
        """Seconds until the status changes by itself (None: it will not)."""
        if self.final is not None:
            return None
        age = time.monotonic() - self.created
        times = [cfg.push_timeout_secs]
        if self.answer is not None:
            times.append(cfg.approve_after_ms / 1000)
        ahead = [t - age for t in times if t > age]
        return min(ahead) if ahead else None


class Enrolment:
    """A device waiting to be activated; the code looks like Duo's `duo://<token>-<host>`."""

    def __init__(self, user, valid_secs, api_host):
        self.user = user
        self.token = random_id("", 20, string.ascii_letters + string.digits)
        host = base64.urlsafe_b64encode(api_host.encode()).decode().rstrip("=")
        self.activation_code = f"duo://{self.token}-{host}"
        self.expiration = int(time.time()) + valid_secs
        self.activated = False


class StandIn:
    """Everything the request handlers share, guarded by one condition variable."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.changed = threading.Condition()
        self.users = {name: User(name, name) for name in STATES}
        self.txns = {}
        self.enrolments = {}  # token -> Enrolment
        self.rate_limited = 0
        self.retry_after = None
        self.outage = False
        self.port = None

    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def user_by_id(self, user_id):
        return next((u for u in self.users.values() if u.user_id == user_id), None)


# --- Duo endpoints (called with the lock held unless noted) ----------------------------------


def lookup_user(s, p, *, allow_unknown):
    """The user named by `username` or `user_id`; an unknown username gives None."""
    if "user_id" in p:
        user = s.user_by_id(p["user_id"])
        if user is None:
            raise bad_param("user_id")
        return user
    if not p.get("username"):
        raise bad_param("username")
    user = s.users.get(p["username"])
    if user is None and not allow_unknown:
        raise bad_param("username")
    return user


def check_ipaddr(p):
    """Refuses an `ipaddr` that is not an IP address."""
    if "ipaddr" in p:
        try:
            ipaddress.ip_address(p["ipaddr"])
        except ValueError:
            raise bad_param("ipaddr") from None


def preauth(s, p):
    """POST /auth/v2/preauth: whether the user may authenticate (`auth`, with their devices),
    is let through (`allow`), refused (`deny`) or must enrol first (`enroll`)."""
    check_ipaddr(p)
    user = lookup_user(s, p, allow_unknown=True)
    if user is not None and user.can_auth():
        return {"result": "auth", "status_msg": "Account is active", "devices": [DEVICE]}
    if user is not None and user.state == "bypassed":
        return {"result": "allow", "status_msg": OUTCOMES["bypass"]["status_msg"]}
    if user is not None and user.state == "locked":
        return {"result": "deny", "status_msg": OUTCOMES["locked_out"]["status_msg"]}
    return {
        "result": "enroll",
        "status_msg": "Enroll an authentication device to proceed",
        "enroll_portal_url": f"https://{s.cfg.api_host}/portal?code={secrets.token_hex(8)}",
    }


def settled_without_factor(user):
    """The outcome for a user who is not asked for a factor (bypass or locked), else None."""
    return {"bypassed": "bypass", "locked": "locked_out"}.get(user.state)


def auth(s, p):
    """POST /auth/v2/auth. Returns the response, or a Transaction to wait on (sync push)."""
    check_ipaddr(p)
    user = lookup_user(s, p, allow_unknown=False)
    factor = p.get("factor")
    if factor not in ("push", "auto", "passcode"):
        raise bad_param("factor")
    fixed = settled_without_factor(user)
    if fixed is None and not user.can_auth():
        raise bad_param("username")
    if factor == "passcode":
        if "passcode" not in p:
            raise bad_param("passcode")
        if fixed is None:
            fixed = "bad_passcode"
            if p["passcode"] == PASSCODE and not user.passcode_used:
                user.passcode_used, fixed = True, "allow"
        return dict(OUTCOMES[fixed])
    if factor == "push" and not p.get("device"):
        raise bad_param("device")
    if p.get("device", "auto") not in ("auto", DEVICE_ID):
        raise bad_param("device")
    if len(p.get("pushinfo", "").encode()) >= 20000:
        raise bad_param("pushinfo")
    txn = Transaction(user, final=fixed)
    if p.get("async") in ("1", "true"):
        txid = str(uuid.uuid4())
        s.txns[txid] = txn
        return {"txid": txid}
    return txn


def enroll(s, p):
    """POST /auth/v2/enroll: creates a user (named, or with a made-up name) whose device waits
    to be activated."""
    username = p.get("username") or secrets.token_hex(16)
    if username in s.users:
        raise bad_param("username")
    try:
        valid_secs = int(p.get("valid_secs", "86400"))
    except ValueError:
        raise bad_param("valid_secs") from None
    if valid_secs <= 0:
        raise bad_param("valid_secs")
    user = User(username, "pending")
    s.users[username] = user
    e = Enrolment(user, valid_secs, s.cfg.api_host)
    s.enrolments[e.token] = e
    barcode_value = urllib.parse.quote(e.activation_code[len("duo://"):])
    return {
        "activation_barcode": f"{s.base()}/frame/qr?value={barcode_value}",
        "activation_code": e.activation_code,
        "activation_url": f"{s.base()}/iphone/{e.token}",
        "expiration": e.expiration,
        "user_id": user.user_id,
        "username": username,
    }


def enroll_status(s, p):
    """POST /auth/v2/enroll_status: `waiting`, `success` once activated, or `invalid` for an
    unknown pair or an expired code."""
    for name in ("user_id", "activation_code"):
        if not p.get(name):
            raise bad_param(name)
    pair = (p["user_id"], p["activation_code"])
    e = next((e for e in s.enrolments.values() if (e.user.user_id, e.activation_code) == pair), None)
    if e is None:
        return "invalid"
    if e.activated:
        return "success"
    return "waiting" if time.time() < e.expiration else "invalid"


def activate(s, e):
    """Marks an enrolment's device activated: its user now approves pushes."""
    if e.activated or time.time() >= e.expiration:
        return False
    e.activated = True
    e.user.state = "approver"
    s.changed.notify_all()
    return True


def wait_for_status(s, txn, give_up_at):
    """Waits (lock held) until `txn` is settled, leaves the state it last reported, or
    `give_up_at` passes; returns its status then."""
    while True:
        status = txn.status(s.cfg)
        left = give_up_at - time.monotonic()
        if status != "waiting" or status != txn.reported or left <= 0:
            return status
        change = txn.next_change_in(s.cfg)
        s.changed.wait(left if change is None else min(left, change + 0.01))


# --- HTTP ------------------------------------------------------------------------------------


def png(value):
    """A small valid greyscale PNG whose pixels come from `value`'s hash (no real QR code)."""
    size, scale = 21, 8
    bits = int.from_bytes(hashlib.sha512(value.encode()).digest(), "big")
    rows = b""
    for y in range(size * scale):
        row = bytes(0 if bits >> ((y // scale) * size + x // scale) % 512 & 1 else 255
                    for x in range(size * scale))
        rows += b"\x00" + row

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", size * scale, size * scale, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def parse_form(raw):
    """A query string or form body as {name: [values]}, names and values as the exact bytes sent
    (percent-escapes and `+` decoded, nothing re-encoded), which is what the signature covers."""
    pairs = urllib.parse.parse_qs(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return {k.encode("latin-1"): [v.encode("latin-1") for v in vs] for k, vs in pairs.items()}


def single_values(multi):
    """{name: [values]} as {name: value}, or {name: [values]} where a name repeats."""
    return {k: v[0] if len(v) == 1 else v for k, v in multi.items()}


def as_text(value):
    """A JSON body value as the string Duo would read (true -> "true", 1 -> "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DuoStandIn/1.0"
    log_lock = threading.Lock()

    def log_message(self, format, *args):  # the JSON lines on stdout are the log
        pass

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self):
        s = self.server.standin
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        self.record = {"method": self.command, "path": path, "params": {}, "verified": None}
        try:
            if path.startswith("/auth/v2/"):
                status, headers, body = self.duo(s, path, query, raw_body)
            else:
                status, headers, body = self.other(s, path, query)
        except Fail as f:
            status, headers = f.http_status, f.headers
            body = json.dumps(f.body()).encode()
            headers = {"Content-Type": "application/json", **headers}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record["status"] = status
        with self.log_lock:
            print(json.dumps(self.record), flush=True)

    # The Duo API: outage, signature, rate limit, then the endpoint.
    def duo(self, s, path, query, raw_body):
        with s.changed:
            if s.outage:
                return 503, {"Content-Type": "text/plain"}, b"503 Service Unavailable\n"
        is_json = self.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"
        if self.command == "POST" and not is_json:
            sig_params = parse_form(raw_body)
        else:
            sig_params = parse_form(query.encode("latin-1"))
        try:
            params, bad_params = self.app_params(sig_params, raw_body if is_json else None), None
        except Fail as f:  # answered once the signature is checked, as Duo would
            params, bad_params = {}, f
        self.record["params"] = params
        if "pushinfo" in params and isinstance(params["pushinfo"], str):
            pairs = urllib.parse.parse_qsl(params["pushinfo"], keep_blank_values=True)
            self.record["pushinfo"] = dict(pairs)
        if (self.command, path) == ("GET", "/auth/v2/ping"):
            return self.ok({"time": int(time.time())})
        self.authenticate(s, path, sig_params, raw_body if is_json else None)
        with s.changed:
            if s.rate_limited > 0:
                s.rate_limited -= 1
                headers = {} if s.retry_after is None else {"Retry-After": str(s.retry_after)}
                raise Fail(429, 42901, "Too Many Requests", headers=headers)
        if bad_params is not None:
            raise bad_params
        if not all(isinstance(v, str) for v in params.values()):
            raise bad_param(next(k for k, v in params.items() if not isinstance(v, str)))
        route = {
            ("GET", "/auth/v2/check"): lambda: {"time": int(time.time())},
            ("POST", "/auth/v2/preauth"): lambda: preauth(s, params),
            ("POST", "/auth/v2/auth"): lambda: auth(s, params),
            ("GET", "/auth/v2/auth_status"): lambda: self.auth_status(s, params),
            ("POST", "/auth/v2/enroll"): lambda: enroll(s, params),
            ("POST", "/auth/v2/enroll_status"): lambda: enroll_status(s, params),
        }.get((self.command, path))
        if route is None:
            raise Fail(404, 40401, "Resource not found")
        with s.changed:
            response = route()
            if isinstance(response, Transaction):  # a synchronous push: wait for its end
                give_up = time.monotonic() + s.cfg.push_timeout_secs + 1
                while response.status(s.cfg) == "waiting" and time.monotonic() < give_up:
                    response.reported = "waiting"
                    wait_for_status(s, response, give_up)
                response = dict(OUTCOMES[response.status(s.cfg)])
        return self.ok(response)

    def app_params(self, sig_params, json_body):
        """The request's parameters as text: {name: value} (a list where a name repeats)."""
        if json_body is not None:
            try:
                obj = json.loads(json_body)
            except ValueError:
                raise bad_param("body") from None
            if not isinstance(obj, dict):
                raise bad_param("body")
            return {k: as_text(v) for k, v in obj.items()}
        try:
            decoded = {k.decode(): [v.decode() for v in vs] for k, vs in sig_params.items()}
        except UnicodeDecodeError:
            raise Fail(400, 40002, "Invalid request parameters", "not UTF-8") from None
        return single_values(decoded)

    def authenticate(self, s, path, sig_params, json_body):
        """Refuses the request as Duo would unless it carries a valid signature."""
        self.record["verified"] = False
        authorization = self.headers.get("Authorization")
        ikey = credentials_ikey(authorization)
        if ikey is None:
            raise Fail(401, 40101, "Missing request credentials")
        if not hmac.compare_digest(ikey.encode(), s.cfg.ikey.encode()):
            raise Fail(401, 40102, "Invalid integration key in request credentials")
        date = self.headers.get("X-Duo-Date") or self.headers.get("Date")
        if not date:
            raise Fail(401, 40104, "Missing request timestamp")
        if not date_is_fresh(date, time.time()):
            raise Fail(401, 40105, "Bad request timestamp")
        duo_headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-duo-")}
        body_text = None
        if json_body is not None:
            try:
                body_text = json_body.decode("utf-8")
            except UnicodeDecodeError:
                raise Fail(401, 40103, "Invalid signature in request credentials") from None
        signature = check_signature(authorization, s.cfg.ikey, s.cfg.skey, self.command,
                                    s.cfg.api_host, path, sig_params, date,
                                    json_body=body_text, duo_headers=duo_headers)
        if signature is None:
            raise Fail(401, 40103, "Invalid signature in request credentials")
        self.record["verified"] = True
        self.record["signature"] = signature

    def auth_status(self, s, p):
        """GET /auth/v2/auth_status: long-polls for the next status of a transaction."""
        txn = s.txns.get(p.get("txid", ""))
        if txn is None:
            raise bad_param("txid")
        status = wait_for_status(s, txn, time.monotonic() + LONG_POLL_SECS)
        txn.reported = status
        return dict(OUTCOMES[status])

    def ok(self, response):
        body = json.dumps({"stat": "OK", "response": response}).encode()
        return 200, {"Content-Type": "application/json"}, body

    # Control endpoints, the phone's activation link and the QR image.
    def other(self, s, path, query):
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        self.record["params"] = q
        if self.command == "GET" and path == "/frame/qr":
            return 200, {"Content-Type": "image/png"}, png(q.get("value", ""))
        with s.changed:
            if self.command == "GET" and path.startswith("/iphone/"):
                e = s.enrolments.get(path[len("/iphone/"):])
                if e is None or not activate(s, e):
                    return 404, {"Content-Type": "text/plain"}, b"No such activation link\n"
                return 200, {"Content-Type": "text/plain"}, b"Duo Mobile activated\n"
            if self.command == "POST" and path.startswith("/_control/"):
                return self.control(s, path[len("/_control/"):], q)
        return 404, {"Content-Type": "text/plain"}, b"Not found\n"

    def control(self, s, name, q):
        def answer(status, **body):
            return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

        try:
            if name == "rate_limit":
                s.rate_limited = int(q["count"])
                s.retry_after = int(q["retry_after"]) if q.get("retry_after") else None
            elif name == "outage":
                s.outage = q["on"] == "1"
            elif name == "activate":
                e = next((e for e in s.enrolments.values() if e.user.user_id == q["user_id"]), None)
                if e is None or not activate(s, e):
                    return answer(404, error="no pending enrolment for this user_id")
            elif name == "push":
                txn = s.txns.get(q["txid"])
                if q["result"] not in ("allow", "deny"):
                    return answer(400, error="result must be allow or deny")
                if txn is None or txn.status(s.cfg) != "waiting":
                    return answer(404, error="no waiting push with this txid")
                txn.final = q["result"]
                s.changed.notify_all()
            elif name == "user":
                if q["state"] not in STATES:
                    return answer(400, error=f"state must be one of {', '.join(STATES)}")
                user = s.users.setdefault(q["username"], User(q["username"], q["state"]))
                user.state = q["state"]
            else:
                return answer(404, error="unknown control endpoint")
        except (KeyError, ValueError) as e:
            return answer(400, error=f"missing or invalid parameter: {e}")
        return answer(200, ok=True)


class Server(http.server.ThreadingHTTPServer):
    """Quiet about clients that hang up (a client dropping a pooled connection is not an error).
    Accepts many connections at once, as Duo does (the benchmark sends hundreds of pushes)."""

    request_queue_size = 1024

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ikey", required=True)
    parser.add_argument("--skey", required=True)
    parser.add_argument("--api-host", required=True, help="the host name clients sign with")
    parser.add_argument("--push-timeout-secs", type=float, default=60)
    parser.add_argument("--approve-after-ms", type=float, default=300)
    cfg = parser.parse_args()
    cfg.api_host = cfg.api_host.lower()
    server = Server(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    server.standin = StandIn(cfg)
    server.standin.port = server.server_address[1]
    print(f"ready {server.standin.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

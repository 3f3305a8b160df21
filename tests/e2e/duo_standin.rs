//! A Duo Auth API v2 stand-in for the Duo tests: `tests/peers/duo_standin.py`, which checks
//! every request's signature with Duo's own Python client (`duo_client`), independently of
//! Padlock's code, and answers as Duo does. Its scripted users, refusals and `/_control/`
//! endpoints are described at the top of that file.
//!
//! The tests here check the stand-in itself: its verifier against the reference vectors
//! (`tests/peers/duo_standin_selftest.py`), and its answers over HTTP to requests signed by
//! `duo_client` (sig v2 SHA-512 and SHA-1, sig v5) and to unsigned or badly signed ones.

use crate::harness::http;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// The one device every stand-in user that can `auth` has.
pub const DEVICE_ID: &str = "DPFZRS9FB0D46QFTM891";
/// The passcode every such user accepts, once.
pub const PASSCODE: &str = "123456";

/// The running stand-in; killed on drop.
pub struct DuoStandin {
    child: Child,
    /// `http://127.0.0.1:<port>`, where the stand-in listens.
    pub base_url: String,
    /// The integration key it accepts: `DI` and 18 upper-case letters or digits.
    pub ikey: String,
    /// The secret key, 40 characters.
    pub skey: String,
    /// The host name clients must sign with, `api-<8 hex>.duosecurity.com` (they connect to
    /// `base_url`).
    pub api_host: String,
    log: Mutex<RequestLog>,
}

/// The stand-in's request lines: those not read yet, and those read, each with whether
/// [`DuoStandin::wait_request`] returned it already.
struct RequestLog {
    lines: mpsc::Receiver<String>,
    seen: Vec<(Value, bool)>,
}

impl RequestLog {
    fn push(&mut self, line: &str) {
        let v = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the Duo stand-in printed {line:?}: {e}"));
        self.seen.push((v, false));
    }
}

impl DuoStandin {
    /// Starts the stand-in with fresh keys and its default timings (60 s push timeout, pushes
    /// approved after 300 ms).
    pub fn start() -> DuoStandin {
        DuoStandin::start_with(&[])
    }

    /// Starts the stand-in with extra arguments, e.g. `["--push-timeout-secs", "2"]` or
    /// `["--approve-after-ms", "100"]`.
    pub fn start_with(extra: &[&str]) -> DuoStandin {
        const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let ikey = format!("DI{}", random_string(18, UPPER_DIGITS));
        let skey = random_string(40, ALNUM);
        let api_host = format!(
            "api-{}.duosecurity.com",
            random_string(8, b"0123456789abcdef")
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/duo_standin.py");
        let mut child = Command::new("python3")
            .args(["-u", script, "--port", "0"])
            .args(["--ikey", &ikey, "--skey", &skey, "--api-host", &api_host])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with duo_client (installed by the README's test command)");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let ready = lines.recv_timeout(Duration::from_secs(20)).ok();
        let port = ready
            .as_deref()
            .and_then(|l| l.strip_prefix("ready "))
            .unwrap_or_else(|| panic!("the Duo stand-in did not start (it printed {ready:?})"));
        DuoStandin {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            ikey,
            skey,
            api_host,
            log: Mutex::new(RequestLog {
                lines,
                seen: Vec::new(),
            }),
        }
    }

    /// Every request the stand-in received so far, in order: `{"method", "path", "params",
    /// "verified", "status"}`, plus `"signature"` when verified and `"pushinfo"` (decoded)
    /// when the request had one.
    pub fn requests(&self) -> Vec<Value> {
        let mut log = self.log.lock().unwrap();
        while let Ok(line) = log.lines.try_recv() {
            log.push(&line);
        }
        log.seen.iter().map(|(v, _)| v.clone()).collect()
    }

    /// The next request to `path` that this method has not returned yet, waiting for it up
    /// to 20 s.
    pub fn wait_request(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = self.log.lock().unwrap();
        loop {
            if let Some((v, returned)) = log
                .seen
                .iter_mut()
                .find(|(v, returned)| !*returned && v["path"] == path)
            {
                *returned = true;
                return v.clone();
            }
            match log
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => log.push(&line),
                Err(_) => {
                    let paths: Vec<String> = log
                        .seen
                        .iter()
                        .map(|(v, _)| v["path"].to_string())
                        .collect();
                    panic!(
                        "no request to {path} reached the Duo stand-in in 20 s (it saw {paths:?})"
                    )
                }
            }
        }
    }

    /// Makes the next `count` verified requests answer 429 (Duo's code 42901), with
    /// `Retry-After: <secs>` when `retry_after` is given.
    pub fn rate_limit(&self, count: u32, retry_after: Option<u32>) {
        let mut query = vec![("count", count.to_string())];
        query.extend(retry_after.map(|s| ("retry_after", s.to_string())));
        self.control("rate_limit", &query);
    }

    /// Starts (`true`) or ends an outage: meanwhile every `/auth/v2/` request answers HTTP 503.
    pub fn outage(&self, on: bool) {
        self.control("outage", &[("on", if on { "1" } else { "0" }.to_owned())]);
    }

    /// Activates the pending enrolment of `user_id`, as scanning its QR code would.
    pub fn activate(&self, user_id: &str) {
        self.control("activate", &[("user_id", user_id.to_owned())]);
    }

    /// Answers a waiting push by hand: approved (`allow`) or denied.
    pub fn settle(&self, txid: &str, allow: bool) {
        let result = if allow { "allow" } else { "deny" };
        self.control(
            "push",
            &[("txid", txid.to_owned()), ("result", result.to_owned())],
        );
    }

    /// Adds (or changes) a user scripted as `state`: approver, denier, silent, unenrolled,
    /// bypassed or locked.
    pub fn add_user(&self, username: &str, state: &str) {
        self.control(
            "user",
            &[
                ("username", username.to_owned()),
                ("state", state.to_owned()),
            ],
        );
    }

    fn control(&self, endpoint: &str, query: &[(&str, String)]) {
        let r = http()
            .post(format!("{}/_control/{endpoint}", self.base_url))
            .query(query)
            .send()
            .expect("the Duo stand-in's control endpoint");
        let status = r.status();
        assert!(
            status.is_success(),
            "/_control/{endpoint} {query:?}: {status} {}",
            r.text().unwrap_or_default()
        );
    }
}

impl Drop for DuoStandin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `len` characters drawn from `alphabet` with the kernel's randomness.
fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

/// Duo's own Python client in a child process: signs for the stand-in's API host (or another
/// one) but connects to the stand-in on loopback; reads one call per line on stdin and prints
/// one answer per line. It does not retry on 429, so the test sees each answer.
const DUO_CLIENT_PROBE: &str = r#"
import email.utils, hashlib, http.client, json, sys, time
import duo_client

ikey, skey, host, port, sig_version, digest = sys.argv[1:7]
format_date, date_offset = email.utils.formatdate, [0]
email.utils.formatdate = lambda *a, **k: format_date(time.time() + date_offset[0])

class Probe(duo_client.Auth):
    tamper = None
    def _connect(self):
        return http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    def _make_request(self, method, uri, body, headers):
        if self.tamper:  # change the request after it was signed
            uri, body = uri.replace(*self.tamper), body and body.replace(*self.tamper)
        return super()._make_request(method, uri, body, headers)

client = Probe(ikey, skey, host, sig_version=int(sig_version), digestmod=getattr(hashlib, digest))
client._MAX_BACKOFF_WAIT_SECS = 0
for line in sys.stdin:
    call = json.loads(line)
    client.tamper, date_offset[0] = call["tamper"], call["date_offset"]
    response, data = client.api_call(call["method"], call["path"], call["params"])
    try:
        body = json.loads(data)
    except ValueError:
        body = data.decode("utf-8", "replace")
    print(json.dumps({"status": response.status, "retry_after": response.getheader("Retry-After"), "body": body}), flush=True)
"#;

/// A `duo_client` process (see [`DUO_CLIENT_PROBE`]).
struct DuoClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// One answer as `duo_client` received it.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Reply {
    /// The `response` of a `{"stat": "OK"}` answer; panics on anything else.
    fn ok(self) -> Value {
        assert!(
            self.status == 200 && self.body["stat"] == "OK",
            "expected a Duo success, got {self:?}"
        );
        self.body["response"].clone()
    }

    /// Asserts a Duo failure: HTTP status, Duo code and message.
    fn assert_fail(&self, status: u16, code: u32, message: &str) {
        assert_eq!(
            (
                self.status,
                &self.body["stat"],
                &self.body["code"],
                &self.body["message"]
            ),
            (status, &json!("FAIL"), &json!(code), &json!(message)),
            "{self:?}"
        );
    }
}

impl DuoClient {
    /// `duo_client` with `duo`'s keys and host, signing with `sig_version` (2 or 5) and
    /// `digest` ("sha512" or "sha1", v2 only).
    fn new(duo: &DuoStandin, sig_version: u8, digest: &str) -> DuoClient {
        DuoClient::with_keys(
            duo,
            &duo.ikey,
            &duo.skey,
            &duo.api_host,
            sig_version,
            digest,
        )
    }

    fn with_keys(
        duo: &DuoStandin,
        ikey: &str,
        skey: &str,
        host: &str,
        sig_version: u8,
        digest: &str,
    ) -> DuoClient {
        let port = duo.base_url.rsplit(':').next().unwrap();
        let mut child = Command::new("python3")
            .args(["-X", "utf8", "-c", DUO_CLIENT_PROBE, ikey, skey, host, port])
            .args([&sig_version.to_string(), digest])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with duo_client");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        DuoClient {
            child,
            stdin,
            stdout,
        }
    }

    /// A request signed as `duo_client` signs it.
    fn call(&mut self, method: &str, path: &str, params: Value) -> Reply {
        self.call_altered(method, path, params, None, 0)
    }

    /// A request whose text has `tamper.0` replaced by `tamper.1` after signing, and whose
    /// `Date` is `date_offset` seconds from now.
    fn call_altered(
        &mut self,
        method: &str,
        path: &str,
        params: Value,
        tamper: Option<(&str, &str)>,
        date_offset: i64,
    ) -> Reply {
        let call = json!({"method": method, "path": path, "params": params,
                          "tamper": tamper.map(|(a, b)| [a, b]), "date_offset": date_offset});
        writeln!(self.stdin, "{call}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("duo_client answered {line:?} to {call}: {e}"));
        Reply {
            status: u16::try_from(v["status"].as_u64().unwrap()).unwrap(),
            retry_after: v["retry_after"].as_str().map(str::to_owned),
            body: v["body"].clone(),
        }
    }

    fn preauth(&mut self, username: &str) -> Value {
        self.call("POST", "/auth/v2/preauth", json!({"username": username}))
            .ok()
    }

    /// Starts a push for `username` and returns its txid.
    fn push_async(&mut self, username: &str) -> String {
        let r = self.call(
            "POST",
            "/auth/v2/auth",
            json!({"username": username, "factor": "push", "device": "auto", "async": "1"}),
        );
        r.ok()["txid"].as_str().unwrap().to_owned()
    }

    fn auth_status(&mut self, txid: &str) -> Value {
        self.call("GET", "/auth/v2/auth_status", json!({"txid": txid}))
            .ok()
    }

    /// Polls auth_status until the push is no longer waiting (at most 10 polls).
    fn push_outcome(&mut self, txid: &str) -> Value {
        for _ in 0..10 {
            let status = self.auth_status(txid);
            if status["result"] != "waiting" {
                return status;
            }
            assert_eq!(status["status"], "pushed", "{status}");
        }
        panic!("push {txid} still waiting after 10 polls");
    }
}

impl Drop for DuoClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn duo_standin_selftest_accepts_every_reference_vector() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/duo_standin_selftest.py");
    let out = Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 with duo_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the self-test failed:\n{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}

#[test]
fn duo_standin_refuses_what_duo_refuses() {
    let duo = DuoStandin::start();
    let preauth = format!("{}/auth/v2/preauth", duo.base_url);
    let fail = |r: reqwest::blocking::Response, code: u32, message: &str| {
        assert_eq!(r.status(), 401);
        let body: Value = r.json().unwrap();
        assert_eq!(
            body,
            json!({"stat": "FAIL", "code": code, "message": message})
        );
    };

    // Ping needs no signature; everything else does.
    let ping: Value = http()
        .get(format!("{}/auth/v2/ping", duo.base_url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ping["stat"], "OK");
    assert!(ping["response"]["time"].as_u64().unwrap() > 1_700_000_000);
    let unsigned = http().post(&preauth).form(&[("username", "approver")]);
    fail(
        unsigned.send().unwrap(),
        40101,
        "Missing request credentials",
    );

    let basic = |ikey: &str| {
        use base64::Engine;
        let creds = format!("{ikey}:{}", "0".repeat(128));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };
    let request = |authorization: String, date: Option<&str>| {
        let mut r = http()
            .post(&preauth)
            .header("Authorization", authorization)
            .form(&[("username", "approver")]);
        if let Some(date) = date {
            r = r.header("Date", date);
        }
        r.send().unwrap()
    };
    let old_date = "Tue, 21 Aug 2012 17:29:18 -0000";
    fail(
        request(basic("DIXXXXXXXXXXXXXXXXXX"), Some(old_date)),
        40102,
        "Invalid integration key in request credentials",
    );
    fail(
        request(basic(&duo.ikey), None),
        40104,
        "Missing request timestamp",
    );
    fail(
        request(basic(&duo.ikey), Some(old_date)),
        40105,
        "Bad request timestamp",
    );

    // Signed by duo_client, then something differs from what the stand-in expects.
    let invalid = "Invalid signature in request credentials";
    let params = json!({"username": "approver"});
    let mut wrong_skey =
        DuoClient::with_keys(&duo, &duo.ikey, &"x".repeat(40), &duo.api_host, 2, "sha512");
    wrong_skey
        .call("POST", "/auth/v2/preauth", params.clone())
        .assert_fail(401, 40103, invalid);
    let mut other_host = DuoClient::with_keys(
        &duo,
        &duo.ikey,
        &duo.skey,
        "api-00000000.duosecurity.com",
        2,
        "sha512",
    );
    other_host
        .call("POST", "/auth/v2/preauth", params.clone())
        .assert_fail(401, 40103, invalid);
    for (sig_version, digest) in [(2, "sha512"), (2, "sha1"), (5, "sha512")] {
        let mut client = DuoClient::new(&duo, sig_version, digest);
        let tamper = Some(("approver", "approves"));
        client
            .call_altered("POST", "/auth/v2/preauth", params.clone(), tamper, 0)
            .assert_fail(401, 40103, invalid);
        let tamper = Some(("txid=1", "txid=2"));
        client
            .call_altered(
                "GET",
                "/auth/v2/auth_status",
                json!({"txid": "1"}),
                tamper,
                0,
            )
            .assert_fail(401, 40103, invalid);
        client
            .call_altered("POST", "/auth/v2/preauth", params.clone(), None, 301)
            .assert_fail(401, 40105, "Bad request timestamp");
        client
            .call_altered("POST", "/auth/v2/preauth", params.clone(), None, -301)
            .assert_fail(401, 40105, "Bad request timestamp");
        // Within 300 s is accepted.
        let r = client.call_altered("POST", "/auth/v2/preauth", params.clone(), None, 200);
        assert_eq!(r.ok()["result"], "auth");
    }

    // The log says what was refused and why.
    let log = duo.requests();
    let preauths: Vec<&Value> = log
        .iter()
        .filter(|r| r["path"] == "/auth/v2/preauth")
        .collect();
    assert_eq!(preauths.len(), 6 + 3 * 4);
    assert!(
        preauths[..6]
            .iter()
            .all(|r| r["verified"] == false && r["status"] == 401),
        "{preauths:?}"
    );
    assert_eq!(preauths[0]["params"], json!({"username": "approver"}));
    let accepted: Vec<&Value> = preauths
        .iter()
        .copied()
        .filter(|r| r["status"] == 200)
        .collect();
    let signatures: Vec<&Value> = accepted.iter().map(|r| &r["signature"]).collect();
    assert_eq!(
        signatures,
        [&json!("v2-sha512"), &json!("v2-sha1"), &json!("v5-sha512")]
    );
    assert!(accepted.iter().all(|r| r["verified"] == true));
}

#[test]
fn duo_standin_scripted_users_over_duo_client() {
    let duo = DuoStandin::start_with(&["--push-timeout-secs", "3", "--approve-after-ms", "1000"]);
    let mut client = DuoClient::new(&duo, 2, "sha512");

    for username in ["approver", "denier", "silent"] {
        let pre = client.preauth(username);
        assert_eq!(pre["result"], "auth", "{username}: {pre}");
        assert_eq!(pre["devices"][0]["device"], DEVICE_ID);
        assert_eq!(
            pre["devices"][0]["capabilities"],
            json!(["auto", "push", "sms", "phone", "mobile_otp"])
        );
    }
    assert_eq!(client.preauth("bypassed")["result"], "allow");
    let locked = client.preauth("locked");
    assert_eq!(
        (&locked["result"], &locked["status_msg"]),
        (&json!("deny"), &json!("Your account is disabled."))
    );
    for username in ["unenrolled", "nobody", "Zoë Åström"] {
        let pre = client.preauth(username);
        assert_eq!(pre["result"], "enroll", "{username}: {pre}");
        let portal = pre["enroll_portal_url"].as_str().unwrap();
        assert!(
            portal.starts_with(&format!("https://{}/portal?", duo.api_host)),
            "{portal}"
        );
    }

    // Asynchronous pushes: auth_status reports "pushed" once, then long-polls for the answer.
    let push = json!({"username": "approver", "factor": "push", "device": DEVICE_ID, "async": "1",
                      "type": "Login", "display_username": "Zoë ~O'Hara",
                      "pushinfo": "from=ssh&host=db%201&org=Soci%C3%A9t%C3%A9%20G%C3%A9n%C3%A9rale"});
    let txid = client.call("POST", "/auth/v2/auth", push).ok()["txid"]
        .as_str()
        .unwrap()
        .to_owned();
    let logged = duo.wait_request("/auth/v2/auth");
    assert_eq!(
        logged["pushinfo"],
        json!({"from": "ssh", "host": "db 1", "org": "Société Générale"})
    );
    assert_eq!(logged["params"]["display_username"], "Zoë ~O'Hara");
    let first = client.auth_status(&txid);
    assert_eq!(
        (&first["result"], &first["status"]),
        (&json!("waiting"), &json!("pushed"))
    );
    let started = Instant::now();
    let approved = client.auth_status(&txid);
    assert_eq!(
        approved,
        json!({"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
    );
    // It answered when the push was approved, not at the end of its 5 s long poll.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the long poll took {:?}",
        started.elapsed()
    );
    let txid = client.push_async("denier");
    assert_eq!(
        client.push_outcome(&txid),
        json!({"result": "deny", "status": "deny", "status_msg": "Login request denied."})
    );
    let txid = client.push_async("silent");
    let timed_out = client.push_outcome(&txid);
    assert_eq!(
        (&timed_out["result"], &timed_out["status"]),
        (&json!("deny"), &json!("timeout"))
    );
    let txid = client.push_async("bypassed");
    assert_eq!(client.push_outcome(&txid)["status"], "bypass");
    // A settled push is reported at once, however often it is asked for.
    let started = Instant::now();
    assert_eq!(client.auth_status(&txid)["status"], "bypass");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A synchronous push answers once settled.
    let sync = json!({"username": "approver", "factor": "push", "device": "auto"});
    assert_eq!(
        client.call("POST", "/auth/v2/auth", sync).ok()["result"],
        "allow"
    );

    // The passcode works once per user.
    let passcode = |username: &str, code: &str| json!({"username": username, "factor": "passcode", "passcode": code});
    let allowed = client
        .call("POST", "/auth/v2/auth", passcode("approver", PASSCODE))
        .ok();
    assert_eq!(
        (&allowed["result"], &allowed["status"]),
        (&json!("allow"), &json!("allow"))
    );
    let incorrect = json!({"result": "deny", "status": "deny",
                           "status_msg": "Incorrect passcode. Please try again."});
    let again = client
        .call("POST", "/auth/v2/auth", passcode("approver", PASSCODE))
        .ok();
    assert_eq!(again, incorrect);
    let wrong = client
        .call("POST", "/auth/v2/auth", passcode("denier", "654321"))
        .ok();
    assert_eq!(wrong, incorrect);
    let locked = client
        .call("POST", "/auth/v2/auth", passcode("locked", PASSCODE))
        .ok();
    assert_eq!(
        (&locked["result"], &locked["status"]),
        (&json!("deny"), &json!("locked_out"))
    );

    // Parameter errors: 400 with the parameter named.
    let invalid = |r: Reply, detail: &str| {
        r.assert_fail(400, 40002, "Invalid request parameters");
        assert_eq!(r.body["message_detail"], detail, "{r:?}");
    };
    invalid(
        client.call("GET", "/auth/v2/auth_status", json!({"txid": "nope"})),
        "txid",
    );
    invalid(
        client.call(
            "POST",
            "/auth/v2/auth",
            json!({"username": "approver", "factor": "push"}),
        ),
        "device",
    );
    invalid(
        client.call(
            "POST",
            "/auth/v2/auth",
            json!({"username": "unenrolled", "factor": "push", "device": "auto"}),
        ),
        "username",
    );
    invalid(
        client.call(
            "POST",
            "/auth/v2/preauth",
            json!({"username": "approver", "ipaddr": "not-an-ip"}),
        ),
        "ipaddr",
    );
    invalid(
        client.call("POST", "/auth/v2/preauth", json!({})),
        "username",
    );
    client
        .call("POST", "/auth/v2/nowhere", json!({}))
        .assert_fail(404, 40401, "Resource not found");

    // Old SHA-1 integrations and sig v5 (JSON bodies, and GETs) are verified too.
    for (sig_version, digest) in [(2, "sha1"), (5, "sha512")] {
        let mut other = DuoClient::new(&duo, sig_version, digest);
        assert!(
            other.call("GET", "/auth/v2/check", json!({})).ok()["time"]
                .as_u64()
                .is_some()
        );
        let txid = other.push_async("approver");
        assert_eq!(other.push_outcome(&txid)["result"], "allow");
    }
    let log = duo.requests();
    assert!(log.iter().all(|r| r["status"] != 401), "{log:?}");
    let signature_of = |path: &str| -> Vec<&Value> {
        log.iter()
            .filter(|r| r["path"] == path)
            .map(|r| &r["signature"])
            .collect()
    };
    assert_eq!(
        signature_of("/auth/v2/check"),
        [&json!("v2-sha1"), &json!("v5-sha512")]
    );
}

#[test]
fn duo_standin_enrols_and_activates() {
    let duo = DuoStandin::start_with(&["--approve-after-ms", "100"]);
    let mut client = DuoClient::new(&duo, 2, "sha512");

    let enrolled = client
        .call(
            "POST",
            "/auth/v2/enroll",
            json!({"username": "newbie", "valid_secs": "600"}),
        )
        .ok();
    assert_eq!(enrolled["username"], "newbie");
    let user_id = enrolled["user_id"].as_str().unwrap().to_owned();
    let code = enrolled["activation_code"].as_str().unwrap().to_owned();
    assert!(
        user_id.starts_with("DU") && user_id.len() == 20,
        "{user_id}"
    );
    assert!(code.starts_with("duo://"), "{code}");
    assert!(enrolled["expiration"].as_u64().is_some());
    let status = |client: &mut DuoClient, user_id: &str, code: &str| {
        let r = client.call(
            "POST",
            "/auth/v2/enroll_status",
            json!({"user_id": user_id, "activation_code": code}),
        );
        r.ok()
    };
    assert_eq!(status(&mut client, &user_id, &code), "waiting");
    assert_eq!(status(&mut client, &user_id, "duo://wrong"), "invalid");
    assert_eq!(client.preauth("newbie")["result"], "enroll");
    client
        .call("POST", "/auth/v2/enroll", json!({"username": "approver"}))
        .assert_fail(400, 40002, "Invalid request parameters");

    // The QR code is an image; opening the activation link is what the phone does.
    let barcode = http()
        .get(enrolled["activation_barcode"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(barcode.headers()["content-type"], "image/png");
    assert!(barcode.bytes().unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    let activation = http()
        .get(enrolled["activation_url"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(activation.status(), 200);
    assert_eq!(status(&mut client, &user_id, &code), "success");
    assert_eq!(client.preauth("newbie")["result"], "auth");
    let txid = client.push_async("newbie");
    assert_eq!(client.push_outcome(&txid)["result"], "allow");

    // Without a username, Duo makes one up; the control endpoint activates too.
    let second = client.call("POST", "/auth/v2/enroll", json!({})).ok();
    let user_id = second["user_id"].as_str().unwrap();
    let code = second["activation_code"].as_str().unwrap();
    assert!(!second["username"].as_str().unwrap().is_empty());
    duo.activate(user_id);
    assert_eq!(status(&mut client, user_id, code), "success");
}

#[test]
fn duo_standin_control_endpoints() {
    let duo = DuoStandin::start_with(&["--approve-after-ms", "100"]);
    let mut client = DuoClient::new(&duo, 2, "sha512");
    let check = |client: &mut DuoClient| client.call("GET", "/auth/v2/check", json!({}));

    duo.rate_limit(2, Some(7));
    for _ in 0..2 {
        let r = check(&mut client);
        r.assert_fail(429, 42901, "Too Many Requests");
        assert_eq!(r.retry_after.as_deref(), Some("7"));
    }
    assert_eq!(check(&mut client).status, 200);
    duo.rate_limit(1, None);
    let r = check(&mut client);
    assert_eq!((r.status, r.retry_after), (429, None));
    assert_eq!(check(&mut client).status, 200);

    duo.outage(true);
    assert_eq!(check(&mut client).status, 503);
    let ping = http()
        .get(format!("{}/auth/v2/ping", duo.base_url))
        .send()
        .unwrap();
    assert_eq!(ping.status(), 503);
    duo.outage(false);
    assert_eq!(check(&mut client).status, 200);

    duo.add_user("carol", "denier");
    assert_eq!(client.preauth("carol")["result"], "auth");
    let txid = client.push_async("carol");
    assert_eq!(client.push_outcome(&txid)["result"], "deny");
    duo.add_user("carol", "locked");
    assert_eq!(client.preauth("carol")["result"], "deny");

    // A push nobody answers can be settled by hand, either way.
    for allow in [true, false] {
        let txid = client.push_async("silent");
        duo.settle(&txid, allow);
        let outcome = client.push_outcome(&txid);
        assert_eq!(
            outcome["result"],
            if allow { "allow" } else { "deny" },
            "{outcome}"
        );
    }
    let settle = duo.wait_request("/_control/push");
    assert_eq!(settle["params"]["result"], "allow");
    assert_eq!(
        duo.wait_request("/_control/push")["params"]["result"],
        "deny"
    );
}

//! Every answer and transport failure of Padlock's PAM API, served by a tiny responder on a real
//! socket, mapped to its PAM result in both failmodes; TLS trust; the environment ignored; no
//! thread left behind.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use super::*;
use crate::config::tests::Dir;
use crate::config::{FailMode, UnknownUser};
use crate::flow::tests::ScriptedConv;
use crate::flow::{self, Code, Settings};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Mutex;

/// What the responder does with the next request.
#[derive(Debug, Clone)]
enum Reply {
    /// A status with a JSON body, then close.
    Http(u16, Vec<u8>),
    /// Accept, read, never answer (the connection is held open).
    Silent,
}

fn json(body: &str) -> Reply {
    Reply::Http(200, body.as_bytes().to_vec())
}

fn status(code: u16) -> Reply {
    Reply::Http(code, br#"{"error":"x"}"#.to_vec())
}

/// A request as the responder saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    authorization: Option<String>,
    body: String,
}

/// A one-thread HTTP/1.1 responder (optionally over TLS) that answers from a script.
struct Responder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl Responder {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::new()));
        let (s, r) = (seen.clone(), replies.clone());
        std::thread::spawn(move || {
            let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                match &tls {
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                        let mut tls_stream = rustls::StreamOwned::new(conn, stream);
                        if serve(&mut tls_stream, &s, &r) {
                            held.push(Box::new(tls_stream));
                        }
                    }
                    None => {
                        let mut stream = stream;
                        if serve(&mut stream, &s, &r) {
                            held.push(Box::new(stream));
                        }
                    }
                }
            }
        });
        Responder {
            port,
            seen,
            replies,
        }
    }

    fn script(&self, replies: &[Reply]) {
        let mut queue = self.replies.lock().unwrap();
        queue.clear();
        queue.extend(replies.iter().cloned());
        self.seen.lock().unwrap().clear();
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves one request; `true` when the connection is to be held open unanswered.
fn serve<S: Read + Write>(
    stream: &mut S,
    seen: &Mutex<Vec<Seen>>,
    replies: &Mutex<VecDeque<Reply>>,
) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.first() == Some(&0x16) {
            // A TLS ClientHello on a plain port: answer as an HTTP server would.
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            return false;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().unwrap().push(Seen {
        line: head.lines().next().unwrap_or_default().to_owned(),
        authorization: header("authorization"),
        body: String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned(),
    });
    let reply = replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| status(500));
    match reply {
        Reply::Silent => true,
        Reply::Http(code, body) => {
            let mut out = format!(
                "HTTP/1.1 {code} Whatever\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            let _ = stream.write_all(&out);
            let _ = stream.flush();
            false
        }
    }
}

fn config(url: &str, failmode: FailMode) -> PamConfig {
    PamConfig {
        url: url.to_owned(),
        host_id: "h_test".into(),
        host_secret_file: "/unused".into(),
        ca_file: None,
        timeout_secs: 1,
        failmode,
        unknown_user: UnknownUser::Deny,
        prompts: 3,
        duo_autopush: false,
    }
}

fn request() -> PreauthRequest {
    PreauthRequest {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some("192.0.2.7".into()),
        tty: None,
        unknown_user: UnknownUser::Deny,
    }
}

/// A whole login against `config`, the user typing `answers`.
fn login(config: &PamConfig, answers: &[&[u8]]) -> (Code, ScriptedConv) {
    let mut client = Client::new(config, &HostSecret::for_tests("s3cret")).unwrap();
    let mut conv = ScriptedConv::typing(answers);
    let settings = Settings {
        poll_interval: Duration::from_millis(5),
        ..Settings::from_config(config)
    };
    let ending = flow::login(&request(), &settings, &mut conv, &mut client);
    assert!(!ending.log.contains("s3cret"));
    (ending.code, conv)
}

const CHALLENGE: &str = r#"{"result":"challenge","txid":"tx1","method":"totp","prompt":"Code from your authenticator app: "}"#;

#[test]
fn every_api_answer_becomes_its_pam_result() {
    let r = Responder::start(None);
    let url = format!("http://127.0.0.1:{}", r.port);
    let cases: Vec<(&str, Vec<Reply>, Code)> = vec![
        (
            "preauth allow",
            vec![json(r#"{"result":"allow"}"#)],
            Code::Success,
        ),
        (
            "preauth unknown without ignore",
            vec![json(r#"{"result":"unknown"}"#)],
            Code::AuthInfoUnavail,
        ),
        (
            "preauth deny",
            vec![json(
                r#"{"result":"deny","message":"Your account is disabled."}"#,
            )],
            Code::AuthErr,
        ),
        (
            "challenge, allow",
            vec![json(CHALLENGE), json(r#"{"result":"allow"}"#)],
            Code::Success,
        ),
        (
            "challenge, retry ×3",
            vec![
                json(CHALLENGE),
                json(r#"{"result":"retry","message":"Wrong code."}"#),
                json(r#"{"result":"retry","message":"Wrong code."}"#),
                json(r#"{"result":"retry","message":"Wrong code."}"#),
            ],
            Code::MaxTries,
        ),
        (
            "challenge, deny",
            vec![
                json(CHALLENGE),
                json(r#"{"result":"deny","message":"Locked for 15 minutes."}"#),
            ],
            Code::AuthErr,
        ),
        (
            "challenge, pending for a totp code",
            vec![json(CHALLENGE), json(r#"{"result":"pending"}"#)],
            Code::AuthInfoUnavail,
        ),
    ];
    for mode in [FailMode::Secure, FailMode::Safe] {
        for (name, replies, want) in &cases {
            r.script(replies);
            let (code, _) = login(&config(&url, mode), &[b"111111", b"222222", b"333333"]);
            assert_eq!(code, *want, "{name} ({mode:?})");
        }
    }
    // unknown with unknown_user = ignore: PAM_IGNORE, and the request said so.
    r.script(&[json(r#"{"result":"unknown"}"#)]);
    let mut client = Client::new(
        &config(&url, FailMode::Safe),
        &HostSecret::for_tests("s3cret"),
    )
    .unwrap();
    let req = PreauthRequest {
        unknown_user: UnknownUser::Ignore,
        ..request()
    };
    let ending = flow::login(
        &req,
        &Settings::from_config(&config(&url, FailMode::Safe)),
        &mut ScriptedConv::default(),
        &mut client,
    );
    assert_eq!(ending.code, Code::Ignore);
    assert!(r.seen()[0].body.contains(r#""unknown_user":"ignore""#));
}

#[test]
fn requests_carry_the_host_credential_and_the_documented_bodies() {
    let r = Responder::start(None);
    let url = format!("http://127.0.0.1:{}/", r.port);
    r.script(&[
        json(CHALLENGE),
        json(r#"{"result":"retry","message":"Wrong code."}"#),
        json(r#"{"result":"allow"}"#),
    ]);
    let (code, conv) = login(
        &config(&url, FailMode::Secure),
        &[b"123456", b"", b"654321"],
    );
    assert_eq!(code, Code::Success);
    assert_eq!(conv.errors(), ["Wrong code.", "No code entered."]);
    let seen = r.seen();
    assert_eq!(seen.len(), 3, "the empty answer is not sent: {seen:?}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("h_test:s3cret")
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&basic))
    );
    assert_eq!(seen[0].line, "POST /pam/v1/preauth HTTP/1.1");
    let pre: PreauthRequest = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(pre, request());
    assert_eq!(seen[1].line, "POST /pam/v1/auth HTTP/1.1");
    let auth: AuthRequest = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(
        (auth.txid.as_str(), auth.answer.as_str()),
        ("tx1", "123456")
    );
    let auth: AuthRequest = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(auth.answer, "654321");
}

#[test]
fn a_duo_push_is_polled_through_auth_status() {
    let r = Responder::start(None);
    let url = format!("http://127.0.0.1:{}", r.port);
    r.script(&[
        json(
            r#"{"result":"challenge","txid":"tx 1&x","method":"duo","prompt":"Duo passcode, or press Enter for a push to your phone: "}"#,
        ),
        json(r#"{"result":"pending"}"#),
        json(r#"{"result":"pending"}"#),
        json(r#"{"result":"allow"}"#),
    ]);
    let (code, conv) = login(&config(&url, FailMode::Secure), &[b""]);
    assert_eq!(code, Code::Success);
    assert_eq!(conv.infos(), ["Duo push approved."]);
    let seen = r.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen[1].body.contains(r#""answer":"""#));
    assert_eq!(
        seen[2].line,
        "GET /pam/v1/auth_status?txid=tx%201%26x HTTP/1.1"
    );
}

/// The PAM result of a login whose first call meets `replies`, in each failmode.
fn both_modes(
    url: &str,
    ca_file: Option<&Path>,
    replies: &[Reply],
    r: Option<&Responder>,
) -> [Code; 2] {
    [FailMode::Secure, FailMode::Safe].map(|mode| {
        if let Some(r) = r {
            r.script(replies);
        }
        let mut c = config(url, mode);
        c.ca_file = ca_file.map(Path::to_owned);
        login(&c, &[b"123456"]).0
    })
}

const UNREACHABLE: [Code; 2] = [Code::AuthInfoUnavail, Code::Success];
const UNTRUSTED: [Code; 2] = [Code::AuthInfoUnavail, Code::AuthInfoUnavail];

#[test]
fn http_failures_follow_design_8() {
    let r = Responder::start(None);
    let url = format!("http://127.0.0.1:{}", r.port);
    for code in [502, 503, 504] {
        assert_eq!(
            both_modes(&url, None, &[status(code)], Some(&r)),
            UNREACHABLE,
            "{code}"
        );
        // The same mid-conversation: Padlock answered the challenge, so it was reachable; a
        // failure afterwards refuses in both modes.
        assert_eq!(
            both_modes(&url, None, &[json(CHALLENGE), status(code)], Some(&r)),
            UNTRUSTED,
            "{code} at auth"
        );
    }
    for code in [301, 302, 400, 401, 403, 404, 422, 429, 500, 201, 204] {
        assert_eq!(
            both_modes(&url, None, &[status(code)], Some(&r)),
            UNTRUSTED,
            "{code}"
        );
        assert_eq!(
            both_modes(&url, None, &[json(CHALLENGE), status(code)], Some(&r)),
            UNTRUSTED,
            "{code} at auth"
        );
    }
    let malformed = [
        json("not json"),
        json(r#"{"result":"maybe"}"#),
        json(r#"{"result":"deny"}"#),
        json(""),
    ];
    for bad in &malformed {
        assert_eq!(
            both_modes(&url, None, std::slice::from_ref(bad), Some(&r)),
            UNTRUSTED,
            "{bad:?}"
        );
        assert_eq!(
            both_modes(&url, None, &[json(CHALLENGE), bad.clone()], Some(&r)),
            UNTRUSTED,
            "{bad:?} at auth"
        );
    }
    // Valid JSON padded past the cap: refused for its size, not parsed.
    let mut big = br#"{"result":"allow"}"#.to_vec();
    big.resize(MAX_BODY_BYTES as usize + 1, b' ');
    assert_eq!(
        both_modes(&url, None, &[Reply::Http(200, big)], Some(&r)),
        UNTRUSTED
    );
    let mut fits = br#"{"result":"allow"}"#.to_vec();
    fits.resize(MAX_BODY_BYTES as usize, b' ');
    assert_eq!(
        both_modes(&url, None, &[Reply::Http(200, fits)], Some(&r)),
        [Code::Success; 2]
    );
}

#[test]
fn a_padlock_that_never_answers_times_out_as_unreachable() {
    let r = Responder::start(None);
    let url = format!("http://127.0.0.1:{}", r.port);
    assert_eq!(
        both_modes(&url, None, &[Reply::Silent], Some(&r)),
        UNREACHABLE
    );
    // After the challenge a timeout (which a local user can cause by suspending sudo or su)
    // refuses in both modes.
    assert_eq!(
        both_modes(&url, None, &[json(CHALLENGE), Reply::Silent], Some(&r)),
        UNTRUSTED
    );
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(both_modes(&url, None, &[], None), UNREACHABLE);
}

#[test]
fn transport_errors_are_classified() {
    use std::io::{Error as IoError, ErrorKind};
    for (e, want) in [
        (Error::HostNotFound, CallFailure::Unreachable),
        (
            Error::Timeout(ureq::Timeout::Connect),
            CallFailure::Unreachable,
        ),
        (
            Error::Timeout(ureq::Timeout::Global),
            CallFailure::Unreachable,
        ),
        (
            Error::Io(IoError::from(ErrorKind::ConnectionRefused)),
            CallFailure::Unreachable,
        ),
        (
            Error::Io(IoError::from(ErrorKind::ConnectionReset)),
            CallFailure::Unreachable,
        ),
        (
            Error::Io(IoError::from(ErrorKind::TimedOut)),
            CallFailure::Unreachable,
        ),
        (
            Error::Io(IoError::from(ErrorKind::InvalidData)),
            CallFailure::Untrusted,
        ),
        (
            Error::Io(IoError::from(ErrorKind::UnexpectedEof)),
            CallFailure::Untrusted,
        ),
        (Error::StatusCode(503), CallFailure::Unreachable),
        (Error::StatusCode(401), CallFailure::Untrusted),
        (Error::BodyExceedsLimit(1), CallFailure::Untrusted),
        (Error::Tls("x"), CallFailure::Untrusted),
        (Error::TooManyRedirects, CallFailure::Untrusted),
    ] {
        assert_eq!(classify(&e), want, "{e:?}");
    }
}

#[test]
fn a_spent_budget_fails_without_calling() {
    let r = Responder::start(None);
    r.script(&[json(r#"{"result":"allow"}"#)]);
    let url = format!("http://127.0.0.1:{}", r.port);
    let mut client =
        Client::new(&config(&url, FailMode::Safe), &HostSecret::for_tests("s")).unwrap();
    assert_eq!(client.budget, Duration::from_secs(3));
    client.budget = Duration::ZERO;
    let e = client.preauth(&request()).unwrap_err();
    assert_eq!(e.failure, CallFailure::Unreachable);
    assert!(r.seen().is_empty());
}

/// A self-signed certificate for 127.0.0.1 and the server config presenting it.
fn tls_identity(dir: &Dir, name: &str) -> (PathBuf, Arc<rustls::ServerConfig>) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pem = dir.file(&format!("{name}.pem"), &key.cert.pem(), 0o644);
    dir.file(
        &format!("{name}.key"),
        &key.signing_key.serialize_pem(),
        0o600,
    );
    (
        pem,
        server_config(key.cert.der(), &key.signing_key.serialize_der()),
    )
}

fn server_config(cert_der: &[u8], key_der: &[u8]) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert_der.to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec())),
    )
    .unwrap();
    Arc::new(config)
}

use std::path::PathBuf;

#[test]
fn tls_trusts_only_the_ca_file() {
    let dir = Dir::new("tls");
    let (trusted_pem, server) = tls_identity(&dir, "padlock");
    let (other_pem, _) = tls_identity(&dir, "other");
    let tls = Responder::start(Some(server));
    let url = format!("https://127.0.0.1:{}", tls.port);
    assert_eq!(
        both_modes(
            &url,
            Some(&trusted_pem),
            &[json(r#"{"result":"allow"}"#)],
            Some(&tls)
        ),
        [Code::Success; 2]
    );
    // A certificate the ca_file does not vouch for.
    assert_eq!(
        both_modes(
            &url,
            Some(&other_pem),
            &[json(r#"{"result":"allow"}"#)],
            Some(&tls)
        ),
        UNTRUSTED
    );
    // Not in the system bundle either.
    assert_eq!(
        both_modes(&url, None, &[json(r#"{"result":"allow"}"#)], Some(&tls)),
        UNTRUSTED
    );
    // TLS to a plain-HTTP port.
    let plain = Responder::start(None);
    let url = format!("https://127.0.0.1:{}", plain.port);
    assert_eq!(
        both_modes(
            &url,
            Some(&trusted_pem),
            &[json(r#"{"result":"allow"}"#)],
            Some(&plain)
        ),
        UNTRUSTED
    );
}

#[test]
fn a_ca_file_others_can_write_or_without_certificates_is_refused() {
    let dir = Dir::new("cafile");
    let (pem, _) = tls_identity(&dir, "padlock");
    let mut c = config("https://127.0.0.1:1", FailMode::Safe);
    std::fs::set_permissions(&pem, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    c.ca_file = Some(pem);
    let secret = HostSecret::for_tests("s");
    assert!(Client::new(&c, &secret).is_err_and(|e| e.contains("writable only by root")));
    c.ca_file = Some(dir.file("empty.pem", "", 0o644));
    assert!(Client::new(&c, &secret).is_err_and(|e| e.contains("no certificate")));
}

// ---- Tests that need a process of their own: they run this test binary again, filtered to
// ---- one `child_…` test, with `PAM_PADLOCK_TEST_CHILD` set. Outside such a child those tests
// ---- return at once.

const CHILD: &str = "PAM_PADLOCK_TEST_CHILD";

fn in_child(test: &str, env: &[(&str, &str)]) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn proxy_and_tls_environment_variables_are_ignored() {
    let dir = Dir::new("env");
    let (trusted_pem, _) = tls_identity(&dir, "padlock");
    let dead = "http://127.0.0.1:9";
    let dir_text = dir.0.to_string_lossy().into_owned();
    let pem_text = trusted_pem.to_string_lossy().into_owned();
    in_child(
        "client::tests::child_environment_has_no_effect",
        &[
            ("HTTP_PROXY", dead),
            ("HTTPS_PROXY", dead),
            ("ALL_PROXY", dead),
            ("http_proxy", dead),
            ("https_proxy", dead),
            ("all_proxy", dead),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
            // Would make the untrusted certificate trusted, if anything read them.
            ("SSL_CERT_FILE", &pem_text),
            ("SSL_CERT_DIR", &dir_text),
            ("PAM_PADLOCK_TEST_DIR", &dir_text),
        ],
    );
}

#[test]
fn child_environment_has_no_effect() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // ureq's own defaults would send every call to the dead proxy: the client must not use them.
    assert!(Config::default().proxy().is_some());
    let dir = PathBuf::from(std::env::var("PAM_PADLOCK_TEST_DIR").unwrap());
    // Plain HTTP and HTTPS both go straight to Padlock, not to the dead proxy.
    let plain = Responder::start(None);
    let url = format!("http://127.0.0.1:{}", plain.port);
    assert_eq!(
        both_modes(&url, None, &[json(r#"{"result":"allow"}"#)], Some(&plain)),
        [Code::Success; 2]
    );
    let cert = std::fs::read_to_string(dir.join("padlock.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("padlock.key")).unwrap();
    let cert_der = ureq::tls::Certificate::from_pem(cert.as_bytes()).unwrap();
    let key_der = rcgen::KeyPair::from_pem(&key).unwrap().serialize_der();
    let tls = Responder::start(Some(server_config(cert_der.der(), &key_der)));
    let url = format!("https://127.0.0.1:{}", tls.port);
    assert_eq!(
        both_modes(
            &url,
            Some(&dir.join("padlock.pem")),
            &[json(r#"{"result":"allow"}"#)],
            Some(&tls)
        ),
        [Code::Success; 2]
    );
    // SSL_CERT_FILE names this certificate, but the ca_file in force does not: refused.
    let other = Dir::new("env-other");
    let (other_pem, _) = tls_identity(&other, "other");
    assert_eq!(
        both_modes(
            &url,
            Some(&other_pem),
            &[json(r#"{"result":"allow"}"#)],
            Some(&tls)
        ),
        UNTRUSTED
    );
}

#[test]
fn no_thread_outlives_a_login() {
    in_child("client::tests::child_thread_count_is_unchanged", &[]);
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn child_thread_count_is_unchanged() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let r = Responder::start(None);
    let dir = Dir::new("threads");
    let (pem, server) = tls_identity(&dir, "padlock");
    let tls = Responder::start(Some(server));
    // Both responders are running before the first count.
    std::thread::sleep(Duration::from_millis(50));
    let before = threads();
    // A name (resolved through /etc/hosts), a Duo push with polling, a timeout, a refused port,
    // and TLS.
    let url = format!("http://localhost:{}", r.port);
    r.script(&[
        json(
            r#"{"result":"challenge","txid":"t","method":"duo","prompt":"Duo passcode, or press Enter for a push to your phone: "}"#,
        ),
        json(r#"{"result":"pending"}"#),
        json(r#"{"result":"allow"}"#),
    ]);
    assert_eq!(
        login(&config(&url, FailMode::Secure), &[b""]).0,
        Code::Success
    );
    r.script(&[Reply::Silent]);
    assert_eq!(
        login(&config(&url, FailMode::Secure), &[]).0,
        Code::AuthInfoUnavail
    );
    assert_eq!(
        login(&config("http://127.0.0.1:9", FailMode::Secure), &[]).0,
        Code::AuthInfoUnavail
    );
    let mut c = config(&format!("https://127.0.0.1:{}", tls.port), FailMode::Secure);
    c.ca_file = Some(pem);
    tls.script(&[json(r#"{"result":"allow"}"#)]);
    assert_eq!(login(&c, &[]).0, Code::Success);
    assert_eq!(threads(), before, "a thread was left behind");
}

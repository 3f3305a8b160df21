//! A real SMTP server for the delivery tests: `tests/peers/smtp_server.py` (aiosmtpd) in plain,
//! STARTTLS or implicit-TLS mode, optionally requiring AUTH, with a test CA made by rcgen.

use crate::harness::free_port;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One message as the server received it.
#[derive(Debug)]
pub struct Received {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Whether the connection was encrypted when the message came in.
    pub tls: bool,
    /// The AUTH user, if the client authenticated.
    pub user: Option<String>,
}

/// The running server; killed on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    lines: mpsc::Receiver<String>,
}

impl SmtpServer {
    /// Starts the server with extra `args` (`--mode`, `--cert`, `--key`, `--user`, `--password`).
    pub fn start(args: &[&str]) -> SmtpServer {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/smtp_server.py");
        let mut child = Command::new("python3")
            .args(["-u", script, "--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (installed by the README's test command)");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let server = SmtpServer { child, port, lines };
        assert_eq!(
            server.next_line().as_deref(),
            Some("ready"),
            "the SMTP server did not start"
        );
        server
    }

    /// Starts the server in `mode` ("starttls" or "smtps") with `pki`'s certificate, requiring
    /// AUTH as `auth` = (user, password) when given.
    pub fn start_tls(pki: &TestPki, mode: &str, auth: Option<(&str, &str)>) -> SmtpServer {
        let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
        let mut args = vec!["--mode", mode, "--cert", cert, "--key", key];
        if let Some((user, password)) = auth {
            args.extend(["--user", user, "--password", password]);
        }
        SmtpServer::start(&args)
    }

    fn next_line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(20)).ok()
    }

    /// Waits for the next message (at most 20 s).
    pub fn next_message(&self) -> Received {
        let deadline = Instant::now() + Duration::from_secs(20);
        let line = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no message reached the SMTP server");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Received {
            to: v["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect(),
            subject: text("subject"),
            body: text("body"),
            tls: v["tls"].as_bool().unwrap(),
            user: v["user"].as_str().map(str::to_owned),
        }
    }

    /// Whether no message has come in (so far).
    pub fn got_nothing(&self) -> bool {
        self.lines.try_recv().is_err()
    }

    /// Waits for a message to `to` and returns the 6-digit code its body starts with.
    pub fn code_for(&self, to: &str) -> (String, Received) {
        let m = self.next_message();
        assert_eq!(m.to, [to]);
        let code: String = m.body.chars().take(6).collect();
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "{m:?}"
        );
        (code, m)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PEM files of a fresh test CA and of a server certificate it signed for 127.0.0.1 and localhost.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    pub fn create(dir: &Path) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Padlock test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("smtp-cert.pem"),
            key: dir.join("smtp-key.pem"),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }
}

//! PAM logins with the second factor, end to end: `pamtester` under `pam_wrapper` loads the built
//! `pam_padlock.so`, which calls the real `padlock serve` over loopback. Codes are read where a
//! user reads them (the real SMTP receiver, the Twilio-shaped gateway, `oathtool` for TOTP); the
//! web login shares the lockout and the TOTP steps. Then the module's failure modes: Padlock down,
//! hanging, answering 503, behind an untrusted certificate, a wrong host secret, unsafe files,
//! absurd user names.

use crate::account::{enrol_totp, factor, now, oathtool, password};
use crate::harness::{add_user, artefact, operator, write_secret};
use crate::oidc::{BYE, CB, Provider, provider_serving};
use crate::pam::{Conversation, pamtester_conversation, reply, turn};
use crate::smtp::SmtpServer;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The PAM service name every test here uses (a private service directory per test).
pub(crate) const SERVICE: &str = "padlock-login";

/// A company with its PAM host: Padlock serving, the module's config and service file written.
pub(crate) struct Site {
    pub(crate) p: Provider,
    pub(crate) dir: PathBuf,
    pub(crate) conf: PathBuf,
    pub(crate) host_id: String,
}

impl Site {
    /// Padlock with `serve_args`, Acme's 2FA on with `methods`, a PAM host, and the module set up
    /// with `extra` config lines.
    pub(crate) fn new(dir: &Path, serve_args: &[&str], methods: &str, extra: &str) -> Site {
        let p = provider_serving(dir, CB, BYE, serve_args);
        if !methods.is_empty() {
            operator(
                dir,
                &["tenant", "2fa", "Acme", "--enable", "--methods", methods],
            );
        }
        let host = operator(
            dir,
            &["pam-host", "add", "--tenant", "Acme", "--name", "test"],
        );
        write_secret(
            &dir.join("host.secret"),
            &format!("{}\n", host["host_secret"].as_str().unwrap()),
        );
        let site = Site {
            p,
            dir: dir.to_owned(),
            conf: dir.join("pam.toml"),
            host_id: host["host_id"].as_str().unwrap().to_owned(),
        };
        site.configure(&site.p.server.url, extra);
        site.stack(&format!(
            "auth required {} config={}\n",
            artefact("libpam_padlock.so").display(),
            site.conf.display()
        ));
        site
    }

    /// Writes the module's config (root's, mode 0600) for Padlock at `url`.
    pub(crate) fn configure(&self, url: &str, extra: &str) {
        let host_id = &self.host_id;
        write_secret(
            &self.conf,
            &format!(
                "url = \"{url}\"\nhost_id = \"{host_id}\"\nhost_secret_file = \"{}\"\ntimeout_secs = 10\n{extra}",
                self.dir.join("host.secret").display()
            ),
        );
    }

    /// Replaces the service's auth stack.
    pub(crate) fn stack(&self, lines: &str) {
        std::fs::write(self.dir.join(SERVICE), lines).unwrap();
        std::fs::write(self.dir.join("other"), "auth required pam_deny.so\n").unwrap();
    }

    pub(crate) fn login(&self, user: &str, turns: Vec<crate::pam::Turn<'_>>) -> Conversation {
        pamtester_conversation(&self.dir, SERVICE, user, turns)
    }
}

const EMAIL_PROMPT: &str =
    "Verification code (sent by email to a\u{2022}\u{2022}\u{2022}@acme.example): ";
const TOTP_PROMPT: &str = "Code from your authenticator app: ";

fn mailing(dir: &Path, smtp: &SmtpServer) -> Vec<String> {
    std::fs::write(
        dir.join("padlock.toml"),
        format!(
            "[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nfrom = \"Padlock <no-reply@acme.example>\"\n",
            smtp.port
        ),
    )
    .unwrap();
    vec!["-c".into(), "padlock.toml".into()]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn wrong(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.into()
}

#[test]
fn an_email_code_from_the_smtp_server_and_a_wrong_then_right_code() {
    let smtp = SmtpServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = mailing(dir.path(), &smtp);
    let site = Site::new(dir.path(), &args(&serve), "sms-email", "");
    let code = std::cell::RefCell::new(String::new());
    let c = site.login(
        "ann",
        vec![
            turn(EMAIL_PROMPT, |_| {
                *code.borrow_mut() = smtp.code_for("ann@acme.example").0;
                wrong(&code.borrow())
            }),
            turn(EMAIL_PROMPT, |since| {
                assert!(since.contains("That code is not right"), "{since}");
                code.borrow().clone()
            }),
        ],
    );
    assert!(c.success, "{}", c.transcript);
    assert!(c.transcript.contains("successfully authenticated"));
    // DESIGN §9 item 12: neither the host secret nor the code is in Padlock's log.
    let log = site.p.server.stderr();
    let secret = std::fs::read_to_string(dir.path().join("host.secret")).unwrap();
    assert!(
        log.contains("pam.second_factor"),
        "the decision is logged: {log}"
    );
    assert!(!log.contains(secret.trim()), "{log}");
    // (as a number of its own: timestamps hold runs of digits too)
    assert!(
        !log.split(|c: char| !c.is_ascii_digit())
            .any(|run| run == code.borrow().as_str()),
        "{log}"
    );
    // The decision is in the company's audit trail, with the PAM login's context.
    let audit = operator(dir.path(), &["audit", "list", "--tenant", "Acme"]);
    let events = audit["events"].as_array().unwrap();
    let passed = events
        .iter()
        .find(|e| e["action"] == "pam.second_factor" && e["outcome"] == "success")
        .expect("the passed second factor is audited");
    assert_eq!(passed["pam"]["service"], SERVICE);
    assert_eq!(passed["pam"]["user"], "ann");
}

/// A code that expired is refused, and PAM (which has no resend) ends the login. The company's
/// codes are made valid for 5 seconds (`[lockout] code_ttl_secs`), so the test waits 6, not 120.
#[test]
fn an_expired_code_ends_the_login() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("padlock.toml"),
        "[lockout]\ncode_ttl_secs = 5\n",
    )
    .unwrap();
    let site = Site::new(dir.path(), &["-c", "padlock.toml"], "sms-email", "");
    let c = site.login(
        "ann",
        vec![turn(EMAIL_PROMPT, |_| {
            let code = crate::account::outbox_code(dir.path());
            std::thread::sleep(std::time::Duration::from_secs(6));
            code
        })],
    );
    assert!(!c.success, "{}", c.transcript);
    assert!(
        c.transcript
            .contains("This code has expired. Start the login again."),
        "{}",
        c.transcript
    );
}

#[test]
fn three_wrong_codes_exhaust_the_tries() {
    let smtp = SmtpServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = mailing(dir.path(), &smtp);
    let site = Site::new(dir.path(), &args(&serve), "sms-email", "");
    let c = site.login(
        "ann",
        vec![
            reply(EMAIL_PROMPT, "000001"),
            reply(EMAIL_PROMPT, ""),
            reply(EMAIL_PROMPT, "000002"),
        ],
    );
    assert!(!c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("exhausted maximum number of retries"),
        "PAM_MAXTRIES: {}",
        c.transcript
    );
}

#[test]
fn an_sms_code_through_the_twilio_shaped_gateway() {
    let (port, received) = crate::delivery::twilio_receiver();
    let dir = tempfile::tempdir().unwrap();
    crate::delivery::twilio_config(dir.path(), port);
    let site = Site::new(dir.path(), &["-c", "padlock.toml"], "sms-email", "");
    add_user(
        dir.path(),
        "bob@acme.example",
        &["--mobile", "+15551234567", "--unix-name", "robert"],
    );
    let c = site.login(
        "robert",
        vec![turn(
            "Verification code (sent by SMS to +1 \u{2022}\u{2022}\u{2022} \u{2022}\u{2022}\u{2022} 4567): ",
            |_| {
                let (_, _, body) = received
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                crate::delivery::sms_code(&body)
            },
        )],
    );
    assert!(c.success, "{}", c.transcript);
}

/// TOTP codes computed by oathtool; a step used on the web is refused at PAM; failures on the web
/// and at PAM count toward one lockout, after which PAM refuses before asking.
#[test]
fn totp_replay_and_the_lockout_are_shared_with_the_web_login() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), &[], "sms-email,totp", "");
    let secret = enrol_totp(&site.p, dir.path());
    // A step used on the web first (the next one: enrolment used the current one)…
    let (flow, cookie) = password(&site.p);
    let step = oathtool(&secret, now() + 30, 6);
    assert_eq!(factor(&site.p, &flow, &cookie, &step).status(), 303);
    // …is refused at PAM, and counts as a failed try (three: 1, 2, 3).
    let c = site.login(
        "ann",
        vec![
            reply(TOTP_PROMPT, &step),
            turn(TOTP_PROMPT, |since| {
                assert!(since.contains("already used"), "{since}");
                "000000".into()
            }),
            reply(TOTP_PROMPT, "000000"),
        ],
    );
    assert!(!c.success, "{}", c.transcript);
    assert!(c.transcript.contains("exhausted maximum number of retries"));
    // Six wrong answers on the web (4 to 9), the tenth at PAM: locked, and the next PAM login is
    // refused before any prompt.
    let (flow, cookie) = password(&site.p);
    for _ in 0..6 {
        let r = factor(&site.p, &flow, &cookie, "000000");
        assert_eq!(r.status(), 401);
    }
    let c = site.login("ann", vec![reply(TOTP_PROMPT, "000000")]);
    assert!(!c.success, "{}", c.transcript);
    assert!(c.transcript.contains("locked"), "{}", c.transcript);
    let c = site.login("ann", vec![]);
    assert!(!c.success);
    assert!(c.transcript.contains("locked"), "{}", c.transcript);
    assert!(
        !c.transcript.contains(TOTP_PROMPT),
        "no prompt while locked"
    );
}

#[test]
fn company_2fa_off_api_accounts_and_unknown_users() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), &[], "", "");
    // 2FA off: no prompt.
    let c = site.login("ann", vec![]);
    assert!(c.success, "{}", c.transcript);
    operator(dir.path(), &["tenant", "2fa", "Acme", "--enable"]);
    // An API account is refused with the reason.
    let acct = operator(
        dir.path(),
        &[
            "api-account",
            "add",
            "--tenant",
            "Acme",
            "--name",
            "svc",
            "--scope",
            "x.read",
        ],
    );
    let unix = acct["user_id"].as_str().unwrap();
    let c = site.login(unix, vec![]);
    assert!(!c.success);
    assert!(c.transcript.contains("API account"), "{}", c.transcript);
    // An unknown name is prompted like a real user, then refused; no code goes anywhere.
    let outbox = || std::fs::read_dir(dir.path().join("data/outbox")).map_or(0, Iterator::count);
    let sent = outbox();
    let c = site.login(
        "mallory",
        vec![
            reply("Verification code (sent by email to m", "123456"),
            reply("Verification code", "234567"),
            reply("Verification code", "345678"),
        ],
    );
    assert!(!c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("exhausted maximum number of retries"),
        "{}",
        c.transcript
    );
    assert_eq!(outbox(), sent, "no code for a name that is no user");
    // unknown_user = "ignore": PAM_IGNORE, so the rest of the stack decides (here pam_permit).
    site.configure(&site.p.server.url, "unknown_user = \"ignore\"\n");
    site.stack(&format!(
        "auth required {} config={}\nauth required pam_permit.so\n",
        artefact("libpam_padlock.so").display(),
        site.conf.display()
    ));
    let c = site.login("mallory", vec![]);
    assert!(c.success, "ignored, then pam_permit: {}", c.transcript);
    let c = site.login("ann", vec![reply(EMAIL_PROMPT, "000000")]);
    assert!(!c.success, "a known user is still asked: {}", c.transcript);
}

/// A raw TCP listener that accepts and never answers, or answers every request with `status`.
fn stand_in(status: Option<u16>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().map_while(Result::ok) {
            if let Some(code) = status {
                use std::io::{Read, Write};
                let mut s = s;
                let mut buf = [0; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            } else {
                held.push(s);
            }
        }
    });
    port
}

/// DESIGN §8: only an unreachable Padlock (refused, timeout, 502/503/504) opens the door in
/// `safe` mode; anything else is PAM_AUTHINFO_UNAVAIL in both modes.
#[test]
fn failmodes_open_only_for_an_unreachable_padlock() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), &[], "sms-email", "");
    let closed = crate::harness::free_port();
    let hanging = stand_in(None);
    let unavailable = stand_in(Some(503));
    let teapot = stand_in(Some(418));
    let unreachable = [
        format!("http://127.0.0.1:{closed}"),
        format!("http://127.0.0.1:{hanging}"),
        format!("http://127.0.0.1:{unavailable}"),
    ];
    for url in &unreachable {
        for (mode, passes) in [("secure", false), ("safe", true)] {
            site.configure(url, &format!("failmode = \"{mode}\"\n"));
            let started = std::time::Instant::now();
            let c = site.login("ann", vec![]);
            assert_eq!(c.success, passes, "{url} {mode}: {}", c.transcript);
            if !passes {
                assert!(
                    c.transcript.contains("cannot retrieve authentication info"),
                    "{url}: {}",
                    c.transcript
                );
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the deadline holds"
            );
        }
    }
    // Something answered, but not a Padlock this host trusts: refused in both modes.
    let wrong_secret = dir.path().join("wrong.secret");
    write_secret(&wrong_secret, "not-the-secret\n");
    for mode in ["secure", "safe"] {
        site.configure(
            &format!("http://127.0.0.1:{teapot}"),
            &format!("failmode = \"{mode}\"\n"),
        );
        let c = site.login("ann", vec![]);
        assert!(!c.success, "418 in {mode}: {}", c.transcript);
        assert!(c.transcript.contains("cannot retrieve authentication info"));
        let text = format!(
            "url = \"{}\"\nhost_id = \"{}\"\nhost_secret_file = \"{}\"\ntimeout_secs = 10\nfailmode = \"{mode}\"\n",
            site.p.server.url,
            site.host_id,
            wrong_secret.display()
        );
        write_secret(&site.conf, &text);
        let c = site.login("ann", vec![]);
        assert!(!c.success, "wrong secret in {mode}: {}", c.transcript);
        assert!(c.transcript.contains("cannot retrieve authentication info"));
    }
}

/// A TLS certificate the configured `ca_file` does not trust is never "unreachable".
#[test]
fn an_untrusted_certificate_is_refused_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), &[], "sms-email", "");
    let (pki_dir, other_dir) = (dir.path().join("pki"), dir.path().join("other-pki"));
    std::fs::create_dir_all(&pki_dir).unwrap();
    std::fs::create_dir_all(&other_dir).unwrap();
    let pki = crate::smtp::TestPki::create(&pki_dir);
    let other = crate::smtp::TestPki::create(&other_dir);
    let port = crate::harness::free_port();
    let mut tls = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&pki.cert)
        .arg("-key")
        .arg(&pki.key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl");
    std::thread::sleep(std::time::Duration::from_millis(500));
    for mode in ["secure", "safe"] {
        site.configure(
            &format!("https://127.0.0.1:{port}"),
            &format!(
                "failmode = \"{mode}\"\nca_file = \"{}\"\n",
                other.ca.display()
            ),
        );
        let c = site.login("ann", vec![]);
        assert!(!c.success, "{mode}: {}", c.transcript);
        assert!(c.transcript.contains("cannot retrieve authentication info"));
    }
    let _ = tls.kill();
    let _ = tls.wait();
}

#[test]
fn unsafe_files_and_absurd_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), &[], "", "");
    assert!(
        site.login("ann", vec![]).success,
        "2FA off: the baseline passes"
    );
    for (file, mode) in [
        (site.conf.clone(), 0o640),
        (site.conf.clone(), 0o620),
        (dir.path().join("host.secret"), 0o640),
        (dir.path().join("host.secret"), 0o660),
    ] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let c = site.login("ann", vec![]);
        assert!(!c.success, "{} {mode:o}: {}", file.display(), c.transcript);
        assert!(c.transcript.contains("cannot retrieve authentication info"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(site.login("ann", vec![]).success, "restored");
    let long = "a".repeat(300);
    let c = site.login(&long, vec![]);
    assert!(!c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("User not known"),
        "PAM_USER_UNKNOWN: {}",
        c.transcript
    );
    let out = std::process::Command::new("pamtester")
        .arg(SERVICE)
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"ann\xff"))
        .arg("authenticate")
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("User not known"),
        "PAM_USER_UNKNOWN: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real sshd (keyboard-interactive): the Unix password, then the Padlock code read from the
/// SMTP server; a wrong code is refused.
#[test]
fn sshd_asks_for_the_unix_password_then_the_padlock_code() {
    let smtp = SmtpServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = mailing(dir.path(), &smtp);
    let site = Site::new(dir.path(), &args(&serve), "sms-email", "");
    let stack = format!(
        "auth required pam_unix.so nodelay\nauth required {} config={}\n",
        artefact("libpam_padlock.so").display(),
        site.conf.display()
    );
    let sshd = crate::sshd::Sshd::start(&stack);
    let email = format!("{}@acme.example", sshd.user.name);
    add_user(dir.path(), &email, &[]);
    let mut asked = Vec::new();
    let login = sshd.client().ask("").run_with(|prompt| {
        asked.push(prompt.to_owned());
        if prompt.contains("Password") {
            sshd.user.password.clone()
        } else {
            smtp.code_for(&email).0
        }
    });
    assert!(login.authenticated, "{login:?}\n{asked:?}\n{}", sshd.log());
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked[1].starts_with("Verification code (sent by email to "),
        "{asked:?}"
    );
    assert_eq!(login.output.as_deref(), Some("ok\n"));

    let mut code = None;
    let login = sshd.client().ask("").run_with(|prompt| {
        if prompt.contains("Password") {
            sshd.user.password.clone()
        } else {
            // One code is sent per login; every answer is a wrong one.
            let sent = code.get_or_insert_with(|| smtp.code_for(&email).0);
            wrong(sent)
        }
    });
    assert!(!login.authenticated, "{login:?}\n{}", sshd.log());
    assert!(
        login
            .prompts
            .iter()
            .any(|p| p.contains("That code is not right")),
        "{login:?}"
    );
}

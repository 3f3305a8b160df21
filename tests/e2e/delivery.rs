//! Second-factor codes delivered for real: a real SMTP server process (aiosmtpd) on loopback and a
//! local receiver of Twilio's Messages API; the test reads the code where a user would and finishes
//! the login through the `openidconnect` relying party.

use crate::harness::{http, operator};
use crate::oidc::{BYE, CB, PW, Provider, Rp, password_step, provider_serving, rp_http};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, RedirectUrl,
    TokenResponse,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd with its debugging handler: every received message is printed on its stdout.
struct SmtpServer {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let port = free_port();
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (installed by the README's test command)");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpServer { child, port, lines }
    }

    /// Waits for a message to `to` and returns the 6-digit code in it.
    fn code_for(&self, to: &str) -> String {
        let mut seen_to = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if line.starts_with("To:") && line.contains(to) {
                seen_to = true;
            }
            if seen_to && line.contains("sign-in code.") {
                return line.trim()[..6].to_owned();
            }
        }
        panic!("no email with a code reached {to}");
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request received by the fake Twilio: (path, Authorization header, form body).
type Received = (String, String, String);

/// Answers every POST like Twilio's Messages API (201 with a message resource) and reports it.
fn twilio_receiver() -> (u16, mpsc::Receiver<Received>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let (mut auth, mut len) = (String::new(), 0usize);
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "authorization" => auth = v.trim().to_owned(),
                    "content-length" => len = v.trim().parse().unwrap(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
            let answer = r#"{"sid":"SM00000000000000000000000000000000","status":"queued","error_code":null,"error_message":null}"#;
            write!(s, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len()).unwrap();
            let _ = tx.send((path, auth, String::from_utf8(body).unwrap()));
        }
    });
    (port, rx)
}

fn rp(p: &Provider) -> Rp {
    let metadata =
        CoreProviderMetadata::discover(&IssuerUrl::new(p.server.url.clone()).unwrap(), &rp_http)
            .unwrap();
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap())
}

fn enable_2fa(dir: &Path) {
    operator(dir, &["tenant", "2fa", "Acme", "--enable"]);
}

/// Posts the code and exchanges the resulting authorization code; returns the ID token's amr and acr.
fn finish(
    p: &Provider,
    client: &Rp,
    flow: &str,
    cookie: &str,
    code: &str,
    nonce: &Nonce,
) -> (Vec<String>, String) {
    let r = http()
        .post(format!("{}/login/factor", p.server.url))
        .header("cookie", cookie)
        .form(&[("flow", flow), ("code", code)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .request(&rp_http)
        .unwrap();
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), nonce)
        .unwrap()
        .clone();
    let amr = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    (amr, claims.auth_context_ref().unwrap().as_str().to_owned())
}

#[test]
fn email_code_over_real_smtp_completes_the_login() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("padlock.toml"), format!("[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nfrom = \"Padlock <no-reply@acme.example>\"\n", smtp.port)).unwrap();
    let p = provider_serving(dir.path(), CB, BYE, &["-c", "padlock.toml"]);
    enable_2fa(dir.path());
    let client = rp(&p);
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let (flow, cookie, loc) = password_step(&p.server.url, url.as_str(), "ann@acme.example");
    assert!(loc.starts_with("/login/factor?flow="), "{loc}");
    let code = smtp.code_for("ann@acme.example");
    let (amr, acr) = finish(&p, &client, &flow, &cookie, &code, &nonce);
    assert_eq!(amr, ["pwd", "email"]);
    assert_eq!(acr, "padlock:2fa");
}

#[test]
fn dead_smtp_server_gives_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("padlock.toml"), format!("[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nfrom = \"Padlock <no-reply@acme.example>\"\n", free_port())).unwrap();
    let p = provider_serving(dir.path(), CB, BYE, &["-c", "padlock.toml"]);
    enable_2fa(dir.path());
    let client = rp(&p);
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let (_, _, loc) = password_step(&p.server.url, url.as_str(), "ann@acme.example");
    assert!(
        loc.starts_with("(status 502") && loc.contains("could not send the code"),
        "{loc}"
    );
}

#[test]
fn sms_code_through_a_twilio_shaped_gateway() {
    let (port, received) = twilio_receiver();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("twilio-token"), "tw-auth-token\n").unwrap();
    let config = format!(
        "[sms]\nprovider = \"twilio\"\nbase_url = \"http://127.0.0.1:{port}\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token_file = \"twilio-token\"\nfrom = \"+15550000000\"\n"
    );
    std::fs::write(dir.path().join("padlock.toml"), config).unwrap();
    let p = provider_serving(dir.path(), CB, BYE, &["-c", "padlock.toml"]);
    std::fs::write(dir.path().join("pw"), PW).unwrap();
    operator(
        dir.path(),
        &[
            "user",
            "add",
            "--tenant",
            "Acme",
            "--email",
            "bob@acme.example",
            "--password-file",
            "pw",
            "--mobile",
            "+1 555 123 4567",
        ],
    );
    enable_2fa(dir.path());
    let client = rp(&p);
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let (flow, cookie, loc) = password_step(&p.server.url, url.as_str(), "bob@acme.example");
    assert!(loc.starts_with("/login/factor?flow="), "{loc}");
    let (path, auth, body) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the gateway got a request");
    assert_eq!(
        path,
        "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
    );
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD
        .encode("AC0123456789abcdef0123456789abcdef:tw-auth-token");
    assert_eq!(auth, format!("Basic {expected}"));
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(form["To"], "+15551234567");
    assert_eq!(form["From"], "+15550000000");
    let code = form["Body"][..6].to_owned();
    assert!(form["Body"].contains("Acme sign-in code"));
    let (amr, _) = finish(&p, &client, &flow, &cookie, &code, &nonce);
    assert_eq!(amr, ["pwd", "sms"]);
}

//! Second-factor codes delivered for real: a real SMTP server process (aiosmtpd; plain, STARTTLS
//! and implicit TLS, with AUTH) on loopback and a local receiver of Twilio's Messages API; the test
//! reads the code where a user would and finishes the login through the `openidconnect` relying
//! party.

use crate::harness::{add_user, free_port, http, operator, write_secret};
use crate::oidc::{BYE, CB, Provider, Rp, password_step, provider_serving, rp_http};
use crate::smtp::{SmtpServer, TestPki};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, RedirectUrl,
    TokenResponse,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// One request received by the fake Twilio: (path, Authorization header, form body).
type Received = (String, String, String);

/// Answers every POST like Twilio's Messages API (201 with a message resource) and reports it.
pub fn twilio_receiver() -> (u16, mpsc::Receiver<Received>) {
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

/// Starts a login as `email` through the relying party and passes the password step; returns the
/// flow, its cookie, where the password step led (or the error page) and the nonce.
fn sign_in(p: &Provider, client: &Rp, email: &str) -> (String, String, String, Nonce) {
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let (flow, cookie, loc) = password_step(&p.server.url, url.as_str(), email);
    (flow, cookie, loc, nonce)
}

/// A Padlock with 2FA on for Acme, sending email through the SMTP server on `port` with `extra`
/// lines in its `[email]` section (and whatever sections follow them).
fn provider_mailing(dir: &Path, port: u16, extra: &str) -> Provider {
    let config = format!(
        "[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nfrom = \"Padlock <no-reply@acme.example>\"\n{extra}"
    );
    std::fs::write(dir.join("padlock.toml"), config).unwrap();
    let p = provider_serving(dir, CB, BYE, &["-c", "padlock.toml"]);
    enable_2fa(dir);
    p
}

#[test]
fn email_code_over_real_smtp_completes_the_login() {
    let smtp = SmtpServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let templates = "[messages]\nemail_subject = \"{company} sign-in\"\nemail_body = \"{code} lets you in to {company} for {minutes} min.\"\n";
    let p = provider_mailing(dir.path(), smtp.port, templates);
    let client = rp(&p);
    let (flow, cookie, loc, nonce) = sign_in(&p, &client, "ann@acme.example");
    assert!(loc.starts_with("/login/factor?flow="), "{loc}");
    let (code, mail) = smtp.code_for("ann@acme.example");
    // The operator's templates, with the company name and the code's lifetime filled in.
    assert_eq!(mail.subject, "Acme sign-in");
    assert_eq!(
        mail.body.trim_end(),
        format!("{code} lets you in to Acme for 2 min.")
    );
    assert!(!mail.tls && mail.user.is_none());
    let (amr, acr) = finish(&p, &client, &flow, &cookie, &code, &nonce);
    assert_eq!(amr, ["pwd", "email"]);
    assert_eq!(acr, "padlock:2fa");
}

#[test]
fn starttls_with_auth_and_a_private_ca_completes_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let smtp = SmtpServer::start_tls(&pki, "starttls", Some(("padlock", "smtp-secret")));
    write_secret(&dir.path().join("smtp-password"), "smtp-secret\n");
    let extra = format!(
        "tls = \"starttls\"\nusername = \"padlock\"\npassword_file = \"smtp-password\"\nca_file = \"{}\"\n",
        pki.ca.display()
    );
    let p = provider_mailing(dir.path(), smtp.port, &extra);
    let client = rp(&p);
    let (flow, cookie, loc, nonce) = sign_in(&p, &client, "ann@acme.example");
    assert!(loc.starts_with("/login/factor?flow="), "{loc}");
    let (code, mail) = smtp.code_for("ann@acme.example");
    assert!(mail.tls, "the message came over a plain connection");
    assert_eq!(mail.user.as_deref(), Some("padlock"));
    assert_eq!(mail.subject, "Acme: your sign-in code");
    let (amr, _) = finish(&p, &client, &flow, &cookie, &code, &nonce);
    assert_eq!(amr, ["pwd", "email"]);
}

#[test]
fn implicit_tls_delivers_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let smtp = SmtpServer::start_tls(&pki, "smtps", None);
    let extra = format!("tls = \"tls\"\nca_file = \"{}\"\n", pki.ca.display());
    let p = provider_mailing(dir.path(), smtp.port, &extra);
    let client = rp(&p);
    let (flow, cookie, _, nonce) = sign_in(&p, &client, "ann@acme.example");
    let (code, mail) = smtp.code_for("ann@acme.example");
    assert!(mail.tls);
    let (amr, _) = finish(&p, &client, &flow, &cookie, &code, &nonce);
    assert_eq!(amr, ["pwd", "email"]);
}

/// A dead server, a certificate Padlock does not trust, a server without STARTTLS when it is
/// required and a refused password each stop the login at the factor step with the same clear
/// message, and nothing reaches the mailbox.
#[test]
fn smtp_failures_give_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let untrusted = SmtpServer::start_tls(&pki, "starttls", None);
    let plain = SmtpServer::start(&[]);
    let strict = SmtpServer::start_tls(&pki, "starttls", Some(("padlock", "right")));
    let wrong = dir.path().join("wrong-password");
    write_secret(&wrong, "wrong\n");
    let ca = format!("ca_file = \"{}\"\n", pki.ca.display());
    let cases = [
        ("dead server", free_port(), String::new()),
        (
            "untrusted certificate",
            untrusted.port,
            "tls = \"starttls\"\n".to_owned(),
        ),
        (
            "wrong password",
            strict.port,
            format!(
                "tls = \"starttls\"\n{ca}username = \"padlock\"\npassword_file = \"{}\"\n",
                wrong.display()
            ),
        ),
    ];
    for (case, port, extra) in cases {
        let case_dir = tempfile::tempdir_in(dir.path()).unwrap();
        let p = provider_mailing(case_dir.path(), port, &extra);
        let (_, _, loc, _) = sign_in(&p, &rp(&p), "ann@acme.example");
        assert!(
            loc.starts_with("(status 502") && loc.contains("could not send the code"),
            "{case}: {loc}"
        );
    }
    for server in [untrusted, plain, strict] {
        assert!(server.got_nothing(), "a message got through");
    }
}

/// Writes `<dir>/padlock.toml` sending SMS through the Twilio-shaped receiver on `port` (the auth
/// token in `<dir>/twilio-token`); serve it with `-c padlock.toml`.
pub fn twilio_config(dir: &Path, port: u16) {
    write_secret(&dir.join("twilio-token"), "tw-auth-token\n");
    let config = format!(
        "[sms]\nprovider = \"twilio\"\nbase_url = \"http://127.0.0.1:{port}\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token_file = \"twilio-token\"\nfrom = \"+15550000000\"\n"
    );
    std::fs::write(dir.join("padlock.toml"), config).unwrap();
}

/// The 6-digit code at the start of the text of an SMS the receiver got (its form body).
pub fn sms_code(body: &str) -> String {
    let text: String = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "Body")
        .expect("a Body field")
        .1
        .into_owned();
    text.chars().take(6).collect()
}

#[test]
fn sms_code_through_a_twilio_shaped_gateway() {
    let (port, received) = twilio_receiver();
    let dir = tempfile::tempdir().unwrap();
    twilio_config(dir.path(), port);
    let p = provider_serving(dir.path(), CB, BYE, &["-c", "padlock.toml"]);
    add_user(
        dir.path(),
        "bob@acme.example",
        &["--mobile", "+1 555 123 4567"],
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

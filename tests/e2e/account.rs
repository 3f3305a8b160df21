//! The padlock page over the real binary: after an email code (read from the development outbox),
//! the user enrols an authenticator app from the page's otpauth URI; codes are computed
//! independently with `oathtool`, itself checked against RFC 6238 Appendix B.

use crate::harness::{http, operator};
use crate::oidc::{CB, Provider, password_step, provider};
use std::path::Path;
use std::process::Command;

/// A TOTP code from oathtool for `secret` (base32) at Unix time `at`.
pub fn oathtool(secret: &str, at: u64, digits: u8) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            "-d",
            &digits.to_string(),
            "-N",
            &format!("@{at}"),
            secret,
        ])
        .output()
        .expect("oathtool (installed by the README's test command)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The newest code in `<data>/outbox`.
pub fn outbox_code(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("data/outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
    text.lines().find(|l| l.contains("sign-in code.")).unwrap()[..6].to_owned()
}

/// Password step through `/authorize`; returns (flow, flow cookie).
pub fn password(p: &Provider) -> (String, String) {
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s",
        p.server.url,
        p.client_id,
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    );
    let (flow, cookie, next) = password_step(&p.server.url, &authorize, "ann@acme.example");
    assert!(next.starts_with("/login/factor"), "{next}");
    (flow, cookie)
}

pub fn factor(p: &Provider, flow: &str, cookie: &str, code: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{}/login/factor", p.server.url))
        .header("cookie", cookie)
        .form(&[("flow", flow), ("code", code)])
        .send()
        .unwrap()
}

fn field(page: &str, marker: &str, end: char) -> String {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in {page}"))
        + marker.len();
    page[at..].split(end).next().unwrap().to_owned()
}

#[test]
fn oathtool_matches_rfc6238() {
    // Base32 of the ASCII secret 12345678901234567890 (RFC 6238 Appendix B, SHA-1).
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for (t, code) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
    ] {
        assert_eq!(oathtool(secret, t, 8), code);
    }
}

/// Ann (whose company offers email codes and TOTP) signs in with an emailed code from the
/// development outbox in `dir`, opens the padlock page and enrols an authenticator app. Returns
/// its base32 secret.
pub fn enrol_totp(p: &Provider, dir: &Path) -> String {
    let (flow, cookie) = password(p);
    let code = outbox_code(dir);
    let r = factor(p, &flow, &cookie, &code);
    assert_eq!(r.status(), 303);
    // DESIGN.md §9.12: the development outbox logs where the message went, never the code.
    let log = p.server.stderr();
    assert!(log.contains("development outbox"), "{log}");
    assert!(!log.contains(&format!("{code} is your")), "{log}");
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("padlock_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let page = http()
        .get(format!("{}/account/security", p.server.url))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = field(&page, "name=\"csrf\" value=\"", '"');
    let page = http()
        .post(format!("{}/account/security/totp/start", p.server.url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let uri = format!("otpauth://totp/{}", field(&page, "otpauth://totp/", '"'));
    assert!(
        uri.contains("Padlock%20(Acme)") || uri.contains("Padlock%20%28Acme%29"),
        "{uri}"
    );
    let secret = field(&uri, "secret=", '&');
    let code = oathtool(&secret, now(), 6);
    let r = http()
        .post(format!("{}/account/security/totp/confirm", p.server.url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("authenticator app is set up"));
    secret
}

#[test]
fn user_enrols_an_authenticator_app_and_signs_in_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    operator(
        dir.path(),
        &[
            "tenant",
            "2fa",
            "Acme",
            "--enable",
            "--methods",
            "sms-email,totp",
        ],
    );
    let secret = enrol_totp(&p, dir.path());

    // Next sign-in: the app's code, not an email.
    let before = std::fs::read_dir(dir.path().join("data/outbox"))
        .unwrap()
        .count();
    let (flow, cookie) = password(&p);
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/outbox"))
            .unwrap()
            .count(),
        before,
        "no email once TOTP is preferred"
    );
    let next = oathtool(&secret, now() + 30, 6);
    let r = factor(&p, &flow, &cookie, &next);
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    assert!(r.headers()["location"].to_str().unwrap().starts_with(CB));
    let (flow, cookie) = password(&p);
    let r = factor(&p, &flow, &cookie, &next);
    assert_eq!(r.status(), 401);
    assert!(
        r.text().unwrap().contains("already used"),
        "a TOTP step is accepted once"
    );
}

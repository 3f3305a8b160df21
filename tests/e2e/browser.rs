//! The pages in a real browser: Chromium, driven by playwright-core (`tests/browser/`), signs in
//! with an email code, opens the padlock page and enrols an authenticator app (codes from its own
//! RFC 6238 implementation). Screenshots land in `target/<profile>/browser-shots/`.

use crate::harness::{operator, target_dir};
use crate::oidc::{CB, PW, provider};
use std::process::Command;

/// Where the page tests put their screenshots (`target/<profile>/browser-shots/`), made.
pub fn shots() -> std::path::PathBuf {
    let shots = target_dir().join("browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

/// Runs the playwright script `script` of `tests/browser/` with `args`; its last stdout line, a
/// JSON object, is what it found.
pub fn run_script(script: &str, args: &[&str]) -> serde_json::Value {
    let script_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let run = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(&script_dir)
        .output()
        .expect("node (the README's test command installs playwright-core and chromium)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

#[test]
fn a_person_signs_in_with_a_code_and_enrols_totp_in_chromium() {
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
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s",
        p.server.url,
        p.client_id,
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    );
    let shots = shots();
    let outbox = dir.path().join("data/outbox");
    let v = run_script(
        "sign_in_and_enrol.mjs",
        &[
            authorize.as_str(),
            p.server.url.as_str(),
            outbox.to_str().unwrap(),
            "ann@acme.example",
            PW,
            shots.to_str().unwrap(),
        ],
    );
    assert_eq!(v["signed_in"], true, "{v}");
    assert!(
        v["prompt"]
            .as_str()
            .unwrap()
            .contains("by email to a\u{2022}\u{2022}\u{2022}@acme.example"),
        "{v}"
    );
    assert_eq!(
        v["qr_loaded"], true,
        "the QR image decodes as an image in the browser"
    );
    assert_eq!(v["totp_saved"], true, "{v}");
    assert_eq!(v["preferred"], "totp");
    let users = operator(dir.path(), &["user", "list", "--tenant", "Acme"]);
    assert_eq!(users["users"][0]["totp_enrolled"], true);
    for shot in ["1-login.png", "2-factor.png", "3-totp.png", "4-saved.png"] {
        assert!(shots.join(shot).exists(), "{shot}");
    }
}

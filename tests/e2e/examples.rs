//! The runnable examples against a real server: the relying panel signs a user in and shows the
//! verified claims; the service client gets a token by client credentials and calls the API.

use crate::harness::{Server, artefact, free_port, http, operator};
use crate::oidc::{PW, browser_login, provider_with};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn relying_panel_example_signs_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let home = format!("http://127.0.0.1:{port}/");
    let p = provider_with(dir.path(), &format!("{home}callback"), &home);
    let _panel = Child(
        Command::new(artefact("relying-panel"))
            .env("PADLOCK_URL", &p.server.url)
            .env("CLIENT_ID", &p.client_id)
            .env("CLIENT_SECRET", &p.client_secret)
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    let to_padlock = loop {
        match http().get(format!("{home}login")).send() {
            Ok(r) => break r,
            Err(_) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("the example did not start: {e}"),
        }
    };
    let authorize = to_padlock.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(authorize.starts_with(&format!("{}/authorize?", p.server.url)));
    let (back, _) = browser_login(&p.server.url, &authorize, "ann@acme.example", PW);
    assert!(back.as_str().starts_with(&format!("{home}callback?")));
    let page = http().get(back.as_str()).send().unwrap().text().unwrap();
    assert!(page.contains("<h1>Signed in</h1>"), "{page}");
    assert!(
        page.contains("ann@acme.example") && page.contains("padlock:1fa") && page.contains("admin"),
        "{page}"
    );
    assert!(page.contains("/logout?id_token_hint="));
}

#[test]
fn service_client_example_uses_client_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let d = dir.path();
    operator(d, &["tenant", "create", "Acme"]);
    let acct = operator(
        d,
        &[
            "api-account",
            "add",
            "--tenant",
            "Acme",
            "--name",
            "directory-sync",
            "--scope",
            "tenant.admin",
        ],
    );
    let out = Command::new(artefact("service-client"))
        .env("PADLOCK_URL", &server.url)
        .env("CLIENT_ID", acct["client_id"].as_str().unwrap())
        .env("CLIENT_SECRET", acct["client_secret"].as_str().unwrap())
        .env("TENANT", "Acme")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scope"], "tenant.admin");
    assert!(
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["api_account"] == true)
    );
    let out = Command::new(artefact("service-client"))
        .env("PADLOCK_URL", &server.url)
        .env("CLIENT_ID", acct["client_id"].as_str().unwrap())
        .env("CLIENT_SECRET", "wrong")
        .env("TENANT", "Acme")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("token refused: client authentication failed")
    );
}

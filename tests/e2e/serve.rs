//! `padlock serve` and `padlock config` as an operator uses them.

use crate::harness::{Server, http, operator, padlock};
use crate::oidc::{CB, password_step, provider};
use padlock_idp::store::Store;
use padlock_idp::store::sled::SledStore;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The same link on another server (ports change between starts).
fn on(server: &Server, link: &str) -> String {
    format!("{}{}", server.url, &link[link.find("/setup").unwrap()..])
}

fn submit_setup(link: &str, company: &str, email: &str) -> reqwest::blocking::Response {
    let token = link.split("token=").nth(1).unwrap();
    let action = link.split("/setup").next().unwrap().to_owned() + "/setup";
    let pw = "correct-horse-battery-staple";
    http()
        .post(action)
        .form(&[
            ("token", token),
            ("company", company),
            ("email", email),
            ("password", pw),
            ("password_confirm", pw),
        ])
        .send()
        .unwrap()
}

#[test]
fn first_run_setup_then_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = dir.path().join("data");
    let link = server
        .setup_link
        .clone()
        .expect("a fresh data dir prints the setup link");
    assert!(
        link.starts_with(&format!("{}/setup?token=", server.url)),
        "{link}"
    );
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("operator.json")), 0o600);
    assert_eq!(mode(&data), 0o700);
    let operator: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("operator.json")).unwrap())
            .unwrap();
    assert_eq!(operator["issuer"], server.url.as_str());
    assert!(operator["client_id"].as_str().unwrap().starts_with("c_"));
    assert!(
        operator["client_secret"].as_str().unwrap().len() >= 43,
        "256-bit secret"
    );

    let health = http()
        .get(format!("{}/healthz", server.url))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().unwrap()["status"], "ok");

    let page = http().get(&link).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("Create the first company"));
    let done = submit_setup(&link, "Acme Hosting", "ann@acme.example");
    assert_eq!(done.status(), 200);
    assert!(done.text().unwrap().contains("Padlock is set up"));
    let again = submit_setup(&link, "Evil Corp", "eve@evil.example");
    assert_eq!(again.status(), 403, "the setup token is dead after use");

    assert!(server.stop().success(), "SIGTERM is a clean shutdown");

    let server = Server::start(dir.path(), &[]);
    assert_eq!(
        server.setup_link, None,
        "no new setup link once a company exists"
    );
    assert_eq!(http().get(on(&server, &link)).send().unwrap().status(), 403);
    assert_eq!(
        http()
            .get(format!("{}/healthz", server.url))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert!(server.stop().success());

    // What the server wrote is on disk, readable with the same store code.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SledStore::open(&data.join("db"), 8 << 20).unwrap();
        let tenants = store.list_tenants().await.unwrap();
        assert_eq!(
            tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["Acme Hosting"]
        );
        let admin = store
            .find_user_by_email("ann@acme.example")
            .await
            .unwrap()
            .unwrap();
        assert!(tenants[0].is_manager(&admin));
        assert!(
            store
                .find_user_by_email("eve@evil.example")
                .await
                .unwrap()
                .is_none()
        );
        let actions: Vec<String> = store
            .list_audit(None, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["tenant.create", "user.create"]);
    });
}

#[test]
fn restart_before_setup_replaces_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), &[]);
    let old = first.setup_link.clone().unwrap();
    assert!(first.stop().success());
    let second = Server::start(dir.path(), &[]);
    let new = second
        .setup_link
        .clone()
        .expect("still no company: a new link");
    assert_ne!(old, new);
    assert_eq!(
        submit_setup(&on(&second, &old), "A", "a@a.example").status(),
        403
    );
    assert_eq!(submit_setup(&new, "A", "a@a.example").status(), 200);
}

#[test]
fn second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::start(dir.path(), &[]);
    let (status, err) = Server::try_start(dir.path(), &[])
        .err()
        .expect("the second start fails");
    assert!(!status.success());
    assert!(err.contains("is locked: another padlock (pid"), "{err}");
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = padlock(
        &["serve", "--data-dir", "data", "--listen", &addr],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "padlock: cannot listen on {addr}: Address already in use"
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn unusable_data_dir_and_config_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    for (args, expected) in [
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", "file"],
            "data directory file: exists and is not a directory",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "file/data",
            ],
            "data directory file/data: cannot create it",
        ),
        (
            vec!["serve", "-c", "missing.toml"],
            "missing.toml: cannot read",
        ),
    ] {
        let out = padlock(&args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"127.0.0.1:0\"\n[lockout]\nmax_failures = 500\n",
    )
    .unwrap();
    let out = padlock(
        &["serve", "-c", "bad.toml", "--data-dir", "data"],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "invalid configuration: lockout.max_failures: max_failures must be between 1 and 100"
        ),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created for an invalid configuration"
    );
}

#[test]
fn wrong_or_missing_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(server.stop().success());
    let key = dir.path().join("data/master.key");
    let original = std::fs::read(&key).unwrap();

    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let (status, err) = Server::try_start(dir.path(), &[])
        .err()
        .expect("wrong key refused");
    assert!(!status.success());
    assert!(
        err.contains("is not the key this data directory was created with"),
        "{err}"
    );

    std::fs::remove_file(&key).unwrap();
    let (_, err) = Server::try_start(dir.path(), &[])
        .err()
        .expect("missing key refused");
    assert!(
        err.contains("is missing but the data directory holds data"),
        "{err}"
    );
    assert!(!key.exists(), "no decoy key is left behind");

    std::fs::write(&key, &original).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(
        server.setup_link.is_some(),
        "with the right key everything works again"
    );
    assert!(server.stop().success());
}

#[test]
fn config_example_checks_clean_and_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let example = padlock(&["config", "example"], dir.path());
    assert!(example.status.success());
    std::fs::write(dir.path().join("padlock.toml"), &example.stdout).unwrap();
    let ok = padlock(&["config", "check", "-c", "padlock.toml"], dir.path());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "padlock.toml: OK"
    );
    // ./padlock.toml is also the default.
    assert!(padlock(&["config", "check"], dir.path()).status.success());

    std::fs::write(
        dir.path().join("bad.toml"),
        "[email]\nsmtp_host = \"mail\"\nsmtp_port = \"twenty-five\"\nfrom = \"a@b\"\n",
    )
    .unwrap();
    let bad = padlock(&["config", "check", "-c", "bad.toml"], dir.path());
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("bad.toml: email.smtp_port: invalid type") && err.contains("line 3"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("semantic.toml"),
        "[sms]\nprovider = \"webhook\"\n",
    )
    .unwrap();
    let bad = padlock(&["config", "check", "-c", "semantic.toml"], dir.path());
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("semantic.toml: sms.webhook_url: required")
    );

    // What only building the senders finds (here: a CA file with no certificate in it) is
    // reported by `config check` as it would stop `serve`.
    std::fs::write(dir.path().join("empty-ca.pem"), "").unwrap();
    std::fs::write(
        dir.path().join("tls.toml"),
        "[email]\nsmtp_host = \"mail\"\ntls = \"starttls\"\nfrom = \"a@b\"\nca_file = \"empty-ca.pem\"\n",
    )
    .unwrap();
    let bad = padlock(&["config", "check", "-c", "tls.toml"], dir.path());
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("tls.toml: email.ca_file: empty-ca.pem: holds no PEM certificate"),
        "{err}"
    );
}

#[test]
fn issuer_flag_is_used_in_links_and_operator_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--issuer", "https://login.example.com/"]);
    assert!(
        server
            .setup_link
            .as_deref()
            .unwrap()
            .starts_with("https://login.example.com/setup?token=")
    );
    let operator = std::fs::read_to_string(dir.path().join("data/operator.json")).unwrap();
    assert!(
        operator.contains("\"issuer\": \"https://login.example.com\""),
        "{operator}"
    );
    assert!(
        !server.stderr().contains("token="),
        "the setup token never goes to the log"
    );
}

/// DESIGN.md §9.7: a secret file others can read stops `serve` and is named by `config check`,
/// with its key, its mode and the fix; group-readable (`root:padlock 0640`) is accepted.
#[test]
fn secret_files_others_can_read_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(server.stop().success());
    let key = dir.path().join("data/master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, err) = Server::try_start(dir.path(), &[])
        .err()
        .expect("a world-readable master key is refused");
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "master_key_file: {} is world-readable (mode 0644)",
            key.display()
        )) && err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Server::start(dir.path(), &[]).stop().success());

    std::fs::write(dir.path().join("smtp-password"), "pw\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("smtp-password"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mail.toml"),
        "[email]\nsmtp_host = \"mail\"\nfrom = \"a@b\"\nusername = \"padlock\"\npassword_file = \"smtp-password\"\n",
    )
    .unwrap();
    let out = padlock(&["config", "check", "-c", "mail.toml"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mail.toml: email.password_file: smtp-password is world-readable (mode 0644)")
            && err.contains("chmod 600 smtp-password"),
        "{err}"
    );
    std::fs::set_permissions(
        dir.path().join("smtp-password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = padlock(&["config", "check", "-c", "mail.toml"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every mode under `dir` (directories and files), by path.
fn modes_under(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            out.extend(modes_under(&path));
        }
    }
    out
}

/// What Padlock writes is private even in a data directory the operator made 0755 beforehand and
/// under a umask of 022: the directory is tightened (and the log says so); the database, keys,
/// operator credential and outbox messages (which hold codes) are readable by no one else.
#[test]
fn everything_padlock_writes_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = provider(dir.path());
    operator(dir.path(), &["tenant", "2fa", "Acme", "--enable"]);
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s",
        p.server.url,
        p.client_id,
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    );
    let (_, _, next) = password_step(&p.server.url, &authorize, "ann@acme.example");
    assert!(next.starts_with("/login/factor"), "{next}");

    assert_eq!(mode(&data), 0o700);
    let log = p.server.stderr();
    assert!(
        log.contains("data directory was open to other users: tightened to 0700"),
        "{log}"
    );
    let modes = modes_under(&data);
    for sub in ["db", "outbox"] {
        assert!(
            modes
                .iter()
                .any(|(path, _)| path.parent() == Some(&data.join(sub))),
            "nothing written in {sub}/"
        );
    }
    for (path, mode) in modes {
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:04o}", path.display());
    }
}

/// The first-run link dies with its purpose: once the operator creates a company with the CLI,
/// the printed link can neither show the form nor create a second company with its own
/// administrator, and restarts print no new link.
#[test]
fn a_company_created_with_the_cli_ends_the_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let link = server
        .setup_link
        .clone()
        .expect("first start prints a link");
    operator(dir.path(), &["tenant", "create", "Acme Hosting"]);
    assert_eq!(http().get(&link).send().unwrap().status(), 403);
    assert_eq!(
        submit_setup(&link, "Evil Corp", "eve@evil.example").status(),
        403
    );
    let tenants = operator(dir.path(), &["tenant", "list"]);
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 1, "{tenants}");
    assert!(server.stop().success());
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.setup_link, None);
    assert_eq!(http().get(on(&server, &link)).send().unwrap().status(), 403);
}

/// Logs written to a pipe carry no colour codes; with `log_format = "json"` (or
/// `PADLOCK_LOG_FORMAT=json`) every line is one JSON object.
#[test]
fn logs_to_a_pipe_are_plain_text_or_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = server_stderr(dir.path(), &[], &[]);
    assert!(text.contains(" INFO ") && text.contains(" WARN "), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in piped logs: {text:?}"
    );

    std::fs::write(dir.path().join("json.toml"), "log_format = \"json\"\n").unwrap();
    for (extra, env) in [
        (vec!["-c", "json.toml"], vec![]),
        (vec![], vec![("PADLOCK_LOG_FORMAT", "json")]),
    ] {
        let log = server_stderr(dir.path(), &extra, &env);
        assert!(log.lines().count() >= 2, "{log}");
        for line in log.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        }
    }

    let out = std::process::Command::new(crate::harness::artefact("padlock"))
        .args(["serve", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("PADLOCK_CONFIG")
        .env("PADLOCK_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PADLOCK_LOG_FORMAT: `yaml` is not a log format: use text or json"),
        "{err}"
    );
}

/// Starts a server on `dir`, sends it one request, stops it and returns everything it wrote to
/// stderr.
fn server_stderr(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let server = Server::try_start_with_env(dir, extra, env)
        .unwrap_or_else(|(status, err)| panic!("{status}: {err}"));
    assert_eq!(
        http()
            .get(format!("{}/nope", server.url))
            .send()
            .unwrap()
            .status(),
        404
    );
    let (status, log) = server.stop_with_stderr();
    assert!(status.success(), "{log}");
    log
}

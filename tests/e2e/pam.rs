//! `pam_padlock.so` loaded by a real PAM stack: `pamtester` under `pam_wrapper`, with a private
//! service directory so the host's `/etc/pam.d` is untouched.

use crate::harness::artefact;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `pamtester <service> <user> authenticate` against service files in `dir`.
fn pamtester(dir: &Path, service: &str, user: &str) -> Output {
    Command::new("pamtester")
        .args(["-v", service, user, "authenticate"])
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", dir)
        .output()
        .expect("pamtester is installed by the README's test command")
}

fn service(dir: &Path, name: &str, lines: &str) {
    std::fs::write(dir.join(name), lines).unwrap();
    // pam_wrapper falls back to "other" for unknown services; keep it closed.
    std::fs::write(dir.join("other"), "auth required pam_deny.so\n").unwrap();
}

fn output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes a configuration file the module accepts: root's (the tests run as root), mode 0600.
fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_missing_host_secret_file_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let module = artefact("libpam_padlock.so");
    let conf = dir.path().join("pam.toml");
    // failmode = "safe" and an unreachable url: the missing secret still refuses, before any call.
    private_file(
        &conf,
        "url = \"http://127.0.0.1:9\"\nhost_id = \"c_test\"\nhost_secret_file = \"/nonexistent\"\nfailmode = \"safe\"\n",
    );
    service(
        dir.path(),
        "padlock-test",
        &format!(
            "auth required {} config={}\n",
            module.display(),
            conf.display()
        ),
    );
    let out = pamtester(dir.path(), "padlock-test", "alice");
    assert!(!out.status.success(), "{}", output(&out));
    assert!(
        output(&out).contains("Authentication service cannot retrieve authentication info"),
        "{}",
        output(&out)
    );
}

#[test]
fn missing_or_invalid_configuration_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let module = artefact("libpam_padlock.so");
    let bad = dir.path().join("bad.toml");
    private_file(&bad, "url = \"http://x\"\nfailmode = \"open\"\n");
    // A valid file that others may read: refused for its mode.
    let open = dir.path().join("open.toml");
    std::fs::write(
        &open,
        "url = \"http://127.0.0.1:9\"\nhost_id = \"c_test\"\nhost_secret_file = \"/nonexistent\"\nfailmode = \"safe\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    for arg in [
        "config=/nonexistent/pam.toml".to_owned(),
        format!("config={}", bad.display()),
        format!("config={}", open.display()),
    ] {
        // `sufficient` pam_permit after us must not rescue a `required` failure.
        service(
            dir.path(),
            "padlock-test",
            &format!(
                "auth required {} {arg}\nauth optional pam_permit.so\n",
                module.display()
            ),
        );
        let out = pamtester(dir.path(), "padlock-test", "alice");
        assert!(!out.status.success(), "{arg}: {}", output(&out));
        assert!(
            output(&out).contains("cannot retrieve authentication info"),
            "{arg}: {}",
            output(&out)
        );
    }
}

#[test]
fn a_stack_without_the_module_passes_so_the_harness_itself_is_sound() {
    let dir = tempfile::tempdir().unwrap();
    service(dir.path(), "plain", "auth required pam_permit.so\n");
    let out = pamtester(dir.path(), "plain", "alice");
    assert!(out.status.success(), "{}", output(&out));
    assert!(output(&out).contains("successfully authenticated"));
}

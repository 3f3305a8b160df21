//! Running `padlock` as a child process and talking to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `target/<profile>/`, where `cargo build --workspace` put `padlock` and `libpam_padlock.so`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_owned()
}

/// Path of a built artefact, with a clear failure if it was not built.
pub fn artefact(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        p.display()
    );
    p
}

/// `padlock` with `args`, run to completion.
pub fn padlock(args: &[&str], cwd: &Path) -> Output {
    Command::new(artefact("padlock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("PADLOCK_CONFIG")
        .output()
        .expect("run padlock")
}

/// A running `padlock serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The `/setup` link, if this start printed one.
    pub setup_link: Option<String>,
    stderr: mpsc::Receiver<String>,
}

const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// Starts `padlock serve --data-dir <dir> --listen 127.0.0.1:0` plus `extra` and waits until it
    /// listens. Panics with its stderr if it exits instead.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Self::try_start(dir, extra)
            .unwrap_or_else(|(status, err)| panic!("padlock exited with {status}:\n{err}"))
    }

    /// Like [`Server::start`], but returns the exit status and stderr of a failed start.
    pub fn try_start(dir: &Path, extra: &[&str]) -> Result<Server, (ExitStatus, String)> {
        Self::try_start_with_env(dir, extra, &[])
    }

    /// Like [`Server::try_start`], with extra environment variables.
    pub fn try_start_with_env(
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, (ExitStatus, String)> {
        let data = dir.join("data");
        let mut child = Command::new(artefact("padlock"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(dir)
            .env_remove("PADLOCK_CONFIG")
            .env_remove("PADLOCK_LOG_FORMAT")
            .env("PADLOCK_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn padlock");
        let (out_tx, out_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        // The setup link (if any) comes first; the listening line is printed last.
        let mut setup_link = None;
        let url = loop {
            match out_rx.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("Padlock listening on ") {
                        break rest.split_whitespace().next().expect("url").to_owned();
                    }
                    if line.contains("/setup?token=") {
                        setup_link = Some(line.trim().to_owned());
                    }
                }
                Err(_) => {
                    let status = child.wait().expect("wait");
                    std::thread::sleep(Duration::from_millis(100));
                    let err: Vec<String> = err_rx.try_iter().collect();
                    return Err((status, err.join("\n")));
                }
            }
        };
        Ok(Server {
            child,
            url,
            setup_link,
            stderr: err_rx,
        })
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    /// Like [`Server::stop`], and returns what the server wrote to stderr that was not read yet,
    /// up to its exit.
    pub fn stop_with_stderr(mut self) -> (ExitStatus, String) {
        let status = self.terminate();
        let mut lines = Vec::new();
        // The reader thread ends at the pipe's end, which disconnects the channel.
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(10)) {
            lines.push(line);
        }
        (status, lines.join("\n"))
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child process by pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "padlock did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a secret file as an operator should: mode 0600 (Padlock refuses one others can read).
pub fn write_secret(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A loopback port that was free a moment ago (for peers that need a port before they start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A blocking HTTP client that does not follow redirects.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A management command as the operator (`--credentials data/operator.json --json`): it must
/// succeed and print exactly one JSON object, which is returned.
pub fn operator(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--credentials", "data/operator.json", "--json"]);
    let out = padlock(&all, dir);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim().lines().count(),
        1,
        "--json prints one object: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// Adds a user of Acme with `email`, the password [`crate::oidc::PW`] and `extra` arguments of
/// `padlock user add` (e.g. `--mobile`, `--unix-name`), as the operator.
pub fn add_user(dir: &Path, email: &str, extra: &[&str]) -> serde_json::Value {
    std::fs::write(dir.join("pw"), crate::oidc::PW).unwrap();
    let mut args = vec![
        "user",
        "add",
        "--tenant",
        "Acme",
        "--email",
        email,
        "--password-file",
        "pw",
    ];
    args.extend_from_slice(extra);
    operator(dir, &args)
}

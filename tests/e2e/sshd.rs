//! A real OpenSSH server for the PAM tests: Debian's `/usr/sbin/sshd` on a free loopback port, with
//! its own `sshd_config` and host key in a temporary directory, a throwaway Unix user, and a PAM
//! stack private to the test. A scripted client (`tests/peers/ssh_kbdint.py`, paramiko) logs in
//! with keyboard-interactive and answers prompts as a user would.
//!
//! How the PAM service stays private: sshd names its PAM service after its program name, so it runs
//! through a symlink `<tmp>/padlock-e2e-sshd-<random>` and `pam_wrapper` (preloaded; the preload
//! survives sshd's per-connection re-exec) reads that service from the temporary directory. The
//! host's `/etc/pam.d` is never read or written. Outside temporary directories the harness writes
//! only the throwaway user (`useradd -m`, removed with `userdel -r` on drop, also when a test
//! panics) and `/run/sshd` (sshd's privilege-separation directory) if it is missing.

use crate::harness::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// `useradd`, `chpasswd` and `userdel` lock `/etc/passwd` and `/etc/shadow`; tests running in
/// parallel take turns.
static USERDB: Mutex<()> = Mutex::new(());

/// `n` random bytes from the kernel.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf
}

/// A random string of `n` characters from `alphabet`.
fn random_string(n: usize, alphabet: &[u8]) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| char::from(alphabet[usize::from(b) % alphabet.len()]))
        .collect()
}

fn run_userdb(program: &str, args: &[&str], stdin: Option<&str>) {
    let _turn = USERDB.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (the tests run as root with passwd tools)"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A local Unix user made for one test: random name (`pl` + digits) and password, a home directory
/// and `/bin/sh`. Removed with `userdel -r` on drop, which also runs when the test panics.
pub struct UnixUser {
    pub name: String,
    pub password: String,
}

impl UnixUser {
    /// Creates the user (needs root).
    pub fn create() -> UnixUser {
        let name = format!("pl{}", random_string(10, b"0123456789"));
        let password = random_string(
            24,
            b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
        );
        run_userdb(
            "useradd",
            &["--create-home", "--shell", "/bin/sh", &name],
            None,
        );
        let user = UnixUser { name, password };
        run_userdb(
            "chpasswd",
            &[],
            Some(&format!("{}:{}\n", user.name, user.password)),
        );
        user
    }
}

impl Drop for UnixUser {
    fn drop(&mut self) {
        let _turn = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        // Nothing of this user may outlive the test; a failure here is reported, not a panic
        // inside a drop that may already be unwinding.
        let out = Command::new("userdel")
            .args(["--remove", &self.name])
            .output();
        match out {
            // 12: the mail spool (never created) could not be removed; the user is gone.
            Ok(o) if o.status.success() || o.status.code() == Some(12) => {}
            Ok(o) => eprintln!(
                "userdel {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("userdel {}: {e}", self.name),
        }
    }
}

/// The service directory's fallback, kept closed: a typo in a service name must not open a door.
const OTHER: &str = "auth required pam_deny.so\naccount required pam_deny.so\n\
                     password required pam_deny.so\nsession required pam_deny.so\n";

/// A running sshd for one test, with its throwaway user. Stopped, and its files removed, on drop.
pub struct Sshd {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    /// The PAM service name it uses (its program name).
    pub service: String,
    /// The user to log in as.
    pub user: UnixUser,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

/// `sshd_config` lines for a key plus the PAM stack (the second factor), as an operator sets them.
pub const KEY_AND_KBDINT: &str = "AuthenticationMethods publickey,keyboard-interactive
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
";

impl Sshd {
    /// Starts sshd with `auth_stack` as the `auth` lines of its PAM service (e.g.
    /// `"auth required pam_unix.so\n"`). Unless the text has lines of its own for them, the
    /// `account` and `session` stacks are `pam_permit.so`: these tests are about authentication.
    pub fn start(auth_stack: &str) -> Sshd {
        Self::start_with(auth_stack, "")
    }

    /// Like [`Sshd::start`], with `extra_config` lines for `sshd_config` (they come first, and
    /// sshd keeps the first value it reads, so they override the defaults here), e.g.
    /// `"AuthenticationMethods publickey,keyboard-interactive\nPubkeyAuthentication yes\n"`.
    pub fn start_with(auth_stack: &str, extra_config: &str) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: the README's test command installs openssh-server"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let service = format!("padlock-e2e-sshd-{}", random_string(8, b"0123456789abcdef"));

        // The PAM service, read through pam_wrapper from here.
        let services = d.join("pam.d");
        std::fs::create_dir(&services).unwrap();
        let mut stack = auth_stack.to_owned();
        if !stack.ends_with('\n') {
            stack.push('\n');
        }
        for kind in ["account", "session"] {
            if !stack.lines().any(|l| l.trim_start().starts_with(kind)) {
                stack.push_str(&format!("{kind} required pam_permit.so\n"));
            }
        }
        std::fs::write(services.join(&service), stack).unwrap();
        std::fs::write(services.join("other"), OTHER).unwrap();

        let key = d.join("host_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "padlock-e2e", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(out.status.success(), "ssh-keygen: {out:?}");

        // sshd refuses to start without its privilege-separation directory.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        // sshd re-executes itself by its absolute argv[0], and takes its PAM service from the
        // last component of that name.
        let program = d.join(&service);
        std::os::unix::fs::symlink(sshd, &program).unwrap();

        let user = UnixUser::create();
        // A port can be taken between free_port() and sshd's bind: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                sshd_config(extra_config, port, &key, d, &user.name),
            )
            .unwrap();
            match start_sshd(&program, &config, &services) {
                Ok((child, log)) => {
                    return Sshd {
                        child,
                        port,
                        service,
                        user,
                        log,
                        dir,
                    };
                }
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not start:\n{last_log}")
    }

    /// What sshd has logged so far (`-e`: its log goes to stderr, which the harness keeps).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A scripted keyboard-interactive login to this server as its user.
    pub fn client(&self) -> KbdInt {
        KbdInt::new(self.port, &self.user.name)
    }

    /// Logs in answering every prompt that mentions "Password" with `password`.
    pub fn password_login(&self, password: &str) -> SshLogin {
        self.client().answer("Password", password).run()
    }

    /// Makes a client key pair in the temporary directory and authorizes its public key in the
    /// user's `~/.ssh/authorized_keys` (owned by the user, as sshd's StrictModes wants). Returns the
    /// private key's path, for [`KbdInt::key`]. Needs [`KEY_AND_KBDINT`] or similar config.
    pub fn authorize_key(&self) -> PathBuf {
        let key = self.dir.path().join("client_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "padlock-e2e", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen: {out:?}");
        let home = format!("/home/{}", self.user.name);
        let ssh = format!("{home}/.ssh");
        let name = &self.user.name;
        for args in [
            vec!["-d", "-o", name, "-g", name, "-m", "700", &ssh],
            vec![
                "-o",
                name,
                "-g",
                name,
                "-m",
                "600",
                key.with_extension("pub").to_str().unwrap(),
                &format!("{ssh}/authorized_keys"),
            ],
        ] {
            let out = Command::new("install").args(&args).output().unwrap();
            assert!(out.status.success(), "install {args:?}: {out:?}");
        }
        key
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // SIGTERM lets sshd exit normally; pam_wrapper's temporary copy of the service directory
        // goes with it.
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: signalling our own child process by pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_pam_wrapper_copies(&self.service);
    }
}

/// pam_wrapper copies the service directory to `/tmp/pam.<c>` in each process that loads it and
/// removes the copy at exit; sshd's per-connection processes end with `_exit`, which skips that.
/// pam_wrapper would reclaim them later (their pid is gone), but there are only 62 names: remove the
/// copies that hold this server's unique service, and nothing else.
fn remove_pam_wrapper_copies(service: &str) {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_copy = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == "pam.x".len() && n.starts_with("pam."));
        if is_copy && path.join(service).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn sshd_config(extra: &str, port: u16, key: &Path, dir: &Path, user: &str) -> String {
    format!(
        "{extra}
ListenAddress 127.0.0.1:{port}
HostKey {key}
PidFile {pid}
UsePAM yes
KbdInteractiveAuthentication yes
# Otherwise sshd feeds the Unix password to every hidden PAM prompt.
PasswordAuthentication no
PubkeyAuthentication no
AuthorizedKeysFile none
AllowUsers {user}
UseDNS no
PrintMotd no
PrintLastLog no
LoginGraceTime 60
MaxAuthTries 6
LogLevel VERBOSE
",
        key = key.display(),
        pid = dir.join("sshd.pid").display(),
    )
}

type Log = Arc<Mutex<Vec<String>>>;

/// Starts sshd and waits for "Server listening"; on an early exit, returns its log.
fn start_sshd(program: &Path, config: &Path, services: &Path) -> Result<(Child, Log), String> {
    let mut child = Command::new(program)
        .args(["-D", "-e", "-f"])
        .arg(config)
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services)
        // sshd's pre-authentication child runs with a file-size limit of 0, so its log must go
        // to a pipe, never a file (writing one would kill it with SIGXFSZ).
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sshd");
    let log: Log = Arc::default();
    let (ready_tx, ready_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let keep = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("Server listening on") {
                let _ = ready_tx.send(());
            }
            keep.lock().unwrap().push(line);
        }
    });
    match ready_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => Ok((child, log)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
            Err(log.lock().unwrap().join("\n"))
        }
    }
}

/// What the scripted client saw.
#[derive(Debug)]
pub struct SshLogin {
    /// Whether sshd let the user in.
    pub authenticated: bool,
    /// Every keyboard-interactive prompt, in order (e.g. "Password: "). sshd puts the PAM info
    /// and error messages that came before a prompt at the start of its text, one per line.
    pub prompts: Vec<String>,
    /// Why authentication or the session failed, as paramiko says it.
    pub error: Option<String>,
    /// The command's output, once logged in.
    pub output: Option<String>,
    /// The command's exit status, once logged in.
    pub exit_status: Option<i64>,
}

/// A keyboard-interactive login by `tests/peers/ssh_kbdint.py`, built rule by rule: each prompt
/// gets the answer of the first rule whose text it contains (case-insensitive).
pub struct KbdInt {
    port: u16,
    user: String,
    rules: Vec<serde_json::Value>,
    key: Option<PathBuf>,
    command: String,
}

impl KbdInt {
    pub fn new(port: u16, user: &str) -> KbdInt {
        KbdInt {
            port,
            user: user.to_owned(),
            rules: Vec::new(),
            key: None,
            command: "echo ok".to_owned(),
        }
    }

    /// Prompts containing `prompt` get `answer`, every time.
    pub fn answer(mut self, prompt: &str, answer: &str) -> KbdInt {
        self.rules
            .push(serde_json::json!({"match": prompt, "answer": answer}));
        self
    }

    /// Prompts containing `prompt` get the next of `answers`; one more such prompt is a harness
    /// error.
    pub fn answers(mut self, prompt: &str, answers: &[&str]) -> KbdInt {
        self.rules
            .push(serde_json::json!({"match": prompt, "answers": answers}));
        self
    }

    /// Prompts containing `prompt` are answered by the test, when they appear: see
    /// [`KbdInt::run_with`]. For a code that exists only once the prompt was shown.
    pub fn ask(mut self, prompt: &str) -> KbdInt {
        self.rules
            .push(serde_json::json!({"match": prompt, "ask": true}));
        self
    }

    /// A private key offered (publickey) before keyboard-interactive.
    pub fn key(mut self, path: &Path) -> KbdInt {
        self.key = Some(path.to_owned());
        self
    }

    /// The command run once logged in (default `echo ok`).
    pub fn command(mut self, command: &str) -> KbdInt {
        self.command = command.to_owned();
        self
    }

    /// Logs in; an [`KbdInt::ask`] prompt is a harness error here.
    pub fn run(self) -> SshLogin {
        self.run_with(|prompt| panic!("no answer for the asked prompt {prompt:?}"))
    }

    /// Logs in, calling `on_ask` with the prompt's text for each [`KbdInt::ask`] prompt, at the
    /// moment it is shown; its return value is the answer. Panics on a harness error (no
    /// connection, a prompt no rule answers), with the client's report.
    pub fn run_with(self, mut on_ask: impl FnMut(&str) -> String) -> SshLogin {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/ssh_kbdint.py");
        let mut cmd = Command::new("python3");
        cmd.args(["-u", script, "--port", &self.port.to_string()])
            .args(["--user", &self.user])
            .args(["--rules", &serde_json::Value::from(self.rules).to_string()])
            .args(["--command", &self.command]);
        if let Some(key) = &self.key {
            cmd.arg("--key").arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with paramiko (installed by the README's test command)");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut last = None;
        for line in stdout.lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("ssh_kbdint.py printed {line:?}: {e}"));
            if let Some(prompt) = v.get("ask").and_then(|p| p.as_str()) {
                let answer = on_ask(prompt);
                writeln!(stdin, "{answer}").expect("answer the client");
                stdin.flush().unwrap();
            } else {
                last = Some(v);
            }
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let v = last.unwrap_or_else(|| panic!("ssh_kbdint.py gave no result: {stderr}"));
        assert!(
            out.status.success(),
            "ssh_kbdint.py failed ({}): {v}\n{stderr}",
            out.status
        );
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        SshLogin {
            authenticated: v["authenticated"].as_bool().unwrap(),
            prompts: strings("prompts"),
            error: v["error"].as_str().map(str::to_owned),
            output: v["output"].as_str().map(str::to_owned),
            exit_status: v["exit_status"].as_i64(),
        }
    }
}

#[test]
fn the_right_unix_password_logs_in_and_a_wrong_one_is_refused() {
    let sshd = Sshd::start("auth required pam_unix.so nodelay\n");

    let ok = sshd.password_login(&sshd.user.password);
    assert!(ok.authenticated, "{ok:?}\n{}", sshd.log());
    assert_eq!(ok.prompts, ["Password: "], "{ok:?}");
    assert_eq!(ok.output.as_deref(), Some("ok\n"), "{ok:?}\n{}", sshd.log());
    assert_eq!(ok.exit_status, Some(0));

    let wrong = sshd.password_login("not-the-password");
    assert!(!wrong.authenticated, "{wrong:?}");
    assert_eq!(wrong.prompts, ["Password: "], "{wrong:?}");
    assert_eq!(wrong.output, None);
    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            sshd.user.name
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Failed keyboard-interactive/pam for {}",
            sshd.user.name
        )),
        "{log}"
    );
}

#[test]
fn a_failing_module_below_the_password_refuses_the_right_password() {
    // Proves sshd reads the stack the test wrote (and not /etc/pam.d/sshd): pam_deny after a
    // correct pam_unix must refuse.
    let sshd = Sshd::start("auth required pam_unix.so nodelay\nauth required pam_deny.so\n");
    let login = sshd.password_login(&sshd.user.password);
    assert!(!login.authenticated, "{login:?}\n{}", sshd.log());
    assert_eq!(login.prompts, ["Password: "], "{login:?}");
    assert!(
        sshd.log().contains(&format!(
            "Failed keyboard-interactive/pam for {}",
            sshd.user.name
        )),
        "{}",
        sshd.log()
    );
}

#[test]
fn an_asked_prompt_is_answered_by_the_test_when_it_appears() {
    // The shape of a second-factor login: the Unix password, then a code that the test looks up
    // when its prompt is shown (as it will fetch an emailed code). pam_matrix (from pam_wrapper)
    // asks for the "code" and checks it against a file.
    let dir = tempfile::tempdir().unwrap();
    let codes = dir.path().join("codes");
    let stack = format!(
        "auth required pam_unix.so nodelay\nauth optional {}/pam_chatty.so num_lines=1 info\n\
         auth required {}/pam_matrix.so passdb={}\n",
        crate::pam::PAM_WRAPPER_MODULES,
        crate::pam::PAM_WRAPPER_MODULES,
        codes.display()
    );
    let sshd = Sshd::start(&stack);
    std::fs::write(
        &codes,
        format!("{}:975312:{}\n", sshd.user.name, sshd.service),
    )
    .unwrap();
    let mut asked = Vec::new();
    let login = sshd.client().ask("password").run_with(|prompt| {
        asked.push(prompt.to_owned());
        if asked.len() == 1 {
            sshd.user.password.clone()
        } else {
            let line = std::fs::read_to_string(&codes).unwrap();
            line.split(':').nth(1).unwrap().to_owned()
        }
    });
    assert!(login.authenticated, "{login:?}\n{}", sshd.log());
    // pam_chatty's info line reaches the user with the next prompt (sshd has no other way).
    assert_eq!(asked.len(), 2, "{login:?}");
    assert_eq!(asked[0], "Password: ");
    assert!(
        asked[1].starts_with("Authentication succeeded\n") && asked[1].ends_with("\nPassword: "),
        "{asked:?}"
    );
    assert_eq!(login.output.as_deref(), Some("ok\n"));

    let wrong = sshd
        .client()
        .answers("password", &[&sshd.user.password, "000000"])
        .run();
    assert!(!wrong.authenticated, "{wrong:?}\n{}", sshd.log());
    assert_eq!(wrong.prompts.len(), 2, "{wrong:?}");
}

#[test]
fn a_key_and_the_pam_stack_are_both_required_with_authentication_methods() {
    let sshd = Sshd::start_with("auth required pam_unix.so nodelay\n", KEY_AND_KBDINT);
    let key = sshd.authorize_key();

    let both = sshd
        .client()
        .key(&key)
        .answer("Password", &sshd.user.password)
        .command("id -un")
        .run();
    assert!(both.authenticated, "{both:?}\n{}", sshd.log());
    assert_eq!(both.output, Some(format!("{}\n", sshd.user.name)));

    // Without the key sshd does not even start the PAM conversation.
    let no_key = sshd.password_login(&sshd.user.password);
    assert!(!no_key.authenticated, "{no_key:?}");
    assert!(no_key.prompts.is_empty(), "{no_key:?}");
    assert!(no_key.error.is_some(), "{no_key:?}");

    // The key alone is half: a wrong answer to the PAM stack still refuses.
    let wrong = sshd
        .client()
        .key(&key)
        .answer("Password", "not-the-password")
        .run();
    assert!(!wrong.authenticated, "{wrong:?}\n{}", sshd.log());
    assert_eq!(wrong.prompts, ["Password: "], "{wrong:?}");
    assert!(
        sshd.log().contains("Partial publickey for"),
        "{}",
        sshd.log()
    );
}

//! `pam_padlock.so` loaded by a real PAM stack: `pamtester` under `pam_wrapper`, with a private
//! service directory so the host's `/etc/pam.d` is untouched. [`pamtester_conversation`] answers
//! prompts one at a time, as they appear, for modules whose answer exists only once they asked.

use crate::harness::artefact;
use crate::sshd::UnixUser;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `pamtester -v <service> <user> authenticate` against service files in `dir`, not yet run.
fn pamtester_command(dir: &Path, service: &str, user: &str) -> Command {
    pamtester_command_with(dir, service, user, &[])
}

/// [`pamtester_command`] with PAM items set first (`-I rhost=…`, `-I tty=…`).
fn pamtester_command_with(dir: &Path, service: &str, user: &str, items: &[&str]) -> Command {
    let mut cmd = Command::new("pamtester");
    cmd.arg("-v");
    for item in items {
        cmd.args(["-I", item]);
    }
    cmd.args([service, user, "authenticate"])
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", dir);
    cmd
}

/// Runs `pamtester <service> <user> authenticate` against service files in `dir`.
fn pamtester(dir: &Path, service: &str, user: &str) -> Output {
    pamtester_command(dir, service, user)
        .output()
        .expect("pamtester is installed by the README's test command")
}

/// One turn of a scripted PAM conversation: wait until pamtester's output since the previous
/// answer contains `prompt`, then answer with what `answer` makes of that output (so a test can
/// fetch a code that was sent only when the prompt appeared, or read a hint in the prompt).
pub struct Turn<'a> {
    prompt: String,
    answer: Box<dyn FnOnce(&str) -> String + 'a>,
}

/// A turn whose answer is computed when `prompt` appears.
pub fn turn<'a>(prompt: &str, answer: impl FnOnce(&str) -> String + 'a) -> Turn<'a> {
    Turn {
        prompt: prompt.to_owned(),
        answer: Box::new(answer),
    }
}

/// A turn answering `prompt` with `text`.
pub fn reply<'a>(prompt: &str, text: &str) -> Turn<'a> {
    let text = text.to_owned();
    turn(prompt, move |_| text)
}

/// How a scripted pamtester run ended.
#[derive(Debug)]
pub struct Conversation {
    /// pamtester's exit status was success ("successfully authenticated").
    pub success: bool,
    /// Everything pamtester wrote, stdout and stderr interleaved as they arrived: prompts
    /// (`PAM_PROMPT_*`, on stderr), `PAM_TEXT_INFO` lines (stdout) and the verdict.
    pub transcript: String,
}

const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `pamtester <service> <user> authenticate` under pam_wrapper (services from `dir`) and plays
/// `turns` in order. pamtester's conversation (libpam_misc's `misc_conv`) writes each prompt to
/// stderr and reads one line from stdin per prompt, so each answer is written only once its prompt
/// has been seen: several answers written at once could be swallowed by one read. After the last
/// turn stdin is closed, so an unexpected further prompt fails the conversation rather than hang.
/// Panics, with the transcript, if a prompt does not appear within 30 s.
pub fn pamtester_conversation(
    dir: &Path,
    service: &str,
    user: &str,
    turns: Vec<Turn<'_>>,
) -> Conversation {
    pamtester_conversation_with(dir, service, user, &[], turns)
}

/// [`pamtester_conversation`] with PAM items (`rhost=…`, `tty=…`) set by pamtester first.
pub fn pamtester_conversation_with(
    dir: &Path,
    service: &str,
    user: &str,
    items: &[&str],
    turns: Vec<Turn<'_>>,
) -> Conversation {
    let mut child = pamtester_command_with(dir, service, user, items)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pamtester is installed by the README's test command");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let readers: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for mut reader in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut stdin = child.stdin.take().unwrap();
    let mut transcript = Vec::new();
    let mut answered = 0;
    for Turn { prompt, answer } in turns {
        let deadline = Instant::now() + TURN_TIMEOUT;
        loop {
            let since = String::from_utf8_lossy(&transcript[answered..]).into_owned();
            if since.contains(&prompt) {
                let text = answer(&since);
                writeln!(stdin, "{text}").expect("pamtester reads its answer");
                stdin.flush().unwrap();
                answered = transcript.len();
                break;
            }
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(chunk) => transcript.extend(chunk),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "no prompt {prompt:?} from pamtester ({e}):\n{}",
                        String::from_utf8_lossy(&transcript)
                    );
                }
            }
        }
    }
    drop(stdin);
    let deadline = Instant::now() + TURN_TIMEOUT;
    // Both readers end at pamtester's exit, which disconnects the channel.
    while let Ok(chunk) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        transcript.extend(chunk);
    }
    let status = child.wait().unwrap();
    Conversation {
        success: status.success(),
        transcript: String::from_utf8_lossy(&transcript).into_owned(),
    }
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

/// pam_wrapper's test modules. `pam_matrix.so passdb=FILE` always asks "Password: " through the
/// conversation (even when an earlier module set the password item) and checks the answer against
/// `user:password:service` lines: here it stands in for a second factor. `pam_chatty.so info`
/// sends `PAM_TEXT_INFO` lines.
pub const PAM_WRAPPER_MODULES: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper";

#[test]
fn a_scripted_conversation_answers_each_prompt_when_it_appears() {
    // pam_unix under pam_wrapper reads /etc/shadow (the tests run as root); pam_matrix then asks
    // again, so the second answer must wait for the second prompt.
    let user = UnixUser::create();
    let dir = tempfile::tempdir().unwrap();
    let codes = dir.path().join("codes");
    std::fs::write(&codes, format!("{}:246810:two\n", user.name)).unwrap();
    service(
        dir.path(),
        "two",
        &format!(
            "auth required pam_unix.so nodelay\n\
             auth required {PAM_WRAPPER_MODULES}/pam_matrix.so passdb={}\n",
            codes.display()
        ),
    );
    let mut seen = Vec::new();
    let ok = pamtester_conversation(
        dir.path(),
        "two",
        &user.name,
        vec![
            reply("Password: ", &user.password),
            turn("Password: ", |since| {
                seen.push(since.to_owned());
                "246810".to_owned()
            }),
        ],
    );
    assert!(ok.success, "{}", ok.transcript);
    assert!(ok.transcript.contains("successfully authenticated"));
    assert_eq!(
        seen,
        ["Password: "],
        "a turn sees the output since the previous answer"
    );

    let refused = pamtester_conversation(
        dir.path(),
        "two",
        &user.name,
        vec![
            reply("Password: ", &user.password),
            reply("Password: ", "135791"),
        ],
    );
    assert!(!refused.success, "{}", refused.transcript);
    assert!(
        refused.transcript.contains("Authentication failure"),
        "{}",
        refused.transcript
    );

    // No answer for the second prompt: stdin is closed and the conversation fails, not hangs.
    let silent = pamtester_conversation(
        dir.path(),
        "two",
        &user.name,
        vec![reply("Password: ", &user.password)],
    );
    assert!(!silent.success, "{}", silent.transcript);
}

//! How long a PAM login's second factor takes through `pam_padlock.so`'s own code: for each user,
//! the steps `sm_authenticate` runs — read the module's configuration and host secret
//! ([`config::load`], [`config::read_host_secret`]), build the [`Client`], then [`flow::login`]
//! (`POST /pam/v1/preauth`, then `POST /pam/v1/auth` with the current TOTP code, typed by a
//! scripted conversation) — against a running Padlock. Only PAM's own calls (`pam_get_item`, the
//! conversation function) are left out.
//!
//! Prints one line per measurement:
//! - the login (`flow::login`: preauth + auth, the two round trips) — median, p90, p99 and max in
//!   ms, and the sample count. Each code is computed before its timer starts;
//! - the module's set-up per login (configuration, host secret, `Client::new`);
//! - the threads of this process (`/proc/self/task`) before the first login and after the last:
//!   the module may leave none behind.
//!
//! Run (as root, since the module refuses a configuration or secret file not owned by root):
//! `cargo run --release -p pam_padlock --example login_latency -- <pam.toml> <users>`, where
//! `<users>` has one line per user, `<unix name> <TOTP secret in hex>`. Each user logs in once:
//! Padlock accepts a TOTP time step once per user, so start in a step after the one used to
//! enrol (`bench/pam.sh` waits for the next 30-second step). Exits with status 1 if a login is
//! not allowed.

use padlock_policy::pam::{PreauthRequest, UnknownUser};
use pam_padlock::client::Client;
use pam_padlock::config;
use pam_padlock::flow::{self, Code, ConvFailed, Conversation, Settings};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// A user at the terminal who types `code` at the first prompt, and nothing after.
struct Typist {
    code: Option<String>,
}

impl Conversation for Typist {
    fn ask_hidden(&mut self, _prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConvFailed> {
        self.code
            .take()
            .map(|c| Zeroizing::new(c.into_bytes()))
            .ok_or(ConvFailed)
    }
    fn info(&mut self, _text: &str) {}
    fn error(&mut self, _text: &str) {}
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `median …, p90 …, p99 …, max …` of `samples` (nearest rank), in ms.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        ms(samples[rank - 1])
    };
    format!(
        "median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, conf, users] = args.as_slice() else {
        return Err(
            "usage: login_latency <pam.toml> <users: one `unix_name hex_secret` a line>".into(),
        );
    };
    let users = std::fs::read_to_string(users).map_err(|e| format!("{users}: {e}"))?;
    let users: Vec<(String, Vec<u8>)> = users
        .lines()
        .filter_map(|l| {
            let (name, secret) = l.split_once(' ')?;
            Some((name.to_owned(), hex(secret.trim())?))
        })
        .collect();
    if users.is_empty() {
        return Err("no users".into());
    }

    let before = threads();
    let (mut logins, mut setups, mut allowed) = (Vec::new(), Vec::new(), 0);
    for (name, secret) in &users {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let code = padlock_policy::totp::code_at(secret, now).map_err(|e| format!("{e:?}"))?;
        let request = PreauthRequest {
            user: name.clone(),
            service: "sshd".into(),
            rhost: Some("192.0.2.10".into()),
            tty: Some("ssh".into()),
            unknown_user: UnknownUser::Deny,
        };
        let mut typist = Typist { code: Some(code) };

        let started = Instant::now();
        let config = config::load(Path::new(conf))?;
        let mut client =
            config::read_host_secret(&config).and_then(|secret| Client::new(&config, &secret))?;
        let settings = Settings::from_config(&config);
        setups.push(started.elapsed());

        let started = Instant::now();
        let ending = flow::login(&request, &settings, &mut typist, &mut client);
        logins.push(started.elapsed());
        drop(client);
        if ending.code == Code::Success {
            allowed += 1;
        } else {
            eprintln!("{name}: {:?}: {}", ending.code, ending.log);
        }
    }
    let after = threads();

    let n = users.len();
    println!(
        "pam login via the module's Client (flow::login = preauth + auth, TOTP): {}, {n} samples, {allowed}/{n} allowed",
        summary(&mut logins)
    );
    println!(
        "pam module set-up per login (config + host secret + Client::new): {}, {n} samples",
        summary(&mut setups)
    );
    println!(
        "threads of the logging-in process (/proc/self/task): {before} before the first login, {after} after the last"
    );
    if allowed != n {
        std::process::exit(1);
    }
    Ok(())
}

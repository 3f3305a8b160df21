//! `pam_padlock.so`: adds the Padlock second factor to PAM logins (ssh, sudo, su, console);
//! DESIGN §8.
//!
//! The module is thin: read the configuration ([`config`]), get the user, ask Padlock's PAM API
//! ([`client`]), converse ([`flow`]), map the answer to a PAM code. It never reads Padlock's
//! database. Seams: [`flow::Conversation`] and [`flow::Api`], so the whole login runs in unit
//! tests without PAM.
//!
//! Module line: `auth required pam_padlock.so [config=/path]` (default [`config::DEFAULT_PATH`]).
//!
//! Security invariants:
//! - every failure maps to a deliberate code. A configuration or host-secret file that is missing,
//!   invalid, not owned by root or open to group/others → `PAM_AUTHINFO_UNAVAIL` (never failsafe);
//!   Padlock unreachable at `preauth` → `PAM_AUTHINFO_UNAVAIL`, or `PAM_SUCCESS` with a
//!   `LOG_AUTHPRIV` warning in `failmode = "safe"`; any failure once Padlock asked for a second
//!   factor, and any untrusted answer → `PAM_AUTHINFO_UNAVAIL` in both modes;
//! - users out of scope (`unknown_user = "ignore"`) → `PAM_IGNORE`, never `PAM_SUCCESS`;
//! - a user name that is not UTF-8, empty, longer than 256 bytes or with control characters →
//!   `PAM_USER_UNKNOWN` (it cannot name a Padlock user); a service, rhost or tty of that kind →
//!   `PAM_AUTH_ERR`; answers of that kind are wrong tries that are not sent;
//! - no panic crosses the FFI boundary: `pam_hooks!` (pam-bindings 0.4.0) runs every entry point
//!   inside `catch_unwind` and answers `PAM_ABORT`; the release profile keeps `panic = "unwind"`;
//! - no thread and no runtime outlive a call, and the caller's environment is not read;
//! - the host secret and the answers are zeroed after use and never logged.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod client;
pub mod config;
pub mod flow;
mod syslog;

use flow::{Code, ConvFailed, Conversation, Ending, Level, Settings};
use padlock_policy::pam::{MAX_FIELD_BYTES, PreauthRequest};
use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_SILENT, PAM_TEXT_INFO, PamFlag, PamResultCode,
};
use pam::conv::Conv;
use pam::items::{RHost, Service, Tty, User};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;
use zeroize::Zeroizing;

/// The module type behind the PAM entry points.
pub struct PadlockPam;

// The macro defines the `extern "C"` entry points (`no_mangle`), which the unsafe_code lint flags.
#[allow(unsafe_code)]
mod hooks {
    pam::pam_hooks!(PadlockPam);
    use super::PadlockPam;
}

impl PamHooks for PadlockPam {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let args: Vec<&str> = args.iter().filter_map(|a| a.to_str().ok()).collect();
        let path = config::config_path(&args);
        let config = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                syslog::error(&format!("pam_padlock: {e}; refusing the login"));
                return PamResultCode::PAM_AUTHINFO_UNAVAIL;
            }
        };
        let request = match who(pamh, &config) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let tag = tag(&request);
        let mut client = match config::read_host_secret(&config)
            .and_then(|secret| client::Client::new(&config, &secret))
        {
            Ok(c) => c,
            Err(e) => {
                syslog::error(&format!("pam_padlock: {tag}: {e}; refusing the login"));
                return PamResultCode::PAM_AUTHINFO_UNAVAIL;
            }
        };
        let conv = match pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv,
            _ => {
                syslog::error(&format!(
                    "pam_padlock: {tag}: the application has no conversation function; refusing the login"
                ));
                return PamResultCode::PAM_CONV_ERR;
            }
        };
        let mut conversation = PamConversation {
            conv,
            silent: flags & PAM_SILENT != 0,
        };
        let ending = flow::login(
            &request,
            &Settings::from_config(&config),
            &mut conversation,
            &mut client,
        );
        log(&tag, &ending);
        pam_code(ending.code)
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        // A second factor grants no credentials of its own.
        PamResultCode::PAM_SUCCESS
    }
}

/// The `PAM_*` code of each [`Code`], one-to-one.
#[must_use]
pub fn pam_code(code: Code) -> PamResultCode {
    match code {
        Code::Success => PamResultCode::PAM_SUCCESS,
        Code::AuthErr => PamResultCode::PAM_AUTH_ERR,
        Code::MaxTries => PamResultCode::PAM_MAXTRIES,
        Code::AuthInfoUnavail => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Code::Ignore => PamResultCode::PAM_IGNORE,
        Code::ConvErr => PamResultCode::PAM_CONV_ERR,
    }
}

/// The preauth request from PAM's items, or the code that refuses the login (and its syslog line).
fn who(pamh: &mut PamHandle, config: &config::PamConfig) -> Result<PreauthRequest, PamResultCode> {
    let raw_user = user_bytes(pamh)?;
    let user = match checked(&raw_user) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            syslog::error(&format!(
                "pam_padlock: the user name {:?} is empty, not UTF-8 or longer than {MAX_FIELD_BYTES} bytes; refusing the login",
                String::from_utf8_lossy(raw_user.get(..64).unwrap_or(&raw_user))
            ));
            return Err(PamResultCode::PAM_USER_UNKNOWN);
        }
    };
    let service = item(pamh.get_item::<Service>(), |s| s.0);
    let rhost = item(pamh.get_item::<RHost>(), |s| s.0);
    let tty = item(pamh.get_item::<Tty>(), |s| s.0);
    match (service, rhost, tty) {
        (Ok(Some(service)), Ok(rhost), Ok(tty)) => Ok(PreauthRequest {
            user,
            service,
            rhost,
            tty,
            unknown_user: config.unknown_user,
        }),
        _ => {
            syslog::error(&format!(
                "pam_padlock: user={user:?}: PAM_SERVICE is missing, or PAM_SERVICE, PAM_RHOST or PAM_TTY is not UTF-8 or longer than {MAX_FIELD_BYTES} bytes; refusing the login"
            ));
            Err(PamResultCode::PAM_AUTH_ERR)
        }
    }
}

/// `PAM_USER`'s bytes, asking the application through `pam_get_user` when it is not set yet.
fn user_bytes(pamh: &mut PamHandle) -> Result<Vec<u8>, PamResultCode> {
    if let Some(u) = pamh.get_item::<User>()? {
        return Ok(u.0.to_bytes().to_vec());
    }
    match pamh.get_user(None) {
        Ok(u) => Ok(u.into_bytes()),
        // pam-bindings says SYSTEM_ERR for a name that is not UTF-8: look at the bytes ourselves.
        Err(PamResultCode::PAM_SYSTEM_ERR) => match pamh.get_item::<User>()? {
            Some(u) => Ok(u.0.to_bytes().to_vec()),
            None => Err(PamResultCode::PAM_SYSTEM_ERR),
        },
        Err(code) => Err(code),
    }
}

/// A PAM string item as checked text: `Ok(None)` when unset or empty, `Err` when not UTF-8 or
/// longer than [`MAX_FIELD_BYTES`] (or PAM could not read it).
fn item<T>(
    got: Result<Option<T>, PamResultCode>,
    raw: impl Fn(&T) -> &CStr,
) -> Result<Option<String>, ()> {
    match got {
        Ok(Some(t)) => checked(raw(&t).to_bytes()).map(|s| (!s.is_empty()).then_some(s)),
        Ok(None) => Ok(None),
        Err(_) => Err(()),
    }
}

/// `bytes` as text when UTF-8 and at most [`MAX_FIELD_BYTES`] long.
fn checked(bytes: &[u8]) -> Result<String, ()> {
    if bytes.len() > MAX_FIELD_BYTES {
        return Err(());
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| ())?;
    if text.chars().any(char::is_control) {
        return Err(());
    }
    Ok(text)
}

/// `user="…" service="…" rhost="…"` for syslog (quoted and escaped by `Debug`).
fn tag(request: &PreauthRequest) -> String {
    format!(
        "user={:?} service={:?} rhost={:?}",
        request.user,
        request.service,
        request.rhost.as_deref().unwrap_or("-")
    )
}

fn log(tag: &str, ending: &Ending) {
    let line = format!("pam_padlock: {tag}: {}", ending.log);
    match ending.level {
        Level::Info => syslog::info(&line),
        Level::Notice => syslog::notice(&line),
        Level::Warning => syslog::warning(&line),
        Level::Err => syslog::error(&line),
    }
}

/// PAM's conversation function behind [`Conversation`]. With `PAM_SILENT` no information or
/// error line is shown; prompts still are.
struct PamConversation<'a> {
    conv: Conv<'a>,
    silent: bool,
}

impl Conversation for PamConversation<'_> {
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConvFailed> {
        match self.conv.send(PAM_PROMPT_ECHO_OFF, prompt) {
            // SecretBytes zeroes its own copy on drop.
            Ok(Some(answer)) => Ok(Zeroizing::new(answer.as_bytes().to_vec())),
            _ => Err(ConvFailed),
        }
    }

    fn info(&mut self, text: &str) {
        if !self.silent {
            let _ = self.conv.send(PAM_TEXT_INFO, text);
        }
    }

    fn error(&mut self, text: &str) {
        if !self.silent {
            let _ = self.conv.send(PAM_ERROR_MSG, text);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_pam_code() {
        for (code, pam) in [
            (Code::Success, PamResultCode::PAM_SUCCESS),
            (Code::AuthErr, PamResultCode::PAM_AUTH_ERR),
            (Code::MaxTries, PamResultCode::PAM_MAXTRIES),
            (Code::AuthInfoUnavail, PamResultCode::PAM_AUTHINFO_UNAVAIL),
            (Code::Ignore, PamResultCode::PAM_IGNORE),
            (Code::ConvErr, PamResultCode::PAM_CONV_ERR),
        ] {
            assert_eq!(pam_code(code), pam);
        }
    }

    #[test]
    fn names_and_items_are_checked_not_trusted() {
        assert_eq!(checked(b"alice"), Ok("alice".to_owned()));
        assert!(checked(b"al\xffice").is_err());
        assert!(checked(&[b'a'; MAX_FIELD_BYTES + 1]).is_err());
        assert!(checked(&[b'a'; MAX_FIELD_BYTES]).is_ok());
        let ok: Result<Option<&CStr>, PamResultCode> = Ok(Some(c"sshd"));
        assert_eq!(item(ok, |s| *s), Ok(Some("sshd".to_owned())));
        let empty: Result<Option<&CStr>, PamResultCode> = Ok(Some(c""));
        assert_eq!(item(empty, |s| *s), Ok(None));
        let bad: Result<Option<&CStr>, PamResultCode> = Ok(Some(c"\xff"));
        assert_eq!(item(bad, |s| *s), Err(()));
    }
}

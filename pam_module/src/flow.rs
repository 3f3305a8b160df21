//! One login's second factor (DESIGN §8 "Flow"), written against two small seams so it can be
//! tested without PAM or a network: [`Conversation`] (what the user sees and types) and [`Api`]
//! (Padlock's `/pam/v1`, implemented by [`Client`]).
//!
//! `preauth` → `allow` (no prompt) | `unknown` (`PAM_IGNORE`) | `deny` (message, `PAM_AUTH_ERR`) |
//! `challenge` → up to `prompts` hidden prompts, each answer sent to `auth` → `allow`
//! (`PAM_SUCCESS`) | `retry` (message, ask again) | `deny` (message, `PAM_AUTH_ERR`) | `pending`
//! (Duo push: poll `auth_status`). After `prompts` wrong answers: `PAM_MAXTRIES`.
//!
//! Wrong tries that are never sent: an empty answer (except for Duo, where Enter asks for a push),
//! an answer that is not UTF-8, and one longer than [`MAX_FIELD_BYTES`]. A failed call at any
//! step follows the failmode ([`CallFailure::verdict`]): only an unreachable Padlock in `safe`
//! mode lets the login through, with a warning in syslog.

use crate::client::{CallError, Client};
use crate::config::PamConfig;
use padlock_policy::pam::{
    AuthResponse, CallFailure, FailMode, MAX_FIELD_BYTES, PamMethod, PreauthRequest,
    PreauthResponse, Stage, UnknownUser, Verdict,
};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The Duo prompt DESIGN §8 names, shown if Padlock's challenge carries no prompt of its own.
pub const DUO_PROMPT: &str = "Duo passcode, or press Enter for a push to your phone: ";

/// Longest Duo push wait per push, in seconds (DESIGN §8: at most 60 s).
pub const DUO_POLL_WINDOW_SECS: u64 = 60;

/// Pause between two `auth_status` polls, in milliseconds.
pub const DUO_POLL_INTERVAL_MS: u64 = 2000;

/// The user's side of the login: PAM's conversation function in the module, a script in tests.
pub trait Conversation {
    /// Shows `prompt` with echo off (`PAM_PROMPT_ECHO_OFF`) and returns what was typed (zeroed on
    /// drop).
    ///
    /// # Errors
    /// [`ConvFailed`] when the application cannot ask (no terminal, the user aborted).
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConvFailed>;
    /// Shows an information line (`PAM_TEXT_INFO`); a lost line changes nothing.
    fn info(&mut self, text: &str);
    /// Shows an error line (`PAM_ERROR_MSG`); a lost line changes nothing.
    fn error(&mut self, text: &str);
}

/// The conversation could not ask the user (`PAM_CONV_ERR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvFailed;

/// Padlock's PAM API, as the flow uses it.
pub trait Api {
    /// `POST /pam/v1/preauth`.
    ///
    /// # Errors
    /// [`CallError`] with its DESIGN §8 class.
    fn preauth(&mut self, request: &PreauthRequest) -> Result<PreauthResponse, CallError>;
    /// `POST /pam/v1/auth` with the user's answer (`""` asks for a Duo push).
    ///
    /// # Errors
    /// [`CallError`] with its DESIGN §8 class.
    fn auth(&mut self, txid: &str, answer: &str) -> Result<AuthResponse, CallError>;
    /// `GET /pam/v1/auth_status`, waiting at most `cap`.
    ///
    /// # Errors
    /// [`CallError`] with its DESIGN §8 class.
    fn auth_status(&mut self, txid: &str, cap: Duration) -> Result<AuthResponse, CallError>;
}

impl Api for Client {
    fn preauth(&mut self, request: &PreauthRequest) -> Result<PreauthResponse, CallError> {
        Client::preauth(self, request)
    }
    fn auth(&mut self, txid: &str, answer: &str) -> Result<AuthResponse, CallError> {
        Client::auth(self, txid, answer)
    }
    fn auth_status(&mut self, txid: &str, cap: Duration) -> Result<AuthResponse, CallError> {
        Client::auth_status(self, txid, cap)
    }
}

/// The flow's knobs: from the configuration, with Duo's poll timing fixed (tests shorten it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What an unreachable Padlock means.
    pub failmode: FailMode,
    /// Wrong answers allowed before `PAM_MAXTRIES` (≥ 1).
    pub prompts: u32,
    /// Send a Duo push at once instead of prompting first.
    pub duo_autopush: bool,
    /// Pause between `auth_status` polls.
    pub poll_interval: Duration,
    /// Longest wait for one Duo push.
    pub poll_window: Duration,
}

impl Settings {
    /// The settings for `config`, with [`DUO_POLL_INTERVAL_MS`] and [`DUO_POLL_WINDOW_SECS`].
    #[must_use]
    pub fn from_config(config: &PamConfig) -> Settings {
        Settings {
            failmode: config.failmode,
            prompts: config.prompts.max(1),
            duo_autopush: config.duo_autopush,
            poll_interval: Duration::from_millis(DUO_POLL_INTERVAL_MS),
            poll_window: Duration::from_secs(DUO_POLL_WINDOW_SECS),
        }
    }
}

/// The PAM result of a login; `lib.rs` maps each to its `PAM_*` code one-to-one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Code {
    /// `PAM_SUCCESS`.
    Success,
    /// `PAM_AUTH_ERR`.
    AuthErr,
    /// `PAM_MAXTRIES`.
    MaxTries,
    /// `PAM_AUTHINFO_UNAVAIL`.
    AuthInfoUnavail,
    /// `PAM_IGNORE`.
    Ignore,
    /// `PAM_CONV_ERR`: the user could not be asked.
    ConvErr,
}

impl From<Verdict> for Code {
    fn from(v: Verdict) -> Code {
        match v {
            Verdict::Success => Code::Success,
            Verdict::AuthErr => Code::AuthErr,
            Verdict::MaxTries => Code::MaxTries,
            Verdict::AuthInfoUnavail => Code::AuthInfoUnavail,
            Verdict::Ignore => Code::Ignore,
        }
    }
}

/// Syslog priority of a login's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `LOG_INFO`: a login passed or was left to the stack.
    Info,
    /// `LOG_NOTICE`: a login was refused for the user's answers.
    Notice,
    /// `LOG_WARNING`: a login passed without a second factor (failmode `safe`).
    Warning,
    /// `LOG_ERR`: Padlock could not be used.
    Err,
}

/// How a login ended: the PAM result and one syslog sentence (no secret, no answer in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The result for PAM.
    pub code: Code,
    /// Syslog priority.
    pub level: Level,
    /// What happened.
    pub log: String,
}

impl Ending {
    fn new(code: Code, level: Level, log: impl Into<String>) -> Ending {
        Ending {
            code,
            level,
            log: log.into(),
        }
    }
}

/// Runs one login's second factor for `request` (DESIGN §8).
pub fn login(
    request: &PreauthRequest,
    settings: &Settings,
    conv: &mut dyn Conversation,
    api: &mut dyn Api,
) -> Ending {
    let answer = match api.preauth(request) {
        Ok(a) => a,
        Err(e) => return failed(&e, settings, Stage::Preauth),
    };
    match answer {
        PreauthResponse::Allow => Ending::new(
            Code::Success,
            Level::Info,
            "no second factor required (the company has it off)",
        ),
        PreauthResponse::Unknown if request.unknown_user == UnknownUser::Ignore => Ending::new(
            Code::Ignore,
            Level::Info,
            "not a Padlock user here; unknown_user = \"ignore\" leaves the decision to the rest of the stack",
        ),
        PreauthResponse::Unknown => failed(
            &CallError {
                failure: CallFailure::Untrusted,
                detail: "preauth answered \"unknown\" although unknown_user = \"deny\"".into(),
            },
            settings,
            Stage::Preauth,
        ),
        PreauthResponse::Deny { message } => {
            conv.error(&shown(&message));
            Ending::new(
                Code::AuthErr,
                Level::Notice,
                format!("Padlock refused the login: {}", shown(&message)),
            )
        }
        PreauthResponse::Challenge {
            txid,
            method,
            prompt,
        } => challenge(&txid, method, &prompt, settings, conv, api),
    }
}

/// The prompt loop of one challenge.
fn challenge(
    txid: &str,
    method: PamMethod,
    prompt: &str,
    settings: &Settings,
    conv: &mut dyn Conversation,
    api: &mut dyn Api,
) -> Ending {
    let prompt = match (shown(prompt), method) {
        (p, PamMethod::Duo) if p.trim().is_empty() => DUO_PROMPT.to_owned(),
        (p, _) => p,
    };
    let name = method_name(method);
    let mut autopush = settings.duo_autopush && method == PamMethod::Duo;
    let mut wrong = 0;
    while wrong < settings.prompts {
        let answer = if autopush {
            autopush = false;
            conv.info("Sending a Duo push to your phone; approve it to log in.");
            Zeroizing::new(String::new())
        } else {
            let Ok(typed) = conv.ask_hidden(&prompt) else {
                return Ending::new(
                    Code::ConvErr,
                    Level::Notice,
                    format!("the {name} prompt could not be shown or was aborted"),
                );
            };
            match read_answer(&typed) {
                Ok(text) if text.is_empty() && method != PamMethod::Duo => {
                    conv.error("No code entered.");
                    wrong += 1;
                    continue;
                }
                Ok(text) => text,
                Err(()) => {
                    conv.error("That answer cannot be checked.");
                    wrong += 1;
                    continue;
                }
            }
        };
        let push = answer.is_empty();
        let mut reply = match api.auth(txid, &answer) {
            Ok(r) => r,
            Err(e) => return failed(&e, settings, Stage::Challenge),
        };
        drop(answer);
        if reply == AuthResponse::Pending {
            if !push {
                let e = CallError {
                    failure: CallFailure::Untrusted,
                    detail: format!("auth answered \"pending\" to a {name} answer"),
                };
                return failed(&e, settings, Stage::Challenge);
            }
            reply = match poll(txid, settings, api) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    conv.error("Duo push timed out.");
                    wrong += 1;
                    continue;
                }
                Err(e) => return failed(&e, settings, Stage::Challenge),
            };
        }
        match reply {
            AuthResponse::Allow => {
                if push {
                    conv.info("Duo push approved.");
                }
                let how = if push { "duo push" } else { name };
                return Ending::new(
                    Code::Success,
                    Level::Info,
                    format!("second factor passed ({how}) after {wrong} wrong answer(s)"),
                );
            }
            AuthResponse::Retry { message } => {
                // Padlock says why (a push denied or timed out, a wrong code).
                let message = shown(&message);
                if push && message.trim().is_empty() {
                    conv.error("Duo push denied.");
                } else {
                    conv.error(&message);
                }
                wrong += 1;
            }
            AuthResponse::Deny { message } => {
                conv.error(&shown(&message));
                return Ending::new(
                    Code::AuthErr,
                    Level::Notice,
                    format!(
                        "Padlock ended the {name} challenge after {wrong} wrong answer(s): {}",
                        shown(&message)
                    ),
                );
            }
            AuthResponse::Pending => {
                // poll() returns only a settled answer; a second "pending" is not one.
                let e = CallError {
                    failure: CallFailure::Untrusted,
                    detail: "auth_status settled on \"pending\"".into(),
                };
                return failed(&e, settings, Stage::Challenge);
            }
        }
    }
    Ending::new(
        Code::MaxTries,
        Level::Notice,
        format!("{wrong} wrong {name} answers: no prompt left"),
    )
}

/// Polls `auth_status` every `poll_interval` until an answer other than `pending`, for at most
/// `poll_window`. `Ok(None)`: the window passed (the push timed out).
fn poll(
    txid: &str,
    settings: &Settings,
    api: &mut dyn Api,
) -> Result<Option<AuthResponse>, CallError> {
    let started = Instant::now();
    loop {
        let left = settings.poll_window.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(settings.poll_interval.min(left));
        let left = settings.poll_window.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        match api.auth_status(txid, left)? {
            AuthResponse::Pending => {}
            settled => return Ok(Some(settled)),
        }
    }
}

/// The PAM result of a call failed at `stage` under the failmode (DESIGN §8,
/// [`CallFailure::verdict`]), with its syslog line.
fn failed(e: &CallError, settings: &Settings, stage: Stage) -> Ending {
    let at = match stage {
        Stage::Preauth => "preauth",
        Stage::Challenge => "the challenge",
    };
    match e.failure.verdict(settings.failmode, stage) {
        Verdict::Success => Ending::new(
            Code::Success,
            Level::Warning,
            format!(
                "Padlock unreachable at {at} ({e}); failmode = \"safe\" lets the login through without a second factor"
            ),
        ),
        v => Ending::new(
            Code::from(v),
            Level::Err,
            format!("Padlock call failed at {at} ({e}); refusing the login"),
        ),
    }
}

/// The typed answer as text: trimmed of surrounding whitespace, UTF-8, at most
/// [`MAX_FIELD_BYTES`], no control characters; `Err` when it cannot be sent.
fn read_answer(typed: &[u8]) -> Result<Zeroizing<String>, ()> {
    let text = std::str::from_utf8(typed).map_err(|_| ())?;
    let text = text.trim();
    if text.len() > MAX_FIELD_BYTES || text.chars().any(char::is_control) {
        return Err(());
    }
    Ok(Zeroizing::new(text.to_owned()))
}

/// Text from Padlock made safe for a terminal and a log: control characters removed, at most
/// 512 characters.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(512).collect()
}

fn method_name(method: PamMethod) -> &'static str {
    match method {
        PamMethod::Code => "code",
        PamMethod::Totp => "totp",
        PamMethod::Duo => "duo",
    }
}

#[cfg(test)]
pub(crate) mod tests;

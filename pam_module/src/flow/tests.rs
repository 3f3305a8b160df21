//! The prompt loop with a scripted user and a scripted Padlock.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use super::*;
use std::collections::VecDeque;

/// What the user saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
    Prompt(String),
    Info(String),
    Error(String),
}

/// A user who types the scripted answers in order (and aborts when they run out).
#[derive(Debug, Default)]
pub(crate) struct ScriptedConv {
    answers: VecDeque<Vec<u8>>,
    pub(crate) shown: Vec<Shown>,
}

impl ScriptedConv {
    pub(crate) fn typing(answers: &[&[u8]]) -> ScriptedConv {
        ScriptedConv {
            answers: answers.iter().map(|a| a.to_vec()).collect(),
            shown: Vec::new(),
        }
    }
    pub(crate) fn prompts(&self) -> usize {
        self.shown
            .iter()
            .filter(|s| matches!(s, Shown::Prompt(_)))
            .count()
    }
    pub(crate) fn errors(&self) -> Vec<&str> {
        self.shown
            .iter()
            .filter_map(|s| match s {
                Shown::Error(e) => Some(e.as_str()),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn infos(&self) -> Vec<&str> {
        self.shown
            .iter()
            .filter_map(|s| match s {
                Shown::Info(e) => Some(e.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl Conversation for ScriptedConv {
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConvFailed> {
        self.shown.push(Shown::Prompt(prompt.to_owned()));
        self.answers
            .pop_front()
            .map(Zeroizing::new)
            .ok_or(ConvFailed)
    }
    fn info(&mut self, text: &str) {
        self.shown.push(Shown::Info(text.to_owned()));
    }
    fn error(&mut self, text: &str) {
        self.shown.push(Shown::Error(text.to_owned()));
    }
}

/// A Padlock that answers from scripts and records the answers it was sent.
#[derive(Debug, Default)]
struct FakeApi {
    preauth: VecDeque<Result<PreauthResponse, CallError>>,
    auth: VecDeque<Result<AuthResponse, CallError>>,
    status: VecDeque<Result<AuthResponse, CallError>>,
    /// When `status` runs out: keep answering `pending`.
    status_forever_pending: bool,
    sent: Vec<String>,
    polls: usize,
}

impl Api for FakeApi {
    fn preauth(&mut self, _request: &PreauthRequest) -> Result<PreauthResponse, CallError> {
        self.preauth.pop_front().expect("unexpected preauth")
    }
    fn auth(&mut self, txid: &str, answer: &str) -> Result<AuthResponse, CallError> {
        assert_eq!(txid, "tx1");
        self.sent.push(answer.to_owned());
        self.auth.pop_front().expect("unexpected auth")
    }
    fn auth_status(&mut self, txid: &str, cap: Duration) -> Result<AuthResponse, CallError> {
        assert_eq!(txid, "tx1");
        assert!(!cap.is_zero());
        self.polls += 1;
        match self.status.pop_front() {
            Some(r) => r,
            None if self.status_forever_pending => Ok(AuthResponse::Pending),
            None => panic!("unexpected auth_status"),
        }
    }
}

fn request(unknown_user: UnknownUser) -> PreauthRequest {
    PreauthRequest {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some("192.0.2.7".into()),
        tty: Some("ssh".into()),
        unknown_user,
    }
}

fn settings(failmode: FailMode) -> Settings {
    Settings {
        failmode,
        prompts: 3,
        duo_autopush: false,
        poll_interval: Duration::from_millis(5),
        poll_window: Duration::from_millis(200),
    }
}

const CODE_PROMPT: &str = "Verification code (sent by email to a•••@example.com): ";

fn challenge(method: PamMethod, prompt: &str) -> FakeApi {
    FakeApi {
        preauth: VecDeque::from([Ok(PreauthResponse::Challenge {
            txid: "tx1".into(),
            method,
            prompt: prompt.into(),
        })]),
        ..FakeApi::default()
    }
}

fn retry() -> Result<AuthResponse, CallError> {
    Ok(AuthResponse::Retry {
        message: "That code is not right.".into(),
    })
}

fn run(api: &mut FakeApi, conv: &mut ScriptedConv, settings: &Settings) -> Code {
    login(&request(UnknownUser::Deny), settings, conv, api).code
}

#[test]
fn wrong_then_right() {
    let mut api = challenge(PamMethod::Code, CODE_PROMPT);
    api.auth = VecDeque::from([retry(), Ok(AuthResponse::Allow)]);
    let mut conv = ScriptedConv::typing(&[b"111111", b" 222222\n"]);
    let ending = login(
        &request(UnknownUser::Deny),
        &settings(FailMode::Secure),
        &mut conv,
        &mut api,
    );
    assert_eq!(ending.code, Code::Success);
    assert_eq!(api.sent, ["111111", "222222"]);
    assert_eq!(
        conv.shown,
        [
            Shown::Prompt(CODE_PROMPT.into()),
            Shown::Error("That code is not right.".into()),
            Shown::Prompt(CODE_PROMPT.into()),
        ]
    );
    assert!(!ending.log.contains("111111") && !ending.log.contains("222222"));
}

#[test]
fn three_wrong_answers_are_maxtries() {
    let mut api = challenge(PamMethod::Totp, "Code from your authenticator app: ");
    api.auth = VecDeque::from([retry(), retry(), retry()]);
    let mut conv = ScriptedConv::typing(&[b"1", b"2", b"3", b"4"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::MaxTries
    );
    assert_eq!(api.sent, ["1", "2", "3"]);
    assert_eq!(conv.prompts(), 3);
}

#[test]
fn the_prompt_count_follows_the_setting() {
    let mut api = challenge(PamMethod::Totp, "Code: ");
    api.auth = VecDeque::from([retry()]);
    let mut conv = ScriptedConv::typing(&[b"1", b"2"]);
    let s = Settings {
        prompts: 1,
        ..settings(FailMode::Safe)
    };
    assert_eq!(run(&mut api, &mut conv, &s), Code::MaxTries);
    assert_eq!(conv.prompts(), 1);
}

#[test]
fn an_empty_answer_is_a_wrong_try_that_is_not_sent() {
    let mut api = challenge(PamMethod::Code, CODE_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Allow)]);
    let mut conv = ScriptedConv::typing(&[b"", b"123456"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::Success
    );
    assert_eq!(api.sent, ["123456"]);
    assert_eq!(conv.errors(), ["No code entered."]);

    let mut api = challenge(PamMethod::Code, CODE_PROMPT);
    let mut conv = ScriptedConv::typing(&[b"", b"  ", b"\n"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::MaxTries
    );
    assert!(api.sent.is_empty());
}

#[test]
fn answers_that_are_not_utf8_or_too_long_are_wrong_tries_not_sent() {
    let mut api = challenge(PamMethod::Code, CODE_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Allow)]);
    let long = vec![b'1'; MAX_FIELD_BYTES + 1];
    let mut conv = ScriptedConv::typing(&[b"12\xff34", &long, b"123456"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::Success
    );
    assert_eq!(api.sent, ["123456"]);
    assert_eq!(conv.errors().len(), 2);
}

#[test]
fn deny_mid_way_ends_the_login() {
    let mut api = challenge(PamMethod::Code, CODE_PROMPT);
    api.auth = VecDeque::from([
        retry(),
        Ok(AuthResponse::Deny {
            message: "Too many wrong codes; try again in 15 minutes.".into(),
        }),
    ]);
    let mut conv = ScriptedConv::typing(&[b"1", b"2", b"3"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Safe)),
        Code::AuthErr
    );
    assert_eq!(api.sent.len(), 2);
    assert_eq!(
        conv.errors(),
        [
            "That code is not right.",
            "Too many wrong codes; try again in 15 minutes."
        ]
    );
}

#[test]
fn preauth_answers() {
    // allow: no prompt at all.
    let mut api = FakeApi {
        preauth: VecDeque::from([Ok(PreauthResponse::Allow)]),
        ..FakeApi::default()
    };
    let mut conv = ScriptedConv::default();
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::Success
    );
    assert!(conv.shown.is_empty());

    // unknown: PAM_IGNORE when asked for it, untrusted otherwise (Padlock must not say it).
    for (unknown_user, code) in [
        (UnknownUser::Ignore, Code::Ignore),
        (UnknownUser::Deny, Code::AuthInfoUnavail),
    ] {
        for mode in [FailMode::Secure, FailMode::Safe] {
            let mut api = FakeApi {
                preauth: VecDeque::from([Ok(PreauthResponse::Unknown)]),
                ..FakeApi::default()
            };
            let ending = login(
                &request(unknown_user),
                &settings(mode),
                &mut ScriptedConv::default(),
                &mut api,
            );
            assert_eq!(ending.code, code, "{unknown_user:?} {mode:?}");
        }
    }

    // deny: the message, then PAM_AUTH_ERR.
    let mut api = FakeApi {
        preauth: VecDeque::from([Ok(PreauthResponse::Deny {
            message: "API accounts cannot log in here.\x1b[2J".into(),
        })]),
        ..FakeApi::default()
    };
    let mut conv = ScriptedConv::default();
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Safe)),
        Code::AuthErr
    );
    // Control characters from the server never reach the terminal.
    assert_eq!(conv.errors(), ["API accounts cannot log in here.[2J"]);
}

#[test]
fn a_conversation_that_cannot_ask_is_conv_err() {
    let mut api = challenge(PamMethod::Totp, "Code: ");
    let mut conv = ScriptedConv::typing(&[]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Safe)),
        Code::ConvErr
    );
    assert!(api.sent.is_empty());
}

fn unreachable() -> CallError {
    CallError {
        failure: CallFailure::Unreachable,
        detail: "connection refused".into(),
    }
}

fn untrusted() -> CallError {
    CallError {
        failure: CallFailure::Untrusted,
        detail: "HTTP 401".into(),
    }
}

#[test]
fn failures_follow_the_failmode_before_the_challenge_and_refuse_after_it() {
    for (error, secure, safe) in [
        (unreachable(), Code::AuthInfoUnavail, Code::Success),
        (untrusted(), Code::AuthInfoUnavail, Code::AuthInfoUnavail),
    ] {
        for (mode, want) in [(FailMode::Secure, secure), (FailMode::Safe, safe)] {
            // At preauth.
            let mut api = FakeApi {
                preauth: VecDeque::from([Err(error.clone())]),
                ..FakeApi::default()
            };
            let mut conv = ScriptedConv::default();
            let ending = login(
                &request(UnknownUser::Deny),
                &settings(mode),
                &mut conv,
                &mut api,
            );
            assert_eq!(ending.code, want, "preauth {error:?} {mode:?}");
            assert!(conv.shown.is_empty());
            if want == Code::Success {
                assert_eq!(ending.level, Level::Warning);
            }
            // After a wrong answer: Padlock was reachable, so every failure refuses.
            let mut api = challenge(PamMethod::Code, CODE_PROMPT);
            api.auth = VecDeque::from([retry(), Err(error.clone())]);
            let mut conv = ScriptedConv::typing(&[b"1", b"2"]);
            assert_eq!(
                run(&mut api, &mut conv, &settings(mode)),
                Code::AuthInfoUnavail,
                "auth {error:?} {mode:?}"
            );
            // While polling a Duo push.
            let mut api = challenge(PamMethod::Duo, DUO_PROMPT);
            api.auth = VecDeque::from([Ok(AuthResponse::Pending)]);
            api.status = VecDeque::from([Ok(AuthResponse::Pending), Err(error.clone())]);
            let mut conv = ScriptedConv::typing(&[b""]);
            assert_eq!(
                run(&mut api, &mut conv, &settings(mode)),
                Code::AuthInfoUnavail,
                "auth_status {error:?} {mode:?}"
            );
        }
    }
}

#[test]
fn pending_for_a_code_is_not_trusted() {
    let mut api = challenge(PamMethod::Totp, "Code: ");
    api.auth = VecDeque::from([Ok(AuthResponse::Pending)]);
    let mut conv = ScriptedConv::typing(&[b"123456"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Safe)),
        Code::AuthInfoUnavail
    );
}

#[test]
fn duo_enter_sends_a_push_and_polls_until_approved() {
    let mut api = challenge(PamMethod::Duo, DUO_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Pending)]);
    api.status = VecDeque::from([
        Ok(AuthResponse::Pending),
        Ok(AuthResponse::Pending),
        Ok(AuthResponse::Allow),
    ]);
    let mut conv = ScriptedConv::typing(&[b"\n"]);
    let ending = login(
        &request(UnknownUser::Deny),
        &settings(FailMode::Secure),
        &mut conv,
        &mut api,
    );
    assert_eq!(ending.code, Code::Success);
    assert_eq!(api.sent, [""]);
    assert_eq!(api.polls, 3);
    assert_eq!(conv.infos(), ["Duo push approved."]);
    assert!(ending.log.contains("duo push"));
}

#[test]
fn an_unanswered_push_times_out_as_a_wrong_try() {
    let mut api = challenge(PamMethod::Duo, DUO_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Pending), Ok(AuthResponse::Allow)]);
    api.status_forever_pending = true;
    let mut conv = ScriptedConv::typing(&[b"", b"123456"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::Success
    );
    assert_eq!(conv.errors(), ["Duo push timed out."]);
    // The passcode after the timed-out push is sent as typed.
    assert_eq!(api.sent, ["", "123456"]);
    assert!(api.polls >= 1);

    let mut api = challenge(PamMethod::Duo, DUO_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Pending)]);
    api.status_forever_pending = true;
    let mut conv = ScriptedConv::typing(&[b""]);
    let s = Settings {
        prompts: 1,
        ..settings(FailMode::Safe)
    };
    assert_eq!(run(&mut api, &mut conv, &s), Code::MaxTries);
}

#[test]
fn a_denied_push_is_a_wrong_try() {
    let mut api = challenge(PamMethod::Duo, DUO_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Pending), Ok(AuthResponse::Pending)]);
    let said = |m: &str| Ok(AuthResponse::Retry { message: m.into() });
    api.status = VecDeque::from([said("Duo push denied."), said("Duo push timed out.")]);
    let s = Settings {
        prompts: 2,
        ..settings(FailMode::Secure)
    };
    let mut conv = ScriptedConv::typing(&[b"", b""]);
    assert_eq!(run(&mut api, &mut conv, &s), Code::MaxTries);
    // Padlock's reason is shown as it said it.
    assert_eq!(conv.errors(), ["Duo push denied.", "Duo push timed out."]);
}

#[test]
fn duo_autopush_pushes_before_any_prompt() {
    let mut api = challenge(PamMethod::Duo, DUO_PROMPT);
    api.auth = VecDeque::from([Ok(AuthResponse::Pending), Ok(AuthResponse::Allow)]);
    api.status = VecDeque::from([retry()]);
    let s = Settings {
        duo_autopush: true,
        ..settings(FailMode::Secure)
    };
    // The push is denied; the next try prompts, and a passcode passes.
    let mut conv = ScriptedConv::typing(&[b"987654"]);
    assert_eq!(run(&mut api, &mut conv, &s), Code::Success);
    assert_eq!(api.sent, ["", "987654"]);
    assert_eq!(
        conv.shown[0],
        Shown::Info("Sending a Duo push to your phone; approve it to log in.".into())
    );
    assert_eq!(conv.prompts(), 1);

    // autopush means nothing for other methods.
    let mut api = challenge(PamMethod::Totp, "Code: ");
    api.auth = VecDeque::from([Ok(AuthResponse::Allow)]);
    let mut conv = ScriptedConv::typing(&[b"123456"]);
    assert_eq!(run(&mut api, &mut conv, &s), Code::Success);
    assert!(conv.infos().is_empty());
}

#[test]
fn duo_without_a_prompt_uses_the_design_prompt() {
    let mut api = challenge(PamMethod::Duo, "");
    api.auth = VecDeque::from([Ok(AuthResponse::Allow)]);
    let mut conv = ScriptedConv::typing(&[b"123456"]);
    assert_eq!(
        run(&mut api, &mut conv, &settings(FailMode::Secure)),
        Code::Success
    );
    assert_eq!(conv.shown[0], Shown::Prompt(DUO_PROMPT.into()));
}

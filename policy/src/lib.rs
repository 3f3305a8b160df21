//! Padlock's decision core: every rule that says whether a second factor is required, which one,
//! whether a presented code is acceptable and whether a user is locked out.
//!
//! This crate is **pure**: no I/O, no clock, no randomness. Time comes in as `now` (seconds since the
//! Unix epoch), random values and digests are computed by the caller and passed in. Both the identity
//! provider (`padlock-idp`) and the PAM module (`pam_padlock`) call it, so a web login and an ssh login
//! are decided by the same code.
//!
//! # Seams
//! - [`tenant::TwoFactorPolicy`]: a company's switch and the methods it offers.
//! - [`decision::decide`]: given the tenant policy, the user and the lockout state, returns a
//!   [`decision::Decision`]: allow, challenge with a factor, or deny.
//! - [`code::CodeChallenge`]: the SMS/Email one-time-code state machine.
//! - [`lockout::LockoutState`]: consecutive-failure counter and lock.
//! - [`totp::verify`]: RFC 6238 check with skew and replay protection.
//! - [`decision::credential_allowed`]: whether a session, refresh token or access token minted
//!   earlier still meets the company's current policy.
//! - [`lockout::LockoutState::admit`], [`throttle::ThrottleState::admit`],
//!   [`rate::RateWindow::admit`]: count-then-check admission of second-factor tries, password
//!   tries, and messages or failures per window.
//! - [`permission::effective`]: admin rights = token scopes ∩ the user's roles.
//! - [`pam`]: the PAM API's wire shapes, and which PAM result a failed call becomes under the
//!   module's `failmode`.
//! - [`step_up::freshness`]: whether a session passed a second factor recently enough to change
//!   second-factor settings.
//!
//! # Security invariants owned here (DESIGN.md §9)
//! - There is no per-user switch: [`decision::decide`] has no input that exempts a user from a
//!   tenant's enabled second factor. API accounts are denied interactive login outright.
//! - One-time codes expire after [`code::CODE_TTL_SECS`], accept a code once, and give up after
//!   [`code::MAX_WRONG_TRIES`] wrong tries; a resend never touches the user's lockout counter.
//! - [`lockout::LockoutPolicy`] refuses a threshold above [`lockout::NIST_MAX_FAILURES`].
//! - A TOTP step is accepted only if it is later than the last accepted step of that user.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod code;
pub mod decision;
pub mod duo;
pub mod lockout;
pub mod mobile;
pub mod pam;
pub mod permission;
pub mod rate;
pub mod step_up;
pub mod tenant;
pub mod throttle;
pub mod totp;

pub use decision::{Decision, DenyReason, Factor, decide};
pub use tenant::{Method, Methods, TwoFactorPolicy};

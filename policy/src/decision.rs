//! The one decision every interactive login goes through, web or PAM: allow, challenge, or deny.

use crate::lockout::{LockoutPolicy, LockoutState};
use crate::mobile::E164;
use crate::tenant::{Method, TwoFactorPolicy};
use serde::{Deserialize, Serialize};

/// Where an SMS/Email code is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "channel", content = "to")]
pub enum Channel {
    /// By SMS to the user's E.164 mobile number.
    Sms(E164),
    /// By email to the user's address.
    Email(String),
}

/// The second factor to challenge the user with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Factor {
    /// A 6-digit code over `channel`.
    Code {
        /// Where the code goes.
        channel: Channel,
    },
    /// An authenticator-app code.
    Totp,
    /// Duo push or passcode.
    Duo,
}

impl Factor {
    /// The [`Amr`] value a login that passed this factor carries.
    #[must_use]
    pub fn amr(&self) -> Amr {
        match self {
            Factor::Code {
                channel: Channel::Sms(_),
            } => Amr::Sms,
            Factor::Code {
                channel: Channel::Email(_),
            } => Amr::Email,
            Factor::Totp => Amr::Otp,
            Factor::Duo => Amr::Mfa,
        }
    }
}

/// Authentication method references (RFC 8176 values; `email` is Padlock's for email codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    /// Password.
    Pwd,
    /// Code by SMS.
    Sms,
    /// Code by email.
    Email,
    /// One-time password from an authenticator app.
    Otp,
    /// Duo (push or passcode): multiple-factor by an external service.
    Mfa,
}

impl Amr {
    /// The claim value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Sms => "sms",
            Amr::Email => "email",
            Amr::Otp => "otp",
            Amr::Mfa => "mfa",
        }
    }
}

/// Authentication context class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acr {
    /// Password only.
    #[serde(rename = "padlock:1fa")]
    OneFactor,
    /// Password and a second factor.
    #[serde(rename = "padlock:2fa")]
    TwoFactor,
}

impl Acr {
    /// The claim value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::OneFactor => "padlock:1fa",
            Acr::TwoFactor => "padlock:2fa",
        }
    }

    /// Parses a claim value written by [`Acr::as_str`].
    #[must_use]
    pub fn parse(value: &str) -> Option<Acr> {
        [Acr::OneFactor, Acr::TwoFactor]
            .into_iter()
            .find(|a| a.as_str() == value)
    }
}

/// Why an interactive login is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum DenyReason {
    /// API accounts authenticate only by client credentials.
    ApiAccount,
    /// The account is disabled.
    Disabled,
    /// Too many failed second-factor attempts; locked until the given time.
    LockedOut {
        /// Seconds since the epoch when the lock ends.
        until: u64,
    },
    /// 2FA is required but the user has no usable method (e.g. TOTP only, not enrolled).
    NoUsableMethod,
}

/// The outcome of [`decide`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The password is enough: the tenant has 2FA off and the relying party did not ask for it.
    Allow {
        /// Methods used.
        amr: Vec<Amr>,
        /// Context class reached.
        acr: Acr,
    },
    /// A second factor is required.
    Challenge(Factor),
    /// No login for this user now.
    Deny(DenyReason),
}

/// What [`decide`] needs to know about the user. Deliberately no "exempt" flag: the only way out of
/// the second factor is the tenant switch, and API accounts never log in interactively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The user's email (the email channel's address).
    pub email: &'a str,
    /// The user's mobile number, if it is a valid E.164 number.
    pub mobile: Option<&'a E164>,
    /// The method the user chose, if any.
    pub preferred: Option<Method>,
    /// Whether the user has a confirmed TOTP secret.
    pub totp_enrolled: bool,
    /// Whether the user completed Duo enrolment.
    pub duo_enrolled: bool,
    /// API account flag.
    pub api_account: bool,
    /// Disabled flag.
    pub disabled: bool,
}

/// Decides the second-factor step of an interactive login (web or PAM), after the first factor.
///
/// `second_factor_requested` is true when the relying party asked for `acr_values=padlock:2fa`:
/// it forces the step even when the tenant has 2FA off.
pub fn decide(
    policy: &TwoFactorPolicy,
    subject: &Subject<'_>,
    lockout: &LockoutState,
    lockout_policy: &LockoutPolicy,
    second_factor_requested: bool,
    now: u64,
) -> Decision {
    if subject.api_account {
        return Decision::Deny(DenyReason::ApiAccount);
    }
    if subject.disabled {
        return Decision::Deny(DenyReason::Disabled);
    }
    if !policy.enabled && !second_factor_requested {
        return Decision::Allow {
            amr: vec![Amr::Pwd],
            acr: Acr::OneFactor,
        };
    }
    if let Some(until) = lockout.locked_until(now, lockout_policy) {
        return Decision::Deny(DenyReason::LockedOut { until });
    }
    match resolve_factor(policy, subject) {
        Some(factor) => Decision::Challenge(factor),
        None => Decision::Deny(DenyReason::NoUsableMethod),
    }
}

/// The factor a user is challenged with: the preferred method if the tenant offers it and the user is
/// enrolled in it; else SMS/Email (the fallback); else any offered method the user is enrolled in.
/// A tenant with 2FA off still offers SMS/Email when a relying party demands a second factor.
#[must_use]
pub fn resolve_factor(policy: &TwoFactorPolicy, subject: &Subject<'_>) -> Option<Factor> {
    let offered =
        |m: Method| policy.methods.offers(m) || (!policy.enabled && m == Method::SmsEmail);
    let usable = |m: Method| {
        offered(m)
            && match m {
                Method::SmsEmail => true,
                Method::Totp => subject.totp_enrolled,
                Method::Duo => subject.duo_enrolled && policy.duo_configured,
            }
    };
    let method = subject
        .preferred
        .filter(|m| usable(*m))
        .or_else(|| usable(Method::SmsEmail).then_some(Method::SmsEmail))
        .or_else(|| Method::ALL.into_iter().find(|m| usable(*m)))?;
    Some(match method {
        Method::SmsEmail => Factor::Code {
            channel: code_channel(subject),
        },
        Method::Totp => Factor::Totp,
        Method::Duo => Factor::Duo,
    })
}

/// Why a method cannot be a user's preferred method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceRefusal {
    /// Not a method name, or one the company does not offer (SMS/Email is always allowed: it is
    /// everyone's fallback).
    NotOffered,
    /// The user is not enrolled in this method yet (TOTP, Duo).
    NotEnrolled(Method),
}

/// The method named `name` (see [`Method::parse`]) if `subject` may prefer it under `policy`:
/// one the company offers (or SMS/Email), and for TOTP and Duo one the user is enrolled in. The
/// rule for every path that sets a preferred method: the padlock page and an administrator's API
/// call (DESIGN §2 rule 6).
///
/// # Errors
/// [`ChoiceRefusal`] says why not.
pub fn choosable(
    policy: &TwoFactorPolicy,
    subject: &Subject<'_>,
    name: &str,
) -> Result<Method, ChoiceRefusal> {
    let method = Method::parse(name)
        .filter(|m| policy.methods.offers(*m) || *m == Method::SmsEmail)
        .ok_or(ChoiceRefusal::NotOffered)?;
    let enrolled = match method {
        Method::SmsEmail => true,
        Method::Totp => subject.totp_enrolled,
        Method::Duo => subject.duo_enrolled,
    };
    if enrolled {
        Ok(method)
    } else {
        Err(ChoiceRefusal::NotEnrolled(method))
    }
}

/// SMS when the user has a valid mobile number, otherwise email.
#[must_use]
pub fn code_channel(subject: &Subject<'_>) -> Channel {
    match subject.mobile {
        Some(number) => Channel::Sms(number.clone()),
        None => Channel::Email(subject.email.to_owned()),
    }
}

/// Whether a credential minted at `acr` (a browser session, a refresh token, an access token)
/// may still be used under the company's current `policy`: once a company turns its second
/// factor on, nothing minted with a password alone opens anything. `second_factor_requested` is
/// true when the relying panel asked for `padlock:2fa`. Every path that grants or uses access
/// (SSO, the code and refresh grants, `/userinfo`, the admin API, the padlock page) asks this.
#[must_use]
pub fn credential_allowed(
    policy: &TwoFactorPolicy,
    acr: Acr,
    second_factor_requested: bool,
) -> bool {
    let needs_2fa = policy.enabled || second_factor_requested;
    !needs_2fa || acr == Acr::TwoFactor
}

/// The `amr`/`acr` of a login that passed the password and then `factor`.
#[must_use]
pub fn passed(factor: &Factor) -> (Vec<Amr>, Acr) {
    (vec![Amr::Pwd, factor.amr()], Acr::TwoFactor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Methods;
    use proptest::prelude::*;

    fn subject<'a>(mobile: Option<&'a E164>) -> Subject<'a> {
        Subject {
            email: "ann@example.com",
            mobile,
            preferred: None,
            totp_enrolled: false,
            duo_enrolled: false,
            api_account: false,
            disabled: false,
        }
    }

    fn on(methods: &[Method]) -> TwoFactorPolicy {
        TwoFactorPolicy {
            enabled: true,
            methods: Methods::from_list(methods),
            duo_configured: true,
            ..Default::default()
        }
    }

    fn run(policy: &TwoFactorPolicy, s: &Subject<'_>) -> Decision {
        decide(
            policy,
            s,
            &LockoutState::default(),
            &LockoutPolicy::default(),
            false,
            1_000,
        )
    }

    #[test]
    fn a_method_is_chosen_only_when_offered_and_enrolled() {
        let policy = TwoFactorPolicy {
            enabled: true,
            methods: Methods::from_list(&[Method::Totp]),
            ..TwoFactorPolicy::default()
        };
        let mut s = subject(None);
        assert_eq!(choosable(&policy, &s, "sms-email"), Ok(Method::SmsEmail));
        assert_eq!(
            choosable(&policy, &s, "duo"),
            Err(ChoiceRefusal::NotOffered)
        );
        assert_eq!(
            choosable(&policy, &s, "sms"),
            Err(ChoiceRefusal::NotOffered)
        );
        assert_eq!(
            choosable(&policy, &s, "totp"),
            Err(ChoiceRefusal::NotEnrolled(Method::Totp))
        );
        s.totp_enrolled = true;
        assert_eq!(choosable(&policy, &s, "totp"), Ok(Method::Totp));
    }

    #[test]
    fn tenant_off_allows_password_only() {
        let d = run(&TwoFactorPolicy::default(), &subject(None));
        assert_eq!(
            d,
            Decision::Allow {
                amr: vec![Amr::Pwd],
                acr: Acr::OneFactor
            }
        );
    }

    #[test]
    fn tenant_off_but_relying_party_asks_for_2fa_challenges_by_code() {
        let d = decide(
            &TwoFactorPolicy::default(),
            &subject(None),
            &LockoutState::default(),
            &LockoutPolicy::default(),
            true,
            0,
        );
        assert_eq!(
            d,
            Decision::Challenge(Factor::Code {
                channel: Channel::Email("ann@example.com".into())
            })
        );
    }

    #[test]
    fn code_goes_by_sms_with_valid_mobile_else_email() {
        let n = E164::parse("+15551234567").unwrap();
        let p = on(&[Method::SmsEmail]);
        assert_eq!(
            run(&p, &subject(Some(&n))),
            Decision::Challenge(Factor::Code {
                channel: Channel::Sms(n.clone())
            })
        );
        assert_eq!(
            run(&p, &subject(None)),
            Decision::Challenge(Factor::Code {
                channel: Channel::Email("ann@example.com".into())
            })
        );
    }

    #[test]
    fn preferred_method_used_only_if_offered_and_enrolled() {
        let p = on(&[Method::SmsEmail, Method::Totp]);
        let mut s = subject(None);
        s.preferred = Some(Method::Totp);
        // Not enrolled yet: fall back to the code.
        assert!(matches!(
            run(&p, &s),
            Decision::Challenge(Factor::Code { .. })
        ));
        s.totp_enrolled = true;
        assert_eq!(run(&p, &s), Decision::Challenge(Factor::Totp));
        // The company stops offering TOTP: back to SMS/Email.
        assert!(matches!(
            run(&on(&[Method::SmsEmail]), &s),
            Decision::Challenge(Factor::Code { .. })
        ));
        s.preferred = Some(Method::Duo);
        s.duo_enrolled = true;
        assert_eq!(
            run(&on(&[Method::SmsEmail, Method::Duo]), &s),
            Decision::Challenge(Factor::Duo)
        );
    }

    #[test]
    fn without_sms_email_an_enrolled_method_is_used_or_login_is_refused() {
        let p = on(&[Method::Totp]);
        let mut s = subject(None);
        assert_eq!(run(&p, &s), Decision::Deny(DenyReason::NoUsableMethod));
        s.totp_enrolled = true;
        assert_eq!(run(&p, &s), Decision::Challenge(Factor::Totp));
    }

    #[test]
    fn api_accounts_and_disabled_users_never_log_in_interactively() {
        let mut s = subject(None);
        s.api_account = true;
        assert_eq!(
            run(&TwoFactorPolicy::default(), &s),
            Decision::Deny(DenyReason::ApiAccount)
        );
        assert_eq!(
            run(&on(&[Method::SmsEmail]), &s),
            Decision::Deny(DenyReason::ApiAccount)
        );
        let mut s = subject(None);
        s.disabled = true;
        assert_eq!(
            run(&TwoFactorPolicy::default(), &s),
            Decision::Deny(DenyReason::Disabled)
        );
    }

    #[test]
    fn locked_out_user_is_denied_until_the_lock_ends() {
        let lp = LockoutPolicy::default();
        let mut state = LockoutState::default();
        for _ in 0..lp.max_failures() {
            state = state.record_failure(100, &lp);
        }
        let p = on(&[Method::SmsEmail]);
        let d = decide(&p, &subject(None), &state, &lp, false, 101);
        assert_eq!(
            d,
            Decision::Deny(DenyReason::LockedOut {
                until: 100 + lp.lock_secs()
            })
        );
        let d = decide(&p, &subject(None), &state, &lp, false, 100 + lp.lock_secs());
        assert!(matches!(d, Decision::Challenge(_)));
    }

    #[test]
    fn one_factor_credentials_die_when_the_company_turns_2fa_on() {
        let off = TwoFactorPolicy::default();
        let on = on(&[Method::SmsEmail]);
        assert!(credential_allowed(&off, Acr::OneFactor, false));
        assert!(!credential_allowed(&off, Acr::OneFactor, true));
        assert!(!credential_allowed(&on, Acr::OneFactor, false));
        assert!(credential_allowed(&on, Acr::TwoFactor, false));
        assert!(credential_allowed(&off, Acr::TwoFactor, true));
    }

    #[test]
    fn amr_and_acr_of_each_factor() {
        let n = E164::parse("+15551234567").unwrap();
        assert_eq!(
            passed(&Factor::Code {
                channel: Channel::Sms(n)
            }),
            (vec![Amr::Pwd, Amr::Sms], Acr::TwoFactor)
        );
        assert_eq!(passed(&Factor::Totp).0, vec![Amr::Pwd, Amr::Otp]);
        assert_eq!(passed(&Factor::Duo).0, vec![Amr::Pwd, Amr::Mfa]);
        assert_eq!(Acr::TwoFactor.as_str(), "padlock:2fa");
    }

    fn any_method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::SmsEmail),
            Just(Method::Totp),
            Just(Method::Duo)
        ]
    }

    proptest! {
        /// DESIGN.md §9.1: with 2FA on, no combination of user attributes yields Allow.
        #[test]
        fn enabled_tenant_never_allows(
            sms in any::<bool>(), totp in any::<bool>(), duo in any::<bool>(),
            preferred in proptest::option::of(any_method()),
            totp_enrolled in any::<bool>(), duo_enrolled in any::<bool>(),
            api in any::<bool>(), disabled in any::<bool>(), requested in any::<bool>(),
            mobile in any::<bool>(), failures in 0u32..30, now in 0u64..10_000,
        ) {
            let n = E164::parse("+15551234567").unwrap();
            let policy = TwoFactorPolicy { enabled: true, methods: Methods { sms_email: sms, totp, duo }, duo_configured: true, ..Default::default() };
            let s = Subject { email: "a@b.c", mobile: mobile.then_some(&n), preferred, totp_enrolled, duo_enrolled, api_account: api, disabled };
            let lp = LockoutPolicy::default();
            let mut state = LockoutState::default();
            for _ in 0..failures { state = state.record_failure(0, &lp); }
            let d = decide(&policy, &s, &state, &lp, requested, now);
            let allowed = matches!(d, Decision::Allow { .. });
            prop_assert!(!allowed);
            if api { prop_assert_eq!(d, Decision::Deny(DenyReason::ApiAccount)); }
        }
    }
}

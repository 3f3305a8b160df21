//! A company's second-factor policy: the tenant-wide switch and the methods it offers.

use serde::{Deserialize, Serialize};

/// Default TOTP skew, in 30-second steps either side of now.
pub const DEFAULT_TOTP_SKEW_STEPS: u8 = 1;
/// Largest TOTP skew a company may configure.
pub const MAX_TOTP_SKEW_STEPS: u8 = 4;

/// A second-factor method a company can offer and a user can prefer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A 6-digit code sent by SMS (valid mobile number) or else by email.
    SmsEmail,
    /// RFC 6238 time-based codes from an authenticator app.
    Totp,
    /// Duo push or passcode through Duo's Auth API.
    Duo,
}

impl Method {
    /// Every method, in the order they are offered to users.
    pub const ALL: [Method; 3] = [Method::SmsEmail, Method::Totp, Method::Duo];

    /// The method's stable name as used on the command line and in the API (`sms-email`, `totp`, `duo`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SmsEmail => "sms-email",
            Method::Totp => "totp",
            Method::Duo => "duo",
        }
    }

    /// Parses a name produced by [`Method::as_str`] (also accepting `sms_email`).
    #[must_use]
    pub fn parse(name: &str) -> Option<Method> {
        match name.trim() {
            "sms-email" | "sms_email" => Some(Method::SmsEmail),
            "totp" => Some(Method::Totp),
            "duo" => Some(Method::Duo),
            _ => None,
        }
    }
}

/// Which methods a company offers. SMS/Email is on by default: it is everyone's fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Methods {
    /// SMS or email one-time codes.
    pub sms_email: bool,
    /// Authenticator-app codes.
    pub totp: bool,
    /// Duo.
    pub duo: bool,
}

impl Default for Methods {
    fn default() -> Self {
        Methods {
            sms_email: true,
            totp: false,
            duo: false,
        }
    }
}

impl Methods {
    /// Whether `method` is offered.
    #[must_use]
    pub fn offers(&self, method: Method) -> bool {
        match method {
            Method::SmsEmail => self.sms_email,
            Method::Totp => self.totp,
            Method::Duo => self.duo,
        }
    }

    /// Builds the set from a list of methods.
    #[must_use]
    pub fn from_list(list: &[Method]) -> Methods {
        Methods {
            sms_email: list.contains(&Method::SmsEmail),
            totp: list.contains(&Method::Totp),
            duo: list.contains(&Method::Duo),
        }
    }

    /// The offered methods, in [`Method::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = Method> + '_ {
        Method::ALL.into_iter().filter(|m| self.offers(*m))
    }
}

/// A company's second-factor policy. When `enabled`, it applies to every user of the company at
/// every interactive login; there is deliberately no per-user exemption anywhere in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorPolicy {
    /// The tenant-wide switch.
    pub enabled: bool,
    /// The methods offered to users.
    pub methods: Methods,
    /// How many 30-second steps either side of now a TOTP code may come from (default 1, max 4).
    pub totp_skew_steps: u8,
    /// Whether the tenant has Duo keys configured; Duo cannot be offered without them.
    pub duo_configured: bool,
}

impl Default for TwoFactorPolicy {
    fn default() -> Self {
        TwoFactorPolicy {
            enabled: false,
            methods: Methods::default(),
            totp_skew_steps: DEFAULT_TOTP_SKEW_STEPS,
            duo_configured: false,
        }
    }
}

/// Why a proposed [`TwoFactorPolicy`] cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// 2FA enabled with no method to use.
    #[error("two-factor authentication is enabled but no method is offered")]
    NoMethod,
    /// TOTP skew above [`MAX_TOTP_SKEW_STEPS`].
    #[error("TOTP skew of {0} steps is above the maximum of {MAX_TOTP_SKEW_STEPS}")]
    SkewTooLarge(u8),
    /// Duo offered without the company's Duo keys.
    #[error("Duo is offered but the company has no Duo integration key, secret key and API host")]
    DuoNotConfigured,
}

impl TwoFactorPolicy {
    /// Checks a policy before it is stored.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.totp_skew_steps > MAX_TOTP_SKEW_STEPS {
            return Err(PolicyError::SkewTooLarge(self.totp_skew_steps));
        }
        if self.methods.duo && !self.duo_configured {
            return Err(PolicyError::DuoNotConfigured);
        }
        if self.enabled && self.methods.iter().next().is_none() {
            return Err(PolicyError::NoMethod);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_offers_sms_email_only_and_is_off() {
        let p = TwoFactorPolicy::default();
        assert!(!p.enabled);
        assert_eq!(p.methods.iter().collect::<Vec<_>>(), vec![Method::SmsEmail]);
        assert_eq!(p.totp_skew_steps, 1);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn validation_rejects_each_bad_policy() {
        let none = TwoFactorPolicy {
            enabled: true,
            methods: Methods::from_list(&[]),
            ..Default::default()
        };
        assert_eq!(none.validate(), Err(PolicyError::NoMethod));
        let skew = TwoFactorPolicy {
            totp_skew_steps: 5,
            ..Default::default()
        };
        assert_eq!(skew.validate(), Err(PolicyError::SkewTooLarge(5)));
        let duo = TwoFactorPolicy {
            methods: Methods::from_list(&[Method::Duo]),
            ..Default::default()
        };
        assert_eq!(duo.validate(), Err(PolicyError::DuoNotConfigured));
        let duo_ok = TwoFactorPolicy {
            duo_configured: true,
            ..duo
        };
        assert_eq!(duo_ok.validate(), Ok(()));
    }

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        assert_eq!(Method::parse("sms"), None);
    }
}

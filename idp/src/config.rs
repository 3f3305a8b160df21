//! `padlock.toml`: every key, its default, its `PADLOCK_*` override and its validation.
//!
//! [`EXAMPLE`] is the documented reference (printed by `padlock config example` and included in
//! `docs/configuration.md`); tests keep it in sync with [`Config`].

use crate::template::{Template, Var};
use padlock_policy::lockout::LockoutPolicy;
use padlock_policy::mobile::E164;
use padlock_policy::rate::RateLimit;
use padlock_policy::throttle::ThrottlePolicy;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The documented configuration, every key at its default.
pub const EXAMPLE: &str = include_str!("config_example.toml");

/// Padlock's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the one HTTP listener.
    pub listen: SocketAddr,
    /// Where the database, keys and operator credential live.
    pub data_dir: PathBuf,
    /// Issuer URL; default `http://<listen>`.
    pub issuer: Option<String>,
    /// Peers (addresses or CIDR networks) whose `Forwarded` / `X-Forwarded-For` header names the
    /// client's address; everyone else is identified by the socket's peer address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header trusted proxies write the client's address into.
    pub proxy_header: crate::limits::ProxyHeader,
    /// Master key file; default `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Storage backend.
    pub storage: Storage,
    /// sled page cache, MiB.
    pub cache_mb: u64,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
    /// How log lines on standard error are written.
    pub log_format: LogFormat,
    /// Second-factor lockout.
    pub lockout: LockoutConfig,
    /// Token signing and lifetimes.
    pub tokens: TokensConfig,
    /// SMTP delivery of email codes; absent: the development outbox.
    pub email: Option<EmailConfig>,
    /// SMS delivery; absent: the development outbox.
    pub sms: Option<SmsConfig>,
    /// Text of the one-time code messages.
    pub messages: MessagesConfig,
    /// Calls to Duo.
    pub duo: DuoSettings,
    /// Test-only overrides.
    pub testing: Option<TestingConfig>,
}

/// Storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Embedded sled in `<data_dir>/db`.
    Sled,
}

/// The format of log lines (on standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, coloured only when standard error is a terminal.
    #[default]
    Text,
    /// For log collectors: one JSON object per line, never coloured.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    /// `text` or `json` (the values of `log_format` and `PADLOCK_LOG_FORMAT`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` is not a log format: use text or json")),
        }
    }
}

/// Lockout of the second factor, throttling of passwords, and limits on messages and on failures
/// per source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failed second-factor tries that lock (1 to 100).
    pub max_failures: u32,
    /// Lock duration in minutes.
    pub lock_minutes: u64,
    /// Codes sent to one user (SMS or email, by any path) per `message_window_minutes`.
    pub max_messages_per_user: u32,
    /// The window of `max_messages_per_user`, minutes.
    pub message_window_minutes: u64,
    /// How long a one-time code (SMS/email) is valid, seconds: 5 to 120.
    pub code_ttl_secs: u64,
    /// Wrong passwords for one login name before tries are delayed.
    pub password_free_failures: u32,
    /// Longest delay between two password tries after failures, seconds.
    pub password_max_delay_secs: u64,
    /// Consecutive wrong passwords that lock password sign-in (at most 100).
    pub password_max_failures: u32,
    /// How long that lock lasts, minutes.
    pub password_lock_minutes: u64,
    /// Failures (wrong passwords, client secrets, codes) allowed from one source address per
    /// `source_window_minutes`.
    pub source_max_failures: u32,
    /// Sign-in flows one source address may start per `source_window_minutes`.
    pub source_max_flows: u32,
    /// The window of the per-source limits, minutes.
    pub source_window_minutes: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let p = LockoutPolicy::default();
        let t = ThrottlePolicy::default();
        LockoutConfig {
            max_failures: p.max_failures(),
            lock_minutes: p.lock_secs() / 60,
            max_messages_per_user: 10,
            message_window_minutes: 15,
            code_ttl_secs: padlock_policy::code::CODE_TTL_SECS,
            password_free_failures: 5,
            password_max_delay_secs: 300,
            password_max_failures: t.max_failures(),
            password_lock_minutes: t.lock_secs() / 60,
            source_max_failures: 100,
            source_max_flows: 600,
            source_window_minutes: 10,
        }
    }
}

/// Token signing and lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// Algorithm of access tokens.
    pub access_token_alg: crate::domain::SigningAlg,
    /// Access token lifetime, seconds.
    pub access_token_ttl_secs: u64,
    /// ID token lifetime, seconds.
    pub id_token_ttl_secs: u64,
    /// Refresh token idle lifetime, days: a refresh token unused this long expires; each rotation
    /// starts it again, up to `refresh_token_max_days`.
    pub refresh_token_ttl_days: u64,
    /// Absolute refresh lifetime, days, counted from the sign-in (`auth_time`); rotation never
    /// extends it.
    pub refresh_token_max_days: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            access_token_alg: crate::domain::SigningAlg::ES256,
            access_token_ttl_secs: 600,
            id_token_ttl_secs: 600,
            refresh_token_ttl_days: 30,
            refresh_token_max_days: 30,
        }
    }
}

/// TLS mode of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on localhost).
    None,
    /// STARTTLS upgrade.
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// SMTP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server.
    pub smtp_host: String,
    /// SMTP port; default by TLS mode (see [`EmailConfig::port`]).
    pub smtp_port: Option<u16>,
    /// TLS mode.
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    /// Sender, e.g. `Padlock <no-reply@example.com>`.
    pub from: String,
    /// SMTP user name.
    pub username: Option<String>,
    /// File holding the SMTP password (or env `PADLOCK_SMTP_PASSWORD`).
    pub password_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted for the server's certificate, besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl EmailConfig {
    /// The port: as configured, else 25 without TLS, 587 (submission) for STARTTLS and 465
    /// (submissions) for implicit TLS.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

fn default_tls() -> SmtpTls {
    SmtpTls::None
}

/// SMS providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// Twilio's Messages API (or anything with its shape).
    Twilio,
    /// A JSON POST `{"to","body"}` to `webhook_url`.
    Webhook,
}

/// SMS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// Provider.
    pub provider: SmsProvider,
    /// Twilio API base URL.
    #[serde(default = "default_twilio_url")]
    pub base_url: String,
    /// Twilio account SID.
    pub account_sid: Option<String>,
    /// File holding the Twilio auth token (or env `PADLOCK_SMS_AUTH_TOKEN`).
    pub auth_token_file: Option<PathBuf>,
    /// Sender number (E.164).
    pub from: Option<String>,
    /// Webhook URL.
    pub webhook_url: Option<String>,
}

fn default_twilio_url() -> String {
    "https://api.twilio.com".into()
}

/// Text of the one-time code messages (see [`crate::template`] for the placeholders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// Email subject.
    pub email_subject: Template,
    /// Email body.
    pub email_body: Template,
    /// SMS text.
    pub sms_body: Template,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        let t = |s: &str| Template::parse(s).unwrap_or_else(|e| panic!("built-in template: {e}"));
        MessagesConfig {
            email_subject: t("{company}: your sign-in code"),
            email_body: t(
                "{code} is your {company} sign-in code. It expires in {minutes} minutes.\n\nIf you did not try to sign in, tell your administrator.",
            ),
            sms_body: t("{code} is your {company} sign-in code. It expires in {minutes} minutes."),
        }
    }
}

/// How Padlock waits on Duo's Auth API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuoSettings {
    /// Longest wait for one call to Duo, retries after HTTP 429 included, seconds: 2 to 30.
    pub timeout_secs: u64,
    /// Longest wait for the user to answer one push, seconds: 5 to 60.
    pub push_timeout_secs: u64,
}

impl Default for DuoSettings {
    fn default() -> Self {
        DuoSettings {
            timeout_secs: crate::duo::REQUEST_TIMEOUT.as_secs(),
            push_timeout_secs: padlock_policy::duo::PUSH_TIMEOUT_SECS,
        }
    }
}

impl DuoSettings {
    /// Padlock's access to Duo with these settings and `testing.duo_base_url`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn build(&self, testing: Option<&TestingConfig>) -> Result<crate::duo::Duo, String> {
        crate::duo::Duo::new(
            testing.and_then(|t| t.duo_base_url.clone()),
            std::time::Duration::from_secs(self.timeout_secs),
            self.push_timeout_secs,
        )
    }
}

/// Test-only settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// Replaces `https://<api_host>` of every tenant's Duo integration.
    pub duo_base_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./padlock-data"),
            issuer: None,
            trusted_proxies: Vec::new(),
            proxy_header: crate::limits::ProxyHeader::default(),
            master_key_file: None,
            storage: Storage::Sled,
            cache_mb: 64,
            log: "info".into(),
            log_format: LogFormat::Text,
            lockout: LockoutConfig::default(),
            tokens: TokensConfig::default(),
            email: None,
            sms: None,
            messages: MessagesConfig::default(),
            duo: DuoSettings::default(),
            testing: None,
        }
    }
}

/// One configuration problem, with the dotted key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Dotted key path (`email.smtp_port`), or the file for whole-file errors.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

impl Config {
    /// Parses TOML text; errors name the key path and the line.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de =
            toml::Deserializer::parse(text).map_err(|e| err("(file)", one_line(&e.to_string())))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let line = e
                .inner()
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let message = one_line(e.inner().message());
            let message = match line {
                Some(l) => format!("{message} (line {l})"),
                None => message,
            };
            let path = e.path().to_string();
            err(if path == "." { "(file)" } else { &path }, message)
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(&path.display().to_string(), format!("cannot read: {e}")))?;
        Config::parse(&text)
    }

    /// The issuer URL (configured, or `http://<listen>`).
    #[must_use]
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The master key file.
    #[must_use]
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The lockout, throttling and rate limits of `[lockout]`.
    pub fn limits(&self) -> Result<crate::limits::Limits, ConfigError> {
        let l = &self.lockout;
        let minutes = |m: u64| m.saturating_mul(60);
        let mut limits = crate::limits::Limits::new(
            LockoutPolicy::new(l.max_failures, minutes(l.lock_minutes))
                .map_err(|e| err("lockout.max_failures", e.to_string()))?,
            RateLimit::new(l.max_messages_per_user, minutes(l.message_window_minutes))
                .map_err(|e| err("lockout.max_messages_per_user", e.to_string()))?,
            ThrottlePolicy::new(
                l.password_free_failures,
                l.password_max_delay_secs,
                l.password_max_failures,
                minutes(l.password_lock_minutes),
            )
            .map_err(|e| err("lockout.password_max_failures", e.to_string()))?,
            RateLimit::new(l.source_max_failures, minutes(l.source_window_minutes))
                .map_err(|e| err("lockout.source_max_failures", e.to_string()))?,
            RateLimit::new(l.source_max_flows, minutes(l.source_window_minutes))
                .map_err(|e| err("lockout.source_max_flows", e.to_string()))?,
            crate::limits::Proxies {
                trusted: self.trusted_proxies.clone(),
                header: self.proxy_header,
            },
        );
        limits.code_ttl_secs = l.code_ttl_secs;
        Ok(limits)
    }

    /// Every problem a parsed configuration has (empty when it is usable). Besides the values, it
    /// looks at the files named: secret files (the master key when it exists,
    /// `email.password_file`, `sms.auth_token_file`) must be readable and neither group- nor
    /// world-writable nor world-readable; `email.ca_file` must be readable.
    #[must_use]
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(issuer) = &self.issuer
            && let Err(m) = check_url(issuer)
        {
            errors.push(err("issuer", m));
        }
        if self.cache_mb == 0 {
            errors.push(err("cache_mb", "must be at least 1"));
        }
        if let Err(e) = LockoutPolicy::new(self.lockout.max_failures, 60) {
            errors.push(err("lockout.max_failures", e.to_string()));
        }
        let l = &self.lockout;
        for (key, minutes) in [
            ("lockout.message_window_minutes", l.message_window_minutes),
            ("lockout.password_lock_minutes", l.password_lock_minutes),
            ("lockout.source_window_minutes", l.source_window_minutes),
        ] {
            if minutes == 0 {
                errors.push(err(key, "must be at least 1"));
            }
        }
        for (key, n) in [
            ("lockout.max_messages_per_user", l.max_messages_per_user),
            ("lockout.source_max_failures", l.source_max_failures),
            ("lockout.source_max_flows", l.source_max_flows),
        ] {
            if let Err(e) = RateLimit::new(n, 60) {
                errors.push(err(key, e.to_string()));
            }
        }
        if let Err(e) = ThrottlePolicy::new(
            l.password_free_failures,
            l.password_max_delay_secs.max(1),
            l.password_max_failures,
            60,
        ) {
            errors.push(err("lockout.password_max_failures", e.to_string()));
        }
        if l.password_max_delay_secs == 0 {
            errors.push(err("lockout.password_max_delay_secs", "must be at least 1"));
        }
        if !(30..=86_400).contains(&self.tokens.access_token_ttl_secs) {
            errors.push(err("tokens.access_token_ttl_secs", "must be 30 to 86400"));
        }
        if !(30..=86_400).contains(&self.tokens.id_token_ttl_secs) {
            errors.push(err("tokens.id_token_ttl_secs", "must be 30 to 86400"));
        }
        if !(1..=365).contains(&self.tokens.refresh_token_ttl_days) {
            errors.push(err("tokens.refresh_token_ttl_days", "must be 1 to 365"));
        }
        if !(1..=365).contains(&self.tokens.refresh_token_max_days) {
            errors.push(err("tokens.refresh_token_max_days", "must be 1 to 365"));
        } else if self.tokens.refresh_token_ttl_days > self.tokens.refresh_token_max_days {
            errors.push(err(
                "tokens.refresh_token_ttl_days",
                format!(
                    "the idle lifetime ({} days) must not exceed tokens.refresh_token_max_days ({} days)",
                    self.tokens.refresh_token_ttl_days, self.tokens.refresh_token_max_days
                ),
            ));
        }
        if !(padlock_policy::code::MIN_CODE_TTL_SECS..=padlock_policy::code::CODE_TTL_SECS)
            .contains(&self.lockout.code_ttl_secs)
        {
            errors.push(err(
                "lockout.code_ttl_secs",
                format!(
                    "must be {} to {} seconds",
                    padlock_policy::code::MIN_CODE_TTL_SECS,
                    padlock_policy::code::CODE_TTL_SECS
                ),
            ));
        }
        if self.lockout.lock_minutes == 0 {
            errors.push(err("lockout.lock_minutes", "must be at least 1"));
        }
        // Absent, it is created (mode 0600) at the first start.
        let master_key = self.master_key_path();
        if master_key.exists() {
            check_secret_file(&mut errors, "master_key_file", Some(&master_key));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            errors.push(err("log", e.to_string()));
        }
        if let Some(email) = &self.email {
            if email.smtp_host.trim().is_empty() {
                errors.push(err("email.smtp_host", "must not be empty"));
            }
            if email.smtp_port == Some(0) {
                errors.push(err("email.smtp_port", "must not be 0"));
            }
            if !email.from.contains('@') {
                errors.push(err(
                    "email.from",
                    "must be an address such as `Padlock <no-reply@example.com>`",
                ));
            }
            if email.password_file.is_some() && email.username.is_none() {
                errors.push(err(
                    "email.username",
                    "required when email.password_file is set",
                ));
            }
            check_secret_file(
                &mut errors,
                "email.password_file",
                email.password_file.as_deref(),
            );
            if email.ca_file.is_some() && email.tls == SmtpTls::None {
                errors.push(err(
                    "email.ca_file",
                    "only used with tls = \"starttls\" or \"tls\"",
                ));
            }
            // A CA bundle is public: it only has to be readable.
            if let Some(ca) = &email.ca_file
                && let Err(e) = std::fs::File::open(ca)
            {
                errors.push(err(
                    "email.ca_file",
                    format!("cannot read {}: {e}", ca.display()),
                ));
            }
        }
        for (key, template) in [
            ("messages.email_body", &self.messages.email_body),
            ("messages.sms_body", &self.messages.sms_body),
        ] {
            if !template.uses(Var::Code) {
                errors.push(err(key, "must contain {code}"));
            }
        }
        if let Some(sms) = &self.sms {
            match sms.provider {
                SmsProvider::Twilio => {
                    if let Err(m) = check_url(&sms.base_url) {
                        errors.push(err("sms.base_url", m));
                    }
                    if sms
                        .account_sid
                        .as_deref()
                        .is_none_or(|s| s.trim().is_empty())
                    {
                        errors.push(err("sms.account_sid", "required for provider = \"twilio\""));
                    }
                    if sms.auth_token_file.is_none()
                        && std::env::var_os("PADLOCK_SMS_AUTH_TOKEN").is_none()
                    {
                        errors.push(err(
                            "sms.auth_token_file",
                            "required for provider = \"twilio\" (or set PADLOCK_SMS_AUTH_TOKEN)",
                        ));
                    }
                    check_secret_file(
                        &mut errors,
                        "sms.auth_token_file",
                        sms.auth_token_file.as_deref(),
                    );
                    match sms.from.as_deref().map(E164::parse) {
                        None => errors.push(err("sms.from", "required for provider = \"twilio\"")),
                        Some(Err(e)) => errors.push(err("sms.from", e.to_string())),
                        Some(Ok(_)) => {}
                    }
                }
                SmsProvider::Webhook => match sms.webhook_url.as_deref().map(check_url) {
                    None => errors.push(err(
                        "sms.webhook_url",
                        "required for provider = \"webhook\"",
                    )),
                    Some(Err(m)) => errors.push(err("sms.webhook_url", m)),
                    Some(Ok(())) => {}
                },
            }
        }
        if !(2..=30).contains(&self.duo.timeout_secs) {
            errors.push(err("duo.timeout_secs", "must be 2 to 30 seconds"));
        }
        if !(5..=padlock_policy::duo::PUSH_TIMEOUT_SECS).contains(&self.duo.push_timeout_secs) {
            errors.push(err(
                "duo.push_timeout_secs",
                format!(
                    "must be 5 to {} seconds",
                    padlock_policy::duo::PUSH_TIMEOUT_SECS
                ),
            ));
        }
        if let Some(url) = self
            .testing
            .as_ref()
            .and_then(|t| t.duo_base_url.as_deref())
            && let Err(m) = check_url(url)
        {
            errors.push(err("testing.duo_base_url", m));
        }
        errors
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "`{url}` must not contain a query, fragment or space"
        ));
    }
    Ok(())
}

/// Reports a secret file that cannot be read or whose mode lets others read or change it
/// ([`crate::fsutil::check_secret_file`]), under the dotted key that names it.
fn check_secret_file(errors: &mut Vec<ConfigError>, key: &str, path: Option<&Path>) {
    if let Some(path) = path
        && let Err(e) = crate::fsutil::check_secret_file(path)
    {
        errors.push(err(key, e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(Config::default().issuer(), "http://127.0.0.1:8080");
        assert!(Config::default().validate().is_empty());
    }

    #[test]
    fn example_parses_to_the_defaults() {
        assert_eq!(Config::parse(EXAMPLE).unwrap(), Config::default());
    }

    #[test]
    fn example_documents_every_key() {
        // Uncomment the optional sections and parse: every key of every section must be accepted.
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.starts_with('[') || r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let full = Config::parse(&uncommented).unwrap();
        assert!(
            full.email.is_some()
                && full.sms.is_some()
                && full.testing.is_some()
                && full.issuer.is_some()
        );
        let json = serde_json::to_value(&full).unwrap();
        fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
            if let Some(map) = v.as_object() {
                for (k, v) in map {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
        }
        let mut all = Vec::new();
        keys(&json, &mut all);
        for k in all {
            assert!(
                EXAMPLE.contains(&format!("{k} = ")) || EXAMPLE.contains(&format!("[{k}]")),
                "key `{k}` missing from the example"
            );
        }
    }

    #[test]
    fn docs_include_the_example() {
        let docs = include_str!("../../docs/configuration.md");
        assert!(
            docs.contains(EXAMPLE.trim()),
            "docs/configuration.md must contain config_example.toml verbatim"
        );
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = Config::parse("listen = \"127.0.0.1:1\"\n[email]\nsmtp_host = \"h\"\nsmtp_port = \"x\"\nfrom = \"a@b\"\n").unwrap_err();
        assert_eq!(e.path, "email.smtp_port");
        assert!(e.message.contains("line 4"), "{e}");
        let e = Config::parse("bogus = 1").unwrap_err();
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
        let e = Config::parse("[lockout]\nmax_failure = 3").unwrap_err();
        assert_eq!(e.path, "lockout.max_failure");
        let e = Config::parse("listen = \"nope\"").unwrap_err();
        assert_eq!(e.path, "listen");
        let e = Config::parse("listen = ").unwrap_err();
        assert_eq!(e.path, "(file)");
    }

    #[test]
    fn validation_finds_each_problem() {
        let c = Config::parse(
            "issuer = \"ftp://x\"\n[lockout]\nmax_failures = 101\n[sms]\nprovider = \"twilio\"\nfrom = \"555\"\n[email]\nsmtp_host = \"\"\nfrom = \"nobody\"\npassword_file = \"/nonexistent/pw\"\nca_file = \"/nonexistent/ca.pem\"\n",
        )
        .unwrap();
        let paths: Vec<String> = c.validate().into_iter().map(|e| e.path).collect();
        for p in [
            "issuer",
            "lockout.max_failures",
            "sms.account_sid",
            "sms.from",
            "email.smtp_host",
            "email.from",
            "email.username",
            "email.password_file",
            "email.ca_file",
        ] {
            assert!(
                paths.contains(&p.to_string()),
                "{p} not reported in {paths:?}"
            );
        }
        let webhook = Config::parse("[sms]\nprovider = \"webhook\"\n").unwrap();
        assert_eq!(webhook.validate()[0].path, "sms.webhook_url");
    }

    /// DESIGN.md §9.3: a code may be made valid for less than 120 s, never for more.
    #[test]
    fn code_validity_is_at_most_two_minutes() {
        for (ttl, ok) in [(4, false), (5, true), (60, true), (120, true), (121, false)] {
            let c = Config::parse(&format!("[lockout]\ncode_ttl_secs = {ttl}\n")).unwrap();
            let paths: Vec<String> = c.validate().into_iter().map(|e| e.path).collect();
            assert_eq!(
                !paths.contains(&"lockout.code_ttl_secs".to_string()),
                ok,
                "{ttl}: {paths:?}"
            );
        }
        let c = Config::parse("[lockout]\ncode_ttl_secs = 30\n").unwrap();
        assert_eq!(c.limits().unwrap().code_ttl_secs, 30);
    }

    /// DESIGN.md §9.7: secret files are checked by `config check` and at start; the key names the
    /// file, the message its mode and the fix. A CA bundle is public and only has to be readable.
    #[test]
    fn secret_files_open_to_others_are_reported_by_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, "x\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p.display().to_string()
        };
        let text = format!(
            "master_key_file = \"{}\"\n[email]\nsmtp_host = \"h\"\nfrom = \"a@b\"\ntls = \"starttls\"\nusername = \"u\"\npassword_file = \"{}\"\nca_file = \"{}\"\n[sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nfrom = \"+15550000000\"\nauth_token_file = \"{}\"\n",
            file("master.key", 0o644),
            file("smtp-password", 0o664),
            file("ca.pem", 0o644),
            file("twilio-token", 0o620),
        );
        let errors = Config::parse(&text).unwrap().validate();
        let found: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.path.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        for (key, mode) in [
            ("master_key_file", "0644"),
            ("email.password_file", "0664"),
            ("sms.auth_token_file", "0620"),
        ] {
            let (_, message) = found.iter().find(|(k, _)| *k == key).unwrap();
            assert!(
                message.contains(&format!("(mode {mode})")) && message.contains("chmod 600 "),
                "{key}: {message}"
            );
        }
        for name in ["master.key", "smtp-password", "twilio-token"] {
            file(name, 0o640);
        }
        let errors = Config::parse(&text).unwrap().validate();
        assert!(errors.is_empty(), "group-readable is fine: {errors:?}");
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(Config::default().log_format, LogFormat::Text);
        let c = Config::parse("log_format = \"json\"").unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let e = Config::parse("log_format = \"xml\"").unwrap_err();
        assert_eq!(e.path, "log_format");
        assert_eq!(" json\n".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!(
            "yaml"
                .parse::<LogFormat>()
                .unwrap_err()
                .contains("text or json")
        );
    }

    #[test]
    fn smtp_port_follows_the_tls_mode_unless_set() {
        let port = |extra: &str| {
            let c = Config::parse(&format!(
                "[email]\nsmtp_host = \"h\"\nfrom = \"a@b\"\n{extra}"
            ))
            .unwrap();
            c.email.unwrap().port()
        };
        assert_eq!(port(""), 25);
        assert_eq!(port("tls = \"starttls\"\n"), 587);
        assert_eq!(port("tls = \"tls\"\n"), 465);
        assert_eq!(port("tls = \"tls\"\nsmtp_port = 2465\n"), 2465);
    }

    #[test]
    fn message_templates_are_checked_at_load() {
        let e = Config::parse("[messages]\nsms_body = \"Code: {cod}\"\n").unwrap_err();
        assert_eq!(e.path, "messages.sms_body");
        assert!(e.message.contains("unknown placeholder `{cod}`"), "{e}");
        assert!(e.message.contains("line 2"), "{e}");
        let c = Config::parse("[messages]\nemail_body = \"Hello from {company}\"\n").unwrap();
        let errors = c.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "messages.email_body");
        assert!(errors[0].message.contains("{code}"));
        let c = Config::parse("[messages]\nsms_body = \"{company} {{2FA}}: {code}\"\n").unwrap();
        assert!(c.validate().is_empty());
    }
}

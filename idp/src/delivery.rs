//! Sending one-time codes: email over SMTP (lettre), SMS through a Twilio-Messages-shaped gateway or
//! a JSON webhook (reqwest), or — until those are configured — the development outbox
//! (files in `<data_dir>/outbox/`, named in the log, with a warning). A failure is returned, never
//! dropped.

use crate::config::{Config, MessagesConfig, SmsProvider, SmtpTls};
use crate::secret::ClientSecret;
use crate::template::Values;
use crate::typical::TypicalTime;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use padlock_policy::decision::Channel;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The header of a PEM certificate.
const CERT_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// How long one delivery attempt may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a code could not be sent (logged; the user sees a generic sentence).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The gateway or mail server refused or failed.
    #[error("{0}")]
    Failed(String),
}

/// A one-time code to deliver; the text comes from the `[messages]` templates.
pub struct CodeMessage<'a> {
    /// The code.
    pub code: &'a str,
    /// The company the login is for.
    pub company: &'a str,
}

impl CodeMessage<'_> {
    /// The template values; `minutes` is the code's validity, rounded up to whole minutes.
    fn values(&self, minutes: u64) -> Values<'_> {
        Values {
            code: self.code,
            company: self.company,
            minutes,
        }
    }
}

/// A rendered message.
struct Text {
    subject: String,
    body: String,
}

enum Email {
    Outbox(PathBuf),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
}

enum Sms {
    Outbox(PathBuf),
    Twilio {
        http: reqwest::Client,
        url: String,
        sid: String,
        token: ClientSecret,
        from: String,
    },
    Webhook {
        http: reqwest::Client,
        url: String,
    },
}

/// The configured senders.
pub struct Delivery {
    email: Email,
    sms: Sms,
    messages: MessagesConfig,
    /// A code's validity in whole minutes (rounded up), for the `{minutes}` placeholder.
    code_minutes: u64,
    seq: AtomicU64,
    /// How long a successful code send typically took: by SMS, by email.
    send_times: [TypicalTime; 2],
}

/// The slot of `channel`'s kind in [`Delivery`]'s send-time averages.
fn channel_index(channel: &Channel) -> usize {
    match channel {
        Channel::Sms(_) => 0,
        Channel::Email(_) => 1,
    }
}

/// The secret in `file` (`key` is its dotted config key, for errors), else in env `env`. The file
/// is read only if its mode keeps it from others ([`crate::fsutil::read_secret_file`]).
fn secret_from(key: &str, file: Option<&Path>, env: &str) -> Result<Option<ClientSecret>, String> {
    if let Some(f) = file {
        let text = crate::fsutil::read_secret_file(f).map_err(|e| format!("{key}: {e}"))?;
        return Ok(Some(ClientSecret::new(text.trim().to_owned())));
    }
    Ok(std::env::var(env).ok().map(ClientSecret::new))
}

impl Delivery {
    /// Builds the senders from the configuration; absent sections use the outbox in `data_dir`.
    pub fn from_config(config: &Config, data_dir: &Path) -> Result<Delivery, String> {
        let outbox = data_dir.join("outbox");
        let email = match &config.email {
            None => Email::Outbox(outbox.clone()),
            Some(e) => {
                let tls = || -> Result<TlsParameters, String> {
                    let mut params = TlsParameters::builder(e.smtp_host.clone());
                    if let Some(file) = &e.ca_file {
                        let problem = |err: &dyn std::fmt::Display| {
                            format!("email.ca_file: {}: {err}", file.display())
                        };
                        let pem = std::fs::read(file).map_err(|e| problem(&e))?;
                        if !pem.windows(CERT_PEM.len()).any(|w| w == CERT_PEM) {
                            return Err(problem(&"holds no PEM certificate"));
                        }
                        let cert = Certificate::from_pem(&pem).map_err(|e| problem(&e))?;
                        params = params.add_root_certificate(cert);
                    }
                    params
                        .build_rustls()
                        .map_err(|err| format!("email: TLS settings: {err}"))
                };
                let tls = match e.tls {
                    SmtpTls::None => Tls::None,
                    SmtpTls::Starttls => Tls::Required(tls()?),
                    SmtpTls::Tls => Tls::Wrapper(tls()?),
                };
                let builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.smtp_host).tls(tls);
                let mut builder = builder.port(e.port()).timeout(Some(SEND_TIMEOUT));
                if let Some(user) = &e.username {
                    let password = secret_from("email.password_file", e.password_file.as_deref(), "PADLOCK_SMTP_PASSWORD")?.ok_or("email.password_file (or PADLOCK_SMTP_PASSWORD) is required with email.username")?;
                    builder = builder
                        .credentials(Credentials::new(user.clone(), password.secret().to_owned()));
                }
                let from: Mailbox = e.from.parse().map_err(|err| format!("email.from: {err}"))?;
                Email::Smtp {
                    transport: builder.build(),
                    from,
                }
            }
        };
        let http = || {
            reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        };
        let sms = match &config.sms {
            None => Sms::Outbox(outbox),
            Some(s) => match s.provider {
                SmsProvider::Twilio => {
                    let sid = s.account_sid.clone().ok_or("sms.account_sid is required")?;
                    let token = secret_from(
                        "sms.auth_token_file",
                        s.auth_token_file.as_deref(),
                        "PADLOCK_SMS_AUTH_TOKEN",
                    )?
                    .ok_or("sms.auth_token_file (or PADLOCK_SMS_AUTH_TOKEN) is required")?;
                    let url = format!(
                        "{}/2010-04-01/Accounts/{sid}/Messages.json",
                        s.base_url.trim_end_matches('/')
                    );
                    Sms::Twilio {
                        http: http()?,
                        url,
                        sid,
                        token,
                        from: s.from.clone().ok_or("sms.from is required")?,
                    }
                }
                SmsProvider::Webhook => Sms::Webhook {
                    http: http()?,
                    url: s.webhook_url.clone().ok_or("sms.webhook_url is required")?,
                },
            },
        };
        if matches!(email, Email::Outbox(_)) || matches!(sms, Sms::Outbox(_)) {
            tracing::warn!(outbox = %data_dir.join("outbox").display(), "codes without an [email] or [sms] section go to files in the development outbox: configure SMTP and SMS before production use");
        }
        Ok(Delivery {
            email,
            sms,
            messages: config.messages.clone(),
            code_minutes: config.lockout.code_ttl_secs.div_ceil(60),
            seq: AtomicU64::new(0),
            send_times: Default::default(),
        })
    }

    /// Sends `message` over `channel`, worded by the channel's templates.
    pub async fn send(
        &self,
        channel: &Channel,
        message: &CodeMessage<'_>,
    ) -> Result<(), DeliveryError> {
        let started = std::time::Instant::now();
        let sent = self.send_now(channel, message).await;
        if sent.is_ok() {
            self.send_times[channel_index(channel)].record_since(started);
        }
        sent
    }

    /// How long a code send over `channel`'s kind (SMS or email) has typically taken lately
    /// (zero before the first): what a PAM decoy waits, so an unknown name answers about as
    /// slowly as a real one.
    #[must_use]
    pub fn typical_send_time(&self, channel: &Channel) -> std::time::Duration {
        self.send_times[channel_index(channel)].get()
    }

    async fn send_now(
        &self,
        channel: &Channel,
        message: &CodeMessage<'_>,
    ) -> Result<(), DeliveryError> {
        let values = message.values(self.code_minutes);
        match channel {
            Channel::Email(to) => {
                let text = Text {
                    subject: self.messages.email_subject.render(&values),
                    body: self.messages.email_body.render(&values),
                };
                self.email(to, &text).await
            }
            Channel::Sms(to) => {
                let text = Text {
                    subject: String::new(),
                    body: self.messages.sms_body.render(&values),
                };
                self.sms(to.as_str(), &text).await
            }
        }
    }

    /// Sends a plain notice (no code) by email to `to`, e.g. that sign-in is locked.
    pub async fn notice(&self, to: &str, subject: &str, body: &str) -> Result<(), DeliveryError> {
        let text = Text {
            subject: subject.to_owned(),
            body: body.to_owned(),
        };
        self.email(to, &text).await
    }

    async fn email(&self, to: &str, m: &Text) -> Result<(), DeliveryError> {
        match &self.email {
            Email::Outbox(dir) => self.outbox(dir, "email", to, m),
            Email::Smtp { transport, from } => {
                let to: Mailbox = to
                    .parse()
                    .map_err(|e| DeliveryError::Failed(format!("address {to}: {e}")))?;
                let email = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(m.subject.as_str())
                    .body(m.body.clone())
                    .map_err(|e| DeliveryError::Failed(e.to_string()))?;
                transport
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|e| DeliveryError::Failed(format!("SMTP: {e}")))
            }
        }
    }

    async fn sms(&self, to: &str, m: &Text) -> Result<(), DeliveryError> {
        match &self.sms {
            Sms::Outbox(dir) => self.outbox(dir, "sms", to, m),
            Sms::Twilio {
                http,
                url,
                sid,
                token,
                from,
            } => {
                let form = [
                    ("To", to),
                    ("From", from.as_str()),
                    ("Body", m.body.as_str()),
                ];
                // One retry on 429/5xx or a dropped connection, as Twilio asks.
                for attempt in 0..2 {
                    let sent = http
                        .post(url)
                        .basic_auth(sid, Some(token.secret()))
                        .form(&form)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => return Ok(()),
                        Ok(r)
                            if attempt == 0
                                && (r.status().as_u16() == 429 || r.status().is_server_error()) => {
                        }
                        Ok(r) => {
                            let status = r.status();
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            return Err(DeliveryError::Failed(format!(
                                "SMS gateway answered {status}: code {} {}",
                                body["code"],
                                body["message"].as_str().unwrap_or("")
                            )));
                        }
                        Err(_) if attempt == 0 => {}
                        Err(e) => return Err(DeliveryError::Failed(format!("SMS gateway: {e}"))),
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(DeliveryError::Failed(
                    "SMS gateway: still failing after a retry".into(),
                ))
            }
            Sms::Webhook { http, url } => {
                let r = http
                    .post(url)
                    .json(&serde_json::json!({ "to": to, "body": m.body }))
                    .send()
                    .await
                    .map_err(|e| DeliveryError::Failed(format!("SMS webhook: {e}")))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError::Failed(format!(
                        "SMS webhook answered {}",
                        r.status()
                    )))
                }
            }
        }
    }

    /// Development outbox: one file per message, and a warning in the log that names the file.
    fn outbox(&self, dir: &Path, kind: &str, to: &str, m: &Text) -> Result<(), DeliveryError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let fail =
            |e: std::io::Error| DeliveryError::Failed(format!("outbox {}: {e}", dir.display()));
        // The files hold codes: private whatever the umask (directory 0700, files 0600).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        let path = dir.join(format!("{stamp:013}-{n:04}-{kind}.txt"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        file.write_all(format!("To: {to}\nSubject: {}\n\n{}\n", m.subject, m.body).as_bytes())
            .map_err(fail)?;
        // The file holds the code; the log says only where it is (codes are secrets).
        tracing::warn!(to, file = %path.display(), "development outbox: message written to a file, not sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HttpPeer;
    use padlock_policy::mobile::E164;
    use std::sync::atomic::Ordering;

    /// Sends one code by SMS through a Twilio-shaped peer answering `answers` in turn; returns the
    /// result and how many requests the peer got.
    async fn twilio(answers: Vec<(u16, &'static str)>) -> (Result<(), DeliveryError>, usize) {
        let peer = HttpPeer::start(answers, 0);
        let dir = crate::state::test_outbox();
        crate::testing::write_secret(&dir.join("token"), "tw-token");
        let config = Config::parse(&format!(
            "[sms]\nprovider = \"twilio\"\nbase_url = \"{}\"\naccount_sid = \"AC1\"\nauth_token_file = \"{}\"\nfrom = \"+15550000000\"\n",
            peer.url,
            dir.join("token").display()
        ))
        .unwrap();
        let delivery = Delivery::from_config(&config, &dir).unwrap();
        let to = Channel::Sms(E164::parse("+15551234567").unwrap());
        let sent = delivery
            .send(
                &to,
                &CodeMessage {
                    code: "123456",
                    company: "Acme",
                },
            )
            .await;
        (sent, peer.requests.load(Ordering::SeqCst))
    }

    const QUEUED: &str = r#"{"sid":"SM1","status":"queued"}"#;

    #[tokio::test]
    async fn twilio_is_retried_once_on_429_and_5xx() {
        let (sent, requests) = twilio(vec![
            (429, r#"{"code":20429,"message":"Too Many Requests"}"#),
            (201, QUEUED),
        ])
        .await;
        assert!(sent.is_ok(), "{sent:?}");
        assert_eq!(requests, 2);
        let (sent, requests) = twilio(vec![(503, "{}"), (503, "{}"), (201, QUEUED)]).await;
        let err = sent.unwrap_err().to_string();
        assert!(err.contains("503"), "{err}");
        assert_eq!(requests, 2, "one retry, not more");
    }

    #[tokio::test]
    async fn twilio_refusals_are_reported_with_its_code_and_not_retried() {
        let (sent, requests) = twilio(vec![(
            400,
            r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#,
        )])
        .await;
        let err = sent.unwrap_err().to_string();
        assert!(
            err.contains("400")
                && err.contains("21211")
                && err.contains("not a valid phone number"),
            "{err}"
        );
        assert_eq!(requests, 1);
    }

    /// The outbox's files hold codes: private whatever the process umask (tests run under 022).
    #[tokio::test]
    async fn outbox_messages_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::state::test_outbox();
        let delivery = Delivery::from_config(&Config::default(), &dir).unwrap();
        let to = Channel::Email("ann@example.com".into());
        let message = CodeMessage {
            code: "123456",
            company: "Acme",
        };
        delivery.send(&to, &message).await.unwrap();
        let outbox = dir.join("outbox");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&outbox), 0o700);
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(mode(&files[0]), 0o600);
    }

    fn with_ca_file(content: &str) -> Result<Delivery, String> {
        let dir = crate::state::test_outbox();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, content).unwrap();
        let config = Config::parse(&format!(
            "[email]\nsmtp_host = \"mail.example\"\ntls = \"starttls\"\nfrom = \"a@b\"\nca_file = \"{}\"\n",
            ca.display()
        ))
        .unwrap();
        Delivery::from_config(&config, &dir)
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let err = with_ca_file("").err().expect("refused");
        assert!(
            err.starts_with("email.ca_file: ") && err.ends_with("holds no PEM certificate"),
            "{err}"
        );
        let err =
            with_ca_file("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
                .err()
                .expect("refused");
        assert!(err.starts_with("email.ca_file: "), "{err}");
    }
}

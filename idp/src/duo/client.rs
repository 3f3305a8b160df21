//! The signed exchange with Duo: one request signed as [`super::sign`] says, sent with a deadline,
//! retried after HTTP 429 with exponential back-off and jitter (honouring `Retry-After`, bounded
//! by the deadline), and Duo's answer read as `{"stat": "OK", "response": …}` or mapped to a
//! typed [`DuoError`] from `{"stat": "FAIL", "code", "message", "message_detail"}`.

use super::sign::{self, Request, SigVersion};
use crate::secret::DuoSecretKey;
use backon::{ExponentialBuilder, Retryable};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::time::Instant;

/// Largest answer read from Duo, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Retries after a 429, at most (Duo's clients double a 1 s wait up to 32 s; a login cannot wait
/// that long, so the call's deadline usually ends it first).
const MAX_RETRIES: usize = 4;

/// One company's Duo Auth API application.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Integration key (20 characters).
    pub ikey: String,
    /// Secret key (40 characters); prints as `[redacted]`.
    pub skey: DuoSecretKey,
    /// API host name, `api-xxxxxxxx.duosecurity.com`: signed, and reached unless a test base
    /// URL replaces it.
    pub api_host: String,
}

/// Why a Duo call did not give an answer to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuoError {
    /// No connection (refused, reset, name resolution, connect timeout, TLS or certificate
    /// failure), or HTTP 5xx from Duo: Duo is unavailable.
    #[error("Duo cannot be reached: {0}")]
    Unreachable(String),
    /// Connected, but no answer before the deadline.
    #[error("Duo did not answer within {0:?}")]
    NoAnswer(Duration),
    /// Duo kept answering HTTP 429 until the retries or the deadline ran out.
    #[error("Duo is rate limiting Padlock (HTTP 429)")]
    RateLimited {
        /// Duo's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Duo refused the request (HTTP 4xx with Duo's error body): bad keys (401, codes
    /// 40101–40105), bad parameters (400, 40002), and so on.
    #[error("Duo refused the request: {message}{} (HTTP {status}, code {})", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default(), code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()))]
    Refused {
        /// HTTP status.
        status: u16,
        /// Duo's error `code`, e.g. 40103.
        code: Option<u64>,
        /// Duo's `message`.
        message: String,
        /// Duo's `message_detail`.
        detail: Option<String>,
    },
    /// An answer that is not Duo's JSON, does not fit the expected shape (e.g. an unknown
    /// `result`), is over 64 KiB, or is a redirect (not followed). Not an outage.
    #[error("Duo's answer cannot be read: {0}")]
    Malformed(String),
    /// The integration as stored cannot be used (its secret key does not open).
    #[error("{0}")]
    Config(String),
}

impl DuoError {
    /// Whether Duo is unavailable (unreachable, silent, rate limiting): an outage, not an
    /// answer about the user.
    #[must_use]
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            DuoError::Unreachable(_) | DuoError::NoAnswer(_) | DuoError::RateLimited { .. }
        )
    }

    /// The sentence for the operator who typed the keys: Duo's own message when Duo refused.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            DuoError::Refused {
                message, detail, ..
            } => match detail {
                Some(d) => format!("{message}: {d}"),
                None => message.clone(),
            },
            other => other.to_string(),
        }
    }
}

/// A client of one company's Duo integration.
#[derive(Debug, Clone)]
pub struct DuoClient {
    http: reqwest::Client,
    base: String,
    integration: Integration,
    timeout: Duration,
}

/// An HTTP method Padlock uses with Duo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Parameters in the query string.
    Get,
    /// Parameters in a form body.
    Post,
}

#[derive(Deserialize)]
struct Envelope {
    stat: String,
    response: Option<serde_json::Value>,
    code: Option<u64>,
    message: Option<String>,
    message_detail: Option<String>,
}

impl DuoClient {
    /// A client sending to `base` (`https://<api_host>`, or a test stand-in) and signing for
    /// `integration.api_host`; `timeout` bounds each call, retries included.
    #[must_use]
    pub fn new(
        http: reqwest::Client,
        base: String,
        integration: Integration,
        timeout: Duration,
    ) -> DuoClient {
        DuoClient {
            http,
            base,
            integration,
            timeout,
        }
    }

    /// The integration key (for logs and the API).
    #[must_use]
    pub fn ikey(&self) -> &str {
        &self.integration.ikey
    }

    /// Calls `path` with `params` within the client's timeout and returns Duo's `response`.
    ///
    /// # Errors
    /// See [`DuoError`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        verb: Verb,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T, DuoError> {
        self.call_within(verb, path, params, self.timeout).await
    }

    /// As [`DuoClient::call`], with `limit` (at most the client's timeout) as the deadline:
    /// for a long-polling call that should give up sooner.
    ///
    /// # Errors
    /// See [`DuoError`]; [`DuoError::NoAnswer`] once `limit` passed after connecting.
    pub async fn call_within<T: DeserializeOwned>(
        &self,
        verb: Verb,
        path: &str,
        params: &[(&str, &str)],
        limit: Duration,
    ) -> Result<T, DuoError> {
        let limit = limit.min(self.timeout);
        let deadline = Instant::now() + limit;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_factor(2.0)
            .with_max_delay(Duration::from_secs(32))
            .with_jitter()
            .with_max_times(MAX_RETRIES);
        let value = (|| self.once(verb, path, params, deadline, limit))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, DuoError::RateLimited { .. }))
            .adjust(|e, delay| {
                // Duo's Retry-After when longer than the back-off; never past the deadline.
                let wait = match e {
                    DuoError::RateLimited {
                        retry_after: Some(r),
                    } => delay.map(|d| d.max(*r)),
                    _ => delay,
                }?;
                Instant::now()
                    .checked_add(wait)
                    .is_some_and(|at| at < deadline)
                    .then_some(wait)
            })
            .notify(|_, wait| {
                tracing::info!(path, ?wait, "Duo answered 429; retrying");
            })
            .await?;
        serde_json::from_value(value)
            .map_err(|e| DuoError::Malformed(format!("{path}: the response does not fit: {e}")))
    }

    /// One signed request, answered before `deadline`.
    async fn once(
        &self,
        verb: Verb,
        path: &str,
        params: &[(&str, &str)],
        deadline: Instant,
        limit: Duration,
    ) -> Result<serde_json::Value, DuoError> {
        let date = sign::rfc2822_date(time::OffsetDateTime::now_utc());
        let method = match verb {
            Verb::Get => "GET",
            Verb::Post => "POST",
        };
        let req = Request {
            method,
            host: &self.integration.api_host,
            path,
            params,
            body: b"",
            date: &date,
        };
        let authorization = sign::authorization(
            &self.integration.ikey,
            self.integration.skey.secret(),
            &req,
            SigVersion::V2 { sha1: false },
        );
        let encoded = sign::encode_params(params);
        let builder = match verb {
            Verb::Get if encoded.is_empty() => self.http.get(format!("{}{path}", self.base)),
            Verb::Get => self.http.get(format!("{}{path}?{encoded}", self.base)),
            Verb::Post => self
                .http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded),
        }
        .header("date", &date)
        .header("authorization", authorization)
        .header("accept", "application/json");
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DuoError::NoAnswer(limit));
        }
        let response = builder
            .timeout(left)
            .send()
            .await
            .map_err(|e| transport(&e, limit))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_capped(response)
            .await
            .map_err(|e| transport(&e, limit))?;
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(DuoError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(DuoError::Unreachable(format!("{path}: HTTP {status}")));
        }
        let envelope: Envelope = serde_json::from_slice(body.as_deref().unwrap_or_default())
            .map_err(|_| match body {
                None => DuoError::Malformed(format!(
                    "{path}: HTTP {status}, an answer larger than {MAX_ANSWER_BYTES} bytes"
                )),
                Some(_) => DuoError::Malformed(format!("{path}: HTTP {status}, not Duo's JSON")),
            })?;
        match (
            status.is_success(),
            envelope.stat.as_str(),
            envelope.response,
        ) {
            (true, "OK", Some(v)) => Ok(v),
            (_, "FAIL", _) => Err(DuoError::Refused {
                status: status.as_u16(),
                code: envelope.code,
                message: printable(&envelope.message.unwrap_or_default()),
                detail: envelope.message_detail.as_deref().map(printable),
            }),
            _ => Err(DuoError::Malformed(format!(
                "{path}: HTTP {status} with stat {:?}",
                envelope.stat
            ))),
        }
    }
}

/// Duo's text as Padlock repeats it (in logs, pages, API errors): control characters removed, at
/// most 200 characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The body, or `None` when it is larger than [`MAX_ANSWER_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A transport failure: a timeout after connecting is [`DuoError::NoAnswer`], anything else
/// (refused, reset, name resolution, TLS) [`DuoError::Unreachable`].
fn transport(e: &reqwest::Error, limit: Duration) -> DuoError {
    if e.is_timeout() && !e.is_connect() {
        DuoError::NoAnswer(limit)
    } else {
        DuoError::Unreachable(error_chain(e))
    }
}

/// `e` and its sources, `: `-joined (reqwest's own message alone says little: "error sending
/// request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HttpPeer;
    use std::sync::atomic::Ordering;

    fn client(peer: &HttpPeer, timeout_secs: u64) -> DuoClient {
        crate::duo::Duo::new(
            Some(peer.url.clone()),
            Duration::from_secs(timeout_secs),
            60,
        )
        .unwrap()
        .client_for(Integration {
            ikey: "DIWJ8X6AEYOR5OMC6TQ1".into(),
            skey: DuoSecretKey::new("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into()),
            api_host: "api-xxxxxxxx.duosecurity.com".into(),
        })
    }

    const OK: &str = r#"{"stat":"OK","response":{"time":1}}"#;
    const TOO_MANY: &str = r#"{"stat":"FAIL","code":42901,"message":"Too Many Requests"}"#;

    #[tokio::test]
    async fn a_429_is_retried_after_a_back_off_then_succeeds() {
        let peer = HttpPeer::start(vec![(429, TOO_MANY), (200, OK)], 0);
        client(&peer, 5).check().await.unwrap();
        assert_eq!(peer.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retries_stop_at_the_deadline_as_rate_limited() {
        let peer = HttpPeer::start(vec![(429, TOO_MANY)], 0);
        let e = client(&peer, 2).check().await.unwrap_err();
        assert!(matches!(e, DuoError::RateLimited { .. }), "{e:?}");
        assert!(e.is_outage());
        let n = peer.requests.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&n),
            "bounded by the 2 s deadline: {n} requests"
        );
    }

    #[tokio::test]
    async fn duo_errors_are_typed() {
        let peer = HttpPeer::start(
            vec![(
                400,
                r#"{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"}"#,
            )],
            0,
        );
        let e = client(&peer, 5).preauth("ann", None).await.unwrap_err();
        assert_eq!(
            e,
            DuoError::Refused {
                status: 400,
                code: Some(40002),
                message: "Invalid request parameters".into(),
                detail: Some("username".into()),
            }
        );
        assert!(!e.is_outage());
        assert_eq!(e.message(), "Invalid request parameters: username");

        let peer = HttpPeer::start(vec![(503, "<html>down</html>")], 0);
        let e = client(&peer, 5).check().await.unwrap_err();
        assert!(
            matches!(e, DuoError::Unreachable(_)) && e.is_outage(),
            "{e:?}"
        );

        let peer = HttpPeer::start(vec![(200, "not json")], 0);
        let e = client(&peer, 5).check().await.unwrap_err();
        assert!(
            matches!(e, DuoError::Malformed(_)) && !e.is_outage(),
            "{e:?}"
        );

        let peer = HttpPeer::start(
            vec![(200, r#"{"stat":"OK","response":{"result":"maybe"}}"#)],
            0,
        );
        let e = client(&peer, 5).preauth("ann", None).await.unwrap_err();
        assert!(matches!(e, DuoError::Malformed(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_silent_duo_is_no_answer_and_a_closed_port_unreachable() {
        let peer = HttpPeer::start(vec![(200, OK)], 3000);
        let e = client(&peer, 2).check().await.unwrap_err();
        assert!(matches!(e, DuoError::NoAnswer(_)), "{e:?}");
        // auth_status reads a call still open as "waiting", not as an outage.
        let a = client(&peer, 2)
            .auth_status("t", Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(a.result, padlock_policy::duo::AuthResult::Waiting);

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let c = crate::duo::Duo::new(Some(url), Duration::from_secs(2), 60)
            .unwrap()
            .client_for(Integration {
                ikey: "I".into(),
                skey: DuoSecretKey::new("S".into()),
                api_host: "api-x.duosecurity.com".into(),
            });
        assert!(matches!(c.check().await, Err(DuoError::Unreachable(_))));
    }

    #[test]
    fn the_secret_key_is_not_in_debug_output() {
        let peer = HttpPeer::start(vec![(200, OK)], 0);
        let text = format!("{:?}", client(&peer, 5));
        assert!(
            !text.contains("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"),
            "{text}"
        );
        assert!(text.contains("DIWJ8X6AEYOR5OMC6TQ1"), "{text}");
    }
}

//! The command line's client of a running Padlock: reads the operator credential, gets an access
//! token by client credentials, and calls `/api/v1`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// `operator.json`.
#[derive(Deserialize)]
struct Credentials {
    issuer: String,
    client_id: String,
    client_secret: String,
}

/// An authenticated API session.
pub struct Remote {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A failed remote call, as one line for the terminal.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(String);

fn err(m: impl Into<String>) -> RemoteError {
    RemoteError(m.into())
}

/// Reads the API's `{"error","message"}` (or the OAuth `error_description`) out of a failed answer.
async fn failure(resp: reqwest::Response) -> RemoteError {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let message = body["message"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
        .or_else(|| body["error"].as_str())
        .unwrap_or("no details");
    err(format!("{message} (HTTP {})", status.as_u16()))
}

impl Remote {
    /// Logs in with the credential file; `url` overrides its issuer.
    pub async fn connect(credentials: &Path, url: Option<&str>) -> Result<Remote, RemoteError> {
        let text = std::fs::read_to_string(credentials).map_err(|e| {
            err(format!(
                "cannot read the operator credential {}: {e} (use --credentials FILE)",
                credentials.display()
            ))
        })?;
        let creds: Credentials = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "{}: not an operator credential: {e}",
                credentials.display()
            ))
        })?;
        let base = url
            .unwrap_or(&creds.issuer)
            .trim_end_matches('/')
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| err(e.to_string()))?;
        let resp = http
            .post(format!("{base}/token"))
            .basic_auth(&creds.client_id, Some(&creds.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| {
                err(format!(
                    "cannot reach Padlock at {base}: {}",
                    root_cause(&e)
                ))
            })?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        let token: serde_json::Value = resp.json().await.map_err(|e| err(e.to_string()))?;
        let token = token["access_token"]
            .as_str()
            .ok_or_else(|| err("the token endpoint returned no access token"))?
            .to_owned();
        Ok(Remote { http, base, token })
    }

    /// `GET /api/v1{path}`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, RemoteError> {
        self.send(self.http.get(self.url(path)).query(query)).await
    }

    /// `GET /api/v1{path}` of a paged list: the answer, and the value of the query parameter
    /// `cursor` in its `Link: <…>; rel="next"` header (RFC 8288), if there is a next page.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        cursor: &str,
    ) -> Result<(T, Option<String>), RemoteError> {
        let resp = self
            .answer(self.http.get(self.url(path)).query(query))
            .await?;
        let next = resp
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.strip_prefix('<')?.split_once(">; rel=\"next\""))
            .and_then(|(target, _)| {
                let (_, q) = target.split_once('?')?;
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == cursor)
                    .map(|(_, v)| v.into_owned())
            });
        let value = resp
            .json()
            .await
            .map_err(|e| err(format!("unexpected answer: {e}")))?;
        Ok((value, next))
    }

    /// `GET /api/v1{path}` of a text answer (an export), as text.
    ///
    /// # Errors
    /// Padlock unreachable or answering an error (its message).
    pub async fn get_text(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<String, RemoteError> {
        self.answer(self.http.get(self.url(path)).query(query))
            .await?
            .text()
            .await
            .map_err(|e| err(format!("unexpected answer: {e}")))
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, RemoteError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `PUT /api/v1{path}` with a JSON body.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, RemoteError> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// `PATCH /api/v1{path}` with a JSON body.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, RemoteError> {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    /// `DELETE /api/v1{path}`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RemoteError> {
        self.answer(req)
            .await?
            .json()
            .await
            .map_err(|e| err(format!("unexpected answer: {e}")))
    }

    /// The successful answer to `req` (sent with the operator's token), or the error.
    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, RemoteError> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| {
            err(format!(
                "cannot reach Padlock at {}: {}",
                self.base,
                root_cause(&e)
            ))
        })?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        Ok(resp)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Percent-encodes a path segment (company names may contain spaces).
#[must_use]
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

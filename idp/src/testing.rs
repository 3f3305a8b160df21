//! Helpers for the in-process HTTP tests (`tower::ServiceExt::oneshot` on `app(state)`).

use crate::server::app;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use tower::ServiceExt;

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request through the whole router.
pub async fn call(state: &AppState, req: Request<Body>) -> Reply {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 4 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends `n` requests made by `make` at once (each in its own task) and returns the replies in order.
pub async fn call_parallel(
    state: &AppState,
    n: usize,
    make: impl Fn() -> Request<Body>,
) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (state, req) = (state.clone(), make());
            tokio::spawn(async move { call(&state, req).await })
        })
        .collect();
    let mut replies = Vec::with_capacity(n);
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

/// The statuses of [`call_parallel`]'s replies.
pub async fn statuses_parallel(
    state: &AppState,
    n: usize,
    make: impl Fn() -> Request<Body>,
) -> Vec<StatusCode> {
    call_parallel(state, n, make)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// The CSRF token of the first form on a page (`<input name="csrf" value="…">`, 32 hex digits).
pub fn csrf_field(page: &Reply) -> String {
    let at = page
        .body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no form with a CSRF token: {}", page.body))
        + 19;
    page.body[at..at + 32].to_owned()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn post_form(uri: &str, body: impl Into<String>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.into()))
        .unwrap()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// A form POST with HTTP Basic client authentication.
pub fn post_form_basic(
    uri: &str,
    id: &str,
    secret: &str,
    body: impl Into<String>,
) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic(id, secret))
        .body(Body::from(body.into()))
        .unwrap()
}

/// A JSON request with a bearer token.
pub fn json_request(
    method: &str,
    uri: &str,
    token: &str,
    body: &serde_json::Value,
) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_null() {
        b.body(Body::empty()).unwrap()
    } else {
        b.header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }
}

/// Creates the operator credential in the state's store and returns (client_id, secret).
pub async fn operator(state: &AppState) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::bootstrap::DataDir::open(dir.path()).unwrap();
    crate::bootstrap::ensure_operator(
        &data,
        state.store.as_ref(),
        &state.issuer,
        state.clock.now(),
    )
    .await
    .unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.operator_path()).unwrap()).unwrap();
    (
        file["client_id"].as_str().unwrap().to_owned(),
        file["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// A client-credentials access token for (id, secret).
pub async fn token(state: &AppState, id: &str, secret: &str) -> String {
    try_token(state, id, secret)
        .await
        .unwrap_or_else(|| panic!("client credentials of {id} refused"))
}

/// A client-credentials access token for (id, secret), or `None` when `/token` refuses them.
pub async fn try_token(state: &AppState, id: &str, secret: &str) -> Option<String> {
    let r = call(
        state,
        post_form_basic("/token", id, secret, "grant_type=client_credentials"),
    )
    .await;
    (r.status == StatusCode::OK).then(|| r.json()["access_token"].as_str().unwrap().to_owned())
}

/// An HTTP server on loopback (a stand-in for an SMS gateway) that answers its requests in turn
/// with `answers` (status, JSON body; the last one repeats), each after `delay_ms`.
pub struct HttpPeer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// How many requests came in.
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl HttpPeer {
    pub fn start(answers: Vec<(u16, &'static str)>, delay_ms: u64) -> HttpPeer {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let (status, body) = answers[n.min(answers.len() - 1)];
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut request_body = vec![0; len];
                    let _ = reader.read_exact(&mut request_body);
                    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        HttpPeer { url, requests }
    }
}

/// The messages of the development outbox in `dir` that contain `needle`, once there are `n` of
/// them (notices go out in the background; waits at most 10 s, then fails the test).
pub async fn notices(dir: &std::path::Path, needle: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found: Vec<String> = std::fs::read_dir(dir.join("outbox"))
            .map(|d| {
                d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .filter(|t| t.contains(needle))
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= n {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} notice(s) with {needle:?} expected, found {found:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Writes a secret file the way an operator should: mode 0600 (Padlock refuses looser ones).
pub fn write_secret(path: &std::path::Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

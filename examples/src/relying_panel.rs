//! A relying panel that federates its login to Padlock: OIDC authorization code flow with PKCE and a
//! nonce, ID token verified against Padlock's JWKS, claims shown, RP-initiated logout.
//!
//! ```text
//! padlock client add --name "Example panel" --redirect-uri http://127.0.0.1:3000/callback \
//!     --post-logout-uri http://127.0.0.1:3000/
//! PADLOCK_URL=http://127.0.0.1:8080 CLIENT_ID=c_… CLIENT_SECRET=… cargo run -p padlock-examples --bin relying-panel
//! ```
//! then open http://127.0.0.1:3000/. `LISTEN` changes the address (default 127.0.0.1:3000).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Clone)]
struct Panel {
    client: Arc<Rp>,
    http: reqwest::Client,
    padlock: String,
    home: String,
    /// Pending logins by `state`: (PKCE verifier, nonce).
    pending: Arc<Mutex<HashMap<String, (String, Nonce)>>>,
}

/// Padlock's HTTP calls, through reqwest, never following redirects.
async fn call(http: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let (parts, body) = req.into_parts();
    let mut builder = http.request(parts.method, parts.uri.to_string()).body(body);
    for (k, v) in &parts.headers {
        builder = builder.header(k, v);
    }
    let resp = builder.send().await?;
    let mut out = openidconnect::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    Ok(out.body(resp.bytes().await?.to_vec()).unwrap_or_default())
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("relying-panel: set {name} (see the comment at the top of relying_panel.rs)");
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() {
    let padlock = env("PADLOCK_URL").trim_end_matches('/').to_owned();
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let home = format!("http://{listen}/");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let h = http.clone();
    let issuer = IssuerUrl::new(padlock.clone()).expect("PADLOCK_URL");
    let metadata = match CoreProviderMetadata::discover_async(issuer, &|r| call(h.clone(), r)).await
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("relying-panel: cannot read {padlock}/.well-known/openid-configuration: {e}");
            std::process::exit(1)
        }
    };
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(env("CLIENT_ID")),
        Some(ClientSecret::new(env("CLIENT_SECRET"))),
    )
    .set_redirect_uri(RedirectUrl::new(format!("{home}callback")).expect("redirect URI"));
    let panel = Panel {
        client: Arc::new(client),
        http,
        padlock,
        home,
        pending: Arc::default(),
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .with_state(panel);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("listen");
    println!("relying panel on http://{listen}/");
    axum::serve(listener, app).await.expect("serve");
}

async fn index() -> Html<&'static str> {
    Html("<h1>Example panel</h1><p><a href=\"/login\">Sign in with Padlock</a></p>")
}

async fn login(State(p): State<Panel>) -> Redirect {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = p
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    p.pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(state.secret().clone(), (verifier.secret().clone(), nonce));
    Redirect::to(url.as_str())
}

async fn callback(State(p): State<Panel>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(err) = q.get("error") {
        return Html(format!(
            "<h1>Sign-in failed</h1><p>{}</p>",
            escape(&format!(
                "{err}: {}",
                q.get("error_description").map_or("", String::as_str)
            ))
        ))
        .into_response();
    }
    let (Some(code), Some(state)) = (q.get("code"), q.get("state")) else {
        return Html("<p>Missing code or state.</p>").into_response();
    };
    let Some((verifier, nonce)) = p
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(state)
    else {
        return Html("<p>Unknown or reused state.</p>").into_response();
    };
    let h = p.http.clone();
    let exchange = match p.client.exchange_code(AuthorizationCode::new(code.clone())) {
        Ok(x) => {
            x.set_pkce_verifier(PkceCodeVerifier::new(verifier))
                .request_async(&|r| call(h.clone(), r))
                .await
        }
        Err(e) => return Html(format!("<p>{}</p>", escape(&e.to_string()))).into_response(),
    };
    let tokens = match exchange {
        Ok(t) => t,
        Err(e) => {
            return Html(format!(
                "<h1>Token exchange failed</h1><p>{}</p>",
                escape(&e.to_string())
            ))
            .into_response();
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return Html("<p>No ID token.</p>").into_response();
    };
    let claims = match id_token.claims(&p.client.id_token_verifier(), &nonce) {
        Ok(c) => c,
        Err(e) => {
            return Html(format!(
                "<h1>ID token rejected</h1><p>{}</p>",
                escape(&e.to_string())
            ))
            .into_response();
        }
    };
    // The standard claims, then Padlock's own (tenant, roles) from the verified payload.
    let payload = id_token
        .to_string()
        .split('.')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    let extra: serde_json::Value = base64_json(&payload);
    let logout = format!(
        "{}/logout?id_token_hint={}&post_logout_redirect_uri={}",
        p.padlock,
        id_token,
        openidconnect::url::form_urlencoded::byte_serialize(p.home.as_bytes()).collect::<String>()
    );
    let body = format!(
        "<h1>Signed in</h1><dl><dt>sub</dt><dd>{}</dd><dt>email</dt><dd>{}</dd><dt>tenant</dt><dd>{}</dd><dt>roles</dt><dd>{}</dd><dt>amr</dt><dd>{}</dd><dt>acr</dt><dd>{}</dd></dl><p><a href=\"{}\">Sign out</a></p>",
        escape(claims.subject().as_str()),
        escape(claims.email().map_or("", |e| e.as_str())),
        escape(extra["tenant"].as_str().unwrap_or("")),
        escape(&extra["roles"].to_string()),
        escape(&extra["amr"].to_string()),
        escape(claims.auth_context_ref().map_or("", |a| a.as_str())),
        escape(&logout),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

fn base64_json(part: &str) -> serde_json::Value {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

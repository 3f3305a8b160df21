//! The `openidconnect` crate as the relying party of a real `padlock serve`: discovery, code flow
//! with PKCE and nonce, ID token verification against /jwks, userinfo, refresh, revocation,
//! introspection, logout, and key rotation.

use crate::harness::{Server, http, operator, padlock};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IntrospectionUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use std::path::Path;

/// The client type `from_provider_metadata` gives.
pub type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub const CB: &str = "http://127.0.0.1:9/cb";
pub const BYE: &str = "http://127.0.0.1:9/bye";
pub const PW: &str = "correct-horse-battery-staple";

/// The relying party's HTTP client: reqwest, never following redirects.
pub fn rp_http(req: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let (parts, body) = req.into_parts();
    let client = http();
    let mut builder = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (k, v) in &parts.headers {
        builder = builder.header(k, v);
    }
    let resp = builder.send()?;
    let mut out = openidconnect::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    Ok(out.body(resp.bytes()?.to_vec()).expect("response"))
}

/// A running server with a company, its administrator `ann` and a registered panel.
pub struct Provider {
    pub server: Server,
    pub client_id: String,
    pub client_secret: String,
}

pub fn provider(dir: &Path) -> Provider {
    provider_with(dir, CB, BYE)
}

/// A provider whose panel is registered with `redirect` and `post_logout`.
pub fn provider_with(dir: &Path, redirect: &str, post_logout: &str) -> Provider {
    provider_serving(dir, redirect, post_logout, &[])
}

/// Like [`provider_with`], with extra `padlock serve` arguments (e.g. `-c padlock.toml`).
pub fn provider_serving(
    dir: &Path,
    redirect: &str,
    post_logout: &str,
    serve_args: &[&str],
) -> Provider {
    let server = Server::start(dir, serve_args);
    let link = server.setup_link.clone().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let r = http()
        .post(format!("{}/setup", server.url))
        .form(&[
            ("token", token),
            ("company", "Acme"),
            ("email", "ann@acme.example"),
            ("password", PW),
            ("password_confirm", PW),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = operator(
        dir,
        &[
            "client",
            "add",
            "--name",
            "Panel",
            "--redirect-uri",
            redirect,
            "--post-logout-uri",
            post_logout,
        ],
    );
    Provider {
        server,
        client_id: v["client_id"].as_str().unwrap().into(),
        client_secret: v["client_secret"].as_str().unwrap().into(),
    }
}

/// What a browser does between the authorization URL and the redirect back: follow to the login
/// page, post the password form with the flow cookie. Returns the redirect back and the session cookie.
pub fn browser_login(
    base: &str,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> (url::Url, String) {
    let r = http().get(authorize_url).send().unwrap();
    assert_eq!(
        r.status(),
        303,
        "{authorize_url}: {}",
        r.text().unwrap_or_default()
    );
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let login = r.headers()["location"].to_str().unwrap().to_owned();
    let flow = login.split("flow=").nth(1).unwrap().to_owned();
    let page = http()
        .get(format!("{base}{login}"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let r = http()
        .post(format!("{base}/login"))
        .header("cookie", &cookie)
        .form(&[
            ("flow", flow.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("padlock_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (
        url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap(),
        session,
    )
}

/// Runs the password step for `email` in a scripted browser; returns (flow id, flow cookie, reply location).
pub fn password_step(base: &str, authorize: &str, email: &str) -> (String, String, String) {
    let r = http().get(authorize).send().unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let flow = r.headers()["location"]
        .to_str()
        .unwrap()
        .split("flow=")
        .nth(1)
        .unwrap()
        .to_owned();
    let r = http()
        .post(format!("{base}/login"))
        .header("cookie", &cookie)
        .form(&[("flow", flow.as_str()), ("email", email), ("password", PW)])
        .send()
        .unwrap();
    let loc = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_else(|| format!("(status {}) {}", r.status(), r.text().unwrap_or_default()));
    (flow, cookie, loc)
}

#[test]
fn relying_party_full_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let base = p.server.url.clone();
    let metadata = CoreProviderMetadata::discover(&IssuerUrl::new(base.clone()).unwrap(), &rp_http)
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(format!("{base}/introspect")).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let (back, session) = browser_login(&base, auth_url.as_str(), "ann@acme.example", PW);
    assert!(back.as_str().starts_with(CB));
    let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(&q["state"], csrf.secret());
    assert_eq!(q["iss"], base);

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request(&rp_http)
        .expect("code exchange");
    let id_token = tokens.id_token().expect("id token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies against /jwks");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ann@acme.example"));
    assert_eq!(
        claims.auth_context_ref().map(|a| a.as_str()),
        Some("padlock:1fa")
    );
    assert_eq!(
        claims
            .auth_method_refs()
            .unwrap()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["pwd"]
    );
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request(&rp_http)
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("ann@acme.example"));

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request(&rp_http)
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret()
    );
    let reuse = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request(&rp_http);
    assert!(reuse.is_err(), "a rotated refresh token is refused");

    let fresh = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url()
        .0;
    let r = http()
        .get(fresh.as_str())
        .header("cookie", &session)
        .send()
        .unwrap();
    assert!(
        r.headers()["location"].to_str().unwrap().starts_with(CB),
        "the session signs in again without a password"
    );
    let code = url::Url::parse(r.headers()["location"].to_str().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let second = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .request(&rp_http)
        .expect("second exchange");
    let access = second.access_token().clone();
    let intro = client
        .introspect(&access)
        .request(&rp_http)
        .expect("introspect");
    assert!(intro.active());
    // The crate refuses to revoke over plain http (rightly); this loopback test posts RFC 7009 itself.
    let revoked = http()
        .post(format!("{base}/revoke"))
        .basic_auth(&p.client_id, Some(&p.client_secret))
        .form(&[
            ("token", second.refresh_token().unwrap().secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert!(
        !client
            .introspect(&access)
            .request(&rp_http)
            .unwrap()
            .active(),
        "revoking the refresh token revokes its grant"
    );
    let denied: Result<openidconnect::core::CoreUserInfoClaims, _> = client
        .user_info(AccessToken::new(access.secret().clone()), None)
        .unwrap()
        .request(&rp_http);
    assert!(denied.is_err());

    let logout = format!(
        "{base}/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye-1",
        id_token,
        url::form_urlencoded::byte_serialize(BYE.as_bytes()).collect::<String>()
    );
    let r = http()
        .get(&logout)
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&format!("{BYE}?state=bye-1"))
    );
    let after = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(openidconnect::core::CoreAuthPrompt::None)
        .url()
        .0;
    let r = http()
        .get(after.as_str())
        .header("cookie", &session)
        .send()
        .unwrap();
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=login_required")
    );
}

#[test]
fn tokens_verify_across_key_rotation_and_api_accounts_cannot_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let base = p.server.url.clone();
    let discover = || {
        CoreProviderMetadata::discover(&IssuerUrl::new(base.clone()).unwrap(), &rp_http).unwrap()
    };
    let make = |m| {
        CoreClient::from_provider_metadata(
            m,
            ClientId::new(p.client_id.clone()),
            Some(ClientSecret::new(p.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap())
    };
    let login = |client: &Rp| {
        let (url, _, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .url();
        let (back, _) = browser_login(&base, url.as_str(), "ann@acme.example", PW);
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        (
            client
                .exchange_code(AuthorizationCode::new(code))
                .unwrap()
                .request(&rp_http)
                .unwrap(),
            nonce,
        )
    };
    let before = make(discover());
    let (old_tokens, old_nonce) = login(&before);

    operator(dir.path(), &["keys", "rotate"]);
    let after = make(discover());
    let (new_tokens, new_nonce) = login(&after);
    let old_id = old_tokens.id_token().unwrap();
    let new_id = new_tokens.id_token().unwrap();
    assert_ne!(
        old_id.to_string().split('.').next(),
        new_id.to_string().split('.').next(),
        "a new kid signs after rotation"
    );
    old_id
        .claims(&after.id_token_verifier(), &old_nonce)
        .expect("the previous key is still published");
    new_id
        .claims(&after.id_token_verifier(), &new_nonce)
        .expect("the new key is published");

    let acct = operator(
        dir.path(),
        &[
            "api-account",
            "add",
            "--tenant",
            "Acme",
            "--name",
            "robot",
            "--scope",
            "dns.read",
        ],
    );
    let users = operator(dir.path(), &["user", "list", "--tenant", "Acme"]);
    let robot = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["api_account"] == true)
        .unwrap();
    let (url, _, _) = after
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let r = http().get(url.as_str()).send().unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let flow = r.headers()["location"]
        .to_str()
        .unwrap()
        .split("flow=")
        .nth(1)
        .unwrap()
        .to_owned();
    // Whatever it types, an API account never gets a session (its only credential is the client secret).
    for password in [acct["client_secret"].as_str().unwrap(), PW] {
        let r = http()
            .post(format!("{base}/login"))
            .header("cookie", &cookie)
            .form(&[
                ("flow", flow.as_str()),
                ("email", robot["email"].as_str().unwrap()),
                ("password", password),
            ])
            .send()
            .unwrap();
        assert!(r.status() == 401 || r.status() == 403);
        assert!(r.headers().get("location").is_none());
    }
}

/// DESIGN.md §9.1 over the real binary: once the company switch is on, the password alone no
/// longer yields a session or a code, at the very next login; and the refresh token and access
/// token minted before the switch stop working at Padlock (the panel must sign the user in again).
#[test]
fn company_2fa_switch_applies_at_the_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let base = p.server.url.clone();
    let metadata =
        CoreProviderMetadata::discover(&IssuerUrl::new(base.clone()).unwrap(), &rp_http).unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());
    let url = || {
        client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .url()
            .0
    };
    let (back, _) = browser_login(&base, url().as_str(), "ann@acme.example", PW);
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("2FA off: password only");
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .request(&rp_http)
        .expect("code exchange");

    let out = padlock(
        &[
            "tenant",
            "2fa",
            "Acme",
            "--enable",
            "--methods",
            "sms-email,totp",
            "--credentials",
            "data/operator.json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Acme: two-factor authentication on (methods: sms_email, totp)"
    );

    let (_, _, next) = password_step(&base, url().as_str(), "ann@acme.example");
    assert!(
        next.starts_with("/login/factor?flow="),
        "the factor step comes next, not a code or a session: {next}"
    );
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request(&rp_http);
    let err = format!(
        "{:?}",
        refreshed.expect_err("a password-only refresh token is refused")
    );
    assert!(err.contains("invalid_grant"), "{err}");
    let r = http()
        .get(format!("{base}/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the password-only access token is refused at /userinfo"
    );
}

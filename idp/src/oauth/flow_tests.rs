//! Oneshot tests of the authorization-code flow: authorize → login → code → tokens → userinfo →
//! refresh → introspect/revoke → logout, and each error branch.

use crate::crypto::sha256;
use crate::domain::{Client, ClientKind, SigningAlg, Tenant, User};
use crate::jwt::{self, TYP_JWT};
use crate::oauth::tokens::IdClaims;
use crate::secret::{ClientId, Password, TenantId, UserId};
use crate::state::{AppState, test_state, test_state_on};
use crate::testing::{Reply, call, get, post_form, post_form_basic};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use padlock_policy::TwoFactorPolicy;
use std::collections::HashMap;

pub(crate) const CB: &str = "https://panel.example.com/cb";
const BYE: &str = "https://panel.example.com/bye";
pub(crate) const PW: &str = "correct-horse-battery";

pub(crate) struct World {
    pub state: AppState,
    /// The state's store, for its test hooks.
    pub memory: std::sync::Arc<crate::store::memory::MemoryStore>,
    pub clock: std::sync::Arc<crate::clock::ManualClock>,
    pub panel: String,
    pub spa: String,
    pub user: UserId,
    pub tenant: TenantId,
}

pub(crate) fn client(id: &str, public: bool) -> Client {
    Client {
        id: ClientId::from_string(id.into()),
        name: id.into(),
        kind: ClientKind::RelyingPanel {
            redirect_uris: vec![CB.into()],
            post_logout_redirect_uris: vec![BYE.into()],
            public,
            id_token_alg: SigningAlg::RS256,
        },
        secret_sha256: (!public).then(|| hex::encode(sha256(format!("{id}-secret").as_bytes()))),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        tenant: None,
        created_at: 0,
    }
}

/// Stores a user of `tenant` with password [`PW`] and one role.
pub(crate) async fn add_user(state: &AppState, tenant: &TenantId, email: &str, role: &str) -> User {
    let hash = state
        .passwords
        .hash(Password::new(PW.into()))
        .await
        .unwrap();
    let user = User {
        id: UserId::generate(),
        tenant: tenant.clone(),
        email: email.into(),
        mobile: None,
        password_hash: hash,
        roles: vec![role.into()],
        preferred_method: None,
        totp: None,
        duo: None,
        api_account: false,
        unix_name: None,
        disabled: false,
        session_epoch: 0,
        created_at: 0,
    };
    state.store.create_user(&user).await.unwrap();
    user
}

pub(crate) async fn world() -> World {
    let memory = std::sync::Arc::new(crate::store::memory::MemoryStore::new());
    let (state, clock) = test_state_on(memory.clone()).await;
    let tenant = Tenant {
        id: TenantId::generate(),
        name: "Acme".into(),
        two_factor: TwoFactorPolicy::default(),
        duo: None,
        roles: Vec::new(),
        operator: false,
        created_at: 0,
    };
    state.store.create_tenant(&tenant).await.unwrap();
    let user = add_user(&state, &tenant.id, "ann@acme.example", "admin").await;
    state
        .store
        .put_client(&client("c_panel", false))
        .await
        .unwrap();
    state
        .store
        .put_client(&client("c_spa", true))
        .await
        .unwrap();
    World {
        memory,
        state,
        clock,
        panel: "c_panel".into(),
        spa: "c_spa".into(),
        user: user.id,
        tenant: tenant.id,
    }
}

pub(crate) fn location(r: &Reply) -> String {
    r.headers
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no redirect ({}): {}", r.status, r.body))
}

pub(crate) fn query(loc: &str) -> HashMap<String, String> {
    url::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub(crate) fn set_cookie(r: &Reply, name: &str) -> Option<(String, String)> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| {
            let value = c
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned();
            (value, c)
        })
}

pub(crate) fn with_cookie(mut req: Request<Body>, cookie: &str) -> Request<Body> {
    if !cookie.is_empty() {
        req.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    req
}

pub(crate) fn authorize_uri(client: &str, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid%20email&state=st-1&nonce=n-1{extra}",
        urlencode(CB)
    )
}

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Runs authorize and the password step; returns the final redirect and the session cookie.
pub(crate) async fn login(
    w: &World,
    authorize: &str,
    email: &str,
    password: &str,
) -> (Reply, String) {
    let r = call(&w.state, get(authorize)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (flow, raw) = set_cookie(&r, "padlock_flow").expect("flow cookie");
    assert!(raw.contains("HttpOnly") && raw.contains("SameSite=Lax"));
    assert_eq!(location(&r), format!("/login?flow={flow}"));
    let page = call(
        &w.state,
        with_cookie(get(&location(&r)), &format!("padlock_flow={flow}")),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"password\""));
    let form = format!(
        "flow={flow}&email={}&password={}",
        urlencode(email),
        urlencode(password)
    );
    let r = call(
        &w.state,
        with_cookie(post_form("/login", form), &format!("padlock_flow={flow}")),
    )
    .await;
    let session = set_cookie(&r, "padlock_session")
        .map(|(v, _)| v)
        .unwrap_or_default();
    (r, session)
}

pub(crate) async fn exchange(w: &World, code: &str, extra: &str) -> Reply {
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}{extra}",
        urlencode(CB)
    );
    call(
        &w.state,
        post_form_basic("/token", &w.panel, &format!("{}-secret", w.panel), body),
    )
    .await
}

/// `grant_type=refresh_token` by the confidential panel.
pub(crate) async fn refresh_grant(w: &World, refresh_token: &str) -> Reply {
    call(
        &w.state,
        post_form_basic(
            "/token",
            &w.panel,
            &format!("{}-secret", w.panel),
            format!("grant_type=refresh_token&refresh_token={refresh_token}"),
        ),
    )
    .await
}

pub(crate) fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn code_flow_end_to_end() {
    let w = world().await;
    let (r, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let loc = location(&r);
    assert!(loc.starts_with(CB));
    let q = query(&loc);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], "http://padlock.test");
    assert!(!session.is_empty());

    let t = exchange(&w, &q["code"], "").await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let t = t.json();
    let access = t["access_token"].as_str().unwrap();
    let id: IdClaims = jwt::verify(
        &w.state.keys.get(),
        t["id_token"].as_str().unwrap(),
        TYP_JWT,
    )
    .unwrap();
    assert_eq!(id.aud, w.panel);
    assert_eq!(id.sub, w.user.as_str());
    assert_eq!(id.nonce.as_deref(), Some("n-1"));
    assert_eq!(id.amr, ["pwd"]);
    assert_eq!(id.acr, "padlock:1fa");
    assert_eq!(id.tenant, w.tenant.as_str());
    assert_eq!(id.email.as_deref(), Some("ann@acme.example"));
    assert_eq!(id.at_hash, jwt::half_hash(SigningAlg::RS256, access));
    let alg = URL_SAFE_NO_PAD
        .decode(t["id_token"].as_str().unwrap().split('.').next().unwrap())
        .unwrap();
    assert!(
        String::from_utf8(alg).unwrap().contains("\"RS256\""),
        "RS256 by default"
    );

    let info = call(&w.state, bearer("/userinfo", access)).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.json()["email"], "ann@acme.example");
    let post = Request::post("/userinfo")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("access_token={access}")))
        .unwrap();
    assert_eq!(call(&w.state, post).await.status, StatusCode::OK);

    // Refresh rotates; the old refresh token then revokes the family.
    let secret = format!("{}-secret", w.panel);
    let refresh = t["refresh_token"].as_str().unwrap();
    let r1 = refresh_grant(&w, refresh).await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.body);
    let r1 = r1.json();
    assert_ne!(r1["refresh_token"], t["refresh_token"]);
    let new_access = r1["access_token"].as_str().unwrap();
    let intro = call(
        &w.state,
        post_form_basic(
            "/introspect",
            &w.panel,
            &secret,
            format!("token={new_access}"),
        ),
    )
    .await
    .json();
    assert_eq!(intro["active"], true);
    assert_eq!(intro["client_id"], w.panel);
    let reuse = refresh_grant(&w, refresh).await;
    assert_eq!(reuse.json()["error"], "invalid_grant");
    assert_eq!(
        call(&w.state, bearer("/userinfo", new_access)).await.status,
        StatusCode::UNAUTHORIZED,
        "family revoked"
    );
    let newest = r1["refresh_token"].as_str().unwrap();
    let r2 = refresh_grant(&w, newest).await;
    assert_eq!(
        r2.json()["error"],
        "invalid_grant",
        "every token of the family is dead"
    );

    // Logout returns to the registered URI with state and ends the session.
    let id_token = t["id_token"].as_str().unwrap();
    let out = call(
        &w.state,
        with_cookie(
            get(&format!(
                "/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye-1",
                urlencode(BYE)
            )),
            &format!("padlock_session={session}"),
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(query(&location(&out))["state"], "bye-1");
    assert!(
        set_cookie(&out, "padlock_session")
            .unwrap()
            .1
            .contains("Max-Age=0")
    );
    let none = call(
        &w.state,
        with_cookie(
            get(&authorize_uri(&w.panel, "&prompt=none")),
            &format!("padlock_session={session}"),
        ),
    )
    .await;
    assert_eq!(query(&location(&none))["error"], "login_required");
}

#[tokio::test]
async fn session_answers_later_requests_unless_login_is_forced() {
    let w = world().await;
    let (_, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let cookie = format!("padlock_session={session}");
    let again = call(
        &w.state,
        with_cookie(get(&authorize_uri(&w.panel, "&prompt=none")), &cookie),
    )
    .await;
    assert!(query(&location(&again)).contains_key("code"));
    for extra in ["&prompt=login", "&max_age=0"] {
        w.clock.advance(1);
        let r = call(
            &w.state,
            with_cookie(get(&authorize_uri(&w.panel, extra)), &cookie),
        )
        .await;
        assert!(location(&r).starts_with("/login?flow="), "{extra}");
    }
    // The company turns 2FA on: the old one-factor session no longer answers.
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.enabled = true;
    w.state.store.update_tenant(&t).await.unwrap();
    let r = call(
        &w.state,
        with_cookie(get(&authorize_uri(&w.panel, "")), &cookie),
    )
    .await;
    assert!(location(&r).starts_with("/login?flow="));
}

/// DESIGN.md §9.8: single use; reuse revokes what the code produced.
#[tokio::test]
async fn code_reuse_revokes_its_tokens_and_codes_expire() {
    let w = world().await;
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let code = query(&location(&r))["code"].clone();
    let first = exchange(&w, &code, "").await.json();
    let second = exchange(&w, &code, "").await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.json()["error"], "invalid_grant");
    assert_eq!(
        call(
            &w.state,
            bearer("/userinfo", first["access_token"].as_str().unwrap())
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    let r = refresh_grant(&w, refresh).await;
    assert_eq!(r.json()["error"], "invalid_grant");

    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let code = query(&location(&r))["code"].clone();
    w.clock.advance(60);
    assert_eq!(
        exchange(&w, &code, "").await.json()["error_description"],
        "the authorization code expired"
    );
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let code = query(&location(&r))["code"].clone();
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        urlencode("https://panel.example.com/other")
    );
    assert_eq!(
        call(
            &w.state,
            post_form_basic("/token", &w.panel, "c_panel-secret", body)
        )
        .await
        .json()["error"],
        "invalid_grant"
    );
}

/// DESIGN.md §9.9: PKCE S256 required for public clients, no downgrade; exact redirect URIs.
#[tokio::test]
async fn pkce_and_redirect_rules() {
    let w = world().await;
    let r = call(&w.state, get(&authorize_uri(&w.spa, ""))).await;
    assert_eq!(
        query(&location(&r))["error"],
        "invalid_request",
        "public client without PKCE"
    );
    let r = call(
        &w.state,
        get(&authorize_uri(
            &w.spa,
            "&code_challenge=abc&code_challenge_method=plain",
        )),
    )
    .await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");

    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    assert_eq!(
        challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "RFC 7636 Appendix B"
    );
    let pkce = format!("&code_challenge={challenge}&code_challenge_method=S256");
    let spa_exchange = |code: String, extra: String| {
        let w = &w;
        async move {
            let body = format!(
                "grant_type=authorization_code&client_id={}&code={code}&redirect_uri={}{extra}",
                w.spa,
                urlencode(CB)
            );
            call(&w.state, post_form("/token", body)).await
        }
    };
    for (extra, expect) in [
        ("".to_owned(), "invalid_grant"),
        (
            "&code_verifier=wrong-verifier-wrong-verifier-wrong-verifier".to_owned(),
            "invalid_grant",
        ),
    ] {
        let (r, _) = login(&w, &authorize_uri(&w.spa, &pkce), "ann@acme.example", PW).await;
        let res = spa_exchange(query(&location(&r))["code"].clone(), extra.clone()).await;
        assert_eq!(res.json()["error"], expect, "{extra}");
    }
    let (r, _) = login(&w, &authorize_uri(&w.spa, &pkce), "ann@acme.example", PW).await;
    let ok = spa_exchange(
        query(&location(&r))["code"].clone(),
        format!("&code_verifier={verifier}"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // Downgrade: no challenge in the request, a verifier at the token endpoint.
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let res = exchange(
        &w,
        &query(&location(&r))["code"],
        &format!("&code_verifier={verifier}"),
    )
    .await;
    assert_eq!(res.json()["error"], "invalid_grant");

    // Unregistered redirect URI or client: an error page, never a redirect.
    for uri in [
        format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid",
            w.panel,
            urlencode("https://evil.example/cb")
        ),
        format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid",
            w.panel,
            urlencode("https://panel.example.com/cb/")
        ),
        format!(
            "/authorize?response_type=code&client_id=c_nobody&redirect_uri={}&scope=openid",
            urlencode(CB)
        ),
        format!(
            "/authorize?response_type=code&client_id={}&scope=openid",
            w.panel
        ),
    ] {
        let r = call(&w.state, get(&uri)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.headers.get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn authorization_errors_go_back_to_the_panel() {
    let w = world().await;
    let base = format!(
        "/authorize?client_id={}&redirect_uri={}&state=s9",
        w.panel,
        urlencode(CB)
    );
    for (extra, error) in [
        ("&scope=openid", "invalid_request"),
        (
            "&response_type=token&scope=openid",
            "unsupported_response_type",
        ),
        (
            "&response_type=code&scope=openid&request=eyJ",
            "request_not_supported",
        ),
        (
            "&response_type=code&scope=openid&request_uri=https://x",
            "request_uri_not_supported",
        ),
        ("&response_type=code", "invalid_request"),
        (
            "&response_type=code&scope=openid&prompt=none%20login",
            "invalid_request",
        ),
        (
            "&response_type=code&scope=openid&max_age=soon",
            "invalid_request",
        ),
        (
            "&response_type=code&scope=openid&prompt=none",
            "login_required",
        ),
    ] {
        let r = call(&w.state, get(&format!("{base}{extra}"))).await;
        let q = query(&location(&r));
        assert_eq!(q["error"], error, "{extra}");
        assert_eq!(q["state"], "s9");
    }
    // Unknown parameters and scopes are ignored; POST works like GET.
    let r = call(&w.state, get(&format!("{base}&response_type=code&scope=openid%20address%20phone&display=popup&ui_locales=fr&claims_locales=de"))).await;
    assert!(location(&r).starts_with("/login?flow="));
    let r = call(
        &w.state,
        post_form(
            "/authorize",
            format!(
                "response_type=code&client_id={}&redirect_uri={}&scope=openid",
                w.panel,
                urlencode(CB)
            ),
        ),
    )
    .await;
    assert!(location(&r).starts_with("/login?flow="));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let w = world().await;
    let (wrong, _) = login(
        &w,
        &authorize_uri(&w.panel, ""),
        "ann@acme.example",
        "wrong-password-here",
    )
    .await;
    let (unknown, _) = login(
        &w,
        &authorize_uri(&w.panel, ""),
        "nobody@acme.example",
        "wrong-password-here",
    )
    .await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("The email or the password is not right."));
        assert!(r.headers.get(header::SET_COOKIE).is_none());
    }
    let audit = w.state.store.list_audit(None, None, 10).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "login.password" && e.outcome == crate::domain::Outcome::Failure).count(), 2);
}

#[tokio::test]
async fn login_posts_need_the_browser_that_started_the_flow() {
    let w = world().await;
    let r = call(&w.state, get(&authorize_uri(&w.panel, ""))).await;
    let (flow, _) = set_cookie(&r, "padlock_flow").unwrap();
    let form = format!("flow={flow}&email=ann%40acme.example&password={PW}");
    let r = call(&w.state, post_form("/login", form.clone())).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "no flow cookie: login CSRF refused"
    );
    let r = call(
        &w.state,
        with_cookie(post_form("/login", form), "padlock_flow=someone-elses"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&w.state, get("/login")).await.status,
        StatusCode::BAD_REQUEST
    );
}

/// DESIGN.md §9.2: an API account cannot log in interactively.
#[tokio::test]
async fn api_account_is_refused_at_login() {
    let w = world().await;
    let mut u = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    u.api_account = true;
    w.state.store.update_user(&u).await.unwrap();
    let (r, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body.contains("The email or the password is not right."),
        "{}",
        r.body
    );
    assert!(session.is_empty());
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "login.denied.api_account" && e.target == "ann@acme.example")
    );
}

/// DESIGN.md §9.1: with a second factor required, the password alone never completes a login.
#[tokio::test]
async fn password_alone_never_completes_when_a_second_factor_is_due() {
    let w = world().await;
    let (r, session) = login(
        &w,
        &authorize_uri(&w.panel, "&acr_values=padlock:2fa"),
        "ann@acme.example",
        PW,
    )
    .await;
    // The panel asked for padlock:2fa on a company with 2FA off: the factor step still comes.
    assert!(location(&r).starts_with("/login/factor?flow="));
    assert!(session.is_empty());
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.enabled = true;
    w.state.store.update_tenant(&t).await.unwrap();
    let (r, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert!(
        location(&r).starts_with("/login/factor?flow="),
        "the very next login after the switch"
    );
    assert!(session.is_empty() && !location(&r).contains("code="));
}

#[tokio::test]
async fn revoked_access_token_is_inactive_and_refresh_is_bound_to_its_client() {
    let w = world().await;
    w.state
        .store
        .put_client(&client("c_other", false))
        .await
        .unwrap();
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let t = exchange(&w, &query(&location(&r))["code"], "").await.json();
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let other = call(
        &w.state,
        post_form_basic(
            "/token",
            "c_other",
            "c_other-secret",
            format!("grant_type=refresh_token&refresh_token={refresh}"),
        ),
    )
    .await;
    assert_eq!(other.json()["error"], "invalid_grant");
    assert_eq!(
        call(
            &w.state,
            post_form_basic(
                "/introspect",
                "c_other",
                "c_other-secret",
                format!("token={refresh}")
            )
        )
        .await
        .json()["active"],
        false
    );
    assert_eq!(
        call(
            &w.state,
            post_form_basic(
                "/introspect",
                "c_panel",
                "c_panel-secret",
                format!("token={refresh}")
            )
        )
        .await
        .json()["active"],
        true
    );
    let rv = call(
        &w.state,
        post_form_basic(
            "/revoke",
            "c_panel",
            "c_panel-secret",
            format!("token={access}"),
        ),
    )
    .await;
    assert_eq!(rv.status, StatusCode::OK);
    assert_eq!(
        call(
            &w.state,
            post_form_basic(
                "/introspect",
                "c_panel",
                "c_panel-secret",
                format!("token={access}")
            )
        )
        .await
        .json()["active"],
        false
    );
    assert_eq!(
        call(
            &w.state,
            post_form_basic("/revoke", "c_panel", "c_panel-secret", "token=garbage")
        )
        .await
        .status,
        StatusCode::OK
    );
    let rv = call(
        &w.state,
        post_form_basic(
            "/revoke",
            "c_panel",
            "c_panel-secret",
            format!("token={refresh}"),
        ),
    )
    .await;
    assert_eq!(rv.status, StatusCode::OK);
    assert_eq!(
        call(
            &w.state,
            post_form_basic(
                "/introspect",
                "c_panel",
                "c_panel-secret",
                format!("token={refresh}")
            )
        )
        .await
        .json()["active"],
        false
    );
    assert_eq!(
        call(
            &w.state,
            post_form("/introspect", format!("token={refresh}"))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn discovery_matches_the_endpoints() {
    let w = world().await;
    let d = call(&w.state, get("/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(d["issuer"], "http://padlock.test");
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        d["token_endpoint_auth_methods_supported"][0],
        "client_secret_basic"
    );
    for (key, path) in [
        ("authorization_endpoint", "/authorize"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/userinfo"),
        ("end_session_endpoint", "/logout"),
    ] {
        let url = d[key].as_str().unwrap();
        assert_eq!(url, format!("http://padlock.test{path}"));
        assert_ne!(
            call(&w.state, get(path)).await.status,
            StatusCode::NOT_FOUND,
            "{key}"
        );
    }
}

#[test]
fn cookies_are_secure_under_https() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut state, _) = rt.block_on(test_state());
    assert!(
        !crate::session::set_cookie(&state, "a", "b", 1)
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    state.issuer = "https://login.example.com".into();
    let c = crate::session::set_cookie(&state, "a", "b", 1);
    let c = c.to_str().unwrap();
    assert!(c.contains("; Secure") && c.contains("HttpOnly") && c.contains("SameSite=Lax"));
}

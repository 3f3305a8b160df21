//! Every path that grants or uses access re-checks the company's current policy and the user's
//! current rights (issue: hardening items 1 and 2).
//!
//! Paths that issue or accept a credential minted at sign-in, each checked below against a company
//! that turned its second factor on after the credential was minted:
//! 1. single sign-on from the browser session (`/authorize`, with and without `prompt=none`);
//! 2. the authorization-code grant (a code minted before the switch);
//! 3. the refresh-token grant;
//! 4. `/userinfo` with an access token;
//! 5. `/api/v1` with an access token;
//! 6. the padlock page (`/account/security`) with the session.
//!
//! The client-credentials grant issues no user credential: API accounts are exempt there, and only
//! there.

use crate::oauth::flow_tests::{
    PW, World, authorize_uri, bearer, client, exchange, location, login, query, refresh_grant,
    urlencode, with_cookie, world,
};
use crate::testing::{call, get, json_request, operator, post_form_basic, token};
use axum::http::StatusCode;
use serde_json::{Value, json};

async fn turn_2fa_on(w: &World) {
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.enabled = true;
    w.state.store.update_tenant(&t).await.unwrap();
}

/// The padlock page with Ann's session.
async fn padlock_page(w: &World, session: &str) -> crate::testing::Reply {
    call(
        &w.state,
        with_cookie(
            get("/account/security"),
            &format!("padlock_session={session}"),
        ),
    )
    .await
}

/// A code for Ann from her session (single sign-on), or the redirect it got instead.
async fn sso_code(w: &World, session: &str, extra: &str) -> String {
    let r = call(
        &w.state,
        with_cookie(
            get(&authorize_uri(&w.panel, extra)),
            &format!("padlock_session={session}"),
        ),
    )
    .await;
    location(&r)
}

#[tokio::test]
async fn password_only_credentials_die_when_the_company_turns_2fa_on() {
    let w = world().await;
    let (r, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let code = query(&location(&r))["code"].clone();
    let tokens = exchange(&w, &code, "").await.json();
    let (access, refresh_token) = (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    );
    let later_code = query(&sso_code(&w, &session, "").await)["code"].clone();
    let users = format!("/api/v1/tenants/{}/users", w.tenant);
    // Before the switch, each credential works (the API answers 403: a panel token has no admin
    // scope, but the token itself is accepted).
    assert_eq!(
        call(&w.state, bearer("/userinfo", &access)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&w.state, bearer(&users, &access)).await.status,
        StatusCode::FORBIDDEN
    );
    let page = padlock_page(&w, &session).await;
    assert_eq!(page.status, StatusCode::OK);

    turn_2fa_on(&w).await;

    // 1. SSO: prompt=none answers login_required; otherwise a new sign-in starts.
    let loc = sso_code(&w, &session, "&prompt=none").await;
    assert_eq!(query(&loc)["error"], "login_required");
    assert!(sso_code(&w, &session, "").await.starts_with("/login?flow="));
    // Introspection, for the panel that holds them, calls both inactive.
    for token in [&access, &refresh_token] {
        let r = call(
            &w.state,
            post_form_basic(
                "/introspect",
                &w.panel,
                &format!("{}-secret", w.panel),
                format!("token={token}"),
            ),
        )
        .await;
        assert_eq!(r.json(), json!({"active": false}), "{}", r.body);
    }
    // 4. /userinfo and 5. /api/v1 refuse the access token as invalid.
    let r = call(&w.state, bearer("/userinfo", &access)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        call(&w.state, bearer(&users, &access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // 6. The padlock page does not take the session: it sends the browser to sign in again.
    let page = padlock_page(&w, &session).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(
        page.headers[axum::http::header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login?flow="),
        "{:?}",
        page.headers
    );
    // 2. A code minted before the switch cannot be exchanged.
    let r = exchange(&w, &later_code, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
    // 3. The refresh token is refused, and stays refused (its grant is revoked).
    let r = refresh_grant(&w, &refresh_token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant");
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.enabled = false;
    w.state.store.update_tenant(&t).await.unwrap();
    assert_eq!(
        refresh_grant(&w, &refresh_token).await.status,
        StatusCode::BAD_REQUEST,
        "turning 2FA off again does not revive the revoked grant"
    );
}

/// Rotation never extends a refresh token past `refresh_token_max_days` after the sign-in.
#[tokio::test]
async fn refresh_tokens_have_an_absolute_lifetime() {
    let mut w = world().await;
    w.state.tokens.refresh_token_ttl_days = 1;
    w.state.tokens.refresh_token_max_days = 2;
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let code = query(&location(&r))["code"].clone();
    let mut rt = exchange(&w, &code, "").await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        // Used within its idle day each time: it rotates.
        w.clock.advance(20 * 3600);
        let r = refresh_grant(&w, &rt).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        rt = r.json()["refresh_token"].as_str().unwrap().to_owned();
    }
    // 40 h after the sign-in; the last rotation may not carry it past 48 h.
    w.clock.advance(8 * 3600 - 1);
    let r = refresh_grant(&w, &rt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    rt = r.json()["refresh_token"].as_str().unwrap().to_owned();
    w.clock.advance(1);
    let r = refresh_grant(&w, &rt).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "48 h after the sign-in");
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[test]
fn idle_lifetime_above_the_absolute_one_is_refused() {
    let c = crate::config::Config::parse(
        "[tokens]\nrefresh_token_ttl_days = 31\nrefresh_token_max_days = 30\n",
    )
    .unwrap();
    let errors = c.validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "tokens.refresh_token_ttl_days");
}

/// Admin scopes come from client credentials only; for a user's token, rights are its scopes ∩
/// the user's roles.
#[tokio::test]
async fn admin_rights_never_come_from_a_scope_a_panel_asked_for() {
    let w = world().await;
    let (op, secret) = operator(&w.state).await;
    let op_token = token(&w.state, &op, &secret).await;
    // The API refuses a panel with an admin scope.
    for scope in ["tenant.admin", "padlock.admin"] {
        let r = call(
            &w.state,
            json_request(
                "POST",
                "/api/v1/clients",
                &op_token,
                &json!({"name": "p", "redirect_uris": ["https://p.example/cb"], "scopes": ["openid", scope]}),
            ),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{scope}: {}",
            r.body
        );
    }
    // A panel registered with it before this rule (stored directly) gets no admin scope either.
    let mut legacy = client("c_legacy", false);
    legacy.scopes.push("tenant.admin".into());
    w.state.store.put_client(&legacy).await.unwrap();
    let mut ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    ann.roles.clear();
    w.state.store.update_user(&ann).await.unwrap();
    let uri = format!(
        "/authorize?response_type=code&client_id=c_legacy&redirect_uri={}&scope=openid%20tenant.admin",
        urlencode(crate::oauth::flow_tests::CB)
    );
    let (r, _) = login(&w, &uri, "ann@acme.example", PW).await;
    let code = query(&location(&r))["code"].clone();
    let r = call(
        &w.state,
        post_form_basic(
            "/token",
            "c_legacy",
            "c_legacy-secret",
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}",
                urlencode(crate::oauth::flow_tests::CB)
            ),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "openid");
    // A grant stored before this rule with tenant.admin in it loses it at its next refresh.
    let issued = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let digest = crate::crypto::sha256(issued.as_bytes());
    let (mut record, _) = w
        .state
        .store
        .get_refresh_token(&digest)
        .await
        .unwrap()
        .unwrap();
    record.scope = "openid tenant.admin".into();
    let fresh = crate::crypto::random_token(32);
    w.state
        .store
        .put_refresh_token(&crate::crypto::sha256(fresh.as_bytes()), &record)
        .await
        .unwrap();
    let r = call(
        &w.state,
        post_form_basic(
            "/token",
            "c_legacy",
            "c_legacy-secret",
            format!("grant_type=refresh_token&refresh_token={fresh}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "openid");
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    let two_factor = format!("/api/v1/tenants/{}/two-factor", w.tenant);
    let r = call(
        &w.state,
        json_request("PUT", &two_factor, &access, &json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call(
        &w.state,
        json_request(
            "POST",
            &format!("/api/v1/tenants/{}/users", w.tenant),
            &access,
            &json!({"email": "eve@acme.example", "password": "a-long-password-1", "roles": ["admin"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // An API account created with tenant.admin keeps working, while its role holds the right.
    let r = call(
        &w.state,
        json_request(
            "POST",
            &format!("/api/v1/tenants/{}/api-accounts", w.tenant),
            &op_token,
            &json!({"name": "sync", "scopes": ["tenant.admin"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let account = r.json();
    let api = token(
        &w.state,
        account["client_id"].as_str().unwrap(),
        account["client_secret"].as_str().unwrap(),
    )
    .await;
    let users = format!("/api/v1/tenants/{}/users", w.tenant);
    assert_eq!(
        call(&w.state, json_request("GET", &users, &api, &Value::Null))
            .await
            .status,
        StatusCode::OK
    );
    // Its rights follow its role now, not the scope in the token it already holds.
    let id = crate::secret::UserId::from_string(account["user_id"].as_str().unwrap().to_owned());
    let mut u = w.state.store.get_user(&id).await.unwrap().unwrap();
    u.roles.clear();
    w.state.store.update_user(&u).await.unwrap();
    assert_eq!(
        call(&w.state, json_request("GET", &users, &api, &Value::Null))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

//! Oneshot tests of `/setup` and the router's common behaviour.

use crate::bootstrap::setup_link;
use crate::domain::Outcome;
use crate::state::test_state;
use crate::testing::{call, get, post_form};
use axum::http::{StatusCode, header};

fn form(token: &str, company: &str, email: &str, pw: &str, pw2: &str) -> String {
    format!("token={token}&company={company}&email={email}&password={pw}&password_confirm={pw2}")
}

async fn pending_token(state: &crate::state::AppState) -> String {
    let link = setup_link(state.store.as_ref(), &state.issuer, state.clock.now())
        .await
        .unwrap()
        .unwrap();
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn setup_needs_the_pending_token() {
    let (state, _) = test_state().await;
    let r = call(&state, get("/setup")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("one-time setup link"));
    let token = pending_token(&state).await;
    let r = call(&state, get("/setup?token=wrong")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("not valid"));
    let r = call(&state, get(&format!("/setup?token={token}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .contains(&format!("name=\"token\" value=\"{token}\""))
    );
}

#[tokio::test]
async fn setup_creates_company_and_admin_once() {
    let (state, _) = test_state().await;
    let token = pending_token(&state).await;
    let r = call(
        &state,
        post_form(
            "/setup",
            form(
                &token,
                "Acme",
                "ann%40example.com",
                "correct-horse-battery",
                "correct-horse-battery",
            ),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Acme") && r.body.contains("ann@example.com"));

    let tenants = state.store.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert!(!tenants[0].two_factor.enabled);
    let admin = state
        .store
        .find_user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.tenant, tenants[0].id);
    assert!(tenants[0].is_manager(&admin));
    assert!(
        tenants[0].operator,
        "the company made at /setup is the operator company"
    );
    let pw = crate::secret::Password::new("correct-horse-battery".into());
    assert!(state.passwords.verify(Some(&admin.password_hash), pw).await);
    let audit = state
        .store
        .list_audit(Some(&tenants[0].id), None, 10)
        .await
        .unwrap();
    let actions: Vec<_> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.outcome))
        .collect();
    assert_eq!(
        actions,
        [
            ("tenant.create", Outcome::Success),
            ("user.create", Outcome::Success)
        ]
    );

    // The token is dead: neither the page nor a second submission works.
    assert_eq!(state.store.setup_token().await.unwrap(), None);
    let r = call(&state, get(&format!("/setup?token={token}"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &state,
        post_form(
            "/setup",
            form(
                &token,
                "Evil",
                "eve%40example.com",
                "correct-horse-battery",
                "correct-horse-battery",
            ),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(state.store.list_tenants().await.unwrap().len(), 1);
    // And a restart with a company present prints no new link.
    assert_eq!(
        setup_link(state.store.as_ref(), &state.issuer, state.clock.now())
            .await
            .unwrap(),
        None
    );
}

fn acme_form(token: &str) -> String {
    form(
        token,
        "Acme",
        "ann%40example.com",
        "correct-horse-battery",
        "correct-horse-battery",
    )
}

/// The first-run link dies with its purpose: a company created through the admin API (as
/// `padlock tenant create` does) ends it, at the page and at the form.
#[tokio::test]
async fn a_company_created_by_the_api_ends_the_setup_link() {
    let (state, _) = test_state().await;
    let token = pending_token(&state).await;
    let (id, secret) = crate::testing::operator(&state).await;
    let bearer = crate::testing::token(&state, &id, &secret).await;
    let r = call(
        &state,
        crate::testing::json_request(
            "POST",
            "/api/v1/tenants",
            &bearer,
            &serde_json::json!({ "name": "Made by CLI" }),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(state.store.setup_token().await.unwrap(), None);
    let r = call(&state, get(&format!("/setup?token={token}"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&state, post_form("/setup", acme_form(&token))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(state.store.list_tenants().await.unwrap().len(), 1);
    assert_eq!(
        state
            .store
            .find_user_by_email("ann@example.com")
            .await
            .unwrap(),
        None
    );
}

/// A token that outlived a company (left pending by an earlier version) is refused too, and the
/// next start ends it.
#[tokio::test]
async fn a_pending_token_is_refused_once_a_company_exists() {
    let (state, _) = test_state().await;
    state
        .store
        .create_tenant(&crate::store::conformance::tenant("Acme"))
        .await
        .unwrap();
    let token = "left-over-token";
    state
        .store
        .set_setup_token(Some(&crate::store::PendingSetup {
            digest: crate::crypto::sha256(token.as_bytes()),
            issued_at: state.clock.now(),
        }))
        .await
        .unwrap();
    let r = call(&state, get(&format!("/setup?token={token}"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("already set up"), "{}", r.body);
    let r = call(
        &state,
        post_form("/setup", acme_form(token).replace("Acme", "Evil")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(state.store.list_tenants().await.unwrap().len(), 1);
    assert_eq!(
        setup_link(state.store.as_ref(), &state.issuer, state.clock.now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(state.store.setup_token().await.unwrap(), None);
}

/// A link works for 24 hours after it was printed; a restart prints a new one that works.
#[tokio::test]
async fn the_setup_link_expires_after_24_hours() {
    let (state, clock) = test_state().await;
    let token = pending_token(&state).await;
    clock.advance(crate::bootstrap::SETUP_LINK_TTL_SECS - 1);
    let r = call(&state, get(&format!("/setup?token={token}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    clock.advance(1);
    let r = call(&state, get(&format!("/setup?token={token}"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("expired"), "{}", r.body);
    let r = call(&state, post_form("/setup", acme_form(&token))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(state.store.list_tenants().await.unwrap().is_empty());

    let fresh = pending_token(&state).await;
    let r = call(&state, post_form("/setup", acme_form(&fresh))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn bad_setup_input_is_explained_and_keeps_the_token() {
    let (state, _) = test_state().await;
    let token = pending_token(&state).await;
    for (company, email, pw, pw2, message) in [
        (
            "",
            "ann%40example.com",
            "correct-horse-battery",
            "correct-horse-battery",
            "company name",
        ),
        (
            "Acme",
            "not-an-email",
            "correct-horse-battery",
            "correct-horse-battery",
            "valid email",
        ),
        ("Acme", "ann%40example.com", "short", "short", "at least"),
        (
            "Acme",
            "ann%40example.com",
            "correct-horse-battery",
            "correct-horse-batterz",
            "differ",
        ),
    ] {
        let r = call(
            &state,
            post_form("/setup", form(&token, company, email, pw, pw2)),
        )
        .await;
        let message = if message == "at least" {
            "12 to 1024"
        } else {
            message
        };
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.body.contains(message),
            "expected `{message}` in {}",
            r.body
        );
        assert!(r.body.contains(&token), "the form keeps the token");
        assert!(
            !r.body.contains("correct-horse"),
            "passwords are never echoed"
        );
    }
    assert!(state.store.setup_token().await.unwrap().is_some());
    assert!(state.store.list_tenants().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_error_pages() {
    let (state, _) = test_state().await;
    let token = pending_token(&state).await;
    let r = call(
        &state,
        post_form("/setup", format!("token={token}&company=Acme")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.body.contains("could not be read"));
    let big = format!(
        "token={token}&company={}",
        "a".repeat(crate::server::MAX_BODY_BYTES + 1)
    );
    let r = call(&state, post_form("/setup", big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        state.store.setup_token().await.unwrap().is_some(),
        "nothing consumed"
    );
    let r = call(&state, get("/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("nothing at this address"));
}

#[tokio::test]
async fn healthz_and_security_headers() {
    let (state, _) = test_state().await;
    let r = call(&state, get("/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"status":"ok"}"#);
    assert_eq!(r.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        r.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // form-action would make browsers block the login's final redirect to the panel.
    assert!(
        !r.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("form-action")
    );
}

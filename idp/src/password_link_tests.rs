//! Set-password links: single use, 24 h, dead once the password changes, refused for API
//! accounts; the page keeps the link when the password is refused.

use crate::state::{AppState, test_state};
use crate::testing::{call, get, json_request, operator, post_form, token};
use axum::http::StatusCode;
use serde_json::{Value, json};

const BOB: &str = "/api/v1/tenants/Acme/users/bob@acme.example";

async fn setup() -> (
    AppState,
    std::sync::Arc<crate::clock::ManualClock>,
    String,
    std::path::PathBuf,
) {
    let (mut state, clock) = test_state().await;
    let outbox = crate::state::test_outbox();
    state.delivery = std::sync::Arc::new(
        crate::delivery::Delivery::from_config(&crate::config::Config::default(), &outbox).unwrap(),
    );
    let (id, secret) = operator(&state).await;
    let t = token(&state, &id, &secret).await;
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
    let body = json!({"email": "bob@acme.example", "password": "correct-horse-battery"});
    let r = call(
        &state,
        json_request("POST", "/api/v1/tenants/Acme/users", &t, &body),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (state, clock, t, outbox)
}

/// A new link for Bob: its path and token.
async fn link(state: &AppState, t: &str) -> (String, String) {
    let r = call(
        state,
        json_request("POST", &format!("{BOB}/set-password-link"), t, &Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let url = r.json()["url"].as_str().unwrap().to_owned();
    let path = url
        .strip_prefix(state.issuer.trim_end_matches('/'))
        .unwrap()
        .to_owned();
    let token = path.split_once("token=").unwrap().1.to_owned();
    (path, token)
}

async fn submit(
    state: &AppState,
    token: &str,
    password: &str,
    again: &str,
) -> crate::testing::Reply {
    call(
        state,
        post_form(
            crate::password_link::PATH,
            format!("token={token}&password={password}&password_confirm={again}"),
        ),
    )
    .await
}

async fn password_is(state: &AppState, password: &str) -> bool {
    let bob = state
        .store
        .find_user_by_email("bob@acme.example")
        .await
        .unwrap()
        .unwrap();
    state
        .passwords
        .verify(
            Some(&bob.password_hash),
            crate::secret::Password::new(password.into()),
        )
        .await
}

#[tokio::test]
async fn a_link_sets_the_password_once_and_is_emailed() {
    let (state, _, t, outbox) = setup().await;
    let (path, token) = link(&state, &t).await;
    let mail = crate::testing::notices(&outbox, "set your password", 1).await;
    assert!(
        mail[0].contains("To: bob@acme.example") && mail[0].contains(&token),
        "{mail:?}"
    );
    let page = call(&state, get(&path)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("bob@acme.example"));
    // A refused password keeps the link.
    for (pw, again) in [
        ("short", "short"),
        ("a-new-long-password", "a-different-one!!"),
    ] {
        let r = submit(&state, &token, pw, again).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    }
    assert!(password_is(&state, "correct-horse-battery").await);
    let r = submit(&state, &token, "a-new-long-password", "a-new-long-password").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(password_is(&state, "a-new-long-password").await);
    // Used: the page and the form refuse it, and the password stays.
    assert_eq!(call(&state, get(&path)).await.status, StatusCode::FORBIDDEN);
    let r = submit(
        &state,
        &token,
        "yet-another-password",
        "yet-another-password",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(password_is(&state, "a-new-long-password").await);
    let audit = state.store.list_audit(None, None, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.password.set" && e.target == "bob@acme.example")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.password_link" && e.target == "bob@acme.example")
    );
}

#[tokio::test]
async fn a_link_dies_after_24_hours_and_when_the_password_changes() {
    let (state, clock, t, _) = setup().await;
    let (path, token) = link(&state, &t).await;
    clock.advance(crate::password_link::LINK_TTL_SECS - 1);
    assert_eq!(call(&state, get(&path)).await.status, StatusCode::OK);
    clock.advance(1);
    assert_eq!(call(&state, get(&path)).await.status, StatusCode::FORBIDDEN);
    let (id, secret) = operator(&state).await;
    let t = crate::testing::token(&state, &id, &secret).await;
    let r = submit(&state, &token, "a-new-long-password", "a-new-long-password").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(password_is(&state, "correct-horse-battery").await);
    // Two links: using one kills the other.
    let (_, first) = link(&state, &t).await;
    let (second_path, second) = link(&state, &t).await;
    assert_eq!(
        submit(&state, &first, "a-new-long-password", "a-new-long-password")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&state, get(&second_path)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        submit(
            &state,
            &second,
            "other-long-password",
            "other-long-password"
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert!(password_is(&state, "a-new-long-password").await);
    // No token, or a made-up one: the same refusal.
    assert_eq!(
        call(&state, get(crate::password_link::PATH)).await.status,
        StatusCode::FORBIDDEN
    );
    let made_up = format!("{}?token=AAAA", crate::password_link::PATH);
    assert_eq!(
        call(&state, get(&made_up)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_api_account_gets_no_link_and_an_old_link_dies_with_the_flag() {
    let (state, _, t, _) = setup().await;
    let (path, _) = link(&state, &t).await;
    let r = call(
        &state,
        json_request(
            "PUT",
            &format!("{BOB}/api-account"),
            &t,
            &json!({"scopes": ["openid"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(call(&state, get(&path)).await.status, StatusCode::FORBIDDEN);
    let r = call(
        &state,
        json_request(
            "POST",
            &format!("{BOB}/set-password-link"),
            &t,
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

#[tokio::test]
async fn a_link_dies_when_the_user_is_disabled_and_stays_dead_after_a_round_trip() {
    let (state, _, t, _) = setup().await;
    let (path, _) = link(&state, &t).await;
    let r = call(
        &state,
        json_request("PATCH", BOB, &t, &json!({"disabled": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(call(&state, get(&path)).await.status, StatusCode::FORBIDDEN);
    let r = call(
        &state,
        json_request("PATCH", BOB, &t, &json!({"disabled": false})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        call(&state, get(&path)).await.status,
        StatusCode::FORBIDDEN,
        "re-enabling does not revive it"
    );
    // API-account flag set and cleared twice: the password hash comes back the same, the link
    // made between stays dead.
    let flag = format!("{BOB}/api-account");
    assert_eq!(
        call(
            &state,
            json_request("PUT", &flag, &t, &json!({"scopes": ["openid"]}))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        call(&state, json_request("DELETE", &flag, &t, &Value::Null))
            .await
            .status,
        StatusCode::OK
    );
    let (between, _) = link(&state, &t).await;
    assert_eq!(call(&state, get(&between)).await.status, StatusCode::OK);
    assert_eq!(
        call(
            &state,
            json_request("PUT", &flag, &t, &json!({"scopes": ["openid"]}))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        call(&state, json_request("DELETE", &flag, &t, &Value::Null))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&state, get(&between)).await.status,
        StatusCode::FORBIDDEN
    );
}

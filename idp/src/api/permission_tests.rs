//! Oneshot tests of the admin API's permission boundaries (DESIGN.md §2 rules 7–8, §4 Role):
//! each permission opens exactly its actions, nobody grants what they do not hold, the company
//! always keeps a person holding `company.manage`, and ending a user's access ends their
//! sessions and refresh tokens.

use crate::state::{AppState, test_state};
use crate::testing::{call, json_request, operator, token};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The operator's token and a company `Acme` (Ann an administrator, Bob a plain user) beside a
/// company `Other`.
async fn company() -> (AppState, std::sync::Arc<crate::clock::ManualClock>, String) {
    let (state, clock) = test_state().await;
    let (id, secret) = operator(&state).await;
    let t = token(&state, &id, &secret).await;
    for name in ["Acme", "Other"] {
        let r = call(
            &state,
            json_request("POST", "/api/v1/tenants", &t, &json!({"name": name})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    for (email, roles) in [
        ("ann@acme.example", json!(["admin"])),
        ("bob@acme.example", json!([])),
    ] {
        let body = json!({"email": email, "password": "correct-horse-battery", "roles": roles});
        let r = call(
            &state,
            json_request("POST", "/api/v1/tenants/Acme/users", &t, &body),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    (state, clock, t)
}

/// Defines Acme's role `role` with `permissions` and makes it Bob's only role (as the operator).
async fn give_bob(state: &AppState, t: &str, role: &str, permissions: &[&str]) {
    let uri = format!("/api/v1/tenants/Acme/roles/{role}");
    let body = json!({ "permissions": permissions });
    assert_eq!(status(state, "PUT", &uri, t, body).await, StatusCode::OK);
    let body = json!({ "roles": [role] });
    assert_eq!(status(state, "PATCH", BOB, t, body).await, StatusCode::OK);
}

/// A token of a new API account of Acme with `scopes`, made by the operator.
async fn account(state: &AppState, t: &str, scopes: &[&str]) -> (String, String) {
    let body = json!({"name": scopes.join("+"), "scopes": scopes});
    let r = call(
        state,
        json_request("POST", "/api/v1/tenants/Acme/api-accounts", t, &body),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    let id = v["client_id"].as_str().unwrap().to_owned();
    (
        token(state, &id, v["client_secret"].as_str().unwrap()).await,
        v["user_id"].as_str().unwrap().to_owned(),
    )
}

async fn status(state: &AppState, method: &str, path: &str, t: &str, body: Value) -> StatusCode {
    call(state, json_request(method, path, t, &body))
        .await
        .status
}

const BOB: &str = "/api/v1/tenants/Acme/users/bob@acme.example";
const ANN: &str = "/api/v1/tenants/Acme/users/ann@acme.example";

/// Every action of the API, with the permission it needs in Acme (`None`: operator only).
fn actions() -> Vec<(&'static str, String, Value, Option<&'static str>)> {
    let new_user = json!({"email": "new@acme.example", "password": "correct-horse-battery"});
    vec![
        (
            "GET",
            "/api/v1/tenants/Acme/users".into(),
            Value::Null,
            Some("users.manage|company.manage"),
        ),
        (
            "POST",
            "/api/v1/tenants/Acme/users".into(),
            new_user,
            Some("users.manage"),
        ),
        (
            "PATCH",
            BOB.into(),
            json!({"unix_name": "bob2"}),
            Some("users.manage"),
        ),
        (
            "POST",
            format!("{BOB}/set-password-link"),
            Value::Null,
            Some("users.manage"),
        ),
        (
            "GET",
            "/api/v1/tenants/Acme/roles".into(),
            Value::Null,
            Some("users.manage|company.manage"),
        ),
        (
            "PUT",
            "/api/v1/tenants/Acme/two-factor".into(),
            json!({"enabled": false}),
            Some("company.manage"),
        ),
        (
            "PUT",
            "/api/v1/tenants/Acme/roles/viewer".into(),
            json!({"permissions": []}),
            Some("company.manage"),
        ),
        (
            "POST",
            format!("{BOB}/unlock"),
            Value::Null,
            Some("company.manage"),
        ),
        (
            "PUT",
            format!("{BOB}/two-factor"),
            json!({"preferred_method": "sms-email"}),
            Some("company.manage"),
        ),
        (
            "POST",
            "/api/v1/tenants/Acme/api-accounts".into(),
            json!({"name": "n", "scopes": ["openid"]}),
            Some("company.manage"),
        ),
        (
            "GET",
            "/api/v1/audit?tenant=Acme".into(),
            Value::Null,
            Some("audit.read"),
        ),
        (
            "GET",
            "/api/v1/audit/export?tenant=Acme&format=jsonl".into(),
            Value::Null,
            Some("audit.read"),
        ),
        (
            "GET",
            "/api/v1/tenants/Acme".into(),
            Value::Null,
            Some("company.manage|users.manage|audit.read"),
        ),
        (
            "POST",
            "/api/v1/tenants".into(),
            json!({"name": "New"}),
            None,
        ),
        ("POST", "/api/v1/keys/rotate".into(), json!({}), None),
        ("GET", "/api/v1/pam-hosts".into(), Value::Null, None),
    ]
}

#[tokio::test]
async fn each_permission_opens_exactly_its_actions() {
    let (state, _, t) = company().await;
    for held in ["users.manage", "company.manage", "audit.read"] {
        let (at, _) = account(&state, &t, &[held]).await;
        for (method, path, body, needs) in actions() {
            let got = status(&state, method, &path, &at, body.clone()).await;
            let allowed = needs.is_some_and(|n| n.split('|').any(|p| p == held));
            if allowed {
                assert!(got.is_success(), "{held}: {method} {path} answered {got}");
            } else {
                assert_eq!(got, StatusCode::FORBIDDEN, "{held}: {method} {path}");
            }
            // Another company is never found, whatever the permission.
            if path.contains("/tenants/Acme") {
                let other = path.replace("/tenants/Acme", "/tenants/Other");
                let got = status(&state, method, &other, &at, body).await;
                assert_eq!(got, StatusCode::NOT_FOUND, "{held}: {method} {other}");
            }
        }
    }
}

#[tokio::test]
async fn a_scope_opens_only_what_the_accounts_roles_hold() {
    let (state, _, t) = company().await;
    let r = call(
        &state,
        json_request(
            "PUT",
            "/api/v1/tenants/Acme/roles/helpdesk",
            &t,
            &json!({"permissions": ["users.manage"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // tenant.admin asks for everything; the account's role holds only users.manage.
    let body = json!({"name": "sync", "scopes": ["tenant.admin"]});
    let r = call(
        &state,
        json_request("POST", "/api/v1/tenants/Acme/api-accounts", &t, &body),
    )
    .await;
    let v = r.json();
    let (id, secret, user) = (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
        v["user_id"].as_str().unwrap().to_owned(),
    );
    let before = token(&state, &id, &secret).await;
    let r = call(
        &state,
        json_request(
            "PATCH",
            &format!("/api/v1/tenants/Acme/users/{user}"),
            &t,
            &json!({"roles": ["helpdesk"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Taking its role away ended the token it had; a new one carries the new rights.
    assert_eq!(
        status(
            &state,
            "GET",
            "/api/v1/tenants/Acme/users",
            &before,
            Value::Null
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let at = token(&state, &id, &secret).await;
    assert_eq!(
        status(
            &state,
            "GET",
            "/api/v1/tenants/Acme/users",
            &at,
            Value::Null
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &state,
            "PUT",
            "/api/v1/tenants/Acme/two-factor",
            &at,
            json!({"enabled": false})
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&state, "GET", "/api/v1/audit?tenant=Acme", &at, Value::Null).await,
        StatusCode::FORBIDDEN
    );
    // The role's permissions change; the same token's rights follow at once.
    let r = call(
        &state,
        json_request(
            "PUT",
            "/api/v1/tenants/Acme/roles/helpdesk",
            &t,
            &json!({"permissions": ["users.manage", "audit.read"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        status(&state, "GET", "/api/v1/audit?tenant=Acme", &at, Value::Null).await,
        StatusCode::OK
    );
    // A role that does not exist cannot be given; built-in names cannot be redefined.
    let r = call(
        &state,
        json_request("PATCH", BOB, &t, &json!({"roles": ["nonesuch"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    for name in ["admin", "user", "tenant.admin", "users.manage", "Bad Name"] {
        let got = status(
            &state,
            "PUT",
            &format!("/api/v1/tenants/Acme/roles/{}", name.replace(' ', "%20")),
            &t,
            json!({"permissions": []}),
        )
        .await;
        assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
    }
    let r = call(
        &state,
        json_request(
            "PUT",
            "/api/v1/tenants/Acme/roles/x",
            &t,
            &json!({"permissions": ["root"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "an unknown permission");
    assert!(r.body.contains("`root` is not a permission"), "{}", r.body);
    // The roles list shows the built-in ones and the company's own.
    let r = call(
        &state,
        json_request("GET", "/api/v1/tenants/Acme/roles", &t, &Value::Null),
    )
    .await;
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["admin", "user", "helpdesk"]);
    let actions: Vec<String> = state
        .store
        .list_audit(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in ["role.set", "user.roles", "api_account.create"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn nobody_grants_a_permission_they_do_not_hold() {
    let (state, _, t) = company().await;
    let (users, _) = account(&state, &t, &["users.manage"]).await;
    let (company, _) = account(&state, &t, &["company.manage"]).await;
    // users.manage: no role holding more, and no change to someone holding more.
    assert_eq!(
        status(&state, "PATCH", BOB, &users, json!({"roles": ["admin"]})).await,
        StatusCode::FORBIDDEN
    );
    let new_admin = json!({"email": "eve@acme.example", "password": "correct-horse-battery", "roles": ["admin"]});
    assert_eq!(
        status(
            &state,
            "POST",
            "/api/v1/tenants/Acme/users",
            &users,
            new_admin
        )
        .await,
        StatusCode::FORBIDDEN
    );
    for change in [
        json!({"disabled": true}),
        json!({"roles": []}),
        json!({"email": "x@acme.example"}),
    ] {
        assert_eq!(
            status(&state, "PATCH", ANN, &users, change.clone()).await,
            StatusCode::FORBIDDEN,
            "{change}"
        );
    }
    assert_eq!(
        status(
            &state,
            "POST",
            &format!("{ANN}/set-password-link"),
            &users,
            Value::Null
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // company.manage alone: no role or API account carrying users.manage or audit.read.
    for body in [
        json!({"permissions": ["users.manage"]}),
        json!({"permissions": ["company.manage", "audit.read"]}),
    ] {
        assert_eq!(
            status(
                &state,
                "PUT",
                "/api/v1/tenants/Acme/roles/r",
                &company,
                body.clone()
            )
            .await,
            StatusCode::FORBIDDEN,
            "{body}"
        );
    }
    assert_eq!(
        status(
            &state,
            "PUT",
            "/api/v1/tenants/Acme/roles/r",
            &company,
            json!({"permissions": ["company.manage"]})
        )
        .await,
        StatusCode::OK
    );
    for scopes in [json!(["users.manage"]), json!(["tenant.admin"])] {
        let body = json!({"name": "n", "scopes": scopes});
        assert_eq!(
            status(
                &state,
                "POST",
                "/api/v1/tenants/Acme/api-accounts",
                &company,
                body
            )
            .await,
            StatusCode::FORBIDDEN,
            "{scopes}"
        );
    }
    let body = json!({"scopes": ["audit.read"]});
    assert_eq!(
        status(&state, "PUT", &format!("{BOB}/api-account"), &company, body).await,
        StatusCode::FORBIDDEN
    );
    // Nothing was written by the refusals.
    let bob = state
        .store
        .find_user_by_email("bob@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert!(bob.roles.is_empty() && !bob.api_account);
    assert!(
        state
            .store
            .find_user_by_email("eve@acme.example")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_last_person_holding_company_manage_stays() {
    let (state, _, t) = company().await;
    // Ann is the only one: not disabled, not demoted, not made an API account.
    for (method, path, body) in [
        ("PATCH", ANN.to_owned(), json!({"disabled": true})),
        ("PATCH", ANN.to_owned(), json!({"roles": ["user"]})),
        (
            "PUT",
            format!("{ANN}/api-account"),
            json!({"scopes": ["tenant.admin"]}),
        ),
    ] {
        let r = call(&state, json_request(method, &path, &t, &body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} {body}: {}",
            r.body
        );
        assert!(r.body.contains("company.manage"), "{}", r.body);
    }
    // An API account holding company.manage does not count: it is not a person.
    account(&state, &t, &["tenant.admin"]).await;
    assert_eq!(
        status(&state, "PATCH", ANN, &t, json!({"disabled": true})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // With Bob holding it through the company's own role, Ann can be demoted ...
    give_bob(&state, &t, "boss", &["company.manage"]).await;
    assert_eq!(
        status(&state, "PATCH", ANN, &t, json!({"roles": []})).await,
        StatusCode::OK
    );
    // ... but the role cannot lose the permission, nor be deleted while Bob holds it.
    let r = call(
        &state,
        json_request(
            "PUT",
            "/api/v1/tenants/Acme/roles/boss",
            &t,
            &json!({"permissions": ["users.manage"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = call(
        &state,
        json_request(
            "DELETE",
            "/api/v1/tenants/Acme/roles/boss",
            &t,
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("bob@acme.example"), "{}", r.body);
    assert_eq!(
        status(
            &state,
            "DELETE",
            "/api/v1/tenants/Acme/roles/nonesuch",
            &t,
            Value::Null
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let tenant = crate::api::resolve_tenant(&state, "Acme").await.unwrap();
    assert_eq!(tenant.roles.len(), 1);
    // Once Ann is an administrator again, Bob's role can go.
    assert_eq!(
        status(&state, "PATCH", ANN, &t, json!({"roles": ["admin"]})).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&state, "PATCH", BOB, &t, json!({"roles": []})).await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &state,
            "DELETE",
            "/api/v1/tenants/Acme/roles/boss",
            &t,
            Value::Null
        )
        .await,
        StatusCode::OK
    );
}

/// A stored session of `email` and its cookie, as a sign-in would leave them.
async fn signed_in(state: &AppState, email: &str) -> (axum::http::HeaderMap, crate::domain::User) {
    let (headers, user, _) =
        signed_in_at(state, email, padlock_policy::decision::Acr::OneFactor).await;
    (headers, user)
}

/// A stored session of `email` that reached `acr`: its cookie header, the user, and the
/// session's CSRF token.
async fn signed_in_at(
    state: &AppState,
    email: &str,
    acr: padlock_policy::decision::Acr,
) -> (axum::http::HeaderMap, crate::domain::User, String) {
    let user = state
        .store
        .find_user_by_email(email)
        .await
        .unwrap()
        .unwrap();
    let now = state.clock.now();
    let session = crate::domain::Session {
        user_id: user.id.clone(),
        auth_time: now,
        amr: vec![padlock_policy::decision::Amr::Pwd],
        acr,
        epoch: user.session_epoch,
        second_factor_at: None,
        expires_at: now + 3600,
        step_up: None,
        totp_pending: None,
        duo_push: None,
        duo_pending: None,
    };
    let value = crate::session::start(state, &session).await.unwrap();
    let csrf = crate::session::csrf_token(state, &crate::session::digest(&value));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::COOKIE,
        format!("{}={value}", crate::session::SESSION_COOKIE)
            .parse()
            .unwrap(),
    );
    (headers, user, csrf)
}

/// Whether the session and a refresh grant begun with it still work.
async fn still_signed_in(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    user: &crate::domain::User,
) -> (bool, bool) {
    let session = crate::session::current(state, headers).await.unwrap();
    let grant = crate::oauth::tokens::grant_user(
        state,
        &user.id,
        padlock_policy::decision::Acr::OneFactor,
        user.session_epoch,
    )
    .await;
    (session.is_some(), grant.is_ok())
}

#[tokio::test]
async fn ending_a_users_access_ends_their_sessions_and_refresh_tokens() {
    let (state, _, t) = company().await;
    give_bob(&state, &t, "helpdesk", &["users.manage"]).await;
    // Paths that end access: removing a role, disabling, making an API account. A change that
    // ends nothing (a mobile number, a role added) leaves the sign-in alone.
    let (h, bob) = signed_in(&state, "bob@acme.example").await;
    assert_eq!(
        status(
            &state,
            "PATCH",
            BOB,
            &t,
            json!({"mobile": "+15551234567", "roles": ["helpdesk", "user"]})
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(still_signed_in(&state, &h, &bob).await, (true, true));
    assert_eq!(
        status(&state, "PATCH", BOB, &t, json!({"roles": ["user"]})).await,
        StatusCode::OK
    );
    assert_eq!(
        still_signed_in(&state, &h, &bob).await,
        (false, false),
        "a role removed"
    );

    let (h, bob) = signed_in(&state, "bob@acme.example").await;
    assert_eq!(
        status(&state, "PATCH", BOB, &t, json!({"disabled": true})).await,
        StatusCode::OK
    );
    assert_eq!(
        still_signed_in(&state, &h, &bob).await,
        (false, false),
        "disabled"
    );
    assert_eq!(
        status(&state, "PATCH", BOB, &t, json!({"disabled": false})).await,
        StatusCode::OK
    );
    let (h, bob) = signed_in(&state, "bob@acme.example").await;
    assert_eq!(
        still_signed_in(&state, &h, &bob).await,
        (true, true),
        "a new sign-in works"
    );
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
    assert_eq!(
        still_signed_in(&state, &h, &bob).await,
        (false, false),
        "made an API account"
    );
    let stored = state
        .store
        .find_user_by_email("bob@acme.example")
        .await
        .unwrap()
        .unwrap();
    let pw = crate::secret::Password::new("correct-horse-battery".into());
    assert!(
        !state
            .passwords
            .verify(Some(&stored.password_hash), pw)
            .await,
        "the password stops working"
    );
}

#[tokio::test]
async fn an_api_account_flag_is_set_rotated_and_cleared() {
    let (state, _, t) = company().await;
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
    let v = r.json();
    let (id, first) = (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
    );
    assert_eq!(first.len(), 43, "256 bits, base64url");
    let old_token = crate::testing::try_token(&state, &id, &first)
        .await
        .expect("the first secret works");
    let userinfo = |token: String| {
        let state = state.clone();
        async move {
            let req = axum::http::Request::get("/userinfo")
                .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            call(&state, req).await.status
        }
    };
    assert_eq!(userinfo(old_token.clone()).await, StatusCode::OK);
    assert_eq!(
        status(
            &state,
            "PUT",
            &format!("{BOB}/api-account"),
            &t,
            json!({"scopes": ["openid"]})
        )
        .await,
        StatusCode::CONFLICT
    );
    // Rotated: the old secret stops working, the new one works.
    let r = call(
        &state,
        json_request(
            "POST",
            &format!("/api/v1/tenants/Acme/api-accounts/{id}/rotate"),
            &t,
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let second = r.json()["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        userinfo(old_token).await,
        StatusCode::UNAUTHORIZED,
        "a token got with the old secret stops working"
    );
    assert!(
        crate::testing::try_token(&state, &id, &first)
            .await
            .is_none()
    );
    assert!(
        crate::testing::try_token(&state, &id, &second)
            .await
            .is_some()
    );
    assert_eq!(
        status(
            &state,
            "POST",
            &format!("/api/v1/tenants/Other/api-accounts/{id}/rotate"),
            &t,
            Value::Null
        )
        .await,
        StatusCode::NOT_FOUND
    );
    // Cleared: the credential is gone; a set-password link is how Bob gets a password back.
    let r = call(
        &state,
        json_request("DELETE", &format!("{BOB}/api-account"), &t, &Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["api_account"], false);
    assert!(
        crate::testing::try_token(&state, &id, &second)
            .await
            .is_none()
    );
    assert_eq!(
        status(
            &state,
            "DELETE",
            &format!("{BOB}/api-account"),
            &t,
            Value::Null
        )
        .await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        status(
            &state,
            "POST",
            &format!("{BOB}/set-password-link"),
            &t,
            Value::Null
        )
        .await,
        StatusCode::CREATED
    );
    let actions: Vec<String> = state
        .store
        .list_audit(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "user.api_account.set",
        "api_account.rotate",
        "user.api_account.clear",
        "user.password_link",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

/// The RFC 6238 code of base32 `secret` at `now`.
fn code_at(secret: &str, now: u64) -> String {
    let seed = totp_rs::Secret::try_from_base32(secret).unwrap();
    padlock_policy::totp::code_at(seed.as_ref(), now).unwrap()
}

#[tokio::test]
async fn an_administrator_enrols_a_users_app_with_one_valid_code() {
    let (state, clock, t) = company().await;
    let enrol = format!("{BOB}/totp/enroll");
    // Not offered yet: refused.
    assert_eq!(
        status(&state, "POST", &enrol, &t, Value::Null).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let on = json!({"enabled": true, "methods": ["sms-email", "totp"]});
    assert_eq!(
        status(&state, "PUT", "/api/v1/tenants/Acme/two-factor", &t, on).await,
        StatusCode::OK
    );
    let r = call(&state, json_request("POST", &enrol, &t, &Value::Null)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    let secret = v["secret"].as_str().unwrap().to_owned();
    assert!(
        v["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(!v["qr_png_base64"].as_str().unwrap().is_empty());
    let enrolment = v["enrolment"].clone();
    let now = state.clock.now();
    // A wrong code, another user's enrolment, a forged one: refused, nothing saved.
    let put = format!("{BOB}/totp");
    let wrong = (code_at(&secret, now).parse::<u32>().unwrap() + 1) % 1_000_000;
    for (path, body) in [
        (
            put.clone(),
            json!({"enrolment": enrolment, "code": format!("{wrong:06}")}),
        ),
        (
            format!("{ANN}/totp"),
            json!({"enrolment": enrolment, "code": code_at(&secret, now)}),
        ),
        (
            put.clone(),
            json!({"enrolment": "2.AAAA", "code": code_at(&secret, now)}),
        ),
    ] {
        let r = call(&state, json_request("PUT", &path, &t, &body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {}",
            r.body
        );
    }
    let bob = state
        .store
        .find_user_by_email("bob@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert!(bob.totp.is_none());
    let r = call(
        &state,
        json_request(
            "PUT",
            &put,
            &t,
            &json!({"enrolment": enrolment, "code": code_at(&secret, now)}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["totp_enrolled"], true);
    assert_eq!(r.json()["preferred_method"], "totp");
    // The confirming code's step is used up: it cannot be replayed at login.
    let bob = state
        .store
        .find_user_by_email("bob@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !state
            .store
            .accept_totp_step(&bob.id, now / 30)
            .await
            .unwrap()
    );
    // An enrolment expires after ten minutes.
    let r = call(&state, json_request("POST", &enrol, &t, &Value::Null)).await;
    let v = r.json();
    clock.advance(601);
    let later = state.clock.now();
    let (id, secret) = operator(&state).await;
    let t = token(&state, &id, &secret).await;
    let body =
        json!({"enrolment": v["enrolment"], "code": code_at(v["secret"].as_str().unwrap(), later)});
    assert_eq!(
        status(&state, "PUT", &put, &t, body).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // users.manage alone cannot enrol anyone's second factor.
    let (um, _) = account(&state, &t, &["users.manage"]).await;
    assert_eq!(
        status(&state, "POST", &enrol, &um, Value::Null).await,
        StatusCode::FORBIDDEN
    );
    let audit = state.store.list_audit(None, None, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.totp.enrol" && e.outcome == crate::domain::Outcome::Success)
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.totp.enrol" && e.outcome == crate::domain::Outcome::Failure)
    );
}

/// The `rel="next"` target of a `Link` header, if any.
fn next_link(r: &crate::testing::Reply) -> Option<String> {
    let link = r.headers.get(axum::http::header::LINK)?.to_str().ok()?;
    let target = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    Some(target.to_owned())
}

#[tokio::test]
async fn users_and_audit_events_are_paged_with_link_headers() {
    let (state, _, t) = company().await;
    for i in 0..5 {
        let body =
            json!({"email": format!("u{i}@acme.example"), "password": "correct-horse-battery"});
        assert_eq!(
            status(&state, "POST", "/api/v1/tenants/Acme/users", &t, body).await,
            StatusCode::CREATED
        );
    }
    // Seven users (Ann, Bob, u0..u4) in pages of three, in email order.
    let mut url = "/api/v1/tenants/Acme/users?limit=3".to_owned();
    let mut emails = Vec::new();
    let mut pages = 0;
    loop {
        let r = call(&state, json_request("GET", &url, &t, &Value::Null)).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        pages += 1;
        emails.extend(
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned()),
        );
        match next_link(&r) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);
    assert_eq!(emails.len(), 7);
    // The audit, filtered by action, newest first, two per page; every user.create is there once.
    let mut url = "/api/v1/audit?tenant=Acme&action=user.*&outcome=success&limit=2".to_owned();
    let mut targets = Vec::new();
    loop {
        let r = call(&state, json_request("GET", &url, &t, &Value::Null)).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        for e in r.json().as_array().unwrap() {
            assert!(e["action"].as_str().unwrap().starts_with("user."));
            targets.push(e["target"].as_str().unwrap().to_owned());
        }
        match next_link(&r) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(targets.len(), 7, "{targets:?}");
    assert_eq!(targets[0], "u4@acme.example", "newest first");
    // One user's events only.
    let r = call(
        &state,
        json_request(
            "GET",
            "/api/v1/audit?tenant=Acme&user=u2@acme.example",
            &t,
            &Value::Null,
        ),
    )
    .await;
    let events = r.json();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    // Malformed parameters are refused.
    for bad in [
        "/api/v1/audit?tenant=Acme&before=yesterday",
        "/api/v1/audit?tenant=Acme&outcome=maybe",
        "/api/v1/audit?tenant=Acme&colour=red",
    ] {
        assert_eq!(
            status(&state, "GET", bad, &t, Value::Null).await,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

/// An admin API request carried by a session cookie (and a CSRF token when given).
async fn as_person(
    state: &AppState,
    method: &str,
    uri: &str,
    cookie: &axum::http::HeaderMap,
    csrf: Option<&str>,
    body: Value,
) -> crate::testing::Reply {
    let mut b = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header(
            axum::http::header::COOKIE,
            cookie[axum::http::header::COOKIE].clone(),
        );
    if let Some(c) = csrf {
        b = b.header(super::CSRF_HEADER, c);
    }
    let req = if body.is_null() {
        b.body(axum::body::Body::empty()).unwrap()
    } else {
        b.header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    };
    call(state, req).await
}

#[tokio::test]
async fn people_use_the_api_with_their_session_and_operators_need_a_second_factor() {
    use padlock_policy::decision::Acr;
    let (state, _, t) = company().await;
    // Ann, an administrator of Acme, with her browser session: reads freely, writes with the
    // session's CSRF token only, and sees nothing of other companies or operator actions.
    let (ann, _, csrf) = signed_in_at(&state, "ann@acme.example", Acr::OneFactor).await;
    let r = as_person(
        &state,
        "GET",
        "/api/v1/tenants/Acme/users",
        &ann,
        None,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new_user = json!({"email": "cy@acme.example", "password": "correct-horse-battery"});
    for bad in [None, Some("0123456789abcdef0123456789abcdef")] {
        let r = as_person(
            &state,
            "POST",
            "/api/v1/tenants/Acme/users",
            &ann,
            bad,
            new_user.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}: {}", r.body);
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }
    assert!(
        state
            .store
            .find_user_by_email("cy@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    let r = as_person(
        &state,
        "POST",
        "/api/v1/tenants/Acme/users",
        &ann,
        Some(&csrf),
        new_user,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ann_id = state
        .store
        .find_user_by_email("ann@acme.example")
        .await
        .unwrap()
        .unwrap()
        .id;
    let audit = state.store.list_audit(None, None, 100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "user.create"
        && e.target == "cy@acme.example"
        && e.actor == ann_id.as_str()));
    let r = as_person(
        &state,
        "GET",
        "/api/v1/tenants/Other/users",
        &ann,
        None,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = as_person(
        &state,
        "POST",
        "/api/v1/tenants",
        &ann,
        Some(&csrf),
        json!({"name": "New"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Bob holds no permission.
    let (bob, _, _) = signed_in_at(&state, "bob@acme.example", Acr::OneFactor).await;
    let r = as_person(
        &state,
        "GET",
        "/api/v1/tenants/Acme/users",
        &bob,
        None,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Olga administers the operator company (whose second factor is off).
    let r = call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Ops"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ops = crate::api::resolve_tenant(&state, "Ops").await.unwrap();
    let marked = crate::domain::Tenant {
        operator: true,
        ..ops.clone()
    };
    assert!(state.store.swap_tenant(&ops, &marked).await.unwrap());
    let body = json!({"email": "olga@ops.example", "password": "correct-horse-battery", "roles": ["admin"]});
    assert_eq!(
        status(&state, "POST", "/api/v1/tenants/Ops/users", &t, body).await,
        StatusCode::CREATED
    );
    // Signed in with her password alone: no operator action, and no other company.
    let (olga, _, csrf) = signed_in_at(&state, "olga@ops.example", Acr::OneFactor).await;
    for (method, uri, body) in [
        ("POST", "/api/v1/tenants", json!({"name": "New"})),
        ("POST", "/api/v1/keys/rotate", json!({})),
        ("GET", "/api/v1/pam-hosts", Value::Null),
    ] {
        let r = as_person(&state, method, uri, &olga, Some(&csrf), body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {uri}: {}",
            r.body
        );
        assert!(r.body.contains("second factor"), "{}", r.body);
    }
    let r = as_person(
        &state,
        "GET",
        "/api/v1/tenants/Acme/users",
        &olga,
        None,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // After a second factor she is an operator: every company, and operator actions.
    let (olga, _, csrf) = signed_in_at(&state, "olga@ops.example", Acr::TwoFactor).await;
    let r = as_person(
        &state,
        "POST",
        "/api/v1/tenants",
        &olga,
        Some(&csrf),
        json!({"name": "New"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = as_person(
        &state,
        "GET",
        "/api/v1/tenants/Acme/users",
        &olga,
        None,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = as_person(&state, "GET", "/api/v1/pam-hosts", &olga, None, Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Her session ends when she is disabled: 401 from then on.
    assert_eq!(
        status(
            &state,
            "PUT",
            "/api/v1/tenants/Ops/roles/boss",
            &t,
            json!({"permissions": ["company.manage"]})
        )
        .await,
        StatusCode::OK
    );
    let body = json!({"email": "oscar@ops.example", "password": "correct-horse-battery", "roles": ["boss"]});
    assert_eq!(
        status(&state, "POST", "/api/v1/tenants/Ops/users", &t, body).await,
        StatusCode::CREATED
    );
    assert_eq!(
        status(
            &state,
            "PATCH",
            "/api/v1/tenants/Ops/users/olga@ops.example",
            &t,
            json!({"disabled": true})
        )
        .await,
        StatusCode::OK
    );
    let r = as_person(&state, "GET", "/api/v1/pam-hosts", &olga, None, Value::Null).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Without a session or a token: 401.
    let r = call(&state, crate::testing::get("/api/v1/tenants/Acme/users")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn credentials_and_second_factors_are_changed_only_by_those_holding_more() {
    use padlock_policy::decision::Acr;
    let (state, _, t) = company().await;
    let on = json!({"enabled": true, "methods": ["sms-email", "totp"]});
    assert_eq!(
        status(&state, "PUT", "/api/v1/tenants/Acme/two-factor", &t, on).await,
        StatusCode::OK
    );
    let (company_only, _) = account(&state, &t, &["company.manage"]).await;
    let (users_only, _) = account(&state, &t, &["users.manage"]).await;
    // company.manage alone cannot touch the second factor of Ann, who holds every permission.
    for (method, uri, body) in [
        (
            "PUT",
            format!("{ANN}/two-factor"),
            json!({"preferred_method": "sms-email"}),
        ),
        ("DELETE", format!("{ANN}/totp"), Value::Null),
        ("POST", format!("{ANN}/totp/enroll"), Value::Null),
        ("PUT", format!("{ANN}/duo"), json!({"username": "ann"})),
        ("POST", format!("{ANN}/unlock"), Value::Null),
    ] {
        assert_eq!(
            status(&state, method, &uri, &company_only, body).await,
            StatusCode::FORBIDDEN,
            "{method} {uri}"
        );
    }
    // ... but can Bob's.
    assert_eq!(
        status(
            &state,
            "POST",
            &format!("{BOB}/totp/enroll"),
            &company_only,
            Value::Null
        )
        .await,
        StatusCode::CREATED
    );
    // Where codes go (email, mobile) is part of the second factor: not for users.manage.
    for change in [
        json!({"mobile": "+15551234567"}),
        json!({"email": "robert@acme.example"}),
    ] {
        assert_eq!(
            status(&state, "PATCH", BOB, &users_only, change.clone()).await,
            StatusCode::FORBIDDEN,
            "{change}"
        );
    }
    assert_eq!(
        status(
            &state,
            "PATCH",
            BOB,
            &users_only,
            json!({"unix_name": "bobby"})
        )
        .await,
        StatusCode::OK
    );
    // Rotating an API account's secret hands over what it holds.
    let body = json!({"name": "full", "scopes": ["tenant.admin"]});
    let r = call(
        &state,
        json_request("POST", "/api/v1/tenants/Acme/api-accounts", &t, &body),
    )
    .await;
    let full = r.json()["client_id"].as_str().unwrap().to_owned();
    let rotate = format!("/api/v1/tenants/Acme/api-accounts/{full}/rotate");
    assert_eq!(
        status(&state, "POST", &rotate, &company_only, Value::Null).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&state, "POST", &rotate, &t, Value::Null).await,
        StatusCode::OK
    );
    // A role holding more than the caller cannot be emptied or deleted by them.
    assert_eq!(
        status(
            &state,
            "PUT",
            "/api/v1/tenants/Acme/roles/auditor",
            &t,
            json!({"permissions": ["audit.read"]})
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &state,
            "PUT",
            "/api/v1/tenants/Acme/roles/auditor",
            &company_only,
            json!({"permissions": []})
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(
            &state,
            "DELETE",
            "/api/v1/tenants/Acme/roles/auditor",
            &company_only,
            Value::Null
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // Nobody changes their own credentials or second factor through the API: the padlock page
    // asks for a fresh second factor first.
    let (ann, _, csrf) = signed_in_at(&state, "ann@acme.example", Acr::TwoFactor).await;
    for (method, uri, body) in [
        ("POST", format!("{ANN}/set-password-link"), Value::Null),
        (
            "PUT",
            format!("{ANN}/two-factor"),
            json!({"preferred_method": "sms-email"}),
        ),
        ("POST", format!("{ANN}/totp/enroll"), Value::Null),
        ("PATCH", ANN.to_owned(), json!({"mobile": "+15550001111"})),
        (
            "PUT",
            format!("{ANN}/api-account"),
            json!({"scopes": ["openid"]}),
        ),
    ] {
        let r = as_person(&state, method, &uri, &ann, Some(&csrf), body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {uri}: {}",
            r.body
        );
        assert!(r.body.contains("/account/security"), "{}", r.body);
    }
    // The same actions on Bob are hers to take.
    let r = as_person(
        &state,
        "POST",
        &format!("{BOB}/set-password-link"),
        &ann,
        Some(&csrf),
        Value::Null,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

//! Oneshot tests of `/token` (client credentials), client authentication and `/jwks`.

use crate::crypto::sha256;
use crate::domain::{ClientKind, Outcome, SigningAlg};
use crate::jwt::{self, TYP_ACCESS};
use crate::oauth::tokens::AccessClaims;
use crate::state::test_state;
use crate::testing::{call, get, json_request, operator, post_form, post_form_basic, token};
use axum::http::{StatusCode, header};

async fn api_account(
    state: &crate::state::AppState,
    op_token: &str,
    scopes: &[&str],
) -> (String, String, String) {
    let r = call(
        state,
        json_request(
            "POST",
            "/api/v1/tenants",
            op_token,
            &serde_json::json!({"name": "Acme"}),
        ),
    )
    .await;
    let tenant = if r.status == StatusCode::CREATED {
        r.json()["id"].as_str().unwrap().to_owned()
    } else {
        "Acme".to_owned()
    };
    let r = call(
        state,
        json_request(
            "POST",
            &format!("/api/v1/tenants/{tenant}/api-accounts"),
            op_token,
            &serde_json::json!({"name": "backup job", "scopes": scopes}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
        v["user_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn operator_gets_an_admin_access_token() {
    let (state, _) = test_state().await;
    let (id, secret) = operator(&state).await;
    let r = call(
        &state,
        post_form_basic("/token", &id, &secret, "grant_type=client_credentials"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(v["scope"], "padlock.admin");
    let claims: AccessClaims = jwt::verify(
        &state.keys.get(),
        v["access_token"].as_str().unwrap(),
        TYP_ACCESS,
    )
    .unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!(claims.iss, "http://padlock.test");
    assert!(claims.has_scope("padlock.admin"));
    // ES256 by default.
    let header = v["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
}

#[tokio::test]
async fn client_secret_post_works_and_both_methods_at_once_do_not() {
    let (state, _) = test_state().await;
    let (id, secret) = operator(&state).await;
    let r = call(
        &state,
        post_form(
            "/token",
            format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &state,
        post_form_basic(
            "/token",
            &id,
            &secret,
            format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_request");
}

/// DESIGN.md §9.2: an API account gets tokens by client credentials, only with its scopes.
#[tokio::test]
async fn api_account_gets_only_its_scopes() {
    let (state, _) = test_state().await;
    let (op, op_secret) = operator(&state).await;
    let op_token = token(&state, &op, &op_secret).await;
    let (id, secret, user) = api_account(&state, &op_token, &["dns.read", "dns.write"]).await;

    let r = call(
        &state,
        post_form_basic("/token", &id, &secret, "grant_type=client_credentials"),
    )
    .await;
    let claims: AccessClaims = jwt::verify(
        &state.keys.get(),
        r.json()["access_token"].as_str().unwrap(),
        TYP_ACCESS,
    )
    .unwrap();
    assert_eq!(claims.scope, "dns.read dns.write");
    assert_eq!(claims.sub, user);
    assert!(claims.tenant.is_some());

    let r = call(
        &state,
        post_form_basic(
            "/token",
            &id,
            &secret,
            "grant_type=client_credentials&scope=dns.read",
        ),
    )
    .await;
    assert_eq!(r.json()["scope"], "dns.read");
    for extra in ["padlock.admin", "dns.read%20billing.write", "tenant.admin"] {
        let r = call(
            &state,
            post_form_basic(
                "/token",
                &id,
                &secret,
                format!("grant_type=client_credentials&scope={extra}"),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}");
        assert_eq!(r.json()["error"], "invalid_scope", "{extra}");
    }
    // Its token cannot use the admin API for things outside its scopes.
    let t = token(&state, &id, &secret).await;
    let r = call(
        &state,
        json_request("GET", "/api/v1/tenants", &t, &serde_json::Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Disabled: no more tokens.
    let mut u = state
        .store
        .get_user(&crate::secret::UserId::from_string(user))
        .await
        .unwrap()
        .unwrap();
    u.disabled = true;
    state.store.update_user(&u).await.unwrap();
    let r = call(
        &state,
        post_form_basic("/token", &id, &secret, "grant_type=client_credentials"),
    )
    .await;
    assert_eq!(r.json()["error"], "unauthorized_client");
}

#[tokio::test]
async fn unknown_client_and_wrong_secret_get_the_same_answer() {
    let (state, _) = test_state().await;
    let (id, _) = operator(&state).await;
    let wrong = call(
        &state,
        post_form_basic(
            "/token",
            &id,
            "not-the-secret",
            "grant_type=client_credentials",
        ),
    )
    .await;
    let unknown = call(
        &state,
        post_form_basic(
            "/token",
            "c_nobody",
            "not-the-secret",
            "grant_type=client_credentials",
        ),
    )
    .await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"padlock\""
        );
    }
    assert_eq!(wrong.body, unknown.body);
    let none = call(&state, post_form("/token", "grant_type=client_credentials")).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let failures = state.store.list_audit(None, None, 10).await.unwrap();
    assert_eq!(
        failures
            .iter()
            .filter(|e| e.action == "client.authenticate" && e.outcome == Outcome::Failure)
            .count(),
        3
    );
}

#[tokio::test]
async fn malformed_token_requests_get_rfc6749_errors() {
    let (state, _) = test_state().await;
    let (id, secret) = operator(&state).await;
    for (body, error) in [
        ("", "invalid_request"),
        (
            "grant_type=password&username=a&password=b",
            "unsupported_grant_type",
        ),
        ("grant_type=implicit", "unsupported_grant_type"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&scope=a&scope=b",
            "invalid_request",
        ),
    ] {
        let r = call(&state, post_form_basic("/token", &id, &secret, body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.json()["error"], error, "{body}");
    }
    let json = axum::http::Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    assert_eq!(call(&state, json).await.json()["error"], "invalid_request");
    let big = format!(
        "grant_type=client_credentials&x={}",
        "a".repeat(crate::server::MAX_BODY_BYTES)
    );
    let r = call(&state, post_form_basic("/token", &id, &secret, big)).await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        r.status
    );
    // A relying panel may not use client credentials.
    let panel = crate::domain::Client {
        id: crate::secret::ClientId::generate(),
        name: "panel".into(),
        kind: ClientKind::RelyingPanel {
            redirect_uris: vec!["https://p/cb".into()],
            post_logout_redirect_uris: vec![],
            public: false,
            id_token_alg: SigningAlg::RS256,
        },
        secret_sha256: Some(hex::encode(sha256(b"panel-secret"))),
        scopes: vec!["openid".into()],
        tenant: None,
        created_at: 0,
    };
    state.store.put_client(&panel).await.unwrap();
    let r = call(
        &state,
        post_form_basic(
            "/token",
            panel.id.as_str(),
            "panel-secret",
            "grant_type=client_credentials",
        ),
    )
    .await;
    assert_eq!(r.json()["error"], "unauthorized_client");
}

#[tokio::test]
async fn jwks_publishes_every_key_as_a_jwk() {
    let (state, _) = test_state().await;
    let r = call(&state, get("/jwks")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/jwk-set+json");
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs.len(), 3);
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&alg));
    }
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    assert_eq!(rsa["e"], "AQAB");
    assert!(rsa["n"].as_str().unwrap().len() >= 342, "2048-bit modulus");
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "no private parts"
    );
}

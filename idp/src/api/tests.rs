//! Oneshot tests of the admin API: authorization, validation, conflicts, key rotation.

use crate::crypto::sha256;
use crate::state::test_state;
use crate::testing::{call, get, json_request, operator, token};
use axum::http::{StatusCode, header};
use serde_json::{Value, json};

async fn admin() -> (
    crate::state::AppState,
    std::sync::Arc<crate::clock::ManualClock>,
    String,
) {
    let (state, clock) = test_state().await;
    let (id, secret) = operator(&state).await;
    let t = token(&state, &id, &secret).await;
    (state, clock, t)
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let (state, clock, t) = admin().await;
    // No token at all: a challenge without an error code (RFC 6750 §3.1).
    let r = call(&state, get("/api/v1/tenants")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"padlock\""
    );
    assert_eq!(r.json()["error"], "authentication_required");
    let r = call(
        &state,
        json_request("GET", "/api/v1/tenants", "not.a.token", &Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"padlock\", error=\"invalid_token\""
    );
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(
        call(
            &state,
            json_request("GET", "/api/v1/tenants", &t, &Value::Null)
        )
        .await
        .status,
        StatusCode::OK
    );
    clock.advance(601);
    assert_eq!(
        call(
            &state,
            json_request("GET", "/api/v1/tenants", &t, &Value::Null)
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
}

#[tokio::test]
async fn companies_and_users_are_validated() {
    let (state, _, t) = admin().await;
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants",
            &t,
            &json!({"name": "Acme Hosting"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let acme = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &state,
            json_request(
                "POST",
                "/api/v1/tenants",
                &t,
                &json!({"name": "acme hosting"})
            )
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(
            &state,
            json_request("POST", "/api/v1/tenants", &t, &json!({"name": " "}))
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants",
            &t,
            &json!({"name": "X", "extra": 1}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_request");

    let users = "/api/v1/tenants/Acme%20Hosting/users";
    let good = json!({"email": "ann@acme.example", "password": "correct-horse-battery", "mobile": "+1 555 123 4567", "roles": ["admin"]});
    let r = call(&state, json_request("POST", users, &t, &good)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        call(&state, json_request("POST", users, &t, &good))
            .await
            .status,
        StatusCode::CONFLICT
    );
    for (patch, field) in [
        (json!({"email": "nope"}), "email"),
        (json!({"password": "short"}), "password"),
        (json!({"mobile": "555-1234"}), "mobile"),
        (json!({"roles": ["has space"]}), "roles"),
        (json!({"unix_name": "Root!"}), "unix_name"),
    ] {
        let mut body = json!({"email": "bob@acme.example", "password": "correct-horse-battery"});
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = call(&state, json_request("POST", users, &t, &body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(
            r.json()["message"].as_str().unwrap().starts_with(field),
            "{}",
            r.body
        );
    }
    let list = call(
        &state,
        json_request(
            "GET",
            &format!("/api/v1/tenants/{acme}/users"),
            &t,
            &Value::Null,
        ),
    )
    .await
    .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["mobile"], "+15551234567");
    assert_eq!(list[0]["unix_name"], "ann");
    assert!(
        !list.to_string().contains("argon2"),
        "no password hashes in answers"
    );
    assert_eq!(
        call(
            &state,
            json_request("GET", "/api/v1/tenants/Nope/users", &t, &Value::Null)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tenant_admin_scope_is_limited_to_its_company() {
    let (state, _, t) = admin().await;
    for name in ["A", "B"] {
        call(
            &state,
            json_request("POST", "/api/v1/tenants", &t, &json!({"name": name})),
        )
        .await;
    }
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants/A/api-accounts",
            &t,
            &json!({"name": "automation", "scopes": ["tenant.admin"]}),
        ),
    )
    .await;
    let v = r.json();
    let a_token = token(
        &state,
        v["client_id"].as_str().unwrap(),
        v["client_secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        call(
            &state,
            json_request("GET", "/api/v1/tenants/A/users", &a_token, &Value::Null)
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &state,
            json_request("GET", "/api/v1/tenants/B/users", &a_token, &Value::Null)
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &state,
            json_request("POST", "/api/v1/tenants", &a_token, &json!({"name": "C"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &state,
            json_request("POST", "/api/v1/keys/rotate", &a_token, &json!({}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants/A/api-accounts",
            &t,
            &json!({"name": "x", "scopes": ["padlock.admin"]}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an API account can never become an operator"
    );
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants/A/api-accounts",
            &t,
            &json!({"name": "x", "scopes": []}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn relying_panels_get_a_generated_secret_stored_as_sha256() {
    let (state, _, t) = admin().await;
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/clients",
            &t,
            &json!({"name": "Panel", "redirect_uris": ["https://panel.example.com/cb"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    let secret = v["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43);
    let stored = state
        .store
        .get_client(&crate::secret::ClientId::from_string(
            v["client_id"].as_str().unwrap().into(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.secret_sha256.as_deref(),
        Some(hex::encode(sha256(secret.as_bytes())).as_str())
    );
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/clients",
            &t,
            &json!({"name": "SPA", "public": true, "redirect_uris": ["http://localhost:3000/cb"]}),
        ),
    )
    .await;
    assert!(r.json().get("client_secret").is_none());
    for bad in [
        json!([]),
        json!(["/relative"]),
        json!(["https://p/cb#frag"]),
        json!(["javascript:alert(1)"]),
    ] {
        let r = call(
            &state,
            json_request(
                "POST",
                "/api/v1/clients",
                &t,
                &json!({"name": "P", "redirect_uris": bad}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_publishes_both() {
    let (state, _, t) = admin().await;
    let before: Value = call(&state, get("/jwks")).await.json();
    let r = call(
        &state,
        json_request("POST", "/api/v1/keys/rotate", &t, &json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let after: Value = call(&state, get("/jwks")).await.json();
    assert_eq!(after["keys"].as_array().unwrap().len(), 6);
    for k in before["keys"].as_array().unwrap() {
        assert!(
            after["keys"].as_array().unwrap().contains(k),
            "old key still published"
        );
    }
    assert_eq!(
        call(
            &state,
            json_request("GET", "/api/v1/tenants", &t, &Value::Null)
        )
        .await
        .status,
        StatusCode::OK,
        "token signed before rotation"
    );
    let audit = call(
        &state,
        json_request("GET", "/api/v1/audit", &t, &Value::Null),
    )
    .await
    .json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "keys.rotate")
    );
}

#[tokio::test]
async fn openapi_document_lists_the_paths() {
    let (state, _) = test_state().await;
    let doc = call(&state, get("/api/v1/openapi.json")).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for p in [
        "/tenants",
        "/tenants/{tenant}/users",
        "/tenants/{tenant}/api-accounts",
        "/tenants/{tenant}/pam-hosts",
        "/pam-hosts",
        "/pam-hosts/{host}",
        "/clients",
        "/keys/rotate",
        "/audit",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p}");
    }
}

#[tokio::test]
async fn company_two_factor_switch_is_validated_audited_and_sealed() {
    let (state, _, t) = admin().await;
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Other"})),
    )
    .await;
    let url = "/api/v1/tenants/Acme/two-factor";
    let r = call(
        &state,
        json_request("PUT", url, &t, &json!({"enabled": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["two_factor"]["enabled"], true);
    assert_eq!(
        r.json()["two_factor"]["methods"],
        json!({"sms_email": true, "totp": false, "duo": false}),
        "SMS/Email on by default"
    );
    for (body, field) in [
        (json!({"enabled": true, "methods": []}), "two_factor"),
        (json!({"enabled": true, "methods": ["sms"]}), "methods"),
        (json!({"enabled": true, "methods": ["duo"]}), "two_factor"),
        (json!({"enabled": true, "totp_skew_steps": 9}), "two_factor"),
        (
            json!({"enabled": true, "duo": {"ikey": "short", "skey": "x", "api_host": "h"}}),
            "duo.ikey",
        ),
    ] {
        let r = call(&state, json_request("PUT", url, &t, &body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            r.json()["message"].as_str().unwrap().starts_with(field),
            "{}",
            r.body
        );
    }
    let skey = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
    let duo = json!({"enabled": true, "methods": ["sms-email", "totp", "duo"], "duo": {"ikey": "DIWJ8X6AEYOR5OMC6TQ1", "skey": skey, "api_host": "api-xxxxxxxx.duosecurity.com"}});
    let r = call(&state, json_request("PUT", url, &t, &duo)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains(skey), "the secret key is never sent back");
    let stored = state
        .store
        .find_tenant_by_name("Acme")
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.duo.unwrap().skey;
    assert!(
        !serde_json::to_string(&sealed).unwrap().contains(skey),
        "sealed at rest"
    );
    assert_eq!(
        state
            .master
            .open(super::two_factor::DUO_SKEY_PURPOSE, &sealed)
            .unwrap()
            .as_slice(),
        skey.as_bytes()
    );

    let r = call(
        &state,
        json_request("PUT", url, &t, &json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.json()["two_factor"]["enabled"], false);
    let audit = state
        .store
        .list_audit(Some(&stored.id), None, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "tenant.2fa.enable",
            "tenant.2fa.update",
            "tenant.2fa.disable"
        ]
    );
    assert!(
        audit.iter().all(|e| e.actor.starts_with("c_")),
        "who did it is recorded"
    );

    // A company administrator manages its own company only.
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants/Other/api-accounts",
            &t,
            &json!({"name": "a", "scopes": ["tenant.admin"]}),
        ),
    )
    .await
    .json();
    let other = token(
        &state,
        r["client_id"].as_str().unwrap(),
        r["client_secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        call(
            &state,
            json_request("PUT", url, &other, &json!({"enabled": false}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &state,
            json_request(
                "PUT",
                "/api/v1/tenants/Other/two-factor",
                &other,
                &json!({"enabled": true})
            )
        )
        .await
        .status,
        StatusCode::OK
    );
}

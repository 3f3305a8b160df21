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
    // Another company answers exactly as a missing one: nothing tells the caller it exists.
    for (method, what) in [
        ("GET", "users"),
        ("POST", "api-accounts"),
        ("PUT", "two-factor"),
    ] {
        let body = json!({"name": "x", "scopes": ["tenant.admin"]});
        let body = if what == "two-factor" {
            json!({"enabled": true})
        } else if method == "GET" {
            Value::Null
        } else {
            body
        };
        let other = call(
            &state,
            json_request(
                method,
                &format!("/api/v1/tenants/B/{what}"),
                &a_token,
                &body,
            ),
        )
        .await;
        let missing = call(
            &state,
            json_request(
                method,
                &format!("/api/v1/tenants/Z/{what}"),
                &a_token,
                &body,
            ),
        )
        .await;
        assert_eq!(
            other.status,
            StatusCode::NOT_FOUND,
            "{what}: {}",
            other.body
        );
        assert_eq!(
            other.body.replace("`B`", "`Z`"),
            missing.body,
            "{what}: the same answer as for a company that does not exist"
        );
    }
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

/// Every operation of the API, as the router serves it.
const OPERATIONS: [(&str, &str); 31] = [
    ("get", "/tenants"),
    ("post", "/tenants"),
    ("get", "/tenants/{tenant}"),
    ("put", "/tenants/{tenant}/two-factor"),
    ("get", "/tenants/{tenant}/users"),
    ("post", "/tenants/{tenant}/users"),
    ("patch", "/tenants/{tenant}/users/{user}"),
    ("post", "/tenants/{tenant}/users/{user}/unlock"),
    ("put", "/tenants/{tenant}/users/{user}/two-factor"),
    ("put", "/tenants/{tenant}/users/{user}/totp"),
    ("delete", "/tenants/{tenant}/users/{user}/totp"),
    ("post", "/tenants/{tenant}/users/{user}/totp/enroll"),
    ("post", "/tenants/{tenant}/users/{user}/set-password-link"),
    ("put", "/tenants/{tenant}/users/{user}/duo"),
    ("delete", "/tenants/{tenant}/users/{user}/duo"),
    ("post", "/tenants/{tenant}/users/{user}/duo/enroll"),
    ("post", "/tenants/{tenant}/users/{user}/duo/enroll-status"),
    ("put", "/tenants/{tenant}/users/{user}/api-account"),
    ("delete", "/tenants/{tenant}/users/{user}/api-account"),
    ("post", "/tenants/{tenant}/api-accounts"),
    ("post", "/tenants/{tenant}/api-accounts/{client}/rotate"),
    ("get", "/tenants/{tenant}/roles"),
    ("put", "/tenants/{tenant}/roles/{role}"),
    ("delete", "/tenants/{tenant}/roles/{role}"),
    ("post", "/tenants/{tenant}/pam-hosts"),
    ("get", "/pam-hosts"),
    ("delete", "/pam-hosts/{host}"),
    ("post", "/clients"),
    ("post", "/keys/rotate"),
    ("get", "/audit"),
    ("get", "/audit/export"),
];

/// The OpenAPI document is generated from the handlers the router serves: it lists exactly the
/// API's operations (a route missing from it, or one it names that the router does not serve,
/// fails here), and each documented operation exists and is guarded (401 without credentials,
/// never 404 or 405, while an unknown path is 404).
#[tokio::test]
async fn openapi_document_is_generated_and_names_every_operation() {
    let (state, _) = test_state().await;
    let r = call(&state, get("/api/v1/openapi.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| matches!(m.as_str(), "get" | "post" | "put" | "patch" | "delete"))
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    for (method, path) in OPERATIONS {
        let uri = format!("/api/v1{path}")
            .replace("{tenant}", "Acme")
            .replace("{user}", "ann@acme.example")
            .replace("{role}", "r")
            .replace("{client}", "c_x")
            .replace("{host}", "c_h");
        let req = axum::http::Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let r = call(&state, req).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri}: {}",
            r.body
        );
        let op = &doc["paths"][path][method];
        assert!(
            !op["summary"].as_str().unwrap_or("").is_empty(),
            "{method} {path}: a summary"
        );
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path}: 401 documented"
        );
        // Every `{name}` of the path is a documented path parameter.
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            assert!(
                names.contains(&name),
                "{method} {path}: parameter {name} in {names:?}"
            );
        }
    }
    assert_eq!(
        call(&state, get("/api/v1/nonesuch")).await.status,
        StatusCode::NOT_FOUND
    );
    // Bodies are described by schemas generated from the request types.
    let body = &doc["paths"]["/tenants/{tenant}/users"]["post"]["requestBody"];
    assert!(body.is_object(), "{body}");
    assert!(doc["components"]["schemas"]["NewUser"]["properties"]["email"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
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
    let keys = |host: &str| json!({"enabled": true, "methods": ["sms-email", "totp", "duo"], "duo": {"ikey": "DIWJ8X6AEYOR5OMC6TQ1", "skey": skey, "api_host": host}});
    // Only a plain Duo API host name: the keys are never sent anywhere else.
    for host in [
        "https://api-xxxxxxxx.duosecurity.com",
        "api-xxxxxxxx.duosecurity.com:443",
        "api-xxxxxxxx.duosecurity.com.evil.example",
        "evil.example",
        "api-.duosecurity.com",
        "api-xx/x.duosecurity.com",
    ] {
        let r = call(&state, json_request("PUT", url, &t, &keys(host))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{host}");
        assert!(r.body.contains("duo.api_host"), "{}", r.body);
    }
    // Duo unreachable (nothing listens at the test state's Duo): nothing saved.
    let r = call(
        &state,
        json_request("PUT", url, &t, &keys("api-xxxxxxxx.duosecurity.com")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(!r.body.contains(skey), "{}", r.body);
    let duo_of = |state: &crate::state::AppState| {
        let state = state.clone();
        async move {
            state
                .store
                .find_tenant_by_name("Acme")
                .await
                .unwrap()
                .unwrap()
                .duo
        }
    };
    assert!(
        duo_of(&state).await.is_none(),
        "nothing saved while Duo is unreachable"
    );
    // Duo refuses the keys: its message, nothing saved.
    let refused = crate::testing::HttpPeer::start(
        vec![(
            401,
            r#"{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}"#,
        )],
        0,
    );
    let mut state = state;
    state.duo = std::sync::Arc::new(
        crate::duo::Duo::new(
            Some(refused.url.clone()),
            std::time::Duration::from_secs(5),
            60,
        )
        .unwrap(),
    );
    let r = call(
        &state,
        json_request("PUT", url, &t, &keys("api-xxxxxxxx.duosecurity.com")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body
            .contains("Duo refused these keys: Invalid signature in request credentials"),
        "{}",
        r.body
    );
    assert!(
        duo_of(&state).await.is_none(),
        "nothing saved when Duo refuses the keys"
    );
    // Duo accepts them (`/auth/v2/check`): saved, sealed, never sent back.
    let accepted = crate::testing::HttpPeer::start(
        vec![(200, r#"{"stat":"OK","response":{"time":1357020061}}"#)],
        0,
    );
    state.duo = std::sync::Arc::new(
        crate::duo::Duo::new(
            Some(accepted.url.clone()),
            std::time::Duration::from_secs(5),
            60,
        )
        .unwrap(),
    );
    let r = call(
        &state,
        json_request("PUT", url, &t, &keys("API-xxxxxxxx.duosecurity.com")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json()["duo"]["api_host"],
        "api-xxxxxxxx.duosecurity.com",
        "{}",
        r.body
    );
    assert_eq!(
        r.json()["duo"]["ikey"],
        "DIWJ8X6AEYOR5OMC6TQ1",
        "{}",
        r.body
    );
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
        StatusCode::NOT_FOUND,
        "another company is answered as a missing one"
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

#[tokio::test]
async fn an_administrator_enrols_or_links_a_users_duo_and_removes_it() {
    let (mut state, _, t) = admin().await;
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
    let ok = |body: &'static str| (200, body);
    let duo = crate::testing::HttpPeer::start(
        vec![
            ok(r#"{"stat":"OK","response":{"time":1}}"#),
            ok(
                r#"{"stat":"OK","response":{"result":"enroll","status_msg":"Enroll an authentication device."}}"#,
            ),
            ok(r#"{"stat":"OK","response":{"result":"auth","status_msg":"Account is active"}}"#),
            ok(
                r#"{"stat":"OK","response":{"activation_barcode":"https://api-xxxxxxxx.duosecurity.com/frame/qr?value=x","activation_code":"duo://abc","activation_url":"https://m-xxxxxxxx.duosecurity.com/activate/abc","expiration":1900000000,"user_id":"DU1","username":"bob@acme.example"}}"#,
            ),
            ok(r#"{"stat":"OK","response":"waiting"}"#),
            ok(r#"{"stat":"OK","response":"success"}"#),
        ],
        0,
    );
    state.duo = std::sync::Arc::new(
        crate::duo::Duo::new(Some(duo.url.clone()), std::time::Duration::from_secs(5), 60).unwrap(),
    );
    let keys = json!({"enabled": true, "methods": ["sms-email", "duo"], "duo": {"ikey": "DIWJ8X6AEYOR5OMC6TQ1", "skey": "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep", "api_host": "api-xxxxxxxx.duosecurity.com"}});
    let r = call(
        &state,
        json_request("PUT", "/api/v1/tenants/Acme/two-factor", &t, &keys),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for email in ["ann@acme.example", "bob@acme.example"] {
        let body = json!({"email": email, "password": "correct-horse-battery"});
        let r = call(
            &state,
            json_request("POST", "/api/v1/tenants/Acme/users", &t, &body),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let ann = "/api/v1/tenants/Acme/users/ann@acme.example/duo";
    // Linking a name Duo cannot authenticate is refused; one it can is saved and chosen.
    let link = json!({"username": "ann.duo"});
    let r = call(&state, json_request("PUT", ann, &t, &link)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = call(&state, json_request("PUT", ann, &t, &link)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["duo_username"], "ann.duo");
    assert_eq!(r.json()["preferred_method"], "duo");
    // A new Duo user: nothing saved until Duo says the phone is active.
    let bob = "/api/v1/tenants/Acme/users/bob@acme.example/duo";
    let r = call(
        &state,
        json_request("POST", &format!("{bob}/enroll"), &t, &Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let activation = r.json();
    assert_eq!(
        activation["activation_url"],
        "https://m-xxxxxxxx.duosecurity.com/activate/abc"
    );
    let status =
        json!({"user_id": activation["user_id"], "activation_code": activation["activation_code"]});
    let r = call(
        &state,
        json_request("POST", &format!("{bob}/enroll-status"), &t, &status),
    )
    .await;
    assert_eq!(r.json()["status"], "waiting", "{}", r.body);
    assert_eq!(r.json()["user"]["duo_username"], Value::Null);
    let r = call(
        &state,
        json_request("POST", &format!("{bob}/enroll-status"), &t, &status),
    )
    .await;
    assert_eq!(r.json()["status"], "success", "{}", r.body);
    assert_eq!(r.json()["user"]["duo_username"], "bob@acme.example");
    assert_eq!(r.json()["user"]["preferred_method"], "duo");
    assert_eq!(duo.requests.load(std::sync::atomic::Ordering::SeqCst), 6);
    // Removed: the user falls back to the company's other method.
    let r = call(&state, json_request("DELETE", ann, &t, &Value::Null)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["duo_username"], Value::Null);
    assert_eq!(r.json()["preferred_method"], Value::Null);
    let actions: Vec<String> = state
        .store
        .list_audit(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "user.duo.link",
        "user.duo.enroll",
        "user.duo.enrolled",
        "user.duo.remove",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn an_administrator_unlocks_a_locked_user_who_is_told_by_email() {
    let (mut state, clock, t) = admin().await;
    let outbox = crate::state::test_outbox();
    state.delivery = std::sync::Arc::new(
        crate::delivery::Delivery::from_config(&crate::config::Config::default(), &outbox).unwrap(),
    );
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
    let body = json!({"email": "ann@acme.example", "password": "correct-horse-battery"});
    let r = call(
        &state,
        json_request("POST", "/api/v1/tenants/Acme/users", &t, &body),
    )
    .await;
    let id = crate::secret::UserId::from_string(r.json()["id"].as_str().unwrap().to_owned());
    // Locked: ten failed second factors, and a throttled password.
    let policy = state.limits.lockout;
    for _ in 0..policy.max_failures() {
        let _ = state
            .store
            .admit_second_factor_attempt(&id, crate::clock::Clock::now(clock.as_ref()), &policy)
            .await
            .unwrap();
    }
    for _ in 0..10 {
        let _ = state
            .store
            .admit_password_attempt(
                "ann@acme.example",
                crate::clock::Clock::now(clock.as_ref()),
                &state.limits.passwords,
            )
            .await
            .unwrap();
    }
    let locked = |state: &crate::state::AppState| {
        let (state, id) = (state.clone(), id.clone());
        async move {
            state
                .store
                .lockout_state(&id)
                .await
                .unwrap()
                .locked_until(state.clock.now(), &state.limits.lockout)
                .is_some()
        }
    };
    assert!(locked(&state).await);
    let url = "/api/v1/tenants/Acme/users/ann@acme.example/unlock";
    let r = call(&state, json_request("POST", url, &t, &Value::Null)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!locked(&state).await);
    let throttle = state
        .store
        .admit_password_attempt(
            "ann@acme.example",
            crate::clock::Clock::now(clock.as_ref()),
            &state.limits.passwords,
        )
        .await
        .unwrap();
    assert_eq!(throttle, padlock_policy::throttle::Throttle::Admitted);
    let audit = state.store.list_audit(None, None, 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.unlock" && e.target == "ann@acme.example")
    );
    // The notice goes out in the background.
    let told = crate::testing::notices(&outbox, "sign-in unlocked", 1).await;
    assert!(told[0].contains("To: ann@acme.example"), "{told:?}");
    // Another company's user, and a missing one: 404.
    let r = call(
        &state,
        json_request(
            "POST",
            "/api/v1/tenants/Acme/users/nobody@acme.example/unlock",
            &t,
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_administrator_changes_a_users_mobile_and_disables_them_but_not_the_last_admin() {
    let (state, _, t) = admin().await;
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
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
    let bob = "/api/v1/tenants/Acme/users/bob@acme.example";
    let r = call(
        &state,
        json_request("PATCH", bob, &t, &json!({"mobile": "+1 555 123 4567"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["mobile"], "+15551234567");
    let r = call(
        &state,
        json_request("PATCH", bob, &t, &json!({"mobile": "12"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = call(
        &state,
        json_request("PATCH", bob, &t, &json!({"mobile": null, "disabled": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["mobile"], Value::Null);
    assert_eq!(r.json()["disabled"], true);
    // Ann is the only enabled administrator: she cannot be disabled, and nothing changes.
    let ann = "/api/v1/tenants/Acme/users/ann@acme.example";
    let r = call(
        &state,
        json_request(
            "PATCH",
            ann,
            &t,
            &json!({"disabled": true, "mobile": "+15550001111"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("last enabled person"), "{}", r.body);
    let stored = state
        .store
        .find_user_by_email("ann@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.disabled && stored.mobile.is_none());
    // Re-enabled, Bob signs in again; the changes are audited.
    let r = call(
        &state,
        json_request("PATCH", bob, &t, &json!({"disabled": false})),
    )
    .await;
    assert_eq!(r.json()["disabled"], false, "{}", r.body);
    let actions: Vec<String> = state
        .store
        .list_audit(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in ["user.update", "user.disable", "user.enable"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn an_administrator_chooses_a_users_method_and_resets_their_authenticator_app() {
    let (mut state, _, t) = admin().await;
    let outbox = crate::state::test_outbox();
    state.delivery = std::sync::Arc::new(
        crate::delivery::Delivery::from_config(&crate::config::Config::default(), &outbox).unwrap(),
    );
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
    let on = json!({"enabled": true, "methods": ["sms-email", "totp"]});
    call(
        &state,
        json_request("PUT", "/api/v1/tenants/Acme/two-factor", &t, &on),
    )
    .await;
    let body = json!({"email": "ann@acme.example", "password": "correct-horse-battery"});
    call(
        &state,
        json_request("POST", "/api/v1/tenants/Acme/users", &t, &body),
    )
    .await;
    let url = "/api/v1/tenants/Acme/users/ann@acme.example/two-factor";
    let choose = |m: &str| json!({ "preferred_method": m });
    // Not enrolled in TOTP, and Duo not offered: refused.
    for m in ["totp", "duo", "sms"] {
        let r = call(&state, json_request("PUT", url, &t, &choose(m))).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{m}: {}",
            r.body
        );
    }
    // Ann enrols an app; the administrator makes it her method, then resets it (a lost phone).
    let mut ann = state
        .store
        .find_user_by_email("ann@acme.example")
        .await
        .unwrap()
        .unwrap();
    ann.totp = Some(crate::domain::TotpEnrolment {
        seed: state
            .master
            .seal(crate::domain::TOTP_SEED_PURPOSE, b"12345678901234567890")
            .unwrap(),
        enrolled_at: 1,
    });
    state.store.update_user(&ann).await.unwrap();
    let r = call(&state, json_request("PUT", url, &t, &choose("totp"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["preferred_method"], "totp");
    assert_eq!(r.json()["totp_enrolled"], true);
    let reset = "/api/v1/tenants/Acme/users/ann@acme.example/totp";
    let r = call(&state, json_request("DELETE", reset, &t, &Value::Null)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["totp_enrolled"], false);
    assert_eq!(r.json()["preferred_method"], Value::Null);
    let actions: Vec<String> = state
        .store
        .list_audit(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.iter().any(|a| a == "user.2fa"), "{actions:?}");
    assert!(
        actions.iter().any(|a| a == "user.totp.reset"),
        "{actions:?}"
    );
    // Ann is told each time, the last saying she now gets codes by SMS or email.
    let told = crate::testing::notices(&outbox, "your second factor was changed", 2).await;
    assert!(
        told.iter().any(|t| t.contains("a code by SMS or email")),
        "{told:?}"
    );
    assert!(
        told.iter().any(|t| t.contains("authenticator app")),
        "{told:?}"
    );
}

#[tokio::test]
async fn the_audit_exports_as_csv_with_formulas_neutralised_and_as_json_lines() {
    let (state, _, t) = admin().await;
    call(
        &state,
        json_request("POST", "/api/v1/tenants", &t, &json!({"name": "Acme"})),
    )
    .await;
    let acme = state
        .store
        .find_tenant_by_name("Acme")
        .await
        .unwrap()
        .unwrap();
    for (actor, target) in [
        ("=cmd|' /C calc'!A0", "+1"),
        ("@SUM(1)", "-2"),
        ("ann", "a, \"quoted\" b"),
    ] {
        state
            .audit(crate::state::Audit {
                tenant: Some(&acme.id),
                actor,
                action: "test.event",
                target,
                outcome: crate::domain::Outcome::Success,
                source_ip: Some("192.0.2.1"),
            })
            .await
            .unwrap();
    }
    let get = |q: &str| {
        let state = state.clone();
        let t = t.clone();
        let q = q.to_owned();
        async move {
            call(
                &state,
                json_request(
                    "GET",
                    &format!("/api/v1/audit/export?{q}"),
                    &t,
                    &Value::Null,
                ),
            )
            .await
        }
    };
    let r = get("tenant=Acme").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers[axum::http::header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let mut rows = csv::Reader::from_reader(r.body.as_bytes());
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let ours: Vec<&csv::StringRecord> = records.iter().filter(|r| &r[3] == "test.event").collect();
    assert_eq!(ours.len(), 3, "{}", r.body);
    assert_eq!(&ours[0][2], "'=cmd|' /C calc'!A0");
    assert_eq!(&ours[0][4], "'+1");
    assert_eq!(&ours[1][2], "'@SUM(1)");
    assert_eq!(&ours[1][4], "'-2");
    assert_eq!(&ours[2][4], "a, \"quoted\" b", "commas and quotes survive");
    assert!(
        r.body.lines().skip(1).all(|l| l.starts_with('"')),
        "every cell is quoted, so a `;` never splits one: {}",
        r.body
    );
    assert!(ours[0][0].ends_with('Z'), "RFC 3339 times: {}", &ours[0][0]);
    let r = get("tenant=Acme&format=jsonl").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().filter(|e| e["action"] == "test.event").count() == 3);
    assert_eq!(
        get("tenant=Acme&format=xlsx").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(get("tenant=Nope").await.status, StatusCode::NOT_FOUND);
}

#[test]
fn csv_cells_that_look_like_formulas_are_neutralised_in_every_form() {
    use super::audit::neutralised as n;
    for (cell, out) in [
        ("=1+1", "'=1+1"),
        ("  =1+1", "'  =1+1"),
        ("\t=1", "'\t=1"),
        ("\u{ff1d}SUM(1)", "'\u{ff1d}SUM(1)"),
        ("\0x", "'\0x"),
        ("ann@acme.example", "ann@acme.example"),
        ("a;=cmd", "a;=cmd"),
    ] {
        assert_eq!(n(cell), out, "{cell:?}");
    }
}

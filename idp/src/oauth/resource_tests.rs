//! The endpoints that take a token: `/introspect` and `/revoke` answer a client about its own
//! tokens only; `/userinfo` and `/api/v1` read the bearer credential with one parser.

use super::flow_tests::{
    PW, World, authorize_uri, client, exchange, location, login, query, world,
};
use crate::clock::Clock;
use crate::testing::{call, get, json_request, operator, post_form, post_form_basic, token};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};

/// Ann's tokens from the panel: (access token, refresh token).
async fn anns_tokens(w: &World) -> (String, String) {
    let (r, _) = login(w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let t = exchange(w, &query(&location(&r))["code"], "").await.json();
    (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Another company with its own relying panel `c_other` (secret `c_other-secret`).
async fn other_company_panel(w: &World) {
    let mut c = client("c_other", false);
    c.tenant = Some(crate::secret::TenantId::generate());
    w.state.store.put_client(&c).await.unwrap();
}

/// An API account of the world's company: (client_id, secret).
async fn api_account(w: &World, op_token: &str) -> (String, String) {
    let r = call(
        &w.state,
        json_request(
            "POST",
            &format!("/api/v1/tenants/{}/api-accounts", w.tenant),
            op_token,
            &serde_json::json!({"name": "backups", "scopes": ["backup.run"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn introspect(w: &World, id: &str, secret: &str, tok: &str) -> serde_json::Value {
    let r = call(
        &w.state,
        post_form_basic("/introspect", id, secret, format!("token={tok}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

/// RFC 7662 §2.2: a client learns about tokens issued to itself only; the rest are inactive.
#[tokio::test]
async fn introspection_describes_only_the_callers_own_tokens() {
    let w = world().await;
    other_company_panel(&w).await;
    let (op, op_secret) = operator(&w.state).await;
    let op_token = token(&w.state, &op, &op_secret).await;
    let (api, api_secret) = api_account(&w, &op_token).await;
    let api_token = token(&w.state, &api, &api_secret).await;
    let (access, refresh) = anns_tokens(&w).await;

    let own = introspect(&w, "c_panel", "c_panel-secret", &access).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], "c_panel");
    assert_eq!(own["sub"], w.user.as_str());
    assert_eq!(own["acr"], "padlock:1fa");
    assert_eq!(own["amr"], serde_json::json!(["pwd"]));
    assert_eq!(own["auth_time"], w.clock.now());
    let own = introspect(&w, "c_panel", "c_panel-secret", &refresh).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["acr"], "padlock:1fa");

    for (id, secret) in [
        ("c_other", "c_other-secret"),
        (op.as_str(), op_secret.as_str()),
        (api.as_str(), api_secret.as_str()),
    ] {
        for tok in [&access, &refresh] {
            assert_eq!(
                introspect(&w, id, secret, tok).await,
                serde_json::json!({"active": false}),
                "{id} must not see the panel's token"
            );
        }
    }
    // The API account's own token is its to inspect, and nobody else's.
    assert_eq!(
        introspect(&w, &api, &api_secret, &api_token).await["active"],
        true
    );
    assert_eq!(
        introspect(&w, "c_panel", "c_panel-secret", &api_token).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        introspect(&w, &op, &op_secret, &api_token).await,
        serde_json::json!({"active": false})
    );
}

/// RFC 7009 §2.1: a live token of another client is refused with `unauthorized_client` and stays
/// valid; unknown and expired tokens are 200 (§2.2).
#[tokio::test]
async fn revoking_another_clients_token_is_refused_and_changes_nothing() {
    let w = world().await;
    other_company_panel(&w).await;
    let (access, refresh) = anns_tokens(&w).await;
    for tok in [&access, &refresh] {
        let r = call(
            &w.state,
            post_form_basic(
                "/revoke",
                "c_other",
                "c_other-secret",
                format!("token={tok}"),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.json()["error"], "unauthorized_client");
    }
    assert_eq!(
        introspect(&w, "c_panel", "c_panel-secret", &access).await["active"],
        true,
        "the access token still works"
    );
    assert_eq!(
        introspect(&w, "c_panel", "c_panel-secret", &refresh).await["active"],
        true,
        "the refresh token still works"
    );
    let audit = w.state.store.list_audit(None, None, 50).await.unwrap();
    let refused: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "token.revoke" && e.outcome == crate::domain::Outcome::Failure)
        .collect();
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|e| e.actor == "c_other" && e.tenant.as_ref() == Some(&w.tenant))
    );

    let revoke = |id: &'static str, tok: String| {
        let w = &w;
        async move {
            call(
                &w.state,
                post_form_basic(
                    "/revoke",
                    id,
                    &format!("{id}-secret"),
                    format!("token={tok}"),
                ),
            )
            .await
            .status
        }
    };
    assert_eq!(revoke("c_other", "garbage".into()).await, StatusCode::OK);
    // Expired: nothing left to revoke, whoever asks.
    w.clock.advance(w.state.tokens.access_token_ttl_secs);
    assert_eq!(revoke("c_other", access.clone()).await, StatusCode::OK);
    // The owner revokes its refresh token: the grant goes.
    assert_eq!(revoke("c_panel", refresh.clone()).await, StatusCode::OK);
    assert_eq!(
        introspect(&w, "c_panel", "c_panel-secret", &refresh).await["active"],
        false
    );
}

fn with_auth(req: Request<Body>, value: &str) -> Request<Body> {
    let mut req = req;
    req.headers_mut()
        .append(header::AUTHORIZATION, value.parse().unwrap());
    req
}

/// RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750 §3.1: no token, no error code.
#[tokio::test]
async fn bearer_scheme_in_any_case_and_challenges_per_rfc_6750() {
    let w = world().await;
    let (access, _) = anns_tokens(&w).await;
    let (op, op_secret) = operator(&w.state).await;
    let op_token = token(&w.state, &op, &op_secret).await;
    for scheme in ["bearer", "BEARER", "bEaReR", "Bearer"] {
        let r = call(
            &w.state,
            with_auth(get("/userinfo"), &format!("{scheme} {access}")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.body);
        let r = call(
            &w.state,
            with_auth(post_form("/userinfo", ""), &format!("{scheme} {access}")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.body);
        let r = call(
            &w.state,
            with_auth(get("/api/v1/tenants"), &format!("{scheme} {op_token}")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.body);
    }

    let bare = "Bearer realm=\"padlock\"";
    let invalid = "Bearer realm=\"padlock\", error=\"invalid_token\"";
    for (req, challenge) in [
        (get("/userinfo"), bare),
        (post_form("/userinfo", ""), bare),
        (post_form("/userinfo", "other=1"), bare),
        (get("/api/v1/tenants"), bare),
        // Another scheme is no bearer token either.
        (with_auth(get("/userinfo"), "Basic YTpi"), bare),
        (with_auth(get("/api/v1/tenants"), "Basic YTpi"), bare),
        (with_auth(get("/userinfo"), "Bearer not-a-token"), invalid),
        (with_auth(get("/userinfo"), "Bearer"), invalid),
        (post_form("/userinfo", "access_token=not-a-token"), invalid),
        (
            with_auth(get("/api/v1/tenants"), "bearer not-a-token"),
            invalid,
        ),
        (with_auth(get("/api/v1/tenants"), "Bearer a b"), invalid),
    ] {
        let what = format!("{} {}", req.method(), req.uri());
        let r = call(&w.state, req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.body);
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], challenge, "{what}");
    }
    // Two Authorization headers: one method at a time.
    for path in ["/userinfo", "/api/v1/tenants"] {
        let r = call(
            &w.state,
            with_auth(
                with_auth(get(path), &format!("Bearer {access}")),
                &format!("Bearer {access}"),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
}

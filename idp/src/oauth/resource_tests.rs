//! The endpoints that take a token: `/userinfo` and `/api/v1` read the bearer credential with one
//! parser.

use super::flow_tests::{PW, World, authorize_uri, exchange, location, login, query, world};
use crate::testing::{call, get, operator, post_form, token};
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

//! `/authorize`: bounded request parameters, and `max_age` at the exact second boundary.

use super::authorize::MAX_PARAM_BYTES;
use super::flow_tests::{
    CB, PW, authorize_uri, location, login, query, set_cookie, urlencode, with_cookie, world,
};
use crate::testing::{call, get, post_form};
use axum::http::StatusCode;

/// `state`, `nonce` and `login_hint` over 1 KiB are `invalid_request`, sent back to the panel,
/// and no login flow (nor its cookie) is kept for them. An over-long `state` is not echoed.
#[tokio::test]
async fn over_long_state_nonce_and_login_hint_are_refused_before_a_flow_is_stored() {
    let w = world().await;
    let long = "a".repeat(MAX_PARAM_BYTES + 1);
    let fits = "a".repeat(MAX_PARAM_BYTES);
    for name in ["state", "nonce", "login_hint"] {
        let params = format!(
            "response_type=code&client_id={}&redirect_uri={}&scope=openid&{name}={long}",
            w.panel,
            urlencode(CB)
        );
        for r in [
            call(&w.state, get(&format!("/authorize?{params}"))).await,
            call(&w.state, post_form("/authorize", params.clone())).await,
        ] {
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{name}: {}", r.body);
            let loc = location(&r);
            assert!(loc.starts_with(CB), "{name}: {loc}");
            let q = query(&loc);
            assert_eq!(q["error"], "invalid_request", "{name}");
            assert!(q["error_description"].contains(name));
            assert!(!q.contains_key("state"), "{name}: not echoed");
            assert!(set_cookie(&r, "padlock_flow").is_none(), "{name}: no flow");
        }
        // Exactly 1 KiB is fine.
        let r = call(
            &w.state,
            get(&format!(
                "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&{name}={fits}",
                w.panel,
                urlencode(CB)
            )),
        )
        .await;
        assert!(location(&r).starts_with("/login?flow="), "{name}");
    }
    // Another parameter too long still echoes a normal state.
    let r = call(
        &w.state,
        get(&authorize_uri(&w.panel, &format!("&login_hint={long}"))),
    )
    .await;
    assert_eq!(query(&location(&r))["state"], "st-1");
}

/// OpenID Connect Core §3.1.2.1: `max_age=0` is `prompt=login`, even in the second of the
/// sign-in; a sign-in at t answers `max_age=N` while now < t + N.
#[tokio::test]
async fn max_age_zero_always_asks_and_max_age_n_ends_at_t_plus_n() {
    let w = world().await;
    let (_, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let cookie = format!("padlock_session={session}");
    let ask = |extra: &'static str| {
        let (w, cookie) = (&w, &cookie);
        async move {
            let r = call(
                &w.state,
                with_cookie(get(&authorize_uri(&w.panel, extra)), cookie),
            )
            .await;
            location(&r)
        }
    };
    assert!(
        ask("&max_age=0").await.starts_with("/login?flow="),
        "same second as the sign-in"
    );
    w.clock.advance(9);
    assert!(query(&ask("&max_age=10").await).contains_key("code"));
    w.clock.advance(1);
    assert!(
        ask("&max_age=10").await.starts_with("/login?flow="),
        "10 s after the sign-in, max_age=10 is over"
    );
    assert!(query(&ask("&max_age=11").await).contains_key("code"));
}

/// A query string that cannot be read (a parameter given twice) gets Padlock's
/// 400 error page on every page that reads one, not a bare text answer.
#[tokio::test]
async fn unreadable_query_strings_get_the_error_page() {
    let w = world().await;
    for uri in [
        format!("/authorize?client_id={0}&client_id={0}", w.panel),
        "/login?flow=a&flow=b".to_owned(),
        "/login/factor?flow=a&flow=b".to_owned(),
        "/setup?token=a&token=b".to_owned(),
        "/logout?state=a&state=b".to_owned(),
    ] {
        let r = call(&w.state, get(&uri)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
        assert!(r.body.contains("<!doctype html>"), "{uri}: {}", r.body);
    }
}

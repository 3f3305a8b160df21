//! `/authorize`: bounded request parameters.

use super::authorize::MAX_PARAM_BYTES;
use super::flow_tests::{CB, authorize_uri, location, query, set_cookie, urlencode, world};
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

//! Under an https issuer: `Strict-Transport-Security` on every answer and `__Host-` cookies
//! (RFC 6265bis §4.1.3.2), which a sibling subdomain cannot set; under http neither.

use super::flow_tests::{
    CB, PW, authorize_uri, location, login, query, set_cookie, urlencode, with_cookie, world,
};
use crate::testing::{call, get, post_form};
use axum::http::{StatusCode, header};

#[tokio::test]
async fn https_issuer_sends_hsts_and_host_prefixed_cookies() {
    let mut w = world().await;
    w.state.issuer = "https://login.example.com".into();
    let r = call(&w.state, get(&authorize_uri(&w.panel, ""))).await;
    assert_eq!(
        r.headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
    assert!(set_cookie(&r, "padlock_flow").is_none());
    let (flow, raw) = set_cookie(&r, "__Host-padlock_flow").expect("__Host- flow cookie");
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(raw.contains(attr), "{attr} in {raw}");
    }
    assert!(!raw.contains("Domain"));

    let form = format!(
        "flow={flow}&email={}&password={PW}",
        urlencode("ann@acme.example")
    );
    // The same value under the plain name, as a sibling host could set it, is not the flow cookie.
    let r = call(
        &w.state,
        with_cookie(
            post_form("/login", form.clone()),
            &format!("padlock_flow={flow}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &w.state,
        with_cookie(
            post_form("/login", form),
            &format!("__Host-padlock_flow={flow}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(location(&r).starts_with(CB));
    assert!(set_cookie(&r, "padlock_session").is_none());
    let (session, raw) = set_cookie(&r, "__Host-padlock_session").expect("__Host- session");
    assert!(raw.contains("; Secure") && raw.contains("; Path=/") && !raw.contains("Domain"));
    let (_, cleared) = set_cookie(&r, "__Host-padlock_flow").expect("flow cookie cleared");
    assert!(cleared.contains("Max-Age=0"));

    let again = |cookie: String| {
        let w = &w;
        async move {
            let r = call(
                &w.state,
                with_cookie(get(&authorize_uri(&w.panel, "&prompt=none")), &cookie),
            )
            .await;
            query(&location(&r))
        }
    };
    assert!(
        again(format!("__Host-padlock_session={session}"))
            .await
            .contains_key("code")
    );
    assert_eq!(
        again(format!("padlock_session={session}")).await["error"],
        "login_required",
        "only the __Host- cookie is the session"
    );
    // Every answer carries HSTS, error pages and JSON included.
    for path in ["/nowhere", "/userinfo", "/.well-known/openid-configuration"] {
        let r = call(&w.state, get(path)).await;
        assert_eq!(
            r.headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{path}"
        );
    }
}

#[tokio::test]
async fn http_issuer_keeps_plain_cookie_names_and_sends_no_hsts() {
    let w = world().await;
    // `login` asserts the plain `padlock_flow` cookie.
    let (r, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert!(!session.is_empty(), "plain padlock_session cookie");
    assert!(set_cookie(&r, "__Host-padlock_session").is_none());
    assert!(r.headers.get(header::STRICT_TRANSPORT_SECURITY).is_none());
    let (_, raw) = set_cookie(&r, "padlock_session").unwrap();
    assert!(!raw.contains("Secure"));
}

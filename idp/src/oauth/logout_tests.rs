//! `/logout` (RP-Initiated Logout 1.0 §2): a request that does not prove it comes from the signed-in
//! user's panel is asked about first, and only Padlock's own confirmation form ends the session.

use super::flow_tests::{
    CB, PW, World, add_user, exchange, location, login, query, set_cookie, urlencode, with_cookie,
    world,
};
use crate::testing::{Reply, call, csrf_field, get, post_form};
use axum::http::{StatusCode, header};

const BYE: &str = "https://panel.example.com/bye";

/// Signs `email` in on the panel; returns (session cookie header, ID token).
async fn signed_in(w: &World, email: &str) -> (String, String) {
    let (r, session) = login(
        w,
        &super::flow_tests::authorize_uri(&w.panel, ""),
        email,
        PW,
    )
    .await;
    let t = exchange(w, &query(&location(&r))["code"], "").await.json();
    (
        format!("padlock_session={session}"),
        t["id_token"].as_str().unwrap().to_owned(),
    )
}

/// Whether the session behind `cookie` still answers `prompt=none`.
async fn still_signed_in(w: &World, cookie: &str) -> bool {
    let r = call(
        &w.state,
        with_cookie(
            get(&super::flow_tests::authorize_uri(&w.panel, "&prompt=none")),
            cookie,
        ),
    )
    .await;
    assert!(location(&r).starts_with(CB));
    query(&location(&r)).contains_key("code")
}

fn is_question(r: &Reply) -> bool {
    r.status == StatusCode::OK
        && r.body.contains("Sign out of Padlock?")
        && r.headers.get(header::SET_COOKIE).is_none()
}

#[tokio::test]
async fn logout_without_a_hint_asks_and_only_the_confirmation_ends_the_session() {
    let w = world().await;
    let (cookie, _) = signed_in(&w, "ann@acme.example").await;
    let request = format!(
        "/logout?client_id={}&post_logout_redirect_uri={}&state=bye-2",
        w.panel,
        urlencode(BYE)
    );
    let ask = call(&w.state, with_cookie(get(&request), &cookie)).await;
    assert!(is_question(&ask), "{}: {}", ask.status, ask.body);
    assert!(ask.body.contains("ann@acme.example"));
    assert!(
        still_signed_in(&w, &cookie).await,
        "a link alone signs no one out"
    );
    let csrf = csrf_field(&ask);

    // A GET carrying the token is still only a question (links leak).
    let r = call(
        &w.state,
        with_cookie(get(&format!("{request}&csrf={csrf}")), &cookie),
    )
    .await;
    assert!(is_question(&r));
    // Another site's form: no token, or a made-up one.
    let r = call(&w.state, with_cookie(post_form("/logout", ""), &cookie)).await;
    assert!(is_question(&r), "{}: {}", r.status, r.body);
    let r = call(
        &w.state,
        with_cookie(
            post_form("/logout", format!("csrf={}", "0".repeat(32))),
            &cookie,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(still_signed_in(&w, &cookie).await);

    // Padlock's own form, as the page rendered it.
    let form = format!(
        "csrf={csrf}&client_id={}&post_logout_redirect_uri={}&state=bye-2",
        w.panel,
        urlencode(BYE)
    );
    let out = call(&w.state, with_cookie(post_form("/logout", form), &cookie)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let loc = location(&out);
    assert!(loc.starts_with(BYE));
    assert_eq!(query(&loc)["state"], "bye-2");
    assert!(
        set_cookie(&out, "padlock_session")
            .unwrap()
            .1
            .contains("Max-Age=0")
    );
    assert!(!still_signed_in(&w, &cookie).await);

    let audit = w.state.store.list_audit(None, None, 50).await.unwrap();
    let event = audit
        .iter()
        .find(|e| e.action == "logout")
        .expect("audited");
    assert_eq!(event.tenant.as_ref(), Some(&w.tenant), "the user's company");
}

#[tokio::test]
async fn a_hint_for_another_user_asks_and_the_users_own_hint_ends_at_once() {
    let w = world().await;
    add_user(&w.state, &w.tenant, "bob@acme.example", "user").await;
    let (_, bobs_hint) = signed_in(&w, "bob@acme.example").await;
    let (cookie, anns_hint) = signed_in(&w, "ann@acme.example").await;

    let r = call(
        &w.state,
        with_cookie(get(&format!("/logout?id_token_hint={bobs_hint}")), &cookie),
    )
    .await;
    assert!(is_question(&r), "{}: {}", r.status, r.body);
    assert!(still_signed_in(&w, &cookie).await);

    let out = call(
        &w.state,
        with_cookie(
            get(&format!(
                "/logout?id_token_hint={anns_hint}&post_logout_redirect_uri={}&state=s3",
                urlencode(BYE)
            )),
            &cookie,
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(query(&location(&out))["state"], "s3");
    assert!(!still_signed_in(&w, &cookie).await);
    let audit = w.state.store.list_audit(None, None, 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "logout" && e.tenant.as_ref() == Some(&w.tenant))
    );
}

#[tokio::test]
async fn without_a_session_there_is_nothing_to_confirm() {
    let w = world().await;
    let r = call(&w.state, get("/logout")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("You are signed out"), "{}", r.body);
    // An unregistered address is refused, asked about or not.
    let r = call(
        &w.state,
        get(&format!(
            "/logout?client_id={}&post_logout_redirect_uri={}",
            w.panel,
            urlencode("https://evil.example/")
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.headers.get(header::LOCATION).is_none());
}

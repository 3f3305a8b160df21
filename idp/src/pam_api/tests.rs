//! Oneshot tests of `/pam/v1` and the PAM-host API: host authentication, each preauth answer,
//! codes and TOTP through the shared second-factor engine (the lockout, replay and message limit
//! shared with the web login), decoys for unknown names, and the audit context.

use crate::clock::Clock;
use crate::domain::{ClientKind, Outcome};
use crate::factor::tests::{enrol_totp, last_code, submit, to_factor, world_2fa};
use crate::oauth::flow_tests::{World, add_user, world};
use crate::testing::{Reply, basic, call, json_request, operator, token};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use padlock_policy::Method;
use serde_json::{Value, json};
use std::path::Path;

/// A PAM host of the world's company, created through the API: (host_id, host_secret).
async fn host(w: &World) -> (String, String) {
    let (id, secret) = operator(&w.state).await;
    let t = token(&w.state, &id, &secret).await;
    let r = call(
        &w.state,
        json_request(
            "POST",
            &format!("/api/v1/tenants/{}/pam-hosts", w.tenant.as_str()),
            &t,
            &json!({ "name": "bastion" }),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    let secret = v["host_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "at least 256 bits: {secret}");
    (v["host_id"].as_str().unwrap().to_owned(), secret)
}

fn pam_post(uri: &str, (id, secret): &(String, String), body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, basic(id, secret))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn preauth(w: &World, h: &(String, String), user: &str) -> Value {
    let body = json!({ "user": user, "service": "sshd", "rhost": "192.0.2.9", "tty": "ssh" });
    let r = call(&w.state, pam_post("/pam/v1/preauth", h, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

async fn answer(w: &World, h: &(String, String), txid: &str, answer: &str) -> Value {
    let body = json!({ "txid": txid, "answer": answer });
    let r = call(&w.state, pam_post("/pam/v1/auth", h, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

fn outbox_len(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("outbox")).map_or(0, Iterator::count)
}

#[tokio::test]
async fn wrong_unknown_and_foreign_credentials_get_the_same_401() {
    let w = world().await;
    let h = host(&w).await;
    let body = json!({ "user": "ann", "service": "sshd" });
    let refused = [
        (h.0.clone(), "wrong".to_owned()),
        ("c_unknown".to_owned(), h.1.clone()),
        // A relying panel's own credential is no PAM host.
        ("c_panel".to_owned(), "c_panel-secret".to_owned()),
    ];
    let mut bodies = Vec::new();
    for creds in &refused {
        let r = call(&w.state, pam_post("/pam/v1/preauth", creds, &body)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{creds:?}");
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"padlock-pam\""
        );
        bodies.push(r.body);
    }
    let no_auth = Request::post("/pam/v1/preauth")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = call(&w.state, no_auth).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    bodies.push(r.body);
    assert!(bodies.windows(2).all(|b| b[0] == b[1]), "{bodies:?}");
    assert_eq!(preauth(&w, &h, "ann").await["result"], "allow");
}

#[tokio::test]
async fn pam_hosts_are_listed_removed_and_operator_only() {
    let w = world().await;
    let h = host(&w).await;
    let (id, secret) = operator(&w.state).await;
    let t = token(&w.state, &id, &secret).await;
    let r = call(
        &w.state,
        json_request("GET", "/api/v1/pam-hosts", &t, &Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let listed = r.json();
    assert_eq!(listed[0]["host_id"], h.0.as_str());
    assert_eq!(listed[0]["tenant"], w.tenant.as_str());
    assert!(
        !r.body.contains(&h.1),
        "the secret is shown once, never listed"
    );
    let stored = w
        .state
        .store
        .get_client(&crate::secret::ClientId::from_string(h.0.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.kind, ClientKind::PamHost);
    assert_eq!(
        stored.secret_sha256.as_deref(),
        Some(hex::encode(crate::crypto::sha256(h.1.as_bytes())).as_str()),
        "stored as SHA-256"
    );
    // A PAM host credential gets no tokens and opens no OAuth endpoint.
    let r = call(
        &w.state,
        crate::testing::post_form_basic("/token", &h.0, &h.1, "grant_type=client_credentials"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    for uri in ["/introspect", "/revoke"] {
        let r = call(
            &w.state,
            crate::testing::post_form_basic(uri, &h.0, &h.1, "token=x"),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}: {}", r.body);
    }
    // A company administrator's token is not the operator's.
    let r = call(
        &w.state,
        json_request(
            "DELETE",
            &format!("/api/v1/pam-hosts/{}", h.0),
            "x.y.z",
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &w.state,
        json_request(
            "DELETE",
            &format!("/api/v1/pam-hosts/{}", h.0),
            &t,
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = json!({ "user": "ann", "service": "sshd" });
    let r = call(&w.state, pam_post("/pam/v1/preauth", &h, &body)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a removed host is refused"
    );
    let r = call(
        &w.state,
        json_request(
            "DELETE",
            &format!("/api/v1/pam-hosts/{}", h.0),
            &t,
            &Value::Null,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &w.state,
        json_request("DELETE", "/api/v1/pam-hosts/c_panel", &t, &Value::Null),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "only PAM hosts are removed here"
    );
}

#[tokio::test]
async fn an_email_code_at_pam_wrong_then_right_with_the_login_audited() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["result"], "challenge", "{v}");
    assert_eq!(v["method"], "code");
    assert_eq!(
        v["prompt"],
        "Verification code (sent by email to a\u{2022}\u{2022}\u{2022}@acme.example): "
    );
    let txid = v["txid"].as_str().unwrap();
    let (_, to, code) = last_code(&dir);
    assert_eq!(to, "ann@acme.example");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = answer(&w, &h, txid, wrong).await;
    assert_eq!(r["result"], "retry", "{r}");
    assert_eq!(
        r["message"],
        "That code is not right. 4 more tries for this code."
    );
    let r = answer(&w, &h, txid, "12345").await;
    assert_eq!(r["result"], "retry", "not six digits: not counted");
    assert_eq!(answer(&w, &h, txid, &code).await["result"], "allow");
    let r = answer(&w, &h, txid, &code).await;
    assert_eq!(r["result"], "deny", "the transaction completed once");
    let events = w.state.store.list_audit(None, None, 100).await.unwrap();
    let pam: Vec<_> = events.iter().filter(|e| e.pam.is_some()).collect();
    let actions: Vec<(&str, Outcome)> =
        pam.iter().map(|e| (e.action.as_str(), e.outcome)).collect();
    assert_eq!(
        actions,
        [
            ("pam.challenge", Outcome::Success),
            ("pam.second_factor", Outcome::Failure),
            ("pam.second_factor", Outcome::Success),
        ]
    );
    let login = pam[0].pam.as_ref().unwrap();
    assert_eq!(
        (
            login.host.as_str(),
            login.user.as_str(),
            login.service.as_str()
        ),
        (h.0.as_str(), "ann", "sshd")
    );
    assert_eq!(login.rhost.as_deref(), Some("192.0.2.9"));
    assert_eq!(login.tty.as_deref(), Some("ssh"));
    assert_eq!(pam[0].source_ip.as_deref(), Some("192.0.2.9"));
}

#[tokio::test]
async fn a_transaction_answers_only_its_own_host() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let other = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap();
    let (_, _, code) = last_code(&dir);
    assert_eq!(answer(&w, &other, txid, &code).await["result"], "deny");
    let events = w.state.store.list_audit(None, None, 100).await.unwrap();
    let refused = events
        .iter()
        .find(|e| e.action == "pam.transaction_unknown")
        .expect("the other host's try is audited");
    assert_eq!(refused.actor, format!("pam-host:{}", other.0));
    assert_eq!(answer(&w, &h, txid, &code).await["result"], "allow");
}

#[tokio::test]
async fn totp_at_pam_refuses_a_step_used_on_the_web() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    let h = host(&w).await;
    let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    // Used on the web first…
    let (flow, cookie) = to_factor(&w).await;
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // …then at PAM: the same step is refused.
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["method"], "totp");
    assert_eq!(v["prompt"], "Code from your authenticator app: ");
    let txid = v["txid"].as_str().unwrap();
    let r = answer(&w, &h, txid, &code).await;
    assert_eq!(r["result"], "retry");
    assert_eq!(
        r["message"],
        "This code was already used. Wait for the next code in your app."
    );
    w.clock.advance(30);
    let next = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    assert_eq!(answer(&w, &h, txid, &next).await["result"], "allow");
}

/// DESIGN §9 item 4 across paths: failures at PAM and on the web count toward one lockout.
#[tokio::test]
async fn the_lockout_is_shared_with_the_web_login() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    let h = host(&w).await;
    let right = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Nine wrong answers at PAM (over several logins)…
    for _ in 0..3 {
        let v = preauth(&w, &h, "ann").await;
        let txid = v["txid"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            assert_eq!(answer(&w, &h, &txid, wrong).await["result"], "retry");
        }
    }
    // …and the tenth on the web locks the second factor everywhere.
    let (flow, cookie) = to_factor(&w).await;
    let r = submit(&w, &flow, &cookie, &format!("code={wrong}")).await;
    assert!(r.body.contains("locked until"), "{}", r.body);
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["result"], "deny", "{v}");
    assert!(v["message"].as_str().unwrap().contains("locked"));
    // The lock also ends a transaction already in progress, even with the right code.
    w.clock.advance(16 * 60);
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    for _ in 0..9 {
        assert_eq!(answer(&w, &h, &txid, wrong).await["result"], "retry");
    }
    let (flow, cookie) = to_factor(&w).await;
    submit(&w, &flow, &cookie, &format!("code={wrong}")).await;
    let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    let r = answer(&w, &h, &txid, &code).await;
    assert_eq!(r["result"], "deny", "{r}");
}

#[tokio::test]
async fn company_2fa_off_allows_api_accounts_and_disabled_users_are_denied() {
    let (w, _) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let mut bob = add_user(&w.state, &w.tenant, "bob@acme.example", "user").await;
    bob.disabled = true;
    w.state.store.update_user(&bob).await.unwrap();
    let v = preauth(&w, &h, "bob").await;
    assert_eq!(v["result"], "deny");
    assert_eq!(
        v["message"],
        "This account is disabled. Contact your administrator."
    );
    let mut api = add_user(&w.state, &w.tenant, "svc@acme.example", "user").await;
    api.api_account = true;
    w.state.store.update_user(&api).await.unwrap();
    let v = preauth(&w, &h, "svc").await;
    assert_eq!(v["result"], "deny");
    assert!(v["message"].as_str().unwrap().contains("API account"));
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.enabled = false;
    w.state.store.update_tenant(&t).await.unwrap();
    assert_eq!(preauth(&w, &h, "ann").await["result"], "allow");
    assert_eq!(
        preauth(&w, &h, "svc").await["result"],
        "deny",
        "an API account never logs in interactively, 2FA on or off"
    );
}

/// No user enumeration: an unknown name gets a challenge shaped like a real one, that sends
/// nothing and never passes; with `unknown_user = "ignore"` the module is told instead.
#[tokio::test]
async fn unknown_names_get_a_decoy_that_never_passes() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let real = preauth(&w, &h, "ann").await;
    let sent = outbox_len(&dir);
    let decoy = preauth(&w, &h, "alice").await;
    assert_eq!(outbox_len(&dir), sent, "no code sent for an unknown name");
    let shape = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (
            keys,
            v["result"].clone(),
            v["method"].clone(),
            v["txid"].as_str().unwrap().len(),
        )
    };
    assert_eq!(shape(&decoy), shape(&real));
    assert_eq!(
        decoy["prompt"],
        "Verification code (sent by email to a\u{2022}\u{2022}\u{2022}@acme.example): "
    );
    let txid = decoy["txid"].as_str().unwrap();
    let mut results = Vec::new();
    for guess in ["000000", "111111", "222222", "333333", "444444"] {
        let r = answer(&w, &h, txid, guess).await;
        results.push((
            r["result"].as_str().unwrap().to_owned(),
            r["message"].clone(),
        ));
    }
    assert_eq!(
        results[0].1,
        "That code is not right. 4 more tries for this code."
    );
    assert_eq!(results[4].0, "deny", "{results:?}");
    let body = json!({ "user": "alice", "service": "sshd", "unknown_user": "ignore" });
    let r = call(&w.state, pam_post("/pam/v1/preauth", &h, &body)).await;
    assert_eq!(r.json()["result"], "unknown");
    let body = json!({ "user": "ann", "service": "sshd", "unknown_user": "ignore" });
    let r = call(&w.state, pam_post("/pam/v1/preauth", &h, &body)).await;
    assert_eq!(
        r.json()["result"],
        "challenge",
        "a known user is challenged"
    );
}

#[tokio::test]
async fn oversized_and_malformed_fields_are_refused() {
    let w = world().await;
    let h = host(&w).await;
    for body in [
        json!({ "user": "a".repeat(257), "service": "sshd" }),
        json!({ "user": "ann", "service": "sshd", "tty": "x".repeat(300) }),
        json!({ "user": "an\u{7}n", "service": "sshd" }),
        json!({ "user": "", "service": "sshd" }),
    ] {
        let r = call(&w.state, pam_post("/pam/v1/preauth", &h, &body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let r = call(
        &w.state,
        pam_post("/pam/v1/preauth", &h, &json!({ "usr": "ann" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        &w.state,
        pam_post(
            "/pam/v1/auth",
            &h,
            &json!({ "txid": "t", "answer": "1".repeat(300) }),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r: Reply = call(
        &w.state,
        Request::get("/pam/v1/auth_status?txid=nope")
            .header(header::AUTHORIZATION, basic(&h.0, &h.1))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["result"], "deny");
}

#[tokio::test]
async fn duplicate_unix_names_are_refused_through_the_api() {
    let w = world().await;
    let (id, secret) = operator(&w.state).await;
    let t = token(&w.state, &id, &secret).await;
    let uri = format!("/api/v1/tenants/{}/users", w.tenant.as_str());
    let body = json!({ "email": "ann@elsewhere.example", "password": "correct horse battery" });
    let r = call(&w.state, json_request("POST", &uri, &t, &body)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("Unix name ann"), "{}", r.body);
    let body = json!({ "email": "ann@elsewhere.example", "password": "correct horse battery", "unix_name": "ann2" });
    let r = call(&w.state, json_request("POST", &uri, &t, &body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Renaming: to a name another user holds is refused; to a free one works, and PAM follows.
    let edit = format!("{uri}/ann@elsewhere.example");
    let r = call(
        &w.state,
        json_request("PATCH", &edit, &t, &json!({ "unix_name": "ann" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = call(
        &w.state,
        json_request("PATCH", &edit, &t, &json!({ "unix_name": "Bad Name" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = call(
        &w.state,
        json_request("PATCH", &edit, &t, &json!({ "unix_name": "annie" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["unix_name"], "annie");
    let h = host(&w).await;
    let mut tenant = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    tenant.two_factor.enabled = false;
    w.state.store.update_tenant(&tenant).await.unwrap();
    assert_eq!(preauth(&w, &h, "annie").await["result"], "allow");
    // Back to the default (the email's local part) collides with ann again.
    let r = call(
        &w.state,
        json_request("PATCH", &edit, &t, &json!({ "unix_name": null })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = call(
        &w.state,
        json_request(
            "PATCH",
            &format!("{uri}/nobody@acme.example"),
            &t,
            &json!({ "unix_name": "x" }),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The per-source limit counts the ssh client the host reports (`rhost`), not the host: one
/// client that keeps failing is refused, another client of the same host is not.
#[tokio::test]
async fn the_source_limit_applies_to_the_reported_rhost() {
    let (w, _) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let from = |user: &str, rhost: &str| json!({ "user": user, "service": "sshd", "rhost": rhost });
    let mut failures = 0;
    while failures < 100 {
        // A new name each time: one name would lock like a user after ten.
        let name = format!("nobody{failures}");
        let r = call(
            &w.state,
            pam_post("/pam/v1/preauth", &h, &from(&name, "198.51.100.7")),
        )
        .await;
        let txid = r.json()["txid"].as_str().unwrap().to_owned();
        for _ in 0..5 {
            answer(&w, &h, &txid, "000000").await;
            failures += 1;
        }
    }
    let r = call(
        &w.state,
        pam_post("/pam/v1/preauth", &h, &from("ann", "198.51.100.7")),
    )
    .await;
    let v = r.json();
    assert_eq!(v["result"], "deny", "{v}");
    assert!(v["message"].as_str().unwrap().contains("your network"));
    let r = call(
        &w.state,
        pam_post("/pam/v1/preauth", &h, &from("ann", "203.0.113.5")),
    )
    .await;
    assert_eq!(
        r.json()["result"],
        "challenge",
        "another client of the same host"
    );
}

/// Decoys take the shapes of the company's users (here two SMS users and one email user), one
/// name always gets the same decoy — digits included — as a user always gets the same prompt, and
/// a change in the users moves few names (weighted rendezvous hashing).
#[tokio::test]
async fn decoys_follow_the_companys_users_and_are_stable_per_name() {
    let (w, _) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let add_mobile_user = |email: &'static str| {
        let w = &w;
        async move {
            let mut u = add_user(&w.state, &w.tenant, email, "user").await;
            u.mobile = Some(padlock_policy::mobile::E164::parse("+15551234567").unwrap());
            w.state.store.update_user(&u).await.unwrap();
        }
    };
    add_mobile_user("bob@acme.example").await;
    add_mobile_user("cid@acme.example").await;
    let sms =
        "Verification code (sent by SMS to +1 \u{2022}\u{2022}\u{2022} \u{2022}\u{2022}\u{2022} ";
    let real = preauth(&w, &h, "bob").await;
    assert!(real["prompt"].as_str().unwrap().starts_with(sms), "{real}");
    let names: Vec<String> = (0..60).map(|i| format!("probe{i}")).collect();
    let mut before = Vec::new();
    for name in &names {
        let first = preauth(&w, &h, name).await;
        let again = preauth(&w, &h, name).await;
        assert_eq!(first["prompt"], again["prompt"], "stable per name");
        let prompt = first["prompt"].as_str().unwrap().to_owned();
        if prompt.starts_with(sms) {
            assert_eq!(prompt.len(), real["prompt"].as_str().unwrap().len());
        } else {
            assert_eq!(
                prompt,
                "Verification code (sent by email to p\u{2022}\u{2022}\u{2022}@acme.example): "
            );
        }
        before.push(prompt);
    }
    let by_sms = before.iter().filter(|p| p.starts_with(sms)).count();
    assert!(
        by_sms > 0 && by_sms < names.len(),
        "both shapes: {by_sms} by SMS"
    );
    // One more SMS user (weights 2:1 → 3:1): only names whose winner changes move (1 in 12 on
    // average), not the wholesale reshuffle a modulo pick would cause.
    add_mobile_user("dan@acme.example").await;
    w.clock.advance(super::decoy::SHAPES_TTL_SECS + 1);
    let mut moved = 0;
    for (name, old) in names.iter().zip(&before) {
        let now = preauth(&w, &h, name).await;
        let shape_of = |p: &str| p.starts_with(sms);
        if shape_of(now["prompt"].as_str().unwrap()) != shape_of(old) {
            moved += 1;
        }
    }
    assert!(moved <= 15, "{moved} of 60 names changed shape");
}

/// A decoy locks and runs out of codes exactly when a user would, so neither state tells names
/// apart: ten wrong answers lock both, and the message limit refuses both.
#[tokio::test]
async fn decoys_lock_and_run_out_of_codes_like_users() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    enrol_totp(&w).await;
    let h = host(&w).await;
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.methods = padlock_policy::Methods::from_list(&[Method::Totp]);
    w.state.store.update_tenant(&t).await.unwrap();
    for name in ["ann", "nobody"] {
        let mut last = Value::Null;
        for _ in 0..2 {
            let v = preauth(&w, &h, name).await;
            assert_eq!(v["method"], "totp", "{name}: {v}");
            let txid = v["txid"].as_str().unwrap().to_owned();
            for _ in 0..5 {
                last = answer(&w, &h, &txid, "000000").await;
            }
        }
        assert_eq!(last["result"], "deny", "{name}: {last}");
        assert!(
            last["message"].as_str().unwrap().contains("locked until"),
            "{name}: {last}"
        );
        let v = preauth(&w, &h, name).await;
        assert_eq!(v["result"], "deny", "{name}");
        assert_eq!(v["message"], super::LOCKED, "{name}");
    }
    // The message limit: codes for a user and for a decoy are refused after the same count —
    // for Ann, one of them sent by her web sign-in (one window for every path).
    let (w, _) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    to_factor(&w).await;
    for name in ["ann", "nobody"] {
        let limit = w.state.limits.messages.max();
        let pam_sends = if name == "ann" { limit - 1 } else { limit };
        for _ in 0..pam_sends {
            assert_eq!(preauth(&w, &h, name).await["result"], "challenge", "{name}");
        }
        let v = preauth(&w, &h, name).await;
        assert_eq!(v["result"], "deny", "{name}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("Too many codes were sent to you recently"),
            "{name}: {v}"
        );
    }
}

/// A user disabled, or a company whose methods changed, between preauth and auth: the open
/// transaction no longer passes, even with the right code.
#[tokio::test]
async fn changes_during_a_login_end_its_transaction() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    let mut ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    ann.disabled = true;
    w.state.store.update_user(&ann).await.unwrap();
    let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    let r = answer(&w, &h, &txid, &code).await;
    assert_eq!(r["result"], "deny", "{r}");
    assert!(r["message"].as_str().unwrap().contains("disabled"), "{r}");
    ann.disabled = false;
    w.state.store.update_user(&ann).await.unwrap();
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.methods = padlock_policy::Methods::from_list(&[Method::SmsEmail]);
    w.state.store.update_tenant(&t).await.unwrap();
    let r = answer(&w, &h, &txid, &code).await;
    assert_eq!(r["result"], "deny", "TOTP is no longer offered: {r}");
    assert_eq!(r["message"], super::CHANGED);
}

/// A code expires after 120 s at PAM as on the web; PAM has no resend, so the user starts again.
#[tokio::test]
async fn an_expired_code_ends_the_pam_login() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    let (_, _, code) = last_code(&dir);
    w.clock.advance(padlock_policy::code::CODE_TTL_SECS);
    let r = answer(&w, &h, &txid, &code).await;
    assert_eq!(r["result"], "deny", "{r}");
    assert_eq!(
        r["message"],
        "This code has expired. Start the login again."
    );
}

/// Makes the world's company offer Duo (keys sealed as the API would) and Ann a Duo user, with
/// Padlock's Duo at `duo` (a peer answering in turn).
async fn duo_world(duo: &crate::testing::HttpPeer) -> World {
    let (mut w, _) = world_2fa(&[Method::SmsEmail, Method::Duo]).await;
    w.state.duo = std::sync::Arc::new(
        crate::duo::Duo::new(Some(duo.url.clone()), std::time::Duration::from_secs(3), 60).unwrap(),
    );
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.duo = Some(crate::domain::DuoConfig {
        ikey: "DIWJ8X6AEYOR5OMC6TQ1".into(),
        skey: w
            .state
            .master
            .seal(
                crate::domain::DUO_SKEY_PURPOSE,
                b"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
            )
            .unwrap(),
        api_host: "api-xxxxxxxx.duosecurity.com".into(),
    });
    t.two_factor.duo_configured = true;
    w.state.store.update_tenant(&t).await.unwrap();
    let mut ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    ann.preferred_method = Some(Method::Duo);
    ann.duo = Some(crate::domain::DuoEnrolment {
        duo_user_id: "DU1".into(),
        username: "ann".into(),
        active: true,
    });
    w.state.store.update_user(&ann).await.unwrap();
    w
}

/// Counts `n` failed second-factor tries of Ann, as other logins would.
async fn fail(w: &World, n: u32) {
    for _ in 0..n {
        let _ = w
            .state
            .store
            .admit_second_factor_attempt(&w.user, w.clock.now(), &w.state.limits.lockout)
            .await
            .unwrap();
    }
}

async fn auth_status(w: &World, h: &(String, String), txid: &str) -> Value {
    let r = call(
        &w.state,
        Request::get(format!("/pam/v1/auth_status?txid={txid}"))
            .header(header::AUTHORIZATION, basic(&h.0, &h.1))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn a_duo_push_at_pam_waits_then_passes_and_a_decoy_mirrors_the_duo_prompt() {
    let ok = |body: &'static str| (200, body);
    let duo = crate::testing::HttpPeer::start(
        vec![
            ok(r#"{"stat":"OK","response":{"result":"auth","status_msg":"Account is active"}}"#),
            ok(r#"{"stat":"OK","response":{"txid":"45f7c92b-f45f-4862-8545-e0f58e78075a"}}"#),
            ok(
                r#"{"stat":"OK","response":{"result":"waiting","status":"pushed","status_msg":"Pushed a login request to your device..."}}"#,
            ),
            ok(
                r#"{"stat":"OK","response":{"result":"allow","status":"allow","status_msg":"Success. Logging you in..."}}"#,
            ),
        ],
        0,
    );
    let w = duo_world(&duo).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["method"], "duo", "{v}");
    assert_eq!(
        v["prompt"],
        "Duo passcode, or press Enter for a push to your phone: "
    );
    let txid = v["txid"].as_str().unwrap().to_owned();
    assert_eq!(answer(&w, &h, &txid, "").await["result"], "pending");
    assert_eq!(auth_status(&w, &h, &txid).await["result"], "pending");
    assert_eq!(auth_status(&w, &h, &txid).await["result"], "allow");
    // Done: the transaction is gone.
    assert_eq!(auth_status(&w, &h, &txid).await["result"], "deny");
    assert_eq!(duo.requests.load(std::sync::atomic::Ordering::SeqCst), 4);
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 50)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "duo.push" && e.pam.is_some())
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "pam.second_factor" && e.outcome == Outcome::Success)
    );

    // Ann is the company's only user: a name that is no user gets her prompt's shape, and its
    // passcode is never right (Duo is not asked).
    let v = preauth(&w, &h, "nobody").await;
    assert_eq!(v["method"], "duo", "{v}");
    let txid = v["txid"].as_str().unwrap().to_owned();
    let a = answer(&w, &h, &txid, "123456").await;
    assert_eq!(a["result"], "retry", "{a}");
    assert_eq!(a["message"], "That Duo passcode is not right.");
    assert_eq!(answer(&w, &h, &txid, "").await["result"], "pending");
    assert_eq!(duo.requests.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn duo_refusals_bypass_and_outage_at_pam_preauth() {
    let ok = |body: &'static str| (200, body);
    // Duo's bypass: not a second factor; an emailed code instead.
    let duo = crate::testing::HttpPeer::start(
        vec![ok(
            r#"{"stat":"OK","response":{"result":"allow","status_msg":"Bypassing Duo"}}"#,
        )],
        0,
    );
    let w = duo_world(&duo).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["method"], "code", "{v}");
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 50)
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "duo.bypass_refused"));

    // Duo denies (its sentence), is down, or no longer knows Ann: refused at every login, never
    // a weaker factor, her enrolment left as it is.
    for (status, body, says) in [
        (
            200,
            r#"{"stat":"OK","response":{"result":"deny","status_msg":"Your account is disabled."}}"#,
            "Your account is disabled.",
        ),
        (503, "down", "Duo cannot be reached"),
        (
            200,
            r#"{"stat":"OK","response":{"result":"enroll","status_msg":"Enroll an authentication device."}}"#,
            "no longer active",
        ),
    ] {
        let duo = crate::testing::HttpPeer::start(vec![(status, body)], 0);
        let w = duo_world(&duo).await;
        let h = host(&w).await;
        for _ in 0..2 {
            let v = preauth(&w, &h, "ann").await;
            assert_eq!(v["result"], "deny", "{v}");
            assert!(v["message"].as_str().unwrap().contains(says), "{v}");
        }
        let ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
        assert!(ann.duo.unwrap().active, "{says}");
    }
}

#[tokio::test]
async fn the_push_that_would_begin_the_lock_is_not_sent_and_nothing_passes_while_locked() {
    let ok = |body: &'static str| (200, body);
    let duo = crate::testing::HttpPeer::start(
        vec![
            ok(r#"{"stat":"OK","response":{"result":"auth","status_msg":""}}"#),
            ok(r#"{"stat":"OK","response":{"txid":"t1"}}"#),
            ok(r#"{"stat":"OK","response":{"result":"allow","status":"allow","status_msg":""}}"#),
            ok(r#"{"stat":"OK","response":{"result":"auth","status_msg":""}}"#),
        ],
        0,
    );
    let w = duo_world(&duo).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    assert_eq!(answer(&w, &h, &txid, "").await["result"], "pending");
    // Meanwhile other tries fail up to the lock (10 by default).
    let policy = w.state.limits.lockout;
    fail(&w, policy.max_failures()).await;
    // Duo says approved, but the second factor is locked: refused, the lock kept.
    let a = auth_status(&w, &h, &txid).await;
    assert_eq!(a["result"], "deny", "{a}");
    let state = w.state.store.lockout_state(&w.user).await.unwrap();
    assert!(state.locked_until(w.clock.now(), &policy).is_some());
    assert_eq!(duo.requests.load(std::sync::atomic::Ordering::SeqCst), 3);

    // After the lock, nine failures: the tenth try, a push, would begin a lock — nothing is sent.
    w.clock.advance(policy.lock_secs() + 1);
    w.state
        .store
        .record_second_factor_success(&w.user)
        .await
        .unwrap();
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["method"], "duo", "{v}");
    let txid = v["txid"].as_str().unwrap().to_owned();
    fail(&w, policy.max_failures() - 1).await;
    let before = duo.requests.load(std::sync::atomic::Ordering::SeqCst);
    let a = answer(&w, &h, &txid, "").await;
    assert_eq!(a["result"], "deny", "{a}");
    assert!(a["message"].as_str().unwrap().contains("locked"), "{a}");
    assert_eq!(
        duo.requests.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no push went"
    );
}

#[tokio::test]
async fn two_push_requests_at_once_send_one_push() {
    let ok = |body: &'static str| (200, body);
    let duo = crate::testing::HttpPeer::start(
        vec![
            ok(r#"{"stat":"OK","response":{"result":"auth","status_msg":""}}"#),
            ok(r#"{"stat":"OK","response":{"txid":"t1"}}"#),
        ],
        200,
    );
    let w = duo_world(&duo).await;
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    let body = json!({ "txid": txid, "answer": "" });
    let (a, b) = tokio::join!(
        call(&w.state, pam_post("/pam/v1/auth", &h, &body)),
        call(&w.state, pam_post("/pam/v1/auth", &h, &body)),
    );
    let results = [a.json()["result"].clone(), b.json()["result"].clone()];
    assert!(results.contains(&json!("pending")), "{results:?}");
    assert_eq!(
        duo.requests.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one preauth and one push: {results:?}"
    );
}

#[tokio::test]
async fn a_code_challenge_begun_before_the_user_chose_duo_no_longer_passes() {
    let duo = crate::testing::HttpPeer::start(vec![(503, "unused")], 0);
    let (w, dir) = {
        let w = duo_world(&duo).await;
        let mut ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
        ann.preferred_method = Some(Method::SmsEmail);
        w.state.store.update_user(&ann).await.unwrap();
        let dir = crate::state::test_outbox();
        let mut w = w;
        w.state.delivery = std::sync::Arc::new(
            crate::delivery::Delivery::from_config(&crate::config::Config::default(), &dir)
                .unwrap(),
        );
        (w, dir)
    };
    let h = host(&w).await;
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["method"], "code", "{v}");
    let txid = v["txid"].as_str().unwrap().to_owned();
    let (_, _, code) = last_code(&dir);
    // Ann (or someone with her mailbox) chooses Duo meanwhile.
    let mut ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    ann.preferred_method = Some(Method::Duo);
    w.state.store.update_user(&ann).await.unwrap();
    let a = answer(&w, &h, &txid, &code).await;
    assert_eq!(a["result"], "deny", "{a}");
    assert_eq!(duo.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_duo_at_pam_preauth_is_a_refusal_within_the_modules_shortest_timeout() {
    let duo = crate::testing::HttpPeer::start(
        vec![(200, r#"{"stat":"OK","response":{"result":"auth"}}"#)],
        8000,
    );
    let mut w = duo_world(&duo).await;
    w.state.duo = std::sync::Arc::new(
        crate::duo::Duo::new(
            Some(duo.url.clone()),
            std::time::Duration::from_secs(10),
            60,
        )
        .unwrap(),
    );
    let h = host(&w).await;
    // Duo would answer `auth` after 8 s, within its 10 s call timeout but past the 4 s Padlock
    // gives it at PAM preauth: a refusal, not a challenge.
    let v = preauth(&w, &h, "ann").await;
    assert_eq!(v["result"], "deny", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Duo cannot be reached"),
        "{v}"
    );
    // Its decoys are refused the same way while Duo is down.
    let v = preauth(&w, &h, "nobody").await;
    assert_eq!(v["result"], "deny", "{v}");
}

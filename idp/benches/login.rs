//! Interactive login cost, in-process through the real router (no sockets): the full sequence
//! (authorize → password (argon2id) → TOTP factor → code exchange with ID token), two of them at
//! once (logins per second on two cores), the factor step alone, and a PAM login's server side
//! (`/pam/v1/preauth` + `/pam/v1/auth` with a TOTP code). For Duo, the server time Padlock adds
//! to Duo's own: a PAM login with a Duo passcode (`preauth` asks Duo's preauth, `auth` Duo's auth)
//! against an in-process Duo that answers at once, next to the same two Duo calls made directly
//! with Padlock's Duo client; the difference is Padlock's share.
//! Run: `cargo bench -p padlock-idp --bench login`.

use axum::body::Body;
use axum::http::{Request, header};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use padlock_idp::clock::{Clock, ManualClock};
use padlock_idp::crypto::{MasterKey, sha256};
use padlock_idp::domain::{
    Client, ClientKind, DUO_SKEY_PURPOSE, DuoConfig, DuoEnrolment, SigningAlg, TOTP_SEED_PURPOSE,
    Tenant, TotpEnrolment, User,
};
use padlock_idp::duo::Duo;
use padlock_idp::duo::client::Integration;
use padlock_idp::password::Passwords;
use padlock_idp::secret::DuoSecretKey;
use padlock_idp::secret::{ClientId, Password, TenantId, UserId};
use padlock_idp::server::app;
use padlock_idp::state::AppState;
use padlock_idp::store::Store;
use padlock_idp::store::memory::MemoryStore;
use padlock_policy::{Method, Methods, TwoFactorPolicy};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

mod common;

const SEED: &[u8] = b"0123456789abcdefghij";
const CB: &str = "https://panel.example.com/cb";
/// One user per parallel lane (a TOTP step is accepted once per user).
const EMAILS: [&str; 2] = ["ann@acme.example", "bob@acme.example"];

/// The Duo user's Padlock email and Unix name.
const DUO_EMAIL: &str = "duo@acme.example";
const DUO_SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

/// A Duo that answers preauth `auth` and every auth `allow` at once (signatures unchecked: the
/// bench measures Padlock's side), on loopback; returns its base URL.
async fn instant_duo() -> String {
    use axum::routing::post;
    let ok = |v: serde_json::Value| axum::Json(serde_json::json!({"stat": "OK", "response": v}));
    let router = axum::Router::new()
        .route(
            "/auth/v2/preauth",
            post(move || async move { ok(serde_json::json!({"result": "auth", "status_msg": ""})) }),
        )
        .route(
            "/auth/v2/auth",
            post(move || async move {
                ok(serde_json::json!({"result": "allow", "status": "allow", "status_msg": "Success."}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn state(clock: Arc<ManualClock>, duo_url: String) -> AppState {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let master = MasterKey::generate().unwrap();
    let passwords = Passwords::new(2).unwrap();
    let policy = TwoFactorPolicy {
        enabled: true,
        methods: Methods::from_list(&[Method::SmsEmail, Method::Totp, Method::Duo]),
        duo_configured: true,
        ..Default::default()
    };
    let tenant = Tenant {
        id: TenantId::generate(),
        name: "Acme".into(),
        two_factor: policy,
        duo: Some(DuoConfig {
            ikey: "DIWJ8X6AEYOR5OMC6TQ1".into(),
            skey: master.seal(DUO_SKEY_PURPOSE, DUO_SKEY.as_bytes()).unwrap(),
            api_host: "api-xxxxxxxx.duosecurity.com".into(),
        }),
        roles: Vec::new(),
        operator: false,
        created_at: 0,
    };
    store.create_tenant(&tenant).await.unwrap();
    for email in EMAILS.into_iter().chain([DUO_EMAIL]) {
        let duo = email == DUO_EMAIL;
        let user = User {
            id: UserId::generate(),
            tenant: tenant.id.clone(),
            email: email.into(),
            mobile: None,
            password_hash: passwords
                .hash(Password::new("correct-horse-battery".into()))
                .await
                .unwrap(),
            roles: vec![],
            preferred_method: Some(if duo { Method::Duo } else { Method::Totp }),
            totp: Some(TotpEnrolment {
                seed: master.seal(TOTP_SEED_PURPOSE, SEED).unwrap(),
                enrolled_at: 0,
            }),
            duo: duo.then(|| DuoEnrolment {
                duo_user_id: "DU1".into(),
                username: "duo".into(),
                active: true,
            }),
            api_account: false,
            unix_name: None,
            disabled: false,
            session_epoch: 0,
            created_at: 0,
        };
        store.create_user(&user).await.unwrap();
    }
    store
        .put_client(&Client {
            id: ClientId::from_string("c_panel".into()),
            name: "panel".into(),
            kind: ClientKind::RelyingPanel {
                redirect_uris: vec![CB.into()],
                post_logout_redirect_uris: vec![],
                public: false,
                id_token_alg: SigningAlg::RS256,
            },
            secret_sha256: Some(hex_sha("panel-secret")),
            scopes: vec!["openid".into()],
            tenant: None,
            created_at: 0,
        })
        .await
        .unwrap();
    store
        .put_client(&Client {
            id: ClientId::from_string("c_host".into()),
            name: "bastion".into(),
            kind: ClientKind::PamHost,
            secret_sha256: Some(hex_sha("host-secret")),
            scopes: vec![],
            tenant: Some(tenant.id.clone()),
            created_at: 0,
        })
        .await
        .unwrap();
    common::app_state(store, master, clock, Some(duo_url)).await
}

fn hex_sha(s: &str) -> String {
    sha256(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn send(s: &AppState, req: Request<Body>) -> axum::http::Response<Body> {
    app(s.clone()).oneshot(req).await.unwrap()
}

fn form(uri: &str, cookie: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap()
}

/// authorize + password: returns (flow id, cookie), the flow waiting for the factor.
async fn to_factor(s: &AppState, email: &str) -> (String, String) {
    let uri = format!(
        "/authorize?response_type=code&client_id=c_panel&redirect_uri={}&scope=openid&nonce=n",
        CB.replace(':', "%3A").replace('/', "%2F")
    );
    let r = send(s, Request::get(uri).body(Body::empty()).unwrap()).await;
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let flow = loc.split("flow=").nth(1).unwrap().to_owned();
    let cookie = format!("padlock_flow={flow}");
    let r = send(
        s,
        form(
            "/login",
            &cookie,
            format!(
                "flow={flow}&email={}&password=correct-horse-battery",
                email.replace('@', "%40")
            ),
        ),
    )
    .await;
    assert!(
        r.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login/factor")
    );
    (flow, cookie)
}

/// The factor step with a fresh TOTP code; returns the authorization code.
async fn factor(s: &AppState, clock: &ManualClock, flow: &str, cookie: &str) -> String {
    clock.advance(30);
    let code = padlock_policy::totp::code_at(SEED, clock.now()).unwrap();
    let r = send(
        s,
        form("/login/factor", cookie, format!("flow={flow}&code={code}")),
    )
    .await;
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    loc.split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

/// The whole interactive login of `email`, ending with the code exchange.
async fn full_login(s: &AppState, clock: &ManualClock, email: &str) {
    let (flow, cookie) = to_factor(s, email).await;
    let code = factor(s, clock, &flow, &cookie).await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        CB.replace(':', "%3A").replace('/', "%2F")
    );
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, "Basic Y19wYW5lbDpwYW5lbC1zZWNyZXQ=")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(s, req).await.status(), 200);
}

/// A `/pam/v1` call by the bench's PAM host.
fn pam(uri: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        // c_host:host-secret
        .header(header::AUTHORIZATION, "Basic Y19ob3N0Omhvc3Qtc2VjcmV0")
        .body(Body::from(body))
        .unwrap()
}

async fn json(r: axum::http::Response<Body>) -> serde_json::Value {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A PAM login of `ann` with a fresh TOTP code: preauth, then auth.
async fn pam_login(s: &AppState, clock: &ManualClock) {
    let body = r#"{"user":"ann","service":"sshd","rhost":"192.0.2.1","tty":"ssh"}"#;
    let v = json(send(s, pam("/pam/v1/preauth", body.into())).await).await;
    let txid = v["txid"].as_str().unwrap().to_owned();
    clock.advance(30);
    let code = padlock_policy::totp::code_at(SEED, clock.now()).unwrap();
    let body = serde_json::json!({ "txid": txid, "answer": code }).to_string();
    let v = json(send(s, pam("/pam/v1/auth", body)).await).await;
    assert_eq!(v["result"], "allow", "{v}");
}

/// A PAM login of the Duo user with a passcode: preauth (Duo preauth), then auth (Duo auth).
async fn pam_duo_login(s: &AppState, clock: &ManualClock) {
    clock.advance(30);
    let body = r#"{"user":"duo","service":"sshd","rhost":"192.0.2.1","tty":"ssh"}"#;
    let v = json(send(s, pam("/pam/v1/preauth", body.into())).await).await;
    assert_eq!(v["method"], "duo", "{v}");
    let txid = v["txid"].as_str().unwrap().to_owned();
    let body = serde_json::json!({ "txid": txid, "answer": "123456" }).to_string();
    let v = json(send(s, pam("/pam/v1/auth", body)).await).await;
    assert_eq!(v["result"], "allow", "{v}");
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::at(1_800_000_000));
    let duo_url = rt.block_on(instant_duo());
    let s = rt.block_on(state(clock.clone(), duo_url.clone()));
    let mut group = c.benchmark_group("login");
    group.sample_size(20);
    group.bench_function("full_password_totp_code_exchange", |b| {
        b.iter(|| rt.block_on(full_login(&s, &clock, EMAILS[0])))
    });
    // Two logins at once, one per core: the throughput a 2-core machine reaches.
    group.throughput(Throughput::Elements(EMAILS.len() as u64));
    group.bench_function("full_login_2_parallel", |b| {
        b.iter(|| {
            rt.block_on(async {
                let lanes = EMAILS.map(|email| {
                    let (s, clock) = (s.clone(), clock.clone());
                    tokio::spawn(async move { full_login(&s, &clock, email).await })
                });
                for lane in lanes {
                    lane.await.unwrap();
                }
            })
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("factor_step_totp", |b| {
        b.iter_batched(
            || rt.block_on(to_factor(&s, EMAILS[0])),
            |(flow, cookie)| rt.block_on(factor(&s, &clock, &flow, &cookie)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("pam_preauth_auth_totp", |b| {
        b.iter(|| rt.block_on(pam_login(&s, &clock)))
    });
    // Padlock's share of a Duo login = pam_preauth_auth_duo_passcode - duo_calls_alone.
    group.bench_function("pam_preauth_auth_duo_passcode", |b| {
        b.iter(|| rt.block_on(pam_duo_login(&s, &clock)))
    });
    let duo = Duo::new(Some(duo_url), Duration::from_secs(10), 60)
        .unwrap()
        .client_for(Integration {
            ikey: "DIWJ8X6AEYOR5OMC6TQ1".into(),
            skey: DuoSecretKey::new(DUO_SKEY.into()),
            api_host: "api-xxxxxxxx.duosecurity.com".into(),
        });
    group.bench_function("duo_calls_alone", |b| {
        b.iter(|| {
            rt.block_on(async {
                duo.preauth("duo", Some("192.0.2.1")).await.unwrap();
                duo.passcode("duo", "123456", Some("192.0.2.1"))
                    .await
                    .unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(login, benches);
criterion_main!(login);

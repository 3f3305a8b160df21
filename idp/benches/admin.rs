//! Server time of the admin API's paged reads in a large company: a page of users among 10,000,
//! and pages of an audit trail of 1,000,000 events (the newest, one user's, failures of an action
//! prefix, one exact action, a filter nothing matches, and one deep in the past), each a `GET` through the real router (token
//! check, permission, store on sled, JSON; no sockets).
//! The data is seeded straight into a sled store once (a few minutes) and kept in
//! `$PADLOCK_BENCH_DATA` (default `target/padlock-bench-admin`) for later runs.
//! Run: `cargo bench -p padlock-idp --bench admin`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use padlock_idp::clock::ManualClock;
use padlock_idp::crypto::sha256;
use padlock_idp::domain::{AuditEvent, Client, ClientKind, Outcome, Tenant, User};
use padlock_idp::secret::{ClientId, TenantId, UserId};
use padlock_idp::server::app;
use padlock_idp::store::Store;
use padlock_idp::store::sled::SledStore;
use padlock_policy::TwoFactorPolicy;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

mod common;

const USERS: usize = 10_000;
const EVENTS: u64 = 1_000_000;
const ACTIONS: [&str; 6] = [
    "login.password",
    "login.factor",
    "token.refresh",
    "user.update",
    "pam.allow",
    "account.preferences",
];
/// The first second of the seeded trail.
const T0: u64 = 1_760_000_000;

fn email(i: usize) -> String {
    format!("user{i:05}@acme.example")
}

/// Seeds the company, its users, an API account `c_bench` (secret `bench-secret`) holding every
/// permission, and the audit trail, unless a previous run did.
async fn seed(store: &SledStore) {
    if store.find_tenant_by_name("Acme").await.unwrap().is_some() {
        return;
    }
    let started = Instant::now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: "Acme".into(),
        two_factor: TwoFactorPolicy::default(),
        duo: None,
        roles: Vec::new(),
        operator: false,
        created_at: T0,
    };
    store.create_tenant(&tenant).await.unwrap();
    let user = |email: String, api: bool, roles: Vec<String>| User {
        id: UserId::generate(),
        tenant: tenant.id.clone(),
        email,
        mobile: None,
        password_hash: "!".into(),
        roles,
        preferred_method: None,
        totp: None,
        duo: None,
        api_account: api,
        unix_name: None,
        disabled: false,
        session_epoch: 0,
        created_at: T0,
    };
    let account = user(
        "bench@api-account.invalid".into(),
        true,
        vec!["tenant.admin".into()],
    );
    store.create_user(&account).await.unwrap();
    store
        .put_client(&Client {
            id: ClientId::from_string("c_bench".into()),
            name: "bench".into(),
            kind: ClientKind::ApiAccount {
                user: account.id.clone(),
            },
            secret_sha256: Some(hex::encode(sha256(b"bench-secret"))),
            scopes: vec!["tenant.admin".into()],
            tenant: Some(tenant.id.clone()),
            created_at: T0,
        })
        .await
        .unwrap();
    for i in 0..USERS {
        store
            .create_user(&user(email(i), false, vec![]))
            .await
            .unwrap();
    }
    eprintln!("seeded {USERS} users in {:?}", started.elapsed());
    let other = TenantId::generate();
    for n in 0..EVENTS {
        let i = usize::try_from(n).unwrap();
        let event = AuditEvent {
            at: T0 + n / 10,
            // One event in ten belongs to another company.
            tenant: Some(if n % 10 == 9 {
                other.clone()
            } else {
                tenant.id.clone()
            }),
            actor: email(i % USERS),
            action: ACTIONS[i % ACTIONS.len()].into(),
            target: email((i * 7) % USERS),
            // One in a hundred failed.
            outcome: if n % 100 == 7 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            source_ip: Some("192.0.2.1".into()),
            pam: None,
        };
        store.append_audit(&event).await.unwrap();
        if n % 100_000 == 99_999 {
            eprintln!("seeded {} audit events in {:?}", n + 1, started.elapsed());
        }
    }
    store.flush().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::var_os("PADLOCK_BENCH_DATA").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/padlock-bench-admin")
        },
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let state = rt.block_on(async {
        let store = SledStore::open(&dir.join("db"), 256 << 20).unwrap();
        seed(&store).await;
        // The master key is kept beside the data, as `padlock serve` keeps it: it opens the
        // signing keys sealed by the first run.
        let master = padlock_idp::bootstrap::master_key(&dir.join("master.key"), &store)
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::at(T0 + EVENTS / 10 + 60));
        common::app_state(Arc::new(store), master, clock, None).await
    });
    let token = rt.block_on(async {
        let basic = format!("Basic {}", base64_encode("c_bench:bench-secret"));
        let r = app(state.clone())
            .oneshot(
                Request::post("/token")
                    .header(header::AUTHORIZATION, basic)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(
                        "grant_type=client_credentials&scope=tenant.admin",
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    });
    let get = |uri: String| {
        let (state, token) = (state.clone(), token.clone());
        async move {
            let r = app(state)
                .oneshot(
                    Request::get(uri)
                        .header(header::AUTHORIZATION, format!("Bearer {token}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            axum::body::to_bytes(r.into_body(), 16 << 20)
                .await
                .unwrap()
                .len()
        }
    };
    let deep = format!("{}.0", T0 + EVENTS / 20);
    let cases = [
        (
            "users_page_first_100",
            "/api/v1/tenants/Acme/users?limit=100".to_owned(),
        ),
        (
            "users_page_middle_100",
            format!("/api/v1/tenants/Acme/users?limit=100&after={}", email(5000)),
        ),
        (
            "audit_newest_100",
            "/api/v1/audit?tenant=Acme&limit=100".into(),
        ),
        (
            "audit_one_user_50",
            format!("/api/v1/audit?tenant=Acme&user={}&limit=50", email(4242)),
        ),
        (
            "audit_action_and_failure_50",
            "/api/v1/audit?tenant=Acme&action=login.*&outcome=failure&limit=50".into(),
        ),
        (
            "audit_exact_action_50",
            "/api/v1/audit?tenant=Acme&action=account.preferences&limit=50".into(),
        ),
        (
            // Nothing matches: the page stops after AUDIT_SCAN_LIMIT examined events.
            "audit_no_match_bounded_scan",
            "/api/v1/audit?tenant=Acme&action=nonesuch.*&limit=50".into(),
        ),
        (
            "audit_deep_cursor_100",
            format!("/api/v1/audit?tenant=Acme&limit=100&before={deep}"),
        ),
    ];
    let mut g = c.benchmark_group("admin_pages");
    for (name, uri) in cases {
        g.bench_function(name, |b| b.iter(|| rt.block_on(get(uri.clone()))));
    }
    g.finish();
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

criterion_group!(benches, bench);
criterion_main!(benches);

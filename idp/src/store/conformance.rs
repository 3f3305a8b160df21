//! The behaviour every [`Store`] implementation must have. Each backend runs the whole suite with
//! [`crate::store_conformance!`]; a new backend (PostgreSQL) joins by invoking the macro too.

#![allow(clippy::unwrap_used, missing_docs)]

use super::{
    AuditCursor, AuditQuery, CodeTake, PendingSetup, Rotation, SealedAt, Store, StoreError,
};
use crate::crypto::MasterKey;
use crate::domain::{
    AuditEvent, AuthCodeGrant, AuthRequest, Client, ClientKind, DuoConfig, LoginFlow, LoginStep,
    Outcome, PamLogin, PamTransaction, PasswordLink, RefreshRecord, Session, SigningAlg,
    SigningKeyRecord, Tenant, TotpEnrolment, User,
};
use crate::secret::{ClientId, TenantId, UserId};
use padlock_policy::TwoFactorPolicy;
use padlock_policy::decision::{Acr, Amr};
use padlock_policy::lockout::{Attempt, LockoutPolicy};
use padlock_policy::rate::{RateAdmission, RateLimit};
use padlock_policy::throttle::{Throttle, ThrottlePolicy};
use std::sync::Arc;

/// Generates one `#[tokio::test]` per conformance check. `$make` evaluates to `(store, guard)`;
/// the guard (e.g. a temporary directory) lives as long as the test.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@tests $make;
            tenants_are_unique_by_name, users_are_unique_by_email, updates_keep_unique_names,
            clients_and_keys_round_trip, key_check_first_writer_wins, setup_token_is_replaced_and_cleared,
            tenant_with_admin_consumes_the_setup_token, tenant_with_admin_is_all_or_nothing,
            any_company_ends_the_setup_token, sealed_values_are_listed_and_replaced,
            auth_code_is_taken_once, auth_code_race_has_one_winner, totp_step_accepted_once,
            totp_step_race_has_one_winner, lockout_counts_atomically, messages_are_limited_per_user_atomically,
            password_tries_are_throttled_atomically, audit_is_filtered_and_limited,
            sessions_and_flows_round_trip, refresh_rotates_once_and_detects_reuse, refresh_race_has_one_winner,
            revocations_are_remembered, expired_records_are_purged,
            unix_names_are_unique_per_company, clients_are_listed_and_removed,
            pam_transactions_round_trip, user_swaps_lose_to_an_earlier_write,
            password_links_are_taken_once, audit_pages_follow_the_index_and_filters,
            users_are_paged_by_email_per_company,
            company_swaps_lose_to_an_earlier_write);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = $make;
                $crate::store::conformance::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

pub fn tenant(name: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        name: name.into(),
        two_factor: TwoFactorPolicy::default(),
        duo: None,
        roles: Vec::new(),
        operator: false,
        created_at: 1,
    }
}

pub fn user(tenant: &Tenant, email: &str) -> User {
    User {
        id: UserId::generate(),
        tenant: tenant.id.clone(),
        email: email.into(),
        mobile: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        roles: vec![],
        preferred_method: None,
        totp: None,
        duo: None,
        api_account: false,
        unix_name: None,
        disabled: false,
        session_epoch: 0,
        created_at: 1,
    }
}

fn grant(expires_at: u64) -> AuthCodeGrant {
    AuthCodeGrant {
        client_id: ClientId::generate(),
        user_id: UserId::generate(),
        redirect_uri: "https://panel.example.com/cb".into(),
        scope: "openid".into(),
        nonce: Some("n".into()),
        code_challenge: None,
        auth_time: 1,
        amr: vec![Amr::Pwd],
        acr: Acr::OneFactor,
        epoch: 0,
        expires_at,
        grant_id: "g1".into(),
    }
}

pub async fn tenants_are_unique_by_name(s: Arc<dyn Store>) {
    let a = tenant("Acme");
    s.create_tenant(&a).await.unwrap();
    assert!(matches!(
        s.create_tenant(&tenant(" ACME ")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_tenant(&Tenant {
            name: "Other".into(),
            ..a.clone()
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    s.create_tenant(&tenant("Beta")).await.unwrap();
    assert_eq!(s.get_tenant(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.find_tenant_by_name("acme").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.find_tenant_by_name("nope").await.unwrap(), None);
    let names: Vec<String> = s
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Acme", "Beta"]);
}

pub async fn users_are_unique_by_email(s: Arc<dyn Store>) {
    let (t1, t2) = (tenant("One"), tenant("Two"));
    s.create_tenant(&t1).await.unwrap();
    s.create_tenant(&t2).await.unwrap();
    let ann = user(&t1, "ann@example.com");
    s.create_user(&ann).await.unwrap();
    assert!(matches!(
        s.create_user(&user(&t2, "Ann@Example.com")).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_user(&user(&t1, "bob@example.com")).await.unwrap();
    s.create_user(&user(&t2, "cy@example.com")).await.unwrap();
    assert_eq!(
        s.find_user_by_email("ANN@example.com").await.unwrap(),
        Some(ann.clone())
    );
    assert_eq!(s.get_user(&ann.id).await.unwrap(), Some(ann));
    let emails: Vec<String> = s
        .list_users(&t1.id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["ann@example.com", "bob@example.com"]);
}

pub async fn updates_keep_unique_names(s: Arc<dyn Store>) {
    let t = tenant("Acme");
    s.create_tenant(&t).await.unwrap();
    let enabled = Tenant {
        name: "Renamed".into(),
        two_factor: TwoFactorPolicy {
            enabled: true,
            ..Default::default()
        },
        ..t.clone()
    };
    s.update_tenant(&enabled).await.unwrap();
    let stored = s.get_tenant(&t.id).await.unwrap().unwrap();
    assert!(stored.two_factor.enabled);
    assert_eq!(
        stored.name, "Acme",
        "update does not bypass the unique-name index"
    );
    assert!(matches!(
        s.update_tenant(&tenant("Ghost")).await,
        Err(StoreError::NotFound(_))
    ));

    let u = user(&t, "ann@example.com");
    s.create_user(&u).await.unwrap();
    s.update_user(&User {
        email: "evil@example.com".into(),
        api_account: true,
        ..u.clone()
    })
    .await
    .unwrap();
    let stored = s.get_user(&u.id).await.unwrap().unwrap();
    assert!(stored.api_account);
    assert_eq!(stored.email, "ann@example.com");
    assert!(matches!(
        s.update_user(&user(&t, "ghost@example.com")).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn clients_and_keys_round_trip(s: Arc<dyn Store>) {
    let c = Client {
        id: ClientId::generate(),
        name: "panel".into(),
        kind: ClientKind::RelyingPanel {
            redirect_uris: vec!["https://p/cb".into()],
            post_logout_redirect_uris: vec![],
            public: false,
            id_token_alg: SigningAlg::RS256,
        },
        secret_sha256: Some("00".repeat(32)),
        scopes: vec!["openid".into()],
        tenant: None,
        created_at: 1,
    };
    s.put_client(&c).await.unwrap();
    assert_eq!(s.get_client(&c.id).await.unwrap(), Some(c));
    assert_eq!(s.get_client(&ClientId::generate()).await.unwrap(), None);

    let key = MasterKey::generate().unwrap();
    let old = SigningKeyRecord {
        kid: "k1".into(),
        alg: SigningAlg::ES256,
        pkcs8: key.seal("signing-key", b"a").unwrap(),
        created_at: 10,
        retired_at: None,
    };
    let new = SigningKeyRecord {
        kid: "k2".into(),
        created_at: 20,
        ..old.clone()
    };
    s.put_signing_key(&new).await.unwrap();
    s.put_signing_key(&old).await.unwrap();
    let retired = SigningKeyRecord {
        retired_at: Some(20),
        ..old.clone()
    };
    s.put_signing_key(&retired).await.unwrap();
    assert_eq!(s.list_signing_keys().await.unwrap(), vec![retired, new]);
}

pub async fn key_check_first_writer_wins(s: Arc<dyn Store>) {
    let k1 = MasterKey::generate().unwrap();
    let k2 = MasterKey::generate().unwrap();
    let first = s.init_key_check(&k1.key_check().unwrap()).await.unwrap();
    assert!(k1.matches(&first));
    let again = s.init_key_check(&k2.key_check().unwrap()).await.unwrap();
    assert!(k1.matches(&again) && !k2.matches(&again));
}

fn pending(byte: u8, issued_at: u64) -> PendingSetup {
    PendingSetup {
        digest: [byte; 32],
        issued_at,
    }
}

pub async fn setup_token_is_replaced_and_cleared(s: Arc<dyn Store>) {
    assert_eq!(s.setup_token().await.unwrap(), None);
    s.set_setup_token(Some(&pending(1, 10))).await.unwrap();
    s.set_setup_token(Some(&pending(2, 20))).await.unwrap();
    assert_eq!(s.setup_token().await.unwrap(), Some(pending(2, 20)));
    s.set_setup_token(None).await.unwrap();
    assert_eq!(s.setup_token().await.unwrap(), None);
}

pub async fn tenant_with_admin_consumes_the_setup_token(s: Arc<dyn Store>) {
    let t = tenant("Acme");
    let mut admin = user(&t, "ann@example.com");
    admin.roles = vec![crate::domain::ROLE_ADMIN.into()];
    s.set_setup_token(Some(&pending(2, 20))).await.unwrap();
    assert!(
        !s.create_tenant_with_admin(&t, &admin, Some(&[1; 32]))
            .await
            .unwrap(),
        "a replaced or wrong token creates nothing"
    );
    assert!(s.list_tenants().await.unwrap().is_empty());
    assert_eq!(s.get_user(&admin.id).await.unwrap(), None);
    assert!(
        s.create_tenant_with_admin(&t, &admin, Some(&[2; 32]))
            .await
            .unwrap()
    );
    assert_eq!(s.get_tenant(&t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(
        s.find_user_by_email("ANN@example.com").await.unwrap(),
        Some(admin)
    );
    assert_eq!(s.setup_token().await.unwrap(), None, "consumed");
    let t2 = tenant("Evil");
    assert!(
        !s.create_tenant_with_admin(&t2, &user(&t2, "eve@example.com"), Some(&[2; 32]))
            .await
            .unwrap(),
        "a consumed token creates nothing"
    );
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
}

pub async fn tenant_with_admin_is_all_or_nothing(s: Arc<dyn Store>) {
    let other = tenant("Other");
    s.create_tenant(&other).await.unwrap();
    s.create_user(&user(&other, "bob@example.com"))
        .await
        .unwrap();
    s.set_setup_token(Some(&pending(3, 30))).await.unwrap();

    // A conflicting admin email leaves no company behind, and the token stays for a retry.
    let acme = tenant("Acme");
    let taken = user(&acme, "BOB@example.com");
    assert!(matches!(
        s.create_tenant_with_admin(&acme, &taken, Some(&[3; 32]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_tenant(&acme.id).await.unwrap(), None);
    assert_eq!(s.find_tenant_by_name("acme").await.unwrap(), None);
    assert_eq!(s.list_tenants().await.unwrap(), vec![other.clone()]);
    assert_eq!(s.setup_token().await.unwrap(), Some(pending(3, 30)));
    // The name is free again: the aborted step left no index entry either.
    s.set_setup_token(None).await.unwrap();
    s.create_tenant(&acme).await.unwrap();

    // A conflicting company name leaves no user behind.
    let dup = tenant("OTHER");
    let carol = user(&dup, "carol@example.com");
    assert!(matches!(
        s.create_tenant_with_admin(&dup, &carol, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.find_user_by_email("carol@example.com").await.unwrap(),
        None
    );
    assert_eq!(s.get_user(&carol.id).await.unwrap(), None);
    s.create_user(&carol).await.unwrap();
}

pub async fn any_company_ends_the_setup_token(s: Arc<dyn Store>) {
    s.set_setup_token(Some(&pending(4, 40))).await.unwrap();
    s.create_tenant(&tenant("Acme")).await.unwrap();
    assert_eq!(s.setup_token().await.unwrap(), None);
    s.set_setup_token(Some(&pending(5, 50))).await.unwrap();
    let t = tenant("Beta");
    assert!(
        s.create_tenant_with_admin(&t, &user(&t, "ann@example.com"), None)
            .await
            .unwrap()
    );
    assert_eq!(s.setup_token().await.unwrap(), None);
}

pub async fn auth_code_is_taken_once(s: Arc<dyn Store>) {
    let g = grant(100);
    s.put_auth_code(&[7; 32], &g).await.unwrap();
    assert_eq!(s.take_auth_code(&[8; 32]).await.unwrap(), CodeTake::Unknown);
    assert_eq!(
        s.take_auth_code(&[7; 32]).await.unwrap(),
        CodeTake::Fresh(g)
    );
    assert_eq!(
        s.take_auth_code(&[7; 32]).await.unwrap(),
        CodeTake::Reused {
            grant_id: "g1".into()
        }
    );
    assert_eq!(
        s.take_auth_code(&[7; 32]).await.unwrap(),
        CodeTake::Reused {
            grant_id: "g1".into()
        }
    );
}

pub async fn auth_code_race_has_one_winner(s: Arc<dyn Store>) {
    for round in 0..20u8 {
        s.put_auth_code(&[round; 32], &grant(100)).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    matches!(
                        s.take_auth_code(&[round; 32]).await.unwrap(),
                        CodeTake::Fresh(_)
                    )
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

pub async fn totp_step_accepted_once(s: Arc<dyn Store>) {
    let (a, b) = (UserId::generate(), UserId::generate());
    assert!(s.accept_totp_step(&a, 5).await.unwrap());
    assert!(!s.accept_totp_step(&a, 5).await.unwrap());
    assert!(!s.accept_totp_step(&a, 4).await.unwrap());
    assert!(
        s.accept_totp_step(&b, 5).await.unwrap(),
        "steps are per user"
    );
    assert!(s.accept_totp_step(&a, 6).await.unwrap());
}

pub async fn totp_step_race_has_one_winner(s: Arc<dyn Store>) {
    let u = UserId::generate();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, u) = (s.clone(), u.clone());
            tokio::spawn(async move { s.accept_totp_step(&u, 1000).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// Runs `n` copies of `f` at once and returns their results.
async fn parallel<T: Send + 'static, F>(n: usize, f: impl Fn() -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

pub async fn lockout_counts_atomically(s: Arc<dyn Store>) {
    let u = UserId::generate();
    let policy = LockoutPolicy::new(100, 900).unwrap();
    let admitted = parallel(40, || {
        let (s, u) = (s.clone(), u.clone());
        async move {
            s.admit_second_factor_attempt(&u, 50, &policy)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(
        admitted
            .iter()
            .all(|a| matches!(a, Attempt::Admitted { .. }))
    );
    assert_eq!(s.lockout_state(&u).await.unwrap().failures, 40);
    s.record_second_factor_success(&u).await.unwrap();
    assert_eq!(s.lockout_state(&u).await.unwrap().failures, 0);

    // 60 parallel tries against a lock at 10: exactly 10 are admitted, the 10th says it locks.
    let default = LockoutPolicy::default();
    let verdicts = parallel(60, || {
        let (s, u) = (s.clone(), u.clone());
        async move {
            s.admit_second_factor_attempt(&u, 50, &default)
                .await
                .unwrap()
        }
    })
    .await;
    let until = 50 + default.lock_secs();
    let admitted = verdicts
        .iter()
        .filter(|a| matches!(a, Attempt::Admitted { .. }))
        .count();
    assert_eq!(admitted, default.max_failures() as usize);
    assert_eq!(
        verdicts
            .iter()
            .filter(|a| **a
                == Attempt::Admitted {
                    locks_until: Some(until)
                })
            .count(),
        1
    );
    assert_eq!(
        s.lockout_state(&u)
            .await
            .unwrap()
            .locked_until(51, &default),
        Some(until)
    );
}

pub async fn messages_are_limited_per_user_atomically(s: Arc<dyn Store>) {
    let (u, other) = (UserId::generate(), UserId::generate());
    let limit = RateLimit::new(10, 900).unwrap();
    let verdicts = parallel(30, || {
        let (s, u) = (s.clone(), u.clone());
        async move { s.admit_message(&u, 100, &limit).await.unwrap() }
    })
    .await;
    let admitted = verdicts
        .iter()
        .filter(|a| **a == RateAdmission::Admitted)
        .count();
    assert_eq!(admitted, 10);
    assert!(verdicts.contains(&RateAdmission::Refused { retry_at: 1000 }));
    // Another user is not held back; the window slides at exactly 100 + 900.
    assert_eq!(
        s.admit_message(&other, 100, &limit).await.unwrap(),
        RateAdmission::Admitted
    );
    assert_eq!(
        s.admit_message(&u, 999, &limit).await.unwrap(),
        RateAdmission::Refused { retry_at: 1000 }
    );
    assert_eq!(
        s.admit_message(&u, 1000, &limit).await.unwrap(),
        RateAdmission::Admitted
    );
    // A window is purged once every counted message has left it.
    assert_eq!(s.purge_expired(999).await.unwrap(), 0);
    assert_eq!(s.purge_expired(1000).await.unwrap(), 1, "the other user's");
    assert_eq!(s.purge_expired(1899).await.unwrap(), 0);
    assert_eq!(s.purge_expired(1900).await.unwrap(), 1);
}

pub async fn password_tries_are_throttled_atomically(s: Arc<dyn Store>) {
    let policy = ThrottlePolicy::default();
    // Throttled by login name, whatever its case, whether or not such a user exists.
    let verdicts = parallel(20, || {
        let s = s.clone();
        async move {
            s.admit_password_attempt("Ann@Example.com", 100, &policy)
                .await
                .unwrap()
        }
    })
    .await;
    let admitted = verdicts
        .iter()
        .filter(|t| **t == Throttle::Admitted)
        .count();
    assert_eq!(admitted, 5, "{verdicts:?}");
    assert_eq!(
        s.admit_password_attempt("ann@example.com", 100, &policy)
            .await
            .unwrap(),
        Throttle::Wait { retry_at: 101 }
    );
    assert_eq!(
        s.admit_password_attempt("bob@example.com", 100, &policy)
            .await
            .unwrap(),
        Throttle::Admitted
    );
    s.reset_password_failures("ANN@example.com").await.unwrap();
    assert_eq!(
        s.admit_password_attempt("ann@example.com", 100, &policy)
            .await
            .unwrap(),
        Throttle::Admitted
    );
    let idle = 100 + policy.lock_secs();
    assert_eq!(s.purge_expired(idle - 1).await.unwrap(), 0);
    assert_eq!(s.purge_expired(idle).await.unwrap(), 2);
}

pub async fn audit_is_filtered_and_limited(s: Arc<dyn Store>) {
    let (t1, t2) = (TenantId::generate(), TenantId::generate());
    for i in 0..6u64 {
        let tenant = if i % 2 == 0 { t1.clone() } else { t2.clone() };
        let e = AuditEvent {
            at: i,
            tenant: Some(tenant),
            actor: "a".into(),
            action: format!("act{i}"),
            target: "x".into(),
            outcome: Outcome::Success,
            source_ip: None,
            pam: (i == 1).then(|| crate::domain::PamLogin {
                host: "c_host".into(),
                user: "ann".into(),
                service: "sshd".into(),
                rhost: Some("192.0.2.7".into()),
                tty: None,
            }),
        };
        s.append_audit(&e).await.unwrap();
    }
    let actions = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.action).collect::<Vec<_>>();
    assert_eq!(
        actions(s.list_audit(None, None, 100).await.unwrap()),
        ["act0", "act1", "act2", "act3", "act4", "act5"]
    );
    assert_eq!(
        actions(s.list_audit(Some(&t1), None, 100).await.unwrap()),
        ["act0", "act2", "act4"]
    );
    assert_eq!(
        actions(s.list_audit(None, Some(3), 100).await.unwrap()),
        ["act3", "act4", "act5"]
    );
    assert_eq!(
        actions(s.list_audit(None, None, 2).await.unwrap()),
        ["act4", "act5"]
    );
}

fn refresh(grant_id: &str, expires_at: u64) -> RefreshRecord {
    RefreshRecord {
        grant_id: grant_id.into(),
        client_id: ClientId::from_string("c_panel".into()),
        user_id: UserId::from_string("u_ann".into()),
        scope: "openid".into(),
        auth_time: 1,
        amr: vec![Amr::Pwd],
        acr: Acr::OneFactor,
        epoch: 0,
        expires_at,
    }
}

fn flow(expires_at: u64) -> LoginFlow {
    LoginFlow {
        request: AuthRequest {
            client_id: ClientId::from_string("c_panel".into()),
            redirect_uri: "https://p/cb".into(),
            scope: "openid".into(),
            state: Some("s".into()),
            nonce: None,
            code_challenge: None,
            second_factor_requested: false,
            login_hint: None,
        },
        step: LoginStep::Password,
        expires_at,
        return_to: None,
    }
}

fn session(expires_at: u64) -> Session {
    Session {
        user_id: UserId::from_string("u_ann".into()),
        auth_time: 1,
        amr: vec![Amr::Pwd],
        acr: Acr::OneFactor,
        epoch: 0,
        second_factor_at: None,
        expires_at,
        step_up: None,
        totp_pending: None,
        duo_push: None,
        duo_pending: None,
    }
}

pub async fn sessions_and_flows_round_trip(s: Arc<dyn Store>) {
    s.put_session(&[1; 32], &session(100)).await.unwrap();
    assert_eq!(s.get_session(&[1; 32]).await.unwrap(), Some(session(100)));
    let fresh = Session {
        second_factor_at: Some(7),
        ..session(100)
    };
    assert!(
        !s.swap_session(&[1; 32], &session(99), &fresh)
            .await
            .unwrap(),
        "a stale expectation changes nothing"
    );
    assert!(
        s.swap_session(&[1; 32], &session(100), &fresh)
            .await
            .unwrap()
    );
    assert!(
        !s.swap_session(&[1; 32], &session(100), &session(300))
            .await
            .unwrap(),
        "the second of two racing posts loses"
    );
    assert_eq!(s.get_session(&[1; 32]).await.unwrap(), Some(fresh.clone()));
    s.delete_session(&[1; 32]).await.unwrap();
    assert_eq!(s.get_session(&[1; 32]).await.unwrap(), None);
    assert!(
        !s.swap_session(&[1; 32], &fresh, &session(300))
            .await
            .unwrap(),
        "an ended session is not brought back"
    );
    assert_eq!(s.get_session(&[1; 32]).await.unwrap(), None);
    s.put_login_flow(&[2; 32], &flow(100)).await.unwrap();
    assert_eq!(s.get_login_flow(&[2; 32]).await.unwrap(), Some(flow(100)));
    assert!(
        !s.swap_login_flow(&[2; 32], &flow(99), &flow(200))
            .await
            .unwrap(),
        "a stale expectation changes nothing"
    );
    assert!(
        s.swap_login_flow(&[2; 32], &flow(100), &flow(200))
            .await
            .unwrap()
    );
    assert!(
        !s.swap_login_flow(&[2; 32], &flow(100), &flow(300))
            .await
            .unwrap(),
        "the second of two racing posts loses"
    );
    assert_eq!(s.take_login_flow(&[2; 32]).await.unwrap(), Some(flow(200)));
    assert_eq!(s.take_login_flow(&[2; 32]).await.unwrap(), None);
    assert!(
        !s.swap_login_flow(&[2; 32], &flow(200), &flow(300))
            .await
            .unwrap()
    );
}

pub async fn refresh_rotates_once_and_detects_reuse(s: Arc<dyn Store>) {
    s.put_refresh_token(&[1; 32], &refresh("g", 100))
        .await
        .unwrap();
    assert_eq!(
        s.rotate_refresh_token(&[1; 32], &[2; 32], &refresh("g", 200))
            .await
            .unwrap(),
        Rotation::Rotated(refresh("g", 100))
    );
    assert_eq!(
        s.get_refresh_token(&[1; 32]).await.unwrap(),
        Some((refresh("g", 100), true))
    );
    assert_eq!(
        s.get_refresh_token(&[2; 32]).await.unwrap(),
        Some((refresh("g", 200), false))
    );
    assert_eq!(
        s.rotate_refresh_token(&[1; 32], &[3; 32], &refresh("g", 300))
            .await
            .unwrap(),
        Rotation::Reused(refresh("g", 100))
    );
    assert_eq!(
        s.get_refresh_token(&[3; 32]).await.unwrap(),
        None,
        "a reused token mints nothing"
    );
    assert_eq!(
        s.rotate_refresh_token(&[9; 32], &[4; 32], &refresh("g", 300))
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

pub async fn refresh_race_has_one_winner(s: Arc<dyn Store>) {
    s.put_refresh_token(&[1; 32], &refresh("g", 100))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                matches!(
                    s.rotate_refresh_token(&[1; 32], &[10 + i; 32], &refresh("g", 100))
                        .await
                        .unwrap(),
                    Rotation::Rotated(_)
                )
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub async fn revocations_are_remembered(s: Arc<dyn Store>) {
    assert!(!s.is_revoked("g").await.unwrap());
    s.revoke_grant("g", 100).await.unwrap();
    s.revoke_token("jti-1", 100).await.unwrap();
    assert!(s.is_revoked("g").await.unwrap());
    assert!(s.is_revoked("jti-1").await.unwrap());
    assert!(!s.is_revoked("jti-2").await.unwrap());
}

pub async fn expired_records_are_purged(s: Arc<dyn Store>) {
    s.put_auth_code(&[1; 32], &grant(50)).await.unwrap();
    s.put_auth_code(&[2; 32], &grant(500)).await.unwrap();
    s.put_session(&[1; 32], &session(50)).await.unwrap();
    s.put_session(&[2; 32], &session(500)).await.unwrap();
    s.put_login_flow(&[1; 32], &flow(50)).await.unwrap();
    s.put_pam_transaction(&[1; 32], &pam_transaction(50))
        .await
        .unwrap();
    s.put_pam_transaction(&[2; 32], &pam_transaction(500))
        .await
        .unwrap();
    s.put_refresh_token(&[1; 32], &refresh("g", 50))
        .await
        .unwrap();
    s.revoke_token("old", 50).await.unwrap();
    s.revoke_token("new", 500).await.unwrap();
    s.put_password_link(&[1; 32], &password_link(50))
        .await
        .unwrap();
    s.put_password_link(&[2; 32], &password_link(5000))
        .await
        .unwrap();
    assert_eq!(s.purge_expired(100).await.unwrap(), 7);
    assert_eq!(s.get_password_link(&[1; 32]).await.unwrap(), None);
    assert!(s.get_password_link(&[2; 32]).await.unwrap().is_some());
    assert_eq!(s.get_pam_transaction(&[1; 32]).await.unwrap(), None);
    assert!(s.get_pam_transaction(&[2; 32]).await.unwrap().is_some());
    assert_eq!(s.take_auth_code(&[1; 32]).await.unwrap(), CodeTake::Unknown);
    assert!(matches!(
        s.take_auth_code(&[2; 32]).await.unwrap(),
        CodeTake::Fresh(_)
    ));
    assert!(s.get_session(&[2; 32]).await.unwrap().is_some());
    assert!(s.is_revoked("new").await.unwrap() && !s.is_revoked("old").await.unwrap());
    // A redeemed code's tombstone outlives the code, then goes too.
    assert_eq!(
        s.purge_expired(500 + super::CODE_TOMBSTONE_SECS - 1)
            .await
            .unwrap(),
        3,
        "the session, the PAM transaction and the revocation of 500, not the tombstone"
    );
    assert!(matches!(
        s.take_auth_code(&[2; 32]).await.unwrap(),
        CodeTake::Reused { .. }
    ));
    s.purge_expired(500 + super::CODE_TOMBSTONE_SECS)
        .await
        .unwrap();
    assert_eq!(s.take_auth_code(&[2; 32]).await.unwrap(), CodeTake::Unknown);
}

pub async fn sealed_values_are_listed_and_replaced(s: Arc<dyn Store>) {
    let k = MasterKey::generate().unwrap();
    let seal = |purpose: &str, v: &[u8]| k.seal(purpose, v).unwrap();
    let check = k.key_check().unwrap();
    s.init_key_check(&check).await.unwrap();
    let key = SigningKeyRecord {
        kid: "k1".into(),
        alg: SigningAlg::ES256,
        pkcs8: seal("signing-key", b"der"),
        created_at: 10,
        retired_at: None,
    };
    s.put_signing_key(&key).await.unwrap();
    let mut t = tenant("Acme");
    let skey = seal("duo-skey", b"skey");
    t.duo = Some(DuoConfig {
        ikey: "DIXXXXXXXXXXXXXXXXXX".into(),
        skey: skey.clone(),
        api_host: "api-x.duosecurity.com".into(),
    });
    s.create_tenant(&t).await.unwrap();
    s.create_tenant(&tenant("No Duo")).await.unwrap();
    let mut ann = user(&t, "ann@example.com");
    let seed = seal("totp-seed", b"seed");
    ann.totp = Some(TotpEnrolment {
        seed: seed.clone(),
        enrolled_at: 7,
    });
    s.create_user(&ann).await.unwrap();
    s.create_user(&user(&t, "bob@example.com")).await.unwrap();
    let pending = seal("totp-seed", b"pending");
    let enrolling = Session {
        totp_pending: Some(pending.clone()),
        ..session(100)
    };
    s.put_session(&[9; 32], &enrolling).await.unwrap();
    s.put_session(&[8; 32], &session(100)).await.unwrap();

    let expected = [
        (SealedAt::KeyCheck, check),
        (SealedAt::SigningKey("k1".into()), key.pkcs8.clone()),
        (SealedAt::DuoSecretKey(t.id.clone()), skey),
        (SealedAt::TotpSeed(ann.id.clone()), seed),
        (SealedAt::PendingTotpSeed([9; 32]), pending),
    ];
    let listed = s.list_sealed().await.unwrap();
    assert_eq!(listed.len(), expected.len(), "{listed:?}");
    for e in &expected {
        assert!(listed.contains(e), "{e:?} not listed");
    }

    for (at, old) in &expected {
        let new = seal(at.purpose(), b"new");
        assert!(
            !s.replace_sealed(at, &new, &new).await.unwrap(),
            "{at:?}: a stale expectation changes nothing"
        );
        assert!(s.replace_sealed(at, old, &new).await.unwrap(), "{at:?}");
        assert!(
            !s.replace_sealed(at, old, &new).await.unwrap(),
            "{at:?}: replaced once"
        );
    }
    for (at, value) in s.list_sealed().await.unwrap() {
        assert_eq!(
            k.open(at.purpose(), &value).unwrap().as_slice(),
            b"new",
            "{at:?}"
        );
    }
    // Only the sealed field changed.
    let stored = s.get_user(&ann.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.email.as_str(), stored.totp.unwrap().enrolled_at),
        ("ann@example.com", 7)
    );
    let stored = s.get_tenant(&t.id).await.unwrap().unwrap();
    assert_eq!(stored.duo.unwrap().ikey, "DIXXXXXXXXXXXXXXXXXX");
    assert_eq!(
        s.get_session(&[9; 32]).await.unwrap().unwrap().expires_at,
        100
    );
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!((keys.len(), keys[0].created_at), (1, 10));
    let ghost = seal("totp-seed", b"x");
    assert!(
        !s.replace_sealed(&SealedAt::TotpSeed(UserId::generate()), &ghost, &ghost)
            .await
            .unwrap()
    );
}

fn pam_transaction(expires_at: u64) -> PamTransaction {
    PamTransaction {
        user_id: Some(UserId::from_string("u_ann".into())),
        factor: padlock_policy::Factor::Totp,
        code: None,
        duo_push: None,
        duo_bypassed: false,
        login: PamLogin {
            host: "c_host".into(),
            user: "ann".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.1".into()),
            tty: Some("ssh".into()),
        },
        expires_at,
    }
}

/// A Unix name (given, or the email's local part) belongs to one user per company, on create and
/// on update; other companies may use it too.
pub async fn unix_names_are_unique_per_company(s: Arc<dyn Store>) {
    let acme = tenant("Acme");
    let globex = tenant("Globex");
    s.create_tenant(&acme).await.unwrap();
    s.create_tenant(&globex).await.unwrap();
    let ann = user(&acme, "ann@acme.example");
    s.create_user(&ann).await.unwrap();
    // The same local part at another domain of the same company is the same Unix name.
    assert!(matches!(
        s.create_user(&user(&acme, "ann@other.example")).await,
        Err(StoreError::Conflict(_))
    ));
    let named = User {
        unix_name: Some("ann".into()),
        ..user(&acme, "anna@acme.example")
    };
    assert!(matches!(
        s.create_user(&named).await,
        Err(StoreError::Conflict(_))
    ));
    // Another company may have its own `ann`.
    s.create_user(&user(&globex, "ann@globex.example"))
        .await
        .unwrap();
    let bob = user(&acme, "bob@acme.example");
    s.create_user(&bob).await.unwrap();
    let found = s.find_users_by_unix_name(&acme.id, "ann").await.unwrap();
    assert_eq!(found.iter().map(|u| &u.id).collect::<Vec<_>>(), [&ann.id]);
    assert!(
        s.find_users_by_unix_name(&acme.id, "Ann")
            .await
            .unwrap()
            .is_empty(),
        "Unix names are compared exactly"
    );
    // Bob cannot take ann's name; the refused update changes nothing.
    let bob_as_ann = User {
        unix_name: Some("ann".into()),
        ..bob.clone()
    };
    assert!(matches!(
        s.update_user(&bob_as_ann).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_user(&bob.id).await.unwrap(), Some(bob.clone()));
    // Ann renames herself: her old name is free, the new one is hers.
    let ann_renamed = User {
        unix_name: Some("annie".into()),
        ..ann.clone()
    };
    s.update_user(&ann_renamed).await.unwrap();
    assert!(
        s.find_users_by_unix_name(&acme.id, "ann")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.find_users_by_unix_name(&acme.id, "annie")
            .await
            .unwrap()
            .len(),
        1
    );
    s.update_user(&bob_as_ann).await.unwrap();
    let found = s.find_users_by_unix_name(&acme.id, "ann").await.unwrap();
    assert_eq!(found.iter().map(|u| &u.id).collect::<Vec<_>>(), [&bob.id]);
    // An update that keeps the name (other fields change) is no conflict with itself.
    s.update_user(&User {
        disabled: true,
        ..bob_as_ann
    })
    .await
    .unwrap();
}

/// `swap_user` writes only over the record it read: a stale copy (another write came first)
/// writes nothing; of parallel swaps from one copy exactly one wins; the email stays, the Unix
/// name stays unique.
pub async fn user_swaps_lose_to_an_earlier_write(s: Arc<dyn Store>) {
    let acme = tenant("Acme");
    s.create_tenant(&acme).await.unwrap();
    let ann = user(&acme, "ann@acme.example");
    s.create_user(&ann).await.unwrap();
    s.create_user(&user(&acme, "bob@acme.example"))
        .await
        .unwrap();
    // An administrator disables Ann; Ann's own save, from the copy she read before, loses.
    let disabled = User {
        disabled: true,
        ..ann.clone()
    };
    assert!(s.swap_user(&ann, &disabled).await.unwrap());
    let her_save = User {
        preferred_method: Some(padlock_policy::Method::Totp),
        ..ann.clone()
    };
    assert!(!s.swap_user(&ann, &her_save).await.unwrap());
    assert_eq!(s.get_user(&ann.id).await.unwrap(), Some(disabled.clone()));
    // A swap moves the email and its index (the default Unix name with it); an email or a
    // Unix name another user has is refused, and nothing changes.
    let taken = User {
        email: "BOB@acme.example".into(),
        ..disabled.clone()
    };
    assert!(matches!(
        s.swap_user(&disabled, &taken).await,
        Err(StoreError::Conflict(_))
    ));
    let renamed = User {
        email: "eve@acme.example".into(),
        ..disabled.clone()
    };
    assert!(s.swap_user(&disabled, &renamed).await.unwrap());
    let now = s.get_user(&ann.id).await.unwrap().unwrap();
    assert_eq!(now.email, "eve@acme.example");
    assert_eq!(
        s.find_user_by_email("EVE@acme.example")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ann.id.clone())
    );
    assert!(
        s.find_user_by_email("ann@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.find_users_by_unix_name(&acme.id, "eve")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.find_users_by_unix_name(&acme.id, "ann")
            .await
            .unwrap()
            .is_empty()
    );
    // The old address is free again.
    s.create_user(&user(&acme, "ann@acme.example"))
        .await
        .unwrap();
    let as_bob = User {
        unix_name: Some("bob".into()),
        ..now.clone()
    };
    assert!(matches!(
        s.swap_user(&now, &as_bob).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_user(&ann.id).await.unwrap(), Some(now.clone()));
    // Parallel swaps from one copy: one winner.
    let wins = parallel(8, || {
        let (s, now) = (s.clone(), now.clone());
        async move {
            let mine = User {
                mobile: None,
                roles: vec![UserId::generate().to_string()],
                ..now.clone()
            };
            s.swap_user(&now, &mine).await.unwrap()
        }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    let gone = user(&acme, "nobody@acme.example");
    assert!(matches!(
        s.swap_user(&gone, &gone).await,
        Err(StoreError::NotFound(_))
    ));
}

/// `swap_tenant` writes only over the record it read, never changes the name, and of parallel
/// swaps from one copy exactly one wins.
pub async fn company_swaps_lose_to_an_earlier_write(s: Arc<dyn Store>) {
    let acme = tenant("Acme");
    s.create_tenant(&acme).await.unwrap();
    let on = Tenant {
        two_factor: TwoFactorPolicy {
            enabled: true,
            ..TwoFactorPolicy::default()
        },
        name: "Renamed".into(),
        ..acme.clone()
    };
    assert!(s.swap_tenant(&acme, &on).await.unwrap());
    let stored = s.get_tenant(&acme.id).await.unwrap().unwrap();
    assert!(stored.two_factor.enabled);
    assert_eq!(stored.name, "Acme", "the name is not changed by a swap");
    // A write from the copy read before the switch went on loses; the switch stays on.
    let stale = Tenant {
        created_at: 2,
        ..acme.clone()
    };
    assert!(!s.swap_tenant(&acme, &stale).await.unwrap());
    assert_eq!(s.get_tenant(&acme.id).await.unwrap(), Some(stored.clone()));
    let wins = parallel(8, || {
        let (s, stored) = (s.clone(), stored.clone());
        async move {
            let mine = Tenant {
                created_at: 1000 + u64::from(rand_byte()),
                ..stored.clone()
            };
            s.swap_tenant(&stored, &mine).await.unwrap()
        }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    let gone = tenant("Gone");
    assert!(matches!(
        s.swap_tenant(&gone, &gone).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A random byte, so parallel writers write different records.
fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b[0]
}

pub async fn clients_are_listed_and_removed(s: Arc<dyn Store>) {
    let host = |name: &str| Client {
        id: ClientId::generate(),
        name: name.into(),
        kind: ClientKind::PamHost,
        secret_sha256: Some("00".repeat(32)),
        scopes: vec![],
        tenant: Some(TenantId::generate()),
        created_at: 1,
    };
    let (a, b) = (host("a"), host("b"));
    s.put_client(&a).await.unwrap();
    s.put_client(&b).await.unwrap();
    let mut ids: Vec<_> = s
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    assert_eq!(ids, want);
    assert!(s.delete_client(&a.id).await.unwrap());
    assert!(!s.delete_client(&a.id).await.unwrap(), "already gone");
    assert_eq!(s.get_client(&a.id).await.unwrap(), None);
    assert_eq!(s.list_clients().await.unwrap(), vec![b]);
}

pub async fn pam_transactions_round_trip(s: Arc<dyn Store>) {
    let t = pam_transaction(100);
    s.put_pam_transaction(&[3; 32], &t).await.unwrap();
    assert_eq!(
        s.get_pam_transaction(&[3; 32]).await.unwrap(),
        Some(t.clone())
    );
    let later = PamTransaction {
        expires_at: 200,
        ..t.clone()
    };
    assert!(
        !s.swap_pam_transaction(&[3; 32], &later, &t).await.unwrap(),
        "a stale expectation changes nothing"
    );
    assert!(s.swap_pam_transaction(&[3; 32], &t, &later).await.unwrap());
    assert!(
        !s.swap_pam_transaction(&[3; 32], &t, &later).await.unwrap(),
        "the second of two racing answers loses"
    );
    assert_eq!(
        s.take_pam_transaction(&[3; 32]).await.unwrap(),
        Some(later.clone())
    );
    assert_eq!(s.take_pam_transaction(&[3; 32]).await.unwrap(), None);
    assert!(
        !s.swap_pam_transaction(&[3; 32], &later, &t).await.unwrap(),
        "a completed transaction is not brought back"
    );
}

fn password_link(expires_at: u64) -> PasswordLink {
    PasswordLink {
        user_id: UserId::from_string("u1".into()),
        password_fingerprint: "ab".repeat(32),
        expires_at,
    }
}

/// A set-password link reads back as stored, is taken once (one winner of a race), and is gone
/// after.
pub async fn password_links_are_taken_once(s: Arc<dyn Store>) {
    assert_eq!(s.get_password_link(&[7; 32]).await.unwrap(), None);
    s.put_password_link(&[7; 32], &password_link(900))
        .await
        .unwrap();
    assert_eq!(
        s.get_password_link(&[7; 32]).await.unwrap(),
        Some(password_link(900))
    );
    let takes = parallel(8, || {
        let s = s.clone();
        async move { s.take_password_link(&[7; 32]).await.unwrap() }
    })
    .await;
    assert_eq!(takes.iter().filter(|t| t.is_some()).count(), 1);
    assert_eq!(takes.into_iter().flatten().next(), Some(password_link(900)));
    assert_eq!(s.get_password_link(&[7; 32]).await.unwrap(), None);
    assert_eq!(s.take_password_link(&[7; 32]).await.unwrap(), None);
}

/// Reads every page of `q` (its `before` ignored) and returns the events in page order.
async fn all_pages(s: &Arc<dyn Store>, mut q: AuditQuery) -> (Vec<AuditEvent>, usize) {
    let (mut out, mut pages) = (Vec::new(), 0);
    q.before = None;
    loop {
        let page = s.audit_page(&q).await.unwrap();
        pages += 1;
        assert!(page.events.len() <= q.limit);
        out.extend(page.events);
        match page.next {
            Some(next) => q.before = Some(next),
            None => return (out, pages),
        }
    }
}

/// Audit pages come newest first from the company's (or a user's) index, continue exactly where
/// the last ended, apply the user, action, outcome and time filters, and end early (with a
/// cursor) after `scan_limit` examined events.
pub async fn audit_pages_follow_the_index_and_filters(s: Arc<dyn Store>) {
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let mut recorded = Vec::new();
    for i in 0..40u64 {
        let tenant = match i % 4 {
            0 => None,
            1 | 2 => Some(a.clone()),
            _ => Some(b.clone()),
        };
        let who = ["ann", "bob", "cy"][usize::try_from(i % 3).unwrap()];
        let e = AuditEvent {
            // Several events share a second: the recording order breaks the tie.
            at: 1000 + i / 3,
            tenant,
            actor: if i % 5 == 0 {
                "operator".into()
            } else {
                who.into()
            },
            action: ["login.password", "login.factor", "user.update"]
                [usize::try_from(i % 3).unwrap()]
            .into(),
            target: who.into(),
            outcome: if i % 7 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            source_ip: None,
            pam: None,
        };
        s.append_audit(&e).await.unwrap();
        recorded.push(e);
    }
    let newest_first = |keep: &dyn Fn(&AuditEvent) -> bool| -> Vec<AuditEvent> {
        recorded.iter().rev().filter(|e| keep(e)).cloned().collect()
    };
    type Keep<'a> = Box<dyn Fn(&AuditEvent) -> bool + 'a>;
    let queries: Vec<(AuditQuery, Keep<'_>)> = vec![
        (
            AuditQuery {
                limit: 7,
                ..AuditQuery::default()
            },
            Box::new(|_| true),
        ),
        (
            AuditQuery {
                tenant: Some(a.clone()),
                limit: 3,
                ..AuditQuery::default()
            },
            Box::new(|e| e.tenant.as_ref() == Some(&a)),
        ),
        (
            AuditQuery {
                tenant: Some(a.clone()),
                user: Some("ann".into()),
                limit: 2,
                ..AuditQuery::default()
            },
            Box::new(|e| e.tenant.as_ref() == Some(&a) && (e.actor == "ann" || e.target == "ann")),
        ),
        (
            AuditQuery {
                user: Some("bob".into()),
                limit: 4,
                ..AuditQuery::default()
            },
            Box::new(|e| e.actor == "bob" || e.target == "bob"),
        ),
        (
            AuditQuery {
                tenant: Some(b.clone()),
                action: Some("login.*".into()),
                limit: 2,
                ..AuditQuery::default()
            },
            Box::new(|e| e.tenant.as_ref() == Some(&b) && e.action.starts_with("login.")),
        ),
        (
            AuditQuery {
                action: Some("user.update".into()),
                outcome: Some(Outcome::Failure),
                limit: 5,
                ..AuditQuery::default()
            },
            Box::new(|e| e.action == "user.update" && e.outcome == Outcome::Failure),
        ),
        (
            AuditQuery {
                tenant: Some(a.clone()),
                since: Some(1005),
                limit: 4,
                ..AuditQuery::default()
            },
            Box::new(|e| e.tenant.as_ref() == Some(&a) && e.at >= 1005),
        ),
    ];
    // The outcome and action ranges of a company.
    let (qa, qb) = (a.clone(), b.clone());
    let mut queries = queries;
    queries.push((
        AuditQuery {
            tenant: Some(a.clone()),
            outcome: Some(Outcome::Failure),
            limit: 2,
            ..AuditQuery::default()
        },
        Box::new(move |e: &AuditEvent| {
            e.tenant.as_ref() == Some(&qa) && e.outcome == Outcome::Failure
        }),
    ));
    queries.push((
        AuditQuery {
            tenant: Some(b.clone()),
            action: Some("user.update".into()),
            limit: 2,
            ..AuditQuery::default()
        },
        Box::new(move |e: &AuditEvent| e.tenant.as_ref() == Some(&qb) && e.action == "user.update"),
    ));
    let qa = a.clone();
    queries.push((
        AuditQuery {
            tenant: Some(a.clone()),
            outcome: Some(Outcome::Failure),
            action: Some("login.*".into()),
            limit: 1,
            ..AuditQuery::default()
        },
        Box::new(move |e: &AuditEvent| {
            e.tenant.as_ref() == Some(&qa)
                && e.outcome == Outcome::Failure
                && e.action.starts_with("login.")
        }),
    ));
    for (q, keep) in queries {
        let want = newest_first(keep.as_ref());
        assert!(!want.is_empty(), "{q:?} matches something");
        assert_eq!(all_pages(&s, q.clone()).await.0, want, "{q:?}");
        // A small scan limit ends pages early but loses nothing.
        let slow = AuditQuery {
            scan_limit: 2,
            ..q.clone()
        };
        let (events, pages) = all_pages(&s, slow).await;
        assert_eq!(events, want, "{q:?} with scan_limit 2");
        assert!(pages >= want.len().div_ceil(2), "{q:?}: {pages} pages");
    }
    // Another company's events never show; a user with no events gives an empty last page.
    let none = AuditQuery {
        tenant: Some(TenantId::generate()),
        ..AuditQuery::default()
    };
    let page = s.audit_page(&none).await.unwrap();
    assert!(page.events.is_empty() && page.next.is_none());
    // Cursors read back as written.
    let c = AuditCursor {
        at: 1_765_000_000,
        seq: 42,
    };
    assert_eq!(c.to_string().parse::<AuditCursor>(), Ok(c));
    assert!("12".parse::<AuditCursor>().is_err() && "a.b".parse::<AuditCursor>().is_err());
}

/// A company's users come in email order (case-insensitive), a page at a time after an email,
/// and follow an email change; other companies' users never show.
pub async fn users_are_paged_by_email_per_company(s: Arc<dyn Store>) {
    let (t, other) = (tenant("Acme"), tenant("Other"));
    s.create_tenant(&t).await.unwrap();
    s.create_tenant(&other).await.unwrap();
    for email in [
        "dan@x.example",
        "Ann@x.example",
        "cy@x.example",
        "bob@x.example",
    ] {
        s.create_user(&user(&t, email)).await.unwrap();
    }
    s.create_user(&user(&other, "aaron@y.example"))
        .await
        .unwrap();
    let emails = |v: Vec<User>| v.into_iter().map(|u| u.email).collect::<Vec<_>>();
    assert_eq!(
        emails(s.list_users(&t.id).await.unwrap()),
        [
            "Ann@x.example",
            "bob@x.example",
            "cy@x.example",
            "dan@x.example"
        ]
    );
    assert_eq!(
        emails(s.users_page(&t.id, None, 2).await.unwrap()),
        ["Ann@x.example", "bob@x.example"]
    );
    assert_eq!(
        emails(s.users_page(&t.id, Some("BOB@x.example"), 2).await.unwrap()),
        ["cy@x.example", "dan@x.example"]
    );
    assert!(
        s.users_page(&t.id, Some("dan@x.example"), 2)
            .await
            .unwrap()
            .is_empty()
    );
    // An email change moves the user in the order.
    let cy = s.find_user_by_email("cy@x.example").await.unwrap().unwrap();
    let zed = User {
        email: "zed@x.example".into(),
        ..cy.clone()
    };
    assert!(s.swap_user(&cy, &zed).await.unwrap());
    assert_eq!(
        emails(s.list_users(&t.id).await.unwrap()),
        [
            "Ann@x.example",
            "bob@x.example",
            "dan@x.example",
            "zed@x.example"
        ]
    );
    assert_eq!(
        emails(s.list_users(&other.id).await.unwrap()),
        ["aaron@y.example"]
    );
}

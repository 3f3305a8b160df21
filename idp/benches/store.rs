//! Latency of the store operations on the token path, per backend.
//! Run: `cargo bench -p padlock-idp --bench store`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use padlock_idp::domain::AuthCodeGrant;
use padlock_idp::secret::{ClientId, UserId};
use padlock_idp::store::Store;
use padlock_idp::store::memory::MemoryStore;
use padlock_idp::store::sled::SledStore;
use padlock_policy::decision::{Acr, Amr};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

fn grant() -> AuthCodeGrant {
    AuthCodeGrant {
        client_id: ClientId::generate(),
        user_id: UserId::generate(),
        redirect_uri: "https://panel.example.com/oidc/callback".into(),
        scope: "openid email profile".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        auth_time: 1_800_000_000,
        amr: vec![Amr::Pwd, Amr::Otp],
        acr: Acr::TwoFactor,
        epoch: 0,
        expires_at: 1_800_000_060,
        grant_id: "bench-grant".into(),
    }
}

fn digest(n: u64) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&n.to_be_bytes());
    d
}

fn bench_backend(c: &mut Criterion, name: &str, store: &dyn Store) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let g = grant();
    let counter = AtomicU64::new(0);
    c.bench_function(&format!("store/{name}/put_auth_code"), |b| {
        b.iter(|| {
            rt.block_on(store.put_auth_code(
                &digest(counter.fetch_add(1, Ordering::Relaxed)),
                black_box(&g),
            ))
            .unwrap()
        })
    });
    c.bench_function(&format!("store/{name}/take_auth_code"), |b| {
        b.iter_batched(
            || {
                let d = digest(counter.fetch_add(1, Ordering::Relaxed));
                rt.block_on(store.put_auth_code(&d, &g)).unwrap();
                d
            },
            |d| rt.block_on(store.take_auth_code(black_box(&d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let user = UserId::generate();
    let step = AtomicU64::new(1);
    c.bench_function(&format!("store/{name}/accept_totp_step"), |b| {
        b.iter(|| {
            rt.block_on(store.accept_totp_step(&user, step.fetch_add(1, Ordering::Relaxed)))
                .unwrap()
        })
    });
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(dir.path(), 64 << 20).unwrap();
    bench_backend(c, "sled", &sled);
    bench_backend(c, "memory", &MemoryStore::new());
}

criterion_group!(store, benches);
criterion_main!(store);

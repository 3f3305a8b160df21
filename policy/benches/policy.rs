//! Cost of the policy decisions on the login hot path.
//! Run: `cargo bench -p padlock-policy`.

use criterion::{Criterion, criterion_group, criterion_main};
use padlock_policy::code::{CodeChallenge, CodeInput};
use padlock_policy::decision::{Subject, decide};
use padlock_policy::lockout::{LockoutPolicy, LockoutState};
use padlock_policy::mobile::E164;
use padlock_policy::tenant::{Method, Methods, TwoFactorPolicy};
use padlock_policy::totp;
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let policy = TwoFactorPolicy {
        enabled: true,
        methods: Methods::from_list(&[Method::SmsEmail, Method::Totp]),
        ..Default::default()
    };
    let mobile = E164::parse("+15551234567").unwrap();
    let subject = Subject {
        email: "ann@example.com",
        mobile: Some(&mobile),
        preferred: Some(Method::Totp),
        totp_enrolled: true,
        duo_enrolled: false,
        api_account: false,
        disabled: false,
    };
    let lockout = LockoutState::default();
    let lockout_policy = LockoutPolicy::default();
    c.bench_function("policy/decide", |b| {
        b.iter(|| {
            decide(
                black_box(&policy),
                black_box(&subject),
                &lockout,
                &lockout_policy,
                false,
                black_box(1_800_000_000),
            )
        })
    });

    let secret = b"12345678901234567890";
    let now = 1_800_000_000;
    let code = totp::code_at(secret, now).unwrap();
    c.bench_function("policy/totp_verify_skew1", |b| {
        b.iter(|| {
            totp::verify(
                black_box(secret),
                black_box(&code),
                black_box(now),
                1,
                Some(0),
            )
            .unwrap()
        })
    });

    c.bench_function("policy/code_submit_wrong", |b| {
        b.iter(|| {
            let mut ch = CodeChallenge::issue([1; 32], now);
            ch.advance(CodeInput::Submit(black_box([2; 32])), now + 1)
        })
    });
}

criterion_group!(policy, benches);
criterion_main!(policy);

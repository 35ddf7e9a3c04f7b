//! What a rate-limit check costs per request, next to what the request itself costs (a model run
//! is ~8 ms here): one busy client, 100 000 distinct clients cycling, and new clients meeting a
//! table full of busy ones.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use lookalike::rate_limit::{ClassRates, RateLimitSettings, RateLimits, RouteClass};

fn limits(max_tracked: usize) -> RateLimits {
    let mut settings = RateLimitSettings::off();
    // Generous enough that every check is allowed: what is measured is the bookkeeping.
    settings.classes[0] = ClassRates {
        per_address: "1000000/s".parse().expect("rate"),
        per_key: "1000000/s".parse().expect("rate"),
    };
    settings.max_tracked = max_tracked;
    RateLimits::new(&settings)
}

fn rate_limit(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit");
    let one = limits(100_000);
    let address: IpAddr = "192.0.2.1".parse().expect("ip");
    let key: Arc<str> = "acme".into();
    group.bench_function("one_client_address_and_key", |b| {
        b.iter(|| black_box(one.check(RouteClass::Upload, address, Some(&key))).is_ok())
    });
    let many = limits(100_000);
    let mut n: u32 = 0;
    group.bench_function("100k_clients_address", |b| {
        b.iter(|| {
            n = (n + 1) % 100_000;
            let address = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            black_box(many.check(RouteClass::Upload, address, None)).is_ok()
        })
    });
    // A table full of clients that are not idle (one request an hour each): new clients are
    // refused, and at most one request a second pays for a sweep.
    let mut settings = RateLimitSettings::off();
    settings.classes[0] = ClassRates {
        per_address: "1/h".parse().expect("rate"),
        per_key: "off".parse().expect("rate"),
    };
    settings.max_tracked = 100_000;
    let full = RateLimits::new(&settings);
    for n in 0..100_000u32 {
        let _ = full.check(RouteClass::Upload, IpAddr::from(n.to_be_bytes()), None);
    }
    let mut n: u32 = 100_000;
    group.bench_function("full_table_new_client_refused", |b| {
        b.iter(|| {
            n += 1;
            black_box(full.check(RouteClass::Upload, IpAddr::from(n.to_be_bytes()), None)).is_err()
        })
    });
    group.finish();
}

criterion_group!(benches, rate_limit);
criterion_main!(benches);

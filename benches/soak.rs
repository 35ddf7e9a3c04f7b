//! Soak and burst harness on the real binary (`make soak`):
//!
//!   cargo bench --bench soak -- [--seconds 60] [--clients 96] [--bomb-mib 300] [--binary PATH]
//!                               [--skip-bursts] [--skip-soak]
//!
//! Starts `lookalike serve` (this build's binary, or `--binary`, e.g. an older build to compare
//! with) on the default configuration, but for its listen address, a fresh database and a
//! temporary photo folder. Then:
//! 1. bursts: 100 concurrent report uploads of a 9 MB photo, then 200 concurrent searches with a
//!    3 MB 12 MP photo, each client from its own loopback address (so per-address rate limits
//!    count per client, as with real people): statuses, resets, peak RSS (VmHWM, reset between
//!    bursts) and RSS 5 s after;
//! 2. soak: `--clients` closed-loop clients, each from its own loopback address, mix uploads,
//!    searches, embeddings and reads for `--seconds`, while abusers (support/hostile.rs) open
//!    slow-header connections, trickle bodies from many addresses (declared, chunked, a report
//!    declaring 16 MB), send oversized ones, ask for a 3 MB photo and never read, send
//!    profile-bomb PNGs (`--bomb-mib` of colour profile, default 300) and poisoned coordinates.
//!    Every client writes its whole request before it reads, as most HTTP libraries do.
//!
//! It prints statuses per route (abusers' routes start with `abuse:`; their 4xx are expected),
//! the well-behaved clients' share of normal answers, resets, p50/p99, peak RSS and the
//! connection loop's counters, waits for the job queue to drain,
//! and checks in `/v1/status` that every permit, slot and byte reserved was given back. It fails
//! (exit 1) on any reset, any 5xx other than 503, or anything not returned. Loopback only; every
//! loop is bounded in time.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::hostile::{
    Outcome, Tally, Targets, client_address, connect, exchange, exchange_for_id, lock, multipart,
    request, status_of,
};
use support::serve::Serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A phone-like JPEG of `width`×`height` at quality 92 whose noise is chosen (by bisection) so
/// that the file is close to `bytes` long.
fn photo_of_size(width: u32, height: u32, bytes: usize) -> Vec<u8> {
    let (mut low, mut high) = (0u8, 64u8);
    let mut best = support::phone_photo(width, height, 92, high / 2, 7);
    while high - low > 1 {
        let noise = low + (high - low) / 2;
        let photo = support::phone_photo(width, height, 92, noise, 7);
        let closer = photo.len().abs_diff(bytes) < best.len().abs_diff(bytes);
        if photo.len() > bytes {
            high = noise;
        } else {
            low = noise;
        }
        if closer {
            best = photo;
        }
    }
    best
}

/// `(VmHWM, VmRSS)` of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets a process's peak RSS (VmHWM) to its current RSS.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// `count` clients, each from its own address, each sending `body` once at the same moment.
async fn burst(
    server: &Serve,
    title: &str,
    route: &'static str,
    request: Arc<Vec<u8>>,
    count: usize,
) -> u64 {
    let pid = server.child.id();
    reset_peak(pid);
    let (_, before) = memory_mib(pid);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (request, tally, start, addr) =
                (request.clone(), tally.clone(), start.clone(), server.addr);
            tokio::spawn(async move {
                start.wait().await;
                let began = Instant::now();
                let outcome = exchange(client_address(1000 + i), addr, &request).await;
                lock(&tally).record(route, outcome, began.elapsed().as_secs_f64());
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let (peak, _) = memory_mib(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, after) = memory_mib(pid);
    println!("\n{title}: RSS before {before:.0} MiB, peak {peak:.0} MiB, 5 s after {after:.0} MiB");
    let mut tally = lock(&tally);
    tally.print();
    tally.failures()
}

/// The soak: closed-loop clients over a mix of routes, and abusers beside them.
async fn soak(server: &Serve, clients: usize, seconds: u64, bomb_mib: usize) -> u64 {
    let small = Arc::new(support::phone_photo(1600, 1200, 90, 6, 1));
    let phone = Arc::new(photo_of_size(4000, 3000, 3_000_000));
    // What the abusers aim at: a stored 3 MB photo, and the profile bomb.
    let (ct, body) = multipart(
        &[("kind", "found"), ("species", "dog"), ("title", "big")],
        "photos",
        &phone,
    );
    let upload = request("POST", "/v1/reports", &ct, &body);
    let big_photo_url =
        support::hostile::created_photo_url(client_address(1), server.addr, &upload)
            .await
            .expect("the 3 MB photo is stored");
    let profile_bomb = Arc::new(support::hostile::profile_bomb(bomb_mib));
    println!(
        "abusers' targets: {big_photo_url} ({:.1} MB); a {:.0} KB PNG whose colour profile inflates to {bomb_mib} MiB",
        phone.len() as f64 / 1e6,
        profile_bomb.len() as f64 / 1e3
    );
    let targets = Arc::new(Targets {
        addr: server.addr,
        big_photo_url,
        big_photo_bytes: phone.len(),
        profile_bomb,
    });
    let pid = server.child.id();
    reset_peak(pid);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (tally, small, phone, addr) =
            (tally.clone(), small.clone(), phone.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            let from = client_address(5000 + c);
            let mut n = c;
            let mut report: Option<String> = None;
            while Instant::now() < until {
                n += 1;
                let photo = if n % 7 == 0 { &phone } else { &small };
                let (route, req) = match n % 10 {
                    0 | 1 => {
                        let (ct, body) = multipart(
                            &[("kind", "found"), ("species", "dog"), ("title", "soak")],
                            "photos",
                            &unique(photo, n, c),
                        );
                        (
                            "POST /v1/reports",
                            request("POST", "/v1/reports", &ct, &body),
                        )
                    }
                    2..=4 => {
                        let (ct, body) = multipart(&[("k", "10")], "photo", photo);
                        ("POST /v1/search", request("POST", "/v1/search", &ct, &body))
                    }
                    5 | 6 => {
                        let (ct, body) = multipart(&[], "photos", photo);
                        (
                            "POST /v1/embeddings",
                            request("POST", "/v1/embeddings", &ct, &body),
                        )
                    }
                    7 => (
                        "GET /v1/status",
                        request("GET", "/v1/status", "text/plain", b""),
                    ),
                    8 => match &report {
                        Some(id) => (
                            "GET /v1/reports/{id}",
                            request("GET", &format!("/v1/reports/{id}"), "text/plain", b""),
                        ),
                        None => (
                            "GET /v1/reports",
                            request("GET", "/v1/reports?limit=5", "text/plain", b""),
                        ),
                    },
                    _ => (
                        "GET /v1/reports",
                        request("GET", "/v1/reports?limit=5", "text/plain", b""),
                    ),
                };
                let began = Instant::now();
                let outcome = if route == "POST /v1/reports" {
                    // Keep one created report per client to read back.
                    let (outcome, id) = exchange_for_id(from, addr, &req).await;
                    if id.is_some() {
                        report = id;
                    }
                    outcome
                } else {
                    exchange(from, addr, &req).await
                };
                lock(&tally).record(route, outcome, began.elapsed().as_secs_f64());
                if outcome == Outcome::Status(429) || outcome == Outcome::Status(503) {
                    // A real client backs off a little; the harness keeps it short.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    tasks.push(tokio::spawn(support::hostile::abusers(
        targets,
        tally.clone(),
        until,
    )));
    for task in tasks {
        let _ = task.await;
    }
    let (peak, now) = memory_mib(pid);
    println!("\nsoak: {clients} clients for {seconds} s; RSS peak {peak:.0} MiB, now {now:.0} MiB");
    let failures = {
        let mut tally = lock(&tally);
        tally.print();
        tally.print_well_behaved();
        tally.failures()
    };
    let (_, status) = get_json(server, "/v1/status").await;
    println!("\nconnection loop (since start):");
    for counter in [
        "accepted_total",
        "refused_total",
        "header_timeouts_total",
        "idle_closed_total",
        "body_timeouts_total",
        "body_too_slow_total",
        "write_stalls_total",
        "response_timeouts_total",
        "linger_cut_total",
    ] {
        println!("  {counter:<30} {}", status["connections"][counter]);
    }
    for (what, value) in [
        (
            "body memory rejections",
            &status["body_memory"]["rejected_total"],
        ),
        (
            "bodies per address rejections",
            &status["body_memory"]["per_address_bodies_rejected_total"],
        ),
        (
            "body memory per address rej.",
            &status["body_memory"]["per_address_memory_rejected_total"],
        ),
        (
            "uploads per address rej.",
            &status["uploads"]["per_address_rejected_total"],
        ),
    ] {
        println!("  {what:<30} {value}");
    }
    failures
}

/// The JPEG with a comment segment naming the client and request, so that each upload is a new
/// photo (and a new job) that decodes like the original.
fn unique(photo: &[u8], n: usize, c: usize) -> Vec<u8> {
    let tag = format!("soak {c} {n}");
    let length = u16::try_from(tag.len() + 2).unwrap_or(u16::MAX);
    let mut p = Vec::with_capacity(photo.len() + tag.len() + 4);
    p.extend_from_slice(&photo[..2]);
    p.extend_from_slice(&[0xFF, 0xFE]);
    p.extend_from_slice(&length.to_be_bytes());
    p.extend_from_slice(tag.as_bytes());
    p.extend_from_slice(&photo[2..]);
    p
}

/// Waits for the job queue to drain, then checks that everything reserved was given back.
async fn check_returned(server: &Serve) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let (outcome, body) = get_json(server, "/v1/status").await;
        let left = body["jobs"]["queue"]["queued"].as_i64().unwrap_or(0)
            + body["jobs"]["queue"]["running"].as_i64().unwrap_or(0);
        if outcome == Outcome::Status(200) && left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Job counts are cached for a second: let the last finished job show, then look.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, status) = get_json(server, "/v1/status").await;
    let checks = [
        ("gate permits in use", &status["gate"]["permits_in_use"]),
        (
            "gate admitted (interactive)",
            &status["gate"]["admitted_interactive"],
        ),
        (
            "gate admitted (background)",
            &status["gate"]["admitted_background"],
        ),
        ("decode slots in use", &status["decode"]["in_use"]),
        ("upload slots in use", &status["uploads"]["in_use"]),
        (
            "body memory reserved",
            &status["body_memory"]["reserved_bytes"],
        ),
        ("jobs queued", &status["jobs"]["queue"]["queued"]),
        ("jobs running", &status["jobs"]["queue"]["running"]),
    ];
    println!("\nafterwards (jobs drained):");
    let mut leaks = 0;
    for (what, value) in checks {
        match value.as_i64() {
            Some(n) => {
                println!("  {what:<30} {n}");
                leaks += u64::from(n != 0);
            }
            None => println!("  {what:<30} (not reported by this build)"),
        }
    }
    // Only the status request's own connection may be open.
    if let Some(open) = status["connections"]["open"].as_i64() {
        println!("  {:<30} {open}", "connections open");
        leaks += u64::from(open > 1);
    }
    println!(
        "  {:<30} {}",
        "jobs failed", status["jobs"]["queue"]["failed"]
    );
    leaks
}

async fn get_json(server: &Serve, path: &str) -> (Outcome, Value) {
    let Ok(mut stream) = connect(client_address(0), server.addr).await else {
        return (Outcome::Reset, Value::Null);
    };
    let _ = stream
        .write_all(&request("GET", path, "text/plain", b""))
        .await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|p| serde_json::from_slice(&answer[p + 4..]).ok())
        .unwrap_or(Value::Null);
    (
        status_of(&answer).map_or(Outcome::Reset, Outcome::Status),
        body,
    )
}

fn main() {
    let seconds: u64 = support::arg("--seconds", 60);
    let clients: usize = support::arg("--clients", 96);
    let bomb_mib: usize = support::arg("--bomb-mib", 300);
    let binary: String = support::arg("--binary", env!("CARGO_BIN_EXE_lookalike").to_owned());
    let args: Vec<String> = std::env::args().collect();
    let skip = |flag: &str| args.iter().any(|a| a == flag);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let failures = runtime.block_on(async {
        // Kept (not dropped) after the run, for a look at what it left.
        let database_url = support::BenchDatabase::create("soak").await.url;
        let storage = std::env::temp_dir().join(format!("lookalike-soak-{}", std::process::id()));
        let server = Serve::start(&binary, &database_url, &storage, &[]).await;
        println!("{binary} on {} (pid {})", server.addr, server.child.id());
        let mut failures = 0;
        if !skip("--skip-bursts") {
            let big = photo_of_size(6000, 4000, 9_000_000);
            let phone = photo_of_size(4000, 3000, 3_000_000);
            println!(
                "photos: upload {:.1} MB (24 MP), search {:.1} MB (12 MP)",
                big.len() as f64 / 1e6,
                phone.len() as f64 / 1e6
            );
            let (ct, body) = multipart(
                &[("kind", "lost"), ("species", "dog"), ("title", "burst")],
                "photos",
                &big,
            );
            let upload = Arc::new(request("POST", "/v1/reports", &ct, &body));
            failures += burst(
                &server,
                "burst: 100 concurrent 9 MB uploads",
                "POST /v1/reports",
                upload,
                100,
            )
            .await;
            let (ct, body) = multipart(&[], "photo", &phone);
            let search = Arc::new(request("POST", "/v1/search", &ct, &body));
            failures += burst(
                &server,
                "burst: 200 concurrent 3 MB searches",
                "POST /v1/search",
                search,
                200,
            )
            .await;
        }
        if !skip("--skip-soak") {
            failures += soak(&server, clients, seconds, bomb_mib).await;
        }
        let leaks = check_returned(&server).await;
        drop(server);
        let _ = std::fs::remove_dir_all(&storage);
        println!("\nfailures (resets, 5xx but 503): {failures}; not given back: {leaks}");
        failures + leaks
    });
    if failures > 0 {
        std::process::exit(1);
    }
}

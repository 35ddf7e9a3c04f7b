//! Load test of `POST /v1/embeddings`: C concurrent clients for T seconds, keep-alive HTTP/1.1.
//!
//!   cargo bench --bench load -- [--clients 8] [--seconds 10] [--photo FILE] [--url http://HOST:PORT]
//!                               [--path /v1/embeddings] [--field photos] [--max-batch 4] [--shed-clients 64]
//!   cargo bench --bench load -- --write-photos DIR   (writes 3mp.jpg and 12mp.jpg, then exits)
//!
//! `--path` and `--field` point it at another service with the same job, e.g. the peer of
//! `../shared/peer` (`--path /embeddings/generate --field file`); only 200 answers count.
//!
//! Without `--url` it starts the service in-process on 127.0.0.1 (an ephemeral port) and first
//! measures the bare cost per photo (imaging + one model run, sequentially, no HTTP, no gate), so
//! the HTTP throughput can be read as a ratio of it. Then a shedding phase: `--shed-clients`
//! clients against a gate that admits few waiters, to measure how fast a 503 comes back.
//! Loopback only; every loop stops by itself after T seconds.

mod support;

use std::time::{Duration, Instant};

use lookalike::config::GateConfig;
use lookalike::imaging::{self, DecodeCaps};
use support::http::{drive, multipart, multipart_named, post_request, start_server};

struct Args {
    clients: usize,
    seconds: u64,
    photo: std::path::PathBuf,
    url: Option<String>,
    path: String,
    field: String,
    max_batch: usize,
    shed_clients: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        clients: 8,
        seconds: 10,
        photo: support::repo(".cache/samples/rocket.jpg"),
        url: None,
        path: "/v1/embeddings".into(),
        field: "photos".into(),
        max_batch: 4,
        shed_clients: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => args.clients = value().parse().expect("--clients N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--photo" => args.photo = value().into(),
            "--url" => args.url = Some(value()),
            "--path" => args.path = value(),
            "--field" => args.field = value(),
            "--max-batch" => args.max_batch = value().parse().expect("--max-batch N"),
            "--shed-clients" => args.shed_clients = value().parse().expect("--shed-clients N"),
            "--write-photos" => write_photos(std::path::Path::new(&value())),
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// `--write-photos DIR`: writes the photos of issue 25's comparison and exits: `3mp.jpg` (a
/// 2000×1500 phone-like JPEG, q90) and `12mp.jpg` (4000×3000, q92, sensor noise, about 3 MB),
/// for scripts/peer-compare.sh.
fn write_photos(dir: &std::path::Path) -> ! {
    std::fs::create_dir_all(dir).expect("the photo folder");
    for (name, bytes) in [
        ("3mp.jpg", support::phone_photo(2000, 1500, 90, 2, 0)),
        ("12mp.jpg", support::camera_like_jpeg()),
    ] {
        std::fs::write(dir.join(name), bytes).expect("writing a photo");
    }
    std::process::exit(0)
}

fn main() {
    let args = parse_args();
    let photo = std::fs::read(&args.photo)
        .expect("the photo to send (run `make load`, which sets up the samples)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        match &args.url {
            Some(url) => {
                let addr = url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
                let (content_type, body) = multipart_named(&args.field, &[], &[&photo]);
                let request = post_request(&addr, &args.path, &content_type, &body);
                let report = drive(&addr, &[request], args.clients, args.seconds).await;
                report.print(
                    &format!(
                        "{} clients, {} s, {url}{}",
                        args.clients, args.seconds, args.path
                    ),
                    None,
                );
            }
            None => in_process(&args, &photo).await,
        }
    });
}

async fn in_process(args: &Args, photo: &[u8]) {
    let bare = bare_photos_per_second(photo);
    println!("bare pipeline (imaging + model, sequential, no HTTP/gate): {bare:.1} photos/s");

    let gate = gate_defaults(args.max_batch);
    let (addr, stop, _) = start_server(gate, None).await;
    let report = drive(
        &addr,
        &[embeddings_request(&addr, photo)],
        args.clients,
        args.seconds,
    )
    .await;
    report.print(
        &format!(
            "{} clients, {} s, max batch {}",
            args.clients, args.seconds, args.max_batch
        ),
        Some(bare),
    );
    let _ = stop.send(());

    // Shedding: few waiters allowed, many clients: most answers are 503, and they must be fast.
    let shed_gate = GateConfig {
        max_waiters: 4,
        max_wait_ms: 500,
        ..gate_defaults(args.max_batch)
    };
    let (addr, stop, _) = start_server(shed_gate, None).await;
    let report = drive(
        &addr,
        &[embeddings_request(&addr, photo)],
        args.shed_clients,
        args.seconds.min(5),
    )
    .await;
    report.print(
        &format!("shedding: {} clients, 4 waiters allowed", args.shed_clients),
        Some(bare),
    );
    let _ = stop.send(());
}

fn embeddings_request(addr: &str, photo: &[u8]) -> std::sync::Arc<Vec<u8>> {
    let (content_type, body) = multipart(&[], &[photo]);
    post_request(addr, "/v1/embeddings", &content_type, &body)
}

fn gate_defaults(max_batch: usize) -> GateConfig {
    GateConfig {
        max_batch,
        ..GateConfig::default()
    }
}

/// Photos per second of imaging + one model run, one after the other, as the service configures them.
fn bare_photos_per_second(photo: &[u8]) -> f64 {
    let embedder = support::embedder(1, 0);
    let pre = embedder.preprocessing();
    let limits = DecodeCaps::default();
    let run = || {
        let p = imaging::prepare(photo, &pre, &limits).expect("the photo decodes");
        embedder
            .embed_batch(&[p.tensor.view()])
            .expect("the model runs");
    };
    for _ in 0..5 {
        run();
    }
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(5) {
        run();
        n += 1;
    }
    f64::from(n) / started.elapsed().as_secs_f64()
}

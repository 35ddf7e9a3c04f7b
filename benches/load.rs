//! Load test of `POST /v1/embeddings`: C concurrent clients for T seconds, keep-alive HTTP/1.1.
//!
//!   cargo bench --bench load -- [--clients 8] [--seconds 10] [--photo FILE] [--url http://HOST:PORT]
//!                               [--max-batch 4] [--shed-clients 64]
//!
//! Without `--url` it starts the service in-process on 127.0.0.1 (an ephemeral port) and first
//! measures the bare cost per photo (imaging + one model run, sequentially, no HTTP, no gate), so
//! the HTTP throughput can be read as a ratio of it. Then a shedding phase: `--shed-clients`
//! clients against a gate that admits few waiters, to measure how fast a 503 comes back.
//! Loopback only; every loop stops by itself after T seconds.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookalike::config::{
    DEFAULT_DATABASE_URL, DatabaseConfig, GateConfig, ImagingConfig, ModelConfig, UploadConfig,
};
use lookalike::imaging::{self, DecodeLimits};
use lookalike::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    clients: usize,
    seconds: u64,
    photo: std::path::PathBuf,
    url: Option<String>,
    max_batch: usize,
    shed_clients: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        clients: 8,
        seconds: 10,
        photo: support::repo(".cache/samples/rocket.jpg"),
        url: None,
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
            "--max-batch" => args.max_batch = value().parse().expect("--max-batch N"),
            "--shed-clients" => args.shed_clients = value().parse().expect("--shed-clients N"),
            _ => {} // cargo bench passes --bench
        }
    }
    args
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
                let report = drive(&addr, &photo, args.clients, args.seconds).await;
                report.print(
                    &format!("{} clients, {} s, {}", args.clients, args.seconds, url),
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
    let (addr, stop) = start_server(gate).await;
    let report = drive(&addr, photo, args.clients, args.seconds).await;
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
    let (addr, stop) = start_server(shed_gate).await;
    let report = drive(&addr, photo, args.shed_clients, args.seconds.min(5)).await;
    report.print(
        &format!("shedding: {} clients, 4 waiters allowed", args.shed_clients),
        Some(bare),
    );
    let _ = stop.send(());
}

fn gate_defaults(max_batch: usize) -> GateConfig {
    GateConfig {
        permits: 0,
        max_batch,
        max_waiters: 64,
        max_background_waiters: 64,
        max_wait_ms: 2000,
        max_background_wait_ms: 60000,
    }
}

/// Photos per second of imaging + one model run, one after the other, as the service configures them.
fn bare_photos_per_second(photo: &[u8]) -> f64 {
    let embedder = support::embedder(1, 0);
    let pre = embedder.preprocessing();
    let limits = DecodeLimits::default();
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

async fn start_server(gate: GateConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let model = ModelConfig {
        path: support::model_path(),
        ort_library: support::ort_library(),
        intra_threads: 0,
    };
    let imaging = ImagingConfig {
        max_megapixels: 50.0,
        max_decode_mib: 512,
        jpeg_dct_scaling: true,
        decode_permits: 0,
        decode_max_waiters: 128,
    };
    let uploads = UploadConfig {
        max_photo_bytes: 10 * 1024 * 1024,
        max_photos: 8,
        max_report_photos: 5,
        upload_permits: 10,
        upload_max_waiters: 100,
        upload_max_wait_ms: 5000,
    };
    let database = DatabaseConfig {
        url: std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned()),
        max_connections: 4,
        acquire_timeout_ms: 1000,
        statement_timeout_ms: 5000,
        connect_retry_secs: 0,
    };
    // /v1/embeddings does not touch the database; a lazy pool keeps the bench independent of it.
    let store = Store::connect_lazy(&database).expect("database URL parses");
    let gate = lookalike::service::load_gate(&model, &gate)
        .await
        .expect("model loads");
    let storage_dir = std::env::temp_dir().join("lookalike-load-photos");
    let storage =
        lookalike::storage::Storage::local(&storage_dir).expect("a temporary photo folder");
    let parts = lookalike::service::Parts {
        store,
        gate,
        storage,
        model_id: 0,
    };
    let state = lookalike::service::app_state(parts, &imaging, &uploads, 5);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address").to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, lookalike::http::router(state))
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    (addr, stop_tx)
}

#[derive(Default)]
struct Report {
    latencies: BTreeMap<u16, Vec<Duration>>,
    errors: usize,
    elapsed: Duration,
}

impl Report {
    fn print(&self, title: &str, bare: Option<f64>) {
        println!("== {title}");
        let secs = self.elapsed.as_secs_f64();
        for (status, lat) in &self.latencies {
            let mut lat = lat.clone();
            lat.sort();
            let pct = |p: f64| {
                lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1].as_secs_f64()
                    * 1e3
            };
            println!(
                "  {status}: {} answers, {:.1}/s, latency ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}",
                lat.len(),
                lat.len() as f64 / secs,
                pct(0.50),
                pct(0.95),
                pct(0.99),
                pct(1.0)
            );
        }
        if self.errors > 0 {
            println!("  connection errors: {}", self.errors);
        }
        let ok = self.latencies.get(&200).map_or(0, Vec::len) as f64 / secs;
        match bare {
            Some(bare) => println!("  throughput {ok:.1} photos/s = {:.2} x bare", ok / bare),
            None => println!("  throughput {ok:.1} photos/s"),
        }
    }
}

async fn drive(addr: &str, photo: &[u8], clients: usize, seconds: u64) -> Report {
    let (content_type, body) = multipart(photo);
    let request = Arc::new(
        [
            format!(
                "POST /v1/embeddings HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body,
        ]
        .concat(),
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, request) = (addr.to_owned(), request.clone());
            tokio::spawn(async move { client(&addr, &request, deadline).await })
        })
        .collect();
    let mut report = Report::default();
    for t in tasks {
        let (latencies, errors) = t.await.expect("client task");
        for (status, lat) in latencies {
            report.latencies.entry(status).or_default().push(lat);
        }
        report.errors += errors;
    }
    report.elapsed = started.elapsed();
    report
}

/// One keep-alive client: sends the request until the deadline, reconnecting after errors.
async fn client(addr: &str, request: &[u8], deadline: Instant) -> (Vec<(u16, Duration)>, usize) {
    let mut results = Vec::new();
    let mut errors = 0;
    let mut conn: Option<TcpStream> = None;
    while Instant::now() < deadline {
        let stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match exchange(stream, request).await {
            Ok((status, stream)) => {
                results.push((status, sent.elapsed()));
                conn = Some(stream);
            }
            Err(_) => errors += 1,
        }
    }
    (results, errors)
}

/// Writes one request and reads one response (status line, headers, Content-Length body).
async fn exchange(mut stream: TcpStream, request: &[u8]) -> std::io::Result<(u16, TcpStream)> {
    stream.write_all(request).await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, stream))
}

fn multipart(photo: &[u8]) -> (String, Vec<u8>) {
    let boundary = "lookalike-load-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"p\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

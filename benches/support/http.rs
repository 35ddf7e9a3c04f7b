//! A minimal keep-alive HTTP/1.1 load generator over tokio's TcpStream, and the in-process
//! service the load benches drive.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookalike::config::{
    DEFAULT_DATABASE_URL, DatabaseConfig, GateConfig, ImagingConfig, UploadConfig,
};
use lookalike::http::AppState;
use lookalike::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The photo folder of the in-process service.
pub fn storage_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lookalike-load-photos-{}", std::process::id()))
}

/// Sends every request once, `clients` at a time; fails on any answer but 2xx.
pub async fn send_all(addr: &str, requests: &[Arc<Vec<u8>>], clients: usize) {
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let mine: Vec<_> = requests.iter().skip(i).step_by(clients).cloned().collect();
            let addr = addr.to_owned();
            tokio::spawn(async move {
                for request in mine {
                    let stream = TcpStream::connect(&addr).await.expect("connect");
                    let (status, _) = exchange(stream, &request).await.expect("answer");
                    assert!((200..300).contains(&status), "status {status}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
}

/// Starts the service in-process on an ephemeral loopback port, over `database_url` (or a lazy
/// pool on the default database when `None`: `/v1/embeddings` does not touch it).
pub async fn start_server(
    gate: GateConfig,
    database_url: Option<String>,
) -> (String, tokio::sync::oneshot::Sender<()>, AppState) {
    let model = super::model_config();
    let imaging = ImagingConfig {
        max_megapixels: 50.0,
        max_decode_mib: 512,
        jpeg_dct_scaling: true,
        // LOOKALIKE_DECODE_PERMITS as the service reads it: the decode concurrency to try on a
        // GPU host, where decoding is the bottleneck (0: one per core).
        decode_permits: std::env::var("LOOKALIKE_DECODE_PERMITS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
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
        url: database_url.clone().unwrap_or_else(|| {
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
        }),
        max_connections: 16,
        acquire_timeout_ms: 3000,
        statement_timeout_ms: 15000,
        connect_retry_secs: 0,
    };
    let store = Store::connect_lazy(&database).expect("database URL parses");
    let gate = lookalike::service::load_gate(&model, &gate)
        .await
        .expect("model loads");
    let mut model_id = 0;
    if database_url.is_some() {
        store.migrate().await.expect("migrations");
        model_id = store
            .models()
            .register(gate.model().manifest())
            .await
            .expect("model registered");
    }
    let storage = lookalike::photo_store::PhotoStore::local(&storage_dir())
        .expect("a temporary photo folder");
    let parts = lookalike::service::Parts {
        store,
        gate,
        storage,
        model_id,
    };
    let state = lookalike::service::app_state(
        parts,
        &imaging,
        &uploads,
        &lookalike::config::SearchConfig::default(),
        5,
    );
    let served = state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address").to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The service's own connection loop, with its default deadlines and caps.
    let (stop_serving, serving) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = stop_rx.await;
        let _ = stop_serving.send(true);
    });
    let settings = lookalike::http::server::ServerSettings::from_config(
        &lookalike::config::EdgeConfig::default(),
    );
    let stats = served.connections.clone();
    tokio::spawn(lookalike::http::server::serve(
        listener,
        lookalike::http::router(served),
        settings,
        stats,
        serving,
    ));
    (addr, stop_tx, state)
}

#[derive(Default)]
pub struct Report {
    latencies: BTreeMap<u16, Vec<Duration>>,
    errors: usize,
    elapsed: Duration,
}

impl Report {
    /// Answers with this status per second.
    pub fn rate(&self, status: u16) -> f64 {
        self.latencies.get(&status).map_or(0, Vec::len) as f64 / self.elapsed.as_secs_f64()
    }

    /// Prints counts, rates and latency percentiles per status.
    pub fn print(&self, title: &str, bare: Option<f64>) {
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
        let ok = self
            .latencies
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, l)| l.len())
            .sum::<usize>() as f64
            / secs;
        match bare {
            Some(bare) => println!("  throughput {ok:.1} successes/s = {:.2} x bare", ok / bare),
            None => println!("  throughput {ok:.1} successes/s"),
        }
    }
}

/// A POST of a multipart body, as raw bytes.
pub fn post_request(addr: &str, path: &str, content_type: &str, body: &[u8]) -> Arc<Vec<u8>> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    Arc::new([head.as_bytes(), body].concat())
}

/// `clients` keep-alive clients send `requests` (client i takes every `clients`-th one, cycling)
/// for `seconds`.
pub async fn drive(addr: &str, requests: &[Arc<Vec<u8>>], clients: usize, seconds: u64) -> Report {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let mine: Vec<_> = requests
                .iter()
                .skip(i % requests.len())
                .step_by(clients)
                .cloned()
                .collect();
            let mine = if mine.is_empty() {
                vec![requests[i % requests.len()].clone()]
            } else {
                mine
            };
            let addr = addr.to_owned();
            tokio::spawn(async move { client(&addr, &mine, deadline).await })
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
async fn client(
    addr: &str,
    requests: &[Arc<Vec<u8>>],
    deadline: Instant,
) -> (Vec<(u16, Duration)>, usize) {
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
        let request = &requests[results.len() % requests.len()];
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

/// A multipart body: text fields, then photos in the field `photos`.
pub fn multipart(fields: &[(&str, &str)], photos: &[&[u8]]) -> (String, Vec<u8>) {
    multipart_named("photos", fields, photos)
}

/// [`multipart`] with the photos in the field `photo_field` (another service's contract).
pub fn multipart_named(
    photo_field: &str,
    fields: &[(&str, &str)],
    photos: &[&[u8]],
) -> (String, Vec<u8>) {
    let boundary = "lookalike-load-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for photo in photos {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{photo_field}\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(photo);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

//! A minimal keep-alive HTTP/1.1 load generator over tokio's TcpStream, and the in-process
//! service the load benches drive.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookalike::config::{DatabaseConfig, GateConfig, ImagingConfig, UploadConfig};
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
    // The service's defaults and the LOOKALIKE_* variables, as the service reads them (e.g.
    // LOOKALIKE_DECODE_PERMITS: the decode concurrency to try on a GPU host, where decoding is
    // the bottleneck).
    let imaging = ImagingConfig::default();
    let uploads = UploadConfig::default();
    let mut database = DatabaseConfig {
        connect_retry_secs: 0,
        ..DatabaseConfig::default()
    };
    if let Some(url) = &database_url {
        database.url = url.clone();
    }
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
    let photo_store = lookalike::photo_store::PhotoStore::local(&storage_dir())
        .expect("a temporary photo folder");
    let parts = lookalike::service::Parts {
        store,
        gate,
        photo_store,
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
    /// The service's own account of where a 2xx answer's time went (`x-decode-time`, ...), ms.
    stages: BTreeMap<String, Vec<f64>>,
    errors: usize,
    elapsed: Duration,
}

/// The `x-...-time` headers of an answer's head (lower-cased), as (name, milliseconds).
fn stage_times(head: &str) -> Vec<(String, f64)> {
    head.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let stage = name.strip_prefix("x-")?.strip_suffix("-time")?;
            Some((stage.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
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
        for (stage, ms) in &self.stages {
            let mut ms = ms.clone();
            ms.sort_by(f64::total_cmp);
            let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
            println!(
                "    the service's x-{stage}-time (2xx): p50 {:.1} p99 {:.1} max {:.1} ms",
                pct(0.5),
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
    let lists: Vec<Vec<Arc<Vec<u8>>>> = (0..clients)
        .map(|i| {
            let mine: Vec<_> = requests
                .iter()
                .skip(i % requests.len())
                .step_by(clients)
                .cloned()
                .collect();
            if mine.is_empty() {
                vec![requests[i % requests.len()].clone()]
            } else {
                mine
            }
        })
        .collect();
    let next: Arc<NextRequest> = Arc::new(move |client, n| {
        let mine = &lists[client];
        mine[n % mine.len()].clone()
    });
    drive_each(addr, clients, seconds, |_| None, None, next).await
}

/// Client `i`'s `n`-th request.
pub type NextRequest = dyn Fn(usize, usize) -> Arc<Vec<u8>> + Send + Sync;

/// `clients` keep-alive clients send `next(i, n)` for `seconds`, client i from the local address
/// `source(i)` (`None`: the system's choice): on loopback, distinct clients can be distinct
/// addresses (any of 127.0.0.0/8), as distinct people are to the service's per-address limits.
/// With `rate` (requests a second, all clients together), open loop: each client sends on a
/// schedule (the clients' sends interleaved), and a request's latency counts from when it was
/// due, so that a slow answer that delays the next send is not hidden (coordinated omission).
/// Without, closed loop: each client sends its next request as soon as it has the answer.
pub async fn drive_each(
    addr: &str,
    clients: usize,
    seconds: u64,
    source: impl Fn(usize) -> Option<std::net::IpAddr>,
    rate: Option<f64>,
    next: Arc<NextRequest>,
) -> Report {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let addr = addr.to_owned();
            let next = next.clone();
            let local = source(i);
            let schedule = rate.filter(|r| *r > 0.0).map(|r| {
                let interval = Duration::from_secs_f64(clients as f64 / r);
                (
                    started + interval.mul_f64(i as f64 / clients as f64),
                    interval,
                )
            });
            tokio::spawn(
                async move { client(&addr, local, |n| next(i, n), schedule, deadline).await },
            )
        })
        .collect();
    let mut report = Report::default();
    for t in tasks {
        let (latencies, errors) = t.await.expect("client task");
        for (status, lat, stages) in latencies {
            report.latencies.entry(status).or_default().push(lat);
            if (200..300).contains(&status) {
                for (stage, ms) in stages {
                    report.stages.entry(stage).or_default().push(ms);
                }
            }
        }
        report.errors += errors;
    }
    report.elapsed = started.elapsed();
    report
}

/// A connection to `addr` from `local` (any port), or from the system's choice.
async fn connect(addr: &str, local: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let remote: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    socket.connect(remote).await
}

/// One keep-alive client: sends `next(n)` until the deadline, reconnecting after errors; on
/// `schedule` (first send, interval) if given, its latencies then counted from when each was due.
async fn client(
    addr: &str,
    local: Option<std::net::IpAddr>,
    next: impl Fn(usize) -> Arc<Vec<u8>>,
    schedule: Option<(Instant, Duration)>,
    deadline: Instant,
) -> (Vec<(u16, Duration, Vec<(String, f64)>)>, usize) {
    let mut results = Vec::new();
    let mut errors = 0;
    let mut conn: Option<TcpStream> = None;
    let mut due = schedule.map(|(first, _)| first);
    while Instant::now() < deadline {
        if let Some(at) = due {
            tokio::time::sleep_until(at.into()).await;
            if Instant::now() >= deadline {
                break;
            }
        }
        let stream = match conn.take() {
            Some(s) => s,
            None => match connect(addr, local).await {
                Ok(s) => s,
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let request = next(results.len());
        let sent = due.unwrap_or_else(Instant::now);
        if let (Some(at), Some((_, interval))) = (due.as_mut(), schedule) {
            *at += interval;
        }
        match exchange_head(stream, &request).await {
            Ok((status, stream, head)) => {
                results.push((status, sent.elapsed(), stage_times(&head)));
                conn = Some(stream);
            }
            Err(_) => errors += 1,
        }
    }
    (results, errors)
}

/// The status of `GET path` on a new connection, or `None` when nothing answers.
pub async fn get_status(addr: &str, path: &str) -> Option<u16> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange(stream, request.as_bytes()))
        .await
        .ok()?;
    answer.ok().map(|(status, _)| status)
}

/// Writes one request and reads one response (status line, headers, Content-Length body).
async fn exchange(stream: TcpStream, request: &[u8]) -> std::io::Result<(u16, TcpStream)> {
    let (status, stream, _) = exchange_head(stream, request).await?;
    Ok((status, stream))
}

/// [`exchange`], also returning the response's head, lower-cased.
async fn exchange_head(
    mut stream: TcpStream,
    request: &[u8],
) -> std::io::Result<(u16, TcpStream, String)> {
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
    Ok((status, stream, head))
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

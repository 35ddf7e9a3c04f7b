//! Rolling updates that drop nothing, with the real binary: two `lookalike serve` replicas behind a
//! small TCP proxy (one request per connection, so it balances requests as kube-proxy balances
//! connections), under load: report creations (some with bodies that trickle in over a second,
//! so that requests are in flight at every SIGTERM), searches, report reads, and health probes on
//! new connections every few milliseconds (so that connections arrive as a SIGTERM does). Each
//! replica in turn is replaced by a successor that starts on a port of its own and joins once
//! `/readyz` answers:
//!
//! 1. as Kubernetes does it (deploy/k8s): the old replica leaves the proxy's rotation (the
//!    endpoints), a short preStop pause, then SIGTERM while its requests are still in flight;
//! 2. as a proxy without endpoints does it (compose's nginx): SIGTERM while the replica is still in
//!    the rotation; a refused connection is tried on another replica, as nginx's
//!    `proxy_next_upstream error` does.
//!
//! Every request must succeed, every stopped replica exit cleanly within its grace period, and the
//! queue must end with each report's photo embedded exactly once and no job lost, failed or run twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::process::{Service, http, http_get, no_status, split_response};
use crate::common::*;
use lookalike::store::Store;

/// A replica the proxy sends connections to, and when each of its connections through the proxy
/// that is still open began.
#[derive(Clone)]
struct Backend {
    addr: String,
    open: Arc<Mutex<HashMap<u64, Instant>>>,
}

/// A TCP proxy on loopback: round robin over the backends in rotation, a connection refused is
/// tried on the next one (nothing was sent yet, so this is safe for any request).
struct Proxy {
    addr: String,
    rotation: Arc<Mutex<Vec<Backend>>>,
    all: Mutex<HashMap<String, Backend>>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rotation: Arc<Mutex<Vec<Backend>>> = Arc::default();
        let refused = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (rotation, refused) = (rotation.clone(), refused.clone());
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let candidates = rotation.lock().unwrap().clone();
                    let first = next.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(route(client, candidates, first, refused.clone()));
                }
            }
        });
        Proxy {
            addr,
            rotation,
            all: Mutex::default(),
            refused,
            task,
        }
    }

    /// Puts a ready replica into the rotation.
    fn add(&self, addr: &str) {
        let backend = Backend {
            addr: addr.to_owned(),
            open: Arc::default(),
        };
        self.all
            .lock()
            .unwrap()
            .insert(addr.to_owned(), backend.clone());
        self.rotation.lock().unwrap().push(backend);
    }

    /// Takes a replica out of the rotation (its open connections go on).
    fn remove(&self, addr: &str) {
        self.rotation.lock().unwrap().retain(|b| b.addr != addr);
    }

    /// Connections open through the proxy to `addr` now.
    fn open(&self, addr: &str) -> usize {
        self.all.lock().unwrap()[addr].open.lock().unwrap().len()
    }

    /// How long each connection open to `addr` has been open.
    fn ages(&self, addr: &str) -> Vec<Duration> {
        let open = self.all.lock().unwrap()[addr].open.clone();
        let open = open.lock().unwrap();
        open.values().map(|since| since.elapsed()).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(
    mut client: TcpStream,
    candidates: Vec<Backend>,
    first: usize,
    refused: Arc<AtomicU64>,
) {
    for i in 0..candidates.len() {
        let backend = &candidates[(first + i) % candidates.len()];
        match TcpStream::connect(&backend.addr).await {
            Ok(mut upstream) => {
                static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
                let id = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
                backend.open.lock().unwrap().insert(id, Instant::now());
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                backend.open.lock().unwrap().remove(&id);
                return;
            }
            Err(_) => {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // No replica took it: the client's connection closes without an answer (a failure).
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    failures: Mutex<Vec<String>>,
    reports: Mutex<Vec<String>>,
}

impl Tally {
    fn check(
        &self,
        what: &str,
        outcome: std::io::Result<(u16, Vec<u8>)>,
        expected: u16,
    ) -> Option<Value> {
        match outcome {
            Ok((status, body)) if status == expected => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                serde_json::from_slice(&body).ok()
            }
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>();
                self.failures
                    .lock()
                    .unwrap()
                    .push(format!("{what}: {status} {text}"));
                None
            }
            Err(e) => {
                self.failures.lock().unwrap().push(format!("{what}: {e}"));
                None
            }
        }
    }
}

/// A report upload whose body arrives in four parts over about a second, as from a slow phone:
/// such requests are in flight at any moment, so a SIGTERM finds some to drain.
async fn trickle(addr: &str, content_type: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    for part in body.chunks(body.len().div_ceil(4)) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stream.write_all(part).await?;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let (status, body) = split_response(&response).ok_or_else(|| no_status("the answer"))?;
    Ok((status, body.to_vec()))
}

/// A trickled upload's answer and the instant it came.
type Timed = (std::io::Result<(u16, Vec<u8>)>, Instant);

/// Starts a trickled upload straight to a replica (not through the proxy), to be in flight when
/// its SIGTERM comes: it takes about a second, so one started just before the signal is still
/// sending its body then. Its answer and the instant it came, for the tally.
fn trickle_to(addr: &str, photo: Vec<u8>) -> tokio::task::JoinHandle<Timed> {
    let (content_type, body) =
        multipart(&report_form("found", "dog", std::slice::from_ref(&photo)));
    let addr = addr.to_owned();
    tokio::spawn(async move {
        let outcome = trickle(&addr, &content_type, &body).await;
        (outcome, Instant::now())
    })
}

/// Checks that an upload started before a SIGTERM was answered 201, and after the signal: the
/// drain finished it rather than it ending before the signal.
async fn drained(
    upload: tokio::task::JoinHandle<Timed>,
    signalled: Instant,
    tally: &Tally,
    name: &str,
) {
    let (outcome, answered) = upload.await.unwrap();
    assert!(
        answered > signalled,
        "replica {name}'s in-flight upload ended before its SIGTERM: the drain was not exercised"
    );
    if let Some(report) = tally.check("POST /v1/reports (in flight at SIGTERM)", outcome, 201) {
        let id = report["id"].as_str().unwrap_or_default().to_owned();
        tally.reports.lock().unwrap().push(id);
    }
}

/// Creates reports (one new photo each), at once or trickling, until `stop` or the photos run out.
async fn uploader(
    proxy: String,
    photos: Vec<Vec<u8>>,
    slow: bool,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    for photo in photos {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (content_type, body) =
            multipart(&report_form("found", "dog", std::slice::from_ref(&photo)));
        let outcome = if slow {
            trickle(&proxy, &content_type, &body).await
        } else {
            http(&proxy, "POST", "/v1/reports", &content_type, &body).await
        };
        if let Some(report) = tally.check("POST /v1/reports", outcome, 201) {
            let id = report["id"].as_str().unwrap_or_default().to_owned();
            tally.reports.lock().unwrap().push(id);
        }
        tokio::time::sleep(Duration::from_millis(if slow { 100 } else { 400 })).await;
    }
}

/// Asks `/healthz` every few milliseconds, each time on a new connection: connections arrive
/// at any instant, also the one a SIGTERM comes in.
async fn prober(proxy: String, pause: Duration, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let outcome = http(&proxy, "GET", "/healthz", "", &[]).await;
        tally.check("GET /healthz", outcome, 200);
        tokio::time::sleep(pause).await;
    }
}

/// Waits until a slow upload is in flight through the proxy to `addr` with most of its second
/// still to go (open 200 to 500 ms: the others last milliseconds, and one open longer may end
/// before the signal), so that it is still in flight at the SIGTERM.
async fn busy(proxy: &Proxy, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let early = Duration::from_millis(200)..Duration::from_millis(500);
    while !proxy.ages(addr).iter().any(|age| early.contains(age)) {
        assert!(
            Instant::now() < deadline,
            "no request reached {addr} in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Searches with a photo, and reads a report created earlier, until `stop`.
async fn searcher(proxy: String, photo: Vec<u8>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let (content_type, body) = multipart(&[("photo", "q.png", "image/png", photo.as_slice())]);
    while !stop.load(Ordering::Relaxed) {
        let outcome = http(&proxy, "POST", "/v1/search", &content_type, &body).await;
        tally.check("POST /v1/search", outcome, 200);
        let last = tally.reports.lock().unwrap().last().cloned();
        if let Some(id) = last {
            let outcome = http(&proxy, "GET", &format!("/v1/reports/{id}"), "", &[]).await;
            tally.check("GET /v1/reports/{id}", outcome, 200);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a replica (2 job workers, so that stopping one also stops running jobs) logging to a file.
async fn replica(
    url: &str,
    storage: &std::path::Path,
    logs: &std::path::Path,
    name: &str,
) -> Service {
    Service::start_with(
        url,
        storage,
        2,
        &["--shutdown-grace-secs", "10"],
        Some(&logs.join(name)),
    )
    .await
}

/// SIGTERM, then the exit within the grace period; the replica's log must not say it gave up on
/// requests or jobs.
async fn stop(mut old: Service, logs: &std::path::Path, name: &str) {
    let sent = Instant::now();
    old.terminate();
    let exit = old.wait_exit(Duration::from_secs(15)).await;
    assert!(
        exit.is_some_and(|e| e.success()),
        "replica {name} did not stop cleanly: {exit:?}"
    );
    eprintln!(
        "replica {name} stopped {:.1} s after SIGTERM",
        sent.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(logs.join(name)).unwrap_or_default();
    assert!(
        !log.contains("grace period over"),
        "replica {name} gave up on work:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_updates_behind_a_proxy_drop_no_request_and_lose_no_job() {
    let _machine = whole_machine().await;
    let (url, storage) = database_and_storage("rolling-storage").await;
    let logs = temp_dir("rolling-logs");
    let proxy = Proxy::start().await;
    let a = replica(&url, &storage, &logs, "a").await;
    let b = replica(&url, &storage, &logs, "b").await;
    proxy.add(&a.addr);
    proxy.add(&b.addr);

    let tally = Arc::new(Tally::default());
    let stop_load = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let mut photos = distinct_photos(1002, 64);
    // Two uploads sent straight to a and b just before their SIGTERMs (see `drained`).
    let in_flight_photos = photos.split_off(1000);
    for (i, share) in photos.chunks(250).enumerate() {
        clients.push(tokio::spawn(uploader(
            proxy.addr.clone(),
            share.to_vec(),
            i % 2 == 1,
            tally.clone(),
            stop_load.clone(),
        )));
    }
    for photo in distinct_photos(1002, 120).into_iter().skip(1000) {
        clients.push(tokio::spawn(searcher(
            proxy.addr.clone(),
            photo,
            tally.clone(),
            stop_load.clone(),
        )));
    }
    for _ in 0..4 {
        clients.push(tokio::spawn(prober(
            proxy.addr.clone(),
            Duration::from_millis(5),
            tally.clone(),
            stop_load.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. Kubernetes' order: the successor is ready, the old replica leaves the endpoints, preStop,
    //    then SIGTERM with requests still in flight.
    let c = replica(&url, &storage, &logs, "c").await;
    proxy.add(&c.addr);
    busy(&proxy, &a.addr).await;
    let in_flight_a = trickle_to(&a.addr, in_flight_photos[0].clone());
    proxy.remove(&a.addr);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let open_at_term_a = proxy.open(&a.addr);
    let signalled_a = Instant::now();
    stop(a, &logs, "a").await;
    drained(in_flight_a, signalled_a, &tally, "a").await;

    // 2. No endpoints: SIGTERM while the replica is still in the rotation.
    let d = replica(&url, &storage, &logs, "d").await;
    proxy.add(&d.addr);
    // A burst of new connections around the signal: those the replica accepts as it stops must
    // be answered too (hyper closed them unanswered before src/http/server.rs waited for their
    // first request; measured 5 to 10 lost per SIGTERM).
    let burst_stop = Arc::new(AtomicBool::new(false));
    let burst: Vec<_> = (0..12)
        .map(|_| {
            tokio::spawn(prober(
                proxy.addr.clone(),
                Duration::ZERO,
                tally.clone(),
                burst_stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    busy(&proxy, &b.addr).await;
    let in_flight_b = trickle_to(&b.addr, in_flight_photos[1].clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let open_at_term_b = proxy.open(&b.addr);
    let b_addr = b.addr.clone();
    let signalled_b = Instant::now();
    stop(b, &logs, "b").await;
    drained(in_flight_b, signalled_b, &tally, "b").await;
    proxy.remove(&b_addr);
    burst_stop.store(true, Ordering::Relaxed);
    for prober in burst {
        prober.await.unwrap();
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_load.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    let reports = tally.reports.lock().unwrap().clone();
    eprintln!(
        "{} requests answered, {} reports created, {} failures; connections open at SIGTERM: a {open_at_term_a}, b {open_at_term_b}; {} connections refused and tried elsewhere",
        tally.answered.load(Ordering::Relaxed),
        reports.len(),
        failures.len(),
        proxy.refused.load(Ordering::Relaxed),
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(
        reports.len() >= 20,
        "too little load to show anything: {} reports",
        reports.len()
    );

    // The queue: every report's photo embedded once, no job lost, failed or left behind.
    let store = Store::connect(&database_config(url.clone())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while scalar(
        &store,
        "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
    )
    .await
        > 0
    {
        assert!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = reports.len() as i64;
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM reports").await,
        created,
        "reports lost or made up"
    );
    assert_eq!(scalar(&store, "SELECT count(*) FROM photos").await, created);
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE kind = 'embed'").await,
        created,
        "an embedding job lost"
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE status <> 'done'").await,
        0,
        "a job failed"
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE attempts <> 1").await,
        0,
        "a job ran twice"
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM embeddings").await,
        created
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM photos p WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = p.sha256)").await,
        0,
        "a report's photo is not embedded"
    );
    for id in &reports {
        let (status, body) = http_get(&c.addr, &format!("/v1/reports/{id}")).await;
        assert_eq!(status, 200);
        let report: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(report["embedding_status"], "ready", "{report}");
    }
    drop((c, d, proxy));
}

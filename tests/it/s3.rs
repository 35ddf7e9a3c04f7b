//! Photos in an S3-compatible store, for real: moto's server (PyPI, installed by
//! `scripts/setup-s3.sh`) on a port of its own, the real binary built with the `s3` feature.
//! Put, get and delete through the lifecycle's deletion; bounded requests when the store stops
//! answering; a backlog that waits out an outage and ends with every job done.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::api::report_ready;
use crate::common::process::{Service, http, http_get, work_command};
use crate::common::*;
use serde_json::Value;

/// A moto S3 server with one bucket; killed when dropped.
struct S3 {
    child: Child,
    addr: String,
    /// `http://` and `addr`.
    endpoint: String,
}

impl S3 {
    async fn start(bucket: &str) -> S3 {
        let server = repo(".cache/moto-venv/bin/moto_server");
        let port = free_port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run `make test`, which installs it)",
                    server.display()
                )
            });
        let s3 = S3 {
            child,
            addr: format!("127.0.0.1:{port}"),
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http(&s3.addr, "PUT", &format!("/{bucket}"), "", &[]).await {
                return s3;
            }
            assert!(Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The keys in `bucket`.
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = http_get(&self.addr, &format!("/{bucket}?list-type=2")).await;
        assert_eq!(status, 200);
        String::from_utf8_lossy(&body)
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next().map(str::to_owned))
            .collect()
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the server: it keeps its connections and its data but
    /// answers nothing meanwhile, as a store that hangs.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The environment that points the service's object store at this server.
    fn env(&self) -> [(&str, &str); 5] {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn upload(service: &Service, photo: &[u8]) -> (u16, Value) {
    let photos = [photo.to_vec()];
    let (content_type, body) = multipart(&report_form("lost", "dog", &photos));
    let (status, answer) = http(&service.addr, "POST", "/v1/reports", &content_type, &body)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

async fn ready(service: &Service, report: &Value) -> bool {
    report_ready(&service.addr, report["id"].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_live_and_die_in_an_s3_store_and_an_outage_fails_no_job() {
    let _machine = whole_machine().await;
    let s3 = S3::start("photos").await;
    let env = s3.env();
    let (database, unused_folder) = database_and_storage("storage").await;
    let flags = [
        "--storage-url",
        "s3://photos/lookalike",
        "--storage-timeout-secs",
        "2",
        "--job-backoff-ms",
        "200",
        "--job-backoff-max-ms",
        "1000",
    ];
    // An API-only replica, and the jobs in a `lookalike work` process beside it (which the
    // outage below starts only once the store is frozen).
    let service = Service::start_with_env(&database, &unused_folder, 0, &flags, None, &env).await;
    let worker = |database: &str| {
        work_command(database)
            .args(flags)
            .envs(env.iter().copied())
            .spawn()
            .unwrap()
    };
    let mut first_worker = worker(&database);

    // Put and get.
    let photos = distinct_photos(8, 96);
    let (status, kept) = upload(&service, &photos[0]).await;
    assert_eq!(status, 201, "{kept}");
    let (status, gone) = upload(&service, &photos[1]).await;
    assert_eq!(status, 201, "{gone}");
    for report in [&kept, &gone] {
        eventually("embedded from S3", 60, || ready(&service, report)).await;
    }
    let photo = format!("/v1/photos/{}", kept["photos"][0]["id"].as_str().unwrap());
    let (status, bytes) = http_get(&service.addr, &photo).await;
    assert_eq!((status, bytes), (200, photos[0].clone()));
    let keys = s3.keys("photos").await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("lookalike/")), "{keys:?}");
    assert!(stored_objects(&unused_folder).is_empty());

    // Delete: the report's photo and thumbnail leave the bucket.
    let path = format!("/v1/reports/{}", gone["id"].as_str().unwrap());
    let mut stream = tokio::net::TcpStream::connect(&service.addr).await.unwrap();
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        gone["owner_token"].as_str().unwrap()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 204"));
    eventually("the deleted photo's objects gone", 30, || async {
        s3.keys("photos").await.len() == 2
    })
    .await;

    // The store stops answering: an upload gets a bounded 503, not a hang.
    s3.signal("STOP");
    let started = Instant::now();
    let (status, body) = upload(&service, &photos[2]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    s3.signal("CONT");

    // A backlog waits out an outage: reports accepted with no worker running, the store frozen,
    // a worker started that tries for 10 s, then the store back: every job done, none failed.
    first_worker.kill().unwrap();
    first_worker.wait().unwrap();
    let mut backlog = Vec::new();
    for photo in &photos[3..8] {
        let (status, report) = upload(&service, photo).await;
        assert_eq!(status, 201, "{report}");
        backlog.push(report);
    }
    s3.signal("STOP");
    let mut second_worker = worker(&database);
    tokio::time::sleep(Duration::from_secs(10)).await;
    for report in &backlog {
        assert!(
            !ready(&service, report).await,
            "embedded while the store was frozen"
        );
    }
    s3.signal("CONT");
    for report in &backlog {
        eventually("embedded after the outage", 60, || ready(&service, report)).await;
    }
    let store = lookalike::store::Store::connect(&database_config(database.clone()))
        .await
        .unwrap();
    let failed = scalar(&store, "SELECT count(*) FROM jobs WHERE status = 'failed'").await;
    assert_eq!(failed, 0);
    let deferred = scalar(
        &store,
        "SELECT count(*) FROM jobs WHERE kind = 'embed' AND deferrals > 0",
    )
    .await;
    assert!(deferred > 0, "no job met the outage");
    second_worker.kill().unwrap();
    second_worker.wait().unwrap();
}

/// Two replicas (API and workers each) on one database and one S3 store, requests spread over
/// both, one killed with `kill -9` while a backlog is pending: every accepted report ends
/// embedded, no job runs twice but those the dead replica held, and every photo reads through
/// the replica that is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_s3_store_survive_a_kill_9() {
    let _machine = whole_machine().await;
    let s3 = S3::start("shared").await;
    let env = s3.env();
    let database = fresh_database().await;
    let flags = [
        "--storage-url",
        "s3://shared",
        "--storage-timeout-secs",
        "5",
    ];
    let replicas = [
        Service::start_with_env(&database, &temp_dir("a"), 2, &flags, None, &env).await,
        Service::start_with_env(&database, &temp_dir("b"), 2, &flags, None, &env).await,
    ];
    // All at once, half through each replica: uploads outrun the embedding, a backlog builds.
    let photos = distinct_photos(40, 512);
    let answers = futures_util::future::join_all(
        photos
            .iter()
            .enumerate()
            .map(|(i, photo)| upload(&replicas[i % 2], photo)),
    )
    .await;
    let mut reports = Vec::new();
    for (status, report) in answers {
        assert_eq!(status, 201, "{report}");
        reports.push(report);
    }
    let store = lookalike::store::Store::connect(&database_config(database.clone()))
        .await
        .unwrap();
    let [doomed, survivor] = replicas;
    let doomed_pid = doomed.pid();
    doomed.kill_9();
    let held: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM jobs WHERE status = 'running' AND locked_by LIKE '{doomed_pid}-%'"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    let pending = scalar(
        &store,
        "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
    )
    .await;
    assert!(pending > 0, "no backlog was left to survive the kill");
    for report in &reports {
        eventually("embedded by the survivor", 120, || ready(&survivor, report)).await;
        let photo = format!("/v1/photos/{}", report["photos"][0]["id"].as_str().unwrap());
        let (status, _) = http_get(&survivor.addr, &photo).await;
        assert_eq!(status, 200, "{photo}");
    }
    let (failed, twice): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE attempts > 1) FROM jobs",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(failed, 0);
    assert!(
        twice <= held,
        "{twice} jobs ran twice, the killed replica held {held}"
    );
    eprintln!(
        "kill -9 with {pending} jobs pending ({held} held by the killed replica): all 40 reports embedded, {twice} jobs run twice"
    );
}

//! Webhooks through the real binary and a real receiver (a small axum server on 127.0.0.1): the
//! events arrive signed (the test checks the HMAC), once each, also across the receiver's outage
//! (retried with backoff until it is back), logged for operators; a tenant's own receiver gets
//! its reports' events only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::api::{id_and_token, post_report_to, resolve};
use crate::common::process::{Service, http_get, http_with};
use crate::common::*;

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether the signature is the HMAC-SHA256 of "{timestamp}.{body}" with `secret`.
    fn signed_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}.{}", self.header("x-lookalike-timestamp"), self.body).as_bytes());
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        self.header("x-lookalike-signature") == expected
    }
}

/// A receiver on `port` of 127.0.0.1, keeping what it takes; stops when dropped.
struct Receiver {
    taken: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(port: u16) -> Receiver {
        let taken: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = taken.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(Received { headers, body });
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { taken, task }
    }

    fn taken(&self) -> Vec<Received> {
        self.taken.lock().unwrap().clone()
    }

    /// The deliveries of `event` (the `X-Lookalike-Event` header).
    fn of(&self, event: &str) -> Vec<Received> {
        self.taken()
            .into_iter()
            .filter(|r| r.header("x-lookalike-event") == event)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn post_report(
    addr: &str,
    kind: &str,
    photo: &[u8],
    headers: &[(&str, &str)],
) -> (String, String) {
    id_and_token(&post_report_to(addr, (kind, "cat"), &[photo.to_vec()], headers).await)
}

async fn deliveries(addr: &str, query: &str) -> Vec<Value> {
    let (status, body) = http_get(addr, &format!("/v1/webhooks/deliveries{query}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    body["deliveries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_once_each_also_after_the_receivers_outage() {
    let _machine = whole_machine().await;
    let (database, storage) = database_and_storage("storage").await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let service = Service::start_with(
        &database,
        &storage,
        1,
        &[
            "--webhook-url",
            &url,
            "--webhook-secret",
            "s3cret-for-tests",
            "--webhook-timeout-ms",
            "2000",
            "--job-backoff-ms",
            "200",
            "--job-backoff-max-ms",
            "800",
            "--webhook-max-attempts",
            "30",
        ],
        None,
    )
    .await;
    let photo = sample("chelsea.png");
    let (lost, token) = post_report(&service.addr, "lost", &photo, &[]).await;

    // The receiver is down: the delivery fails, is logged, and retried with backoff.
    eventually("two failed attempts are logged", 60, || async {
        let log = deliveries(&service.addr, "").await;
        log.len() >= 2
            && log
                .iter()
                .all(|d| d["error"].is_string() && d["status_code"].is_null())
    })
    .await;
    let receiver = Receiver::start(port).await;
    eventually("the event arrives once the receiver is up", 60, || async {
        !receiver.of("embedding_ready").is_empty()
    })
    .await;
    let ready = &receiver.of("embedding_ready")[0];
    assert!(ready.signed_with("s3cret-for-tests"), "{ready:?}");
    assert!(!ready.signed_with("another secret"));
    let body = ready.json();
    assert_eq!(body["type"], "embedding_ready");
    assert_eq!(body["id"], ready.header("x-lookalike-event-id"));
    assert_eq!(body["data"]["report_id"], lost.as_str(), "{body}");
    assert_eq!(body["data"]["status"], "ready", "{body}");
    let event_id = ready.header("x-lookalike-event-id").to_owned();
    // The worker logs the attempt once the receiver has answered: after the receiver saw it.
    let query = format!("?event_id={event_id}");
    eventually("the delivery is logged", 30, || async {
        deliveries(&service.addr, &query).await[0]["status_code"] == 200
    })
    .await;
    let log = deliveries(&service.addr, &query).await;
    assert!(log.len() >= 3, "two failures, then the delivery: {log:?}");
    assert_eq!(log[0]["status_code"], 200, "{log:?}");
    assert_eq!(log[0]["url"], url.as_str());
    assert_eq!(
        log[0]["attempt"].as_i64(),
        Some(log.len() as i64),
        "{log:?}"
    );
    assert!(
        log[1..].iter().all(|d| d["status_code"].is_null()),
        "{log:?}"
    );

    // A match (recorded on both reports: two events) and the resolution, delivered once each.
    let (found, _) = post_report(&service.addr, "found", &edited_copy(&photo), &[]).await;
    eventually("both match events arrive", 60, || async {
        receiver.of("match_found").len() >= 2
    })
    .await;
    let mut named: Vec<(String, String)> = receiver
        .of("match_found")
        .iter()
        .map(|r| {
            assert!(r.signed_with("s3cret-for-tests"));
            let data = &r.json()["data"];
            (
                data["report_id"].as_str().unwrap().to_owned(),
                data["match_report_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    named.sort();
    let mut expected = vec![(lost.clone(), found.clone()), (found.clone(), lost.clone())];
    expected.sort();
    assert_eq!(named, expected);
    resolve(&service.addr, &lost, &token).await;
    eventually("the resolution arrives", 60, || async {
        !receiver.of("report_resolved").is_empty()
    })
    .await;
    // Nothing is delivered twice: every event id is seen once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids: Vec<String> = receiver
        .taken()
        .iter()
        .map(|r| r.header("x-lookalike-event-id").to_owned())
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "{:?}", receiver.taken());
    assert_eq!(receiver.of("report_resolved").len(), 1);
    assert_eq!(
        receiver.of("report_resolved")[0].json()["data"]["report_id"],
        lost.as_str()
    );

    let (_, metrics) = http_get(&service.addr, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    let failed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lookalike_webhook_attempts_total{outcome=\"failed\"} "))
        .and_then(|n| n.parse::<f64>().ok());
    assert!(failed.is_some_and(|n| n >= 2.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_own_receiver_gets_its_reports_events_only() {
    let _machine = whole_machine().await;
    let (database, storage) = database_and_storage("storage").await;
    let port = free_port();
    let receiver = Receiver::start(port).await;
    let keys = temp_dir("keys").join("keys.json");
    std::fs::write(
        &keys,
        serde_json::json!({"keys": [
            {"tenant": "acme", "key": "acme-key-0123456789",
             "webhook_url": format!("http://127.0.0.1:{port}/hook"), "webhook_secret": "acme-secret"},
            {"tenant": "beta", "key": "beta-key-0123456789"},
        ]})
        .to_string(),
    )
    .unwrap();
    let service = Service::start_with(
        &database,
        &storage,
        1,
        &["--api-keys-file", keys.to_str().unwrap()],
        None,
    )
    .await;
    let photos = distinct_photos(2, 96);
    let beta_key = [("x-api-key", "beta-key-0123456789")];
    let (beta, _) = post_report(&service.addr, "lost", &photos[0], &beta_key).await;
    let acme_key = [("x-api-key", "acme-key-0123456789")];
    let (acme, _) = post_report(&service.addr, "lost", &photos[1], &acme_key).await;
    eventually("acme's report's event arrives", 60, || async {
        !receiver.of("embedding_ready").is_empty()
    })
    .await;
    // Both photos are embedded by then (one worker, in order); only acme's is announced.
    eventually("beta's report is embedded", 30, || async {
        let path = format!("/v1/reports/{beta}");
        let answer = http_with(&service.addr, "GET", &path, &beta_key, "", b"")
            .await
            .unwrap();
        answer.json()["embedding_status"] == "ready"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let taken = receiver.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0].signed_with("acme-secret"));
    assert_eq!(taken[0].json()["data"]["report_id"], acme.as_str());
}

//! Live report events (`GET /v1/reports/{id}/events`, Server-Sent Events) through the real
//! binary: two replicas on one database, the stream opened on one and the events caused through
//! the other (the workers embed and match there; the owner resolves and deletes there); the
//! streams' caps, heartbeat, lifetime and their end on shutdown.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::common::api::{delete_report, id_and_token, post_report_to, resolve};
use crate::common::process::{Service, http_get};
use crate::common::*;

/// What an SSE stream yields.
#[derive(Debug)]
pub enum Item {
    /// `event:` and `data:` (as JSON).
    Event(String, Value),
    /// A comment line (`: hb`).
    Comment(String),
    /// The stream ended.
    End,
}

/// A tiny SSE client over one HTTP/1.1 connection.
pub struct Sse {
    body: hyper::body::Incoming,
    buffer: String,
    _connection: tokio::task::JoinHandle<()>,
}

impl Sse {
    /// Opens `path`: the stream on 200, else the status and the JSON error body.
    pub async fn open(addr: &str, path: &str) -> Result<Sse, (u16, Value)> {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::get(path)
            .header("host", addr)
            .header("accept", "text/event-stream")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            return Err((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        }
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Ok(Sse {
            body: response.into_body(),
            buffer: String::new(),
            _connection: connection,
        })
    }

    /// The next event or comment, or the end; panics after `within`.
    pub async fn next(&mut self, within: Duration) -> Item {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let (mut name, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        return Item::Comment(comment.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        name = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if let Some(name) = name {
                    return Item::Event(name, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("nothing on the stream within {within:?}"));
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Some(Err(_)) | None => return Item::End,
            }
        }
    }

    /// The next event (comments skipped); panics at the end or after `within`.
    pub async fn event(&mut self, within: Duration) -> (String, Value) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Item::Event(name, data) => return (name, data),
                Item::Comment(_) => {}
                Item::End => panic!("the stream ended"),
            }
        }
    }

    /// Skips events until one named `name`; panics after `within`.
    pub async fn until(&mut self, name: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (got, data) = self.event(left).await;
            if got == name {
                return data;
            }
        }
    }
}

/// Posts a report of one photo on `addr`: its id and owner token.
async fn post_report(addr: &str, kind: &str, species: &str, photo: &[u8]) -> (String, String) {
    id_and_token(&post_report_to(addr, (kind, species), &[photo.to_vec()], &[]).await)
}

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_hears_its_photos_matches_and_end_caused_through_another_replica() {
    let _machine = whole_machine().await;
    let (database, storage) = database_and_storage("storage").await;
    // The page talks to replica A, which runs no workers; B embeds and matches.
    let a = Service::start(&database, &storage, 0).await;
    let b = Service::start(&database, &storage, 1).await;
    let photo = sample("chelsea.png");
    let (lost, token) = post_report(&a.addr, "lost", "cat", &photo).await;
    let mut lost_events = Sse::open(&a.addr, &format!("/v1/reports/{lost}/events"))
        .await
        .unwrap();

    // First the current state, then the photo's embedding, done on B.
    let (name, first) = lost_events.event(WAIT).await;
    assert_eq!(name, "status");
    assert_eq!(first["report_id"], lost.as_str(), "{first}");
    assert_eq!(first["total"], 1, "{first}");
    if first["status"] != "ready" {
        assert_eq!(first["status"], "pending", "{first}");
        let ready = lost_events.until("status", WAIT).await;
        assert_eq!(
            (&ready["status"], &ready["ready"], &ready["failed"]),
            (&Value::from("ready"), &Value::from(1), &Value::from(0)),
            "{ready}"
        );
    }

    // A found report like it, posted on B: its own matching names the lost one on both reports.
    let (found, _) = post_report(&b.addr, "found", "cat", &edited_copy(&photo)).await;
    let mut found_events = Sse::open(&a.addr, &format!("/v1/reports/{found}/events"))
        .await
        .unwrap();
    let (_, found_first) = found_events.event(WAIT).await;
    let matched = lost_events.until("match", WAIT).await;
    assert_eq!(matched["report_id"], lost.as_str(), "{matched}");
    assert_eq!(matched["match_report_id"], found.as_str(), "{matched}");
    assert!(matched["score"].as_f64().unwrap() >= 0.7, "{matched}");
    if found_first["status"] == "pending" {
        // Subscribed before its matching ran (it waits for the embedding): it hears it too.
        let own = found_events.until("match", WAIT).await;
        assert_eq!(own["report_id"], found.as_str(), "{own}");
        assert_eq!(own["match_report_id"], lost.as_str(), "{own}");
    }

    // The owner resolves the report on B, then deletes it: A's stream says so, then ends.
    resolve(&b.addr, &lost, &token).await;
    let resolved = lost_events.until("resolved", WAIT).await;
    assert_eq!(resolved, serde_json::json!({"report_id": lost}));
    let answer = delete_report(&b.addr, &lost, &token).await;
    assert!(answer.status < 300, "{}", answer.json());
    let deleted = lost_events.until("deleted", WAIT).await;
    assert_eq!(deleted, serde_json::json!({"report_id": lost}));
    assert!(matches!(lost_events.next(WAIT).await, Item::End));
    // A deleted report has no stream any more.
    let refused = Sse::open(&a.addr, &format!("/v1/reports/{lost}/events")).await;
    let (status, body) = refused.err().unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_beat_expire_and_end_on_shutdown() {
    let _machine = whole_machine().await;
    let (database, storage) = database_and_storage("storage").await;
    let mut service = Service::start_with(
        &database,
        &storage,
        0,
        &[
            "--event-streams-per-address",
            "1",
            "--event-heartbeat-secs",
            "1",
            "--event-stream-max-secs",
            "3",
            "--shutdown-grace-secs",
            "30",
        ],
        None,
    )
    .await;
    let (id, _) = post_report(&service.addr, "lost", "dog", &sample("chelsea.png")).await;
    let path = format!("/v1/reports/{id}/events");

    // What the caller may not see, or cannot name, is refused as GET /v1/reports/{id} is.
    let unknown = format!("/v1/reports/{}/events", uuid::Uuid::new_v4());
    let (status, body) = Sse::open(&service.addr, &unknown).await.err().unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = Sse::open(&service.addr, "/v1/reports/nope/events")
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed"))
    );

    // One stream per address here: a second is refused with a code, and a retry time.
    let mut stream = Sse::open(&service.addr, &path).await.unwrap();
    let opened = Instant::now();
    let (name, _) = stream.event(WAIT).await;
    assert_eq!(name, "status");
    let (status, body) = Sse::open(&service.addr, &path).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str(), body["reason"].as_str()),
        (429, Some("concurrency_limited"), Some("event_streams")),
        "{body}"
    );
    assert!(body["retry_after_seconds"].as_u64().is_some(), "{body}");

    // Idle: heartbeats, then the end of the stream's lifetime.
    match stream.next(Duration::from_secs(5)).await {
        Item::Comment(text) => assert_eq!(text, "hb"),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    loop {
        match stream.next(Duration::from_secs(10)).await {
            Item::Comment(_) => {}
            Item::End => break,
            Item::Event(name, data) => panic!("unexpected event {name}: {data}"),
        }
    }
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(2500) && lived < Duration::from_secs(8),
        "{lived:?}"
    );

    // Its slot is free again; the metrics count what happened.
    let mut stream = Sse::open(&service.addr, &path).await.unwrap();
    stream.event(WAIT).await;
    let (_, metrics) = http_get(&service.addr, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    for line in [
        "lookalike_event_streams 1",
        "lookalike_event_streams_opened_total 2",
        "lookalike_event_streams_refused_total{scope=\"address\"} 1",
        "lookalike_events_sent_total 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // SIGTERM: the stream ends at once, and the process stops long before its 30 s of grace.
    let stopping = Instant::now();
    service.terminate();
    loop {
        match stream.next(Duration::from_secs(5)).await {
            Item::Comment(_) => {}
            Item::End => break,
            Item::Event(name, data) => panic!("unexpected event {name}: {data}"),
        }
    }
    let exit = service.wait_exit(Duration::from_secs(10)).await;
    assert!(
        exit.is_some_and(|e| e.success()),
        "{exit:?} after {:?}",
        stopping.elapsed()
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
}

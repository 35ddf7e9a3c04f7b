//! The edge on the real binary: answers sent before a body is read reach clients that write their
//! whole body first; stalled headers and trickled bodies lose their place at their deadlines;
//! oversized bodies are refused from their declared size; job counts read no done jobs; and a
//! server error's cause is logged under the request id, not sent.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::process::{Service, http, split_response};
use crate::common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Status and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(response: &[u8]) -> (u16, Value) {
    let (status, body) = split_response(response)
        .unwrap_or_else(|| panic!("no status in {:?}", String::from_utf8_lossy(response)));
    (status, serde_json::from_slice(body).unwrap_or(Value::Null))
}

/// Reads until the server closes, at most `limit`; what it read, and whether it closed in time.
async fn read_until_closed(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (answer, closed)
}

/// The real binary on a fresh database, with no job workers and `extra` flags.
async fn start(name: &str, extra: &[&str]) -> Service {
    let url = fresh_database().await;
    Service::start_with(&url, &temp_dir(name).join("photos"), 0, extra, None).await
}

fn twelve_megabytes() -> (String, Vec<u8>) {
    let junk = vec![0x5a_u8; 12 << 20];
    multipart(&[("photos", "big.jpg", "image/jpeg", &junk)])
}

#[tokio::test]
async fn a_client_that_writes_its_whole_body_reads_its_refusal() {
    // No interactive request is admitted. A full gate still reads an embeddings body (its
    // photos may be answered from the store), within the body memory budget: each of these
    // gets its answer (the photo is over the size limit, or no memory is free: 503), never a
    // reset.
    let service = start("edge-refusal", &["--gate-max-waiters", "0"]).await;
    let (content_type, body) = twelve_megabytes();
    let refused = futures_util::future::join_all((0..8).map(|_| {
        http(
            &service.addr,
            "POST",
            "/v1/embeddings",
            &content_type,
            &body,
        )
    }))
    .await;
    for answer in refused {
        let (status, body) = answer.expect("an answer, not a reset");
        let body: Value = serde_json::from_slice(&body).unwrap();
        match status {
            413 => assert_eq!(body["code"], "payload_too_large", "{body}"),
            503 => assert_eq!(body["code"], "overloaded", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    // Over the search route's limit (one photo): 413 from the declared size, also read in full.
    let (status, body) = http(&service.addr, "POST", "/v1/search", &content_type, &body)
        .await
        .expect("an answer, not a reset");
    assert_eq!(status, 413);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["max_body_bytes"].as_u64().unwrap() < 12 << 20);

    // A photo over the size limit in a body of undeclared size: cut while streaming, at the
    // photo that breaks the limit, and the answer still received.
    let (content_type, body) = twelve_megabytes();
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    let head = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        stream
            .write_all(&framed)
            .await
            .expect("the whole body is read or drained");
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let (mut read, _write) = stream.into_split();
    let (answer, closed) = read_until_closed(&mut read, Duration::from_secs(10)).await;
    assert!(closed);
    let (status, body) = parse_answer(&answer);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["max_photo_bytes"].is_u64(), "{body}");
}

#[tokio::test]
async fn a_connection_stalled_in_its_headers_is_closed_at_the_header_timeout() {
    // Its deadlines are measured: no other machine-loading test runs meanwhile.
    let _machine = whole_machine().await;
    let service = start("edge-headers", &["--header-timeout-secs", "1"]).await;
    let stalled = TcpStream::connect(&service.addr).await.unwrap();
    let (mut read, mut write) = stalled.into_split();
    write
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ")
        .await
        .unwrap();
    let started = Instant::now();
    let closer = tokio::spawn(async move {
        let (answer, closed) = read_until_closed(&mut read, Duration::from_secs(5)).await;
        (answer, closed, started.elapsed())
    });
    // Meanwhile the service answers others at once.
    let asked = Instant::now();
    let (status, _) = http(&service.addr, "GET", "/healthz", "", &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );

    let (answer, closed, after) = closer.await.unwrap();
    assert!(closed, "the stalled connection is still open after 5 s");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?}, with a 1 s header timeout"
    );
    let (_, metrics) = http(&service.addr, "GET", "/metrics", "", &[])
        .await
        .unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("lookalike_header_timeouts_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_trickling_upload_loses_its_slot_at_the_body_deadline() {
    // Its deadlines are measured: no other machine-loading test runs meanwhile.
    let _machine = whole_machine().await;
    let service = start(
        "edge-trickle",
        &[
            "--upload-permits",
            "1",
            "--upload-max-wait-ms",
            "10000",
            "--body-idle-timeout-secs",
            "1",
            "--body-timeout-secs",
            "2",
        ],
    )
    .await;
    let photos = distinct_photos(2, 96);
    let (content_type, trickled) = multipart(&report_form("lost", "dog", &photos[..1]));
    // The trickler sends its headers and a little of its body, then a byte every 400 ms: never
    // a pause of a second, but far slower than its two seconds allow.
    let stream = TcpStream::connect(&service.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        trickled.len()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(&trickled[..200]).await.unwrap();
    let trickler = tokio::spawn(async move {
        for byte in &trickled[200..260] {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A normal upload waits for the only slot, and gets it when the trickler's deadline passes.
    let started = Instant::now();
    let (content_type, body) = multipart(&report_form("found", "dog", &photos[1..]));
    let (status, answer) = http(&service.addr, "POST", "/v1/reports", &content_type, &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    let (answer, _) = read_until_closed(&mut read, Duration::from_secs(10)).await;
    trickler.abort();
    let (status, body) = parse_answer(&answer);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["code"], "body_timeout");
    let (_, status) = http(&service.addr, "GET", "/v1/status", "", &[])
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["uploads"]["in_use"], 0, "{status}");
    assert_eq!(status["body_memory"]["reserved_bytes"], 0, "{status}");
    assert_eq!(status["connections"]["body_timeouts_total"], 1, "{status}");
}

#[tokio::test]
async fn patch_with_a_40_mb_body_is_refused_at_once() {
    // Its deadlines are measured: no other machine-loading test runs meanwhile.
    let _machine = whole_machine().await;
    let service = start("edge-patch", &[]).await;
    let path = format!("/v1/reports/{}", uuid::Uuid::new_v4());
    // Decided from the declared size: the answer comes before any of the body is sent.
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\n\r\n",
        40 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, _write) = stream.into_split();
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), read.read(&mut answer))
        .await
        .expect("an answer within 2 s, before any body byte")
        .unwrap();
    let (status, body) = parse_answer(&answer[..n]);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert!(started.elapsed() < Duration::from_secs(1));

    // A client that writes all 40 MB before reading gets the same answer.
    let body = vec![b' '; 40 << 20];
    let (status, _) = http(&service.addr, "PATCH", &path, "application/json", &body)
        .await
        .expect("an answer, not a reset");
    assert_eq!(status, 413);
}

#[tokio::test]
async fn job_counts_read_no_done_jobs() {
    let store = fresh_store().await;
    sqlx::query(
        "INSERT INTO jobs (kind, dedupe_key, payload, status, max_attempts, finished_at)
         SELECT 'embed', 'done:' || i, '{}'::jsonb, 'done', 5, now() - interval '2 days'
         FROM generate_series(1, 100000) AS i",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO jobs (kind, dedupe_key, payload, status, max_attempts)
         SELECT 'embed', 'queued:' || i, '{}'::jsonb, 'queued', 5 FROM generate_series(1, 3) AS i",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE jobs")
        .execute(store.pool())
        .await
        .unwrap();
    let counts = store.jobs().counts().await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.failed), (3, 0, 0));

    // The plan reads the partial indexes only: a handful of pages, not the 100k done jobs.
    let plan: Value = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}",
        lookalike::store::JOB_COUNTS_SQL
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    let text = plan.to_string();
    assert!(!text.contains("Seq Scan"), "{text}");
    let mut pages = 0;
    most_pages(&plan[0]["Plan"], &mut pages);
    assert!(pages < 50, "{pages} pages read: {text}");

    // Pruning takes done jobs past their retention, in batches.
    let pruned = store
        .jobs()
        .prune_done(Duration::from_secs(86_400), 60_000)
        .await
        .unwrap();
    assert_eq!(pruned, 60_000);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 40_003);
    assert_eq!(
        store
            .jobs()
            .prune_done(Duration::from_secs(3 * 86_400), 60_000)
            .await
            .unwrap(),
        0,
        "jobs within their retention stay"
    );
}

/// The most shared pages (hit or read) of any node of a plan: a node's count includes its
/// children's, so this is the plan's total.
fn most_pages(node: &Value, pages: &mut u64) {
    *pages = (*pages).max(
        node["Shared Hit Blocks"].as_u64().unwrap_or(0)
            + node["Shared Read Blocks"].as_u64().unwrap_or(0),
    );
    for child in node["Plans"].as_array().into_iter().flatten() {
        most_pages(child, pages);
    }
}

#[tokio::test]
async fn a_database_error_is_logged_with_its_cause_under_the_request_id() {
    let url = fresh_database().await;
    let dir = temp_dir("edge-cause");
    let log = dir.join("service.log");
    let service = Service::start_with(
        &url,
        &dir.join("photos"),
        0,
        &["--log-format", "json"],
        Some(&log),
    )
    .await;
    let store = lookalike::store::Store::connect(&database_config(url.clone()))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE reports RENAME TO reports_elsewhere")
        .execute(store.pool())
        .await
        .unwrap();

    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    stream
        .write_all(b"GET /v1/reports HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: cause-check-4711\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let (status, body) = parse_answer(&answer);
    assert_eq!(status, 500);
    assert_eq!(body["code"], "internal");
    let sent = body.to_string();
    assert!(
        !sent.contains("relation") && !sent.contains("reports"),
        "{sent}"
    );

    let logged = wait_for_log_line(&log, "cause-check-4711").await;
    assert!(logged.contains("does not exist"), "{logged}");
    assert!(logged.contains("relation"), "{logged}");
}

/// The first log line containing `needle` (waits up to 5 s for it to be written).
async fn wait_for_log_line(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains(needle) && l.contains("request failed"))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_503_and_the_cap_frees_as_they_close() {
    let service = start("edge-cap", &["--max-connections", "2"]).await;
    // The readiness checks' connections close first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held: Vec<TcpStream> =
        futures_util::future::join_all((0..2).map(|_| TcpStream::connect(&service.addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    // Bounded retries: the server may still be accepting the held connections.
    let mut refusal = Value::Null;
    for _ in 0..50 {
        match http(&service.addr, "GET", "/healthz", "", &[]).await {
            Ok((503, body)) => {
                refusal = serde_json::from_slice(&body).unwrap();
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("a reset instead of an answer: {e}"),
        }
    }
    assert_eq!(
        (refusal["code"].as_str(), refusal["reason"].as_str()),
        (Some("overloaded"), Some("connections")),
        "{refusal}"
    );
    drop(held);
    eventually("a slot is free again", 5, || async {
        matches!(
            http(&service.addr, "GET", "/healthz", "", &[]).await,
            Ok((200, _))
        )
    })
    .await;
}

#[tokio::test]
async fn metrics_can_move_to_an_operators_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let service = start("edge-metrics", &["--metrics-listen", &metrics_addr]).await;
    let (status, _) = http(&service.addr, "GET", "/metrics", "", &[])
        .await
        .unwrap();
    assert_eq!(status, 404, "the public listener no longer serves /metrics");
    let (status, text) = http(&metrics_addr, "GET", "/metrics", "", &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("lookalike_connections_open"), "{text}");
    assert!(
        text.contains("lookalike_jobs{state=\"queued\"} 0"),
        "{text}"
    );
}

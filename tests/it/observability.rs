//! Request ids and Prometheus metrics.

use crate::common::*;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Parses Prometheus text format: every line a comment (`# HELP`/`# TYPE`) or
/// `name{labels} value`; returns the samples as (series, value).
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "bad comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        samples.push((series.to_owned(), value));
    }
    samples
}

#[tokio::test]
async fn metrics_parse_and_count_what_happened() {
    let app = app(default_gate_settings(), uploads()).await;
    let (status, _, _) = send(
        &app.router,
        post_multipart(
            "/v1/embeddings",
            &[("photos", "a.png", "image/png", &sample("chelsea.png"))],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app.router, get("/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = app.router.clone().oneshot(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_text(response.headers(), "content-type").starts_with("text/plain"));
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let samples = parse_prometheus(&text);
    let value = |series: &str| samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
    assert_eq!(value("lookalike_gate_runs_total"), Some(1.0), "{text}");
    assert_eq!(value("lookalike_gate_images_total"), Some(1.0));
    assert_eq!(
        value(r#"http_requests_total{route="/v1/embeddings",method="POST",status="200"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"http_requests_total{route="unmatched",method="GET",status="404"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"lookalike_gate_wait_seconds_count{priority="interactive"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"lookalike_gate_batch_size_bucket{le="+Inf"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"lookalike_jobs{state="queued"}"#),
        Some(0.0),
        "no report, no job"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = app(default_gate_settings(), uploads()).await;
    let response = app.router.clone().oneshot(get("/healthz")).await.unwrap();
    let made = header_text(response.headers(), "x-request-id").to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let mut request = get("/no/such/route");
    request
        .headers_mut()
        .insert("x-request-id", "client-trace-42".parse().unwrap());
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-request-id"], "client-trace-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_permits_in_use_while_requests_run_and_none_after() {
    // One permit, so the requests queue behind each other and the status has time to see them.
    let app = app(gate_settings(1), uploads()).await;
    let photos = distinct_photos(12, 224);
    let requests: Vec<_> = photos
        .into_iter()
        .map(|photo| {
            let router = app.router.clone();
            tokio::spawn(async move {
                send(
                    &router,
                    post_multipart(
                        "/v1/embeddings",
                        &[("photos", "a.png", "image/png", &photo)],
                    ),
                )
                .await
                .0
            })
        })
        .collect();
    let mut seen_running = false;
    let mut seen_waiting = false;
    while !requests.iter().all(|r| r.is_finished()) {
        let (_, _, body) = send(&app.router, get("/v1/status")).await;
        let gate = &body["gate"];
        assert!(gate["permits_in_use"].as_u64().unwrap() <= 1, "{gate}");
        seen_running |= gate["permits_in_use"] == 1;
        seen_waiting |= gate["waiting_interactive"].as_u64().unwrap() > 0
            && gate["estimated_wait_seconds"].as_f64().unwrap() > 0.0;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for r in requests {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    assert!(seen_running, "never saw a permit in use");
    assert!(seen_waiting, "never saw a waiter with an estimated wait");
    let (_, _, body) = send(&app.router, get("/v1/status")).await;
    let gate = &body["gate"];
    assert_eq!(
        (
            gate["permits_in_use"].as_u64(),
            gate["waiting_interactive"].as_u64(),
            gate["admitted_interactive"].as_u64(),
        ),
        (Some(0), Some(0), Some(0)),
        "{gate}"
    );
    // One run per photo, and one more for each photo whose subject was cropped.
    let runs = gate["runs_total"].as_u64().unwrap();
    assert!((12..=24).contains(&runs), "{gate}");
    assert_eq!(body["uploads"]["in_use"], 0);
    assert_eq!(body["protection"]["api_keys"], false);
}

#[tokio::test]
async fn a_model_answer_says_where_its_time_went() {
    let app = app(gate_settings(1), uploads()).await;
    let photo = sample("chelsea.png");
    let (status, headers, _) = send(
        &app.router,
        post_multipart(
            "/v1/embeddings",
            &[("photos", "c.png", "image/png", &photo)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ms = |name: &str| -> f64 {
        headers[name]
            .to_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // A model run and a decode took time, nothing waited long for the idle gate, and the
    // database was asked whether the photo had been embedded before.
    assert!(ms("x-inference-time") > 0.0);
    assert!(ms("x-decode-time") > 0.0);
    assert!(ms("x-queue-time") >= 0.0);
    assert!(ms("x-database-time") > 0.0);
    // A route that does no such work answers without them.
    let (_, headers, _) = send(&app.router, get("/healthz")).await;
    assert!(headers.get("x-inference-time").is_none());
}

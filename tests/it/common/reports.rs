//! Reports made through the API, and waiting for their photos' embeddings.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use std::time::{Duration, Instant};

use lookalike::store::Store;
use serde_json::Value;

use super::{TestApp, eventually, post_multipart, report_form, send};

/// A request to report `report`'s own address (`/v1/reports/{id}`) with its owner token, and a
/// JSON `body` when given.
pub fn as_owner(method: &str, report: &Value, body: Option<Value>) -> Request<Body> {
    let id = report["id"].as_str().unwrap();
    let token = report["owner_token"].as_str().unwrap();
    let request = Request::builder()
        .method(method)
        .uri(format!("/v1/reports/{id}"))
        .header("authorization", format!("Bearer {token}"));
    match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap()
}

/// Creates a report of `kind` about a dog with `photos` through the API; the creation answer.
pub async fn create_report_body(app: &axum::Router, kind: &str, photos: &[Vec<u8>]) -> Value {
    let form = report_form(kind, "dog", photos);
    let (status, _, body) = send(app, post_multipart("/v1/reports", &form)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Creates a report of `kind` and `species` with one photo through the API; its id.
pub async fn create_report(app: &axum::Router, kind: &str, species: &str, photo: &[u8]) -> String {
    create_report_with(app, kind, species, photo, &[]).await
}

/// Creates a report with one photo and the `extra` form fields through the API; its id.
pub async fn create_report_with(
    app: &axum::Router,
    kind: &str,
    species: &str,
    photo: &[u8],
    extra: &[(&str, &str)],
) -> String {
    let photos = [photo.to_vec()];
    let mut form = report_form(kind, species, &photos);
    for (k, v) in extra {
        form.push((k, "", "text/plain", v.as_bytes()));
    }
    let (status, _, body) = send(app, post_multipart("/v1/reports", &form)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Waits (up to two minutes) until the database holds `total` embeddings.
pub async fn wait_until_embedded(app: &TestApp, total: i64) {
    eventually("every photo embedded", 120, || async {
        count(app, "SELECT count(*) FROM embeddings").await >= total
    })
    .await;
}

/// The ids of a page's reports (`GET /v1/reports`), in order.
pub fn listed_ids(page: &Value) -> Vec<String> {
    let reports = page["reports"].as_array().unwrap();
    reports
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `sql` (a statement without parameters).
pub async fn execute(store: &Store, sql: &str) {
    sqlx::query(sql).execute(store.pool()).await.unwrap();
}

/// The one number `sql` selects.
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// The one number `sql` selects from the app's database.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    scalar(&app.state.store, sql).await
}

/// Waits until every photo is embedded and no job (embedding or matching) is queued or running.
pub async fn wait_for_jobs_done(store: &Store, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let missing = scalar(
            store,
            "SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = b.sha256)",
        )
        .await;
        let pending = scalar(
            store,
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
        )
        .await;
        if missing == 0 && pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {seconds} s, {missing} photos are not embedded and {pending} jobs are left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! Reports made through the API, and waiting for their photos' embeddings.

use axum::http::StatusCode;

use super::{TestApp, eventually, post_multipart, report_form, send};

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
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM embeddings")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        n >= total
    })
    .await;
}

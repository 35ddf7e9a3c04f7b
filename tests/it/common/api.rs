//! Requests to a service process (`process::Service`), each with the caller's headers: reports
//! created, read, resolved and deleted, searches by photo.

use serde_json::Value;

use super::process::{Answer, Service, http_with};
use super::{Part, eventually, fresh_database, multipart, report_form, temp_dir};

/// The real binary on a fresh database with `workers` job workers and `extra` flags.
pub async fn start(name: &str, workers: usize, extra: &[&str]) -> Service {
    let url = fresh_database().await;
    Service::start_with(&url, &temp_dir(name).join("photos"), workers, extra, None).await
}

/// One request with headers.
pub async fn call(service: &Service, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    http_with(&service.addr, method, path, headers, "text/plain", b"")
        .await
        .unwrap()
}

/// A GET with headers.
pub async fn get_as(service: &Service, path: &str, headers: &[(&str, &str)]) -> Answer {
    call(service, "GET", path, headers).await
}

/// A JSON request with headers.
pub async fn call_json(
    service: &Service,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Answer {
    let body = serde_json::to_vec(body).unwrap();
    http_with(
        &service.addr,
        method,
        path,
        headers,
        "application/json",
        &body,
    )
    .await
    .unwrap()
}

/// A multipart request with headers: text fields and photos under `photo_field`.
pub async fn call_form(
    service: &Service,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
    photo_field: &str,
    photos: &[Vec<u8>],
) -> Answer {
    let mut parts: Vec<Part> = fields
        .iter()
        .map(|(k, v)| (*k, "", "text/plain", v.as_bytes()))
        .collect();
    for p in photos {
        parts.push((photo_field, "photo.png", "image/png", p));
    }
    let (content_type, body) = multipart(&parts);
    http_with(&service.addr, "POST", path, headers, &content_type, &body)
        .await
        .unwrap()
}

/// Creates a report (a found dog) with `fields` added; the creation answer.
pub async fn create(
    service: &Service,
    headers: &[(&str, &str)],
    photo: &[u8],
    fields: &[(&str, &str)],
) -> Answer {
    let mut all = vec![
        ("kind", "found"),
        ("species", "dog"),
        ("title", "Brown dog"),
    ];
    all.extend_from_slice(fields);
    call_form(
        service,
        "/v1/reports",
        headers,
        &all,
        "photos",
        &[photo.to_vec()],
    )
    .await
}

/// The JSON of a creation `answer`, its 201 asserted.
pub fn created(answer: Answer) -> Value {
    assert_eq!(answer.status, 201, "{}", answer.json());
    answer.json()
}

/// The API key of tenant `acme` on a service `start_tenant` started.
pub const TENANT_KEY: &str = "acme-key-0123456789";

/// The real binary on a fresh database, without job workers, with one tenant (`acme`, whose key
/// is `TENANT_KEY`).
pub async fn start_tenant(name: &str) -> Service {
    start(name, 0, &["--api-keys", &format!("acme:{TENANT_KEY}")]).await
}

/// Waits until report `id` is embedded.
pub async fn wait_ready(service: &Service, id: &str, headers: &[(&str, &str)]) {
    let path = format!("/v1/reports/{id}");
    eventually("the report is embedded", 120, || async {
        call(service, "GET", &path, headers).await.json()["embedding_status"] == "ready"
    })
    .await;
}

/// A search by `photo` with `fields`; the answer.
pub async fn search(
    service: &Service,
    headers: &[(&str, &str)],
    photo: &[u8],
    fields: &[(&str, &str)],
) -> Answer {
    call_form(
        service,
        "/v1/search",
        headers,
        fields,
        "photo",
        &[photo.to_vec()],
    )
    .await
}

/// Posts a report of `kind` and `species` (`photos`, the default title) to `addr` with
/// `headers`; the creation answer, its 201 asserted.
pub async fn post_report_to(
    addr: &str,
    (kind, species): (&str, &str),
    photos: &[Vec<u8>],
    headers: &[(&str, &str)],
) -> Value {
    let (content_type, body) = multipart(&report_form(kind, species, photos));
    let answer = http_with(addr, "POST", "/v1/reports", headers, &content_type, &body)
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// A created report's id and owner token.
pub fn id_and_token(report: &Value) -> (String, String) {
    let text = |field: &str| report[field].as_str().unwrap().to_owned();
    (text("id"), text("owner_token"))
}

/// Whether report `id` on `addr` has every photo embedded.
pub async fn report_ready(addr: &str, id: &str) -> bool {
    let path = format!("/v1/reports/{id}");
    let answer = http_with(addr, "GET", &path, &[], "", b"").await.unwrap();
    answer.json()["embedding_status"] == "ready"
}

/// Marks report `id` on `addr` resolved with its owner `token`; the 200 asserted.
pub async fn resolve(addr: &str, id: &str, token: &str) {
    let bearer = format!("Bearer {token}");
    let answer = http_with(
        addr,
        "PATCH",
        &format!("/v1/reports/{id}"),
        &[("Authorization", bearer.as_str())],
        "application/json",
        br#"{"status":"resolved"}"#,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.json());
}

/// Deletes report `id` on `addr` with its owner `token`; the answer.
pub async fn delete_report(addr: &str, id: &str, token: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    let path = format!("/v1/reports/{id}");
    let headers = [("Authorization", bearer.as_str())];
    http_with(addr, "DELETE", &path, &headers, "", b"")
        .await
        .unwrap()
}

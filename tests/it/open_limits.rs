//! The open service's limits (no API keys), on the real binary: a client address's bytes of
//! photos per UTC day (429 `daily_limit_exceeded` with `Retry-After`), the store's total cap
//! (507 `storage_full`, room again once a report is deleted), and `/v1/usage` telling an
//! anonymous caller its address's use.

use crate::common::api::{create, created, delete_report, get_as, id_and_token, start};
use crate::common::process::Service;

/// The real binary without job workers behind a trusted proxy on 127.0.0.1 (callers are told
/// apart by `X-Forwarded-For`), with `flag` set to `value`.
async fn start_open(name: &str, flag: &str, value: &str) -> Service {
    start(name, 0, &["--trusted-proxies", "127.0.0.1", flag, value]).await
}

fn from(address: &str) -> [(&str, &str); 1] {
    [("X-Forwarded-For", address)]
}

#[tokio::test]
async fn an_address_uploads_its_daily_bytes_and_then_gets_429_until_midnight() {
    let photos = crate::common::distinct_photos(3, 96);
    let size = photos[0].len().max(photos[1].len()).max(photos[2].len());
    // Room for two photos a day per address.
    let daily = (2 * size + size / 2).to_string();
    let service = start_open("open-daily", "--open-upload-bytes-per-day", &daily).await;
    let alice = from("198.51.100.1");
    let mut used = 0;
    for photo in &photos[..2] {
        created(create(&service, &alice, photo, &[]).await);
        used += photo.len() as u64;
    }
    // The caller without an API key learns its address's use today.
    let usage = get_as(&service, "/v1/usage", &alice).await;
    assert_eq!(usage.status, 200, "{}", usage.json());
    let usage = usage.json();
    assert_eq!(usage["scope"], "address", "{usage}");
    assert_eq!(usage["used_bytes"].as_u64(), Some(used), "{usage}");
    assert_eq!(usage["max_bytes"].as_u64(), Some(daily.parse().unwrap()));
    assert!(
        usage["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"),
        "{usage}"
    );

    let refused = create(&service, &alice, &photos[2], &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.json());
    let body = refused.json();
    assert_eq!(body["code"], "daily_limit_exceeded", "{body}");
    assert_eq!(body["used_bytes"].as_u64(), Some(used));
    assert_eq!(
        body["requested_bytes"].as_u64(),
        Some(photos[2].len() as u64)
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
    // Nothing of the refused upload was counted or kept.
    let usage = get_as(&service, "/v1/usage", &alice).await.json();
    assert_eq!(usage["used_bytes"].as_u64(), Some(used));
    let page = get_as(&service, "/v1/reports", &alice).await.json();
    assert_eq!(page["reports"].as_array().unwrap().len(), 2);

    // Another address has its own day.
    let bob = from("198.51.100.2");
    created(create(&service, &bob, &photos[2], &[]).await);
    let usage = get_as(&service, "/v1/usage", &bob).await.json();
    assert_eq!(usage["used_bytes"].as_u64(), Some(photos[2].len() as u64));
    // The refusal is counted for operators.
    let metrics = get_as(&service, "/metrics", &[]).await;
    assert!(
        String::from_utf8_lossy(&metrics.body).contains("lookalike_open_limit_rejected_total 1"),
        "the refusal is not counted"
    );
}

#[tokio::test]
async fn a_full_store_answers_507_and_a_deletion_makes_room() {
    let photos = crate::common::distinct_photos(3, 96);
    let size = photos.iter().map(Vec::len).max().unwrap();
    let cap = (2 * size + size / 2).to_string();
    let service = start_open("open-cap", "--open-max-storage-bytes", &cap).await;
    // From two addresses: the cap is the store's, not an address's.
    let first = created(create(&service, &from("198.51.100.1"), &photos[0], &[]).await);
    created(create(&service, &from("198.51.100.2"), &photos[1], &[]).await);
    let refused = create(&service, &from("198.51.100.3"), &photos[2], &[]).await;
    assert_eq!(refused.status, 507, "{}", refused.json());
    assert_eq!(refused.json()["code"], "storage_full");
    assert_eq!(
        refused.json()["used_bytes"].as_u64(),
        Some((photos[0].len() + photos[1].len()) as u64)
    );
    // The owner deletes a report: its bytes are free again.
    let (id, token) = id_and_token(&first);
    let deleted = delete_report(&service.addr, &id, &token).await;
    assert_eq!(deleted.status, 204);
    created(create(&service, &from("198.51.100.3"), &photos[2], &[]).await);
}

#[tokio::test]
async fn concurrent_uploads_fill_the_store_to_its_cap_exactly() {
    // Room for about 80 photos, reached while eight clients upload at once.
    let photos = crate::common::distinct_photos(100, 64);
    let size = photos.iter().map(Vec::len).max().unwrap();
    let cap = 80 * size + size / 2;
    let service = start_open(
        "open-cap-race",
        "--open-max-storage-bytes",
        &cap.to_string(),
    )
    .await;
    // Eight clients at once, each from its own address.
    let answers = futures_util::future::join_all((0..8).map(|client| {
        let service = &service;
        let photos = &photos;
        async move {
            let address = format!("198.51.100.{}", client + 1);
            let mut answers = Vec::new();
            for photo in photos.iter().skip(client).step_by(8) {
                let answer = create(service, &from(&address), photo, &[]).await;
                answers.push((photo.len(), answer.status, answer.json()));
            }
            answers
        }
    }))
    .await;
    let (mut stored, mut refused) = (0usize, Vec::new());
    for (len, status, body) in answers.into_iter().flatten() {
        match status {
            201 => stored += len,
            507 => {
                assert_eq!(body["code"], "storage_full", "{body}");
                refused.push(len);
            }
            other => panic!("status {other}: {body}"),
        }
    }
    // Never over the cap, and nothing refused that fitted: a refused photo did not fit beside
    // what was stored when it came, which is at most what is stored now.
    assert!(stored <= cap, "{stored} bytes stored, cap {cap}");
    assert!(!refused.is_empty(), "the cap was never reached");
    for len in &refused {
        assert!(
            stored + len > cap,
            "a {len}-byte photo was refused with {stored} of {cap} bytes used"
        );
    }
    // What the store counts is what it holds.
    let probe = create(&service, &from("198.51.100.99"), &photos[0], &[]).await;
    assert_eq!(probe.status, 507, "{}", probe.json());
    assert_eq!(probe.json()["used_bytes"].as_u64(), Some(stored as u64));
}

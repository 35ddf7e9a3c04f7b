//! The real binary through its lifecycle: SIGTERM while uploads are in flight loses no accepted
//! report.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::process::{Service, http};
use common::*;
use lookalike::store::Store;
use serde_json::Value;

async fn scalar(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

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

/// Waits until every photo is embedded and no job (embedding or matching) is queued or running.
async fn wait_for_jobs(store: &Store, seconds: u64) {
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
    const REPORTS: usize = 40;
    const PHOTOS: usize = 3;
    const GRACE_SECS: u64 = 2;
    let began = Instant::now();
    let url = fresh_database().await;
    let storage = temp_dir("sigterm-storage");
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
    wait_for_jobs(&store, 60).await;
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
        let (status, body) = http(&second.addr, "GET", &format!("/v1/reports/{id}"), "", &[])
            .await
            .unwrap();
        assert_eq!(status, 200);
        let report = json(&body);
        assert_eq!(report["embedding_status"], "ready", "{report}");
        let first_photo = report["photos"][0]["id"].as_str().unwrap();
        let (status, bytes) = http(
            &second.addr,
            "GET",
            &format!("/v1/photos/{first_photo}"),
            "",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert!(
            bytes == photos[index * PHOTOS],
            "the stored photo differs from the upload"
        );
    }
}

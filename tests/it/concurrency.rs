//! Transactions that meet: uploads sharing photos, reports matched with each other at the same
//! moment, a report created while its photo's embedding is saved, and a report that a thousand
//! others match. Each scenario is forced many times over; none may deadlock, lose a match job or
//! grow without bound (real database, real model).

use std::time::Duration;

use crate::common::*;
use axum::http::{Request, StatusCode};
use lookalike::jobs::JobPayload;
use lookalike::store::Store;
use serde_json::{Value, json};
use uuid::Uuid;

async fn create(app: &axum::Router, kind: &str, photos: &[Vec<u8>]) -> Value {
    let (status, _, body) = send(
        app,
        post_multipart("/v1/reports", &report_form(kind, "dog", photos)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn id_of(report: &Value) -> Uuid {
    report["id"].as_str().unwrap().parse().unwrap()
}

async fn scalar(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_sharing_new_photos_in_opposite_order_never_deadlock() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(400, 48);
    // 200 pairs of uploads, four pairs at a time; each pair's two reports hold the same two new
    // photos in opposite order.
    for wave in photos.chunks(8) {
        let uploads: Vec<_> = wave
            .chunks(2)
            .flat_map(|pair| {
                [
                    vec![pair[0].clone(), pair[1].clone()],
                    vec![pair[1].clone(), pair[0].clone()],
                ]
            })
            .map(|photos| {
                let router = app.router.clone();
                tokio::spawn(async move {
                    send(
                        &router,
                        post_multipart("/v1/reports", &report_form("lost", "dog", &photos)),
                    )
                    .await
                })
            })
            .collect();
        for upload in uploads {
            let (status, _, body) = upload.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    let store = &app.state.store;
    assert_eq!(scalar(store, "SELECT count(*) FROM reports").await, 400);
    assert_eq!(scalar(store, "SELECT count(*) FROM blobs").await, 400);
    assert_eq!(scalar(store, "SELECT count(*) FROM jobs").await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_matching_each_other_at_the_same_moment_never_deadlock() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let photos = distinct_photos(4, 96);
    let mut pairs = Vec::new();
    for photo in &photos {
        let lost = create(&app.router, "lost", std::slice::from_ref(photo)).await;
        let found = create(&app.router, "found", std::slice::from_ref(photo)).await;
        pairs.push((id_of(&lost), id_of(&found)));
    }
    let store = app.state.store.clone();
    eventually("embedded and matched", 30, || async {
        scalar(&store, "SELECT count(*) FROM jobs WHERE status <> 'done'").await == 0
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;
    // 200 times: both reports of a pair store their matches (each naming the other) at once,
    // four pairs at a time.
    let matcher = app.state.search.matcher().clone();
    for _round in 0..50 {
        let refreshes: Vec<_> = pairs
            .iter()
            .flat_map(|&(lost, found)| [lost, found])
            .map(|report| {
                let matcher = matcher.clone();
                tokio::spawn(async move { matcher.refresh(report).await })
            })
            .collect();
        for refresh in refreshes {
            let matched = refresh.await.unwrap();
            assert!(matched.as_ref().is_ok_and(|n| *n >= 1), "{matched:?}");
        }
    }
    // Every match is held in both directions.
    let stored = scalar(&store, "SELECT count(*) FROM report_matches").await;
    assert!(stored >= 8);
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM report_matches m WHERE EXISTS (SELECT 1 FROM report_matches r
                 WHERE r.report_id = m.matched_report_id AND r.matched_report_id = m.report_id)"
        )
        .await,
        stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_created_while_its_photo_is_embedded_gets_its_match_job() {
    let app = app(default_gate_settings(), uploads()).await;
    let store = app.state.store.clone();
    let photos = distinct_photos(200, 48);
    let vector: Vec<f32> = vec![1.0 / (1280f32).sqrt(); 1280];
    for photo in &photos {
        let photo = std::slice::from_ref(photo);
        create(&app.router, "lost", photo).await;
        // This photo's embedding job, claimed as a worker would (finishing the match jobs of
        // earlier rounds that come first).
        let job = loop {
            let job = store
                .jobs()
                .claim("race-worker", Duration::from_secs(30), app.model_id)
                .await
                .unwrap()
                .unwrap();
            if let Ok(JobPayload::Embed(embed)) = &job.payload {
                break (job.id, embed.sha256.clone());
            }
            store.jobs().finish(job.id, "race-worker").await.unwrap();
        };
        let (job_id, sha256) = job;
        let sha256 = hex::decode(sha256).unwrap();
        // The embedding is saved while a second report with the same photo is created.
        let saving = store.photos().save_embedding(
            job_id,
            "race-worker",
            &sha256,
            app.model_id,
            vector.clone(),
            3,
        );
        let creating = create(&app.router, "found", photo);
        let (saved, second) = tokio::join!(saving, creating);
        assert!(saved.unwrap());
        let match_jobs = scalar(
            &store,
            &format!(
                "SELECT count(*) FROM jobs WHERE dedupe_key = 'match:{}:{}'",
                id_of(&second),
                app.model_id
            ),
        )
        .await;
        assert_eq!(match_jobs, 1, "the second report's match job is missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_matched_by_a_thousand_shows_the_cap_of_open_ones() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(4));
    let store = app.state.store.clone();
    let photo = distinct_photos(1, 96);
    let first_found = create(&app.router, "found", &photo).await;
    eventually("embedded", 30, || async {
        scalar(&store, "SELECT count(*) FROM jobs WHERE status <> 'done'").await == 0
    })
    .await;
    // 999 more found reports with the same photo (written directly: uploading them would only
    // make the test slow).
    sqlx::query(
        "INSERT INTO reports (id, kind, species, title, owner_token_hash)
         SELECT gen_random_uuid(), 'found', 'dog', 'found #' || n, '\\x00'::bytea FROM generate_series(1, 999) n",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO photos (id, report_id, position, sha256)
         SELECT gen_random_uuid(), r.id, 0, (SELECT sha256 FROM blobs) FROM reports r WHERE r.title LIKE 'found #%'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let lost = create(&app.router, "lost", &photo).await;
    // Every found report is matched: each names the lost report, which keeps its best 10.
    sqlx::query(
        "INSERT INTO jobs (kind, dedupe_key, payload, max_attempts, model_id)
         SELECT 'match', 'match:' || id || ':' || $1, jsonb_build_object('report_id', id, 'model_id', $1), 3, $1
         FROM reports WHERE kind = 'found'
         ON CONFLICT (dedupe_key) DO UPDATE SET status = 'queued', attempts = 0, finished_at = NULL",
    )
    .bind(app.model_id)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('lookalike_jobs', '')")
        .execute(store.pool())
        .await
        .unwrap();
    eventually("a thousand match jobs done", 120, || async {
        scalar(&store, "SELECT count(*) FROM jobs WHERE status <> 'done'").await == 0
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;
    let lost_id = id_of(&lost);
    assert_eq!(
        scalar(
            &store,
            &format!("SELECT count(*) FROM report_matches WHERE report_id = '{lost_id}'")
        )
        .await,
        10
    );
    assert_eq!(
        scalar(
            &store,
            &format!("SELECT count(*) FROM report_matches WHERE matched_report_id = '{lost_id}'")
        )
        .await,
        1000,
        "each found report keeps its one match"
    );
    let uri = format!("/v1/reports/{lost_id}");
    let (_, _, body) = send(&app.router, get(&uri)).await;
    let shown = body["possible_matches"].as_array().unwrap().clone();
    assert_eq!(shown.len(), 10, "{body}");

    // A resolved report leaves the matches, in both directions.
    let resolve = Request::patch(format!(
        "/v1/reports/{}",
        first_found["id"].as_str().unwrap()
    ))
    .header(
        "authorization",
        format!("Bearer {}", first_found["owner_token"].as_str().unwrap()),
    )
    .header("content-type", "application/json")
    .body(axum::body::Body::from(
        json!({ "status": "resolved" }).to_string(),
    ))
    .unwrap();
    let (status, _, body) = send(&app.router, resolve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["possible_matches"], json!([]));
    let (_, _, body) = send(&app.router, get(&uri)).await;
    let shown = body["possible_matches"].as_array().unwrap();
    assert!(
        shown.len() <= 10 && shown.iter().all(|m| m["report_id"] != first_found["id"]),
        "{body}"
    );
}

//! A worker renews its job's lease without stalling the job (real model, real database).

use std::time::{Duration, Instant};

use crate::common::*;
use axum::http::StatusCode;
use lookalike::jobs::JobSettings;

/// Backends of this database waiting for a row lock while running a statement like `pattern`.
fn waiting_on_lock(pattern: &str) -> String {
    format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE '{pattern}'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_renewal_waiting_for_the_jobs_own_transaction_does_not_stall_it() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let (status, _, created) = send(
        &app.router,
        post_multipart(
            "/v1/reports",
            &report_form("lost", "dog", &distinct_photos(1, 200)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Someone else holds the report's row: the job's finishing transaction, which has already
    // marked the job done (holding the job's row), waits for it.
    let mut other = app.state.store.pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM reports WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *other)
        .await
        .unwrap();
    // A short lease: renewals every 100 ms, which then wait for the job's row.
    let workers = app.start_workers(JobSettings {
        workers: 1,
        lease: Duration::from_millis(300),
        poll: Duration::from_millis(50),
        backoff: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    });
    eventually(
        "the job's transaction waits for the report's row",
        30,
        || async {
            count(
                &app,
                &waiting_on_lock("%FROM reports WHERE id IN%FOR UPDATE%"),
            )
            .await
                > 0
        },
    )
    .await;
    eventually("a lease renewal waits for the job's row", 10, || async {
        count(&app, &waiting_on_lock("%UPDATE jobs SET locked_until%")).await > 0
    })
    .await;

    // Once the report's row is free, the job finishes at once: its transaction is not left
    // waiting behind its own renewal (until the 15 s statement timeout).
    other.rollback().await.unwrap();
    let released = Instant::now();
    eventually("the job is done", 5, || async {
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE kind = 'embed' AND status = 'done' AND attempts = 1",
        )
        .await
            == 1
    })
    .await;
    eprintln!(
        "job done {:?} after the report's row was released",
        released.elapsed()
    );
    assert_eq!(count(&app, "SELECT count(*) FROM embeddings").await, 1);
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_embedding_job_key_is_built_alike_in_rust_and_in_sql() {
    let store = fresh_store().await;
    let sha256 = [0x0f_u8, 0xa0, 0x33, 0xff];
    let in_sql: String = sqlx::query_scalar("SELECT lookalike_embed_job_key($1, $2)")
        .bind(&sha256[..])
        .bind(42_i32)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        in_sql,
        lookalike::jobs::JobPayload::embed(&sha256, 42).dedupe_key()
    );
}

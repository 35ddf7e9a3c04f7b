//! The real binary as child processes: `kill -9` while jobs run loses and duplicates nothing, and
//! two processes on one database share the queue so that each job runs once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::api::post_report_to;
use crate::common::process::Service;
use crate::common::*;
use lookalike::store::Store;

async fn create_reports(service: &Service, photos: &[Vec<u8>]) {
    for photo in photos {
        let one = std::slice::from_ref(photo);
        post_report_to(&service.addr, ("found", "cat"), one, &[]).await;
    }
}

async fn assert_exactly_one_embedding_per_photo(store: &Store, total: i64) {
    assert_eq!(scalar(store, "SELECT count(*) FROM blobs").await, total);
    assert_eq!(
        scalar(store, "SELECT count(*) FROM embeddings").await,
        total
    );
    assert_eq!(
        scalar(store, "SELECT count(DISTINCT sha256) FROM embeddings").await,
        total
    );
    assert_eq!(
        scalar(store, "SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = b.sha256)").await,
        0
    );
    assert_eq!(
        scalar(store, "SELECT count(*) FROM jobs WHERE status <> 'done'").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_jobs_run_loses_and_duplicates_nothing() {
    let _machine = whole_machine().await;
    const REPORTS: usize = 100;
    let (url, storage) = database_and_storage("crash-storage").await;
    let photos = distinct_photos(REPORTS, 640);

    // Reports accepted by a process without workers: 100 jobs wait.
    let front = Service::start(&url, &storage, 0).await;
    create_reports(&front, &photos).await;
    drop(front);
    let store = Store::connect(&database_config(url.clone())).await.unwrap();
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE status = 'queued'").await,
        REPORTS as i64
    );

    // A worker process is killed with SIGKILL in the middle of the queue...
    let worker = Service::start(&url, &storage, 2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(&store, "SELECT count(*) FROM jobs WHERE status = 'done'").await < 10 {
        assert!(Instant::now() < deadline, "no job finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.kill_9();
    let done_at_kill = scalar(
        &store,
        "SELECT count(*) FROM jobs WHERE kind = 'embed' AND status = 'done'",
    )
    .await;
    let running_at_kill =
        scalar(&store, "SELECT count(*) FROM jobs WHERE status = 'running'").await;
    assert!(
        done_at_kill < REPORTS as i64,
        "the kill came after all jobs were done"
    );
    eprintln!("killed with {done_at_kill} jobs done and {running_at_kill} running");

    // ...and a new process finishes everything, reclaiming the jobs the dead one held.
    let _restarted = Service::start(&url, &storage, 2).await;
    wait_for_jobs_done(&store, 120).await;
    assert_exactly_one_embedding_per_photo(&store, REPORTS as i64).await;
    let reclaimed = scalar(&store, "SELECT count(*) FROM jobs WHERE attempts > 1").await;
    assert_eq!(
        reclaimed, running_at_kill,
        "every job held by the killed process ran again, and only those"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_queue_and_run_each_job_once() {
    let _machine = whole_machine().await;
    const REPORTS: usize = 60;
    let (url, storage) = database_and_storage("shared-storage").await;
    let photos = distinct_photos(REPORTS, 480);
    let a = Service::start(&url, &storage, 2).await;
    let b = Service::start(&url, &storage, 2).await;
    create_reports(&a, &photos).await;
    let store = Store::connect(&database_config(url.clone())).await.unwrap();
    wait_for_jobs_done(&store, 120).await;
    assert_exactly_one_embedding_per_photo(&store, REPORTS as i64).await;
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE attempts <> 1").await,
        0,
        "a job ran twice"
    );
    let workers: Vec<String> = sqlx::query_scalar("SELECT DISTINCT locked_by FROM jobs")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let processes: HashSet<&str> = workers.iter().filter_map(|w| w.split('-').next()).collect();
    assert_eq!(processes.len(), 2, "both processes took jobs: {workers:?}");
    drop((a, b));
}

//! Load test of report creation while background jobs are queued, and of the job throughput.
//!
//!   cargo bench --bench reports_load -- [--clients 20] [--seconds 10] [--queued 200] [--workers 4]
//!
//! In-process service over a fresh database (dropped at the end):
//! 1. `--queued` reports are created with no worker running, so that many embedding jobs wait;
//! 2. the workers start and `--clients` clients create reports for `--seconds` (each a new photo,
//!    so each adds a job): creation latency while the queue is deep;
//! 3. the clients stop and the queue drains: jobs per second at saturation;
//! 4. `/v1/embeddings` with the same kind of photo for `--seconds`: photos per second, to compare.
//!
//! Loopback only; every phase stops by itself.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lookalike::config::GateConfig;
use lookalike::jobs::{JobContext, JobSettings, Workers};
use support::http::{drive, multipart, post_request, send_all, start_server, storage_dir};

fn report_requests(addr: &str, photos: &[Vec<u8>]) -> Vec<Arc<Vec<u8>>> {
    photos
        .iter()
        .map(|p| {
            let fields = [
                ("kind", "found"),
                ("species", "dog"),
                ("title", "Brown dog"),
            ];
            let (content_type, body) = multipart(&fields, &[p]);
            post_request(addr, "/v1/reports", &content_type, &body)
        })
        .collect()
}

async fn job_counts(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*) FILTER (WHERE status IN ('queued', 'running')), count(*) FILTER (WHERE status = 'done') FROM jobs")
        .fetch_one(pool)
        .await
        .expect("job counts")
}

fn main() {
    let (clients, seconds, queued) = (
        support::arg("--clients", 20usize),
        support::arg("--seconds", 10u64),
        support::arg("--queued", 200usize),
    );
    let worker_count = support::arg("--workers", 4usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = support::BenchDatabase::create("bench").await;
        let url = db.url.clone();

        let gate = GateConfig {
            max_batch: 4,
            ..GateConfig::default()
        };
        let (addr, stop, state) = start_server(gate, Some(url.clone())).await;
        let mut all_photos = support::distinct_jpegs(queued + clients * 60 + 1);
        // Phase 4's photo: one nobody uploaded, or it would be answered from the store.
        let unseen = all_photos.pop().expect("one photo more");
        let (backlog, fresh) = all_photos.split_at(queued);
        let pool = state.store.pool().clone();

        send_all(&addr, &report_requests(&addr, backlog), clients).await;
        println!(
            "backlog: {} embedding jobs queued",
            job_counts(&pool).await.0
        );

        let settings = JobSettings {
            workers: worker_count,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        };
        let context = JobContext {
            store: state.store.clone(),
            photo_store: lookalike::photo_store::PhotoStore::local(&storage_dir()).expect("photo folder"),
            pipeline: state.pipeline.clone(),
            matcher: state.search.matcher().clone(),
            model_id: state.reports.model_id(),
            webhooks: state.webhooks.clone(),
        };
        let workers = Workers::start(context, settings);
        let report = drive(&addr, &report_requests(&addr, fresh), clients, seconds).await;
        let (waiting, _) = job_counts(&pool).await;
        report.print(
            &format!("report creation, {clients} clients, {seconds} s, while jobs run"),
            None,
        );
        println!("  jobs still queued at the end: {waiting}");

        let (start_waiting, start_done) = job_counts(&pool).await;
        let started = Instant::now();
        loop {
            let (waiting, _) = job_counts(&pool).await;
            if waiting == 0 || started.elapsed() > Duration::from_secs(300) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, end_done) = job_counts(&pool).await;
        let jobs_per_second = (end_done - start_done) as f64 / started.elapsed().as_secs_f64();
        println!(
            "== queue drain: {start_waiting} jobs, {worker_count} workers, {jobs_per_second:.1} jobs/s"
        );
        workers.stop(Duration::from_secs(5)).await;

        let (content_type, body) = multipart(&[], &[&unseen]);
        let embed = drive(
            &addr,
            &[post_request(&addr, "/v1/embeddings", &content_type, &body)],
            8,
            seconds,
        )
        .await;
        embed.print(
            &format!("/v1/embeddings, 8 clients, {seconds} s, same kind of photo"),
            None,
        );
        println!(
            "  jobs/s ÷ /v1/embeddings photos/s = {:.2}",
            jobs_per_second / embed.rate(200)
        );

        let _ = stop.send(());
        state.store.close().await;
        db.drop().await;
    });
}

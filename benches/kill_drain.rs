//! `kill -9` with a backlog, then a restart: does every report end embedded, none failed, and
//! how long does the drain take? On the real binary (`make drain`):
//!
//!   cargo bench --bench kill_drain -- [--reports 450] [--workers 4] [--lease-secs 10] [--binary PATH]
//!
//! 1. `serve` with no job workers takes `--reports` uploads (one new 0.5 MP photo each): that
//!    many embedding jobs wait;
//! 2. `serve` with `--workers` starts on the backlog and is killed with SIGKILL after a tenth of
//!    it (its running jobs keep their leases);
//! 3. `serve` starts again: the time until every photo is embedded and every report matched,
//!    the jobs failed (must be 0) and the jobs run more than once (the killed leases').
//!
//! A fresh database (dropped at the end) and a temporary photo folder.

mod support;

use std::time::{Duration, Instant};

use support::http::{multipart, post_request, send_all};
use support::serve::Serve;

/// `serve` with `args`, per-address upload limits off (one address posts the whole backlog).
async fn serve(binary: &str, database: &str, storage: &std::path::Path, args: &[&str]) -> Serve {
    let args = [&["--rate-uploads-per-address", "off"][..], args].concat();
    Serve::start(binary, database, storage, &args).await
}

/// (unfinished, running, done, failed) jobs, and photos without an embedding.
async fn state(pool: &sqlx::PgPool) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status IN ('queued', 'running')),
                count(*) FILTER (WHERE status = 'running'),
                count(*) FILTER (WHERE status = 'done'),
                count(*) FILTER (WHERE status = 'failed'),
                (SELECT count(*) FROM blobs b WHERE NOT EXISTS
                    (SELECT 1 FROM embeddings e WHERE e.sha256 = b.sha256))
         FROM jobs",
    )
    .fetch_one(pool)
    .await
    .expect("job counts")
}

fn main() {
    let reports: usize = support::arg("--reports", 450);
    let workers: usize = support::arg("--workers", 4);
    let lease: u64 = support::arg("--lease-secs", 10);
    let binary: String = support::arg("--binary", env!("CARGO_BIN_EXE_lookalike").to_owned());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let db = support::BenchDatabase::create("drain").await;
        let database = db.url.clone();
        let storage = std::env::temp_dir().join(&db.name);

        let photos = support::distinct_jpegs(reports);
        let fields = [("kind", "found"), ("species", "dog"), ("title", "Found dog")];
        let (workers_arg, lease_arg) = (workers.to_string(), lease.to_string());
        let with_workers = [
            "--job-workers",
            &workers_arg,
            "--job-lease-secs",
            &lease_arg,
        ];
        {
            let intake = serve(&binary, &database, &storage, &["--job-workers", "0"]).await;
            let requests: Vec<_> = photos
                .iter()
                .map(|p| {
                    let (content_type, body) = multipart(&fields, &[p]);
                    post_request(&intake.addr.to_string(), "/v1/reports", &content_type, &body)
                })
                .collect();
            let began = Instant::now();
            send_all(&intake.addr.to_string(), &requests, 8).await;
            println!(
                "{reports} reports created in {:.1} s with no worker running",
                began.elapsed().as_secs_f64()
            );
        }
        let pool = sqlx::PgPool::connect(&database).await.expect("database");

        let mut doomed = serve(&binary, &database, &storage, &with_workers).await;
        while state(&pool).await.2 < (reports / 10) as i64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        doomed.child.kill().expect("SIGKILL");
        let _ = doomed.child.wait();
        let (pending, running, done, _, missing) = state(&pool).await;
        println!(
            "killed with -9: {done} jobs done, {pending} pending ({missing} photos to embed, the \
             rest matching), {running} of them leased by the dead process"
        );

        let began = Instant::now();
        let _survivor = serve(&binary, &database, &storage, &with_workers).await;
        let started = began.elapsed().as_secs_f64();
        let (failed, drained) = loop {
            let (pending, _, _, failed, missing) = state(&pool).await;
            if pending == 0 && missing == 0 {
                break (failed, began.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let not_ready: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM photos p WHERE NOT EXISTS
                (SELECT 1 FROM embeddings e WHERE e.sha256 = p.sha256)",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        let rerun: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE attempts > 1")
            .fetch_one(&pool)
            .await
            .expect("count");
        println!(
            "restart: ready in {started:.1} s, backlog drained {drained:.1} s after the start \
             ({:.0} jobs/s); reports not ready {not_ready}, jobs failed {failed}, jobs run twice {rerun}",
            pending as f64 / drained
        );
        pool.close().await;
        db.drop().await;
        let _ = std::fs::remove_dir_all(&storage);
        if failed > 0 || not_ready > 0 {
            std::process::exit(1);
        }
    });
}

//! Search over 100k stored vectors: database time p50/p99 per filter kind, and the recall@10 of
//! the HNSW search (with iterative scans) against exact search, through the store's own query.
//!
//!   cargo bench --bench search_db -- [--vectors 100000] [--queries 200] [--recall-queries 40]
//!       [--hnsw-m 32] [--hnsw-ef-construction 128]
//!
//! Runs in a fresh database (dropped at the end) on the local PostgreSQL. The vectors are
//! synthetic but structured like embeddings: 1000 clusters of unit vectors in 1280 dimensions;
//! reports get a random kind, species and place, so filters have realistic selectivity.

use std::time::{Duration, Instant};

use lookalike::config::{DEFAULT_DATABASE_URL, DatabaseConfig};
use lookalike::reports::{ReportKind, Species};
use lookalike::store::{SearchFilter, SearchMode, Store};
use pgvector::Vector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use uuid::Uuid;

mod support;

const DIM: usize = 1280;

/// Makes the filter of one query (the place filter draws a random place).
type MakeFilter = Box<dyn Fn(&mut StdRng) -> SearchFilter>;

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller.
    let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen_range(0.0..1.0));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

fn around(center: &[f32], spread: f32, rng: &mut StdRng) -> Vec<f32> {
    unit(
        center
            .iter()
            .map(|c| c + spread * gaussian(rng) / (DIM as f32).sqrt())
            .collect(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1].as_secs_f64()
        * 1e3
}

fn main() {
    let (total, queries, recall_queries) = (
        support::arg("--vectors", 100_000),
        support::arg("--queries", 200),
        support::arg("--recall-queries", 40),
    );
    let defaults = DatabaseConfig::default();
    let (hnsw_m, hnsw_ef_construction) = (
        support::arg("--hnsw-m", defaults.hnsw_m),
        support::arg("--hnsw-ef-construction", defaults.hnsw_ef_construction),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let base_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let db = format!("lookalike_searchbench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&base_url).await.expect("database (scripts/pg.sh start)");
        sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.expect("create database");
        // The index build runs on a connection of the store's own: the setting goes with the database.
        sqlx::query(&format!("ALTER DATABASE {db} SET maintenance_work_mem = '1GB'")).execute(&mut admin).await.expect("set");
        let url = base_url.replacen("/lookalike?", &format!("/{db}?"), 1);
        let config = DatabaseConfig { url, max_connections: 4, acquire_timeout_ms: 10_000, statement_timeout_ms: 3_600_000, connect_retry_secs: 5, hnsw_m, hnsw_ef_construction };
        let store = Store::connect(&config).await.expect("connect");
        store.migrate().await.expect("migrate");
        let pool = store.pool().clone();
        let model_id: i32 = sqlx::query_scalar("INSERT INTO models (name, version, dim, sha256) VALUES ('bench', 'synthetic', 1280, '-') RETURNING id")
            .fetch_one(&pool)
            .await
            .expect("model");

        let mut rng = StdRng::seed_from_u64(42);
        let centers: Vec<Vec<f32>> = (0..1000).map(|_| unit((0..DIM).map(|_| gaussian(&mut rng)).collect())).collect();
        let kinds = ["lost", "found", "sighting"];
        let species = ["dog", "cat", "other"];
        let started = Instant::now();
        for chunk_start in (0..total).step_by(1000) {
            let n = 1000.min(total - chunk_start);
            let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
            let shas: Vec<Vec<u8>> = (0..n).map(|_| [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat()).collect();
            let kind: Vec<&str> = (0..n).map(|_| kinds[[0, 0, 1, 1, 1, 2].get(rng.gen_range(0..6)).copied().unwrap_or(0)]).collect();
            let spec: Vec<&str> = (0..n).map(|_| species[[0, 0, 0, 1, 1, 2].get(rng.gen_range(0..6)).copied().unwrap_or(0)]).collect();
            let lat: Vec<f64> = (0..n).map(|_| rng.gen_range(35.0..60.0)).collect();
            let lon: Vec<f64> = (0..n).map(|_| rng.gen_range(-10.0..30.0)).collect();
            let vectors: Vec<Vector> =
                (0..n).map(|_| Vector::from(around(&centers[rng.gen_range(0..centers.len())], 0.8, &mut rng))).collect();
            let mut tx = pool.begin().await.expect("tx");
            sqlx::query(
                "INSERT INTO reports (id, kind, species, title, latitude, longitude, owner_token_hash)
                 SELECT id, k, s, 'bench', la, lo, '\\x00' FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::float8[]) AS t(id, k, s, la, lo)",
            )
            .bind(&ids).bind(&kind).bind(&spec).bind(&lat).bind(&lon)
            .execute(&mut *tx).await.expect("reports");
            sqlx::query(
                "INSERT INTO blobs (sha256, storage_key, thumbnail_key, format, width, height, bytes)
                 SELECT sha, 'k' || encode(sha, 'hex'), 't' || encode(sha, 'hex'), 'jpeg', 640, 480, 1 FROM unnest($1::bytea[]) AS t(sha)",
            )
            .bind(&shas).execute(&mut *tx).await.expect("blobs");
            sqlx::query(
                "INSERT INTO photos (id, report_id, position, sha256) SELECT gen_random_uuid(), r, 0, sha FROM unnest($1::uuid[], $2::bytea[]) AS t(r, sha)",
            )
            .bind(&ids).bind(&shas).execute(&mut *tx).await.expect("photos");
            sqlx::query("INSERT INTO embeddings (sha256, model_id, embedding) SELECT sha, $2, v FROM unnest($1::bytea[], $3::vector[]) AS t(sha, v)")
                .bind(&shas).bind(model_id).bind(&vectors)
                .execute(&mut *tx).await.expect("embeddings");
            tx.commit().await.expect("commit");
        }
        println!("inserted {total} reports with one photo and embedding each in {:.1} s", started.elapsed().as_secs_f64());
        let started = Instant::now();
        // The model's own partial index, made by the store as the service makes it (after the load: faster).
        store.models().ensure_index(model_id).await.expect("index");
        sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
        println!("HNSW index (m {hnsw_m}, ef_construction {hnsw_ef_construction}) built in {:.1} s", started.elapsed().as_secs_f64());

        let queries_v: Vec<Vec<f32>> = (0..queries).map(|_| around(&centers[rng.gen_range(0..centers.len())], 0.8, &mut rng)).collect();
        let near = |rng: &mut StdRng| (rng.gen_range(40.0..55.0), rng.gen_range(0.0..20.0), 300.0);
        let filters: Vec<(&str, MakeFilter)> = vec![
            ("no filter", Box::new(|_| SearchFilter::default())),
            ("kind=found", Box::new(|_| SearchFilter { kinds: vec![ReportKind::Found], ..SearchFilter::default() })),
            ("kind=found species=cat", Box::new(|_| SearchFilter { kinds: vec![ReportKind::Found], species: Some(Species::Cat), ..SearchFilter::default() })),
            ("near 300 km", Box::new(move |rng: &mut StdRng| SearchFilter { near: Some(near(rng)), ..SearchFilter::default() })),
            // What the service runs for a place filter: exact, over the latitude band.
            ("near 300 km, exact scan", Box::new(move |rng: &mut StdRng| SearchFilter { near: Some(near(rng)), ..SearchFilter::default() })),
        ];
        let k = 10;
        for ef in [40u32, 100, 200] {
            for (name, make) in &filters {
                if ef != 100 && *name != "no filter" {
                    continue;
                }
                let mut times = Vec::new();
                let mut short = 0;
                let mut recall_sum = 0.0;
                for (i, q) in queries_v.iter().enumerate() {
                    let filter = make(&mut rng);
                    let t = Instant::now();
                    let mode = if name.ends_with("exact scan") { SearchMode::Exact } else { SearchMode::Index { ef_search: ef } };
                    let hits = store.photos().nearest(q, model_id, &filter, k, mode).await.expect("search");
                    times.push(t.elapsed());
                    if hits.len() < k as usize {
                        short += 1;
                    }
                    if i < recall_queries {
                        let exact = store.photos().nearest(q, model_id, &filter, k, SearchMode::Exact).await.expect("exact");
                        let found = hits.iter().filter(|h| exact.iter().any(|e| e.photo_id == h.photo_id)).count();
                        recall_sum += found as f64 / exact.len().max(1) as f64;
                    }
                }
                times.sort();
                println!(
                    "ef_search {ef:>3}  {name:<24} p50 {:>6.1} ms  p99 {:>6.1} ms  recall@{k} vs exact {:.3}  short of k: {short}/{}",
                    percentile(&times, 0.5),
                    percentile(&times, 0.99),
                    recall_sum / recall_queries.min(queries) as f64,
                    queries
                );
            }
        }
        store.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin).await;
    });
}

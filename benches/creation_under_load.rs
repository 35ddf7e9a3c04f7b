//! Is a report answered at once, also while the model is saturated? In one run:
//!
//!   cargo bench --bench creation_under_load -- [--creators 10] [--embedders 20] [--seconds 15]
//!
//! 1. `--creators` clients create reports with 3 MP JPEGs (a new photo each) for `--seconds`: the
//!    creation latency on a quiet service;
//! 2. the same while `--embedders` other clients keep `POST /v1/embeddings` busy with 12 MP
//!    phone-like JPEGs (3 MB, quality 92, sensor noise): the gate saturated.
//!
//! In-process service over a fresh database (dropped at the end), no job workers (a report's
//! embedding is not part of its creation).

mod support;

use std::sync::Arc;

use lookalike::config::GateConfig;
use support::http::{drive, multipart, post_request, start_server};

/// `count` distinct 3 MP phone-like JPEGs (quality 90, a little grain: another seed, other bytes).
fn report_photos(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| support::phone_photo(2000, 1500, 90, 2, i as u32))
        .collect()
}

fn main() {
    let creators: usize = support::arg("--creators", 10);
    let embedders: usize = support::arg("--embedders", 20);
    let seconds: u64 = support::arg("--seconds", 15);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let db = support::BenchDatabase::create("creation").await;
        let url = db.url.clone();
        let (addr, stop, _state) = start_server(GateConfig::default(), Some(url)).await;

        // Enough distinct photos for most of each phase (then they repeat: a repeat is still
        // checked, only its bytes are not written again).
        let reports = report_photos(2 * creators * 10);
        let phone: Vec<Vec<u8>> = (0..4)
            .map(|seed| support::phone_photo(4000, 3000, 92, 10, seed))
            .collect();
        println!(
            "photos: reports {:.2} MB (3 MP), embeddings {:.2} MB (12 MP, q92, noise)",
            reports[0].len() as f64 / 1e6,
            phone[0].len() as f64 / 1e6
        );
        let fields = [("kind", "found"), ("species", "dog"), ("title", "Found dog")];
        let requests = |photos: &[Vec<u8>]| -> Vec<Arc<Vec<u8>>> {
            photos
                .iter()
                .map(|p| {
                    let (content_type, body) = multipart(&fields, &[p]);
                    post_request(&addr, "/v1/reports", &content_type, &body)
                })
                .collect()
        };
        let (quiet, busy) = reports.split_at(reports.len() / 2);

        let alone = drive(&addr, &requests(quiet), creators, seconds).await;
        alone.print(
            &format!("report creation, {creators} clients, {seconds} s, nothing else running"),
            None,
        );

        let embeddings: Vec<_> = phone
            .iter()
            .map(|p| {
                let (content_type, body) = multipart(&[], &[p]);
                post_request(&addr, "/v1/embeddings", &content_type, &body)
            })
            .collect();
        let busy_requests = requests(busy);
        let (created, embedded) = tokio::join!(
            drive(&addr, &busy_requests, creators, seconds),
            drive(&addr, &embeddings, embedders, seconds)
        );
        created.print(
            &format!(
                "report creation, {creators} clients, {seconds} s, while {embedders} clients saturate /v1/embeddings"
            ),
            None,
        );
        embedded.print(&format!("/v1/embeddings meanwhile, {embedders} clients, 12 MP"), None);

        let _ = stop.send(());
        db.drop().await;
        let _ = std::fs::remove_dir_all(support::http::storage_dir());
    });
}

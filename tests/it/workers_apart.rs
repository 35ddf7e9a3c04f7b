//! `lookalike work`: job workers without the API, beside an API-only `serve` on one database and
//! one photo store (the real binary): every report it accepts ends embedded by the worker
//! process, which stops cleanly on SIGTERM.

use std::process::Command;
use std::time::Duration;

use crate::common::api::report_ready;
use crate::common::process::{Service, http, work_command};
use crate::common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_embeds_what_an_api_only_replica_accepts() {
    let _machine = whole_machine().await;
    let (database, storage) = database_and_storage("storage").await;
    let api = Service::start(&database, &storage, 0).await;
    let mut ids = Vec::new();
    for photo in distinct_photos(6, 96).chunks(2) {
        let (content_type, body) = multipart(&report_form("lost", "dog", photo));
        let (status, answer) = http(&api.addr, "POST", "/v1/reports", &content_type, &body)
            .await
            .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
        let report: Value = serde_json::from_slice(&answer).unwrap();
        ids.push(report["id"].as_str().unwrap().to_owned());
    }
    let mut worker = work_command(&database)
        .env("LOOKALIKE_STORAGE_DIR", &storage)
        .spawn()
        .unwrap();
    for id in &ids {
        let ready = || report_ready(&api.addr, id);
        eventually("embedded by the worker process", 60, ready).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");

    // Without a worker, `work` refuses to start.
    let none = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .current_dir(repo(""))
        .args(["work", "--job-workers", "0"])
        .env("DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--job-workers is 0"));
}

//! Models side by side on one database (a rolling upgrade): each process claims only its own
//! model's jobs, a model whose vectors the schema cannot hold is refused at start, and a retired
//! model's vectors are dropped (the real binary, the real database).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::api::{post_report_to, report_ready};
use crate::common::process::Service;
use crate::common::*;
use lookalike::store::Store;
use serde_json::Value;

/// A model file of its own in a temporary folder: the real model's bytes under another name and
/// version (so the database registers another model), with `dim` in its manifest.
fn model_copy(name: &str, dim: u64) -> PathBuf {
    let dir = temp_dir("model");
    let model = dir.join(format!("{name}.onnx"));
    std::os::unix::fs::symlink(repo("models/efficientnet_lite0.onnx"), &model).unwrap();
    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("models/efficientnet_lite0.manifest.json")).unwrap(),
    )
    .unwrap();
    manifest["name"] = name.into();
    manifest["version"] = "test".into();
    manifest["dim"] = dim.into();
    std::fs::write(model.with_extension("manifest.json"), manifest.to_string()).unwrap();
    model
}

async fn upload(service: &Service, photo: &[u8]) -> Value {
    post_report_to(&service.addr, ("lost", "dog"), &[photo.to_vec()], &[]).await
}

async fn ready(service: &Service, report: &Value) -> bool {
    report_ready(&service.addr, report["id"].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_schema_cannot_hold_is_refused_at_start() {
    let database = fresh_database().await;
    let model = model_copy("wide-model", 512);
    let out = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .current_dir(repo(""))
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(&model)
        .env("DATABASE_URL", &database)
        .env("LOOKALIKE_STORAGE_DIR", temp_dir("storage"))
        .env("LOOKALIKE_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("makes 512-dimensional embeddings")
            && stderr.contains("halfvec(1280)")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_with_different_models_each_embed_only_their_own() {
    let _machine = whole_machine().await;
    let (database, storage) = database_and_storage("storage").await;
    let other = model_copy("efficientnet-lite0-next", 1280);
    let old = Service::start(&database, &storage, 2).await;
    let other_arg = other.to_string_lossy().into_owned();
    let new = Service::start_with(&database, &storage, 2, &["--model", &other_arg], None).await;
    let store = Store::connect(&database_config(database.clone()))
        .await
        .unwrap();

    // Each process's uploads queue jobs for its own model; one photo goes through both.
    let photos = distinct_photos(9, 96);
    let mut mine = (Vec::new(), Vec::new());
    for (i, photo) in photos.iter().enumerate() {
        if i % 2 == 0 || i == 8 {
            mine.0.push(upload(&old, photo).await);
        }
        if i % 2 == 1 || i == 8 {
            mine.1.push(upload(&new, photo).await);
        }
    }
    for (service, reports) in [(&old, &mine.0), (&new, &mine.1)] {
        for report in reports {
            eventually("embedded by its own process", 60, || ready(service, report)).await;
        }
    }
    let models: Vec<(i32, String)> = sqlx::query_as("SELECT id, name FROM models ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(models.len(), 2, "{models:?}");
    for ((model, name), (service, photos)) in models
        .iter()
        .zip([(&old, mine.0.len()), (&new, mine.1.len())])
    {
        let by_others = scalar(
            &store,
            &format!(
                "SELECT count(*) FROM jobs WHERE model_id = {model} AND locked_by NOT LIKE '{}-%'",
                service.pid()
            ),
        )
        .await;
        assert_eq!(by_others, 0, "{name}: jobs run by the other process");
        let embedded = scalar(
            &store,
            &format!("SELECT count(*) FROM embeddings WHERE model_id = {model}"),
        )
        .await;
        assert_eq!(embedded, photos as i64, "{name}");
    }
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE status = 'failed'").await,
        0
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM jobs WHERE attempts > 1").await,
        0,
        "no attempt spent on another model's job"
    );
    // Each model has its own vector index.
    for (model, _) in &models {
        assert_eq!(
            scalar(
                &store,
                &format!(
                    "SELECT count(*) FROM pg_indexes WHERE indexname = 'embeddings_hnsw_model_{model}'"
                ),
            )
            .await,
            1
        );
    }
    drop(old);
    drop(new);

    // After the upgrade, the old model's vectors, jobs and index are dropped by its operator.
    let version =
        lookalike::inference::ModelManifest::load_for(&repo("models/efficientnet_lite0.onnx"))
            .unwrap()
            .version;
    let dropped = run(
        &database,
        &storage,
        &[
            "drop-model",
            "--name",
            "efficientnet-lite0",
            "--version",
            &version,
        ],
    );
    assert!(dropped.contains("5 embeddings deleted"), "{dropped}");
    let (old_model, _) = &models[0];
    for sql in [
        format!("SELECT count(*) FROM embeddings WHERE model_id = {old_model}"),
        format!("SELECT count(*) FROM jobs WHERE model_id = {old_model}"),
        format!(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'embeddings_hnsw_model_{old_model}'"
        ),
        format!("SELECT count(*) FROM models WHERE id = {old_model}"),
    ] {
        assert_eq!(scalar(&store, &sql).await, 0, "{sql}");
    }
    let listed = run(&database, &storage, &["models"]);
    assert!(
        listed.contains("efficientnet-lite0-next") && !listed.contains(&version),
        "{listed}"
    );
}

/// Runs a `lookalike` command on `database`; its standard output (it must succeed).
fn run(database: &str, storage: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .current_dir(repo(""))
        .args(args)
        .env("DATABASE_URL", database)
        .env("LOOKALIKE_STORAGE_DIR", storage)
        .env("LOOKALIKE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

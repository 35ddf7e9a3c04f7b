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
    // (The version the process served: the model file's, with the detector in front by default.)
    let (old_model, _) = &models[0];
    let version: String = sqlx::query_scalar("SELECT version FROM models WHERE id = $1")
        .bind(old_model)
        .fetch_one(store.pool())
        .await
        .unwrap();
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

/// A store's vector index built with other settings (here pgvector's defaults, as every store
/// before `--hnsw-m` had) is kept at start and rebuilt beside the old one, which answers every
/// search meanwhile; afterwards one valid index with the new settings serves the searches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_built_with_other_settings_is_rebuilt_while_it_answers() {
    use lookalike::store::{SearchFilter, SearchMode, VectorIndex};
    let url = fresh_database().await;
    let old = VectorIndex {
        m: 16,
        ef_construction: 64,
    };
    let store = Store::connect(&database_config(url))
        .await
        .unwrap()
        .with_vector_index(old);
    store.migrate().await.unwrap();
    let manifest = lookalike::inference::ModelManifest::load_for(&model_config().path).unwrap();
    let model = store.models().register(&manifest).await.unwrap();
    assert_eq!(
        store.models().index_settings(model).await.unwrap(),
        Some(old)
    );
    let query: Vec<f32> = (0..1280)
        .map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5)
        .collect();
    seed_photo_rows(store.pool(), 400, "NULL").await;
    sqlx::query(
        "INSERT INTO embeddings (sha256, model_id, embedding)
         SELECT sha256(n::text::bytea), $1,
                (SELECT array_agg(x + 0.3 * (random() - 0.5)) FROM unnest($2::real[]) x)::vector
         FROM generate_series(1, 400) n",
    )
    .bind(model)
    .bind(&query)
    .execute(store.pool())
    .await
    .unwrap();

    // A start with the new settings keeps the index it finds (no build on the start path).
    let new = store.clone().with_vector_index(VectorIndex::DEFAULT);
    assert_eq!(new.models().register(&manifest).await.unwrap(), model);
    assert_eq!(new.models().index_settings(model).await.unwrap(), Some(old));

    // Searches go on through the rebuild, each with its 10 results.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let searching = tokio::spawn({
        let (store, query, stop) = (store.clone(), query.clone(), stop.clone());
        async move {
            let mut answers = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || answers == 0 {
                let hits = store
                    .photos()
                    .nearest(
                        &query,
                        model,
                        &SearchFilter::default(),
                        10,
                        SearchMode::Index { ef_search: 100 },
                    )
                    .await
                    .unwrap();
                assert_eq!(hits.len(), 10);
                answers += 1;
            }
            answers
        }
    });
    assert_eq!(new.models().align_index(model).await.unwrap(), Some(old));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(searching.await.unwrap() > 0);

    assert_eq!(
        new.models().index_settings(model).await.unwrap(),
        Some(VectorIndex::DEFAULT)
    );
    let indexes: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'embeddings'::regclass AND c.relname LIKE 'embeddings\\_hnsw%'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        indexes,
        vec![(format!("embeddings_hnsw_model_{model}"), true)]
    );
    // Nothing left to do: a second start does not rebuild it again.
    assert_eq!(new.models().align_index(model).await.unwrap(), None);
    // A stop between dropping the old index and naming the new one leaves the new one under its
    // working name: the next start names it instead of building another.
    sqlx::query(&format!(
        "ALTER INDEX embeddings_hnsw_model_{model} RENAME TO embeddings_hnsw_model_{model}_next"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(new.models().register(&manifest).await.unwrap(), model);
    assert_eq!(
        new.models().index_settings(model).await.unwrap(),
        Some(VectorIndex::DEFAULT)
    );
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'embeddings'::regclass AND c.relname LIKE 'embeddings\\_hnsw%'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(names, vec![format!("embeddings_hnsw_model_{model}")]);
    // Settings pgvector refuses are refused at start, with what is wrong.
    let refused = store
        .clone()
        .with_vector_index(VectorIndex {
            m: 32,
            ef_construction: 40,
        })
        .models()
        .register(&manifest)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("at least twice m"),
        "{refused}"
    );
}

//! Foundation: the real model embeds photos consistently, vectors survive pgvector, the service
//! answers health checks, and broken set-ups fail with clear errors.

use std::process::Command;

use crate::common::*;
use axum::http::StatusCode;
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::{Embedder, EmbedderError, ManifestError, cosine};
use lookalike::store::Store;
use pgvector::Vector;

fn embed_sample(name: &str) -> Vec<f32> {
    let e = embedder();
    let photo =
        imaging::prepare(&sample(name), &e.preprocessing(), &DecodeCaps::default()).unwrap();
    e.embed_batch(&[photo.tensor.view()]).unwrap().remove(0)
}

#[test]
fn the_same_photo_embeds_to_the_same_unit_vector() {
    let a = embed_sample("chelsea.png");
    let b = embed_sample("chelsea.png");
    assert_eq!(a.len(), 1280);
    let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(cosine(&a, &b) > 0.9999, "cosine {}", cosine(&a, &b));
}

#[test]
fn different_photos_are_clearly_less_similar_than_views_of_one_scene() {
    let cat = embed_sample("chelsea.png");
    let coffee = embed_sample("coffee.png");
    let left = embed_sample("motorcycle_left.png");
    let right = embed_sample("motorcycle_right.png");
    let different = cosine(&cat, &coffee);
    let same_scene = cosine(&left, &right);
    assert!(different < 0.4, "cat vs coffee cosine {different}");
    assert!(same_scene > 0.9, "stereo pair cosine {same_scene}");
}

#[test]
fn a_batch_gives_the_same_vectors_as_single_runs() {
    let e = embedder();
    let pre = e.preprocessing();
    let photos: Vec<_> = ["chelsea.png", "coffee.png", "rocket.jpg"]
        .iter()
        .map(|n| {
            imaging::prepare(&sample(n), &pre, &DecodeCaps::default())
                .unwrap()
                .tensor
        })
        .collect();
    let views: Vec<_> = photos.iter().map(|t| t.view()).collect();
    let batch = e.embed_batch(&views).unwrap();
    for (i, view) in views.iter().enumerate() {
        let single = e.embed_batch(std::slice::from_ref(view)).unwrap().remove(0);
        assert!(cosine(&batch[i], &single) > 0.9999);
    }
}

#[tokio::test]
async fn a_vector_survives_a_round_trip_through_pgvector() {
    let store = fresh_store().await;
    let cat = embed_sample("chelsea.png");
    let coffee = embed_sample("coffee.png");
    let pool = store.pool();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("CREATE TEMP TABLE t (id int, embedding vector(1280))")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (id, v) in [(1, &cat), (2, &coffee)] {
        sqlx::query("INSERT INTO t VALUES ($1, $2)")
            .bind(id)
            .bind(Vector::from(v.clone()))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let back: Vector = sqlx::query_scalar("SELECT embedding FROM t WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(back.as_slice(), cat.as_slice());
    // pgvector's cosine distance agrees with ours.
    let distance: f64 = sqlx::query_scalar(
        "SELECT a.embedding <=> b.embedding FROM t a, t b WHERE a.id = 1 AND b.id = 2",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(
        (distance - (1.0 - f64::from(cosine(&cat, &coffee)))).abs() < 1e-4,
        "distance {distance}"
    );
}

#[tokio::test]
async fn migrations_are_idempotent_and_install_pgvector() {
    let store = fresh_store().await;
    store.migrate().await.unwrap();
    let version: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(version.as_str() >= "0.8", "pgvector {version}");
    let id1 = store
        .models()
        .register(embedder().manifest())
        .await
        .unwrap();
    let id2 = store
        .models()
        .register(embedder().manifest())
        .await
        .unwrap();
    assert_eq!(id1, id2);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = app(default_gate_settings(), uploads()).await.router;
    let (status, _, body) = send(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"], "ok");
    let (status, _, body) = send(&app, get("/no/such/route")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn readiness_fails_with_the_reason_when_the_database_is_unreachable() {
    // A port where nothing listens: the pool cannot connect.
    let mut config = database_config("postgres://postgres@127.0.0.1:1/none?sslmode=disable".into());
    config.acquire_timeout_ms = 500;
    let store = Store::connect_lazy(&config).unwrap();
    let storage = lookalike::photo_store::PhotoStore::local(&temp_dir("storage")).unwrap();
    let parts = lookalike::service::Parts {
        store,
        gate: gate(default_gate_settings()),
        storage,
        model_id: 1,
    };
    let state = lookalike::service::app_state(
        parts,
        &imaging_config(),
        &uploads(),
        &lookalike::config::SearchConfig::default(),
        3,
    );
    let app = lookalike::http::router(state);
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "not_ready");
    assert!(
        body["message"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
}

#[test]
fn a_model_that_does_not_match_its_manifest_is_refused() {
    let dir = tempdir();
    let model = dir.join("m.onnx");
    let mut bytes = std::fs::read(model_config().path).unwrap();
    bytes[1000] ^= 0xFF;
    std::fs::write(&model, &bytes).unwrap();
    std::fs::copy(
        repo("models/efficientnet_lite0.manifest.json"),
        dir.join("m.manifest.json"),
    )
    .unwrap();
    let err = Embedder::load(&model_config().ort_library, &model, 1, 1).unwrap_err();
    assert!(
        matches!(err, EmbedderError::Manifest(ManifestError::Mismatch { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not match its manifest"),
        "{err}"
    );
}

#[test]
fn a_corrupt_model_file_with_a_matching_manifest_gives_a_load_error() {
    let dir = tempdir();
    let model = dir.join("m.onnx");
    let garbage = b"this is not an ONNX model".repeat(100);
    std::fs::write(&model, &garbage).unwrap();
    let manifest =
        std::fs::read_to_string(repo("models/efficientnet_lite0.manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    manifest["sha256"] = hex_sha256(&garbage).into();
    std::fs::write(dir.join("m.manifest.json"), manifest.to_string()).unwrap();
    let err = Embedder::load(&model_config().ort_library, &model, 1, 1).unwrap_err();
    assert!(matches!(err, EmbedderError::LoadModel { .. }), "{err}");
}

#[test]
fn a_missing_manifest_is_a_clear_error() {
    let dir = tempdir();
    let model = dir.join("m.onnx");
    std::fs::copy(model_config().path, &model).unwrap();
    let err = Embedder::load(&model_config().ort_library, &model, 1, 1).unwrap_err();
    assert!(
        err.to_string().contains("cannot read the model manifest"),
        "{err}"
    );
}

/// The runtime is loaded once per process, so a missing or wrong one is tested on the binary.
#[test]
fn a_missing_or_wrong_runtime_library_stops_the_binary_with_a_clear_message() {
    let photo = repo(".cache/samples/chelsea.png");
    let bin = env!("CARGO_BIN_EXE_lookalike");
    let missing = Command::new(bin)
        .args(["embed", "--ort-library", "/nonexistent/libonnxruntime.so"])
        .arg(&photo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not exist") && stderr.contains("setup-runtime.sh"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let wrong = Command::new(bin)
        .args(["embed", "--ort-library"])
        .arg(repo("Cargo.toml"))
        .arg(&photo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be used"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_embed_command_runs_the_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .current_dir(repo(""))
        .args([
            "embed",
            ".cache/samples/chelsea.png",
            ".cache/samples/rocket.jpg",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains("dim=1280 norm=1.0000"), "{stdout}");
}

fn tempdir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("lookalike-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A GPU that cannot be had stops the start with what is missing; nothing quietly runs on the
/// CPU instead. This machine's runtime is the CPU build: the first thing missing.
#[tokio::test]
async fn the_cuda_device_without_a_gpu_runtime_stops_the_start_naming_what_is_missing() {
    use lookalike::inference::{Device, DeviceSettings};
    let settings = DeviceSettings {
        device: Device::Cuda { id: 0 },
        ..DeviceSettings::default()
    };
    let err = Embedder::load_on(
        &model_config().ort_library,
        &model_config().path,
        1,
        1,
        &settings,
        0,
    )
    .unwrap_err();
    assert!(matches!(err, EmbedderError::Device(_)), "{err}");
    assert!(
        err.to_string().contains("was built without CUDA")
            && err.to_string().contains("scripts/setup-runtime.sh --gpu"),
        "{err}"
    );

    // The binary, as an operator starts it: exit status 1 and the same words, no panic.
    let out = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .current_dir(repo(""))
        .args(["serve", "--listen", "127.0.0.1:0", "--device", "cuda:1"])
        .env("DATABASE_URL", fresh_database().await)
        .env("LOOKALIKE_STORAGE_DIR", temp_dir("storage"))
        .env("LOOKALIKE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--device cuda:1 needs a GPU build of ONNX Runtime")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args(["serve", "--device", "tpu"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use cpu, cuda or cuda:N"));
}

/// A GPU pads batches to a few sizes: the padding's zero photos must change nothing of the real
/// photos' embeddings, and the runs are counted at the padded size.
#[test]
fn padding_a_batch_changes_no_embedding() {
    let plain = Embedder::load(&model_config().ort_library, &model_config().path, 1, 1).unwrap();
    let padded = Embedder::load(&model_config().ort_library, &model_config().path, 1, 1)
        .unwrap()
        .with_buckets(lookalike::inference::batch_buckets(8));
    let pre = plain.preprocessing();
    let tensors: Vec<_> = ["chelsea.png", "coffee.png", "astronaut.png"]
        .iter()
        .map(|n| {
            imaging::prepare(&sample(n), &pre, &DecodeCaps::default())
                .unwrap()
                .tensor
        })
        .collect();
    let views: Vec<_> = tensors.iter().map(|t| t.view()).collect();
    let expected = plain.embed_batch(&views).unwrap();
    let got = padded.embed_batch(&views).unwrap();
    assert_eq!(got.len(), 3);
    for (a, b) in expected.iter().zip(&got) {
        assert!(cosine(a, b) > 0.99999, "{}", cosine(a, b));
    }
    // Three photos ran as a batch of four (the load-time check ran one of one).
    assert_eq!(padded.runs_by_batch_size(), [(1, 1), (4, 1)]);
}

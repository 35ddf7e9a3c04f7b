//! Subject-aware embeddings (issue 22), with the real model and database: an animal in a corner
//! of one photo finds its report from another photo of it elsewhere, and a store whose vectors
//! come from the old, whole-photo model reindexes for the new one while it keeps answering.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use image::{RgbImage, imageops};
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::{Embedder, Gate, cosine};
use serde_json::Value;

use crate::common::*;

pub(crate) fn pixels(name: &str) -> RgbImage {
    image::load_from_memory(&sample(name)).unwrap().to_rgb8()
}

pub(crate) fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(img)
        .unwrap();
    out.into_inner()
}

#[derive(Clone, Copy)]
pub(crate) enum Corner {
    TopLeft,
    TopRight,
    BottomRight,
}

/// `subject` pasted on the photo `background`, its width `fraction` of the background's short
/// side, in `corner`, mirrored or not: one scene of the same subject.
pub(crate) fn scene(
    background: &str,
    subject: &RgbImage,
    fraction: f32,
    corner: Corner,
    mirror: bool,
) -> Vec<u8> {
    let mut bg = pixels(background);
    let (w, h) = bg.dimensions();
    let side = (fraction * w.min(h) as f32) as u32;
    let height = side * subject.height() / subject.width();
    let mut patch = imageops::resize(subject, side, height, imageops::FilterType::Triangle);
    if mirror {
        patch = imageops::flip_horizontal(&patch);
    }
    let (x, y) = match corner {
        Corner::TopLeft => (0, 0),
        Corner::TopRight => (w - side, 0),
        Corner::BottomRight => (w - side, h - height),
    };
    imageops::replace(&mut bg, &patch, i64::from(x), i64::from(y));
    jpeg(&bg)
}

/// The cat of scikit-image's chelsea.png, cut from its photo.
pub(crate) fn cat() -> RgbImage {
    imageops::crop_imm(&pixels("chelsea.png"), 120, 10, 210, 240).to_image()
}

fn motorcycle() -> RgbImage {
    imageops::crop_imm(&pixels("motorcycle_left.png"), 100, 50, 400, 300).to_image()
}

/// The found reports of the corner test: the cat in a corner of one photo, the others
/// distractors, three of them on the background the search photo will have.
fn gallery() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "cat@astronaut",
            scene("astronaut.png", &cat(), 0.3, Corner::BottomRight, false),
        ),
        (
            "motorcycle@coffee",
            scene("coffee.png", &motorcycle(), 0.3, Corner::BottomRight, false),
        ),
        ("coffee", sample("coffee.png")),
        (
            "rocket@coffee",
            scene(
                "coffee.png",
                &pixels("rocket.jpg"),
                0.35,
                Corner::TopRight,
                false,
            ),
        ),
        ("grass", sample("grass.png")),
        (
            "motorcycle@astronaut",
            scene("astronaut.png", &motorcycle(), 0.3, Corner::TopLeft, true),
        ),
    ]
}

/// The owner's photo: the same cat, larger, mirrored, in the other corner of another photo.
fn query() -> Vec<u8> {
    scene("coffee.png", &cat(), 0.45, Corner::TopLeft, true)
}

pub(crate) async fn search(app: &axum::Router, photo: &[u8]) -> Value {
    let form: Vec<Part> = vec![
        ("photo", "q.jpg", "image/jpeg", photo),
        ("k", "", "text/plain", b"3"),
        // No relevance floor: the test compares the subject's score with the unrelated ones.
        ("min_score", "", "text/plain", b"0"),
    ];
    let (status, _, body) = send(app, post_multipart("/v1/search", &form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub(crate) fn first_id(body: &Value) -> &str {
    body["results"][0]["report"]["id"].as_str().unwrap()
}

pub(crate) async fn embeddings_of(store: &lookalike::store::Store, model_id: i32) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM embeddings WHERE model_id = $1")
        .bind(model_id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animal_in_a_corner_finds_its_report_from_another_photo_of_it_elsewhere() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let gallery = gallery();
    let mut ids = Vec::new();
    for (_, photo) in &gallery {
        ids.push(create_report(&app.router, "found", "cat", photo).await);
    }
    eventually("every photo embedded", 120, || async {
        embeddings_of(&app.state.store, app.model_id).await >= gallery.len() as i64
    })
    .await;
    let body = search(&app.router, &query()).await;
    assert_eq!(first_id(&body), ids[0], "the cat's report first: {body}");
    let scores: Vec<f64> = (0..3)
        .map(|i| body["results"][i]["score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] > scores[1] + 0.2, "clearly first: {scores:?}");
    workers.stop(Duration::from_secs(5)).await;

    // The whole photo (the model's plain embedding) would have found the background instead:
    // what this test is about.
    let embedder = embedder();
    let whole = |bytes: &[u8]| {
        let photo =
            imaging::prepare(bytes, &embedder.preprocessing(), &DecodeCaps::default()).unwrap();
        embedder
            .embed_batch(&[photo.tensor.view()])
            .unwrap()
            .remove(0)
    };
    let q = whole(&query());
    let nearest = gallery
        .iter()
        .max_by(|a, b| cosine(&q, &whole(&a.1)).total_cmp(&cosine(&q, &whole(&b.1))))
        .unwrap();
    assert_ne!(
        nearest.0, "cat@astronaut",
        "the whole photo finds the background"
    );
}

/// The cat with its red and blue swapped: the same shape and pose, another coat colour.
fn recoloured_cat() -> RgbImage {
    let mut cat = cat();
    for p in cat.pixels_mut() {
        p.0.swap(0, 2);
    }
    cat
}

fn vector(body: &Value, i: usize) -> Vec<f32> {
    body["embeddings"][i]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test]
async fn the_subjects_colour_tells_the_same_cat_from_a_recoloured_one_in_one_run() {
    let app = app(default_gate_settings(), uploads()).await;
    let settings = app.state.pipeline.gate().model().manifest().subject;
    assert!(
        settings.is_some_and(|s| !s.crops()),
        "the shipped method embeds the subject in one run: {settings:?}"
    );
    let photos = [
        query(),
        scene("astronaut.png", &cat(), 0.3, Corner::BottomRight, false),
        scene(
            "astronaut.png",
            &recoloured_cat(),
            0.3,
            Corner::BottomRight,
            false,
        ),
    ];
    let runs = app.state.pipeline.gate().snapshot().images_total;
    let parts: Vec<Part> = photos
        .iter()
        .map(|p| ("photos", "p.jpg", "image/jpeg", p.as_slice()))
        .collect();
    let (status, _, body) = send(&app.router, post_multipart("/v1/embeddings", &parts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.state.pipeline.gate().snapshot().images_total,
        runs + 3,
        "one model run a photo"
    );
    let (query, same, recoloured) = (vector(&body, 0), vector(&body, 1), vector(&body, 2));
    let (same, recoloured) = (cosine(&query, &same), cosine(&query, &recoloured));
    assert!(
        same > recoloured + 0.05,
        "the same cat {same:.3}, the recoloured cat {recoloured:.3}"
    );
}

/// The shipped model under its old identity: the same graph (whose `embedding` output is the
/// old model's vector), named as the whole-photo model was, without the subject method.
fn old_model() -> PathBuf {
    let dir = temp_dir("old-model");
    let model = dir.join("old.onnx");
    std::os::unix::fs::symlink(repo("models/efficientnet_lite0.onnx"), &model).unwrap();
    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("models/efficientnet_lite0.manifest.json")).unwrap(),
    )
    .unwrap();
    let old = manifest["whole_photo_of"].clone();
    assert!(old.is_object(), "the manifest names the model it replaces");
    manifest["name"] = old["name"].clone();
    manifest["version"] = old["version"].clone();
    let fields = manifest.as_object_mut().unwrap();
    fields.remove("subject");
    fields.remove("whole_photo_of");
    std::fs::write(model.with_extension("manifest.json"), manifest.to_string()).unwrap();
    model
}

/// A test app over `store` and `gate`, its photos in `storage_dir`.
pub(crate) async fn app_with(
    store: lookalike::store::Store,
    gate: Gate,
    storage_dir: PathBuf,
) -> TestApp {
    let parts = parts_with(store, gate, &storage_dir).await;
    app_of(parts, storage_dir, &uploads())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_the_old_model_reindexes_while_it_keeps_answering() {
    let config = model_config();
    let old = Embedder::load(&config.ort_library, &old_model(), 1, 1).unwrap();
    assert!(old.manifest().subject.is_none());
    let old_gate = Gate::new(Arc::new(old), default_gate_settings());
    reindexes_while_it_keeps_answering(old_gate, gate(default_gate_settings())).await;
}

/// A store whose photos `old_gate`'s model embedded, started with `new_gate`'s (whose manifest
/// names the old one as `whole_photo_of`): the old vectors answer every search until the
/// reindex is done, then the new ones. Returns the app on the new model, reindexed.
pub(crate) async fn reindexes_while_it_keeps_answering(old_gate: Gate, new_gate: Gate) -> TestApp {
    let store = fresh_store().await;
    let storage_dir = temp_dir("storage");
    let mut before = app_with(store.clone(), old_gate, storage_dir.clone()).await;
    let workers = before.start_workers(job_settings(2));
    let names = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(create_report(&before.router, "found", "cat", &sample(name)).await);
    }
    eventually("the old model embeds every photo", 120, || async {
        embeddings_of(&store, before.model_id).await >= names.len() as i64
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;

    // The new model starts on that store: `lookalike reindex` queues its embeddings.
    let mut after = app_with(store.clone(), new_gate, storage_dir).await;
    assert_ne!(after.model_id, before.model_id);
    let queued = store
        .jobs()
        .enqueue_missing_embeddings(after.model_id, 3)
        .await
        .unwrap();
    assert_eq!(queued, names.len() as u64);
    let matcher = after.state.search.matcher().clone();
    let answering = matcher.answering().await;
    assert_eq!(
        (answering.model_id, answering.whole_photo),
        (before.model_id, true),
        "the old vectors answer while nothing is reindexed"
    );
    assert_eq!(embeddings_of(&store, after.model_id).await, 0);
    for (name, id) in names.iter().zip(&ids) {
        let body = search(&after.router, &edited_copy(&sample(name))).await;
        assert_eq!(first_id(&body), id, "{name} during the reindex: {body}");
    }

    let workers = after.start_workers(job_settings(2));
    eventually("the new model answers", 120, || async {
        let answering = matcher.answering().await;
        (answering.model_id, answering.whole_photo) == (after.model_id, false)
    })
    .await;
    assert_eq!(
        embeddings_of(&store, after.model_id).await,
        names.len() as i64
    );
    for (name, id) in names.iter().zip(&ids) {
        let body = search(&after.router, &edited_copy(&sample(name))).await;
        assert_eq!(first_id(&body), id, "{name} after the reindex: {body}");
    }
    workers.stop(Duration::from_secs(5)).await;
    after
}

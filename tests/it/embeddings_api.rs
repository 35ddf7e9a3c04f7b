//! `POST /v1/embeddings` end to end (router + real model + real database), including hostile input.

use std::io::Cursor;

use crate::common::*;
use axum::http::StatusCode;
use image::{DynamicImage, ImageFormat};
use lookalike::config::UploadConfig;
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::{GateSettings, cosine, crop, subject_box};
use serde_json::Value;

async fn post(
    app: &axum::Router,
    parts: &[(&str, &str, &str, &[u8])],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    send(app, post_multipart("/v1/embeddings", parts)).await
}

async fn default_app() -> axum::Router {
    app(default_gate_settings(), uploads()).await.router
}

fn embedding_of(body: &Value, i: usize) -> Vec<f32> {
    body["embeddings"][i]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// The photo's vector computed directly with the model, as the manifest's subject method says:
/// the whole photo's run, then (when its activation map has a box) the run on the box.
fn direct_embedding(bytes: &[u8]) -> Vec<f32> {
    direct(bytes).0
}

/// [`direct_embedding`], and how many model runs it took.
fn direct(bytes: &[u8]) -> (Vec<f32>, u64) {
    let e = embedder();
    let pre = e.preprocessing();
    let photo = imaging::decode(bytes, &DecodeCaps::default(), (pre.width, pre.height)).unwrap();
    let run = |pixels: &image::RgbImage| {
        let tensor = imaging::to_tensor(pixels, &pre).unwrap();
        e.infer_batch(&[tensor.view()]).unwrap().remove(0)
    };
    let first = run(&photo.pixels);
    let Some(settings) = e.manifest().subject else {
        return (first.embedding, 1);
    };
    if !settings.crops() {
        return (first.cam_embedding, 1);
    }
    let (w, h) = photo.pixels.dimensions();
    match subject_box(&first.cam, &settings, w, h) {
        Some(area) => (run(&crop(&photo.pixels, area)).cam_embedding, 2),
        None => (first.cam_embedding, 1),
    }
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn embeds_several_photos_like_the_model_does() {
    let app = default_app().await;
    let (cat, rocket) = (sample("chelsea.png"), sample("rocket.jpg"));
    let (status, _, body) = post(
        &app,
        &[
            ("photos", "cat.png", "image/png", &cat),
            ("photos", "rocket.jpg", "image/jpeg", &rocket),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dim"], 1280);
    assert_eq!(body["model"]["name"], "efficientnet-lite0");
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            body["embeddings"][0]["format"].as_str(),
            body["embeddings"][1]["format"].as_str()
        ),
        (Some("png"), Some("jpeg"))
    );
    assert_eq!(
        (
            body["embeddings"][0]["width"].as_u64(),
            body["embeddings"][0]["height"].as_u64()
        ),
        (Some(451), Some(300))
    );
    assert!(cosine(&embedding_of(&body, 0), &direct_embedding(&cat)) > 0.9999);
    assert!(cosine(&embedding_of(&body, 1), &direct_embedding(&rocket)) > 0.9999);
}

#[tokio::test]
async fn the_format_comes_from_the_bytes_not_the_declared_type() {
    let app = default_app().await;
    let png = sample("chelsea.png");
    let (status, _, body) = post(&app, &[("photos", "cat.jpg", "image/jpeg", &png)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["embeddings"][0]["format"], "png");
}

#[tokio::test]
async fn bad_photos_get_clear_errors() {
    let app = default_app().await;
    let jpeg = sample("rocket.jpg");
    let png = sample("chelsea.png");
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0\0\0\0\0".to_vec();
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "zero bytes",
            Vec::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "text",
            b"just some words, not a photo".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "heic",
            heic,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "truncated jpeg",
            jpeg[..jpeg.len() / 3].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "truncated png",
            png[..png.len() / 2].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "jpeg magic, garbage",
            [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[7u8; 500][..]].concat(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "20000x20000 png",
            png_claiming(20_000, 20_000),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_too_large",
        ),
    ];
    for (what, bytes, want_status, want_code) in cases {
        let (status, _, body) = post(&app, &[("photos", "x", "image/jpeg", &bytes)]).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (want_status, Some(want_code)),
            "{what}: {body}"
        );
        assert!(
            !body["message"].as_str().unwrap_or_default().is_empty(),
            "{what}"
        );
    }
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0\0\0\0\0".to_vec();
    let (_, _, body) = post(&app, &[("photos", "x.heic", "image/heic", &heic)]).await;
    assert!(body["message"].as_str().unwrap().contains("HEIC"), "{body}");
    assert_eq!(
        body["accepted"],
        serde_json::json!(["image/jpeg", "image/png", "image/webp"])
    );
}

#[tokio::test]
async fn exif_orientation_is_applied_on_both_decode_paths() {
    let app = default_app().await;
    let upright = image::load_from_memory(&sample("chelsea.png")).unwrap();
    // Small photos take the full decode; large ones the DCT-scaled one.
    for scale in [1u32, 4] {
        let upright = upright.resize_exact(
            upright.width() * scale,
            upright.height() * scale,
            image::imageops::FilterType::Triangle,
        );
        let reference = direct_embedding(&encode(&upright, ImageFormat::Jpeg));
        // Stored sideways, with the EXIF tag telling viewers to turn it 90° clockwise.
        let sideways = encode(&upright.rotate270(), ImageFormat::Jpeg);
        let tagged = with_exif_orientation(&sideways, 6);
        let (status, _, body) = post(&app, &[("photos", "x.jpg", "image/jpeg", &tagged)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let e = &body["embeddings"][0];
        assert_eq!(
            (e["width"].as_u64(), e["height"].as_u64()),
            (Some(451 * u64::from(scale)), Some(300 * u64::from(scale)))
        );
        let oriented = cosine(&embedding_of(&body, 0), &reference);
        let ignored = cosine(&direct_embedding(&sideways), &reference);
        assert!(
            oriented > 0.95 && oriented > ignored + 0.05,
            "scale {scale}: oriented {oriented}, sideways {ignored}"
        );
    }
}

#[tokio::test]
async fn size_and_count_limits() {
    let limits = UploadConfig {
        max_photo_bytes: 300_000,
        max_photos: 2,
        ..uploads()
    };
    let app = app(default_gate_settings(), limits).await.router;
    let big = sample("coffee.png"); // 467 kB
    let small = sample("rocket.jpg"); // 113 kB
    let (status, _, body) = post(&app, &[("photos", "big.png", "image/png", &big)]).await;
    assert_refused(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let three = [("photos", "a.jpg", "image/jpeg", &small[..]); 3];
    let (status, _, body) = post(&app, &three).await;
    assert_invalid(status, &body);
    let (status, _, body) = post(&app, &[]).await;
    assert_invalid(status, &body);
    let (status, _, body) = post(&app, &[("photo", "a.jpg", "image/jpeg", &small)]).await;
    assert_invalid(status, &body);
    assert!(body["message"].as_str().unwrap().contains("photos"));
    let not_multipart = axum::http::Request::post("/v1/embeddings")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let (status, _, body) = send(&app, not_multipart).await;
    assert_eq!(body["code"], "invalid_multipart", "{status} {body}");
    // A body far beyond every allowed photo is cut off.
    let huge = vec![0u8; 1_200_000];
    let (status, _, body) = post(&app, &[("photos", "a.jpg", "image/jpeg", &huge)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn an_overloaded_gate_answers_503_with_retry_after() {
    let mut settings = default_gate_settings();
    settings.max_waiters = [0, 0];
    let app = app(settings, uploads()).await.router;
    let (status, headers, body) = post(
        &app,
        &[("photos", "a.png", "image/png", &sample("chelsea.png"))],
    )
    .await;
    assert_refused(status, &body, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(body["reason"], "queue_full");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Shedding comes before reading and decoding: even an undecodable photo gets the 503.
    let (status, _, body) = post(&app, &[("photos", "empty.png", "image/png", &[])]).await;
    assert_refused(status, &body, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
}

#[tokio::test]
async fn status_reports_the_gate() {
    let TestApp {
        router: app, state, ..
    } = app(default_gate_settings(), uploads()).await;
    let (status, _, _) = post(
        &app,
        &[("photos", "a.png", "image/png", &sample("chelsea.png"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(&app, get("/v1/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["gate"]["permits"].as_u64(),
        Some(state.pipeline.gate().settings().permits as u64)
    );
    assert_eq!(body["gate"]["permits_in_use"], 0);
    assert_eq!(body["gate"]["runs_total"], 1);
    assert_eq!(body["model"]["dim"], 1280);
}

/// A real 1×1 PNG whose header is rewritten to claim `width`×`height` (a decompression bomb's
/// header: a decoder that trusted it would allocate width×height×3 bytes).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&DynamicImage::new_rgb8(1, 1), ImageFormat::Png);
    // Signature (8) + IHDR length (4) + "IHDR" (4): width and height follow, then the CRC at 29.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A photo embedded before (the same bytes, by sha256) needs no model run: `/v1/embeddings` and
/// `/v1/search` answer it from the store and say so, also while the gate refuses every place (a
/// degraded mode that keeps answering what it can); a new photo still gets the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_embedded_before_is_answered_from_the_store_also_with_the_gate_full() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(3, 128);
    let (known, new, other) = (&photos[0], &photos[1], &photos[2]);
    let (status, _, report) = send(
        &app.router,
        post_multipart("/v1/reports", &report_form("found", "dog", &photos[..1])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    let workers = app.start_workers(job_settings(1));
    let store = app.state.store.clone();
    eventually("the report embedded", 30, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM embeddings")
            .fetch_one(store.pool())
            .await
            .unwrap()
            == 1
    })
    .await;
    workers.stop(std::time::Duration::from_secs(5)).await;

    // One stored photo and one new: model runs for the new one only (its subject's included).
    let runs = app.state.pipeline.gate().snapshot().images_total;
    let (status, _, body) = post(
        &app.router,
        &[
            ("photos", "a.png", "image/png", known),
            ("photos", "b.png", "image/png", new),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["embeddings"][0]["source"], "store");
    assert_eq!(body["embeddings"][1]["source"], "model");
    assert_eq!(body["embeddings"][0]["format"], "png");
    assert_eq!(body["embeddings"][0]["width"], 128);
    assert_eq!(
        app.state.pipeline.gate().snapshot().images_total,
        runs + direct(new).1
    );
    assert!(cosine(&embedding_of(&body, 0), &direct_embedding(known)) > 0.9999);

    // The same database behind a gate that admits nobody.
    let full = GateSettings {
        max_waiters: [0, 0],
        ..default_gate_settings()
    };
    let saturated = app_on(app.state.store.clone(), full, uploads()).await;
    let (status, _, body) = post(
        &saturated.router,
        &[("photos", "a.png", "image/png", known)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["embeddings"][0]["source"], "store");
    let (status, headers, body) = post(
        &saturated.router,
        &[("photos", "c.png", "image/png", other)],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "overloaded");
    assert!(headers.contains_key("retry-after"));

    let search =
        |photo: &[u8]| post_multipart("/v1/search", &[("photo", "q.png", "image/png", photo)]);
    let (status, _, body) = send(&saturated.router, search(known)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["query_source"], "store");
    assert_eq!(body["results"][0]["report"]["id"], report["id"]);
    let (status, _, body) = send(&saturated.router, search(other)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // None of these ran the model.
    assert_eq!(saturated.state.pipeline.gate().snapshot().images_total, 0);
}

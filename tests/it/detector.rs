//! The animal detector (issue 22, src/inference/detector) on real photos: the model the set-up
//! builds (scripts/setup-detector.sh) boxes the dogs of Debian libdlib19.1's dogs.jpg (2 dogs
//! photographed twice each; `scripts/setup-eval.sh --dlib` extracts it) as their hand-drawn boxes
//! do; through the service, a dog in a corner of one scene finds its report from another shot of
//! it in another scene; and a store on the model without the detector reindexes for it while it
//! keeps answering.

use std::time::Duration;

use axum::http::StatusCode;
use image::RgbImage;
use lookalike::imaging;
use lookalike::inference::detector::{Detector, PixelBox, crop_area};

use crate::common::*;
use crate::subject::{Corner, app_with, first_id, scene, search};

/// dogs.jpg: a 900x916 collage, dog 1 top row, dog 2 bottom row (models/subject_eval_set.py).
const SPLIT_X: u32 = 462;
const SPLIT_Y: u32 = 450;

/// The four shots' hand-drawn boxes (x0, y0, x1, y1) in each shot's pixels, as in
/// benches/detector_eval.py's ANIMALS: coarse, on a 50 px grid.
const SHOTS: [(&str, (u32, u32), [f32; 4]); 4] = [
    ("dog1-a", (0, 0), [30.0, 0.0, 450.0, 450.0]),
    ("dog1-b", (1, 0), [50.0, 75.0, 438.0, 450.0]),
    ("dog2-a", (0, 1), [90.0, 50.0, 380.0, 450.0]),
    ("dog2-b", (1, 1), [0.0, 10.0, 390.0, 466.0]),
];

fn detector() -> Detector {
    let m = model_config();
    Detector::load(&m.ort_library, &repo("models/nanodet_224_int8.onnx"), 1, 1)
        .unwrap_or_else(|e| panic!("loading the detector (run scripts/setup-model.sh): {e}"))
}

fn dog_shots() -> Vec<(&'static str, RgbImage, PixelBox)> {
    let path = repo(".cache/eval/dlib/dogs.jpg");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/setup-eval.sh, which extracts it)",
            path.display()
        )
    });
    let collage = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let (w, h) = collage.dimensions();
    SHOTS
        .iter()
        .map(|&(name, (col, row), [x0, y0, x1, y1])| {
            let (left, right) = if col == 0 { (0, SPLIT_X) } else { (SPLIT_X, w) };
            let (top, bottom) = if row == 0 { (0, SPLIT_Y) } else { (SPLIT_Y, h) };
            let shot = image::imageops::crop_imm(&collage, left, top, right - left, bottom - top)
                .to_image();
            (name, shot, PixelBox { x0, y0, x1, y1 })
        })
        .collect()
}

#[test]
fn the_detector_boxes_each_real_dog_as_its_hand_box() {
    let detector = detector();
    let side = detector.manifest().side();
    for (name, shot, truth) in dog_shots() {
        let (w, h) = shot.dimensions();
        // The pipeline's resample of the decoded photo, stretched to the detector's square.
        let resampled =
            RgbImage::from_raw(side, side, imaging::resize(&shot, side, side).unwrap()).unwrap();
        let found = detector
            .detect(&resampled, w, h)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no animal box"));
        let iou = found.area.iou(&truth);
        eprintln!(
            "{name}: {} {:.3} {:?} IoU {iou:.3} with the hand box",
            found.class_name, found.score, found.area
        );
        assert!(
            ["dog", "cat"].contains(&found.class_name.as_str()),
            "{name}: class {} ({:.3})",
            found.class_name,
            found.score
        );
        assert!(
            iou >= 0.5,
            "{name}: IoU {iou:.3}, box {:?} vs hand {truth:?}",
            found.area
        );
        let a = found.area;
        assert!(a.x0 >= 0.0 && a.y0 >= 0.0 && a.x1 <= w as f32 && a.y1 <= h as f32);
        // The pixels the pipeline will embed (shrunk 10 %, squared): within the shot, centred
        // on the dog.
        let c = crop_area(&found.area, 0.1, w, h).unwrap();
        assert!(
            c.x + c.width <= w && c.y + c.height <= h,
            "{name}: crop {c:?}"
        );
        let (cx, cy) = (
            c.x as f32 + c.width as f32 / 2.0,
            c.y as f32 + c.height as f32 / 2.0,
        );
        assert!(
            (truth.x0..truth.x1).contains(&cx) && (truth.y0..truth.y1).contains(&cy),
            "{name}: crop {c:?} not centred on the dog {truth:?}"
        );
    }
}

#[test]
fn the_detector_refuses_pixels_of_another_size() {
    let detector = detector();
    let err = detector
        .detect(&RgbImage::new(100, 224), 100, 224)
        .unwrap_err();
    assert!(err.to_string().contains("expected 224x224"), "{err}");
}

/// The shot `name` of [`SHOTS`], cut from the collage.
fn shot(name: &str) -> RgbImage {
    dog_shots()
        .into_iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, shot, _)| shot)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dog_in_a_corner_finds_its_report_from_another_shot_of_it_elsewhere() {
    let storage_dir = temp_dir("storage");
    let mut app = app_with(
        fresh_store().await,
        detector_gate(default_gate_settings()),
        storage_dir,
    )
    .await;
    let workers = app.start_workers(job_settings(2));
    // The found dog in a corner of one photo; the other dog, and other subjects, on the photo
    // the owner's shot will have.
    let gallery = [
        scene(
            "astronaut.png",
            &shot("dog1-a"),
            0.5,
            Corner::BottomRight,
            false,
        ),
        scene("coffee.png", &shot("dog2-a"), 0.5, Corner::TopRight, false),
        scene(
            "coffee.png",
            &crate::subject::cat(),
            0.45,
            Corner::BottomRight,
            false,
        ),
        sample("coffee.png"),
        sample("astronaut.png"),
    ];
    let mut ids = Vec::new();
    for photo in &gallery {
        ids.push(create_report(&app.router, "found", "dog", photo).await);
    }
    eventually("every photo embedded", 120, || async {
        crate::subject::embeddings_of(&app.state.store, app.model_id).await >= gallery.len() as i64
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;
    // The owner's other shot of the dog, mirrored, in the other corner of the other photo.
    let query = scene("coffee.png", &shot("dog1-b"), 0.5, Corner::TopLeft, true);
    let body = search(&app.router, &query).await;
    assert_eq!(first_id(&body), ids[0], "the dog's report first: {body}");
    assert_eq!(
        body["query_labels"]["predicted_species"], "dog",
        "the species read from the dog's crop: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_the_detector_reindexes_for_it_while_it_keeps_answering() {
    let app = crate::subject::reindexes_while_it_keeps_answering(
        gate(default_gate_settings()),
        detector_gate(default_gate_settings()),
    )
    .await;
    let manifest = app.state.pipeline.gate().model().manifest().clone();
    assert!(
        manifest
            .version
            .contains("+detector-crop-r2-s10-50+nanodet-224-int8-"),
        "{}",
        manifest.version
    );
    // Reindexed: a photo whose dog is boxed costs the detector and one model run, no more.
    let gate = app.state.pipeline.gate();
    let before = gate.snapshot();
    let photo = scene(
        "astronaut.png",
        &shot("dog2-b"),
        0.5,
        Corner::TopLeft,
        false,
    );
    let form: Vec<Part> = vec![("photos", "d.jpg", "image/jpeg", &photo)];
    let (status, _, body) = send(&app.router, post_multipart("/v1/embeddings", &form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = gate.snapshot();
    assert_eq!(
        (
            after.detections_total - before.detections_total,
            after.images_total - before.images_total
        ),
        (1, 1),
        "one detection, one model run"
    );
}

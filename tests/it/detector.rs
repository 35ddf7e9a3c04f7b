//! The animal detector (issue 22, src/inference/detector.rs) on real photos: the model the set-up
//! builds (scripts/setup-detector.sh) boxes the dogs of Debian libdlib19.1's dogs.jpg (2 dogs
//! photographed twice each; scripts/setup-eval.sh extracts it) as their hand-drawn boxes do.

use image::RgbImage;
use lookalike::imaging;
use lookalike::inference::detector::{Detector, PixelBox, crop_area};

use crate::common::*;

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
    Detector::load(&m.ort_library, &repo("models/nanodet_224_int8.onnx"))
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

//! The detector's pure parts: its input from resampled pixels, the decode of its outputs to the
//! best animal box, and the crop that box gives (as benches/detector_eval.py measured them).

use image::RgbImage;
use ndarray::Array3;

use super::{DetectorError, DetectorInput, DetectorManifest};
use crate::inference::SubjectBox;

/// A box in a photo's pixel coordinates (`x0 ≤ x1`, `y0 ≤ y1`, within the photo).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelBox {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl PixelBox {
    /// Intersection over union with `other` (0 when either is empty).
    pub fn iou(&self, other: &PixelBox) -> f32 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let area = |b: &PixelBox| (b.x1 - b.x0) * (b.y1 - b.y0);
        let union = area(self) + area(other) - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// The detector's best box of an animal class in one photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index of the class in the manifest's `classes`.
    pub class: usize,
    /// The class name (COCO), e.g. `dog`.
    pub class_name: String,
    /// The class score (sigmoid, 0..1); the box is returned at any score.
    pub score: f32,
    /// The box, in the photo's pixel coordinates.
    pub area: PixelBox,
}

/// The model input `[3, S, S]` from pixels already resampled to the detector's S × S
/// (the pipeline's resample of the decoded photo, stretched): BGR, `(v - mean) / std`.
pub fn input_tensor(
    resampled: &RgbImage,
    input: &DetectorInput,
) -> Result<Array3<f32>, DetectorError> {
    let (w, h) = resampled.dimensions();
    if (w, h) != (input.width, input.height) {
        return Err(DetectorError::InputSize {
            got_width: w,
            got_height: h,
            width: input.width,
            height: input.height,
        });
    }
    let (w, h) = (w as usize, h as usize);
    let plane = w * h;
    // One lookup table per BGR channel: 256 values each.
    let tables: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 - input.mean[c]) / input.std[c]));
    let mut data = vec![0f32; plane * 3];
    for (i, px) in resampled.as_raw().chunks_exact(3).enumerate() {
        // Channel 0 is blue: the RGB pixel's last byte.
        for c in 0..3 {
            data[c * plane + i] = tables[c][usize::from(px[2 - c])];
        }
    }
    Array3::from_shape_vec((3, h, w), data).map_err(|e| DetectorError::Run(e.to_string()))
}

/// One head's outputs: `scores` `[cells × classes]` and `boxes` `[cells × 4 × bins]`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct HeadOutput<'a> {
    /// The head's stride in input pixels.
    pub stride: u32,
    /// Class scores (already sigmoid), `cells × classes`.
    pub scores: &'a [f32],
    /// GFL distributions, `cells × 4 × bins` (left, top, right, bottom).
    pub boxes: &'a [f32],
}

/// The best box of an animal class over every cell of every head (the highest score of any
/// animal class; ties: the first head, cell and class), at any score, in a `width` × `height`
/// photo's pixels. `None` when the outputs hold no cell or no finite animal score, or their
/// sizes do not fit `side` (the square input's side), the classes and the bins.
pub fn best_animal(
    heads: &[HeadOutput<'_>],
    manifest: &DetectorManifest,
    width: u32,
    height: u32,
) -> Option<Detection> {
    let side = manifest.side();
    let classes = manifest.classes.len();
    let bins = manifest.decode.bins;
    let mut best: Option<(f32, usize, usize, usize)> = None; // score, head, cell, class
    for (h, head) in heads.iter().enumerate() {
        let grid = (side / head.stride.max(1)) as usize;
        let cells = grid * grid;
        if head.stride == 0
            || head.scores.len() != cells * classes
            || head.boxes.len() != cells * 4 * bins
        {
            return None;
        }
        for (cell, row) in head.scores.chunks_exact(classes).enumerate() {
            for &class in &manifest.animal_classes {
                let score = row[class];
                if score.is_finite() && best.is_none_or(|(b, ..)| score > b) {
                    best = Some((score, h, cell, class));
                }
            }
        }
    }
    let (score, h, cell, class) = best?;
    let head = heads[h];
    let grid = side / head.stride;
    let stride = head.stride as f32;
    let d = &head.boxes[cell * 4 * bins..(cell + 1) * 4 * bins];
    let dist: Vec<f32> = d
        .chunks_exact(bins)
        .map(|side| expectation(side) * stride)
        .collect();
    let (cx, cy) = (
        ((cell as u32 % grid) as f32 + 0.5) * stride,
        ((cell as u32 / grid) as f32 + 0.5) * stride,
    );
    let s = side as f32;
    let frac = |v: f32| (v / s).clamp(0.0, 1.0);
    let (w, hgt) = (width as f32, height as f32);
    Some(Detection {
        class,
        class_name: manifest.classes[class].clone(),
        score,
        area: PixelBox {
            x0: frac(cx - dist[0]) * w,
            y0: frac(cy - dist[1]) * hgt,
            x1: frac(cx + dist[2]) * w,
            y1: frac(cy + dist[3]) * hgt,
        },
    })
}

/// The expected bin index under the softmax of `logits` (GFL's distance, in strides); a
/// distribution that is not finite gives 0 (a box of no extent on that side).
fn expectation(logits: &[f32]) -> f32 {
    let peak = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !peak.is_finite() {
        return 0.0;
    }
    let (mut total, mut weighted) = (0f32, 0f32);
    for (i, &v) in logits.iter().enumerate() {
        let p = (v - peak).exp();
        total += p;
        weighted += p * i as f32;
    }
    if total > 0.0 && weighted.is_finite() {
        weighted / total
    } else {
        0.0
    }
}

/// The pixels embedded for a detection, as benches/detector_eval.py's `shrunk_crop` measured
/// it (recall@1 0.725 on its real animals at 224 INT8): the box shrunk by `shrink` of its size
/// on each side, grown to a square on its longer side (no stretching when it is resized to the
/// model's square input), no larger than the photo's short side, shifted to lie within the
/// `width` × `height` photo. `None` for an empty photo or a box that is not finite.
pub fn crop_area(area: &PixelBox, shrink: f32, width: u32, height: u32) -> Option<SubjectBox> {
    let coords = [area.x0, area.y0, area.x1, area.y1, shrink];
    if width == 0 || height == 0 || coords.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (bw, bh) = ((area.x1 - area.x0).max(0.0), (area.y1 - area.y0).max(0.0));
    let (x0, x1) = (area.x0 + shrink * bw, area.x1 - shrink * bw);
    let (y0, y1) = (area.y0 + shrink * bh, area.y1 - shrink * bh);
    let (w, h) = (width as f32, height as f32);
    let side = (x1 - x0).max(y1 - y0).max(0.0).min(w.min(h));
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let left = (cx - side / 2.0).clamp(0.0, w - side);
    let top = (cy - side / 2.0).clamp(0.0, h - side);
    let x = (left as u32).min(width - 1);
    let y = (top as u32).min(height - 1);
    let right = ((left + side).round() as u32).clamp(x + 1, width);
    let bottom = ((top + side).round() as u32).clamp(y + 1, height);
    Some(SubjectBox {
        x,
        y,
        width: right - x,
        height: bottom - y,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::detector::tests::manifest;

    /// Logits whose softmax puts (almost) all mass on bin `k`.
    fn peak_at(k: usize) -> Vec<f32> {
        (0..11).map(|i| if i == k { 50.0 } else { 0.0 }).collect()
    }

    #[test]
    fn the_input_is_bgr_normalised_nchw() {
        let m = manifest();
        let mut img = RgbImage::new(64, 64);
        img.put_pixel(3, 2, image::Rgb([255, 0, 10]));
        let x = input_tensor(&img, &m.input).unwrap();
        assert_eq!(x.dim(), (3, 64, 64));
        // Blue plane first: pixel (3, 2)'s blue is 10.
        assert!((x[[0, 2, 3]] - (10.0 - 103.53) / 57.375).abs() < 1e-5);
        assert!((x[[1, 2, 3]] - (0.0 - 116.28) / 57.12).abs() < 1e-5);
        assert!((x[[2, 2, 3]] - (255.0 - 123.675) / 58.395).abs() < 1e-5);
        assert!((x[[2, 0, 0]] - (0.0 - 123.675) / 58.395).abs() < 1e-5);
        let wrong = RgbImage::new(64, 63);
        assert!(matches!(
            input_tensor(&wrong, &m.input),
            Err(DetectorError::InputSize { .. })
        ));
    }

    #[test]
    fn gfl_expectation_is_the_softmax_mean_of_the_bins() {
        assert!((expectation(&peak_at(3)) - 3.0).abs() < 1e-4);
        assert!(
            (expectation(&[0.0; 11]) - 5.0).abs() < 1e-5,
            "uniform: the middle bin"
        );
        assert!((expectation(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
        assert_eq!(expectation(&[f32::NAN; 11]), 0.0);
        assert_eq!(expectation(&[f32::NEG_INFINITY; 11]), 0.0);
    }

    #[test]
    fn the_best_animal_box_is_decoded_into_the_photos_pixels() {
        let m = manifest();
        // Head 16: 4x4 cells; head 32: 2x2 cells.
        let mut s16 = vec![0.0; 16 * 3];
        let mut b16 = vec![0.0; 16 * 44];
        let mut s32 = vec![0.0; 4 * 3];
        let mut b32 = vec![0.0; 4 * 44];
        s16[5 * 3] = 0.99; // a person, cell (1, 1): never chosen
        s16[6 * 3 + 1] = 0.4; // a cat at cell row 1, col 2
        s32[3 * 3 + 2] = 0.6; // a dog at the stride-32 cell row 1, col 1: the best animal
        // The dog cell's sides: left 1, top 2, right 0, bottom 1 strides (of 32 px).
        let sides = [peak_at(1), peak_at(2), peak_at(0), peak_at(1)].concat();
        b32[3 * 44..4 * 44].copy_from_slice(&sides);
        b16[6 * 44..7 * 44]
            .copy_from_slice(&[peak_at(1), peak_at(1), peak_at(1), peak_at(1)].concat());
        let heads = [
            HeadOutput {
                stride: 16,
                scores: &s16,
                boxes: &b16,
            },
            HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &b32,
            },
        ];
        // A 640x320 photo: x scales by 10, y by 5.
        let d = best_animal(&heads, &m, 640, 320).expect("a box");
        assert_eq!((d.class, d.class_name.as_str()), (2, "dog"));
        assert!((d.score - 0.6).abs() < 1e-6);
        // Centre (48, 48); box (16, -16 -> 0, 48, 80 -> 64) of the 64 px input.
        let want = PixelBox {
            x0: 160.0,
            y0: 0.0,
            x1: 480.0,
            y1: 320.0,
        };
        assert!(d.area.iou(&want) > 0.999, "{:?}", d.area);

        // Without the dog, the cat of the stride-16 head: centre (40, 24), 16 px each side.
        s32[3 * 3 + 2] = 0.0;
        let heads = [
            HeadOutput {
                stride: 16,
                scores: &s16,
                boxes: &b16,
            },
            HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &b32,
            },
        ];
        let d = best_animal(&heads, &m, 64, 64).expect("a box");
        assert_eq!(d.class_name, "cat");
        let want = PixelBox {
            x0: 24.0,
            y0: 8.0,
            x1: 56.0,
            y1: 40.0,
        };
        assert!(d.area.iou(&want) > 0.999, "{:?}", d.area);
    }

    #[test]
    fn malformed_or_empty_outputs_give_no_box() {
        let m = manifest();
        let (s16, b16) = (vec![0.1; 16 * 3], vec![0.0; 16 * 44]);
        let (s32, b32) = (vec![0.1; 4 * 3], vec![0.0; 4 * 44]);
        let ok = [
            HeadOutput {
                stride: 16,
                scores: &s16,
                boxes: &b16,
            },
            HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &b32,
            },
        ];
        assert!(best_animal(&ok, &m, 10, 10).is_some(), "a box at any score");
        let short = [HeadOutput {
            stride: 16,
            scores: &s16[1..],
            boxes: &b16,
        }];
        assert_eq!(best_animal(&short, &m, 10, 10), None);
        let zero = [HeadOutput {
            stride: 0,
            scores: &s16,
            boxes: &b16,
        }];
        assert_eq!(best_animal(&zero, &m, 10, 10), None);
        let nan = vec![f32::NAN; 4 * 3];
        assert_eq!(
            best_animal(
                &[HeadOutput {
                    stride: 32,
                    scores: &nan,
                    boxes: &b32
                }],
                &m,
                10,
                10
            ),
            None
        );
        assert_eq!(best_animal(&[], &m, 10, 10), None);
        // Boxes stay within the photo, even with huge distances (NaN distributions: 0 extent).
        let nan_boxes = vec![f32::NAN; 4 * 44];
        let d = best_animal(
            &[HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &nan_boxes,
            }],
            &m,
            7,
            9,
        )
        .expect("a box");
        assert!(d.area.x0 >= 0.0 && d.area.x1 <= 7.0 && d.area.y0 >= 0.0 && d.area.y1 <= 9.0);
    }

    #[test]
    fn the_crop_is_the_box_shrunk_then_squared_within_the_photo() {
        let b = |x0, y0, x1, y1| PixelBox { x0, y0, x1, y1 };
        // 100x50 box shrunk 10 % a side: 80x40 at (110, 105), centre (150, 125): an 80 px square.
        let c = crop_area(&b(100.0, 100.0, 200.0, 150.0), 0.1, 400, 300).unwrap();
        assert_eq!((c.x, c.y, c.width, c.height), (110, 85, 80, 80));
        // At the bottom-right corner: shifted inside.
        let c = crop_area(&b(350.0, 280.0, 400.0, 300.0), 0.0, 400, 300).unwrap();
        assert_eq!((c.x, c.y, c.width, c.height), (350, 250, 50, 50));
        // Wider than the photo is tall: the photo's short side.
        let c = crop_area(&b(0.0, 0.0, 400.0, 300.0), 0.0, 400, 100).unwrap();
        assert_eq!((c.width, c.height), (100, 100));
        // A zero-extent box still gives one pixel; nothing for an empty photo or NaN.
        let c = crop_area(&b(5.0, 5.0, 5.0, 5.0), 0.1, 10, 10).unwrap();
        assert!(c.width >= 1 && c.height >= 1 && c.x + c.width <= 10 && c.y + c.height <= 10);
        assert_eq!(crop_area(&b(0.0, 0.0, 1.0, 1.0), 0.1, 0, 10), None);
        assert_eq!(crop_area(&b(f32::NAN, 0.0, 1.0, 1.0), 0.1, 10, 10), None);
    }

    #[test]
    fn crops_stay_within_tiny_and_thin_photos() {
        for (w, h) in [(1, 1), (3, 2), (1000, 1), (1, 1000)] {
            for area in [
                PixelBox {
                    x0: 0.0,
                    y0: 0.0,
                    x1: w as f32,
                    y1: h as f32,
                },
                PixelBox {
                    x0: -50.0,
                    y0: -50.0,
                    x1: 5000.0,
                    y1: 5000.0,
                },
                PixelBox {
                    x0: w as f32,
                    y0: h as f32,
                    x1: w as f32,
                    y1: h as f32,
                },
            ] {
                let c = crop_area(&area, 0.1, w, h).expect("a crop");
                assert!(c.width >= 1 && c.height >= 1);
                assert!(
                    c.x + c.width <= w && c.y + c.height <= h,
                    "{c:?} in {w}x{h}"
                );
            }
        }
    }
}

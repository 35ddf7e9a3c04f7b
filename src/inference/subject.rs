//! Where a photo's subject is: the box of the class activation map, as
//! `benches/subject_eval.py` measured it (the chosen method; parameters from the manifest).
//! Pure functions: the pipeline crops the decoded pixels with the box and runs the model again.

use image::RgbImage;

use super::manifest::SubjectSettings;

/// A box in the pixels of a decoded photo (within them, never empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectBox {
    /// Left edge, in pixels.
    pub x: u32,
    /// Top edge, in pixels.
    pub y: u32,
    /// Width, in pixels (at least 1).
    pub width: u32,
    /// Height, in pixels (at least 1).
    pub height: u32,
}

/// The subject's box in a `width` × `height` photo from its class activation map `cam` (a
/// square grid, row-major): the cells at or above `threshold` × the map's maximum, grown by
/// `margin` of the box's size on each side, made square (no stretching when the crop is
/// resized to the model's square input) and kept within the photo. `None` when there is no
/// subject to crop to: a flat or malformed map, or a box (with its margin, before squaring)
/// covering more than `max_area` of the photo (the whole photo is the subject).
pub fn subject_box(
    cam: &[f32],
    settings: &SubjectSettings,
    width: u32,
    height: u32,
) -> Option<SubjectBox> {
    let grid = (cam.len() as f64).sqrt() as usize;
    if grid == 0 || grid * grid != cam.len() || width == 0 || height == 0 {
        return None;
    }
    let peak = cam.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !peak.is_finite() || peak <= 0.0 {
        return None;
    }
    let cut = settings.threshold * peak;
    let (mut x0, mut y0, mut x1, mut y1) = (grid, grid, 0, 0);
    for (i, &v) in cam.iter().enumerate() {
        if v >= cut {
            let (row, col) = (i / grid, i % grid);
            (x0, y0) = (x0.min(col), y0.min(row));
            (x1, y1) = (x1.max(col + 1), y1.max(row + 1));
        }
    }
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let g = grid as f64;
    let (fx0, fy0, fx1, fy1) = (x0 as f64 / g, y0 as f64 / g, x1 as f64 / g, y1 as f64 / g);
    let (m, bw, bh) = (f64::from(settings.margin), fx1 - fx0, fy1 - fy0);
    let (fx0, fx1) = ((fx0 - m * bw).max(0.0), (fx1 + m * bw).min(1.0));
    let (fy0, fy1) = ((fy0 - m * bh).max(0.0), (fy1 + m * bh).min(1.0));
    if (fx1 - fx0) * (fy1 - fy0) > f64::from(settings.max_area) {
        return None;
    }
    // Square in pixels, centred on the box, no larger than the photo's short side, shifted
    // to lie within the photo.
    let (w, h) = (f64::from(width), f64::from(height));
    let side = ((fx1 - fx0) * w).max((fy1 - fy0) * h).min(w.min(h));
    let (cx, cy) = ((fx0 + fx1) / 2.0 * w, (fy0 + fy1) / 2.0 * h);
    let left = (cx - side / 2.0).clamp(0.0, w - side);
    let top = (cy - side / 2.0).clamp(0.0, h - side);
    let x = (left as u32).min(width - 1);
    let y = (top as u32).min(height - 1);
    let side = (side.round() as u32).max(1);
    Some(SubjectBox {
        x,
        y,
        width: side.min(width - x),
        height: side.min(height - y),
    })
}

/// The pixels inside `area` (which [`subject_box`] keeps within the photo).
pub fn crop(pixels: &RgbImage, area: SubjectBox) -> RgbImage {
    image::imageops::crop_imm(pixels, area.x, area.y, area.width, area.height).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::SubjectMethod;

    const SETTINGS: SubjectSettings = SubjectSettings {
        method: SubjectMethod::CamCrop,
        threshold: 0.35,
        margin: 0.15,
        max_area: 0.8,
        full_score: None,
    };

    fn map(hot: &[(usize, usize, f32)]) -> Vec<f32> {
        let mut cam = vec![0.05; 49];
        for &(row, col, v) in hot {
            cam[row * 7 + col] = v;
        }
        cam
    }

    #[test]
    fn a_hot_corner_gives_a_square_box_in_that_corner() {
        // The bottom-right 2x2 cells of a 700x490 photo.
        let cam = map(&[(5, 5, 1.0), (5, 6, 0.8), (6, 5, 0.5), (6, 6, 0.4)]);
        let b = subject_box(&cam, &SETTINGS, 700, 490).expect("a box");
        assert_eq!(b.width, b.height, "square");
        assert!(
            b.x + b.width <= 700 && b.y + b.height <= 490,
            "{b:?} within the photo"
        );
        // Two cells of 100x70 px plus 15% each side: 230 px wide, squared to 230.
        assert_eq!(b.width, 230);
        assert!(b.x >= 450 && b.y >= 250, "{b:?} in the bottom-right corner");
    }

    #[test]
    fn a_map_covering_the_photo_or_flat_or_malformed_gives_no_box() {
        assert_eq!(subject_box(&[1.0; 49], &SETTINGS, 640, 480), None);
        assert_eq!(subject_box(&[0.0; 49], &SETTINGS, 640, 480), None);
        assert_eq!(subject_box(&[f32::NAN; 49], &SETTINGS, 640, 480), None);
        assert_eq!(subject_box(&[1.0; 48], &SETTINGS, 640, 480), None);
        assert_eq!(subject_box(&[], &SETTINGS, 640, 480), None);
        assert_eq!(subject_box(&map(&[(3, 3, 1.0)]), &SETTINGS, 0, 480), None);
    }

    #[test]
    fn boxes_stay_within_tiny_and_thin_photos() {
        for (w, h) in [(1, 1), (3, 2), (1000, 1), (1, 1000), (7, 7)] {
            for cell in [0, 24, 48] {
                let cam = map(&[(cell / 7, cell % 7, 1.0)]);
                if let Some(b) = subject_box(&cam, &SETTINGS, w, h) {
                    assert!(b.width >= 1 && b.height >= 1);
                    assert!(
                        b.x + b.width <= w && b.y + b.height <= h,
                        "{b:?} in {w}x{h}"
                    );
                    let pixels = RgbImage::new(w, h);
                    assert_eq!(crop(&pixels, b).dimensions(), (b.width, b.height));
                }
            }
        }
    }
}

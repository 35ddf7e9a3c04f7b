//! JPEG decoding through libjpeg-turbo: strict on truncated and corrupt files, EXIF orientation
//! applied, limits held, and the same pixels as the decoder before it (jpeg-decoder), so the model
//! sees the same input.

use image::{DynamicImage, RgbImage};
use lookalike::imaging::{self, DecodeCaps, DecodedPhoto, ImagingError};

use crate::common::{sample, with_exif_orientation};

/// The model's input side: photos at least twice this are decoded at a reduced DCT scale.
const MODEL_SIDE: u32 = 224;

fn photo(width: u32, height: u32) -> RgbImage {
    image::load_from_memory(&sample("chelsea.png"))
        .unwrap()
        .resize_exact(width, height, image::imageops::FilterType::Triangle)
        .to_rgb8()
}

/// A JPEG as cameras write them (4:2:0), or progressive, or greyscale.
fn encode(pixels: &RgbImage, subsamp: turbojpeg::Subsamp, progressive: bool) -> Vec<u8> {
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(90).unwrap();
    compressor.set_subsamp(subsamp).unwrap();
    compressor.set_progressive(progressive).unwrap();
    compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: pixels.as_raw().as_slice(),
            width: pixels.width() as usize,
            pitch: pixels.width() as usize * 3,
            height: pixels.height() as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap()
}

/// Decodes for the model's input, with or without DCT scaling, under the default limits.
fn decode_for_model(jpeg: &[u8], dct_scaling: bool) -> Result<DecodedPhoto, ImagingError> {
    let caps = DecodeCaps {
        jpeg_dct_scaling: dct_scaling,
        ..DecodeCaps::default()
    };
    imaging::decode(jpeg, &caps, (MODEL_SIDE, MODEL_SIDE))
}

fn mean_abs_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[test]
fn truncated_jpegs_are_refused_never_padded() {
    let pixels = photo(1200, 900);
    for (kind, jpeg) in [
        (
            "baseline 4:2:0",
            encode(&pixels, turbojpeg::Subsamp::Sub2x2, false),
        ),
        (
            "baseline 4:4:4",
            encode(&pixels, turbojpeg::Subsamp::None, false),
        ),
        (
            "progressive",
            encode(&pixels, turbojpeg::Subsamp::Sub2x2, true),
        ),
    ] {
        assert!(decode_for_model(&jpeg, true).is_ok());
        for fraction in [0.3, 0.6, 0.9, 0.99] {
            let cut = &jpeg[..(jpeg.len() as f64 * fraction) as usize];
            for dct_scaling in [true, false] {
                let err = decode_for_model(cut, dct_scaling)
                    .expect_err("a truncated JPEG must not decode");
                let ImagingError::Decode(message) = &err else {
                    panic!("{kind} cut at {fraction}: {err:?}");
                };
                assert!(
                    message.contains("Premature end of JPEG file"),
                    "{kind} cut at {fraction}, scaling {dct_scaling}: {message}"
                );
            }
        }
    }
}

#[test]
fn corrupt_entropy_data_is_refused() {
    let jpeg = encode(&photo(1200, 900), turbojpeg::Subsamp::Sub2x2, false);
    // A restart marker where none belongs, in the middle of the entropy-coded data.
    let mut corrupt = jpeg.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 2].copy_from_slice(&[0xFF, 0xD3]);
    for dct_scaling in [true, false] {
        let err =
            decode_for_model(&corrupt, dct_scaling).expect_err("corrupt data must not decode");
        let ImagingError::Decode(message) = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains("Corrupt JPEG data"), "{message}");
    }
}

#[test]
fn exif_orientation_is_applied_at_every_scale() {
    // Landscape upright; stored transformed, with the tag that undoes it (EXIF 1..=8).
    let upright = DynamicImage::ImageRgb8(photo(1200, 800));
    let stored = [
        (1, upright.clone()),
        (2, upright.fliph()),
        (3, upright.rotate180()),
        (4, upright.flipv()),
        (5, upright.rotate90().fliph()),
        (6, upright.rotate270()),
        (7, upright.rotate270().fliph()),
        (8, upright.rotate90()),
    ];
    let reference = |dct_scaling| {
        let jpeg = encode(&upright.to_rgb8(), turbojpeg::Subsamp::None, false);
        decode_for_model(&jpeg, dct_scaling).unwrap().pixels
    };
    for dct_scaling in [true, false] {
        let expected = reference(dct_scaling);
        for (tag, pixels) in &stored {
            let jpeg = with_exif_orientation(
                &encode(&pixels.to_rgb8(), turbojpeg::Subsamp::None, false),
                *tag,
            );
            let decoded = decode_for_model(&jpeg, dct_scaling).unwrap();
            assert_eq!(
                (decoded.width, decoded.height),
                (1200, 800),
                "tag {tag}, scaling {dct_scaling}"
            );
            let difference = mean_abs_difference(&decoded.pixels, &expected);
            assert!(
                difference < 2.0,
                "tag {tag}, scaling {dct_scaling}: mean difference {difference} to upright"
            );
        }
    }
}

#[test]
fn the_dct_scale_is_the_smallest_that_covers_the_model_input() {
    for ((width, height), expected) in [
        ((400, 300), (400, 300)),       // under twice the model side: full size
        ((1000, 750), (500, 375)),      // 1/2
        ((2048, 1536), (512, 384)),     // 1/4
        ((4000, 3000), (500, 375)),     // 1/8
        ((3000, 4000), (375, 500)),     // portrait, 1/8
        ((1792, 1792), (224, 224)),     // 1/8 exactly covers
        ((1784, 1784), (446, 446)),     // 1/8 would be 223: 1/4
        ((1791, 1791 * 3), (224, 672)), // the short side decides (1/8 rounds up)
    ] {
        let jpeg = encode(&photo(width, height), turbojpeg::Subsamp::Sub2x2, false);
        let decoded = decode_for_model(&jpeg, true).unwrap();
        assert_eq!((decoded.width, decoded.height), (width, height));
        assert_eq!(decoded.pixels.dimensions(), expected, "{width}x{height}");
    }
}

#[test]
fn the_pixels_match_the_decoder_before_libjpeg_turbo() {
    // The model must see what it saw with jpeg-decoder: the same scale, pixels within rounding.
    for (width, height) in [(640, 480), (2048, 1536), (4000, 3000)] {
        let jpeg = encode(&photo(width, height), turbojpeg::Subsamp::Sub2x2, false);
        let ours = decode_for_model(&jpeg, true).unwrap();
        let mut before = jpeg_decoder::Decoder::new(std::io::Cursor::new(&jpeg));
        before.read_info().unwrap();
        let (w, h) = (ours.pixels.width(), ours.pixels.height());
        if (w, h) != (width, height) {
            before
                .scale(u16::try_from(w).unwrap(), u16::try_from(h).unwrap())
                .unwrap();
        }
        let theirs = RgbImage::from_raw(w, h, before.decode().unwrap()).unwrap();
        let difference = mean_abs_difference(&ours.pixels, &theirs);
        assert!(
            difference < 1.5,
            "{width}x{height}: mean difference {difference} levels"
        );
    }
}

#[test]
fn greyscale_jpegs_decode_to_grey_rgb() {
    let jpeg = encode(&photo(1000, 750), turbojpeg::Subsamp::Gray, false);
    let decoded = decode_for_model(&jpeg, true).unwrap();
    assert_eq!(decoded.pixels.dimensions(), (500, 375));
    assert!(
        decoded
            .pixels
            .pixels()
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );
    let first = decoded.pixels.get_pixel(0, 0)[0];
    assert!(decoded.pixels.pixels().any(|p| p[0] != first));
}

#[test]
fn progressive_jpegs_decode_within_the_memory_limit_only() {
    let jpeg = encode(&photo(2000, 1500), turbojpeg::Subsamp::Sub2x2, true);
    let decoded = decode_for_model(&jpeg, true).unwrap();
    assert_eq!(decoded.pixels.dimensions(), (500, 375));
    // A progressive decode keeps every DCT coefficient: 2000 × 1500 × 1.5 × 2 bytes ≈ 8.6 MiB.
    let tight = DecodeCaps {
        max_alloc_bytes: 4 * 1024 * 1024,
        ..DecodeCaps::default()
    };
    let err = imaging::decode(&jpeg, &tight, (MODEL_SIDE, MODEL_SIDE)).unwrap_err();
    assert!(
        matches!(&err, ImagingError::Decode(m) if m.contains("MiB allowed")),
        "{err:?}"
    );
    // The same photo, baseline, streams through in a few rows: it fits.
    let baseline = encode(&photo(2000, 1500), turbojpeg::Subsamp::Sub2x2, false);
    assert!(imaging::decode(&baseline, &tight, (MODEL_SIDE, MODEL_SIDE)).is_ok());
}

#[test]
fn cmyk_jpegs_take_the_general_decoder() {
    // libjpeg-turbo cannot turn CMYK into RGB; the image crate's decoder does. Stored inverted, as
    // Adobe's applications write CMYK JPEGs (255 means no ink).
    let pixels = photo(640, 480);
    let cmyk: Vec<u8> = pixels
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let jpeg = turbojpeg::compress(
        turbojpeg::Image {
            pixels: cmyk.as_slice(),
            width: 640,
            pitch: 640 * 4,
            height: 480,
            format: turbojpeg::PixelFormat::CMYK,
        },
        90,
        turbojpeg::Subsamp::None,
    )
    .unwrap();
    let decoded = decode_for_model(&jpeg, true).unwrap();
    assert_eq!((decoded.width, decoded.height), (640, 480));
    assert_eq!(decoded.pixels.dimensions(), (640, 480));
    let difference = mean_abs_difference(&decoded.pixels, &pixels);
    assert!(difference < 4.0, "mean difference {difference} levels");
}

//! Imaging: photo bytes → the model's input tensor. Pure, synchronous functions; callers bound
//! their concurrency (the HTTP layer runs them in `spawn_blocking` under a semaphore).
//!
//! Steps: sniff the format from magic bytes, read the header and refuse oversized photos before
//! decoding anything (decompression bombs), decode with an allocation limit (JPEGs with
//! libjpeg-turbo, large ones at a reduced DCT scale; other formats with the `image` crate), apply
//! the EXIF orientation, resize with `fast_image_resize`, normalise.

use std::io::Cursor;

use fast_image_resize::{
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image as FirImage,
};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use ndarray::Array3;
use serde::Serialize;

use crate::config::ImagingConfig;
use crate::inference::Preprocessing;

/// The formats we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhotoFormat {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG.
    Png,
    /// WebP (RIFF container).
    Webp,
}

impl PhotoFormat {
    /// The format stored as `name` (`jpeg`, `png`, `webp`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jpeg" => Some(PhotoFormat::Jpeg),
            "png" => Some(PhotoFormat::Png),
            "webp" => Some(PhotoFormat::Webp),
            _ => None,
        }
    }

    /// The `image` crate's name for the format.
    fn image_format(self) -> image::ImageFormat {
        match self {
            PhotoFormat::Jpeg => image::ImageFormat::Jpeg,
            PhotoFormat::Png => image::ImageFormat::Png,
            PhotoFormat::Webp => image::ImageFormat::WebP,
        }
    }

    /// The media type of the format.
    pub fn mime(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "image/jpeg",
            PhotoFormat::Png => "image/png",
            PhotoFormat::Webp => "image/webp",
        }
    }
}

/// Media types we accept, for error messages and docs.
pub const ACCEPTED_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// Why a photo cannot become model input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImagingError {
    /// Zero bytes.
    #[error("the photo is empty")]
    Empty,
    /// Not a format we decode; `detected` names a recognised other format.
    #[error("{}", unsupported_message(.detected))]
    Unsupported { detected: Option<&'static str> },
    /// More pixels than allowed (checked from the header, before decoding).
    #[error(
        "the photo is {width}x{height} pixels, more than the {max_megapixels} megapixels allowed"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_megapixels: f64,
    },
    /// Corrupt, truncated, or beyond the decoder's memory limit.
    #[error("the photo cannot be decoded: {0}")]
    Decode(String),
}

fn unsupported_message(detected: &Option<&'static str>) -> String {
    let accepted = "send JPEG, PNG or WebP";
    match detected {
        Some("heic") => {
            format!("HEIC/HEIF photos are not supported (phones often save them): {accepted}")
        }
        Some(other) => format!(
            "{} photos are not supported: {accepted}",
            other.to_uppercase()
        ),
        None => format!("the file is not a photo in a supported format: {accepted}"),
    }
}

/// Limits and options of decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeCaps {
    /// Most pixels (width × height) of the stored photo.
    pub max_pixels: u64,
    /// Most bytes one decode may allocate.
    pub max_alloc_bytes: u64,
    /// Decode large JPEGs at a reduced DCT scale.
    pub jpeg_dct_scaling: bool,
}

impl DecodeCaps {
    /// Limits from the configuration.
    pub fn from_config(c: &ImagingConfig) -> Self {
        DecodeCaps {
            max_pixels: (c.max_megapixels * 1e6) as u64,
            max_alloc_bytes: c.max_decode_mib * 1024 * 1024,
            jpeg_dct_scaling: c.jpeg_dct_scaling,
        }
    }
}

impl Default for DecodeCaps {
    fn default() -> Self {
        DecodeCaps {
            max_pixels: 50_000_000,
            max_alloc_bytes: 512 * 1024 * 1024,
            jpeg_dct_scaling: true,
        }
    }
}

/// A decoded photo, upright, possibly already reduced towards the requested size.
#[derive(Debug, Clone)]
pub struct DecodedPhoto {
    /// The detected format.
    pub format: PhotoFormat,
    /// Width of the original photo, after orientation.
    pub width: u32,
    /// Height of the original photo, after orientation.
    pub height: u32,
    /// The pixels (possibly smaller than width × height, from DCT scaling).
    pub pixels: RgbImage,
}

/// The model input made from one photo.
#[derive(Debug, Clone)]
pub struct PreparedPhoto {
    /// The detected format.
    pub format: PhotoFormat,
    /// Width of the original photo, after orientation.
    pub width: u32,
    /// Height of the original photo, after orientation.
    pub height: u32,
    /// `[3, H, W]` float tensor, normalised as the model expects.
    pub tensor: Array3<f32>,
}

/// Detects the format from the first bytes, ignoring whatever the client claimed.
pub fn sniff(bytes: &[u8]) -> Result<PhotoFormat, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(PhotoFormat::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(PhotoFormat::Png);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(PhotoFormat::Webp);
    }
    Err(ImagingError::Unsupported {
        detected: detect_other(bytes),
    })
}

/// Names formats we recognise but do not decode, so the error can say what was sent.
fn detect_other(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                Some("heic")
            }
            b"avif" | b"avis" => Some("avif"),
            _ => None,
        };
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some("gif");
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Some("tiff");
    }
    if bytes.starts_with(b"BM") && bytes.len() > 26 {
        return Some("bmp");
    }
    if bytes.starts_with(b"%PDF") {
        return Some("pdf");
    }
    None
}

/// Decodes a photo within `limits`, upright. `target` is the size the caller will resize to: JPEGs
/// much larger than it are decoded at the smallest DCT scale that still covers it.
pub fn decode(
    bytes: &[u8],
    limits: &DecodeCaps,
    target: (u32, u32),
) -> Result<DecodedPhoto, ImagingError> {
    let format = sniff(bytes)?;
    if format == PhotoFormat::Jpeg
        && let Some(photo) = decode_jpeg(bytes, limits, target)?
    {
        return Ok(photo);
    }
    decode_full(bytes, format, limits)
}

/// What a photo's header says, read without decoding its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoHeader {
    /// The detected format.
    pub format: PhotoFormat,
    /// Width, after orientation.
    pub width: u32,
    /// Height, after orientation.
    pub height: u32,
}

/// Reads a photo's format, size and orientation from its header and checks them against
/// `limits`, in microseconds: the check of an upload, whose decode its embedding job does (a
/// photo whose pixels then fail to decode shows as failed, with the decoder's reason).
pub fn inspect(bytes: &[u8], limits: &DecodeCaps) -> Result<PhotoHeader, ImagingError> {
    let format = sniff(bytes)?;
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format.image_format())
        .into_decoder()
        .map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let swaps_axes = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let (width, height) = if swaps_axes {
        (height, width)
    } else {
        (width, height)
    };
    Ok(PhotoHeader {
        format,
        width,
        height,
    })
}

/// Decodes and prepares one photo as model input.
pub fn prepare(
    bytes: &[u8],
    pre: &Preprocessing,
    limits: &DecodeCaps,
) -> Result<PreparedPhoto, ImagingError> {
    let photo = decode(bytes, limits, (pre.width, pre.height))?;
    let tensor = to_tensor(&photo.pixels, pre)?;
    Ok(PreparedPhoto {
        format: photo.format,
        width: photo.width,
        height: photo.height,
        tensor,
    })
}

fn check_pixels(width: u32, height: u32, limits: &DecodeCaps) -> Result<(), ImagingError> {
    if width == 0 || height == 0 {
        return Err(ImagingError::Decode(format!(
            "the photo has no pixels ({width}x{height})"
        )));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImagingError::TooLarge {
            width,
            height,
            max_megapixels: limits.max_pixels as f64 / 1e6,
        });
    }
    Ok(())
}

fn decode_error(e: impl std::fmt::Display) -> ImagingError {
    ImagingError::Decode(e.to_string())
}

/// The general path (PNG, WebP, and JPEGs of unusual pixel formats) through the `image` crate.
fn decode_full(
    bytes: &[u8],
    format: PhotoFormat,
    limits: &DecodeCaps,
) -> Result<DecodedPhoto, ImagingError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    let pixels = image.into_rgb8();
    Ok(DecodedPhoto {
        format,
        width: pixels.width(),
        height: pixels.height(),
        pixels,
    })
}

/// Most scans a progressive JPEG may have: real ones have about ten; thousands of tiny scans are a
/// known way to make a small file cost minutes of decoding.
const MAX_PROGRESSIVE_SCANS: u32 = 100;

/// JPEG through libjpeg-turbo (SIMD), at the smallest DCT scale (1/8, 1/4, 1/2) that still covers
/// the target. Strict: a warning (a truncated file, corrupt entropy data), which libjpeg would
/// paint over with grey, is a decode error. Returns `None` for CMYK and YCCK photos, which
/// libjpeg-turbo cannot turn into RGB, and for layouts the crate does not model.
fn decode_jpeg(
    bytes: &[u8],
    limits: &DecodeCaps,
    target: (u32, u32),
) -> Result<Option<DecodedPhoto>, ImagingError> {
    let mut decompressor = turbojpeg::Decompressor::new().map_err(jpeg_error)?;
    let header = match decompressor.read_header(bytes) {
        Ok(header) => header,
        // Sampling or colour layouts the crate does not model: the general path decodes them.
        Err(turbojpeg::Error::BadSubsamp(_) | turbojpeg::Error::BadColorspace(_)) => {
            return Ok(None);
        }
        Err(e) => return Err(jpeg_error(e)),
    };
    let (width, height) = (
        u32::try_from(header.width).map_err(decode_error)?,
        u32::try_from(header.height).map_err(decode_error)?,
    );
    check_pixels(width, height, limits)?;
    if matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    ) {
        return Ok(None);
    }
    // Orientation may swap the axes, so the scaled photo must cover the target both ways.
    let cover = target.0.max(target.1);
    let scale = if limits.jpeg_dct_scaling && !header.is_lossless {
        dct_scale(width.min(height), cover)
    } else {
        turbojpeg::ScalingFactor::ONE
    };
    let scaled = header.scaled(scale);
    check_decode_memory(&header, scaled.width * scaled.height * 3, limits)?;
    decompressor.set_scaling_factor(scale).map_err(jpeg_error)?;
    decompressor
        .set_scan_limit(MAX_PROGRESSIVE_SCANS)
        .map_err(jpeg_error)?;
    let mut data = vec![0u8; scaled.width * scaled.height * 3];
    let output = turbojpeg::Image {
        pixels: data.as_mut_slice(),
        width: scaled.width,
        pitch: scaled.width * 3,
        height: scaled.height,
        format: turbojpeg::PixelFormat::RGB,
    };
    decompressor.decompress(bytes, output).map_err(jpeg_error)?;
    let (w, h) = (
        u32::try_from(scaled.width).map_err(decode_error)?,
        u32::try_from(scaled.height).map_err(decode_error)?,
    );
    let pixels = RgbImage::from_raw(w, h, data).ok_or_else(|| decode_error("short RGB data"))?;
    let mut image = DynamicImage::ImageRgb8(pixels);
    image.apply_orientation(orientation(bytes, PhotoFormat::Jpeg));
    let pixels = image.into_rgb8();
    let (width, height) = if pixels.width() == w {
        (width, height)
    } else {
        (height, width)
    };
    Ok(Some(DecodedPhoto {
        format: PhotoFormat::Jpeg,
        width,
        height,
        pixels,
    }))
}

/// libjpeg's own words for what is wrong ("Premature end of JPEG file"), without the crate's prefix.
fn jpeg_error(e: turbojpeg::Error) -> ImagingError {
    match e {
        turbojpeg::Error::TurboJpegError(message) => ImagingError::Decode(message),
        other => decode_error(other),
    }
}

/// The smallest of libjpeg-turbo's SIMD scales (1, 1/2, 1/4, 1/8) that keeps the photo's short
/// side at least `cover` pixels. (Its other n/8 scales have no SIMD IDCT.)
fn dct_scale(short_side: u32, cover: u32) -> turbojpeg::ScalingFactor {
    [
        turbojpeg::ScalingFactor::ONE_EIGHTH,
        turbojpeg::ScalingFactor::ONE_QUARTER,
        turbojpeg::ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(|s| s.scale(short_side as usize) >= cover as usize)
    .unwrap_or(turbojpeg::ScalingFactor::ONE)
}

/// Refuses a JPEG whose decode would allocate more than the limit: its RGB output, and for a
/// progressive (multi-scan) JPEG the whole-image buffer of DCT coefficients libjpeg keeps, two
/// bytes per coefficient, which at 4:4:4 is six bytes per pixel of the full-size photo.
fn check_decode_memory(
    header: &turbojpeg::DecompressHeader,
    output_bytes: usize,
    limits: &DecodeCaps,
) -> Result<(), ImagingError> {
    // Two chroma components, each subsampled by the factors (1×1 for grey, which has none).
    let (sx, sy) = header.subsamp.size();
    let coefficients_per_pixel = match header.subsamp {
        turbojpeg::Subsamp::Gray => 1.0,
        _ => 1.0 + 2.0 / (sx * sy) as f64,
    };
    let coefficient_bytes = if header.is_progressive {
        (header.width * header.height) as f64 * coefficients_per_pixel * 2.0
    } else {
        0.0
    };
    let needed = output_bytes as f64 + coefficient_bytes;
    if needed > limits.max_alloc_bytes as f64 {
        return Err(ImagingError::Decode(format!(
            "decoding it needs about {} MiB, more than the {} MiB allowed",
            (needed / 1_048_576.0).ceil(),
            limits.max_alloc_bytes / 1_048_576
        )));
    }
    Ok(())
}

/// The EXIF orientation of a photo, read by the `image` crate from its header (none when the
/// header has none or cannot be read: orientation is metadata, the decoder judges the pixels).
fn orientation(bytes: &[u8], format: PhotoFormat) -> Orientation {
    ImageReader::with_format(Cursor::new(bytes), format.image_format())
        .into_decoder()
        .ok()
        .and_then(|mut decoder| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms)
}

/// Resizes to the model's input size (the whole photo, aspect not kept: nothing is cropped away)
/// and normalises into a `[3, H, W]` tensor.
pub fn to_tensor(pixels: &RgbImage, pre: &Preprocessing) -> Result<Array3<f32>, ImagingError> {
    let resized = resize(pixels, pre.width, pre.height)?;
    let (w, h) = (pre.width as usize, pre.height as usize);
    let mut tensor = Array3::<f32>::zeros((3, h, w));
    let scale = 1.0 / pre.std;
    for (i, px) in resized.chunks_exact(3).enumerate() {
        let (y, x) = (i / w, i % w);
        for c in 0..3 {
            tensor[[c, y, x]] = (f32::from(px[c]) - pre.mean) * scale;
        }
    }
    Ok(tensor)
}

/// Decodes a photo once for both its model input and its thumbnail: an embedding job's work.
/// The decode covers the larger of the two sizes, which on photos of a few megapixels is the
/// same DCT scale the model alone would use.
pub fn prepare_with_thumbnail(
    bytes: &[u8],
    pre: &Preprocessing,
    limits: &DecodeCaps,
) -> Result<(PreparedPhoto, Vec<u8>), ImagingError> {
    let target = (
        pre.width.max(THUMBNAIL_SIDE),
        pre.height.max(THUMBNAIL_SIDE),
    );
    let photo = decode(bytes, limits, target)?;
    let tensor = to_tensor(&photo.pixels, pre)?;
    let thumbnail = thumbnail(&photo.pixels, THUMBNAIL_SIDE)?;
    let prepared = PreparedPhoto {
        format: photo.format,
        width: photo.width,
        height: photo.height,
        tensor,
    };
    Ok((prepared, thumbnail))
}

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 256;

/// Decodes a photo (at the reduced scale a thumbnail allows) and makes its thumbnail: the
/// sweep's repair of a lost thumbnail.
pub fn decode_with_thumbnail(
    bytes: &[u8],
    limits: &DecodeCaps,
) -> Result<(DecodedPhoto, Vec<u8>), ImagingError> {
    let photo = decode(bytes, limits, (THUMBNAIL_SIDE, THUMBNAIL_SIDE))?;
    let thumbnail = thumbnail(&photo.pixels, THUMBNAIL_SIDE)?;
    Ok((photo, thumbnail))
}

/// A JPEG thumbnail of a decoded photo, its longer side at most `max_side` (aspect kept).
pub fn thumbnail(pixels: &RgbImage, max_side: u32) -> Result<Vec<u8>, ImagingError> {
    let (w, h) = pixels.dimensions();
    let scale = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
    let (tw, th) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let resized = resize(pixels, tw, th)?;
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode(&resized, tw, th, image::ExtendedColorType::Rgb8)
        .map_err(decode_error)?;
    Ok(out.into_inner())
}

/// Resizes RGB pixels to `width` × `height` with a bilinear convolution (area-aware when shrinking).
pub fn resize(pixels: &RgbImage, width: u32, height: u32) -> Result<Vec<u8>, ImagingError> {
    if pixels.width() == width && pixels.height() == height {
        return Ok(pixels.as_raw().clone());
    }
    let src = fast_image_resize::images::ImageRef::new(
        pixels.width(),
        pixels.height(),
        pixels.as_raw(),
        PixelType::U8x3,
    )
    .map_err(decode_error)?;
    let mut dst = FirImage::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(decode_error)?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRE: Preprocessing = Preprocessing {
        width: 224,
        height: 224,
        mean: 127.0,
        std: 128.0,
    };

    fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        }))
    }

    #[test]
    fn sniffs_by_magic_not_by_name() {
        assert_eq!(
            sniff(&encode(&gradient(8, 8), image::ImageFormat::Png)),
            Ok(PhotoFormat::Png)
        );
        assert_eq!(
            sniff(&encode(&gradient(8, 8), image::ImageFormat::Jpeg)),
            Ok(PhotoFormat::Jpeg)
        );
        assert_eq!(sniff(b""), Err(ImagingError::Empty));
        assert_eq!(
            sniff(b"hello, world"),
            Err(ImagingError::Unsupported { detected: None })
        );
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(
            sniff(heic),
            Err(ImagingError::Unsupported {
                detected: Some("heic")
            })
        );
        assert!(
            ImagingError::Unsupported {
                detected: Some("heic")
            }
            .to_string()
            .contains("HEIC")
        );
        assert_eq!(
            sniff(b"GIF89a...."),
            Err(ImagingError::Unsupported {
                detected: Some("gif")
            })
        );
    }

    #[test]
    fn prepares_png_jpeg_and_webp_to_the_model_shape() {
        for format in [
            image::ImageFormat::Png,
            image::ImageFormat::Jpeg,
            image::ImageFormat::WebP,
        ] {
            let bytes = encode(&gradient(640, 480), format);
            let p = prepare(&bytes, &PRE, &DecodeCaps::default()).unwrap();
            assert_eq!(p.tensor.dim(), (3, 224, 224), "{format:?}");
            assert_eq!((p.width, p.height), (640, 480));
            // Normalised into [-1, 1]: (0-127)/128 .. (255-127)/128.
            assert!(p.tensor.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn dct_scaling_decodes_smaller_but_reports_the_original_size() {
        let bytes = encode(&gradient(2000, 1500), image::ImageFormat::Jpeg);
        let scaled = decode(&bytes, &DecodeCaps::default(), (224, 224)).unwrap();
        assert_eq!((scaled.width, scaled.height), (2000, 1500));
        assert_eq!(scaled.pixels.dimensions(), (500, 375));
        let full = decode(
            &bytes,
            &DecodeCaps {
                jpeg_dct_scaling: false,
                ..Default::default()
            },
            (224, 224),
        )
        .unwrap();
        assert_eq!(full.pixels.dimensions(), (2000, 1500));
        // Same model input either way, up to resampling noise.
        let a = to_tensor(&scaled.pixels, &PRE).unwrap();
        let b = to_tensor(&full.pixels, &PRE).unwrap();
        let mean_diff = (&a - &b).mapv(f32::abs).mean().unwrap();
        assert!(mean_diff < 0.02, "mean difference {mean_diff}");
    }

    #[test]
    fn refuses_too_many_pixels_before_decoding() {
        let bytes = encode(&gradient(300, 200), image::ImageFormat::Png);
        let limits = DecodeCaps {
            max_pixels: 50_000,
            ..Default::default()
        };
        assert!(matches!(
            prepare(&bytes, &PRE, &limits),
            Err(ImagingError::TooLarge {
                width: 300,
                height: 200,
                ..
            })
        ));
    }

    #[test]
    fn inspect_reads_the_header_and_leaves_the_pixels_to_the_decode() {
        let jpeg = encode(&gradient(640, 480), image::ImageFormat::Jpeg);
        let header = inspect(&jpeg, &DecodeCaps::default()).unwrap();
        assert_eq!(
            (header.format, header.width, header.height),
            (PhotoFormat::Jpeg, 640, 480)
        );
        // A truncated photo passes the header check; the one decode (the job's) refuses it.
        let cut = &jpeg[..jpeg.len() / 2];
        assert_eq!(inspect(cut, &DecodeCaps::default()), Ok(header));
        assert!(matches!(
            prepare_with_thumbnail(cut, &PRE, &DecodeCaps::default()),
            Err(ImagingError::Decode(_))
        ));
        let small = DecodeCaps {
            max_pixels: 50_000,
            ..Default::default()
        };
        assert!(matches!(
            inspect(&jpeg, &small),
            Err(ImagingError::TooLarge { width: 640, .. })
        ));
        assert!(matches!(
            inspect(b"not a photo", &small),
            Err(ImagingError::Unsupported { .. })
        ));
    }

    #[test]
    fn one_decode_makes_the_model_input_and_the_thumbnail() {
        let jpeg = encode(&gradient(2048, 1536), image::ImageFormat::Jpeg);
        let (prepared, thumbnail) =
            prepare_with_thumbnail(&jpeg, &PRE, &DecodeCaps::default()).unwrap();
        assert_eq!((prepared.width, prepared.height), (2048, 1536));
        assert_eq!(prepared.tensor.shape(), &[3, 224, 224]);
        let thumbnail = image::load_from_memory(&thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (256, 192));
        // At this size the thumbnail's decode is the model's own DCT scale: the same input.
        let alone = prepare(&jpeg, &PRE, &DecodeCaps::default()).unwrap();
        assert_eq!(alone.tensor, prepared.tensor);
    }

    #[test]
    fn truncated_photos_are_decode_errors() {
        for format in [
            image::ImageFormat::Png,
            image::ImageFormat::Jpeg,
            image::ImageFormat::WebP,
        ] {
            let bytes = encode(&gradient(640, 480), format);
            for cut in [bytes.len() / 2, 40] {
                let err = prepare(&bytes[..cut], &PRE, &DecodeCaps::default()).unwrap_err();
                assert!(
                    matches!(err, ImagingError::Decode(_)),
                    "{format:?} cut at {cut}: {err:?}"
                );
            }
        }
    }
}

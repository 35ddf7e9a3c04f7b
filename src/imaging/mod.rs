//! Imaging: photo bytes → the model's input tensor. Pure, synchronous functions; callers bound
//! their concurrency (the HTTP layer runs them in `spawn_blocking` under a semaphore).
//!
//! Steps: sniff the format from magic bytes, read the header and refuse oversized photos before
//! decoding anything (decompression bombs), decode within the memory budget (`decode`: JPEGs
//! with libjpeg-turbo, large ones at a reduced DCT scale; PNGs with the `png` crate; WebP with
//! the `image` crate), apply the EXIF orientation, resize with `fast_image_resize`, normalise.
//! Uploads are stored without their metadata (`metadata`).

use std::io::Cursor;

use fast_image_resize::{
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image as FirImage,
};
use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader, RgbImage};
use ndarray::Array3;
use serde::Serialize;

use crate::inference::Preprocessing;

mod decode;
pub mod metadata;

pub use decode::decode;

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
    /// The format whose stable name is `name` (`jpeg`, `png`, `webp`); no other spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jpeg" => Some(PhotoFormat::Jpeg),
            "png" => Some(PhotoFormat::Png),
            "webp" => Some(PhotoFormat::Webp),
            _ => None,
        }
    }

    /// Its stable name, as the database stores it (`blobs.format`) and the API shows it: never a
    /// `Debug` string, which would change with the enum.
    pub fn name(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpeg",
            PhotoFormat::Png => "png",
            PhotoFormat::Webp => "webp",
        }
    }

    /// The `image` crate's name for the format.
    pub(crate) fn image_format(self) -> image::ImageFormat {
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
    /// Metadata that would take more memory than allowed to read (a PNG colour profile that
    /// inflates past its cap: a decompression bomb).
    #[error("the photo's {what} takes more than the {max_mib} MiB allowed")]
    MetadataTooLarge { what: &'static str, max_mib: u64 },
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

/// Most bytes a header check may allocate for what it reads besides the size (EXIF, a PNG's
/// chunk buffers): a header check never inflates a colour profile or text.
const HEADER_CHECK_BYTES: usize = 4 << 20;

/// Reads a photo's format, size and orientation from its header and checks them against
/// `limits`, in microseconds and a few MiB at most (colour profiles and text are not inflated):
/// the check of an upload, whose decode its embedding job does (a photo whose pixels then fail
/// to decode shows as failed, with the decoder's reason).
pub fn inspect(bytes: &[u8], limits: &DecodeCaps) -> Result<PhotoHeader, ImagingError> {
    let format = sniff(bytes)?;
    let (width, height, orientation) = match format {
        PhotoFormat::Png => {
            let mut decoder = png::Decoder::new(Cursor::new(bytes));
            decoder.set_ignore_iccp_chunk(true);
            decoder.set_ignore_text_chunk(true);
            decoder.set_limits(png::Limits {
                bytes: HEADER_CHECK_BYTES,
            });
            let reader = decoder.read_info().map_err(decode_error)?;
            let info = reader.info();
            let orientation = info
                .exif_metadata
                .as_deref()
                .and_then(metadata::exif_orientation);
            (info.width, info.height, orientation)
        }
        PhotoFormat::Jpeg | PhotoFormat::Webp => {
            let mut decoder = ImageReader::with_format(Cursor::new(bytes), format.image_format())
                .into_decoder()
                .map_err(decode_error)?;
            let (width, height) = decoder.dimensions();
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            (width, height, Some(u16::from(orientation.to_exif())))
        }
    };
    check_pixels(width, height, limits)?;
    // EXIF orientations 5 to 8 turn the photo a quarter.
    let (width, height) = if orientation.is_some_and(|o| (5..=8).contains(&o)) {
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

/// An upload's check: its header (as [`inspect`]), and its bytes without metadata (see
/// [`metadata`]), which are what is stored. A PNG whose colour profile inflates past
/// [`metadata::MAX_PROFILE_BYTES`] is refused.
pub fn check_and_clean(
    bytes: &[u8],
    limits: &DecodeCaps,
) -> Result<(PhotoHeader, Vec<u8>), ImagingError> {
    let header = inspect(bytes, limits)?;
    let clean = metadata::strip(bytes, header.format, metadata::ProfilePolicy::Refuse)?;
    Ok((header, clean))
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

pub(crate) fn check_pixels(
    width: u32,
    height: u32,
    limits: &DecodeCaps,
) -> Result<(), ImagingError> {
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

pub(crate) fn decode_error(e: impl std::fmt::Display) -> ImagingError {
    ImagingError::Decode(e.to_string())
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
    use image::DynamicImage;

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

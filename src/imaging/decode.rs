//! Decoding within the budget: every decode works out, from the header, the bytes it will hold
//! at its peak (its output, the copies for RGB and for rotation, libjpeg's coefficients) and
//! refuses before allocating when that passes `--max-decode-mib`. Pixels become RGB8 before any
//! rotation, so a rotated 16-bit photo holds one 8-bit copy more, not two 16-bit ones. PNGs
//! decode through the `png` crate with colour profiles and text chunks skipped: nothing of their
//! metadata is inflated.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::metadata;
use super::{DecodeCaps, DecodedPhoto, ImagingError, PhotoFormat, check_pixels, decode_error};

/// Decodes a photo within `limits`, upright. `target` is the size the caller will resize to: JPEGs
/// much larger than it are decoded at the smallest DCT scale that still covers it.
pub fn decode(
    bytes: &[u8],
    limits: &DecodeCaps,
    target: (u32, u32),
) -> Result<DecodedPhoto, ImagingError> {
    let format = super::sniff(bytes)?;
    match format {
        PhotoFormat::Jpeg => match decode_jpeg(bytes, limits, target)? {
            Some(photo) => Ok(photo),
            None => decode_general(bytes, format, limits),
        },
        PhotoFormat::Png => decode_png(bytes, limits),
        PhotoFormat::Webp => decode_general(bytes, format, limits),
    }
}

/// The orientation with the EXIF value `value` (1..=8).
fn orientation_of(value: Option<u16>) -> Orientation {
    value
        .and_then(|v| Orientation::from_exif(u8::try_from(v).ok()?))
        .unwrap_or(Orientation::NoTransforms)
}

/// Whether applying `orientation` makes a rotated copy (90° turns; 180° and flips work in place).
fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Refuses a decode whose peak would hold more than the limit.
fn reserve(needed: u64, limits: &DecodeCaps) -> Result<(), ImagingError> {
    if needed > limits.max_alloc_bytes {
        return Err(ImagingError::Decode(format!(
            "decoding it needs about {} MiB, more than the {} MiB allowed",
            needed.div_ceil(1 << 20),
            limits.max_alloc_bytes >> 20
        )));
    }
    Ok(())
}

/// RGB8 pixels turned upright (the one copy a 90° turn makes was reserved by the caller).
fn upright(pixels: RgbImage, orientation: Orientation) -> RgbImage {
    let mut image = DynamicImage::ImageRgb8(pixels);
    image.apply_orientation(orientation);
    image.into_rgb8()
}

/// Bytes of RGB8 pixels of `width` × `height`.
fn rgb_bytes(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * 3
}

/// PNG through the `png` crate: 8 bits per channel from the start (16-bit samples keep their
/// high byte, palettes and low depths expand), colour profile and text chunks not inflated.
fn decode_png(bytes: &[u8], limits: &DecodeCaps) -> Result<DecodedPhoto, ImagingError> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_ignore_text_chunk(true);
    decoder.set_limits(png::Limits {
        bytes: usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX),
    });
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_pixels(width, height, limits)?;
    let orientation = orientation_of(
        reader
            .info()
            .exif_metadata
            .as_deref()
            .and_then(metadata::exif_orientation),
    );
    let channels = reader.output_color_type().0.samples();
    let frame = reader
        .output_buffer_size()
        .ok_or_else(|| decode_error("the PNG is too large to decode"))?;
    let rgb = rgb_bytes(width, height);
    // The frame; grey photos then get an RGB copy (colour ones are compacted in place); a 90°
    // turn copies once more.
    let needed = frame as u64
        + if channels < 3 { rgb } else { 0 }
        + if swaps_axes(orientation) { rgb } else { 0 };
    reserve(needed, limits)?;
    let mut buffer = vec![0u8; frame];
    let info = reader.next_frame(&mut buffer).map_err(decode_error)?;
    buffer.truncate(info.buffer_size());
    let data = to_rgb8(buffer, channels, info.line_size, width, height)?;
    let pixels =
        RgbImage::from_raw(width, height, data).ok_or_else(|| decode_error("short RGB data"))?;
    let pixels = upright(pixels, orientation);
    Ok(DecodedPhoto {
        format: PhotoFormat::Png,
        width: pixels.width(),
        height: pixels.height(),
        pixels,
    })
}

/// Rows of 8-bit grey, grey+alpha, RGB or RGBA (each `line` bytes) as packed RGB8; alpha is
/// dropped, as the `image` crate's conversion does. RGB and RGBA are compacted in place.
fn to_rgb8(
    mut data: Vec<u8>,
    channels: usize,
    line: usize,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, ImagingError> {
    let (w, h) = (width as usize, height as usize);
    if line < w * channels || data.len() < line * h || channels == 0 || channels > 4 {
        return Err(decode_error("the PNG's rows are shorter than its width"));
    }
    if channels == 3 && line == w * 3 {
        // Packed RGB already (the common case): nothing moves.
        data.truncate(w * h * 3);
        return Ok(data);
    }
    if channels >= 3 {
        // Each pixel moves to an index no higher than where it is read from.
        for y in 0..h {
            for x in 0..w {
                let from = y * line + x * channels;
                let to = (y * w + x) * 3;
                data.copy_within(from..from + 3, to);
            }
        }
        data.truncate(w * h * 3);
        return Ok(data);
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let v = data[y * line + x * channels];
            out.extend_from_slice(&[v, v, v]);
        }
    }
    Ok(out)
}

/// The general path (WebP, and JPEGs of unusual pixel formats) through the `image` crate.
fn decode_general(
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
    let rgb = rgb_bytes(width, height);
    // The decoder's output, then its RGB8 copy (none when it is RGB8 already), then a turn's copy.
    let native = decoder.total_bytes();
    let converted = if decoder.color_type() == image::ColorType::Rgb8 {
        native
    } else {
        native.saturating_add(rgb)
    };
    let turned = if swaps_axes(orientation) { 2 * rgb } else { 0 };
    reserve(converted.max(turned), limits)?;
    let pixels = DynamicImage::from_decoder(decoder)
        .map_err(decode_error)?
        .into_rgb8();
    let pixels = upright(pixels, orientation);
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
    let orientation = orientation_of(metadata::jpeg_orientation(bytes));
    let output = scaled.width * scaled.height * 3;
    let turned = if swaps_axes(orientation) { output } else { 0 };
    check_decode_memory(&header, output + turned, limits)?;
    decompressor.set_scaling_factor(scale).map_err(jpeg_error)?;
    decompressor
        .set_scan_limit(MAX_PROGRESSIVE_SCANS)
        .map_err(jpeg_error)?;
    let mut data = vec![0u8; output];
    let image = turbojpeg::Image {
        pixels: data.as_mut_slice(),
        width: scaled.width,
        pitch: scaled.width * 3,
        height: scaled.height,
        format: turbojpeg::PixelFormat::RGB,
    };
    decompressor.decompress(bytes, image).map_err(jpeg_error)?;
    let (w, h) = (
        u32::try_from(scaled.width).map_err(decode_error)?,
        u32::try_from(scaled.height).map_err(decode_error)?,
    );
    let pixels = RgbImage::from_raw(w, h, data).ok_or_else(|| decode_error("short RGB data"))?;
    let pixels = upright(pixels, orientation);
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

/// Refuses a JPEG whose decode would allocate more than the limit: its RGB output (and the
/// copy a turn makes), and for a progressive (multi-scan) JPEG the whole-image buffer of DCT
/// coefficients libjpeg keeps, two bytes per coefficient, which at 4:4:4 is six bytes per pixel
/// of the full-size photo.
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
    reserve((output_bytes as f64 + coefficient_bytes) as u64, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn pngs_of_every_layout_decode_as_the_image_crate_does() {
        let rgb = RgbImage::from_fn(37, 23, |x, y| image::Rgb([x as u8 * 7, y as u8 * 11, 99]));
        let base = DynamicImage::ImageRgb8(rgb);
        for image in [
            base.clone(),
            DynamicImage::ImageRgba8(base.to_rgba8()),
            DynamicImage::ImageLuma8(base.to_luma8()),
            DynamicImage::ImageLumaA8(base.to_luma_alpha8()),
        ] {
            let decoded = decode_png(&png(&image), &DecodeCaps::default()).unwrap();
            assert_eq!(decoded.pixels, image.to_rgb8(), "{:?}", image.color());
        }
        // 16-bit: the high byte of each sample (the image crate rounds; at most one apart).
        let deep = DynamicImage::ImageRgb16(base.to_rgb16());
        let decoded = decode_png(&png(&deep), &DecodeCaps::default()).unwrap();
        assert_eq!(decoded.pixels, base.to_rgb8());
    }

    #[test]
    fn a_decode_that_would_pass_its_budget_is_refused_before_allocating() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(1000, 1000, |x, y| {
            image::Rgb([x as u8, y as u8, 0])
        }));
        let bytes = png(&DynamicImage::ImageRgb16(image.to_rgb16()));
        // 3 MB of RGB8 output: refused under 2 MiB, decoded under 4 MiB.
        let tight = DecodeCaps {
            max_alloc_bytes: 2 << 20,
            ..DecodeCaps::default()
        };
        let err = decode(&bytes, &tight, (224, 224)).unwrap_err();
        assert!(
            matches!(&err, ImagingError::Decode(m) if m.contains("MiB allowed")),
            "{err:?}"
        );
        let enough = DecodeCaps {
            max_alloc_bytes: 4 << 20,
            ..DecodeCaps::default()
        };
        assert!(decode(&bytes, &enough, (224, 224)).is_ok());
    }
}

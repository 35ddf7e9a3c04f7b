use std::io::Cursor;

use image::{DynamicImage, RgbImage};

use super::*;
use crate::imaging::{DecodeCaps, decode};

fn gradient(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    }))
}

fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A little-endian TIFF block as a phone writes it: make, model, orientation and a GPS IFD.
fn phone_exif(orientation: u16) -> Vec<u8> {
    let strings: &[u8] = b"SECRET-MAKE\0SECRET-MODEL\0";
    let mut t = b"II\x2a\0\x08\0\0\0".to_vec();
    // IFD0 at 8: 4 entries (12 bytes each) + next-IFD offset, then the strings, then GPS IFD.
    let strings_at = 8 + 2 + 4 * 12 + 4;
    let gps_at = strings_at + strings.len();
    t.extend_from_slice(&4u16.to_le_bytes());
    let mut entry = |tag: u16, kind: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    entry(0x010F, 2, 12, strings_at as u32);
    entry(0x0110, 2, 13, strings_at as u32 + 12);
    entry(0x0112, 3, 1, u32::from(orientation));
    entry(0x8825, 4, 1, gps_at as u32);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(strings);
    // GPS IFD: one entry, latitude reference "N" and the marker text after it.
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0001u16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&2u32.to_le_bytes());
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(b"GPS-48.858370N-2.294481E");
    t
}

const SECRETS: [&[u8]; 5] = [
    b"SECRET-MAKE",
    b"SECRET-MODEL",
    b"GPS-48.8",
    b"a comment",
    b"xmpmeta",
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_clean(bytes: &[u8]) {
    for s in SECRETS {
        assert!(
            !contains(bytes, s),
            "{} left in",
            String::from_utf8_lossy(s)
        );
    }
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// A JPEG with a phone's EXIF, XMP, a comment, IPTC, and an image appended after its end.
fn phone_jpeg(orientation: u16) -> Vec<u8> {
    let plain = encode(&gradient(64, 48), image::ImageFormat::Jpeg);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&phone_exif(orientation));
    let mut out = plain[..2].to_vec();
    out.extend(jpeg_segment(0xE1, &exif));
    out.extend(jpeg_segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPS-48.8</x:xmpmeta>",
    ));
    out.extend(jpeg_segment(0xED, b"Photoshop 3.0\0SECRET-MAKE"));
    out.extend(jpeg_segment(0xFE, b"a comment"));
    out.extend_from_slice(&plain[2..]);
    // A gain map as phones append it, with its own EXIF.
    out.extend_from_slice(&[0xFF, 0xD8]);
    out.extend(jpeg_segment(0xE1, &exif));
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_png_chunk(&mut out, kind, data);
    out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    fdeflate::compress_to_vec(data)
}

/// A PNG with text chunks, a date, EXIF (orientation 6) and a private chunk before its pixels.
fn phone_png() -> Vec<u8> {
    let plain = encode(&gradient(64, 48), image::ImageFormat::Png);
    // Signature (8) + IHDR chunk (25).
    let mut out = plain[..33].to_vec();
    out.extend(png_chunk(b"tEXt", b"Comment\0a comment"));
    let mut ztxt = b"Author\0\0".to_vec();
    ztxt.extend(zlib(b"SECRET-MAKE"));
    out.extend(png_chunk(b"zTXt", &ztxt));
    out.extend(png_chunk(
        b"iTXt",
        b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta>GPS-48.8</x:xmpmeta>",
    ));
    out.extend(png_chunk(b"tIME", &[7, 234, 12, 6, 9, 0, 0]));
    out.extend(png_chunk(b"eXIf", &phone_exif(6)));
    out.extend(png_chunk(b"prVt", b"SECRET-MODEL"));
    out.extend_from_slice(&plain[33..]);
    out.extend_from_slice(b"SECRET-MODEL trailing");
    out
}

fn riff_chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_riff_chunk(&mut out, id, data);
    out
}

/// An extended WebP (VP8X) with EXIF (orientation 6) and XMP, its flags announcing both.
fn phone_webp() -> Vec<u8> {
    let plain = encode(&gradient(64, 48), image::ImageFormat::WebP);
    let image_chunk = &plain[12..];
    let mut vp8x = vec![VP8X_EXIF | VP8X_XMP, 0, 0, 0];
    vp8x.extend_from_slice(&63u32.to_le_bytes()[..3]);
    vp8x.extend_from_slice(&47u32.to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend_from_slice(image_chunk);
    body.extend(riff_chunk(b"EXIF", &phone_exif(6)));
    body.extend(riff_chunk(b"XMP ", b"<x:xmpmeta>GPS-48.8</x:xmpmeta>"));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn pixels(bytes: &[u8]) -> RgbImage {
    decode(bytes, &DecodeCaps::default(), (10_000, 10_000))
        .unwrap()
        .pixels
}

#[test]
fn jpeg_loses_its_metadata_and_keeps_pixels_and_orientation() {
    let dirty = phone_jpeg(6);
    assert!(contains(&dirty, b"SECRET-MAKE"));
    let clean = strip(&dirty, PhotoFormat::Jpeg, ProfilePolicy::Refuse).unwrap();
    assert_clean(&clean);
    assert!(clean.ends_with(&[0xFF, 0xD9]));
    assert_eq!(jpeg_orientation(&clean), Some(6));
    let upright = pixels(&clean);
    // Rotated: 48 wide, 64 high; the same pixels as the original decodes to.
    assert_eq!(upright.dimensions(), (48, 64));
    assert_eq!(upright, pixels(&dirty));
    // Upright photos keep no EXIF at all.
    let clean = strip(&phone_jpeg(1), PhotoFormat::Jpeg, ProfilePolicy::Refuse).unwrap();
    assert!(!contains(&clean, b"Exif"));
    assert_eq!(jpeg_orientation(&clean), None);
}

#[test]
fn png_loses_its_metadata_and_keeps_pixels_and_orientation() {
    let dirty = phone_png();
    let clean = strip(&dirty, PhotoFormat::Png, ProfilePolicy::Refuse).unwrap();
    assert_clean(&clean);
    for kind in [b"tEXt", b"zTXt", b"iTXt", b"tIME", b"prVt"] {
        assert!(!contains(&clean, kind));
    }
    assert!(contains(&clean, b"eXIf"));
    assert!(clean.ends_with(&png_chunk(b"IEND", b"")));
    let upright = pixels(&clean);
    assert_eq!(upright.dimensions(), (48, 64));
    assert_eq!(upright, pixels(&dirty));
}

#[test]
fn webp_loses_its_metadata_and_flags_and_keeps_pixels_and_orientation() {
    let dirty = phone_webp();
    let clean = strip(&dirty, PhotoFormat::Webp, ProfilePolicy::Refuse).unwrap();
    assert_clean(&clean);
    assert!(!contains(&clean, b"XMP "));
    // VP8X's flags: EXIF (the orientation) still announced, XMP no longer.
    assert_eq!(clean[20] & (VP8X_EXIF | VP8X_XMP), VP8X_EXIF);
    assert_eq!(le32(&clean, 4), Some(clean.len() as u32 - 8));
    let upright = pixels(&clean);
    assert_eq!(upright.dimensions(), (48, 64));
    assert_eq!(upright, pixels(&dirty));
}

#[test]
fn stripping_is_idempotent_and_leaves_clean_photos_alone() {
    for (dirty, format) in [
        (phone_jpeg(6), PhotoFormat::Jpeg),
        (phone_png(), PhotoFormat::Png),
        (phone_webp(), PhotoFormat::Webp),
    ] {
        let once = strip(&dirty, format, ProfilePolicy::Refuse).unwrap();
        let twice = strip(&once, format, ProfilePolicy::Refuse).unwrap();
        assert_eq!(once, twice, "{format:?}");
    }
    for format in [image::ImageFormat::Png, image::ImageFormat::WebP] {
        let plain = encode(&gradient(32, 32), format);
        let sniffed = crate::imaging::sniff(&plain).unwrap();
        assert_eq!(
            strip(&plain, sniffed, ProfilePolicy::Refuse).unwrap(),
            plain
        );
    }
}

/// A PNG whose colour profile inflates to `inflated` bytes.
fn png_with_profile(inflated: usize) -> Vec<u8> {
    let plain = encode(&gradient(16, 16), image::ImageFormat::Png);
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zlib(&vec![0u8; inflated]));
    let mut out = plain[..33].to_vec();
    out.extend(png_chunk(b"iCCP", &iccp));
    out.extend_from_slice(&plain[33..]);
    out
}

#[test]
fn a_profile_bomb_is_refused_at_upload_and_dropped_from_a_stored_photo() {
    let bomb = png_with_profile(16 << 20);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let err = strip(&bomb, PhotoFormat::Png, ProfilePolicy::Refuse).unwrap_err();
    assert!(
        matches!(err, ImagingError::MetadataTooLarge { .. }),
        "{err:?}"
    );
    let dropped = strip(&bomb, PhotoFormat::Png, ProfilePolicy::Drop).unwrap();
    assert!(!contains(&dropped, b"iCCP"));
    assert_eq!(pixels(&dropped).dimensions(), (16, 16));
    // A real-sized profile stays.
    let fine = png_with_profile(3_000);
    assert_eq!(
        strip(&fine, PhotoFormat::Png, ProfilePolicy::Refuse).unwrap(),
        fine
    );
}

#[test]
fn hostile_bytes_give_an_error_or_a_bounded_output_never_a_panic() {
    // A small xorshift: the same cases every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (seed, format) in [
        (phone_jpeg(6), PhotoFormat::Jpeg),
        (phone_png(), PhotoFormat::Png),
        (phone_webp(), PhotoFormat::Webp),
    ] {
        for _ in 0..3_000 {
            let mut bytes = seed.clone();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 4 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes[at] = 0xFF,
                    2 => bytes.truncate(at.max(2)),
                    _ => bytes.insert(at, next() as u8),
                }
            }
            if let Ok(clean) = strip(&bytes, format, ProfilePolicy::Drop) {
                assert!(clean.len() <= bytes.len() + 64, "{format:?} grew");
            }
            let _ = jpeg_orientation(&bytes);
            let _ = exif_orientation(&bytes);
        }
    }
    for junk in [
        &b""[..],
        b"\xFF\xD8",
        b"\xFF\xD8\xFF",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\xff\xff\xff\xffWEBP",
    ] {
        for format in [PhotoFormat::Jpeg, PhotoFormat::Png, PhotoFormat::Webp] {
            let _ = strip(junk, format, ProfilePolicy::Refuse);
        }
    }
}

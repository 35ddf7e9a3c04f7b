//! Metadata removal: a photo's container rewritten without what it says about its taker (EXIF
//! with GPS, camera make and model, maker notes; XMP; IPTC; comments; text chunks; dates), its
//! pixels' bytes copied untouched. One linear pass over the bytes, output never larger than the
//! input plus a few dozen bytes; hostile input gives an error or passes through, never a panic.
//!
//! What stays: what the pixels need to decode (tables, frame and scan headers, Adobe's colour
//! transform, PNG's palette and transparency), the colour profile (a pet's coat colour is what
//! people match on, and a profile is a device class's standard data, not the taker's), and the
//! orientation, as a minimal EXIF block holding that one tag, so the photo shows upright without
//! re-encoding. Everything after the image's end (phones append depth maps and gain-map JPEGs,
//! each with its own EXIF) goes.

use super::{ImagingError, PhotoFormat};

/// Most bytes a PNG colour profile may inflate to; real profiles are well under 1 MiB, a
/// profile bomb inflates a few hundred KiB into hundreds of MiB.
pub const MAX_PROFILE_BYTES: usize = 4 << 20;

/// What to do with a PNG colour profile that inflates past [`MAX_PROFILE_BYTES`] or is corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfilePolicy {
    /// Refuse the photo (an upload: the client hears why).
    Refuse,
    /// Drop the profile and keep the photo (a photo already stored).
    Drop,
}

/// Returns the photo's bytes without metadata (see the module's doc), in the same format.
pub fn strip(
    bytes: &[u8],
    format: PhotoFormat,
    profiles: ProfilePolicy,
) -> Result<Vec<u8>, ImagingError> {
    let mut out = Vec::with_capacity(bytes.len());
    match format {
        PhotoFormat::Jpeg => strip_jpeg(bytes, &mut out)?,
        PhotoFormat::Png => strip_png(bytes, &mut out, profiles)?,
        PhotoFormat::Webp => strip_webp(bytes, &mut out)?,
    }
    Ok(out)
}

fn malformed(what: &str) -> ImagingError {
    ImagingError::Decode(what.to_owned())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

// ---- EXIF (TIFF) ----------------------------------------------------------------------------

/// The orientation tag (0x0112) of IFD0 of a TIFF-structured EXIF block, when it says to rotate
/// or flip (2..=8); `None` for upright, absent or unreadable.
pub fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    let little = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    // Entries past the end are not read: the count cannot make this loop longer than the block.
    let count = usize::from(u16_at(ifd)?).min(tiff.len() / 12);
    for k in 0..count {
        let entry = ifd.checked_add(2 + 12 * k)?;
        if u16_at(entry)? != 0x0112 {
            continue;
        }
        // SHORT, one value, stored in the entry's first two value bytes.
        if u16_at(entry + 2)? != 3 || u32_at(entry + 4)? != 1 {
            return None;
        }
        let value = u16_at(entry + 8)?;
        return (2..=8).contains(&value).then_some(value);
    }
    None
}

/// A TIFF block with one IFD holding only the orientation tag.
fn minimal_exif(orientation: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(26);
    t.extend_from_slice(b"MM\0\x2a");
    t.extend_from_slice(&8u32.to_be_bytes());
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes());
    t
}

// ---- JPEG -----------------------------------------------------------------------------------

/// Reads the marker at `i` (after any fill bytes): the marker and the position after it.
fn jpeg_marker(b: &[u8], mut i: usize) -> Result<(u8, usize), ImagingError> {
    if b.get(i) != Some(&0xFF) {
        return Err(malformed("the JPEG has bytes where a marker should be"));
    }
    while b.get(i) == Some(&0xFF) {
        i += 1;
    }
    let marker = *b
        .get(i)
        .ok_or_else(|| malformed("the JPEG ends before its image data"))?;
    Ok((marker, i + 1))
}

/// The payload of the segment whose length field is at `i`, and the position after it.
fn jpeg_payload(b: &[u8], i: usize) -> Result<(&[u8], usize), ImagingError> {
    let len = usize::from(be16(b, i).ok_or_else(|| malformed("the JPEG ends in a segment"))?);
    if len < 2 {
        return Err(malformed("a JPEG segment has an impossible length"));
    }
    let end = i + len;
    let payload = b
        .get(i + 2..end)
        .ok_or_else(|| malformed("the JPEG ends in a segment"))?;
    Ok((payload, end))
}

/// Markers that stand alone, without a length: restart markers and TEM.
fn standalone(marker: u8) -> bool {
    matches!(marker, 0x01 | 0xD0..=0xD7)
}

fn put_segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    // Callers pass payloads read from a segment (so under 65,534 bytes) or built here.
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The position of the next marker in entropy-coded data from `i` (stuffed `FF 00` and restart
/// markers are part of the data), or the end of the bytes.
fn entropy_end(b: &[u8], mut i: usize) -> usize {
    while let Some(offset) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
    {
        let at = i + offset;
        match b.get(at + 1) {
            None => return b.len(),
            Some(0x00 | 0xD0..=0xD7) => i = at + 2,
            Some(0xFF) => i = at + 1,
            Some(_) => return at,
        }
    }
    b.len()
}

fn strip_jpeg(b: &[u8], out: &mut Vec<u8>) -> Result<(), ImagingError> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(malformed("not a JPEG"));
    }
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut i = 2;
    let mut exif_seen = false;
    loop {
        let (marker, after) = jpeg_marker(b, i)?;
        i = after;
        match marker {
            // The image's end: whatever follows (appended images, trailers) is dropped.
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Ok(());
            }
            m if standalone(m) => out.extend_from_slice(&[0xFF, m]),
            0x00 | 0xD8 => return Err(malformed("the JPEG has a misplaced marker")),
            m => {
                let (payload, end) = jpeg_payload(b, i)?;
                i = end;
                match m {
                    0xE0 if payload.starts_with(b"JFIF\0") => put_segment(out, m, payload),
                    0xE1 => {
                        // The first EXIF block is the one decoders read the orientation from.
                        if !exif_seen && payload.starts_with(b"Exif\0\0") {
                            exif_seen = true;
                            if let Some(o) = exif_orientation(&payload[6..]) {
                                let mut exif = b"Exif\0\0".to_vec();
                                exif.extend_from_slice(&minimal_exif(o));
                                put_segment(out, 0xE1, &exif);
                            }
                        }
                    }
                    0xE2 if payload.starts_with(b"ICC_PROFILE\0") => put_segment(out, m, payload),
                    // Adobe's segment says how to turn the components into colour: the pixels
                    // need its 12 fixed bytes, nothing after them.
                    0xEE if payload.starts_with(b"Adobe") && payload.len() >= 12 => {
                        put_segment(out, m, &payload[..12]);
                    }
                    // Other application segments and comments: metadata.
                    0xE0..=0xEF | 0xFE => {}
                    _ => put_segment(out, m, payload),
                }
                if m == 0xDA {
                    let data_end = entropy_end(b, i);
                    out.extend_from_slice(&b[i..data_end]);
                    i = data_end;
                    // Cut inside the scan: passed on as it is; its decode judges the pixels.
                    if i >= b.len() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The orientation a JPEG's first EXIF block gives (2..=8), read from its header segments
/// without allocating; `None` when upright, absent or unreadable.
pub fn jpeg_orientation(b: &[u8]) -> Option<u16> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    loop {
        let (marker, after) = jpeg_marker(b, i).ok()?;
        i = after;
        if standalone(marker) {
            continue;
        }
        if matches!(marker, 0xD9 | 0xDA | 0x00 | 0xD8) {
            return None;
        }
        let (payload, end) = jpeg_payload(b, i).ok()?;
        i = end;
        if marker == 0xE1 && payload.starts_with(b"Exif\0\0") {
            return exif_orientation(&payload[6..]);
        }
    }
}

// ---- PNG ------------------------------------------------------------------------------------

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Chunks kept as they are: what the pixels and their colour need (and animation frames).
const PNG_KEPT: [&[u8; 4]; 17] = [
    b"IHDR", b"PLTE", b"IDAT", b"tRNS", b"cHRM", b"gAMA", b"sBIT", b"sRGB", b"cICP", b"mDCv",
    b"cLLi", b"bKGD", b"pHYs", b"sPLT", b"hIST", b"acTL", b"fcTL",
];

fn put_png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // Callers pass data read from a chunk (so under 2^31 bytes) or built here.
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

fn strip_png(b: &[u8], out: &mut Vec<u8>, profiles: ProfilePolicy) -> Result<(), ImagingError> {
    if !b.starts_with(PNG_SIGNATURE) {
        return Err(malformed("not a PNG"));
    }
    out.extend_from_slice(PNG_SIGNATURE);
    let mut i = PNG_SIGNATURE.len();
    let mut exif_seen = false;
    while let (Some(len), Some(kind)) = (be32(b, i), b.get(i + 4..i + 8)) {
        let kind: [u8; 4] = kind.try_into().map_err(|_| malformed("PNG chunk"))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= 0x7FFF_FFFF)
            .ok_or_else(|| malformed("a PNG chunk has an impossible length"))?;
        let data_start = i + 8;
        let chunk_end = data_start.saturating_add(len).saturating_add(4);
        let whole = chunk_end <= b.len();
        let kept = PNG_KEPT.contains(&&kind) || kind == *b"fdAT" || kind == *b"IEND";
        // Ancillary chunks have a lower-case first letter; a critical one we do not know is
        // kept (the decoder refuses it), an unknown ancillary one may hold anything: dropped.
        let critical_unknown = !kept && kind[0].is_ascii_uppercase() && &kind != b"IEND";
        if !whole {
            // Cut inside a chunk: the pixels' part is passed on, for the decode to judge.
            if kept || critical_unknown {
                out.extend_from_slice(&b[i..]);
            }
            return Ok(());
        }
        let data = &b[data_start..data_start + len];
        match &kind {
            b"IEND" => {
                out.extend_from_slice(&b[i..chunk_end]);
                return Ok(());
            }
            // The first EXIF block is the one decoders read the orientation from; others go.
            b"eXIf" if !exif_seen => {
                exif_seen = true;
                if let Some(o) = exif_orientation(data) {
                    put_png_chunk(out, b"eXIf", &minimal_exif(o));
                }
            }
            b"iCCP" => match check_png_profile(data) {
                Ok(()) => out.extend_from_slice(&b[i..chunk_end]),
                Err(e) if profiles == ProfilePolicy::Refuse => return Err(e),
                Err(_) => {}
            },
            _ if kept || critical_unknown => out.extend_from_slice(&b[i..chunk_end]),
            // tEXt, zTXt, iTXt, tIME and private chunks.
            _ => {}
        }
        i = chunk_end;
    }
    // Fewer bytes than a chunk header left: nothing a decoder could use.
    Ok(())
}

/// Checks that an `iCCP` chunk's profile inflates to at most [`MAX_PROFILE_BYTES`], inflating
/// it at most that far.
fn check_png_profile(data: &[u8]) -> Result<(), ImagingError> {
    let name_end = data
        .iter()
        .take(80)
        .position(|&c| c == 0)
        .ok_or_else(|| malformed("the PNG's colour profile has no name"))?;
    let compressed = match data.get(name_end + 1..) {
        Some([0, rest @ ..]) => rest,
        _ => return Err(malformed("the PNG's colour profile is corrupt")),
    };
    match fdeflate::decompress_to_vec_bounded(compressed, MAX_PROFILE_BYTES) {
        Ok(_) => Ok(()),
        Err(fdeflate::BoundedDecompressionError::OutputTooLarge { .. }) => {
            Err(ImagingError::MetadataTooLarge {
                what: "colour profile",
                max_mib: (MAX_PROFILE_BYTES >> 20) as u64,
            })
        }
        Err(_) => Err(malformed("the PNG's colour profile is corrupt")),
    }
}

// ---- WebP -----------------------------------------------------------------------------------

/// VP8X flags: ICC profile, EXIF, XMP.
const VP8X_ICC: u8 = 0x20;
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

fn put_riff_chunk(out: &mut Vec<u8>, id: &[u8], data: &[u8]) {
    out.extend_from_slice(id);
    // Callers pass data read from a chunk (so under 2^32 bytes) or built here.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

fn strip_webp(b: &[u8], out: &mut Vec<u8>) -> Result<(), ImagingError> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return Err(malformed("not a WebP"));
    }
    let declared = le32(b, 4).map_or(0, |s| s as usize);
    // Bytes past the RIFF's declared size are not part of the photo.
    let end = declared.saturating_add(8).min(b.len());
    let mut body = Vec::with_capacity(end);
    let mut vp8x_flags_at = None;
    let (mut has_icc, mut has_exif) = (false, false);
    let mut exif_seen = false;
    let mut i = 12;
    while i + 8 <= end {
        let id = &b[i..i + 4];
        let size = le32(b, i + 4).map_or(0, |s| s as usize);
        let data_start = i + 8;
        let data_end = data_start.saturating_add(size);
        if data_end > end {
            // Cut inside a chunk: image data is passed on for the decode to judge.
            if matches!(id, b"VP8 " | b"VP8L" | b"ALPH" | b"ANMF") {
                body.extend_from_slice(&b[i..end]);
            }
            break;
        }
        let data = &b[data_start..data_end];
        match id {
            b"VP8X" => {
                vp8x_flags_at = Some(body.len() + 8);
                put_riff_chunk(&mut body, id, data);
            }
            b"EXIF" if !exif_seen => {
                exif_seen = true;
                if let Some(o) = exif_orientation(data) {
                    has_exif = true;
                    put_riff_chunk(&mut body, id, &minimal_exif(o));
                }
            }
            b"ICCP" => {
                has_icc = true;
                put_riff_chunk(&mut body, id, data);
            }
            b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ANMF" => put_riff_chunk(&mut body, id, data),
            // XMP and unknown chunks (which decoders ignore): metadata.
            _ => {}
        }
        i = data_end.saturating_add(size % 2);
    }
    if let Some(at) = vp8x_flags_at
        && let Some(flags) = body.get_mut(at)
    {
        *flags &= !(VP8X_XMP | VP8X_EXIF | VP8X_ICC);
        if has_icc {
            *flags |= VP8X_ICC;
        }
        if has_exif {
            *flags |= VP8X_EXIF;
        }
    }
    let riff_size = u32::try_from(body.len() + 4)
        .map_err(|_| malformed("the WebP is larger than its format allows"))?;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_size.to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    Ok(())
}

#[cfg(test)]
mod tests;

//! Metadata removal on the real binary: photos uploaded with a phone's EXIF (GPS position, make,
//! model), XMP, comments and text chunks come back from `GET /v1/photos/{id}` without any of it,
//! with the same pixels and their orientation; the content identity stays the hash of the bytes
//! as uploaded (the same file sent to `/v1/embeddings` is answered from the store); and a photo
//! stored the old way, metadata and all, is cleaned by the `strip_metadata` job.

use std::io::Cursor;
use std::path::Path;

use crate::common::api::{post_report_to, report_ready};
use crate::common::process::{Service, http, http_get, split_response};
use crate::common::*;
use lookalike::imaging::{self, DecodeCaps};
use lookalike::jobs::JobPayload;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What must not come back.
const SECRETS: [&[u8]; 6] = [
    b"SECRET-MAKE",
    b"SECRET-MODEL",
    b"GPS-48.858",
    b"finder's note",
    b"xmpmeta",
    b"Photoshop 3.0",
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_clean(bytes: &[u8], what: &str) {
    for secret in SECRETS {
        assert!(
            !contains(bytes, secret),
            "{what}: {} came back",
            String::from_utf8_lossy(secret)
        );
    }
}

/// A big-endian TIFF block as a phone writes it: make, model, orientation, and a GPS IFD with
/// the latitude reference and the position's text.
fn phone_exif(orientation: u16) -> Vec<u8> {
    let strings: &[u8] = b"SECRET-MAKE\0SECRET-MODEL\0";
    let strings_at = 8 + 2 + 4 * 12 + 4;
    let gps_at = strings_at + strings.len();
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&4u16.to_be_bytes());
    for (tag, kind, count, value) in [
        (0x010Fu16, 2u16, 12u32, strings_at as u32),
        (0x0110, 2, 13, strings_at as u32 + 12),
        (0x0112, 3, 1, u32::from(orientation) << 16),
        (0x8825, 4, 1, gps_at as u32),
    ] {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&kind.to_be_bytes());
        t.extend_from_slice(&count.to_be_bytes());
        t.extend_from_slice(&value.to_be_bytes());
    }
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(strings);
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(b"GPS-48.858370N-2.294481E");
    t
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// A real photo as a phone would send it: EXIF (orientation 6), XMP, IPTC and a comment.
fn phone_jpeg() -> Vec<u8> {
    let plain = sample("rocket.jpg");
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(phone_exif(6));
    let mut out = plain[..2].to_vec();
    out.extend(jpeg_segment(0xE1, &exif));
    out.extend(jpeg_segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPS-48.858</x:xmpmeta>",
    ));
    out.extend(jpeg_segment(0xED, b"Photoshop 3.0\0SECRET-MAKE"));
    out.extend(jpeg_segment(0xFE, b"finder's note"));
    out.extend_from_slice(&plain[2..]);
    out
}

/// A real photo (a cat) as a PNG with text, a date and EXIF (orientation 8).
fn phone_png() -> Vec<u8> {
    let plain = sample("chelsea.png");
    // Signature and IHDR.
    let mut out = plain[..33].to_vec();
    out.extend(png_chunk(b"tEXt", b"Comment\0finder's note"));
    out.extend(png_chunk(
        b"iTXt",
        b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta>GPS-48.858</x:xmpmeta>",
    ));
    out.extend(png_chunk(b"tIME", &[7, 234, 12, 6, 9, 0, 0]));
    out.extend(png_chunk(b"eXIf", &phone_exif(8)));
    out.extend_from_slice(&plain[33..]);
    out
}

/// The cat as an extended WebP (VP8X) with EXIF (orientation 6) and XMP, announced by its flags.
fn phone_webp() -> Vec<u8> {
    let cat = image::load_from_memory(&sample("chelsea.png")).unwrap();
    let mut plain = Cursor::new(Vec::new());
    cat.write_to(&mut plain, image::ImageFormat::WebP).unwrap();
    let plain = plain.into_inner();
    let chunk = |id: &[u8; 4], data: &[u8]| {
        let mut out = id.to_vec();
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    };
    let mut vp8x = vec![0x08 | 0x04, 0, 0, 0];
    vp8x.extend_from_slice(&(cat.width() - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(cat.height() - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(b"VP8X", &vp8x));
    body.extend_from_slice(&plain[12..]);
    body.extend(chunk(b"EXIF", &phone_exif(6)));
    body.extend(chunk(b"XMP ", b"<x:xmpmeta>GPS-48.858</x:xmpmeta>"));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    out.extend(body);
    out
}

/// Decoded upright, at full size.
fn pixels(bytes: &[u8]) -> image::RgbImage {
    let caps = DecodeCaps {
        jpeg_dct_scaling: false,
        ..DecodeCaps::default()
    };
    imaging::decode(bytes, &caps, (1, 1)).unwrap().pixels
}

/// A GET's status, `ETag` and body.
async fn get_with_etag(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let (status, body) = split_response(&response).unwrap();
    let head = String::from_utf8_lossy(&response[..response.len() - body.len()]).to_string();
    let etag = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("etag: ")
                .or_else(|| l.strip_prefix("ETag: "))
        })
        .unwrap_or_default()
        .trim()
        .to_owned();
    (status, etag, body.to_vec())
}

async fn create_report(addr: &str, photos: &[Vec<u8>]) -> Value {
    post_report_to(addr, ("found", "cat"), photos, &[]).await
}

async fn wait_ready(addr: &str, id: &str) {
    eventually("the report's photos embedded", 120, || {
        report_ready(addr, id)
    })
    .await;
}

/// `source` of each embedding `/v1/embeddings` answers for `photo`.
async fn embedding_source(addr: &str, photo: &[u8]) -> String {
    let (content_type, body) = multipart(&[("photos", "p.jpg", "image/jpeg", photo)]);
    let (status, answer) = http(addr, "POST", "/v1/embeddings", &content_type, &body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    answer["embeddings"][0]["source"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_stored_without_metadata_with_the_same_pixels_upright() {
    let _machine = whole_machine().await;
    let url = fresh_database().await;
    let service = Service::start(&url, &temp_dir("metadata-upload"), 1).await;
    let photos = vec![phone_jpeg(), phone_png(), phone_webp()];
    for photo in &photos {
        assert!(contains(photo, b"SECRET-MAKE") && contains(photo, b"GPS-48.858"));
    }
    let report = create_report(&service.addr, &photos).await;
    for (i, dirty) in photos.iter().enumerate() {
        let listed = &report["photos"][i];
        // The identity is the hash of the bytes as uploaded.
        assert_eq!(
            listed["sha256"],
            hex::encode(Sha256::digest(dirty)),
            "{listed}"
        );
        let (status, _, stored) = get_with_etag(
            &service.addr,
            report["photo_urls"][i]["url"].as_str().unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_clean(&stored, &format!("photo {i}"));
        assert!(stored.len() < dirty.len(), "photo {i}");
        assert_eq!(listed["bytes"], stored.len(), "{listed}");
        // The same pixels, turned the same way: the orientation is kept.
        let (before, after) = (pixels(dirty), pixels(&stored));
        assert_eq!(before.dimensions(), after.dimensions(), "photo {i}");
        assert!(before == after, "photo {i}: pixels differ");
        let (w, h) = (
            listed["width"].as_u64().unwrap(),
            listed["height"].as_u64().unwrap(),
        );
        assert_eq!(
            (w as u32, h as u32),
            after.dimensions(),
            "photo {i} upright"
        );
    }
    // Turned a quarter: wider than high before, higher than wide now.
    let jpeg = image::load_from_memory(&sample("rocket.jpg")).unwrap();
    assert_eq!(
        report["photos"][0]["width"].as_u64().unwrap() as u32,
        jpeg.height()
    );
    // The same file again is answered from the store, metadata and all.
    wait_ready(&service.addr, report["id"].as_str().unwrap()).await;
    assert_eq!(embedding_source(&service.addr, &photos[0]).await, "store");
    let thumbnail = http_get(
        &service.addr,
        report["photo_urls"][0]["thumbnail_url"].as_str().unwrap(),
    )
    .await;
    assert_eq!(thumbnail.0, 200);
    assert_clean(&thumbnail.1, "thumbnail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_stored_the_old_way_is_cleaned_by_the_job_once() {
    let _machine = whole_machine().await;
    let (url, storage) = database_and_storage("metadata-legacy").await;
    let dirty = phone_jpeg();
    // Stored by this version without workers, then put back as an older version stored it:
    // the bytes as uploaded, no cleaning time.
    let report = {
        let front = Service::start(&url, &storage, 0).await;
        create_report(&front.addr, std::slice::from_ref(&dirty)).await
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let key: String = sqlx::query_scalar("SELECT storage_key FROM blobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    std::fs::write(storage.join(&key), &dirty).unwrap();
    sqlx::query("UPDATE blobs SET metadata_stripped_at = NULL, bytes = $1")
        .bind(dirty.len() as i64)
        .execute(&pool)
        .await
        .unwrap();
    let photo_url = report["photo_urls"][0]["url"].as_str().unwrap().to_owned();

    // A version with workers queues the cleaning at start and its job does it.
    let service = Service::start(&url, &storage, 1).await;
    eventually("the stored photo cleaned", 60, || async {
        let (_, _, bytes) = get_with_etag(&service.addr, &photo_url).await;
        !contains(&bytes, b"SECRET-MAKE")
    })
    .await;
    let (status, etag, stored) = get_with_etag(&service.addr, &photo_url).await;
    assert_eq!(status, 200);
    assert_clean(&stored, "cleaned photo");
    assert!(pixels(&dirty) == pixels(&stored), "pixels differ");
    assert_eq!(
        imaging::metadata::jpeg_orientation(&stored),
        Some(6),
        "orientation kept"
    );
    // The ETag changed with the bytes, so no client keeps the old copy as current.
    assert!(
        !etag.is_empty() && !etag.contains(key.rsplit('/').next().unwrap()),
        "{etag}"
    );
    let (new_key, cleaned_at, bytes): (String, Option<chrono::DateTime<chrono::Utc>>, i64) =
        sqlx::query_as("SELECT storage_key, metadata_stripped_at, bytes FROM blobs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(cleaned_at.is_some());
    assert_ne!(new_key, key);
    assert_eq!(bytes as usize, stored.len());
    eventually("the old object deleted", 30, || async {
        !Path::new(&storage.join(&key)).exists()
    })
    .await;
    // The identity was kept: the same file is answered from the store once embedded.
    wait_ready(&service.addr, report["id"].as_str().unwrap()).await;
    assert_eq!(embedding_source(&service.addr, &dirty).await, "store");
    // Another start queues nothing more: one job, done.
    drop(service);
    let _again = Service::start(&url, &storage, 1).await;
    // The start queues its jobs beside its readiness.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let jobs: Vec<(String, String)> =
        sqlx::query_as("SELECT status, dedupe_key FROM jobs WHERE kind = 'strip_metadata'")
            .fetch_all(&pool)
            .await
            .unwrap();
    // The key the start-up's SQL builds is the one the job's type builds.
    let dedupe = JobPayload::strip_metadata(&Sha256::digest(&dirty)).dedupe_key();
    assert_eq!(jobs, vec![("done".to_owned(), dedupe)]);
}

//! Decoding within its budget on the real binary: PNGs whose colour profile inflates to hundreds
//! of MiB (profile bombs) are refused at upload after a few MiB of inflating, and decoded for
//! `/v1/embeddings` without inflating it at all, the process's peak memory staying bounded; a
//! large 16-bit PNG with a rotation decodes within `--max-decode-mib` or is refused, clearly.

use std::io::Cursor;
use std::time::{Duration, Instant};

use crate::common::process::{Service, http};
use crate::common::*;
use serde_json::Value;

/// The process's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

fn encode_png(image: &image::DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A real photo (a cat) as a PNG whose colour profile (`iCCP`) inflates to `inflated` bytes of
/// zeros: a few hundred KiB on the wire.
fn profile_bomb(inflated: usize) -> Vec<u8> {
    let cat = image::load_from_memory(&sample("chelsea.png")).unwrap();
    let plain = encode_png(&cat.resize(128, 128, image::imageops::FilterType::Triangle));
    let mut iccp = b"ICC Profile\0\0".to_vec();
    let mut zlib = fdeflate::Compressor::new(Vec::new()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated / zeros.len() {
        zlib.write_data(&zeros).unwrap();
    }
    iccp.extend(zlib.finish().unwrap());
    let mut out = plain[..33].to_vec();
    out.extend(png_chunk(b"iCCP", &iccp));
    out.extend_from_slice(&plain[33..]);
    out
}

/// A `width` × `height` 16-bit RGB PNG with EXIF orientation 6 (a quarter turn).
fn deep_turned_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::ImageBuffer::from_fn(width, height, |x, y| {
        image::Rgb([(x / 64 * 1000) as u16, (y / 64 * 1000) as u16, 20_000u16])
    });
    let plain = encode_png(&image::DynamicImage::ImageRgb16(image));
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut out = plain[..33].to_vec();
    out.extend(png_chunk(b"eXIf", &tiff));
    out.extend_from_slice(&plain[33..]);
    out
}

async fn post(addr: &str, route: &str, parts: &[(&str, &str, &str, &[u8])]) -> (u16, Value) {
    let (content_type, body) = multipart(parts);
    let (status, answer) = http(addr, "POST", route, &content_type, &body)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

/// `/v1/embeddings` of one PNG; the status and the JSON answer.
async fn embed_png(service: &Service, png: &[u8]) -> (u16, Value) {
    post(
        &service.addr,
        "/v1/embeddings",
        &[("photos", "p.png", "image/png", png)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_bombs_are_refused_quickly_and_memory_stays_bounded() {
    let _machine = whole_machine().await;
    let url = fresh_database().await;
    let service = Service::start(&url, &temp_dir("profile-bombs"), 0).await;
    let bomb = profile_bomb(400 << 20);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let before = peak_rss_mib(service.pid());
    let started = Instant::now();
    let form = report_form("found", "cat", std::slice::from_ref(&bomb));
    let answers =
        futures_util::future::join_all((0..5).map(|_| post(&service.addr, "/v1/reports", &form)))
            .await;
    let took = started.elapsed();
    for (status, body) in answers {
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "image_too_large", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("colour profile"),
            "{body}"
        );
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // The search path decodes the pixels and never inflates the profile.
    let parts = [("photos", "bomb.png", "image/png", &bomb[..])];
    let answers = futures_util::future::join_all(
        (0..5).map(|_| post(&service.addr, "/v1/embeddings", &parts)),
    )
    .await;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
    }
    let after = peak_rss_mib(service.pid());
    eprintln!(
        "profile bombs: peak RSS {before} MiB before, {after} MiB after; uploads refused in {took:?}"
    );
    // Inflating each bomb would take 400 MiB; five at once passed 2 GB before.
    assert!(after < 900, "peak RSS {after} MiB (from {before} MiB)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_16_bit_png_with_a_rotation_decodes_within_its_budget_or_is_refused() {
    let _machine = whole_machine().await;
    let url = fresh_database().await;
    let service = Service::start_with(
        &url,
        &temp_dir("decode-budget"),
        0,
        &["--max-decode-mib", "40"],
        None,
    )
    .await;
    // 2400 × 1800: 13 MB of RGB8 and as much for the turn, within 40 MiB. (As 16-bit RGB, then
    // RGB8, then turned, it would have held 52 MB.)
    let fits = deep_turned_png(2400, 1800);
    let (status, body) = embed_png(&service, &fits).await;
    assert_eq!(status, 200, "{body}");
    let embedded = &body["embeddings"][0];
    assert_eq!(
        (&embedded["width"], &embedded["height"]),
        (&1800.into(), &2400.into())
    );
    // 4000 × 3000: 36 MB of RGB8 and 36 MB for the turn: refused before allocating.
    let over = deep_turned_png(4000, 3000);
    assert!(over.len() < 10 << 20, "{} bytes", over.len());
    let (status, body) = embed_png(&service, &over).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_image", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("more than the 40 MiB allowed"),
        "{message}"
    );
}

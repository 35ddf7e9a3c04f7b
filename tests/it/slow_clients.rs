//! Hostile slow clients on the real binary: connections that ask for a large photo and never
//! read are closed at the write-stall bound and counted as such (not as idle); trickled bodies,
//! a chunked one and one declaring 16 MB, hold about what they sent, not the body memory others
//! need, and are cut below the least rate; and one address cannot hold more than its share of bodies in flight, upload slots or
//! body memory while another address still gets through. Each client has a loopback address of
//! its own (127.0.0.x), as the service keys its per-address caps on the peer address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::common::api::start;
use crate::common::process::{Service, http, http_get, split_response};
use crate::common::*;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The real binary on a fresh database, with no job workers and `extra` flags.
/// 127.0.0.`n`: a client of its own.
fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A connection from `from` to the service; with `receive_buffer`, a small socket buffer, so that
/// what the client does not read stays with the server rather than in the kernel.
async fn connect_from(from: IpAddr, to: &str, receive_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to.parse().unwrap()).await.unwrap()
}

/// Reads one answer (head and a `Content-Length` body) within `limit`: its status, head and
/// JSON body; `None` if it did not come in time or the connection closed first.
async fn read_answer(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> Option<(u16, String, Value)> {
    let mut buf = Vec::new();
    tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let (status, body) = split_response(&buf)?;
                    let body = serde_json::from_slice(&body[..length]).unwrap_or(Value::Null);
                    return Some((status, head, body));
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn status(service: &Service) -> Value {
    let (code, body) = http_get(&service.addr, "/v1/status").await;
    assert_eq!(code, 200);
    serde_json::from_slice(&body).unwrap()
}

async fn metrics(service: &Service) -> String {
    let (_, body) = http_get(&service.addr, "/metrics").await;
    String::from_utf8(body).unwrap()
}

/// Polls `/v1/status` until `condition` holds (up to `seconds`); the status that satisfied it.
async fn status_when(service: &Service, seconds: u64, condition: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = status(service).await;
        if condition(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "not within {seconds} s: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PNG of noise (it does not compress): about 3 bytes a pixel.
fn noise_png(side: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_u32;
    let pixels = image::RgbImage::from_fn(side, side, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        image::Rgb([next(), next(), next()])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(pixels)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test]
async fn clients_that_do_not_read_their_answer_lose_the_connection_at_the_write_stall_bound() {
    // Its deadlines are measured: no other machine-loading test runs meanwhile.
    let _machine = whole_machine().await;
    // A keep-alive shorter than the stall bound: a connection whose answer is stuck must not
    // be taken (or counted) for an idle one.
    let service = start(
        "slow-readers",
        0,
        &["--write-stall-secs", "3", "--keep-alive-secs", "1"],
    )
    .await;
    let photo = noise_png(1024);
    assert!(photo.len() > 3_000_000, "{} bytes", photo.len());
    let (content_type, body) =
        multipart(&report_form("found", "cat", std::slice::from_ref(&photo)));
    let (code, created) = http(&service.addr, "POST", "/v1/reports", &content_type, &body)
        .await
        .unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&created));
    let created: Value = serde_json::from_slice(&created).unwrap();
    let url = created["photo_urls"][0]["url"].as_str().unwrap().to_owned();
    let ask = format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n");

    // Ten clients ask for the 3 MB photo and never read.
    const NEVER_READ: u8 = 10;
    let mut never_read = Vec::new();
    for n in 0..NEVER_READ {
        let mut stream = connect_from(loopback(20 + n), &service.addr, Some(4096)).await;
        stream.write_all(ask.as_bytes()).await.unwrap();
        never_read.push(stream);
    }
    let started = Instant::now();

    // Closed at the stall bound (3 s), counted as stalled writes and not as idle connections.
    let closed = status_when(&service, 10, |s| {
        s["connections"]["write_stalls_total"] == u64::from(NEVER_READ)
    })
    .await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(2800) && after < Duration::from_secs(6),
        "closed after {after:?} with a 3 s stall bound"
    );
    assert_eq!(closed["connections"]["idle_closed_total"], 0, "{closed}");
    for mut stream in never_read {
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the connection is closed");
        assert!(
            ended.is_err() || rest.len() < photo.len(),
            "the whole photo fit in the socket buffers: nothing stalled"
        );
    }

    let done = status(&service).await;
    assert_eq!(done["connections"]["open"], 1, "{done}");
    let text = metrics(&service).await;
    assert!(text.contains("lookalike_write_stalls_total 10"), "{text}");
    assert!(
        text.contains("lookalike_idle_connections_closed_total 0"),
        "{text}"
    );
}

/// The first step of body memory a body reserves (`body::METER_STEP`).
const STEP: u64 = 256 << 10;

/// The start of a multipart body whose photo part never ends.
const PREAMBLE: &str = "--x\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n";

/// Sends a request head and `first` bytes of its body from `from`, then a byte every `every`
/// (or nothing more with `None`) in a task of its own; the connection's read half.
async fn trickle(
    service: &Service,
    from: IpAddr,
    head: String,
    first: &[u8],
    every: Option<Duration>,
    chunked: bool,
) -> (tokio::net::tcp::OwnedReadHalf, tokio::task::JoinHandle<()>) {
    let stream = connect_from(from, &service.addr, None).await;
    let (read, mut write) = stream.into_split();
    let frame = move |data: &[u8]| -> Vec<u8> {
        if chunked {
            [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
        } else {
            data.to_vec()
        }
    };
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(&frame(first)).await.unwrap();
    let task = tokio::spawn(async move {
        let Some(every) = every else {
            // Holds the connection open, sending nothing, until aborted.
            tokio::time::sleep(Duration::from_secs(600)).await;
            drop(write);
            return;
        };
        loop {
            tokio::time::sleep(every).await;
            if write.write_all(&frame(b"z")).await.is_err() {
                return;
            }
        }
    });
    (read, task)
}

fn post_head(path: &str, length: Option<u64>) -> String {
    let framing = match length {
        Some(length) => format!("Content-Length: {length}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n{framing}\r\n\r\n"
    )
}

/// A body of `length` bytes declared to `path` from 127.0.0.`from`: its preamble sent, then
/// nothing more.
async fn stalled(
    service: &Service,
    from: u8,
    path: &str,
    length: u64,
) -> (tokio::net::tcp::OwnedReadHalf, tokio::task::JoinHandle<()>) {
    let head = post_head(path, Some(length));
    trickle(
        service,
        loopback(from),
        head,
        PREAMBLE.as_bytes(),
        None,
        false,
    )
    .await
}

#[tokio::test]
async fn trickled_bodies_leave_the_body_memory_to_others_and_are_cut_below_the_least_rate() {
    let _machine = whole_machine().await;
    // The defaults: a least rate of 1 KiB/s over 10 s, 96 MiB of body memory.
    let service = start("slow-trickle", 0, &[]).await;
    let every = Some(Duration::from_secs(2));
    // A chunked /v1/embeddings (its route allows 80 MiB) and a report declaring 16 MB, each a
    // byte every 2 s, from two addresses.
    let (mut chunked, chunked_task) = trickle(
        &service,
        loopback(2),
        post_head("/v1/embeddings", None),
        PREAMBLE.as_bytes(),
        every,
        true,
    )
    .await;
    let (content_type, report) = multipart(&report_form("lost", "dog", &[vec![b'z'; 16_000_000]]));
    let head = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        report.len()
    );
    let (mut declared, declared_task) =
        trickle(&service, loopback(3), head, &report[..300], every, false).await;
    let started = Instant::now();

    // Each holds about what it sent, a first step of 256 KiB: not the chunked route's 80 MiB,
    // nor the 16 MB the report declares.
    let held = status_when(&service, 5, |s| {
        s["body_memory"]["reserved_bytes"].as_u64() >= Some(2 * STEP)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reserved = status(&service).await["body_memory"]["reserved_bytes"].as_u64();
    assert_eq!(reserved, Some(2 * STEP), "{held}");

    // Other clients' searches are answered meanwhile, and a chunked body that arrives at a
    // normal pace is served.
    let photo = distinct_photos(1, 320).remove(0);
    let (content_type, search) = multipart(&[("photo", "q.png", "image/png", &photo)]);
    for i in 0..8 {
        let (code, body) = http(&service.addr, "POST", "/v1/search", &content_type, &search)
            .await
            .unwrap();
        assert_eq!(code, 200, "search {i}: {}", String::from_utf8_lossy(&body));
    }
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the searches took {:?}: the tricklers may have been cut meanwhile",
        started.elapsed()
    );
    let (content_type, photos) = multipart(&[("photos", "p.png", "image/png", &photo)]);
    let mut stream = connect_from(loopback(4), &service.addr, None).await;
    let boundary = content_type.split("boundary=").nth(1).unwrap().to_owned();
    stream
        .write_all(
            post_head("/v1/embeddings", None)
                .replace("boundary=x", &format!("boundary={boundary}"))
                .as_bytes(),
        )
        .await
        .unwrap();
    for part in photos.chunks(4096) {
        let framed = [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat();
        stream.write_all(&framed).await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let (code, _, body) = read_answer(&mut stream, Duration::from_secs(30))
        .await
        .expect("an answer to the chunked embeddings");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["embeddings"].as_array().map(Vec::len), Some(1));

    // Both tricklers: 408 at the end of the first 10 s window, well before the 60 s deadline.
    for (name, read) in [("chunked", &mut chunked), ("declared", &mut declared)] {
        let (code, _, body) = read_answer(read, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("no answer to the {name} trickler"));
        assert_eq!(code, 408, "{name}: {body}");
        assert_eq!(body["code"], "body_timeout", "{name}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("least rate"),
            "{name}: {body}"
        );
    }
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(14),
        "cut after {after:?}, with a 10 s window"
    );
    chunked_task.abort();
    declared_task.abort();
    let done = status_when(&service, 5, |s| s["body_memory"]["reserved_bytes"] == 0).await;
    assert_eq!(done["connections"]["body_too_slow_total"], 2, "{done}");
    assert_eq!(done["connections"]["body_timeouts_total"], 0, "{done}");
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_while_another_gets_through() {
    let _machine = whole_machine().await;
    let service = start(
        "slow-caps",
        0,
        &[
            "--max-bodies-per-address",
            "2",
            "--max-uploads-per-address",
            "1",
            "--body-memory-per-address-mib",
            "4",
            // The holders below send nothing more: no rate or pause ends them during the test.
            "--body-min-bytes-per-sec",
            "0",
            "--body-idle-timeout-secs",
            "120",
        ],
    )
    .await;
    let mut holders = Vec::new();
    let mut hold = async |from: u8, path: &str, length: u64| {
        let held = stalled(&service, from, path, length).await;
        holders.push(held);
    };
    // 127.0.0.5 holds two bodies in flight, 127.0.0.6 a body declaring 3 MB (its share of the
    // memory, though the budget holds only its first step), 127.0.0.7 an upload slot.
    hold(5, "/v1/embeddings", 100_000).await;
    hold(5, "/v1/embeddings", 100_000).await;
    hold(6, "/v1/embeddings", 3_000_000).await;
    hold(7, "/v1/reports", 100_000).await;
    status_when(&service, 10, |s| {
        // Two and one bodies of 98 KiB, and the 3 MB one's first step.
        s["body_memory"]["reserved_bytes"].as_u64() >= Some(3 * 100_352 + STEP)
            && s["uploads"]["in_use"] == 1
    })
    .await;

    // One more of each from the same address: 429 at once, with the share it holds.
    for (from, path, length, reason) in [
        (5, "/v1/search", 100_000, "bodies"),
        (6, "/v1/embeddings", 3_000_000, "body_memory"),
        (7, "/v1/reports", 100_000, "upload"),
    ] {
        let (mut read, task) = stalled(&service, from, path, length).await;
        let (code, head, body) = read_answer(&mut read, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("no answer at once from {path} of 127.0.0.{from}"));
        task.abort();
        assert_eq!(code, 429, "{path}: {body}");
        assert_eq!(body["code"], "concurrency_limited", "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        assert!(head.contains("retry-after:"), "{head}");
    }

    // Another address still searches and uploads.
    let photos = distinct_photos(2, 320);
    let mut ok = Vec::new();
    for (path, parts) in [
        (
            "/v1/search",
            vec![("photo", "q.png", "image/png", &photos[0][..])],
        ),
        ("/v1/reports", report_form("found", "dog", &photos[1..])),
    ] {
        let (content_type, body) = multipart(&parts);
        let mut stream = connect_from(loopback(8), &service.addr, None).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let (code, _, answer) = read_answer(&mut stream, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no answer from {path}"));
        ok.push((path, code, answer));
    }
    assert_eq!(ok[0].1, 200, "{:?}", ok[0]);
    assert_eq!(ok[1].1, 201, "{:?}", ok[1]);

    let text = metrics(&service).await;
    for line in [
        "lookalike_bodies_per_address_rejections_total 1",
        "lookalike_body_memory_per_address_rejections_total 1",
        "lookalike_upload_per_address_rejections_total{limit=\"upload\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in {text}");
    }
    // Everything the holders took is given back when they go.
    for (_, task) in &holders {
        task.abort();
    }
    drop(holders);
    let done = status_when(&service, 10, |s| {
        s["body_memory"]["reserved_bytes"] == 0 && s["uploads"]["in_use"] == 0
    })
    .await;
    assert_eq!(done["uploads"]["per_address_rejected_total"], 1, "{done}");
}

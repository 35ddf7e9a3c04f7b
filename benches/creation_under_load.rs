//! Is a report answered at once, also while the model is saturated? In one run:
//!
//!   cargo bench --bench creation_under_load -- [--creators 10] [--embedders 20] [--seconds 15]
//!                                               [--binary target/release/lookalike]
//!                                               [--one-address true] [--repeat-photos true]
//!                                               [--rate 50]
//!
//! 1. `--creators` clients create reports with 3 MP JPEGs (a new photo each: a comment segment
//!    numbers the bytes, so that every report is a photo the service has never seen, as in
//!    production) for `--seconds`: the creation latency on a quiet service. Each creator is
//!    another loopback address (127.0.0.2, 127.0.0.3, ...), as distinct people are: the
//!    per-address rows of the open service's daily limit are then each updated by one creator,
//!    not by all. `--one-address true` sends them all from 127.0.0.1, `--repeat-photos true`
//!    cycles through 10 photos per creator (a repeat is answered without writing its bytes or
//!    queueing its embedding again);
//! 2. the same while `--embedders` other clients keep `POST /v1/embeddings` busy with 12 MP
//!    phone-like JPEGs (3 MB, quality 92, sensor noise): the gate saturated (they start 2 s
//!    before the creators, so that the gate is full when the first report comes).
//!
//! The creators are a closed loop by default (each sends its next report when the last is
//! answered: the latency at the most reports the service takes a second, which Little's law ties
//! to the throughput). `--rate R` makes them an open loop at R reports a second in all (each
//! creator on a schedule, latency counted from when its report was due): the latency people see
//! at a given load.
//!
//! Over a fresh database (dropped at the end). By default the service runs in-process with no
//! job workers (a report's embedding is not part of its creation). With `--binary`, that binary
//! serves with its defaults, job workers included (the reports' own embeddings add to the load,
//! as in production); only the per-address limits that a load from one address trips are lifted.

mod support;

use std::sync::Arc;

use lookalike::config::GateConfig;
use support::http::{
    NextRequest, drive, drive_each, get_status, multipart, post_request, start_server,
};

/// The service the bench drives: in-process, or a child process of `--binary`.
enum Served {
    InProcess(tokio::sync::oneshot::Sender<()>),
    Child(std::process::Child),
}

impl Served {
    fn stop(self) {
        match self {
            Served::InProcess(stop) => {
                let _ = stop.send(());
            }
            Served::Child(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts `binary serve` over `database_url` with its defaults, except the per-address limits
/// (every client of the bench is 127.0.0.1), and waits until it is ready.
async fn start_binary(binary: &str, database_url: &str) -> (String, Served) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(binary)
        .current_dir(support::repo(""))
        .args(["serve", "--listen", &addr])
        .env("DATABASE_URL", database_url)
        .env("LOOKALIKE_STORAGE_DIR", support::http::storage_dir())
        .env("LOOKALIKE_LOG", "warn")
        .env("LOOKALIKE_RATE_UPLOADS_PER_ADDRESS", "100000/s")
        .env("LOOKALIKE_RATE_SEARCHES_PER_ADDRESS", "100000/s")
        .env("LOOKALIKE_MAX_BODIES_PER_ADDRESS", "0")
        .env("LOOKALIKE_MAX_UPLOADS_PER_ADDRESS", "0")
        .env("LOOKALIKE_BODY_MEMORY_PER_ADDRESS_MIB", "0")
        .env(
            "LOOKALIKE_OPEN_UPLOAD_BYTES_PER_DAY",
            (1u64 << 40).to_string(),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the service binary");
    let served = Served::Child(child);
    for _ in 0..300 {
        if get_status(&addr, "/readyz").await == Some(200) {
            return (addr, served);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    served.stop();
    panic!("the service did not become ready within 60 s");
}

/// `count` distinct 3 MP phone-like JPEGs (quality 90, a little grain: another seed, other bytes).
fn report_photos(count: usize) -> Vec<Vec<u8>> {
    support::phone_photos(2000, 1500, 90, 2, count as u32)
}

/// `jpeg` with a comment segment after its start marker naming `tag`: other bytes (another
/// content hash), the same pixels.
fn numbered(jpeg: &[u8], tag: &str) -> Vec<u8> {
    let text = format!("lookalike bench {tag}");
    let length = u16::try_from(text.len() + 2).expect("a short comment");
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn main() {
    let creators: usize = support::arg("--creators", 10);
    let embedders: usize = support::arg("--embedders", 20);
    let seconds: u64 = support::arg("--seconds", 15);
    let binary: String = support::arg("--binary", String::new());
    let one_address: bool = support::arg("--one-address", false);
    let repeat_photos: bool = support::arg("--repeat-photos", false);
    let rate: f64 = support::arg("--rate", 0.0);
    let rate = (rate > 0.0).then_some(rate);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let db = support::BenchDatabase::create("creation").await;
        let url = db.url.clone();
        let (addr, served) = if binary.is_empty() {
            let (addr, stop, _state) = start_server(GateConfig::default(), Some(url)).await;
            (addr, Served::InProcess(stop))
        } else {
            println!("service: {binary} with its defaults (job workers on)");
            start_binary(&binary, &url).await
        };

        // Ten pictures per creator and phase (with --repeat-photos, then they repeat: a repeat is
        // still checked, only its bytes are not written again).
        let reports = report_photos(2 * creators * 10);
        let phone = support::phone_photos(4000, 3000, 92, 10, 4);
        println!(
            "photos: reports {:.2} MB (3 MP), embeddings {:.2} MB (12 MP, q92, noise)",
            reports[0].len() as f64 / 1e6,
            phone[0].len() as f64 / 1e6
        );
        let fields = [("kind", "found"), ("species", "dog"), ("title", "Found dog")];
        // Creator i's n-th report: a photo of its share of `photos`, numbered (new bytes) unless
        // photos repeat.
        let creations = |phase: &'static str, photos: &[Vec<u8>]| -> Arc<NextRequest> {
            let photos: Vec<Vec<u8>> = photos.to_vec();
            let addr = addr.clone();
            Arc::new(move |client, n| {
                let photo = &photos[(client + n * creators) % photos.len()];
                let (content_type, body) = if repeat_photos {
                    multipart(&fields, &[photo])
                } else {
                    let photo = numbered(photo, &format!("{phase} {client} {n}"));
                    multipart(&fields, &[&photo])
                };
                post_request(&addr, "/v1/reports", &content_type, &body)
            })
        };
        let source = |client: usize| {
            (!one_address).then(|| {
                std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2 + (client % 250) as u8))
            })
        };
        let (quiet, busy) = reports.split_at(reports.len() / 2);
        println!(
            "creators: {}, {}",
            if one_address {
                "all from 127.0.0.1"
            } else {
                "each from its own address (127.0.0.2, ...)"
            },
            if repeat_photos {
                "10 photos each, cycling"
            } else {
                "a photo never sent before in each report"
            }
        );

        match rate {
            Some(r) => println!(
                "creators send {r} reports a second in all, on a schedule (open loop: latency from when each was due)"
            ),
            None => println!("creators send each report as soon as the last is answered (closed loop)"),
        }
        let alone = drive_each(
            &addr,
            creators,
            seconds,
            source,
            rate,
            creations("quiet", quiet),
        )
        .await;
        alone.print(
            &format!("report creation, {creators} clients, {seconds} s, nothing else running"),
            None,
        );

        let embeddings: Vec<_> = phone
            .iter()
            .map(|p| {
                let (content_type, body) = multipart(&[], &[p]);
                post_request(&addr, "/v1/embeddings", &content_type, &body)
            })
            .collect();
        let busy_requests = creations("busy", busy);
        let (created, embedded) = tokio::join!(
            async {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                drive_each(&addr, creators, seconds, source, rate, busy_requests).await
            },
            drive(&addr, &embeddings, embedders, seconds + 2)
        );
        created.print(
            &format!(
                "report creation, {creators} clients, {seconds} s, while {embedders} clients saturate /v1/embeddings"
            ),
            None,
        );
        embedded.print(&format!("/v1/embeddings meanwhile, {embedders} clients, 12 MP"), None);

        served.stop();
        db.drop().await;
        let _ = std::fs::remove_dir_all(support::http::storage_dir());
    });
}

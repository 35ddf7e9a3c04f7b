//! Shared test fixtures: the real model, a fresh PostgreSQL database per test, sample photos,
//! and multipart bodies. Everything comes from `make test`'s set-up (scripts/setup.sh).

pub mod api;
pub mod browser;
pub mod process;
mod reports;
pub use reports::{
    as_owner, count, create_report, create_report_body, create_report_with, execute, listed_ids,
    scalar, wait_for_jobs_done, wait_until_embedded,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use lookalike::config::{
    DEFAULT_DATABASE_URL, DatabaseConfig, GateConfig, ImagingConfig, ModelConfig, UploadConfig,
};
use lookalike::http::{AppState, router};
use lookalike::inference::{Embedder, Gate, GateSettings};
use lookalike::jobs::{JobSettings, Workers};
use lookalike::photo_store::PhotoStore;
use lookalike::service::{Parts, app_state, start_workers};
use lookalike::store::Store;
use sqlx::Connection;

/// Held by the tests that load the whole machine with service processes and time their
/// leases or latencies (crash, lifecycle, reports under load): in one test binary they would
/// otherwise overlap, and a 2 s job lease can expire under the other's load.
static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other machine-loading test runs; hold the guard for the whole test.
pub async fn whole_machine() -> tokio::sync::MutexGuard<'static, ()> {
    MACHINE.lock().await
}

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The model and runtime as `make test` sets them up.
pub fn model_config() -> ModelConfig {
    ModelConfig::on_cpu(
        repo("models/efficientnet_lite0.onnx"),
        repo(".cache/onnxruntime-1.32.0/onnxruntime/capi/libonnxruntime.so.1.32.0"),
        0,
    )
}

/// The real model, loaded once per test binary, with `sessions` sessions (the first caller decides).
pub fn embedder() -> Arc<Embedder> {
    static EMBEDDER: OnceLock<Arc<Embedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let m = model_config();
            let embedder = Embedder::load(&m.ort_library, &m.path, 2, 1).unwrap_or_else(|e| {
                panic!("loading the model (run `make test`, which sets it up): {e}")
            });
            Arc::new(embedder)
        })
        .clone()
}

/// A gate over the shared model.
pub fn gate(settings: GateSettings) -> Gate {
    Gate::new(embedder(), settings)
}

/// A gate over the shared model with the animal detector the set-up builds in front (what
/// `serve --detector true` runs): a model of its own to the store.
pub fn detector_gate(settings: GateSettings) -> Gate {
    let m = model_config();
    let detector = lookalike::inference::detector::Detector::load(
        &m.ort_library,
        &repo("models/nanodet_224_int8.onnx"),
        settings.permits,
        1,
    )
    .unwrap_or_else(|e| panic!("loading the detector (run `make test`, which sets it up): {e}"));
    let runner = lookalike::inference::DetectingRunner::new(
        embedder(),
        detector,
        (
            lookalike::config::DEFAULT_DETECTOR_MIN_SCORE,
            lookalike::config::DEFAULT_DETECTOR_FULL_SCORE,
        ),
    )
    .unwrap();
    Gate::new(Arc::new(runner), settings)
}

/// Gate settings for tests: generous limits unless a test narrows them.
pub fn gate_settings(permits: usize) -> GateSettings {
    GateSettings {
        permits,
        max_batch: 1,
        max_waiters: [1000, 1000],
        max_wait: [
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(60),
        ],
    }
}

/// A sample photo from scikit-image's data (extracted by scripts/setup-samples.sh).
pub fn sample(name: &str) -> Vec<u8> {
    let path = repo(".cache/samples").join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `make test`, which extracts the samples)",
            path.display()
        )
    })
}

/// The database URL tests use: `DATABASE_URL`, or the local cluster of scripts/pg.sh.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// Database settings pointing at `url`.
pub fn database_config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        url,
        max_connections: 8,
        connect_retry_secs: 5,
        ..DatabaseConfig::default()
    }
}

/// A fresh, empty database of its own (dropped by later runs once it is an hour old); its URL.
pub async fn fresh_database() -> String {
    let admin_url = with_database(&database_url(), "postgres");
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("connecting to {admin_url} (run `make test`, which starts PostgreSQL): {e}")
        });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    drop_stale_databases(&mut admin, now).await;
    let name = format!("lookalike_test_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    with_database(&database_url(), &name)
}

/// A fresh database of its own (its URL) and a fresh photo folder named after `what`, for
/// service processes that share both.
pub async fn database_and_storage(what: &str) -> (String, PathBuf) {
    (fresh_database().await, temp_dir(what))
}

/// `n` found dog reports of one stored photo each, for tests that write the photos' vectors
/// themselves: report `i` (1..=n) has id `md5(i)` and its photo the hash `sha256(i)`; `tenant` is
/// an SQL expression over `n` giving report `n`'s tenant (`NULL`: none).
pub async fn seed_photo_rows(pool: &sqlx::PgPool, n: i32, tenant: &str) {
    for sql in [
        format!(
            "INSERT INTO reports (id, kind, species, title, owner_token_hash, tenant_id)
             SELECT md5(n::text)::uuid, 'found', 'dog', 'report ' || n, '\\x00'::bytea, {tenant}
             FROM generate_series(1, $1) n"
        ),
        "INSERT INTO blobs (sha256, storage_key, thumbnail_key, format, width, height, bytes)
         SELECT sha256(n::text::bytea), 'photo ' || n, 'thumbnail ' || n, 'png', 1, 1, 1
         FROM generate_series(1, $1) n"
            .to_owned(),
        "INSERT INTO photos (id, report_id, position, sha256)
         SELECT gen_random_uuid(), md5(n::text)::uuid, 0, sha256(n::text::bytea)
         FROM generate_series(1, $1) n"
            .to_owned(),
    ] {
        sqlx::query(&sql).bind(n).execute(pool).await.unwrap();
    }
}

/// A fresh, migrated database of its own.
pub async fn fresh_store() -> Store {
    let store = Store::connect(&database_config(fresh_database().await))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn drop_stale_databases(admin: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'lookalike_test_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// Default imaging settings.
pub fn imaging_config() -> ImagingConfig {
    ImagingConfig {
        decode_permits: 2,
        ..ImagingConfig::default()
    }
}

/// A test service: router, state, and where its photos are stored.
pub struct TestApp {
    /// The HTTP router.
    pub router: axum::Router,
    /// Its state.
    pub state: AppState,
    /// The photo store.
    pub photo_store: PhotoStore,
    /// The photo store's folder.
    pub storage_dir: PathBuf,
    /// The model's id.
    pub model_id: i32,
}

impl TestApp {
    /// Starts job workers for this app (the test decides when).
    pub fn start_workers(&mut self, settings: JobSettings) -> Workers {
        let workers = start_workers(
            &mut self.state,
            self.photo_store.clone(),
            self.model_id,
            settings,
        )
        .expect("at least one worker");
        self.router = router(self.state.clone());
        workers
    }
}

/// Fast job settings for tests.
pub fn job_settings(workers: usize) -> JobSettings {
    JobSettings {
        workers,
        lease: std::time::Duration::from_secs(30),
        poll: std::time::Duration::from_millis(200),
        backoff: std::time::Duration::from_millis(20),
        backoff_max: std::time::Duration::from_millis(200),
    }
}

/// The parts over a store, with photos in a fresh temporary folder.
pub async fn parts(store: Store, settings: GateSettings) -> (Parts, PathBuf) {
    let dir = temp_dir("storage");
    (parts_with(store, gate(settings), &dir).await, dir)
}

/// The parts over a store and `gate`, with photos in `dir` (the gate's model registered).
pub async fn parts_with(store: Store, gate: Gate, dir: &Path) -> Parts {
    let photo_store = PhotoStore::local(dir).unwrap();
    let model_id = store
        .models()
        .register(gate.model().manifest())
        .await
        .unwrap();
    Parts {
        store,
        gate,
        photo_store,
        model_id,
    }
}

/// The HTTP app over a fresh database and the real model (no job workers unless started).
pub async fn app(settings: GateSettings, uploads: UploadConfig) -> TestApp {
    app_on(fresh_store().await, settings, uploads).await
}

/// The HTTP app over `store` and the real model (no job workers unless started).
pub async fn app_on(store: Store, settings: GateSettings, uploads: UploadConfig) -> TestApp {
    let (parts, storage_dir) = parts(store, settings).await;
    app_of(parts, storage_dir, &uploads)
}

/// The HTTP app over `parts`, whose photos are in `storage_dir`.
pub fn app_of(parts: Parts, storage_dir: PathBuf, uploads: &UploadConfig) -> TestApp {
    let (photo_store, model_id) = (parts.photo_store.clone(), parts.model_id);
    let state = app_state(
        parts,
        &imaging_config(),
        uploads,
        &lookalike::config::SearchConfig::default(),
        3,
    );
    TestApp {
        router: router(state.clone()),
        state,
        photo_store,
        storage_dir,
        model_id,
    }
}

/// The keys of the objects in a local photo store, sorted.
pub fn stored_objects(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(key) = path.strip_prefix(root) {
                out.push(key.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Sends a request to the router and returns status, headers and the raw body.
pub async fn send_raw(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// A port free on 127.0.0.1 now (for a child process to listen on).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A fresh temporary folder.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lookalike-test-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Default upload limits.
pub fn uploads() -> UploadConfig {
    UploadConfig::default()
}

/// Gate defaults from the configuration, as `serve` would use them.
pub fn default_gate_settings() -> GateSettings {
    GateSettings::from_config(&GateConfig {
        max_batch: 4,
        ..GateConfig::default()
    })
}

/// One multipart part: (field, filename — empty for a text field —, content type, bytes).
pub type Part<'a> = (&'a str, &'a str, &'a str, &'a [u8]);

/// A multipart/form-data body: `(field, filename, content type, bytes)` parts.
pub fn multipart(parts: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "lookalike-test-boundary-7f3a9c";
    let mut body = Vec::new();
    for (field, filename, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if filename.is_empty() {
            let head = format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n");
            body.extend_from_slice(head.as_bytes());
        } else {
            let head = format!(
                "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            );
            body.extend_from_slice(head.as_bytes());
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends a request to the router and returns status, headers and the JSON body.
pub async fn send(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (
    axum::http::StatusCode,
    axum::http::HeaderMap,
    serde_json::Value,
) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    (status, headers, json)
}

/// Asserts an error answer: its `status` is `want` and its body's `code` is `code`.
#[track_caller]
pub fn assert_refused(
    status: axum::http::StatusCode,
    body: &serde_json::Value,
    want: axum::http::StatusCode,
    code: &str,
) {
    assert_eq!(
        (status, body["code"].as_str()),
        (want, Some(code)),
        "{body}"
    );
}

/// Asserts a 422 `validation_failed` answer.
#[track_caller]
pub fn assert_invalid(status: axum::http::StatusCode, body: &serde_json::Value) {
    let invalid = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    assert_refused(status, body, invalid, "validation_failed");
}

/// The value of header `name` (which must be there, as text).
pub fn header_text<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    let value = headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"));
    value.to_str().unwrap()
}

/// A multipart POST.
pub fn post_multipart(
    uri: &str,
    parts: &[(&str, &str, &str, &[u8])],
) -> axum::http::Request<axum::body::Body> {
    let (content_type, body) = multipart(parts);
    axum::http::Request::post(uri)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap()
}

/// A GET.
pub fn get(uri: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap()
}

/// `count` distinct real photos (PNG crops of a sample photo, `side` pixels square).
pub fn distinct_photos(count: usize, side: u32) -> Vec<Vec<u8>> {
    let source = image::load_from_memory(&sample("astronaut.png"))
        .unwrap()
        .to_rgb8();
    (0..count)
        .map(|i| {
            let (x, y) = ((i % 16) as u32 * 16, (i / 16 % 16) as u32 * 16);
            let crop = image::imageops::crop_imm(&source, x, y, 256, 256).to_image();
            let mut resized =
                image::imageops::resize(&crop, side, side, image::imageops::FilterType::Triangle);
            // Past 256 crops, a marked pixel keeps them apart.
            resized.put_pixel(0, 0, image::Rgb([(i / 256) as u8, 7, 7]));
            let mut out = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(resized)
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
            out.into_inner()
        })
        .collect()
}

/// A report form with the given photos.
pub fn report_form<'a>(
    kind: &'a str,
    species: &'a str,
    photos: &'a [Vec<u8>],
) -> Vec<(&'a str, &'a str, &'a str, &'a [u8])> {
    let mut parts: Vec<(&str, &str, &str, &[u8])> = vec![
        ("kind", "", "text/plain", kind.as_bytes()),
        ("species", "", "text/plain", species.as_bytes()),
    ];
    parts.push(("title", "", "text/plain", b"Brown dog near the park"));
    for p in photos {
        parts.push(("photos", "photo.png", "image/png", p));
    }
    parts
}

/// Polls until `condition` holds (every 20 ms, up to `seconds`).
pub async fn eventually<F, Fut>(what: &str, seconds: u64, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out after {seconds} s waiting until {what}");
}

/// Edits a photo the way people's copies differ: crop to the centre 80%, halve, brighten,
/// mirror, and re-compress as a JPEG of quality 60.
pub fn edited_copy(bytes: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(bytes).unwrap();
    let (w, h) = (img.width(), img.height());
    let cropped = img.crop_imm(w / 10, h / 10, w * 8 / 10, h * 8 / 10);
    let small = cropped.resize(
        cropped.width() / 2,
        cropped.height() / 2,
        image::imageops::FilterType::Triangle,
    );
    let edited = image::DynamicImage::ImageRgb8(small.brighten(20).fliph().to_rgb8());
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 60)
        .encode_image(&edited)
        .unwrap();
    out.into_inner()
}

/// A PNG chunk: its length, `kind`, `data` and CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let length = u32::try_from(data.len()).unwrap().to_be_bytes();
    let crc = crc32fast::hash(&[&kind[..], data].concat()).to_be_bytes();
    [&length[..], kind, data, &crc].concat()
}

/// Inserts an EXIF APP1 segment with one tag, Orientation = `orientation`, after the JPEG's SOI.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&u32::from(orientation).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let payload = [&b"Exif\0\0"[..], &tiff].concat();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

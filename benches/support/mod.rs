//! Shared bench fixtures: paths of the set-up's model, runtime and sample photos.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use lookalike::config::{
    DEFAULT_DETECTOR_FULL_SCORE, DEFAULT_DETECTOR_MIN_SCORE, ImagingConfig, ModelConfig,
};
use lookalike::inference::detector::Detector;
use lookalike::inference::{BatchRunner, DetectingRunner, Embedder, Gate, GateSettings};
use lookalike::pipeline::Pipeline;

/// The value after `name` on the command line, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The ONNX Runtime library: `LOOKALIKE_ORT_LIBRARY` (the GPU runtime, for a GPU), or the CPU one
/// installed by scripts/setup-runtime.sh.
pub fn ort_library() -> PathBuf {
    std::env::var_os("LOOKALIKE_ORT_LIBRARY").map_or_else(
        || repo(".cache/onnxruntime-1.32.0/onnxruntime/capi/libonnxruntime.so.1.32.0"),
        PathBuf::from,
    )
}

/// The model's device and its settings, from `LOOKALIKE_DEVICE`, `LOOKALIKE_CUDA_LIB_DIR` and
/// `LOOKALIKE_CUDNN_LIB_DIR` as the service reads them (the CPU when unset), and the compute
/// threads' priority from `LOOKALIKE_COMPUTE_NICE`.
pub fn model_config() -> ModelConfig {
    let mut model = ModelConfig::on_cpu(model_path(), ort_library(), 0);
    if let Ok(device) = std::env::var("LOOKALIKE_DEVICE") {
        model.device = device
            .parse()
            .expect("LOOKALIKE_DEVICE: cpu, cuda or cuda:N");
        model.gpu_memory_limit_mib = 4096;
        model.cuda_lib_dir = std::env::var_os("LOOKALIKE_CUDA_LIB_DIR").map(PathBuf::from);
        model.cudnn_lib_dir = std::env::var_os("LOOKALIKE_CUDNN_LIB_DIR").map(PathBuf::from);
        model.cuda_tf32 = std::env::var("LOOKALIKE_CUDA_TF32").map_or(true, |v| v != "false");
    }
    if let Ok(nice) = std::env::var("LOOKALIKE_COMPUTE_NICE") {
        model.compute_nice = nice.parse().expect("LOOKALIKE_COMPUTE_NICE: 0..=19");
    }
    model
}

/// The model the benches run: `LOOKALIKE_MODEL` as the service's `--model` reads it (a relative
/// path is taken from the repository root), or the fp32 model built by scripts/setup-model.sh.
/// `LOOKALIKE_MODEL=models/efficientnet_lite0_int8.onnx` runs any bench on the INT8 model.
pub fn model_path() -> PathBuf {
    std::env::var_os("LOOKALIKE_MODEL")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || repo("models/efficientnet_lite0.onnx"),
            |v| repo("").join(v),
        )
}

/// The INT8 model built by scripts/setup-model.sh (models/quantize_model.py).
pub fn int8_model_path() -> PathBuf {
    repo("models/efficientnet_lite0_int8.onnx")
}

/// Loads the model on the device of [`model_config`] with `sessions` sessions of `threads`
/// intra-op threads (on a GPU, batches up to `max_batch` are padded and warmed).
pub fn embedder_on(sessions: usize, threads: usize, max_batch: usize) -> Embedder {
    embedder_of(&model_path(), sessions, threads, max_batch)
}

/// As [`embedder_on`], for the model file at `path`.
pub fn embedder_of(path: &Path, sessions: usize, threads: usize, max_batch: usize) -> Embedder {
    let model = model_config();
    Embedder::load_on(
        &model.ort_library,
        path,
        sessions,
        threads,
        &model.device_settings(),
        max_batch,
    )
    .unwrap_or_else(|e| {
        panic!(
            "model {} (run `make bench`, which sets it up): {e}",
            path.display()
        )
    })
}

/// Loads the model with `sessions` sessions of `threads` intra-op threads.
pub fn embedder(sessions: usize, threads: usize) -> Embedder {
    embedder_on(sessions, threads, 0)
}

/// A real photo (chelsea.png) prepared as the model's input.
pub fn sample_tensor(embedder: &Embedder) -> ndarray::Array3<f32> {
    let limits = lookalike::imaging::DecodeCaps::default();
    lookalike::imaging::prepare(&sample("chelsea.png"), &embedder.preprocessing(), &limits)
        .expect("sample decodes")
        .tensor
}

/// A sample photo's bytes.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo(".cache/samples").join(name)).expect("sample photos (run `make bench`)")
}

/// A JPEG of about `megapixels` (4:3) made from a real photo, encoded as cameras and phones do
/// (quality 90, 4:2:0 chroma subsampling).
pub fn jpeg_of_megapixels(megapixels: f64) -> Vec<u8> {
    let photo = image::load_from_memory(&sample("astronaut.png")).expect("decodable sample");
    let height = (megapixels * 1e6 / (4.0 / 3.0)).sqrt().round() as u32;
    let width = height * 4 / 3;
    let resized = photo
        .resize_exact(width, height, image::imageops::FilterType::CatmullRom)
        .to_rgb8();
    camera_encoded(&resized, 90)
}

/// A phone-like 12 MP JPEG (4000 × 3000, quality 92, about 3 MB): a real photo enlarged, with
/// sensor-like noise, which makes entropy decoding cost what it costs on real camera photos.
pub fn camera_like_jpeg() -> Vec<u8> {
    phone_photo(4000, 3000, 92, 10, 12)
}

/// A phone-like JPEG: a real photo resized to `width`×`height` with sensor-like grain of up to
/// ±`noise` levels (xorshift from `seed`: another seed, other bytes), encoded as phones do.
pub fn phone_photo(width: u32, height: u32, quality: i32, noise: u8, seed: u32) -> Vec<u8> {
    grained(&phone_base(width, height), quality, noise, seed)
}

/// `count` phone-like JPEGs as [`phone_photo`] makes them with seeds `0..count`, the photo
/// resized once for all (the resize is most of the cost: hundreds of photos take minutes on a
/// busy machine otherwise).
pub fn phone_photos(width: u32, height: u32, quality: i32, noise: u8, count: u32) -> Vec<Vec<u8>> {
    let base = phone_base(width, height);
    (0..count)
        .map(|seed| grained(&base, quality, noise, seed))
        .collect()
}

/// The real photo the phone-like JPEGs are made from, at `width`×`height`.
fn phone_base(width: u32, height: u32) -> image::RgbImage {
    let source = image::load_from_memory(&sample("chelsea.png")).expect("decodable sample");
    source
        .resize_exact(width, height, image::imageops::FilterType::Triangle)
        .to_rgb8()
}

/// `base` with grain of up to ±`noise` levels from `seed`, encoded at `quality`.
fn grained(base: &image::RgbImage, quality: i32, noise: u8, seed: u32) -> Vec<u8> {
    let mut pixels = base.clone();
    let mut state = 0x9E37_79B9_u32 ^ seed;
    for value in pixels.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let delta = (state % (2 * u32::from(noise) + 1)) as i16 - i16::from(noise);
        *value = (i16::from(*value) + delta).clamp(0, 255) as u8;
    }
    camera_encoded(&pixels, quality)
}

/// JPEG as a camera writes it: 4:2:0 chroma subsampling, standard Huffman tables (the `image`
/// crate's encoder writes 4:4:4, twice the chroma data of a phone photo).
fn camera_encoded(pixels: &image::RgbImage, quality: i32) -> Vec<u8> {
    let image = turbojpeg::Image {
        pixels: pixels.as_raw().as_slice(),
        width: pixels.width() as usize,
        pitch: pixels.width() as usize * 3,
        height: pixels.height() as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, quality, turbojpeg::Subsamp::Sub2x2)
        .expect("encodable")
        .to_vec()
}

pub mod hostile;
pub mod http;
pub mod real_photos;
pub mod serve;

/// `count` distinct JPEGs (4:3, about 0.5 MP) made from a real photo.
pub fn distinct_jpegs(count: usize) -> Vec<Vec<u8>> {
    let source = image::load_from_memory(&sample("astronaut.png"))
        .expect("sample")
        .to_rgb8();
    let base = image::imageops::resize(&source, 800, 600, image::imageops::FilterType::Triangle);
    (0..count)
        .map(|i| {
            let mut img = base.clone();
            // A few pixels spell the index, so every photo (and its sha256) is different.
            for bit in 0..16 {
                let v = if (i >> bit) & 1 == 1 { 255 } else { 0 };
                img.put_pixel(bit, 0, image::Rgb([v, v, v]));
            }
            let mut out = Cursor::new(Vec::new());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&img)
                .expect("encodes");
            out.into_inner()
        })
        .collect()
}

/// A gate and a pipeline that run one photo at a time (one permit, no batching, one decode), with
/// waits long enough that a bench never sheds: what the quality benches measure through.
pub fn one_at_a_time(embedder: Embedder) -> (Gate, Pipeline) {
    one_at_a_time_of(Arc::new(embedder))
}

/// `embedder`, with the animal detector the set-up builds in front when the command line says
/// `--detector on` (the model `serve --detector true` serves).
pub fn with_detector_arg(embedder: Embedder) -> Arc<dyn BatchRunner> {
    if arg("--detector", "off".to_owned()) != "on" {
        return Arc::new(embedder);
    }
    let sessions = 1;
    let detector = Detector::load(
        &model_config().ort_library,
        &repo("models/nanodet_224_int8.onnx"),
        sessions,
        arg("--threads", 2),
    )
    .unwrap_or_else(|e| panic!("the detector (run scripts/setup-model.sh): {e}"));
    let scores = (
        arg("--detector-min-score", DEFAULT_DETECTOR_MIN_SCORE),
        arg("--detector-full-score", DEFAULT_DETECTOR_FULL_SCORE),
    );
    Arc::new(
        DetectingRunner::new(Arc::new(embedder), detector, scores).expect("a cam-colour model"),
    )
}

/// The path the recall benches measure: the model with `intra_threads` threads (`--detector
/// on`: the detector in front), one run at a time, and a runtime of 2 threads to drive it.
pub fn recall_pipeline(intra_threads: usize) -> (Gate, Pipeline, tokio::runtime::Runtime) {
    let (gate, pipeline) = one_at_a_time_of(with_detector_arg(embedder(1, intra_threads)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    (gate, pipeline, runtime)
}

/// As [`one_at_a_time`], for any model behind the gate.
pub fn one_at_a_time_of(runner: Arc<dyn BatchRunner>) -> (Gate, Pipeline) {
    let gate = Gate::new(
        runner,
        GateSettings {
            permits: 1,
            max_batch: 1,
            max_waiters: [64, 64],
            max_wait: [Duration::from_secs(600); 2],
        },
    );
    let imaging = ImagingConfig {
        decode_permits: 1,
        decode_max_waiters: 64,
        ..ImagingConfig::default()
    };
    (gate.clone(), Pipeline::new(gate, &imaging))
}

/// A throwaway database for one bench run, on `DATABASE_URL`'s cluster (the set-up's by default).
pub struct BenchDatabase {
    admin: sqlx::PgConnection,
    /// Its name, `lookalike_<what>_<pid>`.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl BenchDatabase {
    /// Creates `lookalike_<what>_<pid>` (dropping one a run of the same process id left).
    pub async fn create(what: &str) -> Self {
        use sqlx::Connection;
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| lookalike::config::DEFAULT_DATABASE_URL.to_owned());
        let (root, query) = base.split_once('?').unwrap_or((&base, ""));
        let root = root.rsplit_once('/').map_or(root, |(r, _)| r);
        let mut admin = sqlx::PgConnection::connect(&format!("{root}/postgres?{query}"))
            .await
            .expect("PostgreSQL (the bench's make target starts it)");
        let name = format!("lookalike_{what}_{}", std::process::id());
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        let url = format!("{root}/{name}?{query}");
        BenchDatabase { admin, name, url }
    }

    /// Drops it, whoever is still connected.
    pub async fn drop(mut self) {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await;
    }
}

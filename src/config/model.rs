//! The model, the runtime that runs it, the gate in front of it, and photo decoding.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::inference::{ConvSearch, Device, DeviceSettings, Precision};
use std::time::Duration;

use crate::capacity::Slots;
use crate::imaging::DecodeCaps;
use crate::inference::{Gate, GateSettings};
use crate::pipeline::Pipeline;

/// The ONNX model and the runtime that runs it.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ModelConfig {
    /// The ONNX model file; its manifest (`<stem>.manifest.json`) must sit next to it.
    #[arg(
        long = "model",
        env = "LOOKALIKE_MODEL",
        default_value = "models/efficientnet_lite0.onnx"
    )]
    pub path: PathBuf,
    /// The ONNX Runtime shared library (installed by `scripts/setup-runtime.sh`).
    #[arg(
        long,
        env = "LOOKALIKE_ORT_LIBRARY",
        default_value = ".cache/onnxruntime-1.32.0/onnxruntime/capi/libonnxruntime.so.1.32.0"
    )]
    pub ort_library: PathBuf,
    /// Threads ONNX Runtime uses inside one model run (0: the device's default: one per core on
    /// the CPU, one on a GPU).
    #[arg(
        long = "model-threads",
        env = "LOOKALIKE_MODEL_THREADS",
        default_value_t = 0
    )]
    pub intra_threads: usize,
    /// Where the model runs: `cpu`, `cuda` or `cuda:N` (a GPU needs the runtime of
    /// `scripts/setup-runtime.sh --gpu`; a GPU that cannot run the model stops the start, it
    /// never falls back to the CPU).
    #[arg(long, env = "LOOKALIKE_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// GPU memory each session's arena may take, MiB (0: no limit).
    #[arg(long, env = "LOOKALIKE_GPU_MEMORY_LIMIT_MIB", default_value_t = 4096)]
    pub gpu_memory_limit_mib: usize,
    /// How cuDNN picks convolution algorithms: exhaustive (timed once per batch size, at start),
    /// heuristic or default.
    #[arg(
        long,
        env = "LOOKALIKE_CUDA_CONV_SEARCH",
        value_enum,
        default_value_t = ConvSearch::Exhaustive
    )]
    pub cuda_conv_search: ConvSearch,
    /// TF32 tensor cores on a GPU (faster; embeddings agree with the CPU's to a cosine of about
    /// 0.999 instead of 0.9999).
    #[arg(
        long,
        env = "LOOKALIKE_CUDA_TF32",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub cuda_tf32: bool,
    /// Folder of the CUDA 13 libraries (libcudart.so.13, libcublas*.so.13, …), loaded before the
    /// first GPU session; unset: the system's library path.
    #[arg(long, env = "LOOKALIKE_CUDA_LIB_DIR")]
    pub cuda_lib_dir: Option<PathBuf>,
    /// Folder of the cuDNN 9 libraries (libcudnn*.so.9).
    #[arg(long, env = "LOOKALIKE_CUDNN_LIB_DIR")]
    pub cudnn_lib_dir: Option<PathBuf>,
    /// `auto`: the INT8 model next to `--model` (`x_int8.onnx`) where the CPU has VNNI/dotprod,
    /// else `--model` itself; `fp32`: `--model` as given; `int8`: the INT8 model, whatever the CPU.
    #[arg(
        long,
        env = "LOOKALIKE_PRECISION",
        value_enum,
        default_value_t = Precision::Auto
    )]
    pub precision: Precision,
    /// Nice value of the threads that decode photos and run the model (0-19; 0: the process's
    /// own priority): below the async threads, which answer the short requests first.
    #[arg(
        long,
        env = "LOOKALIKE_COMPUTE_NICE",
        default_value_t = crate::compute::DEFAULT_COMPUTE_NICE,
        value_parser = clap::value_parser!(i32).range(0..=19)
    )]
    pub compute_nice: i32,
    #[command(flatten)]
    pub detector: DetectorConfig,
}

/// The animal detector in front of the model (issue 22).
#[derive(Debug, Clone, Args, Serialize)]
pub struct DetectorConfig {
    /// Embed each photo by the crop of the animal the detector finds in it (the whole photo when
    /// it finds none): a model of its own to the store, which reindexes for it while the model
    /// without it answers. Off by default: it finds a few more animals (docs/design.md) for 0.56×
    /// the photos/s of a 3 MP photo on 2 cores, where the model runs are the bottleneck.
    #[arg(
        id = "detector",
        long = "detector",
        env = "LOOKALIKE_DETECTOR",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,
    /// The detector's ONNX file (built by scripts/setup-detector.sh); its manifest
    /// (`<stem>.manifest.json`) must sit next to it. It runs on the CPU, under the gate.
    #[arg(
        id = "detector_model",
        long = "detector-model",
        env = "LOOKALIKE_DETECTOR_MODEL",
        default_value = "models/nanodet_224_int8.onnx"
    )]
    pub path: PathBuf,
    /// The animal score (0-1) under which the photo is embedded whole. Part of the model's
    /// identity, as is `--detector-full-score`: another value is another model to the store.
    #[arg(
        id = "detector_min_score",
        long = "detector-min-score",
        env = "LOOKALIKE_DETECTOR_MIN_SCORE",
        default_value_t = DEFAULT_DETECTOR_MIN_SCORE
    )]
    pub min_score: f32,
    /// The animal score from which the animal's box alone is embedded; between the two scores
    /// the crop narrows from the whole photo to the box (an unsure box moves the vector little).
    #[arg(
        id = "detector_full_score",
        long = "detector-full-score",
        env = "LOOKALIKE_DETECTOR_FULL_SCORE",
        default_value_t = DEFAULT_DETECTOR_FULL_SCORE
    )]
    pub full_score: f32,
}

/// Measured (docs/design.md, "Finding the animal").
pub const DEFAULT_DETECTOR_MIN_SCORE: f32 = 0.1;
/// Measured (docs/design.md, "Finding the animal").
pub const DEFAULT_DETECTOR_FULL_SCORE: f32 = 0.5;

impl DetectorConfig {
    /// No detector: the model alone.
    pub fn off() -> Self {
        DetectorConfig {
            enabled: false,
            path: PathBuf::from("models/nanodet_224_int8.onnx"),
            min_score: DEFAULT_DETECTOR_MIN_SCORE,
            full_score: DEFAULT_DETECTOR_FULL_SCORE,
        }
    }
}

impl ModelConfig {
    /// The model at `path` as given (fp32: no INT8 swap) on the CPU, with `intra_threads` threads
    /// per run (0: one per core).
    pub fn on_cpu(path: PathBuf, ort_library: PathBuf, intra_threads: usize) -> Self {
        ModelConfig {
            path,
            ort_library,
            intra_threads,
            device: Device::Cpu,
            gpu_memory_limit_mib: 0,
            cuda_conv_search: ConvSearch::Exhaustive,
            cuda_tf32: true,
            cuda_lib_dir: None,
            cudnn_lib_dir: None,
            precision: Precision::Fp32,
            compute_nice: crate::compute::DEFAULT_COMPUTE_NICE,
            detector: DetectorConfig::off(),
        }
    }

    /// The device settings.
    pub fn device_settings(&self) -> DeviceSettings {
        DeviceSettings {
            device: self.device,
            memory_limit_mib: self.gpu_memory_limit_mib,
            conv_search: self.cuda_conv_search,
            tf32: self.cuda_tf32,
            cuda_lib_dir: self.cuda_lib_dir.clone(),
            cudnn_lib_dir: self.cudnn_lib_dir.clone(),
        }
    }
}

/// The inference gate: how many model runs at once, and how long and how many may wait.
#[derive(Debug, Clone, Args, Serialize)]
pub struct GateConfig {
    /// Model runs at once, one session each (0: the device's default: one per two cores on the
    /// CPU, 2 on a GPU).
    #[arg(
        long = "gate-permits",
        env = "LOOKALIKE_GATE_PERMITS",
        default_value_t = 0
    )]
    pub permits: usize,
    /// Most photos one run embeds together (micro-batching; 1 turns it off; 0: the device's
    /// default). 4 on the CPU: measured on 2 cores, about 10% more photos/s than 1 while a run
    /// stays short. 32 on a GPU, which is efficient only at large batches.
    #[arg(
        long = "gate-max-batch",
        env = "LOOKALIKE_GATE_MAX_BATCH",
        default_value_t = 0
    )]
    pub max_batch: usize,
    /// Most interactive requests in flight (decoding, waiting or running); beyond it, 503 at once.
    #[arg(
        long = "gate-max-waiters",
        env = "LOOKALIKE_GATE_MAX_WAITERS",
        default_value_t = 64
    )]
    pub max_waiters: usize,
    /// Most background requests in flight (decoding, waiting or running); beyond it, refused at once.
    #[arg(
        long = "gate-max-background-waiters",
        env = "LOOKALIKE_GATE_MAX_BACKGROUND_WAITERS",
        default_value_t = 64
    )]
    pub max_background_waiters: usize,
    /// Milliseconds an interactive request may wait for the model before 503 + Retry-After.
    #[arg(
        long = "gate-max-wait-ms",
        env = "LOOKALIKE_GATE_MAX_WAIT_MS",
        default_value_t = 2000
    )]
    pub max_wait_ms: u64,
    /// Milliseconds a background request may wait for the model.
    #[arg(
        long = "gate-max-background-wait-ms",
        env = "LOOKALIKE_GATE_MAX_BACKGROUND_WAIT_MS",
        default_value_t = 60000
    )]
    pub max_background_wait_ms: u64,
}

/// Decoding photos: limits and the bound on concurrent decodes.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ImagingConfig {
    /// Largest photo accepted, in megapixels (width × height, before any scaling).
    #[arg(long, env = "LOOKALIKE_MAX_MEGAPIXELS", default_value_t = 50.0)]
    pub max_megapixels: f64,
    /// Most memory one decode may allocate, in MiB.
    #[arg(long, env = "LOOKALIKE_MAX_DECODE_MIB", default_value_t = 512)]
    pub max_decode_mib: u64,
    /// Decode large JPEGs at a reduced DCT scale (much faster, same model input).
    #[arg(long, env = "LOOKALIKE_JPEG_DCT_SCALING", default_value_t = true, action = clap::ArgAction::Set)]
    pub jpeg_dct_scaling: bool,
    /// Photos decoded at once (0: one per core).
    #[arg(long, env = "LOOKALIKE_DECODE_PERMITS", default_value_t = 0)]
    pub decode_permits: usize,
    /// Most photos waiting to be decoded; beyond it, 503 at once.
    #[arg(long, env = "LOOKALIKE_DECODE_MAX_WAITERS", default_value_t = 128)]
    pub decode_max_waiters: usize,
}

// Conversions from this configuration, kept with it: the parts below know nothing of it.

impl GateSettings {
    /// Settings from the configuration for a model on the CPU.
    pub fn from_config(c: &GateConfig) -> Self {
        GateSettings::for_device(c, Device::Cpu)
    }

    /// Settings from the configuration for a model on `device`: zero permits or zero batch means
    /// the device's default.
    pub fn for_device(c: &GateConfig, device: Device) -> Self {
        GateSettings {
            permits: if c.permits == 0 {
                device.default_permits()
            } else {
                c.permits
            },
            max_batch: if c.max_batch == 0 {
                device.default_max_batch()
            } else {
                c.max_batch
            },
            max_waiters: [c.max_waiters, c.max_background_waiters],
            max_wait: [
                Duration::from_millis(c.max_wait_ms),
                Duration::from_millis(c.max_background_wait_ms),
            ],
        }
    }
}

impl DecodeCaps {
    /// Limits from the configuration.
    pub fn from_config(c: &ImagingConfig) -> Self {
        DecodeCaps {
            max_pixels: (c.max_megapixels * 1e6) as u64,
            max_alloc_bytes: c.max_decode_mib * 1024 * 1024,
            jpeg_dct_scaling: c.jpeg_dct_scaling,
        }
    }
}

impl Pipeline {
    /// A pipeline over `gate`, decoding under the configured limits.
    pub fn new(gate: Gate, config: &ImagingConfig) -> Self {
        let permits = if config.decode_permits == 0 {
            super::available_cores()
        } else {
            config.decode_permits
        };
        // Decoding a photo takes milliseconds; a decode wait beyond a few seconds means overload.
        let decode = Slots::new(
            "decode",
            permits,
            config.decode_max_waiters,
            Duration::from_secs(5),
        );
        Pipeline::with_decode(gate, decode, DecodeCaps::from_config(config))
    }
}

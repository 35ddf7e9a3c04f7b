//! Where the model runs: the CPU, or an NVIDIA GPU through ONNX Runtime's CUDA execution provider,
//! with the settings that differ between them (sessions, batch sizes, threads, GPU memory, the
//! convolution algorithm search) and the batch sizes a GPU runs (padded to a few, warmed at start).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

/// The device the model runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA execution provider on GPU `id`.
    Cuda {
        /// The CUDA device ordinal.
        id: i32,
    },
}

impl Device {
    /// Whether this is a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, Device::Cuda { .. })
    }

    /// Model runs at once when the configuration says 0: on the CPU one per two cores (intra-op
    /// threads use the cores inside a run); on a GPU two sessions, one computing while the next
    /// batch is formed.
    pub fn default_permits(self) -> usize {
        match self {
            Device::Cpu => (crate::capacity::available_cores() / 2).max(1),
            Device::Cuda { .. } => 2,
        }
    }

    /// Most photos per run when the configuration says 0: a GPU is efficient only at large
    /// batches; on the CPU larger batches gain little and hold photos longer.
    pub fn default_max_batch(self) -> usize {
        match self {
            Device::Cpu => 4,
            Device::Cuda { .. } => 32,
        }
    }

    /// ONNX Runtime intra-op threads per session when the configuration says 0: every core on
    /// the CPU; one on a GPU, where the cores are better spent decoding photos.
    pub fn default_threads(self) -> usize {
        match self {
            Device::Cpu => crate::capacity::available_cores(),
            Device::Cuda { .. } => 1,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda { id } => write!(f, "cuda:{id}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda { id: 0 }),
            other => other
                .strip_prefix("cuda:")
                .and_then(|id| id.parse::<i32>().ok())
                .filter(|id| *id >= 0)
                .map(|id| Device::Cuda { id })
                .ok_or_else(|| format!("`{s}` is not a device: use cpu, cuda or cuda:N")),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How cuDNN picks convolution algorithms (per input shape and session, on its first run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvSearch {
    /// Times every algorithm: the fastest runs, at the price of a search per batch size (paid at
    /// start: every batch size is warmed).
    #[default]
    Exhaustive,
    /// cuDNN's heuristics: no search, maybe slower runs.
    Heuristic,
    /// cuDNN's default algorithm.
    Default,
}

/// Everything about the device the model runs on.
#[derive(Debug, Clone, Default)]
pub struct DeviceSettings {
    /// The device.
    pub device: Device,
    /// GPU memory each session's arena may take, MiB (0: no limit).
    pub memory_limit_mib: usize,
    /// The convolution algorithm search.
    pub conv_search: ConvSearch,
    /// TF32 tensor cores for float32 convolutions and matrix products (faster; embeddings
    /// differ from the CPU's in the fourth decimal).
    pub tf32: bool,
    /// Where the CUDA 13 libraries are (preloaded before the first session; `None`: the
    /// system's library path).
    pub cuda_lib_dir: Option<PathBuf>,
    /// Where the cuDNN 9 libraries are.
    pub cudnn_lib_dir: Option<PathBuf>,
}

/// The batch sizes a GPU runs for batches of up to `max_batch`: powers of two, then `max_batch`.
/// A batch is padded to the next one, so that each shape is planned (and, with the exhaustive
/// search, timed) once, at start, instead of on a request.
pub fn batch_buckets(max_batch: usize) -> Vec<usize> {
    let max_batch = max_batch.max(1);
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|n| *n < max_batch)
        .collect();
    sizes.push(max_batch);
    sizes
}

/// The bucket a batch of `n` runs as (the smallest that holds it; `n` itself beyond the last).
pub fn bucket_for(buckets: &[usize], n: usize) -> usize {
    buckets.iter().copied().find(|b| *b >= n).unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("CUDA".parse(), Ok(Device::Cuda { id: 0 }));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda { id: 3 }));
        for bad in ["cuda:", "cuda:-1", "cuda:x", "tpu", ""] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
        assert_eq!(Device::Cuda { id: 1 }.to_string(), "cuda:1");
        assert_eq!(Device::Cpu.to_string(), "cpu");
    }

    #[test]
    fn batches_are_padded_to_a_few_sizes() {
        assert_eq!(batch_buckets(32), [1, 2, 4, 8, 16, 32]);
        assert_eq!(batch_buckets(24), [1, 2, 4, 8, 16, 24]);
        assert_eq!(batch_buckets(1), [1]);
        let buckets = batch_buckets(32);
        assert_eq!(bucket_for(&buckets, 1), 1);
        assert_eq!(bucket_for(&buckets, 3), 4);
        assert_eq!(bucket_for(&buckets, 17), 32);
        assert_eq!(bucket_for(&buckets, 40), 40);
    }
}

//! The model's numeric precision (issue 25): the INT8 model where the CPU has the dot-product
//! instructions ONNX Runtime's INT8 kernels need to be both faster and exact, fp32 elsewhere; a
//! flag (`--precision`, `LOOKALIKE_PRECISION`) overrides. The two are different models to the
//! store (their manifests differ in name and version), so switching reindexes.
//!
//! Why VNNI (x86) or dotprod (aarch64) and not plain AVX2: without VNNI, ONNX Runtime's u8×s8
//! kernels multiply with `vpmaddubsw`, whose 16-bit sums saturate on weights quantised to the
//! full int8 range (ours: symmetric per-channel, no reduced range); ONNX Runtime's quantisation
//! guide tells to quantise with `reduce_range` for such CPUs. With VNNI the sums are 32-bit, and
//! that is where the answers were checked (cosine to fp32, recall).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::device::Device;

/// The precision asked for: `auto` decides from the CPU and the files at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// INT8 when the CPU qualifies and the INT8 model sits next to the fp32 one; fp32 otherwise.
    Auto,
    /// The model file as given (`--model`).
    Fp32,
    /// The INT8 model next to the given one (`x.onnx` → `x_int8.onnx`); missing: an error.
    Int8,
}

/// The precision chosen at start: which model file runs, and why (logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecisionChoice {
    /// `Fp32` or `Int8`, never `Auto`.
    pub precision: Precision,
    /// The model file to load.
    pub model: PathBuf,
    /// Why, in words, for the start-up log.
    pub reason: String,
}

/// Suffix of an INT8 model's file stem (`models/quantize_model.py` writes `<stem>_int8.onnx`).
const INT8_SUFFIX: &str = "_int8";

/// The INT8 model that belongs to `model` (`x.onnx` → `x_int8.onnx`); an INT8 model is its own.
pub fn int8_variant(model: &Path) -> PathBuf {
    if is_int8_file(model) {
        return model.to_owned();
    }
    let stem = model.file_stem().unwrap_or_default().to_string_lossy();
    let ext = model.extension().map(|e| e.to_string_lossy().into_owned());
    let name = match ext {
        Some(ext) => format!("{stem}{INT8_SUFFIX}.{ext}"),
        None => format!("{stem}{INT8_SUFFIX}"),
    };
    model.with_file_name(name)
}

/// Whether `model` is named as an INT8 model.
fn is_int8_file(model: &Path) -> bool {
    model
        .file_stem()
        .is_some_and(|s| s.to_string_lossy().ends_with(INT8_SUFFIX))
}

/// The CPU feature that makes INT8 worth running here (`avx512vnni`, `avxvnni`, `dotprod`), if any.
pub fn int8_cpu_feature() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            return Some("avx512vnni");
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            return Some("avxvnni");
        }
        None
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            return Some("dotprod");
        }
        None
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// Decides the model file from what was asked, the device, the CPU's INT8 feature and whether the
/// INT8 file exists (pure: the facts are arguments, so every branch is testable).
pub fn choose(
    requested: Precision,
    model: &Path,
    device: Device,
    cpu_feature: Option<&str>,
    int8_exists: bool,
) -> Result<PrecisionChoice, String> {
    let int8 = int8_variant(model);
    let fp32 = |reason: String| PrecisionChoice {
        precision: Precision::Fp32,
        model: model.to_owned(),
        reason,
    };
    let int8_choice = |reason: String| PrecisionChoice {
        precision: Precision::Int8,
        model: int8.clone(),
        reason,
    };
    match requested {
        Precision::Fp32 => Ok(fp32("--precision fp32".into())),
        Precision::Int8 if int8_exists => Ok(int8_choice("--precision int8".into())),
        Precision::Int8 => Err(format!(
            "--precision int8: no INT8 model at {} (scripts/setup-model.sh builds it)",
            int8.display()
        )),
        Precision::Auto if is_int8_file(model) => Ok(int8_choice("the model given is INT8".into())),
        Precision::Auto if device.is_gpu() => Ok(fp32(format!(
            "the model runs on {device}; ONNX Runtime's INT8 kernels are CPU ones"
        ))),
        Precision::Auto => match (cpu_feature, int8_exists) {
            (None, _) => Ok(fp32(
                "this CPU has no VNNI/dotprod instructions, without which INT8 is slower or inexact"
                    .into(),
            )),
            (Some(feature), false) => Ok(fp32(format!(
                "the CPU has {feature}, but there is no INT8 model at {}",
                int8.display()
            ))),
            (Some(feature), true) => Ok(int8_choice(format!("the CPU has {feature}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP32: &str = "models/efficientnet_lite0.onnx";
    const INT8: &str = "models/efficientnet_lite0_int8.onnx";

    fn pick(
        requested: Precision,
        device: Device,
        cpu: Option<&str>,
        exists: bool,
    ) -> PrecisionChoice {
        choose(requested, Path::new(FP32), device, cpu, exists).unwrap()
    }

    #[test]
    fn the_int8_file_sits_next_to_the_fp32_one() {
        assert_eq!(int8_variant(Path::new(FP32)), Path::new(INT8));
        assert_eq!(int8_variant(Path::new(INT8)), Path::new(INT8));
        assert_eq!(int8_variant(Path::new("/m/x")), Path::new("/m/x_int8"));
    }

    #[test]
    fn auto_runs_int8_only_on_a_cpu_with_dot_products_and_the_file_present() {
        let c = pick(Precision::Auto, Device::Cpu, Some("avx512vnni"), true);
        assert_eq!(
            (c.precision, c.model.as_path()),
            (Precision::Int8, Path::new(INT8))
        );
        assert!(c.reason.contains("avx512vnni"), "{}", c.reason);
        for (cpu, exists) in [(None, true), (None, false), (Some("avxvnni"), false)] {
            let c = pick(Precision::Auto, Device::Cpu, cpu, exists);
            assert_eq!(
                (c.precision, c.model.as_path()),
                (Precision::Fp32, Path::new(FP32))
            );
        }
        let gpu = pick(
            Precision::Auto,
            Device::Cuda { id: 0 },
            Some("avx512vnni"),
            true,
        );
        assert_eq!(gpu.precision, Precision::Fp32);
        assert!(gpu.reason.contains("cuda"), "{}", gpu.reason);
    }

    #[test]
    fn a_flag_overrides_the_cpu() {
        let c = pick(Precision::Fp32, Device::Cpu, Some("avx512vnni"), true);
        assert_eq!(
            (c.precision, c.model.as_path()),
            (Precision::Fp32, Path::new(FP32))
        );
        let c = pick(Precision::Int8, Device::Cpu, None, true);
        assert_eq!(
            (c.precision, c.model.as_path()),
            (Precision::Int8, Path::new(INT8))
        );
        let missing = choose(Precision::Int8, Path::new(FP32), Device::Cpu, None, false);
        assert!(missing.unwrap_err().contains(INT8));
    }

    #[test]
    fn an_int8_model_given_runs_as_int8_under_auto() {
        let c = choose(Precision::Auto, Path::new(INT8), Device::Cpu, None, true).unwrap();
        assert_eq!(
            (c.precision, c.model.as_path()),
            (Precision::Int8, Path::new(INT8))
        );
    }
}

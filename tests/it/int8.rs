//! The INT8 model (models/efficientnet_lite0_int8.onnx, made by models/quantize_model.py) keeps
//! the fp32 model's answers: both loaded through the real `Embedder`, on real photos that were not
//! used to calibrate it (scikit-image's samples; calibration used photos from other wheels), and
//! it is another model to the store (its vectors never mix with fp32 ones).

use std::io::Cursor;
use std::sync::Arc;

use crate::common::*;
use image::DynamicImage;
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::{Embedder, ModelManifest, cosine};

/// The real photos among the samples, as the retrieval bench measures them.
#[path = "../../benches/support/real_photos.rs"]
mod real_photos;
use real_photos::REAL_PHOTOS;

fn int8_model() -> std::path::PathBuf {
    repo("models/efficientnet_lite0_int8.onnx")
}

fn int8_embedder() -> Embedder {
    let m = model_config();
    Embedder::load(&m.ort_library, &int8_model(), 1, 1).unwrap_or_else(|e| {
        panic!("loading the INT8 model (scripts/setup-model.sh builds it): {e}")
    })
}

fn jpeg_round_trip(img: &DynamicImage, quality: u8) -> DynamicImage {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&img.to_rgb8())
        .unwrap();
    image::load_from_memory(&out.into_inner()).unwrap()
}

/// Each photo as the service decodes it, plus edits of it (the retrieval bench's kinds: crops,
/// rescale, JPEG q20, brightness, flip) and its 3x3 tiles: 17 × 17 = 289 views.
fn views() -> Vec<DynamicImage> {
    let mut views = Vec::new();
    for name in REAL_PHOTOS {
        let photo = imaging::decode(&sample(name), &DecodeCaps::default(), (224, 224))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let img = DynamicImage::ImageRgb8(photo.pixels);
        let (w, h) = (img.width(), img.height());
        views.push(img.crop_imm(w / 10, h / 10, w * 8 / 10, h * 8 / 10));
        views.push(img.crop_imm(w / 5, 0, w * 6 / 10, h * 6 / 10));
        views.push(img.resize(w * 2 / 5, h * 2 / 5, image::imageops::FilterType::Triangle));
        views.push(jpeg_round_trip(&img, 20));
        views.push(img.brighten(40));
        views.push(img.brighten(-40));
        views.push(img.fliph());
        let (tw, th) = (w / 3, h / 3);
        for i in 0..9 {
            views.push(img.crop_imm((i % 3) * tw, (i / 3) * th, tw, th));
        }
        views.push(img);
    }
    views
}

fn embed_all(embedder: &Embedder, views: &[DynamicImage]) -> Vec<Vec<f32>> {
    let pre = embedder.preprocessing();
    let tensors: Vec<_> = views
        .iter()
        .map(|v| imaging::to_tensor(&v.to_rgb8(), &pre).unwrap())
        .collect();
    tensors
        .chunks(8)
        .flat_map(|chunk| {
            let batch: Vec<_> = chunk.iter().map(|t| t.view()).collect();
            embedder.embed_batch(&batch).unwrap()
        })
        .collect()
}

#[test]
fn int8_embeddings_agree_with_fp32_on_photos_it_was_not_calibrated_on() {
    let fp32: Arc<Embedder> = embedder();
    let int8 = int8_embedder();
    assert_eq!(int8.preprocessing(), fp32.preprocessing());
    let views = views();
    let (a, b) = (embed_all(&fp32, &views), embed_all(&int8, &views));
    let mut cos: Vec<f32> = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect();
    for v in &b {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "INT8 embedding norm {norm}");
    }
    cos.sort_by(f32::total_cmp);
    let n = cos.len();
    let mean = cos.iter().sum::<f32>() / n as f32;
    let (min, p5, median) = (cos[0], cos[n * 5 / 100], cos[n / 2]);
    println!(
        "int8 vs fp32 cosine over {n} views: min {min:.4} p5 {p5:.4} median {median:.4} mean {mean:.4}"
    );
    // Measured here: mean 0.998, min about 0.98 (a low-contrast microscopy tile of cell.png).
    // The issue asks for a mean of at least 0.98; 0.99 keeps a margin of 5x the measured loss.
    assert!(mean >= 0.99, "mean cosine {mean:.4} (min {min:.4})");
    // Every view within 0.05 of fp32: about 3x the measured worst case, yet failing for every
    // broken quantisation seen while building it (first try: 0.93; block 0's depthwise conv
    // quantised per tensor: 0.53).
    assert!(min >= 0.95, "min cosine {min:.4} (mean {mean:.4})");
}

#[test]
fn int8_manifest_is_another_model_with_the_same_contract() {
    let fp32 = ModelManifest::load_for(&repo("models/efficientnet_lite0.onnx")).unwrap();
    let int8 = ModelManifest::load_for(&int8_model()).unwrap();
    assert_ne!(
        (&int8.name, &int8.version),
        (&fp32.name, &fp32.version),
        "the store keys models by name and version"
    );
    assert_ne!(int8.sha256, fp32.sha256);
    assert_eq!(int8.file, "efficientnet_lite0_int8.onnx");
    assert_eq!(int8.dim, fp32.dim);
    assert_eq!(int8.preprocessing(), fp32.preprocessing());
    assert_eq!(int8.input.name, fp32.input.name);
    assert_eq!(int8.outputs.embedding, fp32.outputs.embedding);
    assert_eq!(int8.embedding_normalized, fp32.embedding_normalized);
    assert!(
        int8.version.starts_with(&fp32.version),
        "the INT8 version names the fp32 version it was made from: {}",
        int8.version
    );
}

#[tokio::test]
async fn the_store_registers_the_int8_model_apart_from_fp32() {
    let store = fresh_store().await;
    let fp32 = ModelManifest::load_for(&repo("models/efficientnet_lite0.onnx")).unwrap();
    let int8 = ModelManifest::load_for(&int8_model()).unwrap();
    let fp32_id = store.models().register(&fp32).await.unwrap();
    let int8_id = store.models().register(&int8).await.unwrap();
    assert_ne!(fp32_id, int8_id);
    assert_eq!(store.models().register(&int8).await.unwrap(), int8_id);
}

/// `serve` without `--precision` (the default, `auto`) runs the INT8 model on a CPU with VNNI or
/// dotprod (this machine's: the figures of issue 25 were measured on one) and the fp32 model
/// elsewhere: the defaults parsed as the binary parses them, loaded as `serve` loads them.
#[tokio::test]
async fn the_default_precision_serves_int8_where_the_cpu_qualifies() {
    use clap::Parser;
    use lookalike::config::{Cli, Command, GateConfig};
    use lookalike::inference::{Precision, int8_cpu_feature};

    // The defaults are relative to the repository, where the binary runs.
    std::env::set_current_dir(repo("")).unwrap();
    let cli = Cli::try_parse_from(["lookalike", "serve"]).unwrap();
    let Command::Serve(config) = cli.command else {
        panic!("not serve")
    };
    assert_eq!(config.core.model.precision, Precision::Auto);
    let resolved = lookalike::service::resolve_precision(&config.core.model).unwrap();
    let feature = int8_cpu_feature();
    println!(
        "CPU INT8 feature: {feature:?}; model {}",
        resolved.path.display()
    );
    let gate_config = GateConfig {
        permits: 1,
        ..config.core.gate.clone()
    };
    let gate = lookalike::service::load_gate(&resolved, &gate_config)
        .await
        .unwrap();
    let served = gate.model().manifest();
    // The model as the store knows it (with the animal detector when it is on, issue 22).
    assert_eq!(
        served.version,
        lookalike::service::served_manifest(&resolved)
            .unwrap()
            .version
    );
    let detector = &config.core.model.detector;
    let with_detector = |path: &std::path::Path| {
        lookalike::service::with_detector(ModelManifest::load_for(path).unwrap(), detector).unwrap()
    };
    let int8 = with_detector(&int8_model());
    let fp32 = with_detector(&repo("models/efficientnet_lite0.onnx"));
    if feature.is_some() {
        assert_eq!(resolved.precision, Precision::Int8);
        assert_eq!((&served.name, &served.version), (&int8.name, &int8.version));
    } else {
        assert_eq!(resolved.precision, Precision::Fp32);
        assert_eq!((&served.name, &served.version), (&fp32.name, &fp32.version));
    }
    // The flag overrides the CPU.
    let cli = Cli::try_parse_from(["lookalike", "serve", "--precision", "fp32"]).unwrap();
    let Command::Serve(config) = cli.command else {
        panic!("not serve")
    };
    let resolved = lookalike::service::resolve_precision(&config.core.model).unwrap();
    assert_eq!(
        resolved.path,
        std::path::Path::new("models/efficientnet_lite0.onnx")
    );
}

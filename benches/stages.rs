//! CPU time per stage of one photo's way to its embedding (issue 25, item 2: what is not
//! entropy decoding), measured as the process's CPU time (getrusage: every thread, ONNX
//! Runtime's included), so that a busy machine disturbs it little:
//!
//!   cargo bench --bench stages -- [--photo FILE] [--n 30] [--threads 0]
//!
//! Stages, each repeated `--n` times on the same photo: sha256 of the bytes; the decode at the
//! DCT scale the model's 224 px need (which scale it picks is printed); resize and tensor fill;
//! one model run (with `--threads` intra-op threads, 0: one per core, as the service; and with
//! one thread); the subject's crop and tensor; and the whole path as the service runs it (decode,
//! tensor, run, and the crop's second run when the box is under 80 % of the photo). The model is
//! the one the service picks with its defaults (INT8 where the CPU has VNNI), or `LOOKALIKE_MODEL`.
//! Without `--photo`: the 12 MP phone-like photo of issue 25 (`load --write-photos`).

mod support;

use std::time::Instant;

use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::{Embedder, crop, subject_box};
use sha2::{Digest, Sha256};

/// CPU seconds (user + system) of the whole process so far.
fn process_cpu() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes one rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs `work` `n` times (after two warm-up runs) and prints its CPU and wall ms per run.
fn stage<T>(name: &str, n: usize, mut work: impl FnMut() -> T) -> f64 {
    for _ in 0..2 {
        std::hint::black_box(work());
    }
    let (cpu0, wall0) = (process_cpu(), Instant::now());
    for _ in 0..n {
        std::hint::black_box(work());
    }
    let cpu = (process_cpu() - cpu0) * 1e3 / n as f64;
    let wall = wall0.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!("{name:<44} {cpu:7.2} CPU ms {wall:7.2} wall ms");
    cpu
}

fn main() {
    let n: usize = support::arg("--n", 30);
    let threads: usize = support::arg("--threads", 0);
    let photo = match support::arg("--photo", String::new()) {
        p if p.is_empty() => support::camera_like_jpeg(),
        p => std::fs::read(&p).expect("the photo"),
    };
    let model = if std::env::var_os("LOOKALIKE_MODEL").is_some() {
        support::model_path()
    } else if lookalike::inference::int8_cpu_feature().is_some() {
        support::int8_model_path()
    } else {
        support::model_path()
    };
    println!(
        "photo {:.2} MB, model {}, {n} runs per stage",
        photo.len() as f64 / 1e6,
        model.display()
    );
    let embedder = support::embedder_of(&model, 1, threads, 0);
    let single = support::embedder_of(&model, 1, 1, 0);
    let pre = embedder.preprocessing();
    let limits = DecodeCaps::default();
    let decoded = imaging::decode(&photo, &limits, (pre.width, pre.height)).expect("decodes");
    println!(
        "decoded {}x{} at {}x{} (DCT scale 1/{})",
        decoded.width,
        decoded.height,
        decoded.pixels.width(),
        decoded.pixels.height(),
        decoded.width / decoded.pixels.width()
    );
    let tensor = imaging::to_tensor(&decoded.pixels, &pre).expect("tensor");
    let first = &embedder.infer_batch(&[tensor.view()]).expect("runs")[0];
    let area = embedder.manifest().subject.as_ref().and_then(|s| {
        subject_box(
            &first.cam,
            s,
            decoded.pixels.width(),
            decoded.pixels.height(),
        )
    });
    println!("subject box: {area:?} (none: embedded whole, one model run)");

    let mut total = 0.0;
    total += stage("sha256 of the bytes", n, || Sha256::digest(&photo));
    let decode = stage("decode (DCT-scaled, upright)", n, || {
        imaging::decode(&photo, &limits, (pre.width, pre.height)).expect("decodes")
    });
    total += decode;
    total += stage("resize + tensor fill", n, || {
        imaging::to_tensor(&decoded.pixels, &pre).expect("tensor")
    });
    let run = |e: &Embedder| e.infer_batch(&[tensor.view()]).expect("runs");
    let model_ms = stage(&format!("model run ({threads} threads, 0: all)"), n, || {
        run(&embedder)
    });
    stage("model run (1 thread)", n, || run(&single));
    let runs = if area.is_some() { 2.0 } else { 1.0 };
    total += model_ms * runs;
    if let Some(area) = area {
        total += stage("subject crop + tensor", n, || {
            imaging::to_tensor(&crop(&decoded.pixels, area), &pre).expect("tensor")
        });
    }
    let whole = stage("the whole path (as the pipeline runs it)", n, || {
        let d = imaging::decode(&photo, &limits, (pre.width, pre.height)).expect("decodes");
        let t = imaging::to_tensor(&d.pixels, &pre).expect("tensor");
        let out = embedder.infer_batch(&[t.view()]).expect("runs");
        if let Some(area) = area {
            let t = imaging::to_tensor(&crop(&d.pixels, area), &pre).expect("tensor");
            embedder.infer_batch(&[t.view()]).expect("runs");
        }
        out
    });
    println!(
        "sum of the stages {total:.2} CPU ms; decode is {:.0} % of the whole path, the rest {:.2} ms",
        decode / whole * 100.0,
        whole - decode
    );
}

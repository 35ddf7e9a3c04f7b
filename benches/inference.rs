//! Model throughput per batch size and intra-op thread count (the bare model, no gate): the
//! configured model (`LOOKALIKE_MODEL`, else fp32) in group `model`, and on the CPU the INT8 model
//! beside it in group `model-int8`, with the same photo, threads and batches.

mod support;

use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// On the CPU, per intra-op thread count; on a GPU (`LOOKALIKE_DEVICE=cuda`, with the GPU runtime
/// in `LOOKALIKE_ORT_LIBRARY`), one thread and the batch sizes it pads to, up to 64.
fn model_throughput(c: &mut Criterion) {
    let gpu = support::model_config().device.is_gpu();
    let (threads, batches): (&[usize], &[usize]) = if gpu {
        (&[1], &[1, 2, 4, 8, 16, 32, 64])
    } else {
        (&[1, 2], &[1, 4, 8, 16])
    };
    let mut models: Vec<(&str, PathBuf)> = vec![("model", support::model_path())];
    // The INT8 model is made for the CPU's integer kernels (VNNI); on a GPU it is not compared.
    if !gpu && support::model_path() != support::int8_model_path() {
        models.push(("model-int8", support::int8_model_path()));
    }
    for (group_name, path) in models {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        for &threads in threads {
            let embedder = support::embedder_of(&path, 1, threads, batches[batches.len() - 1]);
            let tensor = support::sample_tensor(&embedder);
            for &batch in batches {
                let views: Vec<_> = (0..batch).map(|_| tensor.view()).collect();
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("{}-threads{threads}", embedder.device()), batch),
                    &views,
                    |b, views| b.iter(|| embedder.embed_batch(views).expect("model runs")),
                );
            }
        }
        group.finish();
    }
}

criterion_group!(benches, model_throughput);
criterion_main!(benches);

//! Model throughput per batch size and intra-op thread count (the bare model, no gate).

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// On the CPU, per intra-op thread count; on a GPU (`LOOKALIKE_DEVICE=cuda`, with the GPU runtime
/// in `LOOKALIKE_ORT_LIBRARY`), one thread and the batch sizes it pads to, up to 64.
fn model_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    let gpu = support::model_config().device.is_gpu();
    let (threads, batches): (&[usize], &[usize]) = if gpu {
        (&[1], &[1, 2, 4, 8, 16, 32, 64])
    } else {
        (&[1, 2], &[1, 4, 8, 16])
    };
    for &threads in threads {
        let embedder = support::embedder_on(1, threads, batches[batches.len() - 1]);
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

criterion_group!(benches, model_throughput);
criterion_main!(benches);

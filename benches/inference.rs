//! Model throughput per batch size and intra-op thread count (the bare model, no gate).

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn model_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    for threads in [1usize, 2] {
        let embedder = support::embedder(1, threads);
        let tensor = support::sample_tensor(&embedder);
        for batch in [1usize, 4, 8, 16] {
            let views: Vec<_> = (0..batch).map(|_| tensor.view()).collect();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("threads{threads}"), batch),
                &views,
                |b, views| b.iter(|| embedder.embed_batch(views).expect("model runs")),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, model_throughput);
criterion_main!(benches);

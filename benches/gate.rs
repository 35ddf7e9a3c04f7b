//! The gate's own overhead per request: the same model run called directly and through the gate.

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lookalike::inference::{Gate, GateSettings, Priority};

fn gate_overhead(c: &mut Criterion) {
    let embedder = Arc::new(support::embedder(1, 2));
    let tensor = support::sample_tensor(&embedder);
    let gate = Gate::new(
        embedder.clone(),
        GateSettings {
            permits: 1,
            max_batch: 1,
            max_waiters: [64, 64],
            max_wait: [Duration::from_secs(10); 2],
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("gate");
    group.sample_size(20);
    group.bench_function("direct", |b| {
        b.iter(|| embedder.embed_batch(&[tensor.view()]).expect("runs"))
    });
    group.bench_function("through_gate", |b| {
        b.iter(|| {
            runtime
                .block_on(gate.embed(tensor.clone(), Priority::Interactive))
                .expect("runs")
        })
    });
    group.finish();
}

criterion_group!(benches, gate_overhead);
criterion_main!(benches);

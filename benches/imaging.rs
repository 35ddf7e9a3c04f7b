//! Imaging cost per photo (decode, orient, resize, normalise) by size, with and without JPEG DCT scaling.

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::Preprocessing;

fn imaging_cost(c: &mut Criterion) {
    let pre = Preprocessing {
        width: 224,
        height: 224,
        mean: 127.0,
        std: 128.0,
    };
    let mut group = c.benchmark_group("imaging");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for megapixels in [0.5, 3.0, 12.0] {
        let jpeg = support::jpeg_of_megapixels(megapixels);
        for dct in [true, false] {
            let limits = DecodeCaps {
                jpeg_dct_scaling: dct,
                ..DecodeCaps::default()
            };
            let name = if dct { "jpeg_dct_scaled" } else { "jpeg_full" };
            group.bench_with_input(
                BenchmarkId::new(name, format!("{megapixels}MP")),
                &jpeg,
                |b, jpeg| b.iter(|| imaging::prepare(jpeg, &pre, &limits).expect("decodes")),
            );
        }
    }
    let png = support::sample("astronaut.png");
    group.bench_function("png_0.26MP", |b| {
        b.iter(|| imaging::prepare(&png, &pre, &DecodeCaps::default()).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, imaging_cost);
criterion_main!(benches);

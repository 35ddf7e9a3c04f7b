//! Imaging cost per photo (decode, orient, resize, normalise) by size, with and without JPEG DCT
//! scaling; and a report photo's imaging from upload to embedding, before and after the upload
//! stopped decoding (`report_photo`).

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

/// A report photo's imaging from upload to embedding: before, the upload decoded it to check it
/// and make its thumbnail, and its job decoded it again for the model; now the upload reads its
/// header and the job decodes once for both.
fn report_photo_cost(c: &mut Criterion) {
    let pre = Preprocessing {
        width: 224,
        height: 224,
        mean: 127.0,
        std: 128.0,
    };
    let limits = DecodeCaps::default();
    let mut group = c.benchmark_group("report_photo");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for megapixels in [3.0, 12.0] {
        let jpeg = support::jpeg_of_megapixels(megapixels);
        let size = format!("{megapixels}MP");
        group.bench_with_input(
            BenchmarkId::new("upload_decode", &size),
            &jpeg,
            |b, jpeg| b.iter(|| imaging::decode_with_thumbnail(jpeg, &limits).expect("decodes")),
        );
        group.bench_with_input(
            BenchmarkId::new("upload_header", &size),
            &jpeg,
            |b, jpeg| b.iter(|| imaging::inspect(jpeg, &limits).expect("reads")),
        );
        group.bench_with_input(BenchmarkId::new("two_decodes", &size), &jpeg, |b, jpeg| {
            b.iter(|| {
                imaging::decode_with_thumbnail(jpeg, &limits).expect("decodes");
                imaging::prepare(jpeg, &pre, &limits).expect("decodes")
            })
        });
        group.bench_with_input(
            BenchmarkId::new("header_then_one_decode", &size),
            &jpeg,
            |b, jpeg| {
                b.iter(|| {
                    imaging::inspect(jpeg, &limits).expect("reads");
                    imaging::prepare_with_thumbnail(jpeg, &pre, &limits).expect("decodes")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, imaging_cost, report_photo_cost);
criterion_main!(benches);

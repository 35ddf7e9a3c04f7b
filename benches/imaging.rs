//! Imaging cost per photo (decode, orient, resize, normalise) by size, with and without JPEG DCT
//! scaling; JPEG decoding alone, libjpeg-turbo against jpeg-decoder (the decoder before it) at the
//! scale the model needs (`jpeg_decode`); and a report photo's imaging from upload to embedding,
//! before and after the upload stopped decoding (`report_photo`).

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::Preprocessing;

/// The model's preprocessing (EfficientNet-Lite0's manifest).
const PRE: Preprocessing = Preprocessing {
    width: 224,
    height: 224,
    mean: 127.0,
    std: 128.0,
};

fn imaging_cost(c: &mut Criterion) {
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
                |b, jpeg| b.iter(|| imaging::prepare(jpeg, &PRE, &limits).expect("decodes")),
            );
        }
    }
    let png = support::sample("astronaut.png");
    group.bench_function("png_0.26MP", |b| {
        b.iter(|| imaging::prepare(&png, &PRE, &DecodeCaps::default()).expect("decodes"))
    });
    group.finish();
}

/// JPEG decoding at the model's DCT scale, per photo size: libjpeg-turbo (`imaging::decode`, with
/// orientation) against jpeg-decoder's own scaled decode, side by side in one run.
fn jpeg_decode_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("jpeg_decode");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let photos = [
        ("0.5MP", support::jpeg_of_megapixels(0.5)),
        ("3MP", support::jpeg_of_megapixels(3.0)),
        ("12MP", support::jpeg_of_megapixels(12.0)),
        ("12MP_camera_q92", support::camera_like_jpeg()),
    ];
    let limits = DecodeCaps::default();
    for (size, jpeg) in &photos {
        println!("jpeg_decode: the {size} photo is {} bytes", jpeg.len());
        group.bench_with_input(BenchmarkId::new("jpeg-decoder", size), jpeg, |b, jpeg| {
            b.iter(|| jpeg_decoder_scaled(jpeg, 224))
        });
        group.bench_with_input(BenchmarkId::new("libjpeg-turbo", size), jpeg, |b, jpeg| {
            b.iter(|| imaging::decode(jpeg, &limits, (224, 224)).expect("decodes"))
        });
    }
    group.finish();
}

/// jpeg-decoder's decode at the smallest DCT scale whose short side still covers `cover`: what
/// `imaging` did before libjpeg-turbo.
fn jpeg_decoder_scaled(jpeg: &[u8], cover: u32) -> Vec<u8> {
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(jpeg));
    decoder.read_info().expect("header");
    let info = decoder.info().expect("header");
    let short = u32::from(info.width.min(info.height));
    if short >= cover * 2 {
        let side = |len: u16| (u32::from(len) * cover).div_ceil(short) as u16;
        decoder
            .scale(side(info.width), side(info.height))
            .expect("scales");
    }
    decoder.decode().expect("decodes")
}

/// A report photo's imaging from upload to embedding: before, the upload decoded it to check it
/// and make its thumbnail, and its job decoded it again for the model; now the upload reads its
/// header and the job decodes once for both.
fn report_photo_cost(c: &mut Criterion) {
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
                imaging::prepare(jpeg, &PRE, &limits).expect("decodes")
            })
        });
        group.bench_with_input(
            BenchmarkId::new("header_then_one_decode", &size),
            &jpeg,
            |b, jpeg| {
                b.iter(|| {
                    imaging::inspect(jpeg, &limits).expect("reads");
                    imaging::prepare_with_thumbnail(jpeg, &PRE, &limits).expect("decodes")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, imaging_cost, jpeg_decode_cost, report_photo_cost);
criterion_main!(benches);

//! Retrieval quality: recall@1 and recall@5 of the original photo when searching with an edited
//! copy (crop, rescale, JPEG re-compression, brightness, small rotation, flip), over a gallery of
//! real photos padded with distractors. Exact cosine search over the model's embeddings, so this
//! measures the model and the imaging; the HNSW index's own recall is measured by `search_db`.
//! Photos go through lookalike's pipeline (src/pipeline.rs): both vectors of each run are
//! scored, the whole photo's and the embedding the service stores (the subject's, with a model
//! whose manifest names a subject method).
//!
//!   cargo bench --bench retrieval
//!   cargo bench --bench retrieval -- --detector on     # the animal detector in front (issue 22)
//!
//! Originals: scikit-image's sample photos (from its PyPI wheel). Distractors: the 3×3 tiles of
//! every original (each a ninth of a photo: other framings of real content, a hard case).

mod support;

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage};
use lookalike::inference::{Priority, cosine};
use lookalike::pipeline::Pipeline;

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encodes");
    out.into_inner()
}

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&img.to_rgb8())
        .expect("encodes");
    out.into_inner()
}

/// Rotation by `degrees` about the centre, bilinear, same size, borders filled with edge pixels.
fn rotate(img: &RgbImage, degrees: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = (c * dx + s * dy + cx).clamp(0.0, w as f32 - 1.001);
        let sy = (-s * dx + c * dy + cy).clamp(0.0, h as f32 - 1.001);
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let p = |xx: u32, yy: u32, ch: usize| f32::from(img.get_pixel(xx, yy)[ch]);
        image::Rgb(std::array::from_fn(|ch| {
            let top = p(x0, y0, ch) * (1.0 - fx) + p(x0 + 1, y0, ch) * fx;
            let bottom = p(x0, y0 + 1, ch) * (1.0 - fx) + p(x0 + 1, y0 + 1, ch) * fx;
            (top * (1.0 - fy) + bottom * fy).round() as u8
        }))
    })
}

/// The edits, by name.
fn edits(img: &DynamicImage) -> Vec<(&'static str, Vec<u8>)> {
    let (w, h) = (img.width(), img.height());
    vec![
        (
            "crop 80%",
            encode(
                &img.crop_imm(w / 10, h / 10, w * 8 / 10, h * 8 / 10),
                ImageFormat::Png,
            ),
        ),
        (
            "crop 60% off-centre",
            encode(
                &img.crop_imm(w / 5, 0, w * 6 / 10, h * 6 / 10),
                ImageFormat::Png,
            ),
        ),
        (
            "rescale 0.4",
            encode(
                &img.resize(w * 2 / 5, h * 2 / 5, image::imageops::FilterType::Triangle),
                ImageFormat::Png,
            ),
        ),
        ("jpeg q20", jpeg(img, 20)),
        (
            "brightness +40",
            encode(&img.brighten(40), ImageFormat::Png),
        ),
        (
            "brightness -40",
            encode(&img.brighten(-40), ImageFormat::Png),
        ),
        (
            "rotate 7°",
            encode(
                &DynamicImage::ImageRgb8(rotate(&img.to_rgb8(), 7.0)),
                ImageFormat::Png,
            ),
        ),
        ("flip", encode(&img.fliph(), ImageFormat::Png)),
    ]
}

/// The pipeline's two vectors of one photo: (whole photo, stored embedding).
type Vectors = (Vec<f32>, Vec<f32>);
/// One of the two.
type Pick = fn(&Vectors) -> &[f32];
/// An edited copy: its original's index, the edit, its vectors.
type Query<'a> = (usize, &'a str, Vectors);

fn embed(runtime: &tokio::runtime::Runtime, pipeline: &Pipeline, bytes: &[u8]) -> Vectors {
    let photo = runtime
        .block_on(pipeline.embed(bytes.to_vec(), Priority::Interactive))
        .expect("embeds");
    (
        photo
            .whole
            .expect("a pipeline without a reindex flag runs every whole photo"),
        photo.embedding,
    )
}

fn main() {
    let (_, pipeline, runtime) = support::recall_pipeline(0);
    let embed = |bytes: &[u8]| embed(&runtime, &pipeline, bytes);
    let originals: Vec<DynamicImage> = support::real_photos::REAL_PHOTOS
        .iter()
        .map(|n| image::load_from_memory(&support::sample(n)).expect("sample decodes"))
        .collect();
    // Gallery: the originals first, then every original's nine tiles.
    let mut gallery: Vec<Vectors> = originals
        .iter()
        .map(|img| embed(&encode(img, ImageFormat::Png)))
        .collect();
    for img in &originals {
        let (tw, th) = (img.width() / 3, img.height() / 3);
        for i in 0..9 {
            let tile = img.crop_imm((i % 3) * tw, (i / 3) * th, tw, th);
            gallery.push(embed(&encode(&tile, ImageFormat::Png)));
        }
    }
    let queries: Vec<Query> = originals
        .iter()
        .enumerate()
        .flat_map(|(index, img)| {
            edits(img)
                .into_iter()
                .map(move |(edit, bytes)| (index, edit, bytes))
        })
        .map(|(index, edit, bytes)| (index, edit, embed(&bytes)))
        .collect();
    println!(
        "gallery: {} photos ({} originals + {} distractors)",
        gallery.len(),
        originals.len(),
        gallery.len() - originals.len()
    );
    let methods: [(&str, Pick); 2] = [("whole photo", |v| &v.0), ("stored embedding", |v| &v.1)];
    for (method, pick) in methods {
        println!("{method}:");
        score(&gallery, &queries, pick);
    }
}

fn score(gallery: &[Vectors], queries: &[Query], pick: Pick) {
    let mut per_edit: std::collections::BTreeMap<&str, (u32, u32, u32)> = Default::default();
    let (mut hits1, mut hits5, mut total) = (0u32, 0u32, 0u32);
    for (index, edit, query) in queries {
        let query = pick(query);
        let mut ranked: Vec<(usize, f32)> = gallery
            .iter()
            .enumerate()
            .map(|(i, g)| (i, cosine(query, pick(g))))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let rank = ranked
            .iter()
            .position(|(i, _)| i == index)
            .unwrap_or(usize::MAX);
        let entry = per_edit.entry(edit).or_default();
        entry.2 += 1;
        total += 1;
        if rank == 0 {
            hits1 += 1;
            entry.0 += 1;
        }
        if rank < 5 {
            hits5 += 1;
            entry.1 += 1;
        }
        if rank != 0 {
            println!(
                "  miss: {} / {edit}: original ranked {}",
                support::real_photos::REAL_PHOTOS[*index],
                rank.saturating_add(1)
            );
        }
    }
    for (edit, (h1, h5, n)) in &per_edit {
        println!(
            "  {edit:<20} recall@1 {:.3}  recall@5 {:.3}  ({n} queries)",
            f64::from(*h1) / f64::from(*n),
            f64::from(*h5) / f64::from(*n)
        );
    }
    println!(
        "  all edits: recall@1 {:.3}  recall@5 {:.3}  ({total} queries)",
        f64::from(hits1) / f64::from(total),
        f64::from(hits5) / f64::from(total)
    );
}

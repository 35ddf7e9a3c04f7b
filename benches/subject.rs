//! Same subject, different scene, through lookalike's own pipeline (decode, gate, the subject
//! method of src/pipeline.rs): recall@1 and recall@5 of each subject's stored scene when searching
//! with its other scene, among the stored scenes of its split (exact cosine). Both vectors of one
//! pipeline run are scored: the whole photo (the old model's vector) and the shipped embedding.
//!
//!   scripts/setup-eval.sh && .cache/venv/bin/python models/subject_eval_set.py \
//!       --eval-dir .cache/eval --samples .cache/samples --wheels .cache/wheels \
//!       --out .cache/eval/subject-set
//!   cargo bench --bench subject
//!   cargo bench --bench subject -- --detector on     # the animal detector in front (issue 22)
//!
//! The set (models/subject_eval_set.py): real-photo cut-outs (tuxpaint stamps, never its
//! animals) pasted on two different real photos; a "tuning" half (the method's parameters were
//! chosen on it, with benches/subject_eval.py) and a "heldout" half; and Debian libdlib's two dogs
//! photographed twice each, each shot searching the other shots plus the held-out stored scenes.
//!
//! `--set DIR` evaluates another set of the same format (default .cache/eval/subject-set), such as
//! the animal set (models/animal_eval_set.py: real ANIMAL photos, boxes cut as rectangles, pasted
//! on two different real backgrounds; no `dogs` there, its dlib dogs are pairs among its animals):
//!
//!   scripts/setup-animals.sh && .cache/venv/bin/python models/animal_eval_set.py \
//!       --animals .cache/eval/animals --eval-dir .cache/eval --samples .cache/samples \
//!       --wheels .cache/wheels --out .cache/eval/animal-set
//!   cargo bench --bench subject -- --set .cache/eval/animal-set

mod support;

use std::collections::HashMap;
use std::time::Instant;

use lookalike::inference::{Priority, cosine};
use lookalike::pipeline::EmbeddedPhoto;
use serde_json::Value;

fn recall(queries: &[&[f32]], gallery: &[&[f32]], targets: &[usize]) -> (f64, f64) {
    let (mut hit1, mut hit5) = (0, 0);
    for (q, &t) in queries.iter().zip(targets) {
        let own = cosine(q, gallery[t]);
        let better = gallery.iter().filter(|g| cosine(q, g) > own).count();
        hit1 += usize::from(better < 1);
        hit5 += usize::from(better < 5);
    }
    let n = queries.len().max(1) as f64;
    (hit1 as f64 / n, hit5 as f64 / n)
}

fn main() {
    let set = support::repo(&support::arg(
        "--set",
        ".cache/eval/subject-set".to_string(),
    ));
    let meta: Value = serde_json::from_slice(
        &std::fs::read(set.join("set.json"))
            .expect("the subject set (see this file's header for the commands)"),
    )
    .expect("set.json");
    let (gate, pipeline, runtime) = support::recall_pipeline(support::arg("--threads", 2));
    let model = gate.model().manifest().clone();
    let scenes = meta["scenes"].as_array().expect("scenes");
    let no_dogs = Vec::new();
    let dogs = meta["dogs"].as_array().unwrap_or(&no_dogs);
    let files: Vec<&str> = scenes
        .iter()
        .chain(dogs)
        .map(|s| s["file"].as_str().expect("file"))
        .collect();
    let started = Instant::now();
    let mut embedded: HashMap<&str, EmbeddedPhoto> = HashMap::new();
    for file in &files {
        let bytes = std::fs::read(set.join(file)).expect("scene");
        let photo = runtime
            .block_on(pipeline.embed(bytes, Priority::Interactive))
            .expect("embeds");
        embedded.insert(file, photo);
    }
    let elapsed = started.elapsed();
    let runs = gate.snapshot().runs_total;
    let subjects = embedded.values().filter(|p| p.subject.is_some()).count();
    println!(
        "model {} {}: {} photos in {:.1} s ({:.1} ms/photo end to end, {:.2} model runs/photo, a subject cropped in {subjects})",
        model.name,
        model.version,
        files.len(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / files.len() as f64,
        runs as f64 / files.len() as f64,
    );
    type Pick = fn(&EmbeddedPhoto) -> &[f32];
    let methods: [(&str, Pick); 2] = [
        ("whole photo", |p| {
            p.whole.as_deref().expect("every whole photo is run")
        }),
        ("shipped (subject)", |p| &p.embedding),
    ];
    for (name, pick) in methods {
        let mut line = format!("{name:<20}");
        let mut held_gallery = Vec::new();
        for split in ["tuning", "heldout"] {
            let of_split: Vec<&Value> = scenes.iter().filter(|s| s["split"] == split).collect();
            let stored: Vec<&Value> = of_split
                .iter()
                .copied()
                .filter(|s| s["role"] == "stored")
                .collect();
            let index: HashMap<&str, usize> = stored
                .iter()
                .enumerate()
                .map(|(i, s)| (s["subject"].as_str().expect("subject"), i))
                .collect();
            let vector = |s: &Value| pick(&embedded[s["file"].as_str().expect("file")]);
            let gallery: Vec<&[f32]> = stored.iter().map(|s| vector(s)).collect();
            let queries: Vec<&Value> = of_split
                .iter()
                .copied()
                .filter(|s| s["role"] == "query")
                .collect();
            let targets: Vec<usize> = queries
                .iter()
                .map(|q| index[q["subject"].as_str().expect("subject")])
                .collect();
            let q: Vec<&[f32]> = queries.iter().map(|s| vector(s)).collect();
            let (r1, r5) = recall(&q, &gallery, &targets);
            line += &format!(
                "  {split} recall@1 {r1:.3} @5 {r5:.3} ({} queries)",
                q.len()
            );
            if split == "heldout" {
                held_gallery = gallery;
            }
        }
        let (mut d1, mut d5) = (0.0, 0.0);
        for q in dogs {
            let others: Vec<&Value> = dogs.iter().filter(|d| d["shot"] != q["shot"]).collect();
            let mut gallery: Vec<&[f32]> = others
                .iter()
                .map(|d| pick(&embedded[d["file"].as_str().expect("file")]))
                .collect();
            gallery.extend(held_gallery.iter().copied());
            let target = others
                .iter()
                .position(|d| d["subject"] == q["subject"])
                .expect("the same dog");
            let (r1, r5) = recall(
                &[pick(&embedded[q["file"].as_str().expect("file")])],
                &gallery,
                &[target],
            );
            d1 += r1 / dogs.len() as f64;
            d5 += r5 / dogs.len() as f64;
        }
        if dogs.is_empty() {
            println!("{line}");
        } else {
            println!("{line}  dogs recall@1 {d1:.2} @5 {d5:.2}");
        }
    }
}

//! The CPU cost of the box that benches/locate_eval.py chose ("rar*scda7 f0.35 cc"), as the
//! service would compute it in Rust, and a check that it gives the Python boxes. Not a cargo
//! target (std only): it reads the maps that `locate_eval.py --dump FILE` wrote from the real
//! first runs. Run:
//!
//!   rustc -O --edition 2021 benches/locate/box_timing.rs -o /var/tmp/locate-box-timing
//!   /var/tmp/locate-box-timing /var/tmp/locate-maps.bin
//!
//! Per photo the file holds the graph's 56x56 colour rarity ("cam.rarity.weight"), the head's
//! 7x7 channel sum ("head.relu6" summed over channels: an extra graph output) as f32, and the
//! Python box (x0, y0, x1, y1 as fractions; all -1 for none) as f64, little-endian.

use std::time::Instant;

const SIDE: usize = 56;
const GRID: usize = 7;

/// The box (fractions) of the largest 8-connected component, by summed weight, of the cells of
/// rarity x the head's channel sum (each 7x7 cell repeated over its 8x8 pixels) at or above
/// `threshold` x the product's maximum (both maps first clamped at 0 and scaled to a maximum
/// of 1, as the Python does).
fn subject_box(rar: &[f32], head: &[f32], threshold: f32) -> Option<[f64; 4]> {
    let peak_of = |v: &[f32]| v.iter().fold(0f32, |a, &b| a.max(b)).max(1e-12);
    let (pr, ph) = (peak_of(rar), peak_of(head));
    let mut m = [0f32; SIDE * SIDE];
    let mut peak = 0f32;
    for (i, v) in m.iter_mut().enumerate() {
        let (y, x) = (i / SIDE, i % SIDE);
        let cell = (y * GRID / SIDE) * GRID + x * GRID / SIDE;
        *v = (rar[i].max(0.0) / pr) * (head[cell].max(0.0) / ph);
        peak = peak.max(*v);
    }
    if !(peak > 0.0) {
        return None;
    }
    let cut = threshold * peak;
    // Flood fill with an explicit stack: each cell is pushed at most once.
    let mut label = [0u16; SIDE * SIDE];
    let mut stack: Vec<usize> = Vec::with_capacity(SIDE * SIDE);
    let (mut best_mass, mut best) = (-1f32, [0usize; 4]);
    let mut n = 0u16;
    for start in 0..SIDE * SIDE {
        if m[start] < cut || label[start] != 0 {
            continue;
        }
        n += 1;
        label[start] = n;
        stack.push(start);
        let (mut mass, mut b) = (0f32, [SIDE, SIDE, 0, 0]);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / SIDE, i % SIDE);
            mass += m[i];
            b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
            for dy in [-1isize, 0, 1] {
                for dx in [-1isize, 0, 1] {
                    let (yy, xx) = (y as isize + dy, x as isize + dx);
                    if yy < 0 || xx < 0 || yy >= SIDE as isize || xx >= SIDE as isize {
                        continue;
                    }
                    let j = yy as usize * SIDE + xx as usize;
                    if m[j] >= cut && label[j] == 0 {
                        label[j] = n;
                        stack.push(j);
                    }
                }
            }
        }
        if mass > best_mass {
            (best_mass, best) = (mass, b);
        }
    }
    let s = SIDE as f64;
    Some([best[0] as f64 / s, best[1] as f64 / s, best[2] as f64 / s, best[3] as f64 / s])
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: box_timing MAPS.bin");
    let data = std::fs::read(&path).expect("read the maps");
    let record = (SIDE * SIDE + GRID * GRID) * 4 + 4 * 8;
    let photos: Vec<(Vec<f32>, Vec<f32>, [f64; 4])> = data
        .chunks_exact(record)
        .map(|r| {
            let f = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
            let rar = f(&r[..SIDE * SIDE * 4]);
            let head = f(&r[SIDE * SIDE * 4..(SIDE * SIDE + GRID * GRID) * 4]);
            let mut b = [0f64; 4];
            for (k, c) in r[(SIDE * SIDE + GRID * GRID) * 4..].chunks_exact(8).enumerate() {
                b[k] = f64::from_le_bytes(c.try_into().unwrap());
            }
            (rar, head, b)
        })
        .collect();
    let same = photos
        .iter()
        .filter(|(r, h, b)| match subject_box(r, h, 0.35) {
            Some(x) => x.iter().zip(b).all(|(a, c)| (a - c).abs() < 1e-9),
            None => b[0] < 0.0,
        })
        .count();
    println!("{same} of {} boxes equal to the Python's", photos.len());
    let rounds = 200;
    let t = Instant::now();
    let mut sink = 0f64;
    for _ in 0..rounds {
        for (r, h, _) in &photos {
            sink += subject_box(std::hint::black_box(r), std::hint::black_box(h), 0.35).map_or(0.0, |b| b[2]);
        }
    }
    let per = t.elapsed().as_secs_f64() / (rounds * photos.len()) as f64;
    println!("{:.1} us per photo (mean of {} boxes; checksum {sink:.1})", per * 1e6, rounds * photos.len());
}

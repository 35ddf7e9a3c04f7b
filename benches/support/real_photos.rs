//! The real photos among the sample photos: one list for the retrieval bench and the INT8 agreement
//! test (`tests/it/int8.rs` includes this file), so both measure the same photos.

/// Real photos among the samples (the synthetic, binary and text images are left out; the right
/// view of the motorcycle stereo pair too, as it is the same scene as the left). None of them
/// calibrates the INT8 model.
pub const REAL_PHOTOS: [&str; 17] = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
];

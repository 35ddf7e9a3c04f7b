//! Schemas of the numbers people type into multipart forms (a place's coordinates).
//!
//! They are plain `number`s with their range and no `format: double`: form fields are decimal
//! text that the service keeps to 1e-7° (a value finer than that is rounded, e.g. to 0), so a
//! binary format would promise a precision the service does not keep, and let a fuzzer hold it
//! to that promise with values such as -1.3e-97.

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

fn number(min: f64, max: f64, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
        .build()
}

/// A report's latitude.
pub fn report_latitude() -> Object {
    number(
        -90.0,
        90.0,
        "Latitude in degrees (with longitude), kept to 1e-7°; anyone but the owner and the tenant \
         sees it rounded to 0.01° (about 1 km).",
    )
}

/// A report's longitude.
pub fn report_longitude() -> Object {
    number(
        -180.0,
        180.0,
        "Longitude in degrees (with latitude), kept to 1e-7°; shown rounded like the latitude.",
    )
}

/// An optional search field with an empty example: Swagger UI's "Try it out" fills a form with
/// the examples, and an empty one leaves the field out, so the search sent as filled in finds
/// something (a range's bound, such as latitude -90, would not).
#[allow(deprecated)] // Swagger UI reads `example`, not the newer `examples`.
fn left_out_when_tried(mut schema: Object) -> Object {
    schema.example = Some(serde_json::Value::String(String::new()));
    schema
}

/// A search's centre latitude.
pub fn search_latitude() -> Object {
    left_out_when_tried(number(
        -90.0,
        90.0,
        "With longitude and radius_km: only reports within the radius.",
    ))
}

/// A search's centre longitude.
pub fn search_longitude() -> Object {
    left_out_when_tried(number(-180.0, 180.0, "See latitude."))
}

/// A search's radius in kilometres (more than 0).
pub fn search_radius() -> Object {
    let mut radius = number(
        0.0,
        20040.0,
        "See latitude (kilometres, more than 0 and at most 20040). Reports are placed by their \
         public position (rounded to 0.01°, about 1 km), so that the answers to many searches \
         reveal no position more finely than it is shown.",
    );
    radius.minimum = None;
    radius.exclusive_minimum = Some(0.0.into());
    left_out_when_tried(radius)
}

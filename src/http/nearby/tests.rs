use super::*;

#[test]
fn a_cursor_comes_back_as_made_and_a_forged_one_is_refused() {
    let id = Uuid::new_v4();
    let chord = 0.123_456_789_012_345_67;
    assert_eq!(
        decode_cursor(&encode_cursor(chord, id)).ok(),
        Some((chord, id))
    );
    let tail = "_00000000000000000000000000000000";
    let nan = format!("d{:016x}{tail}", f64::NAN.to_bits());
    let negative = format!("d{:016x}{tail}", (-1.0f64).to_bits());
    let huge = format!("d{:016x}{tail}", 3.0f64.to_bits());
    let time = format!("1733000000000000{tail}");
    for bad in ["", "d", "d_", "d12_xyz", &time, &nan, &negative, &huge] {
        assert!(decode_cursor(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_radius_needs_a_place_and_a_place_a_radius() {
    assert!(matches!(place(None, None, None), Ok(None)));
    let field = |lat, lon, r| {
        place(lat, lon, r)
            .err()
            .map_or_else(String::new, |e| e.field.to_string())
    };
    assert_eq!(field(None, None, Some("5")), "radius_km");
    assert_eq!(field(Some("48"), Some("2"), None), "radius_km");
    assert_eq!(field(Some("48"), None, None), "longitude");
    assert_eq!(field(None, Some("2"), None), "latitude");
    for (lat, lon, r) in [
        ("91", "0", "5"),
        ("0", "181", "5"),
        ("NaN", "0", "5"),
        ("0", "0", "0"),
        ("0", "0", "20041"),
        ("0", "0", "inf"),
        ("x", "0", "5"),
    ] {
        assert!(
            place(Some(lat), Some(lon), Some(r)).is_err(),
            "{lat} {lon} {r}"
        );
    }
    let near = place(Some("48.8566"), Some("2.3522"), Some("10"));
    assert_eq!(near.ok(), Some(Some((48.8566, 2.3522, 10.0))));
}

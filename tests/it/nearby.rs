//! Reports near a place without a photo (`GET /v1/reports?latitude=&longitude=&radius_km=`):
//! nearest first, each with its distance to the public (rounded) position, with the listing's
//! filters, pages that resume exactly, and JSON 422s for a wrong or partial place.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;

/// Creates a report (kind, species, position) with one distinct photo; its id.
async fn create(
    app: &axum::Router,
    photo: &[u8],
    kind: &str,
    species: &str,
    at: Option<(&str, &str)>,
) -> String {
    let mut parts: Vec<(&str, &str, &str, &[u8])> = vec![
        ("kind", "", "text/plain", kind.as_bytes()),
        ("species", "", "text/plain", species.as_bytes()),
        ("title", "", "text/plain", b"Seen near the river"),
        ("photos", "photo.png", "image/png", photo),
    ];
    if let Some((lat, lon)) = at {
        parts.push(("latitude", "", "text/plain", lat.as_bytes()));
        parts.push(("longitude", "", "text/plain", lon.as_bytes()));
    }
    let (status, _, body) = send(app, post_multipart("/v1/reports", &parts)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Great-circle distance in km on a 6371 km sphere.
fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

async fn page(app: &axum::Router, query: &str) -> Value {
    let (status, _, body) = send(app, get(&format!("/v1/reports?{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// Asserts that listing with `query` is a 422 `validation_failed` naming `field`.
async fn refused(app: &axum::Router, query: &str, field: &str) {
    let (status, _, body) = send(app, get(&format!("/v1/reports?{query}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    assert_eq!(body["code"], "validation_failed", "{query}: {body}");
    assert_eq!(body["field"], field, "{query}: {body}");
}

const CENTRE: (f64, f64) = (48.8566, 2.3522);
const AT_CENTRE: &str = "latitude=48.8566&longitude=2.3522";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_near_a_place_come_nearest_first_measured_to_their_public_position() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(7, 96);
    // Exact positions; the public ones are these rounded to 0.01°.
    let placed = [
        ("lost", "dog", Some(("48.8612", "2.3391"))),
        ("found", "dog", Some(("48.8648", "2.3449"))),
        ("lost", "cat", Some(("48.9362", "2.3574"))),
        ("lost", "dog", Some(("49.2583", "4.0317"))),
        ("lost", "dog", None),
        ("lost", "dog", Some(("-33.8688", "151.2093"))),
    ];
    let mut created = Vec::new();
    for (photo, (kind, species, at)) in photos.iter().zip(placed) {
        created.push(create(&app.router, photo, kind, species, at).await);
    }
    let [near, twin, mid, far, _nowhere, _abroad] = created.try_into().unwrap();

    let found = page(&app.router, &format!("{AT_CENTRE}&radius_km=20")).await;
    // `near` (public 48.86, 2.34) and `twin` (48.86, 2.34 as well... rounded 48.86, 2.34) tie:
    // the same public position is the same distance, whatever the exact ones.
    let reports = found["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 3, "{found}");
    let mut tied = vec![near.clone(), twin.clone()];
    tied.sort();
    assert_eq!(listed_ids(&found)[..2].to_vec(), tied, "{found}");
    assert_eq!(listed_ids(&found)[2], mid);
    assert_eq!(reports[0]["distance_km"], reports[1]["distance_km"]);
    for r in reports {
        let public = (
            r["latitude"].as_f64().unwrap(),
            r["longitude"].as_f64().unwrap(),
        );
        assert_eq!(r["location_rounded"], true, "{r}");
        let expected = haversine(CENTRE, public);
        let got = r["distance_km"].as_f64().unwrap();
        assert!((got - expected).abs() < 0.002, "{got} vs {expected}: {r}");
        assert!(r["contact"].is_null());
    }
    // The exact position of `near` is 1.09 km away; the answer is its public one's.
    let exact = haversine(CENTRE, (48.8612, 2.3391));
    let shown = reports[0]["distance_km"].as_f64().unwrap();
    assert!((shown - exact).abs() > 0.1, "{shown} vs exact {exact}");

    // A wider radius takes in Reims, never Sydney nor the report without a place.
    let wide = page(&app.router, &format!("{AT_CENTRE}&radius_km=150")).await;
    assert_eq!(listed_ids(&wide).len(), 4);
    assert_eq!(listed_ids(&wide)[3], far);
    let distances: Vec<f64> = wide["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["distance_km"].as_f64().unwrap())
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");

    // The listing's filters still apply.
    let lost_dogs = page(
        &app.router,
        &format!("{AT_CENTRE}&radius_km=150&kind=lost&species=dog"),
    )
    .await;
    assert_eq!(listed_ids(&lost_dogs), vec![near.clone(), far.clone()]);
    let cats = page(
        &app.router,
        &format!("{AT_CENTRE}&radius_km=150&species=cat"),
    )
    .await;
    assert_eq!(listed_ids(&cats), vec![mid.clone()]);
    let resolved = page(
        &app.router,
        &format!("{AT_CENTRE}&radius_km=150&status=resolved"),
    )
    .await;
    assert!(listed_ids(&resolved).is_empty());

    // Page by page, the same order, each report once.
    let mut seen = Vec::new();
    let mut query = format!("{AT_CENTRE}&radius_km=150&limit=1");
    loop {
        let p = page(&app.router, &query).await;
        seen.extend(listed_ids(&p));
        match p["next_cursor"].as_str() {
            Some(cursor) => query = format!("{AT_CENTRE}&radius_km=150&limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 4, "{seen:?}");
    }
    assert_eq!(seen, listed_ids(&wide));

    // Without a place, the listing is newest first and says no distance.
    let newest = page(&app.router, "limit=10").await;
    assert_eq!(listed_ids(&newest).len(), 6);
    assert!(newest["reports"][0].get("distance_km").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_partial_place_is_a_json_422_naming_the_field() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(2, 96);
    for (photo, latitude) in photos.iter().zip(["48.8612", "48.8712"]) {
        create(
            &app.router,
            photo,
            "lost",
            "dog",
            Some((latitude, "2.3391")),
        )
        .await;
    }
    // A radius without a whole place, or a place without one of its parts.
    for (query, field) in [
        ("radius_km=5", "radius_km"),
        ("latitude=48.8&radius_km=5", "radius_km"),
        ("latitude=48.8&longitude=2.3", "radius_km"),
        ("latitude=48.8", "longitude"),
        ("longitude=2.3", "latitude"),
    ] {
        refused(&app.router, query, field).await;
    }
    // A coordinate out of range or not a number.
    for (lat, lon, field) in [
        ("91", "2.3", "latitude"),
        ("48.8", "-180.5", "longitude"),
        ("NaN", "2.3", "latitude"),
        ("abc", "2.3", "latitude"),
    ] {
        let query = format!("latitude={lat}&longitude={lon}&radius_km=5");
        refused(&app.router, &query, field).await;
    }
    // A radius of nothing, less, more than half the Earth's circumference, or no end; a page too
    // long; a cursor that is not one.
    let place = "latitude=48.8&longitude=2.3";
    for radius in ["0", "-1", "20041", "inf"] {
        let query = format!("{place}&radius_km={radius}");
        refused(&app.router, &query, "radius_km").await;
    }
    let query = format!("{place}&radius_km=5&limit=101");
    refused(&app.router, &query, "limit").await;
    let query = format!("{place}&radius_km=5&cursor=d1_zz");
    refused(&app.router, &query, "cursor").await;
    // A cursor of one order is refused by the other.
    let by_place = page(&app.router, &format!("{AT_CENTRE}&radius_km=50&limit=1")).await;
    let place_cursor = by_place["next_cursor"].as_str().unwrap().to_owned();
    let by_time = page(&app.router, "limit=1").await;
    let time_cursor = by_time["next_cursor"].as_str().unwrap().to_owned();
    for query in [
        format!("limit=1&cursor={place_cursor}"),
        format!("{AT_CENTRE}&radius_km=50&limit=1&cursor={time_cursor}"),
    ] {
        let (status, _, body) = send(&app.router, get(&format!("/v1/reports?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["field"], "cursor", "{query}: {body}");
    }
    // The whole Earth is one radius: everything with a place, at most a page.
    let world = page(
        &app.router,
        "latitude=-89.9999999&longitude=179.9999999&radius_km=20040&limit=100",
    )
    .await;
    assert_eq!(listed_ids(&world).len(), 2);
}

//! Hostile input at the edge, on the real binary: positions that are not numbers, out of range or
//! subnormal; radii past the Earth; forged cursors; empty fields; oversized bodies. Each is a 4xx
//! or made harmless, never a 500; and a poisoned position already stored is repaired by the
//! migration and cannot break place searches even where it escaped it.

use std::borrow::Cow;

use crate::common::api::{
    call_form, call_json, create, created, get_as, search, start, wait_ready,
};
use crate::common::process::Service;
use crate::common::*;
use lookalike::store::{MIGRATOR, Store};
use sqlx::migrate::Migrator;

/// A report row stored behind the edge's back, at (`lat`, `lon`).
async fn insert_poisoned(store: &Store, lat: f64, lon: f64) {
    sqlx::query(
        "INSERT INTO reports (id, kind, species, title, latitude, longitude, owner_token_hash)
         VALUES ($1, 'found', 'dog', 'poisoned', $2, $3, '\\x00')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(lat)
    .bind(lon)
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_subnormal_position_is_repaired_and_cannot_break_a_place_search() {
    // The database as it was before migration 10, holding a report at longitude 1e-200.
    let url = fresh_database().await;
    let store = Store::connect(&database_config(url.clone())).await.unwrap();
    let before = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .iter()
                .filter(|m| m.version < 10)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    before.run(store.pool()).await.unwrap();
    insert_poisoned(&store, 0.5, 1e-200).await;
    // The hazard is real: the distance as place searches computed it fails on this row.
    let old_distance = sqlx::query("SELECT power(sin(radians(longitude - 0) / 2), 2) FROM reports")
        .fetch_all(store.pool())
        .await;
    assert!(
        old_distance.is_err(),
        "no underflow: the test proves nothing"
    );

    // Migration 10 repairs it: kept to 1e-7°, the longitude is 0.
    store.migrate().await.unwrap();
    let lon: f64 = sqlx::query_scalar("SELECT longitude FROM reports WHERE title = 'poisoned'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(lon, 0.0);
    // From now on the database refuses such a row.
    let refused = sqlx::query(
        "INSERT INTO reports (id, kind, species, title, latitude, longitude, owner_token_hash)
         VALUES (gen_random_uuid(), 'found', 'dog', 'x', 0.5, 1e-200, '\\x00')",
    )
    .execute(store.pool())
    .await;
    assert!(refused.is_err(), "a subnormal longitude was stored");

    // And where one escapes every check (the constraint dropped), the distance is still safe:
    // place filters read the public position, never the raw one.
    execute(
        &store,
        "ALTER TABLE reports DROP CONSTRAINT reports_position_not_tiny",
    )
    .await;
    insert_poisoned(&store, -0.5, 1e-200).await;
    insert_poisoned(&store, 1e-300, -1e-310).await;
    let service = Service::start(&url, &temp_dir("hostile-equator").join("photos"), 1).await;
    let photo = distinct_photos(1, 96).remove(0);
    let near_the_equator = [("latitude", "0.1"), ("longitude", "0.1")];
    let report = created(create(&service, &[], &photo, &near_the_equator).await);
    let id = report["id"].as_str().unwrap().to_owned();
    wait_ready(&service, &id, &[]).await;
    let over_the_equator = [("latitude", "0"), ("longitude", "0"), ("radius_km", "500")];
    let answer = search(&service, &[], &photo, &over_the_equator).await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    assert_eq!(answer.json()["results"][0]["report"]["id"], id.as_str());
    // Anything the page lists of those rows answers too.
    assert_eq!(get_as(&service, "/v1/reports", &[]).await.status, 200);
}

#[tokio::test]
async fn positions_radii_cursors_and_empty_fields_are_checked_at_the_edge() {
    let service = start("hostile-edge", 0, &[]).await;
    let photo = distinct_photos(1, 96).remove(0);

    // A subnormal longitude is kept as 0 (positions are kept to 1e-7°), -0 as 0.
    let subnormal = [("latitude", "-0"), ("longitude", "1e-200")];
    let report = created(create(&service, &[], &photo, &subnormal).await);
    assert_eq!(report["longitude"].as_f64(), Some(0.0), "{report}");
    assert_eq!(report["latitude"].to_string(), "0.0", "{report}");
    // Not a number, infinite, out of range or empty: 422 naming the field.
    let latitudes = ["NaN", "1e400", "90.0000001", ""].map(|lat| (lat, "0", "latitude"));
    let longitudes = ["inf", "-180.5", " "].map(|lon| ("0", lon, "longitude"));
    for (lat, lon, field) in latitudes.into_iter().chain(longitudes) {
        let place = [("latitude", lat), ("longitude", lon)];
        let refused = create(&service, &[], &photo, &place).await;
        assert_eq!(refused.status, 422, "{lat}, {lon}: {}", refused.json());
        assert_eq!(refused.json()["field"], field, "{lat}, {lon}");
    }

    // Searches: a radius past the Earth, none, or negative; an empty time; each 422.
    for (fields, field) in [
        (
            &[("latitude", "0"), ("longitude", "0"), ("radius_km", "1e60")][..],
            "radius_km",
        ),
        (
            &[("latitude", "0"), ("longitude", "0"), ("radius_km", "0")][..],
            "radius_km",
        ),
        (
            &[("latitude", "0"), ("longitude", "0"), ("radius_km", "-5")][..],
            "radius_km",
        ),
        (&[("since", "")][..], "since"),
        (
            &[("latitude", "91"), ("longitude", "0"), ("radius_km", "5")][..],
            "latitude",
        ),
    ] {
        let refused = search(&service, &[], &photo, fields).await;
        assert_eq!(refused.status, 422, "{fields:?}: {}", refused.json());
        assert_eq!(refused.json()["field"], field, "{fields:?}");
    }
    // A subnormal centre is 0: the search answers.
    let answer = search(
        &service,
        &[],
        &photo,
        &[
            ("latitude", "1e-200"),
            ("longitude", "-1e-310"),
            ("radius_km", "20040"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json());

    // Cursors: only as the service makes them, within PostgreSQL's times.
    let hex = "0123456789abcdef0123456789abcdef";
    for cursor in [
        format!("-300000000000000000_{hex}"),
        format!("99999999999999999999_{hex}"),
        "1_01234567-89ab-cdef-0123-456789abcdef".to_owned(),
        format!("1_{hex}0"),
        format!("_{hex}"),
    ] {
        let answer = get_as(&service, &format!("/v1/reports?cursor={cursor}"), &[]).await;
        assert_eq!(answer.status, 422, "{cursor}: {}", answer.json());
        assert_eq!(answer.json()["field"], "cursor", "{cursor}");
    }
    // Before 1970 cannot be written; past year 9999 reads as its end (a page from the newest).
    for cursor in [format!("1_{hex}"), format!("999999999999999999_{hex}")] {
        let answer = get_as(&service, &format!("/v1/reports?cursor={cursor}"), &[]).await;
        assert_eq!(answer.status, 200, "{cursor}: {}", answer.json());
    }
    let newest = get_as(
        &service,
        &format!("/v1/reports?cursor=999999999999999999_{hex}"),
        &[],
    )
    .await;
    assert_eq!(newest.json()["reports"][0]["id"], report["id"]);
    let id = report["id"].as_str().unwrap();
    let owner = format!("Bearer {}", report["owner_token"].as_str().unwrap());
    let owner_header = [("Authorization", owner.as_str())];
    for cursor in ["-1", "99999999999999999999", "1e3", "+5"] {
        let answer = get_as(
            &service,
            &format!("/v1/reports/{id}/messages?cursor={cursor}"),
            &owner_header,
        )
        .await;
        assert_eq!(answer.status, 422, "{cursor}: {}", answer.json());
    }

    // A PATCH past the route's body limit: 413, as the document says.
    let huge = serde_json::json!({ "description": "x".repeat(140_000) });
    let answer = call_json(
        &service,
        "PATCH",
        &format!("/v1/reports/{id}"),
        &owner_header,
        &huge,
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.json());
    assert_eq!(answer.json()["code"], "payload_too_large");
    let doc = get_as(&service, "/openapi.json", &[]).await.json();
    assert!(
        doc["paths"]["/v1/reports/{id}"]["patch"]["responses"]
            .get("413")
            .is_some(),
        "PATCH's 413 is not documented"
    );
    // A report form sent empty-valued publishes nothing by mistake.
    let refused = call_form(
        &service,
        "/v1/reports",
        &[],
        &[
            ("kind", "found"),
            ("species", "dog"),
            ("title", "x"),
            ("contact_public", "yes"),
        ],
        "photos",
        &[photo],
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.json());
    assert_eq!(refused.json()["field"], "contact_public");
}

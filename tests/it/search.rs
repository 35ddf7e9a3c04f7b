//! Search by photo and matches between reports, with the real model and database.

use std::time::Duration;

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;

/// A search with the relevance floor off: these tests count and order results (the floor has
/// its own tests in `labels`).
async fn search(app: &axum::Router, photo: &[u8], fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form: Vec<Part> = vec![
        ("photo", "q.jpg", "image/jpeg", photo),
        ("min_score", "", "text/plain", b"0"),
    ];
    for (k, v) in fields {
        form.push((k, "", "text/plain", v.as_bytes()));
    }
    let (status, _, body) = send(app, post_multipart("/v1/search", &form)).await;
    (status, body)
}

const GALLERY: [&str; 8] = [
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "coins.png",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_copy_finds_its_report_first() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let mut ids = Vec::new();
    for name in GALLERY {
        ids.push(create_report_with(&app.router, "found", "other", &sample(name), &[]).await);
    }
    wait_until_embedded(&app, GALLERY.len() as i64).await;
    for (name, id) in GALLERY.iter().zip(&ids).take(4) {
        let (status, body) = search(&app.router, &edited_copy(&sample(name)), &[("k", "3")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(
            results[0]["report"]["id"].as_str(),
            Some(id.as_str()),
            "{name}: {body}"
        );
        assert!(results[0]["score"].as_f64().unwrap() > results[1]["score"].as_f64().unwrap());
        assert!(
            results[0]["thumbnail_url"]
                .as_str()
                .unwrap()
                .ends_with("/thumbnail")
        );
    }
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_respected_and_still_fill_k() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let photos = distinct_photos(36, 160);
    // 24 lost dogs (8 of them near Paris), 12 found cats: the query looks like them all.
    for (i, p) in photos.iter().enumerate() {
        let (kind, species) = if i < 24 {
            ("lost", "dog")
        } else {
            ("found", "cat")
        };
        let place: &[(&str, &str)] = if i < 8 {
            &[("latitude", "48.85"), ("longitude", "2.35")]
        } else {
            &[("latitude", "40.0"), ("longitude", "-3.7")]
        };
        create_report_with(&app.router, kind, species, p, place).await;
    }
    wait_until_embedded(&app, 36).await;
    let query = edited_copy(&photos[30]);
    // (form fields, expected result count, the kind every result must have)
    type Case<'a> = (&'a [(&'a str, &'a str)], usize, &'a str);
    let cases: [Case; 4] = [
        (
            &[("kind", "found"), ("species", "cat"), ("k", "10")],
            10,
            "found",
        ),
        (&[("kind", "lost"), ("k", "20")], 20, "lost"),
        (&[("kind", "found,sighting"), ("k", "50")], 12, "found"),
        (
            &[
                ("latitude", "48.8"),
                ("longitude", "2.3"),
                ("radius_km", "50"),
                ("k", "20"),
            ],
            8,
            "lost",
        ),
    ];
    for (fields, want, kind) in cases {
        let (status, body) = search(&app.router, &query, fields).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), want, "{fields:?}");
        assert!(
            results.iter().all(|r| r["report"]["kind"] == kind),
            "{fields:?}"
        );
        let scores: Vec<f64> = results
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score");
    }
    // Resolved reports are left out unless asked for.
    let (_, body) = search(&app.router, &query, &[("status", "resolved")]).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 0);
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_searches_get_clear_errors() {
    let app = app(default_gate_settings(), uploads()).await;
    let photo = sample("rocket.jpg");
    for (fields, field) in [
        (vec![("k", "0")], "k"),
        (vec![("k", "101")], "k"),
        (vec![("kind", "stolen")], "kind"),
        (vec![("since", "yesterday")], "since"),
        (vec![("latitude", "1")], "radius_km"),
        (vec![("colour", "red")], "colour"),
    ] {
        let (status, body) = search(&app.router, &photo, &fields).await;
        assert_invalid(status, &body);
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, _, body) = send(
        &app.router,
        post_multipart("/v1/search", &[("k", "", "text/plain", b"3")]),
    )
    .await;
    assert_invalid(status, &body);
    let (status, body) = search(&app.router, b"not a photo", &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_found_report_like_a_lost_one_gets_it_as_a_possible_match() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let lost = create_report_with(&app.router, "lost", "cat", &sample("chelsea.png"), &[]).await;
    let other = create_report_with(&app.router, "lost", "other", &sample("coffee.png"), &[]).await;
    wait_until_embedded(&app, 2).await;
    let found = create_report_with(
        &app.router,
        "found",
        "cat",
        &edited_copy(&sample("chelsea.png")),
        &[],
    )
    .await;
    eventually("the found report lists the lost one", 60, || async {
        let (_, _, body) = send(&app.router, get(&format!("/v1/reports/{found}"))).await;
        body["possible_matches"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    })
    .await;
    let (_, _, body) = send(&app.router, get(&format!("/v1/reports/{found}"))).await;
    let matches = body["possible_matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "only the similar lost report: {body}");
    assert_eq!(matches[0]["report_id"].as_str(), Some(lost.as_str()));
    assert!(matches[0]["score"].as_f64().unwrap() >= 0.7);
    // Recorded on the lost report too, so its owner sees the new found report.
    let (_, _, body) = send(&app.router, get(&format!("/v1/reports/{lost}"))).await;
    assert_eq!(
        body["possible_matches"][0]["report_id"].as_str(),
        Some(found.as_str()),
        "{body}"
    );
    let (_, _, body) = send(&app.router, get(&format!("/v1/reports/{other}"))).await;
    assert_eq!(body["possible_matches"].as_array().unwrap().len(), 0);
    // The live endpoint agrees, and a lower threshold brings in the unrelated one.
    let (status, _, body) = send(&app.router, get(&format!("/v1/reports/{found}/matches"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["matches"].as_array().unwrap().len(), 1);
    let (_, _, body) = send(
        &app.router,
        get(&format!("/v1/reports/{found}/matches?threshold=-1")),
    )
    .await;
    assert_eq!(body["matches"].as_array().unwrap().len(), 2);
    // Bounds hold on what was sent, not on its f32 rounding (which makes this -1).
    let (status, _, body) = send(
        &app.router,
        get(&format!(
            "/v1/reports/{found}/matches?min_score=-1.0000000001"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "min_score", "{body}");
    let (status, _, _) = send(
        &app.router,
        get(&format!("/v1/reports/{}/matches", uuid::Uuid::new_v4())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    workers.stop(Duration::from_secs(5)).await;
}

/// A small tenant's search among a big tenant's nearer vectors: the index's iterative scan stops
/// (here after 100 tuples, as it stops at `hnsw.max_scan_tuples` or its memory among 100k) before
/// it reaches the small tenant's photos, and the exact search fills k.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tenants_search_among_a_big_ones_fills_k() {
    use lookalike::store::{SearchFilter, SearchMode, Store};
    use sqlx::Connection;
    let url = fresh_database().await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET hnsw.max_scan_tuples = 100', current_database()); END $$",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let store = Store::connect(&database_config(url)).await.unwrap();
    store.migrate().await.unwrap();
    let manifest = lookalike::inference::ModelManifest::load_for(&model_config().path).unwrap();
    let model = store.models().register(&manifest).await.unwrap();
    // A query direction; 2000 of the big tenant's photos close around it, 12 of the small
    // tenant's farther out.
    let query: Vec<f32> = (0..1280)
        .map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5)
        .collect();
    sqlx::query("INSERT INTO tenants (id, max_bytes) VALUES ('big', 0), ('small', 0)")
        .execute(store.pool())
        .await
        .unwrap();
    seed_photo_rows(
        store.pool(),
        2012,
        "CASE WHEN n <= 2000 THEN 'big' ELSE 'small' END",
    )
    .await;
    // The fixture's 2,012 vectors go through the HNSW index in one statement: on two cores shared
    // with the rest of the suite that can outlast the store's statement timeout, which is about
    // requests, not set-up, so they are inserted on the admin connection without one.
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO embeddings (sha256, model_id, embedding)
         SELECT sha256(n::text::bytea), $1,
                (SELECT array_agg(x + CASE WHEN n <= 2000 THEN 0.05 ELSE 0.6 END * (random() - 0.5))
                 FROM unnest($2::real[]) x)::vector
         FROM generate_series(1, 2012) n",
    )
    .bind(model)
    .bind(&query)
    .execute(&mut admin)
    .await
    .unwrap();
    let tenant = |t: &str| SearchFilter {
        tenant: Some(t.to_owned()),
        ..SearchFilter::default()
    };
    let mode = SearchMode::Index { ef_search: 100 };

    // The precondition: through the index alone, the small tenant gets fewer than 10.
    let mut tx = store.pool().begin().await.unwrap();
    for set in [
        "SET LOCAL hnsw.iterative_scan = relaxed_order",
        "SET LOCAL enable_sort = off",
    ] {
        sqlx::query(set).execute(&mut *tx).await.unwrap();
    }
    let by_index: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT p.id FROM embeddings e JOIN photos p ON p.sha256 = e.sha256
             JOIN reports r ON r.id = p.report_id
         WHERE e.model_id = {model} AND r.tenant_id = 'small'
         ORDER BY e.embedding <=> $1 LIMIT 10) hits"
    ))
    .bind(pgvector::Vector::from(query.clone()))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(by_index < 10, "the index alone found {by_index}");

    let small = store
        .photos()
        .nearest(&query, model, &tenant("small"), 10, mode)
        .await
        .unwrap();
    assert_eq!(small.len(), 10);
    let big = store
        .photos()
        .nearest(&query, model, &tenant("big"), 10, mode)
        .await
        .unwrap();
    assert_eq!(big.len(), 10);
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT r.tenant_id FROM photos p JOIN reports r ON r.id = p.report_id WHERE p.id = ANY($1)",
    )
    .bind(small.iter().map(|h| h.photo_id).collect::<Vec<_>>())
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(owners.iter().all(|t| t == "small"), "{owners:?}");
    // Nearest first.
    assert!(small.windows(2).all(|w| w[0].distance <= w[1].distance));
}

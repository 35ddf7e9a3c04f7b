//! Search by photo and matches between reports, with the real model and database.

use std::time::Duration;

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;

async fn create_report(
    app: &axum::Router,
    kind: &str,
    species: &str,
    photo: &[u8],
    extra: &[(&str, &str)],
) -> String {
    let photos = [photo.to_vec()];
    let mut form = report_form(kind, species, &photos);
    for (k, v) in extra {
        form.push((k, "", "text/plain", v.as_bytes()));
    }
    let (status, _, body) = send(app, post_multipart("/v1/reports", &form)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn wait_until_embedded(app: &TestApp, total: i64) {
    eventually("every photo embedded", 120, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM embeddings")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        n >= total
    })
    .await;
}

async fn search(app: &axum::Router, photo: &[u8], fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form: Vec<Part> = vec![("photo", "q.jpg", "image/jpeg", photo)];
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
        ids.push(create_report(&app.router, "found", "other", &sample(name), &[]).await);
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
        create_report(&app.router, kind, species, p, place).await;
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
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{body}"
        );
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, _, body) = send(
        &app.router,
        post_multipart("/v1/search", &[("k", "", "text/plain", b"3")]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
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
    let lost = create_report(&app.router, "lost", "cat", &sample("chelsea.png"), &[]).await;
    let other = create_report(&app.router, "lost", "other", &sample("coffee.png"), &[]).await;
    wait_until_embedded(&app, 2).await;
    let found = create_report(
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
    let (status, _, _) = send(
        &app.router,
        get(&format!("/v1/reports/{}/matches", uuid::Uuid::new_v4())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    workers.stop(Duration::from_secs(5)).await;
}

//! Species and breeds read from real photos, breed search without a photo, the species of the
//! query photo in a search, and the relevance floor: the real model and database.

use std::time::Duration;

use crate::common::*;
use axum::http::StatusCode;
use lookalike::config::SearchConfig;
use lookalike::http::router;
use lookalike::jobs::Workers;
use lookalike::search::QuerySpecies;
use lookalike::service::app_state;
use serde_json::Value;

const CAT_BREEDS: [&str; 5] = [
    "tabby",
    "tiger cat",
    "Persian cat",
    "Siamese cat",
    "Egyptian cat",
];

async fn search(app: &axum::Router, photo: &[u8], fields: &[(&str, &str)]) -> Value {
    let mut form: Vec<Part> = vec![("photo", "q.jpg", "image/jpeg", photo)];
    for (k, v) in fields {
        form.push((k, "", "text/plain", v.as_bytes()));
    }
    let (status, _, body) = send(app, post_multipart("/v1/search", &form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// An app with two job workers and four reports found, all embedded: a cat (chelsea), and three
/// photos of other things; the cat's report id.
async fn a_cat_among_three_others() -> (TestApp, Workers, String) {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let cat = create_report(&app.router, "found", "cat", &sample("chelsea.png")).await;
    for name in ["coffee.png", "rocket.jpg", "astronaut.png"] {
        create_report(&app.router, "found", "other", &sample(name)).await;
    }
    wait_until_embedded(&app, 4).await;
    (app, workers, cat)
}

fn ids(body: &Value) -> Vec<&str> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["report"]["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cat_photo_is_read_as_a_cat_with_a_cat_breed_and_the_report_shows_it() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let cat = sample("chelsea.png");
    // The embeddings endpoint answers the labels (the page pre-fills the report form with them).
    let (status, _, body) = send(
        &app.router,
        post_multipart(
            "/v1/embeddings",
            &[
                ("photos", "cat.png", "image/png", cat.as_slice()),
                (
                    "photos",
                    "c.png",
                    "image/png",
                    sample("coffee.png").as_slice(),
                ),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let labels = &body["embeddings"][0]["labels"];
    assert_eq!(labels["predicted_species"], "cat", "{labels}");
    assert!(
        labels["species_probability"].as_f64().unwrap() > 0.5,
        "{labels}"
    );
    let breed = labels["breeds"][0]["name"].as_str().unwrap();
    assert!(CAT_BREEDS.contains(&breed), "{labels}");
    let coffee = &body["embeddings"][1]["labels"];
    assert_eq!(coffee["predicted_species"], "other", "{coffee}");
    assert_eq!(coffee["breeds"], serde_json::json!([]));

    // Stored with the photo and returned with the report.
    let workers = app.start_workers(job_settings(1));
    let id = create_report(&app.router, "lost", "cat", &cat).await;
    wait_until_embedded(&app, 1).await;
    let (status, _, report) = send(&app.router, get(&format!("/v1/reports/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let photo = &report["photos"][0];
    assert_eq!(photo["predicted_species"], "cat", "{photo}");
    assert_eq!(photo["breeds"][0]["name"].as_str(), Some(breed), "{photo}");
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breed_search_without_a_photo_finds_a_report_by_name_plural_and_translation() {
    let (app, workers, cat) = a_cat_among_three_others().await;
    // chelsea is read as an Egyptian cat first, with tabby and tiger cat after.
    for q in [
        "tabby",
        "tabbies",
        "chat%20tigr%C3%A9",
        "Egyptian%20cats",
        "gato",
    ] {
        let (status, _, body) = send(&app.router, get(&format!("/v1/search?q={q}"))).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        assert_eq!(ids(&body), [cat.as_str()], "{q}: {body}");
        let p = body["results"][0]["probability"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{body}");
        assert!(!body["breeds"].as_array().unwrap().is_empty(), "{body}");
    }
    // Breeds it is not read as find nothing; words that are no breed are understood as none.
    for q in ["siamese", "beagle", "german%20shepherds"] {
        let (_, _, body) = send(&app.router, get(&format!("/v1/search?q={q}"))).await;
        assert_eq!(ids(&body), Vec::<&str>::new(), "{q}: {body}");
        assert!(
            !body["breeds"].as_array().unwrap().is_empty(),
            "{q}: {body}"
        );
    }
    let (_, _, body) = send(&app.router, get("/v1/search?q=bicycle")).await;
    assert_eq!(body["breeds"], serde_json::json!([]), "{body}");
    let (status, _, body) = send(&app.router, get("/v1/search?q=")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The breed filter of the report list, and of a search by photo.
    let (status, _, body) = send(&app.router, get("/v1/reports?breed=tabby")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<&str> = body["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [cat.as_str()]);
    let (status, _, body) = send(&app.router, get("/v1/reports?breed=unicorn")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "breed", "{body}");
    let by_photo = search(
        &app.router,
        &edited_copy(&sample("coffee.png")),
        &[("breed", "tiger cats"), ("min_score", "0")],
    )
    .await;
    assert_eq!(ids(&by_photo), [cat.as_str()], "{by_photo}");
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_hides_unrelated_results_and_the_client_can_lower_it() {
    let (app, workers, cat) = a_cat_among_three_others().await;

    // Another photo of the cat: it alone is a look-alike; the three unrelated photos are hidden.
    let body = search(
        &app.router,
        &edited_copy(&sample("chelsea.png")),
        &[("k", "4")],
    )
    .await;
    let floor = body["min_score"].as_f64().unwrap();
    assert!(floor > 0.0, "{body}");
    assert_eq!(ids(&body), [cat.as_str()], "{body}");
    assert_eq!(body["below_min_score"], 3, "{body}");
    // A photo of nothing reported: no look-alike at all, rather than a list of unrelated ones.
    let unrelated = search(&app.router, &sample("motorcycle_left.png"), &[("k", "4")]).await;
    assert_eq!(ids(&unrelated), Vec::<&str>::new(), "{unrelated}");
    assert_eq!(unrelated["below_min_score"], 4, "{unrelated}");
    // The client's own floor: 0 shows them all, below the default.
    let all = search(
        &app.router,
        &sample("motorcycle_left.png"),
        &[("k", "4"), ("min_score", "0")],
    )
    .await;
    assert_eq!(ids(&all).len(), 4, "{all}");
    assert_eq!(all["min_score"], 0.0);
    assert!(
        all["results"][0]["score"].as_f64().unwrap() < floor,
        "{all}"
    );
    let (status, _, body) = send(
        &app.router,
        post_multipart(
            "/v1/search",
            &[
                (
                    "photo",
                    "q.png",
                    "image/png",
                    sample("coffee.png").as_slice(),
                ),
                ("min_score", "", "text/plain", b"2"),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Matches between reports use the same floor: the cat's report matches nothing unrelated,
    // and `min_score` (or its former name `threshold`) lowers it.
    let (status, _, matches) = send(
        &app.router,
        get(&format!("/v1/reports/{cat}/matches?kind=found")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{matches}");
    assert_eq!(matches["min_score"].as_f64(), Some(floor), "{matches}");
    assert_eq!(matches["matches"], serde_json::json!([]), "{matches}");
    for param in ["min_score", "threshold"] {
        let (_, _, lowered) = send(
            &app.router,
            get(&format!("/v1/reports/{cat}/matches?kind=found&{param}=-1")),
        )
        .await;
        assert_eq!(lowered["matches"].as_array().unwrap().len(), 3, "{lowered}");
    }
    workers.stop(Duration::from_secs(5)).await;
}

/// The query photo's species: with the default (boost), a report of that species ranks above a
/// slightly more similar one of another species; `species=any` turns that off; with `filter`,
/// reports of other species are left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_photos_species_boosts_or_filters() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let chelsea = sample("chelsea.png");
    // The same cat twice: the photo as taken, declared "other" (a mistaken report), and its
    // top-left 70%, declared "cat", which is a little less like the query (by about 0.06).
    let img = image::load_from_memory(&chelsea).unwrap();
    let mut corner = std::io::Cursor::new(Vec::new());
    img.crop_imm(0, 0, img.width() * 7 / 10, img.height() * 7 / 10)
        .write_to(&mut corner, image::ImageFormat::Png)
        .unwrap();
    let mistaken = create_report(&app.router, "found", "other", &chelsea).await;
    let declared = create_report(&app.router, "found", "cat", &corner.into_inner()).await;
    wait_until_embedded(&app, 2).await;
    let query = edited_copy(&chelsea);

    let plain = search(
        &app.router,
        &query,
        &[("species", "any"), ("min_score", "0")],
    )
    .await;
    assert!(plain.get("species_used").is_none(), "{plain}");
    assert_eq!(plain["query_labels"]["predicted_species"], "cat", "{plain}");
    // The premise: by similarity alone the mistaken report is first, by less than the boost.
    assert_eq!(
        ids(&plain),
        [mistaken.as_str(), declared.as_str()],
        "{plain}"
    );
    let gap = plain["results"][0]["score"].as_f64().unwrap()
        - plain["results"][1]["score"].as_f64().unwrap();
    assert!(
        gap < f64::from(lookalike::search::SPECIES_BOOST),
        "gap {gap}: {plain}"
    );

    let boosted = search(&app.router, &query, &[("min_score", "0")]).await;
    assert_eq!(
        boosted["species_used"],
        serde_json::json!({"species": "cat", "how": "boost"}),
        "{boosted}"
    );
    assert_eq!(
        ids(&boosted),
        [declared.as_str(), mistaken.as_str()],
        "{boosted}"
    );
    // Scores are shown unchanged.
    let shown = boosted["results"][1]["score"].as_f64().unwrap();
    let before = plain["results"][0]["score"].as_f64().unwrap();
    assert!((shown - before).abs() < 1e-4, "{boosted}");
    // The client's species wins over the detected one.
    let asked = search(
        &app.router,
        &query,
        &[("species", "other"), ("min_score", "0")],
    )
    .await;
    assert_eq!(ids(&asked), [mistaken.as_str()], "{asked}");
    workers.stop(Duration::from_secs(5)).await;

    // The same store with `--query-species filter`: only the cat report.
    let state = app_state(
        lookalike::service::Parts {
            store: app.state.store.clone(),
            gate: app.state.pipeline.gate().clone(),
            photo_store: app.photo_store.clone(),
            model_id: app.model_id,
        },
        &imaging_config(),
        &uploads(),
        &SearchConfig {
            query_species: QuerySpecies::Filter,
            ..SearchConfig::default()
        },
        3,
    );
    let filtering = router(state);
    let filtered = search(&filtering, &query, &[("min_score", "0")]).await;
    assert_eq!(filtered["species_used"]["how"], "filter", "{filtered}");
    assert_eq!(ids(&filtered), [declared.as_str()], "{filtered}");
}

#[tokio::test]
async fn the_document_describes_the_new_parameters_and_fields() {
    let app = app(default_gate_settings(), uploads()).await;
    let (status, _, doc) = send(&app.router, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let text = doc.to_string();
    let params = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(params("/v1/search", "get").contains(&"q".to_owned()));
    assert!(params("/v1/reports", "get").contains(&"breed".to_owned()));
    assert!(params("/v1/reports/{id}/matches", "get").contains(&"min_score".to_owned()));
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("SearchForm", "breed"),
        ("SearchForm", "min_score"),
        ("SearchResponse", "min_score"),
        ("SearchResponse", "below_min_score"),
        ("SearchResponse", "query_labels"),
        ("SearchResponse", "species_used"),
        ("MatchesResponse", "min_score"),
        ("Photo", "predicted_species"),
        ("Photo", "breeds"),
        ("PhotoLabels", "breeds"),
        ("TextSearchResponse", "breeds"),
    ] {
        assert!(
            schemas[schema]["properties"].get(field).is_some(),
            "{schema}.{field} is not documented"
        );
    }
    assert!(
        text.contains("\"labels\""),
        "the embeddings answer's labels"
    );
}

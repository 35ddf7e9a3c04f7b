//! What a finder shares stays theirs, on the real binary: the contact and the exact position only
//! for the owner (owner token) and the tenant (API key), a position rounded to 0.01° for anyone
//! else, place filters that cannot triangulate it, messages relayed to the owner instead, and
//! operators' data (`/metrics`, the detailed `/v1/status`) only for operators.

use crate::common::api::{
    TENANT_KEY, call_json, create, created, get_as, search, start, start_tenant, wait_ready,
};
use crate::common::*;
use serde_json::Value;

const CONTACT: &str = "finder@example.org";

/// The view of a report that anyone sees.
fn assert_public(report: &Value, lat: f64, lon: f64) {
    assert!(report["contact"].is_null(), "contact shown: {report}");
    assert_eq!(report["latitude"].as_f64(), Some(lat), "{report}");
    assert_eq!(report["longitude"].as_f64(), Some(lon), "{report}");
    assert_eq!(report["location_rounded"], true, "{report}");
}

/// The view of a report its owner and tenant see.
fn assert_whole(report: &Value, lat: f64, lon: f64) {
    assert_eq!(report["contact"], CONTACT, "{report}");
    assert_eq!(report["latitude"].as_f64(), Some(lat), "{report}");
    assert_eq!(report["longitude"].as_f64(), Some(lon), "{report}");
    assert_eq!(report["location_rounded"], false, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_sees_no_contact_and_a_rounded_position_the_owner_sees_both() {
    let service = start("privacy-views", 1, &[]).await;
    let photo = distinct_photos(1, 96).remove(0);
    let place = [("latitude", "48.8566123"), ("longitude", "2.3522456")];
    let fields = [&[("contact", CONTACT)][..], &place].concat();
    let report = created(create(&service, &[], &photo, &fields).await);
    // The creator is the owner: the creation answer is whole.
    assert_whole(&report, 48.8566123, 2.3522456);
    assert_eq!(report["contact_public"], false);
    let id = report["id"].as_str().unwrap().to_owned();
    let token = report["owner_token"].as_str().unwrap().to_owned();
    let owner = format!("Bearer {token}");
    let owner_header = [("Authorization", owner.as_str())];
    let path = format!("/v1/reports/{id}");

    // Anyone: no contact, the position to 0.01°.
    assert_public(&get_as(&service, &path, &[]).await.json(), 48.86, 2.35);
    // A wrong token is anyone.
    let stranger = format!("Bearer {}", "0".repeat(64));
    let stranger_header = [("Authorization", stranger.as_str())];
    assert_public(
        &get_as(&service, &path, &stranger_header).await.json(),
        48.86,
        2.35,
    );
    // The owner: everything.
    assert_whole(
        &get_as(&service, &path, &owner_header).await.json(),
        48.8566123,
        2.3522456,
    );
    // Lists: as anyone sees them.
    let page = get_as(&service, "/v1/reports", &[]).await.json();
    assert_public(&page["reports"][0], 48.86, 2.35);
    // Search results: the same.
    wait_ready(&service, &id, &[]).await;
    let found = search(&service, &[], &photo, &[("kind", "found")]).await;
    assert_eq!(found.status, 200, "{}", found.json());
    assert_public(&found.json()["results"][0]["report"], 48.86, 2.35);
    // Nothing of the contact anywhere in those answers.
    for body in [page.to_string(), found.json().to_string()] {
        assert!(!body.contains(CONTACT), "{body}");
    }

    // Published on purpose: anyone sees the contact, still not the exact position.
    let patched = call_json(
        &service,
        "PATCH",
        &path,
        &owner_header,
        &serde_json::json!({"contact_public": true}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    let public = get_as(&service, &path, &[]).await.json();
    assert_eq!(public["contact"], CONTACT, "{public}");
    assert_eq!(public["contact_public"], true);
    assert_eq!(public["latitude"].as_f64(), Some(48.86));
}

#[tokio::test]
async fn the_tenants_own_key_sees_the_whole_report() {
    let service = start_tenant("privacy-tenant").await;
    let key = [("X-API-Key", TENANT_KEY)];
    let photo = distinct_photos(1, 96).remove(0);
    let place = [("latitude", "-33.8688197"), ("longitude", "151.2092955")];
    let fields = [&[("contact", CONTACT)][..], &place].concat();
    let id = created(create(&service, &key, &photo, &fields).await)["id"].clone();
    let path = format!("/v1/reports/{}", id.as_str().unwrap());
    let report = get_as(&service, &path, &key).await.json();
    assert_whole(&report, -33.8688197, 151.2092955);
    let page = get_as(&service, "/v1/reports", &key).await.json();
    assert_whole(&page["reports"][0], -33.8688197, 151.2092955);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_filters_answer_for_the_rounded_position_so_they_cannot_triangulate() {
    let service = start("privacy-place", 1, &[]).await;
    let photo = distinct_photos(1, 96).remove(0);
    // Exactly here; shown (and filtered) at 48.86, 2.35, some 450 m north.
    let (lat, lon) = ("48.8560", "2.3500");
    let place = [("latitude", lat), ("longitude", lon)];
    let report = created(create(&service, &[], &photo, &place).await);
    let id = report["id"].as_str().unwrap().to_owned();
    wait_ready(&service, &id, &[]).await;
    let found = |lat: &'static str, lon: &'static str, radius: &'static str| {
        let (service, photo, id) = (&service, &photo, &id);
        async move {
            let answer = search(
                service,
                &[],
                photo,
                &[("latitude", lat), ("longitude", lon), ("radius_km", radius)],
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.json());
            answer.json()["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["report"]["id"] == id.as_str())
        }
    };
    // A small circle around the true spot misses it: it is placed at its public position.
    assert!(!found(lat, lon, "0.2").await);
    // A small circle around the public position finds it, though the true spot is outside.
    assert!(found("48.86", "2.35", "0.2").await);
    // Circles shrinking on the true spot from the south: the edge where it drops out is the
    // distance to the public position (445 m), never the true one (0 m).
    assert!(found("48.8560", "2.3500", "0.5").await);
    assert!(!found("48.8560", "2.3500", "0.4").await);
    // Bisecting the boundary from afar also finds only the public position: from 10 km south
    // of it, the edge lies 10 km out (the true spot is 9.55 km out).
    assert!(!found("48.7700666", "2.35", "9.9").await);
    assert!(found("48.7700666", "2.35", "10.1").await);
}

#[tokio::test]
async fn messages_reach_the_owner_within_their_size_and_rate_limits() {
    let service = start(
        "privacy-messages",
        0,
        &["--rate-messages-per-address", "4/h"],
    )
    .await;
    let photo = distinct_photos(1, 96).remove(0);
    let created = create(&service, &[], &photo, &[("contact", CONTACT)]).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let owner = format!("Bearer {}", created.json()["owner_token"].as_str().unwrap());
    let owner_header = [("Authorization", owner.as_str())];
    let path = format!("/v1/reports/{id}/messages");
    let send = |text: Value| {
        let (service, path) = (&service, &path);
        async move { call_json(service, "POST", path, &[], &text).await }
    };

    let first = send(serde_json::json!({"text": "I saw her at the bakery"})).await;
    assert_eq!(first.status, 201, "{}", first.json());
    let second =
        send(serde_json::json!({"text": "Still there at noon", "reply_to": "555-0100"})).await;
    assert_eq!(second.status, 201, "{}", second.json());
    // Too long, empty, or not plain text: 422 naming the field, nothing kept.
    let long = send(serde_json::json!({"text": "x".repeat(2001)})).await;
    assert_eq!(long.status, 422, "{}", long.json());
    assert_eq!(long.json()["field"], "text");
    // A body past the route's limit (128 KiB): 413.
    let huge = send(serde_json::json!({"text": "x".repeat(140_000)})).await;
    assert_eq!(huge.status, 413, "{}", huge.json());
    assert_eq!(huge.json()["code"], "payload_too_large");
    // Over the address's message quota (4 an hour; the refused ones counted too): 429.
    let limited = send(serde_json::json!({"text": "one more"})).await;
    assert_eq!(limited.status, 429, "{}", limited.json());
    assert_eq!(limited.json()["class"], "message");
    assert!(limited.header("retry-after").is_some());

    // To a report that does not exist: 404 (another address, within its quota).
    let lost = get_as(
        &service,
        &format!("/v1/reports/{}/messages", uuid::Uuid::new_v4()),
        &owner_header,
    )
    .await;
    assert_eq!(lost.status, 404, "{}", lost.json());

    // Only the owner reads them, newest first, a page at a time.
    assert_eq!(get_as(&service, &path, &[]).await.status, 401);
    let stranger = format!("Bearer {}", "0".repeat(64));
    let stranger_header = [("Authorization", stranger.as_str())];
    assert_eq!(get_as(&service, &path, &stranger_header).await.status, 403);
    let page = get_as(&service, &format!("{path}?limit=1"), &owner_header).await;
    assert_eq!(page.status, 200, "{}", page.json());
    let page = page.json();
    assert_eq!(page["messages"][0]["text"], "Still there at noon");
    assert_eq!(page["messages"][0]["reply_to"], "555-0100");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let older = get_as(
        &service,
        &format!("{path}?limit=1&cursor={cursor}"),
        &owner_header,
    )
    .await
    .json();
    assert_eq!(older["messages"][0]["text"], "I saw her at the bakery");
    assert_eq!(older["messages"].as_array().unwrap().len(), 1);
    // The messages stay with the owner: the report shows none of them to anyone.
    let report = get_as(&service, &format!("/v1/reports/{id}"), &[])
        .await
        .json();
    assert!(!report.to_string().contains("bakery"), "{report}");
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let service = start("privacy-nosniff", 0, &[]).await;
    let photo = distinct_photos(1, 96).remove(0);
    let created = create(&service, &[], &photo, &[]).await;
    let photo_id = created.json()["photos"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, status) in [
        ("/v1/reports", 200),
        (&*format!("/v1/photos/{photo_id}"), 200),
        ("/", 200),
        ("/openapi.json", 200),
        ("/metrics", 200),
        ("/v1/no-such-route", 404),
        ("/v1/reports?limit=0", 422),
    ] {
        let answer = get_as(&service, path, &[]).await;
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn metrics_and_the_detailed_status_are_for_operators_only() {
    const OPERATOR: &str = "operator-secret-0123456789";
    // The proxy on this host is trusted: its clients are who it says.
    let service = start(
        "privacy-operators",
        0,
        &["--trusted-proxies", "127.0.0.1", "--operator-key", OPERATOR],
    )
    .await;
    let outsider = [("X-Forwarded-For", "203.0.113.7")];
    let operator_header = format!("Bearer {OPERATOR}");
    let with_key = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Authorization", operator_header.as_str()),
    ];
    // A client from elsewhere: no metrics, and the status without its load figures.
    let refused = get_as(&service, "/metrics", &outsider).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "operator_only");
    let status = get_as(&service, "/v1/status", &outsider).await.json();
    assert!(status.get("gate").is_none(), "{status}");
    assert!(status["detail"].is_string(), "{status}");
    assert!(status["model"]["name"].is_string(), "{status}");
    // The operator key opens both.
    let metrics = get_as(&service, "/metrics", &with_key).await;
    assert_eq!(metrics.status, 200);
    assert!(String::from_utf8_lossy(&metrics.body).contains("lookalike_uptime_seconds"));
    let status = get_as(&service, "/v1/status", &with_key).await.json();
    assert!(status["gate"]["permits"].is_number(), "{status}");
    // A wrong key is no key.
    let wrong = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Authorization", "Bearer not-the-operator-key"),
    ];
    assert_eq!(get_as(&service, "/metrics", &wrong).await.status, 403);
    // A client on this host is an operator.
    assert_eq!(get_as(&service, "/metrics", &[]).await.status, 200);
    let status = get_as(&service, "/v1/status", &[]).await.json();
    assert!(status["gate"]["permits"].is_number(), "{status}");
}

//! Reports near a place and posters, in a real browser (headless Chromium through chromedriver,
//! over the real binary and database): "Near me" with the browser's location set through
//! Chromium's DevTools (`Emulation.setGeolocationOverride`), the town picker (no coordinates
//! typed, nothing fetched from elsewhere), the report form's place, a report's printable poster
//! and its share link, which opens the report in the app.

use std::time::{Duration, Instant};

use crate::common::browser::{Session, click_button, post_report_with, post_to_driver};
use crate::common::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute`.
async fn devtools(s: &Session, cmd: &str, params: Value) {
    let session = s.browser.session_id().await.unwrap().unwrap();
    let path = format!("/session/{session}/goog/cdp/execute");
    let body = json!({ "cmd": cmd, "params": params }).to_string();
    let answer = post_to_driver(&s.driver.addr, &path, &body).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{cmd}: {answer}");
}

/// Posts a report of `kind` and `species` at (lat, lon) with one photo; the creation answer.
async fn post(
    s: &Session,
    (kind, species): (&str, &str),
    title: &str,
    photo: &[u8],
    (lat, lon): (&str, &str),
) -> Value {
    let fields = [
        ("kind", kind),
        ("species", species),
        ("title", title),
        ("latitude", lat),
        ("longitude", lon),
    ];
    post_report_with(&s.service, &fields, photo).await
}

/// The titles of the listed reports, in order.
async fn listed(browser: &Client) -> Vec<String> {
    let mut titles = Vec::new();
    for t in browser
        .find_all(Locator::Css("#nearby-results .card .title"))
        .await
        .unwrap()
    {
        titles.push(t.text().await.unwrap());
    }
    titles
}

/// Waits until the current URL ends with `tail`.
async fn wait_for_url(browser: &Client, tail: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.as_str().ends_with(tail) {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, not …{tail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_finds_reports_near_them_or_a_town_and_prints_a_poster() {
    let _machine = whole_machine().await;
    let s = Session::start(0).await;
    let browser = &s.browser;
    let site = &s.site;

    let photos = distinct_photos(2, 160);
    let lost_cat = ("lost", "cat");
    let title = "Lost tabby cat, green collar";
    let cat = sample("chelsea.png");
    let lyon = post(&s, lost_cat, title, &cat, ("45.7640", "4.8357")).await;
    let title = "Found dog near Villeurbanne";
    post(
        &s,
        ("found", "dog"),
        title,
        &photos[0],
        ("45.7719", "4.8902"),
    )
    .await;
    let title = "Lost terrier in Paris";
    post(
        &s,
        ("lost", "dog"),
        title,
        &photos[1],
        ("48.8566", "2.3522"),
    )
    .await;

    // 1. "Near me": the browser is in Lyon.
    let permission = json!({ "origin": site, "permissions": ["geolocation"] });
    devtools(&s, "Browser.grantPermissions", permission).await;
    let lyon_centre = json!({ "latitude": 45.7578, "longitude": 4.8320, "accuracy": 50 });
    devtools(&s, "Emulation.setGeolocationOverride", lyon_centre).await;
    s.open("#/nearby", "Reports near a place").await;
    click_button(browser, "Near me").await;
    let heading = "#nearby-results h2";
    s.text(heading, "Reports near your location", 15).await;
    s.text("#nearby-results .card", "km away", 10).await;
    assert_eq!(
        listed(browser).await,
        [
            "Lost tabby cat, green collar",
            "Found dog near Villeurbanne"
        ],
        "nearest first, Paris out of 25 km"
    );
    let first = s.find("#nearby-results .card .distance").await;
    let first = first.text().await.unwrap();
    assert!(
        first.ends_with("km away") || first.ends_with("m away"),
        "{first}"
    );
    s.shot("nearby").await;

    // 2. A town, by name: nothing typed but letters, nothing fetched from elsewhere.
    s.type_into("#place-search", "pari").await;
    s.text("#place-matches button", "Paris, FR", 15).await;
    click_button(browser, "Paris, FR").await;
    s.text(heading, "Reports near Paris, FR", 15).await;
    s.text("#nearby-results .card", "Lost terrier in Paris", 10)
        .await;
    assert_eq!(listed(browser).await, ["Lost terrier in Paris"]);
    let session = &s;
    let value = |css: &'static str| async move {
        let field = session.find(css).await;
        field.prop("value").await.unwrap().unwrap_or_default()
    };
    let lat: f64 = value("#latitude").await.parse().unwrap();
    assert!((lat - 48.85).abs() < 0.05, "{lat}");

    // 3. The report form's place comes from the same picker.
    s.open("#/new", "").await;
    s.type_into("#place-search", "lyon").await;
    s.text("#place-matches button", "Lyon, FR", 15).await;
    click_button(browser, "Lyon, FR").await;
    let (lat, lon): (f64, f64) = (
        value("#latitude").await.parse().unwrap(),
        value("#longitude").await.parse().unwrap(),
    );
    assert!(
        (lat - 45.75).abs() < 0.05 && (lon - 4.85).abs() < 0.05,
        "{lat}, {lon}"
    );

    // 4. The poster: kind, title, QR code of the share link; printable.
    let id = lyon["id"].as_str().unwrap();
    s.goto(&format!("r/{id}/poster")).await;
    s.text("h1.poster-kind", "LOST CAT", 10).await;
    s.text(".poster-title", "Lost tabby cat, green collar", 5)
        .await;
    s.find(".poster-qr svg").await;
    let caption = s.find(".poster-qr figcaption").await;
    assert_eq!(caption.text().await.unwrap(), format!("{site}/r/{id}"));
    s.shot("poster").await;

    // 5. The share link opens the report in the app.
    s.goto(&format!("r/{id}")).await;
    wait_for_url(browser, &format!("/#/reports/{id}"), 10).await;
    s.close().await;
}

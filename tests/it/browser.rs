//! The page, as a person uses it, in a real browser: headless Chromium driven by chromedriver
//! (Debian's, installed by `scripts/setup-browser.sh`) over the real binary, database and model.
//! Search with a photo and see the look-alike report first; post a report, see its owner token,
//! see it turn ready and show its match; the operators' view; the interactive API reference.
//!
//! Screenshots are kept as artifacts in `<target>/tmp/screenshots/`; with
//! `LOOKALIKE_UPDATE_SCREENSHOTS=1` they also replace those of the README in `docs/screenshots/`.

use crate::common::browser::*;
use crate::common::process::http_get;
use crate::common::*;
use fantoccini::Locator;

/// The search page's heading.
const SEARCH: &str = "Is your pet among the reports?";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_searches_posts_a_report_and_follows_it_to_a_match() {
    let _machine = whole_machine().await;
    let s = Session::start(2).await;

    // Reports already posted: the lost cat is the one to find.
    let (cat, lost) = post_lost_cat(&s.service).await;
    for (kind, title, name) in [
        ("found", "Found dog by the river", "coffee.png"),
        ("found", "Found: grey kitten", "astronaut.png"),
        ("sighting", "Seen: cat on a wall", "motorcycle_left.png"),
    ] {
        post_report(&s.service, kind, title, &sample(name)).await;
    }
    eventually("the lost cat embedded", 60, || embedded(&s.service, &lost)).await;

    // 1. Search with another photo of the cat: the lost report comes first, with its score.
    let query = photo_file(&edited_copy(&cat), "cat-query.jpg");
    s.open("", SEARCH).await;
    // Every kind is searched by default: a finder sees the lost reports.
    let checked = "return document.querySelectorAll('input[name=kind]:checked').length";
    assert_eq!(s.js(checked).await, 3);
    s.type_into("#photo-input", &query).await;
    s.submit().await;
    let first = s.text(".result", "Lost tabby cat", 30).await;
    let results = s.browser.find_all(Locator::Css(".result")).await.unwrap();
    assert!(
        results[0].text().await.unwrap().contains("Lost tabby cat"),
        "the lost cat is not first: {first}"
    );
    assert!(first.contains("% alike"), "{first}");
    s.shot("search").await;

    // 2. Post a found report with a photo of the same cat: the owner token is shown once, the
    //    photos turn ready, and the lost report appears as a possible match.
    s.open("#/new", "Post a report").await;
    s.choose("#kind", "found").await;
    s.choose("#species", "cat").await;
    s.type_into("#title", "Found a tabby cat in my garden")
        .await;
    s.type_into("#contact", "finder@example.org").await;
    let found_photo = photo_file(&edited_copy(&cat), "cat-found.jpg");
    s.type_into("#photos-input", &found_photo).await;
    s.submit().await;
    let token = s.text("#owner-token", "", 30).await;
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    // The report's own address, which a reload keeps.
    let address = s.browser.current_url().await.unwrap().to_string();
    let posted = address
        .split("#/reports/")
        .nth(1)
        .unwrap_or_else(|| panic!("not the report's address: {address}"))
        .to_owned();
    s.text("#embedding-status", "ready", 60).await;
    s.text("#matches .match", "Lost tabby cat", 60).await;
    s.shot("report").await;
    s.browser.refresh().await.unwrap();
    s.text("#report-title", "Found a tabby cat", 10).await;
    s.text("#owner-panel", "Owner link", 10).await;
    assert_eq!(
        s.browser.title().await.unwrap(),
        "Found a tabby cat in my garden · lookalike"
    );
    let link = s
        .js("return document.getElementById('owner-link').value")
        .await;
    let owner_link = format!("#/reports/{posted}?token={token}");
    assert!(link.as_str().unwrap().ends_with(&owner_link), "{link}");

    // "My reports" lists it, with its match.
    s.goto("#/mine").await;
    s.text("#my-reports", "Found a tabby cat", 10).await;
    s.text("#my-reports", "possible match", 10).await;
    s.shot("my-reports").await;

    // Searching again with the cat's photo, the finder sees the lost report, never their own.
    s.open("", SEARCH).await;
    s.type_into("#photo-input", &found_photo).await;
    s.submit().await;
    s.text(".result", "Lost tabby cat", 30).await;
    for result in s.browser.find_all(Locator::Css(".result")).await.unwrap() {
        let text = result.text().await.unwrap();
        assert!(!text.contains("Found a tabby cat in my garden"), "{text}");
    }

    // The match leads to the lost report's page, where this browser is a visitor: no owner's
    // panel, a way to write to the owner.
    s.browser.goto(&address).await.unwrap();
    s.text("#matches .match", "Lost tabby cat", 10).await;
    s.click("#matches .match a").await;
    s.text("#report-title", "Lost tabby cat", 10).await;
    s.text("summary", "Is this your report?", 10).await;
    assert!(s.browser.find(Locator::Css("#owner-panel")).await.is_err());

    // The owner resolves the report, then deletes it, with the token this browser kept (at the
    // address of the earlier pages too).
    s.goto(&format!("#/report/{posted}")).await;
    s.text("#report-title", "open", 10).await;
    click_button(&s.browser, "Mark as resolved").await;
    s.text("#report-title", "resolved", 10).await;
    click_button(&s.browser, "Delete").await;
    s.browser.accept_alert().await.unwrap();
    s.text("h1", "Report deleted", 10).await;
    let path = format!("/v1/reports/{posted}");
    let (status, _) = http_get(&s.service.addr, &path).await;
    assert_eq!(status, 404);

    // A file that is not a photo gets an answer in plain words.
    s.open("", SEARCH).await;
    let not_a_photo = photo_file(b"these are not the pixels you are looking for", "notes.jpg");
    s.type_into("#photo-input", &not_a_photo).await;
    s.submit().await;
    let refusal = "not a photo this service reads";
    s.text(".notice.error", refusal, 20).await;

    // 3. The operators' view, refreshing from /v1/status, at its own address (not in the menu).
    let menu = s.find("nav").await.text().await.unwrap();
    assert!(!menu.contains("Operators"), "{menu}");
    s.goto("#/status").await;
    s.text("#stats", "Model permits in use", 10).await;
    s.text("#stats", "efficientnet-lite0", 10).await;
    s.shot("status").await;

    // 4. A phone-sized screen.
    s.browser.set_window_size(390, 844).await.unwrap();
    s.open("", SEARCH).await;
    s.shot("search-phone").await;
    let lost_id = lost["id"].as_str().unwrap();
    s.goto(&format!("#/reports/{lost_id}")).await;
    s.text("#report-title", "Lost tabby cat", 10).await;
    s.shot("report-phone").await;

    // 5. The interactive reference renders every operation from /openapi.json.
    s.browser.set_window_size(1280, 1000).await.unwrap();
    s.goto("docs").await;
    s.text(".swagger-ui .opblock", "/v1/search", 30).await;
    let operations = s.count(".swagger-ui .opblock").await;
    assert!(operations >= 15, "{operations} operations shown");
    s.shot("docs").await;
    s.close().await;
}
